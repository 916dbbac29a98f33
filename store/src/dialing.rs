//! What the dialer engine reads and writes: running call jobs with their campaign's settings, the
//! do-not-call check, the call records of the calls it places and their results, the phones' SIP
//! accounts and registrations.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use crate::leads::{band, Candidate, JobFilter, PhoneType};
use crate::{Db, Result, StoreError};

/// A running call job with the settings of its campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    pub tenant_id: i64,
    pub time_zone: String,
    pub job_id: i64,
    pub campaign_id: i64,
    pub dialing_group_id: i64,
    pub started_at: Option<i64>,
    pub filter: JobFilter,
    /// The job's caller ID, else the campaign's; `None` with withholding (184).
    pub caller_id: Option<String>,
    pub mode: String,
    pub dial_ratio: f64,
    pub max_channels: i64,
    pub ring_timeout_s: i64,
    pub agent_wait_timeout_s: i64,
    pub waiting_audio: Option<String>,
    pub dtmf_result_entry: bool,
    pub business_start: String,
    pub business_end: String,
    pub abandon_target_pct: f64,
    pub campaign_enabled: bool,
    /// The tenant keeps Japan's national holidays closed (休業日).
    pub national_holidays: bool,
    /// The tenant's own closed dates (`YYYY-MM-DD`) from yesterday to a week ahead, as read.
    pub closed_days: Vec<String>,
}

/// Every running call job (of every tenant), oldest first.
pub async fn running_jobs(db: &Db) -> Result<Vec<RunningJob>> {
    running_jobs_where(db, None).await
}

/// The tenant's running call jobs, oldest first.
pub async fn running_jobs_of(db: &Db, tenant_id: i64) -> Result<Vec<RunningJob>> {
    running_jobs_where(db, Some(tenant_id)).await
}

async fn running_jobs_where(db: &Db, tenant_id: Option<i64>) -> Result<Vec<RunningJob>> {
    let sql = format!(
        "SELECT j.id, j.tenant_id, j.campaign_id, j.dialing_group_id, j.started_at, j.caller_id AS job_caller_id,
                j.phone_type, j.attempts_min, j.attempts_max, j.last_attempt_from, j.last_attempt_to,
                j.last_attempt_band_from, j.last_attempt_band_to,
                c.caller_id AS campaign_caller_id, c.withhold_caller_id, c.mode, c.dial_ratio, c.max_channels,
                c.ring_timeout_s, c.agent_wait_timeout_s, c.waiting_audio, c.dtmf_result_entry,
                c.business_start, c.business_end, c.abandon_target_pct, c.enabled, t.time_zone, t.closed_on_national_holidays
         FROM call_jobs j JOIN campaigns c ON c.id = j.campaign_id AND c.tenant_id = j.tenant_id
         JOIN tenants t ON t.id = j.tenant_id
         WHERE j.status = 'running'{} ORDER BY j.started_at, j.id",
        if tenant_id.is_some() { " AND j.tenant_id = $1" } else { "" }
    );
    let mut q = sqlx::query(&sql);
    if let Some(t) = tenant_id {
        q = q.bind(t);
    }
    let rows = q.fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut closed: HashMap<i64, Vec<String>> = HashMap::new();
    for r in rows {
        let tenant: i64 = r.try_get("tenant_id")?;
        let zone: String = r.try_get("time_zone")?;
        if let std::collections::hash_map::Entry::Vacant(e) = closed.entry(tenant) {
            let today = crate::tenancy::local_date(
                crate::tenancy::parse_tz(&zone).unwrap_or(chrono_tz::Asia::Tokyo),
                crate::now_ms(),
            );
            let (from, to) = (today - chrono::Days::new(1), today + chrono::Days::new(8));
            e.insert(crate::tenancy::closing(db, tenant, from, to).await?.1);
        }
        let withhold = r.try_get::<i64, _>("withhold_caller_id")? != 0;
        let job_cid: Option<String> = r.try_get("job_caller_id")?;
        let camp_cid: Option<String> = r.try_get("campaign_caller_id")?;
        let pt: String = r.try_get("phone_type")?;
        let campaign_id: i64 = r.try_get("campaign_id")?;
        out.push(RunningJob {
            tenant_id: r.try_get("tenant_id")?,
            time_zone: r.try_get("time_zone")?,
            job_id: r.try_get("id")?,
            campaign_id,
            dialing_group_id: r.try_get("dialing_group_id")?,
            started_at: r.try_get("started_at")?,
            filter: JobFilter {
                campaign_id,
                phone_type: PhoneType::filter(&pt),
                attempts_min: r.try_get("attempts_min")?,
                attempts_max: r.try_get("attempts_max")?,
                last_attempt_from: r.try_get("last_attempt_from")?,
                last_attempt_to: r.try_get("last_attempt_to")?,
                last_attempt_band: band(r.try_get("last_attempt_band_from")?, r.try_get("last_attempt_band_to")?),
                not_attempted_since: None,
                not_abandoned_since: None,
                period_day: None,
                preview: None,
            },
            caller_id: if withhold { None } else { job_cid.or(camp_cid) },
            mode: r.try_get("mode")?,
            dial_ratio: r.try_get("dial_ratio")?,
            max_channels: r.try_get("max_channels")?,
            ring_timeout_s: r.try_get("ring_timeout_s")?,
            agent_wait_timeout_s: r.try_get("agent_wait_timeout_s")?,
            waiting_audio: r.try_get("waiting_audio")?,
            dtmf_result_entry: r.try_get::<i64, _>("dtmf_result_entry")? != 0,
            business_start: r.try_get("business_start")?,
            business_end: r.try_get("business_end")?,
            abandon_target_pct: r.try_get("abandon_target_pct")?,
            campaign_enabled: r.try_get::<i64, _>("enabled")? != 0,
            national_holidays: r.try_get::<i64, _>("closed_on_national_holidays")? != 0,
            closed_days: closed.get(&tenant).cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The result numbers (結果) of each of the tenant's campaigns, for DTMF result entry.
pub async fn result_numbers(db: &Db, tenant_id: i64) -> Result<HashMap<i64, Vec<i64>>> {
    let rows =
        sqlx::query("SELECT campaign_id, number FROM result_codes WHERE tenant_id = $1 ORDER BY campaign_id, number")
            .bind(tenant_id)
            .fetch_all(&db.pool)
            .await?;
    let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
    for r in rows {
        out.entry(r.try_get("campaign_id")?).or_default().push(r.try_get("number")?);
    }
    Ok(out)
}

/// The channel limit (最大チャンネル) of each of the tenant's caller ID numbers.
pub async fn caller_id_limits(db: &Db, tenant_id: i64) -> Result<HashMap<String, i64>> {
    let rows = sqlx::query("SELECT number, max_channels FROM caller_ids WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    rows.into_iter().map(|r| Ok((r.try_get("number")?, r.try_get("max_channels")?))).collect()
}

/// A caller ID (発番号) an agent may choose for a manual dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdChoice {
    pub id: i64,
    pub number: String,
    pub label: String,
}

/// The tenant's caller IDs, by number (at most 1000: the agent's choice and the dialer's lookup).
pub async fn caller_id_choices(db: &Db, tenant_id: i64) -> Result<Vec<CallerIdChoice>> {
    let rows =
        sqlx::query("SELECT id, number, label FROM caller_ids WHERE tenant_id = $1 ORDER BY number, id LIMIT 1000")
            .bind(tenant_id)
            .fetch_all(&db.pool)
            .await?;
    rows.into_iter()
        .map(|r| Ok(CallerIdChoice { id: r.try_get("id")?, number: r.try_get("number")?, label: r.try_get("label")? }))
        .collect()
}

/// The caller ID a call job's dials go out with unless the agent chooses one: the job's, else its
/// campaign's; `None` when the campaign withholds it (184) or has none.
pub async fn job_caller_id(db: &Db, tenant_id: i64, job_id: i64) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT j.caller_id AS job_cid, c.caller_id AS campaign_cid, c.withhold_caller_id
         FROM call_jobs j JOIN campaigns c ON c.id = j.campaign_id AND c.tenant_id = j.tenant_id
         WHERE j.tenant_id = $1 AND j.id = $2",
    )
    .bind(tenant_id)
    .bind(job_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    if r.try_get::<i64, _>("withhold_caller_id")? != 0 {
        return Ok(None);
    }
    let job: Option<String> = r.try_get("job_cid")?;
    Ok(job.or(r.try_get("campaign_cid")?))
}

/// Which of `numbers` are on the tenant's do-not-call list (発信規制).
pub async fn dnc_hits(db: &Db, tenant_id: i64, numbers: &[String]) -> Result<HashSet<String>> {
    let mut hits = HashSet::new();
    for chunk in numbers.chunks(500) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!("SELECT number FROM dnc_numbers WHERE tenant_id = $1 AND number IN ({})", marks.join(", "));
        let mut q = sqlx::query(&sql).bind(tenant_id);
        for n in chunk {
            q = q.bind(n);
        }
        for r in q.fetch_all(&db.pool).await? {
            hits.insert(r.try_get("number")?);
        }
    }
    Ok(hits)
}

/// A call the dialer is about to place.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub campaign_id: i64,
    pub job_id: i64,
    pub lead: Candidate,
    pub caller_id: Option<String>,
}

/// A lead the dialer decided not to call, with the system result that says why.
#[derive(Debug, Clone)]
pub struct NotDialled {
    pub campaign_id: i64,
    pub job_id: i64,
    pub lead: Candidate,
    pub caller_id: Option<String>,
    /// `restricted` (do-not-call) or `channel_limit`.
    pub result: &'static str,
}

/// The lease a dialer host writes one campaign's calls under (see [`crate::leases`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub campaign_id: i64,
    pub holder: String,
    pub token: i64,
}

/// In one transaction: a call record per new call (result `pending`; its id is the dialer's call
/// id), the lead claimed (its attempt counted and its time set), a due recall it answers marked
/// done; and a finished call record for every lead not dialled (its result set on the lead, no
/// attempt counted). Returns, for each of `calls` in order, its call id, or `None` when it is not
/// to be dialled: its lead was claimed by another dial since it was picked (a lead in a call, or
/// attempted at or after `now_ms`), or (with a fence) a channel limit is reached across hosts.
///
/// With a `fence` (a dialer host on leases), nothing is written unless the host still holds the
/// campaign's lease with that token ([`StoreError::Conflict`]); the lease row stays locked to the
/// commit, the records carry the token, and the campaign's and each caller ID's channel limits are
/// counted over every host's pending calls (the caller ID's row locked, so two hosts never both
/// take its last channel).
pub async fn begin_calls(
    db: &Db,
    tenant_id: i64,
    instance: &str,
    now_ms: i64,
    calls: &[NewCall],
    not_dialled: &[NotDialled],
    fence: Option<&Fence>,
) -> Result<Vec<Option<i64>>> {
    // The tenant-local time of these calls, kept on each lead for 前回発信時間帯.
    let zone: String = sqlx::query("SELECT time_zone FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?
        .try_get("time_zone")?;
    let local_time = crate::tenancy::local_hhmm(&zone, now_ms);
    let mut tx = db.begin_write().await?;
    // Free channels across hosts: the campaign's, then each caller ID's (locked in order).
    let mut campaign_free: Option<i64> = None;
    let mut caller_free: HashMap<String, i64> = HashMap::new();
    if let Some(f) = fence {
        let kind = crate::leases::Kind::Dialer;
        if !crate::leases::lock_held(&mut tx, kind, tenant_id, f.campaign_id, &f.holder, f.token).await? {
            drop(tx);
            return Err(StoreError::Conflict(format!("campaign {} is no longer held by {}", f.campaign_id, f.holder)));
        }
        let row = sqlx::query(
            "SELECT c.max_channels, (SELECT COUNT(*) FROM call_records r
                 WHERE r.tenant_id = c.tenant_id AND r.campaign_id = c.id AND r.result = 'pending') AS busy
             FROM campaigns c WHERE c.id = $1 AND c.tenant_id = $2",
        )
        .bind(f.campaign_id)
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = row {
            let (max, busy): (i64, i64) = (r.try_get("max_channels")?, r.try_get("busy")?);
            campaign_free = Some((max - busy).max(0));
        }
        let mut numbers: Vec<&String> = calls.iter().filter_map(|c| c.caller_id.as_ref()).collect();
        numbers.sort();
        numbers.dedup();
        for n in numbers {
            sqlx::query("UPDATE caller_ids SET max_channels = max_channels WHERE tenant_id = $1 AND number = $2")
                .bind(tenant_id)
                .bind(n)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(
                "SELECT c.max_channels, (SELECT COUNT(*) FROM call_records r
                     WHERE r.tenant_id = c.tenant_id AND r.caller_id = c.number AND r.result = 'pending') AS busy
                 FROM caller_ids c WHERE c.tenant_id = $1 AND c.number = $2",
            )
            .bind(tenant_id)
            .bind(n)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = row {
                let (max, busy): (i64, i64) = (r.try_get("max_channels")?, r.try_get("busy")?);
                caller_free.insert(n.clone(), (max - busy).max(0));
            }
        }
    }
    let mut ids = Vec::with_capacity(calls.len());
    for c in calls {
        if campaign_free == Some(0) || c.caller_id.as_ref().and_then(|n| caller_free.get(n)) == Some(&0) {
            ids.push(None);
            continue;
        }
        // The claim: only a lead in no call and not attempted since it was picked.
        let claimed = sqlx::query(
            "UPDATE leads SET attempts = attempts + 1, last_attempt_at = $1, last_result = 'pending',
                preview_user_id = NULL, preview_until = NULL, last_attempt_time = $4
             WHERE id = $2 AND tenant_id = $3
               AND COALESCE(last_result, '') <> 'pending' AND COALESCE(last_attempt_at, -1) < $1",
        )
        .bind(now_ms)
        .bind(c.lead.lead_id)
        .bind(tenant_id)
        .bind(&local_time)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            ids.push(None);
            continue;
        }
        let r = sqlx::query(
            "INSERT INTO call_records (tenant_id, campaign_id, call_job_id, lead_id, tel, caller_id, direction, started_at,
                result, dialer_instance, list_id, lease_token)
             VALUES ($1, $2, $3, $4, $5, $6, 'outbound', $7, 'pending', $8,
                (SELECT list_id FROM leads WHERE id = $4 AND tenant_id = $1), $9) RETURNING id",
        )
        .bind(tenant_id)
        .bind(c.campaign_id)
        .bind(c.job_id)
        .bind(c.lead.lead_id)
        .bind(&c.lead.tel)
        .bind(&c.caller_id)
        .bind(now_ms)
        .bind(instance)
        .bind(fence.map(|f| f.token))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = r.try_get("id")?;
        sqlx::query("UPDATE call_records SET dialer_call_id = id WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if let Some(recall) = c.lead.recall_id {
            sqlx::query("UPDATE recalls SET status = 'done' WHERE id = $1 AND tenant_id = $2")
                .bind(recall)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(f) = campaign_free.as_mut() {
            *f -= 1;
        }
        if let Some(f) = c.caller_id.as_ref().and_then(|n| caller_free.get_mut(n)) {
            *f -= 1;
        }
        ids.push(Some(id));
    }
    for n in not_dialled {
        sqlx::query(
            "INSERT INTO call_records (tenant_id, campaign_id, call_job_id, lead_id, tel, caller_id, direction, started_at,
                ended_at, result, dialer_instance, list_id)
             VALUES ($1, $2, $3, $4, $5, $6, 'outbound', $7, $7, $8, $9,
                (SELECT list_id FROM leads WHERE id = $4 AND tenant_id = $1))",
        )
        .bind(tenant_id)
        .bind(n.campaign_id)
        .bind(n.job_id)
        .bind(n.lead.lead_id)
        .bind(&n.lead.tel)
        .bind(&n.caller_id)
        .bind(now_ms)
        .bind(n.result)
        .bind(instance)
        .execute(&mut *tx)
        .await?;
        // No attempt: nothing was dialled. The time keeps the job's run from picking it again.
        sqlx::query(
            "UPDATE leads SET last_attempt_at = $1, last_result = $2, preview_user_id = NULL, preview_until = NULL
             WHERE id = $3 AND tenant_id = $4",
        )
        .bind(now_ms)
        .bind(n.result)
        .bind(n.lead.lead_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    }
    let mut per_job: HashMap<i64, i64> = HashMap::new();
    for (c, id) in calls.iter().zip(&ids) {
        if id.is_some() {
            *per_job.entry(c.job_id).or_default() += 1;
        }
    }
    for (job, n) in per_job {
        sqlx::query("UPDATE call_jobs SET dialed = dialed + $1 WHERE id = $2 AND tenant_id = $3")
            .bind(n)
            .bind(job)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// The end of a placed call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallResult {
    pub call_id: i64,
    pub result: &'static str,
    pub sip_status: i64,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
}

/// Writes call results: the call record's line columns (the dialer is their one writer: result,
/// SIP status, answer and end) and the lead's last result (unless a saved wrap-up record set it).
/// One transaction for the batch; a call record that does not exist is [`StoreError::NotFound`]
/// and nothing of the batch is written.
pub async fn end_calls(db: &Db, tenant_id: i64, results: &[CallResult]) -> Result<()> {
    let refused = write_results(db, tenant_id, results, None).await?;
    if refused.is_empty() {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// [`end_calls`] for a dialer host on leases (`holder`): a result is written only while the host
/// still holds its call's campaign with the token the call was placed under, and only over a
/// pending record; the lease rows the host holds in the tenant stay locked to the commit. Returns
/// the calls whose results were refused (their campaign was taken: the new holder gave them their
/// result).
pub async fn end_calls_fenced(db: &Db, tenant_id: i64, results: &[CallResult], holder: &str) -> Result<Vec<i64>> {
    write_results(db, tenant_id, results, Some(holder)).await
}

async fn write_results(db: &Db, tenant_id: i64, results: &[CallResult], holder: Option<&str>) -> Result<Vec<i64>> {
    let mut tx = db.begin_write().await?;
    if let Some(h) = holder {
        sqlx::query("UPDATE leases SET token = token WHERE kind = 'dialer' AND tenant_id = $1 AND holder = $2")
            .bind(tenant_id)
            .bind(h)
            .execute(&mut *tx)
            .await?;
    }
    let fenced = " AND result = 'pending' AND EXISTS (SELECT 1 FROM leases l WHERE l.kind = 'dialer'
        AND l.tenant_id = call_records.tenant_id AND l.resource_id = call_records.campaign_id
        AND l.holder = $7 AND l.token = call_records.lease_token)";
    let sql = format!(
        "UPDATE call_records SET result = $1, sip_status = $2, ended_at = $3, answered_at = COALESCE(answered_at, $4)
         WHERE tenant_id = $5 AND dialer_call_id = $6{}",
        if holder.is_some() { fenced } else { "" }
    );
    let mut refused = Vec::new();
    for r in results {
        let mut q = sqlx::query(&sql)
            .bind(r.result)
            .bind(r.sip_status)
            .bind(r.ended_at)
            .bind(r.answered_at)
            .bind(tenant_id)
            .bind(r.call_id);
        if let Some(h) = holder {
            q = q.bind(h);
        }
        let done = q.execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            if holder.is_none() {
                return Err(StoreError::NotFound);
            }
            refused.push(r.call_id);
            continue;
        }
        sqlx::query(
            "UPDATE leads SET last_result = $1 WHERE tenant_id = $2 AND last_result = 'pending'
               AND id = (SELECT lead_id FROM call_records WHERE tenant_id = $2 AND dialer_call_id = $3)",
        )
        .bind(r.result)
        .bind(tenant_id)
        .bind(r.call_id)
        .execute(&mut *tx)
        .await?;
        if NOT_REACHED.contains(&r.result) {
            next_number(&mut tx, tenant_id, r.call_id).await?;
        }
    }
    tx.commit().await?;
    Ok(refused)
}

/// Results after which a campaign that says so dials the lead's next number: nobody answered
/// (制限時間), the line was busy (ビジー), the number is not in service (現アナ).
const NOT_REACHED: &[&str] = &["timeout", "busy", "not_in_service"];

/// Moves the lead of a call nobody answered to its next number (the one added after the number
/// dialled; after the last, the main number again), when its campaign moves on after no answer.
async fn next_number(tx: &mut sqlx::AnyConnection, tenant_id: i64, call_id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE leads SET next_number_id = (SELECT MIN(n.id) FROM lead_numbers n
            WHERE n.tenant_id = leads.tenant_id AND n.lead_id = leads.id AND n.id > COALESCE(leads.next_number_id, 0))
         WHERE tenant_id = $1
           AND id = (SELECT r.lead_id FROM call_records r JOIN campaigns c ON c.id = r.campaign_id AND c.tenant_id = r.tenant_id
                     WHERE r.tenant_id = $1 AND r.dialer_call_id = $2 AND c.next_number_on_no_answer = 1)",
    )
    .bind(tenant_id)
    .bind(call_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The calls of a campaign placed under another lease than `token` (an earlier holder's) and still
/// pending: the new holder gives each `error` and an end time, their leads too, as the orphans of a
/// restarted host. Returns their call ids.
pub async fn fail_campaign_orphans(
    db: &Db,
    tenant_id: i64,
    campaign_id: i64,
    token: i64,
    now_ms: i64,
) -> Result<Vec<i64>> {
    let rows = sqlx::query(
        "SELECT dialer_call_id FROM call_records
         WHERE tenant_id = $1 AND campaign_id = $2 AND result = 'pending' AND dialer_call_id IS NOT NULL
           AND (lease_token IS NULL OR lease_token <> $3)",
    )
    .bind(tenant_id)
    .bind(campaign_id)
    .bind(token)
    .fetch_all(&db.pool)
    .await?;
    let mut calls = Vec::with_capacity(rows.len());
    for r in rows {
        calls.push(r.try_get::<i64, _>("dialer_call_id")?);
    }
    let results: Vec<CallResult> = calls
        .iter()
        .map(|c| CallResult { call_id: *c, result: "error", sip_status: 0, answered_at: None, ended_at: now_ms })
        .collect();
    if !results.is_empty() {
        end_calls(db, tenant_id, &results).await?;
    }
    Ok(calls)
}

/// Calls whose records were written but that the dialer did not place, because it was stopping:
/// `(call id, the recall it was to answer)`. Each gets `stopped` (停止) and an end time, its lead's
/// attempt is taken back (the carrier never saw it) and its recall is open again. One transaction.
pub async fn not_dialled_at_stop(db: &Db, tenant_id: i64, calls: &[(i64, Option<i64>)], now_ms: i64) -> Result<()> {
    let mut tx = db.begin_write().await?;
    for (call, recall) in calls {
        sqlx::query(
            "UPDATE leads SET attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, last_result = 'stopped'
             WHERE tenant_id = $1 AND last_result = 'pending'
               AND id = (SELECT lead_id FROM call_records WHERE tenant_id = $1 AND dialer_call_id = $2 AND result = 'pending')",
        )
        .bind(tenant_id)
        .bind(call)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE call_records SET result = 'stopped', sip_status = 0, ended_at = $1
             WHERE tenant_id = $2 AND dialer_call_id = $3 AND result = 'pending'",
        )
        .bind(now_ms)
        .bind(tenant_id)
        .bind(call)
        .execute(&mut *tx)
        .await?;
        if let Some(recall) = recall {
            sqlx::query("UPDATE recalls SET status = 'open' WHERE id = $1 AND tenant_id = $2 AND status = 'done'")
                .bind(recall)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Calls a dialer instance placed that have no result (the instance died with them): each gets
/// `error` and an end time; their leads too. Returns (tenant, call id) of each.
pub async fn fail_orphaned_calls(db: &Db, instance_prefix: &str, now_ms: i64) -> Result<Vec<(i64, i64)>> {
    let rows = sqlx::query(
        "SELECT tenant_id, dialer_call_id FROM call_records
         WHERE result = 'pending' AND ended_at IS NULL AND dialer_instance LIKE $1 AND dialer_call_id IS NOT NULL",
    )
    .bind(format!("{instance_prefix}%"))
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((r.try_get("tenant_id")?, r.try_get("dialer_call_id")?));
    }
    let mut by_tenant: HashMap<i64, Vec<CallResult>> = HashMap::new();
    for (t, c) in &out {
        by_tenant.entry(*t).or_default().push(CallResult {
            call_id: *c,
            result: "error",
            sip_status: 0,
            answered_at: None,
            ended_at: now_ms,
        });
    }
    for (t, results) in by_tenant {
        end_calls(db, t, &results).await?;
    }
    Ok(out)
}

/// Ends a job's run: `finished` (nothing left to dial) or `stopped` (business hours ended).
pub async fn end_job(db: &Db, tenant_id: i64, job_id: i64, status: &str, now_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE call_jobs SET status = $1, stopped_at = $2,
                finished_at = CASE WHEN $1 = 'finished' THEN $2 ELSE finished_at END
         WHERE id = $3 AND tenant_id = $4 AND status = 'running'",
    )
    .bind(status)
    .bind(now_ms)
    .bind(job_id)
    .bind(tenant_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The digest challenges a phone account gets (`phones.digest_algorithms`). MD5 alone by default:
/// many phones give up on any non-MD5 challenge, so several are offered only where the account
/// says the phone copes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DigestAlgorithms {
    #[default]
    Md5,
    Sha256,
    /// SHA-256 first, then MD5 (RFC 8760: the preferred first).
    Both,
}

impl DigestAlgorithms {
    pub const ALL: [&'static str; 3] = ["md5", "sha256", "both"];

    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithms::Md5 => "md5",
            DigestAlgorithms::Sha256 => "sha256",
            DigestAlgorithms::Both => "both",
        }
    }

    /// The column's value; an unknown one reads as the default (MD5).
    pub fn parse(s: &str) -> DigestAlgorithms {
        match s {
            "sha256" => DigestAlgorithms::Sha256,
            "both" => DigestAlgorithms::Both,
            _ => DigestAlgorithms::Md5,
        }
    }
}

/// A phone's SIP account, for REGISTER digest checks on the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneAccount {
    pub tenant_id: i64,
    pub phone_id: i64,
    pub user_id: Option<i64>,
    pub realm: String,
    pub username: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub digest: DigestAlgorithms,
}

/// Every phone account (of every tenant).
pub async fn phone_accounts(db: &Db) -> Result<Vec<PhoneAccount>> {
    phone_accounts_where(db, None).await
}

/// The tenant's phone accounts.
pub async fn phone_accounts_of(db: &Db, tenant_id: i64) -> Result<Vec<PhoneAccount>> {
    phone_accounts_where(db, Some(tenant_id)).await
}

async fn phone_accounts_where(db: &Db, tenant_id: Option<i64>) -> Result<Vec<PhoneAccount>> {
    let sql = format!(
        "SELECT id, tenant_id, user_id, realm, sip_username, ha1_md5, ha1_sha256, digest_algorithms FROM phones{} ORDER BY id",
        if tenant_id.is_some() { " WHERE tenant_id = $1" } else { "" }
    );
    let mut q = sqlx::query(&sql);
    if let Some(t) = tenant_id {
        q = q.bind(t);
    }
    phone_rows(q.fetch_all(&db.pool).await?)
}

fn phone_rows(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<PhoneAccount>> {
    rows.into_iter()
        .map(|r| {
            Ok(PhoneAccount {
                tenant_id: r.try_get("tenant_id")?,
                phone_id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                realm: r.try_get("realm")?,
                username: r.try_get("sip_username")?,
                ha1_md5: r.try_get("ha1_md5")?,
                ha1_sha256: r.try_get("ha1_sha256")?,
                digest: DigestAlgorithms::parse(&r.try_get::<String, _>("digest_algorithms")?),
            })
        })
        .collect()
}

/// Where a phone is registered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registration {
    pub tenant_id: i64,
    pub phone_id: i64,
    pub user_id: Option<i64>,
    pub contact: String,
    pub source: String,
    pub expires_at: i64,
}

/// Stores (or, with `expires_at <= now`, removes) a phone's registration.
pub async fn save_registration(db: &Db, r: &Registration, now_ms: i64) -> Result<()> {
    if r.expires_at <= now_ms {
        sqlx::query("DELETE FROM sip_registrations WHERE tenant_id = $1 AND phone_id = $2")
            .bind(r.tenant_id)
            .bind(r.phone_id)
            .execute(&db.pool)
            .await?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sip_registrations (tenant_id, phone_id, user_id, contact, source, expires_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, phone_id) DO UPDATE SET user_id = excluded.user_id, contact = excluded.contact,
            source = excluded.source, expires_at = excluded.expires_at, updated_at = excluded.updated_at",
    )
    .bind(r.tenant_id)
    .bind(r.phone_id)
    .bind(r.user_id)
    .bind(&r.contact)
    .bind(&r.source)
    .bind(r.expires_at)
    .bind(now_ms)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Live registrations (of every tenant).
pub async fn registrations(db: &Db, now_ms: i64) -> Result<Vec<Registration>> {
    let rows = sqlx::query(
        "SELECT tenant_id, phone_id, user_id, contact, source, expires_at FROM sip_registrations WHERE expires_at > $1",
    )
    .bind(now_ms)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Registration {
                tenant_id: r.try_get("tenant_id")?,
                phone_id: r.try_get("phone_id")?,
                user_id: r.try_get("user_id")?,
                contact: r.try_get("contact")?,
                source: r.try_get("source")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .collect()
}

/// Agents of the control service's table with their campaign (a restarted dialer learns who works
/// which campaign and their state from it).
pub async fn control_agents(db: &Db) -> Result<Vec<(i64, i64, Option<i64>, String)>> {
    let rows = sqlx::query("SELECT tenant_id, agent_user_id, campaign_id, view FROM control_agents")
        .fetch_all(&db.pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((r.try_get("tenant_id")?, r.try_get("agent_user_id")?, r.try_get("campaign_id")?, r.try_get("view")?))
        })
        .collect()
}

/// A write of the dialer that failed for good, kept for an operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub tenant_id: i64,
    /// What was written: `results`, `recording`, `registration`, `end_job`, `not_dialled`.
    pub kind: String,
    /// The write, as JSON.
    pub payload: String,
    pub error: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Keeps a write that failed for good.
pub async fn dead_letter(
    db: &Db,
    tenant_id: i64,
    kind: &str,
    payload: &str,
    error: &str,
    attempts: i64,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO dialer_dead_letters (tenant_id, kind, payload, error, attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(kind)
    .bind(payload)
    .bind(error)
    .bind(attempts)
    .bind(now_ms)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The tenant's dead letters, newest first.
pub async fn dead_letters(db: &Db, tenant_id: i64, limit: i64) -> Result<Vec<DeadLetter>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, kind, payload, error, attempts, created_at FROM dialer_dead_letters
         WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(DeadLetter {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                error: r.try_get("error")?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Ids of every tenant (at most `limit`), for roles that serve all of them.
pub async fn tenant_ids(db: &Db, limit: i64) -> Result<Vec<u64>> {
    let rows = sqlx::query("SELECT id FROM tenants ORDER BY id LIMIT $1").bind(limit).fetch_all(&db.pool).await?;
    rows.into_iter().map(|r| Ok(u64::try_from(r.try_get::<i64, _>("id")?).unwrap_or(0))).collect()
}

/// The campaigns a dialer host must hold, of every tenant: (tenant, campaign). Those with a running
/// call job, and those agents work (logged in, not offline: their nailed-up legs are kept by the
/// campaign's host, a job running or not).
pub async fn running_campaigns(db: &Db) -> Result<Vec<(i64, i64)>> {
    let rows = sqlx::query(
        "SELECT tenant_id, campaign_id FROM call_jobs WHERE status = 'running'
         UNION SELECT tenant_id, campaign_id FROM control_agents
         WHERE campaign_id IS NOT NULL AND view NOT LIKE '%\"state\":\"offline\"%'",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter().map(|r| Ok((r.try_get("tenant_id")?, r.try_get("campaign_id")?))).collect()
}
