//! Redis away for 30 s under a working floor: a real Redis of the test's own (its port, its
//! append-only file in a temporary directory) is stopped and started again while the engine places
//! calls. The calls in progress are not held up: they end with their results in SQL; the events for
//! control wait in the engine's publish queue and all reach control once Redis is back.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bus::{Bus, EntryId};
use sim::carrier::Behaviour;
use tokio::sync::watch;
use wire::{streams, ShardEvent};

use crate::engine::{carrier, phones};
use crate::floor::{scalar, until, Floor, FloorSpec};

/// A redis-server of the test's own, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path, port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        Redis { child, port }
    }

    async fn ready(&self) {
        until("redis-server answers", Duration::from_secs(10), || async {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        })
        .await;
    }

    /// SIGTERM: a clean shutdown (the append-only file is flushed), as a restart does.
    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_of_30_s_holds_up_no_call_and_loses_no_event() {
    let dir = tempfile::tempdir().expect("Redis directory");
    let port = free_port();
    let redis = Redis::start(dir.path(), port);
    redis.ready().await;
    let (stop_tx, stop) = watch::channel(false);
    // Customers answer after 400 ms and talk 1.5 s; one in ten is busy.
    let answer = Behaviour::Answer { after_ms: 400, talk_ms: Some(1_500) };
    let mut rules = [answer; 10];
    rules[4] = Behaviour::Fail { status: 486, after_ms: 300 };
    let carrier = carrier(rules, &stop).await;
    let leads: Vec<String> = (0..400).map(|i| format!("06{:08}", 3000 + i)).collect();
    let spec = FloorSpec {
        agents: 3,
        leads,
        agent_wait_timeout_s: 2,
        redis_url: Some(format!("redis://127.0.0.1:{port}")),
        ..FloorSpec::default()
    };
    let floor = Floor::start(store::Backend::Sqlite, &spec, carrier.sip_addr).await;
    let _phones = phones(&floor, Duration::from_millis(100), &stop).await;
    floor.log_in_agents(None).await;
    until("agents ready", Duration::from_secs(15), || async { floor.agents_in("ready").await == 3 }).await;
    floor.start_job().await;
    until("calls placed", Duration::from_secs(15), || async {
        floor.scalar("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result <> 'pending'").await >= 5
    })
    .await;

    // Redis goes away for 30 s.
    let outage_from = store::now_ms();
    redis.stop();
    let ended_before =
        floor.scalar("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND ended_at IS NOT NULL").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let ended_during =
        floor.scalar("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND ended_at IS NOT NULL").await
            - ended_before;
    // The engine went on: the calls it had placed ended with their results while Redis was away
    // (no agent takes a customer then: control cannot hear of them, so they are abandoned).
    assert!(ended_during > 0, "no call ended while Redis was away");
    let stuck = floor
        .scalar(&format!(
            "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND ended_at IS NULL AND started_at < {outage_from}"
        ))
        .await;
    assert_eq!(stuck, 0, "every call in progress when Redis went away has ended, with its result");

    // Redis is back, with what it had stored.
    let redis = Redis::start(dir.path(), port);
    redis.ready().await;
    let db = floor.db.clone();
    let bus = floor.bus.clone();
    let tenant = floor.tenant;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = floor.stop().await;
    let pending =
        scalar(&db, tenant, "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'pending'").await;
    assert_eq!(pending, 0, "every call record has its result: {stats:?}");
    let records = scalar(&db, tenant, "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1").await;
    assert_eq!(records as u64, stats.launched, "{stats:?}");

    // Every call's end reached the bus, those of the outage included: one call_ended per call.
    let stream = streams::shard_events(tenant);
    let mut after = EntryId { ms: 0, seq: 0 };
    let mut ended = std::collections::HashSet::new();
    loop {
        let batch = bus.read_after(&stream, after, 1_000, 0).await.expect("read the shard events");
        let Some((last, _)) = batch.last() else { break };
        after = *last;
        for (_, env) in batch {
            if let Ok(ShardEvent::CallEnded { call_id, .. }) = env.decode::<ShardEvent>() {
                ended.insert(call_id.0);
            }
        }
    }
    assert_eq!(ended.len() as u64, stats.ended, "call_ended events on the bus vs calls ended: {stats:?}");
    assert!(stats.ended as i64 >= ended_before + ended_during);
    let _ = stop_tx.send(true);
    drop(redis);
}
