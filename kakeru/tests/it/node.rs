//! The node composition as the binary runs it: the embedded default (`kakeru api` alone runs the
//! control services, new tenants included), and production's split (`kakeru api --redis-url` and
//! `kakeru control` in two processes over a real Redis) with the wallboard followed across the
//! processes, resumable after a reconnect, and the control process killed with SIGKILL while the
//! API's commands flow.

use std::time::{Duration, Instant};

use bus::{Bus, Envelope, RedisBus, RedisBusConfig};
use serde_json::{json, Value};
use wire::AgentId;
use wire::{streams, ShardEvent};

use crate::console::until;
use crate::process::Role;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(p: &str) -> String {
    format!("{p}{}x{}", std::process::id(), store::now_ms())
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn call(&self, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn ok(&self, token: Option<&str>, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (s, v) = self.call(token, method, path, body).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        v
    }

    pub async fn login(&self, tenant: &str, login: &str, password: &str) -> String {
        let v = self
            .ok(None, "POST", "/auth/login", Some(json!({"tenant": tenant, "login": login, "password": password})), 200)
            .await;
        v["token"].as_str().expect("token").to_owned()
    }

    /// An OP with a phone in a running call job's dialing group: (OP token, OP id, job id).
    pub async fn floor(&self, tenant: &str, mgr: &str) -> (String, i64, i64) {
        let m = Some(mgr);
        let op = self
            .ok(
                m,
                "POST",
                "/users",
                Some(json!({"login": "op1", "display_name": "op1", "role": "OP", "password": "Op-password1"})),
                201,
            )
            .await["id"]
            .as_i64()
            .expect("op id");
        // The test runs on any day: a national holiday must not close its floor.
        self.ok(m, "PATCH", "/tenant", Some(json!({"closed_on_national_holidays": false})), 200).await;
        self.ok(
            m,
            "POST",
            "/phones",
            Some(json!({"sip_username": "op1", "password": "phone-password", "user_id": op})),
            201,
        )
        .await;
        let c = self
            .ok(
                m,
                "POST",
                "/campaigns",
                Some(json!({"name": unique("c"), "business_start": "00:00", "business_end": "23:59"})),
                201,
            )
            .await["id"]
            .as_i64()
            .expect("campaign");
        self.ok(m, "POST", "/result-codes", Some(json!({"campaign_id": c, "number": 1, "label": "成約"})), 201).await;
        let start = (chrono::Utc::now() - chrono::Duration::days(30)).date_naive().to_string();
        let b = self
            .ok(m, "POST", "/batches", Some(json!({"campaign_id": c, "name": "b", "start_date": start})), 201)
            .await["id"]
            .as_i64()
            .expect("batch");
        let l = self.ok(m, "POST", "/lists", Some(json!({"batch_id": b, "name": "l"})), 201).await["id"]
            .as_i64()
            .expect("list");
        let g = self.ok(m, "POST", "/dialing-groups", Some(json!({"name": unique("g")})), 201).await["id"]
            .as_i64()
            .expect("group");
        self.ok(m, "PUT", &format!("/dialing-groups/{g}/agents"), Some(json!({"user_ids": [op]})), 200).await;
        let j = self
            .ok(
                m,
                "POST",
                "/call-jobs",
                Some(json!({"campaign_id": c, "dialing_group_id": g, "name": "j", "list_ids": [l]})),
                201,
            )
            .await["id"]
            .as_i64()
            .expect("job");
        self.ok(m, "POST", &format!("/call-jobs/{j}/start"), None, 200).await;
        (self.login(tenant, "op1", "Op-password1").await, op, j)
    }

    /// Polls `GET /agents/{id}` until the state is `state`.
    pub async fn until_state(&self, token: &str, agent: i64, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.ok(Some(token), "GET", &format!("/agents/{agent}"), None, 200).await;
            if v["state"] == state {
                return v;
            }
            assert!(Instant::now() < deadline, "agent {agent} never {state}: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server-sent-events reader.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

/// One event: (id, event name, data).
pub type SseEvent = (String, String, Value);

impl Sse {
    pub async fn open(api: &Api, token: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = api
            .http
            .get(format!("{}/wallboard/stream", api.base))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.expect("stream");
        assert_eq!(resp.status().as_u16(), 200);
        Sse { resp, buf: String::new() }
    }

    /// The next event, within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((id, event, serde_json::from_str(&data).expect("event data is JSON")));
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Events until one satisfies `f` (within `within` in all).
    pub async fn until(&mut self, within: Duration, f: impl Fn(&SseEvent) -> bool) -> SseEvent {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.next(left).await.expect("no matching event in time");
            if f(&e) {
                return e;
            }
        }
    }
}

fn agent_change(agent: i64, state: &'static str) -> impl Fn(&SseEvent) -> bool {
    move |(_, event, data)| {
        event == "change"
            && data["tile"] == "agent"
            && data["agent_id"].as_i64() == Some(agent)
            && data["state"]["state"] == state
    }
}

async fn start_api(args: &[&str], env: &[(&str, &str)]) -> (Role, Api, String) {
    let mut all = vec!["api", "--listen", "127.0.0.1:0", "--seed-demo"];
    all.extend_from_slice(args);
    let mut p = Role::start(&all, env);
    let base = p.url_after("listening on");
    let login = p.wait_line("\"password\":\"");
    let password = login.split("\"password\":\"").nth(1).and_then(|s| s.split('"').next()).expect("password");
    let api = Api { base, http: reqwest::Client::new() };
    let mgr = api.login("demo", "admin", password).await;
    (p, api, mgr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_api_runs_control_for_every_tenant_new_ones_included() {
    let (mut p, api, mgr) = start_api(&[], &[]).await;
    p.wait_line("embedded: control service in this process");
    let (op, op_id, job) = api.floor("demo", &mgr).await;
    api.ok(Some(&op), "POST", "/agent/session", Some(json!({"call_job_id": job})), 202).await;
    api.until_state(&op, op_id, "ringing").await;
    // The wallboard is fed in the same process.
    let w = api.ok(Some(&mgr), "GET", "/wallboard", None, 200).await;
    assert!(w["agents"].as_array().unwrap().iter().any(|a| a["agent_id"].as_i64() == Some(op_id)), "{w}");

    // A tenant created while the node runs is served without a restart.
    let db_url = p.database_url();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kakeru"))
        .args(["tenant", "--code", "late", "--name", "late"])
        .env("DATABASE_URL", &db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("kakeru tenant");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let password = text.split("password=").nth(1).map(str::trim).expect("the new tenant's password").to_owned();
    let late_mgr = api.login("late", "admin", &password).await;
    let (late_op, late_id, late_job) = api.floor("late", &late_mgr).await;
    api.ok(Some(&late_op), "POST", "/agent/session", Some(json!({"call_job_id": late_job})), 202).await;
    api.until_state(&late_op, late_id, "ringing").await;
    api.ok(Some(&late_op), "DELETE", "/agent/session", None, 202).await;
    api.until_state(&late_op, late_id, "offline").await;
}

async fn shard_event(bus: &RedisBus, tenant: u64, e: ShardEvent) {
    let env = Envelope::new(tenant, 0, &e).expect("encode");
    bus.publish(&streams::shard_events(tenant), &env).await.expect("publish");
}

async fn tenant_id(api: &Api, token: &str) -> u64 {
    api.ok(Some(token), "GET", "/me", None, 200).await["tenant_id"].as_u64().expect("tenant id")
}

async fn delete_prefix(prefix: &str) {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut c = client.get_multiplexed_async_connection().await.expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut c).await.unwrap_or_default();
    for k in keys {
        let _: Result<(), _> = redis::cmd("DEL").arg(k).query_async(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_control_in_two_processes_over_redis() {
    let redis = redis_url();
    let mut probe = RedisBusConfig::new(redis.clone());
    probe.retry_max_attempts = 2;
    if let Err(e) = RedisBus::connect(probe).await {
        panic!("no Redis at {redis} (scripts/services.sh starts one): {e}");
    }
    let prefix = format!("{}:", unique("test:node:"));
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite:{}/kakeru.db", dir.path().display());
    let env = [("DATABASE_URL", db.as_str())];
    let (mut p, api, mgr) = start_api(&["--redis-url", &redis, "--redis-prefix", &prefix], &env).await;
    p.wait_line("bus on Redis");
    let control_args =
        ["control", "--redis-url", redis.as_str(), "--redis-prefix", prefix.as_str(), "--consumer", "node-test"];
    let mut control = Role::start(&control_args, &env);
    control.wait_line("serving every tenant");
    let tenant = tenant_id(&api, &mgr).await;
    let (op, op_id, job) = api.floor("demo", &mgr).await;
    let mut bus_cfg = RedisBusConfig::new(redis.clone());
    bus_cfg.prefix = prefix.clone();
    let bus = RedisBus::connect(bus_cfg).await.expect("redis");

    // The wallboard stream of the API, fed from the control process.
    let mut sse = Sse::open(&api, &mgr, None).await;
    let (_, event, _) = sse.next(Duration::from_secs(10)).await.expect("the first event");
    assert_eq!(event, "snapshot");
    api.ok(Some(&op), "POST", "/agent/session", Some(json!({"call_job_id": job})), 202).await;
    api.until_state(&op, op_id, "ringing").await;
    let (ringing_id, _, _) = sse.until(Duration::from_secs(10), agent_change(op_id, "ringing")).await;

    // Event to browser: the agent leg comes up (a shard event on Redis), the SSE change follows
    // within a second.
    let t0 = Instant::now();
    shard_event(&bus, tenant, ShardEvent::AgentLegUp { agent_id: AgentId(op_id as u64), shard: 0 }).await;
    let (ready_id, _, _) = sse.until(Duration::from_secs(5), agent_change(op_id, "ready")).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "shard event to SSE change took {took:?}");
    eprintln!("shard event -> control process -> Redis -> API process -> SSE: {took:?}");
    drop(sse);

    // A browser that reconnects with the id it had gets what it missed, not a snapshot.
    let mut again = Sse::open(&api, &mgr, Some(&ringing_id)).await;
    let (id, event, data) = again.next(Duration::from_secs(5)).await.expect("the replay");
    assert_eq!(event, "change", "{data}");
    assert!(id.parse::<u64>().unwrap() > ringing_id.parse::<u64>().unwrap());
    let replayed = again.until(Duration::from_secs(5), |(id, _, _)| *id == ready_id).await;
    assert_eq!(replayed.2["state"]["state"], "ready");
    drop(again);

    // kill -9 of the control process while the API's commands flow: nothing lost, nothing twice.
    let reason =
        api.ok(Some(&mgr), "GET", "/pause-reasons", None, 200).await["items"][0]["id"].as_i64().expect("reason");
    const CYCLES: usize = 30;
    for i in 0..CYCLES {
        api.ok(Some(&op), "POST", "/agent/pause", Some(json!({"reason_id": reason})), 202).await;
        api.ok(Some(&op), "POST", "/agent/ready", None, 202).await;
        if i == CYCLES / 3 || i == 2 * CYCLES / 3 {
            drop(control); // SIGKILL
            control = Role::start(&control_args, &env);
        }
    }
    api.until_state(&op, op_id, "ready").await;
    let sql_db = store::Db::connect(&db).await.expect("db");
    let deadline = Instant::now() + Duration::from_secs(30);
    let count = |sql: &'static str| {
        let pool = sql_db.pool.clone();
        async move {
            let r = store::sqlx::query(sql).bind(op_id).fetch_one(&pool).await.expect("count");
            store::sqlx::Row::try_get::<i64, _>(&r, 0).expect("n")
        }
    };
    // login, leg up, then one pause and one go-ready per cycle.
    let want = 2 + 2 * CYCLES as i64;
    loop {
        let n = count("SELECT COUNT(*) FROM agent_transitions WHERE agent_user_id = $1").await;
        if n >= want || Instant::now() > deadline {
            assert_eq!(n, want, "one transition per command, none twice");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dup = count(
        "SELECT COUNT(*) FROM (SELECT message_id FROM agent_transitions WHERE agent_user_id = $1 GROUP BY message_id HAVING COUNT(*) > 1) d",
    )
    .await;
    assert_eq!(dup, 0);
    // And the wallboard in the API caught up with the restarted control process.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let w = api.ok(Some(&mgr), "GET", "/wallboard", None, 200).await;
        let a = w["agents"].as_array().unwrap().iter().find(|a| a["agent_id"].as_i64() == Some(op_id)).cloned();
        if a.as_ref().is_some_and(|a| a["state"]["state"] == "ready") {
            break;
        }
        assert!(Instant::now() < deadline, "the API's wallboard never caught up: {a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(control);
    drop(p);
    delete_prefix(&prefix).await;
}

/// A tenant's task that fails (an error, then a panic) is started again, after 1 s and then 2 s;
/// one that ends without error is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tenant_task_restarts_with_backoff() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let db = store::Db::connect(&format!("sqlite:{}/k.db", dir.path().display())).await.unwrap();
    let mut cfg = kakeru::node::NodeConfig::new("sqlite::memory:");
    cfg.tenants = vec![7, 8];
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let ctx = kakeru::node::RoleCtx {
        db,
        bus: bus::AnyBus::Memory(bus::MemoryBus::default()),
        shutdown,
        config: Arc::new(cfg),
    };
    let runs: Arc<[AtomicU32; 2]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
    let started = Instant::now();
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, s) = (runs.clone(), starts.clone());
    let role = tokio::spawn(kakeru::node::for_each_tenant(ctx, move |ctx, tenant| {
        let (r, s) = (r.clone(), s.clone());
        async move {
            let n = r[(tenant - 7) as usize].fetch_add(1, Ordering::SeqCst);
            if tenant == 8 {
                return Ok(()); // done: never started again
            }
            s.lock().unwrap().push(started.elapsed());
            match n {
                0 => anyhow::bail!("Redis away at start"),
                1 => panic!("a fault later"),
                _ => {
                    let mut stop = ctx.shutdown.clone();
                    let _ = stop.wait_for(|s| *s).await;
                    Ok(())
                }
            }
        }
    }));
    until("the third start", Duration::from_secs(10), || async { runs[0].load(Ordering::SeqCst) == 3 }).await;
    let at = starts.lock().unwrap().clone();
    assert!(at[1] - at[0] >= Duration::from_millis(950), "first restart after about 1 s: {at:?}");
    assert!(at[2] - at[1] >= Duration::from_millis(1950), "second after about 2 s: {at:?}");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), role).await.expect("stops at shutdown").unwrap().unwrap();
    assert_eq!(runs[0].load(Ordering::SeqCst), 3);
    assert_eq!(runs[1].load(Ordering::SeqCst), 1, "a task that ended well is not restarted");
}

/// An API process whose wallboard follower could not reach Redis when it started follows the
/// mirror once Redis is back (it was dead until the process restarted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallboard_follower_without_redis_at_boot_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    /// Killed when dropped, a failing test included.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let redis = || {
        Server(
            std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/services.sh)"),
        )
    };
    let up = |url: String| async move {
        let Ok(c) = redis::Client::open(url) else { return false };
        c.get_multiplexed_async_connection().await.is_ok()
    };
    let server = redis();
    until("redis-server answers", Duration::from_secs(10), || up(url.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = kakeru::node::NodeConfig::new(format!("sqlite:{}/k.db", dir.path().display()));
    cfg.redis_url = Some(url.clone());
    cfg.tenants = vec![5];
    // A small retry budget (the default rides out a minute of Redis away), which the follower's
    // own connection inherits: it gives up at once.
    let mut bus_cfg = RedisBusConfig::new(url.clone());
    (bus_cfg.retry_max_attempts, bus_cfg.retry_max_ms) = (2, 50);
    let bus = RedisBus::connect(bus_cfg).await.expect("Redis up");
    let db = store::Db::connect(&cfg.database_url).await.unwrap();
    let mut node = kakeru::node::Node::with(db, bus::AnyBus::Redis(bus), cfg);
    // Redis goes away before the follower starts.
    drop(server);
    node.spawn_wallboard_follower();
    let feed = node.wallboards().feed(5).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(node.run(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Back: control writes its mirror's snapshot, and the follower loads it.
    let _server = redis();
    until("redis-server answers again", Duration::from_secs(10), || up(url.clone())).await;
    let bus = RedisBus::connect(RedisBusConfig::new(url.clone())).await.unwrap();
    let control_feed = wallboard::Feed::starting_at(Default::default(), 4242);
    wallboard::mirror::MirrorWriter::new(5).write_snapshot(&bus, &control_feed).await.unwrap();
    until("the follower follows", Duration::from_secs(20), || async { feed.seq() == 4242 }).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("node stops").unwrap().unwrap();
}

/// The active control on leases and a standby: kill -9 of the active one, and the standby applies
/// the commands sent after the kill within 5 s (it takes the tenant's lease, rebuilds from SQL and
/// reads the pending entries first); the killed one comes back as the standby, and it goes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_control_takes_over_within_5_s_of_the_active_one_dying() {
    let redis = redis_url();
    let prefix = format!("{}:", unique("test:standby:"));
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite:{}/kakeru.db", dir.path().display());
    let env = [("DATABASE_URL", db.as_str())];
    let (mut p, api, mgr) = start_api(&["--redis-url", &redis, "--redis-prefix", &prefix], &env).await;
    p.wait_line("bus on Redis");
    let start = |name: &str| {
        let a = ["control", "--redis-url", &redis, "--redis-prefix", &prefix, "--consumer", name];
        let mut r = Role::start(&a, &env);
        r.wait_line("serving every tenant");
        r
    };
    let mut one = Some(start("control-one"));
    let mut two = Some(start("control-two"));
    let (op, op_id, job) = api.floor("demo", &mgr).await;
    let sql_db = store::Db::connect(&db).await.expect("db");
    let tenant = tenant_id(&api, &mgr).await;
    let mut bus_cfg = RedisBusConfig::new(redis.clone());
    bus_cfg.prefix = prefix.clone();
    let bus = RedisBus::connect(bus_cfg).await.expect("redis");
    let holder = || {
        let pool = sql_db.pool.clone();
        async move {
            store::sqlx::query("SELECT holder FROM leases WHERE kind = 'control' AND tenant_id = $1")
                .bind(tenant as i64)
                .fetch_optional(&pool)
                .await
                .expect("lease")
                .map(|r| store::sqlx::Row::try_get::<String, _>(&r, 0).expect("holder"))
        }
    };
    api.ok(Some(&op), "POST", "/agent/session", Some(json!({"call_job_id": job})), 202).await;
    api.until_state(&op, op_id, "ringing").await;
    let reason =
        api.ok(Some(&mgr), "GET", "/pause-reasons", None, 200).await["items"][0]["id"].as_i64().expect("reason");
    for round in 0..2 {
        let active = holder().await.expect("one control holds the tenant");
        // kill -9 of the active control.
        if active.starts_with("control-one") {
            drop(one.take());
        } else {
            drop(two.take());
        }
        let t0 = Instant::now();
        // A command right after the kill: the standby applies it.
        let want = if round == 0 {
            shard_event(&bus, tenant, ShardEvent::AgentLegUp { agent_id: AgentId(op_id as u64), shard: 0 }).await;
            "ready"
        } else {
            api.ok(Some(&op), "POST", "/agent/pause", Some(json!({"reason_id": reason})), 202).await;
            "paused"
        };
        api.until_state(&op, op_id, want).await;
        let took = t0.elapsed();
        eprintln!("control fail-over {round}: {took:?}");
        assert!(took <= Duration::from_secs(5), "the standby applied the command after {took:?}");
        let now_active = holder().await.expect("held");
        assert_ne!(now_active, active, "the standby holds the tenant");
        // The killed one comes back and stands by.
        if one.is_none() {
            one = Some(start("control-one"));
        } else {
            two = Some(start("control-two"));
        }
    }
    // Each command applied once: login, leg up, pause.
    let n: i64 = store::sqlx::Row::try_get(
        &store::sqlx::query("SELECT COUNT(*) FROM agent_transitions WHERE agent_user_id = $1")
            .bind(op_id)
            .fetch_one(&sql_db.pool)
            .await
            .expect("count"),
        0,
    )
    .expect("n");
    assert_eq!(n, 3, "one transition per command, none twice");
    drop(one);
    drop(two);
    drop(p);
    delete_prefix(&prefix).await;
}
