//! A browser's WebRTC peer for tests and the `webrtc` bench: what Chromium does for the browser
//! phone, with str0m (full ICE, controlling; DTLS-SRTP; Opus, PCMU and RFC 4733 telephone events
//! offered as Chromium offers them), over a real UDP socket.
//!
//! [`Browser::offer_tcp`] makes a peer that reaches the server over TCP alone (RFC 6544, an
//! active TCP candidate to the server's passive one, RFC 4571 framing): it drops the UDP
//! candidates of the server's answer, as a browser behind a firewall that lets only TCP out finds
//! them unreachable.
//!
//! It deals in RTP payloads: the caller encodes (PCMU, or Opus with libopus) and decodes what it
//! receives ([`Browser::poll_packet`]). Drive it with [`Browser::step`] (non-blocking: reads what
//! the socket holds, runs str0m's timers, sends what str0m wants sent).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// Payload types as Chromium numbers them.
pub const PT_OPUS: u8 = 111;
pub const PT_PCMU: u8 = 0;
pub const PT_TELEPHONE_EVENT_48K: u8 = 110;
pub const PT_TELEPHONE_EVENT_8K: u8 = 126;
/// Packets kept until the caller polls them.
pub const MAX_RECEIVED: usize = 4096;

/// A received RTP packet: payload type, timestamp, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub pt: u8,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// Why the peer failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("webrtc: {0}")]
    Rtc(String),
}

fn rtc_err(e: impl std::fmt::Display) -> BrowserError {
    BrowserError::Rtc(e.to_string())
}

/// One browser peer (see the module docs).
pub struct Browser {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    seq: u64,
    received: VecDeque<Packet>,
    connected: bool,
    disconnected: bool,
    buf: Vec<u8>,
    /// Datagrams dropped on purpose ([`Browser::set_cut`]): a network cut.
    cut: bool,
    /// TCP only ([`Browser::offer_tcp`]): the connection once the answer named the server's
    /// TCP candidate.
    tcp_only: bool,
    tcp: Option<TcpLink>,
}

/// The peer's TCP connection to the server's passive candidate, RFC 4571 framed.
struct TcpLink {
    stream: TcpStream,
    local: SocketAddr,
    server: SocketAddr,
    /// Bytes read and not yet a whole frame; framed bytes not yet written.
    inbox: Vec<u8>,
    outbox: Vec<u8>,
}

/// Bytes of framed datagrams the peer keeps unwritten before it drops more (as a full socket
/// buffer loses datagrams).
const MAX_TCP_OUTBOX: usize = 256 * 1024;

impl TcpLink {
    fn queue(&mut self, datagram: &[u8]) {
        let Ok(len) = u16::try_from(datagram.len()) else { return };
        if self.outbox.len() + 2 + datagram.len() <= MAX_TCP_OUTBOX {
            self.outbox.extend_from_slice(&len.to_be_bytes());
            self.outbox.extend_from_slice(datagram);
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        while !self.outbox.is_empty() {
            match self.stream.write(&self.outbox) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the connection holds; the whole frames in it.
    fn read_frames(&mut self, buf: &mut [u8]) -> std::io::Result<Vec<Vec<u8>>> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some(head) = self.inbox.get(at..at + 2) {
            let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
            let Some(frame) = self.inbox.get(at + 2..at + 2 + len) else { break };
            frames.push(frame.to_vec());
            at += 2 + len;
        }
        self.inbox.drain(..at);
        Ok(frames)
    }
}

/// The first passive TCP host candidate of an SDP (`a=candidate:... tcp PRIO IP PORT typ host
/// tcptype passive`).
pub fn passive_tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().filter_map(|l| l.trim().strip_prefix("a=candidate:")).find_map(|c| {
        let f: Vec<&str> = c.split_whitespace().collect();
        let passive = f.windows(2).any(|w| w == ["tcptype", "passive"]);
        (f.len() >= 6 && f[2].eq_ignore_ascii_case("tcp") && passive)
            .then(|| format!("{}:{}", f[4], f[5]).parse().ok())
            .flatten()
    })
}

/// The SDP without its UDP candidates.
fn without_udp_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| {
            let c = l.trim().strip_prefix("a=candidate:");
            !c.is_some_and(|c| c.split_whitespace().nth(2).is_some_and(|p| p.eq_ignore_ascii_case("udp")))
        })
        .collect()
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("local", &self.local)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// A peer on a new socket at `bind` offering Opus (when `opus`) and PCMU with telephone
    /// events; the SDP offer to send to the server.
    pub fn offer(now: Instant, bind: SocketAddr, opus: bool) -> Result<(Browser, String), BrowserError> {
        Browser::make_offer(now, bind, opus, false)
    }

    /// A peer that reaches the server over TCP alone (see the module docs); its offer carries no
    /// candidate (the connection's address is known once the answer names the server's).
    pub fn offer_tcp(now: Instant, opus: bool) -> Result<(Browser, String), BrowserError> {
        Browser::make_offer(now, "127.0.0.1:0".parse().expect("invariant: an address"), opus, true)
    }

    fn make_offer(
        now: Instant,
        bind: SocketAddr,
        opus: bool,
        tcp_only: bool,
    ) -> Result<(Browser, String), BrowserError> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let mut cfg = Rtc::builder()
            .set_rtp_mode(true)
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs();
        if opus {
            cfg = cfg.enable_opus(true, false);
        }
        cfg = cfg.enable_pcmu(true, false);
        for (pt, clock) in
            [(PT_TELEPHONE_EVENT_48K, Frequency::FORTY_EIGHT_KHZ), (PT_TELEPHONE_EVENT_8K, Frequency::EIGHT_KHZ)]
        {
            cfg.codec_config().add_config(pt.into(), None, Codec::Tele, clock, Some(1), FormatParams::default());
        }
        let mut rtc = cfg.build(now);
        if !tcp_only {
            rtc.add_local_candidate(Candidate::host(local, "udp").map_err(rtc_err)?);
        }
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or_else(|| BrowserError::Rtc("no offer".into()))?;
        let mut b = Browser {
            rtc,
            socket,
            local,
            mid,
            pending: Some(pending),
            seq: 1,
            received: VecDeque::new(),
            connected: false,
            disconnected: false,
            buf: vec![0; 2048],
            cut: false,
            tcp_only,
            tcp: None,
        };
        b.drain()?;
        Ok((b, offer.to_sdp_string()))
    }

    /// An ICE restart: a new offer on the same connection (answer it with [`Browser::answer`]).
    pub fn restart(&mut self) -> Result<String, BrowserError> {
        let mut change = self.rtc.sdp_api();
        change.ice_restart(true);
        let (offer, pending) = change.apply().ok_or_else(|| BrowserError::Rtc("no offer".into()))?;
        self.pending = Some(pending);
        self.drain()?;
        Ok(offer.to_sdp_string())
    }

    /// The server's SDP answer. A TCP-only peer drops its UDP candidates and connects to its
    /// passive TCP candidate (once: an ICE restart keeps the connection).
    pub fn answer(&mut self, sdp: &str) -> Result<(), BrowserError> {
        let sdp = if self.tcp_only { without_udp_candidates(sdp) } else { sdp.to_string() };
        if self.tcp_only && self.tcp.is_none() {
            let server =
                passive_tcp_candidate(&sdp).ok_or_else(|| BrowserError::Rtc("no passive TCP candidate".into()))?;
            let stream = TcpStream::connect_timeout(&server, std::time::Duration::from_secs(5))?;
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            let local = stream.local_addr()?;
            let c = Candidate::builder().tcp().host(local).tcptype(TcpType::Active).build().map_err(rtc_err)?;
            self.rtc.add_local_candidate(c);
            self.tcp = Some(TcpLink { stream, local, server, inbox: Vec::new(), outbox: Vec::new() });
        }
        let answer = SdpAnswer::from_sdp_string(&sdp).map_err(rtc_err)?;
        let pending = self.pending.take().ok_or_else(|| BrowserError::Rtc("no offer pending".into()))?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(rtc_err)?;
        self.drain()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The peer's socket, to wait on with a poller ([`Browser::step`] reads it).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether ICE reported the server lost since the last connection.
    pub fn was_disconnected(&self) -> bool {
        self.disconnected
    }

    /// Drop every datagram both ways while `cut` (a network cut).
    pub fn set_cut(&mut self, cut: bool) {
        self.cut = cut;
    }

    /// The payload type the server's answer chose for audio: Opus or PCMU.
    pub fn audio_pt(&self) -> Option<u8> {
        let media = self.rtc.media(self.mid)?;
        media.remote_pts().first().map(|pt| **pt)
    }

    /// Whether the peer's media goes over TCP.
    pub fn is_tcp(&self) -> bool {
        self.tcp_only
    }

    /// What to wait on for the peer's input: its TCP connection once it has one, else its UDP
    /// socket ([`Browser::step`] reads either).
    pub fn readable_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match &self.tcp {
            Some(l) => l.stream.as_raw_fd(),
            None => self.socket.as_raw_fd(),
        }
    }

    /// The server's TCP candidate the peer connected to (TCP only, once answered).
    pub fn tcp_server(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(|l| l.server)
    }

    /// Reads what the socket holds, runs due timers and sends what str0m wants sent.
    pub fn step(&mut self, now: Instant) -> Result<(), BrowserError> {
        if let Some(link) = self.tcp.as_mut() {
            let frames = link.read_frames(&mut self.buf)?;
            let (source, destination) = (link.server, link.local);
            for frame in frames {
                if self.cut {
                    continue;
                }
                let Ok(contents) = frame.as_slice().try_into() else { continue };
                let input = Input::Receive(now, Receive { proto: Protocol::Tcp, source, destination, contents });
                if self.rtc.accepts(&input) {
                    self.rtc.handle_input(input).map_err(rtc_err)?;
                    self.drain()?;
                }
            }
        }
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    if self.cut {
                        continue;
                    }
                    let Ok(contents) = self.buf[..n].try_into() else { continue };
                    let input = Input::Receive(
                        now,
                        Receive { proto: Protocol::Udp, source: from, destination: self.local, contents },
                    );
                    if self.rtc.accepts(&input) {
                        self.rtc.handle_input(input).map_err(rtc_err)?;
                        self.drain()?;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP port unreachable from a closed peer: nothing to read.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.rtc.handle_input(Input::Timeout(now)).map_err(rtc_err)?;
        self.drain()
    }

    /// Sends one RTP packet (audio at the codec's clock, or a telephone event).
    pub fn send(
        &mut self,
        now: Instant,
        pt: u8,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), BrowserError> {
        if !self.connected {
            return Ok(());
        }
        let seq = SeqNo::from(self.seq);
        self.seq += 1;
        let mut direct = self.rtc.direct_api();
        let tx = direct.stream_tx_by_mid(self.mid, None).ok_or_else(|| BrowserError::Rtc("no send stream".into()))?;
        tx.write_rtp(RtpWrite::new(pt.into(), seq, timestamp, now, payload.to_vec()).marker(marker));
        // str0m's send queue hands out what was queued when its clock last moved: the packet
        // leaves now, not at the next pump.
        self.rtc.handle_input(Input::Timeout(now)).map_err(rtc_err)?;
        self.drain()
    }

    /// The next packet received from the server.
    pub fn poll_packet(&mut self) -> Option<Packet> {
        self.received.pop_front()
    }

    fn drain(&mut self) -> Result<(), BrowserError> {
        loop {
            match self.rtc.poll_output().map_err(rtc_err)? {
                Output::Timeout(_) => {
                    if let Some(link) = self.tcp.as_mut() {
                        link.flush()?;
                    }
                    return Ok(());
                }
                Output::Transmit(t) if t.proto == Protocol::Tcp => {
                    if let Some(link) = self.tcp.as_mut().filter(|_| !self.cut) {
                        link.queue(&t.contents);
                    }
                }
                Output::Transmit(t) => {
                    if !self.cut {
                        // A full socket buffer loses the datagram, as a network would.
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                    self.disconnected = true;
                }
                Output::Event(Event::RtpPacket(p)) => {
                    if self.received.len() < MAX_RECEIVED {
                        self.received.push_back(Packet {
                            pt: *p.header.payload_type,
                            timestamp: p.header.timestamp,
                            marker: p.header.marker,
                            payload: p.payload.to_vec(),
                        });
                    }
                }
                Output::Event(_) => {}
            }
        }
    }
}
