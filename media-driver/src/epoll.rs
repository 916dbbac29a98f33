//! The epoll driver: a mio readiness loop over non-blocking sockets.

use std::io::{self, ErrorKind};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::meter::Meter;
use crate::shard::{Input, Report, Shard, ShardApp, ShardStats, SocketOp, SocketTable};
use crate::tcp::TcpSide;
use crate::Wake;
use media::call::{SocketId, Transmit};
use media::rtp::MAX_DATAGRAM_LEN;

const WAKER: Token = Token(u32::MAX as usize + 1);
/// Control messages applied per loop turn (the rest wait for the next turn).
const CONTROLS_PER_TURN: usize = 256;

pub(crate) fn run<A: ShardApp>(
    index: usize,
    control: Receiver<Input<A::Message>>,
    reports: Sender<Report>,
    wake_tx: SyncSender<io::Result<Wake>>,
    tcp: Option<std::net::SocketAddr>,
    app: Option<A>,
) -> io::Result<ShardStats> {
    let setup = Poll::new().and_then(|p| Waker::new(p.registry(), WAKER).map(|w| (p, w)));
    let (mut poll, waker) = match setup {
        Ok(x) => x,
        Err(e) => {
            let _ = wake_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    let waker = Arc::new(waker);
    let wake: Wake = Arc::new(move || {
        let _ = waker.wake();
    });
    let mut shard = Shard::maybe_with_app(reports, app);
    let mut tcp = TcpSide::start(index, tcp, &wake, &mut shard, &wake_tx)?;
    let _ = wake_tx.send(Ok(wake));

    let mut sockets: SocketTable<UdpSocket> = SocketTable::default();
    let mut events = Events::with_capacity(1024);
    let mut out: Vec<Transmit> = Vec::with_capacity(64);
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN + 1];
    let mut meter = Meter::new(index, Instant::now());
    loop {
        let timeout = if control.is_empty() && !tcp.has_input() {
            let at = shard.poll_timeout().map_or(meter.next_at(), |at| at.min(meter.next_at()));
            Some(at.saturating_duration_since(Instant::now()))
        } else {
            Some(std::time::Duration::ZERO) // messages left over from the last turn
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for event in events.iter() {
            if event.token() == WAKER {
                continue;
            }
            let id = SocketId(event.token().0 as u32);
            // Edge-triggered: read until the socket is empty.
            while let Some(sock) = sockets.get(id) {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        shard.handle_datagram(Instant::now(), id, from, &buf[..n], &mut out);
                        socket_ops(&poll, &mut shard, &mut sockets);
                        flush(&mut shard, &sockets, &mut out);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // ICMP errors (ECONNREFUSED from a previous send) surface here; keep reading.
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                    Err(e) => {
                        shard.report(Report::SocketError { id, error: e.to_string() });
                        break;
                    }
                }
            }
        }
        tcp.feed(&mut shard, &mut out);
        socket_ops(&poll, &mut shard, &mut sockets);
        flush(&mut shard, &sockets, &mut out);
        for _ in 0..CONTROLS_PER_TURN {
            let Ok(c) = control.try_recv() else { break };
            let op = shard.handle_input(Instant::now(), c, &mut out);
            if let Some(SocketOp::Shutdown) = op {
                flush(&mut shard, &sockets, &mut out);
                tcp.flush(&mut shard);
                tcp.count(&mut shard);
                meter.flush(&mut shard);
                return Ok(shard.stats());
            }
            if let Some(op) = op {
                socket_op(&poll, &mut shard, &mut sockets, op);
            }
            socket_ops(&poll, &mut shard, &mut sockets);
            flush(&mut shard, &sockets, &mut out);
        }
        shard.handle_timeout(Instant::now(), &mut out);
        socket_ops(&poll, &mut shard, &mut sockets);
        flush(&mut shard, &sockets, &mut out);
        tcp.flush(&mut shard);
        if Instant::now() >= meter.next_at() {
            tcp.count(&mut shard);
        }
        meter.maybe_flush(Instant::now(), &mut shard);
    }
}

/// Applies the socket operations a hosted app asked for.
fn socket_ops<A: ShardApp>(poll: &Poll, shard: &mut Shard<A>, sockets: &mut SocketTable<UdpSocket>) {
    while let Some(op) = shard.poll_socket_op() {
        socket_op(poll, shard, sockets, op);
    }
}

fn socket_op<A: ShardApp>(poll: &Poll, shard: &mut Shard<A>, sockets: &mut SocketTable<UdpSocket>, op: SocketOp) {
    match op {
        SocketOp::Add(id, socket) => {
            if let Err(e) = add_socket(poll, sockets, id, socket) {
                shard.report(Report::SocketError { id, error: e.to_string() });
            }
        }
        SocketOp::Remove(id) => {
            if let Some(mut s) = sockets.remove(id) {
                let _ = poll.registry().deregister(&mut s);
            }
        }
        // Only a Shutdown control stops the loop; an app cannot.
        SocketOp::Shutdown => {}
    }
}

fn add_socket(
    poll: &Poll,
    sockets: &mut SocketTable<UdpSocket>,
    id: SocketId,
    socket: std::net::UdpSocket,
) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let mut s = UdpSocket::from_std(socket);
    poll.registry().register(&mut s, Token(id.0 as usize), Interest::READABLE)?;
    if let Some(mut old) = sockets.insert(id, s) {
        let _ = poll.registry().deregister(&mut old);
    }
    Ok(())
}

fn flush<A: ShardApp>(shard: &mut Shard<A>, sockets: &SocketTable<UdpSocket>, out: &mut Vec<Transmit>) {
    for t in out.drain(..) {
        let sent = match sockets.get(t.socket) {
            Some(s) => s.send_to(&t.payload, t.destination).is_ok(),
            None => false,
        };
        if !sent {
            shard.count_send_error();
        }
    }
}
