//! What the control service keeps in SQL: one transaction per applied batch (group commit) of the
//! message ids applied, the agent transitions, the call-record and wrap-up-record changes, and the
//! state of every agent the batch touched; and what a restarted service reads back. The rows are
//! plain values here: the control service owns their types (agent states, causes, views as JSON).

use sqlx::{AnyConnection, Row};

use crate::records::WrapupSave;
use crate::{placeholders, Backend, Db, Result, StoreError};

/// Rows per multi-row INSERT on SQLite (at 11 columns, well under its 32,766 parameters). Each
/// statement is a round trip to the database's thread; at 200 rows a merged batch of 5,000 messages
/// took 75 of them, at 1,000 rows 15.
const ROWS_PER_INSERT: usize = 1_000;

/// One agent transition (`agent_transitions`). Serialized as a record of PostgreSQL's
/// `json_to_recordset` in [`commit`] (short keys: the text is the payload).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TransitionRow<'a> {
    #[serde(rename = "a")]
    pub agent_user_id: i64,
    #[serde(rename = "f")]
    pub from_state: &'a str,
    #[serde(rename = "t")]
    pub to_state: &'a str,
    #[serde(rename = "fr")]
    pub from_reason_id: Option<i64>,
    #[serde(rename = "tr")]
    pub to_reason_id: Option<i64>,
    #[serde(rename = "c")]
    pub cause: &'a str,
    #[serde(rename = "s")]
    pub supervisor_id: Option<i64>,
    #[serde(rename = "k")]
    pub dialer_call_id: Option<i64>,
    #[serde(rename = "at")]
    pub at_ms: i64,
    /// The bus message that caused it.
    #[serde(rename = "m")]
    pub message_id: &'a str,
}

/// One call-record (or wrap-up-record, or park) change, in apply order.
#[derive(Debug, Clone)]
pub enum CallWrite {
    /// The customer was bridged to the agent: the call record's `bridged_at` (the first bridge: a
    /// transferred call keeps it) and `agent_user_id` (the last agent).
    Bridged { dialer_call_id: i64, agent_user_id: i64, at_ms: i64 },
    /// A bridged call ended: its wrap-up record, unsaved, result 未入力 (`no_entry`).
    WrapUpRow { dialer_call_id: i64, agent_user_id: i64, at_ms: i64 },
    /// The agent keyed a result or a recall on the phone: the call's unsaved wrap-up record is
    /// saved with it (nothing when it has none, or someone saved it in between).
    Keyed { dialer_call_id: i64, agent_user_id: i64, save: WrapupSave, at_ms: i64 },
    /// パーク保留: the call was parked under `number` (a `parked_calls` row).
    Parked { dialer_call_id: i64, number: i64, parked_by: i64, at_ms: i64 },
    /// The open park `number` ended: `outcome` `picked_up` (by `picked_by`), `hung_up` or `returned`.
    ParkEnded { number: i64, outcome: &'static str, picked_by: Option<i64>, at_ms: i64 },
    /// A pick-up control refused: the API's claim of the open park `number` is undone.
    ParkUnclaimed { number: i64 },
}

/// An agent's row in `control_agents`: their call job and state (`view`, `config`: JSON).
/// Serialized as a record of `json_to_recordset`, as [`TransitionRow`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentRow {
    #[serde(rename = "a")]
    pub agent_user_id: i64,
    #[serde(rename = "c")]
    pub campaign_id: Option<i64>,
    #[serde(rename = "j")]
    pub call_job_id: Option<i64>,
    #[serde(rename = "g")]
    pub dialing_group_id: Option<i64>,
    #[serde(rename = "v")]
    pub view: String,
    #[serde(rename = "k")]
    pub config: String,
}

/// The writes of one batch.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub applied: &'a [String],
    pub transitions: &'a [TransitionRow<'a>],
    pub calls: &'a [CallWrite],
    pub agents: &'a [AgentRow],
}

/// The control lease a commit must still hold: its holder and fencing token.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    pub holder: &'a str,
    pub token: i64,
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Done,
    /// The tenant's control lease is held by another control: nothing was written.
    Fenced,
}

/// Writes one batch in one transaction. With a `fence`, nothing is written unless that holder
/// still holds the tenant's control lease with that token (the lease row locked to the commit).
pub async fn commit(db: &Db, tenant_id: i64, now_ms: i64, w: Batch<'_>, fence: Option<Fence<'_>>) -> Result<Committed> {
    let t = tenant_id;
    let mut tx = db.begin_write().await?;
    if let Some(f) = fence {
        if !crate::leases::lock_held(&mut tx, crate::leases::Kind::Control, t, 0, f.holder, f.token).await? {
            return Ok(Committed::Fenced);
        }
    }
    match db.backend {
        Backend::Postgres => write_batch_pg(&mut tx, t, now_ms, &w).await?,
        Backend::Sqlite => write_batch_values(&mut tx, t, now_ms, &w).await?,
    }
    for op in w.calls {
        match op {
            CallWrite::Bridged { dialer_call_id, agent_user_id, at_ms } => {
                sqlx::query(
                    "UPDATE call_records SET bridged_at = COALESCE(bridged_at, $1), agent_user_id = $2 WHERE tenant_id = $3 AND dialer_call_id = $4",
                )
                .bind(*at_ms)
                .bind(*agent_user_id)
                .bind(t)
                .bind(*dialer_call_id)
                .execute(&mut *tx)
                .await?;
            }
            CallWrite::WrapUpRow { dialer_call_id, agent_user_id, at_ms } => {
                sqlx::query(
                    "INSERT INTO wrapup_records (tenant_id, call_record_id, lead_id, agent_user_id, result, saved, created_at, dialer_call_id)
                     SELECT $1, c.id, c.lead_id, $2, 'no_entry', 0, $3, $4 FROM call_records c
                     WHERE c.tenant_id = $5 AND c.dialer_call_id = $6
                     ON CONFLICT (tenant_id, dialer_call_id) DO NOTHING",
                )
                .bind(t)
                .bind(*agent_user_id)
                .bind(*at_ms)
                .bind(*dialer_call_id)
                .bind(t)
                .bind(*dialer_call_id)
                .execute(&mut *tx)
                .await?;
            }
            CallWrite::Parked { dialer_call_id, number, parked_by, at_ms } => {
                sqlx::query(
                    "INSERT INTO parked_calls (tenant_id, dialer_call_id, number, parked_by, parked_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(t)
                .bind(*dialer_call_id)
                .bind(*number)
                .bind(*parked_by)
                .bind(*at_ms)
                .execute(&mut *tx)
                .await?;
            }
            CallWrite::ParkEnded { number, outcome, picked_by, at_ms } => {
                sqlx::query(
                    "UPDATE parked_calls SET ended_at = $1, outcome = $2, picked_by = COALESCE($3, picked_by),
                        picked_at = COALESCE(picked_at, $4)
                     WHERE tenant_id = $5 AND number = $6 AND ended_at IS NULL",
                )
                .bind(*at_ms)
                .bind(*outcome)
                .bind(*picked_by)
                .bind(picked_by.map(|_| *at_ms))
                .bind(t)
                .bind(*number)
                .execute(&mut *tx)
                .await?;
            }
            CallWrite::ParkUnclaimed { number } => {
                sqlx::query(
                    "UPDATE parked_calls SET picked_by = NULL, picked_at = NULL WHERE tenant_id = $1 AND number = $2 AND ended_at IS NULL",
                )
                .bind(t)
                .bind(*number)
                .execute(&mut *tx)
                .await?;
            }
            CallWrite::Keyed { dialer_call_id, agent_user_id, save, at_ms } => {
                let Some(record) = crate::records::unsaved_record_of_call_in(&mut tx, t, *dialer_call_id).await? else {
                    tracing::info!(call = dialer_call_id, "a result was keyed for a call with no unsaved record");
                    continue;
                };
                match crate::records::save_wrapup_in(&mut tx, t, record, save, *agent_user_id, *at_ms).await {
                    // Saved by someone else in between: the agent's keys come too late.
                    Err(StoreError::NotFound) => {
                        tracing::info!(call = dialer_call_id, "a keyed result found its record saved already");
                    }
                    r => r?,
                }
            }
        }
    }
    tx.commit().await?;
    Ok(Committed::Done)
}

/// The batch's message ids, transitions and agent rows on PostgreSQL: one statement of fixed text
/// (prepared once per connection, one round trip) over three JSON arrays. A multi-row VALUES per
/// table was a statement of its own for every batch size, parsed and planned again for each commit,
/// and three round trips (bench/RESULTS.md, "Control service throughput", 2026-12-08). The
/// transitions are inserted in the batch's order: their ids follow it, and a day's transitions are
/// read back by `(at, id)`.
async fn write_batch_pg(tx: &mut AnyConnection, t: i64, now_ms: i64, w: &Batch<'_>) -> Result<()> {
    if w.applied.is_empty() && w.transitions.is_empty() && w.agents.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH applied AS (
            INSERT INTO control_applied (tenant_id, message_id, applied_at)
            SELECT $1, m, $2 FROM json_array_elements_text($3::json) AS m
         ), transitions AS (
            INSERT INTO agent_transitions (tenant_id, agent_user_id, from_state, to_state, from_reason_id,
                to_reason_id, cause, supervisor_id, call_id, at, message_id)
            SELECT $1, r.a, r.f, r.t, r.fr, r.tr, r.c, r.s, r.k, r.at, r.m
            FROM ROWS FROM (json_to_recordset($4::json)
                AS (a bigint, f text, t text, fr bigint, tr bigint, c text, s bigint, k bigint, at bigint, m text))
                WITH ORDINALITY AS r(a, f, t, fr, tr, c, s, k, at, m, n)
            ORDER BY r.n
         )
         INSERT INTO control_agents (tenant_id, agent_user_id, campaign_id, call_job_id, dialing_group_id, view,
            config, updated_at)
         SELECT $1, r.a, r.c, r.j, r.g, r.v, r.k, $2
         FROM json_to_recordset($5::json) AS r(a bigint, c bigint, j bigint, g bigint, v text, k text)
         WHERE true
         ON CONFLICT (tenant_id, agent_user_id) DO UPDATE SET campaign_id = excluded.campaign_id,
            call_job_id = excluded.call_job_id, dialing_group_id = excluded.dialing_group_id,
            view = excluded.view, config = excluded.config, updated_at = excluded.updated_at",
    )
    .bind(t)
    .bind(now_ms)
    .bind(json(w.applied)?)
    .bind(json(w.transitions)?)
    .bind(json(w.agents)?)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A bound value as JSON text (of plain numbers and strings: it cannot fail in practice).
fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Db(sqlx::Error::Encode(Box::new(e))))
}

/// The batch's message ids, transitions and agent rows on SQLite: multi-row VALUES of
/// [`ROWS_PER_INSERT`] rows (SQLite parses a statement in process, and keeps the full-size one
/// prepared).
async fn write_batch_values(tx: &mut AnyConnection, t: i64, now_ms: i64, w: &Batch<'_>) -> Result<()> {
    for chunk in w.applied.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO control_applied (tenant_id, message_id, applied_at) VALUES {}",
            placeholders(Backend::Sqlite, chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql).persistent(chunk.len() == ROWS_PER_INSERT);
        for id in chunk {
            q = q.bind(t).bind(id.as_str()).bind(now_ms);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in w.transitions.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO agent_transitions (tenant_id, agent_user_id, from_state, to_state, from_reason_id, to_reason_id,
                cause, supervisor_id, call_id, at, message_id) VALUES {}",
            placeholders(Backend::Sqlite, chunk.len(), 11)
        );
        let mut q = sqlx::query(&sql).persistent(chunk.len() == ROWS_PER_INSERT);
        for tr in chunk {
            q = q
                .bind(t)
                .bind(tr.agent_user_id)
                .bind(tr.from_state)
                .bind(tr.to_state)
                .bind(tr.from_reason_id)
                .bind(tr.to_reason_id)
                .bind(tr.cause)
                .bind(tr.supervisor_id)
                .bind(tr.dialer_call_id)
                .bind(tr.at_ms)
                .bind(tr.message_id);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in w.agents.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO control_agents (tenant_id, agent_user_id, campaign_id, call_job_id, dialing_group_id, view, config, updated_at)
             VALUES {}
             ON CONFLICT (tenant_id, agent_user_id) DO UPDATE SET campaign_id = excluded.campaign_id,
                call_job_id = excluded.call_job_id, dialing_group_id = excluded.dialing_group_id,
                view = excluded.view, config = excluded.config, updated_at = excluded.updated_at",
            placeholders(Backend::Sqlite, chunk.len(), 8)
        );
        let mut q = sqlx::query(&sql).persistent(chunk.len() == ROWS_PER_INSERT);
        for a in chunk {
            q = q
                .bind(t)
                .bind(a.agent_user_id)
                .bind(a.campaign_id)
                .bind(a.call_job_id)
                .bind(a.dialing_group_id)
                .bind(a.view.as_str())
                .bind(a.config.as_str())
                .bind(now_ms);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// The tenant's agents as committed, by user id (at most `limit`).
pub async fn agents(db: &Db, tenant_id: i64, limit: i64) -> Result<Vec<AgentRow>> {
    let rows = sqlx::query(
        "SELECT agent_user_id, campaign_id, call_job_id, dialing_group_id, view, config FROM control_agents
         WHERE tenant_id = $1 ORDER BY agent_user_id LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AgentRow {
                agent_user_id: r.try_get("agent_user_id")?,
                campaign_id: r.try_get("campaign_id")?,
                call_job_id: r.try_get("call_job_id")?,
                dialing_group_id: r.try_get("dialing_group_id")?,
                view: r.try_get("view")?,
                config: r.try_get("config")?,
            })
        })
        .collect()
}

/// A campaign's answered calls in one time bucket, by answer time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketCounts {
    pub campaign_id: i64,
    /// The bucket's start over `bucket_ms` (answered_at / bucket_ms).
    pub bucket: i64,
    pub answered: i64,
    pub connected: i64,
    pub abandoned: i64,
}

/// The wallboard's rolling counts from the call records: buckets of `bucket_ms` since `since_ms`.
pub async fn answered_by_bucket(db: &Db, tenant_id: i64, bucket_ms: i64, since_ms: i64) -> Result<Vec<BucketCounts>> {
    let rows = sqlx::query(
        "SELECT campaign_id, answered_at / $1 AS bucket, COUNT(*) AS answered,
            SUM(CASE WHEN bridged_at IS NOT NULL THEN 1 ELSE 0 END) AS connected,
            SUM(CASE WHEN bridged_at IS NULL AND ended_at IS NOT NULL THEN 1 ELSE 0 END) AS abandoned
         FROM call_records WHERE tenant_id = $2 AND answered_at >= $3 AND campaign_id IS NOT NULL
         GROUP BY 1, 2",
    )
    .bind(bucket_ms)
    .bind(tenant_id)
    .bind(since_ms)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n = |col: &str| -> Result<i64> { Ok(r.try_get::<Option<i64>, _>(col)?.unwrap_or(0)) };
        let Some(campaign_id) = r.try_get::<Option<i64>, _>("campaign_id")? else { continue };
        out.push(BucketCounts {
            campaign_id,
            bucket: n("bucket")?,
            answered: n("answered")?,
            connected: n("connected")?,
            abandoned: n("abandoned")?,
        });
    }
    Ok(out)
}

/// `(key, n)` rows of a `SELECT k, COUNT(*) AS n ... GROUP BY k` over one tenant since a time.
async fn counts_since(db: &Db, sql: &str, tenant_id: i64, since_ms: i64) -> Result<Vec<(i64, i64)>> {
    let rows = sqlx::query(sql).bind(tenant_id).bind(since_ms).fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(k) = r.try_get::<Option<i64>, _>("k")? {
            out.push((k, r.try_get::<Option<i64>, _>("n")?.unwrap_or(0)));
        }
    }
    Ok(out)
}

/// Answered calls ended since `since_ms`, per campaign: `(campaign_id, calls)`.
pub async fn calls_since(db: &Db, tenant_id: i64, since_ms: i64) -> Result<Vec<(i64, i64)>> {
    let sql = "SELECT campaign_id AS k, COUNT(*) AS n FROM call_records WHERE tenant_id = $1 AND ended_at >= $2
        AND bridged_at IS NOT NULL AND campaign_id IS NOT NULL GROUP BY campaign_id";
    counts_since(db, sql, tenant_id, since_ms).await
}

/// Conversations (bridged calls that ended) since `since_ms`, per agent: `(agent_user_id, calls)`.
pub async fn agent_calls_since(db: &Db, tenant_id: i64, since_ms: i64) -> Result<Vec<(i64, i64)>> {
    let sql = "SELECT agent_user_id AS k, COUNT(*) AS n FROM call_records WHERE tenant_id = $1 AND ended_at >= $2
        AND bridged_at IS NOT NULL AND agent_user_id IS NOT NULL GROUP BY agent_user_id";
    counts_since(db, sql, tenant_id, since_ms).await
}

/// The tenant's time zone name, `None` for no such tenant.
pub async fn time_zone(db: &Db, tenant_id: i64) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT time_zone FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(&db.pool)
        .await?)
}

/// The newest applied message ids, oldest first (the dedup window of a restarted service).
pub async fn applied(db: &Db, tenant_id: i64, limit: i64) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT message_id FROM control_applied WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2")
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    let mut out = rows.iter().map(|r| r.try_get::<String, _>("message_id")).collect::<Result<Vec<_>, _>>()?;
    out.reverse();
    Ok(out)
}

/// A customer answered and not yet bridged nor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub dialer_call_id: i64,
    pub campaign_id: Option<i64>,
    pub answered_at: Option<i64>,
}

/// The customers waiting for an agent, oldest first.
pub async fn waiting(db: &Db, tenant_id: i64, limit: i64) -> Result<Vec<Waiting>> {
    let rows = sqlx::query(
        "SELECT dialer_call_id, campaign_id, answered_at FROM call_records WHERE tenant_id = $1
            AND dialer_call_id IS NOT NULL AND answered_at IS NOT NULL AND bridged_at IS NULL AND ended_at IS NULL
         ORDER BY answered_at LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Waiting {
                dialer_call_id: r.try_get("dialer_call_id")?,
                campaign_id: r.try_get("campaign_id")?,
                answered_at: r.try_get("answered_at")?,
            })
        })
        .collect()
}

/// An open park (パーク保留).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenPark {
    pub number: i64,
    pub dialer_call_id: i64,
    pub parked_by: i64,
    pub parked_at: i64,
    /// The call's campaign (where a park nobody takes goes back to when its agent is busy).
    pub campaign_id: Option<i64>,
}

/// The open parks, by number (at most 200).
pub async fn open_parks(db: &Db, tenant_id: i64) -> Result<Vec<OpenPark>> {
    let rows = sqlx::query(
        "SELECT CAST(p.number AS BIGINT) AS number, p.dialer_call_id, p.parked_by, p.parked_at, c.campaign_id
         FROM parked_calls p
         LEFT JOIN call_records c ON c.tenant_id = p.tenant_id AND c.dialer_call_id = p.dialer_call_id
         WHERE p.tenant_id = $1 AND p.ended_at IS NULL ORDER BY p.number LIMIT 200",
    )
    .bind(tenant_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenPark {
                number: r.try_get("number")?,
                dialer_call_id: r.try_get("dialer_call_id")?,
                parked_by: r.try_get("parked_by")?,
                parked_at: r.try_get("parked_at")?,
                campaign_id: r.try_get("campaign_id")?,
            })
        })
        .collect()
}

/// The lead of every customer call not ended yet, newest first: `(dialer_call_id, lead_id)`.
pub async fn open_call_leads(db: &Db, tenant_id: i64, limit: i64) -> Result<Vec<(i64, i64)>> {
    let rows = sqlx::query(
        "SELECT dialer_call_id, lead_id FROM call_records WHERE tenant_id = $1
            AND dialer_call_id IS NOT NULL AND lead_id IS NOT NULL AND ended_at IS NULL
         ORDER BY id DESC LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("dialer_call_id")?, r.try_get("lead_id")?))).collect()
}

/// The ids of the tenant's pause reasons (at most 10,000).
pub async fn pause_reason_ids(db: &Db, tenant_id: i64) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT id FROM pause_reasons WHERE tenant_id = $1 LIMIT 10000")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Deletes applied ids older than `before_ms` (they can no longer be redelivered: the entries were
/// acked long ago). Keeps the table bounded.
pub async fn prune_applied(db: &Db, tenant_id: i64, before_ms: i64) -> Result<u64> {
    let r = sqlx::query("DELETE FROM control_applied WHERE tenant_id = $1 AND applied_at < $2")
        .bind(tenant_id)
        .bind(before_ms)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected())
}
