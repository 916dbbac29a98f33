//! Envelopes: the kind and schema checks around the `wire` messages (their JSON is pinned in
//! `wire/tests/it/golden.rs`).

use bus::{Envelope, Payload};
use wire::agent::Event;
use wire::{AgentId, ApiCommand, DecodeError, ShardEvent};

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
