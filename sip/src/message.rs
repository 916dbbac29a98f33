//! SIP messages: our own owned types, parsed from a datagram and checked with rsip's grammar, and built
//! as text by us (every built message re-parses with rsip; see the tests).
//!
//! Parsing never panics: an oversized, truncated or garbled datagram is a [`ParseError`] carrying a
//! [`DropReason`], and a request whose Via, From, To, Call-ID and CSeq are readable is kept inside the
//! error so the endpoint can answer it with a 400.

use std::fmt::{self, Write as _};

use crate::addr::{params_iter, NameAddr};

/// Largest datagram we look at (64 KiB; UDP carries at most 65,507 bytes).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most header fields in one message.
pub const MAX_HEADERS: usize = 128;
/// Longest single header value in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// The RFC 3261 branch magic cookie.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// A SIP method. Methods rsip does not know are `Other` (answered 501 by the endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    pub fn parse(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a datagram was not handed to a transaction. Counted by the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    Oversized,
    NotUtf8,
    Unparsable,
    MissingHeader,
    BadCSeq,
    BadVia,
    BadContentLength,
    TooManyHeaders,
    /// A response that matches no client transaction.
    StrayResponse,
    /// An ACK matching nothing.
    StrayAck,
    /// A transmit or event queue was full.
    QueueFull,
    /// Transaction table full.
    TooManyTransactions,
}

impl DropReason {
    pub const ALL: [DropReason; 12] = [
        DropReason::Oversized,
        DropReason::NotUtf8,
        DropReason::Unparsable,
        DropReason::MissingHeader,
        DropReason::BadCSeq,
        DropReason::BadVia,
        DropReason::BadContentLength,
        DropReason::TooManyHeaders,
        DropReason::StrayResponse,
        DropReason::StrayAck,
        DropReason::QueueFull,
        DropReason::TooManyTransactions,
    ];

    /// Position in [`DropReason::ALL`] (declaration order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name, for logs and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Oversized => "oversized",
            DropReason::NotUtf8 => "not_utf8",
            DropReason::Unparsable => "unparsable",
            DropReason::MissingHeader => "missing_header",
            DropReason::BadCSeq => "bad_cseq",
            DropReason::BadVia => "bad_via",
            DropReason::BadContentLength => "bad_content_length",
            DropReason::TooManyHeaders => "too_many_headers",
            DropReason::StrayResponse => "stray_response",
            DropReason::StrayAck => "stray_ack",
            DropReason::QueueFull => "queue_full",
            DropReason::TooManyTransactions => "too_many_transactions",
        }
    }
}

/// A parse failure. `answerable` holds the request when a 400 can be sent back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bad SIP message: {reason:?}")]
pub struct ParseError {
    pub reason: DropReason,
    pub answerable: Option<Box<Request>>,
}

impl ParseError {
    fn drop(reason: DropReason) -> ParseError {
        ParseError { reason, answerable: None }
    }
}

/// Header fields in order, names in their full form (compact forms expanded on parse).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

fn full_name(name: &str) -> &str {
    match name {
        "v" | "V" => "Via",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "k" | "K" => "Supported",
        "s" | "S" => "Subject",
        "e" | "E" => "Content-Encoding",
        _ => name,
    }
}

impl Headers {
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, each header field split at top-level commas (for Via, Route, Contact ...).
    pub fn get_list(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).flat_map(|(_, v)| split_list(v)).collect()
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_string(), value.into()));
    }

    /// Puts a header before all others (a new top Via).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(0, (name.to_string(), value.into()));
    }

    /// Replaces every `name` by one value (appended where the first one was, or at the end).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(i) => {
                self.0[i].1 = value;
                let mut seen = 0usize;
                self.0.retain(|(n, _)| {
                    if n.eq_ignore_ascii_case(name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.0.push((name.to_string(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Every header field in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// A parsed CSeq header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(value: &str) -> Option<CSeq> {
        let mut it = value.split_whitespace();
        let seq: u32 = it.next()?.parse().ok()?;
        let method = it.next()?;
        if it.next().is_some() || seq >= 1 << 31 || !is_token(method) {
            return None;
        }
        Some(CSeq { seq, method: Method::parse(method) })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// The top Via's parts we use for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub sent_by: String,
    pub branch: Option<String>,
}

impl Via {
    pub fn parse(value: &str) -> Option<Via> {
        let (proto, rest) = value.trim().split_once(char::is_whitespace)?;
        let mut parts = proto.split('/');
        if !parts.next()?.trim().eq_ignore_ascii_case("SIP") || parts.next()?.trim() != "2.0" {
            return None;
        }
        let transport = parts.next()?.trim().to_ascii_uppercase();
        let mut segs = rest.split(';');
        let sent_by = segs.next()?.trim().to_ascii_lowercase();
        if sent_by.is_empty() || sent_by.contains(char::is_whitespace) {
            return None;
        }
        let params = rest.find(';').map_or("", |k| &rest[k..]);
        let branch = params_iter(params)
            .map_while(Result::ok)
            .find(|p| p.name.eq_ignore_ascii_case("branch"))
            .map(|p| p.raw_value().to_string());
        Some(Via { transport, sent_by, branch })
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(crate::addr::is_token_char)
}

/// Splits a header value at commas outside quotes and angle brackets.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0usize);
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start <= value.len() {
        out.push(value.get(start..).unwrap_or("").trim());
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A header parameter of a From, To, Contact or Route value (`tag`, `expires`, ...), read as RFC 3261
/// writes it ([`NameAddr`]): `Some("")` for a flag parameter, a quoted value without its quotes.
/// `None` when absent or when the value is not an address.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    NameAddr::parse(value).ok()?.param(name).map(|p| p.raw_value())
}

/// The URI of a name-addr (`"Bob" <sip:bob@h>;tag=1` -> `sip:bob@h`) or an addr-spec
/// (`sip:bob@h;tag=1` -> `sip:bob@h`); empty when the value is not an address.
pub fn addr_uri(value: &str) -> &str {
    NameAddr::parse(value).map_or("", |a| a.uri)
}

impl Request {
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request { method, uri: uri.into(), headers: Headers::new(), body: Vec::new() }
    }

    pub fn top_via(&self) -> Option<Via> {
        self.headers.get_list("Via").first().and_then(|v| Via::parse(v))
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.headers.get("CSeq").and_then(CSeq::parse)
    }

    pub fn call_id(&self) -> Option<&str> {
        self.headers.get("Call-ID")
    }

    pub fn from_tag(&self) -> Option<&str> {
        self.headers.get("From").and_then(|v| param(v, "tag"))
    }

    pub fn to_tag(&self) -> Option<&str> {
        self.headers.get("To").and_then(|v| param(v, "tag")).filter(|t| !t.is_empty())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256 + self.body.len());
        let _ = write!(s, "{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&mut s, &self.headers, self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

impl Response {
    pub fn top_via(&self) -> Option<Via> {
        self.headers.get_list("Via").first().and_then(|v| Via::parse(v))
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.headers.get("CSeq").and_then(CSeq::parse)
    }

    pub fn call_id(&self) -> Option<&str> {
        self.headers.get("Call-ID")
    }

    pub fn to_tag(&self) -> Option<&str> {
        self.headers.get("To").and_then(|v| param(v, "tag")).filter(|t| !t.is_empty())
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256 + self.body.len());
        let _ = write!(s, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_headers(&mut s, &self.headers, self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

impl Message {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

fn write_headers(s: &mut String, headers: &Headers, body_len: usize) {
    for (n, v) in headers.iter() {
        if n.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let _ = write!(s, "{n}: {v}\r\n");
    }
    let _ = write!(s, "Content-Length: {body_len}\r\n\r\n");
}

/// The standard reason phrase for the codes we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// A response to `req` per RFC 3261 8.2.6: Via, From, To, Call-ID and CSeq copied; `to_tag` added to To
/// when it has none (every response but 100 should carry one).
pub fn response_to(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut headers = Headers::new();
    for v in req.headers.get_list("Via") {
        headers.push("Via", v);
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = req.headers.get(name) {
            let mut v = v.to_string();
            if name == "To" && param(&v, "tag").is_none() && status != 100 {
                if let Some(tag) = to_tag {
                    let _ = write!(v, ";tag={tag}");
                }
            }
            headers.push(name, v);
        }
    }
    Response { status, reason: reason_phrase(status).to_string(), headers, body: Vec::new() }
}

/// Parses one datagram. Never panics; see the module docs.
pub fn parse(data: &[u8]) -> Result<Message, ParseError> {
    if data.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::drop(DropReason::Oversized));
    }
    let head_end = find(data, b"\r\n\r\n").ok_or(ParseError::drop(DropReason::Unparsable))?;
    let head = std::str::from_utf8(&data[..head_end]).map_err(|_| ParseError::drop(DropReason::NotUtf8))?;
    let body = &data[head_end + 4..];
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or("");
    // Header fields, with RFC 3261 7.3.1 line folding.
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = fields.last_mut().ok_or(ParseError::drop(DropReason::Unparsable))?;
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').ok_or(ParseError::drop(DropReason::Unparsable))?;
            let name = name.trim();
            if !is_token(name) {
                return Err(ParseError::drop(DropReason::Unparsable));
            }
            fields.push((full_name(name).to_string(), value.trim().to_string()));
        }
        if fields.len() > MAX_HEADERS {
            return Err(ParseError::drop(DropReason::TooManyHeaders));
        }
        if fields.last().is_some_and(|f| f.1.len() > MAX_HEADER_VALUE_BYTES) {
            return Err(ParseError::drop(DropReason::Oversized));
        }
    }
    let headers = Headers(fields);
    let mut parts = start.splitn(3, ' ');
    let (a, b, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut msg = if a == "SIP/2.0" {
        let status: u16 = b.parse().map_err(|_| ParseError::drop(DropReason::Unparsable))?;
        if !(100..700).contains(&status) || b.len() != 3 {
            return Err(ParseError::drop(DropReason::Unparsable));
        }
        Message::Response(Response { status, reason: c.to_string(), headers, body: body.to_vec() })
    } else if c == "SIP/2.0" && is_token(a) && !b.is_empty() {
        Message::Request(Request { method: Method::parse(a), uri: b.to_string(), headers, body: body.to_vec() })
    } else {
        return Err(ParseError::drop(DropReason::Unparsable));
    };
    // From here on, a request with the five headers readable can be answered.
    let answerable = |m: &Message| match m {
        Message::Request(r) if readable_core(r) => Some(Box::new(r.clone())),
        _ => None,
    };
    let fail = |reason: DropReason, m: &Message| ParseError { reason, answerable: answerable(m) };
    let h = msg.headers();
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if h.get(name).is_none_or(str::is_empty) {
            return Err(ParseError::drop(DropReason::MissingHeader));
        }
    }
    let top_via = h.get_list("Via").first().and_then(|v| Via::parse(v));
    let Some(cseq) = h.get("CSeq").and_then(CSeq::parse) else {
        return Err(ParseError::drop(DropReason::BadCSeq));
    };
    if top_via.is_none() {
        return Err(ParseError::drop(DropReason::BadVia));
    }
    // Content-Length: on UDP the body may be longer (then truncated to it), never shorter.
    let body_len = match &msg {
        Message::Request(r) => r.body.len(),
        Message::Response(r) => r.body.len(),
    };
    let cl = match h.get("Content-Length") {
        None => body_len,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= body_len => n,
            _ => return Err(fail(DropReason::BadContentLength, &msg)),
        },
    };
    if let Message::Request(r) = &msg {
        if cseq.method != r.method {
            return Err(fail(DropReason::BadCSeq, &msg));
        }
        if r.top_via().and_then(|v| v.branch).is_none_or(|b| b.is_empty()) {
            return Err(fail(DropReason::BadVia, &msg));
        }
        if !has_scheme(&r.uri)
            || !has_scheme(addr_uri(r.headers.get("From").unwrap_or("")))
            || !has_scheme(addr_uri(r.headers.get("To").unwrap_or("")))
        {
            return Err(fail(DropReason::Unparsable, &msg));
        }
        if let Some(mf) = r.headers.get("Max-Forwards") {
            if mf.parse::<u8>().is_err() {
                return Err(fail(DropReason::Unparsable, &msg));
            }
        }
    }
    // rsip's grammar check of the whole message (start line, URI, header syntax). An unknown method is
    // checked as OPTIONS so that its request can still be answered with 501.
    let checked = match &msg {
        Message::Request(r) if matches!(r.method, Method::Other(_)) => {
            let mut probe = b"OPTIONS".to_vec();
            probe.extend_from_slice(&data[r.method.as_str().len()..head_end + 4]);
            rsip::SipMessage::try_from(probe.as_slice()).is_ok()
        }
        _ => rsip::SipMessage::try_from(&data[..head_end + 4]).is_ok(),
    };
    if !checked {
        return Err(fail(DropReason::Unparsable, &msg));
    }
    match &mut msg {
        Message::Request(r) => r.body.truncate(cl),
        Message::Response(r) => r.body.truncate(cl),
    }
    Ok(msg)
}

/// `sip:`, `sips:` or `tel:` followed by something.
fn has_scheme(uri: &str) -> bool {
    match uri.split_once(':') {
        Some((scheme, rest)) => {
            ["sip", "sips", "tel"].iter().any(|s| scheme.eq_ignore_ascii_case(s)) && !rest.is_empty()
        }
        None => false,
    }
}

fn readable_core(r: &Request) -> bool {
    r.top_via().is_some()
        && r.cseq().is_some()
        && r.headers.get("From").is_some()
        && r.headers.get("To").is_some()
        && r.call_id().is_some_and(|c| !c.is_empty())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_index_matches_all() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn params_and_uris() {
        let v = "\"A;b\" <sip:a@h;transport=udp>;tag=xyz;lr";
        assert_eq!(param(v, "tag"), Some("xyz"));
        assert_eq!(param(v, "lr"), Some(""));
        assert_eq!(param(v, "transport"), None);
        assert_eq!(addr_uri(v), "sip:a@h;transport=udp");
        assert_eq!(split_list("<sip:a,b@h>, <sip:c@h>"), vec!["<sip:a,b@h>", "<sip:c@h>"]);
        let via = Via::parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport").expect("valid via");
        assert_eq!(via.sent_by, "10.0.0.1:5060");
        assert_eq!(via.branch.as_deref(), Some("z9hG4bKabc"));
    }
}
