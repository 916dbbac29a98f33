//! Rollups: the figures reports read, recounted from the facts (`call_records`, `wrapup_records`,
//! `agent_transitions`) one tenant-local day at a time, so that no report scans the facts.
//!
//! One function counts a day ([`count_day`]); the job's [`refresh`], the command's [`rebuild`] and
//! [`verify`] all go through it, so what the job keeps is by construction what a recount gives.
//! A day is the tenant's calendar day; a call belongs to the day and hour its dial started in, an
//! agent's time in a state to the hours it was spent in.
//!
//! Definitions (GLOSSARY.md, "reports"):
//! - `dials` (コール数): call records of calls placed (not `restricted` or `channel_limit`);
//! - `live`: answered by the customer; `connected` (応答呼): bridged to an agent;
//! - of the live calls never bridged, `timeouts` (制限時間) waited at least the campaign's agent
//!   wait limit (待ち呼タイムアウト: released with the message), the others are `abandoned` (破棄呼:
//!   the customer left first); the compliance ledger counts both as abandons;
//! - `result`: the saved wrap-up record's result where there is one, else the dialer's;
//! - `leads` (件数): 1 on the last call of a lead in the day, so a day's sum is the leads processed
//!   that day, each under its final result of the day;
//! - `first_calls`: the lead's first dial ever (CALLTREE's 作業数 sums them up to a day);
//! - `connects` (コネクト数): connected calls whose result is not a no-connect one (不通, FAX, 現アナ:
//!   the default statuses of `crate::results`, or a campaign code with `result_codes.connected = 0`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use futures::TryStreamExt;
use sqlx::{FromRow, Row};

use crate::tenancy::{local_date, local_midnight_ms, parse_tz};
use crate::{placeholders, Db, Result, StoreError};

/// How far back from its last run the job looks for changed facts: a writer's transaction that
/// commits later than this after the time it stamps is counted by `rebuild`, not by the job.
pub const SLACK_MS: i64 = 5 * 60_000;
/// How often the job runs (so a figure is at most this plus one recount behind its facts).
pub const REFRESH_EVERY_MS: u64 = 20_000;
/// Rows per multi-row INSERT.
const ROWS_PER_INSERT: usize = 500;
/// How far before a day's midnight an agent's last transition is looked for (an agent with none
/// in that time starts the day in no known state).
const STATE_LOOKBACK_MS: i64 = 24 * 3_600_000;
const HOUR_MS: i64 = 3_600_000;

/// The measure columns of `rollup_calls` and `rollup_agent_days`, in [`Measures`] order.
pub const MEASURES: [&str; 17] = [
    "records",
    "dials",
    "live",
    "connected",
    "abandoned",
    "timeouts",
    "answer_wait_ms",
    "answer_wait_max_ms",
    "abandon_wait_ms",
    "abandon_wait_max_ms",
    "talk_ms",
    "line_ms",
    "ring_ms",
    "leads",
    "first_calls",
    "connects",
    "reported",
];
const MAX_COLUMNS: [usize; 2] = [7, 9];

/// One row's measures, in [`MEASURES`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measures(pub [i64; 17]);

impl Measures {
    fn add(&mut self, o: &Measures) {
        for (i, v) in o.0.iter().enumerate() {
            if MAX_COLUMNS.contains(&i) {
                self.0[i] = self.0[i].max(*v);
            } else {
                self.0[i] += v;
            }
        }
    }
}

/// The key of a `rollup_calls` row (its day aside).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct CallKey {
    pub hour_at: i64,
    pub hour: i64,
    pub campaign_id: i64,
    pub group_id: i64,
    pub list_id: i64,
    pub caller_id: String,
    pub direction: String,
    pub result: String,
    pub band: i64,
}

/// The key of a `rollup_agent_days` row (its day aside).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct AgentKey {
    pub agent_user_id: i64,
    pub campaign_id: i64,
    pub group_id: i64,
    pub result: String,
}

/// The key of a `rollup_states` row (its day aside).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct StateKey {
    pub hour_at: i64,
    pub hour: i64,
    pub agent_user_id: i64,
    pub state: String,
    pub reason_id: i64,
}

/// A day's rollups, as counted or as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub calls: HashMap<CallKey, Measures>,
    pub agents: HashMap<AgentKey, Measures>,
    /// (ms, entries)
    pub states: HashMap<StateKey, (i64, i64)>,
}

/// The talk-time band of a connected call (the group statistics' 通話時間 区分).
pub fn band_of(talk_ms: i64) -> i64 {
    match talk_ms {
        t if t < 30_000 => 1,
        t if t < 60_000 => 2,
        t if t < 180_000 => 3,
        t if t < 300_000 => 4,
        t if t < 600_000 => 5,
        _ => 6,
    }
}

/// The labels of the bands, in order from band 1 (seconds, upper bound exclusive; none for the last).
pub const BAND_UPPER_S: [Option<i64>; 6] = [Some(30), Some(60), Some(180), Some(300), Some(600), None];

/// The start (Unix ms) and local hour of the tenant-local hour an instant falls in.
pub fn hour_of(tz: Tz, at_ms: i64) -> (i64, i64) {
    let utc: DateTime<Utc> = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    let local = utc.with_timezone(&tz);
    let into = i64::from(local.minute()) * 60_000 + i64::from(local.second()) * 1000 + at_ms.rem_euclid(1000);
    (at_ms - into, i64::from(local.hour()))
}

/// `[start, end)` of a tenant-local day in Unix ms.
pub fn day_bounds(tz: Tz, day: NaiveDate) -> (i64, i64) {
    (local_midnight_ms(tz, day), local_midnight_ms(tz, day.succ_opt().unwrap_or(day)))
}

async fn tenant_tz(db: &Db, tenant_id: i64) -> Result<Tz> {
    let r = sqlx::query("SELECT time_zone FROM tenants WHERE id = $1").bind(tenant_id).fetch_one(&db.pool).await?;
    let name: String = r.try_get("time_zone")?;
    parse_tz(&name).ok_or_else(|| StoreError::Config(format!("tenant {tenant_id}: unknown time zone {name:?}")))
}

struct Campaigns {
    wait_limit_ms: HashMap<i64, i64>,
    no_connect: BTreeSet<(i64, String)>,
}

async fn campaigns(db: &Db, tenant_id: i64) -> Result<Campaigns> {
    let mut wait_limit_ms = HashMap::new();
    for r in sqlx::query("SELECT id, agent_wait_timeout_s FROM campaigns WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?
    {
        wait_limit_ms.insert(r.try_get::<i64, _>("id")?, r.try_get::<i64, _>("agent_wait_timeout_s")? * 1000);
    }
    let mut no_connect = BTreeSet::new();
    for r in sqlx::query("SELECT campaign_id, number FROM result_codes WHERE tenant_id = $1 AND connected = 0")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?
    {
        no_connect.insert((r.try_get::<i64, _>("campaign_id")?, r.try_get::<i64, _>("number")?.to_string()));
    }
    Ok(Campaigns { wait_limit_ms, no_connect })
}

/// Counts one tenant-local day from the facts (calls ended by `now_ms`; states up to `now_ms`).
pub async fn count_day(db: &Db, tenant_id: i64, tz: Tz, day: NaiveDate, now_ms: i64) -> Result<DayCounts> {
    let (start, end) = day_bounds(tz, day);
    let camps = campaigns(db, tenant_id).await?;
    let mut out = DayCounts::default();
    // lead -> (started_at, id, call key, agent key) of its last call of the day
    let mut last: HashMap<i64, (i64, i64, CallKey, Option<AgentKey>)> = HashMap::new();
    // One statement streamed in order (not keyset pages: each page re-walked the day's range).
    {
        let mut rows = sqlx::query(
            "SELECT c.id, c.started_at, c.campaign_id, c.lead_id, c.agent_user_id, c.caller_id, c.direction,
                c.answered_at, c.bridged_at, c.ended_at, c.result, COALESCE(c.list_id, l.list_id) AS list_id,
                j.dialing_group_id, w.saved, w.result AS wresult, w.reported,
                CASE WHEN c.lead_id IS NOT NULL AND c.result NOT IN ('restricted', 'channel_limit') AND NOT EXISTS (
                    SELECT 1 FROM call_records p WHERE p.tenant_id = c.tenant_id AND p.lead_id = c.lead_id
                      AND p.started_at < c.started_at AND p.result NOT IN ('restricted', 'channel_limit'))
                THEN 1 ELSE 0 END AS first_call
             FROM call_records c
             LEFT JOIN call_jobs j ON j.id = c.call_job_id AND j.tenant_id = c.tenant_id
             LEFT JOIN leads l ON l.id = c.lead_id AND l.tenant_id = c.tenant_id
             LEFT JOIN wrapup_records w ON w.tenant_id = c.tenant_id AND w.call_record_id = c.id
             WHERE c.tenant_id = $1 AND c.started_at >= $2 AND c.started_at < $3 AND c.result <> 'pending'
               AND c.ended_at IS NOT NULL AND c.ended_at <= $4
             ORDER BY c.started_at, c.id",
        )
        .bind(tenant_id)
        .bind(start)
        .bind(end)
        .bind(now_ms)
        .fetch(&db.pool);
        while let Some(r) = rows.try_next().await? {
            let r = &r;
            let id: i64 = r.try_get("id")?;
            let started: i64 = r.try_get("started_at")?;
            let campaign = r.try_get::<Option<i64>, _>("campaign_id")?.unwrap_or(0);
            let answered: Option<i64> = r.try_get("answered_at")?;
            let bridged: Option<i64> = r.try_get("bridged_at")?;
            let ended: i64 = r.try_get::<Option<i64>, _>("ended_at")?.unwrap_or(started);
            let system: String = r.try_get("result")?;
            let saved = r.try_get::<Option<i64>, _>("saved")?.unwrap_or(0) == 1;
            let result = if saved {
                r.try_get::<Option<String>, _>("wresult")?.unwrap_or(system.clone())
            } else {
                system.clone()
            };
            let dialled = system != "restricted" && system != "channel_limit";
            let mut m = Measures::default();
            m.0[0] = 1;
            if dialled {
                m.0[1] = 1;
                m.0[12] = answered.unwrap_or(ended).max(started) - started;
            }
            let mut band = 0;
            if let Some(a) = answered {
                m.0[2] = 1;
                m.0[11] = (ended - a).max(0);
                match bridged {
                    Some(b) => {
                        m.0[3] = 1;
                        m.0[6] = (b - a).max(0);
                        m.0[7] = m.0[6];
                        m.0[10] = (ended - b).max(0);
                        band = band_of(m.0[10]);
                        if !camps.no_connect.contains(&(campaign, result.clone()))
                            && !crate::results::is_no_connect(&result)
                        {
                            m.0[15] = 1;
                        }
                    }
                    None => {
                        let wait = (ended - a).max(0);
                        let limit = camps.wait_limit_ms.get(&campaign).copied().unwrap_or(i64::MAX);
                        m.0[if wait >= limit { 5 } else { 4 }] = 1;
                        m.0[8] = wait;
                        m.0[9] = wait;
                    }
                }
            }
            m.0[14] = r.try_get("first_call")?;
            m.0[16] = i64::from(r.try_get::<Option<i64>, _>("reported")?.unwrap_or(0) == 1);
            let (hour_at, hour) = hour_of(tz, started);
            let key = CallKey {
                hour_at,
                hour,
                campaign_id: campaign,
                group_id: r.try_get::<Option<i64>, _>("dialing_group_id")?.unwrap_or(0),
                list_id: r.try_get::<Option<i64>, _>("list_id")?.unwrap_or(0),
                caller_id: r.try_get::<Option<String>, _>("caller_id")?.unwrap_or_default(),
                direction: r.try_get("direction")?,
                result: result.clone(),
                band,
            };
            let agent = r.try_get::<Option<i64>, _>("agent_user_id")?.map(|a| AgentKey {
                agent_user_id: a,
                campaign_id: campaign,
                group_id: key.group_id,
                result: result.clone(),
            });
            out.calls.entry(key.clone()).or_default().add(&m);
            if let Some(a) = &agent {
                out.agents.entry(a.clone()).or_default().add(&m);
            }
            if let Some(lead) = r.try_get::<Option<i64>, _>("lead_id")? {
                if dialled {
                    let newer = last.get(&lead).is_none_or(|(s, i, _, _)| (started, id) > (*s, *i));
                    if newer {
                        last.insert(lead, (started, id, key, agent));
                    }
                }
            }
        }
    }
    let mut lead_count = Measures::default();
    lead_count.0[13] = 1;
    for (_, (_, _, key, agent)) in last {
        out.calls.entry(key).or_default().add(&lead_count);
        if let Some(a) = agent {
            out.agents.entry(a).or_default().add(&lead_count);
        }
    }
    count_states(db, tenant_id, tz, start, end.min(now_ms), &mut out.states).await?;
    Ok(out)
}

/// Adds the time of `[from, to)` in a state to its local hours.
fn add_interval(
    tz: Tz,
    states: &mut HashMap<StateKey, (i64, i64)>,
    agent: i64,
    state: &str,
    reason: i64,
    mut from: i64,
    to: i64,
) {
    while from < to {
        let (hour_at, hour) = hour_of(tz, from);
        let next = (hour_at + HOUR_MS).min(to);
        let key = StateKey { hour_at, hour, agent_user_id: agent, state: state.to_owned(), reason_id: reason };
        states.entry(key).or_default().0 += next - from;
        from = next;
    }
}

/// Each agent's state at `at` (its last transition in the [`STATE_LOOKBACK_MS`] before): one
/// index probe per agent of the tenant (the agents found by skipping through the agents' index), so
/// that counting a day does not read the day before it (a large floor's day is millions of
/// transitions; bench/RESULTS.md). The probe is a join, not `IN`: PostgreSQL ran an `IN`
/// subquery's probe twice per agent.
async fn states_at(db: &Db, tenant_id: i64, at: i64) -> Result<HashMap<i64, (String, i64, i64)>> {
    let mut rows = sqlx::query(
        "WITH RECURSIVE agents(id) AS (
             SELECT MIN(agent_user_id) FROM agent_transitions WHERE tenant_id = $1
             UNION ALL
             SELECT (SELECT MIN(agent_user_id) FROM agent_transitions WHERE tenant_id = $1 AND agent_user_id > agents.id)
             FROM agents WHERE agents.id IS NOT NULL
         )
         SELECT t.agent_user_id, t.to_state, t.to_reason_id, t.at FROM (
             SELECT (SELECT x.id FROM agent_transitions x
                     WHERE x.tenant_id = $1 AND x.agent_user_id = agents.id AND x.at >= $2 AND x.at < $3
                     ORDER BY x.at DESC, x.id DESC LIMIT 1) AS last
             FROM agents WHERE agents.id IS NOT NULL) p
         JOIN agent_transitions t ON t.id = p.last",
    )
    .bind(tenant_id)
    .bind(at - STATE_LOOKBACK_MS)
    .bind(at)
    .fetch(&db.pool);
    let mut out = HashMap::new();
    while let Some(r) = rows.try_next().await? {
        let reason = r.try_get::<Option<i64>, _>("to_reason_id")?.unwrap_or(0);
        out.insert(r.try_get::<i64, _>("agent_user_id")?, (r.try_get::<String, _>("to_state")?, reason, r.try_get::<i64, _>("at")?));
    }
    Ok(out)
}

async fn count_states(
    db: &Db,
    tenant_id: i64,
    tz: Tz,
    start: i64,
    end: i64,
    states: &mut HashMap<StateKey, (i64, i64)>,
) -> Result<()> {
    if end <= start {
        return Ok(());
    }
    // Each agent's current (state, reason, since): as the day starts, then while walking the
    // day's transitions in time order, the order of the `(tenant_id, at)` index and of the rows
    // on disk (in each agent's order PostgreSQL walked the agents' index and read each row from
    // another page).
    let probe = std::time::Instant::now();
    let mut cur = states_at(db, tenant_id, start).await?;
    tracing::debug!(tenant_id, agents = cur.len(), probe_ms = probe.elapsed().as_millis() as u64, "rollups: states at the day's start");
    let close = |states: &mut HashMap<StateKey, (i64, i64)>, agent: i64, open: &(String, i64, i64), until: i64| {
        let (state, reason, since) = open;
        add_interval(tz, states, agent, state, *reason, (*since).max(start), until.min(end));
    };
    // One statement streamed in order (not keyset pages: each page re-walked the day's range).
    {
        let mut rows = sqlx::query(
            "SELECT agent_user_id, to_state, to_reason_id, at FROM agent_transitions
             WHERE tenant_id = $1 AND at >= $2 AND at < $3
             ORDER BY at, id",
        )
        .bind(tenant_id)
        .bind(start)
        .bind(end)
        .fetch(&db.pool);
        while let Some(r) = rows.try_next().await? {
            let agent: i64 = r.try_get("agent_user_id")?;
            let at: i64 = r.try_get("at")?;
            let state: String = r.try_get("to_state")?;
            let reason = r.try_get::<Option<i64>, _>("to_reason_id")?.unwrap_or(0);
            let (hour_at, hour) = hour_of(tz, at);
            let key = StateKey { hour_at, hour, agent_user_id: agent, state: state.clone(), reason_id: reason };
            states.entry(key).or_default().1 += 1;
            if let Some(before) = cur.insert(agent, (state, reason, at)) {
                close(states, agent, &before, at);
            }
        }
        for (agent, open) in &cur {
            close(states, *agent, open, end);
        }
    }
    states.retain(|_, (ms, n)| *ms > 0 || *n > 0);
    // Offline time is kept only in hours the agent was also online: an agent off for days would
    // otherwise cost a row every hour.
    let online: BTreeSet<(i64, i64)> =
        states.keys().filter(|k| k.state != "offline").map(|k| (k.agent_user_id, k.hour_at)).collect();
    states.retain(|k, _| k.state != "offline" || online.contains(&(k.agent_user_id, k.hour_at)));
    // Two sums beside the agents' hours, so that a month's report reads days, not hours:
    // each agent's day (hour -1) and every agent's hour (agent 0).
    let mut sums: HashMap<StateKey, (i64, i64)> = HashMap::new();
    for (k, (ms, n)) in states.iter() {
        let day = StateKey { hour_at: start, hour: DAY_TOTAL, agent_user_id: -k.agent_user_id, ..k.clone() };
        let all = StateKey { agent_user_id: ALL_AGENTS, ..k.clone() };
        for key in [day, all] {
            let e = sums.entry(key).or_default();
            e.0 += ms;
            e.1 += n;
        }
    }
    states.extend(sums);
    Ok(())
}

/// `rollup_states.hour` of an agent's whole-day row; its `agent_user_id` is the agent's id
/// negated; the partial index `rollup_states_day_totals` (migration 0043) holds just these rows.
pub const DAY_TOTAL: i64 = -1;
/// `rollup_states.agent_user_id` of the every-agent hour rows.
pub const ALL_AGENTS: i64 = 0;

async fn day_rows(db: &Db, table: &str, tenant_id: i64, day: &str) -> Result<Vec<sqlx::any::AnyRow>> {
    let sql = format!("SELECT * FROM {table} WHERE tenant_id = $1 AND day = $2");
    Ok(sqlx::query(&sql).bind(tenant_id).bind(day).fetch_all(&db.pool).await?)
}

/// The rollups stored for a day.
pub async fn stored_day(db: &Db, tenant_id: i64, day: NaiveDate) -> Result<DayCounts> {
    let d = day.to_string();
    let mut out = DayCounts::default();
    let measures = |r: &sqlx::any::AnyRow| -> Result<Measures> {
        let mut m = Measures::default();
        for (i, c) in MEASURES.iter().enumerate() {
            m.0[i] = r.try_get(*c)?;
        }
        Ok(m)
    };
    for r in day_rows(db, "rollup_calls", tenant_id, &d).await? {
        out.calls.insert(CallKey::from_row(&r)?, measures(&r)?);
    }
    for r in day_rows(db, "rollup_agent_days", tenant_id, &d).await? {
        out.agents.insert(AgentKey::from_row(&r)?, measures(&r)?);
    }
    for r in day_rows(db, "rollup_states", tenant_id, &d).await? {
        out.states.insert(StateKey::from_row(&r)?, (r.try_get("ms")?, r.try_get("entries")?));
    }
    Ok(out)
}

/// Replaces a day's rollups with `counts`, in one transaction.
pub async fn store_day(db: &Db, tenant_id: i64, day: NaiveDate, counts: &DayCounts) -> Result<()> {
    let d = day.to_string();
    let members = campaign_members(db, tenant_id).await?;
    let mut tx = db.begin_write().await?;
    for table in
        ["rollup_calls", "rollup_campaign_hours", "rollup_campaign_states", "rollup_agent_days", "rollup_states"]
    {
        sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND day = $2"))
            .bind(tenant_id)
            .bind(&d)
            .execute(&mut *tx)
            .await?;
    }
    let calls: Vec<_> = counts.calls.iter().collect();
    for chunk in calls.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO rollup_calls (tenant_id, day, hour_at, hour, campaign_id, group_id, list_id, caller_id, direction,
                result, band, {}) VALUES {}",
            MEASURES.join(", "),
            placeholders(db.backend, chunk.len(), 11 + MEASURES.len())
        );
        let mut q = sqlx::query(&sql);
        for (k, m) in chunk {
            q = q
                .bind(tenant_id)
                .bind(&d)
                .bind(k.hour_at)
                .bind(k.hour)
                .bind(k.campaign_id)
                .bind(k.group_id)
                .bind(k.list_id)
                .bind(&k.caller_id)
                .bind(&k.direction)
                .bind(&k.result)
                .bind(k.band);
            for v in m.0 {
                q = q.bind(v);
            }
        }
        q.execute(&mut *tx).await?;
    }
    let hours: Vec<_> = campaign_hours(counts).into_iter().collect();
    for chunk in hours.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO rollup_campaign_hours (tenant_id, day, campaign_id, hour_at, live, abandons) VALUES {}",
            placeholders(db.backend, chunk.len(), 6)
        );
        let mut q = sqlx::query(&sql);
        for ((campaign_id, hour_at), (live, abandons)) in chunk {
            q = q.bind(tenant_id).bind(&d).bind(*campaign_id).bind(*hour_at).bind(*live).bind(*abandons);
        }
        q.execute(&mut *tx).await?;
    }
    let occupancy: Vec<_> = campaign_states(counts, &members).into_iter().collect();
    for chunk in occupancy.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO rollup_campaign_states (tenant_id, day, campaign_id, state, ms) VALUES {}",
            placeholders(db.backend, chunk.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        for ((campaign_id, state), ms) in chunk {
            q = q.bind(tenant_id).bind(&d).bind(*campaign_id).bind(state).bind(*ms);
        }
        q.execute(&mut *tx).await?;
    }
    let agents: Vec<_> = counts.agents.iter().collect();
    for chunk in agents.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO rollup_agent_days (tenant_id, day, agent_user_id, campaign_id, group_id, result, {}) VALUES {}",
            MEASURES.join(", "),
            placeholders(db.backend, chunk.len(), 6 + MEASURES.len())
        );
        let mut q = sqlx::query(&sql);
        for (k, m) in chunk {
            q = q.bind(tenant_id).bind(&d).bind(k.agent_user_id).bind(k.campaign_id).bind(k.group_id).bind(&k.result);
            for v in m.0 {
                q = q.bind(v);
            }
        }
        q.execute(&mut *tx).await?;
    }
    let states: Vec<_> = counts.states.iter().collect();
    for chunk in states.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO rollup_states (tenant_id, day, hour_at, hour, agent_user_id, state, reason_id, ms, entries) VALUES {}",
            placeholders(db.backend, chunk.len(), 9)
        );
        let mut q = sqlx::query(&sql);
        for (k, (ms, n)) in chunk {
            q = q
                .bind(tenant_id)
                .bind(&d)
                .bind(k.hour_at)
                .bind(k.hour)
                .bind(k.agent_user_id)
                .bind(&k.state)
                .bind(k.reason_id)
                .bind(*ms)
                .bind(*n);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A day's live answers and abandons (abandoned + timeouts) per campaign and hour, summed from its
/// call rollups: the rows of `rollup_campaign_hours` (in key order).
fn campaign_hours(counts: &DayCounts) -> BTreeMap<(i64, i64), (i64, i64)> {
    let at = |name: &str| MEASURES.iter().position(|m| *m == name).unwrap_or(0);
    let (live, abandoned, timeouts) = (at("live"), at("abandoned"), at("timeouts"));
    let mut out: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for (k, m) in &counts.calls {
        let e = out.entry((k.campaign_id, k.hour_at)).or_default();
        e.0 += m.0[live];
        e.1 += m.0[abandoned] + m.0[timeouts];
    }
    out
}

/// A day's stored `rollup_campaign_hours`, as [`campaign_hours`] counts them (rows of nothing
/// are not stored: a day without calls has none).
async fn stored_campaign_hours(db: &Db, tenant_id: i64, day: NaiveDate) -> Result<BTreeMap<(i64, i64), (i64, i64)>> {
    let rows = sqlx::query(
        "SELECT campaign_id, hour_at, live, abandons FROM rollup_campaign_hours WHERE tenant_id = $1 AND day = $2",
    )
    .bind(tenant_id)
    .bind(day.to_string())
    .fetch_all(&db.pool)
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        out.insert((r.try_get("campaign_id")?, r.try_get("hour_at")?), (r.try_get("live")?, r.try_get("abandons")?));
    }
    Ok(out)
}

/// Each agent's campaigns (`campaign_agents`): agent -> campaigns.
async fn campaign_members(db: &Db, tenant_id: i64) -> Result<HashMap<i64, Vec<i64>>> {
    let rows = sqlx::query("SELECT campaign_id, user_id FROM campaign_agents WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
    for r in rows {
        out.entry(r.try_get("user_id")?).or_default().push(r.try_get("campaign_id")?);
    }
    Ok(out)
}

/// A day's time per state of each campaign's member agents (`members`: agent -> campaigns), summed
/// from the agents' whole-day state rows: the rows of `rollup_campaign_states` (the outbound
/// report's occupancy and agent wait).
fn campaign_states(counts: &DayCounts, members: &HashMap<i64, Vec<i64>>) -> BTreeMap<(i64, String), i64> {
    let mut out: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for (k, (ms, _)) in &counts.states {
        if k.hour != DAY_TOTAL || *ms == 0 {
            continue;
        }
        for c in members.get(&-k.agent_user_id).into_iter().flatten() {
            *out.entry((*c, k.state.clone())).or_default() += ms;
        }
    }
    out
}

/// A day's stored `rollup_campaign_states`, as [`campaign_states`] counts them.
async fn stored_campaign_states(db: &Db, tenant_id: i64, day: NaiveDate) -> Result<BTreeMap<(i64, String), i64>> {
    let rows =
        sqlx::query("SELECT campaign_id, state, ms FROM rollup_campaign_states WHERE tenant_id = $1 AND day = $2")
            .bind(tenant_id)
            .bind(day.to_string())
            .fetch_all(&db.pool)
            .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        out.insert((r.try_get("campaign_id")?, r.try_get("state")?), r.try_get("ms")?);
    }
    Ok(out)
}

/// The job's state of a tenant: (refreshed_at, facts_from_day).
pub async fn job_state(db: &Db, tenant_id: i64) -> Result<Option<(i64, Option<NaiveDate>)>> {
    let r = sqlx::query("SELECT refreshed_at, facts_from_day FROM rollup_state WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(match r {
        Some(r) => {
            let from: String = r.try_get("facts_from_day")?;
            Some((r.try_get("refreshed_at")?, from.parse().ok()))
        }
        None => None,
    })
}

async fn set_refreshed(db: &Db, tenant_id: i64, at_ms: i64) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query("UPDATE rollup_state SET refreshed_at = $1 WHERE tenant_id = $2")
        .bind(at_ms)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        sqlx::query("INSERT INTO rollup_state (tenant_id, refreshed_at) VALUES ($1, $2)")
            .bind(tenant_id)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Days before this one keep their rollups whatever happens to their facts (the retention job
/// sets it when it deletes facts).
pub async fn keep_days_before(db: &Db, tenant_id: i64, day: NaiveDate, now_ms: i64) -> Result<()> {
    if job_state(db, tenant_id).await?.is_none() {
        set_refreshed(db, tenant_id, now_ms).await?;
    }
    sqlx::query("UPDATE rollup_state SET facts_from_day = $1 WHERE tenant_id = $2 AND facts_from_day < $1")
        .bind(day.to_string())
        .bind(tenant_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The local days of the start hours (Unix ms / 1 h) a query returns as `h`.
async fn days_of_hours(db: &Db, tz: Tz, sql: &str, tenant_id: i64, since: i64) -> Result<BTreeSet<NaiveDate>> {
    let rows = sqlx::query(sql).bind(tenant_id).bind(since).fetch_all(&db.pool).await?;
    let mut out = BTreeSet::new();
    for r in rows {
        let h: i64 = r.try_get("h")?;
        // The hour's both ends: a zone whose offset is not whole hours cuts days inside UTC hours.
        out.insert(local_date(tz, h * HOUR_MS));
        out.insert(local_date(tz, h * HOUR_MS + HOUR_MS - 1));
    }
    Ok(out)
}

/// What a refresh or rebuild did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub days: Vec<NaiveDate>,
}

/// The job's step for one tenant: recounts every day whose facts changed since its last run
/// (minus [`SLACK_MS`]), and today. A tenant never refreshed is rebuilt.
pub async fn refresh(db: &Db, tenant_id: i64, now_ms: i64) -> Result<Refreshed> {
    let Some((last, keep_before)) = job_state(db, tenant_id).await? else {
        return rebuild(db, tenant_id, now_ms).await;
    };
    let tz = tenant_tz(db, tenant_id).await?;
    let since = last - SLACK_MS;
    let mut days = BTreeSet::new();
    let mut d = local_date(tz, since);
    while d <= local_date(tz, now_ms) {
        days.insert(d);
        d = d.succ_opt().unwrap_or(d);
        if days.len() > 400 {
            break;
        }
    }
    days.extend(
        days_of_hours(
            db,
            tz,
            "SELECT DISTINCT started_at / 3600000 AS h FROM call_records WHERE tenant_id = $1 AND ended_at >= $2",
            tenant_id,
            since,
        )
        .await?,
    );
    days.extend(
        days_of_hours(
            db,
            tz,
            "SELECT DISTINCT c.started_at / 3600000 AS h FROM wrapup_records w
               JOIN call_records c ON c.id = w.call_record_id AND c.tenant_id = w.tenant_id
             WHERE w.tenant_id = $1 AND (w.saved_at >= $2 OR w.reported_at >= $2)",
            tenant_id,
            since,
        )
        .await?,
    );
    // The wrap-up index has saved_at; reported_at has its own index (the OR above is two scans on
    // PostgreSQL's bitmap OR, one on SQLite's multi-index OR).
    let days: Vec<NaiveDate> = days.into_iter().filter(|d| keep_before.is_none_or(|k| *d >= k)).collect();
    for d in &days {
        let began = std::time::Instant::now();
        let c = count_day(db, tenant_id, tz, *d, now_ms).await?;
        let counted = began.elapsed();
        store_day(db, tenant_id, *d, &c).await?;
        tracing::debug!(
            tenant_id,
            day = %d,
            count_ms = counted.as_millis() as u64,
            store_ms = (began.elapsed() - counted).as_millis() as u64,
            rows = c.calls.len() + c.agents.len() + c.states.len(),
            "rollups: day recounted"
        );
    }
    set_refreshed(db, tenant_id, now_ms).await?;
    Ok(Refreshed { days })
}

/// The days that have facts, from the first (or `facts_from_day`) to today.
async fn fact_days(db: &Db, tenant_id: i64, tz: Tz, now_ms: i64) -> Result<Vec<NaiveDate>> {
    let keep_before = job_state(db, tenant_id).await?.and_then(|(_, k)| k);
    let mut first: Option<i64> = None;
    for sql in [
        "SELECT MIN(started_at) AS m FROM call_records WHERE tenant_id = $1",
        "SELECT MIN(at) AS m FROM agent_transitions WHERE tenant_id = $1",
    ] {
        let r = sqlx::query(sql).bind(tenant_id).fetch_one(&db.pool).await?;
        if let Some(m) = r.try_get::<Option<i64>, _>("m")? {
            first = Some(first.map_or(m, |f| f.min(m)));
        }
    }
    let mut days = Vec::new();
    let Some(first) = first else { return Ok(days) };
    let mut d = local_date(tz, first);
    if let Some(k) = keep_before {
        d = d.max(k);
    }
    let today = local_date(tz, now_ms);
    while d <= today {
        days.push(d);
        d = match d.succ_opt() {
            Some(n) => n,
            None => break,
        };
    }
    Ok(days)
}

/// Recounts every day with facts (`kakeru rollups rebuild`); days before `facts_from_day` are kept.
pub async fn rebuild(db: &Db, tenant_id: i64, now_ms: i64) -> Result<Refreshed> {
    let tz = tenant_tz(db, tenant_id).await?;
    let days = fact_days(db, tenant_id, tz, now_ms).await?;
    for d in &days {
        let c = count_day(db, tenant_id, tz, *d, now_ms).await?;
        store_day(db, tenant_id, *d, &c).await?;
    }
    set_refreshed(db, tenant_id, now_ms).await?;
    Ok(Refreshed { days })
}

/// Compares every day's stored rollups with a recount as of their last refresh (an agent's open
/// state grows with the clock; `now_ms` if never refreshed) (`kakeru rollups verify`): the days
/// that differ. The campaigns' occupancy is recounted with their members of now, so a day counted
/// before an agent joined or left a campaign differs until `rebuild` recounts it.
pub async fn verify(db: &Db, tenant_id: i64, now_ms: i64) -> Result<Vec<NaiveDate>> {
    let tz = tenant_tz(db, tenant_id).await?;
    let members = campaign_members(db, tenant_id).await?;
    let as_of = job_state(db, tenant_id).await?.map_or(now_ms, |(at, _)| at);
    let mut bad = Vec::new();
    for d in fact_days(db, tenant_id, tz, as_of).await? {
        let counted = count_day(db, tenant_id, tz, d, as_of).await?;
        if stored_day(db, tenant_id, d).await? != counted
            || stored_campaign_hours(db, tenant_id, d).await? != campaign_hours(&counted)
            || stored_campaign_states(db, tenant_id, d).await? != campaign_states(&counted, &members)
        {
            bad.push(d);
        }
    }
    Ok(bad)
}

/// Every tenant's id (the command's and the job's walk).
pub async fn tenant_ids(db: &Db) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT id FROM tenants ORDER BY id").fetch_all(&db.pool).await?;
    rows.iter().map(|r| r.try_get("id").map_err(StoreError::from)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_in_new_york_around_the_dst_change() {
        let tz = parse_tz("America/New_York").unwrap();
        // 2026-11-01: clocks go back at 02:00 EDT to 01:00 EST; the day has 25 hours.
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let (start, end) = day_bounds(tz, day);
        assert_eq!(end - start, 25 * HOUR_MS);
        let mut hours = Vec::new();
        let mut t = start;
        while t < end {
            hours.push(hour_of(tz, t + 1).1);
            t += HOUR_MS;
        }
        assert_eq!(hours, [0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
        assert_eq!(hour_of(tz, start + 90 * 60_000), (start + HOUR_MS, 1));
    }

    #[test]
    fn bands() {
        assert_eq!(
            [0, 29_999, 30_000, 59_999, 179_999, 299_999, 599_999, 600_000].map(band_of),
            [1, 1, 2, 2, 3, 4, 5, 6]
        );
    }
}
