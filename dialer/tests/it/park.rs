//! パーク保留 end to end, over real SIP and RTP on loopback against the built-in carrier, SQLite
//! and PostgreSQL: an agent talking with a customer keys `#72` on its phone (RFC 4733 on its
//! nailed-up leg); the customer waits under park number 9001 and the agent wraps up its part; a
//! colleague keys `9001` on its own phone and talks with the same customer (hears it). One call at
//! the carrier, the call record's agent is the colleague, one recording holds both parts, and the
//! park is written down (who parked it, who picked it up).

use std::net::IpAddr;
use std::time::Duration;

use sim::carrier::{Behaviour, CarrierConfig};
use sim::phone::PhoneCommand;
use tokio::sync::watch;
use wire::agent::{AgentId, AgentState, CallId};
use wire::{ApiCommand, CallJobId, CampaignId, LeadId};

use crate::engine::phones;
use crate::floor::{backends, until, Floor, FloorSpec};

const CUSTOMER_HZ: f32 = 700.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_parked_with_hash_72_is_picked_up_by_a_colleague_keying_the_park_number() {
    for backend in backends() {
        let (stop_tx, stop) = watch::channel(false);
        // Every number answers and talks 16 s, then hangs up; the customers say a tone.
        let rules = [Behaviour::Answer { after_ms: 300, talk_ms: Some(16_000) }; 10];
        let cfg = CarrierConfig { by_last_digit: Some(rules), tone_hz: Some(CUSTOMER_HZ), ..CarrierConfig::default() };
        let carrier =
            sim::carrier::start(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), cfg, stop.clone()).await.expect("carrier");
        let leads = vec!["0317000001".to_string()];
        let spec =
            FloorSpec { agents: 2, leads: leads.clone(), mode: "preview", ring_timeout_s: 5, ..FloorSpec::default() };
        let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let phones = phones(&floor, Duration::from_millis(200), &stop).await;
        floor.start_job().await;
        // Agent i has phone i.
        let (b, a) = (floor.agents[0], floor.agents[1]);
        let (phone_b, phone_a) = (&phones[0], &phones[1]);
        floor.log_in_agents(Some(60_000)).await;
        until("agents ready", Duration::from_secs(15), || async { floor.agents_in("ready").await == 2 }).await;
        let (t, now) = (floor.tenant as i64, store::now_ms());
        let lead = store::preview::reserve(&floor.db, t, floor.job, a, now, store::preview::HOLD_MS)
            .await
            .expect("reserve")
            .expect("a lead for A");
        floor
            .command(ApiCommand::PreviewDial {
                agent_id: AgentId(a as u64),
                campaign_id: CampaignId(floor.campaign as u64),
                call_job_id: CallJobId(floor.job as u64),
                lead_id: LeadId(lead.lead_id as u64),
                caller_id: None,
            })
            .await;
        until("A talking", Duration::from_secs(15), || async {
            floor.agent_view(a).await.is_some_and(|v| v.state == AgentState::Talking)
        })
        .await;
        let call: CallId = floor.agent_view(a).await.and_then(|v| v.call_id).expect("A's call");
        until("A hears the customer", Duration::from_secs(5), || async { phone_a.heard_share(CUSTOMER_HZ) > 0.5 })
            .await;
        // A's part of the call, then #72 on A's phone.
        tokio::time::sleep(Duration::from_secs(2)).await;
        phone_a.command(PhoneCommand::Keys("#72".into())).await;
        let parked = format!(
            "SELECT COUNT(*) FROM parked_calls WHERE tenant_id = $1 AND dialer_call_id = {} AND number = 9001 AND parked_by = {a}",
            call.0
        );
        until("the call parked under 9001", Duration::from_secs(10), || async {
            floor.scalar(&format!("{parked} AND ended_at IS NULL")).await == 1
        })
        .await;
        let va = floor.agent_view(a).await.expect("A");
        assert_eq!((va.state, va.call_id), (AgentState::WrapUp, Some(call)), "A wraps up its part");
        assert_eq!(floor.agent_view(b).await.map(|v| v.state), Some(AgentState::Ready), "nobody is offered it");
        // The customer waits on the line; B keys the park number on its phone.
        tokio::time::sleep(Duration::from_millis(500)).await;
        phone_b.command(PhoneCommand::Keys("9001".into())).await;
        until("B talking with the parked customer", Duration::from_secs(10), || async {
            floor.agent_view(b).await.is_some_and(|v| v.state == AgentState::Talking && v.call_id == Some(call))
        })
        .await;
        let b_from = store::now_ms();
        until("B hears the customer", Duration::from_secs(5), || async { phone_b.heard_share(CUSTOMER_HZ) > 0.5 })
            .await;
        until("the park is written as picked up by B", Duration::from_secs(5), || async {
            floor
                .scalar(&format!("{parked} AND outcome = 'picked_up' AND picked_by = {b} AND ended_at IS NOT NULL"))
                .await
                == 1
        })
        .await;
        let rec = format!("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND dialer_call_id = {}", call.0);
        assert_eq!(
            floor.scalar(&format!("{rec} AND agent_user_id = {b}")).await,
            1,
            "the record follows the call to B"
        );
        // The customer stayed on the line: one call only, and it ends with B.
        until("the customer hung up on B", Duration::from_secs(20), || async {
            floor.agent_view(b).await.is_some_and(|v| v.state != AgentState::Talking)
        })
        .await;
        let b_part = store::now_ms() - b_from;
        assert_eq!(carrier.log().len(), 1, "one customer call: {:?}", carrier.log());
        // One recording for the whole call: A's part (over 2 s), then B's in the same file.
        let at_least = b_part + 1_500;
        until("the recording holds both parts", Duration::from_secs(10), || async {
            floor
                .scalar(&format!("SELECT COUNT(*) FROM recordings WHERE tenant_id = $1 AND duration_ms >= {at_least}"))
                .await
                == 1
        })
        .await;
        assert_eq!(floor.scalar("SELECT COUNT(*) FROM recordings WHERE tenant_id = $1").await, 1);
        assert_eq!(floor.scalar(&format!("{rec} AND result = 'abandoned'")).await, 0, "not abandoned");
        floor.stop().await;
        let _ = stop_tx.send(true);
        drop(phones);
    }
}
