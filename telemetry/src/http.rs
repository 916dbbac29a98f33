//! HTTP request metrics as an axum middleware: add it with
//! `Router::layer(axum::middleware::from_fn(telemetry::http::track))`
//! after the routes (so the matched route template is known).
//!
//! - `kakeru_http_requests_total{method, route, status_class}` (counter)
//! - `kakeru_http_request_duration_seconds{method, route}` (histogram, until the response head)
//! - `kakeru_http_requests_in_flight` (gauge)
//!
//! `route` is the route template (`/campaigns/{id}`), never the concrete path, so the label set is
//! bounded by the router; a request that matched no route is `route="unmatched"`. `method` is one of
//! the standard methods or `other`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

pub const REQUESTS_TOTAL: &str = "kakeru_http_requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "kakeru_http_request_duration_seconds";
pub const REQUESTS_IN_FLIGHT: &str = "kakeru_http_requests_in_flight";

pub(crate) fn describe() {
    metrics::describe_counter!(REQUESTS_TOTAL, "HTTP requests answered, by method, route template and status class.");
    metrics::describe_histogram!(
        REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from the request to the response head, by method and route template."
    );
    metrics::describe_gauge!(REQUESTS_IN_FLIGHT, "HTTP requests being handled now.");
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `2xx`, `4xx`, ...
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The middleware: `router.layer(axum::middleware::from_fn(telemetry::http::track))`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let _in_flight = crate::GaugeGuard::new(REQUESTS_IN_FLIGHT);
    let resp = next.run(req).await;
    let class = status_class(resp.status().as_u16());
    metrics::counter!(REQUESTS_TOTAL, "method" => method, "route" => route.clone(), "status_class" => class)
        .increment(1);
    metrics::histogram!(REQUEST_DURATION_SECONDS, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}
