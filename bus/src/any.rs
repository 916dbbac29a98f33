//! One concrete bus type for code that runs over either implementation ([`AnyBus`]: a node's roles
//! share one), and an object-safe publisher for holders that must not be generic ([`Publisher`]: the
//! API's state).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{Bus, BusError, DeadLetter, Delivery, EntryId, Envelope, MemoryBus, RedisBus};

/// The bus of a node: the in-process [`MemoryBus`] (embedded default) or Redis Streams.
#[derive(Clone, Debug)]
pub enum AnyBus {
    Memory(MemoryBus),
    Redis(RedisBus),
}

impl AnyBus {
    /// Another handle on the same bus: the same in-process state, or a new Redis connection (a task
    /// that blocks in reads needs its own, or it holds up every command queued behind the read).
    pub async fn another(&self) -> Result<AnyBus, BusError> {
        Ok(match self {
            AnyBus::Memory(m) => AnyBus::Memory(m.clone()),
            AnyBus::Redis(r) => AnyBus::Redis(RedisBus::connect(r.config().clone()).await?),
        })
    }

    /// Whether other processes share this bus (Redis): then state that lives in one process (the
    /// wallboard) must be published on the bus for the others.
    pub fn is_shared(&self) -> bool {
        matches!(self, AnyBus::Redis(_))
    }
}

impl From<MemoryBus> for AnyBus {
    fn from(b: MemoryBus) -> Self {
        AnyBus::Memory(b)
    }
}

impl From<RedisBus> for AnyBus {
    fn from(b: RedisBus) -> Self {
        AnyBus::Redis(b)
    }
}

macro_rules! delegate {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBus::Memory($b) => $e.await,
            AnyBus::Redis($b) => $e.await,
        }
    };
}

impl Bus for AnyBus {
    async fn publish(&self, stream: &str, env: &Envelope) -> Result<EntryId, BusError> {
        delegate!(self, b => b.publish(stream, env))
    }
    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BusError> {
        delegate!(self, b => b.ensure_group(stream, group))
    }
    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Delivery>, BusError> {
        delegate!(self, b => b.read(stream, group, consumer, count, block_ms))
    }
    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<u64, BusError> {
        delegate!(self, b => b.ack(stream, group, ids))
    }
    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        delegate!(self, b => b.claim_stale(stream, group, consumer, min_idle_ms, count))
    }
    async fn dead_letter(&self, stream: &str, group: &str, delivery: &Delivery, reason: &str) -> Result<(), BusError> {
        delegate!(self, b => b.dead_letter(stream, group, delivery, reason))
    }
    async fn dead_letters(&self, stream: &str, count: usize) -> Result<Vec<DeadLetter>, BusError> {
        delegate!(self, b => b.dead_letters(stream, count))
    }
    async fn len(&self, stream: &str) -> Result<u64, BusError> {
        delegate!(self, b => b.len(stream))
    }
    async fn pending(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        delegate!(self, b => b.pending(stream, group))
    }
    async fn lag(&self, stream: &str, group: &str) -> Result<Option<u64>, BusError> {
        delegate!(self, b => b.lag(stream, group))
    }
    async fn groups(&self, stream: &str) -> Result<Vec<(String, Option<u64>)>, BusError> {
        delegate!(self, b => b.groups(stream))
    }
    async fn destroy_group(&self, stream: &str, group: &str) -> Result<bool, BusError> {
        delegate!(self, b => b.destroy_group(stream, group))
    }
    async fn publish_many(&self, stream: &str, envs: &[Envelope]) -> Result<Vec<EntryId>, BusError> {
        delegate!(self, b => b.publish_many(stream, envs))
    }
    async fn read_after(
        &self,
        stream: &str,
        after: EntryId,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<(EntryId, Envelope)>, BusError> {
        delegate!(self, b => b.read_after(stream, after, count, block_ms))
    }
    async fn last_entry_id(&self, stream: &str) -> Result<Option<EntryId>, BusError> {
        delegate!(self, b => b.last_entry_id(stream))
    }
    async fn set_value(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), BusError> {
        delegate!(self, b => b.set_value(key, value, ttl_ms))
    }
    async fn get_value(&self, key: &str) -> Result<Option<String>, BusError> {
        delegate!(self, b => b.get_value(key))
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe part of [`Bus`] a publisher needs.
trait DynPublish: Send + Sync {
    fn publish_dyn<'a>(&'a self, stream: &'a str, env: &'a Envelope) -> BoxFuture<'a, Result<EntryId, BusError>>;
}

impl<B: Bus> DynPublish for B {
    fn publish_dyn<'a>(&'a self, stream: &'a str, env: &'a Envelope) -> BoxFuture<'a, Result<EntryId, BusError>> {
        Box::pin(self.publish(stream, env))
    }
}

/// A shared handle that publishes envelopes on some [`Bus`] (not generic, so it can live in
/// `axum` state). Cheap to clone.
#[derive(Clone)]
pub struct Publisher(Arc<dyn DynPublish>);

impl Publisher {
    pub fn new<B: Bus + 'static>(bus: B) -> Self {
        Publisher(Arc::new(bus))
    }

    /// Appends `env` to `stream`; returns once it is stored (see [`Bus::publish`]).
    pub async fn publish(&self, stream: &str, env: &Envelope) -> Result<EntryId, BusError> {
        self.0.publish_dyn(stream, env).await
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}
