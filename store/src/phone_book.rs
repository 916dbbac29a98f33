//! The tenant's phone book (共通電話帳): names for the numbers the floor calls and is called from.

use sqlx::Row;

use crate::{Db, Result};

/// A row of an uploaded phone book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub number: String,
    pub name: String,
    pub remarks: Option<String>,
}

/// What an upload did: entries added and entries whose number was already in the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upserted {
    pub added: i64,
    pub updated: i64,
}

/// Adds the entries, or updates the name and remarks of a number already in the book, in one
/// writing transaction (the file is taken whole or not at all).
pub async fn upsert(db: &Db, tenant_id: i64, entries: &[Entry], now_ms: i64) -> Result<Upserted> {
    let mut done = Upserted { added: 0, updated: 0 };
    let mut tx = db.begin_write().await?;
    for e in entries {
        // The UPDATE and the INSERT bind the same values, $1 to $5.
        let write = |sql: &'static str| {
            sqlx::query(sql).bind(tenant_id).bind(&e.number).bind(&e.name).bind(e.remarks.as_deref()).bind(now_ms)
        };
        let n = write(
            "UPDATE phone_book SET name = $3, remarks = $4, updated_at = $5 WHERE tenant_id = $1 AND number = $2",
        )
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() > 0 {
            done.updated += 1;
            continue;
        }
        write("INSERT INTO phone_book (tenant_id, number, name, remarks, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
            .execute(&mut *tx)
            .await?;
        done.added += 1;
    }
    tx.commit().await?;
    Ok(done)
}

/// The phone book's name for `number` in the tenant, if any.
pub async fn name_of(db: &Db, tenant_id: i64, number: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT name FROM phone_book WHERE tenant_id = $1 AND number = $2")
        .bind(tenant_id)
        .bind(number)
        .fetch_optional(&db.pool)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("name")?),
        None => None,
    })
}
