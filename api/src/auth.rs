//! Bearer-token authentication and the role checks every endpoint makes on the server.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::Json;
use serde::{Deserialize, Serialize};
use store::accounts::{self, Principal, Role};
use store::audit::{self, AuditEvent, AuditKind};

use crate::error::{ApiError, ApiResult};
use crate::extract::Body;
use crate::AppState;

/// The caller of a request, resolved from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    pub fn tenant(&self) -> i64 {
        self.0.tenant_id
    }
    pub fn user(&self) -> i64 {
        self.0.user_id
    }
    pub fn role(&self) -> Role {
        self.0.role
    }
    /// Refuses with 403 unless the caller's role is one of `roles`.
    pub fn require(&self, roles: &[Role]) -> ApiResult<()> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
    pub fn tz(&self) -> chrono_tz::Tz {
        store::tenancy::parse_tz(&self.0.time_zone).unwrap_or(chrono_tz::Asia::Tokyo)
    }
}

pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let h = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = h.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token.trim())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let hash = accounts::token_hash(token);
        let cache = &state.config.sessions;
        if let Some(p) = cache.get(&hash, std::time::Instant::now()) {
            return Ok(Auth(p));
        }
        let generation = cache.generation();
        match accounts::authenticate_session(&state.db, &hash, store::now_ms()).await? {
            Some(p) => {
                cache.put(hash, p.clone(), generation, std::time::Instant::now());
                Ok(Auth(p))
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The tenant's code.
    pub tenant: String,
    pub login: String,
    pub password: String,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginBody")
            .field("tenant", &self.tenant)
            .field("login", &self.login)
            .field("password", &"***")
            .finish()
    }
}

#[derive(Serialize)]
pub struct LoginReply {
    pub token: String,
    pub expires_at: String,
    pub user: Me,
}

impl std::fmt::Debug for LoginReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginReply")
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

#[derive(Debug, Serialize)]
pub struct Me {
    pub id: i64,
    pub tenant_id: i64,
    pub login: String,
    pub role: Role,
    pub time_zone: String,
}

impl From<&Principal> for Me {
    fn from(p: &Principal) -> Me {
        Me {
            id: p.user_id,
            tenant_id: p.tenant_id,
            login: p.login.clone(),
            role: p.role,
            time_zone: p.time_zone.clone(),
        }
    }
}

/// The address a request came from (the connection's peer, or the client behind a trusted proxy:
/// see `serve::client_ip`; `None` when the server was not given it, as in a router called directly).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let resolved = parts.extensions.get::<crate::serve::ClientIp>().map(|c| c.0);
        let ip = resolved
            .or_else(|| parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip()));
        Ok(ClientAddr(ip))
    }
}

impl ClientAddr {
    pub fn text(&self) -> String {
        self.0.map_or_else(|| "-".to_string(), |ip| ip.to_string())
    }
}

fn bad_credentials() -> ApiError {
    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "bad_credentials", "tenant, login or password is wrong")
}

/// `POST /auth/login`. Refused with 429 past the limits of the source address or the account,
/// with 503 when too many verifications wait; a wrong password counts towards the account's
/// ログインロック; a locked account answers 423 only to its right password. Every checked attempt
/// of a known tenant is written to the audit trail.
pub async fn login(
    State(st): State<AppState>,
    source: ClientAddr,
    Body(b): Body<LoginBody>,
) -> ApiResult<Json<LoginReply>> {
    for (field, v) in [("tenant", &b.tenant), ("login", &b.login), ("password", &b.password)] {
        if v.is_empty() || v.len() > 256 || v.contains('\0') {
            return Err(ApiError::invalid(field, format!("{field}: 1 to 256 characters")));
        }
    }
    let guard = &st.config.logins;
    let attempt = guard.admit(source.0, &b.tenant, &b.login)?;
    let candidate = accounts::login_candidate(&st.db, &b.tenant, &b.login).await?;
    let user = candidate.as_ref().and_then(|c| c.user.as_ref());
    let hash = user.map_or_else(|| accounts::unknown_login_hash().to_string(), |u| u.password_hash.clone());
    let ok = guard.verify(b.password, hash).await?;
    let now = store::now_ms();
    let Some(c) = candidate else {
        metrics::counter!(crate::guard::LOGINS_TOTAL, "outcome" => "failed").increment(1);
        return Err(bad_credentials());
    };
    let src = source.text();
    let event = |kind, user_id| AuditEvent {
        tenant_id: c.tenant_id,
        kind,
        user_id,
        login: &b.login,
        source: &src,
        actor_user_id: None,
    };
    match &c.user {
        Some(u) if ok && !u.disabled && !u.locked => {
            let (token, expires_at) = accounts::open_session(&st.db, &u.principal, now, c.session_ttl_ms).await?;
            audit::record(&st.db, &event(AuditKind::Login, Some(u.principal.user_id)), now).await?;
            guard.succeeded(attempt);
            metrics::counter!(crate::guard::LOGINS_TOTAL, "outcome" => "ok").increment(1);
            let p = &u.principal;
            let tz = store::tenancy::parse_tz(&p.time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
            Ok(Json(LoginReply { token, expires_at: store::tenancy::local_rfc3339(tz, expires_at), user: Me::from(p) }))
        }
        Some(u) if ok && !u.disabled => {
            // The right password of a locked account: say so, it cannot be guessed this way.
            audit::record(&st.db, &event(AuditKind::LoginFailed, Some(u.principal.user_id)), now).await?;
            metrics::counter!(crate::guard::LOGINS_TOTAL, "outcome" => "locked").increment(1);
            Err(ApiError::new(
                axum::http::StatusCode::LOCKED,
                "account_locked",
                "this account is locked after repeated wrong passwords: a manager unlocks it",
            ))
        }
        user => {
            let user_id = user.as_ref().map(|u| u.principal.user_id);
            audit::record(&st.db, &event(AuditKind::LoginFailed, user_id), now).await?;
            if let Some(id) = user_id {
                if accounts::login_failed(&st.db, c.tenant_id, id, guard.limits().lockout_after, now).await? {
                    audit::record(&st.db, &event(AuditKind::Locked, Some(id)), now).await?;
                    metrics::counter!(crate::guard::LOCKOUTS_TOTAL).increment(1);
                }
            }
            metrics::counter!(crate::guard::LOGINS_TOTAL, "outcome" => "failed").increment(1);
            Err(bad_credentials())
        }
    }
}

pub async fn logout(State(st): State<AppState>, headers: axum::http::HeaderMap) -> ApiResult<axum::http::StatusCode> {
    let token = bearer(&headers).ok_or_else(ApiError::unauthorized)?;
    accounts::logout(&st.db, token).await?;
    st.config.sessions.clear();
    Ok(axum::http::StatusCode::NO_CONTENT)
}

pub async fn me(auth: Auth) -> Json<Me> {
    Json(Me::from(&auth.0))
}
