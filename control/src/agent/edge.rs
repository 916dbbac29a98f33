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

/// `From` between an enum of the core and its wire twin, variant by variant (same names, each field
/// converted with `Into`); `both` writes the two directions from one list of variants.
macro_rules! enum_map {
    (one $from:ty, $to:ty, { $($v:ident $({ $($f:ident),* })?),* $(,)? }) => {
        impl From<$from> for $to {
            fn from(v: $from) -> Self {
                type Source = $from;
                match v {
                    $(Source::$v $({ $($f),* })? => Self::$v $({ $($f: $f.into()),* })?,)*
                }
            }
        }
    };
    (both $a:ty, $b:ty, $variants:tt) => {
        enum_map!(one $a, $b, $variants);
        enum_map!(one $b, $a, $variants);
    };
}

enum_map!(both AgentState, w::AgentState, {
    Offline,
    Ready,
    Ringing,
    Talking,
    Hold,
    WrapUp,
    Unknown,
    Paused { reason_id },
});

enum_map!(both Cause, w::Cause, {
    Login,
    AgentLegUp,
    AgentLegDown,
    PhoneUnreachable,
    Offer,
    Declined,
    PreviewDial,
    NotDialled,
    NoAnswer,
    Bridged,
    CustomerEnded,
    Hold,
    Unhold,
    Transferred,
    Parked,
    WrapUpSaved,
    AcwTimeout,
    GoReady,
    PauseRequested,
    LogOffRequested,
    IdleTimeout,
    PauseReleased,
    Supervisor { supervisor_id },
});

enum_map!(one w::AfterWrapUp, AfterWrapUp, {
    Continue,
    EndJob,
    Pause { reason_id },
});

enum_map!(one w::ForceTarget, ForceTarget, {
    Ready,
    Offline,
    Paused { reason_id },
});

enum_map!(both Pending, w::Pending, {
    Pause { reason_id, cause },
    LogOff { cause },
});

enum_map!(one Command, w::Command, {
    DialAgentLeg { agent_id, campaign_id },
    HangUpAgentLeg { agent_id },
    Bridge { agent_id, call_id },
    ReleaseCustomer { agent_id, call_id },
    HangUpCustomer { agent_id, call_id },
    HoldCustomer { agent_id, call_id, held },
    ParkCustomer { agent_id, call_id, hold_ms },
    DialPreview { agent_id, campaign_id, call_job_id, lead_id, caller_id },
    TransferOutside { agent_id, call_id, tel, caller_id },
    Conference { agent_id, call_id, tel, caller_id },
    EndConference { agent_id, call_id },
    LeaveConference { agent_id, call_id },
});

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
