//! Compliance ledger (per campaign) and the no-redial rule for abandoned
//! customers. Pure data structures: time comes in as `now_ms`.

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;
const MINUTES_PER_DAY: usize = 1_440;
const DAYS_KEPT: usize = 30;

/// Which slice of history to read from a [`ComplianceLedger`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerWindow {
    /// The last 60 minutes.
    LastHour,
    /// The last 24 hours (minute resolution).
    Rolling24h,
    /// The current calendar day of the campaign (from its local midnight).
    Today,
    /// The last 30 calendar days, today included.
    Rolling30d,
}

/// Live answers and abandons over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LedgerCounts {
    pub live: u64,
    pub abandoned: u64,
}

impl LedgerCounts {
    /// Abandoned share of live answers (0 when none).
    pub fn abandon_rate(&self) -> f64 {
        if self.live == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.live as f64
        }
    }
}

fn sum<'a>(it: impl Iterator<Item = &'a LedgerCounts>) -> LedgerCounts {
    it.fold(LedgerCounts::default(), |a, c| LedgerCounts {
        live: a.live + c.live,
        abandoned: a.abandoned + c.abandoned,
    })
}

/// Per-campaign record of live answers and abandons, bounded: 1,440 minute
/// buckets and 30 day buckets.
#[derive(Clone, Debug)]
pub struct ComplianceLedger {
    /// Offset added to `now_ms` to land on the campaign's local midnight.
    local_offset_ms: i64,
    minutes: Vec<(u64, LedgerCounts)>,
    days: Vec<(u64, LedgerCounts)>,
}

impl ComplianceLedger {
    /// `local_offset_ms`: the tenant's UTC offset when `now_ms` is UTC epoch ms
    /// (e.g. +9 h for Japan), so that "today" starts at local midnight.
    pub fn new(local_offset_ms: i64) -> Self {
        ComplianceLedger {
            local_offset_ms,
            minutes: vec![(u64::MAX, LedgerCounts::default()); MINUTES_PER_DAY],
            days: vec![(u64::MAX, LedgerCounts::default()); DAYS_KEPT],
        }
    }

    fn local(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.local_offset_ms)
    }

    /// Index of the campaign's local day containing `now_ms`.
    pub fn day_index(&self, now_ms: u64) -> u64 {
        self.local(now_ms) / DAY_MS
    }

    /// Records one live answer, served (connected within the wait limit) or
    /// abandoned.
    pub fn record(&mut self, now_ms: u64, abandoned: bool) {
        let minute = now_ms / MINUTE_MS;
        let slot = &mut self.minutes[(minute % MINUTES_PER_DAY as u64) as usize];
        if slot.0 != minute {
            *slot = (minute, LedgerCounts::default());
        }
        slot.1.live += 1;
        slot.1.abandoned += u64::from(abandoned);
        let day = self.day_index(now_ms);
        let slot = &mut self.days[(day % DAYS_KEPT as u64) as usize];
        if slot.0 != day {
            *slot = (day, LedgerCounts::default());
        }
        slot.1.live += 1;
        slot.1.abandoned += u64::from(abandoned);
    }

    /// Counts over `window` as of `now_ms`.
    pub fn counts(&self, now_ms: u64, window: LedgerWindow) -> LedgerCounts {
        let day = self.day_index(now_ms);
        match window {
            LedgerWindow::LastHour => self.last_minutes(now_ms, 60),
            LedgerWindow::Rolling24h => self.last_minutes(now_ms, MINUTES_PER_DAY as u64),
            LedgerWindow::Today => sum(self.days.iter().filter(|(d, _)| *d == day).map(|(_, c)| c)),
            LedgerWindow::Rolling30d => {
                sum(self.days.iter().filter(|(d, _)| *d <= day && day - d < DAYS_KEPT as u64).map(|(_, c)| c))
            }
        }
    }

    /// Counts over the last `minutes` minutes (the current one included;
    /// at most 1,440).
    pub fn last_minutes(&self, now_ms: u64, minutes: u64) -> LedgerCounts {
        let minute = now_ms / MINUTE_MS;
        let n = minutes.min(MINUTES_PER_DAY as u64);
        sum(self.minutes.iter().filter(|(m, _)| *m <= minute && minute - m < n).map(|(_, c)| c))
    }

    /// Per-day counts of the last 30 days, oldest first.
    pub fn days(&self, now_ms: u64) -> Vec<(u64, LedgerCounts)> {
        let day = self.day_index(now_ms);
        let mut v: Vec<_> =
            self.days.iter().filter(|(d, _)| *d <= day && day - d < DAYS_KEPT as u64).copied().collect();
        v.sort_by_key(|(d, _)| *d);
        v
    }

    /// Days of the last 30 whose abandon rate exceeded `target`.
    pub fn days_over(&self, now_ms: u64, target: f64) -> usize {
        self.days(now_ms).iter().filter(|(_, c)| c.abandon_rate() > target).count()
    }
}

/// The no-redial rule (再発信禁止): "abandoned customers are not redialled
/// within 72 h unless an agent is guaranteed", per campaign.
///
/// How the dialer uses it:
/// - keep, per lead, the time of its last abandon (the [`PacerEvent::Abandoned`]
///   of a call to it; `None` if never);
/// - when selecting leads for predictive calls, leave out those abandoned
///   after [`RedialRule::abandoned_after_ms`]`(now)`, e.g. `WHERE
///   last_abandoned_ms IS NULL OR last_abandoned_ms <= ?` (the query bound is
///   `None` when the rule is off: no filter);
/// - before each dial, [`RedialRule::may_dial`] answers for one lead;
///   [`RedialRule::not_before_ms`] tells a recall schedule when it may be.
///
/// An agent is *guaranteed* when the call is placed with an agent already
/// reserved for it and waiting: preview, progressive (one call per reserved
/// ready agent), a recall assigned to an agent. Predictive calls never are.
///
/// [`PacerEvent::Abandoned`]: super::PacerEvent::Abandoned
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedialRule {
    pub enabled: bool,
    pub hold_off_ms: u64,
}

/// The rule's default hold-off: 72 hours.
pub const DEFAULT_REDIAL_HOLD_OFF_MS: u64 = 72 * 3_600_000;

impl Default for RedialRule {
    fn default() -> Self {
        RedialRule { enabled: true, hold_off_ms: DEFAULT_REDIAL_HOLD_OFF_MS }
    }
}

impl RedialRule {
    /// The rule as a campaign sets it: on or off, and the hold-off in hours
    /// (72 by default).
    pub fn new(enabled: bool, hold_off_hours: u32) -> Self {
        RedialRule { enabled, hold_off_ms: u64::from(hold_off_hours) * 3_600_000 }
    }

    /// May the dialer call this lead now? `last_abandoned_ms`: when the lead
    /// was last abandoned, if ever. `agent_guaranteed`: the call is placed
    /// with an agent already reserved for it (see the type's docs).
    pub fn may_dial(&self, now_ms: u64, last_abandoned_ms: Option<u64>, agent_guaranteed: bool) -> bool {
        match last_abandoned_ms {
            _ if !self.enabled || agent_guaranteed => true,
            None => true,
            Some(t) => now_ms.saturating_sub(t) >= self.hold_off_ms,
        }
    }

    /// Earliest time a lead abandoned at `abandoned_ms` may be dialled
    /// without an agent guaranteed (`abandoned_ms` itself when the rule is off).
    pub fn not_before_ms(&self, abandoned_ms: u64) -> u64 {
        if self.enabled {
            abandoned_ms.saturating_add(self.hold_off_ms)
        } else {
            abandoned_ms
        }
    }

    /// Lead selection bound for predictive calls at `now_ms`: leads last
    /// abandoned *after* the returned time must be left out; `None` when the
    /// rule is off.
    pub fn abandoned_after_ms(&self, now_ms: u64) -> Option<u64> {
        self.enabled.then(|| now_ms.saturating_sub(self.hold_off_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    #[test]
    fn windows_roll() {
        let mut l = ComplianceLedger::new(9 * H as i64);
        // Day 0 (local): 100 live, 5 abandoned at 10:00 local = 01:00 UTC.
        for i in 0..100 {
            l.record(H + i * 1_000, i < 5);
        }
        let now = H + 200_000;
        assert_eq!(l.counts(now, LedgerWindow::LastHour).abandoned, 5);
        assert!((l.counts(now, LedgerWindow::Today).abandon_rate() - 0.05).abs() < 1e-12);
        // Two hours later the last hour is empty but the day still counts.
        let later = now + 2 * H;
        assert_eq!(l.counts(later, LedgerWindow::LastHour).live, 0);
        assert_eq!(l.counts(later, LedgerWindow::Rolling24h).live, 100);
        // Next local day: 'today' resets, 30 days keep it.
        let next = H + DAY_MS;
        l.record(next, false);
        assert_eq!(l.counts(next, LedgerWindow::Today).live, 1);
        assert_eq!(l.counts(next, LedgerWindow::Rolling30d).live, 101);
        assert_eq!(l.days_over(next, 0.03), 1);
        // 31 days later everything has rolled out.
        let far = next + 31 * DAY_MS;
        assert_eq!(l.counts(far, LedgerWindow::Rolling30d).live, 0);
        assert_eq!(l.counts(far, LedgerWindow::Rolling24h).live, 0);
    }

    #[test]
    fn no_redial_within_72h_unless_agent_guaranteed() {
        let r = RedialRule::default();
        let t = 10 * H;
        assert!(r.may_dial(t, None, false));
        assert!(!r.may_dial(t + 71 * H, Some(t), false));
        assert!(r.may_dial(t + 71 * H, Some(t), true));
        assert!(r.may_dial(t + 72 * H, Some(t), false));
        let off = RedialRule { enabled: false, ..r };
        assert!(off.may_dial(t + H, Some(t), false));
        // The campaign's form, the recall bound and the selection bound agree
        // with may_dial.
        assert_eq!(RedialRule::new(true, 72), r);
        assert_eq!(r.not_before_ms(t), t + 72 * H);
        let now = 1_000 * H;
        let bound = r.abandoned_after_ms(now).unwrap();
        for abandoned in [0, now - 100 * H, bound, bound + 1, now - H, now] {
            assert_eq!(r.may_dial(now, Some(abandoned), false), abandoned <= bound, "abandoned at {abandoned}");
        }
        assert_eq!(off.abandoned_after_ms(now), None);
        assert_eq!(off.not_before_ms(t), t);
    }
}
