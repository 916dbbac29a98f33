//! What the control service writes to SQL, as one transaction per applied batch (group commit):
//! the message ids applied, the agent transitions, call-record and wrap-up-record changes, and the
//! state of every agent the batch touched. And what a restarted service reads back.

use std::collections::{BTreeMap, HashMap};

use store::sqlx::{self, Row};
use store::Db;

use crate::agent::{AgentId, AgentState, CallId, Cause, Transition};
use bus::MessageId;
use wallboard::{Counts, StoredCounts, BUCKET_24H_MS, BUCKET_30D_MS};
use wire::agent::{AgentConfig, AgentView};
use wire::{CallJobId, CampaignId, DialingGroupId, Keyed, LeadId, ParkChange};

/// Rows per multi-row INSERT (at 11 columns, well under SQLite's 32,766 and PostgreSQL's 65,535
/// parameters). Each statement is a round trip to the database's thread or server; at 200 rows a
/// merged batch of 5,000 messages took 75 of them, at 1,000 rows 15.
const ROWS_PER_INSERT: usize = 1_000;

/// One call-record (or wrap-up-record) change, in apply order.
#[derive(Clone, Debug, PartialEq)]
pub enum CallOp {
    /// The customer was bridged to the agent: the call record's `bridged_at` (the first bridge: a
    /// transferred call keeps it) and `agent_user_id` (the last agent) (control's columns; the
    /// dialer writes the rest of the row).
    Bridged { call_id: CallId, agent_id: AgentId, at_ms: u64 },
    /// A bridged call ended: its wrap-up record, unsaved, result 未入力 (`no_entry`).
    WrapUpRow { call_id: CallId, agent_id: AgentId, at_ms: u64 },
    /// The agent keyed a result or a recall on the phone (DTMF result entry): the call's unsaved
    /// wrap-up record is saved with it.
    Keyed { call_id: CallId, agent_id: AgentId, keyed: Keyed, at_ms: u64 },
    /// パーク保留: the call was parked under `number` by `agent_id` (a `parked_calls` row).
    Parked { call_id: CallId, number: u16, agent_id: AgentId, at_ms: u64 },
    /// The open park `number` ended: picked up (by `agent_id`), hung up, or returned.
    ParkEnded { number: u16, outcome: ParkChange, agent_id: Option<AgentId>, at_ms: u64 },
    /// A pick-up control refused: the API's claim of the open park `number` is undone.
    ParkUnclaimed { number: u16 },
}

/// An agent's row in `control_agents`: their call job and state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgentRow {
    pub campaign_id: Option<CampaignId>,
    pub call_job_id: Option<CallJobId>,
    pub dialing_group_id: Option<DialingGroupId>,
    pub view: AgentView,
    pub config: AgentConfig,
}

/// The writes of one batch.
#[derive(Debug, Default)]
pub struct BatchWrites {
    pub applied: Vec<MessageId>,
    pub transitions: Vec<(Transition, String)>,
    pub calls: Vec<CallOp>,
    /// The agents touched, as they are after the batch.
    pub agents: BTreeMap<AgentId, AgentRow>,
}

impl BatchWrites {
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.transitions.is_empty() && self.calls.is_empty() && self.agents.is_empty()
    }
}

/// Persistence errors (the service stops on them: crash-only, it restarts from what was committed).
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("sql: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bad stored row: {0}")]
    BadRow(String),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("the tenant's control lease is held by another control (this one's commit is refused)")]
    Fenced,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn reason(s: &AgentState) -> Option<i64> {
    match s {
        AgentState::Paused { reason_id } => Some(i64::from(reason_id.0)),
        _ => None,
    }
}

fn cause_name(c: &Cause) -> (&'static str, Option<i64>) {
    match c {
        Cause::Login => ("login", None),
        Cause::AgentLegUp => ("agent_leg_up", None),
        Cause::AgentLegDown => ("agent_leg_down", None),
        Cause::PhoneUnreachable => ("phone_unreachable", None),
        Cause::Offer => ("offer", None),
        Cause::Declined => ("declined", None),
        Cause::PreviewDial => ("preview_dial", None),
        Cause::NotDialled => ("not_dialled", None),
        Cause::NoAnswer => ("no_answer", None),
        Cause::Bridged => ("bridged", None),
        Cause::CustomerEnded => ("customer_ended", None),
        Cause::Hold => ("hold", None),
        Cause::Unhold => ("unhold", None),
        Cause::Transferred => ("transferred", None),
        Cause::Parked => ("parked", None),
        Cause::WrapUpSaved => ("wrap_up_saved", None),
        Cause::AcwTimeout => ("acw_timeout", None),
        Cause::GoReady => ("go_ready", None),
        Cause::PauseRequested => ("pause_requested", None),
        Cause::LogOffRequested => ("log_off_requested", None),
        Cause::IdleTimeout => ("idle_timeout", None),
        Cause::PauseReleased => ("pause_released", None),
        Cause::Supervisor { supervisor_id } => ("supervisor", Some(i(supervisor_id.0))),
    }
}

/// Writes one batch in one transaction.
/// With a `fence` (holder, token), nothing is written unless that holder still holds the tenant's
/// control lease with that token (the lease row locked to the commit).
pub async fn commit(
    db: &Db,
    tenant_id: u64,
    now_ms: u64,
    w: &BatchWrites,
    fence: Option<&(String, i64)>,
) -> Result<(), PersistError> {
    let t = i(tenant_id);
    let mut tx = db.begin_write().await?;
    if let Some((holder, token)) = fence {
        if !store::leases::lock_held(&mut tx, store::leases::Kind::Control, t, 0, holder, *token).await? {
            return Err(PersistError::Fenced);
        }
    }
    for chunk in w.applied.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO control_applied (tenant_id, message_id, applied_at) VALUES {}",
            store::placeholders(db.backend, chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql).persistent(chunk.len() == ROWS_PER_INSERT);
        for id in chunk {
            q = q.bind(t).bind(id.to_string()).bind(i(now_ms));
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in w.transitions.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO agent_transitions (tenant_id, agent_user_id, from_state, to_state, from_reason_id, to_reason_id,
                cause, supervisor_id, call_id, at, message_id) VALUES {}",
            store::placeholders(db.backend, chunk.len(), 11)
        );
        let mut q = sqlx::query(&sql).persistent(chunk.len() == ROWS_PER_INSERT);
        for (tr, msg) in chunk {
            let (cause, sv) = cause_name(&tr.cause);
            q = q
                .bind(t)
                .bind(i(tr.agent_id.0))
                .bind(tr.from.name())
                .bind(tr.to.name())
                .bind(reason(&tr.from))
                .bind(reason(&tr.to))
                .bind(cause)
                .bind(sv)
                .bind(tr.call_id.map(|c| i(c.0)))
                .bind(i(tr.at_ms))
                .bind(msg.as_str());
        }
        q.execute(&mut *tx).await?;
    }
    for op in &w.calls {
        match op {
            CallOp::Bridged { call_id, agent_id, at_ms } => {
                sqlx::query(
                    "UPDATE call_records SET bridged_at = COALESCE(bridged_at, $1), agent_user_id = $2 WHERE tenant_id = $3 AND dialer_call_id = $4",
                )
                .bind(i(*at_ms))
                .bind(i(agent_id.0))
                .bind(t)
                .bind(i(call_id.0))
                .execute(&mut *tx)
                .await?;
            }
            CallOp::WrapUpRow { call_id, agent_id, at_ms } => {
                sqlx::query(
                    "INSERT INTO wrapup_records (tenant_id, call_record_id, lead_id, agent_user_id, result, saved, created_at, dialer_call_id)
                     SELECT $1, c.id, c.lead_id, $2, 'no_entry', 0, $3, $4 FROM call_records c
                     WHERE c.tenant_id = $5 AND c.dialer_call_id = $6
                     ON CONFLICT (tenant_id, dialer_call_id) DO NOTHING",
                )
                .bind(t)
                .bind(i(agent_id.0))
                .bind(i(*at_ms))
                .bind(i(call_id.0))
                .bind(t)
                .bind(i(call_id.0))
                .execute(&mut *tx)
                .await?;
            }
            CallOp::Parked { call_id, number, agent_id, at_ms } => {
                sqlx::query(
                    "INSERT INTO parked_calls (tenant_id, dialer_call_id, number, parked_by, parked_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(t)
                .bind(i(call_id.0))
                .bind(i64::from(*number))
                .bind(i(agent_id.0))
                .bind(i(*at_ms))
                .execute(&mut *tx)
                .await?;
            }
            CallOp::ParkEnded { number, outcome, agent_id, at_ms } => {
                let outcome = match outcome {
                    ParkChange::PickedUp => "picked_up",
                    ParkChange::HungUp => "hung_up",
                    ParkChange::Returned | ParkChange::Parked => "returned",
                };
                sqlx::query(
                    "UPDATE parked_calls SET ended_at = $1, outcome = $2, picked_by = COALESCE($3, picked_by),
                        picked_at = COALESCE(picked_at, $4)
                     WHERE tenant_id = $5 AND number = $6 AND ended_at IS NULL",
                )
                .bind(i(*at_ms))
                .bind(outcome)
                .bind(agent_id.map(|a| i(a.0)))
                .bind(agent_id.map(|_| i(*at_ms)))
                .bind(t)
                .bind(i64::from(*number))
                .execute(&mut *tx)
                .await?;
            }
            CallOp::ParkUnclaimed { number } => {
                sqlx::query(
                    "UPDATE parked_calls SET picked_by = NULL, picked_at = NULL WHERE tenant_id = $1 AND number = $2 AND ended_at IS NULL",
                )
                .bind(t)
                .bind(i64::from(*number))
                .execute(&mut *tx)
                .await?;
            }
            CallOp::Keyed { call_id, agent_id, keyed, at_ms } => {
                let Some(record) = store::records::unsaved_record_of_call_in(&mut tx, t, i(call_id.0)).await? else {
                    tracing::info!(call = call_id.0, "a result was keyed for a call with no unsaved record");
                    continue;
                };
                let save = match *keyed {
                    Keyed::Result { number } => store::records::WrapupSave {
                        interlocutor: None,
                        result: number.to_string(),
                        other_tel: None,
                        next_action: "continue".into(),
                        recall_at: None,
                        recall_to_agent: false,
                        memo: String::new(),
                        state_after: "continue".into(),
                    },
                    Keyed::Recall { after_ms } => store::records::WrapupSave {
                        interlocutor: None,
                        result: "no_entry".into(),
                        other_tel: None,
                        next_action: "recall".into(),
                        recall_at: Some(i(at_ms.saturating_add(after_ms))),
                        recall_to_agent: false,
                        memo: String::new(),
                        state_after: "continue".into(),
                    },
                };
                match store::records::save_wrapup_in(&mut tx, t, record, &save, i(agent_id.0), i(*at_ms)).await {
                    // Saved by someone else in between: the agent's keys come too late.
                    Err(store::StoreError::NotFound) => {
                        tracing::info!(call = call_id.0, "a keyed result found its record saved already");
                    }
                    r => r?,
                }
            }
        }
    }
    let agents: Vec<_> = w.agents.iter().collect();
    for chunk in agents.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO control_agents (tenant_id, agent_user_id, campaign_id, call_job_id, dialing_group_id, view, config, updated_at)
             VALUES {}
             ON CONFLICT (tenant_id, agent_user_id) DO UPDATE SET campaign_id = excluded.campaign_id,
                call_job_id = excluded.call_job_id, dialing_group_id = excluded.dialing_group_id,
                view = excluded.view, config = excluded.config, updated_at = excluded.updated_at",
            store::placeholders(db.backend, chunk.len(), 8)
        );
        let mut q = sqlx::query(&sql).persistent(chunk.len() == ROWS_PER_INSERT);
        for (id, a) in chunk {
            q = q
                .bind(t)
                .bind(i(id.0))
                .bind(a.campaign_id.map(|c| i(c.0)))
                .bind(a.call_job_id.map(|c| i(c.0)))
                .bind(a.dialing_group_id.map(|c| i(c.0)))
                .bind(serde_json::to_string(&a.view)?)
                .bind(serde_json::to_string(&a.config)?)
                .bind(i(now_ms));
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn id_of(v: Option<i64>) -> Option<u64> {
    v.and_then(|c| u64::try_from(c).ok())
}

/// The tenant's agents, as committed.
pub async fn load_agents(db: &Db, tenant_id: u64, limit: usize) -> Result<Vec<AgentRow>, PersistError> {
    let rows = sqlx::query(
        "SELECT campaign_id, call_job_id, dialing_group_id, view, config FROM control_agents WHERE tenant_id = $1
         ORDER BY agent_user_id LIMIT $2",
    )
    .bind(i(tenant_id))
    .bind(i(limit as u64))
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let view: String = r.try_get("view")?;
        let config: String = r.try_get("config")?;
        out.push(AgentRow {
            campaign_id: id_of(r.try_get("campaign_id")?).map(CampaignId),
            call_job_id: id_of(r.try_get("call_job_id")?).map(CallJobId),
            dialing_group_id: id_of(r.try_get("dialing_group_id")?).map(DialingGroupId),
            view: serde_json::from_str(&view)?,
            config: serde_json::from_str(&config)?,
        });
    }
    Ok(out)
}

/// The wallboard's rolling counts from the call records: 5-minute buckets since `fine_since_ms`
/// and 1-hour buckets since `coarse_since_ms`, by answer time.
pub async fn load_wallboard_counts(
    db: &Db,
    tenant_id: u64,
    fine_since_ms: u64,
    coarse_since_ms: u64,
) -> Result<Vec<StoredCounts>, PersistError> {
    let mut out = Vec::new();
    for (fine, bucket, since) in [(true, BUCKET_24H_MS, fine_since_ms), (false, BUCKET_30D_MS, coarse_since_ms)] {
        let rows = sqlx::query(
            "SELECT campaign_id, answered_at / $1 AS bucket, COUNT(*) AS answered,
                SUM(CASE WHEN bridged_at IS NOT NULL THEN 1 ELSE 0 END) AS connected,
                SUM(CASE WHEN bridged_at IS NULL AND ended_at IS NOT NULL THEN 1 ELSE 0 END) AS abandoned
             FROM call_records WHERE tenant_id = $2 AND answered_at >= $3 AND campaign_id IS NOT NULL
             GROUP BY 1, 2",
        )
        .bind(i(bucket))
        .bind(i(tenant_id))
        .bind(i(since))
        .fetch_all(&db.pool)
        .await?;
        for r in rows {
            let n = |col: &str| -> Result<u64, PersistError> {
                let v: Option<i64> = r.try_get(col)?;
                Ok(id_of(v).unwrap_or(0))
            };
            let Some(campaign) = id_of(r.try_get("campaign_id")?) else { continue };
            out.push(StoredCounts {
                campaign_id: CampaignId(campaign),
                at_ms: n("bucket")? * bucket,
                fine,
                counts: Counts { answered: n("answered")?, connected: n("connected")?, abandoned: n("abandoned")? },
            });
        }
    }
    Ok(out)
}

/// `(key, n)` rows of a `SELECT k, COUNT(*) AS n ... GROUP BY k` over one tenant since a time.
async fn counts_since(db: &Db, sql: &str, tenant_id: u64, since_ms: u64) -> Result<Vec<(u64, u64)>, PersistError> {
    let rows = sqlx::query(sql).bind(i(tenant_id)).bind(i(since_ms)).fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(k) = id_of(r.try_get("k")?) {
            out.push((k, id_of(r.try_get("n")?).unwrap_or(0)));
        }
    }
    Ok(out)
}

/// Answered calls ended since `since_ms`, per campaign.
pub async fn load_calls_since(db: &Db, tenant_id: u64, since_ms: u64) -> Result<Vec<(CampaignId, u64)>, PersistError> {
    let sql = "SELECT campaign_id AS k, COUNT(*) AS n FROM call_records WHERE tenant_id = $1 AND ended_at >= $2
        AND bridged_at IS NOT NULL AND campaign_id IS NOT NULL GROUP BY campaign_id";
    Ok(counts_since(db, sql, tenant_id, since_ms).await?.into_iter().map(|(k, n)| (CampaignId(k), n)).collect())
}

/// Conversations (bridged calls that ended) since `since_ms`, per agent.
pub async fn load_agent_calls_since(
    db: &Db,
    tenant_id: u64,
    since_ms: u64,
) -> Result<Vec<(AgentId, u64)>, PersistError> {
    let sql = "SELECT agent_user_id AS k, COUNT(*) AS n FROM call_records WHERE tenant_id = $1 AND ended_at >= $2
        AND bridged_at IS NOT NULL AND agent_user_id IS NOT NULL GROUP BY agent_user_id";
    Ok(counts_since(db, sql, tenant_id, since_ms).await?.into_iter().map(|(k, n)| (AgentId(k), n)).collect())
}

/// The tenant's time zone name.
pub async fn load_time_zone(db: &Db, tenant_id: u64) -> Result<String, PersistError> {
    let r =
        sqlx::query("SELECT time_zone FROM tenants WHERE id = $1").bind(i(tenant_id)).fetch_optional(&db.pool).await?;
    Ok(match r {
        Some(r) => r.try_get("time_zone")?,
        None => "UTC".to_owned(),
    })
}

/// The newest applied message ids (the dedup window of a restarted service).
pub async fn load_applied(db: &Db, tenant_id: u64, limit: usize) -> Result<Vec<MessageId>, PersistError> {
    let rows = sqlx::query("SELECT message_id FROM control_applied WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2")
        .bind(i(tenant_id))
        .bind(i(limit as u64))
        .fetch_all(&db.pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let s: String = r.try_get("message_id")?;
        let id = s.parse::<ulid::Ulid>().map_err(|e| PersistError::BadRow(format!("message id {s:?}: {e}")))?;
        out.push(MessageId(id));
    }
    out.reverse();
    Ok(out)
}

/// Customers answered and not yet bridged nor ended: (call, campaign, answered at), oldest first.
pub async fn load_waiting(
    db: &Db,
    tenant_id: u64,
    limit: usize,
) -> Result<Vec<(CallId, CampaignId, u64)>, PersistError> {
    let rows = sqlx::query(
        "SELECT dialer_call_id, campaign_id, answered_at FROM call_records WHERE tenant_id = $1
            AND dialer_call_id IS NOT NULL AND answered_at IS NOT NULL AND bridged_at IS NULL AND ended_at IS NULL
         ORDER BY answered_at LIMIT $2",
    )
    .bind(i(tenant_id))
    .bind(i(limit as u64))
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let call: i64 = r.try_get("dialer_call_id")?;
        let campaign: Option<i64> = r.try_get("campaign_id")?;
        let at: Option<i64> = r.try_get("answered_at")?;
        out.push((
            CallId(u64::try_from(call).unwrap_or(0)),
            CampaignId(campaign.and_then(|c| u64::try_from(c).ok()).unwrap_or(0)),
            at.and_then(|a| u64::try_from(a).ok()).unwrap_or(0),
        ));
    }
    Ok(out)
}

/// パーク保留: the open parks (a restarted service keeps them, numbers and limits).
pub async fn load_parked(
    db: &Db,
    tenant_id: u64,
) -> Result<BTreeMap<u16, crate::agent::parking::ParkedCall>, PersistError> {
    let rows = sqlx::query(
        "SELECT CAST(number AS BIGINT) AS number, dialer_call_id, parked_by, parked_at FROM parked_calls
         WHERE tenant_id = $1 AND ended_at IS NULL ORDER BY number LIMIT 200",
    )
    .bind(i(tenant_id))
    .fetch_all(&db.pool)
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let number: i64 = r.try_get("number")?;
        let call: i64 = r.try_get("dialer_call_id")?;
        let by: i64 = r.try_get("parked_by")?;
        let at: i64 = r.try_get("parked_at")?;
        let (Ok(number), Ok(call), Ok(by)) = (u16::try_from(number), u64::try_from(call), u64::try_from(by)) else {
            continue;
        };
        let p = crate::agent::parking::ParkedCall {
            call_id: CallId(call),
            by: AgentId(by),
            at_ms: u64::try_from(at).unwrap_or(0),
        };
        out.insert(number, p);
    }
    Ok(out)
}

/// The lead of every customer call not ended yet (a restarted service publishes them with its
/// agents' transitions again).
pub async fn load_open_call_leads(
    db: &Db,
    tenant_id: u64,
    limit: usize,
) -> Result<HashMap<CallId, LeadId>, PersistError> {
    let rows = sqlx::query(
        "SELECT dialer_call_id, lead_id FROM call_records WHERE tenant_id = $1
            AND dialer_call_id IS NOT NULL AND lead_id IS NOT NULL AND ended_at IS NULL
         ORDER BY id DESC LIMIT $2",
    )
    .bind(i(tenant_id))
    .bind(i(limit as u64))
    .fetch_all(&db.pool)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let call: i64 = r.try_get("dialer_call_id")?;
        let lead: i64 = r.try_get("lead_id")?;
        out.insert(CallId(u64::try_from(call).unwrap_or(0)), LeadId(u64::try_from(lead).unwrap_or(0)));
    }
    Ok(out)
}

/// The tenant's pause reasons.
pub async fn load_pause_reasons(db: &Db, tenant_id: u64) -> Result<Vec<u32>, PersistError> {
    let rows = sqlx::query("SELECT id FROM pause_reasons WHERE tenant_id = $1 LIMIT 10000")
        .bind(i(tenant_id))
        .fetch_all(&db.pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get("id")?;
        if let Ok(id) = u32::try_from(id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Deletes applied ids older than `before_ms` (they can no longer be redelivered: the entries were
/// acked long ago). Keeps the table bounded.
pub async fn prune_applied(db: &Db, tenant_id: u64, before_ms: u64) -> Result<u64, PersistError> {
    let r = sqlx::query("DELETE FROM control_applied WHERE tenant_id = $1 AND applied_at < $2")
        .bind(i(tenant_id))
        .bind(i(before_ms))
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected())
}

/// Tenant ids, ascending.
pub async fn tenant_ids(db: &Db, limit: usize) -> Result<Vec<u64>, PersistError> {
    let rows =
        sqlx::query("SELECT id FROM tenants ORDER BY id LIMIT $1").bind(i(limit as u64)).fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get("id")?;
        if let Ok(id) = u64::try_from(id) {
            out.push(id);
        }
    }
    Ok(out)
}
