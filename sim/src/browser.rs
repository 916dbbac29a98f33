//! A browser's WebRTC peer for tests and the `webrtc` bench: what Chromium does for the browser
//! phone, with str0m (full ICE, controlling; DTLS-SRTP; Opus, PCMU and RFC 4733 telephone events
//! offered as Chromium offers them), over a real UDP socket.
//!
//! It deals in RTP payloads: the caller encodes (PCMU, or Opus with libopus) and decodes what it
//! receives ([`Browser::poll_packet`]). Drive it with [`Browser::step`] (non-blocking: reads what
//! the socket holds, runs str0m's timers, sends what str0m wants sent).

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
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
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(rtc_err)?);
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

    /// The server's SDP answer.
    pub fn answer(&mut self, sdp: &str) -> Result<(), BrowserError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(rtc_err)?;
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

    /// Reads what the socket holds, runs due timers and sends what str0m wants sent.
    pub fn step(&mut self, now: Instant) -> Result<(), BrowserError> {
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
        self.drain()
    }

    /// The next packet received from the server.
    pub fn poll_packet(&mut self) -> Option<Packet> {
        self.received.pop_front()
    }

    fn drain(&mut self) -> Result<(), BrowserError> {
        loop {
            match self.rtc.poll_output().map_err(rtc_err)? {
                Output::Timeout(_) => return Ok(()),
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
