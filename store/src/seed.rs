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
    let password = accounts::random_secret(8);
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
