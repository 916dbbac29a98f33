//! Call records (通話履歴) as the API's pages look them up: a record of the tenant, the dialer call
//! behind it, the call an agent is talking on.

use sqlx::Row;

use crate::{Db, Result};

/// Whether the call record is the tenant's.
pub async fn exists(db: &Db, tenant_id: i64, id: i64) -> Result<bool> {
    crate::found(db, "SELECT id FROM call_records WHERE id = $1 AND tenant_id = $2", id, tenant_id).await
}

/// The dialer call of a record of the tenant: `None` for no such record, `Some(None)` for a record
/// without a dialer call.
pub async fn dialer_call_of(db: &Db, tenant_id: i64, id: i64) -> Result<Option<Option<i64>>> {
    Ok(sqlx::query_scalar("SELECT dialer_call_id FROM call_records WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(&db.pool)
        .await?)
}

/// The call an agent is talking on with a customer (bridged, not ended), the latest bridged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TalkingCall {
    pub call_record_id: i64,
    pub dialer_call_id: Option<i64>,
}

pub async fn talking_call_of_agent(db: &Db, tenant_id: i64, agent_user_id: i64) -> Result<Option<TalkingCall>> {
    let r = sqlx::query(
        "SELECT id, dialer_call_id FROM call_records
         WHERE tenant_id = $1 AND agent_user_id = $2 AND bridged_at IS NOT NULL AND ended_at IS NULL
         ORDER BY bridged_at DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(agent_user_id)
    .fetch_optional(&db.pool)
    .await?;
    match r {
        Some(r) => {
            Ok(Some(TalkingCall { call_record_id: r.try_get("id")?, dialer_call_id: r.try_get("dialer_call_id")? }))
        }
        None => Ok(None),
    }
}
