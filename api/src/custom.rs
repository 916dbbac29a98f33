//! Endpoints that are not plain records: login, the tenant's settings, group and campaign members,
//! starting and stopping call jobs, lead history, and number lists (発信規制, 着信拒否) by CSV.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use chrono::{NaiveTime, Timelike};
use serde::Deserialize;
use serde_json::{json, Value};
use store::accounts::Role;
use store::membership::Members;
use store::number_lists::{Chosen, NumberList};
use wire::AgentNotice;

use crate::auth::{self, Auth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Id};
use crate::openapi::schema_ref;
use crate::resource::{self, visible, Ctx, Spec};
use crate::resources::{self, ALL, MGR, MGR_SV};
use crate::{AppState, Op, Registry};

fn op(method: &'static str, path: &str, summary: &str, tag: &'static str, roles: Option<&[Role]>) -> Op {
    Op {
        method,
        path: path.to_string(),
        summary: summary.to_string(),
        tag,
        roles: roles.map(<[Role]>::to_vec),
        request: None,
        response: (200, "application/json", json!({"type": "object"})),
        errors: vec![400, 401, 403, 404, 422],
        query: vec![],
    }
}

fn with_request(mut o: Op, schema: Value) -> Op {
    o.request = Some(("application/json", schema));
    o
}

fn with_response(mut o: Op, code: u16, schema: Value) -> Op {
    o.response = (code, if code == 204 { "" } else { "application/json" }, schema);
    o
}

/// Schemas of the bodies used here, for the OpenAPI document.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "LoginRequest",
            json!({"type": "object", "required": ["tenant", "login", "password"], "additionalProperties": false, "properties": {
            "tenant": {"type": "string", "minLength": 1, "maxLength": 256, "description": "The tenant's code."},
            "login": {"type": "string", "minLength": 1, "maxLength": 256}, "password": {"type": "string", "minLength": 1, "maxLength": 256}}}),
        ),
        (
            "Me",
            json!({"type": "object", "required": ["id", "tenant_id", "login", "role", "time_zone"], "properties": {
            "id": {"type": "integer"}, "tenant_id": {"type": "integer"}, "login": {"type": "string"},
            "role": {"type": "string", "enum": ["MGR", "SV", "OP", "BIZ", "BY"]}, "time_zone": {"type": "string"}}}),
        ),
        (
            "LoginReply",
            json!({"type": "object", "required": ["token", "expires_at", "user"], "properties": {
            "token": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}, "user": schema_ref("Me")}}),
        ),
        (
            "Tenant",
            json!({"type": "object", "required": ["id", "code", "name", "time_zone", "history_retention_days", "recording_quota_bytes", "session_ttl_minutes", "created_at"], "properties": {
            "id": {"type": "integer"}, "code": {"type": "string"}, "name": {"type": "string"}, "time_zone": {"type": "string"},
            "history_retention_days": {"type": "integer"}, "recording_quota_bytes": {"type": "integer"},
            "session_ttl_minutes": {"type": "integer"},
            "closed_on_national_holidays": {"type": "boolean", "description": "Japan's national holidays are closed days (休業日) for call jobs."},
            "created_at": {"type": "integer", "description": "Unix ms"}}}),
        ),
        (
            "TenantUpdate",
            json!({"type": "object", "additionalProperties": false, "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "time_zone": {"type": "string", "description": "IANA time zone, e.g. Asia/Tokyo."},
            "history_retention_days": {"type": "integer", "minimum": store::tenancy::RETENTION_MIN_DAYS, "maximum": store::tenancy::RETENTION_MAX_DAYS, "description": "履歴保持期間 R in days."},
            "recording_quota_bytes": {"type": "integer", "minimum": 0},
            "session_ttl_minutes": {"type": "integer", "minimum": store::tenancy::SESSION_TTL_MIN_MINUTES, "maximum": store::tenancy::SESSION_TTL_MAX_MINUTES,
                "description": "Lifetime of the tokens a login hands out, in minutes (default 720 = 12 h); tokens already handed out keep theirs."},
            "closed_on_national_holidays": {"type": "boolean", "description": "Japan's national holidays are closed days (休業日): no call job starts or dials on them (default true). The tenant's own closed dates are /closed-days."}}}),
        ),
        (
            "Members",
            json!({"type": "object", "required": ["user_ids"], "additionalProperties": false, "properties": {
            "user_ids": {"type": "array", "maxItems": 10000, "items": {"type": "integer", "minimum": 1}}}}),
        ),
        (
            "HistoryEntry",
            json!({"type": "object", "required": ["text"], "additionalProperties": false, "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 5000}}}),
        ),
        (
            "NumberUploadReply",
            json!({"type": "object", "required": ["added", "duplicates", "errors"], "properties": {
            "added": {"type": "integer"}, "duplicates": {"type": "integer"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"row": {"type": "integer"}, "message": {"type": "string"}}}}}}),
        ),
        (
            "WrapupSave",
            json!({"type": "object", "required": ["result", "next_action", "state_after"], "additionalProperties": false, "properties": {
                "interlocutor": {"type": ["string", "null"], "enum": ["self", "other", null], "description": "本人 or その他."},
                "result": {"type": "string", "description": "A system result or a campaign result number, e.g. \"3\".", "examples": ["no_contact"]},
                "other_tel": {"type": ["string", "null"]},
                "next_action": {"type": "string", "enum": ["continue", "recall", "complete"], "examples": ["continue"]},
                "recall_at": {"type": ["string", "null"], "format": "date-time", "description": "Required when next_action is recall."},
                "recall_to_agent": {"type": "boolean", "description": "The recall goes to the agent's own recall list."},
                "memo": {"type": "string", "maxLength": 5000},
                "state_after": {"type": "string", "enum": ["continue", "break", "away", "end_job"], "description": "Applied to the record's agent by the control service: saving ends the ACW.", "examples": ["continue"]},
                "keep_state": {"type": "boolean", "description": "保存のみ: save the record and leave the agent's state as it is (the ACW runs on until its end or 待機).", "examples": [true]},
                "pause_reason_id": {"type": ["integer", "null"], "minimum": 1, "description": "The pause reason for break or away; default: the tenant's reason named break/休憩 or away/離席, else its first."}}}),
        ),
        (
            "BulkDelete",
            json!({"type": "object", "additionalProperties": false, "properties": {
            "ids": {"type": "array", "maxItems": 100000, "items": {"type": "integer", "minimum": 1}},
            "numbers": {"type": "array", "maxItems": 100000, "items": {"type": "string"}},
            "all": {"type": "boolean"}}}),
        ),
    ]
}

pub fn mount_auth(reg: &mut Registry) {
    let mut o = with_request(
        op("post", "/auth/login", "Log in: a bearer token for the tenant's user", "accounts", None),
        schema_ref("LoginRequest"),
    );
    o.response = (200, "application/json", schema_ref("LoginReply"));
    o.errors = vec![400, 401, 413, 415, 422, 423, 429, 503];
    reg.add(o, post(auth::login));
    let mut o =
        with_response(op("post", "/auth/logout", "End this token's session", "accounts", Some(ALL)), 204, Value::Null);
    o.errors = vec![401];
    reg.add(o, post(auth::logout));
    let mut o = with_response(op("get", "/me", "The caller", "accounts", Some(ALL)), 200, schema_ref("Me"));
    o.errors = vec![401];
    reg.add(o, get(auth::me));
}

pub fn mount(reg: &mut Registry) {
    let o =
        with_response(op("get", "/tenant", "The caller's tenant", "accounts", Some(ALL)), 200, schema_ref("Tenant"));
    reg.add(o, get(get_tenant).patch(patch_tenant));
    let o = with_response(
        with_request(
            op("patch", "/tenant", "Change the tenant's settings", "accounts", Some(MGR)),
            schema_ref("TenantUpdate"),
        ),
        200,
        schema_ref("Tenant"),
    );
    reg.ops.push(o);

    let mut o = with_response(
        op(
            "post",
            "/users/{id}/unlock",
            "Lift a user's ログインロック (locked after repeated wrong passwords)",
            "accounts",
            Some(MGR),
        ),
        200,
        schema_ref("User"),
    );
    o.errors = vec![401, 403, 404];
    reg.add(o, post(unlock_user));

    for (path, parent, of) in [
        ("/dialing-groups/{id}/agents", &resources::DIALING_GROUPS, Members::DialingGroup),
        ("/campaigns/{id}/agents", &resources::CAMPAIGNS, Members::Campaign),
    ] {
        let o =
            with_response(op("get", path, "Member agents", parent.tag, Some(parent.read)), 200, schema_ref("Members"));
        reg.add(
            o,
            get(move |State(st): State<AppState>, auth: Auth, Id(id): Id| async move {
                members_get(&Ctx { st, auth }, parent, of, id).await.map(Json)
            })
            .put(
                move |State(st): State<AppState>, auth: Auth, Id(id): Id, Body(b): Body<MembersBody>| async move {
                    members_put(&Ctx { st, auth }, parent, of, id, b).await.map(Json)
                },
            ),
        );
        let o = with_response(
            with_request(
                op("put", path, "Replace the member agents", parent.tag, Some(parent.write)),
                schema_ref("Members"),
            ),
            200,
            schema_ref("Members"),
        );
        reg.ops.push(o);
    }

    for (action, summary) in [
        ("start", "Start a call job (from 1 h before business start, at most 5 running per tenant)"),
        ("stop", "Stop a call job; calls in progress are not cut"),
    ] {
        let mut o = with_response(
            op("post", &format!("/call-jobs/{{id}}/{action}"), summary, "dialing", Some(MGR_SV)),
            200,
            schema_ref("CallJob"),
        );
        o.errors = vec![401, 403, 404, 409];
        let start = action == "start";
        reg.add(
            o,
            post(move |State(st): State<AppState>, auth: Auth, Id(id): Id| async move {
                job_switch(&Ctx { st, auth }, id, start).await.map(Json)
            }),
        );
    }

    let o = with_response(
        op("get", "/leads/{id}/history", "A lead's history entries", "lists", Some(resources::LEADS.read)),
        200,
        json!({"type": "object"}),
    );
    reg.add(
        o,
        get(|State(st): State<AppState>, auth: Auth, Id(id): Id| async move {
            history_get(&Ctx { st, auth }, id).await.map(Json)
        })
        .post(|State(st): State<AppState>, auth: Auth, Id(id): Id, Body(b): Body<HistoryBody>| async move {
            history_post(&Ctx { st, auth }, id, b).await.map(|v| (StatusCode::CREATED, Json(v)))
        }),
    );
    let o = with_response(
        with_request(
            op("post", "/leads/{id}/history", "Add a history entry to a lead", "lists", Some(HISTORY_WRITERS)),
            schema_ref("HistoryEntry"),
        ),
        201,
        json!({"type": "object"}),
    );
    reg.ops.push(o);

    let o = with_response(
        op(
            "get",
            "/dialer/dead-letters",
            "Writes of the dialer that failed for good, newest first",
            "records",
            Some(MGR),
        ),
        200,
        json!({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}}),
    );
    reg.add(o, get(dead_letters));

    let mut o = op(
        "post",
        "/wrapup-records/{id}/save",
        "Save a wrap-up record: result, next action, memo, state after saving",
        "records",
        Some(WRAPUP_SAVERS),
    );
    o.request = Some(("application/json", schema_ref("WrapupSave")));
    o.response = (200, "application/json", schema_ref("WrapupRecord"));
    reg.add(
        o,
        post(|State(st): State<AppState>, auth: Auth, Id(id): Id, Body(b): Body<WrapupBody>| async move {
            wrapup_save(&Ctx { st, auth }, id, b).await.map(Json)
        }),
    );

    for (spec, list) in
        [(&resources::DNC_NUMBERS, NumberList::DoNotCall), (&resources::INBOUND_BLOCKS, NumberList::InboundBlocks)]
    {
        let mut o = op(
            "post",
            &format!("{}/upload", spec.path),
            "Add numbers from a CSV (one number per row, optional note column; UTF-8 or Shift_JIS)",
            spec.tag,
            Some(spec.write),
        );
        o.request = Some(("text/csv", json!({"type": "string", "examples": ["0312345678,Sample\n"]})));
        o.response = (200, "application/json", schema_ref("NumberUploadReply"));
        o.errors = vec![400, 401, 403, 408, 413, 415];
        reg.add(
            o,
            post(move |State(st): State<AppState>, auth: Auth, req: axum::extract::Request| async move {
                auth.require(spec.write)?;
                let body =
                    crate::extract::read_limited(req, NUMBER_UPLOAD_MAX_BYTES, crate::extract::UPLOAD_READ_TIMEOUT)
                        .await?;
                numbers_upload(&Ctx { st, auth }, spec, list, body).await.map(Json)
            }),
        );
        let o = with_response(
            with_request(
                op(
                    "post",
                    &format!("{}/bulk-delete", spec.path),
                    "Delete numbers by id, by number, or all",
                    spec.tag,
                    Some(spec.delete),
                ),
                schema_ref("BulkDelete"),
            ),
            200,
            json!({"type": "object", "properties": {"deleted": {"type": "integer"}}}),
        );
        reg.add(
            o,
            post(move |State(st): State<AppState>, auth: Auth, Body(b): Body<BulkDeleteBody>| async move {
                numbers_delete(&Ctx { st, auth }, spec, list, b).await.map(Json)
            }),
        );
    }
}

// ------------------------------------------------------------------------------------------ tenant

async fn get_tenant(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<store::tenancy::Tenant>> {
    Ok(Json(store::tenancy::get_tenant(&st.db, auth.tenant()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    name: Option<String>,
    time_zone: Option<String>,
    history_retention_days: Option<i64>,
    recording_quota_bytes: Option<i64>,
    session_ttl_minutes: Option<i64>,
    closed_on_national_holidays: Option<bool>,
}

async fn patch_tenant(
    State(st): State<AppState>,
    auth: Auth,
    Body(b): Body<TenantBody>,
) -> ApiResult<Json<store::tenancy::Tenant>> {
    auth.require(MGR)?;
    let t = auth.tenant();
    use store::tenancy::{set, TenantSetting};
    if let Some(name) = b.name {
        if name.is_empty() || name.chars().count() > 255 || name.contains('\0') {
            return Err(ApiError::invalid("name", "name: 1 to 255 characters"));
        }
        set(&st.db, t, TenantSetting::Name(name)).await?;
    }
    if let Some(tz) = b.time_zone {
        if store::tenancy::parse_tz(&tz).is_none() {
            return Err(ApiError::invalid("time_zone", "time_zone: an IANA zone such as Asia/Tokyo"));
        }
        set(&st.db, t, TenantSetting::TimeZone(tz)).await?;
    }
    if let Some(on) = b.closed_on_national_holidays {
        set(&st.db, t, TenantSetting::ClosedOnNationalHolidays(on)).await?;
    }
    if let Some(r) = b.history_retention_days {
        use store::tenancy::{RETENTION_MAX_DAYS as MAX, RETENTION_MIN_DAYS as MIN};
        if !(MIN..=MAX).contains(&r) {
            return Err(ApiError::invalid("history_retention_days", format!("history_retention_days: {MIN} to {MAX}")));
        }
        set(&st.db, t, TenantSetting::HistoryRetentionDays(r)).await?;
    }
    if let Some(q) = b.recording_quota_bytes {
        if q < 0 {
            return Err(ApiError::invalid("recording_quota_bytes", "recording_quota_bytes: not negative"));
        }
        set(&st.db, t, TenantSetting::RecordingQuotaBytes(q)).await?;
    }
    if let Some(m) = b.session_ttl_minutes {
        use store::tenancy::{SESSION_TTL_MAX_MINUTES as MAX, SESSION_TTL_MIN_MINUTES as MIN};
        if !(MIN..=MAX).contains(&m) {
            return Err(ApiError::invalid(
                "session_ttl_minutes",
                format!("session_ttl_minutes: must be between {MIN} and {MAX}"),
            ));
        }
        set(&st.db, t, TenantSetting::SessionTtlMinutes(m)).await?;
    }
    // The zone and retention ride on every principal (see `sessions`).
    st.config.sessions.clear();
    Ok(Json(store::tenancy::get_tenant(&st.db, t).await?))
}

/// `POST /users/{id}/unlock`: an MGR lifts a user's ログインロック (and its count of failures).
async fn unlock_user(
    State(st): State<AppState>,
    auth: Auth,
    Id(id): Id,
    source: auth::ClientAddr,
) -> ApiResult<Json<Value>> {
    auth.require(MGR)?;
    let ctx = Ctx { st, auth };
    let user = resource::get(&ctx, &resources::USERS, id).await?;
    let code = store::tenancy::get_tenant(&ctx.st.db, ctx.tenant()).await?.code;
    ctx.st.config.logins.forget_account(&code, user["login"].as_str().unwrap_or(""));
    if store::accounts::unlock(&ctx.st.db, ctx.tenant(), id).await? {
        let e = store::audit::AuditEvent {
            tenant_id: ctx.tenant(),
            kind: store::audit::AuditKind::Unlocked,
            user_id: Some(id),
            login: user["login"].as_str().unwrap_or(""),
            source: &source.text(),
            actor_user_id: Some(ctx.auth.user()),
        };
        store::audit::record(&ctx.st.db, &e, store::now_ms()).await?;
    }
    Ok(Json(resource::get(&ctx, &resources::USERS, id).await?))
}

// ----------------------------------------------------------------------------------------- members

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersBody {
    user_ids: Vec<i64>,
}

async fn members_get(ctx: &Ctx, parent: &'static Spec, of: Members, id: i64) -> ApiResult<Value> {
    ctx.auth.require(parent.read)?;
    visible(ctx, parent, id).await?;
    let ids = store::membership::members(&ctx.st.db, ctx.tenant(), of, id).await?;
    Ok(json!({ "user_ids": ids }))
}

async fn members_put(ctx: &Ctx, parent: &'static Spec, of: Members, id: i64, b: MembersBody) -> ApiResult<Value> {
    ctx.auth.require(parent.write)?;
    visible(ctx, parent, id).await?;
    if b.user_ids.len() > 10_000 {
        return Err(ApiError::invalid("user_ids", "user_ids: at most 10000"));
    }
    let mut ids = b.user_ids;
    ids.sort_unstable();
    ids.dedup();
    for u in &ids {
        resource::check_ref(ctx, "user_ids", "users", *u).await?;
    }
    store::membership::replace(&ctx.st.db, ctx.tenant(), of, id, &ids).await?;
    Ok(json!({ "user_ids": ids }))
}

// --------------------------------------------------------------------------------------- call jobs

/// Whether `now` lies in [business start - 1 h, business end) in the tenant's zone.
pub fn may_start(now_local: NaiveTime, business_start: &str, business_end: &str) -> bool {
    let parse = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").ok();
    let (Some(start), Some(end)) = (parse(business_start), parse(business_end)) else { return false };
    let minutes = |t: NaiveTime| t.hour() as i64 * 60 + t.minute() as i64;
    let now = minutes(now_local);
    now >= minutes(start) - 60 && now < minutes(end)
}

async fn job_switch(ctx: &Ctx, id: i64, start: bool) -> ApiResult<Value> {
    ctx.auth.require(MGR_SV)?;
    visible(ctx, &resources::CALL_JOBS, id).await?;
    let now = store::now_ms();
    let local_now = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&ctx.auth.tz());
    let (local, today) = (local_now.time(), local_now.date_naive());
    if start {
        let row = store::call_jobs::start_check(&ctx.st.db, ctx.tenant(), id, &today.to_string()).await?;
        if row.status == "running" {
            return Err(ApiError::conflict("job_running", "the job is already running"));
        }
        if row.lists == 0 {
            return Err(ApiError::conflict("no_lists", "the job has no customer list"));
        }
        // BIZTEL §3.1: no job starts while its campaign has no results (対話結果) or while
        // 応対記録(未保存) holds records of its lists. The default statuses every tenant has
        // (store::results) do not count: the campaign's own outcomes (成約 and the like) are its own.
        if row.results == 0 {
            return Err(ApiError::conflict(
                "no_results",
                "the campaign has no results (対話結果): add them to the campaign before starting the job",
            ));
        }
        let unsaved = row.unsaved;
        if unsaved > 0 {
            return Err(ApiError::conflict(
                "unsaved_records",
                format!("{unsaved} unsaved wrap-up records (応対記録(未保存)) of the job's lists: save them before starting the job"),
            ));
        }
        // BIZTEL §1.2: a job is started and stopped within its batch's period (実施期間).
        if row.lists_in_period == 0 {
            let (from, to) = (row.period_start, row.period_end);
            return Err(ApiError::conflict(
                "outside_batch_period",
                format!(
                    "today ({today}) is outside the period of the job's batches ({} to {})",
                    from.unwrap_or_default(),
                    to.unwrap_or_default()
                ),
            ));
        }
        // Closed days (休業日): the national holidays the tenant keeps and its own closed dates.
        if let Some(why) = store::tenancy::closed_day(&ctx.st.db, ctx.tenant(), today).await? {
            return Err(ApiError::conflict("closed_day", format!("today ({today}) is a closed day: {why}")));
        }
        let (bs, be) = (row.business_start, row.business_end);
        if !may_start(local, &bs, &be) {
            return Err(ApiError::conflict(
                "outside_business_hours",
                format!("a job may start from 1 hour before {bs} until {be}"),
            ));
        }
        // The count and the switch in one statement, so two starts at once cannot both pass.
        if !store::call_jobs::start(&ctx.st.db, ctx.tenant(), id, now, resources::MAX_RUNNING_JOBS).await? {
            return Err(ApiError::conflict(
                "too_many_running_jobs",
                format!("at most {} call jobs run at once", resources::MAX_RUNNING_JOBS),
            ));
        }
    } else {
        if store::call_jobs::stop(&ctx.st.db, ctx.tenant(), id, now).await? {
            let n = AgentNotice::JobStopped { call_job_id: wire::CallJobId(u64::try_from(id).unwrap_or(0)) };
            crate::desk::notify(&ctx.st, ctx.tenant(), &n).await;
        }
    }
    crate::notify::dialers(&ctx.st, ctx.tenant(), wire::DialerNotice::JobsChanged).await;
    resource::get(ctx, &resources::CALL_JOBS, id).await
}

/// `GET /dialer/dead-letters`: what the dialer's writer could not write (results of call records
/// gone meanwhile, registrations of phones deleted, values the schema refused), for an operator.
async fn dead_letters(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(MGR)?;
    let tz = auth.tz();
    let items: Vec<Value> = store::dialing::dead_letters(&st.db, auth.tenant(), 1_000)
        .await?
        .into_iter()
        .map(|d| {
            json!({"id": d.id, "kind": d.kind, "payload": d.payload, "error": d.error, "attempts": d.attempts,
                   "created_at": store::tenancy::local_rfc3339(tz, d.created_at)})
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

// ------------------------------------------------------------------------------------- lead history

const HISTORY_WRITERS: &[Role] = &[Role::Mgr, Role::Sv, Role::Op, Role::By];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryBody {
    text: String,
}

async fn history_get(ctx: &Ctx, id: i64) -> ApiResult<Value> {
    ctx.auth.require(resources::LEADS.read)?;
    visible(ctx, &resources::LEADS, id).await?;
    let tz = ctx.auth.tz();
    let mut items = Vec::new();
    for n in store::lead_history::notes(&ctx.st.db, ctx.tenant(), id).await? {
        items.push(json!({
            "id": n.id,
            "user_id": n.user_id,
            "text": n.text,
            "created_at": store::tenancy::local_rfc3339(tz, n.created_at),
        }));
    }
    Ok(json!({ "items": items }))
}

async fn history_post(ctx: &Ctx, id: i64, b: HistoryBody) -> ApiResult<Value> {
    ctx.auth.require(HISTORY_WRITERS)?;
    visible(ctx, &resources::LEADS, id).await?;
    if b.text.is_empty() || b.text.chars().count() > 5000 || b.text.contains('\0') {
        return Err(ApiError::invalid("text", "text: 1 to 5000 characters"));
    }
    let now = store::now_ms();
    let new_id = store::lead_history::add(&ctx.st.db, ctx.tenant(), id, ctx.auth.user(), &b.text, now).await?;
    Ok(
        json!({"id": new_id, "user_id": ctx.auth.user(), "text": b.text, "created_at": store::tenancy::local_rfc3339(ctx.auth.tz(), now)}),
    )
}

// ---------------------------------------------------------------------------------- wrap-up records

const WRAPUP_SAVERS: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapupBody {
    interlocutor: Option<String>,
    result: String,
    other_tel: Option<String>,
    next_action: String,
    recall_at: Option<String>,
    #[serde(default)]
    recall_to_agent: bool,
    #[serde(default)]
    memo: String,
    state_after: String,
    pause_reason_id: Option<i64>,
    #[serde(default)]
    keep_state: bool,
}

async fn wrapup_save(ctx: &Ctx, id: i64, b: WrapupBody) -> ApiResult<Value> {
    ctx.auth.require(WRAPUP_SAVERS)?;
    visible(ctx, &resources::WRAPUP_RECORDS, id).await?;
    let one_of = |field: &str, v: &str, options: &[&str]| {
        if options.contains(&v) {
            Ok(())
        } else {
            Err(ApiError::invalid(field, format!("{field}: one of {}", options.join(", "))))
        }
    };
    if let Some(i) = &b.interlocutor {
        one_of("interlocutor", i, &["self", "other"])?;
    }
    one_of("next_action", &b.next_action, &["continue", "recall", "complete"])?;
    one_of("state_after", &b.state_after, &["continue", "break", "away", "end_job"])?;
    let live = crate::agents::record_call(&ctx.st, ctx.tenant(), id).await?;
    let after =
        crate::agents::after_wrap_up(&ctx.st, ctx.tenant(), &b.state_after, b.pause_reason_id, live.is_some()).await?;
    if b.memo.chars().count() > 5000 || b.memo.contains('\0') {
        return Err(ApiError::invalid("memo", "memo: at most 5000 characters"));
    }
    let other_tel = b.other_tel.as_deref().map(|t| resource::tel("other_tel", t)).transpose()?;
    let recall_at = match (b.next_action.as_str(), &b.recall_at) {
        ("recall", Some(at)) => Some(
            chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|_| ApiError::invalid("recall_at", "recall_at: an RFC 3339 date-time"))?
                .timestamp_millis(),
        ),
        ("recall", None) => return Err(ApiError::invalid("recall_at", "recall_at: required for a recall")),
        _ => None,
    };
    let rc = store::records::record_context(&ctx.st.db, ctx.tenant(), id).await?;
    let system = store::results::is_fixed(&b.result);
    // CALLTREE's 再コール is saved with a recall; a クレーム never is (the lead is stopped).
    match (b.result.as_str(), b.next_action.as_str()) {
        ("recall", na) if na != "recall" => {
            return Err(ApiError::invalid("next_action", "next_action: 再コール is saved with a recall (recall_at)"));
        }
        ("complaint", "recall") => {
            return Err(ApiError::invalid(
                "next_action",
                "next_action: a クレーム is not recalled (the lead is stopped)",
            ));
        }
        _ => {}
    }
    let numbered = match (b.result.parse::<i64>(), rc.campaign_id) {
        (Ok(n), Some(c)) => store::results::campaign_has_number(&ctx.st.db, ctx.tenant(), c, n).await?,
        _ => false,
    };
    if !system && !numbered {
        return Err(ApiError::invalid("result", "result: a system result or a result number of the campaign"));
    }
    let save = store::records::WrapupSave {
        interlocutor: b.interlocutor,
        result: b.result,
        other_tel,
        next_action: b.next_action,
        recall_at,
        recall_to_agent: b.recall_to_agent,
        memo: b.memo,
        state_after: b.state_after,
    };
    let recall_to = (save.next_action == "recall" && save.recall_to_agent).then_some(rc.agent_user_id).flatten();
    store::records::save_wrapup(&ctx.st.db, ctx.tenant(), id, &save, ctx.auth.user(), store::now_ms()).await?;
    if let (Some(agent), Some(lead)) = (recall_to, rc.lead_id) {
        if let Some(r) = store::records::open_recall_of(&ctx.st.db, ctx.tenant(), lead).await? {
            let n = AgentNotice::RecallAssigned {
                agent_id: wire::AgentId(u64::try_from(agent).unwrap_or(0)),
                recall_id: u64::try_from(r.0).unwrap_or(0),
                lead_id: wire::LeadId(u64::try_from(lead).unwrap_or(0)),
                due_at_ms: r.1.and_then(|d| u64::try_from(d).ok()),
            };
            crate::desk::notify(&ctx.st, ctx.tenant(), &n).await;
        }
    }
    if let (Some((agent, call)), false) = (live, b.keep_state) {
        crate::agents::wrap_up_saved(&ctx.st, &ctx.auth, agent, call, after).await?;
    }
    resource::get(ctx, &resources::WRAPUP_RECORDS, id).await
}

// ------------------------------------------------------------------------------------- number lists

/// A number list's file is at most 5 MB (cloudcallcenter-manual §10.13: "csvの容量が5MBを超えている"
/// files are refused), counted in bytes as the manual's MB.
pub const NUMBER_UPLOAD_MAX_BYTES: usize = 5_000_000;
async fn numbers_upload(ctx: &Ctx, spec: &'static Spec, list: NumberList, body: Bytes) -> ApiResult<Value> {
    ctx.auth.require(spec.write)?;
    if body.len() > NUMBER_UPLOAD_MAX_BYTES {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "a number list's file is at most 5 MB")
            .with_field("body"));
    }
    // The lead import's decoder: UTF-8 (BOM allowed) or Shift_JIS/CP932, detected the same way.
    let mut text = String::new();
    std::io::Read::read_to_string(&mut crate::import::csv::decode::DecodeReader::new(&body[..], None), &mut text)
        .map_err(|_| {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_encoding", "the file is neither UTF-8 nor Shift_JIS")
                .with_field("body")
        })?;
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut numbers: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i as i64 + 1;
        let Ok(rec) = rec else {
            errors.push(json!({"row": row, "message": "number:書式が正しくありません"}));
            continue;
        };
        let raw = rec.get(0).unwrap_or("").trim();
        if row == 1 && (raw.eq_ignore_ascii_case("number") || raw == "電話番号" || raw.eq_ignore_ascii_case("tel"))
        {
            continue;
        }
        if raw.is_empty() && rec.len() <= 1 {
            continue;
        }
        let tel = match resource::tel("number", raw) {
            Ok(t) => t,
            Err(e) => {
                errors.push(json!({"row": row, "message": e.message}));
                continue;
            }
        };
        let note: String = rec.get(1).unwrap_or("").trim().chars().take(255).collect();
        numbers.push((tel, note));
    }
    let total = numbers.len() as i64;
    // A number already listed (or repeated in the file) is a duplicate; the file is added whole or
    // not at all.
    let added = store::number_lists::add(&ctx.st.db, ctx.tenant(), list, &numbers, store::now_ms()).await?;
    Ok(json!({"added": added, "duplicates": total - added, "errors": errors}))
}

const BULK_MAX: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteBody {
    ids: Option<Vec<i64>>,
    numbers: Option<Vec<String>>,
    all: Option<bool>,
}

async fn numbers_delete(ctx: &Ctx, spec: &'static Spec, list: NumberList, b: BulkDeleteBody) -> ApiResult<Value> {
    ctx.auth.require(spec.delete)?;
    let chosen = match (b.ids, b.numbers, b.all == Some(true)) {
        (None, None, true) => Chosen::All,
        (Some(ids), None, false) => Chosen::Ids(ids),
        (None, Some(numbers), false) => {
            Chosen::Numbers(numbers.iter().map(|n| resource::tel("numbers", n)).collect::<ApiResult<Vec<_>>>()?)
        }
        _ => return Err(ApiError::invalid("ids", "ids: give exactly one of ids, numbers or all: true")),
    };
    let too_many = match &chosen {
        Chosen::Ids(ids) if ids.len() > BULK_MAX => Some("id"),
        Chosen::Numbers(numbers) if numbers.len() > BULK_MAX => Some("number"),
        _ => None,
    };
    if let Some(column) = too_many {
        return Err(ApiError::invalid(column, format!("{column}: at most {BULK_MAX} per request")));
    }
    let deleted = store::number_lists::delete(&ctx.st.db, ctx.tenant(), list, &chosen).await?;
    Ok(json!({ "deleted": deleted }))
}

#[cfg(test)]
mod tests {
    use super::may_start;
    use chrono::NaiveTime;

    #[test]
    fn job_start_window() {
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").unwrap();
        assert!(!may_start(t("07:59"), "09:00", "18:00"));
        assert!(may_start(t("08:00"), "09:00", "18:00"));
        assert!(may_start(t("17:59"), "09:00", "18:00"));
        assert!(!may_start(t("18:00"), "09:00", "18:00"));
        assert!(may_start(t("00:00"), "00:30", "23:00"));
    }
}
