//! 転送: an agent hands its customer to another agent (blind) — one row per transfer in
//! `call_transfers` (migration 0036), written by the API when the agent asks; and the saved outside
//! numbers (外線転送, `outside_transfers`) an agent transfers to.

use sqlx::Row;

use crate::{Db, Result};

/// A transfer of a call, as the call's history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: i64,
    pub from_user_id: i64,
    pub to_user_id: Option<i64>,
    pub to_tel: Option<String>,
    pub requested_at: i64,
}

/// Records that `from_user_id` handed the customer of call `call_record_id` to the agent
/// `to_user_id`; the row's id.
pub async fn to_agent(
    db: &Db,
    tenant_id: i64,
    call_record_id: i64,
    from_user_id: i64,
    to_user_id: i64,
    at_ms: i64,
) -> Result<i64> {
    insert(db, (tenant_id, call_record_id, from_user_id), Some(to_user_id), None, at_ms).await
}

/// Records that `from_user_id` handed the customer of call `call_record_id` to the outside number
/// `to_tel` (外線転送); the row's id.
pub async fn to_outside(
    db: &Db,
    tenant_id: i64,
    call_record_id: i64,
    from_user_id: i64,
    to_tel: &str,
    at_ms: i64,
) -> Result<i64> {
    insert(db, (tenant_id, call_record_id, from_user_id), None, Some(to_tel), at_ms).await
}

/// One transfer of (tenant, call record, from user) to an agent or an outside number.
async fn insert(
    db: &Db,
    (tenant_id, call, from): (i64, i64, i64),
    to_user: Option<i64>,
    to_tel: Option<&str>,
    at_ms: i64,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO call_transfers (tenant_id, call_record_id, from_user_id, to_user_id, to_tel, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(tenant_id)
    .bind(call)
    .bind(from)
    .bind(to_user)
    .bind(to_tel)
    .bind(at_ms)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get("id")?)
}

/// The transfers of a call, oldest first.
pub async fn of_call(db: &Db, tenant_id: i64, call_record_id: i64) -> Result<Vec<Transfer>> {
    let rows = sqlx::query(
        "SELECT id, from_user_id, to_user_id, to_tel, requested_at FROM call_transfers
         WHERE tenant_id = $1 AND call_record_id = $2 ORDER BY requested_at, id LIMIT 100",
    )
    .bind(tenant_id)
    .bind(call_record_id)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Transfer {
                id: r.try_get("id")?,
                from_user_id: r.try_get("from_user_id")?,
                to_user_id: r.try_get("to_user_id")?,
                to_tel: r.try_get("to_tel")?,
                requested_at: r.try_get("requested_at")?,
            })
        })
        .collect()
}

/// Whether `to_user_id` is ready now in a call job of the campaign `from_user_id` works
/// (a transfer's target; control checks again when it applies the transfer).
pub async fn ready_colleague(db: &Db, tenant_id: i64, from_user_id: i64, to_user_id: i64) -> Result<bool> {
    let row = sqlx::query(
        "SELECT b.view FROM control_agents a JOIN control_agents b
           ON b.tenant_id = a.tenant_id AND b.campaign_id = a.campaign_id AND b.agent_user_id = $3
         WHERE a.tenant_id = $1 AND a.agent_user_id = $2 AND a.campaign_id IS NOT NULL",
    )
    .bind(tenant_id)
    .bind(from_user_id)
    .bind(to_user_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(false) };
    let view: String = r.try_get("view")?;
    let v: serde_json::Value = serde_json::from_str(&view).unwrap_or_default();
    Ok(v["state"]["state"] == "ready" || v["state"] == "ready")
}

/// A saved outside number (外線転送, `outside_transfers`): what an agent's choice of it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedOutside {
    pub number: String,
    /// 発信者番号 it is called from; `None`: the call's own.
    pub caller_id: Option<String>,
}

/// The tenant's saved outside number `id`, if it has one.
pub async fn saved_outside(db: &Db, tenant_id: i64, id: i64) -> Result<Option<SavedOutside>> {
    let row = sqlx::query("SELECT number, caller_id FROM outside_transfers WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Ok(SavedOutside { number: r.try_get("number")?, caller_id: r.try_get("caller_id")? })).transpose()
}
