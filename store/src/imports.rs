//! Lead imports (インポート) into a customer list: the job's row, the staged rows (written in short
//! transactions as the file is read) and their publication into the list in one transaction, so an
//! upload is imported whole or not at all.

use sqlx::Row;

use crate::leads::PhoneType;
use crate::{placeholders, Db, Result};

/// Staged rows deleted per write transaction once an import ends.
const DISCARD_ROWS: i64 = 5_000;
/// Rows per INSERT statement when staging, per backend. Measured on 50,000 rows
/// (`kakeru-bench import`): SQLite's cost per statement grows faster than its parameters (inserts took
/// 0.8 s at 10 rows, 0.9 s at 20, 1.9 s at 100, 5.1 s at 400 per statement); PostgreSQL: whole import
/// medians of 2.21 s and 2.64 s at 400 rows, 3.07-3.71 s at 1,000.
const INSERT_ROWS_SQLITE: usize = 16;
const INSERT_ROWS_POSTGRES: usize = 400;

/// A new import of a file into a list.
#[derive(Debug, Clone)]
pub struct NewImport<'a> {
    pub tenant_id: i64,
    pub list_id: i64,
    pub user_id: i64,
    /// `standard` or `generic`.
    pub kind: &'a str,
    pub bytes_total: i64,
}

/// Records a queued import; its id.
pub async fn create(db: &Db, n: &NewImport<'_>, now_ms: i64) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO import_jobs (tenant_id, list_id, user_id, kind, status, bytes_total, created_at, heartbeat_at)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $6) RETURNING id",
    )
    .bind(n.tenant_id)
    .bind(n.list_id)
    .bind(n.user_id)
    .bind(n.kind)
    .bind(n.bytes_total)
    .bind(now_ms)
    .fetch_one(&db.pool)
    .await?
    .try_get("id")?)
}

/// The running import's proof that it is alive.
pub async fn heartbeat(db: &Db, tenant_id: i64, id: i64, now_ms: i64) -> Result<()> {
    sqlx::query("UPDATE import_jobs SET heartbeat_at = $1 WHERE id = $2 AND tenant_id = $3")
        .bind(now_ms)
        .bind(id)
        .bind(tenant_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn mark_running(db: &Db, tenant_id: i64, id: i64) -> Result<()> {
    sqlx::query("UPDATE import_jobs SET status = 'running' WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// How an import ended, for its row.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    /// `done` or `failed`.
    pub status: &'a str,
    pub encoding: Option<&'a str>,
    pub bytes_read: i64,
    pub rows_read: i64,
    pub imported_rows: i64,
    pub rejected_rows: i64,
    pub error_code: Option<&'a str>,
    pub error_message: Option<String>,
    /// The rejected rows as a CSV in the file's encoding.
    pub error_csv: Option<Vec<u8>>,
}

pub async fn finish(db: &Db, tenant_id: i64, id: i64, f: Finished<'_>, now_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE import_jobs SET status = $1, encoding = $2, bytes_read = $3, rows_read = $4, imported_rows = $5, rejected_rows = $6,
            error_code = $7, error_message = $8, error_csv = $9, finished_at = $10 WHERE id = $11 AND tenant_id = $12",
    )
    .bind(f.status)
    .bind(f.encoding)
    .bind(f.bytes_read)
    .bind(f.rows_read)
    .bind(f.imported_rows)
    .bind(f.rejected_rows)
    .bind(f.error_code)
    .bind(f.error_message)
    .bind(f.error_csv)
    .bind(now_ms)
    .bind(id)
    .bind(tenant_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// An unfinished import no live process runs was interrupted: recorded once, durably.
pub async fn mark_interrupted(db: &Db, tenant_id: i64, id: i64, now_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE import_jobs SET status = 'failed', error_code = 'interrupted',
            error_message = 'the import was interrupted; nothing was imported', finished_at = $1
         WHERE id = $2 AND tenant_id = $3 AND status IN ('queued', 'running')",
    )
    .bind(now_ms)
    .bind(id)
    .bind(tenant_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// An import's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportJob {
    pub id: i64,
    pub list_id: i64,
    pub kind: String,
    pub status: String,
    pub encoding: Option<String>,
    pub bytes_total: i64,
    pub bytes_read: i64,
    pub rows_read: i64,
    pub imported_rows: i64,
    pub rejected_rows: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
    pub heartbeat_at: i64,
    pub finished_at: Option<i64>,
}

pub async fn job(db: &Db, tenant_id: i64, id: i64) -> Result<Option<ImportJob>> {
    let r = sqlx::query(
        "SELECT id, list_id, kind, status, encoding, bytes_total, bytes_read, rows_read, imported_rows, rejected_rows,
                error_code, error_message, created_at, heartbeat_at, finished_at
         FROM import_jobs WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(ImportJob {
        id: r.try_get("id")?,
        list_id: r.try_get("list_id")?,
        kind: r.try_get("kind")?,
        status: r.try_get("status")?,
        encoding: r.try_get("encoding")?,
        bytes_total: r.try_get("bytes_total")?,
        bytes_read: r.try_get("bytes_read")?,
        rows_read: r.try_get("rows_read")?,
        imported_rows: r.try_get("imported_rows")?,
        rejected_rows: r.try_get("rejected_rows")?,
        error_code: r.try_get("error_code")?,
        error_message: r.try_get("error_message")?,
        created_at: r.try_get("created_at")?,
        heartbeat_at: r.try_get("heartbeat_at")?,
        finished_at: r.try_get("finished_at")?,
    }))
}

/// An import's error CSV and the encoding it is written in; `NotFound` for no such import of the
/// tenant.
pub async fn error_csv(db: &Db, tenant_id: i64, id: i64) -> Result<(Option<String>, Option<Vec<u8>>)> {
    let r = sqlx::query("SELECT encoding, error_csv FROM import_jobs WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?;
    Ok((r.try_get("encoding")?, r.try_get("error_csv")?))
}

/// The numbers of the batch's leads (an early look: most duplicates are refused as the file is
/// read; the publication checks again).
pub async fn batch_tels(db: &Db, tenant_id: i64, batch_id: i64) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT tel FROM leads WHERE batch_id = $1 AND tenant_id = $2")
        .bind(batch_id)
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("tel")?)).collect()
}

/// A good row of the file, staged until the publication.
#[derive(Debug, Clone, Copy)]
pub struct StagedLead<'a> {
    /// Line of the file where the record starts (header = 1).
    pub row: u64,
    pub name: &'a str,
    pub kana: &'a str,
    pub tel: &'a str,
    pub remarks: Option<&'a str>,
    /// The custom fields, a JSON object.
    pub custom: &'a str,
    /// The tags, a JSON array.
    pub tags: &'a str,
}

/// Stages `rows` in one short write transaction, in multi-row INSERTs of the backend's size; the
/// count staged.
pub async fn stage(db: &Db, tenant_id: i64, id: i64, rows: &[StagedLead<'_>]) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    const COLS: usize = 10;
    let per_statement = if db.is_postgres() { INSERT_ROWS_POSTGRES } else { INSERT_ROWS_SQLITE };
    let mut tx = db.begin_bulk_write().await?;
    let mut n = 0;
    for chunk in rows.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO import_staged_leads (import_id, row_no, tenant_id, name, kana, tel, phone_type, remarks, custom, tags) VALUES {}",
            placeholders(db.backend, chunk.len(), COLS)
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(id)
                .bind(r.row as i64)
                .bind(tenant_id)
                .bind(r.name)
                .bind(r.kana)
                .bind(r.tel)
                .bind(PhoneType::of(r.tel).as_str())
                .bind(r.remarks)
                .bind(r.custom)
                .bind(r.tags);
        }
        n += q.execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(n)
}

/// Deletes an import's staged rows, `DISCARD_ROWS` a transaction. (The tenant's condition stays in
/// the subquery: beside `row_no IN` in the outer statement, PostgreSQL plans a scan per row, minutes
/// for 50,000 rows.)
pub async fn discard_staged(db: &Db, tenant_id: i64, id: i64) -> Result<()> {
    loop {
        let mut tx = db.begin_bulk_write().await?;
        let n = sqlx::query(
            "DELETE FROM import_staged_leads WHERE import_id = $1 AND row_no IN
               (SELECT row_no FROM import_staged_leads WHERE import_id = $1 AND tenant_id = $3 ORDER BY row_no LIMIT $2)",
        )
        .bind(id)
        .bind(DISCARD_ROWS)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Ok(());
        }
    }
}

/// Where an import's staged rows go: the list, its batch, and the list's cap.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub list_id: i64,
    pub batch_id: i64,
    pub max_leads_per_list: i64,
}

/// How the publication of an import's staged rows ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// `imported` rows are in the list; `refused` (line, number) were refused because the batch
    /// got their numbers after the file was read (a parallel import).
    Done { imported: u64, refused: Vec<(u64, String)> },
    /// Nothing was imported: the list was deleted meanwhile.
    ListGone,
    /// Nothing was imported: the list holds `existing` leads, and the accepted rows would pass the cap.
    ListFull { existing: i64 },
}

/// Moves an import's `staged` rows into the list in one write transaction, after checking the
/// batch's duplicate rule and the list's cap against what is committed now, under the batch's
/// lock (`leads::lock_batch`, which single leads take too): publications and single creates into
/// one batch (one list or several) run one after the other.
pub async fn publish(db: &Db, tenant_id: i64, id: i64, to: Target, staged: u64, now_ms: i64) -> Result<Published> {
    let mut tx = db.begin_bulk_write().await?;
    crate::leads::lock_batch(db, &mut tx, tenant_id, to.batch_id).await?;
    let allow = sqlx::query("SELECT allow_duplicates FROM customer_lists WHERE id = $1 AND tenant_id = $2")
        .bind(to.list_id)
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(allow) = allow else { return Ok(Published::ListGone) };
    let mut refused = Vec::new();
    if allow.try_get::<i64, _>("allow_duplicates")? == 0 {
        if db.is_postgres() {
            // Right after an import the planner's statistics still say the batch is empty, and it
            // picks a nested loop over the whole batch for every staged row (minutes at 49,000
            // rows); a hash join reads the batch once.
            sqlx::query("SET LOCAL enable_nestloop = off").execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE import_staged_leads SET refused = 1 WHERE import_id = $1 AND EXISTS
               (SELECT 1 FROM leads l WHERE l.batch_id = $2 AND l.tenant_id = $3 AND l.tel = import_staged_leads.tel)",
        )
        .bind(id)
        .bind(to.batch_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        for r in sqlx::query(
            "SELECT row_no, tel FROM import_staged_leads WHERE import_id = $1 AND refused = 1 ORDER BY row_no",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        {
            refused.push((r.try_get::<i64, _>("row_no")? as u64, r.try_get::<String, _>("tel")?));
        }
    }
    let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM leads WHERE list_id = $1 AND tenant_id = $2")
        .bind(to.list_id)
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    let accepted = staged - refused.len() as u64;
    if existing + accepted as i64 > to.max_leads_per_list {
        return Ok(Published::ListFull { existing });
    }
    let imported = sqlx::query(
        "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, remarks, custom, tags, state, attempts, created_at)
         SELECT tenant_id, $1, $2, name, kana, tel, phone_type, remarks, custom, tags, 'open', 0, $3
         FROM import_staged_leads WHERE import_id = $4 AND refused = 0 ORDER BY row_no",
    )
    .bind(to.list_id)
    .bind(to.batch_id)
    .bind(now_ms)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Published::Done { imported, refused })
}
