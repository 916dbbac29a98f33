//! One integration-test binary for the wallboard crate.

use wallboard::mirror::WallboardChanges;
use wallboard::{AgentTile, Change, Tile};
use wire::agent::AgentState;
use wire::{AgentId, CampaignId, DialingGroupId, Message, PauseReasonId};

/// The mirror's entries keep the JSON they had in `control` (API processes of the previous version
/// follow a new control service's mirror during a rolling upgrade); the agent tile carries the
/// agent's state as `wire` writes it.
#[test]
fn a_wallboard_changes_entry_keeps_its_json() {
    let v = WallboardChanges {
        changes: vec![Change {
            seq: 5,
            at_ms: 1_000,
            tile: Tile::Agent(AgentTile {
                agent_id: AgentId(7),
                state: AgentState::Paused { reason_id: PauseReasonId(2) },
                since_ms: 900,
                campaign_id: Some(CampaignId(3)),
                dialing_group_id: Some(DialingGroupId(2)),
                calls_today: 4,
                last_call_ms: Some(61_000),
            }),
        }],
    };
    let golden = r#"{"changes":[{"seq":5,"at_ms":1000,"tile":"agent","agent_id":7,"state":{"state":"paused","reason_id":2},"since_ms":900,"campaign_id":3,"dialing_group_id":2,"calls_today":4,"last_call_ms":61000}]}"#;
    assert_eq!(serde_json::to_string(&v).expect("encodes"), golden);
    assert_eq!(serde_json::from_str::<WallboardChanges>(golden).expect("decodes"), v);
    assert_eq!((WallboardChanges::KIND, WallboardChanges::SCHEMA), ("wallboard_changes", 1));
}
