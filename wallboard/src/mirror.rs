//! The wallboard across processes. When the control service runs in another process than the API,
//! it mirrors its [`Feed`] on the bus, and each API process follows the mirror into a local feed:
//!
//! - [`MirrorWriter`] (in the control service): every change, in feed order, to the tenant's stream
//!   `kakeru:t{tenant}:wallboard` (chunks of [`CHUNK`] changes per entry, bounded by `MAXLEN`), and
//!   about once a second, when something changed, the whole feed with the id of the last entry it
//!   includes to the key `kakeru:t{tenant}:wallboard:snapshot`.
//! - [`follow`] (in the API): at start (and whenever it loses track) it loads the snapshot key into
//!   the local feed ([`Feed::reset`]), then reads the stream after the snapshot's entry (`XREAD`,
//!   blocking: a change arrives within milliseconds) and applies each change with the sequence
//!   number control gave it ([`Feed::apply`]), so `Last-Event-ID` means the same in every API
//!   process. A sequence gap larger than a restart of control explains (entries trimmed before the
//!   follower read them) reloads the snapshot.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Change, Feed, Snapshot};
use bus::{Bus, BusError, EntryId, Envelope};
use wire::Message;

/// Changes per stream entry.
pub const CHUNK: usize = 256;
/// How long a snapshot key lives without being rewritten (a control service that is gone).
pub const SNAPSHOT_TTL_MS: u64 = 24 * 3_600_000;
/// Entries read per `XREAD`.
const READ_COUNT: usize = 64;
const READ_BLOCK_MS: u64 = 1_000;

/// The tenant's wallboard stream.
pub fn stream(tenant_id: u64) -> String {
    format!("kakeru:t{tenant_id}:wallboard")
}

/// The key of the tenant's wallboard snapshot.
pub fn snapshot_key(tenant_id: u64) -> String {
    format!("kakeru:t{tenant_id}:wallboard:snapshot")
}

/// One entry of the wallboard stream: consecutive changes of the feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WallboardChanges {
    pub changes: Vec<Change>,
}

impl Message for WallboardChanges {
    const KIND: &'static str = "wallboard_changes";
    const SCHEMA: u16 = 1;
}

/// The snapshot key's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// The last stream entry whose changes the snapshot includes (`None`: none yet).
    pub entry_id: Option<String>,
    pub snapshot: Snapshot,
}

/// The writing side, owned by the control service's owner task.
#[derive(Debug)]
pub struct MirrorWriter {
    tenant_id: u64,
    stream: String,
    key: String,
    last_entry: Option<EntryId>,
    /// Changes published since the snapshot key was last written.
    dirty: bool,
}

impl MirrorWriter {
    pub fn new(tenant_id: u64) -> Self {
        MirrorWriter {
            tenant_id,
            stream: stream(tenant_id),
            key: snapshot_key(tenant_id),
            last_entry: None,
            dirty: true,
        }
    }

    /// Publishes changes (in feed order) to the stream; returns once stored.
    pub async fn publish<B: Bus>(&mut self, bus: &B, now_ms: u64, changes: &[Arc<Change>]) -> Result<(), BusError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut envs = Vec::with_capacity(changes.len().div_ceil(CHUNK));
        for chunk in changes.chunks(CHUNK) {
            let msg = WallboardChanges { changes: chunk.iter().map(|c| (**c).clone()).collect() };
            envs.push(Envelope::new(self.tenant_id, now_ms, &msg).map_err(|e| BusError::Protocol(e.to_string()))?);
        }
        let ids = bus.publish_many(&self.stream, &envs).await?;
        if let Some(last) = ids.last() {
            self.last_entry = Some(*last);
        }
        self.dirty = true;
        Ok(())
    }

    /// Rewrites the snapshot key from `feed` if anything was published since the last write.
    /// Call from the same task as [`MirrorWriter::publish`], so the snapshot and the entry id agree.
    pub async fn write_snapshot<B: Bus>(&mut self, bus: &B, feed: &Feed) -> Result<(), BusError> {
        if !self.dirty {
            return Ok(());
        }
        let v = StoredSnapshot { entry_id: self.last_entry.map(|e| e.to_string()), snapshot: feed.snapshot() };
        bus.set_value(&self.key, &serde_json::to_string(&v)?, SNAPSHOT_TTL_MS).await?;
        self.dirty = false;
        Ok(())
    }
}

/// Counters of a follower (for tests and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowStats {
    pub snapshots: u64,
    pub entries: u64,
    pub changes: u64,
    pub errors: u64,
}

async fn load_snapshot<B: Bus>(bus: &B, tenant_id: u64) -> Result<Option<(EntryId, Snapshot)>, BusError> {
    let Some(v) = bus.get_value(&snapshot_key(tenant_id)).await? else { return Ok(None) };
    let s: StoredSnapshot = serde_json::from_str(&v)?;
    let after = match s.entry_id {
        Some(e) => e.parse()?,
        None => EntryId::default(),
    };
    Ok(Some((after, s.snapshot)))
}

/// Follows control's mirror of the tenant's wallboard into `feed` until `shutdown` turns true.
/// Bus errors are retried with a bounded backoff (Redis restarting, a connection dropped); the
/// position is kept, so nothing is skipped.
pub async fn follow<B: Bus>(
    bus: B,
    tenant_id: u64,
    feed: Arc<Feed>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> FollowStats {
    let s = stream(tenant_id);
    let mut stats = FollowStats::default();
    let mut after: Option<EntryId> = None;
    let mut backoff_ms = 10u64;
    while !*shutdown.borrow() {
        let step = async {
            if after.is_none() {
                match load_snapshot(&bus, tenant_id).await? {
                    Some((at, snap)) => {
                        feed.reset(snap);
                        stats.snapshots += 1;
                        after = Some(at);
                    }
                    None => {
                        // Nothing written yet: everything the stream holds, from the start.
                        feed.reset(Snapshot::default());
                        after = Some(EntryId::default());
                    }
                }
            }
            let from = after.unwrap_or_default();
            let entries = bus.read_after(&s, from, READ_COUNT, READ_BLOCK_MS).await?;
            for (id, env) in entries {
                stats.entries += 1;
                let msg: WallboardChanges = match env.decode() {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(stream = %s, entry = %id, error = %e, "wallboard entry skipped");
                        after = Some(id);
                        continue;
                    }
                };
                let first = msg.changes.first().map(|c| c.seq).unwrap_or(0);
                let have = feed.seq();
                // A gap: entries trimmed before we read them, or a restarted control service
                // (which starts its sequence from its clock and sends every tile again).
                if first > have + 1 && have > 0 {
                    if let Some((at, snap)) = load_snapshot(&bus, tenant_id).await? {
                        if snap.seq + 1 >= first && snap.seq > have {
                            tracing::info!(stream = %s, have, first, "wallboard gap: reloading the snapshot");
                            feed.reset(snap);
                            stats.snapshots += 1;
                            after = Some(at.max(id));
                            if at > id {
                                continue;
                            }
                        }
                    }
                }
                stats.changes += feed.apply(msg.changes) as u64;
                after = Some(id);
            }
            Ok::<(), BusError>(())
        };
        let r = tokio::select! {
            r = step => Some(r),
            _ = shutdown.changed() => None,
        };
        match r {
            Some(Ok(())) | None => backoff_ms = 10,
            Some(Err(e)) => {
                stats.errors += 1;
                tracing::warn!(tenant = tenant_id, error = %e, "wallboard follower: bus error; retrying");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(2_000);
            }
        }
    }
    stats
}
