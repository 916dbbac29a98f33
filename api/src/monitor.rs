//! Supervisors on agents' calls (issue 24): モニタリング (listen), ささやき (whisper) and 割込
//! (barge), from the supervisor's own phone.
//!
//! - `POST /agents/{id}/monitor` (MGR, SV) `{"mode"}`: join the agent's current call (or change
//!   mode on it). The API checks the role, that the agent is in a bridged call of the tenant, and
//!   that the caller has a phone; writes the monitoring record (`store::monitoring`) and publishes
//!   `supervise` on the dialer notices, answering `202 {"id", "call_id", "mode"}`. The dialer host
//!   that has the call rings the supervisor's phone and records when it joined and when it ended.
//!   The agent is not told of a listen: nothing goes to the agents' channel.
//! - `DELETE /agents/{id}/monitor`: the caller leaves (`end_supervision`).
//! - `GET /calls/{id}/monitors` (MGR, SV): the call's monitoring records, for its history (`id`:
//!   the call record's id, as `GET /call-history` names it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use bus::Envelope;
use serde::Deserialize;
use serde_json::{json, Value};
use wire::{streams, AgentNotice, CallId, DialerNotice, MonitorMode, SupervisorId, SupervisorOffer};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Id};
use crate::resources::MGR_SV;
use crate::{AppState, Op, Registry};

/// Most records `GET /calls/{id}/monitors` lists.
const MAX_LIST: i64 = 1_000;

fn monitor_schema() -> Value {
    json!({"type": "object", "required": ["id", "call_record_id", "agent_user_id", "supervisor_user_id", "supervisor", "mode", "requested_at"],
        "properties": {
        "id": {"type": "integer"}, "call_record_id": {"type": "integer"},
        "agent_user_id": {"type": "integer"}, "supervisor_user_id": {"type": "integer"},
        "supervisor": {"type": "string", "description": "The supervisor's display name."},
        "mode": {"type": "string", "enum": ["listen", "whisper", "barge"]},
        "requested_at": {"type": "string", "format": "date-time", "description": "When the supervisor asked (the tenant's zone)."},
        "started_at": {"type": ["string", "null"], "format": "date-time", "description": "When the supervisor's phone joined; null if it never did."},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "end_reason": {"type": ["string", "null"], "description": "stopped, mode_changed, call_ended, phone_hung_up, unreachable, not_bridged, no_phone, full"}}})
}

/// Registers the endpoints.
pub fn mount(reg: &mut Registry) {
    let body = json!({"type": "object", "required": ["mode"], "additionalProperties": false, "properties": {
        "mode": {"type": "string", "enum": ["listen", "whisper", "barge"],
                 "description": "listen (モニタリング): hear both parties; whisper (ささやき): the agent hears you, the customer does not; barge (割込): both hear you."},
        "sdp": {"type": "string", "maxLength": 65536,
                "description": "Your browser phone's SDP offer (WebRTC): the call is joined from this page instead of your SIP phone, and the answer comes back as `sdp`."}}});
    let start = Op {
        method: "post",
        path: "/agents/{id}/monitor".into(),
        summary:
            "モニタリング / ささやき / 割込: join the agent's current call from your own phone (or change mode on it)"
                .into(),
        tag: "agents",
        roles: Some(MGR_SV.to_vec()),
        request: Some(("application/json", body)),
        response: (
            202,
            "application/json",
            json!({"type": "object", "required": ["id", "call_id", "mode"], "properties": {
                "id": {"type": "integer", "description": "The monitoring record."},
                "call_id": {"type": "integer", "description": "The call joined (the call record's id)."},
                "mode": {"type": "string"},
                "sdp": {"type": "string", "description": "The media shard's SDP answer, when an offer was sent."}}}),
        ),
        errors: vec![400, 401, 403, 404, 409, 415, 422, 503],
        query: vec![],
    };
    reg.add(start, post(start_monitor).delete(stop_monitor));
    reg.ops.push(Op {
        method: "delete",
        path: "/agents/{id}/monitor".into(),
        summary: "Leave the agent's call you monitor".into(),
        tag: "agents",
        roles: Some(MGR_SV.to_vec()),
        request: None,
        response: (202, "application/json", json!({"type": "object"})),
        errors: vec![401, 403, 404, 503],
        query: vec![],
    });
    reg.add(
        Op {
            method: "get",
            path: "/calls/{id}/monitors".into(),
            summary: "The call's monitoring records (who listened, whispered or barged, when)".into(),
            tag: "agents",
            roles: Some(MGR_SV.to_vec()),
            request: None,
            response: (
                200,
                "application/json",
                json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": monitor_schema()}}}),
            ),
            errors: vec![401, 403, 404],
            query: vec![],
        },
        get(list_monitors),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    mode: String,
    /// The supervisor's browser phone: the page's SDP offer (else their SIP phone).
    sdp: Option<String>,
}

/// How long `POST /agents/{id}/monitor` with a browser phone's offer waits for the shard's answer.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest offer taken (a browser's offer is a few kB).
const MAX_SDP: usize = 64 * 1024;

/// The agent of the tenant (404 for anyone else).
async fn agent_of_tenant(st: &AppState, tenant: i64, id: i64) -> ApiResult<()> {
    if store::accounts::user_exists(&st.db, tenant, id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

async fn notify(st: &AppState, tenant: i64, notice: &DialerNotice) -> ApiResult<()> {
    let t = u64::try_from(tenant).map_err(|_| ApiError::internal())?;
    let now = u64::try_from(store::now_ms()).unwrap_or(0);
    let env = Envelope::new(t, now, notice).map_err(|e| {
        tracing::error!(error = %e, "encoding a dialer notice");
        ApiError::internal()
    })?;
    st.config.commands.publish(&streams::dialer_notices(), &env).await.map(|_| ()).map_err(|e| {
        tracing::error!(error = %e, "publishing a supervision notice");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "bus_unavailable", "the dialer cannot be reached; retry")
    })
}

async fn start_monitor(
    State(st): State<AppState>,
    auth: Auth,
    Id(id): Id,
    Body(b): Body<StartBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(MGR_SV)?;
    let t = auth.tenant();
    let mode =
        MonitorMode::parse(&b.mode).ok_or_else(|| ApiError::invalid("mode", "mode: one of listen, whisper, barge"))?;
    agent_of_tenant(&st, t, id).await?;
    if id == auth.user() {
        return Err(ApiError::invalid("id", "id: you cannot monitor your own call"));
    }
    let call = store::call_records::talking_call_of_agent(&st.db, t, id)
        .await?
        .ok_or_else(|| ApiError::conflict("not_in_call", "the agent is not talking with a customer"))?;
    let (record, dialer_call) = (call.call_record_id, call.dialer_call_id);
    if let Some(sdp) = &b.sdp {
        if sdp.len() > MAX_SDP || !sdp.starts_with("v=0") {
            return Err(ApiError::invalid("sdp", "sdp: the browser's SDP offer (v=0 ..., at most 64 kB)"));
        }
    } else {
        if !store::accounts::has_phone(&st.db, t, auth.user()).await? {
            return Err(ApiError::conflict("no_phone", "you have no phone account to listen with"));
        }
    }
    let request = store::monitoring::Request {
        tenant_id: t,
        call_record_id: record,
        agent_user_id: id,
        supervisor_user_id: auth.user(),
        mode: mode.as_str(),
        at_ms: store::now_ms(),
    };
    let monitor = store::monitoring::requested(&st.db, &request).await?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    if let Some(sdp) = b.sdp {
        let offer = SupervisorOffer {
            monitor_id: u(monitor),
            supervisor_id: SupervisorId(u(auth.user())),
            call_id: CallId(u(dialer_call.unwrap_or(record))),
            mode,
            sdp,
        };
        let answer = browser_join(&st, t, u(auth.user()), &offer).await;
        let sdp = match answer {
            Ok(sdp) => sdp,
            Err(e) => {
                store::monitoring::ended(&st.db, t, monitor, store::now_ms(), "unreachable").await?;
                return Err(e);
            }
        };
        let body = json!({"id": monitor, "call_id": record, "mode": mode.as_str(), "sdp": sdp});
        return Ok((StatusCode::ACCEPTED, Json(body)));
    }
    let notice = DialerNotice::Supervise {
        monitor_id: u(monitor),
        supervisor_id: SupervisorId(u(auth.user())),
        call_id: CallId(u(dialer_call.unwrap_or(record))),
        mode,
    };
    if let Err(e) = notify(&st, t, &notice).await {
        store::monitoring::ended(&st.db, t, monitor, store::now_ms(), "unreachable").await?;
        return Err(e);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"id": monitor, "call_id": record, "mode": mode.as_str()}))))
}

/// Publishes a supervisor's browser phone offer and waits for the shard's answer on the
/// supervisor's own events (this process's agent hub follows the tenant's `agent:events`).
async fn browser_join(st: &AppState, tenant: i64, me: u64, offer: &SupervisorOffer) -> ApiResult<String> {
    let t = u64::try_from(tenant).map_err(|_| ApiError::internal())?;
    let hub = st.config.agents.tenant(t).ok_or_else(ApiError::internal)?;
    // Subscribed before publishing: the answer cannot slip past.
    let mut sub = hub.subscribe(me, None, crate::desk::hub::ClientScope::default());
    let now = u64::try_from(store::now_ms()).unwrap_or(0);
    let env = Envelope::new(t, now, offer).map_err(|e| {
        tracing::error!(error = %e, "encoding a supervisor's offer");
        ApiError::internal()
    })?;
    st.config.commands.publish(&streams::dialer_notices(), &env).await.map_err(|e| {
        tracing::error!(error = %e, "publishing a supervisor's offer");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "bus_unavailable", "the dialer cannot be reached; retry")
    })?;
    let unanswered = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_answer",
            "the dialer did not answer the browser phone; retry",
        )
    };
    let wait = async {
        while let Some(e) = sub.rx.recv().await {
            if e.name != "notice" {
                continue;
            }
            match serde_json::from_str::<AgentNotice>(&e.data) {
                Ok(AgentNotice::MonitorAnswer { monitor_id, sdp, .. }) if monitor_id == offer.monitor_id => {
                    return Ok(sdp);
                }
                Ok(AgentNotice::MonitorFailed { monitor_id, error, .. }) if monitor_id == offer.monitor_id => {
                    return Err(ApiError::invalid("sdp", format!("sdp: the browser phone could not join: {error}")));
                }
                _ => {}
            }
        }
        Err(unanswered())
    };
    tokio::time::timeout(ANSWER_WAIT, wait).await.unwrap_or_else(|_| Err(unanswered()))
}

async fn stop_monitor(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(MGR_SV)?;
    let t = auth.tenant();
    agent_of_tenant(&st, t, id).await?;
    let supervisor_id = SupervisorId(u64::try_from(auth.user()).unwrap_or(0));
    notify(&st, t, &DialerNotice::EndSupervision { supervisor_id }).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

async fn list_monitors(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    auth.require(MGR_SV)?;
    let t = auth.tenant();
    if !store::call_records::exists(&st.db, t, id).await? {
        return Err(ApiError::not_found());
    }
    let tz = auth.tz();
    let at = |ms: Option<i64>| ms.map(|v| store::tenancy::local_rfc3339(tz, v));
    let items: Vec<Value> = store::monitoring::of_call(&st.db, t, id, MAX_LIST)
        .await?
        .into_iter()
        .map(|m| {
            json!({"id": m.id, "call_record_id": m.call_record_id, "agent_user_id": m.agent_user_id,
                "supervisor_user_id": m.supervisor_user_id, "supervisor": m.supervisor, "mode": m.mode,
                "requested_at": at(Some(m.requested_at)), "started_at": at(m.started_at),
                "ended_at": at(m.ended_at), "end_reason": m.end_reason})
        })
        .collect();
    Ok(Json(json!({"items": items})))
}
