//! CSV lead import as a job: the upload is spooled to a temporary file as it arrives (never held
//! in memory), then a background task streams it through [`csv`], stages the good rows in short
//! transactions and moves them into the list in ONE transaction that checks the batch's duplicate
//! rule and the list's cap as committed then: an upload is imported whole or not at all, parallel
//! uploads into one list or batch keep both rules exactly, and a refused row is named. Progress is visible at
//! `GET /imports/{id}`; rejected rows come back as an error CSV in the upload's own encoding.

pub mod csv;
mod live;
pub mod preview;

use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::sync::{Arc, Mutex};

use axum::body::Body as RawBody;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};
use store::accounts::Role;
use store::imports::Published;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Params};
use crate::openapi::schema_ref;
use crate::resource::{visible, Ctx};
use crate::resources::{self, MAX_LEADS_PER_LIST};
use crate::{AppState, Op, Registry};

use self::csv::{Encoding, FieldKind, FieldMapping, FileError, Format, GenericMapping, LeadRow, Options, RowError};

pub const IMPORTERS: &[Role] = &[Role::Mgr, Role::Sv, Role::By];
/// Largest upload accepted. The hosted systems stop at 5 MB; a floor's 50,000 rows with long
/// remarks pass that, and the upload streams, so the limit here is set by disk, not memory.
pub const UPLOAD_MAX_BYTES: u64 = 64 << 20;
/// How often a running import proves it is alive, and after how long without proof it counts as
/// interrupted (its process died: its transaction never committed, so nothing was imported).
const HEARTBEAT_MS: u64 = 2_000;
const STALE_MS: i64 = 60_000;
/// Rows staged per write transaction: on SQLite each holds the write gate for tens of milliseconds
/// (bench/RESULTS.md, "Imports beside other tenants' writes").
const STAGE_TX_ROWS: usize = 2_000;

/// Live progress of the imports running in this process (the database row holds the final
/// figures). Each is a watch channel: `GET /imports/{id}/stream` follows it, and sees it close when
/// the job's final row is written.
#[derive(Clone, Default)]
pub struct Imports(Arc<Mutex<HashMap<i64, watch::Sender<Progress>>>>);

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Progress {
    pub bytes_read: u64,
    pub rows_read: u64,
}

impl Imports {
    fn set(&self, id: i64, p: Progress) {
        // Invariant: the lock is only held for a map operation; poisoning would need a panic there.
        if let Ok(mut m) = self.0.lock() {
            match m.get(&id) {
                Some(tx) => {
                    tx.send_replace(p);
                }
                None => {
                    m.insert(id, watch::channel(p).0);
                }
            }
        }
    }
    fn get(&self, id: i64) -> Option<Progress> {
        self.0.lock().ok().and_then(|m| m.get(&id).map(|tx| *tx.borrow()))
    }
    fn subscribe(&self, id: i64) -> Option<watch::Receiver<Progress>> {
        self.0.lock().ok().and_then(|m| m.get(&id).map(watch::Sender::subscribe))
    }
    fn remove(&self, id: i64) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&id);
        }
    }
}

pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![(
        "ImportJob",
        json!({"type": "object", "required": ["id", "list_id", "kind", "status", "rows_read", "imported_rows", "rejected_rows"], "properties": {
            "id": {"type": "integer"}, "list_id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["standard", "generic"]},
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "encoding": {"type": ["string", "null"], "enum": ["utf-8", "utf-8-bom", "shift_jis", null]},
            "bytes_total": {"type": "integer"}, "bytes_read": {"type": "integer"}, "rows_read": {"type": "integer"},
            "imported_rows": {"type": "integer"}, "rejected_rows": {"type": "integer"},
            "error_code": {"type": ["string", "null"]}, "error_message": {"type": ["string", "null"]},
            "errors_csv": {"type": ["string", "null"], "description": "Path of the error CSV when rows were rejected."},
            "created_at": {"type": "string", "format": "date-time"}, "finished_at": {"type": ["string", "null"], "format": "date-time"}}}),
    )]
}

pub fn mount(reg: &mut Registry) {
    let mut o = Op {
        method: "post",
        path: "/lists/{id}/imports".into(),
        summary:
            "Import leads from CSV (name,kana,tel,remarks, or generic with a mapping); answers 202 with the import job"
                .into(),
        tag: "lists",
        roles: Some(IMPORTERS.to_vec()),
        request: Some((
            "text/csv",
            json!({"type": "string", "examples": ["name,kana,tel,remarks\nSample,サンプル,0312345678,\n"]}),
        )),
        response: (202, "application/json", schema_ref("ImportJob")),
        errors: vec![400, 401, 403, 404, 413, 422],
        query: vec![],
    };
    o.query.push((
        "kind".into(),
        json!({"type": "string", "enum": ["standard", "generic"], "default": "standard"}),
        "standard: name,kana,tel,remarks; generic: columns mapped onto custom fields.".into(),
    ));
    o.query.push(("mapping".into(), json!({"type": "string"}), "generic only: JSON object from CSV header to target: name, kana, tel, remarks or a custom field key; exactly one column maps to tel.".into()));
    o.query.push(("tags".into(), json!({"type": "string"}), "JSON array of tags added to every imported lead.".into()));
    o.query.push(delimiter_doc());
    o.query.push(header_doc());
    reg.add(o, post(start_import));
    preview::mount(reg);
    live::mount(reg);
    let o = Op {
        method: "get",
        path: "/imports/{id}".into(),
        summary: "An import job's status and progress".into(),
        tag: "lists",
        roles: Some(IMPORTERS.to_vec()),
        request: None,
        response: (200, "application/json", schema_ref("ImportJob")),
        errors: vec![401, 403, 404],
        query: vec![],
    };
    reg.add(o, get(import_status));
    let o = Op {
        method: "get",
        path: "/imports/{id}/errors.csv".into(),
        summary: "The rejected rows with their reasons, in the upload's encoding".into(),
        tag: "lists",
        roles: Some(IMPORTERS.to_vec()),
        request: None,
        response: (200, "text/csv", json!({"type": "string"})),
        errors: vec![401, 403, 404],
        query: vec![],
    };
    reg.add(o, get(import_errors));
}

/// What the upload asks for, checked before anything is stored.
struct Request {
    list_id: i64,
    batch_id: i64,
    allow_duplicates: bool,
    mapping: Option<GenericMapping>,
    tags: Vec<String>,
    delimiter: u8,
    has_header: bool,
}

fn delimiter_doc() -> (String, Value, String) {
    (
        "delimiter".into(),
        json!({"type": "string", "enum": ["comma", "tab", "semicolon"], "default": "comma"}),
        "区切り文字: the field separator.".into(),
    )
}

fn header_doc() -> (String, Value, String) {
    (
        "header".into(),
        json!({"type": "boolean", "default": true}),
        "最初の行: true when the first row names the columns; false: every row is data and the columns are 列1, 列2, ... (kind=generic).".into(),
    )
}

/// `delimiter`: `,` (default), `tab` or `;`.
fn delimiter_param(v: &str) -> ApiResult<u8> {
    match v {
        "," | "comma" => Ok(b','),
        "tab" | "\t" => Ok(b'\t'),
        ";" | "semicolon" => Ok(b';'),
        _ => Err(ApiError::bad_request("delimiter", "delimiter: comma, tab or semicolon")),
    }
}

/// `header`: `true` (default: the first row names the columns) or `false` (列1, 列2, ...).
fn header_param(v: &str) -> ApiResult<bool> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request("header", "header: true or false")),
    }
}

pub use store::leads::CustomField;

/// Builds a generic mapping from `{csv header: target}` where a target is name, kana, tel, remarks
/// or a custom field key; exactly one column maps to tel (the dialled number).
pub fn generic_mapping(m: &HashMap<String, String>, fields: &[CustomField]) -> Result<GenericMapping, String> {
    let mut g = GenericMapping::default();
    let mut tel = Vec::new();
    let mut columns: Vec<&String> = m.keys().collect();
    columns.sort();
    for column in columns {
        let target = &m[column];
        let slot = match target.as_str() {
            "tel" => {
                tel.push(column.clone());
                continue;
            }
            "name" => &mut g.name_column,
            "kana" => &mut g.kana_column,
            "remarks" => &mut g.remarks_column,
            key => {
                let f = fields.iter().find(|f| f.key == key).ok_or_else(|| format!("{key} is not a custom field"))?;
                let options = f.options.clone();
                let kind = match f.kind.as_str() {
                    "text" => FieldKind::Text,
                    "long_text" => FieldKind::LongText,
                    "number" => FieldKind::Number,
                    "date" => FieldKind::Date,
                    "phone" => FieldKind::Phone,
                    "email" => FieldKind::Email,
                    "select" => FieldKind::Select { options },
                    "radio" => FieldKind::Radio { options },
                    "checkbox" => FieldKind::Checkbox { options },
                    _ => FieldKind::PostalCode,
                };
                g.fields.push(FieldMapping {
                    column: column.clone(),
                    key: f.key.clone(),
                    label: f.label.clone(),
                    kind,
                    required: false,
                });
                continue;
            }
        };
        if slot.is_some() {
            return Err(format!("{target} is mapped twice"));
        }
        *slot = Some(column.clone());
    }
    match tel.as_slice() {
        [one] => g.tel_column = one.clone(),
        _ => return Err("exactly one column must map to tel".into()),
    }
    Ok(g)
}

async fn parse_request(ctx: &Ctx, list_id: i64, params: &Params) -> ApiResult<Request> {
    let mut kind = "standard";
    let (mut mapping_raw, mut tags) = (None, Vec::new());
    let (mut delimiter, mut has_header) = (b',', true);
    for (k, v) in &params.0 {
        match k.as_str() {
            "delimiter" => delimiter = delimiter_param(v)?,
            "header" => has_header = header_param(v)?,
            "kind" if v == "standard" || v == "generic" => kind = if v == "generic" { "generic" } else { "standard" },
            "kind" => return Err(ApiError::bad_request("kind", "kind: standard or generic")),
            "mapping" => mapping_raw = Some(v.clone()),
            "tags" => {
                tags = serde_json::from_str::<Vec<String>>(v)
                    .ok()
                    .filter(|t| {
                        t.len() <= 50 && t.iter().all(|s| !s.is_empty() && s.chars().count() <= 64 && !s.contains('\0'))
                    })
                    .ok_or_else(|| {
                        ApiError::bad_request("tags", "tags: a JSON array of at most 50 strings of 1 to 64 characters")
                    })?
            }
            other => return Err(ApiError::bad_request(other, format!("{other}: unknown parameter"))),
        }
    }
    let mapping = match (kind, mapping_raw) {
        ("generic", Some(raw)) => {
            let m: HashMap<String, String> = serde_json::from_str(&raw)
                .map_err(|_| ApiError::bad_request("mapping", "mapping: a JSON object from CSV header to target"))?;
            let fields = custom_fields(ctx).await?;
            Some(generic_mapping(&m, &fields).map_err(|msg| ApiError::invalid("mapping", format!("mapping: {msg}")))?)
        }
        ("generic", None) => return Err(ApiError::invalid("mapping", "mapping: required for a generic import")),
        (_, Some(_)) => return Err(ApiError::bad_request("mapping", "mapping: only for kind=generic")),
        _ => None,
    };
    if mapping.is_none() && !has_header {
        return Err(ApiError::bad_request(
            "header",
            "header: a file without a header row needs kind=generic and a mapping",
        ));
    }
    let list = store::batches::of_list(&ctx.st.db, ctx.tenant(), list_id).await?.ok_or_else(ApiError::not_found)?;
    Ok(Request {
        list_id,
        batch_id: list.batch_id,
        allow_duplicates: list.allow_duplicates,
        mapping,
        tags,
        delimiter,
        has_header,
    })
}

async fn custom_fields(ctx: &Ctx) -> ApiResult<Vec<CustomField>> {
    Ok(store::leads::custom_fields(&ctx.st.db, ctx.tenant()).await?)
}

async fn start_import(
    State(st): State<AppState>,
    auth: Auth,
    Id(list_id): Id,
    params: Params,
    headers: axum::http::HeaderMap,
    body: RawBody,
) -> ApiResult<Response> {
    let ctx = Ctx { st, auth };
    ctx.auth.require(IMPORTERS)?;
    // An upload declaring more than the limit is refused before a byte of it is read.
    crate::extract::refuse_declared_length(&headers, UPLOAD_MAX_BYTES)?;
    visible(&ctx, &resources::LISTS, list_id).await?;
    let req = parse_request(&ctx, list_id, &params).await?;

    // Spool the body to disk as it arrives.
    let file = tempfile::NamedTempFile::new().map_err(|e| io_error(&e))?;
    let (std_file, path) = file.into_parts();
    let mut out = tokio::fs::File::from_std(std_file);
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("body", "the upload was interrupted"))?;
        total += chunk.len() as u64;
        if total > UPLOAD_MAX_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("an upload is at most {} MiB", UPLOAD_MAX_BYTES >> 20),
            )
            .with_field("body"));
        }
        out.write_all(&chunk).await.map_err(|e| io_error(&e))?;
    }
    out.flush().await.map_err(|e| io_error(&e))?;
    drop(out);

    let now = store::now_ms();
    let kind = if req.mapping.is_some() { "generic" } else { "standard" };
    let new = store::imports::NewImport {
        tenant_id: ctx.tenant(),
        list_id,
        user_id: ctx.auth.user(),
        kind,
        bytes_total: total as i64,
    };
    let id = store::imports::create(&ctx.st.db, &new, now).await?;
    let st = ctx.st.clone();
    let tenant = ctx.tenant();
    st.imports.set(id, Progress::default());
    tokio::spawn(async move {
        let beat = tokio::spawn(heartbeat(st.db.clone(), tenant, id));
        // The temporary file is removed when `path` drops at the end of the job.
        run_import(&st, tenant, id, &path, req).await;
        beat.abort();
    });
    let status = import_json(&ctx, id).await?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, format!("/imports/{id}"))], Json(status)).into_response())
}

async fn heartbeat(db: store::Db, tenant: i64, id: i64) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(HEARTBEAT_MS));
    loop {
        tick.tick().await;
        // Best effort: on SQLite the import's own transaction may hold the write lock for a moment.
        let _ = store::imports::heartbeat(&db, tenant, id, store::now_ms()).await;
    }
}

fn io_error(e: &std::io::Error) -> ApiError {
    tracing::error!(error = %e, "import spool");
    ApiError::internal()
}

/// The outcome of the parse-and-write pass.
struct Outcome {
    encoding: Option<Encoding>,
    imported: u64,
    rejected: Vec<RowError>,
    header: Vec<String>,
    fatal: Option<(&'static str, String)>,
}

async fn run_import(st: &AppState, tenant: i64, id: i64, path: &tempfile::TempPath, req: Request) {
    let _ = store::imports::mark_running(&st.db, tenant, id).await;
    let outcome = match import_file(st, tenant, id, path, &req).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, import = id, "import failed");
            Outcome {
                encoding: None,
                imported: 0,
                rejected: vec![],
                header: vec![],
                fatal: Some(("internal", "the import failed; nothing was imported".into())),
            }
        }
    };
    let progress = st.imports.get(id).unwrap_or_default();
    let errors_csv = (!outcome.rejected.is_empty())
        .then(|| csv::error_csv(outcome.encoding.unwrap_or(Encoding::Utf8), &outcome.header, &outcome.rejected));
    let (code, message) = outcome.fatal.map(|(c, m)| (Some(c), Some(m))).unwrap_or((None, None));
    let status = if code.is_some() { "failed" } else { "done" };
    let imported = if code.is_some() { 0 } else { outcome.imported as i64 };
    let finished = store::imports::Finished {
        status,
        encoding: outcome.encoding.map(encoding_name),
        bytes_read: progress.bytes_read as i64,
        rows_read: progress.rows_read as i64,
        imported_rows: imported,
        rejected_rows: outcome.rejected.len() as i64,
        error_code: code,
        error_message: message,
        error_csv: errors_csv,
    };
    let res = store::imports::finish(&st.db, tenant, id, finished, store::now_ms()).await;
    if let Err(e) = res {
        tracing::error!(error = %e, import = id, "could not record the import's outcome");
    }
    // After the final row: a stream that sees the channel close reads the outcome.
    st.imports.remove(id);
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Utf8 => "utf-8",
        Encoding::Utf8Bom => "utf-8-bom",
        Encoding::Cp932 => "shift_jis",
    }
}

/// Streams the spooled file through the reader and stages the good rows in short transactions
/// (`import_staged_leads`, `STAGE_TX_ROWS` a transaction), then [`publish`]es them: the upload is
/// imported whole or not at all, and on SQLite the write gate is never held for the whole file.
async fn import_file(
    st: &AppState,
    tenant: i64,
    id: i64,
    path: &std::path::Path,
    req: &Request,
) -> Result<Outcome, store::StoreError> {
    let mut outcome = Outcome { encoding: None, imported: 0, rejected: vec![], header: vec![], fatal: None };
    // An early look at the batch's numbers refuses most duplicates as the file is read; the
    // publication checks again against what is committed then.
    let mut in_batch: HashSet<String> = HashSet::new();
    if !req.allow_duplicates {
        in_batch.extend(store::imports::batch_tels(&st.db, tenant, req.batch_id).await?);
    }
    let opts = read_options(req);
    let file = std::fs::File::open(path).map_err(|e| store::StoreError::Config(e.to_string()))?;
    let mut reader = match csv::LeadReader::new(BufReader::new(file), opts, |tel: &str| in_batch.contains(tel)) {
        Ok(r) => r,
        Err(e) => {
            outcome.fatal = Some(fatal_of(&e));
            return Ok(outcome);
        }
    };
    outcome.encoding = Some(reader.encoding());
    outcome.header = reader.header().to_vec();
    let started = std::time::Instant::now();
    let mut stage_time = std::time::Duration::ZERO;
    let mut pending: Vec<LeadRow> = Vec::with_capacity(STAGE_TX_ROWS);
    let mut staged = 0u64;
    let mut last_report = 0u64;
    while let Some(item) = reader.next() {
        match item {
            Ok(Ok(row)) => {
                pending.push(row);
                if pending.len() == STAGE_TX_ROWS {
                    let t = std::time::Instant::now();
                    staged += stage(&st.db, tenant, id, &mut pending).await?;
                    stage_time += t.elapsed();
                }
            }
            Ok(Err(rejected)) => outcome.rejected.push(rejected),
            Err(e) => {
                // Fatal midway (too many rows, undecodable bytes): nothing of this upload stays.
                outcome.fatal = Some(fatal_of(&e));
                outcome.encoding = Some(reader.encoding());
                store::imports::discard_staged(&st.db, tenant, id).await?;
                return Ok(outcome);
            }
        }
        let p = reader.progress();
        if p.rows_read >= last_report + 1000 {
            last_report = p.rows_read;
            st.imports.set(id, Progress { bytes_read: p.bytes_read, rows_read: p.rows_read });
        }
    }
    let p = reader.progress();
    st.imports.set(id, Progress { bytes_read: p.bytes_read, rows_read: p.rows_read });
    drop(reader);
    staged += stage(&st.db, tenant, id, &mut pending).await?;
    let t = std::time::Instant::now();
    let to =
        store::imports::Target { list_id: req.list_id, batch_id: req.batch_id, max_leads_per_list: MAX_LEADS_PER_LIST };
    let published = store::imports::publish(&st.db, tenant, id, to, staged, store::now_ms()).await;
    let publish_ms = t.elapsed().as_millis() as u64;
    store::imports::discard_staged(&st.db, tenant, id).await?;
    match published? {
        Published::Done { imported, refused } => {
            outcome.imported = imported;
            if !refused.is_empty() {
                outcome.rejected.extend(refused_rows(path, req, &refused)?);
                outcome.rejected.sort_by_key(|e| e.row);
            }
        }
        Published::ListGone => {
            outcome.fatal =
                Some(("list_gone", "リストが削除されました (the list was deleted; nothing was imported)".into()))
        }
        Published::ListFull { existing } => {
            outcome.fatal = Some((
                "list_full",
                format!("1つのリストは{MAX_LEADS_PER_LIST}件までです (a list holds at most {MAX_LEADS_PER_LIST} leads; it has {existing})"),
            ))
        }
    }
    tracing::info!(
        import = id,
        rows = p.rows_read,
        total_ms = started.elapsed().as_millis() as u64,
        stage_ms = stage_time.as_millis() as u64,
        publish_ms,
        "import ended"
    );
    Ok(outcome)
}

fn read_options(req: &Request) -> Options {
    Options {
        format: req.mapping.clone().map(Format::Generic).unwrap_or(Format::Standard),
        max_bytes: Some(UPLOAD_MAX_BYTES),
        allow_duplicate_tels: req.allow_duplicates,
        tags: req.tags.clone(),
        delimiter: req.delimiter,
        has_header: req.has_header,
        ..Options::default()
    }
}

/// The refused rows as the file has them, for the error CSV: the file is read again, each
/// refused number counting as already in the batch.
fn refused_rows(
    path: &std::path::Path,
    req: &Request,
    refused: &[(u64, String)],
) -> Result<Vec<RowError>, store::StoreError> {
    let rows: HashSet<u64> = refused.iter().map(|(r, _)| *r).collect();
    let tels: HashSet<&str> = refused.iter().map(|(_, t)| t.as_str()).collect();
    let file = std::fs::File::open(path).map_err(|e| store::StoreError::Config(e.to_string()))?;
    let reader = csv::LeadReader::new(BufReader::new(file), read_options(req), |tel: &str| tels.contains(tel))
        .map_err(|e| store::StoreError::Config(e.to_string()))?;
    let mut out = Vec::with_capacity(rows.len());
    for item in reader {
        if let Ok(Err(mut e)) = item {
            if rows.contains(&e.row) {
                e.message = csv::MSG_DUPLICATE.to_string();
                out.push(e);
            }
        }
    }
    Ok(out)
}

fn fatal_of(e: &FileError) -> (&'static str, String) {
    let code = match e {
        FileError::Empty => "empty",
        FileError::HeaderOnly => "header_only",
        FileError::MissingColumn(_) | FileError::UnknownColumn(_) | FileError::DuplicateColumn(_) => "bad_header",
        FileError::BadMapping(_) => "bad_mapping",
        FileError::TooManyRows { .. } => "too_many_rows",
        FileError::TooLarge { .. } => "too_large",
        FileError::Undecodable { .. } => "undecodable",
        FileError::Io(_) => "unreadable",
    };
    (code, e.to_string())
}

/// Stages `rows` in one short write transaction (`store::imports::stage`), and empties `rows`.
async fn stage(db: &store::Db, tenant: i64, id: i64, rows: &mut Vec<LeadRow>) -> Result<u64, store::StoreError> {
    let json: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            let custom = serde_json::Value::Object(r.custom.clone()).to_string();
            (custom, serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".into()))
        })
        .collect();
    let staged: Vec<store::imports::StagedLead<'_>> = rows
        .iter()
        .zip(&json)
        .map(|(r, (custom, tags))| store::imports::StagedLead {
            row: r.row,
            name: &r.name,
            kana: &r.kana,
            tel: &r.tel,
            remarks: r.remarks.as_deref(),
            custom,
            tags,
        })
        .collect();
    let n = store::imports::stage(db, tenant, id, &staged).await?;
    drop(staged);
    rows.clear();
    Ok(n)
}

async fn read_job(ctx: &Ctx, id: i64) -> ApiResult<store::imports::ImportJob> {
    store::imports::job(&ctx.st.db, ctx.tenant(), id).await?.ok_or_else(ApiError::not_found)
}

async fn import_json(ctx: &Ctx, id: i64) -> ApiResult<Value> {
    let mut r = read_job(ctx, id).await?;
    let list_id = r.list_id;
    visible(ctx, &resources::LISTS, list_id).await?;
    // An unfinished job that no live process is running was interrupted: say so once, durably.
    // (Only then does this read write: on SQLite a running import holds the write lock.)
    let now = store::now_ms();
    let unfinished = matches!(r.status.as_str(), "queued" | "running");
    if unfinished && r.heartbeat_at < now - STALE_MS && ctx.st.imports.get(id).is_none() {
        store::imports::mark_interrupted(&ctx.st.db, ctx.tenant(), id, now).await?;
        // What the dead process staged goes too (in the background: up to 50,000 rows).
        let (db, tenant) = (ctx.st.db.clone(), ctx.tenant());
        tokio::spawn(async move {
            if let Err(e) = store::imports::discard_staged(&db, tenant, id).await {
                tracing::warn!(error = %e, import = id, "could not discard an interrupted import's rows");
            }
        });
        r = read_job(ctx, id).await?;
    }
    let live = ctx.st.imports.get(id);
    let tz = ctx.auth.tz();
    let rejected = r.rejected_rows;
    Ok(json!({
        "id": id,
        "list_id": list_id,
        "kind": r.kind,
        "status": r.status,
        "encoding": r.encoding,
        "bytes_total": r.bytes_total,
        "bytes_read": live.map(|p| p.bytes_read as i64).unwrap_or(r.bytes_read),
        "rows_read": live.map(|p| p.rows_read as i64).unwrap_or(r.rows_read),
        "imported_rows": r.imported_rows,
        "rejected_rows": rejected,
        "error_code": r.error_code,
        "error_message": r.error_message,
        "errors_csv": (rejected > 0).then(|| format!("/imports/{id}/errors.csv")),
        "created_at": store::tenancy::local_rfc3339(tz, r.created_at),
        "finished_at": r.finished_at.map(|ms| store::tenancy::local_rfc3339(tz, ms)),
    }))
}

async fn import_status(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    let ctx = Ctx { st, auth };
    ctx.auth.require(IMPORTERS)?;
    import_json(&ctx, id).await.map(Json)
}

async fn import_errors(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Response> {
    let ctx = Ctx { st, auth };
    ctx.auth.require(IMPORTERS)?;
    import_json(&ctx, id).await?;
    let (encoding, bytes) = store::imports::error_csv(&ctx.st.db, ctx.tenant(), id).await?;
    let bytes = bytes.ok_or_else(ApiError::not_found)?;
    let charset = match encoding.as_deref() {
        Some("shift_jis") => "Shift_JIS",
        _ => "UTF-8",
    };
    Ok((
        [
            (header::CONTENT_TYPE, format!("text/csv; charset={charset}")),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"import-{id}-errors.csv\"")),
        ],
        bytes,
    )
        .into_response())
}
