//! Closed days (休業日): Japan's national holidays (国民の祝日, by the Act on National Holidays as
//! in force from 2020) and the tenant's own closed dates. A call job neither starts nor dials on a
//! closed day, as outside business hours.
//!
//! The equinox days use the usual approximation of the National Astronomical Observatory's
//! announcements, exact for 1980-2099; the one-off moves of 2019-2021 are not modelled.

use chrono::{Datelike, NaiveDate, Weekday};

/// The national holiday on `d`, by its name, if any (振替休日 and 国民の休日 included).
pub fn japan_holiday(d: NaiveDate) -> Option<&'static str> {
    if let Some(name) = named_holiday(d) {
        return Some(name);
    }
    // 振替休日: a holiday on a Sunday moves to the next day that is not a holiday.
    let mut prev = d.pred_opt()?;
    while named_holiday(prev).is_some() {
        if prev.weekday() == Weekday::Sun {
            return Some("振替休日");
        }
        prev = prev.pred_opt()?;
    }
    // 国民の休日: a day between two holidays.
    if d.weekday() != Weekday::Sun && named_holiday(d.pred_opt()?).is_some() && named_holiday(d.succ_opt()?).is_some() {
        return Some("国民の休日");
    }
    None
}

/// The holidays the law names by date or by rule.
fn named_holiday(d: NaiveDate) -> Option<&'static str> {
    let (y, m, day) = (d.year(), d.month(), d.day());
    let monday = |n: u32| d.weekday() == Weekday::Mon && (day - 1) / 7 + 1 == n;
    Some(match (m, day) {
        (1, 1) => "元日",
        (1, _) if monday(2) => "成人の日",
        (2, 11) => "建国記念の日",
        (2, 23) if y >= 2020 => "天皇誕生日",
        (3, _) if day == vernal_equinox(y) => "春分の日",
        (4, 29) => "昭和の日",
        (5, 3) => "憲法記念日",
        (5, 4) => "みどりの日",
        (5, 5) => "こどもの日",
        (7, _) if monday(3) => "海の日",
        (8, 11) => "山の日",
        (9, _) if monday(3) => "敬老の日",
        (9, _) if day == autumnal_equinox(y) => "秋分の日",
        (10, _) if monday(2) => "スポーツの日",
        (11, 3) => "文化の日",
        (11, 23) => "勤労感謝の日",
        _ => return None,
    })
}

fn equinox(y: i32, base: f64) -> u32 {
    let n = f64::from(y - 1980);
    (base + 0.242194 * n - (n / 4.0).floor()).floor() as u32
}

fn vernal_equinox(y: i32) -> u32 {
    equinox(y, 20.8431)
}

fn autumnal_equinox(y: i32) -> u32 {
    equinox(y, 23.2488)
}

/// Whether `d` is closed for a tenant: a national holiday where the tenant keeps them, or one of
/// its own closed dates (`YYYY-MM-DD`).
pub fn is_closed(d: NaiveDate, national_holidays: bool, own: &[String]) -> Option<String> {
    if national_holidays {
        if let Some(name) = japan_holiday(d) {
            return Some(name.to_string());
        }
    }
    let day = d.to_string();
    own.contains(&day).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// The Cabinet Office's list for 2026 and 2027, whole.
    #[test]
    fn the_published_holidays_of_2026_and_2027() {
        let want = [
            ("2026-01-01", "元日"),
            ("2026-01-12", "成人の日"),
            ("2026-02-11", "建国記念の日"),
            ("2026-02-23", "天皇誕生日"),
            ("2026-03-20", "春分の日"),
            ("2026-04-29", "昭和の日"),
            ("2026-05-03", "憲法記念日"),
            ("2026-05-04", "みどりの日"),
            ("2026-05-05", "こどもの日"),
            ("2026-05-06", "振替休日"),
            ("2026-07-20", "海の日"),
            ("2026-08-11", "山の日"),
            ("2026-09-21", "敬老の日"),
            ("2026-09-22", "国民の休日"),
            ("2026-09-23", "秋分の日"),
            ("2026-10-12", "スポーツの日"),
            ("2026-11-03", "文化の日"),
            ("2026-11-23", "勤労感謝の日"),
            ("2027-01-01", "元日"),
            ("2027-01-11", "成人の日"),
            ("2027-02-11", "建国記念の日"),
            ("2027-02-23", "天皇誕生日"),
            ("2027-03-21", "春分の日"),
            ("2027-03-22", "振替休日"),
            ("2027-04-29", "昭和の日"),
            ("2027-05-03", "憲法記念日"),
            ("2027-05-04", "みどりの日"),
            ("2027-05-05", "こどもの日"),
            ("2027-07-19", "海の日"),
            ("2027-08-11", "山の日"),
            ("2027-09-20", "敬老の日"),
            ("2027-09-23", "秋分の日"),
            ("2027-10-11", "スポーツの日"),
            ("2027-11-03", "文化の日"),
            ("2027-11-23", "勤労感謝の日"),
        ];
        let mut got = Vec::new();
        let mut day = d("2026-01-01");
        while day <= d("2027-12-31") {
            if let Some(name) = japan_holiday(day) {
                got.push((day.to_string(), name));
            }
            day = day.succ_opt().unwrap();
        }
        let want: Vec<(String, &str)> = want.iter().map(|(a, b)| (a.to_string(), *b)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn own_dates_and_the_holidays_switch() {
        let own = vec!["2026-12-29".to_string()];
        assert_eq!(is_closed(d("2026-12-29"), true, &own), Some("2026-12-29".into()));
        assert_eq!(is_closed(d("2026-11-03"), true, &own).as_deref(), Some("文化の日"));
        assert_eq!(is_closed(d("2026-11-03"), false, &own), None);
        assert_eq!(is_closed(d("2026-12-07"), true, &own), None);
    }
}
