//! The registrar: expiry, re-register, bounds, wildcard removal.

use std::time::{Duration, Instant};

use sip::message::Headers;
use sip::registrar::{ContactStore, MemoryContactStore, Registrar, RegistrarError};
use sip::{Method, Request};

fn register(contact: &str, expires: Option<&str>, cseq: u32) -> Request {
    let mut h = Headers::new();
    h.push("Via", "SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bKr1");
    h.push("From", "<sip:agent7@kakeru>;tag=p1");
    h.push("To", "<sip:agent7@kakeru>");
    h.push("Call-ID", "reg-1@10.1.0.7");
    h.push("CSeq", format!("{cseq} REGISTER"));
    h.push("Contact", contact);
    if let Some(e) = expires {
        h.push("Expires", e);
    }
    Request { method: Method::Register, uri: "sip:kakeru".into(), headers: h, body: Vec::new() }
}

#[test]
fn register_expire_reregister() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(MemoryContactStore::new(100, 4));
    let r = reg.handle_register(t0, &register("<sip:agent7@10.1.0.7:5060>", Some("120"), 1), "rt");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("Contact"), Some("<sip:agent7@10.1.0.7:5060>;expires=120"));
    assert_eq!(reg.store.lookup(t0 + Duration::from_secs(119), "sip:agent7@kakeru").len(), 1);
    assert!(reg.store.lookup(t0 + Duration::from_secs(120), "sip:agent7@kakeru").is_empty());
    // Re-register at 100 s extends.
    let t1 = t0 + Duration::from_secs(100);
    let r = reg.handle_register(t1, &register("<sip:agent7@10.1.0.7:5060>;expires=300", None, 2), "rt");
    assert_eq!(r.status, 200);
    assert_eq!(reg.store.lookup(t0 + Duration::from_secs(399), "sip:agent7@kakeru").len(), 1);
    // Out of order (same Call-ID, old CSeq) refused.
    let r = reg.handle_register(t1, &register("<sip:agent7@10.1.0.7:5060>", Some("300"), 2), "rt");
    assert_eq!(r.status, 500);
    // expire() removes it.
    assert_eq!(reg.store.expire(t0 + Duration::from_secs(401)), 1);
    assert_eq!(reg.store.aor_count(), 0);
}

#[test]
fn too_brief_and_wildcard_and_unregister() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(MemoryContactStore::new(100, 4));
    let r = reg.handle_register(t0, &register("<sip:a@10.1.0.7>", Some("10"), 1), "rt");
    assert_eq!(r.status, 423);
    assert_eq!(r.headers.get("Min-Expires"), Some("60"));
    assert_eq!(reg.handle_register(t0, &register("<sip:a@10.1.0.7>", Some("60"), 2), "rt").status, 200);
    assert_eq!(reg.handle_register(t0, &register("<sip:a@10.1.0.7>", Some("0"), 3), "rt").status, 200);
    assert!(reg.store.lookup(t0, "sip:agent7@kakeru").is_empty());
    assert_eq!(reg.handle_register(t0, &register("<sip:a@10.1.0.7>", Some("60"), 4), "rt").status, 200);
    assert_eq!(reg.handle_register(t0, &register("*", Some("0"), 5), "rt").status, 200);
    assert!(reg.store.lookup(t0, "sip:agent7@kakeru").is_empty());
    assert_eq!(reg.handle_register(t0, &register("*", Some("60"), 6), "rt").status, 400);
    // Huge expiry clamps to max.
    let r = reg.handle_register(t0, &register("<sip:a@10.1.0.7>", Some("999999"), 7), "rt");
    assert_eq!(r.headers.get("Contact"), Some("<sip:a@10.1.0.7>;expires=3600"));
}

#[test]
fn store_is_bounded() {
    let t0 = Instant::now();
    let mut s = MemoryContactStore::new(1, 2);
    let d = Duration::from_secs(60);
    s.register(t0, "sip:a@k", "sip:1@x", d, "c", 1).expect("room");
    s.register(t0, "sip:a@k", "sip:2@x", d, "c", 2).expect("room");
    assert_eq!(s.register(t0, "sip:a@k", "sip:3@x", d, "c", 3), Err(RegistrarError::TooManyContacts));
    assert_eq!(s.register(t0, "sip:b@k", "sip:1@x", d, "c", 1), Err(RegistrarError::TooManyAors));
    // Expired entries free room.
    s.register(t0 + d, "sip:a@k", "sip:3@x", d, "c", 4).expect("old ones expired");
}
