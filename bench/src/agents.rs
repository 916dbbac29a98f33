//! `kakeru-bench agents`: the agents' push channel under load. One API process (its agent hub
//! following `agent:events`), the control service and N agents' SSE clients (Rust, the simulated
//! agents' client, `sim::sse`), all over the in-process bus and a SQLite file. The generator offers
//! `--rate` state changes a second in all (pause, then ready again, per agent in turn), each
//! through control (applied, published, committed) and out on the changed agent's channel only.
//! Measured per event: from control applying the change (the transition's `at_ms`, before its
//! commit) to the client reading it; and every change sent must arrive: `lost` counts those that
//! did not, `extra` those that arrived twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bus::{Bus, BusConfig, Envelope, MemoryBus};
use control::service::ServiceConfig;
use wallboard::Feed;
use wire::agent::{AgentConfig, AgentId, PauseReasonId};
use wire::{streams, ApiCommand, CampaignId, ShardEvent};

#[derive(clap::Args, Debug, Clone)]
pub struct AgentsArgs {
    /// Agents connected to the API process.
    #[arg(long, default_value_t = 1_000)]
    pub agents: usize,
    /// State changes a second, in all.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn now_ms() -> u64 {
    u64::try_from(store::now_ms()).unwrap_or(0)
}

async fn publish<M: wire::Message>(bus: &MemoryBus, stream: &str, tenant: u64, m: &M) -> anyhow::Result<()> {
    let env = Envelope::new(tenant, now_ms(), m).context("encode")?;
    bus.publish(stream, &env).await.context("publish")?;
    Ok(())
}

fn pct(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn wait_transitions(db: &store::Db, tenant: i64, n: i64) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while store::seed::transitions(db, tenant).await? < n {
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(120), "the agents' logins were not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub async fn run(args: &AgentsArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=20_000).contains(&args.agents), "--agents: between 1 and 20000");
    anyhow::ensure!((1..=100_000).contains(&args.rate), "--rate: between 1 and 100000");
    let dir = tempfile::tempdir()?;
    let db = store::Db::connect(&format!("sqlite:{}/bench.db", dir.path().display())).await?;
    let now = store::now_ms();
    let tenant = store::tenancy::create_tenant(&db, "bench", "bench", "Asia/Tokyo", now).await?;
    let t = tenant as u64;
    let agents = store::seed::bench_agents(&db, tenant, args.agents, now, 24 * 3_600_000).await?;
    let reason = store::seed::bench_pause_reason(&db, tenant, now).await?;
    let bus = MemoryBus::new(BusConfig::default());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let b = bus.clone();
    let control = tokio::spawn(control::service::supervise(
        move || {
            let b = b.clone();
            async move { Ok::<_, bus::BusError>([b.clone(), b.clone(), b]) }
        },
        db.clone(),
        ServiceConfig::new(t, "bench-agents"),
        Arc::new(Feed::default()),
        stop.clone(),
    ));
    let hub = api::desk::hub::AgentHub::default();
    let h2 = (hub.clone(), bus.clone(), stop.clone());
    let follower = tokio::spawn(async move { h2.0.follow(h2.1, t, None, h2.2).await });
    let config =
        api::Config { commands: bus::Publisher::new(bus.clone()), agents: hub.clone(), ..api::Config::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = api::build(db.clone(), config);
    let mut s2 = stop.clone();
    // Every agent's client comes from this one address: the cap per source is the agents' count.
    let limits = api::serve::ServeLimits {
        max_connections_per_source: args.agents * 2 + 64,
        max_connections: args.agents * 2 + 64,
        ..api::serve::ServeLimits::default()
    };
    let server = tokio::spawn(api::serve::serve_with(listener, app, limits, async move {
        let _ = s2.wait_for(|s| *s).await;
    }));

    // Every agent logged in and ready (as the phone's answer would make them).
    // (Logins first, legs after: the two arrive on two streams, read apart.)
    let config = AgentConfig { idle_logoff_ms: 24 * 3_600_000, ..AgentConfig::default() };
    let n = agents.len() as i64;
    for (id, _) in &agents {
        let c = ApiCommand::StartCallJob {
            agent_id: AgentId(*id as u64),
            campaign_id: CampaignId(1),
            config,
            call_job_id: None,
            dialing_group_id: None,
        };
        publish(&bus, &streams::control_commands(t), t, &c).await?;
    }
    wait_transitions(&db, tenant, n).await?;
    for (id, _) in &agents {
        let e = ShardEvent::AgentLegUp { agent_id: AgentId(*id as u64), shard: 0 };
        publish(&bus, &streams::shard_events(t), t, &e).await?;
    }
    wait_transitions(&db, tenant, 2 * n).await?;

    // The clients, each counting its own transitions and their latency.
    let received: Arc<Vec<AtomicU64>> = Arc::new((0..agents.len()).map(|_| AtomicU64::new(0)).collect());
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::with_capacity(1 << 20)));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connected = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.agents + 16).build()?;
    let mut clients = tokio::task::JoinSet::new();
    for (i, (_, token)) in agents.iter().enumerate() {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let (received, latencies, measuring, connected) =
            (received.clone(), latencies.clone(), measuring.clone(), connected.clone());
        let mut stop = stop.clone();
        clients.spawn(async move {
            let mut s = sim::sse::AgentStream::new(http, &base, &token);
            let mut first = true;
            loop {
                let ev = tokio::select! {
                    _ = stop.changed() => return,
                    ev = s.next(Duration::from_millis(200)) => ev,
                };
                let Ok(ev) = ev else { continue };
                if first {
                    first = false;
                    connected.fetch_add(1, Ordering::Relaxed);
                }
                if ev.event != "state" || !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                let at = ev
                    .data
                    .split("\"at_ms\":")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(at) = at {
                    let lat = now_ms().saturating_sub(at);
                    received[i].fetch_add(1, Ordering::Relaxed);
                    latencies.lock().map(|mut l| l.push(lat)).ok();
                }
            }
        });
    }
    let t0 = Instant::now();
    while connected.load(Ordering::Relaxed) < agents.len() as u64 {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(120),
            "only {} clients connected",
            connected.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the logins' transitions drain before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);

    // The offered load: agents in turn, paused then ready again.
    let mut sent = vec![0u64; agents.len()];
    let mut paused = vec![false; agents.len()];
    let total = args.rate * args.seconds;
    let start = Instant::now();
    let commands = streams::control_commands(t);
    for k in 0..total {
        let due = start + Duration::from_nanos(k * 1_000_000_000 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        let i = (k as usize) % agents.len();
        let a = AgentId(agents[i].0 as u64);
        let c = if paused[i] {
            ApiCommand::GoReady { agent_id: a }
        } else {
            ApiCommand::Pause { agent_id: a, reason_id: PauseReasonId(u32::try_from(reason).unwrap_or(0)) }
        };
        paused[i] = !paused[i];
        publish(&bus, &commands, t, &c).await?;
        sent[i] += 1;
    }
    let offered_s = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(15);
    let all: u64 = sent.iter().sum();
    loop {
        let got: u64 = received.iter().map(|r| r.load(Ordering::Relaxed)).sum();
        if got >= all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut lost = 0u64;
    let mut extra = 0u64;
    for (i, s) in sent.iter().enumerate() {
        let r = received[i].load(Ordering::Relaxed);
        lost += s.saturating_sub(r);
        extra += r.saturating_sub(*s);
    }
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let stored = store::seed::transitions(&db, tenant).await? - 2 * n;
    let _ = stop_tx.send(true);
    clients.abort_all();
    let _ = server.await;
    let _ = follower.await;
    let _ = control.await;
    let out = serde_json::json!({
        "agents": args.agents, "rate": args.rate, "seconds": args.seconds,
        "offered_per_s": (all as f64 / offered_s).round(),
        "sent": all, "applied": stored, "received": lat.len(), "lost": lost, "extra": extra,
        "latency_ms": {"p50": pct(&lat, 0.5), "p99": pct(&lat, 0.99), "max": lat.last().copied().unwrap_or(0)},
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "agents {} | offered {:.0}/s for {} s | sent {all} applied {stored} received {} lost {lost} extra {extra} | control to client: p50 {} ms p99 {} ms max {} ms",
            args.agents,
            all as f64 / offered_s,
            args.seconds,
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or(0)
        );
    }
    Ok(())
}
