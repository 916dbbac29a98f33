//! `kakeru demo`: a whole floor in one process on the embedded default.
//!
//! The real system (the SQLite file, the in-process bus, the admin API, the control service and
//! the dialer engine on its media shard) plus the floor it works for, simulated at its edges only:
//!
//! - a **carrier** ([`sim::carrier`]): real SIP and RTP on loopback; customers answer with the
//!   pacing simulator's distributions (answer probability, answer delay lognormal with mean 8 s,
//!   30 % of the non-answers failing at about 3 s, the rest ringing until the ring timeout);
//! - **agents' phones** ([`sim::phone`]): REGISTER with digest, auto-answer the nailed-up leg, RTP;
//! - **agents**: each logs in through the API (`POST /auth/login`, `POST /agent/session`), talks
//!   for a drawn time (lognormal) and hangs the customer up (`POST /agent/calls/{id}/hang-up`),
//!   then saves the wrap-up record after a drawn time (`POST /wrapup-records/{id}/save`). An agent
//!   paused by a supervisor from the wallboard comes back after a minute's break.
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
use serde_json::{json, Value};
use store::sqlx::{self, Row};
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

/// One simulated agent's accounts: the user who logs in to the API and the password of their SIP
/// phone (its user name is the login).
#[derive(Clone, Debug)]
pub struct DemoAgent {
    pub user_id: i64,
    pub login: String,
    pub password: String,
    pub sip_password: String,
}

/// The floor in the database.
struct Floor {
    tenant_id: i64,
    tenant_code: String,
    job: i64,
    leads: usize,
    agents: Vec<DemoAgent>,
    result_codes: Vec<i64>,
}

/// Live counts the agents keep for the status line.
#[derive(Default, Debug)]
pub struct FloorCounts {
    pub logged_in: AtomicU64,
    pub ready: AtomicU64,
    pub talking: AtomicU64,
    pub wrap_up: AtomicU64,
    pub paused: AtomicU64,
    pub saved: AtomicU64,
    pub hang_ups: AtomicU64,
    pub api_errors: AtomicU64,
}

/// How the simulated agents work.
#[derive(Clone, Debug)]
pub struct AgentWork {
    /// The campaign's result numbers they save.
    pub result_codes: Vec<i64>,
    /// Mean talk time (lognormal, cv 1), ms.
    pub talk_mean_ms: f64,
    /// Mean time to save the wrap-up record, ms.
    pub wrapup_mean_ms: f64,
    /// Agents (the last ones) who never save their records, as if their browser had closed: their
    /// calls stay in 応対記録(未保存) until someone saves them.
    pub forgetful: usize,
    pub seed: u64,
}

/// Simulated agents working a call job through the API (`start_agents`).
pub struct SimAgents {
    pub counts: Arc<FloorCounts>,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
    stop: watch::Sender<bool>,
}

impl SimAgents {
    /// Each agent logs off (`DELETE /agent/session`) and logs out.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts one simulated agent per account on `job`, each through the API at `base` as an agent's
/// own screen would (log in, 発信開始, hang up, save the wrap-up record). `manager` (a logged-in
/// MGR or SV) logs off an agent still in a session of an earlier run.
pub fn start_agents(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    agents: &[DemoAgent],
    job: i64,
    work: &AgentWork,
    manager: Option<Api>,
) -> SimAgents {
    let counts = Arc::new(FloorCounts::default());
    let (stop, rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, a) in agents.iter().enumerate() {
        let sim = SimAgent {
            http: http.clone(),
            base: base.to_owned(),
            tenant: tenant.to_owned(),
            agent: a.clone(),
            job,
            result_codes: work.result_codes.clone(),
            talk_mean_ms: work.talk_mean_ms,
            wrapup_mean_ms: work.wrapup_mean_ms,
            saves: i + work.forgetful < agents.len(),
            counts: counts.clone(),
            manager: manager.clone(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(work.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9)),
        };
        tasks.spawn(sim.run(rx.clone()));
    }
    SimAgents { counts, tasks, stop }
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
    let node = Node::open(NodeConfig::new(database_url)).await?;
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

    // Kept to the end: the phones answer the agents' legs until the stop.
    let _phones = start_phones(&floor.agents, &floor.tenant_code, info.sip_addrs[0], sim_rx.clone(), |n, of| {
        eprint!("\rkakeru demo: phones registered {n}/{of}   ");
    })
    .await?;
    eprintln!();

    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let manager = Api::login(&http, &base, &admin.tenant, &admin.login, &admin.password)
        .await
        .context("the floor manager's login")?;
    manager.post(&format!("/call-jobs/{}/start", floor.job), &json!({})).await.context("starting the call job")?;
    step("call job started (POST /call-jobs/{id}/start)");

    let work = AgentWork {
        result_codes: floor.result_codes.clone(),
        talk_mean_ms: cfg.talk_mean_s * 1000.0,
        wrapup_mean_ms: cfg.wrapup_mean_s * 1000.0,
        forgetful: 0,
        seed: cfg.seed,
    };
    let mut sims =
        start_agents(&http, &base, &floor.tenant_code, &floor.agents, floor.job, &work, Some(manager.clone()));
    let counts = sims.counts.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = counts.logged_in.load(Ordering::Relaxed) as usize;
        eprint!("\rkakeru demo: agents logged in {n}/{}   ", floor.agents.len());
        if n >= floor.agents.len() || Instant::now() > deadline {
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
            Some(r) = sims.tasks.join_next() => {
                if let Ok(Err(e)) = r {
                    tracing::warn!(error = %format!("{e:#}"), "a simulated agent stopped");
                }
            }
        }
    }

    println!("kakeru demo: stopping: the call job stops, calls in progress get their results ...");
    let _ = sims.stop.send(true);
    if let Err(e) = manager.post(&format!("/call-jobs/{}/stop", floor.job), &json!({})).await {
        tracing::warn!(error = %format!("{e:#}"), "stopping the call job through the API failed");
        let _ = sqlx::query("UPDATE call_jobs SET status = 'stopped' WHERE id = $1 AND tenant_id = $2")
            .bind(floor.job)
            .bind(floor.tenant_id)
            .execute(&db.pool)
            .await;
    }
    sims.stop().await;
    let _ = engine_stop.send(true);
    let stats = match engine.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(anyhow::Error::new(e).context("the dialer failed")),
        Err(e) => bail!("the dialer panicked: {e}"),
    };
    let _ = sim_stop.send(true);
    node.run(async {}).await?;
    let pending: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM call_records WHERE call_job_id = $1 AND result = 'pending'")
            .bind(floor.job)
            .fetch_one(&db.pool)
            .await
            .and_then(|r| r.try_get("n"))
            .unwrap_or(-1);
    println!(
        "kakeru demo: stopped. {} calls dialled, {} answered, {} connected, {} abandoned; {} wrap-up records saved by the agents; calls without a result: {pending}",
        stats.launched, stats.answered, stats.bridged, stats.abandoned, counts.saved.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Starts one simulated SIP phone per agent (user name = the agent's login, in the tenant's realm)
/// registering with `registrar`, and waits until every one is registered (at most 30 s), telling
/// `progress(registered, of)` as they do.
pub async fn start_phones(
    agents: &[DemoAgent],
    realm: &str,
    registrar: std::net::SocketAddr,
    shutdown: watch::Receiver<bool>,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<Vec<sim::phone::Phone>> {
    let accounts = agents
        .iter()
        .map(|a| sim::phone::PhoneAccount {
            username: a.login.clone(),
            password: a.sip_password.clone(),
            domain: realm.to_owned(),
        })
        .collect();
    let phones = sim::phone::start(
        accounts,
        sim::phone::PhoneConfig {
            registrar,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            expires_s: 300,
            answer_after: Duration::from_millis(300),
        },
        shutdown,
    )
    .await
    .context("starting the agents' phones")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = phones.iter().filter(|p| p.stats().registered).count();
        progress(n, phones.len());
        if n == phones.len() {
            return Ok(phones);
        }
        if Instant::now() > deadline {
            bail!("only {n} of {} phones registered within 30 s", phones.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates (once) the group, the campaign and the agents, refreshes every password, and adds a
/// fresh list and call job for this run.
async fn prepare_floor(db: &Db, cfg: &DemoConfig) -> anyhow::Result<Floor> {
    let now = store::now_ms();
    let pool = &db.pool;
    let tenant = sqlx::query("SELECT id, code, time_zone FROM tenants WHERE code = $1")
        .bind(store::seed::DEMO_TENANT)
        .fetch_one(pool)
        .await?;
    let tenant_id: i64 = tenant.try_get("id")?;
    let tenant_code: String = tenant.try_get("code")?;
    let tz = store::tenancy::parse_tz(&tenant.try_get::<String, _>("time_zone")?).unwrap_or(chrono_tz::Asia::Tokyo);
    // Jobs an earlier run left running (it was killed): stopped, so that only this run's dials.
    sqlx::query("UPDATE call_jobs SET status = 'stopped' WHERE tenant_id = $1 AND status = 'running'")
        .bind(tenant_id)
        .execute(pool)
        .await?;

    let group = match sqlx::query("SELECT id FROM dialing_groups WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(GROUP_NAME)
        .fetch_optional(pool)
        .await?
    {
        Some(r) => r.try_get::<i64, _>("id")?,
        None => {
            sqlx::query("INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, $2, $3) RETURNING id")
                .bind(tenant_id)
                .bind(GROUP_NAME)
                .bind(now)
                .fetch_one(pool)
                .await?
                .try_get("id")?
        }
    };
    let campaign = match sqlx::query("SELECT id FROM campaigns WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(CAMPAIGN_NAME)
        .fetch_optional(pool)
        .await?
    {
        Some(r) => r.try_get::<i64, _>("id")?,
        None => sqlx::query(
            "INSERT INTO campaigns (tenant_id, name, mode, created_at, updated_at) VALUES ($1, $2, 'predictive', $3, $3) RETURNING id",
        )
        .bind(tenant_id)
        .bind(CAMPAIGN_NAME)
        .bind(now)
        .fetch_one(pool)
        .await?
        .try_get("id")?,
    };
    // The campaign as this run wants it (the pacing simulator's ring timeout; dials all day).
    sqlx::query(
        "UPDATE campaigns SET mode = 'predictive', enabled = 1, max_channels = $1, ring_timeout_s = 20, agent_wait_timeout_s = 20,
            acw_enabled = 1, acw_seconds = 60, business_start = '00:00', business_end = '23:59', abandon_target_pct = 3.0,
            updated_at = $2
         WHERE id = $3 AND tenant_id = $4",
    )
    .bind(i64::from(cfg.channels))
    .bind(now)
    .bind(campaign)
    .bind(tenant_id)
    .execute(pool)
    .await?;
    let mut result_codes = Vec::new();
    for (n, label) in [(1, "アポ獲得"), (2, "検討中"), (3, "不要"), (4, "再架電")] {
        sqlx::query(
            "INSERT INTO result_codes (tenant_id, campaign_id, number, label, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (campaign_id, number) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(campaign)
        .bind(n)
        .bind(label)
        .bind(now)
        .execute(pool)
        .await?;
        result_codes.push(n);
    }

    // Agents: op001... with a SIP phone each, members of the group; fresh passwords every run.
    let mut agents = Vec::with_capacity(cfg.agents);
    for i in 1..=cfg.agents {
        let login = format!("op{i:03}");
        let existing = sqlx::query("SELECT id FROM users WHERE tenant_id = $1 AND login = $2")
            .bind(tenant_id)
            .bind(&login)
            .fetch_optional(pool)
            .await?;
        let user_id = match existing {
            Some(r) => r.try_get::<i64, _>("id")?,
            None => {
                // A placeholder hash: the real one is set below with every other password.
                let id: i64 = sqlx::query(
                    "INSERT INTO users (tenant_id, login, display_name, role, password_hash, created_at, updated_at)
                     VALUES ($1, $2, $3, 'OP', '-', $4, $4) RETURNING id",
                )
                .bind(tenant_id)
                .bind(&login)
                .bind(format!("オペレーター{i:03}"))
                .bind(now)
                .fetch_one(pool)
                .await?
                .try_get("id")?;
                id
            }
        };
        sqlx::query(
            "INSERT INTO dialing_group_agents (tenant_id, group_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(group)
        .bind(user_id)
        .execute(pool)
        .await?;
        agents.push(DemoAgent {
            user_id,
            login,
            password: store::accounts::random_secret(8),
            sip_password: store::accounts::random_secret(8),
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
    let mut tx = db.begin_write().await?;
    for (id, hash) in &hashed {
        sqlx::query(
            "UPDATE users SET password_hash = $1, disabled = 0, updated_at = $2 WHERE id = $3 AND tenant_id = $4",
        )
        .bind(hash)
        .bind(now)
        .bind(*id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    }
    for a in &agents {
        let (md5, sha) = store::accounts::digest_ha1(&a.login, &tenant_code, &a.sip_password);
        let updated =
            sqlx::query("UPDATE phones SET ha1_md5 = $1, ha1_sha256 = $2 WHERE tenant_id = $3 AND user_id = $4")
                .bind(&md5)
                .bind(&sha)
                .bind(tenant_id)
                .bind(a.user_id)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO phones (tenant_id, user_id, sip_username, realm, ha1_md5, ha1_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant_id)
            .bind(a.user_id)
            .bind(&a.login)
            .bind(&tenant_code)
            .bind(&md5)
            .bind(&sha)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;

    // This run's list: mobile numbers, a few of them on the do-not-call list (発信規制).
    let leads = if cfg.leads == 0 { (cfg.agents * 200).max(2_000) } else { cfg.leads };
    let today = store::tenancy::local_date(tz, now);
    let stamp = chrono::DateTime::from_timestamp_millis(now)
        .map(|d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let batch: i64 = sqlx::query(
        "INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(tenant_id)
    .bind(campaign)
    .bind(format!("デモ {stamp}"))
    .bind(today.to_string())
    .bind((today + chrono::Days::new(365)).to_string())
    .bind(now)
    .fetch_one(pool)
    .await?
    .try_get("id")?;
    let list: i64 = sqlx::query(
        "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(tenant_id)
    .bind(batch)
    .bind(format!("デモリスト {stamp}"))
    .bind(now)
    .fetch_one(pool)
    .await?
    .try_get("id")?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut numbers = std::collections::BTreeSet::new();
    while numbers.len() < leads {
        numbers.insert(format!("090{:08}", rng.gen_range(0..100_000_000u32)));
    }
    let mut tx = db.begin_write().await?;
    // Many rows per INSERT: 64 leads are 512 parameters, within SQLite's 999.
    const ROWS: usize = 64;
    let numbers: Vec<&String> = numbers.iter().collect();
    for (c, chunk) in numbers.chunks(ROWS).enumerate() {
        let sql = format!(
            "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, created_at) VALUES {}",
            store::placeholders(db.backend, chunk.len(), 8)
        );
        let mut q = sqlx::query(&sql);
        for (r, tel) in chunk.iter().enumerate() {
            let n = c * ROWS + r + 1;
            q = q
                .bind(tenant_id)
                .bind(list)
                .bind(batch)
                .bind(format!("顧客{n:05}"))
                .bind(format!("コキャク{n:05}"))
                .bind(tel.as_str())
                .bind("mobile")
                .bind(now);
        }
        q.execute(&mut *tx).await?;
    }
    // One number in a hundred is on the do-not-call list.
    for tel in numbers.iter().skip(99).step_by(100) {
        sqlx::query(
            "INSERT INTO dnc_numbers (tenant_id, number, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(tel.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let job: i64 = sqlx::query(
        "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, status, created_at) VALUES ($1, $2, $3, $4, 'stopped', $5) RETURNING id",
    )
    .bind(tenant_id)
    .bind(campaign)
    .bind(group)
    .bind(format!("デモ {stamp}"))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    sqlx::query("INSERT INTO call_job_lists (tenant_id, job_id, list_id) VALUES ($1, $2, $3)")
        .bind(tenant_id)
        .bind(job)
        .bind(list)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Floor { tenant_id, tenant_code, job, leads, agents, result_codes })
}

/// A logged-in API client.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub async fn login(
        http: &reqwest::Client,
        base: &str,
        tenant: &str,
        login: &str,
        password: &str,
    ) -> anyhow::Result<Api> {
        let r = http
            .post(format!("{base}/auth/login"))
            .json(&json!({"tenant": tenant, "login": login, "password": password}))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let token = body["token"].as_str().map(str::to_owned);
        match token {
            Some(token) if status.is_success() => Ok(Api { http: http.clone(), base: base.to_owned(), token }),
            _ => bail!("POST /auth/login as {login}: {status} {body}"),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let r = req.bearer_auth(&self.token).send().await.with_context(|| what.to_owned())?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{what}: {status} {body}");
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)), &format!("GET {path}")).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body), &format!("POST {path}")).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base)), &format!("DELETE {path}")).await
    }
}

/// One simulated agent, working through the API like an agent's own screen would.
struct SimAgent {
    http: reqwest::Client,
    base: String,
    tenant: String,
    agent: DemoAgent,
    job: i64,
    result_codes: Vec<i64>,
    talk_mean_ms: f64,
    wrapup_mean_ms: f64,
    /// Saves its wrap-up records (else its calls stay unsaved, its ACW ends by the timer).
    saves: bool,
    counts: Arc<FloorCounts>,
    manager: Option<Api>,
    rng: rand_chacha::ChaCha8Rng,
}

/// The agent's state as last seen, for the floor's counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    None,
    Ready,
    Talking,
    WrapUp,
    Paused,
}

impl SimAgent {
    fn count(&self, s: Seen) -> Option<&AtomicU64> {
        let c = &self.counts;
        match s {
            Seen::None => None,
            Seen::Ready => Some(&c.ready),
            Seen::Talking => Some(&c.talking),
            Seen::WrapUp => Some(&c.wrap_up),
            Seen::Paused => Some(&c.paused),
        }
    }

    fn draw_ms(&mut self, mean_ms: f64) -> Duration {
        Duration::from_millis(sim::lognormal_ms(&mut self.rng, mean_ms, 1.0).min(3_600_000))
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        // Spread the logins over the first seconds, as a floor arriving would.
        let jitter = Duration::from_millis(self.rng.gen_range(0..2_000));
        tokio::time::sleep(jitter).await;
        let me = Api::login(&self.http, &self.base, &self.tenant, &self.agent.login, &self.agent.password).await?;
        let session = json!({"call_job_id": self.job});
        let mut tries = 0;
        loop {
            match me.post("/agent/session", &session).await {
                Ok(_) => break,
                Err(e) if tries < 10 => {
                    // Still in a session of an earlier run: the floor manager logs them off first.
                    tries += 1;
                    tracing::debug!(agent = %self.agent.login, error = %format!("{e:#}"), "starting the session");
                    if let Some(m) = &self.manager {
                        let _ =
                            m.post(&format!("/agents/{}/state", self.agent.user_id), &json!({"to": "offline"})).await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        self.counts.logged_in.fetch_add(1, Ordering::Relaxed);
        let mut seen = Seen::None;
        let mut call_seen: Option<i64> = None;
        let mut hang_up_at: Option<Instant> = None;
        let mut save_at: Option<Instant> = None;
        let mut back_at: Option<Instant> = None;
        let mut last_activity = Instant::now();
        let poll = Duration::from_millis(700 + self.rng.gen_range(0..600));
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = tokio::time::sleep(poll) => {}
            }
            let view = match me.get(&format!("/agents/{}", self.agent.user_id)).await {
                Ok(v) => v,
                Err(_) => {
                    self.counts.api_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let now = Instant::now();
            let state = view["state"].as_str().unwrap_or("");
            let next = match state {
                "ready" => Seen::Ready,
                "talking" | "hold" => Seen::Talking,
                "wrap_up" => Seen::WrapUp,
                "paused" => Seen::Paused,
                _ => Seen::None,
            };
            if next != seen {
                if let Some(c) = self.count(seen) {
                    c.fetch_sub(1, Ordering::Relaxed);
                }
                if let Some(c) = self.count(next) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                seen = next;
            }
            match next {
                Seen::Talking => {
                    let call = view["call_id"].as_i64();
                    if call != call_seen {
                        call_seen = call;
                        hang_up_at = Some(now + self.draw_ms(self.talk_mean_ms));
                    }
                    if let (Some(at), Some(call)) = (hang_up_at, call) {
                        if now >= at && me.post(&format!("/agent/calls/{call}/hang-up"), &json!({})).await.is_ok() {
                            hang_up_at = None;
                            self.counts.hang_ups.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    save_at = None;
                }
                Seen::WrapUp => {
                    let at = *save_at.get_or_insert_with(|| {
                        now + Duration::from_millis(sim::lognormal_ms(&mut self.rng, self.wrapup_mean_ms, 0.5))
                    });
                    if now >= at && self.saves {
                        self.save_records(&me).await;
                        save_at = None;
                    }
                }
                Seen::Paused => {
                    // Paused by a supervisor (from the wallboard): back after a minute's break.
                    let at = *back_at.get_or_insert(now + Duration::from_secs(60));
                    if now >= at && me.post("/agent/ready", &json!({})).await.is_ok() {
                        back_at = None;
                    }
                }
                Seen::Ready | Seen::None => {
                    back_at = None;
                    save_at = None;
                }
            }
            if now.duration_since(last_activity) > Duration::from_secs(60) {
                let _ = me.post("/agent/activity", &json!({})).await;
                last_activity = now;
            }
        }
        if let Some(c) = self.count(seen) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
        self.counts.logged_in.fetch_sub(1, Ordering::Relaxed);
        let _ = me.delete("/agent/session").await;
        let _ = me.post("/auth/logout", &json!({})).await;
        Ok(())
    }

    /// Saves the agent's unsaved wrap-up records (応対記録) with a drawn result and next action.
    async fn save_records(&mut self, me: &Api) {
        let path = format!("/wrapup-records?agent_user_id={}&saved=false", self.agent.user_id);
        let Ok(list) = me.get(&path).await else {
            self.counts.api_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let items = list["items"].as_array().cloned().unwrap_or_default();
        for r in items {
            let Some(id) = r["id"].as_i64() else { continue };
            let result = self.result_codes[self.rng.gen_range(0..self.result_codes.len())];
            let roll: f64 = self.rng.gen();
            let mut body = json!({
                "result": result.to_string(),
                "interlocutor": "self",
                "memo": "",
                "state_after": "continue",
                "next_action": if roll < 0.7 { "continue" } else { "complete" },
            });
            if result == 4 {
                // 再架電: a recall tomorrow at the same time.
                let at = chrono::Utc::now() + chrono::Duration::days(1);
                body["next_action"] = json!("recall");
                body["recall_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            match me.post(&format!("/wrapup-records/{id}/save"), &body).await {
                Ok(_) => {
                    self.counts.saved.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counts.api_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(agent = %self.agent.login, error = %format!("{e:#}"), "saving a wrap-up record");
                }
            }
        }
    }
}
