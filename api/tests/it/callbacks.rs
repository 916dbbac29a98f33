//! Callbacks (折り返し呼) and the common phone book (共通電話帳) through the API: registration from a
//! call and by hand, the claim race (exactly one of two agents wins, the other gets the seed's 409),
//! roles, the status rule, memos, the list's filters and sorting, the phone book's CSV import.

use serde_json::{json, Value};
use store::accounts::{self, NewUser, Role};

use crate::harness::{expect, unique, Tenant, TestApp};

const CONFLICT: &str = "このレコードは既に更新されています。(Code:409)";

/// Another logged-in user of the tenant: (id, token).
pub async fn user(app: &TestApp, code: &str, tenant: i64, role: Role) -> (i64, String) {
    let login = unique("u");
    let password = format!("pw-{login}");
    let uid = accounts::create_user(
        &app.db,
        &NewUser { tenant_id: tenant, login: &login, display_name: &login, role, password: &password },
        store::now_ms(),
    )
    .await
    .expect("user");
    let body = json!({"tenant": code, "login": login, "password": password});
    let reply = expect(app.call(None, "post", "/auth/login", Some(&body)).await, 200);
    (uid, reply["token"].as_str().expect("token").to_string())
}

/// A call record as the dialer writes it: returns its id.
pub async fn call(app: &TestApp, t: &Tenant, campaign: Option<i64>, agent: i64, tel: &str, at_ms: i64) -> i64 {
    store::sqlx::query(
        "INSERT INTO call_records (tenant_id, campaign_id, agent_user_id, tel, started_at, result) VALUES ($1, $2, $3, $4, $5, 'no_entry') RETURNING id",
    )
    .bind(t.id)
    .bind(campaign)
    .bind(agent)
    .bind(tel)
    .bind(at_ms)
    .fetch_one(&app.db.pool)
    .await
    .and_then(|r| store::sqlx::Row::try_get(&r, "id"))
    .expect("call record")
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().expect("id")
}

async fn registered_from_a_call_and_by_hand(app: TestApp) {
    let t = app.tenant("cb1").await;
    let (mgr, sv, op) = (t.mgr(), t.token(Role::Sv), t.token(Role::Op));
    let campaign = id(&expect(app.call(mgr, "post", "/campaigns", Some(&json!({"name": "春の案内"}))).await, 201));
    expect(
        app.call(sv, "post", "/phone-book", Some(&json!({"number": "03-5555-0001", "name": "山田商店"}))).await,
        201,
    );
    // A call of last week, taken by the OP.
    let week_ago = store::now_ms() - 7 * 86_400_000;
    let c = call(&app, &t, Some(campaign), t.user(Role::Op), "0355550001", week_ago).await;
    let before = store::now_ms();
    let cb = expect(app.call(op, "post", "/callbacks", Some(&json!({"call_id": c}))).await, 201);
    assert_eq!(cb["number"], "0355550001");
    assert_eq!(cb["name"], "山田商店");
    assert_eq!(cb["campaign_id"], campaign);
    assert_eq!(cb["campaign_name"], "春の案内");
    assert_eq!(cb["call_record_id"], c);
    assert_eq!(cb["status"], "open");
    assert_eq!(cb["assignee_user_id"], Value::Null);
    assert_eq!(cb["version"], 1);
    let registered = chrono::DateTime::parse_from_rfc3339(cb["registered_at"].as_str().unwrap()).unwrap();
    assert!(registered.timestamp_millis() >= before - 1000, "registered now, not at the call's time: {cb}");
    // The call history names the callback (its 折り返し呼ID) and the phone book's name.
    let rec = expect(app.call(mgr, "get", &format!("/call-records/{c}"), None).await, 200);
    assert_eq!(rec["callback_id"], cb["id"]);
    assert_eq!(rec["phone_book_name"], "山田商店");
    // The + again: the same callback, not a second one.
    let again = expect(app.call(mgr, "post", "/callbacks", Some(&json!({"call_id": c}))).await, 200);
    assert_eq!(id(&again), id(&cb));
    // An OP registers only calls of its own history; a missing call names the field.
    let other = call(&app, &t, Some(campaign), t.user(Role::Sv), "0355550002", week_ago).await;
    let e = expect(app.call(op, "post", "/callbacks", Some(&json!({"call_id": other}))).await, 422);
    assert_eq!(e["error"]["field"], "call_id");
    // By hand: MGR and SV only; the number is checked like any number.
    let e = expect(app.call(op, "post", "/callbacks", Some(&json!({"number": "0311112222"}))).await, 403);
    assert_eq!(e["error"]["field"], "number");
    let e = expect(app.call(sv, "post", "/callbacks", Some(&json!({"number": "3111"}))).await, 422);
    assert_eq!(e["error"]["message"], "number:電話番号の先頭に0を入れてください");
    let hand = expect(
        app.call(
            sv,
            "post",
            "/callbacks",
            Some(&json!({"number": "090-1111-2222", "label": "請求", "memo": "午後希望", "assignee_user_id": t.user(Role::Op)})),
        )
        .await,
        201,
    );
    assert_eq!(hand["number"], "09011112222");
    assert_eq!(hand["name"], Value::Null);
    assert_eq!(hand["assignee_name"], "op");
    assert_eq!(hand["label"], "請求");
    // BIZ and BY see no callbacks.
    expect(app.call(t.token(Role::Biz), "get", "/callbacks", None).await, 403);
    expect(app.call(t.token(Role::By), "post", "/callbacks", Some(&json!({"call_id": c}))).await, 403);
    // Another tenant's callback is missing for them.
    let u = app.tenant("cb1x").await;
    for (m, p) in [("get", format!("/callbacks/{}", id(&cb))), ("post", format!("/callbacks/{}/assign", id(&cb)))] {
        expect(app.call(u.mgr(), m, &p, Some(&json!({}))).await, 404);
    }
    let e = expect(app.call(u.mgr(), "post", "/callbacks", Some(&json!({"call_id": c}))).await, 422);
    assert_eq!(e["error"]["field"], "call_id");
    assert_eq!(expect(app.call(u.mgr(), "get", "/callbacks", None).await, 200)["total"], 0);
}

/// Two agents take the same callback at once, many times: exactly one wins, the other gets the
/// seed's 409; never both, never a 5xx.
async fn two_agents_claim_at_once_exactly_one_wins(app: TestApp) {
    let t = app.tenant("cb2").await;
    let (a, a_tok) = user(&app, "cb2", t.id, Role::Op).await;
    let (b, b_tok) = user(&app, "cb2", t.id, Role::Op).await;
    let rounds = 40;
    let (mut a_wins, mut b_wins) = (0, 0);
    for round in 0..rounds {
        let n = format!("0300000{round:04}");
        let cb = expect(app.call(t.mgr(), "post", "/callbacks", Some(&json!({"number": n}))).await, 201);
        let path = format!("/callbacks/{}/assign", id(&cb));
        // Half the rounds name the version read (as the pages do), half do not.
        let body = if round % 2 == 0 { json!({"version": cb["version"]}) } else { json!({}) };
        let (ra, rb) = tokio::join!(
            app.call(Some(&a_tok), "post", &path, Some(&body)),
            app.call(Some(&b_tok), "post", &path, Some(&body))
        );
        let codes = (ra.0.as_u16(), rb.0.as_u16());
        let loser = match codes {
            (200, 409) => {
                a_wins += 1;
                assert_eq!(ra.1["assignee_user_id"], a);
                &rb.1
            }
            (409, 200) => {
                b_wins += 1;
                assert_eq!(rb.1["assignee_user_id"], b);
                &ra.1
            }
            other => panic!("round {round}: {other:?} {} {}", ra.1, rb.1),
        };
        assert_eq!(loser["error"]["message"], CONFLICT, "round {round}");
        let now = expect(app.call(t.mgr(), "get", &format!("/callbacks/{}", id(&cb)), None).await, 200);
        assert_eq!(now["version"], 2, "one write only: {now}");
        assert!(now["assignee_user_id"] == a || now["assignee_user_id"] == b);
    }
    assert_eq!(a_wins + b_wins, rounds);
    // A third agent, later, with the version it read before: 409 too.
    let (_, c_tok) = user(&app, "cb2", t.id, Role::Op).await;
    let cb = expect(app.call(t.mgr(), "post", "/callbacks", Some(&json!({"number": "0399990000"}))).await, 201);
    let path = format!("/callbacks/{}/assign", id(&cb));
    expect(app.call(Some(&a_tok), "post", &path, Some(&json!({"version": 1}))).await, 200);
    let e = expect(app.call(Some(&c_tok), "post", &path, Some(&json!({"version": 1}))).await, 409);
    assert_eq!(e["error"]["message"], CONFLICT);
    let e = expect(app.call(Some(&c_tok), "post", &path, Some(&json!({}))).await, 409);
    assert_eq!(e["error"]["message"], CONFLICT);
}

async fn status_memo_and_admin_assignment(app: TestApp) {
    let t = app.tenant("cb3").await;
    let (sv, op) = (t.token(Role::Sv), t.token(Role::Op));
    let (other, other_tok) = user(&app, "cb3", t.id, Role::Op).await;
    let cb = expect(app.call(sv, "post", "/callbacks", Some(&json!({"number": "0312345678"}))).await, 201);
    let path = format!("/callbacks/{}", id(&cb));
    // No assignee: the status cannot change.
    let e = expect(app.call(sv, "patch", &path, Some(&json!({"status": "done"}))).await, 422);
    assert_eq!(e["error"]["field"], "status");
    // The memo is saved on its own, by anyone who sees the callback.
    let v =
        expect(app.call(op, "patch", &path, Some(&json!({"memo": "折り返し希望 15時以降", "version": 1}))).await, 200);
    assert_eq!(v["memo"], "折り返し希望 15時以降");
    assert_eq!(v["version"], 2);
    // A stale version is the seed's 409.
    let e = expect(app.call(sv, "patch", &path, Some(&json!({"memo": "x", "version": 1}))).await, 409);
    assert_eq!(e["error"]["message"], CONFLICT);
    // Agents neither relabel nor assign others.
    expect(app.call(op, "patch", &path, Some(&json!({"label": "x"}))).await, 403);
    let e = expect(app.call(op, "post", &format!("{path}/assign"), Some(&json!({"user_id": other}))).await, 403);
    assert_eq!(e["error"]["field"], "user_id");
    // An SV assigns the colleague; the OP may not change the colleague's status, the colleague may.
    let v = expect(
        app.call(sv, "post", &format!("{path}/assign"), Some(&json!({"user_id": other, "version": 2}))).await,
        200,
    );
    assert_eq!(v["assignee_user_id"], other);
    expect(app.call(op, "patch", &path, Some(&json!({"status": "done"}))).await, 403);
    let v = expect(app.call(Some(&other_tok), "patch", &path, Some(&json!({"status": "done"}))).await, 200);
    assert_eq!(v["status"], "done");
    assert!(v["completed_at"].is_string());
    // Reassigned by a manager to the OP (PATCH with the version read), then reopened by the OP.
    let v = expect(
        app.call(
            t.mgr(),
            "patch",
            &path,
            Some(&json!({"assignee_user_id": t.user(Role::Op), "version": v["version"], "label": "請求"})),
        )
        .await,
        200,
    );
    assert_eq!(v["assignee_name"], "op");
    assert_eq!(v["label"], "請求");
    let v = expect(app.call(op, "patch", &path, Some(&json!({"status": "open"}))).await, 200);
    assert_eq!(v["status"], "open");
    assert_eq!(v["completed_at"], Value::Null);
    // Calling back is the assignee's, from a running call job (the dial itself: dialer tests).
    let dial = format!("/agent/callbacks/{}/dial", id(&cb));
    let e = expect(app.call(Some(&other_tok), "post", &dial, Some(&json!({}))).await, 409);
    assert_eq!(e["error"]["code"], "not_yours");
    let e = expect(app.call(op, "post", &dial, Some(&json!({}))).await, 409);
    assert_eq!(e["error"]["code"], "not_in_session");
    expect(app.call(t.token(Role::Biz), "post", &dial, Some(&json!({}))).await, 403);
    // Bad input names the field.
    for (body, field) in [
        (json!({"status": "closed"}), "status"),
        (json!({"memo": "x".repeat(5001)}), "memo"),
        (json!({"version": 0}), "version"),
        (json!({"assignee_user_id": 999_999}), "assignee_user_id"),
        (json!({"nope": 1}), "body"),
    ] {
        let (s, e) = app.call(t.mgr(), "patch", &path, Some(&body)).await;
        assert!(s.is_client_error(), "{body}: {s} {e}");
        if field != "body" {
            assert_eq!(e["error"]["field"], field, "{body}");
        }
    }
}

async fn list_filters_sorts_and_pages(app: TestApp) {
    let t = app.tenant("cb4").await;
    let mgr = t.mgr();
    expect(app.call(mgr, "post", "/phone-book", Some(&json!({"number": "0300000002", "name": "あおば"}))).await, 201);
    for (n, label) in [("0300000001", "請求"), ("0300000002", "解約"), ("0300000003", "請求")] {
        expect(app.call(mgr, "post", "/callbacks", Some(&json!({"number": n, "label": label}))).await, 201);
    }
    let list = |q: &str| {
        let q = q.to_string();
        let app = &app;
        async move { expect(app.call(mgr, "get", &format!("/callbacks?{q}"), None).await, 200) }
    };
    let numbers = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["number"].as_str().unwrap().to_string()).collect()
    };
    let all = list("").await;
    assert_eq!(all["total"], 3);
    assert_eq!(numbers(&all), ["0300000003", "0300000002", "0300000001"], "newest first");
    assert_eq!(all["newest_id"], all["items"][0]["id"]);
    assert_eq!(numbers(&list("sort=number").await), ["0300000001", "0300000002", "0300000003"]);
    assert_eq!(numbers(&list("sort=-number").await), ["0300000003", "0300000002", "0300000001"]);
    assert_eq!(numbers(&list("sort=name").await)[0], "0300000002", "named first, unnamed last");
    assert_eq!(numbers(&list("label=請求&sort=id").await), ["0300000001", "0300000003"]);
    assert_eq!(numbers(&list("q=あおば").await), ["0300000002"]);
    assert_eq!(numbers(&list("number=03-0000-0001").await), ["0300000001"]);
    assert_eq!(list("assignee=none").await["total"], 3);
    assert_eq!(list("status=done").await["total"], 0);
    assert_eq!(list("status=open,done&limit=2&offset=2").await["items"].as_array().unwrap().len(), 1);
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Tokyo).date_naive();
    assert_eq!(list(&format!("date_from={today}&date_to={today}")).await["total"], 3);
    assert_eq!(list(&format!("date_to={}", today.pred_opt().unwrap())).await["total"], 0);
    for bad in ["sort=nope", "status=closed", "limit=0", "date_from=2026-13-01", "nope=1", "assignee=x"] {
        let (s, e) = app.call(mgr, "get", &format!("/callbacks?{bad}"), None).await;
        assert_eq!(s.as_u16(), 400, "{bad}: {e}");
        assert!(e["error"]["field"].is_string(), "{bad}: {e}");
    }
}

async fn phone_book_csv_import(app: TestApp) {
    let t = app.tenant("pb1").await;
    let tok = t.token(Role::Sv).unwrap();
    expect(
        app.call(Some(tok), "post", "/phone-book", Some(&json!({"number": "0311110001", "name": "旧名"}))).await,
        201,
    );
    let (bytes, _, _) = encoding_rs::SHIFT_JIS
        .encode("name,tel,remarks\r\n新名,03-1111-0001,\r\n株式会社カケル,0120-000-111,本社\r\n,0311110003,\r\n");
    let (s, body) = app.raw(tok, "POST", "/phone-book/upload", "text/csv", bytes.into_owned()).await;
    assert_eq!(s.as_u16(), 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["added"], 1);
    assert_eq!(v["updated"], 1);
    assert_eq!(v["errors"], json!([{"row": 4, "message": "name:値がありません"}]));
    let list = expect(app.call(t.token(Role::Op), "get", "/phone-book?sort=number", None).await, 200);
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["株式会社カケル", "新名"]);
    // A bad file imports nothing and says why.
    let (s, body) = app.raw(tok, "POST", "/phone-book/upload", "text/csv", b"name,tel\n".to_vec()).await;
    assert_eq!(s.as_u16(), 422);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["message"], "ヘッダーのみでデータがありません");
    assert_eq!(v["error"]["field"], "body");
    // Roles: OP reads, does not write; another tenant's entry is missing.
    let e = app
        .raw(t.token(Role::Op).unwrap(), "POST", "/phone-book/upload", "text/csv", b"name,tel\nA,03\n".to_vec())
        .await;
    assert_eq!(e.0.as_u16(), 403);
    let entry = list["items"][0]["id"].as_i64().unwrap();
    let u = app.tenant("pb1x").await;
    expect(app.call(u.mgr(), "get", &format!("/phone-book/{entry}"), None).await, 404);
    assert_eq!(expect(app.call(u.mgr(), "get", "/phone-book", None).await, 200)["total"], 0);
}

crate::both!(
    registered_from_a_call_and_by_hand,
    two_agents_claim_at_once_exactly_one_wins,
    status_memo_and_admin_assignment,
    list_filters_sorts_and_pages,
    phone_book_csv_import,
);

/// The tenant's push channel in the test's API process: its notices go on the in-process bus, and a
/// follower of the tenant's agent:events hands them to the agents' and wallboards' streams (the
/// embedded default's wiring).
pub struct Pushed {
    stop: tokio::sync::watch::Sender<bool>,
    follower: tokio::task::JoinHandle<Result<(), bus::BusError>>,
}

impl Pushed {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.follower.await;
    }
}

/// An API with the push channel, and a tenant `code` with one user per role.
pub async fn with_push(backend: crate::harness::Backend, code: &str) -> (TestApp, Tenant, Pushed) {
    use bus::{BusConfig, MemoryBus};
    let bus = MemoryBus::new(BusConfig::default());
    let hub = api::desk::hub::AgentHub::default();
    let config =
        api::Config { commands: bus::Publisher::new(bus.clone()), agents: hub.clone(), ..api::Config::default() };
    let app = TestApp::start_with(backend, config).await;
    let t = app.tenant(code).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tenant = t.id as u64;
    let follower = tokio::spawn(async move { hub.follow(bus, tenant, None, stopped).await });
    (app, t, Pushed { stop, follower })
}

/// The wallboard's open callbacks: the first event of a supervisor's stream, then pushed on each
/// registration and change of status (through the agents' push channel every API process follows).
async fn the_wallboard_counts_open_callbacks(backend: crate::harness::Backend) {
    let (app, t, pushed) = with_push(backend, "cbwall").await;
    expect(app.call(t.mgr(), "post", "/callbacks", Some(&json!({"number": "0311110000"}))).await, 201);
    let ticket = expect(app.call(t.token(Role::Sv), "post", "/wallboard/tickets", None).await, 201)["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let mut resp = app
        .http
        .get(format!("{}/wallboard/stream?ticket={ticket}", app.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status().as_u16(), 200);
    let mut seen = String::new();
    let mut next_open = async |seen: &mut String| -> u64 {
        loop {
            if let Some(i) = seen.find("event: callbacks\ndata: ") {
                let rest = &seen[i + "event: callbacks\ndata: ".len()..];
                if let Some(end) = rest.find('\n') {
                    let v: Value = serde_json::from_str(&rest[..end]).expect("json");
                    *seen = rest[end..].to_string();
                    return v["open"].as_u64().expect("open");
                }
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
                .await
                .expect("an event within 10 s")
                .expect("the stream")
                .expect("more of the stream");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    assert_eq!(next_open(&mut seen).await, 1, "the first figure");
    let v = expect(app.call(t.mgr(), "post", "/callbacks", Some(&json!({"number": "0311110001"}))).await, 201);
    assert_eq!(next_open(&mut seen).await, 2, "a registration pushed");
    let path = format!("/callbacks/{}", id(&v));
    expect(app.call(t.mgr(), "patch", &path, Some(&json!({"assignee_user_id": t.user(Role::Op)}))).await, 200);
    expect(app.call(t.token(Role::Op), "patch", &path, Some(&json!({"status": "done"}))).await, 200);
    assert_eq!(next_open(&mut seen).await, 1, "a completion pushed");
    // An OP's board (its own tile only) carries no tenant figure.
    let ticket = expect(app.call(t.token(Role::Op), "post", "/wallboard/tickets", None).await, 201)["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let (s, body) = {
        let r = app.http.get(format!("{}/wallboard/stream?ticket={ticket}", app.base)).send().await.expect("stream");
        (r.status().as_u16(), r.text().await.expect("body"))
    };
    assert_eq!(s, 200);
    assert!(!body.contains("event: callbacks"), "{body}");
    pushed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_counts_open_callbacks_sqlite() {
    the_wallboard_counts_open_callbacks(crate::harness::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_counts_open_callbacks_postgres() {
    the_wallboard_counts_open_callbacks(crate::harness::Backend::Postgres).await
}
