//! 電話会議: the third parties an agent calls into its call, one row each in `call_conferences`
//! (migration 0038): the API writes the ask, the dialer its start (the third party answered) and
//! its end with the reason.

use sqlx::Row;

use crate::{Db, Result};

/// A conference of a call, as the call's history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    pub id: i64,
    pub agent_user_id: i64,
    pub to_tel: String,
    pub requested_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

/// The agent `agent_user_id` asked for `to_tel` as the third party of call `call_record_id`; the
/// row's id. An earlier row of the call still open is ended first (`superseded`).
pub async fn requested(
    db: &Db,
    tenant_id: i64,
    call_record_id: i64,
    agent_user_id: i64,
    to_tel: &str,
    at_ms: i64,
) -> Result<i64> {
    ended(db, tenant_id, call_record_id, at_ms, "superseded").await?;
    let row = sqlx::query(
        "INSERT INTO call_conferences (tenant_id, call_record_id, agent_user_id, to_tel, requested_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(tenant_id)
    .bind(call_record_id)
    .bind(agent_user_id)
    .bind(to_tel)
    .bind(at_ms)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get("id")?)
}

/// The call's open conference began at `at_ms` (its third party answered).
pub async fn started(db: &Db, tenant_id: i64, call_record_id: i64, at_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE call_conferences SET started_at = $1
         WHERE tenant_id = $2 AND call_record_id = $3 AND started_at IS NULL AND ended_at IS NULL",
    )
    .bind(at_ms)
    .bind(tenant_id)
    .bind(call_record_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The call's open conference ended at `at_ms` for `reason`.
pub async fn ended(db: &Db, tenant_id: i64, call_record_id: i64, at_ms: i64, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE call_conferences SET ended_at = $1, end_reason = $2
         WHERE tenant_id = $3 AND call_record_id = $4 AND ended_at IS NULL",
    )
    .bind(at_ms)
    .bind(reason)
    .bind(tenant_id)
    .bind(call_record_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The conferences of a call, oldest first.
pub async fn of_call(db: &Db, tenant_id: i64, call_record_id: i64) -> Result<Vec<Conference>> {
    let rows = sqlx::query(
        "SELECT id, agent_user_id, to_tel, requested_at, started_at, ended_at, end_reason FROM call_conferences
         WHERE tenant_id = $1 AND call_record_id = $2 ORDER BY requested_at, id LIMIT 100",
    )
    .bind(tenant_id)
    .bind(call_record_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(conference_of).collect()
}

fn conference_of(r: &sqlx::any::AnyRow) -> Result<Conference> {
    Ok(Conference {
        id: r.try_get("id")?,
        agent_user_id: r.try_get("agent_user_id")?,
        to_tel: r.try_get("to_tel")?,
        requested_at: r.try_get("requested_at")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: r.try_get("end_reason")?,
    })
}

/// A conference as the call's history lists it: with the name of the agent who asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceEntry {
    pub conference: Conference,
    /// The agent's display name ("" once the user is deleted).
    pub agent: String,
}

/// The conferences of the tenant's call record `call_record_id`, oldest first, with the names of
/// the agents who asked for them.
pub async fn history(db: &Db, tenant_id: i64, call_record_id: i64) -> Result<Vec<ConferenceEntry>> {
    let rows = sqlx::query(
        "SELECT c.id, c.agent_user_id, c.to_tel, c.requested_at, c.started_at, c.ended_at, c.end_reason,
                COALESCE(u.display_name, '') AS agent
         FROM call_conferences c LEFT JOIN users u ON u.tenant_id = c.tenant_id AND u.id = c.agent_user_id
         WHERE c.tenant_id = $1 AND c.call_record_id = $2 ORDER BY c.requested_at, c.id LIMIT 100",
    )
    .bind(tenant_id)
    .bind(call_record_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| Ok(ConferenceEntry { conference: conference_of(r)?, agent: r.try_get("agent")? })).collect()
}
