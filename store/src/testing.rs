//! Test support (feature `testing`): a fresh, migrated database per test on either backend.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

use crate::{Backend, Db};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The PostgreSQL admin URL tests create their databases through (`KAKERU_TEST_PG_URL`).
pub fn pg_admin_url() -> String {
    std::env::var("KAKERU_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether `CI` says this is a CI run (`CI=true`, as GitHub Actions and most CI systems set it):
/// then no test may skip what it needs.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The backends a storage test runs on: SQLite and PostgreSQL. Locally, `KAKERU_TEST_SKIP_PG=1`
/// leaves PostgreSQL out (an opt-in skip, said on stderr); with `CI=true` it is refused: the test
/// fails rather than pass without PostgreSQL.
pub fn backends() -> Vec<Backend> {
    if std::env::var_os("KAKERU_TEST_SKIP_PG").is_none() {
        return vec![Backend::Sqlite, Backend::Postgres];
    }
    assert!(!in_ci(), "KAKERU_TEST_SKIP_PG is set in a CI run (CI=true): every test runs on PostgreSQL too");
    eprintln!("KAKERU_TEST_SKIP_PG: this test ran on SQLite only");
    vec![Backend::Sqlite]
}

/// A fresh database, migrated: a SQLite file in a temporary directory (kept alive by the returned
/// guard), or a new uniquely named PostgreSQL database.
pub async fn fresh_db(backend: Backend) -> (Db, Option<tempfile::TempDir>) {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            (format!("sqlite:{}/kakeru.db", dir.path().display()), Some(dir))
        }
        Backend::Postgres => {
            let admin = pg_admin_url();
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let name = format!("kt_{}_{n}_{:x}", std::process::id(), rand::random::<u32>());
            let mut conn = sqlx::postgres::PgConnection::connect(&admin)
                .await
                .expect("PostgreSQL reachable at KAKERU_TEST_PG_URL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
            (format!("{base}/{name}"), None)
        }
    };
    (Db::connect(&url).await.expect("connect and migrate"), dir)
}
