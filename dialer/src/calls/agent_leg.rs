//! One agent's nailed-up leg as a state machine ([`AgentLeg`]): the INVITE to the agent's phone
//! (or the browser phone's WebRTC offer, [`super::browser`]), its answer and the agent's media
//! call with hold audio, the phone's in-dialog requests, and the keys the agent presses (DTMF
//! result entry after a customer left, `#72` and park numbers). It knows its customer only by id;
//! the demux ([`CallControl`](super::CallControl)) pairs it with a customer call and ends it when
//! a method answers a [`LegDown`].

use std::time::{Duration, Instant};

use media::shard::Control;
use media::CallConfig;
use sip::dialog::Dialog;
use sip::message::{response_to, Method, Request, Response};
use sip::TxId;

use super::io::{Io, Owner, PhoneInvite, Port};
use super::{agent_media_call, negotiate, ntp_of, CallEvent, DialAgent, EntryParser, Now, ParkKeyParser, ParkKeys};

/// Where an agent's leg is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LegPhase {
    /// INVITE sent (or the browser's offer answered), not up yet.
    Inviting,
    Up,
}

/// How an agent's leg ends; the demux removes it, ends its customer and [`AgentLeg::close`]s it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LegDown {
    /// It never came up: this status is reported ([`CallEvent::AgentUnreachable`]).
    pub unreachable: Option<u16>,
    /// We end it (BYE): the phone did not.
    pub send_bye: bool,
}

impl LegDown {
    fn some(unreachable: Option<u16>, send_bye: bool) -> Option<LegDown> {
        Some(LegDown { unreachable, send_bye })
    }
}

/// The SIP phone's side of a leg (a browser phone's leg has none).
#[derive(Debug)]
struct SipSide {
    tx: TxId,
    invite: Request,
    dialog: Option<Dialog>,
    local_sdp: Vec<u8>,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct AgentLeg {
    cmd: DialAgent,
    phase: LegPhase,
    /// `None`: a browser phone's leg (WebRTC on the shard, no SIP dialog: [`super::browser`]).
    sip: Option<SipSide>,
    port: Port,
    /// The customer call bridged onto it.
    customer: Option<u64>,
    /// The call whose result the agent may key, until the deadline.
    entry: Option<(u64, Instant)>,
    parser: EntryParser,
    /// `#72` in a call, a park number out of one ([`super::park_keys`]).
    park_keys: ParkKeyParser,
    digit_timeout: Duration,
}

impl AgentLeg {
    /// The leg to a SIP phone, INVITEd ([`Io::invite_phone`]).
    pub fn sip(cmd: DialAgent, invite: PhoneInvite, digit_timeout: Duration) -> AgentLeg {
        let PhoneInvite { tx, invite, port, local_sdp } = invite;
        let sip = Some(SipSide { tx, invite, dialog: None, local_sdp });
        AgentLeg::new(cmd, sip, port, digit_timeout)
    }

    /// A browser phone's leg on `port`: its media call and WebRTC leg on the shard, answering the
    /// page's `offer`.
    pub fn browser(io: &mut Io, now: Now, cmd: DialAgent, port: Port, offer: String) -> AgentLeg {
        let leg = AgentLeg::new(cmd, None, port, io.cfg.dtmf_digit_timeout);
        leg.add_media_call(io, now);
        let webrtc = io.webrtc_leg(port);
        let call = agent_media_call(leg.agent());
        io.control(Control::SetWebRtcAgent { call, leg: Box::new(webrtc), local: port.1, offer });
        leg
    }

    fn new(cmd: DialAgent, sip: Option<SipSide>, port: Port, digit_timeout: Duration) -> AgentLeg {
        AgentLeg {
            cmd,
            phase: LegPhase::Inviting,
            sip,
            port,
            customer: None,
            entry: None,
            parser: EntryParser::new(digit_timeout),
            park_keys: ParkKeyParser::new(digit_timeout),
            digit_timeout,
        }
    }

    fn agent(&self) -> u64 {
        self.cmd.agent
    }

    #[cfg(test)]
    pub fn phase(&self) -> LegPhase {
        self.phase
    }

    pub fn is_browser(&self) -> bool {
        self.sip.is_none()
    }

    /// The customer call bridged onto it.
    pub fn customer(&self) -> Option<u64> {
        self.customer
    }

    /// Up with no customer: a customer may be bridged onto it.
    pub fn is_free(&self) -> bool {
        self.phase == LegPhase::Up && self.customer.is_none()
    }

    /// Whether `tx` is its live INVITE.
    pub fn is_invite(&self, tx: TxId) -> bool {
        self.sip.as_ref().is_some_and(|s| s.tx == tx)
    }

    /// Its INVITE's transaction and request, for its routes.
    pub fn invite(&self) -> Option<(TxId, &Request)> {
        self.sip.as_ref().map(|s| (s.tx, &s.invite))
    }

    /// `call` is bridged onto it: a result entry still open is closed.
    pub fn take_customer(&mut self, call: u64) {
        self.customer = Some(call);
        self.entry = None;
    }

    /// `call` comes back onto it (an outside transfer that failed).
    pub fn take_back(&mut self, call: u64) {
        self.customer = Some(call);
    }

    /// `call` left it (for a while, or for good with `entry_window`: the agent may key its result
    /// until then).
    pub fn customer_left(&mut self, call: u64, entry_until: Option<Instant>) {
        if self.customer != Some(call) {
            return;
        }
        self.customer = None;
        if let Some(until) = entry_until {
            self.entry = Some((call, until));
            self.parser = EntryParser::new(self.digit_timeout);
        }
    }

    /// The agent's media call, with hold audio (and the beep for bridges).
    fn add_media_call(&self, io: &mut Io, now: Now) {
        let m = agent_media_call(self.agent());
        let mut cfg = CallConfig::new(now.mono, ntp_of(now.unix_ms));
        cfg.hold_audio = io.cfg.hold_audio.clone();
        cfg.bridge_beep = io.cfg.bridge_beep.clone();
        io.control(Control::AddCall { call: m, config: Box::new(cfg) });
    }

    /// A new offer of the page (an ICE restart, a rejoin) on its leg.
    pub fn reoffer(&self, io: &mut Io, offer: String) {
        let agent = self.agent();
        if self.is_browser() {
            io.control(Control::WebRtcOffer { call: agent_media_call(agent), offer });
        } else {
            io.emit(CallEvent::BrowserFailed { agent, error: "the agent's leg is a SIP phone's".into() });
        }
    }

    /// A browser phone's leg connected (`true`) or lost.
    pub fn browser_connected(&mut self, io: &mut Io, connected: bool) -> Option<LegDown> {
        if !connected {
            // ICE lost the browser: the leg is down (the agent is 未確認 until the page rejoins).
            return LegDown::some(None, false);
        }
        if self.phase == LegPhase::Inviting {
            self.phase = LegPhase::Up;
            io.emit(CallEvent::AgentLegUp { agent: self.agent() });
        }
        None
    }

    /// A browser phone's offer was refused or its connection failed: a refused first offer ends a
    /// leg that never came up, a refused re-offer leaves the leg as it was, a closed connection
    /// ends it.
    pub fn browser_failed(&mut self, io: &mut Io, error: &str) -> Option<LegDown> {
        let inviting = self.phase == LegPhase::Inviting;
        io.emit(CallEvent::BrowserFailed { agent: self.agent(), error: error.to_string() });
        (inviting || error.contains("closed"))
            .then_some(LegDown { unreachable: inviting.then_some(488), send_bye: false })
    }

    /// A response to its INVITE.
    pub fn handle_response(&mut self, io: &mut Io, now: Now, tx: TxId, resp: Response) -> Option<LegDown> {
        let dest = self.cmd.dest;
        let s = self.sip.as_mut()?;
        if resp.cseq().map(|c| c.method) != Some(Method::Invite) || tx != s.tx || resp.status < 200 {
            return None;
        }
        if !resp.is_success() {
            return LegDown::some(Some(resp.status), false);
        }
        if let Some(d) = &s.dialog {
            io.endpoint.send_ack(dest, d.ack(d.invite_seq, None));
            return None;
        }
        let Some(d) = Dialog::uac(&s.invite, &resp) else {
            return LegDown::some(Some(500), false);
        };
        io.endpoint.send_ack(dest, d.ack(d.invite_seq, None));
        s.dialog = Some(d);
        let Some(n) = negotiate(self.port.1, &resp.body) else {
            return LegDown::some(Some(488), true);
        };
        self.phase = LegPhase::Up;
        let leg = io.leg(self.port.0, &n, true);
        self.add_media_call(io, now);
        io.control(Control::SetAgent { call: agent_media_call(self.agent()), leg: Box::new(leg) });
        io.emit(CallEvent::AgentLegUp { agent: self.agent() });
        None
    }

    /// Timer B of transaction `tx`: the phone never answered.
    pub fn handle_tx_timeout(&self, tx: TxId) -> Option<LegDown> {
        self.is_invite(tx).then_some(LegDown { unreachable: Some(408), send_bye: false })
    }

    /// An in-dialog request from the phone (its BYE ends the leg).
    pub fn handle_request(&mut self, io: &mut Io, now: Now, tx: TxId, req: &Request) -> Option<LegDown> {
        let Some(SipSide { dialog: Some(d), local_sdp, .. }) = self.sip.as_mut() else {
            io.respond(now.mono, tx, response_to(req, 481, None));
            return None;
        };
        if !d.matches_request(req) {
            io.respond(now.mono, tx, response_to(req, 481, None));
            return None;
        }
        let r = d.handle_request(req, Some(local_sdp))?;
        let ok_bye = req.method == Method::Bye && r.status == 200;
        io.respond(now.mono, tx, r);
        LegDown::some(None, false).filter(|_| ok_bye)
    }

    /// Hang up (log off): CANCEL while it rings (reported down at once; the INVITE's 487 only
    /// tidies up), BYE once up.
    pub fn hang_up(&self, io: &mut Io, now: Now) -> LegDown {
        match (self.phase, &self.sip) {
            (LegPhase::Inviting, Some(s)) => {
                io.cancel(now.mono, s.tx, Owner::Agent(self.agent()));
                LegDown { unreachable: None, send_bye: false }
            }
            (LegPhase::Inviting, None) => LegDown { unreachable: None, send_bye: false },
            (LegPhase::Up, _) => LegDown { unreachable: None, send_bye: true },
        }
    }

    /// A key the agent pressed: `#72` with a customer, a park number with none (and no result
    /// entry open: those keys are the entry's), else the result of the call that just ended.
    pub fn key(&mut self, io: &mut Io, now: Now, key: char) {
        let agent = self.agent();
        if self.customer.is_some() || self.entry.is_none() {
            let customer = self.customer;
            match (self.park_keys.push(now.mono, key, customer.is_some()), customer) {
                (Some(ParkKeys::Park), Some(call)) => io.emit(CallEvent::ParkKeyed { agent, call }),
                (Some(ParkKeys::PickUp { number }), None) => io.emit(CallEvent::PickUpKeyed { agent, number }),
                _ => {}
            }
            return;
        }
        let Some((call, until)) = self.entry else { return };
        if now.mono > until {
            self.entry = None;
            return;
        }
        match self.parser.push(now.mono, key) {
            Ok(None) => {}
            Ok(Some(entry)) => {
                self.entry = None;
                io.stats.dtmf_entries += 1;
                io.emit(CallEvent::DtmfEntry { agent, call, entry });
            }
            Err(e) => {
                io.stats.dtmf_errors += 1;
                tracing::debug!(agent, call, error = %e, "DTMF result entry refused");
            }
        }
    }

    /// The first step of ending it when we do: BYE.
    pub fn send_bye(&mut self, io: &mut Io, now: Now) {
        let dest = self.cmd.dest;
        if let Some(d) = self.sip.as_mut().and_then(|s| s.dialog.as_mut()) {
            let _ = io.endpoint.send_request(now.mono, dest, d.request(Method::Bye));
        }
    }

    /// The last step of ending it (its routes removed, its customer ended): its media call and
    /// port go, reported once.
    pub fn close(self, io: &mut Io, unreachable: Option<u16>) {
        let agent = self.agent();
        let was_up = self.phase == LegPhase::Up;
        // A browser leg has its media call from the offer on, up or not.
        if was_up || self.is_browser() {
            io.control(Control::EndCall { call: agent_media_call(agent) });
            io.close_port(self.port.0);
        } else {
            io.put_port(self.port);
        }
        match (unreachable, was_up) {
            (Some(status), false) => io.emit(CallEvent::AgentUnreachable { agent, status }),
            _ => io.emit(CallEvent::AgentLegDown { agent }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::calls::io::testing::{answer, at, events, io, media};
    use crate::calls::DtmfEntry;

    fn dial(io: &mut Io, start: Instant) -> (AgentLeg, TxId) {
        let cmd = DialAgent {
            agent: 7,
            tenant_id: 1,
            target: "sip:agent7@127.0.0.1:5062".into(),
            dest: "127.0.0.1:5062".parse().expect("addr"),
        };
        let invite = io.invite_phone(at(start, 0).mono, &cmd.target, cmd.dest, Owner::Agent(7)).expect("sent");
        let tx = invite.tx;
        (AgentLeg::sip(cmd, invite, Duration::from_secs(10)), tx)
    }

    fn up(io: &mut Io, start: Instant) -> AgentLeg {
        let (mut a, tx) = dial(io, start);
        let ok = answer(a.invite().expect("a SIP leg").1, 200);
        assert_eq!(a.handle_response(io, at(start, 1_000), tx, ok), None);
        a
    }

    fn keys(a: &mut AgentLeg, io: &mut Io, start: Instant, from_ms: u64, keys: &str) {
        for (i, k) in keys.chars().enumerate() {
            a.key(io, at(start, from_ms + 100 * i as u64), k);
        }
    }

    #[test]
    fn answered_leg_is_up_with_its_media_call() {
        let (mut io, start) = (io(), Instant::now());
        let a = up(&mut io, start);
        assert_eq!((a.phase(), a.is_free(), a.is_browser()), (LegPhase::Up, true, false));
        assert_eq!(events(&mut io), vec![CallEvent::AgentLegUp { agent: 7 }]);
        assert_eq!(media(&mut io), ["AddCall", "SetAgent"]);
        let down = a.hang_up(&mut io, at(start, 5_000));
        assert_eq!(down, LegDown { unreachable: None, send_bye: true }, "an up leg is hung up with BYE");
        a.close(&mut io, down.unreachable);
        assert_eq!(events(&mut io), vec![CallEvent::AgentLegDown { agent: 7 }]);
        assert_eq!(media(&mut io), ["EndCall", "ClosePort(2)"]);
    }

    #[test]
    fn refused_leg_is_unreachable_and_frees_its_port() {
        let (mut io, start) = (io(), Instant::now());
        let (mut a, tx) = dial(&mut io, start);
        let free = io.free_ports();
        let refused = answer(a.invite().expect("a SIP leg").1, 486);
        let down = a.handle_response(&mut io, at(start, 2_000), tx, refused).expect("the leg ends");
        assert_eq!(down, LegDown { unreachable: Some(486), send_bye: false });
        a.close(&mut io, down.unreachable);
        assert_eq!(events(&mut io), vec![CallEvent::AgentUnreachable { agent: 7, status: 486 }]);
        assert_eq!(io.free_ports(), free + 1);
        assert_eq!(media(&mut io), Vec::<String>::new(), "no media call was made");
    }

    #[test]
    fn no_answer_at_all_is_408() {
        let (mut io, start) = (io(), Instant::now());
        let (a, tx) = dial(&mut io, start);
        assert_eq!(a.handle_tx_timeout(TxId(tx.0 + 1)), None, "another transaction's timeout");
        assert_eq!(a.handle_tx_timeout(tx), Some(LegDown { unreachable: Some(408), send_bye: false }));
        assert_eq!(a.hang_up(&mut io, at(start, 100)), LegDown { unreachable: None, send_bye: false });
    }

    #[test]
    fn park_keys_with_a_customer_and_pick_up_keys_without() {
        let (mut io, start) = (io(), Instant::now());
        let mut a = up(&mut io, start);
        events(&mut io);
        a.take_customer(42);
        assert!(!a.is_free());
        keys(&mut a, &mut io, start, 2_000, "#72");
        assert_eq!(events(&mut io), vec![CallEvent::ParkKeyed { agent: 7, call: 42 }]);
        a.customer_left(42, None);
        assert!(a.is_free());
        keys(&mut a, &mut io, start, 5_000, "9001");
        assert_eq!(events(&mut io), vec![CallEvent::PickUpKeyed { agent: 7, number: 9001 }]);
    }

    #[test]
    fn result_entry_is_open_for_the_window_after_the_customer_left() {
        let (mut io, start) = (io(), Instant::now());
        let mut a = up(&mut io, start);
        events(&mut io);
        a.take_customer(42);
        a.customer_left(41, Some(at(start, 60_000).mono));
        assert_eq!(a.customer(), Some(42), "another call leaving changes nothing");
        a.customer_left(42, Some(at(start, 60_000).mono));
        keys(&mut a, &mut io, start, 10_000, "3#");
        assert_eq!(
            events(&mut io),
            vec![CallEvent::DtmfEntry { agent: 7, call: 42, entry: DtmfEntry::Result { number: 3 } }]
        );
        assert_eq!(io.stats.dtmf_entries, 1);

        // A second customer; its entry window passes unused.
        a.take_customer(43);
        a.customer_left(43, Some(at(start, 70_000).mono));
        keys(&mut a, &mut io, start, 80_000, "4#");
        assert_eq!(events(&mut io), vec![], "the window closed");
    }
}
