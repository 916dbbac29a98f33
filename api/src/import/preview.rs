//! `POST /lists/{id}/imports/preview`: the first rows of a CSV as the import will read them (the
//! same decoder and CSV reader, the chosen delimiter and header row), for the console's column
//! mapping (列1, 列2, ... onto name, kana, tel, remarks or custom fields), with a suggested mapping.
//! Nothing is stored. The page sends the start of the file (cut at a line end), not all of it.

use std::collections::{BTreeMap, HashSet};

use axum::body::Body as RawBody;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};

use super::csv::{self, Preview};
use super::{
    custom_fields, delimiter_doc, delimiter_param, encoding_name, header_doc, header_param, CustomField, IMPORTERS,
};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Params};
use crate::resource::{visible, Ctx};
use crate::resources;
use crate::{AppState, Op, Registry};

/// Bytes of a file a preview reads.
pub const PREVIEW_MAX_BYTES: usize = 1 << 20;
/// Data rows a preview shows.
const PREVIEW_ROWS: usize = 10;

pub(super) fn mount(reg: &mut Registry) {
    let o = Op {
        method: "post",
        path: "/lists/{id}/imports/preview".into(),
        summary:
            "The first rows of a lead CSV as an import reads them, with a suggested column mapping (nothing is stored)"
                .into(),
        tag: "lists",
        roles: Some(IMPORTERS.to_vec()),
        request: Some(("text/csv", json!({"type": "string", "maxLength": PREVIEW_MAX_BYTES}))),
        response: (
            200,
            "application/json",
            json!({"type": "object", "required": ["encoding", "columns", "rows", "suggested", "custom_fields"], "properties": {
                "encoding": {"type": "string", "enum": ["utf-8", "utf-8-bom", "shift_jis"]},
                "columns": {"type": "array", "items": {"type": "string"}, "description": "The header, or 列1, 列2, ... without one."},
                "rows": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
                "suggested": {"type": "object", "additionalProperties": {"type": "string"}, "description": "column -> name, kana, tel, remarks or a custom field key."},
                "custom_fields": {"type": "array", "items": {"type": "object"}}}}),
        ),
        errors: vec![400, 401, 403, 404, 413, 422],
        query: vec![delimiter_doc(), header_doc()],
    };
    reg.add(o, post(preview_import));
}

/// Reads a request body up to `max` bytes; more is a 413 naming the body.
pub async fn read_limited(body: RawBody, max: usize) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("body", "the upload was interrupted"))?;
        if out.len() + chunk.len() > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body: at most {} KiB", max >> 10),
            )
            .with_field("body"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn preview_import(
    State(st): State<AppState>,
    auth: Auth,
    Id(list_id): Id,
    params: Params,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx { st, auth };
    ctx.auth.require(IMPORTERS)?;
    visible(&ctx, &resources::LISTS, list_id).await?;
    let (mut delimiter, mut has_header) = (b',', true);
    for (k, v) in &params.0 {
        match k.as_str() {
            "delimiter" => delimiter = delimiter_param(v)?,
            "header" => has_header = header_param(v)?,
            other => return Err(ApiError::bad_request(other, format!("{other}: unknown parameter"))),
        }
    }
    let bytes = read_limited(body, PREVIEW_MAX_BYTES).await?;
    let p = csv::preview(&bytes[..], delimiter, has_header, PREVIEW_ROWS)
        .map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let fields = custom_fields(&ctx).await?;
    let suggested = suggest(&p, has_header, &fields);
    let custom: Vec<Value> = fields.iter().map(|f| json!({"key": f.key, "label": f.label, "kind": f.kind})).collect();
    Ok(Json(json!({
        "encoding": encoding_name(p.encoding),
        "columns": p.columns,
        "rows": p.rows,
        "suggested": suggested,
        "custom_fields": custom,
    })))
}

/// The lead field a header names, in the words floors use.
fn standard_target(header: &str) -> Option<&'static str> {
    let h = header.trim().to_lowercase();
    let is = |names: &[&str]| names.contains(&h.as_str());
    if is(&["name", "氏名", "名前", "お名前", "名称", "顧客名", "会社名"]) {
        Some("name")
    } else if is(&["kana", "カナ", "かな", "フリガナ", "ふりがな", "氏名カナ", "名前カナ"]) {
        Some("kana")
    } else if is(&["tel", "電話番号", "電話", "phone", "tel1", "電話番号1"]) {
        Some("tel")
    } else if is(&["remarks", "備考", "メモ", "note", "notes"]) {
        Some("remarks")
    } else {
        None
    }
}

/// A mapping to start from: columns named like a lead field or a custom field (key or label); and
/// when no column is named tel, the first column whose previewed values are mostly phone numbers.
pub fn suggest(p: &Preview, has_header: bool, fields: &[CustomField]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut used = HashSet::new();
    if has_header {
        for col in &p.columns {
            let named = standard_target(col).map(str::to_string).or_else(|| {
                let c = col.trim();
                fields.iter().find(|f| f.key == c || f.label == c).map(|f| f.key.clone())
            });
            if let Some(t) = named {
                if used.insert(t.clone()) {
                    out.insert(col.clone(), t);
                }
            }
        }
    }
    if !used.contains("tel") {
        let looks_like_tel = |i: usize| {
            let values: Vec<&str> =
                p.rows.iter().filter_map(|r| r.get(i)).map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
            let tels = values.iter().filter(|v| csv::validate::tel("tel", v).is_ok()).count();
            !values.is_empty() && tels * 2 > values.len()
        };
        if let Some((_, col)) =
            p.columns.iter().enumerate().find(|(i, col)| !out.contains_key(*col) && looks_like_tel(*i))
        {
            out.insert(col.clone(), "tel".to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::csv::Encoding;

    fn p(columns: &[&str], rows: &[&[&str]]) -> Preview {
        Preview {
            encoding: Encoding::Utf8,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect(),
        }
    }

    #[test]
    fn suggests_from_names_then_from_values() {
        let company =
            CustomField { key: "company".into(), label: "会社".into(), kind: "text".into(), options: vec![] };
        let got = suggest(&p(&["氏名", "フリガナ", "電話番号", "会社", "x"], &[]), true, &[company]);
        let want: BTreeMap<String, String> =
            [("氏名", "name"), ("フリガナ", "kana"), ("電話番号", "tel"), ("会社", "company")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        assert_eq!(got, want);
        // No header: the column of phone numbers.
        let got = suggest(&p(&["列1", "列2"], &[&["山田", "03-1111-2222"], &["鈴木", "0311112223"]]), false, &[]);
        assert_eq!(got.get("列2").map(String::as_str), Some("tel"));
        assert_eq!(got.len(), 1);
    }
}
