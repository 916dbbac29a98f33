//! `kakeru-bench media`: concurrent relayed G.711 calls through one pinned media shard.
//!
//! One shard runs on `--shard-core`, the [`generator`] on `--generator-core`; every call has two
//! legs and audio flows both ways (100 packets/s per call into the relay, 100 out). A run
//! reports loss, duplicates, reordering and one-way latency through the relay (generator send
//! to generator receive, loopback both ways: an upper bound of the relay's added latency).
//! `--find-max` searches the largest zero-loss call count; `--peer rtpengine` runs Debian's
//! rtpengine under the same generator and reports the ratio; `--peer loopback` runs the generator
//! with no relay at all (each side straight to the other), the ceiling of what this machine can
//! show.

pub mod generator;
pub mod kakeru;
pub mod rtpengine;

use anyhow::Context;
use clap::ValueEnum;
use media_driver::DriverChoice;
use serde::Serialize;

use generator::{Measurement, Sides};

/// The relay to compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    Rtpengine,
    /// No relay: each generator socket sends straight to the other side's. What the generator
    /// itself carries on its core (the same kernel work per packet as through a relay): the
    /// ceiling of what this machine can show.
    Loopback,
}

/// The shard's I/O driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// The bench winner (io_uring, epoll where the kernel refuses it).
    Auto,
    /// io_uring driven by hand: multishot receive, batched sends.
    Uring,
    Epoll,
    /// compio's runtime on io_uring.
    Compio,
}

impl From<Driver> for DriverChoice {
    fn from(d: Driver) -> Self {
        match d {
            Driver::Auto => DriverChoice::Auto,
            Driver::Uring => DriverChoice::Uring,
            Driver::Epoll => DriverChoice::Epoll,
            Driver::Compio => DriverChoice::Compio,
        }
    }
}

/// Where a media bench runs: the shard's driver and the cores of the relay and the generator.
#[derive(Debug, Clone, clap::Args)]
pub struct Placement {
    /// The shard's I/O driver.
    #[arg(long, value_enum, default_value_t = Driver::Auto)]
    pub driver: Driver,
    /// Core the relay (kakeru's shard, or rtpengine) is pinned to.
    #[arg(long, default_value_t = 0)]
    pub shard_core: usize,
    /// Core the generator is pinned to.
    #[arg(long, default_value_t = 1)]
    pub generator_core: usize,
}

/// Arguments of `kakeru-bench media`.
#[derive(Debug, Clone, clap::Args)]
pub struct MediaArgs {
    /// Simultaneous relayed calls (two legs, both directions).
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Record every call (stereo WAV per call, in a temporary directory deleted afterwards).
    #[arg(long)]
    pub record: bool,
    /// Run this relay under the same generator, side by side.
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// Search the largest zero-loss call count (binary search between --min-calls and
    /// --max-calls, to --resolution), then measure latency at 80% of it.
    #[arg(long)]
    pub find_max: bool,
    #[arg(long, default_value_t = 250)]
    pub min_calls: usize,
    #[arg(long, default_value_t = 8000)]
    pub max_calls: usize,
    #[arg(long, default_value_t = 250)]
    pub resolution: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub placement: Placement,
    /// The rtpengine daemon binary.
    #[arg(long, default_value = "rtpengine")]
    pub rtpengine_bin: String,
    /// Seed of the calls' random phases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The generator's send lag (p99) past which a run does not count: one packet period.
pub const MAX_SEND_LAG_P99_US: u64 = 20_000;

/// One run of one relay.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub relay: String,
    #[serde(flatten)]
    pub m: Measurement,
    /// kakeru only: datagrams the shard failed to send, recording bytes written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_send_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_bytes: Option<u64>,
    /// The relay's CPU use while the generator played, in % of one core (kakeru: the shard's
    /// thread; rtpengine: the whole daemon). Kernel work a relay's sends cause (the loopback
    /// delivery into the generator's sockets) is counted to the relay. Absent where there is
    /// no relay (`--peer loopback`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_cpu_pct: Option<f64>,
    /// `calls` scaled to a whole core at that CPU use: what the relay would carry were it
    /// alone, past the generator's own ceiling (capacity planning, not a zero-loss figure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_core_at_this_cpu: Option<f64>,
}

/// What ended a `--find-max` search above its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    /// The relay lost packets while the generator kept its schedule.
    Relay,
    /// The generator fell behind first: the relay may carry more than this machine can show.
    Generator,
}

/// CPU time (user + system) in a /proc `stat` file (fields 14 and 15, 100 Hz ticks).
pub fn cpu_of(path: &std::path::Path) -> std::time::Duration {
    let Ok(stat) = std::fs::read_to_string(path) else { return std::time::Duration::ZERO };
    let after_comm = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The relay's CPU share over a play that took `wall`, and the calls a core would carry at it.
fn cpu_figures(calls: usize, cpu: std::time::Duration, wall: std::time::Duration) -> (Option<f64>, Option<f64>) {
    let pct = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9);
    let per_core = if pct > 0.0 { calls as f64 * 100.0 / pct } else { 0.0 };
    (Some((pct * 10.0).round() / 10.0), Some(per_core.round()))
}

impl Run {
    /// The generator kept its schedule: every packet sent, 99 % of them within one 20 ms
    /// period of their time. A generator further behind offers less than the load asked for, so
    /// the run says nothing of the relay at that load.
    pub fn generator_kept_up(&self) -> bool {
        self.m.sent > 0 && self.m.sent == self.m.scheduled && self.m.send_lag_p99_us <= MAX_SEND_LAG_P99_US
    }

    /// No packet lost at the load asked for.
    pub fn zero_loss(&self) -> bool {
        self.m.lost == 0 && self.generator_kept_up()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Kakeru,
    Rtpengine,
    Loopback,
}

impl From<Peer> for Target {
    fn from(p: Peer) -> Target {
        match p {
            Peer::Rtpengine => Target::Rtpengine,
            Peer::Loopback => Target::Loopback,
        }
    }
}

/// Play on a thread of its own, pinned to the generator core (the caller's affinity is kept).
fn play(args: &MediaArgs, sides: Sides, ports: &[generator::CallPorts]) -> anyhow::Result<Measurement> {
    std::thread::scope(|s| {
        s.spawn(|| generator::play(sides, ports, args.seconds, Some(args.placement.generator_core), args.seed))
            .join()
            .map_err(|_| anyhow::anyhow!("generator thread panicked"))?
    })
}

fn run_once(args: &MediaArgs, target: Target, calls: usize) -> anyhow::Result<Run> {
    let sides = Sides::bind().context("bind generator sockets")?;
    match target {
        Target::Kakeru => {
            let (relay, ports) = kakeru::Relay::start(
                &sides,
                calls,
                args.placement.driver.into(),
                Some(args.placement.shard_core),
                args.record,
            )?;
            let name = format!("kakeru {}", relay.driver().label());
            let (cpu0, t0) = (relay.cpu(), std::time::Instant::now());
            let m = play(args, sides, &ports)?;
            let (cpu, wall) = (relay.cpu().saturating_sub(cpu0), t0.elapsed());
            let (relay_cpu_pct, calls_per_core_at_this_cpu) = cpu_figures(calls, cpu, wall);
            let (stats, bytes) = relay.stop()?;
            Ok(Run {
                relay: name,
                m,
                shard_send_errors: Some(stats.send_errors),
                recorded_bytes: args.record.then_some(bytes),
                relay_cpu_pct,
                calls_per_core_at_this_cpu,
            })
        }
        Target::Rtpengine => {
            let (relay, ports) =
                rtpengine::Relay::start(&sides, calls, Some(args.placement.shard_core), &args.rtpengine_bin)?;
            let (cpu0, t0) = (relay.cpu(), std::time::Instant::now());
            let m = play(args, sides, &ports)?;
            let (cpu, wall) = (relay.cpu().saturating_sub(cpu0), t0.elapsed());
            let (relay_cpu_pct, calls_per_core_at_this_cpu) = cpu_figures(calls, cpu, wall);
            relay.stop()?;
            Ok(Run {
                relay: "rtpengine (userspace)".into(),
                m,
                shard_send_errors: None,
                recorded_bytes: None,
                relay_cpu_pct,
                calls_per_core_at_this_cpu,
            })
        }
        Target::Loopback => {
            let ports: Vec<generator::CallPorts> =
                (0..calls).map(|i| generator::CallPorts { a: sides.b_addr(i), b: sides.a_addr(i) }).collect();
            let m = play(args, sides, &ports)?;
            Ok(Run {
                relay: "none (generator to generator)".into(),
                m,
                shard_send_errors: None,
                recorded_bytes: None,
                relay_cpu_pct: None,
                calls_per_core_at_this_cpu: None,
            })
        }
    }
}

/// The result of a `--find-max` search for one relay.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub max_zero_loss_calls: usize,
    /// What ended the search above the maximum (none: the range ran out first).
    pub limited_by: Option<Limit>,
    /// The zero-loss run at the maximum (absent if even `--min-calls` lost packets).
    pub at_max: Option<Run>,
    /// Latency at 80% of the maximum.
    pub at_80pct: Option<Run>,
    pub runs: Vec<Run>,
}

/// The next call count of a binary search whose `lo` had zero loss (0: none yet) and whose
/// `hi` lost packets, to a resolution of `step`; `None` when the search is over.
pub(crate) fn next_probe(lo: usize, hi: usize, step: usize) -> Option<usize> {
    if lo == 0 || hi - lo <= step {
        return None;
    }
    let n = ((lo + hi) / 2 / step * step).max(lo + step);
    (n < hi).then_some(n)
}

fn find_max(args: &MediaArgs, target: Target) -> anyhow::Result<Search> {
    let step = args.resolution.max(1);
    let mut runs = Vec::new();
    let mut best: Option<Run> = None;
    // Invariant: `lo` had zero loss (0 = none yet), `hi` lost packets or the generator fell
    // behind (or is past the range).
    let (mut lo, mut hi) = (0usize, args.max_calls + step);
    let mut limited_by = None;
    let mut n = args.min_calls.max(1);
    loop {
        let r = run_once(args, target, n)?;
        eprintln!(
            "  {:>5} calls: lost {} (p99 {} µs, generator lag p99 {} µs{}, relay cpu {})",
            n,
            r.m.lost,
            r.m.latency_p99_us,
            r.m.send_lag_p99_us,
            if r.generator_kept_up() { "" } else { ": behind schedule, the run does not count" },
            cpu_text(r.relay_cpu_pct)
        );
        if r.zero_loss() {
            lo = n;
            best = Some(r.clone());
        } else {
            hi = n;
            limited_by = Some(if r.generator_kept_up() { Limit::Relay } else { Limit::Generator });
        }
        runs.push(r);
        match next_probe(lo, hi, step) {
            Some(next) => n = next,
            None => break,
        }
    }
    let at_80pct = if lo > 0 { Some(run_once(args, target, (lo * 4 / 5).max(1))?) } else { None };
    Ok(Search { max_zero_loss_calls: lo, limited_by, at_max: best, at_80pct, runs })
}

#[derive(Serialize)]
struct Report<'a> {
    machine: String,
    driver: Driver,
    record: bool,
    #[serde(flatten)]
    top: Option<&'a Measurement>,
    kakeru: KakeruOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<PeerOut<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum KakeruOut<'a> {
    Run(&'a Run),
    Search(&'a Search),
}

#[derive(Serialize)]
struct PeerOut<'a> {
    name: Peer,
    #[serde(flatten)]
    result: KakeruOut<'a>,
    /// kakeru's zero-loss calls per core divided by the peer's (find-max only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<f64>,
}

pub(crate) fn machine() -> String {
    // Read before any pinning: available_parallelism follows the thread's affinity.
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {} cores, Linux {}", std::thread::available_parallelism().map_or(0, |n| n.get()), kernel.trim())
}

fn print_run(r: &Run) {
    let m = &r.m;
    println!(
        "{:<28} calls {:>5}  sent {:>9}  received {:>9}  lost {:>6}  dup {:>3}  reord {:>5}  latency p50 {:>5} µs  p99 {:>6} µs  max {:>6} µs  gen-lag p99 {:>5} µs  relay cpu {}{}",
        r.relay, m.calls, m.sent, m.received, m.lost, m.duplicates, m.reordered, m.latency_p50_us, m.latency_p99_us, m.latency_max_us, m.send_lag_p99_us, cpu_text(r.relay_cpu_pct),
        r.calls_per_core_at_this_cpu.map_or_else(String::new, |c| format!(" ({c:.0} calls per core at that rate)"))
    );
}

fn bound_note(s: &Search) -> &'static str {
    match s.limited_by {
        Some(Limit::Generator) => " (the generator fell behind above it: a lower bound)",
        _ => "",
    }
}

fn cpu_text(pct: Option<f64>) -> String {
    pct.map_or_else(|| "none (no relay)".to_owned(), |p| format!("{p:.1} %"))
}

/// Run the bench (see module docs).
pub fn run(args: &MediaArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0.0 && args.seconds <= 600.0, "--seconds must be in (0, 600]");
    anyhow::ensure!(args.calls > 0 && args.calls <= 9000, "--calls must be in 1..=9000 (two sockets per call)");
    if args.find_max {
        let k = find_max(args, Target::Kakeru)?;
        let p = match args.peer {
            Some(peer) => Some(find_max(args, peer.into())?),
            None => None,
        };
        let ratio = p
            .as_ref()
            .filter(|p| p.max_zero_loss_calls > 0)
            .map(|p| k.max_zero_loss_calls as f64 / p.max_zero_loss_calls as f64);
        if args.json {
            let report = Report {
                machine: machine(),
                driver: args.placement.driver,
                record: args.record,
                top: k.at_max.as_ref().map(|r| &r.m),
                kakeru: KakeruOut::Search(&k),
                peer: args.peer.zip(p.as_ref()).map(|(name, p)| PeerOut { name, result: KakeruOut::Search(p), ratio }),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("kakeru: max zero-loss calls per core {}{}", k.max_zero_loss_calls, bound_note(&k));
            k.at_80pct.iter().for_each(print_run);
            if let (Some(peer), Some(p)) = (args.peer, &p) {
                let name = peer.to_possible_value().map_or_else(String::new, |v| v.get_name().to_owned());
                println!("{name}: max zero-loss calls per core {}{}", p.max_zero_loss_calls, bound_note(p));
                p.at_80pct.iter().for_each(print_run);
                println!("ratio kakeru / {name}: {}", ratio.map_or("n/a".into(), |r| format!("{r:.2}")));
            }
        }
        return Ok(());
    }
    let k = run_once(args, Target::Kakeru, args.calls)?;
    let p = match args.peer {
        Some(peer) => Some(run_once(args, peer.into(), args.calls)?),
        None => None,
    };
    if args.json {
        let report = Report {
            machine: machine(),
            driver: args.placement.driver,
            record: args.record,
            top: Some(&k.m),
            kakeru: KakeruOut::Run(&k),
            peer: args.peer.zip(p.as_ref()).map(|(name, p)| PeerOut { name, result: KakeruOut::Run(p), ratio: None }),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_run(&k);
        p.iter().for_each(print_run);
    }
    Ok(())
}
