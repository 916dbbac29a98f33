//! The pages the API serves itself, embedded in the binary (nothing fetched from elsewhere at run
//! time, no CDN, no build step): the supervisors' wallboard (SPEC 6, `GET /ui/wallboard`) and the
//! admin console (SPEC 12, `GET /ui/admin`), with their scripts and style sheets, and the figure
//! definitions both show (`/ui/figures.js`).
//!
//! The pages hold no data and need no token to load: they log in with `POST /auth/login` (the
//! bearer token is kept in `sessionStorage`), and every figure and record comes from endpoints
//! whose roles the server checks. Live data comes through `EventSource`s opened with single-use
//! stream tickets (see `wallboard`). The console builds its screens from `GET /console/specs`.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const HTML: &str = include_str!("ui/wallboard.html");
const JS: &str = include_str!("ui/wallboard.js");
const CSS: &str = include_str!("ui/wallboard.css");
const FIGURES: &str = include_str!("ui/figures.js");

/// The console's page, style sheet and ES modules.
const CONSOLE_HTML: &str = include_str!("ui/console.html");
const CONSOLE_CSS: &str = include_str!("ui/console.css");
const CONSOLE_MODULES: &[(&str, &str)] = &[
    ("main.js", include_str!("ui/console/main.js")),
    ("core.js", include_str!("ui/console/core.js")),
    ("api.js", include_str!("ui/console/api.js")),
    ("i18n.js", include_str!("ui/console/i18n.js")),
    ("generic.js", include_str!("ui/console/generic.js")),
    ("sections.js", include_str!("ui/console/sections.js")),
    ("imports.js", include_str!("ui/console/imports.js")),
    ("monitor.js", include_str!("ui/console/monitor.js")),
    ("records.js", include_str!("ui/console/records.js")),
    ("callbacks.js", include_str!("ui/console/callbacks.js")),
    ("reports.js", include_str!("ui/console/reports.js")),
];

/// Only our own script, style and API; no framing, no referrer. The console plays recordings it
/// fetched with the bearer token from `blob:` URLs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; media-src 'self' blob:; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

const JS_TYPE: &str = "text/javascript; charset=utf-8";

/// `/ui/wallboard`, `/ui/admin` and their assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/wallboard") }))
        .route("/ui/wallboard", get(|| async { asset("text/html; charset=utf-8", HTML) }))
        .route("/ui/wallboard.js", get(|| async { asset(JS_TYPE, JS) }))
        .route("/ui/wallboard.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/ui/figures.js", get(|| async { asset(JS_TYPE, FIGURES) }))
        .route("/ui/admin", get(|| async { asset("text/html; charset=utf-8", CONSOLE_HTML) }))
        .route("/ui/admin/", get(|| async { Redirect::permanent("/ui/admin") }))
        // The reports are a section of the console: BIZ's and BY's home, and the console's link.
        .route("/ui/reports", get(|| async { asset("text/html; charset=utf-8", CONSOLE_HTML) }))
        .route("/ui/admin/console.css", get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }));
    for (name, body) in CONSOLE_MODULES {
        r = r.route(&format!("/ui/admin/{name}"), get(move || async move { asset(JS_TYPE, body) }));
    }
    r
}
