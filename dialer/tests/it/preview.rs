//! Preview mode end to end (プレビュー): an agent takes the next lead (held for them), dials it, and
//! the customer who answers is bridged to that agent only; the pacer never dials by itself. Real SIP
//! and RTP on loopback against the built-in carrier, SQLite and PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use sim::carrier::Behaviour;
use store::sqlx::{self, Row};
use tokio::sync::watch;
use wire::agent::{AgentId, AgentState};
use wire::{ApiCommand, CallJobId, CampaignId, LeadId};

use crate::engine::{carrier, phones};
use crate::floor::{backends, until, Floor, FloorSpec};

/// By last digit: 0-3 answer (talk 1.5 s), 4 busy, 7 rings until our timeout; the rest answer.
fn rules() -> [Behaviour; 10] {
    let answer = Behaviour::Answer { after_ms: 400, talk_ms: Some(1_500) };
    let mut r = [answer; 10];
    r[4] = Behaviour::Fail { status: 486, after_ms: 300 };
    r[7] = Behaviour::Ring;
    r
}

/// What the lead's number makes the carrier do.
fn expected(tel: &str) -> &'static str {
    match tel.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(0) {
        4 => "busy",
        7 => "timeout",
        _ => "no_entry",
    }
}

/// Reserves the agent's next lead, as `POST /agent/preview` does.
async fn next_lead(floor: &Floor, agent: i64) -> Option<store::preview::PreviewLead> {
    let (t, now) = (floor.tenant as i64, store::now_ms());
    store::preview::reserve(&floor.db, t, floor.job, agent, now, store::preview::HOLD_MS).await.expect("reserve")
}

fn dial(floor: &Floor, agent: i64, lead: i64) -> ApiCommand {
    ApiCommand::PreviewDial {
        agent_id: AgentId(agent as u64),
        campaign_id: CampaignId(floor.campaign as u64),
        call_job_id: CallJobId(floor.job as u64),
        lead_id: LeadId(lead as u64),
        caller_id: None,
    }
}

async fn state(floor: &Floor, agent: i64) -> Option<AgentState> {
    floor.agent_view(agent).await.map(|v| v.state)
}

async fn lead_result(floor: &Floor, lead: i64) -> (i64, Option<String>) {
    let r = sqlx::query("SELECT attempts, last_result FROM leads WHERE id = $1")
        .bind(lead)
        .fetch_one(&floor.db.pool)
        .await
        .expect("lead");
    (r.try_get("attempts").expect("attempts"), r.try_get("last_result").expect("last_result"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_dials_only_what_the_agent_asks_and_bridges_the_answer_to_that_agent() {
    for backend in backends() {
        let (stop_tx, stop) = watch::channel(false);
        let carrier = carrier(rules(), &stop).await;
        // 0 answers, 4 busy, 7 rings out, 1 answers, 2 is on the do-not-call list, 3 and 9 answer.
        let leads: Vec<String> =
            [0, 4, 7, 1, 2, 3, 9].iter().enumerate().map(|(i, d)| format!("0311{i:05}{d}")).collect();
        let dnc = vec![leads[4].clone()];
        let spec = FloorSpec {
            agents: 2,
            leads: leads.clone(),
            dnc: dnc.clone(),
            mode: "preview",
            ring_timeout_s: 2,
            ..FloorSpec::default()
        };
        let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let phones = phones(&floor, Duration::from_millis(200), &stop).await;
        until("registrations stored", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM sip_registrations WHERE tenant_id = $1").await == 2
        })
        .await;
        floor.start_job().await;
        // B logs in first: the longest-idle ready agent, whom a match would pick. A previews.
        let (b, a) = (floor.agents[0], floor.agents[1]);
        floor.log_in_agents(None).await;
        until("agents ready", Duration::from_secs(10), || async { floor.agents_in("ready").await == 2 }).await;

        // B holds the first lead: A is shown the next, and no paced dial takes B's.
        let held_by_b = next_lead(&floor, b).await.expect("a lead for B");
        assert_eq!(held_by_b.tel, leads[0]);
        assert_eq!(next_lead(&floor, b).await.expect("the same lead again").lead_id, held_by_b.lead_id);
        // Nothing is dialled until an agent asks: the pacer of a preview campaign never launches.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(carrier.log().is_empty(), "a preview campaign dialled by itself: {:?}", carrier.log());

        let mut seen: Vec<(String, i64)> = Vec::new();
        while let Some(lead) = next_lead(&floor, a).await {
            assert_ne!(lead.lead_id, held_by_b.lead_id, "A was shown the lead B holds");
            assert_eq!(lead.attempts, 0);
            floor.command(dial(&floor, a, lead.lead_id)).await;
            // The agent rings (no customer offered meanwhile), then the call ends one way or another.
            until("the lead's result", Duration::from_secs(20), || async {
                !matches!(lead_result(&floor, lead.lead_id).await.1.as_deref(), None | Some("pending"))
            })
            .await;
            until("A ready again", Duration::from_secs(20), || async {
                state(&floor, a).await == Some(AgentState::Ready)
            })
            .await;
            seen.push((lead.tel.clone(), lead.lead_id));
            assert!(seen.len() <= leads.len(), "a lead shown twice: {seen:?}");
        }
        // B skips its lead: the hold ends, and it is not shown again in this run.
        assert!(store::preview::skip(&floor.db, floor.tenant as i64, floor.job, b, held_by_b.lead_id, store::now_ms())
            .await
            .unwrap());
        assert!(next_lead(&floor, b).await.is_none(), "a skipped lead is not shown again in the run");
        assert_eq!(seen.len(), leads.len() - 1, "A saw every lead but B's: {seen:?}");

        // Every lead A dialled got what the carrier did, once; the do-not-call one never reached it.
        let dialled: HashMap<String, usize> = carrier.log().iter().fold(HashMap::new(), |mut m, e| {
            *m.entry(e.tel.clone()).or_default() += 1;
            m
        });
        for (tel, lead) in &seen {
            let (attempts, result) = lead_result(&floor, *lead).await;
            if dnc.contains(tel) {
                assert_eq!(dialled.get(tel), None, "a do-not-call number reached the carrier: {tel}");
                assert_eq!((attempts, result.as_deref()), (0, Some("restricted")), "{tel}");
            } else {
                assert_eq!(dialled.get(tel), Some(&1), "dialled exactly once: {tel}");
                assert_eq!((attempts, result.as_deref()), (1, Some(expected(tel))), "{tel}");
            }
        }
        assert_eq!(dialled.get(&leads[0]), None, "B's skipped lead was never dialled");
        // Every answered customer talked to A, the agent who dialled, although B was ready longer.
        let answered = seen.iter().filter(|(t, _)| !dnc.contains(t) && expected(t) == "no_entry").count() as i64;
        until("a wrap-up record per answered call", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM wrapup_records WHERE tenant_id = $1").await == answered
        })
        .await;
        let by_a = floor
            .scalar(&format!("SELECT COUNT(*) FROM wrapup_records WHERE tenant_id = $1 AND agent_user_id = {a}"))
            .await;
        assert_eq!(by_a, answered, "answered preview customers bridged to their own agent");
        assert_eq!(
            floor.scalar("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'abandoned'").await,
            0
        );
        assert_eq!(state(&floor, b).await, Some(AgentState::Ready), "B was never offered a customer");

        let stats = floor.stop().await;
        assert_eq!(stats.preview_asked, leads.len() as u64 - 1);
        assert_eq!(stats.preview_placed, leads.len() as u64 - 2, "all but the do-not-call lead placed");
        assert_eq!(stats.launched, stats.preview_placed, "the engine launched nothing else");
        let _ = stop_tx.send(true);
        drop(phones);
    }
}

/// A recall an agent owns (再コール assigned to it) in a progressive job is dialled for that agent
/// only: the customer who answers is bridged to the owner, never to the colleague who is ready
/// longer; the job's own leads go on to either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_an_agent_owns_in_a_paced_job_is_dialled_for_that_agent_only() {
    for backend in backends() {
        let (stop_tx, stop) = watch::channel(false);
        let carrier = carrier(rules(), &stop).await;
        let leads: Vec<String> = (0..6).map(|i| format!("0312{i:05}0")).collect();
        let spec = FloorSpec { agents: 2, leads: leads.clone(), mode: "progressive", ..FloorSpec::default() };
        let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let _phones = phones(&floor, Duration::from_millis(200), &stop).await;
        // The last lead has a recall due now that agent B owns.
        let (a, b) = (floor.agents[0], floor.agents[1]);
        let recalled = &leads[5];
        sqlx::query(
            "INSERT INTO recalls (tenant_id, lead_id, campaign_id, due_at, agent_user_id, status, created_at)
             SELECT tenant_id, id, $1, 0, $2, 'open', 0 FROM leads WHERE tenant_id = $3 AND tel = $4",
        )
        .bind(floor.campaign)
        .bind(b)
        .bind(floor.tenant as i64)
        .bind(recalled)
        .execute(&floor.db.pool)
        .await
        .expect("the recall");
        floor.log_in_agents(None).await;
        until("agents ready", Duration::from_secs(15), || async { floor.agents_in("ready").await == 2 }).await;
        floor.start_job().await;
        until("the recalled customer talked to someone", Duration::from_secs(30), || async {
            floor
                .scalar(&format!(
                    "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND tel = '{recalled}' AND bridged_at IS NOT NULL"
                ))
                .await
                == 1
        })
        .await;
        let to = floor
            .scalar(&format!("SELECT agent_user_id FROM call_records WHERE tenant_id = $1 AND tel = '{recalled}'"))
            .await;
        assert_eq!(to, b, "{backend:?}: the owner took the recall (not agent {a})");
        let done = floor.scalar("SELECT COUNT(*) FROM recalls WHERE tenant_id = $1 AND status = 'done'").await;
        assert_eq!(done, 1, "the recall is answered");
        floor.stop().await;
        let _ = stop_tx.send(true);
    }
}

/// Marks a callback (折り返し呼) of `agent` as dialled through `lead` now, as `POST
/// /agent/callbacks/{id}/dial` does before it holds the lead and publishes the dial.
async fn callback_dial(floor: &Floor, agent: i64, tel: &str, lead: i64) -> i64 {
    let (t, now) = (floor.tenant as i64, store::now_ms());
    let id: i64 = sqlx::query(
        "INSERT INTO callbacks (tenant_id, number, campaign_id, assignee_user_id, registered_at, updated_at, dialled_lead_id, dialled_at, dialled_by)
         VALUES ($1, $2, $3, $4, $5, $5, $6, $5, $4) RETURNING id",
    )
    .bind(t)
    .bind(tel)
    .bind(floor.campaign)
    .bind(agent)
    .bind(now)
    .bind(lead)
    .fetch_one(&floor.db.pool)
    .await
    .and_then(|r| r.try_get("id"))
    .expect("callback");
    let held =
        store::desktop::hold(&floor.db, t, floor.job, agent, lead, now, store::preview::HOLD_MS).await.expect("hold");
    assert!(held.is_ok(), "the lead is held for the agent");
    id
}

/// Calling a callback back goes the preview dial's way: the dialer checks it like any dial (a
/// do-not-call number gets 発信規制 and never reaches the carrier), and a lead already dialled in
/// this run of the job is called again for the callback (the once-per-run rule spares it, as it
/// spares a due recall). The call is linked to the callback through its lead and time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_is_dialled_through_every_check_of_a_dial() {
    for backend in backends() {
        let (stop_tx, stop) = watch::channel(false);
        let carrier = carrier(rules(), &stop).await;
        let leads = vec!["0312000001".to_string(), "0312000002".to_string()];
        let spec = FloorSpec {
            agents: 1,
            leads: leads.clone(),
            dnc: vec![leads[1].clone()],
            mode: "preview",
            ring_timeout_s: 2,
            ..FloorSpec::default()
        };
        let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let phones = phones(&floor, Duration::from_millis(200), &stop).await;
        until("registration stored", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM sip_registrations WHERE tenant_id = $1").await == 1
        })
        .await;
        floor.start_job().await;
        let a = floor.agents[0];
        floor.log_in_agents(None).await;
        until("agent ready", Duration::from_secs(10), || async { floor.agents_in("ready").await == 1 }).await;
        let id_of = |tel: &str| format!("SELECT id FROM leads WHERE tenant_id = $1 AND tel = '{tel}'");
        let (first, dnc) = (floor.scalar(&id_of(&leads[0])).await, floor.scalar(&id_of(&leads[1])).await);

        // The customer is called once in this run (previewed and dialled)...
        let lead = next_lead(&floor, a).await.expect("a lead");
        assert_eq!(lead.lead_id, first);
        floor.command(dial(&floor, a, first)).await;
        until("the first call's result", Duration::from_secs(20), || async {
            lead_result(&floor, first).await == (1, Some("no_entry".into()))
        })
        .await;
        until("ready again", Duration::from_secs(20), || async { state(&floor, a).await == Some(AgentState::Ready) })
            .await;
        // ... then asks to be called back: the callback's dial places a second call to the lead.
        let cb = callback_dial(&floor, a, &leads[0], first).await;
        floor.command(dial(&floor, a, first)).await;
        until("the callback's call", Duration::from_secs(20), || async {
            lead_result(&floor, first).await == (2, Some("no_entry".into()))
        })
        .await;
        until("ready again", Duration::from_secs(20), || async { state(&floor, a).await == Some(AgentState::Ready) })
            .await;
        let linked = floor
            .scalar(&format!(
                "SELECT COUNT(*) FROM call_records r JOIN callbacks c ON c.dialled_lead_id = r.lead_id AND r.started_at >= c.dialled_at
                 WHERE r.tenant_id = $1 AND c.id = {cb}"
            ))
            .await;
        assert_eq!(linked, 1, "the callback's call is the one placed after its dial");
        // A callback to a do-not-call number: 発信規制, no call.
        callback_dial(&floor, a, &leads[1], dnc).await;
        floor.command(dial(&floor, a, dnc)).await;
        until("restricted", Duration::from_secs(20), || async {
            lead_result(&floor, dnc).await.1.as_deref() == Some("restricted")
        })
        .await;
        let to_carrier: Vec<String> = carrier.log().iter().map(|e| e.tel.clone()).collect();
        assert_eq!(
            to_carrier,
            vec![leads[0].clone(), leads[0].clone()],
            "the do-not-call number never reached the carrier"
        );
        let stats = floor.stop().await;
        assert_eq!((stats.preview_asked, stats.preview_placed), (3, 2));
        let _ = stop_tx.send(true);
        drop(phones);
    }
}
