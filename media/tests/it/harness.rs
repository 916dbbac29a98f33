//! A virtual-time driver for [`Call`]: fixed addresses, seeded randomness, no sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media::recording::FileWrite;
use media::rtp::{self, HeaderFields};
use media::{Call, CallConfig, Codec, Event, Leg, LegConfig, Output, RecordingId, SocketId, Transmit};

pub const CUSTOMER_SOCKET: SocketId = SocketId(1);
pub const AGENT_SOCKET: SocketId = SocketId(2);
pub const TE_PT: u8 = 101;
pub const CUSTOMER_OUT_SSRC: u32 = 0xC0C0_0001;
pub const AGENT_OUT_SSRC: u32 = 0xA6E7_0002;

pub fn customer_addr() -> SocketAddr {
    "192.0.2.10:40000".parse().expect("invariant: literal address")
}

pub fn agent_addr() -> SocketAddr {
    "198.51.100.20:50000".parse().expect("invariant: literal address")
}

pub fn leg_config(role_customer: bool, codec: Codec, inband: bool) -> LegConfig {
    LegConfig {
        rtp_socket: if role_customer { CUSTOMER_SOCKET } else { AGENT_SOCKET },
        rtcp_socket: None,
        remote_rtp: if role_customer { customer_addr() } else { agent_addr() },
        remote_rtcp: None,
        codec,
        telephone_event_pt: Some(TE_PT),
        ssrc: if role_customer { CUSTOMER_OUT_SSRC } else { AGENT_OUT_SSRC },
        initial_seq: if role_customer { 65500 } else { 65000 },
        initial_timestamp: if role_customer { 4_294_960_000 } else { 1234 },
        inband_dtmf: inband,
    }
}

/// A call plus a virtual clock and collected outputs.
pub struct Sim {
    pub call: Call,
    pub now: Instant,
    pub sent: Vec<(Instant, Transmit)>,
    pub events: Vec<Event>,
    /// Recording writes not yet taken ([`Sim::take_writes`]).
    pub writes: Vec<(RecordingId, FileWrite)>,
}

impl Sim {
    pub fn new(config: impl FnOnce(&mut CallConfig)) -> Sim {
        let start = Instant::now();
        let mut cfg = CallConfig::new(start, 0xE000_0000_0000_0000);
        config(&mut cfg);
        Sim { call: Call::new(cfg), now: start, sent: Vec::new(), events: Vec::new(), writes: Vec::new() }
    }

    pub fn leg(&self, customer: bool, codec: Codec, inband: bool) -> Leg {
        Leg::new(self.now, leg_config(customer, codec, inband))
    }

    /// Collects the call's outputs until it answers with its next deadline, which it returns.
    pub fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.call.poll_output() {
                Output::Transmit(t) => self.sent.push((self.now, t)),
                Output::Event(e) => self.events.push(e),
                Output::RecordingWrite { id, write } => self.writes.push((id, write)),
                Output::Timeout(at) => return at,
            }
        }
    }

    /// The recording writes made so far, in order.
    pub fn take_writes(&mut self) -> Vec<(RecordingId, FileWrite)> {
        self.drain();
        std::mem::take(&mut self.writes)
    }

    /// Advance virtual time to `to`, firing every timer on the way.
    pub fn advance_to(&mut self, to: Instant) {
        while let Some(t) = self.drain() {
            if t > to {
                break;
            }
            self.now = self.now.max(t);
            self.call.handle_timeout(self.now);
        }
        self.now = self.now.max(to);
        self.call.handle_timeout(self.now);
        self.drain();
    }

    pub fn advance(&mut self, d: Duration) {
        let to = self.now + d;
        self.advance_to(to);
    }

    pub fn receive(&mut self, customer: bool, data: &[u8]) {
        let (sock, from) = if customer { (CUSTOMER_SOCKET, customer_addr()) } else { (AGENT_SOCKET, agent_addr()) };
        self.call.handle_receive(self.now, sock, from, data);
        self.drain();
    }

    /// RTP packets sent to one side (RTCP filtered out), parsed.
    pub fn rtp_to(&self, customer: bool) -> Vec<(Instant, Vec<u8>)> {
        let dest = if customer { customer_addr() } else { agent_addr() };
        self.sent
            .iter()
            .filter(|(_, t)| t.destination == dest && !rtp::looks_like_rtcp(&t.payload))
            .map(|(at, t)| (*at, t.payload.clone()))
            .collect()
    }
}

pub fn packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    rtp::build(HeaderFields { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc }, payload)
}

/// Standard normal sample (Box-Muller).
pub fn gaussian(rng: &mut impl rand::Rng) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}
