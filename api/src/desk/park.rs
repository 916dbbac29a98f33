//! パーク保留 (issue 24): an agent parks its customer (`POST /agent/calls/{id}/park`, or `#72` on
//! its phone), every agent sees the tenant's parked calls (`GET /agent/parked`: 保留番号, the
//! customer's number, since when, who parked it) and any of them picks one up on its own phone
//! (`POST /agent/parked/{id}/pick-up`, id the park number, or the number keyed on the phone).
//!
//! A call's parks are part of its history: `GET /calls/{id}/parks` (MGR, SV): who parked it, when,
//! under which number, and how the park ended (picked up by whom, hung up, returned).
//!
//! The control service owns the parks (numbers, limit, `parked_calls`); a pick-up first claims the
//! park in SQL, so of two agents picking up the same call at once exactly one gets 202 and the
//! other 409.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};
use store::parked::Claim;
use wire::agent::{AgentId, AgentState, CallId};
use wire::ApiCommand;

use super::{op, tz_time, working, AGENTS};
use crate::agents::publish;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Id;
use crate::{AppState, Registry};

pub(super) fn mount(reg: &mut Registry) {
    let accepted =
        json!({"type": "object", "required": ["message_id"], "properties": {"message_id": {"type": "string"}}});
    let mut park = op(
        "post",
        "/agent/calls/{id}/park",
        "パーク保留: park the customer of the caller's current call (the customer hears the waiting audio under the tenant's lowest free park number, 9001..; the caller goes to wrap-up). Any agent of the tenant may pick it up; nobody within 5 minutes: it is offered back to the caller if ready, else queued for the campaign's agents",
        accepted.clone(),
    );
    park.response.0 = 202;
    reg.add(park, post(park_call));
    reg.add(
        op(
            "get",
            "/agent/parked",
            "パーク保留: the tenant's parked calls (保留番号, the customer's number, parked since, who parked it), by number",
            json!({"type": "object", "required": ["items", "total"], "properties": {
                "items": {"type": "array"}, "total": {"type": "integer"}}}),
        ),
        get(list),
    );
    let mut pick = op(
        "post",
        "/agent/parked/{id}/pick-up",
        "パーク応答: the caller (ready) takes the call parked under park number id on its own phone (its lead's screen pop as for any call); 409 when another agent took it first",
        accepted,
    );
    pick.response.0 = 202;
    reg.add(pick, post(pick_up));
    let mut history = op(
        "get",
        "/calls/{id}/parks",
        "The call's parks (パーク保留), for its history: number, who parked it and when, who picked it up and how the park ended (picked_up, hung_up, returned)",
        json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}),
    );
    history.roles = Some(crate::resources::MGR_SV.to_vec());
    reg.add(history, get(parks_of_call));
}

async fn parks_of_call(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    auth.require(crate::resources::MGR_SV)?;
    let t = auth.tenant();
    let call = store::call_records::dialer_call_of(&st.db, t, id).await?.ok_or_else(ApiError::not_found)?;
    let parks = match call {
        Some(c) => store::parked::of_call(&st.db, t, c).await?,
        None => Vec::new(),
    };
    let items: Vec<Value> = parks
        .into_iter()
        .map(|p| {
            json!({"number": p.number, "parked_by": p.parked_by, "parked_by_name": p.parked_by_name,
                "parked_at": tz_time(&auth, Some(p.parked_at)), "picked_by": p.picked_by,
                "picked_by_name": p.picked_by_name, "ended_at": tz_time(&auth, p.ended_at), "outcome": p.outcome})
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn park_call(State(st): State<AppState>, auth: Auth, Id(call): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(AGENTS)?;
    let w = working(&st, &auth).await?;
    let call_id = CallId(u64::try_from(call).unwrap_or(0));
    // Only the caller's own call, talking or on hold (any other id answers like a missing one).
    let view = w.view.filter(|v| v.call_id == Some(call_id)).ok_or_else(ApiError::not_found)?;
    if !matches!(view.state, AgentState::Talking | AgentState::Hold) {
        return Err(ApiError::conflict("not_talking", "only a call you are talking with (or holding) can be parked"));
    }
    if store::parked::open(&st.db, auth.tenant()).await?.len() >= store::parked::MAX_PARKED {
        return Err(ApiError::conflict("park_full", "every park number (9001-9099) is in use"));
    }
    let agent_id = AgentId(u64::try_from(auth.user()).unwrap_or(0));
    publish(&st, &auth, &ApiCommand::Park { agent_id, call_id }).await
}

async fn list(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    let now = store::now_ms();
    let items: Vec<Value> = store::parked::open(&st.db, auth.tenant())
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "number": p.number,
                "call_id": p.dialer_call_id,
                "tel": p.tel,
                "parked_by": p.parked_by,
                "parked_by_name": p.parked_by_name,
                "parked_at": tz_time(&auth, Some(p.parked_at)),
                "parked_at_ms": p.parked_at,
                "held_seconds": (now - p.parked_at).max(0) / 1000,
            })
        })
        .collect();
    Ok(Json(json!({"total": items.len(), "items": items})))
}

async fn pick_up(State(st): State<AppState>, auth: Auth, Id(number): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(AGENTS)?;
    let first = i64::from(store::parked::FIRST_NUMBER);
    if !(first..first + store::parked::MAX_PARKED as i64).contains(&number) {
        return Err(ApiError::not_found());
    }
    // Another tenant's park number answers like a missing one, whatever the caller's state.
    if !store::parked::is_open(&st.db, auth.tenant(), number).await? {
        return Err(ApiError::not_found());
    }
    let w = working(&st, &auth).await?;
    if !w.in_session() {
        return Err(ApiError::conflict("not_in_session", "not working a call job: start one with POST /agent/session"));
    }
    if w.view.map(|v| v.state) != Some(AgentState::Ready) {
        return Err(ApiError::conflict("not_ready", "a parked call is picked up while ready (待機)"));
    }
    match store::parked::claim(&st.db, auth.tenant(), number, auth.user(), store::now_ms()).await? {
        Claim::Unknown => Err(ApiError::not_found()),
        Claim::Taken => Err(ApiError::conflict("taken", "another agent picked this call up first")),
        Claim::Won { .. } => {
            let agent_id = AgentId(u64::try_from(auth.user()).unwrap_or(0));
            let number = u16::try_from(number).map_err(|_| ApiError::not_found())?;
            publish(&st, &auth, &ApiCommand::PickUp { agent_id, number }).await
        }
    }
}
