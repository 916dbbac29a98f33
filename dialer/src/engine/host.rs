//! One dialer host's engines: the demultiplexer in front of the per-tenant [`Engine`]s, sans-IO like
//! them (quinn-proto's endpoint in front of its connections).
//!
//! It routes each input to the engine it concerns: a shard event by its call or agent (learned from
//! the dial commands the engines send out), a registration by its tenant, everything else as the
//! driver addressed it. It also keeps the one thing shared by tenants: the phones' SIP accounts,
//! which every shard needs as one set.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use store::dialing::PhoneAccount;

use super::core::{CoreConfig, Engine, EngineStats, Input, Output};
use crate::calls::{self, CallEvent, Command, Now};

/// Ended calls remembered for their recording's closing (a recording closes after its call ends).
pub const RECENTLY_ENDED: usize = 65_536;

/// What the host is told.
#[derive(Debug)]
pub enum HostInput {
    /// An input addressed to one tenant's engine.
    Tenant { tenant: u64, input: Input },
    /// An event of a shard's call control: routed by its call, agent or tenant.
    Shard { shard: usize, event: CallEvent },
    /// The tenant's phone accounts (replaces that tenant's set).
    Accounts { tenant: u64, accounts: Vec<PhoneAccount> },
    /// Begin the stop of every engine.
    Stop,
}

/// The engines of one dialer host. See the module docs.
pub struct Host {
    cfg: Arc<CoreConfig>,
    /// Serve only these tenants (`None`: every tenant).
    serves: Option<HashSet<u64>>,
    engines: BTreeMap<u64, Engine>,
    call_tenant: HashMap<u64, u64>,
    /// Calls ended, oldest first, still in `call_tenant` for their recording's closing.
    ended: VecDeque<u64>,
    agent_tenant: HashMap<u64, u64>,
    accounts: BTreeMap<u64, Vec<calls::Account>>,
    /// Engines that may have output.
    dirty: VecDeque<u64>,
    out: VecDeque<Output>,
    stopping: bool,
    /// Shard events for no known call, agent or tenant.
    pub unrouted: u64,
}

impl Host {
    pub fn new(cfg: CoreConfig, serves: Option<HashSet<u64>>) -> Host {
        Host {
            cfg: Arc::new(cfg),
            serves,
            engines: BTreeMap::new(),
            call_tenant: HashMap::new(),
            ended: VecDeque::new(),
            agent_tenant: HashMap::new(),
            accounts: BTreeMap::new(),
            dirty: VecDeque::new(),
            out: VecDeque::new(),
            stopping: false,
            unrouted: 0,
        }
    }

    pub fn serves(&self, tenant: u64) -> bool {
        self.serves.as_ref().is_none_or(|s| s.contains(&tenant))
    }

    pub fn engine(&self, tenant: u64) -> Option<&Engine> {
        self.engines.get(&tenant)
    }

    pub fn tenants(&self) -> impl Iterator<Item = u64> + '_ {
        self.engines.keys().copied()
    }

    /// The counters of every engine, summed.
    pub fn stats(&self) -> EngineStats {
        let mut s = EngineStats::default();
        for e in self.engines.values() {
            s += e.stats();
        }
        s
    }

    pub fn calls_in_flight(&self) -> usize {
        self.engines.values().map(Engine::calls_in_flight).sum()
    }

    pub fn is_preparing(&self) -> bool {
        self.engines.values().any(Engine::is_preparing)
    }

    /// Every engine has stopped (see [`Engine::is_stopped`]).
    pub fn is_stopped(&self) -> bool {
        self.stopping && self.engines.values().all(Engine::is_stopped)
    }

    pub fn handle_input(&mut self, now: Now, input: HostInput) {
        match input {
            HostInput::Tenant { tenant, input } => self.route_input(now, tenant, input),
            HostInput::Shard { shard, event } => match self.route(&event) {
                Some(tenant) => {
                    if let CallEvent::CustomerEnded { call, .. } = &event {
                        self.ended.push_back(*call);
                        while self.ended.len() > RECENTLY_ENDED {
                            if let Some(old) = self.ended.pop_front() {
                                self.call_tenant.remove(&old);
                            }
                        }
                    }
                    // A recording closes also mid-call (a transfer moves the customer to another
                    // agent's leg): the call is forgotten with the recently ended ones only.
                    self.route_input(now, tenant, Input::Shard { shard, event });
                }
                None => {
                    self.unrouted += 1;
                    tracing::debug!(?event, "a shard event for no call, agent or tenant of this host");
                }
            },
            HostInput::Accounts { tenant, accounts } => {
                if !self.serves(tenant) {
                    return;
                }
                let phones: HashMap<String, i64> = accounts.iter().map(|a| (a.username.clone(), a.phone_id)).collect();
                let list: Vec<calls::Account> = accounts
                    .into_iter()
                    .map(|a| calls::Account {
                        tenant_id: tenant,
                        user_id: a.user_id.and_then(|u| u64::try_from(u).ok()),
                        realm: a.realm,
                        username: a.username,
                        ha1_md5: a.ha1_md5,
                        ha1_sha256: a.ha1_sha256,
                        digest: match a.digest {
                            store::dialing::DigestAlgorithms::Md5 => calls::DigestChallenges::Md5,
                            store::dialing::DigestAlgorithms::Sha256 => calls::DigestChallenges::Sha256,
                            store::dialing::DigestAlgorithms::Both => calls::DigestChallenges::Both,
                        },
                    })
                    .collect();
                self.accounts.insert(tenant, list);
                let all: Vec<calls::Account> = self.accounts.values().flatten().cloned().collect();
                for shard in 0..self.cfg.shards.max(1) {
                    self.out.push_back(Output::Shard { shard, command: Command::SetAccounts(all.clone()) });
                }
                self.route_input(now, tenant, Input::Phones(phones));
            }
            HostInput::Stop => {
                self.stopping = true;
                let tenants: Vec<u64> = self.engines.keys().copied().collect();
                for t in tenants {
                    self.route_input(now, t, Input::Stop);
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Now) {
        for (t, e) in self.engines.iter_mut() {
            if e.poll_timeout() <= now.mono {
                e.handle_timeout(now);
                self.dirty.push_back(*t);
            }
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        while let Some(&t) = self.dirty.front() {
            let Some(e) = self.engines.get_mut(&t) else {
                self.dirty.pop_front();
                continue;
            };
            match e.poll_output() {
                Output::Timeout(_) => {
                    self.dirty.pop_front();
                }
                o => {
                    self.learn(t, &o);
                    return o;
                }
            }
        }
        Output::Timeout(self.poll_timeout())
    }

    pub fn poll_timeout(&self) -> Instant {
        self.engines
            .values()
            .map(Engine::poll_timeout)
            .min()
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600))
    }

    fn route_input(&mut self, now: Now, tenant: u64, input: Input) {
        if !self.serves(tenant) {
            return;
        }
        if let Input::Recovered { agents, .. } = &input {
            for a in agents {
                self.agent_tenant.insert(a.agent, tenant);
            }
        }
        if let Input::Agent(wire::agent::Event::Command(c)) = &input {
            if let Some(agent) = command_agent(c) {
                self.agent_tenant.insert(agent, tenant);
            }
        }
        let cfg = self.cfg.clone();
        let e = self.engines.entry(tenant).or_insert_with(|| Engine::new(tenant, cfg));
        if self.stopping && !matches!(input, Input::Stop) && !e.is_stopped() {
            // An engine made during the stop stops too.
            e.handle_input(now, Input::Stop);
        }
        e.handle_input(now, input);
        self.dirty.push_back(tenant);
    }

    /// Which calls and agents belong to which tenant, from the engines' own commands.
    fn learn(&mut self, tenant: u64, o: &Output) {
        if let Output::Shard { command, .. } = o {
            match command {
                Command::DialCustomer(d) => {
                    self.call_tenant.insert(d.call, tenant);
                }
                Command::DialAgent(d) => {
                    self.agent_tenant.insert(d.agent, tenant);
                }
                Command::DialBrowser(d) => {
                    self.agent_tenant.insert(d.agent, tenant);
                }
                _ => {}
            }
        }
    }

    fn route(&self, event: &CallEvent) -> Option<u64> {
        match event {
            CallEvent::CustomerRinging { call }
            | CallEvent::CustomerAnswered { call, .. }
            | CallEvent::Bridged { call, .. }
            | CallEvent::BridgeFailed { call, .. }
            | CallEvent::CustomerEnded { call, .. }
            | CallEvent::RecordingClosed { call, .. }
            | CallEvent::SupervisorJoined { call, .. }
            | CallEvent::SupervisorBrowserAnswer { call, .. }
            | CallEvent::SupervisorBrowserFailed { call, .. }
            | CallEvent::SupervisorLeft { call, .. }
            | CallEvent::OutsideAnswered { call, .. }
            | CallEvent::OutsideFailed { call, .. }
            | CallEvent::ConferenceJoined { call, .. }
            | CallEvent::ConferenceEnded { call, .. } => self.call_tenant.get(call).copied(),
            CallEvent::AgentLegUp { agent }
            | CallEvent::AgentLegDown { agent }
            | CallEvent::AgentUnreachable { agent, .. }
            | CallEvent::DtmfEntry { agent, .. }
            | CallEvent::ParkKeyed { agent, .. }
            | CallEvent::PickUpKeyed { agent, .. }
            | CallEvent::BrowserAnswer { agent, .. }
            | CallEvent::BrowserFailed { agent, .. } => self.agent_tenant.get(agent).copied(),
            CallEvent::Registered { tenant_id, .. } => Some(*tenant_id).filter(|t| self.serves(*t)),
        }
    }
}

fn command_agent(c: &wire::agent::Command) -> Option<u64> {
    use wire::agent::Command as C;
    Some(match c {
        C::DialAgentLeg { agent_id, .. }
        | C::HangUpAgentLeg { agent_id }
        | C::Bridge { agent_id, .. }
        | C::ReleaseCustomer { agent_id, .. }
        | C::HangUpCustomer { agent_id, .. }
        | C::HoldCustomer { agent_id, .. }
        | C::ParkCustomer { agent_id, .. }
        | C::DialPreview { agent_id, .. }
        | C::TransferOutside { agent_id, .. }
        | C::Conference { agent_id, .. }
        | C::EndConference { agent_id, .. }
        | C::LeaveConference { agent_id, .. } => agent_id.0,
    })
}
