//! [`CallControl`], the demultiplexer (quinn-proto's `Endpoint` to its `Connection`s): it owns the
//! shard's SIP endpoint, the routing tables, the RTP port pool, the timer index and the output
//! queues ([`Io`]), the registrar ([`Phones`]), and one state machine per customer call
//! ([`CustomerCall`]), agent leg ([`AgentLeg`]), supervisor's leg and outside leg. It routes every
//! input to the one machine it concerns, and does the moves between two of them (bridge, hold,
//! park, transfer, conference, supervisors) by looking both up and handing each its part.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media::shard::{Control, Report};
use media::Role;
use rand::RngCore;
use sip::dialog;
use sip::message::{response_to, Method, Request};
use sip::{Event as SipEvent, TxId};

use super::agent_leg::{AgentLeg, LegDown};
use super::customer::{CustomerCall, Ending, Phase};
use super::io::{Io, Owner, PhoneInvite};
use super::{
    agent_media_call, agent_of_media, customer_of_media, outside, supervise, CallEvent, Command, ConferenceEnd, Config,
    DialAgent, DialCustomer, EndCause, MediaOp, Now, Party, Phones, Stats, SupervisionEnd,
};

/// The call control of one shard. See the module docs of [`super`] and of this module.
pub struct CallControl {
    pub(super) io: Io,
    pub(super) customers: HashMap<u64, CustomerCall>,
    pub(super) agents: HashMap<u64, AgentLeg>,
    pub(super) supervisors: HashMap<u64, supervise::SupervisorLeg>,
    /// Outside legs (外線転送), by their customer call.
    pub(super) outside: HashMap<u64, outside::OutsideLeg>,
    phones: Phones,
}

impl std::fmt::Debug for CallControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallControl")
            .field("customers", &self.customers.len())
            .field("agents", &self.agents.len())
            .field("stats", &self.io.stats)
            .finish()
    }
}

impl CallControl {
    pub fn new(cfg: Config, rng: Box<dyn RngCore + Send>) -> CallControl {
        let phones = Phones::new(cfg.phones.clone());
        CallControl {
            io: Io::new(cfg, rng),
            customers: HashMap::new(),
            agents: HashMap::new(),
            supervisors: HashMap::new(),
            outside: HashMap::new(),
            phones,
        }
    }

    pub fn config(&self) -> &Config {
        &self.io.cfg
    }

    pub fn stats(&self) -> Stats {
        Stats { phones: self.phones.stats(), ..self.io.stats }
    }

    /// The transaction layer's counters (drops by reason, retransmissions, timeouts).
    pub fn sip_stats(&self) -> &sip::transaction::Stats {
        self.io.endpoint.stats()
    }

    pub fn customer_calls(&self) -> usize {
        self.customers.len()
    }

    pub fn agent_legs(&self) -> usize {
        self.agents.len()
    }

    /// Free RTP ports.
    pub fn free_ports(&self) -> usize {
        self.io.free_ports()
    }

    /// Bound RTP sockets the driver handed to the shard, free for new legs.
    pub fn add_rtp_ports(&mut self, ports: impl IntoIterator<Item = (media::SocketId, SocketAddr)>) {
        self.io.add_ports(ports);
    }

    pub fn poll_transmit(&mut self) -> Option<sip::Transmit> {
        self.io.endpoint.poll_transmit()
    }

    pub fn poll_media(&mut self) -> Option<MediaOp> {
        self.io.poll_media()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.io.poll_event()
    }

    /// When [`CallControl::handle_timeout`] is next due (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.io.next_timer(), self.io.endpoint.poll_timeout(), self.phones.poll_timeout()].into_iter().flatten().min()
    }

    pub(super) fn at_capacity(&self) -> bool {
        self.customers.len() + self.agents.len() + self.supervisors.len() + self.outside.len() >= self.io.cfg.max_calls
    }

    /// INVITEs a phone for `owner` (an agent's leg, a supervisor's) when the shard has room
    /// (`Err(503)` when not, or the INVITE could not go).
    pub(super) fn invite_phone(
        &mut self,
        now: Now,
        target: &str,
        dest: SocketAddr,
        owner: Owner,
    ) -> Result<PhoneInvite, u16> {
        if self.at_capacity() {
            return Err(503);
        }
        self.io.invite_phone(now.mono, target, dest, owner)
    }

    // ---------------------------------------------------------------- inputs

    /// A datagram on the shard's SIP socket.
    pub fn handle_datagram(&mut self, now: Now, from: SocketAddr, data: &[u8]) {
        self.io.endpoint.handle_datagram(now.mono, from, data);
        self.drain_sip(now);
    }

    /// The deadline from [`CallControl::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Now) {
        self.io.endpoint.handle_timeout(now.mono);
        self.drain_sip(now);
        while let Some((at, owner)) = self.io.pop_timer(now.mono) {
            match owner {
                Owner::Customer(call) => {
                    // A deadline replaced since is stale.
                    let Some(c) = self.customers.get_mut(&call).filter(|c| c.poll_timeout() == Some(at)) else {
                        continue;
                    };
                    if let Some(end) = c.handle_timeout(&mut self.io, now) {
                        self.end_customer(now, call, end);
                    }
                }
                Owner::Outside(call) => self.outside_deadline(now, call, at),
                Owner::Agent(_) | Owner::Supervisor(_) => {}
            }
        }
        if self.phones.poll_timeout().is_some_and(|at| at <= now.mono) {
            for e in self.phones.handle_timeout(now.mono) {
                self.io.emit(e);
            }
        }
        self.drain_sip(now);
    }

    pub fn handle_command(&mut self, now: Now, cmd: Command) {
        match cmd {
            Command::DialCustomer(c) => self.dial_customer(now, c),
            Command::DialAgent(a) => self.dial_agent(now, a),
            Command::DialBrowser(b) => self.dial_browser(now, b),
            Command::Bridge { call, agent } => self.bridge(now, call, agent),
            Command::HangUpCustomer { call, by } => self.with_customer(now, call, |c, io| c.hang_up(io, now, by)),
            Command::Abandon { call } => self.with_customer(now, call, |c, io| c.abandon(io, now)),
            Command::Unbridge { call } => self.unbridge(now, call),
            Command::Cancel { call, reason } => {
                self.with_customer(now, call, |c, io| {
                    c.cancel(io, now, reason);
                    None
                });
            }
            Command::HangUpAgent { agent } => {
                if let Some(a) = self.agents.get(&agent) {
                    let down = a.hang_up(&mut self.io, now);
                    self.drop_agent(now, agent, down);
                }
            }
            Command::SetAccounts(accounts) => self.phones.set_accounts(accounts),
            Command::SetNonceKeys(keys) => self.phones.set_nonce_keys(keys),
            Command::Supervise(s) => self.supervise(now, s),
            Command::Hold { call, held } => {
                if let Some(agent) = self.customers.get(&call).and_then(|c| c.agent()) {
                    self.io.control(Control::SetHold { call: agent_media_call(agent), held });
                }
            }
            Command::Park { call, hold } => self.park(now, call, hold),
            Command::EndSupervision { supervisor } => {
                self.end_supervision(now, supervisor, SupervisionEnd::Stopped, true)
            }
            Command::TransferOutside(t) => self.transfer_outside(now, t, false),
            Command::Conference(t) => self.transfer_outside(now, t, true),
            Command::EndConference { call } => self.end_conference(now, call, ConferenceEnd::Dropped),
            Command::LeaveConference { call } => self.leave_conference(now, call),
        }
        self.drain_sip(now);
    }

    /// A report of the shard about one of our media calls.
    pub fn handle_media(&mut self, now: Now, report: &Report) {
        if self.on_browser_report(now, report) {
            return self.drain_sip(now);
        }
        match report {
            Report::SupervisorWebRtc { id, event, .. } => self.on_supervisor_webrtc(now, *id, event),
            Report::Event { call, event: media::Event::Dtmf { role: Role::Agent, digit, .. } } => {
                if let Some(a) = agent_of_media(*call).and_then(|agent| self.agents.get_mut(&agent)) {
                    a.key(&mut self.io, now, *digit);
                }
            }
            Report::Event { call, event: media::Event::PromptFinished { role: Role::Customer } } => {
                // The abandon message ended: release the customer.
                if let Some(call) = customer_of_media(*call) {
                    self.with_customer(now, call, |c, _| c.prompt_finished());
                }
            }
            Report::RecordingClosed { id, path, bytes, error, .. } => {
                self.io.emit(CallEvent::RecordingClosed {
                    call: id.0,
                    path: path.clone(),
                    bytes: *bytes,
                    error: error.clone(),
                });
            }
            _ => {}
        }
        self.drain_sip(now);
    }

    // ---------------------------------------------------------------- customer calls

    /// Hands customer call `call` (if it is here) to `f`, and ends it if `f` says so.
    fn with_customer(&mut self, now: Now, call: u64, f: impl FnOnce(&mut CustomerCall, &mut Io) -> Option<Ending>) {
        let Some(c) = self.customers.get_mut(&call) else { return };
        if let Some(end) = f(c, &mut self.io) {
            self.end_customer(now, call, end);
        }
    }

    fn end_unsent(&mut self, call: u64, cause: EndCause, reason: &str) {
        self.io.emit(CallEvent::CustomerEnded { call, end: super::CallEnd::unsent(cause, reason) });
    }

    fn dial_customer(&mut self, now: Now, cmd: Box<DialCustomer>) {
        let call = cmd.call;
        if self.customers.contains_key(&call) {
            tracing::warn!(call, "customer call already on this shard");
            return;
        }
        if self.at_capacity() {
            return self.end_unsent(call, EndCause::Capacity, "shard full");
        }
        let Some(port) = self.io.take_port() else {
            return self.end_unsent(call, EndCause::Capacity, "no RTP port");
        };
        match CustomerCall::dial(&mut self.io, now, cmd, port) {
            Ok(c) => {
                self.customers.insert(call, c);
            }
            Err(end) => self.io.emit(CallEvent::CustomerEnded { call, end }),
        }
    }

    /// Ends customer call `call` the way its machine said: unanswered, it only gives its port
    /// back; answered, it leaves its agent (whose leg may take a DTMF result), its supervisors and
    /// its outside or conference leg first. One [`CallEvent::CustomerEnded`] either way.
    pub(super) fn end_customer(&mut self, now: Now, call: u64, ending: Ending) {
        let Some(mut c) = self.customers.remove(&call) else { return };
        self.io.unroute(c.invite_tx(), c.invite());
        let end = match ending {
            Ending::Unanswered { status, reason, cause } => {
                c.close_unanswered(&mut self.io, now, status, &reason, cause)
            }
            Ending::Answered { by, cause, send_bye } => {
                if send_bye {
                    c.send_bye(&mut self.io, now);
                }
                match c.phase() {
                    Phase::Bridged { agent, .. } => {
                        self.end_supervisions_of(now, call);
                        self.end_conference(now, call, ConferenceEnd::CallEnded);
                        c.leave_agent(&mut self.io, agent);
                        let window = self.io.cfg.dtmf_entry_window;
                        let entry_until = c.cmd().dtmf_result_entry.then_some(now.mono + window);
                        if let Some(a) = self.agents.get_mut(&agent) {
                            a.customer_left(call, entry_until);
                        }
                    }
                    // 外線転送: the outside leg ends with the customer (BYE, or CANCEL while it rings).
                    Phase::Outside { .. } => self.drop_outside(now, call, true),
                    _ => {}
                }
                c.close_answered(&mut self.io, now, by, cause)
            }
        };
        self.io.emit(CallEvent::CustomerEnded { call, end });
    }

    fn bridge(&mut self, now: Now, call: u64, agent: u64) {
        let fail = |io: &mut Io, reason: &'static str| io.emit(CallEvent::BridgeFailed { call, agent, reason });
        let Some(c) = self.customers.get_mut(&call) else { return fail(&mut self.io, "no such customer call") };
        match c.phase() {
            Phase::Waiting => {}
            Phase::Bridged { agent: a, .. } if a == agent => return, // again: done already
            _ => return fail(&mut self.io, "customer not waiting"),
        }
        match self.agents.get_mut(&agent) {
            Some(a) if a.is_free() => {
                a.take_customer(call);
                c.bridge(&mut self.io, now, agent);
            }
            Some(_) => fail(&mut self.io, "agent leg busy or not up"),
            None => fail(&mut self.io, "no agent leg"),
        }
    }

    fn unbridge(&mut self, now: Now, call: u64) {
        if self.customers.get(&call).and_then(|c| c.agent()).is_none() {
            return;
        }
        self.end_supervisions_of(now, call);
        let Some(c) = self.customers.get_mut(&call) else { return };
        if let Some(agent) = c.unbridge(&mut self.io, now) {
            if let Some(a) = self.agents.get_mut(&agent) {
                a.customer_left(call, None);
            }
        }
    }

    /// パーク保留: the customer goes back to waiting (as when unbridged) for the park limit and
    /// then its own wait limit (the control service returns it to an agent at the park limit).
    fn park(&mut self, now: Now, call: u64, hold: Duration) {
        self.unbridge(now, call);
        if let Some(c) = self.customers.get_mut(&call) {
            c.park(&mut self.io, now, hold);
        }
    }

    // ---------------------------------------------------------------- agent legs

    fn dial_agent(&mut self, now: Now, cmd: DialAgent) {
        let agent = cmd.agent;
        if self.agents.contains_key(&agent) {
            tracing::debug!(agent, "agent leg already up or being set up");
            return;
        }
        match self.invite_phone(now, &cmd.target, cmd.dest, Owner::Agent(agent)) {
            Ok(invite) => {
                self.io.stats.agent_legs += 1;
                let digit_timeout = self.io.cfg.dtmf_digit_timeout;
                self.agents.insert(agent, AgentLeg::sip(cmd, invite, digit_timeout));
            }
            Err(status) => self.io.emit(CallEvent::AgentUnreachable { agent, status }),
        }
    }

    /// Ends an agent leg the way its machine said; a customer on it is hung up with it (control
    /// also asks; the second ask is a no-op).
    pub(super) fn drop_agent(&mut self, now: Now, agent: u64, down: LegDown) {
        let Some(mut a) = self.agents.remove(&agent) else { return };
        if let Some((tx, invite)) = a.invite() {
            self.io.unroute(tx, invite);
        }
        if down.send_bye {
            a.send_bye(&mut self.io, now);
        }
        if let Some(call) = a.customer() {
            self.end_customer(now, call, Ending::bye(Party::Agent, EndCause::Completed));
        }
        a.close(&mut self.io, down.unreachable);
    }

    // ---------------------------------------------------------------- SIP events

    fn drain_sip(&mut self, now: Now) {
        while let Some(ev) = self.io.endpoint.poll_event() {
            match ev {
                SipEvent::Response { tx, response } => match self.io.tx_owner(tx) {
                    Some(Owner::Customer(call)) => {
                        self.with_customer(now, call, |c, io| c.handle_response(io, now, tx, response))
                    }
                    Some(Owner::Agent(agent)) => {
                        let Some(a) = self.agents.get_mut(&agent) else { continue };
                        if let Some(down) = a.handle_response(&mut self.io, now, tx, response) {
                            self.drop_agent(now, agent, down);
                        }
                    }
                    Some(Owner::Supervisor(sup)) => self.on_supervisor_response(now, sup, tx, response),
                    Some(Owner::Outside(call)) => self.on_outside_response(now, call, tx, response),
                    None => {}
                },
                SipEvent::Timeout { tx } => match self.io.take_tx_owner(tx) {
                    Some(Owner::Customer(call)) => self.with_customer(now, call, |c, _| c.handle_tx_timeout(tx)),
                    Some(Owner::Agent(agent)) => {
                        if let Some(down) = self.agents.get(&agent).and_then(|a| a.handle_tx_timeout(tx)) {
                            self.drop_agent(now, agent, down);
                        }
                    }
                    Some(Owner::Supervisor(sup)) if self.is_supervisor_invite(sup, tx) => {
                        self.end_supervision(now, sup, SupervisionEnd::Unreachable(408), false);
                    }
                    Some(Owner::Outside(call)) => self.outside_timed_out(now, call, tx),
                    _ => {}
                },
                SipEvent::Terminated { tx } => {
                    // Keep the owner of a live INVITE (its final response may still come for CANCEL).
                    let live = match self.io.tx_owner(tx) {
                        Some(Owner::Customer(c)) => self.customers.get(&c).is_some_and(|x| x.invite_tx() == tx),
                        Some(Owner::Agent(a)) => self.agents.get(&a).is_some_and(|x| x.is_invite(tx)),
                        Some(Owner::Supervisor(s)) => self.is_supervisor_invite(s, tx),
                        Some(Owner::Outside(c)) => self.is_outside_invite(c, tx),
                        None => false,
                    };
                    if !live {
                        self.io.take_tx_owner(tx);
                    }
                }
                SipEvent::Request { tx, from, request } => self.on_request(now, tx, from, request),
                SipEvent::Cancelled { tx } => {
                    // A CANCEL of an INVITE someone sent us (we answer those at once; nothing pending).
                    if let Some(req) = self.io.endpoint.request(tx).cloned() {
                        let _ = self.io.endpoint.send_response(now.mono, tx, response_to(&req, 487, Some("c")));
                    }
                }
                SipEvent::Ack { .. } | SipEvent::AckTimeout { .. } => {}
            }
        }
    }

    fn on_request(&mut self, now: Now, tx: TxId, from: SocketAddr, req: Request) {
        if dialog::is_in_dialog(&req) {
            match req.call_id().and_then(|c| self.io.call_id_owner(c)) {
                Some(Owner::Customer(call)) => {
                    self.with_customer(now, call, |c, io| c.handle_request(io, now, tx, &req))
                }
                Some(Owner::Agent(agent)) => {
                    let Some(a) = self.agents.get_mut(&agent) else { return };
                    if let Some(down) = a.handle_request(&mut self.io, now, tx, &req) {
                        self.drop_agent(now, agent, down);
                    }
                }
                Some(Owner::Supervisor(sup)) => self.supervisor_request(now, sup, tx, req),
                Some(Owner::Outside(call)) => self.outside_request(now, call, tx, req),
                None => {
                    self.io.stats.stray_requests += 1;
                    self.io.respond(now.mono, tx, response_to(&req, 481, None));
                }
            }
            return;
        }
        match req.method {
            Method::Register => {
                // The registrar.
                let (resp, registered) = self.phones.register(now.mono, now.unix_ms, from, &req);
                self.io.respond(now.mono, tx, resp);
                if let Some(e) = registered {
                    self.io.emit(e);
                }
            }
            Method::Options => {
                let mut r = response_to(&req, 200, Some("kakeru"));
                r.headers.push("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER");
                r.headers.push("Accept", "application/sdp");
                self.io.respond(now.mono, tx, r);
            }
            Method::Invite => {
                // Calls from phones: authenticated like REGISTER; inbound is a later phase.
                if let Err(r) = self.phones.authenticate(now.mono, now.unix_ms, from, &req) {
                    return self.io.respond(now.mono, tx, r);
                }
                let mut r = response_to(&req, 480, Some("kakeru"));
                r.reason = "Inbound calls not served".into();
                self.io.respond(now.mono, tx, r);
            }
            _ => self.io.respond(now.mono, tx, response_to(&req, 405, Some("kakeru"))),
        }
    }
}
