//! The common phone book (共通電話帳): its CSV import and the name lookup the other screens use.
//!
//! The import reads the file with the lead import's reader (`import::csv`: UTF-8 or CP932, CRLF or
//! LF, quoted fields, `\n` in remarks, the same per-field rules and error texts), header
//! `name,tel[,remarks]` in any order. A bad row is reported with its line and the others are
//! imported; a bad file (no data, a missing or unknown column, too large, undecodable) imports
//! nothing. A number already in the phone book gets the file's name and remarks.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::import::csv::{self as leadcsv, FileError, Format, GenericMapping, LeadReader, Options};
use crate::resource::Ctx;
use crate::resources::PHONE_BOOK;
use crate::{AppState, Op, Registry};

/// Rows of one upload (the lead import's limit).
pub const MAX_ROWS: u64 = leadcsv::MAX_ROWS_PER_UPLOAD;
/// A number twice in one file (the lead reader's text names a batch, which a phone book has not).
pub const MSG_DUPLICATE_IN_FILE: &str = "ファイル内に同一の電話番号が既にあります";
const COLUMNS: [&str; 3] = ["name", "tel", "remarks"];

pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![(
        "PhoneBookUploadReply",
        json!({"type": "object", "required": ["added", "updated", "errors"], "properties": {
            "added": {"type": "integer", "description": "New numbers."},
            "updated": {"type": "integer", "description": "Numbers already in the phone book, given the file's name and remarks."},
            "errors": {"type": "array", "items": {"type": "object", "required": ["row", "message"], "properties": {
                "row": {"type": "integer", "description": "Line of the file (header = 1)."},
                "message": {"type": "string"}}}}}}),
    )]
}

pub fn mount(reg: &mut Registry) {
    let op = Op {
        method: "post",
        path: "/phone-book/upload".into(),
        summary: "Import names for numbers from a CSV (header name,tel[,remarks]; UTF-8 or Shift_JIS (CP932)); a bad row is reported, the others imported".into(),
        tag: PHONE_BOOK.tag,
        roles: Some(PHONE_BOOK.write.to_vec()),
        request: Some(("text/csv", json!({"type": "string", "examples": ["name,tel,remarks\nSample,0312345678,\n"]}))),
        response: (200, "application/json", crate::openapi::schema_ref("PhoneBookUploadReply")),
        errors: vec![401, 403, 413, 422],
        query: vec![],
    };
    reg.add(
        op,
        post(|State(st): State<AppState>, auth: Auth, body: Bytes| async move {
            upload(&Ctx { st, auth }, body).await.map(Json)
        }),
    );
}

fn file_error(e: FileError) -> ApiError {
    let status = match e {
        FileError::TooLarge { .. } | FileError::TooManyRows { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, "bad_file", e.to_string()).with_field("body")
}

/// An accepted row of the phone book's CSV.
pub use store::phone_book::Entry;

/// A row the import refused: its line (header = 1) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub row: u64,
    pub message: String,
}

/// Reads a phone-book CSV (pure: no database). `Err` refuses the whole file.
pub fn read(body: &[u8]) -> Result<(Vec<Entry>, Vec<RowProblem>), FileError> {
    let head = leadcsv::preview(body, b',', true, 1)?;
    let names: Vec<String> = head.columns.iter().map(|c| c.trim().to_ascii_lowercase()).collect();
    if let Some(unknown) = head.columns.iter().find(|c| !COLUMNS.contains(&c.trim().to_ascii_lowercase().as_str())) {
        return Err(FileError::UnknownColumn(unknown.trim().to_string()));
    }
    let missing: Vec<&str> = ["name", "tel"].into_iter().filter(|c| !names.iter().any(|n| n == c)).collect();
    if !missing.is_empty() {
        return Err(FileError::MissingColumn(missing.join(",")));
    }
    // The mapping names the header's own spelling (the reader matches it exactly).
    let column = |c: &str| head.columns.iter().find(|h| h.trim().eq_ignore_ascii_case(c)).map(|h| h.trim().to_string());
    let mapping = GenericMapping {
        tel_column: column("tel").unwrap_or_default(),
        name_column: column("name"),
        kana_column: None,
        remarks_column: column("remarks"),
        fields: vec![],
    };
    let opts =
        Options { format: Format::Generic(mapping), max_rows: MAX_ROWS, normalise_tel: true, ..Options::default() };
    let reader = LeadReader::without_batch(body, opts)?;
    let (mut entries, mut problems) = (Vec::new(), Vec::new());
    for item in reader {
        match item? {
            Ok(row) => entries.push(Entry { number: row.tel, name: row.name, remarks: row.remarks }),
            Err(e) => problems.push(RowProblem {
                row: e.row,
                message: e.message.replace(leadcsv::MSG_DUPLICATE, MSG_DUPLICATE_IN_FILE),
            }),
        }
    }
    Ok((entries, problems))
}

async fn upload(ctx: &Ctx, body: Bytes) -> ApiResult<Value> {
    ctx.auth.require(PHONE_BOOK.write)?;
    let (entries, problems) = read(&body).map_err(file_error)?;
    let now = store::now_ms();
    let store::phone_book::Upserted { added, updated } =
        store::phone_book::upsert(&ctx.st.db, ctx.tenant(), &entries, now).await?;
    let errors: Vec<Value> = problems.iter().map(|p| json!({"row": p.row, "message": p.message})).collect();
    Ok(json!({"added": added, "updated": updated, "errors": errors}))
}

/// The phone book's name for `number` in the tenant, if any.
pub async fn name_of(st: &AppState, tenant: i64, number: &str) -> ApiResult<Option<String>> {
    Ok(store::phone_book::name_of(&st.db, tenant, number).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(csv: &str) -> Vec<(u64, String)> {
        read(csv.as_bytes()).expect("file accepted").1.into_iter().map(|p| (p.row, p.message)).collect()
    }

    #[test]
    fn reads_utf8_and_cp932_in_any_column_order() {
        let (e, p) = read("tel,name\r\n03-1234-5678,山田商店\r\n".as_bytes()).unwrap();
        assert!(p.is_empty());
        assert_eq!(e, vec![Entry { number: "0312345678".into(), name: "山田商店".into(), remarks: None }]);
        let (bytes, _, _) =
            encoding_rs::SHIFT_JIS.encode("name,tel,remarks\n株式会社カケル,0120-000-111,\"本社\\n受付\"\n");
        let (e, p) = read(&bytes).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(e[0].name, "株式会社カケル");
        assert_eq!(e[0].number, "0120000111");
        assert_eq!(e[0].remarks.as_deref(), Some("本社\n受付"));
    }

    /// Every error kind of the lead reader, as the phone book reports it.
    #[test]
    fn every_row_error_kind() {
        let long = "あ".repeat(256);
        let csv = format!(
            "name,tel,remarks\n\
             ,0311110001,\n\
             null,0311110002,\n\
             {long},0311110003,\n\
             A,,\n\
             B,NULL,\n\
             C,03-11x1,\n\
             D,{},\n\
             E,3111100,\n\
             F,0311110009,\n\
             G,0311110009,\n\
             H,0311110010,{}\n\
             I,0311110011\n\
             J,0311110012,,extra\n",
            "0".repeat(31),
            "r".repeat(1001),
        );
        assert_eq!(
            problems(&csv),
            vec![
                (2, "name:値がありません".to_string()),
                (3, "name:'null'は利用できない文字です".to_string()),
                (4, "name:1文字から255文字までにしてください".to_string()),
                (5, "tel:値がありません".to_string()),
                (6, "tel:'null'は利用できない文字です".to_string()),
                (7, "tel:書式が正しくありません".to_string()),
                (8, "tel:1文字から30文字までにしてください".to_string()),
                (9, "tel:電話番号の先頭に0を入れてください".to_string()),
                (11, MSG_DUPLICATE_IN_FILE.to_string()),
                (12, "remarks:1文字から1000文字までにしてください".to_string()),
                (13, leadcsv::MSG_FEWER_COLUMNS.to_string()),
                (14, leadcsv::MSG_MORE_COLUMNS.to_string()),
            ]
        );
    }

    #[test]
    fn every_file_error_kind() {
        let err = |b: &[u8]| read(b).unwrap_err();
        assert_eq!(err(b""), FileError::Empty);
        assert_eq!(err(b"name,tel\n"), FileError::HeaderOnly);
        assert_eq!(err(b"name,kana\nA,B\n"), FileError::UnknownColumn("kana".into()));
        assert_eq!(err(b"name,remarks\nA,B\n"), FileError::MissingColumn("tel".into()));
        assert_eq!(err(b"name,tel,TEL\nA,03,03\n"), FileError::DuplicateColumn("TEL".into()));
        let many = format!("name,tel\n{}", "A,0311112222\n".repeat(50_001));
        assert_eq!(err(many.as_bytes()), FileError::TooManyRows { max: MAX_ROWS });
        assert!(matches!(err(b"name,tel\nA,\x82\xa0\xff\xff\n"), FileError::Undecodable { .. }));
        let big = format!("name,tel,remarks\nA,0311112222,{}\n", "x".repeat(6 << 20));
        assert!(matches!(err(big.as_bytes()), FileError::TooLarge { .. }));
        assert_eq!(file_error(FileError::TooLarge { max_bytes: 1 }).status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(file_error(FileError::HeaderOnly).message, "ヘッダーのみでデータがありません");
        assert_eq!(file_error(FileError::HeaderOnly).field.as_deref(), Some("body"));
    }
}
