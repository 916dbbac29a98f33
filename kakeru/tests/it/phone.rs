//! ブラウザフォン in a real headless Chromium (`api/tests/browser/phone.test.js`): the agent's leg is
//! WebRTC from the page to the dialer's media shard, with Chromium's fake microphone playing a
//! 440 Hz WAV and the carrier's customer saying 1,000 Hz. The page hears the customer (checked by
//! frequency in the page), the customer hears the agent (the recording's agent channel, checked by
//! frequency), and the result keyed on the page's dial pad (RFC 4733) is saved by DTMF result entry.
//! Then the page's network cut for 3 s (Chromium's network service stopped): the agent is 未確認,
//! the page says why and rejoins by itself, and no call is left without a result.
//! Over TCP alone (the shard's UDP candidates dropped from its answer in the page, RFC 6544's
//! passive candidate left) the same call talks both ways and the health line says TCP.
//! Screenshots under `target/tmp/browser/phone-*.png`, ja and en.

use std::path::Path;
use std::time::Duration;

use kakeru::node::{Node, NodeConfig};
use media::dtmf::goertzel_power;
use serde_json::json;
use sim::carrier::{Behaviour, CarrierConfig};
use store::sqlx::{self, Row};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

use crate::desktop::{browser_dir, browser_test, campaign, insert, join_group, Floor};

/// A 48 kHz 16-bit mono WAV of a sine (Chromium's fake microphone loops it).
pub(crate) fn write_tone(path: &Path, hz: f64, seconds: u32) {
    let rate = 48_000u32;
    let n = rate * seconds;
    let mut b = Vec::with_capacity(44 + 2 * n as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(2 * rate).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let s = (8_000.0 * (2.0 * std::f64::consts::PI * hz * f64::from(i) / f64::from(rate)).sin()) as i16;
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).expect("the tone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_phone_talks_both_ways_and_keys_the_result() {
    browser_phone("phone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_phone_talks_over_tcp_alone() {
    browser_phone("tcp").await;
}

/// The floor and the page in `mode` (`phone`: with the network cut; `tcp`: the page over TCP).
async fn browser_phone(mode: &str) {
    assert!(
        Path::new("/usr/bin/chromium").exists() && browser_dir().join("node_modules/playwright-core").exists(),
        "Chromium and playwright-core are missing: run `bash scripts/services.sh`"
    );
    assert!(media::voice::opus_available(), "the browser phone's test needs --features media/opus (scripts/test.sh)");
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}/kakeru.db", dir.path().display());
    let node = Node::open(NodeConfig::new(&url)).await.expect("node");
    let db = node.db().clone();
    let now = store::now_ms();
    let t = store::tenancy::create_tenant(&db, "phone", "電話株式会社", "Asia/Tokyo", now).await.expect("tenant");
    store::tenancy::set_national_holidays(&db, t, false).await.expect("holidays");
    let op = store::accounts::create_user(
        &db,
        &store::accounts::NewUser {
            tenant_id: t,
            login: "suzuki",
            display_name: "鈴木 一郎",
            role: store::accounts::Role::Op,
            password: "phone-password-1",
        },
        now,
    )
    .await
    .expect("op");
    // The browser phone: no SIP account.
    sqlx::query("UPDATE users SET phone_kind = 'browser' WHERE id = $1")
        .bind(op)
        .execute(&db.pool)
        .await
        .expect("kind");
    let group = insert(
        &db,
        "INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, '第一班', 0) RETURNING id",
        &[json!(t)],
    )
    .await;
    join_group(&db, t, group, op).await;
    let (job, c, _) = campaign(
        &db,
        t,
        group,
        "ブラウザ発信",
        "progressive",
        &[("山田 花子", "0311110001"), ("佐藤 次郎", "0311110002"), ("高橋 三郎", "0311110003")],
    )
    .await;
    sqlx::query("UPDATE campaigns SET dtmf_result_entry = 1 WHERE id = $1")
        .bind(c)
        .execute(&db.pool)
        .await
        .expect("dtmf");

    // The floor: the carrier's customers answer after 3 s, say 1,000 Hz for 6 s and hang up; the
    // second and third leads ring until the ring timeout (the job runs on through the network cut).
    let (sim_stop, sim_rx) = watch::channel(false);
    let voice: Vec<u8> = (0..8_000)
        .map(|i| {
            let s = 6_000.0 * (2.0 * std::f64::consts::PI * 1_000.0 * f64::from(i) / 8_000.0).sin();
            media::Codec::Pcmu.encode(s as i16)
        })
        .collect();
    let answer = Behaviour::Answer { after_ms: 3_000, talk_ms: Some(6_000) };
    let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let carrier = sim::carrier::start(
        loopback,
        CarrierConfig {
            by_last_digit: Some(std::array::from_fn(|d| if d == 2 || d == 3 { Behaviour::Ring } else { answer })),
            voice: Some(voice.into()),
            ..CarrierConfig::default()
        },
        sim_rx.clone(),
    )
    .await
    .expect("carrier");
    let recordings = tempfile::tempdir().expect("recordings");
    let floor = Floor::start(node, t, carrier.sip_addr, "phone", Some(recordings.path().to_path_buf())).await;
    let base = floor.base.clone();

    // The page.
    let tone = dir.path().join("agent-440.wav");
    write_tone(&tone, 440.0, 10);
    let fixture = json!({"tenant": "phone", "login": "suzuki", "password": "phone-password-1", "job": job.name,
                         "tone": tone.display().to_string()});
    let mut child = browser_test("phone.test.js", mode, &base, &fixture).spawn().expect("node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut output = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
        .await
        .expect("the browser went silent")
        .expect("browser output")
    {
        println!("browser: {line}");
        output.push(line);
    }
    let status = child.wait().await.expect("browser exit");
    assert!(
        status.success() && output.iter().any(|l| l == "BROWSER OK"),
        "the browser test failed:\n{}",
        output.join("\n")
    );

    // The result keyed on the page's dial pad, saved.
    let saved: String = sqlx::query("SELECT result FROM wrapup_records WHERE agent_user_id = $1 AND saved = 1")
        .bind(op)
        .fetch_one(&db.pool)
        .await
        .expect("a saved record")
        .try_get("result")
        .expect("result");
    assert_eq!(saved, "2");
    // The customer heard the agent: the recording's agent channel is the page's 440 Hz.
    let path: String = sqlx::query("SELECT path FROM recordings WHERE tenant_id = $1")
        .bind(t)
        .fetch_one(&db.pool)
        .await
        .expect("a recording")
        .try_get("path")
        .expect("path");
    let rec = media::recording::read_recording(&std::fs::read(&path).expect("the recording")).expect("readable");
    let (mut agent, mut customer) = (Vec::new(), Vec::new());
    rec.codec.decode_into(&rec.agent, &mut agent);
    rec.codec.decode_into(&rec.customer, &mut customer);
    let (a, a_off) = (goertzel_power(&agent, 440.0, 8_000.0), goertzel_power(&agent, 1_000.0, 8_000.0));
    let (c, c_off) = (goertzel_power(&customer, 1_000.0, 8_000.0), goertzel_power(&customer, 440.0, 8_000.0));
    println!("recording: agent 440 Hz {a:.0} (1 kHz {a_off:.0}), customer 1 kHz {c:.0} (440 Hz {c_off:.0})");
    assert!(a > 1e4 && a > 10.0 * a_off, "the agent channel holds the page's 440 Hz: {a} vs {a_off}");
    assert!(c > 1e4 && c > 10.0 * c_off, "the customer channel holds the customer's 1,000 Hz: {c} vs {c_off}");

    // The call ringing through the network cut (the second lead) ends with a result (its ring
    // timeout is 10 s).
    if mode == "phone" {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let results: Vec<String> =
                sqlx::query("SELECT result FROM call_records WHERE tenant_id = $1 AND tel = '0311110002'")
                    .bind(t)
                    .fetch_all(&db.pool)
                    .await
                    .expect("call records")
                    .iter()
                    .map(|r| r.try_get("result").expect("result"))
                    .collect();
            if !results.is_empty() && results.iter().all(|r| r != "pending") {
                println!("the call through the cut: {results:?}");
                break;
            }
            assert!(std::time::Instant::now() < end, "the call through the cut has a result: {results:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    floor.stop().await;
    let _ = sim_stop.send(true);
}
