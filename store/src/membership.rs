//! The member agents of a dialing group (発信グループ) or of a campaign.

use sqlx::Row;

use crate::{Db, Result};

/// Whose members: a dialing group's or a campaign's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    DialingGroup,
    Campaign,
}

impl Members {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            Members::DialingGroup => ("dialing_group_agents", "group_id"),
            Members::Campaign => ("campaign_agents", "campaign_id"),
        }
    }
}

/// The member agents' user ids, ascending.
pub async fn members(db: &Db, tenant_id: i64, of: Members, id: i64) -> Result<Vec<i64>> {
    let (table, col) = of.table_and_column();
    let rows =
        sqlx::query(&format!("SELECT user_id FROM {table} WHERE {col} = $1 AND tenant_id = $2 ORDER BY user_id"))
            .bind(id)
            .bind(tenant_id)
            .fetch_all(&db.pool)
            .await?;
    Ok(rows.iter().map(|r| r.try_get::<i64, _>("user_id")).collect::<Result<Vec<_>, _>>()?)
}

/// Replaces the member agents, in one writing transaction; the caller checked the users are the
/// tenant's.
pub async fn replace(db: &Db, tenant_id: i64, of: Members, id: i64, user_ids: &[i64]) -> Result<()> {
    let (table, col) = of.table_and_column();
    let mut tx = db.begin_write().await?;
    sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    for u in user_ids {
        sqlx::query(&format!("INSERT INTO {table} (tenant_id, {col}, user_id) VALUES ($1, $2, $3)"))
            .bind(tenant_id)
            .bind(id)
            .bind(*u)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
