//! 外線転送 end to end over real SIP and RTP on loopback against the built-in carrier, SQLite and
//! PostgreSQL: the agent hands the customer it talks with to an outside number; the dialer places a
//! second carrier call, the customer and the outside party hear each other (the carrier's tone
//! comes back to it through the shard on both calls, checked by frequency), the agent's phone
//! hears neither any more and the agent wraps up; the call's one recording holds the agent's part
//! and then the outside party's. An outside number that refuses brings the customer back to the
//! agent, who hears it again.

use std::time::Duration;

use sim::carrier::{Behaviour, CarrierConfig};
use store::Backend;
use tokio::sync::watch;
use wire::agent::{AgentId, AgentState, CallId};
use wire::{ApiCommand, Tel};

use crate::engine::phones_with_tone;
use crate::floor::{backends, until, Floor, FloorSpec};

/// The carrier's parties (customer and outside party alike) send this tone; the agent's phone its own.
const CARRIER_HZ: f32 = 500.0;
const AGENT_HZ: f32 = 1100.0;
const HEARS: f32 = 0.5;
/// The call job's caller ID (発番号).
const CALLER_ID: &str = "0312340000";
const DEAF: f32 = 0.02;

/// The customer (last digit 1) talks 14 s; the outside party (2) answers after 1 s and waits for
/// the BYE; 4 is busy.
fn rules() -> [Behaviour; 10] {
    let mut r = [Behaviour::Answer { after_ms: 300, talk_ms: Some(14_000) }; 10];
    r[2] = Behaviour::Answer { after_ms: 1_000, talk_ms: None };
    r[4] = Behaviour::Fail { status: 486, after_ms: 800 };
    r
}

/// One agent in preview whose one lead is the customer 0317000001, against the carrier of
/// [`rules`] (every party sends [`CARRIER_HZ`]); the agent's phone sends [`AGENT_HZ`].
struct Talking {
    stop: watch::Sender<bool>,
    carrier: sim::carrier::Carrier,
    floor: Floor,
    phones: Vec<sim::phone::Phone>,
    agent: i64,
    call: CallId,
}

/// [`Talking`]: the agent dialled its lead and talks with the customer (they hear each other).
async fn talking(backend: Backend) -> Talking {
    let (stop, rx) = watch::channel(false);
    let cfg = CarrierConfig { by_last_digit: Some(rules()), tone_hz: Some(CARRIER_HZ), ..CarrierConfig::default() };
    let carrier = sim::carrier::start(crate::engine::LOCALHOST, cfg, rx.clone()).await.expect("carrier");
    let spec = FloorSpec {
        agents: 1,
        leads: vec!["0317000001".to_string()],
        mode: "preview",
        ring_timeout_s: 5,
        caller_id: Some((CALLER_ID, 4)),
        ..FloorSpec::default()
    };
    let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
    let phones = phones_with_tone(&floor, Duration::from_millis(200), Some(AGENT_HZ), &rx).await;
    floor.start_job().await;
    let agent = floor.agents[0];
    floor.log_in_agents(Some(60_000)).await;
    until("agent ready", Duration::from_secs(15), || async { floor.agents_in("ready").await == 1 }).await;
    floor.preview_dial(agent).await;
    until("talking", Duration::from_secs(15), || async {
        floor.agent_view(agent).await.is_some_and(|v| v.state == AgentState::Talking)
    })
    .await;
    let call = floor.agent_view(agent).await.and_then(|v| v.call_id).expect("the call");
    let phone = &phones[0];
    until("agent and customer hear each other", Duration::from_secs(5), || async {
        phone.heard_share(CARRIER_HZ) > HEARS && carrier.heard_share(AGENT_HZ) > HEARS
    })
    .await;
    Talking { stop, carrier, floor, phones, agent, call }
}

impl Talking {
    async fn stop(self) {
        self.floor.stop().await;
        let _ = self.stop.send(true);
        drop(self.phones);
    }
}

fn transfer(a: i64, call: CallId, tel: &str) -> ApiCommand {
    let tel = Tel::new(tel).expect("tel");
    ApiCommand::TransferOutside { agent_id: AgentId(a as u64), call_id: call, tel, caller_id: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_transfer_bridges_the_customer_to_the_outside_party() {
    for backend in backends() {
        let t = talking(backend).await;
        let (floor, carrier, phone, a, call) = (&t.floor, &t.carrier, &t.phones[0], t.agent, t.call);
        // The agent's part: 3 s.
        tokio::time::sleep(Duration::from_secs(2)).await;
        floor.command(transfer(a, call, "0317000002")).await;
        until("the agent wraps up once the outside party answered", Duration::from_secs(10), || async {
            floor.agent_view(a).await.is_some_and(|v| v.state == AgentState::WrapUp)
        })
        .await;
        let log = carrier.log();
        assert_eq!(
            log.iter().map(|e| (e.tel.as_str(), e.outcome.as_str(), e.caller.is_empty())).collect::<Vec<_>>(),
            vec![("0317000001", "answered", false), ("0317000002", "answered", false)],
            "two carrier calls, the second from the call's caller ID: {log:?}"
        );
        let from = format!("sip:{CALLER_ID}@");
        assert!(log.iter().all(|e| e.caller.contains(&from)), "both from the call's caller ID: {log:?}");
        // Both carrier calls hear the carrier's own tone: the customer's and the outside party's
        // audio cross in the shard; nobody hears the agent, and the agent hears neither.
        until("the customer and the outside party hear each other", Duration::from_secs(5), || async {
            carrier.heard_share(CARRIER_HZ) > 0.8 && carrier.heard_share(AGENT_HZ) < DEAF
        })
        .await;
        assert!(phone.heard_share(CARRIER_HZ) < DEAF, "the agent hears neither: {}", phone.heard_share(CARRIER_HZ));
        // The customer hangs up (14 s after its answer): the outside party is hung up too.
        until("both carrier calls ended", Duration::from_secs(20), || async {
            carrier.log().iter().all(|e| e.ended_at.is_some())
        })
        .await;
        let rec = format!("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND dialer_call_id = {}", call.0);
        // The call keeps its one record, the agent's (its wrap-up record is the agent's to save).
        until("the call's record ended", Duration::from_secs(10), || async {
            floor.scalar(&format!("{rec} AND ended_at IS NOT NULL")).await == 1
        })
        .await;
        assert_eq!(floor.scalar(&format!("{rec} AND result = 'no_entry' AND agent_user_id = {a}")).await, 1);
        // One recording: the agent's part then the outside party's, both channels.
        until("the recording is closed", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM recordings WHERE tenant_id = $1 AND duration_ms >= 10000").await >= 1
        })
        .await;
        let (customer, other) = floor.the_recording().await;
        assert!(customer.len() >= 80_000 && other.len() == customer.len(), "{} samples", customer.len());
        let (first, last) = (&other[8_000..16_000], &other[other.len() - 16_000..other.len() - 8_000]);
        assert!(media::dtmf::tone_share(first, AGENT_HZ) > HEARS, "the agent's part is recorded");
        assert!(media::dtmf::tone_share(last, CARRIER_HZ) > HEARS, "the outside party's part is recorded");
        assert!(
            media::dtmf::tone_share(&customer[customer.len() - 16_000..customer.len() - 8_000], CARRIER_HZ) > HEARS
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_outside_number_brings_the_customer_back_to_the_agent() {
    for backend in backends() {
        let t = talking(backend).await;
        let (floor, carrier, phone, a, call) = (&t.floor, &t.carrier, &t.phones[0], t.agent, t.call);
        floor.command(transfer(a, call, "0317000004")).await;
        until("the outside number refused", Duration::from_secs(5), || async {
            carrier.log().iter().any(|e| e.tel == "0317000004" && e.outcome == "failed:486")
        })
        .await;
        // Back with the agent: they hear each other again, the agent still talking on the call.
        tokio::time::sleep(Duration::from_millis(300)).await;
        until("agent and customer hear each other again", Duration::from_secs(5), || async {
            phone.heard_share(CARRIER_HZ) > HEARS && carrier.heard_share(AGENT_HZ) > 0.3
        })
        .await;
        let v = floor.agent_view(a).await.expect("the agent");
        assert_eq!((v.state, v.call_id), (AgentState::Talking, Some(call)));
        until("the customer hung up on the agent", Duration::from_secs(20), || async {
            floor.agent_view(a).await.is_some_and(|v| v.state == AgentState::WrapUp)
        })
        .await;
        assert_eq!(carrier.log().len(), 2, "{:?}", carrier.log());
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_lets_the_three_hear_each_other_and_the_two_go_on_when_the_agent_leaves() {
    for backend in backends() {
        let t = talking(backend).await;
        let (floor, carrier, phone, a, call) = (&t.floor, &t.carrier, &t.phones[0], t.agent, t.call);
        assert!(carrier.heard_share(CARRIER_HZ) < DEAF, "nobody relays the carrier's tone back to it yet");
        // The API records the ask; the dialer its start and end.
        let (tenant, record) = (floor.tenant as i64, call.0 as i64);
        store::conferences::requested(&floor.db, tenant, record, a, "0317000002", store::now_ms()).await.expect("ask");
        let tel = Tel::new("0317000002").expect("tel");
        floor
            .command(ApiCommand::Conference { agent_id: AgentId(a as u64), call_id: call, tel, caller_id: None })
            .await;
        // Three parties: the customer and the third party hear the agent and each other (the
        // carrier's own tone comes back to it), the agent hears them.
        until("each hears the other two", Duration::from_secs(10), || async {
            carrier.heard_share(CARRIER_HZ) > 0.2
                && carrier.heard_share(AGENT_HZ) > 0.2
                && phone.heard_share(CARRIER_HZ) > HEARS
        })
        .await;
        let v = floor.agent_view(a).await.expect("the agent");
        assert_eq!((v.state, v.call_id), (AgentState::Talking, Some(call)), "the agent is in the call");
        until("the conference's start is recorded", Duration::from_secs(5), || async {
            let c = store::conferences::of_call(&floor.db, tenant, record).await.expect("conferences");
            c.len() == 1 && c[0].started_at.is_some()
        })
        .await;
        // The agent leaves: the two go on without it, the agent wraps up and hears neither.
        floor.command(ApiCommand::LeaveConference { agent_id: AgentId(a as u64), call_id: call }).await;
        until("the agent wraps up", Duration::from_secs(10), || async {
            floor.agent_view(a).await.is_some_and(|v| v.state == AgentState::WrapUp)
        })
        .await;
        until("the customer and the third party hear each other alone", Duration::from_secs(5), || async {
            carrier.heard_share(CARRIER_HZ) > 0.8 && carrier.heard_share(AGENT_HZ) < DEAF
        })
        .await;
        until("the agent hears neither after leaving", Duration::from_secs(5), || async {
            phone.heard_share(CARRIER_HZ) < DEAF
        })
        .await;
        let c = store::conferences::of_call(&floor.db, tenant, record).await.expect("conferences");
        until("the conference's end is recorded", Duration::from_secs(5), || async {
            let c = store::conferences::of_call(&floor.db, tenant, record).await.expect("conferences");
            c[0].end_reason.as_deref() == Some("agent_left")
        })
        .await;
        assert_eq!((c[0].agent_user_id, c[0].to_tel.as_str()), (a, "0317000002"));
        until("both carrier calls ended with the customer", Duration::from_secs(20), || async {
            carrier.log().iter().all(|e| e.ended_at.is_some())
        })
        .await;
        assert_eq!(carrier.log().len(), 2, "{:?}", carrier.log());
        t.stop().await;
    }
}
