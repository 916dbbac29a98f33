//! The date rules of a batch (バッチ), SPEC 4, as pure functions of the tenant's history retention R.
//!
//! - default end = start + (R - 91) days
//! - batch deletion = end + 90 days
//! - history deletion = batch deletion + (R - 1) days
//! - start may move only to a date not after the first call made; end only to a date not before the
//!   last call made (both in the tenant's zone); start never after end.

use chrono::{Days, NaiveDate};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchDates {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub batch_deletion: NaiveDate,
    pub history_deletion: NaiveDate,
}

pub fn default_end(start: NaiveDate, retention_days: i64) -> NaiveDate {
    add_days(start, retention_days - 91)
}

pub fn derive(start: NaiveDate, end: NaiveDate, retention_days: i64) -> BatchDates {
    let batch_deletion = add_days(end, 90);
    BatchDates { start, end, batch_deletion, history_deletion: add_days(batch_deletion, retention_days - 1) }
}

fn add_days(d: NaiveDate, n: i64) -> NaiveDate {
    if n >= 0 {
        d.checked_add_days(Days::new(n as u64)).unwrap_or(NaiveDate::MAX)
    } else {
        d.checked_sub_days(Days::new(n.unsigned_abs())).unwrap_or(NaiveDate::MIN)
    }
}

/// Why a move of start or end is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveError {
    /// The new start is after the day of the first call made in this batch.
    StartAfterFirstCall,
    /// The new end is before the day of the last call made in this batch.
    EndBeforeLastCall,
    /// Start after end.
    StartAfterEnd,
}

impl MoveError {
    pub fn field(self) -> &'static str {
        match self {
            MoveError::StartAfterFirstCall | MoveError::StartAfterEnd => "start_date",
            MoveError::EndBeforeLastCall => "end_date",
        }
    }
    pub fn message(self) -> &'static str {
        match self {
            MoveError::StartAfterFirstCall => {
                "開始日は最初の発信日より後にできません (start may not be after the first call)"
            }
            MoveError::EndBeforeLastCall => {
                "終了日は最後の発信日より前にできません (end may not be before the last call)"
            }
            MoveError::StartAfterEnd => "開始日は終了日より後にできません (start may not be after end)",
        }
    }
}

/// Checks new dates against the days of the first and last calls (tenant zone), if any were made.
pub fn check_dates(
    start: NaiveDate,
    end: NaiveDate,
    first_call: Option<NaiveDate>,
    last_call: Option<NaiveDate>,
) -> Result<(), MoveError> {
    if start > end {
        return Err(MoveError::StartAfterEnd);
    }
    if let Some(first) = first_call {
        if start > first {
            return Err(MoveError::StartAfterFirstCall);
        }
    }
    if let Some(last) = last_call {
        if end < last {
            return Err(MoveError::EndBeforeLastCall);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn worked_example_retention_400() {
        // R = 400: end = start + 309 days; deletion = end + 90; history = deletion + 399.
        let start = d("2026-04-01");
        let end = default_end(start, 400);
        assert_eq!(end, d("2027-02-04"));
        let all = derive(start, end, 400);
        assert_eq!(all.batch_deletion, d("2027-05-05"));
        assert_eq!(all.history_deletion, d("2028-06-07"));
    }

    #[test]
    fn worked_example_minimum_retention() {
        // R = 92: a batch lasts one day; history goes 91 days after the batch is deleted.
        let start = d("2026-12-31");
        let end = default_end(start, 92);
        assert_eq!(end, d("2027-01-01"));
        let all = derive(start, end, 92);
        assert_eq!(all.batch_deletion, d("2027-04-01"));
        assert_eq!(all.history_deletion, d("2027-07-01"));
    }

    /// BIZTEL §1.2's three examples, start 2022/08/01: R = 180, 91 (the batch is one day: end =
    /// start) and 366.
    #[test]
    fn the_seeds_examples() {
        for (r, end, deletion, history) in [
            (180, "2022-10-29", "2023-01-27", "2023-07-25"),
            (91, "2022-08-01", "2022-10-30", "2023-01-28"),
            (366, "2023-05-03", "2023-08-01", "2024-07-31"),
        ] {
            let start = d("2022-08-01");
            let all = derive(start, default_end(start, r), r);
            assert_eq!(
                (all.end, all.batch_deletion, all.history_deletion),
                (d(end), d(deletion), d(history)),
                "R = {r}"
            );
        }
    }

    #[test]
    fn moving_start_and_end() {
        let first = Some(d("2026-05-10"));
        let last = Some(d("2026-06-20"));
        // Start may move earlier, or later up to the first call's day.
        assert_eq!(check_dates(d("2026-05-01"), d("2026-07-01"), first, last), Ok(()));
        assert_eq!(check_dates(d("2026-05-10"), d("2026-07-01"), first, last), Ok(()));
        assert_eq!(check_dates(d("2026-05-11"), d("2026-07-01"), first, last), Err(MoveError::StartAfterFirstCall));
        // End may move later, or earlier down to the last call's day.
        assert_eq!(check_dates(d("2026-05-01"), d("2026-06-20"), first, last), Ok(()));
        assert_eq!(check_dates(d("2026-05-01"), d("2026-06-19"), first, last), Err(MoveError::EndBeforeLastCall));
        // With no calls made, only start <= end holds them.
        assert_eq!(check_dates(d("2026-09-01"), d("2026-09-01"), None, None), Ok(()));
        assert_eq!(check_dates(d("2026-09-02"), d("2026-09-01"), None, None), Err(MoveError::StartAfterEnd));
    }
}
