//! `kakeru-bench logins`: issue 18's attacks on one `kakeru api` process (the `kakeru` binary beside this one, started as
//! a child on a SQLite file, with its default limits): wrong passwords for one account from ten
//! source addresses (127.0.0.11-20), while another tenant's MGR keeps calling the API and its
//! latency is measured; the process's memory (VmHWM, VmRSS) is read from /proc. Then slow
//! connections sending one byte of a request head a second, and SIGTERM with them still open.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Args, Debug, Clone)]
pub struct LoginsArgs {
    /// Wrong logins in all.
    #[arg(long, default_value_t = 10_000)]
    pub attempts: usize,
    /// Source addresses they come from (127.0.0.11 and up).
    #[arg(long, default_value_t = 10)]
    pub sources: usize,
    /// Over how many seconds the wrong logins are spread (0: as fast as the clients go).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Requests in flight at once, in all.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Every attempt on another (unknown) login instead of the demo MGR: the source addresses'
    /// limits and the bound on password checks are what stop it.
    #[arg(long)]
    pub spread: bool,
    /// Slow connections (one byte of a request head a second).
    #[arg(long, default_value_t = 100)]
    pub slow: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The child `kakeru api` and what it printed.
struct ApiProcess {
    child: Child,
    base: String,
    password: String,
    _dir: tempfile::TempDir,
    db_url: String,
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_api() -> anyhow::Result<ApiProcess> {
    let dir = tempfile::tempdir()?;
    let db_url = format!("sqlite:{}/bench.db", dir.path().display());
    let mut child = Command::new(kakeru_binary()?)
        .args(["api", "--listen", "127.0.0.1:0", "--seed-demo"])
        .env("DATABASE_URL", &db_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting kakeru api")?;
    let out = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(out).lines();
    let (mut base, mut password) = (None, None);
    while base.is_none() || password.is_none() {
        let line = lines.next().context("kakeru api ended before it printed its login")??;
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = line.split("\"password\":\"").nth(1) {
            password = rest.split('"').next().map(str::to_string);
        }
    }
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(ApiProcess { child, base: base.unwrap_or_default(), password: password.unwrap_or_default(), _dir: dir, db_url })
}

/// (VmHWM, VmRSS) of a process in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    login: &str,
    password: &str,
) -> anyhow::Result<(u16, Value)> {
    let r = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"tenant": tenant, "login": login, "password": password}))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Another tenant's MGR calling `GET /campaigns` back to back until `stop`: latencies in ms.
async fn steady(
    http: reqwest::Client,
    base: String,
    token: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<f64> {
    let mut out = Vec::new();
    while !*stop.borrow() {
        let t0 = Instant::now();
        let ok =
            http.get(format!("{base}/campaigns")).bearer_auth(&token).send().await.map(|r| r.status().is_success());
        if ok.unwrap_or(false) {
            out.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

/// A connection that sends one byte of a request head a second; returns how long it lived.
async fn slow_head(addr: String, cap: Duration) -> Duration {
    let t0 = Instant::now();
    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else { return Duration::ZERO };
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut buf = [0u8; 256];
    for i in 0.. {
        if t0.elapsed() > cap {
            break;
        }
        let byte = head.get(i).copied().unwrap_or(b'a');
        if s.write_all(&[byte]).await.is_err() {
            break;
        }
        if let Ok(Ok(_) | Err(_)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            break;
        }
    }
    t0.elapsed()
}

pub async fn run(args: &LoginsArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=100).contains(&args.sources), "--sources: 1 to 100");
    anyhow::ensure!((1..=1_000).contains(&args.concurrency), "--concurrency: 1 to 1000");
    anyhow::ensure!(args.slow <= 1_000, "--slow: at most 1000");
    anyhow::ensure!((0.0..=600.0).contains(&args.seconds), "--seconds: 0 to 600");
    let mut api = start_api()?;
    let pid = api.child.id();
    let base = api.base.clone();
    let http = reqwest::Client::new();

    // The other tenant, and a second MGR of the demo tenant who reads the lock afterwards.
    let out = Command::new(kakeru_binary()?)
        .args(["tenant", "--code", "other", "--name", "other"])
        .env("DATABASE_URL", &api.db_url)
        .env("RUST_LOG", "warn")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let other_pw = text.split("password=").nth(1).map(str::trim).context("the other tenant's password")?.to_string();
    let (s, v) = login(&http, &base, "other", "admin", &other_pw).await?;
    anyhow::ensure!(s == 200, "other tenant's login: {s} {v}");
    let other_token = v["token"].as_str().unwrap_or_default().to_string();
    let (s, v) = login(&http, &base, "demo", "admin", &api.password).await?;
    anyhow::ensure!(s == 200, "demo login: {s} {v}");
    let admin_token = v["token"].as_str().unwrap_or_default().to_string();
    let r = http
        .post(format!("{base}/users"))
        .bearer_auth(&admin_token)
        .json(&json!({"login": "boss2", "display_name": "boss2", "role": "MGR", "password": "Bench-boss-2"}))
        .send()
        .await?;
    anyhow::ensure!(r.status().as_u16() == 201, "second MGR: {}", r.status());
    let admin_id = http.get(format!("{base}/me")).bearer_auth(&admin_token).send().await?.json::<Value>().await?["id"]
        .as_i64()
        .unwrap_or(0);

    // Baseline: the other tenant alone for 3 s.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let base_task = tokio::spawn(steady(http.clone(), base.clone(), other_token.clone(), stop_rx));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop_tx.send(true);
    let mut baseline = base_task.await?;
    baseline.sort_by(f64::total_cmp);
    let (hwm_before, rss_before) = memory_mib(pid);

    // The attack, with the other tenant measured meanwhile.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let during_task = tokio::spawn(steady(http.clone(), base.clone(), other_token.clone(), stop_rx));
    let clients: Vec<reqwest::Client> = (0..args.sources)
        .map(|i| {
            let ip: IpAddr = format!("127.0.0.{}", 11 + i).parse().expect("an address");
            reqwest::Client::builder().local_address(ip).pool_max_idle_per_host(args.concurrency).build()
        })
        .collect::<Result<_, _>>()?;
    let counts: Arc<[AtomicU64; 6]> = Arc::new(Default::default()); // 401, 429, 423, 503, 5xx, other
    let next = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let (_, rss) = memory_mib(pid);
                peak.fetch_max((rss * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (client, base, counts, next) =
            (clients[w % clients.len()].clone(), base.clone(), counts.clone(), next.clone());
        let total = args.attempts as u64;
        let spread = args.spread;
        let gap = Duration::from_secs_f64(args.seconds.max(0.0) / args.attempts.max(1) as f64);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                // The i-th attempt leaves at its time on the schedule (an open loop: a slow answer
                // does not slow the attack down).
                tokio::time::sleep_until((t0 + gap * u32::try_from(i).unwrap_or(u32::MAX)).into()).await;
                let who = if spread { format!("guess{i}") } else { "admin".to_string() };
                let slot = match login(&client, &base, "demo", &who, "Wrong-guess-1").await {
                    Ok((401, _)) => 0,
                    Ok((429, _)) => 1,
                    Ok((423, _)) => 2,
                    Ok((503, _)) => 3,
                    Ok((s, _)) if s >= 500 => 4,
                    _ => 5,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let attack_s = t0.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let mut during = during_task.await?;
    during.sort_by(f64::total_cmp);
    sampler.abort();
    let (hwm_after, rss_after) = memory_mib(pid);
    let peak_rss = peak.load(Ordering::Relaxed) as f64 / 1024.0;

    // Is the account locked? The second MGR reads it.
    let (s, v) = login(&http, &base, "demo", "boss2", "Bench-boss-2").await?;
    anyhow::ensure!(s == 200, "second MGR's login: {s} {v}");
    let boss = v["token"].as_str().unwrap_or_default().to_string();
    let user: Value = http.get(format!("{base}/users/{admin_id}")).bearer_auth(&boss).send().await?.json().await?;
    let locked = user["locked_at"].is_string();
    let audit: Value = http
        .get(format!("{base}/audit-events?kind=login_failed&limit=1"))
        .bearer_auth(&boss)
        .send()
        .await?
        .json()
        .await?;
    let audited_failures = audit["total"].as_i64().unwrap_or(-1);

    // Slow connections: each should be closed within the head time-out (10 s) while others are served.
    let addr = base.trim_start_matches("http://").to_string();
    let t_slow = Instant::now();
    let slow: Vec<_> = (0..args.slow).map(|_| tokio::spawn(slow_head(addr.clone(), Duration::from_secs(60)))).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t_ok = Instant::now();
    let ok = http.get(format!("{base}/healthz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    let healthz_ms = t_ok.elapsed().as_secs_f64() * 1000.0;
    let mut lived = Vec::new();
    for s in slow {
        lived.push(s.await?.as_secs_f64());
    }
    lived.sort_by(f64::total_cmp);
    let slow_wall = t_slow.elapsed().as_secs_f64();

    // SIGTERM with 100 slow connections open (and one idle kept-alive connection).
    let slow: Vec<_> = (0..args.slow).map(|_| tokio::spawn(slow_head(addr.clone(), Duration::from_secs(60)))).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t_term = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    if !killed.success() {
        bail!("kill -TERM failed");
    }
    let mut exited = None;
    while t_term.elapsed() < Duration::from_secs(30) {
        if let Some(status) = api.child.try_wait()? {
            exited = Some((t_term.elapsed().as_secs_f64(), status.success()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in slow {
        s.abort();
    }

    let c = |i: usize| counts[i].load(Ordering::Relaxed);
    let report = json!({
        "attempts": args.attempts, "sources": args.sources, "spread": args.spread, "concurrency": args.concurrency,
        "attack_seconds": attack_s,
        "answers": {"401": c(0), "429": c(1), "423": c(2), "503": c(3), "5xx": c(4), "other": c(5)},
        "account_locked": locked, "audited_failures": audited_failures,
        "memory_mib": {"rss_before": rss_before, "hwm_before": hwm_before, "rss_peak_during": peak_rss, "rss_after": rss_after, "hwm_after": hwm_after},
        "other_tenant_ms": {
            "baseline": {"n": baseline.len(), "p50": pct(&baseline, 0.5), "p99": pct(&baseline, 0.99)},
            "during": {"n": during.len(), "p50": pct(&during, 0.5), "p99": pct(&during, 0.99), "max": during.last().copied().unwrap_or(0.0)},
        },
        "slow_connections": {"n": args.slow, "lived_s_min": lived.first().copied().unwrap_or(0.0), "lived_s_max": lived.last().copied().unwrap_or(0.0),
            "wall_s": slow_wall, "healthz_meanwhile": ok, "healthz_ms": healthz_ms},
        "sigterm": {"exit_s": exited.map(|e| e.0), "clean": exited.map(|e| e.1)},
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// The production binary beside this one (`cargo build --release -p kakeru -p bench` builds both).
fn kakeru_binary() -> anyhow::Result<std::path::PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("kakeru");
    anyhow::ensure!(bin.exists(), "{} is missing: build it with `cargo build --release -p kakeru`", bin.display());
    Ok(bin)
}
