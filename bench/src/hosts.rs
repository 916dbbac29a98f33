//! `kakeru-bench hosts`: dialer hosts on leases, in one process on loopback. A floor of
//! `--campaigns` progressive campaigns (2 agents each, their phones registered, every number busy
//! at the simulated carrier after 200 ms so that the agents stay ready and the floor keeps dialling),
//! the control service over a real Redis, and dialer engines on leases.
//!
//! - Dials a second and calls in flight with 1, 2 and 3 hosts (`--seconds` each): all on this
//!   machine, so a correctness and overhead figure, not a scaling one.
//! - Fail-over: with two hosts, `--kills` times the host holding the first campaign dies (its task
//!   and shards end, nothing given up), and the time until another host's first dial for that
//!   campaign is taken; a fresh host then joins for the next round.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bus::{AnyBus, Bus, Envelope, RedisBus, RedisBusConfig};
use control::service::ServiceConfig;
use dialer::engine::{self, EngineConfig, PlacementConfig};
use sim::carrier::{Behaviour, CarrierConfig};
use store::sqlx::{self, Row};
use tokio::sync::watch;
use wallboard::Feed;
use wire::agent::{AgentConfig, AgentId};
use wire::{streams, ApiCommand, CallJobId, CampaignId, DialerNotice};

use crate::scratch::Scratch;

#[derive(clap::Args, Debug, Clone)]
pub struct HostsArgs {
    /// redis://host:port of a Redis for the bench (required; its streams carry a prefix of their own).
    #[arg(long)]
    pub redis_url: String,
    /// postgres://... (a scratch database on that server) or sqlite:PATH (a new file); default a
    /// SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long, default_value_t = 3)]
    pub campaigns: usize,
    /// Seconds of dialling measured with each number of hosts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
}

struct Host {
    name: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<engine::EngineStats, engine::EngineError>>,
    sip: SocketAddr,
}

struct Floor {
    db: store::Db,
    bus: AnyBus,
    tenant: i64,
    campaigns: Vec<i64>,
    carrier: SocketAddr,
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn id(db: &store::Db, sql: &str, binds: &[i64]) -> anyhow::Result<i64> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    Ok(q.fetch_one(&db.pool).await.with_context(|| format!("{sql}: {binds:?}"))?.try_get("id")?)
}

async fn count(db: &store::Db, sql: &str, a: i64, b: i64) -> anyhow::Result<i64> {
    Ok(sqlx::query(sql).bind(a).bind(b).fetch_one(&db.pool).await?.try_get(0)?)
}

impl Floor {
    async fn host(&self, name: String) -> anyhow::Result<Host> {
        let mut cfg = EngineConfig::new(self.carrier);
        cfg.instance = format!("{name}:{}", store::now_ms());
        cfg.instance_prefix = format!("{name}:");
        cfg.tenants = Some(vec![self.tenant as u64]);
        cfg.placement = Some(PlacementConfig::new(""));
        let (stop, rx) = watch::channel(false);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let r = self.bus.clone();
        let readers: engine::ReaderFactory<AnyBus> = Arc::new(move || {
            let r = r.clone();
            Box::pin(async move { r.another().await })
        });
        let task =
            tokio::spawn(engine::run_with_readers(self.db.clone(), self.bus.clone(), readers, cfg, rx, Some(ready_tx)));
        let info = ready_rx.await.context("a host's shards")?;
        Ok(Host { name, stop, task, sip: info.sip_addrs[0] })
    }

    /// Dial records of a campaign placed by hosts other than `not` since `since_ms`.
    async fn dials_since(&self, campaign: i64, since_ms: i64, not: &str) -> anyhow::Result<i64> {
        let sql = "SELECT COUNT(*) FROM call_records WHERE campaign_id = $1 AND started_at >= $2 AND dialer_instance NOT LIKE $3";
        Ok(sqlx::query(sql)
            .bind(campaign)
            .bind(since_ms)
            .bind(format!("{not}:%"))
            .fetch_one(&self.db.pool)
            .await?
            .try_get(0)?)
    }
}

/// Builds the floor: tenant, group, campaigns with a running job and a large list each, two agents
/// per campaign with their phones.
async fn floor(
    db: store::Db,
    bus: AnyBus,
    campaigns: usize,
    carrier: SocketAddr,
) -> anyhow::Result<(Floor, Vec<(i64, i64, i64, String)>)> {
    let now = store::now_ms();
    let t = store::tenancy::create_tenant(&db, "hosts", "hosts", "Asia/Tokyo", now).await?;
    store::tenancy::set_national_holidays(&db, t, false).await?;
    let realm = "hosts.kakeru".to_string();
    let mut ids = Vec::new();
    let mut agents = Vec::new();
    for c in 0..campaigns {
        let sql =
            format!("INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, 'g{c}', 0) RETURNING id");
        let group = id(&db, &sql, &[t]).await?;
        let sql = format!(
            "INSERT INTO campaigns (tenant_id, name, mode, dial_ratio, max_channels, ring_timeout_s, business_start,
                business_end, created_at, updated_at)
             VALUES ($1, 'c{c}', 'progressive', 10.0, 30, 5, '00:00', '23:59', 0, 0) RETURNING id"
        );
        let campaign = id(&db, &sql, &[t]).await?;
        let batch = id(
            &db,
            "INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at)
             VALUES ($1, $2, 'b', '2020-01-01', '2099-12-31', 0) RETURNING id",
            &[t, campaign],
        )
        .await?;
        let list = id(
            &db,
            "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, 'l', 0) RETURNING id",
            &[t, batch],
        )
        .await?;
        let mut tx = db.pool.begin().await?;
        for i in 0..20_000 {
            sqlx::query(
                "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, created_at)
                 VALUES ($1, $2, $3, 'n', 'カナ', $4, 'fixed', 0)",
            )
            .bind(t)
            .bind(list)
            .bind(batch)
            .bind(format!("03{c}{i:07}"))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let job = id(
            &db,
            "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, status, created_at)
             VALUES ($1, $2, $3, 'j', 'stopped', 0) RETURNING id",
            &[t, campaign, group],
        )
        .await?;
        sqlx::query("INSERT INTO call_job_lists (tenant_id, job_id, list_id) VALUES ($1, $2, $3)")
            .bind(t)
            .bind(job)
            .bind(list)
            .execute(&db.pool)
            .await?;
        for a in 0..2 {
            let login = format!("c{c}a{a}");
            let user = store::accounts::create_user(
                &db,
                &store::accounts::NewUser {
                    tenant_id: t,
                    login: &login,
                    display_name: &login,
                    role: store::accounts::Role::Op,
                    password: "pw",
                },
                now,
            )
            .await?;
            let (md5, sha) = store::accounts::digest_ha1(&login, &realm, "sip");
            sqlx::query(
                "INSERT INTO phones (tenant_id, user_id, sip_username, realm, ha1_md5, ha1_sha256, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 0)",
            )
            .bind(t)
            .bind(user)
            .bind(&login)
            .bind(&realm)
            .bind(md5)
            .bind(sha)
            .execute(&db.pool)
            .await?;
            sqlx::query("INSERT INTO dialing_group_agents (tenant_id, group_id, user_id) VALUES ($1, $2, $3)")
                .bind(t)
                .bind(group)
                .bind(user)
                .execute(&db.pool)
                .await?;
            agents.push((user, campaign, job, login));
        }
        sqlx::query("UPDATE call_jobs SET status = 'running', started_at = $1 WHERE id = $2")
            .bind(store::now_ms())
            .bind(job)
            .execute(&db.pool)
            .await?;
        ids.push(campaign);
    }
    Ok((Floor { db, bus, tenant: t, campaigns: ids, carrier }, agents))
}

pub async fn run(args: &HostsArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=20).contains(&args.campaigns), "--campaigns: 1..=20");
    anyhow::ensure!((1..=600).contains(&args.seconds), "--seconds: 1..=600");
    anyhow::ensure!((1..=1_000).contains(&args.kills), "--kills: 1..=1000");
    let scratch = Scratch::for_url(args.database_url.as_deref(), "--database-url").await?;
    let db = store::Db::connect(&scratch.url).await.context("--database-url")?;
    let mut rc = RedisBusConfig::new(args.redis_url.clone());
    let prefix = format!("kakeru-bench-hosts-{}-{}:", std::process::id(), rand::random::<u32>());
    rc.prefix = prefix.clone();
    let bus: AnyBus = RedisBus::connect(rc).await.context("--redis-url")?.into();
    let (sim_stop, sim_rx) = watch::channel(false);
    let busy = Behaviour::Fail { status: 486, after_ms: 200 };
    let carrier = sim::carrier::start(
        LOCALHOST,
        CarrierConfig { by_last_digit: Some([busy; 10]), ..CarrierConfig::default() },
        sim_rx.clone(),
    )
    .await?;
    let (floor, agents) = floor(db.clone(), bus.clone(), args.campaigns, carrier.sip_addr).await?;
    let t = floor.tenant;
    // Control, then the first host; the agents' phones register at it, then log in.
    let (control_stop, control_rx) = watch::channel(false);
    let control = tokio::spawn(control::service::supervise_on(
        bus.clone(),
        db.clone(),
        ServiceConfig::new(t as u64, "bench-hosts"),
        Arc::new(Feed::default()),
        control_rx,
    ));
    let mut hosts = vec![floor.host("host-1".into()).await?];
    let accounts = agents
        .iter()
        .map(|(_, _, _, login)| sim::phone::PhoneAccount {
            username: login.clone(),
            password: "sip".into(),
            domain: "hosts.kakeru".into(),
        })
        .collect();
    let pcfg = sim::phone::PhoneConfig {
        registrar: hosts[0].sip,
        bind_ip: LOCALHOST,
        expires_s: 300,
        answer_after: Duration::from_millis(50),
        tone_hz: None,
    };
    let phones = sim::phone::start(accounts, pcfg, sim_rx.clone()).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !phones.iter().all(|p| p.stats().registered) {
        anyhow::ensure!(Instant::now() < deadline, "the phones did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let env = Envelope::new(t as u64, store::now_ms() as u64, &DialerNotice::JobsChanged)?;
    bus.publish(&streams::dialer_notices(), &env).await?;
    for (user, campaign, job, _) in &agents {
        let c = ApiCommand::StartCallJob {
            agent_id: AgentId(*user as u64),
            campaign_id: CampaignId(*campaign as u64),
            config: AgentConfig {
                leg_setup_timeout_ms: 20_000,
                idle_logoff_ms: 24 * 3_600_000,
                ..AgentConfig::default()
            },
            call_job_id: Some(CallJobId(*job as u64)),
            dialing_group_id: None,
        };
        let env = Envelope::new(t as u64, store::now_ms() as u64, &c)?;
        bus.publish(&streams::control_commands(t as u64), &env).await?;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Dials a second with 1, 2 and 3 hosts.
    for n in 1..=3usize {
        // Held campaigns never move while their host lives: the hosts of the last round die (a
        // clean stop would hang the agents' legs up, leaving them 未確認) and n new ones deal the
        // campaigns among themselves when the leases run out, setting the legs up again.
        for h in hosts.drain(..) {
            h.task.abort();
            let _ = h.task.await;
        }
        // They join while the dead hosts' leases still run, so all are members when those expire.
        for i in 0..n {
            hosts.push(floor.host(format!("host-{n}-{i}")).await?);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let since = store::now_ms();
        let mut in_flight = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(args.seconds) {
            in_flight.push(
                count(
                    &db,
                    "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'pending' AND $2 = $2",
                    t,
                    0,
                )
                .await?,
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let dials =
            count(&db, "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND started_at >= $2", t, since).await?;
        let holders: i64 = count(
            &db,
            "SELECT COUNT(DISTINCT holder) FROM leases WHERE tenant_id = $1 AND kind = 'dialer' AND expires_at > $2",
            t,
            store::now_ms(),
        )
        .await?;
        let secs = t0.elapsed().as_secs_f64();
        let mean_in_flight = in_flight.iter().sum::<i64>() as f64 / in_flight.len().max(1) as f64;
        println!(
            "{n} host(s), {} campaigns held by {holders} host(s): {:.1} dials/s, {:.1} calls in flight (mean)",
            args.campaigns,
            dials as f64 / secs,
            mean_in_flight
        );
    }
    // Leads in two calls at once, ever: none.
    let twice = count(
        &db,
        "SELECT COUNT(*) FROM (SELECT lead_id FROM call_records WHERE tenant_id = $1 AND $2 = $2 GROUP BY lead_id HAVING COUNT(*) > 1) x",
        t,
        0,
    )
    .await?;

    // Fail-over: kill the holder of the first campaign, time until another host dials it.
    let first = floor.campaigns[0];
    while hosts.len() > 2 {
        if let Some(h) = hosts.pop() {
            let _ = h.stop.send(true);
            let _ = h.task.await;
        }
    }
    let mut took = Vec::new();
    for k in 0..args.kills {
        let holder: String =
            sqlx::query("SELECT holder FROM leases WHERE kind = 'dialer' AND tenant_id = $1 AND resource_id = $2")
                .bind(t)
                .bind(first)
                .fetch_one(&db.pool)
                .await?
                .try_get(0)?;
        let i = hosts.iter().position(|h| holder.starts_with(&format!("{}:", h.name))).context("the holder is ours")?;
        let dead = hosts.remove(i);
        dead.task.abort();
        let _ = dead.task.await;
        let t0 = Instant::now();
        let since = store::now_ms();
        let deadline = t0 + Duration::from_secs(30);
        while floor.dials_since(first, since, &dead.name).await? == 0 {
            anyhow::ensure!(Instant::now() < deadline, "no host dialled the campaign again");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        took.push(t0.elapsed());
        hosts.push(floor.host(format!("host-k{k}")).await?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut sorted = took.clone();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "dialer host fail-over ({}, {} kills): median {:.0} ms, max {:.0} ms; leads in two calls at once: {twice}",
        scratch.backend_name(),
        args.kills,
        ms(sorted[sorted.len() / 2]),
        ms(*sorted.last().expect("kills"))
    );
    for h in hosts {
        let _ = h.stop.send(true);
        let _ = h.task.await;
    }
    let _ = control_stop.send(true);
    let _ = control.await;
    let _ = sim_stop.send(true);
    for s in [streams::control_commands(t as u64), streams::shard_events(t as u64), streams::agent_events(t as u64)] {
        let _ = crate::control::cleanup(&args.redis_url, &format!("{prefix}{s}")).await;
    }
    scratch.finish(db).await;
    anyhow::ensure!(twice == 0, "a lead was in two calls at once");
    Ok(())
}
