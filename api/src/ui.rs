//! The supervisors' wallboard page (SPEC 6), served by the API itself: `GET /ui/wallboard` and its
//! script and style, embedded in the binary (nothing fetched from elsewhere at run time, no CDN).
//!
//! The page holds no data and needs no token to load: it logs in with `POST /auth/login` (the bearer
//! token is kept in `sessionStorage`), reads names and pause-reason colours from the API, and follows
//! `GET /wallboard/stream` through an `EventSource` opened with a single-use ticket
//! (`POST /wallboard/tickets`, see `wallboard`). Every figure it shows comes from endpoints whose roles
//! the server checks (BIZ and BY get 403 and the page says so; OP sees only their own tile).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const HTML: &str = include_str!("ui/wallboard.html");
const JS: &str = include_str!("ui/wallboard.js");
const CSS: &str = include_str!("ui/wallboard.css");

/// Only our own script, style and API; no framing, no referrer.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

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

/// `/ui/wallboard` and its assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/wallboard") }))
        .route("/ui/wallboard", get(|| async { asset("text/html; charset=utf-8", HTML) }))
        .route("/ui/wallboard.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/ui/wallboard.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
}
