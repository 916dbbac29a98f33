//! Campaigns (キャンペーン) as the API checks a change of them.

use sqlx::Row;

use crate::{Db, Result};

/// The campaign's business hours (`HH:MM`, start and end); `NotFound` for no such campaign of the
/// tenant.
pub async fn business_hours(db: &Db, tenant_id: i64, id: i64) -> Result<(String, String)> {
    let r = sqlx::query("SELECT business_start, business_end FROM campaigns WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?;
    Ok((r.try_get("business_start")?, r.try_get("business_end")?))
}
