//! Malformed packets are counted drops, never a panic.

use std::time::Duration;

use media::{Codec, DropReason};
use proptest::prelude::*;

use crate::harness::{agent_addr, customer_addr, packet, Sim, AGENT_SOCKET, CUSTOMER_SOCKET};

fn bridged() -> Sim {
    let mut sim = Sim::new(|c| c.hold_audio = Some(vec![100i16; 320].into()));
    let agent = sim.leg(false, Codec::Pcmu, true);
    let cust = sim.leg(true, Codec::Pcma, true);
    sim.call.set_agent(sim.now, agent);
    sim.call.set_customer(sim.now, cust);
    sim.call.start_recording(sim.now, media::RecordingId(1), Codec::Pcmu);
    sim
}

#[test]
fn short_and_wrong_version_are_counted() {
    let mut sim = bridged();
    sim.receive(true, &[0x80; 5]);
    sim.receive(true, &[0x40; 20]);
    sim.receive(true, &[0x80, 0xC8, 0, 50]); // RTCP SR claiming 204 bytes
    assert_eq!(sim.call.drops().get(DropReason::Short), 1);
    assert_eq!(sim.call.drops().get(DropReason::WrongVersion), 1);
    assert_eq!(sim.call.drops().get(DropReason::BadRtcp), 1);
    assert!(sim.rtp_to(false).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_and_every_rejection_is_counted(
        datagrams in proptest::collection::vec(
            (any::<bool>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 1..20)
    ) {
        let mut sim = bridged();
        for (to_customer, known_addr, data) in datagrams {
            let (sock, addr) = if to_customer { (CUSTOMER_SOCKET, customer_addr()) } else { (AGENT_SOCKET, agent_addr()) };
            let from = if known_addr { addr } else { "203.0.113.1:9".parse().expect("literal") };
            let before = sim.call.drops().total();
            sim.call.handle_receive(sim.now, sock, from, &data);
            sim.drain();
            if !known_addr {
                prop_assert_eq!(sim.call.drops().total(), before + 1);
            }
            sim.advance(Duration::from_millis(7));
        }
    }

    #[test]
    fn valid_headers_with_random_fields_never_panic(
        pkts in proptest::collection::vec(
            (any::<bool>(), 0u8..128, any::<u16>(), any::<u32>(), any::<u32>(), any::<bool>(),
             proptest::collection::vec(any::<u8>(), 0..400)), 1..40)
    ) {
        let mut sim = bridged();
        for (to_customer, pt, seq, ts, ssrc, marker, payload) in pkts {
            let pt = if pt % 3 == 0 { 101 } else { pt };
            let p = packet(pt, marker, seq, ts, ssrc, &payload);
            sim.receive(to_customer, &p);
            sim.advance(Duration::from_millis(20));
        }
        for (_, t) in &sim.sent {
            prop_assert!(t.payload.len() <= media::rtp::MAX_DATAGRAM_LEN + 400);
        }
    }
}
