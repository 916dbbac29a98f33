//! G.711 RTP streams of the simulated peers: one packet per 20 ms per stream, sent from one shared
//! socket.

use std::collections::HashMap;
use std::net::SocketAddr;

/// PCMU silence.
const ULAW_SILENCE: u8 = 0xFF;

/// The RTP streams a peer sends, keyed by the peer's call key.
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<u64, Stream>,
    pub sent: u64,
}

#[derive(Debug)]
struct Stream {
    to: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl Streams {
    pub fn start(&mut self, key: u64, to: SocketAddr, ssrc: u32) {
        self.streams.insert(key, Stream { to, ssrc, seq: (ssrc >> 16) as u16, ts: ssrc.rotate_left(7) });
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
            p.resize(12 + 160, ULAW_SILENCE);
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
