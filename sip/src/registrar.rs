//! The registrar (RFC 3261 10): contacts per address of record with expiry.
//!
//! [`ContactStore`] is the boundary for sharing bindings across shards: the in-memory
//! [`MemoryContactStore`] serves one process; the driver will back the trait with Redis (a hash per AOR,
//! expiry as wall-clock ms converted from `now` by the driver). Every store is bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::message::{addr_uri, param, response_to, Request, Response};

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub contact: String,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarError {
    #[error("too many addresses of record")]
    TooManyAors,
    #[error("too many contacts for one address of record")]
    TooManyContacts,
    #[error("out-of-order REGISTER (same Call-ID, CSeq not higher)")]
    OutOfOrder,
}

/// Where bindings live. Methods take `now`; a store never reads a clock.
pub trait ContactStore {
    /// Adds or refreshes `contact` for `aor`; `expires` zero removes it.
    fn register(
        &mut self,
        now: Instant,
        aor: &str,
        contact: &str,
        expires: Duration,
        call_id: &str,
        cseq: u32,
    ) -> Result<(), RegistrarError>;
    /// Removes every binding of `aor` (`Contact: *`, `Expires: 0`).
    fn unregister_all(&mut self, aor: &str);
    /// Live contacts of `aor`.
    fn lookup(&self, now: Instant, aor: &str) -> Vec<Binding>;
    /// Drops expired bindings; returns how many.
    fn expire(&mut self, now: Instant) -> usize;
}

#[derive(Debug, Clone)]
pub struct MemoryContactStore {
    max_aors: usize,
    max_contacts_per_aor: usize,
    map: HashMap<String, Vec<Binding>>,
}

impl MemoryContactStore {
    pub fn new(max_aors: usize, max_contacts_per_aor: usize) -> MemoryContactStore {
        MemoryContactStore { max_aors, max_contacts_per_aor, map: HashMap::new() }
    }

    pub fn aor_count(&self) -> usize {
        self.map.len()
    }
}

impl ContactStore for MemoryContactStore {
    fn register(
        &mut self,
        now: Instant,
        aor: &str,
        contact: &str,
        expires: Duration,
        call_id: &str,
        cseq: u32,
    ) -> Result<(), RegistrarError> {
        // At most a day, so that `now + expires` cannot overflow.
        let expires = expires.min(Duration::from_secs(86_400));
        if !self.map.contains_key(aor) {
            if expires.is_zero() {
                return Ok(());
            }
            if self.map.len() >= self.max_aors {
                return Err(RegistrarError::TooManyAors);
            }
        }
        let list = self.map.entry(aor.to_string()).or_default();
        list.retain(|b| b.expires_at > now);
        if let Some(i) = list.iter().position(|b| b.contact == contact) {
            if list[i].call_id == call_id && cseq <= list[i].cseq {
                return Err(RegistrarError::OutOfOrder);
            }
            if expires.is_zero() {
                list.remove(i);
            } else {
                list[i] =
                    Binding { contact: contact.to_string(), expires_at: now + expires, call_id: call_id.into(), cseq };
            }
        } else if !expires.is_zero() {
            if list.len() >= self.max_contacts_per_aor {
                return Err(RegistrarError::TooManyContacts);
            }
            list.push(Binding {
                contact: contact.to_string(),
                expires_at: now + expires,
                call_id: call_id.into(),
                cseq,
            });
        }
        if list.is_empty() {
            self.map.remove(aor);
        }
        Ok(())
    }

    fn unregister_all(&mut self, aor: &str) {
        self.map.remove(aor);
    }

    fn lookup(&self, now: Instant, aor: &str) -> Vec<Binding> {
        self.map.get(aor).map(|l| l.iter().filter(|b| b.expires_at > now).cloned().collect()).unwrap_or_default()
    }

    fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        self.map.retain(|_, l| {
            let before = l.len();
            l.retain(|b| b.expires_at > now);
            n += before - l.len();
            !l.is_empty()
        });
        n
    }
}

/// Registrar policy: expiry bounds (seconds).
#[derive(Debug, Clone)]
pub struct Registrar<S> {
    pub store: S,
    pub min_expires_s: u32,
    pub max_expires_s: u32,
    pub default_expires_s: u32,
}

/// The AOR of a REGISTER: the To URI without parameters, lowercased scheme and host.
pub fn aor_of(req: &Request) -> Option<String> {
    let uri = addr_uri(req.headers.get("To")?);
    let uri = uri.split(';').next()?.split('?').next()?;
    Some(uri.to_ascii_lowercase())
}

impl<S: ContactStore> Registrar<S> {
    pub fn new(store: S) -> Registrar<S> {
        Registrar { store, min_expires_s: 60, max_expires_s: 3600, default_expires_s: 3600 }
    }

    /// Handles an (already authenticated) REGISTER and builds its response: 200 listing the live
    /// contacts with their remaining expiry, 423 with Min-Expires, 400 for a bad Contact, 500 on a full
    /// store.
    pub fn handle_register(&mut self, now: Instant, req: &Request, to_tag: &str) -> Response {
        let Some(aor) = aor_of(req) else { return response_to(req, 400, Some(to_tag)) };
        let (Some(call_id), Some(cseq)) = (req.call_id(), req.cseq()) else {
            return response_to(req, 400, Some(to_tag));
        };
        let header_expires: Option<u32> = req.headers.get("Expires").and_then(|e| e.trim().parse().ok());
        let contacts = req.headers.get_list("Contact");
        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return response_to(req, 400, Some(to_tag));
            }
            self.store.unregister_all(&aor);
            return response_to(req, 200, Some(to_tag));
        }
        for c in &contacts {
            let expires = param(c, "expires").and_then(|e| e.parse::<u32>().ok()).or(header_expires);
            let expires = expires.unwrap_or(self.default_expires_s);
            if expires != 0 && expires < self.min_expires_s {
                let mut r = response_to(req, 423, Some(to_tag));
                r.headers.push("Min-Expires", self.min_expires_s.to_string());
                return r;
            }
            let expires = expires.min(self.max_expires_s);
            let uri = addr_uri(c);
            if uri.is_empty() {
                return response_to(req, 400, Some(to_tag));
            }
            match self.store.register(now, &aor, uri, Duration::from_secs(expires.into()), call_id, cseq.seq) {
                Ok(()) => {}
                Err(RegistrarError::OutOfOrder) => return response_to(req, 500, Some(to_tag)),
                Err(_) => return response_to(req, 503, Some(to_tag)),
            }
        }
        let mut r = response_to(req, 200, Some(to_tag));
        for b in self.store.lookup(now, &aor) {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            r.headers.push("Contact", format!("<{}>;expires={left}", b.contact));
        }
        r
    }
}
