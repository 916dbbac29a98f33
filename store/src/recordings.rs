//! Call recordings (通話録音, SPEC 8): the rows behind the files, the encoder's queue, and the
//! per-tenant storage accounting with oldest-first deletion past the quota.
//!
//! The life of a recording:
//! 1. The dialer starts recording a call at [`recording_path`] (a stereo G.711 WAV the relay
//!    shard appends to). When the shard reports the file closed, the dialer calls [`closed`]:
//!    the row is created (idempotent per `(tenant_id, dialer_call_id)`), linked to the call
//!    record with the same `dialer_call_id`, and `call_records.recording_path` is set.
//! 2. The Opus pool (`media-archive`) takes rows with [`claim_for_encoding`], writes the Ogg
//!    Opus file beside the WAV, makes it durable, removes the WAV and calls [`encoded`].
//! 3. After each encoding the pool calls [`enforce_quota`]: past `tenants.recording_quota_bytes`
//!    the oldest live recordings are marked deleted, their files unlinked, then [`purged`].
//!
//! Invariant: `bytes` is the size of the file at `path` (what the quota counts); a row with
//! `deleted_at` set is never listed or served again.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{tenancy, Db, Result, StoreError};

/// A recording's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Stereo G.711 WAV as the shard recorded it (customer left, agent right).
    Wav,
    /// Ogg Opus, stereo (customer left, agent right), about 16 kbit/s per channel.
    Opus,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::Opus => "opus",
        }
    }

    fn parse(s: &str) -> Format {
        if s == "opus" {
            Format::Opus
        } else {
            Format::Wav
        }
    }

    /// The HTTP content type of the file.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Wav => "audio/wav",
            Format::Opus => "audio/ogg; codecs=opus",
        }
    }

    /// The file name extension (without the dot).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }
}

/// Where the dialer must record a call:
/// `<dir>/<tenant_id>/<YYYY-MM-DD of started_at_ms in the tenant's zone>/<dialer_call_id>.wav`.
/// The Opus file is written beside it with the extension `.opus`. The dialer creates the
/// directories (`std::fs::create_dir_all` of the parent) before handing the path to the shard.
pub fn recording_path(dir: &Path, tenant_id: i64, tz: Tz, started_at_ms: i64, dialer_call_id: i64) -> PathBuf {
    let date = tenancy::local_date(tz, started_at_ms).format("%Y-%m-%d").to_string();
    dir.join(tenant_id.to_string()).join(date).join(format!("{dialer_call_id}.wav"))
}

/// What the dialer reports when a shard closed a recording file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewRecording {
    pub tenant_id: i64,
    /// The dialer's call id: the row is linked to `call_records` by it.
    pub dialer_call_id: i64,
    /// The absolute path of the WAV (from [`recording_path`]).
    pub path: String,
    /// File size (the shard's `RecordingClosed.bytes`).
    pub bytes: i64,
    /// Audio length: `media::recording::duration_ms(bytes)`.
    pub duration_ms: i64,
    pub started_at_ms: i64,
    pub closed_at_ms: i64,
}

/// One recording row, with what the API shows of its call.
#[derive(Debug, Clone, Serialize)]
pub struct Recording {
    pub id: i64,
    pub tenant_id: i64,
    pub dialer_call_id: i64,
    pub call_record_id: Option<i64>,
    /// The call's agent (from the call record), if known.
    pub agent_user_id: Option<i64>,
    pub path: String,
    pub format: Format,
    pub bytes: i64,
    pub duration_ms: i64,
    /// `YYYY-MM-DD` of `started_at` in the tenant's zone (the folder and the zip day).
    pub local_date: String,
    pub started_at: i64,
    pub closed_at: i64,
    pub encoded_at: Option<i64>,
    pub encode_error: Option<String>,
    pub deleted_at: Option<i64>,
    pub deleted_reason: Option<String>,
}

/// The columns of [`Recording`], recordings as `r`, the call record joined as `c`.
const SELECT: &str = "SELECT r.id, r.tenant_id, r.dialer_call_id, c.id AS call_record_id, c.agent_user_id, r.path,
    r.format, r.bytes, r.duration_ms, r.local_date, r.started_at, r.closed_at, r.encoded_at, r.encode_error,
    r.deleted_at, r.deleted_reason
    FROM recordings r LEFT JOIN call_records c ON c.tenant_id = r.tenant_id AND c.dialer_call_id = r.dialer_call_id";

fn from_row(r: &AnyRow) -> Result<Recording> {
    let format: String = r.try_get("format")?;
    Ok(Recording {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        dialer_call_id: r.try_get("dialer_call_id")?,
        call_record_id: r.try_get("call_record_id")?,
        agent_user_id: r.try_get("agent_user_id")?,
        path: r.try_get("path")?,
        format: Format::parse(&format),
        bytes: r.try_get("bytes")?,
        duration_ms: r.try_get("duration_ms")?,
        local_date: r.try_get("local_date")?,
        started_at: r.try_get("started_at")?,
        closed_at: r.try_get("closed_at")?,
        encoded_at: r.try_get("encoded_at")?,
        encode_error: r.try_get("encode_error")?,
        deleted_at: r.try_get("deleted_at")?,
        deleted_reason: r.try_get("deleted_reason")?,
    })
}

/// Records a closed recording file (see the module docs); returns the recording's id. Calling it
/// again for the same `(tenant_id, dialer_call_id)` updates the size and times of a row not yet
/// encoded and returns the same id.
pub async fn closed(db: &Db, r: &NewRecording) -> Result<i64> {
    if r.path.is_empty() || r.bytes < 0 || r.duration_ms < 0 || r.closed_at_ms < r.started_at_ms {
        return Err(StoreError::Constraint(format!(
            "recording of call {}: path, bytes, duration or times out of range",
            r.dialer_call_id
        )));
    }
    let tenant = tenancy::get_tenant(db, r.tenant_id).await?;
    let tz = tenancy::parse_tz(&tenant.time_zone).unwrap_or(chrono_tz::UTC);
    let local_date = tenancy::local_date(tz, r.started_at_ms).format("%Y-%m-%d").to_string();
    let mut tx = db.begin_write().await?;
    let call_record_id: Option<i64> =
        sqlx::query("SELECT id FROM call_records WHERE tenant_id = $1 AND dialer_call_id = $2")
            .bind(r.tenant_id)
            .bind(r.dialer_call_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("id"))
            .transpose()?;
    let id: i64 = sqlx::query(
        "INSERT INTO recordings (tenant_id, dialer_call_id, call_record_id, path, format, bytes, duration_ms, local_date,
            started_at, closed_at)
         VALUES ($1, $2, $3, $4, 'wav', $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, dialer_call_id) DO UPDATE SET
            bytes = CASE WHEN recordings.encoded_at IS NULL THEN excluded.bytes ELSE recordings.bytes END,
            duration_ms = CASE WHEN recordings.encoded_at IS NULL THEN excluded.duration_ms ELSE recordings.duration_ms END,
            closed_at = excluded.closed_at,
            call_record_id = COALESCE(excluded.call_record_id, recordings.call_record_id)
         RETURNING id",
    )
    .bind(r.tenant_id)
    .bind(r.dialer_call_id)
    .bind(call_record_id)
    .bind(&r.path)
    .bind(r.bytes)
    .bind(r.duration_ms)
    .bind(&local_date)
    .bind(r.started_at_ms)
    .bind(r.closed_at_ms)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    sqlx::query(
        "UPDATE call_records SET recording_path = (SELECT path FROM recordings WHERE id = $1)
         WHERE tenant_id = $2 AND dialer_call_id = $3",
    )
    .bind(id)
    .bind(r.tenant_id)
    .bind(r.dialer_call_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// One recording of the tenant (deleted ones included: the caller decides what to show).
pub async fn get(db: &Db, tenant_id: i64, id: i64) -> Result<Recording> {
    let sql = format!("{SELECT} WHERE r.tenant_id = $1 AND r.id = $2");
    let row = sqlx::query(&sql).bind(tenant_id).bind(id).fetch_one(&db.pool).await?;
    from_row(&row)
}

/// Filters of [`list`] (all optional; dates are the tenant's local dates, inclusive).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub call_record_id: Option<i64>,
    pub agent_user_id: Option<i64>,
    /// Only recordings of this agent's calls (an OP's own calls).
    pub own_agent: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of the tenant's live recordings, newest first, and the total matching.
pub async fn list(db: &Db, tenant_id: i64, f: &ListFilter) -> Result<(Vec<Recording>, i64)> {
    let mut conds = vec!["r.tenant_id = $1".to_string(), "r.deleted_at IS NULL".to_string()];
    let mut texts: Vec<String> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    // Text binds first ($2, $3), then integers: the placeholders are numbered as they are added.
    for (col, op, v) in [("r.local_date", ">=", &f.date_from), ("r.local_date", "<=", &f.date_to)] {
        if let Some(v) = v {
            texts.push(v.clone());
            conds.push(format!("{col} {op} ${}", 1 + texts.len()));
        }
    }
    for (col, v) in [("c.id", f.call_record_id), ("c.agent_user_id", f.agent_user_id), ("c.agent_user_id", f.own_agent)]
    {
        if let Some(v) = v {
            ints.push(v);
            conds.push(format!("{col} = ${}", 1 + texts.len() + ints.len()));
        }
    }
    let where_ = conds.join(" AND ");
    let from = "FROM recordings r LEFT JOIN call_records c ON c.tenant_id = r.tenant_id AND c.dialer_call_id = r.dialer_call_id";
    let count_sql = format!("SELECT COUNT(*) AS n {from} WHERE {where_}");
    let page_sql = format!(
        "{SELECT} WHERE {where_} ORDER BY r.started_at DESC, r.id DESC LIMIT {} OFFSET {}",
        f.limit.clamp(1, 500),
        f.offset.max(0)
    );
    let total: i64 = bind_all(&count_sql, tenant_id, &texts, &ints).fetch_one(&db.pool).await?.try_get("n")?;
    let rows = bind_all(&page_sql, tenant_id, &texts, &ints).fetch_all(&db.pool).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok((items, total))
}

fn bind_all<'q>(
    sql: &'q str,
    tenant_id: i64,
    texts: &[String],
    ints: &[i64],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql).bind(tenant_id);
    for t in texts {
        q = q.bind(t.clone());
    }
    for i in ints {
        q = q.bind(*i);
    }
    q
}

/// The tenant's live recordings of one local date, oldest first (the day's zip).
pub async fn day(db: &Db, tenant_id: i64, local_date: &str, own_agent: Option<i64>) -> Result<Vec<Recording>> {
    let mut sql = format!("{SELECT} WHERE r.tenant_id = $1 AND r.local_date = $2 AND r.deleted_at IS NULL");
    if own_agent.is_some() {
        sql.push_str(" AND c.agent_user_id = $3");
    }
    sql.push_str(" ORDER BY r.started_at, r.id");
    let mut q = sqlx::query(&sql).bind(tenant_id).bind(local_date.to_string());
    if let Some(a) = own_agent {
        q = q.bind(a);
    }
    q.fetch_all(&db.pool).await?.iter().map(from_row).collect()
}

/// What a recording still waiting for the Opus pool counts against the quota, per millisecond
/// of audio: its size once encoded (32 kbit/s), not the WAV's 16 bytes per ms, so that a queue of
/// fresh WAVs does not push older recordings out.
pub const PENDING_BYTES_PER_MS: i64 = 4;

/// The quota's measure of a row (SQL over `recordings`, no alias).
const ACCOUNTED: &str = "CASE WHEN encoded_at IS NULL AND encode_attempts < 3 THEN duration_ms * 4 ELSE bytes END";

/// A tenant's recording storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Bytes of the live recordings' files.
    pub bytes: i64,
    /// What the quota counts: `bytes`, but recordings waiting for the Opus pool at their encoded
    /// size ([`PENDING_BYTES_PER_MS`]).
    pub accounted_bytes: i64,
    pub recordings: i64,
    /// `tenants.recording_quota_bytes`.
    pub quota_bytes: i64,
    /// Live recordings still in WAV (not yet encoded).
    pub pending_encoding: i64,
    pub oldest_started_at: Option<i64>,
}

pub async fn usage(db: &Db, tenant_id: i64) -> Result<Usage> {
    let r = sqlx::query(&format!(
        "SELECT CAST(COALESCE(SUM(r.bytes), 0) AS BIGINT) AS bytes, CAST(COALESCE(SUM({ACCOUNTED}), 0) AS BIGINT) AS accounted,
            COUNT(r.id) AS n, MIN(r.started_at) AS oldest,
            CAST(COALESCE(SUM(CASE WHEN r.encoded_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending,
            (SELECT recording_quota_bytes FROM tenants WHERE id = $1) AS quota
         FROM recordings r WHERE r.tenant_id = $1 AND r.deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .fetch_one(&db.pool)
    .await?;
    let quota: Option<i64> = r.try_get("quota")?;
    Ok(Usage {
        bytes: r.try_get("bytes")?,
        accounted_bytes: r.try_get("accounted")?,
        recordings: r.try_get("n")?,
        quota_bytes: quota.ok_or(StoreError::NotFound)?,
        pending_encoding: r.try_get("pending")?,
        oldest_started_at: r.try_get("oldest")?,
    })
}

/// Encoding attempts before a recording is left as WAV (still listed and served).
pub const MAX_ENCODE_ATTEMPTS: i64 = 3;

/// Takes up to `limit` recordings not yet encoded for the encoder named `encoder`, oldest closed
/// first, across tenants (the pool is a system role), once their call has ended (a call bridged to a
/// second agent goes on in the same file). A claim is a lease: one older than
/// `lease_ms` (its encoder died) is taken again, so a crash mid-encode only delays the recording.
pub async fn claim_for_encoding(
    db: &Db,
    encoder: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Recording>> {
    let stale = now_ms - lease_ms;
    let sql = format!(
        "{SELECT} WHERE r.encoded_at IS NULL AND r.deleted_at IS NULL AND r.encode_attempts < $1
           AND (r.encode_claimed_at IS NULL OR r.encode_claimed_at < $2)
           AND NOT EXISTS (SELECT 1 FROM call_records c WHERE c.id = r.call_record_id AND c.ended_at IS NULL)
         ORDER BY r.closed_at, r.id LIMIT {}",
        limit.clamp(1, 1000)
    );
    let candidates = sqlx::query(&sql).bind(MAX_ENCODE_ATTEMPTS).bind(stale).fetch_all(&db.pool).await?;
    let mut claimed = Vec::new();
    for row in &candidates {
        let rec = from_row(row)?;
        let done = sqlx::query(
            "UPDATE recordings SET encode_claimed_at = $1, encode_claimed_by = $2, encode_attempts = encode_attempts + 1
             WHERE tenant_id = $3 AND id = $4 AND encoded_at IS NULL AND deleted_at IS NULL
               AND (encode_claimed_at IS NULL OR encode_claimed_at < $5)",
        )
        .bind(now_ms)
        .bind(encoder)
        .bind(rec.tenant_id)
        .bind(rec.id)
        .bind(stale)
        .execute(&db.pool)
        .await?;
        if done.rows_affected() == 1 {
            claimed.push(rec);
        }
    }
    Ok(claimed)
}

/// Releases the claims of `encoder` (a restarted encoder takes its own work back at once; the
/// attempt it was on is not counted against the recording).
pub async fn release_claims(db: &Db, encoder: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE recordings SET encode_claimed_at = NULL, encode_claimed_by = NULL,
            encode_attempts = CASE WHEN encode_attempts > 0 THEN encode_attempts - 1 ELSE 0 END
         WHERE encode_claimed_by = $1 AND encoded_at IS NULL",
    )
    .bind(encoder)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// The Opus file at `path` is durable and the WAV is gone: the row now describes the Opus file.
/// Returns `false` if the row was deleted meanwhile (the caller removes the file it wrote).
pub async fn encoded(
    db: &Db,
    tenant_id: i64,
    id: i64,
    path: &str,
    bytes: i64,
    duration_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE recordings SET format = 'opus', path = $1, bytes = $2, duration_ms = $3, encoded_at = $4,
            encode_error = NULL, encode_claimed_at = NULL, encode_claimed_by = NULL
         WHERE tenant_id = $5 AND id = $6 AND deleted_at IS NULL",
    )
    .bind(path)
    .bind(bytes)
    .bind(duration_ms)
    .bind(now_ms)
    .bind(tenant_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE call_records SET recording_path = $1
         WHERE tenant_id = $2 AND dialer_call_id = (SELECT dialer_call_id FROM recordings WHERE id = $3)",
    )
    .bind(path)
    .bind(tenant_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// An encoding failed: the error is kept and the claim released (retried up to
/// [`MAX_ENCODE_ATTEMPTS`]; the WAV stays and is served meanwhile).
pub async fn encode_failed(db: &Db, tenant_id: i64, id: i64, error: &str) -> Result<()> {
    sqlx::query("UPDATE recordings SET encode_error = $1, encode_claimed_at = NULL, encode_claimed_by = NULL WHERE tenant_id = $2 AND id = $3")
        .bind(error.chars().take(1000).collect::<String>())
        .bind(tenant_id)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Neither the WAV nor an Opus file exists any more: the row is marked deleted (`missing`).
pub async fn mark_missing(db: &Db, tenant_id: i64, id: i64, now_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE recordings SET deleted_at = $1, deleted_reason = 'missing', purged_at = $1, encode_claimed_at = NULL
         WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL",
    )
    .bind(now_ms)
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A file to unlink: a deleted recording whose file may still be on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToPurge {
    pub tenant_id: i64,
    pub id: i64,
    pub path: String,
    pub bytes: i64,
}

/// Past the tenant's quota, marks its oldest live recordings deleted (`quota`) until the rest
/// fits, and returns them for the caller to unlink and then confirm with [`purged`].
pub async fn enforce_quota(db: &Db, tenant_id: i64, now_ms: i64) -> Result<Vec<ToPurge>> {
    let u = usage(db, tenant_id).await?;
    let mut excess = u.accounted_bytes - u.quota_bytes.max(0);
    if excess <= 0 {
        return Ok(Vec::new());
    }
    let mut victims = Vec::new();
    // Oldest first, in pages, until enough bytes are freed.
    while excess > 0 {
        let rows = sqlx::query(&format!(
            "SELECT id, path, bytes, {ACCOUNTED} AS accounted FROM recordings WHERE tenant_id = $1 AND deleted_at IS NULL
             ORDER BY started_at, id LIMIT 200"
        ))
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            if excess <= 0 {
                break;
            }
            let v =
                ToPurge { tenant_id, id: row.try_get("id")?, path: row.try_get("path")?, bytes: row.try_get("bytes")? };
            let done = sqlx::query(
                "UPDATE recordings SET deleted_at = $1, deleted_reason = 'quota'
                 WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL",
            )
            .bind(now_ms)
            .bind(tenant_id)
            .bind(v.id)
            .execute(&db.pool)
            .await?;
            if done.rows_affected() == 1 {
                excess -= row.try_get::<i64, _>("accounted")?;
                victims.push(v);
            }
        }
    }
    Ok(victims)
}

/// Deleted recordings whose files are not yet confirmed unlinked (after a crash between
/// [`enforce_quota`] and [`purged`]), across tenants.
pub async fn to_purge(db: &Db, limit: i64) -> Result<Vec<ToPurge>> {
    let rows = sqlx::query(&format!(
        "SELECT tenant_id, id, path, bytes FROM recordings WHERE purged_at IS NULL AND deleted_at IS NOT NULL
         ORDER BY deleted_at, id LIMIT {}",
        limit.clamp(1, 10_000)
    ))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ToPurge {
                tenant_id: r.try_get("tenant_id")?,
                id: r.try_get("id")?,
                path: r.try_get("path")?,
                bytes: r.try_get("bytes")?,
            })
        })
        .collect()
}

/// The file of a deleted recording is unlinked.
pub async fn purged(db: &Db, tenant_id: i64, id: i64, now_ms: i64) -> Result<()> {
    sqlx::query("UPDATE recordings SET purged_at = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(now_ms)
        .bind(tenant_id)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Tenants with live recordings (the pool enforces their quotas at start).
pub async fn tenants_with_recordings(db: &Db) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT DISTINCT tenant_id FROM recordings WHERE deleted_at IS NULL ORDER BY tenant_id")
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("tenant_id")?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_uses_the_tenants_local_date() {
        let tz = tenancy::parse_tz("Asia/Tokyo").unwrap();
        // 2026-11-21T15:30:00Z is 2026-11-22 00:30 in Tokyo.
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-21T15:30:00Z").unwrap().timestamp_millis();
        let p = recording_path(Path::new("/var/lib/kakeru/recordings"), 7, tz, at, 123456);
        assert_eq!(p, Path::new("/var/lib/kakeru/recordings/7/2026-11-22/123456.wav"));
        let utc = recording_path(Path::new("/r"), 7, chrono_tz::UTC, at, 1);
        assert_eq!(utc, Path::new("/r/7/2026-11-21/1.wav"));
    }
}
