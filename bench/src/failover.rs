//! `kakeru-bench failover`: control's fail-over on leases, with real processes. Two `kakeru
//! control` processes (the binary `--kakeru` names) over a real Redis and the database given, one
//! agent logged in; then `--kills` times: kill -9 of the control holding the tenant's lease, one
//! command published at once, and the time until its transition is committed (the standby took
//! the lease, rebuilt from SQL and applied the command); then the killed one is started again as
//! the standby. Prints the median and the maximum, and checks every command became exactly one
//! stored transition.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use bus::{Bus, Envelope, RedisBus, RedisBusConfig};
use store::sqlx::{self, Row};
use wire::agent::{AgentConfig, AgentId, PauseReasonId};
use wire::{streams, ApiCommand, CampaignId, ShardEvent};

use crate::scratch::Scratch;

#[derive(clap::Args, Debug, Clone)]
pub struct FailoverArgs {
    /// The `kakeru` binary (e.g. target/release/kakeru).
    #[arg(long)]
    pub kakeru: std::path::PathBuf,
    /// redis://host:port of a Redis for the bench (required; its streams carry a prefix of their own).
    #[arg(long)]
    pub redis_url: String,
    /// postgres://... (a scratch database on that server) or sqlite:PATH (a new file); default a
    /// SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

struct Control {
    name: &'static str,
    child: Child,
}

fn start(args: &FailoverArgs, url: &str, prefix: &str, name: &'static str) -> anyhow::Result<Control> {
    let child = Command::new(&args.kakeru)
        .args(["control", "--redis-url", &args.redis_url, "--redis-prefix", prefix, "--consumer", name])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("--kakeru: {}", args.kakeru.display()))?;
    Ok(Control { name, child })
}

async fn scalar(db: &store::Db, sql: &str, tenant: i64) -> anyhow::Result<i64> {
    Ok(sqlx::query(sql).bind(tenant).fetch_one(&db.pool).await?.try_get(0)?)
}

async fn holder(db: &store::Db, tenant: i64) -> anyhow::Result<Option<String>> {
    let r = sqlx::query("SELECT holder, expires_at FROM leases WHERE kind = 'control' AND tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&db.pool)
        .await?;
    Ok(r.and_then(|r| {
        let expires: i64 = r.try_get("expires_at").ok()?;
        (expires > store::now_ms()).then(|| r.try_get("holder").ok()).flatten()
    }))
}

/// Waits until `f` holds, at most `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    while !f().await? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

pub async fn run(args: &FailoverArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1_000).contains(&args.kills), "--kills: 1..=1000");
    let scratch = Scratch::for_url(args.database_url.as_deref(), "--database-url").await?;
    let db = store::Db::connect(&scratch.url).await.context("--database-url")?;
    let t = store::tenancy::create_tenant(&db, "bench", "bench", "Asia/Tokyo", 0).await?;
    let reason: i64 =
        sqlx::query("INSERT INTO pause_reasons (tenant_id, name, created_at) VALUES ($1, 'away', 0) RETURNING id")
            .bind(t)
            .fetch_one(&db.pool)
            .await?
            .try_get("id")?;
    let reason = PauseReasonId(u32::try_from(reason)?);
    let mut rc = RedisBusConfig::new(args.redis_url.clone());
    let prefix = format!("kakeru-bench-failover-{}-{}:", std::process::id(), rand::random::<u32>());
    rc.prefix = prefix.clone();
    let bus = RedisBus::connect(rc).await.context("--redis-url")?;
    let mut controls =
        vec![start(args, &scratch.url, &prefix, "bench-a")?, start(args, &scratch.url, &prefix, "bench-b")?];
    let tu = t as u64;
    let publish = |c: ApiCommand| {
        let bus = bus.clone();
        async move {
            let env = Envelope::new(tu, store::now_ms() as u64, &c)?;
            bus.publish(&streams::control_commands(tu), &env).await?;
            anyhow::Ok(())
        }
    };
    until("a control holding the tenant", Duration::from_secs(30), || async { Ok(holder(&db, t).await?.is_some()) })
        .await?;
    let agent = AgentId(1);
    let config = AgentConfig { idle_logoff_ms: 24 * 3_600_000, ..AgentConfig::default() };
    publish(ApiCommand::StartCallJob {
        agent_id: agent,
        campaign_id: CampaignId(1),
        config,
        call_job_id: None,
        dialing_group_id: None,
    })
    .await?;
    let transitions = "SELECT COUNT(*) FROM agent_transitions WHERE tenant_id = $1";
    until("the login", Duration::from_secs(10), || async { Ok(scalar(&db, transitions, t).await? >= 1) }).await?;
    let env = Envelope::new(tu, store::now_ms() as u64, &ShardEvent::AgentLegUp { agent_id: agent, shard: 0 })?;
    bus.publish(&streams::shard_events(tu), &env).await?;
    until("the agent ready", Duration::from_secs(10), || async { Ok(scalar(&db, transitions, t).await? >= 2) }).await?;
    let mut took = Vec::with_capacity(args.kills);
    for k in 0..args.kills {
        let active = holder(&db, t).await?.context("no control holds the tenant")?;
        let i = controls.iter().position(|c| active.starts_with(c.name)).context("the holder is not ours")?;
        let before = scalar(&db, transitions, t).await?;
        let mut dead = controls.remove(i);
        dead.child.kill()?;
        let t0 = Instant::now();
        let c = if k % 2 == 0 {
            ApiCommand::Pause { agent_id: agent, reason_id: reason }
        } else {
            ApiCommand::GoReady { agent_id: agent }
        };
        publish(c).await?;
        until("the standby applying the command", Duration::from_secs(30), || async {
            Ok(scalar(&db, transitions, t).await? > before)
        })
        .await?;
        took.push(t0.elapsed());
        let _ = dead.child.wait();
        controls.push(start(args, &scratch.url, &prefix, dead.name)?);
        // The new standby is a member before the next kill.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
    let stored = scalar(&db, transitions, t).await?;
    let expected = 2 + args.kills as i64;
    for mut c in controls {
        let _ = c.child.kill();
        let _ = c.child.wait();
    }
    for s in [streams::control_commands(tu), streams::shard_events(tu), streams::agent_events(tu)] {
        let _ = crate::control::cleanup(&args.redis_url, &format!("{prefix}{s}")).await;
    }
    let mut sorted = took.clone();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(sorted[sorted.len() / 2]);
    let max = ms(*sorted.last().expect("kills"));
    if args.json {
        println!(
            "{}",
            serde_json::json!({"backend": scratch.backend_name(), "kills": args.kills, "median_ms": median,
                "max_ms": max, "transitions": stored, "expected": expected})
        );
    } else {
        println!(
            "control fail-over ({}, {} kills of the active control): median {median:.0} ms, max {max:.0} ms; \
             transitions {stored} (expected {expected})",
            scratch.backend_name(),
            args.kills
        );
    }
    scratch.finish(db).await;
    anyhow::ensure!(stored == expected, "commands lost or applied twice: {stored} transitions, {expected} expected");
    Ok(())
}
