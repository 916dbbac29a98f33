//! G.711 RTP streams of the simulated peers: one packet per 20 ms per stream, sent from one shared
//! socket.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// PCMU silence.
const ULAW_SILENCE: u8 = 0xFF;
/// Timestamp units a digit of [`dtmf_packets`] lasts (its final duration).
const DTMF_EVENT_TS: u32 = 160 * 6;

/// The RTP streams a peer sends, keyed by the peer's call key.
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<u64, Stream>,
    pub sent: u64,
    /// PCMU looped on every stream (each from its own start); `None`: silence.
    pub voice: Option<std::sync::Arc<[u8]>>,
}

#[derive(Debug)]
struct Stream {
    to: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// Where in the voice clip the next frame starts.
    at: usize,
}

/// Samples a peer keeps of what it heard (one second).
pub const HEARD_SAMPLES: usize = 8000;

/// What a peer heard: the last second of the PCMU audio it received, so that a test tells who
/// hears whom by the tones' frequencies.
#[derive(Debug, Default)]
pub struct Heard {
    samples: VecDeque<i16>,
}

impl Heard {
    /// A datagram received on the peer's RTP socket (RTCP and other payload types are skipped).
    pub fn push_datagram(&mut self, data: &[u8]) {
        if media::rtp::looks_like_rtcp(data) {
            return;
        }
        let Ok(p) = media::rtp::parse(data) else { return };
        if p.payload_type != 0 {
            return;
        }
        self.samples.extend(p.payload.iter().map(|&b| media::Codec::Pcmu.decode(b)));
        let excess = self.samples.len().saturating_sub(HEARD_SAMPLES);
        self.samples.drain(..excess);
    }

    /// The share of the last second's energy at `hz` (see [`media::dtmf::tone_share`]).
    pub fn share(&self, hz: f32) -> f32 {
        let v: Vec<i16> = self.samples.iter().copied().collect();
        media::dtmf::tone_share(&v, hz)
    }
}

impl Streams {
    pub fn start(&mut self, key: u64, to: SocketAddr, ssrc: u32) {
        self.streams.insert(key, Stream { to, ssrc, seq: (ssrc >> 16) as u16, ts: ssrc.rotate_left(7), at: 0 });
    }

    /// Every stream carries a sine at `hz` (amplitude 6,000) from now on (`None`: silence).
    pub fn set_tone(&mut self, hz: Option<f32>) {
        self.voice = hz.map(|hz| {
            let mut out = Vec::with_capacity(8000);
            let samples: Vec<i16> = (0..8000)
                .map(|n| (6000.0 * (2.0 * std::f32::consts::PI * hz * n as f32 / 8000.0).sin()) as i16)
                .collect();
            media::Codec::Pcmu.encode_into(&samples, &mut out);
            std::sync::Arc::from(out)
        });
    }

    pub fn stop(&mut self, key: u64) {
        self.streams.remove(&key);
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// RFC 4733 packets for one digit on stream `key`, in the stream's own SSRC and sequence: the
    /// event starts at the stream's current timestamp, which then moves past the event, so the
    /// audio after it continues in order. `None` when there is no such stream or digit.
    pub fn dtmf(&mut self, key: u64, digit: char, pt: u8) -> Option<(SocketAddr, Vec<Vec<u8>>)> {
        let s = self.streams.get_mut(&key)?;
        let packets = dtmf_packets(digit, s.ssrc, &mut s.seq, s.ts, pt);
        if packets.is_empty() {
            return None;
        }
        s.ts = s.ts.wrapping_add(DTMF_EVENT_TS);
        self.sent += packets.len() as u64;
        Some((s.to, packets))
    }

    /// One 20 ms frame for every stream: (destination, packet).
    pub fn frame(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.streams.len());
        for s in self.streams.values_mut() {
            let mut p = Vec::with_capacity(172);
            p.push(0x80);
            p.push(0); // PCMU
            p.extend_from_slice(&s.seq.to_be_bytes());
            p.extend_from_slice(&s.ts.to_be_bytes());
            p.extend_from_slice(&s.ssrc.to_be_bytes());
            match self.voice.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => {
                    for _ in 0..160 {
                        s.at %= v.len();
                        p.push(v[s.at]);
                        s.at += 1;
                    }
                }
                None => p.resize(12 + 160, ULAW_SILENCE),
            }
            s.seq = s.seq.wrapping_add(1);
            s.ts = s.ts.wrapping_add(160);
            out.push((s.to, p));
        }
        self.sent += out.len() as u64;
        out
    }
}

/// RFC 4733 telephone-event packets for one digit (start marked, 5 updates, 3 ends).
pub fn dtmf_packets(digit: char, ssrc: u32, seq: &mut u16, ts: u32, pt: u8) -> Vec<Vec<u8>> {
    let event = match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => digit as u8 - b'A' + 12,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for i in 0..8u16 {
        let end = i >= 5;
        let duration = 160u16 * (i.min(5) + 1);
        let mut p = Vec::with_capacity(16);
        p.push(0x80);
        p.push(if i == 0 { 0x80 | pt } else { pt });
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.push(event);
        p.push(if end { 0x80 | 10 } else { 10 });
        p.extend_from_slice(&duration.to_be_bytes());
        *seq = seq.wrapping_add(1);
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[2], p[3]])
    }

    fn ts(p: &[u8]) -> u32 {
        u32::from_be_bytes([p[4], p[5], p[6], p[7]])
    }

    fn ssrc(p: &[u8]) -> u32 {
        u32::from_be_bytes([p[8], p[9], p[10], p[11]])
    }

    #[test]
    fn digits_go_in_the_stream_own_ssrc_and_sequence() {
        let mut s = Streams::default();
        let to: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        s.start(1, to, 0xABCD_1234);
        let audio = s.frame().remove(0).1;
        let (dest, digit) = s.dtmf(1, '2', 101).expect("a stream and a digit");
        assert_eq!(dest, to);
        assert_eq!(digit.len(), 8);
        for (i, p) in digit.iter().enumerate() {
            assert_eq!(ssrc(p), 0xABCD_1234);
            assert_eq!(seq(p), seq(&audio).wrapping_add(1 + i as u16), "one sequence across audio and events");
            assert_eq!(ts(p), ts(&audio).wrapping_add(160), "the event starts where the audio is");
            assert_eq!(p[1] & 0x7F, 101);
            assert_eq!(p[12], 2, "event code of '2'");
        }
        assert_eq!(digit[0][1] & 0x80, 0x80, "the first packet is marked");
        let after = s.frame().remove(0).1;
        assert_eq!(seq(&after), seq(&digit[7]).wrapping_add(1));
        assert_eq!(ts(&after), ts(&digit[0]).wrapping_add(DTMF_EVENT_TS), "audio resumes past the event");
        assert!(s.dtmf(1, 'x', 101).is_none());
        assert!(s.dtmf(2, '1', 101).is_none());
    }
}
