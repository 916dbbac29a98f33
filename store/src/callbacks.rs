//! Callbacks (折り返し呼): calls to return, registered from a call or by hand, claimed by an agent,
//! dialled from the desktop. Every write names the version it read (optimistic: a lost race is a
//! refused write, never a silent overwrite).

use sqlx::Row;

use crate::search::{condition, Column};
use crate::{Backend, Db, Result, StoreError};

/// 対応状況: open (未完了) or done (完了).
pub const STATUSES: &[&str] = &["open", "done"];

/// Columns a list may sort by (the page's columns).
pub const SORTS: &[&str] = &[
    "id",
    "registered_at",
    "number",
    "name",
    "campaign_name",
    "label",
    "assignee_name",
    "memo",
    "status",
    "updated_at",
];

/// A callback with the names the page shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub id: i64,
    pub number: String,
    pub campaign_id: Option<i64>,
    pub label: Option<String>,
    pub call_record_id: Option<i64>,
    pub memo: String,
    pub status: String,
    pub assignee_user_id: Option<i64>,
    pub registered_at: i64,
    pub registered_by: Option<i64>,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    pub version: i64,
    pub dialled_at: Option<i64>,
    /// The call placed by the last dial, once the dialer wrote it.
    pub dialled_call_id: Option<i64>,
    pub campaign_name: Option<String>,
    pub assignee_name: Option<String>,
    /// The number's name in the phone book (共通電話帳).
    pub name: Option<String>,
    /// The recording of the call it was registered from.
    pub recording_id: Option<i64>,
}

fn select_sql(tenant_id: i64) -> String {
    format!(
        "SELECT c.id, c.number, c.campaign_id, c.label, c.call_record_id, c.memo, c.status, c.assignee_user_id,
                c.registered_at, c.registered_by, c.updated_at, c.completed_at, c.version, c.dialled_at,
                (SELECT MIN(d.id) FROM call_records d WHERE d.tenant_id = c.tenant_id AND d.lead_id = c.dialled_lead_id
                   AND d.started_at >= c.dialled_at) AS dialled_call_id,
                cp.name AS campaign_name, u.display_name AS assignee_name,
                (SELECT p.name FROM phone_book p WHERE p.tenant_id = c.tenant_id AND p.number = c.number) AS name,
                (SELECT r.id FROM recordings r WHERE r.tenant_id = c.tenant_id AND r.dialer_call_id = cr.dialer_call_id
                   AND r.deleted_at IS NULL) AS recording_id
         FROM callbacks c
         LEFT JOIN campaigns cp ON cp.id = c.campaign_id AND cp.tenant_id = c.tenant_id
         LEFT JOIN users u ON u.id = c.assignee_user_id AND u.tenant_id = c.tenant_id
         LEFT JOIN call_records cr ON cr.id = c.call_record_id AND cr.tenant_id = c.tenant_id
         WHERE {}",
        visibility(tenant_id)
    )
}

/// The rows a caller may see: the tenant's (a callback is the floor's work, handed between agents
/// whatever campaign the call was of).
fn visibility(tenant_id: i64) -> String {
    format!("c.tenant_id = {tenant_id}")
}

/// The callback `$1` of the tenant.
fn visible_id(tenant_id: i64) -> String {
    format!("id = $1 AND tenant_id = {tenant_id}")
}

fn callback_of(r: &sqlx::any::AnyRow) -> Result<Callback> {
    Ok(Callback {
        id: r.try_get("id")?,
        number: r.try_get("number")?,
        campaign_id: r.try_get("campaign_id")?,
        label: r.try_get("label")?,
        call_record_id: r.try_get("call_record_id")?,
        memo: r.try_get("memo")?,
        status: r.try_get("status")?,
        assignee_user_id: r.try_get("assignee_user_id")?,
        registered_at: r.try_get("registered_at")?,
        registered_by: r.try_get("registered_by")?,
        updated_at: r.try_get("updated_at")?,
        completed_at: r.try_get("completed_at")?,
        version: r.try_get("version")?,
        dialled_at: r.try_get("dialled_at")?,
        dialled_call_id: r.try_get("dialled_call_id")?,
        campaign_name: r.try_get("campaign_name")?,
        assignee_name: r.try_get("assignee_name")?,
        name: r.try_get("name")?,
        recording_id: r.try_get("recording_id")?,
    })
}

pub async fn get(db: &Db, tenant_id: i64, id: i64) -> Result<Option<Callback>> {
    let sql = format!("{} AND c.id = $1", select_sql(tenant_id));
    let row = sqlx::query(&sql).bind(id).fetch_optional(&db.pool).await?;
    row.as_ref().map(callback_of).transpose()
}

/// Whose callbacks a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignee {
    Nobody,
    Is(i64),
    IsNot(i64),
}

/// One condition of a list; a list's conditions all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Any of these statuses (of [`STATUSES`]).
    Status(Vec<&'static str>),
    /// Any of these.
    Assignee(Vec<Assignee>),
    /// The number holds these digits.
    NumberContains(String),
    /// Every word of the text in the label.
    Label(String),
    Campaign(i64),
    RegisteredFrom(i64),
    RegisteredBefore(i64),
}

/// A page of the callbacks list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub conditions: Vec<Condition>,
    /// Every word in some column the page shows (number, name, campaign, label, assignee, memo).
    pub text: Option<String>,
    /// A column of [`SORTS`] and whether descending; default newest first.
    pub sort: Option<(&'static str, bool)>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of callbacks, the count under the conditions, and the newest callback of the tenant
/// under any condition (a page counts new ones with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Callback>,
    pub total: i64,
    pub newest_id: Option<i64>,
}

pub async fn list(db: &Db, tenant_id: i64, q: &ListQuery) -> Result<Page> {
    // Conditions over the visible rows, with their joined names (`x`).
    let mut conds: Vec<String> = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    for c in &q.conditions {
        match c {
            Condition::Status(any) => {
                let ors: Vec<String> =
                    any.iter().filter(|s| STATUSES.contains(s)).map(|s| format!("x.status = '{s}'")).collect();
                if !ors.is_empty() {
                    conds.push(format!("({})", ors.join(" OR ")));
                }
            }
            Condition::Assignee(any) => {
                let ors: Vec<String> = any
                    .iter()
                    .map(|a| match a {
                        Assignee::Nobody => "x.assignee_user_id IS NULL".to_string(),
                        Assignee::Is(u) => format!("x.assignee_user_id = {u}"),
                        Assignee::IsNot(u) => format!("x.assignee_user_id <> {u}"),
                    })
                    .collect();
                if !ors.is_empty() {
                    conds.push(format!("({})", ors.join(" OR ")));
                }
            }
            Condition::NumberContains(digits) => {
                let digits: String = digits.chars().filter(char::is_ascii_digit).collect();
                conds.push(format!("x.number LIKE '%{digits}%'"));
            }
            Condition::Label(text) => {
                let col = [Column { expr: "x.label", tel: false }];
                if let Some(c) = condition(&col, text, binds.len() + 1) {
                    conds.push(format!("({})", c.sql));
                    binds.extend(c.binds);
                }
            }
            Condition::Campaign(id) => conds.push(format!("x.campaign_id = {id}")),
            Condition::RegisteredFrom(ms) => conds.push(format!("x.registered_at >= {ms}")),
            Condition::RegisteredBefore(ms) => conds.push(format!("x.registered_at < {ms}")),
        }
    }
    if let Some(c) = q.text.as_deref().and_then(|text| {
        let cols = ["x.number", "x.name", "x.campaign_name", "x.label", "x.assignee_name", "x.memo"]
            .map(|expr| Column { expr, tel: expr == "x.number" });
        condition(&cols, text, binds.len() + 1)
    }) {
        conds.push(format!("({})", c.sql));
        binds.extend(c.binds);
    }
    let order = match q.sort {
        // Rows without a value (no name, no assignee) last either way, on both backends.
        Some((col, desc)) if SORTS.contains(&col) => {
            let dir = if desc { "DESC" } else { "ASC" };
            format!("(x.{col} IS NULL), x.{col} {dir}, x.id {dir}")
        }
        _ => "x.id DESC".to_string(),
    };
    let newest_id: Option<i64> =
        sqlx::query(&format!("SELECT MAX(c.id) AS n FROM callbacks c WHERE {}", visibility(tenant_id)))
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?;
    let where_ = if conds.is_empty() { "1 = 1".to_string() } else { conds.join(" AND ") };
    let rows_sql = format!("SELECT * FROM ({}) x WHERE {where_}", select_sql(tenant_id));
    let count_sql = format!("SELECT COUNT(*) AS n FROM ({rows_sql}) y");
    let mut cq = sqlx::query(&count_sql);
    for b in &binds {
        cq = cq.bind(b.as_str());
    }
    let total: i64 = cq.fetch_one(&db.pool).await?.try_get("n")?;
    let sql = format!("{rows_sql} ORDER BY {order} LIMIT {} OFFSET {}", q.limit, q.offset);
    let mut lq = sqlx::query(&sql);
    for b in &binds {
        lq = lq.bind(b.as_str());
    }
    let rows = lq.fetch_all(&db.pool).await?;
    let items = rows.iter().map(callback_of).collect::<Result<Vec<_>>>()?;
    Ok(Page { items, total, newest_id })
}

/// Someone who may be assigned: an enabled MGR, SV or OP of the tenant.
pub async fn is_assignable(db: &Db, tenant_id: i64, user_id: i64) -> Result<bool> {
    crate::found(
        db,
        "SELECT 1 AS one FROM users WHERE id = $1 AND tenant_id = $2 AND disabled = 0 AND role IN ('MGR', 'SV', 'OP')",
        user_id,
        tenant_id,
    )
    .await
}

/// The tenant's open callbacks now.
pub async fn open_count(db: &Db, tenant_id: i64) -> Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM callbacks WHERE tenant_id = $1 AND status = 'open'")
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?)
}

/// The number and campaign of a call a callback is registered from: a call of the tenant, and
/// `agent`'s own when given (an OP's call history shows only theirs).
pub async fn call_to_return(
    db: &Db,
    tenant_id: i64,
    call_record_id: i64,
    agent: Option<i64>,
) -> Result<Option<(String, Option<i64>)>> {
    let own = agent.map(|a| format!(" AND agent_user_id = {a}")).unwrap_or_default();
    let sql = format!("SELECT tel, campaign_id FROM call_records WHERE id = $1 AND tenant_id = $2{own}");
    let row = sqlx::query(&sql).bind(call_record_id).bind(tenant_id).fetch_optional(&db.pool).await?;
    match row {
        Some(r) => Ok(Some((r.try_get("tel")?, r.try_get("campaign_id")?))),
        None => Ok(None),
    }
}

/// The callback registered from the call, if any.
pub async fn registered(db: &Db, tenant_id: i64, call_record_id: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT id FROM callbacks WHERE tenant_id = $1 AND call_record_id = $2")
        .bind(tenant_id)
        .bind(call_record_id)
        .fetch_optional(&db.pool)
        .await?)
}

#[derive(Debug, Clone)]
pub struct NewCallback<'a> {
    pub tenant_id: i64,
    pub number: &'a str,
    pub campaign_id: Option<i64>,
    pub call_record_id: Option<i64>,
    pub label: Option<&'a str>,
    pub memo: &'a str,
    pub assignee_user_id: Option<i64>,
    pub registered_by: i64,
}

/// Registers a callback: `Some(id)`, or `None` when the same call was registered at the same
/// moment by someone else (theirs is the callback: [`registered`]).
pub async fn create(db: &Db, n: &NewCallback<'_>, now_ms: i64) -> Result<Option<i64>> {
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO callbacks (tenant_id, number, campaign_id, call_record_id, label, memo, assignee_user_id, registered_by, registered_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
    )
    .bind(n.tenant_id)
    .bind(n.number)
    .bind(n.campaign_id)
    .bind(n.call_record_id)
    .bind(n.label)
    .bind(n.memo)
    .bind(n.assignee_user_id)
    .bind(n.registered_by)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await;
    match inserted {
        Ok(r) => {
            let id = r.try_get("id")?;
            tx.commit().await?;
            Ok(Some(id))
        }
        Err(e)
            if n.call_record_id.is_some()
                && matches!(e.as_database_error().map(|d| d.kind()), Some(sqlx::error::ErrorKind::UniqueViolation)) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// A callback's assignee and version, as a write reads them first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub assignee: Option<i64>,
    pub version: i64,
}

pub async fn current(db: &Db, tenant_id: i64, id: i64) -> Result<Option<Current>> {
    let sql = format!("SELECT assignee_user_id, version FROM callbacks WHERE {}", visible_id(tenant_id));
    let r = sqlx::query(&sql).bind(id).fetch_optional(&db.pool).await?;
    match r {
        Some(r) => Ok(Some(Current { assignee: r.try_get("assignee_user_id")?, version: r.try_get("version")? })),
        None => Ok(None),
    }
}

/// What an edit changes; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub memo: Option<String>,
    pub label: Option<Option<String>>,
    pub assignee_user_id: Option<Option<i64>>,
    /// Of [`STATUSES`]; `done` sets the completion time once, `open` clears it.
    pub status: Option<String>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.memo.is_none() && self.label.is_none() && self.assignee_user_id.is_none() && self.status.is_none()
    }
}

/// A bound value of a statement built here.
enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Applies the change if the callback is still at `version`; false when it is not (or gone).
pub async fn update(db: &Db, tenant_id: i64, id: i64, version: i64, c: Change, now_ms: i64) -> Result<bool> {
    let mut sets: Vec<String> = vec!["version = version + 1".into(), format!("updated_at = {now_ms}")];
    let mut binds: Vec<Bind> = vec![Bind::Int(Some(id)), Bind::Int(Some(version))];
    let mut set = |sets: &mut Vec<String>, col: &str, v: Bind| {
        binds.push(v);
        sets.push(format!("{col} = ${}", binds.len()));
    };
    if let Some(m) = c.memo {
        set(&mut sets, "memo", Bind::Text(Some(m)));
    }
    if let Some(l) = c.label {
        set(&mut sets, "label", Bind::Text(l));
    }
    if let Some(a) = c.assignee_user_id {
        set(&mut sets, "assignee_user_id", Bind::Int(a));
    }
    if let Some(s) = c.status {
        let done = s == "done";
        set(&mut sets, "status", Bind::Text(Some(s)));
        sets.push(if done {
            format!("completed_at = COALESCE(completed_at, {now_ms})")
        } else {
            "completed_at = NULL".into()
        });
    }
    let sql = format!("UPDATE callbacks SET {} WHERE {} AND version = $2", sets.join(", "), visible_id(tenant_id));
    Ok(write_one(db, &sql, binds).await? > 0)
}

/// One statement that writes: rows affected. On PostgreSQL a statement of its own (one round trip, its
/// row lock orders the writers); on SQLite in a writing transaction (the process's write gate).
async fn write_one(db: &Db, sql: &str, binds: Vec<Bind>) -> Result<u64> {
    let mut q = sqlx::query(sql);
    for v in binds {
        q = match v {
            Bind::Int(i) => q.bind(i),
            Bind::Text(s) => q.bind(s),
        };
    }
    if db.backend == Backend::Postgres {
        return Ok(q.execute(&db.pool).await?.rows_affected());
    }
    let mut tx = db.begin_write().await?;
    let n = q.execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(n)
}

/// How a claim of a callback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Won,
    /// There, but changed by someone else (another version, or someone has it).
    Lost,
    /// No such callback of the tenant.
    Missing,
}

/// Assigns the callback to `user_id`: only if it is at `version` when given, and only if no one
/// has it when `only_unassigned` (an agent takes only a callback no one has).
pub async fn assign(
    db: &Db,
    tenant_id: i64,
    id: i64,
    user_id: i64,
    version: Option<i64>,
    only_unassigned: bool,
    now_ms: i64,
) -> Result<Claim> {
    let mut conds = vec![visible_id(tenant_id)];
    if let Some(v) = version {
        conds.push(format!("version = {v}"));
    }
    if only_unassigned {
        conds.push("assignee_user_id IS NULL".into());
    }
    if db.backend == Backend::Postgres {
        // One round trip: the claim and, for a lost one, whether the callback is there at all.
        // The row is taken with SKIP LOCKED: of agents claiming at once, the one holding the row
        // wins and the others are answered at once, instead of each waiting in turn for the
        // winner's commit to find the row taken (the queue that made the claims' p99).
        let sql = format!(
            "WITH c AS (SELECT id FROM callbacks WHERE {} FOR UPDATE SKIP LOCKED),
               w AS (UPDATE callbacks SET assignee_user_id = $2, version = version + 1, updated_at = $3
                     WHERE id IN (SELECT id FROM c) RETURNING 1)
             SELECT (SELECT COUNT(*) FROM w) AS won,
               (SELECT COUNT(*) FROM callbacks WHERE {}) AS present",
            conds.join(" AND "),
            visible_id(tenant_id)
        );
        let r = sqlx::query(&sql).bind(id).bind(user_id).bind(now_ms).fetch_one(&db.pool).await?;
        if r.try_get::<i64, _>("present")? == 0 {
            return Ok(Claim::Missing);
        }
        return Ok(if r.try_get::<i64, _>("won")? > 0 { Claim::Won } else { Claim::Lost });
    }
    let sql = format!(
        "UPDATE callbacks SET assignee_user_id = $2, version = version + 1, updated_at = $3 WHERE {}",
        conds.join(" AND ")
    );
    let n = write_one(db, &sql, vec![Bind::Int(Some(id)), Bind::Int(Some(user_id)), Bind::Int(Some(now_ms))]).await?;
    if n > 0 {
        Ok(Claim::Won)
    } else if current(db, tenant_id, id).await?.is_some() {
        Ok(Claim::Lost)
    } else {
        Ok(Claim::Missing)
    }
}

/// The last dial of a callback from the desktop: the lead dialled, when and by whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialled {
    pub lead_id: Option<i64>,
    pub at: Option<i64>,
    pub by: Option<i64>,
}

/// `NotFound` for no such callback of the tenant.
pub async fn dialled(db: &Db, tenant_id: i64, id: i64) -> Result<Dialled> {
    let r =
        sqlx::query("SELECT dialled_lead_id, dialled_at, dialled_by FROM callbacks WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&db.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
    Ok(Dialled { lead_id: r.try_get("dialled_lead_id")?, at: r.try_get("dialled_at")?, by: r.try_get("dialled_by")? })
}

/// Records a dial (before it is placed: the dialer spares a callback's lead the once-per-run
/// rule), or puts the previous one back when the dial failed.
pub async fn set_dialled(db: &Db, tenant_id: i64, id: i64, d: Dialled) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE callbacks SET dialled_lead_id = $1, dialled_at = $2, dialled_by = $3 WHERE id = $4 AND tenant_id = $5",
    )
    .bind(d.lead_id)
    .bind(d.at)
    .bind(d.by)
    .bind(id)
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
