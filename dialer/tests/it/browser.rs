//! The browser phone end to end in the dialer, on SQLite and PostgreSQL: the page's offer (a str0m
//! peer as the browser: full ICE, DTLS-SRTP, Opus) reaches the engine as the API publishes it, the
//! agent's job starts, the shard answers on `agent:events`, the nailed-up leg comes up without
//! SIP, a customer of the sim carrier (saying a 1,000 Hz tone) is bridged to it, each hears the
//! other (checked by frequency), the result is keyed from the browser's dial pad (RFC 4733) and
//! saved, and the recording holds both channels.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::{Bus, EntryId, Envelope};
use media::dtmf::goertzel_power;
use media::voice::OpusTranscoder;
use media::Codec;
use sim::browser::{Browser, PT_OPUS, PT_TELEPHONE_EVENT_48K, PT_TELEPHONE_EVENT_8K};
use tokio::sync::watch;
use wire::AgentId;
use wire::{streams, AgentNotice, Message, PhoneOffer};

use crate::floor::{backends, result_entry_spec, talking_carrier, until, Floor};

const AGENT_HZ: f32 = 440.0;
const CUSTOMER_HZ: f32 = 1000.0;

fn tone(hz: f32, n: u32) -> Vec<i16> {
    (0..160)
        .map(|i| (6000.0 * (2.0 * std::f32::consts::PI * hz * (n * 160 + i) as f32 / 8000.0).sin()) as i16)
        .collect()
}

/// A PCMU clip of a tone: what the sim customers say here.
fn tone_clip(hz: f32) -> Arc<[u8]> {
    (0..50).flat_map(|n| tone(hz, n)).map(|s| Codec::Pcmu.encode(s)).collect::<Vec<u8>>().into()
}

enum Cmd {
    Answer(String),
    Digit(char),
}

/// The browser on a thread of its own: it says 440 Hz every 20 ms, keeps what it hears (8 kHz
/// linear) and keys digits when told.
struct Page {
    cmds: mpsc::Sender<Cmd>,
    heard: Arc<Mutex<Vec<i16>>>,
    connected: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Page {
    fn start(mut browser: Browser) -> Page {
        let (cmds, rx) = mpsc::channel();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let connected = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, c, s) = (heard.clone(), connected.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut enc = OpusTranscoder::new().expect("libopus (--features media/opus)");
            let mut dec = OpusTranscoder::new().expect("libopus");
            let (mut packet, mut g711) = (Vec::new(), Vec::new());
            let start = Instant::now();
            let mut digit: Option<(char, u32, u32)> = None; // digit, first frame, its timestamp
            for n in 0u32.. {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let due = start + Duration::from_millis(20 * u64::from(n));
                while Instant::now() < due {
                    browser.step(Instant::now()).expect("browser step");
                    std::thread::sleep(Duration::from_millis(1));
                }
                while let Ok(cmd) = rx.try_recv() {
                    match cmd {
                        Cmd::Answer(sdp) => browser.answer(&sdp).expect("the shard's answer"),
                        Cmd::Digit(d) => digit = Some((d, n, 0)),
                    }
                }
                c.store(browser.is_connected(), Ordering::Relaxed);
                let now = Instant::now();
                let opus = browser.audio_pt() == Some(PT_OPUS);
                let (ticks, tele) = if opus { (960, PT_TELEPHONE_EVENT_48K) } else { (160, PT_TELEPHONE_EVENT_8K) };
                let frame: Vec<u8> = tone(AGENT_HZ, n).into_iter().map(|x| Codec::Pcmu.encode(x)).collect();
                if opus {
                    enc.encode(Codec::Pcmu, &frame, &mut packet).expect("opus encode");
                    browser.send(now, PT_OPUS, n * ticks, false, &packet).expect("send");
                } else {
                    browser.send(now, 0, n * ticks, false, &frame).expect("send");
                }
                if let Some((d, first, _)) = digit {
                    // RFC 4733 as a browser sends it: 3 updates of 20 ms, then 3 end packets.
                    let k = n - first;
                    let code = media::dtmf::event_code(d).expect("a digit");
                    let dur = ((k + 1) * ticks) as u16;
                    let end = k >= 3;
                    let payload = [code, if end { 0x80 | 10 } else { 10 }, (dur >> 8) as u8, dur as u8];
                    browser.send(now, tele, first * ticks, k == 0, &payload).expect("send digit");
                    if k >= 5 {
                        digit = None;
                    }
                }
                while let Some(p) = browser.poll_packet() {
                    let mut pcm = Vec::new();
                    if p.pt == PT_OPUS {
                        if dec.decode(Codec::Pcmu, &p.payload, &mut g711).is_ok() {
                            Codec::Pcmu.decode_into(&g711, &mut pcm);
                        }
                    } else if p.pt == 0 {
                        Codec::Pcmu.decode_into(&p.payload, &mut pcm);
                    }
                    let mut heard = h.lock().expect("lock");
                    if heard.len() < 8000 * 60 {
                        heard.extend_from_slice(&pcm);
                    }
                }
            }
        });
        Page { cmds, heard, connected, stop, thread: Some(thread) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn dominant(samples: &[i16], hz: f32, other: f32) -> (f32, f32) {
    (goertzel_power(samples, hz, 8000.0), goertzel_power(samples, other, 8000.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_phone_works_a_call_end_to_end() {
    for backend in backends() {
        let (_stop_tx, stop) = watch::channel(false);
        let carrier = talking_carrier(Some(tone_clip(CUSTOMER_HZ)), stop).await;
        let spec = result_entry_spec();
        let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let agent = floor.agents[0] as u64;
        let events = streams::agent_events(floor.tenant);
        let mut after = floor.bus.last_entry_id(&events).await.expect("bus").unwrap_or(EntryId { ms: 0, seq: 0 });

        // The page offers (POST /agent/phone publishes this), then starts the job (発信開始).
        let (browser, offer) = Browser::offer(Instant::now(), "127.0.0.1:0".parse().unwrap(), true).expect("offer");
        let env =
            Envelope::new(floor.tenant, store::now_ms() as u64, &PhoneOffer { agent_id: AgentId(agent), sdp: offer })
                .expect("encode");
        floor.bus.publish(&streams::dialer_notices(), &env).await.expect("publish");
        // The job starts at once: whichever of the two reaches the engine first, the leg is set up
        // from the offer (a leg with no phone waits for it, `LEG_WAITS_FOR_OFFER_MS`).
        floor.log_in_agents(Some(120_000)).await;

        // The shard's answer comes on agent:events, as the page's stream delivers it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let sdp = loop {
            assert!(Instant::now() < deadline, "no answer to the browser's offer on {backend:?}");
            let entries = floor.bus.read_after(&events, after, 100, 500).await.expect("read");
            let mut found = None;
            for (id, env) in entries {
                after = id;
                if env.kind == AgentNotice::KIND {
                    match env.decode::<AgentNotice>().expect("notice") {
                        AgentNotice::PhoneAnswer { agent_id, sdp } if agent_id.0 == agent => found = Some(sdp),
                        AgentNotice::PhoneFailed { error, .. } => panic!("offer refused: {error}"),
                        _ => {}
                    }
                }
            }
            if let Some(s) = found {
                break s;
            }
        };
        assert!(sdp.contains("a=ice-lite") && sdp.contains("opus"), "{sdp}");
        let page = Page::start(browser);
        page.cmds.send(Cmd::Answer(sdp)).expect("page");
        until("the browser connected", Duration::from_secs(10), || {
            let c = page.connected.clone();
            async move { c.load(Ordering::Relaxed) }
        })
        .await;
        until("the agent ready (the leg is up)", Duration::from_secs(10), || async {
            floor.agents_in("ready").await == 1
        })
        .await;
        let hold = page.heard.lock().expect("lock").len();

        floor.start_job().await;
        until("the customer bridged", Duration::from_secs(15), || async { floor.agents_in("talking").await == 1 })
            .await;
        until("the call in ACW", Duration::from_secs(15), || async { floor.agents_in("wrap_up").await == 1 }).await;
        let heard = page.heard.lock().expect("lock")[hold..].to_vec();
        let (p, q) = dominant(&heard, CUSTOMER_HZ, AGENT_HZ);
        assert!(p > 1e5 && p > 20.0 * q, "the browser hears the customer's {CUSTOMER_HZ} Hz: {p} vs {q}");

        // The result keyed on the page's dial pad: 2#.
        for d in ['2', '#'] {
            page.cmds.send(Cmd::Digit(d)).expect("page");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        until("the keyed result saved", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM wrapup_records WHERE tenant_id = $1 AND saved = 1").await == 1
        })
        .await;
        assert_eq!(floor.leads().await[0].2.as_deref(), Some("2"), "the lead has result 2");

        // The recording: the customer's tone left, the browser's right.
        let (c, a) = floor.the_recording().await;
        assert!(a.len() >= 2 * 8000, "two seconds and more: {}", a.len());
        let (p, q) = dominant(&a[a.len() / 4..], AGENT_HZ, CUSTOMER_HZ);
        assert!(p > 1e5 && p > 20.0 * q, "the agent channel holds the browser's {AGENT_HZ} Hz: {p} vs {q}");
        let (p, q) = dominant(&c[c.len() / 4..], CUSTOMER_HZ, AGENT_HZ);
        assert!(p > 1e5 && p > 20.0 * q, "the customer channel holds the customer's {CUSTOMER_HZ} Hz: {p} vs {q}");

        drop(page);
        floor.stop().await;
    }
}
