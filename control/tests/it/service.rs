//! The control service end to end over the in-process bus, on SQLite and PostgreSQL: the match
//! (answered customer -> longest-idle ready agent of the campaign, never two), call and wrap-up
//! records, the state after saving, restart from storage, and the wallboard feed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{Bus, BusConfig, Envelope, MemoryBus};
use control::service::{Service, ServiceConfig};
use store::sqlx::{self, Connection, Row};
use store::{Backend, Db};
use wallboard::{Feed, Start, Tile};
use wire::agent::{AfterWrapUp, AgentConfig, AgentId, AgentState, CallId, Command, Event, PauseReasonId};
use wire::{streams, ApiCommand, CampaignId, LeadId, Party, ShardEvent, SipOutcome, SystemResult};

static SEQ: AtomicU64 = AtomicU64::new(0);

pub fn pg_admin_url() -> String {
    std::env::var("KAKERU_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database with one tenant whose id is unique across runs (stream names derive from it,
/// and the Redis tests share one Redis). Returns (url, db, tenant, pause reason, tempdir).
pub async fn fixture(backend: Backend) -> (String, Db, u64, u32, Option<tempfile::TempDir>) {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            (format!("sqlite:{}/kakeru.db", dir.path().display()), Some(dir))
        }
        Backend::Postgres => {
            let admin = pg_admin_url();
            let name = format!("kc_{}_{}_{}", std::process::id(), n, ulid::Ulid::new().random() % 1_000_000);
            let mut conn =
                sqlx::postgres::PgConnection::connect(&admin).await.expect("PostgreSQL at KAKERU_TEST_PG_URL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
            (format!("{base}/{name}"), None)
        }
    };
    let db = Db::connect(&url).await.expect("connect and migrate");
    // Unique per run and test: ms clock * 1000 + sequence, kept under 2^53.
    let tenant = (u64::try_from(store::now_ms()).expect("clock") % 1_000_000_000) * 1000 + n % 1000 + 1;
    sqlx::query("INSERT INTO tenants (id, code, name, created_at) VALUES ($1, $2, 'test', 0)")
        .bind(tenant as i64)
        .bind(format!("t{tenant}"))
        .execute(&db.pool)
        .await
        .expect("tenant");
    let reason: i64 =
        sqlx::query("INSERT INTO pause_reasons (tenant_id, name, created_at) VALUES ($1, 'lunch', 0) RETURNING id")
            .bind(tenant as i64)
            .fetch_one(&db.pool)
            .await
            .expect("pause reason")
            .try_get("id")
            .expect("id");
    (url, db, tenant, reason as u32, dir)
}

pub fn backends() -> Vec<Backend> {
    store::testing::backends()
}

pub fn config(acw_ms: Option<u64>) -> AgentConfig {
    AgentConfig { acw_ms, ..AgentConfig::default() }
}

pub async fn cmd<B: Bus>(bus: &B, tenant: u64, c: ApiCommand) {
    let env = Envelope::new(tenant, 0, &c).expect("encode");
    bus.publish(&streams::control_commands(tenant), &env).await.expect("publish");
}

pub async fn ev<B: Bus>(bus: &B, tenant: u64, e: ShardEvent) {
    let env = Envelope::new(tenant, 0, &e).expect("encode");
    bus.publish(&streams::shard_events(tenant), &env).await.expect("publish");
}

pub async fn count(db: &Db, sql: &str, tenant: u64) -> i64 {
    sqlx::query(sql).bind(tenant as i64).fetch_one(&db.pool).await.expect("count").try_get(0).expect("col")
}

/// Polls until `f` holds (at most 10 s).
pub async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn agent_state(db: &Db, tenant: u64, agent: u64) -> Option<AgentState> {
    let r = sqlx::query("SELECT view FROM control_agents WHERE tenant_id = $1 AND agent_user_id = $2")
        .bind(tenant as i64)
        .bind(agent as i64)
        .fetch_optional(&db.pool)
        .await
        .expect("query")?;
    let v: String = r.try_get("view").expect("view");
    let view: wire::agent::AgentView = serde_json::from_str(&v).expect("json");
    Some(view.state)
}

/// Reads agent events from the service's output stream.
struct Out {
    bus: MemoryBus,
    stream: String,
    buffered: std::collections::VecDeque<Event>,
}

impl Out {
    async fn new(bus: &MemoryBus, tenant: u64) -> Out {
        let stream = streams::agent_events(tenant);
        bus.ensure_group(&stream, "test").await.expect("group");
        Out { bus: bus.clone(), stream, buffered: Default::default() }
    }

    async fn next(&mut self, want: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(e) = self.buffered.pop_front() {
                if want(&e) {
                    return e;
                }
            }
            let batch = self.bus.read(&self.stream, "test", "t", 100, 100).await.expect("read");
            let ids: Vec<_> = batch.iter().map(|d| d.entry_id).collect();
            if !ids.is_empty() {
                self.bus.ack(&self.stream, "test", &ids).await.expect("ack");
            }
            for d in batch {
                self.buffered.push_back(d.envelope.decode().expect("agent event"));
            }
            assert!(Instant::now() < deadline, "no such agent event");
        }
    }
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<control::service::ServiceStats, control::service::ServiceError>>,
}

impl Running {
    async fn start(bus: &MemoryBus, db: &Db, tenant: u64, feed: Arc<Feed>) -> Running {
        let mut cfg = ServiceConfig::new(tenant, "c1");
        cfg.block_ms = 50;
        let svc = Service::open(bus.clone(), db.clone(), cfg, feed).await.expect("open");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let b = bus.clone();
        let task = tokio::spawn(svc.run([b.clone(), b], async move {
            let _ = rx.await;
        }));
        Running { stop, task }
    }

    async fn stop(self) -> control::service::ServiceStats {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("service ran")
    }
}

pub async fn login_ready(bus: &MemoryBus, db: &Db, tenant: u64, agents: &[u64], campaign: u64, acw: Option<u64>) {
    for &a in agents {
        cmd(
            bus,
            tenant,
            ApiCommand::StartCallJob {
                agent_id: AgentId(a),
                campaign_id: CampaignId(campaign),
                config: config(acw),
                call_job_id: None,
                dialing_group_id: None,
            },
        )
        .await;
    }
    for &a in agents {
        until("ringing", || async move { agent_state(db, tenant, a).await == Some(AgentState::Ringing) }).await;
    }
    for &a in agents {
        ev(bus, tenant, ShardEvent::AgentLegUp { agent_id: AgentId(a), shard: 0 }).await;
        // Distinct ready times: the longest idle is the first logged in.
        until("ready", || async move { agent_state(db, tenant, a).await == Some(AgentState::Ready) }).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub fn answered(call: u64, campaign: u64) -> ShardEvent {
    ShardEvent::CustomerAnswered {
        call_id: CallId(call),
        campaign_id: CampaignId(campaign),
        lead_id: LeadId(0),
        shard: 0,
    }
}

/// The call record the dialer writes before its INVITE leaves (control writes only who took it).
pub async fn placed(db: &Db, tenant: u64, call: u64, campaign: u64) {
    sqlx::query(
        "INSERT INTO call_records (tenant_id, dialer_call_id, campaign_id, tel, started_at, result)
         VALUES ($1, $2, $3, '0312345678', $4, 'pending')",
    )
    .bind(tenant as i64)
    .bind(call as i64)
    .bind(campaign as i64)
    .bind(store::now_ms())
    .execute(&db.pool)
    .await
    .expect("the dialer's call record");
}

pub fn ended(call: u64, agent: Option<u64>) -> ShardEvent {
    ShardEvent::CallEnded {
        call_id: CallId(call),
        agent_id: agent.map(AgentId),
        outcome: SipOutcome { status: 200, reason: "BYE".into(), ended_by: Party::Customer, talk_ms: 1000 },
        // As the dialer derives it: bridged calls end without an entry, the others abandoned.
        result: if agent.is_some() { SystemResult::NoEntry } else { SystemResult::Abandoned },
    }
}

#[tokio::test]
async fn match_bridge_end_wrapup_and_state_after() {
    for backend in backends() {
        let (_url, db, t, reason, _dir) = fixture(backend).await;
        let bus = MemoryBus::new(BusConfig::default());
        let mut out = Out::new(&bus, t).await;
        let feed = Arc::new(Feed::default());
        let run = Running::start(&bus, &db, t, feed.clone()).await;
        login_ready(&bus, &db, t, &[1, 2], 7, Some(30_000)).await;

        // The longest-idle ready agent of the campaign (agent 1) is offered and reserved.
        placed(&db, t, 100, 7).await;
        placed(&db, t, 101, 8).await;
        ev(&bus, t, answered(100, 7)).await;
        let e = out.next(|e| matches!(e, Event::Command(Command::Bridge { .. }))).await;
        assert_eq!(e, Event::Command(Command::Bridge { agent_id: AgentId(1), call_id: CallId(100) }), "{backend:?}");
        // A customer of another campaign is not offered to agent 2: it waits.
        ev(&bus, t, answered(101, 8)).await;
        ev(&bus, t, ShardEvent::Bridged { call_id: CallId(100), agent_id: AgentId(1) }).await;
        until("talking", || async { agent_state(&db, t, 1).await == Some(AgentState::Talking) }).await;
        assert_eq!(agent_state(&db, t, 2).await, Some(AgentState::Ready));
        ev(&bus, t, ended(100, Some(1))).await;
        until("wrap-up", || async { agent_state(&db, t, 1).await == Some(AgentState::WrapUp) }).await;

        // Control's columns of the call record (who took it, when) and the unsaved wrap-up record
        // (未入力); the result is the dialer's (still as the test's dialer wrote it).
        let r = sqlx::query(
            "SELECT result, bridged_at, agent_user_id FROM call_records WHERE tenant_id = $1 AND dialer_call_id = 100",
        )
        .bind(t as i64)
        .fetch_one(&db.pool)
        .await
        .expect("call record");
        assert_eq!(r.try_get::<String, _>("result").expect("result"), "pending", "control writes no result");
        assert!(r.try_get::<Option<i64>, _>("bridged_at").expect("b").is_some());
        assert_eq!(r.try_get::<Option<i64>, _>("agent_user_id").expect("a"), Some(1));
        let w =
            sqlx::query("SELECT result, saved, agent_user_id, call_record_id FROM wrapup_records WHERE tenant_id = $1")
                .bind(t as i64)
                .fetch_all(&db.pool)
                .await
                .expect("wrap-up");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].try_get::<String, _>("result").expect("r"), "no_entry");
        assert_eq!(w[0].try_get::<i64, _>("saved").expect("s"), 0);

        // Saving with "pause" applies the state after saving.
        let after = AfterWrapUp::Pause { reason_id: PauseReasonId(reason) };
        cmd(&bus, t, ApiCommand::SaveWrapUp { agent_id: AgentId(1), call_id: CallId(100), after }).await;
        until("paused", || async { matches!(agent_state(&db, t, 1).await, Some(AgentState::Paused { .. })) }).await;

        // The customer of campaign 8 abandons: no wrap-up record.
        ev(&bus, t, ended(101, None)).await;
        until("abandoned", || async { feed.snapshot().campaigns.iter().any(|c| c.figures.today.abandoned == 1) }).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM wrapup_records WHERE tenant_id = $1", t).await, 1);

        // Every transition is stored: 2 x (login, leg up) + offer, bridged, customer_ended, wrap_up_saved.
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM agent_transitions WHERE tenant_id = $1", t).await,
            8,
            "{backend:?}"
        );

        // The wallboard saw it.
        let snap = feed.snapshot();
        let c7 = snap.campaigns.iter().find(|c| c.campaign_id == CampaignId(7)).expect("campaign 7");
        assert_eq!((c7.figures.today.answered, c7.figures.today.connected, c7.figures.today.abandoned), (1, 1, 0));
        let c8 = snap.campaigns.iter().find(|c| c.campaign_id == CampaignId(8)).expect("campaign 8");
        assert_eq!((c8.figures.today.answered, c8.figures.today.abandoned, c8.figures.waiting), (1, 1, 0));
        let a1 = snap.agents.iter().find(|a| a.agent_id == AgentId(1)).expect("agent 1");
        assert_eq!(a1.calls_today, 1);
        let stats = run.stop().await;
        assert_eq!(stats.matched, 1);
    }
}

#[tokio::test]
async fn never_double_booked_and_waiting_customers_are_matched_when_agents_free_up() {
    let (_url, db, t, _reason, _dir) = fixture(Backend::Sqlite).await;
    let bus = MemoryBus::new(BusConfig::default());
    let mut out = Out::new(&bus, t).await;
    let run = Running::start(&bus, &db, t, Arc::new(Feed::default())).await;
    login_ready(&bus, &db, t, &[1, 2, 3], 7, None).await;
    for call in 0..10 {
        placed(&db, t, 1000 + call, 7).await;
        ev(&bus, t, answered(1000 + call, 7)).await;
    }
    // Each customer is bridged to exactly one agent, each agent holds one customer at a time.
    let mut held: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut done = 0;
    while done < 10 {
        let e = out.next(|e| matches!(e, Event::Command(Command::Bridge { .. }))).await;
        let Event::Command(Command::Bridge { agent_id, call_id }) = e else { unreachable!("filtered") };
        assert!(held.insert(agent_id.0, call_id.0).is_none(), "agent {agent_id:?} offered a second customer");
        ev(&bus, t, ShardEvent::Bridged { call_id, agent_id }).await;
        ev(&bus, t, ended(call_id.0, Some(agent_id.0))).await;
        held.remove(&agent_id.0);
        done += 1;
    }
    until("a wrap-up record per call", || async {
        count(&db, "SELECT COUNT(*) FROM wrapup_records WHERE tenant_id = $1 AND saved = 0", t).await == 10
    })
    .await;
    let offers = count(&db, "SELECT COUNT(*) FROM agent_transitions WHERE tenant_id = $1 AND cause = 'offer'", t).await;
    assert_eq!(offers, 10);
    run.stop().await;
}

#[tokio::test]
async fn restart_rebuilds_from_storage_and_skips_what_it_applied() {
    let (_url, db, t, reason, _dir) = fixture(Backend::Sqlite).await;
    let bus = MemoryBus::new(BusConfig::default());
    let run = Running::start(&bus, &db, t, Arc::new(Feed::default())).await;
    login_ready(&bus, &db, t, &[1, 2], 7, None).await;
    ev(&bus, t, answered(5, 7)).await;
    until("offered", || async { agent_state(&db, t, 1).await == Some(AgentState::Ringing) }).await;
    run.stop().await;

    // While the service is down: one message stored twice (a retried publish), then new work.
    let dup =
        Envelope::new(t, 0, &ApiCommand::Pause { agent_id: AgentId(2), reason_id: PauseReasonId(reason) }).expect("e");
    bus.publish(&streams::control_commands(t), &dup).await.expect("publish");
    bus.publish(&streams::control_commands(t), &dup).await.expect("publish again");
    let run = Running::start(&bus, &db, t, Arc::new(Feed::default())).await;
    until("paused", || async { matches!(agent_state(&db, t, 2).await, Some(AgentState::Paused { .. })) }).await;
    // The restored reservation still holds: the bridge lands on agent 1.
    ev(&bus, t, ShardEvent::Bridged { call_id: CallId(5), agent_id: AgentId(1) }).await;
    until("talking", || async { agent_state(&db, t, 1).await == Some(AgentState::Talking) }).await;
    let stats = run.stop().await;
    assert_eq!(stats.duplicates, 1);
    // login x2, leg up x2, offer, pause (once), bridged.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM agent_transitions WHERE tenant_id = $1", t).await, 7);
}

#[tokio::test]
async fn match_latency_over_the_memory_bus() {
    let (_url, db, t, _reason, _dir) = fixture(Backend::Sqlite).await;
    let bus = MemoryBus::new(BusConfig::default());
    let mut out = Out::new(&bus, t).await;
    let run = Running::start(&bus, &db, t, Arc::new(Feed::default())).await;
    login_ready(&bus, &db, t, &[1], 7, None).await;
    let mut lat = Vec::new();
    for call in 0..100u64 {
        let t0 = Instant::now();
        ev(&bus, t, answered(call + 1, 7)).await;
        let e = out.next(|e| matches!(e, Event::Command(Command::Bridge { .. }))).await;
        lat.push(t0.elapsed());
        let Event::Command(Command::Bridge { agent_id, call_id }) = e else { unreachable!("filtered") };
        ev(&bus, t, ShardEvent::Bridged { call_id, agent_id }).await;
        ev(&bus, t, ended(call_id.0, Some(agent_id.0))).await;
        until("ready again", || async { agent_state(&db, t, 1).await == Some(AgentState::Ready) }).await;
    }
    lat.sort();
    let p50 = lat[lat.len() / 2];
    let p99 = lat[lat.len() * 99 / 100];
    eprintln!(
        "match latency (customer_answered published -> bridge read), memory bus + SQLite: p50 {p50:?} p99 {p99:?}"
    );
    assert!(p99 < Duration::from_millis(500), "p99 {p99:?}");
    run.stop().await;
}

#[tokio::test]
async fn wallboard_feed_resumes_after_last_id_and_skips_a_slow_client_to_a_snapshot() {
    let feed = Feed::new(wallboard::FeedLimits { replay: 10, per_client: 8 });
    let mut wb = wallboard::Wallboard::new();
    for i in 0..10 {
        wb.set_agent(AgentId(i), AgentState::Ready, i, Some(CampaignId(1)), None);
        feed.publish(i, wb.take_changes(i));
    }
    // 10 x (agent tile, campaign tile, tenant tile).
    assert_eq!(feed.seq(), 30);
    let sub = feed.subscribe(Some(25));
    let Start::Replay(changes) = sub.start else { panic!("expected a replay") };
    assert_eq!(changes.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![26, 27, 28, 29, 30]);
    // Unknown (future) or absent id: a snapshot.
    assert!(matches!(feed.subscribe(Some(999)).start, Start::Snapshot(_)));
    let Start::Snapshot(s) = feed.subscribe(None).start else { panic!("expected a snapshot") };
    assert_eq!((s.seq, s.agents.len(), s.campaigns.len()), (30, 10, 1));
    assert_eq!(s.tenant.as_ref().map(|t| t.figures.agents_by_state.get("ready").copied()), Some(Some(10)));
    // A subscriber that does not read lags past its bound and is told so (the SSE handler then
    // sends a snapshot).
    let mut slow = feed.subscribe(None).rx;
    for i in 0..20 {
        wb.set_agent(
            AgentId(0),
            AgentState::Paused { reason_id: PauseReasonId(1) },
            100 + i,
            Some(CampaignId(1)),
            None,
        );
        feed.publish(100 + i, wb.take_changes(100 + i));
    }
    assert!(matches!(slow.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))));
    // Too old for the ring: a snapshot.
    assert!(matches!(feed.subscribe(Some(1)).start, Start::Snapshot(_)));
    let last = feed.snapshot();
    let a0 = last.agents.iter().find(|a| a.agent_id == AgentId(0)).expect("agent 0");
    assert!(matches!(a0.state, AgentState::Paused { .. }));
    let _ = Tile::Agent(a0.clone());
}

/// Control on leases: a commit made under a tenant's control lease is refused once another control
/// took the lease (a new token), and nothing of it is written; the new holder's commits go in.
#[tokio::test]
async fn a_stale_owners_commit_is_refused_once_its_control_lease_was_taken() {
    use control::service::persist::{commit, BatchWrites, PersistError};
    use store::leases::{self, Kind};
    for backend in backends() {
        let (_url, db, tenant, _reason, _dir) = fixture(backend).await;
        let t = tenant as i64;
        let now = store::now_ms();
        assert_eq!(leases::acquire(&db, Kind::Control, t, 0, "control-a", now, 2_000).await.expect("a"), Some(1));
        let a = ("control-a".to_string(), 1i64);
        let ids: Vec<bus::MessageId> = (0..3).map(|_| bus::MessageId::new()).collect();
        let batch = |i: usize| BatchWrites { applied: vec![ids[i]], ..BatchWrites::default() };
        commit(&db, tenant, now as u64, &batch(0), Some(&a)).await.expect("the holder commits");
        // Control A is cut off; its lease runs out and B takes it.
        assert_eq!(leases::acquire(&db, Kind::Control, t, 0, "control-b", now + 1_000, 2_000).await.expect("b"), None);
        let b_token = leases::acquire(&db, Kind::Control, t, 0, "control-b", now + 2_500, 2_000).await.expect("b");
        assert_eq!(b_token, Some(2));
        let r = commit(&db, tenant, now as u64, &batch(1), Some(&a)).await;
        assert!(matches!(r, Err(PersistError::Fenced)), "{r:?}");
        let b = ("control-b".to_string(), 2i64);
        commit(&db, tenant, now as u64, &batch(2), Some(&b)).await.expect("B commits");
        let applied: Vec<String> =
            sqlx::query("SELECT message_id FROM control_applied WHERE tenant_id = $1 ORDER BY message_id")
                .bind(t)
                .fetch_all(&db.pool)
                .await
                .expect("applied")
                .into_iter()
                .map(|r| r.try_get("message_id").expect("id"))
                .collect();
        assert_eq!(applied.len(), 2, "the stale commit wrote nothing: {applied:?}");
        assert!(!applied.contains(&ids[1].to_string()), "{applied:?}");
    }
}
