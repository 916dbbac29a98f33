//! Addresses as RFC 3261 writes them: the value of a From, To, Contact, Route or Record-Route header
//! field, a `name-addr` or an `addr-spec` followed by header parameters (§20.10, §20.20, §20.39, the
//! grammar of §25.1):
//!
//! ```text
//! contact-param = (name-addr / addr-spec) *(SEMI contact-params)
//! name-addr     = [ display-name ] LAQUOT addr-spec RAQUOT
//! display-name  = *(token LWS) / quoted-string
//! generic-param = token [ EQUAL gen-value ];  gen-value = token / host / quoted-string
//! ```
//!
//! A URI in angle brackets ends at the first `>` (no URI character is `>`); the header parameters
//! after it may hold quoted strings with `<`, `>`, `;`, `,` and `\"` in them
//! (`;+sip.instance="<urn:uuid:…>"`). Without angle brackets the URI ends at the first `;`: every
//! parameter after it is a header parameter (§20: a URI holding `,`, `?` or `;` must be bracketed).
//!
//! Parsing borrows from the header value and allocates nothing; it never panics (fuzzed with the
//! message parser, property-tested against generated Contacts in `tests/it/addr.rs`).

use std::borrow::Cow;

/// Why an address does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("empty address")]
    Empty,
    #[error("unterminated quoted string")]
    Unterminated,
    #[error("`<` without `>`")]
    Unclosed,
    #[error("display name without `<addr-spec>`")]
    NoAngle,
    #[error("empty URI")]
    EmptyUri,
    #[error("malformed header parameter")]
    BadParam,
}

/// One parsed address (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written: a quoted string with its quotes, or the tokens (trimmed).
    pub display_raw: Option<&'a str>,
    /// The URI, without angle brackets.
    pub uri: &'a str,
    /// Whether the URI was in angle brackets (a name-addr).
    pub bracketed: bool,
    /// The header parameters as written, from the first `;` (checked when parsed).
    params: &'a str,
}

/// One header parameter: its name and its value as written (a quoted string keeps its quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

impl<'a> Param<'a> {
    /// The value without the quotes of a quoted string (escapes left as written); `""` for a flag.
    pub fn raw_value(&self) -> &'a str {
        match self.value {
            Some(v) if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => &v[1..v.len() - 1],
            Some(v) => v,
            None => "",
        }
    }

    /// The value with a quoted string's escapes resolved.
    pub fn value(&self) -> Cow<'a, str> {
        match self.value {
            Some(v) if v.starts_with('"') => unquote(v),
            Some(v) => Cow::Borrowed(v),
            None => Cow::Borrowed(""),
        }
    }
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    i
}

/// The end (one past the closing quote) of the quoted string opening at `start`.
fn quoted_end(b: &[u8], start: usize) -> Result<usize, AddrError> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                // quoted-pair: any character but CR and LF.
                if i + 1 >= b.len() || matches!(b[i + 1], b'\r' | b'\n') {
                    return Err(AddrError::Unterminated);
                }
                i += 2;
            }
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(AddrError::Unterminated)
}

/// The content of a quoted string (with its quotes) with `\x` resolved to `x`.
pub fn unquote(quoted: &str) -> Cow<'_, str> {
    let inner = quoted.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(quoted);
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` as a quoted string (for building headers): `"` and `\` escaped, CR and LF dropped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => {}
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

impl<'a> NameAddr<'a> {
    /// Parses one address (one element of a comma-separated list; see [`crate::message::split_list`]).
    pub fn parse(value: &'a str) -> Result<NameAddr<'a>, AddrError> {
        let b = value.as_bytes();
        let start = skip_lws(b, 0);
        if start >= b.len() {
            return Err(AddrError::Empty);
        }
        // A display name: a quoted string, or tokens and LWS up to `<`. Anything else before a `<`
        // (such as the `:` of `sip:`) makes the value an addr-spec.
        let mut i = start;
        let mut display_end = None;
        if b[i] == b'"' {
            i = quoted_end(b, i)?;
            display_end = Some(i);
            i = skip_lws(b, i);
            if i >= b.len() || b[i] != b'<' {
                return Err(AddrError::NoAngle);
            }
        } else {
            let mut j = i;
            while j < b.len() && (is_token_char(b[j]) || is_lws(b[j])) {
                j += 1;
            }
            if j < b.len() && b[j] == b'<' {
                if j > i {
                    display_end = Some(j);
                }
                i = j;
            }
        }
        let display_raw = display_end.map(|e| value[start..e].trim_end()).filter(|d| !d.is_empty());
        let (uri, bracketed, rest) = if i < b.len() && b[i] == b'<' {
            let close = value[i + 1..].find('>').ok_or(AddrError::Unclosed)? + i + 1;
            (value[i + 1..close].trim(), true, close + 1)
        } else {
            let end = value[i..].find(';').map_or(b.len(), |k| k + i);
            (value[i..end].trim_end(), false, end)
        };
        if uri.is_empty() {
            return Err(AddrError::EmptyUri);
        }
        let params = &value[rest..];
        for p in params_iter(params) {
            p?;
        }
        Ok(NameAddr { display_raw, uri, bracketed, params })
    }

    /// The display name with a quoted string's quotes and escapes resolved.
    pub fn display(&self) -> Option<Cow<'a, str>> {
        self.display_raw.map(|d| if d.starts_with('"') { unquote(d) } else { Cow::Borrowed(d) })
    }

    /// The header parameters in order.
    pub fn params(&self) -> impl Iterator<Item = Param<'a>> {
        params_iter(self.params).map_while(Result::ok)
    }

    /// The header parameter `name` (case-insensitive), if present.
    pub fn param(&self, name: &str) -> Option<Param<'a>> {
        self.params().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The header parameters as written (from the first `;`, or empty).
    pub fn params_text(&self) -> &'a str {
        self.params.trim()
    }
}

/// Iterates the header parameters in `s` (`;name[=value]` repeated, LWS allowed around `;` and `=`).
pub fn params_iter(s: &str) -> impl Iterator<Item = Result<Param<'_>, AddrError>> {
    let b = s.as_bytes();
    let mut i = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let r = next_param(s, b, &mut i);
        match r {
            None => None,
            Some(Err(e)) => {
                failed = true;
                Some(Err(e))
            }
            Some(Ok(p)) => Some(Ok(p)),
        }
    })
}

fn next_param<'a>(s: &'a str, b: &[u8], i: &mut usize) -> Option<Result<Param<'a>, AddrError>> {
    let mut k = skip_lws(b, *i);
    if k >= b.len() {
        *i = k;
        return None;
    }
    if b[k] != b';' {
        return Some(Err(AddrError::BadParam));
    }
    k = skip_lws(b, k + 1);
    let n0 = k;
    while k < b.len() && is_token_char(b[k]) {
        k += 1;
    }
    if k == n0 {
        return Some(Err(AddrError::BadParam));
    }
    let name = &s[n0..k];
    k = skip_lws(b, k);
    let mut value = None;
    if k < b.len() && b[k] == b'=' {
        k = skip_lws(b, k + 1);
        let v0 = k;
        if k < b.len() && b[k] == b'"' {
            k = match quoted_end(b, k) {
                Ok(e) => e,
                Err(e) => return Some(Err(e)),
            };
        } else if k < b.len() && b[k] == b'[' {
            // An IPv6 reference (gen-value = host).
            match s[k..].find(']') {
                Some(e) => k += e + 1,
                None => return Some(Err(AddrError::BadParam)),
            }
        } else {
            // A token or a host; some phones put other visible characters here, taken as written.
            while k < b.len() && !is_lws(b[k]) && !b";,\"<>".contains(&b[k]) {
                k += 1;
            }
        }
        if k == v0 {
            return Some(Err(AddrError::BadParam));
        }
        value = Some(&s[v0..k]);
    }
    // Only LWS, then the next `;` or the end, may follow.
    let after = skip_lws(b, k);
    if after < b.len() && b[after] != b';' {
        return Some(Err(AddrError::BadParam));
    }
    *i = after;
    Some(Ok(Param { name, value }))
}

/// The parts of a SIP or SIPS URI we use: `sip:user@host:port;params?headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    pub scheme: &'a str,
    /// The user part as written (percent-escapes kept), empty when there is none.
    pub user: &'a str,
    /// The host: a name, an IPv4 address, or an IPv6 address without its brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    /// URI parameters as written, from the first `;` before any `?` (or empty).
    pub params: &'a str,
}

impl<'a> SipUri<'a> {
    /// Parses `sip:` and `sips:` URIs (the scheme case-insensitive); `None` for anything else.
    pub fn parse(uri: &'a str) -> Option<SipUri<'a>> {
        let (scheme, rest) = uri.trim().split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        let rest = rest.split('?').next().unwrap_or("");
        // The user part ends at the last `@` (a password or an escaped `@` may precede it).
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => ("", rest),
        };
        let user = userinfo.split(':').next().unwrap_or("");
        let (hostport, params) = match hostpart.find(';') {
            Some(k) => (&hostpart[..k], &hostpart[k..]),
            None => (hostpart, ""),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let close = v6.find(']')?;
            let after = &v6[close + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            (&v6[..close], port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p.parse().ok()?)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(SipUri { scheme, user, host, port, params })
    }

    /// The user part with percent-escapes resolved (RFC 3261 19.1.4 compares them unescaped).
    pub fn user_unescaped(&self) -> Cow<'a, str> {
        percent_decode(self.user)
    }

    /// The address-of-record form (§10.3 step 5): scheme and host lower-cased, the user unescaped,
    /// the port kept, parameters and headers removed.
    pub fn aor(&self) -> String {
        let mut s = self.scheme.to_ascii_lowercase();
        s.push(':');
        let user = self.user_unescaped();
        if !user.is_empty() {
            s.push_str(&user);
            s.push('@');
        }
        if self.host.contains(':') {
            s.push('[');
            s.push_str(&self.host.to_ascii_lowercase());
            s.push(']');
        } else {
            s.push_str(&self.host.to_ascii_lowercase());
        }
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        s
    }
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phones_contact_with_instance_and_expiry() {
        let v = r#"<sip:u-0x5@127.0.0.1:5090>;expires=60;+sip.instance="<urn:uuid:e1cf-7a01>";reg-id=1"#;
        let a = NameAddr::parse(v).expect("parses");
        assert_eq!(a.uri, "sip:u-0x5@127.0.0.1:5090");
        assert!(a.bracketed);
        assert_eq!(a.param("expires").map(|p| p.raw_value()), Some("60"));
        assert_eq!(a.param("+SIP.INSTANCE").map(|p| p.raw_value()), Some("<urn:uuid:e1cf-7a01>"));
        assert_eq!(a.param("reg-id").map(|p| p.raw_value()), Some("1"));
    }

    #[test]
    fn display_names_quoted_and_tokens() {
        let a = NameAddr::parse(r#" "A \"q\" <x>; y" <sip:a@h;transport=udp>;tag=1"#).expect("parses");
        assert_eq!(a.display().as_deref(), Some(r#"A "q" <x>; y"#));
        assert_eq!(a.uri, "sip:a@h;transport=udp");
        assert_eq!(a.param("tag").map(|p| p.raw_value()), Some("1"));
        assert_eq!(a.param("transport"), None);
        let b = NameAddr::parse("Bob  Smith <sip:b@h>").expect("parses");
        assert_eq!(b.display().as_deref(), Some("Bob  Smith"));
        let c = NameAddr::parse("sip:c@h;tag=9 ; lr").expect("addr-spec");
        assert_eq!((c.uri, c.bracketed), ("sip:c@h", false));
        assert_eq!(c.params().map(|p| p.name).collect::<Vec<_>>(), vec!["tag", "lr"]);
        assert_eq!(NameAddr::parse("*").expect("star").uri, "*");
    }

    #[test]
    fn malformed_addresses() {
        for bad in [
            "",
            "  ",
            "\"open <sip:a@h>",
            "<sip:a@h",
            "\"x\" sip:a@h",
            "<>",
            "<sip:a@h> x",
            "<sip:a@h>;=1",
            "<sip:a@h>;a=\"x",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sip_uris() {
        let u = SipUri::parse("SIP:Agent%31@Demo.Kakeru:5060;transport=udp?x=y").expect("uri");
        assert_eq!((u.user, u.host, u.port, u.params), ("Agent%31", "Demo.Kakeru", Some(5060), ";transport=udp"));
        assert_eq!(u.aor(), "sip:Agent1@demo.kakeru:5060");
        let v6 = SipUri::parse("sip:a@[::1]:5070").expect("v6");
        assert_eq!((v6.host, v6.port), ("::1", Some(5070)));
        assert_eq!(v6.aor(), "sip:a@[::1]:5070");
        assert_eq!(SipUri::parse("sip:demo.kakeru").expect("no user").user, "");
        assert!(SipUri::parse("tel:+81312345678").is_none());
        assert!(SipUri::parse("sip:a@h:port").is_none());
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(unquote(&quote("a\"b\\c <d>")), "a\"b\\c <d>");
    }
}
