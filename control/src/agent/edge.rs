//! The agent core's edge: its internal types to and from the wire types that the bus and
//! `control_agents` carry ([`wire::agent`]), and the messages that drive it to its [`Input`]s. The
//! core's types have no serde of their own: what leaves control is converted here, so a change of
//! the core never changes the JSON on the bus by accident.

use wire::agent as w;
use wire::{ApiCommand, ShardEvent};

use super::{
    AfterWrapUp, AgentConfig, AgentId, AgentState, AgentView, Cause, Command, Event, ForceTarget, Input, Pending,
    Transition,
};

impl From<AgentState> for w::AgentState {
    fn from(v: AgentState) -> Self {
        match v {
            AgentState::Offline => w::AgentState::Offline,
            AgentState::Ready => w::AgentState::Ready,
            AgentState::Ringing => w::AgentState::Ringing,
            AgentState::Talking => w::AgentState::Talking,
            AgentState::Hold => w::AgentState::Hold,
            AgentState::WrapUp => w::AgentState::WrapUp,
            AgentState::Unknown => w::AgentState::Unknown,
            AgentState::Paused { reason_id } => w::AgentState::Paused { reason_id },
        }
    }
}

impl From<w::AgentState> for AgentState {
    fn from(v: w::AgentState) -> Self {
        match v {
            w::AgentState::Offline => AgentState::Offline,
            w::AgentState::Ready => AgentState::Ready,
            w::AgentState::Ringing => AgentState::Ringing,
            w::AgentState::Talking => AgentState::Talking,
            w::AgentState::Hold => AgentState::Hold,
            w::AgentState::WrapUp => AgentState::WrapUp,
            w::AgentState::Unknown => AgentState::Unknown,
            w::AgentState::Paused { reason_id } => AgentState::Paused { reason_id },
        }
    }
}

impl From<Cause> for w::Cause {
    fn from(v: Cause) -> Self {
        match v {
            Cause::Login => w::Cause::Login,
            Cause::AgentLegUp => w::Cause::AgentLegUp,
            Cause::AgentLegDown => w::Cause::AgentLegDown,
            Cause::PhoneUnreachable => w::Cause::PhoneUnreachable,
            Cause::Offer => w::Cause::Offer,
            Cause::Declined => w::Cause::Declined,
            Cause::PreviewDial => w::Cause::PreviewDial,
            Cause::NotDialled => w::Cause::NotDialled,
            Cause::NoAnswer => w::Cause::NoAnswer,
            Cause::Bridged => w::Cause::Bridged,
            Cause::CustomerEnded => w::Cause::CustomerEnded,
            Cause::Hold => w::Cause::Hold,
            Cause::Unhold => w::Cause::Unhold,
            Cause::Transferred => w::Cause::Transferred,
            Cause::Parked => w::Cause::Parked,
            Cause::WrapUpSaved => w::Cause::WrapUpSaved,
            Cause::AcwTimeout => w::Cause::AcwTimeout,
            Cause::GoReady => w::Cause::GoReady,
            Cause::PauseRequested => w::Cause::PauseRequested,
            Cause::LogOffRequested => w::Cause::LogOffRequested,
            Cause::IdleTimeout => w::Cause::IdleTimeout,
            Cause::PauseReleased => w::Cause::PauseReleased,
            Cause::Supervisor { supervisor_id } => w::Cause::Supervisor { supervisor_id },
        }
    }
}

impl From<w::Cause> for Cause {
    fn from(v: w::Cause) -> Self {
        match v {
            w::Cause::Login => Cause::Login,
            w::Cause::AgentLegUp => Cause::AgentLegUp,
            w::Cause::AgentLegDown => Cause::AgentLegDown,
            w::Cause::PhoneUnreachable => Cause::PhoneUnreachable,
            w::Cause::Offer => Cause::Offer,
            w::Cause::Declined => Cause::Declined,
            w::Cause::PreviewDial => Cause::PreviewDial,
            w::Cause::NotDialled => Cause::NotDialled,
            w::Cause::NoAnswer => Cause::NoAnswer,
            w::Cause::Bridged => Cause::Bridged,
            w::Cause::CustomerEnded => Cause::CustomerEnded,
            w::Cause::Hold => Cause::Hold,
            w::Cause::Unhold => Cause::Unhold,
            w::Cause::Transferred => Cause::Transferred,
            w::Cause::Parked => Cause::Parked,
            w::Cause::WrapUpSaved => Cause::WrapUpSaved,
            w::Cause::AcwTimeout => Cause::AcwTimeout,
            w::Cause::GoReady => Cause::GoReady,
            w::Cause::PauseRequested => Cause::PauseRequested,
            w::Cause::LogOffRequested => Cause::LogOffRequested,
            w::Cause::IdleTimeout => Cause::IdleTimeout,
            w::Cause::PauseReleased => Cause::PauseReleased,
            w::Cause::Supervisor { supervisor_id } => Cause::Supervisor { supervisor_id },
        }
    }
}

impl From<w::AfterWrapUp> for AfterWrapUp {
    fn from(v: w::AfterWrapUp) -> Self {
        match v {
            w::AfterWrapUp::Continue => AfterWrapUp::Continue,
            w::AfterWrapUp::EndJob => AfterWrapUp::EndJob,
            w::AfterWrapUp::Pause { reason_id } => AfterWrapUp::Pause { reason_id },
        }
    }
}

impl From<w::ForceTarget> for ForceTarget {
    fn from(v: w::ForceTarget) -> Self {
        match v {
            w::ForceTarget::Ready => ForceTarget::Ready,
            w::ForceTarget::Offline => ForceTarget::Offline,
            w::ForceTarget::Paused { reason_id } => ForceTarget::Paused { reason_id },
        }
    }
}

impl From<Pending> for w::Pending {
    fn from(v: Pending) -> Self {
        match v {
            Pending::Pause { reason_id, cause } => w::Pending::Pause { reason_id, cause: cause.into() },
            Pending::LogOff { cause } => w::Pending::LogOff { cause: cause.into() },
        }
    }
}

impl From<w::Pending> for Pending {
    fn from(v: w::Pending) -> Self {
        match v {
            w::Pending::Pause { reason_id, cause } => Pending::Pause { reason_id, cause: cause.into() },
            w::Pending::LogOff { cause } => Pending::LogOff { cause: cause.into() },
        }
    }
}

impl From<Command> for w::Command {
    fn from(v: Command) -> Self {
        match v {
            Command::DialAgentLeg { agent_id, campaign_id } => w::Command::DialAgentLeg { agent_id, campaign_id },
            Command::HangUpAgentLeg { agent_id } => w::Command::HangUpAgentLeg { agent_id },
            Command::Bridge { agent_id, call_id } => w::Command::Bridge { agent_id, call_id },
            Command::ReleaseCustomer { agent_id, call_id } => w::Command::ReleaseCustomer { agent_id, call_id },
            Command::HangUpCustomer { agent_id, call_id } => w::Command::HangUpCustomer { agent_id, call_id },
            Command::HoldCustomer { agent_id, call_id, held } => w::Command::HoldCustomer { agent_id, call_id, held },
            Command::ParkCustomer { agent_id, call_id, hold_ms } => {
                w::Command::ParkCustomer { agent_id, call_id, hold_ms }
            }
            Command::DialPreview { agent_id, campaign_id, call_job_id, lead_id, caller_id } => {
                w::Command::DialPreview { agent_id, campaign_id, call_job_id, lead_id, caller_id }
            }
            Command::TransferOutside { agent_id, call_id, tel } => {
                w::Command::TransferOutside { agent_id, call_id, tel }
            }
            Command::Conference { agent_id, call_id, tel } => w::Command::Conference { agent_id, call_id, tel },
            Command::EndConference { agent_id, call_id } => w::Command::EndConference { agent_id, call_id },
            Command::LeaveConference { agent_id, call_id } => w::Command::LeaveConference { agent_id, call_id },
        }
    }
}

impl From<Event> for w::Event {
    fn from(v: Event) -> Self {
        match v {
            Event::Transition(t) => w::Event::Transition(t.into()),
            Event::Command(c) => w::Event::Command(c.into()),
            Event::Deferred { agent_id, after_call } => w::Event::Deferred { agent_id, after_call },
        }
    }
}

impl From<Transition> for w::Transition {
    fn from(v: Transition) -> Self {
        w::Transition {
            agent_id: v.agent_id,
            from: v.from.into(),
            to: v.to.into(),
            at_ms: v.at_ms,
            cause: v.cause.into(),
            call_id: v.call_id,
            lead_id: v.lead_id,
            not_dialled: v.not_dialled,
        }
    }
}

impl From<AgentConfig> for w::AgentConfig {
    fn from(v: AgentConfig) -> Self {
        w::AgentConfig {
            acw_ms: v.acw_ms,
            idle_logoff_ms: v.idle_logoff_ms,
            offer_timeout_ms: v.offer_timeout_ms,
            leg_setup_timeout_ms: v.leg_setup_timeout_ms,
            no_answer_pause: v.no_answer_pause,
            no_answer_release_ms: v.no_answer_release_ms,
            preview_timeout_ms: v.preview_timeout_ms,
        }
    }
}

impl From<w::AgentConfig> for AgentConfig {
    fn from(v: w::AgentConfig) -> Self {
        AgentConfig {
            acw_ms: v.acw_ms,
            idle_logoff_ms: v.idle_logoff_ms,
            offer_timeout_ms: v.offer_timeout_ms,
            leg_setup_timeout_ms: v.leg_setup_timeout_ms,
            no_answer_pause: v.no_answer_pause,
            no_answer_release_ms: v.no_answer_release_ms,
            preview_timeout_ms: v.preview_timeout_ms,
        }
    }
}

impl From<AgentView> for w::AgentView {
    fn from(v: AgentView) -> Self {
        w::AgentView {
            agent_id: v.agent_id,
            state: v.state.into(),
            since_ms: v.since_ms,
            call_id: v.call_id,
            leg_up: v.leg_up,
            pending: v.pending.map(Into::into),
            dialling: v.dialling,
            release_at_ms: v.release_at_ms,
        }
    }
}

impl From<w::AgentView> for AgentView {
    fn from(v: w::AgentView) -> Self {
        AgentView {
            agent_id: v.agent_id,
            state: v.state.into(),
            since_ms: v.since_ms,
            call_id: v.call_id,
            leg_up: v.leg_up,
            pending: v.pending.map(Into::into),
            dialling: v.dialling,
            release_at_ms: v.release_at_ms,
        }
    }
}
/// The agent and the core's input an API command maps to (`None` for a command the core does not
/// take, e.g. hanging up the customer, which goes to the shard first).
pub fn command_input(c: &ApiCommand) -> (AgentId, Option<Input>) {
    match *c {
        ApiCommand::StartCallJob { agent_id, config, .. } => (agent_id, Some(Input::Login { config: config.into() })),
        ApiCommand::StopCallJob { agent_id } | ApiCommand::LogOff { agent_id } => (agent_id, Some(Input::LogOff)),
        ApiCommand::GoReady { agent_id } => (agent_id, Some(Input::GoReady)),
        ApiCommand::Pause { agent_id, reason_id } => (agent_id, Some(Input::Pause { reason_id })),
        ApiCommand::SupervisorForce { agent_id, supervisor_id, to } => {
            (agent_id, Some(Input::Force { supervisor_id, to: to.into() }))
        }
        ApiCommand::SaveWrapUp { agent_id, call_id, after } => {
            (agent_id, Some(Input::WrapUpSaved { call_id, after: after.into() }))
        }
        ApiCommand::HangUpCustomer { agent_id, .. } => (agent_id, None),
        ApiCommand::Activity { agent_id } => (agent_id, Some(Input::Activity)),
        ApiCommand::PreviewDial { agent_id, campaign_id, call_job_id, lead_id, caller_id } => {
            (agent_id, Some(Input::PreviewDial { campaign_id, call_job_id, lead_id, caller_id }))
        }
        ApiCommand::Hold { agent_id, call_id } => (agent_id, Some(Input::Hold { call_id })),
        ApiCommand::Unhold { agent_id, call_id } => (agent_id, Some(Input::Unhold { call_id })),
        ApiCommand::Transfer { agent_id, call_id, .. } => (agent_id, Some(Input::TransferOut { call_id })),
        ApiCommand::Park { agent_id, call_id } => (agent_id, Some(Input::Park { call_id })),
        // An offer of the parked call, made by the control service.
        ApiCommand::PickUp { agent_id, .. } => (agent_id, None),
        ApiCommand::TransferOutside { agent_id, .. }
        | ApiCommand::Conference { agent_id, .. }
        | ApiCommand::EndConference { agent_id, .. }
        | ApiCommand::LeaveConference { agent_id, .. } => (agent_id, None),
    }
}

/// The agent and the core's input a shard event maps to. `CustomerAnswered` has no agent yet: the
/// control service matches it ([`super::Floor::offer_to_longest_ready`]).
pub fn shard_input(e: &ShardEvent) -> Option<(AgentId, Input)> {
    match *e {
        ShardEvent::AgentLegUp { agent_id, .. } => Some((agent_id, Input::AgentLegUp)),
        ShardEvent::AgentLegDown { agent_id, .. } => Some((agent_id, Input::AgentLegDown)),
        ShardEvent::AgentUnreachable { agent_id, .. } => Some((agent_id, Input::PhoneUnreachable)),
        ShardEvent::CustomerAnswered { .. } => None,
        ShardEvent::Bridged { call_id, agent_id } => Some((agent_id, Input::Bridged { call_id })),
        ShardEvent::CallEnded { call_id, agent_id, .. } => agent_id.map(|a| (a, Input::CustomerEnded { call_id })),
        ShardEvent::DialerStatus { .. } => None,
        ShardEvent::ParkKeyed { agent_id, call_id } => Some((agent_id, Input::Park { call_id })),
        // An offer of the parked call, made by the control service.
        ShardEvent::PickUpKeyed { .. } => None,
        ShardEvent::RecallDue { agent_id, campaign_id, call_job_id, lead_id } => {
            Some((agent_id, Input::PreviewDial { campaign_id, call_job_id, lead_id, caller_id: None }))
        }
        ShardEvent::ResultKeyed { agent_id, call_id, .. } => {
            Some((agent_id, Input::WrapUpSaved { call_id, after: AfterWrapUp::Continue }))
        }
        ShardEvent::PreviewPlaced { call_id, agent_id, .. } => Some((agent_id, Input::PreviewPlaced { call_id })),
        ShardEvent::PreviewNotDialled { agent_id, .. } => Some((agent_id, Input::PreviewNotDialled)),
        ShardEvent::OutsideTransferred { call_id, agent_id } => Some((agent_id, Input::TransferOut { call_id })),
    }
}
