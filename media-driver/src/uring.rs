//! The io_uring driver: a [`UdpRing`] around a [`Shard`] (multishot receive into a provided
//! buffer ring, a turn's sends submitted together with the wait for the next completions).
//!
//! One turn: submit and wait (the shard's next deadline is the timeout), hand every datagram to
//! the shard, apply control messages, run due deadlines, queue the turn's sends.

use std::collections::HashMap;
use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::meter::Meter;
use crate::ring::{Completion, RingConfig, UdpRing, MAX_TOKEN};
use crate::shard::{Input, Report, Shard, ShardApp, ShardStats, SocketOp};
use crate::tcp::TcpSide;
use crate::Wake;
use media::call::{SocketId, Transmit};

/// Control messages applied per turn (the rest wait for the next turn).
const CONTROLS_PER_TURN: usize = 256;
/// How late a deadline may be handled when nothing else wakes the shard: the calls' 20 ms
/// ticks (recording, prompts, hold audio) fall at every phase, and a datagram arriving within
/// this window wakes the shard anyway, so the ticks are handled in that turn instead of each
/// costing a wake-up of its own. Under load a turn comes every few microseconds regardless.
const TIMER_SLACK: Duration = Duration::from_millis(1);

pub(crate) use crate::ring::probe;

pub(crate) fn run<A: ShardApp>(
    index: usize,
    control: Receiver<Input<A::Message>>,
    reports: Sender<Report>,
    wake_tx: SyncSender<io::Result<Wake>>,
    tcp: Option<std::net::SocketAddr>,
    app: Option<A>,
) -> io::Result<ShardStats> {
    let setup = UdpRing::new(RingConfig::default()).and_then(|r| r.waker().map(|w| (r, w)));
    let (ring, waker) = match setup {
        Ok(x) => x,
        Err(e) => {
            let _ = wake_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    let wake: Wake = Arc::new(move || waker.wake());
    let mut shard = Shard::maybe_with_app(reports, app);
    let mut tcp = TcpSide::start(index, tcp, &wake, &mut shard, &wake_tx)?;
    let _ = wake_tx.send(Ok(wake));

    let mut d = Driver { ring, sockets: HashMap::new(), next_generation: 0 };
    let mut meter = Meter::new(index, Instant::now());
    let mut out: Vec<Transmit> = Vec::with_capacity(256);
    loop {
        let timeout = if control.is_empty() && !tcp.has_input() {
            let at = shard.poll_timeout().map_or(meter.next_at(), |at| at.min(meter.next_at()));
            at.saturating_duration_since(Instant::now()) + TIMER_SLACK
        } else {
            Duration::ZERO // messages left over from the last turn
        };
        d.ring.submit_and_wait(timeout)?;
        d.complete(&mut shard, &mut out);
        d.after_input(&mut shard, &mut out);
        tcp.feed(&mut shard, &mut out);
        d.after_input(&mut shard, &mut out);
        for _ in 0..CONTROLS_PER_TURN {
            let Ok(c) = control.try_recv() else { break };
            let op = shard.handle_input(Instant::now(), c, &mut out);
            if let Some(SocketOp::Shutdown) = op {
                d.after_input(&mut shard, &mut out);
                d.ring.submit_and_wait(Duration::ZERO)?;
                tcp.flush(&mut shard);
                tcp.count(&mut shard);
                meter.flush(&mut shard);
                return Ok(shard.stats());
            }
            if let Some(op) = op {
                d.socket_op(&mut shard, op);
            }
            d.after_input(&mut shard, &mut out);
        }
        shard.handle_timeout(Instant::now(), &mut out);
        d.after_input(&mut shard, &mut out);
        tcp.flush(&mut shard);
        if Instant::now() >= meter.next_at() {
            tcp.count(&mut shard);
        }
        meter.maybe_flush(Instant::now(), &mut shard);
    }
}

/// A socket the ring receives on.
struct Armed {
    socket: UdpSocket,
    /// Tells this socket's completions from those of an earlier socket with the same id.
    generation: u32,
}

/// A receive's token: the socket id and its generation.
fn token(id: SocketId, generation: u32) -> u64 {
    (u64::from(generation) << 32 | u64::from(id.0)) & MAX_TOKEN
}

struct Driver {
    ring: UdpRing,
    sockets: HashMap<SocketId, Armed>,
    next_generation: u32,
}

impl Driver {
    /// Hand every completion to the shard.
    fn complete<A: ShardApp>(&mut self, shard: &mut Shard<A>, out: &mut Vec<Transmit>) {
        let sockets = &self.sockets;
        let current = |t: u64| {
            let id = SocketId(t as u32);
            sockets.get(&id).filter(|s| token(id, s.generation) == t).map(|_| id)
        };
        self.ring.complete(|c| match c {
            Completion::Datagram { token, from, data, .. } => {
                if let Some(id) = current(token) {
                    shard.handle_datagram(Instant::now(), id, from, data, out);
                }
            }
            Completion::SendFailed(_) => shard.count_send_error(),
            Completion::RecvFailed { token, error } => {
                if let Some(id) = current(token) {
                    shard.report(Report::SocketError { id, error: error.to_string() });
                }
            }
            Completion::Woken => {}
        });
    }

    /// Apply the socket operations and queue the sends an input produced.
    fn after_input<A: ShardApp>(&mut self, shard: &mut Shard<A>, out: &mut Vec<Transmit>) {
        while let Some(op) = shard.poll_socket_op() {
            self.socket_op(shard, op);
        }
        for t in out.drain(..) {
            let sent = match self.sockets.get(&t.socket) {
                Some(s) => self.ring.send_to(s.socket.as_raw_fd(), t.destination, t.payload).is_ok(),
                None => false,
            };
            if !sent {
                shard.count_send_error();
            }
        }
    }

    fn socket_op<A: ShardApp>(&mut self, shard: &mut Shard<A>, op: SocketOp) {
        match op {
            SocketOp::Add(id, socket) => {
                if let Err(e) = socket.set_nonblocking(true) {
                    shard.report(Report::SocketError { id, error: e.to_string() });
                    return;
                }
                self.remove(id);
                self.next_generation = self.next_generation.wrapping_add(1) & 0xff_ffff;
                let generation = self.next_generation;
                self.ring.recv(socket.as_raw_fd(), token(id, generation));
                self.sockets.insert(id, Armed { socket, generation });
            }
            SocketOp::Remove(id) => self.remove(id),
            SocketOp::Shutdown => {}
        }
    }

    /// Stop a socket's receive and close it.
    fn remove(&mut self, id: SocketId) {
        if let Some(s) = self.sockets.remove(&id) {
            self.ring.cancel(token(id, s.generation));
        }
    }
}
