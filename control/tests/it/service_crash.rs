//! kill -9 of the control service mid-stream, over a real Redis (`REDIS_URL`) and SQLite: the
//! restarted process resumes from its consumer-group position; every message is applied exactly
//! once (one transition each, one `control_applied` row each) and the agents end in the right state.
//! The service runs as its own process (`control-service`, the same `supervise` loop as
//! `kakeru control`), killed with SIGKILL.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bus::{BusConfig, RedisBus, RedisBusConfig};
use store::Backend;
use wire::agent::{AgentId, AgentState, PauseReasonId};
use wire::{streams, ApiCommand, CampaignId, ShardEvent};

use crate::service::{agent_state, cmd, config, count, ev, fixture, until};
use bus::testing::{cleanup, redis_bus, redis_url};

fn spawn(db_url: &str, tenant: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_control-service"))
        .env("DATABASE_URL", db_url)
        .env("REDIS_URL", redis_url())
        .env("KAKERU_TENANT", tenant.to_string())
        .env("KAKERU_CONTROL_CONSUMER", "crash-test")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn control-service")
}

fn kill9(child: &mut Child) {
    // SIGKILL: no shutdown path runs.
    child.kill().expect("kill -9");
    let _ = child.wait();
}

#[tokio::test]
async fn kill_9_mid_stream_loses_nothing_and_applies_nothing_twice() {
    let _probe = redis_bus(BusConfig::default()).await;
    let (url, db, t, reason, _dir) = fixture(Backend::Sqlite).await;
    let bus = RedisBus::connect(RedisBusConfig::new(redis_url())).await.expect("redis");
    let mut child = spawn(&url, t);
    const AGENTS: u64 = 20;
    const CYCLES: u64 = 50; // pause + go ready per cycle
    for a in 1..=AGENTS {
        cmd(
            &bus,
            t,
            ApiCommand::StartCallJob {
                agent_id: AgentId(a),
                campaign_id: CampaignId(1),
                config: config(None),
                call_job_id: None,
                dialing_group_id: None,
            },
        )
        .await;
    }
    let db2 = &db;
    until("logged in", || async move {
        count(db2, "SELECT COUNT(*) FROM control_agents WHERE tenant_id = $1", t).await == AGENTS as i64
    })
    .await;
    for a in 1..=AGENTS {
        ev(&bus, t, ShardEvent::AgentLegUp { agent_id: AgentId(a), shard: 0 }).await;
    }
    until("ready", || async move {
        count(db2, "SELECT COUNT(*) FROM agent_transitions WHERE tenant_id = $1", t).await == 2 * AGENTS as i64
    })
    .await;

    // Publish the cycles from a task while the service is killed and restarted twice.
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for _ in 0..CYCLES {
                for a in 1..=AGENTS {
                    cmd(&bus, t, ApiCommand::Pause { agent_id: AgentId(a), reason_id: PauseReasonId(reason) }).await;
                    cmd(&bus, t, ApiCommand::GoReady { agent_id: AgentId(a) }).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill9(&mut child);
        tokio::time::sleep(Duration::from_millis(100)).await;
        child = spawn(&url, t);
    }
    publisher.await.expect("publisher");
    let total_msgs = (AGENTS * 2 + AGENTS * CYCLES * 2) as i64;
    let started = Instant::now();
    until("everything applied", || async move {
        count(db2, "SELECT COUNT(*) FROM control_applied WHERE tenant_id = $1", t).await >= total_msgs
    })
    .await;
    eprintln!("drained {}s after the last publish", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill9(&mut child);

    // Exactly once: one applied row per message, one transition per message, none twice.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM control_applied WHERE tenant_id = $1", t).await, total_msgs);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM agent_transitions WHERE tenant_id = $1", t).await, total_msgs);
    let dup = count(
        &db,
        "SELECT COUNT(*) FROM (SELECT message_id FROM agent_transitions WHERE tenant_id = $1 GROUP BY message_id HAVING COUNT(*) > 1) d",
        t,
    )
    .await;
    assert_eq!(dup, 0);
    for a in 1..=AGENTS {
        assert_eq!(agent_state(&db, t, a).await, Some(AgentState::Ready), "agent {a}");
    }
    for s in [streams::control_commands(t), streams::shard_events(t), streams::agent_events(t)] {
        cleanup(&s).await;
    }
}
