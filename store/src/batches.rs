//! Batches (バッチ) and their customer lists (顧客リスト) as the API checks them before a write.

use sqlx::Row;

use crate::{Db, Result};

/// A batch's period (実施期間, `YYYY-MM-DD`) and its first and last call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDates {
    pub start_date: String,
    pub end_date: String,
    pub first_call_at: Option<i64>,
    pub last_call_at: Option<i64>,
}

/// `NotFound` for no such batch of the tenant.
pub async fn dates(db: &Db, tenant_id: i64, batch_id: i64) -> Result<BatchDates> {
    let row = sqlx::query(
        "SELECT start_date, end_date, first_call_at, last_call_at FROM batches WHERE id = $1 AND tenant_id = $2",
    )
    .bind(batch_id)
    .bind(tenant_id)
    .fetch_one(&db.pool)
    .await?;
    Ok(BatchDates {
        start_date: row.try_get("start_date")?,
        end_date: row.try_get("end_date")?,
        first_call_at: row.try_get("first_call_at")?,
        last_call_at: row.try_get("last_call_at")?,
    })
}

/// Whether the batch was called and still has lists.
pub async fn has_calls_and_lists(db: &Db, tenant_id: i64, batch_id: i64) -> Result<bool> {
    crate::found(
        db,
        "SELECT 1 AS one FROM batches b WHERE b.id = $1 AND b.tenant_id = $2 AND b.first_call_at IS NOT NULL
           AND EXISTS (SELECT 1 FROM customer_lists c WHERE c.batch_id = b.id)",
        batch_id,
        tenant_id,
    )
    .await
}

/// Whether leads of the batch have unsaved wrap-up records (応対記録(未保存)).
pub async fn has_unsaved_records(db: &Db, tenant_id: i64, batch_id: i64) -> Result<bool> {
    crate::found(
        db,
        "SELECT 1 AS one FROM wrapup_records w JOIN leads l ON l.id = w.lead_id
         WHERE l.batch_id = $1 AND w.tenant_id = $2 AND w.saved_at IS NULL",
        batch_id,
        tenant_id,
    )
    .await
}

/// A customer list's batch and its duplicate rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListBatch {
    pub batch_id: i64,
    /// The list accepts a phone number already in the batch.
    pub allow_duplicates: bool,
}

/// `None` for no such list of the tenant.
pub async fn of_list(db: &Db, tenant_id: i64, list_id: i64) -> Result<Option<ListBatch>> {
    let r = sqlx::query("SELECT batch_id, allow_duplicates FROM customer_lists WHERE id = $1 AND tenant_id = $2")
        .bind(list_id)
        .bind(tenant_id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(ListBatch {
        batch_id: r.try_get("batch_id")?,
        allow_duplicates: r.try_get::<i64, _>("allow_duplicates")? != 0,
    }))
}
