//! `kakeru-bench control`: one control service over a real Redis and the database given
//! (`--database-url`: a scratch database on that PostgreSQL server, or a new SQLite file; by default
//! a SQLite file in a temporary directory), N agents, each agent
//! closed-loop (one command in flight): pause, then go ready when the pause shows on the wallboard
//! feed, and so on. Measures state changes applied per second through the one service, and the
//! latency from publishing the command to the change arriving on the wallboard feed (what the SSE
//! handler forwards), p50 and p99. Afterwards every command must be exactly one stored transition:
//! `lost` and `duplicated` count the difference.
//!
//! With `--rate R` the load is offered instead (open loop): R commands a second spread over the
//! agents, each agent's next command only once its last change arrived (an agent still waiting when
//! its turn comes is passed over and counted in `deferred`). Closed loop measures the most the
//! service sustains (its latency is then the queue of 10,000 agents); an offered rate below that
//! measures the latency of one change through the service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bus::{Bus, Envelope, RedisBus, RedisBusConfig};
use control::service::{Service, ServiceConfig, ServiceStats};
use store::sqlx::{self, Row};
use wallboard::{Feed, FeedLimits, Push, Tile};
use wire::agent::{AgentConfig, AgentId, AgentState, PauseReasonId};
use wire::{streams, ApiCommand, CampaignId, ShardEvent};

use crate::scratch::Scratch;

#[derive(clap::Args, Debug, Clone)]
pub struct ControlArgs {
    #[arg(long, default_value_t = 10_000)]
    pub agents: u64,
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// redis://host:port of a Redis for the bench: required, never taken from the environment,
    /// so that the bench never meets a production Redis by default. Its streams carry a prefix of
    /// their own and are deleted at the end.
    #[arg(long)]
    pub redis_url: String,
    /// The backend measured: postgres://USER:PASSWORD@HOST:PORT/DB (the bench creates a scratch
    /// database on that server and drops it at the end) or sqlite:PATH (a new file, removed at the
    /// end). Without it: a SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Publishing connections.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Offered commands a second (open loop); without it every agent has one command in flight.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Most commands being published at once (the API's concurrent requests).
    #[arg(long, default_value_t = 4_096)]
    pub in_flight: usize,
    /// Keep the reports' rollups beside the service while it runs, as a node does
    /// (`store::rollups::refresh` every 20 s on the bench's tenant, the first at the start): what
    /// keeping them costs the control service is this run against one without.
    #[arg(long)]
    pub rollups: bool,
}

async fn publish(bus: &RedisBus, stream: &str, env: &Envelope) -> anyhow::Result<()> {
    bus.publish(stream, env).await.map(|_| ()).context("publish")
}

pub async fn run(args: &ControlArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=20_000).contains(&args.agents), "--agents must be 1..=20000");
    anyhow::ensure!((1..=3_600).contains(&args.seconds), "--seconds must be 1..=3600");
    anyhow::ensure!(args.rate != Some(0), "--rate must be > 0");
    let scratch = Scratch::for_url(args.database_url.as_deref(), "--database-url").await?;
    let db = store::Db::connect(&scratch.url).await.context("--database-url")?;
    let t = u64::try_from(store::tenancy::create_tenant(&db, "bench", "bench", "Asia/Tokyo", 0).await?)?;
    let reason: i64 =
        sqlx::query("INSERT INTO pause_reasons (tenant_id, name, created_at) VALUES ($1, 'away', 0) RETURNING id")
            .bind(t as i64)
            .fetch_one(&db.pool)
            .await?
            .try_get("id")?;
    let reason = PauseReasonId(u32::try_from(reason)?);
    let mut rc = RedisBusConfig::new(args.redis_url.clone());
    rc.prefix = format!("kakeru-bench-{}-{}:", std::process::id(), rand::random::<u32>());
    let connect = || RedisBus::connect(rc.clone());
    let feed = Arc::new(Feed::new(FeedLimits { replay: 16_384, per_client: 1 << 20 }));
    let mut cfg = ServiceConfig::new(t, "bench");
    cfg.batch = 1_000;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = spawn_service(rc.clone(), db.clone(), cfg, feed.clone(), stop_rx).await?;
    let mut pubs = Vec::new();
    for _ in 0..args.publishers.clamp(1, 64) {
        pubs.push(connect().await?);
    }
    let commands = streams::control_commands(t);
    let shard = streams::shard_events(t);

    // Log every agent in and bring the legs up.
    let n = args.agents;
    let config = AgentConfig { idle_logoff_ms: 24 * 3_600_000, ..AgentConfig::default() };
    for a in 1..=n {
        let c = ApiCommand::StartCallJob {
            agent_id: AgentId(a),
            campaign_id: CampaignId(1),
            config,
            call_job_id: None,
            dialing_group_id: None,
        };
        publish(&pubs[(a as usize) % pubs.len()], &commands, &Envelope::new(t, 0, &c)?).await?;
    }
    wait_states(&feed, n, AgentState::Ringing).await?;
    for a in 1..=n {
        let e = ShardEvent::AgentLegUp { agent_id: AgentId(a), shard: 0 };
        publish(&pubs[(a as usize) % pubs.len()], &shard, &Envelope::new(t, 0, &e)?).await?;
    }
    wait_states(&feed, n, AgentState::Ready).await?;
    let base: i64 = count(&db, t).await?;
    let base_msgs: i64 = count_applied(&db, t).await?;
    // Subscribed only now: the login changes are not in its buffer.
    let mut rx = feed.subscribe(None).rx;

    // Closed loop: one command in flight per agent.
    let (send_tx, mut send_rx) = tokio::sync::mpsc::channel::<(u64, bool)>(n as usize + 16);
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pubs = Arc::new(pubs);
    let in_flight = args.in_flight.clamp(1, 65_536);
    let sender = {
        let (sent, published, pubs, commands) = (sent.clone(), published.clone(), pubs.clone(), commands.clone());
        tokio::spawn(async move {
            let mut k = 0usize;
            let mut inflight = tokio::task::JoinSet::new();
            while let Some((a, pause)) = send_rx.recv().await {
                let c = if pause {
                    ApiCommand::Pause { agent_id: AgentId(a), reason_id: reason }
                } else {
                    ApiCommand::GoReady { agent_id: AgentId(a) }
                };
                let Ok(env) = Envelope::new(t, 0, &c) else { continue };
                let bus = pubs[k % pubs.len()].clone();
                k += 1;
                let (sent, published, commands) = (sent.clone(), published.clone(), commands.clone());
                while inflight.len() >= in_flight {
                    inflight.join_next().await;
                }
                inflight.spawn(async move {
                    sent.lock().unwrap_or_else(|p| p.into_inner()).insert(a, Instant::now());
                    if bus.publish(&commands, &env).await.is_ok() {
                        published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
            while inflight.join_next().await.is_some() {}
        })
    };
    // Agents whose next command may go (open loop), with whether it is a pause.
    let mut idle: std::collections::VecDeque<(u64, bool)> = std::collections::VecDeque::new();
    if args.rate.is_some() {
        idle.extend((1..=n).map(|a| (a, true)));
    } else {
        for a in 1..=n {
            send_tx.send((a, true)).await?;
        }
    }
    let refreshes: Arc<Mutex<Vec<f64>>> = Arc::default();
    let rollups = args.rollups.then(|| {
        let (db, refreshes) = (db.clone(), refreshes.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(store::rollups::REFRESH_EVERY_MS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let began = Instant::now();
                if let Err(e) = store::rollups::refresh(&db, t as i64, store::now_ms()).await {
                    return Err::<(), _>(e);
                }
                refreshes.lock().unwrap_or_else(|p| p.into_inner()).push(began.elapsed().as_secs_f64() * 1000.0);
            }
        })
    });
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut lat_us: Vec<u64> = Vec::with_capacity(1 << 20);
    // The same latencies by the 5-s window they arrived in: where in a run its tail is.
    let mut windows: Vec<Vec<u64>> = Vec::new();
    let mut running = true;
    let (mut offered, mut deferred) = (0u64, 0u64);
    let mut pace = tokio::time::interval(Duration::from_millis(1));
    while Instant::now() < end + Duration::from_secs(5) {
        if let Some(rate) = args.rate {
            // Commands due by now at the offered rate, taken from the agents that may go.
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while running && offered < due && Instant::now() < end {
                offered += 1;
                match idle.pop_front() {
                    Some(next) => {
                        let _ = send_tx.try_send(next);
                    }
                    None => deferred += 1,
                }
            }
        }
        let recv = async {
            if args.rate.is_some() {
                tokio::select! {
                    r = rx.recv() => Some(r),
                    _ = pace.tick() => None,
                }
            } else {
                Some(rx.recv().await)
            }
        };
        let change = match tokio::time::timeout(Duration::from_millis(200), recv).await {
            Ok(None) => continue,
            Ok(Some(r)) => Ok(r),
            Err(e) => Err(e),
        };
        let change = match change {
            Ok(Ok(Push::Change(c))) => c,
            Ok(Ok(Push::Reset)) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(_)) => break,
            Err(_) => {
                if !running {
                    break;
                }
                continue;
            }
        };
        let Tile::Agent(a) = &change.tile else { continue };
        let id = a.agent_id.0;
        let t0 = sent.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if let Some(t0) = t0 {
            let us = t0.elapsed().as_micros() as u64;
            lat_us.push(us);
            let w = (start.elapsed().as_secs() / WINDOW_S) as usize;
            if windows.len() <= w {
                windows.resize_with(w + 1, Vec::new);
            }
            windows[w].push(us);
            if running && Instant::now() < end {
                if args.rate.is_some() {
                    idle.push_back((id, a.state == AgentState::Ready));
                } else {
                    let _ = send_tx.try_send((id, a.state == AgentState::Ready));
                }
            } else {
                running = false;
            }
        }
    }
    let elapsed = Instant::now().min(end).duration_since(start).as_secs_f64();
    if let Some(r) = rollups {
        if r.is_finished() {
            // It ended before being stopped: a refresh failed.
            r.await?.context("rollup refresh")?;
        } else {
            r.abort();
        }
    }
    let refreshes = std::mem::take(&mut *refreshes.lock().unwrap_or_else(|p| p.into_inner()));
    drop(send_tx);
    sender.await?;
    // Drain: every published command applied.
    let published = published.load(std::sync::atomic::Ordering::Relaxed) as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut applied = count_applied(&db, t).await? - base_msgs;
    while applied < published && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        applied = count_applied(&db, t).await? - base_msgs;
    }
    let transitions = count(&db, t).await? - base;
    let _ = stop_tx.send(());
    let stats = tokio::task::spawn_blocking(move || service.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the control service's thread panicked"))??;
    lat_us.sort_unstable();
    let pct = |p: f64| ms_at(&lat_us, p);
    let p99_per_window: Vec<f64> = windows
        .iter_mut()
        .map(|w| {
            w.sort_unstable();
            ms_at(w, 0.99)
        })
        .collect();
    let out = serde_json::json!({
        "agents": n,
        "seconds": args.seconds,
        "events_per_s": lat_us.len() as f64 / elapsed,
        "latency_p50_ms": pct(0.50),
        "latency_p99_ms": pct(0.99),
        "latency_p99_ms_per_5s": p99_per_window,
        "published": published,
        "applied": applied,
        "transitions": transitions,
        "lost": (published - applied).max(0),
        "duplicated": (applied - published).max(0) as u64 + stats.duplicates,
        "batches": stats.batches,
        "offered_per_s": args.rate,
        "deferred": deferred,
        "store": scratch.backend_name(),
        "bus": "redis",
        "rollups": args.rollups,
        "rollup_refresh_ms": refreshes,
    });
    for s in [commands, shard, streams::agent_events(t)] {
        let _ = cleanup(&args.redis_url, &format!("{}{s}", rc.prefix)).await;
    }
    scratch.finish(db).await;
    if args.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

/// Starts the control service on a runtime of its own, as `kakeru control` runs in a process of
/// its own: the bench's publishers and feed reader, on the bench's runtime, do not take the
/// service's turns (they still share the machine's cores with it). Returns once the service is
/// open; the thread returns the service's counters after `stop`.
async fn spawn_service(
    rc: RedisBusConfig,
    db: store::Db,
    cfg: ServiceConfig,
    feed: Arc<Feed>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<ServiceStats>>> {
    let (opened_tx, opened) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let thread = std::thread::Builder::new().name("control".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(SERVICE_THREADS).enable_all().build()?;
        rt.block_on(async move {
            // The connections are made here: their I/O tasks run on this runtime.
            let open = async {
                let svc = Service::open(RedisBus::connect(rc.clone()).await?, db, cfg, feed).await?;
                let readers = [RedisBus::connect(rc.clone()).await?, RedisBus::connect(rc).await?];
                Ok::<_, anyhow::Error>((svc, readers))
            };
            match open.await {
                Ok((svc, readers)) => {
                    let _ = opened_tx.send(Ok(()));
                    Ok(svc
                        .run(readers, async move {
                            let _ = stop.await;
                        })
                        .await?)
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(format!("{e:#}")));
                    Err(e)
                }
            }
        })
    })?;
    opened.await?.map_err(|e| anyhow::anyhow!("opening the control service: {e}"))?;
    Ok(thread)
}

/// The latency at rank `p` of `sorted` (µs), in ms; 0 when empty.
fn ms_at(sorted: &[u64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0) as f64
        / 1000.0
}

/// The width of the windows of `latency_p99_ms_per_5s`, in seconds.
const WINDOW_S: u64 = 5;

/// Worker threads of the service's runtime (as `kakeru control` has on this machine's two cores).
const SERVICE_THREADS: usize = 2;

async fn count(db: &store::Db, t: u64) -> anyhow::Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) FROM agent_transitions WHERE tenant_id = $1")
        .bind(t as i64)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?)
}

async fn count_applied(db: &store::Db, t: u64) -> anyhow::Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) FROM control_applied WHERE tenant_id = $1")
        .bind(t as i64)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?)
}

async fn wait_states(feed: &Feed, n: u64, state: AgentState) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = feed.snapshot();
        if s.agents.iter().filter(|a| a.state == state).count() as u64 >= n {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "agents did not reach {}", state.name());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes a stream (and its dead letters) the bench made.
pub async fn cleanup(url: &str, stream: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    redis::cmd("DEL").arg(stream).arg(format!("{stream}:dead")).query_async::<()>(&mut c).await?;
    Ok(())
}
