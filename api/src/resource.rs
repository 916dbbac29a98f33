//! A resource described once as data: the same [`Spec`] drives its SQL, its validation, its JSON
//! and its OpenAPI document, so that list/get/create/update/delete behave alike everywhere
//! (tenant filter, role checks, grants, pagination, sorting, filtering, errors naming the field).
//!
//! Invariant: every statement (`store::resource` makes them from the `Spec`) filters on the
//! caller's tenant; a record of another tenant is indistinguishable from a missing one (404).

use std::future::Future;
use std::pin::Pin;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, NaiveTime};
use serde_json::{Map, Value};
use store::accounts::Role;
use store::resource::{Cond, Sight, Table};
use store::sqlx::any::AnyRow;
use store::sqlx::Row;

use store::links::Link;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::AppState;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A field's type: how it is validated, stored and shown.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Int {
        min: i64,
        max: i64,
    },
    Real {
        min: f64,
        max: f64,
    },
    /// Text with a length in characters (Unicode scalar values).
    Text {
        min: usize,
        max: usize,
    },
    /// Lower-case identifier `[a-z0-9_.-]`, 1..=max characters.
    Ident {
        max: usize,
    },
    Bool,
    Enum(&'static [&'static str]),
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A time of day, `HH:MM`, in the tenant's zone.
    TimeOfDay,
    /// `#RRGGBB`.
    Color,
    /// A Japanese phone number: digits only (hyphens and spaces are removed), 1-30, leading 0.
    Tel,
    /// A lead's number (BIZTEL §2.2): half-width digits only, 9-30, leading 0; nothing removed.
    LeadTel,
    /// An instant: RFC 3339 in JSON (shown in the tenant's zone), Unix ms in the database.
    Instant,
    JsonArray,
    JsonObject,
    /// The id of a record of the same tenant in the named table.
    Ref(&'static str),
    /// Ids of records of the named table (a virtual field kept in a link table, see [`Field::link`]).
    RefList(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Set on create, changed on update.
    Rw,
    /// Set on create only.
    CreateOnly,
    /// Set by the server.
    ReadOnly,
    /// Accepted, never shown (e.g. passwords); handled by a hook.
    WriteOnly,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub io: Io,
    pub required: bool,
    pub nullable: bool,
    pub filter: bool,
    pub sort: bool,
    /// `false` for virtual fields that hooks turn into other rows or columns.
    pub column: bool,
    /// Searched by the list's free-text `q`.
    pub search: bool,
    /// A virtual [`Ty::RefList`] read from this link table (its hook writes it).
    pub link: Option<Link>,
    pub doc: &'static str,
    /// A valid value (JSON text) for the OpenAPI document, where the type's own example would be
    /// refused by a rule of the resource (see `openapi::field_schema`).
    pub example: Option<&'static str>,
    /// A pattern the server enforces beyond the type (documented, not checked from here).
    pub pattern: Option<&'static str>,
}

impl Field {
    pub const fn new(name: &'static str, ty: Ty, doc: &'static str) -> Field {
        Field {
            name,
            ty,
            io: Io::Rw,
            required: false,
            nullable: false,
            filter: false,
            sort: false,
            column: true,
            search: false,
            link: None,
            doc,
            example: None,
            pattern: None,
        }
    }
    pub const fn example(mut self, json: &'static str) -> Field {
        self.example = Some(json);
        self
    }
    pub const fn pattern(mut self, pattern: &'static str) -> Field {
        self.pattern = Some(pattern);
        self
    }
    pub const fn search(mut self) -> Field {
        self.search = true;
        self
    }
    /// A virtual list of ids kept in `table` (`owner` = this record's id, `item` = the linked id).
    pub const fn link(mut self, table: &'static str, owner: &'static str, item: &'static str) -> Field {
        self.link = Some(Link { table, owner, item });
        self.column = false;
        self
    }
    pub const fn req(mut self) -> Field {
        self.required = true;
        self
    }
    pub const fn null(mut self) -> Field {
        self.nullable = true;
        self
    }
    pub const fn filter(mut self) -> Field {
        self.filter = true;
        self
    }
    pub const fn sort(mut self) -> Field {
        self.sort = true;
        self
    }
    pub const fn create_only(mut self) -> Field {
        self.io = Io::CreateOnly;
        self
    }
    pub const fn read_only(mut self) -> Field {
        self.io = Io::ReadOnly;
        self
    }
    pub const fn write_only(mut self) -> Field {
        self.io = Io::WriteOnly;
        self.column = false;
        self
    }
    pub const fn virtual_(mut self) -> Field {
        self.column = false;
        self
    }
}

/// A read-only value computed in SQL (`expr` may use the alias `t` of the resource's table).
#[derive(Debug, Clone, Copy)]
pub struct Extra {
    pub name: &'static str,
    pub expr: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
}

pub type WriteHook = for<'a> fn(&'a Ctx, Option<i64>, &'a mut Values) -> BoxFut<'a, ApiResult<()>>;
pub type TxHook = for<'a> fn(&'a Ctx, Option<i64>, &'a Values, &'a mut store::WriteTx) -> BoxFut<'a, ApiResult<()>>;
pub type AfterHook = for<'a> fn(&'a Ctx, i64, &'a Map<String, Value>) -> BoxFut<'a, ApiResult<()>>;
pub type DeleteHook = for<'a> fn(&'a Ctx, i64) -> BoxFut<'a, ApiResult<()>>;
pub type Decorate = fn(&Ctx, &mut Map<String, Value>);

#[derive(Default, Clone, Copy)]
pub struct Hooks {
    /// After field validation on create (`None`) and update (`Some(id)`): cross-field rules,
    /// derived columns.
    pub before_write: Option<WriteHook>,
    /// Inside the write's own transaction (`Db::begin_write`), just before the row is written:
    /// rules checked against what is committed under a lock, so that no other writer passes
    /// between the check and the write (a lead's duplicate rule and its list's cap).
    pub in_write: Option<TxHook>,
    /// After the row is written: virtual fields stored elsewhere.
    pub after_write: Option<AfterHook>,
    /// Guards a delete.
    pub before_delete: Option<DeleteHook>,
    /// After the row is deleted.
    pub after_delete: Option<DeleteHook>,
    /// Adds computed fields to the JSON of a record.
    pub decorate: Option<Decorate>,
}

impl Hooks {
    /// No hook (for a resource's `hooks: Hooks { ..., ..Hooks::NONE }`).
    pub const NONE: Hooks = Hooks {
        before_write: None,
        in_write: None,
        after_write: None,
        before_delete: None,
        after_delete: None,
        decorate: None,
    };
}

pub struct Spec {
    /// Schema name in the OpenAPI document, e.g. `Campaign`.
    pub schema: &'static str,
    pub path: &'static str,
    pub table: &'static str,
    pub tag: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
    pub extra: &'static [Extra],
    pub read: &'static [Role],
    pub write: &'static [Role],
    pub delete: &'static [Role],
    /// `(column, table)`: rows are visible through the grants on `table` (campaigns or
    /// customer_lists) for roles without tenant-wide sight.
    pub scope: Option<(&'static str, &'static str)>,
    /// `(user column, roles)`: those roles see and write only rows where the column is themselves.
    pub own: Option<(&'static str, &'static [Role])>,
    pub creatable: bool,
    pub updatable: bool,
    pub hooks: Hooks,
}

/// The caller and the application, handed to hooks.
pub struct Ctx {
    pub st: AppState,
    pub auth: Auth,
}

impl Ctx {
    pub fn tenant(&self) -> i64 {
        self.auth.tenant()
    }
}

/// A value bound to a statement, typed for both backends (a NULL keeps its column's type).
pub use store::resource::Val as SqlVal;

/// The validated columns of a write, and the raw body for hooks.
pub struct Values {
    pub cols: Vec<(&'static str, SqlVal)>,
    pub input: Map<String, Value>,
}

impl Values {
    pub fn get(&self, col: &str) -> Option<&SqlVal> {
        self.cols.iter().find(|(c, _)| *c == col).map(|(_, v)| v)
    }
    pub fn set(&mut self, col: &'static str, v: SqlVal) {
        match self.cols.iter_mut().find(|(c, _)| *c == col) {
            Some(slot) => slot.1 = v,
            None => self.cols.push((col, v)),
        }
    }
    pub fn remove(&mut self, col: &str) {
        self.cols.retain(|(c, _)| *c != col);
    }
}

fn null_of(ty: Ty) -> SqlVal {
    match ty {
        Ty::Int { .. } | Ty::Instant | Ty::Ref(_) => SqlVal::NullI,
        Ty::Real { .. } => SqlVal::NullF,
        Ty::Bool => SqlVal::NullB,
        _ => SqlVal::NullS,
    }
}

/// Checks and normalises a phone number with the same rules as the lead CSV (digits after removing
/// separators, full-width digits and +81; 1 to 30 digits; leading 0); the error names the field.
pub fn tel(field: &str, raw: &str) -> ApiResult<String> {
    crate::import::csv::validate::tel(field, raw).map_err(|m| ApiError::invalid(field, m))
}

/// A lead's number, changed in nothing ([`crate::import::csv::validate::lead_tel`]), or 422.
pub fn lead_tel(field: &str, raw: &str) -> ApiResult<String> {
    crate::import::csv::validate::lead_tel(field, raw).map_err(|m| ApiError::invalid(field, m))
}

/// Ids in one [`Ty::RefList`] value.
pub const REF_LIST_MAX: usize = 1000;

/// Validates one JSON value against a field and converts it for binding.
pub fn validate(f: &Field, v: &Value) -> ApiResult<SqlVal> {
    let name = f.name;
    let bad = |why: &str| ApiError::invalid(name, format!("{name}: {why}"));
    if v.is_null() {
        return if f.nullable { Ok(null_of(f.ty)) } else { Err(bad("must not be null")) };
    }
    Ok(match f.ty {
        Ty::Int { min, max } => {
            let n = v.as_i64().ok_or_else(|| bad("must be an integer"))?;
            if n < min || n > max {
                return Err(bad(&format!("must be between {min} and {max}")));
            }
            SqlVal::I(n)
        }
        Ty::Real { min, max } => {
            let n = v.as_f64().filter(|n| n.is_finite()).ok_or_else(|| bad("must be a number"))?;
            if n < min || n > max {
                return Err(bad(&format!("must be between {min} and {max}")));
            }
            SqlVal::F(n)
        }
        Ty::Text { min, max } => {
            let s = v.as_str().ok_or_else(|| bad("must be a string"))?;
            let n = s.chars().count();
            if s.contains('\0') {
                return Err(bad("must not contain NUL"));
            }
            if n < min || n > max {
                return Err(bad(&format!("must be {min} to {max} characters")));
            }
            SqlVal::S(s.to_string())
        }
        Ty::Ident { max } => {
            let s = v.as_str().ok_or_else(|| bad("must be a string"))?;
            let ok = !s.is_empty()
                && s.chars().count() <= max
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(bad(&format!("must be 1 to {max} of a-z, 0-9, '_', '.', '-'")));
            }
            SqlVal::S(s.to_string())
        }
        Ty::Bool => SqlVal::B(v.as_bool().ok_or_else(|| bad("must be true or false"))?),
        Ty::Enum(options) => {
            let s = v.as_str().ok_or_else(|| bad("must be a string"))?;
            if !options.contains(&s) {
                return Err(bad(&format!("must be one of {}", options.join(", "))));
            }
            SqlVal::S(s.to_string())
        }
        Ty::Date => {
            let s = v.as_str().ok_or_else(|| bad("must be a date YYYY-MM-DD"))?;
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad("must be a date YYYY-MM-DD"))?;
            SqlVal::S(d.format("%Y-%m-%d").to_string())
        }
        Ty::TimeOfDay => {
            let s = v.as_str().ok_or_else(|| bad("must be a time HH:MM"))?;
            let t = NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| bad("must be a time HH:MM"))?;
            SqlVal::S(t.format("%H:%M").to_string())
        }
        Ty::Color => {
            let s = v.as_str().ok_or_else(|| bad("must be a colour #RRGGBB"))?;
            let ok = s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(bad("must be a colour #RRGGBB"));
            }
            SqlVal::S(s.to_ascii_lowercase())
        }
        Ty::Tel => {
            let s = v.as_str().ok_or_else(|| bad("must be a string of digits"))?;
            SqlVal::S(tel(name, s)?)
        }
        Ty::LeadTel => {
            let s = v.as_str().ok_or_else(|| bad("must be a string of digits"))?;
            SqlVal::S(lead_tel(name, s)?)
        }
        Ty::Instant => {
            let s = v.as_str().ok_or_else(|| bad("must be an RFC 3339 date-time"))?;
            let t = DateTime::parse_from_rfc3339(s).map_err(|_| bad("must be an RFC 3339 date-time"))?;
            SqlVal::I(t.timestamp_millis())
        }
        Ty::JsonArray | Ty::JsonObject => {
            let ok = matches!((f.ty, v), (Ty::JsonArray, Value::Array(_)) | (Ty::JsonObject, Value::Object(_)));
            if !ok {
                return Err(bad(if matches!(f.ty, Ty::JsonArray) { "must be an array" } else { "must be an object" }));
            }
            let text = v.to_string();
            if text.len() > 65_536 || text.contains("\\u0000") {
                return Err(bad("must be at most 64 KiB without NUL"));
            }
            SqlVal::S(text)
        }
        Ty::Ref(_) => {
            let n = v.as_i64().filter(|n| *n > 0).ok_or_else(|| bad("must be a record id"))?;
            SqlVal::I(n)
        }
        Ty::RefList(_) => {
            let items = v.as_array().ok_or_else(|| bad("must be an array of record ids"))?;
            if items.len() > REF_LIST_MAX || !items.iter().all(|i| i.as_i64().is_some_and(|n| n > 0)) {
                return Err(bad(&format!("must be an array of at most {REF_LIST_MAX} record ids")));
            }
            SqlVal::S(v.to_string())
        }
    })
}

/// Reads one column of a row as JSON.
fn to_json(ctx: &Ctx, row: &AnyRow, name: &str, ty: Ty) -> ApiResult<Value> {
    Ok(match ty {
        Ty::Int { .. } | Ty::Ref(_) => row.try_get::<Option<i64>, _>(name)?.map(Value::from).unwrap_or(Value::Null),
        Ty::Real { .. } => row.try_get::<Option<f64>, _>(name)?.map(Value::from).unwrap_or(Value::Null),
        Ty::Bool => row.try_get::<Option<i64>, _>(name)?.map(|b| Value::from(b != 0)).unwrap_or(Value::Null),
        Ty::Instant => row
            .try_get::<Option<i64>, _>(name)?
            .map(|ms| Value::from(store::tenancy::local_rfc3339(ctx.auth.tz(), ms)))
            .unwrap_or(Value::Null),
        Ty::JsonArray | Ty::JsonObject => match row.try_get::<Option<String>, _>(name)? {
            Some(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
            None => Value::Null,
        },
        _ => row.try_get::<Option<String>, _>(name)?.map(Value::from).unwrap_or(Value::Null),
    })
}

impl Spec {
    fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// What is read of the resource's table: its columns (besides `id`) and the values computed in SQL.
    fn table(&self) -> Table<'static> {
        Table {
            name: self.table,
            columns: self.fields.iter().filter(|f| f.column).map(|f| f.name).collect(),
            computed: self.extra.iter().map(|e| (e.name, e.expr)).collect(),
        }
    }

    /// The rows visible to the caller: its tenant's; of them, through the grants on the scope's
    /// table for a role without tenant-wide sight, and its own for the roles of `own`.
    pub fn sight(&self, auth: &Auth) -> Sight<'static> {
        let granted = match (self.scope, granted_to(auth)) {
            (Some((col, table)), Some(user)) => Some((col, table, user)),
            _ => None,
        };
        let own = self.own.filter(|(_, roles)| roles.contains(&auth.role())).map(|(col, _)| (col, auth.user()));
        Sight { tenant_id: auth.tenant(), granted, own }
    }

    /// The columns the list's free text searches (those marked [`Field::search`]), by their
    /// names: the statements that search them read the one table.
    pub fn search_columns(&self) -> Vec<store::search::Column<'static>> {
        self.fields
            .iter()
            .filter(|f| f.search && f.column)
            .map(|f| store::search::Column { expr: f.name, tel: matches!(f.ty, Ty::Tel | Ty::LeadTel) })
            .collect()
    }

    /// Adds the virtual [`Ty::RefList`] fields to records read (one query per link for them all).
    async fn read_links(&self, ctx: &Ctx, items: &mut [Value]) -> ApiResult<()> {
        let ids: Vec<i64> = items.iter().filter_map(|v| v["id"].as_i64()).collect();
        for f in self.fields {
            let Some(link) = f.link else { continue };
            let mut by_owner = store::links::ids_by_owner(&ctx.st.db, ctx.tenant(), link, &ids).await?;
            for item in items.iter_mut() {
                let linked = item["id"].as_i64().and_then(|id| by_owner.remove(&id)).unwrap_or_default();
                item[f.name] = Value::from(linked);
            }
        }
        Ok(())
    }

    pub fn row_json(&self, ctx: &Ctx, row: &AnyRow) -> ApiResult<Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::from(row.try_get::<i64, _>("id")?));
        for f in self.fields.iter().filter(|f| f.column && f.io != Io::WriteOnly) {
            m.insert(f.name.into(), to_json(ctx, row, f.name, f.ty)?);
        }
        for e in self.extra {
            m.insert(e.name.into(), to_json(ctx, row, e.name, e.ty)?);
        }
        if let Some(d) = self.hooks.decorate {
            d(ctx, &mut m);
        }
        Ok(Value::Object(m))
    }
}

/// The user whose grants scope what the caller sees; `None` when the caller's role sees the
/// whole tenant (MGR, SV).
pub fn granted_to(auth: &Auth) -> Option<i64> {
    (!matches!(auth.role(), Role::Mgr | Role::Sv)).then(|| auth.user())
}

/// Checks that a referenced id exists in the caller's tenant and is visible to the caller.
pub async fn check_ref(ctx: &Ctx, field: &str, table: &str, id: i64) -> ApiResult<()> {
    if store::resource::referable(&ctx.st.db, table, ctx.tenant(), granted_to(&ctx.auth), id).await? {
        Ok(())
    } else {
        Err(ApiError::invalid(field, format!("{field}: no such record")))
    }
}

const LIMIT_MAX: i64 = 500;

/// `GET /things`: a page of visible records, filtered and sorted.
pub async fn list(ctx: &Ctx, spec: &'static Spec, params: &Params) -> ApiResult<Value> {
    ctx.auth.require(spec.read)?;
    let (mut limit, mut offset) = (50i64, 0i64);
    let mut order = None;
    let mut conds = Vec::new();
    let mut search = None;
    for (k, v) in &params.0 {
        match k.as_str() {
            "q" if spec.fields.iter().any(|f| f.search) => {
                if v.chars().count() > 200 || v.contains('\0') {
                    return Err(ApiError::bad_request("q", "q: at most 200 characters"));
                }
                search = Some(v.clone());
            }
            "limit" => {
                limit =
                    v.parse().ok().filter(|n| (1..=LIMIT_MAX).contains(n)).ok_or_else(|| {
                        ApiError::bad_request("limit", format!("limit: an integer from 1 to {LIMIT_MAX}"))
                    })?
            }
            "offset" => {
                offset = v
                    .parse()
                    .ok()
                    .filter(|n: &i64| (0..=1_000_000_000).contains(n))
                    .ok_or_else(|| ApiError::bad_request("offset", "offset: a non-negative integer"))?
            }
            "sort" => {
                let (desc, name) = v.strip_prefix('-').map(|n| (true, n)).unwrap_or((false, v.as_str()));
                let ok = name == "id" || spec.field(name).is_some_and(|f| f.sort && f.column);
                if !ok {
                    let names: Vec<&str> = spec.fields.iter().filter(|f| f.sort).map(|f| f.name).collect();
                    return Err(ApiError::bad_request(
                        "sort",
                        format!("sort: one of id, {} (prefix - for descending)", names.join(", ")),
                    ));
                }
                order = Some((name, desc));
            }
            name => {
                let f = spec
                    .field(name)
                    .filter(|f| f.filter && f.column)
                    .ok_or_else(|| ApiError::bad_request(name, format!("{name}: not a filter of this list")))?;
                let json = match f.ty {
                    Ty::Int { .. } | Ty::Ref(_) => v.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
                    Ty::Bool => match v.as_str() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => Value::Null,
                    },
                    _ => Value::String(v.clone()),
                };
                let strict = Field { nullable: false, ..*f };
                let val = validate(&strict, &json).map_err(|e| ApiError::bad_request(name, e.message))?;
                conds.push(Cond::Eq(f.name, val));
            }
        }
    }
    let columns = spec.search_columns();
    if let Some(q) = search.as_deref() {
        conds.push(Cond::Search(&columns, q));
    }
    let (total, rows) =
        store::resource::list(&ctx.st.db, &spec.table(), spec.sight(&ctx.auth), conds, order, limit, offset).await?;
    let mut items = rows.iter().map(|r| spec.row_json(ctx, r)).collect::<ApiResult<Vec<_>>>()?;
    spec.read_links(ctx, &mut items).await?;
    Ok(serde_json::json!({ "items": items, "total": total, "limit": limit, "offset": offset }))
}

/// `GET /things/{id}`.
pub async fn get(ctx: &Ctx, spec: &'static Spec, id: i64) -> ApiResult<Value> {
    ctx.auth.require(spec.read)?;
    fetch(ctx, spec, id).await
}

async fn fetch(ctx: &Ctx, spec: &'static Spec, id: i64) -> ApiResult<Value> {
    let row = store::resource::one(&ctx.st.db, &spec.table(), spec.sight(&ctx.auth), id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut items = [spec.row_json(ctx, &row)?];
    spec.read_links(ctx, &mut items).await?;
    let [item] = items;
    Ok(item)
}

/// Whether the record exists and the caller may see it.
pub async fn visible(ctx: &Ctx, spec: &'static Spec, id: i64) -> ApiResult<()> {
    if store::resource::visible(&ctx.st.db, spec.table, spec.sight(&ctx.auth), id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn body_object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("body", "the body must be a JSON object")),
    }
}

async fn validate_body(
    ctx: &Ctx,
    spec: &'static Spec,
    input: &Map<String, Value>,
    creating: bool,
) -> ApiResult<Values> {
    for k in input.keys() {
        let Some(f) = spec.field(k) else {
            return Err(ApiError::invalid(k.as_str(), format!("{k}: unknown field")));
        };
        match f.io {
            Io::ReadOnly => return Err(ApiError::invalid(k.as_str(), format!("{k}: set by the server"))),
            Io::CreateOnly if !creating => {
                return Err(ApiError::invalid(k.as_str(), format!("{k}: cannot be changed")))
            }
            _ => {}
        }
    }
    let mut cols = Vec::new();
    for f in spec.fields {
        match input.get(f.name) {
            Some(v) => {
                let val = validate(f, v)?;
                if let (Ty::Ref(table), Some(id)) = (f.ty, val.as_i64()) {
                    check_ref(ctx, f.name, table, id).await?;
                }
                if f.column {
                    cols.push((f.name, val));
                }
            }
            None if creating && f.required => {
                return Err(ApiError::invalid(f.name, format!("{}: required", f.name)));
            }
            None => {}
        }
    }
    Ok(Values { cols, input: input.clone() })
}

fn own_check(ctx: &Ctx, spec: &'static Spec, vals: &mut Values, creating: bool) -> ApiResult<()> {
    if let Some((col, roles)) = spec.own {
        if roles.contains(&ctx.auth.role()) {
            match vals.get(col) {
                Some(SqlVal::I(u)) if *u != ctx.auth.user() => {
                    return Err(ApiError::invalid(col, format!("{col}: your role may only name yourself")));
                }
                Some(SqlVal::I(_)) => {}
                Some(_) => return Err(ApiError::invalid(col, format!("{col}: your role may only name yourself"))),
                None if creating => vals.set(col, SqlVal::I(ctx.auth.user())),
                None => {}
            }
        }
    }
    Ok(())
}

/// `POST /things`.
pub async fn create(ctx: &Ctx, spec: &'static Spec, body: Value) -> ApiResult<(StatusCode, Value)> {
    ctx.auth.require(spec.write)?;
    let input = body_object(body)?;
    let mut vals = validate_body(ctx, spec, &input, true).await?;
    own_check(ctx, spec, &mut vals, true)?;
    if let Some(h) = spec.hooks.before_write {
        h(ctx, None, &mut vals).await?;
    }
    let now = store::now_ms();
    for stamp in ["created_at", "updated_at"] {
        if spec.field(stamp).is_some() {
            vals.set(stamp, SqlVal::I(now));
        }
    }
    let id: i64 = match spec.hooks.in_write {
        Some(h) => {
            let mut tx = ctx.st.db.begin_write().await?;
            h(ctx, None, &vals, &mut tx).await?;
            let id = store::resource::insert_in(&mut tx, spec.table, ctx.tenant(), &vals.cols).await?;
            tx.commit().await?;
            id
        }
        None => store::resource::insert(&ctx.st.db, spec.table, ctx.tenant(), &vals.cols).await?,
    };
    if let Some(h) = spec.hooks.after_write {
        h(ctx, id, &input).await?;
    }
    notify(ctx, spec).await;
    Ok((StatusCode::CREATED, fetch(ctx, spec, id).await?))
}

/// `PATCH /things/{id}`: changes the fields present in the body.
pub async fn update(ctx: &Ctx, spec: &'static Spec, id: i64, body: Value) -> ApiResult<Value> {
    ctx.auth.require(spec.write)?;
    visible(ctx, spec, id).await?;
    let input = body_object(body)?;
    let mut vals = validate_body(ctx, spec, &input, false).await?;
    own_check(ctx, spec, &mut vals, false)?;
    if let Some(h) = spec.hooks.before_write {
        h(ctx, Some(id), &mut vals).await?;
    }
    if spec.field("updated_at").is_some() {
        vals.set("updated_at", SqlVal::I(store::now_ms()));
    }
    if !vals.cols.is_empty() {
        match spec.hooks.in_write {
            Some(h) => {
                let mut tx = ctx.st.db.begin_write().await?;
                h(ctx, Some(id), &vals, &mut tx).await?;
                store::resource::update_in(&mut tx, spec.table, ctx.tenant(), id, &vals.cols).await?;
                tx.commit().await?;
            }
            None => store::resource::update(&ctx.st.db, spec.table, ctx.tenant(), id, &vals.cols).await?,
        }
    }
    if let Some(h) = spec.hooks.after_write {
        h(ctx, id, &input).await?;
    }
    notify(ctx, spec).await;
    fetch(ctx, spec, id).await
}

/// Tells the dialer hosts when a write changes what they dial with.
async fn notify(ctx: &Ctx, spec: &Spec) {
    if let Some(n) = crate::notify::for_table(spec.table) {
        crate::notify::dialers(&ctx.st, ctx.tenant(), n).await;
    }
}

/// `DELETE /things/{id}`.
pub async fn delete(ctx: &Ctx, spec: &'static Spec, id: i64) -> ApiResult<StatusCode> {
    ctx.auth.require(spec.delete)?;
    visible(ctx, spec, id).await?;
    if let Some(h) = spec.hooks.before_delete {
        h(ctx, id).await?;
    }
    store::resource::delete(&ctx.st.db, spec.table, ctx.tenant(), id).await?;
    if let Some(h) = spec.hooks.after_delete {
        h(ctx, id).await?;
    }
    notify(ctx, spec).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let f = Field::new("tel", Ty::Tel, "");
        assert_eq!(validate(&f, &Value::from("03-1234-5678")).unwrap(), SqlVal::S("0312345678".into()));
        assert_eq!(validate(&f, &Value::from("3123")).unwrap_err().field.as_deref(), Some("tel"));
        assert_eq!(validate(&f, &Value::from("03x")).unwrap_err().message, "tel:書式が正しくありません");
        let c = Field::new("color", Ty::Color, "");
        assert!(validate(&c, &Value::from("#12ab9Z")).is_err());
        assert_eq!(validate(&c, &Value::from("#12AB9f")).unwrap(), SqlVal::S("#12ab9f".into()));
        let t = Field::new("name", Ty::Text { min: 1, max: 3 }, "");
        assert!(validate(&t, &Value::from("日本語")).is_ok());
        assert!(validate(&t, &Value::from("日本語x")).is_err());
        assert!(validate(&t, &Value::from("a\0")).is_err());
        let n = Field::new("n", Ty::Int { min: 1, max: 5 }, "").null();
        assert_eq!(validate(&n, &Value::Null).unwrap(), SqlVal::NullI);
        assert!(validate(&n, &Value::from(6)).is_err());
        assert!(validate(&n, &Value::from(1.5)).is_err());
        let i = Field::new("at", Ty::Instant, "");
        assert_eq!(validate(&i, &Value::from("1970-01-01T09:00:01+09:00")).unwrap(), SqlVal::I(1000));
    }
}
