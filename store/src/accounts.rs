//! Tenants' users, roles, argon2 password hashes and expiring bearer tokens.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Db, Result, StoreError};

/// The five roles of SPEC 3 (CALLTREE names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// System admin: everything, including delete.
    #[serde(rename = "MGR")]
    Mgr,
    /// Supervisor: manages campaigns, lists and agents below MGR; no destructive admin.
    #[serde(rename = "SV")]
    Sv,
    /// Operator (agent): works calls.
    #[serde(rename = "OP")]
    Op,
    /// Business / report viewer: results and reports only.
    #[serde(rename = "BIZ")]
    Biz,
    /// Back office: edits granted lists, adds lead history; no calls.
    #[serde(rename = "BY")]
    By,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Mgr, Role::Sv, Role::Op, Role::Biz, Role::By];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Mgr => "MGR",
            Role::Sv => "SV",
            Role::Op => "OP",
            Role::Biz => "BIZ",
            Role::By => "BY",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Invariant: hashing with the default parameters and a fresh salt cannot fail.
        .expect("argon2 hashing with default parameters")
}

/// Checks a password against a stored PHC string; a malformed hash never verifies.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A valid argon2 hash of nothing anyone knows, for checking unknown logins in the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_secret(16)))
}

/// A random printable secret (tokens, generated passwords).
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who a valid bearer token speaks for.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: i64,
    pub user_id: i64,
    pub role: Role,
    pub login: String,
    pub time_zone: String,
    /// The tenant's history retention R in days (batch date rules).
    pub retention_days: i64,
    /// The SHA-256 of the bearer token this principal came with (`None` at login).
    pub session_hash: Option<String>,
}

pub struct NewUser<'a> {
    pub tenant_id: i64,
    pub login: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub password: &'a str,
}

pub async fn create_user(db: &Db, u: &NewUser<'_>, now_ms: i64) -> Result<i64> {
    let hash = hash_password(u.password);
    let row = sqlx::query(
        "INSERT INTO users (tenant_id, login, display_name, role, password_hash, disabled, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6, $6) RETURNING id",
    )
    .bind(u.tenant_id)
    .bind(u.login)
    .bind(u.display_name)
    .bind(u.role.as_str())
    .bind(hash)
    .bind(now_ms)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get("id")?)
}

/// Sets a user's password (argon2) within its tenant.
pub async fn set_password(db: &Db, tenant_id: i64, user_id: i64, password: &str, now_ms: i64) -> Result<()> {
    let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND tenant_id = $4")
        .bind(hash_password(password))
        .bind(now_ms)
        .bind(user_id)
        .bind(tenant_id)
        .execute(&db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A login ID as CloudCallCenter 11.1 sets it: 3 to 15 half-width letters and digits.
pub fn login_id_ok(login: &str) -> bool {
    (3..=15).contains(&login.len()) && login.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A password as CloudCallCenter 11.1 sets it: at least 8 characters with half-width digits,
/// upper-case and lower-case letters, all three.
pub fn password_ok(password: &str) -> bool {
    password.chars().count() >= 8
        && password.bytes().any(|b| b.is_ascii_digit())
        && password.bytes().any(|b| b.is_ascii_uppercase())
        && password.bytes().any(|b| b.is_ascii_lowercase())
}

/// A random password that meets [`password_ok`]: 16 characters of upper and lower case letters and
/// digits (without the look-alikes 0/O, 1/l/I), at least one of each.
pub fn random_password() -> String {
    const SETS: [&[u8]; 3] = [b"ABCDEFGHJKLMNPQRSTUVWXYZ", b"abcdefghijkmnopqrstuvwxyz", b"23456789"];
    let mut rng = rand::thread_rng();
    let mut pick = |set: &[u8]| set[(rng.next_u32() as usize) % set.len()] as char;
    let all: Vec<u8> = SETS.concat();
    let mut out: Vec<char> = SETS.iter().map(|s| pick(s)).collect();
    while out.len() < 16 {
        out.push(pick(&all));
    }
    // Shuffle so the first three are not always upper, lower, digit.
    for i in (1..out.len()).rev() {
        let j = (rand::thread_rng().next_u32() as usize) % (i + 1);
        out.swap(i, j);
    }
    out.into_iter().collect()
}

/// What a login attempt found: the tenant of the code, and the user of the login if there is one.
pub struct LoginCandidate {
    pub tenant_id: i64,
    /// The tenant's token lifetime.
    pub session_ttl_ms: i64,
    pub user: Option<CandidateUser>,
}

pub struct CandidateUser {
    pub principal: Principal,
    pub password_hash: String,
    pub disabled: bool,
    /// ログインロック: refused until an MGR unlocks it.
    pub locked: bool,
}

/// The tenant of `tenant_code` and its user `login`; `None` when there is no such tenant.
pub async fn login_candidate(db: &Db, tenant_code: &str, login: &str) -> Result<Option<LoginCandidate>> {
    let row = sqlx::query(
        "SELECT t.id AS tenant_id, t.time_zone, t.history_retention_days, t.session_ttl_minutes,
                u.id AS user_id, u.role, u.password_hash, u.disabled, u.locked_at
         FROM tenants t LEFT JOIN users u ON u.tenant_id = t.id AND u.login = $2
         WHERE t.code = $1",
    )
    .bind(tenant_code)
    .bind(login)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let tenant_id: i64 = r.try_get("tenant_id")?;
    let user = match r.try_get::<Option<i64>, _>("user_id")? {
        None => None,
        Some(user_id) => Some(CandidateUser {
            principal: Principal {
                tenant_id,
                user_id,
                role: Role::parse(&r.try_get::<String, _>("role")?)
                    .ok_or_else(|| StoreError::Constraint("role".into()))?,
                login: login.to_string(),
                time_zone: r.try_get("time_zone")?,
                retention_days: r.try_get("history_retention_days")?,
                session_hash: None,
            },
            password_hash: r.try_get("password_hash")?,
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            locked: r.try_get::<Option<i64>, _>("locked_at")?.is_some(),
        }),
    };
    Ok(Some(LoginCandidate {
        tenant_id,
        session_ttl_ms: r.try_get::<i64, _>("session_ttl_minutes")?.saturating_mul(60_000),
        user,
    }))
}

/// The hash an unknown login is checked against, so that logins cannot be probed by timing.
pub fn unknown_login_hash() -> &'static str {
    dummy_hash()
}

/// Counts a wrong password against a user; at `lockout_after` consecutive failures the user is
/// locked (ログインロック). Returns true when this failure locked it.
pub async fn login_failed(db: &Db, tenant_id: i64, user_id: i64, lockout_after: i64, now_ms: i64) -> Result<bool> {
    let failed: i64 = sqlx::query(
        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 AND tenant_id = $2 RETURNING failed_logins",
    )
    .bind(user_id)
    .bind(tenant_id)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| r.try_get("failed_logins"))
    .transpose()?
    .unwrap_or(0);
    if failed < lockout_after {
        return Ok(false);
    }
    let done = sqlx::query("UPDATE users SET locked_at = $1 WHERE id = $2 AND tenant_id = $3 AND locked_at IS NULL")
        .bind(now_ms)
        .bind(user_id)
        .bind(tenant_id)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a new session for `p` valid for `ttl_ms` and clears its count of failed logins; returns
/// the token and its expiry.
pub async fn open_session(db: &Db, p: &Principal, now_ms: i64, ttl_ms: i64) -> Result<(String, i64)> {
    let token = random_secret(32);
    let expires_at = now_ms + ttl_ms;
    sqlx::query(
        "INSERT INTO sessions (token_hash, tenant_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(p.tenant_id)
    .bind(p.user_id)
    .bind(now_ms)
    .bind(expires_at)
    .execute(&db.pool)
    .await?;
    sqlx::query("UPDATE users SET failed_logins = 0 WHERE id = $1 AND tenant_id = $2 AND failed_logins <> 0")
        .bind(p.user_id)
        .bind(p.tenant_id)
        .execute(&db.pool)
        .await?;
    Ok((token, expires_at))
}

/// Lifts a user's ログインロック and clears its failures; `NotFound` if no such user in the tenant.
/// Returns whether it was locked.
pub async fn unlock(db: &Db, tenant_id: i64, user_id: i64) -> Result<bool> {
    let row = sqlx::query("SELECT locked_at FROM users WHERE id = $1 AND tenant_id = $2")
        .bind(user_id)
        .bind(tenant_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    let was_locked = row.try_get::<Option<i64>, _>("locked_at")?.is_some();
    sqlx::query("UPDATE users SET locked_at = NULL, failed_logins = 0 WHERE id = $1 AND tenant_id = $2")
        .bind(user_id)
        .bind(tenant_id)
        .execute(&db.pool)
        .await?;
    Ok(was_locked)
}

/// Ends a user's sessions, but the one whose token hash is `keep` (the caller's own, when users
/// change their own password). Returns how many ended.
pub async fn end_sessions(db: &Db, tenant_id: i64, user_id: i64, keep: Option<&str>) -> Result<u64> {
    let r = sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND token_hash <> $3")
        .bind(tenant_id)
        .bind(user_id)
        .bind(keep.unwrap_or(""))
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected())
}

/// Checks tenant code, login and password; on success stores a new session valid for `ttl_ms` and
/// returns its token. Wrong tenant, unknown login, disabled or locked user and wrong password all
/// answer `NotFound` alike. (No limits, no lockout: the API's login adds them.)
pub async fn login(
    db: &Db,
    tenant_code: &str,
    login: &str,
    password: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<(String, i64, Principal)> {
    let candidate = login_candidate(db, tenant_code, login).await?;
    let user = candidate.and_then(|c| c.user);
    let hash = user.as_ref().map_or_else(|| dummy_hash().to_string(), |u| u.password_hash.clone());
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| StoreError::Config(format!("password check: {e}")))?;
    match user {
        Some(u) if ok && !u.disabled && !u.locked => {
            let (token, expires_at) = open_session(db, &u.principal, now_ms, ttl_ms).await?;
            Ok((token, expires_at, u.principal))
        }
        _ => Err(StoreError::NotFound),
    }
}

/// Resolves a bearer token; expired tokens and tokens of disabled users resolve to nothing.
pub async fn authenticate(db: &Db, token: &str, now_ms: i64) -> Result<Option<Principal>> {
    authenticate_session(db, &token_hash(token), now_ms).await
}

/// Resolves a session by the SHA-256 of its token (as stored).
pub async fn authenticate_session(db: &Db, session_hash: &str, now_ms: i64) -> Result<Option<Principal>> {
    let row = sqlx::query(
        "SELECT u.id, u.tenant_id, u.role, u.login, u.disabled, t.time_zone, t.history_retention_days
         FROM sessions s JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id
         JOIN tenants t ON t.id = s.tenant_id
         WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(session_hash)
    .bind(now_ms)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<i64, _>("disabled")? != 0 {
        return Ok(None);
    }
    let Some(role) = Role::parse(&row.try_get::<String, _>("role")?) else { return Ok(None) };
    Ok(Some(Principal {
        tenant_id: row.try_get("tenant_id")?,
        user_id: row.try_get("id")?,
        role,
        login: row.try_get("login")?,
        time_zone: row.try_get("time_zone")?,
        retention_days: row.try_get("history_retention_days")?,
        session_hash: Some(session_hash.to_string()),
    }))
}

/// Ends one session (logout).
pub async fn logout(db: &Db, token: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash(token)).execute(&db.pool).await?;
    Ok(())
}

/// Deletes expired sessions; returns how many.
pub async fn purge_expired_sessions(db: &Db, now_ms: i64) -> Result<u64> {
    let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now_ms).execute(&db.pool).await?;
    Ok(r.rows_affected())
}

/// SIP digest HA1 values for an agent's phone: H(username:realm:password) in MD5 (RFC 2617, what most
/// phones use) and SHA-256 (RFC 8760).
pub fn digest_ha1(username: &str, realm: &str, password: &str) -> (String, String) {
    use md5::Md5;
    let input = format!("{username}:{realm}:{password}");
    (hex::encode(Md5::digest(input.as_bytes())), hex::encode(Sha256::digest(input.as_bytes())))
}

/// One column of a user of the tenant, `None` for no such user.
async fn user_column(db: &Db, tenant_id: i64, user_id: i64, column: UserColumn) -> Result<Option<String>> {
    let sql = match column {
        UserColumn::Role => "SELECT role AS v FROM users WHERE id = $1 AND tenant_id = $2",
        UserColumn::Login => "SELECT login AS v FROM users WHERE id = $1 AND tenant_id = $2",
        UserColumn::PhoneKind => "SELECT phone_kind AS v FROM users WHERE id = $1 AND tenant_id = $2",
    };
    let r = sqlx::query(sql).bind(user_id).bind(tenant_id).fetch_optional(&db.pool).await?;
    Ok(match r {
        Some(r) => Some(r.try_get("v")?),
        None => None,
    })
}

enum UserColumn {
    Role,
    Login,
    PhoneKind,
}

/// Whether the user is the tenant's.
pub async fn user_exists(db: &Db, tenant_id: i64, user_id: i64) -> Result<bool> {
    crate::found(db, "SELECT id FROM users WHERE id = $1 AND tenant_id = $2", user_id, tenant_id).await
}

/// A user's role as stored (`MGR`, `SV`, `OP`, ...), `None` for no such user of the tenant.
pub async fn role_of(db: &Db, tenant_id: i64, user_id: i64) -> Result<Option<String>> {
    user_column(db, tenant_id, user_id, UserColumn::Role).await
}

/// A user's login, `None` for no such user of the tenant.
pub async fn login_of(db: &Db, tenant_id: i64, user_id: i64) -> Result<Option<String>> {
    user_column(db, tenant_id, user_id, UserColumn::Login).await
}

/// A user's phone kind (`sip` or `browser`), `None` for no such user of the tenant.
pub async fn phone_kind_of(db: &Db, tenant_id: i64, user_id: i64) -> Result<Option<String>> {
    user_column(db, tenant_id, user_id, UserColumn::PhoneKind).await
}

/// Whether the user has a phone account (SIP) of the tenant.
pub async fn has_phone(db: &Db, tenant_id: i64, user_id: i64) -> Result<bool> {
    crate::found(db, "SELECT id FROM phones WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id).await
}

/// A phone account's SIP user name, `None` for no such phone of the tenant.
pub async fn sip_username_of(db: &Db, tenant_id: i64, phone_id: i64) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT sip_username FROM phones WHERE id = $1 AND tenant_id = $2")
        .bind(phone_id)
        .bind(tenant_id)
        .fetch_optional(&db.pool)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3creT", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn ha1_known_value() {
        // RFC 2617 3.5 example: Mufasa / testrealm@host.com / Circle Of Life.
        let (md5, sha) = digest_ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(md5, "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(sha.len(), 64);
    }
}
