//! Issue 18 on the binary: `kakeru api` on SQLite creates and resets no account without
//! `--seed-demo`, and SIGTERM ends it within 10 s with slow connections, an idle kept-alive
//! connection and a wallboard stream open.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::process::{run, Role};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_sqlite_creates_no_account_without_seed_demo() {
    let mut p = Role::start(&["api", "--listen", "127.0.0.1:0"], &[]);
    let base = p.url_after("listening on");
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.expect("healthz").status().as_u16(), 200);
    let db = store::Db::connect(&p.database_url()).await.expect("database");
    let users: i64 = store::sqlx::Row::try_get(
        &store::sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&db.pool).await.expect("count"),
        "n",
    )
    .expect("n");
    assert_eq!(users, 0, "a production start creates no account");
    p.interrupt();
    let (_, lines) = p.wait_exit(Duration::from_secs(10));
    assert!(lines.iter().all(|l| !l.contains("password")), "nothing like a login printed: {lines:?}");
}

/// Sends a request head's first bytes and leaves it unfinished.
fn half_head(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a").expect("write");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_api_within_ten_seconds_with_connections_open() {
    let mut p = Role::start(&["api", "--listen", "127.0.0.1:0", "--seed-demo"], &[]);
    let base = p.url_after("listening on");
    let line = p.wait_line("\"password\":\"");
    let password = line.split("\"password\":\"").nth(1).and_then(|s| s.split('"').next()).expect("password");
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"tenant": "demo", "login": "admin", "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["token"].as_str().expect("token");
    let ticket: serde_json::Value = http
        .post(format!("{base}/wallboard/tickets"))
        .bearer_auth(token)
        .send()
        .await
        .expect("ticket")
        .json()
        .await
        .expect("json");
    let addr = base.trim_start_matches("http://").to_string();
    // A wallboard stream (never ends by itself), five half-sent heads, one idle kept-alive connection.
    let mut stream = TcpStream::connect(&addr).expect("connect");
    let t = ticket["ticket"].as_str().expect("ticket");
    stream
        .write_all(
            format!("GET /wallboard/stream?ticket={t} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .expect("write");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).expect("the stream starts");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let _slow: Vec<TcpStream> = (0..5).map(|_| half_head(&addr)).collect();
    let mut idle = TcpStream::connect(&addr).expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let (ok, out) = run("kill", &["-TERM", &p.child_id().to_string()], None);
    assert!(ok, "kill -TERM: {out}");
    let (_, lines) = p.wait_exit(Duration::from_secs(10));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_limits_are_set_on_the_command_line() {
    let mut p = Role::start(&["api", "--listen", "127.0.0.1:0", "--seed-demo", "--login-lockout-after", "2"], &[]);
    let base = p.url_after("listening on");
    let line = p.wait_line("\"password\":\"");
    let password = line.split("\"password\":\"").nth(1).and_then(|s| s.split('"').next()).expect("password");
    let http = reqwest::Client::new();
    let login = |pw: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/auth/login"))
                .json(&serde_json::json!({"tenant": "demo", "login": "admin", "password": pw}))
                .send()
                .await
                .expect("login")
                .status()
                .as_u16()
        }
    };
    assert_eq!(login("Wrong-pass1".into()).await, 401);
    assert_eq!(login("Wrong-pass1".into()).await, 401);
    assert_eq!(login(password.to_string()).await, 423, "locked after 2 wrong passwords, as configured");
}
