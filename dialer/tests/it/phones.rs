//! The agents' phones against one shard's call control, under virtual time, with REGISTERs as
//! datagrams from any source address: the digest challenges each account asks for, the registrar
//! (the phone's expiry, restarts, un-registering, expiry), the limits on failed authentication, and
//! the rotation of the nonce secret.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialer::calls::{Account, CallControl, CallEvent, Command, Config, DigestChallenges, Now};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sip::auth::{self, ha1, Algorithm, Challenge, Credentials, NonceKeys};
use sip::message::{self, Headers, Method, Request, Response};

const REALM: &str = "demo.kakeru";
const SHARD: &str = "127.0.0.1:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address literal")
}

fn account(user: &str, password: &str, digest: DigestChallenges) -> Account {
    Account {
        tenant_id: 1,
        user_id: Some(u64::from(user.bytes().last().unwrap_or(b'0'))),
        realm: REALM.into(),
        username: user.into(),
        ha1_md5: ha1(Algorithm::Md5, user, REALM, password),
        ha1_sha256: ha1(Algorithm::Sha256, user, REALM, password),
        digest,
    }
}

/// One shard's call control and a virtual clock; requests go in as datagrams.
struct Shard {
    cc: CallControl,
    now: Instant,
    unix_ms: u64,
    branch: u64,
    events: Vec<CallEvent>,
}

impl Shard {
    fn new(accounts: Vec<Account>) -> Shard {
        let mut cfg = Config::new(addr(SHARD), addr("127.0.0.2:5060"));
        cfg.phones.nonce_keys = NonceKeys::new(b"phones test nonce secret").expect("long enough");
        let mut cc = CallControl::new(cfg, Box::new(ChaCha8Rng::seed_from_u64(3)));
        let now = Instant::now();
        cc.handle_command(Now { mono: now, unix_ms: 1_780_000_000_000 }, Command::SetAccounts(accounts));
        Shard { cc, now, unix_ms: 1_780_000_000_000, branch: 0, events: Vec::new() }
    }

    fn t(&self) -> Now {
        Now { mono: self.now, unix_ms: self.unix_ms }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.cc.poll_timeout().filter(|at| *at <= end) {
            self.unix_ms += at.saturating_duration_since(self.now).as_millis() as u64;
            self.now = self.now.max(at);
            let now = self.t();
            self.cc.handle_timeout(now);
            self.drain();
        }
        self.unix_ms += end.saturating_duration_since(self.now).as_millis() as u64;
        self.now = end;
    }

    fn drain(&mut self) {
        while self.cc.poll_transmit().is_some() {}
        while let Some(e) = self.cc.poll_event() {
            self.events.push(e);
        }
    }

    /// Sends `req` from `from` (a fresh Via branch) and returns the final response sent back there.
    fn send(&mut self, from: SocketAddr, req: &Request) -> Response {
        self.branch += 1;
        let mut r = req.clone();
        r.headers.remove("Via");
        r.headers.push_front("Via", format!("SIP/2.0/UDP {from};branch=z9hG4bK{};rport", self.branch));
        let now = self.t();
        self.cc.handle_datagram(now, from, &r.to_bytes());
        let mut last = None;
        while let Some(t) = self.cc.poll_transmit() {
            if t.dest == from {
                if let Ok(message::Message::Response(resp)) = message::parse(&t.bytes) {
                    if resp.status >= 200 {
                        last = Some(resp);
                    }
                }
            }
        }
        while let Some(e) = self.cc.poll_event() {
            self.events.push(e);
        }
        self.advance(Duration::from_millis(10));
        last.expect("a final response")
    }

    fn registered(&mut self) -> Vec<(String, SocketAddr, u32)> {
        std::mem::take(&mut self.events)
            .into_iter()
            .filter_map(|e| match e {
                CallEvent::Registered { contact, source, expires_s, .. } => Some((contact, source, expires_s)),
                _ => None,
            })
            .collect()
    }
}

/// A phone as baresip 1.0 registers: a contact user that changes at every start, `expires` and
/// `+sip.instance` on the Contact.
struct Phone {
    user: String,
    password: String,
    source: SocketAddr,
    call_id: String,
    cseq: u32,
    instance: Option<String>,
    start: u32,
    /// The challenge answered last (a phone keeps using its nonce).
    challenge: Option<Response>,
}

impl Phone {
    fn new(user: &str, password: &str, source: &str, instance: bool) -> Phone {
        Phone {
            user: user.into(),
            password: password.into(),
            source: addr(source),
            call_id: format!("{user}-{source}"),
            cseq: 0,
            instance: instance.then(|| format!("<urn:uuid:00000000-0000-0000-0000-{user:0>12}>")),
            start: 0,
            challenge: None,
        }
    }

    fn restart(&mut self, source: &str) {
        self.start += 1;
        self.source = addr(source);
        self.call_id = format!("{}-{}-{}", self.user, source, self.start);
        self.challenge = None;
    }

    fn contact(&self, expires: u32) -> String {
        let mut c = format!("<sip:{}-0x{:04}@{}>;expires={expires}", self.user, self.start, self.source);
        if let Some(i) = &self.instance {
            c.push_str(&format!(";+sip.instance=\"{i}\";reg-id=1"));
        }
        c
    }

    fn request(&mut self, expires: u32) -> Request {
        self.cseq += 1;
        let mut h = Headers::new();
        h.push("From", format!("<sip:{}@{REALM}>;tag=t{}", self.user, self.start));
        h.push("To", format!("\"{}\" <sip:{}@{REALM}>", self.user, self.user));
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{} REGISTER", self.cseq));
        h.push("Contact", self.contact(expires));
        h.push("Max-Forwards", "70");
        Request { method: Method::Register, uri: format!("sip:{REALM}"), headers: h, body: Vec::new() }
    }

    fn authorize(&mut self, req: &Request, challenge: &Response) -> Request {
        let creds = Credentials { username: self.user.clone(), password: self.password.clone() };
        let mut r = auth::authorize(req, challenge, &creds, "0a4f113b").expect("a challenge we understand");
        self.cseq += 1;
        r.headers.set("CSeq", format!("{} REGISTER", self.cseq));
        r
    }

    /// REGISTER as a phone does: with its last nonce if it has one, answering challenges (at most
    /// two rounds). The statuses seen.
    fn register(&mut self, shard: &mut Shard, expires: u32) -> Vec<u16> {
        let mut req = self.request(expires);
        if let Some(ch) = self.challenge.clone() {
            req = self.authorize(&req, &ch);
        }
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let resp = shard.send(self.source, &req);
            statuses.push(resp.status);
            if resp.status != 401 {
                break;
            }
            self.challenge = Some(resp.clone());
            req = self.authorize(&req, &resp);
        }
        statuses
    }
}

fn challenges(r: &Response) -> Vec<Algorithm> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("WWW-Authenticate"))
        .map(|(_, v)| Challenge::parse(v).expect("our challenge parses").algorithm)
        .collect()
}

#[test]
fn each_account_gets_the_challenges_it_asks_for() {
    let mut shard = Shard::new(vec![
        account("md5", "pw-md5", DigestChallenges::Md5),
        account("sha", "pw-sha", DigestChallenges::Sha256),
        account("both", "pw-both", DigestChallenges::Both),
    ]);
    for (user, want) in [
        ("md5", vec![Algorithm::Md5]),
        ("sha", vec![Algorithm::Sha256]),
        ("both", vec![Algorithm::Sha256, Algorithm::Md5]),
        ("nobody", vec![Algorithm::Md5]),
    ] {
        let mut p = Phone::new(user, "x", "127.0.0.9:5090", false);
        let req = p.request(600);
        let r = shard.send(p.source, &req);
        assert_eq!((r.status, challenges(&r)), (401, want), "{user}");
    }
    // Every account registers with what it was offered.
    for (user, pw, src) in [
        ("md5", "pw-md5", "127.0.0.3:5090"),
        ("sha", "pw-sha", "127.0.0.4:5090"),
        ("both", "pw-both", "127.0.0.5:5090"),
    ] {
        assert_eq!(Phone::new(user, pw, src, false).register(&mut shard, 600), vec![401, 200], "{user}");
    }
    // A SHA-256 answer is taken from an MD5 account; an MD5 answer is not taken from a SHA-256 one.
    let md5_account = Phone::new("md5", "pw-md5", "127.0.0.6:5090", false);
    let sha_account = Phone::new("sha", "pw-sha", "127.0.0.7:5090", false);
    for (mut p, alg, want) in [(md5_account, Algorithm::Sha256, 200), (sha_account, Algorithm::Md5, 401)] {
        let first = p.request(600);
        let challenge = shard.send(p.source, &first);
        let mut ch = Challenge::parse(challenge.headers.get("WWW-Authenticate").expect("a challenge")).expect("parses");
        ch.algorithm = alg;
        let creds = Credentials { username: p.user.clone(), password: p.password.clone() };
        let mut again = p.request(600);
        again
            .headers
            .push("Authorization", auth::authorization_value(&ch, &creds, "REGISTER", &again.uri, "c0ffee", 1));
        assert_eq!(shard.send(p.source, &again).status, want, "{} answering {alg:?}", p.user);
    }
}

#[test]
fn the_phones_expiry_restarts_and_un_registering() {
    let mut shard = Shard::new(vec![account("agent1", "pw1", DigestChallenges::Md5)]);
    let mut phone = Phone::new("agent1", "pw1", "127.0.0.3:5090", true);
    assert_eq!(phone.register(&mut shard, 60), vec![401, 200]);
    let regs = shard.registered();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].0, "sip:agent1-0x0000@127.0.0.3:5090", "the Contact's URI alone");
    assert_eq!((regs[0].1, regs[0].2), (addr("127.0.0.3:5090"), 60), "the phone's 60 s, not an hour");
    // Three restarts on new ports (no un-register: killed): one binding each time, the new one.
    for (i, src) in ["127.0.0.3:5091", "127.0.0.3:5092", "127.0.0.3:5093"].iter().enumerate() {
        phone.restart(src);
        assert_eq!(phone.register(&mut shard, 60), vec![401, 200]);
        let regs = shard.registered();
        assert_eq!(regs.len(), 1);
        assert_eq!(regs[0].0, format!("sip:agent1-0x{:04}@{src}", i + 1));
        assert_eq!(regs[0].1, addr(src));
    }
    let req = phone.request(60);
    let r = shard.send(phone.source, &phone.authorize(&req, &phone.challenge.clone().expect("challenged")));
    assert_eq!(r.headers.get_list("Contact").len(), 1, "one binding after three restarts: {r:?}");
    shard.registered();
    // Un-registering removes it: the engine hears "none left".
    assert_eq!(phone.register(&mut shard, 0), vec![200]);
    assert_eq!(shard.registered(), vec![(String::new(), addr("0.0.0.0:0"), 0)]);
    // A binding nobody refreshes expires, and the engine hears of it when it does.
    assert_eq!(phone.register(&mut shard, 60), vec![200]);
    assert_eq!(shard.registered().len(), 1);
    shard.advance(Duration::from_secs(59));
    assert!(shard.registered().is_empty());
    shard.advance(Duration::from_secs(2));
    assert_eq!(shard.registered(), vec![(String::new(), addr("0.0.0.0:0"), 0)]);
    // Too brief: 423 with Min-Expires.
    let mut brief = phone.request(5);
    brief = phone.authorize(&brief, &phone.challenge.clone().expect("challenged"));
    let r = shard.send(phone.source, &brief);
    assert_eq!((r.status, r.headers.get("Min-Expires")), (423, Some("30")));
}

#[test]
fn a_guessing_source_is_refused_and_a_right_phone_elsewhere_still_registers() {
    let mut shard = Shard::new(vec![
        account("agent1", "right-1", DigestChallenges::Md5),
        account("agent2", "right-2", DigestChallenges::Md5),
    ]);
    let mut guesser = Phone::new("agent1", "guess", "192.0.2.66:5060", false);
    let mut statuses = Vec::new();
    for i in 0..200 {
        guesser.password = format!("guess{i}");
        statuses.extend(guesser.register(&mut shard, 600));
    }
    let wrong_answers = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 403).count();
    assert!(wrong_answers <= 6, "refused after a few: {wrong_answers} challenges");
    assert!(refused >= 195, "{refused} refused of {}", statuses.len());
    assert!(!statuses.contains(&200));
    let s = shard.cc.stats().phones;
    assert_eq!((s.wrong_credentials, s.sources_banned), (5, 1), "{s:?}");
    assert!(s.refused_source >= 195, "{s:?}");
    // The right phones elsewhere, of the same account and another, register meanwhile.
    assert_eq!(Phone::new("agent1", "right-1", "192.0.2.10:5060", true).register(&mut shard, 600), vec![401, 200]);
    assert_eq!(Phone::new("agent2", "right-2", "192.0.2.11:5060", true).register(&mut shard, 600), vec![401, 200]);
    // The ban ends after its time; the next one lasts twice as long.
    shard.advance(Duration::from_secs(300));
    guesser.challenge = None;
    assert_eq!(guesser.register(&mut shard, 600), vec![401, 401, 401], "challenged again once the ban is over");
    assert_eq!(guesser.register(&mut shard, 600), vec![401, 401, 403]);
    shard.advance(Duration::from_secs(300));
    assert_eq!(guesser.register(&mut shard, 600), vec![403], "the second ban lasts 10 minutes");
}

#[test]
fn an_account_guessed_from_many_addresses_locks_for_new_addresses_only() {
    let mut shard = Shard::new(vec![account("agent1", "right-1", DigestChallenges::Md5)]);
    let mut phone = Phone::new("agent1", "right-1", "198.51.100.1:5060", true);
    assert_eq!(phone.register(&mut shard, 600), vec![401, 200]);
    // Four guesses each from five addresses: no address is banned, the account locks.
    for a in 0..5 {
        let mut g = Phone::new("agent1", "guess", &format!("203.0.113.{}:5060", a + 1), false);
        let first = g.request(600);
        let challenge = shard.send(g.source, &first);
        for i in 0..4 {
            g.password = format!("guess{a}{i}");
            let req = g.request(600);
            let req = g.authorize(&req, &challenge);
            assert_eq!(shard.send(g.source, &req).status, 401);
        }
    }
    assert_eq!(shard.cc.stats().phones.accounts_locked, 1);
    // A new address is refused even with the right password; the registered phone refreshes.
    let mut newcomer = Phone::new("agent1", "right-1", "198.51.100.2:5060", false);
    assert_eq!(newcomer.register(&mut shard, 600), vec![401, 403]);
    assert_eq!(phone.register(&mut shard, 600), vec![200], "the phone already registered keeps working");
    assert_eq!(shard.cc.stats().phones.refused_account, 1);
}

#[test]
fn rotating_the_nonce_secret_keeps_phones_registered_without_a_failure() {
    let mut shard = Shard::new(vec![account("agent1", "pw1", DigestChallenges::Md5)]);
    let mut phone = Phone::new("agent1", "pw1", "127.0.0.3:5090", true);
    assert_eq!(phone.register(&mut shard, 600), vec![401, 200]);
    // The new secret first, the old one kept: the phone's nonce still verifies.
    let rotated = NonceKeys::parse("phones rotated secret 2\nphones test nonce secret\n").expect("keys");
    let now = shard.t();
    shard.cc.handle_command(now, Command::SetNonceKeys(rotated));
    assert_eq!(phone.register(&mut shard, 600), vec![200]);
    // The old one dropped: the right password with its nonce is stale, challenged once, not a failure.
    let now = shard.t();
    shard.cc.handle_command(now, Command::SetNonceKeys(NonceKeys::parse("phones rotated secret 2").expect("key")));
    assert_eq!(phone.register(&mut shard, 600), vec![401, 200]);
    let stale = phone.challenge.as_ref().and_then(|c| c.headers.get("WWW-Authenticate")).expect("challenge");
    assert!(Challenge::parse(stale).expect("parses").stale, "{stale}");
    assert_eq!(shard.cc.stats().phones.wrong_credentials, 0);
    assert_eq!(shard.registered().len(), 3, "registered throughout");
}

#[test]
fn a_shard_without_accounts_yet_asks_phones_to_come_back_soon() {
    let mut shard = Shard::new(Vec::new());
    let mut phone = Phone::new("agent1", "pw1", "127.0.0.3:5090", true);
    let req = phone.request(600);
    let r = shard.send(phone.source, &req);
    assert_eq!((r.status, r.headers.get("Retry-After")), (503, Some("5")), "not a 403 phones give up on");
    let now = shard.t();
    shard.cc.handle_command(now, Command::SetAccounts(vec![account("agent1", "pw1", DigestChallenges::Md5)]));
    assert_eq!(phone.register(&mut shard, 600), vec![401, 200]);
    // Another realm is refused at once, counted, and bans nobody.
    let mut stranger = Phone::new("agent1", "pw1", "127.0.0.4:5090", false);
    for _ in 0..10 {
        let mut req = stranger.request(600);
        req.headers.set("To", "<sip:agent1@elsewhere.example>");
        assert_eq!(shard.send(stranger.source, &req).status, 403);
    }
    let s = shard.cc.stats().phones;
    assert_eq!((s.unknown_realm, s.sources_banned), (10, 0), "{s:?}");
}
