//! A lead's history (対応履歴): the notes the floor writes on a lead, oldest first.

use sqlx::Row;

use crate::{Db, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: i64,
    pub user_id: Option<i64>,
    pub text: String,
    pub created_at: i64,
}

/// The lead's notes, oldest first.
pub async fn notes(db: &Db, tenant_id: i64, lead_id: i64) -> Result<Vec<Note>> {
    let rows = sqlx::query(
        "SELECT id, user_id, text, created_at FROM lead_history WHERE lead_id = $1 AND tenant_id = $2 ORDER BY id",
    )
    .bind(lead_id)
    .bind(tenant_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Note {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                text: r.try_get("text")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Adds a note by `user_id` to the lead; its id.
pub async fn add(db: &Db, tenant_id: i64, lead_id: i64, user_id: i64, text: &str, now_ms: i64) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO lead_history (tenant_id, lead_id, user_id, text, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(tenant_id)
    .bind(lead_id)
    .bind(user_id)
    .bind(text)
    .bind(now_ms)
    .fetch_one(&db.pool)
    .await?
    .try_get("id")?)
}
