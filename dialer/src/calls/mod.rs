//! Call control on one shard, sans-IO: the SIP user agent of the dialer (RFC 3261 UAC towards the
//! carrier trunk and the agents' phones, registrar for the phones) and the media wiring of every
//! call it places, as [`media::shard::Control`]s for the shard's calls.
//!
//! One [`CallControl`] per shard, next to the shard's media calls (the `shard` module runs it on the
//! shard's thread). It never reads a clock, owns no socket, spawns nothing and takes no lock: time
//! arrives as a [`Now`] (monotonic and wall clock), randomness through the RNG given to
//! [`CallControl::new`], RTP ports as a free list the driver keeps topped up
//! ([`CallControl::add_rtp_ports`]).
//!
//! Run loop of a driver:
//! ```text
//! input:  handle_datagram(now, from, bytes) | handle_command(now, cmd) | handle_media(now, report)
//!         | handle_timeout(now) when poll_timeout() passed
//! drain:  poll_transmit() -> SIP datagrams from the shard's SIP socket
//!         poll_media()    -> media::shard::Control for the shard's calls, ports to close
//!         poll_event()    -> what happened (answered, bridged, ended with its outcome, legs, ...)
//! ```
//!
//! The two kinds of calls:
//! - a **customer call** ([`DialCustomer`]): INVITE to the carrier, ring timeout (CANCEL), answer
//!   (ACK, the customer's own media call playing waiting audio), then either a [`Command::Bridge`]
//!   moves the customer's leg onto the agent's media call (the agent hears the beep, recording
//!   starts) or the wait limit passes and the customer hears the campaign's message and is released
//!   (abandoned: 破棄呼). Every customer call ends with exactly one [`CallEvent::CustomerEnded`].
//! - an **agent leg** ([`DialAgent`]): the nailed-up leg to the agent's phone: INVITE, answer, hold
//!   audio on the agent's media call; it stays up across customers until the phone or the dialer
//!   hangs up. After a customer hangs up, the agent may key a result on the phone (DTMF result
//!   entry, [`dtmf_entry`]).

pub mod browser;
pub mod dtmf_entry;
pub mod outside;
pub mod park_keys;
pub mod phones;
pub mod supervise;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use media::shard::{CallId as MediaCallId, Control, Report};
use media::{CallConfig, Clip, LegConfig, RecordingId, Role, SocketId};
use rand::RngCore;
use sip::auth::{Credentials, NonceKeys};
use sip::dialog::{self, Dialog, InviteParams};
use sip::message::{response_to, Method, Request, Response};
use sip::sdp::{self, LocalMedia, Negotiated};
use sip::{Endpoint, Event as SipEvent, TxId};

pub use browser::DialBrowser;
pub use dtmf_entry::{DtmfEntry, EntryError, EntryParser};
pub use outside::{conference_leg_id, ConferenceEnd, OutsideFailure, TransferOutside};
pub use park_keys::{ParkKeyParser, ParkKeys};
pub use phones::{Account, AuthStats, DigestChallenges, PhoneSettings, Phones};
pub use supervise::{Supervise, SupervisionEnd, SupervisorPhone};

/// Payload type we offer for RFC 4733 telephone-event.
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// The prefix that withholds the caller ID in Japan (非通知).
pub const WITHHOLD_PREFIX: &str = "184";
/// A CANCELled INVITE that gets no final response is given up after this long.
const CANCEL_GRACE: Duration = Duration::from_secs(32);
/// An abandon message longer than this is cut (the customer is released anyway).
const ABANDON_MESSAGE_MAX: Duration = Duration::from_secs(30);
/// Most events or media controls waiting for the driver.
pub const MAX_QUEUED: usize = 65_536;

/// Media call ids on the shard: a customer's own media call, and an agent's nailed-up media call.
const CUSTOMER_MEDIA: u64 = 1 << 62;
const AGENT_MEDIA: u64 = 2 << 62;

/// The media call of a customer call (before it is bridged).
pub fn customer_media_call(call: u64) -> MediaCallId {
    MediaCallId(CUSTOMER_MEDIA | (call & (CUSTOMER_MEDIA - 1)))
}

/// The media call of an agent's nailed-up leg (customers are moved onto it when bridged).
pub fn agent_media_call(agent: u64) -> MediaCallId {
    MediaCallId(AGENT_MEDIA | (agent & (CUSTOMER_MEDIA - 1)))
}

/// Time as the driver reads it: monotonic for timers, wall clock for digest nonces, RTCP and logs.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub mono: Instant,
    pub unix_ms: u64,
}

/// Settings of one shard's call control.
#[derive(Clone, Debug)]
pub struct Config {
    /// The shard's SIP socket (datagrams are sent from it).
    pub sip_socket: SocketId,
    /// Our SIP address: Via sent-by and Contact.
    pub local_sip: SocketAddr,
    /// The carrier trunk: every customer INVITE and its in-dialog requests go there.
    pub carrier: SocketAddr,
    /// Host part of the carrier's Request-URIs (`sip:<tel>@<carrier_domain>`).
    pub carrier_domain: String,
    /// Our domain in From of customer calls.
    pub domain: String,
    /// Digest credentials when the carrier challenges our INVITEs.
    pub carrier_credentials: Option<Credentials>,
    /// The agents' phones: nonce secrets, registrar bounds, limits on failed authentication.
    pub phones: PhoneSettings,
    /// Transaction layer settings (`sent_by` is set from `local_sip`).
    pub sip: sip::Config,
    /// Most customer calls plus agent legs at once.
    pub max_calls: usize,
    /// Looped to an agent between customers.
    pub hold_audio: Option<Clip>,
    /// Played over the customer's audio to the agent when bridged.
    pub bridge_beep: Option<Clip>,
    /// DTMF result entry: keys more than this apart start over.
    pub dtmf_digit_timeout: Duration,
    /// DTMF result entry: how long after the customer left the agent may key a result.
    pub dtmf_entry_window: Duration,
}

impl Config {
    pub fn new(local_sip: SocketAddr, carrier: SocketAddr) -> Config {
        let mut sip = sip::Config::new(local_sip.to_string());
        // Each set-up keeps its INVITE transaction in RFC 6026 Accepted for timer M (32 s): 4,000
        // set-ups a second (past one shard's saturation, bench/RESULTS.md) keep ~128,000 of them,
        // plus the BYEs'. Accepted ones hold no retransmit copy, so the room costs little.
        sip.max_transactions = 262_144;
        Config {
            sip_socket: SocketId(0),
            local_sip,
            carrier,
            carrier_domain: carrier.ip().to_string(),
            domain: local_sip.ip().to_string(),
            carrier_credentials: None,
            // A secret of this process alone; a deployment gives every shard its own (`phones`).
            phones: PhoneSettings::new(NonceKeys::generate(&mut rand::thread_rng())),
            sip,
            max_calls: 20_000,
            hold_audio: None,
            bridge_beep: None,
            dtmf_digit_timeout: Duration::from_secs(10),
            dtmf_entry_window: Duration::from_secs(120),
        }
    }
}

/// Place a customer call.
#[derive(Clone, Debug)]
pub struct DialCustomer {
    /// The dialer's call id (unique per tenant; the call record's id).
    pub call: u64,
    pub tenant_id: u64,
    /// Digits only, leading 0.
    pub tel: String,
    /// 発信者番号; `None` withholds it (184 prefix).
    pub caller_id: Option<String>,
    /// タイムアウト: CANCEL when not answered by then.
    pub ring_timeout: Duration,
    /// 待ち呼タイムアウト: released with `abandon_message` when not bridged by then.
    pub wait_limit: Duration,
    /// 呼中音声: looped to the customer while waiting for an agent.
    pub waiting_audio: Option<Clip>,
    /// Played before releasing a customer no agent took.
    pub abandon_message: Option<Clip>,
    /// Record the call here once bridged (stereo G.711 WAV).
    pub recording: Option<PathBuf>,
    /// Collect a DTMF result from the agent after the customer leaves.
    pub dtmf_result_entry: bool,
}

/// Call an agent's phone (nailed-up leg).
#[derive(Clone, Debug)]
pub struct DialAgent {
    pub agent: u64,
    pub tenant_id: u64,
    /// The registered contact URI (Request-URI).
    pub target: String,
    /// Where the REGISTER came from (the INVITE goes there).
    pub dest: SocketAddr,
}

/// Who ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    Customer,
    Agent,
    System,
}

/// Why we CANCEL a customer call that still rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// タイムアウト passed.
    RingTimeout,
    /// The dialer is stopping (shutdown): 停止.
    Stopped,
    /// Asked to hang up before the answer.
    HungUp,
}

/// What the driver asks.
#[derive(Clone, Debug)]
pub enum Command {
    DialCustomer(Box<DialCustomer>),
    DialAgent(DialAgent),
    /// The agent's leg as a browser phone (its page's WebRTC offer), or a new offer on it.
    DialBrowser(DialBrowser),
    /// Move the answered customer onto the agent's leg (beep, audio, recording).
    Bridge {
        call: u64,
        agent: u64,
    },
    /// Hang up the customer (お客様通話切断 from the agent's UI, or the system); a call still
    /// ringing is CANCELled.
    HangUpCustomer {
        call: u64,
        by: Party,
    },
    /// Release an answered customer no agent will take: the campaign's message, then BYE.
    Abandon {
        call: u64,
    },
    /// Put a bridged customer back to waiting (its agent did not take it).
    Unbridge {
        call: u64,
    },
    /// CANCEL a ringing customer call (shutdown).
    Cancel {
        call: u64,
        reason: CancelReason,
    },
    /// Hang up the agent's leg (log off).
    HangUpAgent {
        agent: u64,
    },
    /// The agents' SIP accounts (replaces the set).
    SetAccounts(Vec<Account>),
    /// The nonce secrets (a rotation: the new one first, the old ones still verifying).
    SetNonceKeys(NonceKeys),
    /// A supervisor joins a bridged call from their phone, or changes mode on it
    /// ([`supervise`]).
    Supervise(Supervise),
    /// The supervisor's leg ends.
    EndSupervision {
        supervisor: u64,
    },
    /// 保留 (`held`) of a bridged customer, or back.
    Hold {
        call: u64,
        held: bool,
    },
    /// パーク保留: the bridged customer waits (waiting audio, as when put back to waiting) under a
    /// park number for `hold` (the park limit), then the call's own wait limit.
    Park {
        call: u64,
        hold: Duration,
    },
    /// 外線転送 of a bridged customer to an outside number ([`outside`]).
    TransferOutside(TransferOutside),
    /// 電話会議: call an outside number as the third party of the agent's call ([`outside`]).
    Conference(TransferOutside),
    /// Drop the conference's third party (or stop calling it).
    EndConference {
        call: u64,
    },
    /// The agent leaves the conference: the customer and the third party go on.
    LeaveConference {
        call: u64,
    },
}

/// How a customer call ended (exactly one per [`DialCustomer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEnd {
    /// Final SIP status of the INVITE (200 when answered; 408 for no response; 0 when never sent).
    pub status: u16,
    pub reason: String,
    pub cause: EndCause,
    pub ended_by: Party,
    pub answered: bool,
    /// The agent it was bridged to, if it was.
    pub agent: Option<u64>,
    /// From the INVITE to the final response.
    pub ring_ms: u64,
    /// From the answer to the bridge (or to the release).
    pub wait_ms: u64,
    /// Bridged to the end.
    pub talk_ms: u64,
}

impl CallEnd {
    /// The end of a call that never reached the carrier (or was given up without an answer).
    pub fn unsent(cause: EndCause, reason: &str) -> CallEnd {
        CallEnd {
            status: 0,
            reason: reason.to_string(),
            cause,
            ended_by: Party::System,
            answered: false,
            agent: None,
            ring_ms: 0,
            wait_ms: 0,
            talk_ms: 0,
        }
    }
}

/// The reason behind a [`CallEnd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// Answered, then hung up (by either side) after being bridged.
    Completed,
    /// Answered, no agent within the wait limit (or the queue was full): 破棄呼.
    Abandoned,
    /// A final failure response from the carrier (`status`).
    Rejected,
    /// We CANCELled it.
    Cancelled(CancelReason),
    /// No response at all (timer B) or the transaction layer refused to send.
    Transport,
    /// The answer's SDP could not be used (no common codec, bad body).
    Media,
    /// No RTP port or the shard is full.
    Capacity,
}

/// What happened, for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// 180/183 from the carrier.
    CustomerRinging {
        call: u64,
    },
    /// The customer answered (waits for an agent: 待ち呼).
    CustomerAnswered {
        call: u64,
        ring_ms: u64,
    },
    /// The customer is bridged to the agent.
    Bridged {
        call: u64,
        agent: u64,
    },
    /// A bridge could not be made (the customer or the agent leg is gone, or busy).
    BridgeFailed {
        call: u64,
        agent: u64,
        reason: &'static str,
    },
    CustomerEnded {
        call: u64,
        end: CallEnd,
    },
    AgentLegUp {
        agent: u64,
    },
    AgentLegDown {
        agent: u64,
    },
    /// The shard's SDP answer to a browser phone's offer (for the agent's page).
    BrowserAnswer {
        agent: u64,
        sdp: String,
    },
    /// A browser phone's offer was refused or its leg failed (for the agent's page, in words).
    BrowserFailed {
        agent: u64,
        error: String,
    },
    /// The phone refused or did not answer the nailed-up leg.
    AgentUnreachable {
        agent: u64,
        status: u16,
    },
    /// A phone registered (or refreshed; `expires_s` 0 = unregistered).
    Registered {
        tenant_id: u64,
        user_id: Option<u64>,
        username: String,
        contact: String,
        source: SocketAddr,
        expires_s: u32,
    },
    /// The agent keyed a result after `call` ended.
    DtmfEntry {
        agent: u64,
        call: u64,
        entry: DtmfEntry,
    },
    /// パーク保留: the agent keyed `#72` while talking with `call`.
    ParkKeyed {
        agent: u64,
        call: u64,
    },
    /// パーク応答: the agent keyed a park number while on no call.
    PickUpKeyed {
        agent: u64,
        number: u16,
    },
    /// A recording file was closed.
    RecordingClosed {
        call: u64,
        path: PathBuf,
        bytes: u64,
        error: Option<String>,
    },
    /// A supervisor's phone answered and their leg joined `call` in `mode`, or changed mode.
    SupervisorJoined {
        supervisor: u64,
        call: u64,
        mode: media::SupervisorMode,
    },
    /// The shard's SDP answer to a supervisor's browser phone (for the supervisor's page).
    SupervisorBrowserAnswer {
        supervisor: u64,
        call: u64,
        sdp: String,
    },
    /// A supervisor's browser phone was refused or failed (for the page, in words); its
    /// [`CallEvent::SupervisorLeft`] follows.
    SupervisorBrowserFailed {
        supervisor: u64,
        call: u64,
        error: String,
    },
    /// A supervisor's leg ended (or never joined).
    SupervisorLeft {
        supervisor: u64,
        call: u64,
        reason: SupervisionEnd,
    },
    /// 外線転送: the outside party answered and talks with the customer; `agent` is free.
    OutsideAnswered {
        call: u64,
        agent: u64,
    },
    /// 外線転送: the outside party did not answer (final `status`, or 408/503 of ours): the customer
    /// is back with `agent` (or hung up, when the agent's leg is gone).
    OutsideFailed {
        call: u64,
        agent: u64,
        status: u16,
        reason: OutsideFailure,
    },
    /// 電話会議: the third party answered; the three hear each other.
    ConferenceJoined {
        call: u64,
        agent: u64,
    },
    /// 電話会議: the third party left (or never came), and why.
    ConferenceEnded {
        call: u64,
        agent: u64,
        reason: ConferenceEnd,
    },
}

/// What the driver must do to the shard.
#[derive(Debug)]
pub enum MediaOp {
    Control(Control),
    /// The RTP port is no longer used: close its socket.
    ClosePort(SocketId),
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub customer_calls: u64,
    pub answered: u64,
    pub bridged: u64,
    pub abandoned: u64,
    pub agent_legs: u64,
    /// The carrier's challenges we answered.
    pub auth_challenges: u64,
    /// The phones' side: challenges, failures, refusals, registrations.
    pub phones: AuthStats,
    pub no_port: u64,
    pub events_dropped: u64,
    pub dtmf_entries: u64,
    pub dtmf_errors: u64,
    pub stray_requests: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Owner {
    Customer(u64),
    Agent(u64),
    /// A supervisor's leg, by the supervisor's user id.
    Supervisor(u64),
    /// The outside leg of a customer call (外線転送), by the customer call.
    Outside(u64),
}

/// A phone INVITEd by [`CallControl::invite_phone`].
struct PhoneInvite {
    tx: TxId,
    invite: Request,
    port: (SocketId, SocketAddr),
    local_sdp: Vec<u8>,
}

#[derive(Debug)]
enum CustomerState {
    /// INVITE sent, no final response.
    Inviting,
    /// Answered, waiting for an agent.
    Waiting,
    /// On an agent's leg.
    Bridged { agent: u64, at: Instant },
    /// Hearing the abandon message; BYE when it ends.
    Abandoning,
    /// 外線転送: off the agent's leg (waiting audio) while the outside leg rings (`agent`: whom it
    /// goes back to), then with the outside party (`agent` `None`); `at`: when first bridged.
    Outside { agent: Option<u64>, at: Instant },
}

#[derive(Debug)]
struct Customer {
    cmd: Box<DialCustomer>,
    state: CustomerState,
    tx: TxId,
    invite: Request,
    dialog: Option<Dialog>,
    port: (SocketId, SocketAddr),
    launched: Instant,
    answered: Option<Instant>,
    ring_ms: u64,
    cancel: Option<CancelReason>,
    authed: bool,
    /// Deadline of the current phase (ring timeout, cancel grace, wait limit, abandon message).
    deadline: Option<Instant>,
    local_sdp: Vec<u8>,
    media_up: bool,
    /// When the wait for an agent ended (bridge or the start of the abandon message).
    wait_end: Option<Instant>,
}

#[derive(Debug, PartialEq, Eq)]
enum AgentState {
    Inviting,
    Up,
}

#[derive(Debug)]
struct Agent {
    cmd: DialAgent,
    state: AgentState,
    tx: TxId,
    invite: Request,
    dialog: Option<Dialog>,
    port: (SocketId, SocketAddr),
    local_sdp: Vec<u8>,
    customer: Option<u64>,
    /// The call whose result the agent may key, until the deadline.
    entry: Option<(u64, Instant)>,
    parser: EntryParser,
    /// `#72` in a call, a park number out of one ([`park_keys`]).
    park_keys: ParkKeyParser,
    /// A browser phone's leg (WebRTC on the shard, no SIP dialog: `browser`).
    browser: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Customer(u64),
    Outside(u64),
}

/// The call control of one shard. See the module docs.
pub struct CallControl {
    cfg: Config,
    endpoint: Endpoint,
    rng: Box<dyn RngCore + Send>,
    customers: HashMap<u64, Customer>,
    agents: HashMap<u64, Agent>,
    supervisors: HashMap<u64, supervise::SupervisorLeg>,
    /// Outside legs (外線転送), by their customer call.
    outside: HashMap<u64, outside::OutsideLeg>,
    /// Client transactions we started, to their call.
    tx_owner: HashMap<TxId, Owner>,
    /// SIP Call-ID of every dialog, to its call (in-dialog requests).
    call_ids: HashMap<String, Owner>,
    /// Customer phase deadlines, lazily deleted.
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    ports: Vec<(SocketId, SocketAddr)>,
    phones: Phones,
    media: VecDeque<MediaOp>,
    events: VecDeque<CallEvent>,
    stats: Stats,
    session_version: u64,
}

impl std::fmt::Debug for CallControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallControl")
            .field("customers", &self.customers.len())
            .field("agents", &self.agents.len())
            .field("stats", &self.stats)
            .finish()
    }
}

fn elapsed_ms(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_millis()).unwrap_or(u64::MAX)
}

/// RFC 3550 NTP timestamp (64-bit fixed point) of a Unix time in ms.
fn ntp_of(unix_ms: u64) -> u64 {
    let secs = unix_ms / 1000 + 2_208_988_800;
    let frac = ((unix_ms % 1000) << 32) / 1000;
    (secs << 32) | frac
}

fn media_codec(c: sdp::Codec) -> media::Codec {
    match c {
        sdp::Codec::Pcmu => media::Codec::Pcmu,
        sdp::Codec::Pcma => media::Codec::Pcma,
    }
}

impl CallControl {
    pub fn new(mut cfg: Config, mut rng: Box<dyn RngCore + Send>) -> CallControl {
        cfg.sip.sent_by = cfg.local_sip.to_string();
        let mut seed = [0u8; 8];
        rng.fill_bytes(&mut seed);
        let sip_rng = Box::new(<rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(u64::from_le_bytes(seed)));
        let endpoint = Endpoint::new(cfg.sip.clone(), sip_rng);
        CallControl {
            endpoint,
            rng,
            customers: HashMap::new(),
            agents: HashMap::new(),
            supervisors: HashMap::new(),
            outside: HashMap::new(),
            tx_owner: HashMap::new(),
            call_ids: HashMap::new(),
            timers: BinaryHeap::new(),
            ports: Vec::new(),
            phones: Phones::new(cfg.phones.clone()),
            media: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            session_version: 1,
            cfg,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        Stats { phones: self.phones.stats(), ..self.stats }
    }

    /// The transaction layer's counters (drops by reason, retransmissions, timeouts).
    pub fn sip_stats(&self) -> &sip::transaction::Stats {
        self.endpoint.stats()
    }

    pub fn customer_calls(&self) -> usize {
        self.customers.len()
    }

    pub fn agent_legs(&self) -> usize {
        self.agents.len()
    }

    /// Free RTP ports.
    pub fn free_ports(&self) -> usize {
        self.ports.len()
    }

    /// Bound RTP sockets the driver handed to the shard, free for new legs.
    pub fn add_rtp_ports(&mut self, ports: impl IntoIterator<Item = (SocketId, SocketAddr)>) {
        self.ports.extend(ports);
    }

    pub fn poll_transmit(&mut self) -> Option<sip::Transmit> {
        self.endpoint.poll_transmit()
    }

    pub fn poll_media(&mut self) -> Option<MediaOp> {
        self.media.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// When [`CallControl::handle_timeout`] is next due (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.timers.peek().map(|Reverse((at, _))| *at);
        [ours, self.endpoint.poll_timeout(), self.phones.poll_timeout()].into_iter().flatten().min()
    }

    fn emit(&mut self, e: CallEvent) {
        if self.events.len() >= MAX_QUEUED {
            self.stats.events_dropped += 1;
            tracing::warn!(?e, "call event queue full");
            return;
        }
        self.events.push_back(e);
    }

    fn control(&mut self, c: Control) {
        self.media.push_back(MediaOp::Control(c));
    }

    fn token(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| ALPHABET[(self.rng.next_u32() as usize) % ALPHABET.len()] as char).collect()
    }

    fn local_media(&mut self, port: SocketAddr) -> LocalMedia {
        self.session_version += 1;
        LocalMedia {
            session_id: u64::from(self.rng.next_u32()),
            session_version: self.session_version,
            ..our_media(port)
        }
    }

    fn leg(&mut self, port: SocketId, n: &Negotiated, inband_dtmf: bool) -> LegConfig {
        LegConfig {
            rtp_socket: port,
            rtcp_socket: None,
            remote_rtp: SocketAddr::new(n.remote_addr, n.remote_port),
            remote_rtcp: None,
            codec: media_codec(n.codec),
            telephone_event_pt: n.telephone_event,
            ssrc: self.rng.next_u32(),
            initial_seq: self.rng.next_u32() as u16,
            initial_timestamp: self.rng.next_u32(),
            inband_dtmf: inband_dtmf && n.telephone_event.is_none(),
        }
    }

    fn schedule(&mut self, key: TimerKey, at: Instant) {
        self.timers.push(Reverse((at, key)));
    }

    // ---------------------------------------------------------------- inputs

    /// A datagram on the shard's SIP socket.
    pub fn handle_datagram(&mut self, now: Now, from: SocketAddr, data: &[u8]) {
        self.endpoint.handle_datagram(now.mono, from, data);
        self.drain_sip(now);
    }

    /// The deadline from [`CallControl::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Now) {
        self.endpoint.handle_timeout(now.mono);
        self.drain_sip(now);
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now.mono {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Customer(call) => self.customer_deadline(now, call, at),
                TimerKey::Outside(call) => self.outside_deadline(now, call, at),
            }
        }
        if self.phones.poll_timeout().is_some_and(|at| at <= now.mono) {
            for e in self.phones.handle_timeout(now.mono) {
                self.emit(e);
            }
        }
        self.drain_sip(now);
    }

    pub fn handle_command(&mut self, now: Now, cmd: Command) {
        match cmd {
            Command::DialCustomer(c) => self.dial_customer(now, c),
            Command::DialAgent(a) => self.dial_agent(now, a),
            Command::DialBrowser(b) => self.dial_browser(now, b),
            Command::Bridge { call, agent } => self.bridge(now, call, agent),
            Command::HangUpCustomer { call, by } => self.hang_up_customer(now, call, by),
            Command::Abandon { call } => self.abandon(now, call),
            Command::Unbridge { call } => self.unbridge(now, call),
            Command::Cancel { call, reason } => self.cancel_customer(now, call, reason),
            Command::HangUpAgent { agent } => self.hang_up_agent(now, agent),
            Command::SetAccounts(accounts) => self.phones.set_accounts(accounts),
            Command::SetNonceKeys(keys) => self.phones.set_nonce_keys(keys),
            Command::Supervise(s) => self.supervise(now, s),
            Command::Hold { call, held } => {
                if let Some(CustomerState::Bridged { agent, .. }) = self.customers.get(&call).map(|c| &c.state) {
                    let call = agent_media_call(*agent);
                    self.control(Control::SetHold { call, held });
                }
            }
            Command::Park { call, hold } => self.park(now, call, hold),
            Command::EndSupervision { supervisor } => {
                self.end_supervision(now, supervisor, SupervisionEnd::Stopped, true)
            }
            Command::TransferOutside(t) => self.transfer_outside(now, t, false),
            Command::Conference(t) => self.transfer_outside(now, t, true),
            Command::EndConference { call } => self.end_conference(now, call, ConferenceEnd::Dropped),
            Command::LeaveConference { call } => self.leave_conference(now, call),
        }
        self.drain_sip(now);
    }

    /// A report of the shard about one of our media calls.
    pub fn handle_media(&mut self, now: Now, report: &Report) {
        if self.on_browser_report(now, report) {
            return self.drain_sip(now);
        }
        match report {
            Report::SupervisorWebRtc { id, event, .. } => self.on_supervisor_webrtc(now, *id, event),
            Report::Event { call, event: media::Event::Dtmf { role: Role::Agent, digit, .. } } => {
                if let Some(agent) = self.agent_of_media(*call) {
                    self.agent_key(now, agent, *digit);
                }
            }
            Report::Event { call, event: media::Event::PromptFinished { role: Role::Customer } } => {
                // The abandon message ended: release the customer.
                if let Some(c) = self.customer_of_media(*call) {
                    if matches!(self.customers.get(&c).map(|x| &x.state), Some(CustomerState::Abandoning)) {
                        self.end_answered(now, c, Party::System, EndCause::Abandoned);
                    }
                }
            }
            Report::RecordingClosed { id, path, bytes, error, .. } => {
                self.emit(CallEvent::RecordingClosed {
                    call: id.0,
                    path: path.clone(),
                    bytes: *bytes,
                    error: error.clone(),
                });
            }
            Report::LegReleased { role: Role::Customer, .. } => {}
            _ => {}
        }
        self.drain_sip(now);
    }

    fn customer_of_media(&self, m: MediaCallId) -> Option<u64> {
        (m.0 & (3 << 62) == CUSTOMER_MEDIA).then_some(m.0 & (CUSTOMER_MEDIA - 1))
    }

    fn agent_of_media(&self, m: MediaCallId) -> Option<u64> {
        (m.0 & (3 << 62) == AGENT_MEDIA).then_some(m.0 & (CUSTOMER_MEDIA - 1))
    }

    // ---------------------------------------------------------------- customer calls

    fn take_port(&mut self) -> Option<(SocketId, SocketAddr)> {
        let p = self.ports.pop();
        if p.is_none() {
            self.stats.no_port += 1;
        }
        p
    }

    fn at_capacity(&self) -> bool {
        self.customers.len() + self.agents.len() + self.supervisors.len() + self.outside.len() >= self.cfg.max_calls
    }

    fn end_unsent(&mut self, call: u64, cause: EndCause, reason: &str) {
        self.emit(CallEvent::CustomerEnded { call, end: CallEnd::unsent(cause, reason) });
    }

    fn dial_customer(&mut self, now: Now, cmd: Box<DialCustomer>) {
        let call = cmd.call;
        if self.customers.contains_key(&call) {
            tracing::warn!(call, "customer call already on this shard");
            return;
        }
        if self.at_capacity() {
            return self.end_unsent(call, EndCause::Capacity, "shard full");
        }
        let Some(port) = self.take_port() else {
            return self.end_unsent(call, EndCause::Capacity, "no RTP port");
        };
        let (invite, call_id, local_sdp) = self.carrier_invite(port.1, &cmd.tel, cmd.caller_id.as_deref());
        let tx = match self.endpoint.send_request(now.mono, self.cfg.carrier, invite.clone()) {
            Ok(tx) => tx,
            Err(e) => {
                self.ports.push(port);
                return self.end_unsent(call, EndCause::Transport, &e.to_string());
            }
        };
        self.stats.customer_calls += 1;
        self.tx_owner.insert(tx, Owner::Customer(call));
        self.call_ids.insert(call_id, Owner::Customer(call));
        let deadline = now.mono + cmd.ring_timeout;
        self.schedule(TimerKey::Customer(call), deadline);
        self.customers.insert(
            call,
            Customer {
                cmd,
                state: CustomerState::Inviting,
                tx,
                invite,
                dialog: None,
                port,
                launched: now.mono,
                answered: None,
                ring_ms: 0,
                cancel: None,
                authed: false,
                deadline: Some(deadline),
                local_sdp,
                media_up: false,
                wait_end: None,
            },
        );
    }

    /// An INVITE to the carrier for `tel` from RTP address `port`, from `caller_id` (`None`
    /// withholds it: 184 and Privacy), with its Call-ID and our SDP offer.
    fn carrier_invite(&mut self, port: SocketAddr, tel: &str, caller_id: Option<&str>) -> (Request, String, Vec<u8>) {
        let local = self.local_media(port);
        let local_sdp = sdp::offer(&local);
        let (uri_user, from) = match caller_id {
            Some(cid) => (tel.to_string(), format!("<sip:{cid}@{}>", self.cfg.domain)),
            None => (format!("{WITHHOLD_PREFIX}{tel}"), "\"Anonymous\" <sip:anonymous@anonymous.invalid>".into()),
        };
        let call_id = format!("{}@{}", self.token(16), self.cfg.local_sip.ip());
        let from_tag = self.token(10);
        let mut invite = dialog::invite(&InviteParams {
            request_uri: format!("sip:{uri_user}@{}", self.cfg.carrier_domain),
            from,
            to: format!("sip:{tel}@{}", self.cfg.carrier_domain),
            contact: format!("sip:kakeru@{}", self.cfg.local_sip),
            call_id: call_id.clone(),
            from_tag,
            sdp: Some(local_sdp.clone()),
        });
        if caller_id.is_none() {
            invite.headers.push("Privacy", "id");
        }
        (invite, call_id, local_sdp)
    }

    fn customer_deadline(&mut self, now: Now, call: u64, at: Instant) {
        let Some(c) = self.customers.get(&call) else { return };
        if c.deadline != Some(at) {
            return; // rescheduled
        }
        match c.state {
            CustomerState::Inviting => {
                if c.cancel.is_some() {
                    // CANCELled and no final response within the grace period: give up.
                    let reason = c.cancel.unwrap_or(CancelReason::RingTimeout);
                    self.end_unanswered(now, call, 408, "no response to CANCEL", EndCause::Cancelled(reason));
                } else {
                    self.cancel_customer(now, call, CancelReason::RingTimeout);
                }
            }
            CustomerState::Waiting => self.abandon(now, call),
            CustomerState::Abandoning => self.end_answered(now, call, Party::System, EndCause::Abandoned),
            CustomerState::Bridged { .. } | CustomerState::Outside { .. } => {}
        }
    }

    fn set_deadline(&mut self, call: u64, at: Option<Instant>) {
        if let Some(c) = self.customers.get_mut(&call) {
            c.deadline = at;
        }
        if let Some(at) = at {
            self.schedule(TimerKey::Customer(call), at);
        }
    }

    fn cancel_customer(&mut self, now: Now, call: u64, reason: CancelReason) {
        let Some(c) = self.customers.get_mut(&call) else { return };
        if !matches!(c.state, CustomerState::Inviting) || c.cancel.is_some() {
            return;
        }
        c.cancel = Some(reason);
        let tx = c.tx;
        match self.endpoint.cancel(now.mono, tx) {
            Ok(Some(cancel_tx)) => {
                self.tx_owner.insert(cancel_tx, Owner::Customer(call));
            }
            Ok(None) => {} // sent once a provisional arrives (or a final already did)
            Err(_) => {}
        }
        self.set_deadline(call, Some(now.mono + CANCEL_GRACE));
    }

    fn on_customer_response(&mut self, now: Now, call: u64, tx: TxId, resp: Response) {
        let Some(c) = self.customers.get_mut(&call) else { return };
        let cseq_method = resp.cseq().map(|c| c.method);
        if cseq_method != Some(Method::Invite) {
            return; // BYE / CANCEL responses: nothing to do
        }
        if tx != c.tx {
            return; // a response of an INVITE we replaced (digest retry)
        }
        if resp.status < 200 {
            if resp.status >= 180 {
                self.emit(CallEvent::CustomerRinging { call });
            }
            return;
        }
        if resp.is_success() {
            if let Some(d) = &c.dialog {
                // A retransmitted 2xx: ACK it again (RFC 6026).
                let ack = d.ack(d.invite_seq, None);
                self.endpoint.send_ack(self.cfg.carrier, ack);
                return;
            }
            let Some(d) = Dialog::uac(&c.invite, &resp) else {
                return self.end_unanswered(now, call, 500, "unusable 2xx", EndCause::Media);
            };
            let ack = d.ack(d.invite_seq, None);
            self.endpoint.send_ack(self.cfg.carrier, ack);
            c.dialog = Some(d);
            c.answered = Some(now.mono);
            c.ring_ms = elapsed_ms(c.launched, now.mono);
            if c.cancel.is_some() {
                // Answered despite our CANCEL: hang up at once.
                let reason = c.cancel.unwrap_or(CancelReason::RingTimeout);
                return self.end_answered(now, call, Party::System, EndCause::Cancelled(reason));
            }
            let Some(n) = negotiate(c.port.1, &resp.body) else {
                return self.end_answered(now, call, Party::System, EndCause::Media);
            };
            let port = c.port.0;
            let waiting = c.cmd.waiting_audio.clone();
            let wait_limit = c.cmd.wait_limit;
            c.state = CustomerState::Waiting;
            c.media_up = true;
            let ring_ms = c.ring_ms;
            let leg = self.leg(port, &n, false);
            let m = customer_media_call(call);
            let cfg = CallConfig::new(now.mono, ntp_of(now.unix_ms));
            self.control(Control::AddCall { call: m, config: Box::new(cfg) });
            self.control(Control::SetCustomer { call: m, leg: Box::new(leg) });
            if waiting.is_some() {
                self.control(Control::SetLoop { call: m, role: Role::Customer, clip: waiting });
            }
            self.stats.answered += 1;
            self.set_deadline(call, Some(now.mono + wait_limit));
            self.emit(CallEvent::CustomerAnswered { call, ring_ms });
            return;
        }
        // A final failure.
        let (cancel, authed) = (c.cancel, c.authed);
        if matches!(resp.status, 401 | 407) && !authed && cancel.is_none() {
            if let Some(creds) = self.cfg.carrier_credentials.clone() {
                let cnonce = self.token(12);
                let c = self.customers.get_mut(&call).expect("invariant: looked up above");
                if let Ok(req) = sip::auth::authorize(&c.invite, &resp, &creds, &cnonce) {
                    c.authed = true;
                    c.invite = req.clone();
                    self.stats.auth_challenges += 1;
                    match self.endpoint.send_request(now.mono, self.cfg.carrier, req) {
                        Ok(new_tx) => {
                            let c = self.customers.get_mut(&call).expect("invariant: looked up above");
                            self.tx_owner.remove(&c.tx);
                            c.tx = new_tx;
                            self.tx_owner.insert(new_tx, Owner::Customer(call));
                            return;
                        }
                        Err(e) => return self.end_unanswered(now, call, 503, &e.to_string(), EndCause::Transport),
                    }
                }
            }
        }
        let cause = match cancel {
            Some(r) => EndCause::Cancelled(r),
            None => EndCause::Rejected,
        };
        let reason = resp.reason.clone();
        self.end_unanswered(now, call, resp.status, &reason, cause);
    }

    /// Ends a customer call that was never answered (no dialog, no media).
    fn end_unanswered(&mut self, now: Now, call: u64, status: u16, reason: &str, cause: EndCause) {
        let Some(c) = self.customers.remove(&call) else { return };
        self.tx_owner.remove(&c.tx);
        if let Some(cid) = c.invite.call_id() {
            self.call_ids.remove(cid);
        }
        self.ports.push(c.port);
        let ring_ms = elapsed_ms(c.launched, now.mono);
        self.emit(CallEvent::CustomerEnded {
            call,
            end: CallEnd {
                status,
                reason: reason.chars().take(256).collect(),
                cause,
                ended_by: if cause == EndCause::Rejected { Party::Customer } else { Party::System },
                answered: false,
                agent: None,
                ring_ms,
                wait_ms: 0,
                talk_ms: 0,
            },
        });
    }

    /// Ends an answered customer call: BYE (unless the customer sent it), media torn down, the
    /// agent back to hold audio, one `CustomerEnded`.
    fn end_answered_with(&mut self, now: Now, call: u64, by: Party, cause: EndCause, send_bye: bool) {
        let Some(mut c) = self.customers.remove(&call) else { return };
        self.tx_owner.remove(&c.tx);
        if let Some(cid) = c.invite.call_id() {
            self.call_ids.remove(cid);
        }
        if send_bye {
            if let Some(d) = c.dialog.as_mut() {
                let bye = d.request(Method::Bye);
                if let Ok(tx) = self.endpoint.send_request(now.mono, self.cfg.carrier, bye) {
                    self.tx_owner.insert(tx, Owner::Customer(call));
                }
            }
        }
        let mut agent = None;
        let mut talk_ms = 0;
        let answered_at = c.answered.unwrap_or(now.mono);
        let wait_ms = elapsed_ms(answered_at, c.wait_end.unwrap_or(now.mono));
        if let CustomerState::Bridged { agent: a, at } = c.state {
            self.end_supervisions_of(now, call);
            self.end_conference(now, call, ConferenceEnd::CallEnded);
            agent = Some(a);
            talk_ms = elapsed_ms(at, now.mono);
            // The recording file is closed (and reported) with the customer's leaving.
            self.control(Control::StopRecording { call: agent_media_call(a) });
            self.control(Control::TakeCustomer { call: agent_media_call(a) });
            let window = self.cfg.dtmf_entry_window;
            if let Some(ag) = self.agents.get_mut(&a) {
                if ag.customer == Some(call) {
                    ag.customer = None;
                    if c.cmd.dtmf_result_entry {
                        ag.entry = Some((call, now.mono + window));
                        ag.parser = EntryParser::new(self.cfg.dtmf_digit_timeout);
                    }
                }
            }
        }
        if let CustomerState::Outside { agent: a, at } = c.state {
            // 外線転送: the outside leg ends with the customer (BYE, or CANCEL while it rings).
            self.drop_outside(now, call, true);
            agent = a;
            talk_ms = elapsed_ms(at, now.mono);
        }
        if c.media_up {
            self.control(Control::EndCall { call: customer_media_call(call) });
        }
        self.media.push_back(MediaOp::ClosePort(c.port.0));
        if cause == EndCause::Abandoned {
            self.stats.abandoned += 1;
        }
        self.emit(CallEvent::CustomerEnded {
            call,
            end: CallEnd {
                status: 200,
                reason: match cause {
                    EndCause::Abandoned => "abandoned".into(),
                    _ => "BYE".into(),
                },
                cause,
                ended_by: by,
                answered: true,
                agent,
                ring_ms: c.ring_ms,
                wait_ms,
                talk_ms,
            },
        });
    }

    fn end_answered(&mut self, now: Now, call: u64, by: Party, cause: EndCause) {
        self.end_answered_with(now, call, by, cause, true);
    }

    fn abandon(&mut self, now: Now, call: u64) {
        let Some(c) = self.customers.get_mut(&call) else { return };
        if !matches!(c.state, CustomerState::Waiting) {
            return;
        }
        match c.cmd.abandon_message.clone() {
            Some(clip) if !clip.is_empty() => {
                c.state = CustomerState::Abandoning;
                c.wait_end = Some(now.mono);
                let len = Duration::from_millis(clip.len() as u64 / 8).min(ABANDON_MESSAGE_MAX);
                let m = customer_media_call(call);
                self.control(Control::SetLoop { call: m, role: Role::Customer, clip: None });
                self.control(Control::Play { call: m, role: Role::Customer, clip });
                // The prompt's end releases the customer; this deadline is the fallback.
                self.set_deadline(call, Some(now.mono + len + Duration::from_secs(1)));
            }
            _ => self.end_answered(now, call, Party::System, EndCause::Abandoned),
        }
    }

    fn hang_up_customer(&mut self, now: Now, call: u64, by: Party) {
        let Some(c) = self.customers.get(&call) else { return };
        match c.state {
            CustomerState::Inviting => self.cancel_customer(now, call, CancelReason::HungUp),
            _ => {
                let cause = if matches!(c.state, CustomerState::Bridged { .. } | CustomerState::Outside { .. }) {
                    EndCause::Completed
                } else {
                    EndCause::Abandoned
                };
                self.end_answered(now, call, by, cause);
            }
        }
    }

    fn bridge(&mut self, now: Now, call: u64, agent: u64) {
        let fail = |s: &mut Self, reason: &'static str| s.emit(CallEvent::BridgeFailed { call, agent, reason });
        match self.customers.get(&call).map(|c| &c.state) {
            Some(CustomerState::Waiting) => {}
            Some(CustomerState::Bridged { agent: a, .. }) if *a == agent => return, // again: done already
            Some(_) => return fail(self, "customer not waiting"),
            None => return fail(self, "no such customer call"),
        }
        match self.agents.get(&agent) {
            Some(a) if a.state == AgentState::Up && a.customer.is_none() => {}
            Some(_) => return fail(self, "agent leg busy or not up"),
            None => return fail(self, "no agent leg"),
        }
        let c = self.customers.get_mut(&call).expect("invariant: checked above");
        c.state = CustomerState::Bridged { agent, at: now.mono };
        c.deadline = None;
        c.wait_end = Some(now.mono);
        let recording = c.cmd.recording.clone();
        let a = self.agents.get_mut(&agent).expect("invariant: checked above");
        a.customer = Some(call);
        a.entry = None;
        let am = agent_media_call(agent);
        self.control(Control::MoveCustomer { from: customer_media_call(call), to: am });
        if let Some(path) = recording {
            self.control(Control::StartRecording { call: am, id: RecordingId(call), path, codec: media::Codec::Pcmu });
        }
        self.stats.bridged += 1;
        self.emit(CallEvent::Bridged { call, agent });
    }

    fn unbridge(&mut self, now: Now, call: u64) {
        let Some(c) = self.customers.get_mut(&call) else { return };
        let CustomerState::Bridged { agent, .. } = c.state else { return };
        c.state = CustomerState::Waiting;
        self.end_supervisions_of(now, call);
        let Some(c) = self.customers.get_mut(&call) else { return };
        c.wait_end = None;
        let waiting = c.cmd.waiting_audio.clone();
        // The wait limit counts from the answer; a released customer gets at least a second more.
        let deadline = (c.answered.unwrap_or(now.mono) + c.cmd.wait_limit).max(now.mono + Duration::from_secs(1));
        self.set_deadline(call, Some(deadline));
        if let Some(a) = self.agents.get_mut(&agent) {
            if a.customer == Some(call) {
                a.customer = None;
            }
        }
        self.control(Control::StopRecording { call: agent_media_call(agent) });
        self.control(Control::MoveCustomer { from: agent_media_call(agent), to: customer_media_call(call) });
        if waiting.is_some() {
            self.control(Control::SetLoop { call: customer_media_call(call), role: Role::Customer, clip: waiting });
        }
    }

    /// パーク保留: the customer goes back to waiting (as [`Self::unbridge`]) for the park limit and
    /// then its own wait limit (the control service returns it to an agent at the park limit).
    fn park(&mut self, now: Now, call: u64, hold: Duration) {
        self.unbridge(now, call);
        let Some(c) = self.customers.get(&call) else { return };
        if matches!(c.state, CustomerState::Waiting) {
            let deadline = now.mono + hold + c.cmd.wait_limit;
            self.set_deadline(call, Some(deadline));
        }
    }

    // ---------------------------------------------------------------- agent legs

    /// INVITEs a phone (an agent's nailed-up leg, a supervisor's leg) from a free RTP port, its
    /// transaction and dialog owned by `owner`. `Err(503)`: the shard is full, has no port, or the
    /// request could not be sent.
    fn invite_phone(&mut self, now: Now, target: &str, dest: SocketAddr, owner: Owner) -> Result<PhoneInvite, u16> {
        if self.at_capacity() {
            return Err(503);
        }
        let port = self.take_port().ok_or(503u16)?;
        let local = self.local_media(port.1);
        let local_sdp = sdp::offer(&local);
        let call_id = format!("{}@{}", self.token(16), self.cfg.local_sip.ip());
        let from_tag = self.token(10);
        let invite = dialog::invite(&InviteParams {
            request_uri: target.to_string(),
            from: format!("\"kakeru\" <sip:kakeru@{}>", self.cfg.domain),
            to: target.to_string(),
            contact: format!("sip:kakeru@{}", self.cfg.local_sip),
            call_id: call_id.clone(),
            from_tag,
            sdp: Some(local_sdp.clone()),
        });
        let tx = match self.endpoint.send_request(now.mono, dest, invite.clone()) {
            Ok(tx) => tx,
            Err(_) => {
                self.ports.push(port);
                return Err(503);
            }
        };
        self.tx_owner.insert(tx, owner);
        self.call_ids.insert(call_id, owner);
        Ok(PhoneInvite { tx, invite, port, local_sdp })
    }

    fn dial_agent(&mut self, now: Now, cmd: DialAgent) {
        let agent = cmd.agent;
        if self.agents.contains_key(&agent) {
            tracing::debug!(agent, "agent leg already up or being set up");
            return;
        }
        let PhoneInvite { tx, invite, port, local_sdp } =
            match self.invite_phone(now, &cmd.target.clone(), cmd.dest, Owner::Agent(agent)) {
                Ok(p) => p,
                Err(status) => return self.emit(CallEvent::AgentUnreachable { agent, status }),
            };
        self.stats.agent_legs += 1;
        self.agents.insert(
            agent,
            Agent {
                cmd,
                state: AgentState::Inviting,
                tx,
                invite,
                dialog: None,
                port,
                local_sdp,
                customer: None,
                entry: None,
                parser: EntryParser::new(self.cfg.dtmf_digit_timeout),
                park_keys: ParkKeyParser::new(self.cfg.dtmf_digit_timeout),
                browser: false,
            },
        );
    }

    fn on_agent_response(&mut self, now: Now, agent: u64, tx: TxId, resp: Response) {
        let Some(a) = self.agents.get_mut(&agent) else { return };
        if resp.cseq().map(|c| c.method) != Some(Method::Invite) || tx != a.tx || resp.status < 200 {
            return;
        }
        let dest = a.cmd.dest;
        if resp.is_success() {
            if let Some(d) = &a.dialog {
                let ack = d.ack(d.invite_seq, None);
                self.endpoint.send_ack(dest, ack);
                return;
            }
            let Some(d) = Dialog::uac(&a.invite, &resp) else {
                return self.drop_agent(now, agent, Some(500), false);
            };
            let ack = d.ack(d.invite_seq, None);
            self.endpoint.send_ack(dest, ack);
            a.dialog = Some(d);
            let Some(n) = negotiate(a.port.1, &resp.body) else {
                return self.drop_agent(now, agent, Some(488), true);
            };
            a.state = AgentState::Up;
            let port = a.port.0;
            let leg = self.leg(port, &n, true);
            let m = agent_media_call(agent);
            let mut cfg = CallConfig::new(now.mono, ntp_of(now.unix_ms));
            cfg.hold_audio = self.cfg.hold_audio.clone();
            cfg.bridge_beep = self.cfg.bridge_beep.clone();
            self.control(Control::AddCall { call: m, config: Box::new(cfg) });
            self.control(Control::SetAgent { call: m, leg: Box::new(leg) });
            self.emit(CallEvent::AgentLegUp { agent });
            return;
        }
        self.drop_agent(now, agent, Some(resp.status), false);
    }

    /// Ends an agent leg. `unreachable`: it never came up (status reported); else it was up.
    /// `send_bye`: we end it (the phone did not).
    fn drop_agent(&mut self, now: Now, agent: u64, unreachable: Option<u16>, send_bye: bool) {
        let Some(mut a) = self.agents.remove(&agent) else { return };
        self.tx_owner.remove(&a.tx);
        if let Some(cid) = a.invite.call_id() {
            self.call_ids.remove(cid);
        }
        if send_bye {
            if let Some(d) = a.dialog.as_mut() {
                let bye = d.request(Method::Bye);
                let _ = self.endpoint.send_request(now.mono, a.cmd.dest, bye);
            }
        }
        // A customer on the leg is hung up with it (control also asks; the second ask is a no-op).
        if let Some(call) = a.customer.take() {
            self.end_answered(now, call, Party::Agent, EndCause::Completed);
        }
        let was_up = a.state == AgentState::Up;
        // A browser leg has its media call from the offer on, up or not.
        if was_up || a.browser {
            self.control(Control::EndCall { call: agent_media_call(agent) });
            self.media.push_back(MediaOp::ClosePort(a.port.0));
        } else {
            self.ports.push(a.port);
        }
        match (unreachable, was_up) {
            (_, true) => self.emit(CallEvent::AgentLegDown { agent }),
            (Some(status), false) => self.emit(CallEvent::AgentUnreachable { agent, status }),
            (None, false) => self.emit(CallEvent::AgentLegDown { agent }),
        }
    }

    fn hang_up_agent(&mut self, now: Now, agent: u64) {
        let Some(a) = self.agents.get(&agent) else { return };
        match a.state {
            AgentState::Inviting => {
                let tx = a.tx;
                if let Ok(Some(cancel)) = self.endpoint.cancel(now.mono, tx) {
                    self.tx_owner.insert(cancel, Owner::Agent(agent));
                }
                // The INVITE's final answer (487) ends it; report it down now.
                self.drop_agent(now, agent, None, false);
            }
            AgentState::Up => self.drop_agent(now, agent, None, true),
        }
    }

    fn agent_key(&mut self, now: Now, agent: u64, key: char) {
        let Some(a) = self.agents.get_mut(&agent) else { return };
        // パーク保留 / パーク応答: `#72` with a customer, a park number with none (and no result
        // entry open: those keys are the entry's).
        if a.customer.is_some() || a.entry.is_none() {
            let customer = a.customer;
            match (a.park_keys.push(now.mono, key, customer.is_some()), customer) {
                (Some(ParkKeys::Park), Some(call)) => self.emit(CallEvent::ParkKeyed { agent, call }),
                (Some(ParkKeys::PickUp { number }), None) => self.emit(CallEvent::PickUpKeyed { agent, number }),
                _ => {}
            }
            return;
        }
        let Some((call, until)) = a.entry else { return };
        if now.mono > until {
            a.entry = None;
            return;
        }
        match a.parser.push(now.mono, key) {
            Ok(None) => {}
            Ok(Some(entry)) => {
                a.entry = None;
                self.stats.dtmf_entries += 1;
                self.emit(CallEvent::DtmfEntry { agent, call, entry });
            }
            Err(e) => {
                self.stats.dtmf_errors += 1;
                tracing::debug!(agent, call, error = %e, "DTMF result entry refused");
            }
        }
    }

    // ---------------------------------------------------------------- SIP events

    fn drain_sip(&mut self, now: Now) {
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                SipEvent::Response { tx, response } => match self.tx_owner.get(&tx).copied() {
                    Some(Owner::Customer(call)) => self.on_customer_response(now, call, tx, response),
                    Some(Owner::Agent(agent)) => self.on_agent_response(now, agent, tx, response),
                    Some(Owner::Supervisor(sup)) => self.on_supervisor_response(now, sup, tx, response),
                    Some(Owner::Outside(call)) => self.on_outside_response(now, call, tx, response),
                    None => {}
                },
                SipEvent::Timeout { tx } => match self.tx_owner.remove(&tx) {
                    Some(Owner::Customer(call)) if self.customers.get(&call).is_some_and(|c| c.tx == tx) => {
                        let cause = match self.customers.get(&call).and_then(|c| c.cancel) {
                            Some(r) => EndCause::Cancelled(r),
                            None => EndCause::Transport,
                        };
                        self.end_unanswered(now, call, 408, "no response", cause);
                    }
                    Some(Owner::Agent(agent)) if self.agents.get(&agent).is_some_and(|a| a.tx == tx) => {
                        self.drop_agent(now, agent, Some(408), false);
                    }
                    Some(Owner::Supervisor(sup)) if self.is_supervisor_invite(sup, tx) => {
                        self.end_supervision(now, sup, SupervisionEnd::Unreachable(408), false);
                    }
                    Some(Owner::Outside(call)) => self.outside_timed_out(now, call, tx),
                    _ => {}
                },
                SipEvent::Terminated { tx } => {
                    // Keep the owner of a live INVITE (its final response may still come for CANCEL).
                    let live = match self.tx_owner.get(&tx) {
                        Some(Owner::Customer(c)) => self.customers.get(c).is_some_and(|x| x.tx == tx),
                        Some(Owner::Agent(a)) => self.agents.get(a).is_some_and(|x| x.tx == tx),
                        Some(Owner::Supervisor(s)) => self.is_supervisor_invite(*s, tx),
                        Some(Owner::Outside(c)) => self.is_outside_invite(*c, tx),
                        None => false,
                    };
                    if !live {
                        self.tx_owner.remove(&tx);
                    }
                }
                SipEvent::Request { tx, from, request } => self.on_request(now, tx, from, request),
                SipEvent::Cancelled { tx } => {
                    // A CANCEL of an INVITE someone sent us (we answer those at once; nothing pending).
                    if let Some(req) = self.endpoint.request(tx).cloned() {
                        let _ = self.endpoint.send_response(now.mono, tx, response_to(&req, 487, Some("c")));
                    }
                }
                SipEvent::Ack { .. } | SipEvent::AckTimeout { .. } => {}
            }
        }
    }

    fn respond(&mut self, now: Now, tx: TxId, resp: Response) {
        if let Err(e) = self.endpoint.send_response(now.mono, tx, resp) {
            tracing::debug!(error = %e, "response not sent");
        }
    }

    fn on_request(&mut self, now: Now, tx: TxId, from: SocketAddr, req: Request) {
        if dialog::is_in_dialog(&req) {
            let owner = req.call_id().and_then(|c| self.call_ids.get(c)).copied();
            match owner {
                Some(Owner::Customer(call)) => self.customer_request(now, call, tx, req),
                Some(Owner::Agent(agent)) => self.agent_request(now, agent, tx, req),
                Some(Owner::Supervisor(sup)) => self.supervisor_request(now, sup, tx, req),
                Some(Owner::Outside(call)) => self.outside_request(now, call, tx, req),
                None => {
                    self.stats.stray_requests += 1;
                    self.respond(now, tx, response_to(&req, 481, None));
                }
            }
            return;
        }
        match req.method {
            Method::Register => self.register(now, tx, from, req),
            Method::Options => {
                let mut r = response_to(&req, 200, Some("kakeru"));
                r.headers.push("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER");
                r.headers.push("Accept", "application/sdp");
                self.respond(now, tx, r);
            }
            Method::Invite => {
                // Calls from phones: authenticated like REGISTER; inbound is a later phase.
                if let Err(r) = self.phones.authenticate(now.mono, now.unix_ms, from, &req) {
                    return self.respond(now, tx, r);
                }
                let mut r = response_to(&req, 480, Some("kakeru"));
                r.reason = "Inbound calls not served".into();
                self.respond(now, tx, r);
            }
            _ => self.respond(now, tx, response_to(&req, 405, Some("kakeru"))),
        }
    }

    fn customer_request(&mut self, now: Now, call: u64, tx: TxId, req: Request) {
        let Some(c) = self.customers.get_mut(&call) else { return };
        let sdp = c.local_sdp.clone();
        let Some(d) = c.dialog.as_mut() else {
            return self.respond(now, tx, response_to(&req, 481, None));
        };
        if !d.matches_request(&req) {
            return self.respond(now, tx, response_to(&req, 481, None));
        }
        let resp = d.handle_request(&req, Some(&sdp));
        if let Some(r) = resp {
            let ok_bye = req.method == Method::Bye && r.status == 200;
            self.respond(now, tx, r);
            if ok_bye {
                let cause = if matches!(c_state(&self.customers, call), Some(true)) {
                    EndCause::Completed
                } else {
                    EndCause::Abandoned
                };
                self.end_answered_with(now, call, Party::Customer, cause, false);
            }
        }
    }

    fn agent_request(&mut self, now: Now, agent: u64, tx: TxId, req: Request) {
        let Some(a) = self.agents.get_mut(&agent) else { return };
        let sdp = a.local_sdp.clone();
        let Some(d) = a.dialog.as_mut() else {
            return self.respond(now, tx, response_to(&req, 481, None));
        };
        if !d.matches_request(&req) {
            return self.respond(now, tx, response_to(&req, 481, None));
        }
        if let Some(r) = d.handle_request(&req, Some(&sdp)) {
            let ok_bye = req.method == Method::Bye && r.status == 200;
            self.respond(now, tx, r);
            if ok_bye {
                self.drop_agent(now, agent, None, false);
            }
        }
    }

    // ---------------------------------------------------------------- registrar

    fn register(&mut self, now: Now, tx: TxId, from: SocketAddr, req: Request) {
        let (resp, registered) = self.phones.register(now.mono, now.unix_ms, from, &req);
        self.respond(now, tx, resp);
        if let Some(e) = registered {
            self.emit(e);
        }
    }
}

/// Our side of a session on RTP address `port`: PCMU, PCMA and telephone-event, 20 ms.
fn our_media(port: SocketAddr) -> LocalMedia {
    LocalMedia {
        addr: port.ip(),
        port: port.port(),
        codecs: vec![sdp::Codec::Pcmu, sdp::Codec::Pcma],
        telephone_event: Some(TELEPHONE_EVENT_PT),
        session_id: 0,
        session_version: 0,
        ptime_ms: 20,
    }
}

/// The media an answer's SDP gives our offer on `port`; `None` when it is unusable.
fn negotiate(port: SocketAddr, answer: &[u8]) -> Option<Negotiated> {
    let md = sdp::parse(answer).ok()?;
    sdp::accept_answer(&our_media(port), &md).ok()
}

/// Whether the customer call is bridged (`None`: no such call).
fn c_state(customers: &HashMap<u64, Customer>, call: u64) -> Option<bool> {
    customers.get(&call).map(|c| matches!(c.state, CustomerState::Bridged { .. } | CustomerState::Outside { .. }))
}

/// The address a SIP URI names when its host is an IP literal (`sip:a@127.0.0.1:5062` ->
/// 127.0.0.1:5062; port 5060 when absent); `None` for a host name.
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let u = sip::addr::SipUri::parse(uri)?;
    let ip = u.host.parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}

/// Where an IP address is unspecified (0.0.0.0), the address to advertise instead.
pub fn advertised(ip: IpAddr, fallback: IpAddr) -> IpAddr {
    if ip.is_unspecified() {
        fallback
    } else {
        ip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_call_ids_round_trip() {
        let cc = CallControl::new(
            Config::new("127.0.0.1:5060".parse().expect("addr"), "127.0.0.1:5070".parse().expect("addr")),
            Box::new(rand::rngs::mock::StepRng::new(1, 1)),
        );
        assert_eq!(cc.customer_of_media(customer_media_call(42)), Some(42));
        assert_eq!(cc.agent_of_media(customer_media_call(42)), None);
        assert_eq!(cc.agent_of_media(agent_media_call(7)), Some(7));
        assert_ne!(customer_media_call(7), agent_media_call(7));
    }

    #[test]
    fn addresses_of_uris() {
        assert_eq!(uri_addr("sip:agent@127.0.0.1:5062;transport=udp"), Some("127.0.0.1:5062".parse().expect("addr")));
        assert_eq!(uri_addr("sip:agent@127.0.0.1"), Some("127.0.0.1:5060".parse().expect("addr")));
        assert_eq!(uri_addr("sip:agent@[::1]:5070"), Some("[::1]:5070".parse().expect("addr")));
        assert_eq!(uri_addr("sip:agent@phone.example:5060"), None);
        assert_eq!(
            uri_addr("sip:agent-0x55@127.0.0.1:5391;transport=udp"),
            Some("127.0.0.1:5391".parse().expect("addr"))
        );
    }

    #[test]
    fn ntp_epoch() {
        assert_eq!(ntp_of(0) >> 32, 2_208_988_800);
        assert_eq!(ntp_of(500) & 0xFFFF_FFFF, 1 << 31);
    }
}
