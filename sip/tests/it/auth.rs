//! Digest authentication: RFC vectors, a carrier challenging our INVITE, our registrar challenging a phone.

use sip::auth::{self, Algorithm, Challenge, Credentials, NonceSigner, Verdict};
use sip::message::{response_to, Headers};
use sip::{Method, Request};

use crate::pair::keys;

#[test]
fn rfc2617_md5_vector() {
    let ha1 = auth::ha1(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
    assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
    let r = auth::response_value(
        Algorithm::Md5,
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "GET",
        "/dir/index.html",
        Some(("00000001", "0a4f113b")),
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc7616_vectors() {
    let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    let realm = "http-auth@example.org";
    for (alg, want) in [
        (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (Algorithm::Sha256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ] {
        let ha1 = auth::ha1(alg, "Mufasa", realm, "Circle of Life");
        let r = auth::response_value(alg, &ha1, nonce, "GET", "/dir/index.html", Some(("00000001", cnonce)));
        assert_eq!(r, want, "{alg:?}");
    }
}

fn invite() -> Request {
    let mut h = Headers::new();
    h.push("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKaaa");
    h.push("From", "<sip:0501234567@10.0.0.1>;tag=f1");
    h.push("To", "<sip:0312345678@carrier.example>");
    h.push("Call-ID", "c1@10.0.0.1");
    h.push("CSeq", "1 INVITE");
    Request { method: Method::Invite, uri: "sip:0312345678@carrier.example".into(), headers: h, body: Vec::new() }
}

#[test]
fn carrier_challenge_answered_and_verified() {
    let signer = NonceSigner::new(&keys(b"shard secret"), "carrier.example", 300);
    let now_s = 1_800_000_000;
    let req = invite();
    for (status, alg) in [(401u16, Algorithm::Md5), (407, Algorithm::Sha256)] {
        let mut chal = response_to(&req, status, Some("c"));
        let hdr = if status == 401 { "WWW-Authenticate" } else { "Proxy-Authenticate" };
        chal.headers.push(hdr, signer.challenge(now_s, alg, false));
        let creds = Credentials { username: "trunk1".into(), password: "pw".into() };
        let again = auth::authorize(&req, &chal, &creds, "deadbeef").expect("challenge understood");
        assert_eq!(again.cseq().expect("cseq").seq, 2, "CSeq incremented");
        assert!(again.headers.get("Via").is_none(), "old Via dropped; the endpoint adds a new branch");
        let out = if status == 401 { "Authorization" } else { "Proxy-Authorization" };
        let value = again.headers.get(out).expect("credentials added");
        let v = signer.verify(now_s + 5, "INVITE", value, |u, a| {
            assert_eq!(u, "trunk1");
            Some(auth::ha1(a, "trunk1", "carrier.example", "pw"))
        });
        assert_eq!(v, Verdict::Ok { username: "trunk1".into() });
    }
}

#[test]
fn phone_register_with_stored_ha1_stale_and_wrong_password() {
    // Our registrar (any shard with the same secret) challenges an agent's phone.
    let signer = NonceSigner::new(&keys(b"cluster secret"), "kakeru", 300);
    let other_shard = NonceSigner::new(&keys(b"cluster secret"), "kakeru", 300);
    let t0 = 1_800_000_000;
    let ch = Challenge::parse(&signer.challenge(t0, Algorithm::Md5, false)).expect("our own challenge parses");
    assert!(ch.qop_auth);
    let creds = Credentials { username: "agent7".into(), password: "secret".into() };
    let value = auth::authorization_value(&ch, &creds, "REGISTER", "sip:kakeru", "c0ffee", 1);
    // HA1 as the store keeps it: MD5 and SHA-256 of user:realm:password.
    let stored = |_: &str, a: Algorithm| Some(auth::ha1(a, "agent7", "kakeru", "secret"));
    assert_eq!(other_shard.verify(t0 + 10, "REGISTER", &value, stored), Verdict::Ok { username: "agent7".into() });
    assert_eq!(other_shard.verify(t0 + 301, "REGISTER", &value, stored), Verdict::Stale);
    let wrong = Credentials { username: "agent7".into(), password: "guess".into() };
    let bad = auth::authorization_value(&ch, &wrong, "REGISTER", "sip:kakeru", "c0ffee", 1);
    assert_eq!(signer.verify(t0 + 10, "REGISTER", &bad, stored), Verdict::Invalid);
    // A nonce from another secret with the right password is stale (challenged again, not a
    // failure); with a wrong one it is invalid. Garbage is invalid.
    let foreign = NonceSigner::new(&keys(b"other"), "kakeru", 300);
    let ch2 = Challenge::parse(&foreign.challenge(t0, Algorithm::Md5, false)).expect("parses");
    let v2 = auth::authorization_value(&ch2, &creds, "REGISTER", "sip:kakeru", "c0ffee", 1);
    assert_eq!(signer.verify(t0 + 10, "REGISTER", &v2, stored), Verdict::Stale);
    let v3 = auth::authorization_value(&ch2, &wrong, "REGISTER", "sip:kakeru", "c0ffee", 1);
    assert_eq!(signer.verify(t0 + 10, "REGISTER", &v3, stored), Verdict::Invalid);
    for junk in ["", "Digest", "Basic abc", "Digest username=\"a", "Digest nonce=\"zz\", response=1"] {
        assert_eq!(signer.verify(t0, "REGISTER", junk, stored), Verdict::Invalid, "{junk}");
    }
    // The stale challenge says so.
    assert!(Challenge::parse(&signer.challenge(t0, Algorithm::Sha256, true)).expect("parses").stale);
}

#[test]
fn store_ha1_definition_matches() {
    // store::accounts::digest_ha1 is hex(MD5(u:r:p)), hex(SHA-256(u:r:p)).
    assert_eq!(
        auth::ha1(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life"),
        "939e7578ed9e3c518a452acee763bce9"
    );
    assert_eq!(auth::ha1(Algorithm::Sha256, "Mufasa", "testrealm@host.com", "Circle Of Life").len(), 64);
}

#[test]
fn a_rotated_secret_keeps_verifying_the_nonces_of_the_old_one() {
    use sip::auth::{KeyError, NonceKeys};
    let old = NonceKeys::parse("# rotated 2026-12-01\nold-secret-0123456789abcdef\n").expect("one key");
    let rotated = NonceKeys::parse("new-secret-fedcba9876543210\n\nold-secret-0123456789abcdef\n").expect("two keys");
    assert_eq!((old.len(), rotated.len()), (1, 2));
    let t0 = 1_800_000_000;
    let creds = Credentials { username: "agent7".into(), password: "secret".into() };
    let stored = |_: &str, a: Algorithm| Some(auth::ha1(a, "agent7", "kakeru", "secret"));
    let before = NonceSigner::new(&old, "kakeru", 300);
    let ch = Challenge::parse(&before.challenge(t0, Algorithm::Sha256, false)).expect("parses");
    let value = auth::authorization_value(&ch, &creds, "REGISTER", "sip:kakeru", "c0ffee", 1);
    // After the rotation the phone's nonce still verifies; new nonces are signed with the new key.
    let after = NonceSigner::new(&rotated, "kakeru", 300);
    assert_eq!(after.verify(t0 + 30, "REGISTER", &value, stored), Verdict::Ok { username: "agent7".into() });
    assert_ne!(after.nonce(t0), before.nonce(t0));
    // Once the old key is dropped, the same answer is stale: challenged again, never a failure.
    let only_new = NonceSigner::new(&NonceKeys::parse("new-secret-fedcba9876543210").expect("key"), "kakeru", 300);
    assert_eq!(only_new.verify(t0 + 30, "REGISTER", &value, stored), Verdict::Stale);
    // Keys are never printed, and weak or missing ones are refused.
    let shown = format!("{rotated:?} {after:?}");
    assert!(!shown.contains("secret-"), "{shown}");
    assert_eq!(NonceKeys::parse("# nothing\n"), Err(KeyError::Empty));
    assert_eq!(NonceKeys::parse("long-enough-secret-1\nshort"), Err(KeyError::TooShort(2)));
    let mut rng = rand::rngs::mock::StepRng::new(7, 13);
    assert_ne!(NonceKeys::generate(&mut rng), NonceKeys::generate(&mut rng));
}
