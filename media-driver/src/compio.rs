//! The compio driver: compio's completion-based runtime on io_uring, one task per socket.
//!
//! Every socket has a task that keeps one `recvfrom` in flight and, when it completes, hands
//! the datagram to the shard and submits the resulting sends. A timer task runs the shard's
//! deadlines; a control task applies [`Control`] messages when woken through an `AtomicWaker`.
//! All tasks run on the shard's one thread and share the shard through an `Rc<RefCell<_>>`,
//! never borrowed across an `.await`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::rc::Rc;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use compio::driver::DriverType;
use compio::net::UdpSocket;
use compio::runtime::{JoinHandle, Runtime};
use compio::BufResult;
use crossbeam_channel::{Receiver, Sender};
use futures::task::AtomicWaker;

use crate::meter::Meter;
use crate::shard::{Input, Report, Shard, ShardStats, SocketOp, SocketTable};
use crate::Wake;
use media::call::{SocketId, Transmit};
use media::rtp::MAX_DATAGRAM_LEN;

/// The timer task re-reads the shard's next deadline at least this often (a call added by a
/// control message may have an earlier one).
const TIMER_RECHECK: Duration = Duration::from_millis(5);
/// Control messages applied per wake-up before yielding.
const CONTROLS_PER_TURN: usize = 256;

struct Inner {
    shard: Shard,
    meter: Meter,
    sockets: SocketTable<Rc<UdpSocket>>,
    tasks: HashMap<SocketId, JoinHandle<()>>,
    stop: bool,
}

/// Submission/completion ring entries: every socket keeps a receive in flight.
const RING_ENTRIES: u32 = 32_768;

fn runtime() -> io::Result<Runtime> {
    let mut proactor = compio::driver::ProactorBuilder::new();
    proactor.capacity(RING_ENTRIES).coop_taskrun(true);
    compio::runtime::RuntimeBuilder::new().with_proactor(proactor).build()
}

/// Build a runtime and check it runs on io_uring (not compio's polling fallback).
pub(crate) fn probe() -> io::Result<()> {
    let rt = Runtime::new()?;
    match rt.driver_type() {
        DriverType::IoUring => Ok(()),
        other => Err(io::Error::new(ErrorKind::Unsupported, format!("io_uring unavailable (compio chose {other:?})"))),
    }
}

/// Runs a shard without an app (the hosted app, the dialer's SIP, runs on the other drivers,
/// which `spawn_with_app` picks for it).
pub(crate) fn run(
    index: usize,
    control: Receiver<Input<Infallible>>,
    reports: Sender<Report>,
    wake_tx: SyncSender<io::Result<Wake>>,
) -> io::Result<ShardStats> {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = wake_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    let notify = Arc::new(AtomicWaker::new());
    let n = notify.clone();
    let wake: Wake = Arc::new(move || n.wake());
    let _ = wake_tx.send(Ok(wake));

    let inner = Rc::new(RefCell::new(Inner {
        shard: Shard::new(reports),
        meter: Meter::new(index, Instant::now()),
        sockets: SocketTable::default(),
        tasks: HashMap::new(),
        stop: false,
    }));
    rt.block_on(async move {
        let timer = compio::runtime::spawn(timer_loop(inner.clone()));
        control_loop(inner.clone(), control, notify).await;
        drop(timer);
        let mut i = inner.borrow_mut();
        i.tasks.clear();
        let Inner { shard, meter, .. } = &mut *i;
        meter.flush(shard);
        Ok(shard.stats())
    })
}

async fn control_loop(inner: Rc<RefCell<Inner>>, control: Receiver<Input<Infallible>>, notify: Arc<AtomicWaker>) {
    let mut out = Vec::new();
    loop {
        poll_fn(|cx| {
            notify.register(cx.waker());
            if control.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        for _ in 0..CONTROLS_PER_TURN {
            let Ok(c) = control.try_recv() else { break };
            let op = inner.borrow_mut().shard.handle_input(Instant::now(), c, &mut out);
            match op {
                None => {}
                Some(SocketOp::Add(id, socket)) => match UdpSocket::from_std(socket) {
                    Ok(s) => {
                        let s = Rc::new(s);
                        let task = compio::runtime::spawn(recv_loop(inner.clone(), id, s.clone()));
                        let mut i = inner.borrow_mut();
                        i.sockets.insert(id, s);
                        i.tasks.insert(id, task);
                    }
                    Err(e) => inner.borrow_mut().shard.report(Report::SocketError { id, error: e.to_string() }),
                },
                Some(SocketOp::Remove(id)) => {
                    let mut i = inner.borrow_mut();
                    i.tasks.remove(&id);
                    i.sockets.remove(id);
                }
                Some(SocketOp::Shutdown) => {
                    send_all(&inner, &mut out).await;
                    inner.borrow_mut().stop = true;
                    return;
                }
            }
            send_all(&inner, &mut out).await;
        }
    }
}

async fn timer_loop(inner: Rc<RefCell<Inner>>) {
    let mut out = Vec::new();
    loop {
        let recheck = Instant::now() + TIMER_RECHECK;
        let at = inner.borrow().shard.poll_timeout().map_or(recheck, |t| t.min(recheck));
        compio::time::sleep_until(at).await;
        if inner.borrow().stop {
            return;
        }
        inner.borrow_mut().shard.handle_timeout(Instant::now(), &mut out);
        send_all(&inner, &mut out).await;
        let mut i = inner.borrow_mut();
        let Inner { shard, meter, .. } = &mut *i;
        meter.maybe_flush(Instant::now(), shard);
    }
}

async fn recv_loop(inner: Rc<RefCell<Inner>>, id: SocketId, socket: Rc<UdpSocket>) {
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_DATAGRAM_LEN + 1);
    let mut out = Vec::new();
    loop {
        buf.clear();
        let BufResult(res, b) = socket.recv_from(buf).await;
        buf = b;
        match res {
            Ok((n, from)) => {
                let n = n.min(buf.len());
                inner.borrow_mut().shard.handle_datagram(Instant::now(), id, from, &buf[..n], &mut out);
                send_all(&inner, &mut out).await;
            }
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionRefused) => {}
            Err(e) => {
                inner.borrow_mut().shard.report(Report::SocketError { id, error: e.to_string() });
                return;
            }
        }
    }
}

async fn send_all(inner: &Rc<RefCell<Inner>>, out: &mut Vec<Transmit>) {
    for t in out.drain(..) {
        let socket = inner.borrow().sockets.get(t.socket).cloned();
        let sent = match socket {
            Some(s) => s.send_to(t.payload, t.destination).await.0.is_ok(),
            None => false,
        };
        if !sent {
            inner.borrow_mut().shard.count_send_error();
        }
    }
}
