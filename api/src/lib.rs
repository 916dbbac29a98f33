//! The admin API (axum): configuration of the outbound model, CSV lead import, records, and the
//! OpenAPI document that describes every endpoint.
//!
//! Layout: [`resource`] is the generic machinery, [`resources`] the specs of the outbound model,
//! [`custom`] the endpoints that are not plain records, [`import`] the CSV lead import,
//! [`openapi`] the document assembled from the same registrations that build the router.

pub mod agents;
pub mod auth;
pub mod callbacks;
pub mod conferences;
pub mod console;
pub mod custom;
pub mod desk;
pub mod error;
pub mod export;
pub mod extract;
pub mod guard;
pub mod import;
pub mod monitor;
pub mod notify;
pub mod openapi;
pub mod pages;
pub mod phone;
pub mod phonebook;
pub mod recordings;
pub mod reports;
pub mod resource;
pub mod resources;
pub mod serve;
pub mod sessions;
pub mod ui;
pub mod wallboard;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::{Json, Router};
use serde_json::Value;
use store::accounts::Role;
use store::Db;

use crate::auth::Auth;
use crate::extract::{Body, Id, Params};
use crate::resource::{Ctx, Spec};

#[derive(Debug, Clone)]
pub struct Config {
    /// The login limits and the bound on password verifications of this process.
    pub logins: guard::LoginGuard,
    /// The tenants' live wallboard feeds (written by the control service; see `wallboard`).
    pub wallboards: wallboard::Wallboards,
    /// Where commands for the control service go (see `agents`): the node's bus (Redis, or the
    /// in-process bus shared with the control services of the embedded default).
    pub commands: bus::Publisher,
    /// The agents' push channels of this process, fed by a follower of each tenant's
    /// `agent:events` (started by the node, see `desk::hub`).
    pub agents: desk::hub::AgentHub,
    /// Bearer sessions resolved in the last second (see `sessions`).
    pub sessions: sessions::SessionCache,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            logins: guard::LoginGuard::default(),
            wallboards: wallboard::Wallboards::default(),
            commands: bus::Publisher::new(bus::MemoryBus::default()),
            agents: desk::hub::AgentHub::default(),
            sessions: sessions::SessionCache::default(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    /// The OpenAPI document, serialized once at start.
    pub openapi: axum::body::Bytes,
    pub imports: import::Imports,
    /// The registry's operations (their roles decide what the console offers each role).
    pub ops: Arc<Vec<Op>>,
}

/// One documented operation; the router and the OpenAPI document are built from the same list.
#[derive(Debug, Clone)]
pub struct Op {
    pub method: &'static str,
    pub path: String,
    pub summary: String,
    pub tag: &'static str,
    /// `None`: no token needed.
    pub roles: Option<Vec<Role>>,
    pub request: Option<(&'static str, Value)>,
    pub response: (u16, &'static str, Value),
    pub errors: Vec<u16>,
    pub query: Vec<(String, Value, String)>,
}

#[derive(Default)]
pub struct Registry {
    pub router: Router<AppState>,
    pub ops: Vec<Op>,
}

impl Registry {
    pub fn add(&mut self, op: Op, handler: MethodRouter<AppState>) {
        let router = std::mem::take(&mut self.router);
        self.router = router.route(&op.path, handler);
        self.ops.push(op);
    }
}

fn ctx(st: AppState, auth: Auth) -> Ctx {
    Ctx { st, auth }
}

/// Mounts list/get/create/update/delete for one resource spec.
pub fn mount(reg: &mut Registry, spec: &'static Spec) {
    let item = format!("{}/{{id}}", spec.path);
    reg.add(
        openapi::list_op(spec),
        get(move |State(st): State<AppState>, auth: Auth, p: Params| async move {
            resource::list(&ctx(st, auth), spec, &p).await.map(Json)
        }),
    );
    if spec.creatable {
        reg.add(
            openapi::create_op(spec),
            post(move |State(st): State<AppState>, auth: Auth, Body(b): Body<Value>| async move {
                resource::create(&ctx(st, auth), spec, b).await.map(|(s, v)| (s, Json(v)))
            }),
        );
    }
    reg.add(
        openapi::get_op(spec, &item),
        get(move |State(st): State<AppState>, auth: Auth, Id(id): Id| async move {
            resource::get(&ctx(st, auth), spec, id).await.map(Json)
        }),
    );
    if spec.updatable {
        reg.add(
            openapi::update_op(spec, &item),
            patch(move |State(st): State<AppState>, auth: Auth, Id(id): Id, Body(b): Body<Value>| async move {
                resource::update(&ctx(st, auth), spec, id, b).await.map(Json)
            }),
        );
    }
    if !spec.delete.is_empty() {
        reg.add(
            openapi::delete_op(spec, &item),
            delete(move |State(st): State<AppState>, auth: Auth, Id(id): Id| async move {
                resource::delete(&ctx(st, auth), spec, id).await
            }),
        );
    }
}

fn registry() -> Registry {
    let mut reg = Registry::default();
    describe_metrics();
    custom::mount_auth(&mut reg);
    for spec in resources::ALL_SPECS {
        mount(&mut reg, spec);
    }
    custom::mount(&mut reg);
    import::mount(&mut reg);
    wallboard::mount(&mut reg);
    recordings::mount(&mut reg);
    agents::mount(&mut reg);
    console::mount(&mut reg);
    export::mount(&mut reg);
    reports::mount(&mut reg);
    desk::mount(&mut reg);
    phonebook::mount(&mut reg);
    callbacks::mount(&mut reg);
    phone::mount(&mut reg);
    monitor::mount(&mut reg);
    conferences::mount(&mut reg);
    reg
}

/// Every documented operation (what the router serves), for tests and tools.
pub fn operations() -> Vec<Op> {
    registry().ops
}

/// The whole API.
pub fn build(db: Db, config: Config) -> Router {
    // Idempotent; the binary installs it first with its role's name.
    if let Err(e) = telemetry::install("api") {
        tracing::warn!(error = %e, "metrics are off");
    }
    telemetry::spawn_upkeep();
    let reg = registry();
    let doc = openapi::document(&reg.ops);
    // Serializing a serde_json::Value cannot fail (its map keys are strings).
    let openapi = axum::body::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let state =
        AppState { db, config: Arc::new(config), openapi, imports: import::Imports::default(), ops: Arc::new(reg.ops) };
    reg.router
        .route(
            "/openapi.json",
            get(|State(st): State<AppState>| async move {
                ([(axum::http::header::CONTENT_TYPE, "application/json")], st.openapi.clone())
            }),
        )
        .route("/docs", get(openapi::docs_page))
        .route("/healthz", get(|| async { "ok" }))
        .merge(telemetry::router())
        .merge(ui::router())
        .merge(pages::router())
        .fallback(|| async { error::ApiError::not_found() })
        .layer(axum::middleware::from_fn(telemetry::http::track))
        .with_state(state)
}

/// Serves the API with the default connection limits ([`serve::ServeLimits`]) until the future
/// `shutdown` completes; open connections then get a bounded grace period.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve::serve_with(listener, app, serve::ServeLimits::default(), shutdown).await
}

/// Help texts of the API's own metrics (the exposition must carry one for each; promtool checks).
fn describe_metrics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!("kakeru_logins_total", "Logins by outcome: ok, failed (wrong login or password), locked (the account is locked).");
        metrics::describe_counter!("kakeru_login_lockouts_total", "Accounts locked after repeated wrong passwords (ログインロック).");
        metrics::describe_counter!(
            "kakeru_login_refused_total",
            "Logins refused before any password check, by limit: source (address), account, busy (verifications at their bound)."
        );
        metrics::describe_counter!(
            "kakeru_http_connections_refused_total",
            "Connections closed at accept because their source address holds its cap of open connections."
        );
        metrics::describe_counter!(
            "kakeru_api_dialer_notices_failed_total",
            "Notices to the dialers (jobs or phones changed) that could not be published; the dialers reconcile within a minute."
        );
    });
}
