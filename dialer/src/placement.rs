//! Placement of campaigns on dialer hosts, on leases ([`store::leases`]): which campaigns this host
//! takes, keeps and gives up. A sans-IO core: it reads no clock and touches no database; a round
//! gives it what the database holds ([`View`]) and it answers with [`Action`]s, whose outcomes
//! come back as inputs. The driver ([`crate::engine`]) runs a round every [`PlacementConfig::every`].
//!
//! # Policy
//! - A lease is held for `ttl` past the moment its last renewal was *sent* (this host's monotonic
//!   clock): when that passes without a renewal answered, the campaign is lost here at once, before
//!   the database says anything ([`Placement::expire`]), so a host cut off stops dialling before
//!   another may take its campaigns (the database lets a lease be taken only after its `ttl` on
//!   the holder's clock, and a write under a taken lease is refused whatever the clocks say).
//! - Spreading: the wanted campaigns (those with a running job), sorted, are dealt round-robin
//!   over the members alive, sorted: the one dealt a free campaign takes it at once, the next one a
//!   round later, and so on, so a campaign whose preferred host is gone still finds a holder within
//!   `ttl` plus a few rounds. Campaigns held are never moved while their holder lives (a move would
//!   end its calls and set its agents' legs up again); a campaign whose jobs all stopped is given up
//!   once this host has no call in it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// A campaign of a tenant.
pub type Key = (u64, u64);

/// How placement runs.
#[derive(Clone, Debug)]
pub struct PlacementConfig {
    /// This member's name (the engine's instance: unique per process run).
    pub member: String,
    /// How long a lease (and a member's presence) lasts without renewal.
    pub ttl: Duration,
    /// How often a round runs (renewals, takes).
    pub every: Duration,
}

impl PlacementConfig {
    pub fn new(member: impl Into<String>) -> PlacementConfig {
        PlacementConfig { member: member.into(), ttl: Duration::from_millis(2_000), every: Duration::from_millis(500) }
    }
}

/// One lease as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    pub key: Key,
    pub holder: String,
    pub token: u64,
    pub expires_at_ms: i64,
}

/// What a round reads.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The database's idea of now: this host's wall clock (leases expire on it).
    pub now_ms: i64,
    /// The members alive (this one included or not).
    pub members: Vec<String>,
    pub leases: Vec<LeaseRow>,
    /// Campaigns with a running job.
    pub wanted: BTreeSet<Key>,
    /// Campaigns held here that still have calls in progress (kept until they end).
    pub busy: BTreeSet<Key>,
}

/// What a round asks the driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Renew { key: Key, token: u64 },
    Acquire { key: Key },
    Release { key: Key, token: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Held {
    token: u64,
    /// Held until then on this host's clock (renewal sent + ttl).
    until: Instant,
}

/// The campaigns one host holds. See the module docs.
#[derive(Debug)]
pub struct Placement {
    cfg: PlacementConfig,
    held: HashMap<Key, Held>,
    /// When this host first saw a campaign wanted and unheld with no lease row (wall clock).
    first_seen: HashMap<Key, i64>,
    /// Since when a held campaign is neither wanted nor busy (wall clock): it is given up after
    /// two `ttl`s, so the results of its last calls are written under its lease first.
    idle_since: HashMap<Key, i64>,
}

impl Placement {
    pub fn new(cfg: PlacementConfig) -> Placement {
        Placement { cfg, held: HashMap::new(), first_seen: HashMap::new(), idle_since: HashMap::new() }
    }

    pub fn config(&self) -> &PlacementConfig {
        &self.cfg
    }

    /// The campaigns held now, with their tokens.
    pub fn held(&self) -> HashMap<Key, u64> {
        self.held.iter().map(|(k, h)| (*k, h.token)).collect()
    }

    /// Drops the leases whose time ran out on this host's clock; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Key> {
        let lost: Vec<Key> = self.held.iter().filter(|(_, h)| h.until <= now).map(|(k, _)| *k).collect();
        for k in &lost {
            self.held.remove(k);
        }
        lost
    }

    /// The actions of one round over `view`.
    pub fn plan(&mut self, view: &View) -> Vec<Action> {
        let mut out = Vec::new();
        let rows: HashMap<Key, &LeaseRow> = view.leases.iter().map(|r| (r.key, r)).collect();
        let linger = 2 * self.cfg.ttl.as_millis() as i64;
        for (key, h) in &self.held {
            if view.wanted.contains(key) || view.busy.contains(key) {
                self.idle_since.remove(key);
                out.push(Action::Renew { key: *key, token: h.token });
                continue;
            }
            let since = *self.idle_since.entry(*key).or_insert(view.now_ms);
            if view.now_ms - since >= linger {
                out.push(Action::Release { key: *key, token: h.token });
            } else {
                out.push(Action::Renew { key: *key, token: h.token });
            }
        }
        self.idle_since.retain(|k, _| self.held.contains_key(k));
        let mut members: Vec<&str> = view.members.iter().map(String::as_str).collect();
        if !members.contains(&self.cfg.member.as_str()) {
            members.push(&self.cfg.member);
        }
        members.sort_unstable();
        members.dedup();
        let me = members.iter().position(|m| *m == self.cfg.member).unwrap_or(0);
        let n = members.len();
        let every = self.cfg.every.as_millis() as i64;
        self.first_seen.retain(|k, _| view.wanted.contains(k) && !rows.contains_key(k));
        for (i, key) in view.wanted.iter().enumerate() {
            if self.held.contains_key(key) {
                continue;
            }
            let free_since = match rows.get(key) {
                Some(r) if r.expires_at_ms > view.now_ms => continue,
                Some(r) => r.expires_at_ms,
                None => *self.first_seen.entry(*key).or_insert(view.now_ms),
            };
            // The member dealt this campaign goes first, the next one a round later, ...
            let rank = (me + n - i % n) % n;
            if view.now_ms - free_since >= rank as i64 * every {
                out.push(Action::Acquire { key: *key });
            }
        }
        out
    }

    /// A renewal sent at `sent` was answered: `true` holds on, `false` means the lease was taken.
    /// Returns whether the campaign is lost.
    pub fn on_renewed(&mut self, key: Key, token: u64, held: bool, sent: Instant) -> bool {
        match self.held.get_mut(&key) {
            Some(h) if h.token == token => {
                if held {
                    h.until = h.until.max(sent + self.cfg.ttl);
                    false
                } else {
                    self.held.remove(&key);
                    true
                }
            }
            _ => false,
        }
    }

    /// A take sent at `sent` was answered: `Some(token)` when this host now holds the campaign.
    pub fn on_acquired(&mut self, key: Key, token: Option<u64>, sent: Instant) {
        if let Some(token) = token {
            self.first_seen.remove(&key);
            self.held.insert(key, Held { token, until: sent + self.cfg.ttl });
        }
    }

    /// A release was sent: the campaign is no longer held here.
    pub fn on_released(&mut self, key: Key) {
        self.held.remove(&key);
        self.idle_since.remove(&key);
    }
}
