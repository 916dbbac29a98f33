//! The demo tenant that the embedded default starts with.

use sqlx::Row;

use crate::accounts::{self, NewUser, Role};
use crate::{tenancy, Db, Result};

pub const DEMO_TENANT: &str = "demo";
pub const DEMO_LOGIN: &str = "admin";

pub struct DemoLogin {
    pub tenant: String,
    pub login: String,
    pub password: String,
}

/// Creates the demo tenant and its MGR user if missing, with a few pause reasons, and gives the
/// user a fresh random password (printed by the caller: only its hash is stored).
pub async fn ensure_demo_tenant(db: &Db, now_ms: i64) -> Result<DemoLogin> {
    let existing =
        sqlx::query("SELECT id FROM tenants WHERE code = $1").bind(DEMO_TENANT).fetch_optional(&db.pool).await?;
    let tenant_id: i64 = match existing {
        Some(r) => r.try_get("id")?,
        None => {
            let id = tenancy::create_tenant(db, DEMO_TENANT, "デモ株式会社", "Asia/Tokyo", now_ms).await?;
            for (i, (name, color)) in
                [("昼休憩", "#f4a261"), ("離席", "#e76f51"), ("研修", "#2a9d8f")].iter().enumerate()
            {
                sqlx::query("INSERT INTO pause_reasons (tenant_id, name, color, position, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id)
                    .bind(*name)
                    .bind(*color)
                    .bind(i as i64)
                    .bind(now_ms)
                    .execute(&db.pool)
                    .await?;
            }
            id
        }
    };
    // The demo floor works every day, national holidays included (a setting of the tenant).
    tenancy::set_national_holidays(db, tenant_id, false).await?;
    let password = accounts::random_password();
    let user = sqlx::query("SELECT id FROM users WHERE tenant_id = $1 AND login = $2")
        .bind(tenant_id)
        .bind(DEMO_LOGIN)
        .fetch_optional(&db.pool)
        .await?;
    match user {
        Some(r) => accounts::set_password(db, tenant_id, r.try_get("id")?, &password, now_ms).await?,
        None => {
            accounts::create_user(
                db,
                &NewUser {
                    tenant_id, login: DEMO_LOGIN, display_name: "管理者", role: Role::Mgr, password: &password
                },
                now_ms,
            )
            .await?;
        }
    }
    Ok(DemoLogin { tenant: DEMO_TENANT.into(), login: DEMO_LOGIN.into(), password })
}

/// Bench and test floors: `n` OP users `agent<i>` of `tenant_id` that cannot log in with a
/// password (a placeholder hash), each with a bearer session valid for `ttl_ms`. Returns
/// (user id, bearer token) per agent. Many rows per statement; one transaction.
pub async fn bench_agents(db: &Db, tenant_id: i64, n: usize, now_ms: i64, ttl_ms: i64) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::with_capacity(n);
    let mut tx = db.begin_write().await?;
    for i in 0..n {
        let id: i64 = sqlx::query(
            "INSERT INTO users (tenant_id, login, display_name, role, password_hash, created_at, updated_at)
             VALUES ($1, $2, $2, 'OP', '-', $3, $3) RETURNING id",
        )
        .bind(tenant_id)
        .bind(format!("agent{i}"))
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let token = crate::accounts::random_secret(32);
        sqlx::query(
            "INSERT INTO sessions (token_hash, tenant_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(crate::accounts::token_hash(&token))
        .bind(tenant_id)
        .bind(id)
        .bind(now_ms)
        .bind(now_ms + ttl_ms)
        .execute(&mut *tx)
        .await?;
        out.push((id, token));
    }
    tx.commit().await?;
    Ok(out)
}

/// A pause reason for a bench floor; returns its id.
pub async fn bench_pause_reason(db: &Db, tenant_id: i64, now_ms: i64) -> Result<i64> {
    Ok(sqlx::query("INSERT INTO pause_reasons (tenant_id, name, created_at) VALUES ($1, 'away', $2) RETURNING id")
        .bind(tenant_id)
        .bind(now_ms)
        .fetch_one(&db.pool)
        .await?
        .try_get("id")?)
}

/// Agent transitions stored for a tenant (benches wait on it).
pub async fn transitions(db: &Db, tenant_id: i64) -> Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM agent_transitions WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?)
}

// ------------------------------------------------------------------------------------ `kakeru demo`

/// The demo floor's fixed parts, made once and set as a run wants them (`demo_floor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoFloor {
    pub tenant_id: i64,
    pub tenant_code: String,
    pub time_zone: String,
    pub dialing_group_id: i64,
    pub campaign_id: i64,
    /// The campaign's result numbers the simulated agents save.
    pub result_codes: Vec<i64>,
}

/// The demo tenant's dialing group `group` and predictive campaign `campaign` (made once), the
/// campaign set as a run wants it (`max_channels`, the pacing simulator's ring timeout, dials all
/// day) with its four results; jobs an earlier run left running (it was killed) are stopped, so
/// that only this run's dials.
pub async fn demo_floor(db: &Db, group: &str, campaign: &str, max_channels: i64, now_ms: i64) -> Result<DemoFloor> {
    let pool = &db.pool;
    let tenant = sqlx::query("SELECT id, code, time_zone FROM tenants WHERE code = $1")
        .bind(DEMO_TENANT)
        .fetch_one(pool)
        .await?;
    let tenant_id: i64 = tenant.try_get("id")?;
    sqlx::query("UPDATE call_jobs SET status = 'stopped' WHERE tenant_id = $1 AND status = 'running'")
        .bind(tenant_id)
        .execute(pool)
        .await?;
    let group_id = match sqlx::query_scalar("SELECT id FROM dialing_groups WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(group)
        .fetch_optional(pool)
        .await?
    {
        Some(id) => id,
        None => {
            sqlx::query("INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, $2, $3) RETURNING id")
                .bind(tenant_id)
                .bind(group)
                .bind(now_ms)
                .fetch_one(pool)
                .await?
                .try_get("id")?
        }
    };
    let campaign_id = match sqlx::query_scalar("SELECT id FROM campaigns WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(campaign)
        .fetch_optional(pool)
        .await?
    {
        Some(id) => id,
        None => sqlx::query(
            "INSERT INTO campaigns (tenant_id, name, mode, created_at, updated_at) VALUES ($1, $2, 'predictive', $3, $3) RETURNING id",
        )
        .bind(tenant_id)
        .bind(campaign)
        .bind(now_ms)
        .fetch_one(pool)
        .await?
        .try_get("id")?,
    };
    sqlx::query(
        "UPDATE campaigns SET mode = 'predictive', enabled = 1, max_channels = $1, ring_timeout_s = 20, agent_wait_timeout_s = 20,
            acw_enabled = 1, acw_seconds = 60, business_start = '00:00', business_end = '23:59', abandon_target_pct = 3.0,
            updated_at = $2
         WHERE id = $3 AND tenant_id = $4",
    )
    .bind(max_channels)
    .bind(now_ms)
    .bind(campaign_id)
    .bind(tenant_id)
    .execute(pool)
    .await?;
    let mut result_codes = Vec::new();
    for (n, label) in [(1, "アポ獲得"), (2, "検討中"), (3, "不要"), (4, "再架電")] {
        sqlx::query(
            "INSERT INTO result_codes (tenant_id, campaign_id, number, label, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (campaign_id, number) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(campaign_id)
        .bind(n)
        .bind(label)
        .bind(now_ms)
        .execute(pool)
        .await?;
        result_codes.push(n);
    }
    Ok(DemoFloor {
        tenant_id,
        tenant_code: tenant.try_get("code")?,
        time_zone: tenant.try_get("time_zone")?,
        dialing_group_id: group_id,
        campaign_id,
        result_codes,
    })
}

/// A demo agent (OP) `login` of the floor's dialing group, made once; its phone kind (`sip` or
/// `browser`) as this run wants it. Its id; its password is set by [`demo_credentials`].
pub async fn demo_agent(
    db: &Db,
    floor: &DemoFloor,
    login: &str,
    display_name: &str,
    phone_kind: &str,
    now_ms: i64,
) -> Result<i64> {
    let (pool, tenant_id) = (&db.pool, floor.tenant_id);
    let existing = sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND login = $2")
        .bind(tenant_id)
        .bind(login)
        .fetch_optional(pool)
        .await?;
    let user_id: i64 = match existing {
        Some(id) => id,
        // A placeholder hash: the real one is set with every other password.
        None => sqlx::query(
            "INSERT INTO users (tenant_id, login, display_name, role, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, 'OP', '-', $4, $4) RETURNING id",
        )
        .bind(tenant_id)
        .bind(login)
        .bind(display_name)
        .bind(now_ms)
        .fetch_one(pool)
        .await?
        .try_get("id")?,
    };
    sqlx::query("UPDATE users SET phone_kind = $1 WHERE id = $2 AND tenant_id = $3")
        .bind(phone_kind)
        .bind(user_id)
        .bind(tenant_id)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO dialing_group_agents (tenant_id, group_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(floor.dialing_group_id)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(user_id)
}

/// A demo agent's fresh credentials: the argon2 hash of its password and the digest HA1s of its
/// SIP phone (user name = login).
#[derive(Debug, Clone)]
pub struct DemoCredentials<'a> {
    pub user_id: i64,
    pub login: &'a str,
    pub password_hash: &'a str,
    pub ha1_md5: &'a str,
    pub ha1_sha256: &'a str,
}

/// Sets every agent's credentials (and enables them), making their phones where missing, in one
/// writing transaction.
pub async fn demo_credentials(db: &Db, floor: &DemoFloor, agents: &[DemoCredentials<'_>], now_ms: i64) -> Result<()> {
    let tenant_id = floor.tenant_id;
    let mut tx = db.begin_write().await?;
    for a in agents {
        sqlx::query(
            "UPDATE users SET password_hash = $1, disabled = 0, updated_at = $2 WHERE id = $3 AND tenant_id = $4",
        )
        .bind(a.password_hash)
        .bind(now_ms)
        .bind(a.user_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    }
    for a in agents {
        let updated =
            sqlx::query("UPDATE phones SET ha1_md5 = $1, ha1_sha256 = $2 WHERE tenant_id = $3 AND user_id = $4")
                .bind(a.ha1_md5)
                .bind(a.ha1_sha256)
                .bind(tenant_id)
                .bind(a.user_id)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO phones (tenant_id, user_id, sip_username, realm, ha1_md5, ha1_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant_id)
            .bind(a.user_id)
            .bind(a.login)
            .bind(&floor.tenant_code)
            .bind(a.ha1_md5)
            .bind(a.ha1_sha256)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// One run's work: a batch (実施期間 `start_date` to `end_date`), a list of mobile numbers and a
/// stopped call job over it; every `dnc_every`-th number is on the do-not-call list (発信規制).
#[derive(Debug, Clone)]
pub struct DemoRun<'a> {
    /// The batch's, the list's and the job's names carry it.
    pub stamp: &'a str,
    pub start_date: &'a str,
    pub end_date: &'a str,
    pub numbers: &'a [String],
    pub dnc_every: usize,
}

/// Makes the run's batch, list and call job; the job's id.
pub async fn demo_run(db: &Db, floor: &DemoFloor, run: &DemoRun<'_>, now_ms: i64) -> Result<i64> {
    let (pool, tenant_id) = (&db.pool, floor.tenant_id);
    let batch: i64 = sqlx::query(
        "INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(tenant_id)
    .bind(floor.campaign_id)
    .bind(format!("デモ {}", run.stamp))
    .bind(run.start_date)
    .bind(run.end_date)
    .bind(now_ms)
    .fetch_one(pool)
    .await?
    .try_get("id")?;
    let list: i64 = sqlx::query(
        "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(tenant_id)
    .bind(batch)
    .bind(format!("デモリスト {}", run.stamp))
    .bind(now_ms)
    .fetch_one(pool)
    .await?
    .try_get("id")?;
    let mut tx = db.begin_write().await?;
    // Many rows per INSERT: 64 leads are 512 parameters, within SQLite's 999.
    const ROWS: usize = 64;
    for (c, chunk) in run.numbers.chunks(ROWS).enumerate() {
        let sql = format!(
            "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, created_at) VALUES {}",
            crate::placeholders(db.backend, chunk.len(), 8)
        );
        let mut q = sqlx::query(&sql);
        for (r, tel) in chunk.iter().enumerate() {
            let n = c * ROWS + r + 1;
            q = q
                .bind(tenant_id)
                .bind(list)
                .bind(batch)
                .bind(format!("顧客{n:05}"))
                .bind(format!("コキャク{n:05}"))
                .bind(tel.as_str())
                .bind("mobile")
                .bind(now_ms);
        }
        q.execute(&mut *tx).await?;
    }
    for tel in run.numbers.iter().skip(run.dnc_every.saturating_sub(1)).step_by(run.dnc_every.max(1)) {
        sqlx::query(
            "INSERT INTO dnc_numbers (tenant_id, number, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(tel.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    let job: i64 = sqlx::query(
        "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, status, created_at) VALUES ($1, $2, $3, $4, 'stopped', $5) RETURNING id",
    )
    .bind(tenant_id)
    .bind(floor.campaign_id)
    .bind(floor.dialing_group_id)
    .bind(format!("デモ {}", run.stamp))
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    sqlx::query("INSERT INTO call_job_lists (tenant_id, job_id, list_id) VALUES ($1, $2, $3)")
        .bind(tenant_id)
        .bind(job)
        .bind(list)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(job)
}
