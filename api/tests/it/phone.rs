//! ブラウザフォン's signalling (issue 24): the phone kind in /users, `GET /agent/phone`, the page's
//! offer checked and published to the dialer hosts, and 発信開始 with no SIP account.

use bus::{Bus, EntryId};
use serde_json::json;
use store::accounts::Role;
use wire::{streams, Message, PhoneOffer};

use crate::agents::{running_job, Buses};
use crate::harness::{expect, Backend, TestApp};

const OFFER: &str =
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\n";

async fn signalling(backend: Backend) {
    let buses = Buses::new(false).await;
    let config = api::Config { commands: bus::Publisher::new(buses.bus.clone()), ..Default::default() };
    let app = TestApp::start_with(backend, config).await;
    let t = app.tenant("one").await;
    let (op, sv, mgr) = (t.token(Role::Op), t.token(Role::Sv), t.mgr());
    let op_id = t.user(Role::Op);
    let field = |v: &serde_json::Value| v["error"]["field"].as_str().unwrap_or("").to_string();

    // Every user starts with a SIP phone; an MGR sets the browser phone (a wrong kind is named).
    assert_eq!(expect(app.call(op, "get", "/agent/phone", None).await, 200)["phone_kind"], "sip");
    let user = format!("/users/{op_id}");
    let e = expect(app.call(mgr, "patch", &user, Some(&json!({"phone_kind": "fax"}))).await, 422);
    assert_eq!(field(&e), "phone_kind");
    expect(app.call(op, "patch", &user, Some(&json!({"phone_kind": "browser"}))).await, 403);
    let u = expect(app.call(mgr, "patch", &user, Some(&json!({"phone_kind": "browser"}))).await, 200);
    assert_eq!(u["phone_kind"], "browser");
    assert_eq!(expect(app.call(op, "get", "/agent/phone", None).await, 200)["phone_kind"], "browser");

    // Offers: bad ones are named, a SIP phone's user is refused, a good one reaches the dialers.
    let e = expect(app.call(op, "post", "/agent/phone", Some(&json!({"sdp": "hello"}))).await, 422);
    assert_eq!(field(&e), "sdp");
    let e = expect(app.call(op, "post", "/agent/phone", Some(&json!({"sdp": "x".repeat(40_000)}))).await, 422);
    assert_eq!(field(&e), "sdp");
    let e = expect(app.call(op, "post", "/agent/phone", Some(&json!({"sdp": OFFER, "video": true}))).await, 400);
    assert_eq!(field(&e), "video");
    let e = expect(app.call(sv, "post", "/agent/phone", Some(&json!({"sdp": OFFER}))).await, 409);
    assert_eq!((e["error"]["code"].as_str(), field(&e).as_str()), (Some("not_browser_phone"), "phone_kind"));
    expect(app.call(None, "post", "/agent/phone", Some(&json!({"sdp": OFFER}))).await, 401);
    let r = expect(app.call(op, "post", "/agent/phone", Some(&json!({"sdp": OFFER}))).await, 202);
    let entries = buses.bus.read_after(&streams::dialer_notices(), EntryId::default(), 100, 100).await.expect("read");
    let offers: Vec<PhoneOffer> = entries
        .iter()
        .filter(|(_, e)| e.kind == PhoneOffer::KIND)
        .map(|(_, e)| e.decode().expect("an offer"))
        .collect();
    assert_eq!(offers.len(), 1, "{r}");
    assert_eq!((offers[0].agent_id.0 as i64, offers[0].sdp.as_str()), (op_id, OFFER));
    assert_eq!(entries.iter().find(|(_, e)| e.kind == PhoneOffer::KIND).unwrap().1.tenant_id as i64, t.id);

    // 発信開始 needs no SIP account for a browser phone (the SV, with a SIP phone kind, still does).
    let (_, _, job) = running_job(&app, &t, &[op_id, t.user(Role::Sv)], json!({})).await;
    expect(app.call(op, "post", "/agent/session", Some(&json!({"call_job_id": job}))).await, 202);
    let e = expect(app.call(sv, "post", "/agent/session", Some(&json!({"call_job_id": job}))).await, 422);
    assert_eq!(field(&e), "phone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_phone_signalling_sqlite() {
    signalling(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_phone_signalling_postgres() {
    signalling(Backend::Postgres).await;
}
