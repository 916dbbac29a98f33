//! Consumer groups of dialer hosts gone for good. On leases every host reads each tenant's
//! `agent:events` in a group of its own (`dialer:<host>`); a host that never comes back leaves its
//! group behind, and Redis keeps its pending entries and its position for ever. Every host sweeps
//! them now and then: [`dead_groups`] decides (no clock, no IO), [`sweep`] reads and deletes.

use std::collections::HashSet;
use std::time::Duration;

use bus::Bus;
use store::Db;
use wire::streams;

/// Groups deleted at most in one sweep of one tenant's stream (the next sweep takes the rest).
pub const DEAD_GROUPS_PER_SWEEP: usize = 16;

/// The groups among `groups` (name, ms since a consumer last read; `None`: never read) that belong
/// to a dialer host gone for good: named `<prefix><host>`, not `mine`, no member of that host
/// alive within the grace (`live_hosts`), and none of its consumers reading within `grace_ms`. At
/// most [`DEAD_GROUPS_PER_SWEEP`]. A group without consumers (Redis makes a consumer when it first
/// delivers it an entry) counts as idle, and the members decide: a live host heartbeats every
/// 500 ms; one that made its group before its first heartbeat and lost it gets a `NOGROUP` and
/// makes the group again.
pub fn dead_groups(
    groups: &[(String, Option<u64>)],
    live_hosts: &HashSet<String>,
    prefix: &str,
    mine: &str,
    grace_ms: u64,
) -> Vec<String> {
    groups
        .iter()
        .filter(|(name, idle)| {
            let Some(host) = name.strip_prefix(prefix) else { return false };
            name != mine && !host.is_empty() && !live_hosts.contains(host) && idle.is_none_or(|ms| ms >= grace_ms)
        })
        .map(|(name, _)| name.clone())
        .take(DEAD_GROUPS_PER_SWEEP)
        .collect()
}

/// Deletes the dead groups of `prefix` on the `agent:events` streams of `tenants`; how many.
/// Failures are logged and left for the next sweep.
pub async fn sweep<B: Bus>(bus: &B, db: &Db, tenants: &[u64], prefix: &str, mine: &str, grace: Duration) -> usize {
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let since = store::now_ms().saturating_sub(i64::try_from(grace_ms).unwrap_or(i64::MAX));
    // A member is `<host>:<pid>:<start>`; alive within the grace when its row outlived `since`.
    let live: HashSet<String> = match store::leases::members(db, store::leases::Kind::Dialer, since).await {
        Ok(m) => m.iter().filter_map(|m| m.split(':').next()).map(str::to_owned).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "dead consumer groups: the members could not be read; next sweep");
            return 0;
        }
    };
    let mut deleted = 0;
    for t in tenants {
        let stream = streams::agent_events(*t);
        let groups = match bus.groups(&stream).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(tenant = t, error = %e, "dead consumer groups: could not list them; next sweep");
                continue;
            }
        };
        for name in dead_groups(&groups, &live, prefix, mine, grace_ms) {
            match bus.destroy_group(&stream, &name).await {
                Ok(true) => {
                    deleted += 1;
                    tracing::info!(tenant = t, group = %name, "deleted the consumer group of a dialer host gone for good");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(tenant = t, group = %name, error = %e, "dead consumer group not deleted"),
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_hosts_groups_idle_past_the_grace_and_without_a_live_member_are_dead() {
        let g = |n: &str, idle: Option<u64>| (n.to_string(), idle);
        let groups = vec![
            g("dialer:me", Some(999_999)),    // this host's
            g("dialer:gone", Some(600_000)),  // idle past the grace, no member
            g("dialer:never", None),          // never read, no member
            g("dialer:busy", Some(10)),       // read just now
            g("dialer:alive", Some(999_999)), // a member alive within the grace
            g("control", Some(999_999)),      // not a dialer host's
            g("dialer:", Some(999_999)),      // no host name
        ];
        let live: HashSet<String> = ["alive".to_string()].into();
        assert_eq!(dead_groups(&groups, &live, "dialer:", "dialer:me", 300_000), vec!["dialer:gone", "dialer:never"]);
    }

    #[test]
    fn a_sweep_deletes_a_bounded_number() {
        let groups: Vec<(String, Option<u64>)> = (0..40).map(|i| (format!("dialer:h{i}"), None)).collect();
        assert_eq!(dead_groups(&groups, &HashSet::new(), "dialer:", "dialer:me", 1).len(), DEAD_GROUPS_PER_SWEEP);
    }
}
