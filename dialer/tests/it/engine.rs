//! The engine end to end on loopback: real SIP and RTP between the shards, the built-in carrier and
//! the agents' phones; the control service matching over the in-process bus; SQLite and PostgreSQL.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use sim::carrier::{Behaviour, CarrierConfig};
use sim::phone::PhoneConfig;
use tokio::sync::watch;

use crate::floor::{backends, until, Floor, FloorSpec};

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The carrier's rules by last digit: 0-3 answer (talk 1.5 s), 4 busy, 5 decline, 6 not found,
/// 7 rings until our timeout, 8 server error, 9 answer.
fn rules() -> [Behaviour; 10] {
    let answer = Behaviour::Answer { after_ms: 400, talk_ms: Some(1_500) };
    [
        answer,
        answer,
        answer,
        answer,
        Behaviour::Fail { status: 486, after_ms: 300 },
        Behaviour::Fail { status: 603, after_ms: 300 },
        Behaviour::Fail { status: 404, after_ms: 200 },
        Behaviour::Ring,
        Behaviour::Fail { status: 503, after_ms: 200 },
        answer,
    ]
}

fn expected_result(tel: &str) -> &'static str {
    match tel.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(0) {
        4 | 5 => "busy",
        6 | 8 => "error",
        7 => "timeout",
        _ => "no_entry",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_job_places_real_calls_and_every_lead_gets_what_the_carrier_did() {
    for backend in backends() {
        let (stop_tx, stop) = watch::channel(false);
        let carrier = sim::carrier::start(
            LOCALHOST,
            CarrierConfig { by_last_digit: Some(rules()), ..CarrierConfig::default() },
            stop.clone(),
        )
        .await
        .expect("carrier");
        let leads: Vec<String> = (0..40).map(|i| format!("03{:08}", 1000 + i)).collect();
        let dnc = vec![leads[3].clone(), leads[13].clone()];
        let spec =
            FloorSpec { agents: 3, leads: leads.clone(), dnc: dnc.clone(), ring_timeout_s: 2, ..FloorSpec::default() };
        let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let phones = sim::phone::start(
            floor.phone_accounts(),
            PhoneConfig {
                registrar: floor.info.sip_addrs[0],
                bind_ip: LOCALHOST,
                expires_s: 300,
                answer_after: Duration::from_millis(200),
            },
            stop.clone(),
        )
        .await
        .expect("phones");
        until("phones registered", Duration::from_secs(10), || async { phones.iter().all(|p| p.stats().registered) })
            .await;
        until("registrations stored", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM sip_registrations WHERE tenant_id = $1").await == 3
        })
        .await;
        floor.log_in_agents(None).await;
        until("agents ready", Duration::from_secs(10), || async { floor.agents_in("ready").await == 3 }).await;
        floor.start_job().await;
        until("the job finishes", Duration::from_secs(60), || async { floor.job_status().await == "finished" }).await;

        // Every lead: the result and attempt count the carrier's behaviour implies.
        let log = carrier.log();
        let dialled: HashMap<&str, usize> = log.iter().fold(HashMap::new(), |mut m, e| {
            *m.entry(e.tel.as_str()).or_default() += 1;
            m
        });
        for (tel, attempts, result) in floor.leads().await {
            if dnc.contains(&tel) {
                assert_eq!(dialled.get(tel.as_str()), None, "a do-not-call number reached the carrier: {tel}");
                assert_eq!((attempts, result.as_deref()), (0, Some("restricted")), "{tel}");
                continue;
            }
            assert_eq!(dialled.get(tel.as_str()), Some(&1), "dialled exactly once: {tel}");
            assert_eq!(attempts, 1, "{tel}");
            assert_eq!(result.as_deref(), Some(expected_result(&tel)), "{tel}");
        }
        // The call records say the same, and every answered call has an unsaved wrap-up record.
        let answered = leads.iter().filter(|t| !dnc.contains(t) && expected_result(t) == "no_entry").count() as i64;
        assert_eq!(
            floor.scalar("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'no_entry'").await,
            answered
        );
        assert_eq!(
            floor.scalar("SELECT COUNT(*) FROM wrapup_records WHERE tenant_id = $1 AND saved = 0").await,
            answered
        );
        assert_eq!(
            floor.scalar("SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'restricted'").await,
            2
        );
        // Every answered call was recorded: a readable stereo file with the customer and the agent.
        until("recordings indexed", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM recordings WHERE tenant_id = $1").await == answered
        })
        .await;
        let paths: Vec<String> = store::sqlx::query("SELECT path FROM recordings WHERE tenant_id = $1")
            .bind(floor.tenant as i64)
            .fetch_all(&floor.db.pool)
            .await
            .expect("recordings")
            .iter()
            .map(|r| store::sqlx::Row::try_get(r, "path").expect("path"))
            .collect();
        for p in &paths {
            assert!(p.starts_with(&floor.recordings.path().display().to_string()), "{p}");
            let bytes = std::fs::read(p).expect("the recording file exists");
            let rec = media::recording::read_recording(&bytes).expect("a readable recording");
            assert!(
                rec.customer.len() > 8_000 && rec.agent.len() == rec.customer.len(),
                "a second of audio per channel: {p}"
            );
        }
        // RTP flowed both ways through the shard.
        let c = carrier.stats();
        assert!(c.rtp_received > 0 && c.rtp_sent > 0, "RTP both ways: {c:?}");
        assert!(phones.iter().map(|p| p.stats().rtp_received).sum::<u64>() > 0, "agents heard audio");
        let stats = floor.stop().await;
        assert_eq!(stats.restricted, 2);
        assert_eq!(stats.launched, 38);
        let _ = stop_tx.send(true);
    }
}
