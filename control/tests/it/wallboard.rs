//! The wallboard's figures through the real control service (per tenant, campaign and dialing group:
//! agents by state with the longest time in each, waiting and talking customers, answered /
//! connected / abandoned today, over 24 h and 30 days, calls today, the dialer's figures), rebuilt
//! from storage on restart; and the mirror that carries the feed to API processes (over Redis with
//! separate connections, and its gap handling step by step).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{AnyBus, BusConfig, MemoryBus, RedisBus, RedisBusConfig};
use control::service::{Service, ServiceConfig, ServiceStats};
use store::sqlx;
use store::{Backend, Db};
use wallboard::mirror::{self, MirrorWriter};
use wallboard::{Feed, Figures, Push, Snapshot, Tile, Wallboard};
use wire::agent::{AgentId, AgentState, CallId, PauseReasonId};
use wire::{ApiCommand, CampaignId, DialingGroupId, Party, ShardEvent, SipOutcome, SystemResult};

use crate::service::{answered, backends, config, ev, fixture, until};
use bus::testing::redis_url;

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<ServiceStats, control::service::ServiceError>>,
}

async fn start(bus: &AnyBus, db: &Db, tenant: u64, feed: Arc<Feed>, mirror: bool) -> Running {
    let mut cfg = ServiceConfig::new(tenant, "wb");
    cfg.block_ms = 50;
    cfg.mirror_wallboard = mirror;
    let svc = Service::open(bus.clone(), db.clone(), cfg, feed).await.expect("open");
    let readers = [bus.another().await.expect("bus"), bus.another().await.expect("bus")];
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(svc.run(readers, async move {
        let _ = rx.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("ran");
    }
}

async fn cmd(bus: &AnyBus, t: u64, c: ApiCommand) {
    crate::service::cmd(bus, t, c).await;
}

fn login(agent: u64, campaign: u64, group: u64) -> ApiCommand {
    ApiCommand::StartCallJob {
        agent_id: AgentId(agent),
        campaign_id: CampaignId(campaign),
        config: config(None),
        call_job_id: Some(wire::CallJobId(campaign * 10)),
        dialing_group_id: Some(DialingGroupId(group)),
    }
}

fn ended(call: u64, agent: Option<u64>, status: u16) -> ShardEvent {
    ShardEvent::CallEnded {
        call_id: CallId(call),
        agent_id: agent.map(AgentId),
        outcome: SipOutcome { status, reason: "x".into(), ended_by: Party::Customer, talk_ms: 1_000 },
        result: match (agent, status) {
            (Some(_), _) => SystemResult::NoEntry,
            (None, 200) => SystemResult::Abandoned,
            (None, 486) => SystemResult::Busy,
            (None, 408 | 480) => SystemResult::Timeout,
            _ => SystemResult::Error,
        },
    }
}

fn campaign(s: &Snapshot, id: u64) -> Option<Figures> {
    s.campaigns.iter().find(|c| c.campaign_id == CampaignId(id)).map(|c| c.figures.clone())
}

fn group(s: &Snapshot, id: u64) -> Option<Figures> {
    s.groups.iter().find(|g| g.dialing_group_id == DialingGroupId(id)).map(|g| g.figures.clone())
}

fn tenant(s: &Snapshot) -> Figures {
    s.tenant.clone().expect("a tenant tile").figures
}

/// Waits until the feed's snapshot satisfies `f`.
async fn board(feed: &Feed, what: &str, f: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = feed.snapshot();
        if f(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "the wallboard never showed {what}: {s:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn by_state(f: &Figures, state: &str) -> u64 {
    f.agents_by_state.get(state).copied().unwrap_or(0)
}

/// Call records of earlier days (answered 3 and 2 days ago: one connected, one abandoned).
async fn history(db: &Db, t: u64, campaign: u64) {
    let now = store::now_ms();
    for (call, days, bridged) in [(900_001i64, 3i64, true), (900_002, 2, false)] {
        let at = now - days * 86_400_000;
        sqlx::query(
            "INSERT INTO call_records (tenant_id, dialer_call_id, campaign_id, tel, started_at, answered_at, bridged_at, ended_at, result)
             VALUES ($1, $2, $3, '0311112222', $4, $5, $6, $7, 'busy')",
        )
        .bind(t as i64)
        .bind(call)
        .bind(campaign as i64)
        .bind(at)
        .bind(at)
        .bind(bridged.then_some(at + 1_000))
        .bind(at + 60_000)
        .execute(&db.pool)
        .await
        .expect("history");
    }
}

#[tokio::test]
async fn figures_per_tenant_campaign_and_group_through_the_service() {
    for backend in backends() {
        let (_url, db, t, reason, _dir) = fixture(backend).await;
        history(&db, t, 7).await;
        let bus = AnyBus::Memory(MemoryBus::new(BusConfig::default()));
        let feed = Arc::new(Feed::default());
        let run = start(&bus, &db, t, feed.clone(), false).await;
        // Agents 1 and 2 work campaign 7 for group 70, agent 3 campaign 8 for group 80.
        for (a, c, g) in [(1, 7, 70), (2, 7, 70), (3, 8, 80)] {
            cmd(&bus, t, login(a, c, g)).await;
        }
        for a in [3, 1, 2] {
            ev(&bus, t, ShardEvent::AgentLegUp { agent_id: AgentId(a), shard: 0 }).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let s = board(&feed, "three ready", |s| by_state(&tenant(s), "ready") == 3).await;
        // Agents by state, and the longest time in each: agent 3 has been ready longest.
        let a3 = s.agents.iter().find(|a| a.agent_id == AgentId(3)).expect("agent 3").since_ms;
        assert_eq!(tenant(&s).longest_in_state_since_ms.get("ready"), Some(&a3));
        assert_eq!((tenant(&s).agents_total, tenant(&s).agents_online), (3, 3));
        assert_eq!(by_state(&group(&s, 70).expect("group 70"), "ready"), 2);
        assert_eq!(by_state(&group(&s, 80).expect("group 80"), "ready"), 1);
        cmd(&bus, t, ApiCommand::Pause { agent_id: AgentId(2), reason_id: PauseReasonId(reason) }).await;
        board(&feed, "agent 2 paused", |s| campaign(s, 7).is_some_and(|c| by_state(&c, "paused") == 1)).await;

        // Customer 100 answers: offered to agent 1, bridged: one talking call.
        crate::service::placed(&db, t, 100, 7).await;
        crate::service::placed(&db, t, 101, 7).await;
        ev(&bus, t, answered(100, 7)).await;
        until("offered", || async { crate::service::agent_state(&db, t, 1).await == Some(AgentState::Ringing) }).await;
        ev(&bus, t, ShardEvent::Bridged { call_id: CallId(100), agent_id: AgentId(1) }).await;
        let s = board(&feed, "a talking call", |s| campaign(s, 7).is_some_and(|c| c.talking_calls == 1)).await;
        assert_eq!(group(&s, 70).expect("group").talking_calls, 1);
        // Customer 101 answers with nobody ready on campaign 7: waiting (待ち呼), then abandons.
        let before = store::now_ms() as u64;
        ev(&bus, t, answered(101, 7)).await;
        let s = board(&feed, "a waiting customer", |s| campaign(s, 7).is_some_and(|c| c.waiting == 1)).await;
        let c7 = campaign(&s, 7).expect("campaign 7");
        assert!(c7.longest_waiting_since_ms.is_some_and(|w| w >= before), "{c7:?}");
        assert_eq!((group(&s, 70).expect("group").waiting, tenant(&s).waiting), (1, 1));
        ev(&bus, t, ended(101, None, 200)).await;
        ev(&bus, t, ended(100, Some(1), 200)).await;
        // The dialer's figures.
        ev(
            &bus,
            t,
            ShardEvent::DialerStatus {
                campaign_id: CampaignId(7),
                dials_in_flight: 4,
                remaining_leads: 100,
                dial_level_milli: 1_500,
                predicted_abandon_ppm: 20_000,
            },
        )
        .await;
        let s = board(&feed, "the dialer's figures", |s| {
            campaign(s, 7).is_some_and(|c| c.dials_in_flight == Some(4) && c.calls_today == 1)
        })
        .await;
        let c7 = campaign(&s, 7).expect("campaign 7");
        assert_eq!((c7.today.answered, c7.today.connected, c7.today.abandoned), (2, 1, 1), "{backend:?}");
        assert_eq!((c7.last_24h.answer_rate, c7.last_24h.abandon_rate), (0.5, 0.5));
        // 30 days: today's two and the two of earlier days.
        assert_eq!((c7.last_30d.answered, c7.last_30d.connected, c7.last_30d.abandoned), (4, 2, 2), "{c7:?}");
        assert_eq!((c7.waiting, c7.talking_calls), (0, 0));
        assert_eq!((by_state(&c7, "ready"), by_state(&c7, "paused"), c7.agents_total), (1, 1, 2));
        // Dial level: dials in flight per active agent (agent 1; agent 2 is paused), not the pacer's.
        assert_eq!((c7.dial_level, c7.predicted_abandon_rate, c7.remaining_leads), (Some(4.0), Some(0.02), Some(100)));
        assert!(!c7.series_5min.is_empty() && c7.series_5min.iter().map(|(_, n)| n.answered).sum::<u64>() == 2);
        // The group: its customers, its agents, the same dial level. Calls today are conversations
        // that ended (the abandoned customer is not one).
        let g70 = group(&s, 70).expect("group 70");
        assert_eq!((g70.today.answered, g70.today.abandoned, g70.calls_today), (2, 1, 1));
        assert_eq!((g70.dials_in_flight, g70.dial_level), (Some(4), Some(4.0)));
        let g80 = group(&s, 80).expect("group 80");
        assert_eq!((g80.today.answered, g80.dials_in_flight, by_state(&g80, "ready")), (0, None, 1));
        // The tenant: everything.
        let all = tenant(&s);
        assert_eq!((all.today.answered, all.last_30d.answered, all.agents_total), (2, 4, 3));
        assert_eq!((all.dials_in_flight, all.dial_level), (Some(4), Some(2.0)));
        // The agent: calls today and the last call's length.
        let a1 = s.agents.iter().find(|a| a.agent_id == AgentId(1)).expect("agent 1");
        assert_eq!((a1.calls_today, a1.dialing_group_id), (1, Some(DialingGroupId(70))));
        assert!(a1.last_call_ms.is_some());
        run.stop().await;

        // Restarted: the counts come back from the call records (the dialer wrote their ends).
        let now = store::now_ms();
        let end = |call: i64, result: &'static str| store::dialing::CallResult {
            call_id: call,
            result,
            sip_status: 200,
            answered_at: Some(now - 5_000),
            ended_at: now,
        };
        store::dialing::end_calls(&db, t as i64, &[end(100, "no_entry"), end(101, "abandoned")]).await.expect("ends");
        let feed = Arc::new(Feed::default());
        let run = start(&bus, &db, t, feed.clone(), false).await;
        let s = board(&feed, "the restored board", |s| campaign(s, 7).is_some()).await;
        let c7 = campaign(&s, 7).expect("campaign 7");
        assert_eq!((c7.today.answered, c7.today.connected, c7.today.abandoned), (2, 1, 1), "{backend:?} {c7:?}");
        assert_eq!((c7.last_30d.answered, c7.calls_today), (4, 1));
        assert_eq!((by_state(&c7, "ready"), by_state(&c7, "paused")), (1, 1));
        assert_eq!(group(&s, 70).expect("group 70").today.answered, 2);
        let a1 = s.agents.iter().find(|a| a.agent_id == AgentId(1)).expect("agent 1");
        assert_eq!(a1.calls_today, 1);
        run.stop().await;
    }
}

#[test]
fn dialer_figures_go_stale_without_reports() {
    let mut wb = Wallboard::new();
    wb.set_agent(AgentId(1), AgentState::Ready, 0, Some(CampaignId(7)), Some(DialingGroupId(70)));
    wb.dialer_status(1_000, CampaignId(7), 3, 50, 0.01);
    let tiles = wb.take_changes(1_000);
    let c = tiles.iter().find_map(|t| match t {
        Tile::Campaign(c) => Some(c.figures.clone()),
        _ => None,
    });
    assert_eq!(c.map(|c| c.dials_in_flight), Some(Some(3)));
    wb.expire(5_999);
    assert!(wb.take_changes(5_999).is_empty(), "still fresh");
    wb.expire(6_000);
    let tiles = wb.take_changes(6_000);
    let c = tiles
        .iter()
        .find_map(|t| match t {
            Tile::Campaign(c) => Some(c.figures.clone()),
            _ => None,
        })
        .expect("the campaign tile is sent again");
    assert_eq!((c.dials_in_flight, c.dial_level, c.remaining_leads), (None, None, None));
    assert!(tiles.iter().any(|t| matches!(t, Tile::Group(g) if g.figures.dials_in_flight.is_none())));
}

#[tokio::test]
async fn the_mirror_resyncs_from_the_snapshot_after_a_gap() {
    let bus = MemoryBus::new(BusConfig::default());
    let t = 42;
    let control_feed = Feed::default();
    let mut wb = Wallboard::new();
    let mut writer = MirrorWriter::new(t);
    let step = |wb: &mut Wallboard, agent: u64, at: u64| {
        wb.set_agent(AgentId(agent), AgentState::Ready, at, Some(CampaignId(1)), None);
        control_feed.publish(at, wb.take_changes(at))
    };
    let changes = step(&mut wb, 1, 1);
    writer.publish(&bus, 1, &changes).await.expect("publish");
    writer.write_snapshot(&bus, &control_feed).await.expect("snapshot");
    // The follower starts from the snapshot.
    let api_feed = Arc::new(Feed::starting_at(Default::default(), 999_999));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(mirror::follow(bus.clone(), t, api_feed.clone(), stop_rx));
    let wait_seq = |want: u64| {
        let f = api_feed.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while f.seq() != want {
                assert!(Instant::now() < deadline, "follower at {} not {want}", f.seq());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_seq(control_feed.seq()).await;
    let mut rx = api_feed.subscribe(None).rx;
    // Live changes.
    let changes = step(&mut wb, 2, 2);
    writer.publish(&bus, 2, &changes).await.expect("publish");
    wait_seq(control_feed.seq()).await;
    // Changes that never reach the stream (trimmed before the follower read them), then the
    // snapshot, then a change: the follower sees the gap and reloads the snapshot.
    let _lost = step(&mut wb, 3, 3);
    writer.write_snapshot(&bus, &control_feed).await.expect("snapshot");
    let changes = step(&mut wb, 4, 4);
    writer.publish(&bus, 4, &changes).await.expect("publish");
    wait_seq(control_feed.seq()).await;
    let follower_board = api_feed.snapshot();
    assert_eq!(follower_board, control_feed.snapshot(), "the follower has the whole board");
    assert!(follower_board.agents.iter().any(|a| a.agent_id == AgentId(3)), "the lost change came with the snapshot");
    let mut saw_reset = false;
    while let Ok(p) = rx.try_recv() {
        saw_reset |= p == Push::Reset;
    }
    assert!(saw_reset, "live subscribers were told to resync");
    let _ = stop_tx.send(true);
    let stats = follower.await.expect("follower");
    assert_eq!(stats.snapshots, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_crosses_processes_over_redis() {
    let mut probe = RedisBusConfig::new(redis_url());
    probe.retry_max_attempts = 2;
    if let Err(e) = RedisBus::connect(probe).await {
        panic!("no Redis at {} (scripts/services.sh starts one): {e}", redis_url());
    }
    let (_url, db, t, _reason, _dir) = fixture(Backend::Sqlite).await;
    let prefix = format!("test:wb:{}:", ulid::Ulid::new());
    let connect = || {
        let mut c = RedisBusConfig::new(redis_url());
        c.prefix = prefix.clone();
        async move { AnyBus::Redis(RedisBus::connect(c).await.expect("redis")) }
    };
    // "Control": the service with its own connections and its own feed, mirroring.
    let bus = connect().await;
    let control_feed = Arc::new(Feed::starting_at(Default::default(), store::now_ms() as u64 * 1000));
    let run = start(&bus, &db, t, control_feed.clone(), true).await;
    cmd(&bus, t, login(1, 7, 70)).await;
    board(&control_feed, "agent 1 ringing", |s| s.agents.iter().any(|a| a.state == AgentState::Ringing)).await;
    // "The API": a follower on a connection of its own, started after the changes: the snapshot
    // key (rewritten every second) brings them.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let api_feed = Arc::new(Feed::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(mirror::follow(connect().await, t, api_feed.clone(), stop_rx));
    board(&api_feed, "agent 1 ringing in the API", |s| s.agents.iter().any(|a| a.state == AgentState::Ringing)).await;
    let mut rx = api_feed.subscribe(None).rx;
    // An event to the API's feed: within a second.
    let mut lat = Vec::new();
    for i in 0..20u64 {
        let mut t0 = Instant::now();
        let want = if i % 2 == 0 { AgentState::Ready } else { AgentState::Offline };
        if i == 0 {
            ev(&bus, t, ShardEvent::AgentLegUp { agent_id: AgentId(1), shard: 0 }).await;
        } else if want == AgentState::Offline {
            cmd(&bus, t, ApiCommand::LogOff { agent_id: AgentId(1) }).await;
        } else {
            cmd(&bus, t, login(1, 7, 70)).await;
            // The command and the shard's event travel on two streams with no order between them:
            // the leg comes up once the agent is ringing, as the dialer would have it.
            loop {
                match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("ringing in time") {
                    Ok(Push::Change(c)) if matches!(&c.tile, Tile::Agent(a) if a.state == AgentState::Ringing) => break,
                    Ok(_) => {}
                    Err(e) => panic!("follower feed: {e}"),
                }
            }
            t0 = Instant::now();
            ev(&bus, t, ShardEvent::AgentLegUp { agent_id: AgentId(1), shard: 0 }).await;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a change in time") {
                Ok(Push::Change(c)) if matches!(&c.tile, Tile::Agent(a) if a.state == want) => break,
                Ok(_) => {}
                Err(e) => panic!("follower feed: {e}"),
            }
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    eprintln!("event -> control -> Redis -> follower feed: p50 {:?}, max {:?}", lat[lat.len() / 2], lat[lat.len() - 1]);
    assert!(lat[lat.len() - 1] < Duration::from_secs(1), "{lat:?}");
    board(&api_feed, "the same board", |s| s.seq == control_feed.seq() && s.agents == control_feed.snapshot().agents)
        .await;
    let _ = stop_tx.send(true);
    let stats = follower.await.expect("follower");
    assert!(stats.snapshots >= 1 && stats.changes > 0 && stats.errors == 0, "{stats:?}");
    run.stop().await;
    let client = redis::Client::open(redis_url()).expect("url");
    let mut c = client.get_multiplexed_async_connection().await.expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut c).await.unwrap_or_default();
    for k in keys {
        let _: Result<(), _> = redis::cmd("DEL").arg(k).query_async(&mut c).await;
    }
}
