//! The encoder threads: plain OS threads (encoding is CPU work; no async runtime), fed by a
//! bounded crossbeam channel, answering on a bounded tokio channel.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::mpsc;

use crate::{encode_file, Outcome};

/// One recording to archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub tenant_id: i64,
    pub id: i64,
    /// The WAV (the row's path).
    pub wav: PathBuf,
}

/// A finished job.
#[derive(Debug)]
pub struct Done {
    pub job: Job,
    /// The outcome, or the error text (the WAV is left in place).
    pub result: Result<Outcome, String>,
    /// CPU time the worker thread spent on it.
    pub cpu: Duration,
}

/// Encoder threads (see module docs). Dropping the pool lets the workers finish their current
/// job and exit.
pub struct Pool {
    jobs: Option<Sender<Job>>,
    capacity: usize,
    threads: Vec<JoinHandle<()>>,
}

/// CPU time of the calling thread.
pub fn thread_cpu_time() -> Duration {
    // /proc/thread-self/stat fields 14 and 15: user and system time in clock ticks (100 Hz on
    // Linux); good enough for seconds-long encodes, and no unsafe code.
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else { return Duration::ZERO };
    let after_comm = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

impl Pool {
    /// `workers` threads, pinned round-robin to `cores` (none: not pinned); results go to `done`.
    pub fn start(workers: usize, cores: &[usize], done: mpsc::Sender<Done>) -> Pool {
        let workers = workers.max(1);
        let capacity = workers * 2;
        let (tx, rx) = crossbeam_channel::bounded::<Job>(capacity);
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = rx.clone();
            let done = done.clone();
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let spawned = std::thread::Builder::new().name(format!("opus-pool-{i}")).spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        tracing::warn!(core, "could not pin an Opus pool worker");
                    }
                }
                while let Ok(job) = rx.recv() {
                    let cpu0 = thread_cpu_time();
                    let result = encode_file(&job.wav).map_err(|e| e.to_string());
                    let cpu = thread_cpu_time().saturating_sub(cpu0);
                    if done.blocking_send(Done { job, result, cpu }).is_err() {
                        return;
                    }
                }
            });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => tracing::error!(error = %e, "could not start an Opus pool worker"),
            }
        }
        Pool { jobs: Some(tx), capacity, threads }
    }

    /// Jobs that may be queued or running at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queue a job; a full queue gives it back.
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        match self.jobs.as_ref().map(|j| j.try_send(job)) {
            Some(Ok(())) => Ok(()),
            Some(Err(TrySendError::Full(j))) | Some(Err(TrySendError::Disconnected(j))) => Err(j),
            None => Ok(()), // only after drop, which takes &mut self
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
