//! Fuzzes the datagram parser, the address parser on every header value, and the endpoint's
//! handling of whatever it accepts.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = sip::message::parse(data) {
        for (_, v) in m.headers().iter() {
            for part in sip::message::split_list(v) {
                if let Ok(a) = sip::addr::NameAddr::parse(part) {
                    let _ = a.display();
                    let _ = a.params().count();
                    let _ = sip::addr::SipUri::parse(a.uri).map(|u| u.aor());
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sip::addr::NameAddr::parse(text);
    }
    let _ = sip::sdp::parse(data);
    let mut ep = sip::Endpoint::new(sip::Config::new("10.0.0.2:5060"), Box::new(rand::rngs::StdRng::seed_from_u64(1)));
    let from = std::net::SocketAddr::from(([10, 0, 0, 1], 5060));
    ep.handle_datagram(Instant::now(), from, data);
    while ep.poll_transmit().is_some() {}
    while ep.poll_event().is_some() {}
});
