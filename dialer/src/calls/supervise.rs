//! Supervisors' legs: a supervisor (SV, MGR) joins an agent's bridged call from their own phone,
//! in one of three modes ([`SupervisorMode`]: モニタリング listen, ささやき whisper, 割込 barge). The
//! shard INVITEs the supervisor's phone like an agent's nailed-up leg; once it answers, its leg
//! joins the agent's media call ([`Control::AddSupervisor`]), where the media core mixes what each
//! side hears. A mode change on the same call is one [`Control::SetSupervisorMode`], no new
//! INVITE. The leg ends when the supervisor stops, their phone hangs up, or the customer leaves
//! the agent (hung up or unbridged); every join and end is one [`CallEvent`] for the records.

use media::shard::WebRtcSupervisorEvent;
use media::SupervisorMode;

use std::net::SocketAddr;

use media::shard::Control;
use sip::dialog::Dialog;
use sip::message::{response_to, Method, Request, Response};
use sip::TxId;

use super::io::{Owner, PhoneInvite, Port};
use super::{agent_media_call, negotiate, CallControl, CallEvent, Now};

/// A supervisor asks to join `call` (or to change mode on it).
#[derive(Clone, Debug)]
pub struct Supervise {
    /// The supervisor's user id.
    pub supervisor: u64,
    pub tenant_id: u64,
    /// The customer call (bridged to an agent on this shard).
    pub call: u64,
    pub mode: SupervisorMode,
    /// The supervisor's phone.
    pub phone: SupervisorPhone,
}

/// The phone a supervisor joins from.
#[derive(Clone, Debug)]
pub enum SupervisorPhone {
    /// Their registered SIP phone: the shard INVITEs it.
    Sip {
        /// The registered contact URI (Request-URI).
        target: String,
        /// Where the INVITE goes.
        dest: SocketAddr,
    },
    /// Their browser phone: the page's SDP offer, answered by [`CallEvent::SupervisorBrowserAnswer`].
    Browser { offer: String },
}

/// Why a supervisor's leg ended (or never joined).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupervisionEnd {
    /// The supervisor stopped (or moved to another call).
    Stopped,
    /// The customer left the agent (hung up, or was unbridged).
    CallEnded,
    /// The supervisor's phone hung up.
    PhoneHungUp,
    /// The supervisor's phone refused or did not answer (SIP status; 503: no room on the shard).
    Unreachable(u16),
    /// The call is not bridged to an agent on this shard.
    NotBridged,
    /// The call has its most supervisors already.
    Full,
}

impl SupervisionEnd {
    /// The name in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SupervisionEnd::Stopped => "stopped",
            SupervisionEnd::CallEnded => "call_ended",
            SupervisionEnd::PhoneHungUp => "phone_hung_up",
            SupervisionEnd::Unreachable(_) => "unreachable",
            SupervisionEnd::NotBridged => "not_bridged",
            SupervisionEnd::Full => "full",
        }
    }
}

#[derive(Debug)]
pub(super) struct SupervisorLeg {
    cmd: Supervise,
    agent: u64,
    /// Joined: the SIP phone answered, or the browser phone's media path is up.
    up: bool,
    /// The SIP phone's INVITE (`None`: a browser phone, whose leg is on the media call from the
    /// start and joins once connected).
    sip: Option<(TxId, Request)>,
    dialog: Option<Dialog>,
    port: Port,
    local_sdp: Vec<u8>,
}

impl CallControl {
    pub(super) fn supervise(&mut self, now: Now, cmd: Supervise) {
        let (sup, call) = (cmd.supervisor, cmd.call);
        let Some(agent) = self.customers.get(&call).and_then(|c| c.agent()) else {
            let reason = SupervisionEnd::NotBridged;
            return self.io.emit(CallEvent::SupervisorLeft { supervisor: sup, call, reason });
        };
        let browser = matches!(cmd.phone, SupervisorPhone::Browser { .. });
        if let Some(s) = self.supervisors.get_mut(&sup) {
            // A browser phone's new offer is a new leg (the page made a new connection).
            if s.cmd.call == call && !browser {
                s.cmd.mode = cmd.mode;
                if s.up {
                    let mode = cmd.mode;
                    self.io.control(Control::SetSupervisorMode { call: agent_media_call(agent), id: sup, mode });
                    self.io.emit(CallEvent::SupervisorJoined { supervisor: sup, call, mode });
                }
                return;
            }
            // The engine already ended the record of the leg a new one on the same call replaces
            // (`mode_changed`): its end is not told again, or it would end the new record.
            let replaced = s.cmd.call == call;
            self.end_supervision_told(now, sup, SupervisionEnd::Stopped, true, !replaced);
        }
        if self.supervisors.values().filter(|s| s.cmd.call == call).count() >= media::call::MAX_SUPERVISORS {
            return self.io.emit(CallEvent::SupervisorLeft { supervisor: sup, call, reason: SupervisionEnd::Full });
        }
        let (target, dest) = match &cmd.phone {
            SupervisorPhone::Sip { target, dest } => (target.clone(), *dest),
            SupervisorPhone::Browser { offer } => {
                return self.supervise_from_browser(now, cmd.clone(), agent, offer.clone())
            }
        };
        let PhoneInvite { tx, invite, port, local_sdp } =
            match self.invite_phone(now, &target, dest, Owner::Supervisor(sup)) {
                Ok(p) => p,
                Err(status) => {
                    let reason = SupervisionEnd::Unreachable(status);
                    return self.io.emit(CallEvent::SupervisorLeft { supervisor: sup, call, reason });
                }
            };
        let sip = Some((tx, invite));
        self.supervisors.insert(sup, SupervisorLeg { cmd, agent, up: false, sip, dialog: None, port, local_sdp });
    }

    /// A supervisor's browser phone: its leg goes on the agent's media call at once, as a WebRTC
    /// peer answering the page's offer; it counts as joined once its media path is up.
    fn supervise_from_browser(&mut self, _now: Now, cmd: Supervise, agent: u64, offer: String) {
        let (sup, call, mode) = (cmd.supervisor, cmd.call, cmd.mode);
        let port = match self.io.take_port() {
            Some(p) if !self.at_capacity() => p,
            other => {
                if let Some(p) = other {
                    self.io.put_port(p);
                }
                let reason = SupervisionEnd::Unreachable(503);
                return self.io.emit(CallEvent::SupervisorLeft { supervisor: sup, call, reason });
            }
        };
        let leg = self.io.webrtc_leg(port);
        let m = agent_media_call(agent);
        self.io.control(Control::AddWebRtcSupervisor {
            call: m,
            id: sup,
            leg: Box::new(leg),
            local: port.1,
            offer,
            mode,
        });
        let leg = SupervisorLeg { cmd, agent, up: false, sip: None, dialog: None, port, local_sdp: Vec::new() };
        self.supervisors.insert(sup, leg);
    }

    /// The shard's reports about a supervisor's browser phone.
    pub(super) fn on_supervisor_webrtc(&mut self, now: Now, id: u64, event: &WebRtcSupervisorEvent) {
        let Some(s) = self.supervisors.get_mut(&id).filter(|s| s.sip.is_none()) else { return };
        let (call, mode) = (s.cmd.call, s.cmd.mode);
        match event {
            WebRtcSupervisorEvent::Answer(sdp) => {
                self.io.emit(CallEvent::SupervisorBrowserAnswer { supervisor: id, call, sdp: sdp.clone() });
            }
            WebRtcSupervisorEvent::Connected(true) => {
                if !s.up {
                    s.up = true;
                    self.io.emit(CallEvent::SupervisorJoined { supervisor: id, call, mode });
                }
            }
            // ICE lost the page: the leg ends (the page joins again with a new offer).
            WebRtcSupervisorEvent::Connected(false) => {
                self.end_supervision(now, id, SupervisionEnd::PhoneHungUp, false)
            }
            // The page closed its connection: the supervisor left (as by 参加を終了).
            WebRtcSupervisorEvent::Closed => self.end_supervision(now, id, SupervisionEnd::Stopped, false),
            WebRtcSupervisorEvent::Failed(error) => {
                let reason = if s.up { SupervisionEnd::PhoneHungUp } else { SupervisionEnd::Unreachable(488) };
                self.io.emit(CallEvent::SupervisorBrowserFailed { supervisor: id, call, error: error.clone() });
                self.end_supervision(now, id, reason, false);
            }
        }
    }

    pub(super) fn on_supervisor_response(&mut self, now: Now, sup: u64, tx: TxId, resp: Response) {
        let Some(s) = self.supervisors.get_mut(&sup) else { return };
        let Some((invite_tx, invite)) = &s.sip else { return };
        if resp.cseq().map(|c| c.method) != Some(Method::Invite) || tx != *invite_tx || resp.status < 200 {
            return;
        }
        let SupervisorPhone::Sip { dest, .. } = s.cmd.phone else { return };
        if !resp.is_success() {
            return self.end_supervision(now, sup, SupervisionEnd::Unreachable(resp.status), false);
        }
        if let Some(d) = &s.dialog {
            let ack = d.ack(d.invite_seq, None);
            self.io.endpoint.send_ack(dest, ack);
            return;
        }
        let Some(d) = Dialog::uac(invite, &resp) else {
            return self.end_supervision(now, sup, SupervisionEnd::Unreachable(500), false);
        };
        let ack = d.ack(d.invite_seq, None);
        self.io.endpoint.send_ack(dest, ack);
        s.dialog = Some(d);
        let Some(n) = negotiate(s.port.1, &resp.body) else {
            return self.end_supervision(now, sup, SupervisionEnd::Unreachable(488), true);
        };
        s.up = true;
        let (port, agent, call, mode) = (s.port.0, s.agent, s.cmd.call, s.cmd.mode);
        let leg = self.io.leg(port, &n, false);
        self.io.control(Control::AddSupervisor { call: agent_media_call(agent), id: sup, leg: Box::new(leg), mode });
        self.io.emit(CallEvent::SupervisorJoined { supervisor: sup, call, mode });
    }

    /// Ends a supervisor's leg (`send_bye`: we end it, the phone did not), reported once.
    pub(super) fn end_supervision(&mut self, now: Now, sup: u64, reason: SupervisionEnd, send_bye: bool) {
        self.end_supervision_told(now, sup, reason, send_bye, true)
    }

    /// [`Self::end_supervision`], its [`CallEvent::SupervisorLeft`] only when `tell`.
    fn end_supervision_told(&mut self, now: Now, sup: u64, reason: SupervisionEnd, send_bye: bool, tell: bool) {
        let Some(mut s) = self.supervisors.remove(&sup) else { return };
        let Some((tx, invite)) = s.sip.take() else {
            // A browser phone's leg is on the media call from the start.
            self.io.control(Control::TakeSupervisor { call: agent_media_call(s.agent), id: sup });
            self.io.close_port(s.port.0);
            if tell {
                self.io.emit(CallEvent::SupervisorLeft { supervisor: sup, call: s.cmd.call, reason });
            }
            return;
        };
        let dest = match &s.cmd.phone {
            SupervisorPhone::Sip { dest, .. } => *dest,
            SupervisorPhone::Browser { .. } => s.port.1,
        };
        self.io.unroute(tx, &invite);
        if s.up {
            if send_bye {
                if let Some(d) = s.dialog.as_mut() {
                    let bye = d.request(Method::Bye);
                    let _ = self.io.endpoint.send_request(now.mono, dest, bye);
                }
            }
            self.io.control(Control::TakeSupervisor { call: agent_media_call(s.agent), id: sup });
            self.io.close_port(s.port.0);
        } else {
            if send_bye {
                self.io.cancel(now.mono, tx, Owner::Supervisor(sup));
            }
            self.io.put_port(s.port);
        }
        if tell {
            self.io.emit(CallEvent::SupervisorLeft { supervisor: sup, call: s.cmd.call, reason });
        }
    }

    /// The customer `call` left its agent: its supervisors' legs end with it.
    pub(super) fn end_supervisions_of(&mut self, now: Now, call: u64) {
        if self.supervisors.is_empty() {
            return;
        }
        let ids: Vec<u64> = self.supervisors.iter().filter(|(_, s)| s.cmd.call == call).map(|(id, _)| *id).collect();
        for sup in ids {
            self.end_supervision(now, sup, SupervisionEnd::CallEnded, true);
        }
    }

    /// An in-dialog request from a supervisor's phone (its BYE ends the leg).
    pub(super) fn supervisor_request(&mut self, now: Now, sup: u64, tx: TxId, req: Request) {
        let Some(s) = self.supervisors.get_mut(&sup) else { return };
        let Some(d) = s.dialog.as_mut().filter(|d| d.matches_request(&req)) else {
            return self.io.respond(now.mono, tx, response_to(&req, 481, None));
        };
        if let Some(r) = d.handle_request(&req, Some(&s.local_sdp)) {
            let ok_bye = req.method == Method::Bye && r.status == 200;
            self.io.respond(now.mono, tx, r);
            if ok_bye {
                self.end_supervision(now, sup, SupervisionEnd::PhoneHungUp, false);
            }
        }
    }

    /// Whether `tx` is the live INVITE of a supervisor's leg.
    pub(super) fn is_supervisor_invite(&self, sup: u64, tx: TxId) -> bool {
        self.supervisors.get(&sup).is_some_and(|s| s.sip.as_ref().is_some_and(|(t, _)| *t == tx))
    }

    /// Supervisors' legs on this shard (up or being set up).
    pub fn supervisor_legs(&self) -> usize {
        self.supervisors.len()
    }
}
