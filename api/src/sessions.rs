//! The bearer sessions this process resolved in the last second, so that a burst of requests
//! with one token reads its session from SQL once, not once per request.
//!
//! What a cached entry can get wrong is bounded by its age (1 s by default): every change this
//! process makes to users, sessions or the tenant's settings empties the cache at once (logout, a
//! new password, disabling, a role, the time zone, a deleted user), so on this process
//! such a change holds from the next request; on another API process of the same tenant it holds
//! within the age. A session that expires on its own is refused at most that age late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::accounts::Principal;

/// The most sessions kept; past it the expired ones go, then all.
const MAX_ENTRIES: usize = 100_000;

/// Cloned, it is the same cache (the process's one).
#[derive(Clone)]
pub struct SessionCache {
    ttl: Duration,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (Principal, Instant)>,
    /// Bumped by every [`SessionCache::clear`]: a session read before a clear is not kept after it.
    generation: u64,
}

impl std::fmt::Debug for SessionCache {
    /// The age and the count only: the keys are token hashes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.lock().map_or(0, |m| m.entries.len());
        f.debug_struct("SessionCache").field("ttl", &self.ttl).field("entries", &n).finish()
    }
}

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache::new(Duration::from_secs(1))
    }
}

impl SessionCache {
    /// A cache whose entries live `ttl` (zero: nothing is kept, every request reads SQL).
    pub fn new(ttl: Duration) -> Self {
        SessionCache { ttl, inner: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The principal of the session whose token hash is `hash`, if resolved within the age.
    pub fn get(&self, hash: &str, now: Instant) -> Option<Principal> {
        let inner = self.lock();
        let (p, at) = inner.entries.get(hash)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| p.clone())
    }

    /// Take before reading a session from SQL, and hand to [`SessionCache::put`].
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps a session read from SQL, unless the cache was cleared since `generation` was taken
    /// (the read may be older than the change that cleared it).
    pub fn put(&self, hash: String, p: Principal, generation: u64, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let map = &mut inner.entries;
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < self.ttl);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(hash, (p, now));
    }

    /// Forgets every session: called on every change this process makes to who may do what.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::accounts::Role;

    fn principal() -> Principal {
        Principal {
            tenant_id: 1,
            user_id: 2,
            role: Role::Op,
            login: "op".into(),
            time_zone: "Asia/Tokyo".into(),
            retention_days: 30,
            session_hash: Some("h".into()),
        }
    }

    #[test]
    fn an_entry_lives_its_age_and_a_change_forgets_all() {
        let c = SessionCache::new(Duration::from_millis(1000));
        let t0 = Instant::now();
        c.put("h".into(), principal(), c.generation(), t0);
        assert_eq!(c.get("h", t0 + Duration::from_millis(999)).map(|p| p.user_id), Some(2));
        assert!(c.get("h", t0 + Duration::from_millis(1000)).is_none(), "past its age");
        assert!(c.get("other", t0).is_none());
        let before = c.generation();
        c.clear();
        assert!(c.get("h", t0).is_none(), "cleared");
        // Read before the clear, kept after it: not kept.
        c.put("h".into(), principal(), before, t0);
        assert!(c.get("h", t0).is_none(), "a read older than the clear is not kept");
    }

    #[test]
    fn zero_age_keeps_nothing_and_the_map_is_bounded() {
        let off = SessionCache::new(Duration::ZERO);
        let t0 = Instant::now();
        off.put("h".into(), principal(), off.generation(), t0);
        assert!(off.get("h", t0).is_none());
        let c = SessionCache::new(Duration::from_secs(1));
        for i in 0..MAX_ENTRIES + 10 {
            c.put(format!("h{i}"), principal(), 0, t0);
        }
        let n = c.lock().entries.len();
        assert!(n <= MAX_ENTRIES, "{n} entries");
        assert!(c.get(&format!("h{}", MAX_ENTRIES + 9), t0).is_some(), "the newest is kept");
    }
}
