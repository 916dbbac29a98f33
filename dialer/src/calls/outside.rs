//! 外線転送: the agent hands its customer to an outside number. The shard places a second carrier
//! leg (the **outside leg**) from the call's caller ID; meanwhile the customer is off the agent's
//! leg, back on its own media call hearing the waiting audio, and the agent hears its hold audio.
//! When the outside party answers, its leg joins the customer's own media call in the agent's
//! place (a plain two-party relay; the call's one recording goes on in the same file,
//! [`Control::StartRecording`] resuming it) and the agent is free ([`CallEvent::OutsideAnswered`]).
//! When it does not (busy, refused, no answer within the ring timeout, no port), the customer goes
//! back onto the agent's leg as before ([`CallEvent::OutsideFailed`], with why). Once the two are
//! bridged, either one hanging up hangs up the other; the customer call's one
//! [`CallEvent::CustomerEnded`] ends both.
//!
//! 電話会議 (three-party conference) places the same outside leg but leaves the customer with the
//! agent: once it answers, the outside party joins the agent's media call as a third leg mixed like
//! a barging supervisor (each of the three hears the other two; the two-party relay of other calls
//! is untouched). The agent may drop the third party ([`Command::EndConference`]) or leave
//! ([`Command::LeaveConference`], an attended transfer): the outside party then takes the agent's
//! place in the customer's own media call exactly as after an outside transfer.

use super::*;

/// Transfer the bridged customer `call` to the outside number `tel`.
#[derive(Clone, Debug)]
pub struct TransferOutside {
    pub call: u64,
    /// Digits only, leading 0.
    pub tel: String,
    /// 発信者番号 of the outside leg (the call's own); `None` withholds it (184 prefix).
    pub caller_id: Option<String>,
    /// CANCEL the outside leg when not answered by then; the customer goes back to the agent.
    pub ring_timeout: Duration,
}

/// The outside leg's id among the agent media call's mixed legs (supervisors are user ids, far
/// below).
pub fn conference_leg_id(call: u64) -> u64 {
    (1 << 63) | call
}

/// Why a three-party conference ended (or never began).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConferenceEnd {
    /// The agent dropped the third party.
    Dropped,
    /// The third party hung up.
    PartyHungUp,
    /// The customer or the agent's leg ended the call.
    CallEnded,
    /// The agent left: the customer and the third party go on (an attended transfer).
    AgentLeft,
    /// The third party never answered.
    NotAnswered(OutsideFailure),
}

impl ConferenceEnd {
    /// The name in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ConferenceEnd::Dropped => "dropped",
            ConferenceEnd::PartyHungUp => "party_hung_up",
            ConferenceEnd::CallEnded => "call_ended",
            ConferenceEnd::AgentLeft => "agent_left",
            ConferenceEnd::NotAnswered(f) => f.as_str(),
        }
    }
}

/// Why an outside transfer did not reach the outside party.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutsideFailure {
    /// 486/600: busy.
    Busy,
    /// No answer within the ring timeout (or the carrier's own 408/480).
    NoAnswer,
    /// Any other final failure from the carrier (declined, not in service, ...).
    Refused,
    /// Not placed: no RTP port, the shard full, or the INVITE could not be sent.
    NotPlaced,
}

impl OutsideFailure {
    /// The name in JSON (the agent's page words it).
    pub fn as_str(self) -> &'static str {
        match self {
            OutsideFailure::Busy => "busy",
            OutsideFailure::NoAnswer => "no_answer",
            OutsideFailure::Refused => "refused",
            OutsideFailure::NotPlaced => "not_placed",
        }
    }

    fn of_status(status: u16) -> OutsideFailure {
        match status {
            486 | 600 => OutsideFailure::Busy,
            408 | 480 => OutsideFailure::NoAnswer,
            _ => OutsideFailure::Refused,
        }
    }
}

#[derive(Debug)]
pub(super) struct OutsideLeg {
    /// The agent the customer goes back to when the outside party does not answer.
    agent: u64,
    tx: TxId,
    invite: Request,
    dialog: Option<Dialog>,
    port: (SocketId, SocketAddr),
    local_sdp: Vec<u8>,
    up: bool,
    /// CANCELled (ring timeout): its final answer only tidies up.
    cancelled: bool,
    deadline: Instant,
    /// A conference's third party (mixed into the agent's media call while `up`).
    conference: bool,
    /// Its leg once answered (moved to the customer's media call when the agent leaves).
    leg: Option<LegConfig>,
}

impl CallControl {
    pub(super) fn transfer_outside(&mut self, now: Now, cmd: TransferOutside, conference: bool) {
        let call = cmd.call;
        let (agent, at) = match self.customers.get(&call).map(|c| &c.state) {
            Some(CustomerState::Bridged { agent, at }) => (*agent, *at),
            _ => {
                tracing::debug!(call, "outside transfer of a call not bridged here");
                return;
            }
        };
        let not_placed = |s: &mut Self| match conference {
            true => s.emit(CallEvent::ConferenceEnded {
                call,
                agent,
                reason: ConferenceEnd::NotAnswered(OutsideFailure::NotPlaced),
            }),
            false => s.emit(CallEvent::OutsideFailed { call, agent, status: 503, reason: OutsideFailure::NotPlaced }),
        };
        if self.outside.contains_key(&call) || self.at_capacity() {
            return not_placed(self);
        }
        let Some(port) = self.take_port() else {
            return not_placed(self);
        };
        let (invite, call_id, local_sdp) = self.carrier_invite(port.1, &cmd.tel, cmd.caller_id.as_deref());
        let Ok(tx) = self.endpoint.send_request(now.mono, self.cfg.carrier, invite.clone()) else {
            self.ports.push(port);
            return not_placed(self);
        };
        self.tx_owner.insert(tx, Owner::Outside(call));
        self.call_ids.insert(call_id, Owner::Outside(call));
        let deadline = now.mono + cmd.ring_timeout;
        self.schedule(TimerKey::Outside(call), deadline);
        self.outside.insert(
            call,
            OutsideLeg {
                agent,
                tx,
                invite,
                dialog: None,
                port,
                local_sdp,
                up: false,
                cancelled: false,
                deadline,
                conference,
                leg: None,
            },
        );
        if conference {
            // The customer and the agent talk on while the third party's phone rings.
            return;
        }
        // The customer leaves the agent's leg for its own media call and its waiting audio.
        self.end_supervisions_of(now, call);
        let c = self.customers.get_mut(&call).expect("invariant: looked up above");
        c.state = CustomerState::Outside { agent: Some(agent), at };
        let waiting = c.cmd.waiting_audio.clone();
        if let Some(a) = self.agents.get_mut(&agent) {
            if a.customer == Some(call) {
                a.customer = None;
            }
        }
        let (am, cm) = (agent_media_call(agent), customer_media_call(call));
        self.control(Control::StopRecording { call: am });
        self.control(Control::MoveCustomer { from: am, to: cm });
        if waiting.is_some() {
            self.control(Control::SetLoop { call: cm, role: Role::Customer, clip: waiting });
        }
    }

    pub(super) fn on_outside_response(&mut self, now: Now, call: u64, tx: TxId, resp: Response) {
        let Some(o) = self.outside.get_mut(&call) else { return };
        if resp.cseq().map(|c| c.method) != Some(Method::Invite) || tx != o.tx || resp.status < 200 {
            return;
        }
        if resp.is_success() {
            if let Some(d) = &o.dialog {
                let ack = d.ack(d.invite_seq, None);
                self.endpoint.send_ack(self.cfg.carrier, ack);
                return;
            }
            let Some(d) = Dialog::uac(&o.invite, &resp) else {
                if o.conference {
                    self.drop_outside(now, call, true);
                    return self.conference_failed(call, OutsideFailure::Refused);
                }
                return self.outside_failed(now, call, 500, OutsideFailure::Refused);
            };
            let ack = d.ack(d.invite_seq, None);
            self.endpoint.send_ack(self.cfg.carrier, ack);
            o.dialog = Some(d);
            if o.cancelled {
                // Answered despite our CANCEL: the customer is back with its agent; hang up.
                return self.drop_outside(now, call, true);
            }
            let Some(n) = negotiate(o.port.1, &resp.body) else {
                let conference = o.conference;
                self.drop_outside(now, call, true);
                if conference {
                    return self.conference_failed(call, OutsideFailure::Refused);
                }
                return self.return_to_agent(now, call, 488, OutsideFailure::Refused);
            };
            o.up = true;
            if o.conference {
                return self.conference_answered(now, call, &n);
            }
            let (port, agent) = (o.port.0, o.agent);
            let still = matches!(
                self.customers.get(&call).map(|c| &c.state),
                Some(CustomerState::Outside { agent: Some(_), .. })
            );
            if !still {
                return self.drop_outside(now, call, true);
            }
            let leg = self.leg(port, &n, false);
            let cm = customer_media_call(call);
            let c = self.customers.get_mut(&call).expect("invariant: checked above");
            let at = match c.state {
                CustomerState::Outside { at, .. } => at,
                _ => now.mono,
            };
            c.state = CustomerState::Outside { agent: None, at };
            let recording = c.cmd.recording.clone();
            self.control(Control::SetLoop { call: cm, role: Role::Customer, clip: None });
            self.control(Control::SetAgent { call: cm, leg: Box::new(leg) });
            if let Some(path) = recording {
                // The call's one recording goes on (customer left, the outside party right).
                self.control(Control::StartRecording {
                    call: cm,
                    id: RecordingId(call),
                    path,
                    codec: media::Codec::Pcmu,
                });
            }
            return self.emit(CallEvent::OutsideAnswered { call, agent });
        }
        if o.cancelled {
            return self.drop_outside(now, call, false);
        }
        let (status, conference) = (resp.status, o.conference);
        self.drop_outside(now, call, false);
        if conference {
            return self.conference_failed(call, OutsideFailure::of_status(status));
        }
        self.return_to_agent(now, call, status, OutsideFailure::of_status(status));
    }

    fn outside_failed(&mut self, now: Now, call: u64, status: u16, reason: OutsideFailure) {
        self.drop_outside(now, call, true);
        self.return_to_agent(now, call, status, reason);
    }

    /// The outside party did not come: the customer goes back onto its agent's leg (or, when that
    /// leg is gone, is hung up).
    fn return_to_agent(&mut self, now: Now, call: u64, status: u16, reason: OutsideFailure) {
        let Some(c) = self.customers.get_mut(&call) else { return };
        let CustomerState::Outside { agent: Some(agent), at } = c.state else { return };
        let recording = c.cmd.recording.clone();
        let free = self.agents.get(&agent).is_some_and(|a| a.state == AgentState::Up && a.customer.is_none());
        if !free {
            self.emit(CallEvent::OutsideFailed { call, agent, status, reason });
            return self.end_answered(now, call, Party::System, EndCause::Completed);
        }
        let c = self.customers.get_mut(&call).expect("invariant: looked up above");
        c.state = CustomerState::Bridged { agent, at };
        if let Some(a) = self.agents.get_mut(&agent) {
            a.customer = Some(call);
        }
        let am = agent_media_call(agent);
        self.control(Control::MoveCustomer { from: customer_media_call(call), to: am });
        if let Some(path) = recording {
            self.control(Control::StartRecording { call: am, id: RecordingId(call), path, codec: media::Codec::Pcmu });
        }
        self.emit(CallEvent::OutsideFailed { call, agent, status, reason });
    }

    /// Ends the outside leg of `call` (`hang_up`: BYE when up, CANCEL while it rings).
    pub(super) fn drop_outside(&mut self, now: Now, call: u64, hang_up: bool) {
        let Some(mut o) = self.outside.remove(&call) else { return };
        self.tx_owner.remove(&o.tx);
        if let Some(cid) = o.invite.call_id() {
            self.call_ids.remove(cid);
        }
        if hang_up {
            if let Some(d) = o.dialog.as_mut() {
                let bye = d.request(Method::Bye);
                if let Ok(tx) = self.endpoint.send_request(now.mono, self.cfg.carrier, bye) {
                    self.tx_owner.insert(tx, Owner::Outside(call));
                }
            } else if !o.cancelled {
                if let Ok(Some(cancel)) = self.endpoint.cancel(now.mono, o.tx) {
                    self.tx_owner.insert(cancel, Owner::Outside(call));
                }
            }
        }
        if o.up {
            if o.conference {
                // A third party: mixed into the agent's media call until now.
                let id = conference_leg_id(call);
                self.control(Control::TakeSupervisor { call: agent_media_call(o.agent), id });
            }
            // Else its leg is the customer media call's agent, released with that call.
            self.media.push_back(MediaOp::ClosePort(o.port.0));
        } else {
            self.ports.push(o.port);
        }
    }

    /// A deadline of an outside leg: its ring timeout (CANCEL it, the customer goes back), or
    /// the grace after that CANCEL (given up).
    pub(super) fn outside_deadline(&mut self, now: Now, call: u64, at: Instant) {
        let Some(o) = self.outside.get_mut(&call) else { return };
        if o.deadline != at || o.up {
            return;
        }
        if o.cancelled {
            return self.drop_outside(now, call, false);
        }
        o.cancelled = true;
        let tx = o.tx;
        if let Ok(Some(cancel)) = self.endpoint.cancel(now.mono, tx) {
            self.tx_owner.insert(cancel, Owner::Outside(call));
        }
        // Kept (cancelled) until its final answer, bounded by the INVITE's timer B.
        let grace = now.mono + CANCEL_GRACE;
        if let Some(o) = self.outside.get_mut(&call) {
            o.deadline = grace;
        }
        self.schedule(TimerKey::Outside(call), grace);
        if self.outside.get(&call).is_some_and(|o| o.conference) {
            return self.conference_failed(call, OutsideFailure::NoAnswer);
        }
        self.return_to_agent(now, call, 408, OutsideFailure::NoAnswer);
    }

    /// Timer B of the outside INVITE: no response at all.
    pub(super) fn outside_timed_out(&mut self, now: Now, call: u64, tx: TxId) {
        let Some(o) = self.outside.get(&call) else { return };
        if o.tx != tx {
            return;
        }
        let (cancelled, conference) = (o.cancelled, o.conference);
        self.drop_outside(now, call, false);
        if conference && !cancelled {
            self.conference_failed(call, OutsideFailure::NoAnswer);
        } else if !cancelled {
            self.return_to_agent(now, call, 408, OutsideFailure::NoAnswer);
        }
    }

    /// An in-dialog request from the outside party (its BYE ends the whole call).
    pub(super) fn outside_request(&mut self, now: Now, call: u64, tx: TxId, req: Request) {
        let Some(o) = self.outside.get_mut(&call) else { return };
        let sdp = o.local_sdp.clone();
        let Some(d) = o.dialog.as_mut().filter(|d| d.matches_request(&req)) else {
            return self.respond(now, tx, response_to(&req, 481, None));
        };
        if let Some(r) = d.handle_request(&req, Some(&sdp)) {
            let ok_bye = req.method == Method::Bye && r.status == 200;
            self.respond(now, tx, r);
            if ok_bye && self.outside.get(&call).is_some_and(|o| o.conference) {
                // A third party hanging up leaves the customer with the agent.
                let agent = self.outside.get(&call).map_or(0, |o| o.agent);
                self.drop_outside(now, call, false);
                return self.emit(CallEvent::ConferenceEnded { call, agent, reason: ConferenceEnd::PartyHungUp });
            }
            if ok_bye {
                // The outside party took the agent's place: it ends the call as the agent would.
                self.drop_outside(now, call, false);
                self.end_answered(now, call, Party::Agent, EndCause::Completed);
            }
        }
    }

    /// The conference's third party answered: mixed into the agent's media call with the customer
    /// (each of the three hears the other two).
    fn conference_answered(&mut self, now: Now, call: u64, n: &Negotiated) {
        let Some(o) = self.outside.get(&call) else { return };
        let (port, agent) = (o.port.0, o.agent);
        let with_agent = matches!(
            self.customers.get(&call).map(|c| &c.state),
            Some(CustomerState::Bridged { agent: a, .. }) if *a == agent
        );
        if !with_agent {
            // The customer left the agent meanwhile: nothing to join.
            if let Some(o) = self.outside.get_mut(&call) {
                o.up = false;
            }
            self.drop_outside(now, call, true);
            return self.emit(CallEvent::ConferenceEnded { call, agent, reason: ConferenceEnd::CallEnded });
        }
        let leg = self.leg(port, n, false);
        if let Some(o) = self.outside.get_mut(&call) {
            o.leg = Some(leg.clone());
        }
        let (id, mode) = (conference_leg_id(call), media::SupervisorMode::Barge);
        self.control(Control::AddSupervisor { call: agent_media_call(agent), id, leg: Box::new(leg), mode });
        self.emit(CallEvent::ConferenceJoined { call, agent });
    }

    fn conference_failed(&mut self, call: u64, reason: OutsideFailure) {
        let agent = match self.customers.get(&call).map(|c| &c.state) {
            Some(CustomerState::Bridged { agent, .. }) => *agent,
            _ => 0,
        };
        self.emit(CallEvent::ConferenceEnded { call, agent, reason: ConferenceEnd::NotAnswered(reason) });
    }

    /// The agent drops the conference's third party (or stops calling it).
    pub(super) fn end_conference(&mut self, now: Now, call: u64, reason: ConferenceEnd) {
        let Some(o) = self.outside.get(&call).filter(|o| o.conference) else { return };
        let agent = o.agent;
        self.drop_outside(now, call, true);
        self.emit(CallEvent::ConferenceEnded { call, agent, reason });
    }

    /// The agent leaves the conference: the customer and the third party go on without it, in the
    /// customer's own media call (the attended transfer), and the agent is free.
    pub(super) fn leave_conference(&mut self, now: Now, call: u64) {
        let Some(o) = self.outside.get(&call).filter(|o| o.conference && o.up) else { return };
        let Some(leg) = o.leg.clone() else { return };
        let agent = o.agent;
        let Some(c) = self.customers.get_mut(&call) else { return };
        let CustomerState::Bridged { agent: a, at } = c.state else { return };
        if a != agent {
            return;
        }
        c.state = CustomerState::Outside { agent: None, at };
        let recording = c.cmd.recording.clone();
        if let Some(o) = self.outside.get_mut(&call) {
            o.conference = false;
        }
        if let Some(ag) = self.agents.get_mut(&agent) {
            if ag.customer == Some(call) {
                ag.customer = None;
            }
        }
        self.end_supervisions_of(now, call);
        let (am, cm) = (agent_media_call(agent), customer_media_call(call));
        self.control(Control::TakeSupervisor { call: am, id: conference_leg_id(call) });
        self.control(Control::StopRecording { call: am });
        self.control(Control::MoveCustomer { from: am, to: cm });
        self.control(Control::SetLoop { call: cm, role: Role::Customer, clip: None });
        self.control(Control::SetAgent { call: cm, leg: Box::new(leg) });
        if let Some(path) = recording {
            self.control(Control::StartRecording { call: cm, id: RecordingId(call), path, codec: media::Codec::Pcmu });
        }
        self.emit(CallEvent::ConferenceEnded { call, agent, reason: ConferenceEnd::AgentLeft });
        self.emit(CallEvent::OutsideAnswered { call, agent });
    }

    /// Whether `tx` is the live INVITE of an outside leg.
    pub(super) fn is_outside_invite(&self, call: u64, tx: TxId) -> bool {
        self.outside.get(&call).is_some_and(|o| o.tx == tx)
    }

    /// Outside legs on this shard (ringing or up).
    pub fn outside_legs(&self) -> usize {
        self.outside.len()
    }
}
