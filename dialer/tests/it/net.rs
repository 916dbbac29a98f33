//! A floor on a simulated network under virtual time: one [`CallControl`] (the shard's SIP), a
//! carrier and agents' phones built on the same sans-IO SIP endpoint, with scripted behaviour.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialer::calls::{CallControl, CallEvent, Command, Config, MediaOp, Now};
use media::shard::Control;
use media::SocketId;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sip::dialog::Dialog;
use sip::message::{response_to, Method, Request};
use sip::sdp::{self, Codec, LocalMedia};
use sip::{Endpoint, Event, TxId};

pub const SHARD: &str = "127.0.0.1:5060";
pub const CARRIER: &str = "127.0.0.2:5060";
pub const PHONE: &str = "127.0.0.3:5062";

/// Nonce keys for a test, named (padded to the shortest secret accepted).
pub fn keys(name: &[u8]) -> sip::auth::NonceKeys {
    let mut k = name.to_vec();
    k.extend_from_slice(b"-test-nonce-secret");
    sip::auth::NonceKeys::new(&k).expect("long enough")
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address literal")
}

/// What a scripted UAS does with an INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// 180, then 200 with SDP after `after`.
    Answer { after: Duration },
    /// 180, then this final status after `after`.
    Reject { status: u16, after: Duration },
    /// 180 and nothing more (rings until CANCELled).
    Ring,
    /// Nothing at all (not even 100 from the TU; the endpoint still sends 100).
    Silent,
}

/// One SIP peer (carrier or phone) with its dialogs.
pub struct Peer {
    pub addr: SocketAddr,
    pub ep: Endpoint,
    pub answer: Script,
    /// Per number (user part of the Request-URI), overriding `answer`.
    pub answers: HashMap<String, Script>,
    pub dialogs: HashMap<String, Dialog>,
    /// INVITEs received (Request-URI), in order.
    pub invites: Vec<Request>,
    pub byes: usize,
    pending: Vec<(Instant, TxId, Request, u16)>,
    pub events: Vec<Event>,
}

impl Peer {
    fn new(a: &str, seed: u64, answer: Script) -> Peer {
        Peer {
            addr: addr(a),
            ep: Endpoint::new(sip::Config::new(a), Box::new(ChaCha8Rng::seed_from_u64(seed))),
            answer,
            answers: HashMap::new(),
            dialogs: HashMap::new(),
            invites: Vec::new(),
            byes: 0,
            pending: Vec::new(),
            events: Vec::new(),
        }
    }

    fn answer_sdp(&self, offer: &[u8]) -> Vec<u8> {
        let md = sdp::parse(offer).expect("our offer parses");
        let local = LocalMedia {
            addr: self.addr.ip(),
            port: 40_000,
            codecs: vec![Codec::Pcmu],
            telephone_event: Some(101),
            session_id: 1,
            session_version: 1,
            ptime_ms: 20,
        };
        sdp::answer(&local, &md).expect("common codec").1
    }

    fn respond(&mut self, now: Instant, tx: TxId, req: &Request, status: u16) {
        let call_id = req.call_id().unwrap_or("").to_string();
        let mut d = match self.dialogs.remove(&call_id) {
            Some(d) => d,
            None => Dialog::uas(req, "peer", &format!("sip:peer@{}", self.addr)).expect("INVITE makes a dialog"),
        };
        let mut r = d.respond(req, status);
        if (200..300).contains(&status) {
            r.headers.push("Contact", format!("<sip:peer@{}>", self.addr));
            r.headers.push("Content-Type", "application/sdp");
            r.body = self.answer_sdp(&req.body);
        }
        d.on_invite_response_sent(status);
        let _ = self.ep.send_response(now, tx, r);
        if status < 300 {
            self.dialogs.insert(call_id, d);
        }
    }

    /// Hang up a confirmed dialog (BYE towards `to`).
    pub fn bye(&mut self, now: Instant, call_id: &str, to: SocketAddr) {
        let d = self.dialogs.get_mut(call_id).expect("a confirmed dialog to hang up");
        let bye = d.request(Method::Bye);
        self.ep.send_request(now, to, bye).expect("room for the BYE");
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match &e {
            Event::Request { tx, request, .. } if request.method == Method::Invite => {
                self.invites.push(request.clone());
                let user = request.uri.trim_start_matches("sip:").split('@').next().unwrap_or("").to_string();
                let answer = self.answers.get(&user).copied().unwrap_or(self.answer);
                match answer {
                    Script::Silent => {}
                    _ => self.respond(now, *tx, request, 180),
                }
                match answer {
                    Script::Answer { after } => self.pending.push((now + after, *tx, request.clone(), 200)),
                    Script::Reject { status, after } => self.pending.push((now + after, *tx, request.clone(), status)),
                    Script::Ring | Script::Silent => {}
                }
            }
            Event::Request { tx, request, .. } if request.method == Method::Bye => {
                self.byes += 1;
                let call_id = request.call_id().unwrap_or("").to_string();
                let r = match self.dialogs.get_mut(&call_id) {
                    Some(d) => d.handle_request(request, None).unwrap_or_else(|| response_to(request, 200, None)),
                    None => response_to(request, 481, None),
                };
                let _ = self.ep.send_response(now, *tx, r);
                self.dialogs.remove(&call_id);
            }
            Event::Request { tx, request, .. } => {
                let _ = self.ep.send_response(now, *tx, response_to(request, 200, Some("peer")));
            }
            Event::Cancelled { tx } => {
                if let Some(req) = self.ep.request(*tx).cloned() {
                    self.pending.retain(|(_, t, _, _)| t != tx);
                    self.respond(now, *tx, &req, 487);
                }
            }
            _ => {}
        }
        self.events.push(e);
    }

    fn run_pending(&mut self, now: Instant) {
        let due: Vec<_> = self.pending.iter().filter(|p| p.0 <= now).cloned().collect();
        self.pending.retain(|p| p.0 > now);
        for (_, tx, req, status) in due {
            self.respond(now, tx, &req, status);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let p = self.pending.iter().map(|p| p.0).min();
        match (p, self.ep.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The shard's call control, a carrier and one phone, under virtual time with 5 ms latency.
pub struct Net {
    pub now: Instant,
    pub unix_ms: u64,
    pub cc: CallControl,
    pub carrier: Peer,
    pub phone: Peer,
    pub events: Vec<CallEvent>,
    pub media: Vec<Control>,
    pub closed_ports: Vec<SocketId>,
    /// Datagrams from the shard to anything else (e.g. to an unknown address).
    pub stray: usize,
    next_port: u32,
}

impl Net {
    pub fn new(carrier: Script) -> Net {
        Net::with_config(carrier, |_| {})
    }

    pub fn with_config(carrier: Script, f: impl FnOnce(&mut Config)) -> Net {
        let mut cfg = Config::new(addr(SHARD), addr(CARRIER));
        cfg.phones.nonce_keys = keys(b"shard");
        f(&mut cfg);
        let mut cc = CallControl::new(cfg, Box::new(ChaCha8Rng::seed_from_u64(7)));
        let mut next_port = 100;
        cc.add_rtp_ports((0..8).map(|i| {
            next_port += 1;
            (SocketId(next_port), SocketAddr::new(addr(SHARD).ip(), 20_000 + 2 * i as u16))
        }));
        Net {
            now: Instant::now(),
            unix_ms: 1_780_000_000_000,
            cc,
            carrier: Peer::new(CARRIER, 11, carrier),
            phone: Peer::new(PHONE, 12, Script::Answer { after: Duration::from_millis(300) }),
            events: Vec::new(),
            media: Vec::new(),
            closed_ports: Vec::new(),
            stray: 0,
            next_port,
        }
    }

    pub fn t(&self) -> Now {
        Now { mono: self.now, unix_ms: self.unix_ms }
    }

    pub fn command(&mut self, c: Command) {
        let now = self.t();
        self.cc.handle_command(now, c);
        self.settle();
    }

    /// Moves every datagram (5 ms latency each hop) and drains every output until quiet.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.cc.poll_transmit() {
                moved = true;
                self.advance_clock(Duration::from_millis(5));
                let now = self.now;
                if t.dest == self.carrier.addr {
                    self.carrier.ep.handle_datagram(now, addr(SHARD), &t.bytes);
                } else if t.dest == self.phone.addr {
                    self.phone.ep.handle_datagram(now, addr(SHARD), &t.bytes);
                } else {
                    self.stray += 1;
                }
            }
            for peer in [&mut self.carrier, &mut self.phone] {
                let now = self.now;
                while let Some(e) = peer.ep.poll_event() {
                    moved = true;
                    peer.on_event(now, e);
                }
            }
            for from in [self.carrier.addr, self.phone.addr] {
                let peer = if from == self.carrier.addr { &mut self.carrier } else { &mut self.phone };
                let mut out = Vec::new();
                while let Some(t) = peer.ep.poll_transmit() {
                    out.push(t);
                }
                for t in out {
                    moved = true;
                    self.advance_clock(Duration::from_millis(5));
                    if t.dest == addr(SHARD) {
                        let now = self.t();
                        self.cc.handle_datagram(now, from, &t.bytes);
                    }
                }
            }
            while let Some(e) = self.cc.poll_event() {
                moved = true;
                self.events.push(e);
            }
            while let Some(op) = self.cc.poll_media() {
                moved = true;
                match op {
                    MediaOp::Control(c) => self.media.push(c),
                    MediaOp::ClosePort(p) => {
                        self.closed_ports.push(p);
                        // The driver binds a fresh socket for every closed one.
                        self.next_port += 1;
                        let port = self.next_port;
                        self.cc
                            .add_rtp_ports([(SocketId(port), SocketAddr::new(addr(SHARD).ip(), 30_000 + port as u16))]);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network did not settle in 1,000 rounds");
    }

    fn advance_clock(&mut self, d: Duration) {
        self.now += d;
        self.unix_ms += d.as_millis() as u64;
    }

    /// Runs virtual time forward by `d`, firing every timer on the way.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.settle();
            let next = [self.cc.poll_timeout(), self.carrier.next_deadline(), self.phone.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= end => {
                    if at > self.now {
                        let step = at - self.now;
                        self.advance_clock(step);
                    }
                    let now = self.t();
                    self.cc.handle_timeout(now);
                    let mono = self.now;
                    for peer in [&mut self.carrier, &mut self.phone] {
                        peer.ep.handle_timeout(mono);
                        peer.run_pending(mono);
                    }
                }
                _ => {
                    let step = end.saturating_duration_since(self.now);
                    self.advance_clock(step);
                    self.settle();
                    return;
                }
            }
        }
    }

    /// Events of the shard so far, taken.
    pub fn take_events(&mut self) -> Vec<CallEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn take_media(&mut self) -> Vec<Control> {
        std::mem::take(&mut self.media)
    }
}
