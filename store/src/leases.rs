//! Leases: which process holds a tenant's resource (a campaign on a dialer host, a tenant's agent
//! state on a control service), with a heartbeat and a fencing token.
//!
//! - A lease is held until `expires_at` (the holder's clock plus the time to live); its holder
//!   renews it on each heartbeat. An expired lease may be taken by another member: the take adds
//!   one to `token`, so every tenure has a token of its own.
//! - A write guarded by a lease names the holder and the token it was made under and is applied
//!   only while both still match, in the same transaction that first locks the lease row
//!   ([`lock_held`]): a take waits for that transaction, and a write after a take changes nothing.
//!   Clocks only decide *when* a lease may be taken, never whether a write is applied.
//! - Members: the processes alive of a kind, each renewing its own row; placement spreads leases
//!   over them.
//!
//! Every statement is one atomic step on both backends (PostgreSQL's row locks, SQLite's one
//! writer).

use sqlx::Row;

use crate::{Db, Result};

/// What a lease is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A campaign on a dialer host (`resource` = the campaign).
    Dialer,
    /// A tenant's agents on a control service (`resource` = 0).
    Control,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dialer => "dialer",
            Kind::Control => "control",
        }
    }
}

/// A statement on a lease held by a holder with a token ($1 to $5, bound by [`held_by`]).
macro_rules! held {
    ($head:literal) => {
        concat!($head, " WHERE kind = $1 AND tenant_id = $2 AND resource_id = $3 AND holder = $4 AND token = $5")
    };
}

/// One lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub tenant_id: i64,
    pub resource_id: i64,
    pub holder: String,
    pub token: i64,
    pub expires_at: i64,
}

/// Takes the lease for `holder` if nobody holds it or its holder let it expire (`expires_at <=
/// now_ms`): a new token, held until `now_ms + ttl_ms`. Returns the token when `holder` now holds
/// it, `None` when another member does.
pub async fn acquire(
    db: &Db,
    kind: Kind,
    tenant_id: i64,
    resource_id: i64,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<i64>> {
    let inserted = sqlx::query(
        "INSERT INTO leases (kind, tenant_id, resource_id, holder, token, expires_at) VALUES ($1, $2, $3, $4, 1, $5)
         ON CONFLICT (kind, tenant_id, resource_id) DO NOTHING RETURNING token",
    )
    .bind(kind.as_str())
    .bind(tenant_id)
    .bind(resource_id)
    .bind(holder)
    .bind(now_ms + ttl_ms)
    .fetch_optional(&db.pool)
    .await?;
    if let Some(r) = inserted {
        return Ok(Some(r.try_get("token")?));
    }
    let taken = sqlx::query(
        "UPDATE leases SET holder = $4, token = token + 1, expires_at = $5
         WHERE kind = $1 AND tenant_id = $2 AND resource_id = $3 AND expires_at <= $6 RETURNING token",
    )
    .bind(kind.as_str())
    .bind(tenant_id)
    .bind(resource_id)
    .bind(holder)
    .bind(now_ms + ttl_ms)
    .bind(now_ms)
    .fetch_optional(&db.pool)
    .await?;
    match taken {
        Some(r) => Ok(Some(r.try_get("token")?)),
        None => Ok(None),
    }
}

/// Renews a lease `holder` holds with `token` (expired or not: an unchanged token means nobody took
/// it meanwhile). `false`: the lease was taken (or released); the holder must stop at once.
#[allow(clippy::too_many_arguments)]
pub async fn renew(
    db: &Db,
    kind: Kind,
    tenant_id: i64,
    resource_id: i64,
    holder: &str,
    token: i64,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool> {
    let r = held_by(held!("UPDATE leases SET expires_at = $6"), kind, tenant_id, resource_id, holder, token)
        .bind(now_ms + ttl_ms)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// `sql` (from `held!`) with the lease's key, holder and token bound.
fn held_by<'q>(
    sql: &'q str,
    kind: Kind,
    tenant_id: i64,
    resource_id: i64,
    holder: &'q str,
    token: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql).bind(kind.as_str()).bind(tenant_id).bind(resource_id).bind(holder).bind(token)
}

/// Gives a lease up (it expires now; the token stays, so the next holder's is greater).
pub async fn release(db: &Db, kind: Kind, tenant_id: i64, resource_id: i64, holder: &str, token: i64) -> Result<()> {
    held_by(held!("UPDATE leases SET expires_at = 0"), kind, tenant_id, resource_id, holder, token)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Every lease of a kind (all tenants), as stored.
pub async fn list(db: &Db, kind: Kind) -> Result<Vec<Lease>> {
    let rows = sqlx::query(
        "SELECT tenant_id, resource_id, holder, token, expires_at FROM leases WHERE kind = $1
         ORDER BY tenant_id, resource_id",
    )
    .bind(kind.as_str())
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Lease {
                tenant_id: r.try_get("tenant_id")?,
                resource_id: r.try_get("resource_id")?,
                holder: r.try_get("holder")?,
                token: r.try_get("token")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .collect()
}

/// Inside a writing transaction: locks the lease if `holder` still holds it with `token` (until
/// the transaction ends, a take waits) and says whether it does. A guarded write goes on only when
/// this is `true`.
pub async fn lock_held(
    conn: &mut sqlx::AnyConnection,
    kind: Kind,
    tenant_id: i64,
    resource_id: i64,
    holder: &str,
    token: i64,
) -> Result<bool> {
    let r = held_by(held!("UPDATE leases SET token = token"), kind, tenant_id, resource_id, holder, token)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Renews `member`'s presence of a kind until `now_ms + ttl_ms` (and forgets members gone for an
/// hour).
pub async fn heartbeat(db: &Db, kind: Kind, member: &str, now_ms: i64, ttl_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO lease_members (kind, member, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (kind, member) DO UPDATE SET expires_at = excluded.expires_at",
    )
    .bind(kind.as_str())
    .bind(member)
    .bind(now_ms + ttl_ms)
    .execute(&db.pool)
    .await?;
    sqlx::query("DELETE FROM lease_members WHERE kind = $1 AND expires_at < $2")
        .bind(kind.as_str())
        .bind(now_ms - 3_600_000)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// A member leaves (a clean stop): the others need not wait for its row to expire.
pub async fn leave(db: &Db, kind: Kind, member: &str) -> Result<()> {
    sqlx::query("DELETE FROM lease_members WHERE kind = $1 AND member = $2")
        .bind(kind.as_str())
        .bind(member)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The members of a kind alive at `now_ms`, sorted.
pub async fn members(db: &Db, kind: Kind, now_ms: i64) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT member FROM lease_members WHERE kind = $1 AND expires_at > $2 ORDER BY member")
        .bind(kind.as_str())
        .bind(now_ms)
        .fetch_all(&db.pool)
        .await?;
    rows.into_iter().map(|r| Ok(r.try_get("member")?)).collect()
}
