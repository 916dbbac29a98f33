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
}

impl CallControl {
    pub(super) fn transfer_outside(&mut self, now: Now, cmd: TransferOutside) {
        let call = cmd.call;
        let (agent, at) = match self.customers.get(&call).map(|c| &c.state) {
            Some(CustomerState::Bridged { agent, at }) => (*agent, *at),
            _ => {
                tracing::debug!(call, "outside transfer of a call not bridged here");
                return;
            }
        };
        if self.outside.contains_key(&call) || self.at_capacity() {
            return self.emit(CallEvent::OutsideFailed { call, agent, status: 503, reason: OutsideFailure::NotPlaced });
        }
        let Some(port) = self.take_port() else {
            return self.emit(CallEvent::OutsideFailed { call, agent, status: 503, reason: OutsideFailure::NotPlaced });
        };
        let (invite, call_id, local_sdp) = self.carrier_invite(port.1, &cmd.tel, cmd.caller_id.as_deref());
        let Ok(tx) = self.endpoint.send_request(now.mono, self.cfg.carrier, invite.clone()) else {
            self.ports.push(port);
            return self.emit(CallEvent::OutsideFailed { call, agent, status: 503, reason: OutsideFailure::NotPlaced });
        };
        self.tx_owner.insert(tx, Owner::Outside(call));
        self.call_ids.insert(call_id, Owner::Outside(call));
        let deadline = now.mono + cmd.ring_timeout;
        self.schedule(TimerKey::Outside(call), deadline);
        self.outside.insert(
            call,
            OutsideLeg { agent, tx, invite, dialog: None, port, local_sdp, up: false, cancelled: false, deadline },
        );
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
                self.drop_outside(now, call, true);
                return self.return_to_agent(now, call, 488, OutsideFailure::Refused);
            };
            o.up = true;
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
        let status = resp.status;
        self.drop_outside(now, call, false);
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
            // Its leg is the customer media call's agent: released with that call.
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
        self.return_to_agent(now, call, 408, OutsideFailure::NoAnswer);
    }

    /// Timer B of the outside INVITE: no response at all.
    pub(super) fn outside_timed_out(&mut self, now: Now, call: u64, tx: TxId) {
        let Some(o) = self.outside.get(&call) else { return };
        if o.tx != tx {
            return;
        }
        let cancelled = o.cancelled;
        self.drop_outside(now, call, false);
        if !cancelled {
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
            if ok_bye {
                // The outside party took the agent's place: it ends the call as the agent would.
                self.drop_outside(now, call, false);
                self.end_answered(now, call, Party::Agent, EndCause::Completed);
            }
        }
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
