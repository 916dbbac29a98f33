//! In-process bus with Redis Streams semantics: entry ids, consumer groups, pending entries with
//! delivery counts, claim of stale entries, dead letters, MAXLEN trimming.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use super::{dead_stream, Bus, BusConfig, BusError, DeadLetter, Delivery, EntryId, Envelope};

/// Most streams one memory bus holds (dead-letter streams included).
const MAX_STREAMS: usize = 100_000;

#[derive(Debug, Clone)]
struct Stored {
    env: Option<Envelope>,
    dead: Option<(String, String, String)>, // (source entry, group, reason)
}

#[derive(Debug)]
struct Pending {
    consumer: String,
    delivered_at: Instant,
    deliveries: u32,
}

#[derive(Debug, Default)]
struct Group {
    last_delivered: EntryId,
    pending: BTreeMap<EntryId, Pending>,
    /// When a consumer last read; as on Redis, a group has a consumer once one was delivered an
    /// entry, and every read of it after counts.
    last_read: Option<Instant>,
}

#[derive(Debug, Default)]
struct Stream {
    entries: BTreeMap<EntryId, Stored>,
    last: EntryId,
    groups: HashMap<String, Group>,
}

#[derive(Debug, Default)]
struct State {
    streams: HashMap<String, Stream>,
    /// `set_value` keys: (value, expiry).
    values: HashMap<String, (String, Instant)>,
}

impl State {
    fn stream(&mut self, name: &str) -> Result<&mut Stream, BusError> {
        if !self.streams.contains_key(name) {
            if self.streams.len() >= MAX_STREAMS {
                return Err(BusError::BadArgument(format!("memory bus holds at most {MAX_STREAMS} streams")));
            }
            self.streams.insert(name.to_owned(), Stream::default());
        }
        // The key was inserted just above if missing.
        self.streams.get_mut(name).ok_or_else(|| BusError::Protocol("stream vanished".into()))
    }

    fn append(&mut self, name: &str, stored: Stored, maxlen: u64) -> Result<EntryId, BusError> {
        let s = self.stream(name)?;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let id = if now_ms > s.last.ms {
            EntryId { ms: now_ms, seq: 0 }
        } else {
            EntryId { ms: s.last.ms, seq: s.last.seq + 1 }
        };
        s.last = id;
        s.entries.insert(id, stored);
        while s.entries.len() as u64 > maxlen {
            s.entries.pop_first();
        }
        Ok(id)
    }

    fn group(&mut self, stream: &str, group: &str) -> Result<&mut Stream, BusError> {
        let no_group = || BusError::NoGroup { stream: stream.to_owned(), group: group.to_owned() };
        let s = self.streams.get_mut(stream).ok_or_else(no_group)?;
        if !s.groups.contains_key(group) {
            return Err(no_group());
        }
        Ok(s)
    }
}

/// In-process [`Bus`]. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct MemoryBus {
    cfg: BusConfig,
    state: Arc<Mutex<State>>,
    /// Bumped on every publish: wakes blocked readers.
    tick: Arc<watch::Sender<u64>>,
}

impl MemoryBus {
    pub fn new(cfg: BusConfig) -> Self {
        MemoryBus { cfg, state: Arc::new(Mutex::new(State::default())), tick: Arc::new(watch::channel(0).0) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every mutation is complete before
        // any call that could panic), so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dead_letter_locked(
        &self,
        st: &mut State,
        stream: &str,
        group: &str,
        entry: EntryId,
        env: Option<Envelope>,
        reason: &str,
    ) -> Result<(), BusError> {
        st.append(
            &dead_stream(stream),
            Stored { env, dead: Some((entry.to_string(), group.to_owned(), reason.to_owned())) },
            self.cfg.dead_maxlen,
        )?;
        if let Ok(s) = st.group(stream, group) {
            if let Some(g) = s.groups.get_mut(group) {
                g.pending.remove(&entry);
            }
        }
        Ok(())
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(BusConfig::default())
    }
}

impl Bus for MemoryBus {
    async fn publish(&self, stream: &str, env: &Envelope) -> Result<EntryId, BusError> {
        self.cfg.check(stream, 1, 0)?;
        let id = self.lock().append(stream, Stored { env: Some(env.clone()), dead: None }, self.cfg.maxlen)?;
        self.tick.send_modify(|t| *t = t.wrapping_add(1));
        Ok(id)
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BusError> {
        self.cfg.check(stream, 1, 0)?;
        let mut st = self.lock();
        let s = st.stream(stream)?;
        s.groups.entry(group.to_owned()).or_default();
        Ok(())
    }

    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Delivery>, BusError> {
        self.cfg.check(stream, count, block_ms)?;
        let deadline = Instant::now() + Duration::from_millis(block_ms);
        let mut rx = self.tick.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let mut st = self.lock();
                let s = st.group(stream, group)?;
                let g = s
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| BusError::NoGroup { stream: stream.to_owned(), group: group.to_owned() })?;
                let now = Instant::now();
                let mut out = Vec::new();
                let start = EntryId { ms: g.last_delivered.ms, seq: g.last_delivered.seq.saturating_add(1) };
                for (id, stored) in s.entries.range(start..).take(count) {
                    g.last_delivered = *id;
                    g.pending.insert(*id, Pending { consumer: consumer.to_owned(), delivered_at: now, deliveries: 1 });
                    if let Some(env) = &stored.env {
                        out.push(Delivery { entry_id: *id, envelope: env.clone(), deliveries: 1 });
                    }
                }
                if !out.is_empty() || g.last_read.is_some() {
                    g.last_read = Some(now);
                }
                if !out.is_empty() || block_ms == 0 {
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<u64, BusError> {
        let mut st = self.lock();
        let s = st.group(stream, group)?;
        let Some(g) = s.groups.get_mut(group) else {
            return Ok(0);
        };
        Ok(ids.iter().filter(|id| g.pending.remove(id).is_some()).count() as u64)
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        self.cfg.check(stream, count, 0)?;
        let mut st = self.lock();
        let now = Instant::now();
        let min_idle = Duration::from_millis(min_idle_ms);
        let mut out = Vec::new();
        let mut dead = Vec::new();
        {
            let s = st.group(stream, group)?;
            let entries = &s.entries;
            let Some(g) = s.groups.get_mut(group) else {
                return Ok(out);
            };
            let mut trimmed = Vec::new();
            let mut taken = 0;
            for (id, p) in g.pending.iter_mut() {
                if taken == count {
                    break;
                }
                if now.saturating_duration_since(p.delivered_at) < min_idle {
                    continue;
                }
                taken += 1;
                let Some(env) = entries.get(id).and_then(|e| e.env.clone()) else {
                    trimmed.push(*id); // trimmed by MAXLEN: removed, as Redis 7 does
                    continue;
                };
                p.consumer = consumer.to_owned();
                p.delivered_at = now;
                p.deliveries = p.deliveries.saturating_add(1);
                if p.deliveries > self.cfg.max_deliveries {
                    dead.push((*id, env, p.deliveries - 1));
                } else {
                    out.push(Delivery { entry_id: *id, envelope: env, deliveries: p.deliveries });
                }
            }
            for id in trimmed {
                tracing::warn!(%stream, %group, entry = %id, "pending entry trimmed before ack");
                g.pending.remove(&id);
            }
        }
        for (id, env, n) in dead {
            let reason = format!("delivered {n} times without ack");
            self.dead_letter_locked(&mut st, stream, group, id, Some(env), &reason)?;
        }
        Ok(out)
    }

    async fn dead_letter(&self, stream: &str, group: &str, delivery: &Delivery, reason: &str) -> Result<(), BusError> {
        let mut st = self.lock();
        self.dead_letter_locked(&mut st, stream, group, delivery.entry_id, Some(delivery.envelope.clone()), reason)
    }

    async fn dead_letters(&self, stream: &str, count: usize) -> Result<Vec<DeadLetter>, BusError> {
        self.cfg.check(stream, count, 0)?;
        let st = self.lock();
        let Some(s) = st.streams.get(&dead_stream(stream)) else {
            return Ok(Vec::new());
        };
        Ok(s.entries
            .iter()
            .take(count)
            .map(|(id, e)| {
                let (source, group, reason) = e.dead.clone().unwrap_or_default();
                DeadLetter { entry_id: *id, source_entry_id: source, group, reason, envelope: e.env.clone() }
            })
            .collect())
    }

    async fn publish_many(&self, stream: &str, envs: &[Envelope]) -> Result<Vec<EntryId>, BusError> {
        self.cfg.check(stream, 1, 0)?;
        let ids = {
            let mut st = self.lock();
            envs.iter()
                .map(|env| st.append(stream, Stored { env: Some(env.clone()), dead: None }, self.cfg.maxlen))
                .collect::<Result<Vec<_>, _>>()?
        };
        self.tick.send_modify(|t| *t = t.wrapping_add(1));
        Ok(ids)
    }

    async fn read_after(
        &self,
        stream: &str,
        after: EntryId,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<(EntryId, Envelope)>, BusError> {
        self.cfg.check(stream, count, block_ms)?;
        let deadline = Instant::now() + Duration::from_millis(block_ms);
        let mut rx = self.tick.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let st = self.lock();
                let start = EntryId { ms: after.ms, seq: after.seq.saturating_add(1) };
                let out: Vec<_> = st
                    .streams
                    .get(stream)
                    .map(|s| {
                        s.entries
                            .range(start..)
                            .filter_map(|(id, e)| e.env.clone().map(|env| (*id, env)))
                            .take(count)
                            .collect()
                    })
                    .unwrap_or_default();
                if !out.is_empty() || block_ms == 0 {
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn last_entry_id(&self, stream: &str) -> Result<Option<EntryId>, BusError> {
        Ok(self.lock().streams.get(stream).and_then(|s| s.entries.last_key_value().map(|(id, _)| *id)))
    }

    async fn set_value(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), BusError> {
        super::check_value(value)?;
        let mut st = self.lock();
        let now = Instant::now();
        st.values.retain(|_, (_, exp)| *exp > now);
        if st.values.len() >= MAX_STREAMS && !st.values.contains_key(key) {
            return Err(BusError::BadArgument(format!("memory bus holds at most {MAX_STREAMS} values")));
        }
        st.values.insert(key.to_owned(), (value.to_owned(), now + Duration::from_millis(ttl_ms.max(1))));
        Ok(())
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>, BusError> {
        let st = self.lock();
        Ok(st.values.get(key).filter(|(_, exp)| *exp > Instant::now()).map(|(v, _)| v.clone()))
    }

    async fn len(&self, stream: &str) -> Result<u64, BusError> {
        Ok(self.lock().streams.get(stream).map_or(0, |s| s.entries.len() as u64))
    }

    async fn pending(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        let mut st = self.lock();
        let s = st.group(stream, group)?;
        Ok(s.groups.get(group).map_or(0, |g| g.pending.len() as u64))
    }

    async fn groups(&self, stream: &str) -> Result<Vec<(String, Option<u64>)>, BusError> {
        let st = self.lock();
        let Some(s) = st.streams.get(stream) else { return Ok(Vec::new()) };
        let now = Instant::now();
        let mut out: Vec<(String, Option<u64>)> = s
            .groups
            .iter()
            .map(|(name, g)| (name.clone(), g.last_read.map(|t| now.saturating_duration_since(t).as_millis() as u64)))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn destroy_group(&self, stream: &str, group: &str) -> Result<bool, BusError> {
        let mut st = self.lock();
        Ok(st.streams.get_mut(stream).is_some_and(|s| s.groups.remove(group).is_some()))
    }

    async fn lag(&self, stream: &str, group: &str) -> Result<Option<u64>, BusError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut st = self.lock();
        let s = st.group(stream, group)?;
        let Some(g) = s.groups.get(group) else { return Ok(None) };
        // Bounded by the stream's MAXLEN; sampled every few seconds, not per entry.
        Ok(Some(s.entries.range((Excluded(g.last_delivered), Unbounded)).count() as u64))
    }
}
