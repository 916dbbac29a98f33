//! Callbacks (折り返し呼, SPEC 9): calls to return, registered from a call of the call history (or
//! by hand by a supervisor or manager), claimed by agents, assigned by admins, completed.
//!
//! Invariants:
//! - Every write of a callback is one `UPDATE` whose `WHERE` holds the version the writer read
//!   (and, for an agent's claim, that no one is assigned); a write that matches no row is a 409
//!   with the floor's text [`CONFLICT_TEXT`], never a silent overwrite: of two agents claiming the
//!   same record exactly one wins.
//! - The status changes only once someone is assigned; an agent changes it only on its own
//!   callbacks; only MGR and SV assign others, relabel or register by hand.
//! - MGR, SV and OP see every callback of their tenant (a callback is handed between agents whatever
//!   the campaign of its call); BIZ and BY none.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use store::accounts::Role;
use store::callbacks::SORTS;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Id, Params};
use crate::openapi::schema_ref;
use crate::recordings::{parse_date, parse_int};
use crate::resource::{self, check_ref, Ctx};
use crate::{AppState, Op, Registry};

/// The seed's text for a record someone else changed first (BIZTEL 折り返し呼 4.2).
pub const CONFLICT_TEXT: &str = "このレコードは既に更新されています。(Code:409)";
/// Who reads callbacks and registers them from a call, claims them, edits memos.
pub const READ: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];
/// Who assigns anyone, relabels, and registers by hand.
pub const ADMINS: &[Role] = &[Role::Mgr, Role::Sv];
pub use store::callbacks::STATUSES;
const MEMO_MAX: usize = 5000;
const LABEL_MAX: usize = 255;
const LIMIT_MAX: i64 = 500;

fn conflict() -> ApiError {
    ApiError::conflict("conflict", CONFLICT_TEXT)
}

pub fn schemas() -> Vec<(&'static str, Value)> {
    let nullable_text =
        |max: usize, doc: &str| json!({"type": ["string", "null"], "maxLength": max, "description": doc});
    vec![
        (
            "Callback",
            json!({"type": "object", "description": "折り返し呼: a call to return.",
            "required": ["id", "registered_at", "number", "name", "campaign_id", "campaign_name", "label", "call_record_id",
                         "memo", "status", "assignee_user_id", "assignee_name", "recording_id", "version", "updated_at"],
            "properties": {
                "id": {"type": "integer", "description": "折り返し呼ID."},
                "registered_at": {"type": "string", "format": "date-time", "description": "登録日時: when it was registered (not the call's time)."},
                "number": {"type": "string", "description": "相手の番号."},
                "name": {"type": ["string", "null"], "description": "相手の名前 from the phone book (共通電話帳); null when the number is not in it (shown -)."},
                "campaign_id": {"type": ["integer", "null"]},
                "campaign_name": {"type": ["string", "null"], "description": "コールセンター: the campaign's name."},
                "label": {"type": ["string", "null"], "description": "業務ラベル."},
                "call_record_id": {"type": ["integer", "null"], "description": "リクエストID: the call it was registered from."},
                "memo": {"type": "string"},
                "status": {"type": "string", "enum": STATUSES, "description": "対応状況: open (未完了) or done (完了)."},
                "assignee_user_id": {"type": ["integer", "null"], "description": "担当者; null when no one is assigned (shown -)."},
                "assignee_name": {"type": ["string", "null"]},
                "recording_id": {"type": ["integer", "null"], "description": "The call's recording, when there is one (GET /callbacks/{id}/audio)."},
                "version": {"type": "integer", "description": "Grows with every change; a write names the version it read."},
                "registered_by": {"type": ["integer", "null"]},
                "updated_at": {"type": "string", "format": "date-time"},
                "completed_at": {"type": ["string", "null"], "format": "date-time"},
                "dialled_at": {"type": ["string", "null"], "format": "date-time", "description": "Last dialled from the desktop."},
                "dialled_call_id": {"type": ["integer", "null"], "description": "The call placed by that dial, once the dialer wrote it."}}}),
        ),
        (
            "CallbackCreate",
            json!({"type": "object", "additionalProperties": false,
            "description": "Either call_id (a call of the call history: its number, campaign and recording) or, for MGR and SV, number.",
            "properties": {
                "call_id": {"type": "integer", "minimum": 1, "description": "The call (call_records id) to return; registering it twice answers the existing callback (200)."},
                "number": {"type": "string", "minLength": 1, "maxLength": 60, "description": "By hand (MGR, SV): the number to call back."},
                "campaign_id": {"type": ["integer", "null"], "minimum": 1},
                "label": nullable_text(LABEL_MAX, "業務ラベル."),
                "memo": {"type": "string", "maxLength": MEMO_MAX},
                "assignee_user_id": {"type": ["integer", "null"], "minimum": 1, "description": "Assign at once (an OP only itself)."}}}),
        ),
        (
            "CallbackUpdate",
            json!({"type": "object", "additionalProperties": false, "properties": {
                "version": {"type": "integer", "minimum": 1, "description": "The version read: a newer record answers 409 (このレコードは既に更新されています。(Code:409))."},
                "status": {"type": "string", "enum": STATUSES, "description": "Only once someone is assigned; an OP only on its own callbacks."},
                "memo": {"type": "string", "maxLength": MEMO_MAX},
                "label": nullable_text(LABEL_MAX, "業務ラベル (MGR, SV)."),
                "assignee_user_id": {"type": ["integer", "null"], "minimum": 1, "description": "担当者 (MGR, SV): assign, reassign, or null to unassign."}}}),
        ),
        (
            "CallbackAssign",
            json!({"type": "object", "additionalProperties": false, "properties": {
                "version": {"type": "integer", "minimum": 1, "description": "The version read: a newer record answers 409."},
                "user_id": {"type": "integer", "minimum": 1, "description": "MGR, SV: whom to assign (default: the caller). An OP assigns only itself, and only a callback no one has."}}}),
        ),
        (
            "CallbackList",
            json!({"type": "object", "required": ["items", "total", "limit", "offset", "newest_id"], "properties": {
                "items": {"type": "array", "items": schema_ref("Callback")},
                "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
                "newest_id": {"type": ["integer", "null"], "description": "The newest callback the caller may see (under any filter): a page compares it with the one it last saw to count new ones."}}}),
        ),
    ]
}

fn op(method: &'static str, path: &str, summary: &str, roles: &[Role]) -> Op {
    Op {
        method,
        path: path.to_string(),
        summary: summary.to_string(),
        tag: "callbacks",
        roles: Some(roles.to_vec()),
        request: None,
        response: (200, "application/json", schema_ref("Callback")),
        errors: vec![400, 401, 403, 404, 409, 422],
        query: vec![],
    }
}

pub fn mount(reg: &mut Registry) {
    let mut o = op("get", "/callbacks", "折り返し呼: list, filtered and sorted", READ);
    o.response = (200, "application/json", schema_ref("CallbackList"));
    o.errors = vec![400, 401, 403];
    let q = |name: &str, schema: Value, doc: &str| (name.to_string(), schema, doc.to_string());
    let sorts: Vec<String> = SORTS.iter().flat_map(|n| [n.to_string(), format!("-{n}")]).collect();
    o.query = vec![
        q(
            "q",
            json!({"type": "string", "maxLength": 200}),
            "Every word in the number, name, campaign, label, assignee or memo.",
        ),
        q("status", json!({"type": "string"}), "open, done, or both comma-separated."),
        q(
            "assignee",
            json!({"type": "string"}),
            "User ids, none (unassigned), me (the caller), others (anyone but the caller), comma-separated.",
        ),
        q("number", json!({"type": "string", "maxLength": 60}), "Numbers containing these digits."),
        q("label", json!({"type": "string", "maxLength": 255}), "Labels containing this text."),
        q("campaign_id", json!({"type": "integer", "minimum": 1}), "One campaign."),
        q("date_from", json!({"type": "string", "format": "date"}), "Registered on or after this local date."),
        q("date_to", json!({"type": "string", "format": "date"}), "Registered on or before this local date."),
        q("sort", json!({"type": "string", "enum": sorts}), "Sort column; prefix - for descending (default -id)."),
        q("limit", json!({"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": 50}), "Page size."),
        q("offset", json!({"type": "integer", "minimum": 0, "default": 0}), "Records to skip."),
    ];
    reg.add(
        o,
        get(|State(st): State<AppState>, auth: Auth, p: Params| async move { list(&Ctx { st, auth }, &p).await.map(Json) })
            .post(|State(st): State<AppState>, auth: Auth, Body(b): Body<CreateBody>| async move {
                create(&Ctx { st, auth }, b).await.map(|(s, v)| (s, Json(v)))
            }),
    );
    let mut o =
        op("post", "/callbacks", "Register a callback from a call (call_id), or by hand (MGR, SV: number)", READ);
    o.request = Some(("application/json", schema_ref("CallbackCreate")));
    o.response = (201, "application/json", schema_ref("Callback"));
    reg.ops.push(o);

    reg.add(
        op("get", "/callbacks/{id}", "One callback", READ),
        get(|State(st): State<AppState>, auth: Auth, Id(id): Id| async move {
            let ctx = Ctx { st, auth };
            ctx.auth.require(READ)?;
            fetch(&ctx, id).await.map(Json)
        })
        .patch(|State(st): State<AppState>, auth: Auth, Id(id): Id, Body(b): Body<UpdateBody>| async move {
            update(&Ctx { st, auth }, id, b).await.map(Json)
        }),
    );
    let mut o = op(
        "patch",
        "/callbacks/{id}",
        "Change a callback: memo; status (once assigned); label and assignee (MGR, SV)",
        READ,
    );
    o.request = Some(("application/json", schema_ref("CallbackUpdate")));
    reg.ops.push(o);

    let mut o =
        op("get", "/callbacks/{id}/audio", "The recording of the call a callback was registered from (録音再生)", READ);
    o.response = (200, "audio/*", json!({"type": "string", "format": "binary"}));
    o.errors = vec![401, 403, 404, 410];
    reg.add(
        o,
        get(|State(st): State<AppState>, auth: Auth, Id(id): Id| async move { audio(&Ctx { st, auth }, id).await }),
    );

    let mut o = op(
        "post",
        "/agent/callbacks/{id}/dial",
        "折り返し発信: the assignee calls the customer back from its running call job (the lead with the number in the job's lists, else a new one), through every check of a dial (do-not-call, channel limits, business hours)",
        crate::desk::AGENTS,
    );
    o.request = Some(("application/json", json!({"type": "object", "additionalProperties": false})));
    o.response = (
        202,
        "application/json",
        json!({"type": "object", "required": ["message_id", "lead_id"], "properties": {
            "message_id": {"type": "string"}, "lead_id": {"type": "integer"}}}),
    );
    reg.add(
        o,
        post(|State(st): State<AppState>, auth: Auth, Id(id): Id| async move { dial(&Ctx { st, auth }, id).await }),
    );

    let mut o = op(
        "post",
        "/callbacks/{id}/assign",
        "担当者を割り当てます: an agent takes the callback (409 when someone took it first); MGR, SV assign anyone",
        READ,
    );
    o.request = Some(("application/json", schema_ref("CallbackAssign")));
    reg.add(
        o,
        post(|State(st): State<AppState>, auth: Auth, Id(id): Id, Body(b): Body<AssignBody>| async move {
            assign(&Ctx { st, auth }, id, b).await.map(Json)
        }),
    );
}

// ------------------------------------------------------------------------------------------ reads

fn row_json(ctx: &Ctx, c: &store::callbacks::Callback) -> Value {
    let tz = ctx.auth.tz();
    let instant = |ms: Option<i64>| json!(ms.map(|ms| store::tenancy::local_rfc3339(tz, ms)));
    json!({
        "id": c.id,
        "campaign_id": c.campaign_id,
        "call_record_id": c.call_record_id,
        "assignee_user_id": c.assignee_user_id,
        "registered_by": c.registered_by,
        "version": c.version,
        "recording_id": c.recording_id,
        "dialled_call_id": c.dialled_call_id,
        "number": c.number,
        "name": c.name,
        "campaign_name": c.campaign_name,
        "label": c.label,
        "memo": c.memo,
        "status": c.status,
        "assignee_name": c.assignee_name,
        "registered_at": instant(Some(c.registered_at)),
        "updated_at": instant(Some(c.updated_at)),
        "completed_at": instant(c.completed_at),
        "dialled_at": instant(c.dialled_at),
    })
}

/// Anyone who sees the callback hears its call (an OP too, though the call was a colleague's).
async fn audio(ctx: &Ctx, id: i64) -> ApiResult<axum::response::Response> {
    ctx.auth.require(READ)?;
    let cb = fetch(ctx, id).await?;
    let rid = cb["recording_id"].as_i64().ok_or_else(ApiError::not_found)?;
    let r = store::recordings::get(&ctx.st.db, ctx.tenant(), rid).await?;
    crate::recordings::serve(&r).await
}

pub async fn fetch(ctx: &Ctx, id: i64) -> ApiResult<Value> {
    let c = store::callbacks::get(&ctx.st.db, ctx.tenant(), id).await?.ok_or_else(ApiError::not_found)?;
    Ok(row_json(ctx, &c))
}

async fn list(ctx: &Ctx, p: &Params) -> ApiResult<Value> {
    ctx.auth.require(READ)?;
    use store::callbacks::{Assignee, Condition};
    let (mut limit, mut offset) = (50i64, 0i64);
    let mut sort = None;
    let mut conds: Vec<Condition> = Vec::new();
    let tz = ctx.auth.tz();
    let mut q = None;
    for (k, v) in &p.0 {
        match k.as_str() {
            "q" => {
                if v.chars().count() > 200 || v.contains('\0') {
                    return Err(ApiError::bad_request("q", "q: at most 200 characters"));
                }
                q = Some(v.clone());
            }
            "status" => {
                let mut ors = Vec::new();
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let Some(known) = STATUSES.iter().find(|k| **k == s) else {
                        return Err(ApiError::bad_request("status", "status: open, done, or both comma-separated"));
                    };
                    ors.push(*known);
                }
                conds.push(Condition::Status(ors));
            }
            "assignee" => {
                let mut ors = Vec::new();
                for a in v.split(',').map(str::trim).filter(|s| !s.is_empty()).take(100) {
                    match a {
                        "none" => ors.push(Assignee::Nobody),
                        "me" => ors.push(Assignee::Is(ctx.auth.user())),
                        "others" => ors.push(Assignee::IsNot(ctx.auth.user())),
                        n => ors.push(Assignee::Is(parse_int("assignee", n, 1, i64::MAX)?)),
                    }
                }
                conds.push(Condition::Assignee(ors));
            }
            "number" => {
                let digits: String = v.chars().filter(char::is_ascii_digit).collect();
                if digits.is_empty() || digits.len() > 30 {
                    return Err(ApiError::bad_request("number", "number: 1 to 30 digits"));
                }
                conds.push(Condition::NumberContains(digits));
            }
            "label" => {
                if v.chars().count() > LABEL_MAX || v.contains('\0') {
                    return Err(ApiError::bad_request("label", "label: at most 255 characters"));
                }
                conds.push(Condition::Label(v.clone()));
            }
            "campaign_id" => conds.push(Condition::Campaign(parse_int("campaign_id", v, 1, i64::MAX)?)),
            "date_from" | "date_to" => {
                let bad = || ApiError::bad_request(k.as_str(), format!("{k}: a date YYYY-MM-DD"));
                let d: chrono::NaiveDate = parse_date(k, v)?.parse().map_err(|_| bad())?;
                if k == "date_from" {
                    conds.push(Condition::RegisteredFrom(store::tenancy::local_midnight_ms(tz, d)));
                } else {
                    let next = d.succ_opt().ok_or_else(bad)?;
                    conds.push(Condition::RegisteredBefore(store::tenancy::local_midnight_ms(tz, next)));
                }
            }
            "sort" => {
                let (desc, name) = v.strip_prefix('-').map(|n| (true, n)).unwrap_or((false, v.as_str()));
                let Some(col) = SORTS.iter().find(|n| **n == name) else {
                    return Err(ApiError::bad_request(
                        "sort",
                        format!("sort: one of {} (prefix - for descending)", SORTS.join(", ")),
                    ));
                };
                sort = Some((*col, desc));
            }
            "limit" => limit = parse_int("limit", v, 1, LIMIT_MAX)?,
            "offset" => offset = parse_int("offset", v, 0, 1_000_000_000)?,
            other => return Err(ApiError::bad_request(other, format!("{other}: not a filter of this list"))),
        }
    }
    let query = store::callbacks::ListQuery { conditions: conds, text: q, sort, limit, offset };
    let page = store::callbacks::list(&ctx.st.db, ctx.tenant(), &query).await?;
    let items: Vec<Value> = page.items.iter().map(|c| row_json(ctx, c)).collect();
    Ok(json!({"items": items, "total": page.total, "limit": limit, "offset": offset, "newest_id": page.newest_id}))
}

// ----------------------------------------------------------------------------------------- writes

/// `Some(None)` for an explicit null, `None` when the field is absent.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    call_id: Option<i64>,
    number: Option<String>,
    campaign_id: Option<i64>,
    label: Option<String>,
    memo: Option<String>,
    assignee_user_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    version: Option<i64>,
    status: Option<String>,
    memo: Option<String>,
    #[serde(default, deserialize_with = "present")]
    label: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    assignee_user_id: Option<Option<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    version: Option<i64>,
    user_id: Option<i64>,
}

fn memo(m: Option<String>) -> ApiResult<Option<String>> {
    match m {
        Some(m) if m.chars().count() > MEMO_MAX || m.contains('\0') => {
            Err(ApiError::invalid("memo", format!("memo: at most {MEMO_MAX} characters")))
        }
        other => Ok(other),
    }
}

/// A label: trimmed; empty is none.
fn label(l: Option<String>) -> ApiResult<Option<String>> {
    let Some(l) = l else { return Ok(None) };
    let l = l.trim();
    if l.chars().count() > LABEL_MAX || l.contains('\0') {
        return Err(ApiError::invalid("label", format!("label: at most {LABEL_MAX} characters")));
    }
    Ok((!l.is_empty()).then(|| l.to_string()))
}

fn version(v: Option<i64>) -> ApiResult<Option<i64>> {
    match v {
        Some(n) if n < 1 => Err(ApiError::invalid("version", "version: the record's version (1 or more)")),
        other => Ok(other),
    }
}

fn admin(auth: &Auth) -> bool {
    ADMINS.contains(&auth.role())
}

/// Someone who may be assigned: an enabled MGR, SV or OP of the tenant.
async fn check_assignee(ctx: &Ctx, field: &str, user: i64) -> ApiResult<()> {
    if store::callbacks::is_assignable(&ctx.st.db, ctx.tenant(), user).await? {
        Ok(())
    } else {
        Err(ApiError::invalid(field, format!("{field}: no agent, supervisor or manager with this id")))
    }
}

/// The tenant's open callbacks, counted and announced (the wallboard shows them).
async fn announce_open(ctx: &Ctx) {
    match open_count(&ctx.st, ctx.tenant()).await {
        Ok(open) => {
            let n = wire::AgentNotice::CallbacksOpen { open };
            crate::desk::notify(&ctx.st, ctx.tenant(), &n).await;
        }
        Err(e) => tracing::warn!(error = %e.message, "counting open callbacks"),
    }
}

/// The tenant's open callbacks now.
pub async fn open_count(st: &AppState, tenant: i64) -> ApiResult<u64> {
    let n = store::callbacks::open_count(&st.db, tenant).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Tells the assignee's desktop (or, for a callback no one has, every agent's).
async fn push(ctx: &Ctx, callback: i64, assignee: Option<i64>) {
    let callback_id = u64::try_from(callback).unwrap_or(0);
    let n = match assignee {
        Some(a) => {
            wire::AgentNotice::CallbackAssigned { agent_id: wire::AgentId(u64::try_from(a).unwrap_or(0)), callback_id }
        }
        None => wire::AgentNotice::CallbackRegistered { callback_id },
    };
    crate::desk::notify(&ctx.st, ctx.tenant(), &n).await;
}

async fn create(ctx: &Ctx, b: CreateBody) -> ApiResult<(StatusCode, Value)> {
    ctx.auth.require(READ)?;
    let memo = memo(b.memo)?.unwrap_or_default();
    let label = label(b.label)?;
    let (number, campaign, call) = match (b.call_id, b.number) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("number", "number: give call_id or number, not both")),
        (Some(call), None) => {
            if b.campaign_id.is_some() {
                return Err(ApiError::invalid("campaign_id", "campaign_id: taken from the call"));
            }
            // The call as the caller's call history shows it (an OP's own calls).
            let own = (ctx.auth.role() == Role::Op).then(|| ctx.auth.user());
            let (tel, campaign) = store::callbacks::call_to_return(&ctx.st.db, ctx.tenant(), call, own)
                .await?
                .ok_or_else(|| ApiError::invalid("call_id", "call_id: no such call"))?;
            if let Some(existing) = registered(ctx, call).await? {
                return Ok((StatusCode::OK, fetch(ctx, existing).await?));
            }
            (tel, campaign, Some(call))
        }
        (None, Some(n)) => {
            ctx.auth.require(ADMINS).map_err(|e| e.with_field("number"))?;
            let tel = resource::tel("number", &n)?;
            if let Some(c) = b.campaign_id {
                check_ref(ctx, "campaign_id", "campaigns", c).await?;
            }
            (tel, b.campaign_id, None)
        }
        (None, None) => return Err(ApiError::invalid("call_id", "call_id: give call_id (a call) or number")),
    };
    if let Some(u) = b.assignee_user_id {
        if u != ctx.auth.user() && !admin(&ctx.auth) {
            return Err(ApiError::forbidden().with_field("assignee_user_id"));
        }
        check_assignee(ctx, "assignee_user_id", u).await?;
    }
    let now = store::now_ms();
    let new = store::callbacks::NewCallback {
        tenant_id: ctx.tenant(),
        number: &number,
        campaign_id: campaign,
        call_record_id: call,
        label: label.as_deref(),
        memo: &memo,
        assignee_user_id: b.assignee_user_id,
        registered_by: ctx.auth.user(),
    };
    let Some(id) = store::callbacks::create(&ctx.st.db, &new, now).await? else {
        // The same call registered at the same moment by someone else: theirs is the callback.
        let existing = registered(ctx, call.unwrap_or(0)).await?.ok_or_else(conflict)?;
        return Ok((StatusCode::OK, fetch(ctx, existing).await?));
    };
    push(ctx, id, b.assignee_user_id).await;
    announce_open(ctx).await;
    Ok((StatusCode::CREATED, fetch(ctx, id).await?))
}

/// The callback registered from `call`, if any.
async fn registered(ctx: &Ctx, call: i64) -> ApiResult<Option<i64>> {
    Ok(store::callbacks::registered(&ctx.st.db, ctx.tenant(), call).await?)
}

async fn current(ctx: &Ctx, id: i64) -> ApiResult<store::callbacks::Current> {
    store::callbacks::current(&ctx.st.db, ctx.tenant(), id).await?.ok_or_else(ApiError::not_found)
}

async fn update(ctx: &Ctx, id: i64, b: UpdateBody) -> ApiResult<Value> {
    ctx.auth.require(READ)?;
    let expected = version(b.version)?;
    let memo = memo(b.memo)?;
    let admin = admin(&ctx.auth);
    if !admin && b.label.is_some() {
        return Err(ApiError::forbidden().with_field("label"));
    }
    if !admin && b.assignee_user_id.is_some() {
        return Err(ApiError::forbidden().with_field("assignee_user_id"));
    }
    let label = match b.label {
        Some(l) => Some(label(l)?),
        None => None,
    };
    let status = match b.status.as_deref() {
        Some(s) if !STATUSES.contains(&s) => {
            return Err(ApiError::invalid("status", "status: open (未完了) or done (完了)"));
        }
        s => s.map(str::to_string),
    };
    let cur = current(ctx, id).await?;
    let assignee = match b.assignee_user_id {
        Some(Some(u)) => {
            check_assignee(ctx, "assignee_user_id", u).await?;
            Some(u)
        }
        Some(None) => None,
        None => cur.assignee,
    };
    if status.is_some() {
        match assignee {
            None => {
                return Err(ApiError::invalid("status", "status: assign someone first (担当者を割り当ててください)"))
            }
            Some(a) if !admin && a != ctx.auth.user() => return Err(ApiError::forbidden().with_field("status")),
            _ => {}
        }
    }
    let change = store::callbacks::Change {
        memo,
        label,
        assignee_user_id: b.assignee_user_id.map(|_| assignee),
        status: status.clone(),
    };
    if change.is_empty() {
        // Nothing to change.
        return fetch(ctx, id).await;
    }
    let version = expected.unwrap_or(cur.version);
    if !store::callbacks::update(&ctx.st.db, ctx.tenant(), id, version, change, store::now_ms()).await? {
        return Err(conflict());
    }
    if let (Some(_), Some(a)) = (b.assignee_user_id, assignee) {
        if cur.assignee != Some(a) {
            push(ctx, id, Some(a)).await;
        }
    }
    if status.is_some() {
        announce_open(ctx).await;
    }
    fetch(ctx, id).await
}

async fn assign(ctx: &Ctx, id: i64, b: AssignBody) -> ApiResult<Value> {
    ctx.auth.require(READ)?;
    let expected = version(b.version)?;
    let me = ctx.auth.user();
    let admin = admin(&ctx.auth);
    let target = b.user_id.unwrap_or(me);
    if target != me {
        if !admin {
            return Err(ApiError::forbidden().with_field("user_id"));
        }
        check_assignee(ctx, "user_id", target).await?;
    } else if ctx.auth.role() != Role::Op {
        check_assignee(ctx, "user_id", target).await?;
    }
    // An agent takes only a callback no one has.
    let claim =
        store::callbacks::assign(&ctx.st.db, ctx.tenant(), id, target, expected, !admin, store::now_ms()).await?;
    let won = match claim {
        store::callbacks::Claim::Missing => return Err(ApiError::not_found()),
        claim => claim == store::callbacks::Claim::Won,
    };
    if !won {
        // There, but changed by someone else (a missing one, or another tenant's, is 404 above).
        return Err(conflict());
    }
    push(ctx, id, Some(target)).await;
    fetch(ctx, id).await
}

// ------------------------------------------------------------------------------------------ dial

async fn dial(ctx: &Ctx, id: i64) -> ApiResult<(StatusCode, Json<Value>)> {
    use store::desktop as desk;
    ctx.auth.require(crate::desk::AGENTS)?;
    let cb = fetch(ctx, id).await?;
    let me = ctx.auth.user();
    if cb["assignee_user_id"].as_i64() != Some(me) {
        return Err(ApiError::conflict("not_yours", "assign the callback to yourself before calling back"));
    }
    if cb["status"] != "open" {
        return Err(ApiError::conflict("done", "the callback is complete"));
    }
    let (w, job) = crate::desk::session_job(&ctx.st, &ctx.auth).await?;
    let number = cb["number"].as_str().unwrap_or_default().to_string();
    let (t, now) = (ctx.tenant(), store::now_ms());
    let found = desk::search_leads(&ctx.st.db, t, job.id, me, desk::LeadQuery::Tel(&number), now, 1).await?;
    let lead = match found.first() {
        Some(l) if l.held_by_other => {
            return Err(ApiError::conflict("held_by_other", "another agent works this number now"));
        }
        Some(l) => l.id,
        None => {
            // A number the job does not hold: a lead of the job's first list, named as the phone book names it.
            let lists = desk::job_lists(&ctx.st.db, t, job.id).await?;
            let list =
                lists.first().ok_or_else(|| ApiError::conflict("no_lists", "the call job has no customer list"))?;
            let name = cb["name"].as_str().map(str::to_string).unwrap_or_else(|| number.clone());
            let max = crate::resources::MAX_LEADS_PER_LIST;
            match desk::create_lead(&ctx.st.db, t, list, &name, "", &number, me, now, store::preview::HOLD_MS, max)
                .await?
            {
                Ok(id) => id,
                Err(desk::CreateRefused::DuplicateTel) => {
                    return Err(ApiError::conflict(
                        "lead_done",
                        "the number's lead in your call job is complete: call back from a job that still holds it",
                    ))
                }
                Err(desk::CreateRefused::ListFull) => {
                    return Err(ApiError::conflict("list_full", "the call job's list is full"))
                }
            }
        }
    };
    // Recorded before the dial: the dialer spares a callback's lead the once-per-run rule.
    let before = store::callbacks::dialled(&ctx.st.db, t, id).await?;
    let dial = store::callbacks::Dialled { lead_id: Some(lead), at: Some(now), by: Some(me) };
    store::callbacks::set_dialled(&ctx.st.db, t, id, dial).await?;
    match crate::desk::place(&ctx.st, &ctx.auth, &w, &job, lead, true, None).await {
        Ok((status, Json(mut v))) => {
            v["callback_id"] = Value::from(id);
            Ok((status, Json(v)))
        }
        Err(e) => {
            store::callbacks::set_dialled(&ctx.st.db, t, id, before).await?;
            Err(e)
        }
    }
}
