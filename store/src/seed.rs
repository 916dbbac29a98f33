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
