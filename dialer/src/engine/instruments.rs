//! The dialer's metrics (deploy/METRICS.md, "Calls" and "SIP"): their names and help texts, and the
//! SIP counters of a shard's transaction layer flushed to the `metrics` crate. The endpoint
//! ([`sip::transaction::Stats`]) keeps plain integers; the shard driver diffs them against the last
//! flush about once a second ([`FLUSH_EVERY`]), so the datagram path never touches the recorder.

use std::time::{Duration, Instant};

use sip::message::DropReason;
use sip::transaction::{Stats, COMPLETION_CLASSES, COUNTED_METHODS};

use crate::calls::AuthStats;

/// How often a shard's SIP counters reach the recorder.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub const TRANSACTIONS_TOTAL: &str = "kakeru_sip_transactions_total";
pub const DROPPED_TOTAL: &str = "kakeru_sip_dropped_messages_total";
pub const AUTH_FAILURES_TOTAL: &str = "kakeru_sip_auth_failures_total";
pub const AUTH_REFUSED_TOTAL: &str = "kakeru_sip_auth_refused_total";
pub const AUTH_BANS_TOTAL: &str = "kakeru_sip_auth_bans_total";

/// Registers the help texts of the dialer's metrics (idempotent; the recorder must be installed).
pub fn describe() {
    metrics::describe_counter!("kakeru_dialer_calls_total", "Customer calls ended, by result.");
    metrics::describe_gauge!("kakeru_dialer_calls_in_flight", "Customer calls dialling, ringing or connected now.");
    metrics::describe_counter!("kakeru_dialer_calls_launched_total", "Customer calls launched (INVITE sent).");
    metrics::describe_counter!("kakeru_dialer_calls_answered_total", "Customer calls answered live.");
    metrics::describe_histogram!(
        "kakeru_dialer_answer_to_bridge_seconds",
        metrics::Unit::Seconds,
        "Time from a customer's answer to the bridge with an agent."
    );
    metrics::describe_counter!(
        "kakeru_dialer_shard_commands_dropped_total",
        "Commands to a shard dropped because its control queue stayed full for a second."
    );
    metrics::describe_gauge!("kakeru_pacer_dial_level", "The pacer's dial level after a decision: lines (ringing plus to be launched) per active agent (logged in, not paused), by campaign; the pages show dials in flight per active agent instead.");
    metrics::describe_gauge!(
        "kakeru_pacer_predicted_abandon_ratio",
        "The pacer's predicted abandon share of answered calls (0..1), by campaign."
    );
    metrics::describe_counter!(
        TRANSACTIONS_TOTAL,
        "SIP transactions (client and server) completed, by method and final response class (or timeout)."
    );
    metrics::describe_counter!(DROPPED_TOTAL, "SIP messages dropped without reaching a transaction, by reason.");
    metrics::describe_counter!(
        AUTH_FAILURES_TOTAL,
        "Failed digest authentications of agents' phones (a wrong password or user, an unknown realm), by reason."
    );
    metrics::describe_counter!(
        AUTH_REFUSED_TOTAL,
        "Phone requests refused without digest work: the source address banned, or the account locked for new addresses."
    );
    metrics::describe_counter!(
        AUTH_BANS_TOTAL,
        "Bans started: a source address, or an account, past its limit of failed digest authentications."
    );
}

/// What a shard flushed last, and when it flushes next.
#[derive(Debug)]
pub struct SipMetrics {
    flushed: Stats,
    flushed_auth: AuthStats,
    next_at: Instant,
}

impl SipMetrics {
    pub fn new(now: Instant) -> SipMetrics {
        SipMetrics { flushed: Stats::default(), flushed_auth: AuthStats::default(), next_at: now }
    }

    /// When [`SipMetrics::maybe_flush`] next has work.
    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    /// Adds what changed since the last flush to the recorder, if a flush is due.
    pub fn maybe_flush(&mut self, now: Instant, stats: &Stats, auth: &AuthStats) {
        if now < self.next_at {
            return;
        }
        self.next_at = now + FLUSH_EVERY;
        self.flush(stats, auth);
    }

    /// Adds what changed since the last flush to the recorder.
    pub fn flush(&mut self, stats: &Stats, auth: &AuthStats) {
        let was = self.flushed_auth;
        for (name, label, value, before) in [
            (AUTH_FAILURES_TOTAL, ("reason", "wrong_credentials"), auth.wrong_credentials, was.wrong_credentials),
            (AUTH_FAILURES_TOTAL, ("reason", "unknown_realm"), auth.unknown_realm, was.unknown_realm),
            (AUTH_REFUSED_TOTAL, ("limit", "source"), auth.refused_source, was.refused_source),
            (AUTH_REFUSED_TOTAL, ("limit", "account"), auth.refused_account, was.refused_account),
            (AUTH_BANS_TOTAL, ("limit", "source"), auth.sources_banned, was.sources_banned),
            (AUTH_BANS_TOTAL, ("limit", "account"), auth.accounts_locked, was.accounts_locked),
        ] {
            let delta = value.saturating_sub(before);
            if delta > 0 {
                metrics::counter!(name, label.0 => label.1).increment(delta);
            }
        }
        self.flushed_auth = *auth;
        for (m, method) in COUNTED_METHODS.iter().enumerate() {
            for (c, class) in COMPLETION_CLASSES.iter().enumerate() {
                let delta = stats.completed[m][c].saturating_sub(self.flushed.completed[m][c]);
                if delta > 0 {
                    metrics::counter!(TRANSACTIONS_TOTAL, "method" => *method, "class" => *class).increment(delta);
                }
            }
        }
        for r in DropReason::ALL {
            let delta = stats.dropped(r).saturating_sub(self.flushed.dropped(r));
            if delta > 0 {
                metrics::counter!(DROPPED_TOTAL, "reason" => r.label()).increment(delta);
            }
        }
        self.flushed = stats.clone();
    }
}
