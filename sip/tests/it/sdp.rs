//! SDP offer/answer for PCMU, PCMA and telephone-event.

use std::net::IpAddr;

use sip::sdp::{self, Codec, Direction, LocalMedia, SdpError};

fn local(codecs: Vec<Codec>) -> LocalMedia {
    LocalMedia {
        addr: "192.0.2.10".parse().expect("literal"),
        port: 40000,
        codecs,
        telephone_event: Some(101),
        session_id: 1,
        session_version: 1,
        ptime_ms: 20,
    }
}

const CARRIER_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 8 0 18 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:18 G729/8000\r\n\
a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

#[test]
fn answer_picks_our_preference_and_their_event_pt() {
    let offer = sdp::parse(CARRIER_OFFER.as_bytes()).expect("valid offer");
    assert_eq!(offer.addr, "198.51.100.5".parse::<IpAddr>().expect("literal"));
    assert_eq!(offer.port, 30000);
    assert_eq!(offer.codecs(), vec![Codec::Pcma, Codec::Pcmu]);
    assert_eq!(offer.telephone_event, Some(96));
    let (n, body) = sdp::answer(&local(vec![Codec::Pcmu, Codec::Pcma]), &offer).expect("common codec");
    assert_eq!(n.codec, Codec::Pcmu);
    assert_eq!(n.telephone_event, Some(96));
    let text = String::from_utf8(body.clone()).expect("utf-8");
    assert!(text.contains("m=audio 40000 RTP/AVP 0 96\r\n"), "{text}");
    assert!(text.contains("a=fmtp:96 0-15"));
    // The answer parses back and the offerer accepts it.
    let back = sdp::parse(&body).expect("our answer parses");
    let acc = sdp::accept_answer(&local(vec![Codec::Pcma, Codec::Pcmu]), &back).expect("answer acceptable");
    assert_eq!(acc.codec, Codec::Pcmu);
}

#[test]
fn our_offer_round_trips_and_hold_direction() {
    let l = local(vec![Codec::Pcma, Codec::Pcmu]);
    let offer = sdp::offer(&l);
    let parsed = sdp::parse(&offer).expect("our offer parses");
    assert_eq!(parsed.codecs(), vec![Codec::Pcma, Codec::Pcmu]);
    assert_eq!(parsed.telephone_event, Some(101));
    let hold = CARRIER_OFFER.replace("a=sendrecv", "a=sendonly");
    let (n, body) = sdp::answer(&l, &sdp::parse(hold.as_bytes()).expect("valid")).expect("codec");
    assert_eq!(n.direction, Direction::SendOnly);
    assert!(String::from_utf8_lossy(&body).contains("a=recvonly"));
}

#[test]
fn no_common_codec_is_488() {
    let g729 = "v=0\r\no=- 1 1 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let offer = sdp::parse(g729.as_bytes()).expect("valid SDP");
    let err = sdp::answer(&local(vec![Codec::Pcmu, Codec::Pcma]), &offer).expect_err("no common codec");
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(err.status(), 488);
}

#[test]
fn bad_sdp_is_an_error() {
    for bad in [
        "",
        "x",
        "v=1\r\n",
        "v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
        "v=0\r\nm=audio 1 RTP/AVP 0\r\n",
        "v=0\r\nc=IN IP4 nope\r\nm=audio 1 RTP/AVP 0\r\n",
        "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 300\r\n",
        "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 1 RTP/AVP 0\r\n",
        "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x\r\n",
    ] {
        assert!(sdp::parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
    assert_eq!(sdp::parse(&[0xff, 0xfe]), Err(SdpError::NotUtf8));
    assert_eq!(sdp::parse(&vec![b'a'; 9000]), Err(SdpError::TooLarge));
}

proptest::proptest! {
    #[test]
    fn sdp_parse_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = sdp::parse(&data);
    }
}
