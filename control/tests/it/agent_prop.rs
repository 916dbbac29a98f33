//! Random input sequences never double-book an agent or a customer, nor make a disallowed transition.

use std::collections::HashMap;

use control::agent::{
    is_allowed, AfterWrapUp, AgentConfig, AgentId, AgentState, CallId, Event, Floor, FloorLimits, ForceTarget, Input,
    PauseReasonId, SupervisorId,
};
use proptest::prelude::*;
use wire::{CallJobId, CampaignId, LeadId};

const AGENTS: u64 = 4;
const CALLS: u64 = 6;

#[derive(Clone, Debug)]
enum Op {
    Input(u64, Input),
    Match(u64),
    Advance(u64),
}

fn reason() -> impl Strategy<Value = PauseReasonId> {
    // 9 is not a tenant reason: must be refused.
    prop_oneof![Just(PauseReasonId(1)), Just(PauseReasonId(2)), Just(PauseReasonId(9))]
}

fn input() -> impl Strategy<Value = Input> {
    let call = (0..CALLS).prop_map(CallId);
    let config = (prop::option::of(0u64..120_000), prop::bool::ANY).prop_map(|(acw, pause)| AgentConfig {
        acw_ms: acw,
        no_answer_pause: pause.then_some(PauseReasonId(1)),
        ..AgentConfig::default()
    });
    let after = prop_oneof![
        Just(AfterWrapUp::Continue),
        reason().prop_map(|reason_id| AfterWrapUp::Pause { reason_id }),
        Just(AfterWrapUp::EndJob),
    ];
    let force = prop_oneof![
        Just(ForceTarget::Ready),
        Just(ForceTarget::Offline),
        reason().prop_map(|reason_id| ForceTarget::Paused { reason_id }),
    ];
    prop_oneof![
        config.prop_map(|config| Input::Login { config }),
        Just(Input::AgentLegUp),
        Just(Input::AgentLegDown),
        Just(Input::PhoneUnreachable),
        Just(Input::GoReady),
        call.clone().prop_map(|call_id| Input::Offer { call_id }),
        call.clone().prop_map(|call_id| Input::Decline { call_id }),
        call.clone().prop_map(|call_id| Input::Bridged { call_id }),
        call.clone().prop_map(|call_id| Input::CustomerEnded { call_id }),
        call.clone().prop_map(|call_id| Input::Hold { call_id }),
        call.clone().prop_map(|call_id| Input::Unhold { call_id }),
        (call.clone(), after).prop_map(|(call_id, after)| Input::WrapUpSaved { call_id, after }),
        reason().prop_map(|reason_id| Input::Pause { reason_id }),
        Just(Input::LogOff),
        force.prop_map(|to| Input::Force { supervisor_id: SupervisorId(5), to }),
        Just(Input::Activity),
        Just(Input::PreviewDial {
            campaign_id: CampaignId(1),
            call_job_id: CallJobId(1),
            lead_id: LeadId(1),
            caller_id: None
        }),
        call.clone().prop_map(|call_id| Input::PreviewPlaced { call_id }),
        Just(Input::PreviewNotDialled),
        call.clone().prop_map(|call_id| Input::PreviewAnswered { call_id }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => ((0..AGENTS), input()).prop_map(|(a, i)| Op::Input(a, i)),
        1 => (0..CALLS).prop_map(Op::Match),
        2 => prop_oneof![0u64..2_000, 0u64..120_000, Just(3_600_000u64)].prop_map(Op::Advance),
    ]
}

fn in_call(s: AgentState) -> bool {
    matches!(s, AgentState::Ringing | AgentState::Talking | AgentState::Hold)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn random_inputs_never_double_book(ops in prop::collection::vec(op(), 1..200)) {
        let mut floor = Floor::new(FloorLimits::default(), [PauseReasonId(1), PauseReasonId(2)]);
        let mut seen: HashMap<AgentId, AgentState> = HashMap::new();
        for a in 0..AGENTS {
            floor.add_agent(AgentId(a)).unwrap();
            seen.insert(AgentId(a), AgentState::Offline);
        }
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Input(a, i) => { let _ = floor.handle_input(now, AgentId(a), i); }
                Op::Match(c) => { let _ = floor.offer_to_longest_ready(now, CallId(c)); }
                Op::Advance(ms) => {
                    let target = now + ms;
                    while let Some(t) = floor.poll_timeout() {
                        prop_assert!(t >= now, "deadline in the past: {t} < {now}");
                        if t > target { break; }
                        now = t;
                        floor.handle_timeout(now);
                        while let Some(e) = floor.poll_event() {
                            check(&mut seen, e, now)?;
                        }
                    }
                    now = target;
                }
            }
            while let Some(e) = floor.poll_event() {
                check(&mut seen, e, now)?;
            }
            // Never two agents on one customer; an agent in a call owns its call.
            let mut owners: HashMap<CallId, AgentId> = HashMap::new();
            for v in floor.agents() {
                prop_assert_eq!(seen[&v.agent_id], v.state);
                match v.state {
                    AgentState::Talking | AgentState::Hold => prop_assert!(v.call_id.is_some()),
                    AgentState::Offline | AgentState::Unknown => {
                        prop_assert!(v.call_id.is_none() && !v.leg_up && v.pending.is_none())
                    }
                    _ => {}
                }
                if let (true, Some(c)) = (in_call(v.state), v.call_id) {
                    prop_assert_eq!(floor.call_owner(c), Some(v.agent_id));
                    if let Some(other) = owners.insert(c, v.agent_id) {
                        prop_assert!(false, "call {:?} booked to {:?} and {:?}", c, other, v.agent_id);
                    }
                }
            }
        }
    }
}

fn check(seen: &mut HashMap<AgentId, AgentState>, e: Event, now: u64) -> Result<(), TestCaseError> {
    if let Event::Transition(t) = e {
        prop_assert!(is_allowed(t.from, t.to), "disallowed transition {:?}", t);
        prop_assert_eq!(seen[&t.agent_id], t.from, "transition does not chain: {:?}", t);
        prop_assert_eq!(t.at_ms, now);
        if t.to == AgentState::Ringing && t.from == AgentState::Ready {
            // An offer carries its customer; a preview dial has none until the call is placed.
            prop_assert!(t.call_id.is_some() || t.cause == control::agent::Cause::PreviewDial, "{:?}", t);
        }
        seen.insert(t.agent_id, t.to);
    }
    Ok(())
}
