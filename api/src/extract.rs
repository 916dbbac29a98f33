//! Extractors whose refusals use the API's error shape and name the field.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest JSON body accepted (CSV uploads stream through their own endpoints).
pub const JSON_LIMIT_BYTES: usize = 1 << 20;
/// How long a JSON body may take to arrive, whole.
pub const JSON_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an upload (a CSV file) may take to arrive, whole.
pub const UPLOAD_READ_TIMEOUT: Duration = Duration::from_secs(600);

/// A JSON body: it needs a JSON content type (415), is refused by its declared length before it
/// is read and by its actual length while it is read (413), and must arrive within
/// [`JSON_READ_TIMEOUT`] (408); a syntax or type error answers 400 naming the path of the
/// offending field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            )
            .with_field("body"));
        }
        let bytes = read_limited(req, JSON_LIMIT_BYTES, JSON_READ_TIMEOUT).await?;
        parse_json(&bytes).map(Body)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn too_large(limit: usize) -> ApiError {
    let size = match limit {
        l if l >= 1 << 20 && l % (1 << 20) == 0 => format!("{} MiB", l >> 20),
        l if l >= 1_000_000 && l % 1_000_000 == 0 => format!("{} MB", l / 1_000_000),
        l if l % 1024 == 0 => format!("{} KiB", l >> 10),
        l => format!("{l} bytes"),
    };
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body is larger than {size}"))
        .with_field("body")
}

/// 413 when the request declares a `Content-Length` above `limit` (before anything is read).
pub fn refuse_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(too_large(usize::try_from(limit).unwrap_or(usize::MAX))),
        _ => Ok(()),
    }
}

/// The most bytes of a refused upload read and thrown away before its 413 ([`read_limited`]).
const DRAIN_MAX: usize = 16 << 20;
/// How long a refused upload is read before its 413.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);

/// The whole body, at most `limit` bytes (refused by its declared length first), within `within`.
pub async fn read_limited(req: Request, limit: usize, within: Duration) -> Result<Bytes, ApiError> {
    if let Err(e) = refuse_declared_length(req.headers(), limit as u64) {
        // A file a little over the limit (an upload, not an attack) is read to its end and thrown
        // away before the refusal, so that the client, still sending it, gets the 413 rather than
        // a broken pipe; anything larger, or slower than a few seconds, is cut.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        if declared <= limit.saturating_mul(2).min(DRAIN_MAX) {
            let drain = axum::body::to_bytes(req.into_body(), declared);
            let _ = tokio::time::timeout(DRAIN_WITHIN, drain).await;
        }
        return Err(e);
    }
    let read = axum::body::to_bytes(req.into_body(), limit);
    match tokio::time::timeout(within, read).await {
        Err(_) => {
            Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the body did not arrive in time")
                .with_field("body"))
        }
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            // http-body-util's LengthLimitError, somewhere in the chain ("length limit exceeded").
            let mut over = false;
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = cur {
                over |= err.to_string().contains("length limit");
                cur = err.source();
            }
            if over {
                Err(too_large(limit))
            } else {
                Err(ApiError::bad_request("body", "the body could not be read"))
            }
        }
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() { "body".to_string() } else { path };
        let inner = e.into_inner();
        ApiError::bad_request(field, format!("invalid JSON: {inner}"))
    })
}

/// The query string as ordered pairs; a malformed query answers 400.
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map(Params)
            .map_err(|_| ApiError::bad_request("query", "the query string is malformed"))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A numeric record id from the path; anything else answers 404 like a missing record.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) = axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        let v = raw.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str()).ok_or_else(ApiError::not_found)?;
        v.parse::<i64>().ok().filter(|id| *id > 0).map(Id).ok_or_else(ApiError::not_found)
    }
}
