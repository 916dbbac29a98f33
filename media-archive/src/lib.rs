//! The recording pipeline off the relay cores: the Opus pool and the storage accounting.
//!
//! A relay shard writes each call's stereo G.711 WAV; the dialer records the closed file with
//! `store::recordings::closed`. The [`Archiver`] then, on its own threads:
//! 1. claims rows not yet encoded (`store::recordings::claim_for_encoding`, a lease, so several
//!    pools can share a database and a crashed one's work is taken back),
//! 2. has a [`Pool`] worker encode the WAV to Ogg Opus beside it ([`encode_file`]): written to a
//!    temporary name, `fsync`ed, renamed, the directory `fsync`ed, and only then the WAV removed,
//! 3. records the Opus file (`store::recordings::encoded`), then
//! 4. enforces the tenant's quota: past it the oldest recordings are marked deleted, their files
//!    unlinked, then marked purged.
//!
//! Crash safety: the WAV is removed only after the Opus file is durable under its final name,
//! and a row is `encoded` only after that, so a crash at any point leaves either the WAV (the row
//! is claimed again and re-encoded on restart) or the complete Opus file (recognised by
//! [`encode_file`], which then only records it).

pub use media::opus;
pub mod pool;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use store::Db;
use tokio::sync::{mpsc, Notify};

pub use pool::{Done, Job, Pool};

/// The result of archiving one recording file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The Ogg Opus file is durable at `path` and the WAV is gone.
    Encoded { path: PathBuf, bytes: u64, duration_ms: u64 },
    /// Neither the WAV nor its Opus file exists.
    Missing,
}

/// Why archiving a file failed (the WAV is left in place).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: not a readable recording: {1}")]
    Recording(PathBuf, media::recording::RecordingError),
    #[error("{0}: {1}")]
    Opus(PathBuf, opus::OpusError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io { path: path.to_path_buf(), source }
}

/// The Opus file's path beside a WAV.
pub fn opus_path(wav: &Path) -> PathBuf {
    wav.with_extension("opus")
}

fn sync_dir(path: &Path) -> Result<(), ArchiveError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Encode the WAV at `wav` to Ogg Opus beside it, durably, then remove the WAV (see module
/// docs). If the WAV is gone but its Opus file exists (a crash after the rename), the Opus file
/// is recognised and reported as encoded.
pub fn encode_file(wav: &Path) -> Result<Outcome, ArchiveError> {
    let target = opus_path(wav);
    let bytes = match std::fs::read(wav) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match std::fs::read(&target) {
                Ok(existing) => {
                    let samples = opus::samples_of(&existing).map_err(|e| ArchiveError::Opus(target.clone(), e))?;
                    Ok(Outcome::Encoded {
                        path: target,
                        bytes: existing.len() as u64,
                        duration_ms: samples * 1000 / u64::from(opus::SAMPLE_RATE),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Outcome::Missing),
                Err(e) => Err(ArchiveError::Io { path: target, source: e }),
            };
        }
        Err(e) => return Err(ArchiveError::Io { path: wav.to_path_buf(), source: e }),
    };
    let rec = media::recording::read_recording(&bytes).map_err(|e| ArchiveError::Recording(wav.to_path_buf(), e))?;
    drop(bytes);
    let tmp = wav.with_extension("opus.tmp");
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = BufWriter::new(file);
    let enc = opus::encode(&rec, &mut w).map_err(|e| ArchiveError::Opus(tmp.clone(), e))?;
    let file = w.into_inner().map_err(|e| ArchiveError::Io { path: tmp.clone(), source: e.into_error() })?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &target).map_err(io_err(&target))?;
    sync_dir(&target)?;
    std::fs::remove_file(wav).map_err(io_err(wav))?;
    sync_dir(wav)?;
    Ok(Outcome::Encoded { path: target, bytes: enc.bytes, duration_ms: enc.duration_ms() })
}

/// Remove a file, treating "already gone" as done.
fn unlink(path: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// How the [`Archiver`] runs.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// Encoder threads (default 1).
    pub workers: usize,
    /// Cores to pin the workers to, round-robin (empty: not pinned). Keep them off the relay
    /// shards' cores.
    pub cores: Vec<usize>,
    /// This encoder's name in the claims: stable across restarts of one instance (default: the
    /// host name), so that a restarted pool takes its own claims back at once.
    pub name: String,
    /// How often the queue is polled when nothing wakes the archiver.
    pub poll: Duration,
    /// A claim older than this is taken by another encoder.
    pub lease: Duration,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            workers: 1,
            cores: Vec::new(),
            name: host_name(),
            poll: Duration::from_secs(2),
            lease: Duration::from_secs(600),
        }
    }
}

/// The machine's host name (the default encoder name).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into())
}

/// Wakes the [`Archiver`] when a recording was closed (instead of waiting for its next poll).
#[derive(Debug, Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// The Opus pool with its queue and accounting (see module docs).
pub struct Archiver {
    db: Db,
    config: ArchiveConfig,
    wakeup: Wakeup,
}

/// Counters of one [`Archiver::run_until`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    pub encoded: u64,
    pub failed: u64,
    pub missing: u64,
    pub deleted_for_quota: u64,
    /// Seconds of stereo audio encoded (call-seconds).
    pub audio_ms: u64,
}

impl Archiver {
    pub fn new(db: Db, config: ArchiveConfig) -> Archiver {
        Archiver { db, config, wakeup: Wakeup::default() }
    }

    /// A handle that wakes the archiver (give it to whoever calls `store::recordings::closed`).
    pub fn wakeup(&self) -> Wakeup {
        self.wakeup.clone()
    }

    /// Run until `stop` resolves: encode what is queued, enforce quotas, purge deleted files.
    /// Jobs in flight when `stop` resolves are finished first.
    pub async fn run_until(&self, stop: impl std::future::Future<Output = ()>) -> store::Result<ArchiveStats> {
        self.run(stop, false).await
    }

    /// Run until nothing is left to encode (tests, tools, a one-shot catch-up).
    pub async fn run_until_idle(&self) -> store::Result<ArchiveStats> {
        self.run(std::future::pending(), true).await
    }

    async fn run(&self, stop: impl std::future::Future<Output = ()>, until_idle: bool) -> store::Result<ArchiveStats> {
        let workers = self.config.workers.max(1);
        let (done_tx, mut done_rx) = mpsc::channel(workers * 4);
        let pool = Pool::start(workers, &self.config.cores, done_tx);
        let mut stats = ArchiveStats::default();
        let released = store::recordings::release_claims(&self.db, &self.config.name).await?;
        if released > 0 {
            tracing::info!(released, "recordings: took back this encoder's claims from before a restart");
        }
        self.purge_leftovers().await?;
        for tenant in store::recordings::tenants_with_recordings(&self.db).await? {
            stats.deleted_for_quota += self.enforce(tenant).await?;
        }
        tokio::pin!(stop);
        let mut in_flight = 0usize;
        let mut stopping = false;
        loop {
            if !stopping && in_flight < pool.capacity() {
                let want = (pool.capacity() - in_flight) as i64;
                let claimed: Vec<_> = store::recordings::claim_for_encoding(
                    &self.db,
                    &self.config.name,
                    store::now_ms(),
                    self.config.lease.as_millis() as i64,
                    want,
                )
                .await?;
                if claimed.is_empty() && in_flight == 0 && until_idle {
                    stopping = true;
                }
                for r in claimed {
                    match pool.try_submit(Job { tenant_id: r.tenant_id, id: r.id, wav: PathBuf::from(&r.path) }) {
                        Ok(()) => in_flight += 1,
                        // Cannot happen below capacity; release the claim for the next round.
                        Err(_) => store::recordings::encode_failed(&self.db, r.tenant_id, r.id, "pool full").await?,
                    }
                }
            }
            metrics::gauge!("kakeru_recordings_encode_in_flight").set(in_flight as f64);
            if stopping && in_flight == 0 {
                break;
            }
            tokio::select! {
                d = done_rx.recv() => {
                    let Some(d) = d else { break };
                    in_flight -= 1;
                    self.finish(d, &mut stats).await?;
                }
                _ = self.wakeup.0.notified(), if !stopping => {}
                _ = tokio::time::sleep(self.config.poll), if !stopping => {}
                _ = &mut stop, if !stopping => stopping = true,
            }
        }
        drop(pool);
        Ok(stats)
    }

    async fn finish(&self, d: Done, stats: &mut ArchiveStats) -> store::Result<()> {
        let Job { tenant_id, id, wav } = d.job;
        let now = store::now_ms();
        match d.result {
            Ok(Outcome::Encoded { path, bytes, duration_ms }) => {
                let path_s = path.to_string_lossy().into_owned();
                let kept =
                    store::recordings::encoded(&self.db, tenant_id, id, &path_s, bytes as i64, duration_ms as i64, now)
                        .await?;
                if !kept {
                    // Deleted (quota) while it was being encoded: the new file goes too.
                    let _ = unlink(&path_s);
                }
                stats.encoded += 1;
                stats.audio_ms += duration_ms;
                metrics::counter!("kakeru_recordings_encoded_total").increment(1);
                metrics::counter!("kakeru_recordings_encoded_audio_seconds_total").increment(duration_ms / 1000);
                metrics::histogram!("kakeru_recordings_encode_cpu_seconds").record(d.cpu.as_secs_f64());
                stats.deleted_for_quota += self.enforce(tenant_id).await?;
            }
            Ok(Outcome::Missing) => {
                tracing::warn!(tenant_id, id, path = %wav.display(), "recording file missing; row marked deleted");
                store::recordings::mark_missing(&self.db, tenant_id, id, now).await?;
                stats.missing += 1;
                metrics::counter!("kakeru_recordings_deleted_total", "reason" => "missing").increment(1);
            }
            Err(e) => {
                tracing::warn!(tenant_id, id, error = %e, "recording could not be encoded; the WAV stays");
                store::recordings::encode_failed(&self.db, tenant_id, id, &e).await?;
                stats.failed += 1;
                metrics::counter!("kakeru_recordings_encode_failures_total").increment(1);
            }
        }
        Ok(())
    }

    /// The tenant's quota: delete oldest first past it; returns how many were deleted.
    async fn enforce(&self, tenant_id: i64) -> store::Result<u64> {
        let victims = store::recordings::enforce_quota(&self.db, tenant_id, store::now_ms()).await?;
        let n = victims.len() as u64;
        for v in victims {
            self.purge(&v).await?;
            metrics::counter!("kakeru_recordings_deleted_total", "reason" => "quota").increment(1);
        }
        if n > 0 {
            tracing::info!(tenant_id, deleted = n, "recordings past the tenant's quota deleted, oldest first");
        }
        let usage = store::recordings::usage(&self.db, tenant_id).await?;
        metrics::gauge!("kakeru_recordings_storage_bytes", "tenant_id" => tenant_id.to_string())
            .set(usage.bytes as f64);
        Ok(n)
    }

    /// Unlinks a deleted recording's files; `false` if one could not be removed (retried at the
    /// next start).
    async fn purge(&self, v: &store::recordings::ToPurge) -> store::Result<bool> {
        // The WAV may still be there if the row was deleted before it was encoded.
        let wav_left = Path::new(&v.path).with_extension("wav");
        let opus_left = Path::new(&v.path).with_extension("opus");
        let mut ok = true;
        for p in [v.path.clone(), wav_left.to_string_lossy().into_owned(), opus_left.to_string_lossy().into_owned()] {
            if let Err(e) = unlink(&p) {
                tracing::warn!(path = %p, error = %e, "could not remove a deleted recording's file");
                ok = false;
            }
        }
        if ok {
            store::recordings::purged(&self.db, v.tenant_id, v.id, store::now_ms()).await?;
        }
        Ok(ok)
    }

    /// Files of rows deleted before a crash that were not yet unlinked.
    async fn purge_leftovers(&self) -> store::Result<()> {
        loop {
            let batch = store::recordings::to_purge(&self.db, 500).await?;
            let mut all = true;
            for v in &batch {
                all &= self.purge(v).await?;
            }
            if batch.len() < 500 || !all {
                return Ok(());
            }
        }
    }
}
