//! The audit trail of logins, failures, lockouts and the account changes that end sessions
//! (`audit_events`), which MGR reads through `GET /audit-events`.

use crate::{Db, Result};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A successful login.
    Login,
    /// A refused login (wrong password, unknown login, disabled or locked user).
    LoginFailed,
    /// ログインロック: the account was locked after repeated wrong passwords.
    Locked,
    /// An MGR lifted the lock.
    Unlocked,
    /// The password was set by someone (the user's other sessions ended).
    PasswordChanged,
    /// The user was disabled (its sessions ended for good).
    Disabled,
}

impl AuditKind {
    pub const ALL: [AuditKind; 6] = [
        AuditKind::Login,
        AuditKind::LoginFailed,
        AuditKind::Locked,
        AuditKind::Unlocked,
        AuditKind::PasswordChanged,
        AuditKind::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Login => "login",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::Locked => "locked",
            AuditKind::Unlocked => "unlocked",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::Disabled => "disabled",
        }
    }
}

/// Longest login kept as typed (a failure may carry anything).
pub const LOGIN_MAX_CHARS: usize = 64;

/// One event of the trail.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub tenant_id: i64,
    pub kind: AuditKind,
    /// The account concerned, when it exists.
    pub user_id: Option<i64>,
    /// The login as typed or as stored.
    pub login: &'a str,
    /// The client's address (`-` when unknown).
    pub source: &'a str,
    /// Who did it, for changes made by another user (an MGR's unlock).
    pub actor_user_id: Option<i64>,
}

pub async fn record(db: &Db, e: &AuditEvent<'_>, now_ms: i64) -> Result<()> {
    let login: String = e.login.chars().filter(|c| !c.is_control()).take(LOGIN_MAX_CHARS).collect();
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, kind, user_id, login, source, actor_user_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.tenant_id)
    .bind(e.kind.as_str())
    .bind(e.user_id)
    .bind(login)
    .bind(e.source)
    .bind(e.actor_user_id)
    .bind(now_ms)
    .execute(&db.pool)
    .await?;
    Ok(())
}
