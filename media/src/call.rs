//! The per-call relay state machine: a customer leg and an agent's nailed-up leg.
//!
//! A [`Call`] holds at most one agent leg and one customer leg (rtpengine: two monologues, each
//! with one audio media and its RTP/RTCP packet streams). With both present the call is
//! *bridged*: each leg's RTP is relayed to the other with the receiving side's SSRC, sequence
//! numbers and timestamps ([`StreamRewriter`]). A leg without a peer is fed by its [`Player`]
//! on a 20 ms timer: hold audio on the agent's nailed-up leg, prompts to a waiting customer.
//! Legs move between calls with [`Call::take_customer`] / [`Call::set_customer`], keeping their
//! sockets, statistics and outgoing streams, so a customer answered before any agent was free
//! is bridged without a glitch.
//!
//! Supervisors (SV, MGR) join a call on legs of their own ([`Call::add_supervisor`]), each with a
//! [`SupervisorMode`]: モニタリング (listen: they hear both parties, nobody hears them), ささやき
//! (whisper: the agent hears them too, the customer does not) and 割込 (barge: both parties hear
//! them). While a supervisor is present the legs' audio is also decoded into a short FIFO per leg
//! (at most [`MAX_MIX_FIFO`] samples), and a 20 ms mixing tick sums (saturating) what each output
//! gets where two sources meet: the supervisor's (customer + agent), the agent's in whisper or
//! barge (customer + supervisors), the customer's in barge (agent + supervisors), each encoded in
//! its leg's codec as a new source of that leg's outgoing stream. An output with one source stays
//! a plain relay, so a call without supervisors takes exactly the relay path it always took.
//!
//! Sans-IO (str0m style): the driver applies one input, [`Call::handle_receive`] or
//! [`Call::handle_timeout`] (or a change of legs, prompts or recording), then drains
//! [`Call::poll_output`] until it answers [`Output::Timeout`], and sleeps until that instant:
//!
//! ```text
//! loop {
//!     match call.poll_output() {
//!         Output::Transmit(t) => send t.payload from t.socket to t.destination,
//!         Output::RecordingWrite { id, write } => apply write to recording id's file, in order,
//!         Output::Event(e) => tell the control plane,
//!         Output::Timeout(at) => break at, // call handle_timeout then (None: only an input)
//!     }
//! }
//! ```
//!
//! No clock, socket, thread or lock is touched here.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dtmf::{DtmfKind, GoertzelDetector, TelephoneEventReceiver};
use crate::g711::Codec;
use crate::player::{Clip, Player, QueueFull, FRAME_SAMPLES};
use crate::recording::{AppendError, FileWrite, RecordingWriter};
use crate::rewrite::{Refused, Rewritten, SeqWindow, Source, StreamRewriter, FRAME};
use crate::rtp::{self, HeaderFields, ParseError};
use crate::stats::{self, ReceiveStats, RtcpPacket, SenderInfo, StreamStats};

/// Opaque id of a local UDP socket, chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u32);

/// Opaque id of a recording file, chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(pub u64);

/// Which side of the call a leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Customer,
    Agent,
}

impl Role {
    fn peer(self) -> Role {
        match self {
            Role::Customer => Role::Agent,
            Role::Agent => Role::Customer,
        }
    }
}

/// Comfort noise (RFC 3389), relayed unchanged.
pub const PT_COMFORT_NOISE: u8 = 13;
/// Consecutive packets from a new SSRC before the leg adopts it (0.5 s at 20 ms).
pub const SSRC_CHANGE_PACKETS: u32 = 25;
/// Bound of the transmit queue.
pub const MAX_TRANSMITS: usize = 1024;
/// Bound of the event queue.
pub const MAX_EVENTS: usize = 256;
/// Bound of the recording write queue.
pub const MAX_RECORDING_WRITES: usize = 4096;
/// Bound of each recording channel's sample FIFO (200 ms).
pub const MAX_RECORDING_FIFO: usize = 1600;
/// A player more than this many frames late skips ahead instead of bursting.
const MAX_FRAMES_BEHIND: u32 = 5;
/// Most supervisors on one call.
pub const MAX_SUPERVISORS: usize = 4;
/// Bound of each leg's mixing FIFO while supervisors are present (60 ms): older samples are
/// dropped, so the mix never lags more than that behind what arrives.
pub const MAX_MIX_FIFO: usize = 3 * FRAME_SAMPLES;

/// How a supervisor takes part in a call (the floor's モニタリング, ささやき, 割込).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SupervisorMode {
    /// モニタリング: the supervisor hears both parties; nobody hears the supervisor (and the agent
    /// is not told).
    Listen,
    /// ささやき: the agent hears the supervisor; the customer does not.
    Whisper,
    /// 割込: both parties hear the supervisor.
    Barge,
}

impl SupervisorMode {
    pub const ALL: [SupervisorMode; 3] = [SupervisorMode::Listen, SupervisorMode::Whisper, SupervisorMode::Barge];

    /// The name in SQL, JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SupervisorMode::Listen => "listen",
            SupervisorMode::Whisper => "whisper",
            SupervisorMode::Barge => "barge",
        }
    }

    pub fn parse(s: &str) -> Option<SupervisorMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The agent hears this supervisor.
    fn to_agent(self) -> bool {
        matches!(self, SupervisorMode::Whisper | SupervisorMode::Barge)
    }

    /// The customer hears this supervisor.
    fn to_customer(self) -> bool {
        self == SupervisorMode::Barge
    }
}

/// The call already has [`MAX_SUPERVISORS`] supervisors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the call has {MAX_SUPERVISORS} supervisors already")]
pub struct SupervisorsFull;

/// A supervisor's leg in a call.
#[derive(Debug)]
struct Supervisor {
    /// The driver's id of the supervisor (their user id).
    id: u64,
    mode: SupervisorMode,
    leg: Leg,
}

/// How a leg is wired (from SDP offer/answer, made by the SIP side).
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// Local socket RTP arrives on and is sent from.
    pub rtp_socket: SocketId,
    /// Local RTCP socket; `None` = RTCP multiplexed on the RTP socket (RFC 5761).
    pub rtcp_socket: Option<SocketId>,
    /// The peer's RTP address; packets from anywhere else are dropped.
    pub remote_rtp: SocketAddr,
    /// The peer's RTCP address; `None` = same as `remote_rtp`.
    pub remote_rtcp: Option<SocketAddr>,
    pub codec: Codec,
    /// Negotiated telephone-event payload type (RFC 4733), if any.
    pub telephone_event_pt: Option<u8>,
    /// Our SSRC for packets sent to this leg (random, injected).
    pub ssrc: u32,
    /// Initial sequence number and timestamp of packets sent to this leg (random, injected).
    pub initial_seq: u16,
    pub initial_timestamp: u32,
    /// Run the in-band (Goertzel) detector on audio received from this leg.
    pub inband_dtmf: bool,
}

/// Why a datagram was dropped. Every drop is counted in [`DropCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an RTP/RTCP header, or its CSRC/extension/padding overrun the datagram.
    Short,
    /// RTP/RTCP version is not 2.
    WrongVersion,
    /// Invalid RTP padding length.
    BadPadding,
    /// Datagram longer than [`rtp::MAX_DATAGRAM_LEN`].
    TooLong,
    /// Arrived on a socket no leg of this call owns.
    UnknownSocket,
    /// Source address is not the leg's remote address.
    UnknownSource,
    /// SSRC is not the leg's (and has not yet persisted long enough to be adopted).
    UnknownSsrc,
    /// Payload type not negotiated on the leg.
    UnsupportedPayloadType,
    /// Same sequence number already received.
    Duplicate,
    /// Too old to place (behind the 128-packet window or before the stream's start).
    TooLate,
    /// RTCP that does not parse.
    BadRtcp,
    /// The transmit queue was full.
    TransmitQueueFull,
}

impl DropReason {
    /// All reasons, in counter order.
    pub const ALL: [DropReason; 12] = [
        DropReason::Short,
        DropReason::WrongVersion,
        DropReason::BadPadding,
        DropReason::TooLong,
        DropReason::UnknownSocket,
        DropReason::UnknownSource,
        DropReason::UnknownSsrc,
        DropReason::UnsupportedPayloadType,
        DropReason::Duplicate,
        DropReason::TooLate,
        DropReason::BadRtcp,
        DropReason::TransmitQueueFull,
    ];

    /// Stable snake_case label (for metrics).
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Short => "short",
            DropReason::WrongVersion => "wrong_version",
            DropReason::BadPadding => "bad_padding",
            DropReason::TooLong => "too_long",
            DropReason::UnknownSocket => "unknown_socket",
            DropReason::UnknownSource => "unknown_source",
            DropReason::UnknownSsrc => "unknown_ssrc",
            DropReason::UnsupportedPayloadType => "unsupported_payload_type",
            DropReason::Duplicate => "duplicate",
            DropReason::TooLate => "too_late",
            DropReason::BadRtcp => "bad_rtcp",
            DropReason::TransmitQueueFull => "transmit_queue_full",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

impl From<ParseError> for DropReason {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Short => DropReason::Short,
            ParseError::WrongVersion => DropReason::WrongVersion,
            ParseError::BadPadding => DropReason::BadPadding,
            ParseError::TooLong => DropReason::TooLong,
        }
    }
}

impl From<Refused> for DropReason {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Duplicate => DropReason::Duplicate,
            Refused::TooLate => DropReason::TooLate,
        }
    }
}

/// Drop counters by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn add(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Local socket to send from.
    pub socket: SocketId,
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// Something the driver (and through it the control plane) should know.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A DTMF digit started on a leg.
    Dtmf { role: Role, digit: char, kind: DtmfKind },
    /// A queued prompt finished playing to a leg.
    PromptFinished { role: Role },
    /// RTCP received from a leg.
    Rtcp { role: Role, packets: Vec<RtcpPacket> },
    /// The remote SSRC of a leg changed (after [`SSRC_CHANGE_PACKETS`] packets).
    RemoteSsrcChanged { role: Role, ssrc: u32 },
    /// A recording could not take more audio.
    RecordingStopped { id: RecordingId, reason: AppendError },
}

/// What a [`Call`] asks of its driver: one of them per [`Call::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A datagram to send.
    Transmit(Transmit),
    /// A write to a recording's file: apply a call's writes in the order given (crash safety:
    /// a header never counts data not yet written).
    RecordingWrite { id: RecordingId, write: FileWrite },
    /// Something the control plane should know.
    Event(Event),
    /// Nothing more to do now: call [`Call::handle_timeout`] at this instant (`None`: no timer
    /// runs, only an input wakes the call).
    Timeout(Option<Instant>),
}

/// RTP counters of a call since the shard last took them ([`Call::take_rtp_counters`]): plain
/// integers the shard sums and its driver flushes to metrics, never a recorder call per packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpCounters {
    /// RTP packets accepted from the legs' remotes, and their UDP payload bytes (header included).
    pub packets_in: u64,
    pub bytes_in: u64,
    /// RTP packets queued to the legs' remotes, and their UDP payload bytes.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Packets found missing from the received sequences (RFC 3550 A.3 cumulative loss, counted as
    /// it grows; packets arriving late afterwards do not take it back).
    pub lost: u64,
    /// Interarrival jitter (RFC 3550 A.8, timestamp units) of the stream from each leg (customer,
    /// agent) when an RTCP report was built for it.
    pub jitter: [Option<u32>; 2],
}

/// Statistics of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegStats {
    /// RFC 3550 receive statistics of the stream from the remote.
    pub received: StreamStats,
    /// Packets and payload octets sent to the remote.
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub remote_ssrc: Option<u32>,
}

/// Why a digit could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendDtmfError {
    #[error("no such leg")]
    NoLeg,
    #[error("telephone-event not negotiated on the leg")]
    NotNegotiated,
    #[error("the leg is bridged: its stream carries the peer's audio")]
    Bridged,
    #[error("not a DTMF digit")]
    NotADigit,
    #[error("a digit is already being sent")]
    Busy,
}

/// The nominal RTCP report interval (RFC 3550 §6.2's recommended minimum), before a leg knows
/// its call's [`CallConfig::rtcp_interval`]: its first report comes after this, spread.
pub const DEFAULT_RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// The time to a leg's next RTCP report: RFC 3550 §6.3.1 draws each interval from 0.5 to 1.5
/// times the nominal, so that legs set up together (a floor's agents logging in, a dialer's burst
/// of answered calls) do not send their reports together. The draw is SplitMix64 over the leg's
/// `state`: no clock, no global randomness.
fn spread_interval(state: &mut u64, nominal: Duration) -> Duration {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    nominal.mul_f64(0.5 + unit)
}

/// Call-wide settings.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Looped on the agent leg whenever no customer is bridged.
    pub hold_audio: Option<Clip>,
    /// Laid over the customer's audio to the agent when a customer is bridged.
    pub bridge_beep: Option<Clip>,
    /// RTCP SDES CNAME.
    pub cname: String,
    /// Nominal RTCP report interval (RFC 3550 §6.2 minimum: 5 s); each leg's intervals are
    /// drawn from 0.5 to 1.5 times it (§6.3.1).
    pub rtcp_interval: Duration,
    /// Wall clock as a 64-bit NTP timestamp at `ntp_origin` (for sender reports).
    pub ntp_at_origin: u64,
    pub ntp_origin: Instant,
    /// How much audio a recording header may lag behind the data (crash window).
    pub recording_header_every_ms: u32,
}

impl CallConfig {
    /// Defaults: no hold audio, no beep, 5 s RTCP, headers every second.
    pub fn new(now: Instant, ntp_now: u64) -> Self {
        CallConfig {
            hold_audio: None,
            bridge_beep: None,
            cname: "kakeru".to_owned(),
            rtcp_interval: DEFAULT_RTCP_INTERVAL,
            ntp_at_origin: ntp_now,
            ntp_origin: now,
            recording_header_every_ms: 1000,
        }
    }
}

/// One leg: a remote endpoint, the stream we receive from it and the stream we send to it.
#[derive(Debug, Clone)]
pub struct Leg {
    config: LegConfig,
    created: Instant,
    rx: ReceiveStats,
    rx_window: SeqWindow,
    /// The cumulative loss of `rx` already added to [`RtpCounters::lost`].
    lost_counted: i64,
    remote_ssrc: Option<u32>,
    ssrc_candidate: Option<(u32, u32)>,
    out: StreamRewriter,
    player: Player,
    overlay: Player,
    player_epoch: u32,
    player_seq: u16,
    player_ts: u32,
    next_frame_at: Option<Instant>,
    next_rtcp_at: Instant,
    /// State of the generator that spreads this leg's RTCP intervals ([`spread_interval`]).
    rtcp_spread: u64,
    te_rx: TelephoneEventReceiver,
    goertzel: Option<GoertzelDetector>,
    rec_fifo: VecDeque<i16>,
    /// Telephone-event payloads still to send (marker, payload), and the event's timestamp.
    dtmf_out: VecDeque<(bool, [u8; 4])>,
    dtmf_ts: u32,
    /// Samples the player timeline skips when the queued event ends.
    dtmf_samples: u32,
    /// Decoded audio from this leg waiting for the mixing tick (only while supervisors are
    /// present; at most [`MAX_MIX_FIFO`]).
    mix_fifo: VecDeque<i16>,
    /// The mixed frames' own timeline (source [`Source::Mix`] of the outgoing stream).
    mix_seq: u16,
    mix_ts: u32,
}

impl Leg {
    /// A new leg; RTCP starts one interval after `now`.
    pub fn new(now: Instant, config: LegConfig) -> Leg {
        let out = StreamRewriter::new(config.ssrc, config.initial_seq, config.initial_timestamp);
        let goertzel = config.inband_dtmf.then(GoertzelDetector::default);
        // Seeded by the leg's own random SSRC and initial timestamp (RFC 3550 §5.1, §8.1): legs
        // set up at one instant report at different instants.
        let mut rtcp_spread = u64::from(config.ssrc) << 32 | u64::from(config.initial_timestamp);
        Leg {
            created: now,
            rx: ReceiveStats::default(),
            rx_window: SeqWindow::default(),
            lost_counted: 0,
            remote_ssrc: None,
            ssrc_candidate: None,
            out,
            player: Player::default(),
            overlay: Player::default(),
            player_epoch: 0,
            player_seq: 0,
            player_ts: 0,
            next_frame_at: None,
            next_rtcp_at: now + spread_interval(&mut rtcp_spread, DEFAULT_RTCP_INTERVAL),
            rtcp_spread,
            te_rx: TelephoneEventReceiver::default(),
            goertzel,
            rec_fifo: VecDeque::new(),
            dtmf_out: VecDeque::new(),
            dtmf_ts: 0,
            dtmf_samples: 0,
            mix_fifo: VecDeque::new(),
            mix_seq: 0,
            mix_ts: 0,
            config,
        }
    }

    pub fn config(&self) -> &LegConfig {
        &self.config
    }

    pub fn stats(&self) -> LegStats {
        let (sent_packets, sent_bytes) = self.out.sent();
        LegStats { received: self.rx.snapshot(), sent_packets, sent_bytes, remote_ssrc: self.remote_ssrc }
    }

    fn owns(&self, socket: SocketId) -> bool {
        self.config.rtp_socket == socket || self.config.rtcp_socket == Some(socket)
    }

    fn units(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.created).as_micros() * 8 / 1000) as u64
    }

    fn rtcp_destination(&self) -> (SocketId, SocketAddr) {
        (
            self.config.rtcp_socket.unwrap_or(self.config.rtp_socket),
            self.config.remote_rtcp.unwrap_or(self.config.remote_rtp),
        )
    }

    /// Keep decoded samples for the mixing tick, dropping the oldest beyond [`MAX_MIX_FIFO`].
    fn push_mix(&mut self, samples: &[i16]) {
        self.mix_fifo.extend(samples.iter().copied());
        let excess = self.mix_fifo.len().saturating_sub(MAX_MIX_FIFO);
        self.mix_fifo.drain(..excess);
    }

    /// One frame for the mixing tick into `out` (left as it is, silence, until a whole frame has
    /// arrived: a frame is never cut, so the FIFO settles one frame behind the packets' phase).
    fn take_mix_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) {
        if self.mix_fifo.len() >= FRAME_SAMPLES {
            for (o, s) in out.iter_mut().zip(self.mix_fifo.drain(..FRAME_SAMPLES)) {
                *o = s;
            }
        }
    }

    /// A mixed frame to this leg's remote, on the mix's own timeline.
    fn mix_transmit(&mut self, now: Instant, samples: &[i16]) -> Option<Transmit> {
        let seq = self.mix_seq;
        let ts = self.mix_ts;
        self.mix_seq = seq.wrapping_add(1);
        self.mix_ts = ts.wrapping_add(FRAME_SAMPLES as u32);
        let codec = self.config.codec;
        let mut payload = Vec::with_capacity(FRAME_SAMPLES);
        codec.encode_into(samples, &mut payload);
        let rw = self.out.rewrite(now, Source::Mix, seq, ts, false, payload.len()).ok()?;
        Some(self.packet(rw, codec.payload_type(), &payload))
    }

    /// An RTP packet of this leg's outgoing stream (header values from its rewriter) to its remote.
    fn packet(&self, rw: Rewritten, payload_type: u8, payload: &[u8]) -> Transmit {
        Transmit {
            socket: self.config.rtp_socket,
            destination: self.config.remote_rtp,
            payload: rtp::build(
                HeaderFields {
                    marker: rw.marker,
                    payload_type,
                    sequence: rw.sequence,
                    timestamp: rw.timestamp,
                    ssrc: rw.ssrc,
                },
                payload,
            ),
        }
    }

    /// Start feeding this leg from its player (a new source for the outgoing stream).
    fn activate_player(&mut self, now: Instant) {
        self.player_epoch = self.player_epoch.wrapping_add(1);
        self.next_frame_at = (!self.player.is_idle() || !self.dtmf_out.is_empty()).then_some(now);
    }
}

/// The relay state machine for one call (see module docs).
#[derive(Debug)]
pub struct Call {
    config: CallConfig,
    customer: Option<Leg>,
    agent: Option<Leg>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    events_lost: u64,
    drops: DropCounters,
    rtp: RtpCounters,
    recording: Option<(RecordingId, RecordingWriter)>,
    next_record_at: Option<Instant>,
    recording_writes: VecDeque<(RecordingId, FileWrite)>,
    scratch: Vec<i16>,
    digits: Vec<char>,
    /// Supervisors' legs (at most [`MAX_SUPERVISORS`]); empty on a plain call.
    supervisors: Vec<Supervisor>,
    /// The next mixing tick, while supervisors are present.
    next_mix_at: Option<Instant>,
    /// 保留: the parties' audio is not relayed to each other; the customer hears the hold audio.
    held: bool,
}

/// Adds `b` into `a`, saturating.
fn mix_add(a: &mut [i16; FRAME_SAMPLES], b: &[i16; FRAME_SAMPLES]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x = x.saturating_add(y);
    }
}

impl Call {
    pub fn new(config: CallConfig) -> Call {
        Call {
            config,
            customer: None,
            agent: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            events_lost: 0,
            drops: DropCounters::default(),
            rtp: RtpCounters::default(),
            recording: None,
            next_record_at: None,
            recording_writes: VecDeque::new(),
            scratch: Vec::with_capacity(rtp::MAX_DATAGRAM_LEN),
            digits: Vec::new(),
            supervisors: Vec::new(),
            next_mix_at: None,
            held: false,
        }
    }

    fn leg_mut(&mut self, role: Role) -> &mut Option<Leg> {
        match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        }
    }

    fn leg(&self, role: Role) -> Option<&Leg> {
        match role {
            Role::Customer => self.customer.as_ref(),
            Role::Agent => self.agent.as_ref(),
        }
    }

    /// (leg of `role`, its peer), both mutable.
    fn pair_mut(&mut self, role: Role) -> (Option<&mut Leg>, Option<&mut Leg>) {
        match role {
            Role::Customer => (self.customer.as_mut(), self.agent.as_mut()),
            Role::Agent => (self.agent.as_mut(), self.customer.as_mut()),
        }
    }

    /// Both legs present: audio is relayed.
    pub fn is_bridged(&self) -> bool {
        self.customer.is_some() && self.agent.is_some()
    }

    /// Attach the agent's nailed-up leg. Hold audio starts at once unless a customer is there.
    pub fn set_agent(&mut self, now: Instant, mut leg: Leg) -> Option<Leg> {
        leg.player.set_loop(self.config.hold_audio.clone());
        let old = self.agent.replace(leg);
        self.after_attach(now, Role::Agent);
        old
    }

    /// Attach a customer leg. If the agent is present the call is bridged at once: the agent
    /// hears the bridge beep over the customer's audio, the customer's queued prompts stop.
    pub fn set_customer(&mut self, now: Instant, leg: Leg) -> Option<Leg> {
        let old = self.customer.replace(leg);
        self.after_attach(now, Role::Customer);
        old
    }

    fn after_attach(&mut self, now: Instant, role: Role) {
        let bridged = self.is_bridged();
        let beep = self.config.bridge_beep.clone();
        let (this, peer) = self.pair_mut(role);
        let Some(this) = this else { return };
        if let Some(peer) = peer {
            this.player.clear_queue();
            this.dtmf_out.clear();
            peer.dtmf_out.clear();
            this.next_frame_at = None;
            peer.player.clear_queue();
            peer.next_frame_at = None;
        } else {
            this.activate_player(now);
        }
        if bridged {
            if let (Some(agent), Some(beep)) = (self.agent.as_mut(), beep) {
                // Bounded queue: a full overlay only means no beep.
                let _ = agent.overlay.enqueue(beep);
            }
        }
    }

    /// Detach the customer leg (hang-up or move to another call). The agent goes back to hold
    /// audio with continuous sequence numbers and timestamps; a recording in progress ends.
    pub fn take_customer(&mut self, now: Instant) -> Option<Leg> {
        self.take(now, Role::Customer)
    }

    /// Detach the agent leg (logout, or the agent's phone hung up).
    pub fn take_agent(&mut self, now: Instant) -> Option<Leg> {
        self.take(now, Role::Agent)
    }

    fn take(&mut self, now: Instant, role: Role) -> Option<Leg> {
        let mut leg = self.leg_mut(role).take()?;
        if role == Role::Customer && self.held {
            self.held = false;
            leg.player.set_loop(None);
        }
        leg.overlay.clear_queue();
        leg.next_frame_at = None;
        if let Some(peer) = self.leg_mut(role.peer()).as_mut() {
            peer.overlay.clear_queue();
            peer.activate_player(now);
        }
        self.stop_recording();
        Some(leg)
    }

    /// A supervisor joins (or, same `id`, replaces their leg) in `mode`; the first one starts the
    /// mixing tick. Returns the replaced leg.
    pub fn add_supervisor(
        &mut self,
        now: Instant,
        id: u64,
        mut leg: Leg,
        mode: SupervisorMode,
    ) -> Result<Option<Leg>, SupervisorsFull> {
        leg.mix_seq = leg.config.initial_seq;
        leg.mix_ts = leg.config.initial_timestamp;
        if let Some(s) = self.supervisors.iter_mut().find(|s| s.id == id) {
            s.mode = mode;
            return Ok(Some(std::mem::replace(&mut s.leg, leg)));
        }
        if self.supervisors.len() >= MAX_SUPERVISORS {
            return Err(SupervisorsFull);
        }
        if self.supervisors.is_empty() {
            for l in [self.customer.as_mut(), self.agent.as_mut()].into_iter().flatten() {
                l.mix_fifo.clear();
            }
            self.next_mix_at = Some(now + FRAME);
        }
        self.supervisors.push(Supervisor { id, mode, leg });
        Ok(None)
    }

    /// 保留 (`held`): the customer hears the call's hold audio and the agent nothing; `false`
    /// relays them to each other again (each outgoing stream continues, marked). Supervisors
    /// still hear both parties. Cleared when the customer leaves.
    pub fn set_hold(&mut self, now: Instant, held: bool) {
        if self.held == held {
            return;
        }
        self.held = held;
        let hold = self.config.hold_audio.clone();
        if let Some(c) = self.customer.as_mut() {
            c.player.clear_queue();
            if held {
                c.player.set_loop(hold);
                c.activate_player(now);
            } else {
                c.player.set_loop(None);
                c.next_frame_at = None;
            }
        }
    }

    /// The customer is on hold.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Change a supervisor's mode (listen, whisper, barge); false when no such supervisor.
    pub fn set_supervisor_mode(&mut self, id: u64, mode: SupervisorMode) -> bool {
        match self.supervisors.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.mode = mode;
                true
            }
            None => false,
        }
    }

    /// A supervisor leaves; the last one stops the mixing tick (the parties' streams go back to
    /// plain relay).
    pub fn take_supervisor(&mut self, id: u64) -> Option<Leg> {
        let i = self.supervisors.iter().position(|s| s.id == id)?;
        let s = self.supervisors.swap_remove(i);
        if self.supervisors.is_empty() {
            self.next_mix_at = None;
            for l in [self.customer.as_mut(), self.agent.as_mut()].into_iter().flatten() {
                l.mix_fifo.clear();
            }
        }
        Some(s.leg)
    }

    /// The supervisors present: (id, mode).
    pub fn supervisors(&self) -> impl Iterator<Item = (u64, SupervisorMode)> + '_ {
        self.supervisors.iter().map(|s| (s.id, s.mode))
    }

    /// Statistics of a supervisor's leg.
    pub fn supervisor_stats(&self, id: u64) -> Option<LegStats> {
        self.supervisors.iter().find(|s| s.id == id).map(|s| s.leg.stats())
    }

    /// Whether the mixing tick feeds the leg of `role` (instead of the relay from its peer).
    fn mix_feeds(&self, role: Role) -> bool {
        match role {
            Role::Agent => self.supervisors.iter().any(|s| s.mode.to_agent()),
            Role::Customer => self.supervisors.iter().any(|s| s.mode.to_customer()),
        }
    }

    /// Play a prompt to a leg: queued on its player when not bridged, laid over the relayed
    /// audio when bridged.
    pub fn play(&mut self, now: Instant, role: Role, clip: Clip) -> Result<(), QueueFull> {
        let bridged = self.is_bridged();
        let Some(leg) = self.leg_mut(role).as_mut() else {
            return Ok(());
        };
        if bridged {
            leg.overlay.enqueue(clip)
        } else {
            leg.player.enqueue(clip)?;
            if leg.next_frame_at.is_none() {
                leg.activate_player(now);
            }
            Ok(())
        }
    }

    /// Set the clip a leg loops when not bridged (queue audio to a waiting customer).
    pub fn set_loop(&mut self, now: Instant, role: Role, clip: Option<Clip>) {
        let bridged = self.is_bridged();
        let Some(leg) = self.leg_mut(role).as_mut() else {
            return;
        };
        leg.player.set_loop(clip);
        if !bridged && leg.next_frame_at.is_none() {
            leg.activate_player(now);
        }
    }

    /// Send one digit to a leg as RFC 4733 telephone-events (one packet per 20 ms, the first
    /// marked, then the end packet three times), in place of its player's audio. Only while the
    /// leg is not bridged (the dialer navigating an IVR, a test call); 40..=5000 ms.
    pub fn send_dtmf(&mut self, now: Instant, role: Role, digit: char, duration_ms: u16) -> Result<(), SendDtmfError> {
        let bridged = self.is_bridged();
        let leg = self.leg_mut(role).as_mut().ok_or(SendDtmfError::NoLeg)?;
        if bridged {
            return Err(SendDtmfError::Bridged);
        }
        if leg.config.telephone_event_pt.is_none() {
            return Err(SendDtmfError::NotNegotiated);
        }
        if !leg.dtmf_out.is_empty() {
            return Err(SendDtmfError::Busy);
        }
        let samples = duration_ms.clamp(40, 5000) as u32 * 8;
        let samples = samples.div_ceil(FRAME_SAMPLES as u32) * FRAME_SAMPLES as u32;
        let payloads = crate::dtmf::telephone_event_payloads(digit, samples as u16, FRAME_SAMPLES as u16, 10);
        if payloads.is_empty() {
            return Err(SendDtmfError::NotADigit);
        }
        leg.dtmf_out.extend(payloads);
        leg.dtmf_ts = leg.player_ts;
        leg.dtmf_samples = samples;
        if leg.next_frame_at.is_none() {
            leg.activate_player(now);
        }
        Ok(())
    }

    /// Start recording (customer = channel 1, agent = channel 2), replacing any recording.
    pub fn start_recording(&mut self, now: Instant, id: RecordingId, codec: Codec) {
        self.resume_recording(now, id, codec, 0);
    }

    /// Go on recording into a file that already holds `frames` frames of this call (its earlier
    /// part, with another agent), replacing any recording of this media call.
    pub fn resume_recording(&mut self, now: Instant, id: RecordingId, codec: Codec, frames: u64) {
        self.stop_recording();
        let every = self.config.recording_header_every_ms;
        let mut w = if frames == 0 {
            RecordingWriter::new(codec, every)
        } else {
            RecordingWriter::resume(codec, every, frames)
        };
        Self::drain_writer(&mut self.recording_writes, id, &mut w);
        for leg in [self.customer.as_mut(), self.agent.as_mut()].into_iter().flatten() {
            leg.rec_fifo.clear();
        }
        self.recording = Some((id, w));
        self.next_record_at = Some(now + FRAME);
    }

    /// Finish the recording in progress: buffered audio is flushed and the final header queued.
    pub fn stop_recording(&mut self) {
        let Some((id, mut w)) = self.recording.take() else {
            return;
        };
        let codec = w.codec();
        let mut cust = Vec::new();
        let mut agent = Vec::new();
        if let Some(l) = self.customer.as_mut() {
            codec.encode_into(&l.rec_fifo.drain(..).collect::<Vec<_>>(), &mut cust);
        }
        if let Some(l) = self.agent.as_mut() {
            codec.encode_into(&l.rec_fifo.drain(..).collect::<Vec<_>>(), &mut agent);
        }
        let _ = w.append(&cust, &agent);
        w.finish();
        Self::drain_writer(&mut self.recording_writes, id, &mut w);
        self.next_record_at = None;
    }

    fn drain_writer(queue: &mut VecDeque<(RecordingId, FileWrite)>, id: RecordingId, w: &mut RecordingWriter) {
        while let Some(op) = w.poll_write() {
            queue.push_back((id, op));
        }
    }

    /// Statistics of a leg.
    pub fn stats(&self, role: Role) -> Option<LegStats> {
        self.leg(role).map(Leg::stats)
    }

    /// Drop counters.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Events lost because the event queue was full.
    pub fn events_lost(&self) -> u64 {
        self.events_lost
    }

    fn emit(&mut self, ev: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events_lost += 1;
        } else {
            self.events.push_back(ev);
        }
    }

    /// The RTP counters since the last call (then zero again).
    pub fn take_rtp_counters(&mut self) -> RtpCounters {
        std::mem::take(&mut self.rtp)
    }

    /// Queues a datagram; false when the queue is full (counted as a drop).
    fn send(&mut self, t: Transmit) -> bool {
        if self.transmits.len() >= MAX_TRANSMITS {
            self.drops.add(DropReason::TransmitQueueFull);
            false
        } else {
            self.transmits.push_back(t);
            true
        }
    }

    /// Queues an RTP datagram and counts it.
    fn send_rtp(&mut self, t: Transmit) {
        let n = t.payload.len() as u64;
        if self.send(t) {
            self.rtp.packets_out += 1;
            self.rtp.bytes_out += n;
        }
    }

    /// Handle one datagram received on local socket `socket` from `from`.
    pub fn handle_receive(&mut self, now: Instant, socket: SocketId, from: SocketAddr, data: &[u8]) {
        if let Err(reason) = self.receive(now, socket, from, data) {
            tracing::trace!(reason = reason.label(), ?socket, %from, "media drop");
            self.drops.add(reason);
        }
    }

    fn receive(&mut self, now: Instant, socket: SocketId, from: SocketAddr, data: &[u8]) -> Result<(), DropReason> {
        let role = if self.customer.as_ref().is_some_and(|l| l.owns(socket)) {
            Role::Customer
        } else if self.agent.as_ref().is_some_and(|l| l.owns(socket)) {
            Role::Agent
        } else if let Some(i) = self.supervisors.iter().position(|s| s.leg.owns(socket)) {
            return self.receive_supervisor(now, i, socket, from, data);
        } else {
            return Err(DropReason::UnknownSocket);
        };
        let leg = self.leg(role).ok_or(DropReason::UnknownSocket)?;
        let is_rtcp = if leg.config.rtcp_socket == Some(socket) {
            true
        } else {
            leg.config.rtcp_socket.is_none() && rtp::looks_like_rtcp(data)
        };
        if is_rtcp {
            return self.receive_rtcp(now, role, from, data);
        }
        if from != leg.config.remote_rtp {
            return Err(DropReason::UnknownSource);
        }
        let pkt = rtp::parse(data)?;
        let pt = pkt.payload_type;
        let is_audio = pt == leg.config.codec.payload_type();
        let is_event = Some(pt) == leg.config.telephone_event_pt;
        if !is_audio && !is_event && pt != PT_COMFORT_NOISE {
            return Err(DropReason::UnsupportedPayloadType);
        }
        let Some(leg) = self.leg_mut(role).as_mut() else {
            return Err(DropReason::UnknownSocket);
        };
        match leg.remote_ssrc {
            None => leg.remote_ssrc = Some(pkt.ssrc),
            Some(s) if s == pkt.ssrc => leg.ssrc_candidate = None,
            Some(_) => {
                let count = match leg.ssrc_candidate {
                    Some((c, n)) if c == pkt.ssrc => n + 1,
                    _ => 1,
                };
                leg.ssrc_candidate = Some((pkt.ssrc, count));
                if count < SSRC_CHANGE_PACKETS {
                    return Err(DropReason::UnknownSsrc);
                }
                leg.remote_ssrc = Some(pkt.ssrc);
                leg.ssrc_candidate = None;
                leg.rx = ReceiveStats::default();
                leg.rx_window = SeqWindow::default();
                leg.lost_counted = 0;
                leg.te_rx.reset();
                self.emit(Event::RemoteSsrcChanged { role, ssrc: pkt.ssrc });
            }
        }
        let Some(leg) = self.leg_mut(role).as_mut() else {
            return Err(DropReason::UnknownSocket);
        };
        leg.rx_window.accept(pkt.sequence)?;
        let units = leg.units(now);
        leg.rx.update(pkt.sequence, pkt.timestamp, units, pkt.payload.len());
        let lost = leg.rx.snapshot().cumulative_lost;
        let new_loss = u64::try_from(lost - leg.lost_counted).unwrap_or(0);
        leg.lost_counted = leg.lost_counted.max(lost);
        self.rtp.packets_in += 1;
        self.rtp.bytes_in += data.len() as u64;
        self.rtp.lost += new_loss;
        let Some(leg) = self.leg_mut(role).as_mut() else {
            return Err(DropReason::UnknownSocket);
        };

        if is_event {
            if let Some(digit) = leg.te_rx.receive(pkt.timestamp, pkt.payload) {
                self.emit(Event::Dtmf { role, digit, kind: DtmfKind::Rfc4733 });
            }
            return self.relay_as_is(now, role, &pkt, data, |peer| peer.config.telephone_event_pt);
        }
        if pt == PT_COMFORT_NOISE {
            return self.relay_as_is(now, role, &pkt, data, |_| Some(PT_COMFORT_NOISE));
        }
        self.receive_audio(now, role, &pkt, data)
    }

    fn receive_audio(
        &mut self,
        now: Instant,
        role: Role,
        pkt: &rtp::RtpPacket<'_>,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let recording = self.recording.is_some();
        let bridged = self.is_bridged();
        // With supervisors present this leg's audio also goes to the mix, and a peer the mix
        // feeds gets no relay. Without, one test of an empty Vec: the relay path is unchanged.
        let mixing = !self.supervisors.is_empty();
        let peer_blocked = self.held || (mixing && self.mix_feeds(role.peer()));
        let mut samples = std::mem::take(&mut self.scratch);
        let mut digits = std::mem::take(&mut self.digits);
        samples.clear();
        digits.clear();
        let (this, peer) = self.pair_mut(role);
        let Some(this) = this else {
            return Err(DropReason::UnknownSocket);
        };
        let codec = this.config.codec;
        let needs_transcode = peer.as_ref().is_some_and(|p| p.config.codec != codec || !p.overlay.is_idle());
        if this.goertzel.is_some() || (recording && bridged) || needs_transcode || mixing {
            codec.decode_into(pkt.payload, &mut samples);
        }
        if mixing {
            this.push_mix(&samples);
        }
        if let Some(det) = this.goertzel.as_mut() {
            det.process(&samples, &mut digits);
        }
        if recording && bridged {
            this.rec_fifo.extend(samples.iter().copied());
            let excess = this.rec_fifo.len().saturating_sub(MAX_RECORDING_FIFO);
            this.rec_fifo.drain(..excess);
        }
        let mut result = Ok(());
        let mut prompt_done = false;
        if let Some(peer) = peer.filter(|_| !peer_blocked) {
            result = if needs_transcode {
                prompt_done = peer.overlay.mix_into(&mut samples);
                let mut payload = Vec::with_capacity(samples.len());
                peer.config.codec.encode_into(&samples, &mut payload);
                peer.out
                    .rewrite(
                        now,
                        Source::Relay { ssrc: pkt.ssrc },
                        pkt.sequence,
                        pkt.timestamp,
                        pkt.marker,
                        payload.len(),
                    )
                    .map(|rw| peer.packet(rw, peer.config.codec.payload_type(), &payload))
                    .map_err(DropReason::from)
            } else {
                forward(now, peer, pkt, data, codec.payload_type())
            }
            .map(|t| self.send_rtp(t));
        }
        for &digit in &digits {
            self.emit(Event::Dtmf { role, digit, kind: DtmfKind::InBand });
        }
        if prompt_done {
            self.emit(Event::PromptFinished { role: role.peer() });
        }
        self.scratch = samples;
        self.digits = digits;
        result
    }

    fn relay_as_is(
        &mut self,
        now: Instant,
        role: Role,
        pkt: &rtp::RtpPacket<'_>,
        data: &[u8],
        peer_pt: impl Fn(&Leg) -> Option<u8>,
    ) -> Result<(), DropReason> {
        if self.held || (!self.supervisors.is_empty() && self.mix_feeds(role.peer())) {
            return Ok(()); // on hold, or the peer's stream carries the mix
        }
        let (_, peer) = self.pair_mut(role);
        let Some(peer) = peer else { return Ok(()) };
        let Some(pt) = peer_pt(peer) else {
            return Ok(());
        };
        let t = forward(now, peer, pkt, data, pt)?;
        self.send_rtp(t);
        Ok(())
    }

    /// A datagram from a supervisor's leg: its audio goes to the mix (its RTCP and digits are
    /// not used).
    fn receive_supervisor(
        &mut self,
        now: Instant,
        i: usize,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let mut samples = std::mem::take(&mut self.scratch);
        samples.clear();
        let leg = &mut self.supervisors[i].leg;
        let is_rtcp =
            leg.config.rtcp_socket == Some(socket) || (leg.config.rtcp_socket.is_none() && rtp::looks_like_rtcp(data));
        if is_rtcp {
            return Ok(());
        }
        if from != leg.config.remote_rtp {
            return Err(DropReason::UnknownSource);
        }
        let pkt = rtp::parse(data)?;
        if pkt.payload_type != leg.config.codec.payload_type() {
            if Some(pkt.payload_type) == leg.config.telephone_event_pt || pkt.payload_type == PT_COMFORT_NOISE {
                return Ok(());
            }
            return Err(DropReason::UnsupportedPayloadType);
        }
        leg.rx_window.accept(pkt.sequence)?;
        let units = leg.units(now);
        leg.rx.update(pkt.sequence, pkt.timestamp, units, pkt.payload.len());
        leg.remote_ssrc = Some(pkt.ssrc);
        leg.config.codec.decode_into(pkt.payload, &mut samples);
        leg.push_mix(&samples);
        self.scratch = samples;
        self.rtp.packets_in += 1;
        self.rtp.bytes_in += data.len() as u64;
        Ok(())
    }

    fn receive_rtcp(&mut self, now: Instant, role: Role, from: SocketAddr, data: &[u8]) -> Result<(), DropReason> {
        let Some(leg) = self.leg_mut(role).as_mut() else {
            return Err(DropReason::UnknownSocket);
        };
        if from != leg.config.remote_rtcp.unwrap_or(leg.config.remote_rtp) {
            return Err(DropReason::UnknownSource);
        }
        let packets = stats::parse_compound(data).map_err(|e| match e {
            stats::RtcpError::Short => DropReason::Short,
            stats::RtcpError::WrongVersion => DropReason::WrongVersion,
            _ => DropReason::BadRtcp,
        })?;
        for p in &packets {
            if let RtcpPacket::SenderReport { ssrc, info, .. } = p {
                if Some(*ssrc) == leg.remote_ssrc {
                    let units = leg.units(now);
                    leg.rx.sender_report_received(info.ntp, units);
                }
            }
        }
        self.emit(Event::Rtcp { role, packets });
        Ok(())
    }

    /// Advance timers: player frames, RTCP reports, recording.
    pub fn handle_timeout(&mut self, now: Instant) {
        for role in [Role::Customer, Role::Agent] {
            self.play_frames(now, role);
            self.send_rtcp(now, role);
        }
        self.mix(now);
        self.record(now);
    }

    /// The mixing tick: one frame per 20 ms to each output where two sources meet.
    fn mix(&mut self, now: Instant) {
        let Some(mut at) = self.next_mix_at else { return };
        let mut frames = 0;
        while at <= now && frames <= MAX_FRAMES_BEHIND {
            self.mix_frame(now);
            at += FRAME;
            frames += 1;
        }
        if now.saturating_duration_since(at) > FRAME * MAX_FRAMES_BEHIND {
            at = now + FRAME;
        }
        self.next_mix_at = Some(at);
    }

    fn mix_frame(&mut self, now: Instant) {
        let mut customer = [0i16; FRAME_SAMPLES];
        let mut agent = [0i16; FRAME_SAMPLES];
        if let Some(l) = self.customer.as_mut() {
            l.take_mix_frame(&mut customer);
        }
        if let Some(l) = self.agent.as_mut() {
            l.take_mix_frame(&mut agent);
        }
        // What the agent and the customer hear of the supervisors.
        let mut to_agent = [0i16; FRAME_SAMPLES];
        let mut to_customer = [0i16; FRAME_SAMPLES];
        let mut frame = [0i16; FRAME_SAMPLES];
        for s in &mut self.supervisors {
            frame.fill(0);
            s.leg.take_mix_frame(&mut frame);
            if s.mode.to_agent() {
                mix_add(&mut to_agent, &frame);
            }
            if s.mode.to_customer() {
                mix_add(&mut to_customer, &frame);
            }
        }
        let mut out = Vec::with_capacity(self.supervisors.len() + 2);
        // Every supervisor hears both parties.
        let mut both = customer;
        mix_add(&mut both, &agent);
        for s in &mut self.supervisors {
            out.extend(s.leg.mix_transmit(now, &both));
        }
        let bridged = self.is_bridged();
        let mut prompts_done = Vec::new();
        // A party the mix feeds hears the other party and the supervisors it hears (and its
        // prompts laid over).
        for (role, mut heard, peer) in [(Role::Agent, to_agent, customer), (Role::Customer, to_customer, agent)] {
            if !bridged || self.held || !self.mix_feeds(role) {
                continue;
            }
            if let Some(l) = self.leg_mut(role).as_mut() {
                mix_add(&mut heard, &peer);
                if l.overlay.mix_into(&mut heard) {
                    prompts_done.push(role);
                }
                out.extend(l.mix_transmit(now, &heard));
            }
        }
        for t in out {
            self.send_rtp(t);
        }
        for role in prompts_done {
            self.emit(Event::PromptFinished { role });
        }
    }

    fn play_frames(&mut self, now: Instant, role: Role) {
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut frames_sent = 0;
        loop {
            let Some(leg) = self.leg_mut(role).as_mut() else {
                return;
            };
            let Some(at) = leg.next_frame_at else { return };
            if at > now {
                return;
            }
            if now.saturating_duration_since(at) > FRAME * MAX_FRAMES_BEHIND {
                leg.next_frame_at = Some(now);
            }
            if let Some((marker, event)) = leg.dtmf_out.pop_front() {
                leg.next_frame_at = leg.next_frame_at.map(|t| t + FRAME);
                let seq = leg.player_seq;
                leg.player_seq = seq.wrapping_add(1);
                if leg.dtmf_out.is_empty() {
                    leg.player_ts = leg.dtmf_ts.wrapping_add(leg.dtmf_samples);
                }
                let pt = leg.config.telephone_event_pt.unwrap_or(0);
                let source = Source::Player { epoch: leg.player_epoch };
                if let Ok(rw) = leg.out.rewrite(now, source, seq, leg.dtmf_ts, marker, event.len()) {
                    let t = leg.packet(rw, pt, &event);
                    self.send_rtp(t);
                }
                frames_sent += 1;
                if frames_sent > MAX_FRAMES_BEHIND {
                    return;
                }
                continue;
            }
            let Some(info) = leg.player.next_frame(&mut frame) else {
                leg.next_frame_at = None;
                return;
            };
            leg.next_frame_at = leg.next_frame_at.map(|t| t + FRAME);
            let seq = leg.player_seq;
            let ts = leg.player_ts;
            leg.player_seq = seq.wrapping_add(1);
            leg.player_ts = ts.wrapping_add(FRAME_SAMPLES as u32);
            let codec = leg.config.codec;
            let mut payload = Vec::with_capacity(FRAME_SAMPLES);
            codec.encode_into(&frame, &mut payload);
            let source = Source::Player { epoch: leg.player_epoch };
            if let Ok(rw) = leg.out.rewrite(now, source, seq, ts, false, payload.len()) {
                let t = leg.packet(rw, codec.payload_type(), &payload);
                self.send_rtp(t);
            }
            if info.prompt_finished {
                self.emit(Event::PromptFinished { role });
            }
            frames_sent += 1;
            if frames_sent > MAX_FRAMES_BEHIND {
                return;
            }
        }
    }

    fn send_rtcp(&mut self, now: Instant, role: Role) {
        let interval = self.config.rtcp_interval.max(Duration::from_millis(100));
        let ntp = ntp_add(self.config.ntp_at_origin, now.saturating_duration_since(self.config.ntp_origin));
        let cname = self.config.cname.clone();
        let Some(leg) = self.leg_mut(role).as_mut() else {
            return;
        };
        if leg.next_rtcp_at > now {
            return;
        }
        while leg.next_rtcp_at <= now {
            leg.next_rtcp_at += spread_interval(&mut leg.rtcp_spread, interval);
        }
        let (packets, octets) = leg.out.sent();
        let info = leg.out.last_sent().map(|(_, ts, at)| {
            let since = now.saturating_duration_since(at).as_micros() * 8 / 1000;
            SenderInfo {
                ntp,
                rtp_timestamp: ts.wrapping_add(since as u32),
                packet_count: packets as u32,
                octet_count: octets as u32,
            }
        });
        let units = leg.units(now);
        let block = leg.remote_ssrc.map(|s| leg.rx.report_block(s, units));
        let payload = stats::build_compound(leg.out.ssrc(), info, block, &cname);
        let (socket, destination) = leg.rtcp_destination();
        if let Some(b) = &block {
            self.rtp.jitter[role as usize] = Some(b.jitter);
        }
        self.send(Transmit { socket, destination, payload });
    }

    fn record(&mut self, now: Instant) {
        let Some(mut at) = self.next_record_at else {
            return;
        };
        let mut wrote = 0;
        while at <= now && wrote <= MAX_FRAMES_BEHIND {
            let Some((id, w)) = self.recording.as_mut() else {
                return;
            };
            let codec = w.codec();
            let mut chans: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
            for (leg, out) in [self.customer.as_mut(), self.agent.as_mut()].into_iter().zip(chans.iter_mut()) {
                out.resize(FRAME_SAMPLES, codec.silence());
                if let Some(leg) = leg {
                    let n = leg.rec_fifo.len().min(FRAME_SAMPLES);
                    for (o, s) in out.iter_mut().zip(leg.rec_fifo.drain(..n)) {
                        *o = codec.encode(s);
                    }
                }
            }
            let id = *id;
            let result = if self.recording_writes.len() >= MAX_RECORDING_WRITES {
                Err(AppendError::Backlog)
            } else {
                w.append(&chans[0], &chans[1])
            };
            Self::drain_writer(&mut self.recording_writes, id, w);
            if let Err(reason) = result {
                self.stop_recording();
                self.emit(Event::RecordingStopped { id, reason });
                return;
            }
            at += FRAME;
            wrote += 1;
        }
        if now.saturating_duration_since(at) > FRAME * MAX_FRAMES_BEHIND {
            at = now + FRAME;
        }
        self.next_record_at = Some(at);
    }

    /// The call's next output (see the module docs for the loop): datagrams first, then
    /// recording writes, then events; [`Output::Timeout`] once nothing is queued. Drain it after
    /// every input.
    pub fn poll_output(&mut self) -> Output {
        if let Some(t) = self.transmits.pop_front() {
            return Output::Transmit(t);
        }
        if let Some((id, write)) = self.recording_writes.pop_front() {
            return Output::RecordingWrite { id, write };
        }
        if let Some(e) = self.events.pop_front() {
            return Output::Event(e);
        }
        Output::Timeout(self.poll_timeout())
    }

    /// When `handle_timeout` must next be called.
    fn poll_timeout(&self) -> Option<Instant> {
        let legs = [self.customer.as_ref(), self.agent.as_ref()];
        legs.into_iter()
            .flatten()
            .flat_map(|l| [l.next_frame_at, Some(l.next_rtcp_at)])
            .chain([self.next_record_at, self.next_mix_at])
            .flatten()
            .min()
    }
}

/// Copy a packet to `peer`, rewriting its header in place.
fn forward(
    now: Instant,
    peer: &mut Leg,
    pkt: &rtp::RtpPacket<'_>,
    data: &[u8],
    pt: u8,
) -> Result<Transmit, DropReason> {
    let rw = peer.out.rewrite(
        now,
        Source::Relay { ssrc: pkt.ssrc },
        pkt.sequence,
        pkt.timestamp,
        pkt.marker,
        pkt.payload.len(),
    )?;
    let mut payload = data.to_vec();
    rtp::rewrite_in_place(
        &mut payload,
        HeaderFields {
            marker: rw.marker,
            payload_type: pt,
            sequence: rw.sequence,
            timestamp: rw.timestamp,
            ssrc: rw.ssrc,
        },
    );
    Ok(Transmit { socket: peer.config.rtp_socket, destination: peer.config.remote_rtp, payload })
}

/// Add a duration to a 64-bit NTP timestamp (32.32 fixed point).
fn ntp_add(ntp: u64, d: Duration) -> u64 {
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ntp.wrapping_add(d.as_secs() << 32).wrapping_add(frac)
}
