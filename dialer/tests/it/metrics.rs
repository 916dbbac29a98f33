//! The dialer's, the media shards', the SIP layer's and the control service's metrics after a real
//! call job on the loopback floor: the exposition passes `promtool check metrics`, every `kakeru_`
//! family it shows has a row in deploy/METRICS.md, and the families count what happened.

use std::collections::BTreeSet;
use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use sim::carrier::{Behaviour, CarrierConfig};
use store::Backend;
use tokio::sync::watch;

use crate::floor::{until, Floor, FloorSpec};

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Sum of the samples of `name` whose labels include every `labels` pair (`k="v"` text).
fn value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

pub(crate) fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (installed by scripts/services.sh): {e}"));
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check metrics refused the exposition:\n{said}\n---\n{text}");
}

fn documented_metrics() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/METRICS.md");
    let text = std::fs::read_to_string(path).expect("deploy/METRICS.md");
    text.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_job_shows_in_the_dialer_media_sip_and_agent_metrics() {
    let handle = telemetry::install("dialer").expect("the recorder installs");
    let (stop_tx, stop) = watch::channel(false);
    let answer = Behaviour::Answer { after_ms: 300, talk_ms: Some(1_200) };
    let busy = Behaviour::Fail { status: 486, after_ms: 200 };
    let rules = [answer, answer, answer, busy, busy, answer, answer, answer, answer, answer];
    let carrier = sim::carrier::start(
        LOCALHOST,
        CarrierConfig { by_last_digit: Some(rules), ..CarrierConfig::default() },
        stop.clone(),
    )
    .await
    .expect("carrier");
    let leads: Vec<String> = (0..10).map(|i| format!("03{:08}", 2000 + i)).collect();
    let spec = FloorSpec { agents: 2, leads, ..FloorSpec::default() };
    let floor = Floor::start(Backend::Sqlite, &spec, carrier.sip_addr).await;
    let _phones = crate::engine::phones(&floor, Duration::from_millis(200), &stop).await;
    // Garbage on the SIP port: a counted drop, not a transaction.
    let junk = UdpSocket::bind((LOCALHOST, 0)).expect("loopback bind");
    junk.send_to(b"this is not SIP\r\n\r\n", floor.info.sip_addrs[0]).expect("loopback send");
    floor.log_in_agents(None).await;
    until("agents ready", Duration::from_secs(10), || async { floor.agents_in("ready").await == 2 }).await;
    floor.start_job().await;
    let campaign = format!("campaign_id=\"{}\"", floor.campaign);
    let mut saw_in_flight = false;
    let mut saw_dial_level = false;
    until("the job finishes", Duration::from_secs(60), || {
        let text = handle.render();
        saw_in_flight |= value(&text, "kakeru_dialer_calls_in_flight", &[]) > 0.0;
        saw_dial_level |= value(&text, "kakeru_pacer_dial_level", &[&campaign]) > 0.0;
        async { floor.job_status().await == "finished" }
    })
    .await;
    assert!(saw_in_flight, "calls were in flight while the job ran");
    assert!(saw_dial_level, "the pacer's dial level showed for the campaign");
    // The shards and the control service flush about once a second.
    until("agents counted ready again", Duration::from_secs(10), || {
        let text = handle.render();
        async move { value(&text, "kakeru_control_agents", &["state=\"ready\""]) == 2.0 }
    })
    .await;
    until("the junk datagram counted", Duration::from_secs(5), || {
        let text = handle.render();
        async move { value(&text, "kakeru_sip_dropped_messages_total", &["reason=\"unparsable\""]) >= 1.0 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let text = handle.render();
    promtool_check(&text);
    let documented = documented_metrics();
    for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()) {
        assert!(documented.contains(name), "{name} is exposed but has no row in deploy/METRICS.md");
    }
    // Calls: 8 answered (no_entry: nobody saved a result), 2 busy.
    assert_eq!(value(&text, "kakeru_dialer_calls_total", &["result=\"no_entry\""]), 8.0, "{text}");
    assert_eq!(value(&text, "kakeru_dialer_calls_total", &["result=\"busy\""]), 2.0, "{text}");
    assert_eq!(value(&text, "kakeru_dialer_calls_in_flight", &[]), 0.0, "{text}");
    assert!(text.contains(&format!("kakeru_pacer_predicted_abandon_ratio{{{campaign}}}")), "{text}");
    // SIP: the customers' INVITEs by final class, the agents' REGISTERs, the BYEs.
    let tx = "kakeru_sip_transactions_total";
    assert!(value(&text, tx, &["method=\"INVITE\"", "class=\"2xx\""]) >= 8.0, "{text}");
    assert_eq!(value(&text, tx, &["method=\"INVITE\"", "class=\"4xx\""]), 2.0, "{text}");
    assert!(value(&text, tx, &["method=\"REGISTER\"", "class=\"2xx\""]) >= 2.0, "{text}");
    assert!(value(&text, tx, &["method=\"BYE\"", "class=\"2xx\""]) >= 8.0, "{text}");
    // Media: audio both ways through shard 0, jitter sampled per stream.
    let shard = "shard=\"0\"";
    for dir in ["direction=\"in\"", "direction=\"out\""] {
        assert!(value(&text, "kakeru_media_rtp_packets_total", &[shard, dir]) > 100.0, "{dir}: {text}");
        assert!(value(&text, "kakeru_media_rtp_bytes_total", &[shard, dir]) > 100.0 * 172.0, "{dir}: {text}");
    }
    assert!(text.contains("# TYPE kakeru_media_rtp_lost_packets_total counter"), "{text}");
    assert!(value(&text, "kakeru_media_rtp_jitter_seconds_count", &[shard]) >= 8.0, "{text}");
    // Control: agents per state over the whole floor, the lag of its groups (read at once here).
    assert_eq!(value(&text, "kakeru_control_agents", &[]), 2.0, "{text}");
    for stream in ["stream=\"commands\"", "stream=\"shard_events\""] {
        let series = |l: &&str| l.starts_with("kakeru_bus_stream_lag_entries{") && l.contains(stream);
        assert!(text.lines().any(|l| series(&l) && l.contains("group=\"control\"")), "{stream}: {text}");
    }
    floor.stop().await;
    let _ = stop_tx.send(true);
}
