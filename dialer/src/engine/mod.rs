//! The dialer engine (`kakeru dialer`, and inside `kakeru demo`): the runtime around the shards'
//! call control and the pacers.
//!
//! # Shape
//! - N media shards (one per core, [`media::driver::spawn_with_app`]), each hosting a
//!   [`shard::SipShard`] with its own SIP socket (port `sip_port + i`), so a call's signalling and
//!   media live on one shard. A campaign lives on one shard (`campaign % N`): its customers and the
//!   nailed-up legs of its agents, so bridging is a move between two calls of that shard.
//! - One **owner** task holds every live call, the agents' states (from `agent:events`), the
//!   registered contacts and one pacer per campaign. It never waits on SQL: lead selection runs in
//!   a *prepare* task (one at a time per tenant, so two jobs never dial one number at once), and
//!   results go to a *writer* task (one, ordered).
//! - Inputs: the shards' [`CallEvent`]s; each tenant's `agent:events` (group `dialer`): the control
//!   service's commands (dial/hang up the agent leg, bridge, release, hang up the customer) and the
//!   transitions the pacers learn agent states from; a tick (every `tick`, 250 ms by default) that
//!   asks every campaign's pacer how many calls to launch.
//! - Outputs: commands to the shards; `shard:events` to the control service (customer answered,
//!   bridged, call ended with its SIP outcome, agent legs, dialer status); SQL (call records,
//!   leads, recalls, registrations, call jobs).
//!
//! # Rules it keeps
//! - Business hours (予約 From/To in the tenant's zone): launches only inside them; a job started
//!   early waits; at the end it launches no more, and calls in progress finish.
//! - Channel limits: launches never exceed the campaign's 最大チャンネル nor a caller ID's limit (the
//!   pacer's answer is capped before any lead is touched).
//! - The same number is never dialled twice at once within a tenant (the in-flight set, checked by
//!   the serialized prepare step).
//! - The do-not-call list is checked right before every dial: a hit is a `restricted` record and no
//!   call.
//! - A job's run dials each lead at most once (due recalls aside); when nothing is left and its
//!   calls have ended, it is `finished`.
//! - Predictive campaigns do not redial a customer abandoned within the last 72 hours.
//! - Preview (プレビュー): control's `dial_preview` places one lead for one agent through the same
//!   prepare step and checks (do-not-call, number in flight, channel limits, business hours, the job
//!   running, once per run); `preview_placed` (before the INVITE) or `preview_not_dialled` goes back
//!   to control. Paced dials never pick a lead an agent is previewing.
//! - A crash loses no lead: a call record is written before its INVITE; a restarted dialer gives the
//!   calls its previous run left pending the result `error` and tells the control service.

pub mod instruments;
pub mod results;
pub mod shard;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Timelike;
use control::agent::{AgentState as CtlState, Command as CtlCommand, Event as CtlEvent};
use control::bus::{Bus, BusError, DedupState, Deduper, Delivery, EntryId, Envelope};
use control::messages::{streams, ApiCommand, CampaignId, LeadId, Party as MsgParty, ShardEvent, SipOutcome};
use media::driver::{self, ShardConfig, ShardHandle};
use media::shard::Control;
use media::Clip;
use store::dialing::{self, CallResult, NewCall, NotDialled, RunningJob};
use store::Db;
use tokio::sync::{mpsc, watch};

use crate::calls::{self, CallEnd, CallEvent, CancelReason, Command, DialAgent, DialCustomer, DtmfEntry, Party};
use crate::pacer::{
    AgentState as PacerAgentState, AgentView as PacerAgent, FixedRatioPacer, FloorView, Pacer, PacerEvent,
    PredictiveConfig, PredictivePacer, PreviewPacer, ProgressivePacer,
};
use shard::{ShardOutput, SipShard};

/// The 72-hour rule for predictive campaigns.
pub const NO_REDIAL_AFTER_ABANDON_MS: i64 = 72 * 3_600_000;
/// Most dials one prepare step asks for.
const MAX_PREPARE: u32 = 500;

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
    pub carrier: SocketAddr,
    pub carrier_domain: Option<String>,
    pub carrier_credentials: Option<sip::auth::Credentials>,
    /// The agents' phones: digest nonce secrets, registrar bounds, limits on failed authentication.
    pub phones: calls::PhoneSettings,
    /// A file the nonce secrets are read from at start and again at every reload (rotation);
    /// without one, `phones.nonce_keys` stay as given.
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
    /// Tick at which running jobs and accounts are reloaded.
    pub reload_every: Duration,
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
            reload_every: Duration::from_secs(2),
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

/// Counters of a running engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub launched: u64,
    pub answered: u64,
    pub bridged: u64,
    pub ended: u64,
    pub abandoned: u64,
    pub restricted: u64,
    pub agent_legs_up: u64,
    pub registrations: u64,
    pub dtmf_entries: u64,
    pub orphans_failed: u64,
    /// Leads prepared when shutdown began, given `stopped` without a dial.
    pub not_dialled_at_stop: u64,
    /// Preview dials asked for by agents, and those placed.
    pub preview_asked: u64,
    pub preview_placed: u64,
}

/// A handle on a running engine: its SIP addresses and counters.
#[derive(Clone, Debug)]
pub struct EngineInfo {
    /// SIP address of each shard (agents' phones register at any of them).
    pub sip_addrs: Vec<SocketAddr>,
    pub stats: Arc<std::sync::Mutex<EngineStats>>,
}

#[derive(Debug)]
struct LiveCall {
    tenant: u64,
    campaign: u64,
    job: i64,
    lead: i64,
    tel: String,
    caller_id: Option<String>,
    shard: usize,
    launched: Instant,
    answered: Option<Instant>,
    bridged: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct AgentInfo {
    tenant: u64,
    campaign: Option<u64>,
    state: CtlState,
    since_ms: u64,
    /// The call the agent holds or is offered.
    call: Option<u64>,
    leg_shard: Option<usize>,
}

struct CampaignState {
    tenant: u64,
    jobs: Vec<RunningJob>,
    pacer: Box<dyn Pacer + Send + Sync>,
    mode: String,
    next_job: usize,
    reserved: u32,
    exhausted: HashSet<i64>,
    last_decision: Option<crate::pacer::Decision>,
    remaining: u64,
    waiting_audio: Option<Clip>,
}

#[derive(Default)]
struct TenantState {
    preparing: bool,
    caller_limits: HashMap<String, i64>,
    numbers: HashSet<String>,
    /// Preview dials waiting for the tenant's prepare step (served before paced dials).
    previews: VecDeque<PreviewAsk>,
}

/// An agent's preview dial, accepted by the owner (its channel counted in `reserved`).
#[derive(Debug, Clone)]
struct PreviewAsk {
    agent: u64,
    campaign: u64,
    job: RunningJob,
    lead: i64,
    /// A channel limit was reached when it was asked: recorded `channel_limit`, not dialled.
    limit_reached: bool,
}

struct Prepared {
    tenant: u64,
    campaign: u64,
    asked: u32,
    dials: Vec<(i64, i64, store::leads::Candidate, Option<String>)>,
    restricted: usize,
    exhausted: Vec<i64>,
    remaining: u64,
    recording_dir: Option<PathBuf>,
    /// A preview dial: the agent and lead, and why it was not placed (`None`: placed).
    preview: Option<(u64, i64, Option<&'static str>)>,
}

/// A prepare step that failed: tenant, campaign, dials asked, the error, and the preview dial's agent
/// and lead when it was one.
type PrepareError = (u64, u64, u32, String, Option<(u64, i64)>);

enum Input {
    AgentEvents { tenant: u64, deliveries: Vec<Delivery> },
    Prepared(Result<Prepared, PrepareError>),
    Jobs(Vec<RunningJob>),
    Accounts(Vec<store::dialing::PhoneAccount>),
    NonceKeys(sip::auth::NonceKeys),
    Limits { tenant: u64, limits: HashMap<String, i64> },
}

enum Write {
    Results {
        tenant: u64,
        results: Vec<CallResult>,
    },
    Recording(store::recordings::NewRecording),
    Registration(store::dialing::Registration),
    EndJob {
        tenant: u64,
        job: i64,
        status: &'static str,
    },
    /// Call records of leads prepared when shutdown began, with the recall each was to answer: not
    /// dialled.
    NotDialled {
        tenant: u64,
        calls: Vec<(i64, Option<i64>)>,
    },
    Dtmf {
        tenant: u64,
        agent: u64,
        call: u64,
        entry: DtmfEntry,
    },
}

fn now_ms() -> u64 {
    u64::try_from(store::now_ms()).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The shard a campaign lives on.
fn shard_of(campaign: u64, shards: usize) -> usize {
    (campaign % shards.max(1) as u64) as usize
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

/// Opens the bus handle one `agent:events` reader blocks on.
pub type ReaderFactory<B> =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<B, BusError>> + Send>> + Send + Sync>;

/// [`run`], with a handle of its own for each tenant's `agent:events` reader (on Redis a blocking
/// read holds up every command queued behind it on its connection: the engine's publishes, and
/// the other tenants' reads).
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
        let h = driver::spawn_with_app(ShardConfig { index: i, core, ..ShardConfig::default() }, Box::new(app))?;
        // Registers the SIP socket and binds the first RTP ports.
        let _ = h.send(Control::App(Box::new(Command::SetAccounts(Vec::new()))));
        handles.push(h);
        sip_addrs.push(advertised);
    }
    drop(shard_tx);
    let stats = Arc::new(std::sync::Mutex::new(EngineStats::default()));
    if let Some(r) = ready {
        let _ = r.send(EngineInfo { sip_addrs: sip_addrs.clone(), stats: stats.clone() });
    }
    tracing::info!(shards = handles.len(), sip = ?sip_addrs, "dialer shards up");
    let (input_tx, input_rx) = mpsc::channel::<Input>(1024);
    let (write_tx, write_rx) = mpsc::channel::<Write>(65_536);
    let writer = tokio::spawn(writer(db.clone(), bus.clone(), write_rx));
    let mut owner = Owner {
        cfg,
        db,
        bus,
        new_reader,
        shards: handles,
        input_tx,
        write_tx,
        calls: HashMap::new(),
        agents: HashMap::new(),
        contacts: HashMap::new(),
        phones: HashMap::new(),
        campaigns: HashMap::new(),
        tenants: HashMap::new(),
        dedup: Deduper::new(100_000),
        stats: EngineStats::default(),
        shared_stats: stats,
        readers: HashMap::new(),
        clip_cache: HashMap::new(),
        stopping: false,
    };
    let r = owner.run(shard_rx, input_rx, shutdown).await;
    let stats = owner.stats;
    let Owner { write_tx, shards, readers, .. } = owner;
    for (_, h) in readers {
        h.abort();
    }
    drop(write_tx);
    let _ = writer.await;
    for s in shards {
        let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
    }
    r.map(|()| stats)
}

struct Owner<B: Bus + Clone + 'static> {
    cfg: EngineConfig,
    db: Db,
    bus: B,
    new_reader: ReaderFactory<B>,
    shards: Vec<ShardHandle>,
    input_tx: mpsc::Sender<Input>,
    write_tx: mpsc::Sender<Write>,
    calls: HashMap<u64, LiveCall>,
    agents: HashMap<u64, AgentInfo>,
    /// Registered contact of each agent (user id): (contact URI, source address, expires at ms).
    contacts: HashMap<u64, (String, SocketAddr, u64)>,
    /// Phone accounts by (tenant, username).
    phones: HashMap<(u64, String), store::dialing::PhoneAccount>,
    campaigns: HashMap<u64, CampaignState>,
    tenants: HashMap<u64, TenantState>,
    dedup: Deduper,
    stats: EngineStats,
    shared_stats: Arc<std::sync::Mutex<EngineStats>>,
    readers: HashMap<u64, tokio::task::JoinHandle<()>>,
    clip_cache: HashMap<String, Option<Clip>>,
    /// Set once shutdown begins: leads prepared after that are not dialled.
    stopping: bool,
}

impl<B: Bus + Clone + 'static> Owner<B> {
    async fn run(
        &mut self,
        mut shard_rx: mpsc::Receiver<ShardOutput>,
        mut input_rx: mpsc::Receiver<Input>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        self.recover().await?;
        self.reload_now().await?;
        let mut tick = tokio::time::interval(self.cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reload = Instant::now();
        let mut last_status = Instant::now();
        loop {
            tokio::select! {
                biased;
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                Some(out) = shard_rx.recv() => {
                    self.on_shard(out).await;
                    // Drain what else is there before the next tick.
                    while let Ok(out) = shard_rx.try_recv() {
                        self.on_shard(out).await;
                    }
                }
                Some(input) = input_rx.recv() => self.on_input(input).await,
                _ = tick.tick() => {
                    self.plan();
                    if last_reload.elapsed() >= self.cfg.reload_every {
                        last_reload = Instant::now();
                        self.reload();
                    }
                    if last_status.elapsed() >= Duration::from_secs(1) {
                        last_status = Instant::now();
                        self.publish_status().await;
                    }
                    if let Ok(mut s) = self.shared_stats.lock() {
                        *s = self.stats;
                    }
                }
            }
        }
        self.drain_calls(&mut shard_rx, &mut input_rx).await;
        if let Ok(mut s) = self.shared_stats.lock() {
            *s = self.stats;
        }
        Ok(())
    }

    /// Calls an earlier run of this host left pending: `error`, and control is told they ended.
    async fn recover(&mut self) -> Result<(), EngineError> {
        let now = store::now_ms();
        let orphans = dialing::fail_orphaned_calls(&self.db, &self.cfg.instance_prefix, now).await?;
        for (tenant, call) in &orphans {
            let outcome =
                SipOutcome { status: 0, reason: "dialer restarted".into(), ended_by: MsgParty::System, talk_ms: 0 };
            let ev = ShardEvent::CallEnded { call_id: control::agent::CallId(*call as u64), agent_id: None, outcome };
            self.publish(*tenant as u64, &ev).await;
        }
        if !orphans.is_empty() {
            tracing::warn!(calls = orphans.len(), "calls left by an earlier run got the result error");
        }
        self.stats.orphans_failed += orphans.len() as u64;
        // Who works which campaign, in which state (the control service's table).
        for (tenant, agent, campaign, view) in dialing::control_agents(&self.db).await? {
            let Ok(v) = serde_json::from_str::<control::agent::AgentView>(&view) else { continue };
            self.agents.insert(
                agent as u64,
                AgentInfo {
                    tenant: tenant as u64,
                    campaign: campaign.map(|c| c as u64),
                    state: v.state,
                    since_ms: v.since_ms,
                    call: v.call_id.map(|c| c.0),
                    leg_shard: None,
                },
            );
        }
        for r in dialing::registrations(&self.db, now).await? {
            if let (Some(user), Ok(src)) = (r.user_id, r.source.parse::<SocketAddr>()) {
                self.contacts.insert(user as u64, (r.contact, src, r.expires_at as u64));
            }
        }
        Ok(())
    }

    async fn reload_now(&mut self) -> Result<(), EngineError> {
        let jobs = dialing::running_jobs(&self.db).await?;
        self.on_jobs(jobs);
        for t in self.tenants.keys().copied().collect::<Vec<_>>() {
            let limits = dialing::caller_id_limits(&self.db, i(t)).await?;
            self.tenants.entry(t).or_default().caller_limits = limits;
        }
        let accounts = dialing::phone_accounts(&self.db).await?;
        self.on_accounts(accounts);
        self.ensure_readers().await?;
        Ok(())
    }

    /// Reloads running jobs and phone accounts off the owner.
    fn reload(&mut self) {
        let (db, tx) = (self.db.clone(), self.input_tx.clone());
        let key_file = self.cfg.nonce_key_file.clone();
        tokio::spawn(async move {
            if let Some(path) = key_file {
                match crate::secrets::load_nonce_keys(&path).await {
                    Ok(k) => {
                        let _ = tx.send(Input::NonceKeys(k)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not reload the SIP nonce secrets; keeping the current ones")
                    }
                }
            }
            match dialing::running_jobs(&db).await {
                Ok(j) => {
                    let _ = tx.send(Input::Jobs(j)).await;
                }
                Err(e) => tracing::warn!(error = %e, "could not load the running call jobs"),
            }
            match dialing::phone_accounts(&db).await {
                Ok(a) => {
                    let _ = tx.send(Input::Accounts(a)).await;
                }
                Err(e) => tracing::warn!(error = %e, "could not load the phone accounts"),
            }
        });
    }

    fn serves(&self, tenant: u64) -> bool {
        self.cfg.tenants.as_ref().is_none_or(|t| t.contains(&tenant))
    }

    /// One reader of `agent:events` per served tenant.
    async fn ensure_readers(&mut self) -> Result<(), EngineError> {
        let tenants = match &self.cfg.tenants {
            Some(t) => t.clone(),
            None => control::service::tenant_ids(&self.db, 100_000)
                .await
                .map_err(|e| EngineError::Bus(BusError::Protocol(e.to_string())))?,
        };
        for t in tenants {
            if self.readers.contains_key(&t) {
                continue;
            }
            let stream = streams::agent_events(t);
            self.bus.ensure_group(&stream, &self.cfg.group).await?;
            let bus = (self.new_reader)().await?;
            let (group, consumer, tx) = (self.cfg.group.clone(), self.cfg.consumer.clone(), self.input_tx.clone());
            self.readers.insert(t, tokio::spawn(read_agent_events(bus, t, stream, group, consumer, tx)));
        }
        Ok(())
    }

    fn on_accounts(&mut self, accounts: Vec<store::dialing::PhoneAccount>) {
        let list: Vec<calls::Account> = accounts
            .iter()
            .filter(|a| self.serves(a.tenant_id as u64))
            .map(|a| calls::Account {
                tenant_id: a.tenant_id as u64,
                user_id: a.user_id.map(|u| u as u64),
                realm: a.realm.clone(),
                username: a.username.clone(),
                ha1_md5: a.ha1_md5.clone(),
                ha1_sha256: a.ha1_sha256.clone(),
                digest: match a.digest {
                    store::dialing::DigestAlgorithms::Md5 => calls::DigestChallenges::Md5,
                    store::dialing::DigestAlgorithms::Sha256 => calls::DigestChallenges::Sha256,
                    store::dialing::DigestAlgorithms::Both => calls::DigestChallenges::Both,
                },
            })
            .collect();
        self.phones = accounts.into_iter().map(|a| ((a.tenant_id as u64, a.username.clone()), a)).collect();
        for s in 0..self.shards.len() {
            self.send_to_shard(s, Command::SetAccounts(list.clone()));
        }
    }

    fn on_jobs(&mut self, jobs: Vec<RunningJob>) {
        let mut by_campaign: HashMap<u64, Vec<RunningJob>> = HashMap::new();
        for j in jobs {
            if self.serves(j.tenant_id as u64) {
                by_campaign.entry(j.campaign_id as u64).or_default().push(j);
            }
        }
        // Campaigns with no running job keep their pacer while calls are in flight.
        let live: HashSet<u64> = self.calls.values().map(|c| c.campaign).collect();
        self.campaigns.retain(|c, _| by_campaign.contains_key(c) || live.contains(c));
        for (campaign, jobs) in by_campaign {
            let first = &jobs[0];
            let tenant = first.tenant_id as u64;
            let mode = first.mode.clone();
            let waiting =
                first.waiting_audio.clone().and_then(|p| self.clip(&p)).or_else(|| self.cfg.clips.waiting.clone());
            let st = self.campaigns.entry(campaign).or_insert_with(|| CampaignState {
                tenant,
                jobs: Vec::new(),
                pacer: pacer_for(&jobs[0]),
                mode: mode.clone(),
                next_job: 0,
                reserved: 0,
                exhausted: HashSet::new(),
                last_decision: None,
                remaining: 0,
                waiting_audio: None,
            });
            if st.mode != mode {
                st.pacer = pacer_for(&jobs[0]);
                st.mode = mode;
            }
            st.waiting_audio = waiting;
            // A job started again begins a new run.
            let started: HashMap<i64, Option<i64>> = st.jobs.iter().map(|j| (j.job_id, j.started_at)).collect();
            st.exhausted.retain(|j| jobs.iter().any(|x| x.job_id == *j && started.get(j) == Some(&x.started_at)));
            st.jobs = jobs;
            self.tenants.entry(tenant).or_default();
        }
    }

    fn clip(&mut self, path: &str) -> Option<Clip> {
        if let Some(c) = self.clip_cache.get(path) {
            return c.clone();
        }
        let c = std::fs::read(path).ok().and_then(|b| media::wav::read_pcm16_mono_8k(&b).ok()).map(Clip::from);
        if c.is_none() {
            tracing::warn!(path, "waiting audio is not an 8 kHz 16-bit mono WAV; the default is used");
        }
        self.clip_cache.insert(path.to_string(), c.clone());
        c
    }

    fn send_to_shard(&self, shard: usize, cmd: Command) {
        let Some(h) = self.shards.get(shard) else { return };
        // A full control queue is back-pressure from a busy shard: wait for room (bounded).
        match h.send_timeout(Control::App(Box::new(cmd)), Duration::from_secs(1)) {
            Ok(()) => {}
            Err(media::driver::SendError::Stopped) => tracing::error!(shard, "shard stopped"),
            Err(media::driver::SendError::Full) => {
                metrics::counter!("kakeru_dialer_shard_commands_dropped_total").increment(1);
                tracing::error!(shard, "shard control queue full for a second; a command was dropped");
            }
        }
    }

    async fn publish(&self, tenant: u64, ev: &ShardEvent) {
        let env = match Envelope::new(tenant, now_ms(), ev) {
            Ok(e) => e,
            Err(e) => return tracing::error!(error = %e, "encoding a shard event"),
        };
        publish_retrying(&self.bus, &streams::shard_events(tenant), &env).await;
    }

    // ------------------------------------------------------------------ shard events

    async fn on_shard(&mut self, out: ShardOutput) {
        let shard = out.shard;
        match out.event {
            CallEvent::CustomerRinging { .. } => {}
            CallEvent::CustomerAnswered { call, ring_ms } => {
                let Some(c) = self.calls.get_mut(&call) else { return };
                c.answered = Some(Instant::now());
                let (tenant, campaign, lead) = (c.tenant, c.campaign, c.lead);
                self.stats.answered += 1;
                metrics::counter!("kakeru_dialer_calls_answered_total").increment(1);
                if let Some(st) = self.campaigns.get_mut(&campaign) {
                    st.pacer.on_event(now_ms(), PacerEvent::AnsweredLive { ring_ms });
                }
                let ev = ShardEvent::CustomerAnswered {
                    call_id: control::agent::CallId(call),
                    campaign_id: CampaignId(campaign),
                    lead_id: LeadId(lead as u64),
                    shard: shard as u32,
                };
                self.publish(tenant, &ev).await;
            }
            CallEvent::Bridged { call, agent } => {
                let Some(c) = self.calls.get_mut(&call) else { return };
                c.bridged = Some(agent);
                let wait_ms = c.answered.map(|a| a.elapsed().as_millis() as u64).unwrap_or(0);
                let (tenant, campaign) = (c.tenant, c.campaign);
                self.stats.bridged += 1;
                metrics::histogram!("kakeru_dialer_answer_to_bridge_seconds").record(wait_ms as f64 / 1000.0);
                if let Some(st) = self.campaigns.get_mut(&campaign) {
                    st.pacer.on_event(now_ms(), PacerEvent::Connected { wait_ms });
                }
                let ev = ShardEvent::Bridged {
                    call_id: control::agent::CallId(call),
                    agent_id: control::agent::AgentId(agent),
                };
                self.publish(tenant, &ev).await;
            }
            CallEvent::BridgeFailed { call, agent, reason } => {
                tracing::info!(call, agent, reason, "bridge not made");
            }
            CallEvent::CustomerEnded { call, end } => self.on_call_ended(call, end).await,
            CallEvent::AgentLegUp { agent } => {
                let Some(a) = self.agents.get_mut(&agent) else { return };
                a.leg_shard = Some(shard);
                let tenant = a.tenant;
                self.stats.agent_legs_up += 1;
                let ev = ShardEvent::AgentLegUp { agent_id: control::agent::AgentId(agent), shard: shard as u32 };
                self.publish(tenant, &ev).await;
            }
            CallEvent::AgentLegDown { agent } => {
                let Some(a) = self.agents.get_mut(&agent) else { return };
                a.leg_shard = None;
                let tenant = a.tenant;
                let ev = ShardEvent::AgentLegDown { agent_id: control::agent::AgentId(agent), shard: shard as u32 };
                self.publish(tenant, &ev).await;
            }
            CallEvent::AgentUnreachable { agent, status } => {
                let Some(tenant) = self.agents.get(&agent).map(|a| a.tenant) else { return };
                let ev = ShardEvent::AgentUnreachable { agent_id: control::agent::AgentId(agent), sip_status: status };
                self.publish(tenant, &ev).await;
            }
            CallEvent::Registered { tenant_id, user_id, username, contact, source, expires_s } => {
                self.stats.registrations += 1;
                let expires_at = now_ms() + u64::from(expires_s) * 1000;
                if let Some(u) = user_id {
                    if expires_s == 0 {
                        self.contacts.remove(&u);
                    } else {
                        self.contacts.insert(u, (contact.clone(), source, expires_at));
                    }
                }
                if let Some(p) = self.phones.get(&(tenant_id, username)) {
                    let reg = store::dialing::Registration {
                        tenant_id: i(tenant_id),
                        phone_id: p.phone_id,
                        user_id: user_id.map(i),
                        contact,
                        source: source.to_string(),
                        expires_at: i(expires_at),
                    };
                    let _ = self.write_tx.send(Write::Registration(reg)).await;
                }
            }
            CallEvent::DtmfEntry { agent, call, entry } => {
                self.stats.dtmf_entries += 1;
                let Some(tenant) = self.agents.get(&agent).map(|a| a.tenant) else { return };
                let _ = self.write_tx.send(Write::Dtmf { tenant, agent, call, entry }).await;
            }
            CallEvent::RecordingClosed { call, path, bytes, error } => {
                if let Some(e) = error {
                    tracing::warn!(call, error = %e, "recording failed");
                }
                // The call may have ended already; its tenant is on the call record.
                let tenant = self.calls.get(&call).map(|c| c.tenant).or_else(|| {
                    self.cfg.recordings_dir.as_ref().and_then(|d| path.strip_prefix(d).ok()).and_then(|p| {
                        p.components().next().and_then(|c| c.as_os_str().to_str()).and_then(|s| s.parse().ok())
                    })
                });
                if let Some(tenant) = tenant {
                    let now = store::now_ms();
                    let duration_ms = i64::try_from(media::recording::duration_ms(bytes)).unwrap_or(0);
                    let r = store::recordings::NewRecording {
                        tenant_id: i(tenant),
                        dialer_call_id: i(call),
                        path: path.to_string_lossy().into_owned(),
                        bytes: i(bytes),
                        duration_ms,
                        started_at_ms: now - duration_ms,
                        closed_at_ms: now,
                    };
                    let _ = self.write_tx.send(Write::Recording(r)).await;
                }
            }
        }
    }

    async fn on_call_ended(&mut self, call: u64, end: CallEnd) {
        let Some(c) = self.calls.remove(&call) else { return };
        self.stats.ended += 1;
        let result = results::result_of(&end);
        if result == "abandoned" {
            self.stats.abandoned += 1;
        }
        metrics::counter!("kakeru_dialer_calls_total", "result" => result).increment(1);
        if let Some(t) = self.tenants.get_mut(&c.tenant) {
            t.numbers.remove(&c.tel);
        }
        if let Some(st) = self.campaigns.get_mut(&c.campaign) {
            if let Some(ev) = results::pacer_event(&end) {
                st.pacer.on_event(now_ms(), ev);
            }
        }
        let now = store::now_ms();
        let answered_at = c.answered.map(|a| now - a.elapsed().as_millis() as i64);
        let r = CallResult { call_id: i(call), result, sip_status: i64::from(end.status), answered_at, ended_at: now };
        let _ = self.write_tx.send(Write::Results { tenant: c.tenant, results: vec![r] }).await;
        let outcome = SipOutcome {
            status: end.status,
            reason: end.reason.chars().take(256).collect(),
            ended_by: match end.ended_by {
                Party::Customer => MsgParty::Customer,
                Party::Agent => MsgParty::Agent,
                Party::System => MsgParty::System,
            },
            talk_ms: end.talk_ms,
        };
        let ev = ShardEvent::CallEnded {
            call_id: control::agent::CallId(call),
            agent_id: end.agent.map(control::agent::AgentId),
            outcome,
        };
        self.publish(c.tenant, &ev).await;
        self.maybe_finish_job(c.campaign, c.job).await;
    }

    async fn maybe_finish_job(&mut self, campaign: u64, job: i64) {
        let Some(st) = self.campaigns.get(&campaign) else { return };
        if !st.exhausted.contains(&job) || st.reserved > 0 || self.calls.values().any(|c| c.job == job) {
            return;
        }
        let tenant = st.tenant;
        let _ = self.write_tx.send(Write::EndJob { tenant, job, status: "finished" }).await;
        if let Some(st) = self.campaigns.get_mut(&campaign) {
            st.jobs.retain(|j| j.job_id != job);
            st.exhausted.remove(&job);
        }
    }

    // ------------------------------------------------------------------ agent events

    async fn on_input(&mut self, input: Input) {
        match input {
            Input::AgentEvents { tenant, deliveries } => {
                let mut acks: Vec<EntryId> = Vec::with_capacity(deliveries.len());
                for d in deliveries {
                    acks.push(d.entry_id);
                    if self.dedup.is_applied(&d.envelope.id) {
                        continue;
                    }
                    self.dedup.mark_applied(d.envelope.id);
                    match d.envelope.decode::<CtlEvent>() {
                        Ok(ev) => self.on_agent_event(tenant, ev).await,
                        Err(e) => tracing::warn!(error = %e, "agent event not understood"),
                    }
                }
                let stream = streams::agent_events(tenant);
                if let Err(e) = self.bus.ack(&stream, &self.cfg.group, &acks).await {
                    tracing::warn!(error = %e, "ack of agent events failed (they will be redelivered)");
                }
            }
            Input::Prepared(r) => self.on_prepared(r).await,
            Input::Jobs(jobs) => {
                self.on_jobs(jobs);
                if let Err(e) = self.ensure_readers().await {
                    tracing::warn!(error = %e, "could not start an agent-event reader");
                }
                self.refresh_limits();
            }
            Input::Accounts(a) => self.on_accounts(a),
            // Every shard compares and keeps its keys when they did not change.
            Input::NonceKeys(k) => {
                for s in 0..self.shards.len() {
                    self.send_to_shard(s, Command::SetNonceKeys(k.clone()));
                }
            }
            Input::Limits { tenant, limits } => self.tenants.entry(tenant).or_default().caller_limits = limits,
        }
    }

    /// Reloads the caller-ID channel limits of the tenants with running jobs, off the owner.
    fn refresh_limits(&mut self) {
        let tenants: Vec<u64> = self.tenants.keys().copied().collect();
        let (db, tx) = (self.db.clone(), self.input_tx.clone());
        tokio::spawn(async move {
            for tenant in tenants {
                match dialing::caller_id_limits(&db, i(tenant)).await {
                    Ok(limits) => {
                        let _ = tx.send(Input::Limits { tenant, limits }).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not load the caller-ID limits"),
                }
            }
        });
    }

    async fn on_agent_event(&mut self, tenant: u64, ev: CtlEvent) {
        match ev {
            CtlEvent::Transition(t) => {
                let a = self.agents.entry(t.agent_id.0).or_insert(AgentInfo {
                    tenant,
                    campaign: None,
                    state: t.from,
                    since_ms: t.at_ms,
                    call: None,
                    leg_shard: None,
                });
                let in_state = t.at_ms.saturating_sub(a.since_ms);
                let learned = match (a.state, t.to) {
                    (CtlState::Talking | CtlState::Hold, CtlState::WrapUp) => {
                        Some(PacerEvent::TalkEnded { talk_ms: in_state })
                    }
                    (CtlState::WrapUp, _) => Some(PacerEvent::WrapEnded { wrap_ms: in_state }),
                    _ => None,
                };
                a.state = t.to;
                a.since_ms = t.at_ms;
                a.call = t.call_id.map(|c| c.0);
                if let (Some(ev), Some(c)) = (learned, a.campaign) {
                    if let Some(st) = self.campaigns.get_mut(&c) {
                        st.pacer.on_event(now_ms(), ev);
                    }
                }
            }
            CtlEvent::Command(c) => self.on_command(tenant, c),
        }
    }

    fn on_command(&mut self, tenant: u64, c: CtlCommand) {
        match c {
            CtlCommand::DialAgentLeg { agent_id, campaign_id } => {
                let agent = agent_id.0;
                let a = self.agents.entry(agent).or_insert(AgentInfo {
                    tenant,
                    campaign: None,
                    state: CtlState::Ringing,
                    since_ms: now_ms(),
                    call: None,
                    leg_shard: None,
                });
                if let Some(c) = campaign_id {
                    a.campaign = Some(c.0);
                }
                let shard = shard_of(a.campaign.unwrap_or(0), self.shards.len());
                match self.contacts.get(&agent).filter(|(_, _, exp)| *exp > now_ms()).cloned() {
                    Some((target, source, _)) => {
                        // The Contact's address when it names one (a phone registering for another
                        // UA, or behind no NAT); else where the REGISTER came from.
                        let dest = calls::uri_addr(&target).filter(|a| !a.ip().is_unspecified()).unwrap_or(source);
                        self.send_to_shard(
                            shard,
                            Command::DialAgent(DialAgent { agent, tenant_id: tenant, target, dest }),
                        )
                    }
                    None => {
                        tracing::info!(agent, "no registered phone for the agent");
                        self.publish_later(tenant, ShardEvent::AgentUnreachable { agent_id, sip_status: 404 });
                    }
                }
            }
            CtlCommand::HangUpAgentLeg { agent_id } => {
                let agent = agent_id.0;
                let shard = self
                    .agents
                    .get(&agent)
                    .and_then(|a| a.leg_shard.or(a.campaign.map(|c| shard_of(c, self.shards.len()))))
                    .unwrap_or(0);
                self.send_to_shard(shard, Command::HangUpAgent { agent });
            }
            CtlCommand::Bridge { agent_id, call_id } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    self.send_to_shard(shard, Command::Bridge { call: call_id.0, agent: agent_id.0 });
                }
            }
            CtlCommand::ReleaseCustomer { agent_id, call_id } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    let cmd = if agent_id.0 == 0 {
                        Command::Abandon { call: call_id.0 }
                    } else {
                        Command::Unbridge { call: call_id.0 }
                    };
                    self.send_to_shard(shard, cmd);
                }
            }
            CtlCommand::HangUpCustomer { call_id, .. } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    self.send_to_shard(shard, Command::HangUpCustomer { call: call_id.0, by: Party::Agent });
                }
            }
            CtlCommand::DialPreview { agent_id, campaign_id, call_job_id, lead_id } => {
                self.on_preview_dial(tenant, agent_id.0, campaign_id.0, call_job_id.0, lead_id.0);
            }
        }
    }

    /// An agent's preview dial: the owner's checks (job running, business hours, channel limits),
    /// then the tenant's prepare step ([`prepare_preview`]) does the rest.
    fn on_preview_dial(&mut self, tenant: u64, agent: u64, campaign: u64, job_id: u64, lead: u64) {
        self.stats.preview_asked += 1;
        let lead = i(lead);
        let job = self
            .campaigns
            .get(&campaign)
            .filter(|st| st.tenant == tenant)
            .and_then(|st| st.jobs.iter().find(|j| j.job_id == i(job_id)).cloned());
        let refuse = |s: &Self, result: &'static str| s.publish_later(tenant, not_dialled(agent, lead, result));
        let Some(job) = job.filter(|j| j.campaign_enabled) else {
            return refuse(self, "job_not_running");
        };
        if self.stopping {
            return refuse(self, "job_not_running");
        }
        if !in_business_hours(&job, now_ms()) {
            return refuse(self, "outside_hours");
        }
        let reserved = self.campaigns.get(&campaign).map_or(0, |st| st.reserved);
        let limit_reached = free_channels(&self.calls, &self.tenants, tenant, campaign, reserved, &job) == 0;
        if let Some(st) = self.campaigns.get_mut(&campaign) {
            st.reserved += 1;
        }
        self.tenants.entry(tenant).or_default().previews.push_back(PreviewAsk {
            agent,
            campaign,
            job,
            lead,
            limit_reached,
        });
        self.start_preview(tenant);
    }

    /// Starts the tenant's next preview dial when its prepare step is free.
    fn start_preview(&mut self, tenant: u64) {
        let Some(t) = self.tenants.get_mut(&tenant) else { return };
        if self.stopping {
            // Not placed: the agents are given back (their leads stay held for them, unattempted).
            let asks: Vec<PreviewAsk> = t.previews.drain(..).collect();
            for ask in asks {
                self.publish_later(tenant, not_dialled(ask.agent, ask.lead, "job_not_running"));
            }
            return;
        }
        if t.preparing {
            return;
        }
        let Some(ask) = t.previews.pop_front() else { return };
        t.preparing = true;
        let numbers = t.numbers.clone();
        let jobs: Vec<RunningJob> = self.campaigns.get(&ask.campaign).map(|st| st.jobs.clone()).unwrap_or_default();
        let (db, tx, instance) = (self.db.clone(), self.input_tx.clone(), self.cfg.instance.clone());
        let rec_dir = self.cfg.recordings_dir.clone();
        tokio::spawn(async move {
            let r = prepare_preview(&db, &instance, tenant, &ask, &jobs, &numbers, rec_dir).await;
            let msg = r.map_err(|e| (tenant, ask.campaign, 1, e.to_string(), Some((ask.agent, ask.lead))));
            let _ = tx.send(Input::Prepared(msg)).await;
        });
    }

    /// Publishes from a task of its own (for the owner's synchronous paths), retrying.
    fn publish_later(&self, tenant: u64, ev: ShardEvent) {
        let bus = self.bus.clone();
        tokio::spawn(async move {
            if let Ok(env) = Envelope::new(tenant, now_ms(), &ev) {
                publish_retrying(&bus, &streams::shard_events(tenant), &env).await;
            }
        });
    }

    // ------------------------------------------------------------------ pacing

    /// Asks every campaign's pacer and starts the dials it wants (capped by the channel limits).
    fn plan(&mut self) {
        let now = now_ms();
        let mono = Instant::now();
        let mut wanted: Vec<(u64, u64, u32)> = Vec::new();
        for (campaign, st) in self.campaigns.iter_mut() {
            let Some(first) = st.jobs.first() else { continue };
            if !first.campaign_enabled || !in_business_hours(first, now) {
                continue;
            }
            let live: Vec<&LiveCall> = self.calls.values().filter(|c| c.campaign == *campaign).collect();
            let ringing: Vec<u64> = live
                .iter()
                .filter(|c| c.answered.is_none())
                .map(|c| mono.duration_since(c.launched).as_millis() as u64)
                .collect();
            let mut ringing = ringing;
            ringing.extend(std::iter::repeat_n(0, st.reserved as usize));
            let waiting = live.iter().filter(|c| c.answered.is_some() && c.bridged.is_none()).count() as u32;
            let agents: Vec<PacerAgent> = self
                .agents
                .values()
                .filter(|a| a.campaign == Some(*campaign))
                .filter_map(|a| {
                    let state = match a.state {
                        CtlState::Ready => PacerAgentState::Ready,
                        CtlState::Talking | CtlState::Hold => PacerAgentState::Talking,
                        CtlState::Ringing if a.call.is_some() => PacerAgentState::Talking,
                        CtlState::WrapUp => PacerAgentState::WrapUp,
                        CtlState::Paused { .. } => PacerAgentState::Paused,
                        _ => return None,
                    };
                    Some(PacerAgent { state, in_state_ms: now.saturating_sub(a.since_ms), pause_after_call: false })
                })
                .collect();
            let floor = FloorView { ringing_ages_ms: &ringing, waiting_customers: waiting, agents: &agents };
            let d = st.pacer.decide(now, &floor);
            st.last_decision = Some(d);
            let free = free_channels(&self.calls, &self.tenants, st.tenant, *campaign, st.reserved, first);
            let k = i64::from(d.launch).min(free).min(i64::from(MAX_PREPARE));
            if k > 0 && st.jobs.iter().any(|j| !st.exhausted.contains(&j.job_id)) {
                wanted.push((st.tenant, *campaign, k as u32));
            }
        }
        let tenants: Vec<u64> =
            self.tenants.iter().filter(|(_, t)| !t.previews.is_empty()).map(|(id, _)| *id).collect();
        for tenant in tenants {
            self.start_preview(tenant);
        }
        for (tenant, campaign, k) in wanted {
            let t = self.tenants.entry(tenant).or_default();
            if t.preparing {
                continue;
            }
            t.preparing = true;
            let numbers: HashSet<String> = t.numbers.clone();
            let Some(st) = self.campaigns.get_mut(&campaign) else { continue };
            st.reserved += k;
            let jobs: Vec<RunningJob> = st.jobs.iter().filter(|j| !st.exhausted.contains(&j.job_id)).cloned().collect();
            let start = st.next_job;
            st.next_job = st.next_job.wrapping_add(1);
            let predictive = st.mode == "predictive";
            let (db, tx, instance) = (self.db.clone(), self.input_tx.clone(), self.cfg.instance.clone());
            let rec_dir = self.cfg.recordings_dir.clone();
            tokio::spawn(async move {
                let r = prepare(&db, &instance, tenant, campaign, jobs, start, k, numbers, predictive, rec_dir).await;
                let msg = r.map_err(|e| (tenant, campaign, k, e.to_string(), None));
                let _ = tx.send(Input::Prepared(msg)).await;
            });
        }
    }

    async fn on_prepared(&mut self, r: Result<Prepared, PrepareError>) {
        let p = match r {
            Ok(p) => p,
            Err((tenant, campaign, asked, e, preview)) => {
                tracing::warn!(tenant, campaign, error = %e, "could not prepare dials");
                if let Some(t) = self.tenants.get_mut(&tenant) {
                    t.preparing = false;
                }
                if let Some(st) = self.campaigns.get_mut(&campaign) {
                    st.reserved = st.reserved.saturating_sub(asked);
                }
                if let Some((agent, lead)) = preview {
                    self.preview_not_dialled(tenant, agent, lead, "error").await;
                }
                self.start_preview(tenant);
                return;
            }
        };
        if let Some(t) = self.tenants.get_mut(&p.tenant) {
            t.preparing = false;
        }
        self.stats.restricted += p.restricted as u64;
        if self.stopping {
            let calls: Vec<(i64, Option<i64>)> =
                p.dials.iter().map(|(call, _, lead, _)| (*call, lead.recall_id)).collect();
            self.stats.not_dialled_at_stop += calls.len() as u64;
            metrics::counter!("kakeru_dialer_calls_total", "result" => "stopped").increment(calls.len() as u64);
            if !calls.is_empty() {
                let _ = self.write_tx.send(Write::NotDialled { tenant: p.tenant, calls }).await;
            }
            if let Some((agent, lead, why)) = p.preview {
                self.preview_not_dialled(p.tenant, agent, lead, why.unwrap_or("stopped")).await;
            }
            return;
        }
        if let Some((agent, lead, Some(why))) = p.preview {
            if let Some(st) = self.campaigns.get_mut(&p.campaign) {
                st.reserved = st.reserved.saturating_sub(p.asked);
                st.remaining = p.remaining;
            }
            self.preview_not_dialled(p.tenant, agent, lead, why).await;
            self.start_preview(p.tenant);
            return;
        }
        let shard = shard_of(p.campaign, self.shards.len());
        let (ring_timeout, wait_limit, dtmf, waiting, predictive) = match self.campaigns.get_mut(&p.campaign) {
            Some(st) => {
                st.reserved = st.reserved.saturating_sub(p.asked);
                st.remaining = p.remaining;
                st.exhausted.extend(p.exhausted.iter().copied());
                let j = st.jobs.first();
                (
                    Duration::from_secs(j.map_or(180, |j| j.ring_timeout_s.max(1) as u64)),
                    Duration::from_secs(j.map_or(20, |j| j.agent_wait_timeout_s.max(1) as u64)),
                    j.is_some_and(|j| j.dtmf_result_entry),
                    st.waiting_audio.clone(),
                    st.mode == "predictive",
                )
            }
            None => (Duration::from_secs(180), Duration::from_secs(20), false, None, false),
        };
        // Predictive dialling keeps the 2-second rule: a customer no agent takes in 2 s hears the
        // message (the campaign's wait limit applies to progressive and preview).
        let wait_limit = if predictive {
            wait_limit.min(Duration::from_millis(crate::pacer::SERVICE_LEVEL_WAIT_MS))
        } else {
            wait_limit
        };
        for (call_id, job, lead, caller_id) in p.dials {
            let call = call_id as u64;
            self.tenants.entry(p.tenant).or_default().numbers.insert(lead.tel.clone());
            self.calls.insert(
                call,
                LiveCall {
                    tenant: p.tenant,
                    campaign: p.campaign,
                    job,
                    lead: lead.lead_id,
                    tel: lead.tel.clone(),
                    caller_id: caller_id.clone(),
                    shard,
                    launched: Instant::now(),
                    answered: None,
                    bridged: None,
                },
            );
            if let Some(st) = self.campaigns.get_mut(&p.campaign) {
                st.pacer.on_event(now_ms(), PacerEvent::Launched);
            }
            self.stats.launched += 1;
            metrics::counter!("kakeru_dialer_calls_launched_total").increment(1);
            if let Some((agent, _, None)) = p.preview {
                // Control attaches the call to its agent before any event of the call can arrive.
                self.stats.preview_placed += 1;
                let ev = ShardEvent::PreviewPlaced {
                    call_id: control::agent::CallId(call),
                    agent_id: control::agent::AgentId(agent),
                    lead_id: LeadId(lead.lead_id as u64),
                };
                self.publish(p.tenant, &ev).await;
            }
            let recording = p.recording_dir.as_ref().map(|d| d.join(format!("{call}.wav")));
            let cmd = DialCustomer {
                call,
                tenant_id: p.tenant,
                tel: lead.tel,
                caller_id,
                ring_timeout,
                wait_limit,
                waiting_audio: waiting.clone(),
                abandon_message: self.cfg.clips.abandon.clone(),
                recording,
                dtmf_result_entry: dtmf,
            };
            self.send_to_shard(shard, Command::DialCustomer(Box::new(cmd)));
        }
        let exhausted: Vec<i64> = p.exhausted;
        for job in exhausted {
            self.maybe_finish_job(p.campaign, job).await;
        }
        self.start_preview(p.tenant);
    }

    async fn preview_not_dialled(&mut self, tenant: u64, agent: u64, lead: i64, result: &str) {
        self.publish(tenant, &not_dialled(agent, lead, result)).await;
    }

    async fn publish_status(&mut self) {
        let mut out = Vec::new();
        for (campaign, st) in &self.campaigns {
            if st.jobs.is_empty() {
                continue;
            }
            let in_flight =
                self.calls.values().filter(|c| c.campaign == *campaign && c.bridged.is_none()).count() as u32;
            let d = st.last_decision;
            metrics::gauge!("kakeru_pacer_dial_level", "campaign_id" => campaign.to_string())
                .set(d.map_or(0.0, |d| d.dial_level));
            metrics::gauge!("kakeru_pacer_predicted_abandon_ratio", "campaign_id" => campaign.to_string())
                .set(d.map_or(0.0, |d| d.predicted_abandon));
            out.push((
                st.tenant,
                ShardEvent::DialerStatus {
                    campaign_id: CampaignId(*campaign),
                    dials_in_flight: in_flight,
                    remaining_leads: st.remaining,
                    dial_level_milli: d.map_or(0, |d| (d.dial_level * 1000.0).round().clamp(0.0, 1e9) as u32),
                    predicted_abandon_ppm: d.map_or(0, |d| (d.predicted_abandon * 1e6).round().clamp(0.0, 1e6) as u32),
                },
            ));
        }
        metrics::gauge!("kakeru_dialer_calls_in_flight").set(self.calls.len() as f64);
        for (tenant, ev) in out {
            self.publish(tenant, &ev).await;
        }
    }

    /// Shutdown: no more dials; ringing calls CANCELled (停止), answered ones hung up; waits for
    /// their ends (a few seconds at most), then hangs up the agents' legs.
    ///
    /// Leads being prepared when shutdown began already have call records (`pending`): they are
    /// not dialled, and get `stopped` (停止) like a ringing call the stop cancelled.
    async fn drain_calls(&mut self, shard_rx: &mut mpsc::Receiver<ShardOutput>, input_rx: &mut mpsc::Receiver<Input>) {
        self.stopping = true;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.tenants.values().any(|t| t.preparing) && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), input_rx.recv()).await {
                // Agent events not taken now stay pending on the bus for the next run.
                Ok(Some(Input::Prepared(r))) => self.on_prepared(r).await,
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => break,
            }
        }
        let calls: Vec<(u64, usize, bool)> =
            self.calls.iter().map(|(id, c)| (*id, c.shard, c.answered.is_some())).collect();
        for (call, shard, answered) in calls {
            let cmd = if answered {
                Command::HangUpCustomer { call, by: Party::System }
            } else {
                Command::Cancel { call, reason: CancelReason::Stopped }
            };
            self.send_to_shard(shard, cmd);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.calls.is_empty() && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), shard_rx.recv()).await {
                Ok(Some(out)) => self.on_shard(out).await,
                Ok(None) => break,
                Err(_) => {}
            }
        }
        let legs: Vec<(u64, usize)> = self.agents.iter().filter_map(|(a, i)| i.leg_shard.map(|s| (*a, s))).collect();
        for (agent, shard) in legs {
            self.send_to_shard(shard, Command::HangUpAgent { agent });
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.agents.values().any(|a| a.leg_shard.is_some()) && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), shard_rx.recv()).await {
                Ok(Some(out)) => self.on_shard(out).await,
                Ok(None) => break,
                Err(_) => {}
            }
        }
        // Whatever did not end in time still gets a result.
        let left: Vec<u64> = self.calls.keys().copied().collect();
        for call in left {
            let end = CallEnd::unsent(calls::EndCause::Cancelled(CancelReason::Stopped), "dialer stopped");
            self.on_call_ended(call, end).await;
        }
    }
}

/// Tells control the agent's preview call was not placed, and why (logged once, here).
fn not_dialled(agent: u64, lead: i64, result: &str) -> ShardEvent {
    tracing::info!(agent, lead, result, "preview dial not placed");
    ShardEvent::PreviewNotDialled {
        agent_id: control::agent::AgentId(agent),
        lead_id: LeadId(lead as u64),
        result: result.to_string(),
    }
}

/// Channels a campaign may still open now: its 最大チャンネル less its live calls and the dials
/// being prepared (`reserved`), and its caller ID's limit less that number's live calls.
fn free_channels(
    calls: &HashMap<u64, LiveCall>,
    tenants: &HashMap<u64, TenantState>,
    tenant: u64,
    campaign: u64,
    reserved: u32,
    job: &RunningJob,
) -> i64 {
    let in_use = calls.values().filter(|c| c.campaign == campaign).count() as i64 + i64::from(reserved);
    let mut free = (job.max_channels - in_use).max(0);
    if let Some(cid) = &job.caller_id {
        if let Some(limit) = tenants.get(&tenant).and_then(|t| t.caller_limits.get(cid)) {
            let used = calls.values().filter(|c| c.tenant == tenant && c.caller_id.as_ref() == Some(cid)).count();
            free = free.min((limit - used as i64).max(0));
        }
    }
    free
}

fn pacer_for(job: &RunningJob) -> Box<dyn Pacer + Send + Sync> {
    match job.mode.as_str() {
        "predictive" => {
            let tz = store::tenancy::parse_tz(&job.time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
            let offset = {
                use chrono::Offset;
                use chrono::TimeZone;
                tz.offset_from_utc_datetime(&chrono::Utc::now().naive_utc()).fix().local_minus_utc()
            };
            Box::new(PredictivePacer::new(PredictiveConfig {
                abandon_target: (job.abandon_target_pct / 100.0).clamp(0.001, 0.5),
                ring_timeout_ms: (job.ring_timeout_s.max(1) as u64) * 1000,
                local_offset_ms: i64::from(offset) * 1000,
                ..PredictiveConfig::default()
            }))
        }
        "progressive" if (job.dial_ratio - 1.0).abs() > 1e-9 => {
            Box::new(FixedRatioPacer { ratio: job.dial_ratio.max(0.0) })
        }
        "progressive" => Box::new(ProgressivePacer),
        // preview and the agent-driven list modes: the agent starts each dial.
        _ => Box::new(PreviewPacer),
    }
}

/// Whether `now` is inside the campaign's business hours in the tenant's zone.
pub fn in_business_hours(job: &RunningJob, now_ms: u64) -> bool {
    let tz = store::tenancy::parse_tz(&job.time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
    let local = chrono::DateTime::from_timestamp_millis(i(now_ms)).unwrap_or_default().with_timezone(&tz);
    let minute = local.hour() * 60 + local.minute();
    let parse = |s: &str| -> Option<u32> {
        let (h, m) = s.split_once(':')?;
        Some(h.parse::<u32>().ok()? * 60 + m.parse::<u32>().ok()?)
    };
    match (parse(&job.business_start), parse(&job.business_end)) {
        (Some(s), Some(e)) => s <= minute && minute < e,
        _ => false,
    }
}

/// Picks up to `k` leads over the campaign's jobs (round robin from `start`), checks them against
/// the do-not-call list and writes their call records, in one step per tenant at a time.
#[allow(clippy::too_many_arguments)]
async fn prepare(
    db: &Db,
    instance: &str,
    tenant: u64,
    campaign: u64,
    jobs: Vec<RunningJob>,
    start: usize,
    k: u32,
    mut numbers: HashSet<String>,
    predictive: bool,
    recordings_dir: Option<PathBuf>,
) -> Result<Prepared, store::StoreError> {
    let now = store::now_ms();
    let mut picked: Vec<(RunningJob, store::leads::Candidate)> = Vec::new();
    let mut exhausted = Vec::new();
    let mut remaining = 0u64;
    let n = jobs.len().max(1);
    let mut want = k as i64;
    for off in 0..jobs.len() {
        let job = &jobs[(start + off) % n];
        let mut f = job.filter.clone();
        f.not_attempted_since = job.started_at;
        if predictive {
            f.not_abandoned_since = Some(now - NO_REDIAL_AFTER_ABANDON_MS);
        }
        if want > 0 {
            // Ask for more than needed: some numbers may be in flight already.
            let ask = want + numbers.len().min(1000) as i64;
            let cands = store::leads::next_dialable(db, i(tenant), job.job_id, &f, now, ask).await?;
            let got = cands.len() as i64;
            for c in cands {
                if want == 0 {
                    break;
                }
                if numbers.insert(c.tel.clone()) {
                    picked.push((job.clone(), c));
                    want -= 1;
                }
            }
            if got < ask && want > 0 {
                exhausted.push(job.job_id);
            }
        }
        remaining += store::leads::count_dialable(db, i(tenant), job.job_id, &f).await?.max(0) as u64;
    }
    let tels: Vec<String> = picked.iter().map(|(_, c)| c.tel.clone()).collect();
    let dnc = dialing::dnc_hits(db, i(tenant), &tels).await?;
    let mut calls = Vec::new();
    let mut not_dialled = Vec::new();
    for (job, c) in picked {
        if dnc.contains(&c.tel) {
            not_dialled.push(NotDialled {
                campaign_id: job.campaign_id,
                job_id: job.job_id,
                lead: c,
                caller_id: job.caller_id.clone(),
                result: "restricted",
            });
        } else {
            calls.push(NewCall {
                campaign_id: job.campaign_id,
                job_id: job.job_id,
                lead: c,
                caller_id: job.caller_id.clone(),
            });
        }
    }
    let ids = dialing::begin_calls(db, i(tenant), instance, now, &calls, &not_dialled).await?;
    let recording_dir = match recordings_dir {
        Some(d) if !calls.is_empty() => recording_dir(d, tenant, jobs.first(), now).await,
        _ => None,
    };
    let dials = ids.into_iter().zip(calls).map(|(id, c)| (id, c.job_id, c.lead, c.caller_id)).collect::<Vec<_>>();
    remaining = remaining.saturating_sub(dials.len() as u64);
    Ok(Prepared {
        tenant,
        campaign,
        asked: k,
        restricted: not_dialled.len(),
        dials,
        exhausted,
        remaining,
        recording_dir,
        preview: None,
    })
}

/// Today's recordings directory of a tenant (created), in the store's layout
/// `<dir>/<tenant>/<YYYY-MM-DD>/<call>.wav`; `None` (calls not recorded) when it cannot be made.
async fn recording_dir(d: PathBuf, tenant: u64, job: Option<&RunningJob>, now: i64) -> Option<PathBuf> {
    let tz = job.and_then(|j| store::tenancy::parse_tz(&j.time_zone)).unwrap_or(chrono_tz::Asia::Tokyo);
    let file = store::recordings::recording_path(&d, i(tenant), tz, now, 0);
    let dir = file.parent().map(std::path::Path::to_path_buf).unwrap_or(d);
    match tokio::fs::create_dir_all(&dir).await {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "recordings directory unusable; calls not recorded");
            None
        }
    }
}

/// The prepare step of one preview dial: the lead still dialable by the job and held by the agent,
/// its number not in a call, not on the do-not-call list, no channel limit reached; then its call
/// record (or the record of why not) in one transaction, as for paced dials.
async fn prepare_preview(
    db: &Db,
    instance: &str,
    tenant: u64,
    ask: &PreviewAsk,
    jobs: &[RunningJob],
    numbers: &HashSet<String>,
    recordings_dir: Option<PathBuf>,
) -> Result<Prepared, store::StoreError> {
    let now = store::now_ms();
    let job = &ask.job;
    let mut remaining = 0u64;
    for j in jobs {
        let mut f = j.filter.clone();
        f.not_attempted_since = j.started_at;
        remaining += store::leads::count_dialable(db, i(tenant), j.job_id, &f).await?.max(0) as u64;
    }
    let mut p = Prepared {
        tenant,
        campaign: ask.campaign,
        asked: 1,
        dials: Vec::new(),
        restricted: 0,
        exhausted: Vec::new(),
        remaining,
        recording_dir: None,
        preview: Some((ask.agent, ask.lead, None)),
    };
    let why = |p: &mut Prepared, r: &'static str| p.preview = Some((ask.agent, ask.lead, Some(r)));
    let cand =
        store::preview::candidate(db, i(tenant), job.job_id, i(ask.agent), ask.lead, job.started_at, now).await?;
    let Some(c) = cand else {
        why(&mut p, "lead_not_dialable");
        return Ok(p);
    };
    if numbers.contains(&c.tel) {
        why(&mut p, "number_in_call");
        return Ok(p);
    }
    let restricted = !dialing::dnc_hits(db, i(tenant), std::slice::from_ref(&c.tel)).await?.is_empty();
    let result = if restricted {
        Some("restricted")
    } else if ask.limit_reached {
        Some("channel_limit")
    } else {
        None
    };
    if let Some(result) = result {
        let n = NotDialled {
            campaign_id: job.campaign_id,
            job_id: job.job_id,
            lead: c,
            caller_id: job.caller_id.clone(),
            result,
        };
        dialing::begin_calls(db, i(tenant), instance, now, &[], &[n]).await?;
        p.restricted = usize::from(restricted);
        why(&mut p, result);
        return Ok(p);
    }
    let call = NewCall { campaign_id: job.campaign_id, job_id: job.job_id, lead: c, caller_id: job.caller_id.clone() };
    let ids = dialing::begin_calls(db, i(tenant), instance, now, std::slice::from_ref(&call), &[]).await?;
    if let Some(d) = recordings_dir {
        p.recording_dir = recording_dir(d, tenant, Some(job), now).await;
    }
    p.dials = ids.into_iter().map(|id| (id, call.job_id, call.lead.clone(), call.caller_id.clone())).collect();
    p.remaining = p.remaining.saturating_sub(1);
    Ok(p)
}

/// Publishes with retries (Redis restarting, connection dropped): an event is never given up on
/// while the engine runs; retries back off to one second.
async fn publish_retrying<B: Bus>(bus: &B, stream: &str, env: &Envelope) {
    let mut backoff = 10u64;
    loop {
        match bus.publish(stream, env).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, stream, "publish failed; retrying");
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(1000);
            }
        }
    }
}

async fn read_agent_events<B: Bus>(
    bus: B,
    tenant: u64,
    stream: String,
    group: String,
    consumer: String,
    tx: mpsc::Sender<Input>,
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
                if tx.send(Input::AgentEvents { tenant, deliveries }).await.is_err() {
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

/// The writer: SQL writes in order, retried on failure (nothing is lost while the process lives).
async fn writer<B: Bus + Clone + 'static>(db: Db, bus: B, mut rx: mpsc::Receiver<Write>) {
    let mut queue: VecDeque<Write> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(w) => queue.push_back(w),
                None => return,
            }
        }
        while let Ok(w) = rx.try_recv() {
            queue.push_back(w);
        }
        // Group consecutive results of one tenant into one transaction.
        let Some(w) = queue.pop_front() else { continue };
        let w = match w {
            Write::Results { tenant, mut results } => {
                while let Some(Write::Results { tenant: t, .. }) = queue.front() {
                    if *t != tenant || results.len() >= 500 {
                        break;
                    }
                    if let Some(Write::Results { results: more, .. }) = queue.pop_front() {
                        results.extend(more);
                    }
                }
                Write::Results { tenant, results }
            }
            other => other,
        };
        let mut backoff = 50u64;
        loop {
            match apply_write(&db, &bus, &w).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "dialer write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                    backoff = (backoff * 2).min(2000);
                }
            }
        }
    }
}

async fn apply_write<B: Bus>(db: &Db, bus: &B, w: &Write) -> Result<(), EngineError> {
    let now = store::now_ms();
    match w {
        Write::Results { tenant, results } => dialing::end_calls(db, i(*tenant), results).await?,
        Write::Recording(r) => {
            store::recordings::closed(db, r).await?;
        }
        Write::Registration(r) => dialing::save_registration(db, r, now).await?,
        Write::EndJob { tenant, job, status } => dialing::end_job(db, i(*tenant), *job, status, now).await?,
        Write::NotDialled { tenant, calls } => dialing::not_dialled_at_stop(db, i(*tenant), calls, now).await?,
        Write::Dtmf { tenant, agent, call, entry } => {
            // The wrap-up record is created by the control service when the call's end reaches it;
            // it may lag a little behind the agent's keys.
            let mut record = None;
            for _ in 0..50 {
                record = store::records::unsaved_record_of_call(db, i(*tenant), i(*call)).await?;
                if record.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let Some((record_id, campaign_id)) = record else {
                tracing::warn!(call, "DTMF result keyed for a call with no unsaved record");
                return Ok(());
            };
            let save = match entry {
                DtmfEntry::Result { number } => {
                    let label = match campaign_id {
                        Some(c) => store::records::result_label(db, i(*tenant), c, i64::from(*number)).await?,
                        None => None,
                    };
                    let Some(label) = label else {
                        tracing::info!(call, number, "DTMF result number is not one of the campaign's");
                        return Ok(());
                    };
                    store::records::WrapupSave {
                        interlocutor: None,
                        result: label,
                        other_tel: None,
                        next_action: "continue".into(),
                        recall_at: None,
                        recall_to_agent: false,
                        memo: String::new(),
                        state_after: "continue".into(),
                    }
                }
                DtmfEntry::Recall { after_ms } => store::records::WrapupSave {
                    interlocutor: None,
                    result: "no_entry".into(),
                    other_tel: None,
                    next_action: "recall".into(),
                    recall_at: Some(now + i(*after_ms)),
                    recall_to_agent: false,
                    memo: String::new(),
                    state_after: "continue".into(),
                },
            };
            store::records::save_wrapup(db, i(*tenant), record_id, &save, i(*agent), now).await?;
            let cmd = ApiCommand::SaveWrapUp {
                agent_id: control::agent::AgentId(*agent),
                call_id: control::agent::CallId(*call),
                after: control::agent::AfterWrapUp::Continue,
            };
            let env = Envelope::new(*tenant, now_ms(), &cmd)
                .map_err(|e| EngineError::Bus(BusError::Protocol(e.to_string())))?;
            publish_retrying(bus, &streams::control_commands(*tenant), &env).await;
        }
    }
    Ok(())
}
