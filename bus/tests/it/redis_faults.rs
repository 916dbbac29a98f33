//! Faults against a real Redis: connections killed (`CLIENT KILL ADDR`, server side) and Redis
//! unreachable for a while, while events flow. Publishers and consumers reconnect; nothing is lost,
//! nothing applied twice.
//!
//! The buses talk to Redis through a small TCP proxy owned by the test, so the test kills exactly its
//! own connections (by their address as Redis sees them) and can refuse connections for a while
//! (what clients see while Redis restarts) without disturbing other users of the shared Redis.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::{Bus, BusConfig, Consumer, ConsumerConfig, RedisBus, RedisBusConfig};
use tokio::net::{TcpListener, TcpStream};

use bus::testing::{cleanup, redis_bus, redis_url};

use crate::contract::{env, stream, Store};

struct Proxy {
    addr: SocketAddr,
    /// Local addresses of the proxy's connections to Redis (as Redis sees its clients). Bounded:
    /// drained on every kill.
    upstream: Arc<Mutex<Vec<SocketAddr>>>,
    down: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(redis: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let upstream: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (up, dn) = (upstream.clone(), down.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if dn.load(Ordering::SeqCst) {
                    drop(inbound); // "Redis is restarting"
                    continue;
                }
                let up = up.clone();
                tokio::spawn(async move {
                    let Ok(mut out) = TcpStream::connect(redis).await else { return };
                    if let Ok(a) = out.local_addr() {
                        let mut v = up.lock().expect("test lock");
                        if v.len() < 1_000 {
                            v.push(a);
                        }
                    }
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                });
            }
        });
        Proxy { addr, upstream, down, accept }
    }

    /// Kills, on the Redis side, every connection made through this proxy. Returns how many.
    async fn kill_all(&self, admin: &mut redis::aio::MultiplexedConnection) -> usize {
        let addrs: Vec<SocketAddr> = std::mem::take(&mut *self.upstream.lock().expect("test lock"));
        let mut killed = 0;
        for a in addrs {
            let r: Result<(), _> =
                redis::cmd("CLIENT").arg("KILL").arg("ADDR").arg(a.to_string()).query_async(admin).await;
            killed += usize::from(r.is_ok());
        }
        killed
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn redis_socket_addr() -> SocketAddr {
    let url = redis_url();
    let rest = url.trim_start_matches("redis://");
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport).to_owned();
    let mut addrs = tokio::net::lookup_host(hostport).await.expect("resolve REDIS_URL");
    addrs.next().expect("an address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_and_redis_away_while_events_flow_lose_nothing() {
    let _probe = redis_bus(BusConfig::default()).await;
    let _ = tracing_subscriber::fmt().with_env_filter("control=info").with_test_writer().try_init();
    const MAX: u64 = 5_000;
    let faults_done = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(u64::MAX));
    let proxy = Proxy::start(redis_socket_addr().await).await;
    let via_proxy = || {
        let mut c = RedisBusConfig::new(format!("redis://{}", proxy.addr));
        c.response_timeout_ms = 1_000;
        c.connect_timeout_ms = 500;
        c.retry_max_ms = 250;
        c
    };
    let publisher = RedisBus::connect(via_proxy()).await.unwrap();
    let consumer_bus = RedisBus::connect(via_proxy()).await.unwrap();
    let s = stream("faults");
    consumer_bus.ensure_group(&s, "g").await.unwrap();

    let s_pub = s.clone();
    let (done, tot) = (faults_done.clone(), total.clone());
    let publishing = tokio::spawn(async move {
        // Events flow for the whole fault period, and a little after.
        let mut sent = Vec::new();
        let mut i = 0;
        while i < MAX && !done.load(Ordering::SeqCst) {
            let e = env(i);
            // Returns only once the entry is stored; retried across the faults.
            publisher.publish(&s_pub, &e).await.expect("publish survives faults");
            sent.push(e.id);
            i += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tot.store(sent.len() as u64, Ordering::SeqCst);
        sent
    });

    let c = Consumer::new(ConsumerConfig {
        stream: s.clone(),
        group: "g".into(),
        consumer: "c1".into(),
        batch: 50,
        block_ms: 100,
        min_idle_ms: 1_500,
    });
    let consuming = tokio::spawn(async move {
        let mut store = Store::default();
        let deadline = Instant::now() + Duration::from_secs(90);
        while (store.applied.len() as u64) < total.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "applied only {}", store.applied.len());
            if let Err(e) = c.poll(&consumer_bus, &mut store, |st, e| st.apply(e)).await {
                // Bounded retries ran out inside the bus: keep polling (the process would too).
                eprintln!("poll: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Drain: nothing may stay pending.
        while consumer_bus.pending(&c.config().stream, "g").await.unwrap() > 0 {
            assert!(Instant::now() < deadline, "entries stuck pending");
            c.poll(&consumer_bus, &mut store, |st, e| st.apply(e)).await.unwrap();
        }
        store
    });

    let client = redis::Client::open(redis_url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let mut killed = 0;
    // Faults spaced so that clients recover in between (a kill right after each reconnect would
    // only test the backoff).
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        if round % 2 == 1 {
            proxy.down.store(true, Ordering::SeqCst);
            killed += proxy.kill_all(&mut admin).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            proxy.down.store(false, Ordering::SeqCst);
        } else {
            killed += proxy.kill_all(&mut admin).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    faults_done.store(true, Ordering::SeqCst);
    assert!(killed >= 4, "the faults hit live connections ({killed})");

    let sent = publishing.await.unwrap();
    let store = consuming.await.unwrap();
    assert!(sent.len() > 300, "events flowed during the faults ({})", sent.len());
    assert_eq!(store.applied.len(), sent.len());
    for id in &sent {
        assert_eq!(store.applied.get(id), Some(&1), "{id} applied exactly once");
    }
    cleanup(&s).await;
}

/// A private `redis-server` (AOF on, fsync always) that the test kills and restarts: the shared Redis
/// is never restarted.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn spawn(port: u16, dir: &std::path::Path) -> std::io::Result<std::process::Child> {
        std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    }

    async fn start() -> Option<PrivateRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = tempfile::tempdir().ok()?;
        let child = Self::spawn(port, dir.path()).ok()?;
        let r = PrivateRedis { child, port, dir };
        r.wait_up().await.then_some(r)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn wait_up(&self) -> bool {
        for _ in 0..100 {
            if let Ok(c) = redis::Client::open(self.url()) {
                if let Ok(mut c) = c.get_multiplexed_async_connection().await {
                    let pong: Result<String, _> = redis::cmd("PING").query_async(&mut c).await;
                    if pong.is_ok() {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Crash (SIGKILL) and start again on the same port and data directory after `down`.
    async fn crash_and_restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        tokio::time::sleep(down).await;
        self.child = Self::spawn(self.port, self.dir.path()).expect("restart redis-server");
        assert!(self.wait_up().await, "redis restarted");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crash_and_restart_while_events_flow_loses_nothing() {
    let _ = tracing_subscriber::fmt().with_env_filter("control=info").with_test_writer().try_init();
    let mut server =
        PrivateRedis::start().await.expect("redis-server runs a private Redis (scripts/services.sh installs it)");
    let cfg = || {
        let mut c = RedisBusConfig::new(server.url());
        c.response_timeout_ms = 1_000;
        c.connect_timeout_ms = 500;
        c.retry_max_ms = 200;
        c
    };
    let publisher = RedisBus::connect(cfg()).await.unwrap();
    let consumer_bus = RedisBus::connect(cfg()).await.unwrap();
    let s = stream("restart");
    consumer_bus.ensure_group(&s, "g").await.unwrap();
    let faults_done = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(u64::MAX));

    let (s_pub, done, tot) = (s.clone(), faults_done.clone(), total.clone());
    let publishing = tokio::spawn(async move {
        let mut sent = Vec::new();
        let mut i = 0;
        while i < 5_000 && !done.load(Ordering::SeqCst) {
            let e = env(i);
            publisher.publish(&s_pub, &e).await.expect("publish survives the restart");
            sent.push(e.id);
            i += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tot.store(sent.len() as u64, Ordering::SeqCst);
        sent
    });
    let c = Consumer::new(ConsumerConfig {
        stream: s.clone(),
        group: "g".into(),
        consumer: "c1".into(),
        batch: 50,
        block_ms: 100,
        min_idle_ms: 1_500,
    });
    let consuming = tokio::spawn(async move {
        let mut store = Store::default();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let applied_all = (store.applied.len() as u64) >= total.load(Ordering::SeqCst);
            if applied_all && consumer_bus.pending(&c.config().stream, "g").await.unwrap() == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "applied only {}", store.applied.len());
            if let Err(e) = c.poll(&consumer_bus, &mut store, |st, e| st.apply(e)).await {
                eprintln!("poll: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        store
    });

    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.crash_and_restart(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    faults_done.store(true, Ordering::SeqCst);

    let sent = publishing.await.unwrap();
    let store = consuming.await.unwrap();
    assert!(sent.len() > 100, "events flowed across the restarts ({})", sent.len());
    assert_eq!(store.applied.len(), sent.len());
    for id in &sent {
        assert_eq!(store.applied.get(id), Some(&1), "{id} applied exactly once");
    }
}
