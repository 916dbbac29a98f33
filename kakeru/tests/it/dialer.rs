//! `kakeru dialer` and the phones' digest nonce secret: required, taken from a file or the
//! environment, refused when weak, and never printed, not even at the debug log level.

use std::time::Duration;

use crate::process::Role;

const SECRET: &str = "nonce-secret-that-must-never-print-4f1c";

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `kakeru dialer` on loopback ports chosen by the system, over Redis under a prefix of its own.
fn dialer(extra: &[&str], env: &[(&str, &str)]) -> Role {
    let prefix = format!("dialer-secret-{}-{}:", std::process::id(), store::now_ms());
    let mut args = vec!["dialer", "--carrier", "127.0.0.1:9", "--sip-listen", "127.0.0.1:0", "--shards", "1"];
    args.extend_from_slice(extra);
    let redis = redis_url();
    let mut all = vec![("REDIS_URL", redis.as_str()), ("KAKERU_REDIS_PREFIX", prefix.as_str()), ("RUST_LOG", "debug")];
    all.extend_from_slice(env);
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, *v)).collect();
    Role::start(&args, &all)
}

#[test]
fn the_dialer_needs_a_nonce_secret_and_never_prints_it() {
    // None, both, a weak one: refused at once, saying why.
    for (extra, env, says) in [
        (vec![], vec![], "KAKERU_SIP_NONCE_SECRET_FILE"),
        (vec!["--sip-nonce-secret-file", "/nonexistent/keys"], vec![("KAKERU_SIP_NONCE_SECRET", SECRET)], "not both"),
        (vec![], vec![("KAKERU_SIP_NONCE_SECRET", "short")], "shorter than 16 bytes"),
        (vec!["--sip-nonce-secret-file", "/nonexistent/keys"], vec![], "reading the nonce secret file"),
    ] {
        let mut p = dialer(&extra, &env);
        let (ok, lines) = p.wait_exit(Duration::from_secs(30));
        assert!(!ok, "started without a usable secret: {lines:?}");
        assert!(lines.iter().any(|l| l.contains(says)), "{says:?} not said: {lines:?}");
    }
    // A key file, then the environment: the dialer runs, and the secret shows nowhere.
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("sip-nonce-keys");
    std::fs::write(&file, format!("{SECRET}\n")).expect("write the key file");
    let file = file.display().to_string();
    for (extra, env) in
        [(vec!["--sip-nonce-secret-file", file.as_str()], vec![]), (vec![], vec![("KAKERU_SIP_NONCE_SECRET", SECRET)])]
    {
        let mut p = dialer(&extra, &env);
        let settings = p.wait_line("the agents' phones' SIP settings");
        assert!(settings.contains("NonceKeys(1 keys, redacted)"), "{settings}");
        p.wait_line("kakeru dialer: 1 shard(s)");
        p.interrupt();
        let (_, lines) = p.wait_exit(Duration::from_secs(30));
        assert!(lines.iter().all(|l| !l.contains(SECRET)), "the secret was printed: {lines:?}");
    }
}
