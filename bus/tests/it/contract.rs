//! One contract suite, run against [`MemoryBus`] and [`bus::RedisBus`] (real Redis at `REDIS_URL`,
//! default redis://127.0.0.1:6379; each test uses its own stream names and deletes them after).

use std::collections::HashMap;
use std::time::Duration;

use bus::testing::{cleanup, redis_bus};
use bus::{
    Bus, BusConfig, BusError, Consumer, ConsumerConfig, DedupState, EntryId, Envelope, HandlerError, MemoryBus,
    MessageId,
};
use wire::{AgentId, ApiCommand};

pub fn stream(name: &str) -> String {
    format!("test:bus:{name}:{}", MessageId::new())
}

pub fn env(i: u64) -> Envelope {
    Envelope::new(7, 1_700_000_000_000 + i, &ApiCommand::Activity { agent_id: AgentId(i) }).expect("serializable")
}

/// Stand-in for a consumer's persisted state: counts applies per message id (the ids are stored
/// with the state, so they survive the consumer).
#[derive(Default, Debug)]
pub struct Store {
    pub applied: HashMap<MessageId, u32>,
}

impl DedupState for Store {
    fn is_applied(&self, id: &MessageId) -> bool {
        self.applied.contains_key(id)
    }
    fn mark_applied(&mut self, _id: MessageId) {}
}

impl Store {
    pub fn apply(&mut self, e: &Envelope) -> Result<(), HandlerError> {
        let cmd: ApiCommand = e.decode().map_err(|e| HandlerError::Permanent(e.to_string()))?;
        assert!(matches!(cmd, ApiCommand::Activity { .. }));
        *self.applied.entry(e.id).or_default() += 1;
        Ok(())
    }
}

fn cfg() -> BusConfig {
    BusConfig::default()
}

fn small() -> BusConfig {
    BusConfig { maxlen: 100, ..BusConfig::default() }
}

fn three_deliveries() -> BusConfig {
    BusConfig { max_deliveries: 3, ..BusConfig::default() }
}

macro_rules! contract {
    ($($name:ident => $cfg:expr;)*) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(MemoryBus::new($cfg), stream(stringify!($name))).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let bus = redis_bus($cfg).await;
                    let s = stream(stringify!($name));
                    super::$name(bus, s.clone()).await;
                    cleanup(&s).await;
                }
            )*
        }
    };
}

contract! {
    publish_read_ack => cfg();
    blocking_read_wakes_on_publish => cfg();
    redelivery_after_a_consumer_dies => cfg();
    dead_letter_after_n_failed_deliveries => three_deliveries();
    permanent_failure_is_dead_lettered_at_once => cfg();
    maxlen_bounds_the_stream => small();
    crash_mid_batch_loses_nothing_and_applies_once => cfg();
    republished_message_is_applied_once => cfg();
    bad_arguments_are_errors => cfg();
    publish_many_and_fan_out_reads => cfg();
    values_are_set_read_and_expire => cfg();
    lag_counts_entries_not_yet_delivered_to_the_group => cfg();
    groups_are_listed_with_their_idle_time_and_destroyed => cfg();
}

/// What the dialer hosts' sweep of dead consumer groups reads and does.
async fn groups_are_listed_with_their_idle_time_and_destroyed<B: Bus>(bus: B, s: String) {
    assert!(bus.groups(&s).await.unwrap().is_empty(), "no stream, no groups");
    bus.ensure_group(&s, "a").await.unwrap();
    bus.ensure_group(&s, "b").await.unwrap();
    let mut g = bus.groups(&s).await.unwrap();
    g.sort();
    assert_eq!(g, vec![("a".to_string(), None), ("b".to_string(), None)], "no consumer yet");
    bus.publish(&s, &env(1)).await.unwrap();
    assert_eq!(bus.read(&s, "a", "c1", 10, 0).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let g = bus.groups(&s).await.unwrap();
    let idle = g.iter().find(|(n, _)| n == "a").and_then(|(_, i)| *i).expect("a has a consumer");
    assert!((50..10_000).contains(&idle), "idle {idle} ms");
    assert!(bus.destroy_group(&s, "b").await.unwrap());
    assert!(!bus.destroy_group(&s, "b").await.unwrap(), "already gone");
    let names: Vec<String> = bus.groups(&s).await.unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["a".to_string()]);
    assert!(matches!(bus.read(&s, "b", "c1", 1, 0).await, Err(BusError::NoGroup { .. })), "a destroyed group");
}

/// The lag the control service samples for `kakeru_bus_stream_lag_entries`.
async fn lag_counts_entries_not_yet_delivered_to_the_group<B: Bus>(bus: B, s: String) {
    bus.ensure_group(&s, "g").await.unwrap();
    assert_eq!(bus.lag(&s, "g").await.unwrap(), Some(0));
    for i in 0..5 {
        bus.publish(&s, &env(i)).await.unwrap();
    }
    assert_eq!(bus.lag(&s, "g").await.unwrap(), Some(5));
    let got = bus.read(&s, "g", "c1", 3, 0).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(bus.lag(&s, "g").await.unwrap(), Some(2), "delivered entries leave the lag, acked or not");
    assert!(matches!(bus.lag(&s, "nobody").await, Err(BusError::NoGroup { .. })), "an unknown group is an error");
}

async fn publish_read_ack<B: Bus>(bus: B, s: String) {
    bus.ensure_group(&s, "g").await.unwrap();
    bus.ensure_group(&s, "g").await.unwrap(); // idempotent
    let sent: Vec<Envelope> = (0..3).map(env).collect();
    let mut ids = Vec::new();
    for e in &sent {
        ids.push(bus.publish(&s, e).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "entry ids increase");
    let got = bus.read(&s, "g", "c1", 10, 0).await.unwrap();
    assert_eq!(got.iter().map(|d| &d.envelope).collect::<Vec<_>>(), sent.iter().collect::<Vec<_>>());
    assert!(got.iter().all(|d| d.deliveries == 1));
    assert_eq!(got.iter().map(|d| d.entry_id).collect::<Vec<_>>(), ids);
    assert_eq!(bus.pending(&s, "g").await.unwrap(), 3);
    assert!(bus.read(&s, "g", "c1", 10, 50).await.unwrap().is_empty());
    assert_eq!(bus.ack(&s, "g", &ids).await.unwrap(), 3);
    assert_eq!(bus.ack(&s, "g", &ids).await.unwrap(), 0);
    assert_eq!(bus.pending(&s, "g").await.unwrap(), 0);
    // A second group sees everything from the start.
    bus.ensure_group(&s, "g2").await.unwrap();
    assert_eq!(bus.read(&s, "g2", "x", 10, 0).await.unwrap().len(), 3);
    let decoded: ApiCommand = got[1].envelope.decode().unwrap();
    assert_eq!(decoded, ApiCommand::Activity { agent_id: AgentId(1) });
}

async fn blocking_read_wakes_on_publish<B: Bus + Clone + 'static>(bus: B, s: String) {
    bus.ensure_group(&s, "g").await.unwrap();
    let publisher = bus.clone();
    let s2 = s.clone();
    let t = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        publisher.publish(&s2, &env(1)).await.unwrap();
    });
    let start = std::time::Instant::now();
    let got = bus.read(&s, "g", "c1", 10, 5_000).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(start.elapsed() < Duration::from_millis(3_000), "woke on publish");
    t.await.unwrap();
}

async fn redelivery_after_a_consumer_dies<B: Bus>(bus: B, s: String) {
    bus.ensure_group(&s, "g").await.unwrap();
    for i in 0..5 {
        bus.publish(&s, &env(i)).await.unwrap();
    }
    // Consumer "a" reads and dies without acking.
    assert_eq!(bus.read(&s, "g", "a", 10, 0).await.unwrap().len(), 5);
    // Not stale yet.
    assert!(bus.claim_stale(&s, "g", "b", 1_000, 10).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let got = bus.claim_stale(&s, "g", "b", 1_000, 10).await.unwrap();
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|d| d.deliveries == 2), "{got:?}");
    // Nothing new for "b" to read: the entries were already delivered once.
    assert!(bus.read(&s, "g", "b", 10, 0).await.unwrap().is_empty());
    let ids: Vec<_> = got.iter().map(|d| d.entry_id).collect();
    assert_eq!(bus.ack(&s, "g", &ids).await.unwrap(), 5);
    assert_eq!(bus.pending(&s, "g").await.unwrap(), 0);
}

async fn dead_letter_after_n_failed_deliveries<B: Bus>(bus: B, s: String) {
    bus.ensure_group(&s, "g").await.unwrap();
    let sent = env(1);
    bus.publish(&s, &sent).await.unwrap();
    let first = bus.read(&s, "g", "a", 10, 0).await.unwrap();
    assert_eq!(first[0].deliveries, 1);
    for n in 2..=3 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let got = bus.claim_stale(&s, "g", "a", 100, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].deliveries, n);
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(bus.claim_stale(&s, "g", "a", 100, 10).await.unwrap().is_empty());
    assert_eq!(bus.pending(&s, "g").await.unwrap(), 0);
    let dead = bus.dead_letters(&s, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.as_ref(), Some(&sent));
    assert_eq!(dead[0].group, "g");
    assert_eq!(dead[0].source_entry_id, first[0].entry_id.to_string());
    assert!(dead[0].reason.contains("3 times"), "{}", dead[0].reason);
}

async fn permanent_failure_is_dead_lettered_at_once<B: Bus>(bus: B, s: String) {
    bus.ensure_group(&s, "g").await.unwrap();
    let mut junk = env(1);
    junk.kind = "junk".into();
    bus.publish(&s, &junk).await.unwrap();
    bus.publish(&s, &env(2)).await.unwrap();
    let c = Consumer::new(ConsumerConfig {
        stream: s.clone(),
        group: "g".into(),
        consumer: "c".into(),
        batch: 10,
        block_ms: 0,
        min_idle_ms: 10_000,
    });
    let mut store = Store::default();
    let stats = c.poll(&bus, &mut store, |st, e| st.apply(e)).await.unwrap();
    assert_eq!((stats.applied, stats.dead), (1, 1));
    assert_eq!(bus.pending(&s, "g").await.unwrap(), 0);
    let dead = bus.dead_letters(&s, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.as_ref().map(|e| e.kind.as_str()), Some("junk"));
}

async fn maxlen_bounds_the_stream<B: Bus>(bus: B, s: String) {
    for i in 0..1_000 {
        bus.publish(&s, &env(i)).await.unwrap();
    }
    let len = bus.len(&s).await.unwrap();
    // `MAXLEN ~ 100`: Redis trims whole macro nodes (100 entries by default).
    assert!((100..=250).contains(&len), "len {len}");
}

async fn crash_mid_batch_loses_nothing_and_applies_once<B: Bus>(bus: B, s: String) {
    bus.ensure_group(&s, "g").await.unwrap();
    let mut sent = Vec::new();
    for i in 0..50 {
        let e = env(i);
        sent.push(e.id);
        bus.publish(&s, &e).await.unwrap();
    }
    let mut store = Store::default();
    // Consumer "a" reads 20, applies 10, crashes before acking anything.
    let batch = bus.read(&s, "g", "a", 20, 0).await.unwrap();
    assert_eq!(batch.len(), 20);
    for d in &batch[..10] {
        store.apply(&d.envelope).unwrap();
    }
    drop(batch);
    // Consumer "b" takes over.
    let c = Consumer::new(ConsumerConfig {
        stream: s.clone(),
        group: "g".into(),
        consumer: "b".into(),
        batch: 16,
        block_ms: 50,
        min_idle_ms: 200,
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut duplicates = 0;
    loop {
        let st = c.poll(&bus, &mut store, |st, e| st.apply(e)).await.unwrap();
        duplicates += st.duplicates;
        if store.applied.len() == 50 && bus.pending(&s, "g").await.unwrap() == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not all applied: {}", store.applied.len());
    }
    assert_eq!(duplicates, 10, "the 10 applied before the crash were redelivered and skipped");
    for id in &sent {
        assert_eq!(store.applied.get(id), Some(&1), "{id} applied once");
    }
}

async fn republished_message_is_applied_once<B: Bus>(bus: B, s: String) {
    // A publisher retrying an XADD whose reply was lost stores the same envelope twice.
    bus.ensure_group(&s, "g").await.unwrap();
    let e = env(1);
    bus.publish(&s, &e).await.unwrap();
    bus.publish(&s, &e).await.unwrap();
    let c = Consumer::new(ConsumerConfig {
        stream: s.clone(),
        group: "g".into(),
        consumer: "c".into(),
        batch: 10,
        block_ms: 0,
        min_idle_ms: 10_000,
    });
    let mut store = Store::default();
    let st = c.poll(&bus, &mut store, |st, e| st.apply(e)).await.unwrap();
    assert_eq!((st.applied, st.duplicates), (1, 1));
    assert_eq!(store.applied[&e.id], 1);
    assert_eq!(bus.pending(&s, "g").await.unwrap(), 0);
}

async fn bad_arguments_are_errors<B: Bus>(bus: B, s: String) {
    bus.ensure_group(&s, "g").await.unwrap();
    let max = BusConfig::default();
    assert!(matches!(bus.read(&s, "g", "c", 0, 0).await, Err(BusError::BadArgument(_))));
    assert!(matches!(bus.read(&s, "g", "c", max.max_batch + 1, 0).await, Err(BusError::BadArgument(_))));
    assert!(matches!(bus.read(&s, "g", "c", 1, max.max_block_ms + 1).await, Err(BusError::BadArgument(_))));
    assert!(matches!(bus.publish("", &env(1)).await, Err(BusError::BadArgument(_))));
    assert!(matches!(bus.read(&s, "nogroup", "c", 1, 0).await, Err(BusError::NoGroup { .. })));
    // The consumer creates a missing group.
    let c = Consumer::new(ConsumerConfig {
        stream: s.clone(),
        group: "late".into(),
        consumer: "c".into(),
        batch: 10,
        block_ms: 0,
        min_idle_ms: 10_000,
    });
    bus.publish(&s, &env(1)).await.unwrap();
    let mut store = Store::default();
    c.poll(&bus, &mut store, |st, e| st.apply(e)).await.unwrap();
    let st = c.poll(&bus, &mut store, |st, e| st.apply(e)).await.unwrap();
    assert_eq!(st.applied, 1);
}

async fn publish_many_and_fan_out_reads<B: Bus + Clone + 'static>(bus: B, s: String) {
    assert_eq!(bus.last_entry_id(&s).await.unwrap(), None);
    let sent: Vec<Envelope> = (0..5).map(env).collect();
    let ids = bus.publish_many(&s, &sent).await.unwrap();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(bus.last_entry_id(&s).await.unwrap(), Some(ids[4]));
    // Two readers without a group each see everything, from where they are.
    let all = bus.read_after(&s, EntryId::default(), 100, 0).await.unwrap();
    assert_eq!(all.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(), sent);
    assert_eq!(all.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
    let rest = bus.read_after(&s, ids[2], 100, 0).await.unwrap();
    assert_eq!(rest.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids[3..].to_vec());
    assert!(bus.read_after(&s, ids[4], 100, 0).await.unwrap().is_empty());
    // A blocked reader wakes on the next publish.
    let publisher = bus.clone();
    let s2 = s.clone();
    let t = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        publisher.publish(&s2, &env(9)).await.unwrap();
    });
    let start = std::time::Instant::now();
    let got = bus.read_after(&s, ids[4], 100, 5_000).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.at_ms, env(9).at_ms);
    assert!(start.elapsed() < Duration::from_millis(3_000), "woke on publish");
    t.await.unwrap();
    assert!(bus.publish_many(&s, &[]).await.unwrap().is_empty());
}

async fn values_are_set_read_and_expire<B: Bus>(bus: B, s: String) {
    let key = format!("{s}:value");
    assert_eq!(bus.get_value(&key).await.unwrap(), None);
    bus.set_value(&key, "one", 60_000).await.unwrap();
    assert_eq!(bus.get_value(&key).await.unwrap().as_deref(), Some("one"));
    bus.set_value(&key, "two", 150).await.unwrap();
    assert_eq!(bus.get_value(&key).await.unwrap().as_deref(), Some("two"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(bus.get_value(&key).await.unwrap(), None, "expired");
}
