//! 転送 end to end: an agent hands the customer it talks with to a ready colleague (blind), over
//! real SIP and RTP on loopback against the built-in carrier, SQLite and PostgreSQL. The customer
//! waits (the call stays up), the colleague is offered the same call with its lead and talks with
//! the customer; the first agent wraps up its part. The transfer is recorded by the API (its own
//! test); here the call record and the call's one recording follow the call to the colleague.

use std::time::Duration;

use sim::carrier::Behaviour;
use tokio::sync::watch;
use wire::agent::{AgentId, AgentState, CallId};
use wire::ApiCommand;

use crate::engine::{carrier, phones};
use crate::floor::{backends, until, Floor, FloorSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_hands_the_talking_customer_to_a_ready_colleague() {
    for backend in backends() {
        let (stop_tx, stop) = watch::channel(false);
        // Every number answers and talks 12 s, then hangs up.
        let carrier = carrier([Behaviour::Answer { after_ms: 300, talk_ms: Some(12_000) }; 10], &stop).await;
        let leads = vec!["0317000001".to_string()];
        let spec =
            FloorSpec { agents: 2, leads: leads.clone(), mode: "preview", ring_timeout_s: 5, ..FloorSpec::default() };
        let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let phones = phones(&floor, Duration::from_millis(200), &stop).await;
        floor.start_job().await;
        let (b, a) = (floor.agents[0], floor.agents[1]);
        floor.log_in_agents(Some(60_000)).await;
        until("agents ready", Duration::from_secs(15), || async { floor.agents_in("ready").await == 2 }).await;
        floor.preview_dial(a).await;
        until("A talking", Duration::from_secs(15), || async {
            floor.agent_view(a).await.is_some_and(|v| v.state == AgentState::Talking)
        })
        .await;
        let call: CallId = floor.agent_view(a).await.and_then(|v| v.call_id).expect("A's call");
        // A's part of the call: 3 s of the 12 s the customer talks.
        tokio::time::sleep(Duration::from_secs(3)).await;
        floor
            .command(ApiCommand::Transfer { agent_id: AgentId(a as u64), call_id: call, to_agent: AgentId(b as u64) })
            .await;
        until("B talking with the same customer", Duration::from_secs(10), || async {
            floor.agent_view(b).await.is_some_and(|v| v.state == AgentState::Talking && v.call_id == Some(call))
        })
        .await;
        let va = floor.agent_view(a).await.expect("A");
        assert_eq!((va.state, va.call_id), (AgentState::WrapUp, Some(call)), "A wraps up its part");
        let rec = format!("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND dialer_call_id = {}", call.0);
        assert_eq!(
            floor.scalar(&format!("{rec} AND agent_user_id = {b}")).await,
            1,
            "the record follows the call to B"
        );
        // The customer stayed on the line: one call only, and it ends with B.
        until("the customer hung up on B", Duration::from_secs(20), || async {
            floor.agent_view(b).await.is_some_and(|v| v.state == AgentState::WrapUp)
        })
        .await;
        assert_eq!(carrier.log().len(), 1, "one customer call: {:?}", carrier.log());
        // One recording for the whole call: A's part, then B's in the same file (the customer's
        // wait between them is not recorded). B's part alone would be under 9 s.
        until("the recording holds both parts", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM recordings WHERE tenant_id = $1 AND duration_ms >= 10000").await == 1
        })
        .await;
        let (customer, agent) = floor.the_recording().await;
        assert!(customer.len() >= 80_000 && agent.len() == customer.len(), "{} samples", customer.len());
        assert_eq!(floor.scalar(&format!("{rec} AND result = 'abandoned'")).await, 0);
        floor.stop().await;
        let _ = stop_tx.send(true);
        drop(phones);
    }
}
