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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};

use crate::call::{
    Call, CallConfig, DropCounters, Event, Leg, LegConfig, LegStats, RecordingId, Role, SocketId, Transmit,
};
use crate::g711::Codec;

/// Bound of the report channel a shard writes to.
pub const MAX_REPORTS: usize = 4096;
/// Bound of the control channel a shard reads from.
pub const MAX_CONTROLS: usize = 4096;
/// Calls one shard accepts.
pub const MAX_CALLS: usize = 20_000;

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
    /// End the call: recording finished, legs released, reported as [`Report::CallEnded`].
    EndCall { call: CallId },
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
    reports: Sender<Report>,
    stats: ShardStats,
    due: Vec<(Instant, CallId)>,
}

impl Shard {
    /// A shard writing its reports to `reports` (use a bounded channel, e.g. [`MAX_REPORTS`]).
    pub fn new(reports: Sender<Report>) -> Shard {
        Shard {
            calls: HashMap::new(),
            routes: HashMap::new(),
            timers: BinaryHeap::new(),
            recordings: HashMap::new(),
            reports,
            stats: ShardStats::default(),
            due: Vec::new(),
        }
    }

    pub fn stats(&self) -> ShardStats {
        self.stats
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
        match self.reports.try_send(report) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.stats.reports_dropped += 1,
        }
    }

    /// Apply a control message. Socket operations are returned for the driver to perform.
    pub fn handle_control(&mut self, now: Instant, control: Control, out: &mut Vec<Transmit>) -> Option<SocketOp> {
        let touched = match &control {
            Control::AddCall { call, .. }
            | Control::SetAgent { call, .. }
            | Control::SetCustomer { call, .. }
            | Control::TakeCustomer { call }
            | Control::StartRecording { call, .. }
            | Control::StopRecording { call }
            | Control::Play { call, .. } => Some(*call),
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
    }

    /// When [`Shard::handle_timeout`] must next be called (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
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
        }
        Self::apply_writes(&mut self.recordings, &mut self.stats, &mut slot.call);
        Self::drain_events(&self.reports, &mut self.stats, call, &mut slot.call);
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
        let Shard { calls, timers, recordings, reports, stats, .. } = self;
        let Some(slot) = calls.get_mut(&call) else { return };
        while let Some(t) = slot.call.poll_transmit() {
            stats.transmits += 1;
            out.push(t);
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

    fn drain_events(reports: &Sender<Report>, stats: &mut ShardStats, call: CallId, c: &mut Call) {
        while let Some(event) = c.poll_event() {
            if reports.try_send(Report::Event { call, event }).is_err() {
                stats.reports_dropped += 1;
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
