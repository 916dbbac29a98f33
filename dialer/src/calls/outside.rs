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

use std::time::{Duration, Instant};

use media::shard::Control;
use media::LegConfig;
use sip::dialog::Dialog;
use sip::message::{response_to, Method, Request, Response};
use sip::sdp::Negotiated;
use sip::TxId;

use super::customer::{Ending, Phase, CANCEL_GRACE};
use super::io::{Owner, Port};
use super::{agent_media_call, negotiate, CallControl, CallEvent, EndCause, Now, Party};

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
    port: Port,
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
        let Some(agent) = self.customers.get(&call).and_then(|c| c.agent()) else {
            tracing::debug!(call, "outside transfer of a call not bridged here");
            return;
        };
        let not_placed = |s: &mut Self| match conference {
            true => s.io.emit(CallEvent::ConferenceEnded {
                call,
                agent,
                reason: ConferenceEnd::NotAnswered(OutsideFailure::NotPlaced),
            }),
            false => {
                s.io.emit(CallEvent::OutsideFailed { call, agent, status: 503, reason: OutsideFailure::NotPlaced })
            }
        };
        if self.outside.contains_key(&call) || self.at_capacity() {
            return not_placed(self);
        }
        let Some(port) = self.io.take_port() else {
            return not_placed(self);
        };
        let (invite, call_id, local_sdp) = self.io.carrier_invite(port.1, &cmd.tel, cmd.caller_id.as_deref());
        let carrier = self.io.cfg.carrier;
        let Ok(tx) = self.io.send_routed(now.mono, carrier, invite.clone(), Owner::Outside(call)) else {
            self.io.put_port(port);
            return not_placed(self);
        };
        self.io.route_call_id(call_id, Owner::Outside(call));
        let deadline = now.mono + cmd.ring_timeout;
        self.io.arm(Owner::Outside(call), deadline);
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
        if let Some(a) = self.agents.get_mut(&agent) {
            a.customer_left(call, None);
        }
        if let Some(c) = self.customers.get_mut(&call) {
            c.leave_for_outside(&mut self.io);
        }
    }

    pub(super) fn on_outside_response(&mut self, now: Now, call: u64, tx: TxId, resp: Response) {
        let Some(o) = self.outside.get_mut(&call) else { return };
        if resp.cseq().map(|c| c.method) != Some(Method::Invite) || tx != o.tx || resp.status < 200 {
            return;
        }
        if resp.is_success() {
            let carrier = self.io.cfg.carrier;
            if let Some(d) = &o.dialog {
                self.io.endpoint.send_ack(carrier, d.ack(d.invite_seq, None));
                return;
            }
            let Some(d) = Dialog::uac(&o.invite, &resp) else {
                if o.conference {
                    self.drop_outside(now, call, true);
                    return self.conference_failed(call, OutsideFailure::Refused);
                }
                return self.outside_failed(now, call, 500, OutsideFailure::Refused);
            };
            self.io.endpoint.send_ack(carrier, d.ack(d.invite_seq, None));
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
            let Some(c) = self.customers.get_mut(&call).filter(|c| c.awaits_outside()) else {
                return self.drop_outside(now, call, true);
            };
            let leg = self.io.leg(port, &n, false);
            c.join_outside(&mut self.io, now, leg, None);
            return self.io.emit(CallEvent::OutsideAnswered { call, agent });
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
        let Phase::Outside { agent: Some(agent), .. } = c.phase() else { return };
        match self.agents.get_mut(&agent).filter(|a| a.is_free()) {
            Some(a) => {
                a.take_back(call);
                c.back_to_agent(&mut self.io);
                self.io.emit(CallEvent::OutsideFailed { call, agent, status, reason });
            }
            None => {
                self.io.emit(CallEvent::OutsideFailed { call, agent, status, reason });
                self.end_customer(now, call, Ending::bye(Party::System, EndCause::Completed));
            }
        }
    }

    /// Ends the outside leg of `call` (`hang_up`: BYE when up, CANCEL while it rings).
    pub(super) fn drop_outside(&mut self, now: Now, call: u64, hang_up: bool) {
        let Some(mut o) = self.outside.remove(&call) else { return };
        self.io.unroute(o.tx, &o.invite);
        if hang_up {
            if let Some(d) = o.dialog.as_mut() {
                let carrier = self.io.cfg.carrier;
                let _ = self.io.send_routed(now.mono, carrier, d.request(Method::Bye), Owner::Outside(call));
            } else if !o.cancelled {
                self.io.cancel(now.mono, o.tx, Owner::Outside(call));
            }
        }
        if o.up {
            if o.conference {
                // A third party: mixed into the agent's media call until now.
                let id = conference_leg_id(call);
                self.io.control(Control::TakeSupervisor { call: agent_media_call(o.agent), id });
            }
            // Else its leg is the customer media call's agent, released with that call.
            self.io.close_port(o.port.0);
        } else {
            self.io.put_port(o.port);
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
        self.io.cancel(now.mono, o.tx, Owner::Outside(call));
        // Kept (cancelled) until its final answer, bounded by the INVITE's timer B.
        o.deadline = now.mono + CANCEL_GRACE;
        self.io.arm(Owner::Outside(call), o.deadline);
        if o.conference {
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
        let Some(d) = o.dialog.as_mut().filter(|d| d.matches_request(&req)) else {
            return self.io.respond(now.mono, tx, response_to(&req, 481, None));
        };
        let Some(r) = d.handle_request(&req, Some(&o.local_sdp)) else { return };
        let ok_bye = req.method == Method::Bye && r.status == 200;
        self.io.respond(now.mono, tx, r);
        if !ok_bye {
            return;
        }
        let (conference, agent) = (o.conference, o.agent);
        self.drop_outside(now, call, false);
        if conference {
            // A third party hanging up leaves the customer with the agent.
            return self.io.emit(CallEvent::ConferenceEnded { call, agent, reason: ConferenceEnd::PartyHungUp });
        }
        // The outside party took the agent's place: it ends the call as the agent would.
        self.end_customer(now, call, Ending::bye(Party::Agent, EndCause::Completed));
    }

    /// The conference's third party answered: mixed into the agent's media call with the customer
    /// (each of the three hears the other two).
    fn conference_answered(&mut self, now: Now, call: u64, n: &Negotiated) {
        let Some(o) = self.outside.get(&call) else { return };
        let (port, agent) = (o.port.0, o.agent);
        let with_agent = self.customers.get(&call).and_then(|c| c.agent()) == Some(agent);
        if !with_agent {
            // The customer left the agent meanwhile: nothing to join.
            if let Some(o) = self.outside.get_mut(&call) {
                o.up = false;
            }
            self.drop_outside(now, call, true);
            return self.io.emit(CallEvent::ConferenceEnded { call, agent, reason: ConferenceEnd::CallEnded });
        }
        let leg = self.io.leg(port, n, false);
        if let Some(o) = self.outside.get_mut(&call) {
            o.leg = Some(leg.clone());
        }
        let (id, mode) = (conference_leg_id(call), media::SupervisorMode::Barge);
        self.io.control(Control::AddSupervisor { call: agent_media_call(agent), id, leg: Box::new(leg), mode });
        self.io.emit(CallEvent::ConferenceJoined { call, agent });
    }

    fn conference_failed(&mut self, call: u64, reason: OutsideFailure) {
        let agent = self.customers.get(&call).and_then(|c| c.agent()).unwrap_or(0);
        self.io.emit(CallEvent::ConferenceEnded { call, agent, reason: ConferenceEnd::NotAnswered(reason) });
    }

    /// The agent drops the conference's third party (or stops calling it).
    pub(super) fn end_conference(&mut self, now: Now, call: u64, reason: ConferenceEnd) {
        let Some(o) = self.outside.get(&call).filter(|o| o.conference) else { return };
        let agent = o.agent;
        self.drop_outside(now, call, true);
        self.io.emit(CallEvent::ConferenceEnded { call, agent, reason });
    }

    /// The agent leaves the conference: the customer and the third party go on without it, in the
    /// customer's own media call (the attended transfer), and the agent is free.
    pub(super) fn leave_conference(&mut self, now: Now, call: u64) {
        let Some(o) = self.outside.get(&call).filter(|o| o.conference && o.up) else { return };
        let Some(leg) = o.leg.clone() else { return };
        let agent = o.agent;
        if self.customers.get(&call).and_then(|c| c.agent()) != Some(agent) {
            return;
        }
        if let Some(o) = self.outside.get_mut(&call) {
            o.conference = false;
        }
        if let Some(a) = self.agents.get_mut(&agent) {
            a.customer_left(call, None);
        }
        self.end_supervisions_of(now, call);
        let am = agent_media_call(agent);
        self.io.control(Control::TakeSupervisor { call: am, id: conference_leg_id(call) });
        if let Some(c) = self.customers.get_mut(&call) {
            c.join_outside(&mut self.io, now, leg, Some(agent));
        }
        self.io.emit(CallEvent::ConferenceEnded { call, agent, reason: ConferenceEnd::AgentLeft });
        self.io.emit(CallEvent::OutsideAnswered { call, agent });
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
