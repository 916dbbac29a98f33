//! The generic resources' statements. The API describes each plain resource once as data (its
//! `Spec`: table, columns, filters, sorts, search, who sees which rows); this module turns such a
//! description into SQL: a page of rows, one row, whether a row is visible, insert, update,
//! delete. Every statement filters on the caller's tenant, so another tenant's record reads as
//! a missing one.
//!
//! Names of tables and columns come from the API's static descriptions, never from a request;
//! every value from a request is bound.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use crate::search::{self, Column};
use crate::{Db, Result, WriteTx};

/// A value bound to a statement, typed for both backends (a NULL keeps its column's type).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    I(i64),
    F(f64),
    S(String),
    B(bool),
    NullI,
    NullF,
    NullS,
    NullB,
}

impl Val {
    fn bind<'q>(self, q: Query<'q, Any, AnyArguments<'q>>) -> Query<'q, Any, AnyArguments<'q>> {
        match self {
            Val::I(v) => q.bind(v),
            Val::F(v) => q.bind(v),
            Val::S(v) => q.bind(v),
            Val::B(v) => q.bind(v as i64),
            Val::NullI => q.bind(None::<i64>),
            Val::NullF => q.bind(None::<f64>),
            Val::NullS => q.bind(None::<String>),
            Val::NullB => q.bind(None::<i64>),
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::I(v) => Some(*v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::S(v) => Some(v),
            _ => None,
        }
    }
}

/// What is read of a table: its columns (besides `id`) and values computed in SQL, each an
/// expression over the table's alias `t`.
#[derive(Debug, Clone)]
pub struct Table<'a> {
    pub name: &'a str,
    pub columns: Vec<&'a str>,
    pub computed: Vec<(&'a str, &'a str)>,
}

impl Table<'_> {
    fn select_list(&self) -> String {
        let mut cols = vec!["t.id AS id".to_string()];
        cols.extend(self.columns.iter().map(|c| format!("t.{c} AS {c}")));
        cols.extend(self.computed.iter().map(|(name, expr)| format!("({expr}) AS {name}")));
        cols.join(", ")
    }
}

/// Which rows of a table a caller sees: its tenant's, and of them, for a role without
/// tenant-wide sight, those granted to it (`granted`) and those naming it (`own`).
#[derive(Debug, Clone, Copy)]
pub struct Sight<'a> {
    pub tenant_id: i64,
    /// `(column, table, user)`: the row's `column` is an id of `table` granted to `user` (see
    /// [`granted_ids`]).
    pub granted: Option<(&'a str, &'a str, i64)>,
    /// `(column, user)`: the row's `column` is the user.
    pub own: Option<(&'a str, i64)>,
}

impl Sight<'_> {
    fn sql(&self) -> String {
        let mut w = format!("t.tenant_id = {}", self.tenant_id);
        if let Some((col, table, user)) = self.granted {
            if let Some(ids) = granted_ids(table, self.tenant_id, user) {
                w.push_str(&format!(" AND t.{col} IN ({ids})"));
            }
        }
        if let Some((col, user)) = self.own {
            w.push_str(&format!(" AND t.{col} = {user}"));
        }
        w
    }
}

/// Ids of `table` granted to `user` (directly or through its dialing groups), as a subquery;
/// `None` for a table that grants do not scope. Campaigns and lists are granted; a batch is seen
/// through its campaign, a list also through its batch's campaign, a lead through its list.
pub fn granted_ids(table: &str, tenant_id: i64, user: i64) -> Option<String> {
    let (t, u) = (tenant_id, user);
    let granted = |kind: &str| {
        format!(
            "SELECT resource_id FROM grants WHERE tenant_id = {t} AND resource_kind = '{kind}' AND (user_id = {u} OR group_id IN (SELECT group_id FROM dialing_group_agents WHERE user_id = {u}))"
        )
    };
    match table {
        "campaigns" => Some(granted("campaign")),
        "batches" => Some(format!("SELECT id FROM batches WHERE tenant_id = {t} AND campaign_id IN ({})", granted("campaign"))),
        "customer_lists" => Some(format!(
            "{} UNION SELECT cl.id FROM customer_lists cl JOIN batches b ON b.id = cl.batch_id WHERE cl.tenant_id = {t} AND b.campaign_id IN ({})",
            granted("list"),
            granted("campaign")
        )),
        "leads" => Some(format!(
            "SELECT id FROM leads WHERE tenant_id = {t} AND list_id IN ({})",
            granted_ids("customer_lists", t, u).unwrap_or_default()
        )),
        _ => None,
    }
}

/// A condition of a list.
#[derive(Debug, Clone)]
pub enum Cond<'a> {
    /// `t.column = value`.
    Eq(&'a str, Val),
    /// Every term of the text in one of the columns (see [`search`]).
    Search(&'a [Column<'a>], &'a str),
}

/// The order of a list: by a column, ascending or descending, then by id; `None`: by id.
pub type Order<'a> = Option<(&'a str, bool)>;

/// A page of the rows `sight` sees that meet every condition, and how many there are in all.
pub async fn list(
    db: &Db,
    table: &Table<'_>,
    sight: Sight<'_>,
    conds: Vec<Cond<'_>>,
    order: Order<'_>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<AnyRow>)> {
    let mut wheres = vec![sight.sql()];
    let mut binds = Vec::new();
    for c in conds {
        match c {
            Cond::Eq(col, v) => {
                binds.push(v);
                wheres.push(format!("t.{col} = ${}", binds.len()));
            }
            Cond::Search(columns, text) => {
                if let Some(s) = search::condition(columns, text, binds.len() + 1) {
                    wheres.push(format!("({})", s.sql));
                    binds.extend(s.binds.into_iter().map(Val::S));
                }
            }
        }
    }
    let where_ = wheres.join(" AND ");
    let order = match order {
        Some((col, desc)) => format!("t.{col} {}, t.id", if desc { "DESC" } else { "ASC" }),
        None => "t.id".into(),
    };
    let count_sql = format!("SELECT COUNT(*) AS n FROM {} t WHERE {where_}", table.name);
    let mut q = sqlx::query(&count_sql);
    for b in binds.iter().cloned() {
        q = b.bind(q);
    }
    let total: i64 = q.fetch_one(&db.pool).await?.try_get("n")?;
    let sql = format!(
        "SELECT {} FROM {} t WHERE {where_} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
        table.select_list(),
        table.name
    );
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = b.bind(q);
    }
    Ok((total, q.fetch_all(&db.pool).await?))
}

/// One row, if `sight` sees it.
pub async fn one(db: &Db, table: &Table<'_>, sight: Sight<'_>, id: i64) -> Result<Option<AnyRow>> {
    let sql = format!("SELECT {} FROM {} t WHERE t.id = $1 AND {}", table.select_list(), table.name, sight.sql());
    Ok(sqlx::query(&sql).bind(id).fetch_optional(&db.pool).await?)
}

/// Whether the row exists and `sight` sees it.
pub async fn visible(db: &Db, table: &str, sight: Sight<'_>, id: i64) -> Result<bool> {
    let sql = format!("SELECT t.id AS id FROM {table} t WHERE t.id = $1 AND {}", sight.sql());
    Ok(sqlx::query(&sql).bind(id).fetch_optional(&db.pool).await?.is_some())
}

/// Whether a referenced record exists in the tenant and, for `granted_to` a user without
/// tenant-wide sight, is granted to it (see [`granted_ids`]).
pub async fn referable(db: &Db, table: &str, tenant_id: i64, granted_to: Option<i64>, id: i64) -> Result<bool> {
    let mut sql = format!("SELECT 1 AS one FROM {table} WHERE id = $1 AND tenant_id = $2");
    if let Some(ids) = granted_to.and_then(|u| granted_ids(table, tenant_id, u)) {
        sql.push_str(&format!(" AND id IN ({ids})"));
    }
    Ok(sqlx::query(&sql).bind(id).bind(tenant_id).fetch_optional(&db.pool).await?.is_some())
}

/// `q` with the columns' values bound after its keys.
fn with_values<'q>(mut q: Query<'q, Any, AnyArguments<'q>>, cols: &[(&str, Val)]) -> Query<'q, Any, AnyArguments<'q>> {
    for (_, v) in cols.iter().cloned() {
        q = v.bind(q);
    }
    q
}

fn insert_sql(table: &str, cols: &[(&str, Val)]) -> String {
    let mut names = vec!["tenant_id"];
    let mut placeholders = vec!["$1".to_string()];
    for (i, (c, _)) in cols.iter().enumerate() {
        names.push(c);
        placeholders.push(format!("${}", i + 2));
    }
    format!("INSERT INTO {table} ({}) VALUES ({}) RETURNING id", names.join(", "), placeholders.join(", "))
}

fn update_sql(table: &str, cols: &[(&str, Val)]) -> String {
    let sets: Vec<String> = cols.iter().enumerate().map(|(i, (c, _))| format!("{c} = ${}", i + 3)).collect();
    format!("UPDATE {table} SET {} WHERE id = $1 AND tenant_id = $2", sets.join(", "))
}

/// Inserts a row of the tenant; returns its id.
pub async fn insert(db: &Db, table: &str, tenant_id: i64, cols: &[(&str, Val)]) -> Result<i64> {
    let sql = insert_sql(table, cols);
    let q = with_values(sqlx::query(&sql).bind(tenant_id), cols);
    Ok(q.fetch_one(&db.pool).await?.try_get("id")?)
}

/// [`insert`] inside a write transaction.
pub async fn insert_in(tx: &mut WriteTx, table: &str, tenant_id: i64, cols: &[(&str, Val)]) -> Result<i64> {
    let sql = insert_sql(table, cols);
    let q = with_values(sqlx::query(&sql).bind(tenant_id), cols);
    Ok(q.fetch_one(&mut **tx).await?.try_get("id")?)
}

/// Sets columns of a row of the tenant (nothing for no columns).
pub async fn update(db: &Db, table: &str, tenant_id: i64, id: i64, cols: &[(&str, Val)]) -> Result<()> {
    if cols.is_empty() {
        return Ok(());
    }
    let sql = update_sql(table, cols);
    let q = with_values(sqlx::query(&sql).bind(id).bind(tenant_id), cols);
    q.execute(&db.pool).await?;
    Ok(())
}

/// [`update`] inside a write transaction.
pub async fn update_in(tx: &mut WriteTx, table: &str, tenant_id: i64, id: i64, cols: &[(&str, Val)]) -> Result<()> {
    if cols.is_empty() {
        return Ok(());
    }
    let sql = update_sql(table, cols);
    let q = with_values(sqlx::query(&sql).bind(id).bind(tenant_id), cols);
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Deletes a row of the tenant.
pub async fn delete(db: &Db, table: &str, tenant_id: i64, id: i64) -> Result<()> {
    let sql = format!("DELETE FROM {table} WHERE id = $1 AND tenant_id = $2");
    sqlx::query(&sql).bind(id).bind(tenant_id).execute(&db.pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sight_filters_the_tenant_then_grants_then_the_user() {
        let all = Sight { tenant_id: 7, granted: None, own: None };
        assert_eq!(all.sql(), "t.tenant_id = 7");
        let op = Sight { tenant_id: 7, granted: Some(("campaign_id", "campaigns", 3)), own: Some(("user_id", 3)) };
        let w = op.sql();
        assert!(
            w.starts_with("t.tenant_id = 7 AND t.campaign_id IN (SELECT resource_id FROM grants WHERE tenant_id = 7")
        );
        assert!(w.ends_with(" AND t.user_id = 3"), "{w}");
        assert!(granted_ids("users", 7, 3).is_none(), "users are not scoped by grants");
        assert!(granted_ids("leads", 7, 3).unwrap().contains("UNION"), "a lead through its list, lists two ways");
    }

    #[test]
    fn writes_number_their_parameters_after_the_keys() {
        let cols = [("name", Val::S("a".into())), ("n", Val::NullI)];
        assert_eq!(
            insert_sql("things", &cols),
            "INSERT INTO things (tenant_id, name, n) VALUES ($1, $2, $3) RETURNING id"
        );
        assert_eq!(update_sql("things", &cols), "UPDATE things SET name = $3, n = $4 WHERE id = $1 AND tenant_id = $2");
    }
}
