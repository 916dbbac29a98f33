//! Supervisors on a bridged call, under virtual time: who hears whom in each mode, told apart by
//! the tones' frequencies (each party sends its own), and the relay untouched without them.

use std::net::SocketAddr;
use std::time::Duration;

use media::dtmf::tone_share;
use media::rtp;
use media::{Codec, Leg, LegConfig, SocketId, SupervisorMode};

use crate::harness::{agent_addr, customer_addr, packet, Sim};

const SUPERVISOR_SOCKET: SocketId = SocketId(3);
const CUSTOMER_HZ: f32 = 500.0;
const AGENT_HZ: f32 = 1100.0;
const SUPERVISOR_HZ: f32 = 1700.0;

fn supervisor_addr() -> SocketAddr {
    "203.0.113.30:60000".parse().expect("invariant: literal address")
}

fn supervisor_leg(sim: &Sim, codec: Codec) -> Leg {
    Leg::new(
        sim.now,
        LegConfig {
            rtp_socket: SUPERVISOR_SOCKET,
            rtcp_socket: None,
            remote_rtp: supervisor_addr(),
            remote_rtcp: None,
            codec,
            telephone_event_pt: Some(101),
            ssrc: 0x5555_0003,
            initial_seq: 100,
            initial_timestamp: 9_999,
            inband_dtmf: false,
        },
    )
}

/// 20 ms of a sine at `hz`, frame `n` of the stream, in `codec`.
fn tone_frame(hz: f32, n: u32, codec: Codec) -> Vec<u8> {
    let samples: Vec<i16> = (0..160)
        .map(|i| {
            let t = (n * 160 + i) as f32 / 8000.0;
            (6000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
        })
        .collect();
    let mut out = Vec::new();
    codec.encode_into(&samples, &mut out);
    out
}

/// The audio a destination received from `from_frame` on, decoded.
fn heard(sim: &Sim, dest: SocketAddr, codec: Codec, skip: usize) -> Vec<i16> {
    let mut out = Vec::new();
    for (_, t) in sim.sent.iter().filter(|(_, t)| t.destination == dest && !rtp::looks_like_rtcp(&t.payload)).skip(skip)
    {
        let p = rtp::parse(&t.payload).expect("valid RTP out");
        if p.payload_type == codec.payload_type() {
            codec.decode_into(p.payload, &mut out);
        }
    }
    out
}

fn count_to(sim: &Sim, dest: SocketAddr) -> usize {
    sim.sent.iter().filter(|(_, t)| t.destination == dest && !rtp::looks_like_rtcp(&t.payload)).count()
}

/// A bridged call; every party sends its tone for `frames` 20 ms frames (the supervisor from
/// the start when `mode` is given).
fn run(mode: Option<SupervisorMode>, frames: u32) -> (Sim, [usize; 3]) {
    let mut sim = Sim::new(|_| {});
    let codec = Codec::Pcmu;
    let agent = sim.leg(false, codec, false);
    let customer = sim.leg(true, codec, false);
    sim.call.set_agent(sim.now, agent);
    sim.call.set_customer(sim.now, customer);
    if let Some(mode) = mode {
        let leg = supervisor_leg(&sim, codec);
        assert!(sim.call.add_supervisor(sim.now, 77, leg, mode).expect("room").is_none());
    }
    sim.drain();
    let before = [count_to(&sim, customer_addr()), count_to(&sim, agent_addr()), count_to(&sim, supervisor_addr())];
    for n in 0..frames {
        // The parties' packets arrive at different phases of the 20 ms tick.
        let at = sim.now;
        sim.advance_to(at + Duration::from_millis(3));
        sim.receive(true, &packet(0, n == 0, 1000 + n as u16, n * 160, 0xC1, &tone_frame(CUSTOMER_HZ, n, codec)));
        sim.advance_to(at + Duration::from_millis(9));
        sim.receive(false, &packet(0, n == 0, 2000 + n as u16, n * 160, 0xA1, &tone_frame(AGENT_HZ, n, codec)));
        sim.advance_to(at + Duration::from_millis(15));
        let p = packet(0, n == 0, 3000 + n as u16, n * 160, 0x51, &tone_frame(SUPERVISOR_HZ, n, codec));
        sim.call.handle_receive(sim.now, SUPERVISOR_SOCKET, supervisor_addr(), &p);
        sim.drain();
        sim.advance_to(at + Duration::from_millis(20));
    }
    (sim, before)
}

/// (share of the customer's tone, of the agent's, of the supervisor's) in what `dest` heard.
fn shares(sim: &Sim, dest: SocketAddr, skip: usize) -> [f32; 3] {
    let audio = heard(sim, dest, Codec::Pcmu, skip);
    assert!(audio.len() >= 8000, "{dest} heard {} samples", audio.len());
    let tail = &audio[audio.len() - 8000..];
    [tone_share(tail, CUSTOMER_HZ), tone_share(tail, AGENT_HZ), tone_share(tail, SUPERVISOR_HZ)]
}

const HEARS: f32 = 0.15;
const DEAF: f32 = 0.01;

#[test]
fn listen_the_supervisor_hears_both_and_nobody_hears_the_supervisor() {
    let (sim, before) = run(Some(SupervisorMode::Listen), 100);
    let [c, a, s] = shares(&sim, supervisor_addr(), before[2]);
    assert!(c > HEARS && a > HEARS && s < DEAF, "supervisor heard {c} {a} {s}");
    let [c, a, s] = shares(&sim, agent_addr(), before[1]);
    assert!(c > 0.9 && a < DEAF && s < DEAF, "agent heard {c} {a} {s}");
    let [c, a, s] = shares(&sim, customer_addr(), before[0]);
    assert!(c < DEAF && a > 0.9 && s < DEAF, "customer heard {c} {a} {s}");
    // A listen leaves the parties' streams a plain relay: one packet out per packet in.
    assert_eq!(count_to(&sim, agent_addr()) - before[1], 100);
}

#[test]
fn whisper_the_agent_hears_the_supervisor_the_customer_does_not() {
    let (sim, before) = run(Some(SupervisorMode::Whisper), 100);
    let [c, a, s] = shares(&sim, agent_addr(), before[1]);
    assert!(c > HEARS && s > HEARS && a < DEAF, "agent heard {c} {a} {s}");
    let [c, a, s] = shares(&sim, customer_addr(), before[0]);
    assert!(a > 0.9 && s < DEAF && c < DEAF, "customer heard {c} {a} {s}");
    let [c, a, _] = shares(&sim, supervisor_addr(), before[2]);
    assert!(c > HEARS && a > HEARS, "supervisor heard {c} {a}");
}

#[test]
fn barge_both_parties_hear_the_supervisor() {
    let (sim, before) = run(Some(SupervisorMode::Barge), 100);
    let [c, a, s] = shares(&sim, agent_addr(), before[1]);
    assert!(c > HEARS && s > HEARS && a < DEAF, "agent heard {c} {a} {s}");
    let [c, a, s] = shares(&sim, customer_addr(), before[0]);
    assert!(a > HEARS && s > HEARS && c < DEAF, "customer heard {c} {a} {s}");
}

#[test]
fn mixed_streams_stay_continuous_and_the_relay_returns_when_the_supervisor_leaves() {
    let (mut sim, before) = run(Some(SupervisorMode::Barge), 50);
    sim.call.set_supervisor_mode(77, SupervisorMode::Whisper);
    let codec = Codec::Pcmu;
    let send_round = |sim: &mut Sim, n: u32| {
        let at = sim.now;
        sim.receive(true, &packet(0, false, 1000 + n as u16, n * 160, 0xC1, &tone_frame(CUSTOMER_HZ, n, codec)));
        sim.receive(false, &packet(0, false, 2000 + n as u16, n * 160, 0xA1, &tone_frame(AGENT_HZ, n, codec)));
        sim.advance_to(at + Duration::from_millis(20));
    };
    for n in 50..60 {
        send_round(&mut sim, n);
    }
    assert!(sim.call.take_supervisor(77).is_some());
    assert_eq!(sim.call.supervisors().count(), 0);
    for n in 60..70 {
        send_round(&mut sim, n);
    }
    for dest in [customer_addr(), agent_addr()] {
        let skip = if dest == customer_addr() { before[0] } else { before[1] };
        let seqs: Vec<u16> = sim
            .sent
            .iter()
            .filter(|(_, t)| t.destination == dest && !rtp::looks_like_rtcp(&t.payload))
            .skip(skip)
            .map(|(_, t)| rtp::parse(&t.payload).expect("valid").sequence)
            .collect();
        assert!(seqs.len() >= 65, "{dest}: {} packets", seqs.len());
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0].wrapping_add(1), "{dest}: the outgoing sequence is continuous");
        }
    }
    // After the supervisor left, the agent gets the customer's packets relayed (no mixing tick).
    let last = sim.sent.iter().rev().find(|(_, t)| t.destination == agent_addr()).expect("sent");
    let p = rtp::parse(&last.1.payload).expect("valid");
    assert_eq!(p.payload, &tone_frame(CUSTOMER_HZ, 69, codec)[..], "relayed as received");
}

#[test]
fn a_call_takes_at_most_its_supervisors_and_foreign_packets_are_dropped() {
    let (mut sim, _) = run(None, 1);
    for id in 0..media::call::MAX_SUPERVISORS as u64 {
        let leg = supervisor_leg(&sim, Codec::Pcmu);
        assert!(sim.call.add_supervisor(sim.now, id, leg, SupervisorMode::Listen).is_ok());
    }
    let leg = supervisor_leg(&sim, Codec::Pcmu);
    assert!(sim.call.add_supervisor(sim.now, 99, leg, SupervisorMode::Listen).is_err());
    // A packet on a supervisor's socket from elsewhere is a counted drop.
    let p = packet(0, false, 1, 160, 0x51, &tone_frame(SUPERVISOR_HZ, 0, Codec::Pcmu));
    let drops = sim.call.drops().total();
    sim.call.handle_receive(sim.now, SUPERVISOR_SOCKET, customer_addr(), &p);
    assert_eq!(sim.call.drops().total(), drops + 1);
    assert!(!sim.call.set_supervisor_mode(99, SupervisorMode::Barge));
}

#[test]
fn on_hold_the_customer_hears_the_hold_audio_and_the_agent_nothing() {
    let hold_hz = 392.0;
    let mut sim = Sim::new(|c| c.hold_audio = Some(media::player::beep(hold_hz, 2000, 4000)));
    let codec = Codec::Pcmu;
    let agent = sim.leg(false, codec, false);
    let customer = sim.leg(true, codec, false);
    sim.call.set_agent(sim.now, agent);
    sim.call.set_customer(sim.now, customer);
    sim.drain();
    let before = [count_to(&sim, customer_addr()), count_to(&sim, agent_addr())];
    sim.call.set_hold(sim.now, true);
    assert!(sim.call.is_held());
    for n in 0..60u32 {
        let at = sim.now;
        sim.receive(true, &packet(0, false, 1000 + n as u16, n * 160, 0xC1, &tone_frame(CUSTOMER_HZ, n, codec)));
        sim.receive(false, &packet(0, false, 2000 + n as u16, n * 160, 0xA1, &tone_frame(AGENT_HZ, n, codec)));
        sim.advance_to(at + Duration::from_millis(20));
    }
    assert_eq!(count_to(&sim, agent_addr()), before[1], "the agent gets nothing while the customer is held");
    let audio = heard(&sim, customer_addr(), codec, before[0]);
    assert!(audio.len() >= 8000, "the customer gets the hold audio: {} samples", audio.len());
    let tail = &audio[audio.len() - 8000..];
    assert!(
        tone_share(tail, hold_hz) > 0.9 && tone_share(tail, AGENT_HZ) < DEAF,
        "the customer hears the hold audio only"
    );
    // Back: the parties hear each other again.
    sim.call.set_hold(sim.now, false);
    let before = [count_to(&sim, customer_addr()), count_to(&sim, agent_addr())];
    for n in 60..110u32 {
        let at = sim.now;
        sim.receive(true, &packet(0, false, 1000 + n as u16, n * 160, 0xC1, &tone_frame(CUSTOMER_HZ, n, codec)));
        sim.receive(false, &packet(0, false, 2000 + n as u16, n * 160, 0xA1, &tone_frame(AGENT_HZ, n, codec)));
        sim.advance_to(at + Duration::from_millis(20));
    }
    let [c, a, _] = shares(&sim, customer_addr(), before[0]);
    assert!(a > 0.9 && c < DEAF, "after the hold the customer hears the agent: {a}");
    let [c, _, _] = shares(&sim, agent_addr(), before[1]);
    assert!(c > 0.9, "after the hold the agent hears the customer: {c}");
}
