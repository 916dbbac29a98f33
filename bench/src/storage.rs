//! Storage benches: CSV lead import (50,000 CP932 rows, 1% bad) and the selection of a call job's
//! next dialable leads over a 200,000-lead list, on SQLite and PostgreSQL in the same run.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use store::sqlx::{self, Row};

use crate::scratch::Scratch;
use store::Db;

/// The backends a storage bench runs on, and how it reports.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// sqlite, postgres or both.
    #[arg(long, default_value = "both")]
    pub backend: String,
    /// PostgreSQL server for the bench's scratch databases.
    #[arg(long, env = "KAKERU_BENCH_PG_URL", default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres")]
    pub pg_url: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// Rows per upload.
    #[arg(long, default_value_t = 50_000)]
    pub rows: usize,
    /// Share of bad rows, in percent.
    #[arg(long, default_value_t = 1.0)]
    pub bad_pct: f64,
    /// Uploads per backend (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Uploads at once in each run, each into a list of its own batch; another tenant writes
    /// meanwhile (`--other-every-ms`) and the latency of its writes is reported.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// How often the other tenant writes (one short write transaction: a campaign's update).
    #[arg(long, default_value_t = 20)]
    pub other_every_ms: u64,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct LeadsArgs {
    /// Leads in the list.
    #[arg(long, default_value_t = 200_000)]
    pub leads: i64,
    /// Selections timed per backend.
    #[arg(long, default_value_t = 500)]
    pub iterations: usize,
    /// Leads per selection.
    #[arg(long, default_value_t = 100)]
    pub batch: i64,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub(crate) fn backends(which: &str) -> anyhow::Result<Vec<&'static str>> {
    Ok(match which {
        "both" => vec!["sqlite", "postgres"],
        "sqlite" => vec!["sqlite"],
        "postgres" => vec!["postgres"],
        other => bail!("--backend: sqlite, postgres or both (got {other})"),
    })
}

impl Scratch {
    pub(crate) async fn new(backend: &str, pg_url: &str) -> anyhow::Result<Scratch> {
        if backend == "sqlite" {
            Scratch::temporary_sqlite()
        } else {
            Scratch::postgres(pg_url).await
        }
    }
}

/// Tenant, MGR login, campaign, batch and list; returns (tenant id, list id, batch id, campaign id).
async fn scaffold(db: &Db) -> anyhow::Result<(i64, i64, i64, i64)> {
    let now = store::now_ms();
    let t = store::tenancy::create_tenant(db, "bench", "bench", "Asia/Tokyo", now).await?;
    store::accounts::create_user(
        db,
        &store::accounts::NewUser {
            tenant_id: t,
            login: "mgr",
            display_name: "mgr",
            role: store::accounts::Role::Mgr,
            password: "bench-password",
        },
        now,
    )
    .await?;
    let c: i64 = sqlx::query(
        "INSERT INTO campaigns (tenant_id, name, created_at, updated_at) VALUES ($1, 'bench', $2, $2) RETURNING id",
    )
    .bind(t)
    .bind(now)
    .fetch_one(&db.pool)
    .await?
    .try_get("id")?;
    let b: i64 = sqlx::query("INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at) VALUES ($1, $2, 'b', '2026-01-01', '2026-12-31', $3) RETURNING id")
        .bind(t)
        .bind(c)
        .bind(now)
        .fetch_one(&db.pool)
        .await?
        .try_get("id")?;
    let l: i64 = sqlx::query(
        "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, 'l', $3) RETURNING id",
    )
    .bind(t)
    .bind(b)
    .bind(now)
    .fetch_one(&db.pool)
    .await?
    .try_get("id")?;
    Ok((t, l, b, c))
}

/// A CP932 lead file with `bad_pct` percent of rows broken in varied ways.
pub fn cp932_file(rows: usize, bad_pct: f64, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut s = String::with_capacity(rows * 64);
    s.push_str("name,kana,tel,remarks\r\n");
    for i in 0..rows {
        let bad = rng.gen_bool(bad_pct / 100.0);
        let tel = format!("0{}{:08}", [3, 6, 90, 80][i % 4], i);
        match (bad, i % 4) {
            (false, _) => s.push_str(&format!("山田 太郎{i},ヤマダ タロウ,{tel},\"備考です。\\n二行目 {i}\"\r\n")),
            (true, 0) => s.push_str(&format!(",ヤマダ,{tel},\r\n")),
            (true, 1) => s.push_str(&format!("山田{i},ヤマダ,12345,\r\n")),
            (true, 2) => s.push_str(&format!("山田{i},ヤマダ,03-abc,\r\n")),
            (true, _) => s.push_str(&format!("山田{i},ヤマダ\r\n")),
        }
    }
    encoding_rs::SHIFT_JIS.encode(&s).0.into_owned()
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `kakeru-bench import`: end to end through the HTTP API (upload, spool, parse, one transaction).
/// An API server over `db` on a free local port: its base URL, and the handle that stops it.
pub async fn serve_api(db: &Db) -> anyhow::Result<(String, tokio::task::AbortHandle)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = api::build(db.clone(), api::Config::default());
    let server = tokio::spawn(async move { api::serve(listener, app, std::future::pending()).await });
    Ok((base, server.abort_handle()))
}

/// Logs the bench tenant's `login` in with the bench password: its token.
pub async fn login(http: &reqwest::Client, base: &str, login: &str) -> anyhow::Result<String> {
    let v: Value = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"tenant": "bench", "login": login, "password": "bench-password"}))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["token"].as_str().context("login")?.to_string())
}

pub async fn run_import(args: &ImportArgs) -> anyhow::Result<()> {
    let file = cp932_file(args.rows, args.bad_pct, 7);
    let mut results = Vec::new();
    for backend in backends(&args.store.backend)? {
        let mut times = Vec::new();
        let mut imported = 0;
        let mut rejected = 0;
        let mut other_ms = Vec::new();
        for _ in 0..args.runs {
            let scratch = Scratch::new(backend, &args.store.pg_url).await?;
            let db = Db::connect(&scratch.url).await?;
            let (tenant, list, _, campaign) = scaffold(&db).await?;
            let mut lists = vec![list];
            for _ in 1..args.parallel {
                lists.push(another_list(&db, tenant, campaign).await?);
            }
            let other = other_tenant(&db).await?;
            let (base, server) = serve_api(&db).await?;
            let http = reqwest::Client::new();
            let token = login(&http, &base, "mgr").await?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let probe = tokio::spawn(other_writes(db.clone(), other, args.other_every_ms, stop.clone()));
            let started = Instant::now();
            let uploads = lists.iter().map(|&list| upload_and_wait(&http, &base, &token, list, file.clone()));
            let statuses = futures::future::try_join_all(uploads).await?;
            let secs = started.elapsed().as_secs_f64();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            other_ms.extend(probe.await??);
            for status in &statuses {
                if status["status"] != "done" {
                    bail!("import failed: {status}");
                }
                imported = status["imported_rows"].as_i64().unwrap_or(0);
                rejected = status["rejected_rows"].as_i64().unwrap_or(0);
            }
            times.push(secs);
            server.abort();
            scratch.finish(db).await;
        }
        other_ms.sort_by(f64::total_cmp);
        let (p50, p99, max) = if other_ms.is_empty() {
            (0.0, 0.0, 0.0)
        } else {
            (percentile(&other_ms, 0.5), percentile(&other_ms, 0.99), other_ms[other_ms.len() - 1])
        };
        let r = json!({"bench": "import", "backend": backend, "rows": args.rows, "bad_pct": args.bad_pct, "runs": args.runs,
            "parallel": args.parallel, "seconds_median": median(times.clone()), "seconds_min": times.iter().cloned().fold(f64::MAX, f64::min),
            "imported": imported, "rejected": rejected, "file_bytes": file.len(),
            "other_writes": other_ms.len(), "other_p50_ms": p50, "other_p99_ms": p99, "other_max_ms": max});
        if !args.store.json {
            println!("import {backend:8}: {} x {} rows ({} bad) CP932 {:.1} MB at once: median {:.2} s over {} runs (imported {imported}, rejected {rejected} each)",
                args.parallel, args.rows, rejected, file.len() as f64 / 1e6, r["seconds_median"].as_f64().unwrap_or(0.0), args.runs);
            println!(
                "  another tenant's writes meanwhile: {} writes, p50 {p50:.1} ms  p99 {p99:.1} ms  max {max:.1} ms",
                other_ms.len()
            );
        }
        results.push(r);
    }
    if args.store.json {
        println!("{}", Value::Array(results));
    }
    Ok(())
}

/// Uploads `file` into `list` and polls the job until it ends: its final status.
async fn upload_and_wait(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    list: i64,
    file: Vec<u8>,
) -> anyhow::Result<Value> {
    let job: Value = http
        .post(format!("{base}/lists/{list}/imports"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(file)
        .send()
        .await?
        .json()
        .await?;
    let id = job["id"].as_i64().with_context(|| format!("import id: {job}"))?;
    loop {
        let v: Value = http.get(format!("{base}/imports/{id}")).bearer_auth(token).send().await?.json().await?;
        if v["status"] == "done" || v["status"] == "failed" {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A list in a batch of its own under the bench tenant's campaign.
async fn another_list(db: &Db, tenant: i64, campaign: i64) -> anyhow::Result<i64> {
    let b: i64 = sqlx::query("INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at) VALUES ($1, $2, 'b', '2026-01-01', '2026-12-31', 0) RETURNING id")
        .bind(tenant)
        .bind(campaign)
        .fetch_one(&db.pool)
        .await?
        .try_get("id")?;
    Ok(sqlx::query(
        "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, 'l', 0) RETURNING id",
    )
    .bind(tenant)
    .bind(b)
    .fetch_one(&db.pool)
    .await?
    .try_get("id")?)
}

/// Another tenant and its campaign: (tenant, campaign).
async fn other_tenant(db: &Db) -> anyhow::Result<(i64, i64)> {
    let t = store::tenancy::create_tenant(db, "other", "other", "Asia/Tokyo", 0).await?;
    let c: i64 = sqlx::query(
        "INSERT INTO campaigns (tenant_id, name, created_at, updated_at) VALUES ($1, 'o', 0, 0) RETURNING id",
    )
    .bind(t)
    .fetch_one(&db.pool)
    .await?
    .try_get("id")?;
    Ok((t, c))
}

/// The other tenant's writes, one every `every_ms` until `stop`: each one's milliseconds from
/// asking for the write transaction to its commit.
async fn other_writes(
    db: Db,
    (tenant, campaign): (i64, i64),
    every_ms: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Vec<f64>> {
    let mut ms = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let t = Instant::now();
        let mut tx = db.begin_write().await?;
        sqlx::query("UPDATE campaigns SET updated_at = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(store::now_ms())
            .bind(campaign)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(ms)
}

/// `kakeru-bench leads`: p50/p99 of selecting the next dialable leads of a call job.
pub async fn run_leads(args: &LeadsArgs) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for backend in backends(&args.store.backend)? {
        let scratch = Scratch::new(backend, &args.store.pg_url).await?;
        let db = Db::connect(&scratch.url).await?;
        let (t, list, batch, campaign) = scaffold(&db).await?;
        let fill = if backend == "postgres" {
            "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, attempts, last_attempt_at, created_at)
             SELECT $1, $2, $3, 'n', 'k', '03' || lpad(i::text, 8, '0'), CASE WHEN i % 3 = 0 THEN 'mobile' ELSE 'fixed' END,
                    i % 5, CASE WHEN i % 5 = 0 THEN NULL ELSE 1000 * (i % 1000) END, 0 FROM generate_series(1, $4) AS i"
        } else {
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $4)
             INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, attempts, last_attempt_at, created_at)
             SELECT $1, $2, $3, 'n', 'k', '03' || printf('%08d', i), CASE WHEN i % 3 = 0 THEN 'mobile' ELSE 'fixed' END,
                    i % 5, CASE WHEN i % 5 = 0 THEN NULL ELSE 1000 * (i % 1000) END, 0 FROM s"
        };
        sqlx::query(fill).bind(t).bind(list).bind(batch).bind(args.leads).execute(&db.pool).await?;
        let now = store::now_ms();
        // 500 due scheduled recalls and 500 agent-owned ones scattered through the list.
        for i in 0..1000i64 {
            let lead = 1 + (i * 397) % args.leads;
            let (due, agent) = if i % 2 == 0 { (Some(now - 1000 * i), None) } else { (None, Some(1i64)) };
            sqlx::query("INSERT INTO recalls (tenant_id, lead_id, campaign_id, due_at, agent_user_id, created_at) VALUES ($1, $2, $3, $4, $5, 0)")
                .bind(t)
                .bind(lead)
                .bind(campaign)
                .bind(due)
                .bind(agent)
                .execute(&db.pool)
                .await?;
        }
        let group: i64 =
            sqlx::query("INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, 'g', 0) RETURNING id")
                .bind(t)
                .fetch_one(&db.pool)
                .await?
                .try_get("id")?;
        let job: i64 = sqlx::query(
            "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, phone_type, attempts_min, attempts_max, last_attempt_from, last_attempt_to, created_at)
             VALUES ($1, $2, $3, 'j', 'fixed', 1, 3, 0, 900000, 0) RETURNING id",
        )
        .bind(t)
        .bind(campaign)
        .bind(group)
        .fetch_one(&db.pool)
        .await?
        .try_get("id")?;
        sqlx::query("INSERT INTO call_job_lists (tenant_id, job_id, list_id) VALUES ($1, $2, $3)")
            .bind(t)
            .bind(job)
            .bind(list)
            .execute(&db.pool)
            .await?;
        sqlx::query("ANALYZE").execute(&db.pool).await?;
        let filter = store::leads::job_filter(&db, t, job).await?;
        let mut ms = Vec::with_capacity(args.iterations);
        let mut got = 0;
        for _ in 0..args.iterations {
            let start = Instant::now();
            let c = store::leads::next_dialable(&db, t, job, &filter, now, args.batch).await?;
            ms.push(start.elapsed().as_secs_f64() * 1000.0);
            got = c.len();
        }
        ms.sort_by(f64::total_cmp);
        let r = json!({"bench": "next_dialable", "backend": backend, "leads": args.leads, "batch": args.batch, "iterations": args.iterations,
            "selected": got, "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99), "max_ms": ms[ms.len() - 1]});
        if !args.store.json {
            println!(
                "next {} dialable of {} leads {backend:8}: p50 {:.2} ms  p99 {:.2} ms  ({} selections, {} returned)",
                args.batch,
                args.leads,
                r["p50_ms"].as_f64().unwrap_or(0.0),
                r["p99_ms"].as_f64().unwrap_or(0.0),
                args.iterations,
                got
            );
        }
        results.push(r);
        scratch.finish(db).await;
    }
    if args.store.json {
        println!("{}", Value::Array(results));
    }
    Ok(())
}
