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

/// The unsaved wrap-up record of a dialer call, inside a writing transaction.
pub async fn unsaved_record_of_call_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: i64,
    dialer_call_id: i64,
) -> Result<Option<i64>> {
    let r = sqlx::query("SELECT id FROM wrapup_records WHERE tenant_id = $1 AND dialer_call_id = $2 AND saved = 0")
        .bind(tenant_id)
        .bind(dialer_call_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match r {
        Some(r) => Some(r.try_get("id")?),
        None => None,
    })
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
    let mut conn = db.pool.acquire().await?;
    record_context_in(&mut conn, tenant_id, id).await
}

async fn record_context_in(conn: &mut sqlx::AnyConnection, tenant_id: i64, id: i64) -> Result<RecordContext> {
    let r = sqlx::query(
        "SELECT w.lead_id, w.agent_user_id, b.campaign_id FROM wrapup_records w
         LEFT JOIN leads l ON l.id = w.lead_id LEFT JOIN batches b ON b.id = l.batch_id
         WHERE w.id = $1 AND w.tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(RecordContext {
        lead_id: r.try_get("lead_id")?,
        campaign_id: r.try_get("campaign_id")?,
        agent_user_id: r.try_get("agent_user_id")?,
    })
}

/// Saves a record: the record itself, the lead's result and state, and the recall (replacing the
/// lead's open ones) when the next action is a recall, in one transaction. The call record's
/// `result` stays the dialer's system result (each column of `call_records` has one writer).
pub async fn save_wrapup(db: &Db, tenant_id: i64, id: i64, s: &WrapupSave, saved_by: i64, now_ms: i64) -> Result<()> {
    let mut tx = db.begin_write().await?;
    save_wrapup_in(&mut tx, tenant_id, id, s, saved_by, now_ms).await?;
    tx.commit().await?;
    Ok(())
}

/// [`save_wrapup`] inside the caller's writing transaction (control saves DTMF-keyed results with
/// the rest of its batch).
pub async fn save_wrapup_in(
    tx: &mut sqlx::AnyConnection,
    tenant_id: i64,
    id: i64,
    s: &WrapupSave,
    saved_by: i64,
    now_ms: i64,
) -> Result<()> {
    let ctx = record_context_in(tx, tenant_id, id).await?;
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
    if let Some(lead) = ctx.lead_id {
        // クレーム (CALLTREE's default status): the lead is stopped (停止) and its number goes on the
        // tenant's do-not-call list, so no job calls the customer again.
        let complaint = s.result == "complaint";
        let state = if complaint {
            "stopped"
        } else if s.next_action == "complete" {
            "done"
        } else {
            "open"
        };
        if complaint {
            let tel: Option<String> = sqlx::query_scalar("SELECT tel FROM leads WHERE id = $1 AND tenant_id = $2")
                .bind(lead)
                .bind(tenant_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(tel) = tel {
                sqlx::query(
                    "INSERT INTO dnc_numbers (tenant_id, number, note, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant_id, number) DO NOTHING",
                )
                .bind(tenant_id)
                .bind(&tel)
                .bind(format!("クレーム (wrap-up record {id})"))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO lead_history (tenant_id, lead_id, user_id, text, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant_id)
            .bind(lead)
            .bind(saved_by)
            .bind("クレーム: 停止, 発信規制")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
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
    Ok(())
}

/// Marks a wrap-up record reported (報告: BIZ reads it) or not; `reported_at` tells the rollup job.
pub async fn set_reported(db: &Db, tenant_id: i64, id: i64, reported: bool, now_ms: i64) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let done =
        sqlx::query("UPDATE wrapup_records SET reported = $1, reported_at = $2 WHERE id = $3 AND tenant_id = $4")
            .bind(i64::from(reported))
            .bind(now_ms)
            .bind(id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    tx.commit().await?;
    Ok(())
}

/// The agent and the dialer call of a wrap-up record; `NotFound` for no such record of the tenant.
pub async fn agent_and_call_of(db: &Db, tenant_id: i64, id: i64) -> Result<(Option<i64>, Option<i64>)> {
    let r = sqlx::query("SELECT agent_user_id, dialer_call_id FROM wrapup_records WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?;
    Ok((r.try_get("agent_user_id")?, r.try_get("dialer_call_id")?))
}

/// A recall (再コール) as the API checks a change of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recall {
    pub agent_user_id: Option<i64>,
    pub lead_id: i64,
    pub due_at: Option<i64>,
    /// `open`, `done`, ...
    pub status: String,
}

/// `NotFound` for no such recall of the tenant.
pub async fn recall(db: &Db, tenant_id: i64, id: i64) -> Result<Recall> {
    let r = sqlx::query("SELECT agent_user_id, lead_id, due_at, status FROM recalls WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?;
    Ok(Recall {
        agent_user_id: r.try_get("agent_user_id")?,
        lead_id: r.try_get("lead_id")?,
        due_at: r.try_get("due_at")?,
        status: r.try_get("status")?,
    })
}
