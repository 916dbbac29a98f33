//! The guards of `POST /auth/login`: attempts per source address and per account (429 with
//! `Retry-After`), and a bound on the argon2 verifications running at once (each takes about
//! 19 MiB and a core for tens of milliseconds), so that a flood of wrong passwords neither grows the
//! process nor starves the other tenants. The lockout itself (ログインロック) is stored with the
//! user (`store::accounts::login_failed`), so that every API process sees it.
//!
//! An attempt is counted when it starts (so a burst of concurrent attempts cannot slip past the
//! limit while the first ones are still being verified) and refunded when it succeeds: the limits
//! count failures and attempts in flight, never a floor's ordinary logins.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// The limits of logins (one set per API process).
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failed (or unfinished) attempts one source address may make per window.
    pub per_source: u32,
    /// Failed (or unfinished) attempts on one account (tenant code and login) per window, from
    /// anywhere.
    pub per_account: u32,
    pub window: Duration,
    /// Consecutive wrong passwords that lock an account until an MGR unlocks it.
    pub lockout_after: i64,
    /// Password verifications running at once.
    pub verifications: usize,
    /// Attempts waiting for a verification; more answer 503 at once.
    pub queue: usize,
    /// How long an attempt waits for a verification before it answers 503.
    pub queue_wait: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_source: 30,
            per_account: 10,
            window: Duration::from_secs(300),
            lockout_after: 5,
            verifications: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8),
            queue: 128,
            queue_wait: Duration::from_secs(5),
        }
    }
}

pub const LOGINS_TOTAL: &str = "kakeru_logins_total";
pub const REFUSED_TOTAL: &str = "kakeru_login_refused_total";
pub const LOCKOUTS_TOTAL: &str = "kakeru_login_lockouts_total";

/// The help texts of the login metrics (once the process's recorder is installed).
fn describe_metrics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            LOGINS_TOTAL,
            "Logins checked, by outcome: ok, failed, locked (the right password of a locked account)."
        );
        metrics::describe_counter!(
            REFUSED_TOTAL,
            "Logins refused before any password check, by limit: source, account (429), busy (503)."
        );
        metrics::describe_counter!(LOCKOUTS_TOTAL, "Accounts locked after consecutive wrong passwords.");
    });
}

/// Keys kept per table; beyond it, expired windows are dropped first, then any one.
const MAX_KEYS: usize = 100_000;

struct Window {
    start: Instant,
    count: u32,
}

/// Fixed windows of attempts per key, bounded in size.
struct Windows<K> {
    map: HashMap<K, Window>,
}

impl<K: Hash + Eq + Clone> Windows<K> {
    fn new() -> Self {
        Windows { map: HashMap::new() }
    }

    /// Counts one attempt for `key`; `Err(seconds)` when the key has used its `limit` in this window.
    fn take(&mut self, key: &K, now: Instant, limit: u32, window: Duration) -> Result<(), u64> {
        if !self.map.contains_key(key) && self.map.len() >= MAX_KEYS {
            self.map.retain(|_, w| now.duration_since(w.start) < window);
            if self.map.len() >= MAX_KEYS {
                if let Some(k) = self.map.keys().next().cloned() {
                    self.map.remove(&k);
                }
            }
        }
        let w = self.map.entry(key.clone()).or_insert(Window { start: now, count: 0 });
        if now.duration_since(w.start) >= window {
            *w = Window { start: now, count: 0 };
        }
        if w.count >= limit {
            let left = window.saturating_sub(now.duration_since(w.start));
            return Err(left.as_secs() + u64::from(left.subsec_nanos() > 0));
        }
        w.count += 1;
        Ok(())
    }

    fn refund(&mut self, key: &K) {
        if let Some(w) = self.map.get_mut(key) {
            w.count = w.count.saturating_sub(1);
        }
    }
}

type AccountKey = (String, String);

struct Inner {
    limits: LoginLimits,
    sources: Mutex<Windows<IpAddr>>,
    accounts: Mutex<Windows<AccountKey>>,
    verify: Semaphore,
    waiting: AtomicUsize,
}

/// The login guards of one API process.
#[derive(Clone)]
pub struct LoginGuard(Arc<Inner>);

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard").field("limits", &self.0.limits).finish_non_exhaustive()
    }
}

impl Default for LoginGuard {
    fn default() -> Self {
        LoginGuard::new(LoginLimits::default())
    }
}

/// One attempt admitted by [`LoginGuard::admit`]; [`Attempt::succeeded`] refunds it.
pub struct Attempt {
    source: Option<IpAddr>,
    account: AccountKey,
}

impl LoginGuard {
    pub fn new(limits: LoginLimits) -> Self {
        let permits = limits.verifications.max(1);
        LoginGuard(Arc::new(Inner {
            limits,
            sources: Mutex::new(Windows::new()),
            accounts: Mutex::new(Windows::new()),
            verify: Semaphore::new(permits),
            waiting: AtomicUsize::new(0),
        }))
    }

    pub fn limits(&self) -> &LoginLimits {
        &self.0.limits
    }

    /// Counts an attempt from `source` on the account; 429 with `Retry-After` when either has used
    /// its attempts of the window.
    pub fn admit(&self, source: Option<IpAddr>, tenant: &str, login: &str) -> ApiResult<Attempt> {
        describe_metrics();
        let l = &self.0.limits;
        let now = Instant::now();
        let account = (tenant.to_string(), login.to_string());
        if let Some(ip) = source {
            let mut s = self.0.sources.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(after) = s.take(&ip, now, l.per_source, l.window) {
                metrics::counter!(REFUSED_TOTAL, "limit" => "source").increment(1);
                return Err(ApiError::too_many(after));
            }
        }
        let mut a = self.0.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(after) = a.take(&account, now, l.per_account, l.window) {
            drop(a);
            if let Some(ip) = source {
                self.0.sources.lock().unwrap_or_else(|p| p.into_inner()).refund(&ip);
            }
            metrics::counter!(REFUSED_TOTAL, "limit" => "account").increment(1);
            return Err(ApiError::too_many(after));
        }
        Ok(Attempt { source, account })
    }

    /// Checks `password` against `hash` on a blocking thread, at most `verifications` at once;
    /// 503 when too many wait or the wait is too long.
    pub async fn verify(&self, password: String, hash: String) -> ApiResult<bool> {
        let inner = &self.0;
        if inner.waiting.fetch_add(1, Ordering::AcqRel) >= inner.limits.queue {
            inner.waiting.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!(REFUSED_TOTAL, "limit" => "busy").increment(1);
            return Err(ApiError::busy(1));
        }
        let permit = tokio::time::timeout(inner.limits.queue_wait, inner.verify.acquire()).await;
        inner.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(Ok(permit)) = permit else {
            metrics::counter!(REFUSED_TOTAL, "limit" => "busy").increment(1);
            return Err(ApiError::busy(1));
        };
        let ok = tokio::task::spawn_blocking(move || store::accounts::verify_password(&password, &hash))
            .await
            .map_err(|_| ApiError::internal())?;
        drop(permit);
        Ok(ok)
    }

    /// Forgets the account's attempts of the window (an MGR lifted its lock).
    pub fn forget_account(&self, tenant: &str, login: &str) {
        let key = (tenant.to_string(), login.to_string());
        self.0.accounts.lock().unwrap_or_else(|p| p.into_inner()).map.remove(&key);
    }

    /// A successful login: its attempt does not count against the source or the account.
    pub fn succeeded(&self, attempt: Attempt) {
        if let Some(ip) = attempt.source {
            self.0.sources.lock().unwrap_or_else(|p| p.into_inner()).refund(&ip);
        }
        self.0.accounts.lock().unwrap_or_else(|p| p.into_inner()).refund(&attempt.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_after_its_limit_and_says_when_to_come_back() {
        let mut w = Windows::new();
        let t0 = Instant::now();
        let win = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(w.take(&1u8, t0, 3, win).is_ok());
        }
        assert_eq!(w.take(&1u8, t0 + Duration::from_secs(20), 3, win), Err(40));
        // Another key is not affected; a refund gives one back; a new window starts afresh.
        assert!(w.take(&2u8, t0, 3, win).is_ok());
        w.refund(&1u8);
        assert!(w.take(&1u8, t0, 3, win).is_ok());
        assert!(w.take(&1u8, t0 + win, 3, win).is_ok());
    }

    #[test]
    fn the_tables_stay_bounded() {
        let mut w = Windows::new();
        let t0 = Instant::now();
        for k in 0..(MAX_KEYS as u32 + 10) {
            let _ = w.take(&k, t0, 1, Duration::from_secs(60));
        }
        assert!(w.map.len() <= MAX_KEYS);
    }
}
