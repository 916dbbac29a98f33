//! `kakeru demo`: a whole floor in one process on the embedded default.
//!
//! The real system (the SQLite file, the in-process bus, the admin API, the control service and
//! the dialer engine on its media shard) plus the floor it works for, simulated at its edges only:
//!
//! - a **carrier** ([`sim::carrier`]): real SIP and RTP on loopback; customers answer with the
//!   pacing simulator's distributions (answer probability, answer delay lognormal with mean 8 s,
//!   30 % of the non-answers failing at about 3 s, the rest ringing until the ring timeout);
//! - **agents' phones** ([`sim::phone`]): REGISTER with digest, auto-answer the nailed-up leg, RTP;
//! - **agents** ([`sim::agent`]): each logs in through the API and works through the same
//!   endpoints and push channel (`GET /agent/stream`) as the agent desktop: talks for a drawn time
//!   (lognormal) and hangs the customer up, then saves the wrap-up record after a drawn time. An
//!   agent paused by a supervisor from the wallboard comes back after a minute's break.
//! - **a person**: one more agent, `op000`, is left to whoever opens the agent desktop (`/`) with
//!   the printed login; its phone is a simulated one too (it answers the nailed-up leg).
//!
//! The demo tenant gets (once) a dialing group and a predictive campaign, its agents (users with
//! SIP phones; fresh passwords every run), and every run a generated list and a call job over it,
//! started through the API as the floor manager. Ctrl-C stops the job through the API, lets the
//! dialer give every call in progress its result and close its recording, and logs the agents off.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use serde_json::json;
use sim::agent::Api;
use store::Db;
use tokio::sync::watch;

use crate::node::{Node, NodeConfig};

/// The campaign and group the demo tenant works (created once, kept across runs).
pub const CAMPAIGN_NAME: &str = "デモ発信";
pub const GROUP_NAME: &str = "デモ班";

/// What the demo floor looks like.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Simulated agents (each a user with a SIP phone).
    pub agents: usize,
    /// Agents left to people at the agent desktop (op000...), besides the simulated ones.
    pub people: usize,
    /// The campaign's channel limit (最大チャンネル).
    pub channels: u32,
    /// Share of calls a live person answers.
    pub answer_prob: f64,
    /// Mean talk time (lognormal, cv 1), seconds.
    pub talk_mean_s: f64,
    /// Mean time to save the wrap-up record, seconds.
    pub wrapup_mean_s: f64,
    /// Leads in the generated list (0: 200 per agent, at least 2,000).
    pub leads: usize,
    /// Media shards of the dialer.
    pub shards: usize,
    /// Where recordings go (`None`: not recorded).
    pub recordings_dir: Option<PathBuf>,
    pub seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            agents: 50,
            people: 1,
            channels: 200,
            answer_prob: 0.3,
            talk_mean_s: 120.0,
            wrapup_mean_s: 10.0,
            leads: 0,
            shards: 1,
            recordings_dir: Some(PathBuf::from("kakeru-recordings")),
            seed: rand::random(),
        }
    }
}

/// `kakeru demo`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Simulated agents.
    #[arg(long, default_value_t = 50)]
    pub agents: usize,
    /// Agents left to people at the agent desktop (op000, op001, ...: their logins are printed).
    #[arg(long, default_value_t = 1)]
    pub people: usize,
    /// The campaign's channel limit (最大チャンネル).
    #[arg(long, default_value_t = 200)]
    pub channels: u32,
    /// Share of calls a live person answers.
    #[arg(long, default_value_t = 0.3)]
    pub answer_prob: f64,
    /// Mean talk time, seconds (lognormal, cv 1).
    #[arg(long, default_value_t = 120.0)]
    pub talk_mean_s: f64,
    /// Mean time an agent takes to save the wrap-up record, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub wrapup_mean_s: f64,
    /// Leads in the generated list (default: 200 per agent, at least 2,000).
    #[arg(long, default_value_t = 0)]
    pub leads: usize,
    /// Media shards of the dialer.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Where recordings are written.
    #[arg(long, default_value = "kakeru-recordings")]
    pub recordings_dir: PathBuf,
    /// Address of the API and the wallboard.
    #[arg(long, env = "KAKERU_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Seed of the simulated floor (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl DemoArgs {
    pub fn config(&self) -> DemoConfig {
        DemoConfig {
            agents: self.agents,
            people: self.people,
            channels: self.channels,
            answer_prob: self.answer_prob,
            talk_mean_s: self.talk_mean_s,
            wrapup_mean_s: self.wrapup_mean_s,
            leads: self.leads,
            shards: self.shards,
            recordings_dir: Some(self.recordings_dir.clone()),
            seed: self.seed.unwrap_or_else(rand::random),
        }
    }
}

/// One agent's accounts (the demo's agents are [`sim::floor`]'s).
pub use sim::floor::AgentAccount as DemoAgent;
pub use sim::floor::{start_agents, start_phones, AgentWork, SimAgents};

/// The floor in the database.
struct Floor {
    tenant_id: i64,
    tenant_code: String,
    job: i64,
    leads: usize,
    agents: Vec<DemoAgent>,
    result_codes: Vec<i64>,
}

fn step(msg: impl AsRef<str>) {
    eprintln!("kakeru demo: {}", msg.as_ref());
}

/// Runs the demo until `shutdown` completes, then stops it cleanly.
pub async fn run(
    database_url: &str,
    listen: &str,
    cfg: DemoConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if cfg.agents == 0 || cfg.agents > 5_000 {
        bail!("--agents: between 1 and 5000");
    }
    if cfg.people > 100 {
        bail!("--people: between 0 and 100");
    }
    if cfg.channels == 0 || cfg.channels > 10_000 {
        bail!("--channels: between 1 and 10000");
    }
    if !(0.01..=1.0).contains(&cfg.answer_prob) {
        bail!("--answer-prob: between 0.01 and 1");
    }
    if !(1.0..=3_600.0).contains(&cfg.talk_mean_s) {
        bail!("--talk-mean-s: between 1 and 3600");
    }
    let started = Instant::now();
    step(format!("opening {database_url} ..."));
    let mut node_cfg = NodeConfig::new(database_url);
    // Every simulated agent's clients come from this host: room for them on top of the default cap.
    node_cfg.api_limits.max_connections_per_source += cfg.agents * 4;
    let node = Node::open(node_cfg).await?;
    let db = node.db().clone();
    let admin = store::seed::ensure_demo_tenant(&db, store::now_ms()).await.context("seeding the demo tenant")?;
    step(format!("preparing the floor: {} agents with SIP phones, a generated list ...", cfg.agents));
    let floor = prepare_floor(&db, &cfg).await.context("preparing the demo floor")?;
    step(format!(
        "floor ready: campaign {CAMPAIGN_NAME} (predictive, {} channels, abandon target 3%), {} leads",
        cfg.channels, floor.leads
    ));

    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("--listen: cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let mut node = node;
    node.spawn_api(listener);
    node.spawn_control();
    if cfg.recordings_dir.is_some() {
        node.spawn_archiver();
    }
    step(format!("API on {base}, control service in this process (in-process bus)"));

    // The simulated edges stop after the dialer, so that its last calls end the real way.
    let (sim_stop, sim_rx) = watch::channel(false);
    let (engine_stop, engine_rx) = watch::channel(false);
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let carrier = sim::carrier::start(
        loopback,
        sim::carrier::CarrierConfig {
            answer_prob: cfg.answer_prob,
            // The agents hang up (after their drawn talk time); a customer never does first.
            hang_up: false,
            seed: cfg.seed,
            voice: Some(customer_voice()),
            ..sim::carrier::CarrierConfig::default()
        },
        sim_rx.clone(),
    )
    .await
    .context("starting the carrier simulator")?;
    step(format!("carrier simulator on {} (answer probability {:.2})", carrier.sip_addr, cfg.answer_prob));

    let mut ecfg = dialer::engine::EngineConfig::new(carrier.sip_addr);
    ecfg.shards = cfg.shards.max(1);
    ecfg.tenants = Some(vec![floor.tenant_id as u64]);
    ecfg.recordings_dir = cfg.recordings_dir.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let bus = node.bus().clone();
    let engine_db = db.clone();
    let engine =
        tokio::spawn(async move { dialer::engine::run(engine_db, bus, ecfg, engine_rx, Some(ready_tx)).await });
    let info = ready_rx.await.context("the dialer did not start its shards")?;
    step(format!("dialer: {} shard(s), SIP on {:?}", info.sip_addrs.len(), info.sip_addrs));

    let _phones = start_phones(&floor.agents, &floor.tenant_code, info.sip_addrs[0], sim_rx.clone(), |n, all| {
        eprint!("\rkakeru demo: phones registered {n}/{all}   ");
        if n == all {
            eprintln!();
        }
    })
    .await?;

    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let manager = Api::login(&http, &base, &admin.tenant, &admin.login, &admin.password)
        .await
        .context("the floor manager's login")?;
    manager.post(&format!("/call-jobs/{}/start", floor.job), &json!({})).await.context("starting the call job")?;
    step("call job started (POST /call-jobs/{id}/start)");

    let floor = Arc::new(floor);
    // The first agents (op000...) are the people's; the others are simulated.
    let simulated = &floor.agents[cfg.people..];
    let work = AgentWork {
        result_codes: floor.result_codes.clone(),
        talk_mean_ms: cfg.talk_mean_s * 1000.0,
        wrapup_mean_ms: cfg.wrapup_mean_s * 1000.0,
        forgetful: 0,
        seed: cfg.seed,
    };
    let mut sims =
        start_agents(&http, &base, &floor.tenant_code, simulated, floor.job, &work, Some(manager.token().to_owned()));
    let counts = sims.counts.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = counts.logged_in.load(Ordering::Relaxed) as usize;
        eprint!("\rkakeru demo: agents logged in {n}/{}   ", simulated.len());
        if n >= simulated.len() || Instant::now() > deadline {
            eprintln!();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    println!();
    println!("  wallboard:  {base}/ui/wallboard");
    println!(
        "  login:      tenant {}  login {}  password {}   (an MGR: sees every campaign and agent)",
        admin.tenant, admin.login, admin.password
    );
    println!("  desktop:    {base}/   (the agent desktop: log in, start the call job, take calls)");
    for (i, person) in floor.agents[..cfg.people].iter().enumerate() {
        let phone = if i == 0 {
            "its phone is the browser phone: allow the microphone, start the call job, talk with the customers"
        } else {
            "its phone answers by itself"
        };
        println!(
            "  operator:   tenant {}  login {}  password {}   (an OP beside the {} simulated agents; {phone})",
            admin.tenant,
            person.login,
            person.password,
            simulated.len()
        );
    }
    println!("  API docs:   {base}/docs      metrics: {base}/metrics");
    println!(
        "  started in {:.1} s; Ctrl-C stops (the job stops, every call gets its result)",
        started.elapsed().as_secs_f64()
    );
    println!();

    // The status line, until Ctrl-C.
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                let s = info.stats.lock().map(|s| *s).unwrap_or_default();
                let c = &counts;
                let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let abandon = if s.answered > 0 { 100.0 * s.abandoned as f64 / s.answered as f64 } else { 0.0 };
                println!(
                    "[{:>5.0} s] agents {} ready {} talking {} wrap-up {} paused {} | calls dialled {} in flight {} answered {} connected {} abandoned {} ({abandon:.1}%) | records saved {}",
                    started.elapsed().as_secs_f64(),
                    ld(&c.logged_in), ld(&c.ready), ld(&c.talking), ld(&c.wrap_up), ld(&c.paused),
                    s.launched, s.launched.saturating_sub(s.ended + s.restricted), s.answered, s.bridged, s.abandoned, ld(&c.saved),
                );
            }
            Some(r) = sims.join_next() => {
                if let Ok(Err(e)) = r {
                    tracing::warn!(error = %e, "a simulated agent stopped");
                }
            }
        }
    }

    println!("kakeru demo: stopping: the call job stops, calls in progress get their results ...");
    let agents_stopped = sims.stop();
    if let Err(e) = manager.post(&format!("/call-jobs/{}/stop", floor.job), &json!({})).await {
        tracing::warn!(error = %format!("{e:#}"), "stopping the call job through the API failed");
        let _ = store::call_jobs::stop(&db, floor.tenant_id, floor.job, store::now_ms()).await;
    }
    agents_stopped.await;
    let _ = engine_stop.send(true);
    let stats = match engine.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(anyhow::Error::new(e).context("the dialer failed")),
        Err(e) => bail!("the dialer panicked: {e}"),
    };
    let _ = sim_stop.send(true);
    node.run(async {}).await?;
    let pending = store::call_jobs::calls_without_result(&db, floor.tenant_id, floor.job).await.unwrap_or(-1);
    println!(
        "kakeru demo: stopped. {} calls dialled, {} answered, {} connected, {} abandoned; {} wrap-up records saved by the agents; calls without a result: {pending}",
        stats.launched, stats.answered, stats.bridged, stats.abandoned, counts.saved.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Creates (once) the group, the campaign and the agents, refreshes every password, and adds a
/// fresh list and call job for this run.
async fn prepare_floor(db: &Db, cfg: &DemoConfig) -> anyhow::Result<Floor> {
    let now = store::now_ms();
    let base = store::seed::demo_floor(db, GROUP_NAME, CAMPAIGN_NAME, i64::from(cfg.channels), now).await?;
    let tz = store::tenancy::parse_tz(&base.time_zone).unwrap_or(chrono_tz::Asia::Tokyo);

    // Agents: op000 (the person's) and op001... (simulated), each with a SIP phone, members of the
    // group; fresh passwords every run.
    let mut agents = Vec::with_capacity(cfg.agents + cfg.people);
    for i in 0..cfg.agents + cfg.people {
        let login = format!("op{i:03}");
        let name = if i < cfg.people { format!("デモ担当者{i:03}") } else { format!("オペレーター{i:03}") };
        // op000, the person's, works with the browser phone (ブラウザフォン): the desktop alone.
        let phone_kind = if i == 0 && cfg.people > 0 { "browser" } else { "sip" };
        let user_id = store::seed::demo_agent(db, &base, &login, &name, phone_kind, now).await?;
        agents.push(DemoAgent {
            user_id,
            login,
            password: store::accounts::random_password(),
            sip_password: store::accounts::random_password(),
        });
    }
    // argon2 for every agent, off the async workers, on every core.
    let hashed = {
        let list: Vec<(i64, String)> = agents.iter().map(|a| (a.user_id, a.password.clone())).collect();
        tokio::task::spawn_blocking(move || {
            std::thread::scope(|s| {
                let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
                let chunk = list.len().div_ceil(cores).max(1);
                let handles: Vec<_> = list
                    .chunks(chunk)
                    .map(|c| {
                        s.spawn(move || {
                            c.iter().map(|(id, pw)| (*id, store::accounts::hash_password(pw))).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect::<Vec<_>>()
            })
        })
        .await?
    };
    if hashed.len() != agents.len() {
        bail!("hashing the agents' passwords failed");
    }
    let tenant_code = base.tenant_code.clone();
    let ha1: Vec<(String, String)> =
        agents.iter().map(|a| store::accounts::digest_ha1(&a.login, &tenant_code, &a.sip_password)).collect();
    let credentials: Vec<store::seed::DemoCredentials<'_>> = agents
        .iter()
        .zip(&hashed)
        .zip(&ha1)
        .map(|((a, (_, hash)), (md5, sha))| store::seed::DemoCredentials {
            user_id: a.user_id,
            login: &a.login,
            password_hash: hash,
            ha1_md5: md5,
            ha1_sha256: sha,
        })
        .collect();
    store::seed::demo_credentials(db, &base, &credentials, now).await?;

    // This run's list: mobile numbers, a few of them on the do-not-call list (発信規制).
    let leads = if cfg.leads == 0 { (cfg.agents * 200).max(2_000) } else { cfg.leads };
    let today = store::tenancy::local_date(tz, now);
    let stamp = chrono::DateTime::from_timestamp_millis(now)
        .map(|d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut numbers = std::collections::BTreeSet::new();
    while numbers.len() < leads {
        numbers.insert(format!("090{:08}", rng.gen_range(0..100_000_000u32)));
    }
    let numbers: Vec<String> = numbers.into_iter().collect();
    let (start_date, end_date) = (today.to_string(), (today + chrono::Days::new(365)).to_string());
    // One number in a hundred is on the do-not-call list.
    let run = store::seed::DemoRun {
        stamp: &stamp,
        start_date: &start_date,
        end_date: &end_date,
        numbers: &numbers,
        dnc_every: 100,
    };
    let job = store::seed::demo_run(db, &base, &run, now).await?;
    Ok(Floor { tenant_id: base.tenant_id, tenant_code, job, leads, agents, result_codes: base.result_codes })
}

/// What the simulated customers say, looped on every answered call (PCMU): a short clip made with
/// Debian's espeak-ng (`espeak-ng -v ja "もしもし、山田です。"`, resampled to 8 kHz), so that a person
/// at the browser phone hears them.
fn customer_voice() -> std::sync::Arc<[u8]> {
    const CLIP: &[u8] = include_bytes!("demo-customer.wav");
    let samples = media::wav::read_pcm16_mono_8k(CLIP).unwrap_or_default();
    samples.into_iter().map(|x| media::Codec::Pcmu.encode(x)).collect::<Vec<u8>>().into()
}
