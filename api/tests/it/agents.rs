//! The agents' commands end to end: the API checks and publishes, the real control service applies
//! them (over the in-process bus, and over a real Redis), the states read back through `GET /agents`.
//! The dialer's side (the agent leg, the customer) is simulated by publishing shard events.

use std::time::{Duration, Instant};

use bus::{AnyBus, Bus, EntryId, Envelope, MemoryBus, RedisBus, RedisBusConfig};
use control::service::{Service, ServiceConfig};
use serde_json::{json, Value};
use store::accounts::Role;
use wire::agent::{AgentId, CallId, Command, Event};
use wire::{streams, CampaignId, LeadId, Party, ShardEvent, SipOutcome, SystemResult};

use crate::harness::{expect, scaffold, unique, Backend, Tenant, TestApp};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A bus: in process, or Redis under a prefix of its own (deleted by [`Buses::cleanup`]).
pub struct Buses {
    pub bus: AnyBus,
    prefix: Option<String>,
}

impl Buses {
    /// The in-process bus, or Redis (a missing Redis fails the test: it never skips).
    pub async fn new(redis: bool) -> Buses {
        if !redis {
            return Buses { bus: AnyBus::Memory(MemoryBus::default()), prefix: None };
        }
        let prefix = format!("{}:", unique("test:api:"));
        let mut cfg = RedisBusConfig::new(redis_url());
        cfg.prefix = prefix.clone();
        cfg.retry_max_attempts = 3;
        match RedisBus::connect(cfg).await {
            Ok(b) => Buses { bus: AnyBus::Redis(b), prefix: Some(prefix) },
            Err(e) => panic!("no Redis at {} (scripts/services.sh starts one): {e}", redis_url()),
        }
    }

    pub async fn cleanup(&self) {
        let Some(prefix) = &self.prefix else { return };
        let client = redis::Client::open(redis_url()).expect("redis url");
        let mut c = client.get_multiplexed_async_connection().await.expect("redis");
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut c).await.unwrap_or_default();
        for k in keys {
            let _: Result<(), _> = redis::cmd("DEL").arg(k).query_async(&mut c).await;
        }
    }
}

/// The real control service of one tenant, over `bus`, writing the API's wallboard feed.
pub struct Control {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<control::service::ServiceStats, control::service::ServiceError>>,
}

impl Control {
    pub async fn start(bus: &AnyBus, app: &TestApp, wallboards: &api::wallboard::Wallboards, tenant: i64) -> Control {
        let t = tenant as u64;
        let mut cfg = ServiceConfig::new(t, "api-test");
        cfg.block_ms = 50;
        let feed = wallboards.feed(t).expect("feed");
        let svc = Service::open(bus.clone(), app.db.clone(), cfg, feed).await.expect("control opens");
        let readers = [bus.another().await.expect("bus"), bus.another().await.expect("bus")];
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(svc.run(readers, async move {
            let _ = rx.await;
        }));
        Control { stop, task }
    }

    pub async fn stop(self) -> control::service::ServiceStats {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("control ran")
    }
}

pub async fn shard_event(bus: &AnyBus, tenant: i64, e: ShardEvent) {
    let env = Envelope::new(tenant as u64, 0, &e).expect("encode");
    bus.publish(&streams::shard_events(tenant as u64), &env).await.expect("publish");
}

/// The call record the dialer writes before it dials a customer.
async fn dialer_call_record(app: &TestApp, t: &Tenant, call: u64, campaign: i64) {
    store::sqlx::query(
        "INSERT INTO call_records (tenant_id, dialer_call_id, campaign_id, tel, started_at, result)
         VALUES ($1, $2, $3, '0312345678', $4, 'pending')",
    )
    .bind(t.id)
    .bind(call as i64)
    .bind(campaign)
    .bind(store::now_ms())
    .execute(&app.db.pool)
    .await
    .expect("the dialer's call record");
}

/// Polls `GET /agents/{id}` until `f` holds.
pub async fn until_agent(
    app: &TestApp,
    token: Option<&str>,
    agent: i64,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = expect(app.call(token, "get", &format!("/agents/{agent}"), None).await, 200);
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "agent {agent} never {what}: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["state"] == s
}

/// A running call job whose dialing group holds `agents`; returns (campaign, group, job).
pub async fn running_job(app: &TestApp, t: &Tenant, agents: &[i64], campaign: Value) -> (i64, i64, i64) {
    let mgr = t.mgr();
    let mut c = json!({"business_start": "00:00", "business_end": "23:59"});
    if let (Some(o), Value::Object(extra)) = (c.as_object_mut(), campaign) {
        o.extend(extra);
    }
    let (campaign, _, list) = scaffold(app, t, c, false).await;
    crate::harness::a_result(app, t, campaign).await;
    let g = expect(app.call(mgr, "post", "/dialing-groups", Some(&json!({"name": unique("g")}))).await, 201)["id"]
        .as_i64()
        .unwrap();
    expect(app.call(mgr, "put", &format!("/dialing-groups/{g}/agents"), Some(&json!({"user_ids": agents}))).await, 200);
    // Two leads never dialled (remaining leads on the wallboard).
    for tel in ["0311110001", "0311110002"] {
        let lead = json!({"list_id": list, "name": "n", "kana": "カナ", "tel": tel});
        expect(app.call(mgr, "post", "/leads", Some(&lead)).await, 201);
    }
    let job = json!({"campaign_id": campaign, "dialing_group_id": g, "name": unique("j"), "list_ids": [list]});
    let j = expect(app.call(mgr, "post", "/call-jobs", Some(&job)).await, 201)["id"].as_i64().unwrap();
    expect(app.call(mgr, "post", &format!("/call-jobs/{j}/start"), None).await, 200);
    (campaign, g, j)
}

pub async fn phone_for(app: &TestApp, t: &Tenant, user: i64) {
    let body = json!({"sip_username": unique("p"), "password": "phone-password", "user_id": user});
    expect(app.call(t.mgr(), "post", "/phones", Some(&body)).await, 201);
}

fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("")
}

/// Reads the control service's output until a command matches.
async fn command(bus: &AnyBus, tenant: i64, want: impl Fn(&Command) -> bool) -> Command {
    let s = streams::agent_events(tenant as u64);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = EntryId::default();
    loop {
        for (id, env) in bus.read_after(&s, after, 100, 100).await.expect("read") {
            after = id;
            if let Ok(Event::Command(c)) = env.decode::<Event>() {
                if want(&c) {
                    return c;
                }
            }
        }
        assert!(Instant::now() < deadline, "no such command");
    }
}

async fn session_pause_force_and_end(backend: Backend, redis: bool) {
    let buses = Buses::new(redis).await;
    let bus = buses.bus.clone();
    let config = api::Config { commands: bus::Publisher::new(bus.clone()), ..Default::default() };
    let wallboards = config.wallboards.clone();
    let app = TestApp::start_with(backend, config).await;
    let t = app.tenant("floor").await;
    let (op, sv, mgr) = (t.token(Role::Op), t.token(Role::Sv), t.mgr());
    let op_id = t.user(Role::Op);
    let (campaign, group, job) =
        running_job(&app, &t, &[op_id, t.user(Role::Sv)], json!({"acw_enabled": true, "acw_seconds": 600})).await;
    let lunch = expect(app.call(mgr, "post", "/pause-reasons", Some(&json!({"name": "lunch"}))).await, 201)["id"]
        .as_i64()
        .unwrap();
    let kyukei = expect(app.call(mgr, "post", "/pause-reasons", Some(&json!({"name": "休憩"}))).await, 201)["id"]
        .as_i64()
        .unwrap();
    phone_for(&app, &t, op_id).await;
    let control = Control::start(&bus, &app, &wallboards, t.id).await;

    // Before anything: offline, and commands that need a session are refused.
    let v = expect(app.call(op, "get", "/agents", None).await, 200);
    assert_eq!(v["total"], 1, "an OP sees only themselves: {v}");
    assert_eq!((v["items"][0]["id"].as_i64(), v["items"][0]["state"].as_str()), (Some(op_id), Some("offline")));
    let e = expect(app.call(op, "post", "/agent/ready", None).await, 409);
    assert_eq!(e["error"]["code"], "not_in_session");

    // 発信開始: the system dials the agent's phone.
    let r = expect(app.call(op, "post", "/agent/session", Some(&json!({"call_job_id": job}))).await, 202);
    assert_eq!(r["message_id"].as_str().map(str::len), Some(26), "a ULID: {r}");
    let v = until_agent(&app, op, op_id, "ringing", state_is("ringing")).await;
    assert_eq!((v["campaign_id"].as_i64(), v["call_job_id"].as_i64()), (Some(campaign), Some(job)));
    assert_eq!(v["dialing_group_id"].as_i64(), Some(group));
    let dial = command(&bus, t.id, |c| matches!(c, Command::DialAgentLeg { .. })).await;
    assert_eq!(
        dial,
        Command::DialAgentLeg { agent_id: AgentId(op_id as u64), campaign_id: Some(CampaignId(campaign as u64)) }
    );
    // Twice is refused while the first holds.
    let e = expect(app.call(op, "post", "/agent/session", Some(&json!({"call_job_id": job}))).await, 409);
    assert_eq!(e["error"]["code"], "in_session");
    // The agent answers the nailed-up leg: ready.
    shard_event(&bus, t.id, ShardEvent::AgentLegUp { agent_id: AgentId(op_id as u64), shard: 0 }).await;
    let v = until_agent(&app, op, op_id, "ready", state_is("ready")).await;
    assert_eq!(v["leg_up"], true);

    // 停止, then 待機.
    expect(app.call(op, "post", "/agent/pause", Some(&json!({"reason_id": lunch}))).await, 202);
    let v = until_agent(&app, op, op_id, "paused", state_is("paused")).await;
    assert_eq!(v["reason_id"].as_i64(), Some(lunch));
    expect(app.call(op, "post", "/agent/ready", None).await, 202);
    until_agent(&app, op, op_id, "ready", state_is("ready")).await;
    expect(app.call(op, "post", "/agent/activity", None).await, 202);

    // An SV forces a pause and then ready.
    let path = format!("/agents/{op_id}/state");
    expect(app.call(sv, "post", &path, Some(&json!({"to": "paused", "reason_id": lunch}))).await, 202);
    until_agent(&app, sv, op_id, "paused by the SV", state_is("paused")).await;
    expect(app.call(sv, "post", &path, Some(&json!({"to": "ready"}))).await, 202);
    until_agent(&app, sv, op_id, "ready by the SV", state_is("ready")).await;
    let forced = store::sqlx::query(
        "SELECT COUNT(*) AS n FROM agent_transitions WHERE tenant_id = $1 AND agent_user_id = $2 AND cause = 'supervisor' AND supervisor_id = $3",
    )
    .bind(t.id)
    .bind(op_id)
    .bind(t.user(Role::Sv))
    .fetch_one(&app.db.pool)
    .await
    .expect("count");
    assert_eq!(store::sqlx::Row::try_get::<i64, _>(&forced, "n").unwrap(), 2);
    // Everyone of the group back to 待機 at once (CloudCallCenter §2 ⑥): only the paused agents.
    expect(app.call(sv, "post", &path, Some(&json!({"to": "paused", "reason_id": lunch}))).await, 202);
    until_agent(&app, sv, op_id, "paused by the SV", state_is("paused")).await;
    let back = expect(app.call(sv, "post", &format!("/dialing-groups/{group}/ready"), None).await, 202);
    assert_eq!(back["agent_ids"], json!([op_id]), "the paused OP only (the SV member never logged in)");
    until_agent(&app, sv, op_id, "ready with the group", state_is("ready")).await;
    let back = expect(app.call(mgr, "post", &format!("/dialing-groups/{group}/ready"), None).await, 202);
    assert_eq!(back["agent_ids"], json!([]), "nobody paused: nobody sent");
    expect(app.call(op, "post", &format!("/dialing-groups/{group}/ready"), None).await, 403);
    expect(app.call(sv, "post", "/dialing-groups/999999999/ready", None).await, 404);

    // A customer: offered, bridged; the agent hangs up from the screen (お客様通話切断). The
    // dialer wrote its call record before dialling.
    let call = 7_000 + t.id as u64;
    dialer_call_record(&app, &t, call, campaign).await;
    shard_event(
        &bus,
        t.id,
        ShardEvent::CustomerAnswered {
            call_id: CallId(call),
            campaign_id: CampaignId(campaign as u64),
            lead_id: LeadId(0),
            shard: 0,
        },
    )
    .await;
    let v = until_agent(&app, op, op_id, "offered", |v| v["state"] == "ringing" && v["call_id"].as_u64() == Some(call))
        .await;
    assert_eq!(v["call_id"].as_u64(), Some(call));
    shard_event(&bus, t.id, ShardEvent::Bridged { call_id: CallId(call), agent_id: AgentId(op_id as u64) }).await;
    until_agent(&app, op, op_id, "talking", state_is("talking")).await;
    expect(app.call(op, "post", &format!("/agent/calls/{}/hang-up", call + 1), None).await, 404);
    expect(app.call(sv, "post", &format!("/agent/calls/{call}/hang-up"), None).await, 404);
    expect(app.call(op, "post", &format!("/agent/calls/{call}/hang-up"), None).await, 202);
    let c = command(&bus, t.id, |c| matches!(c, Command::HangUpCustomer { .. })).await;
    assert_eq!(c, Command::HangUpCustomer { agent_id: AgentId(op_id as u64), call_id: CallId(call) });
    let outcome = SipOutcome { status: 200, reason: "BYE".into(), ended_by: Party::Agent, talk_ms: 5_000 };
    shard_event(
        &bus,
        t.id,
        ShardEvent::CallEnded {
            call_id: CallId(call),
            agent_id: Some(AgentId(op_id as u64)),
            outcome,
            result: SystemResult::NoEntry,
        },
    )
    .await;
    until_agent(&app, op, op_id, "in wrap-up", state_is("wrap_up")).await;

    // Saving the record ends the ACW: "break" pauses with the reason named 休憩.
    let list = expect(app.call(op, "get", "/wrapup-records?saved=false", None).await, 200);
    let rec = list["items"][0]["id"].as_i64().expect("the unsaved record");
    let save = json!({"result": "busy", "next_action": "continue", "state_after": "break"});
    expect(app.call(op, "post", &format!("/wrapup-records/{rec}/save"), Some(&save)).await, 200);
    let v = until_agent(&app, op, op_id, "paused after saving", state_is("paused")).await;
    assert_eq!(v["reason_id"].as_i64(), Some(kyukei));
    let bad = json!({"result": "busy", "next_action": "continue", "state_after": "continue", "pause_reason_id": lunch});
    let e = expect(app.call(op, "post", &format!("/wrapup-records/{rec}/save"), Some(&bad)).await, 422);
    assert_eq!(field(&e), "pause_reason_id");

    // The wallboard (written by control into the API's feed, just after the commit) shows the agent
    // and the group.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let w = expect(app.call(sv, "get", "/wallboard", None).await, 200);
        let a = w["agents"].as_array().unwrap().iter().find(|a| a["agent_id"].as_i64() == Some(op_id)).cloned();
        let g = w["groups"].as_array().unwrap().iter().find(|g| g["dialing_group_id"].as_i64() == Some(group)).cloned();
        let paused = g.as_ref().and_then(|g| g["agents_by_state"]["paused"].as_u64());
        if a.is_some_and(|a| a["state"]["state"] == "paused") && paused == Some(1) {
            // Remaining leads, counted in the database for the snapshot.
            let c = w["campaigns"].as_array().unwrap().iter().find(|c| c["campaign_id"].as_i64() == Some(campaign));
            assert_eq!(c.map(|c| c["remaining_leads"].as_u64()), Some(Some(2)), "{w}");
            assert_eq!(g.map(|g| g["remaining_leads"].as_u64()), Some(Some(2)), "{w}");
            assert_eq!(w["tenant"]["remaining_leads"].as_u64(), Some(2), "{w}");
            break;
        }
        assert!(Instant::now() < deadline, "the wallboard never showed the pause: {w}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 発信終了.
    expect(app.call(op, "delete", "/agent/session", None).await, 202);
    until_agent(&app, op, op_id, "offline", state_is("offline")).await;
    let e = expect(app.call(op, "delete", "/agent/session", None).await, 409);
    assert_eq!(e["error"]["code"], "not_in_session");
    let stats = control.stop().await;
    assert_eq!(stats.refused, 0, "every command the API accepted was applied: {stats:?}");
    buses.cleanup().await;
}

async fn refusals_name_the_field(backend: Backend, redis: bool) {
    let buses = Buses::new(redis).await;
    let config = api::Config { commands: bus::Publisher::new(buses.bus.clone()), ..Default::default() };
    let app = TestApp::start_with(backend, config).await;
    let t = app.tenant("one").await;
    let other = app.tenant("two").await;
    let (op, sv, mgr) = (t.token(Role::Op), t.token(Role::Sv), t.mgr());
    let op_id = t.user(Role::Op);
    phone_for(&app, &t, op_id).await;
    let (_, _, job) = running_job(&app, &t, &[op_id, t.user(Role::Sv)], json!({})).await;
    let (_, _, foreign_job) = running_job(&app, &other, &[other.user(Role::Op)], json!({})).await;
    let (_, _, not_mine) = running_job(&app, &t, &[t.user(Role::Sv)], json!({})).await;
    let session = |j: i64| json!({"call_job_id": j});

    // Another tenant's call job is a missing one.
    let e = expect(app.call(op, "post", "/agent/session", Some(&session(foreign_job))).await, 422);
    assert_eq!(field(&e), "call_job_id");
    assert!(e["error"]["message"].as_str().unwrap().contains("no such call job"), "{e}");
    // Not an agent of the job's group or campaign.
    let e = expect(app.call(op, "post", "/agent/session", Some(&session(not_mine))).await, 422);
    assert_eq!(field(&e), "call_job_id");
    assert!(e["error"]["message"].as_str().unwrap().contains("not an agent"), "{e}");
    // No phone (the SV is a member but has no SIP account).
    let e = expect(app.call(sv, "post", "/agent/session", Some(&session(job))).await, 422);
    assert_eq!(field(&e), "phone");
    // A stopped job.
    expect(app.call(mgr, "post", &format!("/call-jobs/{job}/stop"), None).await, 200);
    let e = expect(app.call(op, "post", "/agent/session", Some(&session(job))).await, 409);
    assert_eq!((e["error"]["code"].as_str(), field(&e)), (Some("job_not_running"), "call_job_id"));
    // Bad bodies.
    let e = expect(app.call(op, "post", "/agent/session", Some(&json!({"call_job_id": "x"}))).await, 400);
    assert_eq!(field(&e), "call_job_id");
    let e = expect(app.call(op, "post", "/agent/session", Some(&json!({"job": 1}))).await, 400);
    assert_eq!(field(&e), "job", "the unknown field is named");
    // Pause reasons must be the tenant's.
    let foreign_reason =
        expect(app.call(other.mgr(), "post", "/pause-reasons", Some(&json!({"name": "x"}))).await, 201)["id"]
            .as_i64()
            .unwrap();
    let e = expect(app.call(op, "post", "/agent/pause", Some(&json!({"reason_id": foreign_reason}))).await, 422);
    assert_eq!(field(&e), "reason_id");
    let path = format!("/agents/{op_id}/state");
    for (body, f) in [
        (json!({"to": "paused"}), "reason_id"),
        (json!({"to": "paused", "reason_id": foreign_reason}), "reason_id"),
        (json!({"to": "ready", "reason_id": foreign_reason}), "reason_id"),
        (json!({"to": "lunch"}), "to"),
    ] {
        let e = expect(app.call(sv, "post", &path, Some(&body)).await, 422);
        assert_eq!(field(&e), f, "{body}");
    }
    // Supervisors act on the tenant's agents only: not an MGR, not another tenant's agent.
    let mgr_path = format!("/agents/{}/state", t.user(Role::Mgr));
    expect(app.call(sv, "post", &mgr_path, Some(&json!({"to": "ready"}))).await, 404);
    let foreign_path = format!("/agents/{}/state", other.user(Role::Op));
    expect(app.call(sv, "post", &foreign_path, Some(&json!({"to": "ready"}))).await, 404);
    expect(app.call(sv, "get", &format!("/agents/{}", other.user(Role::Op)), None).await, 404);
    // An OP sees only themselves; an OP may not force states.
    expect(app.call(op, "get", &format!("/agents/{}", t.user(Role::Sv)), None).await, 404);
    expect(app.call(op, "post", &path, Some(&json!({"to": "ready"}))).await, 403);
    let all = expect(app.call(sv, "get", "/agents", None).await, 200);
    let ids: Vec<i64> = all["items"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![t.user(Role::Sv), op_id], "OP and SV users of the tenant");
    buses.cleanup().await;
}

/// Preview (プレビュー): the next lead held for the caller, the dial through control to the dialer,
/// the answered customer bridged to that agent, skip; the refusals name the field.
async fn preview_next_dial_and_skip(backend: Backend, redis: bool) {
    let buses = Buses::new(redis).await;
    let bus = buses.bus.clone();
    let config = api::Config { commands: bus::Publisher::new(bus.clone()), ..Default::default() };
    let wallboards = config.wallboards.clone();
    let app = TestApp::start_with(backend, config).await;
    let t = app.tenant("preview").await;
    let (op, biz) = (t.token(Role::Op), t.token(Role::Biz));
    let op_id = t.user(Role::Op);
    let agent = AgentId(op_id as u64);
    let (campaign, _, job) = running_job(&app, &t, &[op_id], json!({"mode": "preview"})).await;
    let (_, _, progressive) = running_job(&app, &t, &[op_id], json!({})).await;
    phone_for(&app, &t, op_id).await;
    let control = Control::start(&bus, &app, &wallboards, t.id).await;
    let session = |j: i64| json!({"call_job_id": j});
    let leg_up = || shard_event(&bus, t.id, ShardEvent::AgentLegUp { agent_id: agent, shard: 0 });

    // Not in a session: nothing to preview. Roles other than agents: refused.
    let e = expect(app.call(op, "post", "/agent/preview", None).await, 409);
    assert_eq!(e["error"]["code"], "not_in_session");
    expect(app.call(biz, "post", "/agent/preview", None).await, 403);
    // A progressive job has no previews.
    expect(app.call(op, "post", "/agent/session", Some(&session(progressive))).await, 202);
    until_agent(&app, op, op_id, "ringing", state_is("ringing")).await;
    leg_up().await;
    until_agent(&app, op, op_id, "ready", state_is("ready")).await;
    let e = expect(app.call(op, "post", "/agent/preview", None).await, 409);
    assert_eq!(e["error"]["code"], "not_preview");
    expect(app.call(op, "delete", "/agent/session", None).await, 202);
    until_agent(&app, op, op_id, "offline", state_is("offline")).await;

    // The preview job: the first lead, held (the same one again on reload).
    expect(app.call(op, "post", "/agent/session", Some(&session(job))).await, 202);
    until_agent(&app, op, op_id, "ringing", state_is("ringing")).await;
    leg_up().await;
    until_agent(&app, op, op_id, "ready", state_is("ready")).await;
    let v = expect(app.call(op, "post", "/agent/preview", None).await, 200);
    let lead = v["lead"].clone();
    assert_eq!((lead["tel"].as_str(), lead["attempts"].as_i64()), (Some("0311110001"), Some(0)), "{v}");
    assert_eq!((lead["name"].as_str(), lead["kana"].as_str()), (Some("n"), Some("カナ")), "{v}");
    assert!(lead["held_until"].as_str().is_some_and(|s| s.ends_with("+09:00")), "local time: {v}");
    let lead_id = lead["lead_id"].as_i64().expect("lead id");
    let again = expect(app.call(op, "post", "/agent/preview", None).await, 200);
    assert_eq!(again["lead"]["lead_id"].as_i64(), Some(lead_id));

    // Refusals name the field: a lead not held, a body of the wrong type.
    let e = expect(app.call(op, "post", "/agent/preview/dial", Some(&json!({"lead_id": lead_id + 1}))).await, 409);
    assert_eq!((e["error"]["code"].as_str(), field(&e)), (Some("not_held"), "lead_id"));
    let e = expect(app.call(op, "post", "/agent/preview/dial", Some(&json!({"lead_id": "x"}))).await, 400);
    assert_eq!(field(&e), "lead_id");
    let e = expect(app.call(op, "post", "/agent/preview/skip", Some(&json!({"lead": lead_id}))).await, 400);
    assert_eq!(field(&e), "lead");

    // Dial: control makes the agent ringing with no customer and asks the dialer for the lead.
    expect(app.call(op, "post", "/agent/preview/dial", Some(&json!({"lead_id": lead_id}))).await, 202);
    let v = until_agent(&app, op, op_id, "ringing for the preview", state_is("ringing")).await;
    assert_eq!(v["call_id"], Value::Null);
    let c = command(&bus, t.id, |c| matches!(c, Command::DialPreview { .. })).await;
    assert_eq!(
        c,
        Command::DialPreview {
            agent_id: agent,
            campaign_id: CampaignId(campaign as u64),
            call_job_id: wire::CallJobId(job as u64),
            lead_id: LeadId(lead_id as u64),
            caller_id: None,
        }
    );
    let e = expect(app.call(op, "post", "/agent/preview/dial", Some(&json!({"lead_id": lead_id}))).await, 409);
    assert_eq!(e["error"]["code"], "not_ready");
    // The dialer places it; the customer answers: bridged to this agent at once.
    let call = CallId(9_000 + t.id as u64);
    shard_event(
        &bus,
        t.id,
        ShardEvent::PreviewPlaced { call_id: call, agent_id: agent, lead_id: LeadId(lead_id as u64) },
    )
    .await;
    until_agent(&app, op, op_id, "holding the call", |v| v["call_id"].as_u64() == Some(call.0)).await;
    let answered = ShardEvent::CustomerAnswered {
        call_id: call,
        campaign_id: CampaignId(campaign as u64),
        lead_id: LeadId(lead_id as u64),
        shard: 0,
    };
    shard_event(&bus, t.id, answered).await;
    let c = command(&bus, t.id, |c| matches!(c, Command::Bridge { .. })).await;
    assert_eq!(c, Command::Bridge { agent_id: agent, call_id: call });
    shard_event(&bus, t.id, ShardEvent::Bridged { call_id: call, agent_id: agent }).await;
    until_agent(&app, op, op_id, "talking", state_is("talking")).await;
    // 転送: only to a ready agent of the same campaign (a BIZ user is none), only the caller's call.
    let to = |a: i64| json!({"agent_id": a});
    let e = expect(
        app.call(op, "post", &format!("/agent/calls/{}/transfer", call.0), Some(&to(t.user(Role::Biz)))).await,
        422,
    );
    assert_eq!(field(&e), "agent_id");
    let e = expect(app.call(op, "post", &format!("/agent/calls/{}/transfer", call.0), Some(&to(op_id))).await, 422);
    assert_eq!(field(&e), "agent_id", "not to oneself");
    expect(app.call(op, "post", &format!("/agent/calls/{}/transfer", call.0 + 1), Some(&to(op_id))).await, 404);
    // 外線転送: the number is checked (422 naming it), the do-not-call list too, only the caller's
    // call (404); then control asks the dialer for the outside leg and the transfer is recorded.
    let outside = |n: &str| json!({"number": n});
    let path = format!("/agent/calls/{}/transfer-outside", call.0);
    let e = expect(app.call(op, "post", &path, Some(&outside("03-12ab"))).await, 422);
    assert_eq!(field(&e), "number");
    let e = expect(app.call(op, "post", &path, Some(&outside("31234567"))).await, 422);
    assert_eq!(field(&e), "number", "a number starts with 0");
    store::sqlx::query("INSERT INTO dnc_numbers (tenant_id, number, created_at) VALUES ($1, '0399990000', 0)")
        .bind(t.id)
        .execute(&app.db.pool)
        .await
        .expect("a do-not-call number");
    let e = expect(app.call(op, "post", &path, Some(&outside("03-9999-0000"))).await, 422);
    assert_eq!(field(&e), "number", "on the do-not-call list: {e}");
    let other = format!("/agent/calls/{}/transfer-outside", call.0 + 1);
    expect(app.call(op, "post", &other, Some(&outside("0312345678"))).await, 404);
    expect(app.call(biz, "post", &path, Some(&outside("0312345678"))).await, 403);
    store::sqlx::query("INSERT INTO call_records (id, tenant_id, tel, started_at) VALUES ($1, $2, '0311110001', 0)")
        .bind(call.0 as i64)
        .bind(t.id)
        .execute(&app.db.pool)
        .await
        .expect("the call's record");
    expect(app.call(op, "post", &path, Some(&outside("03-1234-5678"))).await, 202);
    let c = command(&bus, t.id, |c| matches!(c, Command::TransferOutside { .. })).await;
    let tel = wire::Tel::new("0312345678").expect("tel");
    assert_eq!(c, Command::TransferOutside { agent_id: agent, call_id: call, tel, caller_id: None });
    let rows = store::transfers::of_call(&app.db, t.id, call.0 as i64).await.expect("transfers");
    assert_eq!(
        rows.iter().map(|r| (r.from_user_id, r.to_tel.clone())).collect::<Vec<_>>(),
        vec![(op_id, Some("0312345678".to_string()))]
    );
    until_agent(&app, op, op_id, "still talking until the outside party answers", state_is("talking")).await;
    // 電話会議: the same checks; control forwards the ask, the drop and the leave to the dialer.
    let conf = format!("/agent/calls/{}/conference", call.0);
    let e = expect(app.call(op, "post", &conf, Some(&outside("x"))).await, 422);
    assert_eq!(field(&e), "number");
    let e = expect(app.call(op, "post", &conf, Some(&outside("0399990000"))).await, 422);
    assert_eq!(field(&e), "number", "on the do-not-call list");
    expect(
        app.call(op, "post", &format!("/agent/calls/{}/conference", call.0 + 1), Some(&outside("0312345678"))).await,
        404,
    );
    expect(app.call(op, "post", &conf, Some(&outside("0312345679"))).await, 202);
    let c = command(&bus, t.id, |c| matches!(c, Command::Conference { .. })).await;
    let tel = wire::Tel::new("0312345679").expect("tel");
    assert_eq!(c, Command::Conference { agent_id: agent, call_id: call, tel, caller_id: None });
    let rows = store::conferences::of_call(&app.db, t.id, call.0 as i64).await.expect("conferences");
    assert_eq!(
        rows.iter().map(|r| (r.agent_user_id, r.to_tel.as_str())).collect::<Vec<_>>(),
        vec![(op_id, "0312345679")]
    );
    // A saved outside number (外線転送) chosen by its id: its number, called from its own
    // 発信者番号; an unknown id, or a number and an id at once, is refused naming the field.
    let saved: i64 = store::sqlx::query_scalar(
        "INSERT INTO outside_transfers (tenant_id, name, number, caller_id, created_at, updated_at)
         VALUES ($1, '本社', '0312340000', '0355550100', 0, 0) RETURNING id",
    )
    .bind(t.id)
    .fetch_one(&app.db.pool)
    .await
    .expect("a saved outside number");
    let e = expect(app.call(op, "post", &conf, Some(&json!({"outside_transfer_id": saved + 1000}))).await, 422);
    assert_eq!(field(&e), "outside_transfer_id");
    let both = json!({"outside_transfer_id": saved, "number": "0312345678"});
    assert_eq!(field(&expect(app.call(op, "post", &conf, Some(&both)).await, 422)), "outside_transfer_id");
    assert_eq!(field(&expect(app.call(op, "post", &conf, Some(&json!({}))).await, 422)), "number");
    expect(app.call(op, "post", &conf, Some(&json!({"outside_transfer_id": saved}))).await, 202);
    let c = command(&bus, t.id, |c| matches!(c, Command::Conference { caller_id: Some(_), .. })).await;
    let (tel, caller_id) = (wire::Tel::new("0312340000").expect("tel"), wire::Tel::new("0355550100"));
    assert_eq!(c, Command::Conference { agent_id: agent, call_id: call, tel, caller_id });
    expect(app.call(op, "delete", &conf, None).await, 202);
    let c = command(&bus, t.id, |c| matches!(c, Command::EndConference { .. })).await;
    assert_eq!(c, Command::EndConference { agent_id: agent, call_id: call });
    expect(app.call(op, "post", &format!("{conf}/leave"), None).await, 202);
    let c = command(&bus, t.id, |c| matches!(c, Command::LeaveConference { .. })).await;
    assert_eq!(c, Command::LeaveConference { agent_id: agent, call_id: call });
    expect(app.call(biz, "delete", &conf, None).await, 403);
    let outcome = SipOutcome { status: 200, reason: "BYE".into(), ended_by: Party::Customer, talk_ms: 3_000 };
    let ended = ShardEvent::CallEnded { call_id: call, agent_id: Some(agent), outcome, result: SystemResult::NoEntry };
    shard_event(&bus, t.id, ended).await;
    until_agent(&app, op, op_id, "in wrap-up after the conversation", state_is("wrap_up")).await;
    expect(app.call(op, "post", "/agent/ready", None).await, 202);
    until_agent(&app, op, op_id, "ready after the call", state_is("ready")).await;

    // Skip: the hold ends, the next lead is shown, the skipped one is not held any more.
    let v = expect(app.call(op, "post", "/agent/preview/skip", Some(&json!({"lead_id": lead_id}))).await, 200);
    assert_eq!(v["skipped"].as_i64(), Some(lead_id));
    let next = expect(app.call(op, "post", "/agent/preview", None).await, 200);
    assert_eq!(next["lead"]["tel"].as_str(), Some("0311110002"), "{next}");
    let e = expect(app.call(op, "post", "/agent/preview/skip", Some(&json!({"lead_id": lead_id}))).await, 409);
    assert_eq!(field(&e), "lead_id");
    let next_id = next["lead"]["lead_id"].as_i64().unwrap();
    expect(app.call(op, "post", "/agent/preview/skip", Some(&json!({"lead_id": next_id}))).await, 200);
    let none = expect(app.call(op, "post", "/agent/preview", None).await, 200);
    assert_eq!(none["lead"], Value::Null, "both leads skipped in this run: {none}");
    let stats = control.stop().await;
    assert_eq!(stats.refused, 0, "every command the API accepted was applied: {stats:?}");
    buses.cleanup().await;
}

macro_rules! flavours {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::harness::Backend;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_sqlite() { super::$name(Backend::Sqlite, false).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_postgres() { super::$name(Backend::Postgres, false).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_sqlite() { super::$name(Backend::Sqlite, true).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_postgres() { super::$name(Backend::Postgres, true).await }
        }
    )*};
}

/// 無応答自動停止 (CloudCallCenter §11.2): the group's setting pauses an agent who lets an offered
/// customer go, with its reason, and 無応答自動停止時間 ends that pause by itself.
async fn no_answer_pauses_with_the_groups_reason(backend: Backend, redis: bool) {
    let buses = Buses::new(redis).await;
    let bus = buses.bus.clone();
    let config = api::Config { commands: bus::Publisher::new(bus.clone()), ..Default::default() };
    let wallboards = config.wallboards.clone();
    let app = TestApp::start_with(backend, config).await;
    let t = app.tenant("noans").await;
    let (op, mgr) = (t.token(Role::Op), t.mgr());
    let op_id = t.user(Role::Op);
    let (campaign, group, job) = running_job(&app, &t, &[op_id], json!({"agent_wait_timeout_s": 1})).await;
    let reason = expect(app.call(mgr, "post", "/pause-reasons", Some(&json!({"name": "無応答"}))).await, 201)["id"]
        .as_i64()
        .unwrap();
    let g = json!({"no_answer_pause_reason_id": reason, "no_answer_pause_release_s": 2});
    let v = expect(app.call(mgr, "patch", &format!("/dialing-groups/{group}"), Some(&g)).await, 200);
    assert_eq!(v["no_answer_pause_reason_id"].as_i64(), Some(reason));
    assert_eq!(v["no_answer_pause_release_s"].as_i64(), Some(2));
    let bad = json!({"no_answer_pause_release_s": -1});
    let e = expect(app.call(mgr, "patch", &format!("/dialing-groups/{group}"), Some(&bad)).await, 422);
    assert_eq!(e["error"]["field"], "no_answer_pause_release_s");
    phone_for(&app, &t, op_id).await;
    let control = Control::start(&bus, &app, &wallboards, t.id).await;
    expect(app.call(op, "post", "/agent/session", Some(&json!({"call_job_id": job}))).await, 202);
    until_agent(&app, op, op_id, "ringing", state_is("ringing")).await;
    shard_event(&bus, t.id, ShardEvent::AgentLegUp { agent_id: AgentId(op_id as u64), shard: 0 }).await;
    until_agent(&app, op, op_id, "ready", state_is("ready")).await;
    let call = 9_000 + t.id as u64;
    dialer_call_record(&app, &t, call, campaign).await;
    let offer = ShardEvent::CustomerAnswered {
        call_id: CallId(call),
        campaign_id: CampaignId(campaign as u64),
        lead_id: LeadId(0),
        shard: 0,
    };
    shard_event(&bus, t.id, offer).await;
    // Not taken within the campaign's 1 s: released, and the agent paused with the group's reason.
    let v = until_agent(&app, op, op_id, "paused on no answer", state_is("paused")).await;
    assert_eq!(v["reason_id"].as_i64(), Some(reason), "{v}");
    // The cause of the agent's last transition into (or out of) `state`.
    let cause = |column: &'static str, state: &'static str| {
        let db = app.db.clone();
        async move {
            let sql = format!(
                "SELECT cause FROM agent_transitions WHERE tenant_id = $1 AND agent_user_id = $2 AND {column} = $3 ORDER BY id DESC LIMIT 1"
            );
            let row = store::sqlx::query(&sql)
                .bind(t.id)
                .bind(op_id)
                .bind(state)
                .fetch_one(&db.pool)
                .await
                .expect("a transition");
            store::sqlx::Row::try_get::<String, _>(&row, "cause").unwrap()
        }
    };
    assert_eq!(cause("to_state", "paused").await, "no_answer");
    // 無応答自動停止時間: the pause ends by itself after the group's 2 s (then the customer, who no
    // dialer released in this test, is offered again).
    until_agent(&app, op, op_id, "out of the pause", |v: &Value| v["state"] != "paused").await;
    assert_eq!(cause("from_state", "paused").await, "pause_released");
    control.stop().await;
    buses.cleanup().await;
}

flavours!(
    session_pause_force_and_end,
    refusals_name_the_field,
    preview_next_dial_and_skip,
    no_answer_pauses_with_the_groups_reason
);
