//! Transactions and dialogs between two endpoints over the simulated network.

use std::time::Duration;

use sip::dialog::{self, Dialog, DialogState, InviteParams};
use sip::message::response_to;
use sip::{Event, Method, Request, Response, TxId, TxState};

use crate::pair::{addr, keys, Pair, A, B};

fn invite_request(p: &mut Pair) -> Request {
    let call_id = format!("{}@10.0.0.1", p.a.random_token(8));
    let from_tag = p.a.random_token(4);
    dialog::invite(&InviteParams {
        request_uri: "sip:0312345678@10.0.0.2".into(),
        from: "sip:0501234567@10.0.0.1".into(),
        to: "sip:0312345678@10.0.0.2".into(),
        contact: "sip:kakeru@10.0.0.1:5060".into(),
        call_id,
        from_tag,
        sdp: None,
    })
}

fn requests(events: &[Event]) -> Vec<(TxId, Request)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Request { tx, request, .. } => Some((*tx, request.clone())),
            _ => None,
        })
        .collect()
}

fn responses(events: &[Event]) -> Vec<(TxId, Response)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Response { tx, response } => Some((*tx, response.clone())),
            _ => None,
        })
        .collect()
}

fn statuses(events: &[Event]) -> Vec<u16> {
    responses(events).iter().map(|(_, r)| r.status).collect()
}

/// A places an INVITE; B receives it. Returns (A's tx, B's tx, B's request).
fn start_call(p: &mut Pair) -> (TxId, TxId, Request) {
    let inv = invite_request(p);
    let now = p.now;
    let tx_a = p.a.send_request(now, addr(B), inv).expect("room for a transaction");
    p.drive_network();
    let reqs = requests(&p.take_b());
    assert_eq!(reqs.len(), 1, "B sees the INVITE once");
    let (tx_b, req) = reqs.into_iter().next().expect("one request");
    assert_eq!(req.method, Method::Invite);
    (tx_a, tx_b, req)
}

/// B answers its INVITE server transaction with a 200 (Contact set) and the network carries it.
fn answer_200(p: &mut Pair, uas: &mut Dialog, tx_b: TxId, req: &Request) {
    let mut ok = uas.respond(req, 200);
    ok.headers.push("Contact", "<sip:b@10.0.0.2:5060>");
    let now = p.now;
    p.b.send_response(now, tx_b, ok).expect("proceeding");
    uas.on_invite_response_sent(200);
    p.drive_network();
}

#[test]
fn invite_ringing_answer_ack_bye() {
    let mut p = Pair::new(1);
    let (tx_a, tx_b, req) = start_call(&mut p);
    let mut uas = Dialog::uas(&req, "btag", "sip:b@10.0.0.2:5060").expect("INVITE has what a dialog needs");
    let now = p.now;
    p.b.send_response(now, tx_b, uas.respond(&req, 180)).expect("proceeding");
    p.drive_network();
    answer_200(&mut p, &mut uas, tx_b, &req);
    let ev = p.take_a();
    assert_eq!(statuses(&ev), vec![100, 180, 200]);
    let invite = p.a.request(tx_a).expect("tx lives in Accepted").clone();
    let (_, r180) = responses(&ev)[1].clone();
    let early = Dialog::uac(&invite, &r180).expect("180 with a tag makes an early dialog");
    assert_eq!(early.state, DialogState::Early);
    let (_, r200) = responses(&ev)[2].clone();
    let mut uac = Dialog::uac(&invite, &r200).expect("200 makes a dialog");
    assert_eq!(uac.state, DialogState::Confirmed);
    assert_eq!(uac.remote_target, "sip:b@10.0.0.2:5060");
    assert_eq!(p.a.state(tx_a), Some(TxState::Accepted));
    p.a.send_ack(addr(B), uac.ack(1, None));
    p.drive_network();
    let ev_b = p.take_b();
    assert!(ev_b.iter().any(|e| matches!(e, Event::Ack { .. })), "B's TU sees the 2xx ACK: {ev_b:?}");
    // B stops retransmitting the 200 once the ACK arrived.
    p.drive_for(Duration::from_secs(10));
    let oks = p.sent_by(B).iter().filter(|s| *s == "SIP/2.0 200").count();
    assert_eq!(oks, 1, "no 200 retransmission after ACK");
    // BYE from A.
    let bye = uac.request(Method::Bye);
    let now = p.now;
    let tx_bye = p.a.send_request(now, addr(B), bye).expect("room");
    p.drive_network();
    let (tx_bye_b, bye_req) = requests(&p.take_b()).into_iter().next().expect("B sees BYE");
    assert!(uas.matches_request(&bye_req));
    let resp = uas.handle_request(&bye_req, None).expect("BYE is answered");
    assert_eq!(resp.status, 200);
    assert_eq!(uas.state, DialogState::Terminated);
    let now = p.now;
    p.b.send_response(now, tx_bye_b, resp).expect("trying");
    p.drive_network();
    let ev = p.take_a();
    assert_eq!(responses(&ev), vec![(tx_bye, responses(&ev)[0].1.clone())]);
    uac.on_response(&responses(&ev)[0].1);
    assert_eq!(uac.state, DialogState::Terminated);
    // Everything winds down: all transactions terminate within 64*T1.
    p.drive_for(Duration::from_secs(40));
    assert_eq!(p.a.transaction_count(), 0);
    assert_eq!(p.b.transaction_count(), 0);
    assert_eq!(p.a.stats().total_dropped() + p.b.stats().total_dropped(), 0);
    // Both sides counted each transaction once, by method and final class (the 2xx
    // retransmissions and the ACK count for nothing).
    for ep in [&p.a, &p.b] {
        let s = ep.stats();
        assert_eq!((s.completed(&Method::Invite, "2xx"), s.completed(&Method::Bye, "2xx")), (1, 1), "{s:?}");
        assert_eq!(s.completed.iter().flatten().sum::<u64>(), 2, "{s:?}");
    }
}

#[test]
fn invite_retransmissions_double_timer_a() {
    let mut p = Pair::new(2);
    // The first three INVITEs are lost.
    let mut lost = 0;
    p.drop_filter = Box::new(move |w| {
        if w.start() == "INVITE" && lost < 3 {
            lost += 1;
            true
        } else {
            false
        }
    });
    let inv = invite_request(&mut p);
    let now = p.now;
    p.a.send_request(now, addr(B), inv).expect("room");
    p.drive_for(Duration::from_secs(5));
    let times: Vec<u128> =
        p.sent.iter().filter(|w| w.start() == "INVITE").map(|w| w.at.duration_since(p.start).as_millis()).collect();
    assert_eq!(times, vec![0, 500, 1500, 3500], "timer A: T1, 2*T1, 4*T1");
    assert_eq!(requests(&p.take_b()).len(), 1);
    assert!(statuses(&p.take_a()).contains(&100));
    assert_eq!(p.a.stats().retransmissions, 3);
}

#[test]
fn timer_b_times_out_unanswered_invite() {
    let mut p = Pair::new(3);
    p.loss = 1.0;
    let inv = invite_request(&mut p);
    let now = p.now;
    let tx = p.a.send_request(now, addr(B), inv).expect("room");
    p.drive_for(Duration::from_millis(31_900));
    assert!(!p.take_a().iter().any(|e| matches!(e, Event::Timeout { .. })));
    p.drive_for(Duration::from_millis(200));
    let ev = p.take_a();
    assert!(ev.contains(&Event::Timeout { tx }), "timer B fires at 64*T1: {ev:?}");
    assert_eq!(p.a.transaction_count(), 0);
    assert_eq!(p.a.stats().completed(&Method::Invite, "timeout"), 1);
    assert_eq!(p.a.stats().completed.iter().flatten().sum::<u64>(), 1);
    // A: 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(p.sent_by(A).len(), 7);
}

#[test]
fn non_invite_timer_e_caps_at_t2_and_f_times_out() {
    let mut p = Pair::new(4);
    p.loss = 1.0;
    let mut opt = invite_request(&mut p);
    opt.method = Method::Options;
    opt.headers.set("CSeq", "1 OPTIONS");
    let now = p.now;
    let tx = p.a.send_request(now, addr(B), opt).expect("room");
    p.drive_for(Duration::from_secs(33));
    let times: Vec<u128> = p.sent.iter().map(|w| w.at.duration_since(p.start).as_millis()).collect();
    assert_eq!(
        times,
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500],
        "timer E doubles to T2 = 4 s"
    );
    assert!(p.take_a().contains(&Event::Timeout { tx }));
}

#[test]
fn lossy_network_still_completes_options() {
    for seed in 0..20 {
        let mut p = Pair::new(100 + seed);
        p.loss = 0.3;
        let mut opt = invite_request(&mut p);
        opt.method = Method::Options;
        opt.headers.set("CSeq", "1 OPTIONS");
        let now = p.now;
        let tx = p.a.send_request(now, addr(B), opt).expect("room");
        let mut answered = false;
        for _ in 0..400 {
            p.drive_for(Duration::from_millis(100));
            for (txb, req) in requests(&p.take_b()) {
                let now = p.now;
                p.b.send_response(now, txb, response_to(&req, 200, Some("t"))).expect("trying");
            }
            if responses(&p.events_a).iter().any(|(t, r)| *t == tx && r.status == 200) {
                answered = true;
                break;
            }
            if p.events_a.iter().any(|e| matches!(e, Event::Timeout { .. })) {
                break;
            }
        }
        // With 30% loss each way the chance of 11 failed rounds is tiny; seeds are fixed.
        assert!(answered, "seed {seed}: OPTIONS answered despite loss");
    }
}

fn final_failure(status: u16) {
    let mut p = Pair::new(5 + u64::from(status));
    // Drop the first ACK so that B retransmits its final response and A re-ACKs from Completed.
    let mut acks = 0;
    p.drop_filter = Box::new(move |w| {
        if w.start() == "ACK" && acks == 0 {
            acks += 1;
            true
        } else {
            false
        }
    });
    let (tx_a, tx_b, req) = start_call(&mut p);
    let now = p.now;
    p.b.send_response(now, tx_b, response_to(&req, status, Some("btag"))).expect("proceeding");
    p.drive_network();
    let ev = p.take_a();
    assert_eq!(statuses(&ev), vec![100, status], "the final goes up once");
    assert_eq!(p.a.state(tx_a), Some(TxState::Completed));
    p.drive_for(Duration::from_secs(2));
    assert_eq!(p.b.state(tx_b), Some(TxState::Confirmed), "ACK absorbed by the server transaction");
    assert!(p.take_b().iter().all(|e| !matches!(e, Event::Ack { .. } | Event::Request { .. })), "ACK not passed up");
    assert_eq!(p.sent_by(A).iter().filter(|s| *s == "ACK").count(), 2);
    assert_eq!(statuses(&p.take_a()), Vec::<u16>::new(), "retransmitted final absorbed");
    p.drive_for(Duration::from_secs(40));
    assert_eq!(p.a.transaction_count(), 0);
    assert_eq!(p.b.transaction_count(), 0);
}

#[test]
fn busy_decline_not_found_are_acked_hop_by_hop() {
    for status in [486, 603, 404] {
        final_failure(status);
    }
}

#[test]
fn cancel_gets_487() {
    let mut p = Pair::new(6);
    let (tx_a, tx_b, req) = start_call(&mut p);
    let now = p.now;
    p.b.send_response(now, tx_b, response_to(&req, 180, Some("btag"))).expect("proceeding");
    p.drive_network();
    assert_eq!(statuses(&p.take_a()), vec![100, 180]);
    let now = p.now;
    let cancel_tx = p.a.cancel(now, tx_a).expect("a client INVITE").expect("proceeding: CANCEL sent now");
    p.drive_network();
    let ev_b = p.take_b();
    assert!(ev_b.contains(&Event::Cancelled { tx: tx_b }), "{ev_b:?}");
    let now = p.now;
    p.b.send_response(now, tx_b, response_to(&req, 487, Some("btag"))).expect("still proceeding");
    p.drive_network();
    let ev = p.take_a();
    let rs = responses(&ev);
    assert!(rs.iter().any(|(t, r)| *t == cancel_tx && r.status == 200), "200 for the CANCEL");
    assert!(rs.iter().any(|(t, r)| *t == tx_a && r.status == 487), "487 for the INVITE");
    assert!(p.sent_by(A).contains(&"ACK".to_string()));
    p.drive_for(Duration::from_secs(40));
    assert_eq!(p.a.transaction_count() + p.b.transaction_count(), 0);
}

#[test]
fn cancel_before_provisional_waits_for_one() {
    let mut p = Pair::new(7);
    p.latency = Duration::from_millis(50);
    let inv = invite_request(&mut p);
    let now = p.now;
    let tx_a = p.a.send_request(now, addr(B), inv).expect("room");
    assert_eq!(p.a.cancel(now, tx_a), Ok(None), "no provisional yet");
    p.drive_network();
    // B's 100 Trying arrived: the pending CANCEL went out.
    assert!(p.sent_by(A).contains(&"CANCEL".to_string()));
    assert!(p.take_b().iter().any(|e| matches!(e, Event::Cancelled { .. })));
}

#[test]
fn cancel_racing_200_confirms_then_bye() {
    let mut p = Pair::new(8);
    p.latency = Duration::from_millis(40);
    let (tx_a, tx_b, req) = start_call(&mut p);
    let uas = Dialog::uas(&req, "btag", "sip:b@10.0.0.2").expect("dialog");
    // Both at the same instant: B answers 200 while A cancels.
    let now = p.now;
    let mut ok = uas.respond(&req, 200);
    ok.headers.push("Contact", "<sip:b@10.0.0.2:5060>");
    p.b.send_response(now, tx_b, ok).expect("proceeding");
    let cancel_tx = p.a.cancel(now, tx_a).expect("client INVITE").expect("100 received: sent now");
    p.drive_network();
    let ev_b = p.take_b();
    assert!(!ev_b.iter().any(|e| matches!(e, Event::Cancelled { .. })), "too late to cancel");
    let ev_a = p.take_a();
    let rs = responses(&ev_a);
    assert!(rs.iter().any(|(t, r)| *t == cancel_tx && r.status == 200), "CANCEL answered 200 anyway");
    let (_, ok) = rs.iter().find(|(t, r)| *t == tx_a && r.status == 200).expect("INVITE 200 won").clone();
    // The UAC must ACK and then hang up.
    let invite = p.a.request(tx_a).expect("tx in Accepted").clone();
    let mut uac = Dialog::uac(&invite, &ok).expect("dialog");
    p.a.send_ack(addr(B), uac.ack(1, None));
    let now = p.now;
    p.a.send_request(now, addr(B), uac.request(Method::Bye)).expect("room");
    p.drive_network();
    let ev_b = p.take_b();
    assert!(ev_b.iter().any(|e| matches!(e, Event::Ack { .. })));
    assert!(requests(&ev_b).iter().any(|(_, r)| r.method == Method::Bye));
}

#[test]
fn server_retransmits_2xx_until_ack_then_ack_timeout() {
    let mut p = Pair::new(9);
    let (_tx_a, tx_b, req) = start_call(&mut p);
    let now = p.now;
    p.b.send_response(now, tx_b, response_to(&req, 200, Some("btag"))).expect("proceeding");
    // A never ACKs: B retransmits the 200 (G schedule) and gives up at 64*T1 with AckTimeout.
    p.drive_for(Duration::from_secs(33));
    let oks = p.sent_by(B).iter().filter(|s| *s == "SIP/2.0 200").count();
    assert!(oks >= 8, "2xx retransmitted: {oks}");
    assert!(p.take_b().contains(&Event::AckTimeout { tx: tx_b }));
    // And A saw each 2xx retransmission (its dialog would re-ACK).
    assert!(statuses(&p.take_a()).iter().filter(|s| **s == 200).count() >= 8);
}

#[test]
fn in_dialog_options_and_reinvite_and_stale_cseq() {
    let mut p = Pair::new(10);
    let (tx_a, tx_b, req) = start_call(&mut p);
    let mut uas = Dialog::uas(&req, "btag", "sip:b@10.0.0.2").expect("dialog");
    let mut ok = uas.respond(&req, 200);
    ok.headers.push("Contact", "<sip:b@10.0.0.2:5060>");
    let now = p.now;
    p.b.send_response(now, tx_b, ok).expect("proceeding");
    p.drive_network();
    let ok = responses(&p.take_a()).into_iter().find(|(_, r)| r.status == 200).expect("200").1;
    let invite = p.a.request(tx_a).expect("accepted").clone();
    let mut uac = Dialog::uac(&invite, &ok).expect("dialog");
    let opt = uac.request(Method::Options);
    assert_eq!(opt.cseq().expect("cseq").seq, 2);
    let resp = uas.handle_request(&opt, None).expect("answered");
    assert_eq!(resp.status, 200);
    let reinv = uac.request(Method::Invite);
    let resp = uas.handle_request(&reinv, Some(b"v=0\r\n")).expect("answered");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"v=0\r\n");
    // A replay with an old CSeq gets 500.
    assert_eq!(uas.handle_request(&opt, None).expect("answered").status, 500);
}

#[test]
fn unknown_and_unsupported_methods() {
    let mut p = Pair::new(11);
    let mut r = invite_request(&mut p);
    r.method = Method::Other("FOO".into());
    r.headers.set("CSeq", "1 FOO");
    let now = p.now;
    p.a.send_request(now, addr(B), r).expect("room");
    let mut s = invite_request(&mut p);
    s.method = Method::Subscribe;
    s.headers.set("CSeq", "1 SUBSCRIBE");
    p.a.send_request(now, addr(B), s).expect("room");
    p.drive_network();
    let mut st = statuses(&p.take_a());
    st.sort();
    assert_eq!(st, vec![405, 501]);
    assert!(p.take_b().is_empty(), "the TU never sees them");
}

#[test]
fn transaction_table_is_bounded() {
    let mut p = Pair::new(12);
    let mut cfg = sip::Config::new(A);
    cfg.max_transactions = 3;
    p.a = sip::Endpoint::new(cfg, Box::new(<rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1)));
    for i in 0..3 {
        let r = invite_request(&mut p);
        assert!(p.a.send_request(p.now, addr(B), r).is_ok(), "{i}");
    }
    let r = invite_request(&mut p);
    assert_eq!(p.a.send_request(p.now, addr(B), r), Err(sip::transaction::Error::TooManyTransactions));
}

#[test]
fn built_messages_reparse() {
    let mut p = Pair::new(13);
    let r = invite_request(&mut p);
    let now = p.now;
    p.a.send_request(now, addr(B), r).expect("room");
    p.drive_network();
    for w in &p.sent {
        let m = sip::message::parse(&w.bytes);
        assert!(m.is_ok(), "{}: {m:?}", w.text());
        assert!(rsip_ok(&w.bytes), "rsip accepts what we built: {}", w.text());
    }
}

fn rsip_ok(b: &[u8]) -> bool {
    // Our parser runs rsip's grammar check; a second parse through it must succeed.
    sip::message::parse(b).is_ok()
}

#[test]
fn carrier_407_then_authenticated_invite() {
    use sip::auth::{self, Algorithm, Credentials, NonceSigner, Verdict};
    let signer = NonceSigner::new(&keys(b"carrier"), "carrier.example", 300);
    let unix_s = 1_800_000_000;
    let mut p = Pair::new(14);
    let (tx_a, tx_b, req) = start_call(&mut p);
    let mut chal = response_to(&req, 407, Some("c"));
    chal.headers.push("Proxy-Authenticate", signer.challenge(unix_s, Algorithm::Sha256, false));
    let now = p.now;
    p.b.send_response(now, tx_b, chal).expect("proceeding");
    p.drive_network();
    let (_, r407) = responses(&p.take_a()).into_iter().find(|(_, r)| r.status == 407).expect("407 up");
    assert!(p.sent_by(A).contains(&"ACK".to_string()), "407 ACKed by the transaction");
    let invite = p.a.request(tx_a).expect("completed").clone();
    let creds = Credentials { username: "trunk".into(), password: "pw".into() };
    let cnonce = p.a.random_token(8);
    let again = auth::authorize(&invite, &r407, &creds, &cnonce).expect("understood");
    let now = p.now;
    p.a.send_request(now, addr(B), again).expect("room");
    p.drive_network();
    let (tx_b2, req2) = requests(&p.take_b()).into_iter().next().expect("second INVITE, new transaction");
    assert_ne!(tx_b2, tx_b);
    assert_eq!(req2.cseq().expect("cseq").seq, 2);
    let v = signer.verify(unix_s + 1, "INVITE", req2.headers.get("Proxy-Authorization").expect("creds"), |_, a| {
        Some(auth::ha1(a, "trunk", "carrier.example", "pw"))
    });
    assert_eq!(v, Verdict::Ok { username: "trunk".into() });
}

#[test]
fn phone_registers_with_digest_against_our_registrar() {
    use sip::auth::{self, Algorithm, Credentials, NonceSigner, Verdict};
    use sip::registrar::{ContactStore, MemoryContactStore, Registrar};
    let signer = NonceSigner::new(&keys(b"cluster"), "kakeru", 300);
    let unix_s = 1_800_000_000;
    let mut registrar = Registrar::new(MemoryContactStore::new(10));
    let stored_ha1 = |_: &str, a: Algorithm| Some(auth::ha1(a, "agent7", "kakeru", "pw"));
    let mut p = Pair::new(15);
    let mut reg = Request::new(Method::Register, "sip:10.0.0.2");
    reg.headers.push("From", "<sip:agent7@kakeru>;tag=ph1");
    reg.headers.push("To", "<sip:agent7@kakeru>");
    reg.headers.push("Call-ID", "reg7@10.0.0.1");
    reg.headers.push("CSeq", "1 REGISTER");
    reg.headers.push("Contact", "<sip:agent7@10.0.0.1:5060>");
    reg.headers.push("Expires", "120");
    let mut to_send = reg.clone();
    for round in 0..2 {
        let now = p.now;
        let tx_a = p.a.send_request(now, addr(B), to_send.clone()).expect("room");
        p.drive_network();
        let (tx_b, got) = requests(&p.take_b()).into_iter().next().expect("registrar sees REGISTER");
        let resp = match got.headers.get("Authorization") {
            None => {
                let mut r = response_to(&got, 401, Some("r"));
                r.headers.push("WWW-Authenticate", signer.challenge(unix_s, Algorithm::Md5, false));
                r
            }
            Some(a) => match signer.verify(unix_s + 2, "REGISTER", a, stored_ha1) {
                Verdict::Ok { .. } => registrar.handle_register(p.now, &got, addr(A), "r"),
                v => panic!("unexpected verdict {v:?}"),
            },
        };
        let now = p.now;
        p.b.send_response(now, tx_b, resp).expect("trying");
        p.drive_network();
        let (_, r) = responses(&p.take_a()).into_iter().find(|(t, _)| *t == tx_a).expect("answered");
        if round == 0 {
            assert_eq!(r.status, 401);
            let creds = Credentials { username: "agent7".into(), password: "pw".into() };
            to_send = auth::authorize(&reg, &r, &creds, "abcd").expect("challenge understood");
        } else {
            assert_eq!(r.status, 200);
            assert_eq!(r.headers.get("Contact"), Some("<sip:agent7@10.0.0.1:5060>;expires=120"));
        }
    }
    assert_eq!(registrar.store.lookup(p.now, "sip:agent7@kakeru").len(), 1);
}

#[test]
fn unanswered_server_transactions_are_bounded_in_time() {
    let mut p = Pair::new(16);
    let (_tx_a, tx_b, _req) = start_call(&mut p);
    let mut opt = invite_request(&mut p);
    opt.method = Method::Options;
    opt.headers.set("CSeq", "1 OPTIONS");
    let now = p.now;
    p.a.send_request(now, addr(B), opt).expect("room");
    // B's TU never answers either. The OPTIONS server transaction ends at 64*T1 (A times out too).
    p.drive_for(Duration::from_secs(33));
    assert_eq!(p.b.transaction_count(), 1, "only the INVITE is left");
    // The INVITE gets 408 at invite_server_timeout (300 s) and is ACKed.
    p.drive_for(Duration::from_secs(300));
    assert!(statuses(&p.take_a()).contains(&408));
    assert_eq!(p.b.state(tx_b), None);
    assert_eq!(p.a.transaction_count() + p.b.transaction_count(), 0);
}

#[test]
fn options_keepalive_towards_the_trunk() {
    let mut p = Pair::new(17);
    let ping =
        dialog::out_of_dialog(Method::Options, "sip:10.0.0.2", "sip:kakeru@10.0.0.1", "k1", "sip:10.0.0.2", "ka1@a", 1);
    let now = p.now;
    let tx = p.a.send_request(now, addr(B), ping).expect("room");
    p.drive_network();
    let (txb, req) = requests(&p.take_b()).into_iter().next().expect("B sees OPTIONS");
    let mut ok = response_to(&req, 200, Some("b1"));
    ok.headers.push("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS");
    let now = p.now;
    p.b.send_response(now, txb, ok).expect("trying");
    p.drive_network();
    assert_eq!(responses(&p.take_a()).first().map(|(t, r)| (*t, r.status)), Some((tx, 200)));
    // Timer K (T4) then J (64*T1) clean up.
    p.drive_for(Duration::from_secs(33));
    assert_eq!(p.a.transaction_count() + p.b.transaction_count(), 0);
}

#[test]
fn an_accepted_invite_keeps_no_copy_to_retransmit() {
    let mut p = Pair::new(7);
    let (tx_a, tx_b, req) = start_call(&mut p);
    let invite_len = p.a.retransmit_bytes(tx_a).expect("the INVITE transaction lives");
    assert!(invite_len > 200, "Calling keeps the INVITE to retransmit: {invite_len} bytes");
    let mut uas = Dialog::uas(&req, "btag", "sip:b@10.0.0.2:5060").expect("INVITE has what a dialog needs");
    answer_200(&mut p, &mut uas, tx_b, &req);
    assert_eq!(p.a.state(tx_a), Some(TxState::Accepted));
    assert_eq!(p.a.retransmit_bytes(tx_a), Some(0), "Accepted (RFC 6026) drops the INVITE's bytes");
    // The request itself stays for the dialog, and B still holds its 2xx until the ACK.
    assert!(p.a.request(tx_a).is_some());
    assert!(p.b.retransmit_bytes(tx_b).is_some_and(|n| n > 0));
    // A 2xx retransmission still reaches A's TU (which ACKs it again), and nothing is resent.
    let first = p.take_a();
    assert_eq!(statuses(&first), vec![100, 200]);
    let before = p.sent_by(A).len();
    p.drive_for(Duration::from_secs(1));
    let ev = p.take_a();
    assert!(statuses(&ev).contains(&200), "the retransmitted 200 goes up: {ev:?}");
    assert_eq!(p.sent_by(A).len(), before, "A retransmits nothing in Accepted");
}
