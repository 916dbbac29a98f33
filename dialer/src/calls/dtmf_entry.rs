//! DTMF result entry (SPEC 4): after the customer hangs up, the agent keys on the phone
//! - `N#`: the campaign's result number N (`番号,テキスト`), or
//! - `0` then `分#`, `分*時#` or `分*時*日#`: a recall that many minutes (+ hours + days) later.
//!
//! Sans-IO: digits arrive with the time they were keyed; an entry whose digits stop for longer than
//! the digit timeout starts over. Every entry is bounded in length.

use std::time::{Duration, Instant};

/// Most keys in one entry (`0` + `9999*99*999#` fits).
pub const MAX_KEYS: usize = 16;
/// Largest recall delay accepted: 400 days.
pub const MAX_RECALL_MS: u64 = 400 * 86_400_000;

/// A completed entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfEntry {
    /// The campaign's result number.
    Result { number: u32 },
    /// A recall after this long.
    Recall { after_ms: u64 },
}

/// Why keys were thrown away (counted by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("more than {MAX_KEYS} keys")]
    TooLong,
    #[error("'#' with no number")]
    Empty,
    #[error("'*' in a result number")]
    StarInResult,
    #[error("a recall takes minutes, minutes*hours or minutes*hours*days")]
    BadRecall,
    #[error("recall more than 400 days ahead")]
    RecallTooFar,
}

/// Collects keys until `#`.
#[derive(Clone, Debug)]
pub struct EntryParser {
    keys: String,
    last_key: Option<Instant>,
    digit_timeout: Duration,
}

impl EntryParser {
    pub fn new(digit_timeout: Duration) -> EntryParser {
        EntryParser { keys: String::new(), last_key: None, digit_timeout }
    }

    /// Keys so far (for logs and tests).
    pub fn pending(&self) -> &str {
        &self.keys
    }

    /// Feeds one key. `Ok(Some(entry))` when `#` completes a valid entry; `Err` when it completes
    /// (or overflows) an invalid one; the parser is empty again after either.
    pub fn push(&mut self, now: Instant, key: char) -> Result<Option<DtmfEntry>, EntryError> {
        if self.last_key.is_some_and(|t| now.saturating_duration_since(t) > self.digit_timeout) {
            self.keys.clear();
        }
        self.last_key = Some(now);
        match key {
            '#' => {
                let keys = std::mem::take(&mut self.keys);
                parse(&keys).map(Some)
            }
            '0'..='9' | '*' => {
                if self.keys.len() >= MAX_KEYS {
                    self.keys.clear();
                    return Err(EntryError::TooLong);
                }
                self.keys.push(key);
                Ok(None)
            }
            // A..D and flash are not part of an entry.
            _ => Ok(None),
        }
    }
}

fn parse(keys: &str) -> Result<DtmfEntry, EntryError> {
    if keys.is_empty() {
        return Err(EntryError::Empty);
    }
    if let Some(rest) = keys.strip_prefix('0') {
        let parts: Vec<&str> = rest.split('*').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(EntryError::BadRecall);
        }
        let unit_ms = [60_000u64, 3_600_000, 86_400_000];
        let mut after_ms = 0u64;
        for (p, unit) in parts.iter().zip(unit_ms) {
            let n: u64 = p.parse().map_err(|_| EntryError::BadRecall)?;
            after_ms = after_ms.saturating_add(n.saturating_mul(unit));
        }
        if after_ms == 0 {
            return Err(EntryError::BadRecall);
        }
        if after_ms > MAX_RECALL_MS {
            return Err(EntryError::RecallTooFar);
        }
        return Ok(DtmfEntry::Recall { after_ms });
    }
    if keys.contains('*') {
        return Err(EntryError::StarInResult);
    }
    let number: u32 = keys.parse().map_err(|_| EntryError::TooLong)?;
    Ok(DtmfEntry::Result { number })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(keys: &str) -> Vec<Result<Option<DtmfEntry>, EntryError>> {
        let mut p = EntryParser::new(Duration::from_secs(10));
        let t0 = Instant::now();
        keys.chars().enumerate().map(|(i, k)| p.push(t0 + Duration::from_millis(300 * i as u64), k)).collect()
    }

    fn last(keys: &str) -> Result<Option<DtmfEntry>, EntryError> {
        keyed(keys).pop().expect("at least one key")
    }

    #[test]
    fn result_numbers() {
        assert_eq!(last("3#"), Ok(Some(DtmfEntry::Result { number: 3 })));
        assert_eq!(last("12#"), Ok(Some(DtmfEntry::Result { number: 12 })));
        assert_eq!(last("#"), Err(EntryError::Empty));
        assert_eq!(last("1*2#"), Err(EntryError::StarInResult));
    }

    #[test]
    fn recalls_in_minutes_hours_days() {
        assert_eq!(last("030#"), Ok(Some(DtmfEntry::Recall { after_ms: 30 * 60_000 })));
        assert_eq!(last("015*2#"), Ok(Some(DtmfEntry::Recall { after_ms: 15 * 60_000 + 2 * 3_600_000 })));
        assert_eq!(last("00*0*1#"), Ok(Some(DtmfEntry::Recall { after_ms: 86_400_000 })));
        assert_eq!(last("0#"), Err(EntryError::BadRecall));
        assert_eq!(last("00#"), Err(EntryError::BadRecall));
        assert_eq!(last("01*2*3*4#"), Err(EntryError::BadRecall));
        assert_eq!(last("01**2#"), Err(EntryError::BadRecall));
        assert_eq!(last("00*0*401#"), Err(EntryError::RecallTooFar));
    }

    #[test]
    fn a_pause_longer_than_the_digit_timeout_starts_over() {
        let mut p = EntryParser::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(p.push(t0, '7'), Ok(None));
        assert_eq!(p.push(t0 + Duration::from_secs(6), '2'), Ok(None));
        assert_eq!(p.push(t0 + Duration::from_secs(7), '#'), Ok(Some(DtmfEntry::Result { number: 2 })));
    }

    #[test]
    fn entries_are_bounded() {
        let long: String = std::iter::repeat_n('1', MAX_KEYS + 1).collect();
        let r = keyed(&long);
        assert_eq!(r[MAX_KEYS], Err(EntryError::TooLong));
        // And the parser works again after.
        let mut p = EntryParser::new(Duration::from_secs(5));
        let t0 = Instant::now();
        for (i, k) in long.chars().enumerate() {
            let _ = p.push(t0 + Duration::from_millis(i as u64), k);
        }
        assert_eq!(p.push(t0 + Duration::from_secs(1), '5'), Ok(None));
        assert_eq!(p.push(t0 + Duration::from_secs(1), '#'), Ok(Some(DtmfEntry::Result { number: 5 })));
    }
}
