//! The people's pages besides the wallboard, served by the API from the binary like it (nothing
//! to build, nothing fetched from elsewhere, the wallboard's Content-Security-Policy):
//!
//! - `/`: the login page (tenant, login ID, password); each role goes to its home: OP to the agent
//!   desktop, SV to the wallboard, MGR to the admin console (`/ui/admin`), BIZ and BY to the
//!   reports (`/ui/reports`).
//! - `/ui/agent`: the agent desktop (SPEC 12): the call jobs, the waiting screen, the screen pop,
//!   the wrap-up form, the list modes, the recall list, presence. It works through the agents'
//!   endpoints with the agent's own token and follows `GET /agent/stream` (see `desk`). Its browser
//!   phone (ブラウザフォン, `ui/phone.js`, an ES module) is the agent's WebRTC leg (see `phone`).

use axum::routing::get;
use axum::Router;

use crate::ui::asset;

const LOGIN_HTML: &str = include_str!("ui/login.html");
const LOGIN_JS: &str = include_str!("ui/login.js");
const LOGIN_CSS: &str = include_str!("ui/login.css");
const AGENT_HTML: &str = include_str!("ui/agent.html");
const AGENT_JS: &str = include_str!("ui/agent.js");
const AGENT_CSS: &str = include_str!("ui/agent.css");
const PHONE_JS: &str = include_str!("ui/phone.js");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `/` (login) and `/ui/agent` (the agent desktop) with their assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset(HTML, LOGIN_HTML) }))
        .route("/ui/login.js", get(|| async { asset(JS, LOGIN_JS) }))
        .route("/ui/login.css", get(|| async { asset(CSS, LOGIN_CSS) }))
        .route("/ui/agent", get(|| async { asset(HTML, AGENT_HTML) }))
        .route("/ui/agent.js", get(|| async { asset(JS, AGENT_JS) }))
        .route("/ui/agent.css", get(|| async { asset(CSS, AGENT_CSS) }))
        .route("/ui/phone.js", get(|| async { asset(JS, PHONE_JS) }))
}
