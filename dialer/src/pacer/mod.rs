//! Pacing: how many calls a dialing group launches now.
//!
//! A sans-IO core. The dialer engine feeds it what happened
//! ([`Pacer::on_event`]) and asks it, several times a second per dialing group,
//! how many calls to launch ([`Pacer::decide`]) given a snapshot of the floor
//! ([`FloorView`]). Time is always passed in as `now_ms` (milliseconds since an
//! arbitrary epoch chosen by the driver, monotonic); the pacer never reads a
//! clock, owns no socket, spawns no thread and holds no global state. The same
//! types run in production and in the floor simulator (`bench::pacing`).
//!
//! Policies: [`PreviewPacer`] (never launches by itself), [`ProgressivePacer`]
//! (one call per free agent), [`FixedRatioPacer`] (channels per ready agent) and
//! [`PredictivePacer`] (model-based, steers the campaign's service level).
//!
//! # Driving a pacer
//!
//! One pacer per campaign and dialing group (its compliance ledger is the
//! campaign's when the campaign dials through one group), created from the
//! campaign's settings with [`PredictiveConfig::for_campaign`]
//! (`abandon_target_pct`, `ring_timeout_s`, the tenant's UTC offset). The
//! driver owns it (one task or shard; the pacer is not `Sync`-shared) and:
//!
//! 1. **Reports every event of the group's calls, as it happens**, with the
//!    time it happened as `now_ms` (Unix ms if the ledger's days should be
//!    local days: see `local_offset_ms`):
//!    - [`PacerEvent::Launched`] when a call is sent to the carrier (INVITE
//!      out);
//!    - exactly one resolution per launched call, with its time since launch:
//!      [`PacerEvent::AnsweredLive`] (a person: after answering-machine
//!      detection, if any, when the call is handed to the agent queue),
//!      [`PacerEvent::AnsweredMachine`], [`PacerEvent::Failed`] (busy,
//!      congestion, invalid number, carrier error: any final failure before an
//!      answer), [`PacerEvent::RangOut`] (the ring timeout, or a cancel by the
//!      dialer);
//!    - exactly one of these per live answer: [`PacerEvent::Connected`] with
//!      the customer's wait from answer to agent, or [`PacerEvent::Abandoned`]
//!      when no agent took the customer within [`SERVICE_LEVEL_WAIT_MS`] (2 s):
//!      the driver then plays the campaign's abandon message (破棄呼) at once
//!      and records the abandon on the lead for the [`RedialRule`]. A customer
//!      hanging up before 2 s with no agent is also `Abandoned`; a `Connected`
//!      with `wait_ms` over 2 s counts as a missed service level;
//!    - per connected call, [`PacerEvent::TalkEnded`] (talk time, hold
//!      included) when the agent enters wrap-up, and [`PacerEvent::WrapEnded`]
//!      (wrap-up time) when the agent is ready again (a zero-length wrap-up is
//!      still reported, with 0).
//! 2. **Calls [`Pacer::decide`]** every 250-500 ms while the group dials (the
//!    simulator uses 500 ms), and may call it as well right after an agent
//!    becomes ready. It launches exactly [`Decision::launch`] calls then
//!    (fewer only when the campaign's channel limit or the lead supply says
//!    so: the pacer learns from what was launched, not from what it asked).
//!    Outside business hours, or with the job stopped, it simply stops calling.
//! 3. **Builds the [`FloorView`]** for each decision from its own state:
//!    - `ringing_ages_ms`: for each call launched and not yet resolved (no
//!      resolution event sent yet), `now_ms` minus its launch time; any order;
//!    - `waiting_customers`: live-answered customers not yet connected nor
//!      abandoned;
//!    - `agents`: every agent logged in to the group, with the pacer's coarse
//!      [`AgentState`] (Ready = waiting for a customer; Talking = connected,
//!      incl. hold and the agent's own ringing; WrapUp = after-call work;
//!      Paused = logged in but not taking calls), `in_state_ms` = time since it
//!      entered that state, and `pause_after_call` set when the agent asked for
//!      a break after this call (it will not come back to Ready). Agents logged
//!      out are left out.
//!
//! The pacer keeps no lead or call identity: the counts above are all it
//! needs. A restarted driver starts a fresh pacer: it begins progressive and
//! becomes predictive as it learns again (some hundred resolved calls); its
//! ledger is empty, so a driver that must keep the day's compliance across a
//! restart records the last 24 hours' live answers (served or abandoned, at
//! their times) with [`PredictivePacer::ledger_mut`] and
//! [`ComplianceLedger::record`] before dialling.

mod estimate;
mod ledger;
mod predictive;

pub use estimate::{DecayingHistogram, OutcomeModel, Resolution, ServiceModel};
pub use ledger::{ComplianceLedger, LedgerCounts, LedgerWindow, RedialRule, DEFAULT_REDIAL_HOLD_OFF_MS};
pub use predictive::{PacerConfigError, PredictiveConfig, PredictivePacer};

/// Wait limit of the service level: a live-answered customer connected to an
/// agent within this many ms counts as served; later (or never) is an abandon.
pub const SERVICE_LEVEL_WAIT_MS: u64 = 2_000;

/// Default abandon target (1 - service level): 3 %.
pub const DEFAULT_ABANDON_TARGET: f64 = 0.03;

/// Agent state as the pacer sees it (coarser than the agent state machine:
/// ringing and hold count as talking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentState {
    /// Logged in, free, waiting for a customer (待機).
    Ready,
    /// Connected to a customer (通話中), including hold.
    Talking,
    /// After-call work (後処理).
    WrapUp,
    /// Logged in but not taking calls (停止 / break).
    Paused,
}

/// One agent of the dialing group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentView {
    pub state: AgentState,
    /// Time already spent in `state`.
    pub in_state_ms: u64,
    /// The agent asked for a break after this call: busy now, not coming back.
    pub pause_after_call: bool,
}

/// Snapshot of a dialing group handed to [`Pacer::decide`].
#[derive(Clone, Copy, Debug)]
pub struct FloorView<'a> {
    /// Ages of the calls launched and not yet resolved (ringing, not answered).
    pub ringing_ages_ms: &'a [u64],
    /// Live-answered customers waiting for an agent right now.
    pub waiting_customers: u32,
    /// The agents of the group (paused ones included; offline ones omitted).
    pub agents: &'a [AgentView],
}

impl FloorView<'_> {
    pub fn ready_agents(&self) -> u32 {
        self.count(AgentState::Ready)
    }

    /// Agents logged in and not paused.
    pub fn active_agents(&self) -> u32 {
        self.agents.len() as u32 - self.count(AgentState::Paused)
    }

    fn count(&self, state: AgentState) -> u32 {
        self.agents.iter().filter(|a| a.state == state).count() as u32
    }
}

/// What happened, as reported by the dialer engine. Durations are measured by
/// the engine; the pacer learns its distributions from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacerEvent {
    /// A call was sent to the carrier.
    Launched,
    /// A person answered `ring_ms` after launch.
    AnsweredLive { ring_ms: u64 },
    /// An answering machine answered (detected) `ring_ms` after launch.
    AnsweredMachine { ring_ms: u64 },
    /// The call failed (busy, congestion, invalid) `after_ms` after launch.
    Failed { after_ms: u64 },
    /// Nobody answered within the ring timeout.
    RangOut { after_ms: u64 },
    /// A live customer reached an agent after waiting `wait_ms`.
    Connected { wait_ms: u64 },
    /// A live customer got no agent within the wait limit and heard the
    /// campaign's abandon message (破棄呼).
    Abandoned,
    /// An agent finished talking after `talk_ms` and entered wrap-up.
    TalkEnded { talk_ms: u64 },
    /// An agent finished wrap-up after `wrap_ms` and is ready again.
    WrapEnded { wrap_ms: u64 },
}

/// The pacer's answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Calls to launch now.
    pub launch: u32,
    /// Lines (ringing + to launch) per active agent after this decision.
    pub dial_level: f64,
    /// Predicted share of the live answers of the horizon that will abandon.
    pub predicted_abandon: f64,
}

impl Decision {
    fn new(launch: u32, floor: &FloorView, predicted_abandon: f64) -> Self {
        let lines = floor.ringing_ages_ms.len() as f64 + f64::from(launch);
        let dial_level = lines / f64::from(floor.active_agents().max(1));
        Decision { launch, dial_level, predicted_abandon }
    }
}

/// A pacing policy for one dialing group.
///
/// Run loop: feed every event with [`Pacer::on_event`] as it happens, and call
/// [`Pacer::decide`] every few hundred ms (and after agent state changes);
/// launch exactly `launch` calls.
pub trait Pacer {
    /// Short stable name (`kakeru`, `progressive`, ...).
    fn name(&self) -> &'static str;
    fn on_event(&mut self, now_ms: u64, event: PacerEvent);
    fn decide(&mut self, now_ms: u64, floor: &FloorView) -> Decision;
}

/// Preview mode: the agent sees the lead and dials; the pacer never launches.
#[derive(Clone, Debug, Default)]
pub struct PreviewPacer;

impl Pacer for PreviewPacer {
    fn name(&self) -> &'static str {
        "preview"
    }
    fn on_event(&mut self, _now_ms: u64, _event: PacerEvent) {}
    fn decide(&mut self, _now_ms: u64, floor: &FloorView) -> Decision {
        Decision::new(0, floor, 0.0)
    }
}

/// Progressive: one call per free agent (calls ringing count against it).
#[derive(Clone, Debug, Default)]
pub struct ProgressivePacer;

/// Calls progressive pacing launches on this floor.
pub fn progressive_launch(floor: &FloorView) -> u32 {
    let covered = floor.ringing_ages_ms.len() as u32 + floor.waiting_customers;
    floor.ready_agents().saturating_sub(covered)
}

impl Pacer for ProgressivePacer {
    fn name(&self) -> &'static str {
        "progressive"
    }
    fn on_event(&mut self, _now_ms: u64, _event: PacerEvent) {}
    fn decide(&mut self, _now_ms: u64, floor: &FloorView) -> Decision {
        Decision::new(progressive_launch(floor), floor, 0.0)
    }
}

/// Fixed dial ratio (発信速度倍率): `ratio` channels per ready agent.
#[derive(Clone, Debug)]
pub struct FixedRatioPacer {
    pub ratio: f64,
}

impl Pacer for FixedRatioPacer {
    fn name(&self) -> &'static str {
        "ratio"
    }
    fn on_event(&mut self, _now_ms: u64, _event: PacerEvent) {}
    fn decide(&mut self, _now_ms: u64, floor: &FloorView) -> Decision {
        let want = (self.ratio * f64::from(floor.ready_agents())).round() as u32;
        let covered = floor.ringing_ages_ms.len() as u32 + floor.waiting_customers;
        Decision::new(want.saturating_sub(covered), floor, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(ready: usize, talking: usize) -> Vec<AgentView> {
        let mut v = vec![AgentView { state: AgentState::Ready, in_state_ms: 1_000, pause_after_call: false }; ready];
        v.extend(std::iter::repeat_n(
            AgentView { state: AgentState::Talking, in_state_ms: 30_000, pause_after_call: false },
            talking,
        ));
        v
    }

    #[test]
    fn progressive_one_call_per_free_agent() {
        let a = agents(3, 5);
        let ringing = [500, 2_000];
        let floor = FloorView { ringing_ages_ms: &ringing, waiting_customers: 0, agents: &a };
        let d = ProgressivePacer.decide(0, &floor);
        assert_eq!(d.launch, 1);
        assert!((d.dial_level - 3.0 / 8.0).abs() < 1e-9);
    }

    #[test]
    fn fixed_ratio_counts_ringing_lines() {
        let a = agents(2, 5);
        let ringing = [500];
        let floor = FloorView { ringing_ages_ms: &ringing, waiting_customers: 0, agents: &a };
        let d = FixedRatioPacer { ratio: 2.5 }.decide(0, &floor);
        assert_eq!(d.launch, 4);
    }

    #[test]
    fn preview_never_launches() {
        let a = agents(4, 0);
        let floor = FloorView { ringing_ages_ms: &[], waiting_customers: 0, agents: &a };
        assert_eq!(PreviewPacer.decide(0, &floor).launch, 0);
    }
}
