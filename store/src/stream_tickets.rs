//! Wallboard stream tickets (migration 0006): a short-lived, single-use secret that stands for a
//! bearer session on the one endpoint an EventSource opens (it cannot send an Authorization
//! header). Only the ticket's SHA-256 is stored; redeeming deletes it.

use sqlx::Row;

use crate::accounts::{authenticate_session, random_secret, token_hash, Principal};
use crate::{Db, Result};

/// How long a ticket may wait to be redeemed.
pub const TICKET_TTL_MS: i64 = 30_000;

/// Most unredeemed tickets one session may hold at once.
pub const MAX_LIVE_PER_SESSION: i64 = 16;

/// Why no ticket was issued.
#[derive(Debug, PartialEq, Eq)]
pub enum IssueRefused {
    /// The session already holds [`MAX_LIVE_PER_SESSION`] live tickets.
    TooMany,
}

/// Issues a ticket for the session of bearer `token`; returns the ticket and its expiry (Unix ms).
pub async fn issue(
    db: &Db,
    token: &str,
    tenant_id: i64,
    now_ms: i64,
) -> Result<std::result::Result<(String, i64), IssueRefused>> {
    let session = token_hash(token);
    sqlx::query("DELETE FROM stream_tickets WHERE expires_at <= $1").bind(now_ms).execute(&db.pool).await?;
    let live: i64 = sqlx::query("SELECT COUNT(*) AS n FROM stream_tickets WHERE session_hash = $1")
        .bind(&session)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    if live >= MAX_LIVE_PER_SESSION {
        return Ok(Err(IssueRefused::TooMany));
    }
    let ticket = random_secret(32);
    let expires_at = now_ms + TICKET_TTL_MS;
    sqlx::query(
        "INSERT INTO stream_tickets (ticket_hash, tenant_id, session_hash, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&ticket))
    .bind(tenant_id)
    .bind(&session)
    .bind(expires_at)
    .execute(&db.pool)
    .await?;
    Ok(Ok((ticket, expires_at)))
}

/// Redeems a ticket once: the principal of its session, or `None` when the ticket is unknown,
/// already used or expired, or its session ended.
pub async fn redeem(db: &Db, ticket: &str, now_ms: i64) -> Result<Option<Principal>> {
    let row = sqlx::query("DELETE FROM stream_tickets WHERE ticket_hash = $1 RETURNING session_hash, expires_at")
        .bind(token_hash(ticket))
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<i64, _>("expires_at")? <= now_ms {
        return Ok(None);
    }
    let session: String = row.try_get("session_hash")?;
    authenticate_session(db, &session, now_ms).await
}
