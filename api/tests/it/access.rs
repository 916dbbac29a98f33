//! Every operation of the registry (the same list that builds the router and the OpenAPI document),
//! called by every role (allowed and refused) and across tenants (a foreign id answers 404).

use std::collections::HashMap;

use serde_json::{json, Value};
use store::accounts::Role;

use crate::harness::{expect, Tenant, TestApp};

/// One record of every resource in `t`, keyed by the first path segment (`/campaigns`, ...).
pub async fn fixtures(app: &TestApp, t: &Tenant) -> HashMap<&'static str, i64> {
    let tok = t.mgr();
    let mut fx = HashMap::new();
    let mut post = async |path: &'static str, body: Value| -> i64 {
        let v = expect(app.call(tok, "post", path, Some(&body)).await, 201);
        let id = v["id"].as_i64().expect("id");
        fx.insert(path, id);
        id
    };
    let campaign = post("/campaigns", json!({"name": "fx", "business_start": "00:00", "business_end": "23:59"})).await;
    post("/result-codes", json!({"campaign_id": campaign, "number": 1, "label": "成約"})).await;
    let group = post("/dialing-groups", json!({"name": "fx"})).await;
    post("/pause-reasons", json!({"name": "fx", "color": "#123456"})).await;
    post("/phones", json!({"sip_username": "fx", "password": "fx-password"})).await;
    post("/caller-ids", json!({"number": "0312345678"})).await;
    let batch = post("/batches", json!({"campaign_id": campaign, "name": "fx", "start_date": "2026-11-01"})).await;
    let list = post("/lists", json!({"batch_id": batch, "name": "fx"})).await;
    post("/custom-fields", json!({"key": "fx", "label": "fx", "kind": "text"})).await;
    let lead = post("/leads", json!({"list_id": list, "name": "fx", "kana": "フィクス", "tel": "0311112222"})).await;
    post("/lead-numbers", json!({"lead_id": lead, "tel": "09011112222", "label": "fx"})).await;
    post("/call-jobs", json!({"campaign_id": campaign, "dialing_group_id": group, "name": "fx", "list_ids": [list]}))
        .await;
    post("/dnc-numbers", json!({"number": "0399998888"})).await;
    post("/inbound-blocks", json!({"number": "0399997777"})).await;
    post("/phone-book", json!({"number": "0399996666", "name": "fx"})).await;
    post("/outside-transfers", json!({"name": "fx", "number": "0399995555"})).await;
    post("/closed-days", json!({"day": "2030-12-31", "name": "fx"})).await;
    post(
        "/recalls",
        json!({"lead_id": lead, "due_at": "2030-01-01T09:00:00+09:00", "agent_user_id": t.user(Role::Op)}),
    )
    .await;
    post("/users", json!({"login": "fxuser", "display_name": "fx", "role": "OP", "password": "Fx-password1"})).await;
    // OP, BIZ and BY see the campaign and the list through grants.
    for role in [Role::Op, Role::Biz, Role::By] {
        for (kind, id) in [("campaign", campaign), ("list", list)] {
            post("/grants", json!({"user_id": t.user(role), "resource_kind": kind, "resource_id": id})).await;
        }
    }
    // Records the dialer and the control service write.
    let insert = async |sql: &str, id: i64| -> i64 {
        store::sqlx::query(sql)
            .bind(t.id)
            .bind(id)
            .bind(lead)
            .bind(t.user(Role::Op))
            .bind(store::now_ms())
            .fetch_one(&app.db.pool)
            .await
            .and_then(|r| store::sqlx::Row::try_get(&r, "id"))
            .expect("record")
    };
    let call = insert(
        "INSERT INTO call_records (tenant_id, campaign_id, lead_id, agent_user_id, tel, started_at, result)
         VALUES ($1, $2, $3, $4, '0311112222', $5, 'busy') RETURNING id",
        campaign,
    )
    .await;
    fx.insert("/call-records", call);
    let callback = expect(app.call(tok, "post", "/callbacks", Some(&json!({"call_id": call}))).await, 201);
    fx.insert("/callbacks", callback["id"].as_i64().expect("callback id"));
    let (rec, _) = crate::harness::recording(app, t.id, call, 4242, store::now_ms(), b"RIFF recording").await;
    fx.insert("/recordings", rec);
    let wrap = insert(
        "INSERT INTO wrapup_records (tenant_id, call_record_id, lead_id, agent_user_id, result, created_at)
         VALUES ($1, $2, $3, $4, 'no_entry', $5) RETURNING id",
        call,
    )
    .await;
    fx.insert("/wrapup-records", wrap);
    let (status, body) = app
        .raw(
            tok.unwrap(),
            "POST",
            &format!("/lists/{list}/imports"),
            "text/csv",
            "name,kana,tel,remarks\nA,エー,0312340000,\n,ビー,0312340001,\n".into(),
        )
        .await;
    assert_eq!(status.as_u16(), 202, "{}", String::from_utf8_lossy(&body));
    let import: Value = serde_json::from_slice(&body).expect("json");
    let import_id = import["id"].as_i64().expect("import id");
    crate::imports::wait(app, tok.unwrap(), import_id).await;
    fx.insert("/imports", import_id);
    // Agents: the OP (whom every agent-side role may read), and under /agent/ the fixture lead
    // (which the OP works: its recall and unsaved record), also a call id no one holds.
    // The audit trail holds the users' logins of the harness.
    let audit = store::sqlx::query("SELECT MIN(id) AS id FROM audit_events WHERE tenant_id = $1")
        .bind(t.id)
        .fetch_one(&app.db.pool)
        .await
        .and_then(|r| store::sqlx::Row::try_get::<i64, _>(&r, "id"))
        .expect("an audit event");
    fx.insert("/audit-events", audit);
    fx.insert("/agents", t.user(Role::Op));
    fx.insert("/calls", fx["/call-records"]);
    fx.insert("/agent", lead);
    // 発番号: the agent's list of caller IDs holds the fixture's.
    fx.insert("/agent/caller-ids", fx["/caller-ids"]);
    // パーク保留: a call parked under 9001 (picked up by no one: no agent works a call job here).
    store::sqlx::query(
        "INSERT INTO parked_calls (tenant_id, dialer_call_id, number, parked_by, parked_at) VALUES ($1, $2, 9001, $3, $4)",
    )
    .bind(t.id)
    .bind(fx["/call-records"])
    .bind(t.user(Role::Op))
    .bind(store::now_ms())
    .execute(&app.db.pool)
    .await
    .expect("park a call");
    fx.insert("/agent/parked", 9001);
    // Held for the OP's next manual dial (the sweep's saves end its recall and record).
    store::sqlx::query("UPDATE leads SET preview_user_id = $1, preview_until = $2 WHERE id = $3")
        .bind(t.user(Role::Op))
        .bind(store::now_ms() + 86_400_000)
        .bind(lead)
        .execute(&app.db.pool)
        .await
        .expect("hold the lead");
    fx
}

/// The op's path with `{id}` replaced by the fixture of its first segment.
fn fill(path: &str, fx: &HashMap<&'static str, i64>) -> Option<String> {
    if !path.contains("{id}") {
        return Some(path.to_string());
    }
    if path.starts_with("/agent/parked/") {
        return Some(path.replace("{id}", &fx.get("/agent/parked")?.to_string()));
    }
    let first = path.split('/').nth(1)?;
    let id = fx.iter().find(|(k, _)| k.trim_start_matches('/') == first).map(|(_, v)| *v)?;
    Some(path.replace("{id}", &id.to_string()))
}

static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A valid body for a write, unique on each call.
fn body_for(method: &str, path: &str, fx: &HashMap<&'static str, i64>) -> Option<Value> {
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tel = format!("03{:08}", 10_000_000 + n);
    let name = format!("n{n}");
    Some(match (method, path) {
        ("post", "/campaigns") => json!({"name": name}),
        ("post", "/result-codes") => json!({"campaign_id": fx["/campaigns"], "number": 100 + n, "label": name}),
        ("post", "/dialing-groups") | ("post", "/pause-reasons") => json!({"name": name}),
        ("post", "/phones") => json!({"sip_username": name, "password": "password-1"}),
        ("post", "/caller-ids") | ("post", "/dnc-numbers") | ("post", "/inbound-blocks") => json!({"number": tel}),
        ("post", "/batches") => json!({"campaign_id": fx["/campaigns"], "name": name, "start_date": "2026-12-01"}),
        ("post", "/lists") => json!({"batch_id": fx["/batches"], "name": name}),
        ("post", "/custom-fields") => json!({"key": name, "label": name, "kind": "number"}),
        ("post", "/leads") => json!({"list_id": fx["/lists"], "name": name, "kana": "カナ", "tel": tel}),
        ("post", "/lead-numbers") => json!({"lead_id": fx["/leads"], "tel": tel}),
        ("patch", p) if p.starts_with("/lead-numbers/") => json!({"label": name}),
        ("post", "/call-jobs") => {
            json!({"campaign_id": fx["/campaigns"], "dialing_group_id": fx["/dialing-groups"], "name": name, "list_ids": [fx["/lists"]]})
        }
        ("post", "/phone-book") | ("post", "/outside-transfers") => json!({"number": tel, "name": name}),
        ("post", "/closed-days") => {
            let day = chrono::NaiveDate::from_ymd_opt(2031, 1, 1).unwrap() + chrono::Days::new(n);
            json!({"day": day.to_string(), "name": name})
        }
        ("post", "/callbacks") => json!({"call_id": fx["/call-records"]}),
        ("patch", p) if p.starts_with("/callbacks/") => json!({"memo": name}),
        ("post", p) if p.ends_with("/assign") => json!({}),
        ("post", "/recalls") => json!({"lead_id": fx["/leads"], "due_at": "2031-01-01T09:00:00+09:00"}),
        ("post", "/users") => {
            json!({"login": format!("usr{n}"), "display_name": name, "role": "BY", "password": "Password-1"})
        }
        ("post", "/grants") => {
            json!({"group_id": fx["/dialing-groups"], "resource_kind": "campaign", "resource_id": fx["/campaigns"]})
        }
        ("patch", "/tenant") => json!({"name": "テナント"}),
        ("patch", p) if p.starts_with("/users/") => json!({"display_name": name}),
        ("patch", p) if p.starts_with("/recalls/") => json!({"note": name}),
        ("patch", p) if p.starts_with("/leads/") => json!({"remarks": name}),
        ("patch", p) if p.starts_with("/call-jobs/") => json!({"name": name}),
        ("patch", p) if p.starts_with("/phones/") => json!({"password": "password-2"}),
        ("patch", p) if p.starts_with("/custom-fields/") || p.starts_with("/result-codes/") => json!({"label": name}),
        ("patch", p) if p.starts_with("/caller-ids/") => json!({"max_channels": 5}),
        ("patch", p) if p.starts_with("/dnc-numbers/") || p.starts_with("/inbound-blocks/") => json!({"note": name}),
        ("patch", p) if p.starts_with("/pause-reasons/") => json!({"position": 3}),
        ("patch", _) => json!({"name": name}),
        ("put", _) => json!({"user_ids": []}),
        ("post", p) if p.ends_with("/history") => json!({"text": name}),
        ("post", p) if p.ends_with("/save") => {
            json!({"result": "busy", "next_action": "continue", "state_after": "continue"})
        }
        ("post", p) if p.ends_with("/bulk-delete") => json!({"numbers": ["0300000000"]}),
        ("post", p) if p.ends_with("/report") => json!({"reported": true}),
        ("post", "/agent/session") => json!({"call_job_id": fx["/call-jobs"]}),
        ("post", "/agent/pause") => json!({"reason_id": fx["/pause-reasons"]}),
        ("post", "/agent/phone") => json!({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"}),
        ("post", "/agent/preview/dial" | "/agent/preview/skip") => json!({"lead_id": fx["/leads"]}),
        ("post", p) if p.starts_with("/agent/calls/") && p.ends_with("/transfer") => json!({"agent_id": fx["/agents"]}),
        ("post", p)
            if p.starts_with("/agent/calls/") && (p.ends_with("/transfer-outside") || p.ends_with("/conference")) =>
        {
            json!({"number": "0312345678"})
        }
        ("post", p) if p.starts_with("/agents/") && p.ends_with("/state") => json!({"to": "ready"}),
        ("post", p) if p.starts_with("/agents/") && p.ends_with("/monitor") => json!({"mode": "listen"}),
        ("post", "/auth/login") => return None,
        _ => return None,
    })
}

async fn send(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    path: &str,
    fx: &HashMap<&'static str, i64>,
) -> (reqwest::StatusCode, Value) {
    if path.ends_with("/imports") || path.ends_with("/upload") {
        let (s, b) = app
            .raw(
                token.unwrap_or(""),
                &method.to_ascii_uppercase(),
                path,
                "text/csv",
                "name,kana,tel,remarks\nA,エー,0312349999,\n".into(),
            )
            .await;
        return (s, serde_json::from_slice(&b).unwrap_or(Value::Null));
    }
    let body = body_for(method, path, fx);
    app.call(token, method, path, body.as_ref()).await
}

fn ordered_ops() -> Vec<api::Op> {
    let mut ops = api::operations();
    // Deletes last, and children before parents, so that fixtures live through the sweep.
    ops.sort_by_key(|o| (o.method == "delete", o.method == "delete" && o.path.starts_with("/campaigns")));
    ops.retain(|o| o.path != "/auth/logout");
    ops
}

pub async fn every_endpoint_checks_roles(app: TestApp) {
    let t = app.tenant("roles").await;
    let fx = fixtures(&app, &t).await;
    let mut checked = 0;
    for op in ordered_ops() {
        let Some(roles) = &op.roles else { continue };
        let path = fill(&op.path, &fx).unwrap_or_else(|| panic!("no fixture for {}", op.path));
        for role in Role::ALL {
            let (status, body) = send(&app, t.token(role), op.method, &path, &fx).await;
            let s = status.as_u16();
            let what = format!("{} {} as {}: {} {}", op.method, path, role.as_str(), s, body);
            if roles.contains(&role) {
                assert!(s != 403 && s != 401 && s < 500, "allowed but refused or failed: {what}");
                if op.method == "get" && !path.contains("errors.csv") {
                    assert_eq!(s, 200, "allowed read: {what}");
                }
            } else {
                assert_eq!(s, 403, "refused role: {what}");
                assert_eq!(body["error"]["code"], "forbidden", "{what}");
            }
            checked += 1;
        }
        // No token at all: 401 on every protected operation.
        let (status, _) = send(&app, None, op.method, &path, &fx).await;
        assert_eq!(status.as_u16(), 401, "{} {} without a token", op.method, path);
    }
    assert!(checked > 400, "the sweep covered only {checked} calls");
}

pub async fn foreign_ids_answer_404(app: TestApp) {
    let a = app.tenant("alpha").await;
    let b = app.tenant("bravo").await;
    let fx = fixtures(&app, &a).await;
    let b_mgr = b.mgr();
    let mut checked = 0;
    for op in ordered_ops() {
        if op.roles.is_none() {
            continue;
        }
        let path = fill(&op.path, &fx).expect("fixture");
        let (status, body) = send(&app, b_mgr, op.method, &path, &fx).await;
        if op.path.contains("{id}") {
            assert_eq!(status.as_u16(), 404, "{} {} from another tenant: {}", op.method, path, body);
            checked += 1;
        } else if op.method == "get" && body.get("items").is_some() {
            // Lists never show the other tenant's records.
            let own = fx.get(op.path.as_str()).copied();
            for item in body["items"].as_array().expect("items") {
                assert_ne!(
                    Some(item["id"].as_i64().unwrap_or(-1)),
                    own,
                    "{} leaks a record of another tenant",
                    op.path
                );
            }
        }
    }
    assert!(checked >= 50, "only {checked} id operations checked");
    // A's records are still there and unchanged for A.
    let v = expect(app.call(a.mgr(), "get", &format!("/campaigns/{}", fx["/campaigns"]), None).await, 200);
    assert_eq!(v["name"], "fx");
    // Referencing another tenant's record in a body is refused like a missing one.
    let body = json!({"campaign_id": fx["/campaigns"], "name": "x", "start_date": "2026-12-01"});
    let e = expect(app.call(b_mgr, "post", "/batches", Some(&body)).await, 422);
    assert_eq!(e["error"]["field"], "campaign_id");
    let body = json!({"user_id": b.user(Role::Op), "resource_kind": "campaign", "resource_id": fx["/campaigns"]});
    let e = expect(app.call(b_mgr, "post", "/grants", Some(&body)).await, 422);
    assert_eq!(e["error"]["field"], "resource_id");
    // 発番号: another tenant's caller ID is no caller ID of B's agents.
    let body = json!({"lead_id": fx["/leads"], "caller_id": fx["/caller-ids"]});
    let e = expect(app.call(b_mgr, "post", "/agent/dial", Some(&body)).await, 422);
    assert_eq!(e["error"]["field"], "caller_id");
    let own = expect(app.call(a.mgr(), "get", "/agent/caller-ids", None).await, 200);
    assert!(own["items"].as_array().expect("items").iter().any(|c| c["id"] == fx["/caller-ids"]), "{own}");
    // B's user list holds B's users and none of A's.
    let users = expect(app.call(b_mgr, "get", "/users?limit=500", None).await, 200);
    let a_users: Vec<i64> = a.users.values().map(|(id, _)| *id).chain([fx["/users"]]).collect();
    let listed: Vec<i64> = users["items"].as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert!(listed.len() >= 5 && listed.iter().all(|id| !a_users.contains(id)), "{listed:?} vs {a_users:?}");
}

pub async fn grants_limit_what_op_biz_by_see(app: TestApp) {
    let t = app.tenant("grants").await;
    let mgr = t.mgr();
    let mk = |name: &str| json!({"name": name});
    let c1 = expect(app.call(mgr, "post", "/campaigns", Some(&mk("one"))).await, 201)["id"].as_i64().unwrap();
    let c2 = expect(app.call(mgr, "post", "/campaigns", Some(&mk("two"))).await, 201)["id"].as_i64().unwrap();
    let op = t.token(Role::Op);
    assert_eq!(expect(app.call(op, "get", "/campaigns", None).await, 200)["total"], 0);
    expect(app.call(op, "get", &format!("/campaigns/{c1}"), None).await, 404);
    // Granted to a dialing group the agent belongs to.
    let g = expect(app.call(mgr, "post", "/dialing-groups", Some(&mk("g"))).await, 201)["id"].as_i64().unwrap();
    expect(
        app.call(mgr, "put", &format!("/dialing-groups/{g}/agents"), Some(&json!({"user_ids": [t.user(Role::Op)]})))
            .await,
        200,
    );
    expect(
        app.call(mgr, "post", "/grants", Some(&json!({"group_id": g, "resource_kind": "campaign", "resource_id": c1})))
            .await,
        201,
    );
    let seen = expect(app.call(op, "get", "/campaigns", None).await, 200);
    assert_eq!(seen["total"], 1);
    assert_eq!(seen["items"][0]["id"], c1);
    expect(app.call(op, "get", &format!("/campaigns/{c2}"), None).await, 404);
    // SV sees the whole tenant.
    assert_eq!(expect(app.call(t.token(Role::Sv), "get", "/campaigns", None).await, 200)["total"], 2);
    // An SV manages agents but never an MGR or SV account.
    let e = app
        .call(
            t.token(Role::Sv),
            "post",
            "/users",
            Some(&json!({"login": "boss", "display_name": "b", "role": "MGR", "password": "Password-1"})),
        )
        .await;
    assert_eq!(e.0.as_u16(), 403);
    let e = app
        .call(t.token(Role::Sv), "patch", &format!("/users/{}", t.user(Role::Mgr)), Some(&json!({"display_name": "x"})))
        .await;
    assert_eq!(e.0.as_u16(), 403);
}

pub async fn tokens_expire_and_logout_ends_them(app: TestApp) {
    let t = app.tenant("tok").await;
    let (token, _, _) = store::accounts::login(&app.db, "tok", "mgr", "pw-mgr-123", store::now_ms() - 10_000, 5_000)
        .await
        .expect("login");
    expect(app.call(Some(&token), "get", "/me", None).await, 401);
    let me = expect(app.call(t.mgr(), "get", "/me", None).await, 200);
    assert_eq!(me["role"], "MGR");
    assert_eq!(app.call(t.mgr(), "post", "/auth/logout", None).await.0.as_u16(), 204);
    expect(app.call(t.mgr(), "get", "/me", None).await, 401);
    // Wrong password, unknown user and unknown tenant answer alike.
    for body in [
        json!({"tenant": "tok", "login": "mgr", "password": "nope"}),
        json!({"tenant": "tok", "login": "nobody", "password": "nope"}),
        json!({"tenant": "nope", "login": "mgr", "password": "pw-mgr-123"}),
    ] {
        let e = expect(app.call(None, "post", "/auth/login", Some(&body)).await, 401);
        assert_eq!(e["error"]["code"], "bad_credentials");
    }
    // The stored hash is argon2id, never the password.
    let hash: String = store::sqlx::Row::try_get(
        &store::sqlx::query("SELECT password_hash FROM users WHERE login = 'op' AND tenant_id = $1")
            .bind(t.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap(),
        "password_hash",
    )
    .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("pw-op-123"));
}

crate::both!(
    every_endpoint_checks_roles,
    foreign_ids_answer_404,
    grants_limit_what_op_biz_by_see,
    tokens_expire_and_logout_ends_them
);
