//! The relay delivers every packet once with valid rewritten headers under loss, duplication
//! and reordering; hold audio -> customer -> hold audio has no gap or timestamp jump.

use std::collections::HashMap;
use std::time::Duration;

use media::player::beep;
use media::rtp;
use media::stats::{parse_compound, RtcpPacket};
use media::{Codec, DropReason, Event, Role};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::{packet, Sim, AGENT_OUT_SSRC, CUSTOMER_OUT_SSRC};

const N: usize = 5_000;

/// Packet `i` of a test stream: its index is in the first 4 payload bytes.
fn tagged(i: usize, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut payload = vec![0x55u8; 160];
    payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
    packet(0, false, seq, ts, ssrc, &payload)
}

fn tag(payload: &[u8]) -> usize {
    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize
}

struct Wire {
    order: Vec<usize>,
    lost: usize,
    duplicated: usize,
}

/// 5 % loss, 2 % duplication, and each packet displaced by up to 4 places (the first packet of
/// the stream stays first: the stream's anchor).
fn impair(rng: &mut ChaCha8Rng, n: usize) -> Wire {
    let mut order = vec![0];
    let (mut lost, mut duplicated) = (0, 0);
    for i in 1..n {
        if rng.gen_bool(0.05) {
            lost += 1;
            continue;
        }
        order.push(i);
        if rng.gen_bool(0.02) {
            order.push(i);
            duplicated += 1;
        }
    }
    for chunk in order[1..].chunks_mut(5) {
        chunk.shuffle(rng);
    }
    Wire { order, lost, duplicated }
}

#[test]
fn bridged_relay_every_packet_once_with_valid_headers_and_seamless_hold_switches() {
    let seed = 0x0E1A_0001u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hold: Vec<i16> = (0..800).map(|i| ((i % 40) * 100) as i16).collect();
    let mut sim = Sim::new(|c| {
        c.hold_audio = Some(hold.into());
        c.bridge_beep = Some(beep(1000.0, 200, 4000));
    });
    let agent = sim.leg(false, Codec::Pcmu, false);
    sim.call.set_agent(sim.now, agent);
    // One second of hold audio to the agent.
    sim.advance(Duration::from_millis(1000));
    let hold_before = sim.rtp_to(false).len();
    assert_eq!(hold_before, 51, "hold frames at 0, 20, ..., 1000 ms");

    let cust = sim.leg(true, Codec::Pcmu, false);
    sim.call.set_customer(sim.now, cust);
    assert!(sim.call.is_bridged());

    let (c_ssrc, a_ssrc) = (0xCAFE_0001u32, 0xA6E7_F00Du32);
    let (c_seq0, a_seq0) = (65_000u16, 100u16);
    let (c_ts0, a_ts0) = (4_294_000_000u32, 777u32);
    let c_wire = impair(&mut rng, N);
    let a_wire = impair(&mut rng, N);
    let steps = c_wire.order.len().max(a_wire.order.len());
    for k in 0..steps {
        if let Some(&i) = c_wire.order.get(k) {
            let p = tagged(i, c_seq0.wrapping_add(i as u16), c_ts0.wrapping_add(160 * i as u32), c_ssrc);
            sim.receive(true, &p);
        }
        if let Some(&i) = a_wire.order.get(k) {
            let p = tagged(i, a_seq0.wrapping_add(i as u16), a_ts0.wrapping_add(160 * i as u32), a_ssrc);
            sim.receive(false, &p);
        }
        sim.advance(Duration::from_millis(20));
    }
    assert_eq!(sim.call.drops().get(DropReason::Duplicate), (c_wire.duplicated + a_wire.duplicated) as u64);
    let c_stats = sim.call.stats(Role::Customer).expect("invariant: customer attached");
    assert_eq!(
        c_stats.received.cumulative_lost,
        c_wire.lost as i64 - c_wire.order.iter().filter(|&&i| i >= N).count() as i64
    );
    assert_eq!(c_stats.received.packets as usize, N - c_wire.lost);

    let bridged_sent = sim.rtp_to(false).len();
    let _customer = sim.call.take_customer(sim.now).expect("invariant: customer attached");
    sim.advance(Duration::from_millis(1000));

    // Agent direction: hold, customer (relayed, beep mixed over the first 200 ms), hold.
    let to_agent = sim.rtp_to(false);
    let parsed: Vec<_> =
        to_agent.iter().map(|(at, p)| (*at, rtp::parse(p).expect("invariant: valid RTP out"))).collect();
    assert!(parsed.iter().all(|(_, r)| r.ssrc == AGENT_OUT_SSRC && r.payload_type == 0));
    // Sent order == arrival order; sort relayed packets by input index to check the mapping.
    let relayed = &parsed[hold_before..bridged_sent];
    let mut seen = HashMap::new();
    for (_, r) in relayed {
        let i = tag(r.payload);
        // With the beep mixed in, µ-law re-encoding may alter the tag bytes; check the mapping
        // through sequence numbers instead.
        let in_idx = r.sequence.wrapping_sub(parsed[hold_before].1.sequence) as usize;
        assert!(seen.insert(in_idx, *r).is_none(), "output sequence used twice");
        if in_idx >= 10 {
            assert_eq!(i, in_idx, "payload {i} mapped to the sequence of {in_idx}");
        }
        assert_eq!(
            r.timestamp.wrapping_sub(parsed[hold_before].1.timestamp),
            160 * in_idx as u32,
            "timestamp offset constant within the customer source"
        );
    }
    assert_eq!(seen.len(), N - c_wire.lost, "every customer packet delivered exactly once");
    // Seamless switches: hold -> customer and customer -> hold.
    let last_hold = parsed[hold_before - 1].1;
    let first_cust = parsed[hold_before].1;
    assert_eq!(first_cust.sequence, last_hold.sequence.wrapping_add(1));
    assert_eq!(first_cust.timestamp, last_hold.timestamp.wrapping_add(160));
    assert!(first_cust.marker);
    let highest =
        seen.values().max_by_key(|r| r.sequence.wrapping_sub(first_cust.sequence)).expect("invariant: non-empty");
    let back_to_hold = parsed[bridged_sent].1;
    assert_eq!(back_to_hold.sequence, highest.sequence.wrapping_add(1));
    assert_eq!(back_to_hold.timestamp, highest.timestamp.wrapping_add(160));
    assert!(back_to_hold.marker);
    for w in parsed[bridged_sent..].windows(2) {
        assert_eq!(w[1].1.sequence, w[0].1.sequence.wrapping_add(1));
        assert_eq!(w[1].1.timestamp, w[0].1.timestamp.wrapping_add(160));
    }
    // The beep was laid over the first packets, then relay is byte-exact again.
    assert!(sim.events.contains(&Event::PromptFinished { role: Role::Agent }));

    // Customer direction: every agent packet once, one SSRC, constant offsets, tags intact.
    let to_customer: Vec<_> = sim.rtp_to(true).iter().map(|(_, p)| p.clone()).collect();
    let mut seen = HashMap::new();
    let first = rtp::parse(&to_customer[0]).expect("invariant: valid RTP out");
    assert_eq!((first.sequence, first.timestamp), (65500, 4_294_960_000), "injected initial seq/ts");
    for p in &to_customer {
        let r = rtp::parse(p).expect("invariant: valid RTP out");
        assert_eq!(r.ssrc, CUSTOMER_OUT_SSRC);
        let i = tag(r.payload);
        assert_eq!(r.sequence, first.sequence.wrapping_add(i as u16));
        assert_eq!(r.timestamp, first.timestamp.wrapping_add(160 * i as u32));
        assert!(seen.insert(i, ()).is_none(), "agent packet {i} delivered twice");
    }
    assert_eq!(seen.len(), N - a_wire.lost);

    // RTCP went to both legs and parses.
    let rtcp: Vec<_> = sim.sent.iter().filter(|(_, t)| rtp::looks_like_rtcp(&t.payload)).collect();
    let to = |addr| rtcp.iter().filter(|(_, t)| t.destination == addr).count();
    // ~100 s bridged at one report per 5 s.
    assert!(to(crate::harness::customer_addr()) >= 18 && to(crate::harness::agent_addr()) >= 18);
    for (_, t) in rtcp {
        let pkts = parse_compound(&t.payload).expect("invariant: valid RTCP out");
        assert!(matches!(pkts[0], RtcpPacket::SenderReport { .. }));
    }
}

/// RFC 3550 §6.3.1: two legs set up at the same instant send their reports at different
/// instants, each interval between 0.5 and 1.5 times the nominal 5 s and not all the same.
#[test]
fn rtcp_intervals_are_spread_so_legs_set_up_together_do_not_report_together() {
    let mut sim = Sim::new(|_| {});
    let start = sim.now;
    let agent = sim.leg(false, Codec::Pcmu, false);
    let cust = sim.leg(true, Codec::Pcmu, false);
    sim.call.set_agent(sim.now, agent);
    sim.call.set_customer(sim.now, cust);
    sim.advance(Duration::from_secs(300));
    let times = |addr: std::net::SocketAddr| -> Vec<Duration> {
        let rtcp = sim.sent.iter().filter(|(_, t)| t.destination == addr && rtp::looks_like_rtcp(&t.payload));
        rtcp.map(|(at, _)| at.duration_since(start)).collect()
    };
    let (to_customer, to_agent) = (times(crate::harness::customer_addr()), times(crate::harness::agent_addr()));
    assert!(
        to_customer.len() >= 40 && to_agent.len() >= 40,
        "{} and {} reports in 300 s",
        to_customer.len(),
        to_agent.len()
    );
    assert_ne!(to_customer[0], to_agent[0], "both legs' first reports at the same instant");
    for reports in [&to_customer, &to_agent] {
        let gaps: Vec<Duration> = reports.windows(2).map(|w| w[1] - w[0]).collect();
        let (min, max) = (gaps.iter().min().expect("gaps"), gaps.iter().max().expect("gaps"));
        assert!(*min >= Duration::from_millis(2500) && *max <= Duration::from_millis(7500), "gaps {min:?}..{max:?}");
        assert!(*max - *min >= Duration::from_secs(2), "intervals not spread: {min:?}..{max:?}");
        let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
        assert!(mean > Duration::from_millis(4300) && mean < Duration::from_millis(5700), "mean interval {mean:?}");
    }
}

#[test]
fn transcodes_between_pcmu_and_pcma() {
    let mut sim = Sim::new(|_| {});
    let agent = sim.leg(false, Codec::Pcmu, false);
    let cust = sim.leg(true, Codec::Pcma, false);
    sim.call.set_agent(sim.now, agent);
    sim.call.set_customer(sim.now, cust);
    let samples: Vec<i16> = (0..160).map(|i| (i * 150 - 12000) as i16).collect();
    let mut pcma = Vec::new();
    Codec::Pcma.encode_into(&samples, &mut pcma);
    sim.receive(true, &packet(8, false, 1, 160, 9, &pcma));
    let out = sim.rtp_to(false);
    let r = rtp::parse(&out[0].1).expect("invariant: valid RTP out");
    assert_eq!(r.payload_type, 0);
    for (&b, &s) in r.payload.iter().zip(&samples) {
        let d = i32::from(Codec::Pcmu.decode(b)) - i32::from(s);
        assert!(d.abs() <= i32::from(s).abs() / 8 + 32, "{s} -> {}", Codec::Pcmu.decode(b));
    }
}

#[test]
fn waiting_customer_hears_prompt_then_is_bridged() {
    let mut sim = Sim::new(|_| {});
    let cust = sim.leg(true, Codec::Pcmu, false);
    sim.call.set_customer(sim.now, cust);
    let prompt: Vec<i16> = vec![1000; 8 * 70];
    sim.call.play(sim.now, Role::Customer, prompt.into()).expect("invariant: empty queue");
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.rtp_to(true).len(), 4, "70 ms prompt = 4 frames, then silence (no packets)");
    assert!(sim.events.contains(&Event::PromptFinished { role: Role::Customer }));
}

#[test]
fn unknown_source_and_ssrc_are_dropped_then_a_persistent_new_ssrc_is_adopted() {
    let mut sim = Sim::new(|_| {});
    let cust = sim.leg(true, Codec::Pcmu, false);
    sim.call.set_customer(sim.now, cust);
    sim.receive(true, &packet(0, false, 1, 0, 111, &[0xFF; 160]));
    sim.call.handle_receive(
        sim.now,
        crate::harness::CUSTOMER_SOCKET,
        "203.0.113.9:4000".parse().expect("literal"),
        &packet(0, false, 2, 160, 111, &[0xFF; 160]),
    );
    sim.call.handle_receive(
        sim.now,
        media::SocketId(99),
        crate::harness::customer_addr(),
        &packet(0, false, 2, 160, 111, &[0xFF; 160]),
    );
    sim.receive(true, &packet(18, false, 2, 160, 111, &[0xFF; 20]));
    assert_eq!(sim.call.drops().get(DropReason::UnknownSource), 1);
    assert_eq!(sim.call.drops().get(DropReason::UnknownSocket), 1);
    assert_eq!(sim.call.drops().get(DropReason::UnsupportedPayloadType), 1);
    for i in 0..25u16 {
        sim.receive(true, &packet(0, false, 500 + i, 0, 222, &[0xFF; 160]));
    }
    assert_eq!(sim.call.drops().get(DropReason::UnknownSsrc), 24);
    assert!(sim.events.contains(&Event::RemoteSsrcChanged { role: Role::Customer, ssrc: 222 }));
}

#[test]
fn sends_rfc4733_digit_to_a_waiting_leg_between_player_frames() {
    let mut sim = Sim::new(|_| {});
    let cust = sim.leg(true, Codec::Pcmu, false);
    sim.call.set_customer(sim.now, cust);
    sim.call.set_loop(sim.now, Role::Customer, Some(vec![500i16; 160].into()));
    sim.advance(Duration::from_millis(100));
    sim.call.send_dtmf(sim.now, Role::Customer, '5', 100).expect("not bridged, negotiated");
    assert_eq!(sim.call.send_dtmf(sim.now, Role::Customer, '6', 100), Err(media::SendDtmfError::Busy));
    sim.advance(Duration::from_millis(300));
    let out: Vec<_> = sim.rtp_to(true).iter().map(|(_, p)| rtp::parse(p).expect("valid").to_owned_fields()).collect();
    for w in out.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1), "sequence continuous through the event");
    }
    let events: Vec<_> = out.iter().filter(|f| f.2 == crate::harness::TE_PT).collect();
    assert_eq!(events.len(), 5 + 3, "5 updates of 20 ms, then 3 end packets");
    assert!(events[0].3, "first event packet marked");
    assert!(events.iter().all(|f| f.1 == events[0].1), "one timestamp per event");
    let mut rx = media::dtmf::TelephoneEventReceiver::default();
    let digits: Vec<_> = events.iter().filter_map(|f| rx.receive(f.1, &f.4)).collect();
    assert_eq!(digits, vec!['5']);
    let audio_after =
        out.iter().skip_while(|f| f.2 != crate::harness::TE_PT).find(|f| f.2 == 0).expect("audio resumes");
    assert_eq!(audio_after.1, events[0].1.wrapping_add(800), "audio resumes after the event's 100 ms");
}

trait OwnedFields {
    fn to_owned_fields(&self) -> (u16, u32, u8, bool, Vec<u8>);
}

impl OwnedFields for rtp::RtpPacket<'_> {
    fn to_owned_fields(&self) -> (u16, u32, u8, bool, Vec<u8>) {
        (self.sequence, self.timestamp, self.payload_type, self.marker, self.payload.to_vec())
    }
}
