//! Every role serves Prometheus metrics: the exposition of a running `kakeru api` passes
//! `promtool check metrics`, and its HTTP metrics count exactly the requests this test made.

use std::collections::BTreeMap;

use crate::process::{api, run, Role};

/// One sample of the text exposition: name, labels, value.
#[derive(Debug)]
pub struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
                (k.to_string(), v.trim_end_matches('"').to_string())
            })
            .collect();
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

fn promtool_check(text: &str) {
    let (ok, out) = run("promtool", &["check", "metrics"], Some(text.as_bytes()));
    assert!(ok, "promtool check metrics refused the exposition:\n{out}\n---\n{text}");
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let r = http.get(format!("{base}/metrics")).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().expect("content type").to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.expect("body")
}

#[tokio::test]
async fn api_exposition_passes_promtool_and_counts_the_requests_made() {
    let (mut p, base, password) = api(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics_base = p.url_after("metrics on");
    let http = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(http.get(format!("{base}/healthz")).send().await.expect("healthz").status(), 200);
    }
    let login = serde_json::json!({"tenant": "demo", "login": "admin", "password": password});
    let r = http.post(format!("{base}/auth/login")).json(&login).send().await.expect("login");
    assert_eq!(r.status(), 200);
    let token = r.json::<serde_json::Value>().await.expect("json")["token"].as_str().expect("token").to_string();
    let bad = serde_json::json!({"tenant": "demo", "login": "admin", "password": "wrong-password"});
    assert_eq!(http.post(format!("{base}/auth/login")).json(&bad).send().await.expect("login").status(), 401);
    for id in [987_654, 987_655] {
        let r = http.get(format!("{base}/campaigns/{id}")).bearer_auth(&token).send().await.expect("get");
        assert_eq!(r.status(), 404);
    }
    assert_eq!(http.get(format!("{base}/no/such/path")).send().await.expect("unmatched").status(), 404);

    let text = scrape(&http, &base).await;
    promtool_check(&text);
    let s = parse(&text);
    let total = "kakeru_http_requests_total";
    let get = |route, class| value(&s, total, &[("method", "GET"), ("route", route), ("status_class", class)]);
    assert_eq!(get("/healthz", "2xx"), 3.0, "{text}");
    assert_eq!(get("/campaigns/{id}", "4xx"), 2.0, "route templates, not paths: {text}");
    assert_eq!(get("unmatched", "4xx"), 1.0, "{text}");
    let post = |class| value(&s, total, &[("method", "POST"), ("route", "/auth/login"), ("status_class", class)]);
    assert_eq!((post("2xx"), post("4xx")), (1.0, 1.0), "{text}");
    let count = "kakeru_http_request_duration_seconds_count";
    assert_eq!(value(&s, count, &[("method", "GET"), ("route", "/healthz")]), 3.0, "{text}");
    assert!(
        text.contains("kakeru_http_request_duration_seconds_bucket{"),
        "the latency is a histogram with buckets: {text}"
    );
    assert_eq!(value(&s, "kakeru_build_info", &[("role", "api")]), 1.0, "{text}");
    assert!(!s.iter().any(|x| x.name == total && x.labels["route"].contains("987654")), "no concrete path as label");

    // The same registry on --metrics-listen; this scrape of /metrics on the API listener now counts.
    // Every metric the process exposes is documented.
    let documented = crate::deploy::documented_metrics();
    for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()) {
        assert!(documented.contains(name), "{name} is exposed but has no row in deploy/METRICS.md");
    }

    let text2 = scrape(&http, &metrics_base).await;
    promtool_check(&text2);
    let s2 = parse(&text2);
    let m = value(&s2, total, &[("method", "GET"), ("route", "/metrics"), ("status_class", "2xx")]);
    assert_eq!(m, 1.0, "{text2}");
}

#[tokio::test]
async fn control_serves_metrics_on_metrics_listen() {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut p = Role::start(
        &["control", "--metrics-listen", "127.0.0.1:0", "--consumer", "metrics-test"],
        &[("REDIS_URL", &redis)],
    );
    let base = p.url_after("metrics on");
    let text = scrape(&reqwest::Client::new(), &base).await;
    promtool_check(&text);
    assert_eq!(value(&parse(&text), "kakeru_build_info", &[("role", "control")]), 1.0, "{text}");
    let r = reqwest::get(format!("{base}/other")).await.expect("other path");
    assert_eq!(r.status(), 404, "the metrics listener serves /metrics only");
}
