//! `GET /lists/{id}/export.csv`: a customer list's leads as CSV for Excel (UTF-8 with a BOM, or
//! CP932), optionally only the leads a search or an attempt count picks (the console's 未発信,
//! 2回目, 3回目). The first columns are the import's (`name,kana,tel,remarks`), so an exported list
//! can be imported again; then tags, attempts, the last result and call, the state, and the tenant's
//! custom fields. Streamed page by page through a bounded channel: a list of 200,000 leads is never
//! held in memory.

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Value};
use store::leads::{ExportFilter, ExportRow};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Params};
use crate::resource::{visible, Ctx};
use crate::resources::{LEADS, LISTS};
use crate::{AppState, Op, Registry};

/// Leads per page read from the database.
const PAGE: i64 = 2_000;
/// Pages of CSV in flight to the client.
const PAGES_IN_FLIGHT: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvEncoding {
    /// UTF-8 with a byte-order mark (Excel opens it as UTF-8).
    Utf8Bom,
    /// Shift_JIS (Windows' CP932); characters it lacks become `&#NNNN;`.
    Cp932,
}

impl CsvEncoding {
    pub fn param(v: &str) -> ApiResult<CsvEncoding> {
        match v {
            "utf-8" | "utf-8-bom" | "utf8" => Ok(CsvEncoding::Utf8Bom),
            "shift_jis" | "cp932" | "sjis" => Ok(CsvEncoding::Cp932),
            _ => Err(ApiError::bad_request("encoding", "encoding: utf-8 (with BOM) or shift_jis")),
        }
    }

    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            CsvEncoding::Utf8Bom => text.as_bytes().to_vec(),
            CsvEncoding::Cp932 => encoding_rs::SHIFT_JIS.encode(text).0.into_owned(),
        }
    }

    pub fn charset(self) -> &'static str {
        match self {
            CsvEncoding::Utf8Bom => "UTF-8",
            CsvEncoding::Cp932 => "Shift_JIS",
        }
    }
}

pub fn mount(reg: &mut Registry) {
    let o = Op {
        method: "get",
        path: "/lists/{id}/export.csv".into(),
        summary: "A customer list's leads as CSV for Excel (name,kana,tel,remarks first, then tags, attempts, last result, state, custom fields)".into(),
        tag: "lists",
        roles: Some(LISTS.read.iter().copied().filter(|r| LEADS.read.contains(r)).collect()),
        request: None,
        response: (200, "text/csv", json!({"type": "string"})),
        errors: vec![400, 401, 403, 404],
        query: vec![
            ("encoding".into(), json!({"type": "string", "enum": ["utf-8", "shift_jis"], "default": "utf-8"}), "utf-8: UTF-8 with a BOM; shift_jis: CP932.".into()),
            ("attempts".into(), json!({"type": "integer", "minimum": 0}), "Only leads dialled exactly this many times (0 = 未発信, 1 = 2回目 next, ...).".into()),
            ("q".into(), json!({"type": "string", "maxLength": 200}), "Free text over name, kana, tel, remarks and tags (every word).".into()),
        ],
    };
    reg.add(o, get(export));
}

/// Many CSV records through one writer (a page of an export).
pub fn csv_lines(records: impl Iterator<Item = Vec<String>>) -> String {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    for r in records {
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&r);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

pub fn csv_line(fields: &[String]) -> String {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(fields);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn row_fields(ctx_tz: chrono_tz::Tz, r: &ExportRow, custom_keys: &[String]) -> Vec<String> {
    let tags: Vec<String> = serde_json::from_str(&r.tags).unwrap_or_default();
    let custom: serde_json::Map<String, Value> = serde_json::from_str(&r.custom).unwrap_or_default();
    let mut out = vec![
        r.name.clone(),
        r.kana.clone(),
        r.tel.clone(),
        // The import reads "\n" in remarks as a line break.
        r.remarks.clone().unwrap_or_default().replace('\n', "\\n"),
        tags.join(" "),
        r.attempts.to_string(),
        r.last_result.clone().unwrap_or_default(),
        r.last_attempt_at
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|d| d.with_timezone(&ctx_tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default(),
        r.state.clone(),
    ];
    for k in custom_keys {
        out.push(match custom.get(k) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join("|"),
            Some(v) => v.to_string(),
        });
    }
    out
}

async fn export(State(st): State<AppState>, auth: Auth, Id(list_id): Id, params: Params) -> ApiResult<Response> {
    let ctx = Ctx { st, auth };
    ctx.auth.require(LISTS.read)?;
    ctx.auth.require(LEADS.read)?;
    visible(&ctx, &LISTS, list_id).await?;
    let (mut encoding, mut attempts, mut q) = (CsvEncoding::Utf8Bom, None, None);
    for (k, v) in &params.0 {
        match k.as_str() {
            "encoding" => encoding = CsvEncoding::param(v)?,
            "attempts" => {
                attempts = Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| (0..=1000).contains(n))
                        .ok_or_else(|| ApiError::bad_request("attempts", "attempts: an integer from 0 to 1000"))?,
                )
            }
            "q" if v.chars().count() <= 200 && !v.contains('\0') => q = Some(v.clone()),
            "q" => return Err(ApiError::bad_request("q", "q: at most 200 characters")),
            other => return Err(ApiError::bad_request(other, format!("{other}: unknown parameter"))),
        }
    }
    let custom = store::leads::custom_fields(&ctx.st.db, ctx.tenant()).await?;
    let mut header: Vec<String> =
        ["name", "kana", "tel", "remarks", "tags", "attempts", "last_result", "last_attempt_at", "state"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    header.extend(custom.iter().map(|f| f.label.clone()));
    let custom_keys: Vec<String> = custom.into_iter().map(|f| f.key).collect();

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PAGES_IN_FLIGHT);
    let db = ctx.st.db.clone();
    let (tenant, tz) = (ctx.tenant(), ctx.auth.tz());
    tokio::spawn(async move {
        let mut first = csv_line(&header);
        if encoding == CsvEncoding::Utf8Bom {
            first.insert(0, '\u{feff}');
        }
        if tx.send(Ok(Bytes::from(encoding.encode(&first)))).await.is_err() {
            return;
        }
        let columns = LEADS.search_columns();
        let filter = ExportFilter { attempts, search: q.as_deref().map(|q| (q, &columns[..])) };
        let mut after = 0;
        loop {
            let rows = match store::leads::export_page(&db, tenant, list_id, &filter, after, PAGE).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, list = list_id, "lead export");
                    let _ = tx.send(Err(std::io::Error::other("the export failed"))).await;
                    return;
                }
            };
            let Some(last) = rows.last() else { return };
            after = last.id;
            let text: String = rows.iter().map(|r| csv_line(&row_fields(tz, r, &custom_keys))).collect();
            if tx.send(Ok(Bytes::from(encoding.encode(&text)))).await.is_err() || rows.len() < PAGE as usize {
                return;
            }
        }
    });
    let body = HttpBody::from_stream(crate::recordings::stream_of(rx));
    let file = format!("list-{list_id}.csv");
    Ok((
        [
            (header::CONTENT_TYPE, format!("text/csv; charset={}", encoding.charset())),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        body,
    )
        .into_response())
}
