//! The demultiplexer's shared half, lent to one state machine at a time: the SIP [`Endpoint`], the
//! routing tables (client transaction and Call-ID to owner), the RTP port pool, the timer index and
//! the output queues. A [`CustomerCall`](super::customer::CustomerCall) or an
//! [`AgentLeg`](super::agent_leg::AgentLeg) produces its effects through it (requests to send, media
//! controls, call events, its own deadlines) and never sees another call.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use media::shard::Control;
use media::{LegConfig, SocketId};
use rand::RngCore;
use sip::dialog::{self, InviteParams};
use sip::message::{Request, Response};
use sip::sdp::{self, LocalMedia, Negotiated};
use sip::{Endpoint, TxId};

use super::{
    media_codec, our_media, CallEvent, Config, MediaOp, Stats, MAX_QUEUED, TELEPHONE_EVENT_PT, WITHHOLD_PREFIX,
};

/// The state machine a transaction, a dialog or a deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Owner {
    /// A customer call, by the dialer's call id.
    Customer(u64),
    /// An agent's nailed-up leg, by the agent's user id.
    Agent(u64),
    /// A supervisor's leg, by the supervisor's user id.
    Supervisor(u64),
    /// The outside leg of a customer call (外線転送), by the customer call.
    Outside(u64),
}

/// An RTP port of the shard: the socket and its address.
pub(super) type Port = (SocketId, SocketAddr);

/// A phone INVITEd by [`Io::invite_phone`].
pub(super) struct PhoneInvite {
    pub tx: TxId,
    pub invite: Request,
    pub port: Port,
    pub local_sdp: Vec<u8>,
}

/// See the module docs. Owned by [`CallControl`](super::CallControl).
pub(super) struct Io {
    pub cfg: Config,
    pub endpoint: Endpoint,
    rng: Box<dyn RngCore + Send>,
    /// Client transactions we started, to their owner.
    tx_owner: HashMap<TxId, Owner>,
    /// SIP Call-ID of every dialog, to its owner (in-dialog requests).
    call_ids: HashMap<String, Owner>,
    /// The owners' deadlines, lazily deleted (each owner checks the deadline is still its own).
    timers: BinaryHeap<Reverse<(Instant, Owner)>>,
    ports: Vec<Port>,
    media: VecDeque<MediaOp>,
    events: VecDeque<CallEvent>,
    pub stats: Stats,
    session_version: u64,
}

impl Io {
    pub fn new(mut cfg: Config, mut rng: Box<dyn RngCore + Send>) -> Io {
        cfg.sip.sent_by = cfg.local_sip.to_string();
        let mut seed = [0u8; 8];
        rng.fill_bytes(&mut seed);
        let sip_rng = Box::new(<rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(u64::from_le_bytes(seed)));
        Io {
            endpoint: Endpoint::new(cfg.sip.clone(), sip_rng),
            rng,
            tx_owner: HashMap::new(),
            call_ids: HashMap::new(),
            timers: BinaryHeap::new(),
            ports: Vec::new(),
            media: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            session_version: 1,
            cfg,
        }
    }

    // ------------------------------------------------------------ outputs

    pub fn emit(&mut self, e: CallEvent) {
        if self.events.len() >= MAX_QUEUED {
            self.stats.events_dropped += 1;
            tracing::warn!(?e, "call event queue full");
            return;
        }
        self.events.push_back(e);
    }

    pub fn control(&mut self, c: Control) {
        self.media.push_back(MediaOp::Control(c));
    }

    pub fn poll_media(&mut self) -> Option<MediaOp> {
        self.media.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// Answers a request someone sent us.
    pub fn respond(&mut self, now: Instant, tx: TxId, resp: Response) {
        if let Err(e) = self.endpoint.send_response(now, tx, resp) {
            tracing::debug!(error = %e, "response not sent");
        }
    }

    // ------------------------------------------------------------ routing

    /// Responses, timeouts and the end of client transaction `tx` go to `owner`.
    pub fn route_tx(&mut self, tx: TxId, owner: Owner) {
        self.tx_owner.insert(tx, owner);
    }

    /// In-dialog requests with `call_id` go to `owner`.
    pub fn route_call_id(&mut self, call_id: String, owner: Owner) {
        self.call_ids.insert(call_id, owner);
    }

    /// The INVITE `tx` and its dialog's Call-ID route nowhere any more.
    pub fn unroute(&mut self, tx: TxId, invite: &Request) {
        self.tx_owner.remove(&tx);
        if let Some(cid) = invite.call_id() {
            self.call_ids.remove(cid);
        }
    }

    pub fn tx_owner(&self, tx: TxId) -> Option<Owner> {
        self.tx_owner.get(&tx).copied()
    }

    pub fn take_tx_owner(&mut self, tx: TxId) -> Option<Owner> {
        self.tx_owner.remove(&tx)
    }

    pub fn call_id_owner(&self, call_id: &str) -> Option<Owner> {
        self.call_ids.get(call_id).copied()
    }

    /// Sends `req` to `dest`, its transaction routed to `owner`.
    pub fn send_routed(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        req: Request,
        owner: Owner,
    ) -> Result<TxId, sip::transaction::Error> {
        let tx = self.endpoint.send_request(now, dest, req)?;
        self.route_tx(tx, owner);
        Ok(tx)
    }

    /// CANCELs the INVITE `tx` (now, or once a provisional arrives), the CANCEL routed to `owner`.
    pub fn cancel(&mut self, now: Instant, tx: TxId, owner: Owner) {
        if let Ok(Some(cancel)) = self.endpoint.cancel(now, tx) {
            self.route_tx(cancel, owner);
        }
    }

    // ------------------------------------------------------------ timers

    /// `owner` is due at `at` (it checks on [`Io::pop_timer`] that the deadline is still its own).
    pub fn arm(&mut self, owner: Owner, at: Instant) {
        self.timers.push(Reverse((at, owner)));
    }

    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest deadline due by `now`, and its owner.
    pub fn pop_timer(&mut self, now: Instant) -> Option<(Instant, Owner)> {
        let &Reverse((at, owner)) = self.timers.peek()?;
        if at > now {
            return None;
        }
        self.timers.pop();
        Some((at, owner))
    }

    // ------------------------------------------------------------ ports

    pub fn free_ports(&self) -> usize {
        self.ports.len()
    }

    pub fn add_ports(&mut self, ports: impl IntoIterator<Item = Port>) {
        self.ports.extend(ports);
    }

    pub fn take_port(&mut self) -> Option<Port> {
        let p = self.ports.pop();
        if p.is_none() {
            self.stats.no_port += 1;
        }
        p
    }

    /// A port no leg used: free again.
    pub fn put_port(&mut self, port: Port) {
        self.ports.push(port);
    }

    /// A port a leg used: the driver closes its socket.
    pub fn close_port(&mut self, port: SocketId) {
        self.media.push_back(MediaOp::ClosePort(port));
    }

    // ------------------------------------------------------------ SDP, legs, requests

    fn token(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| ALPHABET[(self.rng.next_u32() as usize) % ALPHABET.len()] as char).collect()
    }

    pub fn cnonce(&mut self) -> String {
        self.token(12)
    }

    fn local_media(&mut self, port: SocketAddr) -> LocalMedia {
        self.session_version += 1;
        LocalMedia {
            session_id: u64::from(self.rng.next_u32()),
            session_version: self.session_version,
            ..our_media(port)
        }
    }

    /// The media call's side of a SIP leg on `port` towards what the answer `n` negotiated.
    pub fn leg(&mut self, port: SocketId, n: &Negotiated, inband_dtmf: bool) -> LegConfig {
        LegConfig {
            rtp_socket: port,
            rtcp_socket: None,
            remote_rtp: SocketAddr::new(n.remote_addr, n.remote_port),
            remote_rtcp: None,
            codec: media_codec(n.codec),
            telephone_event_pt: n.telephone_event,
            ssrc: self.rng.next_u32(),
            initial_seq: self.rng.next_u32() as u16,
            initial_timestamp: self.rng.next_u32(),
            inband_dtmf: inband_dtmf && n.telephone_event.is_none(),
        }
    }

    /// The media call's side of a browser phone's leg (the agent's or a supervisor's) on `port`:
    /// PCMU with RFC 4733 digits; the shard puts the WebRTC leg's own address as its remote.
    pub fn webrtc_leg(&mut self, port: Port) -> LegConfig {
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

    /// An INVITE to the carrier for `tel` from RTP address `port`, from `caller_id` (`None`
    /// withholds it: 184 and Privacy), with its Call-ID and our SDP offer.
    pub fn carrier_invite(
        &mut self,
        port: SocketAddr,
        tel: &str,
        caller_id: Option<&str>,
    ) -> (Request, String, Vec<u8>) {
        let local = self.local_media(port);
        let local_sdp = sdp::offer(&local);
        let (uri_user, from) = match caller_id {
            Some(cid) => (tel.to_string(), format!("<sip:{cid}@{}>", self.cfg.domain)),
            None => (format!("{WITHHOLD_PREFIX}{tel}"), "\"Anonymous\" <sip:anonymous@anonymous.invalid>".into()),
        };
        let call_id = format!("{}@{}", self.token(16), self.cfg.local_sip.ip());
        let from_tag = self.token(10);
        let mut invite = dialog::invite(&InviteParams {
            request_uri: format!("sip:{uri_user}@{}", self.cfg.carrier_domain),
            from,
            to: format!("sip:{tel}@{}", self.cfg.carrier_domain),
            contact: format!("sip:kakeru@{}", self.cfg.local_sip),
            call_id: call_id.clone(),
            from_tag,
            sdp: Some(local_sdp.clone()),
        });
        if caller_id.is_none() {
            invite.headers.push("Privacy", "id");
        }
        (invite, call_id, local_sdp)
    }

    /// INVITEs a phone (an agent's nailed-up leg, a supervisor's leg) from a free RTP port, its
    /// transaction and dialog routed to `owner`. `Err(503)`: no port, or the request could not be
    /// sent. (The demux checks the shard's room first.)
    pub fn invite_phone(
        &mut self,
        now: Instant,
        target: &str,
        dest: SocketAddr,
        owner: Owner,
    ) -> Result<PhoneInvite, u16> {
        let port = self.take_port().ok_or(503u16)?;
        let local = self.local_media(port.1);
        let local_sdp = sdp::offer(&local);
        let call_id = format!("{}@{}", self.token(16), self.cfg.local_sip.ip());
        let from_tag = self.token(10);
        let invite = dialog::invite(&InviteParams {
            request_uri: target.to_string(),
            from: format!("\"kakeru\" <sip:kakeru@{}>", self.cfg.domain),
            to: target.to_string(),
            contact: format!("sip:kakeru@{}", self.cfg.local_sip),
            call_id: call_id.clone(),
            from_tag,
            sdp: Some(local_sdp.clone()),
        });
        let Ok(tx) = self.send_routed(now, dest, invite.clone(), owner) else {
            self.put_port(port);
            return Err(503);
        };
        self.route_call_id(call_id, owner);
        Ok(PhoneInvite { tx, invite, port, local_sdp })
    }
}

/// What the per-call state machines' own tests share: an [`Io`] under virtual time, and a phone's
/// or a carrier's answer to our INVITE.
#[cfg(test)]
pub(super) mod testing {
    use std::time::{Duration, Instant};

    use media::shard::Control;
    use sip::message::{response_to, Request, Response};
    use sip::sdp::{self, LocalMedia};

    use super::{Io, MediaOp, Port};
    use crate::calls::{CallEvent, Config, Now};

    /// An [`Io`] with two free RTP ports and a fixed RNG.
    pub fn io() -> Io {
        let cfg = Config::new("127.0.0.1:5060".parse().expect("addr"), "127.0.0.1:5070".parse().expect("addr"));
        let mut io = Io::new(cfg, Box::new(rand::rngs::mock::StepRng::new(7, 13)));
        io.add_ports(ports());
        io
    }

    pub fn ports() -> Vec<Port> {
        vec![
            (media::SocketId(1), "127.0.0.1:40000".parse().expect("addr")),
            (media::SocketId(2), "127.0.0.1:40002".parse().expect("addr")),
        ]
    }

    /// Virtual time: `ms` after a fixed start.
    pub fn at(start: Instant, ms: u64) -> Now {
        Now { mono: start + Duration::from_millis(ms), unix_ms: 1_800_000_000_000 + ms }
    }

    /// The far end's final answer to `invite`: a 2xx carries its SDP answer (PCMU from
    /// 127.0.0.1:30000), anything else no body.
    pub fn answer(invite: &Request, status: u16) -> Response {
        let mut r = response_to(invite, status, Some("far"));
        if (200..300).contains(&status) {
            r.headers.push("Contact", "<sip:far@127.0.0.1:5070>");
            let offer = sdp::parse(&invite.body).expect("our offer parses");
            let far = LocalMedia {
                addr: "127.0.0.1".parse().expect("ip"),
                port: 30_000,
                codecs: vec![sdp::Codec::Pcmu],
                telephone_event: Some(101),
                session_id: 1,
                session_version: 1,
                ptime_ms: 20,
            };
            let (_, body) = sdp::answer(&far, &offer).expect("answerable offer");
            r.headers.push("Content-Type", "application/sdp");
            r.body = body;
        }
        r
    }

    pub fn events(io: &mut Io) -> Vec<CallEvent> {
        std::iter::from_fn(|| io.poll_event()).collect()
    }

    /// The media controls queued, by name (`AddCall`, `MoveCustomer`, ...), and the ports closed.
    pub fn media(io: &mut Io) -> Vec<String> {
        std::iter::from_fn(|| io.poll_media())
            .map(|op| match op {
                MediaOp::Control(c) => control_name(&c),
                MediaOp::ClosePort(p) => format!("ClosePort({})", p.0),
            })
            .collect()
    }

    fn control_name(c: &Control) -> String {
        let debug = format!("{c:?}");
        debug.split([' ', '(', '{']).next().unwrap_or_default().to_string()
    }
}
