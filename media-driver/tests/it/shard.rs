//! Shards on real loopback sockets: relay through a call, both drivers, recording files.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use media::recording::read_recording;
use media::rtp::{self, HeaderFields};
use media::shard::{CallId, Control, Report};
use media::{CallConfig, Codec, LegConfig, RecordingId, SocketId};
use media_driver::shard::{Input, ShardApp, ShardCtx};
use media_driver::{self as driver, DriverChoice, DriverKind, ShardConfig, ShardHandle};

const CUSTOMER_SOCKET: SocketId = SocketId(11);
const AGENT_SOCKET: SocketId = SocketId(12);
const CALL: CallId = CallId(7);
const PACKETS: u16 = 50;
/// Bounds a blocking receive so a broken relay fails the test instead of hanging it.
const RECV_BOUND: Duration = Duration::from_secs(10);

fn bind() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("invariant: loopback bind");
    s.set_read_timeout(Some(RECV_BOUND)).expect("invariant: timeout is non-zero");
    s
}

/// A blocking receive within `RECV_BOUND`. A receive interrupted by a signal (EINTR) is retried:
/// that is the test process being signalled, not a lost packet.
fn recv(s: &UdpSocket, buf: &mut [u8], what: &str) -> (usize, SocketAddr) {
    loop {
        match s.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("{what} within {RECV_BOUND:?}: {e}"),
            Ok(r) => break r,
        }
    }
}

/// The driver a test of `wanted` (io_uring or compio) runs on here. Where the kernel refuses it the
/// shard falls back to epoll, and the test then says so: it tested the fallback, not `wanted`. In a
/// CI run (`CI=true`) that is a failure unless `KAKERU_TEST_ALLOW_EPOLL=1` accepts it.
fn expected_driver(wanted: DriverKind, available: bool) -> DriverKind {
    if available {
        return wanted;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci || std::env::var_os("KAKERU_TEST_ALLOW_EPOLL").is_some(),
        "{wanted:?} is unavailable on this kernel and CI=true: this test would only test the epoll fallback"
    );
    eprintln!("{wanted:?} unavailable here: this test ran on the epoll fallback");
    DriverKind::Epoll
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("invariant: bound socket has an address")
}

pub(crate) fn leg(socket: SocketId, remote: SocketAddr, ssrc: u32, initial_seq: u16) -> Box<LegConfig> {
    Box::new(LegConfig {
        rtp_socket: socket,
        rtcp_socket: None,
        remote_rtp: remote,
        remote_rtcp: None,
        codec: Codec::Pcmu,
        telephone_event_pt: None,
        ssrc,
        initial_seq,
        initial_timestamp: 1000,
        inband_dtmf: false,
    })
}

/// Wait for a report matching `f`, collecting the others.
fn wait_for(shard: &ShardHandle<impl Send + 'static>, mut f: impl FnMut(&Report) -> bool) -> Report {
    loop {
        let r = shard.reports().recv_timeout(RECV_BOUND).expect("shard report within bound");
        if f(&r) {
            return r;
        }
    }
}

fn barrier(shard: &ShardHandle, token: u64) {
    shard.try_send(Control::Ping { token }).expect("shard running");
    wait_for(shard, |r| *r == Report::Pong { token });
}

struct Wired {
    shard: ShardHandle,
    customer: UdpSocket,
    agent: UdpSocket,
    shard_customer: SocketAddr,
    shard_agent: SocketAddr,
}

/// A shard with one bridged call: customer peer <-> shard socket 11 | shard socket 12 <-> agent peer.
fn wired(driver: DriverChoice) -> Wired {
    wired_at(driver, 0)
}

/// [`wired`] on the shard numbered `index` (its metrics' `shard` label).
fn wired_at(driver: DriverChoice, index: usize) -> Wired {
    let shard = driver::spawn(ShardConfig { index, core: None, driver, webrtc_tcp: None }).expect("shard starts");
    let (sc, sa) = (bind(), bind());
    let (customer, agent) = (bind(), bind());
    let (shard_customer, shard_agent) = (addr(&sc), addr(&sa));
    shard.try_send(Control::AddSocket { id: CUSTOMER_SOCKET, socket: sc }).expect("shard running");
    shard.try_send(Control::AddSocket { id: AGENT_SOCKET, socket: sa }).expect("shard running");
    let config = Box::new(CallConfig::new(Instant::now(), 0));
    shard.try_send(Control::AddCall { call: CALL, config }).expect("shard running");
    shard
        .try_send(Control::SetAgent { call: CALL, leg: leg(AGENT_SOCKET, addr(&agent), 0xA6E7_0002, 40_000) })
        .expect("shard running");
    shard
        .try_send(Control::SetCustomer { call: CALL, leg: leg(CUSTOMER_SOCKET, addr(&customer), 0xC0C0_0001, 65_530) })
        .expect("shard running");
    barrier(&shard, 1);
    Wired { shard, customer, agent, shard_customer, shard_agent }
}

fn packet(ssrc: u32, seq: u16, fill: u8) -> Vec<u8> {
    let h = HeaderFields { marker: seq == 0, payload_type: 0, sequence: seq, timestamp: u32::from(seq) * 160, ssrc };
    let mut payload = vec![fill; 160];
    payload[..2].copy_from_slice(&seq.to_be_bytes());
    rtp::build(h, &payload)
}

/// Send `PACKETS` from `from` to `to`; receive them at `at`, which must see each exactly once,
/// from `relay`, with the outgoing stream's SSRC and consecutive sequence numbers.
fn relay_one_way(from: &UdpSocket, to: SocketAddr, at: &UdpSocket, relay: SocketAddr, out_ssrc: u32, first_seq: u16) {
    for seq in 0..PACKETS {
        from.send_to(&packet(0x1234_5678, seq, 0x23), to).expect("loopback send");
    }
    let mut seen = BTreeSet::new();
    let mut buf = [0u8; 1500];
    for _ in 0..PACKETS {
        let (n, src) = recv(at, &mut buf, "relayed packet");
        assert_eq!(src, relay);
        let p = rtp::parse(&buf[..n]).expect("relayed packet parses");
        assert_eq!(p.ssrc, out_ssrc);
        assert_eq!(p.payload.len(), 160);
        let original = u16::from_be_bytes([p.payload[0], p.payload[1]]);
        assert_eq!(p.sequence, first_seq.wrapping_add(original), "headers rewritten, numbering continuous");
        assert!(seen.insert(original), "packet {original} relayed twice");
    }
    assert_eq!(seen.len(), usize::from(PACKETS));
}

fn relays_both_ways(driver: DriverChoice) -> DriverKind {
    let w = wired(driver);
    relay_one_way(&w.customer, w.shard_customer, &w.agent, w.shard_agent, 0xA6E7_0002, 40_000);
    relay_one_way(&w.agent, w.shard_agent, &w.customer, w.shard_customer, 0xC0C0_0001, 65_530);
    w.shard.try_send(Control::EndCall { call: CALL }).expect("shard running");
    let Report::CallEnded { agent, customer, drops, .. } =
        wait_for(&w.shard, |r| matches!(r, Report::CallEnded { .. }))
    else {
        unreachable!("wait_for returned the matching report")
    };
    assert_eq!(agent.expect("agent leg").sent_packets, u64::from(PACKETS));
    assert_eq!(customer.expect("customer leg").sent_packets, u64::from(PACKETS));
    assert_eq!(drops.total(), 0);
    let kind = w.shard.driver();
    let stats = w.shard.shutdown().expect("shard stops cleanly");
    assert_eq!(stats.received, 2 * u64::from(PACKETS));
    assert_eq!(stats.transmits, 2 * u64::from(PACKETS));
    assert_eq!(stats.send_errors, 0);
    kind
}

#[test]
fn epoll_shard_relays_every_packet_once_with_rewritten_headers() {
    assert_eq!(relays_both_ways(DriverChoice::Epoll), DriverKind::Epoll);
}

#[test]
fn uring_shard_relays_every_packet_once_with_rewritten_headers() {
    // Where the kernel refuses io_uring the shard must fall back to epoll, not fail.
    let expected = expected_driver(DriverKind::Uring, driver::io_uring_available());
    assert_eq!(relays_both_ways(DriverChoice::Uring), expected);
    assert_eq!(driver::resolve(DriverChoice::Auto), expected, "the bench's winner, where the kernel has it");
}

#[test]
fn compio_shard_relays_every_packet_once_with_rewritten_headers() {
    let expected = expected_driver(DriverKind::Compio, driver::compio_available());
    assert_eq!(relays_both_ways(DriverChoice::Compio), expected);
}

/// The shard's RTP counters with 4 packets missing from the customer's stream, and the same
/// figures in the Prometheus exposition once the driver flushed them (at shutdown here).
fn counts_rtp_for_metrics(driver: DriverChoice, index: usize) {
    let handle = telemetry::install("media-test").expect("recorder");
    let w = wired_at(driver, index);
    let lost: [u16; 4] = [10, 11, 12, 30];
    let sent: Vec<u16> = (0..PACKETS).filter(|s| !lost.contains(s)).collect();
    for &seq in &sent {
        w.customer.send_to(&packet(0x1234_5678, seq, 0x23), w.shard_customer).expect("loopback send");
    }
    let mut buf = [0u8; 1500];
    for _ in &sent {
        recv(&w.agent, &mut buf, "relayed packet");
    }
    for seq in 0..PACKETS {
        w.agent.send_to(&packet(0x0BAD_CAFE, seq, 0x24), w.shard_agent).expect("loopback send");
    }
    for _ in 0..PACKETS {
        recv(&w.customer, &mut buf, "relayed packet");
    }
    w.shard.try_send(Control::EndCall { call: CALL }).expect("shard running");
    wait_for(&w.shard, |r| matches!(r, Report::CallEnded { .. }));
    let stats = w.shard.shutdown().expect("shard stops cleanly");
    let packets = (sent.len() + usize::from(PACKETS)) as u64;
    let datagram = packet(0, 0, 0).len() as u64;
    assert_eq!((stats.rtp_packets_in, stats.rtp_packets_out), (packets, packets), "{stats:?}");
    assert_eq!((stats.rtp_bytes_in, stats.rtp_bytes_out), (packets * datagram, packets * datagram), "{stats:?}");
    assert_eq!(stats.rtp_lost, lost.len() as u64, "{stats:?}");

    let text = handle.render();
    let shard = format!("shard=\"{index}\"");
    let sample = |name: &str, labels: &[&str]| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    };
    let p = "kakeru_media_rtp_packets_total";
    let b = "kakeru_media_rtp_bytes_total";
    assert_eq!(sample(p, &[&shard, "direction=\"in\""]), packets as f64, "{text}");
    assert_eq!(sample(p, &[&shard, "direction=\"out\""]), packets as f64, "{text}");
    assert_eq!(sample(b, &[&shard, "direction=\"in\""]), (packets * datagram) as f64, "{text}");
    assert_eq!(sample("kakeru_media_rtp_lost_packets_total", &[&shard]), lost.len() as f64, "{text}");
    // One jitter sample per leg as it left (the call was shorter than an RTCP interval).
    assert_eq!(sample("kakeru_media_rtp_jitter_seconds_count", &[&shard]), 2.0, "{text}");
    assert!(text.contains("# TYPE kakeru_media_rtp_jitter_seconds histogram"), "{text}");
}

#[test]
fn epoll_shard_counts_rtp_packets_bytes_loss_and_jitter_for_metrics() {
    counts_rtp_for_metrics(DriverChoice::Epoll, 91);
}

#[test]
fn uring_shard_counts_rtp_packets_bytes_loss_and_jitter_for_metrics() {
    counts_rtp_for_metrics(DriverChoice::Uring, 92);
}

#[test]
fn unknown_call_is_refused_and_changes_nothing() {
    let shard = driver::spawn(ShardConfig::default()).expect("shard starts");
    shard.try_send(Control::EndCall { call: CallId(99) }).expect("shard running");
    let r = wait_for(&shard, |r| matches!(r, Report::Refused { .. }));
    assert_eq!(r, Report::Refused { call: Some(CallId(99)), reason: "no such call" });
    shard.shutdown().expect("shard stops cleanly");
}

fn records_a_readable_file(driver: DriverChoice) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("call-7.wav");
    let w = wired(driver);
    let id = RecordingId(70);
    w.shard
        .try_send(Control::StartRecording { call: CALL, id, path: path.clone(), codec: Codec::Pcmu })
        .expect("shard running");
    barrier(&w.shard, 2);
    relay_one_way(&w.customer, w.shard_customer, &w.agent, w.shard_agent, 0xA6E7_0002, 40_000);
    w.shard.try_send(Control::StopRecording { call: CALL }).expect("shard running");
    let closed = wait_for(&w.shard, |r| matches!(r, Report::RecordingClosed { .. }));
    let Report::RecordingClosed { id: closed_id, path: closed_path, error, bytes, .. } = closed else {
        unreachable!("wait_for returned the matching report")
    };
    assert_eq!((closed_id, &closed_path, error), (id, &path, None));
    let file = std::fs::read(&path).expect("recording file exists");
    assert_eq!(file.len() as u64, bytes);
    let rec = read_recording(&file).expect("recording parses");
    assert_eq!(rec.codec, Codec::Pcmu);
    assert_eq!(rec.declared_frames as usize, rec.customer.len(), "final header counts every frame");
    assert!(rec.customer.contains(&0x23), "customer channel holds the relayed audio");
    w.shard.shutdown().expect("shard stops cleanly");
}

#[test]
fn epoll_shard_writes_a_readable_recording() {
    records_a_readable_file(DriverChoice::Epoll);
}

#[test]
fn uring_shard_writes_a_readable_recording() {
    records_a_readable_file(DriverChoice::Uring);
}

/// A shard app that echoes datagrams on its socket, sends on request and sees every report.
struct EchoApp {
    socket: SocketId,
    bound: Option<std::net::UdpSocket>,
    peer: Option<SocketAddr>,
    reports_seen: u64,
}

/// What the test tells its [`EchoApp`].
#[derive(Debug)]
enum EchoMessage {
    /// Take the app's socket.
    Register,
    /// Send this text to the last peer.
    Say(String),
}

impl ShardApp for EchoApp {
    type Message = EchoMessage;

    fn handle_datagram(
        &mut self,
        _now: Instant,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
        ctx: &mut ShardCtx<'_>,
    ) {
        self.peer = Some(from);
        ctx.send(socket, from, data.to_ascii_uppercase());
    }

    fn handle_message(&mut self, _now: Instant, message: EchoMessage, ctx: &mut ShardCtx<'_>) {
        let text = match message {
            EchoMessage::Register => {
                if let Some(s) = self.bound.take() {
                    ctx.add_app_socket(self.socket, s);
                }
                return;
            }
            EchoMessage::Say(text) => text,
        };
        if let Some(peer) = self.peer {
            ctx.send(self.socket, peer, text.into_bytes());
            // A control applied from inside the app: its report comes back to the app first.
            ctx.control(Control::Ping { token: 5 });
        }
    }

    fn handle_report(&mut self, _now: Instant, report: Report, ctx: &mut ShardCtx<'_>) {
        self.reports_seen += 1;
        if let Report::Pong { token } = report {
            ctx.report(Report::Pong { token: token + 1000 });
        }
    }

    fn handle_timeout(&mut self, _now: Instant, _ctx: &mut ShardCtx<'_>) {}

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[test]
fn a_hosted_app_gets_its_datagrams_messages_and_the_reports_on_epoll() {
    hosted_app(DriverChoice::Epoll, DriverKind::Epoll);
}

#[test]
fn a_hosted_app_gets_its_datagrams_messages_and_the_reports_on_io_uring() {
    let expected = expected_driver(DriverKind::Uring, driver::io_uring_available());
    hosted_app(DriverChoice::Auto, expected);
}

fn hosted_app(choice: DriverChoice, expected: DriverKind) {
    let app_socket = bind();
    let app_addr = addr(&app_socket);
    let app = EchoApp { socket: SocketId(1), bound: Some(app_socket), peer: None, reports_seen: 0 };
    let config = ShardConfig { driver: choice, ..ShardConfig::default() };
    let shard = driver::spawn_with_app(config, app).expect("shard starts");
    assert_eq!(shard.driver(), expected);
    // First message: the app registers its socket.
    shard.try_send(Input::App(EchoMessage::Register)).expect("shard running");
    barrier_app(&shard, 1);
    let peer = bind();
    peer.send_to(b"invite", app_addr).expect("loopback send");
    let mut buf = [0u8; 64];
    let (n, _) = recv(&peer, &mut buf, "echo");
    assert_eq!(&buf[..n], b"INVITE");
    shard.try_send(Input::App(EchoMessage::Say("bye".to_string()))).expect("shard running");
    let (n, _) = recv(&peer, &mut buf, "app's datagram");
    assert_eq!(&buf[..n], b"bye");
    // The Ping the app applied came back to the app, which forwarded it changed.
    wait_for(&shard, |r| *r == Report::Pong { token: 1005 });
    let stats = shard.shutdown().expect("clean stop");
    assert_eq!(stats.unrouted, 0);
}

/// With an app, Pongs reach the app, which forwards them as token + 1000.
fn barrier_app(shard: &ShardHandle<EchoMessage>, token: u64) {
    shard.try_send(Control::Ping { token }).expect("shard running");
    wait_for(shard, |r| *r == Report::Pong { token: token + 1000 });
}

/// Where the child process of [`a_recording_cut_by_kill_9_opens_and_plays`] records.
const CHILD_RECORDING: &str = "KAKERU_TEST_RECORDING_CHILD";

/// The child of [`a_recording_cut_by_kill_9_opens_and_plays`] (run only by it, as a process of
/// its own): a shard records a call whose customer sends audio every 20 ms, until the process is
/// killed.
#[test]
#[ignore = "the child process of a_recording_cut_by_kill_9_opens_and_plays"]
fn recording_child_process() {
    let path = std::env::var_os(CHILD_RECORDING).expect("started by the kill -9 test");
    let w = wired(DriverChoice::Auto);
    let control = Control::StartRecording { call: CALL, id: RecordingId(9), path: path.into(), codec: Codec::Pcmu };
    w.shard.try_send(control).expect("shard running");
    barrier(&w.shard, 2);
    println!("recording");
    for seq in 0u16.. {
        w.customer.send_to(&packet(0x1234_5678, seq, 0x23), w.shard_customer).expect("loopback send");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_recording_cut_by_kill_9_opens_and_plays() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cut.wav");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["shard::recording_child_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_RECORDING, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("piped");
    let started = BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.contains("recording"));
    assert!(started, "the child started recording");
    // Three and a half seconds of audio: three whole seconds are written (a second at a time),
    // the last half second is in the child's memory when it dies.
    std::thread::sleep(Duration::from_millis(3500));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let file = std::fs::read(&path).expect("the recording survives");
    let rec = read_recording(&file).expect("a recording cut by kill -9 opens");
    let seconds = rec.customer.len() as f64 / 8000.0;
    eprintln!("kill -9 after 3.5 s of audio: {seconds} s kept");
    assert!((2.0..=3.6).contains(&seconds), "{seconds} s of audio kept");
    assert_eq!(rec.declared_frames as usize, rec.customer.len(), "the header counts what was written");
    // It plays: the customer's relayed audio is there, the silent agent channel is silence.
    assert!(rec.customer.iter().filter(|&&b| b == 0x23).count() > rec.customer.len() / 2, "customer audio");
    assert!(rec.agent.iter().all(|&b| b == Codec::Pcmu.silence()), "agent channel silent");
}

/// A small tmpfs mounted for one test (the test runs as root, as the suite does), unmounted when
/// dropped, a failing test included. A mount refused fails the test: it never skips.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "kakeru-test", &dir.path().to_string_lossy()])
            .status()
            .expect("mount runs");
        assert!(ok.success(), "mounting a tmpfs (the test needs root)");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

/// Talks for `n` packets of 20 ms from sequence `first`, in real time (the recording is written by
/// the call's clock), each received relayed at the agent.
fn talk(w: &Wired, first: u16, n: u16) {
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    for (i, seq) in (first..first + n).enumerate() {
        w.customer.send_to(&packet(0x1234_5678, seq, 0x23), w.shard_customer).expect("loopback send");
        recv(&w.agent, &mut buf, "relayed packet");
        std::thread::sleep(
            (start + Duration::from_millis(20 * (i as u64 + 1))).saturating_duration_since(Instant::now()),
        );
    }
}

/// Records `n` packets of talk from sequence `first` into `path`: the closed recording's error and bytes.
fn record_talk(w: &Wired, id: u64, path: &std::path::Path, first: u16, n: u16) -> (Option<String>, u64) {
    let control = Control::StartRecording { call: CALL, id: RecordingId(id), path: path.into(), codec: Codec::Pcmu };
    w.shard.try_send(control).expect("shard running");
    barrier(&w.shard, id);
    talk(w, first, n);
    w.shard.try_send(Control::StopRecording { call: CALL }).expect("shard running");
    match wait_for(&w.shard, |r| matches!(r, Report::RecordingClosed { .. })) {
        Report::RecordingClosed { error, bytes, .. } => (error, bytes),
        _ => unreachable!("wait_for returned the matching report"),
    }
}

/// The recordings' disk fills during a call: the recording stops with a counted error (the shard's
/// counter and `kakeru_media_recording_errors_total`), the call goes on relaying, the file holds a
/// header that claims no more than was written, and once space returns the next recording is whole.
#[test]
fn a_full_disk_stops_the_recording_not_the_call() {
    let handle = telemetry::install("media-test").expect("recorder");
    let disk = Tmpfs::mount("64k");
    // Leave 5 pages: the first second of stereo G.711 (16,000 bytes) fits, the second does not.
    let filler = disk.0.path().join("filler");
    std::fs::write(&filler, vec![0u8; 44 << 10]).expect("filler");
    let w = wired_at(DriverChoice::Epoll, 93);
    let path = disk.0.path().join("call-7.wav");
    let (error, _) = record_talk(&w, 71, &path, 0, 120);
    let error = error.expect("the recording reports its error");
    assert!(error.contains("space"), "{error}");
    let file = std::fs::read(&path).expect("the cut recording stays");
    let rec = read_recording(&file).expect("the cut recording parses");
    assert_eq!(rec.declared_frames, 8000, "the header counts the second written before the disk filled");
    assert!(rec.declared_frames as usize <= rec.customer.len(), "and no more than the file holds");
    assert!(rec.customer[..8000].contains(&0x23), "the customer's audio of that second");
    // The call goes on.
    talk(&w, 150, 50);
    // Space returns: the next recording is whole.
    std::fs::remove_file(&filler).expect("free the disk");
    let path2 = disk.0.path().join("call-7b.wav");
    let (error, bytes) = record_talk(&w, 72, &path2, 200, 60);
    assert_eq!(error, None);
    let file = std::fs::read(&path2).expect("recording file exists");
    assert_eq!(file.len() as u64, bytes);
    let rec = read_recording(&file).expect("recording parses");
    assert_eq!(rec.declared_frames as usize, rec.customer.len(), "final header counts every frame");
    assert!(rec.declared_frames >= 50 * 160, "{} frames", rec.declared_frames);
    let stats = w.shard.shutdown().expect("shard stops cleanly");
    assert_eq!(stats.recording_errors, 1, "{stats:?}");
    let text = handle.render();
    assert!(text.contains("kakeru_media_recording_errors_total{shard=\"93\"} 1"), "{text}");
}
