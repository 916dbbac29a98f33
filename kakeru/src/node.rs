//! A node: one kakeru process and the roles it runs, all over one bus handle ([`AnyBus`]) and one
//! database ([`store::Db`]).
//!
//! - the embedded default (`kakeru api` on SQLite, no `--redis-url`): the in-process bus, the API
//!   and a control service for every tenant in the same process; the control services write the
//!   API's wallboard feeds directly.
//! - production: `kakeru api --redis-url ...` runs the API, which only publishes commands and follows
//!   the control services' wallboard mirror; `kakeru control` runs the control services.
//!
//! A role is a function of a [`RoleCtx`] (the bus, the database, the shutdown signal, the tenants to
//! serve); adding one is one call, [`Node::spawn_role`]:
//!
//! ```ignore
//! node.spawn_role("dialer", |ctx| dialer::run(ctx.db, ctx.bus, ctx.shutdown));
//! ```
//!
//! Roles that serve every tenant use [`for_each_tenant`], which starts one task per tenant and picks
//! up tenants created later (checked every [`NodeConfig::tenant_poll`]).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus::{AnyBus, BusError, MemoryBus, RedisBus, RedisBusConfig};
use control::service::{supervise, ServiceConfig};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What a node is given. Its `Debug` hides the passwords in the URLs.
#[derive(Clone)]
pub struct NodeConfig {
    /// `postgres://...` or `sqlite:FILE`.
    pub database_url: String,
    /// `redis://...`: the bus is Redis (shared with other processes); `None`: the in-process bus.
    pub redis_url: Option<String>,
    /// Put before every Redis stream and key name (several installations on one Redis, tests).
    pub redis_prefix: String,
    /// This process's consumer name in the control groups (stable across restarts of one instance,
    /// so that its pending entries are taken back at once).
    pub consumer: String,
    /// Serve only these tenants (empty: every tenant, new ones included).
    pub tenants: Vec<u64>,
    /// How often roles that serve every tenant look for new tenants.
    pub tenant_poll: Duration,
    /// The API listener's time-outs and connection caps.
    pub api_limits: api::serve::ServeLimits,
    /// The API's login limits and lockout.
    pub login_limits: api::guard::LoginLimits,
    /// Database connections this process keeps open at most (`None`: the store's default).
    pub database_pool: Option<u32>,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("consumer", &self.consumer)
            .field("tenants", &self.tenants)
            .field("tenant_poll", &self.tenant_poll)
            .field("api_limits", &self.api_limits)
            .field("login_limits", &self.login_limits)
            .field("database_pool", &self.database_pool)
            .finish()
    }
}

/// A URL with the password of its user info replaced by `***` (`postgres://u:***@host/db`).
pub fn redact_url(url: &str) -> String {
    bus::redact_url(url)
}

impl NodeConfig {
    pub fn new(database_url: impl Into<String>) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "kakeru".into());
        NodeConfig {
            database_url: database_url.into(),
            redis_url: None,
            redis_prefix: String::new(),
            consumer: format!("{host}-{}", std::process::id()),
            tenants: Vec::new(),
            tenant_poll: Duration::from_secs(3),
            api_limits: api::serve::ServeLimits::default(),
            login_limits: api::guard::LoginLimits::default(),
            database_pool: None,
        }
    }
}

/// What every role gets.
#[derive(Clone, Debug)]
pub struct RoleCtx {
    pub db: store::Db,
    /// The node's bus. A task that blocks in reads takes its own handle ([`AnyBus::another`]).
    pub bus: AnyBus,
    /// Turns true when the node stops.
    pub shutdown: watch::Receiver<bool>,
    pub config: Arc<NodeConfig>,
}

/// The running roles of one process.
pub struct Node {
    ctx: RoleCtx,
    wallboards: api::wallboard::Wallboards,
    agents: api::desk::hub::AgentHub,
    stop: watch::Sender<bool>,
    roles: JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Node {
    /// Opens the database (migrating it) and the bus.
    pub async fn open(config: NodeConfig) -> anyhow::Result<Node> {
        store::migrate(&config.database_url).await.context("opening the database")?;
        let db = store::Db::connect_pooled(&config.database_url, config.database_pool)
            .await
            .context("opening the database")?;
        let bus = match &config.redis_url {
            None => AnyBus::Memory(MemoryBus::default()),
            Some(url) => {
                let mut c = RedisBusConfig::new(url.clone());
                c.prefix = config.redis_prefix.clone();
                AnyBus::Redis(RedisBus::connect(c).await.context("connecting to Redis")?)
            }
        };
        Ok(Node::with(db, bus, config))
    }

    /// A node over a database and a bus already open.
    pub fn with(db: store::Db, bus: AnyBus, config: NodeConfig) -> Node {
        let (stop, shutdown) = watch::channel(false);
        Node {
            ctx: RoleCtx { db, bus, shutdown, config: Arc::new(config) },
            wallboards: api::wallboard::Wallboards::default(),
            agents: api::desk::hub::AgentHub::default(),
            stop,
            roles: JoinSet::new(),
        }
    }

    pub fn db(&self) -> &store::Db {
        &self.ctx.db
    }

    pub fn bus(&self) -> &AnyBus {
        &self.ctx.bus
    }

    /// The wallboard feeds of this process (written by its control services or followers, read by
    /// its API).
    pub fn wallboards(&self) -> &api::wallboard::Wallboards {
        &self.wallboards
    }

    /// Starts a role: `f` gets the node's bus, database and shutdown signal and runs until the
    /// signal turns true. Its end (or error) is reported by [`Node::run`].
    pub fn spawn_role<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: FnOnce(RoleCtx) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let fut = f(self.ctx.clone());
        self.roles.spawn(async move { (name, fut.await) });
    }

    /// The agents' push channels of this process (`GET /agent/stream`).
    pub fn agent_hub(&self) -> &api::desk::hub::AgentHub {
        &self.agents
    }

    /// The admin API on `listener`, publishing commands on the node's bus and serving the node's
    /// wallboard feeds and agents' push channels (a follower of every tenant's `agent:events`, on
    /// a bus handle of its own); purges expired sessions every 10 minutes.
    pub fn spawn_api(&mut self, listener: tokio::net::TcpListener) {
        let config = api::Config {
            wallboards: self.wallboards.clone(),
            commands: bus::Publisher::new(self.ctx.bus.clone()),
            agents: self.agents.clone(),
            logins: api::guard::LoginGuard::new(self.ctx.config.login_limits.clone()),
            sessions: api::sessions::SessionCache::default(),
        };
        let (hub, wallboards) = (self.agents.clone(), self.wallboards.clone());
        self.spawn_role("agent-events", move |ctx| {
            for_each_tenant(ctx, move |ctx, tenant| {
                let (hub, feed) = (hub.clone(), wallboards.feed(tenant));
                async move {
                    let bus = ctx.bus.another().await.context("a bus connection for the agents' events")?;
                    hub.follow(bus, tenant, feed, ctx.shutdown.clone()).await.context("following agent events")?;
                    Ok(())
                }
            })
        });
        self.spawn_role("api", move |ctx| async move {
            let app = api::build(ctx.db.clone(), config);
            let purge = tokio::spawn(purge_sessions(ctx.db.clone()));
            let mut stop = ctx.shutdown.clone();
            let limits = ctx.config.api_limits.clone();
            let r = api::serve::serve_with(listener, app, limits, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
            purge.abort();
            r.context("serving the API")
        });
    }

    /// A control service for every tenant (supervised: restarted from storage after a fault), and
    /// the tenant's rollup job beside it. On a shared bus (Redis) each also mirrors its wallboard
    /// for API processes elsewhere.
    pub fn spawn_control(&mut self) {
        self.spawn_rollups();
        let wallboards = self.wallboards.clone();
        self.spawn_role("control", move |ctx| {
            for_each_tenant(ctx, move |ctx, tenant| {
                let wallboards = wallboards.clone();
                async move {
                    let mut cfg = ServiceConfig::new(tenant, ctx.config.consumer.clone());
                    cfg.mirror_wallboard = ctx.bus.is_shared();
                    let feed = wallboards.feed(tenant).context("too many tenants for one process")?;
                    let bus = ctx.bus.clone();
                    let buses = move || {
                        let bus = bus.clone();
                        async move { Ok::<_, BusError>([bus.another().await?, bus.another().await?, bus.another().await?]) }
                    };
                    supervise(buses, ctx.db.clone(), cfg, feed, ctx.shutdown.clone()).await;
                    Ok(())
                }
            })
        });
    }

    /// The control services of `kakeru control` on leases: active/standby per tenant. Every round
    /// (`every`) this process heartbeats as a control member, takes the tenants' control leases
    /// dealt to it among the controls alive ([`dialer::placement`], the same policy as the dialer
    /// hosts': a free tenant goes to the control dealt it at once, to the next a round later) and
    /// renews those it holds; each tenant held runs a control service whose every commit is fenced
    /// by the lease's token. A lease lost (taken, or its time run out on this process's clock) ends
    /// that tenant's service at once; a standby takes it within `ttl` plus a round and rebuilds
    /// from SQL, reading the pending entries of the same consumer name first. Tenants spread over
    /// every control alive.
    pub fn spawn_control_on_leases(&mut self, placement: dialer::placement::PlacementConfig) {
        self.spawn_rollups();
        let wallboards = self.wallboards.clone();
        self.spawn_role("control", move |ctx| control_on_leases(ctx, wallboards, placement));
    }

    /// The rollup job of every tenant (`store::rollups::refresh` every
    /// `store::rollups::REFRESH_EVERY_MS`) and its retention job (`store::retention::run`, hourly),
    /// started with the control services: one per tenant in the installation, like them.
    pub fn spawn_rollups(&mut self) {
        self.spawn_role("rollups", move |ctx| {
            for_each_tenant(ctx, move |ctx, tenant| async move {
                let tenant = i64::try_from(tenant).context("tenant id")?;
                let mut tick = tokio::time::interval(Duration::from_millis(store::rollups::REFRESH_EVERY_MS));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut stop = ctx.shutdown.clone();
                let mut ticks: u64 = 0;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                    // Retention (BIZTEL 1.2) once an hour, the first time at start: idempotent,
                    // so a run cut short is finished by the next.
                    if ticks.is_multiple_of(RETENTION_EVERY_TICKS) {
                        match store::retention::run(&ctx.db, tenant, store::now_ms()).await {
                            Ok(r) if r != store::retention::Retained::default() => {
                                tracing::info!(tenant, ?r, "retention ran")
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(tenant, error = %e, "retention failed; retried in an hour"),
                        }
                    }
                    ticks += 1;
                    let started = std::time::Instant::now();
                    match store::rollups::refresh(&ctx.db, tenant, store::now_ms()).await {
                        Ok(r) => tracing::debug!(
                            tenant,
                            days = r.days.len(),
                            ms = started.elapsed().as_millis() as u64,
                            "rollups refreshed"
                        ),
                        // Logged and tried again at the next tick: the job is idempotent.
                        Err(e) => tracing::warn!(tenant, error = %e, "rollup refresh failed"),
                    }
                }
            })
        });
    }

    /// For an API whose control services run in other processes: follows each tenant's wallboard
    /// mirror on the bus into this process's feeds.
    pub fn spawn_wallboard_follower(&mut self) {
        let wallboards = self.wallboards.clone();
        self.spawn_role("wallboard", move |ctx| {
            for_each_tenant(ctx, move |ctx, tenant| {
                let wallboards = wallboards.clone();
                async move {
                    let feed = wallboards.feed(tenant).context("too many tenants for one process")?;
                    let bus = ctx.bus.another().await.context("a bus connection for the wallboard")?;
                    let stats = wallboard::mirror::follow(bus, tenant, feed, ctx.shutdown.clone()).await;
                    tracing::info!(tenant, ?stats, "wallboard follower stopped");
                    Ok(())
                }
            })
        });
    }

    /// The dialer engine on this host's media shards (`kakeru dialer`): every tenant's call jobs,
    /// unless `cfg.tenants` names some; the recordings' archive beside it when it records. Each
    /// tenant's `agent:events` reader gets its own bus handle.
    pub fn spawn_dialer(&mut self, cfg: dialer::engine::EngineConfig) {
        if cfg.recordings_dir.is_some() {
            self.spawn_archiver();
        }
        self.spawn_role("dialer", move |ctx| async move {
            let bus = ctx.bus.clone();
            let readers: dialer::engine::ReaderFactory<AnyBus> = Arc::new(move || {
                let bus = bus.clone();
                Box::pin(async move { bus.another().await })
            });
            let stats =
                dialer::engine::run_with_readers(ctx.db.clone(), ctx.bus.clone(), readers, cfg, ctx.shutdown, None)
                    .await
                    .context("the dialer engine")?;
            tracing::info!(?stats, "dialer stopped");
            Ok(())
        });
    }

    /// The recordings' archive (`media-archive`): finished WAV recordings become Ogg Opus and each
    /// tenant's quota deletes the oldest first, on one encoder thread beside the shards. Started
    /// with the dialer wherever it records (`kakeru dialer --recordings-dir`, `kakeru demo`).
    /// Without the `opus` feature the recordings stay WAV and no quota is kept: said in a warning.
    pub fn spawn_archiver(&mut self) {
        #[cfg(feature = "opus")]
        self.spawn_role("archiver", |ctx| async move {
            let archiver = media_archive::Archiver::new(ctx.db.clone(), media_archive::ArchiveConfig::default());
            let mut stop = ctx.shutdown.clone();
            let stats = archiver
                .run_until(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .context("the recordings' archive")?;
            tracing::info!(?stats, "recordings' archive stopped");
            Ok(())
        });
        #[cfg(not(feature = "opus"))]
        tracing::warn!(
            "built without the opus feature: recordings stay WAV and no tenant's recording quota is kept \
             (build with --features opus)"
        );
    }

    /// Asks every role to stop.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Runs until `shutdown` completes or a role fails, then stops every role and waits for them.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut failed = None;
        tokio::select! {
            () = &mut shutdown => {}
            Some(r) = self.roles.join_next() => failed = Some(r),
        }
        self.stop();
        let mut result = Ok(());
        let mut note = |r: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>| match r {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
                tracing::error!(role = name, error = %format!("{e:#}"), "role failed");
                if result.is_ok() {
                    result = Err(e.context(format!("the {name} role failed")));
                }
            }
            Err(e) => {
                if result.is_ok() {
                    result = Err(anyhow::anyhow!("a role panicked: {e}"));
                }
            }
        };
        if let Some(r) = failed {
            note(r);
        }
        while let Some(r) = self.roles.join_next().await {
            note(r);
        }
        result
    }
}

/// Rollup ticks between retention runs (an hour at 20 s a tick).
const RETENTION_EVERY_TICKS: u64 = 3_600_000 / store::rollups::REFRESH_EVERY_MS;

/// The first wait before a failed tenant task starts again; it doubles with each failure in a row,
/// up to [`RESTART_MAX`], and starts over once a task has run for [`RESTART_RESET`].
pub const RESTART_FIRST: Duration = Duration::from_secs(1);
pub const RESTART_MAX: Duration = Duration::from_secs(60);
const RESTART_RESET: Duration = Duration::from_secs(300);

/// The wait before the restart that follows `failures` failures in a row (1 s, 2 s, 4 s, ... 60 s).
pub fn restart_backoff(failures: u32) -> Duration {
    RESTART_FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(RESTART_MAX)
}

/// Runs `f` once per tenant (the configured ones, or every tenant in the database, checking for new
/// ones every `tenant_poll`) until shutdown; then waits for every tenant's task. A tenant's task
/// that fails (an error or a panic: Redis away at its start, a fault later) is started again after
/// [`restart_backoff`]; one that ends without error is done.
pub async fn for_each_tenant<F, Fut>(ctx: RoleCtx, f: F) -> anyhow::Result<()>
where
    F: Fn(RoleCtx, u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    struct Running {
        tenant: u64,
        since: tokio::time::Instant,
    }
    let mut started = BTreeSet::new();
    let mut tasks = JoinSet::new();
    let mut running: std::collections::HashMap<tokio::task::Id, Running> = std::collections::HashMap::new();
    let mut failures: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
    let mut shutdown = ctx.shutdown.clone();
    let mut poll = tokio::time::interval(ctx.config.tenant_poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let spawn = |tasks: &mut JoinSet<anyhow::Result<()>>, t: u64, delay: Duration| {
        let fut = f(ctx.clone(), t);
        let mut stop = ctx.shutdown.clone();
        tasks
            .spawn(async move {
                if !delay.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
                fut.await
            })
            .id()
    };
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = shutdown.wait_for(|s| *s) => break,
            Some(r) = tasks.join_next_with_id() => {
                let (id, failed) = match r {
                    Ok((id, Ok(()))) => (id, None),
                    Ok((id, Err(e))) => (id, Some(format!("{e:#}"))),
                    Err(e) => (e.id(), Some(format!("panicked: {e}"))),
                };
                let Some(Running { tenant, since }) = running.remove(&id) else { continue };
                let Some(error) = failed else { continue };
                if *ctx.shutdown.borrow() {
                    continue;
                }
                let n = failures.entry(tenant).or_insert(0);
                *n = if since.elapsed() >= RESTART_RESET { 1 } else { n.saturating_add(1) };
                let delay = restart_backoff(*n);
                tracing::error!(tenant, error, failures = *n, restart_in_ms = delay.as_millis() as u64, "tenant task failed; restarting");
                let id = spawn(&mut tasks, tenant, delay);
                running.insert(id, Running { tenant, since: tokio::time::Instant::now() + delay });
                continue;
            }
        }
        let tenants = if ctx.config.tenants.is_empty() {
            match control::service::tenant_ids(&ctx.db, 100_000).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "listing tenants failed; retrying");
                    continue;
                }
            }
        } else {
            ctx.config.tenants.clone()
        };
        for t in tenants {
            if started.insert(t) {
                tracing::info!(tenant = t, "serving tenant");
                let id = spawn(&mut tasks, t, Duration::ZERO);
                running.insert(id, Running { tenant: t, since: tokio::time::Instant::now() });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Deletes expired bearer sessions every 10 minutes.
async fn purge_sessions(db: store::Db) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match store::accounts::purge_expired_sessions(&db, store::now_ms()).await {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "expired sessions deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not delete expired sessions"),
        }
    }
}

/// One tenant's control service running under a lease.
struct Held {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn control_on_leases(
    ctx: RoleCtx,
    wallboards: api::wallboard::Wallboards,
    cfg: dialer::placement::PlacementConfig,
) -> anyhow::Result<()> {
    use dialer::placement::{Action, LeaseRow, Placement, View};
    use store::leases::{self, Kind};
    let mut placement = Placement::new(cfg.clone());
    let mut services: std::collections::HashMap<u64, Held> = std::collections::HashMap::new();
    let ttl = cfg.ttl.as_millis() as i64;
    let mut tick = tokio::time::interval(cfg.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = ctx.shutdown.clone();
    let stop_service = |services: &mut std::collections::HashMap<u64, Held>, tenant: u64| {
        if let Some(h) = services.remove(&tenant) {
            // At once: a stale owner's commit would be refused anyway, but it stops before trying.
            let _ = h.stop.send(true);
            h.task.abort();
            tracing::warn!(tenant, "control lease lost: this tenant's control service stopped");
        }
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
        for (tenant, _) in placement.expire(std::time::Instant::now()) {
            stop_service(&mut services, tenant);
        }
        let read = async {
            let now_ms = store::now_ms();
            leases::heartbeat(&ctx.db, Kind::Control, &cfg.member, now_ms, ttl).await?;
            let members = leases::members(&ctx.db, Kind::Control, now_ms).await?;
            let rows = leases::list(&ctx.db, Kind::Control).await?;
            let tenants = if ctx.config.tenants.is_empty() {
                control::service::tenant_ids(&ctx.db, 100_000).await?
            } else {
                ctx.config.tenants.clone()
            };
            Ok::<_, anyhow::Error>(View {
                now_ms,
                members,
                leases: rows
                    .into_iter()
                    .map(|l| LeaseRow {
                        key: (l.tenant_id as u64, 0),
                        holder: l.holder,
                        token: l.token as u64,
                        expires_at_ms: l.expires_at,
                    })
                    .collect(),
                wanted: tenants.into_iter().map(|t| (t, 0)).collect(),
                busy: Default::default(),
            })
        };
        let view = match tokio::time::timeout(cfg.ttl, read).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "control placement: reading the leases failed");
                continue;
            }
            Err(_) => {
                tracing::warn!("control placement: the database did not answer in time");
                continue;
            }
        };
        for action in placement.plan(&view) {
            let sent = std::time::Instant::now();
            let now_ms = store::now_ms();
            let step = async {
                match action {
                    Action::Renew { key: (t, _), token } => {
                        let held =
                            leases::renew(&ctx.db, Kind::Control, t as i64, 0, &cfg.member, token as i64, now_ms, ttl)
                                .await?;
                        if placement.on_renewed((t, 0), token, held, sent) {
                            stop_service(&mut services, t);
                        }
                    }
                    Action::Release { key: (t, _), token } => {
                        stop_service(&mut services, t);
                        leases::release(&ctx.db, Kind::Control, t as i64, 0, &cfg.member, token as i64).await?;
                        placement.on_released((t, 0));
                    }
                    Action::Acquire { key: (t, _) } => {
                        let token =
                            leases::acquire(&ctx.db, Kind::Control, t as i64, 0, &cfg.member, now_ms, ttl).await?;
                        placement.on_acquired((t, 0), token.map(|x| x as u64), sent);
                        if let Some(token) = token {
                            tracing::info!(
                                tenant = t,
                                token,
                                "control lease taken: this control is the tenant's active one"
                            );
                            let (stop, stop_rx) = watch::channel(false);
                            let mut svc = ServiceConfig::new(t, format!("control-t{t}"));
                            svc.mirror_wallboard = ctx.bus.is_shared();
                            svc.fence = Some((cfg.member.clone(), token));
                            let feed = wallboards.feed(t).context("too many tenants for one process")?;
                            let (bus, db) = (ctx.bus.clone(), ctx.db.clone());
                            let buses = move || {
                                let bus = bus.clone();
                                async move {
                                    Ok::<_, BusError>([
                                        bus.another().await?,
                                        bus.another().await?,
                                        bus.another().await?,
                                    ])
                                }
                            };
                            let task = tokio::spawn(supervise(buses, db, svc, feed, stop_rx));
                            services.insert(t, Held { stop, task });
                        }
                    }
                }
                Ok::<_, anyhow::Error>(())
            };
            match tokio::time::timeout(cfg.ttl, step).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "control placement action failed"),
                Err(_) => tracing::warn!("control placement: an action timed out"),
            }
        }
    }
    // The stop: each service finishes its commits, then its lease goes to a standby at once.
    for (t, h) in services.drain() {
        let _ = h.stop.send(true);
        let _ = h.task.await;
        if let Some(token) = placement.held().get(&(t, 0)) {
            let _ = leases::release(&ctx.db, Kind::Control, t as i64, 0, &cfg.member, *token as i64).await;
        }
    }
    let _ = leases::leave(&ctx.db, Kind::Control, &cfg.member).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_doubling_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| restart_backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(restart_backoff(u32::MAX), RESTART_MAX);
    }

    #[test]
    fn debug_hides_the_passwords_of_the_urls() {
        let mut cfg = NodeConfig::new("postgres://kakeru:s3cret-db@db.example/kakeru");
        cfg.redis_url = Some("redis://:s3cret-redis@cache.example:6379".into());
        let text = format!("{cfg:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("postgres://kakeru:***@db.example/kakeru"), "{text}");
        assert_eq!(redact_url("sqlite:kakeru.db"), "sqlite:kakeru.db");
    }
}
