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

    // A day of recordings against a quota smaller than them: the quota set to half of what the
    // run has recorded so far, then the job stopped and its last calls left to end and be encoded.
    let db = store::Db::connect(&demo.database_url()).await.expect("the demo's database");
    let quota = recordings_past_the_quota(&http, &base, &token, &db, campaign, demo.dir()).await;

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
    use store::sqlx::{self, Row};
    let job = sqlx::query("SELECT id, status FROM call_jobs ORDER BY id DESC LIMIT 1")
        .fetch_one(&db.pool)
        .await
        .expect("job");
    assert_eq!(job.try_get::<String, _>("status").expect("status"), "stopped");
    let job_id: i64 = job.try_get("id").expect("id");
    let rows = sqlx::query("SELECT id, result, bridged_at, recording_path FROM call_records WHERE call_job_id = $1")
        .bind(job_id)
        .fetch_all(&db.pool)
        .await
        .expect("records");
    assert!(rows.len() >= 10, "{} call records", rows.len());
    let deleted: std::collections::HashSet<i64> = sqlx::query(
        "SELECT call_record_id FROM recordings WHERE deleted_at IS NOT NULL AND call_record_id IS NOT NULL",
    )
    .fetch_all(&db.pool)
    .await
    .expect("deleted recordings")
    .iter()
    .map(|r| r.try_get("call_record_id").expect("call_record_id"))
    .collect();
    let mut bridged = 0;
    let mut kept = 0;
    let mut recorded_1s = 0;
    let mut archived = 0;
    for r in &rows {
        let result: String = r.try_get("result").expect("result");
        assert_ne!(result, "pending", "a call without a result");
        if r.try_get::<Option<i64>, _>("bridged_at").expect("bridged_at").is_some() {
            bridged += 1;
            let path: Option<String> = r.try_get("recording_path").expect("recording_path");
            let path = demo.dir().join(path.expect("a connected call is recorded"));
            if deleted.contains(&r.try_get::<i64, _>("id").expect("id")) {
                assert!(!path.exists(), "{}: deleted past the quota, still on disk", path.display());
                continue;
            }
            kept += 1;
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
    assert!(recorded_1s * 2 >= kept, "{recorded_1s} of {kept} recordings kept hold a second of audio");
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
    assert!(usage.accounted_bytes <= quota, "{usage:?} past the quota {quota}");
    println!("{archived} of {kept} recordings kept archived to Opus ({bridged} connected); {on_disk} bytes of recordings on disk");
    let saved: i64 = sqlx::query("SELECT COUNT(*) AS n FROM wrapup_records WHERE saved_at IS NOT NULL")
        .fetch_one(&db.pool)
        .await
        .expect("saved records")
        .try_get("n")
        .expect("n");
    assert!(saved >= 1, "the agents saved no wrap-up record");
    println!("{} call records, {bridged} connected and recorded, {saved} wrap-up records saved", rows.len());
}

/// Sets the demo tenant's recording quota to half of what its calls have recorded so far, stops
/// the call job and waits until its last calls have ended and every recording is encoded. Then:
/// every recording left is Ogg Opus, the oldest were deleted first until the rest fit the quota,
/// `GET /recordings/usage` is the bytes on disk, and a deleted recording's audio answers 410 with
/// why. Returns the quota.
async fn recordings_past_the_quota(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    db: &store::Db,
    campaign: i64,
    dir: &std::path::Path,
) -> i64 {
    use store::sqlx::{self, Row};
    let get = |path: String| async move {
        let r = http.get(format!("{base}{path}")).bearer_auth(token).send().await.expect("GET");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json::<Value>().await.expect("JSON")
    };
    // The quota is half of what some 20 recordings hold: a quota of one or two (CI once set it
    // from a single 17,902-byte recording) is smaller than the last call's own recording, and
    // would rightly delete every one. With 20, the last recording alone passes half of them
    // about once in 1,400 runs (lognormal talk times, cv 1).
    let deadline = Instant::now() + Duration::from_secs(120);
    let before = loop {
        let u = get("/recordings/usage".into()).await;
        if u["recordings"].as_i64().unwrap_or(0) >= 20 {
            break u;
        }
        assert!(Instant::now() < deadline, "20 recordings not encoded in 120 s: {u}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let quota = before["accounted_bytes"].as_i64().expect("accounted_bytes") / 2;
    assert!(quota > 0, "nothing recorded yet: {before}");
    let r = http.patch(format!("{base}/tenant")).bearer_auth(token).json(&json!({"recording_quota_bytes": quota}));
    assert!(r.send().await.expect("PATCH /tenant").status().is_success());
    let jobs = get(format!("/call-jobs?campaign_id={campaign}&status=running")).await;
    let job = jobs["items"][0]["id"].as_i64().unwrap_or_else(|| panic!("no running job: {jobs}"));
    let stop = http.post(format!("{base}/call-jobs/{job}/stop")).bearer_auth(token).send().await.expect("stop");
    assert!(stop.status().is_success(), "stopping the job: {}", stop.status());
    // The job's last calls end (the agents hang up after their talk) and their recordings are
    // encoded: twice in a row no call in progress and nothing waiting for the encoder.
    // The demo's talk times are lognormal (mean 12 s, cv 1): about one call in 1,400 talks past
    // 120 s, and some 50 are in progress at the stop; one in 30,000 talks past 240 s.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut settled = 0;
    let usage = loop {
        let pending: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM call_records WHERE call_job_id = $1 AND result = 'pending'")
                .bind(job)
                .fetch_one(&db.pool)
                .await
                .expect("pending calls")
                .try_get("n")
                .expect("n");
        let u = get("/recordings/usage".into()).await;
        settled = if pending == 0 && u["pending_encoding"] == 0 { settled + 1 } else { 0 };
        if settled == 2 {
            break u;
        }
        if Instant::now() >= deadline {
            let rows = sqlx::query(
                "SELECT id, dialer_call_id, agent_user_id, answered_at, bridged_at, ended_at, created_at FROM call_records
                 WHERE call_job_id = $1 AND result = 'pending'",
            )
            .bind(job)
            .fetch_all(&db.pool)
            .await
            .expect("pending calls");
            let rows: Vec<String> = rows
                .iter()
                .map(|r| {
                    let g =
                        |c: &str| r.try_get::<Option<i64>, _>(c).ok().flatten().map_or("-".into(), |v| v.to_string());
                    ["id", "dialer_call_id", "agent_user_id", "answered_at", "bridged_at", "ended_at", "created_at"]
                        .map(|c| format!("{c}={}", g(c)))
                        .join(" ")
                })
                .collect();
            panic!("the job's calls did not end and get encoded: {pending} calls ({rows:?}), {u}");
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    };
    let rows = sqlx::query(
        "SELECT id, path, format, bytes, deleted_at, deleted_reason FROM recordings
         WHERE tenant_id = (SELECT tenant_id FROM call_jobs WHERE id = $1) ORDER BY started_at, id",
    )
    .bind(job)
    .fetch_all(&db.pool)
    .await
    .expect("recordings");
    let (mut live, mut gone) = (Vec::new(), Vec::new());
    let mut on_disk = 0i64;
    for r in &rows {
        let id: i64 = r.try_get("id").expect("id");
        let path = dir.join(r.try_get::<String, _>("path").expect("path"));
        let path = path.display().to_string();
        if r.try_get::<Option<i64>, _>("deleted_at").expect("deleted_at").is_some() {
            assert_eq!(r.try_get::<Option<String>, _>("deleted_reason").expect("reason").as_deref(), Some("quota"));
            assert!(!std::path::Path::new(&path).exists(), "{path}: deleted, still on disk");
            assert!(!std::path::Path::new(&path).with_extension("wav").exists(), "{path}: its WAV is still on disk");
            gone.push(id);
            continue;
        }
        // Every ended call's recording is Ogg Opus.
        assert_eq!(r.try_get::<String, _>("format").expect("format"), "opus", "{path}");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(bytes.starts_with(b"OggS"), "{path}: not an Ogg stream");
        assert_eq!(r.try_get::<i64, _>("bytes").expect("bytes"), bytes.len() as i64, "{path}");
        on_disk += bytes.len() as i64;
        live.push(id);
    }
    // Oldest first: in (started_at, id) order, every deleted recording comes before every live one.
    let order: Vec<bool> =
        rows.iter().map(|r| r.try_get::<Option<i64>, _>("deleted_at").expect("d").is_some()).collect();
    assert!(order.windows(2).all(|w| w[0] || !w[1]), "a newer recording deleted before an older one: {order:?}");
    assert!(!gone.is_empty(), "the quota ({quota} bytes, half the run's recordings) deleted nothing: {usage}");
    assert!(!live.is_empty(), "every recording deleted: {usage}");
    assert_eq!(usage["bytes"].as_i64(), Some(on_disk), "usage against the files: {usage}");
    assert_eq!(usage["recordings"].as_i64(), Some(live.len() as i64), "{usage}");
    assert!(on_disk <= quota, "{on_disk} bytes on disk past the quota {quota}");
    // A deleted recording's audio: 410, saying why; a live one's: its Ogg Opus.
    let r = http.get(format!("{base}/recordings/{}/audio", gone[0])).bearer_auth(token).send().await.expect("audio");
    assert_eq!(r.status().as_u16(), 410);
    let e: Value = r.json().await.expect("error body");
    assert_eq!(e["error"]["code"], "recording_deleted", "{e}");
    let last = live[live.len() - 1];
    let r = http.get(format!("{base}/recordings/{last}/audio")).bearer_auth(token).send().await.expect("audio");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "audio/ogg; codecs=opus");
    println!(
        "quota {quota} bytes: {} recordings deleted oldest first, {} kept ({on_disk} bytes of Ogg Opus on disk)",
        gone.len(),
        live.len()
    );
    quota
}
