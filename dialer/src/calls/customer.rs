//! One customer call's state machine ([`CustomerCall`]): the INVITE to the carrier (digest retry,
//! ring timeout and CANCEL), the answer (ACK, the customer's own media call with waiting audio), the
//! wait for an agent (wait limit, abandon message), the bridge onto an agent's media call and
//! back, 外線転送's moves, and its end. It owns its phase, its dialog and its one deadline; it
//! knows its agent only by id: the demux ([`CallControl`](super::CallControl)) does the agent's
//! side of every move and finishes the call when a method answers an [`Ending`].

use std::time::{Duration, Instant};

use media::shard::Control;
use media::{CallConfig, LegConfig, RecordingId, Role};
use sip::dialog::Dialog;
use sip::message::{response_to, Method, Request, Response};
use sip::TxId;

use super::io::{Io, Owner, Port};
use super::{
    agent_media_call, customer_media_call, elapsed_ms, negotiate, ntp_of, CallEnd, CallEvent, CancelReason,
    DialCustomer, EndCause, Now, Party,
};

/// A CANCELled INVITE that gets no final response is given up after this long.
pub(super) const CANCEL_GRACE: Duration = Duration::from_secs(32);
/// An abandon message longer than this is cut (the customer is released anyway).
const ABANDON_MESSAGE_MAX: Duration = Duration::from_secs(30);

/// Where a customer call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// INVITE sent, no final response.
    Inviting,
    /// Answered, waiting for an agent.
    Waiting,
    /// On an agent's leg.
    Bridged { agent: u64, at: Instant },
    /// Hearing the abandon message; BYE when it ends.
    Abandoning,
    /// 外線転送: off the agent's leg (waiting audio) while the outside leg rings (`agent`: whom it
    /// goes back to), then with the outside party (`agent` `None`); `at`: when first bridged.
    Outside { agent: Option<u64>, at: Instant },
}

/// How a customer call ends; the demux removes it and finishes it ([`CustomerCall::close_unanswered`],
/// [`CustomerCall::close_answered`] with the agent's and the other legs' side in between).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// Never answered (no dialog, no media): final `status` and `reason`.
    Unanswered { status: u16, reason: String, cause: EndCause },
    /// Answered: BYE unless the customer sent it (`send_bye`), media torn down.
    Answered { by: Party, cause: EndCause, send_bye: bool },
}

impl Ending {
    fn unanswered(status: u16, reason: &str, cause: EndCause) -> Option<Ending> {
        Some(Ending::Unanswered { status, reason: reason.to_string(), cause })
    }

    /// Answered, and we hang up (BYE).
    pub fn bye(by: Party, cause: EndCause) -> Ending {
        Ending::Answered { by, cause, send_bye: true }
    }
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct CustomerCall {
    cmd: Box<DialCustomer>,
    phase: Phase,
    /// The live INVITE (replaced by a digest retry).
    tx: TxId,
    invite: Request,
    dialog: Option<Dialog>,
    port: Port,
    launched: Instant,
    answered: Option<Instant>,
    ring_ms: u64,
    cancel: Option<CancelReason>,
    authed: bool,
    /// Deadline of the current phase (ring timeout, cancel grace, wait limit, abandon message).
    deadline: Option<Instant>,
    local_sdp: Vec<u8>,
    media_up: bool,
    /// When the wait for an agent ended (bridge or the start of the abandon message).
    wait_end: Option<Instant>,
}

impl CustomerCall {
    /// INVITEs the carrier from `port`. `Err` (the port is free again): the request could not be
    /// sent, and the call's one end.
    pub fn dial(io: &mut Io, now: Now, cmd: Box<DialCustomer>, port: Port) -> Result<CustomerCall, CallEnd> {
        let call = cmd.call;
        let (invite, call_id, local_sdp) = io.carrier_invite(port.1, &cmd.tel, cmd.caller_id.as_deref());
        let carrier = io.cfg.carrier;
        let tx = match io.send_routed(now.mono, carrier, invite.clone(), Owner::Customer(call)) {
            Ok(tx) => tx,
            Err(e) => {
                io.put_port(port);
                return Err(CallEnd::unsent(EndCause::Transport, &e.to_string()));
            }
        };
        io.stats.customer_calls += 1;
        io.route_call_id(call_id, Owner::Customer(call));
        let mut c = CustomerCall {
            cmd,
            phase: Phase::Inviting,
            tx,
            invite,
            dialog: None,
            port,
            launched: now.mono,
            answered: None,
            ring_ms: 0,
            cancel: None,
            authed: false,
            deadline: None,
            local_sdp,
            media_up: false,
            wait_end: None,
        };
        let ring_timeout = c.cmd.ring_timeout;
        c.set_deadline(io, Some(now.mono + ring_timeout));
        Ok(c)
    }

    fn owner(&self) -> Owner {
        Owner::Customer(self.cmd.call)
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn cmd(&self) -> &DialCustomer {
        &self.cmd
    }

    /// The live INVITE's transaction.
    pub fn invite_tx(&self) -> TxId {
        self.tx
    }

    /// The agent it is bridged to.
    pub fn agent(&self) -> Option<u64> {
        match self.phase {
            Phase::Bridged { agent, .. } => Some(agent),
            _ => None,
        }
    }

    /// With an agent, or with the outside party (or on its way there): ending it completes it.
    fn talking(&self) -> bool {
        matches!(self.phase, Phase::Bridged { .. } | Phase::Outside { .. })
    }

    /// The deadline of its current phase.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn set_deadline(&mut self, io: &mut Io, at: Option<Instant>) {
        self.deadline = at;
        if let Some(at) = at {
            io.arm(self.owner(), at);
        }
    }

    /// Its deadline ([`Self::poll_timeout`]) passed.
    pub fn handle_timeout(&mut self, io: &mut Io, now: Now) -> Option<Ending> {
        match self.phase {
            Phase::Inviting => match self.cancel {
                // CANCELled and no final response within the grace period: give up.
                Some(reason) => Ending::unanswered(408, "no response to CANCEL", EndCause::Cancelled(reason)),
                None => {
                    self.cancel(io, now, CancelReason::RingTimeout);
                    None
                }
            },
            Phase::Waiting => self.abandon(io, now),
            Phase::Abandoning => Some(Ending::bye(Party::System, EndCause::Abandoned)),
            Phase::Bridged { .. } | Phase::Outside { .. } => None,
        }
    }

    /// CANCELs it while it rings (once); its final response or the grace period ends it.
    pub fn cancel(&mut self, io: &mut Io, now: Now, reason: CancelReason) {
        if self.phase != Phase::Inviting || self.cancel.is_some() {
            return;
        }
        self.cancel = Some(reason);
        // Sent now, or once a provisional arrives (or a final already did).
        io.cancel(now.mono, self.tx, self.owner());
        self.set_deadline(io, Some(now.mono + CANCEL_GRACE));
    }

    /// Timer B of transaction `tx`: no response at all.
    pub fn handle_tx_timeout(&self, tx: TxId) -> Option<Ending> {
        if tx != self.tx {
            return None;
        }
        let cause = match self.cancel {
            Some(r) => EndCause::Cancelled(r),
            None => EndCause::Transport,
        };
        Ending::unanswered(408, "no response", cause)
    }

    /// A response to one of its requests.
    pub fn handle_response(&mut self, io: &mut Io, now: Now, tx: TxId, resp: Response) -> Option<Ending> {
        if resp.cseq().map(|c| c.method) != Some(Method::Invite) {
            return None; // BYE / CANCEL responses: nothing to do
        }
        if tx != self.tx {
            return None; // a response of an INVITE we replaced (digest retry)
        }
        let call = self.cmd.call;
        let carrier = io.cfg.carrier;
        if resp.status < 200 {
            if resp.status >= 180 {
                io.emit(CallEvent::CustomerRinging { call });
            }
            return None;
        }
        if resp.is_success() {
            if let Some(d) = &self.dialog {
                // A retransmitted 2xx: ACK it again (RFC 6026).
                io.endpoint.send_ack(carrier, d.ack(d.invite_seq, None));
                return None;
            }
            let Some(d) = Dialog::uac(&self.invite, &resp) else {
                return Ending::unanswered(500, "unusable 2xx", EndCause::Media);
            };
            io.endpoint.send_ack(carrier, d.ack(d.invite_seq, None));
            self.dialog = Some(d);
            self.answered = Some(now.mono);
            self.ring_ms = elapsed_ms(self.launched, now.mono);
            if let Some(reason) = self.cancel {
                // Answered despite our CANCEL: hang up at once.
                return Some(Ending::bye(Party::System, EndCause::Cancelled(reason)));
            }
            let Some(n) = negotiate(self.port.1, &resp.body) else {
                return Some(Ending::bye(Party::System, EndCause::Media));
            };
            self.phase = Phase::Waiting;
            self.media_up = true;
            let leg = io.leg(self.port.0, &n, false);
            let m = customer_media_call(call);
            let cfg = CallConfig::new(now.mono, ntp_of(now.unix_ms));
            io.control(Control::AddCall { call: m, config: Box::new(cfg) });
            io.control(Control::SetCustomer { call: m, leg: Box::new(leg) });
            if self.cmd.waiting_audio.is_some() {
                io.control(Control::SetLoop { call: m, role: Role::Customer, clip: self.cmd.waiting_audio.clone() });
            }
            io.stats.answered += 1;
            self.set_deadline(io, Some(now.mono + self.cmd.wait_limit));
            io.emit(CallEvent::CustomerAnswered { call, ring_ms: self.ring_ms });
            return None;
        }
        // A final failure.
        if matches!(resp.status, 401 | 407) && !self.authed && self.cancel.is_none() {
            if let Some(creds) = io.cfg.carrier_credentials.clone() {
                let cnonce = io.cnonce();
                if let Ok(req) = sip::auth::authorize(&self.invite, &resp, &creds, &cnonce) {
                    self.authed = true;
                    self.invite = req.clone();
                    io.stats.auth_challenges += 1;
                    match io.endpoint.send_request(now.mono, carrier, req) {
                        Ok(new_tx) => {
                            io.take_tx_owner(self.tx);
                            self.tx = new_tx;
                            io.route_tx(new_tx, self.owner());
                            return None;
                        }
                        Err(e) => return Ending::unanswered(503, &e.to_string(), EndCause::Transport),
                    }
                }
            }
        }
        let cause = match self.cancel {
            Some(r) => EndCause::Cancelled(r),
            None => EndCause::Rejected,
        };
        Ending::unanswered(resp.status, &resp.reason, cause)
    }

    /// An in-dialog request from the carrier (its BYE ends the call).
    pub fn handle_request(&mut self, io: &mut Io, now: Now, tx: TxId, req: &Request) -> Option<Ending> {
        let talking = self.talking();
        let Some(d) = self.dialog.as_mut().filter(|d| d.matches_request(req)) else {
            io.respond(now.mono, tx, response_to(req, 481, None));
            return None;
        };
        let r = d.handle_request(req, Some(&self.local_sdp))?;
        let ok_bye = req.method == Method::Bye && r.status == 200;
        io.respond(now.mono, tx, r);
        if !ok_bye {
            return None;
        }
        let cause = if talking { EndCause::Completed } else { EndCause::Abandoned };
        Some(Ending::Answered { by: Party::Customer, cause, send_bye: false })
    }

    /// No agent will take it: the campaign's abandon message, then BYE (at once without one).
    pub fn abandon(&mut self, io: &mut Io, now: Now) -> Option<Ending> {
        if self.phase != Phase::Waiting {
            return None;
        }
        match self.cmd.abandon_message.clone() {
            Some(clip) if !clip.is_empty() => {
                self.phase = Phase::Abandoning;
                self.wait_end = Some(now.mono);
                let len = Duration::from_millis(clip.len() as u64 / 8).min(ABANDON_MESSAGE_MAX);
                let m = customer_media_call(self.cmd.call);
                io.control(Control::SetLoop { call: m, role: Role::Customer, clip: None });
                io.control(Control::Play { call: m, role: Role::Customer, clip });
                // The prompt's end releases the customer; this deadline is the fallback.
                self.set_deadline(io, Some(now.mono + len + Duration::from_secs(1)));
                None
            }
            _ => Some(Ending::bye(Party::System, EndCause::Abandoned)),
        }
    }

    /// The abandon message ended: release the customer.
    pub fn prompt_finished(&self) -> Option<Ending> {
        (self.phase == Phase::Abandoning).then_some(Ending::bye(Party::System, EndCause::Abandoned))
    }

    /// Hang up (お客様通話切断, or the system): CANCEL while it rings.
    pub fn hang_up(&mut self, io: &mut Io, now: Now, by: Party) -> Option<Ending> {
        if self.phase == Phase::Inviting {
            self.cancel(io, now, CancelReason::HungUp);
            return None;
        }
        let cause = if self.talking() { EndCause::Completed } else { EndCause::Abandoned };
        Some(Ending::bye(by, cause))
    }

    /// Onto `agent`'s media call from waiting (the demux checked both sides): the beep, the
    /// recording.
    pub fn bridge(&mut self, io: &mut Io, now: Now, agent: u64) {
        let call = self.cmd.call;
        self.phase = Phase::Bridged { agent, at: now.mono };
        self.deadline = None;
        self.wait_end = Some(now.mono);
        let am = agent_media_call(agent);
        io.control(Control::MoveCustomer { from: customer_media_call(call), to: am });
        self.start_recording(io, am);
        io.stats.bridged += 1;
        io.emit(CallEvent::Bridged { call, agent });
    }

    fn start_recording(&self, io: &mut Io, on: media::shard::CallId) {
        if let Some(path) = self.cmd.recording.clone() {
            let id = RecordingId(self.cmd.call);
            io.control(Control::StartRecording { call: on, id, path, codec: media::Codec::Pcmu });
        }
    }

    /// Off its agent back to waiting (its wait limit counts from the answer, at least a second
    /// more); the agent it left.
    pub fn unbridge(&mut self, io: &mut Io, now: Now) -> Option<u64> {
        let Phase::Bridged { agent, .. } = self.phase else { return None };
        self.phase = Phase::Waiting;
        self.wait_end = None;
        let answered = self.answered.unwrap_or(now.mono);
        let deadline = (answered + self.cmd.wait_limit).max(now.mono + Duration::from_secs(1));
        self.set_deadline(io, Some(deadline));
        let cm = customer_media_call(self.cmd.call);
        io.control(Control::StopRecording { call: agent_media_call(agent) });
        io.control(Control::MoveCustomer { from: agent_media_call(agent), to: cm });
        self.loop_waiting_audio(io);
        Some(agent)
    }

    fn loop_waiting_audio(&self, io: &mut Io) {
        if self.cmd.waiting_audio.is_some() {
            let call = customer_media_call(self.cmd.call);
            io.control(Control::SetLoop { call, role: Role::Customer, clip: self.cmd.waiting_audio.clone() });
        }
    }

    /// パーク保留 after [`Self::unbridge`]: it waits the park limit `hold`, then its wait limit.
    pub fn park(&mut self, io: &mut Io, now: Now, hold: Duration) {
        if self.phase == Phase::Waiting {
            let deadline = now.mono + hold + self.cmd.wait_limit;
            self.set_deadline(io, Some(deadline));
        }
    }

    /// 外線転送 begins: off its agent onto its own media call and the waiting audio while the
    /// outside leg rings.
    pub fn leave_for_outside(&mut self, io: &mut Io) {
        let Phase::Bridged { agent, at } = self.phase else { return };
        self.phase = Phase::Outside { agent: Some(agent), at };
        let (am, cm) = (agent_media_call(agent), customer_media_call(self.cmd.call));
        io.control(Control::StopRecording { call: am });
        io.control(Control::MoveCustomer { from: am, to: cm });
        self.loop_waiting_audio(io);
    }

    /// Waits for the outside party on its way from its agent.
    pub fn awaits_outside(&self) -> bool {
        matches!(self.phase, Phase::Outside { agent: Some(_), .. })
    }

    /// The outside party (its answered `leg`) takes the agent's place on the customer's own media
    /// call; the call's one recording goes on there (customer left, the outside party right).
    /// `from_agent`: straight off the agent's media call (a conference the agent leaves).
    pub fn join_outside(&mut self, io: &mut Io, now: Now, leg: LegConfig, from_agent: Option<u64>) {
        let at = match self.phase {
            Phase::Outside { at, .. } | Phase::Bridged { at, .. } => at,
            _ => now.mono,
        };
        self.phase = Phase::Outside { agent: None, at };
        let cm = customer_media_call(self.cmd.call);
        if let Some(agent) = from_agent {
            let am = agent_media_call(agent);
            io.control(Control::StopRecording { call: am });
            io.control(Control::MoveCustomer { from: am, to: cm });
        }
        io.control(Control::SetLoop { call: cm, role: Role::Customer, clip: None });
        io.control(Control::SetAgent { call: cm, leg: Box::new(leg) });
        self.start_recording(io, cm);
    }

    /// The outside party did not come: back onto `agent`'s leg (the demux checked it is free).
    pub fn back_to_agent(&mut self, io: &mut Io) {
        let Phase::Outside { agent: Some(agent), at } = self.phase else { return };
        self.phase = Phase::Bridged { agent, at };
        let am = agent_media_call(agent);
        io.control(Control::MoveCustomer { from: customer_media_call(self.cmd.call), to: am });
        self.start_recording(io, am);
    }

    /// Ends it unanswered (its routes already removed): the port free again, its [`CallEnd`].
    pub fn close_unanswered(self, io: &mut Io, now: Now, status: u16, reason: &str, cause: EndCause) -> CallEnd {
        io.put_port(self.port);
        CallEnd {
            status,
            reason: reason.chars().take(256).collect(),
            cause,
            ended_by: if cause == EndCause::Rejected { Party::Customer } else { Party::System },
            answered: false,
            agent: None,
            ring_ms: elapsed_ms(self.launched, now.mono),
            wait_ms: 0,
            talk_ms: 0,
        }
    }

    /// Sends its BYE (the first step of ending it answered, when the customer did not).
    pub fn send_bye(&mut self, io: &mut Io, now: Now) {
        let owner = self.owner();
        if let Some(d) = self.dialog.as_mut() {
            let bye = d.request(Method::Bye);
            let carrier = io.cfg.carrier;
            let _ = io.send_routed(now.mono, carrier, bye, owner);
        }
    }

    /// Off its agent for good (the demux then frees the agent's leg): the recording closes.
    pub fn leave_agent(&self, io: &mut Io, agent: u64) {
        // The recording file is closed (and reported) with the customer's leaving.
        io.control(Control::StopRecording { call: agent_media_call(agent) });
        io.control(Control::TakeCustomer { call: agent_media_call(agent) });
    }

    /// The last step of ending it answered: its media call and port go, its [`CallEnd`].
    pub fn close_answered(self, io: &mut Io, now: Now, by: Party, cause: EndCause) -> CallEnd {
        let wait_ms = elapsed_ms(self.answered.unwrap_or(now.mono), self.wait_end.unwrap_or(now.mono));
        let (agent, talk_ms) = match self.phase {
            Phase::Bridged { agent, at } => (Some(agent), elapsed_ms(at, now.mono)),
            Phase::Outside { agent, at } => (agent, elapsed_ms(at, now.mono)),
            _ => (None, 0),
        };
        if self.media_up {
            io.control(Control::EndCall { call: customer_media_call(self.cmd.call) });
        }
        io.close_port(self.port.0);
        if cause == EndCause::Abandoned {
            io.stats.abandoned += 1;
        }
        CallEnd {
            status: 200,
            reason: match cause {
                EndCause::Abandoned => "abandoned".into(),
                _ => "BYE".into(),
            },
            cause,
            ended_by: by,
            answered: true,
            agent,
            ring_ms: self.ring_ms,
            wait_ms,
            talk_ms,
        }
    }

    /// The INVITE, for its routes.
    pub fn invite(&self) -> &Request {
        &self.invite
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::calls::io::testing::{answer, at, events, io, media};

    fn dial_cmd() -> Box<DialCustomer> {
        Box::new(DialCustomer {
            call: 42,
            tenant_id: 1,
            tel: "0312345678".into(),
            caller_id: Some("0501234567".into()),
            ring_timeout: Duration::from_secs(30),
            wait_limit: Duration::from_secs(10),
            waiting_audio: None,
            abandon_message: None,
            recording: None,
            dtmf_result_entry: false,
        })
    }

    /// A call dialled at `start` and answered 2 s later.
    fn answered(io: &mut Io, start: Instant, cmd: Box<DialCustomer>) -> CustomerCall {
        let port = io.take_port().expect("a free port");
        let mut c = CustomerCall::dial(io, at(start, 0), cmd, port).expect("sent");
        let ok = answer(c.invite(), 200);
        assert_eq!(c.handle_response(io, at(start, 2_000), c.invite_tx(), ok), None);
        c
    }

    #[test]
    fn ring_timeout_cancels_then_gives_up_after_the_grace() {
        let (mut io, start) = (io(), Instant::now());
        let port = io.take_port().expect("a free port");
        let mut c = CustomerCall::dial(&mut io, at(start, 0), dial_cmd(), port).expect("sent");
        assert!(io.endpoint.poll_transmit().is_some(), "the INVITE goes out");
        assert_eq!(c.phase(), Phase::Inviting);
        let ring = c.poll_timeout().expect("the ring timeout");
        assert_eq!(ring, start + Duration::from_secs(30));

        assert_eq!(c.handle_timeout(&mut io, at(start, 30_000)), None);
        assert_eq!(c.phase(), Phase::Inviting, "CANCELled, still waiting for the final response");
        let grace = c.poll_timeout().expect("the cancel grace");
        assert_eq!(grace, ring + CANCEL_GRACE);

        let end = c.handle_timeout(&mut io, at(start, 62_000));
        let cause = EndCause::Cancelled(CancelReason::RingTimeout);
        assert_eq!(end, Some(Ending::Unanswered { status: 408, reason: "no response to CANCEL".into(), cause }));
        let free = io.free_ports();
        let end = c.close_unanswered(&mut io, at(start, 62_000), 408, "no response to CANCEL", cause);
        assert_eq!((end.answered, end.ended_by, end.ring_ms), (false, Party::System, 62_000));
        assert_eq!(io.free_ports(), free + 1, "the unused port is free again");
        assert_eq!(events(&mut io), vec![]);
    }

    #[test]
    fn a_refusal_ends_it_unanswered_by_the_customer() {
        let (mut io, start) = (io(), Instant::now());
        let port = io.take_port().expect("a free port");
        let mut c = CustomerCall::dial(&mut io, at(start, 0), dial_cmd(), port).expect("sent");
        let ringing = response_to(c.invite(), 180, Some("far"));
        assert_eq!(c.handle_response(&mut io, at(start, 500), c.invite_tx(), ringing), None);
        assert_eq!(events(&mut io), vec![CallEvent::CustomerRinging { call: 42 }]);
        let busy = answer(c.invite(), 486);
        let end = c.handle_response(&mut io, at(start, 3_000), c.invite_tx(), busy);
        let Some(Ending::Unanswered { status, cause, .. }) = end else { panic!("unanswered end, got {end:?}") };
        assert_eq!((status, cause), (486, EndCause::Rejected));
        let end = c.close_unanswered(&mut io, at(start, 3_000), status, "Busy Here", cause);
        assert_eq!((end.ended_by, end.ring_ms, end.talk_ms), (Party::Customer, 3_000, 0));
    }

    #[test]
    fn answered_waits_then_hears_the_abandon_message_and_is_released() {
        let (mut io, start) = (io(), Instant::now());
        let mut cmd = dial_cmd();
        cmd.waiting_audio = Some(std::sync::Arc::from(vec![0i16; 160]));
        cmd.abandon_message = Some(std::sync::Arc::from(vec![0i16; 8_000])); // 1 s
        let mut c = answered(&mut io, start, cmd);
        assert_eq!(c.phase(), Phase::Waiting);
        assert_eq!(events(&mut io), vec![CallEvent::CustomerAnswered { call: 42, ring_ms: 2_000 }]);
        assert_eq!(media(&mut io), ["AddCall", "SetCustomer", "SetLoop"]);
        let limit = c.poll_timeout().expect("the wait limit");
        assert_eq!(limit, start + Duration::from_secs(12), "the wait limit counts from the answer");

        assert_eq!(c.handle_timeout(&mut io, at(start, 12_000)), None);
        assert_eq!(c.phase(), Phase::Abandoning);
        assert_eq!(media(&mut io), ["SetLoop", "Play"]);
        assert_eq!(c.poll_timeout(), Some(start + Duration::from_secs(14)), "message (1 s) plus a second");

        let end = c.prompt_finished();
        assert_eq!(end, Some(Ending::Answered { by: Party::System, cause: EndCause::Abandoned, send_bye: true }));
        let end = c.close_answered(&mut io, at(start, 13_000), Party::System, EndCause::Abandoned);
        assert_eq!((end.status, end.reason.as_str(), end.agent), (200, "abandoned", None));
        assert_eq!((end.ring_ms, end.wait_ms, end.talk_ms), (2_000, 10_000, 0));
        assert_eq!(media(&mut io), ["EndCall", "ClosePort(2)"]);
        assert_eq!(io.stats.abandoned, 1);
    }

    #[test]
    fn bridged_has_no_deadline_and_unbridged_waits_out_its_limit() {
        let (mut io, start) = (io(), Instant::now());
        let mut c = answered(&mut io, start, dial_cmd());
        media(&mut io);
        c.bridge(&mut io, at(start, 3_000), 7);
        assert_eq!(c.phase(), Phase::Bridged { agent: 7, at: start + Duration::from_secs(3) });
        assert_eq!((c.agent(), c.poll_timeout()), (Some(7), None));
        assert_eq!(
            events(&mut io),
            vec![CallEvent::CustomerAnswered { call: 42, ring_ms: 2_000 }, CallEvent::Bridged { call: 42, agent: 7 }]
        );
        assert_eq!(media(&mut io), ["MoveCustomer"]);

        // Put back at 11 s: its wait limit (answer + 10 s) is 1 s on, the least it gets.
        assert_eq!(c.unbridge(&mut io, at(start, 11_000)), Some(7));
        assert_eq!((c.phase(), c.poll_timeout()), (Phase::Waiting, Some(start + Duration::from_secs(12))));
        assert_eq!(media(&mut io), ["StopRecording", "MoveCustomer"]);
        assert_eq!(c.unbridge(&mut io, at(start, 11_000)), None, "only a bridged call is put back");

        // Parked for 60 s: the park limit, then the wait limit again.
        c.park(&mut io, at(start, 11_000), Duration::from_secs(60));
        assert_eq!(c.poll_timeout(), Some(start + Duration::from_secs(81)));

        let end = c.hang_up(&mut io, at(start, 20_000), Party::Agent);
        assert_eq!(end, Some(Ending::Answered { by: Party::Agent, cause: EndCause::Abandoned, send_bye: true }));
    }

    #[test]
    fn hanging_up_while_it_rings_cancels() {
        let (mut io, start) = (io(), Instant::now());
        let port = io.take_port().expect("a free port");
        let mut c = CustomerCall::dial(&mut io, at(start, 0), dial_cmd(), port).expect("sent");
        assert_eq!(c.hang_up(&mut io, at(start, 1_000), Party::Agent), None);
        assert_eq!(c.poll_timeout(), Some(start + Duration::from_secs(1) + CANCEL_GRACE));
        // Answered despite the CANCEL: hung up at once.
        let ok = answer(c.invite(), 200);
        let end = c.handle_response(&mut io, at(start, 1_500), c.invite_tx(), ok);
        let cause = EndCause::Cancelled(CancelReason::HungUp);
        assert_eq!(end, Some(Ending::Answered { by: Party::System, cause, send_bye: true }));
    }
}
