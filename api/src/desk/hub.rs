//! The agents' push channel inside one API process: [`AgentHub`] follows each tenant's
//! `agent:events` stream (group-less `XREAD`, on Redis or the in-process bus) and hands every
//! agent its own events: its transitions, the customers bridged to it (with the lead), notices
//! from the admin API; plus, without an id (they are state, sent whole again on a reconnect), the
//! remaining leads of its campaign (from the wallboard feed) and its colleagues' states (presence,
//! gathered and sent once a second).
//!
//! Limits, and why nothing is lost:
//! - each agent keeps a ring of its last [`RING_PER_AGENT`] events; a client reconnecting with the
//!   `Last-Event-ID` of an event still in the ring (or after it) gets every later event again;
//!   older than the ring, it gets a fresh snapshot (its state as control committed it);
//! - each client has a bounded queue ([`CLIENT_QUEUE`]); a client that falls that far behind is
//!   cut from live delivery and resumes from the ring where it stopped (the SSE handler does it);
//! - event ids are the stream's entry ids (`<ms>-<seq>`), the same in every API process, so an
//!   agent may reconnect to any of them;
//! - a republished control event (the same envelope id after a crash of control) is skipped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bus::{Bus, BusError, DedupState, Deduper, EntryId, Envelope};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use wallboard::{Feed, Push, Tile};
use wire::agent::{AgentId, AgentState, CallId, Command, Event};
use wire::{streams, AgentNotice, LeadId, Message};

/// Events kept per agent for resuming.
pub const RING_PER_AGENT: usize = 256;
/// Events queued per connected client before it is cut from live delivery (and resumes from the ring).
pub const CLIENT_QUEUE: usize = 1_024;
/// Most tenants one process follows.
const MAX_TENANTS: usize = 10_000;
/// Most agents a tenant's hub keeps rings for.
const MAX_AGENTS: usize = 50_000;
/// Entries per read of the stream.
const READ_COUNT: usize = 512;
const READ_BLOCK_MS: u64 = 1_000;
/// How far back a follower starting up reads, so that agents reconnecting to a restarted API
/// process find their last events.
const REPLAY_MS: u64 = 60_000;
/// How often presence changes go out.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);

/// One event for one agent's screen, serialized once.
#[derive(Debug)]
pub struct DeskEvent {
    /// The stream entry id (`None` for state sent whole, which a reconnect sends again).
    pub id: Option<EntryId>,
    /// The SSE event name.
    pub name: &'static str,
    /// JSON.
    pub data: String,
}

/// The API process's hubs, one per tenant (shared by the followers and the SSE handlers).
#[derive(Clone, Debug, Default)]
pub struct AgentHub {
    tenants: Arc<RwLock<HashMap<u64, Arc<TenantHub>>>>,
}

impl AgentHub {
    /// The tenant's hub (created on first use). `None` past [`MAX_TENANTS`].
    pub fn tenant(&self, tenant_id: u64) -> Option<Arc<TenantHub>> {
        if let Some(t) = self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(&tenant_id) {
            return Some(t.clone());
        }
        let mut g = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        if g.len() >= MAX_TENANTS && !g.contains_key(&tenant_id) {
            return None;
        }
        Some(g.entry(tenant_id).or_default().clone())
    }

    /// Follows the tenant's `agent:events` into its hub until `shutdown` turns true; with `feed`
    /// (the tenant's wallboard feed in this process), also the campaigns' remaining leads. Bus
    /// errors are retried with a bounded backoff, from the same position.
    pub async fn follow<B: Bus>(
        &self,
        bus: B,
        tenant_id: u64,
        feed: Option<Arc<Feed>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), BusError> {
        let Some(hub) = self.tenant(tenant_id) else { return Ok(()) };
        let stream = streams::agent_events(tenant_id);
        let now = u64::try_from(store::now_ms()).unwrap_or(0);
        let mut after = EntryId { ms: now.saturating_sub(REPLAY_MS), seq: 0 };
        hub.started(after);
        let mut feed_rx = feed.as_ref().map(|f| f.subscribe(None).rx);
        let mut presence = tokio::time::interval(PRESENCE_EVERY);
        presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff_ms = 10u64;
        while !*shutdown.borrow() {
            tokio::select! {
                _ = shutdown.changed() => {}
                r = bus.read_after(&stream, after, READ_COUNT, READ_BLOCK_MS) => match r {
                    Ok(entries) => {
                        backoff_ms = 10;
                        if let Some((last, _)) = entries.last() {
                            after = *last;
                        }
                        hub.apply(&entries);
                    }
                    Err(e) => {
                        tracing::warn!(tenant = tenant_id, error = %e, "agent events: bus error; retrying");
                        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                        backoff_ms = (backoff_ms * 2).min(2_000);
                    }
                },
                p = recv_feed(&mut feed_rx) => match p {
                    Ok(Push::Change(c)) => {
                        if let Tile::Campaign(t) = &c.tile {
                            if let Some(n) = t.figures.remaining_leads {
                                hub.remaining(t.campaign_id.0, n);
                            }
                        }
                    }
                    Ok(Push::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => feed_rx = None,
                },
                _ = presence.tick() => hub.flush_presence(),
            }
        }
        Ok(())
    }
}

async fn recv_feed(rx: &mut Option<broadcast::Receiver<Push>>) -> Result<Push, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Who a connected client is, for the events that are not addressed to one agent.
#[derive(Debug, Clone, Default)]
pub struct ClientScope {
    pub call_job_id: Option<i64>,
    pub campaign_id: Option<i64>,
    /// The colleagues whose states the client sees (the members of its dialing groups).
    pub colleagues: Arc<HashSet<u64>>,
}

struct Client {
    id: u64,
    tx: mpsc::Sender<Arc<DeskEvent>>,
    /// Set when the client fell [`CLIENT_QUEUE`] events behind and was cut from live delivery.
    lagged: Arc<AtomicBool>,
    scope: ClientScope,
}

#[derive(Default)]
struct AgentSlot {
    ring: VecDeque<Arc<DeskEvent>>,
    /// The newest id evicted from the ring: a client that saw it (or later) can resume from the ring.
    evicted_upto: EntryId,
    clients: Vec<Client>,
    /// The agent's call and lead as the latest transitions told (the lead of a `bridge`).
    call: Option<CallId>,
    lead: Option<LeadId>,
}

#[derive(Default)]
struct Inner {
    /// The position the follower started from: rings cover nothing before it.
    started: EntryId,
    /// The last entry applied.
    position: EntryId,
    agents: HashMap<u64, AgentSlot>,
    dedup: Option<Deduper>,
    /// Agents whose state changed since the last presence flush: (state, since_ms).
    presence: HashMap<u64, (AgentState, u64)>,
}

/// One tenant's agents: their rings and connected clients.
#[derive(Default)]
pub struct TenantHub {
    inner: Mutex<Inner>,
    next_client: AtomicU64,
    /// The tenant's open callbacks (折り返し呼) as the latest notice said: the wallboard's figure.
    callbacks_open: watch::Sender<Option<u64>>,
}

impl std::fmt::Debug for TenantHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantHub")
    }
}

/// How a subscription starts.
pub enum Start {
    /// Every event after the client's `Last-Event-ID`.
    Replay(Vec<Arc<DeskEvent>>),
    /// The ring does not reach back that far (or no id was given): send the agent's state whole
    /// (as control committed it), then the agent's events of the last seconds (published before
    /// control's commit, they may be newer than that state; transitions apply by their time), then
    /// live events after this position.
    Fresh { position: EntryId, recent: Vec<Arc<DeskEvent>> },
}

/// How far back [`Start::Fresh`] repeats an agent's events.
const RECENT_MS: u64 = 10_000;

/// A client's live subscription; dropping it unregisters the client.
pub struct Subscription {
    pub start: Start,
    pub rx: mpsc::Receiver<Arc<DeskEvent>>,
    pub lagged: Arc<AtomicBool>,
    hub: Arc<TenantHub>,
    agent: u64,
    client: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut g = self.hub.lock();
        if let Some(slot) = g.agents.get_mut(&self.agent) {
            slot.clients.retain(|c| c.id != self.client);
        }
    }
}

#[derive(Serialize)]
struct StateData {
    agent_id: u64,
    from: AgentState,
    to: AgentState,
    at_ms: u64,
    cause: wire::agent::Cause,
    call_id: Option<CallId>,
    lead_id: Option<LeadId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_dialled: Option<wire::NotDialledReason>,
}

#[derive(Serialize)]
struct BridgeData {
    agent_id: u64,
    call_id: CallId,
    lead_id: Option<LeadId>,
    at_ms: u64,
}

#[derive(Serialize)]
struct PresenceItem {
    agent_id: u64,
    #[serde(flatten)]
    state: AgentState,
    since_ms: u64,
}

impl TenantHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every change under the lock is complete before anything that could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn started(&self, at: EntryId) {
        let mut g = self.lock();
        g.started = at;
        g.position = g.position.max(at);
        for slot in g.agents.values_mut() {
            slot.evicted_upto = slot.evicted_upto.max(at);
        }
    }

    /// The last entry applied.
    pub fn position(&self) -> EntryId {
        self.lock().position
    }

    /// Registers a client of `agent`: replays what followed `last` when the agent's ring still
    /// holds it, else starts fresh.
    pub fn subscribe(self: &Arc<Self>, agent: u64, last: Option<EntryId>, scope: ClientScope) -> Subscription {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let client = self.next_client.fetch_add(1, Ordering::Relaxed);
        let mut g = self.lock();
        let position = g.position;
        let started = g.started;
        let slot = g.agents.entry(agent).or_insert_with(|| AgentSlot { evicted_upto: started, ..AgentSlot::default() });
        let start = match last {
            Some(l) if l >= slot.evicted_upto && l <= position => {
                Start::Replay(slot.ring.iter().filter(|e| e.id.is_some_and(|id| id > l)).cloned().collect())
            }
            _ => Start::Fresh {
                position,
                recent: slot
                    .ring
                    .iter()
                    .filter(|e| e.id.is_some_and(|id| id.ms + RECENT_MS > position.ms))
                    .cloned()
                    .collect(),
            },
        };
        slot.clients.push(Client { id: client, tx, lagged: lagged.clone(), scope });
        drop(g);
        Subscription { start, rx, lagged, hub: self.clone(), agent, client }
    }

    /// The tenant's open callbacks as the notices tell them (`None` until the first), to watch.
    pub fn callbacks_open(&self) -> watch::Receiver<Option<u64>> {
        self.callbacks_open.subscribe()
    }

    /// The lead the agent's latest transitions name (its call's, or its preview dial's).
    pub fn lead_of(&self, agent: u64) -> Option<LeadId> {
        self.lock().agents.get(&agent).and_then(|s| s.lead)
    }

    fn apply(&self, entries: &[(EntryId, Envelope)]) {
        let mut g = self.lock();
        let inner = &mut *g;
        let dedup = inner.dedup.get_or_insert_with(|| Deduper::new(65_536));
        for (id, env) in entries {
            inner.position = inner.position.max(*id);
            if dedup.is_applied(&env.id) {
                continue;
            }
            dedup.mark_applied(env.id);
            if env.kind == Event::KIND {
                match env.decode::<Event>() {
                    Ok(ev) => apply_event(&mut inner.agents, &mut inner.presence, inner.started, *id, env.at_ms, ev),
                    Err(e) => tracing::debug!(entry = %id, error = %e, "agent event skipped"),
                }
            } else if env.kind == AgentNotice::KIND {
                match env.decode::<AgentNotice>() {
                    Ok(AgentNotice::CallbacksOpen { open }) => {
                        self.callbacks_open.send_replace(Some(open));
                    }
                    Ok(n) => apply_notice(&mut inner.agents, inner.started, *id, n),
                    Err(e) => tracing::debug!(entry = %id, error = %e, "agent notice skipped"),
                }
            }
        }
    }

    /// A campaign's remaining leads, to the clients working it.
    fn remaining(&self, campaign_id: u64, n: u64) {
        let data = format!("{{\"campaign_id\":{campaign_id},\"remaining\":{n}}}");
        let ev = Arc::new(DeskEvent { id: None, name: "remaining", data });
        let mut g = self.lock();
        for slot in g.agents.values_mut() {
            let to: Vec<usize> = (0..slot.clients.len())
                .filter(|i| slot.clients[*i].scope.campaign_id == i64::try_from(campaign_id).ok())
                .collect();
            for i in to.into_iter().rev() {
                send(slot, i, &ev);
            }
        }
    }

    /// Sends the presence changes gathered since the last flush: one payload per set of
    /// colleagues, shared by the clients that see the same set.
    fn flush_presence(&self) {
        let mut g = self.lock();
        if g.presence.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut g.presence);
        let mut payloads: HashMap<*const HashSet<u64>, Option<Arc<DeskEvent>>> = HashMap::new();
        for slot in g.agents.values_mut() {
            for i in (0..slot.clients.len()).rev() {
                let scope = &slot.clients[i].scope.colleagues;
                if scope.is_empty() {
                    continue;
                }
                let ev = payloads
                    .entry(Arc::as_ptr(scope))
                    .or_insert_with(|| {
                        let items: Vec<PresenceItem> = changes
                            .iter()
                            .filter(|(a, _)| scope.contains(a))
                            .map(|(a, (state, since))| PresenceItem { agent_id: *a, state: *state, since_ms: *since })
                            .collect();
                        (!items.is_empty()).then(|| {
                            let data = serde_json::json!({ "agents": items }).to_string();
                            Arc::new(DeskEvent { id: None, name: "presence", data })
                        })
                    })
                    .clone();
                if let Some(ev) = ev {
                    send(slot, i, &ev);
                }
            }
        }
    }
}

/// Sends to client `i` of the slot; a client whose queue is full is cut (it resumes from the ring).
fn send(slot: &mut AgentSlot, i: usize, ev: &Arc<DeskEvent>) {
    match slot.clients[i].tx.try_send(ev.clone()) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            slot.clients[i].lagged.store(true, Ordering::Relaxed);
            slot.clients.swap_remove(i);
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            slot.clients.swap_remove(i);
        }
    }
}

fn slot_of(agents: &mut HashMap<u64, AgentSlot>, started: EntryId, agent: u64) -> Option<&mut AgentSlot> {
    if !agents.contains_key(&agent) && agents.len() >= MAX_AGENTS {
        return None;
    }
    Some(agents.entry(agent).or_insert_with(|| AgentSlot { evicted_upto: started, ..AgentSlot::default() }))
}

/// Keeps the event in the agent's ring and sends it to the agent's clients.
fn deliver(slot: &mut AgentSlot, ev: DeskEvent) {
    let ev = Arc::new(ev);
    if slot.ring.len() >= RING_PER_AGENT {
        if let Some(old) = slot.ring.pop_front() {
            if let Some(id) = old.id {
                slot.evicted_upto = slot.evicted_upto.max(id);
            }
        }
    }
    slot.ring.push_back(ev.clone());
    for i in (0..slot.clients.len()).rev() {
        send(slot, i, &ev);
    }
}

fn apply_event(
    agents: &mut HashMap<u64, AgentSlot>,
    presence: &mut HashMap<u64, (AgentState, u64)>,
    started: EntryId,
    id: EntryId,
    at_ms: u64,
    ev: Event,
) {
    match ev {
        Event::Transition(t) => {
            let agent = t.agent_id.0;
            presence.insert(agent, (t.to, t.at_ms));
            let Some(slot) = slot_of(agents, started, agent) else { return };
            match t.to {
                AgentState::Ringing | AgentState::Talking | AgentState::Hold | AgentState::WrapUp => {
                    if t.call_id.is_some() && t.call_id != slot.call {
                        slot.call = t.call_id;
                        slot.lead = None;
                    }
                    if t.lead_id.is_some() {
                        slot.lead = t.lead_id;
                    }
                }
                _ => {
                    slot.call = None;
                    slot.lead = None;
                }
            }
            let data = StateData {
                agent_id: agent,
                from: t.from,
                to: t.to,
                at_ms: t.at_ms,
                cause: t.cause,
                call_id: t.call_id,
                lead_id: t.lead_id.or(slot.lead),
                not_dialled: t.not_dialled,
            };
            let data = serde_json::to_string(&data).unwrap_or_default();
            deliver(slot, DeskEvent { id: Some(id), name: "state", data });
        }
        Event::Command(Command::Bridge { agent_id, call_id }) => {
            let Some(slot) = slot_of(agents, started, agent_id.0) else { return };
            let lead_id = if slot.call.is_none() || slot.call == Some(call_id) { slot.lead } else { None };
            slot.call = Some(call_id);
            let data = BridgeData { agent_id: agent_id.0, call_id, lead_id, at_ms };
            let data = serde_json::to_string(&data).unwrap_or_default();
            deliver(slot, DeskEvent { id: Some(id), name: "bridge", data });
        }
        // Commands for the shards, and the deferral of a break for the pacer: nothing for the screen.
        Event::Command(_) | Event::Deferred { .. } => {}
    }
}

fn apply_notice(agents: &mut HashMap<u64, AgentSlot>, started: EntryId, id: EntryId, n: AgentNotice) {
    let data = serde_json::to_string(&n).unwrap_or_default();
    match n {
        AgentNotice::RecallAssigned { agent_id, .. }
        | AgentNotice::CallbackAssigned { agent_id, .. }
        | AgentNotice::PhoneAnswer { agent_id, .. }
        | AgentNotice::PhoneFailed { agent_id, .. }
        | AgentNotice::MonitorAnswer { agent_id, .. }
        | AgentNotice::MonitorFailed { agent_id, .. }
        | AgentNotice::OutsideTransfer { agent_id, .. }
        | AgentNotice::Conference { agent_id, .. } => {
            if let Some(slot) = slot_of(agents, started, agent_id.0) {
                deliver(slot, DeskEvent { id: Some(id), name: "notice", data });
            }
        }
        AgentNotice::JobStopped { call_job_id } => {
            let job = i64::try_from(call_job_id.0).ok();
            for slot in agents.values_mut() {
                if slot.clients.iter().any(|c| c.scope.call_job_id == job) {
                    deliver(slot, DeskEvent { id: Some(id), name: "notice", data: data.clone() });
                }
            }
        }
        // For the wallboard (taken by `TenantHub::apply`).
        AgentNotice::CallbacksOpen { .. } => {}
        // Every agent with a screen open; others find it in their list when they open it.
        AgentNotice::CallbackRegistered { .. } | AgentNotice::ParkChanged { .. } => {
            for slot in agents.values_mut().filter(|s| !s.clients.is_empty()) {
                deliver(slot, DeskEvent { id: Some(id), name: "notice", data: data.clone() });
            }
        }
    }
}

/// For tests and benches: an agent id as the hub keys it.
pub fn agent_key(a: AgentId) -> u64 {
    a.0
}
