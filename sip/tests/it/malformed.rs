//! Bad datagrams: each gets a 400 or a counted drop, never a panic.

use std::time::Instant;

use proptest::prelude::*;
use sip::{DropReason, Endpoint};

use crate::pair::{addr, endpoint, B};

pub const GOOD: &str = "OPTIONS sip:b@10.0.0.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKgood1\r\n\
From: <sip:a@10.0.0.1>;tag=1\r\n\
To: <sip:b@10.0.0.2>\r\n\
Call-ID: x1@10.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

/// Feeds one datagram; returns (status answered if any, drops counted).
fn feed(data: &[u8]) -> (Option<u16>, u64, Endpoint) {
    let mut ep = endpoint(B, 7);
    ep.handle_datagram(Instant::now(), addr("10.0.0.1:5060"), data);
    let status = ep.poll_transmit().and_then(|t| match sip::message::parse(&t.bytes) {
        Ok(sip::Message::Response(r)) => Some(r.status),
        _ => None,
    });
    let drops = ep.stats().total_dropped();
    (status, drops, ep)
}

#[test]
fn good_message_is_accepted() {
    let (status, drops, mut ep) = feed(GOOD.as_bytes());
    assert_eq!((status, drops), (None, 0));
    assert!(matches!(ep.poll_event(), Some(sip::Event::Request { .. })));
}

#[test]
fn corpus_answers_400_or_drops() {
    let huge_header = format!("{}X-Big: {}\r\n\r\n", GOOD.trim_end_matches("\r\n"), "a".repeat(10_000));
    let many_headers = GOOD.replace("Max-Forwards: 70\r\n", &"X-A: 1\r\n".repeat(200));
    let oversized = format!("{GOOD}{}", "b".repeat(70_000));
    type Case = (&'static str, Vec<u8>, Option<u16>, Option<DropReason>);
    let cases: Vec<Case> = vec![
        ("truncated head", GOOD.as_bytes()[..60].to_vec(), None, Some(DropReason::Unparsable)),
        (
            "bad CSeq number",
            GOOD.replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS").into_bytes(),
            None,
            Some(DropReason::BadCSeq),
        ),
        (
            "CSeq method mismatch",
            GOOD.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE").into_bytes(),
            Some(400),
            Some(DropReason::BadCSeq),
        ),
        (
            "missing Via",
            GOOD.replace("Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKgood1\r\n", "").into_bytes(),
            None,
            Some(DropReason::MissingHeader),
        ),
        (
            "Via without branch",
            GOOD.replace(";branch=z9hG4bKgood1", "").into_bytes(),
            Some(400),
            Some(DropReason::BadVia),
        ),
        (
            "missing Call-ID",
            GOOD.replace("Call-ID: x1@10.0.0.1\r\n", "").into_bytes(),
            None,
            Some(DropReason::MissingHeader),
        ),
        (
            "Content-Length beyond body",
            GOOD.replace("Content-Length: 0", "Content-Length: 50").into_bytes(),
            Some(400),
            Some(DropReason::BadContentLength),
        ),
        (
            "bad Max-Forwards",
            GOOD.replace("Max-Forwards: 70", "Max-Forwards: many").into_bytes(),
            Some(400),
            Some(DropReason::Unparsable),
        ),
        ("huge header", huge_header.into_bytes(), None, Some(DropReason::Oversized)),
        ("many headers", many_headers.into_bytes(), None, Some(DropReason::TooManyHeaders)),
        ("oversized", oversized.into_bytes(), None, Some(DropReason::Oversized)),
        ("binary garbage", vec![0, 159, 146, 150, 255, 13, 10, 13, 10], None, Some(DropReason::NotUtf8)),
        ("binary no terminator", vec![0, 1, 2, 200, 13, 10], None, Some(DropReason::Unparsable)),
        ("not utf-8 head", b"OPTIONS sip:\xff SIP/2.0\r\n\r\n".to_vec(), None, Some(DropReason::NotUtf8)),
        ("bad status", b"SIP/2.0 999 No\r\n\r\n".to_vec(), None, Some(DropReason::Unparsable)),
        (
            "bad request URI",
            GOOD.replace("sip:b@10.0.0.2 SIP", "sip:b@h:99999 SIP").into_bytes(),
            Some(400),
            Some(DropReason::Unparsable),
        ),
        (
            "request URI without scheme",
            GOOD.replace("sip:b@10.0.0.2 SIP", "<<>> SIP").into_bytes(),
            Some(400),
            Some(DropReason::Unparsable),
        ),
        (
            "To without URI",
            GOOD.replace("To: <sip:b@10.0.0.2>", "To: garbage<").into_bytes(),
            Some(400),
            Some(DropReason::Unparsable),
        ),
        ("empty", Vec::new(), None, Some(DropReason::Unparsable)),
    ];
    for (name, data, want_status, want_drop) in cases {
        let (status, drops, ep) = feed(&data);
        assert_eq!(status, want_status, "{name}");
        if let Some(r) = want_drop {
            assert_eq!(ep.stats().dropped(r), 1, "{name}: counted as {r:?}");
            assert_eq!(drops, 1, "{name}");
        }
    }
}

#[test]
fn malformed_ack_is_never_answered() {
    let ack = GOOD.replace("OPTIONS", "ACK").replace("Content-Length: 0", "Content-Length: 9");
    let (status, drops, _) = feed(ack.as_bytes());
    assert_eq!((status, drops), (None, 1));
}

#[test]
fn crlf_keepalive_is_ignored() {
    let (status, drops, _) = feed(b"\r\n\r\n");
    assert_eq!((status, drops), (None, 0));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (_, _, _) = feed(&data);
    }

    #[test]
    fn mutated_messages_never_panic(pos in 0usize..GOOD.len(), byte in any::<u8>(), cut in 0usize..GOOD.len()) {
        let mut data = GOOD.as_bytes().to_vec();
        data[pos] = byte;
        let _ = feed(&data);
        let _ = feed(&data[..cut]);
    }
}

/// The cargo-fuzz target for the parser, run for a bounded time (`SIP_FUZZ_SECONDS`, default 30).
/// Ignored by default (it builds the fuzz crate with libFuzzer): `cargo test -p sip -- --ignored fuzz`.
#[test]
#[ignore = "builds and runs cargo-fuzz; slow"]
fn fuzz_parser_for_a_bounded_time() {
    let secs = std::env::var("SIP_FUZZ_SECONDS").unwrap_or_else(|_| "30".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/run.sh");
    let status = std::process::Command::new(script).arg(&secs).status().expect("fuzz/run.sh starts");
    assert!(status.success(), "fuzzing found a crash or failed to run (see fuzz/artifacts)");
}

#[test]
fn drop_reasons_have_distinct_snake_case_labels() {
    let labels: std::collections::BTreeSet<&str> = DropReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), DropReason::ALL.len(), "{labels:?}");
    assert!(
        labels.iter().all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')),
        "{labels:?}"
    );
}
