//! The dialer engine (`kakeru dialer`, and inside `kakeru demo`): the thin async driver of the
//! sans-IO engine core.
//!
//! # Shape
//! - [`core::Engine`]: the dialer's policy for one tenant (pacing, channel limits, business hours,
//!   the preview queue, job completion, the stop), a state machine under virtual time with one
//!   closed output enum. [`host::Host`] demultiplexes a host's inputs onto its tenants' engines.
//! - N media shards (one per core, [`media_driver::spawn_with_app`]), each hosting a
//!   [`shard::SipShard`] with its own SIP socket (port `sip_port + i`), so a call's signalling and
//!   media live on one shard. A campaign lives on one shard (`campaign % N`): its customers and the
//!   nailed-up legs of its agents, so bridging is a move between two calls of that shard.
//! - This driver: one task owns the [`host::Host`] and carries out its outputs without waiting on
//!   anything: shard commands are sent without blocking (a full queue is a counted drop; a dial
//!   that cannot be sent ends as `error`), events go to a bounded publisher that holds them while
//!   Redis is away ([`PUBLISH_QUEUE`]), writes to the bounded [`writer`], prepares to a task each
//!   ([`prepare`]; the engine runs one per tenant at a time).
//! - Inputs: the shards' [`CallEvent`]s; each tenant's `agent:events` (group `dialer`): control's
//!   commands and the transitions the pacers learn agent states from; the dialer notices (a job
//!   started or stopped, phones changed: `kakeru:dialer:notices`, read by every host), on which the
//!   tenant's running jobs or phone accounts are read again.
//! - A crash loses no lead: a call record is written before its INVITE; a restarted dialer gives the
//!   calls its previous run left pending the result `error` and tells the control service.

pub mod core;
pub mod groups;
pub mod host;
pub mod instruments;
pub mod prepare;
pub mod results;
pub mod shard;
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{Bus, BusError, DedupState, Deduper, Delivery, EntryId, Envelope};
use media::Clip;
use media_driver::shard::Input as ShardInput;
use media_driver::{self as driver, ShardConfig, ShardHandle};
use store::Db;
use tokio::sync::{mpsc, watch};
use wire::{streams, DialerNotice, PhoneOffer, ShardEvent, SupervisorOffer};

use self::core::{CoreConfig, Input, JobConfig, Output, RecoveredAgent};
use self::host::{Host, HostInput};
use crate::calls::{self, CallEnd, CallEvent, Command, EndCause, Now};
use crate::placement::{Action, LeaseRow, Placement, View};

pub use crate::placement::PlacementConfig;
use shard::{ShardOutput, SipShard};

pub use self::core::{in_business_hours, EngineStats, NO_REDIAL_AFTER_ABANDON_MS};

/// Events waiting for the bus (held while Redis is away); more are counted drops.
pub const PUBLISH_QUEUE: usize = 100_000;
/// Most events published in one round trip.
const PUBLISH_BATCH: usize = 500;
/// After a stop: how long the host waits for prepares in flight and calls to end.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// After the stop: how long queued events get to reach the bus.
const PUBLISH_FLUSH: Duration = Duration::from_secs(10);
/// How often the nonce secrets' file is read again (a local file: a rotation reaches the shards
/// within this).
pub const NONCE_KEYS_EVERY: Duration = Duration::from_secs(5);

/// Audio the engine plays.
#[derive(Clone, Debug, Default)]
pub struct Clips {
    /// Looped to agents between customers.
    pub hold: Option<Clip>,
    /// The agent's "customer connected" beep.
    pub beep: Option<Clip>,
    /// Played to a customer no agent took, before release (the campaign's message).
    pub abandon: Option<Clip>,
    /// 呼中音声 when the campaign names none.
    pub waiting: Option<Clip>,
}

impl Clips {
    /// Built-in tones: a soft hold tone, a 440 Hz beep, a three-tone message.
    pub fn builtin() -> Clips {
        let tone = |f, ms| media::player::beep(f, ms, 3000);
        let hold: Vec<i16> = tone(392.0, 400).iter().chain(std::iter::repeat_n(&0, 8 * 1600)).copied().collect();
        let message: Vec<i16> = [523.0, 659.0, 784.0].iter().flat_map(|f| tone(*f, 400).to_vec()).collect();
        Clips {
            hold: Some(hold.into()),
            beep: Some(media::player::beep(880.0, 200, 6000)),
            abandon: Some(message.into()),
            waiting: None,
        }
    }
}

/// How to run the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This process, written on its call records (e.g. `host-pid-startms`).
    pub instance: String,
    /// The stable part of `instance` (e.g. `host`): calls of earlier runs with this prefix still
    /// pending are this host's orphans.
    pub instance_prefix: String,
    pub shards: usize,
    /// Pin shard i to core i.
    pub pin_cores: bool,
    /// SIP address of shard 0; shard i listens on port + i (port 0: any free ports).
    pub sip_listen: SocketAddr,
    /// Address SIP and SDP advertise (when `sip_listen` is 0.0.0.0).
    pub advertise_ip: IpAddr,
    /// Where RTP ports are bound.
    pub media_ip: IpAddr,
    /// The browser phones' TCP candidate (RFC 6544): shard i listens on `media_ip`, this port + i
    /// (0: any free ports); `None`: UDP candidates only.
    pub webrtc_tcp_port: Option<u16>,
    pub carrier: SocketAddr,
    pub carrier_domain: Option<String>,
    pub carrier_credentials: Option<sip::auth::Credentials>,
    /// The agents' phones: digest nonce secrets, registrar bounds, limits on failed authentication.
    pub phones: calls::PhoneSettings,
    /// A file the nonce secrets are read from at start and again every [`NONCE_KEYS_EVERY`]
    /// (rotation); without one, `phones.nonce_keys` stay as given.
    pub nonce_key_file: Option<PathBuf>,
    /// Recordings go under here (`<dir>/<tenant>/<YYYY-MM-DD>/<call>.wav`); `None`: not recorded.
    pub recordings_dir: Option<PathBuf>,
    pub tick: Duration,
    /// Consumer group and name on `agent:events`.
    pub group: String,
    pub consumer: String,
    /// Serve only these tenants (`None`: every tenant).
    pub tenants: Option<Vec<u64>>,
    pub clips: Clips,
    /// The safety net behind the dialer notices: running jobs and accounts are read again this
    /// often, in case a notice was lost (the notice, not this, is how a start or stop arrives).
    pub reconcile_every: Duration,
    /// Campaigns placed on leases across the dialer hosts alive ([`crate::placement`]), this host
    /// a member named `instance`; `None`: this host dials every campaign of its tenants (one
    /// host). On leases, this host's consumer group on `agent:events` is its own
    /// (`<group>:<instance_prefix>`), so every host sees every agent event and acts on those of
    /// the campaigns it holds.
    pub placement: Option<PlacementConfig>,
    /// On leases: how long a dialer host's consumer group on `agent:events` may go unread, its
    /// host absent, before another host deletes it ([`groups`]), and how often hosts look.
    pub dead_group_grace: Duration,
    pub dead_group_every: Duration,
}

impl EngineConfig {
    pub fn new(carrier: SocketAddr) -> EngineConfig {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "dialer".into());
        EngineConfig {
            instance: format!("{host}:{}:{}", std::process::id(), store::now_ms()),
            instance_prefix: format!("{host}:"),
            shards: 1,
            pin_cores: false,
            sip_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_ip: IpAddr::from([127, 0, 0, 1]),
            media_ip: IpAddr::from([127, 0, 0, 1]),
            webrtc_tcp_port: Some(0),
            carrier,
            carrier_domain: None,
            carrier_credentials: None,
            // A nonce secret of this process alone; `kakeru dialer` takes the deployment's.
            phones: calls::PhoneSettings::new(sip::auth::NonceKeys::generate(&mut rand::thread_rng())),
            nonce_key_file: None,
            recordings_dir: None,
            tick: Duration::from_millis(250),
            group: "dialer".into(),
            consumer: format!("{host}-{}", std::process::id()),
            tenants: None,
            clips: Clips::builtin(),
            reconcile_every: Duration::from_secs(60),
            dead_group_grace: Duration::from_secs(300),
            dead_group_every: Duration::from_secs(60),
            placement: None,
        }
    }
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A handle on a running engine: its SIP addresses and counters.
#[derive(Clone, Debug)]
pub struct EngineInfo {
    /// SIP address of each shard (agents' phones register at any of them).
    pub sip_addrs: Vec<SocketAddr>,
    pub stats: Arc<std::sync::Mutex<EngineStats>>,
}

fn now() -> Now {
    Now { mono: Instant::now(), unix_ms: u64::try_from(store::now_ms()).unwrap_or(0) }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Starts the shards and runs the engine until `shutdown` becomes true. `ready` gets the SIP
/// addresses once the shards are up.
pub async fn run<B: Bus + Clone + 'static>(
    db: Db,
    bus: B,
    cfg: EngineConfig,
    shutdown: watch::Receiver<bool>,
    ready: Option<tokio::sync::oneshot::Sender<EngineInfo>>,
) -> Result<EngineStats, EngineError> {
    let reader = bus.clone();
    let readers: ReaderFactory<B> = Arc::new(move || {
        let b = reader.clone();
        Box::pin(async move { Ok(b) })
    });
    run_with_readers(db, bus, readers, cfg, shutdown, ready).await
}

/// Opens the bus handle one blocking reader uses.
pub type ReaderFactory<B> =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<B, BusError>> + Send>> + Send + Sync>;

/// What the driver's tasks send it.
enum Inbox {
    AgentEvents {
        tenant: u64,
        deliveries: Vec<Delivery>,
    },
    Host(HostInput),
    /// A tenant's configuration changed (a dialer notice, or the reconcile): read it again.
    Reload {
        tenant: u64,
        jobs: bool,
        phones: bool,
    },
    /// A browser phone's offer for a tenant's engine (if this host serves the tenant).
    PhoneOffer {
        tenant: u64,
        input: Input,
    },
    /// The nonce secrets as the key file holds them now (every shard keeps its keys when unchanged).
    NonceKeys(sip::auth::NonceKeys),
    /// What a placement round read from the database.
    PlacementView(View),
    /// A placement round's actions carried out.
    PlacementDone(Vec<Outcome>),
}

/// One placement action carried out.
#[derive(Debug)]
struct Outcome {
    action: Action,
    sent: Instant,
    /// Renew: still held; acquire: the token when taken. `Err`: the database did not answer.
    result: Result<Option<u64>, String>,
    /// A campaign taken: the calls of earlier holders still pending, now given `error`.
    orphans: Vec<u64>,
    /// A campaign taken: the registered phones of its tenant, read again.
    contacts: Vec<(u64, core::Contact)>,
}

/// [`run`], with a handle of its own for each blocking reader (on Redis a blocking read holds up
/// every command queued behind it on its connection: the engine's publishes, and the other
/// tenants' reads).
pub async fn run_with_readers<B: Bus + Clone + 'static>(
    db: Db,
    bus: B,
    new_reader: ReaderFactory<B>,
    cfg: EngineConfig,
    shutdown: watch::Receiver<bool>,
    ready: Option<tokio::sync::oneshot::Sender<EngineInfo>>,
) -> Result<EngineStats, EngineError> {
    instruments::describe();
    let (shard_tx, shard_rx) = mpsc::channel::<ShardOutput>(65_536);
    let mut handles = Vec::with_capacity(cfg.shards);
    let mut sip_addrs = Vec::with_capacity(cfg.shards);
    let mut phones = cfg.phones.clone();
    if let Some(path) = &cfg.nonce_key_file {
        phones.nonce_keys = crate::secrets::load_nonce_keys(path)
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    }
    for i in 0..cfg.shards.max(1) {
        let port = if cfg.sip_listen.port() == 0 { 0 } else { cfg.sip_listen.port() + i as u16 };
        let socket = shard::bind_sip_socket(SocketAddr::new(cfg.sip_listen.ip(), port))?;
        let local = socket.local_addr()?;
        let advertised = SocketAddr::new(calls::advertised(local.ip(), cfg.advertise_ip), local.port());
        let mut cc_cfg = calls::Config::new(advertised, cfg.carrier);
        cc_cfg.carrier_domain = cfg.carrier_domain.clone().unwrap_or_else(|| cfg.carrier.ip().to_string());
        cc_cfg.carrier_credentials = cfg.carrier_credentials.clone();
        cc_cfg.phones = phones.clone();
        cc_cfg.hold_audio = cfg.clips.hold.clone();
        cc_cfg.bridge_beep = cfg.clips.beep.clone();
        let seed = rand::random::<u64>();
        let cc = calls::CallControl::new(
            cc_cfg,
            Box::new(<rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed)),
        );
        let app = SipShard::new(i, cc, socket, cfg.media_ip, shard_tx.clone());
        let core = cfg.pin_cores.then_some(i);
        let webrtc_tcp = cfg
            .webrtc_tcp_port
            .map(|p| SocketAddr::new(cfg.media_ip, if p == 0 { 0 } else { p.saturating_add(i as u16) }));
        let h = driver::spawn_with_app(ShardConfig { index: i, core, driver: Default::default(), webrtc_tcp }, app)?;
        // Registers the SIP socket and binds the first RTP ports.
        let _ = h.try_send(ShardInput::App(Command::SetAccounts(Vec::new())));
        handles.push(h);
        sip_addrs.push(advertised);
    }
    drop(shard_tx);
    let stats = Arc::new(std::sync::Mutex::new(EngineStats::default()));
    // Ready once the host listens (in `Driver::run`, after its readers started), not when its
    // shards are up: a browser phone's offer published in between would be missed by a reader
    // that starts after it.
    let ready = ready.map(|r| (r, EngineInfo { sip_addrs: sip_addrs.clone(), stats: stats.clone() }));
    tracing::info!(shards = handles.len(), sip = ?sip_addrs, "dialer shards up");
    let core_cfg = CoreConfig {
        shards: handles.len(),
        tick: cfg.tick,
        abandon_message: cfg.clips.abandon.clone(),
        waiting_audio: cfg.clips.waiting.clone(),
        recording: cfg.recordings_dir.is_some(),
        on_leases: cfg.placement.is_some(),
        ..CoreConfig::default()
    };
    let host = Host::new(core_cfg, cfg.tenants.as_ref().map(|t| t.iter().copied().collect()));
    let (inbox_tx, inbox_rx) = mpsc::channel::<Inbox>(4096);
    let (publish_tx, publish_rx) = mpsc::channel::<(u64, ShardEvent)>(PUBLISH_QUEUE);
    let (write_tx, write_rx) = mpsc::channel::<writer::Job>(writer::WRITE_QUEUE);
    let writer_stats = Arc::new(std::sync::Mutex::new(writer::WriterStats::default()));
    let fence = cfg.placement.as_ref().map(|_| cfg.instance.clone());
    let writer = tokio::spawn(writer::run_fenced(db.clone(), write_rx, writer_stats.clone(), fence));
    let publisher = tokio::spawn(publisher(bus.clone(), publish_rx));
    let placement = cfg.placement.clone().map(|mut p| {
        p.member = cfg.instance.clone();
        Placement::new(p)
    });
    let mut cfg = cfg;
    let group_prefix = format!("{}:", cfg.group);
    if placement.is_some() {
        cfg.group = format!("{group_prefix}{}", cfg.instance_prefix.trim_end_matches(':'));
    }
    let started_ms = u64::try_from(store::now_ms()).unwrap_or(0);
    let mut d = Driver {
        group_prefix,
        sweeping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        placement,
        round_in_flight: false,
        stopping: false,
        started_ms,
        cfg,
        db,
        bus,
        new_reader,
        host,
        shards: handles,
        inbox_tx,
        publish_tx,
        write_tx,
        readers: HashMap::new(),
        notices: None,
        dedup: Deduper::new(100_000),
        clip_cache: HashMap::new(),
        stats: stats.clone(),
    };
    let r = d.run(shard_rx, inbox_rx, shutdown, ready).await;
    let stats = d.host.stats();
    let Driver { write_tx, publish_tx, shards, readers, notices, placement, db, .. } = d;
    for (_, h) in readers {
        h.abort();
    }
    if let Some(n) = notices {
        n.abort();
    }
    drop(write_tx);
    let _ = writer.await;
    if let Some(p) = placement {
        // Every result is written: the campaigns go to the other hosts now, not at expiry.
        let (kind, member) = (store::leases::Kind::Dialer, p.config().member.clone());
        for ((t, c), token) in p.held() {
            if let Err(e) = store::leases::release(&db, kind, i(t), i(c), &member, i(token)).await {
                tracing::warn!(error = %e, "a campaign lease could not be given up; it expires");
            }
        }
        let _ = store::leases::leave(&db, kind, &member).await;
    }
    drop(publish_tx);
    if tokio::time::timeout(PUBLISH_FLUSH, publisher).await.is_err() {
        tracing::error!("events were still waiting for the bus when the dialer stopped");
    }
    for s in shards {
        let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
    }
    r.map(|()| stats)
}

struct Driver<B: Bus + Clone + 'static> {
    /// On leases, every host's group on `agent:events` is `<group_prefix><host>`.
    group_prefix: String,
    /// A sweep of dead consumer groups is under way.
    sweeping: Arc<std::sync::atomic::AtomicBool>,
    /// On leases: the campaigns this host holds.
    placement: Option<Placement>,
    /// A placement round is being read or carried out.
    round_in_flight: bool,
    /// The stop began (no campaign is taken any more; those held are renewed until their calls end).
    stopping: bool,
    /// When this run started (Unix ms): on leases, agent events from before are not acted on.
    started_ms: u64,
    cfg: EngineConfig,
    db: Db,
    bus: B,
    new_reader: ReaderFactory<B>,
    host: Host,
    shards: Vec<ShardHandle<Command>>,
    inbox_tx: mpsc::Sender<Inbox>,
    publish_tx: mpsc::Sender<(u64, ShardEvent)>,
    write_tx: mpsc::Sender<writer::Job>,
    readers: HashMap<u64, tokio::task::JoinHandle<()>>,
    notices: Option<tokio::task::JoinHandle<()>>,
    dedup: Deduper,
    clip_cache: HashMap<String, Option<Clip>>,
    stats: Arc<std::sync::Mutex<EngineStats>>,
}

impl<B: Bus + Clone + 'static> Driver<B> {
    async fn run(
        &mut self,
        mut shard_rx: mpsc::Receiver<ShardOutput>,
        mut inbox_rx: mpsc::Receiver<Inbox>,
        mut shutdown: watch::Receiver<bool>,
        ready: Option<(tokio::sync::oneshot::Sender<EngineInfo>, EngineInfo)>,
    ) -> Result<(), EngineError> {
        // Readers first, so that nothing published while the host loads is missed.
        self.start_notices().await?;
        let tenants = match &self.cfg.tenants {
            Some(t) => t.clone(),
            None => store::dialing::tenant_ids(&self.db, 100_000).await?,
        };
        for t in &tenants {
            self.ensure_reader(*t).await?;
        }
        if let Some((r, info)) = ready {
            let _ = r.send(info);
        }
        self.recover(&tenants).await?;
        for t in &tenants {
            self.reload(*t, true, true).await;
        }
        let mut reconcile = tokio::time::interval(self.cfg.reconcile_every);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reconcile.tick().await;
        let mut nonce_keys = tokio::time::interval(NONCE_KEYS_EVERY);
        nonce_keys.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        nonce_keys.tick().await;
        let mut placement_tick =
            tokio::time::interval(self.placement.as_ref().map_or(Duration::from_secs(3600), |p| p.config().every));
        placement_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dead_groups = tokio::time::interval(self.cfg.dead_group_every);
        dead_groups.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        dead_groups.tick().await;
        let mut stop_deadline: Option<Instant> = None;
        loop {
            let deadline = self.drain();
            if let Ok(mut s) = self.stats.lock() {
                *s = self.host.stats();
            }
            metrics::gauge!("kakeru_dialer_calls_in_flight").set(self.host.calls_in_flight() as f64);
            if let Some(limit) = stop_deadline {
                if self.host.is_stopped() {
                    break;
                }
                if Instant::now() >= limit {
                    tracing::warn!("the dialer stopped before every prepare and call had ended");
                    break;
                }
            }
            tokio::select! {
                biased;
                r = shutdown.changed(), if stop_deadline.is_none() => {
                    if r.is_err() || *shutdown.borrow() {
                        stop_deadline = Some(Instant::now() + STOP_DEADLINE);
                        self.stopping = true;
                        self.host.handle_input(now(), HostInput::Stop);
                    }
                }
                Some(out) = shard_rx.recv() => {
                    self.host.handle_input(now(), HostInput::Shard { shard: out.shard, event: out.event });
                    // What else is there, before the next drain (bounded).
                    for _ in 0..1024 {
                        let Ok(out) = shard_rx.try_recv() else { break };
                        self.host.handle_input(now(), HostInput::Shard { shard: out.shard, event: out.event });
                    }
                }
                Some(msg) = inbox_rx.recv() => self.on_inbox(msg).await,
                _ = tokio::time::sleep_until(deadline.into()) => self.host.handle_timeout(now()),
                _ = nonce_keys.tick(), if stop_deadline.is_none() && self.cfg.nonce_key_file.is_some() => {
                    self.spawn_nonce_keys();
                }
                _ = placement_tick.tick(), if self.placement.is_some() => self.placement_round(),
                _ = dead_groups.tick(), if self.placement.is_some() && stop_deadline.is_none() => self.spawn_sweep(),
                _ = reconcile.tick(), if stop_deadline.is_none() => {
                    for t in self.host.tenants().collect::<Vec<_>>() {
                        self.spawn_reload(t, true, true);
                    }
                }
            }
        }
        self.drain();
        if let Ok(mut s) = self.stats.lock() {
            *s = self.host.stats();
        }
        Ok(())
    }

    /// On leases: deletes the consumer groups of dialer hosts gone for good (one sweep at a time).
    fn spawn_sweep(&mut self) {
        use std::sync::atomic::Ordering;
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let (bus, db, sweeping) = (self.bus.clone(), self.db.clone(), self.sweeping.clone());
        let tenants: Vec<u64> = self.readers.keys().copied().collect();
        let (prefix, mine, grace) = (self.group_prefix.clone(), self.cfg.group.clone(), self.cfg.dead_group_grace);
        tokio::spawn(async move {
            groups::sweep(&bus, &db, &tenants, &prefix, &mine, grace).await;
            sweeping.store(false, Ordering::Release);
        });
    }

    /// Carries out the host's outputs until it has none; returns its next deadline.
    fn drain(&mut self) -> Instant {
        loop {
            match self.host.poll_output() {
                Output::Timeout(t) => return t,
                o => self.execute(o),
            }
        }
    }

    fn execute(&mut self, o: Output) {
        match o {
            Output::Shard { shard, command } => self.send_to_shard(shard, command),
            Output::Publish { tenant, event } => {
                if self.publish_tx.try_send((tenant, event)).is_err() {
                    metrics::counter!("kakeru_dialer_events_dropped_total").increment(1);
                    tracing::error!(tenant, "the publish queue is full: an event for control was dropped");
                }
            }
            Output::Notice { tenant, notice } => {
                // Rare (a browser phone's answer): one task each, bounded by the agents' offers.
                let bus = self.bus.clone();
                tokio::spawn(async move {
                    let at = u64::try_from(store::now_ms()).unwrap_or(0);
                    let published = match Envelope::new(tenant, at, &notice) {
                        Ok(env) => bus
                            .publish(&streams::agent_events(tenant), &env)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = published {
                        tracing::warn!(tenant, error = %e, "a browser phone's answer was not published");
                    }
                });
            }
            Output::Write { tenant, write } => {
                if let Err(e) = self.write_tx.try_send(writer::Job { tenant, write }) {
                    metrics::counter!("kakeru_dialer_writes_dropped_total").increment(1);
                    tracing::error!(tenant, write = ?e.into_inner().write, "the write queue is full: a write was dropped");
                }
            }
            Output::Prepare(req) => {
                let (db, tx, instance) = (self.db.clone(), self.inbox_tx.clone(), self.cfg.instance.clone());
                let dir = self.cfg.recordings_dir.clone();
                tokio::spawn(async move {
                    let (id, tenant) = (req.id, req.tenant);
                    let input = match prepare::run(&db, &instance, *req, dir.as_deref()).await {
                        Ok(p) => Input::Prepared(p),
                        Err(e) => Input::PrepareFailed { id, error: e.to_string() },
                    };
                    let _ = tx.send(Inbox::Host(HostInput::Tenant { tenant, input })).await;
                });
            }
            Output::ReadRegistrations { tenant } => {
                // At most once a second per tenant (the engine asks no more often).
                let (db, tx) = (self.db.clone(), self.inbox_tx.clone());
                tokio::spawn(async move {
                    let now_ms = store::now_ms();
                    let rows = match store::dialing::registrations(&db, now_ms).await {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(tenant, error = %e, "could not read the registrations again");
                            return;
                        }
                    };
                    let contacts = rows
                        .into_iter()
                        .filter(|r| r.tenant_id == i(tenant))
                        .filter_map(|r| {
                            let source = r.source.parse::<SocketAddr>().ok()?;
                            let contact = core::Contact { uri: r.contact, source, expires_at_ms: r.expires_at as u64 };
                            Some((r.user_id? as u64, contact))
                        })
                        .collect();
                    let input = Input::Recovered { agents: Vec::new(), contacts, orphans: Vec::new() };
                    let _ = tx.send(Inbox::Host(HostInput::Tenant { tenant, input })).await;
                });
            }
            Output::Timeout(_) => {}
        }
    }

    /// A placement round: leases past their time are dropped at once (the engines stop dialling
    /// for them before anything else), then the database is read off the loop.
    fn placement_round(&mut self) {
        let Some(p) = self.placement.as_mut() else { return };
        let lost = p.expire(Instant::now());
        if !lost.is_empty() {
            tracing::warn!(campaigns = ?lost, "campaign leases ran out before they were renewed");
            metrics::counter!("kakeru_dialer_leases_lost_total").increment(lost.len() as u64);
            self.push_leases();
        }
        if self.round_in_flight {
            return;
        }
        let Some(p) = self.placement.as_ref() else { return };
        self.round_in_flight = true;
        let (db, tx, cfg) = (self.db.clone(), self.inbox_tx.clone(), p.config().clone());
        tokio::spawn(async move {
            let read = async {
                let now_ms = store::now_ms();
                let ttl = cfg.ttl.as_millis() as i64;
                store::leases::heartbeat(&db, store::leases::Kind::Dialer, &cfg.member, now_ms, ttl).await?;
                let members = store::leases::members(&db, store::leases::Kind::Dialer, now_ms).await?;
                let leases = store::leases::list(&db, store::leases::Kind::Dialer).await?;
                let wanted = store::dialing::running_campaigns(&db).await?;
                Ok::<_, store::StoreError>(View {
                    now_ms,
                    members,
                    leases: leases
                        .into_iter()
                        .map(|l| LeaseRow {
                            key: (l.tenant_id as u64, l.resource_id as u64),
                            holder: l.holder,
                            token: l.token as u64,
                            expires_at_ms: l.expires_at,
                        })
                        .collect(),
                    wanted: wanted.into_iter().map(|(t, c)| (t as u64, c as u64)).collect(),
                    busy: Default::default(),
                })
            };
            let msg = match tokio::time::timeout(cfg.ttl, read).await {
                Ok(Ok(view)) => Inbox::PlacementView(view),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "placement: reading the leases failed");
                    Inbox::PlacementDone(Vec::new())
                }
                Err(_) => {
                    tracing::warn!("placement: the database did not answer in time");
                    Inbox::PlacementDone(Vec::new())
                }
            };
            let _ = tx.send(msg).await;
        });
    }

    /// Plans the round and carries its actions out off the loop (a campaign taken: the calls of
    /// earlier holders still pending get `error`, and the tenant's registered phones are read).
    fn on_placement_view(&mut self, mut view: View) {
        let host = &self.host;
        view.wanted.retain(|(t, _)| host.serves(*t));
        if self.stopping {
            // Nothing more is taken; what is held is kept until the end of the run, when every
            // result has been written under it.
            view.wanted = self.placement.as_ref().map(|p| p.held().into_keys().collect()).unwrap_or_default();
        }
        view.busy = host
            .tenants()
            .filter_map(|t| host.engine(t).map(|e| (t, e)))
            .flat_map(|(t, e)| e.busy_campaigns().map(move |c| (t, c)))
            .collect();
        let Some(p) = self.placement.as_mut() else { return };
        let mut actions = p.plan(&view);
        if self.stopping {
            actions.retain(|a| matches!(a, Action::Renew { .. }));
        }
        let (db, tx, cfg) = (self.db.clone(), self.inbox_tx.clone(), p.config().clone());
        tokio::spawn(async move {
            let ttl = cfg.ttl.as_millis() as i64;
            let kind = store::leases::Kind::Dialer;
            let mut outcomes = Vec::with_capacity(actions.len());
            for action in actions {
                let sent = Instant::now();
                let mut o =
                    Outcome { action: action.clone(), sent, result: Ok(None), orphans: vec![], contacts: vec![] };
                let now_ms = store::now_ms();
                let step = async {
                    match action {
                        Action::Renew { key: (t, c), token } => {
                            let held =
                                store::leases::renew(&db, kind, i(t), i(c), &cfg.member, i(token), now_ms, ttl).await?;
                            Ok::<_, store::StoreError>(held.then_some(token))
                        }
                        Action::Release { key: (t, c), token } => {
                            store::leases::release(&db, kind, i(t), i(c), &cfg.member, i(token)).await?;
                            Ok(None)
                        }
                        Action::Acquire { key: (t, c) } => {
                            let Some(token) =
                                store::leases::acquire(&db, kind, i(t), i(c), &cfg.member, now_ms, ttl).await?
                            else {
                                return Ok(None);
                            };
                            let orphans = store::dialing::fail_campaign_orphans(&db, i(t), i(c), token, now_ms).await?;
                            o.orphans = orphans.into_iter().map(|c| c as u64).collect();
                            for r in store::dialing::registrations(&db, now_ms).await? {
                                if let (true, Some(user), Ok(source)) =
                                    (r.tenant_id == i(t), r.user_id, r.source.parse::<SocketAddr>())
                                {
                                    let contact =
                                        core::Contact { uri: r.contact, source, expires_at_ms: r.expires_at as u64 };
                                    o.contacts.push((user as u64, contact));
                                }
                            }
                            Ok(Some(token as u64))
                        }
                    }
                };
                o.result = match tokio::time::timeout(cfg.ttl, step).await {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".into()),
                };
                if let Err(e) = &o.result {
                    tracing::warn!(action = ?o.action, error = %e, "placement action failed");
                }
                outcomes.push(o);
            }
            let _ = tx.send(Inbox::PlacementDone(outcomes)).await;
        });
    }

    fn on_placement_done(&mut self, outcomes: Vec<Outcome>) {
        self.round_in_flight = false;
        let Some(p) = self.placement.as_mut() else { return };
        let mut changed = false;
        let mut recovered = Vec::new();
        for o in outcomes {
            match (o.action, o.result) {
                (Action::Renew { key, token }, Ok(r)) => {
                    let lost = p.on_renewed(key, token, r.is_some(), o.sent);
                    if lost {
                        tracing::warn!(?key, "a campaign lease was taken by another host");
                        metrics::counter!("kakeru_dialer_leases_lost_total").increment(1);
                        changed = true;
                    }
                }
                (Action::Acquire { key }, Ok(Some(token))) => {
                    tracing::info!(?key, token, orphans = o.orphans.len(), "campaign lease taken");
                    metrics::counter!("kakeru_dialer_leases_taken_total").increment(1);
                    p.on_acquired(key, Some(token), o.sent);
                    recovered.push((key.0, o.contacts, o.orphans));
                    changed = true;
                }
                (Action::Release { key, .. }, _) => {
                    p.on_released(key);
                    changed = true;
                }
                _ => {}
            }
        }
        for (tenant, contacts, orphans) in recovered {
            let input = Input::Recovered { agents: Vec::new(), contacts, orphans };
            self.host.handle_input(now(), HostInput::Tenant { tenant, input });
        }
        if changed {
            self.push_leases();
        }
    }

    /// Tells every engine the campaigns it holds now.
    fn push_leases(&mut self) {
        let Some(p) = self.placement.as_ref() else { return };
        let mut by_tenant: HashMap<u64, HashMap<u64, u64>> = self.host.tenants().map(|t| (t, HashMap::new())).collect();
        for ((t, c), token) in p.held() {
            by_tenant.entry(t).or_default().insert(c, token);
        }
        for (tenant, held) in by_tenant {
            self.host.handle_input(now(), HostInput::Tenant { tenant, input: Input::Leases(held) });
        }
    }

    /// Never waits: a full shard queue is a counted drop; a dial that could not be sent ends at
    /// once (`error`), so its record gets a result.
    fn send_to_shard(&mut self, shard: usize, cmd: Command) {
        let Some(h) = self.shards.get(shard) else { return };
        let call = match &cmd {
            Command::DialCustomer(d) => Some(d.call),
            _ => None,
        };
        match h.try_send(ShardInput::App(cmd)) {
            Ok(()) => {}
            Err(e) => {
                metrics::counter!("kakeru_dialer_shard_commands_dropped_total").increment(1);
                tracing::error!(shard, error = %e, "a shard command was dropped");
                if let Some(call) = call {
                    let end = CallEnd::unsent(EndCause::Capacity, "shard queue full");
                    let event = CallEvent::CustomerEnded { call, end };
                    self.host.handle_input(now(), HostInput::Shard { shard, event });
                }
            }
        }
    }

    async fn on_inbox(&mut self, msg: Inbox) {
        match msg {
            Inbox::AgentEvents { tenant, deliveries } => {
                let mut acks: Vec<EntryId> = Vec::with_capacity(deliveries.len());
                for d in deliveries {
                    acks.push(d.entry_id);
                    if self.dedup.is_applied(&d.envelope.id) {
                        continue;
                    }
                    // On leases a host's group may be new: what control said before this run began
                    // was for the hosts of then (this run learns agents from SQL).
                    if self.placement.is_some() && d.envelope.at_ms < self.started_ms {
                        continue;
                    }
                    self.dedup.mark_applied(d.envelope.id);
                    // The stream also carries the API's notices for agents' screens.
                    if d.envelope.kind != <wire::agent::Event as wire::Message>::KIND {
                        continue;
                    }
                    match d.envelope.decode::<wire::agent::Event>() {
                        Ok(ev) => self.host.handle_input(now(), HostInput::Tenant { tenant, input: Input::Agent(ev) }),
                        Err(e) => tracing::warn!(error = %e, "agent event not understood"),
                    }
                }
                let bus = self.bus.clone();
                let (stream, group) = (streams::agent_events(tenant), self.cfg.group.clone());
                // Acked off the loop: a slow or absent Redis never holds the calls up.
                tokio::spawn(async move {
                    if let Err(e) = bus.ack(&stream, &group, &acks).await {
                        tracing::warn!(error = %e, "ack of agent events failed (they will be redelivered)");
                    }
                });
            }
            Inbox::Host(input) => self.host.handle_input(now(), input),
            Inbox::PlacementView(view) => self.on_placement_view(view),
            Inbox::PlacementDone(outcomes) => self.on_placement_done(outcomes),
            Inbox::PhoneOffer { tenant, input } => {
                if self.host.serves(tenant) {
                    self.host.handle_input(now(), HostInput::Tenant { tenant, input });
                }
            }
            Inbox::NonceKeys(k) => {
                for shard in 0..self.shards.len() {
                    self.send_to_shard(shard, Command::SetNonceKeys(k.clone()));
                }
            }
            Inbox::Reload { tenant, jobs, phones } => {
                if self.host.serves(tenant) {
                    if let Err(e) = self.ensure_reader(tenant).await {
                        tracing::warn!(tenant, error = %e, "could not start the tenant's agent-event reader");
                    }
                    self.spawn_reload(tenant, jobs, phones);
                }
            }
        }
    }

    /// Calls an earlier run of this host left pending get `error` (orphans), and each tenant's
    /// engine learns control's agents and the stored registrations.
    async fn recover(&mut self, tenants: &[u64]) -> Result<(), EngineError> {
        let t0 = store::now_ms();
        let orphans = store::dialing::fail_orphaned_calls(&self.db, &self.cfg.instance_prefix, t0).await?;
        if !orphans.is_empty() {
            tracing::warn!(calls = orphans.len(), "calls left by an earlier run got the result error");
        }
        #[derive(Default)]
        struct Recovered {
            agents: Vec<RecoveredAgent>,
            contacts: Vec<(u64, core::Contact)>,
            orphans: Vec<u64>,
        }
        let mut by_tenant: HashMap<u64, Recovered> = HashMap::new();
        for (tenant, call) in orphans {
            by_tenant.entry(tenant as u64).or_default().orphans.push(call as u64);
        }
        for (tenant, agent, campaign, view) in store::dialing::control_agents(&self.db).await? {
            let Ok(v) = serde_json::from_str::<wire::agent::AgentView>(&view) else { continue };
            by_tenant.entry(tenant as u64).or_default().agents.push(RecoveredAgent {
                agent: agent as u64,
                campaign: campaign.map(|c| c as u64),
                state: v.state,
                since_ms: v.since_ms,
                call: v.call_id.map(|c| c.0),
            });
        }
        for r in store::dialing::registrations(&self.db, t0).await? {
            if let (Some(user), Ok(source)) = (r.user_id, r.source.parse::<SocketAddr>()) {
                let c = core::Contact { uri: r.contact, source, expires_at_ms: r.expires_at as u64 };
                by_tenant.entry(r.tenant_id as u64).or_default().contacts.push((user as u64, c));
            }
        }
        let served: HashSet<u64> = tenants.iter().copied().collect();
        for (tenant, Recovered { agents, contacts, orphans }) in by_tenant {
            if served.contains(&tenant) || !orphans.is_empty() {
                let input = Input::Recovered { agents, contacts, orphans };
                self.host.handle_input(now(), HostInput::Tenant { tenant, input });
            }
        }
        Ok(())
    }

    /// Reads a tenant's configuration again now (at start).
    async fn reload(&mut self, tenant: u64, jobs: bool, phones: bool) {
        for input in load(&self.db, tenant, jobs, phones, &mut self.clip_cache).await {
            self.host.handle_input(now(), input);
        }
    }

    /// Reads a tenant's configuration again off the loop.
    fn spawn_reload(&self, tenant: u64, jobs: bool, phones: bool) {
        let (db, tx) = (self.db.clone(), self.inbox_tx.clone());
        let mut cache = self.clip_cache.clone();
        tokio::spawn(async move {
            for input in load(&db, tenant, jobs, phones, &mut cache).await {
                if tx.send(Inbox::Host(input)).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Reads the nonce secrets' file again off the loop.
    fn spawn_nonce_keys(&self) {
        let (Some(path), tx) = (self.cfg.nonce_key_file.clone(), self.inbox_tx.clone()) else { return };
        tokio::spawn(async move {
            match crate::secrets::load_nonce_keys(&path).await {
                Ok(k) => {
                    let _ = tx.send(Inbox::NonceKeys(k)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the SIP nonce secrets again; keeping the current ones")
                }
            }
        });
    }

    /// One reader of `agent:events` per served tenant.
    async fn ensure_reader(&mut self, tenant: u64) -> Result<(), EngineError> {
        if self.readers.contains_key(&tenant) || !self.host.serves(tenant) {
            return Ok(());
        }
        let stream = streams::agent_events(tenant);
        self.bus.ensure_group(&stream, &self.cfg.group).await?;
        let bus = (self.new_reader)().await?;
        let (group, consumer, tx) = (self.cfg.group.clone(), self.cfg.consumer.clone(), self.inbox_tx.clone());
        self.readers.insert(tenant, tokio::spawn(read_agent_events(bus, tenant, stream, group, consumer, tx)));
        Ok(())
    }

    /// The reader of the dialer notices (every host reads every notice, from where it starts).
    async fn start_notices(&mut self) -> Result<(), EngineError> {
        let bus = (self.new_reader)().await?;
        let stream = streams::dialer_notices();
        let from = bus.last_entry_id(&stream).await?.unwrap_or(EntryId { ms: 0, seq: 0 });
        self.notices = Some(tokio::spawn(read_notices(bus, stream, from, self.inbox_tx.clone())));
        Ok(())
    }
}

/// A tenant's configuration as engine inputs: its running jobs (with their campaigns' waiting
/// audio and result numbers) and caller-ID limits, and its phone accounts.
async fn load(
    db: &Db,
    tenant: u64,
    jobs: bool,
    phones: bool,
    clips: &mut HashMap<String, Option<Clip>>,
) -> Vec<HostInput> {
    let mut out = Vec::new();
    if jobs {
        let loaded = async {
            let running = store::dialing::running_jobs_of(db, i(tenant)).await?;
            let results = store::dialing::result_numbers(db, i(tenant)).await?;
            let limits = store::dialing::caller_id_limits(db, i(tenant)).await?;
            let ids = store::dialing::caller_id_choices(db, i(tenant)).await?;
            Ok::<_, store::StoreError>((running, results, limits, ids))
        };
        match loaded.await {
            Ok((running, results, limits, ids)) => {
                let jobs: Vec<JobConfig> = running
                    .into_iter()
                    .map(|job| JobConfig {
                        waiting_audio: job.waiting_audio.as_deref().and_then(|p| clip(clips, p)),
                        result_numbers: results.get(&job.campaign_id).cloned().unwrap_or_default(),
                        job,
                    })
                    .collect();
                out.push(HostInput::Tenant { tenant, input: Input::CallerLimits(limits) });
                let ids = ids.into_iter().map(|c| (c.id as u64, c.number)).collect();
                out.push(HostInput::Tenant { tenant, input: Input::CallerIds(ids) });
                out.push(HostInput::Tenant { tenant, input: Input::Jobs(jobs) });
            }
            Err(e) => tracing::warn!(tenant, error = %e, "could not load the running call jobs"),
        }
    }
    if phones {
        match store::dialing::phone_accounts_of(db, i(tenant)).await {
            Ok(accounts) => out.push(HostInput::Accounts { tenant, accounts }),
            Err(e) => tracing::warn!(tenant, error = %e, "could not load the phone accounts"),
        }
    }
    out
}

/// A campaign's waiting audio (an 8 kHz 16-bit mono WAV), read once per path.
fn clip(cache: &mut HashMap<String, Option<Clip>>, path: &str) -> Option<Clip> {
    if let Some(c) = cache.get(path) {
        return c.clone();
    }
    let c = std::fs::read(path).ok().and_then(|b| media::wav::read_pcm16_mono_8k(&b).ok()).map(Clip::from);
    if c.is_none() {
        tracing::warn!(path, "waiting audio is not an 8 kHz 16-bit mono WAV; the default is used");
    }
    cache.insert(path.to_string(), c.clone());
    c
}

/// Publishes the engines' events in order, a batch per round trip. While the bus is away the
/// events wait in the channel ([`PUBLISH_QUEUE`]) and go when it returns; a refused event
/// (too large, not encodable) is dropped and counted.
async fn publisher<B: Bus>(bus: B, mut rx: mpsc::Receiver<(u64, ShardEvent)>) {
    let mut batch: Vec<(u64, ShardEvent)> = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        if rx.recv_many(&mut batch, PUBLISH_BATCH).await == 0 {
            return;
        }
        let at = u64::try_from(store::now_ms()).unwrap_or(0);
        let mut i = 0;
        while i < batch.len() {
            let tenant = batch[i].0;
            let mut envs = Vec::new();
            while i < batch.len() && batch[i].0 == tenant {
                match Envelope::new(tenant, at, &batch[i].1) {
                    Ok(e) => envs.push(e),
                    Err(e) => {
                        metrics::counter!("kakeru_dialer_events_dropped_total").increment(1);
                        tracing::error!(error = %e, "a shard event could not be encoded");
                    }
                }
                i += 1;
            }
            let stream = streams::shard_events(tenant);
            let mut backoff = Duration::from_millis(10);
            loop {
                match bus.publish_many(&stream, &envs).await {
                    Ok(_) => break,
                    Err(e @ (BusError::BadArgument(_) | BusError::Encode(_))) => {
                        metrics::counter!("kakeru_dialer_events_dropped_total").increment(envs.len() as u64);
                        tracing::error!(error = %e, stream, "the bus refused shard events; dropped");
                        break;
                    }
                    Err(e) => {
                        metrics::counter!("kakeru_dialer_publish_retries_total").increment(1);
                        tracing::warn!(error = %e, stream, "publish failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
        batch.clear();
    }
}

async fn read_agent_events<B: Bus>(
    bus: B,
    tenant: u64,
    stream: String,
    group: String,
    consumer: String,
    tx: mpsc::Sender<Inbox>,
) {
    // Entries this consumer left pending in an earlier run first.
    let mut backoff = 10u64;
    loop {
        let r = match bus.claim_stale(&stream, &group, &consumer, 30_000, 500).await {
            Ok(b) if !b.is_empty() => Ok(b),
            Ok(_) => bus.read(&stream, &group, &consumer, 500, 1000).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(d) if d.is_empty() => {}
            Ok(deliveries) => {
                backoff = 10;
                if tx.send(Inbox::AgentEvents { tenant, deliveries }).await.is_err() {
                    return;
                }
            }
            Err(BusError::NoGroup { .. }) => {
                let _ = bus.ensure_group(&stream, &group).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, %stream, "reading agent events failed; retrying");
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(1000);
            }
        }
    }
}

fn supervisor_mode(mode: wire::MonitorMode) -> media::SupervisorMode {
    use wire::MonitorMode;
    match mode {
        MonitorMode::Listen => media::SupervisorMode::Listen,
        MonitorMode::Whisper => media::SupervisorMode::Whisper,
        MonitorMode::Barge => media::SupervisorMode::Barge,
    }
}

/// The engine's input for a supervisor's notice (`None` for the other notices).
fn supervision_input(n: DialerNotice) -> Option<Input> {
    Some(match n {
        DialerNotice::Supervise { monitor_id, supervisor_id, call_id, mode } => Input::Supervise {
            monitor: i64::try_from(monitor_id).unwrap_or(i64::MAX),
            supervisor: supervisor_id.0,
            call: call_id.0,
            mode: supervisor_mode(mode),
            offer: None,
        },
        DialerNotice::EndSupervision { supervisor_id } => Input::EndSupervision { supervisor: supervisor_id.0 },
        DialerNotice::JobsChanged | DialerNotice::PhonesChanged => return None,
    })
}

async fn read_notices<B: Bus>(bus: B, stream: String, mut after: EntryId, tx: mpsc::Sender<Inbox>) {
    let mut backoff = 10u64;
    loop {
        match bus.read_after(&stream, after, 100, 1000).await {
            Ok(entries) => {
                backoff = 10;
                for (id, env) in entries {
                    after = id;
                    let tenant = env.tenant_id;
                    if env.kind == <SupervisorOffer as wire::Message>::KIND {
                        let o = match env.decode::<SupervisorOffer>() {
                            Ok(o) => o,
                            Err(e) => {
                                tracing::warn!(error = %e, "supervisor's browser phone offer not understood");
                                continue;
                            }
                        };
                        let input = Input::Supervise {
                            monitor: i64::try_from(o.monitor_id).unwrap_or(i64::MAX),
                            supervisor: o.supervisor_id.0,
                            call: o.call_id.0,
                            mode: supervisor_mode(o.mode),
                            offer: Some(o.sdp),
                        };
                        if tx.send(Inbox::Host(HostInput::Tenant { tenant, input })).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    if env.kind == <PhoneOffer as wire::Message>::KIND {
                        let input = match env.decode::<PhoneOffer>() {
                            Ok(o) => Input::PhoneOffer { agent: o.agent_id.0, sdp: o.sdp },
                            Err(e) => {
                                tracing::warn!(error = %e, "browser phone offer not understood");
                                continue;
                            }
                        };
                        if tx.send(Inbox::PhoneOffer { tenant, input }).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let (jobs, phones) = match env.decode::<DialerNotice>() {
                        Ok(DialerNotice::JobsChanged) => (true, false),
                        Ok(DialerNotice::PhonesChanged) => (false, true),
                        Ok(n) => {
                            let Some(input) = supervision_input(n) else { continue };
                            if tx.send(Inbox::Host(HostInput::Tenant { tenant, input })).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "dialer notice not understood");
                            continue;
                        }
                    };
                    if tx.send(Inbox::Reload { tenant, jobs, phones }).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, %stream, "reading dialer notices failed; retrying");
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(1000);
            }
        }
    }
}
