//! The agent state machine (SPEC 5), sans-IO.
//!
//! No clock reads, no IO, no locks: the driver passes `now_ms` (milliseconds on the driver's clock,
//! Unix epoch in production so that [`Transition::at_ms`] can be stored as is) into every
//! `handle_*` call, then drains [`Floor::poll_event`] and arms a timer for [`Floor::poll_timeout`].
//!
//! Run loop of a driver:
//! ```text
//! loop {
//!     select { input => floor.handle_input(now, agent, input), timer(floor.poll_timeout()) => floor.handle_timeout(now) }
//!     while let Some(ev) = floor.poll_event() { publish / store ev }
//! }
//! ```
//!
//! The types here are the core's own, with no serde: what crosses the bus or `control_agents` is
//! `wire::agent`'s, converted in `edge` (which also maps the messages to [`Input`]s), so the core
//! can change without changing the JSON other processes read.
//!
//! Rules (each is tested in `tests/it/agent.rs`):
//! - log in = start a call job: the system dials the agent's phone (nailed-up leg): `Ringing` until the
//!   leg is up, then `Ready`; a leg that does not come up in time makes the agent `Unknown`.
//! - an offer of a customer is accepted only from `Ready` (never two customers); the agent is then
//!   `Ringing` with that call reserved, `Talking` once bridged, `Hold` / `Talking` on hold / unhold.
//! - when the customer ends: `WrapUp` (ACW) if the campaign has ACW, else straight to the next state.
//!   ACW ends when the record is saved, when the campaign's ACW seconds pass, or on go-ready.
//! - pause / log-off asked for during a call (offer, talking, hold, ACW) is deferred to the end of the
//!   call's wrap-up; the last request wins. A supervisor's force is deferred the same way in a call,
//!   immediate otherwise.
//! - 60 minutes idle (no activity) in `Ready`, `WrapUp` or `Paused` logs the agent off.
//! - an offer the agent does not take within the ring timeout is released, and the agent auto-paused
//!   when the campaign says so.
//! - the phone leg dropping or the phone being unreachable makes the agent `Unknown` at once; a customer
//!   in the call is hung up.
//! - preview (プレビュー): a ready agent who asks to dial the lead they see is `Ringing` at once with no
//!   customer yet (so no other customer is offered) while the dialer places the call; the call is
//!   attached when placed, the answered customer is bridged to that agent only, and a call that is not
//!   placed (do-not-call, a channel limit, ...) or not answered gives the agent back to `Ready`.
//! - park (パーク保留): a talking agent parks its customer ([`Input::Park`]: to wrap-up as after a
//!   transfer, [`Command::ParkCustomer`]); the tenant's [`parking::Parking`] keeps the call under a
//!   park number until any ready agent is offered it ([`Input::Offer`]: the pick-up).

mod edge;
mod floor;
pub mod parking;

pub use edge::{command_input, shard_input};
pub use floor::{Floor, FloorLimits};

/// The ids the agent core shares with the messages (`wire`'s, one definition for every process).
pub use wire::{AgentId, CallId, PauseReasonId, SupervisorId};

/// Agent states (SPEC 5). The Japanese floor word is in each variant's doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// オフライン: logged off, no phone leg.
    Offline,
    /// 待機: phone leg up, waiting for a customer.
    Ready,
    /// 着信中: the agent leg is being set up, or a customer is offered (reserved) to the agent.
    Ringing,
    /// 通話中: bridged with a customer.
    Talking,
    /// 保留: customer on hold.
    Hold,
    /// 後処理 (ACW): after the customer left, until the wrap-up record is saved or the ACW time ends.
    WrapUp,
    /// 停止: paused with a tenant-defined reason.
    Paused { reason_id: PauseReasonId },
    /// 未確認: the phone is unreachable.
    Unknown,
}

impl AgentState {
    /// A short lowercase name, for logs and statistics keys.
    pub fn name(&self) -> &'static str {
        // One name per state, the wire's (statistics keys and logs read the same as the bus).
        wire::agent::AgentState::from(*self).name()
    }

    /// States counted as idle for the 60-minute log-off.
    pub fn is_idle_state(&self) -> bool {
        matches!(self, AgentState::Ready | AgentState::WrapUp | AgentState::Paused { .. })
    }
}

/// Whether `from -> to` is a transition the machine may make (any cause). Used by tests and by
/// consumers that rebuild state from stored transitions.
pub fn is_allowed(from: AgentState, to: AgentState) -> bool {
    use AgentState::*;
    if from == to {
        return false;
    }
    match (from, to) {
        // Leg drop / phone unreachable from anywhere logged in; log-off from anywhere.
        (Offline, Unknown) => false,
        (_, Unknown) | (_, Offline) => true,
        (Offline | Unknown, Ringing) => true,
        // The leg set up again by the dialer host that took the agent's campaign over.
        (Unknown, Ready) => true,
        (Ringing, Ready | Talking | Paused { .. }) => true,
        (Ready, Ringing | Paused { .. }) => true,
        (Talking, Hold | WrapUp | Ready | Paused { .. }) => true,
        (Hold, Talking | WrapUp | Ready | Paused { .. }) => true,
        (WrapUp, Ready | Paused { .. }) => true,
        (Paused { .. }, Ready | Paused { .. }) => true,
        _ => false,
    }
}

/// Why a transition happened. Status statistics group by this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The agent started a call job (log in): the system dials the agent's phone.
    Login,
    /// The nailed-up agent leg answered.
    AgentLegUp,
    /// The agent leg ended (agent hung up the phone, media worker lost it).
    AgentLegDown,
    /// The agent leg was not up within the set-up timeout, or the phone was reported unreachable.
    PhoneUnreachable,
    /// A customer was offered (reserved) to the agent.
    Offer,
    /// The agent declined the offered customer.
    Declined,
    /// The agent asked to dial the lead they previewed (preview mode).
    PreviewDial,
    /// The dialer did not place the agent's preview call (do-not-call, a channel limit, outside
    /// business hours, the number already in a call, the job stopped).
    NotDialled,
    /// The offered customer was not taken within the ring timeout.
    NoAnswer,
    /// The customer was bridged to the agent.
    Bridged,
    /// The customer left (hung up, or hung up from the agent's UI).
    CustomerEnded,
    /// Hold / unhold by the agent.
    Hold,
    Unhold,
    /// 転送: the agent handed its customer to another agent (added in v1).
    Transferred,
    /// パーク保留: the agent parked its customer (#72 or the desktop) for any agent to pick up
    /// (added in v1).
    Parked,
    /// The wrap-up record was saved.
    WrapUpSaved,
    /// The campaign's ACW seconds ran out.
    AcwTimeout,
    /// The agent asked to be ready.
    GoReady,
    /// The agent asked for a pause (applied now, or at the end of the call).
    PauseRequested,
    /// The agent asked to log off (applied now, or at the end of the call).
    LogOffRequested,
    /// 60 minutes idle in ready / ACW / paused.
    IdleTimeout,
    /// 無応答自動停止時間 ran out: the pause for an offer not taken ended by itself.
    PauseReleased,
    /// A supervisor changed the agent's state.
    Supervisor {
        supervisor_id: SupervisorId,
    },
}

/// One recorded state change: the unit of status statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub agent_id: AgentId,
    pub from: AgentState,
    pub to: AgentState,
    /// The driver's `now_ms` when the transition was made.
    pub at_ms: u64,
    pub cause: Cause,
    /// The customer call the agent was in or is offered, if any.
    pub call_id: Option<CallId>,
    /// The lead of that call, or of the preview dial the agent asked for (added in v1). The state
    /// machine leaves it `None`; the control service fills it in before publishing, so that an
    /// agent's screen shows the customer the moment the transition arrives.
    pub lead_id: Option<wire::LeadId>,
    /// Cause `not_dialled` only: why the dialer did not place the preview dial (added in v1; filled
    /// in by the control service from `preview_not_dialled`).
    pub not_dialled: Option<wire::NotDialledReason>,
}

/// Commands for the media / dialer shards, produced by the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Dial the agent's phone (nailed-up leg). `campaign_id` is the campaign of the agent's call job:
    /// the state machine leaves it `None`; the control service fills it in before publishing, so
    /// that the dialer places the leg on the campaign's shard.
    DialAgentLeg { agent_id: AgentId, campaign_id: Option<wire::CampaignId> },
    /// Hang up the agent's phone leg.
    HangUpAgentLeg { agent_id: AgentId },
    /// Bridge the offered customer to the agent's leg (beep, then audio).
    Bridge { agent_id: AgentId, call_id: CallId },
    /// The reserved customer is no longer for this agent: offer it to another agent or abandon it.
    ReleaseCustomer { agent_id: AgentId, call_id: CallId },
    /// Hang up the customer (the agent's leg is gone); a call still ringing is cancelled.
    HangUpCustomer { agent_id: AgentId, call_id: CallId },
    /// 保留 (`held`) or back (unhold): the customer hears hold audio and the agent nothing, or
    /// they hear each other again (added in v1).
    HoldCustomer { agent_id: AgentId, call_id: CallId, held: bool },
    /// パーク保留: the agent let go of its customer, who waits (waiting audio) under a park number
    /// for any agent to pick up; `hold_ms`, filled in by the control service, is the tenant's park
    /// limit (added in v1).
    ParkCustomer { agent_id: AgentId, call_id: CallId, hold_ms: u64 },
    /// Preview: dial this lead of the agent's call job for the agent (who waits in `Ringing`), from
    /// the caller ID it chose (`None`: the call job's).
    DialPreview {
        agent_id: AgentId,
        campaign_id: wire::CampaignId,
        call_job_id: wire::CallJobId,
        lead_id: wire::LeadId,
        caller_id: Option<wire::CallerIdId>,
    },
    /// 外線転送: place a second carrier leg to `tel` and hand the customer of `call_id` to it when
    /// it answers (the agent's, still talking; added in v1).
    TransferOutside { agent_id: AgentId, call_id: CallId, tel: wire::Tel, caller_id: Option<wire::Tel> },
    /// 電話会議: call `tel` as the third party of the agent's call `call_id` (added in v1).
    Conference { agent_id: AgentId, call_id: CallId, tel: wire::Tel, caller_id: Option<wire::Tel> },
    /// 電話会議: drop the third party (added in v1).
    EndConference { agent_id: AgentId, call_id: CallId },
    /// 電話会議: the agent leaves; the customer and the third party go on (added in v1).
    LeaveConference { agent_id: AgentId, call_id: CallId },
}

/// Output of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Transition(Transition),
    Command(Command),
    /// A pause or log-off asked for during a call is deferred to the call's end (`after_call`), or
    /// such a request was dropped (`false`). The pacer counts the agent as not coming back.
    Deferred {
        agent_id: AgentId,
        after_call: bool,
    },
}

/// What the agent wants after the wrap-up record is saved (SPEC 5 "state after saving").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWrapUp {
    /// Continue auto-dial: ready.
    Continue,
    /// Break / away: paused with this reason.
    Pause { reason_id: PauseReasonId },
    /// End the call job: log off.
    EndJob,
}

/// States a supervisor may force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForceTarget {
    Ready,
    Paused { reason_id: PauseReasonId },
    Offline,
}

/// Per-agent settings, from the campaign of the agent's call job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// ACW seconds of the campaign, in ms; `None` = no ACW (straight to the next state),
    /// `Some(0)` is treated as no ACW as well.
    pub acw_ms: Option<u64>,
    /// Idle log-off after this long in ready / ACW / paused (SPEC 5: 60 minutes).
    pub idle_logoff_ms: u64,
    /// How long an offered customer waits for the agent before being released.
    pub offer_timeout_ms: u64,
    /// How long the nailed-up leg may take to come up before the agent is `Unknown`.
    pub leg_setup_timeout_ms: u64,
    /// Auto-pause an agent who does not take an offered customer, with this reason.
    pub no_answer_pause: Option<PauseReasonId>,
    /// 無応答自動停止時間: that pause ends by itself after this long (`None` or 0: it lasts until
    /// the agent or a supervisor ends it).
    pub no_answer_release_ms: Option<u64>,
    /// Preview: how long the agent's own call may take from the dial to the answer (the campaign's
    /// ring timeout and a margin); past it the call is hung up and the agent is ready again.
    pub preview_timeout_ms: u64,
}

fn default_preview_timeout_ms() -> u64 {
    210_000
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            acw_ms: None,
            idle_logoff_ms: 60 * 60 * 1000,
            offer_timeout_ms: 20_000,
            leg_setup_timeout_ms: 60_000,
            no_answer_pause: None,
            no_answer_release_ms: None,
            preview_timeout_ms: default_preview_timeout_ms(),
        }
    }
}

/// Inputs for one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Start a call job: dial the agent's phone. From offline or unknown.
    Login {
        config: AgentConfig,
    },
    /// The agent leg answered.
    AgentLegUp,
    /// The agent leg ended.
    AgentLegDown,
    /// The phone cannot be reached (registration lost, SIP error).
    PhoneUnreachable,
    /// The agent asks to be ready (from paused or ACW).
    GoReady,
    /// Offer a customer. Accepted only in ready; see [`OfferRefused`].
    Offer {
        call_id: CallId,
    },
    /// The agent declines the offered customer.
    Decline {
        call_id: CallId,
    },
    /// The offered customer is bridged to the agent.
    Bridged {
        call_id: CallId,
    },
    /// The customer left.
    CustomerEnded {
        call_id: CallId,
    },
    Hold {
        call_id: CallId,
    },
    Unhold {
        call_id: CallId,
    },
    /// 転送 (blind): the agent hands its customer on (to another agent, whom control offers it);
    /// the agent goes to wrap-up for its part of the call (added in v1).
    TransferOut {
        call_id: CallId,
    },
    /// パーク保留: the agent parks its customer (any agent may pick it up); the agent goes to
    /// wrap-up for its part of the call, as after a transfer (added in v1).
    Park {
        call_id: CallId,
    },
    /// The wrap-up record of the call was saved.
    WrapUpSaved {
        call_id: CallId,
        after: AfterWrapUp,
    },
    Pause {
        reason_id: PauseReasonId,
    },
    LogOff,
    /// A supervisor forces a state.
    Force {
        supervisor_id: SupervisorId,
        to: ForceTarget,
    },
    /// Agent activity (UI keep-alive): restarts the idle timer.
    Activity,
    /// Preview: the agent dials the lead they see. From ready; the agent is `Ringing` with no
    /// customer until the dialer attaches the call ([`Input::PreviewPlaced`]).
    PreviewDial {
        campaign_id: wire::CampaignId,
        call_job_id: wire::CallJobId,
        lead_id: wire::LeadId,
        caller_id: Option<wire::CallerIdId>,
    },
    /// The dialer placed the agent's preview call: this is its call id.
    PreviewPlaced {
        call_id: CallId,
    },
    /// The dialer did not place the agent's preview call.
    PreviewNotDialled,
    /// The customer of the agent's preview call answered: bridge them to this agent.
    PreviewAnswered {
        call_id: CallId,
    },
}

/// Why an offer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferRefused {
    /// The agent is not ready (in this state).
    NotReady { state: AgentState },
    /// The call is already offered to or talking with another agent.
    CallTaken { agent_id: AgentId },
    /// No agent of the floor is ready.
    NoReadyAgent,
}

/// Input the state machine refuses. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("unknown agent {0:?}")]
    UnknownAgent(AgentId),
    #[error("agent {0:?} already exists")]
    AgentExists(AgentId),
    #[error("agent limit of the floor reached ({0})")]
    TooManyAgents(usize),
    #[error("agent must be offline to be removed (is {0:?})")]
    NotOffline(AgentState),
    #[error("offer refused: {0:?}")]
    OfferRefused(OfferRefused),
    #[error("input {input} not allowed in state {state:?}")]
    NotAllowed { state: AgentState, input: &'static str },
    #[error("call {got:?} is not the agent's call ({expected:?})")]
    WrongCall { expected: Option<CallId>, got: CallId },
    #[error("unknown pause reason {0:?}")]
    UnknownPauseReason(PauseReasonId),
    #[error("invalid config: {0}")]
    InvalidConfig(&'static str),
    #[error("event queue full: drain poll_event first")]
    QueueFull,
}

impl Input {
    fn name(&self) -> &'static str {
        match self {
            Input::Login { .. } => "login",
            Input::AgentLegUp => "agent_leg_up",
            Input::AgentLegDown => "agent_leg_down",
            Input::PhoneUnreachable => "phone_unreachable",
            Input::GoReady => "go_ready",
            Input::Offer { .. } => "offer",
            Input::Decline { .. } => "decline",
            Input::Bridged { .. } => "bridged",
            Input::CustomerEnded { .. } => "customer_ended",
            Input::Hold { .. } => "hold",
            Input::Unhold { .. } => "unhold",
            Input::TransferOut { .. } => "transfer_out",
            Input::Park { .. } => "park",
            Input::WrapUpSaved { .. } => "wrap_up_saved",
            Input::Pause { .. } => "pause",
            Input::LogOff => "log_off",
            Input::Force { .. } => "force",
            Input::Activity => "activity",
            Input::PreviewDial { .. } => "preview_dial",
            Input::PreviewPlaced { .. } => "preview_placed",
            Input::PreviewNotDialled => "preview_not_dialled",
            Input::PreviewAnswered { .. } => "preview_answered",
        }
    }
}

/// A change asked for during a call, applied when the call's wrap-up ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    Pause { reason_id: PauseReasonId, cause: Cause },
    LogOff { cause: Cause },
}

/// Read-only view of one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentView {
    pub agent_id: AgentId,
    pub state: AgentState,
    /// When the agent entered `state`.
    pub since_ms: u64,
    pub call_id: Option<CallId>,
    pub leg_up: bool,
    pub pending: Option<Pending>,
    /// Preview: the agent's own call is being placed or rings (not answered yet).
    pub dialling: bool,
    /// 無応答自動停止時間: when a pause for an offer not taken ends by itself.
    pub release_at_ms: Option<u64>,
}
