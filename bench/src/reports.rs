//! `kakeru-bench reports`: a floor's history (call records over `--days` days for `--agents`
//! agents, and their state transitions) generated in the database, the rollups rebuilt from it,
//! then each report over 31 days through the HTTP API (p50/p99), and a 31-day call-history CSV
//! streamed (rows a second, the process's resident memory while it streams).

use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use store::sqlx::{self, Row};
use store::Db;

use crate::scratch::Scratch;
use crate::storage::{backends, percentile, StoreArgs};

#[derive(clap::Args, Debug, Clone)]
pub struct ReportsArgs {
    /// Call records in the history.
    #[arg(long, default_value_t = 1_000_000)]
    pub calls: i64,
    /// Agent state transitions (default: 30 % of the calls).
    #[arg(long)]
    pub transitions: Option<i64>,
    #[arg(long, default_value_t = 2_000)]
    pub agents: i64,
    #[arg(long, default_value_t = 90)]
    pub days: i64,
    #[arg(long, default_value_t = 10)]
    pub campaigns: i64,
    /// Requests per report.
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    #[command(flatten)]
    pub store: StoreArgs,
}

const DAY_MS: i64 = 86_400_000;

/// The rows 1..=n of a generated series, as each backend writes it: (before the INSERT, FROM).
fn series(backend: &str) -> (&'static str, &'static str) {
    if backend == "postgres" {
        ("", "generate_series(1, $1) AS s(i)")
    } else {
        ("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1) ", "s")
    }
}

async fn base(db: &Db, table: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query(&format!("SELECT MIN(id) AS m FROM {table}")).fetch_one(&db.pool).await?.try_get("m")?)
}

/// The floor: tenant, MGR, agents, campaigns with a group, job, batch and list each, then the
/// history. Returns (tenant, the last day's start in ms).
async fn generate(db: &Db, backend: &str, a: &ReportsArgs) -> anyhow::Result<(i64, i64)> {
    let now = store::now_ms();
    let tz = chrono_tz::Asia::Tokyo;
    let t = store::tenancy::create_tenant(db, "bench", "bench", "Asia/Tokyo", now).await?;
    let user = |login: &str, role| store::accounts::NewUser {
        tenant_id: t,
        login: Box::leak(login.to_owned().into_boxed_str()),
        display_name: Box::leak(login.to_owned().into_boxed_str()),
        role,
        password: "bench-password",
    };
    store::accounts::create_user(db, &user("mgr", store::accounts::Role::Mgr), now).await?;
    let (w, s) = series(backend);
    // Agents share one password hash (argon2 for each of 2,000 would only time argon2).
    sqlx::query(&format!(
        "{w}INSERT INTO users (tenant_id, login, display_name, role, password_hash, created_at, updated_at)
         SELECT $2, 'op' || CAST(i AS TEXT), 'op' || CAST(i AS TEXT), 'OP', 'x', 0, 0 FROM {s}"
    ))
    .bind(a.agents)
    .bind(t)
    .execute(&db.pool)
    .await?;
    let agent0: i64 =
        sqlx::query("SELECT MIN(id) AS m FROM users WHERE role = 'OP'").fetch_one(&db.pool).await?.try_get("m")?;
    for sql in [
        "INSERT INTO campaigns (tenant_id, name, caller_id, created_at, updated_at) SELECT $2, 'c' || CAST(i AS TEXT), '030000' || CAST(i AS TEXT), 0, 0 FROM {S}",
        "INSERT INTO dialing_groups (tenant_id, name, created_at) SELECT $2, 'g' || CAST(i AS TEXT), 0 FROM {S}",
    ] {
        sqlx::query(&format!("{w}{}", sql.replace("{S}", s))).bind(a.campaigns).bind(t).execute(&db.pool).await?;
    }
    let (c0, g0) = (base(db, "campaigns").await?, base(db, "dialing_groups").await?);
    for sql in [
        "INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at) SELECT $2, $3 + i - 1, 'b', '2026-01-01', '2027-12-31', 0 FROM {S}",
        "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, created_at) SELECT $2, $3 + i - 1, $4 + i - 1, 'j', 0 FROM {S}",
    ] {
        sqlx::query(&format!("{w}{}", sql.replace("{S}", s)))
            .bind(a.campaigns)
            .bind(t)
            .bind(c0)
            .bind(g0)
            .execute(&db.pool)
            .await?;
    }
    let b0 = base(db, "batches").await?;
    sqlx::query(&format!(
        "{w}INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) SELECT $2, $3 + i - 1, 'l', 0 FROM {s}"
    ))
    .bind(a.campaigns)
    .bind(t)
    .bind(b0)
    .execute(&db.pool)
    .await?;
    let (j0, l0) = (base(db, "call_jobs").await?, base(db, "customer_lists").await?);
    // The history ends yesterday; its first day is `days` before.
    let today = store::tenancy::local_date(tz, now);
    let first = store::tenancy::local_midnight_ms(tz, today - chrono::Duration::days(a.days));
    let span = a.days * DAY_MS;
    // Calls: 3 in 10 not answered (busy), 1 abandoned, 1 released at the wait limit, 5 talk
    // 0-5 minutes with one of the agents; calls spread evenly over the span.
    let started = format!("($2 + (i - 1) * {} / $1 + (i % 977) * 7)", span);
    let sql = format!(
        "{w}INSERT INTO call_records (tenant_id, campaign_id, call_job_id, lead_id, tel, caller_id, direction, started_at,
            answered_at, bridged_at, agent_user_id, ended_at, result, list_id)
         SELECT $3, $4 + i % $6, $7 + i % $6, 1 + i % ($1 / 3 + 1), '090' || CAST(i AS TEXT), '030000' || CAST(1 + i % $6 AS TEXT), 'outbound',
            {started},
            CASE WHEN i % 10 < 3 THEN NULL ELSE {started} + 8000 END,
            CASE WHEN i % 10 < 5 THEN NULL ELSE {started} + 9000 END,
            CASE WHEN i % 10 < 5 THEN NULL ELSE $5 + i % $8 END,
            CASE WHEN i % 10 < 3 THEN {started} + 6000 WHEN i % 10 = 3 THEN {started} + 11000 WHEN i % 10 = 4 THEN {started} + 28000
                 ELSE {started} + 9000 + (i % 300) * 1000 END,
            CASE WHEN i % 10 < 3 THEN 'busy' WHEN i % 10 < 5 THEN 'abandoned' ELSE 'no_entry' END,
            $9 + i % $6
         FROM {s}"
    );
    let chunk = 500_000;
    let mut done = 0;
    while done < a.calls {
        let n = chunk.min(a.calls - done);
        // Each chunk is its own series: i runs over the whole history through an offset.
        let q = sql
            .replace("i %", "(i + $10) %")
            .replace("(i - 1)", "(i + $10 - 1)")
            .replace("CAST(i AS TEXT)", "CAST(i + $10 AS TEXT)");
        let q = q.replace("$1 / 3", "$11 / 3").replace("/ $1 +", "/ $11 +");
        sqlx::query(&q)
            .bind(n)
            .bind(first)
            .bind(t)
            .bind(c0)
            .bind(agent0)
            .bind(a.campaigns)
            .bind(j0)
            .bind(a.agents)
            .bind(l0)
            .bind(done)
            .bind(a.calls)
            .execute(&db.pool)
            .await
            .context("calls")?;
        done += n;
    }
    // Transitions: each agent works 09:00-18:00 every day of the span: `k` transitions a day
    // cycling ready → ringing → talking → wrap_up → paused, the day's last one to offline.
    let m = a.transitions.unwrap_or(a.calls * 3 / 10);
    let k = (m / a.agents / a.days).max(2);
    let q = "((i - 1) / $3)";
    let pos = format!("({q} % {k})");
    let states = format!(
        "CASE WHEN {pos} = {last} THEN 'offline' ELSE CASE {pos} % 5 WHEN 0 THEN 'ready' WHEN 1 THEN 'ringing'
           WHEN 2 THEN 'talking' WHEN 3 THEN 'wrap_up' ELSE 'paused' END END",
        last = k - 1
    );
    sqlx::query(&format!(
        "{w}INSERT INTO agent_transitions (tenant_id, agent_user_id, from_state, to_state, cause, at, message_id)
         SELECT $2, $4 + i % $3, 'ready', {states}, 'bench',
            $5 + ({q} / {k}) * {DAY_MS} + 32400000 + {pos} * (32400000 / {k}) + (i % $3) * 13, 'bench' FROM {s}"
    ))
    .bind(a.agents * k * a.days)
    .bind(t)
    .bind(a.agents)
    .bind(agent0)
    .bind(first)
    .execute(&db.pool)
    .await
    .context("transitions")?;
    if backend == "postgres" {
        sqlx::query("ANALYZE").execute(&db.pool).await?;
    }
    Ok((t, store::tenancy::local_midnight_ms(tz, today - chrono::Duration::days(1))))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub async fn run(args: &ReportsArgs) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for backend in backends(&args.store.backend)? {
        let scratch = Scratch::new(backend, &args.store.pg_url).await?;
        let db = Db::connect(&scratch.url).await?;
        let started = Instant::now();
        let (tenant, _) = generate(&db, backend, args).await?;
        let generate_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let rebuilt = store::rollups::rebuild(&db, tenant, store::now_ms()).await?;
        let rebuild_s = started.elapsed().as_secs_f64();
        let rollup_rows: i64 =
            sqlx::query("SELECT (SELECT COUNT(*) FROM rollup_calls) + (SELECT COUNT(*) FROM rollup_agent_days) + (SELECT COUNT(*) FROM rollup_states) AS n")
                .fetch_one(&db.pool)
                .await?
                .try_get("n")?;
        let started = Instant::now();
        let refreshed = store::rollups::refresh(&db, tenant, store::now_ms()).await?;
        let refresh_ms = started.elapsed().as_secs_f64() * 1000.0;

        let (base, server) = crate::storage::serve_api(&db).await?;
        let http = reqwest::Client::new();
        let token = crate::storage::login(&http, &base, "mgr").await?;
        let tz = chrono_tz::Asia::Tokyo;
        let today = store::tenancy::local_date(tz, store::now_ms());
        let (from, to) = (today - chrono::Duration::days(31), today - chrono::Duration::days(1));
        let range = format!("from={from}&to={to}");
        let reports = [
            format!("/reports/groups?{range}"),
            format!("/reports/groups?{range}&by=hour"),
            format!("/reports/groups?{range}&by=agent"),
            format!("/reports/campaigns?{range}"),
            format!("/reports/campaigns?{range}&by=agent&show=percent"),
            format!("/reports/numbers?{range}"),
            format!("/reports/states?{range}&by=hour&show=seconds"),
            format!("/reports/states?from={to}&to={to}&hour=9&hours=8"),
            format!("/reports/lists?date={to}"),
            format!("/reports/outbound?{range}"),
        ];
        let mut timings = Vec::new();
        for path in &reports {
            let mut ms = Vec::with_capacity(args.iterations);
            for _ in 0..args.iterations {
                let t0 = Instant::now();
                let r = http.get(format!("{base}{path}")).bearer_auth(&token).send().await?;
                anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
                r.bytes().await?;
                ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(f64::total_cmp);
            timings.push(json!({"report": path, "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99)}));
        }
        // The 31-day call history as CSV, streamed.
        let rss_before = rss_kib();
        let mut rss_max = rss_before;
        let t0 = Instant::now();
        let mut resp = http.get(format!("{base}/call-history.csv?{range}")).bearer_auth(&token).send().await?;
        anyhow::ensure!(resp.status().is_success(), "csv: {}", resp.status());
        let (mut bytes, mut rows) = (0usize, 0usize);
        while let Some(chunk) = resp.chunk().await? {
            bytes += chunk.len();
            rows += chunk.iter().filter(|b| **b == b'\n').count();
            rss_max = rss_max.max(rss_kib());
        }
        let csv_s = t0.elapsed().as_secs_f64();
        server.abort();
        let r = json!({"bench": "reports", "backend": backend, "calls": args.calls, "agents": args.agents, "days": args.days,
            "transitions": args.transitions.unwrap_or(args.calls * 3 / 10), "generate_s": generate_s,
            "rebuild_s": rebuild_s, "rebuilt_days": rebuilt.days.len(), "rollup_rows": rollup_rows,
            "refresh_ms": refresh_ms, "refreshed_days": refreshed.days.len(), "reports": timings,
            "csv": {"rows": rows.saturating_sub(1), "bytes": bytes, "seconds": csv_s, "rows_per_s": rows as f64 / csv_s,
                "rss_before_kib": rss_before, "rss_max_kib": rss_max}});
        if args.store.json {
            println!("{r}");
        } else {
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        results.push(r);
        scratch.finish(db).await;
    }
    Ok(())
}
