//! `kakeru-bench sip`: call set-ups a second on one dialer shard, against Debian's sipp as the UAS.
//!
//! One [`SipShard`] (the very shard app `kakeru dialer` runs: a [`CallControl`] on a media shard,
//! its SIP socket from [`bind_sip_socket`]) is pinned to `--core`; sipp's built-in `uas` scenario
//! answers on loopback, pinned to `--sipp-core` with `taskset`. Each call is the dialer's customer
//! call: INVITE with our SDP offer, 180, 200 with sipp's SDP answer, our ACK, and, as soon as the
//! answer reached the bench, our BYE and sipp's 200.
//!
//! Two phases:
//! 1. **Hold**: `--hold` calls placed at `--rate` and kept up at once; the process's resident set
//!    (`VmRSS`) before and after, divided by the calls established, is `bytes_per_call` (the
//!    customer call, its dialog and transactions, its media call and RTP socket on the shard). Then
//!    they are hung up. It runs first, so the rate phase's freed memory does not hide its cost.
//! 2. **Rate**: open loop at `--rate` calls a second for `--seconds`, at most `--concurrency` in
//!    flight, a call counting from its INVITE until sipp answered its BYE (a launch due at the cap waits for a slot; the window does not stretch, so a saturated
//!    shard launches fewer than scheduled). `calls_per_s` is set-ups completed over the time from
//!    the first INVITE to the last answer. A call fails on any non-2xx final response, no answer
//!    (ring timeout, CANCEL), or no 200 to its BYE.
//!
//! Set-up latency is from the dial command to the answer event reaching the bench: the INVITE,
//! sipp's 200, and the two channel hops between the bench thread and the shard.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use ::media::SocketId;
use anyhow::{bail, Context};
use dialer::calls::{self, CallControl, CallEvent, Command, DialCustomer, EndCause, Party};
use dialer::engine::shard::{bind_sip_socket, ShardOutput, SipShard};
use media_driver::shard::{Input, Report, ShardApp, ShardCtx};
use media_driver::{self as driver, ShardConfig, ShardHandle};
use serde::Serialize;

/// A call still ringing this long is CANCELled (and counted failed).
const RING_TIMEOUT: Duration = Duration::from_secs(10);
/// After the last launch: how long to wait for calls to end and BYEs to be answered.
const DRAIN: Duration = Duration::from_secs(15);
/// Most calls the hold phase may keep up (the shard's `max_calls` is 20,000; each holds an RTP
/// socket, so the file descriptor limit matters too).
const MAX_HOLD: usize = 15_000;

/// Arguments of `kakeru-bench sip`.
#[derive(Debug, Clone, clap::Args)]
pub struct SipArgs {
    /// Seconds of the rate phase.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Call set-ups a second launched (open loop).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Most calls in flight in the rate phase (from the dial to the call's end).
    #[arg(long, default_value_t = 1000)]
    pub concurrency: usize,
    /// Calls held up at once to measure memory per established call (0: skip the phase).
    #[arg(long, default_value_t = 2000)]
    pub hold: usize,
    /// Core the dialer shard is pinned to.
    #[arg(long, default_value_t = 0)]
    pub core: usize,
    /// Core sipp is pinned to (`taskset -c`).
    #[arg(long, default_value_t = 1)]
    pub sipp_core: usize,
    /// The sipp binary (Debian's sip-tester).
    #[arg(long, default_value = "sipp")]
    pub sipp_bin: String,
    /// Print one JSON document instead of a line.
    #[arg(long)]
    pub json: bool,
}

impl SipArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 3600.0) {
            bail!("--seconds must be more than 0 and at most 3600, got {}", self.seconds);
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            bail!("--rate must be more than 0 and at most 1000000 calls a second, got {}", self.rate);
        }
        if self.concurrency == 0 || self.concurrency > MAX_HOLD {
            bail!("--concurrency must be 1 to {MAX_HOLD}, got {}", self.concurrency);
        }
        if self.hold > MAX_HOLD {
            bail!("--hold must be at most {MAX_HOLD}, got {}", self.hold);
        }
        Ok(())
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SipReport {
    pub rate: f64,
    pub seconds: f64,
    pub concurrency: usize,
    /// Launches the rate phase's schedule asked for, and those made (fewer: the cap was hit).
    pub scheduled: u64,
    pub launched: u64,
    /// Set-ups completed (2xx) a second, first INVITE to last answer.
    pub calls_per_s: f64,
    pub completed: u64,
    /// Calls that failed: `rejected` + `no_answer` + `bye_unanswered` + `unfinished`.
    pub failed: u64,
    /// A final non-2xx response (or a shard refusal).
    pub rejected: u64,
    /// No final response within the ring timeout (CANCELled) or none at all.
    pub no_answer: u64,
    /// Answered, but our BYE got no 200.
    pub bye_unanswered: u64,
    /// Neither answered nor ended when the run gave up waiting.
    pub unfinished: u64,
    pub setup_p50_ms: f64,
    pub setup_p99_ms: f64,
    pub setup_max_ms: f64,
    /// Most calls holding a slot at once (from the INVITE until the BYE's 200).
    pub peak_in_flight: usize,
    /// Calls the hold phase asked for, established at once, and failed.
    pub hold: usize,
    pub held: u64,
    pub hold_failed: u64,
    pub rss_before_kib: u64,
    pub rss_held_kib: u64,
    /// (RSS with the calls held - RSS before) / calls held.
    pub bytes_per_call: f64,
    pub core: usize,
    pub sipp_core: usize,
    /// /proc/loadavg when the run ended.
    pub load_avg: String,
}

/// A sipp process, killed when dropped.
struct Sipp {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Sipp {
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> anyhow::Result<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").context("bind a probe socket")?;
    Ok(s.local_addr()?.port())
}

fn start_sipp(args: &SipArgs) -> anyhow::Result<(Sipp, SocketAddr)> {
    if Process::new(&args.sipp_bin).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        bail!(
            "sipp not found ({}): install Debian's sip-tester (apt-get install -y sip-tester; scripts/services.sh does)",
            args.sipp_bin
        );
    }
    let (port, media_port) = (free_udp_port()?, free_udp_port()?);
    let log = tempfile::NamedTempFile::new().context("sipp log file")?;
    let out = log.reopen().context("sipp log file")?;
    let err = log.reopen().context("sipp log file")?;
    let child = Process::new("taskset")
        .arg("-c")
        .arg(args.sipp_core.to_string())
        .arg(&args.sipp_bin)
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-mi", "127.0.0.1", "-mp"])
        .arg(media_port.to_string())
        .args(["-l", "1000000", "-buff_size", "8388608", "-nostdin"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("start sipp under taskset")?;
    let mut sipp = Sipp { child, log };
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let deadline = Instant::now() + Duration::from_secs(10);
    // sipp is up once its port is taken.
    while UdpSocket::bind(addr).is_ok() {
        if let Some(status) = sipp.child.try_wait()? {
            bail!("sipp exited at start ({status}):\n{}", sipp.tail());
        }
        if Instant::now() > deadline {
            bail!("sipp did not bind {addr} within 10 s:\n{}", sipp.tail());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((sipp, addr))
}

/// The Call-ID of a 2xx response to a BYE, if `data` is one.
fn bye_success_call_id(data: &[u8]) -> Option<&[u8]> {
    if !data.starts_with(b"SIP/2.0 2") {
        return None;
    }
    let head = data.split(|&b| b == b'\n').take_while(|l| l.len() > 1);
    let (mut call_id, mut bye) = (None, false);
    for line in head {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"cseq") {
            bye = value.ends_with(b"BYE");
        } else if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            call_id = Some(value);
        }
    }
    call_id.filter(|_| bye)
}

/// The dialer's shard app, plus a count of the distinct calls whose BYE got a 2xx (the call
/// control needs nothing once it sent the BYE, so it reports none).
struct Counted {
    inner: SipShard,
    bye_answered: HashSet<Vec<u8>>,
    bye_ok: Arc<AtomicU64>,
}

impl ShardApp for Counted {
    type Message = Command;

    fn handle_datagram(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
        ctx: &mut ShardCtx<'_>,
    ) {
        if let Some(id) = bye_success_call_id(data) {
            if self.bye_answered.insert(id.to_vec()) {
                self.bye_ok.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.inner.handle_datagram(now, socket, from, data, ctx);
    }

    fn handle_message(&mut self, now: Instant, message: Command, ctx: &mut ShardCtx<'_>) {
        self.inner.handle_message(now, message, ctx);
    }

    fn handle_report(&mut self, now: Instant, report: Report, ctx: &mut ShardCtx<'_>) {
        self.inner.handle_report(now, report, ctx);
    }

    fn handle_timeout(&mut self, now: Instant, ctx: &mut ShardCtx<'_>) {
        self.inner.handle_timeout(now, ctx);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
}

/// The bench's end of the shard.
struct Dialer {
    shard: ShardHandle<Command>,
    events: std_mpsc::Receiver<(Instant, CallEvent)>,
    bye_ok: Arc<AtomicU64>,
    next_call: u64,
}

impl Dialer {
    fn start(core: usize, carrier: SocketAddr) -> anyhow::Result<Dialer> {
        let socket = bind_sip_socket("127.0.0.1:0".parse()?).context("bind the shard's SIP socket")?;
        let local = socket.local_addr()?;
        let cfg = calls::Config::new(local, carrier);
        let cc = CallControl::new(cfg, Box::new(<rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4)));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ShardOutput>(65_536);
        let bye_ok = Arc::new(AtomicU64::new(0));
        let app = Counted {
            inner: SipShard::new(0, cc, socket, IpAddr::V4(Ipv4Addr::LOCALHOST), tx),
            bye_answered: HashSet::new(),
            bye_ok: bye_ok.clone(),
        };
        let shard = driver::spawn_with_app(ShardConfig { index: 0, core: Some(core), ..ShardConfig::default() }, app)
            .context("start the dialer shard")?;
        // Each event is stamped when it reaches the bench side of the channel.
        let (fwd, events) = std_mpsc::channel();
        std::thread::Builder::new().name("bench-sip-events".into()).spawn(move || {
            while let Some(out) = rx.blocking_recv() {
                if fwd.send((Instant::now(), out.event)).is_err() {
                    break;
                }
            }
        })?;
        let d = Dialer { shard, events, bye_ok, next_call: 1 };
        // Registers the SIP socket and binds the first RTP ports.
        d.send(Command::SetAccounts(Vec::new()))?;
        Ok(d)
    }

    fn send(&self, cmd: Command) -> anyhow::Result<()> {
        self.shard
            .send_timeout(Input::App(cmd), Duration::from_secs(5))
            .map_err(|e| anyhow::anyhow!("the dialer shard took no command: {e}"))
    }

    fn dial(&mut self) -> anyhow::Result<u64> {
        let call = self.next_call;
        self.next_call += 1;
        self.send(Command::DialCustomer(Box::new(DialCustomer {
            call,
            tenant_id: 1,
            tel: format!("03{:08}", call % 100_000_000),
            caller_id: Some("0501234567".into()),
            ring_timeout: RING_TIMEOUT,
            wait_limit: Duration::from_secs(3600),
            waiting_audio: None,
            abandon_message: None,
            recording: None,
            dtmf_result_entry: false,
        })))?;
        Ok(call)
    }

    fn hang_up(&self, call: u64) -> anyhow::Result<()> {
        self.send(Command::HangUpCustomer { call, by: Party::System })
    }

    fn bye_ok(&self) -> u64 {
        self.bye_ok.load(Ordering::Relaxed)
    }
}

/// Counts of one phase.
#[derive(Debug, Default)]
struct Tally {
    launched: u64,
    completed: u64,
    rejected: u64,
    no_answer: u64,
    byes: u64,
    /// Answered calls that ended here (their BYE sent).
    ended_answered: u64,
    setups_ms: Vec<f64>,
    first_launch: Option<Instant>,
    last_setup: Option<Instant>,
    peak_in_flight: usize,
}

impl Tally {
    fn ended(&mut self, end: &calls::CallEnd) {
        if end.answered {
            self.ended_answered += 1;
            return;
        }
        match end.cause {
            EndCause::Cancelled(_) | EndCause::Transport => self.no_answer += 1,
            _ => self.rejected += 1,
        }
    }
}

fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/self/status")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Waits for the next event up to `until`; `None` on timeout.
fn next_event(d: &Dialer, until: Instant) -> anyhow::Result<Option<(Instant, CallEvent)>> {
    match d.events.recv_timeout(until.saturating_duration_since(Instant::now())) {
        Ok(e) => Ok(Some(e)),
        Err(std_mpsc::RecvTimeoutError::Timeout) => Ok(None),
        Err(std_mpsc::RecvTimeoutError::Disconnected) => bail!("the dialer shard stopped"),
    }
}

/// Places `count` calls at `rate` and keeps them up; returns (held, failed) once each is answered
/// or has ended.
fn hold_phase(d: &mut Dialer, count: usize, rate: f64) -> anyhow::Result<(Vec<u64>, u64)> {
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut pending: HashSet<u64> = HashSet::new();
    let mut held = Vec::with_capacity(count);
    let mut failed = 0u64;
    let mut launched = 0usize;
    let deadline = start + interval * count as u32 + RING_TIMEOUT + DRAIN;
    while (launched < count || !pending.is_empty()) && Instant::now() < deadline {
        let now = Instant::now();
        while launched < count && start + interval * launched as u32 <= now {
            pending.insert(d.dial()?);
            launched += 1;
        }
        let wake = if launched < count { start + interval * launched as u32 } else { deadline };
        if let Some((_, ev)) = next_event(d, wake)? {
            match ev {
                CallEvent::CustomerAnswered { call, .. } if pending.remove(&call) => held.push(call),
                CallEvent::CustomerEnded { call, .. } if pending.remove(&call) => failed += 1,
                CallEvent::CustomerEnded { call, .. } => {
                    // A held call ended by itself: it is not held any more.
                    if let Some(i) = held.iter().position(|c| *c == call) {
                        held.swap_remove(i);
                        failed += 1;
                    }
                }
                _ => {}
            }
        }
    }
    failed += pending.len() as u64;
    Ok((held, failed))
}

/// Hangs up `calls` and waits for their ends and the BYEs' answers.
fn release(d: &mut Dialer, calls: &[u64]) -> anyhow::Result<()> {
    let bye_before = d.bye_ok();
    let mut open: HashSet<u64> = calls.iter().copied().collect();
    for &c in calls {
        d.hang_up(c)?;
    }
    let deadline = Instant::now() + DRAIN;
    while (!open.is_empty() || d.bye_ok() - bye_before < calls.len() as u64) && Instant::now() < deadline {
        if let Some((_, CallEvent::CustomerEnded { call, .. })) =
            next_event(d, Instant::now() + Duration::from_millis(50))?
        {
            open.remove(&call);
        }
    }
    Ok(())
}

fn rate_phase(d: &mut Dialer, args: &SipArgs) -> anyhow::Result<(Tally, u64, u64)> {
    let scheduled = (args.rate * args.seconds).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let bye_before = d.bye_ok();
    let mut t = Tally::default();
    // Calls in flight: dialled and not ended, with their dial time.
    let mut in_flight: HashMap<u64, Instant> = HashMap::new();
    let start = Instant::now();
    let window_end = start + Duration::from_secs_f64(args.seconds);
    let due = |n: u64| start + interval * u32::try_from(n).unwrap_or(u32::MAX);
    // A call holds its slot until sipp answered its BYE: calls in flight, plus ended calls whose
    // BYE is not answered yet.
    let busy = |t: &Tally, in_flight: &HashMap<u64, Instant>, d: &Dialer| {
        let unanswered = t.ended_answered.saturating_sub(d.bye_ok() - bye_before);
        in_flight.len() + usize::try_from(unanswered).unwrap_or(usize::MAX)
    };
    loop {
        let now = Instant::now();
        while t.launched < scheduled
            && now < window_end
            && due(t.launched) <= now
            && busy(&t, &in_flight, d) < args.concurrency
        {
            let at = Instant::now();
            let call = d.dial()?;
            t.first_launch.get_or_insert(at);
            in_flight.insert(call, at);
            t.launched += 1;
        }
        t.peak_in_flight = t.peak_in_flight.max(busy(&t, &in_flight, d));
        let launching = t.launched < scheduled && now < window_end;
        if !launching && in_flight.is_empty() {
            break;
        }
        let wake = if launching && busy(&t, &in_flight, d) < args.concurrency {
            due(t.launched)
        } else if launching {
            now + Duration::from_millis(5) // at the cap: the next end frees a slot
        } else {
            window_end.max(now) + RING_TIMEOUT + DRAIN
        };
        if !launching && now > window_end + RING_TIMEOUT + DRAIN {
            break;
        }
        let Some((at, ev)) = next_event(d, wake)? else { continue };
        match ev {
            CallEvent::CustomerAnswered { call, .. } => {
                if let Some(sent) = in_flight.get(&call) {
                    t.setups_ms.push(at.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
                    t.last_setup = Some(at);
                    t.completed += 1;
                    t.byes += 1;
                    d.hang_up(call)?;
                }
            }
            CallEvent::CustomerEnded { call, end } if in_flight.remove(&call).is_some() => t.ended(&end),
            _ => {}
        }
    }
    let unfinished = in_flight.len() as u64;
    // The last BYEs' answers.
    let deadline = Instant::now() + DRAIN;
    while d.bye_ok() - bye_before < t.byes && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let bye_unanswered = t.byes.saturating_sub(d.bye_ok() - bye_before);
    Ok((t, unfinished, bye_unanswered))
}

/// Runs both phases.
pub fn measure(args: &SipArgs) -> anyhow::Result<SipReport> {
    args.validate()?;
    let (mut sipp, carrier) = start_sipp(args)?;
    let mut d = Dialer::start(args.core, carrier)?;
    // Wait for the shard to bind its socket and first ports.
    std::thread::sleep(Duration::from_millis(200));
    let (mut rss_before, mut rss_held, mut held_n, mut hold_failed) = (0, 0, 0, 0);
    if args.hold > 0 {
        rss_before = rss_kib()?;
        let (held, failed) = hold_phase(&mut d, args.hold, args.rate)?;
        // Let the last answers' ACKs and media set-up land before reading.
        std::thread::sleep(Duration::from_millis(500));
        rss_held = rss_kib()?;
        held_n = held.len() as u64;
        hold_failed = failed;
        release(&mut d, &held)?;
    }
    let (t, unfinished, bye_unanswered) = rate_phase(&mut d, args)?;
    if let Some(status) = sipp.child.try_wait()? {
        bail!("sipp exited during the run ({status}):\n{}", sipp.tail());
    }
    drop(d);
    drop(sipp);
    let mut setups = t.setups_ms.clone();
    setups.sort_by(f64::total_cmp);
    let span = match (t.first_launch, t.last_setup) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let failed = t.rejected + t.no_answer + bye_unanswered + unfinished;
    Ok(SipReport {
        rate: args.rate,
        seconds: args.seconds,
        concurrency: args.concurrency,
        scheduled: (args.rate * args.seconds).round() as u64,
        launched: t.launched,
        calls_per_s: if span > 0.0 { t.completed as f64 / span } else { 0.0 },
        completed: t.completed,
        failed,
        rejected: t.rejected,
        no_answer: t.no_answer,
        bye_unanswered,
        unfinished,
        setup_p50_ms: percentile(&setups, 50.0),
        setup_p99_ms: percentile(&setups, 99.0),
        setup_max_ms: setups.last().copied().unwrap_or(0.0),
        peak_in_flight: t.peak_in_flight,
        hold: args.hold,
        held: held_n,
        hold_failed,
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        bytes_per_call: if held_n > 0 {
            rss_held.saturating_sub(rss_before) as f64 * 1024.0 / held_n as f64
        } else {
            0.0
        },
        core: args.core,
        sipp_core: args.sipp_core,
        load_avg: std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string(),
    })
}

/// `kakeru-bench sip`.
pub fn run(args: &SipArgs) -> anyhow::Result<()> {
    let r = measure(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "sip: rate {} /s for {} s (cap {}): {:.1} set-ups/s, {} failed of {} launched ({} scheduled), \
             set-up p50 {:.2} ms p99 {:.2} ms; {} calls held: {:.0} bytes per call ({} failed); load {}",
            r.rate,
            r.seconds,
            r.concurrency,
            r.calls_per_s,
            r.failed,
            r.launched,
            r.scheduled,
            r.setup_p50_ms,
            r.setup_p99_ms,
            r.held,
            r.bytes_per_call,
            r.hold_failed,
            r.load_avg
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bye_success_is_told_from_other_responses() {
        let ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4\r\nCall-ID: abc@h\r\nCSeq: 2 BYE\r\n\r\n";
        assert_eq!(bye_success_call_id(ok), Some(&b"abc@h"[..]));
        let compact = b"SIP/2.0 200 OK\r\ni: x1\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(bye_success_call_id(compact), Some(&b"x1"[..]));
        let invite_ok = b"SIP/2.0 200 OK\r\nCall-ID: abc@h\r\nCSeq: 1 INVITE\r\n\r\nv=0 BYE\r\n";
        assert_eq!(bye_success_call_id(invite_ok), None);
        let refused = b"SIP/2.0 481 No call\r\nCall-ID: abc@h\r\nCSeq: 2 BYE\r\n\r\n";
        assert_eq!(bye_success_call_id(refused), None);
        assert_eq!(bye_success_call_id(b"BYE sip:x SIP/2.0\r\n\r\n"), None);
    }

    #[test]
    fn percentiles_by_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let base = SipArgs {
            seconds: 1.0,
            rate: 10.0,
            concurrency: 10,
            hold: 0,
            core: 0,
            sipp_core: 1,
            sipp_bin: "sipp".into(),
            json: true,
        };
        for (args, flag) in [
            (SipArgs { rate: 0.0, ..base.clone() }, "--rate"),
            (SipArgs { rate: f64::NAN, ..base.clone() }, "--rate"),
            (SipArgs { seconds: -1.0, ..base.clone() }, "--seconds"),
            (SipArgs { concurrency: 0, ..base.clone() }, "--concurrency"),
            (SipArgs { hold: MAX_HOLD + 1, ..base.clone() }, "--hold"),
        ] {
            let e = args.validate().expect_err("refused").to_string();
            assert!(e.contains(flag), "{e}");
        }
        base.validate().expect("valid");
    }

    /// A short run against the real sipp: every call set up and torn down, memory measured.
    #[test]
    fn a_short_run_against_sipp() {
        let args = SipArgs {
            seconds: 2.0,
            rate: 200.0,
            concurrency: 100,
            hold: 100,
            core: 0,
            sipp_core: 1,
            sipp_bin: "sipp".into(),
            json: true,
        };
        let r = measure(&args).expect("sipp is installed (scripts/services.sh installs sip-tester)");
        assert_eq!(r.failed, 0, "{r:?}");
        assert_eq!((r.held, r.hold_failed), (100, 0), "{r:?}");
        assert!(r.completed >= 390 && r.completed <= 400, "{r:?}");
        assert!(r.calls_per_s > 150.0, "{r:?}");
        assert!(r.setup_p50_ms > 0.0 && r.setup_p50_ms <= r.setup_p99_ms, "{r:?}");
        assert!(r.bytes_per_call > 0.0, "{r:?}");
    }
}
