//! The agent core's edge: its types to and from the wire types, and the messages to its inputs.

use control::agent::{self as core, command_input, shard_input, Input};
use wire::agent as w;
use wire::{AgentId, CallId, PauseReasonId, SupervisorId};
use wire::{ApiCommand, CallJobId, CampaignId, LeadId, Party, ShardEvent, SipOutcome, SystemResult};

const STATES: [w::AgentState; 8] = [
    w::AgentState::Offline,
    w::AgentState::Ready,
    w::AgentState::Ringing,
    w::AgentState::Talking,
    w::AgentState::Hold,
    w::AgentState::WrapUp,
    w::AgentState::Paused { reason_id: PauseReasonId(3) },
    w::AgentState::Unknown,
];

#[test]
fn a_state_and_a_view_cross_the_edge_and_come_back_the_same() {
    for s in STATES {
        let inner: core::AgentState = s.into();
        assert_eq!(w::AgentState::from(inner), s);
        assert_eq!(inner.name(), s.name(), "one name on both sides of the edge");
    }
    let view = w::AgentView {
        agent_id: AgentId(7),
        state: w::AgentState::Talking,
        since_ms: 1_000,
        call_id: Some(CallId(11)),
        leg_up: true,
        pending: Some(w::Pending::LogOff { cause: w::Cause::Supervisor { supervisor_id: SupervisorId(5) } }),
        dialling: false,
        release_at_ms: Some(9_000),
    };
    let inner: core::AgentView = view.into();
    assert_eq!(w::AgentView::from(inner), view);
    let config = w::AgentConfig { acw_ms: Some(30_000), no_answer_pause: Some(PauseReasonId(4)), ..Default::default() };
    let inner: core::AgentConfig = config.into();
    assert_eq!(w::AgentConfig::from(inner), config);
    assert_eq!(w::AgentConfig::from(core::AgentConfig::default()), w::AgentConfig::default(), "one default");
}

#[test]
fn the_core_events_leave_as_the_wire_events() {
    let t = core::Event::Transition(core::Transition {
        agent_id: AgentId(7),
        from: core::AgentState::Talking,
        to: core::AgentState::WrapUp,
        at_ms: 5,
        cause: core::Cause::CustomerEnded,
        call_id: Some(CallId(11)),
        lead_id: Some(LeadId(100)),
        not_dialled: None,
    });
    let w::Event::Transition(wt) = w::Event::from(t) else { panic!("a transition stays a transition") };
    assert_eq!(
        (wt.from, wt.to, wt.cause, wt.call_id, wt.lead_id),
        (w::AgentState::Talking, w::AgentState::WrapUp, w::Cause::CustomerEnded, Some(CallId(11)), Some(LeadId(100)))
    );
    let c = core::Event::Command(core::Command::ParkCustomer { agent_id: AgentId(7), call_id: CallId(11), hold_ms: 9 });
    assert_eq!(
        w::Event::from(c),
        w::Event::Command(w::Command::ParkCustomer { agent_id: AgentId(7), call_id: CallId(11), hold_ms: 9 })
    );
}

#[test]
fn the_messages_map_to_the_core_inputs() {
    let c = ApiCommand::SupervisorForce {
        agent_id: AgentId(7),
        supervisor_id: SupervisorId(5),
        to: w::ForceTarget::Paused { reason_id: PauseReasonId(2) },
    };
    assert_eq!(
        command_input(&c),
        (
            AgentId(7),
            Some(Input::Force {
                supervisor_id: SupervisorId(5),
                to: core::ForceTarget::Paused { reason_id: PauseReasonId(2) }
            })
        )
    );
    let c = ApiCommand::SaveWrapUp { agent_id: AgentId(7), call_id: CallId(11), after: w::AfterWrapUp::EndJob };
    assert_eq!(
        command_input(&c),
        (AgentId(7), Some(Input::WrapUpSaved { call_id: CallId(11), after: core::AfterWrapUp::EndJob }))
    );
    assert_eq!(
        command_input(&ApiCommand::HangUpCustomer { agent_id: AgentId(7), call_id: CallId(11) }),
        (AgentId(7), None)
    );
    let ended = |agent_id| ShardEvent::CallEnded {
        call_id: CallId(11),
        agent_id,
        outcome: SipOutcome { status: 200, reason: "BYE".into(), ended_by: Party::Customer, talk_ms: 61_000 },
        result: SystemResult::NoEntry,
    };
    assert_eq!(shard_input(&ended(Some(AgentId(7)))), Some((AgentId(7), Input::CustomerEnded { call_id: CallId(11) })));
    assert_eq!(shard_input(&ended(None)), None, "no agent: nothing for the core");
    let due = ShardEvent::RecallDue {
        agent_id: AgentId(7),
        campaign_id: CampaignId(3),
        call_job_id: CallJobId(9),
        lead_id: LeadId(100),
    };
    assert_eq!(
        shard_input(&due),
        Some((
            AgentId(7),
            Input::PreviewDial {
                campaign_id: CampaignId(3),
                call_job_id: CallJobId(9),
                lead_id: LeadId(100),
                caller_id: None
            }
        ))
    );
}
