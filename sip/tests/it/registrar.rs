//! The registrar per RFC 3261 §10.3: the requested expiry within bounds, un-registering, `*`,
//! several bindings with the newest used, +sip.instance / reg-id (RFC 5626) replacing a restarted
//! phone's binding, a request applied whole or not at all, bounded stores.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sip::message::Headers;
use sip::registrar::{ContactStore, MemoryContactStore, Registrar};
use sip::{Method, Request, Response};

const AOR: &str = "sip:agent7@kakeru";

fn src(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 1, 0, 7], port))
}

fn register(contacts: &[&str], expires: Option<&str>, call_id: &str, cseq: u32) -> Request {
    let mut h = Headers::new();
    h.push("Via", "SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bKr1");
    h.push("From", "\"Agent \\\"7\\\"\" <sip:agent7@kakeru>;tag=p1");
    h.push("To", "\"Agent \\\"7\\\"\" <sip:agent7@KAKERU>");
    h.push("Call-ID", call_id);
    h.push("CSeq", format!("{cseq} REGISTER"));
    for c in contacts {
        h.push("Contact", *c);
    }
    if let Some(e) = expires {
        h.push("Expires", e);
    }
    Request { method: Method::Register, uri: "sip:kakeru".into(), headers: h, body: Vec::new() }
}

fn reg() -> Registrar<MemoryContactStore> {
    Registrar::new(MemoryContactStore::new(100))
}

fn contacts(r: &Response) -> Vec<&str> {
    r.headers.get_list("Contact")
}

#[test]
fn the_requested_expiry_is_honoured_refreshed_and_expires() {
    let t0 = Instant::now();
    let mut reg = reg();
    let r = reg.handle_register(t0, &register(&["<sip:agent7@10.1.0.7:5060>"], Some("120"), "c1", 1), src(5060), "rt");
    assert_eq!(r.status, 200);
    assert_eq!(contacts(&r), vec!["<sip:agent7@10.1.0.7:5060>;expires=120"]);
    assert_eq!(
        reg.store.lookup(t0 + Duration::from_secs(119), AOR).len(),
        1,
        "the AOR is the To URI, host lower-cased"
    );
    assert!(reg.store.lookup(t0 + Duration::from_secs(120), AOR).is_empty());
    // The Contact's own expires parameter wins over the Expires header.
    let t1 = t0 + Duration::from_secs(100);
    let r = reg.handle_register(
        t1,
        &register(&["<sip:agent7@10.1.0.7:5060>;expires=300"], Some("120"), "c1", 2),
        src(5060),
        "rt",
    );
    assert_eq!(contacts(&r), vec!["<sip:agent7@10.1.0.7:5060>;expires=300"]);
    // Out of order (same Call-ID, CSeq not higher): refused, nothing changed.
    let r = reg.handle_register(t1, &register(&["<sip:agent7@10.1.0.7:5060>"], Some("900"), "c1", 2), src(5060), "rt");
    assert_eq!(r.status, 500);
    assert_eq!(reg.store.lookup(t1, AOR)[0].expires_at, t1 + Duration::from_secs(300));
    // A huge or malformed expiry: the maximum, or the default.
    let r = reg.handle_register(
        t1,
        &register(&["<sip:agent7@10.1.0.7:5060>"], Some("99999999999"), "c1", 3),
        src(5060),
        "rt",
    );
    assert_eq!(contacts(&r), vec!["<sip:agent7@10.1.0.7:5060>;expires=3600"]);
    reg.default_expires_s = 600;
    let r = reg.handle_register(
        t1,
        &register(&["<sip:agent7@10.1.0.7:5060>;expires=soon"], None, "c1", 4),
        src(5060),
        "rt",
    );
    assert_eq!(contacts(&r), vec!["<sip:agent7@10.1.0.7:5060>;expires=600"]);
    // expire() drops it when its time comes and names the AOR.
    assert_eq!(reg.store.next_expiry(), Some(t1 + Duration::from_secs(600)));
    assert!(reg.store.expire(t1 + Duration::from_secs(599)).is_empty());
    assert_eq!(reg.store.expire(t1 + Duration::from_secs(600)), vec![AOR.to_string()]);
    assert_eq!(reg.store.aor_count(), 0);
    assert_eq!(reg.store.next_expiry(), None);
}

#[test]
fn too_brief_star_and_unregister() {
    let t0 = Instant::now();
    let mut reg = reg();
    let c = "<sip:a@10.1.0.7>";
    let r = reg.handle_register(t0, &register(&[c], Some("10"), "c", 1), src(1), "rt");
    assert_eq!(r.status, 423);
    assert_eq!(r.headers.get("Min-Expires"), Some("60"));
    assert_eq!(reg.handle_register(t0, &register(&[c], Some("60"), "c", 2), src(1), "rt").status, 200);
    // Expires: 0 removes that binding (and does not add one).
    let r = reg.handle_register(t0, &register(&[c], Some("0"), "c", 3), src(1), "rt");
    assert_eq!((r.status, contacts(&r).len()), (200, 0));
    assert!(reg.store.lookup(t0, AOR).is_empty());
    // expires=0 on the Contact does the same, whatever the header says.
    assert_eq!(reg.handle_register(t0, &register(&[c], Some("60"), "c", 4), src(1), "rt").status, 200);
    assert_eq!(
        reg.handle_register(t0, &register(&["<sip:a@10.1.0.7>;expires=0"], Some("60"), "c", 5), src(1), "rt").status,
        200
    );
    assert!(reg.store.lookup(t0, AOR).is_empty());
    // `*` with Expires: 0 removes every binding; `*` otherwise is a 400.
    for (i, c) in ["<sip:a@10.1.0.7>", "<sip:b@10.1.0.8>"].iter().enumerate() {
        assert_eq!(reg.handle_register(t0, &register(&[c], Some("60"), &format!("x{i}"), 1), src(1), "rt").status, 200);
    }
    assert_eq!(reg.store.lookup(t0, AOR).len(), 2);
    assert_eq!(reg.handle_register(t0, &register(&["*"], Some("60"), "c", 6), src(1), "rt").status, 400);
    assert_eq!(reg.handle_register(t0, &register(&["*", c], Some("0"), "c", 7), src(1), "rt").status, 400);
    assert_eq!(reg.handle_register(t0, &register(&["*"], Some("0"), "c", 8), src(1), "rt").status, 200);
    assert!(reg.store.lookup(t0, AOR).is_empty());
    // No Contact at all: a query, answered with the bindings.
    let r = reg.handle_register(t0, &register(&[], None, "c", 9), src(1), "rt");
    assert_eq!((r.status, contacts(&r).len()), (200, 0));
}

/// baresip 1.0 with `sipnat=outbound`: a contact user that changes on every start, `expires` on the
/// Contact and an instance id that does not.
fn baresip_contact(start: u32, port: u16, expires: u32) -> String {
    format!(
        "<sip:agent7-0x55570838{start:04}@127.0.0.1:{port}>;expires={expires};+sip.instance=\"<urn:uuid:e1cfc9a2-567a-d2f3-ca75-7a01555a513f>\";reg-id=1"
    )
}

#[test]
fn a_restarted_phone_replaces_its_binding_and_un_registering_removes_it() {
    let t0 = Instant::now();
    let mut reg = reg();
    for start in 0..3u32 {
        let now = t0 + Duration::from_secs(u64::from(start) * 10);
        let port = 5090 + start as u16;
        let c = baresip_contact(start, port, 60);
        let r = reg.handle_register(now, &register(&[&c], None, &format!("boot{start}"), 1), src(port), "rt");
        assert_eq!(r.status, 200);
        let listed = contacts(&r);
        assert_eq!(listed.len(), 1, "restart {start}: one binding, not {}", listed.len());
        assert!(listed[0].contains(";expires=60;"), "the phone's 60 s, not the default: {}", listed[0]);
        assert!(listed[0].contains("+sip.instance=\"<urn:uuid:e1cfc9a2"), "{}", listed[0]);
        let b = reg.newest(now, AOR).expect("bound");
        assert_eq!(b.contact, format!("sip:agent7-0x55570838{start:04}@127.0.0.1:{port}"), "the URI alone");
        assert_eq!(b.source, src(port));
        assert_eq!(b.reg_id, Some(1));
    }
    // The phone quits: Expires: 0 on its contact removes the binding.
    let now = t0 + Duration::from_secs(30);
    let r = reg.handle_register(now, &register(&[&baresip_contact(2, 5092, 0)], None, "boot2", 2), src(5092), "rt");
    assert_eq!((r.status, contacts(&r).len()), (200, 0));
    assert_eq!(reg.newest(now, AOR), None);
    assert_eq!(reg.store.aor_count(), 0);
}

#[test]
fn several_bindings_the_newest_used_and_the_oldest_dropped_past_the_bound() {
    let t0 = Instant::now();
    let mut reg = reg();
    reg.max_bindings_per_aor = 3;
    // A phone without an instance id restarting on new ports: each start adds a binding.
    for i in 0..5u16 {
        let now = t0 + Duration::from_secs(u64::from(i));
        let c = format!("<sip:agent7@10.1.0.7:{}>", 6000 + i);
        assert_eq!(
            reg.handle_register(now, &register(&[&c], Some("600"), &format!("b{i}"), 1), src(6000 + i), "rt").status,
            200
        );
        assert_eq!(reg.newest(now, AOR).map(|b| b.source), Some(src(6000 + i)), "the newest binding is called");
    }
    let now = t0 + Duration::from_secs(5);
    let live = reg.store.lookup(now, AOR);
    assert_eq!(live.iter().map(|b| b.source.port()).collect::<Vec<_>>(), vec![6002, 6003, 6004], "oldest dropped");
    // A refresh of an older binding keeps its place: the newest stays the newest.
    let r = reg.handle_register(now, &register(&["<sip:agent7@10.1.0.7:6002>"], Some("600"), "b2", 2), src(6002), "rt");
    assert_eq!(r.status, 200);
    assert_eq!(reg.newest(now, AOR).map(|b| b.source.port()), Some(6004));
    // Un-registering the newest falls back to the next one.
    reg.handle_register(now, &register(&["<sip:agent7@10.1.0.7:6004>"], Some("0"), "b4", 2), src(6004), "rt");
    assert_eq!(reg.newest(now, AOR).map(|b| b.source.port()), Some(6003));
    // The same URI written differently (the scheme's case) names the same binding.
    reg.handle_register(now, &register(&["<SIP:agent7@10.1.0.7:6003>"], Some("0"), "b3", 2), src(6003), "rt");
    assert_eq!(reg.newest(now, AOR).map(|b| b.source.port()), Some(6002));
}

#[test]
fn a_request_applies_whole_or_not_at_all() {
    let t0 = Instant::now();
    let mut reg = reg();
    let ok = "<sip:agent7@10.1.0.7:5060>;expires=300";
    let brief = "<sip:agent7@10.1.0.7:5062>;expires=5";
    assert_eq!(reg.handle_register(t0, &register(&[ok, brief], None, "w", 1), src(1), "rt").status, 423);
    assert!(reg.store.lookup(t0, AOR).is_empty(), "nothing bound from a refused request");
    let r = reg.handle_register(t0, &register(&[ok, "<sip:agent7@10.1.0.7:5062>"], Some("120"), "w", 2), src(1), "rt");
    assert_eq!(contacts(&r).len(), 2);
    // A bad Contact, a Require we do not know: refused, the bindings stay.
    assert_eq!(reg.handle_register(t0, &register(&["<sip:x@h", ok], None, "w", 3), src(1), "rt").status, 400);
    let mut req = register(&[ok], None, "w", 4);
    req.headers.push("Require", "gruu");
    let r = reg.handle_register(t0, &req, src(1), "rt");
    assert_eq!((r.status, r.headers.get("Unsupported")), (420, Some("gruu")));
    assert_eq!(reg.store.lookup(t0, AOR).len(), 2);
}

#[test]
fn stores_are_bounded() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(MemoryContactStore::new(1));
    assert_eq!(reg.handle_register(t0, &register(&["<sip:a@h>"], Some("60"), "c", 1), src(1), "rt").status, 200);
    let mut other = register(&["<sip:b@h>"], Some("60"), "d", 1);
    other.headers.set("To", "<sip:agent8@kakeru>");
    assert_eq!(reg.handle_register(t0, &other, src(2), "rt").status, 503);
    // Expired AORs free room.
    assert_eq!(reg.store.expire(t0 + Duration::from_secs(60)).len(), 1);
    assert_eq!(reg.handle_register(t0 + Duration::from_secs(60), &other, src(2), "rt").status, 200);
}

#[derive(Debug, Clone)]
enum Op {
    Register { phone: u8, instance: bool, expires: u32, port: u16 },
    Wait(u16),
    Star,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, any::<bool>(), prop_oneof![Just(0u32), 30u32..5000], 5000u16..5008)
            .prop_map(|(phone, instance, expires, port)| Op::Register { phone, instance, expires, port }),
        2 => (1u16..4000).prop_map(Op::Wait),
        1 => Just(Op::Star),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Whatever phones do, the bindings stay within bounds, are unique per key, never outlive their
    /// grant, and the newest is the one most recently bound.
    #[test]
    fn bindings_stay_consistent(ops in prop::collection::vec(op(), 1..40)) {
        let mut now = Instant::now();
        let mut reg = reg();
        reg.max_bindings_per_aor = 3;
        let mut cseq = 1u32;
        for op in ops {
            cseq += 1;
            match op {
                Op::Register { phone, instance, expires, port } => {
                    let c = if instance {
                        format!("<sip:p{phone}x{port}@127.0.0.1:{port}>;+sip.instance=\"<urn:uuid:{phone}>\";reg-id=1")
                    } else {
                        format!("<sip:p{phone}@127.0.0.1:{port}>")
                    };
                    let r = reg.handle_register(now, &register(&[&c], Some(&expires.to_string()), "one", cseq), src(port), "rt");
                    let want = if expires != 0 && expires < 60 { 423 } else { 200 };
                    prop_assert_eq!(r.status, want);
                }
                Op::Wait(s) => {
                    now += Duration::from_secs(u64::from(s));
                    reg.store.expire(now);
                }
                Op::Star => {
                    prop_assert_eq!(reg.handle_register(now, &register(&["*"], Some("0"), "one", cseq), src(1), "rt").status, 200);
                    prop_assert!(reg.store.lookup(now, AOR).is_empty());
                }
            }
            let live = reg.store.lookup(now, AOR);
            prop_assert!(live.len() <= 3);
            for (i, a) in live.iter().enumerate() {
                prop_assert!(a.expires_at > now && a.expires_at <= now + Duration::from_secs(3600));
                for b in &live[i + 1..] {
                    let same = match (&a.instance, &b.instance) {
                        (Some(x), Some(y)) => x == y,
                        (None, None) => a.contact == b.contact,
                        _ => false,
                    };
                    prop_assert!(!same, "two bindings for one key: {:?} {:?}", a, b);
                }
            }
            let newest = live.iter().max_by_key(|b| (b.bound_at, b.seq)).cloned();
            prop_assert_eq!(reg.newest(now, AOR), newest);
        }
    }
}
