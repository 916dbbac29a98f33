//! A simulated carrier trunk: a SIP UAS on UDP that answers the dialer's INVITEs like customers
//! would, streams RTP to answered calls, and logs what it did with every number.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sip::dialog::Dialog;
use sip::message::{response_to, Method, Request};
use sip::sdp::{self, Codec, LocalMedia};
use sip::{Endpoint, Event, TxId};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::rtp::{Heard, Streams};

/// What the carrier does with one INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// 180, answer after `after_ms`, talk for `talk_ms` then hang up (`None`: wait for the BYE).
    Answer { after_ms: u64, talk_ms: Option<u64> },
    /// 180, then a final failure `status` after `after_ms`.
    Fail { status: u16, after_ms: u64 },
    /// 180 until the dialer's CANCEL.
    Ring,
}

/// How the carrier picks behaviours.
#[derive(Clone, Debug)]
pub struct CarrierConfig {
    /// Share of calls a live person answers.
    pub answer_prob: f64,
    /// Answer delay: lognormal with this mean (cv 0.5).
    pub answer_delay_mean_ms: f64,
    /// Share of non-answers that fail (busy, decline, not in service) at about `fail_after_ms`.
    pub fail_share: f64,
    pub fail_after_ms: u64,
    /// Talk time: lognormal with this mean and cv.
    pub talk_mean_ms: f64,
    pub talk_cv: f64,
    /// The customer hangs up after the talk time (else waits for the dialer's BYE).
    pub hang_up: bool,
    /// Rules by the dialled number's last digit (tests): used instead of the draws.
    pub by_last_digit: Option<[Behaviour; 10]>,
    pub seed: u64,
    /// What the customers say: PCMU (8 kHz) looped on every answered call (a voice clip in the
    /// demo, a tone in tests); `None`: silence.
    pub voice: Option<std::sync::Arc<[u8]>>,
    /// The customers send a tone at this frequency instead of silence, and the carrier keeps the
    /// last second it heard (tests telling who hears whom: [`Carrier::heard_share`]).
    pub tone_hz: Option<f32>,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        CarrierConfig {
            answer_prob: 0.3,
            answer_delay_mean_ms: 8_000.0,
            fail_share: 0.3,
            fail_after_ms: 3_000,
            talk_mean_ms: 120_000.0,
            talk_cv: 1.0,
            hang_up: true,
            by_last_digit: None,
            seed: 1,
            voice: None,
            tone_hz: None,
        }
    }
}

/// One line of the carrier's log: a number it was asked to call and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The dialled number (without the 184 prefix).
    pub tel: String,
    pub withheld: bool,
    pub caller: String,
    /// `answered`, `failed:<status>`, `cancelled` (rang until the dialer's CANCEL).
    pub outcome: String,
    pub at: Instant,
    /// The call was answered and then ended (by either side).
    pub ended: bool,
    /// Where the INVITE came from (the dialer host's SIP address).
    pub from: SocketAddr,
    /// When the call stopped holding a channel here (final failure, CANCEL, BYE either way);
    /// `None` while it rings or is up.
    pub ended_at: Option<Instant>,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CarrierStats {
    pub invites: u64,
    pub answered: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub byes_sent: u64,
    pub byes_received: u64,
    pub rtp_sent: u64,
    pub rtp_received: u64,
    /// Calls up right now.
    pub active: u64,
    /// Most calls up at once.
    pub peak_active: u64,
    /// Calls INVITEd and not yet ended (ringing or up): the channels the dialer holds here.
    pub in_progress: u64,
    /// Most calls in progress at once.
    pub peak_in_progress: u64,
}

/// A running carrier.
#[derive(Clone)]
pub struct Carrier {
    pub sip_addr: SocketAddr,
    pub rtp_addr: SocketAddr,
    log: Arc<Mutex<Vec<LogEntry>>>,
    stats: Arc<Mutex<CarrierStats>>,
    heard: Arc<Mutex<Heard>>,
}

impl Carrier {
    /// The share of the last second the carrier heard (over all its calls) that lies at `hz`;
    /// kept only with [`CarrierConfig::tone_hz`].
    pub fn heard_share(&self, hz: f32) -> f32 {
        self.heard.lock().map(|h| h.share(hz)).unwrap_or(0.0)
    }

    pub fn log(&self) -> Vec<LogEntry> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn stats(&self) -> CarrierStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }
}

#[derive(Debug)]
enum Action {
    Final { tx: TxId, status: u16 },
    HangUp { call_id: String },
}

struct Call {
    invite: Request,
    from: SocketAddr,
    dialog: Dialog,
    log_index: usize,
    key: u64,
    answered: bool,
}

/// Starts the carrier on `ip` (ephemeral ports) until `shutdown` becomes true.
pub async fn start(ip: IpAddr, cfg: CarrierConfig, shutdown: watch::Receiver<bool>) -> std::io::Result<Carrier> {
    start_at(SocketAddr::new(ip, 0), cfg, shutdown).await
}

/// [`start`] with SIP on `sip_addr` (a port of its own for operators and layout tests; RTP on
/// any free port of the same address).
pub async fn start_at(
    sip_addr: SocketAddr,
    cfg: CarrierConfig,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<Carrier> {
    let sip = UdpSocket::bind(sip_addr).await?;
    let rtp = UdpSocket::bind(SocketAddr::new(sip_addr.ip(), 0)).await?;
    let carrier = Carrier {
        sip_addr: sip.local_addr()?,
        rtp_addr: rtp.local_addr()?,
        log: Arc::new(Mutex::new(Vec::new())),
        stats: Arc::new(Mutex::new(CarrierStats::default())),
        heard: Arc::default(),
    };
    let c = carrier.clone();
    tokio::spawn(async move { run(sip, rtp, cfg, c, shutdown).await });
    Ok(carrier)
}

fn last_digit(tel: &str) -> usize {
    tel.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(0) as usize
}

async fn run(sip: UdpSocket, rtp: UdpSocket, cfg: CarrierConfig, me: Carrier, mut shutdown: watch::Receiver<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut ep =
        Endpoint::new(sip::Config::new(me.sip_addr.to_string()), Box::new(ChaCha8Rng::seed_from_u64(cfg.seed + 1)));
    let mut actions: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut action_of: HashMap<u64, Action> = HashMap::new();
    let mut next_action = 0u64;
    let mut calls: HashMap<String, Call> = HashMap::new();
    let mut by_tx: HashMap<TxId, String> = HashMap::new();
    let mut streams = Streams::default();
    streams.voice = cfg.voice.clone();
    if cfg.tone_hz.is_some() {
        streams.set_tone(cfg.tone_hz);
    }
    let listening = cfg.tone_hz.is_some();
    let mut next_key = 1u64;
    let mut buf = vec![0u8; 65_536];
    let mut rtp_buf = vec![0u8; 2048];
    let mut frame = tokio::time::interval(Duration::from_millis(20));
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let local_rtp = me.rtp_addr;
    let bump = |f: &dyn Fn(&mut CarrierStats)| {
        if let Ok(mut s) = me.stats.lock() {
            f(&mut s);
        }
    };
    loop {
        let deadline = crate::next_deadline(ep.poll_timeout(), actions.peek().map(|Reverse((t, _))| *t));
        tokio::select! {
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    return;
                }
            }
            r = sip.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    ep.handle_datagram(Instant::now(), from, &buf[..n]);
                }
            }
            r = rtp.recv_from(&mut rtp_buf) => {
                if let Ok((n, _)) = r {
                    bump(&|s| s.rtp_received += 1);
                    if listening {
                        if let Ok(mut h) = me.heard.lock() {
                            h.push_datagram(&rtp_buf[..n]);
                        }
                    }
                }
            }
            _ = frame.tick(), if !streams.is_empty() => {
                for (to, p) in streams.frame() {
                    let _ = rtp.send_to(&p, to).await;
                }
                let sent = streams.sent;
                bump(&|s| s.rtp_sent = sent);
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                ep.handle_timeout(now);
                while let Some(&Reverse((at, id))) = actions.peek() {
                    if at > now {
                        break;
                    }
                    actions.pop();
                    let Some(a) = action_of.remove(&id) else { continue };
                    match a {
                        Action::Final { tx, status } => {
                            let Some(call_id) = by_tx.get(&tx).cloned() else { continue };
                            let Some(c) = calls.get_mut(&call_id) else { continue };
                            let mut r = c.dialog.respond(&c.invite, status);
                            if status == 200 {
                                r.headers.push("Contact", format!("<sip:customer@{}>", me.sip_addr));
                                r.headers.push("Content-Type", "application/sdp");
                                let Some((answer, to)) = answer_sdp(&c.invite.body, local_rtp) else {
                                    let _ = ep.send_response(now, tx, c.dialog.respond(&c.invite, 488));
                                    mark_released(&me, c.log_index);
                                    calls.remove(&call_id);
                                    by_tx.remove(&tx);
                                    let n = calls.len() as u64;
                                    bump(&|s| {
                                        s.failed += 1;
                                        s.in_progress = n;
                                    });
                                    continue;
                                };
                                r.body = answer;
                                c.dialog.on_invite_response_sent(200);
                                c.answered = true;
                                streams.start(c.key, to, rng.gen());
                                if let Ok(mut l) = me.log.lock() {
                                    if let Some(e) = l.get_mut(c.log_index) {
                                        e.outcome = "answered".into();
                                    }
                                }
                                let active = streams.len() as u64;
                                bump(&|s| {
                                    s.answered += 1;
                                    s.active = active;
                                    s.peak_active = s.peak_active.max(active);
                                });
                                if cfg.hang_up {
                                    let talk = match cfg.by_last_digit.map(|r| r[last_digit(&tel_of(&c.invite).0)]) {
                                        Some(Behaviour::Answer { talk_ms: Some(t), .. }) => t,
                                        Some(Behaviour::Answer { talk_ms: None, .. }) => u64::MAX,
                                        _ => crate::lognormal_ms(&mut rng, cfg.talk_mean_ms, cfg.talk_cv),
                                    };
                                    if talk != u64::MAX {
                                        next_action += 1;
                                        action_of.insert(next_action, Action::HangUp { call_id: call_id.clone() });
                                        actions.push(Reverse((now + Duration::from_millis(talk), next_action)));
                                    }
                                }
                            } else {
                                c.dialog.on_invite_response_sent(status);
                                bump(&|s| s.failed += 1);
                                if let Ok(mut l) = me.log.lock() {
                                    if let Some(e) = l.get_mut(c.log_index) {
                                        e.outcome = format!("failed:{status}");
                                        e.ended_at = Some(now);
                                    }
                                }
                            }
                            let _ = ep.send_response(now, tx, r);
                            if status != 200 {
                                calls.remove(&call_id);
                                by_tx.remove(&tx);
                                let n = calls.len() as u64;
                                bump(&|s| s.in_progress = n);
                            }
                        }
                        Action::HangUp { call_id } => {
                            if let Some(mut c) = calls.remove(&call_id) {
                                let bye = c.dialog.request(Method::Bye);
                                let _ = ep.send_request(now, c.from, bye);
                                streams.stop(c.key);
                                mark_ended(&me, c.log_index);
                                let (active, n) = (streams.len() as u64, calls.len() as u64);
                                bump(&|s| {
                                    s.byes_sent += 1;
                                    s.active = active;
                                    s.in_progress = n;
                                });
                            }
                        }
                    }
                }
            }
        }
        let now = Instant::now();
        while let Some(e) = ep.poll_event() {
            match e {
                Event::Request { tx, from, request } if request.method == Method::Invite => {
                    if sip::dialog::is_in_dialog(&request) {
                        // re-INVITE: keep the media as it is.
                        let r = calls
                            .get_mut(request.call_id().unwrap_or(""))
                            .and_then(|c| c.dialog.handle_request(&request, None));
                        let _ = ep.send_response(now, tx, r.unwrap_or_else(|| response_to(&request, 481, None)));
                        continue;
                    }
                    let (tel, withheld) = tel_of(&request);
                    let behaviour = match cfg.by_last_digit {
                        Some(rules) => rules[last_digit(&tel)],
                        None => draw(&mut rng, &cfg),
                    };
                    let log_index = if let Ok(mut l) = me.log.lock() {
                        l.push(LogEntry {
                            tel: tel.clone(),
                            withheld,
                            caller: request.headers.get("From").unwrap_or("").to_string(),
                            outcome: "ringing".into(),
                            at: now,
                            ended: false,
                            from,
                            ended_at: None,
                        });
                        l.len() - 1
                    } else {
                        0
                    };
                    bump(&|s| s.invites += 1);
                    let tag = format!("c{next_key}");
                    let Some(dialog) = Dialog::uas(&request, &tag, &format!("sip:customer@{}", me.sip_addr)) else {
                        let _ = ep.send_response(now, tx, response_to(&request, 400, Some("x")));
                        continue;
                    };
                    let _ = ep.send_response(now, tx, dialog.respond(&request, 180));
                    let call_id = request.call_id().unwrap_or("").to_string();
                    by_tx.insert(tx, call_id.clone());
                    calls.insert(
                        call_id,
                        Call { invite: request, from, dialog, log_index, key: next_key, answered: false },
                    );
                    let n = calls.len() as u64;
                    bump(&|s| {
                        s.in_progress = n;
                        s.peak_in_progress = s.peak_in_progress.max(n);
                    });
                    next_key += 1;
                    let (at, status) = match behaviour {
                        Behaviour::Answer { after_ms, .. } => (Some(after_ms), 200),
                        Behaviour::Fail { status, after_ms } => (Some(after_ms), status),
                        Behaviour::Ring => (None, 0),
                    };
                    if let Some(after) = at {
                        next_action += 1;
                        action_of.insert(next_action, Action::Final { tx, status });
                        actions.push(Reverse((now + Duration::from_millis(after), next_action)));
                    }
                }
                Event::Request { tx, request, .. } if request.method == Method::Bye => {
                    let call_id = request.call_id().unwrap_or("").to_string();
                    match calls.remove(&call_id) {
                        Some(mut c) => {
                            let r = c
                                .dialog
                                .handle_request(&request, None)
                                .unwrap_or_else(|| response_to(&request, 200, None));
                            let _ = ep.send_response(now, tx, r);
                            streams.stop(c.key);
                            mark_ended(&me, c.log_index);
                            let (active, n) = (streams.len() as u64, calls.len() as u64);
                            bump(&|s| {
                                s.byes_received += 1;
                                s.active = active;
                                s.in_progress = n;
                            });
                        }
                        None => {
                            let _ = ep.send_response(now, tx, response_to(&request, 481, None));
                        }
                    }
                }
                Event::Request { tx, request, .. } => {
                    let _ = ep.send_response(now, tx, response_to(&request, 200, Some("carrier")));
                }
                Event::Cancelled { tx } => {
                    if let Some(call_id) = by_tx.remove(&tx) {
                        if let Some(c) = calls.remove(&call_id) {
                            action_of.retain(|_, a| !matches!(a, Action::Final { tx: t, .. } if *t == tx));
                            let _ = ep.send_response(now, tx, c.dialog.respond(&c.invite, 487));
                            if let Ok(mut l) = me.log.lock() {
                                if let Some(e) = l.get_mut(c.log_index) {
                                    e.outcome = "cancelled".into();
                                    e.ended_at = Some(now);
                                }
                            }
                            let n = calls.len() as u64;
                            bump(&|s| {
                                s.cancelled += 1;
                                s.in_progress = n;
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        while let Some(t) = ep.poll_transmit() {
            let _ = sip.send_to(&t.bytes, t.dest).await;
        }
    }
}

fn mark_ended(me: &Carrier, index: usize) {
    if let Ok(mut l) = me.log.lock() {
        if let Some(e) = l.get_mut(index) {
            e.ended = true;
            e.ended_at.get_or_insert_with(Instant::now);
        }
    }
}

/// The call of log line `index` no longer holds a channel (it failed, or was cancelled).
fn mark_released(me: &Carrier, index: usize) {
    if let Ok(mut l) = me.log.lock() {
        if let Some(e) = l.get_mut(index) {
            e.ended_at.get_or_insert_with(Instant::now);
        }
    }
}

fn draw(rng: &mut ChaCha8Rng, cfg: &CarrierConfig) -> Behaviour {
    if rng.gen_bool(cfg.answer_prob.clamp(0.0, 1.0)) {
        let after_ms = crate::lognormal_ms(rng, cfg.answer_delay_mean_ms, 0.5);
        return Behaviour::Answer { after_ms, talk_ms: None };
    }
    if rng.gen_bool(cfg.fail_share.clamp(0.0, 1.0)) {
        let status = *[486u16, 486, 486, 603, 404].get(rng.gen_range(0..5)).unwrap_or(&486);
        let jitter = rng.gen_range(0..1_000);
        return Behaviour::Fail { status, after_ms: cfg.fail_after_ms.saturating_sub(500) + jitter };
    }
    Behaviour::Ring
}

/// The dialled number of an INVITE (user part of the Request-URI), without the 184 prefix.
fn tel_of(req: &Request) -> (String, bool) {
    let user = req.uri.trim_start_matches("sip:").split('@').next().unwrap_or("").to_string();
    match user.strip_prefix("184") {
        Some(rest) if rest.starts_with('0') => (rest.to_string(), true),
        _ => (user, false),
    }
}

/// Our SDP answer (PCMU/PCMA and telephone-event) and where the offer wants RTP.
pub(crate) fn answer_sdp(offer: &[u8], local: SocketAddr) -> Option<(Vec<u8>, SocketAddr)> {
    let md = sdp::parse(offer).ok()?;
    let lm = LocalMedia {
        addr: local.ip(),
        port: local.port(),
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        telephone_event: Some(101),
        session_id: 7,
        session_version: 1,
        ptime_ms: 20,
    };
    let (n, body) = sdp::answer(&lm, &md).ok()?;
    Some((body, SocketAddr::new(n.remote_addr, n.remote_port)))
}
