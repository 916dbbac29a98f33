//! The agent desktop's endpoints (SPEC 5, 12; the page is `/ui/agent`): what an agent's own screen
//! reads and does beyond the commands of [`crate::agents`].
//!
//! - `GET /agent/stream` (+ `POST /agent/tickets`): the push channel ([`stream`]), server-sent
//!   events: the agent's transitions, the customer bridged to it with the lead id, notices, its
//!   campaign's remaining leads, its colleagues' states. Resumes after `Last-Event-ID`.
//! - `GET /agent/desk`: the agent's screen whole (state, call job, remaining leads, recall counts):
//!   what the stream sends first, for a page that (re)loads.
//! - `GET /agent/jobs`: the running call jobs the caller may start (発信開始).
//! - `GET /agent/leads/{id}` (the screen pop: the lead, its custom fields, every earlier contact by
//!   any agent, its history) and `PATCH /agent/leads/{id}` (the agent corrects the lead's details,
//!   recorded in its history): an OP only for the lead it works (held for it, its current call,
//!   its unsaved record, its recall). MGR and SV read every lead anyway.
//! - the agent-driven list modes (ComDesk): `GET /agent/leads?q=|tel=` (standard: search the job's
//!   leads; dial: the leads with a number), `POST /agent/leads` (dial: an unknown number becomes a
//!   lead of a list of the job), `POST /agent/dial` (dial a lead or one of the agent's recalls now:
//!   held for the agent, then placed by the dialer through every check of a paced dial: control's
//!   `preview_dial`). Distribute hands leads out through `POST /agent/preview` (the preview hold).
//! - `GET /agent/caller-ids` (発番号: the caller IDs a manual dial may go out with; `POST
//!   /agent/dial`'s `caller_id`, counted against that number's channel limit).
//! - `GET /agent/recalls` (再コール一覧), `GET /agent/presence` (the colleagues of the agent's
//!   dialing groups and their states).
//! - パーク保留: `POST /agent/calls/{id}/park`, `GET /agent/parked`, `POST /agent/parked/{id}/pick-up`
//!   ([`park`]).

pub mod hub;
mod park;
mod stream;

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use store::accounts::Role;
use store::desktop::{self as desk, Mode};
use wire::agent::{AgentId, AgentState, AgentView};
use wire::{ApiCommand, CallJobId, CallerIdId, CampaignId, LeadId};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Params};
use crate::{AppState, Op, Registry};

/// Who works calls: OP, and MGR / SV acting for themselves.
pub(crate) const AGENTS: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];

/// Earlier contacts the screen pop shows at most.
const MAX_CONTACTS: i64 = 200;
/// Leads a search returns at most.
const MAX_SEARCH: i64 = 50;

fn op(method: &'static str, path: &str, summary: &str, response: Value) -> Op {
    Op {
        method,
        path: path.to_string(),
        summary: summary.to_string(),
        tag: "agents",
        roles: Some(AGENTS.to_vec()),
        request: None,
        response: (200, "application/json", response),
        errors: vec![400, 401, 403, 404, 409, 422],
        query: vec![],
    }
}

fn obj() -> Value {
    json!({"type": "object"})
}

/// Registers the endpoints.
pub fn mount(reg: &mut Registry) {
    stream::mount(reg);
    park::mount(reg);
    reg.add(
        op(
            "get",
            "/agent/desk",
            "The caller's desk whole: state, the call job worked (mode, result codes), remaining leads, the current call's lead, recall counts",
            obj(),
        ),
        get(desk_get),
    );
    reg.add(
        op(
            "get",
            "/agent/jobs",
            "The running call jobs the caller may start (発信開始); empty: 登録がありません",
            obj(),
        ),
        get(jobs),
    );
    let mut search = op(
        "get",
        "/agent/leads",
        "The caller's call job's open leads: q (standard mode: name, kana, or the start of the number) or tel (standard and dial modes: exactly this number)",
        obj(),
    );
    search.query = vec![
        ("q".into(), json!({"type": "string", "maxLength": 64}), "Name, kana or the start of the number.".into()),
        ("tel".into(), json!({"type": "string", "maxLength": 30}), "Exactly this number.".into()),
    ];
    reg.add(search, get(search_leads).post(create_lead));
    let mut create = op(
        "post",
        "/agent/leads",
        "Dial mode: a number nobody has (データがありません) becomes a lead of a list of the caller's call job, held for the caller",
        obj(),
    );
    create.request = Some((
        "application/json",
        json!({"type": "object", "required": ["name", "tel"], "additionalProperties": false, "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255}, "kana": {"type": "string", "maxLength": 255},
            "tel": {"type": "string", "maxLength": 30}, "list_id": {"type": "integer", "minimum": 1}}}),
    ));
    create.response.0 = 201;
    reg.ops.push(create);
    reg.add(
        op(
            "get",
            "/agent/leads/{id}",
            "The screen pop: the lead (custom fields, tags, attempts, last result), every earlier contact with it by any agent, its history. OP: only the lead it works",
            obj(),
        ),
        get(lead_get).patch(lead_patch),
    );
    let mut patch = op(
        "patch",
        "/agent/leads/{id}",
        "Correct the details (name, kana, remarks, custom fields) of the lead the caller works; recorded in the lead's history",
        obj(),
    );
    patch.request = Some((
        "application/json",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255}, "kana": {"type": "string", "minLength": 1, "maxLength": 255},
            "remarks": {"type": ["string", "null"], "maxLength": 1000}, "custom": {"type": "object"}}}),
    ));
    reg.ops.push(patch);
    let mut dial = op(
        "post",
        "/agent/dial",
        "Dial now: a lead of the caller's call job (standard and dial modes, or one held for the caller) or one of the caller's recalls; the dialer places it through every check (do-not-call: 発信規制 and no call, channel limits, business hours, the number in a call)",
        json!({"type": "object", "required": ["message_id", "lead_id"], "properties": {
            "message_id": {"type": "string"}, "lead_id": {"type": "integer"}}}),
    );
    dial.request = Some((
        "application/json",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "lead_id": {"type": "integer", "minimum": 1}, "recall_id": {"type": "integer", "minimum": 1},
            "caller_id": {"type": "integer", "minimum": 1}}}),
    ));
    dial.response.0 = 202;
    reg.add(dial, post(dial_now));
    reg.add(
        op(
            "get",
            "/agent/caller-ids",
            "発番号: the caller IDs the caller may dial from (the tenant's), and the one its call job uses unless it picks one (null: withheld, 184)",
            json!({"type": "object", "required": ["items", "default"], "properties": {
                "items": {"type": "array"}, "default": {"type": ["string", "null"]}}}),
        ),
        get(caller_ids),
    );
    reg.add(
        op("get", "/agent/recalls", "再コール一覧: the caller's open recalls, the earliest due first", obj()),
        get(recalls),
    );
    reg.add(
        op("get", "/agent/presence", "The colleagues of the caller's dialing groups and their states", obj()),
        get(presence),
    );
}

/// A JSON body, read after the role check (a refused role gets 403 whatever it sent), with the
/// checks of every JSON body (content type, size, time).
async fn json_body<T: serde::de::DeserializeOwned>(req: axum::extract::Request) -> ApiResult<T> {
    use axum::extract::FromRequest;
    crate::extract::Body::<T>::from_request(req, &()).await.map(|b| b.0)
}

fn me(auth: &Auth) -> u64 {
    u64::try_from(auth.user()).unwrap_or(0)
}

fn tz_time(auth: &Auth, ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |t| Value::from(store::tenancy::local_rfc3339(auth.tz(), t)))
}

/// The caller's committed state, call job and current call.
pub(crate) struct Working {
    pub view: Option<AgentView>,
    pub job: Option<desk::DeskJob>,
}

impl Working {
    fn call(&self) -> Option<i64> {
        self.view.and_then(|v| v.call_id).and_then(|c| i64::try_from(c.0).ok())
    }

    pub(crate) fn in_session(&self) -> bool {
        self.view.is_some_and(|v| v.state != AgentState::Offline)
    }
}

pub(crate) async fn working(st: &AppState, auth: &Auth) -> ApiResult<Working> {
    let row = desk::agent_row(&st.db, auth.tenant(), auth.user()).await?;
    let view = row.as_ref().and_then(|r| serde_json::from_str::<AgentView>(&r.view).ok());
    let job = match row.and_then(|r| r.call_job_id) {
        Some(j) => desk::job(&st.db, auth.tenant(), j).await?,
        None => None,
    };
    Ok(Working { view, job })
}

fn job_json(auth: &Auth, j: &desk::DeskJob) -> Value {
    json!({
        "id": j.id, "name": j.name, "status": j.status, "campaign_id": j.campaign_id, "campaign_name": j.campaign_name,
        "mode": j.mode.as_str(), "dialing_group_id": j.dialing_group_id, "started_at": tz_time(auth, j.started_at),
        "business_start": j.business_start, "business_end": j.business_end, "acw_seconds": j.acw_seconds,
        "notes": j.notes,
    })
}

/// CALLTREE's default statuses (不通, FAX, 現アナ, 見込, 再コール, クレーム), offered on every wrap-up form
/// after the campaign's numbered results; the page names them from its catalogue.
fn default_results() -> Value {
    json!(store::results::default_statuses().map(|f| json!({"key": f.key, "connected": f.connect})).collect::<Vec<_>>())
}

/// The desk whole (also the stream's first event).
pub(crate) async fn desk_json(st: &AppState, auth: &Auth) -> ApiResult<Value> {
    let w = working(st, auth).await?;
    let t = auth.tenant();
    let (job, remaining, codes) = match &w.job {
        Some(j) if w.in_session() => (
            job_json(auth, j),
            Value::from(desk::remaining(&st.db, t, j).await?),
            serde_json::to_value(desk::result_codes(&st.db, t, j.campaign_id).await?).unwrap_or_default(),
        ),
        _ => (Value::Null, Value::Null, json!([])),
    };
    let lead = match w.call() {
        Some(c) => desk::lead_of_call(&st.db, t, c).await?,
        None => None,
    }
    .or_else(|| {
        let hub = st.config.agents.tenant(u64::try_from(t).ok()?)?;
        hub.lead_of(me(auth)).and_then(|l| i64::try_from(l.0).ok())
    });
    // A call without a lead (one the dialer placed for a number alone): its number, named by the
    // phone book (共通電話帳) when it knows it.
    let caller = match (w.call(), lead) {
        (Some(c), None) => match desk::tel_of_call(&st.db, t, c).await? {
            Some(tel) => json!({"tel": tel, "name": crate::phonebook::name_of(st, t, &tel).await?}),
            None => Value::Null,
        },
        _ => Value::Null,
    };
    let recalls = desk::recalls_of(&st.db, t, auth.user(), 10_000).await?;
    let now = store::now_ms();
    let due = recalls.iter().filter(|r| r.due_at.is_some_and(|d| d <= now)).count();
    Ok(json!({
        "agent_id": auth.user(),
        "state": w.view.map(|v| serde_json::to_value(v.state).unwrap_or_default()),
        "since_ms": w.view.map(|v| v.since_ms),
        "call_id": w.view.and_then(|v| v.call_id).map(|c| c.0),
        "leg_up": w.view.is_some_and(|v| v.leg_up),
        "dialling": w.view.is_some_and(|v| v.dialling),
        "pending": w.view.and_then(|v| v.pending).map(|p| serde_json::to_value(p).unwrap_or_default()),
        "lead_id": lead,
        "caller": caller,
        "job": job,
        "remaining": remaining,
        "result_codes": codes,
        "default_results": default_results(),
        "recalls": {"open": recalls.len(), "due": due},
        "now_ms": now,
    }))
}

async fn desk_get(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    desk_json(&st, &auth).await.map(Json)
}

async fn jobs(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    let t = auth.tenant();
    let mut items = Vec::new();
    for j in desk::jobs_for_agent(&st.db, t, auth.user()).await? {
        let mut v = job_json(&auth, &j);
        v["remaining"] = Value::from(desk::remaining(&st.db, t, &j).await?);
        items.push(v);
    }
    Ok(Json(json!({"total": items.len(), "items": items})))
}

/// 404 unless the caller may read `lead`: MGR and SV any lead of the tenant; an OP the lead it
/// works (see [`desk::works_on_lead`]), or the lead of the customer just bridged to it (the push
/// channel's `bridge` arrives before control commits the call to the agent's row).
async fn may_read(st: &AppState, auth: &Auth, lead: i64) -> ApiResult<()> {
    if auth.role() != Role::Op {
        return Ok(());
    }
    let hub = st.config.agents.tenant(u64::try_from(auth.tenant()).unwrap_or(0));
    let bridged = |hub: &Option<Arc<hub::TenantHub>>| {
        hub.as_ref().and_then(|h| h.lead_of(me(auth))) == u64::try_from(lead).ok().map(LeadId)
    };
    if bridged(&hub) {
        return Ok(());
    }
    let w = working(st, auth).await?;
    if desk::works_on_lead(&st.db, auth.tenant(), auth.user(), lead, w.call(), store::now_ms()).await? {
        return Ok(());
    }
    Err(ApiError::not_found())
}

fn lead_json(auth: &Auth, l: &desk::LeadCard) -> Value {
    json!({
        "id": l.id, "list_id": l.list_id, "list_name": l.list_name, "campaign_id": l.campaign_id,
        "name": l.name, "kana": l.kana, "tel": l.tel, "remarks": l.remarks,
        "other_numbers": l.other_numbers.iter().map(|(tel, label)| json!({"tel": tel, "label": label})).collect::<Vec<_>>(),
        "custom": serde_json::from_str::<Value>(&l.custom).unwrap_or_else(|_| json!({})),
        "tags": serde_json::from_str::<Value>(&l.tags).unwrap_or_else(|_| json!([])),
        "state": l.state, "attempts": l.attempts, "last_result": l.last_result,
        "last_attempt_at": tz_time(auth, l.last_attempt_at),
    })
}

async fn lead_get(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    screen_pop(&st, &auth, id).await.map(Json)
}

/// The screen pop of lead `id` for the caller (`GET /agent/leads/{id}`; also sent on the push
/// channel right after a `bridge`). Its reads run at once: they are independent.
pub(super) async fn screen_pop(st: &AppState, auth: &Auth, id: i64) -> ApiResult<Value> {
    auth.require(AGENTS)?;
    may_read(st, auth, id).await?;
    let t = auth.tenant();
    let (lead, contacts, history, fields) = futures::try_join!(
        desk::lead_card(&st.db, t, id),
        desk::contacts(&st.db, t, id, MAX_CONTACTS),
        desk::lead_history(&st.db, t, id, 100),
        desk::custom_fields(&st.db, t),
    )?;
    let lead = lead.ok_or_else(ApiError::not_found)?;
    let contacts: Vec<Value> = contacts
        .iter()
        .map(|c| {
            json!({
                "call_id": c.dialer_call_id, "started_at": tz_time(auth, Some(c.started_at)),
                "saved_at": tz_time(auth, c.saved_at), "tel": c.tel, "interlocutor": c.interlocutor,
                "result": c.result, "next_action": c.next_action, "recall_at": tz_time(auth, c.recall_at),
                "talk_ms": c.talk_ms, "agent": c.agent_name, "memo": c.memo,
            })
        })
        .collect();
    let history: Vec<Value> = history
        .iter()
        .map(|h| json!({"text": h.text, "user": h.user_name, "created_at": tz_time(auth, Some(h.created_at))}))
        .collect();
    let codes = desk::result_codes(&st.db, t, lead.campaign_id).await?;
    Ok(json!({
        "lead": lead_json(auth, &lead), "custom_fields": fields, "result_codes": codes,
        "default_results": default_results(), "contacts": contacts, "history": history,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadPatch {
    name: Option<String>,
    kana: Option<String>,
    #[serde(default, with = "double_option")]
    remarks: Option<Option<String>>,
    custom: Option<serde_json::Map<String, Value>>,
}

/// `null` and missing told apart: `Some(None)` clears.
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

fn text_field(field: &str, v: &str, min: usize, max: usize) -> ApiResult<String> {
    let n = v.chars().count();
    if n < min || n > max || v.contains('\0') {
        return Err(ApiError::invalid(field, format!("{field}:{min}文字から{max}文字までにしてください")));
    }
    Ok(v.to_owned())
}

async fn lead_patch(
    State(st): State<AppState>,
    auth: Auth,
    Id(id): Id,
    req: axum::extract::Request,
) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    let b: LeadPatch = json_body(req).await?;
    may_read(&st, &auth, id).await?;
    let t = auth.tenant();
    let mut c = desk::LeadCorrection {
        name: b.name.as_deref().map(|v| text_field("name", v, 1, 255)).transpose()?,
        kana: b.kana.as_deref().map(|v| text_field("kana", v, 1, 255)).transpose()?,
        remarks: match b.remarks {
            Some(Some(r)) if r.is_empty() => Some(None),
            Some(Some(r)) => Some(Some(text_field("remarks", &r, 1, 1000)?)),
            Some(None) => Some(None),
            None => None,
        },
        custom: None,
    };
    if let Some(custom) = b.custom {
        let known: HashSet<String> = desk::custom_fields(&st.db, t).await?.into_iter().map(|f| f.key).collect();
        let lead = desk::lead_card(&st.db, t, id).await?.ok_or_else(ApiError::not_found)?;
        let mut merged: serde_json::Map<String, Value> = serde_json::from_str(&lead.custom).unwrap_or_default();
        for (k, v) in custom {
            if !known.contains(&k) {
                return Err(ApiError::invalid(
                    format!("custom.{k}"),
                    format!("custom.{k}: not a custom field of the tenant"),
                ));
            }
            let ok = match &v {
                Value::String(s) => s.chars().count() <= 5000 && !s.contains('\0'),
                Value::Number(_) | Value::Bool(_) | Value::Null => true,
                Value::Array(a) => a.len() <= 200 && a.iter().all(Value::is_string),
                Value::Object(_) => false,
            };
            if !ok {
                return Err(ApiError::invalid(
                    format!("custom.{k}"),
                    format!("custom.{k}: not a value this field takes"),
                ));
            }
            merged.insert(k, v);
        }
        c.custom = Some(Value::Object(merged).to_string());
    }
    let text = desk::correct_lead(&st.db, t, id, auth.user(), &c, store::now_ms()).await?;
    let lead = desk::lead_card(&st.db, t, id).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({"lead": lead_json(&auth, &lead), "history": text})))
}

/// The caller's session in a running call job, or 409.
pub(crate) async fn session_job(st: &AppState, auth: &Auth) -> ApiResult<(Working, desk::DeskJob)> {
    let w = working(st, auth).await?;
    if !w.in_session() {
        return Err(ApiError::conflict("not_in_session", "not working a call job: start one with POST /agent/session"));
    }
    let job = w.job.clone().ok_or_else(|| {
        ApiError::conflict("not_in_session", "not working a call job: start one with POST /agent/session")
    })?;
    if job.status != "running" {
        return Err(ApiError::conflict("job_not_running", "the call job is not running"));
    }
    Ok((w, job))
}

fn lead_row_json(auth: &Auth, l: &desk::LeadRow) -> Value {
    json!({"id": l.id, "list_id": l.list_id, "name": l.name, "kana": l.kana, "tel": l.tel, "attempts": l.attempts,
           "last_result": l.last_result, "last_attempt_at": tz_time(auth, l.last_attempt_at), "held_by_other": l.held_by_other})
}

async fn search_leads(State(st): State<AppState>, auth: Auth, p: Params) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    if p.get("q").is_none() && p.get("tel").is_none() {
        return Ok(Json(json!({"total": 0, "items": []}))); // nothing asked
    }
    let (_, job) = session_job(&st, &auth).await?;
    let q = match (p.get("q"), p.get("tel")) {
        (Some(q), None) if job.mode == Mode::Standard => {
            let q = q.trim();
            if q.is_empty() || q.chars().count() > 64 {
                return Err(ApiError::invalid("q", "q: 1 to 64 characters"));
            }
            desk::LeadQuery::Text(q)
        }
        (None, Some(tel)) if job.mode.agent_picks() => desk::LeadQuery::Tel(tel),
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::conflict(
                "wrong_mode",
                format!("the call job's campaign is in {} mode: no lead search", job.mode.as_str()),
            ))
        }
        _ => return Err(ApiError::invalid("q", "q: give q or tel, not both")),
    };
    let tel;
    let q = match q {
        desk::LeadQuery::Tel(t) => {
            tel = crate::resource::tel("tel", t.trim())?;
            desk::LeadQuery::Tel(&tel)
        }
        other => other,
    };
    let rows = desk::search_leads(&st.db, auth.tenant(), job.id, auth.user(), q, store::now_ms(), MAX_SEARCH).await?;
    let items: Vec<Value> = rows.iter().map(|l| lead_row_json(&auth, l)).collect();
    Ok(Json(json!({"total": items.len(), "items": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLead {
    name: String,
    #[serde(default)]
    kana: String,
    tel: String,
    list_id: Option<i64>,
}

async fn create_lead(
    State(st): State<AppState>,
    auth: Auth,
    req: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(AGENTS)?;
    let b: NewLead = json_body(req).await?;
    let (_, job) = session_job(&st, &auth).await?;
    if job.mode != Mode::Dial {
        return Err(ApiError::conflict("wrong_mode", "leads are created from a number in dial mode only"));
    }
    let name = text_field("name", b.name.trim(), 1, 255)?;
    let kana = if b.kana.trim().is_empty() { String::new() } else { text_field("kana", b.kana.trim(), 1, 255)? };
    let tel = crate::resource::tel("tel", b.tel.trim())?;
    let lists = desk::job_lists(&st.db, auth.tenant(), job.id).await?;
    let list = match b.list_id {
        Some(id) => lists
            .iter()
            .find(|l| l.id == id)
            .ok_or_else(|| ApiError::invalid("list_id", "list_id: not a customer list of your call job"))?,
        None => lists.first().ok_or_else(|| ApiError::conflict("no_lists", "the call job has no customer list"))?,
    };
    let now = store::now_ms();
    let r = desk::create_lead(
        &st.db,
        auth.tenant(),
        list,
        &name,
        &kana,
        &tel,
        auth.user(),
        now,
        store::preview::HOLD_MS,
        crate::resources::MAX_LEADS_PER_LIST,
    )
    .await?;
    let id = match r {
        Ok(id) => id,
        Err(desk::CreateRefused::DuplicateTel) => {
            return Err(ApiError::conflict("duplicate_tel", crate::resources::DUPLICATE_IN_BATCH).with_field("tel"))
        }
        Err(desk::CreateRefused::ListFull) => {
            return Err(ApiError::conflict(
                "list_full",
                format!("a list holds at most {} leads", crate::resources::MAX_LEADS_PER_LIST),
            )
            .with_field("list_id"))
        }
    };
    let lead = desk::lead_card(&st.db, auth.tenant(), id).await?.ok_or_else(ApiError::not_found)?;
    Ok((StatusCode::CREATED, Json(json!({"lead": lead_json(&auth, &lead)}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialBody {
    lead_id: Option<i64>,
    recall_id: Option<i64>,
    caller_id: Option<i64>,
}

async fn dial_now(
    State(st): State<AppState>,
    auth: Auth,
    req: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(AGENTS)?;
    let b: DialBody = json_body(req).await?;
    let t = auth.tenant();
    let caller_id = match b.caller_id {
        None => None,
        Some(c) => {
            let ours = store::dialing::caller_id_choices(&st.db, t).await?.iter().any(|x| x.id == c);
            if !ours {
                return Err(ApiError::invalid(
                    "caller_id",
                    "caller_id: not one of your caller IDs (GET /agent/caller-ids)",
                ));
            }
            Some(CallerIdId(u64::try_from(c).unwrap_or(0)))
        }
    };
    let (w, job) = session_job(&st, &auth).await?;
    let lead = match (b.lead_id, b.recall_id) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::invalid("lead_id", "lead_id: give exactly one of lead_id and recall_id"))
        }
        (None, Some(r)) => {
            let recall = desk::recall_of(&st.db, t, auth.user(), r)
                .await?
                .ok_or_else(|| ApiError::invalid("recall_id", "recall_id: not one of your open recalls"))?;
            if recall.campaign_id != job.campaign_id {
                return Err(ApiError::conflict(
                    "other_campaign",
                    "recall_id: the recall is of another campaign than your call job's",
                )
                .with_field("recall_id"));
            }
            recall.lead_id
        }
        (Some(l), None) => l,
    };
    place(&st, &auth, &w, &job, lead, b.recall_id.is_some(), caller_id).await
}

/// 発番号: the tenant's caller IDs an agent may dial from, and its call job's (the default).
async fn caller_ids(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    let t = auth.tenant();
    let w = working(&st, &auth).await?;
    let default = match &w.job {
        Some(j) => store::dialing::job_caller_id(&st.db, t, j.id).await?,
        None => None,
    };
    let items: Vec<Value> = store::dialing::caller_id_choices(&st.db, t)
        .await?
        .into_iter()
        .map(|c| json!({"id": c.id, "number": c.number, "label": c.label}))
        .collect();
    Ok(Json(json!({"total": items.len(), "items": items, "default": default})))
}

/// Holds `lead` for the caller and has control dial it (`preview_dial`: the dialer places it through
/// every check of a paced dial) from `caller_id` (the agent's 発番号; `None`: the job's). `own`: a
/// lead of the caller's own (its recall, its callback), which it may dial in any mode; otherwise in
/// standard and dial modes any lead of the job, and in the others only a lead already held for it.
pub(crate) async fn place(
    st: &AppState,
    auth: &Auth,
    w: &Working,
    job: &desk::DeskJob,
    lead: i64,
    own: bool,
    caller_id: Option<CallerIdId>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let t = auth.tenant();
    if w.view.map(|v| v.state) != Some(AgentState::Ready) {
        let name = w.view.map_or("offline", |v| v.state.name());
        return Err(ApiError::conflict(
            "not_ready",
            format!("a dial needs the ready state (state {name}): POST /agent/ready"),
        ));
    }
    let now = store::now_ms();
    if !own && !job.mode.agent_picks() && !store::preview::holds(&st.db, t, job.id, auth.user(), lead, now).await? {
        return Err(ApiError::conflict(
            "not_held",
            "lead_id: not held for you (ask POST /agent/preview for your next lead)",
        )
        .with_field("lead_id"));
    }
    match desk::hold(&st.db, t, job.id, auth.user(), lead, now, store::preview::HOLD_MS).await? {
        Ok(()) => {}
        Err(desk::HoldRefused::HeldByOther) => {
            return Err(
                ApiError::conflict("held_by_other", "lead_id: another agent works this lead now").with_field("lead_id")
            )
        }
        Err(desk::HoldRefused::NotInJob) => {
            return Err(ApiError::invalid("lead_id", "lead_id: not an open lead of your call job"))
        }
    }
    let id = |v: i64| u64::try_from(v).unwrap_or(0);
    let cmd = ApiCommand::PreviewDial {
        agent_id: AgentId(me(auth)),
        campaign_id: CampaignId(id(job.campaign_id)),
        call_job_id: CallJobId(id(job.id)),
        lead_id: LeadId(id(lead)),
        caller_id,
    };
    let (status, Json(mut v)) = crate::agents::publish(st, auth, &cmd).await?;
    v["lead_id"] = Value::from(lead);
    Ok((status, Json(v)))
}

async fn recalls(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    let now = store::now_ms();
    let items: Vec<Value> = desk::recalls_of(&st.db, auth.tenant(), auth.user(), 500)
        .await?
        .iter()
        .map(|r| {
            json!({"id": r.id, "lead_id": r.lead_id, "campaign_id": r.campaign_id, "campaign_name": r.campaign_name,
                   "name": r.name, "tel": r.tel, "due_at": tz_time(&auth, r.due_at), "due_ms": r.due_at,
                   "due": r.due_at.is_some_and(|d| d <= now), "note": r.note})
        })
        .collect();
    let due = items.iter().filter(|i| i["due"] == true).count();
    Ok(Json(json!({"total": items.len(), "due": due, "items": items})))
}

async fn presence(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    let items: Vec<Value> = desk::colleagues(&st.db, auth.tenant(), auth.user(), 1_000)
        .await?
        .iter()
        .map(|c| {
            let view = c.view.as_deref().and_then(|v| serde_json::from_str::<AgentView>(v).ok());
            json!({"agent_id": c.user_id, "display_name": c.display_name,
                   "state": view.map_or(json!({"state": "offline"}), |v| serde_json::to_value(v.state).unwrap_or_default()),
                   "since_ms": view.map(|v| v.since_ms)})
        })
        .collect();
    Ok(Json(json!({"total": items.len(), "items": items})))
}

/// The colleagues the caller's presence panel shows (for the push channel's presence events).
pub(crate) async fn colleague_ids(st: &AppState, auth: &Auth) -> ApiResult<HashSet<u64>> {
    Ok(desk::colleagues(&st.db, auth.tenant(), auth.user(), 1_000)
        .await?
        .iter()
        .filter_map(|c| u64::try_from(c.user_id).ok())
        .collect())
}

/// Publishes a notice for agents' screens on the tenant's `agent:events` (see
/// [`wire::AgentNotice`]). A notice that cannot be published is logged: the state
/// it announces is in SQL and shows on the agent's next (re)load.
pub(crate) async fn notify(st: &AppState, tenant: i64, n: &wire::AgentNotice) {
    let t = u64::try_from(tenant).unwrap_or(0);
    let now = u64::try_from(store::now_ms()).unwrap_or(0);
    let env = match bus::Envelope::new(t, now, n) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "encoding an agent notice");
            return;
        }
    };
    if let Err(e) = st.config.commands.publish(&wire::streams::agent_events(t), &env).await {
        tracing::warn!(error = %e, "publishing an agent notice");
    }
}
