//! パーク保留 through the API on SQLite and PostgreSQL: the tenant's parked calls listed with the
//! customer's number and who parked them; two agents picking up the same call at once (one 202, the
//! other 409); another tenant's park numbers answer 404 and are not listed; a pick-up needs a ready
//! agent; an agent parks only its own current call.

use serde_json::Value;
use store::accounts::Role;
use wire::agent::{AgentConfig, AgentId, AgentState, AgentView, CallId};

use crate::harness::{expect, TestApp};

/// The agent's committed state as control would have written it.
async fn agent_in(app: &TestApp, tenant: i64, user: i64, state: AgentState, call: Option<u64>) {
    let view = AgentView {
        agent_id: AgentId(user as u64),
        state,
        since_ms: 0,
        call_id: call.map(CallId),
        leg_up: true,
        pending: None,
        dialling: false,
        release_at_ms: None,
    };
    store::sqlx::query(
        "INSERT INTO control_agents (tenant_id, agent_user_id, view, config, updated_at) VALUES ($1, $2, $3, $4, 0)
         ON CONFLICT (tenant_id, agent_user_id) DO UPDATE SET view = excluded.view",
    )
    .bind(tenant)
    .bind(user)
    .bind(serde_json::to_string(&view).expect("view"))
    .bind(serde_json::to_string(&AgentConfig::default()).expect("config"))
    .execute(&app.db.pool)
    .await
    .expect("control_agents row");
}

/// A call record of `dialer_call_id` to `tel`, parked under `number` by `by`.
async fn parked(app: &TestApp, tenant: i64, dialer_call_id: i64, tel: &str, number: i64, by: i64) {
    let now = store::now_ms();
    store::sqlx::query(
        "INSERT INTO call_records (tenant_id, tel, started_at, answered_at, bridged_at, dialer_call_id, agent_user_id)
         VALUES ($1, $2, $3, $3, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(tel)
    .bind(now - 60_000)
    .bind(dialer_call_id)
    .bind(by)
    .execute(&app.db.pool)
    .await
    .expect("call record");
    store::sqlx::query(
        "INSERT INTO parked_calls (tenant_id, dialer_call_id, number, parked_by, parked_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(dialer_call_id)
    .bind(number)
    .bind(by)
    .bind(now - 30_000)
    .execute(&app.db.pool)
    .await
    .expect("park");
}

async fn parked_park_and_pick_up(app: TestApp) {
    let a = app.tenant("parka").await;
    let b = app.tenant("parkb").await;
    let (op, sv, mgr) = (a.user(Role::Op), a.user(Role::Sv), a.user(Role::Mgr));
    parked(&app, a.id, 7001, "0311110001", 9001, mgr).await;
    // The list: number, the customer's number, who parked it, for how long.
    let list = expect(app.call(a.token(Role::Op), "get", "/agent/parked", None).await, 200);
    assert_eq!(list["total"], 1, "{list}");
    let row = &list["items"][0];
    assert_eq!(
        (row["number"].as_i64(), row["tel"].as_str(), row["parked_by"].as_i64()),
        (Some(9001), Some("0311110001"), Some(mgr))
    );
    assert_eq!(row["parked_by_name"], "mgr");
    assert!(row["held_seconds"].as_i64().is_some_and(|s| s >= 29), "{row}");
    // Another tenant sees none of it and cannot take it.
    agent_in(&app, b.id, b.user(Role::Op), AgentState::Ready, None).await;
    let theirs = expect(app.call(b.token(Role::Op), "get", "/agent/parked", None).await, 200);
    assert_eq!(theirs["total"], 0, "{theirs}");
    expect(app.call(b.token(Role::Op), "post", "/agent/parked/9001/pick-up", None).await, 404);
    // Not a park number, or no call under it: 404.
    expect(app.call(a.token(Role::Op), "post", "/agent/parked/9002/pick-up", None).await, 404);
    expect(app.call(a.token(Role::Op), "post", "/agent/parked/42/pick-up", None).await, 404);
    // Not working a call job, then not ready: 409 (the park stays).
    let e = expect(app.call(a.token(Role::Op), "post", "/agent/parked/9001/pick-up", None).await, 409);
    assert_eq!(e["error"]["code"], "not_in_session");
    agent_in(&app, a.id, op, AgentState::WrapUp, None).await;
    let e = expect(app.call(a.token(Role::Op), "post", "/agent/parked/9001/pick-up", None).await, 409);
    assert_eq!(e["error"]["code"], "not_ready");
    // Two ready agents pick it up at once: exactly one wins, the other is told it was taken.
    agent_in(&app, a.id, op, AgentState::Ready, None).await;
    agent_in(&app, a.id, sv, AgentState::Ready, None).await;
    let (r1, r2) = tokio::join!(
        app.call(a.token(Role::Op), "post", "/agent/parked/9001/pick-up", None),
        app.call(a.token(Role::Sv), "post", "/agent/parked/9001/pick-up", None)
    );
    let mut statuses = [r1.0.as_u16(), r2.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409], "{} / {}", r1.1, r2.1);
    let loser: &Value = if r1.0.as_u16() == 409 { &r1.1 } else { &r2.1 };
    assert_eq!(loser["error"]["code"], "taken");
    let winner = if r1.0.as_u16() == 202 { op } else { sv };
    let picked: i64 =
        store::sqlx::query_scalar("SELECT picked_by FROM parked_calls WHERE tenant_id = $1 AND number = 9001")
            .bind(a.id)
            .fetch_one(&app.db.pool)
            .await
            .expect("picked_by");
    assert_eq!(picked, winner);
    // The call's history holds the park (MGR, SV).
    let record: i64 =
        store::sqlx::query_scalar("SELECT id FROM call_records WHERE tenant_id = $1 AND dialer_call_id = 7001")
            .bind(a.id)
            .fetch_one(&app.db.pool)
            .await
            .expect("record");
    let h = expect(app.call(a.token(Role::Sv), "get", &format!("/calls/{record}/parks"), None).await, 200);
    assert_eq!((h["items"][0]["number"].as_i64(), h["items"][0]["parked_by"].as_i64()), (Some(9001), Some(mgr)), "{h}");
    expect(app.call(a.token(Role::Op), "get", &format!("/calls/{record}/parks"), None).await, 403);
    expect(app.call(b.token(Role::Mgr), "get", &format!("/calls/{record}/parks"), None).await, 404);
    // A claimed park is off the list.
    let list = expect(app.call(a.token(Role::Sv), "get", "/agent/parked", None).await, 200);
    assert_eq!(list["total"], 0, "{list}");
    // Park: only the caller's own call, talking or holding.
    agent_in(&app, a.id, op, AgentState::Talking, Some(7002)).await;
    expect(app.call(a.token(Role::Op), "post", "/agent/calls/7001/park", None).await, 404);
    expect(app.call(a.token(Role::Sv), "post", "/agent/calls/7002/park", None).await, 404);
    let ok = expect(app.call(a.token(Role::Op), "post", "/agent/calls/7002/park", None).await, 202);
    assert!(ok["message_id"].as_str().is_some(), "{ok}");
    agent_in(&app, a.id, op, AgentState::WrapUp, Some(7002)).await;
    let e = expect(app.call(a.token(Role::Op), "post", "/agent/calls/7002/park", None).await, 409);
    assert_eq!(e["error"]["code"], "not_talking");
    // Roles: a BIZ user has no parked list.
    expect(app.call(a.token(Role::Biz), "get", "/agent/parked", None).await, 403);
}

crate::both!(parked_park_and_pick_up);
