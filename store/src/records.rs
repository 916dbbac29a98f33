//! Wrap-up records (応対記録): saving one sets the lead's result and next action, and creates the
//! recall it asks for, all in one transaction.

use sqlx::Row;

use crate::{Db, Result, StoreError};

/// What the agent (or a supervisor) saves.
#[derive(Debug, Clone)]
pub struct WrapupSave {
    /// `self` (本人) or `other` (その他).
    pub interlocutor: Option<String>,
    /// A system result or a campaign result number, already checked by the caller.
    pub result: String,
    pub other_tel: Option<String>,
    /// `continue` (stays in auto-dial), `recall` (at `recall_at`) or `complete`.
    pub next_action: String,
    pub recall_at: Option<i64>,
    /// The recall goes to the record's agent (their recall list) rather than to auto-dial.
    pub recall_to_agent: bool,
    pub memo: String,
    /// `continue`, `break`, `away` or `end_job`: applied to the agent by the control service.
    pub state_after: String,
}

/// The unsaved wrap-up record of a dialer call, with the campaign of its call: (record id, campaign).
pub async fn unsaved_record_of_call(
    db: &Db,
    tenant_id: i64,
    dialer_call_id: i64,
) -> Result<Option<(i64, Option<i64>)>> {
    let r = sqlx::query(
        "SELECT w.id, c.campaign_id FROM wrapup_records w LEFT JOIN call_records c ON c.id = w.call_record_id
         WHERE w.tenant_id = $1 AND w.dialer_call_id = $2 AND w.saved = 0",
    )
    .bind(tenant_id)
    .bind(dialer_call_id)
    .fetch_optional(&db.pool)
    .await?;
    match r {
        Some(r) => Ok(Some((r.try_get("id")?, r.try_get("campaign_id")?))),
        None => Ok(None),
    }
}

/// The campaign's result with this number (`番号,テキスト`), as a wrap-up record stores it.
pub async fn result_label(db: &Db, tenant_id: i64, campaign_id: i64, number: i64) -> Result<Option<String>> {
    let r = sqlx::query("SELECT number FROM result_codes WHERE tenant_id = $1 AND campaign_id = $2 AND number = $3")
        .bind(tenant_id)
        .bind(campaign_id)
        .bind(number)
        .fetch_optional(&db.pool)
        .await?;
    Ok(r.map(|_| number.to_string()))
}

/// The lead's open recall: (id, due_at).
pub async fn open_recall_of(db: &Db, tenant_id: i64, lead_id: i64) -> Result<Option<(i64, Option<i64>)>> {
    let r = sqlx::query(
        "SELECT id, due_at FROM recalls WHERE tenant_id = $1 AND lead_id = $2 AND status = 'open' ORDER BY id DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(lead_id)
    .fetch_optional(&db.pool)
    .await?;
    match r {
        Some(r) => Ok(Some((r.try_get("id")?, r.try_get("due_at")?))),
        None => Ok(None),
    }
}

/// The lead and campaign a record belongs to, for validation.
pub struct RecordContext {
    pub lead_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub agent_user_id: Option<i64>,
}

pub async fn record_context(db: &Db, tenant_id: i64, id: i64) -> Result<RecordContext> {
    let r = sqlx::query(
        "SELECT w.lead_id, w.agent_user_id, b.campaign_id FROM wrapup_records w
         LEFT JOIN leads l ON l.id = w.lead_id LEFT JOIN batches b ON b.id = l.batch_id
         WHERE w.id = $1 AND w.tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_one(&db.pool)
    .await?;
    Ok(RecordContext {
        lead_id: r.try_get("lead_id")?,
        campaign_id: r.try_get("campaign_id")?,
        agent_user_id: r.try_get("agent_user_id")?,
    })
}

/// Saves a record: the record itself, its call's result, the lead's result and state, and the
/// recall (replacing the lead's open ones) when the next action is a recall.
pub async fn save_wrapup(db: &Db, tenant_id: i64, id: i64, s: &WrapupSave, saved_by: i64, now_ms: i64) -> Result<()> {
    let ctx = record_context(db, tenant_id, id).await?;
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE wrapup_records SET interlocutor = $1, result = $2, other_tel = $3, next_action = $4, recall_at = $5,
            memo = $6, state_after = $7, saved = 1, saved_at = $8, saved_by = $9 WHERE id = $10 AND tenant_id = $11",
    )
    .bind(&s.interlocutor)
    .bind(&s.result)
    .bind(&s.other_tel)
    .bind(&s.next_action)
    .bind(s.recall_at)
    .bind(&s.memo)
    .bind(&s.state_after)
    .bind(now_ms)
    .bind(saved_by)
    .bind(id)
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "UPDATE call_records SET result = $1 WHERE tenant_id = $2 AND id = (SELECT call_record_id FROM wrapup_records WHERE id = $3)",
    )
    .bind(&s.result)
    .bind(tenant_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if let Some(lead) = ctx.lead_id {
        let state = if s.next_action == "complete" { "done" } else { "open" };
        sqlx::query("UPDATE leads SET last_result = $1, state = $2 WHERE id = $3 AND tenant_id = $4")
            .bind(&s.result)
            .bind(state)
            .bind(lead)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        // A new next action replaces whatever recall the lead had open.
        sqlx::query(
            "UPDATE recalls SET status = 'cancelled' WHERE lead_id = $1 AND tenant_id = $2 AND status = 'open'",
        )
        .bind(lead)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        if let (Some(campaign), "recall") = (ctx.campaign_id, s.next_action.as_str()) {
            let agent = if s.recall_to_agent { ctx.agent_user_id } else { None };
            sqlx::query(
                "INSERT INTO recalls (tenant_id, lead_id, campaign_id, due_at, agent_user_id, status, note, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8)",
            )
            .bind(tenant_id)
            .bind(lead)
            .bind(campaign)
            .bind(s.recall_at)
            .bind(agent)
            .bind(format!("wrapup:{id}"))
            .bind(saved_by)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
