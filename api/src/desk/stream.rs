//! `GET /agent/stream`: an agent's push channel, server-sent events.
//!
//! Why SSE and not a WebSocket: everything an agent does goes by the ordinary endpoints (each with
//! its role and tenant checks, in the OpenAPI document); the channel only carries the server's
//! news, one way. SSE gives that over plain HTTP with resumption built in (`Last-Event-ID`), passes
//! proxies and load balancers as any response does, authenticates with the wallboard's single-use
//! stream tickets, and needs no second protocol on the server. A browser delivers its events to a
//! hidden tab as to a visible one (it throttles timers, not network events), so the page needs no
//! timer to stay current.
//!
//! Events (each `data` is JSON):
//! - `desk` (first, when the stream starts afresh): the desk whole (`GET /agent/desk`);
//! - `state` (id): a transition of the agent: `from`, `to`, `at_ms`, `cause`, `call_id`, `lead_id`,
//!   `not_dialled` (why a manual dial was refused);
//! - `bridge` (id): a customer is being bridged to the agent: `call_id`, `lead_id`, `at_ms`;
//! - `pop` (no id), for a client that asks with `?pop=1` (the desktop; simulated agents do not read
//!   leads), right after a `bridge` with a lead (live, or the last one of a replay): the
//!   screen pop, `{call_id, lead_id, pop}` with `pop` as `GET /agent/leads/{id}` answers, or `null`
//!   when it could not be read (the page then asks for it), so the page shows the customer without
//!   a request of its own;
//! - `notice` (id): `{"notice": "recall_assigned", ...}` or `{"notice": "job_stopped", ...}`;
//!   `{"notice": "business_end"}` (no id) when the campaign's business hours end;
//! - `remaining` (no id): the campaign's remaining leads (the dialer's figure);
//! - `presence` (no id): colleagues whose state changed: `{"agents": [{agent_id, state, since_ms}]}`.
//!
//! Ids are the `agent:events` entry ids. A client reconnecting with `Last-Event-ID` (or
//! `?last_event_id=`) gets every event after it while its ring holds them, else `desk` afresh.
//! A client that cannot keep up with its bounded queue is resumed from the ring where it stopped.
//! Keep-alive comments every 15 s. A request not accepting `text/event-stream` gets the start and
//! the end (sweeps never hang).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use bus::EntryId;
use chrono::TimeZone;
use futures::Stream;
use serde_json::json;

use super::hub::{ClientScope, DeskEvent, Start, Subscription, TenantHub};
use super::AGENTS;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::wallboard::StreamAuth;
use crate::{AppState, Op, Registry};

const STREAM_CLIENTS: &str = "kakeru_agent_stream_clients";

fn to_sse(e: &DeskEvent) -> Event {
    let mut ev = Event::default().event(e.name).data(e.data.as_str());
    if let Some(id) = e.id {
        ev = ev.id(id.to_string());
    }
    ev
}

fn parse_id(field: &str, s: &str) -> ApiResult<EntryId> {
    s.trim()
        .parse::<EntryId>()
        .map_err(|_| ApiError::bad_request(field, format!("{field}: an event id such as 1733480000000-0")))
}

struct Streamer {
    st: AppState,
    auth: Auth,
    hub: Arc<TenantHub>,
    agent: u64,
    scope: ClientScope,
    sub: Subscription,
    queued: VecDeque<Event>,
    last: Option<EntryId>,
    live: bool,
    /// Whether the client asked for the screen pop with each bridge (`?pop=1`).
    pop: bool,
    /// When the campaign's business hours end (Unix ms), if the job runs inside them now.
    business_end: Option<i64>,
    _gauge: Option<telemetry::GaugeGuard>,
}

impl Streamer {
    fn queue(&mut self, e: &DeskEvent) {
        if let Some(id) = e.id {
            self.last = Some(self.last.map_or(id, |l| l.max(id)));
        }
        self.queued.push_back(to_sse(e));
    }

    /// Queues the screen pop for a `bridge` event that names a lead.
    async fn queue_pop(&mut self, e: &DeskEvent) {
        if !self.pop || e.name != "bridge" {
            return;
        }
        let Ok(b) = serde_json::from_str::<serde_json::Value>(&e.data) else { return };
        let Some(lead) = b["lead_id"].as_i64() else { return };
        let pop = super::screen_pop(&self.st, &self.auth, lead).await.ok();
        let data = json!({"call_id": b["call_id"], "lead_id": lead, "pop": pop});
        self.queued.push_back(Event::default().event("pop").data(data.to_string()));
    }

    /// Queues what a subscription starts with: the replay, or the desk afresh and recent events.
    async fn start(&mut self, start: Start) -> ApiResult<()> {
        match start {
            Start::Replay(evs) => {
                for e in &evs {
                    self.queue(e);
                }
                if let Some(b) = evs.iter().rev().find(|e| e.name == "bridge") {
                    self.queue_pop(b).await;
                }
            }
            Start::Fresh { position, recent } => {
                let desk = super::desk_json(&self.st, &self.auth).await?;
                self.last = Some(position);
                self.queued.push_back(Event::default().id(position.to_string()).event("desk").data(desk.to_string()));
                for e in &recent {
                    self.queued.push_back(to_sse(e));
                }
            }
        }
        Ok(())
    }
}

/// When the job's business hours end, if now is inside them (in the tenant's zone).
fn business_end_ms(auth: &Auth, job: &store::desktop::DeskJob, now_ms: i64) -> Option<i64> {
    let tz = auth.tz();
    let local = chrono::DateTime::from_timestamp_millis(now_ms)?.with_timezone(&tz);
    let parse = |s: &str| chrono::NaiveTime::parse_from_str(s, "%H:%M").ok();
    let (start, end) = (parse(&job.business_start)?, parse(&job.business_end)?);
    let t = local.time();
    if t < start || t >= end {
        return None;
    }
    let end_local = local.date_naive().and_time(end);
    tz.from_local_datetime(&end_local).earliest().map(|d| d.timestamp_millis())
}

async fn stream(
    State(st): State<AppState>,
    StreamAuth(auth): StreamAuth,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    auth.require(AGENTS)?;
    let last = match (headers.get("last-event-id"), p.get("last_event_id")) {
        (Some(h), _) => Some(parse_id("Last-Event-ID", h.to_str().unwrap_or(""))?),
        (None, Some(q)) if !q.is_empty() => Some(parse_id("last_event_id", q)?),
        _ => None,
    };
    let hub = st.config.agents.tenant(u64::try_from(auth.tenant()).unwrap_or(0)).ok_or_else(ApiError::internal)?;
    let w = super::working(&st, &auth).await?;
    let colleagues = super::colleague_ids(&st, &auth).await?;
    let scope = ClientScope {
        call_job_id: w.job.as_ref().map(|j| j.id),
        campaign_id: w.job.as_ref().map(|j| j.campaign_id),
        colleagues: Arc::new(colleagues),
    };
    let now = store::now_ms();
    let business_end =
        w.job.as_ref().filter(|j| j.status == "running" && w.in_session()).and_then(|j| business_end_ms(&auth, j, now));
    let agent = super::me(&auth);
    let sub = hub.subscribe(agent, last, scope.clone());
    let live = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let pop = p.get("pop").is_some_and(|v| v == "1");
    let _gauge = live.then(|| telemetry::GaugeGuard::new(STREAM_CLIENTS));
    let mut s =
        Streamer { st, auth, hub, agent, scope, sub, queued: VecDeque::new(), last, live, pop, business_end, _gauge };
    let start = std::mem::replace(&mut s.sub.start, Start::Replay(Vec::new()));
    s.start(start).await?;
    let body = futures::stream::unfold(s, |mut s| async move {
        loop {
            if let Some(e) = s.queued.pop_front() {
                return Some((Ok(e), s));
            }
            if !s.live {
                return None;
            }
            let until_end =
                s.business_end.map(|e| Duration::from_millis(u64::try_from(e - store::now_ms()).unwrap_or(0)));
            let end_timer = async {
                match until_end {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                e = s.sub.rx.recv() => match e {
                    Some(e) => {
                        if e.id.is_some_and(|id| s.last.is_some_and(|l| id <= l)) {
                            continue;
                        }
                        s.queue(&e);
                        s.queue_pop(&e).await;
                    }
                    None if s.sub.lagged.load(Ordering::Relaxed) => {
                        // Cut from live delivery for falling behind: resume from the ring.
                        s.sub = s.hub.subscribe(s.agent, s.last, s.scope.clone());
                        let start = std::mem::replace(&mut s.sub.start, Start::Replay(Vec::new()));
                        if s.start(start).await.is_err() {
                            return None;
                        }
                    }
                    None => return None,
                },
                () = end_timer => {
                    s.business_end = None;
                    s.queued.push_back(Event::default().event("notice").data(json!({"notice": "business_end"}).to_string()));
                }
            }
        }
    });
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

pub(super) fn mount(reg: &mut Registry) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(STREAM_CLIENTS, "Open agent push channels (GET /agent/stream) in this API process.");
    });
    let mut o = Op {
        method: "get",
        path: "/agent/stream".into(),
        summary: "The caller's push channel (server-sent events: desk, state, bridge, pop with ?pop=1, notice, remaining, presence). Resumes after Last-Event-ID (header) or last_event_id (query); authenticate with a bearer or a ticket from POST /agent/tickets. Without Accept: text/event-stream the response is the start only."
            .into(),
        tag: "agents",
        roles: Some(AGENTS.to_vec()),
        request: None,
        response: (200, "text/event-stream", json!({"type": "string"})),
        errors: vec![400, 401, 403],
        query: vec![],
    };
    o.query = vec![
        (
            "last_event_id".to_string(),
            json!({"type": "string", "maxLength": 64}),
            "Resume after this event id (as the Last-Event-ID header).".to_string(),
        ),
        (
            "ticket".to_string(),
            json!({"type": "string", "maxLength": 256}),
            "A stream ticket from POST /agent/tickets (single-use, 30 s), for an EventSource.".to_string(),
        ),
        (
            "pop".to_string(),
            json!({"type": "string", "enum": ["0", "1"]}),
            "1: the screen pop (as GET /agent/leads/{id} answers) right after each bridge, as a pop event.".to_string(),
        ),
    ];
    reg.add(o, get(stream));
    let o = Op {
        method: "post",
        path: "/agent/tickets".into(),
        summary: "A single-use stream ticket (valid 30 s) for GET /agent/stream?ticket=..., for an EventSource, which cannot send the bearer header. Logging out voids it.".into(),
        tag: "agents",
        roles: Some(AGENTS.to_vec()),
        request: None,
        response: (
            201,
            "application/json",
            json!({"type": "object", "required": ["ticket", "expires_at", "expires_in_ms"], "properties": {
                "ticket": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"},
                "expires_in_ms": {"type": "integer"}}}),
        ),
        errors: vec![401, 403, 429],
        query: vec![],
    };
    reg.add(o, post(crate::wallboard::ticket));
}
