//! One shard's media state, independent of the I/O runtime that drives it.
//!
//! A [`Shard`] owns the [`Call`]s placed on it, the demultiplexing table from local socket to
//! call, the timer queue of the calls' deadlines and the open recording files. It owns no
//! socket and reads no clock: a driver ([`crate::driver`]) owns the sockets ([`SocketTable`]),
//! reads the clock and feeds the shard three inputs, [`Shard::handle_control`],
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
//! app sockets, gets their datagrams, its own [`Control::App`] messages and every [`Report`] of the
//! shard (instead of the report channel), and drives the calls through a [`ShardCtx`] synchronously.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};

use crate::call::{
    Call, CallConfig, DropCounters, Event, Leg, LegConfig, LegStats, RecordingId, Role, RtpCounters, SocketId, Transmit,
};
use crate::g711::Codec;

/// Bound of the report channel a shard writes to.
pub const MAX_REPORTS: usize = 4096;
/// Bound of the control channel a shard reads from.
pub const MAX_CONTROLS: usize = 4096;
/// Calls one shard accepts.
pub const MAX_CALLS: usize = 20_000;
/// Jitter samples a shard keeps until its driver takes them (about a second's worth at
/// [`MAX_CALLS`]; beyond it samples are dropped).
pub const MAX_JITTER_SAMPLES: usize = 16_384;

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
    /// Answered by [`Report::Pong`] once every earlier message is applied (a barrier).
    Ping { token: u64 },
    /// Stop the shard's driver after ending every call.
    Shutdown,
    /// A message for the shard's [`ShardApp`] (dropped and refused without one).
    App(Box<dyn Any + Send>),
}

/// A message from a shard.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// An event of a call's core (DTMF, prompt finished, RTCP, ...).
    Event { call: CallId, event: Event },
    /// A leg left a call.
    LegReleased { call: CallId, role: Role, stats: LegStats },
    /// A call ended.
    CallEnded { call: CallId, drops: DropCounters, customer: Option<LegStats>, agent: Option<LegStats> },
    /// A recording file was closed; `error` if a write to it failed (the file then stops growing
    /// but stays readable up to its last header).
    RecordingClosed { call: CallId, id: RecordingId, path: PathBuf, bytes: u64, error: Option<String> },
    /// A control message could not be applied (unknown call, duplicate id, ...). Nothing changed.
    Refused { call: Option<CallId>, reason: &'static str },
    /// A driver could not register or use a socket.
    SocketError { id: SocketId, error: String },
    /// Answer to [`Control::Ping`].
    Pong { token: u64 },
}

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
    /// Recording writes that failed.
    pub recording_errors: u64,
    /// RTP packets and bytes received from and sent to the calls' legs, and packets lost on the
    /// received streams (sums of the calls' [`crate::call::RtpCounters`]).
    pub rtp_packets_in: u64,
    pub rtp_bytes_in: u64,
    pub rtp_packets_out: u64,
    pub rtp_bytes_out: u64,
    pub rtp_lost: u64,
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

/// An application on the shard's thread (the dialer's SIP user agent). Every method gets a
/// [`ShardCtx`] to drive the shard's calls, add sockets and send datagrams; none may block.
pub trait ShardApp: Send {
    /// A datagram on one of the app's sockets ([`ShardCtx::add_app_socket`]).
    fn handle_datagram(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
        ctx: &mut ShardCtx<'_>,
    );
    /// A [`Control::App`] message.
    fn handle_message(&mut self, now: Instant, message: Box<dyn Any + Send>, ctx: &mut ShardCtx<'_>);
    /// A report of the shard (call events, ended calls, closed recordings, refusals). Forward what
    /// the control plane needs with [`ShardCtx::report`].
    fn handle_report(&mut self, now: Instant, report: Report, ctx: &mut ShardCtx<'_>);
    /// [`ShardApp::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now: Instant, ctx: &mut ShardCtx<'_>);
    /// When `handle_timeout` is next due.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// The shard as its [`ShardApp`] sees it during a call into the app.
pub struct ShardCtx<'a> {
    shard: &'a mut Shard,
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
    Dtmf(crate::call::SendDtmfError),
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

/// One shard's calls, routes, timers and recordings (see module docs).
pub struct Shard {
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
    /// The hosted app; `None` while it is being called (its ctx borrows the shard).
    app: Option<Box<dyn ShardApp>>,
    app_sockets: HashSet<SocketId>,
    app_deadline: Option<Instant>,
    /// Socket operations for the driver, from the app.
    socket_ops: VecDeque<SocketOp>,
}

impl Shard {
    /// A shard writing its reports to `reports` (use a bounded channel, e.g. [`MAX_REPORTS`]).
    pub fn new(reports: Sender<Report>) -> Shard {
        Shard {
            calls: HashMap::new(),
            routes: HashMap::new(),
            timers: BinaryHeap::new(),
            recordings: HashMap::new(),
            reports: Reports { tx: reports, inbox: None },
            stats: ShardStats::default(),
            jitter_samples: Vec::new(),
            due: Vec::new(),
            app: None,
            app_sockets: HashSet::new(),
            app_deadline: None,
            socket_ops: VecDeque::new(),
        }
    }

    /// A shard hosting `app`: the app gets every report of the shard (see [`ShardApp`]).
    pub fn with_app(reports: Sender<Report>, app: Box<dyn ShardApp>) -> Shard {
        let mut s = Shard::new(reports);
        s.reports.inbox = Some(VecDeque::new());
        s.app_deadline = app.poll_timeout();
        s.app = Some(app);
        s
    }

    /// The next socket operation the app asked for; drivers apply them after every input.
    pub fn poll_socket_op(&mut self) -> Option<SocketOp> {
        self.socket_ops.pop_front()
    }

    /// Calls `f` on the app with a context over the shard, then hands the app the reports made
    /// meanwhile (until there are none).
    fn with_app_ctx(
        &mut self,
        now: Instant,
        out: &mut Vec<Transmit>,
        f: impl FnOnce(&mut dyn ShardApp, &mut ShardCtx<'_>),
    ) {
        let Some(mut app) = self.app.take() else { return };
        {
            let mut ctx = ShardCtx { shard: self, now, out };
            f(app.as_mut(), &mut ctx);
        }
        self.app = Some(app);
        self.deliver_to_app(now, out);
    }

    /// Hands queued reports to the app; bounded by the inbox (reports its handling makes are
    /// delivered in the same loop).
    fn deliver_to_app(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        let Some(mut app) = self.app.take() else { return };
        for _ in 0..(4 * MAX_REPORTS) {
            let Some(r) = self.reports.inbox.as_mut().and_then(VecDeque::pop_front) else { break };
            let mut ctx = ShardCtx { shard: self, now, out };
            app.handle_report(now, r, &mut ctx);
        }
        self.app_deadline = app.poll_timeout();
        self.app = Some(app);
    }

    pub fn stats(&self) -> ShardStats {
        self.stats
    }

    /// The jitter samples (RFC 3550 A.8, timestamp units) gathered since the last call.
    pub fn drain_jitter_samples(&mut self) -> std::vec::Drain<'_, u32> {
        self.jitter_samples.drain(..)
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

    /// Count datagrams a driver failed to send.
    pub fn count_send_error(&mut self) {
        self.stats.send_errors += 1;
    }

    /// Calls on this shard.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// A call, for inspection.
    pub fn call(&self, call: CallId) -> Option<&Call> {
        self.calls.get(&call).map(|s| &s.call)
    }

    /// Report something to the control plane (bounded: a full channel drops and counts).
    pub fn report(&mut self, report: Report) {
        self.reports.send(report, &mut self.stats);
    }

    /// Apply a control message. Socket operations are returned for the driver to perform (and,
    /// from a hosted app, queued: see [`Shard::poll_socket_op`]).
    pub fn handle_control(&mut self, now: Instant, control: Control, out: &mut Vec<Transmit>) -> Option<SocketOp> {
        if let Control::App(message) = control {
            if self.app.is_some() {
                self.with_app_ctx(now, out, |app, ctx| app.handle_message(now, message, ctx));
            } else {
                self.refuse(None, "no app on this shard");
            }
            return None;
        }
        let op = self.apply_control(now, control, out);
        self.deliver_to_app(now, out);
        op
    }

    fn apply_control(&mut self, now: Instant, control: Control, out: &mut Vec<Transmit>) -> Option<SocketOp> {
        let touched = match &control {
            Control::AddCall { call, .. }
            | Control::SetAgent { call, .. }
            | Control::SetCustomer { call, .. }
            | Control::TakeCustomer { call }
            | Control::StartRecording { call, .. }
            | Control::StopRecording { call }
            | Control::Play { call, .. }
            | Control::SetLoop { call, .. } => Some(*call),
            Control::MoveCustomer { to, .. } => Some(*to),
            _ => None,
        };
        match control {
            Control::AddSocket { id, socket } => return Some(SocketOp::Add(id, socket)),
            Control::RemoveSocket { id } => return Some(SocketOp::Remove(id)),
            Control::App(_) => {
                self.refuse(None, "app message inside the app");
                return None;
            }
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
                    let (file, error) = match File::create(&path) {
                        Ok(f) => (Some(f), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                    self.close_recordings_of(call);
                    self.recordings.insert(id, OpenRecording { call, path, file, bytes: 0, error });
                    self.with_call(call, |c| c.start_recording(now, id, codec));
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
        if self.app_sockets.contains(&socket) {
            self.stats.received += 1;
            self.with_app_ctx(now, out, |app, ctx| app.handle_datagram(now, socket, from, data, ctx));
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
        if self.app.is_some() {
            self.deliver_to_app(now, out);
        }
    }

    /// Run every call whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
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
        if self.app_deadline.is_some_and(|at| at <= now) {
            self.with_app_ctx(now, out, |app, ctx| app.handle_timeout(now, ctx));
        } else if self.app.is_some() {
            self.deliver_to_app(now, out);
        }
    }

    /// When [`Shard::handle_timeout`] must next be called (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.timers.peek().map(|Reverse((at, _))| *at);
        match (calls, self.app_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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
        }
    }

    fn end_call(&mut self, now: Instant, call: CallId) -> bool {
        let Some(mut slot) = self.calls.remove(&call) else {
            return false;
        };
        slot.call.stop_recording();
        let customer = slot.call.take_customer(now);
        let agent = slot.call.take_agent(now);
        for leg in [&customer, &agent].into_iter().flatten() {
            self.unroute(leg);
            self.sample_leg_end(&leg.stats());
        }
        self.stats.add_rtp(&slot.call.take_rtp_counters());
        Self::apply_writes(&mut self.recordings, &mut self.stats, &mut slot.call);
        Self::drain_events(&mut self.reports, &mut self.stats, call, &mut slot.call);
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
    fn after_input(&mut self, _now: Instant, call: CallId, out: &mut Vec<Transmit>) {
        let Shard { calls, timers, recordings, reports, stats, jitter_samples, .. } = self;
        let Some(slot) = calls.get_mut(&call) else { return };
        while let Some(t) = slot.call.poll_transmit() {
            stats.transmits += 1;
            out.push(t);
        }
        let rtp = slot.call.take_rtp_counters();
        stats.add_rtp(&rtp);
        for j in rtp.jitter.into_iter().flatten() {
            Self::sample_jitter(jitter_samples, j);
        }
        Self::apply_writes(recordings, stats, &mut slot.call);
        Self::drain_events(reports, stats, call, &mut slot.call);
        let next = slot.call.poll_timeout();
        if next != slot.deadline {
            if let Some(at) = next {
                timers.push(Reverse((at, call)));
            }
            slot.deadline = next;
        }
    }

    fn apply_writes(recordings: &mut HashMap<RecordingId, OpenRecording>, stats: &mut ShardStats, call: &mut Call) {
        while let Some((id, w)) = call.poll_recording_write() {
            let Some(rec) = recordings.get_mut(&id) else { continue };
            let Some(file) = rec.file.as_ref() else { continue };
            match file.write_all_at(&w.bytes, w.offset) {
                Ok(()) => rec.bytes = rec.bytes.max(w.offset + w.bytes.len() as u64),
                Err(e) => {
                    stats.recording_errors += 1;
                    rec.error = Some(e.to_string());
                    rec.file = None;
                }
            }
        }
    }

    fn drain_events(reports: &mut Reports, stats: &mut ShardStats, call: CallId, c: &mut Call) {
        while let Some(event) = c.poll_event() {
            reports.send(Report::Event { call, event }, stats);
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
