//! Digest authentication (RFC 2617, RFC 7616; SIP use per RFC 3261 22), MD5 and SHA-256, qop=auth.
//!
//! Client side: [`authorize`] answers a carrier's 401/407 on a copy of the request (CSeq + 1; the
//! endpoint adds a fresh Via branch when it is sent again).
//!
//! Server side: [`NonceSigner`] issues stateless nonces, `hex(timestamp) . hex(H(secret:timestamp:realm))`,
//! so any shard holding the same secrets ([`NonceKeys`]) verifies a nonce another shard issued; a
//! right response with a nonce older than its lifetime, or signed with a secret no longer held, is
//! answered with a new challenge marked `stale=true` (not a failure). HA1 is `H(user:realm:password)` in
//! lowercase hex, the definition of `store::accounts::digest_ha1`.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::message::{CSeq, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    pub fn hash(self, input: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(input.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(input.as_bytes())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no challenge header")]
    NoChallenge,
    #[error("malformed digest field {0}")]
    Malformed(&'static str),
    #[error("unsupported algorithm or qop")]
    Unsupported,
}

/// `H(user:realm:password)` in hex.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hash(&format!("{user}:{realm}:{password}"))
}

/// The digest `response` value for qop=auth (or none when `qop` is `None`: RFC 2069 compatibility).
pub fn response_value(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<(&str, &str)>, // (nc, cnonce)
) -> String {
    let ha2 = alg.hash(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Parses `Digest k=v, k="v", ...` into pairs (keys lowercased). At most 32 parameters.
pub fn parse_params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let rest = value.trim();
    let rest = match rest.get(..6) {
        Some(s) if s.eq_ignore_ascii_case("digest") => &rest[6..],
        _ => return Err(AuthError::Malformed("scheme")),
    };
    let mut out = Vec::new();
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let k0 = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b',' {
            i += 1;
        }
        let key = rest.get(k0..i).ok_or(AuthError::Malformed("key"))?.trim().to_ascii_lowercase();
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(AuthError::Malformed("param"));
        }
        i += 1;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let val = if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let v0 = i;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            let v = rest.get(v0..i.min(bytes.len())).ok_or(AuthError::Malformed("quoted"))?.to_string();
            if i >= bytes.len() {
                return Err(AuthError::Malformed("quote"));
            }
            i += 1;
            v
        } else {
            let v0 = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            rest.get(v0..i).ok_or(AuthError::Malformed("token"))?.trim().to_string()
        };
        out.push((key, val));
        if out.len() > 32 {
            return Err(AuthError::Malformed("too many"));
        }
    }
    Ok(out)
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str())
}

/// A challenge from WWW-Authenticate / Proxy-Authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    pub qop_auth: bool,
    pub stale: bool,
}

impl Challenge {
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let p = parse_params(value)?;
        let algorithm = match get(&p, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or(AuthError::Unsupported)?,
        };
        let qop_auth = match get(&p, "qop") {
            None => false,
            Some(q) => {
                if q.split(',').any(|x| x.trim() == "auth") {
                    true
                } else {
                    return Err(AuthError::Unsupported);
                }
            }
        };
        Ok(Challenge {
            realm: get(&p, "realm").ok_or(AuthError::Malformed("realm"))?.to_string(),
            nonce: get(&p, "nonce").ok_or(AuthError::Malformed("nonce"))?.to_string(),
            opaque: get(&p, "opaque").map(str::to_string),
            algorithm,
            qop_auth,
            stale: get(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// Credentials towards a carrier.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"***").finish()
    }
}

/// The Authorization value answering `ch` for `method uri`.
pub fn authorization_value(
    ch: &Challenge,
    creds: &Credentials,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let ha1 = ha1(ch.algorithm, &creds.username, &ch.realm, &creds.password);
    let nc = format!("{nc:08x}");
    let qop = if ch.qop_auth { Some((nc.as_str(), cnonce)) } else { None };
    let resp = response_value(ch.algorithm, &ha1, &ch.nonce, method, uri, qop);
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}",
        creds.username,
        ch.realm,
        ch.nonce,
        ch.algorithm.name()
    );
    if ch.qop_auth {
        v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

/// Answers a 401/407: returns `request` with Authorization (or Proxy-Authorization), CSeq + 1 and its
/// old Via removed; send it again through the endpoint. Picks SHA-256 when offered, else MD5.
pub fn authorize(
    request: &Request,
    challenge: &Response,
    creds: &Credentials,
    cnonce: &str,
) -> Result<Request, AuthError> {
    let (hdr_in, hdr_out) = if challenge.status == 407 {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    };
    let mut chosen: Option<Challenge> = None;
    for (n, v) in challenge.headers.iter() {
        if n.eq_ignore_ascii_case(hdr_in) {
            if let Ok(ch) = Challenge::parse(v) {
                if chosen.as_ref().is_none_or(|c| c.algorithm == Algorithm::Md5) {
                    chosen = Some(ch);
                }
            }
        }
    }
    let ch = chosen.ok_or(AuthError::NoChallenge)?;
    let mut r = request.clone();
    r.headers.remove("Via");
    r.headers.remove(hdr_out);
    let cseq = r.cseq().ok_or(AuthError::Malformed("cseq"))?;
    r.headers.set("CSeq", CSeq { seq: cseq.seq + 1, method: cseq.method }.to_string());
    let v = authorization_value(&ch, creds, r.method.as_str(), &r.uri, cnonce, 1);
    r.headers.push(hdr_out, v);
    Ok(r)
}

/// The secrets nonces are signed with. The first signs new nonces; every one verifies them, so a
/// secret is rotated by putting the new one first and keeping the old one for a nonce lifetime:
/// phones holding a nonce of the old secret are neither refused nor counted as failures.
///
/// `Debug` never shows a secret (a configuration holding keys prints as `NonceKeys(2 keys)`).
#[derive(Clone, PartialEq, Eq)]
pub struct NonceKeys(Vec<Vec<u8>>);

impl std::fmt::Debug for NonceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NonceKeys({} keys, redacted)", self.0.len())
    }
}

/// Why nonce keys were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no nonce secret given")]
    Empty,
    #[error("nonce secret {0} is shorter than {MIN_SECRET_BYTES} bytes")]
    TooShort(usize),
}

/// The shortest secret accepted (16 bytes: 128 bits when random).
pub const MIN_SECRET_BYTES: usize = 16;

impl NonceKeys {
    /// One secret, current; refused when shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Result<NonceKeys, KeyError> {
        NonceKeys::from_list(vec![secret.to_vec()])
    }

    /// The current secret first, then older ones still accepted.
    pub fn from_list(keys: Vec<Vec<u8>>) -> Result<NonceKeys, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        if let Some(i) = keys.iter().position(|k| k.len() < MIN_SECRET_BYTES) {
            return Err(KeyError::TooShort(i + 1));
        }
        Ok(NonceKeys(keys))
    }

    /// A key file: one secret a line, the current one first; blank lines and `#` comments skipped.
    pub fn parse(text: &str) -> Result<NonceKeys, KeyError> {
        NonceKeys::from_list(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.as_bytes().to_vec())
                .collect(),
        )
    }

    /// A random secret (32 bytes, hex): for a single process whose nonces need not outlive it.
    pub fn generate(rng: &mut dyn rand::RngCore) -> NonceKeys {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        NonceKeys(vec![hex::encode(b).into_bytes()])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Stateless nonces from shared secrets and the wall clock (seconds), verifiable on any shard.
#[derive(Clone)]
pub struct NonceSigner {
    keys: NonceKeys,
    pub realm: String,
    pub lifetime_s: u64,
}

impl std::fmt::Debug for NonceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceSigner").field("realm", &self.realm).field("lifetime_s", &self.lifetime_s).finish()
    }
}

/// The server's verdict on an Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Correct response with a fresh nonce of ours.
    Ok { username: String },
    /// Correct response, but the nonce is older than its lifetime or not one of ours (signed with a
    /// secret since retired, or by another deployment): challenge again with stale=true. The
    /// password was right, so this is not a failure.
    Stale,
    /// A wrong response, an unknown user or a malformed header: a failure (the caller's limits
    /// count it).
    Invalid,
}

impl NonceSigner {
    pub fn new(keys: &NonceKeys, realm: &str, lifetime_s: u64) -> NonceSigner {
        NonceSigner { keys: keys.clone(), realm: realm.to_string(), lifetime_s }
    }

    fn mac(key: &[u8], ts: u64, realm: &str) -> String {
        let mut h = Sha256::new();
        h.update(key);
        h.update(format!(":{ts}:{realm}").as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    pub fn nonce(&self, now_unix_s: u64) -> String {
        format!("{now_unix_s:016x}{}", NonceSigner::mac(&self.keys.0[0], now_unix_s, &self.realm))
    }

    /// Whether `nonce` was signed by one of our keys, and when.
    fn nonce_time(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != 48 {
            return None;
        }
        let ts = u64::from_str_radix(nonce.get(..16)?, 16).ok()?;
        let mac = nonce.get(16..)?.as_bytes();
        self.keys.0.iter().any(|k| constant_eq(mac, NonceSigner::mac(k, ts, &self.realm).as_bytes())).then_some(ts)
    }

    /// A WWW-Authenticate (or Proxy-Authenticate) value.
    pub fn challenge(&self, now_unix_s: u64, alg: Algorithm, stale: bool) -> String {
        let mut v = format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
            self.realm,
            self.nonce(now_unix_s),
            alg.name()
        );
        if stale {
            v.push_str(", stale=true");
        }
        v
    }

    /// Checks `authorization` for `method`; `ha1_for(username, algorithm)` looks the account up
    /// (`None`: no such user, or an algorithm its account does not accept).
    pub fn verify(
        &self,
        now_unix_s: u64,
        method: &str,
        authorization: &str,
        ha1_for: impl FnOnce(&str, Algorithm) -> Option<String>,
    ) -> Verdict {
        let Ok(p) = parse_params(authorization) else { return Verdict::Invalid };
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(resp)) =
            (get(&p, "username"), get(&p, "realm"), get(&p, "nonce"), get(&p, "uri"), get(&p, "response"))
        else {
            return Verdict::Invalid;
        };
        if realm != self.realm {
            return Verdict::Invalid;
        }
        let Some(alg) = Algorithm::parse(get(&p, "algorithm").unwrap_or("MD5")) else { return Verdict::Invalid };
        let qop = match (get(&p, "qop"), get(&p, "nc"), get(&p, "cnonce")) {
            (Some("auth"), Some(nc), Some(cn)) => Some((nc, cn)),
            (None, _, _) => None,
            _ => return Verdict::Invalid,
        };
        let Some(ha1) = ha1_for(user, alg) else { return Verdict::Invalid };
        // The response is checked over the nonce as sent, ours or not: a right password with a
        // nonce we cannot vouch for is a stale nonce, never a failure.
        let expected = response_value(alg, &ha1.to_ascii_lowercase(), nonce, method, uri, qop);
        if !constant_eq(expected.as_bytes(), resp.to_ascii_lowercase().as_bytes()) {
            return Verdict::Invalid;
        }
        match self.nonce_time(nonce) {
            Some(ts) if now_unix_s.saturating_sub(ts) <= self.lifetime_s && ts <= now_unix_s.saturating_add(60) => {
                Verdict::Ok { username: user.to_string() }
            }
            _ => Verdict::Stale,
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
