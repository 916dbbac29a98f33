//! `kakeru demo`, the README's first command, as a newcomer runs it: the binary on a fresh SQLite
//! file. Within a minute it prints the wallboard's URL and a login; then a floor of 50 simulated
//! agents works a predictive campaign over real SIP and RTP on loopback: the wallboard (snapshot,
//! and the page in a real headless Chromium) shows its figures change, `/metrics` counts its calls,
//! and Ctrl-C stops it cleanly with every call given a result and its recordings closed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::desktop::{browser_dir, browser_test};
use crate::metrics::{parse, value};
use crate::process::Role;

const AGENTS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_floor_runs_on_the_wallboard_and_stops_cleanly() {
    let t0 = Instant::now();
    let agents = AGENTS.to_string();
    let mut demo = Role::start(
        &[
            "demo",
            "--agents",
            &agents,
            "--channels",
            "200",
            "--listen",
            "127.0.0.1:0",
            // Shorter calls than a real floor's, so that a test minute sees many of them end.
            "--talk-mean-s",
            "12",
            "--wrapup-mean-s",
            "3",
            "--seed",
            "7",
        ],
        &[("RUST_LOG", "warn")],
    );
    let base = demo.url_after("wallboard:").trim_end_matches("/ui/wallboard").to_owned();
    let login = demo.wait_line("login:");
    let started = t0.elapsed();
    println!("demo printed its login after {:.1} s: {login}", started.as_secs_f64());
    assert!(started < Duration::from_secs(60), "the demo took {started:?} to start");
    let word = |key: &str| -> String {
        let mut it = login.split_whitespace();
        it.find(|w| *w == key).and_then(|_| it.next()).unwrap_or_else(|| panic!("no {key} in {login:?}")).to_owned()
    };
    let (tenant, user, password) = (word("tenant"), word("login"), word("password"));

    let http = reqwest::Client::new();
    let token = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"tenant": tenant, "login": user, "password": password}))
        .send()
        .await
        .expect("login")
        .json::<Value>()
        .await
        .expect("login body")["token"]
        .as_str()
        .expect("the printed login works")
        .to_owned();
    let get = |path: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let r = http.get(path).bearer_auth(token).send().await.expect("GET");
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.expect("JSON")
        }
    };

    // The floor on the wallboard's snapshot: every agent logged in, calls answered and connected.
    let deadline = Instant::now() + Duration::from_secs(90);
    let campaign = loop {
        let snap = get(format!("{base}/wallboard")).await;
        let online =
            snap["agents"].as_array().map(|a| a.iter().filter(|t| t["state"] != "offline").count()).unwrap_or(0);
        let busiest = snap["campaigns"]
            .as_array()
            .into_iter()
            .flatten()
            .max_by_key(|c| c["today"]["connected"].as_u64().unwrap_or(0))
            .cloned();
        if let Some(c) = busiest.filter(|c| c["today"]["connected"].as_u64().unwrap_or(0) >= 5 && online >= AGENTS) {
            println!(
                "after {:.1} s: {online} agents online, campaign {} answered {} connected {} abandoned {}, dials in flight {}",
                t0.elapsed().as_secs_f64(),
                c["campaign_id"],
                c["today"]["answered"],
                c["today"]["connected"],
                c["today"]["abandoned"],
                c["dials_in_flight"]
            );
            break c["campaign_id"].as_i64().expect("campaign id");
        }
        assert!(Instant::now() < deadline, "no floor on the wallboard: {online} agents online, {snap}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // /metrics counts the calls: launched, ended by result, answered.
    let metrics = http.get(format!("{base}/metrics")).send().await.expect("scrape").text().await.expect("body");
    let samples = parse(&metrics);
    let sum = |name: &str| value(&samples, name, &[]);
    let launched = sum("kakeru_dialer_calls_launched_total");
    let answered = sum("kakeru_dialer_calls_answered_total");
    let ended = sum("kakeru_dialer_calls_total");
    println!("metrics: launched {launched}, answered {answered}, ended {ended}");
    assert!(launched >= 10.0 && answered >= 5.0 && ended >= 1.0, "the calls are not counted:\n{metrics}");
    assert!(sum("kakeru_http_requests_total") > 100.0, "the agents' API requests are counted");

    // The page in a real Chromium: figures change, an SV pauses an agent, a screenshot.
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && browser_dir().join("node_modules/playwright-core").exists(),
        "Chromium and playwright-core are missing: run `bash scripts/services.sh`"
    );
    let fixture =
        json!({"tenant": tenant, "login": user, "password": password, "campaign": campaign, "agents": AGENTS});
    let browser = browser_test("wallboard.test.js", "demo", &base, &fixture).output();
    let out =
        tokio::time::timeout(Duration::from_secs(300), browser).await.expect("the browser test hung").expect("node");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{text}");
    assert!(out.status.success() && text.lines().any(|l| l == "BROWSER OK"), "the browser test failed:\n{text}");
    assert!(text.contains("STATE_CHANGE applied"), "{text}");

    // The simulated agents save their records through the API: wait for the first (a call's talk and
    // wrap-up take about 15 s on average, longer than the steps above when the machine is fast).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let saved = get(format!("{base}/wrapup-records?saved=true")).await;
        if saved["total"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no agent saved a wrap-up record within 90 s: {saved}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Ctrl-C: the job stops, every call gets its result, the recordings are closed.
    demo.interrupt();
    let (ok, lines) = demo.wait_exit(Duration::from_secs(60));
    let all = lines.join("\n");
    assert!(ok, "the demo did not exit cleanly:\n{all}");
    let last =
        lines.iter().find(|l| l.contains("kakeru demo: stopped.")).unwrap_or_else(|| panic!("no summary:\n{all}"));
    println!("{last}");
    assert!(last.ends_with("calls without a result: 0"), "{last}\n{all}");

    // The database after the stop: the job stopped, no call left pending, every connected call
    // with a recording file that exists and holds audio.
    let db = store::Db::connect(&demo.database_url()).await.expect("the demo's database");
    use store::sqlx::{self, Row};
    let job = sqlx::query("SELECT id, status FROM call_jobs ORDER BY id DESC LIMIT 1")
        .fetch_one(&db.pool)
        .await
        .expect("job");
    assert_eq!(job.try_get::<String, _>("status").expect("status"), "stopped");
    let job_id: i64 = job.try_get("id").expect("id");
    let rows = sqlx::query("SELECT result, bridged_at, recording_path FROM call_records WHERE call_job_id = $1")
        .bind(job_id)
        .fetch_all(&db.pool)
        .await
        .expect("records");
    assert!(rows.len() >= 10, "{} call records", rows.len());
    let mut bridged = 0;
    let mut recorded_1s = 0;
    let mut archived = 0;
    for r in &rows {
        let result: String = r.try_get("result").expect("result");
        assert_ne!(result, "pending", "a call without a result");
        if r.try_get::<Option<i64>, _>("bridged_at").expect("bridged_at").is_some() {
            bridged += 1;
            let path: Option<String> = r.try_get("recording_path").expect("recording_path");
            let path = demo.dir().join(path.expect("a connected call is recorded"));
            let len = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len();
            if path.extension().is_some_and(|e| e == "opus") {
                // Archived by the demo's encoder: Ogg Opus (about 4 kB per second of the two channels).
                let ogg = std::fs::read(&path).expect("opus file");
                assert!(ogg.starts_with(b"OggS"), "{}: an Ogg stream", path.display());
                archived += 1;
                if len > 3_000 {
                    recorded_1s += 1;
                }
                continue;
            }
            // A WAV header and audio (16 kB per second of stereo G.711; calls cut by the stop are short).
            assert!(len > 44, "{}: {len} bytes", path.display());
            if len > 44 + 16_000 {
                recorded_1s += 1;
            }
        }
    }
    assert!(bridged >= 5, "{bridged} connected calls");
    assert!(recorded_1s * 2 >= bridged, "{recorded_1s} of {bridged} recordings hold a second of audio");
    // The archive ran in the demo: finished recordings became Ogg Opus while the floor worked.
    assert!(archived >= 1, "none of {bridged} recordings was archived to Opus");
    // GET /recordings/usage's figures are the files on disk: every live recording's bytes are its file's.
    let tenant: i64 = sqlx::query("SELECT tenant_id FROM call_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&db.pool)
        .await
        .expect("tenant")
        .try_get("tenant_id")
        .expect("tenant_id");
    let live = sqlx::query("SELECT path, bytes FROM recordings WHERE tenant_id = $1 AND deleted_at IS NULL")
        .bind(tenant)
        .fetch_all(&db.pool)
        .await
        .expect("recordings");
    let mut on_disk = 0i64;
    for r in &live {
        let path = demo.dir().join(r.try_get::<String, _>("path").expect("path"));
        let len = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len() as i64;
        assert_eq!(r.try_get::<i64, _>("bytes").expect("bytes"), len, "{}", path.display());
        on_disk += len;
    }
    let usage = store::recordings::usage(&db, tenant).await.expect("usage");
    assert_eq!(usage.bytes, on_disk, "{usage:?}");
    println!("{archived} of {bridged} recordings archived to Opus; {on_disk} bytes of recordings on disk");
    let saved: i64 = sqlx::query("SELECT COUNT(*) AS n FROM wrapup_records WHERE saved_at IS NOT NULL")
        .fetch_one(&db.pool)
        .await
        .expect("saved records")
        .try_get("n")
        .expect("n");
    assert!(saved >= 1, "the agents saved no wrap-up record");
    println!("{} call records, {bridged} connected and recorded, {saved} wrap-up records saved", rows.len());
}
