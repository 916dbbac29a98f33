//! パーク保留 under virtual time: the agent's side (park: to wrap-up as after a transfer, the
//! customer waits; pick-up: any ready agent is offered the same call) and the tenant's park numbers
//! (lowest free, bounded, returned at the limit).

use control::agent::parking::{ParkError, Parking, FIRST_PARK_NUMBER, LAST_PARK_NUMBER, MAX_PARKED};
use control::agent::{AgentConfig, AgentError, AgentId, AgentState, CallId, Cause, Command, Input};
use control::service::{Service, ServiceConfig, ServiceError, ServiceStats};

use crate::agent::{acw, Sim};

const A: AgentId = AgentId(1);
const B: AgentId = AgentId(2);
const C1: CallId = CallId(100);
const C2: CallId = CallId(101);
const MIN: u64 = 60_000;

#[test]
fn a_parked_call_frees_its_agent_and_is_picked_up_by_a_ready_colleague() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, acw(30));
    s.ready(B, AgentConfig::default());
    // Only the agent's own call, only while talking or on hold.
    assert!(matches!(s.input(B, Input::Park { call_id: C1 }), Err(AgentError::NotAllowed { .. })));
    s.talking(A, C1);
    assert!(matches!(s.input(A, Input::Park { call_id: C2 }), Err(AgentError::WrongCall { .. })));
    s.input(A, Input::Park { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::WrapUp, "the agent wraps up its part");
    assert_eq!(s.last(A).cause, Cause::Parked);
    assert_eq!(s.last(A).call_id, Some(C1));
    assert!(s.commands().contains(&Command::ParkCustomer { agent_id: A, call_id: C1, hold_ms: 0 }));
    assert!(
        !s.commands().iter().any(|c| matches!(c, Command::ReleaseCustomer { .. })),
        "a parked customer is not put back in the queue"
    );
    assert_eq!(s.floor.call_owner(C1), None);
    // B picks it up: offered (its phone's leg bridged), then talking with the same call.
    s.input(B, Input::Offer { call_id: C1 }).unwrap();
    assert!(s.commands().contains(&Command::Bridge { agent_id: B, call_id: C1 }));
    s.input(B, Input::Bridged { call_id: C1 }).unwrap();
    assert_eq!((s.state(B), s.floor.call_owner(C1)), (AgentState::Talking, Some(B)));
    // A's wrap-up runs its course (30 s of ACW) untouched by B's call.
    s.advance(30_000);
    assert_eq!(s.state(A), AgentState::Ready);
    assert_eq!(s.state(B), AgentState::Talking);
}

#[test]
fn a_parked_call_may_be_parked_again_by_whoever_picked_it_up() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, AgentConfig::default());
    s.ready(B, AgentConfig::default());
    s.talking(A, C1);
    s.input(A, Input::Hold { call_id: C1 }).unwrap();
    s.input(A, Input::Park { call_id: C1 }).unwrap();
    // No ACW: straight back to ready.
    assert_eq!(s.state(A), AgentState::Ready);
    s.talking(B, C1);
    s.input(B, Input::Park { call_id: C1 }).unwrap();
    // A (the one who parked it first) takes it back.
    s.talking(A, C1);
    assert_eq!(s.floor.call_owner(C1), Some(A));
}

#[test]
fn park_numbers_are_the_lowest_free_and_bounded() {
    let mut p = Parking::new(5 * MIN);
    let t0 = 1_000_000;
    assert_eq!(p.park(t0, CallId(1), A), Ok(FIRST_PARK_NUMBER));
    assert_eq!(p.park(t0, CallId(2), A), Ok(9002));
    assert_eq!(p.park(t0, CallId(3), B), Ok(9003));
    assert_eq!(p.park(t0, CallId(2), B), Err(ParkError::AlreadyParked(9002)));
    // 9002 picked up: the next park takes it again.
    assert_eq!(p.take(9002).map(|x| x.call_id), Some(CallId(2)));
    assert_eq!(p.take(9002), None, "one pick-up only");
    assert_eq!(p.park(t0, CallId(4), B), Ok(9002));
    // The customer of 9001 hangs up.
    assert_eq!(p.take_call(CallId(1)).map(|(n, _)| n), Some(9001));
    assert_eq!(p.next_number(), Some(9001));
    for c in 10..(10 + MAX_PARKED as u64) {
        let _ = p.park(t0, CallId(c), A);
    }
    assert_eq!(p.len(), MAX_PARKED);
    assert_eq!(p.iter().map(|(n, _)| n).max(), Some(LAST_PARK_NUMBER));
    assert_eq!(p.park(t0, CallId(999), A), Err(ParkError::Full));
}

#[test]
fn parks_reach_the_limit_in_order_under_virtual_time() {
    let mut p = Parking::new(5 * MIN);
    let t0 = 1_000_000;
    assert_eq!(p.poll_timeout(), None);
    p.park(t0, C1, A).unwrap();
    p.park(t0 + MIN, C2, B).unwrap();
    assert_eq!(p.poll_timeout(), Some(t0 + 5 * MIN));
    assert!(p.due(t0 + 5 * MIN - 1).is_empty());
    let due = p.due(t0 + 5 * MIN);
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].0, due[0].1.call_id, due[0].1.by), (9001, C1, A));
    assert_eq!(p.poll_timeout(), Some(t0 + 6 * MIN));
    let due = p.due(t0 + 10 * MIN);
    assert_eq!(due.iter().map(|(n, x)| (*n, x.call_id)).collect::<Vec<_>>(), vec![(9002, C2)]);
    assert!(p.is_empty());
    // A restarted service keeps the parks it had (numbers out of range dropped).
    let mut q = Parking::new(5 * MIN);
    let kept = control::agent::parking::ParkedCall { call_id: C1, by: A, at_ms: t0 };
    q.restore([(9005, kept), (42, kept)]);
    assert_eq!(q.iter().map(|(n, _)| n).collect::<Vec<_>>(), vec![9005]);
    assert_eq!(q.park(t0, C2, B), Ok(9001));
}

/// The running control service with a short park limit, over the in-process bus.
async fn service_with_park_limit(
    bus: &bus::MemoryBus,
    db: &store::Db,
    tenant: u64,
    limit_ms: u64,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<ServiceStats, ServiceError>>) {
    let mut cfg = ServiceConfig::new(tenant, "c1");
    cfg.block_ms = 50;
    cfg.park_limit_ms = limit_ms;
    let feed = std::sync::Arc::new(wallboard::Feed::default());
    let svc = Service::open(bus.clone(), db.clone(), cfg, feed).await.expect("open");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let b = bus.clone();
    let task = tokio::spawn(svc.run([b.clone(), b], async move {
        let _ = rx.await;
    }));
    (stop, task)
}

/// The control service on SQLite and PostgreSQL: parks by the API and by `#72`, numbered from 9001;
/// a pick-up keyed on the phone; a park nobody took within the limit goes back (its agent is busy:
/// to the campaign's ready agent); every park written to `parked_calls`.
#[tokio::test]
async fn the_service_parks_picks_up_and_returns_a_park_at_the_limit() {
    use crate::service::{agent_state, answered, backends, cmd, count, ev, fixture, login_ready, placed, until};
    use wire::{ApiCommand, ShardEvent};
    for backend in backends() {
        let (_url, db, t, _reason, _dir) = fixture(backend).await;
        let bus = bus::MemoryBus::new(bus::BusConfig::default());
        let (stop, task) = service_with_park_limit(&bus, &db, t, 4_000).await;
        login_ready(&bus, &db, t, &[1, 2], 7, None).await;
        let talking = |agent: u64| {
            let db = db.clone();
            async move {
                until("talking", || async {
                    agent_state(&db, t, agent).await == Some(wire::agent::AgentState::Talking)
                })
                .await;
            }
        };
        for (call, agent) in [(100, 1), (101, 2)] {
            placed(&db, t, call, 7).await;
            ev(&bus, t, answered(call, 7)).await;
            until("offered", || async { agent_state(&db, t, agent).await == Some(wire::agent::AgentState::Ringing) })
                .await;
            ev(&bus, t, ShardEvent::Bridged { call_id: CallId(call), agent_id: AgentId(agent) }).await;
            talking(agent).await;
        }
        let open = "SELECT COUNT(*) FROM parked_calls WHERE tenant_id = $1 AND ended_at IS NULL";
        // Agent 1 parks from the desktop, agent 2 with #72: 9001 and 9002, both agents free.
        cmd(&bus, t, ApiCommand::Park { agent_id: AgentId(1), call_id: CallId(100) }).await;
        until("the first park", || async { count(&db, open, t).await == 1 }).await;
        ev(&bus, t, ShardEvent::ParkKeyed { agent_id: AgentId(2), call_id: CallId(101) }).await;
        until("two parks", || async { count(&db, open, t).await == 2 }).await;
        let numbered = "SELECT COUNT(*) FROM parked_calls WHERE tenant_id = $1 AND ((number = 9001 AND dialer_call_id = 100 AND parked_by = 1) OR (number = 9002 AND dialer_call_id = 101 AND parked_by = 2))";
        assert_eq!(count(&db, numbered, t).await, 2, "{backend:?}");
        for a in [1, 2] {
            until("ready after parking", || async {
                agent_state(&db, t, a).await == Some(wire::agent::AgentState::Ready)
            })
            .await;
        }
        // Agent 2 keys 9001 on its phone: offered call 100, then talking with it.
        ev(&bus, t, ShardEvent::PickUpKeyed { agent_id: AgentId(2), number: 9001 }).await;
        until("offered the parked call", || async {
            agent_state(&db, t, 2).await == Some(wire::agent::AgentState::Ringing)
        })
        .await;
        ev(&bus, t, ShardEvent::Bridged { call_id: CallId(100), agent_id: AgentId(2) }).await;
        talking(2).await;
        let picked = "SELECT COUNT(*) FROM parked_calls WHERE tenant_id = $1 AND number = 9001 AND outcome = 'picked_up' AND picked_by = 2";
        assert_eq!(count(&db, picked, t).await, 1);
        let record =
            "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND dialer_call_id = 100 AND agent_user_id = 2";
        assert_eq!(count(&db, record, t).await, 1, "the record follows the call");
        // 9002's limit passes; the agent who parked it (2) is talking: the campaign's ready agent
        // (1) is offered it.
        until("9002 returned", || async {
            count(
                &db,
                "SELECT COUNT(*) FROM parked_calls WHERE tenant_id = $1 AND number = 9002 AND outcome = 'returned'",
                t,
            )
            .await
                == 1
        })
        .await;
        until("agent 1 offered the returned call", || async {
            agent_state(&db, t, 1).await == Some(wire::agent::AgentState::Ringing)
        })
        .await;
        assert_eq!(count(&db, open, t).await, 0);
        let _ = stop.send(());
        task.await.expect("join").expect("service ran");
    }
}

/// A park outlives a restart of the control service: its number and limit are kept, and when the
/// limit passes while the agent who parked it is busy (paused here), the call goes to its
/// campaign's ready agent as it would have without the restart (the call's campaign is read back
/// with the park), on SQLite and PostgreSQL.
#[tokio::test]
async fn a_park_returned_after_a_restart_goes_to_its_campaign_when_its_agent_is_busy() {
    use crate::service::{agent_state, answered, backends, cmd, count, ev, fixture, login_ready, placed, until};
    use wire::agent::{AgentState, PauseReasonId};
    use wire::{ApiCommand, ShardEvent};
    for backend in backends() {
        let (_url, db, t, reason, _dir) = fixture(backend).await;
        let bus = bus::MemoryBus::new(bus::BusConfig::default());
        let (stop, task) = service_with_park_limit(&bus, &db, t, 5_000).await;
        login_ready(&bus, &db, t, &[1, 2], 7, None).await;
        placed(&db, t, 100, 7).await;
        ev(&bus, t, answered(100, 7)).await;
        until("offered", || async { agent_state(&db, t, 1).await == Some(AgentState::Ringing) }).await;
        ev(&bus, t, ShardEvent::Bridged { call_id: CallId(100), agent_id: AgentId(1) }).await;
        until("talking", || async { agent_state(&db, t, 1).await == Some(AgentState::Talking) }).await;
        cmd(&bus, t, ApiCommand::Park { agent_id: AgentId(1), call_id: CallId(100) }).await;
        let open = "SELECT COUNT(*) FROM parked_calls WHERE tenant_id = $1 AND ended_at IS NULL";
        until("parked", || async { count(&db, open, t).await == 1 }).await;
        until("ready after parking", || async { agent_state(&db, t, 1).await == Some(AgentState::Ready) }).await;
        // Control restarts; then the agent who parked the call takes a break.
        let _ = stop.send(());
        task.await.expect("join").expect("service ran");
        let (stop, task) = service_with_park_limit(&bus, &db, t, 5_000).await;
        cmd(&bus, t, ApiCommand::Pause { agent_id: AgentId(1), reason_id: PauseReasonId(reason) }).await;
        until("paused", || async { matches!(agent_state(&db, t, 1).await, Some(AgentState::Paused { .. })) }).await;
        // The limit passes: agent 1 is busy, so the campaign's ready agent (2) is offered the call.
        let returned = "SELECT COUNT(*) FROM parked_calls WHERE tenant_id = $1 AND outcome = 'returned'";
        until("returned at the limit", || async { count(&db, returned, t).await == 1 }).await;
        until("the campaign's ready agent offered it", || async {
            agent_state(&db, t, 2).await == Some(AgentState::Ringing)
        })
        .await;
        ev(&bus, t, ShardEvent::Bridged { call_id: CallId(100), agent_id: AgentId(2) }).await;
        until("talking with it", || async { agent_state(&db, t, 2).await == Some(AgentState::Talking) }).await;
        let record =
            "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND dialer_call_id = 100 AND agent_user_id = 2";
        assert_eq!(count(&db, record, t).await, 1, "{backend:?}: the record follows the call");
        let _ = stop.send(());
        task.await.expect("join").expect("service ran");
    }
}

/// A pick-up from the desktop (the API claims the park, then asks control) racing one keyed on a
/// phone, on SQLite and PostgreSQL: whichever control applies first wins, the other is refused and
/// its agent stays as it was; the park's row names the winner; and a keyed pick-up refused (its
/// agent busy) leaves a colleague's claim standing, so that colleague's pick-up still goes through.
#[tokio::test]
async fn a_keyed_pick_up_and_one_from_the_desktop_at_once_give_the_call_to_one_agent() {
    use crate::service::{agent_state, answered, backends, cmd, count, ended, ev, fixture, login_ready, placed, until};
    use store::parked::Claim;
    use wire::agent::{AgentState, PauseReasonId};
    use wire::{ApiCommand, ShardEvent};
    for backend in backends() {
        let (_url, db, t, reason, _dir) = fixture(backend).await;
        let bus = bus::MemoryBus::new(bus::BusConfig::default());
        let (stop, task) = service_with_park_limit(&bus, &db, t, 600_000).await;
        login_ready(&bus, &db, t, &[1, 2, 3, 4], 7, None).await;
        let state = |a: u64| {
            let db = db.clone();
            async move { agent_state(&db, t, a).await }
        };
        // Agents 1 and 2 talk with calls 100 and 101 and park them: 9001 and 9002.
        for (call, agent) in [(100, 1), (101, 2)] {
            placed(&db, t, call, 7).await;
            ev(&bus, t, answered(call, 7)).await;
            until("offered", || async { state(agent).await == Some(AgentState::Ringing) }).await;
            ev(&bus, t, ShardEvent::Bridged { call_id: CallId(call), agent_id: AgentId(agent) }).await;
            until("talking", || async { state(agent).await == Some(AgentState::Talking) }).await;
            cmd(&bus, t, ApiCommand::Park { agent_id: AgentId(agent), call_id: CallId(call) }).await;
            until("ready after parking", || async { state(agent).await == Some(AgentState::Ready) }).await;
        }
        let picked_by = |number: i64| {
            let db = db.clone();
            async move {
                let q = format!(
                    "SELECT COALESCE(picked_by, 0) FROM parked_calls WHERE tenant_id = $1 AND number = {number}"
                );
                count(&db, &q, t).await
            }
        };
        let ended_as = |number: i64, by: i64| {
            let db = db.clone();
            async move {
                let q = format!("SELECT COUNT(*) FROM parked_calls WHERE tenant_id = $1 AND number = {number} AND outcome = 'picked_up' AND picked_by = {by} AND ended_at IS NOT NULL");
                count(&db, &q, t).await == 1
            }
        };

        // 9001: agent 3 clicks it on the desktop (the API's claim wins in SQL), but agent 4's keys
        // reach control first: agent 4 is offered the call; agent 3's ask finds no park.
        let claim = store::parked::claim(&db, t as i64, 9001, 3, store::now_ms()).await.expect("claim");
        assert!(matches!(claim, Claim::Won { dialer_call_id: 100 }), "{backend:?}: {claim:?}");
        ev(&bus, t, ShardEvent::PickUpKeyed { agent_id: AgentId(4), number: 9001 }).await;
        until("agent 4 offered 9001", || async { state(4).await == Some(AgentState::Ringing) }).await;
        cmd(&bus, t, ApiCommand::PickUp { agent_id: AgentId(3), number: 9001 }).await;
        // (Control applies its commands in order: once the pause after it holds, the pick-up was
        // applied, and refused: a ringing agent would not have paused.)
        cmd(&bus, t, ApiCommand::Pause { agent_id: AgentId(3), reason_id: PauseReasonId(reason) }).await;
        until("agent 3 paused, not offered", || async { matches!(state(3).await, Some(AgentState::Paused { .. })) })
            .await;
        assert!(ended_as(9001, 4).await, "{backend:?}: 9001's row names agent 4, who took it");
        ev(&bus, t, ShardEvent::Bridged { call_id: CallId(100), agent_id: AgentId(4) }).await;
        until("agent 4 talking with 100", || async { state(4).await == Some(AgentState::Talking) }).await;
        cmd(&bus, t, ApiCommand::GoReady { agent_id: AgentId(3) }).await;
        until("agent 3 ready again", || async { state(3).await == Some(AgentState::Ready) }).await;

        // 9002: agent 1 claims it from the desktop; agent 4 (talking) keys it: refused, and agent
        // 1's claim stands (the park is not offered to a third clicker meanwhile).
        let claim = store::parked::claim(&db, t as i64, 9002, 1, store::now_ms()).await.expect("claim");
        assert!(matches!(claim, Claim::Won { dialer_call_id: 101 }), "{backend:?}: {claim:?}");
        ev(&bus, t, ShardEvent::PickUpKeyed { agent_id: AgentId(4), number: 9002 }).await;
        // (Shard events are applied in order too: once agent 4's call ended, its keys were.)
        ev(&bus, t, ended(100, Some(4))).await;
        until("agent 4 done with 100", || async { state(4).await != Some(AgentState::Talking) }).await;
        assert_eq!(picked_by(9002).await, 1, "{backend:?}: a refused keyed pick-up leaves agent 1's claim");
        let taken = store::parked::claim(&db, t as i64, 9002, 3, store::now_ms()).await.expect("claim");
        assert_eq!(taken, Claim::Taken, "{backend:?}");
        // Agent 1's ask reaches control now: offered; then agent 3 keys 9002 too late: refused.
        cmd(&bus, t, ApiCommand::PickUp { agent_id: AgentId(1), number: 9002 }).await;
        until("agent 1 offered 9002", || async { state(1).await == Some(AgentState::Ringing) }).await;
        ev(&bus, t, ShardEvent::PickUpKeyed { agent_id: AgentId(3), number: 9002 }).await;
        ev(&bus, t, ShardEvent::Bridged { call_id: CallId(101), agent_id: AgentId(1) }).await;
        until("agent 1 talking with 101", || async { state(1).await == Some(AgentState::Talking) }).await;
        assert_eq!(state(3).await, Some(AgentState::Ready), "{backend:?}: agent 3's late keys change nothing");
        assert!(ended_as(9002, 1).await, "{backend:?}: 9002's row names agent 1");
        let record = "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND ((dialer_call_id = 100 AND agent_user_id = 4) OR (dialer_call_id = 101 AND agent_user_id = 1))";
        assert_eq!(count(&db, record, t).await, 2, "{backend:?}: each record follows its call to the winner");
        let _ = stop.send(());
        let stats = task.await.expect("join").expect("service ran");
        assert_eq!(stats.refused, 3, "{backend:?}: the three losing asks were refused: {stats:?}");
    }
}
