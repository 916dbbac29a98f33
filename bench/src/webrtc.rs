//! `kakeru-bench webrtc`: N bridged calls on one pinned media shard whose agent legs are browser
//! phones (WebRTC: ICE, DTLS-SRTP, PCMU or Opus), beside the same N calls with plain RTP agent
//! legs, in the same run.
//!
//! The generator, on its own pinned core, is each call's customer (plain RTP) and its agent: a
//! plain RTP socket, or a [`sim::browser::Browser`] (str0m, as Chromium offers: Opus and PCMU)
//! that connects to the shard before the traffic starts. Each side sends one 20 ms packet per
//! call every 20 ms at the call's random phase; the shard relays each to the other side (Opus
//! transcoded to and from G.711 in the shard). A packet is recognised by its RTP timestamp: the
//! shard's legs start their timestamps at 0 and keep the sender's spacing, so the timestamp says
//! which 20 ms frame of the call it is. Latency runs from the generator's send to its read (the
//! same generator loop for every kind of leg, so the kinds compare); the agent-to-customer
//! direction is the browser's packet through the shard to the customer's leg.
//!
//! `--tcp`: the browsers reach the shard over its passive TCP candidate alone (RFC 6544, RFC 4571
//! framing through the shard's TCP thread), the RTP legs unchanged.
//!
//! A run reports loss both ways, latency p50/p99 each way, and the shard thread's CPU while the
//! generator played; the CPU per call of each kind is set against the RTP legs'. `--find-max`
//! searches each kind's largest zero-loss N and measures latency at 80 % of it.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;
use media::g711::Codec;
use media::rtp::{self, HeaderFields};
use media::shard::{CallId, Control, Report};
use media::voice::{opus_available, OpusTranscoder};
use media::{CallConfig, LegConfig, SocketId};
use media_driver::{self as driver, ShardConfig, ShardHandle};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sim::browser::{Browser, PT_OPUS, PT_PCMU};

use crate::media::generator;
use crate::media::kakeru::{self, send, shard_cpu};
use crate::media::{Placement, MAX_SEND_LAG_P99_US};

const PERIOD: Duration = Duration::from_millis(20);
/// Late packets still count this long after the last send.
const DRAIN: Duration = Duration::from_millis(500);
/// Generator sockets shared by the calls' customers, and by the RTP agents.
const SHARED_SOCKETS: usize = 16;
/// How often each browser's timers run when nothing arrives (ICE consent, RTCP).
const BROWSER_TICK: Duration = Duration::from_millis(200);
/// Bound on the browsers' ICE and DTLS set-up.
const CONNECT_BOUND: Duration = Duration::from_secs(60);

/// The kind of the calls' agent legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LegKind {
    /// Plain RTP (a SIP phone's leg): the baseline.
    Rtp,
    /// A browser phone that negotiated PCMU: SRTP, no transcoding.
    Pcmu,
    /// A browser phone that negotiated Opus: SRTP and Opus ⇄ G.711 in the shard.
    Opus,
}

/// Arguments of `kakeru-bench webrtc`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebRtcArgs {
    /// Simultaneous bridged calls of each kind.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// The kinds of agent leg to run, in this order (RTP is the baseline of the ratios).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [LegKind::Rtp, LegKind::Pcmu, LegKind::Opus])]
    pub legs: Vec<LegKind>,
    /// Search each kind's largest zero-loss call count (binary search between --min-calls and
    /// --max-calls, to --resolution), then measure latency at 80 % of it.
    #[arg(long)]
    pub find_max: bool,
    #[arg(long, default_value_t = 50)]
    pub min_calls: usize,
    #[arg(long, default_value_t = 2000)]
    pub max_calls: usize,
    #[arg(long, default_value_t = 50)]
    pub resolution: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub placement: Placement,
    /// Seed of the calls' random phases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The browsers over the shard's TCP candidate alone (RFC 6544), not UDP.
    #[arg(long)]
    pub tcp: bool,
}

/// One direction of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Direction {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
}

/// One run of one kind of agent leg.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub legs: LegKind,
    pub calls: usize,
    pub seconds: f64,
    /// The agent's packets to the customer (the browser's through the shard).
    pub agent_to_customer: Direction,
    pub customer_to_agent: Direction,
    /// The shard thread's CPU while the generator played, % of one core, and per call.
    pub relay_cpu_pct: f64,
    pub relay_cpu_pct_per_call: f64,
    /// The shard thread's CPU time per packet it delivered (either way), µs: the cost that still
    /// compares when a starved shard falls behind (what it never read, it never paid for).
    pub relay_cpu_us_per_packet: f64,
    /// How late the generator's sends were (its own overload: past one period the run does
    /// not count).
    pub send_lag_p99_us: u64,
    pub scheduled: u64,
    /// Time to connect every browser (ICE and DTLS), ms; 0 for RTP legs.
    pub connect_ms: u64,
    /// Datagrams the shard failed to send.
    pub shard_send_errors: u64,
}

impl Run {
    pub fn generator_kept_up(&self) -> bool {
        let sent = self.agent_to_customer.sent + self.customer_to_agent.sent;
        sent > 0 && sent == self.scheduled && self.send_lag_p99_us <= MAX_SEND_LAG_P99_US
    }

    pub fn zero_loss(&self) -> bool {
        self.agent_to_customer.lost == 0 && self.customer_to_agent.lost == 0 && self.generator_kept_up()
    }
}

/// The agent side of one call in the generator.
enum Agent {
    Rtp { relay: SocketAddr },
    Browser(Box<Browser>),
}

/// Send stamps (ns since the run's start, 0 = not sent, `u64::MAX` = received) per stream and
/// frame, and what arrived.
struct Tally {
    ticks: u32,
    stamps: Vec<u64>,
    latencies: [Vec<u32>; 2],
    received: [u64; 2],
    duplicates: [u64; 2],
}

impl Tally {
    fn new(calls: usize, ticks: u32) -> Tally {
        Tally {
            ticks,
            stamps: vec![0; calls * 2 * ticks as usize],
            latencies: [Vec::new(), Vec::new()],
            received: [0; 2],
            duplicates: [0; 2],
        }
    }

    fn slot(&self, call: usize, dir: usize, frame: u32) -> Option<usize> {
        (frame < self.ticks).then(|| (call * 2 + dir) * self.ticks as usize + frame as usize)
    }

    fn sent(&mut self, call: usize, dir: usize, frame: u32, at_ns: u64) {
        if let Some(i) = self.slot(call, dir, frame) {
            self.stamps[i] = at_ns.max(1);
        }
    }

    /// Frame `frame` of `call` in direction `dir` (0: agent to customer) arrived at `at_ns`.
    fn arrived(&mut self, call: usize, dir: usize, frame: u32, at_ns: u64) {
        let Some(i) = self.slot(call, dir, frame) else { return };
        match self.stamps[i] {
            0 => {} // not sent by this run
            u64::MAX => self.duplicates[dir] += 1,
            sent => {
                self.stamps[i] = u64::MAX;
                self.received[dir] += 1;
                self.latencies[dir].push((at_ns.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32);
            }
        }
    }

    fn direction(&mut self, dir: usize, sent: u64) -> Direction {
        let l = &mut self.latencies[dir];
        l.sort_unstable();
        let q = |q: f64| -> u64 {
            if l.is_empty() {
                return 0;
            }
            u64::from(l[((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1])
        };
        Direction {
            sent,
            received: self.received[dir],
            lost: sent.saturating_sub(self.received[dir]),
            duplicates: self.duplicates[dir],
            latency_p50_us: q(0.5),
            latency_p99_us: q(0.99),
            latency_max_us: l.last().copied().map_or(0, u64::from),
        }
    }
}

fn leg(socket: SocketId, remote: SocketAddr, i: usize, customer: bool) -> Box<LegConfig> {
    let mut leg = kakeru::leg(socket, remote, i, customer);
    // Timestamps from 0: the receiver reads the frame off the timestamp (module docs).
    leg.initial_seq = 0;
    leg.initial_timestamp = 0;
    leg
}

/// 20 ms of a 440 Hz tone in µ-law, and the same as one Opus packet (when this build has Opus).
fn payloads() -> (Vec<u8>, Option<Vec<u8>>) {
    let pcmu: Vec<u8> = (0..160)
        .map(|i| {
            let t = i as f32 / 8000.0;
            Codec::Pcmu.encode((6000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16)
        })
        .collect();
    let opus = OpusTranscoder::new().and_then(|mut t| {
        let mut out = Vec::new();
        t.encode(Codec::Pcmu, &pcmu, &mut out).ok().map(|()| out)
    });
    (pcmu, opus)
}

/// Waits for a report of the shard matching `f` (others are kept in `kept`).
fn wait_report(
    shard: &ShardHandle,
    kept: &mut Vec<Report>,
    until: Instant,
    mut f: impl FnMut(&Report) -> bool,
) -> anyhow::Result<Report> {
    if let Some(i) = kept.iter().position(&mut f) {
        return Ok(kept.remove(i));
    }
    loop {
        let r = shard
            .reports()
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .map_err(|_| anyhow::anyhow!("the shard did not answer in time"))?;
        if f(&r) {
            return Ok(r);
        }
        if let Report::Refused { call, reason } = r {
            bail!("shard refused set-up of {call:?}: {reason}");
        }
        if kept.len() < 65_536 {
            kept.push(r);
        }
    }
}

/// Waits until the shard has applied every control sent before, keeping its other reports.
fn barrier(shard: &ShardHandle, kept: &mut Vec<Report>, token: u64) -> anyhow::Result<()> {
    send(shard, Control::Ping { token })?;
    let until = Instant::now() + Duration::from_secs(30);
    wait_report(shard, kept, until, |r| matches!(r, Report::Pong { token: t } if *t == token)).map(|_| ())
}

/// One run of `calls` calls whose agent legs are `kind`, on the calling thread (pinned to the
/// generator's core by the caller).
fn run_once(args: &WebRtcArgs, kind: LegKind, calls: usize) -> anyhow::Result<Run> {
    let (pcmu, opus) = payloads();
    let opus = match kind {
        LegKind::Opus => Some(opus.context("this build has no Opus: build kakeru-bench with --features media/opus")?),
        _ => None,
    };
    let shard = driver::spawn(ShardConfig {
        index: 0,
        core: Some(args.placement.shard_core),
        driver: args.placement.driver.into(),
        webrtc_tcp: args.tcp.then(|| SocketAddr::from(([127, 0, 0, 1], 0))),
    })
    .context("start media shard")?;
    let customers: Vec<UdpSocket> =
        (0..SHARED_SOCKETS).map(|_| generator::bind_udp()).collect::<anyhow::Result<_>>()?;
    let rtp_agents: Vec<UdpSocket> =
        (0..SHARED_SOCKETS).map(|_| generator::bind_udp()).collect::<anyhow::Result<_>>()?;
    // The shard's customer and agent ports, and which call a datagram from each one is.
    let mut relay_customer = Vec::with_capacity(calls);
    let mut from_relay: HashMap<SocketAddr, usize> = HashMap::with_capacity(2 * calls);
    let mut agents: Vec<Agent> = Vec::with_capacity(calls);
    let mut kept = Vec::new();
    let setup = Instant::now();
    for i in 0..calls {
        let (c, a) = (generator::bind_udp()?, generator::bind_udp()?);
        let (ca, aa) = (c.local_addr()?, a.local_addr()?);
        let (sc, sa) = (SocketId(2 * i as u32), SocketId(2 * i as u32 + 1));
        let call = CallId(i as u64);
        send(&shard, Control::AddSocket { id: sc, socket: c })?;
        send(&shard, Control::AddSocket { id: sa, socket: a })?;
        send(&shard, Control::AddCall { call, config: Box::new(CallConfig::new(Instant::now(), 0)) })?;
        let agent_leg = leg(sa, rtp_agents[i % SHARED_SOCKETS].local_addr()?, i, false);
        match kind {
            LegKind::Rtp => {
                send(&shard, Control::SetAgent { call, leg: agent_leg })?;
                agents.push(Agent::Rtp { relay: aa });
            }
            LegKind::Pcmu | LegKind::Opus => {
                let opus = kind == LegKind::Opus;
                let (browser, offer) = if args.tcp {
                    Browser::offer_tcp(Instant::now(), opus)?
                } else {
                    Browser::offer(Instant::now(), "127.0.0.1:0".parse()?, opus)?
                };
                send(&shard, Control::SetWebRtcAgent { call, leg: agent_leg, local: aa, offer })?;
                agents.push(Agent::Browser(Box::new(browser)));
            }
        }
        let customer = customers[i % SHARED_SOCKETS].local_addr()?;
        send(&shard, Control::SetCustomer { call, leg: leg(sc, customer, i, true) })?;
        relay_customer.push(ca);
        from_relay.insert(ca, i);
        from_relay.insert(aa, i);
        if i % 250 == 249 {
            barrier(&shard, &mut kept, i as u64)?;
        }
    }
    barrier(&shard, &mut kept, u64::MAX - 1)?;
    // The browsers take the shard's answers and connect (ICE, DTLS) before the traffic starts.
    let until = Instant::now() + CONNECT_BOUND;
    for (i, agent) in agents.iter_mut().enumerate() {
        if let Agent::Browser(b) = agent {
            let call = CallId(i as u64);
            let r = wait_report(
                &shard,
                &mut kept,
                until,
                |r| matches!(r, Report::WebRtcAnswer { call: c, .. } | Report::WebRtcFailed { call: c, .. } if *c == call),
            )?;
            match r {
                Report::WebRtcAnswer { sdp, .. } => b.answer(&sdp)?,
                other => bail!("the shard refused browser {i}: {other:?}"),
            }
        }
    }
    loop {
        let now = Instant::now();
        let mut waiting = 0;
        for agent in &mut agents {
            if let Agent::Browser(b) = agent {
                if !b.is_connected() {
                    b.step(now)?;
                    waiting += usize::from(!b.is_connected());
                }
            }
        }
        if waiting == 0 {
            break;
        }
        if now > until {
            bail!("{waiting} of {calls} browsers did not connect within {CONNECT_BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let connect_ms = if kind == LegKind::Rtp { 0 } else { setup.elapsed().as_millis() as u64 };
    let play = play(args, kind, &customers, &rtp_agents, &mut agents, &relay_customer, &from_relay, &pcmu, opus)?;
    let stats = shard.shutdown().context("stop shard")?;
    Ok(Run { connect_ms, shard_send_errors: stats.send_errors, ..play })
}

#[allow(clippy::too_many_arguments)]
fn play(
    args: &WebRtcArgs,
    kind: LegKind,
    customers: &[UdpSocket],
    rtp_agents: &[UdpSocket],
    agents: &mut [Agent],
    relay_customer: &[SocketAddr],
    from_relay: &HashMap<SocketAddr, usize>,
    pcmu: &[u8],
    opus: Option<Vec<u8>>,
) -> anyhow::Result<Run> {
    let calls = agents.len();
    let ticks = (args.seconds * 50.0).ceil() as u32;
    let mut tally = Tally::new(calls, ticks);
    let mut poll = Poll::new()?;
    let shared = customers.iter().chain(rtp_agents);
    for (i, s) in shared.enumerate() {
        poll.registry().register(&mut SourceFd(&s.as_raw_fd()), Token(i), Interest::READABLE)?;
    }
    for (i, a) in agents.iter().enumerate() {
        if let Agent::Browser(b) = a {
            let fd = b.readable_fd();
            poll.registry().register(&mut SourceFd(&fd), Token(2 * SHARED_SOCKETS + i), Interest::READABLE)?;
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut order: Vec<(u64, usize)> = (0..calls).map(|i| (rng.gen_range(0..PERIOD.as_nanos() as u64), i)).collect();
    order.sort_unstable();
    let (agent_pt, agent_ticks, agent_payload) = match &opus {
        Some(o) => (PT_OPUS, 960, o.as_slice()),
        None => (PT_PCMU, 160, pcmu),
    };
    let mut lags: Vec<u32> = Vec::with_capacity(calls * ticks as usize);
    let (mut tick, mut cursor) = (0u32, 0usize);
    let mut sent = [0u64; 2];
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 2048];
    let mut ready: Vec<usize> = Vec::new();
    let mut steps_done = 0u64;
    let cpu0 = shard_cpu();
    let t0 = Instant::now();
    let start = t0 + Duration::from_millis(50);
    let end = start + PERIOD * ticks + DRAIN;
    let ns = |at: Instant| at.saturating_duration_since(t0).as_nanos() as u64;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Every call due: the agent's frame and the customer's frame.
        while tick < ticks {
            let (phase, call) = order[cursor];
            let due = start + PERIOD * tick + Duration::from_nanos(phase);
            let now = Instant::now();
            if due > now {
                break;
            }
            lags.push(now.duration_since(due).as_micros().min(u128::from(u32::MAX)) as u32);
            match &mut agents[call] {
                Agent::Rtp { relay } => {
                    let packet = frame(tick, 0xB000_0000 | call as u32, pcmu);
                    tally.sent(call, 0, tick, ns(Instant::now()));
                    let _ = rtp_agents[call % SHARED_SOCKETS].send_to(&packet, *relay);
                }
                Agent::Browser(b) => {
                    let at = Instant::now();
                    tally.sent(call, 0, tick, ns(at));
                    b.send(at, agent_pt, tick * agent_ticks, tick == 0, agent_payload)?;
                }
            }
            let packet = frame(tick, 0xD000_0000 | call as u32, pcmu);
            tally.sent(call, 1, tick, ns(Instant::now()));
            let _ = customers[call % SHARED_SOCKETS].send_to(&packet, relay_customer[call]);
            sent[0] += 1;
            sent[1] += 1;
            cursor += 1;
            if cursor == calls {
                cursor = 0;
                tick += 1;
            }
        }
        // Wait for datagrams until the next send is due.
        let next = if tick < ticks {
            start + PERIOD * tick + Duration::from_nanos(order[cursor].0)
        } else {
            (Instant::now() + Duration::from_millis(5)).min(end)
        };
        let wait = next.saturating_duration_since(Instant::now()).min(Duration::from_millis(5));
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => events.clear(),
            Err(e) => return Err(e.into()),
        }
        ready.clear();
        ready.extend(events.iter().map(|e| e.token().0));
        let now = Instant::now();
        for &t in &ready {
            if t < 2 * SHARED_SOCKETS {
                // Customers' sockets and RTP agents' sockets: frame off the timestamp.
                let (sock, dir) =
                    if t < SHARED_SOCKETS { (&customers[t], 0) } else { (&rtp_agents[t - SHARED_SOCKETS], 1) };
                while let Ok((len, from)) = sock.recv_from(&mut buf) {
                    let (Some(&call), Ok(p)) = (from_relay.get(&from), rtp::parse(&buf[..len])) else { continue };
                    if p.payload_type == 0 {
                        tally.arrived(call, dir, p.timestamp / 160, ns(Instant::now()));
                    }
                }
            } else if let Agent::Browser(b) = &mut agents[t - 2 * SHARED_SOCKETS] {
                let call = t - 2 * SHARED_SOCKETS;
                heard(b, call, &mut tally, now, ns(now))?;
            }
        }
        // The browsers' timers: each one every BROWSER_TICK, spread over the period.
        if kind != LegKind::Rtp {
            let due_steps = (now.duration_since(t0).as_nanos() * calls as u128 / BROWSER_TICK.as_nanos()) as u64;
            while steps_done < due_steps {
                let call = (steps_done % calls as u64) as usize;
                steps_done += 1;
                if let Agent::Browser(b) = &mut agents[call] {
                    heard(b, call, &mut tally, now, ns(now))?;
                }
            }
        }
    }
    let cpu = shard_cpu().saturating_sub(cpu0);
    let wall = t0.elapsed();
    let pct = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9);
    lags.sort_unstable();
    let lag_p99 = lags.get((lags.len() * 99).div_ceil(100).saturating_sub(1)).copied().map_or(0, u64::from);
    let delivered = tally.received[0] + tally.received[1];
    let us_per_packet = cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64;
    Ok(Run {
        legs: kind,
        calls,
        seconds: f64::from(ticks) / 50.0,
        agent_to_customer: tally.direction(0, sent[0]),
        customer_to_agent: tally.direction(1, sent[1]),
        relay_cpu_pct: (pct * 10.0).round() / 10.0,
        relay_cpu_pct_per_call: (pct / calls as f64 * 1000.0).round() / 1000.0,
        relay_cpu_us_per_packet: (us_per_packet * 100.0).round() / 100.0,
        send_lag_p99_us: lag_p99,
        scheduled: 2 * calls as u64 * u64::from(ticks),
        connect_ms: 0,
        shard_send_errors: 0,
    })
}

/// Frame `tick` of a stream as plain RTP (PCMU, timestamp 160 a frame).
fn frame(tick: u32, ssrc: u32, pcmu: &[u8]) -> Vec<u8> {
    let h = HeaderFields { marker: tick == 0, payload_type: 0, sequence: tick as u16, timestamp: tick * 160, ssrc };
    rtp::build(h, pcmu)
}

/// Runs a browser (its socket, its timers) and tallies the frames it received.
fn heard(b: &mut Browser, call: usize, tally: &mut Tally, now: Instant, at_ns: u64) -> anyhow::Result<()> {
    b.step(now)?;
    while let Some(p) = b.poll_packet() {
        match p.pt {
            PT_PCMU => tally.arrived(call, 1, p.timestamp / 160, at_ns),
            PT_OPUS => tally.arrived(call, 1, p.timestamp / 960, at_ns),
            _ => {}
        }
    }
    Ok(())
}

/// A run on a thread of its own pinned to the generator's core.
fn run_pinned(args: &WebRtcArgs, kind: LegKind, calls: usize) -> anyhow::Result<Run> {
    std::thread::scope(|s| {
        s.spawn(|| {
            core_affinity::set_for_current(core_affinity::CoreId { id: args.placement.generator_core });
            run_once(args, kind, calls)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("generator thread panicked"))?
    })
}

/// A `--find-max` search of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub legs: LegKind,
    pub max_zero_loss_calls: usize,
    /// The generator fell behind above the maximum (a lower bound of the relay's).
    pub generator_limited: bool,
    pub at_80pct: Option<Run>,
    pub runs: Vec<Run>,
}

fn find_max(args: &WebRtcArgs, kind: LegKind) -> anyhow::Result<Search> {
    let step = args.resolution.max(1);
    let (mut lo, mut hi) = (0usize, args.max_calls + step);
    let mut runs = Vec::new();
    let mut generator_limited = false;
    let mut n = args.min_calls.max(1);
    loop {
        let r = run_pinned(args, kind, n)?;
        eprintln!("  {kind:?} {n:>5} calls: {}", summary(&r));
        if r.zero_loss() {
            lo = n;
        } else {
            hi = n;
            generator_limited = !r.generator_kept_up();
        }
        runs.push(r);
        match crate::media::next_probe(lo, hi, step) {
            Some(next) => n = next,
            None => break,
        }
    }
    let at_80pct = if lo > 0 { Some(run_pinned(args, kind, (lo * 4 / 5).max(1))?) } else { None };
    Ok(Search { legs: kind, max_zero_loss_calls: lo, generator_limited, at_80pct, runs })
}

fn summary(r: &Run) -> String {
    let (a, c) = (&r.agent_to_customer, &r.customer_to_agent);
    format!(
        "lost {}+{}  agent→customer p50 {} µs p99 {} µs  customer→agent p50 {} µs p99 {} µs  relay cpu {:.1} % ({:.3} % per call)  gen-lag p99 {} µs{}{}",
        a.lost,
        c.lost,
        a.latency_p50_us,
        a.latency_p99_us,
        c.latency_p50_us,
        c.latency_p99_us,
        r.relay_cpu_pct,
        r.relay_cpu_pct_per_call,
        r.send_lag_p99_us,
        if r.generator_kept_up() { "" } else { " (generator behind: does not count)" },
        if r.connect_ms > 0 { format!("  connected in {} ms", r.connect_ms) } else { String::new() },
    )
}

#[derive(Serialize)]
struct Output<'a> {
    machine: String,
    load_average: String,
    runs: &'a [Run],
    searches: &'a [Search],
    /// Each kind's relay CPU per call over the RTP legs' (same N, same run).
    cpu_per_call_ratio_to_rtp: HashMap<LegKind, f64>,
    /// Each kind's relay CPU per delivered packet over the RTP legs'.
    cpu_per_packet_ratio_to_rtp: HashMap<LegKind, f64>,
}

/// Each kind's `figure` over the RTP legs'.
fn ratios(runs: &[Run], figure: fn(&Run) -> f64) -> HashMap<LegKind, f64> {
    let rtp = runs.iter().find(|r| r.legs == LegKind::Rtp).map(figure);
    runs.iter()
        .filter_map(|r| {
            let base = rtp.filter(|b| *b > 0.0)?;
            Some((r.legs, (figure(r) / base * 100.0).round() / 100.0))
        })
        .collect()
}

/// Run the bench (see module docs).
pub fn run(args: &WebRtcArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0.0 && args.seconds <= 600.0, "--seconds must be in (0, 600]");
    anyhow::ensure!(args.calls > 0 && args.calls <= 4000, "--calls must be in 1..=4000 (three sockets per call)");
    anyhow::ensure!(args.max_calls <= 4000, "--max-calls must be at most 4000");
    anyhow::ensure!(!args.legs.is_empty(), "--legs names no kind of leg");
    if args.legs.contains(&LegKind::Opus) && !opus_available() {
        bail!("--legs opus needs a build with Opus: cargo build -p bench --features media/opus");
    }
    let mut runs = Vec::new();
    let mut searches = Vec::new();
    if args.find_max {
        for &kind in &args.legs {
            let s = find_max(args, kind)?;
            runs.extend(s.at_80pct.clone());
            searches.push(s);
        }
    } else {
        for &kind in &args.legs {
            let r = run_pinned(args, kind, args.calls)?;
            eprintln!("  {kind:?} {:>5} calls: {}", args.calls, summary(&r));
            runs.push(r);
        }
    }
    let ratio = ratios(&runs, |r| r.relay_cpu_pct_per_call);
    let per_packet = ratios(&runs, |r| r.relay_cpu_us_per_packet);
    if args.json {
        let report = Output {
            machine: crate::media::machine(),
            load_average: std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned(),
            runs: &runs,
            searches: &searches,
            cpu_per_call_ratio_to_rtp: ratio,
            cpu_per_packet_ratio_to_rtp: per_packet,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for s in &searches {
        println!(
            "{:?}: max zero-loss calls {}{}",
            s.legs,
            s.max_zero_loss_calls,
            if s.generator_limited { " (the generator fell behind above it: a lower bound)" } else { "" }
        );
    }
    for r in &runs {
        println!(
            "{:<5} calls {:>5}  {}  cpu/call vs RTP {}  cpu/packet {:.1} µs, vs RTP {}",
            format!("{:?}", r.legs),
            r.calls,
            summary(r),
            ratio.get(&r.legs).map_or("n/a".into(), |x| format!("{x:.2}x")),
            r.relay_cpu_us_per_packet,
            per_packet.get(&r.legs).map_or("n/a".into(), |x| format!("{x:.2}x"))
        );
    }
    Ok(())
}
