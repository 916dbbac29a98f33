//! The live wallboard (SPEC 6): `GET /wallboard` (a snapshot) and `GET /wallboard/stream`
//! (server-sent events), both over the tenant's [`wallboard::Feed`].
//!
//! Stream protocol: every event has an `id` (the feed sequence number). `event: snapshot` carries
//! the whole board (`{"seq", "agents", "campaigns", "groups", "tenant"}`); `event: change` carries one
//! tile replaced whole (`{"seq", "at_ms", "tile": "agent" | "campaign" | "group" | "tenant", ...}`).
//! Sequence numbers are the control service's (they increase but may jump, e.g. across a restart of
//! control), the same in every API process. A client reconnecting with `Last-Event-ID`
//! (or `?last_event_id=`) gets the changes after that id when the replay ring still holds them,
//! else a fresh snapshot. A client too slow for its bounded buffer (4,096 changes) is skipped to a
//! fresh snapshot instead of buffering without bound. Keep-alive comments every 15 s. A request
//! that does not accept `text/event-stream` (not an EventSource) gets the start (snapshot or
//! replay) and the end of the stream, so plain HTTP clients and sweeps never hang on it.
//!
//! Remaining leads: `GET /wallboard` counts them in the database (open leads of the running call
//! jobs' lists never dialled); a `change` carries the dialer's own figure when it reports one, else
//! `null` (keep the last value).
//!
//! Where the feed comes from: in one process (the embedded default) the control services write the
//! API's feeds directly; with control in another process, `wallboard::mirror::follow` keeps
//! each feed in step with control's mirror on Redis (started by the node, see `kakeru::node`).
//!
//! Roles: MGR and SV see every tile; OP sees only their own agent tile; BIZ and BY get 403.
//!
//! Authentication of the stream: a browser's `EventSource` cannot send an `Authorization` header,
//! and a bearer token in a URL would end up in access logs and browser history for its whole 12 h
//! life. So the stream also accepts `?ticket=`: a ticket from `POST /wallboard/tickets` (bearer
//! authenticated, same roles) is single-use, lives 30 s, stands for the session that asked for it
//! (and dies with it at logout), and is stored only as a hash (`store::stream_tickets`), so any API
//! host can redeem it. The role and tenant checks run on the ticket's session exactly as for a bearer.
//! A page whose stream drops asks for a new ticket and reconnects with `last_event_id` (an
//! EventSource's own retry would reuse the spent ticket and be refused with 401).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Json;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use store::accounts::Role;
use tokio::sync::broadcast::error::RecvError;
use wallboard::{Change, Feed, FeedLimits, Push, Snapshot, Start, Tile};

use crate::auth::{bearer, Auth};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, Op, Registry};

/// Most tenants whose feeds one API process holds.
const MAX_TENANTS: usize = 10_000;

const ROLES: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];

const STREAM_CLIENTS: &str = "kakeru_wallboard_stream_clients";
const TICKETS_TOTAL: &str = "kakeru_wallboard_stream_tickets_total";

fn describe_metrics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(STREAM_CLIENTS, "Open wallboard SSE streams in this API process.");
        metrics::describe_counter!(
            TICKETS_TOTAL,
            "Wallboard stream tickets by result: issued, redeemed, refused (unknown, used or expired)."
        );
    });
}

fn count_ticket(result: &'static str) {
    metrics::counter!(TICKETS_TOTAL, "result" => result).increment(1);
}

/// The caller of the stream: a bearer token, or else a stream ticket in `?ticket=`.
pub(crate) struct StreamAuth(pub(crate) Auth);

impl FromRequestParts<AppState> for StreamAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if bearer(&parts.headers).is_some() {
            return Auth::from_request_parts(parts, state).await.map(StreamAuth);
        }
        let query = parts.uri.query().unwrap_or("");
        let ticket = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "ticket").map(|(_, v)| v));
        let Some(ticket) = ticket.filter(|t| !t.is_empty() && t.len() <= 256) else {
            return Err(ApiError::unauthorized());
        };
        match store::stream_tickets::redeem(&state.db, &ticket, store::now_ms()).await? {
            Some(p) => {
                count_ticket("redeemed");
                Ok(StreamAuth(Auth(p)))
            }
            None => {
                count_ticket("refused");
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the stream ticket is unknown, already used or expired: ask POST /wallboard/tickets for a new one",
                )
                .with_field("ticket"))
            }
        }
    }
}

/// `POST /wallboard/tickets`: a single-use ticket for `GET /wallboard/stream?ticket=`.
pub(crate) async fn ticket(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    scope(&auth)?;
    issue_ticket(&st, &auth, &headers).await
}

/// `POST /stream-tickets`: the same ticket for any of the caller's streams (an import's progress);
/// each stream checks the ticket's session's role as it would a bearer's.
async fn any_ticket(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    issue_ticket(&st, &auth, &headers).await
}

async fn issue_ticket(
    st: &AppState,
    auth: &Auth,
    headers: &HeaderMap,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    let now = store::now_ms();
    match store::stream_tickets::issue(&st.db, token, auth.tenant(), now).await? {
        Ok((ticket, expires_at)) => {
            count_ticket("issued");
            Ok((
                StatusCode::CREATED,
                Json(json!({
                    "ticket": ticket,
                    "expires_at": store::tenancy::local_rfc3339(auth.tz(), expires_at),
                    "expires_in_ms": expires_at - now,
                })),
            ))
        }
        Err(store::stream_tickets::IssueRefused::TooMany) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tickets",
            format!(
                "this session holds {} unused stream tickets: use one or wait 30 s",
                store::stream_tickets::MAX_LIVE_PER_SESSION
            ),
        )),
    }
}

/// The wallboard feeds of the tenants, shared by the API and, in the embedded default, the control
/// services running in the same process (each writes its tenant's feed).
#[derive(Clone, Debug, Default)]
pub struct Wallboards {
    feeds: Arc<RwLock<HashMap<u64, Arc<Feed>>>>,
}

impl Wallboards {
    /// The tenant's feed (created empty on first use). `None` past [`MAX_TENANTS`].
    pub fn feed(&self, tenant_id: u64) -> Option<Arc<Feed>> {
        if let Some(f) = self.feeds.read().unwrap_or_else(|p| p.into_inner()).get(&tenant_id) {
            return Some(f.clone());
        }
        let mut g = self.feeds.write().unwrap_or_else(|p| p.into_inner());
        if g.len() >= MAX_TENANTS && !g.contains_key(&tenant_id) {
            return None;
        }
        // Sequence numbers from the clock: ids a browser holds from before a restart stay
        // meaningful (see `Feed::starting_at`).
        let start = u64::try_from(store::now_ms()).unwrap_or(0).saturating_mul(1000);
        Some(g.entry(tenant_id).or_insert_with(|| Arc::new(Feed::starting_at(FeedLimits::default(), start))).clone())
    }
}

/// Who sees what.
#[derive(Clone, Copy, Debug)]
enum Scope {
    All,
    Agent(u64),
}

fn scope(auth: &Auth) -> ApiResult<Scope> {
    auth.require(ROLES)?;
    Ok(if auth.role() == Role::Op { Scope::Agent(u64::try_from(auth.user()).unwrap_or(0)) } else { Scope::All })
}

fn visible(scope: Scope, tile: &Tile) -> bool {
    match (scope, tile) {
        (Scope::All, _) => true,
        (Scope::Agent(me), Tile::Agent(a)) => a.agent_id.0 == me,
        (Scope::Agent(_), _) => false,
    }
}

fn filter(scope: Scope, mut s: Snapshot) -> Snapshot {
    if let Scope::Agent(me) = scope {
        s.agents.retain(|a| a.agent_id.0 == me);
        s.campaigns.clear();
        s.groups.clear();
        s.tenant = None;
    }
    s
}

fn feed_of(st: &AppState, auth: &Auth) -> ApiResult<Arc<Feed>> {
    let t = u64::try_from(auth.tenant()).map_err(|_| ApiError::internal())?;
    st.config.wallboards.feed(t).ok_or_else(ApiError::internal)
}

async fn snapshot(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Snapshot>> {
    let scope = scope(&auth)?;
    let feed = feed_of(&st, &auth)?;
    let mut s = filter(scope, feed.snapshot());
    if matches!(scope, Scope::All) {
        fill_remaining_leads(&st, auth.tenant(), &mut s).await?;
    }
    Ok(Json(s))
}

/// Remaining leads (残りリード) from the database, as the dialer counts them: per running call job,
/// the leads it will still dial in this run; summed per campaign, per dialing group and for the tenant.
async fn fill_remaining_leads(st: &AppState, tenant: i64, s: &mut Snapshot) -> ApiResult<()> {
    let jobs = store::leads::remaining_of_running_jobs(&st.db, tenant).await?;
    let sum = |keep: &dyn Fn(&store::leads::JobRemaining) -> bool| -> u64 {
        jobs.iter().filter(|j| keep(j)).map(|j| u64::try_from(j.remaining).unwrap_or(0)).sum()
    };
    for c in &mut s.campaigns {
        let id = i64::try_from(c.campaign_id.0).unwrap_or(-1);
        c.figures.remaining_leads = Some(sum(&|j| j.campaign_id == id));
    }
    for g in &mut s.groups {
        let id = i64::try_from(g.dialing_group_id.0).unwrap_or(-1);
        g.figures.remaining_leads = Some(sum(&|j| j.dialing_group_id == id));
    }
    if let Some(t) = &mut s.tenant {
        t.figures.remaining_leads = Some(sum(&|_| true));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    last_event_id: Option<u64>,
}

fn snapshot_event(s: &Snapshot) -> Event {
    Event::default().id(s.seq.to_string()).event("snapshot").json_data(s).unwrap_or_else(|_| Event::default())
}

fn change_event(c: &Change) -> Event {
    Event::default().id(c.seq.to_string()).event("change").json_data(c).unwrap_or_else(|_| Event::default())
}

/// The tenant's open callbacks; no id (a figure sent whole again on a reconnect).
fn callbacks_event(open: u64) -> Event {
    Event::default().event("callbacks").data(format!("{{\"open\":{open}}}"))
}

struct Streamer {
    /// The tenant's open callbacks (折り返し呼) for a tenant-wide board: sent first, then on change.
    callbacks: Option<tokio::sync::watch::Receiver<Option<u64>>>,
    scope: Scope,
    feed: Arc<Feed>,
    rx: tokio::sync::broadcast::Receiver<Push>,
    queued: VecDeque<Event>,
    last_seq: u64,
    /// `false`: send what is queued (the snapshot or the replay) and end.
    live: bool,
    _gauge: Option<telemetry::GaugeGuard>,
}

async fn stream(
    State(st): State<AppState>,
    StreamAuth(auth): StreamAuth,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let scope = scope(&auth)?;
    let q = q.map_err(|_| ApiError::bad_request("last_event_id", "must be a non-negative integer"))?;
    let header = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID", "must be a non-negative integer"))?,
        ),
        None => None,
    };
    let last = header.or(q.last_event_id);
    let feed = feed_of(&st, &auth)?;
    let sub = feed.subscribe(last);
    let mut queued = VecDeque::new();
    let mut last_seq = last.unwrap_or(0);
    match sub.start {
        Start::Replay(changes) => {
            for c in changes {
                last_seq = c.seq;
                if visible(scope, &c.tile) {
                    queued.push_back(change_event(&c));
                }
            }
        }
        Start::Snapshot(s) => {
            last_seq = s.seq;
            queued.push_back(snapshot_event(&filter(scope, *s)));
        }
    }
    let live = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let _gauge = live.then(|| telemetry::GaugeGuard::new(STREAM_CLIENTS));
    let callbacks = match scope {
        Scope::All => {
            queued.push_back(callbacks_event(crate::callbacks::open_count(&st, auth.tenant()).await?));
            let hub = u64::try_from(auth.tenant()).ok().and_then(|t| st.config.agents.tenant(t));
            hub.map(|h| h.callbacks_open())
        }
        _ => None,
    };
    let s = Streamer { callbacks, scope, feed, rx: sub.rx, queued, last_seq, live, _gauge };
    let body = futures::stream::unfold(s, |mut s| async move {
        loop {
            if let Some(e) = s.queued.pop_front() {
                return Some((Ok(e), s));
            }
            if !s.live {
                return None;
            }
            let pushed = match s.callbacks.as_mut() {
                Some(cb) => tokio::select! {
                    p = s.rx.recv() => p,
                    changed = cb.changed() => {
                        match changed {
                            Ok(()) => {
                                let open = *cb.borrow_and_update();
                                if let Some(n) = open {
                                    return Some((Ok(callbacks_event(n)), s));
                                }
                            }
                            Err(_) => s.callbacks = None,
                        }
                        continue;
                    }
                },
                None => s.rx.recv().await,
            };
            match pushed {
                Ok(Push::Change(c)) => {
                    if c.seq <= s.last_seq {
                        continue;
                    }
                    s.last_seq = c.seq;
                    if visible(s.scope, &c.tile) {
                        return Some((Ok(change_event(&c)), s));
                    }
                }
                Ok(Push::Reset) | Err(RecvError::Lagged(_)) => {
                    // Too slow for the bounded buffer, or the feed was replaced: skip to the
                    // current state.
                    let snap = s.feed.snapshot();
                    s.last_seq = snap.seq;
                    return Some((Ok(snapshot_event(&filter(s.scope, snap))), s));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn op(path: &str, summary: &str, content: &'static str, schema: serde_json::Value) -> Op {
    Op {
        method: "GET",
        path: path.to_string(),
        summary: summary.to_string(),
        tag: "wallboard",
        roles: Some(ROLES.to_vec()),
        request: None,
        response: (200, content, schema),
        errors: vec![400, 401, 403],
        query: vec![],
    }
}

/// Registers the wallboard endpoints.
pub fn mount(reg: &mut Registry) {
    describe_metrics();
    let tile = json!({"type": "object", "description": "An agent tile (agent_id, state, since_ms, campaign_id, dialing_group_id, calls_today, last_call_ms), or the figures of a campaign (campaign_id), a dialing group (dialing_group_id) or the tenant: waiting, longest_waiting_since_ms, talking_calls, agents_by_state, longest_in_state_since_ms, agents_online, agents_total, calls_today, today, last_24h, last_30d (answered, connected, abandoned, answer_rate, abandon_rate), series_5min, dials_in_flight, dial_level (dials in flight per active agent: logged in, not paused), predicted_abandon_rate, remaining_leads, dialer_at_ms. calls_today: conversations (bridged calls) that ended today, for an agent and an aggregate alike."});
    let snap = json!({"type": "object", "required": ["seq", "agents", "campaigns", "groups"], "properties": {
        "seq": {"type": "integer", "description": "The last change included; resume the stream after it."},
        "agents": {"type": "array", "items": tile},
        "campaigns": {"type": "array", "items": tile},
        "groups": {"type": "array", "items": tile},
        "tenant": tile,
    }});
    reg.add(
        op(
            "/wallboard",
            "The live wallboard of the tenant now: agents (state, time in state, calls today) and campaigns (answered, abandoned, waiting, rates over 24 h and 30 days, dial level). OP: only their own agent.",
            "application/json",
            snap,
        ),
        get(snapshot),
    );
    let mut o = op(
        "/wallboard/stream",
        "Wallboard changes as server-sent events (event: snapshot | change, id: sequence). Resumes after Last-Event-ID (header) or last_event_id (query); a client too slow for its buffer is sent a fresh snapshot. Without Accept: text/event-stream the response is the start only (snapshot or replay), then ends.",
        "text/event-stream",
        json!({"type": "string"}),
    );
    o.query = vec![
        (
            "last_event_id".to_string(),
            json!({"type": "integer", "minimum": 0}),
            "Resume after this event id (as the Last-Event-ID header).".to_string(),
        ),
        (
            "ticket".to_string(),
            json!({"type": "string", "maxLength": 256}),
            "A stream ticket from POST /wallboard/tickets, for clients that cannot send a bearer header (EventSource). Single-use, valid 30 s.".to_string(),
        ),
    ];
    reg.add(o, get(stream));
    let mut o = op(
        "/wallboard/tickets",
        "A single-use stream ticket (valid 30 s) for GET /wallboard/stream?ticket=..., for an EventSource, which cannot send the bearer header. It stands for this session: logging out voids it.",
        "application/json",
        json!({"type": "object", "required": ["ticket", "expires_at", "expires_in_ms"], "properties": {
            "ticket": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
            "expires_in_ms": {"type": "integer"},
        }}),
    );
    o.method = "post";
    o.response.0 = 201;
    o.errors = vec![401, 403, 429];
    let mut any = o.clone();
    reg.add(o, axum::routing::post(ticket));
    any.path = "/stream-tickets".into();
    any.summary = "A single-use stream ticket (valid 30 s) for any event stream of the caller (GET /imports/{id}/stream?ticket=...); the stream checks the role of this session.".into();
    any.roles = Some(crate::resources::ALL.to_vec());
    any.errors = vec![401, 429];
    reg.add(any, axum::routing::post(any_ticket));
}
