//! Supervisors on agents' calls (モニタリング, ささやき, 割込): one row per supervisor, call and
//! mode in `call_monitors` (migration 0025). The API writes a row when a supervisor asks
//! ([`requested`]); the dialer, which connects the supervisor's phone, writes when the leg joined
//! ([`started`]) and when it ended ([`ended`], once: a row already ended keeps its end).

use serde::Serialize;
use sqlx::Row;

use crate::{Db, Result};

/// A supervisor's request to join the call `call_record_id` of `agent_user_id` in `mode`.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub tenant_id: i64,
    pub call_record_id: i64,
    pub agent_user_id: i64,
    pub supervisor_user_id: i64,
    pub mode: &'a str,
    pub at_ms: i64,
}

/// Writes the request's row; its id.
pub async fn requested(db: &Db, r: &Request<'_>) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO call_monitors (tenant_id, call_record_id, agent_user_id, supervisor_user_id, mode, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(r.tenant_id)
    .bind(r.call_record_id)
    .bind(r.agent_user_id)
    .bind(r.supervisor_user_id)
    .bind(r.mode)
    .bind(r.at_ms)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get("id")?)
}

/// The supervisor's phone answered: the mode is in effect from `at_ms` (a row already ended is
/// left alone).
pub async fn started(db: &Db, tenant_id: i64, id: i64, at_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE call_monitors SET started_at = $1 WHERE tenant_id = $2 AND id = $3 AND started_at IS NULL AND ended_at IS NULL",
    )
    .bind(at_ms)
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The row ends at `at_ms` for `reason` (the first end counts).
pub async fn ended(db: &Db, tenant_id: i64, id: i64, at_ms: i64, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE call_monitors SET ended_at = $1, end_reason = $2 WHERE tenant_id = $3 AND id = $4 AND ended_at IS NULL",
    )
    .bind(at_ms)
    .bind(reason)
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// One row, as the call's history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Monitor {
    pub id: i64,
    pub call_record_id: i64,
    pub agent_user_id: i64,
    pub supervisor_user_id: i64,
    /// The supervisor's display name.
    pub supervisor: String,
    pub mode: String,
    pub requested_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

/// The rows of a call, oldest first (at most `limit`).
pub async fn of_call(db: &Db, tenant_id: i64, call_record_id: i64, limit: i64) -> Result<Vec<Monitor>> {
    let rows = sqlx::query(
        "SELECT m.id, m.call_record_id, m.agent_user_id, m.supervisor_user_id, COALESCE(u.display_name, '') AS supervisor,
                m.mode, m.requested_at, m.started_at, m.ended_at, m.end_reason
         FROM call_monitors m LEFT JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.supervisor_user_id
         WHERE m.tenant_id = $1 AND m.call_record_id = $2 ORDER BY m.id LIMIT $3",
    )
    .bind(tenant_id)
    .bind(call_record_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Monitor {
                id: r.try_get("id")?,
                call_record_id: r.try_get("call_record_id")?,
                agent_user_id: r.try_get("agent_user_id")?,
                supervisor_user_id: r.try_get("supervisor_user_id")?,
                supervisor: r.try_get("supervisor")?,
                mode: r.try_get("mode")?,
                requested_at: r.try_get("requested_at")?,
                started_at: r.try_get("started_at")?,
                ended_at: r.try_get("ended_at")?,
                end_reason: r.try_get("end_reason")?,
            })
        })
        .collect()
}
