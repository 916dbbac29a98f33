//! パーク保留 and パーク応答 from the agent's phone (its nailed-up leg, RFC 4733 digits), SPEC's
//! 電話機操作コマンド:
//! - while talking with a customer, `#72` parks the customer (パーク保留);
//! - while on no call, a park number (`9001`..`9099`, four keys) picks that parked call up on this
//!   phone (パーク応答). The leg is nailed up, so there is no 発信 button: the fourth key completes
//!   the number (a `#` after it is accepted and ignored).
//!
//! Sans-IO: keys arrive with the time they were keyed; keys more than the digit timeout apart start
//! over. At most four keys are kept.

use std::time::{Duration, Instant};

/// The keys that park the customer of a call.
pub const PARK_KEYS: &str = "#72";
/// The park numbers' range (保留番号).
pub const FIRST_PARK_NUMBER: u16 = 9001;
pub const LAST_PARK_NUMBER: u16 = 9099;

/// What the keys asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParkKeys {
    /// `#72` during a call.
    Park,
    /// A park number while on no call.
    PickUp { number: u16 },
}

/// Collects an agent's keys for park and pick-up.
#[derive(Clone, Debug)]
pub struct ParkKeyParser {
    keys: String,
    last_key: Option<Instant>,
    digit_timeout: Duration,
}

impl ParkKeyParser {
    pub fn new(digit_timeout: Duration) -> ParkKeyParser {
        ParkKeyParser { keys: String::new(), last_key: None, digit_timeout }
    }

    /// Keys so far (for logs and tests).
    pub fn pending(&self) -> &str {
        &self.keys
    }

    /// Forgets the keys so far (the call's state changed).
    pub fn clear(&mut self) {
        self.keys.clear();
    }

    /// Feeds one key; `in_call`: the agent talks with a customer now (only `#72` counts), else only
    /// a park number does.
    pub fn push(&mut self, now: Instant, key: char, in_call: bool) -> Option<ParkKeys> {
        if self.last_key.is_some_and(|t| now.saturating_duration_since(t) > self.digit_timeout) {
            self.keys.clear();
        }
        self.last_key = Some(now);
        if in_call {
            // `#` starts the command over; anything else follows it.
            if key == '#' {
                self.keys.clear();
            }
            if self.keys.len() >= PARK_KEYS.len() {
                self.keys.clear();
            }
            self.keys.push(key);
            if !PARK_KEYS.starts_with(self.keys.as_str()) {
                self.keys.clear();
                return None;
            }
            if self.keys == PARK_KEYS {
                self.keys.clear();
                return Some(ParkKeys::Park);
            }
            return None;
        }
        match key {
            '0'..='9' => {
                if self.keys.is_empty() && key != '9' {
                    return None;
                }
                self.keys.push(key);
                if self.keys.len() < 4 {
                    return None;
                }
                let number = std::mem::take(&mut self.keys).parse::<u16>().ok()?;
                (FIRST_PARK_NUMBER..=LAST_PARK_NUMBER).contains(&number).then_some(ParkKeys::PickUp { number })
            }
            _ => {
                self.keys.clear();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut ParkKeyParser, t0: Instant, keys: &str, in_call: bool) -> Vec<ParkKeys> {
        keys.chars()
            .enumerate()
            .filter_map(|(i, k)| p.push(t0 + Duration::from_millis(200 * i as u64), k, in_call))
            .collect()
    }

    #[test]
    fn hash_72_parks_in_a_call_only() {
        let t0 = Instant::now();
        let mut p = ParkKeyParser::new(Duration::from_secs(3));
        assert_eq!(feed(&mut p, t0, "#72", true), vec![ParkKeys::Park]);
        assert_eq!(feed(&mut p, t0, "1#72", true), vec![ParkKeys::Park]);
        assert_eq!(feed(&mut p, t0, "##72", true), vec![ParkKeys::Park]);
        assert_eq!(feed(&mut p, t0, "#7 2", true), vec![]);
        assert_eq!(feed(&mut p, t0, "#73", true), vec![]);
        assert_eq!(feed(&mut p, t0, "#72", false), vec![]);
    }

    #[test]
    fn a_park_number_picks_up_when_on_no_call() {
        let t0 = Instant::now();
        let mut p = ParkKeyParser::new(Duration::from_secs(3));
        assert_eq!(feed(&mut p, t0, "9001", false), vec![ParkKeys::PickUp { number: 9001 }]);
        assert_eq!(feed(&mut p, t0, "9099#", false), vec![ParkKeys::PickUp { number: 9099 }]);
        assert_eq!(feed(&mut p, t0, "129002", false), vec![ParkKeys::PickUp { number: 9002 }]);
        // Out of the range, or during a call: nothing.
        assert_eq!(feed(&mut p, t0, "9100", false), vec![]);
        assert_eq!(feed(&mut p, t0, "9000", false), vec![]);
        assert_eq!(feed(&mut p, t0, "9001", true), vec![]);
        assert_eq!(p.pending(), "");
    }

    #[test]
    fn keys_too_far_apart_start_over() {
        let t0 = Instant::now();
        let mut p = ParkKeyParser::new(Duration::from_secs(3));
        assert_eq!(p.push(t0, '9', false), None);
        assert_eq!(p.push(t0 + Duration::from_secs(1), '0', false), None);
        // Four seconds later the first two are forgotten.
        assert_eq!(p.push(t0 + Duration::from_secs(5), '0', false), None);
        assert_eq!(p.push(t0 + Duration::from_secs(5), '1', false), None);
        assert_eq!(p.pending(), "");
        assert_eq!(p.push(t0 + Duration::from_secs(5), '#', true), None);
        assert_eq!(p.push(t0 + Duration::from_secs(9), '7', true), None);
        assert_eq!(p.pending(), "");
    }
}
