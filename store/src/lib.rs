//! Storage shared by the api, control and dialer roles.
//!
//! One schema, two backends: PostgreSQL in production and SQLite (a file, nothing to install) as the
//! embedded default, chosen by the `DATABASE_URL` scheme. Queries go through sqlx's `Any` driver so
//! that every query is written once; they use only types both backends share (integers, reals,
//! text, booleans, bytes). Times are Unix milliseconds in UTC; the tenant's time zone is applied at
//! the edges (see [`tenancy`]).
//!
//! Invariant: every query that reads or writes a tenant's rows filters on `tenant_id`.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod batch_dates;
pub mod batches;
pub mod calendar;
pub mod call_jobs;
pub mod call_records;
pub mod callbacks;
pub mod campaigns;
pub mod conferences;
pub mod control;
pub mod desktop;
pub mod dialing;
pub mod imports;
pub mod lead_history;
pub mod leads;
pub mod leases;
pub mod links;
pub mod membership;
pub mod monitoring;
pub mod number_lists;
pub mod parked;
pub mod phone_book;
pub mod preview;
pub mod recordings;
pub mod records;
pub mod reports;
pub mod resource;
pub mod results;
pub mod retention;
pub mod rollups;
pub mod search;
pub mod seed;
pub mod stream_tickets;
pub mod tenancy;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transfers;

use std::str::FromStr;
use std::sync::Arc;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Executor;

pub use sqlx;

/// The backend behind a [`Db`], from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(StoreError::Config(format!(
                "DATABASE_URL must start with postgres:// or sqlite: (got {:?})",
                url.split(':').next().unwrap_or("")
            )))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint refused the write; carries the constraint's columns where known.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A foreign key or check constraint refused the write.
    #[error("constraint: {0}")]
    Constraint(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Db(sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => {
                let msg = db.message().to_string();
                match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(msg),
                    sqlx::error::ErrorKind::ForeignKeyViolation
                    | sqlx::error::ErrorKind::CheckViolation
                    | sqlx::error::ErrorKind::NotNullViolation => StoreError::Constraint(msg),
                    _ => StoreError::Db(e),
                }
            }
            _ => StoreError::Db(e),
        }
    }
}

/// `($1,$2,...),(...)`: the VALUES of a multi-row INSERT of `rows` rows of `cols` parameters, as
/// `backend` takes them best. SQLite gets anonymous `?`: with numbered parameters sqlx looks each
/// one's name up (`sqlite3_bind_parameter_name`, a linear scan of the statement's names), which
/// makes binding quadratic in the parameters: a quarter of the control service's CPU at 200 rows
/// of 11 (bench/RESULTS.md). Statements built with it take no other parameters.
pub fn placeholders(backend: Backend, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            match backend {
                Backend::Sqlite => s.push('?'),
                Backend::Postgres => {
                    s.push('$');
                    s.push_str(&(r * cols + c + 1).to_string());
                }
            }
        }
        s.push(')');
    }
    s
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whether the statement, given its two integer parameters, finds a row (the checks that a record
/// is the tenant's, or is in use).
pub(crate) async fn found(db: &Db, sql: &'static str, first: i64, second: i64) -> Result<bool> {
    Ok(sqlx::query(sql).bind(first).bind(second).fetch_optional(&db.pool).await?.is_some())
}

/// A connection pool on either backend.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite: the in-process queue of writing transactions (see [`Db::begin_write`]).
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: the queue bulk writers take before the write gate ([`Db::begin_bulk_write`]).
    bulk_lane: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: the background checkpointer, stopped when the last clone is dropped.
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// How often the background task checkpoints a SQLite database's WAL.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Checkpoints beside the writer before the last one, which holds the write gate (see
/// [`Checkpointer`]): each copies the frames written during the one before, about a tenth of them
/// at the control service's load, so the last has a few to copy.
const CATCH_UP_ROUNDS: usize = 2;

/// WAL pages past which a commit checkpoints by itself (SQLite's auto-checkpoint), as a backstop:
/// the background checkpointer restarts the WAL well before (at 20,000 state changes a second the
/// control service writes about 25,000 pages a second, 6,000 per [`CHECKPOINT_EVERY`]).
const AUTOCHECKPOINT_PAGES: u32 = 50_000;

/// A SQLite database's WAL, checkpointed in the background so that no commit waits for a
/// checkpoint. Every [`CHECKPOINT_EVERY`], on a pool connection: [`CATCH_UP_ROUNDS`] passive
/// checkpoints copy committed pages back into the database file beside the writer; then one more
/// holds the in-process write gate ([`Db::begin_write`]) for the few pages committed meanwhile.
/// That one leaves the whole WAL copied with no commit after it, so the next writer restarts the
/// WAL from its beginning. Without it the WAL only ever grew under a steady writer (a commit
/// always landed during the checkpoint), until a commit crossed the auto-checkpoint size and
/// copied thousands of pages itself: 20-60 ms commits every 600 ms at 20,000 changes a second.
#[derive(Debug)]
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Checkpointer {
    fn start(pool: AnyPool, gate: Arc<tokio::sync::Mutex<()>>) -> Self {
        Checkpointer(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = checkpoint(&pool, &gate).await {
                    tracing::debug!(error = %e, "WAL checkpoint");
                }
            }
        }))
    }
}

/// One round of the [`Checkpointer`]. The connection is taken before the gate: writers take the
/// gate before a connection, so none waits for the gate holding one.
async fn checkpoint(pool: &AnyPool, gate: &tokio::sync::Mutex<()>) -> std::result::Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    for _ in 0..CATCH_UP_ROUNDS {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *conn).await?;
    }
    let _gate = gate.lock().await;
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *conn).await?;
    Ok(())
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A writing transaction from [`Db::begin_write`]. Execute on `&mut *tx` as on an sqlx transaction;
/// `commit` it, or drop it to roll back. On SQLite it holds the write gate until then.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    // Dropped in this order: the transaction ends before the gate, and the gate before the lane.
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    _bulk: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Db {
    /// Migrates the database named by `url` to the newest schema, then opens a pool on it.
    pub async fn connect(url: &str) -> Result<Db> {
        migrate(url).await?;
        Self::connect_no_migrate(url).await
    }

    pub async fn connect_no_migrate(url: &str) -> Result<Db> {
        Self::connect_pooled(url, None).await
    }

    /// [`Db::connect_no_migrate`] with at most `max` connections open at once (default 8 on
    /// PostgreSQL, 4 on SQLite): a layout of many processes on one PostgreSQL sizes it so that
    /// their sum stays under the server's `max_connections`.
    ///
    /// Why 8 and not more: a server runs as many statements at once as it has cores, and more
    /// connections only queue inside it, where they contend for locks and the CPU, instead of in the
    /// pool. Measured (bench/RESULTS.md, "Callbacks"): 100 agents claiming callbacks through the API
    /// on a 2-core PostgreSQL, the claim's p99 (median of runs) 38 ms with 4 or 8 connections, 53 ms
    /// with 16, 70 ms with 32. A bigger server takes about twice its cores per busy process.
    pub async fn connect_pooled(url: &str, max: Option<u32>) -> Result<Db> {
        let backend = Backend::from_url(url)?;
        sqlx::any::install_default_drivers();
        let max = max.unwrap_or(match backend {
            Backend::Postgres => 8,
            // One writer at a time in SQLite; a few readers beside it.
            Backend::Sqlite => 4,
        });
        let mut options = AnyPoolOptions::new().max_connections(max);
        if backend == Backend::Sqlite {
            // Per connection: WAL (set once, in the file, by `migrate`) is crash-safe with NORMAL,
            // which syncs at checkpoints instead of at every commit; a 10 s busy timeout.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    // Writers from several tasks (API, control, dialer) wait for the one lock
                    // instead of failing at once with SQLITE_BUSY.
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    // A 64 MiB page cache (default 2 MiB): a control-service batch of thousands
                    // of messages touches more pages than that, and spilled and re-read them.
                    conn.execute("PRAGMA cache_size = -65536").await?;
                    // Checkpoints are the background checkpointer's ([`Checkpointer`]); a
                    // commit checkpoints only if the WAL passes the backstop anyway. A WAL that
                    // grew under a burst is cut back to 64 MiB when it restarts.
                    conn.execute(format!("PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}").as_str()).await?;
                    conn.execute("PRAGMA journal_size_limit = 67108864").await?;
                    Ok(())
                })
            });
        }
        if backend == Backend::Postgres {
            // A process cut off from the database in the middle of a transaction (its COMMIT never
            // arrives) would keep that transaction's row locks until TCP noticed, minutes later:
            // a lease it was renewing could not be taken over. No transaction of ours waits 10 s
            // between its statements, so one that does is ended by the server.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET idle_in_transaction_session_timeout = '10s'").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        let write_gate = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let _checkpointer = write_gate.as_ref().map(|gate| Arc::new(Checkpointer::start(pool.clone(), gate.clone())));
        let bulk_lane = write_gate.as_ref().map(|_| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Db { pool, backend, write_gate, bulk_lane, _checkpointer })
    }

    /// A transaction that will write. On SQLite, this process's writing transactions queue on one
    /// in-process gate *before* they take a pool connection, then begin with `BEGIN IMMEDIATE`
    /// (the write lock at once, waited for within the busy timeout, against other processes and
    /// single-statement writes). A deferred transaction that read first would instead fail with
    /// "database is locked" when it came to write while another writer held the lock; and writers
    /// waiting for the lock inside the pool would hold its few connections and starve the readers.
    /// On PostgreSQL a plain `BEGIN`, no gate.
    pub async fn begin_write(&self) -> std::result::Result<WriteTx, sqlx::Error> {
        match &self.write_gate {
            Some(gate) => {
                let guard = gate.clone().lock_owned().await;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx { tx, _gate: Some(guard), _bulk: None })
            }
            None => Ok(WriteTx { tx: self.pool.begin().await?, _gate: None, _bulk: None }),
        }
    }

    /// A writing transaction of a bulk job (an import's staged chunk or its publication): on
    /// SQLite bulk writers first queue among themselves, so at most one of them waits at the write
    /// gate at a time and a short write queues behind one bulk transaction, not behind every
    /// running import's. The same as [`Db::begin_write`] on PostgreSQL.
    pub async fn begin_bulk_write(&self) -> std::result::Result<WriteTx, sqlx::Error> {
        let bulk = match &self.bulk_lane {
            Some(lane) => Some(lane.clone().lock_owned().await),
            None => None,
        };
        let mut tx = self.begin_write().await?;
        tx._bulk = bulk;
        Ok(tx)
    }

    /// `true` for PostgreSQL (tuning that differs by backend, such as rows per INSERT).
    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }
}

/// Applies the versioned migrations under `migrations/<backend>/` with the backend's own driver.
pub async fn migrate(url: &str) -> Result<()> {
    match Backend::from_url(url)? {
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
            sqlx::migrate!("../migrations/postgres").run(&pool).await?;
            pool.close().await;
        }
        Backend::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
            let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
            sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
            pool.close().await;
        }
    }
    Ok(())
}

/// Current time, Unix milliseconds UTC. Drivers call this; sans-IO cores take `now` as input.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit leaves its pages in the WAL (the auto-checkpoint is 10,000 pages away); the
    /// background checkpointer, not a later commit, copies them into the database file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_background_checkpointer_copies_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("checkpoint.db");
        let db = Db::connect(&format!("sqlite:{}", path.display())).await.expect("database");
        sqlx::query("CREATE TABLE checkpoint_rows (id INTEGER PRIMARY KEY, b BLOB)")
            .execute(&db.pool)
            .await
            .expect("table");
        let file_len = || std::fs::metadata(&path).expect("database file").len();
        let wal_len = || std::fs::metadata(dir.path().join("checkpoint.db-wal")).map_or(0, |m| m.len());
        let before = file_len();
        // About 4 MB: 1,000 pages of the 4 KiB default.
        let mut tx = db.begin_write().await.expect("begin");
        for _ in 0..1_000 {
            sqlx::query("INSERT INTO checkpoint_rows (b) VALUES (zeroblob(4000))")
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
        let wal = wal_len();
        assert!(wal > 3_500_000, "the commit is in the WAL ({wal} bytes)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while file_len() < before + 3_500_000 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let after = file_len();
        assert!(after >= before + 3_500_000, "the database file grew from {before} to {after} bytes");
    }

    /// Under a writer that commits back to back, each round of the checkpointer restarts the WAL.
    /// Without the gated last checkpoint a commit always landed during it, the WAL was never wholly
    /// copied, and it grew by every page written until a commit crossed the auto-checkpoint size
    /// and copied them itself (the WAL file then reached 130 % of what was written). The restarts
    /// are counted from the WAL file's header, whose salt-1 goes up by one at each restart: a
    /// count a busy machine does not change, where the file's size did (it reached 70 % of what
    /// was written with the gated round, in a CI run beside the other tests).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_checkpoint_round_restarts_the_wal_under_a_steady_writer() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("restart.db");
        let db = Db::connect(&format!("sqlite:{}", path.display())).await.expect("database");
        sqlx::query("CREATE TABLE restart_rows (id INTEGER PRIMARY KEY, b BLOB)")
            .execute(&db.pool)
            .await
            .expect("table");
        // A restart writes the WAL from its beginning again, so the file only grows to the most
        // written between two restarts.
        let wal_len = || std::fs::metadata(dir.path().join("restart.db-wal")).map_or(0, |m| m.len());
        // The WAL header's salt-1 (offset 16, big-endian; sqlite.org/fileformat2), one more at each
        // restart. (Its checkpoint sequence number, offset 12, is the restarting connection's own
        // count, so with a pool of connections it does not count restarts.)
        let restarts_so_far = || {
            let header = std::fs::read(dir.path().join("restart.db-wal")).map(|b| b.get(16..20).map(<[u8]>::to_vec));
            header.ok().flatten().map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        // The rounds are the test's own: the background ones would find the checkpoint lock taken.
        db._checkpointer.as_ref().expect("SQLite has a checkpointer").0.abort();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                let mut commits = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut tx = db.begin_write().await.expect("begin");
                    for _ in 0..8 {
                        sqlx::query("INSERT INTO restart_rows (b) VALUES (zeroblob(4000))")
                            .execute(&mut *tx)
                            .await
                            .expect("insert");
                    }
                    tx.commit().await.expect("commit");
                    commits += 1;
                }
                commits
            })
        };
        let gate = db.write_gate.clone().expect("SQLite has a write gate");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let first = restarts_so_far();
        for _ in 0..10 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            checkpoint(&db.pool, &gate).await.expect("checkpoint");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let commits = writer.await.expect("the writer");
        let (wal, written) = (wal_len(), u64::from(commits) * 8 * 4096);
        let restarts = restarts_so_far().wrapping_sub(first);
        assert!(commits > 100, "the writer committed {commits} times");
        // One restart after each of the ten rounds (the writer commits between them); without the
        // gated round, none.
        assert!(restarts >= 8, "{restarts} restarts in 10 rounds (the WAL at {wal} bytes of {written} written)");
        // And so the WAL stays below what was written: 22-70 % with the restarts, 130 % without.
        assert!(wal < written, "the WAL grew to {wal} bytes of {written} written");
    }
}
