//! The production layout under faults (issue 27), with real processes in network namespaces that
//! the test makes itself: 3 `kakeru dialer` hosts, 2 `kakeru control` (one standing by), 1 `kakeru
//! api`, the simulated carrier and 32 simulated agents (`kakeru sim`) working 4 campaigns, over
//! PostgreSQL and Redis. Faults in turn: kill -9 a dialer host, kill -9 the active control, cut a
//! dialer host's network for 10 s.
//!
//! The network: a hub namespace holds a bridge (10.27.0.1/24); every role has a namespace of its
//! own with one veth into the bridge (10.27.0.x); no address is added outside these namespaces.
//! PostgreSQL and Redis are the machine's (they listen on 127.0.0.1 of the root namespace, which
//! no namespace reaches): the test relays them from listeners it binds on the bridge address
//! inside the hub (a thread enters the hub's namespace to bind them, then comes back to connect to
//! 127.0.0.1), so a host whose veth is down loses its database and bus like a host cut off.
//! PostgreSQL only: this is the production layout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{Bus, Envelope, RedisBus, RedisBusConfig};
use store::sqlx::{self, Row};
use wire::{streams, DialerNotice};

use crate::node::{Api, Sse};
use crate::process::{run, Role};

const HUB_IP: &str = "10.27.0.1";
const API_IP: &str = "10.27.0.20";
const CARRIER_IP: &str = "10.27.0.40";
const AGENTS_IP: &str = "10.27.0.41";
const CONTROL_IPS: [&str; 2] = ["10.27.0.11", "10.27.0.12"];
const DIALER_IPS: [&str; 3] = ["10.27.0.31", "10.27.0.32", "10.27.0.33"];
const CAMPAIGNS: usize = 4;
const AGENTS_PER_CAMPAIGN: usize = 8;
/// Each campaign's 最大チャンネル.
const CAMPAIGN_CHANNELS: i64 = 6;
/// Campaigns 0 and 1 share one caller ID, 2 and 3 another; each caller ID's limit is below the
/// sum of its campaigns', so it binds across hosts.
const CALLER_CHANNELS: i64 = 8;
const CALLERS: [&str; 2] = ["0501110000", "0501110001"];
/// The takeover bound of the issue.
const TAKEOVER: Duration = Duration::from_secs(5);

fn ip(args: &[&str]) {
    let (ok, out) = run("ip", args, None);
    assert!(ok, "ip {}: {out}", args.join(" "));
}

/// The namespaces of one run, deleted when dropped (on failure too). Names are unique per run.
struct Net {
    hub: String,
    roles: Vec<String>,
}

impl Net {
    /// The hub with its bridge; fails (never skips) when `ip netns` is not available.
    fn new() -> Net {
        let run_id = format!("{:x}", (std::process::id() as u64) << 16 | (rand::random::<u16>() as u64));
        let hub = format!("kk{run_id}-hub");
        let (ok, out) = run("ip", &["netns", "add", &hub], None);
        assert!(ok, "`ip netns add` is needed for this test (root and iproute2): {out}");
        let net = Net { hub, roles: Vec::new() };
        ip(&["-n", &net.hub, "link", "set", "lo", "up"]);
        ip(&["-n", &net.hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &net.hub, "addr", "add", &format!("{HUB_IP}/24"), "dev", "br0"]);
        ip(&["-n", &net.hub, "link", "set", "br0", "up"]);
        net
    }

    /// A namespace for one role, with `addr` on its veth into the hub's bridge; its name.
    fn role(&mut self, name: &str, addr: &str) -> String {
        let ns = format!("{}-{name}", self.hub.trim_end_matches("-hub"));
        ip(&["netns", "add", &ns]);
        self.roles.push(ns.clone());
        let port = self.port(name);
        ip(&["-n", &self.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        ip(&["-n", &self.hub, "link", "set", &port, "master", "br0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    /// The hub's end of a role's veth.
    fn port(&self, name: &str) -> String {
        format!("v-{name}")
    }

    /// Cuts (or restores) a role's network: its veth's end at the bridge goes down (or up).
    fn set_link(&self, name: &str, up: bool) {
        ip(&["-n", &self.hub, "link", "set", &self.port(name), if up { "up" } else { "down" }]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.roles.iter().chain([&self.hub]) {
            let _ = run("ip", &["netns", "del", ns], None);
        }
    }
}

/// Moves the calling thread into the network namespace `ns` (for good: callers are threads of
/// their own).
#[allow(unsafe_code)]
fn enter(ns: &str) {
    let target = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("the namespace's file");
    // SAFETY: setns on this thread only, with a namespace file kept open for the call.
    let r = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns into {ns}: {}", std::io::Error::last_os_error());
}

/// Binds `addr` inside the namespace `ns` (a thread of its own enters it for the bind only; the
/// socket stays in the namespace it was made in).
fn bind_in(ns: &str, addr: String) -> TcpListener {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr} in {ns}: {e}"))
    })
    .join()
    .expect("bind thread")
}

/// Waits (at most 20 s) until PostgreSQL answers at `url` from inside the namespace `ns`, so that
/// the roles start on a path that works; says what failed when it does not.
fn reaches_the_database(ns: &str, url: &str) {
    let (inside, url) = (ns.to_string(), url.to_string());
    let tried = std::thread::spawn(move || {
        enter(&inside);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answered = rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::postgres::PgConnection::connect(&url).await?;
                sqlx::query("SELECT 1").execute(&mut c).await.map(|_| ())
            });
            match answered {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    })
    .join()
    .expect("the probe's thread");
    if let Err(e) = tried {
        panic!("PostgreSQL through the hub's relay, from {ns}: {e}");
    }
}

/// Copies bytes both ways between two connections until either side closes.
fn pipe(down: TcpStream, up: TcpStream) {
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) else { return };
    for (mut from, mut to) in [(d2, u2), (up, down)] {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
            let _ = from.shutdown(std::net::Shutdown::Both);
        });
    }
}

/// Relays connections to `listener` (in the hub) to `upstream` (127.0.0.1 here).
fn relay(listener: TcpListener, upstream: &'static str) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(down) = conn else { continue };
            let Ok(up) = TcpStream::connect(upstream) else { continue };
            pipe(down, up);
        }
    });
}

/// Serves `target` (an address inside the namespaces) on 127.0.0.1 here, so that the test's own
/// HTTP client reaches the API as a browser would: a thread that entered the hub makes the
/// connections to `target`.
fn relay_from_root(hub: &str, target: String) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let addr = listener.local_addr().expect("address");
    type Reply = std::sync::mpsc::Sender<std::io::Result<TcpStream>>;
    let (ask, asked) = std::sync::mpsc::channel::<Reply>();
    let hub = hub.to_string();
    std::thread::spawn(move || {
        enter(&hub);
        for reply in asked {
            let _ = reply.send(TcpStream::connect(&target));
        }
    });
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(down) = conn else { continue };
            let (tx, rx) = std::sync::mpsc::channel();
            if ask.send(tx).is_err() {
                return;
            }
            if let Ok(Ok(up)) = rx.recv() {
                pipe(down, up);
            }
        }
    });
    addr
}

/// The Redis keys of this run's prefix, deleted when dropped.
struct RedisKeys {
    prefix: String,
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let Ok(client) = redis::Client::open(url) else { return };
        let Ok(mut c) = client.get_connection() else { return };
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query(&mut c).unwrap_or_default();
        for k in keys {
            let _: Result<(), _> = redis::cmd("DEL").arg(k).query(&mut c);
        }
    }
}

async fn one(db: &store::Db, sql: &str, binds: &[i64]) -> i64 {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.fetch_one(&db.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")).try_get(0).expect("column 0")
}

async fn exec(db: &store::Db, sql: &str, binds: &[&str]) {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(&db.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// What the floor is made of in SQL.
struct Floor {
    tenant: i64,
    campaigns: Vec<i64>,
    jobs: Vec<i64>,
    /// Per campaign, its agents' logins.
    logins: Vec<Vec<String>>,
}

const PASSWORD: &str = "Faults-27-pass";
const SIP_PASSWORD: &str = "sip-27-secret";

async fn seed(db: &store::Db) -> Floor {
    let now = store::now_ms();
    let t = store::tenancy::create_tenant(db, "faults", "faults", "Asia/Tokyo", now).await.expect("tenant");
    store::tenancy::set_national_holidays(db, t, false).await.expect("holidays");
    for n in CALLERS {
        sqlx::query("INSERT INTO caller_ids (tenant_id, number, max_channels, created_at) VALUES ($1, $2, $3, 0)")
            .bind(t)
            .bind(n)
            .bind(CALLER_CHANNELS)
            .execute(&db.pool)
            .await
            .expect("caller id");
    }
    // One password hash for every agent (hashing is slow on purpose).
    let first = store::accounts::create_user(
        db,
        &store::accounts::NewUser {
            tenant_id: t,
            login: "op00",
            display_name: "op00",
            role: store::accounts::Role::Op,
            password: PASSWORD,
        },
        now,
    )
    .await
    .expect("first agent");
    // A manager who watches the wallboard.
    sqlx::query(
        "INSERT INTO users (tenant_id, login, display_name, role, password_hash, disabled, created_at, updated_at)
         SELECT tenant_id, 'mgr1', 'mgr1', 'MGR', password_hash, 0, created_at, updated_at FROM users WHERE id = $1",
    )
    .bind(first)
    .execute(&db.pool)
    .await
    .expect("manager");
    let mut floor = Floor { tenant: t, campaigns: Vec::new(), jobs: Vec::new(), logins: Vec::new() };
    for c in 0..CAMPAIGNS {
        let group = one(
            db,
            &format!("INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, 'g{c}', 0) RETURNING id"),
            &[t],
        )
        .await;
        let campaign: i64 = sqlx::query(
            "INSERT INTO campaigns (tenant_id, name, mode, dial_ratio, max_channels, ring_timeout_s, caller_id,
                business_start, business_end, acw_seconds, created_at, updated_at)
             VALUES ($1, $2, 'progressive', 2.0, $3, 4, $4, '00:00', '23:59', 5, 0, 0) RETURNING id",
        )
        .bind(t)
        .bind(format!("c{c}"))
        .bind(CAMPAIGN_CHANNELS)
        .bind(CALLERS[c / 2])
        .fetch_one(&db.pool)
        .await
        .expect("campaign")
        .try_get(0)
        .expect("id");
        let batch = one(
            db,
            "INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at)
             VALUES ($1, $2, 'b', '2020-01-01', '2099-12-31', 0) RETURNING id",
            &[t, campaign],
        )
        .await;
        let list = one(
            db,
            "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, 'l', 0) RETURNING id",
            &[t, batch],
        )
        .await;
        // Numbers 03<c>xxxxxxx: the carrier's log tells the campaign by the number.
        let sql = format!(
            "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, created_at)
             SELECT $1, $2, $3, 'n', 'カナ', '03{c}' || LPAD(CAST(g AS TEXT), 7, '0'), 'fixed', 0
             FROM generate_series(1, 3000) AS g"
        );
        sqlx::query(&sql).bind(t).bind(list).bind(batch).execute(&db.pool).await.expect("leads");
        let job = one(
            db,
            "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, status, created_at)
             VALUES ($1, $2, $3, 'j', 'stopped', 0) RETURNING id",
            &[t, campaign, group],
        )
        .await;
        one(
            db,
            "INSERT INTO call_job_lists (tenant_id, job_id, list_id) VALUES ($1, $2, $3) RETURNING job_id",
            &[t, job, list],
        )
        .await;
        let mut logins = Vec::new();
        for a in 0..AGENTS_PER_CAMPAIGN {
            let login = format!("op{c}{a}");
            let user = if c == 0 && a == 0 {
                exec(db, "UPDATE users SET login = $1 WHERE login = 'op00'", &[&login]).await;
                first
            } else {
                let r = sqlx::query(
                    "INSERT INTO users (tenant_id, login, display_name, role, password_hash, disabled, created_at, updated_at)
                     SELECT tenant_id, $1, $1, role, password_hash, 0, created_at, updated_at FROM users WHERE id = $2
                     RETURNING id",
                )
                .bind(&login)
                .bind(first)
                .fetch_one(&db.pool)
                .await
                .expect("agent");
                r.try_get(0).expect("id")
            };
            let (md5, sha) = store::accounts::digest_ha1(&login, "faults.kakeru", SIP_PASSWORD);
            sqlx::query(
                "INSERT INTO phones (tenant_id, user_id, sip_username, realm, ha1_md5, ha1_sha256, created_at)
                 VALUES ($1, $2, $3, 'faults.kakeru', $4, $5, 0)",
            )
            .bind(t)
            .bind(user)
            .bind(&login)
            .bind(md5)
            .bind(sha)
            .execute(&db.pool)
            .await
            .expect("phone");
            one(
                db,
                "INSERT INTO dialing_group_agents (tenant_id, group_id, user_id) VALUES ($1, $2, $3) RETURNING user_id",
                &[t, group, user],
            )
            .await;
            logins.push(login);
        }
        floor.campaigns.push(campaign);
        floor.jobs.push(job);
        floor.logins.push(logins);
    }
    floor
}

/// The campaign of a dialled number (03<c>...).
fn campaign_of_tel(tel: &str) -> Option<usize> {
    tel.strip_prefix("03").and_then(|r| r.chars().next()).and_then(|c| c.to_digit(10)).map(|c| c as usize)
}

/// One call of the carrier's log (`kakeru sim --carrier-log`).
#[derive(Debug, Clone)]
struct CarrierCall {
    tel: String,
    caller: String,
    from: String,
    start_ms: i64,
    end_ms: Option<i64>,
}

fn read_carrier_log(path: &std::path::Path) -> Vec<CarrierCall> {
    let text = std::fs::read_to_string(path).expect("the carrier's log");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let caller = v["caller"].as_str().unwrap_or("");
            // From: <sip:0501110000@...>;tag=...: the caller ID is the URI's user part.
            let caller = caller.split("sip:").nth(1).and_then(|r| r.split('@').next()).unwrap_or("").to_string();
            CarrierCall {
                tel: v["tel"].as_str().expect("tel").to_string(),
                caller,
                from: v["from"].as_str().expect("from").to_string(),
                start_ms: v["start_ms"].as_i64().expect("start_ms"),
                end_ms: v["end_ms"].as_i64(),
            }
        })
        .collect()
}

/// The most calls of one key up at once, counting calls as [start, end) and open ones to `until`.
fn peak<K: Ord + Clone>(calls: &[(K, i64, i64)]) -> BTreeMap<K, i64> {
    let mut edges: BTreeMap<K, Vec<(i64, i64)>> = BTreeMap::new();
    for (k, s, e) in calls {
        let v = edges.entry(k.clone()).or_default();
        v.push((*s, 1));
        v.push((*e, -1));
    }
    edges
        .into_iter()
        .map(|(k, mut v)| {
            // Ends before starts at the same instant.
            v.sort();
            let (mut n, mut m) = (0i64, 0i64);
            for (_, d) in v {
                n += d;
                m = m.max(n);
            }
            (k, m)
        })
        .collect()
}

/// Which dialer host (index into DIALER_IPS) an INVITE came from.
fn host_of(from: &str) -> Option<usize> {
    DIALER_IPS.iter().position(|ip| from.starts_with(&format!("{ip}:")))
}

/// Waits until `ok` (checked every 50 ms) or `limit`; the time it took.
fn until_ok(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

#[test]
fn the_floor_rides_out_a_dead_host_a_dead_control_and_a_cut_host() {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut net = Net::new();
    let hub = net.hub.clone();
    relay(bind_in(&hub, format!("{HUB_IP}:5432")), "127.0.0.1:5432");
    relay(bind_in(&hub, format!("{HUB_IP}:6379")), "127.0.0.1:6379");

    // The database: a fresh one on the machine's PostgreSQL, reached by the roles through the hub.
    let admin =
        std::env::var("KAKERU_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("kt_faults_{}_{:x}", std::process::id(), rand::random::<u32>());
    let (db, floor) = rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::postgres::PgConnection::connect(&admin).await.expect("PostgreSQL at KAKERU_TEST_PG_URL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.expect("create database");
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).expect("admin URL");
        let db = store::Db::connect(&format!("{base}/{name}")).await.expect("migrate");
        let floor = seed(&db).await;
        (db, floor)
    });
    // postgres://user:pass@127.0.0.1:5432/postgres -> postgres://user:pass@10.27.0.1:5432/NAME
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).expect("admin URL");
    let (scheme_auth, _) = base.rsplit_once('@').unwrap_or(("postgres://postgres", ""));
    let db_url = format!("{scheme_auth}@{HUB_IP}:5432/{name}");
    let redis_url = format!("redis://{HUB_IP}:6379");
    let prefix = format!("kakeru-faults-{}-{}:", std::process::id(), store::now_ms());
    let _keys = RedisKeys { prefix: prefix.clone() };
    let t = floor.tenant.to_string();
    // 6 processes on one PostgreSQL (shared with the rest of the suite): a few connections each.
    let env = [("DATABASE_URL", db_url.as_str()), ("RUST_LOG", "warn"), ("KAKERU_DATABASE_POOL", "6")];
    let bus_args = ["--redis-url", redis_url.as_str(), "--redis-prefix", prefix.as_str()];

    // The roles, each in its namespace.
    let ns_api = net.role("api", API_IP);
    let api_listen = format!("{API_IP}:8080");
    let mut args = vec!["api", "--listen", api_listen.as_str()];
    args.extend_from_slice(&bus_args);
    reaches_the_database(&ns_api, &db_url);
    let mut api = Role::start_in(Some(&ns_api), &args, &env).labelled("api");
    let mut controls = Vec::new();
    for (i, addr) in CONTROL_IPS.iter().enumerate() {
        let name = format!("c{i}");
        let ns = net.role(&name, addr);
        let mut args = vec!["control", "--tenants", t.as_str(), "--consumer", name.as_str()];
        args.extend_from_slice(&bus_args);
        controls.push(Role::start_in(Some(&ns), &args, &env).labelled(&name));
    }
    let ns_carrier = net.role("carrier", CARRIER_IP);
    let carrier_sip = format!("{CARRIER_IP}:5070");
    let log_dir = tempfile::tempdir().expect("a directory for the carrier's log");
    let carrier_log = log_dir.path().join("carrier.jsonl");
    let mut carrier = Role::start_in(
        Some(&ns_carrier),
        &[
            "sim",
            "--carrier-listen",
            &carrier_sip,
            "--answer-prob",
            "0.3",
            "--answer-delay-mean-s",
            "1",
            "--talk-mean-s",
            "3",
            "--carrier-log",
            carrier_log.to_str().expect("path"),
        ],
        &env,
    )
    .labelled("carrier");
    carrier.wait_line("carrier SIP on");
    let sip: Vec<String> = DIALER_IPS.iter().map(|a| format!("{a}:5060")).collect();
    let dialer_ns: Vec<String> = (0..DIALER_IPS.len()).map(|i| net.role(&format!("d{i}"), DIALER_IPS[i])).collect();
    let start_dialer = |i: usize| {
        let name = format!("d{i}");
        let mut args = vec![
            "dialer",
            "--carrier",
            carrier_sip.as_str(),
            "--sip-listen",
            sip[i].as_str(),
            "--media-ip",
            DIALER_IPS[i],
            "--shards",
            "1",
            "--tenants",
            t.as_str(),
            "--instance",
            name.as_str(),
            "--sip-nonce-secret",
            "faults-27-nonce-secret-0123456789",
        ];
        args.extend_from_slice(&bus_args);
        Role::start_in(Some(&dialer_ns[i]), &args, &env).labelled(&name)
    };
    let mut dialers: Vec<Option<Role>> = (0..DIALER_IPS.len()).map(|i| Some(start_dialer(i))).collect();
    api.wait_line("listening on");
    for c in &mut controls {
        c.wait_line("kakeru control: serving");
    }
    for d in dialers.iter_mut().flatten() {
        d.wait_line("kakeru dialer:");
    }
    // The jobs run once the three hosts are members, so that the campaigns are dealt over them.
    let members = || {
        count(
            &rt,
            &db,
            "SELECT COUNT(*) FROM lease_members WHERE kind = 'dialer' AND expires_at > $1",
            &[store::now_ms()],
            None,
        )
    };
    until_ok(Duration::from_secs(30), "three dialer hosts are members", || members() >= 3);
    let bus = rt.block_on(async {
        for job in &floor.jobs {
            sqlx::query("UPDATE call_jobs SET status = 'running', started_at = $1 WHERE id = $2")
                .bind(store::now_ms())
                .bind(*job)
                .execute(&db.pool)
                .await
                .expect("job running");
        }
        // As the API does when a job starts: the hosts reload the tenant's jobs.
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let mut cfg = RedisBusConfig::new(url.clone());
        cfg.prefix = prefix.clone();
        let bus = RedisBus::connect(cfg).await.unwrap_or_else(|e| panic!("Redis at {url}: {e}"));
        let env =
            Envelope::new(floor.tenant as u64, store::now_ms() as u64, &DialerNotice::JobsChanged).expect("notice");
        bus.publish(&streams::dialer_notices(), &env).await.expect("publish");
        bus
    });
    let holders = |kind: &str| -> Vec<(i64, String, i64)> {
        rt.block_on(async {
            sqlx::query(
                "SELECT resource_id, holder, token FROM leases WHERE kind = $1 AND tenant_id = $2 ORDER BY resource_id",
            )
            .bind(kind)
            .bind(floor.tenant)
            .fetch_all(&db.pool)
            .await
            .expect("leases")
            .into_iter()
            .map(|r| (r.try_get(0).expect("id"), r.try_get(1).expect("holder"), r.try_get(2).expect("token")))
            .collect()
        })
    };
    let host_index =
        |holder: &str| holder.split(':').next().and_then(|h| h.strip_prefix('d')).and_then(|i| i.parse::<usize>().ok());
    until_ok(Duration::from_secs(30), "every campaign is held", || holders("dialer").len() == CAMPAIGNS);
    let holder_of: Vec<usize> = floor
        .campaigns
        .iter()
        .map(|c| {
            let l = holders("dialer");
            l.iter().find(|(x, _, _)| x == c).and_then(|(_, h, _)| host_index(h)).expect("a held campaign")
        })
        .collect();
    // The agents: one `kakeru sim` per campaign, their phones registered at a host that does not
    // hold their campaign (phones may register at any host; the holder calls them).
    let ns_agents = net.role("agents", AGENTS_IP);
    let api_url = format!("http://{API_IP}:8080");
    let mut sims = Vec::new();
    for c in 0..CAMPAIGNS {
        let agents = floor.logins[c].join(",");
        let job = floor.jobs[c].to_string();
        let seed = (c + 7).to_string();
        let sim_env =
            [("KAKERU_SIM_PASSWORD", PASSWORD), ("KAKERU_SIM_SIP_PASSWORD", SIP_PASSWORD), ("RUST_LOG", "warn")];
        let mut s = Role::start_in(
            Some(&ns_agents),
            &[
                "sim",
                "--api",
                &api_url,
                "--tenant",
                "faults",
                "--agents",
                &agents,
                "--registrar",
                &sip[(holder_of[c] + 1) % DIALER_IPS.len()],
                "--call-job",
                &job,
                "--bind-ip",
                AGENTS_IP,
                "--agent-talk-mean-s",
                "2",
                "--seed",
                &seed,
            ],
            &sim_env,
        )
        .labelled(&format!("agents of campaign {c}"));
        s.wait_line("working call job");
        sims.push(s);
    }

    // A manager's wallboard stream through the API, as a browser's: when each event arrived.
    let api_here = relay_from_root(&hub, format!("{API_IP}:8080"));
    let wallboard: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let watcher = {
        let seen = wallboard.clone();
        let api = Api { base: format!("http://{api_here}"), http: reqwest::Client::new() };
        rt.spawn(async move {
            let token = api.login("faults", "mgr1", PASSWORD).await;
            let mut sse = Sse::open(&api, &token, None).await;
            while let Some(_event) = sse.next(Duration::from_secs(60)).await {
                if let Ok(mut s) = seen.lock() {
                    s.push(Instant::now());
                }
            }
        })
    };

    // Channels in use, sampled every 100 ms from SQL (the pending calls the hosts count).
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let worst_campaign = Arc::new(AtomicI64::new(0));
    let worst_caller = Arc::new(AtomicI64::new(0));
    let sampler = {
        let (db, stop, wc, wi) = (db.clone(), stop_sampling.clone(), worst_campaign.clone(), worst_caller.clone());
        let tenant = floor.tenant;
        rt.spawn(async move {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let rows = sqlx::query(
                    "SELECT campaign_id, caller_id, COUNT(*) FROM call_records
                     WHERE tenant_id = $1 AND result = 'pending' GROUP BY campaign_id, caller_id",
                )
                .bind(tenant)
                .fetch_all(&db.pool)
                .await
                .unwrap_or_default();
                let mut by_caller: HashMap<String, i64> = HashMap::new();
                for r in rows {
                    let n: i64 = r.try_get(2).unwrap_or(0);
                    wc.fetch_max(n, Ordering::Relaxed);
                    let caller: String = r.try_get::<Option<String>, _>(1).ok().flatten().unwrap_or_default();
                    *by_caller.entry(caller).or_default() += n;
                }
                for n in by_caller.values() {
                    wi.fetch_max(*n, Ordering::Relaxed);
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };

    // The floor dials: every campaign has calls, the leases are spread over the three hosts.
    let dials_since = |campaign: i64, since: i64, not_host: &str| -> i64 {
        count(
            &rt,
            &db,
            "SELECT COUNT(*) FROM call_records WHERE campaign_id = $1 AND started_at >= $2 AND dialer_instance NOT LIKE $3",
            &[campaign, since],
            Some(format!("{not_host}:%")),
        )
    };
    let warm = store::now_ms();
    until_ok(Duration::from_secs(30), "every campaign dials", || {
        floor.campaigns.iter().all(|c| dials_since(*c, warm, "none") > 0)
    });
    let spread: HashSet<usize> = holders("dialer").iter().filter_map(|(_, h, _)| host_index(h)).collect();
    eprintln!("leases after start: {:?} ({:?} in)", holders("dialer"), started.elapsed());
    assert!(spread.len() >= 2, "the campaigns are dealt over the hosts: {:?}", holders("dialer"));

    let mut took = Vec::new();
    // Fault 1: kill -9 the host holding campaign 0.
    let victim = holders("dialer")
        .iter()
        .find(|(c, _, _)| *c == floor.campaigns[0])
        .and_then(|(_, h, _)| host_index(h))
        .expect("campaign 0 is held");
    let lost: Vec<i64> =
        holders("dialer").iter().filter(|(_, h, _)| host_index(h) == Some(victim)).map(|(c, _, _)| *c).collect();
    let mut dead = dialers[victim].take().expect("the victim runs");
    let (ok, out) = run("kill", &["-9", &dead.child_id().to_string()], None);
    assert!(ok, "kill -9: {out}");
    let t0 = store::now_ms();
    let name = format!("d{victim}");
    let d = until_ok(Duration::from_secs(15), "another host dials the dead host's campaigns", || {
        lost.iter().all(|c| dials_since(*c, t0, &name) > 0)
    });
    took.push(("kill -9 of a dialer host", d));
    dead.drain();
    // The dead host comes back (as its unit restarts it): it rejoins, and the campaigns held by
    // the others stay where they are.
    let held = holders("dialer");
    let mut back = start_dialer(victim);
    back.wait_line("kakeru dialer:");
    dialers[victim] = Some(back);
    until_ok(Duration::from_secs(10), "the host that came back is a member again", || members() >= 3);
    let moved: Vec<_> =
        holders("dialer").into_iter().filter(|l| !held.iter().any(|h| h.0 == l.0 && h.1 == l.1)).collect();
    assert!(moved.is_empty(), "held campaigns moved when a host rejoined: {moved:?}");

    // Fault 2: kill -9 the active control.
    let active = holders("control").first().map(|(_, h, _)| h.clone()).expect("a control holds the tenant");
    let ci = if active.starts_with("c0:") { 0 } else { 1 };
    let (ok, out) = run("kill", &["-9", &controls[ci].child_id().to_string()], None);
    assert!(ok, "kill -9: {out}");
    let t1 = store::now_ms();
    let d = until_ok(Duration::from_secs(15), "the standby control takes the tenant and the floor dials", || {
        holders("control").first().is_some_and(|(_, h, _)| !h.starts_with(&format!("c{ci}:")))
            && floor.campaigns.iter().all(|c| dials_since(*c, t1, "none") > 0)
    });
    took.push(("kill -9 of the active control", d));
    // The wallboard follows whichever control is active: its stream keeps delivering.
    let took_over = Instant::now();
    until_ok(Duration::from_secs(10), "the wallboard's stream delivers after the take-over", || {
        wallboard.lock().is_ok_and(|s| s.iter().any(|at| *at > took_over + Duration::from_millis(500)))
    });
    // The new control works the floor: agents are offered answered customers again.
    until_ok(Duration::from_secs(20), "the new control bridges a customer", || {
        count(
            &rt,
            &db,
            "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND bridged_at >= $2",
            &[floor.tenant, t1],
            None,
        ) > 0
    });

    // Fault 3: cut a live host's network for 10 s.
    let live: Vec<usize> = (0..DIALER_IPS.len()).filter(|i| dialers[*i].is_some()).collect();
    let cut = *live
        .iter()
        .max_by_key(|i| holders("dialer").iter().filter(|(_, h, _)| host_index(h) == Some(**i)).count())
        .expect("a live host");
    let before: Vec<(i64, String, i64)> =
        holders("dialer").into_iter().filter(|(_, h, _)| host_index(h) == Some(cut)).collect();
    assert!(!before.is_empty(), "the host cut off holds campaigns: {:?}", holders("dialer"));
    net.set_link(&format!("d{cut}"), false);
    let t2 = store::now_ms();
    let cut_name = format!("d{cut}");
    // Its calls in progress: the host that takes its campaigns gives them their results; the
    // results the host cut off would write when it returns are refused.
    let stranded: Vec<i64> = rt.block_on(async {
        sqlx::query(
            "SELECT id FROM call_records WHERE tenant_id = $1 AND result = 'pending' AND dialer_instance LIKE $2",
        )
        .bind(floor.tenant)
        .bind(format!("{cut_name}:%"))
        .fetch_all(&db.pool)
        .await
        .expect("stranded calls")
        .into_iter()
        .map(|r| r.try_get(0).expect("id"))
        .collect()
    });
    let d = until_ok(Duration::from_secs(15), "another host dials the cut host's campaigns", || {
        before.iter().all(|(c, _, _)| dials_since(*c, t2, &cut_name) > 0)
    });
    took.push(("network cut of a dialer host", d));
    let taken_by: Vec<(i64, String, i64)> =
        holders("dialer").into_iter().filter(|(c, _, _)| before.iter().any(|(b, _, _)| b == c)).collect();
    let rest = Duration::from_secs(10).saturating_sub(Duration::from_millis((store::now_ms() - t2) as u64));
    std::thread::sleep(rest);
    net.set_link(&cut_name, true);
    // The host that came back runs on: it rejoins, and writes nothing for the campaigns it lost.
    std::thread::sleep(Duration::from_secs(6));
    eprintln!("faults done at {:?}; took {took:?}", started.elapsed());

    // Every agent in a sane state: logged in, its leg up again, none left 未確認 (unknown).
    let insane = || {
        count(
            &rt,
            &db,
            "SELECT COUNT(*) FROM control_agents WHERE tenant_id = $1 AND (view LIKE $2 OR view LIKE '%\"offline\"%'
                OR view NOT LIKE '%\"leg_up\":true%')",
            &[floor.tenant],
            Some("%\"unknown\"%".into()),
        )
    };
    until_ok(Duration::from_secs(20), "every agent logged in with its leg up, none unknown (未確認)", || {
        insane() == 0
    });
    let agents = count(&rt, &db, "SELECT COUNT(*) FROM control_agents WHERE tenant_id = $1", &[floor.tenant], None);
    assert_eq!(agents, (CAMPAIGNS * AGENTS_PER_CAMPAIGN) as i64, "every agent is on the floor");
    // The host cut off learnt it had lost its campaigns (its own clock) before anything else.
    let cut_role = dialers[cut].as_mut().expect("the host cut off runs");
    cut_role.wait_line("campaign leases lost: dialling for them stops");

    // The end: the agents and the hosts stop (a host's SIGINT ends its calls), then the carrier.
    for s in &mut sims {
        s.interrupt();
    }
    for s in &mut sims {
        let (ok, out) = s.wait_exit(Duration::from_secs(20));
        assert!(ok, "an agents' process: {}", out.join("\n"));
    }
    for d in dialers.iter_mut().flatten() {
        d.interrupt();
    }
    for d in dialers.iter_mut().flatten() {
        let (ok, out) = d.wait_exit(Duration::from_secs(30));
        assert!(ok, "a dialer host's exit: {}", out.join("\n"));
    }
    // Nothing lost on the bus: the active control has taken and acknowledged every command and
    // shard event (the lag and pending entries of its group drain to 0) and dead-lettered none.
    let t = floor.tenant as u64;
    until_ok(Duration::from_secs(15), "the control's group has every entry and acknowledged it", || {
        rt.block_on(async {
            let mut drained = true;
            for s in [streams::control_commands(t), streams::shard_events(t)] {
                let lag = bus.lag(&s, "control").await.expect("lag");
                let pending = bus.pending(&s, "control").await.expect("pending");
                drained &= lag == Some(0) && pending == 0;
            }
            drained
        })
    });
    for s in [streams::control_commands(t), streams::shard_events(t), streams::agent_events(t)] {
        let dead = rt.block_on(bus.dead_letters(&s, 10)).expect("dead letters");
        assert!(dead.is_empty(), "dead-lettered on {s}: {dead:?}");
    }
    carrier.interrupt();
    let (ok, out) = carrier.wait_exit(Duration::from_secs(20));
    assert!(ok, "the carrier: {}", out.join("\n"));
    watcher.abort();
    stop_sampling.store(true, Ordering::Relaxed);
    let samples = rt.block_on(sampler).expect("sampler");

    // Checks.
    for (what, d) in &took {
        assert!(*d <= TAKEOVER, "{what}: the floor dialled again only after {d:?}");
    }
    let calls = read_carrier_log(&carrier_log);
    let end_of_log = calls.iter().filter_map(|c| c.end_ms.or(Some(c.start_ms))).max().unwrap_or(0) + 1;
    assert!(calls.len() > 50, "the floor dialled: {} calls at the carrier", calls.len());
    // 0 leads in two calls at once.
    let by_tel: Vec<(String, i64, i64)> =
        calls.iter().map(|c| (c.tel.clone(), c.start_ms, c.end_ms.unwrap_or(end_of_log))).collect();
    let twice: Vec<_> = peak(&by_tel).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "leads in two calls at once at the carrier: {twice:?}");
    // The channel limits at the carrier, leaving out the calls a host had up when it failed (the
    // carrier holds them until they end there; no host can end them meanwhile).
    let faulted = [(victim, t0), (cut, t2)];
    let counted: Vec<&CarrierCall> = calls
        .iter()
        .filter(|c| {
            !faulted
                .iter()
                .any(|(h, at)| host_of(&c.from) == Some(*h) && c.start_ms <= *at && c.end_ms.is_none_or(|e| e > *at))
        })
        .collect();
    let per_campaign: Vec<(usize, i64, i64)> = counted
        .iter()
        .filter_map(|c| campaign_of_tel(&c.tel).map(|k| (k, c.start_ms, c.end_ms.unwrap_or(end_of_log))))
        .collect();
    let per_caller: Vec<(String, i64, i64)> =
        counted.iter().map(|c| (c.caller.clone(), c.start_ms, c.end_ms.unwrap_or(end_of_log))).collect();
    let pc = peak(&per_campaign);
    let pi = peak(&per_caller);
    eprintln!(
        "carrier: {} calls; peak channels per campaign {pc:?}, per caller ID {pi:?}; SQL ({samples} samples): \
         campaign {}, caller ID {}",
        calls.len(),
        worst_campaign.load(Ordering::Relaxed),
        worst_caller.load(Ordering::Relaxed)
    );
    assert!(pc.values().all(|n| *n <= CAMPAIGN_CHANNELS), "a campaign's channels at the carrier: {pc:?}");
    assert!(pi.values().all(|n| *n <= CALLER_CHANNELS), "a caller ID's channels at the carrier: {pi:?}");
    assert!(worst_campaign.load(Ordering::Relaxed) <= CAMPAIGN_CHANNELS, "a campaign's pending calls in SQL");
    assert!(worst_caller.load(Ordering::Relaxed) <= CALLER_CHANNELS, "a caller ID's pending calls in SQL");
    assert!(samples > 100, "the sampler ran: {samples} samples");

    // Fencing: the host cut off placed nothing for the campaigns taken from it once it returned.
    let cut_ip = DIALER_IPS[cut];
    let lost_tels: HashSet<usize> =
        before.iter().filter_map(|(c, _, _)| floor.campaigns.iter().position(|x| x == c)).collect();
    let stale: Vec<&CarrierCall> = calls
        .iter()
        .filter(|c| {
            c.from.starts_with(&format!("{cut_ip}:"))
                && c.start_ms >= t2
                && campaign_of_tel(&c.tel).is_some_and(|k| lost_tels.contains(&k))
        })
        .collect();
    assert!(stale.is_empty(), "the host cut off dialled campaigns it had lost: {stale:?} (taken: {taken_by:?})");
    let stale_rows = count(
        &rt,
        &db,
        "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND started_at >= $2 AND dialer_instance LIKE $3",
        &[floor.tenant, t2],
        Some(format!("{cut_name}:%")),
    );
    assert_eq!(stale_rows, 0, "call records of the host cut off, written after it was cut");
    for id in &stranded {
        let r: String = rt.block_on(async {
            sqlx::query("SELECT result FROM call_records WHERE id = $1")
                .bind(*id)
                .fetch_one(&db.pool)
                .await
                .expect("a stranded call")
                .try_get(0)
                .expect("result")
        });
        assert_eq!(r, "error", "call {id} of the host cut off: the taker's result stands, the stale host's is refused");
    }
    eprintln!("{} call(s) in progress on the host cut off got the taker's result", stranded.len());

    // 0 call records without a result.
    let pending = count(
        &rt,
        &db,
        "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'pending'",
        &[floor.tenant],
        None,
    );
    assert_eq!(pending, 0, "call records without a result");

    // Agent events: none applied twice, none lost (each agent's transitions chain: every one
    // starts where the one before ended, across the control's failover).
    let rows: Vec<(i64, String, String, String)> = rt.block_on(async {
        sqlx::query(
            "SELECT agent_user_id, from_state, to_state, message_id FROM agent_transitions
             WHERE tenant_id = $1 ORDER BY agent_user_id, id",
        )
        .bind(floor.tenant)
        .fetch_all(&db.pool)
        .await
        .expect("transitions")
        .into_iter()
        .map(|r| {
            (
                r.try_get(0).expect("agent"),
                r.try_get(1).expect("from"),
                r.try_get(2).expect("to"),
                r.try_get(3).expect("id"),
            )
        })
        .collect()
    });
    assert!(rows.len() > 100, "agent transitions: {}", rows.len());
    let mut seen = HashSet::new();
    let mut last: HashMap<i64, String> = HashMap::new();
    for (agent, from, to, msg) in &rows {
        if !msg.starts_with("timer:") {
            assert!(
                seen.insert((*agent, msg.clone(), from.clone(), to.clone())),
                "applied twice: {agent} {msg} {from}->{to}"
            );
        }
        if let Some(prev) = last.get(agent) {
            assert_eq!(prev, from, "agent {agent}: a transition from {from} after one to {prev} ({msg})");
        }
        last.insert(*agent, to.clone());
    }
    eprintln!("the fault test took {:?}", started.elapsed());
    drop(controls);
    drop(api);
    rt.block_on(async {
        use sqlx::Connection;
        db.pool.close().await;
        if let Ok(mut c) = sqlx::postgres::PgConnection::connect(&admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
        }
    });
}

/// A COUNT(*) with integer binds, and optionally one text bind after them.
fn count(rt: &tokio::runtime::Runtime, db: &store::Db, sql: &str, binds: &[i64], text: Option<String>) -> i64 {
    rt.block_on(async {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        if let Some(t) = text {
            q = q.bind(t);
        }
        q.fetch_one(&db.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")).try_get(0).expect("count")
    })
}
