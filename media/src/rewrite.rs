//! SSRC, sequence-number and timestamp rewriting for one outgoing packet stream.
//!
//! An outgoing stream keeps one SSRC for its whole life while its *source* changes: hold audio,
//! then a customer, then hold audio again. Each source is re-anchored on its first packet so the
//! outgoing sequence number continues at `last + 1` and the timestamp advances by the wall-clock
//! time since the last packet sent (rounded to whole 20 ms frames, at least one frame); the
//! marker bit is set on that packet (RFC 3550 §5.1: a discontinuity in the media). Within one
//! source, gaps and reordering are mirrored exactly: output = input + constant offset. Duplicates
//! and packets older than the source's first packet are refused so every output sequence number
//! is used at most once.

use std::time::{Duration, Instant};

/// Samples in one 20 ms G.711 frame.
pub const FRAME_SAMPLES: u32 = 160;
/// Duration of one frame.
pub const FRAME: Duration = Duration::from_millis(20);
/// How far back (in sequence numbers) duplicates are remembered.
pub const DUPLICATE_WINDOW: u64 = 128;

/// Identity of the source currently feeding an outgoing stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Packets relayed from another leg whose sender used this SSRC.
    Relay { ssrc: u32 },
    /// Frames from the local player; each activation of the player is a new epoch.
    Player { epoch: u32 },
    /// Frames mixed from several legs (a supervisor's whisper or barge, what a supervisor hears).
    Mix,
}

/// Why a packet was not rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// Already forwarded once.
    Duplicate,
    /// Older than the duplicate window, or sent before the current source's first packet.
    TooLate,
}

/// Output header values for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Set on the first packet after a source switch (or if the input had it).
    pub marker: bool,
}

/// Sliding window over extended sequence numbers: refuses duplicates and packets more than
/// [`DUPLICATE_WINDOW`] behind the highest, or before the first packet seen.
#[derive(Debug, Clone, Default)]
pub struct SeqWindow {
    first_ext: Option<i64>,
    highest_ext: i64,
    /// Bit i set = `highest_ext - i` was accepted.
    window: u128,
}

impl SeqWindow {
    /// Accept `seq` once; returns its extended sequence number (first packet = 65536 + seq).
    pub fn accept(&mut self, seq: u16) -> Result<i64, Refused> {
        let Some(first_ext) = self.first_ext else {
            let ext = i64::from(seq) + (1 << 16);
            self.first_ext = Some(ext);
            self.highest_ext = ext;
            self.window = 1;
            return Ok(ext);
        };
        let delta = i64::from(seq.wrapping_sub(self.highest_ext as u16) as i16);
        let ext = self.highest_ext + delta;
        if ext < first_ext {
            return Err(Refused::TooLate);
        }
        if ext > self.highest_ext {
            let shift = (ext - self.highest_ext) as u64;
            self.window = if shift >= 128 { 0 } else { self.window << shift };
            self.window |= 1;
            self.highest_ext = ext;
        } else {
            let back = (self.highest_ext - ext) as u64;
            if back >= DUPLICATE_WINDOW {
                return Err(Refused::TooLate);
            }
            if self.window & (1u128 << back) != 0 {
                return Err(Refused::Duplicate);
            }
            self.window |= 1u128 << back;
        }
        Ok(ext)
    }

    /// Extended sequence number of the first packet accepted.
    pub fn first(&self) -> Option<i64> {
        self.first_ext
    }

    /// Highest extended sequence number accepted.
    pub fn highest(&self) -> i64 {
        self.highest_ext
    }
}

#[derive(Debug, Clone)]
struct SourceState {
    source: Source,
    window: SeqWindow,
    /// Output sequence number of `first_ext`.
    out_base: u16,
    /// Added (wrapping) to input timestamps.
    ts_offset: u32,
}

/// Rewriter for one outgoing packet stream (one SSRC).
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    ssrc: u32,
    /// Next output sequence number if nothing was sent yet.
    initial_seq: u16,
    initial_ts: u32,
    current: Option<SourceState>,
    /// Highest output (seq, ts) sent and when.
    last_out: Option<(u16, u32, Instant)>,
    packets_sent: u64,
    octets_sent: u64,
}

impl StreamRewriter {
    /// A stream with its own SSRC and random (injected) initial sequence number and timestamp.
    pub fn new(ssrc: u32, initial_seq: u16, initial_ts: u32) -> Self {
        StreamRewriter { ssrc, initial_seq, initial_ts, current: None, last_out: None, packets_sent: 0, octets_sent: 0 }
    }

    /// The outgoing SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Packets and payload octets sent (for the RTCP sender report).
    pub fn sent(&self) -> (u64, u64) {
        (self.packets_sent, self.octets_sent)
    }

    /// Highest output timestamp sent and when (for the RTCP sender report).
    pub fn last_sent(&self) -> Option<(u16, u32, Instant)> {
        self.last_out
    }

    /// The source currently anchored.
    pub fn source(&self) -> Option<Source> {
        self.current.as_ref().map(|s| s.source)
    }

    /// Map one input packet of `source` to output header values.
    pub fn rewrite(
        &mut self,
        now: Instant,
        source: Source,
        seq: u16,
        ts: u32,
        marker: bool,
        payload_len: usize,
    ) -> Result<Rewritten, Refused> {
        let switched = self.current.as_ref().is_none_or(|s| s.source != source);
        if switched {
            let (out_base, out_ts) = match self.last_out {
                None => (self.initial_seq, self.initial_ts),
                Some((last_seq, last_ts, at)) => {
                    let elapsed = now.saturating_duration_since(at);
                    let frames = (elapsed.as_micros() + FRAME.as_micros() / 2) / FRAME.as_micros();
                    let frames = frames.clamp(1, u128::from(u32::MAX / FRAME_SAMPLES)) as u32;
                    (last_seq.wrapping_add(1), last_ts.wrapping_add(frames * FRAME_SAMPLES))
                }
            };
            self.current = Some(SourceState {
                source,
                window: SeqWindow::default(),
                out_base,
                ts_offset: out_ts.wrapping_sub(ts),
            });
        }
        // `current` was set just above when absent.
        let st = self.current.as_mut().expect("invariant: source anchored above");
        let ext = st.window.accept(seq)?;
        let first_ext = st.window.first().expect("invariant: accept() sets the first packet");
        let out_seq = st.out_base.wrapping_add((ext - first_ext) as u16);
        let out_ts = ts.wrapping_add(st.ts_offset);
        let is_highest = ext == st.window.highest();
        if is_highest {
            self.last_out = Some((out_seq, out_ts, now));
        }
        self.packets_sent += 1;
        self.octets_sent += payload_len as u64;
        Ok(Rewritten { sequence: out_seq, timestamp: out_ts, ssrc: self.ssrc, marker: marker || switched })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuity_across_switches() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(7, 65530, 1000);
        let mut t = t0;
        let mut outs = vec![];
        for i in 0..5u16 {
            outs.push(r.rewrite(t, Source::Player { epoch: 0 }, i, u32::from(i) * 160, false, 160).unwrap());
            t += FRAME;
        }
        for i in 0..5u16 {
            let seq = 40000u16.wrapping_add(i);
            outs.push(r.rewrite(t, Source::Relay { ssrc: 9 }, seq, 77 + u32::from(i) * 160, false, 160).unwrap());
            t += FRAME;
        }
        for w in outs.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
        }
        assert!(outs[0].marker && outs[5].marker && !outs[6].marker);
    }

    #[test]
    fn duplicates_and_gaps() {
        let t = Instant::now();
        let mut r = StreamRewriter::new(7, 0, 0);
        let s = Source::Relay { ssrc: 1 };
        assert_eq!(r.rewrite(t, s, 10, 0, false, 1).unwrap().sequence, 0);
        assert_eq!(r.rewrite(t, s, 13, 480, false, 1).unwrap().sequence, 3);
        assert_eq!(r.rewrite(t, s, 11, 160, false, 1).unwrap().sequence, 1);
        assert_eq!(r.rewrite(t, s, 11, 160, false, 1), Err(Refused::Duplicate));
        assert_eq!(r.rewrite(t, s, 9, 0, false, 1), Err(Refused::TooLate));
    }
}
