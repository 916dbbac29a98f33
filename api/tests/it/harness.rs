//! Test harness: the real API on port 0 over a fresh database (a temporary SQLite file, or a new
//! PostgreSQL database per test), and tenants with one user of each role.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::StatusCode;
use serde_json::Value;
use store::accounts::{self, NewUser, Role};
use store::sqlx::Connection;
use store::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: Db,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    /// Where tests lay down files the API serves (recordings).
    pub files: tempfile::TempDir,
}

/// Admin connection used to create one database per PostgreSQL test.
pub fn pg_admin_url() -> String {
    std::env::var("KAKERU_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

static SEQ: AtomicU64 = AtomicU64::new(0);

pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{:x}{n}", std::process::id(), rand::random::<u32>())
}

/// A fresh database URL for the backend (the SQLite file lives in `dir`).
pub async fn fresh_database(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            (format!("sqlite:{}/kakeru.db", dir.path().display()), Some(dir))
        }
        Backend::Postgres => {
            let admin = pg_admin_url();
            let name = unique("kt_");
            let mut conn = store::sqlx::postgres::PgConnection::connect(&admin)
                .await
                .expect("PostgreSQL reachable at KAKERU_TEST_PG_URL");
            store::sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
            (format!("{base}/{name}"), None)
        }
    }
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        TestApp::start_with(backend, api::Config::default()).await
    }

    pub async fn start_with(backend: Backend, config: api::Config) -> TestApp {
        let (url, dir) = fresh_database(backend).await;
        let db = Db::connect(&url).await.expect("connect and migrate");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = api::build(db.clone(), config);
        tokio::spawn(async move {
            let _ = api::serve(listener, app, std::future::pending()).await;
        });
        let files = tempfile::tempdir().expect("temporary directory");
        TestApp { base: format!("http://{addr}"), http: reqwest::Client::new(), db, backend, _dir: dir, files }
    }

    /// Calls the API; returns the status and the JSON body (Null when empty or not JSON).
    pub async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn raw(
        &self,
        token: &str,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = self
            .http
            .request(m, format!("{}{}", self.base, path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = resp.status();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    /// A tenant with one user per role, each logged in.
    pub async fn tenant(&self, code: &str) -> Tenant {
        let now = store::now_ms();
        let id = store::tenancy::create_tenant(&self.db, code, code, "Asia/Tokyo", now).await.expect("tenant");
        // Tests run on any day: a national holiday must not close their floors.
        store::tenancy::set_national_holidays(&self.db, id, false).await.expect("holidays");
        let mut users = HashMap::new();
        for role in Role::ALL {
            let login = role.as_str().to_ascii_lowercase();
            let password = format!("pw-{login}-123");
            let uid = accounts::create_user(
                &self.db,
                &NewUser { tenant_id: id, login: &login, display_name: &login, role, password: &password },
                now,
            )
            .await
            .expect("user");
            let body = serde_json::json!({"tenant": code, "login": login, "password": password});
            let (status, reply) = self.call(None, "post", "/auth/login", Some(&body)).await;
            assert_eq!(status, StatusCode::OK, "login {reply}");
            let token = reply["token"].as_str().expect("token").to_string();
            users.insert(role, (uid, token));
        }
        Tenant { id, users }
    }
}

pub struct Tenant {
    pub id: i64,
    pub users: HashMap<Role, (i64, String)>,
}

impl Tenant {
    pub fn token(&self, role: Role) -> Option<&str> {
        self.users.get(&role).map(|(_, t)| t.as_str())
    }
    pub fn user(&self, role: Role) -> i64 {
        self.users[&role].0
    }
    pub fn mgr(&self) -> Option<&str> {
        self.token(Role::Mgr)
    }
}

/// A recording of the call record `call_record_id` (given `dialer_call_id` if it has none), as the
/// dialer reports it: a file of `bytes` under `app.files` and its row. Returns (id, path).
pub async fn recording(
    app: &TestApp,
    tenant: i64,
    call_record_id: i64,
    dialer_call_id: i64,
    started_at_ms: i64,
    bytes: &[u8],
) -> (i64, std::path::PathBuf) {
    store::sqlx::query("UPDATE call_records SET dialer_call_id = $1 WHERE id = $2 AND tenant_id = $3")
        .bind(dialer_call_id)
        .bind(call_record_id)
        .bind(tenant)
        .execute(&app.db.pool)
        .await
        .expect("call record");
    let tz = store::tenancy::parse_tz("Asia/Tokyo").expect("zone");
    let path = store::recordings::recording_path(app.files.path(), tenant, tz, started_at_ms, dialer_call_id);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::write(&path, bytes).expect("write recording");
    let rec = store::recordings::NewRecording {
        tenant_id: tenant,
        dialer_call_id,
        path: path.to_string_lossy().into_owned(),
        bytes: bytes.len() as i64,
        duration_ms: (bytes.len() as i64 - 58).max(0) / 16,
        started_at_ms,
        closed_at_ms: started_at_ms + 1000,
    };
    (store::recordings::closed(&app.db, &rec).await.expect("recording closed"), path)
}

/// A campaign (with extra fields), a batch and a list: returns (campaign, batch, list) ids.
pub async fn scaffold(app: &TestApp, t: &Tenant, campaign: Value, allow_duplicates: bool) -> (i64, i64, i64) {
    let mgr = t.mgr();
    let mut body = serde_json::json!({"name": unique("c")});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), campaign) {
        b.extend(extra);
    }
    let id = |v: Value| v["id"].as_i64().expect("id");
    let c = id(expect(app.call(mgr, "post", "/campaigns", Some(&body)).await, 201));
    // The batch's period (実施期間) holds today.
    let start = (chrono::Utc::now() - chrono::Duration::days(30)).date_naive().to_string();
    let batch = serde_json::json!({"campaign_id": c, "name": "b", "start_date": start});
    let b = id(expect(app.call(mgr, "post", "/batches", Some(&batch)).await, 201));
    let list = serde_json::json!({"batch_id": b, "name": "l", "allow_duplicates": allow_duplicates});
    let l = id(expect(app.call(mgr, "post", "/lists", Some(&list)).await, 201));
    (c, b, l)
}

/// A result (対話結果) on the campaign, which a call job needs to start (BIZTEL §3.1).
pub async fn a_result(app: &TestApp, t: &Tenant, campaign: i64) {
    let result = serde_json::json!({"campaign_id": campaign, "number": 99, "label": "その他"});
    expect(app.call(t.mgr(), "post", "/result-codes", Some(&result)).await, 201);
}

/// Asserts a status and returns the body, printing the body on failure.
#[track_caller]
pub fn expect(got: (StatusCode, Value), want: u16) -> Value {
    assert_eq!(got.0.as_u16(), want, "body: {}", got.1);
    got.1
}

/// Runs an async test body against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::TestApp::start($crate::harness::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::TestApp::start($crate::harness::Backend::Postgres).await).await
            }
        }
    )*};
}
