//! Issue 18, as an attacker tries it: login limits and lockout (ログインロック) with the audit trail,
//! the login and password rules of CloudCallCenter 11.1, sessions ended by a password change and a
//! disable, the tenant's token lifetime, body limits and content types, and the connection
//! time-outs, caps and bounded shutdown of the API's accept loop.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use api::guard::{LoginGuard, LoginLimits};
use api::serve::ServeLimits;
use serde_json::{json, Value};
use store::accounts::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{expect, Backend, TestApp};

fn limited(per_source: u32, per_account: u32, lockout_after: i64) -> api::Config {
    api::Config {
        logins: LoginGuard::new(LoginLimits {
            per_source,
            per_account,
            lockout_after,
            window: Duration::from_secs(300),
            ..LoginLimits::default()
        }),
        ..api::Config::default()
    }
}

/// A client whose connections leave from `ip` (any 127.x.y.z is this host).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<IpAddr>().ok()).build().expect("client")
}

async fn login_from(
    app: &TestApp,
    http: &reqwest::Client,
    tenant: &str,
    login: &str,
    password: &str,
) -> (u16, Value, Option<String>) {
    let r = http
        .post(format!("{}/auth/login", app.base))
        .json(&json!({"tenant": tenant, "login": login, "password": password}))
        .send()
        .await
        .expect("login sent");
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, r.json().await.unwrap_or(Value::Null), retry)
}

async fn audit(app: &TestApp, token: Option<&str>, query: &str) -> Vec<Value> {
    let v = expect(app.call(token, "get", &format!("/audit-events?{query}"), None).await, 200);
    v["items"].as_array().expect("items").clone()
}

pub async fn wrong_passwords_lock_the_account_until_an_mgr_unlocks_it(backend: Backend) {
    let app = TestApp::start_with(backend, limited(1000, 8, 3)).await;
    let t = app.tenant("lock").await;
    let http = client_from("127.0.0.1");
    // Three wrong passwords: 401 each, and the third locks the account.
    for _ in 0..3 {
        let (s, v, _) = login_from(&app, &http, "lock", "op", "Wrong-pass1").await;
        assert_eq!(s, 401, "{v}");
    }
    let op = t.user(Role::Op);
    let user = expect(app.call(t.mgr(), "get", &format!("/users/{op}"), None).await, 200);
    assert!(user["locked_at"].is_string(), "locked: {user}");
    // The right password now answers 423 (and only the right one says so); a wrong one stays 401.
    let (s, v, _) = login_from(&app, &http, "lock", "op", "pw-op-123").await;
    assert_eq!((s, v["error"]["code"].as_str()), (423, Some("account_locked")), "{v}");
    assert_eq!(login_from(&app, &http, "lock", "op", "Wrong-pass1").await.0, 401);
    // The account's attempts of the window are spent (3 wrong, 1 right but locked, 1 wrong = 5 of 8).
    for _ in 0..3 {
        assert_eq!(login_from(&app, &http, "lock", "op", "Wrong-pass1").await.0, 401);
    }
    let (s, v, retry) = login_from(&app, &http, "lock", "op", "pw-op-123").await;
    assert_eq!(s, 429, "{v}");
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=300).contains(&retry), "{retry}");
    // The audit trail, for MGR only: the failures, the lock; OP may not read it.
    let locked = audit(&app, t.mgr(), "kind=locked").await;
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!((locked[0]["user_id"].as_i64(), locked[0]["login"].as_str()), (Some(op), Some("op")));
    assert_eq!(locked[0]["source"], "127.0.0.1");
    assert!(audit(&app, t.mgr(), "kind=login_failed&login=op").await.len() >= 6);
    assert!(!audit(&app, t.mgr(), "kind=login").await.is_empty(), "the harness's logins are there");
    assert_eq!(app.call(t.token(Role::Op), "get", "/audit-events", None).await.0.as_u16(), 403);
    assert_eq!(app.call(t.token(Role::Sv), "post", &format!("/users/{op}/unlock"), None).await.0.as_u16(), 403);
    // The MGR unlocks it: the lock, the failures and the account's window are gone.
    let user = expect(app.call(t.mgr(), "post", &format!("/users/{op}/unlock"), None).await, 200);
    assert!(user["locked_at"].is_null(), "{user}");
    let (s, v, _) = login_from(&app, &http, "lock", "op", "pw-op-123").await;
    assert_eq!(s, 200, "{v}");
    let unlocked = audit(&app, t.mgr(), "kind=unlocked").await;
    assert_eq!(unlocked[0]["actor_user_id"].as_i64(), Some(t.user(Role::Mgr)));
    // Another tenant's user: unlocking it is 404, and its audit trail is not ours.
    let other = app.tenant("lockb").await;
    assert_eq!(
        app.call(t.mgr(), "post", &format!("/users/{}/unlock", other.user(Role::Op)), None).await.0.as_u16(),
        404
    );
    let theirs = audit(&app, other.mgr(), "limit=500").await;
    assert!(theirs.iter().all(|e| e["login"] != "op" || e["kind"] == "login"), "{theirs:?}");
    assert!(audit(&app, other.mgr(), "kind=locked").await.is_empty());
}

pub async fn a_source_address_is_limited_and_others_are_not(backend: Backend) {
    let app = TestApp::start_with(backend, limited(5, 100, 100)).await;
    let _t = app.tenant("src").await;
    let attacker = client_from("127.0.0.7");
    for i in 0..5 {
        let (s, v, _) = login_from(&app, &attacker, "src", &format!("nobody{i}"), "Wrong-pass1").await;
        assert_eq!(s, 401, "{v}");
    }
    let (s, v, retry) = login_from(&app, &attacker, "src", "mgr", "pw-mgr-123").await;
    assert_eq!(s, 429, "the source is refused even with a right password: {v}");
    assert!(retry.is_some(), "Retry-After");
    // Another address is answered as usual, and its right password works.
    let (s, v, _) = login_from(&app, &client_from("127.0.0.8"), "src", "mgr", "pw-mgr-123").await;
    assert_eq!(s, 200, "{v}");
}

pub async fn login_ids_and_passwords_follow_the_rules_when_set(app: TestApp) {
    let t = app.tenant("rules").await;
    let mgr = t.mgr();
    let post =
        |login: &str, password: &str| json!({"login": login, "display_name": "x", "role": "OP", "password": password});
    for bad in ["ab", "abcdefghijklmnop", "op_1", "op-1", "taro yamada", "ｔａｒｏ", "太郎さん"] {
        let e = expect(app.call(mgr, "post", "/users", Some(&post(bad, "Passw0rdX"))).await, 422);
        assert_eq!(e["error"]["field"], "login", "{bad}: {e}");
        assert_eq!(e["error"]["message"], api::resources::LOGIN_RULE);
    }
    for bad in ["Short1a", "alllower12", "ALLUPPER12", "NoDigitsHere", "１２３Ａｂｃｄｅｆ"] {
        let e = expect(app.call(mgr, "post", "/users", Some(&post("taro", bad))).await, 422);
        assert_eq!(e["error"]["field"], "password", "{bad}: {e}");
        assert_eq!(e["error"]["message"], api::resources::PASSWORD_RULE);
    }
    let u = expect(app.call(mgr, "post", "/users", Some(&post("Taro01", "Passw0rdX"))).await, 201);
    let id = u["id"].as_i64().expect("id");
    let e = expect(app.call(mgr, "patch", &format!("/users/{id}"), Some(&json!({"password": "password"}))).await, 422);
    assert_eq!(e["error"]["field"], "password");
    expect(app.call(mgr, "patch", &format!("/users/{id}"), Some(&json!({"password": "Newpassw0rd"}))).await, 200);
    let body = json!({"tenant": "rules", "login": "Taro01", "password": "Newpassw0rd"});
    expect(app.call(None, "post", "/auth/login", Some(&body)).await, 200);
}

async fn login(app: &TestApp, tenant: &str, login: &str, password: &str) -> String {
    let body = json!({"tenant": tenant, "login": login, "password": password});
    expect(app.call(None, "post", "/auth/login", Some(&body)).await, 200)["token"].as_str().expect("token").to_string()
}

pub async fn a_password_change_and_a_disable_end_sessions(app: TestApp) {
    let t = app.tenant("sess").await;
    let mgr = t.mgr();
    let op = t.user(Role::Op);
    let op_token = t.token(Role::Op).expect("op token");
    expect(app.call(Some(op_token), "get", "/me", None).await, 200);
    // An MGR sets the OP's password: the OP's session ends.
    expect(app.call(mgr, "patch", &format!("/users/{op}"), Some(&json!({"password": "Another1pw"}))).await, 200);
    expect(app.call(Some(op_token), "get", "/me", None).await, 401);
    // The MGR changes its own: its other sessions end, the one it used stays.
    let other = login(&app, "sess", "mgr", "pw-mgr-123").await;
    let m = t.user(Role::Mgr);
    expect(app.call(mgr, "patch", &format!("/users/{m}"), Some(&json!({"password": "Mgr-pass-2"}))).await, 200);
    expect(app.call(mgr, "get", "/me", None).await, 200);
    expect(app.call(Some(&other), "get", "/me", None).await, 401);
    // A disable ends the sessions for good: re-enabling brings none back.
    let op_token = login(&app, "sess", "op", "Another1pw").await;
    // A new role holds from the next request, though the session was just read (and cached).
    assert_eq!(expect(app.call(Some(&op_token), "get", "/me", None).await, 200)["role"], "OP");
    expect(app.call(mgr, "patch", &format!("/users/{op}"), Some(&json!({"role": "SV"}))).await, 200);
    assert_eq!(expect(app.call(Some(&op_token), "get", "/me", None).await, 200)["role"], "SV");
    expect(app.call(mgr, "patch", &format!("/users/{op}"), Some(&json!({"disabled": true}))).await, 200);
    expect(app.call(Some(&op_token), "get", "/me", None).await, 401);
    expect(app.call(mgr, "patch", &format!("/users/{op}"), Some(&json!({"disabled": false}))).await, 200);
    expect(app.call(Some(&op_token), "get", "/me", None).await, 401);
    // A deleted user's session ends with it, though it was just read (and cached).
    let body = json!({"login": "gone", "display_name": "gone", "role": "OP", "password": "Gone-pass-1"});
    let gone = expect(app.call(mgr, "post", "/users", Some(&body)).await, 201)["id"].as_i64().expect("id");
    let gone_token = login(&app, "sess", "gone", "Gone-pass-1").await;
    expect(app.call(Some(&gone_token), "get", "/me", None).await, 200);
    assert_eq!(app.call(mgr, "delete", &format!("/users/{gone}"), None).await.0.as_u16(), 204);
    expect(app.call(Some(&gone_token), "get", "/me", None).await, 401);
    let kinds: Vec<String> = audit(&app, mgr, "limit=500")
        .await
        .iter()
        .filter(|e| e["user_id"].as_i64() == Some(op))
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(kinds.contains(&"password_changed".into()) && kinds.contains(&"disabled".into()), "{kinds:?}");
}

pub async fn the_token_lifetime_is_the_tenants(app: TestApp) {
    let t = app.tenant("ttl").await;
    let mgr = t.mgr();
    let ten = expect(app.call(mgr, "get", "/tenant", None).await, 200);
    assert_eq!(ten["session_ttl_minutes"], 720);
    let e = expect(app.call(mgr, "patch", "/tenant", Some(&json!({"session_ttl_minutes": 4}))).await, 422);
    assert_eq!(e["error"]["field"], "session_ttl_minutes");
    expect(app.call(mgr, "patch", "/tenant", Some(&json!({"session_ttl_minutes": 30}))).await, 200);
    let _ = login(&app, "ttl", "sv", "pw-sv-123").await;
    let row = store::sqlx::query(
        "SELECT s.expires_at - s.created_at AS ttl FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE u.login = 'sv' AND s.tenant_id = $1 ORDER BY s.created_at DESC LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&app.db.pool)
    .await
    .expect("session");
    assert_eq!(store::sqlx::Row::try_get::<i64, _>(&row, "ttl").expect("ttl"), 30 * 60_000);
    assert_eq!(
        app.call(t.token(Role::Sv), "patch", "/tenant", Some(&json!({"session_ttl_minutes": 60}))).await.0.as_u16(),
        403
    );
}

/// Sends raw bytes on a new connection and reads what comes back until the server closes or
/// `within` passes: (bytes read, closed by the server).
async fn raw_exchange(addr: &str, request: &[u8], within: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).to_string(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).to_string(), false),
        }
    }
}

pub async fn bodies_are_limited_and_json_needs_its_type(app: TestApp) {
    let t = app.tenant("body").await;
    let mgr = t.mgr().expect("mgr");
    // A JSON body over 1 MiB: 413, not 400.
    // The server answers from the Content-Length and closes without reading the body, so a
    // client still sending may see the connection close before it reads the 413: it tries again.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 << 20));
    let mut answered = None;
    for _ in 0..5 {
        let sent = app
            .http
            .post(format!("{}/campaigns", app.base))
            .bearer_auth(mgr)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await;
        match sent {
            Ok(r) => {
                answered = Some(r.status().as_u16());
                break;
            }
            Err(e) => assert!(e.is_request(), "only a closed connection may stop the request: {e}"),
        }
    }
    assert_eq!(answered, Some(413));
    // JSON without a JSON content type: 415.
    let (s, b) = app.raw(mgr, "POST", "/campaigns", "text/plain", b"{\"name\": \"c\"}".to_vec()).await;
    assert_eq!(s.as_u16(), 415, "{}", String::from_utf8_lossy(&b));
    let (s, _) =
        app.raw(mgr, "POST", "/campaigns", "application/json; charset=utf-8", b"{\"name\": \"c\"}".to_vec()).await;
    assert_eq!(s.as_u16(), 201);
    // An upload declaring 200 MB is refused before a byte of its body is sent.
    let (_, _, list) = crate::harness::scaffold(&app, &t, json!({}), false).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /lists/{list}/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {mgr}\r\nContent-Type: text/csv\r\nContent-Length: 200000000\r\n\r\n"
    );
    let started = Instant::now();
    let (reply, _) = raw_exchange(&addr, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(3), "answered at once");
    // A JSON body declaring 10 MB, likewise.
    let head = format!(
        "POST /campaigns HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {mgr}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{{"
    );
    let (reply, _) = raw_exchange(&addr, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // A number list above the JSON limit (and axum's default 2 MB) is an upload: accepted to 5 MB.
    let mut csv = String::new();
    let note = "備考".repeat(30);
    for i in 0..20_000 {
        csv.push_str(&format!("03{:08},{note}\n", 20_000_000 + i));
    }
    assert!(csv.len() > 2 << 20, "{}", csv.len());
    let (s, b) = app.raw(mgr, "POST", "/dnc-numbers/upload", "text/csv", csv.into_bytes()).await;
    assert_eq!(s.as_u16(), 200, "{}", String::from_utf8_lossy(&b));
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(v["added"], 20_000);
    let (s, _) = app.raw(mgr, "POST", "/dnc-numbers/upload", "text/csv", vec![b'0'; 6 << 20]).await;
    assert_eq!(s.as_u16(), 413);
}

/// The API on port 0 with `limits`; returns its address and the handle of its shutdown.
async fn serve_limited(
    limits: ServeLimits,
    config: api::Config,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (url, dir) = crate::harness::fresh_database(Backend::Sqlite).await;
    let db = store::Db::connect(&url).await.expect("database");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = api::build(db, config);
    let task = tokio::spawn(async move {
        let _dir = dir;
        api::serve::serve_with(listener, app, limits, async move {
            let _ = stop_rx.await;
        })
        .await
        .expect("serve");
    });
    (addr, stop_tx, task)
}

/// Opens a connection that sends one byte of a request head every `every`, forever; returns when
/// the server closes it (or after `cap`), with how long that took.
async fn slow_head(addr: String, every: Duration, cap: Duration) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut buf = [0u8; 256];
    for i in 0.. {
        if started.elapsed() > cap {
            break;
        }
        let byte = if i < head.len() { head[i] } else { b'a' };
        if s.write_all(&[byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_capped() {
    let limits = ServeLimits {
        header_read_timeout: Duration::from_millis(800),
        body_idle_timeout: Duration::from_millis(800),
        max_connections_per_source: 6,
        max_connections: 100,
        shutdown_grace: Duration::from_millis(500),
        ..ServeLimits::default()
    };
    let (addr, stop, task) = serve_limited(limits, api::Config::default()).await;
    // Four slow heads, one byte every 200 ms: each closed within the head time-out (plus slack),
    // while a normal request is answered meanwhile.
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(slow_head(addr.clone(), Duration::from_millis(200), Duration::from_secs(10))))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = reqwest::get(format!("http://{addr}/healthz")).await.expect("healthz");
    assert_eq!(ok.status().as_u16(), 200);
    for s in slow {
        let took = s.await.expect("slow client");
        assert!(took < Duration::from_secs(3), "a slow head lived {took:?}");
    }
    // A kept-alive connection sitting idle is closed after the same time-out.
    let (reply, closed) =
        raw_exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(4)).await;
    assert!(reply.starts_with("HTTP/1.1 200") && closed, "{reply} closed={closed}");
    // A body that stops coming: the request fails and the connection closes.
    let started = Instant::now();
    let (reply, closed) = raw_exchange(
        &addr,
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"tenant\"",
        Duration::from_secs(5),
    )
    .await;
    assert!(closed && started.elapsed() < Duration::from_secs(4), "{reply}");
    assert!(!reply.contains(" 500 ") && !reply.contains(" 200 "), "{reply}");
    // Seven connections from one address: the seventh is closed at once.
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (reply, closed) =
        raw_exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_millis(500)).await;
    assert!(closed && reply.is_empty(), "over the cap: {reply:?}");
    drop(held);
    // Shutdown with a connection still sending its head slowly: bounded by the grace period.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _slow = tokio::spawn(slow_head(addr.clone(), Duration::from_millis(100), Duration::from_secs(30)));
    let mut sse = TcpStream::connect(&addr).await.expect("connect");
    sse.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(3), task).await.expect("shutdown within its grace").expect("task");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_limits_count_the_forwarded_client() {
    let limits = ServeLimits { trusted_proxies: vec!["127.0.0.0/8".parse().expect("cidr")], ..ServeLimits::default() };
    let (addr, _stop, _task) = serve_limited(limits, limited(2, 100, 100)).await;
    let http = reqwest::Client::new();
    let attempt = |client: &'static str| {
        let (http, addr) = (http.clone(), addr.clone());
        async move {
            http.post(format!("http://{addr}/auth/login"))
                .header("x-forwarded-for", format!("192.0.2.1, {client}"))
                .json(&json!({"tenant": "none", "login": "nobody", "password": "Wrong-pass1"}))
                .send()
                .await
                .expect("login")
                .status()
                .as_u16()
        }
    };
    assert_eq!((attempt("198.51.100.1").await, attempt("198.51.100.1").await), (401, 401));
    assert_eq!(attempt("198.51.100.1").await, 429, "that client used its attempts");
    // Another client behind the same proxy is not refused (what it claims for itself, the left
    // address, is not believed: both claim 192.0.2.1).
    assert_eq!(attempt("198.51.100.2").await, 401);
}

mod logins {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lock_sqlite() {
        super::wrong_passwords_lock_the_account_until_an_mgr_unlocks_it(crate::harness::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lock_postgres() {
        super::wrong_passwords_lock_the_account_until_an_mgr_unlocks_it(crate::harness::Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn source_sqlite() {
        super::a_source_address_is_limited_and_others_are_not(crate::harness::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn source_postgres() {
        super::a_source_address_is_limited_and_others_are_not(crate::harness::Backend::Postgres).await
    }
}

crate::both!(
    login_ids_and_passwords_follow_the_rules_when_set,
    a_password_change_and_a_disable_end_sessions,
    the_token_lifetime_is_the_tenants,
    bodies_are_limited_and_json_needs_its_type
);
