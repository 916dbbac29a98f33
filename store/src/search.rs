//! Free-text search over a list's text columns, the same on both backends.
//!
//! A query is split on whitespace into at most [`MAX_TERMS`] terms; a row matches when every term
//! appears (case-insensitively for ASCII) in at least one of the searched columns (BIZTEL's
//! "キーワード キーワード" AND search). A term is matched literally: `%`, `_` and the escape
//! character itself are escaped. For phone-number columns a term is also tried with its separators
//! removed (`03-1234` finds `031234...`).

/// Terms per query (more are ignored).
pub const MAX_TERMS: usize = 8;
/// Characters per term (longer terms are cut).
pub const MAX_TERM_CHARS: usize = 100;

/// A column searched by [`condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column<'a> {
    /// An expression naming the column, e.g. `t.name`.
    pub expr: &'a str,
    /// A phone-number column: terms are also matched with separators removed.
    pub tel: bool,
}

/// The condition and its bound values: `condition(..., first)` numbers its parameters from
/// `$first` on; bind the returned strings in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Condition {
    pub sql: String,
    pub binds: Vec<String>,
}

/// The terms of a query, trimmed and bounded.
pub fn terms(q: &str) -> Vec<String> {
    q.split_whitespace().take(MAX_TERMS).map(|t| t.chars().take(MAX_TERM_CHARS).collect()).collect()
}

fn like_pattern(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A term as the digits of a phone number (hyphens, spaces, brackets and full-width digits
/// removed or folded), when it has any digit and nothing else but separators.
fn tel_term(term: &str) -> Option<String> {
    let mut digits = String::new();
    for c in term.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '０'..='９' => digits.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
            '-' | '－' | 'ー' | ' ' | '(' | ')' | '（' | '）' | '+' => {}
            _ => return None,
        }
    }
    (!digits.is_empty() && digits != term).then_some(digits)
}

/// `None` when the query has no term (or no column is searched).
pub fn condition(columns: &[Column<'_>], q: &str, first: usize) -> Option<Condition> {
    let terms = terms(q);
    if terms.is_empty() || columns.is_empty() {
        return None;
    }
    let mut c = Condition::default();
    let mut ands = Vec::new();
    for term in terms {
        c.binds.push(like_pattern(&term));
        let n = first + c.binds.len() - 1;
        let tel = tel_term(&term).map(|d| {
            c.binds.push(like_pattern(&d));
            first + c.binds.len() - 1
        });
        let ors: Vec<String> = columns
            .iter()
            .map(|col| {
                let mut s = format!("LOWER({}) LIKE ${n} ESCAPE '!'", col.expr);
                if let (true, Some(m)) = (col.tel, tel) {
                    s.push_str(&format!(" OR {} LIKE ${m} ESCAPE '!'", col.expr));
                }
                s
            })
            .collect();
        ands.push(format!("({})", ors.join(" OR ")));
    }
    c.sql = ands.join(" AND ");
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_term_in_some_column() {
        let cols = [Column { expr: "t.name", tel: false }, Column { expr: "t.tel", tel: true }];
        let c = condition(&cols, "  山田  03-1234 ", 3).expect("terms");
        assert_eq!(
            c.sql,
            "(LOWER(t.name) LIKE $3 ESCAPE '!' OR LOWER(t.tel) LIKE $3 ESCAPE '!') AND \
             (LOWER(t.name) LIKE $4 ESCAPE '!' OR LOWER(t.tel) LIKE $4 ESCAPE '!' OR t.tel LIKE $5 ESCAPE '!')"
        );
        assert_eq!(c.binds, vec!["%山田%", "%03-1234%", "%031234%"]);
        assert!(condition(&cols, "   ", 1).is_none());
        assert!(condition(&[], "x", 1).is_none());
    }

    #[test]
    fn wildcards_are_literal() {
        let c = condition(&[Column { expr: "a", tel: false }], "10%_!A", 1).expect("term");
        assert_eq!(c.binds, vec!["%10!%!_!!a%"]);
        assert_eq!(terms(&"x ".repeat(20)).len(), MAX_TERMS);
    }
}
