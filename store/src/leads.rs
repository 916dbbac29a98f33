//! Leads: phone types and the selection of the next dialable leads of a call job.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Db, Result, WriteTx};

/// Why a lead was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefused {
    /// The batch has this number already (SPEC 4's text: 指定したバッチ内に同一の電話番号が既に登録されています).
    DuplicateTel,
    /// The list holds its maximum.
    ListFull,
}

/// Locks a batch's numbers and its lists' counts for the rest of `tx` against every other writer
/// of them (imports' publications, single leads): on PostgreSQL the batch's row `FOR UPDATE`; on
/// SQLite the write gate that `tx` holds already orders them. Statements after it see what the
/// writers before it committed.
pub async fn lock_batch(db: &Db, tx: &mut WriteTx, tenant_id: i64, batch_id: i64) -> Result<()> {
    if db.is_postgres() {
        sqlx::query("SELECT id FROM batches WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(batch_id)
            .bind(tenant_id)
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Checks a lead about to be written into `list_id` (a new one, or `lead_id` given a new number)
/// against what is committed, under its batch's lock ([`lock_batch`], taken here for the rest of
/// `tx`): the list's cap `max_per_list` for a new lead, and the batch's duplicate rule for `tel`
/// when the list forbids duplicates. A list that is gone is `NotFound`.
#[allow(clippy::too_many_arguments)]
pub async fn check_new_lead(
    db: &Db,
    tx: &mut WriteTx,
    tenant_id: i64,
    list_id: i64,
    lead_id: Option<i64>,
    tel: Option<&str>,
    max_per_list: i64,
) -> Result<std::result::Result<(), CreateRefused>> {
    let batch_id: i64 = sqlx::query("SELECT batch_id FROM customer_lists WHERE id = $1 AND tenant_id = $2")
        .bind(list_id)
        .bind(tenant_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("batch_id")?;
    lock_batch(db, tx, tenant_id, batch_id).await?;
    // Read again under the lock: the rule may have changed while it was waited for.
    let allow: i64 = sqlx::query("SELECT allow_duplicates FROM customer_lists WHERE id = $1 AND tenant_id = $2")
        .bind(list_id)
        .bind(tenant_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("allow_duplicates")?;
    if lead_id.is_none() {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM leads WHERE list_id = $1 AND tenant_id = $2")
            .bind(list_id)
            .bind(tenant_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
        if n >= max_per_list {
            return Ok(Err(CreateRefused::ListFull));
        }
    }
    if let (Some(tel), 0) = (tel, allow) {
        let dup = sqlx::query("SELECT id FROM leads WHERE batch_id = $1 AND tel = $2 AND tenant_id = $3 AND id <> $4")
            .bind(batch_id)
            .bind(tel)
            .bind(tenant_id)
            .bind(lead_id.unwrap_or(0))
            .fetch_optional(&mut **tx)
            .await?;
        if dup.is_some() {
            return Ok(Err(CreateRefused::DuplicateTel));
        }
    }
    Ok(Ok(()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhoneType {
    /// 070, 080 and 090 numbers.
    Mobile,
    Fixed,
}

impl PhoneType {
    pub fn of(tel: &str) -> PhoneType {
        if ["070", "080", "090"].iter().any(|p| tel.starts_with(p)) {
            PhoneType::Mobile
        } else {
            PhoneType::Fixed
        }
    }
    /// A call job's phone-type filter (`any`, `mobile`, `fixed`): `None` for any.
    pub fn filter(s: &str) -> Option<PhoneType> {
        match s {
            "mobile" => Some(PhoneType::Mobile),
            "fixed" => Some(PhoneType::Fixed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PhoneType::Mobile => "mobile",
            PhoneType::Fixed => "fixed",
        }
    }
}

/// A call job's filters (SPEC 4): phone type, attempt range, last-attempt window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub campaign_id: i64,
    pub phone_type: Option<PhoneType>,
    pub attempts_min: i64,
    pub attempts_max: Option<i64>,
    pub last_attempt_from: Option<i64>,
    pub last_attempt_to: Option<i64>,
    /// 前回発信時間帯: the tenant-local band of the day the lead's last call fell in, on any day,
    /// as `HH:MM-HH:MM` (from inclusive, to exclusive; from > to wraps past midnight).
    pub last_attempt_band: Option<String>,
    /// The dialer's run of a job: leads attempted at or after this time are not picked again.
    pub not_attempted_since: Option<i64>,
    /// The 72-hour rule: leads whose last call was abandoned at or after this time are not picked.
    pub not_abandoned_since: Option<i64>,
    /// The tenant's date today (`YYYY-MM-DD`): only leads of batches whose period (実施期間)
    /// holds it are picked (BIZTEL §1.2). `None`: no date rule (counts for screens).
    pub period_day: Option<String>,
    /// The agent picking for their own preview (`None`: a paced dial). [`next_dialable`] never
    /// picks a lead held for another agent's preview; this agent's own hold does not exclude.
    pub preview: Option<PreviewFilter>,
}

/// An agent picking their next preview lead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreviewFilter {
    pub user_id: i64,
    /// Leads skipped at or after this time are not picked (the start of the job's run).
    pub skipped_since: i64,
}

/// The rule every lead selection keeps: a lead held for an agent's preview until after `?1` is
/// picked only by that agent (`?2`; 0 for a paced dial). `?1`/`?2` are replaced by the statement's
/// parameter numbers.
pub(crate) const NOT_HELD_BY_ANOTHER: &str =
    " AND (l.preview_until IS NULL OR l.preview_until <= ?1 OR l.preview_user_id = ?2)";
/// Leads an agent skipped at or after `?1` are not shown again.
pub(crate) const NOT_SKIPPED_SINCE: &str = " AND (l.preview_skipped_at IS NULL OR l.preview_skipped_at < ?1)";

/// `clause` with its `?1`, `?2`, ... replaced by the statement's parameters `$params[0]`, ....
pub(crate) fn numbered(clause: &str, params: &[usize]) -> String {
    params
        .iter()
        .enumerate()
        .rev()
        .fold(clause.to_owned(), |c, (i, n)| c.replace(&format!("?{}", i + 1), &format!("${n}")))
}

/// The number a dial of lead `l` takes: the one `leads.next_number_id` names among the lead's
/// other numbers while its campaign moves on after no answer, else the main number.
pub const DIAL_TEL: &str = "COALESCE((SELECT n.tel FROM lead_numbers n
    WHERE n.id = l.next_number_id AND n.tenant_id = l.tenant_id AND n.lead_id = l.id
      AND EXISTS (SELECT 1 FROM batches b JOIN campaigns c ON c.id = b.campaign_id AND c.tenant_id = b.tenant_id
                  WHERE b.id = l.batch_id AND b.tenant_id = l.tenant_id AND c.next_number_on_no_answer = 1)), l.tel)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub lead_id: i64,
    pub tel: String,
    /// Set when the lead is dialled because its scheduled recall fell due.
    pub recall_id: Option<i64>,
}

/// Loads a call job's filters.
pub async fn job_filter(db: &Db, tenant_id: i64, job_id: i64) -> Result<JobFilter> {
    let r = sqlx::query(
        "SELECT campaign_id, phone_type, attempts_min, attempts_max, last_attempt_from, last_attempt_to,
                last_attempt_band_from, last_attempt_band_to
         FROM call_jobs WHERE id = $1 AND tenant_id = $2",
    )
    .bind(job_id)
    .bind(tenant_id)
    .fetch_one(&db.pool)
    .await?;
    let pt: String = r.try_get("phone_type")?;
    Ok(JobFilter {
        campaign_id: r.try_get("campaign_id")?,
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
    })
}

/// A job's 前回発信時間帯 from its two columns (both set and different, else none).
pub fn band(from: Option<String>, to: Option<String>) -> Option<String> {
    from.zip(to).filter(|(f, t)| f != t).map(|(f, t)| format!("{f}-{t}"))
}

/// Whether the `HH:MM` column `time` lies in the band `from`-`to` (SQL expressions; from
/// inclusive, to exclusive, wrapping past midnight when from > to).
pub fn in_band_sql(time: &str, from: &str, to: &str) -> String {
    format!("({from} < {to} AND {time} >= {from} AND {time} < {to} OR {from} > {to} AND ({time} >= {from} OR {time} < {to}))")
}

/// The next `limit` leads a call job may dial at `now_ms`: scheduled recalls that are due come first
/// (oldest due first), then open leads matching the job's filters, fewest attempts first. Leads with
/// an open recall wait for it; agent-owned recalls are dialled by their agent, not by the job.
/// Leads held for another agent's preview are not picked ([`NOT_HELD_BY_ANOTHER`]).
pub async fn next_dialable(
    db: &Db,
    tenant_id: i64,
    job_id: i64,
    f: &JobFilter,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Candidate>> {
    let mut out = Vec::with_capacity(limit as usize);
    let viewer = f.preview.map_or(0, |p| p.user_id);
    let skipped_since = f.preview.map_or(i64::MAX, |p| p.skipped_since);
    let sql = format!(
        "SELECT r.id AS recall_id, l.id AS lead_id, {DIAL_TEL} AS tel FROM recalls r JOIN leads l ON l.id = r.lead_id
         WHERE r.tenant_id = $1 AND r.campaign_id = $2 AND r.status = 'open' AND r.agent_user_id IS NULL
           AND r.due_at <= $3 AND l.state = 'open'
           AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $4 AND tenant_id = $1){}{}
         ORDER BY r.due_at, r.id LIMIT $5",
        numbered(NOT_HELD_BY_ANOTHER, &[6, 7]),
        numbered(NOT_SKIPPED_SINCE, &[8])
    );
    let recalls = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(f.campaign_id)
        .bind(now_ms)
        .bind(job_id)
        .bind(limit)
        .bind(now_ms)
        .bind(viewer)
        .bind(skipped_since)
        .fetch_all(&db.pool)
        .await?;
    for r in recalls {
        out.push(Candidate {
            lead_id: r.try_get("lead_id")?,
            tel: r.try_get("tel")?,
            recall_id: Some(r.try_get("recall_id")?),
        });
    }
    let rest = limit - out.len() as i64;
    if rest <= 0 {
        return Ok(out);
    }
    let (mut sql, binds) = open_leads_where(f, &format!("l.id AS lead_id, {DIAL_TEL} AS tel"));
    let n = binds.len() + 3;
    sql.push_str(&numbered(NOT_HELD_BY_ANOTHER, &[n, n + 1]));
    sql.push_str(&numbered(NOT_SKIPPED_SINCE, &[n + 2]));
    sql.push_str(&format!(" ORDER BY l.attempts, l.id LIMIT ${}", n + 3));
    let mut q = sqlx::query(&sql).bind(tenant_id).bind(job_id);
    for b in &binds {
        q = q.bind(*b);
    }
    for r in q.bind(now_ms).bind(viewer).bind(skipped_since).bind(rest).fetch_all(&db.pool).await? {
        out.push(Candidate { lead_id: r.try_get("lead_id")?, tel: r.try_get("tel")?, recall_id: None });
    }
    Ok(out)
}

/// `SELECT <columns> FROM leads l WHERE ...` for the open leads a job may dial (its lists and
/// filters, no open recall), with `$1` the tenant and `$2` the job; the other parameters, in order,
/// are returned for binding from `$3` on.
fn open_leads_where<'a>(f: &'a JobFilter, columns: &str) -> (String, Vec<LeadBind<'a>>) {
    let mut sql = format!(
        "SELECT {columns} FROM leads l
         WHERE l.tenant_id = $1 AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $2 AND tenant_id = $1)
           AND l.state = 'open'
           AND NOT EXISTS (SELECT 1 FROM recalls r WHERE r.lead_id = l.id AND r.status = 'open')"
    );
    let mut binds: Vec<LeadBind<'a>> = Vec::new();
    let mut clause = |sql: &mut String, text: &str, b: LeadBind<'a>| {
        binds.push(b);
        // Every `?` of one clause is the same parameter.
        sql.push_str(&text.replace('?', &format!("${}", binds.len() + 2)));
    };
    clause(&mut sql, " AND l.attempts >= ?", LeadBind::I(f.attempts_min));
    if let Some(v) = f.attempts_max {
        clause(&mut sql, " AND l.attempts <= ?", LeadBind::I(v));
    }
    if let Some(pt) = f.phone_type {
        clause(&mut sql, " AND l.phone_type = ?", LeadBind::S(pt.as_str()));
    }
    if let Some(v) = f.last_attempt_from {
        clause(&mut sql, " AND l.last_attempt_at >= ?", LeadBind::I(v));
    }
    if let Some(v) = f.last_attempt_to {
        clause(&mut sql, " AND l.last_attempt_at <= ?", LeadBind::I(v));
    }
    if let Some(b) = &f.last_attempt_band {
        let cond = in_band_sql("l.last_attempt_time", "SUBSTR(?, 1, 5)", "SUBSTR(?, 7, 5)");
        clause(&mut sql, &format!(" AND l.last_attempt_time IS NOT NULL AND {cond}"), LeadBind::S(b));
    }
    if let Some(v) = f.not_attempted_since {
        // Each lead once per run, and a number is never taken into two running jobs over the same
        // list (BIZTEL §2.7): a lead attempted since the start of any running job over its list
        // waits, whichever job dialled it.
        clause(
            &mut sql,
            " AND (l.last_attempt_at IS NULL OR (l.last_attempt_at < ? AND NOT EXISTS (
                 SELECT 1 FROM call_job_lists jl2 JOIN call_jobs j2 ON j2.id = jl2.job_id
                 WHERE jl2.list_id = l.list_id AND jl2.tenant_id = l.tenant_id AND j2.status = 'running'
                   AND j2.started_at IS NOT NULL AND j2.started_at <= l.last_attempt_at)))",
            LeadBind::I(v),
        );
    }
    if let Some(day) = &f.period_day {
        clause(
            &mut sql,
            " AND l.batch_id IN (SELECT b.id FROM batches b WHERE b.tenant_id = l.tenant_id AND b.start_date <= ? AND b.end_date >= ?)",
            LeadBind::S(day),
        );
    }
    if let Some(v) = f.not_abandoned_since {
        clause(
            &mut sql,
            " AND NOT (l.last_result = 'abandoned' AND l.last_attempt_at IS NOT NULL AND l.last_attempt_at >= ?)",
            LeadBind::I(v),
        );
    }
    (sql, binds)
}

/// A parameter of [`open_leads_where`].
#[derive(Clone, Copy, Debug)]
enum LeadBind<'a> {
    I(i64),
    S(&'a str),
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for LeadBind<'q> {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self {
            LeadBind::I(v) => <i64 as sqlx::Encode<sqlx::Any>>::encode_by_ref(v, buf),
            LeadBind::S(v) => <&str as sqlx::Encode<sqlx::Any>>::encode_by_ref(v, buf),
        }
    }
}

impl sqlx::Type<sqlx::Any> for LeadBind<'_> {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<sqlx::Any>>::type_info()
    }
    fn compatible(_ty: &sqlx::any::AnyTypeInfo) -> bool {
        true
    }
}

/// How many leads a job may still dial (as [`next_dialable`] would pick them, due recalls aside).
pub async fn count_dialable(db: &Db, tenant_id: i64, job_id: i64, f: &JobFilter) -> Result<i64> {
    let (sql, binds) = open_leads_where(f, "COUNT(*) AS n");
    let mut q = sqlx::query(&sql).bind(tenant_id).bind(job_id);
    for b in &binds {
        q = q.bind(*b);
    }
    Ok(q.fetch_one(&db.pool).await?.try_get("n")?)
}

/// A running call job and its remaining leads (残りリード).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRemaining {
    pub job_id: i64,
    pub campaign_id: i64,
    pub dialing_group_id: i64,
    /// Leads the job will still dial in this run: open, matching its filters, without an open
    /// recall, not dialled since the job started ([`count_dialable`] as the dialer counts them, the
    /// 72-hour rule aside).
    pub remaining: i64,
}

/// The remaining leads of each running call job of the tenant (at most a handful run at once).
pub async fn remaining_of_running_jobs(db: &Db, tenant_id: i64) -> Result<Vec<JobRemaining>> {
    let jobs = sqlx::query(
        "SELECT id, campaign_id, dialing_group_id, started_at FROM call_jobs WHERE tenant_id = $1 AND status = 'running' ORDER BY id",
    )
    .bind(tenant_id)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(jobs.len());
    for j in jobs {
        let job_id: i64 = j.try_get("id")?;
        let mut f = job_filter(db, tenant_id, job_id).await?;
        f.not_attempted_since = j.try_get("started_at")?;
        out.push(JobRemaining {
            job_id,
            campaign_id: j.try_get("campaign_id")?,
            dialing_group_id: j.try_get("dialing_group_id")?,
            remaining: count_dialable(db, tenant_id, job_id, &f).await?,
        });
    }
    Ok(out)
}

/// A tenant's custom lead field (カスタム項目).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomField {
    pub key: String,
    pub label: String,
    /// text, number, date, phone, email, long_text, select, radio, checkbox or postal_code.
    pub kind: String,
    /// Choices of select, radio and checkbox.
    pub options: Vec<String>,
}

/// The tenant's custom lead fields, in the order they were made.
pub async fn custom_fields(db: &Db, tenant_id: i64) -> Result<Vec<CustomField>> {
    let rows = sqlx::query("SELECT key, label, kind, options FROM custom_fields WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CustomField {
                key: r.try_get("key")?,
                label: r.try_get("label")?,
                kind: r.try_get("kind")?,
                options: serde_json::from_str(&r.try_get::<String, _>("options")?).unwrap_or_default(),
            })
        })
        .collect()
}

/// One lead of a list export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub id: i64,
    pub name: String,
    pub kana: String,
    pub tel: String,
    pub remarks: Option<String>,
    /// JSON text (an array of strings).
    pub tags: String,
    /// JSON text (an object of custom field values).
    pub custom: String,
    pub state: String,
    pub attempts: i64,
    pub last_result: Option<String>,
    pub last_attempt_at: Option<i64>,
}

/// Which leads of a list an export holds.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter<'a> {
    /// Only leads dialled exactly this many times (未発信 = 0, 2回目 = 1, ...).
    pub attempts: Option<i64>,
    /// Free text over these columns (see [`crate::search`]).
    pub search: Option<(&'a str, &'a [crate::search::Column<'a>])>,
}

/// The next `limit` leads of a list after lead id `after`, in id order (an export reads the list
/// page by page, never all at once).
pub async fn export_page(
    db: &Db,
    tenant_id: i64,
    list_id: i64,
    f: &ExportFilter<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportRow>> {
    let mut sql = String::from(
        "SELECT t.id, t.name, t.kana, t.tel, t.remarks, t.tags, t.custom, t.state, t.attempts, t.last_result, t.last_attempt_at
         FROM leads t WHERE t.tenant_id = $1 AND t.list_id = $2 AND t.id > $3 AND t.attempts >= $4 AND t.attempts <= $5",
    );
    let cond = f.search.and_then(|(q, cols)| crate::search::condition(cols, q, 7));
    if let Some(c) = &cond {
        sql.push_str(&format!(" AND ({})", c.sql));
    }
    sql.push_str(" ORDER BY t.id LIMIT $6");
    let (min, max) = f.attempts.map_or((0, i64::MAX), |n| (n, n));
    let mut q = sqlx::query(&sql).bind(tenant_id).bind(list_id).bind(after).bind(min).bind(max).bind(limit);
    for b in cond.map(|c| c.binds).unwrap_or_default() {
        q = q.bind(b);
    }
    let rows = q.fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            Ok(ExportRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                kana: r.try_get("kana")?,
                tel: r.try_get("tel")?,
                remarks: r.try_get("remarks")?,
                tags: r.try_get("tags")?,
                custom: r.try_get("custom")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                last_result: r.try_get("last_result")?,
                last_attempt_at: r.try_get("last_attempt_at")?,
            })
        })
        .collect()
}

/// The lead's customer list, in the write's transaction; `NotFound` for no such lead of the tenant.
pub async fn list_of_lead_in(conn: &mut sqlx::AnyConnection, tenant_id: i64, lead_id: i64) -> Result<i64> {
    Ok(sqlx::query("SELECT list_id FROM leads WHERE id = $1 AND tenant_id = $2")
        .bind(lead_id)
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get::<i64, _>("list_id")?)
}

/// The campaign of the lead's batch; `NotFound` for no such lead of the tenant.
pub async fn campaign_of_lead(db: &Db, tenant_id: i64, lead_id: i64) -> Result<i64> {
    Ok(sqlx::query(
        "SELECT b.campaign_id FROM leads l JOIN batches b ON b.id = l.batch_id WHERE l.id = $1 AND l.tenant_id = $2",
    )
    .bind(lead_id)
    .bind(tenant_id)
    .fetch_one(&db.pool)
    .await?
    .try_get("campaign_id")?)
}

/// A custom field's type; `NotFound` for no such field of the tenant.
pub async fn custom_field_kind(db: &Db, tenant_id: i64, id: i64) -> Result<String> {
    Ok(sqlx::query("SELECT kind FROM custom_fields WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?
        .try_get("kind")?)
}

#[cfg(test)]
mod tests {
    use super::PhoneType;

    #[test]
    fn phone_types() {
        assert_eq!(PhoneType::of("09012345678"), PhoneType::Mobile);
        assert_eq!(PhoneType::of("07012345678"), PhoneType::Mobile);
        assert_eq!(PhoneType::of("08012345678"), PhoneType::Mobile);
        assert_eq!(PhoneType::of("0312345678"), PhoneType::Fixed);
        assert_eq!(PhoneType::of("0120123456"), PhoneType::Fixed);
    }
}
