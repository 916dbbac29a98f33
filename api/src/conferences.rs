//! 電話会議 in a call's history: `GET /calls/{id}/conferences` (MGR, SV), the third parties agents
//! called into the call (who asked, which number, when it was asked, answered and ended, and why it
//! ended), as `GET /calls/{id}/monitors` lists its supervisors and `GET /calls/{id}/parks` its
//! parks. The rows are written by the API (the ask) and the dialer (start, end): `store::conferences`.

use axum::extract::State;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Id;
use crate::resources::MGR_SV;
use crate::{AppState, Op, Registry};

pub fn mount(reg: &mut Registry) {
    let item = json!({"type": "object",
        "required": ["id", "agent_user_id", "agent", "number", "requested_at", "started_at", "ended_at", "end_reason"],
        "properties": {
            "id": {"type": "integer"},
            "agent_user_id": {"type": "integer", "description": "The agent who called the third party in."},
            "agent": {"type": "string", "description": "Its display name."},
            "number": {"type": "string", "description": "The third party's number."},
            "requested_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time", "description": "When the third party answered (null: it never did)."},
            "ended_at": {"type": ["string", "null"], "format": "date-time"},
            "end_reason": {"type": ["string", "null"], "description": "dropped, party_hung_up, call_ended, agent_left, superseded, or why it never came: busy, no_answer, refused, not_placed, channel_limit."}}});
    reg.add(
        Op {
            method: "get",
            path: "/calls/{id}/conferences".into(),
            summary: "The call's conferences (電話会議): the third parties agents called into it, when they answered and how each ended".into(),
            tag: "agents",
            roles: Some(MGR_SV.to_vec()),
            request: None,
            response: (
                200,
                "application/json",
                json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": item}}}),
            ),
            errors: vec![401, 403, 404],
            query: vec![],
        },
        get(list),
    );
}

async fn list(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    auth.require(MGR_SV)?;
    if !store::call_records::exists(&st.db, auth.tenant(), id).await? {
        return Err(ApiError::not_found());
    }
    let entries = store::conferences::history(&st.db, auth.tenant(), id).await?;
    let at = |ms: Option<i64>| ms.map(|v| store::tenancy::local_rfc3339(auth.tz(), v));
    let items: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let c = e.conference;
            json!({"id": c.id, "agent_user_id": c.agent_user_id, "agent": e.agent, "number": c.to_tel,
                "requested_at": at(Some(c.requested_at)), "started_at": at(c.started_at),
                "ended_at": at(c.ended_at), "end_reason": c.end_reason})
        })
        .collect();
    Ok(Json(json!({"items": items})))
}
