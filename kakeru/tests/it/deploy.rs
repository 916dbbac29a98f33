//! The files of deploy/ are valid for the tools that read them: promtool for the Prometheus
//! configuration and rules, systemd-analyze for the units, a real redis-server for the Redis
//! configuration, and the Grafana dashboard charts only documented metrics.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::process::run;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The metric names with a row in deploy/METRICS.md.
pub fn documented_metrics() -> BTreeSet<String> {
    let text = std::fs::read_to_string(deploy().join("METRICS.md")).expect("deploy/METRICS.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("kakeru_"))
        .map(str::to_owned)
        .collect()
}

/// `kakeru_...` names in a PromQL expression, histogram series suffixes taken off.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("kakeru_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
        out.push(base.to_owned());
    }
    out
}

#[test]
fn prometheus_config_and_rules_pass_promtool() {
    let cfg = deploy().join("prometheus/prometheus.yml");
    let (ok, out) = run("promtool", &["check", "config", cfg.to_str().expect("path")], None);
    assert!(ok, "{out}");
    assert!(out.contains("rule files found") && out.contains("rules found"), "the alert rules are checked: {out}");
    for job in ["kakeru-api", "kakeru-control", "kakeru-media"] {
        let text = std::fs::read_to_string(&cfg).expect("prometheus.yml");
        assert!(text.contains(&format!("job_name: {job}")), "a scrape job for {job}");
    }
    let rules = std::fs::read_to_string(deploy().join("prometheus/kakeru-alerts.yml")).expect("rules");
    let documented = documented_metrics();
    for m in metrics_in(&rules) {
        assert!(documented.contains(&m), "{m} is alerted on but has no row in deploy/METRICS.md");
    }
    // A full recordings disk pages someone: the calls go on unrecorded until it is fixed.
    assert!(rules.contains("alert: KakeruRecordingsFailing") && rules.contains("kakeru_media_recording_errors_total"));
}

#[test]
fn grafana_dashboard_charts_documented_metrics() {
    let text = std::fs::read_to_string(deploy().join("grafana/kakeru.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dash["uid"], "kakeru-overview");
    let documented = documented_metrics();
    let mut charted = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        assert!(ids.insert(p["id"].as_i64().expect("panel id")), "panel ids are unique");
        for t in p["targets"].as_array().into_iter().flatten() {
            for m in metrics_in(t["expr"].as_str().expect("expr")) {
                assert!(documented.contains(&m), "{m} is charted but has no row in deploy/METRICS.md");
                charted.insert(m);
            }
        }
    }
    for m in &documented {
        assert!(charted.contains(m), "{m} is documented but no panel charts it");
    }
}

/// The media hosts' sysctls let the dialer's SIP socket have the buffers it asks for.
#[test]
fn the_sysctls_allow_the_sip_socket_buffers() {
    let text = std::fs::read_to_string(deploy().join("sysctl/90-kakeru.conf")).expect("deploy/sysctl/90-kakeru.conf");
    for key in ["net.core.rmem_max", "net.core.wmem_max"] {
        let value: usize = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} is set"));
        assert!(value >= dialer::engine::shard::SIP_SOCKET_BUFFER, "{key} = {value}");
    }
    let readme = std::fs::read_to_string(deploy().join("README.md")).expect("README");
    assert!(readme.contains("sysctl/90-kakeru.conf"), "deploy/README.md says where the sysctls go");
}

#[test]
fn systemd_units_verify() {
    assert!(run("systemd-analyze", &["--version"], None).0, "systemd-analyze is installed (Debian's systemd)");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units = Vec::new();
    for role in ["api", "control", "media"] {
        let name = format!("kakeru-{role}.service");
        let text = std::fs::read_to_string(deploy().join("systemd").join(&name)).expect("unit");
        assert!(text.contains(&format!("EnvironmentFile=/etc/kakeru/{role}.env")), "{name} reads {role}.env");
        assert!(deploy().join(format!("env/{role}.env.example")).exists(), "env/{role}.env.example");
        // The unit names the installed binary; verify it against the one just built.
        let text = text.replace("/usr/local/bin/kakeru", env!("CARGO_BIN_EXE_kakeru"));
        let path = dir.path().join(&name);
        std::fs::write(&path, text).expect("write unit");
        units.push(path.to_str().expect("path").to_owned());
    }
    let mut args = vec!["verify".to_owned()];
    args.extend(units);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = run("systemd-analyze", &args, None);
    assert!(ok && out.trim().is_empty(), "systemd-analyze verify: {out}");
}

#[test]
fn redis_starts_with_the_bus_persistence() {
    let conf = deploy().join("redis/kakeru-redis.conf");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let port_s = port.to_string();
    let d = dir.path().to_str().expect("dir");
    let mut child = std::process::Command::new("redis-server")
        .args([conf.to_str().expect("conf"), "--port", &port_s, "--dir", d, "--daemonize", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (installed by scripts/services.sh)");
    let cli = |args: &[&str]| {
        let mut a = vec!["-h", "127.0.0.1", "-p", &port_s];
        a.extend_from_slice(args);
        run("redis-cli", &a, None).1
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cli(&["ping"]).trim() != "PONG" {
        assert!(std::time::Instant::now() < deadline, "redis-server did not start with kakeru-redis.conf");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let appendonly = cli(&["config", "get", "appendonly"]);
    let policy = cli(&["config", "get", "maxmemory-policy"]);
    let fsync = cli(&["config", "get", "appendfsync"]);
    let _ = cli(&["shutdown", "nosave"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(appendonly.contains("yes"), "{appendonly}");
    assert!(policy.contains("noeviction"), "{policy}");
    assert!(fsync.contains("everysec"), "{fsync}");
}

/// The PostgreSQL settings file, as the test server (where `scripts/services.sh` installs it) read
/// it: every setting in the file parsed and applied, none refused.
#[test]
fn postgresql_applies_the_kakeru_settings() {
    let conf = std::fs::read_to_string(deploy().join("postgresql/kakeru-postgresql.conf")).expect("conf");
    let want: BTreeSet<(String, String)> = conf
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("name = value");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    assert!(!want.is_empty(), "no settings in kakeru-postgresql.conf");
    let url =
        std::env::var("KAKERU_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (ok, out) = run(
        "psql",
        &[
            &url,
            "-tA",
            "-F",
            "|",
            "-c",
            "SELECT name, setting, applied, COALESCE(error, '') FROM pg_file_settings
             WHERE sourcefile LIKE '%/kakeru-postgresql.conf'",
        ],
        None,
    );
    assert!(ok, "psql: {out}");
    let mut got = BTreeSet::new();
    for row in out.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = row.split('|').collect();
        assert_eq!(f.len(), 4, "{row}");
        assert_eq!((f[2], f[3]), ("t", ""), "{}: not applied by the server ({row})", f[0]);
        got.insert((f[0].to_string(), f[1].to_string()));
    }
    assert_eq!(got, want, "the server's kakeru-postgresql.conf is not this one: run scripts/services.sh");
}
