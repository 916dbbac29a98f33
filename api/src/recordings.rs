//! Call recordings (通話録音, SPEC 8): list, download one, a day's recordings as one zip, and the
//! tenant's storage usage.
//!
//! MGR and SV see every recording of the tenant; an OP sees only recordings of calls they took
//! (the call record's agent). The files are served from the path the row names; the zip is
//! written on a blocking thread into a bounded channel that feeds the response body, so a day
//! of recordings is never held in memory.

use std::io::{self, Read, Write};

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::{Datelike, NaiveDate, Timelike};
use serde_json::{json, Value};
use store::accounts::Role;
use store::recordings::{self as recs, ListFilter, Recording};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Params};
use crate::openapi::schema_ref;
use crate::{AppState, Op, Registry};

/// Who may read recordings (an OP only those of their own calls).
const READ: &[Role] = &[Role::Mgr, Role::Sv, Role::Op];
/// Who may see the tenant's storage usage.
const USAGE: &[Role] = &[Role::Mgr, Role::Sv];
/// Bytes per chunk of a streamed zip, and chunks in flight.
const CHUNK: usize = 64 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

/// Schemas of the bodies used here, for the OpenAPI document.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Recording",
            json!({"type": "object", "required": ["id", "dialer_call_id", "format", "bytes", "duration_ms", "date", "started_at", "closed_at", "audio_url"], "properties": {
                "id": {"type": "integer"},
                "call_record_id": {"type": ["integer", "null"], "description": "The call record (null until the dialer wrote it)."},
                "dialer_call_id": {"type": "integer"},
                "agent_user_id": {"type": ["integer", "null"], "description": "The call's agent."},
                "format": {"type": "string", "enum": ["wav", "opus"], "description": "wav until the Opus pool encoded it (stereo: customer left, agent right)."},
                "bytes": {"type": "integer"},
                "duration_ms": {"type": "integer"},
                "date": {"type": "string", "format": "date", "description": "Local date of the call's start in the tenant's zone."},
                "started_at": {"type": "string", "format": "date-time"},
                "closed_at": {"type": "string", "format": "date-time"},
                "encoded_at": {"type": ["string", "null"], "format": "date-time"},
                "audio_url": {"type": "string"}}}),
        ),
        (
            "RecordingUsage",
            json!({"type": "object", "required": ["bytes", "accounted_bytes", "quota_bytes", "recordings", "pending_encoding"], "properties": {
                "bytes": {"type": "integer", "description": "Bytes of the live recordings' files."},
                "accounted_bytes": {"type": "integer", "description": "What the quota counts (recordings waiting for encoding at their encoded size)."},
                "quota_bytes": {"type": "integer", "description": "Past it the oldest recordings are deleted first."},
                "recordings": {"type": "integer"},
                "pending_encoding": {"type": "integer"},
                "oldest_started_at": {"type": ["string", "null"], "format": "date-time"}}}),
        ),
    ]
}

fn op(path: &str, summary: &str, roles: &[Role], response: (u16, &'static str, Value), errors: Vec<u16>) -> Op {
    Op {
        method: "get",
        path: path.to_string(),
        summary: summary.to_string(),
        tag: "records",
        roles: Some(roles.to_vec()),
        request: None,
        response,
        errors,
        query: vec![],
    }
}

fn date_param(doc: &str) -> Value {
    json!({"type": "string", "format": "date", "description": doc})
}

pub fn mount(reg: &mut Registry) {
    let mut list = op(
        "/recordings",
        "List recordings, newest first (OP: recordings of their own calls)",
        READ,
        (
            200,
            "application/json",
            json!({"type": "object", "required": ["items", "total", "limit", "offset"], "properties": {
                "items": {"type": "array", "items": schema_ref("Recording")},
                "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}}),
        ),
        vec![400, 401, 403],
    );
    list.query = vec![
        ("date_from".into(), date_param("First local date, YYYY-MM-DD."), "From this date (inclusive).".into()),
        ("date_to".into(), date_param("Last local date, YYYY-MM-DD."), "To this date (inclusive).".into()),
        ("call_record_id".into(), json!({"type": "integer", "minimum": 1}), "Only this call's recording.".into()),
        ("agent_user_id".into(), json!({"type": "integer", "minimum": 1}), "Only this agent's calls.".into()),
        ("limit".into(), json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 50}), "Page size.".into()),
        ("offset".into(), json!({"type": "integer", "minimum": 0, "default": 0}), "Records to skip.".into()),
    ];
    reg.add(list, get(list_recordings));

    let mut zip = op(
        "/recordings/zip",
        "A day's recordings as one zip (streamed; OP: their own calls)",
        READ,
        (200, "application/zip", json!({"type": "string", "format": "binary"})),
        vec![400, 401, 403],
    );
    zip.query = vec![(
        "date".into(),
        date_param("Local date, YYYY-MM-DD (default: today in the tenant's zone)."),
        "The day.".into(),
    )];
    reg.add(zip, get(day_zip));

    reg.add(
        op(
            "/recordings/usage",
            "The tenant's recording storage against its quota",
            USAGE,
            (200, "application/json", schema_ref("RecordingUsage")),
            vec![401, 403],
        ),
        get(usage),
    );
    reg.add(
        op(
            "/recordings/{id}",
            "One recording",
            READ,
            (200, "application/json", schema_ref("Recording")),
            vec![401, 403, 404],
        ),
        get(one),
    );
    reg.add(
        op(
            "/recordings/{id}/audio",
            "Download a recording (audio/wav or audio/ogg: customer left channel, agent right)",
            READ,
            (200, "audio/*", json!({"type": "string", "format": "binary"})),
            vec![401, 403, 404, 410],
        ),
        get(audio),
    );
}

/// The agent an OP is limited to (their own calls); `None` for tenant-wide roles.
fn own(auth: &Auth) -> Option<i64> {
    (auth.role() == Role::Op).then(|| auth.user())
}

fn json_of(auth: &Auth, r: &Recording) -> Value {
    let tz = auth.tz();
    let at = |ms: i64| store::tenancy::local_rfc3339(tz, ms);
    json!({
        "id": r.id,
        "call_record_id": r.call_record_id,
        "dialer_call_id": r.dialer_call_id,
        "agent_user_id": r.agent_user_id,
        "format": r.format.as_str(),
        "bytes": r.bytes,
        "duration_ms": r.duration_ms,
        "date": r.local_date,
        "started_at": at(r.started_at),
        "closed_at": at(r.closed_at),
        "encoded_at": r.encoded_at.map(at),
        "audio_url": format!("/recordings/{}/audio", r.id),
    })
}

pub(crate) fn parse_date(field: &str, v: &str) -> ApiResult<String> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| ApiError::bad_request(field, format!("{field}: a date YYYY-MM-DD")))
}

pub(crate) fn parse_int(field: &str, v: &str, min: i64, max: i64) -> ApiResult<i64> {
    v.parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| ApiError::bad_request(field, format!("{field}: an integer from {min} to {max}")))
}

async fn list_recordings(State(st): State<AppState>, auth: Auth, p: Params) -> ApiResult<Json<Value>> {
    auth.require(READ)?;
    let mut f = ListFilter { limit: 50, own_agent: own(&auth), ..Default::default() };
    for (k, v) in &p.0 {
        match k.as_str() {
            "date_from" => f.date_from = Some(parse_date(k, v)?),
            "date_to" => f.date_to = Some(parse_date(k, v)?),
            "call_record_id" => f.call_record_id = Some(parse_int(k, v, 1, i64::MAX)?),
            "agent_user_id" => f.agent_user_id = Some(parse_int(k, v, 1, i64::MAX)?),
            "limit" => f.limit = parse_int(k, v, 1, 500)?,
            "offset" => f.offset = parse_int(k, v, 0, 1_000_000_000)?,
            other => return Err(ApiError::bad_request(other, format!("{other}: not a filter of this list"))),
        }
    }
    let (items, total) = recs::list(&st.db, auth.tenant(), &f).await?;
    let items: Vec<Value> = items.iter().map(|r| json_of(&auth, r)).collect();
    Ok(Json(json!({"items": items, "total": total, "limit": f.limit, "offset": f.offset})))
}

/// The recording if the caller may see it (another tenant's, a deleted one, or for an OP another
/// agent's: 404 alike).
async fn visible(st: &AppState, auth: &Auth, id: i64) -> ApiResult<Recording> {
    let r = recs::get(&st.db, auth.tenant(), id).await?;
    let hidden = r.deleted_at.is_some() || own(auth).is_some_and(|me| r.agent_user_id != Some(me));
    if hidden {
        return Err(ApiError::not_found());
    }
    Ok(r)
}

async fn one(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    auth.require(READ)?;
    let r = visible(&st, &auth, id).await?;
    Ok(Json(json_of(&auth, &r)))
}

/// The audio of a recording the caller may see; one deleted (past the tenant's quota, by the
/// retention, or its file lost) answers 410 with why, never the file or a 5xx.
async fn audio(State(st): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Response> {
    auth.require(READ)?;
    let r = recs::get(&st.db, auth.tenant(), id).await?;
    if own(&auth).is_some_and(|me| r.agent_user_id != Some(me)) {
        return Err(ApiError::not_found());
    }
    serve(&r).await
}

/// 410 saying why, for a recording that was deleted.
fn deleted(r: &Recording) -> ApiError {
    let why = match r.deleted_reason.as_deref() {
        Some("quota") => {
            "録音の保存容量を超えたため、古い順に削除されました (deleted, oldest first, past the tenant's recording quota)"
        }
        Some("missing") => "録音ファイルが見つかりません (the recording's file was lost)",
        _ => "録音は削除されました (the recording was deleted)",
    };
    ApiError::new(StatusCode::GONE, "recording_deleted", why)
}

/// The recording's file as a download (410 when the recording was deleted, 404 when its file is
/// gone).
pub(crate) async fn serve(r: &Recording) -> ApiResult<Response> {
    if r.deleted_at.is_some() {
        return Err(deleted(r));
    }
    let id = r.id;
    let file = match tokio::fs::File::open(&r.path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ApiError::not_found()),
        Err(e) => {
            tracing::error!(id, error = %e, "recording file unreadable");
            return Err(ApiError::internal());
        }
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let name = format!("{}.{}", r.dialer_call_id, r.format.extension());
    let body = HttpBody::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, r.format.content_type().to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

async fn usage(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(USAGE)?;
    let u = recs::usage(&st.db, auth.tenant()).await?;
    let tz = auth.tz();
    Ok(Json(json!({
        "bytes": u.bytes,
        "accounted_bytes": u.accounted_bytes,
        "quota_bytes": u.quota_bytes,
        "recordings": u.recordings,
        "pending_encoding": u.pending_encoding,
        "oldest_started_at": u.oldest_started_at.map(|ms| store::tenancy::local_rfc3339(tz, ms)),
    })))
}

/// A `Write` that sends what it is given, in chunks, into the response body's channel; it fails
/// once the client is gone, which stops the zip.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The name of a recording inside the day's zip: `<date>/<HHMMSS>_<dialer_call_id>.<ext>`.
fn entry_name(tz: chrono_tz::Tz, r: &Recording) -> String {
    let t = chrono::DateTime::from_timestamp_millis(r.started_at).unwrap_or_default().with_timezone(&tz);
    format!(
        "{}/{:02}{:02}{:02}_{}.{}",
        r.local_date,
        t.hour(),
        t.minute(),
        t.second(),
        r.dialer_call_id,
        r.format.extension()
    )
}

fn zip_day(tz: chrono_tz::Tz, rows: Vec<Recording>, out: ChannelWriter) -> zip::result::ZipResult<()> {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new_stream(out);
    let mut buf = vec![0u8; CHUNK];
    for r in rows {
        // A recording deleted (quota) since the listing is left out.
        let Ok(mut file) = std::fs::File::open(&r.path) else { continue };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let t = chrono::DateTime::from_timestamp_millis(r.started_at).unwrap_or_default().with_timezone(&tz);
        let mut opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(len >= u64::from(u32::MAX) - (1 << 20));
        if let Ok(dt) = zip::DateTime::from_date_and_time(
            u16::try_from(t.year()).unwrap_or(1980),
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
        ) {
            opts = opts.last_modified_time(dt);
        }
        z.start_file(entry_name(tz, &r), opts)?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            z.write_all(&buf[..n])?;
        }
    }
    let mut out = z.finish()?.into_inner();
    out.flush()?;
    Ok(())
}

async fn day_zip(State(st): State<AppState>, auth: Auth, p: Params) -> ApiResult<Response> {
    auth.require(READ)?;
    let tz = auth.tz();
    let mut date = store::tenancy::local_date(tz, store::now_ms()).format("%Y-%m-%d").to_string();
    for (k, v) in &p.0 {
        match k.as_str() {
            "date" => date = parse_date(k, v)?,
            other => return Err(ApiError::bad_request(other, format!("{other}: not a parameter of this download"))),
        }
    }
    let rows = recs::day(&st.db, auth.tenant(), &date, own(&auth)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let tenant = auth.tenant();
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        if let Err(e) = zip_day(tz, rows, out) {
            tracing::warn!(tenant, error = %e, "recordings zip stopped");
            let _ = tx.blocking_send(Err(io::Error::other("zip stopped")));
        }
    });
    let body = HttpBody::from_stream(stream_of(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"recordings-{date}.zip\"")),
        ],
        body,
    )
        .into_response())
}

/// The receiving end of a channel as a stream of body chunks.
/// The receiving end of a bounded channel of body chunks, as a response body's stream.
pub(crate) fn stream_of(
    mut rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
