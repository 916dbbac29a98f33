//! Field rules. Every error text is `<field>:<reason>`, matching SPEC 4.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const NAME_MAX_CHARS: usize = 255;
pub const TEL_MAX_CHARS: usize = 30;
pub const REMARKS_MAX_CHARS: usize = 1000;
pub const TEXT_MAX_CHARS: usize = 255;
pub const LONG_TEXT_MAX_CHARS: usize = 2000;
pub const EMAIL_MAX_CHARS: usize = 254;

pub fn msg_empty(f: &str) -> String {
    format!("{f}:値がありません")
}
pub fn msg_null(f: &str) -> String {
    format!("{f}:'null'は利用できない文字です")
}
pub fn msg_len(f: &str, max: usize) -> String {
    format!("{f}:1文字から{max}文字までにしてください")
}

fn is_null(v: &str) -> bool {
    v.eq_ignore_ascii_case("null")
}

/// Required short text (name, kana): trimmed, 1..=max chars, not `null`.
pub fn required_text(f: &str, raw: &str, max: usize) -> Result<String, String> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(msg_empty(f));
    }
    if is_null(v) {
        return Err(msg_null(f));
    }
    if v.chars().count() > max {
        return Err(msg_len(f, max));
    }
    Ok(v.to_string())
}

/// Free text with line breaks: CRLF -> LF and the two characters `\n` -> LF.
/// Empty -> `None`; longer than `max` chars (after conversion) is an error.
pub fn multiline_text(f: &str, raw: &str, max: usize) -> Result<Option<String>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    if is_null(raw.trim()) {
        return Err(msg_null(f));
    }
    let v = if raw.contains(['\r', '\\']) { raw.replace("\r\n", "\n").replace("\\n", "\n") } else { raw.to_string() };
    if v.chars().count() > max {
        return Err(msg_len(f, max));
    }
    Ok(Some(v))
}

/// Full-width digits to ASCII; all other chars unchanged.
fn halfwidth_digit(c: char) -> char {
    match c {
        '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
        _ => c,
    }
}

/// Separators dropped from phone numbers and postal codes: spaces, hyphens
/// and dash look-alikes (ASCII and full-width), and parentheses.
fn is_tel_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '-' | '－' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | 'ー' | 'ｰ' | '(' | ')' | '（' | '）')
}

/// Phone number rules (used for `tel` and for custom phone fields).
///
/// Normalisation before the checks: trim; full-width digits to ASCII;
/// spaces, hyphens/dashes and parentheses removed; a leading `+81` (or
/// `＋81`) becomes `0`. Then: digits only, 1..=30 digits, leading `0`.
pub fn tel(f: &str, raw: &str) -> Result<String, String> {
    let v = given(f, raw)?;
    if v.len() <= TEL_MAX_CHARS && v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(v.to_string()); // Fast path: already normalised.
    }
    let mut digits: String = v.chars().filter(|&c| !is_tel_separator(c)).map(halfwidth_digit).collect();
    for plus in ["+81", "＋81"] {
        if let Some(rest) = digits.strip_prefix(plus) {
            digits = format!("0{rest}");
            break;
        }
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{f}:書式が正しくありません"));
    }
    if digits.len() > TEL_MAX_CHARS {
        return Err(msg_len(f, TEL_MAX_CHARS));
    }
    if !digits.starts_with('0') {
        return Err(format!("{f}:電話番号の先頭に0を入れてください"));
    }
    Ok(digits)
}

/// The trimmed value, or the seed's text for an empty one or `null`.
fn given<'a>(f: &str, raw: &'a str) -> Result<&'a str, String> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(msg_empty(f));
    }
    if is_null(v) {
        return Err(msg_null(f));
    }
    Ok(v)
}

/// The shortest number a lead may carry (BIZTEL §2.2: 半角数字のみ、9~30文字).
pub const LEAD_TEL_MIN_CHARS: usize = 9;

/// A lead's `tel` as BIZTEL §2.2 writes it: half-width digits only, 9 to 30 of them, a leading 0.
/// Nothing is changed silently: a hyphen, a space or a full-width digit is refused with the seed's
/// text, so the number dialled is the number the list holds. ([`tel`] still normalises where a
/// number is typed to find or block one: searches, the do-not-call and inbound-block lists, the
/// phone book, callbacks, custom phone fields, caller IDs; there a number written any way must
/// still match.)
pub fn lead_tel(f: &str, raw: &str) -> Result<String, String> {
    let v = given(f, raw)?;
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{f}:書式が正しくありません"));
    }
    if v.len() > TEL_MAX_CHARS {
        return Err(msg_len(f, TEL_MAX_CHARS));
    }
    if v.len() < LEAD_TEL_MIN_CHARS {
        return Err(format!("{f}:{LEAD_TEL_MIN_CHARS}文字から{TEL_MAX_CHARS}文字までにしてください"));
    }
    if !v.starts_with('0') {
        return Err(format!("{f}:電話番号の先頭に0を入れてください"));
    }
    Ok(v.to_string())
}

/// Type of a tenant custom field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldKind {
    /// Single line, at most 255 chars. Stored as a JSON string.
    Text,
    /// Multi-line (`\n` as in remarks), at most 2000 chars. JSON string.
    LongText,
    /// Integer or decimal; `,` thousands separators and full-width digits
    /// accepted. JSON number.
    Number,
    /// `YYYY-MM-DD`, `YYYY/MM/DD` (month/day may be 1 digit), a real
    /// calendar date. Stored as `"YYYY-MM-DD"`.
    Date,
    /// Same rules as `tel`. Stored normalised (digits only). Not dialled.
    Phone,
    /// `local@domain.tld`, no spaces, at most 254 chars. JSON string.
    Email,
    /// One of `options`. JSON string.
    Select { options: Vec<String> },
    /// One of `options`. JSON string.
    Radio { options: Vec<String> },
    /// Zero or more of `options`, separated by `|` or `,`. JSON array.
    Checkbox { options: Vec<String> },
    /// Japanese postal code: 7 digits, hyphen optional. Stored `"123-4567"`.
    PostalCode,
}

/// Validate a custom field value. `Ok(None)` means empty and not required.
pub fn custom(f: &str, kind: &FieldKind, required: bool, raw: &str) -> Result<Option<Value>, String> {
    let v = raw.trim();
    if v.is_empty() {
        return if required { Err(msg_empty(f)) } else { Ok(None) };
    }
    if is_null(v) {
        return Err(msg_null(f));
    }
    let value = match kind {
        FieldKind::Text => {
            if v.chars().count() > TEXT_MAX_CHARS {
                return Err(msg_len(f, TEXT_MAX_CHARS));
            }
            Value::String(v.to_string())
        }
        FieldKind::LongText => match multiline_text(f, raw, LONG_TEXT_MAX_CHARS)? {
            Some(s) => Value::String(s),
            None => return Ok(None),
        },
        FieldKind::Number => number(v).ok_or_else(|| format!("{f}:数値で入力してください"))?,
        FieldKind::Date => {
            Value::String(date(v).ok_or_else(|| format!("{f}:日付の書式が正しくありません（例: 2024-01-31）"))?)
        }
        FieldKind::Phone => Value::String(tel(f, v)?),
        FieldKind::Email => {
            if !email_ok(v) {
                return Err(format!("{f}:メールアドレスの書式が正しくありません"));
            }
            Value::String(v.to_string())
        }
        FieldKind::Select { options } | FieldKind::Radio { options } => {
            if !options.iter().any(|o| o == v) {
                return Err(format!("{f}:選択肢にない値です（{v}）"));
            }
            Value::String(v.to_string())
        }
        FieldKind::Checkbox { options } => {
            let mut picked = Vec::new();
            for item in v.split(['|', ',']).map(str::trim).filter(|s| !s.is_empty()) {
                if !options.iter().any(|o| o == item) {
                    return Err(format!("{f}:選択肢にない値です（{item}）"));
                }
                if !picked.iter().any(|p: &Value| p == item) {
                    picked.push(Value::String(item.to_string()));
                }
            }
            Value::Array(picked)
        }
        FieldKind::PostalCode => {
            Value::String(postal(v).ok_or_else(|| format!("{f}:郵便番号の書式が正しくありません（例: 123-4567）"))?)
        }
    };
    Ok(Some(value))
}

fn number(v: &str) -> Option<Value> {
    let s: String = v
        .chars()
        .map(halfwidth_digit)
        .map(|c| match c {
            '．' => '.',
            '－' | '−' => '-',
            '＋' => '+',
            c => c,
        })
        .filter(|&c| c != ',' && c != '，')
        .collect();
    let body = s.strip_prefix(['-', '+']).unwrap_or(&s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits_ok(int) || !digits_ok(frac) || (body.contains('.') && frac.is_empty()) {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::from(i));
    }
    let x: f64 = s.parse().ok()?;
    serde_json::Number::from_f64(x).map(Value::Number)
}

fn date(v: &str) -> Option<String> {
    let v: String = v.chars().map(halfwidth_digit).collect();
    let sep = if v.contains('-') { '-' } else { '/' };
    let mut parts = v.split(sep);
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || !(1..=2).contains(&m.len()) || !(1..=2).contains(&d.len()) {
        return None;
    }
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(y) && all_digits(m) && all_digits(d)) {
        return None;
    }
    let (y, m, d): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if y == 0 || d == 0 || d > days {
        return None;
    }
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

fn email_ok(v: &str) -> bool {
    if v.chars().count() > EMAIL_MAX_CHARS || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

fn postal(v: &str) -> Option<String> {
    let d: String = v.chars().map(halfwidth_digit).filter(|&c| !is_tel_separator(c) && c != '〒').collect();
    (d.len() == 7 && d.bytes().all(|b| b.is_ascii_digit())).then(|| format!("{}-{}", &d[..3], &d[3..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lead_tel_rules_change_nothing_silently() {
        assert_eq!(lead_tel("tel", " 0312345678 "), Ok("0312345678".into()));
        assert_eq!(lead_tel("tel", "03-1234-5678"), Err("tel:書式が正しくありません".into()));
        assert_eq!(lead_tel("tel", "０３１２３４５６７８"), Err("tel:書式が正しくありません".into()));
        assert_eq!(lead_tel("tel", "03 1234 5678"), Err("tel:書式が正しくありません".into()));
        assert_eq!(lead_tel("tel", &"0".repeat(31)), Err("tel:1文字から30文字までにしてください".into()));
        assert_eq!(lead_tel("tel", "03123456"), Err("tel:9文字から30文字までにしてください".into()));
        assert_eq!(lead_tel("tel", "031234567"), Ok("031234567".into()));
        assert_eq!(lead_tel("tel", &"0".repeat(30)), Ok("0".repeat(30)));
        assert_eq!(lead_tel("tel", "312345678"), Err("tel:電話番号の先頭に0を入れてください".into()));
        assert_eq!(lead_tel("tel", "null"), Err("tel:'null'は利用できない文字です".into()));
    }

    #[test]
    fn tel_rules() {
        assert_eq!(tel("tel", "03-1234-5678"), Ok("0312345678".into()));
        assert_eq!(tel("tel", " ０９０（１２３４）５６７８ "), Ok("09012345678".into()));
        assert_eq!(tel("tel", "+81 90-1234-5678"), Ok("09012345678".into()));
        assert_eq!(tel("tel", ""), Err("tel:値がありません".into()));
        assert_eq!(tel("tel", "NuLL"), Err("tel:'null'は利用できない文字です".into()));
        assert_eq!(tel("tel", "03-12a4"), Err("tel:書式が正しくありません".into()));
        assert_eq!(tel("tel", "--"), Err("tel:書式が正しくありません".into()));
        assert_eq!(tel("tel", &"0".repeat(31)), Err("tel:1文字から30文字までにしてください".into()));
        assert_eq!(tel("tel", &"0".repeat(30)), Ok("0".repeat(30)));
        assert_eq!(tel("tel", "3-1234-5678"), Err("tel:電話番号の先頭に0を入れてください".into()));
    }

    #[test]
    fn text_rules_count_chars_not_bytes() {
        assert_eq!(required_text("name", &"あ".repeat(255), 255), Ok("あ".repeat(255)));
        assert_eq!(
            required_text("name", &"あ".repeat(256), 255),
            Err("name:1文字から255文字までにしてください".into())
        );
        assert_eq!(required_text("kana", "　", 255), Err("kana:値がありません".into()));
        assert_eq!(multiline_text("remarks", "a\\nb\r\nc", 1000), Ok(Some("a\nb\nc".into())));
        assert_eq!(multiline_text("remarks", "", 1000), Ok(None));
    }

    #[test]
    fn custom_kinds() {
        let ok = |k: &FieldKind, v: &str| custom("f", k, false, v).unwrap();
        let err = |k: &FieldKind, v: &str| custom("f", k, false, v).unwrap_err();
        assert_eq!(ok(&FieldKind::Text, " abc "), Some(json!("abc")));
        assert_eq!(err(&FieldKind::Text, &"x".repeat(256)), "f:1文字から255文字までにしてください");
        assert_eq!(ok(&FieldKind::LongText, "a\\nb"), Some(json!("a\nb")));
        assert_eq!(err(&FieldKind::LongText, &"x".repeat(2001)), "f:1文字から2000文字までにしてください");
        assert_eq!(ok(&FieldKind::Number, "1,234"), Some(json!(1234)));
        assert_eq!(ok(&FieldKind::Number, "-１２.５"), Some(json!(-12.5)));
        assert_eq!(err(&FieldKind::Number, "12a"), "f:数値で入力してください");
        assert_eq!(err(&FieldKind::Number, "1."), "f:数値で入力してください");
        assert_eq!(ok(&FieldKind::Date, "2024/2/29"), Some(json!("2024-02-29")));
        assert_eq!(err(&FieldKind::Date, "2023-02-29"), "f:日付の書式が正しくありません（例: 2024-01-31）");
        assert_eq!(err(&FieldKind::Date, "2024-13-01"), "f:日付の書式が正しくありません（例: 2024-01-31）");
        assert_eq!(ok(&FieldKind::Phone, "03-1234-5678"), Some(json!("0312345678")));
        assert_eq!(err(&FieldKind::Phone, "3-1234"), "f:電話番号の先頭に0を入れてください");
        assert_eq!(ok(&FieldKind::Email, "a.b@example.co.jp"), Some(json!("a.b@example.co.jp")));
        assert_eq!(err(&FieldKind::Email, "a@b"), "f:メールアドレスの書式が正しくありません");
        assert_eq!(err(&FieldKind::Email, "a b@c.jp"), "f:メールアドレスの書式が正しくありません");
        let opts = vec!["A".to_string(), "B".to_string()];
        let sel = FieldKind::Select { options: opts.clone() };
        assert_eq!(ok(&sel, "A"), Some(json!("A")));
        assert_eq!(err(&sel, "C"), "f:選択肢にない値です（C）");
        let radio = FieldKind::Radio { options: opts.clone() };
        assert_eq!(err(&radio, "C"), "f:選択肢にない値です（C）");
        let cb = FieldKind::Checkbox { options: opts };
        assert_eq!(ok(&cb, "A|B|A"), Some(json!(["A", "B"])));
        assert_eq!(err(&cb, "A,Z"), "f:選択肢にない値です（Z）");
        assert_eq!(ok(&FieldKind::PostalCode, "〒１２３－４５６７"), Some(json!("123-4567")));
        assert_eq!(ok(&FieldKind::PostalCode, "1234567"), Some(json!("123-4567")));
        assert_eq!(err(&FieldKind::PostalCode, "123-456"), "f:郵便番号の書式が正しくありません（例: 123-4567）");
        // Empty: skipped unless required; null is always rejected.
        assert_eq!(ok(&FieldKind::Number, ""), None);
        assert_eq!(custom("f", &FieldKind::Text, true, " "), Err("f:値がありません".into()));
        assert_eq!(err(&FieldKind::Text, "null"), "f:'null'は利用できない文字です");
    }

    #[test]
    fn random_values_never_panic() {
        let alphabet: Vec<char> = "0123456789０９+＋-－ー()（）@./,|〒 　\\n\r\naあ漢é🎉null".chars().collect();
        let kinds = [
            FieldKind::Text,
            FieldKind::LongText,
            FieldKind::Number,
            FieldKind::Date,
            FieldKind::Phone,
            FieldKind::Email,
            FieldKind::Select { options: vec!["a".into()] },
            FieldKind::Radio { options: vec![] },
            FieldKind::Checkbox { options: vec!["a".into(), "0".into()] },
            FieldKind::PostalCode,
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let v: String = (0..len).map(|i| alphabet[((x >> (i % 50)) as usize + i * 7) % alphabet.len()]).collect();
            let _ = tel("tel", &v);
            let _ = required_text("name", &v, NAME_MAX_CHARS);
            let _ = multiline_text("remarks", &v, REMARKS_MAX_CHARS);
            for k in &kinds {
                let _ = custom("f", k, x.is_multiple_of(2), &v);
            }
        }
    }
}
