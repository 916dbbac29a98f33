//! The dialer's writer: the engines' [`Write`]s carried out in SQL, off the engines' loop.
//!
//! - Bounded: the engine hands a write over with `try_send` ([`WRITE_QUEUE`]); a full queue is a
//!   counted, logged drop, never a wait (a result dropped this way leaves its call record `pending`,
//!   and the host's next start gives it `error` as an orphan).
//! - A failure is either **transient** (the database unreachable, a lock or serialization conflict,
//!   a pool timeout) or **permanent** (the row is gone, the schema refuses the value). A transient
//!   one is retried with a capped backoff ([`RETRY_BACKOFF_MAX`]) up to [`MAX_ATTEMPTS`] times while
//!   the writes behind it go on; a permanent one, or one out of attempts, is logged, counted and
//!   kept in `dialer_dead_letters` for an operator. A batch of results that fails for good is
//!   written again one result at a time, so one bad result does not take 499 good ones with it.

use std::collections::VecDeque;
use std::time::Duration;

use store::{Db, StoreError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::core::Write;

/// Writes waiting for the writer.
pub const WRITE_QUEUE: usize = 65_536;
/// Writes waiting for a retry.
pub const RETRY_QUEUE: usize = 65_536;
/// Tries of a write that keeps failing transiently before it is dead-lettered (about 5 minutes).
pub const MAX_ATTEMPTS: u32 = 64;
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Results of one tenant merged into one transaction.
const RESULTS_PER_TX: usize = 500;

/// A write and the tenant it is for.
#[derive(Debug, Clone)]
pub struct Job {
    pub tenant: u64,
    pub write: Write,
}

/// Whether an error may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Permanent,
}

/// Classifies a store error (see the module docs).
pub fn classify(e: &StoreError) -> Class {
    match e {
        StoreError::NotFound
        | StoreError::Conflict(_)
        | StoreError::Constraint(_)
        | StoreError::Config(_)
        | StoreError::Migrate(_) => Class::Permanent,
        StoreError::Db(e) => classify_sqlx(e),
    }
}

fn classify_sqlx(e: &store::sqlx::Error) -> Class {
    use store::sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => Class::Transient,
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: connection exceptions (08), serialization failure and deadlock (40),
            // insufficient resources (53), operator intervention (57: shutdown, cancel).
            // SQLite: BUSY (5) and LOCKED (6), with their extended codes.
            let pg = ["08", "40", "53", "57"].iter().any(|p| code.starts_with(p));
            let sqlite = code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            if pg || sqlite {
                Class::Transient
            } else {
                Class::Permanent
            }
        }
        _ => Class::Permanent,
    }
}

/// Counters of the writer (also exported as metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    pub written: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Writes lost: the retry queue was full and the dead letter could not be written either.
    pub lost: u64,
}

struct Retry {
    job: Job,
    attempts: u32,
    due: Instant,
}

/// The writer task: runs until `rx` closes and every write (and retry) is done or dead-lettered.
pub async fn run(db: Db, rx: mpsc::Receiver<Job>, stats: std::sync::Arc<std::sync::Mutex<WriterStats>>) {
    run_fenced(db, rx, stats, None).await
}

/// [`run`] for a host on leases (`holder`): results are written only under the lease their call
/// was placed under ([`store::dialing::end_calls_fenced`]); a refused one is counted and logged,
/// never retried (the campaign's new holder gave that call its result).
pub async fn run_fenced(
    db: Db,
    mut rx: mpsc::Receiver<Job>,
    stats: std::sync::Arc<std::sync::Mutex<WriterStats>>,
    holder: Option<String>,
) {
    let holder = holder.as_deref();
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut retries: VecDeque<Retry> = VecDeque::new();
    let mut open = true;
    loop {
        if queue.is_empty() {
            let next_retry = retries.iter().map(|r| r.due).min();
            if !open && next_retry.is_none() {
                return;
            }
            tokio::select! {
                w = rx.recv(), if open => match w {
                    Some(w) => queue.push_back(w),
                    None => open = false,
                },
                _ = sleep_until(next_retry) => {}
            }
        }
        while queue.len() < WRITE_QUEUE {
            match rx.try_recv() {
                Ok(w) => queue.push_back(w),
                Err(_) => break,
            }
        }
        // Retries that are due go first (they are older).
        let now = Instant::now();
        let (due, later): (Vec<Retry>, Vec<Retry>) = retries.drain(..).partition(|r| r.due <= now);
        retries.extend(later);
        for r in due {
            attempt(&db, holder, r.job, r.attempts, &mut retries, &stats).await;
        }
        let Some(job) = queue.pop_front() else { continue };
        let job = merge_results(job, &mut queue);
        attempt(&db, holder, job, 0, &mut retries, &stats).await;
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Consecutive results of one tenant go in one transaction.
fn merge_results(job: Job, queue: &mut VecDeque<Job>) -> Job {
    let Job { tenant, write: Write::Results(mut results) } = job else { return job };
    while let Some(Job { tenant: t, write: Write::Results(more) }) = queue.front() {
        if *t != tenant || results.len() + more.len() > RESULTS_PER_TX {
            break;
        }
        if let Some(Job { write: Write::Results(more), .. }) = queue.pop_front() {
            results.extend(more);
        }
    }
    Job { tenant, write: Write::Results(results) }
}

async fn attempt(
    db: &Db,
    holder: Option<&str>,
    job: Job,
    attempts: u32,
    retries: &mut VecDeque<Retry>,
    stats: &std::sync::Arc<std::sync::Mutex<WriterStats>>,
) {
    let attempts = attempts + 1;
    match apply(db, holder, &job).await {
        Ok(()) => {
            bump(stats, |s| s.written += 1);
        }
        Err(e) => match classify(&e) {
            Class::Transient if attempts < MAX_ATTEMPTS && retries.len() < RETRY_QUEUE => {
                bump(stats, |s| s.retried += 1);
                metrics::counter!("kakeru_dialer_write_retries_total").increment(1);
                let backoff = RETRY_BACKOFF_MIN.saturating_mul(1 << attempts.min(10)).min(RETRY_BACKOFF_MAX);
                tracing::warn!(error = %e, attempts, kind = kind(&job.write), "dialer write failed; retrying");
                retries.push_back(Retry { job, attempts, due: Instant::now() + backoff });
            }
            class => {
                // A batch of results that fails for good: one result at a time, so only the bad
                // ones are kept aside.
                if let (Class::Permanent, Write::Results(results)) = (class, &job.write) {
                    if results.len() > 1 {
                        for r in results {
                            let one = Job { tenant: job.tenant, write: Write::Results(vec![r.clone()]) };
                            Box::pin(attempt(db, holder, one, attempts - 1, retries, stats)).await;
                        }
                        return;
                    }
                }
                dead_letter(db, &job, &e.to_string(), attempts, stats).await;
            }
        },
    }
}

fn bump(stats: &std::sync::Arc<std::sync::Mutex<WriterStats>>, f: impl FnOnce(&mut WriterStats)) {
    if let Ok(mut s) = stats.lock() {
        f(&mut s);
    }
}

async fn dead_letter(
    db: &Db,
    job: &Job,
    error: &str,
    attempts: u32,
    stats: &std::sync::Arc<std::sync::Mutex<WriterStats>>,
) {
    let kind = kind(&job.write);
    metrics::counter!("kakeru_dialer_write_dead_letters_total", "kind" => kind).increment(1);
    tracing::error!(tenant = job.tenant, kind, error, attempts, "dialer write failed for good; kept as a dead letter");
    let payload = payload(&job.write);
    let tenant = i64::try_from(job.tenant).unwrap_or(i64::MAX);
    let now = store::now_ms();
    match store::dialing::dead_letter(db, tenant, kind, &payload, error, i64::from(attempts), now).await {
        Ok(()) => bump(stats, |s| s.dead_lettered += 1),
        Err(e) => {
            bump(stats, |s| s.lost += 1);
            metrics::counter!("kakeru_dialer_writes_lost_total").increment(1);
            tracing::error!(tenant = job.tenant, kind, %payload, error = %e, "the dead letter could not be kept either");
        }
    }
}

fn kind(w: &Write) -> &'static str {
    match w {
        Write::Results(_) => "results",
        Write::Recording(_) => "recording",
        Write::Registration(_) => "registration",
        Write::EndJob { .. } => "end_job",
        Write::NotDialled(_) => "not_dialled",
        Write::MonitorStarted { .. } => "monitor_started",
        Write::MonitorEnded { .. } => "monitor_ended",
        Write::ConferenceStarted { .. } => "conference_started",
        Write::ConferenceEnded { .. } => "conference_ended",
    }
}

fn payload(w: &Write) -> String {
    let v = match w {
        Write::Results(r) => serde_json::to_value(r),
        Write::Recording(r) => serde_json::to_value(r),
        Write::Registration(r) => serde_json::to_value(r),
        Write::EndJob { job, status } => Ok(serde_json::json!({ "job": job, "status": status })),
        Write::MonitorStarted { monitor, at_ms } => Ok(serde_json::json!({ "monitor": monitor, "at": at_ms })),
        Write::MonitorEnded { monitor, at_ms, reason } => {
            Ok(serde_json::json!({ "monitor": monitor, "at": at_ms, "reason": reason }))
        }
        Write::ConferenceStarted { call, at_ms } => Ok(serde_json::json!({ "call": call, "at": at_ms })),
        Write::ConferenceEnded { call, at_ms, reason } => {
            Ok(serde_json::json!({ "call": call, "at": at_ms, "reason": reason }))
        }
        Write::NotDialled(c) => Ok(serde_json::json!(c
            .iter()
            .map(|(call, recall)| serde_json::json!({"call": call, "recall": recall}))
            .collect::<Vec<_>>())),
    };
    v.map(|v| v.to_string()).unwrap_or_default()
}

async fn apply(db: &Db, holder: Option<&str>, job: &Job) -> Result<(), StoreError> {
    let tenant = i64::try_from(job.tenant).unwrap_or(i64::MAX);
    let now = store::now_ms();
    match &job.write {
        Write::Results(results) => match holder {
            None => store::dialing::end_calls(db, tenant, results).await,
            Some(h) => {
                let refused = store::dialing::end_calls_fenced(db, tenant, results, h).await?;
                if !refused.is_empty() {
                    metrics::counter!("kakeru_dialer_fenced_writes_total").increment(refused.len() as u64);
                    tracing::warn!(tenant, calls = ?refused, "results refused: their campaign's lease was taken");
                }
                Ok(())
            }
        },
        Write::Recording(r) => store::recordings::closed(db, r).await.map(|_| ()),
        Write::Registration(r) => store::dialing::save_registration(db, r, now).await,
        Write::EndJob { job, status } => store::dialing::end_job(db, tenant, *job, status, now).await,
        Write::NotDialled(calls) => store::dialing::not_dialled_at_stop(db, tenant, calls, now).await,
        Write::MonitorStarted { monitor, at_ms } => store::monitoring::started(db, tenant, *monitor, *at_ms).await,
        Write::MonitorEnded { monitor, at_ms, reason } => {
            store::monitoring::ended(db, tenant, *monitor, *at_ms, reason).await
        }
        Write::ConferenceStarted { call, at_ms } => store::conferences::started(db, tenant, *call, *at_ms).await,
        Write::ConferenceEnded { call, at_ms, reason } => {
            store::conferences::ended(db, tenant, *call, *at_ms, reason).await
        }
    }
}
