//! Wallboard stream tickets: how an EventSource (no Authorization header) opens the stream. A ticket
//! is single-use, short-lived, bound to its session, refused to BIZ and BY like the stream itself.

use serde_json::Value;
use store::accounts::Role;

use crate::harness::{expect, TestApp};

/// `GET /wallboard/stream?...` without a bearer (what an EventSource sends, minus `Accept`, so the
/// response is the start of the stream and ends): status and body text.
async fn stream(app: &TestApp, query: &str) -> (u16, String) {
    let r = app.http.get(format!("{}/wallboard/stream?{query}", app.base)).send().await.expect("stream");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

async fn ticket(app: &TestApp, token: Option<&str>) -> String {
    let v = expect(app.call(token, "post", "/wallboard/tickets", None).await, 201);
    assert!(v["expires_in_ms"].as_i64().expect("expires_in_ms") <= 30_000, "{v}");
    v["ticket"].as_str().expect("ticket").to_owned()
}

pub async fn stream_tickets_are_single_use_and_bound_to_the_session(app: TestApp) {
    let t = app.tenant("tickets").await;
    let (status, _) = stream(&app, "ticket=").await;
    assert_eq!(status, 401, "no bearer and no ticket");

    // An SV's ticket opens the stream once: the start of the stream is a snapshot.
    let sv = ticket(&app, t.token(Role::Sv)).await;
    let (status, body) = stream(&app, &format!("ticket={sv}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("event: snapshot"), "{body}");
    let (status, body) = stream(&app, &format!("ticket={sv}&last_event_id=0")).await;
    assert_eq!(status, 401, "a spent ticket is refused: {body}");
    let e: Value = serde_json::from_str(&body).expect("error json");
    assert_eq!(e["error"]["field"], "ticket");
    let (status, _) = stream(&app, "ticket=made-up-ticket").await;
    assert_eq!(status, 401);

    // The roles are those of the stream: BIZ and BY get no ticket; OP does (and sees only itself).
    for role in [Role::Biz, Role::By] {
        let e = expect(app.call(t.token(role), "post", "/wallboard/tickets", None).await, 403);
        assert_eq!(e["error"]["code"], "forbidden");
    }
    let op = ticket(&app, t.token(Role::Op)).await;
    assert_eq!(stream(&app, &format!("ticket={op}")).await.0, 200);

    // A ticket is bounded in time (30 s) ...
    let mgr = ticket(&app, t.mgr()).await;
    let later = store::now_ms() + 31_000;
    assert!(store::stream_tickets::redeem(&app.db, &mgr, later).await.expect("redeem").is_none(), "expired");
    // ... and dies with its session.
    let mgr2 = ticket(&app, t.mgr()).await;
    expect(app.call(t.mgr(), "post", "/auth/logout", None).await, 204);
    assert_eq!(stream(&app, &format!("ticket={mgr2}")).await.0, 401, "logged out: the ticket is void");

    // A session holds a bounded number of unused tickets.
    let sv_token = t.token(Role::Sv);
    let mut last = 0;
    for _ in 0..=store::stream_tickets::MAX_LIVE_PER_SESSION {
        last = app.call(sv_token, "post", "/wallboard/tickets", None).await.0.as_u16();
    }
    assert_eq!(last, 429, "more than {} live tickets", store::stream_tickets::MAX_LIVE_PER_SESSION);
}

crate::both!(stream_tickets_are_single_use_and_bound_to_the_session);
