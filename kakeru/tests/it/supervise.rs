//! Supervisors on an agent's call, end to end over real UDP: the API, the control service and the
//! dialer engine of a [`Node`] on a fresh SQLite file and the in-process bus, the built-in carrier
//! (its customers send a 500 Hz tone), the agent's simulated phone (1,100 Hz) and the supervisor's
//! (1,700 Hz). The agent works a progressive job; the supervisor listens (モニタリング), whispers
//! (ささやき) and barges (割込) through `POST /agents/{id}/monitor`; who hears whom is told by the
//! tones' frequencies (Goertzel, `media::dtmf::tone_share`) in what each phone and the carrier
//! received. The records of every start and end are read back.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use kakeru::node::{Node, NodeConfig};
use serde_json::{json, Value};
use sim::carrier::{Behaviour, CarrierConfig};
use store::accounts::{NewUser, Role};
use store::sqlx::{self, Row};
use tokio::sync::watch;

use crate::console::{browser_proc, until};
use crate::desktop::{campaign, insert, phone_account, Floor};

const CUSTOMER_HZ: f32 = 500.0;
const AGENT_HZ: f32 = 1100.0;
const SUPERVISOR_HZ: f32 = 1700.0;
/// The built-in hold audio (`dialer::engine::Clips::builtin`).
const HOLD_HZ: f32 = 392.0;
/// The manager's browser phone (Chromium's fake microphone).
const BROWSER_HZ: f32 = 2300.0;
/// A tone is heard with at least this share of the last second's energy; not heard below DEAF.
const HEARS: f32 = 0.1;
/// 外線転送 from the desktop to this number: busy (486).
const BUSY_NUMBER: &str = "0399990004";
/// 電話会議 from the desktop with this number: it answers.
const CONF_NUMBER: &str = "0399990002";
/// The saved outside number's own 発信者番号 (not the campaign's).
const SAVED_CALLER_ID: &str = "0355550100";
const DEAF: f32 = 0.01;

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn login(&self, login: &str) -> String {
        let r: Value = self
            .http
            .post(format!("{}/auth/login", self.base))
            .json(&json!({"tenant": "watch", "login": login, "password": "watch-password-1"}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login reply");
        r["token"].as_str().expect("token").to_owned()
    }

    async fn call(&self, method: reqwest::Method, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_listens_whispers_and_barges_from_their_phone() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}/kakeru.db", dir.path().display());
    let node = Node::open(NodeConfig::new(&url)).await.expect("node");
    let db = node.db().clone();
    let now = store::now_ms();
    let t = store::tenancy::create_tenant(&db, "watch", "見守り株式会社", "Asia/Tokyo", now).await.expect("tenant");
    store::tenancy::set_national_holidays(&db, t, false).await.expect("holidays");
    let user = |login: &'static str, role| NewUser {
        tenant_id: t,
        login,
        display_name: login,
        role,
        password: "watch-password-1",
    };
    let agent = store::accounts::create_user(&db, &user("tanaka", Role::Op), now).await.expect("op");
    store::accounts::create_user(&db, &user("sato", Role::Op), now).await.expect("op 2");
    let sv = store::accounts::create_user(&db, &user("suzuki", Role::Sv), now).await.expect("sv");
    let mgr_without_phone = store::accounts::create_user(&db, &user("boss", Role::Mgr), now).await.expect("mgr");
    phone_account(&db, t, agent, "tanaka", "watch", "sip-tanaka").await;
    phone_account(&db, t, sv, "suzuki", "watch", "sip-suzuki").await;
    let group = insert(
        &db,
        "INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, 'g', 0) RETURNING id",
        &[json!(t)],
    )
    .await;
    sqlx::query("INSERT INTO dialing_group_agents (tenant_id, group_id, user_id) VALUES ($1, $2, $3)")
        .bind(t)
        .bind(group)
        .bind(agent)
        .execute(&db.pool)
        .await
        .expect("member");
    let (job, _, _) = campaign(&db, t, group, "見守り", "progressive", &[("山田 花子", "0311110001")]).await;
    let job = job.id;

    // The floor.
    let (sim_stop, sim_rx) = watch::channel(false);
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // Every number answers and talks until hung up, but 外線転送's busy number.
    let mut rules = [Behaviour::Answer { after_ms: 300, talk_ms: None }; 10];
    rules[4] = Behaviour::Fail { status: 486, after_ms: 500 };
    let carrier = sim::carrier::start(
        loopback,
        CarrierConfig { by_last_digit: Some(rules), tone_hz: Some(CUSTOMER_HZ), ..CarrierConfig::default() },
        sim_rx.clone(),
    )
    .await
    .expect("carrier");
    let floor = Floor::start(node, t, carrier.sip_addr, "watch", None).await;
    let (base, info) = (floor.base.clone(), floor.info.clone());
    let phone = |username: &str, password: &str, hz: f32| {
        let account =
            sim::phone::PhoneAccount { username: username.into(), password: password.into(), domain: "watch".into() };
        let cfg = sim::phone::PhoneConfig {
            registrar: info.sip_addrs[0],
            bind_ip: loopback,
            expires_s: 300,
            answer_after: Duration::from_millis(200),
            tone_hz: Some(hz),
        };
        sim::phone::start(vec![account], cfg, sim_rx.clone())
    };
    let agent_phone = phone("tanaka", "sip-tanaka", AGENT_HZ).await.expect("agent phone").remove(0);
    let sv_phone = phone("suzuki", "sip-suzuki", SUPERVISOR_HZ).await.expect("supervisor phone").remove(0);
    until("both phones registered", Duration::from_secs(10), || async {
        agent_phone.stats().registered && sv_phone.stats().registered
    })
    .await;
    // The registrations reach the engine through the writer; give them a moment.
    let registered = |user: i64| {
        let db = db.clone();
        async move {
            sqlx::query("SELECT COUNT(*) FROM sip_registrations WHERE user_id = $1")
                .bind(user)
                .fetch_one(&db.pool)
                .await
                .ok()
                .and_then(|r| r.try_get::<i64, _>(0).ok())
                .unwrap_or(0)
                > 0
        }
    };
    until("registrations stored", Duration::from_secs(10), || registered(sv)).await;

    let api = Api { http: reqwest::Client::new(), base };
    let op_token = api.login("tanaka").await;
    let sv_token = api.login("suzuki").await;
    let other_token = api.login("sato").await;
    let mgr_token = api.login("boss").await;
    let post = reqwest::Method::POST;

    // Nobody is in a call yet: 409; an OP may not monitor at all: 403.
    let (s, _) =
        api.call(post.clone(), &sv_token, &format!("/agents/{agent}/monitor"), Some(json!({"mode": "listen"}))).await;
    assert_eq!(s, 409, "the agent is not in a call");
    let (s, _) = api
        .call(post.clone(), &other_token, &format!("/agents/{agent}/monitor"), Some(json!({"mode": "listen"})))
        .await;
    assert_eq!(s, 403, "an OP cannot monitor");

    // The agent starts the job and goes ready; the customer answers and is bridged.
    let (s, b) = api.call(post.clone(), &op_token, "/agent/session", Some(json!({"call_job_id": job}))).await;
    assert_eq!(s, 202, "{b}");
    let state_path = format!("/agents/{agent}");
    until("the agent's leg is up", Duration::from_secs(15), || async {
        api.call(reqwest::Method::GET, &op_token, &state_path, None).await.1["leg_up"] == json!(true)
    })
    .await;
    let (s, _) = api.call(post.clone(), &op_token, "/agent/ready", None).await;
    assert_eq!(s, 202);
    until("the agent talks with the customer", Duration::from_secs(20), || async {
        api.call(reqwest::Method::GET, &op_token, &state_path, None).await.1["state"] == json!("talking")
    })
    .await;
    let record: i64 =
        sqlx::query("SELECT id FROM call_records WHERE tenant_id = $1 AND agent_user_id = $2 AND ended_at IS NULL")
            .bind(t)
            .bind(agent)
            .fetch_one(&db.pool)
            .await
            .expect("the call record")
            .try_get("id")
            .expect("id");
    until("the agent hears the customer", Duration::from_secs(5), || async {
        agent_phone.heard_share(CUSTOMER_HZ) > 0.5
    })
    .await;

    // Bad input is a 4xx naming the field; a manager without a phone is told so.
    let (s, b) =
        api.call(post.clone(), &sv_token, &format!("/agents/{agent}/monitor"), Some(json!({"mode": "spy"}))).await;
    assert_eq!(s, 422, "{b}");
    assert!(b.to_string().contains("mode"), "{b}");
    let (s, b) =
        api.call(post.clone(), &mgr_token, &format!("/agents/{agent}/monitor"), Some(json!({"mode": "listen"}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("no_phone")), "{b}");
    let _ = mgr_without_phone;

    let monitor = |mode: &'static str| {
        let (api, sv_token, post) = (&api, sv_token.clone(), post.clone());
        async move {
            let (s, b) =
                api.call(post, &sv_token, &format!("/agents/{agent}/monitor"), Some(json!({"mode": mode}))).await;
            assert_eq!(s, 202, "{mode}: {b}");
            assert_eq!(b["call_id"], json!(record));
            b["id"].as_i64().expect("the record's id")
        }
    };
    let shares = |hz: f32| (agent_phone.heard_share(hz), carrier.heard_share(hz), sv_phone.heard_share(hz));

    // モニタリング: the supervisor hears both; nobody hears the supervisor.
    let listen = monitor("listen").await;
    until("the supervisor hears both parties", Duration::from_secs(10), || async {
        sv_phone.heard_share(CUSTOMER_HZ) > HEARS && sv_phone.heard_share(AGENT_HZ) > HEARS
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (a, c, _) = shares(SUPERVISOR_HZ);
    assert!(a < DEAF && c < DEAF, "listen: the agent ({a}) and the customer ({c}) must not hear the supervisor");
    assert!(agent_phone.heard_share(CUSTOMER_HZ) > 0.5, "the agent still hears the customer");

    // ささやき: the agent hears the supervisor, the customer does not.
    let whisper = monitor("whisper").await;
    until("the agent hears the supervisor", Duration::from_secs(5), || async {
        agent_phone.heard_share(SUPERVISOR_HZ) > HEARS
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (a, c, _) = shares(SUPERVISOR_HZ);
    assert!(a > HEARS && c < DEAF, "whisper: agent {a}, customer {c}");
    assert!(agent_phone.heard_share(CUSTOMER_HZ) > HEARS, "the agent still hears the customer");
    assert!(carrier.heard_share(AGENT_HZ) > HEARS, "the customer still hears the agent");

    // 割込: both parties hear the supervisor.
    let barge = monitor("barge").await;
    until("the customer hears the supervisor", Duration::from_secs(5), || async {
        carrier.heard_share(SUPERVISOR_HZ) > HEARS
    })
    .await;
    let (a, c, s) = shares(SUPERVISOR_HZ);
    assert!(a > HEARS && c > HEARS, "barge: agent {a}, customer {c}");
    assert!(s < DEAF, "the supervisor does not hear themselves: {s}");
    assert!(carrier.heard_share(AGENT_HZ) > HEARS, "the customer still hears the agent");

    // The supervisor leaves: the parties hear each other alone again.
    let (s, _) = api.call(reqwest::Method::DELETE, &sv_token, &format!("/agents/{agent}/monitor"), None).await;
    assert_eq!(s, 202);
    until("the supervisor's leg is gone", Duration::from_secs(5), || async { !sv_phone.stats().in_call }).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (a, c, _) = shares(SUPERVISOR_HZ);
    assert!(a < DEAF && c < DEAF, "after the supervisor left: agent {a}, customer {c}");

    // Every start and end is recorded, and the call's history shows them.
    until("the records are written", Duration::from_secs(5), || async {
        let (_, b) = api.call(reqwest::Method::GET, &sv_token, &format!("/calls/{record}/monitors"), None).await;
        b["items"].as_array().is_some_and(|i| i.len() == 3 && i.iter().all(|m| !m["ended_at"].is_null()))
    })
    .await;
    let (_, b) = api.call(reqwest::Method::GET, &sv_token, &format!("/calls/{record}/monitors"), None).await;
    let items = b["items"].as_array().expect("items");
    let got: Vec<(i64, &str, &str, bool)> = items
        .iter()
        .map(|m| {
            (
                m["id"].as_i64().expect("id"),
                m["mode"].as_str().expect("mode"),
                m["end_reason"].as_str().expect("reason"),
                m["started_at"].as_str().is_some_and(|s| s <= m["ended_at"].as_str().expect("end")),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (listen, "listen", "mode_changed", true),
            (whisper, "whisper", "mode_changed", true),
            (barge, "barge", "stopped", true)
        ],
        "{b}"
    );
    assert!(items.iter().all(|m| m["supervisor"] == json!("suzuki") && m["agent_user_id"] == json!(agent)));
    let (s, _) = api.call(reqwest::Method::GET, &op_token, &format!("/calls/{record}/monitors"), None).await;
    assert_eq!(s, 403, "an OP does not read the monitoring records");

    // 外線転送's saved numbers: the manager saves one with its own 発信者番号 (an agent may read
    // them, not write them); the desktop's conference below picks it by name instead of typing the
    // number, and the third party is called from that caller ID.
    let saved = json!({"name": "本社", "number": CONF_NUMBER, "caller_id": SAVED_CALLER_ID});
    let (s, b) = api.call(post.clone(), &mgr_token, "/outside-transfers", Some(saved)).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = api
        .call(post.clone(), &op_token, "/outside-transfers", Some(json!({"name": "x", "number": BUSY_NUMBER})))
        .await;
    assert_eq!(s, 403, "an OP does not save outside numbers: {b}");
    let (s, b) = api.call(reqwest::Method::GET, &op_token, "/outside-transfers", None).await;
    assert_eq!((s, b["total"].as_i64()), (200, Some(1)), "{b}");

    // The same from the pages, in Chromium: the wallboard's agent menu and the job monitor's chip.
    let fixture = json!({"tenant": "watch", "agent": agent, "call": record,
        "sv": {"login": "suzuki", "password": "watch-password-1"},
        "op": {"login": "tanaka", "password": "watch-password-1"}, "busyNumber": BUSY_NUMBER,
        "confNumber": CONF_NUMBER});
    let mut browser = browser_proc::Browser::script("monitor.test.js", "monitor", &api.base, &fixture);
    while let Some(step) = browser.next_step().await {
        match step.as_str() {
            "listening" => {
                until("the supervisor's phone rung from the wallboard", Duration::from_secs(10), || async {
                    sv_phone.stats().in_call
                })
                .await;
                tokio::time::sleep(Duration::from_millis(1200)).await;
                until("the supervisor hears both parties (from the wallboard)", Duration::from_secs(10), || async {
                    sv_phone.heard_share(CUSTOMER_HZ) > HEARS && sv_phone.heard_share(AGENT_HZ) > HEARS
                })
                .await;
                let (a, c, _) = shares(SUPERVISOR_HZ);
                assert!(a < DEAF && c < DEAF, "listen from the page: agent {a}, customer {c}");
            }
            "whispering" => {
                until("the agent hears the supervisor (from the job monitor)", Duration::from_secs(10), || async {
                    agent_phone.heard_share(SUPERVISOR_HZ) > HEARS
                })
                .await;
                assert!(
                    carrier.heard_share(SUPERVISOR_HZ) < DEAF,
                    "whisper from the page: the customer hears nothing of it"
                );
            }
            "barging" => {
                until("the customer hears the supervisor (from the job monitor)", Duration::from_secs(10), || async {
                    carrier.heard_share(SUPERVISOR_HZ) > HEARS
                })
                .await;
            }
            "left" => {
                until("the supervisor left (from the wallboard)", Duration::from_secs(10), || async {
                    !sv_phone.stats().in_call
                })
                .await;
            }
            "held" => {
                until("the customer hears the hold audio (from the desktop)", Duration::from_secs(5), || async {
                    carrier.heard_share(HOLD_HZ) > HEARS
                })
                .await;
            }
            "unheld" => {
                until("they hear each other again (from the desktop)", Duration::from_secs(5), || async {
                    carrier.heard_share(AGENT_HZ) > 0.5 && agent_phone.heard_share(CUSTOMER_HZ) > 0.5
                })
                .await;
            }
            "outside_busy" => {
                // The busy outside number was called from the call's caller ID, and the customer
                // is back with the agent: they hear each other again.
                let log = carrier.log();
                let busy = log.iter().find(|e| e.tel == BUSY_NUMBER && e.outcome == "failed:486").expect("called");
                assert!(
                    !busy.caller.contains(SAVED_CALLER_ID),
                    "a typed number: the call's caller ID: {}",
                    busy.caller
                );
                until("back with the agent after the busy outside number", Duration::from_secs(5), || async {
                    carrier.heard_share(AGENT_HZ) > 0.5 && agent_phone.heard_share(CUSTOMER_HZ) > 0.5
                })
                .await;
            }
            "conference" => {
                // The third party (the carrier, as the customer) hears the agent and the customer:
                // the carrier's own tone comes back to it; the agent hears the customer still.
                until("each of the three hears the other two", Duration::from_secs(10), || async {
                    carrier.heard_share(CUSTOMER_HZ) > 0.2 && carrier.heard_share(AGENT_HZ) > 0.2
                })
                .await;
                assert!(agent_phone.heard_share(CUSTOMER_HZ) > 0.5, "the agent hears the others");
                let log = carrier.log();
                let third = log.iter().find(|e| e.tel == CONF_NUMBER && e.outcome == "answered").expect("called");
                let from = format!("sip:{SAVED_CALLER_ID}@");
                assert!(third.caller.contains(&from), "called from the saved number's caller ID: {}", third.caller);
            }
            "conference_dropped" => {
                until("the third party is gone", Duration::from_secs(5), || async {
                    carrier.log().iter().any(|e| e.tel == CONF_NUMBER && e.ended_at.is_some())
                })
                .await;
                tokio::time::sleep(Duration::from_millis(1200)).await;
                assert!(carrier.heard_share(CUSTOMER_HZ) < DEAF, "the customer no longer hears a third party");
                assert!(carrier.heard_share(AGENT_HZ) > 0.5, "the customer hears the agent");
                let rows = store::conferences::of_call(&db, t, record).await.expect("conferences");
                assert_eq!(rows.len(), 1, "{rows:?}");
                assert!(rows[0].started_at.is_some(), "{rows:?}");
                until("the conference's end is recorded", Duration::from_secs(5), || async {
                    let rows = store::conferences::of_call(&db, t, record).await.expect("conferences");
                    rows[0].end_reason.as_deref() == Some("dropped")
                })
                .await;
                // The call's history reads it (MGR, SV; not an OP; another call id is missing).
                let path = format!("/calls/{record}/conferences");
                let (s, b) = api.call(reqwest::Method::GET, &sv_token, &path, None).await;
                assert_eq!(s, 200, "{b}");
                let c = &b["items"][0];
                assert_eq!(
                    (c["number"].as_str(), c["end_reason"].as_str()),
                    (Some(CONF_NUMBER), Some("dropped")),
                    "{b}"
                );
                assert!(c["agent"].as_str().is_some_and(|a| !a.is_empty()) && c["started_at"].is_string(), "{b}");
                assert_eq!(api.call(reqwest::Method::GET, &op_token, &path, None).await.0, 403);
                let missing = format!("/calls/{}/conferences", record + 1_000_000);
                assert_eq!(api.call(reqwest::Method::GET, &sv_token, &missing, None).await.0, 404);
            }
            other => panic!("the browser asked for an unknown step {other}"),
        }
        browser.go(&step, None).await;
    }
    browser.finish().await;
    let (_, b) = api.call(reqwest::Method::GET, &sv_token, &format!("/calls/{record}/monitors"), None).await;
    let modes: Vec<&str> =
        b["items"].as_array().expect("items").iter().map(|m| m["mode"].as_str().expect("mode")).collect();
    assert_eq!(
        modes,
        ["listen", "whisper", "barge", "listen", "whisper", "barge"],
        "the pages' joins are recorded too"
    );

    // A manager without a phone account joins from the wallboard itself (the browser phone, its
    // fake microphone saying 2,300 Hz): listen (the page hears the call, nobody hears the page),
    // barge (both parties hear it), leave.
    let tone = dir.path().join("manager-2300.wav");
    crate::phone::write_tone(&tone, f64::from(BROWSER_HZ), 10);
    let fixture = json!({"tenant": "watch", "agent": agent, "call": record, "tone": tone.display().to_string(),
        "mgr": {"login": "boss", "password": "watch-password-1"}});
    let mut browser = browser_proc::Browser::script("monitor.test.js", "monitor-browser", &api.base, &fixture);
    while let Some(step) = browser.next_step().await {
        match step.as_str() {
            "browser-listening" => {
                tokio::time::sleep(Duration::from_millis(1200)).await;
                let (a, c, _) = shares(BROWSER_HZ);
                assert!(a < DEAF && c < DEAF, "listen from the browser phone: agent {a}, customer {c}");
            }
            "browser-barging" => {
                until("both parties hear the manager's browser", Duration::from_secs(10), || async {
                    carrier.heard_share(BROWSER_HZ) > HEARS && agent_phone.heard_share(BROWSER_HZ) > HEARS
                })
                .await;
            }
            "browser-left" => {
                until("the browser's voice is gone", Duration::from_secs(10), || async {
                    carrier.heard_share(BROWSER_HZ) < DEAF && agent_phone.heard_share(BROWSER_HZ) < DEAF
                })
                .await;
            }
            other => panic!("the browser asked for an unknown step {other}"),
        }
        browser.go(&step, None).await;
    }
    browser.finish().await;
    until("the manager's records are written", Duration::from_secs(5), || async {
        let (_, b) = api.call(reqwest::Method::GET, &sv_token, &format!("/calls/{record}/monitors"), None).await;
        b["items"].as_array().is_some_and(|i| {
            i.iter().filter(|m| m["supervisor"] == json!("boss") && !m["ended_at"].is_null()).count() == 2
        })
    })
    .await;
    let (_, b) = api.call(reqwest::Method::GET, &sv_token, &format!("/calls/{record}/monitors"), None).await;
    let boss: Vec<(&str, &str, bool)> = b["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| m["supervisor"] == json!("boss"))
        .map(|m| {
            let started = m["started_at"].as_str().is_some_and(|s| s <= m["ended_at"].as_str().expect("end"));
            (m["mode"].as_str().expect("mode"), m["end_reason"].as_str().expect("reason"), started)
        })
        .collect();
    assert_eq!(boss, [("listen", "mode_changed", true), ("barge", "stopped", true)], "{b}");

    // 保留: the agent is 保留, the customer hears the hold audio (the built-in 392 Hz tone) and
    // neither party hears the other; 保留解除 brings them back.
    let (s, _) = api.call(post.clone(), &op_token, &format!("/agent/calls/{record}/hold"), None).await;
    assert_eq!(s, 202);
    until("the agent is on hold", Duration::from_secs(5), || async {
        api.call(reqwest::Method::GET, &op_token, &state_path, None).await.1["state"] == json!("hold")
    })
    .await;
    until("the customer hears the hold audio", Duration::from_secs(5), || async {
        carrier.heard_share(HOLD_HZ) > HEARS
    })
    .await;
    let got = agent_phone.stats().rtp_received;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let more = agent_phone.stats().rtp_received - got;
    assert!(more <= 2, "the agent gets no audio while the customer is held ({more} datagrams: RTCP at most)");
    assert!(carrier.heard_share(AGENT_HZ) < DEAF, "the held customer does not hear the agent");
    let (s, _) = api.call(post.clone(), &sv_token, &format!("/agent/calls/{record}/hold"), None).await;
    assert_eq!(s, 404, "only the agent's own call");
    let (s, _) = api.call(post.clone(), &op_token, &format!("/agent/calls/{record}/unhold"), None).await;
    assert_eq!(s, 202);
    until("the agent talks again", Duration::from_secs(5), || async {
        api.call(reqwest::Method::GET, &op_token, &state_path, None).await.1["state"] == json!("talking")
    })
    .await;
    until("they hear each other again", Duration::from_secs(5), || async {
        carrier.heard_share(AGENT_HZ) > 0.5 && agent_phone.heard_share(CUSTOMER_HZ) > 0.5
    })
    .await;
    let hold_transitions: i64 = sqlx::query(
        "SELECT COUNT(*) FROM agent_transitions WHERE agent_user_id = $1 AND (to_state = 'hold' OR from_state = 'hold')",
    )
    .bind(agent)
    .fetch_one(&db.pool)
    .await
    .expect("transitions")
    .try_get(0)
    .expect("count");
    assert_eq!(hold_transitions, 4, "保留 and back, from the desktop and the API, are transitions");

    // A listen again, then the customer hangs up: the record ends with the call.
    let again = monitor("listen").await;
    until("the supervisor is back on the call", Duration::from_secs(10), || async { sv_phone.stats().in_call }).await;
    let (s, _) = api.call(post.clone(), &op_token, &format!("/agent/calls/{}/hang-up", record), None).await;
    assert_eq!(s, 202);
    until("the last record ends with the call", Duration::from_secs(10), || async {
        let (_, b) = api.call(reqwest::Method::GET, &sv_token, &format!("/calls/{record}/monitors"), None).await;
        b["items"]
            .as_array()
            .and_then(|i| i.last().cloned())
            .is_some_and(|m| m["id"] == json!(again) && m["end_reason"] == json!("call_ended"))
    })
    .await;
    until("the supervisor's phone was hung up", Duration::from_secs(5), || async { !sv_phone.stats().in_call }).await;

    floor.stop().await;
    let _ = sim_stop.send(true);
}
