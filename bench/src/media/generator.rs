//! The load generator: N simultaneous G.711 20 ms calls through a relay on loopback.
//!
//! Every call has an A side (customer) and a B side (agent); each side sends one 172-byte RTP
//! packet (12-byte header, 160 bytes of µ-law) every 20 ms to the relay's port for that side,
//! and the relay must deliver it to the other side. Each call starts at a random phase in the
//! 20 ms period. The payload carries a magic, the call, the direction, the generator's own
//! sequence number and the send time, so loss, reordering and one-way latency are measured per
//! stream regardless of how the relay rewrites RTP headers. Latency runs from the send stamp,
//! taken just before the packet is queued, to the kernel's time of arrival at the generator's
//! socket (`SO_TIMESTAMPNS`; on epoll, the time it is read): the generator's own late reads
//! are not counted as the relay's.
//!
//! The generator shares a few sockets per side among all calls (the relays demultiplex on their
//! own local port, not on the remote address), polls them with epoll on its own pinned thread
//! and sends on schedule; it reports how late it was, so an overloaded generator is not
//! mistaken for a lossy relay.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::UdpSocket as MioUdp;
use mio::{Events, Interest, Poll, Token};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// The 4-byte magic at the start of the payload.
const MAGIC: [u8; 4] = *b"KKRB";
const PERIOD: Duration = Duration::from_millis(20);
const PAYLOAD: usize = 160;
/// Time after the last send during which late packets still count.
const DRAIN: Duration = Duration::from_millis(500);
/// Latency histogram: 1 µs buckets up to this, then one overflow bucket.
const HIST_US: usize = 200_000;

/// A send due sooner than this is waited for by polling, not with a timer.
const SPIN: Duration = Duration::from_micros(100);

/// Sends queued before they are submitted (io_uring): the delay between a packet's send stamp
/// and its send stays a few microseconds even when the generator sends a burst.
const SEND_BATCH: usize = 16;

/// Generator sockets per side.
pub const SOCKETS_PER_SIDE: usize = 32;

/// Where the relay expects each side of each call.
#[derive(Debug, Clone, Copy)]
pub struct CallPorts {
    /// Relay port the A side sends to (and receives from).
    pub a: SocketAddr,
    /// Relay port the B side sends to.
    pub b: SocketAddr,
}

/// The generator's bound sockets, created before the relay is set up (the relay needs their
/// addresses).
pub struct Sides {
    pub a: Vec<UdpSocket>,
    pub b: Vec<UdpSocket>,
}

impl Sides {
    pub fn bind() -> anyhow::Result<Sides> {
        Ok(Sides {
            a: (0..SOCKETS_PER_SIDE).map(|_| bind_udp()).collect::<anyhow::Result<_>>()?,
            b: (0..SOCKETS_PER_SIDE).map(|_| bind_udp()).collect::<anyhow::Result<_>>()?,
        })
    }

    /// The A-side address of call `i`.
    pub fn a_addr(&self, i: usize) -> SocketAddr {
        self.a[i % SOCKETS_PER_SIDE].local_addr().expect("invariant: bound")
    }

    pub fn b_addr(&self, i: usize) -> SocketAddr {
        self.b[i % SOCKETS_PER_SIDE].local_addr().expect("invariant: bound")
    }
}

/// A non-blocking UDP socket on loopback with 4 MB buffers.
pub fn bind_udp() -> anyhow::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    // Capped by net.core.rmem_max / wmem_max; the relay's burst must fit.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>()?.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub calls: usize,
    pub seconds: f64,
    /// Packets the schedule called for; `sent` falls short when the generator cannot keep up.
    pub scheduled: u64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub latency_p50_us: u64,
    pub latency_p90_us: u64,
    pub latency_p99_us: u64,
    pub latency_p999_us: u64,
    pub latency_max_us: u64,
    /// How late the generator's sends were against their schedule (its own overload).
    pub send_lag_p99_us: u64,
    pub send_lag_max_us: u64,
    /// Kernel UDP receive-buffer overflows during the run (all sockets of the namespace).
    pub udp_rcvbuf_errors: u64,
    /// Kernel UDP send-buffer errors during the run.
    pub udp_sndbuf_errors: u64,
}

struct Stream {
    received: u32,
    max_seq: Option<u32>,
    reordered: u32,
    seen: Vec<u64>,
}

struct Hist {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist { buckets: vec![0; HIST_US + 1], count: 0, max: 0 }
    }

    fn add(&mut self, us: u64) {
        self.buckets[(us as usize).min(HIST_US)] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (us, &n) in self.buckets.iter().enumerate() {
            acc += n;
            if acc >= target {
                return us as u64;
            }
        }
        self.max
    }
}

/// UDP counters from /proc/net/snmp: (RcvbufErrors, SndbufErrors).
pub fn udp_errors() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/net/snmp") else { return (0, 0) };
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return (0, 0) };
    let get = |name: &str| {
        names
            .split_whitespace()
            .position(|n| n == name)
            .and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("RcvbufErrors"), get("SndbufErrors"))
}

/// The realtime clock in nanoseconds since the Unix epoch: the clock of the kernel's arrival
/// times, so the send stamp uses it too (a 10 s run does not see it stepped).
fn wall_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn packet(buf: &mut [u8; 12 + PAYLOAD], call: u32, dir: u8, seq: u32, send_ns: u64) {
    buf[0] = 0x80;
    buf[1] = 0; // PCMU
    buf[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&seq.wrapping_mul(160).to_be_bytes());
    buf[8..12].copy_from_slice(&(call.wrapping_mul(2).wrapping_add(u32::from(dir)) ^ 0x5EED_0000).to_be_bytes());
    let p = &mut buf[12..];
    p[0..4].copy_from_slice(&MAGIC);
    p[4..8].copy_from_slice(&call.to_be_bytes());
    p[8] = dir;
    p[9..13].copy_from_slice(&seq.to_be_bytes());
    p[13..21].copy_from_slice(&send_ns.to_be_bytes());
}

/// What the generator received, per stream.
struct Tally {
    n: usize,
    ticks: u32,
    streams: Vec<Stream>,
    hist: Hist,
    duplicates: u64,
}

impl Tally {
    fn new(n: usize, ticks: u32) -> Tally {
        let words = (ticks as usize).div_ceil(64);
        let streams =
            (0..2 * n).map(|_| Stream { received: 0, max_seq: None, reordered: 0, seen: vec![0; words] }).collect();
        Tally { n, ticks, streams, hist: Hist::new(), duplicates: 0 }
    }

    /// A datagram that arrived at `at_ns` ([`wall_ns`]).
    fn datagram(&mut self, at_ns: u64, p: &[u8]) {
        if p.len() < 12 + 21 || p[12..16] != MAGIC {
            return; // RTCP or foreign
        }
        let q = &p[12..];
        let call = u32::from_be_bytes([q[4], q[5], q[6], q[7]]) as usize;
        let dir = q[8] as usize;
        let seq = u32::from_be_bytes([q[9], q[10], q[11], q[12]]);
        let send_ns = u64::from_be_bytes(q[13..21].try_into().expect("invariant: 8 bytes"));
        if call >= self.n || dir > 1 || seq >= self.ticks {
            return;
        }
        let st = &mut self.streams[call * 2 + dir];
        let (w, bit) = (seq as usize / 64, 1u64 << (seq % 64));
        if st.seen[w] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        st.seen[w] |= bit;
        st.received += 1;
        match st.max_seq {
            Some(m) if seq < m => st.reordered += 1,
            _ => st.max_seq = Some(seq),
        }
        self.hist.add(at_ns.saturating_sub(send_ns) / 1000);
    }
}

/// When each call sends: every 20 ms at its random phase.
struct Schedule {
    order: Vec<(u64, usize)>,
    start: Instant,
    ticks: u32,
    tick: u32,
    cursor: usize,
    lag: Hist,
    sent: u64,
}

impl Schedule {
    fn new(n: usize, ticks: u32, seed: u64, start: Instant) -> Schedule {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<(u64, usize)> = (0..n).map(|i| (rng.gen_range(0..PERIOD.as_nanos() as u64), i)).collect();
        order.sort_unstable();
        Schedule { order, start, ticks, tick: 0, cursor: 0, lag: Hist::new(), sent: 0 }
    }

    fn done(&self) -> bool {
        self.tick >= self.ticks
    }

    /// When the next call is due (None: every packet sent).
    fn next_due(&self) -> Option<Instant> {
        if self.done() {
            return None;
        }
        let (phase, _) = self.order[self.cursor];
        Some(self.start + PERIOD * self.tick + Duration::from_nanos(phase))
    }

    /// The packets of every call due now (at most `max` calls), each once, to `send` as
    /// (generator socket index, relay address, packet); their lag and count are kept.
    fn due(&mut self, max: usize, ports: &[CallPorts], mut send: impl FnMut(usize, SocketAddr, &[u8])) {
        for _ in 0..max {
            let Some(due) = self.next_due() else { return };
            let now = Instant::now();
            if due > now {
                return;
            }
            self.lag.add(now.duration_since(due).as_micros() as u64);
            let (_, call) = self.order[self.cursor];
            for dir in 0..2u8 {
                let mut buf = [0u8; 12 + PAYLOAD];
                let send_ns = wall_ns();
                packet(&mut buf, call as u32, dir, self.tick, send_ns);
                let (sock, to) = route(ports, call, dir);
                send(sock, to, &buf);
            }
            self.sent += 2;
            self.cursor += 1;
            if self.cursor == self.order.len() {
                self.cursor = 0;
                self.tick += 1;
            }
        }
    }
}

/// Play `ports.len()` calls for `seconds`, then drain; `core` pins the generator thread. The
/// generator runs on io_uring ([`media_driver::ring::UdpRing`]: it sleeps until the next send is
/// due, and sends and receives without a system call per datagram), or on epoll where the
/// kernel refuses io_uring.
pub fn play(
    sides: Sides,
    ports: &[CallPorts],
    seconds: f64,
    core: Option<usize>,
    seed: u64,
) -> anyhow::Result<Measurement> {
    if let Some(core) = core {
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
    }
    let n = ports.len();
    let ticks = (seconds * 50.0).ceil() as u32;
    let mut tally = Tally::new(n, ticks);
    let (rcv0, snd0) = udp_errors();
    let start = Instant::now() + Duration::from_millis(50);
    let mut schedule = Schedule::new(n, ticks, seed, start);
    let end = start + PERIOD * ticks + DRAIN;
    let socks: Vec<UdpSocket> = sides.a.into_iter().chain(sides.b).collect();
    if media_driver::ring::probe().is_ok() {
        play_uring(&socks, ports, &mut schedule, &mut tally, end)?;
    } else {
        play_epoll(socks, ports, &mut schedule, &mut tally, end)?;
    }
    let (rcv1, snd1) = udp_errors();
    let received: u64 = tally.streams.iter().map(|s| u64::from(s.received)).sum();
    let sent = schedule.sent;
    let hist = &tally.hist;
    Ok(Measurement {
        calls: n,
        seconds: f64::from(ticks) / 50.0,
        scheduled: 2 * n as u64 * u64::from(ticks),
        sent,
        received,
        lost: sent.saturating_sub(received),
        duplicates: tally.duplicates,
        reordered: tally.streams.iter().map(|s| u64::from(s.reordered)).sum(),
        latency_p50_us: hist.quantile(0.5),
        latency_p90_us: hist.quantile(0.9),
        latency_p99_us: hist.quantile(0.99),
        latency_p999_us: hist.quantile(0.999),
        latency_max_us: hist.max,
        send_lag_p99_us: schedule.lag.quantile(0.99),
        send_lag_max_us: schedule.lag.max,
        udp_rcvbuf_errors: rcv1.saturating_sub(rcv0),
        udp_sndbuf_errors: snd1.saturating_sub(snd0),
    })
}

/// The generator's socket and destination for one direction of one call.
fn route(ports: &[CallPorts], call: usize, dir: u8) -> (usize, SocketAddr) {
    if dir == 0 {
        (call % SOCKETS_PER_SIDE, ports[call].a)
    } else {
        (SOCKETS_PER_SIDE + call % SOCKETS_PER_SIDE, ports[call].b)
    }
}

fn play_uring(
    socks: &[UdpSocket],
    ports: &[CallPorts],
    schedule: &mut Schedule,
    tally: &mut Tally,
    end: Instant,
) -> anyhow::Result<()> {
    use media_driver::ring::{Completion, RingConfig, UdpRing};
    use std::os::fd::AsRawFd;
    let config = RingConfig { sq_entries: 4096, recv_buffers: 16_384, send_slots: 65_536, rx_timestamps: true };
    let mut ring = UdpRing::new(config).context("io_uring for the generator")?;
    for (i, s) in socks.iter().enumerate() {
        ring.recv(s.as_raw_fd(), i as u64);
    }
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        // A refused send (every slot in flight) is counted as sent: it shows as lost. Sends go
        // out in batches of SEND_BATCH, so a stamp is at most a batch older than its send.
        let mut queued = 0;
        schedule.due(256, ports, |sock, to, buf| {
            let _ = ring.send_to(socks[sock].as_raw_fd(), to, buf.to_vec());
            queued += 1;
            if queued % SEND_BATCH == 0 {
                let _ = ring.submit();
            }
        });
        // Sleep until the next send is due; closer than a timer's worth, only collect.
        let wake_at = schedule.next_due().unwrap_or(end).min(end);
        let wait = wake_at.saturating_duration_since(Instant::now());
        ring.submit_and_wait(if wait < SPIN { Duration::ZERO } else { wait })?;
        ring.complete(|c| {
            if let Completion::Datagram { data, arrived, .. } = c {
                let at_ns = arrived.map_or_else(wall_ns, |at| at.as_nanos() as u64);
                tally.datagram(at_ns, data);
            }
        });
    }
}

fn play_epoll(
    socks: Vec<UdpSocket>,
    ports: &[CallPorts],
    schedule: &mut Schedule,
    tally: &mut Tally,
    end: Instant,
) -> anyhow::Result<()> {
    let mut poll = Poll::new()?;
    let mut socks: Vec<MioUdp> = socks.into_iter().map(MioUdp::from_std).collect();
    for (i, s) in socks.iter_mut().enumerate() {
        poll.registry().register(s, Token(i), Interest::READABLE).context("register generator socket")?;
    }
    let mut events = Events::with_capacity(256);
    let mut rbuf = [0u8; 2048];
    let mut ready: Vec<usize> = Vec::new();
    loop {
        if Instant::now() >= end {
            return Ok(());
        }
        // A full send buffer counts the packet as sent: it shows as lost.
        schedule.due(256, ports, |sock, to, buf| {
            let _ = socks[sock].send_to(buf, to);
        });
        // Receive whatever is ready (never block: the next send may be due).
        poll.poll(&mut events, Some(Duration::ZERO))?;
        ready.clear();
        ready.extend(events.iter().map(|e| e.token().0));
        for &i in &ready {
            loop {
                match socks[i].recv_from(&mut rbuf) {
                    Ok((len, _)) => {
                        tally.datagram(wall_ns(), &rbuf[..len]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
        if schedule.done() && ready.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
