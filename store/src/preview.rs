//! Preview mode (プレビュー, SPEC 4): the agent sees the lead, then the customer is dialled.
//!
//! An agent working a preview call job asks for their next lead: it is held for them for
//! [`HOLD_MS`] (no other agent and no paced dial picks it meanwhile) and shown with what the agent
//! needs to decide. The agent then dials it (the dialer places the call for that agent; placing it
//! ends the hold) or skips it (not shown again in this run of the job; no attempt counted).
//! Order: the agent's own due recalls of the campaign first, then what a paced dial would take
//! ([`crate::leads::next_dialable`]: the campaign's due recalls, then open leads, fewest attempts first).

use sqlx::Row;

use crate::leads::{numbered, Candidate, PreviewFilter, NOT_HELD_BY_ANOTHER, NOT_SKIPPED_SINCE};
use crate::{Db, Result};

/// How long a previewed lead stays held for its agent.
pub const HOLD_MS: i64 = 5 * 60_000;

/// A lead as the agent sees it before dialling.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewLead {
    pub lead_id: i64,
    pub list_id: i64,
    pub name: String,
    pub kana: String,
    pub tel: String,
    pub remarks: Option<String>,
    /// The lead's custom fields (a JSON object, as stored).
    pub custom: String,
    pub attempts: i64,
    pub last_result: Option<String>,
    pub last_attempt_at: Option<i64>,
    /// The due recall a dial of this lead answers.
    pub recall: Option<PreviewRecall>,
    pub held_until: i64,
}

/// A due recall, as the previewing agent sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRecall {
    pub id: i64,
    pub due_at: Option<i64>,
    pub note: String,
    /// The agent's own recall (rather than the campaign's).
    pub own: bool,
}

/// The lead `user_id` holds in `job_id`, else the next one, held for them until `now_ms + hold_ms`.
/// The job's filters apply with its run's rule (each lead once per run, from its `started_at`);
/// leads skipped in this run are not shown again. `None`: nothing left to preview.
pub async fn reserve(
    db: &Db,
    tenant_id: i64,
    job_id: i64,
    user_id: i64,
    now_ms: i64,
    hold_ms: i64,
) -> Result<Option<PreviewLead>> {
    let row = sqlx::query(
        "SELECT j.started_at, t.time_zone FROM call_jobs j JOIN tenants t ON t.id = j.tenant_id WHERE j.id = $1 AND j.tenant_id = $2",
    )
    .bind(job_id)
    .bind(tenant_id)
    .fetch_one(&db.pool)
    .await?;
    let run_started = row.try_get::<Option<i64>, _>("started_at")?.unwrap_or(0);
    let mut f = crate::leads::job_filter(db, tenant_id, job_id).await?;
    f.not_attempted_since = Some(run_started);
    f.period_day = Some(crate::tenancy::local_day(&row.try_get::<String, _>("time_zone")?, now_ms));
    f.preview = Some(PreviewFilter { user_id, skipped_since: run_started });
    // Already holding one: the same lead again (a reload of the agent's screen).
    let held = sqlx::query(
        "SELECT l.id FROM leads l WHERE l.tenant_id = $1 AND l.preview_user_id = $2 AND l.preview_until > $3
           AND l.state = 'open'
           AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $4 AND tenant_id = $1)
         ORDER BY l.preview_until DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(now_ms)
    .bind(job_id)
    .fetch_optional(&db.pool)
    .await?;
    let mut candidates: Vec<i64> = Vec::new();
    if let Some(r) = held {
        candidates.push(r.try_get("id")?);
    }
    if candidates.is_empty() {
        let sql = format!(
            "SELECT l.id FROM recalls r JOIN leads l ON l.id = r.lead_id
             WHERE r.tenant_id = $1 AND r.campaign_id = $2 AND r.status = 'open' AND r.agent_user_id = $3
               AND r.due_at <= $4 AND l.state = 'open'
               AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $5 AND tenant_id = $1){}{}
             ORDER BY r.due_at, r.id LIMIT 8",
            numbered(NOT_HELD_BY_ANOTHER, &[4, 3]),
            numbered(NOT_SKIPPED_SINCE, &[6])
        );
        let own = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(f.campaign_id)
            .bind(user_id)
            .bind(now_ms)
            .bind(job_id)
            .bind(run_started)
            .fetch_all(&db.pool)
            .await?;
        for r in own {
            candidates.push(r.try_get("id")?);
        }
        for c in crate::leads::next_dialable(db, tenant_id, job_id, &f, now_ms, 8).await? {
            candidates.push(c.lead_id);
        }
    }
    for lead in candidates {
        // Taken only if nobody else holds it now: two agents asking at once get two leads.
        let mut tx = db.begin_write().await?;
        let n = sqlx::query(
            "UPDATE leads SET preview_user_id = $1, preview_until = $2
             WHERE id = $3 AND tenant_id = $4 AND state = 'open'
               AND (preview_until IS NULL OR preview_until <= $5 OR preview_user_id = $1)",
        )
        .bind(user_id)
        .bind(now_ms + hold_ms)
        .bind(lead)
        .bind(tenant_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 1 {
            return lead_view(db, tenant_id, lead, user_id, now_ms).await;
        }
    }
    Ok(None)
}

async fn lead_view(db: &Db, tenant_id: i64, lead: i64, user_id: i64, now_ms: i64) -> Result<Option<PreviewLead>> {
    let Some(r) = sqlx::query(
        "SELECT id, list_id, name, kana, tel, remarks, custom, attempts, last_result, last_attempt_at, preview_until
         FROM leads WHERE id = $1 AND tenant_id = $2",
    )
    .bind(lead)
    .bind(tenant_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let recall = due_recall(db, tenant_id, lead, user_id, now_ms).await?;
    Ok(Some(PreviewLead {
        lead_id: r.try_get("id")?,
        list_id: r.try_get("list_id")?,
        name: r.try_get("name")?,
        kana: r.try_get("kana")?,
        tel: r.try_get("tel")?,
        remarks: r.try_get("remarks")?,
        custom: r.try_get("custom")?,
        attempts: r.try_get("attempts")?,
        last_result: r.try_get("last_result")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        recall,
        held_until: r.try_get::<Option<i64>, _>("preview_until")?.unwrap_or(now_ms),
    }))
}

/// The open recall of a lead that a dial by `user_id` answers: their own (due or not: "dial now"
/// from their recall list), else the campaign's once it is due.
async fn due_recall(db: &Db, tenant_id: i64, lead: i64, user_id: i64, now_ms: i64) -> Result<Option<PreviewRecall>> {
    let r = sqlx::query(
        "SELECT id, due_at, note, agent_user_id FROM recalls
         WHERE tenant_id = $1 AND lead_id = $2 AND status = 'open'
           AND (agent_user_id = $4 OR (agent_user_id IS NULL AND due_at <= $3))
         ORDER BY CASE WHEN agent_user_id IS NULL THEN 1 ELSE 0 END, due_at, id LIMIT 1",
    )
    .bind(tenant_id)
    .bind(lead)
    .bind(now_ms)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    match r {
        Some(r) => Ok(Some(PreviewRecall {
            id: r.try_get("id")?,
            due_at: r.try_get("due_at")?,
            note: r.try_get("note")?,
            own: r.try_get::<Option<i64>, _>("agent_user_id")?.is_some(),
        })),
        None => Ok(None),
    }
}

/// Whether `user_id` holds `lead` in `job_id` at `now_ms` (what the API checks before a dial).
pub async fn holds(db: &Db, tenant_id: i64, job_id: i64, user_id: i64, lead: i64, now_ms: i64) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM leads l WHERE l.id = $1 AND l.tenant_id = $2 AND l.preview_user_id = $3
           AND l.preview_until > $4 AND l.state = 'open'
           AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $5 AND tenant_id = $2)",
    )
    .bind(lead)
    .bind(tenant_id)
    .bind(user_id)
    .bind(now_ms)
    .bind(job_id)
    .fetch_optional(&db.pool)
    .await?
    .is_some())
}

/// Skips the lead `user_id` holds in `job_id`: the hold ends and the lead is not shown again in
/// this run of the job. `false`: the user does not hold it there.
pub async fn skip(db: &Db, tenant_id: i64, job_id: i64, user_id: i64, lead: i64, now_ms: i64) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE leads SET preview_user_id = NULL, preview_until = NULL, preview_skipped_at = $1
         WHERE id = $2 AND tenant_id = $3 AND preview_user_id = $4 AND preview_until > $1 AND state = 'open'
           AND list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $5 AND tenant_id = $3)",
    )
    .bind(now_ms)
    .bind(lead)
    .bind(tenant_id)
    .bind(user_id)
    .bind(job_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// The dialer's check of a preview dial: the lead as a dial candidate when it is still dialable by
/// this job (open, in the job's lists, held by `user_id`, not attempted in this run), with the
/// recall the dial answers. The once-per-run rule spares a lead whose recall the dial answers and
/// the leads of the modes where the agent picks the lead itself (standard, dial: a redial is the
/// agent's choice).
pub async fn candidate(
    db: &Db,
    tenant_id: i64,
    job_id: i64,
    user_id: i64,
    lead: i64,
    run_started: Option<i64>,
    now_ms: i64,
) -> Result<Option<Candidate>> {
    let sql = format!(
        "SELECT l.id, {} AS tel, l.last_attempt_at, c.mode FROM leads l
         JOIN call_jobs j ON j.id = $4 AND j.tenant_id = $2 JOIN campaigns c ON c.id = j.campaign_id AND c.tenant_id = $2
         WHERE l.id = $1 AND l.tenant_id = $2 AND l.state = 'open' AND l.preview_user_id = $3
           AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $4 AND tenant_id = $2)",
        crate::leads::DIAL_TEL
    );
    let r = sqlx::query(&sql).bind(lead).bind(tenant_id).bind(user_id).bind(job_id).fetch_optional(&db.pool).await?;
    let Some(r) = r else { return Ok(None) };
    let recall = due_recall(db, tenant_id, lead, user_id, now_ms).await?;
    let last: Option<i64> = r.try_get("last_attempt_at")?;
    let picks = crate::desktop::Mode::parse(&r.try_get::<String, _>("mode")?).is_some_and(|m| m.agent_picks());
    if let (Some(run), Some(last), None, false) = (run_started, last, &recall, picks) {
        if last >= run && !callback_dial(db, tenant_id, lead, user_id, now_ms).await? {
            return Ok(None); // each lead once per run of the job (a due recall aside)
        }
    }
    Ok(Some(Candidate { lead_id: r.try_get("id")?, tel: r.try_get("tel")?, recall_id: recall.map(|r| r.id) }))
}

/// Whether the agent has just dialled the lead for one of its open callbacks (折り返し呼): a callback
/// is the agent's own call back, spared the once-per-run rule like a due recall.
async fn callback_dial(db: &Db, tenant_id: i64, lead: i64, user_id: i64, now_ms: i64) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM callbacks WHERE tenant_id = $1 AND dialled_lead_id = $2 AND dialled_by = $3
           AND assignee_user_id = $3 AND status = 'open' AND dialled_at >= $4",
    )
    .bind(tenant_id)
    .bind(lead)
    .bind(user_id)
    .bind(now_ms - HOLD_MS)
    .fetch_optional(&db.pool)
    .await?
    .is_some())
}

/// A due recall assigned to an agent, held for that agent's dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedRecall {
    pub agent: i64,
    pub job_id: i64,
    pub lead_id: i64,
}

/// Agent-owned recalls (再コール assigned to an agent) in progressive and predictive jobs: for each of
/// `agents` (ready in the jobs' campaign), its earliest due open recall whose lead is open in one of
/// `job_ids`' lists, held for it for [`HOLD_MS`] (so nobody else dials it meanwhile) unless another
/// agent holds it. At most one per agent; the dial itself then goes through the agent's preview
/// dial, so only that agent gets it.
pub async fn owned_recalls_due(
    db: &Db,
    tenant_id: i64,
    job_ids: &[i64],
    agents: &[i64],
    now_ms: i64,
) -> Result<Vec<OwnedRecall>> {
    let mut out = Vec::new();
    for &agent in agents {
        for &job_id in job_ids {
            let r = sqlx::query(
                "SELECT r.lead_id FROM recalls r JOIN leads l ON l.id = r.lead_id
                 WHERE r.tenant_id = $1 AND r.agent_user_id = $2 AND r.status = 'open' AND r.due_at <= $3
                   AND l.state = 'open' AND (l.preview_user_id IS NULL OR l.preview_user_id = $2 OR l.preview_until <= $3)
                   AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $4 AND tenant_id = $1)
                 ORDER BY r.due_at, r.id LIMIT 1",
            )
            .bind(tenant_id)
            .bind(agent)
            .bind(now_ms)
            .bind(job_id)
            .fetch_optional(&db.pool)
            .await?;
            let Some(r) = r else { continue };
            let lead: i64 = r.try_get("lead_id")?;
            let mut tx = db.begin_write().await?;
            let held = sqlx::query(
                "UPDATE leads SET preview_user_id = $1, preview_until = $2 WHERE id = $3 AND tenant_id = $4
                   AND (preview_user_id IS NULL OR preview_user_id = $1 OR preview_until <= $5)",
            )
            .bind(agent)
            .bind(now_ms + HOLD_MS)
            .bind(lead)
            .bind(tenant_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            if held.rows_affected() == 1 {
                out.push(OwnedRecall { agent, job_id, lead_id: lead });
                break;
            }
        }
    }
    Ok(out)
}
