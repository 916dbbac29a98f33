//! The agent desktop (SPEC 5, 12): what an agent's screen reads and the few things it writes.
//!
//! - the call jobs an agent may work ([`jobs_for_agent`]), with the campaign's mode and result codes;
//! - the screen pop: a lead ([`lead_card`]) and every earlier contact with it by any agent
//!   ([`contacts`]), readable by an OP only for the lead it works ([`works_on_lead`]);
//! - a correction of the lead's details by the agent working it, recorded in its history
//!   ([`correct_lead`]);
//! - the agent-driven list modes (ComDesk): the job's leads searched by name, kana or number
//!   ([`search_leads`]), a lead created from a typed number ([`create_lead`]), a lead held for the
//!   agent before the dial ([`hold`], the preview hold: no other agent and no paced dial takes it);
//! - the agent's recall list ([`recalls_of`]) and the colleagues of its dialing groups
//!   ([`colleagues`]).

use sqlx::Row;

use crate::leads::PhoneType;
use crate::{Db, Result, StoreError};

/// A campaign's dialing mode (SPEC 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Preview,
    Progressive,
    Predictive,
    /// ComDesk 標準: the agent searches the job's leads and dials the one it picks.
    Standard,
    /// ComDesk 配布: leads handed out to agents automatically, never two on one lead.
    Distribute,
    /// ComDesk ダイヤル: the agent types a number.
    Dial,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "preview" => Mode::Preview,
            "progressive" => Mode::Progressive,
            "predictive" => Mode::Predictive,
            "standard" => Mode::Standard,
            "distribute" => Mode::Distribute,
            "dial" => Mode::Dial,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Preview => "preview",
            Mode::Progressive => "progressive",
            Mode::Predictive => "predictive",
            Mode::Standard => "standard",
            Mode::Distribute => "distribute",
            Mode::Dial => "dial",
        }
    }

    /// The agent starts each dial (the pacer never launches).
    pub fn agent_driven(self) -> bool {
        !matches!(self, Mode::Progressive | Mode::Predictive)
    }

    /// The agent picks the lead itself, and may call one the job's run called already.
    pub fn agent_picks(self) -> bool {
        matches!(self, Mode::Standard | Mode::Dial)
    }
}

/// A call job as an agent sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeskJob {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub campaign_id: i64,
    pub campaign_name: String,
    pub mode: Mode,
    pub dialing_group_id: i64,
    pub started_at: Option<i64>,
    pub business_start: String,
    pub business_end: String,
    pub acw_seconds: Option<i64>,
    /// 連絡事項: the job's notes for its agents.
    pub notes: String,
}

const JOB_COLUMNS: &str = "j.id, j.name, j.status, j.campaign_id, c.name AS campaign_name, c.mode, j.dialing_group_id,
    j.started_at, c.business_start, c.business_end, c.acw_enabled, c.acw_seconds, j.notes";

fn job_of_row(r: &sqlx::any::AnyRow) -> Result<DeskJob> {
    let acw: i64 = r.try_get("acw_enabled")?;
    Ok(DeskJob {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        notes: r.try_get("notes")?,
        status: r.try_get("status")?,
        campaign_id: r.try_get("campaign_id")?,
        campaign_name: r.try_get("campaign_name")?,
        mode: Mode::parse(&r.try_get::<String, _>("mode")?).unwrap_or(Mode::Progressive),
        dialing_group_id: r.try_get("dialing_group_id")?,
        started_at: r.try_get("started_at")?,
        business_start: r.try_get("business_start")?,
        business_end: r.try_get("business_end")?,
        acw_seconds: (acw != 0).then(|| r.try_get("acw_seconds")).transpose()?,
    })
}

/// The running call jobs `user` may work: those of a dialing group or a campaign it is an agent of.
pub async fn jobs_for_agent(db: &Db, tenant_id: i64, user_id: i64) -> Result<Vec<DeskJob>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM call_jobs j JOIN campaigns c ON c.id = j.campaign_id AND c.tenant_id = j.tenant_id
         WHERE j.tenant_id = $1 AND j.status = 'running'
           AND (EXISTS (SELECT 1 FROM dialing_group_agents g WHERE g.group_id = j.dialing_group_id AND g.user_id = $2 AND g.tenant_id = $1)
             OR EXISTS (SELECT 1 FROM campaign_agents a WHERE a.campaign_id = j.campaign_id AND a.user_id = $2 AND a.tenant_id = $1))
         ORDER BY j.started_at, j.id LIMIT 100"
    );
    let rows = sqlx::query(&sql).bind(tenant_id).bind(user_id).fetch_all(&db.pool).await?;
    rows.iter().map(job_of_row).collect()
}

/// One call job of the tenant.
pub async fn job(db: &Db, tenant_id: i64, job_id: i64) -> Result<Option<DeskJob>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM call_jobs j JOIN campaigns c ON c.id = j.campaign_id AND c.tenant_id = j.tenant_id
         WHERE j.id = $1 AND j.tenant_id = $2"
    );
    sqlx::query(&sql).bind(job_id).bind(tenant_id).fetch_optional(&db.pool).await?.as_ref().map(job_of_row).transpose()
}

/// Leads the job's run may still dial (as the dialer counts its remaining leads).
pub async fn remaining(db: &Db, tenant_id: i64, job: &DeskJob) -> Result<i64> {
    let mut f = crate::leads::job_filter(db, tenant_id, job.id).await?;
    f.not_attempted_since = job.started_at;
    crate::leads::count_dialable(db, tenant_id, job.id, &f).await
}

/// A numbered campaign result (番号,テキスト).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResultCode {
    pub number: i64,
    pub label: String,
    pub connected: bool,
}

pub async fn result_codes(db: &Db, tenant_id: i64, campaign_id: i64) -> Result<Vec<ResultCode>> {
    let rows = sqlx::query(
        "SELECT number, label, connected FROM result_codes WHERE tenant_id = $1 AND campaign_id = $2 ORDER BY number LIMIT 1000",
    )
    .bind(tenant_id)
    .bind(campaign_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ResultCode {
                number: r.try_get("number")?,
                label: r.try_get("label")?,
                connected: r.try_get::<i64, _>("connected")? != 0,
            })
        })
        .collect()
}

/// The agent's row of the control service: its state (`control::agent::AgentView` as JSON) and the
/// call job it works.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub view: String,
    pub campaign_id: Option<i64>,
    pub call_job_id: Option<i64>,
    pub dialing_group_id: Option<i64>,
}

pub async fn agent_row(db: &Db, tenant_id: i64, user_id: i64) -> Result<Option<AgentRow>> {
    let r = sqlx::query(
        "SELECT view, campaign_id, call_job_id, dialing_group_id FROM control_agents WHERE tenant_id = $1 AND agent_user_id = $2",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    r.map(|r| {
        Ok(AgentRow {
            view: r.try_get("view")?,
            campaign_id: r.try_get("campaign_id")?,
            call_job_id: r.try_get("call_job_id")?,
            dialing_group_id: r.try_get("dialing_group_id")?,
        })
    })
    .transpose()
}

/// The lead of a dialer call.
/// The number of the agent's call (by the dialer's call id).
pub async fn tel_of_call(db: &Db, tenant_id: i64, dialer_call_id: i64) -> Result<Option<String>> {
    let r = sqlx::query("SELECT tel FROM call_records WHERE tenant_id = $1 AND dialer_call_id = $2")
        .bind(tenant_id)
        .bind(dialer_call_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(match r {
        Some(r) => Some(r.try_get("tel")?),
        None => None,
    })
}

pub async fn lead_of_call(db: &Db, tenant_id: i64, dialer_call_id: i64) -> Result<Option<i64>> {
    let r = sqlx::query("SELECT lead_id FROM call_records WHERE tenant_id = $1 AND dialer_call_id = $2")
        .bind(tenant_id)
        .bind(dialer_call_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(r.map(|r| r.try_get::<Option<i64>, _>("lead_id")).transpose()?.flatten())
}

/// Whether `user` works on `lead` now: the lead is held for them (a preview, a pick, a hand-out),
/// is the lead of their current call (`current_call`, the dialer's call id from their state), has
/// their unsaved wrap-up record, or their open recall. What an OP may read and correct.
pub async fn works_on_lead(
    db: &Db,
    tenant_id: i64,
    user_id: i64,
    lead_id: i64,
    current_call: Option<i64>,
    now_ms: i64,
) -> Result<bool> {
    let r = sqlx::query(
        "SELECT 1 AS one FROM leads l WHERE l.id = $1 AND l.tenant_id = $2 AND (
            (l.preview_user_id = $3 AND l.preview_until > $4)
            OR EXISTS (SELECT 1 FROM call_records c WHERE c.tenant_id = $2 AND c.lead_id = l.id AND c.dialer_call_id = $5)
            OR EXISTS (SELECT 1 FROM wrapup_records w WHERE w.tenant_id = $2 AND w.lead_id = l.id AND w.agent_user_id = $3 AND w.saved = 0)
            OR EXISTS (SELECT 1 FROM recalls r WHERE r.tenant_id = $2 AND r.lead_id = l.id AND r.agent_user_id = $3 AND r.status = 'open'))",
    )
    .bind(lead_id)
    .bind(tenant_id)
    .bind(user_id)
    .bind(now_ms)
    .bind(current_call.unwrap_or(-1))
    .fetch_optional(&db.pool)
    .await?;
    Ok(r.is_some())
}

/// A lead as the screen pop shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadCard {
    pub id: i64,
    pub list_id: i64,
    pub list_name: String,
    pub campaign_id: i64,
    pub name: String,
    pub kana: String,
    pub tel: String,
    pub remarks: Option<String>,
    /// JSON object text, as stored.
    pub custom: String,
    /// JSON array text, as stored.
    pub tags: String,
    pub state: String,
    pub attempts: i64,
    pub last_result: Option<String>,
    pub last_attempt_at: Option<i64>,
    /// The lead's other numbers (tel, label), in the order added.
    pub other_numbers: Vec<(String, Option<String>)>,
}

pub async fn lead_card(db: &Db, tenant_id: i64, lead_id: i64) -> Result<Option<LeadCard>> {
    let r = sqlx::query(
        "SELECT l.id, l.list_id, cl.name AS list_name, b.campaign_id, l.name, l.kana, l.tel, l.remarks, l.custom, l.tags,
                l.state, l.attempts, l.last_result, l.last_attempt_at
         FROM leads l JOIN customer_lists cl ON cl.id = l.list_id AND cl.tenant_id = l.tenant_id
         JOIN batches b ON b.id = l.batch_id AND b.tenant_id = l.tenant_id
         WHERE l.id = $1 AND l.tenant_id = $2",
    )
    .bind(lead_id)
    .bind(tenant_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(LeadCard {
        id: r.try_get("id")?,
        list_id: r.try_get("list_id")?,
        list_name: r.try_get("list_name")?,
        campaign_id: r.try_get("campaign_id")?,
        name: r.try_get("name")?,
        kana: r.try_get("kana")?,
        tel: r.try_get("tel")?,
        remarks: r.try_get("remarks")?,
        custom: r.try_get("custom")?,
        tags: r.try_get("tags")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        last_result: r.try_get("last_result")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        other_numbers: sqlx::query(
            "SELECT tel, label FROM lead_numbers WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id LIMIT 100",
        )
        .bind(tenant_id)
        .bind(lead_id)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|n| Ok((n.try_get("tel")?, n.try_get("label")?)))
        .collect::<Result<_>>()?,
    }))
}

/// One earlier contact with a lead (応対履歴): a call and, once saved, its wrap-up record.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub call_record_id: i64,
    pub dialer_call_id: Option<i64>,
    /// 発信日時.
    pub started_at: i64,
    /// 登録日時: when the record was saved.
    pub saved_at: Option<i64>,
    /// 相手先番号.
    pub tel: String,
    /// 対話者: `self` (本人) or `other` (その他).
    pub interlocutor: Option<String>,
    /// 対話結果: the record's result, else the call's.
    pub result: String,
    /// 次のアクション.
    pub next_action: Option<String>,
    pub recall_at: Option<i64>,
    /// 通話時間, from the bridge to the end.
    pub talk_ms: Option<i64>,
    /// 発信・登録担当者.
    pub agent_name: Option<String>,
    pub memo: String,
}

/// The lead's calls, newest first, with their wrap-up records, by any agent.
pub async fn contacts(db: &Db, tenant_id: i64, lead_id: i64, limit: i64) -> Result<Vec<Contact>> {
    let rows = sqlx::query(
        "SELECT c.id, c.dialer_call_id, c.started_at, c.bridged_at, c.ended_at, c.tel, c.result AS call_result,
                w.saved_at, w.interlocutor, w.result AS record_result, w.next_action, w.recall_at, w.memo,
                COALESCE(u.display_name, s.display_name) AS agent_name
         FROM call_records c
         LEFT JOIN wrapup_records w ON w.call_record_id = c.id AND w.tenant_id = c.tenant_id
         LEFT JOIN users u ON u.id = COALESCE(w.agent_user_id, c.agent_user_id) AND u.tenant_id = c.tenant_id
         LEFT JOIN users s ON s.id = w.saved_by AND s.tenant_id = c.tenant_id
         WHERE c.tenant_id = $1 AND c.lead_id = $2
         ORDER BY c.started_at DESC, c.id DESC LIMIT $3",
    )
    .bind(tenant_id)
    .bind(lead_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let bridged: Option<i64> = r.try_get("bridged_at")?;
        let ended: Option<i64> = r.try_get("ended_at")?;
        let record_result: Option<String> = r.try_get("record_result")?;
        out.push(Contact {
            call_record_id: r.try_get("id")?,
            dialer_call_id: r.try_get("dialer_call_id")?,
            started_at: r.try_get("started_at")?,
            saved_at: r.try_get("saved_at")?,
            tel: r.try_get("tel")?,
            interlocutor: r.try_get("interlocutor")?,
            result: record_result.unwrap_or(r.try_get("call_result")?),
            next_action: r.try_get("next_action")?,
            recall_at: r.try_get("recall_at")?,
            talk_ms: bridged.zip(ended).map(|(b, e)| (e - b).max(0)),
            agent_name: r.try_get("agent_name")?,
            memo: r.try_get::<Option<String>, _>("memo")?.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// A history entry of a lead.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub text: String,
    pub user_name: Option<String>,
    pub created_at: i64,
}

pub async fn lead_history(db: &Db, tenant_id: i64, lead_id: i64, limit: i64) -> Result<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT h.text, h.created_at, u.display_name FROM lead_history h
         LEFT JOIN users u ON u.id = h.user_id AND u.tenant_id = h.tenant_id
         WHERE h.tenant_id = $1 AND h.lead_id = $2 ORDER BY h.id DESC LIMIT $3",
    )
    .bind(tenant_id)
    .bind(lead_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryEntry {
                text: r.try_get("text")?,
                user_name: r.try_get("display_name")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// A custom field of the tenant (its label and type, for the screen pop).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CustomField {
    pub key: String,
    pub label: String,
    pub kind: String,
}

pub async fn custom_fields(db: &Db, tenant_id: i64) -> Result<Vec<CustomField>> {
    let rows = sqlx::query("SELECT key, label, kind FROM custom_fields WHERE tenant_id = $1 ORDER BY id LIMIT 1000")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok(CustomField { key: r.try_get("key")?, label: r.try_get("label")?, kind: r.try_get("kind")? }))
        .collect()
}

/// What an agent may correct of the lead it works (checked by the caller).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadCorrection {
    pub name: Option<String>,
    pub kana: Option<String>,
    /// `Some(None)`: cleared.
    pub remarks: Option<Option<String>>,
    /// A JSON object's text.
    pub custom: Option<String>,
}

/// Applies a correction and records it in the lead's history, in one transaction. Returns the
/// history text (empty when nothing changed, and then nothing is written).
pub async fn correct_lead(
    db: &Db,
    tenant_id: i64,
    lead_id: i64,
    user_id: i64,
    c: &LeadCorrection,
    now_ms: i64,
) -> Result<String> {
    let before = lead_card(db, tenant_id, lead_id).await?.ok_or(StoreError::NotFound)?;
    let mut changes = Vec::new();
    let mut tx = db.begin_write().await?;
    let set = |changes: &mut Vec<String>, field: &str, old: &str, new: &str| {
        if old != new {
            changes.push(format!("{field}: {old} → {new}"));
            true
        } else {
            false
        }
    };
    if let Some(n) = &c.name {
        if set(&mut changes, "name", &before.name, n) {
            sqlx::query("UPDATE leads SET name = $1 WHERE id = $2 AND tenant_id = $3")
                .bind(n)
                .bind(lead_id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    if let Some(k) = &c.kana {
        if set(&mut changes, "kana", &before.kana, k) {
            sqlx::query("UPDATE leads SET kana = $1 WHERE id = $2 AND tenant_id = $3")
                .bind(k)
                .bind(lead_id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    if let Some(r) = &c.remarks {
        let old = before.remarks.clone().unwrap_or_default();
        if set(&mut changes, "remarks", &old, r.as_deref().unwrap_or("")) {
            sqlx::query("UPDATE leads SET remarks = $1 WHERE id = $2 AND tenant_id = $3")
                .bind(r)
                .bind(lead_id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    if let Some(cu) = &c.custom {
        if set(&mut changes, "custom", &before.custom, cu) {
            sqlx::query("UPDATE leads SET custom = $1 WHERE id = $2 AND tenant_id = $3")
                .bind(cu)
                .bind(lead_id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    if changes.is_empty() {
        return Ok(String::new());
    }
    let text = format!("応対中の修正 / corrected during a call: {}", changes.join("; "));
    sqlx::query("INSERT INTO lead_history (tenant_id, lead_id, user_id, text, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant_id)
        .bind(lead_id)
        .bind(user_id)
        .bind(&text)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(text)
}

/// A lead in a search of the job's leads.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRow {
    pub id: i64,
    pub list_id: i64,
    pub name: String,
    pub kana: String,
    pub tel: String,
    pub attempts: i64,
    pub last_result: Option<String>,
    pub last_attempt_at: Option<i64>,
    /// Held now for another agent (a preview, pick or hand-out).
    pub held_by_other: bool,
}

/// How to search the job's leads.
#[derive(Debug, Clone, PartialEq)]
pub enum LeadQuery<'a> {
    /// Name or kana containing the text, or the number starting with it.
    Text(&'a str),
    /// Exactly this number.
    Tel(&'a str),
}

/// Open leads of the job's lists matching `q`, at most `limit`.
pub async fn search_leads(
    db: &Db,
    tenant_id: i64,
    job_id: i64,
    user_id: i64,
    q: LeadQuery<'_>,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<LeadRow>> {
    let (cond, a, b) = match q {
        LeadQuery::Text(t) => {
            let like = format!("%{}%", t.replace(['%', '_', '\\'], ""));
            ("(l.name LIKE $4 OR l.kana LIKE $4 OR l.tel LIKE $5)", like, format!("{}%", t.replace(['%', '_'], "")))
        }
        LeadQuery::Tel(t) => ("(l.tel = $4 OR l.tel = $5)", t.to_owned(), t.to_owned()),
    };
    let sql = format!(
        "SELECT l.id, l.list_id, l.name, l.kana, l.tel, l.attempts, l.last_result, l.last_attempt_at,
                CASE WHEN l.preview_until > $6 AND l.preview_user_id <> $7 THEN 1 ELSE 0 END AS held
         FROM leads l WHERE l.tenant_id = $1 AND l.state = 'open'
           AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $2 AND tenant_id = $1)
           AND {cond}
         ORDER BY l.id LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(job_id)
        .bind(limit)
        .bind(a)
        .bind(b)
        .bind(now_ms)
        .bind(user_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(LeadRow {
                id: r.try_get("id")?,
                list_id: r.try_get("list_id")?,
                name: r.try_get("name")?,
                kana: r.try_get("kana")?,
                tel: r.try_get("tel")?,
                attempts: r.try_get("attempts")?,
                last_result: r.try_get("last_result")?,
                last_attempt_at: r.try_get("last_attempt_at")?,
                held_by_other: r.try_get::<i64, _>("held")? != 0,
            })
        })
        .collect()
}

/// A customer list of a call job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobList {
    pub id: i64,
    pub name: String,
    pub batch_id: i64,
    pub allow_duplicates: bool,
}

pub async fn job_lists(db: &Db, tenant_id: i64, job_id: i64) -> Result<Vec<JobList>> {
    let rows = sqlx::query(
        "SELECT c.id, c.name, c.batch_id, c.allow_duplicates FROM call_job_lists jl
         JOIN customer_lists c ON c.id = jl.list_id AND c.tenant_id = jl.tenant_id
         WHERE jl.tenant_id = $1 AND jl.job_id = $2 ORDER BY c.id LIMIT 100",
    )
    .bind(tenant_id)
    .bind(job_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(JobList {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                batch_id: r.try_get("batch_id")?,
                allow_duplicates: r.try_get::<i64, _>("allow_duplicates")? != 0,
            })
        })
        .collect()
}

pub use crate::leads::CreateRefused;

/// Creates a lead (dial mode: a number nobody has) in `list`, held for `user_id` until
/// `now_ms + hold_ms` so that the agent dials it next. Returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn create_lead(
    db: &Db,
    tenant_id: i64,
    list: &JobList,
    name: &str,
    kana: &str,
    tel: &str,
    user_id: i64,
    now_ms: i64,
    hold_ms: i64,
    max_per_list: i64,
) -> Result<std::result::Result<i64, CreateRefused>> {
    let mut tx = db.begin_write().await?;
    if let Err(refused) =
        crate::leads::check_new_lead(db, &mut tx, tenant_id, list.id, None, Some(tel), max_per_list).await?
    {
        return Ok(Err(refused));
    }
    let id: i64 = sqlx::query(
        "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, preview_user_id, preview_until, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(tenant_id)
    .bind(list.id)
    .bind(list.batch_id)
    .bind(name)
    .bind(kana)
    .bind(tel)
    .bind(PhoneType::of(tel).as_str())
    .bind(user_id)
    .bind(now_ms + hold_ms)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    sqlx::query("INSERT INTO lead_history (tenant_id, lead_id, user_id, text, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant_id)
        .bind(id)
        .bind(user_id)
        .bind("ダイヤル発信で作成 / created from a dialled number")
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// Why a lead could not be held for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefused {
    /// Another agent holds it now.
    HeldByOther,
    /// Not an open lead of the job's lists.
    NotInJob,
}

/// Holds `lead` for `user_id` until `now_ms + hold_ms` (the preview hold): no other agent and no
/// paced dial takes it meanwhile; the dial ends the hold.
pub async fn hold(
    db: &Db,
    tenant_id: i64,
    job_id: i64,
    user_id: i64,
    lead_id: i64,
    now_ms: i64,
    hold_ms: i64,
) -> Result<std::result::Result<(), HoldRefused>> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE leads SET preview_user_id = $1, preview_until = $2
         WHERE id = $3 AND tenant_id = $4 AND state = 'open'
           AND list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $5 AND tenant_id = $4)
           AND (preview_until IS NULL OR preview_until <= $6 OR preview_user_id = $1)",
    )
    .bind(user_id)
    .bind(now_ms + hold_ms)
    .bind(lead_id)
    .bind(tenant_id)
    .bind(job_id)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if n == 1 {
        return Ok(Ok(()));
    }
    let held = sqlx::query(
        "SELECT 1 AS one FROM leads WHERE id = $1 AND tenant_id = $2 AND state = 'open' AND preview_until > $3
           AND list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $4 AND tenant_id = $2)",
    )
    .bind(lead_id)
    .bind(tenant_id)
    .bind(now_ms)
    .bind(job_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(Err(if held.is_some() { HoldRefused::HeldByOther } else { HoldRefused::NotInJob }))
}

/// One recall of the agent's recall list (再コール一覧).
#[derive(Debug, Clone, PartialEq)]
pub struct RecallItem {
    pub id: i64,
    pub lead_id: i64,
    pub campaign_id: i64,
    pub campaign_name: String,
    pub name: String,
    pub tel: String,
    /// `None`: no time set (the agent calls when it can).
    pub due_at: Option<i64>,
    pub note: String,
}

/// The agent's open recalls, the earliest due first (those with no time last).
pub async fn recalls_of(db: &Db, tenant_id: i64, user_id: i64, limit: i64) -> Result<Vec<RecallItem>> {
    let rows = sqlx::query(
        "SELECT r.id, r.lead_id, r.campaign_id, c.name AS campaign_name, l.name, l.tel, r.due_at, r.note
         FROM recalls r JOIN leads l ON l.id = r.lead_id AND l.tenant_id = r.tenant_id
         JOIN campaigns c ON c.id = r.campaign_id AND c.tenant_id = r.tenant_id
         WHERE r.tenant_id = $1 AND r.agent_user_id = $2 AND r.status = 'open'
         ORDER BY CASE WHEN r.due_at IS NULL THEN 1 ELSE 0 END, r.due_at, r.id LIMIT $3",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RecallItem {
                id: r.try_get("id")?,
                lead_id: r.try_get("lead_id")?,
                campaign_id: r.try_get("campaign_id")?,
                campaign_name: r.try_get("campaign_name")?,
                name: r.try_get("name")?,
                tel: r.try_get("tel")?,
                due_at: r.try_get("due_at")?,
                note: r.try_get("note")?,
            })
        })
        .collect()
}

/// One open recall of the agent.
pub async fn recall_of(db: &Db, tenant_id: i64, user_id: i64, recall_id: i64) -> Result<Option<RecallItem>> {
    Ok(recalls_of(db, tenant_id, user_id, 10_000).await?.into_iter().find(|r| r.id == recall_id))
}

/// A colleague of the agent: a member of one of its dialing groups, with its state as control
/// committed it (`AgentView` JSON; `None`: never logged in).
#[derive(Debug, Clone, PartialEq)]
pub struct Colleague {
    pub user_id: i64,
    pub display_name: String,
    pub view: Option<String>,
}

pub async fn colleagues(db: &Db, tenant_id: i64, user_id: i64, limit: i64) -> Result<Vec<Colleague>> {
    let rows = sqlx::query(
        "SELECT u.id, u.display_name, ca.view FROM users u
         LEFT JOIN control_agents ca ON ca.tenant_id = u.tenant_id AND ca.agent_user_id = u.id
         WHERE u.tenant_id = $1 AND u.id <> $2 AND u.id IN (
             SELECT g2.user_id FROM dialing_group_agents g1
             JOIN dialing_group_agents g2 ON g2.group_id = g1.group_id AND g2.tenant_id = g1.tenant_id
             WHERE g1.tenant_id = $1 AND g1.user_id = $2)
         ORDER BY u.display_name, u.id LIMIT $3",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Colleague {
                user_id: r.try_get("id")?,
                display_name: r.try_get("display_name")?,
                view: r.try_get("view")?,
            })
        })
        .collect()
}
