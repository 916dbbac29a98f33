//! `GET /imports/{id}/stream`: an import job's progress pushed as server-sent events, for the
//! console's progress bar (no polling by the page).
//!
//! Events: `progress` (`{"status", "bytes_total", "bytes_read", "rows_read"}`) whenever the job
//! reports (every 1,000 rows), then one `done` carrying the job as `GET /imports/{id}` answers it,
//! and the stream ends. The console reads it with `fetch` and its bearer header: on SQLite a stream
//! ticket (`POST /stream-tickets`, for an `EventSource`) is a write, and the running import holds the
//! writer until it commits, so a ticket would arrive with the outcome. Following the stream only
//! reads. A job running in another API process is followed through its row instead (read every half
//! second, at most for [`MAX_STREAM`]).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{import_json, Progress, IMPORTERS};
use crate::error::ApiResult;
use crate::extract::Id;
use crate::openapi::schema_ref;
use crate::resource::Ctx;
use crate::wallboard::StreamAuth;
use crate::{AppState, Op, Registry};

/// How long one stream may follow a job.
const MAX_STREAM: Duration = Duration::from_secs(15 * 60);
/// How often a job of another process is read.
const ROW_EVERY: Duration = Duration::from_millis(500);

pub(super) fn mount(reg: &mut Registry) {
    let o = Op {
        method: "get",
        path: "/imports/{id}/stream".into(),
        summary:
            "An import job's progress as server-sent events (progress, then done); ?ticket= from POST /stream-tickets"
                .into(),
        tag: "lists",
        roles: Some(IMPORTERS.to_vec()),
        request: None,
        response: (200, "text/event-stream", schema_ref("ImportJob")),
        errors: vec![401, 403, 404],
        query: vec![(
            "ticket".into(),
            json!({"type": "string"}),
            "A single-use stream ticket (POST /stream-tickets), for an EventSource that cannot send the bearer.".into(),
        )],
    };
    reg.add(o, get(stream));
}

fn finished(job: &Value) -> bool {
    matches!(job["status"].as_str(), Some("done" | "failed"))
}

struct Live {
    ctx: Ctx,
    id: i64,
    /// The job's channel while it runs in this process.
    rx: Option<watch::Receiver<Progress>>,
    /// The job as first read, sent first.
    first: Option<Value>,
    bytes_total: i64,
    deadline: tokio::time::Instant,
    done: bool,
}

impl Live {
    fn job_event(&mut self, job: Value) -> Event {
        if finished(&job) {
            self.done = true;
            return Event::default().event("done").json_data(&job).unwrap_or_default();
        }
        let p = json!({"status": job["status"], "bytes_total": job["bytes_total"], "bytes_read": job["bytes_read"], "rows_read": job["rows_read"]});
        Event::default().event("progress").json_data(p).unwrap_or_default()
    }

    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take() {
            return Some(self.job_event(first));
        }
        loop {
            let left = self.deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            match &mut self.rx {
                Some(rx) => match tokio::time::timeout(left, rx.changed()).await {
                    Ok(Ok(())) => {
                        let p = *rx.borrow_and_update();
                        let ev = json!({"status": "running", "bytes_total": self.bytes_total, "bytes_read": p.bytes_read, "rows_read": p.rows_read});
                        return Some(Event::default().event("progress").json_data(ev).unwrap_or_default());
                    }
                    // The job wrote its final row and closed the channel.
                    Ok(Err(_)) => self.rx = None,
                    Err(_) => return None,
                },
                None => tokio::time::sleep(ROW_EVERY.min(left)).await,
            }
            let job = import_json(&self.ctx, self.id).await.ok()?;
            if finished(&job) || self.rx.is_none() {
                return Some(self.job_event(job));
            }
        }
    }
}

async fn stream(
    State(st): State<AppState>,
    StreamAuth(auth): StreamAuth,
    Id(id): Id,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let ctx = Ctx { st, auth };
    ctx.auth.require(IMPORTERS)?;
    let first = import_json(&ctx, id).await?;
    let rx = ctx.st.imports.subscribe(id);
    let live = Live {
        bytes_total: first["bytes_total"].as_i64().unwrap_or(0),
        ctx,
        id,
        rx,
        first: Some(first),
        deadline: tokio::time::Instant::now() + MAX_STREAM,
        done: false,
    };
    let events = futures::stream::unfold(live, |mut l| async move { l.next().await.map(|e| (Ok(e), l)) });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
