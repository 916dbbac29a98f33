//! The browser phone's nailed-up leg (ブラウザフォン): the agent's page offers WebRTC over its
//! authenticated HTTP channel, the offer reaches this shard as [`Command::DialBrowser`], and the
//! shard answers from a WebRTC leg in front of the agent's media call (`media_driver::webrtc`).
//! No SIP is involved: the leg is up once ICE and DTLS connect, down when ICE loses the browser
//! (the agent is then 未確認 until the page rejoins with a new offer). Everything after that is
//! the same as for a SIP phone's leg: customers are bridged onto the agent's media call, hold
//! audio plays between them, both channels are recorded, and the page's RFC 4733 digits reach
//! DTMF result entry.

use media::shard::{Control, Report};
use media::{CallConfig, LegConfig};
use rand::RngCore;
use sip::message::{Method, Request};
use sip::TxId;

use super::{
    agent_media_call, ntp_of, Agent, AgentState, CallControl, CallEvent, DialAgent, EntryParser, Now,
    TELEPHONE_EVENT_PT,
};

/// Set up an agent's leg as a browser phone from the page's SDP offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialBrowser {
    pub agent: u64,
    pub tenant_id: u64,
    pub offer: String,
}

/// A transaction id the SIP endpoint never issues: a browser leg has no INVITE.
const NO_TX: TxId = TxId(u64::MAX);

impl CallControl {
    /// [`Command::DialBrowser`]: a new leg, or a new offer (an ICE restart, a rejoin) on the
    /// agent's browser leg.
    ///
    /// [`Command::DialBrowser`]: super::Command::DialBrowser
    pub(super) fn dial_browser(&mut self, now: Now, cmd: DialBrowser) {
        let agent = cmd.agent;
        if let Some(a) = self.agents.get(&agent) {
            if a.browser {
                self.control(Control::WebRtcOffer { call: agent_media_call(agent), offer: cmd.offer });
            } else {
                self.emit(CallEvent::BrowserFailed { agent, error: "the agent's leg is a SIP phone's".into() });
            }
            return;
        }
        if self.at_capacity() {
            return self.emit(CallEvent::AgentUnreachable { agent, status: 503 });
        }
        let Some(port) = self.take_port() else {
            return self.emit(CallEvent::AgentUnreachable { agent, status: 503 });
        };
        self.stats.agent_legs += 1;
        let m = agent_media_call(agent);
        let mut cfg = CallConfig::new(now.mono, ntp_of(now.unix_ms));
        cfg.hold_audio = self.cfg.hold_audio.clone();
        cfg.bridge_beep = self.cfg.bridge_beep.clone();
        self.control(Control::AddCall { call: m, config: Box::new(cfg) });
        let leg = self.webrtc_leg(port);
        self.control(Control::SetWebRtcAgent { call: m, leg: Box::new(leg), local: port.1, offer: cmd.offer });
        self.agents.insert(
            agent,
            Agent {
                cmd: DialAgent { agent, tenant_id: cmd.tenant_id, target: String::new(), dest: port.1 },
                state: AgentState::Inviting,
                tx: NO_TX,
                invite: Request {
                    method: Method::Invite,
                    uri: String::new(),
                    headers: Default::default(),
                    body: Vec::new(),
                },
                dialog: None,
                port,
                local_sdp: Vec::new(),
                customer: None,
                entry: None,
                parser: EntryParser::new(self.cfg.dtmf_digit_timeout),
                park_keys: super::ParkKeyParser::new(self.cfg.dtmf_digit_timeout),
                browser: true,
            },
        );
    }

    /// The media call's side of a browser phone's leg (the agent's or a supervisor's) on `port`:
    /// PCMU with RFC 4733 digits; the shard puts the WebRTC leg's own address as its remote.
    pub(super) fn webrtc_leg(&mut self, port: (media::SocketId, std::net::SocketAddr)) -> LegConfig {
        LegConfig {
            rtp_socket: port.0,
            rtcp_socket: None,
            remote_rtp: port.1,
            remote_rtcp: None,
            codec: media::Codec::Pcmu,
            telephone_event_pt: Some(TELEPHONE_EVENT_PT),
            ssrc: self.rng.next_u32(),
            initial_seq: self.rng.next_u32() as u16,
            initial_timestamp: self.rng.next_u32(),
            inband_dtmf: false,
        }
    }

    /// The shard's reports about a browser leg; true if the report was one.
    pub(super) fn on_browser_report(&mut self, now: Now, report: &Report) -> bool {
        let call = match report {
            Report::WebRtcAnswer { call, .. }
            | Report::WebRtcConnection { call, .. }
            | Report::WebRtcFailed { call, .. } => *call,
            _ => return false,
        };
        let Some(agent) = self.agent_of_media(call) else { return true };
        let Some(a) = self.agents.get_mut(&agent).filter(|a| a.browser) else { return true };
        match report {
            Report::WebRtcAnswer { sdp, .. } => {
                let sdp = sdp.clone();
                self.emit(CallEvent::BrowserAnswer { agent, sdp });
            }
            Report::WebRtcConnection { connected: true, .. } if a.state == AgentState::Inviting => {
                a.state = AgentState::Up;
                self.emit(CallEvent::AgentLegUp { agent });
            }
            // ICE lost the browser: the leg is down (the agent is 未確認 until the page rejoins).
            Report::WebRtcConnection { connected: false, .. } => self.drop_agent(now, agent, None, false),
            Report::WebRtcFailed { error, .. } => {
                // A refused first offer: the leg never came up. A refused re-offer leaves the leg
                // as it was; a closed connection ends it.
                let inviting = a.state == AgentState::Inviting;
                let closed = error.contains("closed");
                self.emit(CallEvent::BrowserFailed { agent, error: error.clone() });
                if inviting || closed {
                    self.drop_agent(now, agent, inviting.then_some(488), false);
                }
            }
            _ => {}
        }
        true
    }
}
