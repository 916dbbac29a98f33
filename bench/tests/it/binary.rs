//! `kakeru-bench media` as a capacity planner runs it: a short relayed run beside the
//! generator's own ceiling (`--peer loopback`), its JSON read back, and a wrong flag refused.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kakeru-bench"))
        .arg("media")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("kakeru-bench media")
}

#[test]
fn media_bench_relays_through_the_shard_and_reports_the_generator_ceiling_beside_it() {
    let out = bench(&["--calls", "40", "--seconds", "1", "--json", "--peer", "loopback"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    // 40 calls, two directions, 50 packets a second, one second.
    for (name, run) in [("kakeru", &v["kakeru"]), ("loopback", &v["peer"])] {
        let n = |k: &str| run[k].as_u64().unwrap_or_else(|| panic!("{name}: no {k} in {run}"));
        assert_eq!(n("calls"), 40, "{name}");
        assert_eq!(n("scheduled"), 4000, "{name}");
        assert_eq!(n("sent"), 4000, "{name}: the generator kept its schedule at 40 calls");
        assert_eq!(n("received") + n("lost"), n("sent"), "{name}: every packet counted once");
        assert!(n("received") >= 3960, "{name}: at most 1 % lost at 40 calls, {run}");
        assert_eq!(n("duplicates"), 0, "{name}");
        assert!(
            n("latency_p50_us") <= n("latency_p99_us") && n("latency_p99_us") <= n("latency_max_us"),
            "{name}: {run}"
        );
    }
    assert_eq!(v["peer"]["name"], "loopback");
    assert!(v["kakeru"]["relay"].as_str().is_some_and(|r| r.starts_with("kakeru")), "{v}");
    assert!(v["kakeru"]["relay_cpu_pct"].as_f64().is_some_and(|c| c > 0.0), "the shard's CPU is measured: {v}");
}

#[test]
fn media_bench_refuses_a_wrong_flag_by_name() {
    let out = bench(&["--calls", "0", "--seconds", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--calls"), "{err}");
    let out = bench(&["--peer", "asterisk"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--peer") && err.contains("rtpengine") && err.contains("loopback"), "{err}");
}

/// `kakeru-bench webrtc`: browser peers (str0m: ICE, DTLS-SRTP) connect to the shard and their
/// calls relay beside plain RTP legs in the same run, each direction counted, the shard's CPU
/// per call set against the RTP legs'.
#[test]
fn webrtc_bench_relays_browser_legs_beside_rtp_legs() {
    let legs = if media::voice::opus_available() { "rtp,pcmu,opus" } else { "rtp,pcmu" };
    let out = Command::new(env!("CARGO_BIN_EXE_kakeru-bench"))
        .args(["webrtc", "--calls", "10", "--seconds", "1", "--json", "--legs", legs])
        .env("RUST_LOG", "warn")
        .output()
        .expect("kakeru-bench webrtc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), legs.split(',').count(), "{v}");
    for run in runs {
        let kind = run["legs"].as_str().expect("legs");
        for dir in ["agent_to_customer", "customer_to_agent"] {
            let n = |k: &str| run[dir][k].as_u64().unwrap_or_else(|| panic!("{kind} {dir}: no {k} in {run}"));
            // 10 calls, 50 frames a second, one second.
            assert_eq!(n("sent"), 500, "{kind} {dir}");
            assert_eq!(n("received") + n("lost"), n("sent"), "{kind} {dir}: every frame counted once");
            assert!(n("received") >= 450, "{kind} {dir}: the shard relays the frames: {run}");
            assert_eq!(n("duplicates"), 0, "{kind} {dir}");
            assert!(n("latency_p50_us") <= n("latency_p99_us"), "{kind} {dir}: {run}");
        }
        assert!(run["relay_cpu_pct"].as_f64().is_some_and(|c| c > 0.0), "{kind}: the shard's CPU: {run}");
        if kind != "rtp" {
            assert!(run["connect_ms"].as_u64().is_some_and(|ms| ms > 0), "{kind}: the browsers connected: {run}");
        }
    }
    assert_eq!(v["cpu_per_call_ratio_to_rtp"]["rtp"], 1.0, "{v}");
    assert!(v["cpu_per_call_ratio_to_rtp"]["pcmu"].as_f64().is_some_and(|r| r > 0.0), "{v}");
}
