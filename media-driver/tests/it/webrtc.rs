//! The browser phone's leg on a real shard over loopback: a str0m peer as the browser (full ICE,
//! DTLS-SRTP, Opus or PCMU), a plain RTP peer as the customer, bridged in one call. Tones both
//! ways are checked by frequency, the recording holds both channels, RFC 4733 digits from the
//! browser reach the call, and a 3 s network cut is reported (the leg down within
//! `MEDIA_SILENCE`) and an ICE restart brings the audio back on the same leg. Over TCP alone
//! (RFC 6544's passive candidate, RFC 4571 framing) the same call talks both ways, and garbage, a
//! frame over the limit and a connection naming no leg are closed and counted while it goes on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use media::dtmf::goertzel_power;
use media::recording::read_recording;
use media::rtp::{self, HeaderFields};
use media::shard::{CallId, Control, Report, WebRtcSupervisorEvent};
use media::voice::{opus_available, OpusTranscoder};
use media::{CallConfig, Codec, DtmfKind, Event, LegConfig, RecordingId, Role, SocketId};
use media_driver::{self as driver, DriverChoice, ShardConfig, ShardHandle};
use sim::browser::{passive_tcp_candidate, Browser, PT_OPUS, PT_PCMU, PT_TELEPHONE_EVENT_48K, PT_TELEPHONE_EVENT_8K};

const CUSTOMER_SOCKET: SocketId = SocketId(21);
const AGENT_SOCKET: SocketId = SocketId(22);
const CALL: CallId = CallId(9);
const AGENT_HZ: f32 = 440.0;
const CUSTOMER_HZ: f32 = 1000.0;
const BOUND: Duration = Duration::from_secs(10);

fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("invariant: loopback bind")
}

/// A PCMU leg with RFC 4733 digits on payload type 101.
fn leg(socket: SocketId, remote: SocketAddr, ssrc: u32) -> Box<LegConfig> {
    let mut l = crate::shard::leg(socket, remote, ssrc, 100);
    l.telephone_event_pt = Some(101);
    l
}

/// 20 ms of a tone at 8 kHz, frame `n`.
fn tone(hz: f32, n: u32) -> Vec<i16> {
    (0..160)
        .map(|i| {
            let t = (n * 160 + i) as f32 / 8000.0;
            (6000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

fn pcmu(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| Codec::Pcmu.encode(s)).collect()
}

fn assert_tone(samples: &[i16], hz: f32, other: f32, what: &str) {
    assert!(samples.len() >= 4000, "{what}: only {} samples", samples.len());
    let (p, q) = (goertzel_power(samples, hz, 8000.0), goertzel_power(samples, other, 8000.0));
    assert!(p > 1e5 && p > 20.0 * q, "{what}: {hz} Hz power {p}, {other} Hz power {q}");
}

struct Run {
    shard: ShardHandle,
    reports: Vec<Report>,
}

impl Run {
    fn pump(&mut self) {
        while let Ok(r) = self.shard.reports().try_recv() {
            self.reports.push(r);
        }
    }

    fn wait(&mut self, what: &str, mut f: impl FnMut(&Report) -> bool) -> Report {
        let end = Instant::now() + BOUND;
        loop {
            if let Some(i) = self.reports.iter().position(&mut f) {
                return self.reports.remove(i);
            }
            let r = self.shard.reports().recv_timeout(end.saturating_duration_since(Instant::now()));
            self.reports.push(r.unwrap_or_else(|_| panic!("{what} within {BOUND:?}; reports: {:?}", self.reports)));
        }
    }
}

/// A shard whose browser phones get a TCP candidate (a listener on a free loopback port).
fn shard_with_tcp(driver: DriverChoice, index: usize) -> ShardHandle {
    driver::spawn(ShardConfig { index, core: None, driver, webrtc_tcp: Some("127.0.0.1:0".parse().unwrap()) })
        .expect("shard starts")
}

/// A browser (str0m) offering Opus when `opus_offered` and PCMU, set up as the agent leg of
/// [`CALL`] on the shard's `shard_agent` socket and connected (ICE, DTLS); whether Opus was chosen.
fn browser_leg(run: &mut Run, shard_agent: SocketAddr, opus_offered: bool) -> (Browser, bool) {
    browser_leg_on(run, shard_agent, opus_offered, false)
}

/// [`browser_leg`], the browser reaching the shard over TCP alone when `tcp`.
fn browser_leg_on(run: &mut Run, shard_agent: SocketAddr, opus_offered: bool, tcp: bool) -> (Browser, bool) {
    let now = Instant::now();
    let (mut browser, offer) = if tcp {
        Browser::offer_tcp(now, opus_offered).expect("browser offers")
    } else {
        Browser::offer(now, "127.0.0.1:0".parse().unwrap(), opus_offered).expect("browser offers")
    };
    assert!(offer.contains("opus") == opus_offered && offer.contains("PCMU"), "{offer}");
    run.shard
        .try_send(Control::SetWebRtcAgent {
            call: CALL,
            leg: leg(AGENT_SOCKET, shard_agent, 0xA6E7),
            local: shard_agent,
            offer,
        })
        .unwrap();
    let Report::WebRtcAnswer { sdp, .. } =
        run.wait("the answer", |r| matches!(r, Report::WebRtcAnswer { .. } | Report::WebRtcFailed { .. }))
    else {
        panic!("offer refused: {:?}", run.reports)
    };
    assert!(sdp.contains("a=ice-lite"), "ICE-lite answer: {sdp}");
    assert!(sdp.contains(&format!("{}", shard_agent.port())), "our host candidate: {sdp}");
    if tcp {
        let at = passive_tcp_candidate(&sdp).expect("our passive TCP candidate");
        assert_eq!(at.ip(), shard_agent.ip(), "the TCP candidate is at the UDP one's address: {sdp}");
    }
    browser.answer(&sdp).expect("answer accepted");
    let opus = opus_offered && opus_available();
    let until = Instant::now() + BOUND;
    while !browser.is_connected() {
        assert!(Instant::now() < until, "ICE and DTLS connect within {BOUND:?}");
        browser.step(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    run.wait("the leg connected", |r| *r == Report::WebRtcConnection { call: CALL, connected: true });
    let audio_pt = if opus { PT_OPUS } else { PT_PCMU };
    assert_eq!(browser.audio_pt(), Some(audio_pt), "the shard's answer chose {}", if opus { "Opus" } else { "PCMU" });
    (browser, opus)
}

/// What the customer and the browser heard while [`converse`] ran.
struct Conversation {
    at_customer: Vec<i16>,
    at_browser: Vec<i16>,
}

/// The browser says [`AGENT_HZ`] (keying digit 5 in the middle, RFC 4733) and the customer
/// [`CUSTOMER_HZ`] for `frames` 20 ms frames; what each heard after the first second.
fn converse(
    browser: &mut Browser,
    customer: &UdpSocket,
    shard_customer: SocketAddr,
    opus: bool,
    first: u32,
    frames: u32,
) -> Conversation {
    let (audio_pt, tele_pt, ticks) =
        if opus { (PT_OPUS, PT_TELEPHONE_EVENT_48K, 960) } else { (PT_PCMU, PT_TELEPHONE_EVENT_8K, 160) };
    let mut encoder = OpusTranscoder::new();
    let mut decoder = OpusTranscoder::new();
    let (mut at_customer, mut at_browser) = (Vec::new(), Vec::new());
    let mut scratch = Vec::new();
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    for i in 0..frames {
        let n = first + i;
        let due = start + Duration::from_millis(20 * u64::from(i));
        while Instant::now() < due {
            browser.step(Instant::now()).unwrap();
            while let Ok((len, from)) = customer.recv_from(&mut buf) {
                assert_eq!(from, shard_customer);
                let p = rtp::parse(&buf[..len]).expect("RTP to the customer");
                if p.payload_type == 0 && i > 50 {
                    Codec::Pcmu.decode_into(p.payload, &mut at_customer);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let now = Instant::now();
        // The browser speaks 440 Hz; in the middle it keys digit 5 (RFC 4733, 3 packets + 3 ends).
        let g711 = pcmu(&tone(AGENT_HZ, n));
        let ts = n * ticks;
        if opus {
            encoder.as_mut().unwrap().encode(Codec::Pcmu, &g711, &mut scratch).unwrap();
            browser.send(now, audio_pt, ts, i == 0, &scratch).unwrap();
        } else {
            browser.send(now, audio_pt, ts, i == 0, &g711).unwrap();
        }
        if (100..106).contains(&i) {
            let end = i >= 103;
            let duration = ((i - 99) * ticks) as u16;
            let event = [5u8, if end { 0x80 | 10 } else { 10 }, (duration >> 8) as u8, duration as u8];
            browser.send(now, tele_pt, (first + 100) * ticks, i == 100, &event).unwrap();
        }
        // The customer speaks 1000 Hz.
        let h = HeaderFields { marker: n == 0, payload_type: 0, sequence: n as u16, timestamp: n * 160, ssrc: 0x5555 };
        customer.send_to(&rtp::build(h, &pcmu(&tone(CUSTOMER_HZ, n))), shard_customer).unwrap();
        while let Some(p) = browser.poll_packet() {
            if i <= 50 {
                continue;
            }
            if p.pt == PT_PCMU {
                Codec::Pcmu.decode_into(&p.payload, &mut at_browser);
            } else if p.pt == PT_OPUS {
                decoder.as_mut().unwrap().decode(Codec::Pcmu, &p.payload, &mut scratch).unwrap();
                Codec::Pcmu.decode_into(&scratch, &mut at_browser);
            }
        }
    }
    Conversation { at_customer, at_browser }
}

/// The browser phone on a shard, bridged to an RTP customer, talking for `secs` seconds. The
/// shard offers its TCP candidate too: the browser, with UDP, pairs over UDP.
fn talk(opus_offered: bool) {
    let shard = shard_with_tcp(DriverChoice::Auto, 0);
    let mut run = Run { shard, reports: Vec::new() };
    let (sc, sa) = (bind(), bind());
    let shard_customer = sc.local_addr().unwrap();
    let shard_agent = sa.local_addr().unwrap();
    let customer = bind();
    customer.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    run.shard.try_send(Control::AddSocket { id: CUSTOMER_SOCKET, socket: sc }).unwrap();
    run.shard.try_send(Control::AddSocket { id: AGENT_SOCKET, socket: sa }).unwrap();
    run.shard.try_send(Control::AddCall { call: CALL, config: Box::new(CallConfig::new(Instant::now(), 0)) }).unwrap();

    let (mut browser, opus) = browser_leg(&mut run, shard_agent, opus_offered);
    let (audio_pt, ticks) = if opus { (PT_OPUS, 960) } else { (PT_PCMU, 160) };

    // The customer joins and the call is recorded.
    let rec_dir = tempfile::tempdir().unwrap();
    let rec_path = rec_dir.path().join("call.wav");
    run.shard
        .try_send(Control::SetCustomer {
            call: CALL,
            leg: leg(CUSTOMER_SOCKET, customer.local_addr().unwrap(), 0xC0C0),
        })
        .unwrap();
    run.shard
        .try_send(Control::StartRecording {
            call: CALL,
            id: RecordingId(1),
            path: rec_path.clone(),
            codec: Codec::Pcmu,
        })
        .unwrap();

    let frames = 150u32; // 3 s
    let heard = converse(&mut browser, &customer, shard_customer, opus, 0, frames);
    let (at_customer, at_browser) = (heard.at_customer, heard.at_browser);
    let mut encoder = OpusTranscoder::new();
    let mut scratch = Vec::new();
    let mut buf = [0u8; 1500];
    assert_tone(&at_customer, AGENT_HZ, CUSTOMER_HZ, "the customer hears the browser");
    assert_tone(&at_browser, CUSTOMER_HZ, AGENT_HZ, "the browser hears the customer");
    run.wait("the browser's digit", |r| {
        matches!(r, Report::Event { event: Event::Dtmf { role: Role::Agent, digit: '5', kind: DtmfKind::Rfc4733 }, .. })
    });

    // The network cut for 3 s, then an ICE restart (the page's 再接続): the same leg and call, and
    // the browser's audio reaches the customer again.
    browser.set_cut(true);
    let cut_end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < cut_end {
        browser.step(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    browser.set_cut(false);
    // The shard noticed the silent path within the cut (`MEDIA_SILENCE`), long before ICE-lite's
    // 15 s: the control plane takes the agent off the floor while the leg is down.
    let down = run.wait("the leg reported down", |r| matches!(r, Report::WebRtcConnection { connected: false, .. }));
    assert_eq!(down, Report::WebRtcConnection { call: CALL, connected: false });
    let offer = browser.restart().unwrap();
    run.shard.try_send(Control::WebRtcOffer { call: CALL, offer }).unwrap();
    let Report::WebRtcAnswer { sdp, .. } =
        run.wait("the restart's answer", |r| matches!(r, Report::WebRtcAnswer { .. } | Report::WebRtcFailed { .. }))
    else {
        panic!("restart refused: {:?}", run.reports)
    };
    browser.answer(&sdp).unwrap();
    while customer.recv_from(&mut buf).is_ok() {} // what the shard sent before and during the cut
    let mut after = Vec::new();
    let restart = Instant::now();
    for n in 0..100u32 {
        let due = restart + Duration::from_millis(20 * u64::from(n));
        while Instant::now() < due {
            browser.step(Instant::now()).unwrap();
            while let Ok((len, _)) = customer.recv_from(&mut buf) {
                let p = rtp::parse(&buf[..len]).expect("RTP to the customer");
                if p.payload_type == 0 && n > 25 {
                    Codec::Pcmu.decode_into(p.payload, &mut after);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let g711 = pcmu(&tone(AGENT_HZ, frames + n));
        let ts = (frames + 100 + n) * ticks;
        if opus {
            encoder.as_mut().unwrap().encode(Codec::Pcmu, &g711, &mut scratch).unwrap();
            browser.send(Instant::now(), audio_pt, ts, false, &scratch).unwrap();
        } else {
            browser.send(Instant::now(), audio_pt, ts, false, &g711).unwrap();
        }
    }
    assert!(browser.is_connected(), "the browser is connected after the restart");
    run.wait("the leg reported up again", |r| *r == Report::WebRtcConnection { call: CALL, connected: true });
    assert_tone(&after, AGENT_HZ, CUSTOMER_HZ, "the customer hears the browser after the cut and the ICE restart");

    run.shard.try_send(Control::EndCall { call: CALL }).unwrap();
    let Report::CallEnded { agent, customer: cust, .. } =
        run.wait("the end", |r| matches!(r, Report::CallEnded { .. }))
    else {
        unreachable!()
    };
    assert!(agent.unwrap().received.packets > 100, "{agent:?}");
    assert!(cust.unwrap().received.packets > 100, "{cust:?}");
    run.wait("the recording closed", |r| matches!(r, Report::RecordingClosed { .. }));
    let rec = read_recording(&std::fs::read(&rec_path).unwrap()).expect("recording reads");
    let decode = |ch: &[u8]| -> Vec<i16> { ch.iter().map(|&b| rec.codec.decode(b)).collect() };
    let (cust, agent) = (decode(&rec.customer), decode(&rec.agent));
    // Its second second, while both talked (the cut and the restart come after the third).
    assert!(cust.len() >= 16_000 && agent.len() >= 16_000, "{} and {} samples", cust.len(), agent.len());
    assert_tone(&cust[8_000..16_000], CUSTOMER_HZ, AGENT_HZ, "the recording's customer channel");
    assert_tone(&agent[8_000..16_000], AGENT_HZ, CUSTOMER_HZ, "the recording's agent channel");
    run.pump();
}

#[test]
fn browser_phone_with_opus_talks_both_ways_and_is_recorded() {
    assert!(opus_available(), "this test needs libopus: run with --features media/opus (scripts/test.sh does)");
    talk(true);
}

#[test]
fn browser_phone_with_pcmu_talks_both_ways_and_is_recorded() {
    talk(false);
}

/// A connection to the shard's TCP port that sends `bytes` and is then closed by the shard (a read
/// ends or fails within a bound).
fn closed_after(to: SocketAddr, bytes: &[u8], what: &str) {
    let mut c = TcpStream::connect(to).expect("connects to the TCP candidate");
    c.write_all(bytes).expect("written");
    c.set_read_timeout(Some(BOUND)).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: the shard closes the connection, got {other:?}"),
    }
}

/// A STUN binding request (RFC 5389) whose USERNAME names `ufrag` (no integrity: no leg has it).
fn binding_request(ufrag: &str) -> Vec<u8> {
    let user = ufrag.as_bytes();
    let padded = user.len().div_ceil(4) * 4;
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&[0x00, 0x06]);
    m.extend_from_slice(&(user.len() as u16).to_be_bytes());
    m.extend_from_slice(user);
    m.resize(20 + 4 + padded, 0);
    m
}

/// RFC 4571: the 2-byte length, then the frame.
fn framed(frame: &[u8]) -> Vec<u8> {
    let mut f = (frame.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(frame);
    f
}

/// The browser phone over TCP alone (its peer drops the answer's UDP candidates): ICE, DTLS and
/// audio both ways through the shard to an RTP customer over RFC 6544's passive candidate. Then
/// garbage, a frame over the limit and a connection naming no leg on the same port are closed and
/// counted (the shard's counters and its metrics), and the call goes on.
fn over_tcp_alone(driver: DriverChoice, index: usize) {
    let metrics = telemetry::install("media-tcp-test").expect("recorder");
    let shard = shard_with_tcp(driver, index);
    let mut run = Run { shard, reports: Vec::new() };
    let (sc, sa) = (bind(), bind());
    let (shard_customer, shard_agent) = (sc.local_addr().unwrap(), sa.local_addr().unwrap());
    let customer = bind();
    customer.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    run.shard.try_send(Control::AddSocket { id: CUSTOMER_SOCKET, socket: sc }).unwrap();
    run.shard.try_send(Control::AddSocket { id: AGENT_SOCKET, socket: sa }).unwrap();
    run.shard.try_send(Control::AddCall { call: CALL, config: Box::new(CallConfig::new(Instant::now(), 0)) }).unwrap();
    let (mut browser, opus) = browser_leg_on(&mut run, shard_agent, opus_available(), true);
    assert!(browser.is_tcp());
    run.shard
        .try_send(Control::SetCustomer {
            call: CALL,
            leg: leg(CUSTOMER_SOCKET, customer.local_addr().unwrap(), 0xC0C0),
        })
        .unwrap();

    // A connection that never says anything: closed after `FIRST_FRAME_WITHIN` (checked below).
    let port = browser.tcp_server().expect("the browser's TCP connection");
    let mut idle = TcpStream::connect(port).expect("connects");
    let idle_since = Instant::now();
    let heard = converse(&mut browser, &customer, shard_customer, opus, 0, 150);
    assert_tone(&heard.at_customer, AGENT_HZ, CUSTOMER_HZ, "over TCP, the customer hears the browser");
    assert_tone(&heard.at_browser, CUSTOMER_HZ, AGENT_HZ, "over TCP, the browser hears the customer");
    run.wait("the browser's digit over TCP", |r| {
        matches!(r, Report::Event { event: Event::Dtmf { role: Role::Agent, digit: '5', kind: DtmfKind::Rfc4733 }, .. })
    });

    // Bad connections on the same port, each closed; the call goes on meanwhile.
    closed_after(port, &framed(&[1, 2, 3, 4]), "a first frame that is not STUN");
    closed_after(port, &[0xFF, 0xFF, 0, 0, 0], "a frame over the limit");
    closed_after(port, &framed(&binding_request("nobody:x")), "a binding request naming no leg");
    let heard = converse(&mut browser, &customer, shard_customer, opus, 150, 100);
    assert_tone(&heard.at_customer, AGENT_HZ, CUSTOMER_HZ, "after the bad connections, the customer hears the browser");
    assert_tone(&heard.at_browser, CUSTOMER_HZ, AGENT_HZ, "after the bad connections, the browser hears the customer");
    assert!(browser.is_connected(), "the browser's own connection stayed up");
    idle.set_read_timeout(Some(BOUND)).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(idle.read(&mut byte), Ok(0) | Err(_)), "the silent connection is closed");
    let waited = idle_since.elapsed();
    assert!(
        waited >= driver::tcp::FIRST_FRAME_WITHIN && waited < driver::tcp::FIRST_FRAME_WITHIN + Duration::from_secs(3),
        "closed {waited:?} after it was opened"
    );

    run.shard.try_send(Control::EndCall { call: CALL }).unwrap();
    run.wait("the end", |r| matches!(r, Report::CallEnded { .. }));
    let Run { shard, .. } = run;
    let tcp = shard.shutdown().expect("the shard stops").tcp;
    println!("{tcp:?}");
    assert_eq!(
        (tcp.garbage, tcp.oversized, tcp.unrouted, tcp.idle),
        (1, 1, 1, 1),
        "each bad connection counted once: {tcp:?}"
    );
    assert_eq!(tcp.accepted, 5, "the browser's and four bad ones: {tcp:?}");
    assert!(tcp.frames_in > 200 && tcp.frames_out > 200, "the call's media went over TCP: {tcp:?}");

    let text = metrics.render();
    let shard = format!("shard=\"{index}\"");
    let sample = |name: &str, label: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&shard) && l.contains(label))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    };
    for reason in ["garbage", "oversized", "unrouted", "idle"] {
        let n = sample("kakeru_media_tcp_closed_total", &format!("reason=\"{reason}\""));
        assert_eq!(n, 1.0, "kakeru_media_tcp_closed_total {reason}: {text}");
    }
    assert_eq!(sample("kakeru_media_tcp_connections_total", "outcome=\"accepted\""), 5.0, "{text}");
    assert_eq!(sample("kakeru_media_tcp_frames_total", "direction=\"in\""), tcp.frames_in as f64, "{text}");
}

#[test]
fn browser_phone_over_tcp_alone_on_io_uring_talks_and_bad_connections_are_closed() {
    over_tcp_alone(DriverChoice::Uring, 31);
}

#[test]
fn browser_phone_over_tcp_alone_on_epoll_talks_and_bad_connections_are_closed() {
    over_tcp_alone(DriverChoice::Epoll, 32);
}

#[test]
fn an_offer_without_audio_we_take_is_refused_by_name() {
    let shard = driver::spawn(ShardConfig { index: 0, core: None, driver: DriverChoice::Auto, webrtc_tcp: None })
        .expect("shard starts");
    let mut run = Run { shard, reports: Vec::new() };
    let sa = bind();
    let local = sa.local_addr().unwrap();
    run.shard.try_send(Control::AddSocket { id: AGENT_SOCKET, socket: sa }).unwrap();
    run.shard.try_send(Control::AddCall { call: CALL, config: Box::new(CallConfig::new(Instant::now(), 0)) }).unwrap();
    for offer in ["v=0\r\nnot sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"] {
        run.shard
            .try_send(Control::SetWebRtcAgent {
                call: CALL,
                leg: leg(AGENT_SOCKET, local, 1),
                local,
                offer: offer.into(),
            })
            .unwrap();
        let r = run.wait("a refusal", |r| matches!(r, Report::WebRtcFailed { .. } | Report::WebRtcAnswer { .. }));
        assert!(matches!(r, Report::WebRtcFailed { call: CALL, .. }), "{r:?}");
    }
    run.shard.try_send(Control::WebRtcOffer { call: CallId(77), offer: String::new() }).unwrap();
    let r = run.wait("a refusal", |r| matches!(r, Report::WebRtcFailed { .. }));
    assert_eq!(r, Report::WebRtcFailed { call: CallId(77), error: "no browser phone on this call".into() });
}

const SUPERVISOR_SOCKET: SocketId = SocketId(23);
const SUPERVISOR_HZ: f32 = 1700.0;

/// What each party heard in one phase of [`a_supervisor_whispers_barges_and_listens_on_a_browser_phones_call`].
#[derive(Default)]
struct Heard {
    browser: Vec<i16>,
    customer: Vec<i16>,
    supervisor: Vec<i16>,
}

/// Whether `hz` is in `samples` (strong), or absent (far under the strongest of `others`).
fn has(samples: &[i16], hz: f32, others: &[f32]) -> bool {
    let p = goertzel_power(samples, hz, 8000.0);
    let o = others.iter().map(|&f| goertzel_power(samples, f, 8000.0)).fold(0.0f32, f32::max);
    assert!(p > 1e5 || p < o / 100.0, "{hz} Hz neither clearly present nor absent: {p} beside {o}");
    p > 1e5
}

/// A supervisor (an RTP leg saying 1,700 Hz) on a call whose agent is a browser phone (Opus): in
/// ささやき the browser hears the supervisor and the customer does not, in 割込 both do, in
/// モニタリング neither does and the supervisor hears both parties.
#[test]
fn a_supervisor_whispers_barges_and_listens_on_a_browser_phones_call() {
    let shard = driver::spawn(ShardConfig { index: 0, core: None, driver: DriverChoice::Auto, webrtc_tcp: None })
        .expect("shard starts");
    let mut run = Run { shard, reports: Vec::new() };
    let (sc, sa, ss) = (bind(), bind(), bind());
    let (shard_customer, shard_agent, shard_supervisor) =
        (sc.local_addr().unwrap(), sa.local_addr().unwrap(), ss.local_addr().unwrap());
    let (customer, supervisor) = (bind(), bind());
    customer.set_nonblocking(true).unwrap();
    supervisor.set_nonblocking(true).unwrap();
    run.shard.try_send(Control::AddSocket { id: CUSTOMER_SOCKET, socket: sc }).unwrap();
    run.shard.try_send(Control::AddSocket { id: AGENT_SOCKET, socket: sa }).unwrap();
    run.shard.try_send(Control::AddSocket { id: SUPERVISOR_SOCKET, socket: ss }).unwrap();
    run.shard.try_send(Control::AddCall { call: CALL, config: Box::new(CallConfig::new(Instant::now(), 0)) }).unwrap();
    let (mut browser, opus) = browser_leg(&mut run, shard_agent, opus_available());
    run.shard
        .try_send(Control::SetCustomer {
            call: CALL,
            leg: leg(CUSTOMER_SOCKET, customer.local_addr().unwrap(), 0xC0C0),
        })
        .unwrap();
    let sv_leg = leg(SUPERVISOR_SOCKET, supervisor.local_addr().unwrap(), 0x5005);
    run.shard
        .try_send(Control::AddSupervisor { call: CALL, id: 7, leg: sv_leg, mode: media::SupervisorMode::Whisper })
        .unwrap();

    let (mut enc, mut dec) = (OpusTranscoder::new(), OpusTranscoder::new());
    let (audio_pt, ticks) = if opus { (PT_OPUS, 960) } else { (PT_PCMU, 160) };
    let mut scratch = Vec::new();
    let mut buf = [0u8; 1500];
    let modes = [media::SupervisorMode::Whisper, media::SupervisorMode::Barge, media::SupervisorMode::Listen];
    let mut heard: Vec<Heard> = modes.iter().map(|_| Heard::default()).collect();
    let start = Instant::now();
    let per_phase = 75u32; // 1.5 s; the first 25 frames of each settle
    for n in 0..per_phase * 3 {
        let phase = (n / per_phase) as usize;
        if n % per_phase == 0 && phase > 0 {
            run.shard.try_send(Control::SetSupervisorMode { call: CALL, id: 7, mode: modes[phase] }).unwrap();
        }
        let counted = n % per_phase > 25;
        let due = start + Duration::from_millis(20 * u64::from(n));
        while Instant::now() < due {
            browser.step(Instant::now()).unwrap();
            for (sock, into) in [(&customer, 0), (&supervisor, 1)] {
                while let Ok((len, _)) = sock.recv_from(&mut buf) {
                    let Ok(p) = rtp::parse(&buf[..len]) else { continue };
                    if p.payload_type == 0 && counted {
                        let h = &mut heard[phase];
                        Codec::Pcmu.decode_into(p.payload, if into == 0 { &mut h.customer } else { &mut h.supervisor });
                    }
                }
            }
            while let Some(p) = browser.poll_packet() {
                if !counted {
                    continue;
                }
                if p.pt == PT_OPUS {
                    dec.as_mut().unwrap().decode(Codec::Pcmu, &p.payload, &mut scratch).unwrap();
                    Codec::Pcmu.decode_into(&scratch, &mut heard[phase].browser);
                } else if p.pt == PT_PCMU {
                    Codec::Pcmu.decode_into(&p.payload, &mut heard[phase].browser);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let g711 = pcmu(&tone(AGENT_HZ, n));
        if opus {
            enc.as_mut().unwrap().encode(Codec::Pcmu, &g711, &mut scratch).unwrap();
            browser.send(Instant::now(), audio_pt, n * ticks, n == 0, &scratch).unwrap();
        } else {
            browser.send(Instant::now(), audio_pt, n * ticks, n == 0, &g711).unwrap();
        }
        for (sock, to, hz, ssrc) in
            [(&customer, shard_customer, CUSTOMER_HZ, 0x5555), (&supervisor, shard_supervisor, SUPERVISOR_HZ, 0x7777)]
        {
            let h = HeaderFields { marker: n == 0, payload_type: 0, sequence: n as u16, timestamp: n * 160, ssrc };
            sock.send_to(&rtp::build(h, &pcmu(&tone(hz, n))), to).unwrap();
        }
    }
    let all = [AGENT_HZ, CUSTOMER_HZ, SUPERVISOR_HZ];
    for (mode, h) in modes.iter().zip(&heard) {
        let (agent_hears, customer_hears) =
            (has(&h.browser, SUPERVISOR_HZ, &all), has(&h.customer, SUPERVISOR_HZ, &all));
        let expected = match mode {
            media::SupervisorMode::Whisper => (true, false),
            media::SupervisorMode::Barge => (true, true),
            media::SupervisorMode::Listen => (false, false),
        };
        assert_eq!(
            (agent_hears, customer_hears),
            expected,
            "{mode:?}: (the browser, the customer) hear the supervisor"
        );
        assert!(has(&h.browser, CUSTOMER_HZ, &all), "{mode:?}: the browser hears the customer");
        assert!(has(&h.customer, AGENT_HZ, &all), "{mode:?}: the customer hears the browser");
        if *mode == media::SupervisorMode::Listen {
            assert!(has(&h.supervisor, AGENT_HZ, &all), "listen: the supervisor hears the browser");
            assert!(has(&h.supervisor, CUSTOMER_HZ, &all), "listen: the supervisor hears the customer");
        }
    }
    run.pump();
}

/// A supervisor's own browser phone (str0m, Opus when built with it) on a call between a SIP
/// phone's agent leg (RTP, 440 Hz) and a customer (RTP, 1,000 Hz): the page's offer is answered
/// from the shard, the leg connects, and in each mode the browser (saying 1,700 Hz) is heard as
/// the mode says while it hears both parties; when it leaves, its leg is released.
#[test]
fn a_supervisors_browser_phone_listens_whispers_and_barges() {
    let shard = driver::spawn(ShardConfig { index: 0, core: None, driver: DriverChoice::Auto, webrtc_tcp: None })
        .expect("shard starts");
    let mut run = Run { shard, reports: Vec::new() };
    let (sc, sa, ss) = (bind(), bind(), bind());
    let (shard_customer, shard_agent, shard_supervisor) =
        (sc.local_addr().unwrap(), sa.local_addr().unwrap(), ss.local_addr().unwrap());
    let (customer, agent) = (bind(), bind());
    customer.set_nonblocking(true).unwrap();
    agent.set_nonblocking(true).unwrap();
    run.shard.try_send(Control::AddSocket { id: CUSTOMER_SOCKET, socket: sc }).unwrap();
    run.shard.try_send(Control::AddSocket { id: AGENT_SOCKET, socket: sa }).unwrap();
    run.shard.try_send(Control::AddSocket { id: SUPERVISOR_SOCKET, socket: ss }).unwrap();
    run.shard.try_send(Control::AddCall { call: CALL, config: Box::new(CallConfig::new(Instant::now(), 0)) }).unwrap();
    run.shard
        .try_send(Control::SetAgent { call: CALL, leg: leg(AGENT_SOCKET, agent.local_addr().unwrap(), 0xA6E7) })
        .unwrap();
    run.shard
        .try_send(Control::SetCustomer {
            call: CALL,
            leg: leg(CUSTOMER_SOCKET, customer.local_addr().unwrap(), 0xC0C0),
        })
        .unwrap();

    // The supervisor's page offers; the shard answers from the supervisor's socket.
    let (mut browser, offer) =
        Browser::offer(Instant::now(), "127.0.0.1:0".parse().unwrap(), opus_available()).expect("browser offers");
    let listen = media::SupervisorMode::Listen;
    let sv_leg = leg(SUPERVISOR_SOCKET, shard_supervisor, 0x5005);
    run.shard
        .try_send(Control::AddWebRtcSupervisor {
            call: CALL,
            id: 7,
            leg: sv_leg,
            local: shard_supervisor,
            offer,
            mode: listen,
        })
        .unwrap();
    let answered = run.wait("the supervisor's answer", |r| matches!(r, Report::SupervisorWebRtc { .. }));
    let Report::SupervisorWebRtc { call: CALL, id: 7, event: WebRtcSupervisorEvent::Answer(sdp) } = answered else {
        panic!("offer refused: {answered:?}")
    };
    assert!(sdp.contains("a=ice-lite") && sdp.contains(&shard_supervisor.port().to_string()), "{sdp}");
    browser.answer(&sdp).expect("answer accepted");
    let until = Instant::now() + BOUND;
    while !browser.is_connected() {
        assert!(Instant::now() < until, "ICE and DTLS connect within {BOUND:?}");
        browser.step(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let up = Report::SupervisorWebRtc { call: CALL, id: 7, event: WebRtcSupervisorEvent::Connected(true) };
    run.wait("the supervisor's leg connected", |r| *r == up);
    let opus = browser.audio_pt() == Some(PT_OPUS);
    assert_eq!(opus, opus_available(), "Opus chosen when offered");

    let (mut enc, mut dec) = (OpusTranscoder::new(), OpusTranscoder::new());
    let (audio_pt, ticks) = if opus { (PT_OPUS, 960) } else { (PT_PCMU, 160) };
    let mut scratch = Vec::new();
    let mut buf = [0u8; 1500];
    let modes = [listen, media::SupervisorMode::Whisper, media::SupervisorMode::Barge];
    // Here `browser` is the supervisor's page and `supervisor` what the agent's phone heard.
    let mut heard: Vec<Heard> = modes.iter().map(|_| Heard::default()).collect();
    let start = Instant::now();
    let per_phase = 75u32;
    for n in 0..per_phase * 3 {
        let phase = (n / per_phase) as usize;
        if n % per_phase == 0 && phase > 0 {
            run.shard.try_send(Control::SetSupervisorMode { call: CALL, id: 7, mode: modes[phase] }).unwrap();
        }
        let counted = n % per_phase > 25;
        let due = start + Duration::from_millis(20 * u64::from(n));
        while Instant::now() < due {
            browser.step(Instant::now()).unwrap();
            for (sock, into) in [(&customer, 0), (&agent, 1)] {
                while let Ok((len, _)) = sock.recv_from(&mut buf) {
                    let Ok(p) = rtp::parse(&buf[..len]) else { continue };
                    if p.payload_type == 0 && counted {
                        let h = &mut heard[phase];
                        Codec::Pcmu.decode_into(p.payload, if into == 0 { &mut h.customer } else { &mut h.supervisor });
                    }
                }
            }
            while let Some(p) = browser.poll_packet() {
                if !counted {
                    continue;
                }
                if p.pt == PT_OPUS {
                    dec.as_mut().unwrap().decode(Codec::Pcmu, &p.payload, &mut scratch).unwrap();
                    Codec::Pcmu.decode_into(&scratch, &mut heard[phase].browser);
                } else if p.pt == PT_PCMU {
                    Codec::Pcmu.decode_into(&p.payload, &mut heard[phase].browser);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let g711 = pcmu(&tone(SUPERVISOR_HZ, n));
        if opus {
            enc.as_mut().unwrap().encode(Codec::Pcmu, &g711, &mut scratch).unwrap();
            browser.send(Instant::now(), audio_pt, n * ticks, n == 0, &scratch).unwrap();
        } else {
            browser.send(Instant::now(), audio_pt, n * ticks, n == 0, &g711).unwrap();
        }
        for (sock, to, hz, ssrc) in
            [(&customer, shard_customer, CUSTOMER_HZ, 0x5555), (&agent, shard_agent, AGENT_HZ, 0x7777)]
        {
            let h = HeaderFields { marker: n == 0, payload_type: 0, sequence: n as u16, timestamp: n * 160, ssrc };
            sock.send_to(&rtp::build(h, &pcmu(&tone(hz, n))), to).unwrap();
        }
    }
    let all = [AGENT_HZ, CUSTOMER_HZ, SUPERVISOR_HZ];
    for (mode, h) in modes.iter().zip(&heard) {
        let (agent_hears, customer_hears) =
            (has(&h.supervisor, SUPERVISOR_HZ, &all), has(&h.customer, SUPERVISOR_HZ, &all));
        let expected = match mode {
            media::SupervisorMode::Whisper => (true, false),
            media::SupervisorMode::Barge => (true, true),
            media::SupervisorMode::Listen => (false, false),
        };
        assert_eq!((agent_hears, customer_hears), expected, "{mode:?}: (the agent, the customer) hear the supervisor");
        assert!(has(&h.browser, AGENT_HZ, &all), "{mode:?}: the supervisor's page hears the agent");
        assert!(has(&h.browser, CUSTOMER_HZ, &all), "{mode:?}: the supervisor's page hears the customer");
        assert!(has(&h.supervisor, CUSTOMER_HZ, &all), "{mode:?}: the agent hears the customer");
    }
    run.shard.try_send(Control::TakeSupervisor { call: CALL, id: 7 }).unwrap();
    run.wait("the supervisor's leg released", |r| matches!(r, Report::SupervisorReleased { call: CALL, id: 7, .. }));
    // The agent's and customer's own talk goes on untouched.
    run.pump();
    assert!(
        !run.reports.iter().any(|r| matches!(r, Report::WebRtcConnection { .. } | Report::WebRtcFailed { .. })),
        "the supervisor's leg is never reported as an agent's browser phone: {:?}",
        run.reports
    );
}
