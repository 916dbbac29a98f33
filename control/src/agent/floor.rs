//! [`Floor`]: the one owner of a tenant's agents. Routes inputs, merges timers, queues events.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use super::{
    AfterWrapUp, AgentConfig, AgentError, AgentId, AgentState, AgentView, CallId, Cause, Command, Event, ForceTarget,
    Input, OfferRefused, PauseReasonId, Pending, Transition,
};

/// Bounds of a floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloorLimits {
    /// Most agents one floor holds.
    pub max_agents: usize,
    /// Most events queued before inputs are refused with [`AgentError::QueueFull`].
    pub max_events: usize,
}

impl Default for FloorLimits {
    fn default() -> Self {
        FloorLimits { max_agents: 20_000, max_events: 65_536 }
    }
}

/// Events one input can produce at most (a transition and two commands), with margin.
const EVENTS_PER_INPUT: usize = 4;

#[derive(Debug)]
struct Agent {
    id: AgentId,
    state: AgentState,
    since_ms: u64,
    call: Option<CallId>,
    leg_up: bool,
    pending: Option<Pending>,
    /// Preview: the agent's own call is being placed or rings (cleared by the answer and by any
    /// transition).
    dialling: bool,
    config: AgentConfig,
    ring_deadline: Option<u64>,
    acw_deadline: Option<u64>,
    idle_deadline: Option<u64>,
    /// 無応答自動停止時間: a pause for an offer not taken ends here (cleared by any transition).
    release_deadline: Option<u64>,
    /// The deadline last pushed to the timer heap; heap entries that differ are stale.
    armed: Option<u64>,
}

impl Agent {
    fn new(id: AgentId) -> Self {
        Agent {
            id,
            state: AgentState::Offline,
            since_ms: 0,
            call: None,
            leg_up: false,
            pending: None,
            dialling: false,
            config: AgentConfig::default(),
            ring_deadline: None,
            acw_deadline: None,
            idle_deadline: None,
            release_deadline: None,
            armed: None,
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        [self.ring_deadline, self.acw_deadline, self.idle_deadline, self.release_deadline].into_iter().flatten().min()
    }

    /// In a call: a customer is offered, bridged or on hold, or the agent's preview call is being
    /// placed.
    fn in_call(&self) -> bool {
        match self.state {
            AgentState::Ringing => self.call.is_some() || self.dialling,
            AgentState::Talking | AgentState::Hold => true,
            _ => false,
        }
    }

    /// Preview: the agent's own call is asked for and not placed yet.
    fn awaiting_placement(&self) -> bool {
        self.state == AgentState::Ringing && self.dialling && self.call.is_none()
    }

    /// Ringing while the nailed-up leg is being set up (no customer).
    fn leg_setup(&self) -> bool {
        self.state == AgentState::Ringing && self.call.is_none() && !self.leg_up && !self.dialling
    }

    fn view(&self) -> AgentView {
        AgentView {
            agent_id: self.id,
            state: self.state,
            since_ms: self.since_ms,
            call_id: self.call,
            leg_up: self.leg_up,
            pending: self.pending,
            dialling: self.dialling,
            release_at_ms: self.release_deadline,
        }
    }
}

/// Floor indexes, kept apart from the agents map so one agent and the indexes borrow together.
#[derive(Debug, Default)]
struct Index {
    /// Ready agents by the time they became ready: the first is the longest idle.
    ready: BTreeSet<(u64, AgentId)>,
    /// Which agent holds each customer call: never two.
    calls: HashMap<CallId, AgentId>,
    events: VecDeque<Event>,
}

impl Index {
    fn command(&mut self, c: Command) {
        self.events.push_back(Event::Command(c));
    }

    fn enter(&mut self, a: &mut Agent, to: AgentState, cause: Cause, now_ms: u64) {
        let from = a.state;
        if from == AgentState::Ready {
            self.ready.remove(&(a.since_ms, a.id));
        }
        if to == AgentState::Ready {
            self.ready.insert((now_ms, a.id));
        }
        self.events.push_back(Event::Transition(Transition {
            agent_id: a.id,
            from,
            to,
            at_ms: now_ms,
            cause,
            call_id: a.call,
            lead_id: None,
            not_dialled: None,
        }));
        a.state = to;
        a.since_ms = now_ms;
        a.dialling = false;
        a.ring_deadline = None;
        a.acw_deadline = None;
        a.release_deadline = None;
        a.idle_deadline = to.is_idle_state().then(|| now_ms.saturating_add(a.config.idle_logoff_ms));
    }

    /// Frees the agent's customer call (if any) from the call index.
    fn free_call(&mut self, a: &mut Agent) {
        if let Some(c) = a.call.take() {
            if self.calls.get(&c) == Some(&a.id) {
                self.calls.remove(&c);
            }
        }
    }

    fn log_off(&mut self, a: &mut Agent, cause: Cause, now_ms: u64) {
        if a.leg_up || a.leg_setup() {
            self.command(Command::HangUpAgentLeg { agent_id: a.id });
        }
        self.free_call(a);
        a.leg_up = false;
        a.pending = None;
        self.enter(a, AgentState::Offline, cause, now_ms);
    }

    /// The call (and its wrap-up, if any) is over: apply the deferred request, or `fallback`.
    fn after_call(&mut self, a: &mut Agent, fallback: AgentState, cause: Cause, now_ms: u64) {
        match a.pending.take() {
            Some(Pending::LogOff { cause }) => self.log_off(a, cause, now_ms),
            Some(Pending::Pause { reason_id, cause }) => {
                self.enter(a, AgentState::Paused { reason_id }, cause, now_ms);
                a.call = None;
            }
            None => {
                self.enter(a, fallback, cause, now_ms);
                a.call = None;
            }
        }
    }

    fn finish_wrap_up(&mut self, a: &mut Agent, after: AfterWrapUp, cause: Cause, now_ms: u64) {
        match after {
            AfterWrapUp::Continue => self.after_call(a, AgentState::Ready, cause, now_ms),
            AfterWrapUp::Pause { reason_id } => {
                a.pending = None;
                self.enter(a, AgentState::Paused { reason_id }, cause, now_ms);
                a.call = None;
            }
            AfterWrapUp::EndJob => self.log_off(a, cause, now_ms),
        }
    }

    fn unreachable(&mut self, a: &mut Agent, cause: Cause, now_ms: u64) {
        if let Some(call_id) = a.call {
            match a.state {
                // The agent's own preview call is for nobody else: it ends.
                AgentState::Ringing if a.dialling => self.command(Command::HangUpCustomer { agent_id: a.id, call_id }),
                AgentState::Ringing => self.command(Command::ReleaseCustomer { agent_id: a.id, call_id }),
                AgentState::Talking | AgentState::Hold => {
                    self.command(Command::HangUpCustomer { agent_id: a.id, call_id })
                }
                _ => {}
            }
        }
        if (a.leg_up || a.leg_setup()) && cause == Cause::PhoneUnreachable {
            self.command(Command::HangUpAgentLeg { agent_id: a.id });
        }
        self.free_call(a);
        a.leg_up = false;
        a.pending = None;
        self.enter(a, AgentState::Unknown, cause, now_ms);
    }
}

/// All agents of one tenant, with one timer heap and one event queue. Sans-IO.
#[derive(Debug)]
pub struct Floor {
    limits: FloorLimits,
    pause_reasons: BTreeSet<PauseReasonId>,
    agents: HashMap<AgentId, Agent>,
    timers: BinaryHeap<Reverse<(u64, AgentId)>>,
    ix: Index,
}

impl Floor {
    /// A floor with the tenant's pause reasons.
    pub fn new(limits: FloorLimits, pause_reasons: impl IntoIterator<Item = PauseReasonId>) -> Self {
        Floor {
            limits,
            pause_reasons: pause_reasons.into_iter().collect(),
            agents: HashMap::new(),
            timers: BinaryHeap::new(),
            ix: Index::default(),
        }
    }

    /// Replaces the tenant's pause reasons (agents already paused keep theirs).
    pub fn set_pause_reasons(&mut self, reasons: impl IntoIterator<Item = PauseReasonId>) {
        self.pause_reasons = reasons.into_iter().collect();
    }

    /// Adds an agent, offline.
    pub fn add_agent(&mut self, agent_id: AgentId) -> Result<(), AgentError> {
        if self.agents.contains_key(&agent_id) {
            return Err(AgentError::AgentExists(agent_id));
        }
        if self.agents.len() >= self.limits.max_agents {
            return Err(AgentError::TooManyAgents(self.limits.max_agents));
        }
        self.agents.insert(agent_id, Agent::new(agent_id));
        Ok(())
    }

    /// Removes an offline agent.
    pub fn remove_agent(&mut self, agent_id: AgentId) -> Result<(), AgentError> {
        let a = self.agents.get(&agent_id).ok_or(AgentError::UnknownAgent(agent_id))?;
        if a.state != AgentState::Offline {
            return Err(AgentError::NotOffline(a.state));
        }
        self.agents.remove(&agent_id);
        self.compact_timers();
        Ok(())
    }

    pub fn agent(&self, agent_id: AgentId) -> Option<AgentView> {
        self.agents.get(&agent_id).map(Agent::view)
    }

    pub fn agents(&self) -> impl Iterator<Item = AgentView> + '_ {
        self.agents.values().map(Agent::view)
    }

    /// Which agent holds a customer call.
    pub fn call_owner(&self, call_id: CallId) -> Option<AgentId> {
        self.ix.calls.get(&call_id).copied()
    }

    /// Ready agents, longest idle first.
    pub fn ready_agents(&self) -> impl Iterator<Item = AgentId> + '_ {
        self.ix.ready.iter().map(|&(_, id)| id)
    }

    pub fn ready_count(&self) -> usize {
        self.ix.ready.len()
    }

    /// Offers an answered customer to the longest-idle ready agent (the match). Returns that agent;
    /// the events carry the transition to ringing and a [`Command::Bridge`].
    pub fn offer_to_longest_ready(&mut self, now_ms: u64, call_id: CallId) -> Result<AgentId, AgentError> {
        if let Some(&agent_id) = self.ix.calls.get(&call_id) {
            return Err(AgentError::OfferRefused(OfferRefused::CallTaken { agent_id }));
        }
        let Some(&(_, agent_id)) = self.ix.ready.first() else {
            return Err(AgentError::OfferRefused(OfferRefused::NoReadyAgent));
        };
        self.handle_input(now_ms, agent_id, Input::Offer { call_id })?;
        Ok(agent_id)
    }

    /// Like [`Floor::offer_to_longest_ready`], among the ready agents `eligible` accepts (e.g. agents
    /// in a call job of the customer's campaign): the longest idle of them is reserved. Scans the ready
    /// agents in idle order, so the cost is the number of ineligible agents idle longer.
    pub fn offer_to_longest_ready_where(
        &mut self,
        now_ms: u64,
        call_id: CallId,
        eligible: impl Fn(AgentId) -> bool,
    ) -> Result<AgentId, AgentError> {
        if let Some(&agent_id) = self.ix.calls.get(&call_id) {
            return Err(AgentError::OfferRefused(OfferRefused::CallTaken { agent_id }));
        }
        let Some(agent_id) = self.ix.ready.iter().map(|&(_, id)| id).find(|&id| eligible(id)) else {
            return Err(AgentError::OfferRefused(OfferRefused::NoReadyAgent));
        };
        self.handle_input(now_ms, agent_id, Input::Offer { call_id })?;
        Ok(agent_id)
    }

    /// Puts an agent back as a driver stored it (a restarted control service rebuilding its floor
    /// from persisted views). No event is produced. Deadlines are re-derived from `since_ms`: the
    /// offer / leg set-up / ACW / idle timers run from the time the agent entered its state.
    pub fn restore(&mut self, view: AgentView, config: AgentConfig) -> Result<(), AgentError> {
        if let Some(c) = view.call_id {
            if self.ix.calls.get(&c).is_some_and(|&a| a != view.agent_id) {
                return Err(AgentError::OfferRefused(OfferRefused::CallTaken { agent_id: view.agent_id }));
            }
        }
        if !self.agents.contains_key(&view.agent_id) {
            self.add_agent(view.agent_id)?;
        }
        let a = self.agents.get_mut(&view.agent_id).ok_or(AgentError::UnknownAgent(view.agent_id))?;
        if a.state == AgentState::Ready {
            self.ix.ready.remove(&(a.since_ms, a.id));
        }
        Self::free_call_of(&mut self.ix, a);
        a.state = view.state;
        a.since_ms = view.since_ms;
        a.call = view.call_id;
        a.leg_up = view.leg_up;
        a.pending = view.pending;
        a.dialling = view.dialling && view.state == AgentState::Ringing;
        a.config = config;
        if let Some(c) = view.call_id {
            if matches!(view.state, AgentState::Ringing | AgentState::Talking | AgentState::Hold) {
                self.ix.calls.insert(c, a.id);
            }
        }
        if a.state == AgentState::Ready {
            self.ix.ready.insert((a.since_ms, a.id));
        }
        let since = a.since_ms;
        a.ring_deadline = match (a.state, a.call) {
            (AgentState::Ringing, _) if a.dialling => Some(since.saturating_add(config.preview_timeout_ms)),
            (AgentState::Ringing, Some(_)) => Some(since.saturating_add(config.offer_timeout_ms)),
            (AgentState::Ringing, None) if !a.leg_up => Some(since.saturating_add(config.leg_setup_timeout_ms)),
            _ => None,
        };
        a.acw_deadline = match (a.state, config.acw_ms) {
            (AgentState::WrapUp, Some(acw)) if acw > 0 => Some(since.saturating_add(acw)),
            _ => None,
        };
        a.idle_deadline = a.state.is_idle_state().then(|| since.saturating_add(config.idle_logoff_ms));
        a.release_deadline = view.release_at_ms.filter(|_| matches!(a.state, AgentState::Paused { .. }));
        Self::rearm(&mut self.timers, a);
        self.compact_timers();
        Ok(())
    }

    fn free_call_of(ix: &mut Index, a: &mut Agent) {
        ix.free_call(a);
    }

    /// The configuration of an agent's current call job.
    pub fn agent_config(&self, agent_id: AgentId) -> Option<AgentConfig> {
        self.agents.get(&agent_id).map(|a| a.config)
    }

    /// The earliest deadline of any agent.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// The next output, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.ix.events.pop_front()
    }

    /// Fires every deadline at or before `now_ms`. Stops early (leaving the rest due) when the event
    /// queue is nearly full; call again after draining [`Floor::poll_event`].
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(&Reverse((t, agent_id))) = self.timers.peek() {
            if t > now_ms {
                break;
            }
            if self.ix.events.len() + EVENTS_PER_INPUT > self.limits.max_events {
                return;
            }
            self.timers.pop();
            let Some(a) = self.agents.get_mut(&agent_id) else {
                continue;
            };
            if a.armed != Some(t) {
                continue; // stale entry: the agent's deadline moved
            }
            a.armed = None;
            Self::fire(&mut self.ix, a, now_ms);
            Self::rearm(&mut self.timers, a);
        }
        self.compact_timers();
    }

    fn fire(ix: &mut Index, a: &mut Agent, now_ms: u64) {
        if a.ring_deadline.is_some_and(|t| t <= now_ms) {
            a.ring_deadline = None;
            match (a.state, a.call) {
                // Preview: the call was not placed or not answered in time; it ends, the agent is
                // ready again.
                (AgentState::Ringing, call) if a.dialling => {
                    if let Some(call_id) = call {
                        ix.command(Command::HangUpCustomer { agent_id: a.id, call_id });
                    }
                    ix.free_call(a);
                    ix.after_call(a, AgentState::Ready, Cause::NoAnswer, now_ms);
                }
                (AgentState::Ringing, None) => ix.unreachable(a, Cause::PhoneUnreachable, now_ms),
                (AgentState::Ringing, Some(call_id)) => {
                    ix.command(Command::ReleaseCustomer { agent_id: a.id, call_id });
                    ix.free_call(a);
                    let fallback = match a.config.no_answer_pause {
                        Some(reason_id) => AgentState::Paused { reason_id },
                        None => AgentState::Ready,
                    };
                    ix.after_call(a, fallback, Cause::NoAnswer, now_ms);
                    // 無応答自動停止時間: the pause ends by itself after the group's time (none: it
                    // lasts until the agent or a supervisor ends it).
                    if let (AgentState::Paused { .. }, Some(ms)) = (a.state, a.config.no_answer_release_ms) {
                        if a.state == fallback && ms > 0 {
                            a.release_deadline = Some(now_ms.saturating_add(ms));
                        }
                    }
                }
                _ => {}
            }
            return;
        }
        if a.acw_deadline.is_some_and(|t| t <= now_ms) {
            a.acw_deadline = None;
            if a.state == AgentState::WrapUp {
                ix.finish_wrap_up(a, AfterWrapUp::Continue, Cause::AcwTimeout, now_ms);
            }
            return;
        }
        if a.release_deadline.is_some_and(|t| t <= now_ms) {
            a.release_deadline = None;
            if matches!(a.state, AgentState::Paused { .. }) {
                ix.enter(a, AgentState::Ready, Cause::PauseReleased, now_ms);
            }
            return;
        }
        if a.idle_deadline.is_some_and(|t| t <= now_ms) {
            a.idle_deadline = None;
            if a.state.is_idle_state() {
                ix.log_off(a, Cause::IdleTimeout, now_ms);
            }
        }
    }

    fn rearm(timers: &mut BinaryHeap<Reverse<(u64, AgentId)>>, a: &mut Agent) {
        let next = a.next_deadline();
        if next != a.armed {
            a.armed = next;
            if let Some(t) = next {
                timers.push(Reverse((t, a.id)));
            }
        }
    }

    /// Drops stale heap entries: from the top (so [`Floor::poll_timeout`] is exact), and all of
    /// them when they outnumber the agents (keeps the heap bounded).
    fn compact_timers(&mut self) {
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if self.agents.get(&id).is_some_and(|a| a.armed == Some(t)) {
                break;
            }
            self.timers.pop();
        }
        if self.timers.len() > 2 * self.agents.len() + 1024 {
            self.timers = self.agents.values().filter_map(|a| a.armed.map(|t| Reverse((t, a.id)))).collect();
        }
    }

    /// Applies one input for one agent. On error nothing changed.
    pub fn handle_input(&mut self, now_ms: u64, agent_id: AgentId, input: Input) -> Result<(), AgentError> {
        if self.ix.events.len() + EVENTS_PER_INPUT > self.limits.max_events {
            return Err(AgentError::QueueFull);
        }
        let a = self.agents.get_mut(&agent_id).ok_or(AgentError::UnknownAgent(agent_id))?;
        let r = Self::apply(&mut self.ix, &self.pause_reasons, a, now_ms, input);
        Self::rearm(&mut self.timers, a);
        self.compact_timers();
        r
    }

    fn apply(
        ix: &mut Index,
        reasons: &BTreeSet<PauseReasonId>,
        a: &mut Agent,
        now_ms: u64,
        input: Input,
    ) -> Result<(), AgentError> {
        use AgentState as S;
        let not_allowed = |a: &Agent| AgentError::NotAllowed { state: a.state, input: input.name() };
        let check_call = |a: &Agent, got: CallId| {
            if a.call == Some(got) {
                Ok(())
            } else {
                Err(AgentError::WrongCall { expected: a.call, got })
            }
        };
        let check_reason = |r: PauseReasonId| {
            if reasons.contains(&r) {
                Ok(())
            } else {
                Err(AgentError::UnknownPauseReason(r))
            }
        };
        match input {
            Input::Login { config } => {
                validate(&config, reasons)?;
                if !matches!(a.state, S::Offline | S::Unknown) {
                    return Err(not_allowed(a));
                }
                a.config = config;
                a.leg_up = false;
                a.pending = None;
                ix.enter(a, S::Ringing, Cause::Login, now_ms);
                a.ring_deadline = Some(now_ms.saturating_add(config.leg_setup_timeout_ms));
                ix.command(Command::DialAgentLeg { agent_id: a.id, campaign_id: None });
            }
            Input::AgentLegUp => {
                // 未確認 is also left when a leg comes up: the dialer host that took the agent's
                // campaign over (its old host died) set the leg up again.
                if !a.leg_setup() && a.state != S::Unknown {
                    return Err(not_allowed(a));
                }
                a.leg_up = true;
                ix.after_call(a, S::Ready, Cause::AgentLegUp, now_ms);
            }
            Input::AgentLegDown | Input::PhoneUnreachable => {
                if matches!(a.state, S::Offline | S::Unknown) {
                    return Err(not_allowed(a));
                }
                let cause = if input == Input::AgentLegDown { Cause::AgentLegDown } else { Cause::PhoneUnreachable };
                ix.unreachable(a, cause, now_ms);
            }
            Input::GoReady => match a.state {
                S::Paused { .. } => ix.enter(a, S::Ready, Cause::GoReady, now_ms),
                S::WrapUp => {
                    // The agent's own earlier request is replaced; a supervisor's stands.
                    if matches!(a.pending, Some(Pending::Pause { cause, .. } | Pending::LogOff { cause }) if !matches!(cause, Cause::Supervisor { .. }))
                    {
                        a.pending = None;
                    }
                    ix.after_call(a, S::Ready, Cause::GoReady, now_ms);
                }
                S::Ready => touch(a, now_ms),
                _ if a.in_call() => {
                    if matches!(a.pending, Some(Pending::Pause { cause, .. } | Pending::LogOff { cause }) if !matches!(cause, Cause::Supervisor { .. }))
                    {
                        a.pending = None;
                        ix.events.push_back(Event::Deferred { agent_id: a.id, after_call: false });
                    }
                }
                _ => return Err(not_allowed(a)),
            },
            Input::Offer { call_id } => {
                if let Some(&agent_id) = ix.calls.get(&call_id) {
                    return Err(AgentError::OfferRefused(OfferRefused::CallTaken { agent_id }));
                }
                if a.state != S::Ready {
                    return Err(AgentError::OfferRefused(OfferRefused::NotReady { state: a.state }));
                }
                a.call = Some(call_id);
                ix.calls.insert(call_id, a.id);
                ix.enter(a, S::Ringing, Cause::Offer, now_ms);
                a.ring_deadline = Some(now_ms.saturating_add(a.config.offer_timeout_ms));
                ix.command(Command::Bridge { agent_id: a.id, call_id });
            }
            Input::Decline { call_id } => {
                // The agent's own preview call is ended with a hang-up, not declined.
                if a.state != S::Ringing || a.dialling {
                    return Err(not_allowed(a));
                }
                check_call(a, call_id)?;
                ix.command(Command::ReleaseCustomer { agent_id: a.id, call_id });
                ix.free_call(a);
                ix.after_call(a, S::Ready, Cause::Declined, now_ms);
            }
            Input::Bridged { call_id } => {
                if a.state != S::Ringing {
                    return Err(not_allowed(a));
                }
                check_call(a, call_id)?;
                ix.enter(a, S::Talking, Cause::Bridged, now_ms);
            }
            Input::CustomerEnded { call_id } => match a.state {
                S::Ringing => {
                    check_call(a, call_id)?;
                    // Abandoned before the bridge: no conversation, no ACW.
                    ix.free_call(a);
                    ix.after_call(a, S::Ready, Cause::CustomerEnded, now_ms);
                }
                S::Talking | S::Hold => {
                    check_call(a, call_id)?;
                    ix.calls.remove(&call_id);
                    match a.config.acw_ms {
                        Some(acw) if acw > 0 => {
                            ix.enter(a, S::WrapUp, Cause::CustomerEnded, now_ms);
                            a.acw_deadline = Some(now_ms.saturating_add(acw));
                        }
                        _ => ix.after_call(a, S::Ready, Cause::CustomerEnded, now_ms),
                    }
                }
                _ => return Err(not_allowed(a)),
            },
            Input::TransferOut { call_id } => {
                if !matches!(a.state, S::Talking | S::Hold) {
                    return Err(not_allowed(a));
                }
                check_call(a, call_id)?;
                // The customer waits (waiting audio) for whom it goes to; the call stays the
                // agent's for its wrap-up record only.
                ix.calls.remove(&call_id);
                ix.command(Command::ReleaseCustomer { agent_id: a.id, call_id });
                match a.config.acw_ms {
                    Some(acw) if acw > 0 => {
                        ix.enter(a, S::WrapUp, Cause::Transferred, now_ms);
                        a.acw_deadline = Some(now_ms.saturating_add(acw));
                    }
                    _ => ix.after_call(a, S::Ready, Cause::Transferred, now_ms),
                }
            }
            Input::Park { call_id } => {
                if !matches!(a.state, S::Talking | S::Hold) {
                    return Err(not_allowed(a));
                }
                check_call(a, call_id)?;
                // As after a transfer: the customer waits, now under a park number (the control
                // service keeps it), and the call stays the agent's for its wrap-up record only.
                ix.calls.remove(&call_id);
                ix.command(Command::ParkCustomer { agent_id: a.id, call_id, hold_ms: 0 });
                match a.config.acw_ms {
                    Some(acw) if acw > 0 => {
                        ix.enter(a, S::WrapUp, Cause::Parked, now_ms);
                        a.acw_deadline = Some(now_ms.saturating_add(acw));
                    }
                    _ => ix.after_call(a, S::Ready, Cause::Parked, now_ms),
                }
            }
            Input::Hold { call_id } => {
                if a.state != S::Talking {
                    return Err(not_allowed(a));
                }
                check_call(a, call_id)?;
                ix.enter(a, S::Hold, Cause::Hold, now_ms);
                ix.command(Command::HoldCustomer { agent_id: a.id, call_id, held: true });
            }
            Input::Unhold { call_id } => {
                if a.state != S::Hold {
                    return Err(not_allowed(a));
                }
                check_call(a, call_id)?;
                ix.enter(a, S::Talking, Cause::Unhold, now_ms);
                ix.command(Command::HoldCustomer { agent_id: a.id, call_id, held: false });
            }
            Input::WrapUpSaved { call_id, after } => {
                if let AfterWrapUp::Pause { reason_id } = after {
                    check_reason(reason_id)?;
                }
                if a.state != S::WrapUp {
                    // A record saved after ACW ended (or before the call ended) changes no state.
                    return Ok(());
                }
                check_call(a, call_id)?;
                ix.finish_wrap_up(a, after, Cause::WrapUpSaved, now_ms);
            }
            Input::Pause { reason_id } => {
                check_reason(reason_id)?;
                pause(ix, a, reason_id, Cause::PauseRequested, now_ms, true)?;
            }
            Input::LogOff => log_off(ix, a, Cause::LogOffRequested, now_ms, true)?,
            Input::Force { supervisor_id, to } => {
                let cause = Cause::Supervisor { supervisor_id };
                match to {
                    ForceTarget::Offline => log_off(ix, a, cause, now_ms, false)?,
                    ForceTarget::Paused { reason_id } => {
                        check_reason(reason_id)?;
                        pause(ix, a, reason_id, cause, now_ms, false)?;
                    }
                    ForceTarget::Ready => match a.state {
                        S::Paused { .. } => ix.enter(a, S::Ready, cause, now_ms),
                        S::WrapUp => {
                            a.pending = None;
                            ix.after_call(a, S::Ready, cause, now_ms);
                        }
                        _ => return Err(not_allowed(a)),
                    },
                }
            }
            Input::Activity => {
                if matches!(a.state, S::Offline | S::Unknown) {
                    return Err(not_allowed(a));
                }
                touch(a, now_ms);
            }
            Input::PreviewDial { campaign_id, call_job_id, lead_id, caller_id } => {
                if a.state != S::Ready {
                    return Err(not_allowed(a));
                }
                ix.enter(a, S::Ringing, Cause::PreviewDial, now_ms);
                a.dialling = true;
                a.ring_deadline = Some(now_ms.saturating_add(a.config.preview_timeout_ms));
                ix.command(Command::DialPreview { agent_id: a.id, campaign_id, call_job_id, lead_id, caller_id });
            }
            Input::PreviewPlaced { call_id } => {
                if !a.awaiting_placement() {
                    return Err(not_allowed(a));
                }
                if let Some(&agent_id) = ix.calls.get(&call_id) {
                    return Err(AgentError::OfferRefused(OfferRefused::CallTaken { agent_id }));
                }
                a.call = Some(call_id);
                ix.calls.insert(call_id, a.id);
            }
            Input::PreviewNotDialled => {
                if !a.awaiting_placement() {
                    return Err(not_allowed(a));
                }
                ix.after_call(a, S::Ready, Cause::NotDialled, now_ms);
            }
            Input::PreviewAnswered { call_id } => {
                if !(a.state == S::Ringing && a.dialling) {
                    return Err(not_allowed(a));
                }
                check_call(a, call_id)?;
                // From here it is an offered customer: bridged at once, released if the bridge
                // does not happen within the offer timeout.
                a.dialling = false;
                a.ring_deadline = Some(now_ms.saturating_add(a.config.offer_timeout_ms));
                ix.command(Command::Bridge { agent_id: a.id, call_id });
            }
        }
        Ok(())
    }
}

fn validate(c: &AgentConfig, reasons: &BTreeSet<PauseReasonId>) -> Result<(), AgentError> {
    if c.idle_logoff_ms == 0 {
        return Err(AgentError::InvalidConfig("idle_logoff_ms must be > 0"));
    }
    if c.offer_timeout_ms == 0 {
        return Err(AgentError::InvalidConfig("offer_timeout_ms must be > 0"));
    }
    if c.leg_setup_timeout_ms == 0 {
        return Err(AgentError::InvalidConfig("leg_setup_timeout_ms must be > 0"));
    }
    if c.preview_timeout_ms == 0 {
        return Err(AgentError::InvalidConfig("preview_timeout_ms must be > 0"));
    }
    if let Some(r) = c.no_answer_pause {
        if !reasons.contains(&r) {
            return Err(AgentError::UnknownPauseReason(r));
        }
    }
    Ok(())
}

/// Restarts the idle timer.
fn touch(a: &mut Agent, now_ms: u64) {
    if a.state.is_idle_state() {
        a.idle_deadline = Some(now_ms.saturating_add(a.config.idle_logoff_ms));
    }
}

/// Pause now, or when the call ends. `by_agent`: the agent's own request (the supervisor's force
/// takes an agent out of ACW at once; the agent's own request waits for the wrap-up).
fn pause(
    ix: &mut Index,
    a: &mut Agent,
    reason_id: PauseReasonId,
    cause: Cause,
    now_ms: u64,
    by_agent: bool,
) -> Result<(), AgentError> {
    use AgentState as S;
    let defer = a.in_call() || a.leg_setup() || (by_agent && a.state == S::WrapUp);
    if defer {
        a.pending = Some(Pending::Pause { reason_id, cause });
        ix.events.push_back(Event::Deferred { agent_id: a.id, after_call: true });
        return Ok(());
    }
    match a.state {
        S::Paused { reason_id: r } if r == reason_id => touch(a, now_ms),
        S::Ready | S::Paused { .. } | S::WrapUp => {
            a.pending = None;
            ix.enter(a, S::Paused { reason_id }, cause, now_ms);
            a.call = None;
        }
        _ => return Err(AgentError::NotAllowed { state: a.state, input: "pause" }),
    }
    Ok(())
}

/// Log off now, or when the call ends (see [`pause`] for `by_agent`).
fn log_off(ix: &mut Index, a: &mut Agent, cause: Cause, now_ms: u64, by_agent: bool) -> Result<(), AgentError> {
    use AgentState as S;
    if a.state == S::Offline {
        return Err(AgentError::NotAllowed { state: a.state, input: "log_off" });
    }
    if a.in_call() || (by_agent && a.state == S::WrapUp) {
        a.pending = Some(Pending::LogOff { cause });
        ix.events.push_back(Event::Deferred { agent_id: a.id, after_call: true });
        return Ok(());
    }
    ix.log_off(a, cause, now_ms);
    Ok(())
}
