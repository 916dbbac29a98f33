//! DTMF: RFC 4733 telephone-event receive (de-duplicated into single digits) and send, and an
//! in-band Goertzel detector over decoded G.711 audio.
//!
//! In-band thresholds follow ITU-T Q.24 practice: blocks of 102 samples (12.75 ms); a digit
//! needs one row and one column tone above an absolute level, twist within 8 dB (normal: column
//! weaker) / 4 dB (reverse), each tone 8 dB above the other tones of its group, the pair
//! holding 80 % of the block's energy. A digit starts when one block passes all of that and a
//! neighbouring block passes it with 4 dB looser level/twist/peak limits (so tones under
//! 20.4 ms are never accepted); it continues through blocks that pass the looser limits with a
//! 30 % energy share (noise bursts, quantisation) and ends after two blocks that do not.
//! Tones ≥ 40 ms and pauses ≥ 40 ms are therefore always resolved.

/// Where a digit was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfKind {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// Audio tones in the G.711 payload.
    InBand,
}

/// The sixteen DTMF digits in RFC 4733 event-code order (0-9, *, #, A-D).
pub const DIGITS: [char; 16] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

/// RFC 4733 event code of a digit.
pub fn event_code(digit: char) -> Option<u8> {
    DIGITS.iter().position(|&d| d == digit.to_ascii_uppercase()).map(|p| p as u8)
}

/// Row (low group) frequencies, Hz.
pub const ROWS_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies, Hz.
pub const COLS_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];

/// (row frequency, column frequency) of a digit.
pub fn tone_pair(digit: char) -> Option<(f32, f32)> {
    let d = digit.to_ascii_uppercase();
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, &k) in row.iter().enumerate() {
            if k == d {
                return Some((ROWS_HZ[r], COLS_HZ[c]));
            }
        }
    }
    None
}

/// RFC 4733 §2.3 event payload (first 4-byte block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parse the first event block; `None` if shorter than 4 bytes.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let b = payload.get(..4)?;
        Some(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Encode as 4 bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3F), d[0], d[1]]
    }
}

/// Turns a stream of telephone-event packets (with repeats, retransmitted end packets, loss,
/// duplication and reordering) into one digit per event. An event is identified by its RTP
/// timestamp (RFC 4733 §2.5.1.2: all packets of one event carry the event's start time), so the
/// first packet seen of a new, later timestamp yields the digit and every other packet of it,
/// or of an earlier event, is ignored.
#[derive(Debug, Clone, Default)]
pub struct TelephoneEventReceiver {
    newest: Option<u32>,
}

impl TelephoneEventReceiver {
    /// Feed one telephone-event packet; returns the digit if it starts a new event.
    /// Events 16..=255 (flash, tones) are not digits and return `None`.
    pub fn receive(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<char> {
        let ev = TelephoneEvent::parse(payload)?;
        let digit = *DIGITS.get(usize::from(ev.event))?;
        if let Some(newest) = self.newest {
            // Same event, or an earlier one arriving late (serial-number comparison).
            if (rtp_timestamp.wrapping_sub(newest) as i32) <= 0 {
                return None;
            }
        }
        self.newest = Some(rtp_timestamp);
        Some(digit)
    }

    /// Forget the last event (a source switch restarts timestamps).
    pub fn reset(&mut self) {
        self.newest = None;
    }
}

/// Payloads for sending one digit: one packet per `ptime_samples` while the tone lasts (the
/// first with the marker bit), then the end packet three times (RFC 4733 §2.5.1.4).
/// Returns (marker, payload) in send order; all share the event's start timestamp.
pub fn telephone_event_payloads(
    digit: char,
    duration_samples: u16,
    ptime_samples: u16,
    volume: u8,
) -> Vec<(bool, [u8; 4])> {
    let Some(event) = event_code(digit) else {
        return Vec::new();
    };
    let step = ptime_samples.max(1);
    let mut out = Vec::new();
    let mut d = step.min(duration_samples);
    loop {
        let ev = TelephoneEvent { event, end: false, volume, duration: d };
        out.push((out.is_empty(), ev.to_bytes()));
        if d >= duration_samples {
            break;
        }
        d = d.saturating_add(step).min(duration_samples);
    }
    let end = TelephoneEvent { event, end: true, volume, duration: duration_samples };
    for _ in 0..3 {
        out.push((false, end.to_bytes()));
    }
    out
}

const BLOCK: usize = 102;
const SAMPLE_RATE: f32 = 8000.0;
/// Minimum per-tone energy over a block: amplitude 250 of 16-bit full scale (about -39 dBm0).
const MIN_TONE_ENERGY: f32 = 250.0 * 250.0 * BLOCK as f32 / 2.0;
/// Normal twist (column weaker than row), 8 dB as a power ratio.
const NORMAL_TWIST: f32 = 6.31;
/// Reverse twist (row weaker than column), 4 dB.
const REVERSE_TWIST: f32 = 2.51;
/// Each tone must exceed the other tones of its group by 8 dB.
const RELATIVE_PEAK: f32 = 6.31;
/// The two tones must hold at least this share of the block's energy. A block only partly
/// filled with tone has a share of about (tone samples / block): two neighbouring blocks at
/// 0.8 need 163 samples, so tones under 20.4 ms are never accepted.
const TONE_SHARE: f32 = 0.8;

/// The digit a block's tones point at, under three sets of checks.
#[derive(Debug, Clone, Copy, Default)]
struct BlockClass {
    /// Every check passed.
    strict: Option<char>,
    /// Relaxed level/twist/peak checks, but the full energy share.
    neighbour: Option<char>,
    /// Relaxed checks with 30 % of the energy: enough to keep an ongoing digit.
    loose: Option<char>,
}

/// The power of one frequency in `samples` (Goertzel), scaled so that a sine of amplitude A over
/// the whole slice gives about A² / 2 whatever its length: for checking a tone's frequency.
pub fn goertzel_power(samples: &[i16], hz: f32, sample_rate: f32) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let coeff = 2.0 * (2.0 * std::f32::consts::PI * hz / sample_rate).cos();
    goertzel(coeff, samples.iter().map(|&x| f32::from(x)), samples.len()) / samples.len() as f32
}

/// Goertzel's filter over `n` samples at the frequency of `coeff` (`2 cos(2 pi f / 8000)`):
/// |X|^2 scaled so that a sine of amplitude A over all `n` samples gives about A^2 * n / 2, the
/// sine's energy: divided by the samples' energy, it is the share at that frequency.
fn goertzel(coeff: f32, samples: impl Iterator<Item = f32>, n: usize) -> f32 {
    let (mut s1, mut s2) = (0f32, 0f32);
    for x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / n.max(1) as f32
}

/// The share (0 to about 1) of the energy of 8 kHz `samples` that lies at `freq_hz` (Goertzel's
/// filter): a tone by its frequency, as the tests of who hears whom check it. 0 for silence.
pub fn tone_share(samples: &[i16], freq_hz: f32) -> f32 {
    let energy: f32 = samples.iter().map(|&x| f32::from(x) * f32::from(x)).sum();
    if energy <= 0.0 {
        return 0.0;
    }
    let coeff = 2.0 * (2.0 * std::f32::consts::PI * freq_hz / SAMPLE_RATE).cos();
    goertzel(coeff, samples.iter().map(|&x| f32::from(x)), samples.len()) / energy
}

/// In-band DTMF detector for one direction of one leg. Feed it linear 8 kHz samples in any
/// chunk sizes.
#[derive(Debug, Clone)]
pub struct GoertzelDetector {
    coeffs: [f32; 8],
    block: [f32; BLOCK],
    filled: usize,
    last_block: BlockClass,
    current: Option<char>,
    misses: u8,
}

impl Default for GoertzelDetector {
    fn default() -> Self {
        let mut coeffs = [0f32; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS_HZ.iter().chain(COLS_HZ.iter())) {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / SAMPLE_RATE).cos();
        }
        GoertzelDetector {
            coeffs,
            block: [0.0; BLOCK],
            filled: 0,
            last_block: BlockClass::default(),
            current: None,
            misses: 0,
        }
    }
}

impl GoertzelDetector {
    /// Feed samples; every newly started digit is pushed to `out` (bounded by the input length:
    /// at most one digit per two blocks).
    pub fn process(&mut self, samples: &[i16], out: &mut Vec<char>) {
        for &s in samples {
            self.block[self.filled] = f32::from(s);
            self.filled += 1;
            if self.filled == BLOCK {
                self.filled = 0;
                let class = self.classify();
                self.step(class, out);
            }
        }
    }

    fn step(&mut self, class: BlockClass, out: &mut Vec<char>) {
        let BlockClass { strict: d, neighbour, loose } = class;
        if let Some(cur) = self.current {
            if d == Some(cur) || loose == Some(cur) {
                self.misses = 0;
            } else {
                self.misses += 1;
                if self.misses >= 2 {
                    self.current = None;
                    self.misses = 0;
                }
            }
        }
        // Start: one block passes every check and a neighbouring block (before or after) passes
        // the relaxed checks with most of its energy in the pair: > 22 ms of tone.
        if self.current.is_none() {
            let prev = self.last_block;
            let start = match d {
                Some(x) if prev.neighbour == Some(x) => Some(x),
                _ => prev.strict.filter(|&x| neighbour == Some(x)),
            };
            if let Some(c) = start {
                self.current = Some(c);
                self.misses = 0;
                out.push(c);
            }
        }
        self.last_block = class;
    }

    fn classify(&self) -> BlockClass {
        let mut energy = 0f32;
        let mut power = [0f32; 8];
        for (p, &coeff) in power.iter_mut().zip(self.coeffs.iter()) {
            *p = goertzel(coeff, self.block.iter().copied(), BLOCK);
        }
        for &x in &self.block {
            energy += x * x;
        }
        let argmax = |g: &[f32]| {
            let mut best = 0;
            for i in 1..g.len() {
                if g[i] > g[best] {
                    best = i;
                }
            }
            best
        };
        let (rows, cols) = power.split_at(4);
        let (r, c) = (argmax(rows), argmax(cols));
        let (pr, pc) = (rows[r], cols[c]);
        let peak =
            |g: &[f32], best: usize, ratio: f32| g.iter().enumerate().all(|(i, &p)| i == best || p * ratio < g[best]);
        let passes = |level: f32, twist: f32, ratio: f32, share: f32| {
            pr >= level
                && pc >= level
                && pr <= pc * NORMAL_TWIST * twist
                && pc <= pr * REVERSE_TWIST * twist
                && peak(rows, r, ratio)
                && peak(cols, c, ratio)
                && pr + pc >= share * energy
        };
        let digit = KEYPAD[r][c];
        let strict = passes(MIN_TONE_ENERGY, 1.0, RELATIVE_PEAK, TONE_SHARE).then_some(digit);
        // Hysteresis: an ongoing digit survives a block 6 dB weaker, with 4 dB more twist,
        // 4 dB less peak margin and a smaller energy share (noise bursts, codec quantisation).
        let loose = passes(MIN_TONE_ENERGY / 4.0, 2.51, RELATIVE_PEAK / 2.51, 0.3).then_some(digit);
        let neighbour = passes(MIN_TONE_ENERGY / 4.0, 2.51, RELATIVE_PEAK / 2.51, TONE_SHARE).then_some(digit);
        BlockClass { strict, neighbour, loose }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(digit: char, ms: usize, amp: f32) -> Vec<i16> {
        let (fr, fc) = tone_pair(digit).unwrap();
        (0..ms * 8)
            .map(|n| {
                let t = n as f32 / 8000.0;
                (amp * ((2.0 * std::f32::consts::PI * fr * t).sin() + (2.0 * std::f32::consts::PI * fc * t).sin()))
                    as i16
            })
            .collect()
    }

    #[test]
    fn every_digit_once() {
        let mut det = GoertzelDetector::default();
        let mut out = vec![];
        for d in DIGITS {
            det.process(&tone(d, 60, 5000.0), &mut out);
            det.process(&[0; 400], &mut out);
        }
        assert_eq!(out, DIGITS.to_vec());
    }

    #[test]
    fn too_short_or_single_tone_rejected() {
        let mut det = GoertzelDetector::default();
        let mut out = vec![];
        det.process(&tone('5', 20, 5000.0), &mut out);
        det.process(&[0; 800], &mut out);
        let single: Vec<i16> = (0..800)
            .map(|n| (8000.0 * (2.0 * std::f32::consts::PI * 770.0 * n as f32 / 8000.0).sin()) as i16)
            .collect();
        det.process(&single, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn duration_limits_at_every_block_alignment() {
        for offset in 0..BLOCK {
            let mut det = GoertzelDetector::default();
            let mut out = vec![];
            det.process(&vec![0; offset], &mut out);
            det.process(&tone('9', 20, 3000.0), &mut out);
            det.process(&[0; 400], &mut out);
            assert!(out.is_empty(), "20 ms tone accepted at offset {offset}");
            // 40 ms tones separated by 40 ms pauses: every one counted.
            for _ in 0..3 {
                det.process(&tone('9', 40, 3000.0), &mut out);
                det.process(&[0; 320], &mut out);
            }
            assert_eq!(out, vec!['9'; 3], "offset {offset}");
        }
    }

    #[test]
    fn rfc4733_dedup() {
        let mut rx = TelephoneEventReceiver::default();
        let pkts = telephone_event_payloads('7', 800, 160, 10);
        assert_eq!(pkts.len(), 5 + 3);
        let got: Vec<_> = pkts.iter().filter_map(|(_, p)| rx.receive(1000, p)).collect();
        assert_eq!(got, vec!['7']);
        assert_eq!(rx.receive(999, &pkts[0].1), None);
        assert_eq!(rx.receive(2000, &pkts[0].1), Some('7'));
        assert_eq!(rx.receive(3000, &[1, 2]), None);
        assert_eq!(rx.receive(3000, &[16, 0, 0, 0]), None);
    }

    #[test]
    fn tone_share_tells_tones_apart_by_frequency() {
        let sine = |f: f32, amp: f32| -> Vec<f32> {
            (0..8000).map(|n| amp * (2.0 * std::f32::consts::PI * f * n as f32 / 8000.0).sin()).collect()
        };
        let mix: Vec<i16> = sine(500.0, 4000.0).iter().zip(sine(1100.0, 4000.0)).map(|(a, b)| (a + b) as i16).collect();
        let (a, b, c) = (tone_share(&mix, 500.0), tone_share(&mix, 1100.0), tone_share(&mix, 1700.0));
        assert!((0.4..0.6).contains(&a) && (0.4..0.6).contains(&b), "{a} {b}");
        assert!(c < 0.01, "{c}");
        assert_eq!(tone_share(&[0; 160], 500.0), 0.0);
    }
}
