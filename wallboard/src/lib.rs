//! The live wallboard (SPEC 6): aggregates kept incrementally per tenant, per campaign, per dialing
//! group and per agent ([`Wallboard`], fed by the control service with the same events it applies),
//! the change feed the API serves as a snapshot and as server-sent events ([`Feed`]), and its mirror
//! over the bus for an API in another process ([`mirror`]).
//!
//! Every change is a whole tile (one agent, one campaign, one dialing group, or the tenant) with a
//! feed sequence number; a snapshot is the set of current tiles with the sequence it includes. A
//! client resumes after a reconnect from its last sequence (`Last-Event-ID`) out of a bounded replay
//! ring; older than the ring, or too slow for its bounded channel, it is sent a fresh snapshot and
//! continues from there (never an unbounded buffer per client).
//!
//! Attribution: an agent counts in the campaign and the dialing group of their call job. A customer
//! call counts in its campaign and in the dialing group working that campaign (the lowest-numbered
//! one when several groups work it at once), fixed when the customer answers.

mod feed;
pub mod mirror;

pub use feed::{Change, Feed, FeedLimits, Push, Snapshot, Start, Subscription};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use wire::agent::{AgentId, AgentState, CallId, Transition};
use wire::{CampaignId, DialingGroupId};

const DAY_MS: u64 = 86_400_000;
/// Rolling 24 h in 5-minute buckets (also the 5-minute answer-rate series of SPEC 6).
pub const BUCKET_24H_MS: u64 = 300_000;
/// Rolling 30 days in 1-hour buckets.
pub const BUCKET_30D_MS: u64 = 3_600_000;
/// Most customer calls tracked at once (answered, not ended); beyond it a call is counted but not
/// followed (its end is not attributed).
const MAX_TRACKED_CALLS: usize = 200_000;
/// Most campaigns and dialing groups with tiles (a tenant has far fewer).
const MAX_SCOPES: usize = 10_000;
/// A dialer status older than this is no longer shown (the dialer reports about once a second).
pub const DIALER_STALE_MS: u64 = 5_000;

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

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.answered += o.answered;
        self.connected += o.connected;
        self.abandoned += o.abandoned;
    }
}

/// A rolling window of bucketed counts (buckets aligned to UTC multiples of `bucket_ms`).
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

    fn add(&mut self, now_ms: u64, c: &Counts) {
        let start = now_ms - now_ms % self.bucket_ms;
        match self.buckets.back_mut() {
            Some((s, b)) if *s == start => b.add(c),
            // A late event (clock of another host behind ours) counts in the newest bucket.
            Some((s, b)) if *s > start => b.add(c),
            _ => self.buckets.push_back((start, *c)),
        }
        self.expire(now_ms);
    }

    /// Puts stored counts back (at start), in any order.
    fn restore(&mut self, start_ms: u64, c: &Counts) {
        let start = start_ms - start_ms % self.bucket_ms;
        match self.buckets.binary_search_by_key(&start, |(s, _)| *s) {
            Ok(i) => self.buckets[i].1.add(c),
            Err(i) => self.buckets.insert(i, (start, *c)),
        }
    }

    fn expire(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(self.window_ms);
        while self.buckets.front().is_some_and(|(s, _)| s + self.bucket_ms <= oldest) {
            self.buckets.pop_front();
        }
    }

    /// Totals of the window ending at `now_ms`, and of the buckets starting at or after `from_ms`.
    fn totals(&self, now_ms: u64, from_ms: u64) -> (Counts, Counts) {
        let oldest = now_ms.saturating_sub(self.window_ms);
        let mut all = Counts::default();
        let mut since = Counts::default();
        for (s, c) in self.buckets.iter().filter(|(s, _)| s + self.bucket_ms > oldest) {
            all.add(c);
            if *s >= from_ms {
                since.add(c);
            }
        }
        (all, since)
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
    /// Campaign of the agent's (last) call job.
    pub campaign_id: Option<CampaignId>,
    /// Dialing group of the agent's (last) call job.
    #[serde(default)]
    pub dialing_group_id: Option<DialingGroupId>,
    /// Customers talked to today (the tenant's day).
    pub calls_today: u64,
    /// Length of the last customer conversation.
    pub last_call_ms: Option<u64>,
}

/// The figures of one aggregate: the tenant, a campaign or a dialing group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Customers answered and waiting for an agent now (待ち呼).
    pub waiting: u64,
    /// When the customer waiting longest answered (`None` with nobody waiting).
    pub longest_waiting_since_ms: Option<u64>,
    /// Customers bridged to an agent now.
    pub talking_calls: u64,
    /// Agents by state name (`ready`, `talking`, `paused`, `offline`, ...).
    pub agents_by_state: BTreeMap<String, u64>,
    /// Per state, when the agent longest in it entered it (time in state = now - this).
    pub longest_in_state_since_ms: BTreeMap<String, u64>,
    /// Agents logged in (not offline).
    pub agents_online: u64,
    /// Agents known here (offline included).
    pub agents_total: u64,
    /// Conversations (calls bridged to an agent) that ended today, the tenant's day: 本日の通話,
    /// the same figure as an agent tile's `calls_today`. Those still talking are `talking_calls`.
    pub calls_today: u64,
    /// Today's counts (the tenant's day).
    pub today: Counts,
    pub last_24h: Rates,
    pub last_30d: Rates,
    /// 5-minute buckets of the last 24 h: (bucket start ms, counts).
    pub series_5min: Vec<(u64, Counts)>,
    /// Calls being dialled (reported by the dialer; `None` until it reports, or when stale).
    pub dials_in_flight: Option<u64>,
    /// Dial level (発信レベル): dials in flight per active agent (logged in and not paused), the
    /// same for a campaign, a group and the tenant. `None` without the dialer's figures or with no
    /// active agent.
    pub dial_level: Option<f64>,
    /// The pacer's predicted abandon share (campaigns; `None` until the dialer reports).
    pub predicted_abandon_rate: Option<f64>,
    /// Leads left to dial: the dialer's figure in the feed; the snapshot endpoint fills it from the
    /// database (open leads of the running call jobs' lists, never dialled).
    pub remaining_leads: Option<u64>,
    /// When the dialer last reported.
    pub dialer_at_ms: Option<u64>,
}

/// One campaign on the wallboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignTile {
    pub campaign_id: CampaignId,
    #[serde(flatten)]
    pub figures: Figures,
}

/// One dialing group on the wallboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupTile {
    pub dialing_group_id: DialingGroupId,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The whole tenant on the wallboard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantTile {
    #[serde(flatten)]
    pub figures: Figures,
}

/// A wallboard change: one tile, replaced whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "tile", rename_all = "snake_case")]
pub enum Tile {
    Agent(AgentTile),
    Campaign(CampaignTile),
    Group(GroupTile),
    Tenant(TenantTile),
}

/// What the dialer last said about a campaign.
#[derive(Clone, Copy, Debug, PartialEq)]
struct DialerFigures {
    at_ms: u64,
    dials_in_flight: u64,
    remaining_leads: u64,
    predicted_abandon: f64,
}

/// One aggregate's running state.
#[derive(Debug)]
struct Agg {
    /// Waiting customers by answer time.
    waiting: BTreeSet<(u64, CallId)>,
    talking: BTreeSet<CallId>,
    /// Agents per state, by the time they entered it.
    in_state: BTreeMap<&'static str, BTreeSet<(u64, AgentId)>>,
    calls_today: u64,
    day: u64,
    r24: Rolling,
    r30: Rolling,
    dialer: Option<DialerFigures>,
}

impl Agg {
    fn new() -> Self {
        Agg {
            waiting: BTreeSet::new(),
            talking: BTreeSet::new(),
            in_state: BTreeMap::new(),
            calls_today: 0,
            day: 0,
            r24: Rolling::new(BUCKET_24H_MS, DAY_MS),
            r30: Rolling::new(BUCKET_30D_MS, 30 * DAY_MS),
            dialer: None,
        }
    }

    fn count(&mut self, now_ms: u64, c: Counts) {
        self.r24.add(now_ms, &c);
        self.r30.add(now_ms, &c);
    }

    /// Agents logged in and not paused (the dial level's denominator, as the pacer counts them).
    fn active(&self) -> u64 {
        self.in_state
            .iter()
            .filter(|(state, _)| !matches!(**state, "offline" | "paused"))
            .map(|(_, s)| s.len() as u64)
            .sum()
    }

    /// `dialers`: the dialer figures of the campaigns counted here (a campaign: its own).
    fn figures(&self, now_ms: u64, day_start_ms: u64, own_dialer: bool, dialers: &[DialerFigures]) -> Figures {
        let (d24, today) = self.r24.totals(now_ms, day_start_ms);
        let (d30, _) = self.r30.totals(now_ms, 0);
        let oldest = now_ms.saturating_sub(DAY_MS);
        let fresh: Vec<&DialerFigures> = dialers
            .iter()
            .filter(|d| d.at_ms + DIALER_STALE_MS > now_ms && d.at_ms <= now_ms + DIALER_STALE_MS)
            .collect();
        let active = self.active();
        let in_flight = (!fresh.is_empty()).then(|| fresh.iter().map(|d| d.dials_in_flight).sum::<u64>());
        let dial_level = in_flight.filter(|_| active > 0).map(|n| n as f64 / active as f64);
        let agents_total: u64 = self.in_state.values().map(|s| s.len() as u64).sum();
        Figures {
            waiting: self.waiting.len() as u64,
            longest_waiting_since_ms: self.waiting.first().map(|(t, _)| *t),
            talking_calls: self.talking.len() as u64,
            agents_by_state: self
                .in_state
                .iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(k, s)| ((*k).to_owned(), s.len() as u64))
                .collect(),
            longest_in_state_since_ms: self
                .in_state
                .iter()
                .filter_map(|(k, s)| s.first().map(|(t, _)| ((*k).to_owned(), *t)))
                .collect(),
            agents_online: agents_total - self.in_state.get("offline").map_or(0, |s| s.len() as u64),
            agents_total,
            calls_today: if self.day == day_start_ms { self.calls_today } else { 0 },
            today,
            last_24h: d24.into(),
            last_30d: d30.into(),
            series_5min: self.r24.buckets.iter().filter(|(s, _)| s + BUCKET_24H_MS > oldest).copied().collect(),
            dials_in_flight: in_flight,
            dial_level,
            predicted_abandon_rate: if own_dialer { fresh.first().map(|d| d.predicted_abandon) } else { None },
            remaining_leads: (!fresh.is_empty()).then(|| fresh.iter().map(|d| d.remaining_leads).sum()),
            dialer_at_ms: fresh.iter().map(|d| d.at_ms).max(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct CallInfo {
    campaign_id: CampaignId,
    group: Option<DialingGroupId>,
    answered_at: u64,
    bridged_at: Option<u64>,
}

/// Which aggregates an event touches.
#[derive(Clone, Copy, Debug)]
struct Scopes {
    campaign: Option<CampaignId>,
    group: Option<DialingGroupId>,
}

/// Stored counts put back at start (see [`Wallboard::restore_counts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredCounts {
    pub campaign_id: CampaignId,
    /// Bucket start (any time inside the bucket).
    pub at_ms: u64,
    /// `true`: a 5-minute bucket of the last 24 h; `false`: a 1-hour bucket of the last 30 days.
    pub fine: bool,
    pub counts: Counts,
}

/// The wallboard aggregates of one tenant. Sans-IO: fed events with their time, asked for the tiles
/// that changed.
#[derive(Debug)]
pub struct Wallboard {
    /// The tenant's UTC offset: days start at local midnight.
    utc_offset_ms: i64,
    agents: BTreeMap<AgentId, AgentTile>,
    agent_day: HashMap<AgentId, u64>,
    tenant: Agg,
    campaigns: BTreeMap<CampaignId, Agg>,
    groups: BTreeMap<DialingGroupId, Agg>,
    /// Groups whose agents work each campaign, with how many agents.
    campaign_groups: HashMap<CampaignId, BTreeMap<DialingGroupId, u64>>,
    calls: HashMap<CallId, CallInfo>,
    /// Bridge times of calls that ended and whose agent's transition out of the call is still to
    /// come (the call's end is applied before the agent's): the last call's length.
    ended_bridged: HashMap<CallId, u64>,
    dirty_agents: BTreeSet<AgentId>,
    dirty_campaigns: BTreeSet<CampaignId>,
    dirty_groups: BTreeSet<DialingGroupId>,
    dirty_tenant: bool,
}

impl Default for Wallboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Wallboard {
    pub fn new() -> Self {
        Wallboard {
            utc_offset_ms: 0,
            agents: BTreeMap::new(),
            agent_day: HashMap::new(),
            tenant: Agg::new(),
            campaigns: BTreeMap::new(),
            groups: BTreeMap::new(),
            campaign_groups: HashMap::new(),
            calls: HashMap::new(),
            ended_bridged: HashMap::new(),
            dirty_agents: BTreeSet::new(),
            dirty_campaigns: BTreeSet::new(),
            dirty_groups: BTreeSet::new(),
            dirty_tenant: false,
        }
    }

    /// Days (calls today) start at midnight of this UTC offset (the tenant's zone, e.g. +9 h).
    pub fn set_utc_offset_ms(&mut self, offset_ms: i64) {
        self.utc_offset_ms = offset_ms;
    }

    /// Start of the tenant's day holding `now_ms`, as Unix ms.
    pub fn day_start(&self, now_ms: u64) -> u64 {
        let local = now_ms as i64 + self.utc_offset_ms;
        let start = local - local.rem_euclid(DAY_MS as i64) - self.utc_offset_ms;
        u64::try_from(start).unwrap_or(0)
    }

    /// Runs `f` on each aggregate the scopes name (the tenant always), marking them changed.
    fn each(&mut self, s: Scopes, mut f: impl FnMut(&mut Agg)) {
        self.dirty_tenant = true;
        f(&mut self.tenant);
        if let Some(c) = s.campaign {
            if self.campaigns.len() < MAX_SCOPES || self.campaigns.contains_key(&c) {
                self.dirty_campaigns.insert(c);
                f(self.campaigns.entry(c).or_insert_with(Agg::new));
            }
        }
        if let Some(g) = s.group {
            if self.groups.len() < MAX_SCOPES || self.groups.contains_key(&g) {
                self.dirty_groups.insert(g);
                f(self.groups.entry(g).or_insert_with(Agg::new));
            }
        }
    }

    /// The dialing group a customer of `campaign` counts in.
    fn group_of_campaign(&self, campaign: CampaignId) -> Option<DialingGroupId> {
        self.campaign_groups.get(&campaign).and_then(|m| m.iter().find(|(_, n)| **n > 0).map(|(g, _)| *g))
    }

    /// Places an agent (on start of a call job, or restored): their state, since when, and the
    /// campaign and dialing group of their call job.
    pub fn set_agent(
        &mut self,
        agent_id: AgentId,
        state: AgentState,
        since_ms: u64,
        campaign: Option<CampaignId>,
        group: Option<DialingGroupId>,
    ) {
        if let Some(old) = self.agents.get(&agent_id).cloned() {
            let key = (old.since_ms, agent_id);
            self.each(Scopes { campaign: old.campaign_id, group: old.dialing_group_id }, |a| {
                if let Some(s) = a.in_state.get_mut(old.state.name()) {
                    s.remove(&key);
                }
            });
            if let (Some(c), Some(g)) = (old.campaign_id, old.dialing_group_id) {
                if let Some(n) = self.campaign_groups.get_mut(&c).and_then(|m| m.get_mut(&g)) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        self.each(Scopes { campaign, group }, |a| {
            a.in_state.entry(state.name()).or_default().insert((since_ms, agent_id));
        });
        if let (Some(c), Some(g)) = (campaign, group) {
            *self.campaign_groups.entry(c).or_default().entry(g).or_insert(0) += 1;
        }
        let t = self.agents.entry(agent_id).or_insert(AgentTile {
            agent_id,
            state,
            since_ms,
            campaign_id: campaign,
            dialing_group_id: group,
            calls_today: 0,
            last_call_ms: None,
        });
        t.state = state;
        t.since_ms = since_ms;
        t.campaign_id = campaign;
        t.dialing_group_id = group;
        self.dirty_agents.insert(agent_id);
    }

    /// An agent's counts of today, as stored (at start).
    pub fn restore_agent_calls(&mut self, agent_id: AgentId, day_start_ms: u64, calls_today: u64) {
        if let Some(a) = self.agents.get_mut(&agent_id) {
            a.calls_today = calls_today;
            self.agent_day.insert(agent_id, day_start_ms);
            self.dirty_agents.insert(agent_id);
        }
    }

    /// An agent transition.
    pub fn transition(&mut self, t: &Transition) {
        let (campaign, group) =
            self.agents.get(&t.agent_id).map(|a| (a.campaign_id, a.dialing_group_id)).unwrap_or((None, None));
        self.set_agent(t.agent_id, t.to, t.at_ms, campaign, group);
        if matches!(t.from, AgentState::Talking | AgentState::Hold)
            && !matches!(t.to, AgentState::Talking | AgentState::Hold)
        {
            let day = self.day_start(t.at_ms);
            let bridged_at = t
                .call_id
                .and_then(|c| self.ended_bridged.remove(&c).or_else(|| self.calls.get(&c).and_then(|i| i.bridged_at)));
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
        let group = self.group_of_campaign(campaign_id);
        let scopes = Scopes { campaign: Some(campaign_id), group };
        let answered = Counts { answered: 1, ..Counts::default() };
        if self.calls.len() >= MAX_TRACKED_CALLS && !self.calls.contains_key(&call_id) {
            self.each(scopes, |a| a.count(now_ms, answered));
            return;
        }
        if self.calls.contains_key(&call_id) {
            return;
        }
        self.calls.insert(call_id, CallInfo { campaign_id, group, answered_at: now_ms, bridged_at: None });
        self.each(scopes, |a| {
            a.waiting.insert((now_ms, call_id));
            a.count(now_ms, answered);
        });
    }

    /// The customer is bridged to an agent.
    pub fn bridged(&mut self, now_ms: u64, call_id: CallId) {
        let Some(info) = self.calls.get_mut(&call_id) else { return };
        if info.bridged_at.is_some() {
            return;
        }
        info.bridged_at = Some(now_ms);
        let info = *info;
        self.each(Scopes { campaign: Some(info.campaign_id), group: info.group }, |a| {
            a.waiting.remove(&(info.answered_at, call_id));
            a.talking.insert(call_id);
            a.count(now_ms, Counts { connected: 1, ..Counts::default() });
        });
    }

    /// The customer call ended. Only calls this wallboard saw answer are counted (`campaign` names
    /// one whose answer it did not track).
    pub fn call_ended(&mut self, now_ms: u64, call_id: CallId, campaign: Option<CampaignId>) {
        let info = self.calls.remove(&call_id);
        if let Some(b) = info.and_then(|i| i.bridged_at) {
            if self.ended_bridged.len() >= MAX_TRACKED_CALLS {
                self.ended_bridged.clear();
            }
            self.ended_bridged.insert(call_id, b);
        }
        let Some(c) = info.map(|i| i.campaign_id).or(campaign) else { return };
        let group = info.map_or_else(|| self.group_of_campaign(c), |i| i.group);
        let day = self.day_start(now_ms);
        let conversation = info.is_some_and(|i| i.bridged_at.is_some());
        self.each(Scopes { campaign: Some(c), group }, |a| {
            if let Some(i) = info {
                a.waiting.remove(&(i.answered_at, call_id));
                a.talking.remove(&call_id);
                if i.bridged_at.is_none() {
                    a.count(now_ms, Counts { abandoned: 1, ..Counts::default() });
                }
            }
            if a.day != day {
                a.day = day;
                a.calls_today = 0;
            }
            if conversation {
                a.calls_today += 1;
            }
        });
    }

    /// What the dialer reports about a campaign (about once a second). The pacer's own dial level
    /// is not shown: the wallboard's is computed here, one way for every tile (see [`Figures`]).
    pub fn dialer_status(
        &mut self,
        now_ms: u64,
        campaign_id: CampaignId,
        dials_in_flight: u64,
        remaining_leads: u64,
        predicted_abandon: f64,
    ) {
        let group = self.group_of_campaign(campaign_id);
        let d = DialerFigures { at_ms: now_ms, dials_in_flight, remaining_leads, predicted_abandon };
        self.each(Scopes { campaign: Some(campaign_id), group }, |_| {});
        if let Some(a) = self.campaigns.get_mut(&campaign_id) {
            a.dialer = Some(d);
        }
    }

    /// Marks the aggregates whose dialer figures went stale (no report for [`DIALER_STALE_MS`]), so
    /// that their tiles are sent again without them. Call about once a second.
    pub fn expire(&mut self, now_ms: u64) {
        let stale: Vec<CampaignId> = self
            .campaigns
            .iter_mut()
            .filter_map(|(id, a)| match a.dialer {
                Some(d) if d.at_ms + DIALER_STALE_MS <= now_ms => {
                    a.dialer = None;
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        for c in stale {
            let group = self.group_of_campaign(c);
            self.each(Scopes { campaign: Some(c), group }, |_| {});
        }
    }

    /// Puts stored rolling counts back (at start, from the call records).
    pub fn restore_counts(&mut self, rows: &[StoredCounts]) {
        for r in rows {
            let group = self.group_of_campaign(r.campaign_id);
            self.each(Scopes { campaign: Some(r.campaign_id), group }, |a| {
                if r.fine {
                    a.r24.restore(r.at_ms, &r.counts);
                } else {
                    a.r30.restore(r.at_ms, &r.counts);
                }
            });
        }
    }

    /// Puts back the conversations ended today per campaign (at start).
    pub fn restore_calls_today(&mut self, campaign_id: CampaignId, day_start_ms: u64, n: u64) {
        let group = self.group_of_campaign(campaign_id);
        self.each(Scopes { campaign: Some(campaign_id), group }, |a| {
            if a.day != day_start_ms {
                a.day = day_start_ms;
                a.calls_today = 0;
            }
            a.calls_today += n;
        });
    }

    fn dialers_of(&self, campaigns: impl Iterator<Item = CampaignId>) -> Vec<DialerFigures> {
        campaigns.filter_map(|c| self.campaigns.get(&c).and_then(|a| a.dialer)).collect()
    }

    fn campaign_tile(&self, id: CampaignId, a: &Agg, now_ms: u64) -> Tile {
        let day = self.day_start(now_ms);
        Tile::Campaign(CampaignTile {
            campaign_id: id,
            figures: a.figures(now_ms, day, true, &self.dialers_of([id].into_iter())),
        })
    }

    fn group_tile(&self, id: DialingGroupId, a: &Agg, now_ms: u64) -> Tile {
        let day = self.day_start(now_ms);
        let campaigns = self.campaign_groups.keys().copied().filter(|c| self.group_of_campaign(*c) == Some(id));
        Tile::Group(GroupTile {
            dialing_group_id: id,
            figures: a.figures(now_ms, day, false, &self.dialers_of(campaigns)),
        })
    }

    fn tenant_tile(&self, now_ms: u64) -> Tile {
        let day = self.day_start(now_ms);
        let dialers = self.dialers_of(self.campaigns.keys().copied());
        Tile::Tenant(TenantTile { figures: self.tenant.figures(now_ms, day, false, &dialers) })
    }

    /// The tiles changed since the last call (each once, current).
    pub fn take_changes(&mut self, now_ms: u64) -> Vec<Tile> {
        let mut out = Vec::with_capacity(self.dirty_agents.len() + self.dirty_campaigns.len() + 2);
        for id in std::mem::take(&mut self.dirty_agents) {
            if let Some(t) = self.agents.get(&id) {
                out.push(Tile::Agent(t.clone()));
            }
        }
        for id in std::mem::take(&mut self.dirty_campaigns) {
            if let Some(a) = self.campaigns.get(&id) {
                out.push(self.campaign_tile(id, a, now_ms));
            }
        }
        for id in std::mem::take(&mut self.dirty_groups) {
            if let Some(a) = self.groups.get(&id) {
                out.push(self.group_tile(id, a, now_ms));
            }
        }
        if std::mem::take(&mut self.dirty_tenant) {
            out.push(self.tenant_tile(now_ms));
        }
        out
    }

    /// Every tile.
    pub fn tiles(&self, now_ms: u64) -> Vec<Tile> {
        let mut out: Vec<Tile> = self.agents.values().cloned().map(Tile::Agent).collect();
        out.extend(self.campaigns.iter().map(|(id, a)| self.campaign_tile(*id, a, now_ms)));
        out.extend(self.groups.iter().map(|(id, a)| self.group_tile(*id, a, now_ms)));
        out.push(self.tenant_tile(now_ms));
        out
    }
}
