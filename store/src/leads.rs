//! Leads: phone types and the selection of the next dialable leads of a call job.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Db, Result};

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
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneType::Mobile => "mobile",
            PhoneType::Fixed => "fixed",
        }
    }
}

/// A call job's filters (SPEC 4): phone type, attempt range, last-attempt window.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub campaign_id: i64,
    pub phone_type: Option<PhoneType>,
    pub attempts_min: i64,
    pub attempts_max: Option<i64>,
    pub last_attempt_from: Option<i64>,
    pub last_attempt_to: Option<i64>,
}

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
        "SELECT campaign_id, phone_type, attempts_min, attempts_max, last_attempt_from, last_attempt_to
         FROM call_jobs WHERE id = $1 AND tenant_id = $2",
    )
    .bind(job_id)
    .bind(tenant_id)
    .fetch_one(&db.pool)
    .await?;
    let pt: String = r.try_get("phone_type")?;
    Ok(JobFilter {
        campaign_id: r.try_get("campaign_id")?,
        phone_type: match pt.as_str() {
            "mobile" => Some(PhoneType::Mobile),
            "fixed" => Some(PhoneType::Fixed),
            _ => None,
        },
        attempts_min: r.try_get("attempts_min")?,
        attempts_max: r.try_get("attempts_max")?,
        last_attempt_from: r.try_get("last_attempt_from")?,
        last_attempt_to: r.try_get("last_attempt_to")?,
    })
}

/// The next `limit` leads a call job may dial at `now_ms`: scheduled recalls that are due come first
/// (oldest due first), then open leads matching the job's filters, fewest attempts first. Leads with
/// an open recall wait for it; agent-owned recalls are dialled by their agent, not by the job.
pub async fn next_dialable(
    db: &Db,
    tenant_id: i64,
    job_id: i64,
    f: &JobFilter,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Candidate>> {
    let mut out = Vec::with_capacity(limit as usize);
    let recalls = sqlx::query(
        "SELECT r.id AS recall_id, l.id AS lead_id, l.tel FROM recalls r JOIN leads l ON l.id = r.lead_id
         WHERE r.tenant_id = $1 AND r.campaign_id = $2 AND r.status = 'open' AND r.agent_user_id IS NULL
           AND r.due_at <= $3 AND l.state = 'open'
           AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $4 AND tenant_id = $1)
         ORDER BY r.due_at, r.id LIMIT $5",
    )
    .bind(tenant_id)
    .bind(f.campaign_id)
    .bind(now_ms)
    .bind(job_id)
    .bind(limit)
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
    let mut sql = String::from(
        "SELECT l.id AS lead_id, l.tel FROM leads l
         WHERE l.tenant_id = $1 AND l.list_id IN (SELECT list_id FROM call_job_lists WHERE job_id = $2 AND tenant_id = $1)
           AND l.state = 'open' AND l.attempts >= $3
           AND NOT EXISTS (SELECT 1 FROM recalls r WHERE r.lead_id = l.id AND r.status = 'open')",
    );
    let mut n = 3;
    let mut next = |sql: &mut String, clause: &str| {
        n += 1;
        sql.push_str(&clause.replace('?', &format!("${n}")));
    };
    if f.attempts_max.is_some() {
        next(&mut sql, " AND l.attempts <= ?");
    }
    if f.phone_type.is_some() {
        next(&mut sql, " AND l.phone_type = ?");
    }
    if f.last_attempt_from.is_some() {
        next(&mut sql, " AND l.last_attempt_at >= ?");
    }
    if f.last_attempt_to.is_some() {
        next(&mut sql, " AND l.last_attempt_at <= ?");
    }
    next(&mut sql, " ORDER BY l.attempts, l.id LIMIT ?");
    let mut q = sqlx::query(&sql).bind(tenant_id).bind(job_id).bind(f.attempts_min);
    if let Some(v) = f.attempts_max {
        q = q.bind(v);
    }
    if let Some(pt) = f.phone_type {
        q = q.bind(pt.as_str());
    }
    if let Some(v) = f.last_attempt_from {
        q = q.bind(v);
    }
    if let Some(v) = f.last_attempt_to {
        q = q.bind(v);
    }
    for r in q.bind(rest).fetch_all(&db.pool).await? {
        out.push(Candidate { lead_id: r.try_get("lead_id")?, tel: r.try_get("tel")?, recall_id: None });
    }
    Ok(out)
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
