//! A manager opens the reports in the morning (`/ui/reports`, in a real headless Chromium driven by
//! `api/tests/browser/reports.test.js`) and reads yesterday per campaign, agent and hour, with the
//! charts and the CSV; then the call history with a recording played in the page. The node runs as
//! the embedded default (the API, the control services and, beside them, the rollup job), so the
//! figures the page shows are the ones the job counted from yesterday's facts.

use std::time::Duration;

use kakeru::node::{Node, NodeConfig};
use serde_json::json;
use store::accounts::{NewUser, Role};
use store::sqlx::{self, Row};

// The browser driver is shared with the console's test; this one needs no steps.
#[allow(dead_code)]
use crate::console::browser_proc;

use browser_proc::Browser;

const TENANT: &str = "yoake";
const MGR: (&str, &str) = ("manager", "Manager-pass-1");
const BIZ: (&str, &str) = ("client", "Client-pass-1");
const AGENTS: [&str; 3] = ["田中 太郎", "佐藤 花子", "鈴木 一郎"];

async fn id(db: &store::Db, sql: &str, binds: &[&str]) -> i64 {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.fetch_one(&db.pool).await.expect(sql).try_get("id").expect("id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_reads_yesterday_in_the_reports() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}/kakeru.db", dir.path().display());
    let mut node = Node::open(NodeConfig::new(&url)).await.expect("the node");
    let db = node.db().clone();
    let now = store::now_ms();
    let tz = chrono_tz::Asia::Tokyo;
    let tenant =
        store::tenancy::create_tenant(&db, TENANT, "夜明けコールセンター", "Asia/Tokyo", now).await.expect("tenant");
    store::accounts::create_user(
        &db,
        &NewUser { tenant_id: tenant, login: MGR.0, display_name: "山田 部長", role: Role::Mgr, password: MGR.1 },
        now,
    )
    .await
    .expect("MGR");
    store::accounts::create_user(
        &db,
        &NewUser {
            tenant_id: tenant, login: BIZ.0, display_name: "取引先 担当", role: Role::Biz, password: BIZ.1
        },
        now,
    )
    .await
    .expect("BIZ");
    let mut agents = Vec::new();
    for (i, name) in AGENTS.iter().enumerate() {
        let login = format!("op{i}");
        let nu =
            NewUser { tenant_id: tenant, login: &login, display_name: name, role: Role::Op, password: "Agent-pass-1" };
        agents.push(store::accounts::create_user(&db, &nu, now).await.expect("agent"));
    }
    // Yesterday's floor: a campaign with its results, a group, a job over one list of 60 leads.
    let t = tenant.to_string();
    let ts = now.to_string();
    let campaign = id(
        &db,
        "INSERT INTO campaigns (tenant_id, name, caller_id, agent_wait_timeout_s, created_at, updated_at)
         VALUES ($1, '年末キャンペーン', '0312345678', 2, $2, $2) RETURNING id",
        &[&t, &ts],
    )
    .await;
    let c = campaign.to_string();
    for (n, label, connected) in [("1", "受注", "1"), ("2", "見込", "1"), ("3", "不通", "0")] {
        sqlx::query(
            "INSERT INTO result_codes (tenant_id, campaign_id, number, label, connected, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(campaign)
        .bind(n.parse::<i64>().unwrap())
        .bind(label)
        .bind(connected.parse::<i64>().unwrap())
        .bind(now)
        .execute(&db.pool)
        .await
        .expect("result code");
    }
    sqlx::query("INSERT INTO caller_ids (tenant_id, number, label, created_at) VALUES ($1, '0312345678', '本社', $2)")
        .bind(tenant)
        .bind(now)
        .execute(&db.pool)
        .await
        .expect("caller id");
    let group = id(
        &db,
        "INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, '第一営業部', $2) RETURNING id",
        &[&t, &ts],
    )
    .await;
    let batch = id(
        &db,
        "INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at)
         VALUES ($1, $2, '12月', '2026-12-01', '2027-03-31', $3) RETURNING id",
        &[&t, &c, &ts],
    )
    .await;
    let list = id(
        &db,
        "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, '東京リスト', $3) RETURNING id",
        &[&t, &batch.to_string(), &ts],
    )
    .await;
    let job = id(
        &db,
        "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, created_at) VALUES ($1, $2, $3, '朝の発信', $4) RETURNING id",
        &[&t, &c, &group.to_string(), &ts],
    )
    .await;
    for a in &agents {
        for sql in [
            "INSERT INTO campaign_agents (tenant_id, campaign_id, user_id) VALUES ($1, $2, $3)",
            "INSERT INTO dialing_group_agents (tenant_id, group_id, user_id) VALUES ($1, $2, $3)",
        ] {
            let target = if sql.contains("campaign_agents") { campaign } else { group };
            sqlx::query(sql).bind(tenant).bind(target).bind(*a).execute(&db.pool).await.expect("member");
        }
    }
    let yesterday = store::tenancy::local_date(tz, now).pred_opt().expect("yesterday");
    let day_start = store::tenancy::local_midnight_ms(tz, yesterday);
    let (mut live, mut connected, mut dials) = (0, 0, 0);
    let recordings = tempfile::tempdir().expect("recordings");
    let mut recorded = 0;
    let mut reported = 0;
    for i in 0..60_i64 {
        let lead = id(
            &db,
            "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, created_at)
             VALUES ($1, $2, $3, $4, 'コキャク', $5, 'mobile', $6) RETURNING id",
            &[&t, &list.to_string(), &batch.to_string(), &format!("顧客{i:02}"), &format!("0900000{i:04}"), &ts],
        )
        .await;
        // From 09:00, one call every 8 minutes; every 3rd busy, every 7th abandoned, the rest talk.
        let started = day_start + 9 * 3_600_000 + i * 8 * 60_000;
        let agent = agents[((i / 3) % 3) as usize];
        let (answered, bridged, ended, result) = if i % 3 == 0 {
            (None, None, started + 6_000, "busy")
        } else if i % 7 == 0 {
            (Some(started + 9_000), None, started + 12_000, "abandoned")
        } else {
            (Some(started + 8_000), Some(started + 9_000), started + 9_000 + (30 + i * 7) * 1000, "no_entry")
        };
        dials += 1;
        live += i64::from(answered.is_some());
        connected += i64::from(bridged.is_some());
        let call = sqlx::query(
            "INSERT INTO call_records (tenant_id, campaign_id, call_job_id, lead_id, tel, caller_id, direction, started_at,
                answered_at, bridged_at, agent_user_id, ended_at, result, list_id, dialer_call_id)
             VALUES ($1, $2, $3, $4, $5, '0312345678', 'outbound', $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(tenant)
        .bind(campaign)
        .bind(job)
        .bind(lead)
        .bind(format!("0900000{i:04}"))
        .bind(started)
        .bind(answered)
        .bind(bridged)
        .bind(bridged.map(|_| agent))
        .bind(ended)
        .bind(result)
        .bind(list)
        .bind(1000 + i)
        .fetch_one(&db.pool)
        .await
        .expect("call")
        .try_get::<i64, _>("id")
        .expect("id");
        if bridged.is_some() {
            let saved = (i % 4 != 1).then(|| ((i % 3) + 1).to_string());
            // Every saved 見込 (result 2) is reported to the client (報告).
            let report = saved.as_deref() == Some("2");
            reported += i64::from(report);
            sqlx::query(
                "INSERT INTO wrapup_records (tenant_id, call_record_id, lead_id, agent_user_id, result, saved, saved_at, created_at,
                    dialer_call_id, reported, reported_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $7)",
            )
            .bind(tenant)
            .bind(call)
            .bind(lead)
            .bind(agent)
            .bind(saved.clone().unwrap_or_else(|| "no_entry".into()))
            .bind(i64::from(saved.is_some()))
            .bind(saved.as_ref().map(|_| ended + 20_000))
            .bind(ended)
            .bind(1000 + i)
            .bind(i64::from(report))
            .execute(&db.pool)
            .await
            .expect("wrap-up");
            if i >= 50 && recorded < 3 {
                recorded += 1;
                let path = store::recordings::recording_path(recordings.path(), tenant, tz, started, 1000 + i);
                std::fs::create_dir_all(path.parent().expect("dir")).expect("dirs");
                let bytes = media::wav::write_pcm16_mono_8k(&[0; 8000]);
                std::fs::write(&path, &bytes).expect("recording");
                let rec = store::recordings::NewRecording {
                    tenant_id: tenant,
                    dialer_call_id: 1000 + i,
                    path: path.to_string_lossy().into_owned(),
                    bytes: bytes.len() as i64,
                    duration_ms: 1000,
                    started_at_ms: started,
                    closed_at_ms: ended,
                };
                store::recordings::closed(&db, &rec).await.expect("recording row");
            }
        }
    }
    // The agents' day: ready from 09:00, talking and wrap-up with their calls, lunch 12:00-13:00,
    // off at 17:00.
    let reason = id(&db, "INSERT INTO pause_reasons (tenant_id, name, color, created_at) VALUES ($1, '昼休憩', '#e6a23c', $2) RETURNING id", &[&t, &ts]).await;
    for (k, a) in agents.iter().enumerate() {
        let h = |hh: i64, mm: i64| day_start + hh * 3_600_000 + mm * 60_000 + k as i64 * 60_000;
        let mut steps = vec![("offline", "ready", None, h(9, 0))];
        for hh in [9, 10, 11, 13, 14, 15, 16] {
            steps.push(("ready", "talking", None, h(hh, 10)));
            steps.push(("talking", "wrap_up", None, h(hh, 25 + k as i64 * 5)));
            steps.push(("wrap_up", "ready", None, h(hh, 30 + k as i64 * 5)));
        }
        steps.insert(10, ("ready", "paused", Some(reason), h(12, 0)));
        steps.insert(11, ("paused", "ready", None, h(13, 0)));
        steps.push(("ready", "offline", None, h(17, 0)));
        steps.sort_by_key(|s| s.3);
        for (from, to, r, at) in steps {
            sqlx::query(
                "INSERT INTO agent_transitions (tenant_id, agent_user_id, from_state, to_state, to_reason_id, cause, at, message_id)
                 VALUES ($1, $2, $3, $4, $5, 'seed', $6, 'seed')",
            )
            .bind(tenant)
            .bind(*a)
            .bind(from)
            .bind(to)
            .bind(r)
            .bind(at)
            .execute(&db.pool)
            .await
            .expect("transition");
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    node.spawn_api(listener);
    node.spawn_control();
    let (node_stop, node_rx) = tokio::sync::oneshot::channel::<()>();
    let node_task = tokio::spawn(node.run(async move {
        let _ = node_rx.await;
    }));
    // The rollup job (beside control) counts the facts it finds at its first run.
    let counted = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM rollup_state WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&db.pool)
                .await
                .expect("rollups")
                .try_get("n")
                .expect("n");
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    counted.await.expect("the rollup job counted yesterday within 30 s");
    assert!(store::rollups::verify(&db, tenant, store::now_ms()).await.expect("verify").is_empty());

    assert!(reported > 0, "the client has reported records to read");
    let fixture = json!({
        "tenant": TENANT,
        "mgr": {"login": MGR.0, "password": MGR.1},
        "yesterday": yesterday.to_string(),
        "dials": dials,
        "live": live,
        "connected": connected,
        "agents": AGENTS,
        "recorded": recorded,
        "biz": {"login": BIZ.0, "password": BIZ.1},
        "reported": reported,
    });
    let b = Browser::script("reports.test.js", "reports", &base, &fixture);
    let out = b.finish().await;
    assert!(out.iter().any(|l| l.starts_with("CSV ")), "the CSV was read back");
    let _ = node_stop.send(());
    node_task.await.expect("node task").expect("the node ran");
}
