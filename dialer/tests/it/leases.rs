//! Campaigns on leases across dialer hosts: the leases and their fencing tokens in SQL (both
//! backends), the placement core under virtual time, and two engines in one process on the real
//! Redis taking a campaign over from each other.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use dialer::placement::{Action, LeaseRow, Placement, PlacementConfig, View};
use store::dialing::{self, CallResult, Fence, NewCall};
use store::leases::{self, Kind};
use store::sqlx::{self, Row};

use tokio::sync::watch;

use crate::floor::{backends, until, Floor, FloorSpec};

fn dummy_carrier() -> std::net::SocketAddr {
    "127.0.0.1:9".parse().expect("address")
}

async fn lead_ids(floor: &Floor) -> Vec<(i64, String)> {
    sqlx::query("SELECT id, tel FROM leads WHERE tenant_id = $1 ORDER BY id")
        .bind(floor.tenant as i64)
        .fetch_all(&floor.db.pool)
        .await
        .expect("leads")
        .into_iter()
        .map(|r| (r.try_get("id").expect("id"), r.try_get("tel").expect("tel")))
        .collect()
}

fn call(floor: &Floor, lead: &(i64, String), caller_id: Option<&str>) -> NewCall {
    NewCall {
        campaign_id: floor.campaign,
        job_id: floor.job,
        lead: store::leads::Candidate { lead_id: lead.0, tel: lead.1.clone(), recall_id: None },
        caller_id: caller_id.map(str::to_string),
    }
}

fn result(call: i64) -> CallResult {
    CallResult { call_id: call, result: "busy", sip_status: 486, answered_at: None, ended_at: store::now_ms() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_lease_fences_its_old_holders_writes_and_leads_and_channels_hold_across_hosts() {
    for backend in backends() {
        let leads: Vec<String> = (0..6).map(|i| format!("0311110{i:03}")).collect();
        let spec = FloorSpec { leads, caller_id: Some(("0311112222", 1)), ..FloorSpec::default() };
        let floor = Floor::start(backend, &spec, dummy_carrier()).await;
        let (db, t, c) = (&floor.db, floor.tenant as i64, floor.campaign);
        let l = lead_ids(&floor).await;
        let now = store::now_ms();

        // One holder at a time; a renewal keeps it.
        assert_eq!(leases::acquire(db, Kind::Dialer, t, c, "host-a", now, 2_000).await.expect("a"), Some(1));
        assert_eq!(leases::acquire(db, Kind::Dialer, t, c, "host-b", now + 1_000, 2_000).await.expect("b"), None);
        assert!(leases::renew(db, Kind::Dialer, t, c, "host-a", 1, now + 1_500, 2_000).await.expect("renew"));
        assert_eq!(leases::acquire(db, Kind::Dialer, t, c, "host-b", now + 3_000, 2_000).await.expect("b"), None);

        // A's call, written under its token.
        let fence_a = Fence { campaign_id: c, holder: "host-a".into(), token: 1 };
        let ids = dialing::begin_calls(db, t, "host-a", now, &[call(&floor, &l[0], None)], &[], Some(&fence_a))
            .await
            .expect("a dials");
        let a_call = ids[0].expect("placed");
        // The lead is claimed: nobody places it again while it is in that call.
        let again = dialing::begin_calls(db, t, "host-x", now + 1, &[call(&floor, &l[0], None)], &[], None)
            .await
            .expect("no claim");
        assert_eq!(again, vec![None], "a lead in a call is claimed by nobody else");

        // A is cut off; its lease runs out and B takes it with a new token.
        let later = now + 4_000;
        assert_eq!(leases::acquire(db, Kind::Dialer, t, c, "host-b", later, 2_000).await.expect("take"), Some(2));
        assert!(!leases::renew(db, Kind::Dialer, t, c, "host-a", 1, later, 2_000).await.expect("renew"));
        // A's writes are refused: no call record, no result.
        let refused =
            dialing::begin_calls(db, t, "host-a", later, &[call(&floor, &l[1], None)], &[], Some(&fence_a)).await;
        assert!(matches!(refused, Err(store::StoreError::Conflict(_))), "{refused:?}");
        assert_eq!(
            dialing::end_calls_fenced(db, t, &[result(a_call)], "host-a").await.expect("fenced"),
            vec![a_call],
            "a stale holder's result is refused"
        );
        // B gives A's call its result (as an orphan), then A's late result changes nothing.
        let orphans = dialing::fail_campaign_orphans(db, t, c, 2, later).await.expect("orphans");
        assert_eq!(orphans, vec![a_call]);
        assert_eq!(dialing::end_calls_fenced(db, t, &[result(a_call)], "host-a").await.expect("fenced"), vec![a_call]);
        let r: String = sqlx::query("SELECT result FROM call_records WHERE dialer_call_id = $1")
            .bind(a_call)
            .fetch_one(&db.pool)
            .await
            .expect("record")
            .try_get("result")
            .expect("result");
        assert_eq!(r, "error");
        let lead_result: Option<String> = sqlx::query("SELECT last_result FROM leads WHERE id = $1")
            .bind(l[1].0)
            .fetch_one(&db.pool)
            .await
            .expect("lead")
            .try_get("last_result")
            .expect("r");
        assert_eq!(lead_result, None, "the refused prepare claimed nothing");

        // B's calls: the caller ID's limit (1) counts every host's pending calls.
        let fence_b = Fence { campaign_id: c, holder: "host-b".into(), token: 2 };
        let two = [call(&floor, &l[2], Some("0311112222")), call(&floor, &l[3], Some("0311112222"))];
        let ids = dialing::begin_calls(db, t, "host-b", later, &two, &[], Some(&fence_b)).await.expect("b dials");
        assert!(ids[0].is_some() && ids[1].is_none(), "one channel of the caller ID: {ids:?}");
        // Its result is written under its own lease.
        let b_call = ids[0].expect("placed");
        assert!(dialing::end_calls_fenced(db, t, &[result(b_call)], "host-b").await.expect("b result").is_empty());
        // The campaign's channel limit too.
        sqlx::query("UPDATE campaigns SET max_channels = 1 WHERE id = $1")
            .bind(c)
            .execute(&db.pool)
            .await
            .expect("limit");
        let two = [call(&floor, &l[4], None), call(&floor, &l[5], None)];
        let ids = dialing::begin_calls(db, t, "host-b", later, &two, &[], Some(&fence_b)).await.expect("b dials");
        assert!(ids[0].is_some() && ids[1].is_none(), "one channel of the campaign: {ids:?}");
        floor.stop().await;
    }
}

fn view(now_ms: i64, members: &[&str], leases: Vec<LeaseRow>, wanted: &[(u64, u64)]) -> View {
    View {
        now_ms,
        members: members.iter().map(|m| m.to_string()).collect(),
        leases,
        wanted: wanted.iter().copied().collect(),
        busy: BTreeSet::new(),
    }
}

fn acquires(actions: &[Action]) -> Vec<(u64, u64)> {
    actions.iter().filter_map(|a| if let Action::Acquire { key } = a { Some(*key) } else { None }).collect()
}

#[test]
fn placement_deals_campaigns_over_the_hosts_alive_and_lets_go_when_its_time_runs_out() {
    let members = ["h1", "h2", "h3"];
    let wanted = [(1, 10), (1, 11), (1, 12), (2, 20)];
    let mut hosts: Vec<Placement> = members.iter().map(|m| Placement::new(PlacementConfig::new(*m))).collect();
    // No lease yet: each takes the campaigns dealt to it at once, and no campaign is taken twice.
    let v = view(1_000, &members, vec![], &wanted);
    let mut taken: HashMap<(u64, u64), usize> = HashMap::new();
    for (i, h) in hosts.iter_mut().enumerate() {
        for k in acquires(&h.plan(&v)) {
            *taken.entry(k).or_default() += 1;
            assert!(taken[&k] == 1, "{k:?} dealt twice");
            h.on_acquired(k, Some(1), Instant::now());
            let _ = i;
        }
    }
    assert_eq!(taken.len(), 4, "every campaign dealt: {taken:?}");
    let per_host: Vec<usize> = hosts.iter().map(|h| h.held().len()).collect();
    assert_eq!(per_host.iter().max(), Some(&2));
    assert_eq!(per_host.iter().min(), Some(&1), "spread over all three: {per_host:?}");

    // h1 dies: its campaigns' leases expire; the host dealt them takes them at once, the next a
    // round later.
    let t0 = Instant::now();
    let h1_held: Vec<(u64, u64)> = hosts[0].held().into_keys().collect();
    // h1's leases expired at 5 000; the others' hold on.
    let rows: Vec<LeaseRow> = hosts
        .iter()
        .zip(members)
        .flat_map(|(h, m)| {
            let expires_at_ms = if m == "h1" { 5_000 } else { 60_000 };
            h.held().into_keys().map(move |k| LeaseRow { key: k, holder: m.into(), token: 1, expires_at_ms })
        })
        .collect();
    let alive = ["h2", "h3"];
    let v = view(5_000, &alive, rows.clone(), &wanted);
    let first: Vec<Vec<(u64, u64)>> = hosts[1..].iter_mut().map(|h| acquires(&h.plan(&v))).collect();
    assert_eq!(first.iter().map(Vec::len).sum::<usize>(), h1_held.len(), "taken at once by one host each: {first:?}");
    // Had that host not taken them, the other does one round (500 ms) later.
    let v = view(5_499, &alive, rows.clone(), &wanted);
    let both: usize = hosts[1..].iter_mut().map(|h| acquires(&h.plan(&v)).len()).sum();
    assert_eq!(both, h1_held.len());
    let v = view(5_500, &alive, rows, &wanted);
    let both: usize = hosts[1..].iter_mut().map(|h| acquires(&h.plan(&v)).len()).sum();
    assert_eq!(both, 2 * h1_held.len(), "after a round, the next host tries too (the database picks one)");

    // A holder whose renewals go unanswered lets go at ttl on its own clock.
    let h = &mut hosts[1];
    let n = h.held().len();
    assert!(n > 0);
    assert!(h.expire(t0 + Duration::from_millis(1_900)).is_empty());
    assert_eq!(h.expire(t0 + Duration::from_millis(2_100)).len(), n);
    assert!(h.held().is_empty());

    // A renewal answered "taken" loses the campaign at once; a campaign no longer wanted is kept
    // two ttls (its last results are written under it), then given up.
    let mut p = Placement::new(PlacementConfig::new("h9"));
    p.on_acquired((1, 10), Some(3), Instant::now());
    p.on_acquired((1, 11), Some(4), Instant::now());
    assert!(p.on_renewed((1, 10), 3, false, Instant::now()));
    assert_eq!(p.held().len(), 1);
    let idle = |ms| view(ms, &["h9"], vec![], &[]);
    assert_eq!(p.plan(&idle(10_000)), vec![Action::Renew { key: (1, 11), token: 4 }]);
    assert_eq!(p.plan(&idle(13_999)), vec![Action::Renew { key: (1, 11), token: 4 }]);
    assert_eq!(p.plan(&idle(14_000)), vec![Action::Release { key: (1, 11), token: 4 }]);
}

/// Call records of the floor's tenant where `cond` holds (`$2` the instance, `$3` a time).
async fn calls_of(floor: &Floor, cond: &str, instance: &str, since: i64) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND {cond}");
    let q = sqlx::query(&sql).bind(floor.tenant as i64).bind(instance);
    let q = if sql.contains("$3") { q.bind(since) } else { q };
    q.fetch_one(&floor.db.pool).await.expect("count").try_get(0).expect("n")
}

async fn text(db: &store::Db, sql: &str, tenant: u64) -> Option<String> {
    sqlx::query(sql).bind(tenant as i64).fetch_optional(&db.pool).await.expect(sql).map(|r| r.try_get(0).expect("text"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_redis_hold_a_campaign_once_and_the_survivor_takes_it_over_within_5_s() {
    use sim::carrier::Behaviour;
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL names the real Redis these tests need");
    for backend in backends() {
        let (stop_tx, stop) = watch::channel(false);
        let answer = Behaviour::Answer { after_ms: 300, talk_ms: Some(2_000) };
        let mut rules = [answer; 10];
        rules[4] = Behaviour::Fail { status: 486, after_ms: 300 };
        rules[7] = Behaviour::Ring;
        let carrier = crate::engine::carrier(rules, &stop).await;
        let leads: Vec<String> = (0..400).map(|i| format!("0322{:06}", i)).collect();
        let spec = FloorSpec {
            agents: 2,
            leads,
            ring_timeout_s: 3,
            max_channels: 4,
            redis_url: Some(redis.clone()),
            placement: true,
            ..FloorSpec::default()
        };
        let mut floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let (b_stop_tx, b_stop) = watch::channel(false);
        let (b, _b_info, b_name) = floor.spawn_host("host-b", carrier.sip_addr, b_stop).await;
        let _phones = crate::engine::phones(&floor, Duration::from_millis(100), &stop).await;
        floor.log_in_agents(None).await;
        floor.start_job().await;
        // One holder; the agents' legs come up from it and it dials.
        let holder_sql = "SELECT holder FROM leases WHERE kind = 'dialer' AND tenant_id = $1";
        until("the campaign is held", Duration::from_secs(5), || async {
            text(&floor.db, holder_sql, floor.tenant).await.is_some()
        })
        .await;
        until("agents ready", Duration::from_secs(10), || async { floor.agents_in("ready").await == 2 }).await;
        let old = text(&floor.db, holder_sql, floor.tenant).await.expect("holder");
        until("calls placed by the holder", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'no_entry'").await >= 2
        })
        .await;
        let placed_by_other = calls_of(&floor, "dialer_instance <> $2", &old, 0).await;
        assert_eq!(placed_by_other, 0, "only the holder dials the campaign");

        // The holder dies (no lease given up, no result written).
        let (survivor, b) = if old == floor.instance {
            floor.kill_engine();
            (b_name.clone(), Some(b))
        } else {
            b.abort();
            let _ = b.await;
            (floor.instance.clone(), None)
        };
        let killed = Instant::now();
        let since = store::now_ms();
        until("the survivor dials the campaign again", Duration::from_secs(5), || async {
            calls_of(&floor, "dialer_instance = $2 AND started_at >= $3", &survivor, since).await > 0
        })
        .await;
        let took = killed.elapsed();
        assert!(took <= Duration::from_secs(5), "took {took:?}");
        assert_eq!(text(&floor.db, holder_sql, floor.tenant).await.as_deref(), Some(survivor.as_str()));
        // The dead host's calls got their results (as orphans); no lead is in two calls at once.
        let pending_of_dead = calls_of(&floor, "dialer_instance = $2 AND result = 'pending'", &old, 0).await;
        assert_eq!(pending_of_dead, 0, "every call of the dead host has a result");
        for _ in 0..20 {
            let twice = floor
                .scalar(
                    "SELECT COUNT(*) FROM (SELECT lead_id FROM call_records WHERE tenant_id = $1 AND result = 'pending'
                     GROUP BY lead_id HAVING COUNT(*) > 1) x",
                )
                .await;
            assert_eq!(twice, 0, "a lead in two calls at once");
            let busy =
                floor.scalar("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'pending'").await;
            assert!(busy <= 4, "the campaign's 4 channels exceeded: {busy}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The survivor's agents: 未確認 until their legs were set up again from it, then back.
        until("agents ready on the survivor", Duration::from_secs(10), || async {
            floor.agents_in("ready").await + floor.agents_in("talking").await + floor.agents_in("wrap_up").await == 2
        })
        .await;
        let back: i64 = sqlx::query(
            "SELECT COUNT(*) FROM agent_transitions WHERE tenant_id = $1 AND at >= $2
               AND from_state = 'unknown' AND to_state = 'ready' AND cause = 'agent_leg_up'",
        )
        .bind(floor.tenant as i64)
        .bind(since)
        .fetch_one(&floor.db.pool)
        .await
        .expect("transitions")
        .try_get(0)
        .expect("n");
        assert_eq!(back, 2, "each agent 未確認 while its leg moved, then ready");
        let _ = b_stop_tx.send(true);
        if let Some(b) = b {
            let _ = b.await;
        }
        floor.stop().await;
        let _ = stop_tx.send(true);
    }
}

/// A dialer host gone for good leaves its consumer group on `agent:events` behind: another host
/// deletes it once the group has gone unread for the grace and no member of that host is alive;
/// the groups of the hosts alive stay, and so does the group of a host still a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_group_of_a_host_gone_for_good_is_deleted_after_the_grace() {
    use bus::Bus;
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL names the real Redis these tests need");
    for backend in backends() {
        let spec = FloorSpec { agents: 1, redis_url: Some(redis.clone()), placement: true, ..FloorSpec::default() };
        let floor = Floor::start(backend, &spec, dummy_carrier()).await;
        let stream = wire::streams::agent_events(floor.tenant);
        // What a host killed with SIGKILL leaves: its group, read by its consumer, and no member
        // row any more; and a host that reads nothing now but is still a member (its lease rows
        // renewed elsewhere, e.g. a host whose reader restarts).
        for (group, _) in [("dialer:gone", "gone"), ("dialer:quiet", "quiet")] {
            floor.bus.ensure_group(&stream, group).await.expect("group");
        }
        // An entry for them to read (Redis makes a group's consumer when it first gets an entry).
        let note = wire::DialerNotice::PhonesChanged;
        let env = bus::Envelope::new(floor.tenant, store::now_ms() as u64, &note).expect("envelope");
        floor.bus.publish(&stream, &env).await.expect("publish");
        for (group, consumer) in [("dialer:gone", "gone"), ("dialer:quiet", "quiet")] {
            let got = floor.bus.read(&stream, group, consumer, 10, 1).await.expect("read");
            assert_eq!(got.len(), 1, "{group} reads the entry");
        }
        leases::heartbeat(&floor.db, Kind::Dialer, "quiet:1:1", store::now_ms(), 60_000).await.expect("member");
        let (stop_tx, stop) = watch::channel(false);
        let (sweeper, _, _) = floor
            .spawn_host_with("sweeper", dummy_carrier(), stop, |cfg| {
                cfg.dead_group_grace = Duration::from_millis(1_000);
                cfg.dead_group_every = Duration::from_millis(200);
            })
            .await;
        let names = || async {
            let mut g: Vec<String> =
                floor.bus.groups(&stream).await.expect("groups").into_iter().map(|(n, _)| n).collect();
            g.sort();
            g
        };
        let own = format!("dialer:{}", floor.instance.split(':').next().expect("host"));
        let mut rest = vec!["dialer:quiet".to_string(), "dialer:sweeper".to_string(), own.clone()];
        rest.sort();
        let quiet_until = store::now_ms() + 55_000;
        until("the dead host's group is deleted", Duration::from_secs(10), || async { names().await == rest }).await;
        // (The grace itself, idle against the members, is the core's: engine::groups::tests.)
        // Sweeps go on; the live hosts' groups and the member's stay.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(store::now_ms() < quiet_until);
        assert_eq!(names().await, rest, "the groups of hosts alive are kept");
        let _ = stop_tx.send(true);
        let _ = sweeper.await;
        floor.stop().await;
    }
}
