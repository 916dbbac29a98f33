//! Call jobs (発信ジョブ) as the API starts, stops and shapes them: the checks before a start, the
//! switch, the job's customer lists.

use sqlx::Row;

use crate::{Db, Result};

/// What a start checks, read in one statement (`start_check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCheck {
    pub status: String,
    /// The campaign's business hours, `HH:MM`.
    pub business_start: String,
    pub business_end: String,
    /// The job's customer lists.
    pub lists: i64,
    /// The campaign's own results (対話結果).
    pub results: i64,
    /// Unsaved wrap-up records (応対記録(未保存)) of the job's lists.
    pub unsaved: i64,
    /// The period of the job's batches (実施期間), `YYYY-MM-DD`.
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    /// The job's lists whose batch's period holds `today`.
    pub lists_in_period: i64,
}

/// What a start of the job checks, on the tenant-local day `today` (`YYYY-MM-DD`); `NotFound` for
/// no such job of the tenant.
pub async fn start_check(db: &Db, tenant_id: i64, job_id: i64, today: &str) -> Result<StartCheck> {
    let row = sqlx::query(
        "SELECT j.status, c.business_start, c.business_end, (SELECT COUNT(*) FROM call_job_lists jl WHERE jl.job_id = j.id) AS lists,
                (SELECT COUNT(*) FROM result_codes r WHERE r.campaign_id = j.campaign_id AND r.tenant_id = j.tenant_id) AS results,
                (SELECT COUNT(*) FROM wrapup_records w JOIN leads l ON l.id = w.lead_id JOIN call_job_lists jl ON jl.list_id = l.list_id
                  WHERE jl.job_id = j.id AND w.tenant_id = j.tenant_id AND w.saved_at IS NULL) AS unsaved,
                (SELECT MIN(b.start_date) FROM call_job_lists jl JOIN customer_lists cl ON cl.id = jl.list_id JOIN batches b ON b.id = cl.batch_id
                  WHERE jl.job_id = j.id) AS period_start,
                (SELECT MAX(b.end_date) FROM call_job_lists jl JOIN customer_lists cl ON cl.id = jl.list_id JOIN batches b ON b.id = cl.batch_id
                  WHERE jl.job_id = j.id) AS period_end,
                (SELECT COUNT(*) FROM call_job_lists jl JOIN customer_lists cl ON cl.id = jl.list_id JOIN batches b ON b.id = cl.batch_id
                  WHERE jl.job_id = j.id AND b.start_date <= $3 AND b.end_date >= $3) AS lists_in_period
         FROM call_jobs j JOIN campaigns c ON c.id = j.campaign_id WHERE j.id = $1 AND j.tenant_id = $2",
    )
    .bind(job_id)
    .bind(tenant_id)
    .bind(today)
    .fetch_one(&db.pool)
    .await?;
    Ok(StartCheck {
        status: row.try_get("status")?,
        business_start: row.try_get("business_start")?,
        business_end: row.try_get("business_end")?,
        lists: row.try_get("lists")?,
        results: row.try_get("results")?,
        unsaved: row.try_get("unsaved")?,
        period_start: row.try_get("period_start")?,
        period_end: row.try_get("period_end")?,
        lists_in_period: row.try_get("lists_in_period")?,
    })
}

/// Starts the job unless it runs already or `max_running` jobs of the tenant run: the count and
/// the switch in one statement, so two starts at once cannot both pass. False when refused.
pub async fn start(db: &Db, tenant_id: i64, job_id: i64, now_ms: i64, max_running: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE call_jobs SET status = 'running', started_at = $1 WHERE id = $2 AND tenant_id = $3 AND status <> 'running'
           AND (SELECT COUNT(*) FROM call_jobs r WHERE r.tenant_id = $3 AND r.status = 'running') < $4",
    )
    .bind(now_ms)
    .bind(job_id)
    .bind(tenant_id)
    .bind(max_running)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Stops the job if it runs; true when it did.
pub async fn stop(db: &Db, tenant_id: i64, job_id: i64, now_ms: i64) -> Result<bool> {
    let stopped = sqlx::query(
        "UPDATE call_jobs SET status = 'stopped', stopped_at = $1 WHERE id = $2 AND tenant_id = $3 AND status = 'running'",
    )
    .bind(now_ms)
    .bind(job_id)
    .bind(tenant_id)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(stopped > 0)
}

/// The job's campaign; `NotFound` for no such job of the tenant.
pub async fn campaign_of(db: &Db, tenant_id: i64, job_id: i64) -> Result<i64> {
    Ok(sqlx::query("SELECT campaign_id FROM call_jobs WHERE id = $1 AND tenant_id = $2")
        .bind(job_id)
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?
        .try_get("campaign_id")?)
}

/// Whether the customer list of the tenant belongs to a batch of the campaign.
pub async fn list_in_campaign(db: &Db, tenant_id: i64, list_id: i64, campaign_id: i64) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM customer_lists c JOIN batches b ON b.id = c.batch_id
         WHERE c.id = $1 AND b.campaign_id = $2 AND c.tenant_id = $3",
    )
    .bind(list_id)
    .bind(campaign_id)
    .bind(tenant_id)
    .fetch_optional(&db.pool)
    .await?
    .is_some())
}

/// Replaces the job's customer lists, in one writing transaction; the caller checked the lists.
pub async fn replace_lists(db: &Db, tenant_id: i64, job_id: i64, list_ids: &[i64]) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM call_job_lists WHERE job_id = $1 AND tenant_id = $2")
        .bind(job_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    for list in list_ids {
        sqlx::query("INSERT INTO call_job_lists (tenant_id, job_id, list_id) VALUES ($1, $2, $3)")
            .bind(tenant_id)
            .bind(job_id)
            .bind(*list)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What a running call job may be using, so that it is not changed or deleted under the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InUse {
    /// The job itself.
    Job(i64),
    Campaign(i64),
    DialingGroup(i64),
    /// A batch, through the job's lists.
    Batch(i64),
    CustomerList(i64),
}

/// Whether a running call job of the tenant is, or uses, the record.
pub async fn running_job_uses(db: &Db, tenant_id: i64, what: InUse) -> Result<bool> {
    let (sql, id) = match what {
        InUse::Job(id) => ("SELECT 1 AS one FROM call_jobs WHERE id = $1 AND tenant_id = $2 AND status = 'running'", id),
        InUse::Campaign(id) => {
            ("SELECT 1 AS one FROM call_jobs WHERE campaign_id = $1 AND tenant_id = $2 AND status = 'running'", id)
        }
        InUse::DialingGroup(id) => {
            ("SELECT 1 AS one FROM call_jobs WHERE dialing_group_id = $1 AND tenant_id = $2 AND status = 'running'", id)
        }
        InUse::Batch(id) => (
            "SELECT 1 AS one FROM call_jobs j JOIN call_job_lists jl ON jl.job_id = j.id JOIN customer_lists c ON c.id = jl.list_id
             WHERE c.batch_id = $1 AND j.tenant_id = $2 AND j.status = 'running'",
            id,
        ),
        InUse::CustomerList(id) => (
            "SELECT 1 AS one FROM call_jobs j JOIN call_job_lists jl ON jl.job_id = j.id
             WHERE jl.list_id = $1 AND j.tenant_id = $2 AND j.status = 'running'",
            id,
        ),
    };
    crate::found(db, sql, id, tenant_id).await
}

/// The job's calls still without a result (`pending`): none once the dialer ended them all.
pub async fn calls_without_result(db: &Db, tenant_id: i64, job_id: i64) -> Result<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM call_records WHERE call_job_id = $1 AND tenant_id = $2 AND result = 'pending'",
    )
    .bind(job_id)
    .bind(tenant_id)
    .fetch_one(&db.pool)
    .await?
    .try_get("n")?)
}
