//! Tenants and the edges where their time zone applies.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::Row;

use crate::{Db, Result, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub time_zone: String,
    pub history_retention_days: i64,
    pub recording_quota_bytes: i64,
    /// The lifetime of the bearer tokens a login hands out, in minutes (default 720 = 12 h).
    pub session_ttl_minutes: i64,
    /// Japan's national holidays are closed days (休業日) for the tenant's call jobs (default on).
    pub closed_on_national_holidays: bool,
    pub created_at: i64,
}

/// Bounds of a tenant's token lifetime: 5 minutes to 30 days.
pub const SESSION_TTL_MIN_MINUTES: i64 = 5;
pub const SESSION_TTL_MAX_MINUTES: i64 = 30 * 24 * 60;

/// Retention bounds: R >= 91, the seed's shortest (BIZTEL §1.2 example 2: a one-day batch, end = start).
pub const RETENTION_MIN_DAYS: i64 = 91;
pub const RETENTION_MAX_DAYS: i64 = 3650;

/// Whether Japan's national holidays are closed days for the tenant's call jobs.
pub async fn set_national_holidays(db: &Db, tenant_id: i64, closed: bool) -> Result<()> {
    sqlx::query("UPDATE tenants SET closed_on_national_holidays = $1 WHERE id = $2")
        .bind(i64::from(closed))
        .bind(tenant_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn create_tenant(db: &Db, code: &str, name: &str, time_zone: &str, now_ms: i64) -> Result<i64> {
    if parse_tz(time_zone).is_none() {
        return Err(StoreError::Config(format!("unknown time zone {time_zone:?}")));
    }
    let row =
        sqlx::query("INSERT INTO tenants (code, name, time_zone, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(code)
            .bind(name)
            .bind(time_zone)
            .bind(now_ms)
            .fetch_one(&db.pool)
            .await?;
    Ok(row.try_get("id")?)
}

pub async fn get_tenant(db: &Db, id: i64) -> Result<Tenant> {
    let r = sqlx::query(
        "SELECT id, code, name, time_zone, history_retention_days, recording_quota_bytes, session_ttl_minutes,
                closed_on_national_holidays, created_at
         FROM tenants WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await?;
    Ok(Tenant {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        time_zone: r.try_get("time_zone")?,
        history_retention_days: r.try_get("history_retention_days")?,
        recording_quota_bytes: r.try_get("recording_quota_bytes")?,
        session_ttl_minutes: r.try_get("session_ttl_minutes")?,
        closed_on_national_holidays: r.try_get::<i64, _>("closed_on_national_holidays")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

/// Why `day` is closed for the tenant's call jobs (a holiday's name, or the tenant's closed date),
/// or `None` on a working day.
pub async fn closed_day(db: &Db, tenant_id: i64, day: NaiveDate) -> Result<Option<String>> {
    let (national, own) = closing(db, tenant_id, day, day).await?;
    Ok(crate::calendar::is_closed(day, national, &own))
}

/// The tenant's holiday switch and its own closed dates from `from` to `to` (at most a year).
pub async fn closing(db: &Db, tenant_id: i64, from: NaiveDate, to: NaiveDate) -> Result<(bool, Vec<String>)> {
    let national = sqlx::query("SELECT closed_on_national_holidays FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?
        .try_get::<i64, _>("closed_on_national_holidays")?
        != 0;
    let rows = sqlx::query(
        "SELECT day FROM closed_days WHERE tenant_id = $1 AND day >= $2 AND day <= $3 ORDER BY day LIMIT 366",
    )
    .bind(tenant_id)
    .bind(from.to_string())
    .bind(to.to_string())
    .fetch_all(&db.pool)
    .await?;
    Ok((national, rows.iter().map(|r| r.try_get("day")).collect::<std::result::Result<_, _>>()?))
}

pub fn parse_tz(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// The calendar date of an instant in the tenant's zone.
pub fn local_date(tz: Tz, at_ms: i64) -> NaiveDate {
    let utc: DateTime<Utc> = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    utc.with_timezone(&tz).date_naive()
}

/// The tenant's date (`YYYY-MM-DD`) at an instant, by the zone's name (Asia/Tokyo if unknown).
pub fn local_day(time_zone: &str, at_ms: i64) -> String {
    local_date(parse_tz(time_zone).unwrap_or(chrono_tz::Asia::Tokyo), at_ms).to_string()
}

/// The tenant-local time of day (`HH:MM`) at an instant, by the zone's name.
pub fn local_hhmm(time_zone: &str, at_ms: i64) -> String {
    let tz = parse_tz(time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
    let utc: DateTime<Utc> = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    utc.with_timezone(&tz).format("%H:%M").to_string()
}

/// RFC 3339 text of an instant in the tenant's zone (how the API shows times).
pub fn local_rfc3339(tz: Tz, at_ms: i64) -> String {
    let utc: DateTime<Utc> = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    utc.with_timezone(&tz).to_rfc3339()
}

/// The zone's offset from UTC at an instant, in ms (e.g. +32,400,000 for Asia/Tokyo).
pub fn utc_offset_ms(tz: Tz, at_ms: i64) -> i64 {
    use chrono::Offset;
    let utc: DateTime<Utc> = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    i64::from(tz.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc()) * 1000
}

/// Midnight at the start of `date` in the tenant's zone, as Unix ms.
pub fn local_midnight_ms(tz: Tz, date: NaiveDate) -> i64 {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive).earliest().map(|d| d.timestamp_millis()).unwrap_or(0)
}

/// One setting of a tenant an MGR changes (`PATCH /tenant`), already checked by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSetting {
    Name(String),
    TimeZone(String),
    ClosedOnNationalHolidays(bool),
    HistoryRetentionDays(i64),
    RecordingQuotaBytes(i64),
    SessionTtlMinutes(i64),
}

/// Changes one setting of the tenant.
pub async fn set(db: &Db, tenant_id: i64, setting: TenantSetting) -> Result<()> {
    let (sql, q) = match setting {
        TenantSetting::Name(name) => ("UPDATE tenants SET name = $1 WHERE id = $2", Value::Text(name)),
        TenantSetting::TimeZone(tz) => ("UPDATE tenants SET time_zone = $1 WHERE id = $2", Value::Text(tz)),
        TenantSetting::ClosedOnNationalHolidays(on) => return set_national_holidays(db, tenant_id, on).await,
        TenantSetting::HistoryRetentionDays(d) => {
            ("UPDATE tenants SET history_retention_days = $1 WHERE id = $2", Value::Int(d))
        }
        TenantSetting::RecordingQuotaBytes(b) => {
            ("UPDATE tenants SET recording_quota_bytes = $1 WHERE id = $2", Value::Int(b))
        }
        TenantSetting::SessionTtlMinutes(m) => {
            ("UPDATE tenants SET session_ttl_minutes = $1 WHERE id = $2", Value::Int(m))
        }
    };
    let query = sqlx::query(sql);
    let query = match q {
        Value::Text(s) => query.bind(s),
        Value::Int(i) => query.bind(i),
    };
    query.bind(tenant_id).execute(&db.pool).await?;
    Ok(())
}

enum Value {
    Text(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokyo_edges() {
        let tz = parse_tz("Asia/Tokyo").unwrap();
        // 2026-11-21T15:30:00Z is 2026-11-22 00:30 in Tokyo.
        let at = DateTime::parse_from_rfc3339("2026-11-21T15:30:00Z").unwrap().timestamp_millis();
        assert_eq!(local_date(tz, at).to_string(), "2026-11-22");
        assert_eq!(local_rfc3339(tz, at), "2026-11-22T00:30:00+09:00");
        assert_eq!(utc_offset_ms(tz, at), 9 * 3_600_000);
        let midnight = local_midnight_ms(tz, NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
        assert_eq!(midnight, DateTime::parse_from_rfc3339("2026-11-21T15:00:00Z").unwrap().timestamp_millis());
        assert!(parse_tz("Mars/Olympus").is_none());
    }
}
