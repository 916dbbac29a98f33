//! The reports (SPEC 7, issue 25): each a JSON table read from the rollups (`store::rollups`,
//! never the facts) and the same table as CSV for Excel (`<path>.csv`, UTF-8 with a BOM or CP932,
//! the columns named as on screen: the labels come from here, for the page and the file alike).
//!
//! - `/reports/groups`: 統計 (group statistics) by date, week, hour, agent or talk time;
//! - `/reports/campaigns`: キャンペーン統計, 件数 and コール数 and each result as a count or a %;
//! - `/reports/numbers`: 電話番号統計 per caller ID, outbound and inbound;
//! - `/reports/states`: ステータス統計, time in each state (pause reasons included) per agent or hour;
//! - `/reports/lists`: CALLTREE's list figures (登録数, 作業数, 進捗, コール数, コネクト数, コネクト率);
//! - `/reports/outbound`: per campaign and day: dials, live answers, abandons against the target
//!   (24 h and 30 days), dial level, occupancy and agent wait; `/reports/abandons`: the ledger;
//! - `/call-history` (発着信履歴): the calls, newest first, by keyset pages.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::{DateTime, Datelike, NaiveDate, Weekday};
use chrono_tz::Tz;
use serde_json::{json, Value};
use store::accounts::Role;
use store::reports::{By, Filter, HistoryFilter, Table as RollupTable};
use store::rollups::Measures;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::export::{csv_line, CsvEncoding};
use crate::extract::Params;
use crate::{AppState, Op, Registry};

/// Who reads the tenant-wide reports: supervisors and managers.
pub const READERS: &[Role] = &[Role::Mgr, Role::Sv];
/// キャンペーン統計 and 発着信履歴: also OP (its own calls and figures) and BIZ (what was reported
/// to it, CALLTREE's 報告).
pub const RESULT_READERS: &[Role] = &[Role::Mgr, Role::Sv, Role::Op, Role::Biz];
/// ステータス統計: also OP (its own time).
pub const STATE_READERS: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];
/// Who marks a wrap-up record reported (OP its own records).
pub const REPORTERS: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];
/// Longest range of days a report sums.
const MAX_DAYS: i64 = 400;
/// Rows of call history per page, at most.
const MAX_PAGE: i64 = 500;
/// Pages of CSV in flight to the client.
const PAGES_IN_FLIGHT: usize = 4;
/// The call-history CSV reads its range in slices of this long, newest first ...
const SLICE_MS: i64 = 24 * 3_600_000;
/// ... this many at once.
const SLICES_IN_FLIGHT: usize = 2;
/// Abandons the ledger lists at most per request.
const MAX_ABANDONS: i64 = 10_000;

// ------------------------------------------------------------------------------------------ tables

/// How a cell is shown (the page and the CSV alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    /// A ratio 0..1 shown as a percentage with two decimals; null = "-".
    Pct,
    /// Seconds (from ms), shown as `7s`; null = "-".
    Secs,
    /// A real with two decimals (dial level).
    Real,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Int => "int",
            Kind::Pct => "pct",
            Kind::Secs => "secs",
            Kind::Real => "real",
        }
    }
}

struct Column {
    key: String,
    ja: String,
    en: String,
    kind: Kind,
}

fn col(key: &str, ja: &str, en: &str, kind: Kind) -> Column {
    Column { key: key.into(), ja: ja.into(), en: en.into(), kind }
}

struct Report {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
    total: Option<Vec<Value>>,
    extra: Value,
}

impl Report {
    fn json(&self) -> Value {
        json!({
            "columns": self.columns.iter().map(|c| json!({"key": c.key, "label": {"ja": c.ja, "en": c.en}, "kind": c.kind.name()})).collect::<Vec<_>>(),
            "rows": self.rows,
            "total": self.total,
            "options": self.extra,
        })
    }

    fn csv(&self, lang: Lang) -> String {
        let header: Vec<String> =
            self.columns.iter().map(|c| if lang == Lang::En { c.en.clone() } else { c.ja.clone() }).collect();
        let mut out = csv_line(&header);
        for r in &self.rows {
            out.push_str(&csv_line(&self.cells(r)));
        }
        if let Some(t) = &self.total {
            let mut cells = self.cells(t);
            if let Some(first) = cells.first_mut() {
                *first = if lang == Lang::En { "Total".into() } else { "合計".into() };
            }
            out.push_str(&csv_line(&cells));
        }
        out
    }

    fn cells(&self, r: &[Value]) -> Vec<String> {
        r.iter().zip(&self.columns).map(|(v, c)| cell_text(c.kind, v)).collect()
    }
}

/// A cell as the page shows it (without thousands separators, so that Excel reads numbers).
fn cell_text(kind: Kind, v: &Value) -> String {
    match (kind, v) {
        (_, Value::Null) if kind != Kind::Text && kind != Kind::Int => "-".into(),
        (_, Value::Null) => String::new(),
        (Kind::Pct, v) => format!("{:.2}%", v.as_f64().unwrap_or(0.0) * 100.0),
        (Kind::Secs, v) => format!("{}s", (v.as_f64().unwrap_or(0.0) / 1000.0).round() as i64),
        (Kind::Real, v) => format!("{:.2}", v.as_f64().unwrap_or(0.0)),
        (_, Value::String(s)) => s.clone(),
        (_, v) => v.to_string(),
    }
}

fn ratio(n: i64, d: i64) -> Value {
    if d == 0 {
        Value::Null
    } else {
        json!(n as f64 / d as f64)
    }
}

fn avg_ms(sum: i64, n: i64) -> Value {
    if n == 0 {
        Value::Null
    } else {
        json!(sum / n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    Ja,
    En,
}

// ------------------------------------------------------------------------------------------ params

/// The query string checked field by field: each bad value a 400 naming the field.
struct Q<'a> {
    p: &'a Params,
    known: &'static [&'static str],
}

impl<'a> Q<'a> {
    fn new(p: &'a Params, known: &'static [&'static str]) -> ApiResult<Q<'a>> {
        for (k, _) in &p.0 {
            if !known.contains(&k.as_str()) && k != "encoding" && k != "lang" {
                return Err(ApiError::bad_request(k.as_str(), format!("{k}: unknown parameter")));
            }
        }
        Ok(Q { p, known })
    }

    fn str(&self, k: &str) -> Option<&str> {
        debug_assert!(self.known.contains(&k) || k == "encoding" || k == "lang");
        self.p.get(k).filter(|v| !v.is_empty())
    }

    fn date(&self, k: &str, default: NaiveDate) -> ApiResult<NaiveDate> {
        match self.str(k) {
            None => Ok(default),
            Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| ApiError::bad_request(k, format!("{k}: a date YYYY-MM-DD"))),
        }
    }

    fn int(&self, k: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        match self.str(k) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(k, format!("{k}: an integer from {min} to {max}"))),
        }
    }

    fn id(&self, k: &str) -> ApiResult<Option<i64>> {
        self.int(k, 1, i64::MAX)
    }

    fn choice(&self, k: &str, options: &[&'static str], default: &'static str) -> ApiResult<&'static str> {
        match self.str(k) {
            None => Ok(default),
            Some(v) => options
                .iter()
                .find(|o| **o == v)
                .copied()
                .ok_or_else(|| ApiError::bad_request(k, format!("{k}: one of {}", options.join(", ")))),
        }
    }

    fn days(&self, tz: Tz) -> ApiResult<(NaiveDate, NaiveDate)> {
        let today = store::tenancy::local_date(tz, store::now_ms());
        let from = self.date("from", today)?;
        let to = self.date("to", from.max(today.min(from)))?;
        if to < from {
            return Err(ApiError::bad_request("to", "to: not before from"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(ApiError::bad_request("to", format!("to: at most {MAX_DAYS} days after from")));
        }
        Ok((from, to))
    }
}

fn date_range(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        out.push(d);
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    out
}

async fn checked_ref(st: &AppState, auth: &Auth, table: &str, field: &str, id: Option<i64>) -> ApiResult<()> {
    if let Some(id) = id {
        crate::resource::check_ref(&crate::resource::Ctx { st: st.clone(), auth: auth.clone() }, field, table, id)
            .await?;
    }
    Ok(())
}

fn names_map(v: Vec<(i64, String)>) -> HashMap<String, String> {
    v.into_iter().map(|(id, n)| (id.to_string(), n)).collect()
}

/// The fixed results' words (`store::results`, GLOSSARY.md).
fn system_result(r: &str) -> Option<(&'static str, &'static str)> {
    store::results::fixed(r).map(|f| (f.ja, f.en))
}

// ------------------------------------------------------------------------------------------ mount

fn op(path: &str, summary: &str, csv: bool, roles: &[Role], query: Vec<(&str, Value, &str)>) -> Op {
    Op {
        method: "get",
        path: path.to_string(),
        summary: summary.to_string(),
        tag: "reports",
        roles: Some(roles.to_vec()),
        request: None,
        response: if csv {
            (200, "text/csv", json!({"type": "string"}))
        } else {
            (200, "application/json", crate::openapi::schema_ref("ReportTable"))
        },
        errors: vec![400, 401, 403, 422],
        query: query.into_iter().map(|(k, s, d)| (k.to_string(), s, d.to_string())).collect(),
    }
}

fn date_q(k: &'static str, doc: &'static str) -> (&'static str, Value, &'static str) {
    (k, json!({"type": "string", "format": "date"}), doc)
}

fn id_q(k: &'static str, doc: &'static str) -> (&'static str, Value, &'static str) {
    (k, json!({"type": "integer", "minimum": 1}), doc)
}

fn enum_q(k: &'static str, values: &[&str], doc: &'static str) -> (&'static str, Value, &'static str) {
    (k, json!({"type": "string", "enum": values}), doc)
}

/// Schemas of the reports' bodies.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "ReportTable",
            json!({"type": "object", "required": ["columns", "rows"], "properties": {
                "columns": {"type": "array", "items": {"type": "object", "required": ["key", "label", "kind"], "properties": {
                    "key": {"type": "string"}, "kind": {"type": "string", "enum": ["text", "int", "pct", "secs", "real"],
                        "description": "pct: a ratio 0..1; secs: milliseconds"},
                    "label": {"type": "object", "properties": {"ja": {"type": "string"}, "en": {"type": "string"}}}}}},
                "rows": {"type": "array", "items": {"type": "array", "items": {}}},
                "total": {"type": ["array", "null"], "items": {}},
                "options": {}}}),
        ),
        (
            "CallHistory",
            json!({"type": "object", "required": ["items", "next"], "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "next": {"type": ["string", "null"], "description": "Give as `before` for the next (older) page."}}}),
        ),
    ]
}

type Handler =
    fn(AppState, Auth, Params) -> std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<Report>> + Send>>;

fn mount_report(
    reg: &mut Registry,
    path: &'static str,
    summary: &str,
    roles: &'static [Role],
    query: Vec<(&str, Value, &str)>,
    h: Handler,
) {
    reg.add(
        op(path, summary, false, roles, query.clone()),
        get(move |State(st): State<AppState>, auth: Auth, p: Params| async move {
            auth.require(roles)?;
            Ok::<_, ApiError>(Json(h(st, auth, p).await?.json()))
        }),
    );
    let mut q = query;
    q.push(enum_q("encoding", &["utf-8", "shift_jis"], "utf-8: UTF-8 with a BOM (default); shift_jis: CP932."));
    q.push(enum_q("lang", &["ja", "en"], "The column names' language (default ja)."));
    let csv_path: &'static str = Box::leak(format!("{path}.csv").into_boxed_str());
    reg.add(
        op(csv_path, &format!("{summary}, as CSV for Excel"), true, roles, q),
        get(move |State(st): State<AppState>, auth: Auth, p: Params| async move {
            auth.require(roles)?;
            let encoding = match p.get("encoding") {
                Some(e) => CsvEncoding::param(e)?,
                None => CsvEncoding::Utf8Bom,
            };
            let lang = csv_lang(&p)?;
            let report = h(st, auth, p.clone_without(&["encoding", "lang"])).await?;
            let mut text = report.csv(lang);
            if encoding == CsvEncoding::Utf8Bom {
                text.insert(0, '\u{feff}');
            }
            let file = format!("{}.csv", path.trim_start_matches('/').replace('/', "-"));
            Ok::<_, ApiError>(
                (
                    [
                        (header::CONTENT_TYPE, format!("text/csv; charset={}", encoding.charset())),
                        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
                    ],
                    encoding.encode(&text),
                )
                    .into_response(),
            )
        }),
    );
}

pub fn mount(reg: &mut Registry) {
    let range = || {
        vec![
            date_q("from", "First local date (default: today in the tenant's zone)."),
            date_q("to", "Last local date, inclusive (default: from)."),
        ]
    };
    let mut q = range();
    q.extend([
        id_q("group_id", "グループ: one dialing group (default: all)."),
        enum_q("by", &["date", "week", "hour", "agent", "duration"], "区分: 日付, 週, 時間, エージェント, 通話時間."),
        enum_q(
            "include_latest",
            &["true", "false"],
            "直近の情報: include the current, unfinished hour (default true).",
        ),
        enum_q(
            "week_start",
            &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            "週の開始曜日 for by=week (default sun).",
        ),
    ]);
    mount_report(reg, "/reports/groups", "統計: group statistics", READERS, q, |st, a, p| Box::pin(groups(st, a, p)));

    let mut q = range();
    q.extend([
        id_q("campaign_id", "キャンペーン (default: all)."),
        enum_q("by", &["date", "hour", "agent"], "区分: 日付, 時間, エージェント."),
        enum_q("show", &["count", "percent"], "表示: 個数 or % of 件数."),
    ]);
    mount_report(
        reg,
        "/reports/campaigns",
        "キャンペーン統計: campaign statistics (OP: its own; BIZ: reported records)",
        RESULT_READERS,
        q,
        |st, a, p| Box::pin(campaigns(st, a, p)),
    );

    let mut q = range();
    q.extend([
        enum_q("direction", &["all", "outbound", "inbound"], "発着信 (default all)."),
        ("number", json!({"type": "string", "maxLength": 30}), "電話番号: numbers starting with these digits."),
    ]);
    mount_report(reg, "/reports/numbers", "電話番号統計: phone-number statistics", READERS, q, |st, a, p| {
        Box::pin(numbers(st, a, p))
    });

    let mut q = range();
    q.extend([
        ("hour", json!({"type": "integer", "minimum": 0, "maximum": 23}), "時間: the first local hour (default 0)."),
        (
            "hours",
            json!({"type": "integer", "minimum": 1, "maximum": 24}),
            "範囲: how many hours from it (default 24).",
        ),
        enum_q("by", &["agent", "hour"], "区分: エージェント or 時間."),
        enum_q("show", &["percent", "seconds", "count", "average"], "表示: %, 秒数, 回数, 平均."),
        id_q("group_id", "グループ: its member agents."),
        id_q("campaign_id", "キャンペーン: its member agents."),
        ("agent", json!({"type": "string", "maxLength": 100}), "エージェント: names containing this text."),
    ]);
    mount_report(
        reg,
        "/reports/states",
        "ステータス統計: time in each agent state (OP: its own)",
        STATE_READERS,
        q,
        |st, a, p| Box::pin(states(st, a, p)),
    );

    let q =
        vec![date_q("date", "The local date (default: today)."), id_q("campaign_id", "Only this campaign's lists.")];
    mount_report(
        reg,
        "/reports/lists",
        "リスト: work count, progress and connect rate per list",
        READERS,
        q,
        |st, a, p| Box::pin(lists(st, a, p)),
    );

    let mut q = range();
    q.push(id_q("campaign_id", "Only this campaign."));
    mount_report(
        reg,
        "/reports/outbound",
        "発信: dials, live answers, abandons against the target, dial level, occupancy and wait per campaign and day",
        READERS,
        q,
        |st, a, p| Box::pin(outbound(st, a, p)),
    );
    let mut q = range();
    q.push(id_q("campaign_id", "Only this campaign."));
    mount_report(
        reg,
        "/reports/abandons",
        "破棄率台帳: every abandon with its time and wait",
        READERS,
        q,
        |st, a, p| Box::pin(abandons(st, a, p)),
    );

    let history_q = || {
        vec![
            (
                "from",
                json!({"type": "string"}),
                "From: a date (local midnight) or an RFC 3339 date-time (default: today's midnight).",
            ),
            (
                "to",
                json!({"type": "string"}),
                "To (exclusive): a date (the next midnight) or a date-time (default: now).",
            ),
            ("tel", json!({"type": "string", "maxLength": 30}), "相手番号: numbers starting with these digits."),
            enum_q("direction", &["outbound", "inbound"], "発着信."),
            ("min_seconds", json!({"type": "integer", "minimum": 0}), "通話秒数: at least this talk time."),
            id_q("agent_id", "エージェント."),
            id_q("group_id", "グループ."),
            id_q("campaign_id", "キャンペーン."),
            ("result", json!({"type": "string", "maxLength": 64}), "結果: a system result or a result number."),
        ]
    };
    let mut q = history_q();
    q.push(("before", json!({"type": "string", "maxLength": 64}), "The `next` of the previous page."));
    q.push(("limit", json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE}), "Rows per page (default 100)."));
    let mut o = op(
        "/call-history",
        "発着信履歴: call history, newest first (OP: its own calls; BIZ: reported ones)",
        false,
        RESULT_READERS,
        q,
    );
    o.response = (200, "application/json", crate::openapi::schema_ref("CallHistory"));
    reg.add(o, get(history));
    let mut q = history_q();
    q.push(enum_q("encoding", &["utf-8", "shift_jis"], "utf-8: UTF-8 with a BOM (default); shift_jis: CP932."));
    q.push(enum_q("lang", &["ja", "en"], "The column names' language (default ja)."));
    reg.add(
        op("/call-history.csv", "発着信履歴 as CSV for Excel (streamed)", true, RESULT_READERS, q),
        get(history_csv),
    );
    let mut o = op(
        "/wrapup-records/{id}/report",
        "報告: mark a wrap-up record reported (BIZ reads it) or not",
        false,
        REPORTERS,
        vec![],
    );
    o.method = "post";
    o.request = Some((
        "application/json",
        json!({"type": "object", "required": ["reported"], "additionalProperties": false, "properties": {"reported": {"type": "boolean"}}}),
    ));
    o.response = (
        200,
        "application/json",
        json!({"type": "object", "properties": {"id": {"type": "integer"}, "reported": {"type": "boolean"}}}),
    );
    o.errors = vec![400, 401, 403, 404];
    o.tag = "records";
    reg.add(o, axum::routing::post(mark_reported));
}

fn csv_lang(p: &Params) -> ApiResult<Lang> {
    match p.get("lang") {
        None | Some("ja") => Ok(Lang::Ja),
        Some("en") => Ok(Lang::En),
        Some(_) => Err(ApiError::bad_request("lang", "lang: ja or en")),
    }
}

impl Params {
    fn clone_without(&self, keys: &[&str]) -> Params {
        Params(self.0.iter().filter(|(k, _)| !keys.contains(&k.as_str())).cloned().collect())
    }
}

// ------------------------------------------------------------------------------------------ groups

fn group_columns() -> Vec<Column> {
    vec![
        col("label", "区分", "Period", Kind::Text),
        col("calls", "コール数", "Calls", Kind::Int),
        col("answered", "応答呼", "Answered", Kind::Int),
        col("abandoned", "破棄呼", "Abandoned", Kind::Int),
        col("overflow", "あふれ", "Overflow", Kind::Int),
        col("timeout", "制限時間", "Timeout", Kind::Int),
        col("answer_rate", "応答率", "Answer rate", Kind::Pct),
        col("avg_answer", "平均応答時間", "Avg answer time", Kind::Secs),
        col("max_answer", "最大応答時間", "Max answer time", Kind::Secs),
        col("avg_abandon", "平均放棄時間", "Avg abandon time", Kind::Secs),
        col("max_abandon", "最大放棄時間", "Max abandon time", Kind::Secs),
    ]
}

/// A group statistics row: コール数 counts the customers who reached the group (answered), as
/// 応答呼 + 破棄呼 + あふれ + 制限時間 (an outbound group has no queue limit: あふれ is 0).
fn group_row(label: Value, m: &Measures) -> Vec<Value> {
    let g = |i: usize| m.0[i];
    let given_up = g(4) + g(5);
    vec![
        label,
        json!(g(2)),
        json!(g(3)),
        json!(g(4)),
        json!(0),
        json!(g(5)),
        ratio(g(3), g(2)),
        avg_ms(g(6), g(3)),
        if g(3) == 0 { Value::Null } else { json!(g(7)) },
        avg_ms(g(8), given_up),
        if given_up == 0 { Value::Null } else { json!(g(9)) },
    ]
}

fn weekday(s: &str) -> Weekday {
    match s {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        _ => Weekday::Sun,
    }
}

async fn groups(st: AppState, auth: Auth, p: Params) -> ApiResult<Report> {
    let q = Q::new(&p, &["from", "to", "group_id", "by", "include_latest", "week_start"])?;
    let tz = auth.tz();
    let (from, to) = q.days(tz)?;
    let group = q.id("group_id")?;
    checked_ref(&st, &auth, "dialing_groups", "group_id", group).await?;
    let by = q.choice("by", &["date", "week", "hour", "agent", "duration"], "date")?;
    let latest = q.choice("include_latest", &["true", "false"], "true")? == "true";
    let week_start = weekday(q.choice("week_start", &["sun", "mon", "tue", "wed", "thu", "fri", "sat"], "sun")?);
    let (t, db) = (auth.tenant(), &st.db);
    let mut f = Filter { from_day: from.to_string(), to_day: to.to_string(), group_id: group, ..Default::default() };
    if !latest {
        f.hours_before = Some(store::rollups::hour_of(tz, store::now_ms()).0);
    }
    let mut rows = Vec::new();
    let total_of = |f: &Filter| {
        let f = f.clone();
        async move { store::reports::sum_calls(db, t, RollupTable::Calls, &f, &[]).await }
    };
    let total = total_of(&f).await?.into_iter().next().map(|r| r.m).unwrap_or_default();
    match by {
        "date" | "week" => {
            let sums: HashMap<String, Measures> = store::reports::sum_calls(db, t, RollupTable::Calls, &f, &[By::Day])
                .await?
                .into_iter()
                .map(|r| (r.keys[0].clone(), r.m))
                .collect();
            let mut buckets: BTreeMap<NaiveDate, Measures> = BTreeMap::new();
            for d in date_range(from, to) {
                let key = if by == "week" {
                    let back = (7 + d.weekday().num_days_from_sunday() - week_start.num_days_from_sunday()) % 7;
                    d - chrono::Duration::days(i64::from(back))
                } else {
                    d
                };
                let e = buckets.entry(key).or_default();
                if let Some(m) = sums.get(&d.to_string()) {
                    add(e, m);
                }
            }
            for (d, m) in buckets {
                rows.push(group_row(json!(d.to_string()), &m));
            }
        }
        "hour" => {
            let sums: HashMap<String, Measures> = store::reports::sum_calls(db, t, RollupTable::Calls, &f, &[By::Hour])
                .await?
                .into_iter()
                .map(|r| (r.keys[0].clone(), r.m))
                .collect();
            for h in 0..24 {
                let m = sums.get(&h.to_string()).copied().unwrap_or_default();
                rows.push(group_row(json!(format!("{h:02}:00")), &m));
            }
        }
        "agent" => {
            let names = names_map(store::reports::names(db, t, "users", "display_name").await?);
            for r in store::reports::sum_calls(db, t, RollupTable::AgentDays, &f, &[By::Agent]).await? {
                let name = names.get(&r.keys[0]).cloned().unwrap_or_else(|| r.keys[0].clone());
                rows.push(group_row(json!(name), &r.m));
            }
        }
        _ => {
            let sums: HashMap<String, Measures> = store::reports::sum_calls(db, t, RollupTable::Calls, &f, &[By::Band])
                .await?
                .into_iter()
                .map(|r| (r.keys[0].clone(), r.m))
                .collect();
            let mut lower = 0;
            for (i, upper) in store::rollups::BAND_UPPER_S.iter().enumerate() {
                let label = match upper {
                    Some(u) => format!("{}–{}", mmss(lower), mmss(u - 1)),
                    None => format!("{}–", mmss(lower)),
                };
                let m = sums.get(&(i + 1).to_string()).copied().unwrap_or_default();
                rows.push(group_row(json!(label), &m));
                lower = upper.unwrap_or(0);
            }
        }
    }
    let mut columns = group_columns();
    columns[0] = match by {
        "date" => col("label", "日付", "Date", Kind::Text),
        "week" => col("label", "週", "Week", Kind::Text),
        "hour" => col("label", "時間", "Hour", Kind::Text),
        "agent" => col("label", "エージェント", "Agent", Kind::Text),
        _ => col("label", "通話時間", "Talk time", Kind::Text),
    };
    Ok(Report { columns, rows, total: Some(group_row(Value::Null, &total)), extra: json!({"by": by}) })
}

fn mmss(s: i64) -> String {
    format!("{}:{:02}", s / 60, s % 60)
}

fn add(into: &mut Measures, m: &Measures) {
    let mut t = *into;
    for (i, v) in m.0.iter().enumerate() {
        if i == 7 || i == 9 {
            t.0[i] = t.0[i].max(*v);
        } else {
            t.0[i] += v;
        }
    }
    *into = t;
}

// ------------------------------------------------------------------------------------------ campaigns

/// Result columns: the campaign's result codes (by number), then the system results that occur.
async fn result_labels(st: &AppState, t: i64, campaign: Option<i64>) -> ApiResult<Vec<(String, String, String)>> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for r in store::results::numbered(&st.db, t, campaign).await? {
        let (n, label) = (r.number, r.label);
        if !out.iter().any(|(k, _, _)| *k == n.to_string()) {
            out.push((n.to_string(), label.clone(), label));
        }
    }
    Ok(out)
}

async fn campaigns(st: AppState, auth: Auth, p: Params) -> ApiResult<Report> {
    let q = Q::new(&p, &["from", "to", "campaign_id", "by", "show"])?;
    let (from, to) = q.days(auth.tz())?;
    let campaign = q.id("campaign_id")?;
    checked_ref(&st, &auth, "campaigns", "campaign_id", campaign).await?;
    let by = q.choice("by", &["date", "hour", "agent"], "date")?;
    let percent = q.choice("show", &["count", "percent"], "count")? == "percent";
    let (t, db) = (auth.tenant(), &st.db);
    let mut f =
        Filter { from_day: from.to_string(), to_day: to.to_string(), campaign_id: campaign, ..Default::default() };
    let (mut table, key) = match by {
        "date" => (RollupTable::Calls, By::Day),
        "hour" => (RollupTable::Calls, By::Hour),
        _ => (RollupTable::AgentDays, By::Agent),
    };
    // An OP reads its own figures (kept per agent and day); BIZ counts the reported records only.
    let (leads_m, dials_m) = if auth.role() == Role::Biz { (16, 16) } else { (13, 1) };
    if auth.role() == Role::Op {
        if by == "hour" {
            return Err(ApiError::bad_request("by", "by: an operator's own figures are kept per day (date or agent)"));
        }
        table = RollupTable::AgentDays;
        f.agent_user_id = Some(auth.user());
    }
    let sums = store::reports::sum_calls(db, t, table, &f, &[key, By::Result]).await?;
    let mut results = result_labels(&st, t, campaign).await?;
    let seen: BTreeSet<String> = sums.iter().filter(|r| r.m.0[leads_m] > 0).map(|r| r.keys[1].clone()).collect();
    for r in &seen {
        if !results.iter().any(|(k, _, _)| k == r) {
            let (ja, en) = system_result(r).unwrap_or((r.as_str(), r.as_str()));
            results.push((r.clone(), ja.to_string(), en.to_string()));
        }
    }
    // row key -> (leads, dials, leads per result)
    let mut per: BTreeMap<String, (i64, i64, HashMap<String, i64>)> = BTreeMap::new();
    match by {
        "date" => {
            for d in date_range(from, to) {
                per.insert(d.to_string(), Default::default());
            }
        }
        "hour" => {
            for h in 0..24 {
                per.insert(format!("{h:02}"), Default::default());
            }
        }
        _ => {}
    }
    let mut total = (0, 0, HashMap::new());
    for r in &sums {
        let k = if by == "hour" { format!("{:02}", r.keys[0].parse::<i64>().unwrap_or(0)) } else { r.keys[0].clone() };
        let e = per.entry(k).or_default();
        for e in [e, &mut total] {
            e.0 += r.m.0[leads_m];
            e.1 += r.m.0[dials_m];
            *e.2.entry(r.keys[1].clone()).or_default() += r.m.0[leads_m];
        }
    }
    let names = if by == "agent" {
        names_map(store::reports::names(db, t, "users", "display_name").await?)
    } else {
        HashMap::new()
    };
    let mut columns = vec![
        match by {
            "date" => col("label", "日付", "Date", Kind::Text),
            "hour" => col("label", "時間", "Hour", Kind::Text),
            _ => col("label", "エージェント", "Agent", Kind::Text),
        },
        col("leads", "件数", "Leads", Kind::Int),
        col("calls", "コール数", "Calls", Kind::Int),
    ];
    for (k, ja, en) in &results {
        columns.push(Column {
            key: format!("result:{k}"),
            ja: ja.clone(),
            en: en.clone(),
            kind: if percent { Kind::Pct } else { Kind::Int },
        });
    }
    let row = |label: Value, (leads, dials, by_result): &(i64, i64, HashMap<String, i64>)| {
        let mut out = vec![label, json!(leads), json!(dials)];
        for (k, _, _) in &results {
            let n = by_result.get(k).copied().unwrap_or(0);
            out.push(if percent { ratio(n, *leads) } else { json!(n) });
        }
        out
    };
    let rows = per
        .iter()
        .map(|(k, v)| {
            let label = match by {
                "hour" => format!("{k}:00"),
                "agent" => names.get(k).cloned().unwrap_or_else(|| k.clone()),
                _ => k.clone(),
            };
            row(json!(label), v)
        })
        .collect();
    Ok(Report {
        columns,
        rows,
        total: Some(row(Value::Null, &total)),
        extra: json!({"by": by, "show": if percent { "percent" } else { "count" }}),
    })
}

// ------------------------------------------------------------------------------------------ numbers

async fn numbers(st: AppState, auth: Auth, p: Params) -> ApiResult<Report> {
    let q = Q::new(&p, &["from", "to", "direction", "number"])?;
    let (from, to) = q.days(auth.tz())?;
    let direction = q.choice("direction", &["all", "outbound", "inbound"], "all")?;
    let prefix = q.str("number").unwrap_or("");
    if !prefix.chars().all(|c| c.is_ascii_digit()) || prefix.len() > 30 {
        return Err(ApiError::bad_request("number", "number: digits only, at most 30"));
    }
    let (t, db) = (auth.tenant(), &st.db);
    let f = Filter { from_day: from.to_string(), to_day: to.to_string(), ..Default::default() };
    let sums = store::reports::sum_calls(db, t, RollupTable::Calls, &f, &[By::CallerId, By::Direction]).await?;
    let mut per: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    for (_, n) in store::reports::names(db, t, "caller_ids", "number").await? {
        per.insert(n, [0; 6]);
    }
    for r in &sums {
        if r.keys[0].is_empty() {
            continue;
        }
        let e = per.entry(r.keys[0].clone()).or_default();
        let o = if r.keys[1] == "inbound" { 3 } else { 0 };
        e[o] += r.m.0[1];
        e[o + 1] += r.m.0[2];
        e[o + 2] += r.m.0[11];
    }
    let columns = vec![
        col("number", "電話番号", "Number", Kind::Text),
        col("out_calls", "発信数", "Outbound calls", Kind::Int),
        col("out_connected", "発信成立数", "Outbound connected", Kind::Int),
        col("out_seconds", "発信秒数", "Outbound seconds", Kind::Int),
        col("out_avg", "発信平均", "Outbound average", Kind::Int),
        col("in_calls", "着信数", "Inbound calls", Kind::Int),
        col("in_connected", "着信成立数", "Inbound connected", Kind::Int),
        col("in_seconds", "着信秒数", "Inbound seconds", Kind::Int),
        col("in_avg", "着信平均", "Inbound average", Kind::Int),
    ];
    let mut total = [0_i64; 6];
    let mut rows = Vec::new();
    for (n, v) in per {
        if !n.starts_with(prefix) {
            continue;
        }
        let mut v = v;
        if direction == "outbound" {
            v[3..].fill(0);
        } else if direction == "inbound" {
            v[..3].fill(0);
        }
        for i in 0..6 {
            total[i] += v[i];
        }
        rows.push(number_row(json!(n), &v));
    }
    Ok(Report { columns, rows, total: Some(number_row(Value::Null, &total)), extra: json!({"direction": direction}) })
}

/// 発信秒数 is the time on the line after the answer; 発信平均 is it per connected call, in seconds.
fn number_row(label: Value, v: &[i64; 6]) -> Vec<Value> {
    let secs = |ms: i64| (ms + 500) / 1000;
    let avg = |ms: i64, n: i64| if n == 0 { 0 } else { (ms / n + 500) / 1000 };
    vec![
        label,
        json!(v[0]),
        json!(v[1]),
        json!(secs(v[2])),
        json!(avg(v[2], v[1])),
        json!(v[3]),
        json!(v[4]),
        json!(secs(v[5])),
        json!(avg(v[5], v[4])),
    ]
}

// ------------------------------------------------------------------------------------------ states

/// (state, pause reason) -> (ms, entries)
type StateSlots = HashMap<(String, i64), (i64, i64)>;

const STATE_COLUMNS: [(&str, &str, &str); 8] = [
    ("ready", "待機", "Ready"),
    ("ringing", "着信中", "Ringing"),
    ("talking", "通話中", "Talking"),
    ("hold", "保留", "Hold"),
    ("offline", "オフライン", "Offline"),
    ("paused", "停止", "Paused"),
    ("wrap_up", "後処理", "Wrap-up"),
    ("unknown", "未確認", "Unknown"),
];

async fn member_agents(
    st: &AppState,
    t: i64,
    group: Option<i64>,
    campaign: Option<i64>,
) -> ApiResult<Option<Vec<i64>>> {
    use store::membership::Members;
    let (of, id) = match (group, campaign) {
        (Some(g), _) => (Members::DialingGroup, g),
        (None, Some(c)) => (Members::Campaign, c),
        (None, None) => return Ok(None),
    };
    Ok(Some(store::membership::members(&st.db, t, of, id).await?))
}

async fn states(st: AppState, auth: Auth, p: Params) -> ApiResult<Report> {
    let q = Q::new(&p, &["from", "to", "hour", "hours", "by", "show", "group_id", "campaign_id", "agent"])?;
    let (from, to) = q.days(auth.tz())?;
    let hour = q.int("hour", 0, 23)?.unwrap_or(0);
    let hours = q.int("hours", 1, 24)?.unwrap_or(24);
    let by = q.choice("by", &["agent", "hour"], "agent")?;
    let show = q.choice("show", &["percent", "seconds", "count", "average"], "percent")?;
    let (group, campaign) = (q.id("group_id")?, q.id("campaign_id")?);
    checked_ref(&st, &auth, "dialing_groups", "group_id", group).await?;
    checked_ref(&st, &auth, "campaigns", "campaign_id", campaign).await?;
    let agent_text = q.str("agent").unwrap_or("").to_lowercase();
    if agent_text.chars().count() > 100 {
        return Err(ApiError::bad_request("agent", "agent: at most 100 characters"));
    }
    let (t, db) = (auth.tenant(), &st.db);
    let names = names_map(store::reports::names(db, t, "users", "display_name").await?);
    let mut agents = member_agents(&st, t, group, campaign).await?;
    if auth.role() == Role::Op {
        agents = Some(vec![auth.user()]);
    }
    if !agent_text.is_empty() {
        let matching: Vec<i64> = names
            .iter()
            .filter(|(_, n)| n.to_lowercase().contains(&agent_text))
            .filter_map(|(id, _)| id.parse().ok())
            .collect();
        agents = Some(match agents {
            Some(a) => a.into_iter().filter(|id| matching.contains(id)).collect(),
            None => matching,
        });
    }
    let f = Filter {
        from_day: from.to_string(),
        to_day: to.to_string(),
        hour_range: Some((hour, (hour + hours).min(24))),
        agents,
        ..Default::default()
    };
    let key = if by == "agent" { By::Agent } else { By::Hour };
    let sums = store::reports::sum_states(db, t, &f, &[key, By::State, By::Reason]).await?;
    let reasons = store::reports::names(db, t, "pause_reasons", "name").await?;
    let mut columns = vec![if by == "agent" {
        col("label", "エージェント", "Agent", Kind::Text)
    } else {
        col("label", "時間", "Hour", Kind::Text)
    }];
    let kind = match show {
        "percent" => Kind::Pct,
        "seconds" | "average" => Kind::Secs,
        _ => Kind::Int,
    };
    let mut slots: Vec<(String, i64)> = Vec::new();
    for (k, ja, en) in STATE_COLUMNS {
        columns.push(col(k, ja, en, kind));
        slots.push((k.to_string(), 0));
    }
    for (id, name) in &reasons {
        columns.push(Column { key: format!("reason:{id}"), ja: name.clone(), en: name.clone(), kind });
        slots.push(("paused".to_string(), *id));
    }
    // row key -> slot -> (ms, entries)
    let mut per: BTreeMap<i64, StateSlots> = BTreeMap::new();
    if by == "hour" {
        for h in hour..(hour + hours).min(24) {
            per.insert(h, HashMap::new());
        }
    }
    let mut total = StateSlots::new();
    for r in &sums {
        let k: i64 = r.keys[0].parse().unwrap_or(0);
        let mut reason: i64 = r.keys[2].parse().unwrap_or(0);
        if !reasons.iter().any(|(id, _)| *id == reason) {
            reason = 0;
        }
        let slot = (r.keys[1].clone(), if r.keys[1] == "paused" { reason } else { 0 });
        for m in [per.entry(k).or_default(), &mut total] {
            let e = m.entry(slot.clone()).or_default();
            e.0 += r.ms;
            e.1 += r.entries;
        }
    }
    let row = |label: Value, m: &StateSlots| {
        let all: i64 = m.values().map(|(ms, _)| ms).sum();
        let mut out = vec![label];
        for s in &slots {
            let (ms, n) = m.get(s).copied().unwrap_or_default();
            out.push(match show {
                "percent" => ratio(ms, all),
                "seconds" => json!(ms),
                "count" => json!(n),
                _ => avg_ms(ms, n),
            });
        }
        out
    };
    let rows = per
        .iter()
        .map(|(k, m)| {
            let label = if by == "agent" {
                names.get(&k.to_string()).cloned().unwrap_or_else(|| k.to_string())
            } else {
                format!("{k:02}:00")
            };
            row(json!(label), m)
        })
        .collect();
    Ok(Report { columns, rows, total: Some(row(Value::Null, &total)), extra: json!({"by": by, "show": show}) })
}

// ------------------------------------------------------------------------------------------ lists

async fn lists(st: AppState, auth: Auth, p: Params) -> ApiResult<Report> {
    let q = Q::new(&p, &["date", "campaign_id"])?;
    let tz = auth.tz();
    let day = q.date("date", store::tenancy::local_date(tz, store::now_ms()))?;
    let campaign = q.id("campaign_id")?;
    checked_ref(&st, &auth, "campaigns", "campaign_id", campaign).await?;
    let (t, db) = (auth.tenant(), &st.db);
    let lists = store::reports::lists(db, t, campaign).await?;
    let registered: HashMap<i64, i64> = store::reports::leads_per_list(db, t).await?.into_iter().collect();
    let today = Filter { from_day: day.to_string(), to_day: day.to_string(), ..Default::default() };
    let day_sums: HashMap<String, Measures> = store::reports::sum_calls(db, t, RollupTable::Calls, &today, &[By::List])
        .await?
        .into_iter()
        .map(|r| (r.keys[0].clone(), r.m))
        .collect();
    let upto = Filter { from_day: "0000-01-01".into(), to_day: day.to_string(), ..Default::default() };
    let work: HashMap<String, i64> = store::reports::sum_calls(db, t, RollupTable::Calls, &upto, &[By::List])
        .await?
        .into_iter()
        .map(|r| (r.keys[0].clone(), r.m.0[14]))
        .collect();
    let columns = vec![
        col("list", "リスト名", "List", Kind::Text),
        col("registered", "登録数", "Registered", Kind::Int),
        col("work", "作業数", "Work count", Kind::Int),
        col("progress", "進捗", "Progress", Kind::Pct),
        col("calls", "コール数", "Calls", Kind::Int),
        col("connects", "コネクト数", "Connects", Kind::Int),
        col("connect_rate", "コネクト率", "Connect rate", Kind::Pct),
    ];
    let mut rows = Vec::new();
    let mut tot = [0_i64; 4];
    for l in lists {
        let (id, name) = (l.id, l.name);
        let reg = registered.get(&id).copied().unwrap_or(0);
        let w = work.get(&id.to_string()).copied().unwrap_or(0);
        let m = day_sums.get(&id.to_string()).copied().unwrap_or_default();
        let v = [reg, w, m.0[1], m.0[15]];
        for i in 0..4 {
            tot[i] += v[i];
        }
        rows.push(list_row(json!(name), &v));
    }
    Ok(Report { columns, rows, total: Some(list_row(Value::Null, &tot)), extra: json!({"date": day.to_string()}) })
}

fn list_row(label: Value, v: &[i64; 4]) -> Vec<Value> {
    vec![label, json!(v[0]), json!(v[1]), ratio(v[1], v[0]), json!(v[2]), json!(v[3]), ratio(v[3], v[2])]
}

// ------------------------------------------------------------------------------------------ outbound

async fn outbound(st: AppState, auth: Auth, p: Params) -> ApiResult<Report> {
    let q = Q::new(&p, &["from", "to", "campaign_id"])?;
    let tz = auth.tz();
    let (from, to) = q.days(tz)?;
    let campaign = q.id("campaign_id")?;
    checked_ref(&st, &auth, "campaigns", "campaign_id", campaign).await?;
    let (t, db) = (auth.tenant(), &st.db);
    let now = store::now_ms();
    let camps: Vec<(i64, String, f64)> = store::reports::campaigns(db, t, campaign)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name, c.abandon_target_pct))
        .collect();
    // Three independent reads at once (each a statement on its own connection): hourly live
    // answers and abandons from 30 days before `from` (the rolling windows), the days' call
    // figures, and the time per state of each campaign's member agents.
    let wide_from = (from - chrono::Duration::days(31)).to_string();
    let (from_day, to_day) = (from.to_string(), to.to_string());
    let f = Filter { from_day: from_day.clone(), to_day: to_day.clone(), campaign_id: campaign, ..Default::default() };
    let (hourly, daily, campaign_states) = tokio::try_join!(
        store::reports::live_abandons_by_hour(db, t, &wide_from, &to_day, campaign),
        store::reports::sum_calls(db, t, RollupTable::Calls, &f, &[By::Campaign, By::Day]),
        store::reports::campaign_states(db, t, &from_day, &to_day, campaign),
    )?;
    let mut by_campaign: HashMap<i64, Vec<(i64, i64, i64)>> = HashMap::new();
    for (c, hour_at, live, abandons) in hourly {
        by_campaign.entry(c).or_default().push((hour_at, live, abandons));
    }
    let daily: HashMap<(String, String), Measures> =
        daily.into_iter().map(|r| ((r.keys[0].clone(), r.keys[1].clone()), r.m)).collect();
    // (campaign, day) -> [ready, ringing, talking + hold + wrap-up] ms
    let mut states: HashMap<(i64, String), [i64; 3]> = HashMap::new();
    for (c, day, state, ms) in campaign_states {
        let slot = match state.as_str() {
            "ready" => 0,
            "ringing" => 1,
            "talking" | "hold" | "wrap_up" => 2,
            _ => continue,
        };
        states.entry((c, day)).or_default()[slot] += ms;
    }
    let columns = vec![
        col("campaign", "キャンペーン", "Campaign", Kind::Text),
        col("date", "日付", "Date", Kind::Text),
        col("dials", "発信数", "Dials", Kind::Int),
        col("live", "有人応答", "Live answers", Kind::Int),
        col("connected", "接続", "Connected", Kind::Int),
        col("abandons", "破棄呼", "Abandons", Kind::Int),
        col("abandon_rate", "破棄率", "Abandon rate", Kind::Pct),
        col("target", "目標", "Target", Kind::Pct),
        col("rate_24h", "破棄率(24時間)", "Abandon rate (24 h)", Kind::Pct),
        col("rate_30d", "破棄率(30日)", "Abandon rate (30 days)", Kind::Pct),
        col("dial_level", "発信レベル", "Dial level", Kind::Real),
        col("occupancy", "稼働率", "Occupancy", Kind::Pct),
        col("avg_wait", "平均待機時間", "Avg agent wait", Kind::Secs),
    ];
    let mut rows = Vec::new();
    for (cid, name, target) in &camps {
        // The campaign's hours in order with running sums: a window is two binary searches.
        let mut hours = by_campaign.get(cid).cloned().unwrap_or_default();
        hours.sort_unstable();
        let mut sums = Vec::with_capacity(hours.len() + 1);
        sums.push((0_i64, 0_i64));
        for (_, l, a) in &hours {
            let (pl, pa) = sums[sums.len() - 1];
            sums.push((pl + l, pa + a));
        }
        for d in date_range(from, to) {
            let (start, end) = store::rollups::day_bounds(tz, d);
            let at = end.min(now.max(start));
            let window = |ms: i64| {
                let lo = hours.partition_point(|(h, _, _)| *h < at - ms);
                let hi = hours.partition_point(|(h, _, _)| *h < at);
                ratio(sums[hi].1 - sums[lo].1, sums[hi].0 - sums[lo].0)
            };
            let m = daily.get(&(cid.to_string(), d.to_string())).copied().unwrap_or_default();
            let [ready, ring, busy] = states.get(&(*cid, d.to_string())).copied().unwrap_or_default();
            let active = ready + ring + busy;
            let abandons = m.0[4] + m.0[5];
            rows.push(vec![
                json!(name),
                json!(d.to_string()),
                json!(m.0[1]),
                json!(m.0[2]),
                json!(m.0[3]),
                json!(abandons),
                ratio(abandons, m.0[2]),
                json!(target / 100.0),
                window(24 * 3_600_000),
                window(30 * 24 * 3_600_000),
                if active == 0 { Value::Null } else { json!(m.0[12] as f64 / active as f64) },
                ratio(busy, active),
                avg_ms(ready, m.0[3]),
            ]);
        }
    }
    Ok(Report { columns, rows, total: None, extra: json!({}) })
}

async fn abandons(st: AppState, auth: Auth, p: Params) -> ApiResult<Report> {
    let q = Q::new(&p, &["from", "to", "campaign_id"])?;
    let tz = auth.tz();
    let (from, to) = q.days(tz)?;
    let campaign = q.id("campaign_id")?;
    checked_ref(&st, &auth, "campaigns", "campaign_id", campaign).await?;
    let t = auth.tenant();
    let (start, _) = store::rollups::day_bounds(tz, from);
    let (_, end) = store::rollups::day_bounds(tz, to);
    let camps: HashMap<i64, (String, i64)> = store::reports::campaigns(&st.db, t, None)
        .await?
        .into_iter()
        .map(|c| (c.id, (c.name, c.agent_wait_timeout_s * 1000)))
        .collect();
    let list = store::reports::abandons(&st.db, t, campaign, start, end, MAX_ABANDONS).await?;
    let columns = vec![
        col("answered_at", "応答日時", "Answered at", Kind::Text),
        col("campaign", "キャンペーン", "Campaign", Kind::Text),
        col("wait", "待ち時間", "Wait", Kind::Secs),
        col("released", "待ち呼タイムアウトで切断", "Released at the wait limit", Kind::Text),
        col("message_2s", "2秒以内にメッセージ", "Message within 2 s", Kind::Text),
        col("call_id", "通話ID", "Call id", Kind::Int),
    ];
    let rows = list
        .iter()
        .map(|a| {
            let (name, limit) = a.campaign_id.and_then(|c| camps.get(&c).cloned()).unwrap_or_default();
            let released = limit > 0 && a.wait_ms >= limit;
            // The dialer plays the campaign's message when the wait limit is reached: it played
            // within 2 s of the answer when the limit is at most 2 s and the customer stayed.
            let in_2s = released && limit <= 2000;
            vec![
                json!(DateTime::from_timestamp_millis(a.answered_at)
                    .map(|d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default()),
                json!(name),
                json!(a.wait_ms),
                json!(if released { "○" } else { "-" }),
                json!(if in_2s { "○" } else { "-" }),
                json!(a.call_id),
            ]
        })
        .collect();
    Ok(Report { columns, rows, total: None, extra: json!({"truncated": list.len() as i64 >= MAX_ABANDONS}) })
}

// ------------------------------------------------------------------------------------------ call history

const HISTORY_KEYS: &[&str] = &[
    "from",
    "to",
    "tel",
    "direction",
    "min_seconds",
    "agent_id",
    "group_id",
    "campaign_id",
    "result",
    "before",
    "limit",
];

fn instant(tz: Tz, k: &str, v: &str, end: bool) -> ApiResult<i64> {
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let d = if end { d.succ_opt().unwrap_or(d) } else { d };
        return Ok(store::tenancy::local_midnight_ms(tz, d));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.timestamp_millis())
        .map_err(|_| ApiError::bad_request(k, format!("{k}: a date YYYY-MM-DD or an RFC 3339 date-time")))
}

async fn history_filter(st: &AppState, auth: &Auth, p: &Params) -> ApiResult<HistoryFilter> {
    let q = Q::new(p, HISTORY_KEYS)?;
    let tz = auth.tz();
    let now = store::now_ms();
    let today = store::tenancy::local_date(tz, now);
    let from_ms = match q.str("from") {
        Some(v) => instant(tz, "from", v, false)?,
        None => store::tenancy::local_midnight_ms(tz, today),
    };
    let to_ms = match q.str("to") {
        Some(v) => instant(tz, "to", v, true)?,
        None => now + 1,
    };
    if to_ms < from_ms {
        return Err(ApiError::bad_request("to", "to: not before from"));
    }
    let tel = q.str("tel").map(str::to_string);
    if let Some(t) = &tel {
        if !t.chars().all(|c| c.is_ascii_digit()) || t.len() > 30 {
            return Err(ApiError::bad_request("tel", "tel: digits only, at most 30"));
        }
    }
    let result = q.str("result").map(str::to_string);
    if result.as_ref().is_some_and(|r| r.chars().count() > 64 || r.contains('\0')) {
        return Err(ApiError::bad_request("result", "result: at most 64 characters"));
    }
    let before = match q.str("before") {
        None => None,
        Some(v) => Some(
            v.split_once(':')
                .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
                .ok_or_else(|| ApiError::bad_request("before", "before: the `next` of the previous page"))?,
        ),
    };
    let f = HistoryFilter {
        from_ms,
        to_ms,
        tel_prefix: tel,
        direction: q
            .str("direction")
            .map(|_| q.choice("direction", &["outbound", "inbound"], "outbound"))
            .transpose()?
            .map(str::to_string),
        min_seconds: q.int("min_seconds", 0, 86_400)?,
        agent_user_id: q.id("agent_id")?,
        group_id: q.id("group_id")?,
        campaign_id: q.id("campaign_id")?,
        result,
        reported_only: auth.role() == Role::Biz,
        before,
        limit: q.int("limit", 1, MAX_PAGE)?.unwrap_or(100),
    };
    let mut f = f;
    if auth.role() == Role::Op {
        // An OP reads its own calls only, whatever it asks for.
        f.agent_user_id = Some(auth.user());
    } else {
        checked_ref(st, auth, "users", "agent_id", f.agent_user_id).await?;
    }
    checked_ref(st, auth, "dialing_groups", "group_id", f.group_id).await?;
    checked_ref(st, auth, "campaigns", "campaign_id", f.campaign_id).await?;
    Ok(f)
}

fn history_json(tz: Tz, r: &store::reports::HistoryRow) -> Value {
    let at = |ms: i64| store::tenancy::local_rfc3339(tz, ms);
    json!({
        "id": r.id,
        "call_id": r.id,
        "started_at": at(r.started_at),
        "answered_at": r.answered_at.map(at),
        "ended_at": r.ended_at.map(at),
        "direction": r.direction,
        "tel": r.tel,
        "caller_id": r.caller_id,
        "campaign_id": r.campaign_id,
        "campaign": r.campaign,
        "group_id": r.group_id,
        "group": r.group,
        "agent_user_id": r.agent_user_id,
        "agent": r.agent,
        "lead_id": r.lead_id,
        "lead_name": r.lead_name,
        "result": r.result,
        "system_result": r.system_result,
        "talk_ms": r.talk_ms,
        "recording_id": r.recording_id,
        "audio_url": r.recording_id.map(|id| format!("/recordings/{id}/audio")),
        "wrapup_id": r.wrapup_id,
        "reported": r.reported,
        "callback_id": r.callback_id,
    })
}

async fn history(State(st): State<AppState>, auth: Auth, p: Params) -> ApiResult<Json<Value>> {
    auth.require(RESULT_READERS)?;
    let f = history_filter(&st, &auth, &p).await?;
    let rows = store::reports::call_history(&st.db, auth.tenant(), &f).await?;
    let next =
        (rows.len() as i64 == f.limit).then(|| rows.last().map(|r| format!("{}:{}", r.started_at, r.id))).flatten();
    let tz = auth.tz();
    Ok(Json(json!({"items": rows.iter().map(|r| history_json(tz, r)).collect::<Vec<_>>(), "next": next})))
}

const HISTORY_COLUMNS: [(&str, &str); 11] = [
    ("発信日時", "Started at"),
    ("発着信", "Direction"),
    ("相手番号", "Party number"),
    ("発信者番号", "Caller ID"),
    ("キャンペーン", "Campaign"),
    ("グループ", "Group"),
    ("エージェント", "Agent"),
    ("顧客名", "Customer"),
    ("結果", "Result"),
    ("通話時間", "Talk time"),
    ("通話ID", "Call id"),
];

fn history_cells(tz: Tz, r: &store::reports::HistoryRow) -> Vec<String> {
    vec![
        DateTime::from_timestamp_millis(r.started_at)
            .map(|d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default(),
        r.direction.clone(),
        r.tel.clone(),
        r.caller_id.clone().unwrap_or_default(),
        r.campaign.clone().unwrap_or_default(),
        r.group.clone().unwrap_or_default(),
        r.agent.clone().unwrap_or_default(),
        r.lead_name.clone().unwrap_or_default(),
        r.result.clone(),
        mmss(r.talk_ms / 1000),
        r.id.to_string(),
    ]
}

async fn history_csv(State(st): State<AppState>, auth: Auth, p: Params) -> ApiResult<Response> {
    auth.require(RESULT_READERS)?;
    let encoding = match p.get("encoding") {
        Some(e) => CsvEncoding::param(e)?,
        None => CsvEncoding::Utf8Bom,
    };
    let lang = csv_lang(&p)?;
    let rest = p.clone_without(&["encoding", "lang"]);
    if rest.get("before").is_some() || rest.get("limit").is_some() {
        return Err(ApiError::bad_request("limit", "limit: the CSV holds every row of the range"));
    }
    let mut f = history_filter(&st, &auth, &rest).await?;
    f.limit = 5_000;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PAGES_IN_FLIGHT);
    let (db, tenant, tz) = (st.db.clone(), auth.tenant(), auth.tz());
    tokio::spawn(async move {
        let header: Vec<String> = HISTORY_COLUMNS
            .iter()
            .map(|(ja, en)| if lang == Lang::En { en.to_string() } else { ja.to_string() })
            .collect();
        let mut first = csv_line(&header);
        if encoding == CsvEncoding::Utf8Bom {
            first.insert(0, '\u{feff}');
        }
        if tx.send(Ok(Bytes::from(encoding.encode(&first)))).await.is_err() {
            return;
        }
        // The range in slices of a day, newest first, each read page by page by a task of its own,
        // [`SLICES_IN_FLIGHT`] at once (each reads ahead of this writer by at most two pages): on
        // SQLite a statement runs on its connection's thread, so two slices use two cores.
        let mut slices = Vec::new();
        let mut end = f.to_ms;
        while end > f.from_ms {
            let start = (end - SLICE_MS).max(f.from_ms);
            slices.push(store::reports::HistoryFilter { from_ms: start, to_ms: end, ..f.clone() });
            end = start;
        }
        let read = |mut f: store::reports::HistoryFilter| {
            let db = db.clone();
            let (out, pages) = tokio::sync::mpsc::channel::<Result<Vec<store::reports::HistoryRow>, String>>(2);
            tokio::spawn(async move {
                loop {
                    let rows = match store::reports::call_history(&db, tenant, &f).await {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = out.send(Err(e.to_string())).await;
                            return;
                        }
                    };
                    let more = rows.len() as i64 >= f.limit;
                    if let Some(last) = rows.last() {
                        f.before = Some((last.started_at, last.id));
                    }
                    if out.send(Ok(rows)).await.is_err() || !more {
                        return;
                    }
                }
            });
            pages
        };
        let mut slices = slices.into_iter();
        let mut reading: std::collections::VecDeque<_> = slices.by_ref().take(SLICES_IN_FLIGHT).map(read).collect();
        while let Some(mut pages) = reading.pop_front() {
            while let Some(page) = pages.recv().await {
                let rows = match page {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::error!(error = %e, "call history export");
                        let _ = tx.send(Err(std::io::Error::other("the export failed"))).await;
                        return;
                    }
                };
                let text = crate::export::csv_lines(rows.iter().map(|r| history_cells(tz, r)));
                if tx.send(Ok(Bytes::from(encoding.encode(&text)))).await.is_err() {
                    return;
                }
            }
            reading.extend(slices.next().map(read));
        }
    });
    let body = HttpBody::from_stream(crate::recordings::stream_of(rx));
    Ok((
        [
            (header::CONTENT_TYPE, format!("text/csv; charset={}", encoding.charset())),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"call-history.csv\"".to_string()),
        ],
        body,
    )
        .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportedBody {
    reported: bool,
}

/// `POST /wrapup-records/{id}/report`: 報告. The rollup job sees the change by `reported_at`.
async fn mark_reported(
    State(st): State<AppState>,
    auth: Auth,
    crate::extract::Id(id): crate::extract::Id,
    crate::extract::Body(b): crate::extract::Body<ReportedBody>,
) -> ApiResult<Json<Value>> {
    auth.require(REPORTERS)?;
    let ctx = crate::resource::Ctx { st: st.clone(), auth: auth.clone() };
    crate::resource::visible(&ctx, &crate::resources::WRAPUP_RECORDS, id).await?;
    store::records::set_reported(&st.db, auth.tenant(), id, b.reported, store::now_ms()).await?;
    Ok(Json(json!({"id": id, "reported": b.reported})))
}
