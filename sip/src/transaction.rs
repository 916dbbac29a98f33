//! The RFC 3261 section 17 transaction layer over UDP (Kamailio's `tm`), as a sans-IO [`Endpoint`].
//!
//! Run loop of a driver (one endpoint per shard, one UDP socket):
//!
//! ```text
//! loop {
//!     // 1. apply one input
//!     endpoint.handle_datagram(now, from, &buf)      // a datagram arrived
//!     endpoint.handle_timeout(now)                  // poll_timeout() passed
//!     endpoint.send_request(now, dest, req) / send_response(now, tx, resp) / cancel(now, tx)
//!     // 2. drain the outputs
//!     while let Some(t) = endpoint.poll_transmit() { socket.send_to(&t.bytes, t.dest) }
//!     while let Some(e) = endpoint.poll_event() { dialogs/dialer handle e }
//!     // 3. sleep until endpoint.poll_timeout() or the next datagram
//! }
//! ```
//!
//! INVITE transactions follow RFC 6026: a 2xx moves the client transaction to Accepted (timer M) where
//! 2xx retransmissions go up to the dialog (which re-sends its ACK), and moves the server transaction to
//! Accepted (timer L) where this layer retransmits the 2xx (G schedule) until the dialog's ACK arrives.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::message::{self, response_to, CSeq, DropReason, Method, Request, Response, Via, BRANCH_COOKIE};

/// Most transmits waiting for the driver.
pub const MAX_TRANSMITS: usize = 1024;
/// Most events waiting for the transaction user.
pub const MAX_EVENTS: usize = 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Our address as written in Via sent-by (`host:port`).
    pub sent_by: String,
    /// Most live transactions (client and server).
    pub max_transactions: usize,
    /// Methods answered by the transaction user; other known methods get 405, unknown ones 501.
    pub allowed: Vec<Method>,
    /// An INVITE server transaction the TU has not answered finally by then gets 408 (a bound, not a
    /// ring timeout: that is the dialer's). Non-INVITE server transactions get 64*T1.
    pub invite_server_timeout: Duration,
}

impl Config {
    pub fn new(sent_by: impl Into<String>) -> Config {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            sent_by: sent_by.into(),
            max_transactions: 8192,
            allowed: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Register,
                Method::Info,
            ],
            invite_server_timeout: Duration::from_secs(300),
        }
    }

    /// Clamps the timers to sane bounds (T1 1 ms..10 s, T2 and T4 T1..60 s) so that no timer
    /// arithmetic can overflow.
    fn clamped(mut self) -> Config {
        let cap = Duration::from_secs(60);
        self.t1 = self.t1.clamp(Duration::from_millis(1), Duration::from_secs(10));
        self.t2 = self.t2.clamp(self.t1, cap);
        self.t4 = self.t4.clamp(self.t1, cap);
        self.invite_server_timeout =
            self.invite_server_timeout.clamp(Duration::from_secs(1), Duration::from_secs(3600));
        self
    }
}

/// A datagram for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub bytes: Vec<u8>,
}

/// A transaction's handle, unique for the endpoint's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// What the transaction layer tells its user (dialogs, registrar, dialer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request; answer it with [`Endpoint::send_response`] on `tx`.
    Request { tx: TxId, from: SocketAddr, request: Request },
    /// A response for a client transaction (provisional, final, and 2xx retransmissions of an INVITE).
    Response { tx: TxId, response: Response },
    /// Timer B or F fired: no final response (the TU acts as if 408 arrived).
    Timeout { tx: TxId },
    /// A CANCEL matched this INVITE server transaction; the CANCEL got its 200. Answer the INVITE with 487.
    Cancelled { tx: TxId },
    /// An ACK for a 2xx (end to end, outside any transaction).
    Ack { from: SocketAddr, request: Request },
    /// Timer H (no ACK for a non-2xx) or timer L (no ACK for a 2xx) fired.
    AckTimeout { tx: TxId },
    /// The transaction is gone.
    Terminated { tx: TxId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("transaction table full")]
    TooManyTransactions,
    #[error("no such transaction")]
    UnknownTransaction,
    /// The call is not allowed in this state (e.g. a response on a completed transaction).
    #[error("not allowed in the transaction's state")]
    InvalidState,
    /// The request lacks a readable CSeq/Call-ID/From/To.
    #[error("request lacks CSeq, Call-ID, From or To")]
    BadRequest,
}

/// The methods completed transactions are counted by; every other method is `other`.
pub const COUNTED_METHODS: [&str; 6] = ["INVITE", "BYE", "CANCEL", "OPTIONS", "REGISTER", "other"];
/// How a transaction completed: the class of its final response (`2xx`..`6xx`), or `timeout`
/// (no final response: timer B or F on a client, the TU never answering on a non-INVITE server).
pub const COMPLETION_CLASSES: [&str; 6] = ["2xx", "3xx", "4xx", "5xx", "6xx", "timeout"];
const TIMEOUT_CLASS: usize = 5;

/// Row of `method` in [`Stats::completed`] (see [`COUNTED_METHODS`]).
pub fn counted_method(method: &Method) -> usize {
    match method {
        Method::Invite => 0,
        Method::Bye => 1,
        Method::Cancel => 2,
        Method::Options => 3,
        Method::Register => 4,
        _ => 5,
    }
}

/// Column of a final `status` in [`Stats::completed`] (see [`COMPLETION_CLASSES`]).
fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(2, 6) - 2
}

/// Counters for the driver's metrics: plain integers, read (and diffed) by the driver as often as
/// it likes; the endpoint never touches a metrics library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub dropped: [u64; DropReason::ALL.len()],
    pub bad_request_answered: u64,
    pub retransmissions: u64,
    pub timeouts: u64,
    /// Transactions (client and server) completed, by [`COUNTED_METHODS`] row and
    /// [`COMPLETION_CLASSES`] column: a client's first final response received, a server's final
    /// response sent, or a timeout without one.
    pub completed: [[u64; COMPLETION_CLASSES.len()]; COUNTED_METHODS.len()],
}

impl Stats {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Transactions of `method` completed with class `class` (a [`COMPLETION_CLASSES`] name).
    pub fn completed(&self, method: &Method, class: &str) -> u64 {
        COMPLETION_CLASSES.iter().position(|c| *c == class).map_or(0, |i| self.completed[counted_method(method)][i])
    }

    fn complete(&mut self, method: &Method, status: u16) {
        self.completed[counted_method(method)][status_class(status)] += 1;
    }

    fn complete_timeout(&mut self, method: &Method) {
        self.completed[counted_method(method)][TIMEOUT_CLASS] += 1;
    }
}

/// Timers of one transaction, an enum-indexed table (quinn's `TimerTable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// A (INVITE client), E (non-INVITE client), G (INVITE server, also the 2xx in Accepted).
    Retransmit = 0,
    /// B, F, H, L: give up.
    Timeout = 1,
    /// D, K, I, J, M: linger to absorb retransmissions, then terminate.
    Linger = 2,
}

#[derive(Debug, Clone, Default)]
struct TimerTable([Option<Instant>; 3]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
    fn expired(&mut self, now: Instant) -> Option<Timer> {
        for (i, t) in [Timer::Retransmit, Timer::Timeout, Timer::Linger].into_iter().enumerate() {
            if self.0[i].is_some_and(|at| at <= now) {
                self.0[i] = None;
                return Some(t);
            }
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    branch: String,
    sent_by: String,
    /// INVITE for an ACK of a non-2xx; CANCEL is its own.
    method: Method,
}

#[derive(Debug)]
struct Transaction {
    kind: TxKind,
    state: TxState,
    key: Key,
    request: Request,
    /// Where requests (client) or responses (server) go.
    peer: SocketAddr,
    /// The bytes retransmitted: the request (client) or the last response (server).
    wire: Vec<u8>,
    /// ACK sent for a non-2xx final (client INVITE).
    ack: Option<Vec<u8>>,
    interval: Duration,
    timers: TimerTable,
    /// CANCEL requested while still Calling (RFC 3261 9.1: wait for a provisional).
    cancel_pending: bool,
}

/// The transaction layer. See the module docs for the run loop.
pub struct Endpoint {
    config: Config,
    rng: Box<dyn RngCore + Send>,
    next_id: u64,
    txs: HashMap<TxId, Transaction>,
    by_key: HashMap<Key, TxId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Deadlines of the transactions, lazily deleted: an entry whose transaction is gone or whose
    /// next timer differs is skipped when it comes up (early, never late).
    deadlines: BinaryHeap<Reverse<(Instant, TxId)>>,
    /// Transactions whose timers changed during the current call (rescheduled at its end).
    touched: Vec<TxId>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("transactions", &self.txs.len()).field("stats", &self.stats).finish()
    }
}

impl Endpoint {
    /// `rng` makes branches, tags and Call-IDs; seed it in tests.
    pub fn new(config: Config, rng: Box<dyn RngCore + Send>) -> Endpoint {
        Endpoint {
            config: config.clamped(),
            rng,
            next_id: 1,
            txs: HashMap::new(),
            by_key: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            deadlines: BinaryHeap::new(),
            touched: Vec::new(),
        }
    }

    /// Queues the next deadline of every transaction touched by the current call.
    fn reschedule(&mut self) {
        for id in std::mem::take(&mut self.touched) {
            if let Some(at) = self.txs.get(&id).and_then(|t| t.timers.next()) {
                self.deadlines.push(Reverse((at, id)));
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn transaction_count(&self) -> usize {
        self.txs.len()
    }

    pub fn state(&self, tx: TxId) -> Option<TxState> {
        self.txs.get(&tx).map(|t| t.state)
    }

    /// Bytes a transaction keeps to retransmit (its request, or its last response), for memory
    /// accounting; an INVITE client transaction in Accepted keeps none.
    pub fn retransmit_bytes(&self, tx: TxId) -> Option<usize> {
        self.txs.get(&tx).map(|t| t.wire.capacity() + t.ack.as_ref().map_or(0, Vec::capacity))
    }

    /// The request that opened a transaction (the INVITE a dialog is built from).
    pub fn request(&self, tx: TxId) -> Option<&Request> {
        self.txs.get(&tx).map(|t| &t.request)
    }

    /// A random token of `n` bytes in hex (tags, Call-IDs, cnonces).
    pub fn random_token(&mut self, n: usize) -> String {
        let mut buf = [0u8; 16];
        let n = n.min(buf.len());
        self.rng.fill_bytes(&mut buf[..n]);
        hex::encode(&buf[..n])
    }

    pub fn new_branch(&mut self) -> String {
        format!("{BRANCH_COOKIE}{}", self.random_token(10))
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] is next due (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    fn transmit(&mut self, dest: SocketAddr, bytes: Vec<u8>) {
        if self.transmits.len() >= MAX_TRANSMITS {
            self.count(DropReason::QueueFull);
            return;
        }
        self.transmits.push_back(Transmit { dest, bytes });
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.count(DropReason::QueueFull);
            return;
        }
        self.events.push_back(e);
    }

    fn count(&mut self, reason: DropReason) {
        self.stats.dropped[reason.index()] += 1;
        tracing::debug!(?reason, "sip drop");
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Starts a client transaction: pushes our Via with a fresh branch (and Max-Forwards 70 when absent)
    /// and sends the request to `dest`. ACK is not sent here (see [`Endpoint::send_ack`]).
    pub fn send_request(&mut self, now: Instant, dest: SocketAddr, mut request: Request) -> Result<TxId, Error> {
        if request.method == Method::Ack {
            return Err(Error::InvalidState);
        }
        if request.cseq().is_none() || request.call_id().is_none() {
            return Err(Error::BadRequest);
        }
        if self.txs.len() >= self.config.max_transactions {
            self.count(DropReason::TooManyTransactions);
            return Err(Error::TooManyTransactions);
        }
        let branch = self.new_branch();
        request.headers.push_front("Via", format!("SIP/2.0/UDP {};branch={branch};rport", self.config.sent_by));
        if request.headers.get("Max-Forwards").is_none() {
            request.headers.push("Max-Forwards", "70");
        }
        let id = self.start_client(now, dest, request, branch);
        self.reschedule();
        Ok(id)
    }

    fn start_client(&mut self, now: Instant, dest: SocketAddr, request: Request, branch: String) -> TxId {
        let invite = request.method == Method::Invite;
        let key = Key { branch, sent_by: self.config.sent_by.to_ascii_lowercase(), method: request.method.clone() };
        let wire = request.to_bytes();
        let t1 = self.config.t1;
        let mut timers = TimerTable::default();
        timers.set(Timer::Retransmit, now + t1);
        timers.set(Timer::Timeout, now + 64 * t1);
        let tx = Transaction {
            kind: if invite { TxKind::InviteClient } else { TxKind::NonInviteClient },
            state: if invite { TxState::Calling } else { TxState::Trying },
            key: key.clone(),
            request,
            peer: dest,
            wire: wire.clone(),
            ack: None,
            interval: t1,
            timers,
            cancel_pending: false,
        };
        let id = self.alloc_id();
        self.txs.insert(id, tx);
        self.by_key.insert(key, id);
        self.touched.push(id);
        self.transmit(dest, wire);
        id
    }

    /// Sends an ACK for a 2xx (built by the dialog) statelessly, with a fresh branch.
    pub fn send_ack(&mut self, dest: SocketAddr, mut ack: Request) {
        let branch = self.new_branch();
        ack.headers.push_front("Via", format!("SIP/2.0/UDP {};branch={branch};rport", self.config.sent_by));
        if ack.headers.get("Max-Forwards").is_none() {
            ack.headers.push("Max-Forwards", "70");
        }
        self.transmit(dest, ack.to_bytes());
    }

    /// Cancels a client INVITE transaction (RFC 3261 9.1). Returns the CANCEL's own transaction, or
    /// `None` when the CANCEL waits for a provisional response (sent then) or a final already arrived.
    pub fn cancel(&mut self, now: Instant, invite: TxId) -> Result<Option<TxId>, Error> {
        let tx = self.txs.get_mut(&invite).ok_or(Error::UnknownTransaction)?;
        if tx.kind != TxKind::InviteClient {
            return Err(Error::InvalidState);
        }
        match tx.state {
            TxState::Calling => {
                tx.cancel_pending = true;
                Ok(None)
            }
            TxState::Proceeding => {
                let r = self.send_cancel(now, invite);
                self.reschedule();
                Ok(Some(r?))
            }
            _ => Ok(None),
        }
    }

    fn send_cancel(&mut self, now: Instant, invite: TxId) -> Result<TxId, Error> {
        if self.txs.len() >= self.config.max_transactions {
            self.count(DropReason::TooManyTransactions);
            return Err(Error::TooManyTransactions);
        }
        let tx = self.txs.get_mut(&invite).ok_or(Error::UnknownTransaction)?;
        tx.cancel_pending = false;
        let (dest, branch) = (tx.peer, tx.key.branch.clone());
        let cancel = cancel_for(&tx.request).ok_or(Error::BadRequest)?;
        Ok(self.start_client(now, dest, cancel, branch))
    }

    /// Answers the request of server transaction `tx`. The response must come from
    /// [`message::response_to`] (or carry the request's Via, From, To, Call-ID and CSeq).
    pub fn send_response(&mut self, now: Instant, tx: TxId, response: Response) -> Result<(), Error> {
        let t1 = self.config.t1;
        let t = self.txs.get_mut(&tx).ok_or(Error::UnknownTransaction)?;
        let status = response.status;
        match (t.kind, t.state) {
            (TxKind::InviteServer, TxState::Proceeding) => {
                if status >= 300 {
                    t.state = TxState::Completed;
                    t.timers.set(Timer::Retransmit, now + t1);
                    t.timers.set(Timer::Timeout, now + 64 * t1);
                    t.interval = t1;
                } else if status >= 200 {
                    t.state = TxState::Accepted;
                    t.timers.set(Timer::Retransmit, now + t1);
                    t.timers.set(Timer::Timeout, now + 64 * t1);
                    t.interval = t1;
                }
            }
            (TxKind::NonInviteServer, TxState::Trying | TxState::Proceeding) => {
                if status >= 200 {
                    t.state = TxState::Completed;
                    t.timers.stop(Timer::Timeout);
                    t.timers.set(Timer::Linger, now + 64 * t1);
                } else {
                    t.state = TxState::Proceeding;
                }
            }
            _ => return Err(Error::InvalidState),
        }
        if status >= 200 {
            self.stats.complete(&t.request.method, status);
        }
        let bytes = response.to_bytes();
        t.wire = bytes.clone();
        let dest = t.peer;
        self.transmit(dest, bytes);
        self.touched.push(tx);
        self.reschedule();
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let mut fired = false;
            while let Some(timer) = self.txs.get_mut(&id).and_then(|t| t.timers.expired(now)) {
                fired = true;
                self.on_timer(now, id, timer);
            }
            if fired {
                self.touched.push(id);
            }
            // Timers set while firing are queued now; a new deadline <= now fires in this loop.
            self.reschedule();
        }
    }

    fn on_timer(&mut self, now: Instant, id: TxId, timer: Timer) {
        let t2 = self.config.t2;
        let Some(t) = self.txs.get_mut(&id) else { return };
        match (timer, t.kind, t.state) {
            (Timer::Retransmit, TxKind::InviteClient, TxState::Calling) => {
                // Timer A doubles each time (RFC 3261 17.1.1.2; no T2 cap for INVITE).
                t.interval *= 2;
                t.timers.set(Timer::Retransmit, now + t.interval);
                let (dest, bytes) = (t.peer, t.wire.clone());
                self.stats.retransmissions += 1;
                self.transmit(dest, bytes);
            }
            (Timer::Retransmit, TxKind::NonInviteClient, TxState::Trying | TxState::Proceeding) => {
                // Timer E: doubles up to T2 while Trying, T2 once Proceeding.
                t.interval = if t.state == TxState::Trying { (t.interval * 2).min(t2) } else { t2 };
                t.timers.set(Timer::Retransmit, now + t.interval);
                let (dest, bytes) = (t.peer, t.wire.clone());
                self.stats.retransmissions += 1;
                self.transmit(dest, bytes);
            }
            (Timer::Retransmit, TxKind::InviteServer, TxState::Completed | TxState::Accepted) => {
                // Timer G.
                t.interval = (t.interval * 2).min(t2);
                t.timers.set(Timer::Retransmit, now + t.interval);
                let (dest, bytes) = (t.peer, t.wire.clone());
                self.stats.retransmissions += 1;
                self.transmit(dest, bytes);
            }
            (Timer::Timeout, TxKind::InviteClient | TxKind::NonInviteClient, TxState::Calling | TxState::Trying)
            | (Timer::Timeout, TxKind::NonInviteClient, TxState::Proceeding) => {
                // Timer B / F.
                self.stats.timeouts += 1;
                self.stats.complete_timeout(&t.request.method);
                self.event(Event::Timeout { tx: id });
                self.terminate(id);
            }
            (Timer::Timeout, TxKind::InviteServer, TxState::Completed | TxState::Accepted) => {
                // Timer H / L.
                self.stats.timeouts += 1;
                self.event(Event::AckTimeout { tx: id });
                self.terminate(id);
            }
            (Timer::Timeout, TxKind::InviteServer, TxState::Proceeding) => {
                // The TU never answered: 408, then the normal Completed path.
                let resp = response_to(&t.request, 408, Some("to"));
                self.stats.timeouts += 1;
                let _ = self.send_response(now, id, resp);
            }
            (Timer::Timeout, TxKind::NonInviteServer, TxState::Trying | TxState::Proceeding) => {
                self.stats.timeouts += 1;
                self.stats.complete_timeout(&t.request.method);
                self.terminate(id);
            }
            (Timer::Linger, _, _) => self.terminate(id),
            _ => {}
        }
    }

    fn terminate(&mut self, id: TxId) {
        if let Some(t) = self.txs.remove(&id) {
            if self.by_key.get(&t.key) == Some(&id) {
                self.by_key.remove(&t.key);
            }
            self.event(Event::Terminated { tx: id });
        }
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) && !data.is_empty() {
            return; // RFC 5626 keep-alive
        }
        match message::parse(data) {
            Ok(message::Message::Request(r)) => {
                self.on_request(now, from, r);
                self.reschedule();
            }
            Ok(message::Message::Response(r)) => {
                self.on_response(now, r);
                self.reschedule();
            }
            Err(e) => {
                self.count(e.reason);
                if let Some(req) = e.answerable {
                    if req.method != Method::Ack {
                        self.stats.bad_request_answered += 1;
                        let resp = response_to(&req, 400, Some("bad"));
                        self.transmit(from, resp.to_bytes());
                    }
                }
            }
        }
    }

    fn on_response(&mut self, now: Instant, response: Response) {
        let (Some(via), Some(cseq)) = (response.top_via(), response.cseq()) else {
            self.count(DropReason::BadVia);
            return;
        };
        let Some(branch) = via.branch.clone() else {
            self.count(DropReason::BadVia);
            return;
        };
        let key = Key { branch, sent_by: via.sent_by.clone(), method: cseq.method.clone() };
        let Some(&id) = self.by_key.get(&key) else {
            self.count(DropReason::StrayResponse);
            return;
        };
        let (t1, t4) = (self.config.t1, self.config.t4);
        self.touched.push(id);
        let Some(t) = self.txs.get_mut(&id) else { return };
        if t.kind != TxKind::InviteClient && t.kind != TxKind::NonInviteClient {
            self.count(DropReason::StrayResponse);
            return;
        }
        let status = response.status;
        let first_final = status >= 200
            && matches!(
                (t.kind, t.state),
                (TxKind::InviteClient, TxState::Calling | TxState::Proceeding)
                    | (TxKind::NonInviteClient, TxState::Trying | TxState::Proceeding)
            );
        if first_final {
            self.stats.complete(&t.request.method, status);
        }
        match (t.kind, t.state) {
            (TxKind::InviteClient, TxState::Calling | TxState::Proceeding) => {
                if status < 200 {
                    t.state = TxState::Proceeding;
                    t.timers.stop(Timer::Retransmit);
                    t.timers.stop(Timer::Timeout);
                    let cancel = t.cancel_pending;
                    self.event(Event::Response { tx: id, response });
                    if cancel {
                        let _ = self.send_cancel(now, id);
                    }
                } else if status < 300 {
                    t.state = TxState::Accepted;
                    t.timers.stop(Timer::Retransmit);
                    t.timers.stop(Timer::Timeout);
                    t.timers.set(Timer::Linger, now + 64 * t1);
                    t.cancel_pending = false;
                    // Never retransmitted again (the dialog ACKs 2xx retransmissions): an answered
                    // call held for minutes should not keep its INVITE's bytes for timer M.
                    t.wire = Vec::new();
                    self.event(Event::Response { tx: id, response });
                } else {
                    t.state = TxState::Completed;
                    t.timers.stop(Timer::Retransmit);
                    t.timers.stop(Timer::Timeout);
                    // Timer D: at least 32 s on UDP.
                    t.timers.set(Timer::Linger, now + (64 * t1).max(Duration::from_secs(32)));
                    t.cancel_pending = false;
                    let ack = ack_for_non_2xx(&t.request, &response).to_bytes();
                    t.ack = Some(ack.clone());
                    let dest = t.peer;
                    self.transmit(dest, ack);
                    self.event(Event::Response { tx: id, response });
                }
            }
            (TxKind::InviteClient, TxState::Accepted) if response.is_success() => {
                self.event(Event::Response { tx: id, response });
            }
            (TxKind::InviteClient, TxState::Completed) if status >= 300 => {
                if let Some(ack) = t.ack.clone() {
                    let dest = t.peer;
                    self.transmit(dest, ack);
                }
            }
            (TxKind::NonInviteClient, TxState::Trying | TxState::Proceeding) => {
                if status < 200 {
                    t.state = TxState::Proceeding;
                } else {
                    t.state = TxState::Completed;
                    t.timers.stop(Timer::Retransmit);
                    t.timers.stop(Timer::Timeout);
                    t.timers.set(Timer::Linger, now + t4);
                }
                self.event(Event::Response { tx: id, response });
            }
            _ => {} // retransmissions absorbed
        }
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, request: Request) {
        let Some(via) = request.top_via() else {
            self.count(DropReason::BadVia);
            return;
        };
        let branch = via.branch.clone().unwrap_or_default();
        let method = if request.method == Method::Ack { Method::Invite } else { request.method.clone() };
        let key = Key { branch, sent_by: via.sent_by.clone(), method };
        if let Some(&id) = self.by_key.get(&key) {
            self.on_matched_request(now, id, from, request);
            return;
        }
        match request.method {
            Method::Ack => self.on_stray_ack(now, from, request),
            Method::Cancel => self.on_cancel(now, from, &via, request),
            _ => {
                let allowed = self.config.allowed.contains(&request.method);
                if !allowed {
                    let status = if matches!(request.method, Method::Other(_)) { 501 } else { 405 };
                    let mut resp = response_to(&request, status, Some("na"));
                    if status == 405 {
                        let allow: Vec<&str> = self.config.allowed.iter().map(Method::as_str).collect();
                        resp.headers.push("Allow", allow.join(", "));
                    }
                    self.transmit(from, resp.to_bytes());
                    return;
                }
                if self.txs.len() >= self.config.max_transactions {
                    self.count(DropReason::TooManyTransactions);
                    let resp = response_to(&request, 503, None);
                    self.transmit(from, resp.to_bytes());
                    return;
                }
                self.start_server(now, from, key, request);
            }
        }
    }

    fn start_server(&mut self, now: Instant, from: SocketAddr, key: Key, request: Request) -> TxId {
        let invite = request.method == Method::Invite;
        let mut wire = Vec::new();
        if invite {
            // Send 100 Trying at once (RFC 3261 17.2.1 allows it; it stops the caller's timer A).
            wire = response_to(&request, 100, None).to_bytes();
            self.transmit(from, wire.clone());
        }
        let id = self.alloc_id();
        let tx = Transaction {
            kind: if invite { TxKind::InviteServer } else { TxKind::NonInviteServer },
            state: if invite { TxState::Proceeding } else { TxState::Trying },
            key: key.clone(),
            request: request.clone(),
            peer: from,
            wire,
            ack: None,
            interval: self.config.t1,
            timers: TimerTable::default(),
            cancel_pending: false,
        };
        let mut tx = tx;
        let limit = if invite { self.config.invite_server_timeout } else { 64 * self.config.t1 };
        tx.timers.set(Timer::Timeout, now + limit);
        self.txs.insert(id, tx);
        self.by_key.insert(key, id);
        self.touched.push(id);
        self.event(Event::Request { tx: id, from, request });
        id
    }

    fn on_matched_request(&mut self, now: Instant, id: TxId, _from: SocketAddr, request: Request) {
        let t4 = self.config.t4;
        self.touched.push(id);
        let Some(t) = self.txs.get_mut(&id) else { return };
        if request.method == Method::Ack {
            match (t.kind, t.state) {
                (TxKind::InviteServer, TxState::Completed) => {
                    t.state = TxState::Confirmed;
                    t.timers.stop(Timer::Retransmit);
                    t.timers.stop(Timer::Timeout);
                    t.timers.set(Timer::Linger, now + t4); // timer I
                }
                (TxKind::InviteServer, TxState::Confirmed) => {}
                _ => self.count(DropReason::StrayAck),
            }
            return;
        }
        // A retransmitted request: resend the last response, if any.
        if t.kind == TxKind::InviteServer || t.kind == TxKind::NonInviteServer {
            if !t.wire.is_empty() && t.state != TxState::Confirmed {
                let (dest, bytes) = (t.peer, t.wire.clone());
                self.transmit(dest, bytes);
            }
        } else {
            self.count(DropReason::StrayResponse);
        }
    }

    /// ACK outside a transaction: the ACK for a 2xx. It stops the 2xx retransmissions of the INVITE
    /// server transaction in Accepted with the same Call-ID and CSeq number, and goes up.
    fn on_stray_ack(&mut self, now: Instant, from: SocketAddr, request: Request) {
        let t1 = self.config.t1;
        let (Some(call_id), Some(cseq)) = (request.call_id().map(str::to_string), request.cseq()) else {
            self.count(DropReason::StrayAck);
            return;
        };
        let mut matched = false;
        for (id, t) in self.txs.iter_mut() {
            if t.kind == TxKind::InviteServer
                && t.state == TxState::Accepted
                && t.request.call_id() == Some(call_id.as_str())
                && t.request.cseq().is_some_and(|c| c.seq == cseq.seq)
            {
                // Stop retransmitting; keep the transaction until timer L absorbs INVITE retransmissions.
                t.timers.stop(Timer::Retransmit);
                t.timers.stop(Timer::Timeout);
                t.timers.set(Timer::Linger, now + 64 * t1);
                t.state = TxState::Confirmed;
                matched = true;
                self.touched.push(*id);
            }
        }
        if !matched {
            tracing::trace!("ACK for a 2xx without a live server transaction");
        }
        self.event(Event::Ack { from, request });
    }

    fn on_cancel(&mut self, now: Instant, from: SocketAddr, via: &Via, request: Request) {
        let branch = via.branch.clone().unwrap_or_default();
        let invite_key = Key { branch, sent_by: via.sent_by.clone(), method: Method::Invite };
        let target = self.by_key.get(&invite_key).copied();
        let cancel_key = Key { method: Method::Cancel, ..invite_key };
        if self.txs.len() >= self.config.max_transactions {
            self.count(DropReason::TooManyTransactions);
            self.transmit(from, response_to(&request, 503, None).to_bytes());
            return;
        }
        // The CANCEL gets its own non-INVITE server transaction, answered here.
        let id = self.alloc_id();
        let tag = target.and_then(|t| self.txs.get(&t)).and_then(|t| t.request.to_tag().map(str::to_string));
        let proceeding = target.and_then(|t| self.txs.get(&t)).is_some_and(|t| t.state == TxState::Proceeding);
        // RFC 3261 9.2: a CANCEL matching a transaction gets 200 even if the final response already went
        // (then it has no effect); one matching nothing gets 481.
        let status = if target.is_some() { 200 } else { 481 };
        let resp = response_to(&request, status, tag.as_deref().or(Some("cx")));
        self.stats.complete(&Method::Cancel, status);
        let bytes = resp.to_bytes();
        let mut timers = TimerTable::default();
        timers.set(Timer::Linger, now + 64 * self.config.t1);
        self.txs.insert(
            id,
            Transaction {
                kind: TxKind::NonInviteServer,
                state: TxState::Completed,
                key: cancel_key.clone(),
                request,
                peer: from,
                wire: bytes.clone(),
                ack: None,
                interval: self.config.t1,
                timers,
                cancel_pending: false,
            },
        );
        self.by_key.insert(cancel_key, id);
        self.touched.push(id);
        self.transmit(from, bytes);
        if let (true, Some(invite)) = (proceeding, target) {
            self.event(Event::Cancelled { tx: invite });
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 17.1.1.3): same branch, R-URI, Call-ID, From and
/// Route; To from the response; CSeq number with method ACK.
pub fn ack_for_non_2xx(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(v) = invite.headers.get_list("Via").first() {
        ack.headers.push("Via", *v);
    }
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            ack.headers.push(name, v);
        }
    }
    if let Some(v) = response.headers.get("To") {
        ack.headers.push("To", v);
    }
    if let Some(c) = invite.cseq() {
        ack.headers.push("CSeq", CSeq { seq: c.seq, method: Method::Ack }.to_string());
    }
    for r in invite.headers.get_list("Route") {
        ack.headers.push("Route", r);
    }
    ack.headers.push("Max-Forwards", "70");
    ack
}

/// The CANCEL for a client INVITE (RFC 3261 9.1), without its Via (the endpoint adds the INVITE's).
fn cancel_for(invite: &Request) -> Option<Request> {
    let mut c = Request::new(Method::Cancel, invite.uri.clone());
    for name in ["From", "To", "Call-ID"] {
        c.headers.push(name, invite.headers.get(name)?);
    }
    c.headers.push("CSeq", CSeq { seq: invite.cseq()?.seq, method: Method::Cancel }.to_string());
    for r in invite.headers.get_list("Route") {
        c.headers.push("Route", r);
    }
    c.headers.push("Max-Forwards", "70");
    let via = invite.headers.get_list("Via");
    let mut out = c;
    out.headers.push_front("Via", *via.first()?);
    Some(out)
}
