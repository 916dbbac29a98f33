//! [`Bus`] over Redis Streams.
//!
//! Two multiplexed connections, each a `ConnectionManager` (reconnects after a drop): one for short
//! commands, one for blocking reads (a blocked `XREADGROUP` would hold up every command queued behind
//! it on the same connection). Every command is retried on connection errors with bounded
//! exponential backoff ([`RedisBusConfig`]); past the bound the call fails with
//! [`BusError::Unavailable`] and the caller still holds its message.
//!
//! Retries and their effect: a retried `XADD` whose first reply was lost may store the entry twice
//! (same envelope id: consumers skip it); a retried `XREADGROUP` whose first reply was lost leaves
//! those entries pending on this consumer, and `claim_stale` hands them out again; `XACK` and
//! `XGROUP CREATE` are idempotent.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamRangeReply, StreamReadReply};
use redis::{ErrorKind, RedisError, Value};

use super::{dead_stream, Bus, BusConfig, BusError, DeadLetter, Delivery, EntryId, Envelope, MessageId, Payload};

/// Settings of a [`RedisBus`]. Its `Debug` hides the password of the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisBusConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Put before every stream and key name (empty in production; lets several installations, or
    /// tests, share one Redis without meeting).
    pub prefix: String,
    pub bus: BusConfig,
    /// First retry delay; doubled per attempt up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Attempts per call (the first included) before [`BusError::Unavailable`].
    pub retry_max_attempts: u32,
    /// Timeout of one connection attempt.
    pub connect_timeout_ms: u64,
    /// Timeout of one reply (blocking reads get `block_ms` on top).
    pub response_timeout_ms: u64,
}

impl std::fmt::Debug for RedisBusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBusConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("bus", &self.bus)
            .field("retry_initial_ms", &self.retry_initial_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("retry_max_attempts", &self.retry_max_attempts)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("response_timeout_ms", &self.response_timeout_ms)
            .finish()
    }
}

/// A URL with the password of its user info replaced by `***` (`postgres://u:***@host/db`,
/// `redis://:***@host`; user info without a colon is hidden whole).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                // User info without a colon may be a bare secret (a token): hidden whole.
                None => format!("{}***{}", &url[..s + 3], &url[at..]),
            }
        }
        _ => url.to_string(),
    }
}

impl RedisBusConfig {
    pub fn new(url: impl Into<String>) -> Self {
        RedisBusConfig {
            url: url.into(),
            prefix: String::new(),
            bus: BusConfig::default(),
            retry_initial_ms: 20,
            retry_max_ms: 1_000,
            retry_max_attempts: 60,
            connect_timeout_ms: 2_000,
            response_timeout_ms: 5_000,
        }
    }
}

/// [`Bus`] over Redis Streams. Clones share connections; give each consumer task that does
/// blocking reads its own [`RedisBus::connect`].
#[derive(Clone)]
pub struct RedisBus {
    cfg: RedisBusConfig,
    cmd: ConnectionManager,
    blocking: ConnectionManager,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus").field("cfg", &self.cfg).finish()
    }
}

fn retryable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.kind(), ErrorKind::BusyLoadingError | ErrorKind::TryAgain)
}

fn redis_err(e: RedisError) -> BusError {
    BusError::Redis(e.to_string())
}

fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

impl RedisBus {
    /// Connects (retrying with bounded backoff: Redis may be restarting).
    pub async fn connect(cfg: RedisBusConfig) -> Result<Self, BusError> {
        let client = redis::Client::open(cfg.url.as_str()).map_err(redis_err)?;
        let mgr_cfg = |extra_ms: u64| {
            // One connection attempt per reconnect: backoff is ours (`retry_raw`), bounded and in
            // ms. (The manager's own backoff starts at 1 s and would stall callers for seconds.)
            ConnectionManagerConfig::new()
                .set_number_of_retries(0)
                .set_connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
                .set_response_timeout(Duration::from_millis(cfg.response_timeout_ms + extra_ms))
        };
        let cmd = retry(&cfg, "connect", || ConnectionManager::new_with_config(client.clone(), mgr_cfg(0))).await?;
        let blocking = retry(&cfg, "connect", || {
            ConnectionManager::new_with_config(client.clone(), mgr_cfg(cfg.bus.max_block_ms))
        })
        .await?;
        Ok(RedisBus { cfg, cmd, blocking })
    }

    pub fn config(&self) -> &RedisBusConfig {
        &self.cfg
    }

    /// The Redis name of a stream or key (with the configured prefix).
    fn name(&self, name: &str) -> String {
        format!("{}{}", self.cfg.prefix, name)
    }

    async fn query<T: redis::FromRedisValue + Send>(
        &self,
        what: &'static str,
        c: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let conn = self.cmd.clone();
        retry_raw(&self.cfg, what, || {
            let mut conn = conn.clone();
            async move { c.query_async::<T>(&mut conn).await }
        })
        .await
    }

    async fn dead_letter_raw(
        &self,
        stream: &str,
        group: &str,
        entry_id: &str,
        fields: Vec<(String, Vec<u8>)>,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(dead_stream(stream)).arg("MAXLEN").arg("~").arg(self.cfg.bus.dead_maxlen).arg("*");
        for (k, v) in fields {
            xadd.arg(k).arg(v);
        }
        xadd.arg("dead_reason")
            .arg(truncate(reason, 1024))
            .arg("dead_source")
            .arg(entry_id)
            .arg("dead_group")
            .arg(group);
        let mut pipe = redis::pipe();
        pipe.atomic().add_command(xadd).ignore().cmd("XACK").arg(stream).arg(group).arg(entry_id).ignore();
        let conn = self.cmd.clone();
        retry_raw(&self.cfg, "dead_letter", || {
            let mut conn = conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async::<()>(&mut conn).await }
        })
        .await
        .map_err(redis_err)
    }

    /// Turns raw entries into deliveries; entries that are not envelopes are dead-lettered.
    async fn deliveries(
        &self,
        stream: &str,
        group: &str,
        ids: Vec<StreamId>,
        counts: &HashMap<String, u32>,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut out = Vec::with_capacity(ids.len());
        for sid in ids {
            let parsed = sid
                .id
                .parse::<EntryId>()
                .map_err(|e| e.to_string())
                .and_then(|entry_id| parse_envelope(&sid.map).map(|env| (entry_id, env)));
            match parsed {
                Ok((entry_id, envelope)) => {
                    out.push(Delivery { entry_id, envelope, deliveries: counts.get(&sid.id).copied().unwrap_or(1) })
                }
                Err(e) => {
                    tracing::warn!(%stream, entry = %sid.id, error = %e, "malformed entry dead-lettered");
                    self.dead_letter_raw(stream, group, &sid.id, raw_fields(&sid.map), &format!("malformed: {e}"))
                        .await?;
                }
            }
        }
        Ok(out)
    }
}

async fn retry<T, F, Fut>(cfg: &RedisBusConfig, what: &'static str, f: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RedisError>>,
{
    retry_raw(cfg, what, f).await.map_err(|e| {
        if retryable(&e) {
            BusError::Unavailable { attempts: cfg.retry_max_attempts, last: e.to_string() }
        } else {
            redis_err(e)
        }
    })
}

/// Runs `f` until it succeeds, fails with a non-connection error, or `retry_max_attempts` is used up.
async fn retry_raw<T, F, Fut>(cfg: &RedisBusConfig, what: &'static str, mut f: F) -> Result<T, RedisError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RedisError>>,
{
    let mut delay_ms = cfg.retry_initial_ms.max(1);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => {
                if attempt > 1 {
                    tracing::info!(what, attempt, "redis command succeeded after retry");
                }
                return Ok(v);
            }
            Err(e) if retryable(&e) && attempt < cfg.retry_max_attempts => {
                tracing::warn!(what, attempt, error = %e, delay_ms, "redis command failed; retrying");
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                delay_ms = (delay_ms * 2).min(cfg.retry_max_ms.max(1));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        other => format!("{other:?}").into_bytes(),
    }
}

fn field<T: std::str::FromStr>(map: &HashMap<String, Value>, name: &str) -> Result<T, String> {
    let v = map.get(name).ok_or_else(|| format!("missing field {name}"))?;
    let s: String = redis::from_redis_value(v).map_err(|e| format!("field {name}: {e}"))?;
    s.parse().map_err(|_| format!("field {name}: bad value {s:?}"))
}

fn parse_envelope(map: &HashMap<String, Value>) -> Result<Envelope, String> {
    let payload: String = field(map, "payload")?;
    let id: String = field(map, "id")?;
    Ok(Envelope {
        schema: field(map, "schema")?,
        id: MessageId(id.parse().map_err(|_| format!("field id: bad ulid {id:?}"))?),
        kind: field(map, "kind")?,
        tenant_id: field(map, "tenant_id")?,
        at_ms: field(map, "at_ms")?,
        payload: Payload::from_json_text(payload).map_err(|e| format!("field payload: {e}"))?,
    })
}

fn envelope_fields(env: &Envelope) -> Result<Vec<(String, Vec<u8>)>, BusError> {
    Ok(vec![
        ("schema".into(), env.schema.to_string().into_bytes()),
        ("id".into(), env.id.to_string().into_bytes()),
        ("kind".into(), env.kind.clone().into_bytes()),
        ("tenant_id".into(), env.tenant_id.to_string().into_bytes()),
        ("at_ms".into(), env.at_ms.to_string().into_bytes()),
        ("payload".into(), env.payload.text().as_bytes().to_vec()),
    ])
}

fn raw_fields(map: &HashMap<String, Value>) -> Vec<(String, Vec<u8>)> {
    map.iter().filter(|(k, _)| !k.starts_with("dead_")).map(|(k, v)| (k.clone(), value_bytes(v))).collect()
}

impl RedisBus {
    fn xadd(&self, stream: &str, env: &Envelope) -> Result<redis::Cmd, BusError> {
        let mut c = redis::cmd("XADD");
        c.arg(stream).arg("MAXLEN").arg("~").arg(self.cfg.bus.maxlen).arg("*");
        for (k, v) in envelope_fields(env)? {
            c.arg(k).arg(v);
        }
        Ok(c)
    }
}

impl Bus for RedisBus {
    async fn publish(&self, stream: &str, env: &Envelope) -> Result<EntryId, BusError> {
        let stream = &self.name(stream);
        self.cfg.bus.check(stream, 1, 0)?;
        let c = self.xadd(stream, env)?;
        let id: String = self.query("publish", &c).await.map_err(|e| self.fail(e))?;
        id.parse()
    }

    async fn publish_many(&self, stream: &str, envs: &[Envelope]) -> Result<Vec<EntryId>, BusError> {
        let stream = &self.name(stream);
        self.cfg.bus.check(stream, 1, 0)?;
        if envs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for env in envs {
            pipe.add_command(self.xadd(stream, env)?);
        }
        let conn = self.cmd.clone();
        let ids: Vec<String> = retry_raw(&self.cfg, "publish_many", || {
            let mut conn = conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut conn).await }
        })
        .await
        .map_err(|e| self.fail(e))?;
        ids.iter().map(|id| id.parse()).collect()
    }

    async fn read_after(
        &self,
        stream: &str,
        after: EntryId,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<(EntryId, Envelope)>, BusError> {
        let stream = &self.name(stream);
        self.cfg.bus.check(stream, count, block_ms)?;
        let mut c = redis::cmd("XREAD");
        c.arg("COUNT").arg(count);
        if block_ms > 0 {
            c.arg("BLOCK").arg(block_ms);
        }
        c.arg("STREAMS").arg(stream).arg(after.to_string());
        let conn = if block_ms > 0 { self.blocking.clone() } else { self.cmd.clone() };
        let reply: Option<StreamReadReply> = retry_raw(&self.cfg, "read_after", || {
            let mut conn = conn.clone();
            let c = &c;
            async move { c.query_async::<Option<StreamReadReply>>(&mut conn).await }
        })
        .await
        .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for sid in reply.map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>()).unwrap_or_default() {
            match (sid.id.parse::<EntryId>(), parse_envelope(&sid.map)) {
                (Ok(id), Ok(env)) => out.push((id, env)),
                (_, Err(e)) => tracing::warn!(%stream, entry = %sid.id, error = %e, "malformed entry skipped"),
                (Err(e), _) => tracing::warn!(%stream, entry = %sid.id, error = %e, "malformed entry id skipped"),
            }
        }
        Ok(out)
    }

    async fn last_entry_id(&self, stream: &str) -> Result<Option<EntryId>, BusError> {
        let stream = &self.name(stream);
        let mut c = redis::cmd("XREVRANGE");
        c.arg(stream).arg("+").arg("-").arg("COUNT").arg(1);
        let reply: StreamRangeReply = self.query("last_entry_id", &c).await.map_err(|e| self.fail(e))?;
        reply.ids.first().map(|sid| sid.id.parse()).transpose()
    }

    async fn set_value(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), BusError> {
        let key = &self.name(key);
        super::check_value(value)?;
        let mut c = redis::cmd("SET");
        c.arg(key).arg(value).arg("PX").arg(ttl_ms.max(1));
        self.query::<()>("set_value", &c).await.map_err(|e| self.fail(e))
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>, BusError> {
        let key = &self.name(key);
        let mut c = redis::cmd("GET");
        c.arg(key);
        self.query("get_value", &c).await.map_err(|e| self.fail(e))
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BusError> {
        let stream = &self.name(stream);
        self.cfg.bus.check(stream, 1, 0)?;
        let mut c = redis::cmd("XGROUP");
        c.arg("CREATE").arg(stream).arg(group).arg("0").arg("MKSTREAM");
        match self.query::<()>("ensure_group", &c).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Delivery>, BusError> {
        let stream = &self.name(stream);
        self.cfg.bus.check(stream, count, block_ms)?;
        let mut c = redis::cmd("XREADGROUP");
        c.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count);
        if block_ms > 0 {
            // BLOCK 0 would block forever: only a positive block is sent.
            c.arg("BLOCK").arg(block_ms);
        }
        c.arg("STREAMS").arg(stream).arg(">");
        let conn = if block_ms > 0 { self.blocking.clone() } else { self.cmd.clone() };
        let reply: Option<StreamReadReply> = retry_raw(&self.cfg, "read", || {
            let mut conn = conn.clone();
            let c = &c;
            async move { c.query_async::<Option<StreamReadReply>>(&mut conn).await }
        })
        .await
        .map_err(|e| self.fail_group(e, stream, group))?;
        let ids = reply.map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect()).unwrap_or_default();
        self.deliveries(stream, group, ids, &HashMap::new()).await
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<u64, BusError> {
        let stream = &self.name(stream);
        if ids.is_empty() {
            return Ok(0);
        }
        let mut c = redis::cmd("XACK");
        c.arg(stream).arg(group);
        for id in ids {
            c.arg(id.to_string());
        }
        self.query("ack", &c).await.map_err(|e| self.fail_group(e, stream, group))
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let stream = &self.name(stream);
        self.cfg.bus.check(stream, count, 0)?;
        let mut c = redis::cmd("XAUTOCLAIM");
        c.arg(stream).arg(group).arg(consumer).arg(min_idle_ms).arg("0-0").arg("COUNT").arg(count);
        let reply: StreamAutoClaimReply =
            self.query("claim_stale", &c).await.map_err(|e| self.fail_group(e, stream, group))?;
        for id in &reply.deleted_ids {
            tracing::warn!(%stream, %group, entry = %id, "pending entry trimmed before ack");
        }
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        // Delivery counts of the claimed entries (XAUTOCLAIM incremented them), one round trip.
        let mut pipe = redis::pipe();
        for sid in &reply.claimed {
            pipe.cmd("XPENDING").arg(stream).arg(group).arg(&sid.id).arg(&sid.id).arg(1);
        }
        let conn = self.cmd.clone();
        let pending: Vec<StreamPendingCountReply> = retry_raw(&self.cfg, "claim_counts", || {
            let mut conn = conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut conn).await }
        })
        .await
        .map_err(|e| self.fail(e))?;
        let counts: HashMap<String, u32> = pending
            .into_iter()
            .flat_map(|r| r.ids)
            .map(|p| (p.id, u32::try_from(p.times_delivered).unwrap_or(u32::MAX)))
            .collect();
        let mut live = Vec::with_capacity(reply.claimed.len());
        for sid in reply.claimed {
            match counts.get(&sid.id) {
                // Acked by its old owner meanwhile: nothing to do.
                None => {}
                Some(&n) if n > self.cfg.bus.max_deliveries => {
                    let reason = format!("delivered {} times without ack", n - 1);
                    tracing::warn!(%stream, %group, entry = %sid.id, %reason, "dead-lettered");
                    self.dead_letter_raw(stream, group, &sid.id, raw_fields(&sid.map), &reason).await?;
                }
                Some(_) => live.push(sid),
            }
        }
        self.deliveries(stream, group, live, &counts).await
    }

    async fn dead_letter(&self, stream: &str, group: &str, delivery: &Delivery, reason: &str) -> Result<(), BusError> {
        let stream = &self.name(stream);
        let fields = envelope_fields(&delivery.envelope)?;
        self.dead_letter_raw(stream, group, &delivery.entry_id.to_string(), fields, reason).await
    }

    async fn dead_letters(&self, stream: &str, count: usize) -> Result<Vec<DeadLetter>, BusError> {
        let stream = &self.name(stream);
        self.cfg.bus.check(stream, count, 0)?;
        let mut c = redis::cmd("XRANGE");
        c.arg(dead_stream(stream)).arg("-").arg("+").arg("COUNT").arg(count);
        let reply: StreamRangeReply = self.query("dead_letters", &c).await.map_err(|e| self.fail(e))?;
        reply
            .ids
            .into_iter()
            .map(|sid| {
                Ok(DeadLetter {
                    entry_id: sid.id.parse()?,
                    source_entry_id: field(&sid.map, "dead_source").unwrap_or_default(),
                    group: field(&sid.map, "dead_group").unwrap_or_default(),
                    reason: field(&sid.map, "dead_reason").unwrap_or_default(),
                    envelope: parse_envelope(&sid.map).ok(),
                })
            })
            .collect()
    }

    async fn len(&self, stream: &str) -> Result<u64, BusError> {
        let stream = &self.name(stream);
        let mut c = redis::cmd("XLEN");
        c.arg(stream);
        self.query("len", &c).await.map_err(|e| self.fail(e))
    }

    async fn pending(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        let stream = &self.name(stream);
        let mut c = redis::cmd("XPENDING");
        c.arg(stream).arg(group);
        let v: Vec<Value> = self.query("pending", &c).await.map_err(|e| self.fail_group(e, stream, group))?;
        match v.first() {
            Some(n) => redis::from_redis_value(n).map_err(redis_err),
            None => Err(BusError::Protocol("empty XPENDING reply".into())),
        }
    }

    async fn groups(&self, stream: &str) -> Result<Vec<(String, Option<u64>)>, BusError> {
        let stream = &self.name(stream);
        let mut c = redis::cmd("XINFO");
        c.arg("GROUPS").arg(stream);
        let reply: redis::streams::StreamInfoGroupsReply = match self.query("groups", &c).await {
            Ok(r) => r,
            Err(e) if e.to_string().contains("no such key") => return Ok(Vec::new()),
            Err(e) => return Err(self.fail(e)),
        };
        let mut out = Vec::with_capacity(reply.groups.len());
        for g in reply.groups {
            let mut c = redis::cmd("XINFO");
            c.arg("CONSUMERS").arg(stream).arg(&g.name);
            let consumers: Value = match self.query("groups", &c).await {
                Ok(r) => r,
                // Destroyed meanwhile.
                Err(e) if is_nogroup(&e) => continue,
                Err(e) => return Err(self.fail(e)),
            };
            out.push((g.name, least_idle(&consumers)));
        }
        Ok(out)
    }

    async fn destroy_group(&self, stream: &str, group: &str) -> Result<bool, BusError> {
        let stream = &self.name(stream);
        let mut c = redis::cmd("XGROUP");
        c.arg("DESTROY").arg(stream).arg(group);
        match self.query::<i64>("destroy_group", &c).await {
            Ok(n) => Ok(n > 0),
            Err(e) if e.to_string().contains("no such key") => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn lag(&self, stream: &str, group: &str) -> Result<Option<u64>, BusError> {
        let stream = &self.name(stream);
        let mut c = redis::cmd("XINFO");
        c.arg("GROUPS").arg(stream);
        let reply: redis::streams::StreamInfoGroupsReply = self.query("lag", &c).await.map_err(|e| self.fail(e))?;
        match reply.groups.iter().find(|g| g.name == group) {
            Some(g) => Ok(g.lag.map(|n| n as u64)),
            None => Err(BusError::NoGroup { stream: stream.to_owned(), group: group.to_owned() }),
        }
    }
}

/// The least `idle` (ms) among the consumers of an `XINFO CONSUMERS` reply (RESP2 arrays of
/// pairs or RESP3 maps); `None` without consumers.
fn least_idle(reply: &Value) -> Option<u64> {
    let Value::Array(consumers) = reply else { return None };
    consumers
        .iter()
        .filter_map(|c| {
            let pairs: Vec<(&Value, &Value)> = match c {
                Value::Array(kv) => kv.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
                Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
                _ => return None,
            };
            pairs.into_iter().find_map(|(k, v)| {
                let key: String = redis::from_redis_value(k).ok()?;
                if key == "idle" {
                    redis::from_redis_value::<u64>(v).ok()
                } else {
                    None
                }
            })
        })
        .min()
}

impl RedisBus {
    fn fail(&self, e: RedisError) -> BusError {
        if retryable(&e) {
            BusError::Unavailable { attempts: self.cfg.retry_max_attempts, last: e.to_string() }
        } else {
            redis_err(e)
        }
    }

    fn fail_group(&self, e: RedisError, stream: &str, group: &str) -> BusError {
        if is_nogroup(&e) {
            BusError::NoGroup { stream: stream.to_owned(), group: group.to_owned() }
        } else {
            self.fail(e)
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_hides_the_password_of_the_url() {
        let text = format!("{:?}", RedisBusConfig::new("redis://:s3cret@cache.example:6379/0"));
        assert!(!text.contains("s3cret") && text.contains("redis://:***@cache.example:6379/0"), "{text}");
        assert_eq!(redact_url("redis://bus:pw@h"), "redis://bus:***@h");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
