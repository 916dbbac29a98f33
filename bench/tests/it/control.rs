//! `kakeru-bench control` measures the backend it is given, in a scratch database of its own that it
//! removes, and reaches no service by default. Short runs (10 agents, 1 s): a check of the flags,
//! not a measurement.

use std::process::{Command, Output};

use store::sqlx::{self, Connection, Row};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn control(args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_kakeru-bench"))
        .arg("control")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kakeru-bench runs");
    let pid = child.id();
    (child.wait_with_output().expect("kakeru-bench ends"), pid)
}

fn short_run(database: &[&str]) -> (serde_json::Value, u32) {
    let redis = redis_url();
    let mut args = vec!["--agents", "10", "--seconds", "1", "--json", "--redis-url", redis.as_str()];
    args.extend_from_slice(database);
    let (out, pid) = control(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert!(v["events_per_s"].as_f64().is_some_and(|r| r > 0.0), "changes were measured: {v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["duplicated"], 0, "{v}");
    (v, pid)
}

#[tokio::test]
async fn control_bench_measures_the_postgresql_it_is_given_in_a_scratch_database_it_drops() {
    let admin = store::testing::pg_admin_url();
    let (v, pid) = short_run(&["--database-url", &admin]);
    assert_eq!(v["store"], "postgres", "{v}");
    let mut c = sqlx::postgres::PgConnection::connect(&admin).await.expect("PostgreSQL at KAKERU_TEST_PG_URL");
    let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM pg_database WHERE datname LIKE $1")
        .bind(format!("kakeru_bench_{pid}_%"))
        .fetch_one(&mut c)
        .await
        .expect("count databases")
        .get("n");
    assert_eq!(left, 0, "the bench's scratch database is dropped");
}

#[test]
fn control_bench_writes_a_new_sqlite_file_and_removes_it_and_refuses_an_existing_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bench.db");
    let url = format!("sqlite:{}", path.display());
    let (v, _) = short_run(&["--database-url", &url]);
    assert_eq!(v["store"], "sqlite", "{v}");
    assert!(!path.exists(), "the bench's SQLite file is removed");

    std::fs::write(&path, b"someone's data").expect("write a file");
    let (out, _) = control(&["--redis-url", &redis_url(), "--database-url", &url]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--database-url") && err.contains("exists"), "{err}");
    assert_eq!(std::fs::read(&path).expect("still there"), b"someone's data", "an existing file is left alone");
}

#[test]
fn control_bench_takes_no_redis_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_kakeru-bench"))
        .args(["control", "--agents", "10", "--seconds", "1"])
        .env("REDIS_URL", redis_url())
        .output()
        .expect("kakeru-bench runs");
    assert!(!out.status.success(), "ran on the environment's Redis");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--redis-url"), "{err}");
}
