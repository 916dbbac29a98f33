//! Message schemas: the JSON shapes documented in MESSAGES.md, and version checks.

use control::agent::{AfterWrapUp, AgentId, CallId, Event, ForceTarget, PauseReasonId, SupervisorId};
use control::bus::{Envelope, Payload};
use control::messages::{ApiCommand, DecodeError, Party, ShardEvent, SipOutcome, SystemResult};
use serde_json::json;

#[test]
fn api_command_json_shape() {
    let c = ApiCommand::SupervisorForce {
        agent_id: AgentId(12),
        supervisor_id: SupervisorId(3),
        to: ForceTarget::Paused { reason_id: PauseReasonId(2) },
    };
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v,
        json!({"type": "supervisor_force", "agent_id": 12, "supervisor_id": 3, "to": {"to": "paused", "reason_id": 2}})
    );
    let w = ApiCommand::SaveWrapUp { agent_id: AgentId(12), call_id: CallId(9), after: AfterWrapUp::EndJob };
    assert_eq!(
        serde_json::to_value(&w).unwrap(),
        json!({"type": "save_wrap_up", "agent_id": 12, "call_id": 9, "after": {"after": "end_job"}})
    );
}

#[test]
fn shard_event_json_shape_and_mapping() {
    let e = ShardEvent::CallEnded {
        call_id: CallId(9),
        agent_id: Some(AgentId(12)),
        outcome: SipOutcome { status: 200, reason: "BYE".into(), ended_by: Party::Customer, talk_ms: 61_000 },
        result: SystemResult::NoEntry,
    };
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"type": "call_ended", "call_id": 9, "agent_id": 12,
               "outcome": {"status": 200, "reason": "BYE", "ended_by": "customer", "talk_ms": 61000},
               "result": "no_entry"})
    );
    assert!(e.to_input().is_some());
}

#[test]
fn envelope_checks_kind_and_schema() {
    let env = Envelope::new(1, 5, &ApiCommand::GoReady { agent_id: AgentId(1) }).unwrap();
    assert_eq!((env.schema, env.kind.as_str()), (1, "api_command"));
    assert!(matches!(env.decode::<ShardEvent>(), Err(DecodeError::WrongKind { .. })));
    assert!(matches!(env.decode::<Event>(), Err(DecodeError::WrongKind { .. })));
    let mut newer = env.clone();
    newer.schema = 2;
    assert!(matches!(newer.decode::<ApiCommand>(), Err(DecodeError::NewerSchema { known: 1, got: 2 })));
    let mut bad = env.clone();
    bad.payload = Payload::from_json_text(r#"{"type": "fly_to_the_moon"}"#.into()).unwrap();
    assert!(matches!(bad.decode::<ApiCommand>(), Err(DecodeError::Payload(_))));
    // The envelope itself round-trips through JSON.
    let back: Envelope = serde_json::from_str(&serde_json::to_string(&env).unwrap()).unwrap();
    assert_eq!(back, env);
}

#[test]
fn agent_event_json_shape() {
    use control::agent::{AgentState, Cause, Command, Transition};
    let t = Event::Transition(Transition {
        agent_id: AgentId(12),
        from: AgentState::Talking,
        to: AgentState::WrapUp,
        at_ms: 1_763_770_000_000,
        cause: Cause::CustomerEnded,
        call_id: Some(CallId(9)),
        lead_id: None,
        not_dialled: None,
    });
    assert_eq!(
        serde_json::to_value(t).unwrap(),
        json!({"event":"transition","agent_id":12,"from":{"state":"talking"},"to":{"state":"wrap_up"},
               "at_ms":1763770000000u64,"cause":{"cause":"customer_ended"},"call_id":9})
    );
    let c = Event::Command(Command::Bridge { agent_id: AgentId(12), call_id: CallId(9) });
    let v = serde_json::to_value(c).unwrap();
    assert_eq!(v, json!({"event":"command","command":"bridge","agent_id":12,"call_id":9}));
    let back: Event = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
    let p = serde_json::to_value(Cause::Supervisor { supervisor_id: SupervisorId(3) }).unwrap();
    assert_eq!(p, json!({"cause":"supervisor","supervisor_id":3}));
}
