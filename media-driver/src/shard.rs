//! One shard's media state, independent of the I/O runtime that drives it.
//!
//! A [`Shard`] owns the [`Call`]s placed on it, the demultiplexing table from local socket to
//! call, the timer queue of the calls' deadlines and the open recording files. It owns no
//! socket and reads no clock: a driver ([`crate`]) owns the sockets ([`SocketTable`]),
//! reads the clock and feeds the shard three inputs, [`Shard::handle_input`],
//! [`Shard::handle_datagram`] and [`Shard::handle_timeout`], each of which appends the datagrams
//! to send to a caller's vector. The control plane (the dialer, other shards) talks to a shard
//! only by [`Control`] messages in and [`Report`]s out over bounded crossbeam channels; nothing
//! is shared behind a lock.
//!
//! Recording writes are applied here, in order, with positioned writes (`pwrite`) on the shard's
//! thread: they land in the page cache, one small write per call every 20 ms.
//!
//! A shard may host one [`ShardApp`] (the dialer's SIP): it runs on the shard's thread beside the
//! calls, so that a call's signalling and media live on one shard. It owns the sockets it adds as
//! app sockets, gets their datagrams, its own messages ([`Input::App`], of its
//! [`ShardApp::Message`] type: checked when compiled, never downcast) and every [`Report`] of the
//! shard (instead of the report channel), and drives the calls through a [`ShardCtx`] synchronously.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};

use media::call::{Call, Leg, LegStats, Output, RecordingId, Role, RtpCounters, SocketId, Transmit};
use media::recording::FileWrite;

use crate::tcp::{TcpIn, TcpOut, TcpStats};
use crate::webrtc::{Pumped, WebRtcEvent, WebRtcLeg, WebRtcLegs, WEBRTC_PEER};
pub use media::shard::{CallId, Control, Report, WebRtcSupervisorEvent};

/// Bound of the report channel a shard writes to.
pub const MAX_REPORTS: usize = 4096;
/// Bound of the input channel a shard reads from.
pub const MAX_CONTROLS: usize = 4096;
/// Calls one shard accepts.
pub const MAX_CALLS: usize = 20_000;
/// Jitter samples a shard keeps until its driver takes them (about a second's worth at
/// [`MAX_CALLS`]; beyond it samples are dropped).
pub const MAX_JITTER_SAMPLES: usize = 16_384;

/// Counters of one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Datagrams handed to a call.
    pub received: u64,
    /// Datagrams on a socket no call names.
    pub unrouted: u64,
    /// Datagrams handed to the driver to send.
    pub transmits: u64,
    /// Datagrams the driver failed to send (socket buffer full, socket gone).
    pub send_errors: u64,
    /// Reports dropped because the report channel was full.
    pub reports_dropped: u64,
    /// Recordings stopped by a file error: the file could not be created, or a write failed (a
    /// full disk). The recording ends there, its header counting only what was written before;
    /// the call goes on.
    pub recording_errors: u64,
    /// RTP packets and bytes received from and sent to the calls' legs, and packets lost on the
    /// received streams (sums of the calls' [`media::call::RtpCounters`]).
    pub rtp_packets_in: u64,
    pub rtp_bytes_in: u64,
    pub rtp_packets_out: u64,
    pub rtp_bytes_out: u64,
    pub rtp_lost: u64,
    /// The browser phones' TCP listener (`crate::tcp`): connections, frames and what was
    /// closed or dropped.
    pub tcp: TcpStats,
}

impl ShardStats {
    fn add_rtp(&mut self, c: &RtpCounters) {
        self.rtp_packets_in += c.packets_in;
        self.rtp_bytes_in += c.bytes_in;
        self.rtp_packets_out += c.packets_out;
        self.rtp_bytes_out += c.bytes_out;
        self.rtp_lost += c.lost;
    }
}

/// What the driver must do after a control message.
#[derive(Debug)]
pub enum SocketOp {
    Add(SocketId, UdpSocket),
    Remove(SocketId),
    Shutdown,
}

/// Sockets by id, for drivers (the shard itself holds none).
#[derive(Debug)]
pub struct SocketTable<S> {
    sockets: HashMap<SocketId, S>,
}

impl<S> Default for SocketTable<S> {
    fn default() -> Self {
        SocketTable { sockets: HashMap::new() }
    }
}

impl<S> SocketTable<S> {
    pub fn insert(&mut self, id: SocketId, socket: S) -> Option<S> {
        self.sockets.insert(id, socket)
    }

    pub fn remove(&mut self, id: SocketId) -> Option<S> {
        self.sockets.remove(&id)
    }

    pub fn get(&self, id: SocketId) -> Option<&S> {
        self.sockets.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// What a shard's channel carries: a control for its calls, or a message for its app.
#[derive(Debug)]
pub enum Input<M> {
    Control(Control),
    /// A message for the shard's [`ShardApp`].
    App(M),
}

impl<M> From<Control> for Input<M> {
    fn from(control: Control) -> Self {
        Input::Control(control)
    }
}

/// An application on the shard's thread (the dialer's SIP user agent). Every method gets a
/// [`ShardCtx`] to drive the shard's calls, add sockets and send datagrams; none may block.
pub trait ShardApp: Send + 'static {
    /// The app's own messages ([`Input::App`]).
    type Message: Send + 'static;
    /// A datagram on one of the app's sockets ([`ShardCtx::add_app_socket`]).
    fn handle_datagram(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
        ctx: &mut ShardCtx<'_>,
    );
    /// One of the app's messages ([`Input::App`]).
    fn handle_message(&mut self, now: Instant, message: Self::Message, ctx: &mut ShardCtx<'_>);
    /// A report of the shard (call events, ended calls, closed recordings, refusals). Forward what
    /// the control plane needs with [`ShardCtx::report`].
    fn handle_report(&mut self, now: Instant, report: Report, ctx: &mut ShardCtx<'_>);
    /// [`ShardApp::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now: Instant, ctx: &mut ShardCtx<'_>);
    /// When `handle_timeout` is next due.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// The app of a shard that hosts none: it has no value, so none of its methods is ever called,
/// and its message type has none either.
#[derive(Debug)]
pub enum NoApp {}

impl ShardApp for NoApp {
    type Message = std::convert::Infallible;

    fn handle_datagram(&mut self, _: Instant, _: SocketId, _: SocketAddr, _: &[u8], _: &mut ShardCtx<'_>) {
        match *self {}
    }

    fn handle_message(&mut self, _: Instant, message: Self::Message, _: &mut ShardCtx<'_>) {
        match message {}
    }

    fn handle_report(&mut self, _: Instant, _: Report, _: &mut ShardCtx<'_>) {
        match *self {}
    }

    fn handle_timeout(&mut self, _: Instant, _: &mut ShardCtx<'_>) {
        match *self {}
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match *self {}
    }
}

/// The shard as its [`ShardApp`] sees it during a call into the app.
pub struct ShardCtx<'a> {
    shard: &'a mut Core,
    now: Instant,
    out: &'a mut Vec<Transmit>,
}

impl ShardCtx<'_> {
    /// Apply a control message to the shard's calls now (socket messages are queued for the
    /// driver). Its reports reach the app after the current call returns.
    pub fn control(&mut self, control: Control) {
        if let Some(op) = self.shard.apply_control(self.now, control, self.out) {
            self.shard.socket_ops.push_back(op);
        }
    }

    /// Hand a bound socket to the driver as one of the app's: its datagrams go to
    /// [`ShardApp::handle_datagram`].
    pub fn add_app_socket(&mut self, id: SocketId, socket: UdpSocket) {
        self.shard.app_sockets.insert(id);
        self.shard.socket_ops.push_back(SocketOp::Add(id, socket));
    }

    /// Hand a bound socket to the driver for a call leg (RTP): routed once a leg names it.
    pub fn add_socket(&mut self, id: SocketId, socket: UdpSocket) {
        self.shard.app_sockets.remove(&id);
        self.shard.socket_ops.push_back(SocketOp::Add(id, socket));
    }

    /// Close a socket (the app's or a leg's).
    pub fn remove_socket(&mut self, id: SocketId) {
        self.shard.app_sockets.remove(&id);
        self.shard.socket_ops.push_back(SocketOp::Remove(id));
    }

    /// Send a datagram from one of the shard's sockets.
    pub fn send(&mut self, socket: SocketId, destination: SocketAddr, payload: Vec<u8>) {
        self.shard.stats.transmits += 1;
        self.out.push(Transmit { socket, destination, payload });
    }

    /// Report to the control plane (the shard's bounded report channel; full means a counted drop).
    pub fn report(&mut self, report: Report) {
        self.shard.reports.send_out(report, &mut self.shard.stats);
    }

    /// A call of the shard, for inspection.
    pub fn call(&self, call: CallId) -> Option<&Call> {
        self.shard.call(call)
    }

    /// Send an RFC 4733 digit on a leg of a call.
    pub fn send_dtmf(
        &mut self,
        call: CallId,
        role: Role,
        digit: char,
        duration_ms: u16,
    ) -> Result<(), SendDtmfErrorOrNoCall> {
        let now = self.now;
        let r = match self.shard.calls.get_mut(&call) {
            Some(slot) => slot.call.send_dtmf(now, role, digit, duration_ms).map_err(SendDtmfErrorOrNoCall::Dtmf),
            None => Err(SendDtmfErrorOrNoCall::NoCall),
        };
        self.shard.after_input(now, call, self.out);
        r
    }

    /// The shard's counters.
    pub fn stats(&self) -> ShardStats {
        self.shard.stats
    }
}

/// Why [`ShardCtx::send_dtmf`] sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendDtmfErrorOrNoCall {
    #[error("no such call")]
    NoCall,
    #[error("{0}")]
    Dtmf(media::call::SendDtmfError),
}

/// Where reports go: the channel, or (with an app) the app's inbox first.
struct Reports {
    tx: Sender<Report>,
    inbox: Option<VecDeque<Report>>,
}

impl Reports {
    /// A report of the shard: to the app when there is one, else out.
    fn send(&mut self, report: Report, stats: &mut ShardStats) {
        match &mut self.inbox {
            Some(inbox) if inbox.len() < MAX_REPORTS => inbox.push_back(report),
            Some(_) => stats.reports_dropped += 1,
            None => self.send_out(report, stats),
        }
    }

    fn send_out(&mut self, report: Report, stats: &mut ShardStats) {
        match self.tx.try_send(report) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => stats.reports_dropped += 1,
        }
    }
}

struct Slot {
    call: Call,
    /// The deadline queued in the timer heap for this call, if any.
    deadline: Option<Instant>,
}

struct OpenRecording {
    call: CallId,
    path: PathBuf,
    file: Option<File>,
    bytes: u64,
    error: Option<String>,
}

/// Whole frames already in the recording at `path` when it is one of ours in `codec` (0 when
/// there is none, or it is not: then it is written anew).
fn earlier_frames(path: &std::path::Path, codec: media::Codec) -> u64 {
    use std::io::Read;
    let Ok(mut f) = File::open(path) else { return 0 };
    let Ok(len) = f.metadata().map(|m| m.len()) else { return 0 };
    let mut head = [0u8; media::recording::HEADER_LEN];
    if len <= head.len() as u64 || f.read_exact(&mut head).is_err() {
        return 0;
    }
    match media::recording::read_recording(&head) {
        Ok(r) if r.codec == codec => (len - head.len() as u64) / 2,
        _ => 0,
    }
}

/// One shard's calls, routes, timers and recordings (see module docs), and its app.
pub struct Shard<A: ShardApp = NoApp> {
    core: Core,
    /// The hosted app; `None` while it is being called (its ctx borrows the core), and always
    /// for [`NoApp`].
    app: Option<A>,
    app_deadline: Option<Instant>,
}

/// Everything of a shard but its app: what a [`ShardCtx`] lends the app.
struct Core {
    calls: HashMap<CallId, Slot>,
    routes: HashMap<SocketId, CallId>,
    timers: BinaryHeap<Reverse<(Instant, CallId)>>,
    recordings: HashMap<RecordingId, OpenRecording>,
    reports: Reports,
    stats: ShardStats,
    /// Interarrival jitter samples (timestamp units) not yet taken by the driver: one per stream per
    /// RTCP report, and one when a leg leaves.
    jitter_samples: Vec<u32>,
    due: Vec<(Instant, CallId)>,
    app_sockets: HashSet<SocketId>,
    /// Socket operations for the driver, from the app.
    socket_ops: VecDeque<SocketOp>,
    /// Browser phones' agent legs, in front of their calls (`crate::webrtc`).
    webrtc: WebRtcLegs,
    /// The port of the driver's TCP listener: each WebRTC leg offers a passive TCP candidate on
    /// it, at its UDP candidate's address.
    tcp_port: Option<u16>,
}

impl Shard<NoApp> {
    /// A shard writing its reports to `reports` (use a bounded channel, e.g. [`MAX_REPORTS`]).
    pub fn new(reports: Sender<Report>) -> Shard {
        Shard { core: Core::new(reports, false), app: None, app_deadline: None }
    }
}

impl<A: ShardApp> Shard<A> {
    /// A shard hosting `app`: the app gets every report of the shard (see [`ShardApp`]).
    pub fn with_app(reports: Sender<Report>, app: A) -> Shard<A> {
        Shard { core: Core::new(reports, true), app_deadline: app.poll_timeout(), app: Some(app) }
    }

    /// A shard hosting `app` if there is one.
    pub fn maybe_with_app(reports: Sender<Report>, app: Option<A>) -> Shard<A> {
        match app {
            Some(app) => Shard::with_app(reports, app),
            None => Shard { core: Core::new(reports, false), app: None, app_deadline: None },
        }
    }

    /// The next socket operation the app asked for; drivers apply them after every input.
    pub fn poll_socket_op(&mut self) -> Option<SocketOp> {
        self.core.socket_ops.pop_front()
    }

    /// Calls `f` on the app with a context over the shard, then hands the app the reports made
    /// meanwhile (until there are none).
    fn with_app_ctx(&mut self, now: Instant, out: &mut Vec<Transmit>, f: impl FnOnce(&mut A, &mut ShardCtx<'_>)) {
        let Some(mut app) = self.app.take() else { return };
        {
            let mut ctx = ShardCtx { shard: &mut self.core, now, out };
            f(&mut app, &mut ctx);
        }
        self.app = Some(app);
        self.deliver_to_app(now, out);
    }

    /// Hands queued reports to the app; bounded by the inbox (reports its handling makes are
    /// delivered in the same loop).
    fn deliver_to_app(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        let Some(mut app) = self.app.take() else { return };
        for _ in 0..(4 * MAX_REPORTS) {
            let Some(r) = self.core.reports.inbox.as_mut().and_then(VecDeque::pop_front) else { break };
            let mut ctx = ShardCtx { shard: &mut self.core, now, out };
            app.handle_report(now, r, &mut ctx);
        }
        self.app_deadline = app.poll_timeout();
        self.app = Some(app);
    }

    pub fn stats(&self) -> ShardStats {
        self.core.stats
    }

    /// The jitter samples (RFC 3550 A.8, timestamp units) gathered since the last call.
    pub fn drain_jitter_samples(&mut self) -> std::vec::Drain<'_, u32> {
        self.core.jitter_samples.drain(..)
    }

    /// Count datagrams a driver failed to send.
    pub fn count_send_error(&mut self) {
        self.core.stats.send_errors += 1;
    }

    /// Calls on this shard.
    pub fn call_count(&self) -> usize {
        self.core.calls.len()
    }

    /// A call, for inspection.
    pub fn call(&self, call: CallId) -> Option<&Call> {
        self.core.call(call)
    }

    /// Report something to the control plane (bounded: a full channel drops and counts).
    pub fn report(&mut self, report: Report) {
        self.core.report(report);
    }

    /// Apply a control message or hand the app its message. Socket operations are returned for
    /// the driver to perform (and, from a hosted app, queued: see [`Shard::poll_socket_op`]).
    pub fn handle_input(
        &mut self,
        now: Instant,
        input: Input<A::Message>,
        out: &mut Vec<Transmit>,
    ) -> Option<SocketOp> {
        match input {
            Input::App(message) => {
                if self.app.is_some() {
                    self.with_app_ctx(now, out, |app, ctx| app.handle_message(now, message, ctx));
                } else {
                    self.core.refuse(None, "no app on this shard");
                }
                None
            }
            Input::Control(control) => {
                let op = self.core.apply_control(now, control, out);
                self.deliver_to_app(now, out);
                op
            }
        }
    }

    /// Apply a control message (see [`Shard::handle_input`]).
    pub fn handle_control(&mut self, now: Instant, control: Control, out: &mut Vec<Transmit>) -> Option<SocketOp> {
        self.handle_input(now, Input::Control(control), out)
    }

    /// Handle a datagram received on `socket` from `from`; datagrams to send are appended to
    /// `out`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        if self.core.app_sockets.contains(&socket) {
            self.core.stats.received += 1;
            self.with_app_ctx(now, out, |app, ctx| app.handle_datagram(now, socket, from, data, ctx));
            return;
        }
        self.core.handle_datagram(now, socket, from, data, out);
        if self.app.is_some() {
            self.deliver_to_app(now, out);
        }
    }

    /// The port of the driver's TCP listener, whose passive TCP candidate every WebRTC leg set up
    /// from now on offers (`None`: UDP only).
    pub fn set_tcp_port(&mut self, port: Option<u16>) {
        self.core.tcp_port = port;
    }

    /// A frame (or a closing) from the driver's TCP thread.
    pub fn handle_tcp(&mut self, now: Instant, input: TcpIn, out: &mut Vec<Transmit>) {
        if let Some((socket, pumped)) = self.core.webrtc.handle_tcp(now, input, out) {
            self.core.stats.received += 1;
            if let Some(call) = self.core.webrtc.call_of(socket) {
                self.core.webrtc_pumped(now, call, socket, pumped, out);
            }
        }
        if self.app.is_some() {
            self.deliver_to_app(now, out);
        }
    }

    /// The next frame or closing for the driver's TCP thread.
    pub fn poll_tcp_out(&mut self) -> Option<TcpOut> {
        self.core.webrtc.poll_tcp_out()
    }

    /// The TCP thread's counters, to which the shard adds its own (see [`ShardStats::tcp`]).
    pub fn set_tcp_stats(&mut self, thread: TcpStats) {
        let (unrouted, dropped) = self.core.webrtc.tcp_counts();
        self.core.stats.tcp = TcpStats { unrouted, dropped: thread.dropped + dropped, ..thread };
    }

    /// Run every call whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.core.handle_timeout(now, out);
        if self.app_deadline.is_some_and(|at| at <= now) {
            self.with_app_ctx(now, out, |app, ctx| app.handle_timeout(now, ctx));
        } else if self.app.is_some() {
            self.deliver_to_app(now, out);
        }
    }

    /// When [`Shard::handle_timeout`] must next be called (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.core.timers.peek().map(|Reverse((at, _))| *at);
        [calls, self.app_deadline, self.core.webrtc.poll_timeout()].into_iter().flatten().min()
    }
}

impl Core {
    fn new(reports: Sender<Report>, app: bool) -> Core {
        Core {
            calls: HashMap::new(),
            routes: HashMap::new(),
            timers: BinaryHeap::new(),
            recordings: HashMap::new(),
            reports: Reports { tx: reports, inbox: app.then(VecDeque::new) },
            stats: ShardStats::default(),
            jitter_samples: Vec::new(),
            due: Vec::new(),
            app_sockets: HashSet::new(),
            socket_ops: VecDeque::new(),
            webrtc: WebRtcLegs::default(),
            tcp_port: None,
        }
    }

    fn sample_jitter(samples: &mut Vec<u32>, jitter: u32) {
        if samples.len() < MAX_JITTER_SAMPLES {
            samples.push(jitter);
        }
    }

    /// The final jitter of a leaving leg's received stream (when it received enough to have one).
    fn sample_leg_end(&mut self, stats: &LegStats) {
        if stats.received.packets > 1 {
            Self::sample_jitter(&mut self.jitter_samples, stats.received.jitter);
        }
    }

    fn call(&self, call: CallId) -> Option<&Call> {
        self.calls.get(&call).map(|s| &s.call)
    }

    fn report(&mut self, report: Report) {
        self.reports.send(report, &mut self.stats);
    }

    fn apply_control(&mut self, now: Instant, control: Control, out: &mut Vec<Transmit>) -> Option<SocketOp> {
        let touched = match &control {
            Control::AddCall { call, .. }
            | Control::SetAgent { call, .. }
            | Control::SetCustomer { call, .. }
            | Control::TakeCustomer { call }
            | Control::AddSupervisor { call, .. }
            | Control::SetSupervisorMode { call, .. }
            | Control::SetHold { call, .. }
            | Control::TakeSupervisor { call, .. }
            | Control::StartRecording { call, .. }
            | Control::StopRecording { call }
            | Control::Play { call, .. }
            | Control::SetLoop { call, .. }
            | Control::SetWebRtcAgent { call, .. }
            | Control::AddWebRtcSupervisor { call, .. } => Some(*call),
            Control::MoveCustomer { to, .. } => Some(*to),
            _ => None,
        };
        match control {
            Control::AddSocket { id, socket } => return Some(SocketOp::Add(id, socket)),
            Control::RemoveSocket { id } => return Some(SocketOp::Remove(id)),
            Control::Shutdown => {
                let ids: Vec<CallId> = self.calls.keys().copied().collect();
                for call in ids {
                    self.end_call(now, call);
                }
                return Some(SocketOp::Shutdown);
            }
            Control::AddCall { call, config } => {
                if self.calls.contains_key(&call) {
                    self.refuse(Some(call), "call id already on this shard");
                } else if self.calls.len() >= MAX_CALLS {
                    self.refuse(Some(call), "shard is full");
                } else {
                    self.calls.insert(call, Slot { call: Call::new(*config), deadline: None });
                }
            }
            Control::SetAgent { call, leg } => self.set_leg(now, call, Role::Agent, Leg::new(now, *leg)),
            Control::SetCustomer { call, leg } => self.set_leg(now, call, Role::Customer, Leg::new(now, *leg)),
            Control::TakeCustomer { call } => {
                if let Some(leg) = self.with_call(call, |c| c.take_customer(now)).flatten() {
                    self.unroute(&leg);
                    self.sample_leg_end(&leg.stats());
                    self.report(Report::LegReleased { call, role: Role::Customer, stats: leg.stats() });
                }
            }
            Control::AddSupervisor { call, id, leg, mode } => {
                let sockets = [Some(leg.rtp_socket), leg.rtcp_socket];
                match self.with_call(call, |c| c.add_supervisor(now, id, Leg::new(now, *leg), mode)) {
                    Some(Ok(old)) => {
                        if let Some(old) = old {
                            self.unroute(&old);
                            self.report(Report::SupervisorReleased { call, id, stats: old.stats() });
                        }
                        for s in sockets.into_iter().flatten() {
                            self.routes.insert(s, call);
                        }
                    }
                    Some(Err(_)) => self.refuse(Some(call), "the call has its most supervisors"),
                    None => {}
                }
            }
            Control::SetHold { call, held } => {
                self.with_call(call, |c| c.set_hold(now, held));
            }
            Control::SetSupervisorMode { call, id, mode } => {
                if self.with_call(call, |c| c.set_supervisor_mode(id, mode)) == Some(false) {
                    self.refuse(Some(call), "no such supervisor");
                }
            }
            Control::TakeSupervisor { call, id } => {
                if let Some(leg) = self.with_call(call, |c| c.take_supervisor(id)).flatten() {
                    self.unroute(&leg);
                    self.report(Report::SupervisorReleased { call, id, stats: leg.stats() });
                }
            }
            Control::MoveCustomer { from, to } => {
                if !self.calls.contains_key(&to) {
                    self.refuse(Some(to), "no such call");
                } else if let Some(leg) = self.with_call(from, |c| c.take_customer(now)).flatten() {
                    self.unroute(&leg);
                    self.set_leg(now, to, Role::Customer, leg);
                    self.after_input(now, from, out);
                }
            }
            Control::StartRecording { call, id, path, codec } => {
                if !self.calls.contains_key(&call) {
                    self.refuse(Some(call), "no such call");
                } else if self.recordings.contains_key(&id) {
                    self.refuse(Some(call), "recording id already open");
                } else {
                    // A call bridged again (a transfer) goes on in the file of its earlier part.
                    let earlier = earlier_frames(&path, codec);
                    let opened = if earlier > 0 {
                        std::fs::OpenOptions::new().write(true).open(&path)
                    } else {
                        File::create(&path)
                    };
                    let (file, error) = match opened {
                        Ok(f) => (Some(f), None),
                        Err(e) => {
                            self.stats.recording_errors += 1;
                            (None, Some(e.to_string()))
                        }
                    };
                    self.close_recordings_of(call);
                    self.recordings.insert(id, OpenRecording { call, path, file, bytes: 0, error });
                    self.with_call(call, |c| c.resume_recording(now, id, codec, earlier));
                }
            }
            Control::StopRecording { call } => {
                self.with_call(call, |c| c.stop_recording());
                self.after_input(now, call, out);
                self.close_recordings_of(call);
            }
            Control::Play { call, role, clip } => {
                if let Some(Err(_)) = self.with_call(call, |c| c.play(now, role, clip)) {
                    self.refuse(Some(call), "prompt queue full");
                }
            }
            Control::SetLoop { call, role, clip } => {
                self.with_call(call, |c| c.set_loop(now, role, clip));
            }
            Control::SetWebRtcAgent { call, leg, local, offer } => {
                self.set_webrtc_agent(now, call, *leg, local, &offer, out)
            }
            Control::AddWebRtcSupervisor { call, id, leg, local, offer, mode } => {
                self.add_webrtc_supervisor(now, call, id, *leg, local, &offer, mode, out)
            }
            Control::WebRtcOffer { call, offer } => match self.webrtc.reoffer(now, call, &offer, out) {
                Some((socket, answer, pumped)) => {
                    match answer {
                        Ok(sdp) => self.report(Report::WebRtcAnswer { call, sdp }),
                        Err(e) => self.report(Report::WebRtcFailed { call, error: e.to_string() }),
                    }
                    self.webrtc_pumped(now, call, socket, pumped, out);
                }
                None => self.report(Report::WebRtcFailed { call, error: "no browser phone on this call".into() }),
            },
            Control::Ping { token } => self.report(Report::Pong { token }),
            Control::EndCall { call } => {
                if !self.end_call(now, call) {
                    self.refuse(Some(call), "no such call");
                }
            }
        }
        if let Some(call) = touched {
            self.after_input(now, call, out);
        }
        None
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        if let Some(pumped) = self.webrtc.handle_datagram(now, socket, from, data, out) {
            self.stats.received += 1;
            if let Some(call) = self.webrtc.call_of(socket) {
                self.webrtc_pumped(now, call, socket, pumped, out);
            }
            return;
        }
        let Some(&call) = self.routes.get(&socket) else {
            self.stats.unrouted += 1;
            return;
        };
        let Some(slot) = self.calls.get_mut(&call) else {
            self.stats.unrouted += 1;
            return;
        };
        self.stats.received += 1;
        slot.call.handle_receive(now, socket, from, data);
        self.after_input(now, call, out);
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        // Pop the due entries first: a deadline a call sets at or before `now` waits for the next
        // turn instead of spinning this one.
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        while let Some(&Reverse((at, call))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            due.push((at, call));
        }
        for &(at, call) in &due {
            let Some(slot) = self.calls.get_mut(&call) else { continue };
            if slot.deadline != Some(at) {
                continue; // stale entry: the call was rescheduled
            }
            slot.deadline = None;
            slot.call.handle_timeout(now);
            self.after_input(now, call, out);
        }
        self.due = due;
        for (socket, pumped) in self.webrtc.handle_timeout(now, out) {
            if let Some(call) = self.webrtc.call_of(socket) {
                self.webrtc_pumped(now, call, socket, pumped, out);
            }
        }
    }

    /// Attaches a browser phone as the call's agent leg (see [`Control::SetWebRtcAgent`]).
    fn set_webrtc_agent(
        &mut self,
        now: Instant,
        call: CallId,
        mut leg: media::call::LegConfig,
        local: SocketAddr,
        offer: &str,
        out: &mut Vec<Transmit>,
    ) {
        if !self.calls.contains_key(&call) {
            return self.refuse(Some(call), "no such call");
        }
        let tcp = self.tcp_port.map(|port| SocketAddr::new(local.ip(), port));
        match WebRtcLeg::accept(now, leg.rtp_socket, local, tcp, offer) {
            Ok((w, sdp)) => {
                leg.remote_rtp = WEBRTC_PEER;
                leg.remote_rtcp = None;
                leg.rtcp_socket = None;
                leg.codec = media::g711::Codec::Pcmu;
                leg.telephone_event_pt = Some(crate::webrtc::CALL_TELEPHONE_EVENT_PT);
                let socket = leg.rtp_socket;
                self.set_leg(now, call, Role::Agent, Leg::new(now, leg));
                self.webrtc.insert(call, w);
                self.report(Report::WebRtcAnswer { call, sdp });
                self.webrtc_pumped(now, call, socket, Pumped::default(), out);
            }
            Err(e) => self.report(Report::WebRtcFailed { call, error: e.to_string() }),
        }
    }

    /// Adds a supervisor's browser phone to the call (see [`Control::AddWebRtcSupervisor`]).
    #[allow(clippy::too_many_arguments)]
    fn add_webrtc_supervisor(
        &mut self,
        now: Instant,
        call: CallId,
        id: u64,
        mut leg: media::call::LegConfig,
        local: SocketAddr,
        offer: &str,
        mode: media::SupervisorMode,
        out: &mut Vec<Transmit>,
    ) {
        let failed = |error: String| Report::SupervisorWebRtc { call, id, event: WebRtcSupervisorEvent::Failed(error) };
        if !self.calls.contains_key(&call) {
            return self.report(failed("no such call".into()));
        }
        let tcp = self.tcp_port.map(|port| SocketAddr::new(local.ip(), port));
        let w = match WebRtcLeg::accept(now, leg.rtp_socket, local, tcp, offer) {
            Ok(w) => w,
            Err(e) => return self.report(failed(e.to_string())),
        };
        let (w, sdp) = w;
        leg.remote_rtp = WEBRTC_PEER;
        leg.remote_rtcp = None;
        leg.rtcp_socket = None;
        leg.codec = media::g711::Codec::Pcmu;
        leg.telephone_event_pt = Some(crate::webrtc::CALL_TELEPHONE_EVENT_PT);
        let socket = leg.rtp_socket;
        match self.with_call(call, |c| c.add_supervisor(now, id, Leg::new(now, leg), mode)) {
            Some(Ok(old)) => {
                if let Some(old) = old {
                    self.unroute(&old);
                    self.report(Report::SupervisorReleased { call, id, stats: old.stats() });
                }
                self.routes.insert(socket, call);
                self.webrtc.insert_supervisor(call, id, w);
                self.report(Report::SupervisorWebRtc { call, id, event: WebRtcSupervisorEvent::Answer(sdp) });
                self.webrtc_pumped(now, call, socket, Pumped::default(), out);
            }
            Some(Err(_)) => self.report(failed("the call has its most supervisors".into())),
            None => {}
        }
    }

    /// Feeds a WebRTC leg's packets to its call and reports its events.
    fn webrtc_pumped(&mut self, now: Instant, call: CallId, socket: SocketId, pumped: Pumped, out: &mut Vec<Transmit>) {
        let supervisor = self.webrtc.supervisor_of(socket);
        for e in pumped.events {
            let report = match (e, supervisor) {
                (WebRtcEvent::Connected, None) => Report::WebRtcConnection { call, connected: true },
                (WebRtcEvent::Disconnected, None) => Report::WebRtcConnection { call, connected: false },
                (WebRtcEvent::Closed, None) => {
                    Report::WebRtcFailed { call, error: "the browser closed the connection".into() }
                }
                (e, Some(id)) => {
                    let event = match e {
                        WebRtcEvent::Connected => WebRtcSupervisorEvent::Connected(true),
                        WebRtcEvent::Disconnected => WebRtcSupervisorEvent::Connected(false),
                        WebRtcEvent::Closed => {
                            WebRtcSupervisorEvent::Failed("the browser closed the connection".into())
                        }
                    };
                    Report::SupervisorWebRtc { call, id, event }
                }
            };
            self.report(report);
        }
        for packet in pumped.to_call {
            let Some(slot) = self.calls.get_mut(&call) else { return };
            slot.call.handle_receive(now, socket, WEBRTC_PEER, &packet);
            self.after_input(now, call, out);
        }
    }

    fn refuse(&mut self, call: Option<CallId>, reason: &'static str) {
        self.report(Report::Refused { call, reason });
    }

    fn with_call<T>(&mut self, call: CallId, f: impl FnOnce(&mut Call) -> T) -> Option<T> {
        match self.calls.get_mut(&call) {
            Some(slot) => Some(f(&mut slot.call)),
            None => {
                self.refuse(Some(call), "no such call");
                None
            }
        }
    }

    fn set_leg(&mut self, now: Instant, call: CallId, role: Role, leg: Leg) {
        let Some(slot) = self.calls.get_mut(&call) else {
            self.refuse(Some(call), "no such call");
            return;
        };
        let sockets = [Some(leg.config().rtp_socket), leg.config().rtcp_socket];
        let old = match role {
            Role::Agent => slot.call.set_agent(now, leg),
            Role::Customer => slot.call.set_customer(now, leg),
        };
        if let Some(old) = old {
            self.unroute(&old);
            self.sample_leg_end(&old.stats());
            self.report(Report::LegReleased { call, role, stats: old.stats() });
        }
        for s in sockets.into_iter().flatten() {
            self.routes.insert(s, call);
        }
    }

    fn unroute(&mut self, leg: &Leg) {
        for s in [Some(leg.config().rtp_socket), leg.config().rtcp_socket].into_iter().flatten() {
            self.routes.remove(&s);
            self.webrtc.remove(s);
        }
    }

    fn end_call(&mut self, now: Instant, call: CallId) -> bool {
        let Some(mut slot) = self.calls.remove(&call) else {
            return false;
        };
        slot.call.stop_recording();
        let supervisors: Vec<u64> = slot.call.supervisors().map(|(id, _)| id).collect();
        for id in supervisors {
            if let Some(leg) = slot.call.take_supervisor(id) {
                for s in [Some(leg.config().rtp_socket), leg.config().rtcp_socket].into_iter().flatten() {
                    self.routes.remove(&s);
                    self.webrtc.remove(s);
                }
                self.reports.send(Report::SupervisorReleased { call, id, stats: leg.stats() }, &mut self.stats);
            }
        }
        let customer = slot.call.take_customer(now);
        let agent = slot.call.take_agent(now);
        for leg in [&customer, &agent].into_iter().flatten() {
            self.unroute(leg);
            self.sample_leg_end(&leg.stats());
        }
        self.stats.add_rtp(&slot.call.take_rtp_counters());
        // Its last writes and events; datagrams of a call that is gone are not sent.
        Self::drain(
            &mut self.recordings,
            &mut self.reports,
            &mut self.stats,
            &mut self.webrtc,
            now,
            call,
            &mut slot.call,
            None,
        );
        self.close_recordings_of(call);
        let drops = slot.call.drops().clone();
        self.report(Report::CallEnded {
            call,
            drops,
            customer: customer.map(|l| l.stats()),
            agent: agent.map(|l| l.stats()),
        });
        true
    }

    /// After any input to a call: collect its datagrams, recording writes and events, and
    /// queue its next deadline.
    fn after_input(&mut self, now: Instant, call: CallId, out: &mut Vec<Transmit>) {
        let Core { calls, timers, recordings, reports, stats, jitter_samples, webrtc, .. } = self;
        let Some(slot) = calls.get_mut(&call) else { return };
        let next = Self::drain(recordings, reports, stats, webrtc, now, call, &mut slot.call, Some(out));
        let rtp = slot.call.take_rtp_counters();
        stats.add_rtp(&rtp);
        for j in rtp.jitter.into_iter().flatten() {
            Self::sample_jitter(jitter_samples, j);
        }
        if next != slot.deadline {
            if let Some(at) = next {
                timers.push(Reverse((at, call)));
            }
            slot.deadline = next;
        }
    }

    /// Drains a call's outputs: datagrams to `out` (dropped when `None`), recording writes applied
    /// in order, events reported; returns its next deadline.
    #[allow(clippy::too_many_arguments)]
    fn drain(
        recordings: &mut HashMap<RecordingId, OpenRecording>,
        reports: &mut Reports,
        stats: &mut ShardStats,
        webrtc: &mut WebRtcLegs,
        now: Instant,
        id: CallId,
        call: &mut Call,
        mut out: Option<&mut Vec<Transmit>>,
    ) -> Option<Instant> {
        loop {
            match call.poll_output() {
                Output::Transmit(t) if webrtc.contains(t.socket) => {
                    // A browser phone's leg: through str0m as SRTP.
                    webrtc.send_from_call(now, t.socket, &t.payload, out.as_deref_mut());
                }
                Output::Transmit(t) => {
                    if let Some(out) = out.as_deref_mut() {
                        stats.transmits += 1;
                        out.push(t);
                    }
                }
                Output::RecordingWrite { id, write } => Self::apply_write(recordings, stats, id, &write),
                Output::Event(event) => reports.send(Report::Event { call: id, event }, stats),
                Output::Timeout(at) => return at,
            }
        }
    }

    fn apply_write(
        recordings: &mut HashMap<RecordingId, OpenRecording>,
        stats: &mut ShardStats,
        id: RecordingId,
        w: &FileWrite,
    ) {
        let Some(rec) = recordings.get_mut(&id) else { return };
        let Some(file) = rec.file.as_ref() else { return };
        match file.write_all_at(&w.bytes, w.offset) {
            Ok(()) => rec.bytes = rec.bytes.max(w.offset + w.bytes.len() as u64),
            Err(e) => {
                stats.recording_errors += 1;
                rec.error = Some(e.to_string());
                rec.file = None;
            }
        }
    }

    fn close_recordings_of(&mut self, call: CallId) {
        let ids: Vec<RecordingId> = self.recordings.iter().filter(|(_, r)| r.call == call).map(|(&id, _)| id).collect();
        for id in ids {
            if let Some(rec) = self.recordings.remove(&id) {
                drop(rec.file);
                self.report(Report::RecordingClosed { call, id, path: rec.path, bytes: rec.bytes, error: rec.error });
            }
        }
    }
}
