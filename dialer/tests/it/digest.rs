//! The phones' digest against the dialer engine over real UDP. Password guessing (issue 18's
//! check): 1,000 REGISTERs with wrong digests from one address are refused after a few, the right
//! phones of other addresses (the guessed account's own among them) still register, and the
//! failures, refusals and the ban show in the metrics, which promtool accepts. The nonce secret
//! file: rotated while the engine runs, read again, old nonces kept until their key is dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sim::phone::PhoneConfig;
use sip::auth::Credentials;
use sip::dialog;
use sip::message::{self, Method, Request};
use store::Backend;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::floor::{until, Floor, FloorSpec};

const GUESSES: usize = 1_000;

pub(crate) fn register_request(
    account: &sim::phone::PhoneAccount,
    sock: &UdpSocket,
    call_id: &str,
    cseq: u32,
) -> Request {
    let aor = format!("sip:{}@{}", account.username, account.domain);
    let mut req =
        dialog::out_of_dialog(Method::Register, &format!("sip:{}", account.domain), &aor, "t", &aor, call_id, cseq);
    req.headers.push("Contact", format!("<sip:{}@{}>", account.username, sock.local_addr().expect("addr")));
    req
}

/// Waits until the shard knows the accounts (before, 503), asking from `sock`.
pub(crate) async fn until_challenged(
    sock: &UdpSocket,
    registrar: SocketAddr,
    account: &sim::phone::PhoneAccount,
) -> message::Response {
    let ask = register_request(account, sock, "probe", 1);
    for n in 0.. {
        let r = exchange(sock, registrar, &ask).await;
        if r.status == 401 {
            return r;
        }
        assert!(n < 200, "the shard never challenged: {}", r.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!("the loop returns or fails")
}

fn value(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

static BRANCH: AtomicUsize = AtomicUsize::new(0);

/// Sends `req` from `sock` with a fresh branch and waits for its final response.
pub(crate) async fn exchange(sock: &UdpSocket, to: SocketAddr, req: &Request) -> message::Response {
    let n = BRANCH.fetch_add(1, Ordering::Relaxed);
    let mut r = req.clone();
    r.headers.remove("Via");
    r.headers.push_front("Via", format!("SIP/2.0/UDP {};branch=z9hG4bKguess{n}", sock.local_addr().expect("addr")));
    sock.send_to(&r.to_bytes(), to).await.expect("loopback send");
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("the registrar answers every REGISTER")
            .expect("recv");
        if let Ok(message::Message::Response(resp)) = message::parse(&buf[..len]) {
            if resp.status >= 200 && resp.top_via().and_then(|v| v.branch) == Some(format!("z9hG4bKguess{n}")) {
                return resp;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_digests_from_one_address_are_refused_after_a_few() {
    let handle = telemetry::install("dialer").expect("the recorder installs");
    let (stop_tx, stop) = watch::channel(false);
    let spec = FloorSpec { agents: 2, ..FloorSpec::default() };
    // No call is placed: the carrier's address is never used.
    let floor = Floor::start(Backend::Sqlite, &spec, "127.0.0.1:9".parse().expect("addr")).await;
    let registrar = floor.info.sip_addrs[0];
    let target = &floor.phone_accounts()[0];
    let guesser = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
    let probe = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 3), 0)).await.expect("bind 127.0.0.3");
    until_challenged(&probe, registrar, target).await;
    let started = Instant::now();
    let (mut challenged, mut refused, mut other) = (0usize, 0usize, 0usize);
    let mut challenge = None;
    for n in 0..GUESSES {
        let mut req = register_request(target, &guesser, "guess-1", n as u32 + 1);
        if let Some(ch) = &challenge {
            let creds = Credentials { username: target.username.clone(), password: format!("guess{n}") };
            req = sip::auth::authorize(&req, ch, &creds, "c0ffee").expect("our challenge is usable");
        }
        let resp = exchange(&guesser, registrar, &req).await;
        match resp.status {
            401 => {
                challenged += 1;
                challenge = Some(resp);
            }
            403 => refused += 1,
            _ => other += 1,
        }
    }
    let took = started.elapsed();
    eprintln!("{GUESSES} wrong REGISTERs from one address: {challenged} challenged, {refused} refused, in {took:?}");
    assert_eq!(other, 0, "never registered, never anything but 401 or 403");
    assert!(challenged <= 6, "refused after a few: {challenged} challenges (the first one and 5 failures)");
    assert_eq!(refused, GUESSES - challenged);
    // The right phones, at another address: the guessed account's and another agent's.
    let phones = sim::phone::start(
        floor.phone_accounts(),
        PhoneConfig {
            registrar,
            bind_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            expires_s: 300,
            answer_after: Duration::from_millis(100),
            tone_hz: None,
        },
        stop.clone(),
    )
    .await
    .expect("phones on 127.0.0.2");
    until("the right phones registered", Duration::from_secs(10), || async {
        phones.iter().all(|p| p.stats().registered)
    })
    .await;
    until("both registrations stored", Duration::from_secs(10), || async {
        floor.scalar("SELECT COUNT(*) FROM sip_registrations WHERE tenant_id = $1 AND source LIKE '127.0.0.2:%'").await
            == 2
    })
    .await;
    // The shard flushes its counters about once a second.
    until("the failures in the metrics", Duration::from_secs(5), || {
        let text = handle.render();
        // The 403 that answers the fifth failure is that failure, not a refusal.
        async move { value(&text, "kakeru_sip_auth_refused_total", "limit=\"source\"") >= (refused - 1) as f64 }
    })
    .await;
    let text = handle.render();
    assert_eq!(value(&text, "kakeru_sip_auth_refused_total", "limit=\"source\""), (refused - 1) as f64, "{text}");
    crate::metrics::promtool_check(&text);
    assert_eq!(value(&text, "kakeru_sip_auth_failures_total", "reason=\"wrong_credentials\""), 5.0, "{text}");
    assert_eq!(value(&text, "kakeru_sip_auth_bans_total", "limit=\"source\""), 1.0, "{text}");
    assert_eq!(value(&text, "kakeru_sip_auth_bans_total", "limit=\"account\""), 0.0, "{text}");
    floor.stop().await;
    let _ = stop_tx.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nonce_secret_file_rotates_while_the_engine_runs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("sip-nonce-keys");
    std::fs::write(&file, "first-secret-of-the-floor-0001\n").expect("write the key file");
    let spec = FloorSpec { agents: 1, nonce_key_file: Some(file.clone()), ..FloorSpec::default() };
    let floor = Floor::start(Backend::Sqlite, &spec, "127.0.0.1:9".parse().expect("addr")).await;
    let registrar = floor.info.sip_addrs[0];
    let phone = &floor.phone_accounts()[0];
    let creds = Credentials { username: phone.username.clone(), password: phone.password.clone() };
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
    let old = until_challenged(&sock, registrar, phone).await;
    let mut cseq = 10;
    let mut answer_old = || {
        cseq += 2;
        let req = register_request(phone, &sock, "rotating", cseq);
        sip::auth::authorize(&req, &old, &creds, "c0ffee").expect("usable")
    };
    assert_eq!(exchange(&sock, registrar, &answer_old()).await.status, 200);
    // A new secret first, the old one kept: the old nonce still verifies once the file is read again.
    std::fs::write(&file, "second-secret-of-the-floor-02\nfirst-secret-of-the-floor-0001\n").expect("rotate");
    // Read again within a reload: new challenges are signed with the new secret, not the old one.
    let first = sip::auth::NonceSigner::new(
        &sip::auth::NonceKeys::new(b"first-secret-of-the-floor-0001").expect("key"),
        &phone.domain,
        300,
    );
    until("new nonces signed with the new secret", Duration::from_secs(10), || {
        let ask = register_request(phone, &sock, "probe", 1);
        let (sock, first) = (&sock, &first);
        async move {
            let r = exchange(sock, registrar, &ask).await;
            let nonce =
                r.headers.get("WWW-Authenticate").and_then(|v| sip::auth::Challenge::parse(v).ok()).map(|c| c.nonce);
            nonce.is_some_and(|n| {
                let second = u64::from_str_radix(&n[..16], 16).expect("a nonce starts with its second");
                n != first.nonce(second)
            })
        }
    })
    .await;
    assert_eq!(exchange(&sock, registrar, &answer_old()).await.status, 200, "the old nonce still verifies");
    // The old secret dropped: the same answer is stale (challenged again, not a failure).
    std::fs::write(&file, "second-secret-of-the-floor-02\n").expect("drop the old secret");
    until("the old nonce no longer verifies", Duration::from_secs(10), || {
        let req = answer_old();
        let sock = &sock;
        async move { exchange(sock, registrar, &req).await.status == 401 }
    })
    .await;
    let r = exchange(&sock, registrar, &answer_old()).await;
    let stale = r.headers.get("WWW-Authenticate").and_then(|v| sip::auth::Challenge::parse(v).ok());
    assert!(stale.is_some_and(|c| c.stale), "{r:?}");
    assert_eq!(
        floor.scalar("SELECT COUNT(*) FROM sip_registrations WHERE tenant_id = $1").await,
        1,
        "the phone stayed registered"
    );
    floor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_phone_account_is_challenged_as_its_row_says() {
    for backend in crate::floor::backends() {
        let spec = FloorSpec { agents: 3, ..FloorSpec::default() };
        let floor = Floor::start(backend, &spec, "127.0.0.1:9".parse().expect("addr")).await;
        for (user, setting) in [("agent1", "sha256"), ("agent2", "both")] {
            store::sqlx::query("UPDATE phones SET digest_algorithms = $1 WHERE tenant_id = $2 AND sip_username = $3")
                .bind(setting)
                .bind(floor.tenant as i64)
                .bind(user)
                .execute(&floor.db.pool)
                .await
                .expect("set the phone's digest algorithms");
        }
        // As the API does after a write to phones.
        floor.notify(wire::DialerNotice::PhonesChanged).await;
        let registrar = floor.info.sip_addrs[0];
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let accounts = floor.phone_accounts();
        let algorithms = |r: &message::Response| -> Vec<String> {
            r.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("WWW-Authenticate"))
                .map(|(_, v)| sip::auth::Challenge::parse(v).expect("parses").algorithm.name().to_string())
                .collect()
        };
        // The engine reads the accounts again on the notice.
        until("the settings reach the shard", Duration::from_secs(10), || {
            let (sock, accounts) = (&sock, &accounts);
            async move {
                let mut seen = Vec::new();
                for a in accounts {
                    let r =
                        exchange(sock, registrar, &register_request(a, sock, &format!("alg-{}", a.username), 1)).await;
                    seen.push(algorithms(&r));
                }
                seen == [vec!["MD5"], vec!["SHA-256"], vec!["SHA-256", "MD5"]]
            }
        })
        .await;
        // Each registers with what it was offered (the SHA-256 one answering SHA-256).
        for a in &accounts {
            let req = register_request(a, &sock, &format!("alg-ok-{}", a.username), 1);
            let challenge = exchange(&sock, registrar, &req).await;
            let creds = Credentials { username: a.username.clone(), password: a.password.clone() };
            let again = sip::auth::authorize(&req, &challenge, &creds, "c0ffee").expect("usable");
            assert_eq!(exchange(&sock, registrar, &again).await.status, 200, "{} on {backend:?}", a.username);
        }
        floor.stop().await;
    }
}
