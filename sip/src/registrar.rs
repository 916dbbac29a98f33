//! The registrar (RFC 3261 §10.3): bindings of contacts to addresses of record, with expiry.
//!
//! - The requested expiry (the Contact's `expires` parameter, else the `Expires` header, else the
//!   default) is honoured within bounds: below the minimum (and not zero) is refused with 423 and
//!   `Min-Expires`; above the maximum is granted the maximum.
//! - `Expires: 0` (or `expires=0`) removes that binding; `Contact: *` with `Expires: 0` removes every
//!   binding of the address of record.
//! - A binding is named by its Contact URI, or, when the Contact carries `+sip.instance` (RFC 5626,
//!   RFC 5627), by that instance and its `reg-id`: a phone that restarts on another port (or with
//!   another contact user, as baresip does) replaces its binding instead of adding one. The 200
//!   echoes `+sip.instance` but neither `reg-id` nor `Require: outbound`: kakeru keeps no RFC 5626
//!   flows, so phones keep to plain refreshes (baresip with `sipnat=outbound` does).
//! - An address of record holds several bindings; [`Registrar::newest`] is the one most recently
//!   bound (a refresh keeps a binding's place). Past the per-AOR bound the oldest is dropped, so that
//!   a phone restarting without an instance id is never locked out by its own stale bindings.
//! - Same Call-ID with a CSeq not above the binding's: the whole request is refused (500) and no
//!   binding changes; a request is applied whole or not at all.
//!
//! [`ContactStore`] is the boundary for sharing bindings across shards: the in-memory
//! [`MemoryContactStore`] serves one shard. Every store is bounded; a store never reads a clock.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::addr::{NameAddr, SipUri};
use crate::message::{response_to, Request, Response};

/// The longest expiry a binding gets whatever the configuration (so `now + expiry` never overflows).
pub const MAX_EXPIRES_S: u32 = 86_400;

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI (the Request-URI of a call to this phone).
    pub contact: String,
    /// `+sip.instance`, as written inside its quotes (`<urn:uuid:…>`).
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626), with an instance only.
    pub reg_id: Option<u32>,
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    pub expires_at: Instant,
    /// When this binding was made (a refresh keeps it): the newest binding is the one called.
    pub bound_at: Instant,
    /// Order of binding within one store, for bindings made at the same instant.
    pub seq: u64,
    pub call_id: String,
    pub cseq: u32,
}

/// What names a binding within its address of record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Instance(String, Option<u32>),
    Uri(String),
}

impl Binding {
    fn key(&self) -> Key {
        binding_key(&self.contact, self.instance.as_deref(), self.reg_id)
    }

    /// The Contact header value the 200 lists this binding with.
    pub fn contact_value(&self, now: Instant) -> String {
        let left = self.expires_at.saturating_duration_since(now).as_secs();
        match &self.instance {
            Some(i) => format!("<{}>;expires={left};+sip.instance=\"{i}\"", self.contact),
            None => format!("<{}>;expires={left}", self.contact),
        }
    }
}

fn binding_key(contact: &str, instance: Option<&str>, reg_id: Option<u32>) -> Key {
    match instance {
        Some(i) => Key::Instance(i.to_string(), reg_id),
        None => Key::Uri(uri_key(contact)),
    }
}

/// A Contact URI compared per RFC 3261 §19.1.4 as far as bindings need it: scheme and host without
/// regard to case, the user exactly (unescaped), the port, the parameters as written.
fn uri_key(uri: &str) -> String {
    match SipUri::parse(uri) {
        Some(u) => format!("{}{}", u.aor(), u.params),
        None => uri.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarError {
    #[error("too many addresses of record")]
    TooManyAors,
}

/// Where bindings live. A store never reads a clock: `now` is given.
pub trait ContactStore {
    /// The live bindings of `aor`, in the order they were bound.
    fn lookup(&self, now: Instant, aor: &str) -> Vec<Binding>;
    /// Replaces the bindings of `aor` (an empty list removes the address of record).
    fn store(&mut self, aor: &str, bindings: Vec<Binding>) -> Result<(), RegistrarError>;
    /// Drops expired bindings; returns the addresses of record that lost one.
    fn expire(&mut self, now: Instant) -> Vec<String>;
    /// When the next binding expires.
    fn next_expiry(&self) -> Option<Instant>;
}

#[derive(Debug, Clone)]
struct Entry {
    bindings: Vec<Binding>,
    earliest: Instant,
}

/// Bindings in memory, bounded in addresses of record (the registrar bounds bindings per AOR).
#[derive(Debug, Clone)]
pub struct MemoryContactStore {
    max_aors: usize,
    map: HashMap<String, Entry>,
    /// Each AOR once, at its earliest expiry.
    expiries: BTreeSet<(Instant, String)>,
}

impl MemoryContactStore {
    pub fn new(max_aors: usize) -> MemoryContactStore {
        MemoryContactStore { max_aors, map: HashMap::new(), expiries: BTreeSet::new() }
    }

    pub fn aor_count(&self) -> usize {
        self.map.len()
    }
}

impl ContactStore for MemoryContactStore {
    fn lookup(&self, now: Instant, aor: &str) -> Vec<Binding> {
        self.map
            .get(aor)
            .map(|e| e.bindings.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    fn store(&mut self, aor: &str, bindings: Vec<Binding>) -> Result<(), RegistrarError> {
        if !self.map.contains_key(aor) && !bindings.is_empty() && self.map.len() >= self.max_aors {
            return Err(RegistrarError::TooManyAors);
        }
        if let Some(old) = self.map.remove(aor) {
            self.expiries.remove(&(old.earliest, aor.to_string()));
        }
        if let Some(earliest) = bindings.iter().map(|b| b.expires_at).min() {
            self.expiries.insert((earliest, aor.to_string()));
            self.map.insert(aor.to_string(), Entry { bindings, earliest });
        }
        Ok(())
    }

    fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut changed = Vec::new();
        while let Some((at, aor)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            let Some(mut e) = self.map.remove(&aor) else { continue };
            e.bindings.retain(|b| b.expires_at > now);
            if let Some(earliest) = e.bindings.iter().map(|b| b.expires_at).min() {
                e.earliest = earliest;
                self.expiries.insert((earliest, aor.clone()));
                self.map.insert(aor.clone(), e);
            }
            changed.push(aor);
        }
        changed
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }
}

/// Registrar policy (expiry bounds in seconds, bindings per address of record) over a store.
#[derive(Debug, Clone)]
pub struct Registrar<S> {
    pub store: S,
    pub min_expires_s: u32,
    pub max_expires_s: u32,
    pub default_expires_s: u32,
    pub max_bindings_per_aor: usize,
    seq: u64,
}

/// The address of record of a REGISTER: its To URI in the canonical form of §10.3 step 5.
pub fn aor_of(req: &Request) -> Option<String> {
    let to = NameAddr::parse(req.headers.get("To")?).ok()?;
    Some(SipUri::parse(to.uri)?.aor())
}

/// One Contact of a REGISTER, read.
struct Wanted {
    uri: String,
    instance: Option<String>,
    reg_id: Option<u32>,
    expires: u32,
}

/// Why a REGISTER is refused before anything changes.
enum Refusal {
    Status(u16),
    TooBrief,
}

impl<S: ContactStore> Registrar<S> {
    pub fn new(store: S) -> Registrar<S> {
        Registrar {
            store,
            min_expires_s: 60,
            max_expires_s: 3600,
            default_expires_s: 3600,
            max_bindings_per_aor: 4,
            seq: 0,
        }
    }

    /// The binding a call to `aor` goes to: the most recently bound live one.
    pub fn newest(&self, now: Instant, aor: &str) -> Option<Binding> {
        self.store.lookup(now, aor).into_iter().max_by_key(|b| (b.bound_at, b.seq))
    }

    /// Handles an (already authenticated) REGISTER from `source` and builds its response: 200 listing
    /// the live bindings with their remaining expiry, 423 with Min-Expires, 400 for a bad Contact or
    /// a bad use of `*`, 420 for a Require we do not support, 500 out of order, 503 on a full store.
    pub fn handle_register(&mut self, now: Instant, req: &Request, source: SocketAddr, to_tag: &str) -> Response {
        match self.apply(now, req, source) {
            Ok(aor) => {
                let mut r = response_to(req, 200, Some(to_tag));
                for b in self.store.lookup(now, &aor) {
                    r.headers.push("Contact", b.contact_value(now));
                }
                r
            }
            Err(Refusal::TooBrief) => {
                let mut r = response_to(req, 423, Some(to_tag));
                r.headers.push("Min-Expires", self.min_expires_s.to_string());
                r
            }
            Err(Refusal::Status(420)) => {
                let mut r = response_to(req, 420, Some(to_tag));
                r.headers.push("Unsupported", req.headers.get_list("Require").join(", "));
                r
            }
            Err(Refusal::Status(s)) => response_to(req, s, Some(to_tag)),
        }
    }

    fn expiry(&self, requested: Option<u32>) -> Result<u32, Refusal> {
        let e = requested.unwrap_or(self.default_expires_s);
        if e != 0 && e < self.min_expires_s {
            return Err(Refusal::TooBrief);
        }
        Ok(e.min(self.max_expires_s).min(MAX_EXPIRES_S))
    }

    /// Reads the request whole, then stores the new bindings of its AOR; returns the AOR.
    fn apply(&mut self, now: Instant, req: &Request, source: SocketAddr) -> Result<String, Refusal> {
        if !req.headers.get_list("Require").is_empty() {
            return Err(Refusal::Status(420));
        }
        let aor = aor_of(req).ok_or(Refusal::Status(400))?;
        let (Some(call_id), Some(cseq)) = (req.call_id(), req.cseq()) else { return Err(Refusal::Status(400)) };
        // delta-seconds; a malformed value counts as absent (the default), a huge one as the maximum.
        let seconds = |v: &str| v.trim().parse::<u64>().ok().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let header_expires = req.headers.get("Expires").and_then(seconds);
        let contacts = req.headers.get_list("Contact");
        let mut current = self.store.lookup(now, &aor);
        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(Refusal::Status(400));
            }
            // §10.3 step 6: refused when a binding has this Call-ID with a CSeq not lower.
            if current.iter().any(|b| b.call_id == call_id && cseq.seq <= b.cseq) {
                return Err(Refusal::Status(500));
            }
            self.store.store(&aor, Vec::new()).map_err(|_| Refusal::Status(503))?;
            return Ok(aor);
        }
        let mut wanted = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let a = NameAddr::parse(c).map_err(|_| Refusal::Status(400))?;
            if SipUri::parse(a.uri).is_none() && !a.uri.contains(':') {
                return Err(Refusal::Status(400));
            }
            let instance = a.param("+sip.instance").map(|p| p.value().into_owned()).filter(|i| !i.is_empty());
            let reg_id = instance.as_ref().and_then(|_| a.param("reg-id")).and_then(|p| p.raw_value().parse().ok());
            let expires = self.expiry(a.param("expires").and_then(|p| seconds(p.raw_value())).or(header_expires))?;
            wanted.push(Wanted { uri: a.uri.to_string(), instance, reg_id, expires });
        }
        // Check every contact against the bindings before changing any (§10.3 step 7).
        for w in &wanted {
            let key = binding_key(&w.uri, w.instance.as_deref(), w.reg_id);
            if let Some(b) = current.iter().find(|b| b.key() == key) {
                if b.call_id == call_id && cseq.seq <= b.cseq {
                    return Err(Refusal::Status(500));
                }
            }
        }
        for w in wanted {
            let key = binding_key(&w.uri, w.instance.as_deref(), w.reg_id);
            let existing = current.iter().position(|b| b.key() == key);
            if w.expires == 0 {
                if let Some(i) = existing {
                    current.remove(i);
                }
                continue;
            }
            let expires_at = now + Duration::from_secs(w.expires.into());
            match existing {
                Some(i) => {
                    let b = &mut current[i];
                    b.contact = w.uri;
                    b.source = source;
                    b.expires_at = expires_at;
                    b.call_id = call_id.to_string();
                    b.cseq = cseq.seq;
                }
                None => {
                    self.seq += 1;
                    current.push(Binding {
                        contact: w.uri,
                        instance: w.instance,
                        reg_id: w.reg_id,
                        source,
                        expires_at,
                        bound_at: now,
                        seq: self.seq,
                        call_id: call_id.to_string(),
                        cseq: cseq.seq,
                    });
                }
            }
        }
        // Past the bound, the oldest bindings go (they are the stale ones of a restarted phone).
        current.sort_by_key(|b| (b.bound_at, b.seq));
        let excess = current.len().saturating_sub(self.max_bindings_per_aor.max(1));
        current.drain(..excess);
        self.store.store(&aor, current).map_err(|_| Refusal::Status(503))?;
        Ok(aor)
    }
}
