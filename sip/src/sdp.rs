//! SDP offer/answer (RFC 3264) for one audio stream: PCMU (0), PCMA (8) and telephone-event (RFC 4733,
//! dynamic payload type, events 0-15). Our own small parser: bad SDP is an [`SdpError`], never a panic.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Largest SDP body we read.
pub const MAX_SDP_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// What we answer to the remote's direction.
    fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP too large")]
    TooLarge,
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("bad SDP line {0}")]
    BadLine(&'static str),
    #[error("no audio stream")]
    NoAudio,
    #[error("no connection address")]
    NoConnection,
    #[error("no common codec")]
    NoCommonCodec,
}

impl SdpError {
    /// The SIP status for an offer we cannot accept: 488, or 400 for a garbled body.
    pub fn status(&self) -> u16 {
        match self {
            SdpError::NoCommonCodec | SdpError::NoAudio => 488,
            _ => 400,
        }
    }
}

/// The parts of a remote session description we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub addr: IpAddr,
    pub port: u16,
    /// Payload types in the m= line order.
    pub payload_types: Vec<u8>,
    /// rtpmap entries: (payload type, encoding name, clock rate).
    pub rtpmap: Vec<(u8, String, u32)>,
    pub telephone_event: Option<u8>,
    pub ptime_ms: Option<u32>,
    pub direction: Direction,
}

impl MediaDescription {
    /// The codecs offered, in the offerer's order.
    pub fn codecs(&self) -> Vec<Codec> {
        self.payload_types
            .iter()
            .filter_map(|pt| {
                let name = self.rtpmap.iter().find(|(p, _, _)| p == pt).map(|(_, n, r)| (n.to_ascii_uppercase(), *r));
                match (pt, name) {
                    (0, None) => Some(Codec::Pcmu),
                    (8, None) => Some(Codec::Pcma),
                    (_, Some((n, 8000))) if n == "PCMU" => Some(Codec::Pcmu),
                    (_, Some((n, 8000))) if n == "PCMA" => Some(Codec::Pcma),
                    _ => None,
                }
            })
            .collect()
    }
}

/// Parses the first audio stream of an SDP body.
pub fn parse(body: &[u8]) -> Result<MediaDescription, SdpError> {
    if body.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let mut session_addr: Option<IpAddr> = None;
    let mut media_addr: Option<IpAddr> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut port = 0u16;
    let mut pts: Vec<u8> = Vec::new();
    let mut rtpmap = Vec::new();
    let mut ptime = None;
    let mut session_dir = Direction::SendRecv;
    let mut dir: Option<Direction> = None;
    let mut first = true;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(SdpError::BadLine("syntax"))?;
        if k.len() != 1 {
            return Err(SdpError::BadLine("type"));
        }
        if first && k != "v" {
            return Err(SdpError::BadLine("v"));
        }
        first = false;
        match k {
            "v" if v != "0" => return Err(SdpError::BadLine("v")),
            "c" => {
                let mut it = v.split_whitespace();
                let (net, _ty, addr) = (it.next(), it.next(), it.next());
                if net != Some("IN") {
                    return Err(SdpError::BadLine("c"));
                }
                let addr = addr.ok_or(SdpError::BadLine("c"))?;
                let addr = addr.split('/').next().unwrap_or("");
                let ip: IpAddr = addr.parse().map_err(|_| SdpError::BadLine("c"))?;
                if in_audio {
                    media_addr = Some(ip);
                } else if !seen_audio {
                    session_addr = Some(ip);
                }
            }
            "m" => {
                if seen_audio {
                    in_audio = false;
                    continue; // only the first audio stream
                }
                let mut it = v.split_whitespace();
                let media = it.next().ok_or(SdpError::BadLine("m"))?;
                let p: u16 = it
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse().ok())
                    .ok_or(SdpError::BadLine("m"))?;
                let proto = it.next().ok_or(SdpError::BadLine("m"))?;
                if media == "audio" && proto.starts_with("RTP/") {
                    in_audio = true;
                    seen_audio = true;
                    port = p;
                    for f in it.take(32) {
                        pts.push(f.parse::<u8>().ok().filter(|p| *p < 128).ok_or(SdpError::BadLine("m fmt"))?);
                    }
                } else {
                    in_audio = false;
                }
            }
            "a" => {
                let (name, value) = match v.split_once(':') {
                    Some((n, val)) => (n, Some(val)),
                    None => (v, None),
                };
                let d = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if let Some(d) = d {
                    if in_audio {
                        dir = Some(d);
                    } else if !seen_audio {
                        session_dir = d;
                    }
                    continue;
                }
                if !in_audio {
                    continue;
                }
                match (name, value) {
                    ("rtpmap", Some(val)) => {
                        let (pt, enc) = val.split_once(' ').ok_or(SdpError::BadLine("rtpmap"))?;
                        let pt: u8 = pt.trim().parse().map_err(|_| SdpError::BadLine("rtpmap"))?;
                        let mut e = enc.trim().split('/');
                        let name = e.next().unwrap_or("").to_string();
                        let rate: u32 = e.next().and_then(|r| r.parse().ok()).ok_or(SdpError::BadLine("rtpmap"))?;
                        if rtpmap.len() < 32 {
                            rtpmap.push((pt, name, rate));
                        }
                    }
                    ("ptime", Some(val)) => ptime = val.trim().parse().ok(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !seen_audio {
        return Err(SdpError::NoAudio);
    }
    let addr = media_addr.or(session_addr).ok_or(SdpError::NoConnection)?;
    let telephone_event = pts.iter().copied().find(|pt| {
        rtpmap
            .iter()
            .any(|(p, n, r): &(u8, String, u32)| p == pt && n.eq_ignore_ascii_case("telephone-event") && *r == 8000)
    });
    Ok(MediaDescription {
        addr,
        port,
        payload_types: pts,
        rtpmap,
        telephone_event,
        ptime_ms: ptime,
        direction: dir.unwrap_or(session_dir),
    })
}

/// Our side of a session.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    pub addr: IpAddr,
    pub port: u16,
    /// Codecs in our order of preference.
    pub codecs: Vec<Codec>,
    /// Payload type we offer for telephone-event (96..=127), `None` for no DTMF events.
    pub telephone_event: Option<u8>,
    pub session_id: u64,
    pub session_version: u64,
    pub ptime_ms: u32,
}

/// The negotiated result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    pub telephone_event: Option<u8>,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    pub ptime_ms: u32,
    pub direction: Direction,
}

fn header(local: &LocalMedia, s: &mut String) {
    let ip = if local.addr.is_ipv4() { "IP4" } else { "IP6" };
    let _ = write!(
        s,
        "v=0\r\no=kakeru {} {} IN {ip} {}\r\ns=kakeru\r\nc=IN {ip} {}\r\nt=0 0\r\n",
        local.session_id, local.session_version, local.addr, local.addr
    );
}

fn media(s: &mut String, port: u16, codecs: &[Codec], te: Option<u8>, ptime: u32, dir: Direction) {
    let _ = write!(s, "m=audio {port} RTP/AVP");
    for c in codecs {
        let _ = write!(s, " {}", c.payload_type());
    }
    if let Some(te) = te {
        let _ = write!(s, " {te}");
    }
    s.push_str("\r\n");
    for c in codecs {
        let _ = write!(s, "a=rtpmap:{} {}/8000\r\n", c.payload_type(), c.name());
    }
    if let Some(te) = te {
        let _ = write!(s, "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n");
    }
    let _ = write!(s, "a=ptime:{ptime}\r\na={}\r\n", dir.attr());
}

/// An offer with all our codecs.
pub fn offer(local: &LocalMedia) -> Vec<u8> {
    let mut s = String::new();
    header(local, &mut s);
    media(&mut s, local.port, &local.codecs, local.telephone_event, local.ptime_ms, Direction::SendRecv);
    s.into_bytes()
}

/// Answers `offer`: the first of our codecs the offer carries; telephone-event with the offerer's
/// payload type when both sides have it. `NoCommonCodec` maps to 488.
pub fn answer(local: &LocalMedia, offer: &MediaDescription) -> Result<(Negotiated, Vec<u8>), SdpError> {
    let theirs = offer.codecs();
    let codec = local.codecs.iter().copied().find(|c| theirs.contains(c)).ok_or(SdpError::NoCommonCodec)?;
    let te = if local.telephone_event.is_some() { offer.telephone_event } else { None };
    let dir = offer.direction.answer();
    let ptime = offer.ptime_ms.unwrap_or(local.ptime_ms);
    let mut s = String::new();
    header(local, &mut s);
    media(&mut s, local.port, &[codec], te, ptime, dir);
    let n = Negotiated {
        codec,
        telephone_event: te,
        remote_addr: offer.addr,
        remote_port: offer.port,
        ptime_ms: ptime,
        direction: offer.direction,
    };
    Ok((n, s.into_bytes()))
}

/// Reads the answer to our offer: the codec the answerer chose (must be one we offered).
pub fn accept_answer(local: &LocalMedia, answer: &MediaDescription) -> Result<Negotiated, SdpError> {
    let codec = answer.codecs().into_iter().find(|c| local.codecs.contains(c)).ok_or(SdpError::NoCommonCodec)?;
    Ok(Negotiated {
        codec,
        telephone_event: if local.telephone_event.is_some() { answer.telephone_event } else { None },
        remote_addr: answer.addr,
        remote_port: answer.port,
        ptime_ms: answer.ptime_ms.unwrap_or(local.ptime_ms),
        direction: answer.direction,
    })
}
