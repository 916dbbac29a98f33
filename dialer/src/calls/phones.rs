//! The agents' phones on one shard, sans-IO: their SIP accounts, digest authentication with the
//! challenges each account asks for, the limits on failed authentication, and the registrar.
//!
//! **Digest algorithms (RFC 8760).** A 401 carries the challenges of the phone account its To (or,
//! for an INVITE, From) user names: MD5 alone by default, because many phones (Debian 12's baresip
//! among them) give up on any non-MD5 challenge, even when an MD5 one follows; SHA-256 alone, or
//! both (SHA-256 first, the preferred one, then MD5) where the account says the phone copes. An
//! unknown user gets the default. A SHA-256 answer is accepted from any account (never weaker than
//! what was offered); an MD5 answer only from an account that is offered MD5, so an account set to
//! SHA-256 cannot be talked down to MD5.
//!
//! **Failures and limits** ([`sip::limits`]): a wrong response, an unknown user or a malformed
//! Authorization is a failure, counted per source address and per account (a realm no account has
//! is answered 403 and counted in the metrics, but bans nobody); a source past its limit
//! is refused with 403 before any digest work, an account past its limit refuses addresses it is not
//! registered from. A stale or unknown nonce with the right password is no failure (a rotated nonce
//! secret costs a phone one more challenge, nothing else).
//!
//! **Registrations** ([`sip::registrar`]): after each REGISTER, and when bindings expire, the
//! account's newest live binding is reported ([`CallEvent::Registered`], `expires_s` 0 when none is
//! left): the engine calls that one.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use sip::auth::{Algorithm, NonceKeys, NonceSigner, Verdict};
use sip::limits::{source_key, AuthLimits, LimitConfig, Refused};
use sip::message::{response_to, Method, Request, Response};
use sip::registrar::{aor_of, ContactStore, MemoryContactStore, Registrar};

use super::CallEvent;

/// The phones' settings of a shard (every shard of a deployment has the same).
#[derive(Clone, Debug)]
pub struct PhoneSettings {
    /// The secrets nonces are signed with, shared by every shard (any shard verifies any nonce).
    /// `Debug` shows no secret.
    pub nonce_keys: NonceKeys,
    pub nonce_lifetime_s: u64,
    /// Registrar bounds: below `min_expires_s` is refused with 423, above `max_expires_s` granted
    /// the maximum; `default_expires_s` when the phone names none.
    pub min_expires_s: u32,
    pub max_expires_s: u32,
    pub default_expires_s: u32,
    /// Bindings an account keeps (several phones, or a phone's stale bindings after restarts).
    pub max_bindings_per_account: usize,
    /// Accounts registered on one shard at most.
    pub max_registered: usize,
    pub limits: LimitConfig,
}

impl PhoneSettings {
    pub fn new(nonce_keys: NonceKeys) -> PhoneSettings {
        PhoneSettings {
            nonce_keys,
            nonce_lifetime_s: 300,
            min_expires_s: 30,
            max_expires_s: 3600,
            default_expires_s: 3600,
            max_bindings_per_account: 4,
            max_registered: 100_000,
            limits: LimitConfig::default(),
        }
    }
}

/// The digest challenges an account gets, in order (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DigestChallenges {
    #[default]
    Md5,
    Sha256,
    /// SHA-256, then MD5.
    Both,
}

impl DigestChallenges {
    fn algorithms(self) -> &'static [Algorithm] {
        match self {
            DigestChallenges::Md5 => &[Algorithm::Md5],
            DigestChallenges::Sha256 => &[Algorithm::Sha256],
            DigestChallenges::Both => &[Algorithm::Sha256, Algorithm::Md5],
        }
    }

    /// Whether an answer with `alg` is accepted.
    fn accepts(self, alg: Algorithm) -> bool {
        alg == Algorithm::Sha256 || self.algorithms().contains(&alg)
    }
}

/// An agent's SIP account (a row of `phones`), for digest checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub tenant_id: u64,
    /// The user the phone belongs to (the agent), if any.
    pub user_id: Option<u64>,
    pub realm: String,
    pub username: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub digest: DigestChallenges,
}

/// (realm, username): an account's name.
type AccountKey = (String, String);

/// What the phones' side counted (flushed to metrics by the shard driver).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// 401s sent (first challenges, re-challenges after failures, stale nonces).
    pub challenges: u64,
    /// Failures: a wrong response, an unknown user, a user other than the To's, a malformed header.
    pub wrong_credentials: u64,
    /// Requests for a realm no account has (403).
    pub unknown_realm: u64,
    /// Requests refused because their source address is banned (403, no digest work).
    pub refused_source: u64,
    /// Requests refused because their account is locked for addresses it is not registered from.
    pub refused_account: u64,
    pub sources_banned: u64,
    pub accounts_locked: u64,
    /// REGISTERs accepted.
    pub registrations: u64,
}

/// The phones' side of one shard (see the module docs).
pub struct Phones {
    settings: PhoneSettings,
    accounts: HashMap<AccountKey, Account>,
    realms: HashSet<String>,
    signers: HashMap<String, NonceSigner>,
    registrar: Registrar<MemoryContactStore>,
    /// The account of each registered address of record, and the other way round.
    aor_accounts: HashMap<String, AccountKey>,
    account_aors: HashMap<AccountKey, String>,
    limits: AuthLimits<AccountKey>,
    stats: AuthStats,
}

impl std::fmt::Debug for Phones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phones")
            .field("accounts", &self.accounts.len())
            .field("registered", &self.aor_accounts.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// `sip:user@host:port;params` -> (user, host), host lower-cased.
fn user_host(uri: &str) -> (String, String) {
    match sip::addr::SipUri::parse(uri) {
        Some(u) => (u.user_unescaped().into_owned(), u.host.to_ascii_lowercase()),
        None => (String::new(), String::new()),
    }
}

fn forbidden(req: &Request, reason: &str) -> Response {
    let mut r = response_to(req, 403, Some("kakeru"));
    r.reason = reason.into();
    r
}

impl Phones {
    pub fn new(settings: PhoneSettings) -> Phones {
        let mut registrar = Registrar::new(MemoryContactStore::new(settings.max_registered));
        registrar.min_expires_s = settings.min_expires_s;
        registrar.max_expires_s = settings.max_expires_s;
        registrar.default_expires_s = settings.default_expires_s;
        registrar.max_bindings_per_aor = settings.max_bindings_per_account;
        Phones {
            limits: AuthLimits::new(settings.limits),
            settings,
            accounts: HashMap::new(),
            realms: HashSet::new(),
            signers: HashMap::new(),
            registrar,
            aor_accounts: HashMap::new(),
            account_aors: HashMap::new(),
            stats: AuthStats::default(),
        }
    }

    pub fn stats(&self) -> AuthStats {
        self.stats
    }

    /// Replaces the accounts.
    pub fn set_accounts(&mut self, accounts: Vec<Account>) {
        self.accounts = accounts.into_iter().map(|a| ((a.realm.to_ascii_lowercase(), a.username.clone()), a)).collect();
        self.realms = self.accounts.keys().map(|(r, _)| r.clone()).collect();
    }

    /// Replaces the nonce secrets (a rotation): nonces of the previous ones keep verifying as long
    /// as the new set still holds them.
    pub fn set_nonce_keys(&mut self, keys: NonceKeys) {
        if keys != self.settings.nonce_keys {
            self.settings.nonce_keys = keys;
            self.signers.clear();
        }
    }

    fn signer(&mut self, realm: &str) -> &NonceSigner {
        let (keys, life) = (&self.settings.nonce_keys, self.settings.nonce_lifetime_s);
        self.signers.entry(realm.to_string()).or_insert_with(|| NonceSigner::new(keys, realm, life))
    }

    fn challenge(&mut self, now_s: u64, req: &Request, realm: &str, digest: DigestChallenges, stale: bool) -> Response {
        self.stats.challenges += 1;
        let signer = self.signer(realm).clone();
        let mut r = response_to(req, 401, Some("kakeru"));
        for alg in digest.algorithms() {
            r.headers.push("WWW-Authenticate", signer.challenge(now_s, *alg, stale));
        }
        r
    }

    /// Checks a phone's request against its account: the account when authenticated, else the 401
    /// or 403 to send. The realm is the host of the To URI (REGISTER) or the From URI (others).
    pub fn authenticate(
        &mut self,
        now: Instant,
        unix_ms: u64,
        from: SocketAddr,
        req: &Request,
    ) -> Result<Account, Response> {
        if let Err(Refused::Source(_)) = self.limits.check_source(now, from.ip()) {
            self.stats.refused_source += 1;
            return Err(forbidden(req, "Too Many Failed Attempts"));
        }
        let header = if req.method == Method::Register { "To" } else { "From" };
        let uri = req.headers.get(header).map(sip::message::addr_uri).unwrap_or("");
        let (user, realm) = user_host(uri);
        if self.accounts.is_empty() {
            // A shard that has not loaded the accounts yet (it has just started): come back soon,
            // rather than a 403 after which phones wait for minutes.
            let mut r = response_to(req, 503, Some("kakeru"));
            r.headers.push("Retry-After", "5");
            return Err(r);
        }
        if !self.realms.contains(&realm) {
            // Counted, but not towards a ban: it costs no digest work, guesses nothing, and is what
            // every phone gets while a starting shard has not loaded the accounts yet.
            self.stats.unknown_realm += 1;
            return Err(response_to(req, 403, Some("kakeru")));
        }
        let named = (realm.clone(), user.clone());
        let digest = self.accounts.get(&named).map(|a| a.digest).unwrap_or_default();
        let now_s = unix_ms / 1000;
        let Some(auth) = req.headers.get("Authorization").map(str::to_string) else {
            return Err(self.challenge(now_s, req, &realm, digest, false));
        };
        // The account the credentials name (they may name another user than the To's: a failure).
        let claimed = sip::auth::parse_params(&auth)
            .ok()
            .and_then(|p| p.into_iter().find(|(k, _)| k == "username").map(|(_, v)| v))
            .map(|u| (realm.clone(), u))
            .filter(|k| self.accounts.contains_key(k));
        if let Some(k) = &claimed {
            if self.limits.check_account(now, k).is_err() && !self.registered_from(now, k, from) {
                self.stats.refused_account += 1;
                return Err(forbidden(req, "Account Locked"));
            }
        }
        let signer = self.signer(&realm).clone();
        let accounts = &self.accounts;
        let verdict = signer.verify(now_s, req.method.as_str(), &auth, |username, alg| {
            let a = accounts.get(&(realm.clone(), username.to_string()))?;
            a.digest.accepts(alg).then(|| match alg {
                Algorithm::Md5 => a.ha1_md5.clone(),
                Algorithm::Sha256 => a.ha1_sha256.clone(),
            })
        });
        match verdict {
            Verdict::Ok { username } if username == user || user.is_empty() => {
                match self.accounts.get(&(realm.clone(), username)) {
                    Some(a) => Ok(a.clone()),
                    None => Err(self.challenge(now_s, req, &realm, digest, false)),
                }
            }
            Verdict::Stale => Err(self.challenge(now_s, req, &realm, digest, true)),
            _ => {
                self.stats.wrong_credentials += 1;
                if self.count_failure(now, from, claimed.as_ref()) {
                    return Err(forbidden(req, "Too Many Failed Attempts"));
                }
                Err(self.challenge(now_s, req, &realm, digest, false))
            }
        }
    }

    /// Counts a failure; true when it banned the source.
    fn count_failure(&mut self, now: Instant, from: SocketAddr, account: Option<&AccountKey>) -> bool {
        let bans = self.limits.failure(now, from.ip(), account);
        if bans.source.is_some() {
            self.stats.sources_banned += 1;
            tracing::warn!(source = %from.ip(), "SIP digest: source banned after repeated failures");
        }
        if bans.account.is_some() {
            self.stats.accounts_locked += 1;
            if let Some((realm, user)) = account {
                tracing::warn!(realm, user, "SIP digest: account locked for new addresses after repeated failures");
            }
        }
        bans.source.is_some()
    }

    /// Whether `account` has a live binding registered from `from`'s address.
    fn registered_from(&self, now: Instant, account: &AccountKey, from: SocketAddr) -> bool {
        let Some(aor) = self.account_aors.get(account) else { return false };
        let key = source_key(from.ip());
        self.registrar.store.lookup(now, aor).iter().any(|b| source_key(b.source.ip()) == key)
    }

    /// A REGISTER: authenticated, then handed to the registrar. Returns the response and, when it
    /// was accepted, the account's newest binding now.
    pub fn register(
        &mut self,
        now: Instant,
        unix_ms: u64,
        from: SocketAddr,
        req: &Request,
    ) -> (Response, Option<CallEvent>) {
        let account = match self.authenticate(now, unix_ms, from, req) {
            Ok(a) => a,
            Err(r) => return (r, None),
        };
        let resp = self.registrar.handle_register(now, req, from, "kakeru");
        if resp.status != 200 {
            return (resp, None);
        }
        self.stats.registrations += 1;
        let aor = aor_of(req).unwrap_or_default();
        let key = (account.realm.to_ascii_lowercase(), account.username.clone());
        self.aor_accounts.insert(aor.clone(), key.clone());
        self.account_aors.insert(key, aor.clone());
        (resp, self.registered(now, &aor))
    }

    /// The event naming `aor`'s newest live binding (or none left).
    fn registered(&mut self, now: Instant, aor: &str) -> Option<CallEvent> {
        let key = self.aor_accounts.get(aor)?.clone();
        let newest = self.registrar.newest(now, aor);
        if newest.is_none() {
            self.aor_accounts.remove(aor);
            self.account_aors.remove(&key);
        }
        let account = self.accounts.get(&key)?;
        Some(match newest {
            Some(b) => CallEvent::Registered {
                tenant_id: account.tenant_id,
                user_id: account.user_id,
                username: account.username.clone(),
                contact: b.contact.clone(),
                source: b.source,
                expires_s: u32::try_from(b.expires_at.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX),
            },
            None => CallEvent::Registered {
                tenant_id: account.tenant_id,
                user_id: account.user_id,
                username: account.username.clone(),
                contact: String::new(),
                source: SocketAddr::from(([0, 0, 0, 0], 0)),
                expires_s: 0,
            },
        })
    }

    /// When a binding next expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.registrar.store.next_expiry()
    }

    /// Drops expired bindings; the accounts that lost one, with their newest binding now.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<CallEvent> {
        let aors = self.registrar.store.expire(now);
        aors.iter().filter_map(|aor| self.registered(now, aor)).collect()
    }
}
