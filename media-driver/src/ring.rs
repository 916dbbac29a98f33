//! [`UdpRing`]: UDP datagrams through one io_uring, driven by hand with the `io-uring` crate.
//! The media shard's io_uring driver runs on it, and so does the relay bench's generator.
//!
//! - **Receive**: every socket has one multishot `recvmsg` armed; the kernel picks a buffer from
//!   a provided buffer ring for each datagram and posts a completion, so a datagram costs no
//!   system call and no re-arm. A buffer goes back to the ring as soon as its datagram has been
//!   handled. When the ring runs dry the kernel ends a socket's multishot receive (`ENOBUFS`);
//!   the datagrams wait in the socket's queue and the receive is armed again in the same turn.
//! - **Send**: every datagram becomes one `send` SQE with its destination address; the payload
//!   and the address live in a send slot until the completion comes back. Sends are never
//!   awaited one by one: a turn's sends go to the kernel together with the wait for the next
//!   completions, in one `io_uring_enter`.
//! - **Wake-up** from other threads: an eventfd with a read armed on the ring ([`Waker`]).
//! - **Time**: the wait carries the caller's next deadline as its timeout.
//!
//! The ring is set up with `SINGLE_ISSUER` and `DEFER_TASKRUN` where the kernel has them (6.1):
//! completions are produced only when the owner waits, never in an interrupt of its work.
//!
//! The one module of the workspace with `unsafe`: the ring shares memory with the kernel (the
//! buffer ring, send slots, the msghdr, the wake buffer), and every block says why that memory
//! outlives the kernel's use of it.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types, IoUring};

use media::rtp::MAX_DATAGRAM_LEN;

/// Bytes of control data a receive keeps: one `SCM_TIMESTAMPNS` message (a 16-byte header and a
/// `timespec`), where [`RingConfig::rx_timestamps`] asks for it.
const CONTROL_LEN: usize = 32;
/// Bytes per receive buffer: the multishot header, the source address, the control data and one
/// byte more than the largest datagram, so an oversized one is seen (and dropped by the shard)
/// as such.
const RECV_BUFFER_LEN: usize = 64 + CONTROL_LEN + MAX_DATAGRAM_LEN + 1;
const BUFFER_GROUP: u16 = 0;

/// What a completion is for: the top byte of `user_data`; the rest is the receive's token or
/// the send's slot.
const KIND_RECV: u64 = 1 << 56;
const KIND_SEND: u64 = 2 << 56;
const KIND_WAKE: u64 = 3 << 56;
const KIND_CANCEL: u64 = 4 << 56;
const KIND_MASK: u64 = 0xff << 56;
/// The largest receive token.
pub const MAX_TOKEN: u64 = (1 << 56) - 1;

/// How big a ring to make.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    /// Submission queue entries; the completion queue is eight times larger.
    pub sq_entries: u32,
    /// Provided receive buffers (a power of two, at most 32,768).
    pub recv_buffers: u16,
    /// Sends in flight at most; past this a send is refused (it never happens on a loopback or
    /// LAN, where a UDP send completes at submission).
    pub send_slots: usize,
    /// Ask the kernel for each datagram's arrival time (`SO_TIMESTAMPNS` on every socket
    /// received on): [`Completion::Datagram::arrived`]. The relay bench's generator measures
    /// latency with it, so that its own late reads do not count as the relay's.
    pub rx_timestamps: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig { sq_entries: 4096, recv_buffers: 8192, send_slots: 32_768, rx_timestamps: false }
    }
}

/// What the ring completed.
#[derive(Debug)]
pub enum Completion<'a> {
    /// A datagram on the receive armed with `token`. `data` is at most one byte longer than
    /// [`MAX_DATAGRAM_LEN`] (a longer datagram is cut there, so it still reads as too long).
    /// `arrived` is the kernel's time of arrival (since the Unix epoch, the realtime clock),
    /// where [`RingConfig::rx_timestamps`] asked for it.
    Datagram { token: u64, from: SocketAddr, data: &'a [u8], arrived: Option<Duration> },
    /// A send failed (the error is the kernel's).
    SendFailed(io::Error),
    /// The receive armed with `token` ended for good (it is not armed again).
    RecvFailed { token: u64, error: io::Error },
    /// The [`Waker`] was called at least once since the last wake-up.
    Woken,
}

/// Whether this kernel gives us a ring with what [`UdpRing`] uses (multishot receive, provided
/// buffer rings, `send` with an address, timed waits: Linux 6.0).
pub fn probe() -> io::Result<()> {
    let ring = build_ring(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if !probe.is_supported(opcode::RecvMsg::CODE) || !probe.is_supported(opcode::Send::CODE) {
        return Err(io::Error::new(ErrorKind::Unsupported, "io_uring lacks recvmsg or send"));
    }
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(ErrorKind::Unsupported, "io_uring lacks timed waits (EXT_ARG, Linux 5.11)"));
    }
    // Provided buffer rings (Linux 5.19) are what multishot receive needs; register one to see.
    let bufs = BufRing::new(&ring, 8, 64, BUFFER_GROUP)?;
    drop(bufs);
    Ok(())
}

fn build_ring(entries: u32) -> io::Result<IoUring> {
    let cq = entries * 8;
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(cq)
        .build(entries)
        .or_else(|_| IoUring::builder().setup_coop_taskrun().setup_cqsize(cq).build(entries))
        .or_else(|_| IoUring::builder().setup_cqsize(cq).build(entries))
}

/// Wakes a [`UdpRing`]'s wait from any thread (see [`UdpRing::waker`]).
#[derive(Clone)]
pub struct Waker {
    /// A duplicate of the ring's eventfd: the waker may be called after the ring is gone, when
    /// the ring's descriptor number could already belong to another file.
    fd: Arc<OwnedFd>,
}

impl Waker {
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own a duplicate of.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// A send in flight: what the kernel reads until the completion.
struct SendSlot {
    payload: Vec<u8>,
    addr: socket2::SockAddr,
}

/// UDP through one io_uring (module docs). Single-threaded: the thread that made it uses it.
pub struct UdpRing {
    ring: IoUring,
    bufs: BufRing,
    /// The one `msghdr` every multishot receive is armed with (only its name and control
    /// lengths matter); boxed so its address stays put.
    msghdr: Box<libc::msghdr>,
    /// Armed receives: token → socket.
    receives: HashMap<u64, RawFd>,
    /// Receives whose multishot ended in this turn, armed again at its end.
    rearm: Vec<u64>,
    /// Fixed length, never reallocated: the kernel holds pointers into it.
    slots: Box<[Option<SendSlot>]>,
    free_slots: Vec<u32>,
    wake_fd: OwnedFd,
    wake_buf: Box<u64>,
    woken: bool,
    /// Completions of the current turn, copied out of the ring.
    cqes: Vec<(u64, i32, u32)>,
    /// Requests whose last completion has not come back (receives, the wake read, sends): the
    /// memory they point at must outlive them.
    in_flight: usize,
    /// Shutting down: nothing is armed again.
    closing: bool,
    rx_timestamps: bool,
}

impl UdpRing {
    pub fn new(config: RingConfig) -> io::Result<UdpRing> {
        let ring = build_ring(config.sq_entries)?;
        let bufs = BufRing::new(&ring, config.recv_buffers, RECV_BUFFER_LEN, BUFFER_GROUP)?;
        // SAFETY: a zeroed msghdr is valid; only the lengths are set.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        if config.rx_timestamps {
            msghdr.msg_controllen = CONTROL_LEN as _;
        }
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a descriptor we just created and own.
        let wake_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut r = UdpRing {
            ring,
            bufs,
            msghdr,
            receives: HashMap::new(),
            rearm: Vec::new(),
            slots: (0..config.send_slots).map(|_| None).collect(),
            free_slots: (0..config.send_slots as u32).rev().collect(),
            wake_fd,
            wake_buf: Box::new(0),
            woken: false,
            cqes: Vec::with_capacity(4096),
            in_flight: 0,
            closing: false,
            rx_timestamps: config.rx_timestamps,
        };
        r.arm_wake();
        Ok(r)
    }

    /// A handle that wakes this ring's wait from another thread.
    pub fn waker(&self) -> io::Result<Waker> {
        Ok(Waker { fd: Arc::new(self.wake_fd.try_clone()?) })
    }

    /// Push one SQE, submitting what is queued first when the queue is full.
    fn push(&mut self, entry: &io_uring::squeue::Entry) {
        if entry.get_user_data() & KIND_MASK != KIND_CANCEL {
            self.in_flight += 1;
        }
        loop {
            // SAFETY: every entry points at memory the ring keeps alive until its completion
            // (send slots, the boxed msghdr, the wake buffer, the buffer ring).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            if let Err(e) = entered(self.ring.submit()) {
                tracing::warn!(error = %e, "io_uring submit failed");
            }
        }
    }

    fn arm_wake(&mut self) {
        let buf = (&mut *self.wake_buf as *mut u64).cast();
        let e = opcode::Read::new(types::Fd(self.wake_fd.as_raw_fd()), buf, 8).build().user_data(KIND_WAKE);
        self.push(&e);
    }

    /// Receive every datagram of `socket` as [`Completion::Datagram`]s carrying `token` (at
    /// most [`MAX_TOKEN`]), until [`UdpRing::cancel`]. The socket must stay open until then.
    pub fn recv(&mut self, socket: RawFd, token: u64) {
        debug_assert!(token <= MAX_TOKEN, "invariant: tokens fit in 56 bits");
        self.receives.insert(token, socket);
        if self.rx_timestamps {
            let on: libc::c_int = 1;
            // SAFETY: passes a live c_int of the size given; a refusal only leaves `arrived` empty.
            unsafe {
                libc::setsockopt(
                    socket,
                    libc::SOL_SOCKET,
                    libc::SO_TIMESTAMPNS,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        self.arm_recv(token, socket);
    }

    fn arm_recv(&mut self, token: u64, socket: RawFd) {
        let e = opcode::RecvMsgMulti::new(types::Fd(socket), &*self.msghdr, BUFFER_GROUP)
            .build()
            .user_data(KIND_RECV | token);
        self.push(&e);
    }

    /// Stop the receive armed with `token`; no completion carries it afterwards. The socket may
    /// be closed at once (the ring holds the file until the cancellation is done).
    pub fn cancel(&mut self, token: u64) {
        if self.receives.remove(&token).is_some() {
            let e = opcode::AsyncCancel::new(KIND_RECV | token).build().user_data(KIND_CANCEL);
            self.push(&e);
        }
    }

    /// Queue a datagram to `destination` from `socket` (sent with the next submit). Refused,
    /// with the payload back, when every send slot is in flight.
    pub fn send_to(&mut self, socket: RawFd, destination: SocketAddr, payload: Vec<u8>) -> Result<(), Vec<u8>> {
        let Some(slot) = self.free_slots.pop() else { return Err(payload) };
        let s = self.slots[slot as usize].insert(SendSlot { payload, addr: destination.into() });
        let e = opcode::Send::new(types::Fd(socket), s.payload.as_ptr(), s.payload.len() as u32)
            .dest_addr(s.addr.as_ptr().cast())
            .dest_addr_len(s.addr.len())
            .build()
            .user_data(KIND_SEND | u64::from(slot));
        self.push(&e);
        Ok(())
    }

    /// Submit what is queued and wait for at least one completion, or `timeout` (zero: only
    /// collect what is there).
    pub fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        // Always an enter that gets events (even with a zero timeout): with DEFER_TASKRUN the
        // kernel posts receive completions only then.
        let ts = types::Timespec::new().sec(timeout.as_secs()).nsec(timeout.subsec_nanos());
        entered(self.ring.submitter().submit_with_args(1, &types::SubmitArgs::new().timespec(&ts)))
    }

    /// Submit what is queued, without waiting: sends go out now rather than with the next wait
    /// (the relay bench's generator sends its bursts in small batches, so that a packet's send
    /// stamp is not a whole burst older than its send).
    pub fn submit(&mut self) -> io::Result<()> {
        entered(self.ring.submit())
    }

    /// Hand every completion the ring holds to `f`, return the receive buffers, and arm again
    /// the receives the kernel ended (buffers ran out, an ICMP error surfaced).
    pub fn complete(&mut self, mut f: impl FnMut(Completion<'_>)) {
        self.cqes.clear();
        self.cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        let cqes = std::mem::take(&mut self.cqes);
        for &(user_data, res, flags) in &cqes {
            if user_data & KIND_MASK != KIND_CANCEL && !cqueue::more(flags) {
                self.in_flight -= 1;
            }
            match user_data & KIND_MASK {
                KIND_RECV => self.complete_recv(user_data & MAX_TOKEN, res, flags, &mut f),
                KIND_SEND => {
                    let slot = (user_data & 0xffff_ffff) as usize;
                    if let Some(s) = self.slots.get_mut(slot) {
                        *s = None;
                        self.free_slots.push(slot as u32);
                    }
                    if res < 0 {
                        f(Completion::SendFailed(io::Error::from_raw_os_error(-res)));
                    }
                }
                KIND_WAKE => {
                    self.woken = true;
                    if !self.closing {
                        self.arm_wake();
                    }
                }
                _ => {} // cancellations
            }
        }
        self.cqes = cqes;
        self.bufs.publish();
        if self.woken {
            self.woken = false;
            f(Completion::Woken);
        }
        if !self.closing {
            let rearm = std::mem::take(&mut self.rearm);
            for &token in &rearm {
                if let Some(&fd) = self.receives.get(&token) {
                    self.arm_recv(token, fd);
                }
            }
            self.rearm = rearm;
        }
        self.rearm.clear();
    }

    fn complete_recv(&mut self, token: u64, res: i32, flags: u32, f: &mut impl FnMut(Completion<'_>)) {
        let live = self.receives.contains_key(&token);
        if let Some(bid) = cqueue::buffer_select(flags) {
            if live && res >= 0 {
                let data = self.bufs.get(bid, res as usize);
                if let Ok(msg) = types::RecvMsgOut::parse(data, &self.msghdr) {
                    if let Some(from) = sockaddr(msg.name_data()) {
                        let payload = msg.payload_data();
                        let data = &payload[..payload.len().min(MAX_DATAGRAM_LEN + 1)];
                        let arrived = arrival(msg.control_data());
                        f(Completion::Datagram { token, from, data, arrived });
                    }
                }
            }
            self.bufs.recycle(bid);
        }
        if live && !cqueue::more(flags) {
            match -res {
                libc::ECANCELED => {}
                // Buffers ran out, an ICMP error surfaced, or the receive simply ended.
                _ if res >= 0 => self.rearm.push(token),
                libc::ENOBUFS | libc::EINTR | libc::ECONNREFUSED | libc::EAGAIN => self.rearm.push(token),
                errno => {
                    self.receives.remove(&token);
                    f(Completion::RecvFailed { token, error: io::Error::from_raw_os_error(errno) });
                }
            }
        }
    }
}

impl Drop for UdpRing {
    /// Cancel everything in flight and wait (a second at most) for the kernel to let go of the
    /// buffers, send slots and msghdr it points at, before they are freed.
    fn drop(&mut self) {
        self.closing = true;
        self.receives.clear();
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(KIND_CANCEL);
        self.push(&e);
        let until = Instant::now() + Duration::from_secs(1);
        while self.in_flight > 0 && Instant::now() < until {
            if self.submit_and_wait(Duration::from_millis(50)).is_err() {
                break;
            }
            self.complete(|_| {});
        }
    }
}

/// The source address in a multishot receive's name field.
fn sockaddr(name: &[u8]) -> Option<SocketAddr> {
    if name.len() < std::mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    let family = libc::sa_family_t::from_ne_bytes([name[0], name[1]]);
    match i32::from(family) {
        libc::AF_INET if name.len() >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the slice holds a whole sockaddr_in; read_unaligned copes with alignment.
            let a: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(name.as_ptr().cast()) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if name.len() >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, a whole sockaddr_in6.
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read_unaligned(name.as_ptr().cast()) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    }
}

/// A provided buffer ring (`IORING_REGISTER_PBUF_RING`): the ring of buffer descriptors shared
/// with the kernel (page-aligned, mapped here) and the buffers themselves.
struct BufRing {
    ring: *mut types::BufRingEntry,
    ring_len: usize,
    entries: u16,
    slab: Box<[u8]>,
    buf_len: usize,
    /// Our producer index; published to the kernel by [`BufRing::publish`].
    tail: u16,
}

impl BufRing {
    fn new(uring: &IoUring, entries: u16, buf_len: usize, bgid: u16) -> io::Result<BufRing> {
        if !entries.is_power_of_two() {
            return Err(io::Error::new(ErrorKind::InvalidInput, "receive buffers must be a power of two"));
        }
        let ring_len = usize::from(entries) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut bufs = BufRing {
            ring: ptr.cast(),
            ring_len,
            entries,
            slab: vec![0u8; usize::from(entries) * buf_len].into_boxed_slice(),
            buf_len,
            tail: 0,
        };
        // SAFETY: the mapping is page-aligned and `entries` long; the kernel pins its pages
        // while registered, and the ring that uses it is dropped before it (field order).
        unsafe { uring.submitter().register_buf_ring_with_flags(ptr as u64, entries, bgid, 0)? };
        for bid in 0..entries {
            bufs.recycle(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    /// The first `len` bytes of buffer `bid`.
    fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_len;
        &self.slab[start..start + len.min(self.buf_len)]
    }

    /// Give buffer `bid` back to the kernel (visible after [`BufRing::publish`]).
    fn recycle(&mut self, bid: u16) {
        if bid >= self.entries {
            return;
        }
        let addr = self.slab[usize::from(bid) * self.buf_len..].as_ptr() as u64;
        let i = usize::from(self.tail & (self.entries - 1));
        // SAFETY: i < entries, inside the mapping; the kernel reads entries only below the
        // published tail, and this one is past it until publish().
        let entry = unsafe { &mut *self.ring.add(i) };
        entry.set_addr(addr);
        entry.set_len(self.buf_len as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publish the recycled buffers to the kernel.
    fn publish(&mut self) {
        // SAFETY: the tail field lives in the first entry of the mapping; the kernel reads it
        // with acquire semantics, we store it with release.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in new(); the registration ended with the ring.
        unsafe { libc::munmap(self.ring.cast(), self.ring_len) };
    }
}

/// An `io_uring_enter` that ended for a reason that is not a failure: the wait timed out
/// (`ETIME`), a signal came (`EINTR`), or the completion queue was full (`EBUSY`; the next turn
/// empties it).
fn entered(r: io::Result<usize>) -> io::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The `SCM_TIMESTAMPNS` time in a receive's control data. The cmsg headers are read by hand
/// (`cmsg_len` as a `size_t`, then the level and the type as `int`s, then the data, each message
/// padded to a `size_t`), so that this module's `unsafe` stays with the memory the kernel shares.
fn arrival(mut control: &[u8]) -> Option<Duration> {
    const WORD: usize = std::mem::size_of::<usize>();
    const HEADER: usize = std::mem::size_of::<libc::cmsghdr>();
    const TIME: usize = std::mem::size_of::<libc::time_t>();
    while control.len() >= HEADER {
        let len = usize::from_ne_bytes(control[..WORD].try_into().ok()?);
        let level = libc::c_int::from_ne_bytes(control[WORD..WORD + 4].try_into().ok()?);
        let kind = libc::c_int::from_ne_bytes(control[WORD + 4..WORD + 8].try_into().ok()?);
        if len < HEADER || len > control.len() {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS && len >= HEADER + 2 * TIME {
            let sec = libc::time_t::from_ne_bytes(control[HEADER..HEADER + TIME].try_into().ok()?);
            let nsec = libc::c_long::from_ne_bytes(control[HEADER + TIME..HEADER + 2 * TIME].try_into().ok()?);
            return Some(Duration::new(u64::try_from(sec).ok()?, u32::try_from(nsec).ok()?));
        }
        control = control.get(len.next_multiple_of(WORD)..)?;
    }
    None
}
