//! A shard's messages: the [`Control`]s the control plane sends to the calls on a shard, and the
//! [`Report`]s a shard sends back. The shard itself, which applies them to its [`Call`]s, and its
//! drivers live in `media-driver`; a sans-IO user of the media plane (the dialer's call control)
//! speaks to it in these types alone.
//!
//! [`Call`]: crate::Call

use std::net::UdpSocket;
use std::path::PathBuf;

use crate::call::{CallConfig, DropCounters, Event, LegConfig, LegStats, RecordingId, Role, SocketId, SupervisorMode};
use crate::g711::Codec;

/// Id of a call on a shard, chosen by the control plane (unique per shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A message to a shard.
#[derive(Debug)]
pub enum Control {
    /// Take ownership of a bound UDP socket (RTP, RTCP or SIP) under `id`. The driver makes it
    /// non-blocking and registers it; datagrams on it go to the call whose leg names it.
    AddSocket { id: SocketId, socket: UdpSocket },
    /// Close a socket.
    RemoveSocket { id: SocketId },
    /// Create an empty call.
    AddCall { call: CallId, config: Box<CallConfig> },
    /// Attach (or replace) the agent's nailed-up leg.
    SetAgent { call: CallId, leg: Box<LegConfig> },
    /// Attach (or replace) the customer leg; bridges if the agent is present.
    SetCustomer { call: CallId, leg: Box<LegConfig> },
    /// Detach the customer leg (hang-up); reported as [`Report::LegReleased`].
    TakeCustomer { call: CallId },
    /// Move the customer leg, with its state, to another call on this shard.
    MoveCustomer { from: CallId, to: CallId },
    /// A supervisor's leg joins the call (or replaces their leg) in `mode`; `id` is the
    /// supervisor's (their user id). Refused when the call has its most supervisors already.
    AddSupervisor { call: CallId, id: u64, leg: Box<LegConfig>, mode: SupervisorMode },
    /// 保留 (`held`): the customer hears the hold audio and the agent nothing; `false` relays
    /// them to each other again.
    SetHold { call: CallId, held: bool },
    /// Change a supervisor's mode (モニタリング, ささやき, 割込).
    SetSupervisorMode { call: CallId, id: u64, mode: SupervisorMode },
    /// The supervisor leaves the call; reported as [`Report::SupervisorReleased`].
    TakeSupervisor { call: CallId, id: u64 },
    /// Start recording the call to a new file at `path` (created, truncated).
    StartRecording { call: CallId, id: RecordingId, path: PathBuf, codec: Codec },
    /// Finish the call's recording; reported as [`Report::RecordingClosed`].
    StopRecording { call: CallId },
    /// Play a clip to a leg.
    Play { call: CallId, role: Role, clip: crate::player::Clip },
    /// Loop a clip to a leg whenever nothing else plays to it (`None` stops the loop): waiting
    /// audio (呼中音声) for a customer not yet bridged.
    SetLoop { call: CallId, role: Role, clip: Option<crate::player::Clip> },
    /// End the call: recording finished, legs released, reported as [`Report::CallEnded`].
    EndCall { call: CallId },
    /// Attach (or replace) the agent's leg as a browser phone: `offer` is the browser's SDP offer,
    /// `leg.rtp_socket` a socket added to the shard, bound at `local` (the ICE-lite host
    /// candidate). Answered by [`Report::WebRtcAnswer`] or [`Report::WebRtcFailed`].
    SetWebRtcAgent { call: CallId, leg: Box<LegConfig>, local: std::net::SocketAddr, offer: String },
    /// A new offer from the browser on the call's WebRTC agent leg (an ICE restart, a rejoin):
    /// answered like [`Control::SetWebRtcAgent`].
    WebRtcOffer { call: CallId, offer: String },
    /// A supervisor's browser phone joins the call in `mode` (see [`Control::AddSupervisor`]):
    /// `offer` is the supervisor's page's SDP offer, `leg.rtp_socket` a socket added to the shard,
    /// bound at `local`. Answered by [`Report::SupervisorWebRtc`].
    AddWebRtcSupervisor {
        call: CallId,
        id: u64,
        leg: Box<LegConfig>,
        local: std::net::SocketAddr,
        offer: String,
        mode: SupervisorMode,
    },
    /// Answered by [`Report::Pong`] once every earlier message is applied (a barrier).
    Ping { token: u64 },
    /// Stop the shard's driver after ending every call.
    Shutdown,
}

/// A message from a shard.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// An event of a call's core (DTMF, prompt finished, RTCP, ...).
    Event { call: CallId, event: Event },
    /// A leg left a call.
    LegReleased { call: CallId, role: Role, stats: LegStats },
    /// A supervisor's leg left a call (taken, replaced or the call ended).
    SupervisorReleased { call: CallId, id: u64, stats: LegStats },
    /// A call ended.
    CallEnded { call: CallId, drops: DropCounters, customer: Option<LegStats>, agent: Option<LegStats> },
    /// A recording file was closed; `error` if a write to it failed (the file then stops growing
    /// but stays readable up to its last header).
    RecordingClosed { call: CallId, id: RecordingId, path: PathBuf, bytes: u64, error: Option<String> },
    /// A control message could not be applied (unknown call, duplicate id, ...). Nothing changed.
    Refused { call: Option<CallId>, reason: &'static str },
    /// A driver could not register or use a socket.
    SocketError { id: SocketId, error: String },
    /// The SDP answer to a browser phone's offer.
    WebRtcAnswer { call: CallId, sdp: String },
    /// A browser phone's offer was refused (nothing changed), or its leg failed.
    WebRtcFailed { call: CallId, error: String },
    /// A browser phone's media path came up (ICE and DTLS) or went down (ICE lost it).
    WebRtcConnection { call: CallId, connected: bool },
    /// What became of a supervisor's browser phone on a call ([`Control::AddWebRtcSupervisor`]).
    SupervisorWebRtc { call: CallId, id: u64, event: WebRtcSupervisorEvent },
    /// Answer to [`Control::Ping`].
    Pong { token: u64 },
}

/// A supervisor's browser phone, as [`Report::SupervisorWebRtc`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebRtcSupervisorEvent {
    /// The SDP answer to the supervisor's page.
    Answer(String),
    /// The offer was refused (nothing joined), or the leg failed.
    Failed(String),
    /// The media path came up (ICE and DTLS) or went down.
    Connected(bool),
    /// The page closed the connection (it left).
    Closed,
}
