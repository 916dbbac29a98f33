//! The dialer's policy for one tenant, as a sans-IO state machine ([`Engine`]).
//!
//! It never reads a clock, touches a socket or a database, spawns a task or takes a lock: time
//! arrives as a [`Now`], everything it learns arrives as an [`Input`], and everything it wants done
//! leaves as one closed [`Output`] enum that a driver ([`super::driver`]) carries out: commands to a
//! shard's call control, events to publish for the control service, writes for the writer, and lead
//! selections ("prepares") whose answer comes back as [`Input::Prepared`].
//!
//! Run loop of a driver (the str0m shape):
//! ```text
//! input:  handle_input(now, input) | handle_timeout(now) once the last Output::Timeout passed
//! drain:  poll_output() until it answers Output::Timeout(deadline)
//! ```
//!
//! [`super::dialer::Dialer`] demultiplexes the inputs of every tenant of a host onto their engines,
//! as quinn-proto's endpoint does onto its connections.
//!
//! # Rules it keeps
//! - Business hours (予約 From/To in the tenant's zone): launches only inside them; a job started
//!   early waits; at the end the job stops (written `stopped`), and calls in progress finish.
//! - A batch's period (実施期間): only leads of batches whose period holds the tenant's date.
//! - Closed days (休業日): no launch on Japan's national holidays (unless the tenant turns them
//!   off) nor on the tenant's own closed dates, as outside business hours.
//! - Channel limits: launches never exceed the campaign's 最大チャンネル nor a caller ID's limit (the
//!   pacer's answer is capped before any lead is touched, counting the dials being prepared).
//! - The same number is never dialled twice at once within the tenant: one prepare at a time per
//!   tenant, and the numbers in flight go with each prepare.
//! - A job's run dials each lead at most once (due recalls aside); when nothing is left and its
//!   calls have ended, it is `finished`.
//! - Preview (プレビュー): control's `dial_preview` places one lead for one agent through the same
//!   prepare step and checks (do-not-call, number in flight, channel limits, business hours, the job
//!   running, once per run), served before paced dials.
//! - On leases (`CoreConfig::on_leases`, several hosts): only the campaigns [`Input::Leases`] names
//!   are paced, dialled, previewed and get their agents' legs; each prepare carries its campaign's
//!   fencing token; a campaign lost ends its calls here at once, one gained sets its agents' legs up.
//! - Stop: no more dials; ringing calls CANCELled (停止), answered ones hung up; then the agents'
//!   legs; whatever has not ended after the grace periods still gets a result. Leads prepared when
//!   the stop began are not dialled and get `stopped`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Timelike;
use media::Clip;
use store::dialing::{CallResult, RunningJob};
use store::leads::Candidate;
use wire::agent::{AgentId, AgentState as CtlState, CallId, Command as CtlCommand, Event as CtlEvent};
use wire::{CampaignId, LeadId, Party as MsgParty, ShardEvent, SipOutcome};

use super::results;
use crate::calls::{self, CallEnd, CallEvent, CancelReason, Command, DialAgent, DialCustomer, DtmfEntry, Now, Party};
use crate::pacer::{
    AgentState as PacerAgentState, AgentView as PacerAgent, Decision, FixedRatioPacer, FloorView, Pacer, PacerEvent,
    PredictiveConfig, PredictivePacer, PreviewPacer, ProgressivePacer,
};

/// How long a browser phone's offer waits for its agent's leg (the page offers, then starts the job).
pub const PHONE_OFFER_TTL_MS: u64 = 60_000;
/// How long an agent's leg with neither a registered phone nor an offer waits for the page's offer
/// before the agent is unreachable: the offer (on the dialer notices) and the job's start (through
/// control) travel apart, and either may arrive first.
pub const LEG_WAITS_FOR_OFFER_MS: u64 = 5_000;
/// How often at most an engine whose agents' legs wait for a phone reads the stored registrations.
pub const REGISTRATIONS_READ_EVERY_MS: u64 = 1_000;
/// Browser phone offers (and legs waiting for one) one engine keeps at most.
pub const MAX_PHONE_OFFERS: usize = 10_000;
/// The 72-hour rule for predictive campaigns.
pub const NO_REDIAL_AFTER_ABANDON_MS: i64 = 72 * 3_600_000;
/// Most dials one prepare step asks for.
pub const MAX_PREPARE: u32 = 500;
/// Most preview dials waiting for the tenant's prepare step; more are refused (`busy`).
pub const MAX_PREVIEW_QUEUE: usize = 10_000;
/// How often a paced campaign looks for due recalls its ready agents own.
pub const OWNED_RECALLS_EVERY: Duration = Duration::from_secs(5);

/// Settings every tenant's engine shares.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Number of shards; a campaign lives on shard `campaign % shards`.
    pub shards: usize,
    /// How often the pacers are asked.
    pub tick: Duration,
    /// How often each campaign's dialer status is published.
    pub status_every: Duration,
    /// After a stop: how long calls get to end before they are given a result anyway.
    pub stop_grace: Duration,
    /// After a stop: how long agents' legs get to go down.
    pub leg_grace: Duration,
    /// Played to a customer no agent took, before release (the campaign's message).
    pub abandon_message: Option<Clip>,
    /// 呼中音声 when the campaign names none.
    pub waiting_audio: Option<Clip>,
    /// Whether calls are recorded (the prepare step then names a directory).
    pub recording: bool,
    /// The host places campaigns on leases: an engine holds no campaign until
    /// [`Input::Leases`] names it.
    pub on_leases: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            shards: 1,
            tick: Duration::from_millis(250),
            status_every: Duration::from_secs(1),
            stop_grace: Duration::from_secs(5),
            leg_grace: Duration::from_secs(2),
            abandon_message: None,
            waiting_audio: None,
            recording: false,
            on_leases: false,
        }
    }
}

/// A running call job as the driver loaded it, with what its campaign needs beside the SQL row.
#[derive(Clone, Debug)]
pub struct JobConfig {
    pub job: RunningJob,
    /// The campaign's 呼中音声, read from its file by the driver (`None`: the default).
    pub waiting_audio: Option<Clip>,
    /// The numbers of the campaign's results (結果), for DTMF result entry.
    pub result_numbers: Vec<i64>,
}

/// An agent as control last committed it, for an engine that starts.
#[derive(Clone, Copy, Debug)]
pub struct RecoveredAgent {
    pub agent: u64,
    pub campaign: Option<u64>,
    pub state: CtlState,
    pub since_ms: u64,
    pub call: Option<u64>,
}

/// A phone's registered contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub uri: String,
    pub source: std::net::SocketAddr,
    pub expires_at_ms: u64,
}

/// What an engine is told.
#[derive(Debug)]
pub enum Input {
    /// An event of a shard's call control.
    Shard { shard: usize, event: CallEvent },
    /// An agent event control published (each once: the driver drops redeliveries).
    Agent(CtlEvent),
    /// The tenant's running jobs (replaces the set).
    Jobs(Vec<JobConfig>),
    /// The channel limit (最大チャンネル) of each of the tenant's caller ID numbers.
    CallerLimits(HashMap<String, i64>),
    /// The tenant's caller IDs: id → number (an agent's manual dial names its 発番号 by id).
    CallerIds(HashMap<u64, String>),
    /// The tenant's phone accounts: username → phone id (registrations are written by phone).
    Phones(HashMap<String, i64>),
    /// What an earlier run left: control's agents, the stored registrations, and the calls still
    /// pending (orphans: the driver has given them `error`; control is told they ended).
    Recovered { agents: Vec<RecoveredAgent>, contacts: Vec<(u64, Contact)>, orphans: Vec<u64> },
    /// The answer to an [`Output::Prepare`].
    Prepared(Prepared),
    /// A prepare that failed (nothing was written).
    PrepareFailed { id: u64, error: String },
    /// The campaigns this host holds on leases, each with its fencing token (replaces the set).
    /// Once given, the engine paces, dials and sets up agents' legs only for these; a campaign
    /// lost ends its calls here (their results are the new holder's) and a campaign gained gets
    /// its agents' legs set up from this host. Never given: every campaign is this host's.
    Leases(HashMap<u64, u64>),
    /// ブラウザフォン: the SDP offer of an agent's page (the API's [`PhoneOffer`]): kept for the
    /// agent's next leg, or handed to the shard of the leg the agent has (an ICE restart).
    ///
    /// [`PhoneOffer`]: wire::PhoneOffer
    PhoneOffer { agent: u64, sdp: String },
    /// A supervisor asks to join an agent's bridged call (the API wrote monitoring record
    /// `monitor` and published the notice), or to change mode on the call they are on.
    /// `offer`: the supervisor's browser phone's SDP offer (else their registered SIP phone).
    Supervise { monitor: i64, supervisor: u64, call: u64, mode: media::SupervisorMode, offer: Option<String> },
    /// The supervisor stops.
    EndSupervision { supervisor: u64 },
    /// Begin the stop (see the module docs).
    Stop,
}

/// What an engine wants done. [`Output::Timeout`] ends a drain.
#[derive(Debug)]
pub enum Output {
    /// A command for a shard's call control.
    Shard { shard: usize, command: Command },
    /// An event for the control service, on the tenant's `shard:events`.
    Publish { tenant: u64, event: ShardEvent },
    /// A write for the writer (in order per tenant).
    Write { tenant: u64, write: Write },
    /// Select leads and write their call records; answer with [`Input::Prepared`] or
    /// [`Input::PrepareFailed`] carrying the same `id`.
    Prepare(Box<PrepareRequest>),
    /// A notice for an agent's page, on the tenant's `agent:events` (the browser phone's answer).
    Notice { tenant: u64, notice: wire::AgentNotice },
    /// Read the tenant's stored registrations again and answer with [`Input::Recovered`] (its
    /// contacts only): an agent's leg waits for a phone this host has not seen register (phones
    /// register at any host; the registrations are in the database).
    ReadRegistrations { tenant: u64 },
    /// Nothing more now: call `handle_timeout` at this instant (or on the next input).
    Timeout(Instant),
}

/// A write the writer carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Calls' ends: their system results.
    Results(Vec<CallResult>),
    Recording(store::recordings::NewRecording),
    Registration(store::dialing::Registration),
    /// A job's run is over (`finished`).
    EndJob {
        job: i64,
        status: &'static str,
    },
    /// Call records of leads prepared when the stop began, with the recall each was to answer: not
    /// dialled (`stopped`, the attempt taken back).
    NotDialled(Vec<(i64, Option<i64>)>),
    /// A monitoring record's supervisor leg joined (the phone answered; the mode took effect).
    MonitorStarted {
        monitor: i64,
        at_ms: i64,
    },
    /// A monitoring record ended, and why (`stopped`, `mode_changed`, `call_ended`,
    /// `phone_hung_up`, `unreachable`, `not_bridged`, `no_phone`, `full`).
    MonitorEnded {
        monitor: i64,
        at_ms: i64,
        reason: &'static str,
    },
    /// 電話会議: the open conference of call `call` began (its third party answered).
    ConferenceStarted {
        call: i64,
        at_ms: i64,
    },
    /// 電話会議: the open conference of call `call` ended, and why ([`crate::calls::ConferenceEnd`]).
    ConferenceEnded {
        call: i64,
        at_ms: i64,
        reason: &'static str,
    },
}

/// A lead selection the driver runs against the database.
#[derive(Debug, Clone)]
pub struct PrepareRequest {
    pub id: u64,
    pub tenant: u64,
    pub campaign: u64,
    /// The fencing token of the campaign's lease (on leases): the prepare writes nothing unless
    /// the host still holds it.
    pub token: Option<u64>,
    /// Numbers in a call or being dialled in the tenant: not picked again.
    pub numbers: HashSet<String>,
    pub kind: PrepareKind,
}

#[derive(Debug, Clone)]
pub enum PrepareKind {
    /// Up to `k` leads over `jobs`, round robin from `start`.
    Paced { jobs: Vec<RunningJob>, start: usize, k: u32, predictive: bool },
    /// One agent's preview dial of one lead; `all_jobs` are counted for the remaining leads.
    Preview { ask: Box<PreviewAsk>, all_jobs: Vec<RunningJob> },
    /// Due recalls owned by these ready agents of a paced campaign, each held for its agent (the
    /// agent then dials it as a preview dial, through control). Writes no call record.
    OwnedRecalls { job_ids: Vec<i64>, agents: Vec<u64> },
}

/// An agent's preview dial, accepted by the engine (its channel counted in `reserved`).
#[derive(Debug, Clone)]
pub struct PreviewAsk {
    pub agent: u64,
    pub campaign: u64,
    pub job: RunningJob,
    pub lead: i64,
    /// A channel limit was reached when it was asked: recorded `channel_limit`, not dialled.
    pub limit_reached: bool,
}

/// One lead picked and its call record written.
#[derive(Debug, Clone)]
pub struct PreparedDial {
    pub call: u64,
    pub job: i64,
    pub lead: Candidate,
    pub caller_id: Option<String>,
}

/// The answer of a prepare.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub id: u64,
    pub dials: Vec<PreparedDial>,
    /// Leads given `restricted` (do-not-call) without a dial.
    pub restricted: usize,
    /// Jobs with no dialable lead left in this run.
    pub exhausted: Vec<i64>,
    /// Dialable leads left over the campaign's jobs; `None` when this prepare did not count them
    /// (a look for agents' owned recalls): the campaign keeps its last count.
    pub remaining: Option<u64>,
    /// Where the calls' recordings go (`None`: not recorded).
    pub recording_dir: Option<PathBuf>,
    /// A preview dial that was not placed, and why (`None` when placed, or not a preview).
    pub not_placed: Option<&'static str>,
    /// Agent-owned recalls now held for their agents: (agent, job, lead).
    pub owned_recalls: Vec<(u64, i64, i64)>,
}

/// Counters of an engine.
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
    pub prepare_failures: u64,
}

impl std::ops::AddAssign for EngineStats {
    fn add_assign(&mut self, o: EngineStats) {
        self.launched += o.launched;
        self.answered += o.answered;
        self.bridged += o.bridged;
        self.ended += o.ended;
        self.abandoned += o.abandoned;
        self.restricted += o.restricted;
        self.agent_legs_up += o.agent_legs_up;
        self.registrations += o.registrations;
        self.dtmf_entries += o.dtmf_entries;
        self.orphans_failed += o.orphans_failed;
        self.not_dialled_at_stop += o.not_dialled_at_stop;
        self.preview_asked += o.preview_asked;
        self.preview_placed += o.preview_placed;
        self.prepare_failures += o.prepare_failures;
    }
}

#[derive(Debug)]
struct LiveCall {
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

/// An outside leg (外線転送) the engine placed: what it counts against.
#[derive(Debug)]
struct OutsideLeg {
    campaign: u64,
    caller_id: Option<String>,
}

/// How long an outside leg of a transfer rings before the customer goes back to the agent.
pub const OUTSIDE_RING_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct AgentInfo {
    campaign: Option<u64>,
    state: CtlState,
    since_ms: u64,
    /// The call the agent holds or is offered.
    call: Option<u64>,
    leg_shard: Option<usize>,
    /// The agent asked for a break or to log off after this call (control's deferred request).
    pause_after_call: bool,
}

struct Campaign {
    jobs: Vec<RunningJob>,
    pacer: Box<dyn Pacer + Send + Sync>,
    mode: String,
    next_job: usize,
    /// Dials being prepared (counted against the channel limits).
    reserved: u32,
    /// Jobs whose run has no dialable lead left.
    exhausted: HashSet<i64>,
    last_decision: Option<Decision>,
    remaining: u64,
    waiting_audio: Option<Clip>,
    result_numbers: HashSet<i64>,
    /// When to look for due recalls owned by the campaign's ready agents next.
    next_owned_recalls: Option<Instant>,
}

impl Campaign {
    fn first(&self) -> Option<&RunningJob> {
        self.jobs.first()
    }
}

/// The prepare in flight (one per tenant).
#[derive(Debug)]
struct InFlight {
    id: u64,
    campaign: u64,
    asked: u32,
    /// The caller ID its dials were counted against ([`Engine::reserve`]).
    caller_id: Option<String>,
    /// The preview dial it serves.
    preview: Option<(u64, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Stopping: calls are being ended (since).
    CallsEnding(Instant),
    /// Stopping: the agents' legs are being hung up (since).
    LegsDown(Instant),
    Stopped,
}

/// The dialer's policy for one tenant. See the module docs.
pub struct Engine {
    tenant: u64,
    cfg: Arc<CoreConfig>,
    calls: HashMap<u64, LiveCall>,
    /// 外線転送: the outside legs placed for calls (by the customer call), each a channel of the
    /// call's campaign and caller ID until it fails or the call ends.
    outside: HashMap<u64, OutsideLeg>,
    agents: HashMap<u64, AgentInfo>,
    contacts: HashMap<u64, Contact>,
    /// Browser phones' offers waiting for their agent's next leg, with when they came.
    phone_offers: HashMap<u64, (u64, String)>,
    /// Agents' legs asked for with neither a registered phone nor an offer: until when they wait
    /// for the page's offer ([`LEG_WAITS_FOR_OFFER_MS`]).
    legs_awaiting_offer: HashMap<u64, u64>,
    /// When the stored registrations were last asked for ([`Output::ReadRegistrations`]), Unix ms.
    registrations_asked_ms: u64,
    phones: HashMap<String, i64>,
    campaigns: HashMap<u64, Campaign>,
    caller_limits: HashMap<String, i64>,
    caller_ids: HashMap<u64, String>,
    /// Dials being prepared, by the caller ID they go out with (a preview dial's may be the one the
    /// agent chose, not its campaign's): counted against that number's limit.
    reserved_by_cid: HashMap<String, u32>,
    numbers: HashSet<String>,
    previews: VecDeque<PreviewAsk>,
    preparing: Option<InFlight>,
    next_prepare_id: u64,
    /// The campaign whose paced prepare went last (the campaigns take turns).
    last_paced: u64,
    phase: Phase,
    /// On leases: the campaigns held and their tokens (`None`: all are this host's).
    held: Option<HashMap<u64, u64>>,
    /// The running jobs as last loaded, of held campaigns or not.
    all_jobs: Vec<JobConfig>,
    next_tick: Option<Instant>,
    next_status: Option<Instant>,
    out: VecDeque<Output>,
    stats: EngineStats,
    /// Supervisors on a call (or being connected to one), by their user id.
    supervising: HashMap<u64, Supervising>,
}

/// A supervisor's monitoring of one call: the record it writes to and where its leg is.
#[derive(Debug, Clone, Copy)]
struct Supervising {
    call: u64,
    monitor: i64,
    shard: usize,
    started: bool,
}

impl Engine {
    pub fn new(tenant: u64, cfg: Arc<CoreConfig>) -> Engine {
        let held = cfg.on_leases.then(HashMap::new);
        Engine {
            tenant,
            cfg,
            calls: HashMap::new(),
            outside: HashMap::new(),
            agents: HashMap::new(),
            contacts: HashMap::new(),
            phone_offers: HashMap::new(),
            legs_awaiting_offer: HashMap::new(),
            registrations_asked_ms: 0,
            phones: HashMap::new(),
            campaigns: HashMap::new(),
            caller_limits: HashMap::new(),
            caller_ids: HashMap::new(),
            reserved_by_cid: HashMap::new(),
            numbers: HashSet::new(),
            previews: VecDeque::new(),
            preparing: None,
            next_prepare_id: 1,
            last_paced: 0,
            phase: Phase::Running,
            held,
            all_jobs: Vec::new(),
            next_tick: None,
            next_status: None,
            out: VecDeque::new(),
            stats: EngineStats::default(),
            supervising: HashMap::new(),
        }
    }

    pub fn tenant(&self) -> u64 {
        self.tenant
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Calls in progress (placed and not ended).
    pub fn calls_in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Campaigns with calls in progress.
    pub fn busy_campaigns(&self) -> impl Iterator<Item = u64> + '_ {
        self.calls.values().map(|c| c.campaign).collect::<HashSet<u64>>().into_iter()
    }

    /// Whether a prepare is in flight.
    pub fn is_preparing(&self) -> bool {
        self.preparing.is_some()
    }

    /// The stop is over: every call has its result and no prepare is in flight.
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped && self.preparing.is_none()
    }

    /// Campaigns this engine paces (with a running job or calls in flight).
    pub fn campaigns(&self) -> impl Iterator<Item = u64> + '_ {
        self.campaigns.keys().copied()
    }

    // ------------------------------------------------------------------ the run loop

    pub fn handle_input(&mut self, now: Now, input: Input) {
        self.arm(now);
        match input {
            Input::Shard { shard, event } => self.on_shard(now, shard, event),
            Input::Agent(ev) => self.on_agent_event(now, ev),
            Input::Jobs(jobs) => {
                self.all_jobs = jobs;
                self.apply_jobs(now);
            }
            Input::Leases(held) => self.on_leases(now, held),
            Input::CallerLimits(l) => self.caller_limits = l,
            Input::CallerIds(ids) => self.caller_ids = ids,
            Input::Phones(p) => self.phones = p,
            Input::PhoneOffer { agent, sdp } => self.on_phone_offer(now, agent, sdp),
            Input::Recovered { agents, contacts, orphans } => self.on_recovered(now, agents, contacts, orphans),
            Input::Prepared(p) => self.on_prepared(now, p),
            Input::PrepareFailed { id, error } => self.on_prepare_failed(now, id, &error),
            Input::Supervise { monitor, supervisor, call, mode, offer } => {
                self.on_supervise(now, monitor, supervisor, call, mode, offer)
            }
            Input::EndSupervision { supervisor } => {
                if let Some(s) = self.supervising.get(&supervisor) {
                    self.command(s.shard, Command::EndSupervision { supervisor });
                }
            }
            Input::Stop => self.begin_stop(now),
        }
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.arm(now);
        self.expire_leg_waits(now);
        let tick = self.next_tick.is_some_and(|t| t <= now.mono);
        if tick {
            self.next_tick = Some(now.mono + self.cfg.tick);
        }
        match self.phase {
            Phase::Running => {
                if tick {
                    self.plan(now);
                }
            }
            Phase::CallsEnding(since) => {
                if self.calls.is_empty() || now.mono.duration_since(since) >= self.cfg.stop_grace {
                    self.hang_up_legs(now);
                }
            }
            Phase::LegsDown(since) => {
                let legs_up = self.agents.values().any(|a| a.leg_shard.is_some());
                if !legs_up || now.mono.duration_since(since) >= self.cfg.leg_grace {
                    self.finish_stop(now);
                }
            }
            Phase::Stopped => {}
        }
        if self.next_status.is_some_and(|t| t <= now.mono) {
            self.next_status = Some(now.mono + self.cfg.status_every);
            self.publish_status();
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        Output::Timeout(self.poll_timeout())
    }

    /// The next instant `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Instant {
        let far = || Instant::now() + Duration::from_secs(3600);
        let phase = match self.phase {
            Phase::Running => self.next_tick,
            // Checked every tick while stopping.
            Phase::CallsEnding(_) | Phase::LegsDown(_) => self.next_tick,
            Phase::Stopped => None,
        };
        match (phase, self.next_status) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => far(),
        }
    }

    /// The first input starts the clocks.
    fn arm(&mut self, now: Now) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now.mono);
        }
        if self.next_status.is_none() {
            self.next_status = Some(now.mono + self.cfg.status_every);
        }
    }

    fn push(&mut self, o: Output) {
        self.out.push_back(o);
    }

    fn command(&mut self, shard: usize, command: Command) {
        self.push(Output::Shard { shard, command });
    }

    /// A browser phone's offer: to the shard of the leg the agent has (set up or up), else kept
    /// for the agent's next leg ([`PHONE_OFFER_TTL_MS`]; one per agent, at most
    /// [`MAX_PHONE_OFFERS`]).
    /// Legs that waited for an offer in vain: the agent is unreachable (no phone).
    fn expire_leg_waits(&mut self, now: Now) {
        if self.legs_awaiting_offer.is_empty() {
            return;
        }
        let mut gone: Vec<u64> = Vec::new();
        self.legs_awaiting_offer.retain(|agent, until| {
            let keep = *until > now.unix_ms;
            if !keep {
                gone.push(*agent);
            }
            keep
        });
        for agent in gone {
            tracing::info!(agent, "no registered phone and no browser phone offer for the agent");
            self.publish(ShardEvent::AgentUnreachable { agent_id: AgentId(agent), sip_status: 404 });
        }
        if !self.legs_awaiting_offer.is_empty() {
            self.ask_registrations(now);
        }
    }

    /// Asks for the stored registrations again, at most once a second.
    fn ask_registrations(&mut self, now: Now) {
        if now.unix_ms >= self.registrations_asked_ms + REGISTRATIONS_READ_EVERY_MS {
            self.registrations_asked_ms = now.unix_ms;
            self.push(Output::ReadRegistrations { tenant: self.tenant });
        }
    }

    fn on_phone_offer(&mut self, now: Now, agent: u64, sdp: String) {
        // A leg already asked for, waiting for this offer: set it up now.
        if self.legs_awaiting_offer.remove(&agent).is_some() {
            let shard = self.agents.get(&agent).map_or(0, |a| shard_of(a.campaign.unwrap_or(0), self.cfg.shards));
            let tenant_id = self.tenant;
            return self.command(shard, Command::DialBrowser(calls::DialBrowser { agent, tenant_id, offer: sdp }));
        }
        let leg = self.agents.get(&agent).filter(|a| !matches!(a.state, CtlState::Offline | CtlState::Unknown));
        if let Some(a) = leg {
            let shard = a.leg_shard.unwrap_or_else(|| shard_of(a.campaign.unwrap_or(0), self.cfg.shards));
            let tenant_id = self.tenant;
            return self.command(shard, Command::DialBrowser(calls::DialBrowser { agent, tenant_id, offer: sdp }));
        }
        self.phone_offers.retain(|_, (at, _)| *at + PHONE_OFFER_TTL_MS > now.unix_ms);
        if self.phone_offers.len() >= MAX_PHONE_OFFERS && !self.phone_offers.contains_key(&agent) {
            tracing::warn!(agent, "too many browser phone offers waiting; refused");
            let notice = wire::AgentNotice::PhoneFailed {
                agent_id: AgentId(agent),
                error: "the dialer is busy; try again".into(),
            };
            return self.push(Output::Notice { tenant: self.tenant, notice });
        }
        self.phone_offers.insert(agent, (now.unix_ms, sdp));
    }

    fn publish(&mut self, event: ShardEvent) {
        let tenant = self.tenant;
        self.push(Output::Publish { tenant, event });
    }

    fn write(&mut self, write: Write) {
        let tenant = self.tenant;
        self.push(Output::Write { tenant, write });
    }

    fn shard_of(&self, campaign: u64) -> usize {
        shard_of(campaign, self.cfg.shards)
    }

    // ------------------------------------------------------------------ recovery and configuration

    fn on_recovered(
        &mut self,
        now: Now,
        agents: Vec<RecoveredAgent>,
        contacts: Vec<(u64, Contact)>,
        orphans: Vec<u64>,
    ) {
        for a in agents {
            self.agents.insert(
                a.agent,
                AgentInfo {
                    campaign: a.campaign,
                    state: a.state,
                    since_ms: a.since_ms,
                    call: a.call,
                    leg_shard: None,
                    pause_after_call: false,
                },
            );
        }
        self.contacts.extend(contacts);
        // Legs that waited for a phone registered at another host: dial it now.
        let found: Vec<u64> = self
            .legs_awaiting_offer
            .keys()
            .copied()
            .filter(|a| self.contacts.get(a).is_some_and(|c| c.expires_at_ms > now.unix_ms))
            .collect();
        for agent in found {
            self.legs_awaiting_offer.remove(&agent);
            self.dial_agent_leg(now, agent);
        }
        self.stats.orphans_failed += orphans.len() as u64;
        for call in orphans {
            let outcome =
                SipOutcome { status: 0, reason: "dialer restarted".into(), ended_by: MsgParty::System, talk_ms: 0 };
            self.publish(ShardEvent::CallEnded {
                call_id: CallId(call),
                agent_id: None,
                outcome,
                result: wire::SystemResult::Error,
            });
        }
    }

    /// Whether this host dials for the campaign.
    fn holds(&self, campaign: u64) -> bool {
        self.held.as_ref().is_none_or(|h| h.contains_key(&campaign))
    }

    /// The fencing token of a held campaign's lease (on leases).
    fn token_of(&self, campaign: u64) -> Option<u64> {
        self.held.as_ref().and_then(|h| h.get(&campaign).copied())
    }

    /// The jobs of the campaigns held.
    fn apply_jobs(&mut self, now: Now) {
        let jobs: Vec<JobConfig> =
            self.all_jobs.iter().filter(|j| self.holds(j.job.campaign_id as u64)).cloned().collect();
        self.on_jobs(now, jobs);
    }

    /// The leases changed: a campaign lost stops here at once (its calls are ended without a word
    /// to anyone: the new holder gave them their results and a stale write would be refused
    /// anyway; its agents' legs are let go); a campaign gained gets the legs of its agents set up
    /// from this host, control told first that their old legs are down (未確認 until the new
    /// legs are up).
    fn on_leases(&mut self, now: Now, held: HashMap<u64, u64>) {
        let before: HashSet<u64> = self.held.as_ref().map(|h| h.keys().copied().collect()).unwrap_or_default();
        let lost: HashSet<u64> = before.iter().copied().filter(|c| !held.contains_key(c)).collect();
        let gained: Vec<u64> = held.keys().copied().filter(|c| !before.contains(c)).collect();
        self.held = Some(held);
        if !lost.is_empty() {
            tracing::warn!(tenant = self.tenant, campaigns = ?lost, "campaign leases lost: dialling for them stops");
            for call in self.end_calls_where(|c| lost.contains(&c.campaign)) {
                if let Some(c) = self.calls.remove(&call) {
                    self.numbers.remove(&c.tel);
                }
            }
            let ask_lost = self.previews.iter().any(|a| lost.contains(&a.campaign));
            if ask_lost {
                self.previews.retain(|a| !lost.contains(&a.campaign));
            }
            let legs: Vec<(u64, usize)> = self
                .agents
                .iter()
                .filter(|(_, a)| a.campaign.is_some_and(|c| lost.contains(&c)))
                .filter_map(|(id, a)| a.leg_shard.map(|s| (*id, s)))
                .collect();
            for (agent, shard) in legs {
                self.command(shard, Command::HangUpAgent { agent });
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.leg_shard = None;
                }
            }
        }
        self.apply_jobs(now);
        for campaign in gained {
            let agents: Vec<u64> = self
                .agents
                .iter()
                .filter(|(_, a)| a.campaign == Some(campaign) && a.leg_shard.is_none())
                .filter(|(_, a)| !matches!(a.state, CtlState::Offline | CtlState::Unknown))
                .map(|(id, _)| *id)
                .collect();
            for agent in agents {
                self.publish(ShardEvent::AgentLegDown {
                    agent_id: AgentId(agent),
                    shard: self.shard_of(campaign) as u32,
                });
                self.dial_agent_leg(now, agent);
            }
        }
    }

    fn on_jobs(&mut self, now: Now, jobs: Vec<JobConfig>) {
        let mut by_campaign: HashMap<u64, Vec<JobConfig>> = HashMap::new();
        for j in jobs {
            by_campaign.entry(j.job.campaign_id as u64).or_default().push(j);
        }
        // Campaigns with no running job keep their pacer while calls are in flight.
        let live: HashSet<u64> = self.calls.values().map(|c| c.campaign).collect();
        self.campaigns.retain(|c, _| by_campaign.contains_key(c) || live.contains(c));
        for st in self.campaigns.values_mut() {
            st.jobs.retain(|j| by_campaign.contains_key(&(j.campaign_id as u64)));
        }
        for (campaign, jobs) in by_campaign {
            let first = &jobs[0];
            let mode = first.job.mode.clone();
            let waiting = first.waiting_audio.clone().or_else(|| self.cfg.waiting_audio.clone());
            let results: HashSet<i64> = first.result_numbers.iter().copied().collect();
            let st = self.campaigns.entry(campaign).or_insert_with(|| Campaign {
                jobs: Vec::new(),
                pacer: pacer_for(&first.job, now.unix_ms),
                mode: mode.clone(),
                next_job: 0,
                reserved: 0,
                exhausted: HashSet::new(),
                last_decision: None,
                remaining: 0,
                waiting_audio: None,
                result_numbers: HashSet::new(),
                next_owned_recalls: None,
            });
            if st.mode != mode {
                st.pacer = pacer_for(&first.job, now.unix_ms);
                st.mode = mode;
            }
            st.waiting_audio = waiting;
            st.result_numbers = results;
            // A job started again begins a new run.
            let started: HashMap<i64, Option<i64>> = st.jobs.iter().map(|j| (j.job_id, j.started_at)).collect();
            st.exhausted
                .retain(|j| jobs.iter().any(|x| x.job.job_id == *j && started.get(j) == Some(&x.job.started_at)));
            st.jobs = jobs.into_iter().map(|j| j.job).collect();
        }
    }

    // ------------------------------------------------------------------ shard events

    fn on_shard(&mut self, now: Now, shard: usize, event: CallEvent) {
        match event {
            CallEvent::CustomerRinging { .. } => {}
            CallEvent::CustomerAnswered { call, ring_ms } => {
                let Some(c) = self.calls.get_mut(&call) else { return };
                c.answered = Some(now.mono);
                let (campaign, lead) = (c.campaign, c.lead);
                self.stats.answered += 1;
                metrics::counter!("kakeru_dialer_calls_answered_total").increment(1);
                if let Some(st) = self.campaigns.get_mut(&campaign) {
                    st.pacer.on_event(now.unix_ms, PacerEvent::AnsweredLive { ring_ms });
                }
                self.publish(ShardEvent::CustomerAnswered {
                    call_id: CallId(call),
                    campaign_id: CampaignId(campaign),
                    lead_id: LeadId(lead as u64),
                    shard: shard as u32,
                });
            }
            CallEvent::Bridged { call, agent } => {
                let Some(c) = self.calls.get_mut(&call) else { return };
                c.bridged = Some(agent);
                let wait_ms = c.answered.map_or(0, |a| now.mono.duration_since(a).as_millis() as u64);
                let campaign = c.campaign;
                self.stats.bridged += 1;
                metrics::histogram!("kakeru_dialer_answer_to_bridge_seconds").record(wait_ms as f64 / 1000.0);
                if let Some(st) = self.campaigns.get_mut(&campaign) {
                    st.pacer.on_event(now.unix_ms, PacerEvent::Connected { wait_ms });
                }
                self.publish(ShardEvent::Bridged { call_id: CallId(call), agent_id: AgentId(agent) });
            }
            CallEvent::BridgeFailed { call, agent, reason } => {
                tracing::info!(call, agent, reason, "bridge not made");
            }
            CallEvent::CustomerEnded { call, end } => {
                self.outside.remove(&call);
                self.on_call_ended(now, call, end)
            }
            CallEvent::OutsideAnswered { call, agent } => {
                self.publish(ShardEvent::OutsideTransferred { call_id: CallId(call), agent_id: AgentId(agent) });
                self.outside_notice(agent, call, "answered");
            }
            CallEvent::ConferenceJoined { call, agent } => {
                self.write(Write::ConferenceStarted { call: i(call), at_ms: i(now.unix_ms) });
                self.conference_notice(agent, call, "joined");
            }
            CallEvent::ConferenceEnded { call, agent, reason } => {
                // A conference the agent left goes on as an outside transfer: its leg stays counted.
                if reason != crate::calls::ConferenceEnd::AgentLeft {
                    self.outside.remove(&call);
                }
                self.write(Write::ConferenceEnded { call: i(call), at_ms: i(now.unix_ms), reason: reason.as_str() });
                self.conference_notice(agent, call, reason.as_str());
            }
            CallEvent::OutsideFailed { call, agent, status, reason } => {
                tracing::info!(call, agent, status, reason = reason.as_str(), "outside transfer not answered");
                self.outside.remove(&call);
                self.outside_notice(agent, call, reason.as_str());
            }
            CallEvent::AgentLegUp { agent } => {
                let Some(a) = self.agents.get_mut(&agent) else { return };
                a.leg_shard = Some(shard);
                self.stats.agent_legs_up += 1;
                self.publish(ShardEvent::AgentLegUp { agent_id: AgentId(agent), shard: shard as u32 });
            }
            CallEvent::AgentLegDown { agent } => {
                let held = self.agents.get(&agent).is_some_and(|a| a.campaign.is_none_or(|c| self.holds(c)));
                let Some(a) = self.agents.get_mut(&agent) else { return };
                if a.leg_shard.is_none() && !held {
                    // A leg let go with its campaign's lease: its agent is the new holder's.
                    return;
                }
                a.leg_shard = None;
                self.publish(ShardEvent::AgentLegDown { agent_id: AgentId(agent), shard: shard as u32 });
            }
            CallEvent::AgentUnreachable { agent, status } => {
                if self.agents.contains_key(&agent) {
                    self.publish(ShardEvent::AgentUnreachable { agent_id: AgentId(agent), sip_status: status });
                }
            }
            CallEvent::Registered { user_id, username, contact, source, expires_s, .. } => {
                self.stats.registrations += 1;
                let expires_at_ms = now.unix_ms + u64::from(expires_s) * 1000;
                if let Some(u) = user_id {
                    if expires_s == 0 {
                        self.contacts.remove(&u);
                    } else {
                        self.contacts.insert(u, Contact { uri: contact.clone(), source, expires_at_ms });
                    }
                }
                if let Some(phone_id) = self.phones.get(&username).copied() {
                    self.write(Write::Registration(store::dialing::Registration {
                        tenant_id: i(self.tenant),
                        phone_id,
                        user_id: user_id.map(i),
                        contact,
                        source: source.to_string(),
                        expires_at: i(expires_at_ms),
                    }));
                }
            }
            CallEvent::DtmfEntry { agent, call, entry } => self.on_dtmf_entry(agent, call, entry),
            CallEvent::ParkKeyed { agent, call } => {
                self.publish(ShardEvent::ParkKeyed { agent_id: AgentId(agent), call_id: CallId(call) });
            }
            CallEvent::PickUpKeyed { agent, number } => {
                self.publish(ShardEvent::PickUpKeyed { agent_id: AgentId(agent), number });
            }
            CallEvent::BrowserAnswer { agent, sdp } => {
                let notice = wire::AgentNotice::PhoneAnswer { agent_id: AgentId(agent), sdp };
                self.push(Output::Notice { tenant: self.tenant, notice });
            }
            CallEvent::BrowserFailed { agent, error } => {
                let notice = wire::AgentNotice::PhoneFailed { agent_id: AgentId(agent), error };
                self.push(Output::Notice { tenant: self.tenant, notice });
            }
            CallEvent::SupervisorJoined { supervisor, call, .. } => {
                if let Some(s) = self.supervising.get_mut(&supervisor).filter(|s| s.call == call && !s.started) {
                    s.started = true;
                    let monitor = s.monitor;
                    self.write(Write::MonitorStarted { monitor, at_ms: i(now.unix_ms) });
                }
            }
            CallEvent::SupervisorBrowserAnswer { supervisor, call, sdp } => {
                if let Some(s) = self.supervising.get(&supervisor).filter(|s| s.call == call) {
                    let notice = wire::AgentNotice::MonitorAnswer {
                        agent_id: AgentId(supervisor),
                        monitor_id: u64::try_from(s.monitor).unwrap_or(0),
                        sdp,
                    };
                    self.push(Output::Notice { tenant: self.tenant, notice });
                }
            }
            CallEvent::SupervisorBrowserFailed { supervisor, call, error } => {
                if let Some(s) = self.supervising.get(&supervisor).filter(|s| s.call == call) {
                    let notice = wire::AgentNotice::MonitorFailed {
                        agent_id: AgentId(supervisor),
                        monitor_id: u64::try_from(s.monitor).unwrap_or(0),
                        error,
                    };
                    self.push(Output::Notice { tenant: self.tenant, notice });
                }
            }
            CallEvent::SupervisorLeft { supervisor, call, reason } => {
                if self.supervising.get(&supervisor).is_some_and(|s| s.call == call) {
                    if let Some(s) = self.supervising.remove(&supervisor) {
                        let at_ms = i(now.unix_ms);
                        self.write(Write::MonitorEnded { monitor: s.monitor, at_ms, reason: reason.as_str() });
                    }
                }
            }
            CallEvent::RecordingClosed { call, path, bytes, error } => {
                if let Some(e) = error {
                    tracing::warn!(call, error = %e, "recording failed");
                }
                let end = i(now.unix_ms);
                let duration_ms = i64::try_from(media::recording::duration_ms(bytes)).unwrap_or(0);
                self.write(Write::Recording(store::recordings::NewRecording {
                    tenant_id: i(self.tenant),
                    dialer_call_id: i(call),
                    path: path.to_string_lossy().into_owned(),
                    bytes: i(bytes),
                    duration_ms,
                    started_at_ms: end - duration_ms,
                    closed_at_ms: end,
                }));
            }
        }
    }

    /// DTMF result entry: a result number of the agent's campaign, or a recall; control saves the
    /// call's wrap-up record (it wrote it when the call ended) and ends the agent's ACW.
    fn on_dtmf_entry(&mut self, agent: u64, call: u64, entry: DtmfEntry) {
        self.stats.dtmf_entries += 1;
        let Some(a) = self.agents.get(&agent) else { return };
        let keyed = match entry {
            DtmfEntry::Result { number } => {
                let known = a
                    .campaign
                    .and_then(|c| self.campaigns.get(&c))
                    .is_some_and(|st| st.result_numbers.contains(&i64::from(number)));
                if !known {
                    tracing::info!(call, number, "DTMF result number is not one of the campaign's");
                    return;
                }
                wire::Keyed::Result { number }
            }
            DtmfEntry::Recall { after_ms } => wire::Keyed::Recall { after_ms },
        };
        self.publish(ShardEvent::ResultKeyed { call_id: CallId(call), agent_id: AgentId(agent), keyed });
    }

    fn on_call_ended(&mut self, now: Now, call: u64, end: CallEnd) {
        let Some(c) = self.calls.remove(&call) else { return };
        self.stats.ended += 1;
        let result = results::result_of(&end);
        if result == wire::SystemResult::Abandoned {
            self.stats.abandoned += 1;
        }
        metrics::counter!("kakeru_dialer_calls_total", "result" => result.as_str()).increment(1);
        self.numbers.remove(&c.tel);
        if let Some(st) = self.campaigns.get_mut(&c.campaign) {
            if let Some(ev) = results::pacer_event(&end) {
                st.pacer.on_event(now.unix_ms, ev);
            }
        }
        let answered_at = c.answered.map(|a| i(now.unix_ms) - now.mono.duration_since(a).as_millis() as i64);
        let r = CallResult {
            call_id: i(call),
            result: result.as_str(),
            sip_status: i64::from(end.status),
            answered_at,
            ended_at: i(now.unix_ms),
        };
        self.write(Write::Results(vec![r]));
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
        self.publish(ShardEvent::CallEnded {
            call_id: CallId(call),
            agent_id: end.agent.map(AgentId),
            outcome,
            result,
        });
        self.maybe_finish_job(c.campaign, c.job);
    }

    /// At business end (業務終了時間) a running job stops dialling and is marked stopped; the calls
    /// in progress go on to their end (BIZTEL §3.2).
    fn stop_jobs_at_business_end(&mut self, now: Now) {
        let mut ended = Vec::new();
        for st in self.campaigns.values_mut() {
            st.jobs.retain(|j| {
                let over = business_end_after_start(j).is_some_and(|end| now.unix_ms >= end);
                if over {
                    ended.push(j.job_id);
                }
                !over
            });
            st.exhausted.retain(|j| !ended.contains(j));
        }
        for job in ended {
            tracing::info!(job, "business hours ended: the call job stops");
            metrics::counter!("kakeru_dialer_jobs_stopped_at_business_end_total").increment(1);
            self.write(Write::EndJob { job, status: "stopped" });
        }
    }

    fn maybe_finish_job(&mut self, campaign: u64, job: i64) {
        let Some(st) = self.campaigns.get(&campaign) else { return };
        if !st.exhausted.contains(&job) || st.reserved > 0 || self.calls.values().any(|c| c.job == job) {
            return;
        }
        self.write(Write::EndJob { job, status: "finished" });
        if let Some(st) = self.campaigns.get_mut(&campaign) {
            st.jobs.retain(|j| j.job_id != job);
            st.exhausted.remove(&job);
        }
    }

    // ------------------------------------------------------------------ agent events

    fn on_agent_event(&mut self, now: Now, ev: CtlEvent) {
        match ev {
            CtlEvent::Transition(t) => {
                let a = self.agents.entry(t.agent_id.0).or_insert(AgentInfo {
                    campaign: None,
                    state: t.from,
                    since_ms: t.at_ms,
                    call: None,
                    leg_shard: None,
                    pause_after_call: false,
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
                // A deferred request is applied (or given up) when the call is over.
                if !matches!(t.to, CtlState::Ringing | CtlState::Talking | CtlState::Hold | CtlState::WrapUp) {
                    a.pause_after_call = false;
                }
                if let (Some(ev), Some(c)) = (learned, a.campaign) {
                    if let Some(st) = self.campaigns.get_mut(&c) {
                        st.pacer.on_event(now.unix_ms, ev);
                    }
                }
            }
            CtlEvent::Deferred { agent_id, after_call } => {
                if let Some(a) = self.agents.get_mut(&agent_id.0) {
                    a.pause_after_call = after_call;
                }
            }
            CtlEvent::Command(c) => self.on_command(now, c),
        }
    }

    fn on_command(&mut self, now: Now, c: CtlCommand) {
        match c {
            CtlCommand::DialAgentLeg { agent_id, campaign_id } => {
                let agent = agent_id.0;
                let a = self.agents.entry(agent).or_insert(AgentInfo {
                    campaign: None,
                    state: CtlState::Ringing,
                    since_ms: now.unix_ms,
                    call: None,
                    leg_shard: None,
                    pause_after_call: false,
                });
                if let Some(c) = campaign_id {
                    a.campaign = Some(c.0);
                }
                if !a.campaign.is_some_and(|c| self.holds(c)) && self.held.is_some() {
                    // The host that holds the agent's campaign sets the leg up.
                    return;
                }
                self.dial_agent_leg(now, agent);
            }
            CtlCommand::HangUpAgentLeg { agent_id } => {
                let agent = agent_id.0;
                self.legs_awaiting_offer.remove(&agent);
                let here = self
                    .agents
                    .get(&agent)
                    .is_some_and(|a| a.leg_shard.is_some() || a.campaign.is_some_and(|c| self.holds(c)));
                if !here && self.held.is_some() {
                    return;
                }
                let shard = self
                    .agents
                    .get(&agent)
                    .and_then(|a| a.leg_shard.or(a.campaign.map(|c| shard_of(c, self.cfg.shards))))
                    .unwrap_or(0);
                self.command(shard, Command::HangUpAgent { agent });
            }
            CtlCommand::Bridge { agent_id, call_id } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    self.command(shard, Command::Bridge { call: call_id.0, agent: agent_id.0 });
                }
            }
            CtlCommand::ReleaseCustomer { agent_id, call_id } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    let cmd = if agent_id.0 == 0 {
                        Command::Abandon { call: call_id.0 }
                    } else {
                        Command::Unbridge { call: call_id.0 }
                    };
                    self.command(shard, cmd);
                }
            }
            CtlCommand::HangUpCustomer { call_id, .. } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    self.command(shard, Command::HangUpCustomer { call: call_id.0, by: Party::Agent });
                }
            }
            CtlCommand::ParkCustomer { call_id, hold_ms, .. } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    let hold = std::time::Duration::from_millis(hold_ms);
                    self.command(shard, Command::Park { call: call_id.0, hold });
                }
            }
            CtlCommand::HoldCustomer { call_id, held, .. } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    self.command(shard, Command::Hold { call: call_id.0, held });
                }
            }
            CtlCommand::TransferOutside { agent_id, call_id, tel, caller_id } => {
                self.transfer_outside(now, agent_id.0, call_id.0, tel, caller_id, false)
            }
            CtlCommand::Conference { agent_id, call_id, tel, caller_id } => {
                self.transfer_outside(now, agent_id.0, call_id.0, tel, caller_id, true)
            }
            CtlCommand::EndConference { call_id, .. } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    self.command(shard, Command::EndConference { call: call_id.0 });
                }
            }
            CtlCommand::LeaveConference { call_id, .. } => {
                if let Some(shard) = self.calls.get(&call_id.0).map(|c| c.shard) {
                    self.command(shard, Command::LeaveConference { call: call_id.0 });
                }
            }
            CtlCommand::DialPreview { agent_id, campaign_id, call_job_id, lead_id, caller_id } => {
                if !self.holds(campaign_id.0) {
                    // The holder of the campaign answers it.
                    return;
                }
                let ask = (agent_id.0, campaign_id.0, i(call_job_id.0), i(lead_id.0));
                self.on_preview_dial(now, ask, caller_id.map(|c| c.0));
            }
        }
    }

    /// 外線転送 of the customer of `call` to `tel` (or 電話会議 with `tel` as the third party): a
    /// second channel of the call's campaign and caller ID, placed only within their channel limits
    /// (the API refused numbers on the do-not-call list), from `from` (a saved 外線転送's own
    /// 発信者番号) or else the call's own caller ID.
    fn transfer_outside(
        &mut self,
        now: Now,
        agent: u64,
        call: u64,
        tel: wire::Tel,
        from: Option<wire::Tel>,
        conference: bool,
    ) {
        let Some(c) = self.calls.get(&call) else { return };
        if c.bridged != Some(agent) || self.outside.contains_key(&call) {
            return;
        }
        let caller_id = from.map_or_else(|| c.caller_id.clone(), |f| Some(f.as_str().to_string()));
        let (campaign, shard) = (c.campaign, c.shard);
        let job = self.campaigns.get(&campaign).and_then(|st| st.jobs.iter().find(|j| j.job_id == c.job).cloned());
        let free = job.map_or(0, |mut j| {
            j.caller_id = caller_id.clone();
            self.free_channels(campaign, &j)
        });
        if free == 0 && conference {
            let at_ms = i(now.unix_ms);
            self.write(Write::ConferenceEnded { call: i(call), at_ms, reason: "channel_limit" });
            return self.conference_notice(agent, call, "channel_limit");
        }
        if free == 0 {
            return self.outside_notice(agent, call, "channel_limit");
        }
        self.outside.insert(call, OutsideLeg { campaign, caller_id: caller_id.clone() });
        let cmd = crate::calls::TransferOutside {
            call,
            tel: tel.as_str().to_string(),
            caller_id,
            ring_timeout: OUTSIDE_RING_TIMEOUT,
        };
        self.command(shard, if conference { Command::Conference(cmd) } else { Command::TransferOutside(cmd) });
    }

    /// Tells the agent's page how its conference goes.
    fn conference_notice(&mut self, agent: u64, call: u64, outcome: &str) {
        let notice = wire::AgentNotice::Conference {
            agent_id: AgentId(agent),
            call_id: CallId(call),
            outcome: outcome.to_string(),
        };
        self.push(Output::Notice { tenant: self.tenant, notice });
    }

    /// Tells the agent's page how its outside transfer went.
    fn outside_notice(&mut self, agent: u64, call: u64, outcome: &str) {
        let notice = wire::AgentNotice::OutsideTransfer {
            agent_id: AgentId(agent),
            call_id: CallId(call),
            outcome: outcome.to_string(),
        };
        self.push(Output::Notice { tenant: self.tenant, notice });
    }

    /// Dials the agent's nailed-up leg to its registered phone, on its campaign's shard.
    fn dial_agent_leg(&mut self, now: Now, agent: u64) {
        let agent_id = AgentId(agent);
        let Some(a) = self.agents.get(&agent) else { return };
        let shard = shard_of(a.campaign.unwrap_or(0), self.cfg.shards);
        // A browser phone: its page offered before the job started.
        if let Some((at, offer)) = self.phone_offers.remove(&agent) {
            if at + PHONE_OFFER_TTL_MS > now.unix_ms {
                let tenant_id = self.tenant;
                self.command(shard, Command::DialBrowser(calls::DialBrowser { agent, tenant_id, offer }));
                return;
            }
        }
        {
            {
                match self.contacts.get(&agent).filter(|c| c.expires_at_ms > now.unix_ms).cloned() {
                    Some(contact) => {
                        // The Contact's address when it names one (a phone registering for another
                        // UA, or behind no NAT); else where the REGISTER came from.
                        let dest = calls::uri_addr(&contact.uri)
                            .filter(|a| !a.ip().is_unspecified())
                            .unwrap_or(contact.source);
                        let tenant_id = self.tenant;
                        self.command(
                            shard,
                            Command::DialAgent(DialAgent { agent, tenant_id, target: contact.uri, dest }),
                        );
                    }
                    None if self.legs_awaiting_offer.len() < MAX_PHONE_OFFERS => {
                        // Maybe a browser phone whose offer is still on its way.
                        self.legs_awaiting_offer.insert(agent, now.unix_ms + LEG_WAITS_FOR_OFFER_MS);
                        // Or a phone that registered at another host.
                        self.ask_registrations(now);
                    }
                    None => {
                        tracing::info!(agent, "no registered phone for the agent");
                        self.publish(ShardEvent::AgentUnreachable { agent_id, sip_status: 404 });
                    }
                }
            }
        }
    }

    /// A supervisor joins `call` in `mode` from their registered phone, on the call's shard; a
    /// supervisor already on it changes mode (the earlier record ends `mode_changed`), one on
    /// another call leaves that first.
    fn on_supervise(
        &mut self,
        now: Now,
        monitor: i64,
        supervisor: u64,
        call: u64,
        mode: media::SupervisorMode,
        offer: Option<String>,
    ) {
        let at_ms = i(now.unix_ms);
        let Some((shard, _agent)) = self.calls.get(&call).and_then(|c| Some((c.shard, c.bridged?))) else {
            return self.write(Write::MonitorEnded { monitor, at_ms, reason: "not_bridged" });
        };
        let phone = match offer {
            Some(offer) => calls::SupervisorPhone::Browser { offer },
            None => {
                let contact = self.contacts.get(&supervisor).filter(|c| c.expires_at_ms > now.unix_ms).cloned();
                let Some(contact) = contact else {
                    return self.write(Write::MonitorEnded { monitor, at_ms, reason: "no_phone" });
                };
                let dest = calls::uri_addr(&contact.uri).filter(|a| !a.ip().is_unspecified()).unwrap_or(contact.source);
                calls::SupervisorPhone::Sip { target: contact.uri, dest }
            }
        };
        if let Some(old) = self.supervising.remove(&supervisor) {
            let reason = match (old.call == call, old.started) {
                (true, true) => "mode_changed",
                _ => "stopped",
            };
            self.write(Write::MonitorEnded { monitor: old.monitor, at_ms, reason });
            if old.shard != shard {
                self.command(old.shard, Command::EndSupervision { supervisor });
            }
        }
        let started = false;
        self.supervising.insert(supervisor, Supervising { call, monitor, shard, started });
        let tenant_id = self.tenant;
        let cmd = calls::Supervise { supervisor, tenant_id, call, mode, phone };
        self.command(shard, Command::Supervise(cmd));
    }

    /// An agent's preview dial (agent, campaign, job, lead), from the caller ID it chose (`None`:
    /// the job's): the engine's checks (job running, business hours, the channel limits of the
    /// campaign and of the caller ID it goes out with), then the tenant's prepare step does the
    /// rest (the lead, its number, do-not-call).
    fn on_preview_dial(&mut self, now: Now, (agent, campaign, job_id, lead): (u64, u64, i64, i64), cid: Option<u64>) {
        self.stats.preview_asked += 1;
        let job = self.campaigns.get(&campaign).and_then(|st| st.jobs.iter().find(|j| j.job_id == job_id).cloned());
        let Some(mut job) = job.filter(|j| j.campaign_enabled) else {
            return self.not_dialled(agent, lead, "job_not_running");
        };
        if let Some(cid) = cid {
            // The agent's 発番号: the call goes out with it and counts against its limit.
            let Some(number) = self.caller_ids.get(&cid) else {
                return self.not_dialled(agent, lead, "caller_id_unknown");
            };
            job.caller_id = Some(number.clone());
        }
        if self.phase != Phase::Running {
            return self.not_dialled(agent, lead, "job_not_running");
        }
        if !in_business_hours(&job, now.unix_ms) {
            return self.not_dialled(agent, lead, "outside_hours");
        }
        if self.previews.len() >= MAX_PREVIEW_QUEUE {
            return self.not_dialled(agent, lead, "busy");
        }
        let limit_reached = self.free_channels(campaign, &job) == 0;
        self.reserve(campaign, job.caller_id.clone(), 1);
        self.previews.push_back(PreviewAsk { agent, campaign, job, lead, limit_reached });
        self.start_preview();
    }

    /// Tells control the agent's preview call was not placed, and why.
    fn not_dialled(&mut self, agent: u64, lead: i64, result: &str) {
        tracing::info!(agent, lead, result, "preview dial not placed");
        self.publish(ShardEvent::PreviewNotDialled {
            agent_id: AgentId(agent),
            lead_id: LeadId(lead as u64),
            result: result.to_string(),
        });
    }

    /// Starts the tenant's next preview dial when its prepare step is free.
    fn start_preview(&mut self) {
        if self.preparing.is_some() {
            return;
        }
        let Some(ask) = self.previews.pop_front() else { return };
        let all_jobs = self.campaigns.get(&ask.campaign).map(|st| st.jobs.clone()).unwrap_or_default();
        let id = self.next_prepare_id();
        self.preparing = Some(InFlight {
            id,
            campaign: ask.campaign,
            asked: 1,
            caller_id: ask.job.caller_id.clone(),
            preview: Some((ask.agent, ask.lead)),
        });
        let req = PrepareRequest {
            id,
            tenant: self.tenant,
            campaign: ask.campaign,
            token: self.token_of(ask.campaign),
            numbers: self.numbers.clone(),
            kind: PrepareKind::Preview { ask: Box::new(ask), all_jobs },
        };
        self.push(Output::Prepare(Box::new(req)));
    }

    /// Counts `k` dials being prepared against the campaign's channels and the caller ID they go
    /// out with, until [`Engine::release`].
    fn reserve(&mut self, campaign: u64, caller_id: Option<String>, k: u32) {
        if let Some(st) = self.campaigns.get_mut(&campaign) {
            st.reserved += k;
        }
        if let Some(cid) = caller_id {
            *self.reserved_by_cid.entry(cid).or_default() += k;
        }
    }

    fn release(&mut self, campaign: u64, caller_id: Option<&String>, k: u32) {
        if let Some(st) = self.campaigns.get_mut(&campaign) {
            st.reserved = st.reserved.saturating_sub(k);
        }
        if let Some(cid) = caller_id {
            if let Some(n) = self.reserved_by_cid.get_mut(cid) {
                *n = n.saturating_sub(k);
                if *n == 0 {
                    self.reserved_by_cid.remove(cid);
                }
            }
        }
    }

    fn next_prepare_id(&mut self) -> u64 {
        let id = self.next_prepare_id;
        self.next_prepare_id += 1;
        id
    }

    // ------------------------------------------------------------------ pacing

    /// Channels a campaign may still open now: its 最大チャンネル less its live calls and the dials
    /// being prepared (`reserved`), and its caller ID's limit less that number's live calls.
    fn free_channels(&self, campaign: u64, job: &RunningJob) -> i64 {
        let reserved = self.campaigns.get(&campaign).map_or(0, |st| st.reserved);
        let outside = self.outside.values().filter(|o| o.campaign == campaign).count() as i64;
        let in_use =
            self.calls.values().filter(|c| c.campaign == campaign).count() as i64 + i64::from(reserved) + outside;
        let mut free = (job.max_channels - in_use).max(0);
        if let Some(cid) = &job.caller_id {
            if let Some(limit) = self.caller_limits.get(cid) {
                let used = self.calls.values().filter(|c| c.caller_id.as_ref() == Some(cid)).count() as i64
                    + self.outside.values().filter(|o| o.caller_id.as_ref() == Some(cid)).count() as i64;
                let reserved_here = i64::from(self.reserved_by_cid.get(cid).copied().unwrap_or(0));
                free = free.min((limit - used - reserved_here).max(0));
            }
        }
        free
    }

    /// Asks every campaign's pacer and starts the dials it wants (capped by the channel limits).
    fn plan(&mut self, now: Now) {
        self.stop_jobs_at_business_end(now);
        // Preview dials are served before paced ones, and due recalls agents own before new leads.
        self.start_preview();
        if self.preparing.is_none() && self.look_for_owned_recalls(now) {
            return;
        }
        let mut wanted: Vec<(u64, u32)> = Vec::new();
        let campaigns: Vec<u64> = self.campaigns.keys().copied().collect();
        for campaign in campaigns {
            let Some(d) = self.decide(now, campaign) else { continue };
            let Some(st) = self.campaigns.get(&campaign) else { continue };
            let Some(first) = st.first() else { continue };
            let free = self.free_channels(campaign, first);
            let k = i64::from(d.launch).min(free).min(i64::from(MAX_PREPARE));
            let st = &self.campaigns[&campaign];
            if k > 0 && st.jobs.iter().any(|j| !st.exhausted.contains(&j.job_id)) {
                wanted.push((campaign, k as u32));
            }
        }
        // One prepare at a time per tenant: the campaigns take turns; the others ask again on the
        // next tick.
        wanted.sort_unstable();
        let next = wanted.iter().find(|(c, _)| *c > self.last_paced).or(wanted.first()).copied();
        if let Some((campaign, k)) = next {
            if self.preparing.is_none() {
                self.last_paced = campaign;
                self.start_paced(campaign, k);
            }
        }
    }

    /// Agent-owned recalls in progressive and predictive jobs: every [`OWNED_RECALLS_EVERY`], a
    /// campaign with ready agents asks which of them own a due recall (dialled by that agent only).
    /// Whether it started a prepare.
    fn look_for_owned_recalls(&mut self, now: Now) -> bool {
        let due = self.campaigns.iter().find(|(_, st)| {
            st.mode != "preview"
                && !st.jobs.is_empty()
                && st.next_owned_recalls.is_none_or(|t| t <= now.mono)
                && st.first().is_some_and(|j| j.campaign_enabled && in_business_hours(j, now.unix_ms))
        });
        let Some((&campaign, st)) = due else { return false };
        let job_ids: Vec<i64> = st.jobs.iter().map(|j| j.job_id).collect();
        let agents: Vec<u64> = self
            .agents
            .iter()
            .filter(|(_, a)| a.campaign == Some(campaign) && a.state == CtlState::Ready)
            .map(|(id, _)| *id)
            .collect();
        if let Some(st) = self.campaigns.get_mut(&campaign) {
            st.next_owned_recalls = Some(now.mono + OWNED_RECALLS_EVERY);
        }
        if agents.is_empty() {
            return false;
        }
        let id = self.next_prepare_id();
        self.preparing = Some(InFlight { id, campaign, asked: 0, caller_id: None, preview: None });
        let req = PrepareRequest {
            id,
            tenant: self.tenant,
            campaign,
            token: self.token_of(campaign),
            numbers: HashSet::new(),
            kind: PrepareKind::OwnedRecalls { job_ids, agents },
        };
        self.push(Output::Prepare(Box::new(req)));
        true
    }

    /// The pacer's decision for one campaign now (`None` outside business hours or disabled).
    fn decide(&mut self, now: Now, campaign: u64) -> Option<Decision> {
        let st = self.campaigns.get(&campaign)?;
        let first = st.first()?;
        if !first.campaign_enabled || !in_business_hours(first, now.unix_ms) {
            return None;
        }
        let mut ringing: Vec<u64> = Vec::new();
        let mut waiting = 0u32;
        for c in self.calls.values().filter(|c| c.campaign == campaign) {
            match (c.answered, c.bridged) {
                (None, _) => ringing.push(now.mono.duration_since(c.launched).as_millis() as u64),
                (Some(_), None) => waiting += 1,
                (Some(_), Some(_)) => {}
            }
        }
        ringing.extend(std::iter::repeat_n(0, st.reserved as usize));
        let agents = self.pacer_agents(now, campaign);
        let floor = FloorView { ringing_ages_ms: &ringing, waiting_customers: waiting, agents: &agents };
        let st = self.campaigns.get_mut(&campaign)?;
        let d = st.pacer.decide(now.unix_ms, &floor);
        st.last_decision = Some(d);
        Some(d)
    }

    /// The campaign's agents as its pacer sees them.
    pub fn pacer_agents(&self, now: Now, campaign: u64) -> Vec<PacerAgent> {
        self.agents
            .values()
            .filter(|a| a.campaign == Some(campaign))
            .filter_map(|a| {
                let state = match a.state {
                    CtlState::Ready => PacerAgentState::Ready,
                    CtlState::Talking | CtlState::Hold => PacerAgentState::Talking,
                    CtlState::Ringing if a.call.is_some() => PacerAgentState::Talking,
                    CtlState::WrapUp => PacerAgentState::WrapUp,
                    CtlState::Paused { .. } => PacerAgentState::Paused,
                    _ => return None,
                };
                Some(PacerAgent {
                    state,
                    in_state_ms: now.unix_ms.saturating_sub(a.since_ms),
                    pause_after_call: a.pause_after_call,
                })
            })
            .collect()
    }

    fn start_paced(&mut self, campaign: u64, k: u32) {
        let id = self.next_prepare_id();
        let numbers = self.numbers.clone();
        // Paced dials count against the caller ID of the campaign's first job, the one
        // `free_channels` capped them by.
        let Some(st) = self.campaigns.get(&campaign) else { return };
        let cid = st.first().and_then(|j| j.caller_id.clone());
        self.reserve(campaign, cid.clone(), k);
        let Some(st) = self.campaigns.get_mut(&campaign) else { return };
        let jobs: Vec<RunningJob> = st.jobs.iter().filter(|j| !st.exhausted.contains(&j.job_id)).cloned().collect();
        let start = st.next_job;
        st.next_job = st.next_job.wrapping_add(1);
        let predictive = st.mode == "predictive";
        self.preparing = Some(InFlight { id, campaign, asked: k, caller_id: cid, preview: None });
        let req = PrepareRequest {
            id,
            tenant: self.tenant,
            campaign,
            token: self.token_of(campaign),
            numbers,
            kind: PrepareKind::Paced { jobs, start, k, predictive },
        };
        self.push(Output::Prepare(Box::new(req)));
    }

    fn on_prepare_failed(&mut self, now: Now, id: u64, error: &str) {
        let Some(f) = self.preparing.take_if(|f| f.id == id) else { return };
        self.stats.prepare_failures += 1;
        tracing::warn!(tenant = self.tenant, campaign = f.campaign, error, "could not prepare dials");
        self.release(f.campaign, f.caller_id.as_ref(), f.asked);
        if let Some((agent, lead)) = f.preview {
            self.not_dialled(agent, lead, "error");
        }
        if self.phase == Phase::Running {
            self.start_preview();
        }
        let _ = now;
    }

    fn on_prepared(&mut self, now: Now, mut p: Prepared) {
        let Some(f) = self.preparing.take_if(|f| f.id == p.id) else {
            tracing::warn!(id = p.id, "a prepare answered that was not asked; its leads stay pending");
            return;
        };
        self.stats.restricted += p.restricted as u64;
        self.release(f.campaign, f.caller_id.as_ref(), f.asked);
        if let Some(st) = self.campaigns.get_mut(&f.campaign) {
            if let Some(n) = p.remaining {
                st.remaining = n;
            }
        }
        if self.phase != Phase::Running {
            let calls: Vec<(i64, Option<i64>)> = p.dials.iter().map(|d| (i(d.call), d.lead.recall_id)).collect();
            self.stats.not_dialled_at_stop += calls.len() as u64;
            metrics::counter!("kakeru_dialer_calls_total", "result" => "stopped").increment(calls.len() as u64);
            if !calls.is_empty() {
                self.write(Write::NotDialled(calls));
            }
            if let Some((agent, lead)) = f.preview {
                self.not_dialled(agent, lead, p.not_placed.unwrap_or("stopped"));
            }
            return;
        }
        // Agent-owned recalls: each to its agent, through control (which dials it for that agent
        // when the agent is still ready for the job).
        for (agent, job, lead) in std::mem::take(&mut p.owned_recalls) {
            self.publish(ShardEvent::RecallDue {
                agent_id: AgentId(agent),
                campaign_id: CampaignId(f.campaign),
                call_job_id: wire::CallJobId(job as u64),
                lead_id: LeadId(lead as u64),
            });
        }
        if let (Some((agent, lead)), Some(why)) = (f.preview, p.not_placed) {
            self.not_dialled(agent, lead, why);
            self.start_preview();
            return;
        }
        let campaign = f.campaign;
        if !self.holds(campaign) {
            // Lost while its records were written: the new holder gives them their result.
            tracing::warn!(campaign, dials = p.dials.len(), "prepared dials of a campaign no longer held: not placed");
            return;
        }
        let shard = self.shard_of(campaign);
        let (ring_timeout, wait_limit, dtmf, waiting, predictive) = match self.campaigns.get_mut(&campaign) {
            Some(st) => {
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
        for d in p.dials {
            let call = d.call;
            self.numbers.insert(d.lead.tel.clone());
            self.calls.insert(
                call,
                LiveCall {
                    campaign,
                    job: d.job,
                    lead: d.lead.lead_id,
                    tel: d.lead.tel.clone(),
                    caller_id: d.caller_id.clone(),
                    shard,
                    launched: now.mono,
                    answered: None,
                    bridged: None,
                },
            );
            if let Some(st) = self.campaigns.get_mut(&campaign) {
                st.pacer.on_event(now.unix_ms, PacerEvent::Launched);
            }
            self.stats.launched += 1;
            metrics::counter!("kakeru_dialer_calls_launched_total").increment(1);
            if let Some((agent, _)) = f.preview {
                // Control attaches the call to its agent before any event of the call can arrive.
                self.stats.preview_placed += 1;
                self.publish(ShardEvent::PreviewPlaced {
                    call_id: CallId(call),
                    agent_id: AgentId(agent),
                    lead_id: LeadId(d.lead.lead_id as u64),
                });
            }
            let recording = p.recording_dir.as_ref().map(|dir| dir.join(format!("{call}.wav")));
            let cmd = DialCustomer {
                call,
                tenant_id: self.tenant,
                tel: d.lead.tel,
                caller_id: d.caller_id,
                ring_timeout,
                wait_limit,
                waiting_audio: waiting.clone(),
                abandon_message: self.cfg.abandon_message.clone(),
                recording,
                dtmf_result_entry: dtmf,
            };
            self.command(shard, Command::DialCustomer(Box::new(cmd)));
        }
        for job in p.exhausted {
            self.maybe_finish_job(campaign, job);
        }
        self.start_preview();
    }

    fn publish_status(&mut self) {
        let mut out = Vec::new();
        for (campaign, st) in &self.campaigns {
            if st.jobs.is_empty() {
                continue;
            }
            let in_flight = self.calls.values().filter(|c| c.campaign == *campaign && c.bridged.is_none()).count();
            let d = st.last_decision;
            metrics::gauge!("kakeru_pacer_dial_level", "campaign_id" => campaign.to_string())
                .set(d.map_or(0.0, |d| d.dial_level));
            metrics::gauge!("kakeru_pacer_predicted_abandon_ratio", "campaign_id" => campaign.to_string())
                .set(d.map_or(0.0, |d| d.predicted_abandon));
            out.push(ShardEvent::DialerStatus {
                campaign_id: CampaignId(*campaign),
                dials_in_flight: in_flight as u32,
                remaining_leads: st.remaining,
                dial_level_milli: d.map_or(0, |d| (d.dial_level * 1000.0).round().clamp(0.0, 1e9) as u32),
                predicted_abandon_ppm: d.map_or(0, |d| (d.predicted_abandon * 1e6).round().clamp(0.0, 1e6) as u32),
            });
        }
        for ev in out {
            self.publish(ev);
        }
    }

    // ------------------------------------------------------------------ stop

    fn begin_stop(&mut self, now: Now) {
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::CallsEnding(now.mono);
        // Not placed: the agents are given back (their leads stay held for them, unattempted).
        let asks: Vec<PreviewAsk> = self.previews.drain(..).collect();
        for ask in asks {
            self.release(ask.campaign, ask.job.caller_id.as_ref(), 1);
            self.not_dialled(ask.agent, ask.lead, "job_not_running");
        }
        self.end_calls_where(|_| true);
        self.next_tick = Some(now.mono);
    }

    /// Cancels the ringing calls and hangs up the answered ones that `which` picks; returns them.
    fn end_calls_where(&mut self, which: impl Fn(&LiveCall) -> bool) -> Vec<u64> {
        let calls: Vec<(u64, usize, bool)> =
            self.calls.iter().filter(|(_, c)| which(c)).map(|(id, c)| (*id, c.shard, c.answered.is_some())).collect();
        let mut ids = Vec::with_capacity(calls.len());
        for (call, shard, answered) in calls {
            let command = if answered {
                Command::HangUpCustomer { call, by: Party::System }
            } else {
                Command::Cancel { call, reason: CancelReason::Stopped }
            };
            self.command(shard, command);
            ids.push(call);
        }
        ids
    }

    fn hang_up_legs(&mut self, now: Now) {
        self.phase = Phase::LegsDown(now.mono);
        let legs: Vec<(u64, usize)> = self.agents.iter().filter_map(|(a, i)| i.leg_shard.map(|s| (*a, s))).collect();
        for (agent, shard) in legs {
            self.command(shard, Command::HangUpAgent { agent });
        }
        self.next_tick = Some(now.mono);
    }

    /// Whatever did not end in time still gets a result.
    fn finish_stop(&mut self, now: Now) {
        let left: Vec<u64> = self.calls.keys().copied().collect();
        for call in left {
            let end = CallEnd::unsent(calls::EndCause::Cancelled(CancelReason::Stopped), "dialer stopped");
            self.on_call_ended(now, call, end);
        }
        self.phase = Phase::Stopped;
        self.next_tick = None;
    }
}

/// The shard a campaign lives on.
pub fn shard_of(campaign: u64, shards: usize) -> usize {
    (campaign % shards.max(1) as u64) as usize
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The pacer of a campaign's mode.
fn pacer_for(job: &RunningJob, now_ms: u64) -> Box<dyn Pacer + Send + Sync> {
    match job.mode.as_str() {
        "predictive" => {
            let tz = store::tenancy::parse_tz(&job.time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
            let offset = {
                use chrono::Offset;
                use chrono::TimeZone;
                let at = chrono::DateTime::from_timestamp_millis(i(now_ms)).unwrap_or_default().naive_utc();
                tz.offset_from_utc_datetime(&at).fix().local_minus_utc()
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

/// The first business end (業務終了時間) after the job's start, in Unix ms: that day's end if it
/// started before it, else the next day's (a job started early waits for the hours, then runs to
/// their end). `None` for a job never started or hours that do not parse.
pub fn business_end_after_start(job: &RunningJob) -> Option<u64> {
    use chrono::TimeZone;
    let tz = store::tenancy::parse_tz(&job.time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
    let started = chrono::DateTime::from_timestamp_millis(job.started_at?)?.with_timezone(&tz);
    let end = chrono::NaiveTime::parse_from_str(&job.business_end, "%H:%M").ok()?;
    let day = if started.time() < end { started.date_naive() } else { started.date_naive().succ_opt()? };
    let at = tz.from_local_datetime(&day.and_time(end)).earliest()?;
    u64::try_from(at.timestamp_millis()).ok()
}

/// Whether `now` is inside the campaign's business hours in the tenant's zone, on a day the tenant
/// is open (not a national holiday it keeps, not one of its closed dates).
pub fn in_business_hours(job: &RunningJob, now_ms: u64) -> bool {
    let tz = store::tenancy::parse_tz(&job.time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
    let local = chrono::DateTime::from_timestamp_millis(i(now_ms)).unwrap_or_default().with_timezone(&tz);
    if store::calendar::is_closed(local.date_naive(), job.national_holidays, &job.closed_days).is_some() {
        return false;
    }
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
