//! Bearer-token authentication and the role checks every endpoint makes on the server.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::Json;
use serde::{Deserialize, Serialize};
use store::accounts::{self, Principal, Role};

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
        match accounts::authenticate(&state.db, token, store::now_ms()).await? {
            Some(p) => Ok(Auth(p)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The tenant's code.
    pub tenant: String,
    pub login: String,
    pub password: String,
}

#[derive(Debug, Serialize)]
pub struct LoginReply {
    pub token: String,
    pub expires_at: String,
    pub user: Me,
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

pub async fn login(State(st): State<AppState>, Body(b): Body<LoginBody>) -> ApiResult<Json<LoginReply>> {
    for (field, v) in [("tenant", &b.tenant), ("login", &b.login), ("password", &b.password)] {
        if v.is_empty() || v.len() > 256 || v.contains('\0') {
            return Err(ApiError::invalid(field, format!("{field}: 1 to 256 characters")));
        }
    }
    let now = store::now_ms();
    match accounts::login(&st.db, &b.tenant, &b.login, &b.password, now, st.config.token_ttl_ms).await {
        Ok((token, expires_at, p)) => {
            let tz = store::tenancy::parse_tz(&p.time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
            Ok(Json(LoginReply {
                token,
                expires_at: store::tenancy::local_rfc3339(tz, expires_at),
                user: Me::from(&p),
            }))
        }
        Err(store::StoreError::NotFound) => Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "tenant, login or password is wrong",
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(State(st): State<AppState>, headers: axum::http::HeaderMap) -> ApiResult<axum::http::StatusCode> {
    let token = bearer(&headers).ok_or_else(ApiError::unauthorized)?;
    accounts::logout(&st.db, token).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

pub async fn me(auth: Auth) -> Json<Me> {
    Json(Me::from(&auth.0))
}
