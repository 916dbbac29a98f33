//! Retention (BIZTEL §1.2): a batch's leads are deleted at its batch-deletion date (end + 90 days)
//! and its history (call records, wrap-up records, the batch and its lists) at its
//! history-deletion date (batch deletion + R - 1 days), both in the tenant's zone
//! (`batch_dates::derive`). The rollups keep the figures: before history goes, the days it counted
//! are closed to recounts (`rollups::keep_days_before`).
//!
//! [`run`] is idempotent and resumable: every step deletes by a predicate in bounded chunks, each
//! chunk its own transaction, so a run cut anywhere leaves a state the next run finishes, and a
//! run with nothing due changes nothing. Each step is logged with its counts.

use chrono::NaiveDate;
use sqlx::Row;

use crate::batch_dates::derive;
use crate::tenancy::{get_tenant, local_date, parse_tz};
use crate::{Db, Result, StoreError};

/// Rows deleted per transaction.
const CHUNK: i64 = 1_000;

/// What one run deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Retained {
    pub leads: u64,
    pub call_records: u64,
    pub wrapup_records: u64,
    pub batches: u64,
}

/// Deletes by `sql` (a `DELETE ... WHERE id IN (SELECT id ... LIMIT $n)` taking the tenant as $1,
/// the batch as $2 and the chunk as $3) until nothing is left; returns the rows deleted.
async fn drain(db: &Db, sql: &str, tenant_id: i64, batch_id: i64) -> Result<u64> {
    let mut total = 0;
    loop {
        let mut tx = db.begin_write().await?;
        let n = sqlx::query(sql).bind(tenant_id).bind(batch_id).bind(CHUNK).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        total += n;
        if n < CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// One tenant's retention step as of `now_ms` (the job's clock; tests move it).
pub async fn run(db: &Db, tenant_id: i64, now_ms: i64) -> Result<Retained> {
    let tenant = get_tenant(db, tenant_id).await?;
    let tz = parse_tz(&tenant.time_zone)
        .ok_or_else(|| StoreError::Config(format!("tenant {tenant_id}: unknown time zone")))?;
    let today = local_date(tz, now_ms);
    let rows = sqlx::query("SELECT id, start_date, end_date FROM batches WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    let mut out = Retained::default();
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let parse = |c: &str| -> Result<NaiveDate> {
            let s: String = r.try_get(c)?;
            s.parse().map_err(|_| StoreError::Config(format!("batch {id}: {c} {s:?}")))
        };
        let dates = derive(parse("start_date")?, parse("end_date")?, tenant.history_retention_days);
        if today < dates.batch_deletion {
            continue;
        }
        // Batch deletion: the leads go (their recalls and history entries with them); the lists
        // stay, empty, so the history still knows its batch until the history-deletion date.
        let leads = drain(
            db,
            "DELETE FROM leads WHERE id IN (SELECT id FROM leads WHERE tenant_id = $1 AND batch_id = $2 LIMIT $3)",
            tenant_id,
            id,
        )
        .await?;
        if leads > 0 {
            tracing::info!(tenant = tenant_id, batch = id, leads, date = %dates.batch_deletion, "retention: the batch's leads deleted");
        }
        out.leads += leads;
        if today < dates.history_deletion {
            continue;
        }
        // History deletion: first close the days the history counted (the rollups keep them).
        let last = sqlx::query(
            "SELECT MAX(c.started_at) AS m FROM call_records c JOIN customer_lists l ON l.id = c.list_id
             WHERE c.tenant_id = $1 AND l.batch_id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_one(&db.pool)
        .await?;
        if let Some(m) = last.try_get::<Option<i64>, _>("m")? {
            let after = local_date(tz, m).succ_opt().unwrap_or(today);
            crate::rollups::keep_days_before(db, tenant_id, after, now_ms).await?;
        }
        let in_batch = "SELECT c.id FROM call_records c JOIN customer_lists l ON l.id = c.list_id
                        WHERE c.tenant_id = $1 AND l.batch_id = $2";
        let wrapups = drain(
            db,
            &format!(
                "DELETE FROM wrapup_records WHERE id IN (SELECT w.id FROM wrapup_records w WHERE w.tenant_id = $1
                   AND w.call_record_id IN ({in_batch}) LIMIT $3)"
            ),
            tenant_id,
            id,
        )
        .await?;
        let calls =
            drain(db, &format!("DELETE FROM call_records WHERE id IN ({in_batch} LIMIT $3)"), tenant_id, id).await?;
        let mut tx = db.begin_write().await?;
        sqlx::query("DELETE FROM customer_lists WHERE tenant_id = $1 AND batch_id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let batches = sqlx::query("DELETE FROM batches WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        tracing::info!(tenant = tenant_id, batch = id, calls, wrapups, date = %dates.history_deletion, "retention: the batch's history deleted");
        out.call_records += calls;
        out.wrapup_records += wrapups;
        out.batches += batches;
    }
    Ok(out)
}
