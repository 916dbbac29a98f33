//! What the reports read: sums over the rollups (never over the facts), and the call history's one
//! query (`call_history`), the one place its SQL lives.

use sqlx::Row;

use crate::rollups::{Measures, MEASURES};
use crate::{Db, Result};

/// Which rows of the rollups a report sums. Days are the tenant's local dates, 'YYYY-MM-DD'.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub from_day: String,
    pub to_day: String,
    pub campaign_id: Option<i64>,
    pub group_id: Option<i64>,
    pub agent_user_id: Option<i64>,
    pub list_id: Option<i64>,
    pub caller_id: Option<String>,
    pub direction: Option<String>,
    /// Only hours starting before this instant (the group statistics' 直近の情報: 含まない).
    pub hours_before: Option<i64>,
    /// Only hours starting at or after this instant.
    pub hours_from: Option<i64>,
    /// Only local hours of the day in `[from, to)` (ステータス統計's 時間 and 範囲).
    pub hour_range: Option<(i64, i64)>,
    /// Only agents in this set (BIZ and OP limits, group membership); `Some(empty)` = nobody.
    pub agents: Option<Vec<i64>>,
}

/// Columns a report may group by, per table (never user text: the API maps its choices here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Day,
    Hour,
    HourAt,
    Agent,
    Campaign,
    Group,
    List,
    CallerId,
    Direction,
    Result,
    Band,
    State,
    Reason,
}

impl By {
    fn column(self) -> &'static str {
        match self {
            By::Day => "day",
            By::Hour => "hour",
            By::HourAt => "hour_at",
            By::Agent => "agent_user_id",
            By::Campaign => "campaign_id",
            By::Group => "group_id",
            By::List => "list_id",
            By::CallerId => "caller_id",
            By::Direction => "direction",
            By::Result => "result",
            By::Band => "band",
            By::State => "state",
            By::Reason => "reason_id",
        }
    }
}

/// The rollup a report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `rollup_calls`: per hour, no agent.
    Calls,
    /// `rollup_agent_days`: per agent and day.
    AgentDays,
}

/// One summed row: the group-by values as text, and the measures.
#[derive(Debug, Clone)]
pub struct SumRow {
    pub keys: Vec<String>,
    pub m: Measures,
}

fn where_clause(f: &Filter, has_hours: bool, has_agent: bool, has_list: bool, args: &mut Vec<Arg>) -> String {
    let mut w = String::from("tenant_id = $1 AND day >= $2 AND day <= $3");
    args.push(Arg::Text(f.from_day.clone()));
    args.push(Arg::Text(f.to_day.clone()));
    let mut push = |w: &mut String, cond: &str, a: Arg| {
        args.push(a);
        w.push_str(&format!(" AND {cond} ${}", args.len() + 1));
    };
    if let Some(c) = f.campaign_id {
        push(&mut w, "campaign_id =", Arg::Int(c));
    }
    if let Some(g) = f.group_id {
        push(&mut w, "group_id =", Arg::Int(g));
    }
    if has_list {
        if let Some(l) = f.list_id {
            push(&mut w, "list_id =", Arg::Int(l));
        }
        if let Some(c) = &f.caller_id {
            push(&mut w, "caller_id =", Arg::Text(c.clone()));
        }
        if let Some(d) = &f.direction {
            push(&mut w, "direction =", Arg::Text(d.clone()));
        }
    }
    if has_hours {
        if let Some(b) = f.hours_before {
            push(&mut w, "hour_at <", Arg::Int(b));
        }
        if let Some(b) = f.hours_from {
            push(&mut w, "hour_at >=", Arg::Int(b));
        }
        if let Some((from, to)) = f.hour_range {
            push(&mut w, "hour >=", Arg::Int(from));
            push(&mut w, "hour <", Arg::Int(to));
        }
    }
    if has_agent {
        if let Some(a) = f.agent_user_id {
            push(&mut w, "agent_user_id =", Arg::Int(a));
        }
        if let Some(list) = &f.agents {
            if list.is_empty() {
                w.push_str(" AND 1 = 0");
            } else {
                // Ids are integers: written into the statement, not bound.
                let ids: Vec<String> = list.iter().map(i64::to_string).collect();
                w.push_str(&format!(" AND agent_user_id IN ({})", ids.join(",")));
            }
        }
    }
    w
}

enum Arg {
    Int(i64),
    Text(String),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    tenant_id: i64,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q = q.bind(tenant_id);
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_str()),
        };
    }
    q
}

fn keys_select(by: &[By]) -> (String, String) {
    let sel: Vec<String> =
        by.iter().enumerate().map(|(i, b)| format!("CAST({} AS TEXT) AS k{i}", b.column())).collect();
    let grp: Vec<&str> = by.iter().map(|b| b.column()).collect();
    (sel.join(", "), grp.join(", "))
}

fn keys_of(r: &sqlx::any::AnyRow, n: usize) -> Result<Vec<String>> {
    (0..n).map(|i| Ok(r.try_get::<Option<String>, _>(format!("k{i}").as_str())?.unwrap_or_default())).collect()
}

/// Sums the call measures of `table` over `f`, grouped by `by` (no grouping: one total row).
pub async fn sum_calls(db: &Db, tenant_id: i64, table: Table, f: &Filter, by: &[By]) -> Result<Vec<SumRow>> {
    let (name, hours, agent, list) = match table {
        Table::Calls => ("rollup_calls", true, false, true),
        Table::AgentDays => ("rollup_agent_days", false, true, false),
    };
    let mut args = Vec::new();
    let w = where_clause(f, hours, agent, list, &mut args);
    let sums: Vec<String> = MEASURES
        .iter()
        .map(|m| {
            if m.ends_with("_max_ms") {
                format!("MAX({m}) AS {m}")
            } else {
                format!("CAST(SUM({m}) AS BIGINT) AS {m}")
            }
        })
        .collect();
    let (sel, grp) = keys_select(by);
    let sql = if by.is_empty() {
        format!("SELECT {} FROM {name} WHERE {w}", sums.join(", "))
    } else {
        format!("SELECT {sel}, {} FROM {name} WHERE {w} GROUP BY {grp} ORDER BY {grp}", sums.join(", "))
    };
    let rows = bind_all(sqlx::query(&sql), tenant_id, &args).fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let keys = keys_of(&r, by.len())?;
        let mut m = Measures::default();
        for (i, c) in MEASURES.iter().enumerate() {
            m.0[i] = r.try_get::<Option<i64>, _>(*c)?.unwrap_or(0);
        }
        if by.is_empty() && m.0[0] == 0 {
            continue;
        }
        out.push(SumRow { keys, m });
    }
    Ok(out)
}

/// Live answers and abandons (abandoned + released at the wait limit) per campaign and hour over
/// the local days `from_day..=to_day`, in (campaign, hour_at) order: the rolling abandon rates of the
/// outbound report read only these two measures over two months, from their own rollup
/// (`rollup_campaign_hours`, one row per campaign and hour).
pub async fn live_abandons_by_hour(
    db: &Db,
    tenant_id: i64,
    from_day: &str,
    to_day: &str,
    campaign_id: Option<i64>,
) -> Result<Vec<(i64, i64, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT campaign_id, hour_at, live, abandons FROM rollup_campaign_hours
         WHERE tenant_id = $1 AND day >= $2 AND day <= $3 AND ($4 = 0 OR campaign_id = $4)
         ORDER BY campaign_id, hour_at",
    )
    .bind(tenant_id)
    .bind(from_day)
    .bind(to_day)
    .bind(campaign_id.unwrap_or(0))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("campaign_id")?,
                r.try_get("hour_at")?,
                r.try_get::<Option<i64>, _>("live")?.unwrap_or(0),
                r.try_get::<Option<i64>, _>("abandons")?.unwrap_or(0),
            ))
        })
        .collect()
}

/// One summed row of `rollup_states`: keys, ms, entries.
#[derive(Debug, Clone)]
pub struct StateRow {
    pub keys: Vec<String>,
    pub ms: i64,
    pub entries: i64,
}

/// Sums the agents' time in states over `f` (its hours, agent and agents), grouped by `by`.
pub async fn sum_states(db: &Db, tenant_id: i64, f: &Filter, by: &[By]) -> Result<Vec<StateRow>> {
    use crate::rollups::{ALL_AGENTS, DAY_TOTAL};
    let mut args = Vec::new();
    let mut f = Filter { campaign_id: None, group_id: None, ..f.clone() };
    let full_day =
        f.hour_range.is_none_or(|(a, b)| a <= 0 && b >= 24) && f.hours_before.is_none() && f.hours_from.is_none();
    let by_hour = by.iter().any(|b| matches!(b, By::Hour | By::HourAt));
    // The rows that answer with the fewest: each agent's days, every agent's hours, or the hours
    // of the agents asked for.
    let days = full_day && !by_hour;
    let kind = if days {
        // Whole-day rows carry the agent's id negated (`rollups::DAY_TOTAL`).
        f.hour_range = None;
        f.agent_user_id = f.agent_user_id.map(|a| -a);
        f.agents = f.agents.map(|list| list.into_iter().map(|a| -a).collect());
        format!(" AND agent_user_id < 0 AND hour = {DAY_TOTAL}")
    } else if !by.contains(&By::Agent) && f.agents.is_none() && f.agent_user_id.is_none() {
        format!(" AND agent_user_id = {ALL_AGENTS} AND hour >= 0")
    } else {
        format!(" AND agent_user_id <> {ALL_AGENTS} AND hour >= 0")
    };
    let mut w = where_clause(&f, true, true, false, &mut args);
    w.push_str(&kind);
    let (sel, grp) = keys_select(by);
    let sql = format!(
        "SELECT {sel}, CAST(SUM(ms) AS BIGINT) AS ms, CAST(SUM(entries) AS BIGINT) AS entries FROM rollup_states WHERE {w} GROUP BY {grp} ORDER BY {grp}"
    );
    let rows = bind_all(sqlx::query(&sql), tenant_id, &args).fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut keys = keys_of(&r, by.len())?;
        if days {
            for (k, b) in keys.iter_mut().zip(by) {
                if *b == By::Agent {
                    *k = k.trim_start_matches('-').to_owned();
                }
            }
        }
        out.push(StateRow {
            keys,
            ms: r.try_get::<Option<i64>, _>("ms")?.unwrap_or(0),
            entries: r.try_get::<Option<i64>, _>("entries")?.unwrap_or(0),
        });
    }
    Ok(out)
}

// The partial indexes of migration 0043 name these values: the statements here write them as
// literals so that the planners choose those indexes.
const _: () = assert!(crate::rollups::DAY_TOTAL == -1 && crate::rollups::ALL_AGENTS == 0);

/// Time per state of each campaign's member agents, per day: (campaign, day, state, ms), from
/// `rollup_campaign_states` (the members as they were when the day was counted).
pub async fn campaign_states(
    db: &Db,
    tenant_id: i64,
    from_day: &str,
    to_day: &str,
    campaign_id: Option<i64>,
) -> Result<Vec<(i64, String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT campaign_id, day, state, ms FROM rollup_campaign_states
         WHERE tenant_id = $1 AND day >= $2 AND day <= $3 AND ($4 = 0 OR campaign_id = $4)",
    )
    .bind(tenant_id)
    .bind(from_day)
    .bind(to_day)
    .bind(campaign_id.unwrap_or(0))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("campaign_id")?,
                r.try_get("day")?,
                r.try_get("state")?,
                r.try_get::<Option<i64>, _>("ms")?.unwrap_or(0),
            ))
        })
        .collect()
}

/// First calls (作業数) of a list up to and including a day, and the leads registered in it.
pub async fn list_work(db: &Db, tenant_id: i64, list_id: i64, to_day: &str) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(first_calls), 0) AS BIGINT) AS n FROM rollup_calls WHERE tenant_id = $1 AND list_id = $2 AND day <= $3",
    )
    .bind(tenant_id)
    .bind(list_id)
    .bind(to_day)
    .fetch_one(&db.pool)
    .await?;
    let work: i64 = r.try_get::<Option<i64>, _>("n")?.unwrap_or(0);
    let r = sqlx::query("SELECT COUNT(*) AS n FROM leads WHERE tenant_id = $1 AND list_id = $2")
        .bind(tenant_id)
        .bind(list_id)
        .fetch_one(&db.pool)
        .await?;
    Ok((work, r.try_get("n")?))
}

/// (id, name) pairs of a table of the tenant (campaigns, dialing groups, lists, users...).
pub async fn names(db: &Db, tenant_id: i64, table: &str, name_col: &str) -> Result<Vec<(i64, String)>> {
    let sql = format!("SELECT id, {name_col} AS name FROM {table} WHERE tenant_id = $1 ORDER BY id");
    let rows = sqlx::query(&sql).bind(tenant_id).fetch_all(&db.pool).await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("name")?))).collect()
}

/// The call history's filters (発着信履歴). Times are Unix ms.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The party's number starts with this.
    pub tel_prefix: Option<String>,
    pub direction: Option<String>,
    pub min_seconds: Option<i64>,
    pub agent_user_id: Option<i64>,
    pub group_id: Option<i64>,
    pub campaign_id: Option<i64>,
    /// The saved wrap-up record's result, else the dialer's.
    pub result: Option<String>,
    /// Only calls with a wrap-up record marked reported (BIZ).
    pub reported_only: bool,
    /// Keyset: rows strictly before (started_at, id) in newest-first order.
    pub before: Option<(i64, i64)>,
    pub limit: i64,
}

/// One row of the call history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub dialer_call_id: Option<i64>,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub bridged_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub direction: String,
    pub tel: String,
    pub caller_id: Option<String>,
    pub campaign_id: Option<i64>,
    pub campaign: Option<String>,
    pub group_id: Option<i64>,
    pub group: Option<String>,
    pub agent_user_id: Option<i64>,
    pub agent: Option<String>,
    pub lead_id: Option<i64>,
    pub lead_name: Option<String>,
    pub result: String,
    pub system_result: String,
    pub talk_ms: i64,
    pub recording_id: Option<i64>,
    pub wrapup_id: Option<i64>,
    pub reported: bool,
    /// 折り返し呼ID: the callback registered from this call, if any.
    pub callback_id: Option<i64>,
}

/// The call history, newest first, one keyset page. The one place its SQL lives: a column from
/// another table (a callback's id) joins here.
pub async fn call_history(db: &Db, tenant_id: i64, f: &HistoryFilter) -> Result<Vec<HistoryRow>> {
    let mut sql = String::from(
        "SELECT c.id, c.dialer_call_id, c.started_at, c.answered_at, c.bridged_at, c.ended_at, c.direction, c.tel,
            c.caller_id, c.campaign_id, cp.name AS campaign, j.dialing_group_id AS group_id, g.name AS grp,
            c.agent_user_id, u.display_name AS agent, c.lead_id, l.name AS lead_name, c.result AS system_result,
            CASE WHEN w.saved = 1 THEN w.result ELSE c.result END AS result, r.id AS recording_id,
            w.id AS wrapup_id, COALESCE(w.reported, 0) AS reported,
            (SELECT MIN(cb.id) FROM callbacks cb WHERE cb.tenant_id = c.tenant_id AND cb.call_record_id = c.id) AS callback_id
         FROM call_records c
         LEFT JOIN campaigns cp ON cp.id = c.campaign_id AND cp.tenant_id = c.tenant_id
         LEFT JOIN call_jobs j ON j.id = c.call_job_id AND j.tenant_id = c.tenant_id
         LEFT JOIN dialing_groups g ON g.id = j.dialing_group_id AND g.tenant_id = c.tenant_id
         LEFT JOIN users u ON u.id = c.agent_user_id AND u.tenant_id = c.tenant_id
         LEFT JOIN leads l ON l.id = c.lead_id AND l.tenant_id = c.tenant_id
         LEFT JOIN wrapup_records w ON w.tenant_id = c.tenant_id AND w.call_record_id = c.id
         LEFT JOIN recordings r ON r.tenant_id = c.tenant_id AND r.dialer_call_id = c.dialer_call_id AND r.deleted_at IS NULL
         WHERE c.tenant_id = $1 AND c.started_at >= $2 AND c.started_at < $3",
    );
    let mut args: Vec<Arg> = vec![Arg::Int(f.from_ms), Arg::Int(f.to_ms)];
    let mut cond = |sql: &mut String, text: &str, a: Arg| {
        args.push(a);
        sql.push_str(&text.replace('?', &format!("${}", args.len() + 1)));
    };
    if let Some(p) = &f.tel_prefix {
        // Digits only (checked by the caller), so LIKE needs no escaping.
        cond(&mut sql, " AND c.tel LIKE ?", Arg::Text(format!("{p}%")));
    }
    if let Some(d) = &f.direction {
        cond(&mut sql, " AND c.direction = ?", Arg::Text(d.clone()));
    }
    if let Some(s) = f.min_seconds {
        cond(
            &mut sql,
            " AND c.bridged_at IS NOT NULL AND c.ended_at IS NOT NULL AND c.ended_at - c.bridged_at >= ?",
            Arg::Int(s * 1000),
        );
    }
    if let Some(a) = f.agent_user_id {
        cond(&mut sql, " AND c.agent_user_id = ?", Arg::Int(a));
    }
    if let Some(g) = f.group_id {
        cond(&mut sql, " AND j.dialing_group_id = ?", Arg::Int(g));
    }
    if let Some(c) = f.campaign_id {
        cond(&mut sql, " AND c.campaign_id = ?", Arg::Int(c));
    }
    if let Some(r) = &f.result {
        cond(&mut sql, " AND (CASE WHEN w.saved = 1 THEN w.result ELSE c.result END) = ?", Arg::Text(r.clone()));
    }
    if f.reported_only {
        sql.push_str(" AND w.reported = 1");
    }
    if let Some((at, id)) = f.before {
        args.push(Arg::Int(at));
        let n = args.len() + 1;
        args.push(Arg::Int(id));
        // A row value, not `a < x OR (a = x AND id < y)`, which made every page walk the range
        // from its start; the bound on `started_at` alone is what SQLite's index range takes.
        sql.push_str(&format!(" AND c.started_at <= ${n} AND (c.started_at, c.id) < (${n}, ${})", n + 1));
    }
    args.push(Arg::Int(f.limit));
    sql.push_str(&format!(" ORDER BY c.started_at DESC, c.id DESC LIMIT ${}", args.len() + 1));
    let rows = bind_all(sqlx::query(&sql), tenant_id, &args).fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let bridged: Option<i64> = r.try_get("bridged_at")?;
        let ended: Option<i64> = r.try_get("ended_at")?;
        out.push(HistoryRow {
            id: r.try_get("id")?,
            dialer_call_id: r.try_get("dialer_call_id")?,
            started_at: r.try_get("started_at")?,
            answered_at: r.try_get("answered_at")?,
            bridged_at: bridged,
            ended_at: ended,
            direction: r.try_get("direction")?,
            tel: r.try_get("tel")?,
            caller_id: r.try_get("caller_id")?,
            campaign_id: r.try_get("campaign_id")?,
            campaign: r.try_get("campaign")?,
            group_id: r.try_get("group_id")?,
            group: r.try_get("grp")?,
            agent_user_id: r.try_get("agent_user_id")?,
            agent: r.try_get("agent")?,
            lead_id: r.try_get("lead_id")?,
            lead_name: r.try_get("lead_name")?,
            result: r.try_get("result")?,
            system_result: r.try_get("system_result")?,
            talk_ms: match (bridged, ended) {
                (Some(b), Some(e)) => (e - b).max(0),
                _ => 0,
            },
            recording_id: r.try_get("recording_id")?,
            wrapup_id: r.try_get("wrapup_id")?,
            reported: r.try_get::<i64, _>("reported")? == 1,
            callback_id: r.try_get("callback_id")?,
        });
    }
    Ok(out)
}

/// One abandon of the compliance ledger.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Abandon {
    pub call_id: i64,
    pub campaign_id: Option<i64>,
    pub answered_at: i64,
    pub ended_at: i64,
    pub wait_ms: i64,
}

/// The abandons (answered, never bridged) whose calls ended in `[from_ms, to_ms)`, oldest first,
/// at most `limit`: the ledger lists each one.
pub async fn abandons(
    db: &Db,
    tenant_id: i64,
    campaign_id: Option<i64>,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> Result<Vec<Abandon>> {
    let mut sql = String::from(
        "SELECT id, campaign_id, answered_at, ended_at FROM call_records
         WHERE tenant_id = $1 AND result = 'abandoned' AND ended_at >= $2 AND ended_at < $3
           AND answered_at IS NOT NULL AND bridged_at IS NULL",
    );
    if campaign_id.is_some() {
        sql.push_str(" AND campaign_id = $5");
    }
    sql.push_str(" ORDER BY ended_at, id LIMIT $4");
    let mut q = sqlx::query(&sql).bind(tenant_id).bind(from_ms).bind(to_ms).bind(limit);
    if let Some(c) = campaign_id {
        q = q.bind(c);
    }
    let rows = q.fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let answered: i64 = r.try_get("answered_at")?;
        let ended: i64 = r.try_get("ended_at")?;
        out.push(Abandon {
            call_id: r.try_get("id")?,
            campaign_id: r.try_get("campaign_id")?,
            answered_at: answered,
            ended_at: ended,
            wait_ms: (ended - answered).max(0),
        });
    }
    Ok(out)
}

/// The count of leads of each customer list of the tenant: `(list_id, leads)`.
pub async fn leads_per_list(db: &Db, tenant_id: i64) -> Result<Vec<(i64, i64)>> {
    let rows = sqlx::query("SELECT list_id AS a, COUNT(*) AS b FROM leads WHERE tenant_id = $1 GROUP BY list_id")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok((r.try_get("a")?, r.try_get("b")?))).collect()
}

/// A customer list as the list report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListName {
    pub id: i64,
    pub name: String,
    pub campaign_id: i64,
}

/// The customer lists of one campaign, or of every campaign of the tenant, by id.
pub async fn lists(db: &Db, tenant_id: i64, campaign_id: Option<i64>) -> Result<Vec<ListName>> {
    let rows = sqlx::query(
        "SELECT l.id, l.name, b.campaign_id FROM customer_lists l JOIN batches b ON b.id = l.batch_id
         WHERE l.tenant_id = $1 AND ($2 = 0 OR b.campaign_id = $2) ORDER BY l.id",
    )
    .bind(tenant_id)
    .bind(campaign_id.unwrap_or(0))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ListName { id: r.try_get("id")?, name: r.try_get("name")?, campaign_id: r.try_get("campaign_id")? })
        })
        .collect()
}

/// A campaign as the outbound and abandon reports name it.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignTargets {
    pub id: i64,
    pub name: String,
    /// The abandon rate aimed at (放棄呼率の目標), percent.
    pub abandon_target_pct: f64,
    /// How long an answered call waits for an agent before it is released (待ち呼タイムアウト), seconds.
    pub agent_wait_timeout_s: i64,
}

/// One campaign, or every campaign of the tenant, by id.
pub async fn campaigns(db: &Db, tenant_id: i64, campaign_id: Option<i64>) -> Result<Vec<CampaignTargets>> {
    let rows = sqlx::query(
        "SELECT id, name, abandon_target_pct, agent_wait_timeout_s FROM campaigns
         WHERE tenant_id = $1 AND ($2 = 0 OR id = $2) ORDER BY id",
    )
    .bind(tenant_id)
    .bind(campaign_id.unwrap_or(0))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CampaignTargets {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                abandon_target_pct: r.try_get("abandon_target_pct")?,
                agent_wait_timeout_s: r.try_get("agent_wait_timeout_s")?,
            })
        })
        .collect()
}
