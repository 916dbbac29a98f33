//! The engine against real third-party SIP peers: sipp (Debian's sip-tester) as the carrier, with a
//! scenario mix by the dialled number's last digit (answer after ringing with RTP echoed, busy,
//! decline, not found, ringing until our CANCEL, server error), and sipp as the agents' phones
//! (REGISTER with digest; auto-answer with RTP echoed). `scripts/services.sh` installs sipp.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::floor::{backends, until, Floor, FloorSpec};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}

/// A free UDP port on loopback (and the one after it, for RTCP).
fn free_port() -> u16 {
    loop {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let p = s.local_addr().expect("addr").port();
        if p < 65_000 && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() && UdpSocket::bind(("127.0.0.1", p + 2)).is_ok()
        {
            return p;
        }
    }
}

/// A sipp process, killed when dropped.
struct Sipp(Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sipp(args: &[String], log: &Path) -> Sipp {
    let out = std::fs::File::create(log).expect("sipp log file");
    let child = Command::new("sipp")
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log handle"))
        .stderr(out)
        .spawn()
        .expect("sipp is installed (scripts/services.sh installs sip-tester)");
    Sipp(child)
}

fn expected_result(tel: &str) -> &'static str {
    match tel.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(0) {
        4 => "busy",
        // 603 Decline: キャンセル (SPEC 4).
        5 => "cancel",
        // 404: 現アナ (a number not in service); 503: エラー.
        6 => "not_in_service",
        8 => "error",
        7 => "timeout",
        _ => "no_entry",
    }
}

/// Numbers the carrier saw in an INVITE Request-URI (from sipp's message trace).
fn invited_numbers(trace: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let mut seen: HashMap<String, HashMap<String, ()>> = HashMap::new();
    let mut last_call_id = String::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("INVITE sip:") {
            // The campaign withholds its caller ID: the number is dialled with the 184 prefix.
            pending = rest.split('@').next().map(|u| u.strip_prefix("184").unwrap_or(u).to_string());
        } else if let Some(cid) = l.strip_prefix("Call-ID:").or_else(|| l.strip_prefix("Call-Id:")) {
            last_call_id = cid.trim().to_string();
            if let Some(tel) = pending.take() {
                // Retransmissions carry the same Call-ID: count calls, not datagrams.
                seen.entry(tel).or_default().insert(last_call_id.clone(), ());
            }
        }
    }
    let _ = last_call_id;
    seen.into_iter().map(|(t, calls)| (t, calls.len())).collect()
}

/// The list: a few hundred leads, worked by ten agents' phones.
const LEADS: usize = 300;
const AGENTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_job_against_sipp_as_carrier_and_phones() {
    if Command::new("sipp").arg("-v").output().is_err() {
        panic!("sipp is not installed: run scripts/services.sh (it installs Debian's sip-tester)");
    }
    for backend in backends() {
        let work = tempfile::tempdir().expect("work dir");
        let carrier_port = free_port();
        let carrier_media = free_port();
        let trace = work.path().join("carrier-messages.log");
        let _carrier = sipp(
            &[
                "-sf".into(),
                scenario("carrier.xml").display().to_string(),
                "-i".into(),
                "127.0.0.1".into(),
                "-p".into(),
                carrier_port.to_string(),
                "-mi".into(),
                "127.0.0.1".into(),
                "-mp".into(),
                carrier_media.to_string(),
                "-rtp_echo".into(),
                "-trace_msg".into(),
                "-message_file".into(),
                trace.display().to_string(),
                "-nostdin".into(),
            ],
            &work.path().join("carrier.out"),
        );
        let leads: Vec<String> = (0..LEADS).map(|i| format!("06{:08}", 2000 + i)).collect();
        // Every 25th number (all last digits among them) is on the do-not-call list.
        let dnc: Vec<String> = leads.iter().skip(2).step_by(25).cloned().collect();
        let spec = FloorSpec {
            agents: AGENTS,
            leads: leads.clone(),
            dnc: dnc.clone(),
            ring_timeout_s: 2,
            ..FloorSpec::default()
        };
        let floor = Floor::start(backend, &spec, format!("127.0.0.1:{carrier_port}").parse().expect("addr")).await;
        // The agents' phones: a sipp answering calls, and a sipp registering it with digest.
        let mut phones = Vec::new();
        for i in 0..AGENTS {
            let (port, media) = (free_port(), free_port());
            phones.push(sipp(
                &[
                    "-sf".into(),
                    scenario("agent.xml").display().to_string(),
                    "-i".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                    "-mi".into(),
                    "127.0.0.1".into(),
                    "-mp".into(),
                    media.to_string(),
                    "-rtp_echo".into(),
                    "-nostdin".into(),
                ],
                &work.path().join(format!("agent{i}.out")),
            ));
            let reg = Command::new("sipp")
                .args([
                    floor.info.sip_addrs[0].to_string(),
                    "-sf".into(),
                    scenario("register.xml").display().to_string(),
                    "-i".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    free_port().to_string(),
                    "-m".into(),
                    "1".into(),
                    "-s".into(),
                    format!("agent{i}"),
                    "-au".into(),
                    format!("agent{i}"),
                    "-ap".into(),
                    format!("sip{i}"),
                    "-set".into(),
                    "realm".into(),
                    floor.realm.clone(),
                    "-set".into(),
                    "contact_port".into(),
                    port.to_string(),
                    "-timeout".into(),
                    "10s".into(),
                    "-nostdin".into(),
                ])
                .stdin(Stdio::null())
                .output()
                .expect("sipp registers");
            assert!(
                reg.status.success(),
                "sipp registered agent{i} with digest: {}",
                String::from_utf8_lossy(&reg.stdout).lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
        }
        until("registrations stored", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM sip_registrations WHERE tenant_id = $1").await == AGENTS as i64
        })
        .await;
        floor.log_in_agents(None).await;
        until("agents ready (sipp answered the nailed-up legs)", Duration::from_secs(15), || async {
            floor.agents_in("ready").await == AGENTS
        })
        .await;
        floor.start_job().await;
        until("the job finishes", Duration::from_secs(240), || async { floor.job_status().await == "finished" }).await;

        let invited = invited_numbers(&trace);
        assert!(
            !invited.is_empty(),
            "no INVITE in the carrier's trace {}: {:?}",
            trace.display(),
            std::fs::metadata(&trace).map(|m| m.len())
        );
        for (tel, attempts, result) in floor.leads().await {
            if dnc.contains(&tel) {
                assert_eq!(invited.get(&tel), None, "a do-not-call number reached the carrier: {tel}");
                assert_eq!((attempts, result.as_deref()), (0, Some("restricted")));
                continue;
            }
            assert_eq!(
                invited.get(&tel),
                Some(&1),
                "the carrier saw one call to {tel}: {:?}",
                invited.keys().take(5).collect::<Vec<_>>()
            );
            if (attempts, result.as_deref()) != (1, Some(expected_result(&tel))) {
                // The call's times (ms from its start) say where it went wrong.
                let r = store::sqlx::query(
                    "SELECT started_at, answered_at, bridged_at, ended_at, sip_status FROM call_records
                     WHERE tenant_id = $1 AND tel = $2",
                )
                .bind(floor.tenant as i64)
                .bind(&tel)
                .fetch_one(&floor.db.pool)
                .await
                .expect("its call record");
                let at = |c: &str| store::sqlx::Row::try_get::<Option<i64>, _>(&r, c).ok().flatten();
                let start = at("started_at").unwrap_or(0);
                let rel = |c: &str| at(c).map(|t| t - start);
                panic!(
                    "{tel}: attempts {attempts}, result {result:?}, expected {}; answered at {:?} ms, bridged at {:?} ms, ended at {:?} ms, SIP {:?}",
                    expected_result(&tel),
                    rel("answered_at"),
                    rel("bridged_at"),
                    rel("ended_at"),
                    at("sip_status")
                );
            }
        }
        let answered = leads.iter().filter(|t| !dnc.contains(t) && expected_result(t) == "no_entry").count() as i64;
        // The control service writes the wrap-up records as the calls' ends reach it.
        until("a wrap-up record per answered call", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM wrapup_records WHERE tenant_id = $1").await == answered
        })
        .await;
        // Audio went through: every answered call's recording holds both channels.
        until("recordings indexed", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM recordings WHERE tenant_id = $1").await == answered
        })
        .await;
        let stats = floor.stop().await;
        assert_eq!(stats.launched, (leads.len() - dnc.len()) as u64);
    }
}
