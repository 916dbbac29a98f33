//! パーク保留: customers parked by their agent (#72 or the desktop), each under a park number
//! (保留番号, 9001..=9099, the lowest free of the tenant) until an agent picks it up from any phone,
//! the customer hangs up, or the tenant's limit returns it — `parked_calls` (migration 0037).
//!
//! The control service owns the parks (it assigns the numbers and writes the rows in its commit);
//! the API lists the open ones and claims one for a pick-up ([`claim`]: exactly one claim wins).

use sqlx::Row;

use crate::{Db, Result};

/// The first park number; a tenant has at most [`MAX_PARKED`] open parks.
pub const FIRST_NUMBER: u16 = 9001;
/// Most calls parked at once per tenant (9001..=9099).
pub const MAX_PARKED: usize = 99;

/// An open park, as the agents' list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub number: i64,
    pub dialer_call_id: i64,
    /// The customer's number (the call record's).
    pub tel: Option<String>,
    pub parked_by: i64,
    pub parked_by_name: Option<String>,
    pub parked_at: i64,
}

/// The tenant's open parks (not ended, not claimed), by number.
pub async fn open(db: &Db, tenant_id: i64) -> Result<Vec<Parked>> {
    let rows = sqlx::query(
        "SELECT CAST(p.number AS BIGINT) AS number, p.dialer_call_id, p.parked_by, p.parked_at, c.tel, u.display_name
         FROM parked_calls p
         LEFT JOIN call_records c ON c.tenant_id = p.tenant_id AND c.dialer_call_id = p.dialer_call_id
         LEFT JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.parked_by
         WHERE p.tenant_id = $1 AND p.ended_at IS NULL AND p.picked_by IS NULL
         ORDER BY p.number LIMIT 100",
    )
    .bind(tenant_id)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Parked {
                number: r.try_get("number")?,
                dialer_call_id: r.try_get("dialer_call_id")?,
                tel: r.try_get("tel")?,
                parked_by: r.try_get("parked_by")?,
                parked_by_name: r.try_get("display_name")?,
                parked_at: r.try_get("parked_at")?,
            })
        })
        .collect()
}

/// How a pick-up claim went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the park now: its call.
    Won { dialer_call_id: i64 },
    /// Another agent claimed it first.
    Taken,
    /// No open park has this number in the tenant.
    Unknown,
}

/// Claims the open park `number` for `agent` (a pick-up): exactly one of several claims at once wins.
pub async fn claim(db: &Db, tenant_id: i64, number: i64, agent: i64, at_ms: i64) -> Result<Claim> {
    let won = sqlx::query(
        "UPDATE parked_calls SET picked_by = $1, picked_at = $2
         WHERE tenant_id = $3 AND number = $4 AND ended_at IS NULL AND picked_by IS NULL
         RETURNING dialer_call_id",
    )
    .bind(agent)
    .bind(at_ms)
    .bind(tenant_id)
    .bind(number)
    .fetch_optional(&db.pool)
    .await?;
    if let Some(r) = won {
        return Ok(Claim::Won { dialer_call_id: r.try_get("dialer_call_id")? });
    }
    Ok(if is_open(db, tenant_id, number).await? { Claim::Taken } else { Claim::Unknown })
}

/// Whether the tenant has an open park under `number` (claimed or not).
pub async fn is_open(db: &Db, tenant_id: i64, number: i64) -> Result<bool> {
    let r = sqlx::query("SELECT 1 AS x FROM parked_calls WHERE tenant_id = $1 AND number = $2 AND ended_at IS NULL")
        .bind(tenant_id)
        .bind(number)
        .fetch_optional(&db.pool)
        .await?;
    Ok(r.is_some())
}

/// A park of the call's history (who parked it, when, how it ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkRecord {
    pub number: i64,
    pub parked_by: i64,
    /// The display names of who parked it and who picked it up ("" once the user is deleted).
    pub parked_by_name: String,
    pub parked_at: i64,
    pub picked_by: Option<i64>,
    pub picked_by_name: Option<String>,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
}

/// The parks of a call (dialer call id), oldest first.
pub async fn of_call(db: &Db, tenant_id: i64, dialer_call_id: i64) -> Result<Vec<ParkRecord>> {
    let rows = sqlx::query(
        "SELECT CAST(p.number AS BIGINT) AS number, p.parked_by, COALESCE(a.display_name, '') AS parked_by_name,
                p.parked_at, p.picked_by, b.display_name AS picked_by_name, p.ended_at, p.outcome
         FROM parked_calls p
         LEFT JOIN users a ON a.tenant_id = p.tenant_id AND a.id = p.parked_by
         LEFT JOIN users b ON b.tenant_id = p.tenant_id AND b.id = p.picked_by
         WHERE p.tenant_id = $1 AND p.dialer_call_id = $2 ORDER BY p.parked_at, p.id LIMIT 100",
    )
    .bind(tenant_id)
    .bind(dialer_call_id)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ParkRecord {
                number: r.try_get("number")?,
                parked_by: r.try_get("parked_by")?,
                parked_by_name: r.try_get("parked_by_name")?,
                parked_at: r.try_get("parked_at")?,
                picked_by: r.try_get("picked_by")?,
                picked_by_name: r.try_get("picked_by_name")?,
                ended_at: r.try_get("ended_at")?,
                outcome: r.try_get("outcome")?,
            })
        })
        .collect()
}
