//! The benches' scratch databases: a bench measures the backend it is given, never writing into a
//! database that holds anything else.

use std::path::PathBuf;

use anyhow::{bail, Context};
use store::sqlx::{self, Connection};
use store::{Backend, Db};

/// A scratch database, removed by [`Scratch::finish`] (a temporary SQLite directory also on drop).
pub struct Scratch {
    /// Where the bench connects.
    pub url: String,
    pub backend: Backend,
    dir: Option<tempfile::TempDir>,
    /// A SQLite file the bench created where it was asked to.
    file: Option<PathBuf>,
    /// PostgreSQL: (the server's URL as given, the scratch database's name).
    pg: Option<(String, String)>,
}

impl Scratch {
    /// A SQLite file in a temporary directory.
    pub fn temporary_sqlite() -> anyhow::Result<Scratch> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite:{}/bench.db", dir.path().display());
        Ok(Scratch { url, backend: Backend::Sqlite, dir: Some(dir), file: None, pg: None })
    }

    /// A fresh database `kakeru_bench_<pid>_<random>` on the PostgreSQL server of `server_url`
    /// (its credentials, its settings), dropped by [`Scratch::finish`].
    pub async fn postgres(server_url: &str) -> anyhow::Result<Scratch> {
        let name = format!("kakeru_bench_{}_{}", std::process::id(), rand::random::<u32>());
        let mut c = sqlx::postgres::PgConnection::connect(server_url).await.context("PostgreSQL for the bench")?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await?;
        let base = server_url.split('?').next().unwrap_or(server_url);
        let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
        let url = format!("{base}/{name}");
        Ok(Scratch { url, backend: Backend::Postgres, dir: None, file: None, pg: Some((server_url.to_string(), name)) })
    }

    /// The backend a `--database-url` names: `postgres://...` a scratch database on that server,
    /// `sqlite:PATH` a new file at PATH (an existing file is refused: it may hold data), nothing a
    /// SQLite file in a temporary directory. `flag` names the option in errors.
    pub async fn for_url(url: Option<&str>, flag: &str) -> anyhow::Result<Scratch> {
        let Some(url) = url else { return Scratch::temporary_sqlite() };
        match Backend::from_url(url).with_context(|| format!("{flag}: postgres://... or sqlite:PATH"))? {
            Backend::Postgres => Scratch::postgres(url).await,
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
                let path = PathBuf::from(path.split('?').next().unwrap_or(path));
                if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
                    bail!("{flag}: a SQLite file path, sqlite:PATH");
                }
                if path.exists() {
                    bail!("{flag}: {} exists; the bench writes only a new file", path.display());
                }
                let url = format!("sqlite:{}", path.display());
                Ok(Scratch { url, backend: Backend::Sqlite, dir: None, file: Some(path), pg: None })
            }
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Closes the pool and removes the scratch database.
    pub async fn finish(self, db: Db) {
        db.pool.close().await;
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut c) = sqlx::postgres::PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut c).await;
            }
        }
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        drop(self.dir);
    }
}
