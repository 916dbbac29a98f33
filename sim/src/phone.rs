//! Simulated agents' softphones: each registers with digest at the dialer, auto-answers the
//! nailed-up leg, sends RTP while the call is up and keys RFC 4733 digits on request.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sip::auth::Credentials;
use sip::dialog::{self, Dialog};
use sip::message::{response_to, Method, Request};
use sip::{Endpoint, Event};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::rtp::{Heard, Streams};

/// One phone's SIP account. Its `Debug` hides the password.
#[derive(Clone)]
pub struct PhoneAccount {
    pub username: String,
    pub password: String,
    /// The realm / domain of the account (`sip:<username>@<domain>`).
    pub domain: String,
}

impl std::fmt::Debug for PhoneAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneAccount")
            .field("username", &self.username)
            .field("password", &"***")
            .field("domain", &self.domain)
            .finish()
    }
}

/// How the phones behave.
#[derive(Clone, Debug)]
pub struct PhoneConfig {
    /// Where to REGISTER (a shard's SIP address).
    pub registrar: SocketAddr,
    pub bind_ip: IpAddr,
    pub expires_s: u32,
    /// Answer the nailed-up leg after this long.
    pub answer_after: Duration,
    /// Send a tone at this frequency instead of silence (tests telling who hears whom).
    pub tone_hz: Option<f32>,
}

/// What a phone did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhoneStats {
    pub registered: bool,
    pub register_failures: u64,
    pub calls_answered: u64,
    pub in_call: bool,
    pub rtp_sent: u64,
    pub rtp_received: u64,
    pub byes_received: u64,
}

/// Asks a phone to do something.
#[derive(Clone, Debug)]
pub enum PhoneCommand {
    /// Key these digits (RFC 4733) on the current call, 300 ms apart.
    Keys(String),
    /// Hang up the current call.
    HangUp,
}

/// A running phone.
#[derive(Clone)]
pub struct Phone {
    pub username: String,
    pub addr: SocketAddr,
    stats: Arc<Mutex<PhoneStats>>,
    commands: mpsc::Sender<PhoneCommand>,
    heard: Arc<Mutex<Heard>>,
}

impl Phone {
    pub fn stats(&self) -> PhoneStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// The share of the last second the phone heard that lies at `hz` ([`Heard::share`]).
    pub fn heard_share(&self, hz: f32) -> f32 {
        self.heard.lock().map(|h| h.share(hz)).unwrap_or(0.0)
    }

    pub async fn command(&self, c: PhoneCommand) {
        let _ = self.commands.send(c).await;
    }
}

/// Starts one phone per account until `shutdown` becomes true.
pub async fn start(
    accounts: Vec<PhoneAccount>,
    cfg: PhoneConfig,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<Vec<Phone>> {
    let mut phones = Vec::with_capacity(accounts.len());
    for (i, a) in accounts.into_iter().enumerate() {
        let sip = UdpSocket::bind(SocketAddr::new(cfg.bind_ip, 0)).await?;
        let rtp = UdpSocket::bind(SocketAddr::new(cfg.bind_ip, 0)).await?;
        let (tx, rx) = mpsc::channel(16);
        let phone = Phone {
            username: a.username.clone(),
            addr: sip.local_addr()?,
            stats: Arc::new(Mutex::new(PhoneStats::default())),
            commands: tx,
            heard: Arc::default(),
        };
        let p = phone.clone();
        let (cfg, shutdown) = (cfg.clone(), shutdown.clone());
        tokio::spawn(async move { run(sip, rtp, a, cfg, p, rx, shutdown, i as u64).await });
        phones.push(phone);
    }
    Ok(phones)
}

struct Current {
    tx: Option<sip::TxId>,
    invite: Request,
    dialog: Dialog,
    answer_at: Option<Instant>,
    up: bool,
    remote_rtp: Option<SocketAddr>,
    from: SocketAddr,
    te_pt: u8,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    sip: UdpSocket,
    rtp: UdpSocket,
    account: PhoneAccount,
    cfg: PhoneConfig,
    me: Phone,
    mut commands: mpsc::Receiver<PhoneCommand>,
    mut shutdown: watch::Receiver<bool>,
    seed: u64,
) {
    let local = me.addr;
    let rtp_addr = rtp.local_addr().unwrap_or(local);
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(7919) + 17);
    let mut ep = Endpoint::new(sip::Config::new(local.to_string()), Box::new(ChaCha8Rng::seed_from_u64(seed + 99)));
    let creds = Credentials { username: account.username.clone(), password: account.password.clone() };
    let aor = format!("sip:{}@{}", account.username, account.domain);
    let call_id = format!("reg-{}-{seed}@{}", account.username, local.ip());
    let mut reg_seq = 1u32;
    let mut register_req: Option<Request> = None;
    let mut reregister_at = Instant::now();
    let mut authed = false;
    let mut current: Option<Current> = None;
    let mut streams = Streams::default();
    streams.set_tone(cfg.tone_hz);
    let mut keys: Vec<char> = Vec::new();
    let mut next_key_at = Instant::now();
    let ssrc: u32 = rng.gen();
    let mut buf = vec![0u8; 65_536];
    let mut rtp_buf = vec![0u8; 2048];
    let mut frame = tokio::time::interval(Duration::from_millis(20));
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let bump = |f: &dyn Fn(&mut PhoneStats)| {
        if let Ok(mut s) = me.stats.lock() {
            f(&mut s);
        }
    };
    loop {
        let now = Instant::now();
        if now >= reregister_at {
            let mut req = dialog::out_of_dialog(
                Method::Register,
                &format!("sip:{}", account.domain),
                &aor,
                "phonetag",
                &aor,
                &call_id,
                reg_seq,
            );
            req.headers.push("Contact", format!("<sip:{}@{local}>", account.username));
            req.headers.push("Expires", cfg.expires_s.to_string());
            reg_seq += 2;
            authed = false;
            let _ = ep.send_request(now, cfg.registrar, req.clone());
            register_req = Some(req);
            // Refreshed at half the expiry; retried in 2 s while it has not succeeded.
            reregister_at = now + Duration::from_secs(2);
        }
        let mut timers = vec![ep.poll_timeout(), Some(reregister_at)];
        if let Some(c) = &current {
            timers.push(c.answer_at);
        }
        if !keys.is_empty() {
            timers.push(Some(next_key_at));
        }
        let deadline = timers.into_iter().flatten().min().unwrap_or(now + Duration::from_secs(1));
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
                    if let Ok(mut h) = me.heard.lock() {
                        h.push_datagram(&rtp_buf[..n]);
                    }
                }
            }
            c = commands.recv() => match c {
                Some(PhoneCommand::Keys(k)) => {
                    keys.extend(k.chars().rev());
                    next_key_at = Instant::now();
                }
                Some(PhoneCommand::HangUp) => {
                    if let Some(mut c) = current.take() {
                        if c.up {
                            let bye = c.dialog.request(Method::Bye);
                            let _ = ep.send_request(Instant::now(), c.from, bye);
                        }
                        streams.stop(1);
                        bump(&|s| s.in_call = false);
                    }
                }
                None => {}
            },
            _ = frame.tick(), if !streams.is_empty() => {
                for (to, p) in streams.frame() {
                    let _ = rtp.send_to(&p, to).await;
                }
                let sent = streams.sent;
                bump(&|s| s.rtp_sent = sent);
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        let now = Instant::now();
        ep.handle_timeout(now);
        // Answer the ringing leg.
        if let Some(c) = current.as_mut() {
            if c.answer_at.is_some_and(|t| t <= now) {
                c.answer_at = None;
                if let (Some(tx), Some((body, to))) = (c.tx, crate::carrier::answer_sdp(&c.invite.body, rtp_addr)) {
                    let mut r = c.dialog.respond(&c.invite, 200);
                    r.headers.push("Contact", format!("<sip:{}@{local}>", account.username));
                    r.headers.push("Content-Type", "application/sdp");
                    r.body = body;
                    c.dialog.on_invite_response_sent(200);
                    let _ = ep.send_response(now, tx, r);
                    c.up = true;
                    c.remote_rtp = Some(to);
                    c.te_pt = sip::sdp::parse(&c.invite.body).ok().and_then(|m| m.telephone_event).unwrap_or(101);
                    streams.start(1, to, ssrc);
                    bump(&|s| {
                        s.calls_answered += 1;
                        s.in_call = true;
                    });
                }
            }
        }
        // Key the next digit.
        if !keys.is_empty() && now >= next_key_at {
            if let Some(k) = keys.pop() {
                let pt = current.as_ref().filter(|c| c.remote_rtp.is_some()).map(|c| c.te_pt);
                // The digit goes in the call's own RTP stream (its SSRC and sequence), as phones do.
                if let Some((to, packets)) = pt.and_then(|pt| streams.dtmf(1, k, pt)) {
                    for p in packets {
                        let _ = rtp.send_to(&p, to).await;
                    }
                    let sent = streams.sent;
                    bump(&|s| s.rtp_sent = sent);
                }
                next_key_at = now + Duration::from_millis(300);
            }
        }
        while let Some(e) = ep.poll_event() {
            match e {
                Event::Response { response, .. } if response.cseq().is_some_and(|c| c.method == Method::Register) => {
                    match response.status {
                        200 => {
                            bump(&|s| s.registered = true);
                            reregister_at = now + Duration::from_secs(u64::from(cfg.expires_s / 2).max(1));
                        }
                        401 | 407 if !authed => {
                            if let Some(req) = &register_req {
                                let cnonce: String = format!("{:016x}", rng.gen::<u64>());
                                if let Ok(r) = sip::auth::authorize(req, &response, &creds, &cnonce) {
                                    authed = true;
                                    reg_seq += 1;
                                    let _ = ep.send_request(now, cfg.registrar, r);
                                }
                            }
                        }
                        s if s >= 200 => bump(&|st| {
                            st.registered = false;
                            st.register_failures += 1;
                        }),
                        _ => {}
                    }
                }
                Event::Request { tx, from, request } if request.method == Method::Invite => {
                    if dialog::is_in_dialog(&request) {
                        let r = current.as_mut().and_then(|c| c.dialog.handle_request(&request, None));
                        let _ = ep.send_response(now, tx, r.unwrap_or_else(|| response_to(&request, 481, None)));
                        continue;
                    }
                    if current.as_ref().is_some_and(|c| c.from == from) {
                        let _ = ep.send_response(now, tx, response_to(&request, 486, Some("busy")));
                        continue;
                    }
                    if current.take().is_some() {
                        // A nailed-up leg from another dialer host: the campaign moved there (the
                        // host of the old leg is gone), so the new leg replaces the old one.
                        streams.stop(1);
                        bump(&|s| s.in_call = false);
                    }
                    let Some(d) = Dialog::uas(&request, "phone", &format!("sip:{}@{local}", account.username)) else {
                        let _ = ep.send_response(now, tx, response_to(&request, 400, Some("x")));
                        continue;
                    };
                    let _ = ep.send_response(now, tx, d.respond(&request, 180));
                    current = Some(Current {
                        tx: Some(tx),
                        invite: request,
                        dialog: d,
                        answer_at: Some(now + cfg.answer_after),
                        up: false,
                        remote_rtp: None,
                        from,
                        te_pt: 101,
                    });
                }
                Event::Request { tx, request, .. } if request.method == Method::Bye => {
                    let mine = current.as_ref().is_some_and(|c| request.call_id() == c.invite.call_id());
                    if mine {
                        let mut c = current.take().expect("invariant: checked just above");
                        let r =
                            c.dialog.handle_request(&request, None).unwrap_or_else(|| response_to(&request, 200, None));
                        let _ = ep.send_response(now, tx, r);
                        streams.stop(1);
                        bump(&|s| {
                            s.byes_received += 1;
                            s.in_call = false;
                        });
                    } else {
                        let _ = ep.send_response(now, tx, response_to(&request, 481, None));
                    }
                }
                Event::Request { tx, request, .. } => {
                    let _ = ep.send_response(now, tx, response_to(&request, 200, Some("phone")));
                }
                Event::Cancelled { tx } => {
                    if let Some(c) = current.take() {
                        let _ = ep.send_response(now, tx, c.dialog.respond(&c.invite, 487));
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
