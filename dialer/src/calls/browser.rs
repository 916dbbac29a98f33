//! The browser phone's nailed-up leg (ブラウザフォン): the agent's page offers WebRTC over its
//! authenticated HTTP channel, the offer reaches this shard as [`Command::DialBrowser`], and the
//! shard answers from a WebRTC leg in front of the agent's media call (`media_driver::webrtc`).
//! No SIP is involved: the leg is up once ICE and DTLS connect, down when ICE loses the browser
//! (the agent is then 未確認 until the page rejoins with a new offer). Everything after that is
//! the same as for a SIP phone's leg: customers are bridged onto the agent's media call, hold
//! audio plays between them, both channels are recorded, and the page's RFC 4733 digits reach
//! DTMF result entry.

use media::shard::Report;

use super::agent_leg::AgentLeg;
use super::{CallControl, CallEvent, DialAgent, Now};

/// Set up an agent's leg as a browser phone from the page's SDP offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialBrowser {
    pub agent: u64,
    pub tenant_id: u64,
    pub offer: String,
}

impl CallControl {
    /// [`Command::DialBrowser`]: a new leg, or a new offer (an ICE restart, a rejoin) on the
    /// agent's browser leg.
    ///
    /// [`Command::DialBrowser`]: super::Command::DialBrowser
    pub(super) fn dial_browser(&mut self, now: Now, cmd: DialBrowser) {
        let agent = cmd.agent;
        if let Some(a) = self.agents.get(&agent) {
            return a.reoffer(&mut self.io, cmd.offer);
        }
        if self.at_capacity() {
            return self.io.emit(CallEvent::AgentUnreachable { agent, status: 503 });
        }
        let Some(port) = self.io.take_port() else {
            return self.io.emit(CallEvent::AgentUnreachable { agent, status: 503 });
        };
        self.io.stats.agent_legs += 1;
        let dial = DialAgent { agent, tenant_id: cmd.tenant_id, target: String::new(), dest: port.1 };
        let leg = AgentLeg::browser(&mut self.io, now, dial, port, cmd.offer);
        self.agents.insert(agent, leg);
    }

    /// The shard's reports about a browser leg; true if the report was one.
    pub(super) fn on_browser_report(&mut self, now: Now, report: &Report) -> bool {
        let call = match report {
            Report::WebRtcAnswer { call, .. }
            | Report::WebRtcConnection { call, .. }
            | Report::WebRtcFailed { call, .. } => *call,
            _ => return false,
        };
        let Some(agent) = super::agent_of_media(call) else { return true };
        let Some(a) = self.agents.get_mut(&agent).filter(|a| a.is_browser()) else { return true };
        let down = match report {
            Report::WebRtcAnswer { sdp, .. } => {
                self.io.emit(CallEvent::BrowserAnswer { agent, sdp: sdp.clone() });
                None
            }
            Report::WebRtcConnection { connected, .. } => a.browser_connected(&mut self.io, *connected),
            Report::WebRtcFailed { error, .. } => a.browser_failed(&mut self.io, error),
            _ => None,
        };
        if let Some(down) = down {
            self.drop_agent(now, agent, down);
        }
        true
    }
}
