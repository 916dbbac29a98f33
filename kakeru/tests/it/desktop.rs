//! The agent desktop in a real headless Chromium (`api/tests/browser/desktop.test.js`, driven by
//! playwright-core), against the whole floor in one process: the API, the control service and the
//! dialer engine of a [`Node`] on a fresh SQLite file and the in-process bus, the built-in carrier
//! (by the number's last digit) and a simulated phone for the agent's nailed-up leg.
//!
//! One agent logs in at `/` and works five call jobs from the page alone: progressive (screen pop
//! with an earlier contact by another agent, hang-up, a record with a recall to itself, the next
//! customer offered; the push channel cut for 10 s mid-call), dial (an unknown number becomes a
//! lead; a do-not-call number gets 発信規制 and never reaches the carrier), standard (search and
//! pick), preview (skip, dial) and distribute (自動割当); a callback a manager registered, taken
//! and dialled back from 折り返し呼一覧; then, in ja and en, a manager stops a job
//! (the seed's dialog) and the agent's phone hangs up its leg (logged off). Afterwards the records, the recall, the
//! transitions and the carrier's log are checked in SQL. Screenshots under `target/tmp/browser/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Bus, Envelope};
use kakeru::node::{Node, NodeConfig};
use serde_json::{json, Value};
use sim::carrier::{Behaviour, CarrierConfig};
use store::sqlx::{self, Row};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use wire::agent::{AgentId, CallId};
use wire::{streams, ApiCommand};

/// Forwards the browser's connections to the API; [`Proxy::cut`] closes every open one and refuses
/// new ones until [`Proxy::restore`] (the network gone for a while).
struct Proxy {
    base: String,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    down: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let links: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (l2, d2) = (links.clone(), down.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d2.load(Ordering::Relaxed) {
                    continue; // dropped: the connection is refused
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    }
                });
                let mut g = l2.lock().expect("links");
                g.retain(|h| !h.is_finished());
                g.push(task.abort_handle());
            }
        });
        Proxy { base, links, down }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::Relaxed);
        for h in self.links.lock().expect("links").drain(..) {
            h.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::Relaxed);
    }
}

/// A SIP phone account of `user` (digest HA1s of `password` in `realm`).
pub(crate) async fn phone_account(db: &store::Db, t: i64, user: i64, username: &str, realm: &str, password: &str) {
    let (md5, sha) = store::accounts::digest_ha1(username, realm, password);
    sqlx::query(
        "INSERT INTO phones (tenant_id, user_id, sip_username, realm, ha1_md5, ha1_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(t)
    .bind(user)
    .bind(username)
    .bind(realm)
    .bind(md5)
    .bind(sha)
    .execute(&db.pool)
    .await
    .expect("phone");
}

pub(crate) fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api/tests/browser")
}

/// `node SCRIPT` of api/tests/browser in `mode` against `base` with `fixture`: its stdout piped
/// (the script's lines), stderr inherited, killed when dropped, screenshots to the target's
/// `browser` directory.
pub(crate) fn browser_test(script: &str, mode: &str, base: &str, fixture: &Value) -> tokio::process::Command {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out_dir).expect("screenshot directory");
    let mut c = tokio::process::Command::new("node");
    c.arg(script)
        .current_dir(browser_dir())
        .env("KAKERU_MODE", mode)
        .env("KAKERU_BASE", base)
        .env("KAKERU_OUT", &out_dir)
        .env("KAKERU_FIXTURE", fixture.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    c
}

/// Fails the test unless Chromium and playwright-core are there.
pub(crate) fn require_browser() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && browser_dir().join("node_modules/playwright-core").exists(),
        "Chromium and playwright-core are missing: run `bash scripts/services.sh`"
    );
}

/// Runs a browser test that needs no step from the Rust side: its lines printed and kept, and it
/// must end with `BROWSER OK` (each line within `silence`).
pub(crate) async fn run_browser(mut c: tokio::process::Command, silence: Duration) -> Vec<String> {
    let mut child = c.spawn().expect("node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut output = Vec::new();
    while let Some(line) = tokio::time::timeout(silence, lines.next_line())
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
    output
}

/// A node on a fresh SQLite file (in the returned directory) with tenant `code` (Tokyo, no national
/// holidays: the test runs on any day).
pub(crate) async fn fresh_node(code: &str, name: &str) -> (tempfile::TempDir, Node, i64) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}/kakeru.db", dir.path().display());
    let node = Node::open(NodeConfig::new(&url)).await.expect("node");
    let t = store::tenancy::create_tenant(node.db(), code, name, "Asia/Tokyo", store::now_ms()).await.expect("tenant");
    store::tenancy::set_national_holidays(node.db(), t, false).await.expect("holidays");
    (dir, node, t)
}

pub(crate) async fn insert(db: &store::Db, sql: &str, binds: &[Value]) -> i64 {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b {
            Value::Number(n) => q.bind(n.as_i64().expect("integer")),
            Value::String(s) => q.bind(s.clone()),
            Value::Null => q.bind(None::<i64>),
            other => q.bind(other.to_string()),
        };
    }
    q.fetch_one(&db.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")).try_get("id").expect("id")
}

async fn scalar(db: &store::Db, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(&db.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")).try_get(0).expect("column")
}

pub(crate) struct Job {
    pub id: i64,
    pub name: &'static str,
}

/// A campaign of `mode` with a batch, a list of `leads` (name, tel) and a running call job.
pub(crate) async fn campaign(
    db: &store::Db,
    t: i64,
    group: i64,
    name: &'static str,
    mode: &str,
    leads: &[(&str, &str)],
) -> (Job, i64, Vec<i64>) {
    let c = insert(
        db,
        "INSERT INTO campaigns (tenant_id, name, mode, max_channels, ring_timeout_s, agent_wait_timeout_s, acw_enabled, acw_seconds,
            business_start, business_end, created_at, updated_at)
         VALUES ($1, $2, $3, 10, 10, 20, 1, 120, '00:00', '23:59', 0, 0) RETURNING id",
        &[json!(t), json!(name), json!(mode)],
    )
    .await;
    for (n, label) in [(1, "アポ獲得"), (2, "検討中"), (3, "不要")] {
        insert(
            db,
            "INSERT INTO result_codes (tenant_id, campaign_id, number, label, created_at) VALUES ($1, $2, $3, $4, 0) RETURNING id",
            &[json!(t), json!(c), json!(n), json!(label)],
        )
        .await;
    }
    let b = insert(
        db,
        "INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at) VALUES ($1, $2, 'b', '2026-01-01', '2027-12-31', 0) RETURNING id",
        &[json!(t), json!(c)],
    )
    .await;
    let l = insert(
        db,
        "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, $3, 0) RETURNING id",
        &[json!(t), json!(b), json!(format!("{name}リスト"))],
    )
    .await;
    let mut ids = Vec::new();
    for (i, (n, tel)) in leads.iter().enumerate() {
        let custom = if i == 0 { r#"{"plan":"ゴールド"}"# } else { "{}" };
        let tags = if i == 0 { r#"["VIP"]"# } else { "[]" };
        ids.push(
            insert(
                db,
                "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, remarks, custom, tags, created_at)
                 VALUES ($1, $2, $3, $4, 'カナ', $5, 'fixed', '午前中希望', $6, $7, 0) RETURNING id",
                &[json!(t), json!(l), json!(b), json!(n), json!(tel), json!(custom), json!(tags)],
            )
            .await,
        );
    }
    let j = insert(
        db,
        "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, status, started_at, created_at, notes)
         VALUES ($1, $2, $3, $4, 'running', $5, 0, $6) RETURNING id",
        &[
            json!(t),
            json!(c),
            json!(group),
            json!(format!("{name}ジョブ")),
            json!(store::now_ms()),
            json!("12月DM送付済みのお客様です。"),
        ],
    )
    .await;
    sqlx::query("INSERT INTO call_job_lists (tenant_id, job_id, list_id) VALUES ($1, $2, $3)")
        .bind(t)
        .bind(j)
        .bind(l)
        .execute(&db.pool)
        .await
        .expect("job list");
    (Job { id: j, name }, c, ids)
}

/// Makes `user` an agent of dialing group `group`.
pub(crate) async fn join_group(db: &store::Db, t: i64, group: i64, user: i64) {
    sqlx::query("INSERT INTO dialing_group_agents (tenant_id, group_id, user_id) VALUES ($1, $2, $3)")
        .bind(t)
        .bind(group)
        .bind(user)
        .execute(&db.pool)
        .await
        .expect("member");
}

/// A node's API and control service on a fresh listener, and the dialer engine of tenant `t`
/// against `carrier` (recording into `recordings`, if given).
pub(crate) struct Floor {
    pub base: String,
    pub bus: bus::AnyBus,
    pub info: dialer::engine::EngineInfo,
    engine_stop: watch::Sender<bool>,
    engine: tokio::task::JoinHandle<Result<dialer::engine::EngineStats, dialer::engine::EngineError>>,
    node_stop: tokio::sync::oneshot::Sender<()>,
    node_task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Floor {
    pub(crate) async fn start(
        mut node: Node,
        t: i64,
        carrier: std::net::SocketAddr,
        name: &str,
        recordings: Option<PathBuf>,
    ) -> Floor {
        let db = node.db().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        node.spawn_api(listener);
        node.spawn_control();
        let mut ecfg = dialer::engine::EngineConfig::new(carrier);
        ecfg.tenants = Some(vec![t as u64]);
        ecfg.instance = format!("{name}-test-{}", store::now_ms());
        ecfg.instance_prefix = format!("{name}-test-");
        ecfg.recordings_dir = recordings;
        let (engine_stop, engine_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let bus = node.bus().clone();
        let engine = tokio::spawn(dialer::engine::run(db, bus.clone(), ecfg, engine_rx, Some(ready_tx)));
        let info = ready_rx.await.expect("the engine starts");
        let (node_stop, node_rx) = tokio::sync::oneshot::channel::<()>();
        let node_task = tokio::spawn(node.run(async {
            let _ = node_rx.await;
        }));
        Floor { base, bus, info, engine_stop, engine, node_stop, node_task }
    }

    pub(crate) async fn stop(self) {
        let _ = self.engine_stop.send(true);
        let _ = self.engine.await;
        let _ = self.node_stop.send(());
        let _ = self.node_task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_every_list_mode_from_the_desktop() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && browser_dir().join("node_modules/playwright-core").exists(),
        "Chromium and playwright-core are missing: run `bash scripts/services.sh`"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}/kakeru.db", dir.path().display());
    let node = Node::open(NodeConfig::new(&url)).await.expect("node");
    let db = node.db().clone();
    let now = store::now_ms();
    let t = store::tenancy::create_tenant(&db, "desk", "デスク株式会社", "Asia/Tokyo", now).await.expect("tenant");
    // The test runs on any day: a national holiday must not close its floor.
    store::tenancy::set_national_holidays(&db, t, false).await.expect("holidays");
    let user = |login: &'static str, name: &'static str, role| store::accounts::NewUser {
        tenant_id: t,
        login,
        display_name: name,
        role,
        password: "desk-password-1",
    };
    use store::accounts::Role;
    let tanaka = store::accounts::create_user(&db, &user("tanaka", "田中 太郎", Role::Op), now).await.expect("op");
    let sato = store::accounts::create_user(&db, &user("sato", "佐藤 花子", Role::Op), now).await.expect("op 2");
    store::accounts::create_user(&db, &user("boss", "管理 者", Role::Mgr), now).await.expect("mgr");
    phone_account(&db, t, tanaka, "tanaka", "desk", "sip-tanaka").await;
    let group = insert(
        &db,
        "INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, '第一班', 0) RETURNING id",
        &[json!(t)],
    )
    .await;
    for u in [tanaka, sato] {
        join_group(&db, t, group, u).await;
    }
    for (name, color) in [("休憩", "#f2c94c"), ("離席", "#9b51e0")] {
        insert(
            &db,
            "INSERT INTO pause_reasons (tenant_id, name, color, created_at) VALUES ($1, $2, $3, 0) RETURNING id",
            &[json!(t), json!(name), json!(color)],
        )
        .await;
    }
    insert(&db, "INSERT INTO custom_fields (tenant_id, key, label, kind, created_at) VALUES ($1, 'plan', '契約プラン', 'text', 0) RETURNING id", &[json!(t)]).await;
    // The carrier by last digit: 1-3 answer and talk until hung up, 4 busy, 7 rings; 5 is never
    // to be dialled (the do-not-call list).
    let dnc = "0399990005";
    sqlx::query("INSERT INTO dnc_numbers (tenant_id, number, created_at) VALUES ($1, $2, 0)")
        .bind(t)
        .bind(dnc)
        .execute(&db.pool)
        .await
        .expect("dnc");
    let (progressive, c1, l1) = campaign(
        &db,
        t,
        group,
        "秋の新規獲得",
        "progressive",
        &[("山田 花子", "0311110001"), ("鈴木 一郎", "0311110002")],
    )
    .await;
    let (dial, dial_campaign, _) =
        campaign(&db, t, group, "ダイヤル発信", "dial", &[("既存 顧客", "0322220003")]).await;
    // 発番号: the dial job goes out with its campaign's number unless the agent picks the other one.
    let (job_cid, picked_cid) = ("0312340000", "0501230000");
    sqlx::query("UPDATE campaigns SET caller_id = $1 WHERE id = $2")
        .bind(job_cid)
        .bind(dial_campaign)
        .execute(&db.pool)
        .await
        .expect("the campaign's caller ID");
    insert(
        &db,
        "INSERT INTO caller_ids (tenant_id, number, label, max_channels, created_at) VALUES ($1, $2, 'テスト番号', 2, 0) RETURNING id",
        &[json!(t), json!(picked_cid)],
    )
    .await;
    let (standard, _, _) =
        campaign(&db, t, group, "標準発信", "standard", &[("佐藤 次郎", "0333330002"), ("高橋 三郎", "0333330003")])
            .await;
    let (preview, _, _) = campaign(
        &db,
        t,
        group,
        "プレビュー発信",
        "preview",
        &[("伊藤 四郎", "0344440002"), ("渡辺 五郎", "0344440003")],
    )
    .await;
    let (distribute, _, _) = campaign(&db, t, group, "配布発信", "distribute", &[("中村 六子", "0366660001")]).await;
    // Business end (業務終了時間) while two agents of another group wait, one page in Japanese and
    // one in English: a job whose hours end at the first whole minute at least 45 s away (the two
    // agents' logins come first) in the tenant's zone (Tokyo, +09:00), 45-105 s from now, beside a
    // main walk of about 70 s; the hours are whole minutes, so the test cannot end them sooner
    // without a clock of its own. Near midnight it waits for the new day (at most 3 minutes, a run
    // in 480).
    let tokyo_minute = |ms: i64| (ms / 60_000 + 540).rem_euclid(1440);
    while tokyo_minute(store::now_ms()) >= 1437 {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let evening_group = insert(
        &db,
        "INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, '夕方班', 0) RETURNING id",
        &[json!(t)],
    )
    .await;
    let kimura = store::accounts::create_user(&db, &user("kimura", "木村 次郎", Role::Op), now).await.expect("op 3");
    let suzuki = store::accounts::create_user(&db, &user("suzuki", "Suzuki Ken", Role::Op), now).await.expect("op 4");
    for (u, login) in [(kimura, "kimura"), (suzuki, "suzuki")] {
        phone_account(&db, t, u, login, "desk", &format!("sip-{login}")).await;
        join_group(&db, t, evening_group, u).await;
    }
    let (evening, evening_campaign, _) =
        campaign(&db, t, evening_group, "夕方発信", "dial", &[("夕方 顧客", "0377770001")]).await;
    let at = store::now_ms();
    let ahead = if 60_000 - at % 60_000 >= 45_000 { 1 } else { 2 };
    let end_minute = tokyo_minute(at) + ahead;
    let business_end_at = (at / 60_000 + ahead) * 60_000;
    sqlx::query("UPDATE campaigns SET business_end = $1 WHERE id = $2")
        .bind(format!("{:02}:{:02}", end_minute / 60, end_minute % 60))
        .bind(evening_campaign)
        .execute(&db.pool)
        .await
        .expect("business end");
    // An earlier contact with 山田 花子 by the other agent (佐藤 花子), two days ago.
    let two_days = now - 2 * 86_400_000;
    let call = insert(
        &db,
        "INSERT INTO call_records (tenant_id, campaign_id, call_job_id, lead_id, agent_user_id, tel, started_at, answered_at, bridged_at, ended_at, result)
         VALUES ($1, $2, $3, $4, $5, '0311110001', $6, $7, $7, $8, '2') RETURNING id",
        &[json!(t), json!(c1), json!(progressive.id), json!(l1[0]), json!(sato), json!(two_days), json!(two_days + 5_000), json!(two_days + 185_000)],
    )
    .await;
    insert(
        &db,
        "INSERT INTO wrapup_records (tenant_id, call_record_id, lead_id, agent_user_id, interlocutor, result, next_action, memo, state_after, saved, saved_at, saved_by, created_at)
         VALUES ($1, $2, $3, $4, 'other', '2', 'continue', '奥様が対応。来週また連絡', 'continue', 1, $5, $4, $5) RETURNING id",
        &[json!(t), json!(call), json!(l1[0]), json!(sato), json!(two_days + 200_000)],
    )
    .await;
    sqlx::query("UPDATE leads SET attempts = 1, last_result = '2', last_attempt_at = $1 WHERE id = $2")
        .bind(two_days)
        .bind(l1[0])
        .execute(&db.pool)
        .await
        .expect("lead");
    // 鈴木 一郎 was tried twice before (no answer): 山田 花子 comes first (fewest attempts first).
    sqlx::query("UPDATE leads SET attempts = 2, last_result = 'timeout' WHERE id = $1")
        .bind(l1[1])
        .execute(&db.pool)
        .await
        .expect("lead");

    // The floor: the node's API and control, the carrier, the dialer engine, the agent's phone.
    let (sim_stop, sim_rx) = watch::channel(false);
    let answer = Behaviour::Answer { after_ms: 400, talk_ms: None };
    let mut rules = [answer; 10];
    rules[4] = Behaviour::Fail { status: 486, after_ms: 300 };
    rules[7] = Behaviour::Ring;
    let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let carrier = sim::carrier::start(
        loopback,
        CarrierConfig { by_last_digit: Some(rules), ..CarrierConfig::default() },
        sim_rx.clone(),
    )
    .await
    .expect("carrier");
    let floor = Floor::start(node, t, carrier.sip_addr, "desk", None).await;
    let (base, bus, info) = (floor.base.clone(), floor.bus.clone(), floor.info.clone());
    let phones = sim::phone::start(
        ["tanaka", "kimura", "suzuki"]
            .into_iter()
            .map(|u| sim::phone::PhoneAccount {
                username: u.into(),
                password: format!("sip-{u}"),
                domain: "desk".into(),
            })
            .collect(),
        sim::phone::PhoneConfig {
            registrar: info.sip_addrs[0],
            bind_ip: loopback,
            expires_s: 300,
            answer_after: Duration::from_millis(300),
            tone_hz: None,
        },
        sim_rx.clone(),
    )
    .await
    .expect("phone");

    // The page.
    let fixture = json!({
        "tenant": "desk", "login": "tanaka", "password": "desk-password-1", "agent": tanaka,
        "jobs": {"progressive": progressive.name, "dial": dial.name, "standard": standard.name,
                 "preview": preview.name, "distribute": distribute.name},
        "dnc": dnc, "unknown": "0355550001", "colleague": "佐藤 花子",
        "jobCallerId": job_cid, "callerId": picked_cid,
        "callback": "0322220003", "callbackName": "既存 顧客",
        "businessEnd": {"job": evening.name, "at_ms": business_end_at, "base": base,
                        "agents": [{"login": "kimura", "lang": "ja"}, {"login": "suzuki", "lang": "en"}]},
    });
    let proxy = Proxy::start(&base).await;
    let mut child =
        browser_test("desktop.test.js", "desktop", &proxy.base, &fixture).stdin(Stdio::piped()).spawn().expect("node");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut output = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(240), lines.next_line())
            .await
            .expect("the browser went silent")
            .expect("browser output");
        let Some(line) = line else { break };
        println!("browser: {line}");
        if let Some(step) = line.strip_prefix("STEP ") {
            let (name, arg) = step.split_once(' ').unwrap_or((step, ""));
            match name {
                // The customer hangs up while the page's push channel is cut (as the dialer would
                // report: control ends the customer leg).
                "customer_hangs_up" => {
                    let call: u64 = arg.parse().expect("call id");
                    let c = ApiCommand::HangUpCustomer { agent_id: AgentId(tanaka as u64), call_id: CallId(call) };
                    let env = Envelope::new(t as u64, 0, &c).expect("encode");
                    bus.publish(&streams::control_commands(t as u64), &env).await.expect("publish");
                }
                // The agent's phone hangs up its nailed-up leg (the agent is logged off).
                "phone_hangs_up" => phones[0].command(sim::phone::PhoneCommand::HangUp).await,
                "cut" => proxy.cut(),
                "restore" => proxy.restore(),
                other => panic!("the browser asked for an unknown step {other}"),
            }
            stdin.write_all(format!("GO {name}\n").as_bytes()).await.expect("to the browser");
        } else {
            output.push(line);
        }
    }
    let status = child.wait().await.expect("browser exit");
    if !status.success() {
        let rows = sqlx::query(
            "SELECT from_state, to_state, cause, call_id, at FROM agent_transitions ORDER BY id DESC LIMIT 8",
        )
        .fetch_all(&db.pool)
        .await
        .expect("transitions");
        for r in rows {
            let (f, t, c): (String, String, String) = (r.get("from_state"), r.get("to_state"), r.get("cause"));
            println!("transition {f} -> {t} ({c}) call {:?}", r.get::<Option<i64>, _>("call_id"));
        }
        let calls = sqlx::query("SELECT tel, result FROM call_records ORDER BY id DESC LIMIT 4")
            .fetch_all(&db.pool)
            .await
            .expect("calls");
        for r in calls {
            println!("call {} {}", r.get::<String, _>("tel"), r.get::<String, _>("result"));
        }
    }
    assert!(
        status.success() && output.iter().any(|l| l == "BROWSER OK"),
        "the browser test failed:\n{}",
        output.join("\n")
    );

    // What the page did, in SQL.
    let n = |sql: String| {
        let db = db.clone();
        async move { scalar(&db, &sql).await }
    };
    let saved = n(format!("SELECT COUNT(*) FROM wrapup_records WHERE agent_user_id = {tanaka} AND saved = 1")).await;
    assert!(saved >= 6, "{saved} records saved from the page");
    let recall = n(format!(
        "SELECT COUNT(*) FROM recalls WHERE lead_id = {} AND agent_user_id = {tanaka} AND status = 'open' AND due_at IS NOT NULL",
        l1[0]
    ))
    .await;
    assert_eq!(recall, 1, "the recall assigned to the agent");
    let memo =
        n(format!("SELECT COUNT(*) FROM wrapup_records WHERE lead_id = {} AND memo LIKE '%資料送付%'", l1[0])).await;
    assert_eq!(memo, 1, "the record's memo");
    let history =
        n(format!("SELECT COUNT(*) FROM lead_history WHERE lead_id = {} AND user_id = {tanaka}", l1[0])).await;
    assert_eq!(history, 1, "the agent's correction is in the lead's history");
    let transitions = n(format!("SELECT COUNT(*) FROM agent_transitions WHERE agent_user_id = {tanaka}")).await;
    assert!(transitions >= 20, "{transitions} transitions");
    let created = n("SELECT COUNT(*) FROM leads WHERE tel = '0355550001' AND name = '新規 太郎'".into()).await;
    assert_eq!(created, 1, "the unknown number became a lead");
    let restricted =
        n(format!("SELECT COUNT(*) FROM call_records WHERE tel = '{dnc}' AND result = 'restricted'")).await;
    assert_eq!(restricted, 1, "the do-not-call dial is recorded as 発信規制");
    let log = carrier.log();
    assert!(!log.iter().any(|e| e.tel == dnc), "a do-not-call number reached the carrier: {log:?}");
    for tel in ["0311110001", "0311110002", "0355550001", "0333330002", "0344440003", "0366660001"] {
        assert!(log.iter().any(|e| e.tel == tel), "{tel} was not dialled: {log:?}");
    }
    assert!(!log.iter().any(|e| e.tel == "0344440002"), "the skipped preview lead was dialled");
    // The manual dial went out with the caller ID the agent picked: the carrier saw it, the record says it.
    let picked = log.iter().find(|e| e.tel == "0355550001").expect("the dial-mode call");
    assert!(picked.caller.contains(&format!("sip:{picked_cid}@")), "From: {}", picked.caller);
    let recorded =
        n(format!("SELECT COUNT(*) FROM call_records WHERE tel = '0355550001' AND caller_id = '{picked_cid}'")).await;
    assert_eq!(recorded, 1, "the call record's caller ID");
    let other = log.iter().find(|e| e.tel == "0333330002").expect("the standard-mode call");
    assert!(other.withheld, "the job's (none: withheld) by default: {}", other.caller);
    // The callback dialled from the desktop: its call is linked, and it reached the carrier.
    assert!(log.iter().any(|e| e.tel == "0322220003"), "the callback was not dialled: {log:?}");
    let linked = n("SELECT COUNT(*) FROM callbacks c JOIN call_records r ON r.lead_id = c.dialled_lead_id AND r.started_at >= c.dialled_at
                    WHERE c.number = '0322220003' AND c.dialled_by IS NOT NULL".into())
    .await;
    assert_eq!(linked, 1, "the callback's call");
    // Business end stopped the evening job (the engine), and both agents were told (the page).
    let stopped = n(format!("SELECT COUNT(*) FROM call_jobs WHERE id = {} AND status = 'stopped'", evening.id)).await;
    assert_eq!(stopped, 1, "the job stops at business end");

    floor.stop().await;
    let _ = sim_stop.send(true);
    drop(phones);
}
