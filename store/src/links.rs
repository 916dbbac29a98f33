//! Link tables (`call_job_lists`, ...): the ids a record links to, read for many records at once.
//!
//! The names come from the API's resource specs (static strings, never input).

use std::collections::HashMap;

use sqlx::Row;

use crate::{Db, Result};

/// Owners per statement (a page of a list holds at most 500).
const OWNERS_PER_QUERY: usize = 500;

/// A link table: `owner` names the linking record, `item` the linked one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub table: &'static str,
    pub owner: &'static str,
    pub item: &'static str,
}

/// The linked ids of each owner (in id order); owners without links are absent.
pub async fn ids_by_owner(db: &Db, tenant_id: i64, link: Link, owners: &[i64]) -> Result<HashMap<i64, Vec<i64>>> {
    let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
    for chunk in owners.chunks(OWNERS_PER_QUERY) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT {owner} AS o, {item} AS i FROM {table} WHERE tenant_id = $1 AND {owner} IN ({marks}) ORDER BY {item}",
            owner = link.owner,
            item = link.item,
            table = link.table,
            marks = marks.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(tenant_id);
        for o in chunk {
            q = q.bind(*o);
        }
        for r in q.fetch_all(&db.pool).await? {
            out.entry(r.try_get("o")?).or_default().push(r.try_get("i")?);
        }
    }
    Ok(out)
}
