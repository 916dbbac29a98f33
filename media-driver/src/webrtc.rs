//! WebRTC agent legs (the browser phone, ブラウザフォン) beside the RTP core.
//!
//! A [`WebRtcLeg`] is an adapter in front of a [`media::Call`]'s agent leg: the leg's datagrams
//! (STUN, DTLS, SRTP, SRTCP on one socket, RFC 8445 ICE-lite, RFC 5764 DTLS-SRTP) go through a
//! str0m [`Rtc`] in RTP mode, which hands plain RTP to the call as if it came from an RTP leg at
//! [`WEBRTC_PEER`]; the call's packets to that leg are handed back and leave through str0m as
//! SRTP. The call never learns the difference: bridging, hold audio, the beep, recording and
//! DTMF work on a browser phone as on a SIP phone.
//!
//! The call carries G.711 (PCMU) and RFC 4733 events at 8 kHz ([`CALL_TELEPHONE_EVENT_PT`]).
//! A leg that negotiated PCMU relays its payloads unchanged; one that negotiated Opus (only in a
//! build with `media/opus`) is transcoded here, one 20 ms packet at a time
//! ([`media::voice::OpusTranscoder`]), and its 48 kHz telephone events are rescaled to 8 kHz.
//! str0m writes its own RTCP (SR/RR) to the browser, so the call's RTCP to the leg is dropped.
//!
//! Beside its UDP host candidate a leg may offer a passive TCP host candidate (RFC 6544) on the
//! shard's TCP listener (`crate::tcp`, RFC 4571 framing): [`WebRtcLegs::handle_tcp`] routes a
//! connection to its leg by the ICE username of its first frame (a STUN binding request naming the
//! leg's ufrag), and the leg's datagrams for a TCP pair leave as [`TcpOut`] frames on that
//! connection ([`WebRtcLegs::poll_tcp_out`]).
//!
//! Sans-IO like the rest of the shard: `now` comes in, datagrams go out through
//! [`WebRtcLeg::poll_transmit`], and every mutation of the `Rtc` is followed by a full drain of
//! its outputs (str0m's contract). Every queue is bounded; an overflow is a counted drop.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::call::{SocketId, Transmit};
use media::g711::Codec as G711;
use media::voice::{opus_available, OpusTranscoder, OPUS_TICKS_PER_G711_TICK};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::ice::StunMessage;
use str0m::media::{Frequency, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::tcp::{is_stun, ConnId, TcpIn, TcpOut};

/// The address a [`media::Call`] sees a WebRTC leg's packets come from (TEST-NET-1, never
/// routed): the leg's `remote_rtp`.
pub const WEBRTC_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 9);
/// The RFC 4733 payload type the call uses for a WebRTC leg's digits (8 kHz clock).
pub const CALL_TELEPHONE_EVENT_PT: u8 = 101;
/// Bound of each of a leg's queues (packets for the call, datagrams out, events).
pub const MAX_QUEUE: usize = 256;
/// A connected leg that hears nothing from the browser this long is down: a browser sends audio
/// every 20 ms (silence included) and its ICE consent checks every few seconds, so this is a cut
/// path, not a quiet agent. ICE-lite alone would notice only after 15 s without a binding request.
pub const MEDIA_SILENCE: Duration = Duration::from_secs(2);
/// TCP connections one leg keeps (a browser opens a new one on an ICE restart): the oldest is
/// closed for a newer one.
pub const MAX_TCP_PER_LEG: usize = 4;
/// The leg's own clock: how often it looks at [`MEDIA_SILENCE`] at the latest.
const TICK: Duration = Duration::from_millis(250);
/// Payload types offered to the browser (those Chrome and Firefox use).
const PT_TELEPHONE_EVENT_48K: u8 = 110;
const PT_TELEPHONE_EVENT_8K: u8 = 126;
const RTP_HEADER: usize = 12;

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebRtcError {
    #[error("the offer is not SDP str0m accepts: {0}")]
    BadOffer(String),
    #[error("the offer has no audio in a codec we take (PCMU{})", if opus_available() { " or Opus" } else { "" })]
    NoAudio,
}

/// A change of a leg's connection, for the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebRtcEvent {
    /// ICE connected and DTLS established: media flows.
    Connected,
    /// ICE lost the browser (consent freshness failed); an ICE restart may bring it back.
    Disconnected,
    /// The browser closed the connection (DTLS close), or str0m failed.
    Closed,
}

/// The audio codec a leg negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegCodec {
    Pcmu,
    Opus,
}

/// Counters of one leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebRtcStats {
    /// RTP packets from the browser handed to the call, and from the call written to the browser.
    pub to_call: u64,
    pub to_browser: u64,
    /// Packets dropped: a full queue, an unknown payload type, a packet libopus refused.
    pub drops: u64,
}

/// One browser phone's leg (see the module docs).
pub struct WebRtcLeg {
    rtc: Rtc,
    socket: SocketId,
    local: SocketAddr,
    mid: Mid,
    codec: LegCodec,
    audio_pt: u8,
    /// The browser's telephone-event payload type we send on (the codec's clock when offered).
    tele_pt: Option<u8>,
    /// Its telephone-event payload types at 48 and 8 kHz: a browser may key on either (Chromium
    /// sends 8 kHz events beside Opus).
    tele48: Option<u8>,
    tele8: Option<u8>,
    transcoder: Option<OpusTranscoder>,
    /// Extended sequence number of the next packet to the browser.
    next_seq: u64,
    to_call: VecDeque<Vec<u8>>,
    transmits: VecDeque<Transmit>,
    /// Datagrams for a TCP pair: the peer's address (its connection's) and the payload.
    tcp_transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Our passive TCP host candidate, when the shard has a TCP listener.
    tcp_local: Option<SocketAddr>,
    /// Our ICE username fragment (a TCP connection's first frame names it).
    ufrag: String,
    events: VecDeque<WebRtcEvent>,
    timeout: Instant,
    /// str0m's own next deadline (the leg's `timeout` may come sooner, for [`MEDIA_SILENCE`]).
    rtc_timeout: Instant,
    connected: bool,
    /// When a datagram of the browser last arrived, and whether the leg went down for lack of it.
    last_heard: Instant,
    silenced: bool,
    closed: bool,
    stats: WebRtcStats,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for WebRtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcLeg")
            .field("socket", &self.socket)
            .field("local", &self.local)
            .field("codec", &self.codec)
            .field("connected", &self.connected)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn rtc_config() -> str0m::RtcConfig {
    let mut cfg = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs();
    // Opus first where we can transcode it: the browser then sends it (better on a lossy path).
    if opus_available() {
        cfg = cfg.enable_opus(true, false);
    }
    cfg = cfg.enable_pcmu(true, false);
    let codecs = cfg.codec_config();
    for (pt, clock) in
        [(PT_TELEPHONE_EVENT_48K, Frequency::FORTY_EIGHT_KHZ), (PT_TELEPHONE_EVENT_8K, Frequency::EIGHT_KHZ)]
    {
        codecs.add_config(pt.into(), None, Codec::Tele, clock, Some(1), str0m::format::FormatParams::default());
    }
    cfg
}

impl WebRtcLeg {
    /// Accepts a browser's SDP offer on `socket` (bound at `local`, our ICE-lite host
    /// candidate; with `tcp`, the shard's TCP listener as a passive TCP host candidate too): the
    /// leg and our SDP answer.
    pub fn accept(
        now: Instant,
        socket: SocketId,
        local: SocketAddr,
        tcp: Option<SocketAddr>,
        offer: &str,
    ) -> Result<(WebRtcLeg, String), WebRtcError> {
        let mut rtc = rtc_config().build(now);
        let bad = |e: str0m::error::IceError| WebRtcError::BadOffer(e.to_string());
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(bad)?);
        if let Some(tcp) = tcp {
            let c = Candidate::builder().tcp().host(tcp).tcptype(TcpType::Passive).build().map_err(bad)?;
            rtc.add_local_candidate(c);
        }
        let mut leg = WebRtcLeg {
            rtc,
            socket,
            local,
            mid: Mid::from("0"),
            codec: LegCodec::Pcmu,
            audio_pt: 0,
            tele_pt: None,
            tele48: None,
            tele8: None,
            transcoder: None,
            next_seq: 1,
            to_call: VecDeque::new(),
            transmits: VecDeque::new(),
            tcp_transmits: VecDeque::new(),
            tcp_local: tcp,
            ufrag: String::new(),
            events: VecDeque::new(),
            timeout: now,
            rtc_timeout: now,
            connected: false,
            last_heard: now,
            silenced: false,
            closed: false,
            stats: WebRtcStats::default(),
            scratch: Vec::with_capacity(1500),
        };
        let answer = leg.negotiate(now, offer)?;
        Ok((leg, answer))
    }

    /// A new offer from the same browser (an ICE restart, a rejoin after a network change): the
    /// same leg, our new answer.
    pub fn reoffer(&mut self, now: Instant, offer: &str) -> Result<String, WebRtcError> {
        self.negotiate(now, offer)
    }

    fn negotiate(&mut self, now: Instant, offer: &str) -> Result<String, WebRtcError> {
        let mid = offer_audio_mid(offer).ok_or(WebRtcError::NoAudio)?;
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| WebRtcError::BadOffer(e.to_string()))?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| WebRtcError::BadOffer(e.to_string()));
        self.drain(now);
        let answer = answer?;
        // The codec the answer chose for the audio m-line: the browser's first that we take.
        let media = self.rtc.media(mid).ok_or(WebRtcError::NoAudio)?;
        let mut chosen: Option<(LegCodec, u8)> = None;
        let mut tele48 = None;
        let mut tele8 = None;
        for p in media.remote_pts().iter().filter_map(|pt| self.rtc.codec_config().find(|c| c.pt() == *pt)) {
            let spec = p.spec();
            match spec.codec {
                Codec::Opus if chosen.is_none() && opus_available() => chosen = Some((LegCodec::Opus, *p.pt())),
                Codec::PCMU if chosen.is_none() => chosen = Some((LegCodec::Pcmu, *p.pt())),
                Codec::Tele if spec.clock_rate == Frequency::FORTY_EIGHT_KHZ => tele48 = Some(*p.pt()),
                Codec::Tele if spec.clock_rate == Frequency::EIGHT_KHZ => tele8 = Some(*p.pt()),
                _ => {}
            }
        }
        let (codec, pt) = chosen.ok_or(WebRtcError::NoAudio)?;
        self.mid = mid;
        self.codec = codec;
        self.audio_pt = pt;
        self.tele_pt = match codec {
            LegCodec::Opus => tele48.or(tele8),
            LegCodec::Pcmu => tele8,
        };
        self.tele48 = tele48;
        self.tele8 = tele8;
        self.ufrag = self.rtc.direct_api().local_ice_credentials().ufrag;
        if codec == LegCodec::Opus && self.transcoder.is_none() {
            self.transcoder = Some(OpusTranscoder::new().ok_or(WebRtcError::NoAudio)?);
        }
        Ok(answer.to_sdp_string())
    }

    /// The local socket the leg's datagrams use.
    pub fn socket(&self) -> SocketId {
        self.socket
    }

    pub fn codec(&self) -> LegCodec {
        self.codec
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the leg is over (closed by the browser or failed): the shard drops it.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn stats(&self) -> WebRtcStats {
        self.stats
    }

    /// A datagram from the browser on the leg's socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.receive(now, Protocol::Udp, from, self.local, data);
    }

    /// A frame from the browser on one of the leg's TCP connections (`from`: its peer address).
    pub fn handle_tcp_frame(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match self.tcp_local {
            Some(local) => self.receive(now, Protocol::Tcp, from, local, data),
            None => self.stats.drops += 1,
        }
    }

    /// Our ICE username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Our passive TCP candidate's address, if the leg has one.
    pub fn tcp_local(&self) -> Option<SocketAddr> {
        self.tcp_local
    }

    fn receive(&mut self, now: Instant, proto: Protocol, from: SocketAddr, destination: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            self.stats.drops += 1;
            return;
        };
        let input = Input::Receive(now, Receive { proto, source: from, destination, contents });
        if self.rtc.accepts(&input) {
            self.last_heard = now;
            if let Err(e) = self.rtc.handle_input(input) {
                tracing::debug!(error = %e, "webrtc input refused");
                self.stats.drops += 1;
            }
        } else {
            self.stats.drops += 1;
        }
        self.drain(now);
        // The path is back (the same ICE session, or after an ICE restart).
        if self.silenced && !self.closed && self.rtc.is_connected() {
            self.silenced = false;
            self.set_connected();
        }
    }

    fn set_connected(&mut self) {
        if !self.connected {
            self.connected = true;
            if self.events.len() < MAX_QUEUE {
                self.events.push_back(WebRtcEvent::Connected);
            }
        }
    }

    fn set_disconnected(&mut self) {
        if self.connected && self.events.len() < MAX_QUEUE {
            self.events.push_back(WebRtcEvent::Disconnected);
        }
        self.connected = false;
    }

    /// The leg's deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.rtc_timeout {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(error = %e, "webrtc timeout failed");
            }
            self.drain(now);
        } else {
            // Only the leg's own tick: str0m has nothing due.
            self.timeout = self.rtc_timeout.min(now + TICK);
        }
        if self.connected && now.saturating_duration_since(self.last_heard) >= MEDIA_SILENCE {
            self.silenced = true;
            self.set_disconnected();
        }
    }

    /// A packet of the call to this leg (RTP to the browser; its RTCP is str0m's to write).
    pub fn send_from_call(&mut self, now: Instant, packet: &[u8]) {
        if packet.len() < RTP_HEADER || packet[0] >> 6 != 2 {
            return;
        }
        let pt = packet[1] & 0x7f;
        if (72..=79).contains(&pt) {
            return; // RTCP (RFC 5761 §4): str0m reports for itself
        }
        if !self.connected {
            return;
        }
        let Some(header) = rtp_header(packet) else {
            self.stats.drops += 1;
            return;
        };
        let marker = packet[1] & 0x80 != 0;
        let payload = &packet[header..];
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let (out_pt, time, body): (u8, u32, Vec<u8>) = if pt == CALL_TELEPHONE_EVENT_PT {
            let Some(tele) = self.tele_pt else { return };
            match self.codec {
                LegCodec::Pcmu => (tele, ts, payload.to_vec()),
                LegCodec::Opus if Some(tele) == self.tele48 => {
                    (tele, ts.wrapping_mul(OPUS_TICKS_PER_G711_TICK), scale_event(payload, true))
                }
                LegCodec::Opus => (tele, ts.wrapping_mul(OPUS_TICKS_PER_G711_TICK), payload.to_vec()),
            }
        } else if let Some(g711) = G711::from_payload_type(pt) {
            match (self.codec, self.transcoder.as_mut()) {
                (LegCodec::Pcmu, _) if g711 == G711::Pcmu => (self.audio_pt, ts, payload.to_vec()),
                (LegCodec::Opus, Some(t)) => {
                    if t.encode(g711, payload, &mut self.scratch).is_err() {
                        self.stats.drops += 1;
                        return;
                    }
                    (self.audio_pt, ts.wrapping_mul(OPUS_TICKS_PER_G711_TICK), self.scratch.clone())
                }
                _ => {
                    self.stats.drops += 1;
                    return;
                }
            }
        } else {
            return; // comfort noise and the like: nothing the browser negotiated
        };
        let seq = SeqNo::from(self.next_seq);
        self.next_seq += 1;
        let mut direct = self.rtc.direct_api();
        let Some(tx) = direct.stream_tx_by_mid(self.mid, None) else {
            self.stats.drops += 1;
            return;
        };
        tx.write_rtp(RtpWrite::new(out_pt.into(), seq, time, now, body).marker(marker));
        self.stats.to_browser += 1;
        // str0m's send queue hands out what was queued when its clock last moved: without this
        // the packet waited for the leg's next deadline (which str0m set to "now"), one more
        // pass of the shard's loop per packet, and on a coarser timer grid, a later packet.
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(error = %e, "webrtc timeout failed");
        }
        self.drain(now);
    }

    /// The next plain RTP packet for the call (from [`WEBRTC_PEER`]).
    pub fn poll_to_call(&mut self) -> Option<Vec<u8>> {
        self.to_call.pop_front()
    }

    /// The next datagram to send from the leg's socket.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next datagram for a TCP pair: the peer (its connection's address) and the payload.
    pub fn poll_tcp_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.tcp_transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<WebRtcEvent> {
        self.events.pop_front()
    }

    /// When [`WebRtcLeg::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.timeout
    }

    /// Drains str0m until its next timeout (its contract after every mutation).
    fn drain(&mut self, now: Instant) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    // str0m answers a far future when nothing is due; the leg's own clock
                    // looks at the browser's silence every TICK.
                    self.rtc_timeout = at;
                    self.timeout = at.min(now + TICK).max(now);
                    return;
                }
                Ok(Output::Transmit(t)) if t.proto == Protocol::Tcp => {
                    if self.tcp_transmits.len() < MAX_QUEUE {
                        self.tcp_transmits.push_back((t.destination, t.contents.to_vec()));
                    } else {
                        self.stats.drops += 1;
                    }
                }
                Ok(Output::Transmit(t)) => {
                    let payload = t.contents.to_vec();
                    push(
                        &mut self.transmits,
                        Transmit { socket: self.socket, destination: t.destination, payload },
                        &mut self.stats,
                    );
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    tracing::info!(error = %e, "webrtc leg failed");
                    self.fail();
                    self.timeout = now + Duration::from_secs(1);
                    return;
                }
            }
        }
    }

    fn fail(&mut self) {
        if !self.closed {
            self.closed = true;
            self.connected = false;
            if self.events.len() < MAX_QUEUE {
                self.events.push_back(WebRtcEvent::Closed);
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.set_connected(),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => self.set_disconnected(),
            Event::IceConnectionStateChange(IceConnectionState::Connected | IceConnectionState::Completed)
                if !self.connected && self.rtc.is_connected() =>
            {
                self.silenced = false;
                self.set_connected();
            }
            Event::Closed => self.fail(),
            Event::RtpPacket(p) => self.on_browser_packet(p),
            _ => {}
        }
    }

    /// A packet of the browser, made plain RTP for the call: PCMU as is, Opus decoded to PCMU,
    /// telephone events on [`CALL_TELEPHONE_EVENT_PT`] at 8 kHz.
    fn on_browser_packet(&mut self, p: RtpPacket) {
        let pt = *p.header.payload_type;
        let ts = p.header.timestamp;
        // The stream's clock is the audio codec's: 48 kHz beside Opus, whatever the event's rate.
        let stream_ts = match self.codec {
            LegCodec::Pcmu => ts,
            LegCodec::Opus => ts / OPUS_TICKS_PER_G711_TICK,
        };
        let (out_pt, out_ts, body): (u8, u32, &[u8]) = if Some(pt) == self.tele48 && self.codec == LegCodec::Opus {
            self.scratch = scale_event(&p.payload, false);
            (CALL_TELEPHONE_EVENT_PT, stream_ts, &self.scratch)
        } else if Some(pt) == self.tele48 || Some(pt) == self.tele8 {
            (CALL_TELEPHONE_EVENT_PT, stream_ts, &p.payload)
        } else if pt == self.audio_pt {
            match (self.codec, self.transcoder.as_mut()) {
                (LegCodec::Pcmu, _) => (0, ts, &p.payload),
                (LegCodec::Opus, Some(t)) => {
                    if t.decode(G711::Pcmu, &p.payload, &mut self.scratch).is_err() {
                        self.stats.drops += 1;
                        return;
                    }
                    (0, ts / OPUS_TICKS_PER_G711_TICK, &self.scratch)
                }
                (LegCodec::Opus, None) => {
                    self.stats.drops += 1;
                    return;
                }
            }
        } else {
            self.stats.drops += 1;
            return;
        };
        let mut packet = Vec::with_capacity(RTP_HEADER + body.len());
        packet.push(0x80);
        packet.push(out_pt | if p.header.marker { 0x80 } else { 0 });
        packet.extend_from_slice(&p.header.sequence_number.to_be_bytes());
        packet.extend_from_slice(&out_ts.to_be_bytes());
        packet.extend_from_slice(&(*p.header.ssrc).to_be_bytes());
        packet.extend_from_slice(body);
        if self.to_call.len() < MAX_QUEUE {
            self.to_call.push_back(packet);
            self.stats.to_call += 1;
        } else {
            self.stats.drops += 1;
        }
    }
}

fn push(q: &mut VecDeque<Transmit>, t: Transmit, stats: &mut WebRtcStats) {
    if q.len() < MAX_QUEUE {
        q.push_back(t);
    } else {
        stats.drops += 1;
    }
}

/// The length of an RTP packet's header (CSRCs and extension included), if it is whole.
fn rtp_header(p: &[u8]) -> Option<usize> {
    let mut len = RTP_HEADER + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= p.len()).then_some(len)
}

/// An RFC 4733 event's duration rescaled between the 8 kHz and 48 kHz clocks.
fn scale_event(payload: &[u8], up: bool) -> Vec<u8> {
    let mut out = payload.to_vec();
    if out.len() >= 4 {
        let d = u32::from(u16::from_be_bytes([out[2], out[3]]));
        let d = if up { d * OPUS_TICKS_PER_G711_TICK } else { d / OPUS_TICKS_PER_G711_TICK };
        out[2..4].copy_from_slice(&(d.min(u32::from(u16::MAX)) as u16).to_be_bytes());
    }
    out
}

/// The mid of the offer's first audio m-line (RFC 8843 `a=mid`).
fn offer_audio_mid(offer: &str) -> Option<Mid> {
    let mut in_audio = false;
    for line in offer.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ");
        } else if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| in_audio) {
            return Some(Mid::from(mid.trim()));
        }
    }
    None
}

/// A shard's WebRTC legs by their socket, with their deadlines (the shard's hooks call these),
/// and the routes of the shard's TCP connections to them.
#[derive(Debug, Default)]
pub struct WebRtcLegs {
    slots: std::collections::HashMap<SocketId, Slot>,
    timers: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, SocketId)>>,
    tcp: TcpRoutes,
}

/// Which leg each TCP connection belongs to, and the frames for the driver's TCP thread.
#[derive(Debug, Default)]
struct TcpRoutes {
    /// A connection's leg (by its socket) and its peer address.
    conns: std::collections::HashMap<ConnId, (SocketId, SocketAddr)>,
    by_peer: std::collections::HashMap<SocketAddr, ConnId>,
    out: VecDeque<TcpOut>,
    /// Connections closed because their first frame named no leg.
    unrouted: u64,
    /// Frames dropped: the queue to the thread full, or no connection to the browser's address.
    dropped: u64,
}

/// Bound of the frames queued for the TCP thread.
pub const MAX_TCP_OUT: usize = 4096;

impl TcpRoutes {
    fn push(&mut self, o: TcpOut) {
        if self.out.len() < MAX_TCP_OUT {
            self.out.push_back(o);
        } else {
            self.dropped += 1;
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some((_, peer)) = self.conns.remove(&conn) {
            self.by_peer.remove(&peer);
        }
        self.push(TcpOut::Close { conn });
    }

    /// Binds `conn` to the leg on `socket`, closing that leg's oldest connection beyond
    /// [`MAX_TCP_PER_LEG`].
    fn bind(&mut self, conn: ConnId, socket: SocketId, peer: SocketAddr) {
        let mut of_leg: Vec<ConnId> = self.conns.iter().filter(|(_, (s, _))| *s == socket).map(|(c, _)| *c).collect();
        of_leg.sort();
        while of_leg.len() >= MAX_TCP_PER_LEG {
            let oldest = of_leg.remove(0);
            self.close(oldest);
        }
        if let Some(old) = self.by_peer.insert(peer, conn) {
            self.conns.remove(&old);
        }
        self.conns.insert(conn, (socket, peer));
    }
}

/// The local ufrag a STUN binding request names (RFC 8445 §7.2.2: `ours:theirs`).
fn binding_request_ufrag(data: &[u8]) -> Option<&str> {
    if !is_stun(data) {
        return None;
    }
    let m = StunMessage::parse(data).ok()?;
    if !m.is_binding_request() {
        return None;
    }
    m.username().map(|u| u.split(':').next().unwrap_or(u))
}

#[derive(Debug)]
struct Slot {
    leg: WebRtcLeg,
    call: media::shard::CallId,
    /// A supervisor's browser phone on the call (their id), not the agent's leg.
    supervisor: Option<u64>,
    deadline: Option<Instant>,
}

/// What a leg told the shard while it was driven.
#[derive(Debug, Default)]
pub struct Pumped {
    /// Plain RTP for the call, from [`WEBRTC_PEER`] on the leg's socket.
    pub to_call: Vec<Vec<u8>>,
    pub events: Vec<WebRtcEvent>,
}

impl WebRtcLegs {
    pub fn insert(&mut self, call: media::shard::CallId, leg: WebRtcLeg) {
        self.slots.insert(leg.socket, Slot { leg, call, supervisor: None, deadline: None });
    }

    /// A supervisor's browser phone on `call`.
    pub fn insert_supervisor(&mut self, call: media::shard::CallId, id: u64, leg: WebRtcLeg) {
        self.slots.insert(leg.socket, Slot { leg, call, supervisor: Some(id), deadline: None });
    }

    /// The supervisor whose browser phone is on `socket`, if it is one.
    pub fn supervisor_of(&self, socket: SocketId) -> Option<u64> {
        self.slots.get(&socket).and_then(|s| s.supervisor)
    }

    /// Forgets the leg on `socket` (its call leg left), closing its TCP connections.
    pub fn remove(&mut self, socket: SocketId) -> Option<WebRtcLeg> {
        let leg = self.slots.remove(&socket).map(|s| s.leg)?;
        let conns: Vec<ConnId> = self.tcp.conns.iter().filter(|(_, (s, _))| *s == socket).map(|(c, _)| *c).collect();
        for conn in conns {
            self.tcp.close(conn);
        }
        Some(leg)
    }

    /// What the shard's TCP thread handed in: a frame goes to the leg its connection belongs to
    /// (a new connection's first frame must be a STUN binding request naming a leg's ufrag, or
    /// the connection is closed, counted); returns that leg's socket and what it told.
    pub fn handle_tcp(&mut self, now: Instant, input: TcpIn, out: &mut Vec<Transmit>) -> Option<(SocketId, Pumped)> {
        let (conn, peer, data) = match input {
            TcpIn::Frame { conn, peer, data } => (conn, peer, data),
            TcpIn::Closed { conn } => {
                if let Some((_, peer)) = self.tcp.conns.remove(&conn) {
                    if self.tcp.by_peer.get(&peer) == Some(&conn) {
                        self.tcp.by_peer.remove(&peer);
                    }
                }
                return None;
            }
        };
        let socket = match self.tcp.conns.get(&conn) {
            Some((socket, _)) => *socket,
            None => {
                let found = binding_request_ufrag(&data).and_then(|ufrag| {
                    self.slots
                        .iter()
                        .find(|(_, s)| s.leg.tcp_local.is_some() && !s.leg.ufrag.is_empty() && s.leg.ufrag == ufrag)
                        .map(|(socket, _)| *socket)
                });
                let Some(socket) = found else {
                    self.tcp.unrouted += 1;
                    self.tcp.push(TcpOut::Close { conn });
                    return None;
                };
                self.tcp.bind(conn, socket, peer);
                socket
            }
        };
        let slot = self.slots.get_mut(&socket)?;
        slot.leg.handle_tcp_frame(now, peer, &data);
        Some((socket, self.pump(socket, out)))
    }

    /// The next frame or closing for the shard's TCP thread.
    pub fn poll_tcp_out(&mut self) -> Option<TcpOut> {
        self.tcp.out.pop_front()
    }

    /// Connections closed because their first frame named no leg, and frames dropped on the way
    /// to the TCP thread.
    pub fn tcp_counts(&self) -> (u64, u64) {
        (self.tcp.unrouted, self.tcp.dropped)
    }

    pub fn contains(&self, socket: SocketId) -> bool {
        self.slots.contains_key(&socket)
    }

    /// The call of the leg on `socket`.
    pub fn call_of(&self, socket: SocketId) -> Option<media::shard::CallId> {
        self.slots.get(&socket).map(|s| s.call)
    }

    /// The leg of a call (its agent leg), by the call.
    pub fn of_call_mut(&mut self, call: media::shard::CallId) -> Option<&mut WebRtcLeg> {
        self.slots.values_mut().find(|s| s.call == call && s.supervisor.is_none()).map(|s| &mut s.leg)
    }

    pub fn get(&self, socket: SocketId) -> Option<&WebRtcLeg> {
        self.slots.get(&socket).map(|s| &s.leg)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// A datagram on a leg's socket; `None` if no leg has it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
        out: &mut Vec<Transmit>,
    ) -> Option<Pumped> {
        let slot = self.slots.get_mut(&socket)?;
        slot.leg.handle_datagram(now, from, data);
        Some(self.pump(socket, out))
    }

    /// A call's packet to a leg's socket; false if no leg has it.
    pub fn send_from_call(
        &mut self,
        now: Instant,
        socket: SocketId,
        packet: &[u8],
        out: Option<&mut Vec<Transmit>>,
    ) -> bool {
        let Some(slot) = self.slots.get_mut(&socket) else { return false };
        slot.leg.send_from_call(now, packet);
        match out {
            Some(out) => {
                let _ = self.pump(socket, out);
            }
            None => {
                while slot.leg.poll_transmit().is_some() {}
                while slot.leg.poll_tcp_transmit().is_some() {}
            }
        }
        true
    }

    /// A new offer for the leg of `call`: its answer.
    #[allow(clippy::type_complexity)]
    pub fn reoffer(
        &mut self,
        now: Instant,
        call: media::shard::CallId,
        offer: &str,
        out: &mut Vec<Transmit>,
    ) -> Option<(SocketId, Result<String, WebRtcError>, Pumped)> {
        let socket = self.slots.iter().find(|(_, s)| s.call == call && s.supervisor.is_none()).map(|(k, _)| *k)?;
        let answer = self.slots.get_mut(&socket)?.leg.reoffer(now, offer);
        Some((socket, answer, self.pump(socket, out)))
    }

    /// Runs the legs whose deadline passed: each one's socket and what it told.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Vec<(SocketId, Pumped)> {
        let mut pumped = Vec::new();
        while let Some(&std::cmp::Reverse((at, socket))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(&socket) else { continue };
            if slot.deadline != Some(at) {
                continue; // rescheduled
            }
            slot.deadline = None;
            slot.leg.handle_timeout(now);
            pumped.push((socket, self.pump(socket, out)));
        }
        pumped
    }

    /// The earliest deadline of the legs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|std::cmp::Reverse((at, _))| *at)
    }

    /// Collects a leg's datagrams into `out` and its packets and events, and queues its deadline.
    fn pump(&mut self, socket: SocketId, out: &mut Vec<Transmit>) -> Pumped {
        let mut p = Pumped::default();
        let Some(slot) = self.slots.get_mut(&socket) else { return p };
        while let Some(t) = slot.leg.poll_transmit() {
            out.push(t);
        }
        while let Some((peer, data)) = slot.leg.poll_tcp_transmit() {
            match self.tcp.by_peer.get(&peer) {
                Some(&conn) if self.tcp.conns.get(&conn).is_some_and(|(s, _)| *s == socket) => {
                    self.tcp.push(TcpOut::Frame { conn, data });
                }
                _ => self.tcp.dropped += 1,
            }
        }
        while let Some(packet) = slot.leg.poll_to_call() {
            p.to_call.push(packet);
        }
        while let Some(e) = slot.leg.poll_event() {
            p.events.push(e);
        }
        // A later deadline leaves the earlier one queued (the leg is driven then, a little early,
        // and queues its next): one heap entry per leg and tick, not one per packet.
        let at = slot.leg.poll_timeout();
        if slot.deadline.is_none_or(|d| at < d) {
            slot.deadline = Some(at);
            self.timers.push(std::cmp::Reverse((at, socket)));
        }
        p
    }
}
