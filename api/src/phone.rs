//! ブラウザフォン (issue 24): the signalling of the agent's browser phone, over the agent's own
//! authenticated HTTP channel (no SIP).
//!
//! - `GET /agent/phone`: the caller's phone kind (`sip` or `browser`: the `phone_kind` of the
//!   user, set by an MGR or SV in /users), which the desktop reads to show its phone.
//! - `POST /agent/phone` `{"sdp"}`: the page's WebRTC offer (a new leg before 発信開始, or an ICE
//!   restart and a rejoin during the shift), published to the dialer hosts as a
//!   [`PhoneOffer`]; `202` with the message id. The host serving the tenant keeps it for the
//!   agent's next nailed-up leg (or hands it to the leg's shard), and the shard's SDP answer
//!   reaches the page on its push channel (`GET /agent/stream`, a `notice` of kind
//!   `phone_answer`, or `phone_failed` with the reason in words).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use bus::Envelope;
use serde::Deserialize;
use serde_json::{json, Value};
use store::accounts::Role;
use wire::{streams, PhoneOffer};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Body;
use crate::{AppState, Op, Registry};

/// Who works calls: OP, and MGR / SV acting for themselves.
const AGENTS: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];
/// The largest offer taken (a browser's audio offer is 3 to 6 KiB).
pub const MAX_SDP_BYTES: usize = 32 * 1024;
/// A browser's audio offer as the document shows it (RFC 8866, RFC 8829: ICE, DTLS, Opus).
const OFFER_EXAMPLE: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\n\
    a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:\
    00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=sendrecv\r\na=rtcp-mux\r\n\
    a=rtpmap:111 opus/48000/2\r\n";

/// What the endpoint takes for an offer: an SDP session with an audio stream.
fn is_audio_offer(sdp: &str) -> bool {
    sdp.starts_with("v=0") && sdp.contains("m=audio ")
}

/// Registers the endpoints.
pub fn mount(reg: &mut Registry) {
    let kind = json!({"type": "object", "required": ["phone_kind"], "properties": {
        "phone_kind": {"type": "string", "enum": ["sip", "browser"], "description": "The caller's phone: a SIP phone, or the browser phone of the agent desktop."}}});
    let offer = json!({"type": "object", "required": ["sdp"], "additionalProperties": false, "properties": {
        "sdp": {"type": "string", "minLength": 1, "maxLength": MAX_SDP_BYTES, "description": "The page's WebRTC SDP offer (RFC 8866; audio, ICE, DTLS fingerprint).",
        "examples": [OFFER_EXAMPLE]}}});
    let accepted = json!({"type": "object", "required": ["message_id"], "properties": {
        "message_id": {"type": "string", "description": "The id of the offer published to the dialer hosts; the answer comes on GET /agent/stream as a notice phone_answer (or phone_failed)."}}});
    let op = |method, summary: &str, request, response| Op {
        method,
        path: "/agent/phone".into(),
        summary: summary.into(),
        tag: "agents",
        roles: Some(AGENTS.to_vec()),
        request,
        response,
        errors: vec![400, 401, 403, 409, 413, 415, 422, 503],
        query: vec![],
    };
    reg.add(
        op("get", "ブラウザフォン: the caller's phone kind (sip or browser)", None, (200, "application/json", kind)),
        get(kind_get).post(offer_post),
    );
    reg.ops.push(op(
        "post",
        "ブラウザフォン: the page's WebRTC offer for the caller's nailed-up leg (before 発信開始, or an ICE restart); the SDP answer comes on the push channel",
        Some(("application/json", offer)),
        (202, "application/json", accepted),
    ));
}

/// The caller's phone kind.
async fn phone_kind(st: &AppState, auth: &Auth) -> ApiResult<String> {
    store::accounts::phone_kind_of(&st.db, auth.tenant(), auth.user()).await?.ok_or_else(ApiError::not_found)
}

async fn kind_get(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(AGENTS)?;
    Ok(Json(json!({"phone_kind": phone_kind(&st, &auth).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfferBody {
    sdp: String,
}

async fn offer_post(
    State(st): State<AppState>,
    auth: Auth,
    Body(b): Body<OfferBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require(AGENTS)?;
    if b.sdp.len() > MAX_SDP_BYTES {
        return Err(ApiError::invalid("sdp", format!("sdp: longer than {MAX_SDP_BYTES} bytes")));
    }
    if !is_audio_offer(&b.sdp) {
        return Err(ApiError::invalid(
            "sdp",
            "sdp: not an SDP offer with audio (it begins with v=0 and has an m=audio line)",
        ));
    }
    if phone_kind(&st, &auth).await? != "browser" {
        return Err(ApiError::conflict(
            "not_browser_phone",
            "phone_kind: your phone is a SIP phone; an MGR or SV sets the browser phone in /users",
        )
        .with_field("phone_kind"));
    }
    let (tenant, agent) = match (u64::try_from(auth.tenant()), u64::try_from(auth.user())) {
        (Ok(t), Ok(a)) => (t, a),
        _ => return Err(ApiError::internal()),
    };
    let now = u64::try_from(store::now_ms()).unwrap_or(0);
    let offer = PhoneOffer { agent_id: wire::AgentId(agent), sdp: b.sdp };
    let env = Envelope::new(tenant, now, &offer).map_err(|e| {
        tracing::error!(error = %e, "encoding a phone offer");
        ApiError::internal()
    })?;
    st.config.commands.publish(&streams::dialer_notices(), &env).await.map_err(|e| {
        tracing::error!(error = %e, "publishing a phone offer");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "bus_unavailable", "the dialer cannot be reached; retry")
    })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"message_id": env.id.to_string()}))))
}

#[cfg(test)]
mod tests {
    /// The document's example offer is one the endpoint takes.
    #[test]
    fn the_documented_offer_is_taken() {
        assert!(super::is_audio_offer(super::OFFER_EXAMPLE));
        assert!(super::OFFER_EXAMPLE.len() <= super::MAX_SDP_BYTES);
        assert!(!super::is_audio_offer("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"));
    }
}
