//! `kakeru-bench callbacks`: agents claiming callbacks (折り返し呼) at once through the API, on SQLite
//! and PostgreSQL: every callback taken by exactly one agent (0 double assignments, no 5xx), and the
//! latency of a claim (`POST /callbacks/{id}/assign`), won (200) or lost (409).
//!
//! The floor: `--agents` OP users logged in through the API, `--callbacks` unassigned callbacks.
//! The agents start together in groups of `--contention`; a group's agents walk the same callbacks
//! from the same place, each claiming every one it reaches until it holds its share (callbacks /
//! agents): so every callback is raced for by a group of agents at once, one wins, the others get
//! the 409 and go on to the next.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use serde_json::{json, Value};
use store::sqlx::{self, Row};
use store::Db;

use crate::scratch::Scratch;
use crate::storage::{backends, login, median, percentile, serve_api, StoreArgs};

#[derive(clap::Args, Debug, Clone)]
pub struct CallbacksArgs {
    /// Agents claiming at once.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Unassigned callbacks to claim.
    #[arg(long, default_value_t = 1000)]
    pub callbacks: usize,
    /// Agents racing for the same callbacks (a group starts at the same place).
    #[arg(long, default_value_t = 10)]
    pub contention: usize,
    /// Runs per backend (the median p99 is reported).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// The API's database connections (as `kakeru api --database-pool`; default the store's: 16 on
    /// PostgreSQL, 4 on SQLite).
    #[arg(long)]
    pub database_pool: Option<u32>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// One claim as the agent saw it.
struct Claim {
    callback: i64,
    status: u16,
    ms: f64,
}

/// The tenant, its agents (each with a password hash copied from the first: one argon2 hash), and
/// the callbacks. Returns (agent logins, callback ids).
async fn floor(db: &Db, agents: usize, callbacks: usize) -> anyhow::Result<(Vec<String>, Vec<i64>)> {
    let now = store::now_ms();
    let t = store::tenancy::create_tenant(db, "bench", "bench", "Asia/Tokyo", now).await?;
    let first = store::accounts::create_user(
        db,
        &store::accounts::NewUser {
            tenant_id: t,
            login: "agent0",
            display_name: "agent0",
            role: store::accounts::Role::Op,
            password: "bench-password",
        },
        now,
    )
    .await?;
    let hash: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(first)
        .fetch_one(&db.pool)
        .await?
        .try_get("password_hash")?;
    let mut logins = vec!["agent0".to_string()];
    for i in 1..agents {
        let login = format!("agent{i}");
        sqlx::query(
            "INSERT INTO users (tenant_id, login, display_name, role, password_hash, disabled, created_at, updated_at)
             VALUES ($1, $2, $2, 'OP', $3, 0, $4, $4)",
        )
        .bind(t)
        .bind(&login)
        .bind(&hash)
        .bind(now)
        .execute(&db.pool)
        .await?;
        logins.push(login);
    }
    let mut ids = Vec::with_capacity(callbacks);
    let mut tx = db.begin_write().await?;
    for i in 0..callbacks {
        let id: i64 = sqlx::query(
            "INSERT INTO callbacks (tenant_id, number, registered_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
        )
        .bind(t)
        .bind(format!("03{:08}", i))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok((logins, ids))
}

pub async fn run(args: &CallbacksArgs) -> anyhow::Result<()> {
    if args.agents == 0 || args.callbacks == 0 || args.contention == 0 {
        bail!("--agents, --callbacks and --contention: at least 1");
    }
    let mut results = Vec::new();
    for backend in backends(&args.store.backend)? {
        let mut p99s = Vec::new();
        let mut last = json!({});
        for _ in 0..args.runs {
            let scratch = Scratch::new(backend, &args.store.pg_url).await?;
            store::migrate(&scratch.url).await?;
            let db = Db::connect_pooled(&scratch.url, args.database_pool).await?;
            let (logins, ids) = floor(&db, args.agents, args.callbacks).await?;
            let (base, server) = serve_api(&db).await?;
            let http = reqwest::Client::builder().pool_max_idle_per_host(args.agents).build()?;
            let mut tokens = Vec::new();
            for l in &logins {
                tokens.push(login(&http, &base, l).await?);
            }
            let ids = Arc::new(ids);
            let share = args.callbacks.div_ceil(args.agents);
            let start = Arc::new(tokio::sync::Barrier::new(args.agents));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for (i, token) in tokens.into_iter().enumerate() {
                let (http, base, ids, start) = (http.clone(), base.clone(), ids.clone(), start.clone());
                let groups = args.agents.div_ceil(args.contention);
                let from = (i % groups) * ids.len() / groups;
                tasks.push(tokio::spawn(async move {
                    start.wait().await;
                    let mut claims = Vec::new();
                    let mut won = 0;
                    for k in 0..ids.len() {
                        if won >= share {
                            break;
                        }
                        let id = ids[(from + k) % ids.len()];
                        let t0 = Instant::now();
                        let r = http
                            .post(format!("{base}/callbacks/{id}/assign"))
                            .bearer_auth(&token)
                            .json(&json!({}))
                            .send()
                            .await;
                        let status = match r {
                            Ok(r) => {
                                let s = r.status().as_u16();
                                let _ = r.bytes().await;
                                s
                            }
                            Err(_) => 0,
                        };
                        claims.push(Claim { callback: id, status, ms: t0.elapsed().as_secs_f64() * 1e3 });
                        if status == 200 {
                            won += 1;
                        }
                    }
                    claims
                }));
            }
            let mut claims = Vec::new();
            for t in tasks {
                claims.extend(t.await?);
            }
            let wall = started.elapsed().as_secs_f64();
            let mut wins: HashMap<i64, usize> = HashMap::new();
            let (mut ok, mut conflict, mut other) = (0, 0, 0);
            for c in &claims {
                match c.status {
                    200 => {
                        ok += 1;
                        *wins.entry(c.callback).or_default() += 1;
                    }
                    409 => conflict += 1,
                    _ => other += 1,
                }
            }
            let doubles = wins.values().filter(|n| **n > 1).count();
            let assigned: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM callbacks WHERE assignee_user_id IS NOT NULL AND version = 2")
                    .fetch_one(&db.pool)
                    .await?
                    .try_get("n")?;
            let mut ms: Vec<f64> = claims.iter().map(|c| c.ms).collect();
            ms.sort_by(f64::total_cmp);
            let (p50, p99, max) = (percentile(&ms, 0.5), percentile(&ms, 0.99), ms.last().copied().unwrap_or(0.0));
            p99s.push(p99);
            // The won claims and the lost ones apart: a win does more (the push, the row read back).
            let of = |status: u16| {
                let mut v: Vec<f64> = claims.iter().filter(|c| c.status == status).map(|c| c.ms).collect();
                v.sort_by(f64::total_cmp);
                if v.is_empty() {
                    0.0
                } else {
                    percentile(&v, 0.99)
                }
            };
            let (p99_won, p99_lost) = (of(200), of(409));
            last = json!({"bench": "callbacks", "backend": backend, "agents": args.agents, "callbacks": args.callbacks, "contention": args.contention,
                "claims": claims.len(), "won": ok, "conflicts": conflict, "other_status": other, "double_assignments": doubles,
                "assigned_once_in_sql": assigned, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "wall_s": wall,
                "p99_won_ms": p99_won, "p99_lost_ms": p99_lost});
            if !args.store.json {
                println!(
                    "callbacks {backend:8}: {} agents, {} callbacks: {} claims ({ok} won, {conflict} 409, {other} other) in {wall:.2} s; double assignments {doubles}; assigned once in SQL {assigned}; claim p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
                    args.agents, args.callbacks, claims.len()
                );
            }
            server.abort();
            scratch.finish(db).await;
            if doubles > 0 || other > 0 || ok != args.callbacks || assigned != args.callbacks as i64 {
                bail!("callbacks claimed wrongly: {last}");
            }
        }
        last["p99_ms_median_of_runs"] = json!(median(p99s));
        results.push(last);
    }
    if args.store.json {
        println!("{}", Value::Array(results));
    }
    Ok(())
}
