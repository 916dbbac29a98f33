//! A quinn-style test harness: two endpoints, a simulated UDP network with latency and loss, and
//! virtual time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sip::{Config, Endpoint, Event};

pub const A: &str = "10.0.0.1:5060";
pub const B: &str = "10.0.0.2:5060";

/// Nonce keys for a test, named (padded to the shortest secret accepted).
pub fn keys(name: &[u8]) -> sip::auth::NonceKeys {
    let mut k = name.to_vec();
    k.extend_from_slice(b"-test-nonce-secret");
    sip::auth::NonceKeys::new(&k).expect("long enough")
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address literal")
}

pub fn endpoint(sent_by: &str, seed: u64) -> Endpoint {
    Endpoint::new(Config::new(sent_by), Box::new(ChaCha8Rng::seed_from_u64(seed)))
}

/// A datagram on the wire.
#[derive(Debug, Clone)]
pub struct Wire {
    pub at: Instant,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

impl Wire {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// `INVITE`, `ACK`, `SIP/2.0 200` ...: the first line up to the URI or reason.
    pub fn start(&self) -> String {
        let t = self.text();
        let line = t.lines().next().unwrap_or("").to_string();
        let mut it = line.split(' ');
        let a = it.next().unwrap_or("");
        if a == "SIP/2.0" {
            format!("{a} {}", it.next().unwrap_or(""))
        } else {
            a.to_string()
        }
    }
}

pub struct Pair {
    pub a: Endpoint,
    pub b: Endpoint,
    pub now: Instant,
    pub start: Instant,
    pub latency: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Datagrams to drop by (direction 'a'->'b' is true, index of send in that direction).
    pub drop_filter: Box<dyn FnMut(&Wire) -> bool>,
    rng: ChaCha8Rng,
    in_flight: VecDeque<Wire>,
    /// Every datagram sent, lost or not.
    pub sent: Vec<Wire>,
    pub events_a: Vec<Event>,
    pub events_b: Vec<Event>,
}

impl Pair {
    pub fn new(seed: u64) -> Pair {
        let now = Instant::now();
        Pair {
            a: endpoint(A, seed),
            b: endpoint(B, seed + 1),
            now,
            start: now,
            latency: Duration::from_millis(10),
            loss: 0.0,
            drop_filter: Box::new(|_| false),
            rng: ChaCha8Rng::seed_from_u64(seed + 2),
            in_flight: VecDeque::new(),
            sent: Vec::new(),
            events_a: Vec::new(),
            events_b: Vec::new(),
        }
    }

    fn collect(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.put(addr(A), t.dest, t.bytes);
        }
        while let Some(t) = self.b.poll_transmit() {
            self.put(addr(B), t.dest, t.bytes);
        }
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    fn put(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let w = Wire { at: self.now + self.latency, from, to, bytes };
        self.sent.push(Wire { at: self.now, ..w.clone() });
        let lost = self.rng.gen_bool(self.loss) || (self.drop_filter)(&w);
        if !lost {
            self.in_flight.push_back(w);
        }
    }

    /// Delivers what is due and fires due timers; then drains outputs. Returns whether anything happened.
    pub fn step(&mut self) -> bool {
        self.collect();
        let mut acted = false;
        let due: Vec<Wire> = {
            let (due, rest): (Vec<Wire>, Vec<Wire>) = self.in_flight.drain(..).partition(|w| w.at <= self.now);
            self.in_flight = rest.into();
            due
        };
        for w in due {
            acted = true;
            if w.to == addr(A) {
                self.a.handle_datagram(self.now, w.from, &w.bytes);
            } else if w.to == addr(B) {
                self.b.handle_datagram(self.now, w.from, &w.bytes);
            }
        }
        if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
            self.a.handle_timeout(self.now);
            acted = true;
        }
        if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
            self.b.handle_timeout(self.now);
            acted = true;
        }
        self.collect();
        acted
    }

    /// The next instant something is due (delivery or timer).
    pub fn next_wakeup(&self) -> Option<Instant> {
        [self.a.poll_timeout(), self.b.poll_timeout(), self.in_flight.iter().map(|w| w.at).min()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs until nothing is due before `until` (virtual time).
    pub fn drive_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            while self.step() {}
            match self.next_wakeup() {
                Some(t) if t <= until => self.now = self.now.max(t),
                _ => {
                    self.now = self.now.max(until);
                    while self.step() {}
                    return;
                }
            }
        }
        panic!("drive_until did not settle");
    }

    pub fn drive_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.drive_until(until);
    }

    /// Runs until the network is idle: no datagram in flight (timers may remain).
    pub fn drive_network(&mut self) {
        for _ in 0..10_000 {
            while self.step() {}
            match self.in_flight.iter().map(|w| w.at).min() {
                Some(t) => self.now = self.now.max(t),
                None => return,
            }
        }
        panic!("drive_network did not settle");
    }

    pub fn take_a(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events_a)
    }

    pub fn take_b(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events_b)
    }

    /// Starts of the datagrams sent by `from`.
    pub fn sent_by(&self, from: &str) -> Vec<String> {
        self.sent.iter().filter(|w| w.from == addr(from)).map(Wire::start).collect()
    }
}
