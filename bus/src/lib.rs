//! The bus: Redis Streams with consumer groups ([`RedisBus`]) or the same semantics in process
//! ([`MemoryBus`], the embedded default). Both pass one contract suite (`tests/it/bus_contract.rs`).
//!
//! # Guarantee
//! Delivery is **at least once**: [`Bus::publish`] returns only after the entry is in the stream
//! (XADD succeeded; a retried XADD whose first reply was lost may store the entry twice, with the same
//! [`Envelope::id`]); a read entry stays pending in its group until [`Bus::ack`]; a consumer that dies
//! leaves its entries pending, and [`Bus::claim_stale`] hands them to another consumer after
//! `min_idle_ms`. An entry delivered more than [`BusConfig::max_deliveries`] times is moved to the
//! dead-letter stream `<stream>:dead` (atomically with its ack) instead of being delivered again.
//!
//! Apply is **idempotent**: every envelope carries a unique id, and a consumer skips ids it already
//! applied ([`DedupState`]): either a bounded in-memory window ([`Deduper`]) or, where the effect must be
//! exact across a consumer crash, the ids stored with the consumer's state (same transaction).
//! At-least-once delivery + idempotent apply = effectively once.
//!
//! Limits: streams are trimmed to about [`BusConfig::maxlen`] entries (`MAXLEN ~`): an entry trimmed
//! before every group read it is lost, so `maxlen` must exceed the largest consumer lag (alert on the
//! group's lag). Reads and claims return at most [`BusConfig::max_batch`] entries and block at most
//! [`BusConfig::max_block_ms`].
//!
//! What the envelopes carry is the `wire` crate's: [`Envelope::new`] wraps a [`wire::Message`] with
//! its kind and schema version, [`Envelope::decode`] checks both. The bus itself knows no message.

mod any;
mod memory;
mod redis;
#[cfg(feature = "testing")]
pub mod testing;

pub use self::any::{AnyBus, Publisher};
pub use self::memory::MemoryBus;
pub use self::redis::{redact_url, RedisBus, RedisBusConfig};

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use wire::{DecodeError, Message};

/// The unique id of a message (a ULID: sortable by creation time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub ulid::Ulid);

impl MessageId {
    /// A fresh id (reads the system clock and RNG: driver code only).
    pub fn new() -> Self {
        MessageId(ulid::Ulid::new())
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One message on the bus. Stored in a stream entry as the fields `schema`, `id`, `kind`,
/// `tenant_id`, `at_ms`, `payload` (JSON text).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Schema version of `payload` for this `kind`.
    pub schema: u16,
    pub id: MessageId,
    /// Message type, e.g. `api_command` (see [`wire::Message::KIND`]).
    pub kind: String,
    pub tenant_id: u64,
    /// When the message was made (Unix ms, the publisher's clock).
    pub at_ms: u64,
    pub payload: Payload,
}

/// A message's payload: its JSON text, kept as text. A message is encoded once, straight from its
/// type, and decoded once, straight into its type, with no `serde_json::Value` tree built and
/// freed between (allocation was the largest share of the control service's CPU profile).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<serde_json::value::RawValue>);

impl Payload {
    /// Checks that `text` is one JSON value and keeps it.
    pub fn from_json_text(text: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(Payload)
    }

    /// Encodes a value.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Payload)
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Envelope {
    /// Wraps a message, with a fresh id.
    pub fn new<M: Message>(tenant_id: u64, at_ms: u64, msg: &M) -> Result<Envelope, DecodeError> {
        Ok(Envelope {
            schema: M::SCHEMA,
            id: MessageId::new(),
            kind: M::KIND.to_owned(),
            tenant_id,
            at_ms,
            payload: Payload::encode(msg)?,
        })
    }

    /// Decodes the payload as `M`, checking kind and schema.
    pub fn decode<M: Message>(&self) -> Result<M, DecodeError> {
        if self.kind != M::KIND {
            return Err(DecodeError::WrongKind { expected: M::KIND, got: self.kind.clone() });
        }
        if self.schema > M::SCHEMA {
            return Err(DecodeError::NewerSchema { known: M::SCHEMA, got: self.schema });
        }
        Ok(serde_json::from_str(self.payload.text())?)
    }
}

/// A stream entry id (`<ms>-<seq>`), as Redis makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for EntryId {
    type Err = BusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BusError::Protocol(format!("bad entry id {s:?}"));
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(EntryId { ms: ms.parse().map_err(|_| bad())?, seq: seq.parse().map_err(|_| bad())? })
    }
}

/// An entry handed to a consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub entry_id: EntryId,
    pub envelope: Envelope,
    /// How many times this entry has been delivered, this time included (1 = first delivery).
    pub deliveries: u32,
}

/// An entry of a dead-letter stream.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// Id in the dead-letter stream.
    pub entry_id: EntryId,
    /// Id it had in the source stream.
    pub source_entry_id: String,
    pub group: String,
    pub reason: String,
    /// `None` when the source entry could not be parsed as an envelope.
    pub envelope: Option<Envelope>,
}

/// Bus errors.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis did not answer within the bounded retries.
    #[error("bus unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    #[error("redis: {0}")]
    Redis(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("no such group {group:?} on {stream:?}")]
    NoGroup { stream: String, group: String },
    #[error("bad argument: {0}")]
    BadArgument(String),
    #[error("encode: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Settings shared by both implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Approximate stream length bound (`XADD MAXLEN ~`).
    pub maxlen: u64,
    /// Approximate bound of each dead-letter stream.
    pub dead_maxlen: u64,
    /// Deliveries after which an entry is dead-lettered instead of delivered again.
    pub max_deliveries: u32,
    /// Most entries one read or claim returns.
    pub max_batch: usize,
    /// Longest a read may block.
    pub max_block_ms: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig { maxlen: 1_000_000, dead_maxlen: 100_000, max_deliveries: 5, max_batch: 1_000, max_block_ms: 30_000 }
    }
}

impl BusConfig {
    fn check(&self, stream: &str, count: usize, block_ms: u64) -> Result<(), BusError> {
        if stream.is_empty() || stream.len() > 512 {
            return Err(BusError::BadArgument("stream name length 1..=512".into()));
        }
        if count == 0 || count > self.max_batch {
            return Err(BusError::BadArgument(format!("count {count} not in 1..={}", self.max_batch)));
        }
        if block_ms > self.max_block_ms {
            return Err(BusError::BadArgument(format!("block_ms {block_ms} > {}", self.max_block_ms)));
        }
        Ok(())
    }
}

/// The dead-letter stream of `stream`.
pub fn dead_stream(stream: &str) -> String {
    format!("{stream}:dead")
}

/// A stream bus with consumer groups. Async: a driver-level piece.
pub trait Bus: Send + Sync {
    /// Appends an envelope (trimming the stream to about `maxlen`). Returns once stored.
    fn publish(&self, stream: &str, env: &Envelope) -> impl Future<Output = Result<EntryId, BusError>> + Send;

    /// Creates the consumer group (reading from the stream's start) if it does not exist.
    fn ensure_group(&self, stream: &str, group: &str) -> impl Future<Output = Result<(), BusError>> + Send;

    /// New entries for `consumer` (`XREADGROUP ... >`), blocking up to `block_ms` when there are none.
    fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> impl Future<Output = Result<Vec<Delivery>, BusError>> + Send;

    /// Acknowledges entries; returns how many were pending.
    fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Takes over entries pending longer than `min_idle_ms` in the group (any consumer's, this one's
    /// too) (`XAUTOCLAIM`). Entries already delivered `max_deliveries` times are dead-lettered instead.
    fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> impl Future<Output = Result<Vec<Delivery>, BusError>> + Send;

    /// Moves one delivered entry to `<stream>:dead` and acks it (atomically).
    fn dead_letter(
        &self,
        stream: &str,
        group: &str,
        delivery: &Delivery,
        reason: &str,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// The oldest entries of `<stream>:dead`.
    fn dead_letters(
        &self,
        stream: &str,
        count: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, BusError>> + Send;

    /// Stream length.
    fn len(&self, stream: &str) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Entries delivered to the group and not acked yet.
    fn pending(&self, stream: &str, group: &str) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Entries of the stream not yet delivered to the group (`XINFO GROUPS` `lag`, Redis 7); `None`
    /// when the bus cannot tell (Redis answers nil for a while after entries were deleted).
    fn lag(&self, stream: &str, group: &str) -> impl Future<Output = Result<Option<u64>, BusError>> + Send;

    /// Appends several envelopes in one round trip (one pipeline on Redis), in order. Returns once
    /// all are stored; on an error some may be stored (a retry stores them again, same ids).
    fn publish_many(
        &self,
        stream: &str,
        envs: &[Envelope],
    ) -> impl Future<Output = Result<Vec<EntryId>, BusError>> + Send;

    /// Entries after `after` (`XREAD`, no group: every reader sees every entry), blocking up to
    /// `block_ms` when there are none. For fan-out readers that keep their own position (the API's
    /// wallboard mirror). Entries that are not envelopes are skipped.
    fn read_after(
        &self,
        stream: &str,
        after: EntryId,
        count: usize,
        block_ms: u64,
    ) -> impl Future<Output = Result<Vec<(EntryId, Envelope)>, BusError>> + Send;

    /// The id of the stream's newest entry (`None` for an empty or missing stream).
    fn last_entry_id(&self, stream: &str) -> impl Future<Output = Result<Option<EntryId>, BusError>> + Send;

    /// Stores a value under `key` for `ttl_ms` (a snapshot others read at start).
    fn set_value(&self, key: &str, value: &str, ttl_ms: u64) -> impl Future<Output = Result<(), BusError>> + Send;

    /// The value under `key`, if set and not expired.
    fn get_value(&self, key: &str) -> impl Future<Output = Result<Option<String>, BusError>> + Send;

    /// The consumer groups of `stream` (none when it does not exist), each with how long ago one
    /// of its consumers last read (the least `idle` of `XINFO CONSUMERS`, ms); `None` for a group
    /// without consumers (Redis makes a consumer when it first delivers it an entry).
    fn groups(&self, stream: &str) -> impl Future<Output = Result<Vec<(String, Option<u64>)>, BusError>> + Send;

    /// Deletes a consumer group with its pending entries (`XGROUP DESTROY`); whether it existed.
    fn destroy_group(&self, stream: &str, group: &str) -> impl Future<Output = Result<bool, BusError>> + Send;
}

/// Largest value [`Bus::set_value`] stores.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

fn check_value(value: &str) -> Result<(), BusError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(BusError::BadArgument(format!("value of {} bytes > {MAX_VALUE_BYTES}", value.len())));
    }
    Ok(())
}

/// Where a consumer remembers which message ids it applied.
pub trait DedupState {
    fn is_applied(&self, id: &MessageId) -> bool;
    fn mark_applied(&mut self, id: MessageId);
}

/// A bounded in-memory window of applied ids (FIFO eviction). Catches redeliveries within the
/// last `capacity` messages of a live consumer; it does not survive a crash (use ids stored with
/// the state for that).
#[derive(Debug)]
pub struct Deduper {
    capacity: usize,
    set: HashSet<MessageId>,
    order: VecDeque<MessageId>,
}

impl Deduper {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Deduper { capacity, set: HashSet::with_capacity(capacity), order: VecDeque::with_capacity(capacity) }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl DedupState for Deduper {
    fn is_applied(&self, id: &MessageId) -> bool {
        self.set.contains(id)
    }

    fn mark_applied(&mut self, id: MessageId) {
        if !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// What a handler says about one envelope.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Try again later (left pending; redelivered by `claim_stale`, dead-lettered after
    /// `max_deliveries`).
    #[error("retry: {0}")]
    Retry(String),
    /// Never going to work (bad payload, newer schema): dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Settings of a [`Consumer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub stream: String,
    pub group: String,
    /// Unique per process (e.g. host + pid): a dead consumer's entries are claimed by name.
    pub consumer: String,
    pub batch: usize,
    pub block_ms: u64,
    /// Entries pending this long are taken from dead consumers (and retried for this one).
    pub min_idle_ms: u64,
}

/// Counts of one [`Consumer::poll`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    pub applied: usize,
    pub duplicates: usize,
    pub retry: usize,
    pub dead: usize,
    pub claimed: usize,
}

/// A consumer loop step: claim stale entries, else read new ones; skip applied ids; apply; ack.
#[derive(Debug)]
pub struct Consumer {
    cfg: ConsumerConfig,
}

impl Consumer {
    pub fn new(cfg: ConsumerConfig) -> Self {
        Consumer { cfg }
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.cfg
    }

    /// One step. `apply` changes `state` for one envelope; an id is marked applied only after
    /// `apply` succeeded, and acked only after it is marked. A crash between apply and ack causes a
    /// redelivery that `state` recognises.
    pub async fn poll<B, S, F>(&self, bus: &B, state: &mut S, mut apply: F) -> Result<PollStats, BusError>
    where
        B: Bus,
        S: DedupState,
        F: FnMut(&mut S, &Envelope) -> Result<(), HandlerError>,
    {
        let c = &self.cfg;
        let mut stats = PollStats::default();
        let claimed = bus.claim_stale(&c.stream, &c.group, &c.consumer, c.min_idle_ms, c.batch).await;
        let batch = match claimed {
            Ok(b) if !b.is_empty() => {
                stats.claimed = b.len();
                Ok(b)
            }
            Ok(_) => bus.read(&c.stream, &c.group, &c.consumer, c.batch, c.block_ms).await,
            Err(e) => Err(e),
        };
        let batch = match batch {
            Ok(b) => b,
            // The group is gone (Redis restarted without persistence, or never created): create it
            // (from the stream's start) and read on the next poll.
            Err(BusError::NoGroup { .. }) => {
                tracing::warn!(stream = %c.stream, group = %c.group, "group missing; creating it");
                bus.ensure_group(&c.stream, &c.group).await?;
                return Ok(stats);
            }
            Err(e) => return Err(e),
        };
        let mut acks = Vec::with_capacity(batch.len());
        for d in &batch {
            if state.is_applied(&d.envelope.id) {
                stats.duplicates += 1;
                acks.push(d.entry_id);
                continue;
            }
            match apply(state, &d.envelope) {
                Ok(()) => {
                    state.mark_applied(d.envelope.id);
                    stats.applied += 1;
                    acks.push(d.entry_id);
                }
                Err(HandlerError::Retry(e)) => {
                    tracing::warn!(entry = %d.entry_id, id = %d.envelope.id, error = %e, "handler failed; left pending");
                    stats.retry += 1;
                }
                Err(HandlerError::Permanent(e)) => {
                    tracing::warn!(entry = %d.entry_id, id = %d.envelope.id, error = %e, "dead-lettered");
                    bus.dead_letter(&c.stream, &c.group, d, &e).await?;
                    stats.dead += 1;
                }
            }
        }
        if !acks.is_empty() {
            bus.ack(&c.stream, &c.group, &acks).await?;
        }
        Ok(stats)
    }
}
