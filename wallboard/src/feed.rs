//! [`Feed`]: the sequence-numbered tile feed of one tenant, with its current tiles, a bounded replay
//! ring and a bounded broadcast to live subscribers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{AgentTile, CampaignTile, GroupTile, TenantTile, Tile};
use wire::AgentId;
use wire::{CampaignId, DialingGroupId};

/// One change in the feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Feed sequence number (the SSE event id). Strictly increasing.
    pub seq: u64,
    pub at_ms: u64,
    #[serde(flatten)]
    pub tile: Tile,
}

/// The state of every tile at `seq`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last change the snapshot includes; resume the feed after it.
    pub seq: u64,
    pub agents: Vec<AgentTile>,
    pub campaigns: Vec<CampaignTile>,
    #[serde(default)]
    pub groups: Vec<GroupTile>,
    #[serde(default)]
    pub tenant: Option<TenantTile>,
}

/// Bounds of a [`Feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedLimits {
    /// Changes kept for resuming after a reconnect.
    pub replay: usize,
    /// Changes buffered per subscriber before it is skipped to a snapshot.
    pub per_client: usize,
}

impl Default for FeedLimits {
    fn default() -> Self {
        FeedLimits { replay: 16_384, per_client: 4_096 }
    }
}

/// What live subscribers receive.
#[derive(Clone, Debug, PartialEq)]
pub enum Push {
    Change(Arc<Change>),
    /// The feed was replaced by a snapshot (a mirror that lost track): send the subscriber a fresh
    /// snapshot.
    Reset,
}

#[derive(Debug, Default)]
struct Tiles {
    agents: BTreeMap<AgentId, AgentTile>,
    campaigns: BTreeMap<CampaignId, CampaignTile>,
    groups: BTreeMap<DialingGroupId, GroupTile>,
    tenant: Option<TenantTile>,
}

impl Tiles {
    fn put(&mut self, tile: &Tile) {
        match tile {
            Tile::Agent(a) => {
                self.agents.insert(a.agent_id, a.clone());
            }
            Tile::Campaign(c) => {
                self.campaigns.insert(c.campaign_id, c.clone());
            }
            Tile::Group(g) => {
                self.groups.insert(g.dialing_group_id, g.clone());
            }
            Tile::Tenant(t) => self.tenant = Some(t.clone()),
        }
    }
}

#[derive(Debug)]
struct FeedInner {
    seq: u64,
    ring: VecDeque<Arc<Change>>,
    tiles: Tiles,
}

/// The wallboard change feed of one tenant: the current tiles, a bounded replay ring and a bounded
/// broadcast to live subscribers. Shared (`Arc`) between its writer (the control service, or the
/// API's mirror of a control service in another process) and the API's SSE handlers (readers).
#[derive(Debug)]
pub struct Feed {
    limits: FeedLimits,
    inner: Mutex<FeedInner>,
    tx: broadcast::Sender<Push>,
}

/// Where a new subscriber starts.
#[derive(Debug)]
pub enum Start {
    /// The changes after the client's last id, in order; then live.
    Replay(Vec<Arc<Change>>),
    /// The client's id is unknown or too old (or absent): the full state, then live.
    Snapshot(Box<Snapshot>),
}

/// A live subscription: the start, then the receiver of later pushes. A receiver that lags past
/// [`FeedLimits::per_client`] gets `RecvError::Lagged`: the SSE handler then sends a snapshot.
#[derive(Debug)]
pub struct Subscription {
    pub start: Start,
    pub rx: broadcast::Receiver<Push>,
}

impl Feed {
    pub fn new(limits: FeedLimits) -> Self {
        Self::starting_at(limits, 0)
    }

    /// A feed whose first change gets `last_seq + 1`. A writer that may restart (a control process)
    /// starts from its clock (`now_ms * 1000`), so its sequence numbers keep increasing across
    /// restarts while it makes fewer than 1,000 changes a millisecond on average, and ids clients
    /// hold from before a restart stay meaningful.
    pub fn starting_at(limits: FeedLimits, last_seq: u64) -> Self {
        let (tx, _) = broadcast::channel(limits.per_client.max(1));
        Feed {
            limits,
            inner: Mutex::new(FeedInner { seq: last_seq, ring: VecDeque::new(), tiles: Tiles::default() }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, FeedInner> {
        // A panic while holding the lock cannot leave the tiles half-written (each update is one
        // insert), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, g: &mut FeedInner, ch: Arc<Change>) {
        g.tiles.put(&ch.tile);
        g.seq = ch.seq;
        g.ring.push_back(ch.clone());
        while g.ring.len() > self.limits.replay {
            g.ring.pop_front();
        }
        // No subscriber is not an error.
        let _ = self.tx.send(Push::Change(ch));
    }

    /// Appends tiles as changes numbered by this feed (the writer: one control service per tenant).
    /// Returns the changes made.
    pub fn publish(&self, at_ms: u64, tiles: Vec<Tile>) -> Vec<Arc<Change>> {
        let mut g = self.lock();
        let mut out = Vec::with_capacity(tiles.len());
        for tile in tiles {
            let ch = Arc::new(Change { seq: g.seq + 1, at_ms, tile });
            self.push(&mut g, ch.clone());
            out.push(ch);
        }
        out
    }

    /// Appends changes numbered elsewhere (a mirror of another process's feed), skipping those at or
    /// below the current sequence (already applied). Returns how many were applied.
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>) -> usize {
        let mut g = self.lock();
        let mut n = 0;
        for ch in changes {
            if ch.seq <= g.seq {
                continue;
            }
            self.push(&mut g, Arc::new(ch));
            n += 1;
        }
        n
    }

    /// Replaces the whole state with a snapshot (a mirror starting, or one that lost track): the
    /// replay ring is emptied (older ids get a snapshot) and live subscribers are told to resync.
    pub fn reset(&self, s: Snapshot) {
        let mut g = self.lock();
        g.seq = s.seq;
        g.ring.clear();
        g.tiles = Tiles::default();
        for a in s.agents {
            g.tiles.agents.insert(a.agent_id, a);
        }
        for c in s.campaigns {
            g.tiles.campaigns.insert(c.campaign_id, c);
        }
        for gr in s.groups {
            g.tiles.groups.insert(gr.dialing_group_id, gr);
        }
        g.tiles.tenant = s.tenant;
        let _ = self.tx.send(Push::Reset);
    }

    /// The current state.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        Self::snapshot_of(&g)
    }

    fn snapshot_of(g: &FeedInner) -> Snapshot {
        Snapshot {
            seq: g.seq,
            agents: g.tiles.agents.values().cloned().collect(),
            campaigns: g.tiles.campaigns.values().cloned().collect(),
            groups: g.tiles.groups.values().cloned().collect(),
            tenant: g.tiles.tenant.clone(),
        }
    }

    /// The last sequence number.
    pub fn seq(&self) -> u64 {
        self.lock().seq
    }

    /// Subscribes, resuming after `last_seq` when the ring still holds what follows it.
    pub fn subscribe(&self, last_seq: Option<u64>) -> Subscription {
        let g = self.lock();
        let rx = self.tx.subscribe();
        let oldest = g.ring.front().map(|c| c.seq).unwrap_or(g.seq + 1);
        let start = match last_seq {
            Some(s) if s <= g.seq && s + 1 >= oldest => {
                Start::Replay(g.ring.iter().filter(|c| c.seq > s).cloned().collect())
            }
            _ => Start::Snapshot(Box::new(Self::snapshot_of(&g))),
        };
        Subscription { start, rx }
    }
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new(FeedLimits::default())
    }
}
