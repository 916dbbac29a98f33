//! The browser phone's TCP candidate (RFC 6544 ICE-TCP, a passive host candidate; RFC 4571
//! framing): one listening socket per shard, served by a small thread of the driver's beside the
//! shard's own (the io_uring and epoll loops own UDP sockets only).
//!
//! The thread accepts connections, cuts each byte stream into RFC 4571 frames (a 2-byte
//! big-endian length, then that many bytes) and hands them to the shard as [`TcpIn`] over a
//! bounded channel, waking the shard's loop; the shard routes a connection to its WebRTC leg by
//! the ICE username of its first frame (`crate::webrtc::WebRtcLegs::handle_tcp`) and answers with
//! [`TcpOut`] frames, which the thread frames and writes back on the same connection.
//!
//! Bounded everywhere: connections per shard ([`MAX_CONNECTIONS`]; one more is closed at once,
//! counted), a frame's length ([`MAX_FRAME`]: a longer one closes its connection, counted), one
//! partial frame read per connection, [`MAX_WRITE_BUFFER`] bytes waiting to be written per
//! connection (a frame beyond is dropped, counted: audio late by seconds is worth nothing), both
//! channels ([`MAX_QUEUE`]), and a connection that has not sent a valid first frame within
//! [`FIRST_FRAME_WITHIN`] is closed. A first frame that is not a STUN message is garbage and closes
//! its connection. Nothing a peer sends can panic the thread.
//!
//! [`FrameReader`] is the framing alone (sans-IO), tested on its own.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::shard::{Shard, ShardApp};
use crate::Wake;
use media::call::Transmit;

/// Connections one shard's listener holds at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// The longest frame taken (a datagram's worth: STUN, DTLS records, SRTP all fit).
pub const MAX_FRAME: usize = media::rtp::MAX_DATAGRAM_LEN;
/// Bytes waiting to be written to one connection (about a second and a half of Opus).
pub const MAX_WRITE_BUFFER: usize = 32 * 1024;
/// Bound of each channel between the thread and the shard.
pub const MAX_QUEUE: usize = 4096;
/// A connection that sent no valid first frame this long after it was accepted is closed.
pub const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(5);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: u64 = 2;

/// One accepted connection, as the shard knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// From the thread to the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpIn {
    /// One RFC 4571 frame's contents from `peer` on `conn`.
    Frame { conn: ConnId, peer: SocketAddr, data: Vec<u8> },
    /// The connection is gone (the peer closed it, an error, or the thread closed it).
    Closed { conn: ConnId },
}

/// From the shard to the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOut {
    /// Frame `data` and write it on `conn`.
    Frame { conn: ConnId, data: Vec<u8> },
    /// Close `conn` (its leg is gone, or its first frame named no leg).
    Close { conn: ConnId },
}

/// Counters of a shard's TCP listener (the thread's, plus the shard's routing refusals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections accepted, and refused because [`MAX_CONNECTIONS`] were open.
    pub accepted: u64,
    pub refused: u64,
    /// Connections closed for a frame longer than [`MAX_FRAME`] (or of length 0).
    pub oversized: u64,
    /// Connections closed because their first frame was not STUN.
    pub garbage: u64,
    /// Connections closed for sending no valid first frame within [`FIRST_FRAME_WITHIN`].
    pub idle: u64,
    /// Connections the shard closed because their first frame named no leg (counted by the shard).
    pub unrouted: u64,
    /// Frames received and written.
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames dropped: a full channel, a full write buffer, a connection already gone.
    pub dropped: u64,
}

impl TcpStats {
    /// Connections closed for something their peer sent (or did not send).
    pub fn closed_bad(&self) -> u64 {
        self.oversized + self.garbage + self.idle + self.unrouted
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    oversized: AtomicU64,
    garbage: AtomicU64,
    idle: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    dropped: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What [`FrameReader::next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame's contents.
    Whole(&'a [u8]),
    /// More bytes are needed.
    Partial,
    /// A length of 0 or over [`MAX_FRAME`]: the stream cannot be trusted past it.
    TooLong(usize),
}

/// RFC 4571 framing of one connection's byte stream, with room for one frame at most.
#[derive(Debug)]
pub struct FrameReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader { buf: vec![0; 2 + MAX_FRAME].into_boxed_slice(), start: 0, end: 0 }
    }
}

impl FrameReader {
    /// Where the next bytes read go (never empty while no frame is too long: one frame fits).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`FrameReader::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next frame of what was read.
    pub fn next_frame(&mut self) -> Frame<'_> {
        let have = &self.buf[self.start..self.end];
        if have.len() < 2 {
            return Frame::Partial;
        }
        let len = usize::from(u16::from_be_bytes([have[0], have[1]]));
        if len == 0 || len > MAX_FRAME {
            return Frame::TooLong(len);
        }
        if have.len() < 2 + len {
            return Frame::Partial;
        }
        let at = self.start + 2;
        self.start += 2 + len;
        Frame::Whole(&self.buf[at..at + len])
    }
}

/// Whether a frame is a STUN message (RFC 5389 §6: the top two bits zero, the magic cookie).
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] < 2 && data[4..8] == [0x21, 0x12, 0xA4, 0x42]
}

/// The driver's end of a shard's TCP thread.
pub(crate) struct TcpFront {
    local: SocketAddr,
    rx: Receiver<TcpIn>,
    tx: Option<Sender<TcpOut>>,
    waker: Arc<Waker>,
    counters: Arc<Counters>,
    /// Frames the shard queued that the channel refused (full).
    dropped: u64,
    thread: Option<JoinHandle<()>>,
}

impl TcpFront {
    /// Binds `listen` and starts the thread; `wake` wakes the shard's loop.
    pub(crate) fn start(index: usize, listen: SocketAddr, wake: Wake) -> io::Result<TcpFront> {
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let local = std_listener.local_addr()?;
        let mut listener = TcpListener::from_std(std_listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (in_tx, in_rx) = crossbeam_channel::bounded(MAX_QUEUE);
        let (out_tx, out_rx) = crossbeam_channel::bounded(MAX_QUEUE);
        let counters = Arc::new(Counters::default());
        let mut thread = Thread {
            poll,
            listener,
            conns: HashMap::new(),
            next: FIRST_CONN,
            tx: in_tx,
            rx: out_rx,
            wake,
            counters: counters.clone(),
            next_idle_check: Instant::now(),
        };
        let handle = std::thread::Builder::new().name(format!("media-tcp-{index}")).spawn(move || thread.run())?;
        Ok(TcpFront { local, rx: in_rx, tx: Some(out_tx), waker, counters, dropped: 0, thread: Some(handle) })
    }

    /// The listener's address (its port is the one the TCP candidates name).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next frame or closing for the shard.
    pub(crate) fn try_recv(&self) -> Option<TcpIn> {
        self.rx.try_recv().ok()
    }

    pub(crate) fn has_input(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Hands the shard's frames to the thread (a full channel drops, counted) and wakes it once.
    pub(crate) fn send_all(&mut self, out: impl Iterator<Item = TcpOut>) {
        let Some(tx) = &self.tx else { return };
        let mut sent = false;
        for o in out {
            match tx.try_send(o) {
                Ok(()) => sent = true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped += 1,
            }
        }
        if sent {
            let _ = self.waker.wake();
        }
    }

    /// The thread's counters so far (the shard adds its own `unrouted`).
    pub(crate) fn stats(&self) -> TcpStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TcpStats {
            accepted: get(&c.accepted),
            refused: get(&c.refused),
            oversized: get(&c.oversized),
            garbage: get(&c.garbage),
            idle: get(&c.idle),
            unrouted: 0,
            frames_in: get(&c.frames_in),
            frames_out: get(&c.frames_out),
            dropped: get(&c.dropped) + self.dropped,
        }
    }
}

/// The driver's side of a shard's TCP listener, used by the io_uring and epoll loops alike.
pub(crate) struct TcpSide(Option<TcpFront>);

impl TcpSide {
    /// Starts the listener at `listen` (if any) and tells the shard its port; a failure (the
    /// address taken) is also said on `started`, where the shard's spawner waits.
    pub(crate) fn start<A: ShardApp>(
        index: usize,
        listen: Option<SocketAddr>,
        wake: &Wake,
        shard: &mut Shard<A>,
        started: &SyncSender<io::Result<Wake>>,
    ) -> io::Result<TcpSide> {
        let Some(listen) = listen else { return Ok(TcpSide(None)) };
        let front = TcpFront::start(index, listen, wake.clone()).inspect_err(|e| {
            let _ = started.send(Err(io::Error::new(e.kind(), format!("TCP listener at {listen}: {e}"))));
        })?;
        shard.set_tcp_port(Some(front.local_addr().port()));
        tracing::info!(shard = index, listen = %front.local_addr(), "browser phones' TCP candidate listening");
        Ok(TcpSide(Some(front)))
    }

    /// Whether frames wait for the shard (the loop must not sleep).
    pub(crate) fn has_input(&self) -> bool {
        self.0.as_ref().is_some_and(TcpFront::has_input)
    }

    /// Hands the shard what the thread received (at most [`FRAMES_PER_TURN`]).
    pub(crate) fn feed<A: ShardApp>(&mut self, shard: &mut Shard<A>, out: &mut Vec<Transmit>) {
        let Some(front) = &self.0 else { return };
        for _ in 0..FRAMES_PER_TURN {
            let Some(input) = front.try_recv() else { break };
            shard.handle_tcp(Instant::now(), input, out);
        }
    }

    /// Hands the thread what the shard queued for it (once a turn: one wake-up of the thread).
    pub(crate) fn flush<A: ShardApp>(&mut self, shard: &mut Shard<A>) {
        let Some(front) = &mut self.0 else { return };
        front.send_all(std::iter::from_fn(|| shard.poll_tcp_out()));
    }

    /// Copies the thread's counters into the shard's (before its metrics are flushed).
    pub(crate) fn count<A: ShardApp>(&self, shard: &mut Shard<A>) {
        if let Some(front) = &self.0 {
            shard.set_tcp_stats(front.stats());
        }
    }
}

/// Frames handed to the shard per turn of its loop (the rest wait for the next turn).
pub(crate) const FRAMES_PER_TURN: usize = 256;

impl Drop for TcpFront {
    fn drop(&mut self) {
        // The thread sees the channel disconnected and ends, closing every connection.
        self.tx = None;
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    reader: FrameReader,
    /// Framed bytes not yet written, from `written` on.
    pending: Vec<u8>,
    written: usize,
    /// Whether WRITABLE is registered (only while `pending` has bytes).
    writable: bool,
    /// Whether a valid first frame arrived.
    greeted: bool,
    accepted: Instant,
}

/// Why the thread closes a connection.
#[derive(Clone, Copy)]
enum Close {
    Peer,
    Oversized,
    Garbage,
    Idle,
    Shard,
}

struct Thread {
    poll: Poll,
    listener: TcpListener,
    conns: HashMap<u64, Conn>,
    next: u64,
    tx: Sender<TcpIn>,
    rx: Receiver<TcpOut>,
    wake: Wake,
    counters: Arc<Counters>,
    next_idle_check: Instant,
}

impl Thread {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_secs(1))) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!(error = %e, "media TCP listener's poll failed; TCP candidates are gone");
                return;
            }
            let mut woke_shard = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let id = t as u64;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            woke_shard |= self.read(id);
                        }
                        if event.is_writable() {
                            self.write(id);
                        }
                    }
                }
            }
            if !self.outgoing() {
                return; // the driver is gone
            }
            if Instant::now() >= self.next_idle_check {
                self.next_idle_check = Instant::now() + Duration::from_secs(1);
                woke_shard |= self.close_idle();
            }
            if woke_shard {
                (self.wake)();
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        bump(&self.counters.refused);
                        drop(stream);
                        continue;
                    }
                    let id = self.next;
                    self.next += 1;
                    let _ = stream.set_nodelay(true);
                    if self.poll.registry().register(&mut stream, Token(id as usize), Interest::READABLE).is_err() {
                        continue;
                    }
                    bump(&self.counters.accepted);
                    self.conns.insert(
                        id,
                        Conn {
                            stream,
                            peer,
                            reader: FrameReader::default(),
                            pending: Vec::new(),
                            written: 0,
                            writable: false,
                            greeted: false,
                            accepted: Instant::now(),
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A connection reset before it was accepted, or out of descriptors: next time.
                Err(_) => return,
            }
        }
    }

    /// Reads what `id` holds; true if anything went to the shard.
    fn read(&mut self, id: u64) -> bool {
        let mut to_shard = false;
        let close = loop {
            let Some(c) = self.conns.get_mut(&id) else { return to_shard };
            let n = match c.stream.read(c.reader.spare()) {
                Ok(0) => break Some(Close::Peer),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break Some(Close::Peer),
            };
            c.reader.filled(n);
            let bad = loop {
                match c.reader.next_frame() {
                    Frame::Partial => break None,
                    Frame::TooLong(_) => break Some(Close::Oversized),
                    Frame::Whole(data) => {
                        if !c.greeted && !is_stun(data) {
                            break Some(Close::Garbage);
                        }
                        c.greeted = true;
                        bump(&self.counters.frames_in);
                        let frame = TcpIn::Frame { conn: ConnId(id), peer: c.peer, data: data.to_vec() };
                        match self.tx.try_send(frame) {
                            Ok(()) => to_shard = true,
                            Err(_) => bump(&self.counters.dropped),
                        }
                    }
                }
            };
            if bad.is_some() {
                break bad;
            }
        };
        if let Some(why) = close {
            to_shard |= self.close(id, why);
        }
        to_shard
    }

    /// Writes what `id` has pending; closes it on an error.
    fn write(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let mut failed = false;
        while c.written < c.pending.len() {
            match c.stream.write(&c.pending[c.written..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => c.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            self.close(id, Close::Peer);
            return;
        }
        if c.written == c.pending.len() {
            c.pending.clear();
            c.written = 0;
        }
        let want = !c.pending.is_empty();
        if want != c.writable {
            let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if self.poll.registry().reregister(&mut c.stream, Token(id as usize), interest).is_ok() {
                c.writable = want;
            }
        }
    }

    /// The shard's frames and closings; false once the driver is gone.
    fn outgoing(&mut self) -> bool {
        let mut touched = Vec::new();
        for _ in 0..MAX_QUEUE {
            match self.rx.try_recv() {
                Ok(TcpOut::Frame { conn, data }) => {
                    let Some(c) = self.conns.get_mut(&conn.0) else {
                        bump(&self.counters.dropped);
                        continue;
                    };
                    if c.written > 0 {
                        // What was written goes: the buffer holds only what waits.
                        c.pending.drain(..c.written);
                        c.written = 0;
                    }
                    let len = match u16::try_from(data.len()) {
                        Ok(l) if c.pending.len() + 2 + data.len() <= MAX_WRITE_BUFFER => l,
                        _ => {
                            bump(&self.counters.dropped);
                            continue;
                        }
                    };
                    c.pending.extend_from_slice(&len.to_be_bytes());
                    c.pending.extend_from_slice(&data);
                    bump(&self.counters.frames_out);
                    if !touched.contains(&conn.0) {
                        touched.push(conn.0);
                    }
                }
                Ok(TcpOut::Close { conn }) => {
                    self.close(conn.0, Close::Shard);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        for id in touched {
            self.write(id);
        }
        true
    }

    /// Closes connections that sent no valid first frame in time; true if the shard was told.
    fn close_idle(&mut self) -> bool {
        let now = Instant::now();
        let idle: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.greeted && now.duration_since(c.accepted) >= FIRST_FRAME_WITHIN)
            .map(|(&id, _)| id)
            .collect();
        let mut told = false;
        for id in idle {
            told |= self.close(id, Close::Idle);
        }
        told
    }

    /// Closes `id`, counting why; tells the shard (true) unless the shard asked for it.
    fn close(&mut self, id: u64, why: Close) -> bool {
        let Some(mut c) = self.conns.remove(&id) else { return false };
        let _ = self.poll.registry().deregister(&mut c.stream);
        match why {
            Close::Oversized => bump(&self.counters.oversized),
            Close::Garbage => bump(&self.counters.garbage),
            Close::Idle => bump(&self.counters.idle),
            Close::Peer | Close::Shard => {}
        }
        drop(c);
        if matches!(why, Close::Shard) {
            return false;
        }
        // A full channel: the shard keeps a stale route until the leg ends, harmless (its
        // frames to the connection are dropped, counted).
        self.tx.try_send(TcpIn::Closed { conn: ConnId(id) }).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut FrameReader, bytes: &[u8]) {
        let spare = r.spare();
        spare[..bytes.len()].copy_from_slice(bytes);
        r.filled(bytes.len());
    }

    #[test]
    fn frames_are_cut_at_their_length_across_reads() {
        let mut r = FrameReader::default();
        feed(&mut r, &[0, 3, 1, 2]);
        assert_eq!(r.next_frame(), Frame::Partial);
        feed(&mut r, &[3, 0, 1, 9, 0]);
        assert_eq!(r.next_frame(), Frame::Whole(&[1, 2, 3]));
        assert_eq!(r.next_frame(), Frame::Whole(&[9]));
        assert_eq!(r.next_frame(), Frame::Partial);
        feed(&mut r, &[2, 7, 7]);
        assert_eq!(r.next_frame(), Frame::Whole(&[7, 7]));
    }

    #[test]
    fn a_frame_over_the_limit_or_empty_is_refused() {
        let mut r = FrameReader::default();
        let len = (MAX_FRAME + 1) as u16;
        feed(&mut r, &len.to_be_bytes());
        assert_eq!(r.next_frame(), Frame::TooLong(MAX_FRAME + 1));
        let mut r = FrameReader::default();
        feed(&mut r, &[0, 0, 5]);
        assert_eq!(r.next_frame(), Frame::TooLong(0));
    }

    #[test]
    fn a_whole_frame_of_the_largest_length_fits() {
        let mut r = FrameReader::default();
        let mut bytes = (MAX_FRAME as u16).to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(0xAB, MAX_FRAME));
        feed(&mut r, &bytes);
        assert!(matches!(r.next_frame(), Frame::Whole(d) if d.len() == MAX_FRAME));
        assert!(!r.spare().is_empty());
    }

    #[test]
    fn stun_is_told_from_other_bytes() {
        let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        stun.extend([0; 12]);
        assert!(is_stun(&stun));
        assert!(!is_stun(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!is_stun(&[0x16, 0xfe, 0xfd]));
    }
}
