//! The agents' own commands and the supervisors' (SPEC 5), published to the control service, and
//! the agents' live states.
//!
//! Commands are checked here (role, tenant, the call job, membership, the phone, the pause reason)
//! and published on the bus to the tenant's `control:commands` stream; the answer is `202 Accepted`
//! with the published message id (`{"message_id"}`): the control service, the one owner of agent
//! state, applies it within milliseconds, and the change shows in `GET /agents` and on the
//! wallboard. A command the state machine refuses at that point (a race with another change)
//! changes nothing.
//!
//! - the agent's own (OP; MGR and SV acting for themselves): `POST /agent/session` (発信開始),
//!   `DELETE /agent/session` (発信終了), `POST /agent/ready` (待機), `POST /agent/pause` (停止),
//!   `POST /agent/activity` (keep-alive), `POST /agent/calls/{id}/hang-up` (お客様通話切断);
//! - preview (プレビュー, a call job of a preview campaign): `POST /agent/preview` (the next lead,
//!   held for the caller), `POST /agent/preview/dial` (dial it), `POST /agent/preview/skip`;
//! - supervisors (MGR, SV): `POST /agents/{id}/state`;
//! - states: `GET /agents`, `GET /agents/{id}` (OP: only themselves).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use bus::Envelope;
use serde::Deserialize;
use serde_json::{json, Value};
use store::accounts::Role;
use wire::agent::{AfterWrapUp, AgentConfig, AgentId, AgentState, AgentView, CallId, Cause, ForceTarget};
use wire::agent::{PauseReasonId, Pending, SupervisorId};
use wire::{streams, ApiCommand, CallJobId, CampaignId, DialingGroupId, LeadId};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Id};
use crate::resources::MGR_SV;
use crate::{AppState, Op, Registry};

/// Who works calls: OP, and MGR / SV acting for themselves.
const AGENTS: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];

/// SPEC 5: logged off after 60 minutes idle in ready, ACW or paused.
const IDLE_LOGOFF_MS: u64 = 60 * 60 * 1000;
/// How long the agent's phone may take to answer the nailed-up leg.
const LEG_SETUP_TIMEOUT_MS: u64 = 60_000;
/// Most agents `GET /agents` lists.
const MAX_LIST: i64 = 10_000;
/// Preview: how much longer than the campaign's ring timeout control waits for the agent's call to
/// be answered or ended before hanging it up itself.
const PREVIEW_MARGIN_S: u64 = 30;

fn op(method: &'static str, path: &str, summary: &str, roles: &[Role], request: Option<Value>) -> Op {
    Op {
        method,
        path: path.to_string(),
        summary: summary.to_string(),
        tag: "agents",
        roles: Some(roles.to_vec()),
        request: request.map(|r| ("application/json", r)),
        response: (
            202,
            "application/json",
            json!({"type": "object", "required": ["message_id"], "properties": {
                "message_id": {"type": "string", "description": "The id of the command published to the control service (a ULID)."}}}),
        ),
        errors: vec![400, 401, 403, 404, 409, 422, 503],
        query: vec![],
    }
}

fn agent_schema() -> Value {
    json!({"type": "object", "required": ["id", "login", "display_name", "role", "state"], "properties": {
        "id": {"type": "integer", "description": "The agent's user id."},
        "login": {"type": "string"}, "display_name": {"type": "string"}, "role": {"type": "string"},
        "state": {"type": "string", "enum": ["offline", "ready", "ringing", "talking", "hold", "wrap_up", "paused", "unknown"]},
        "reason_id": {"type": ["integer", "null"], "description": "The pause reason when paused."},
        "since": {"type": ["string", "null"], "format": "date-time", "description": "When the agent entered the state."},
        "seconds_in_state": {"type": ["integer", "null"]},
        "call_id": {"type": ["integer", "null"], "description": "The customer call offered to or talking with the agent (the dialer's call id)."},
        "leg_up": {"type": "boolean", "description": "The agent's phone is connected (nailed-up leg)."},
        "campaign_id": {"type": ["integer", "null"]}, "call_job_id": {"type": ["integer", "null"]},
        "dialing_group_id": {"type": ["integer", "null"]},
        "pending": {"type": ["object", "null"], "description": "A change asked for during a call, applied when it ends: {\"change\": \"pause\" | \"log_off\", \"reason_id\", \"by\": \"agent\" | \"supervisor\"}."},
        "updated_at": {"type": ["string", "null"], "format": "date-time"}}})
}

/// Registers the endpoints.
pub fn mount(reg: &mut Registry) {
    let session = json!({"type": "object", "required": ["call_job_id"], "additionalProperties": false, "properties": {
        "call_job_id": {"type": "integer", "minimum": 1, "description": "A running call job of the tenant whose dialing group or campaign the caller is an agent of."}}});
    reg.add(
        op(
            "post",
            "/agent/session",
            "発信開始: start working a running call job; the system calls the caller's phone (nailed-up leg)",
            AGENTS,
            Some(session),
        ),
        post(start_session).delete(stop_session),
    );
    reg.ops.push(op(
        "delete",
        "/agent/session",
        "発信終了: stop working the call job (log off; during a call, when it ends)",
        AGENTS,
        None,
    ));
    reg.add(
        op("post", "/agent/ready", "待機: be ready for the next customer (from paused or wrap-up)", AGENTS, None),
        post(ready),
    );
    let pause_body = json!({"type": "object", "required": ["reason_id"], "additionalProperties": false, "properties": {
        "reason_id": {"type": "integer", "minimum": 1, "description": "One of the tenant's pause reasons."}}});
    reg.add(
        op("post", "/agent/pause", "停止: pause with a reason (during a call, when it ends)", AGENTS, Some(pause_body)),
        post(pause),
    );
    reg.add(
        op(
            "post",
            "/agent/activity",
            "Keep-alive from the agent's screen: restarts the 60-minute idle log-off",
            AGENTS,
            None,
        ),
        post(activity),
    );
    reg.add(
        op(
            "post",
            "/agent/calls/{id}/hang-up",
            "お客様通話切断: end the customer leg of the caller's current call (id: the call_id of GET /agents/{id})",
            AGENTS,
            None,
        ),
        post(hang_up),
    );
    reg.add(
        op(
            "post",
            "/agent/calls/{id}/hold",
            "保留: put the customer of the caller's current call on hold (the customer hears hold audio; the caller is 保留)",
            AGENTS,
            None,
        ),
        post(hold),
    );
    reg.add(
        op("post", "/agent/calls/{id}/unhold", "保留解除: take the customer on hold back", AGENTS, None),
        post(unhold),
    );
    reg.add(
        op(
            "post",
            "/agent/calls/{id}/transfer",
            "転送 (blind): hand the customer of the caller's current call to agent_id (ready, working the same campaign), who gets the call with its lead's screen pop; the caller goes to wrap-up. Recorded in the call's history",
            AGENTS,
            Some(json!({"type": "object", "required": ["agent_id"], "additionalProperties": false, "properties": {
                "agent_id": {"type": "integer", "minimum": 1, "description": "The agent to hand the customer to (GET /agent/presence)."}}})),
        ),
        post(transfer),
    );
    reg.add(
        op(
            "post",
            "/agent/calls/{id}/transfer-outside",
            "外線転送: hand the customer of the caller's current call (talking, not on hold) to an outside number. The dialer places a second carrier leg from the call's caller ID within the channel limits of the campaign and the caller ID; the customer hears the waiting audio meanwhile. When the outside party answers, the two talk (recorded in the call's recording) and the caller goes to wrap-up; when it does not (busy, no answer within 30 s, refused), the customer comes back to the caller. The outcome reaches the caller's page on the push channel (notice outside_transfer). Recorded in the call's history",
            AGENTS,
            Some(outside_number_body()),
        ),
        post(transfer_outside),
    );
    reg.add(
        op(
            "post",
            "/agent/calls/{id}/conference",
            "電話会議 (3者通話): call an outside number as the third party of the caller's current call (talking, not on hold), from the call's caller ID within the channel limits of the campaign and the caller ID; the customer and the caller talk on while it rings. Once it answers, each of the three hears the other two. The outcome reaches the caller's page on the push channel (notice conference: joined, or why not). Recorded with its start and end (call_conferences)",
            AGENTS,
            Some(outside_number_body()),
        ),
        post(conference),
    );
    reg.add(
        op(
            "delete",
            "/agent/calls/{id}/conference",
            "電話会議: drop the third party (or stop calling it); the customer and the caller talk on",
            AGENTS,
            None,
        ),
        axum::routing::delete(end_conference),
    );
    reg.add(
        op(
            "post",
            "/agent/calls/{id}/conference/leave",
            "電話会議: the caller leaves the conference; the customer and the third party talk on (an attended transfer: the call's record and recording follow them) and the caller goes to wrap-up",
            AGENTS,
            None,
        ),
        post(leave_conference),
    );
    let mut next = op(
        "post",
        "/agent/preview",
        "プレビュー / 配布: the next lead of the caller's preview or distribute call job, held for the caller for 5 minutes (the same lead again while held; never the lead another agent holds); lead null when none is left",
        AGENTS,
        None,
    );
    next.response = (200, "application/json", preview_schema());
    reg.add(next, post(preview_next));
    let lead_body = json!({"type": "object", "required": ["lead_id"], "additionalProperties": false, "properties": {
        "lead_id": {"type": "integer", "minimum": 1, "description": "The lead POST /agent/preview holds for the caller."}}});
    reg.add(
        op(
            "post",
            "/agent/preview/dial",
            "プレビュー発信: dial the previewed lead for the caller (ready); the caller is ringing until the customer answers, then bridged",
            AGENTS,
            Some(lead_body.clone()),
        ),
        post(preview_dial),
    );
    let mut skip = op(
        "post",
        "/agent/preview/skip",
        "Skip the previewed lead: not shown again in this run of the call job, no attempt counted",
        AGENTS,
        Some(lead_body),
    );
    skip.response = (
        200,
        "application/json",
        json!({"type": "object", "required": ["skipped"], "properties": {"skipped": {"type": "integer"}}}),
    );
    reg.add(skip, post(preview_skip));
    let force = json!({"type": "object", "required": ["to"], "additionalProperties": false, "properties": {
        "to": {"type": "string", "enum": ["ready", "paused", "offline"]},
        "reason_id": {"type": "integer", "minimum": 1, "description": "The pause reason; required with to: paused, refused otherwise."}}});
    reg.add(
        op(
            "post",
            "/agents/{id}/state",
            "Change an agent's state (supervisor): ready, paused with a reason, or offline; during a call, when it ends",
            MGR_SV,
            Some(force),
        ),
        post(force_state),
    );
    let mut ready = op(
        "post",
        "/dialing-groups/{id}/ready",
        "Every paused (停止) agent of the group back to ready (待機) at once (supervisor); answers the agents sent back",
        MGR_SV,
        None,
    );
    ready.response = (
        202,
        "application/json",
        json!({"type": "object", "required": ["agent_ids"], "properties": {
            "agent_ids": {"type": "array", "items": {"type": "integer"}, "description": "The agents sent back to ready."}}}),
    );
    ready.errors = vec![401, 403, 404, 503];
    reg.add(ready, post(group_ready));
    let mut list = op("get", "/agents", "Agents and their live states (OP: only themselves)", AGENTS, None);
    list.response = (
        200,
        "application/json",
        json!({"type": "object", "required": ["items", "total"], "properties": {
            "items": {"type": "array", "items": agent_schema()}, "total": {"type": "integer"}}}),
    );
    list.errors = vec![401, 403];
    reg.add(list, get(list_agents));
    let mut one = op("get", "/agents/{id}", "One agent's live state (OP: only themselves)", AGENTS, None);
    one.response = (200, "application/json", agent_schema());
    one.errors = vec![401, 403, 404];
    reg.add(one, get(get_agent));
}

fn preview_schema() -> Value {
    json!({"type": "object", "required": ["lead"], "properties": {"lead": {"oneOf": [{"type": "null"},
        {"type": "object", "required": ["lead_id", "list_id", "name", "kana", "tel", "attempts", "held_until"], "properties": {
            "lead_id": {"type": "integer"}, "list_id": {"type": "integer"},
            "name": {"type": "string"}, "kana": {"type": "string"}, "tel": {"type": "string"},
            "remarks": {"type": ["string", "null"]}, "custom": {"type": "object"},
            "attempts": {"type": "integer"}, "last_result": {"type": ["string", "null"]},
            "last_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "recall": {"type": ["object", "null"], "description": "The due recall this dial answers: {id, due_at, note, own (the caller's own recall)}."},
            "held_until": {"type": "string", "format": "date-time"}}}]}}})
}

fn tenant_u64(auth: &Auth) -> ApiResult<u64> {
    u64::try_from(auth.tenant()).map_err(|_| ApiError::internal())
}

fn me(auth: &Auth) -> ApiResult<AgentId> {
    u64::try_from(auth.user()).map(AgentId).map_err(|_| ApiError::internal())
}

/// Publishes a command to the tenant's control service: 202 with the message id.
pub async fn publish(st: &AppState, auth: &Auth, cmd: &ApiCommand) -> ApiResult<(StatusCode, Json<Value>)> {
    let t = tenant_u64(auth)?;
    let now = u64::try_from(store::now_ms()).unwrap_or(0);
    let env = Envelope::new(t, now, cmd).map_err(|e| {
        tracing::error!(error = %e, "encoding a command");
        ApiError::internal()
    })?;
    st.config.commands.publish(&streams::control_commands(t), &env).await.map_err(|e| {
        tracing::error!(error = %e, "publishing a command to control");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bus_unavailable",
            "the control service cannot be reached; retry",
        )
    })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"message_id": env.id.to_string()}))))
}

/// The agent's committed state (`None`: never logged in).
async fn current(st: &AppState, tenant: i64, agent: AgentId) -> ApiResult<Option<AgentView>> {
    let v = store::agents::view_of(&st.db, tenant, i64::try_from(agent.0).unwrap_or(0)).await?;
    Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
}

/// Refuses with 409 unless the agent works a call job.
async fn in_session(st: &AppState, tenant: i64, agent: AgentId) -> ApiResult<AgentView> {
    match current(st, tenant, agent).await? {
        Some(v) if v.state != AgentState::Offline => Ok(v),
        _ => Err(ApiError::conflict("not_in_session", "not working a call job: start one with POST /agent/session")),
    }
}

/// A pause reason of the tenant, or 422 naming `field`.
async fn pause_reason(st: &AppState, tenant: i64, field: &str, id: i64) -> ApiResult<PauseReasonId> {
    let found = store::agents::pause_reason_exists(&st.db, tenant, id).await?;
    match u32::try_from(id) {
        Ok(r) if found => Ok(PauseReasonId(r)),
        _ => Err(ApiError::invalid(field, format!("{field}: not one of the tenant's pause reasons"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    call_job_id: i64,
}

async fn start_session(
    State(st): State<AppState>,
    auth: Auth,
    Body(b): Body<SessionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(AGENTS)?;
    let t = auth.tenant();
    let agent = me(&auth)?;
    let job = store::agents::session_job(&st.db, t, b.call_job_id)
        .await?
        .ok_or_else(|| ApiError::invalid("call_job_id", "call_job_id: no such call job"))?;
    if job.status != "running" {
        return Err(
            ApiError::conflict("job_not_running", "call_job_id: the call job is not running").with_field("call_job_id")
        );
    }
    let (campaign, group) = (job.campaign_id, job.dialing_group_id);
    if !store::agents::works_for(&st.db, t, auth.user(), group, campaign).await? {
        return Err(ApiError::invalid(
            "call_job_id",
            "call_job_id: you are not an agent of this call job's dialing group or campaign",
        ));
    }
    // A browser phone (ブラウザフォン) needs no SIP account: its page offers WebRTC instead.
    if !store::agents::has_phone(&st.db, t, auth.user()).await? {
        return Err(ApiError::invalid(
            "phone",
            "phone: you have no phone (SIP account); an MGR assigns one in /phones",
        ));
    }
    if let Some(v) =
        current(&st, t, agent).await?.filter(|v| !matches!(v.state, AgentState::Offline | AgentState::Unknown))
    {
        return Err(ApiError::conflict(
            "in_session",
            format!("already working a call job (state {}); end it with DELETE /agent/session", v.state.name()),
        ));
    }
    let (acw_seconds, wait_s, ring_s) = (job.acw_seconds, job.agent_wait_timeout_s, job.ring_timeout_s);
    let config = AgentConfig {
        acw_ms: (job.acw_enabled && acw_seconds > 0).then(|| u64::try_from(acw_seconds).unwrap_or(0) * 1000),
        idle_logoff_ms: IDLE_LOGOFF_MS,
        offer_timeout_ms: u64::try_from(wait_s.max(1)).unwrap_or(20) * 1000,
        leg_setup_timeout_ms: LEG_SETUP_TIMEOUT_MS,
        no_answer_pause: job.no_answer_reason.and_then(|r| u32::try_from(r).ok()).map(PauseReasonId),
        no_answer_release_ms: job
            .no_answer_release_s
            .and_then(|s| u64::try_from(s).ok())
            .filter(|&s| s > 0)
            .map(|s| s * 1000),
        preview_timeout_ms: (u64::try_from(ring_s.max(1)).unwrap_or(180) + PREVIEW_MARGIN_S) * 1000,
    };
    let id = |v: i64| u64::try_from(v).unwrap_or(0);
    let cmd = ApiCommand::StartCallJob {
        agent_id: agent,
        campaign_id: CampaignId(id(campaign)),
        config,
        call_job_id: Some(CallJobId(id(b.call_job_id))),
        dialing_group_id: Some(DialingGroupId(id(group))),
    };
    publish(&st, &auth, &cmd).await
}

/// A command about the caller that needs only a session.
async fn own(st: &AppState, auth: &Auth, cmd: fn(AgentId) -> ApiCommand) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(AGENTS)?;
    let agent = me(auth)?;
    in_session(st, auth.tenant(), agent).await?;
    publish(st, auth, &cmd(agent)).await
}

async fn stop_session(State(st): State<AppState>, auth: Auth) -> ApiResult<(StatusCode, Json<Value>)> {
    own(&st, &auth, |agent_id| ApiCommand::StopCallJob { agent_id }).await
}

async fn ready(State(st): State<AppState>, auth: Auth) -> ApiResult<(StatusCode, Json<Value>)> {
    own(&st, &auth, |agent_id| ApiCommand::GoReady { agent_id }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason_id: i64,
}

async fn pause(
    State(st): State<AppState>,
    auth: Auth,
    Body(b): Body<PauseBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(AGENTS)?;
    let agent = me(&auth)?;
    let reason_id = pause_reason(&st, auth.tenant(), "reason_id", b.reason_id).await?;
    in_session(&st, auth.tenant(), agent).await?;
    publish(&st, &auth, &ApiCommand::Pause { agent_id: agent, reason_id }).await
}

async fn activity(State(st): State<AppState>, auth: Auth) -> ApiResult<(StatusCode, Json<Value>)> {
    own(&st, &auth, |agent_id| ApiCommand::Activity { agent_id }).await
}

/// The caller and their current call `call` (any other id answers like a missing one).
async fn own_call(st: &AppState, auth: &Auth, call: i64) -> ApiResult<(AgentId, CallId)> {
    auth.require(AGENTS)?;
    let agent = me(auth)?;
    let call_id = CallId(u64::try_from(call).unwrap_or(0));
    let v = current(st, auth.tenant(), agent).await?;
    if v.and_then(|v| v.call_id) != Some(call_id) {
        return Err(ApiError::not_found());
    }
    Ok((agent, call_id))
}

async fn hang_up(State(st): State<AppState>, auth: Auth, Id(call): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    let (agent_id, call_id) = own_call(&st, &auth, call).await?;
    publish(&st, &auth, &ApiCommand::HangUpCustomer { agent_id, call_id }).await
}

async fn hold(State(st): State<AppState>, auth: Auth, Id(call): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    let (agent_id, call_id) = own_call(&st, &auth, call).await?;
    publish(&st, &auth, &ApiCommand::Hold { agent_id, call_id }).await
}

async fn unhold(State(st): State<AppState>, auth: Auth, Id(call): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    let (agent_id, call_id) = own_call(&st, &auth, call).await?;
    publish(&st, &auth, &ApiCommand::Unhold { agent_id, call_id }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    agent_id: i64,
}

async fn transfer(
    State(st): State<AppState>,
    auth: Auth,
    Id(call): Id,
    Body(b): Body<TransferBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (agent_id, call_id) = own_call(&st, &auth, call).await?;
    let t = auth.tenant();
    if b.agent_id == auth.user() || !store::transfers::ready_colleague(&st.db, t, auth.user(), b.agent_id).await? {
        return Err(ApiError::invalid(
            "agent_id",
            "agent_id: not a ready agent working your campaign (GET /agent/presence)",
        ));
    }
    let to_agent = AgentId(u64::try_from(b.agent_id).unwrap_or(0));
    let out = publish(&st, &auth, &ApiCommand::Transfer { agent_id, call_id, to_agent }).await?;
    store::transfers::to_agent(&st.db, t, call, auth.user(), b.agent_id, store::now_ms()).await?;
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferOutsideBody {
    number: Option<String>,
    outside_transfer_id: Option<i64>,
}

/// The body of an outside number (外線転送, 電話会議).
fn outside_number_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "number": {"type": "string", "minLength": 1, "maxLength": 40, "example": "0312345678",
            "description": "The outside number typed (digits; separators, full-width digits and +81 are accepted), not on the tenant's do-not-call list; called from the call's own caller ID. Give this or outside_transfer_id, not both."},
        "outside_transfer_id": {"type": "integer", "minimum": 1, "example": 3,
            "description": "A saved outside number (GET /outside-transfers): its number, called from its own 発信者番号 (the call's when it has none)."}}})
}

/// What an outside leg calls: the number and the caller ID it is called from (`None`: the call's).
struct OutsideTarget {
    number: String,
    tel: wire::Tel,
    caller_id: Option<wire::Tel>,
}

/// The body's outside number: typed, or a saved 外線転送 of the caller's tenant with its own caller
/// ID (422 naming the field: neither or both given, an unknown entry).
async fn outside_target(st: &AppState, tenant: i64, b: &TransferOutsideBody) -> ApiResult<OutsideTarget> {
    match (&b.number, b.outside_transfer_id) {
        (Some(raw), None) => {
            let (number, tel) = outside_number(st, tenant, raw).await?;
            Ok(OutsideTarget { number, tel, caller_id: None })
        }
        (None, Some(id)) => {
            let saved = store::transfers::saved_outside(&st.db, tenant, id).await?.ok_or_else(|| {
                ApiError::invalid("outside_transfer_id", "outside_transfer_id: no such saved outside number")
            })?;
            let (number, tel) = outside_number(st, tenant, &saved.number).await?;
            let caller_id = saved.caller_id.as_deref().and_then(wire::Tel::new);
            Ok(OutsideTarget { number, tel, caller_id })
        }
        (None, None) => Err(ApiError::invalid("number", "number: required (or outside_transfer_id)")),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "outside_transfer_id",
            "outside_transfer_id: give number or outside_transfer_id, not both",
        )),
    }
}

/// An outside number the dialer may call: a number (422 naming `number`), not on the tenant's
/// do-not-call list.
async fn outside_number(st: &AppState, tenant: i64, raw: &str) -> ApiResult<(String, wire::Tel)> {
    let number = crate::resource::tel("number", raw)?;
    let tel =
        wire::Tel::new(&number).ok_or_else(|| ApiError::invalid("number", "number: 1 to 30 digits starting with 0"))?;
    if !store::dialing::dnc_hits(&st.db, tenant, std::slice::from_ref(&number)).await?.is_empty() {
        return Err(ApiError::invalid("number", "number: on the do-not-call list (発信規制)"));
    }
    Ok((number, tel))
}

async fn transfer_outside(
    State(st): State<AppState>,
    auth: Auth,
    Id(call): Id,
    Body(b): Body<TransferOutsideBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    outside_ask(&st, &auth, call, &b, false).await
}

async fn conference(
    State(st): State<AppState>,
    auth: Auth,
    Id(call): Id,
    Body(b): Body<TransferOutsideBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    outside_ask(&st, &auth, call, &b, true).await
}

/// 外線転送 (or 電話会議 when `conference`) of the caller's call `call` to the body's outside
/// number: checked, recorded, and asked of control.
async fn outside_ask(
    st: &AppState,
    auth: &Auth,
    call: i64,
    b: &TransferOutsideBody,
    conference: bool,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (agent_id, call_id) = own_call(st, auth, call).await?;
    let OutsideTarget { number, tel, caller_id } = outside_target(st, auth.tenant(), b).await?;
    let (t, me, now) = (auth.tenant(), auth.user(), store::now_ms());
    if conference {
        store::conferences::requested(&st.db, t, call, me, &number, now).await?;
        return publish(st, auth, &ApiCommand::Conference { agent_id, call_id, tel, caller_id }).await;
    }
    let out = publish(st, auth, &ApiCommand::TransferOutside { agent_id, call_id, tel, caller_id }).await?;
    store::transfers::to_outside(&st.db, t, call, me, &number, now).await?;
    Ok(out)
}

async fn end_conference(State(st): State<AppState>, auth: Auth, Id(call): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    let (agent_id, call_id) = own_call(&st, &auth, call).await?;
    publish(&st, &auth, &ApiCommand::EndConference { agent_id, call_id }).await
}

async fn leave_conference(
    State(st): State<AppState>,
    auth: Auth,
    Id(call): Id,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (agent_id, call_id) = own_call(&st, &auth, call).await?;
    publish(&st, &auth, &ApiCommand::LeaveConference { agent_id, call_id }).await
}

/// The caller's preview call job, as they work it now.
struct PreviewSession {
    agent: AgentId,
    view: AgentView,
    job: i64,
    campaign: i64,
}

/// 409 unless the caller works a running call job of a preview campaign.
async fn preview_session(st: &AppState, auth: &Auth) -> ApiResult<PreviewSession> {
    auth.require(AGENTS)?;
    let agent = me(auth)?;
    let t = auth.tenant();
    let view = in_session(st, t, agent).await?;
    let job = store::agents::worked_job(&st.db, t, auth.user()).await?.ok_or_else(|| {
        ApiError::conflict("not_in_session", "not working a call job: start one with POST /agent/session")
    })?;
    // Distribute (配布) hands leads out the same way: the next lead, held for one agent only.
    if !matches!(job.mode.as_str(), "preview" | "distribute") {
        return Err(ApiError::conflict("not_preview", "the call job's campaign is not in preview or distribute mode"));
    }
    if job.status != "running" {
        return Err(ApiError::conflict("job_not_running", "the call job is not running"));
    }
    Ok(PreviewSession { agent, view, job: job.id, campaign: job.campaign_id })
}

fn preview_json(auth: &Auth, l: &store::preview::PreviewLead) -> Value {
    let tz = auth.tz();
    let custom: Value = serde_json::from_str(&l.custom).unwrap_or_else(|_| json!({}));
    json!({
        "lead_id": l.lead_id,
        "list_id": l.list_id,
        "name": l.name,
        "kana": l.kana,
        "tel": l.tel,
        "remarks": l.remarks,
        "custom": custom,
        "attempts": l.attempts,
        "last_result": l.last_result,
        "last_attempt_at": l.last_attempt_at.map(|t| store::tenancy::local_rfc3339(tz, t)),
        "recall": l.recall.as_ref().map(|r| json!({
            "id": r.id, "due_at": r.due_at.map(|d| store::tenancy::local_rfc3339(tz, d)), "note": r.note, "own": r.own})),
        "held_until": store::tenancy::local_rfc3339(tz, l.held_until),
    })
}

async fn preview_next(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    let p = preview_session(&st, &auth).await?;
    let hold = store::preview::HOLD_MS;
    let lead = store::preview::reserve(&st.db, auth.tenant(), p.job, auth.user(), store::now_ms(), hold).await?;
    Ok(Json(json!({"lead": lead.as_ref().map(|l| preview_json(&auth, l))})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadBody {
    lead_id: i64,
}

/// 409 naming `lead_id`: the caller does not hold that lead in their job.
fn not_held() -> ApiError {
    ApiError::conflict("not_held", "lead_id: not held for you (its hold ended, or ask POST /agent/preview first)")
        .with_field("lead_id")
}

async fn preview_dial(
    State(st): State<AppState>,
    auth: Auth,
    Body(b): Body<LeadBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let p = preview_session(&st, &auth).await?;
    if !store::preview::holds(&st.db, auth.tenant(), p.job, auth.user(), b.lead_id, store::now_ms()).await? {
        return Err(not_held());
    }
    if p.view.state != AgentState::Ready {
        return Err(ApiError::conflict(
            "not_ready",
            format!("a preview dial needs the ready state (state {}): POST /agent/ready", p.view.state.name()),
        ));
    }
    let id = |v: i64| u64::try_from(v).unwrap_or(0);
    let cmd = ApiCommand::PreviewDial {
        agent_id: p.agent,
        campaign_id: CampaignId(id(p.campaign)),
        call_job_id: CallJobId(id(p.job)),
        lead_id: LeadId(id(b.lead_id)),
        caller_id: None,
    };
    publish(&st, &auth, &cmd).await
}

async fn preview_skip(State(st): State<AppState>, auth: Auth, Body(b): Body<LeadBody>) -> ApiResult<Json<Value>> {
    let p = preview_session(&st, &auth).await?;
    if !store::preview::skip(&st.db, auth.tenant(), p.job, auth.user(), b.lead_id, store::now_ms()).await? {
        return Err(not_held());
    }
    Ok(Json(json!({"skipped": b.lead_id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceBody {
    to: String,
    reason_id: Option<i64>,
}

async fn force_state(
    State(st): State<AppState>,
    auth: Auth,
    Id(id): Id,
    Body(b): Body<ForceBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(MGR_SV)?;
    let t = auth.tenant();
    let role = store::accounts::role_of(&st.db, t, id).await?.ok_or_else(ApiError::not_found)?;
    if role != "OP" && role != "SV" {
        return Err(ApiError::not_found());
    }
    let to = match (b.to.as_str(), b.reason_id) {
        ("paused", Some(r)) => ForceTarget::Paused { reason_id: pause_reason(&st, t, "reason_id", r).await? },
        ("paused", None) => return Err(ApiError::invalid("reason_id", "reason_id: required with to: paused")),
        ("ready" | "offline", Some(_)) => {
            return Err(ApiError::invalid("reason_id", "reason_id: only with to: paused"));
        }
        ("ready", None) => ForceTarget::Ready,
        ("offline", None) => ForceTarget::Offline,
        _ => return Err(ApiError::invalid("to", "to: one of ready, paused, offline")),
    };
    let agent = AgentId(u64::try_from(id).unwrap_or(0));
    in_session(&st, t, agent).await?;
    let supervisor = SupervisorId(u64::try_from(auth.user()).unwrap_or(0));
    publish(&st, &auth, &ApiCommand::SupervisorForce { agent_id: agent, supervisor_id: supervisor, to }).await
}

/// `POST /dialing-groups/{id}/ready`: CloudCallCenter's 一斉に待機に戻す (§2 ⑥, §4.2) for one group.
/// Only paused agents are sent back; agents in a call, ringing or in wrap-up are left as they are.
async fn group_ready(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(MGR_SV)?;
    let t = auth.tenant();
    if !store::agents::dialing_group_exists(&st.db, t, id).await? {
        return Err(ApiError::not_found());
    }
    let rows = store::agents::group_views(&st.db, t, id).await?;
    let supervisor = SupervisorId(u64::try_from(auth.user()).unwrap_or(0));
    let mut sent = Vec::new();
    for r in rows {
        let view: Option<AgentView> = r.view.and_then(|v| serde_json::from_str(&v).ok());
        if !view.is_some_and(|v| matches!(v.state, AgentState::Paused { .. })) {
            continue;
        }
        let user = r.user_id;
        let agent_id = AgentId(u64::try_from(user).unwrap_or(0));
        let cmd = ApiCommand::SupervisorForce { agent_id, supervisor_id: supervisor, to: ForceTarget::Ready };
        let _accepted = publish(&st, &auth, &cmd).await?;
        sent.push(user);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"agent_ids": sent}))))
}

fn pending_json(p: &Option<Pending>) -> Value {
    let by = |c: &Cause| if matches!(c, Cause::Supervisor { .. }) { "supervisor" } else { "agent" };
    match p {
        Some(Pending::Pause { reason_id, cause }) => {
            json!({"change": "pause", "reason_id": reason_id.0, "by": by(cause)})
        }
        Some(Pending::LogOff { cause }) => json!({"change": "log_off", "reason_id": null, "by": by(cause)}),
        None => Value::Null,
    }
}

fn agent_json(auth: &Auth, r: &store::agents::Agent, now: i64) -> Value {
    let tz = auth.tz();
    let view: Option<AgentView> = r.view.as_deref().and_then(|v| serde_json::from_str(v).ok());
    let state = view.map_or(AgentState::Offline, |v| v.state);
    let reason = match state {
        AgentState::Paused { reason_id } => Some(reason_id.0),
        _ => None,
    };
    let since = view.map(|v| i64::try_from(v.since_ms).unwrap_or(0));
    json!({
        "id": r.id,
        "login": r.login,
        "display_name": r.display_name,
        "role": r.role,
        "state": state.name(),
        "reason_id": reason,
        "since": since.map(|s| store::tenancy::local_rfc3339(tz, s)),
        "seconds_in_state": since.map(|s| (now - s).max(0) / 1000),
        "call_id": view.and_then(|v| v.call_id).map(|c| c.0),
        "leg_up": view.is_some_and(|v| v.leg_up),
        "campaign_id": r.campaign_id,
        "call_job_id": r.call_job_id,
        "dialing_group_id": r.dialing_group_id,
        "pending": pending_json(&view.and_then(|v| v.pending)),
        "updated_at": r.updated_at.map(|u| store::tenancy::local_rfc3339(tz, u)),
    })
}

async fn list_agents(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    let only = (auth.role() == Role::Op).then(|| auth.user());
    let rows = store::agents::list(&st.db, auth.tenant(), only, MAX_LIST).await?;
    let now = store::now_ms();
    let items: Vec<Value> = rows.iter().map(|r| agent_json(&auth, r, now)).collect();
    Ok(Json(json!({"total": items.len(), "items": items})))
}

async fn get_agent(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    if auth.role() == Role::Op && id != auth.user() {
        return Err(ApiError::not_found());
    }
    let row = store::agents::list(&st.db, auth.tenant(), Some(id), 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(agent_json(&auth, &row, store::now_ms())))
}

/// What a saved wrap-up record asks of its agent (SPEC 5 "state after saving"): continue (ready),
/// break or away (paused: `pause_reason_id`, else the tenant's reason named like the choice, else
/// its first reason), end job (log off). Checked before the record is saved. `resolve`: the record
/// is of a live call (its agent's state follows); otherwise the default reason is not looked up
/// (nothing will be paused) and only the body is checked.
pub async fn after_wrap_up(
    st: &AppState,
    tenant: i64,
    state_after: &str,
    pause_reason_id: Option<i64>,
    resolve: bool,
) -> ApiResult<AfterWrapUp> {
    match (state_after, pause_reason_id) {
        ("continue", None) => Ok(AfterWrapUp::Continue),
        ("end_job", None) => Ok(AfterWrapUp::EndJob),
        ("break" | "away", Some(r)) => {
            Ok(AfterWrapUp::Pause { reason_id: pause_reason(st, tenant, "pause_reason_id", r).await? })
        }
        ("break" | "away", None) if !resolve => Ok(AfterWrapUp::Pause { reason_id: PauseReasonId(0) }),
        ("break" | "away", None) => {
            let names: &[&str] = if state_after == "break" { &["break", "休憩"] } else { &["away", "離席"] };
            let mut first = None;
            let mut named = None;
            for store::agents::PauseReason { id, name } in store::agents::pause_reasons(&st.db, tenant).await? {
                first = first.or(Some(id));
                if named.is_none() && names.iter().any(|n| name.trim().eq_ignore_ascii_case(n)) {
                    named = Some(id);
                }
            }
            let id = named.or(first).ok_or_else(|| {
                ApiError::invalid(
                    "state_after",
                    "state_after: the tenant has no pause reasons (add one in /pause-reasons)",
                )
            })?;
            Ok(AfterWrapUp::Pause { reason_id: PauseReasonId(u32::try_from(id).unwrap_or(0)) })
        }
        (_, Some(_)) => {
            Err(ApiError::invalid("pause_reason_id", "pause_reason_id: only with state_after break or away"))
        }
        _ => Err(ApiError::invalid("state_after", "state_after: one of continue, break, away, end_job")),
    }
}

/// The agent and the dialer's call of a wrap-up record, when it has both (a record of a call the
/// control service saw: its agent's state follows the save).
pub async fn record_call(st: &AppState, tenant: i64, record_id: i64) -> ApiResult<Option<(AgentId, CallId)>> {
    let (agent, call) = store::records::agent_and_call_of(&st.db, tenant, record_id).await?;
    let id = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(agent.zip(call).map(|(a, c)| (AgentId(id(a)), CallId(id(c)))))
}

/// After a wrap-up record is saved: tells the control service, so that saving ends the agent's ACW
/// (`save_wrap_up`).
pub async fn wrap_up_saved(
    st: &AppState,
    auth: &Auth,
    agent_id: AgentId,
    call_id: CallId,
    after: AfterWrapUp,
) -> ApiResult<()> {
    let _accepted = publish(st, auth, &ApiCommand::SaveWrapUp { agent_id, call_id, after }).await?;
    Ok(())
}
