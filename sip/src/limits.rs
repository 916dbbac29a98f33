//! Limits on failed digest authentication, per source address and per account, as a sans-IO table
//! (time arrives as `now`; nothing here reads a clock).
//!
//! A failure is a wrong response (a password guess), an unknown user or a malformed Authorization:
//! what a guesser produces. A stale nonce is not one (the password was right), nor is a request
//! without credentials (every phone starts that way).
//!
//! - **Per source**: `failures` within `window` from one address (an IPv6 address counts by its /64,
//!   which one attacker holds whole) ban it for `ban`, doubled for each ban in a row up to `max_ban`;
//!   while banned its requests are refused before any digest work.
//! - **Per account**: `failures` within `window` against one account, from any sources, lock the
//!   account for new sources for `ban` (doubling likewise): the caller lets through the addresses the
//!   account is registered from, so a phone already working keeps working while a guesser spread
//!   over many addresses is held off.
//!
//! Both tables are bounded: when one is full, entries whose window has passed (and that are not
//! banned) go first, then the oldest unbanned ones; a table full of bans tracks nothing new.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;
use std::time::Instant;

/// One limit: `failures` within `window` start a ban of `ban`, doubled per ban in a row up to `max_ban`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub failures: u32,
    pub window: Duration,
    pub ban: Duration,
    pub max_ban: Duration,
}

/// The limits of a registrar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    pub per_source: Rule,
    pub per_account: Rule,
    /// Most source addresses tracked at once.
    pub max_sources: usize,
    /// Most accounts tracked at once.
    pub max_accounts: usize,
}

impl Default for LimitConfig {
    /// 5 failures a minute ban an address for 5 minutes (then 10, 20, ... up to an hour); 20 failures
    /// in 10 minutes lock an account for new addresses for 10 minutes (then 20, 40, up to an hour).
    fn default() -> Self {
        LimitConfig {
            per_source: Rule {
                failures: 5,
                window: Duration::from_secs(60),
                ban: Duration::from_secs(300),
                max_ban: Duration::from_secs(3600),
            },
            per_account: Rule {
                failures: 20,
                window: Duration::from_secs(600),
                ban: Duration::from_secs(600),
                max_ban: Duration::from_secs(3600),
            },
            max_sources: 65_536,
            max_accounts: 65_536,
        }
    }
}

/// What a source address counts as: an IPv4 address, or an IPv6 address's /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
    /// Bans in a row (reset once a ban has been over for `max_ban`).
    strikes: u32,
}

/// One bounded table of counters.
#[derive(Debug, Clone)]
struct Table<K> {
    rule: Rule,
    max: usize,
    map: HashMap<K, Counter>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(rule: Rule, max: usize) -> Table<K> {
        Table { rule, max: max.max(1), map: HashMap::new() }
    }

    fn banned_until(&self, now: Instant, k: &K) -> Option<Instant> {
        self.map.get(k)?.banned_until.filter(|u| *u > now)
    }

    /// Counts one failure; returns the end of the ban it starts, if it starts one.
    fn failure(&mut self, now: Instant, k: &K) -> Option<Instant> {
        if !self.map.contains_key(k) && self.map.len() >= self.max {
            self.make_room(now);
            if self.map.len() >= self.max {
                return None;
            }
        }
        let rule = self.rule;
        let c = self.map.entry(k.clone()).or_insert(Counter {
            failures: 0,
            window_start: now,
            banned_until: None,
            strikes: 0,
        });
        if c.banned_until.is_some_and(|u| u > now) {
            return None;
        }
        if c.banned_until.is_some_and(|u| now.saturating_duration_since(u) >= rule.max_ban) {
            c.strikes = 0;
        }
        if now.saturating_duration_since(c.window_start) >= rule.window {
            c.failures = 0;
            c.window_start = now;
        }
        c.failures += 1;
        if c.failures < rule.failures.max(1) {
            return None;
        }
        let ban = rule.ban.saturating_mul(1u32 << c.strikes.min(16)).min(rule.max_ban.max(rule.ban));
        c.failures = 0;
        c.strikes = c.strikes.saturating_add(1);
        c.banned_until = Some(now + ban);
        c.banned_until
    }

    fn make_room(&mut self, now: Instant) {
        let window = self.rule.window;
        let live = |c: &Counter| {
            c.banned_until.is_some_and(|u| u > now) || now.saturating_duration_since(c.window_start) < window
        };
        self.map.retain(|_, c| live(c));
        let keep = self.max - self.max / 8;
        if self.map.len() <= keep {
            return;
        }
        let mut unbanned: Vec<(Instant, K)> = self
            .map
            .iter()
            .filter(|(_, c)| c.banned_until.is_none_or(|u| u <= now))
            .map(|(k, c)| (c.window_start, k.clone()))
            .collect();
        unbanned.sort_by_key(|(at, _)| *at);
        let excess = self.map.len() - keep;
        for (_, k) in unbanned.into_iter().take(excess) {
            self.map.remove(&k);
        }
    }
}

/// Why a request was refused before its credentials were looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its source address is banned until then.
    Source(Instant),
    /// Its account is locked for new addresses until then.
    Account(Instant),
}

/// Bans that one failure started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewBans {
    pub source: Option<Instant>,
    pub account: Option<Instant>,
}

/// The two tables; `A` names an account.
#[derive(Debug, Clone)]
pub struct AuthLimits<A> {
    sources: Table<IpAddr>,
    accounts: Table<A>,
}

impl<A: Hash + Eq + Clone> AuthLimits<A> {
    pub fn new(cfg: LimitConfig) -> AuthLimits<A> {
        AuthLimits {
            sources: Table::new(cfg.per_source, cfg.max_sources),
            accounts: Table::new(cfg.per_account, cfg.max_accounts),
        }
    }

    /// Whether requests from `ip` are refused now.
    pub fn check_source(&self, now: Instant, ip: IpAddr) -> Result<(), Refused> {
        match self.sources.banned_until(now, &source_key(ip)) {
            Some(u) => Err(Refused::Source(u)),
            None => Ok(()),
        }
    }

    /// Whether `account` is locked for addresses it is not registered from.
    pub fn check_account(&self, now: Instant, account: &A) -> Result<(), Refused> {
        match self.accounts.banned_until(now, account) {
            Some(u) => Err(Refused::Account(u)),
            None => Ok(()),
        }
    }

    /// Counts a failure from `ip` against `account` (when the credentials named an existing one).
    pub fn failure(&mut self, now: Instant, ip: IpAddr, account: Option<&A>) -> NewBans {
        NewBans {
            source: self.sources.failure(now, &source_key(ip)),
            account: account.and_then(|a| self.accounts.failure(now, a)),
        }
    }

    /// Source addresses and accounts tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        (self.sources.map.len(), self.accounts.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LimitConfig {
        LimitConfig { max_sources: 16, max_accounts: 4, ..LimitConfig::default() }
    }

    #[test]
    fn a_source_is_banned_after_five_failures_and_longer_each_time() {
        let t0 = Instant::now();
        let mut l: AuthLimits<u32> = AuthLimits::new(cfg());
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        for i in 0..4 {
            assert_eq!(l.failure(t0, ip, None), NewBans::default(), "failure {i}");
            assert_eq!(l.check_source(t0, ip), Ok(()));
        }
        let until = l.failure(t0, ip, None).source.expect("the fifth bans");
        assert_eq!(until, t0 + Duration::from_secs(300));
        assert_eq!(l.check_source(t0 + Duration::from_secs(299), ip), Err(Refused::Source(until)));
        // Another address is not affected; an IPv6 address counts by its /64.
        assert_eq!(l.check_source(t0, "192.0.2.8".parse().expect("ip")), Ok(()));
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        for _ in 0..5 {
            l.failure(t0, a, None);
        }
        assert!(l.check_source(t0, b).is_err(), "the whole /64");
        // After the ban, five more failures ban for twice as long.
        let t1 = until;
        assert_eq!(l.check_source(t1, ip), Ok(()));
        for _ in 0..4 {
            l.failure(t1, ip, None);
        }
        assert_eq!(l.failure(t1, ip, None).source, Some(t1 + Duration::from_secs(600)));
        // Failures spread wider than the window never ban.
        let slow: IpAddr = "192.0.2.9".parse().expect("ip");
        for i in 0..20u64 {
            assert_eq!(l.failure(t0 + Duration::from_secs(61 * i), slow, None).source, None);
        }
    }

    #[test]
    fn an_account_locks_after_failures_from_many_addresses() {
        let t0 = Instant::now();
        let mut l: AuthLimits<u32> = AuthLimits::new(cfg());
        let mut locked = None;
        for i in 0..20u8 {
            // Four failures each from five addresses: no address is banned.
            let ip = IpAddr::from([198, 51, 100, i / 4]);
            let b = l.failure(t0, ip, Some(&7));
            assert_eq!(b.source, None);
            locked = locked.or(b.account);
        }
        assert_eq!(locked, Some(t0 + Duration::from_secs(600)));
        assert_eq!(l.check_account(t0, &7), Err(Refused::Account(t0 + Duration::from_secs(600))));
        assert_eq!(l.check_account(t0, &8), Ok(()));
    }

    #[test]
    fn tables_are_bounded_and_keep_their_bans() {
        let t0 = Instant::now();
        let mut l: AuthLimits<u32> = AuthLimits::new(cfg());
        let banned: IpAddr = "203.0.113.1".parse().expect("ip");
        for _ in 0..5 {
            l.failure(t0, banned, None);
        }
        // A flood of spoofed addresses, each failing once.
        for i in 0..10_000u32 {
            let ip = IpAddr::from((0x0A00_0000 + i).to_be_bytes());
            l.failure(t0 + Duration::from_millis(u64::from(i)), ip, Some(&(i % 100)));
            assert!(l.tracked().0 <= 16 && l.tracked().1 <= 4);
        }
        assert!(l.check_source(t0 + Duration::from_secs(20), banned).is_err(), "the ban survived the flood");
    }
}
