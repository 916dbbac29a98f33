//! The load generator: N simultaneous G.711 20 ms calls through a relay on loopback.
//!
//! Every call has an A side (customer) and a B side (agent); each side sends one 172-byte RTP
//! packet (12-byte header, 160 bytes of µ-law) every 20 ms to the relay's port for that side,
//! and the relay must deliver it to the other side. Each call starts at a random phase in the
//! 20 ms period. The payload carries a magic, the call, the direction, the generator's own
//! sequence number and the send time, so loss, reordering and one-way latency are measured per
//! stream regardless of how the relay rewrites RTP headers.
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
        let mk = || -> anyhow::Result<UdpSocket> {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
            // Capped by net.core.rmem_max / wmem_max; the relay's burst must fit.
            let _ = s.set_recv_buffer_size(4 << 20);
            let _ = s.set_send_buffer_size(4 << 20);
            s.bind(&"127.0.0.1:0".parse::<SocketAddr>()?.into())?;
            s.set_nonblocking(true)?;
            Ok(s.into())
        };
        Ok(Sides {
            a: (0..SOCKETS_PER_SIDE).map(|_| mk()).collect::<anyhow::Result<_>>()?,
            b: (0..SOCKETS_PER_SIDE).map(|_| mk()).collect::<anyhow::Result<_>>()?,
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

/// Play `ports.len()` calls for `seconds`, then drain; `core` pins the generator thread.
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
    let words = (ticks as usize).div_ceil(64);
    let mut streams: Vec<Stream> =
        (0..2 * n).map(|_| Stream { received: 0, max_seq: None, reordered: 0, seen: vec![0; words] }).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<(u64, usize)> = (0..n).map(|i| (rng.gen_range(0..PERIOD.as_nanos() as u64), i)).collect();
    order.sort_unstable();

    let mut poll = Poll::new()?;
    let mut socks: Vec<MioUdp> = Vec::new();
    for s in sides.a.into_iter().chain(sides.b) {
        socks.push(MioUdp::from_std(s));
    }
    for (i, s) in socks.iter_mut().enumerate() {
        poll.registry().register(s, Token(i), Interest::READABLE).context("register generator socket")?;
    }
    let mut events = Events::with_capacity(256);
    let mut hist = Hist::new();
    let mut lag = Hist::new();
    let mut sent = 0u64;
    let mut duplicates = 0u64;
    let mut buf = [0u8; 12 + PAYLOAD];
    let mut rbuf = [0u8; 2048];
    let (rcv0, snd0) = udp_errors();

    let start = Instant::now() + Duration::from_millis(50);
    let end_send = start + PERIOD * ticks;
    let end = end_send + DRAIN;
    let mut tick = 0u32;
    let mut cursor = 0usize;
    let mut ready: Vec<usize> = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Send everything due.
        let mut sends = 0;
        while tick < ticks && sends < 256 {
            let (phase, call) = order[cursor];
            let due = start + PERIOD * tick + Duration::from_nanos(phase);
            let now = Instant::now();
            if due > now {
                break;
            }
            lag.add(now.duration_since(due).as_micros() as u64);
            for dir in 0..2u8 {
                let send_ns = Instant::now().duration_since(start).as_nanos() as u64;
                packet(&mut buf, call as u32, dir, tick, send_ns);
                let (sock, to) = if dir == 0 {
                    (&socks[call % SOCKETS_PER_SIDE], ports[call].a)
                } else {
                    (&socks[SOCKETS_PER_SIDE + call % SOCKETS_PER_SIDE], ports[call].b)
                };
                match sock.send_to(&buf, to) {
                    Ok(_) => sent += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => sent += 1, // counted as sent, lost
                    Err(_) => sent += 1,
                }
            }
            sends += 1;
            cursor += 1;
            if cursor == n {
                cursor = 0;
                tick += 1;
            }
        }
        // Receive whatever is ready (never block: the next send may be due).
        poll.poll(&mut events, Some(Duration::ZERO))?;
        ready.clear();
        ready.extend(events.iter().map(|e| e.token().0));
        for &i in &ready {
            loop {
                match socks[i].recv_from(&mut rbuf) {
                    Ok((len, _)) => {
                        let at_ns = Instant::now().saturating_duration_since(start).as_nanos() as u64;
                        let p = &rbuf[..len];
                        if len < 12 + 21 || p[12..16] != MAGIC {
                            continue; // RTCP or foreign
                        }
                        let q = &p[12..];
                        let call = u32::from_be_bytes([q[4], q[5], q[6], q[7]]) as usize;
                        let dir = q[8] as usize;
                        let seq = u32::from_be_bytes([q[9], q[10], q[11], q[12]]);
                        let send_ns = u64::from_be_bytes(q[13..21].try_into().expect("invariant: 8 bytes"));
                        if call >= n || dir > 1 || seq >= ticks {
                            continue;
                        }
                        let st = &mut streams[call * 2 + dir];
                        let (w, bit) = (seq as usize / 64, 1u64 << (seq % 64));
                        if st.seen[w] & bit != 0 {
                            duplicates += 1;
                            continue;
                        }
                        st.seen[w] |= bit;
                        st.received += 1;
                        match st.max_seq {
                            Some(m) if seq < m => st.reordered += 1,
                            _ => st.max_seq = Some(seq),
                        }
                        hist.add(at_ns.saturating_sub(send_ns) / 1000);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
        if tick >= ticks && ready.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let (rcv1, snd1) = udp_errors();
    let received: u64 = streams.iter().map(|s| u64::from(s.received)).sum();
    Ok(Measurement {
        calls: n,
        seconds: f64::from(ticks) / 50.0,
        scheduled: 2 * n as u64 * u64::from(ticks),
        sent,
        received,
        lost: sent.saturating_sub(received),
        duplicates,
        reordered: streams.iter().map(|s| u64::from(s.reordered)).sum(),
        latency_p50_us: hist.quantile(0.5),
        latency_p90_us: hist.quantile(0.9),
        latency_p99_us: hist.quantile(0.99),
        latency_p999_us: hist.quantile(0.999),
        latency_max_us: hist.max,
        send_lag_p99_us: lag.quantile(0.99),
        send_lag_max_us: lag.max,
        udp_rcvbuf_errors: rcv1.saturating_sub(rcv0),
        udp_sndbuf_errors: snd1.saturating_sub(snd0),
    })
}
