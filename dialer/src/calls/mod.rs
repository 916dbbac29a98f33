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
//! The shape (quinn-proto's endpoint and connections): [`CallControl`] is the demultiplexer. It owns
//! the shard's SIP endpoint, the routing tables (client transaction and Call-ID to their owner),
//! the RTP port pool, the timer index and the output queues (`io`), and the registrar
//! ([`Phones`]); each customer call is a `customer::CustomerCall` and each agent leg an
//! `agent_leg::AgentLeg`, state machines of their own with their phase, dialog and deadline, acting
//! only through what the demux lends them. Moves between a customer and an agent (bridge, hold,
//! park, transfer, conference, supervisors: [`supervise`], [`outside`]) are the demux's.
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

mod agent_leg;
pub mod browser;
mod customer;
mod demux;
pub mod dtmf_entry;
mod io;
pub mod outside;
pub mod park_keys;
pub mod phones;
pub mod supervise;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use media::shard::{CallId as MediaCallId, Control};
use media::{Clip, SocketId};
use sip::auth::{Credentials, NonceKeys};
use sip::sdp::{self, LocalMedia, Negotiated};

pub use browser::DialBrowser;
pub use demux::CallControl;
pub use dtmf_entry::{DtmfEntry, EntryError, EntryParser};
pub use outside::{conference_leg_id, ConferenceEnd, OutsideFailure, TransferOutside};
pub use park_keys::{ParkKeyParser, ParkKeys};
pub use phones::{Account, AuthStats, DigestChallenges, PhoneSettings, Phones};
pub use supervise::{Supervise, SupervisionEnd, SupervisorPhone};

/// Payload type we offer for RFC 4733 telephone-event.
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// The prefix that withholds the caller ID in Japan (非通知).
pub const WITHHOLD_PREFIX: &str = "184";
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

/// The customer call whose own media call `m` is.
fn customer_of_media(m: MediaCallId) -> Option<u64> {
    (m.0 & (3 << 62) == CUSTOMER_MEDIA).then_some(m.0 & (CUSTOMER_MEDIA - 1))
}

/// The agent whose nailed-up leg's media call `m` is.
fn agent_of_media(m: MediaCallId) -> Option<u64> {
    (m.0 & (3 << 62) == AGENT_MEDIA).then_some(m.0 & (CUSTOMER_MEDIA - 1))
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
        assert_eq!(customer_of_media(customer_media_call(42)), Some(42));
        assert_eq!(agent_of_media(customer_media_call(42)), None);
        assert_eq!(agent_of_media(agent_media_call(7)), Some(7));
        assert_eq!(customer_of_media(agent_media_call(7)), None);
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
