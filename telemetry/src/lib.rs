//! Prometheus metrics for every kakeru role, in one place.
//!
//! - [`install`] installs the process-wide `metrics` recorder (metrics-exporter-prometheus) once and
//!   returns its handle; every role calls it at start (it is idempotent, so tests and the embedded
//!   default may call it as often as they like).
//! - [`router`] is the `GET /metrics` endpoint (text exposition format 0.0.4); the API mounts it on
//!   its own listener, the roles without an HTTP listener serve it with [`serve`] on
//!   `--metrics-listen ADDR`.
//! - [`http`] is the axum middleware that counts HTTP requests by route template and status class
//!   and times them.
//!
//! Names follow the Prometheus conventions (`kakeru_<area>_<what>_<unit>`, base units, counters end in
//! `_total`) and are documented in `deploy/METRICS.md`. Every metric whose name ends in `_seconds` is
//! a histogram with the buckets of [`SECONDS_BUCKETS`].

pub mod http;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets (seconds) for every `*_seconds` metric: 1 ms to 30 s.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often histograms are compacted when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The content type of the text exposition format.
pub const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("metrics recorder: {0}")]
    Build(#[from] metrics_exporter_prometheus::BuildError),
    #[error("another metrics recorder is already installed in this process")]
    RecorderTaken,
    #[error("metrics listener on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (first call) and returns its handle. `role` is the
/// `kakeru_build_info{role=...}` label of this process (the first caller's is kept).
pub fn install(role: &str) -> Result<PrometheusHandle, TelemetryError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), SECONDS_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    // Two threads racing here: the loser's recorder is dropped and it gets the winner's handle.
    if HANDLE.set(handle.clone()).is_err() {
        return HANDLE.get().cloned().ok_or(TelemetryError::RecorderTaken);
    }
    metrics::set_global_recorder(recorder).map_err(|_| TelemetryError::RecorderTaken)?;
    describe_process(role);
    http::describe();
    Ok(handle)
}

/// The installed handle, installing the recorder for an unnamed role if nothing did yet.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned().or_else(|| install("unknown").ok())
}

fn describe_process(role: &str) {
    metrics::describe_gauge!("kakeru_build_info", "Always 1; the labels say which version of kakeru runs which role.");
    metrics::gauge!("kakeru_build_info", "version" => env!("CARGO_PKG_VERSION"), "role" => role.to_owned()).set(1.0);
}

/// Counts one thing in a gauge while the guard lives (an open request, an open stream): +1 now, -1
/// when dropped, also when the future holding it is dropped half-way.
#[derive(Debug)]
pub struct GaugeGuard(&'static str);

impl GaugeGuard {
    pub fn new(gauge: &'static str) -> Self {
        metrics::gauge!(gauge).increment(1.0);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// `GET /metrics` over the installed recorder.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/metrics", get(render))
}

async fn render() -> impl axum::response::IntoResponse {
    let body = handle().map(|h| h.render()).unwrap_or_default();
    ([(CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)], body)
}

/// Keeps histograms compact between scrapes (the exporter's upkeep); one task per process.
/// Outside a tokio runtime it does nothing (scrapes compact them too).
pub fn spawn_upkeep() {
    static STARTED: OnceLock<()> = OnceLock::new();
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    if STARTED.set(()).is_err() {
        return;
    }
    rt.spawn(async {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            if let Some(h) = HANDLE.get() {
                h.run_upkeep();
            }
        }
    });
}

/// Serves `GET /metrics` on `addr` (`--metrics-listen`) until the process ends; returns the bound
/// address (port 0 picks a free one).
pub async fn serve(addr: &str) -> Result<SocketAddr, TelemetryError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Listen { addr: addr.to_owned(), source })?;
    let local = listener.local_addr().map_err(|source| TelemetryError::Listen { addr: addr.to_owned(), source })?;
    spawn_upkeep();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router::<()>()).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(local)
}
