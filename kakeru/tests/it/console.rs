//! A floor manager builds a floor from nothing in the admin console (`/ui/admin`, in a real headless
//! Chromium driven by `api/tests/browser/console.test.js`, mode `floor`) and runs it: the whole
//! system in this process as `kakeru demo` wires it (the API and the control service over the
//! in-process bus on a fresh SQLite file, the dialer engine on a media shard, a simulated carrier),
//! and, once the console has made the agents and their phones, simulated phones registering with the
//! SIP passwords the console showed once and simulated agents working the job through the API. One
//! floor serves the whole walk.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use kakeru::demo::{start_agents, start_phones, AgentWork, DemoAgent};
use kakeru::node::{Node, NodeConfig};
use serde_json::{json, Value};
use store::accounts::{NewUser, Role};
use store::sqlx::{self, Row};
use tokio::sync::watch;

#[path = "../../../api/tests/it/browser_proc.rs"]
pub(crate) mod browser_proc;

use browser_proc::{out_dir, Browser};

const TENANT: &str = "akiba";
const MGR: (&str, &str) = ("manager", "Manager-pass-1");
const SV: (&str, &str) = ("supervisor", "Supervisor-pass-1");
const AGENT_PASSWORD: &str = "Agent-pass-1";
const AGENTS: [&str; 3] = ["田中 太郎", "佐藤 花子", "鈴木 一郎"];
const GOOD_ROWS: usize = 24;

/// The customer list as Excel saves it: CP932, CRLF, with bad rows (each with its error text).
fn leads_csv() -> (Vec<u8>, usize) {
    let mut csv = String::from("name,kana,tel,remarks\r\n");
    for i in 1..=GOOD_ROWS {
        csv.push_str(&format!("顧客{i:02},コキャク{i:02},0900000{:04},\"12月DM送付済み\\n{}\"\r\n", 1000 + i, i % 3));
    }
    let bad = [
        ",ヤマダ,09011110000,",         // name:値がありません
        "佐藤,サトウ,311114444,",       // tel:電話番号の先頭に0を入れてください
        "高橋,タカハシ,09000001001,",   // 指定したバッチ内に同一の電話番号が既に登録されています
        "渡辺,ワタナベ,090-1111-2222,", // tel:書式が正しくありません (nothing is changed silently)
        "伊藤,イトウ",                  // カラムの数がヘッダーの数より少ないです
    ];
    for b in bad {
        csv.push_str(b);
        csv.push_str("\r\n");
    }
    (encoding_rs::SHIFT_JIS.encode(&csv).0.into_owned(), bad.len())
}

async fn count(db: &store::Db, sql: &str, id: i64) -> i64 {
    sqlx::query(sql).bind(id).fetch_one(&db.pool).await.expect(sql).try_get(0).expect("count")
}

/// Waits (at most `limit`) for `f` to hold, checking every 200 ms.
pub(crate) async fn until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let polled = tokio::time::timeout(limit, async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    polled.await.unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_builds_a_floor_in_the_console_and_the_agents_work_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}/kakeru.db", dir.path().display());
    let mut node = Node::open(NodeConfig::new(&url)).await.expect("the node");
    let db = node.db().clone();
    let now = store::now_ms();
    // From nothing: the tenant and its first users (as `kakeru tenant` makes them).
    let tenant =
        store::tenancy::create_tenant(&db, TENANT, "秋葉コールセンター", "Asia/Tokyo", now).await.expect("tenant");
    // The test runs on any day: a national holiday must not close its floor.
    store::tenancy::set_national_holidays(&db, tenant, false).await.expect("holidays");
    let mut sv_id = 0;
    for (role, (login, password)) in [(Role::Mgr, MGR), (Role::Sv, SV)] {
        let id = store::accounts::create_user(
            &db,
            &NewUser { tenant_id: tenant, login, display_name: login, role, password },
            now,
        )
        .await
        .expect("user");
        if role == Role::Sv {
            sv_id = id;
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    node.spawn_api(listener);
    node.spawn_control();

    // The simulated carrier and the dialer engine (as `kakeru demo` runs them).
    let (sim_stop, sim_rx) = watch::channel(false);
    let (engine_stop, engine_rx) = watch::channel(false);
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let carrier = sim::carrier::start(
        loopback,
        sim::carrier::CarrierConfig {
            answer_prob: 0.8,
            answer_delay_mean_ms: 1_500.0,
            fail_share: 0.5,
            fail_after_ms: 1_000,
            hang_up: false,
            seed: 23,
            ..sim::carrier::CarrierConfig::default()
        },
        sim_rx.clone(),
    )
    .await
    .expect("the carrier");
    let recordings = tempfile::tempdir().expect("recordings directory");
    let mut ecfg = dialer::engine::EngineConfig::new(carrier.sip_addr);
    ecfg.tenants = Some(vec![tenant as u64]);
    ecfg.recordings_dir = Some(recordings.path().to_path_buf());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let engine = tokio::spawn(dialer::engine::run(db.clone(), node.bus().clone(), ecfg, engine_rx, Some(ready_tx)));
    let info = ready_rx.await.expect("the engine starts its shard");
    let (node_stop, node_rx) = tokio::sync::oneshot::channel::<()>();
    let node_task = tokio::spawn(node.run(async move {
        let _ = node_rx.await;
    }));

    let (csv, bad_rows) = leads_csv();
    let csv_path = out_dir().join("floor-leads-cp932.csv");
    std::fs::write(&csv_path, &csv).expect("the CSV");
    let today = store::tenancy::local_date(chrono_tz::Asia::Tokyo, store::now_ms()).to_string();
    let fixture = json!({
        "tenant": TENANT,
        "mgr": {"login": MGR.0, "password": MGR.1},
        "sv": {"login": SV.0, "password": SV.1},
        "csv": csv_path,
        "good_rows": GOOD_ROWS,
        "bad_rows": bad_rows,
        "agents": AGENTS,
        "agent_password": AGENT_PASSWORD,
        "today": today,
    });
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http");
    let mut b = Browser::script("console.test.js", "floor", &base, &fixture);
    let mut floor: Option<(kakeru::demo::SimAgents, Vec<sim::phone::Phone>)> = None;
    let mut job = 0i64;
    let mut forgetful = 0i64;
    while let Some(step) = b.next_step().await {
        match step.as_str() {
            "agents" => {
                // What the console made: the job, the agents and their phones' passwords.
                let line = b.output.iter().rev().find(|l| l.starts_with("AGENTS ")).expect("the agents").clone();
                let made: Value = serde_json::from_str(&line["AGENTS ".len()..]).expect("json");
                job = made["job"].as_i64().expect("job");
                let agents: Vec<DemoAgent> = made["agents"]
                    .as_array()
                    .expect("agents")
                    .iter()
                    .map(|a| DemoAgent {
                        user_id: a["user_id"].as_i64().expect("id"),
                        login: a["login"].as_str().expect("login").to_owned(),
                        password: a["password"].as_str().expect("password").to_owned(),
                        sip_password: a["sip_password"].as_str().expect("sip").to_owned(),
                    })
                    .collect();
                assert!(made["agents"].as_array().is_some_and(|a| a.iter().all(|a| a["realm"] == TENANT)));
                forgetful = agents.last().expect("agents").user_id;
                // The phones register with the SIP passwords the console showed once.
                let phones = start_phones(&agents, TENANT, info.sip_addrs[0], sim_rx.clone(), |_, _| {})
                    .await
                    .expect("the phones registered");
                let work = AgentWork {
                    result_codes: vec![1, 2],
                    talk_mean_ms: 4_000.0,
                    wrapup_mean_ms: 1_500.0,
                    // The last agent never saves a record (a closed browser).
                    forgetful: 1,
                    seed: 23,
                };
                let sims = start_agents(&http, &base, TENANT, &agents, job, &work, None);
                let counts = sims.counts.clone();
                until("the agents logged in", Duration::from_secs(60), || {
                    let n = counts.logged_in.load(std::sync::atomic::Ordering::Relaxed);
                    async move { n as usize == AGENTS.len() }
                })
                .await;
                floor = Some((sims, phones));
                b.go("agents", None).await;
            }
            "unsaved" => {
                let sql = "SELECT COUNT(*) FROM wrapup_records WHERE agent_user_id = $1 AND saved_at IS NULL";
                let db2 = db.clone();
                until("an unsaved record of the forgetful agent", Duration::from_secs(120), || {
                    let db = db2.clone();
                    async move { count(&db, sql, forgetful).await > 0 }
                })
                .await;
                b.go("unsaved", None).await;
            }
            other => panic!("unknown step {other}"),
        }
    }
    let out = b.finish().await;
    for key in ["ERRORS_CSV", "MONITOR", "SAVED_BY_SV"] {
        let line = out.iter().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key}"));
        println!("{line}");
    }

    // What the floor did, in the database.
    let (sims, _phones) = floor.expect("the floor ran");
    sims.stop().await;
    let status: String = sqlx::query("SELECT status FROM call_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .expect("job")
        .try_get("status")
        .expect("status");
    assert_eq!(status, "stopped", "the SV stopped the job from the console");
    let leads = count(&db, "SELECT COUNT(*) FROM leads WHERE tenant_id = $1", tenant).await;
    assert_eq!(leads, GOOD_ROWS as i64);
    let bridged =
        count(&db, "SELECT COUNT(*) FROM call_records WHERE call_job_id = $1 AND bridged_at IS NOT NULL", job).await;
    assert!(bridged >= 2, "{bridged} connected calls");
    let by_sv = count(&db, "SELECT COUNT(*) FROM wrapup_records WHERE saved_by = $1", sv_id).await;
    assert_eq!(by_sv, 1, "the SV saved the forgetful agent's record");
    println!("the console's floor: {leads} leads, {bridged} connected calls");

    let _ = engine_stop.send(true);
    let stats = engine.await.expect("engine task").expect("the engine ran");
    println!("engine: {stats:?}");
    let _ = sim_stop.send(true);
    let _ = node_stop.send(());
    node_task.await.expect("node task").expect("the node ran");
}
