//! The floor's agents as the API reads them: the call job an agent may start a session on, their
//! row of the control service, pause reasons (離席理由), the agent list.

use sqlx::Row;

use crate::{Db, Result};

/// The agent's committed state (`control::agent::AgentView` as JSON), `None` if they never
/// logged in.
pub async fn view_of(db: &Db, tenant_id: i64, user_id: i64) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT view FROM control_agents WHERE tenant_id = $1 AND agent_user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?)
}

/// Whether the pause reason is the tenant's.
pub async fn pause_reason_exists(db: &Db, tenant_id: i64, id: i64) -> Result<bool> {
    crate::found(db, "SELECT id FROM pause_reasons WHERE id = $1 AND tenant_id = $2", id, tenant_id).await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseReason {
    pub id: i64,
    pub name: String,
}

/// The tenant's pause reasons in their order (at most 1,000).
pub async fn pause_reasons(db: &Db, tenant_id: i64) -> Result<Vec<PauseReason>> {
    let rows = sqlx::query("SELECT id, name FROM pause_reasons WHERE tenant_id = $1 ORDER BY position, id LIMIT 1000")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(PauseReason { id: r.try_get("id")?, name: r.try_get("name")? })).collect()
}

/// A call job as an agent's session on it needs it: its status, campaign and group, and the
/// campaign's and group's settings for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionJob {
    pub status: String,
    pub campaign_id: i64,
    pub dialing_group_id: i64,
    pub acw_enabled: bool,
    pub acw_seconds: i64,
    pub agent_wait_timeout_s: i64,
    pub ring_timeout_s: i64,
    /// The group's pause reason for an agent who lets an offer ring out, if it is the tenant's.
    pub no_answer_reason: Option<i64>,
    pub no_answer_release_s: Option<i64>,
}

pub async fn session_job(db: &Db, tenant_id: i64, job_id: i64) -> Result<Option<SessionJob>> {
    let r = sqlx::query(
        "SELECT j.status, j.campaign_id, j.dialing_group_id, c.acw_enabled, c.acw_seconds, c.agent_wait_timeout_s,
                c.ring_timeout_s,
                (SELECT p.id FROM dialing_groups g JOIN pause_reasons p ON p.id = g.no_answer_pause_reason_id AND p.tenant_id = g.tenant_id
                  WHERE g.id = j.dialing_group_id AND g.tenant_id = j.tenant_id) AS no_answer_reason,
                (SELECT g.no_answer_pause_release_s FROM dialing_groups g
                  WHERE g.id = j.dialing_group_id AND g.tenant_id = j.tenant_id) AS no_answer_release_s
         FROM call_jobs j JOIN campaigns c ON c.id = j.campaign_id AND c.tenant_id = j.tenant_id
         WHERE j.id = $1 AND j.tenant_id = $2",
    )
    .bind(job_id)
    .bind(tenant_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(SessionJob {
        status: r.try_get("status")?,
        campaign_id: r.try_get("campaign_id")?,
        dialing_group_id: r.try_get("dialing_group_id")?,
        acw_enabled: r.try_get::<i64, _>("acw_enabled")? != 0,
        acw_seconds: r.try_get("acw_seconds")?,
        agent_wait_timeout_s: r.try_get("agent_wait_timeout_s")?,
        ring_timeout_s: r.try_get("ring_timeout_s")?,
        no_answer_reason: r.try_get("no_answer_reason")?,
        no_answer_release_s: r.try_get("no_answer_release_s")?,
    }))
}

/// Whether the user is an agent of the dialing group or of the campaign.
pub async fn works_for(db: &Db, tenant_id: i64, user_id: i64, dialing_group_id: i64, campaign_id: i64) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM dialing_group_agents WHERE group_id = $1 AND user_id = $2 AND tenant_id = $3
         UNION SELECT 1 AS one FROM campaign_agents WHERE campaign_id = $4 AND user_id = $2 AND tenant_id = $3",
    )
    .bind(dialing_group_id)
    .bind(user_id)
    .bind(tenant_id)
    .bind(campaign_id)
    .fetch_optional(&db.pool)
    .await?
    .is_some())
}

/// Whether the user has a phone: a browser phone (ブラウザフォン, no SIP account needed) or a SIP
/// account.
pub async fn has_phone(db: &Db, tenant_id: i64, user_id: i64) -> Result<bool> {
    crate::found(
        db,
        "SELECT 1 AS one FROM users WHERE id = $1 AND tenant_id = $2 AND phone_kind = 'browser'
         UNION SELECT 1 AS one FROM phones WHERE user_id = $1 AND tenant_id = $2",
        user_id,
        tenant_id,
    )
    .await
}

/// The call job an agent works (by the control service's row) and its campaign's dialing mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkedJob {
    pub id: i64,
    pub status: String,
    pub campaign_id: i64,
    /// The campaign's mode (`predictive`, `preview`, `distribute`, ...).
    pub mode: String,
}

pub async fn worked_job(db: &Db, tenant_id: i64, user_id: i64) -> Result<Option<WorkedJob>> {
    let r = sqlx::query(
        "SELECT j.id, j.status, j.campaign_id, c.mode FROM control_agents ca
         JOIN call_jobs j ON j.id = ca.call_job_id AND j.tenant_id = ca.tenant_id
         JOIN campaigns c ON c.id = j.campaign_id AND c.tenant_id = j.tenant_id
         WHERE ca.tenant_id = $1 AND ca.agent_user_id = $2",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(WorkedJob {
        id: r.try_get("id")?,
        status: r.try_get("status")?,
        campaign_id: r.try_get("campaign_id")?,
        mode: r.try_get("mode")?,
    }))
}

/// Whether the dialing group is the tenant's.
pub async fn dialing_group_exists(db: &Db, tenant_id: i64, id: i64) -> Result<bool> {
    crate::found(db, "SELECT id FROM dialing_groups WHERE id = $1 AND tenant_id = $2", id, tenant_id).await
}

/// A member of a dialing group who has a row of the control service, and its state (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub user_id: i64,
    pub view: Option<String>,
}

/// The dialing group's agents who have a row of the control service, by user id.
pub async fn group_views(db: &Db, tenant_id: i64, group_id: i64) -> Result<Vec<MemberView>> {
    let rows = sqlx::query(
        "SELECT a.agent_user_id, a.view FROM control_agents a
           JOIN dialing_group_agents g ON g.user_id = a.agent_user_id AND g.tenant_id = a.tenant_id
         WHERE g.group_id = $1 AND a.tenant_id = $2 ORDER BY a.agent_user_id",
    )
    .bind(group_id)
    .bind(tenant_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| Ok(MemberView { user_id: r.try_get("agent_user_id")?, view: r.try_get("view")? })).collect()
}

/// An agent of the agent list: the user and their row of the control service, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: i64,
    pub login: String,
    pub display_name: String,
    pub role: String,
    pub view: Option<String>,
    pub campaign_id: Option<i64>,
    pub call_job_id: Option<i64>,
    pub dialing_group_id: Option<i64>,
    pub updated_at: Option<i64>,
}

/// The agents of the tenant: OP and SV users, and anyone else who worked a call job; `only` one
/// user's, at most `limit`, by id.
pub async fn list(db: &Db, tenant_id: i64, only: Option<i64>, limit: i64) -> Result<Vec<Agent>> {
    let rows = sqlx::query(
        "SELECT u.id, u.login, u.display_name, u.role, ca.view, ca.campaign_id, ca.call_job_id,
                ca.dialing_group_id, ca.updated_at
         FROM users u LEFT JOIN control_agents ca ON ca.tenant_id = u.tenant_id AND ca.agent_user_id = u.id
         WHERE u.tenant_id = $1 AND (u.role IN ('OP', 'SV') OR ca.id IS NOT NULL) AND ($2 = 0 OR u.id = $2)
         ORDER BY u.id LIMIT $3",
    )
    .bind(tenant_id)
    .bind(only.unwrap_or(0))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Agent {
                id: r.try_get("id")?,
                login: r.try_get("login")?,
                display_name: r.try_get("display_name")?,
                role: r.try_get("role")?,
                view: r.try_get("view")?,
                campaign_id: r.try_get("campaign_id")?,
                call_job_id: r.try_get("call_job_id")?,
                dialing_group_id: r.try_get("dialing_group_id")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}
