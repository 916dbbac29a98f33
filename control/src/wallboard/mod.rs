//! The live wallboard (SPEC 6): aggregates kept incrementally per tenant, per campaign and per agent
//! ([`Wallboard`], fed by the control service with the same events it applies), and the change feed
//! the API serves as a snapshot and as server-sent events ([`Feed`]).
//!
//! Every change is a whole tile (one agent, or one campaign) with a feed sequence number; a snapshot
//! is the set of current tiles with the sequence it includes. A client resumes after a reconnect from
//! its last sequence (`Last-Event-ID`) out of a bounded replay ring; older than the ring, or too slow
//! for its bounded channel, it is sent a fresh snapshot and continues from there (never an unbounded
//! buffer per client).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::agent::{AgentId, AgentState, CallId, Transition};
use crate::messages::CampaignId;

const DAY_MS: u64 = 86_400_000;
/// Rolling 24 h in 5-minute buckets (also the 5-minute answer-rate series of SPEC 6).
const BUCKET_24H_MS: u64 = 300_000;
/// Rolling 30 days in 1-hour buckets.
const BUCKET_30D_MS: u64 = 3_600_000;
/// Most customer calls tracked at once (answered, not ended); beyond it a call is counted but not
/// followed (its end is not attributed).
const MAX_TRACKED_CALLS: usize = 200_000;

/// Counts of one rolling bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Customers who answered (待ち呼 created).
    pub answered: u64,
    /// Answered customers bridged to an agent.
    pub connected: u64,
    /// Answered customers who left (or were released) before an agent took them (破棄呼).
    pub abandoned: u64,
}

/// A rolling window of bucketed counts.
#[derive(Clone, Debug)]
struct Rolling {
    bucket_ms: u64,
    window_ms: u64,
    buckets: VecDeque<(u64, Counts)>,
}

impl Rolling {
    fn new(bucket_ms: u64, window_ms: u64) -> Self {
        Rolling { bucket_ms, window_ms, buckets: VecDeque::new() }
    }

    fn add(&mut self, now_ms: u64, f: impl FnOnce(&mut Counts)) {
        let start = now_ms - now_ms % self.bucket_ms;
        match self.buckets.back_mut() {
            Some((s, c)) if *s == start => f(c),
            // A late event (clock of another host behind ours) counts in the newest bucket.
            Some((s, c)) if *s > start => f(c),
            _ => {
                let mut c = Counts::default();
                f(&mut c);
                self.buckets.push_back((start, c));
            }
        }
        self.expire(now_ms);
    }

    fn expire(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(self.window_ms);
        while self.buckets.front().is_some_and(|(s, _)| s + self.bucket_ms <= oldest) {
            self.buckets.pop_front();
        }
    }

    fn total(&self) -> Counts {
        self.buckets.iter().fold(Counts::default(), |mut t, (_, c)| {
            t.answered += c.answered;
            t.connected += c.connected;
            t.abandoned += c.abandoned;
            t
        })
    }
}

/// Rates over a window (0.0 when nothing answered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub answered: u64,
    pub connected: u64,
    pub abandoned: u64,
    /// connected / answered.
    pub answer_rate: f64,
    /// abandoned / answered (the abandon rate held against the campaign's target).
    pub abandon_rate: f64,
}

impl From<Counts> for Rates {
    fn from(c: Counts) -> Self {
        let r = |n: u64| if c.answered == 0 { 0.0 } else { n as f64 / c.answered as f64 };
        Rates {
            answered: c.answered,
            connected: c.connected,
            abandoned: c.abandoned,
            answer_rate: r(c.connected),
            abandon_rate: r(c.abandoned),
        }
    }
}

/// One agent on the wallboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentTile {
    pub agent_id: AgentId,
    pub state: AgentState,
    /// When the agent entered `state` (time in state = now - since_ms).
    pub since_ms: u64,
    pub campaign_id: Option<CampaignId>,
    /// Customers talked to since the day started (UTC day of the control service).
    pub calls_today: u64,
    /// Length of the last customer conversation.
    pub last_call_ms: Option<u64>,
}

/// One campaign on the wallboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignTile {
    pub campaign_id: CampaignId,
    /// Customers answered and waiting for an agent now.
    pub waiting: u64,
    /// Customers bridged to an agent now.
    pub talking_calls: u64,
    /// Agents of the campaign's call jobs by state name (`ready`, `talking`, `paused`, ...).
    pub agents_by_state: BTreeMap<String, u64>,
    /// Agents logged in (not offline).
    pub agents_online: u64,
    /// Calls ended today (UTC day).
    pub calls_today: u64,
    /// Today's counts.
    pub today: Counts,
    pub last_24h: Rates,
    pub last_30d: Rates,
    /// 5-minute buckets of the last 24 h: (bucket start ms, counts).
    pub series_5min: Vec<(u64, Counts)>,
    /// Calls being dialled (reported by the dialer; `None` until it reports).
    pub dials_in_flight: Option<u64>,
    /// Dial level: (waiting + dials in flight) per ready agent; `None` with no ready agent.
    pub dial_level: Option<f64>,
    /// Leads left to dial (from the database, filled by the snapshot endpoint; `None` in the feed).
    pub remaining_leads: Option<u64>,
}

/// A wallboard change: one tile, replaced whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "tile", rename_all = "snake_case")]
pub enum Tile {
    Agent(AgentTile),
    Campaign(CampaignTile),
}

#[derive(Debug)]
struct CampaignAgg {
    waiting: BTreeSet<CallId>,
    talking: BTreeSet<CallId>,
    agents_by_state: BTreeMap<&'static str, u64>,
    calls_today: u64,
    today: Counts,
    day: u64,
    r24: Rolling,
    r30: Rolling,
    dials_in_flight: Option<u64>,
}

impl CampaignAgg {
    fn new() -> Self {
        CampaignAgg {
            waiting: BTreeSet::new(),
            talking: BTreeSet::new(),
            agents_by_state: BTreeMap::new(),
            calls_today: 0,
            today: Counts::default(),
            day: 0,
            r24: Rolling::new(BUCKET_24H_MS, DAY_MS),
            r30: Rolling::new(BUCKET_30D_MS, 30 * DAY_MS),
            dials_in_flight: None,
        }
    }

    fn count(&mut self, now_ms: u64, f: impl Fn(&mut Counts) + Copy) {
        let day = now_ms / DAY_MS;
        if day != self.day {
            self.day = day;
            self.today = Counts::default();
            self.calls_today = 0;
        }
        f(&mut self.today);
        self.r24.add(now_ms, f);
        self.r30.add(now_ms, f);
    }

    fn tile(&self, id: CampaignId, now_ms: u64) -> CampaignTile {
        let mut r24 = self.r24.clone();
        r24.expire(now_ms);
        let mut r30 = self.r30.clone();
        r30.expire(now_ms);
        let ready = self.agents_by_state.get("ready").copied().unwrap_or(0);
        let online = self.agents_by_state.iter().filter(|(k, _)| **k != "offline").map(|(_, v)| *v).sum();
        let waiting = self.waiting.len() as u64;
        CampaignTile {
            campaign_id: id,
            waiting,
            talking_calls: self.talking.len() as u64,
            agents_by_state: self.agents_by_state.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            agents_online: online,
            calls_today: self.calls_today,
            today: self.today,
            last_24h: r24.total().into(),
            last_30d: r30.total().into(),
            series_5min: r24.buckets.iter().copied().collect(),
            dials_in_flight: self.dials_in_flight,
            dial_level: (ready > 0).then(|| (waiting + self.dials_in_flight.unwrap_or(0)) as f64 / ready as f64),
            remaining_leads: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct CallInfo {
    campaign_id: CampaignId,
    bridged_at: Option<u64>,
}

/// The wallboard aggregates of one tenant. Sans-IO: fed events with their time, asked for the tiles
/// that changed.
#[derive(Debug, Default)]
pub struct Wallboard {
    agents: BTreeMap<AgentId, AgentTile>,
    agent_day: HashMap<AgentId, u64>,
    campaigns: BTreeMap<CampaignId, CampaignAgg>,
    calls: HashMap<CallId, CallInfo>,
    dirty_agents: BTreeSet<AgentId>,
    dirty_campaigns: BTreeSet<CampaignId>,
}

impl Wallboard {
    pub fn new() -> Self {
        Self::default()
    }

    fn campaign(&mut self, id: CampaignId) -> &mut CampaignAgg {
        self.dirty_campaigns.insert(id);
        self.campaigns.entry(id).or_insert_with(CampaignAgg::new)
    }

    /// An agent's call job campaign (on start of a call job, or restored).
    pub fn set_agent(&mut self, agent_id: AgentId, state: AgentState, since_ms: u64, campaign: Option<CampaignId>) {
        let old = self.agents.get(&agent_id).map(|t| (t.campaign_id, t.state));
        if let Some((Some(c), s)) = old {
            let agg = self.campaign(c);
            if let Some(n) = agg.agents_by_state.get_mut(s.name()) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(c) = campaign {
            *self.campaign(c).agents_by_state.entry(state.name()).or_insert(0) += 1;
        }
        let t = self.agents.entry(agent_id).or_insert(AgentTile {
            agent_id,
            state,
            since_ms,
            campaign_id: campaign,
            calls_today: 0,
            last_call_ms: None,
        });
        t.state = state;
        t.since_ms = since_ms;
        t.campaign_id = campaign;
        self.dirty_agents.insert(agent_id);
    }

    /// An agent transition.
    pub fn transition(&mut self, t: &Transition) {
        let campaign = self.agents.get(&t.agent_id).and_then(|a| a.campaign_id);
        self.set_agent(t.agent_id, t.to, t.at_ms, campaign);
        if matches!(t.from, AgentState::Talking | AgentState::Hold)
            && !matches!(t.to, AgentState::Talking | AgentState::Hold)
        {
            let day = t.at_ms / DAY_MS;
            let bridged_at = t.call_id.and_then(|c| self.calls.get(&c)).and_then(|c| c.bridged_at);
            let last_day = self.agent_day.insert(t.agent_id, day);
            if let Some(a) = self.agents.get_mut(&t.agent_id) {
                if last_day != Some(day) {
                    a.calls_today = 0;
                }
                a.calls_today += 1;
                a.last_call_ms = bridged_at.map(|b| t.at_ms.saturating_sub(b));
            }
        }
    }

    /// A customer answered and waits (待ち呼).
    pub fn customer_answered(&mut self, now_ms: u64, call_id: CallId, campaign_id: CampaignId) {
        if self.calls.len() >= MAX_TRACKED_CALLS && !self.calls.contains_key(&call_id) {
            self.campaign(campaign_id).count(now_ms, |c| c.answered += 1);
            return;
        }
        if self.calls.insert(call_id, CallInfo { campaign_id, bridged_at: None }).is_some() {
            return;
        }
        let agg = self.campaign(campaign_id);
        agg.waiting.insert(call_id);
        agg.count(now_ms, |c| c.answered += 1);
    }

    /// The customer is bridged to an agent.
    pub fn bridged(&mut self, now_ms: u64, call_id: CallId) {
        let Some(info) = self.calls.get_mut(&call_id) else { return };
        if info.bridged_at.is_some() {
            return;
        }
        info.bridged_at = Some(now_ms);
        let c = info.campaign_id;
        let agg = self.campaign(c);
        agg.waiting.remove(&call_id);
        agg.talking.insert(call_id);
        agg.count(now_ms, |c| c.connected += 1);
    }

    /// The customer call ended.
    pub fn call_ended(&mut self, now_ms: u64, call_id: CallId, campaign: Option<CampaignId>) {
        let info = self.calls.remove(&call_id);
        let Some(c) = info.map(|i| i.campaign_id).or(campaign) else { return };
        let agg = self.campaign(c);
        agg.waiting.remove(&call_id);
        agg.talking.remove(&call_id);
        if info.is_some_and(|i| i.bridged_at.is_none()) {
            agg.count(now_ms, |c| c.abandoned += 1);
        }
        let day = now_ms / DAY_MS;
        if agg.day != day {
            agg.count(now_ms, |_| {});
        }
        agg.calls_today += 1;
    }

    /// Dials in flight for a campaign, as the dialer reports them.
    pub fn set_dials_in_flight(&mut self, campaign_id: CampaignId, n: u64) {
        self.campaign(campaign_id).dials_in_flight = Some(n);
    }

    /// The tiles changed since the last call (each once, current).
    pub fn take_changes(&mut self, now_ms: u64) -> Vec<Tile> {
        let mut out = Vec::with_capacity(self.dirty_agents.len() + self.dirty_campaigns.len());
        for id in std::mem::take(&mut self.dirty_agents) {
            if let Some(t) = self.agents.get(&id) {
                out.push(Tile::Agent(t.clone()));
            }
        }
        for id in std::mem::take(&mut self.dirty_campaigns) {
            if let Some(a) = self.campaigns.get(&id) {
                out.push(Tile::Campaign(a.tile(id, now_ms)));
            }
        }
        out
    }

    /// Every tile.
    pub fn tiles(&self, now_ms: u64) -> Vec<Tile> {
        let mut out: Vec<Tile> = self.agents.values().cloned().map(Tile::Agent).collect();
        out.extend(self.campaigns.iter().map(|(id, a)| Tile::Campaign(a.tile(*id, now_ms))));
        out
    }
}

/// One change in the feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Feed sequence number (the SSE event id). Strictly increasing, from 1.
    pub seq: u64,
    pub at_ms: u64,
    #[serde(flatten)]
    pub tile: Tile,
}

/// The state of every tile at `seq`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last change the snapshot includes; resume the feed after it.
    pub seq: u64,
    pub agents: Vec<AgentTile>,
    pub campaigns: Vec<CampaignTile>,
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

#[derive(Debug)]
struct FeedInner {
    seq: u64,
    ring: VecDeque<Arc<Change>>,
    agents: BTreeMap<AgentId, AgentTile>,
    campaigns: BTreeMap<CampaignId, CampaignTile>,
}

/// The wallboard change feed of one tenant: the current tiles, a bounded replay ring and a bounded
/// broadcast to live subscribers. Shared (`Arc`) between the control service (writer) and the API's
/// SSE handlers (readers).
#[derive(Debug)]
pub struct Feed {
    limits: FeedLimits,
    inner: Mutex<FeedInner>,
    tx: broadcast::Sender<Arc<Change>>,
}

/// Where a new subscriber starts.
#[derive(Debug)]
pub enum Start {
    /// The changes after the client's last id, in order; then live.
    Replay(Vec<Arc<Change>>),
    /// The client's id is unknown or too old (or absent): the full state, then live.
    Snapshot(Snapshot),
}

/// A live subscription: the start, then the receiver of later changes. A receiver that lags past
/// [`FeedLimits::per_client`] gets `RecvError::Lagged`: the SSE handler then sends a snapshot.
#[derive(Debug)]
pub struct Subscription {
    pub start: Start,
    pub rx: broadcast::Receiver<Arc<Change>>,
}

impl Feed {
    pub fn new(limits: FeedLimits) -> Self {
        let (tx, _) = broadcast::channel(limits.per_client.max(1));
        Feed {
            limits,
            inner: Mutex::new(FeedInner {
                seq: 0,
                ring: VecDeque::new(),
                agents: BTreeMap::new(),
                campaigns: BTreeMap::new(),
            }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, FeedInner> {
        // A panic while holding the lock cannot leave the tiles half-written (each update is one
        // insert), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends changes (the writer: one control service per tenant).
    pub fn publish(&self, at_ms: u64, tiles: Vec<Tile>) {
        let mut g = self.lock();
        for tile in tiles {
            match &tile {
                Tile::Agent(a) => {
                    g.agents.insert(a.agent_id, a.clone());
                }
                Tile::Campaign(c) => {
                    g.campaigns.insert(c.campaign_id, c.clone());
                }
            }
            g.seq += 1;
            let ch = Arc::new(Change { seq: g.seq, at_ms, tile });
            g.ring.push_back(ch.clone());
            while g.ring.len() > self.limits.replay {
                g.ring.pop_front();
            }
            // No subscriber is not an error.
            let _ = self.tx.send(ch);
        }
    }

    /// The current state.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        Self::snapshot_of(&g)
    }

    fn snapshot_of(g: &FeedInner) -> Snapshot {
        Snapshot {
            seq: g.seq,
            agents: g.agents.values().cloned().collect(),
            campaigns: g.campaigns.values().cloned().collect(),
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
            _ => Start::Snapshot(Self::snapshot_of(&g)),
        };
        Subscription { start, rx }
    }
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new(FeedLimits::default())
    }
}
