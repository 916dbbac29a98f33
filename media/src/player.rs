//! Playback of prompts, beeps and looping hold audio as 20 ms frames of linear samples.
//!
//! Clips are immutable and shared (`Arc<[i16]>`): one hold-music clip serves every call on a
//! shard. The player only hands out frames when the call asks (on its 20 ms timer).

use std::collections::VecDeque;
use std::sync::Arc;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// At most this many prompts can wait in one player's queue.
pub const MAX_QUEUED_CLIPS: usize = 16;

/// Immutable 8 kHz mono audio.
pub type Clip = Arc<[i16]>;

/// A sine beep with 5 ms raised ramps (the agent's "customer connected" cue).
pub fn beep(freq_hz: f32, duration_ms: u32, amplitude: i16) -> Clip {
    let n = (duration_ms as usize * 8).min(crate::wav::MAX_CLIP_SAMPLES);
    let ramp = 40usize.min(n / 2).max(1);
    (0..n)
        .map(|i| {
            let edge = i.min(n - 1 - i);
            let gain = if edge < ramp { edge as f32 / ramp as f32 } else { 1.0 };
            let v = f32::from(amplitude) * gain * (2.0 * std::f32::consts::PI * freq_hz * i as f32 / 8000.0).sin();
            v as i16
        })
        .collect::<Vec<_>>()
        .into()
}

/// What a produced frame contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// A queued prompt ended within this frame.
    pub prompt_finished: bool,
}

/// The queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("player queue full ({MAX_QUEUED_CLIPS} clips)")]
pub struct QueueFull;

/// Prompts in order, then the loop clip (hold audio), if any.
#[derive(Debug, Clone, Default)]
pub struct Player {
    queue: VecDeque<(Clip, usize)>,
    looped: Option<(Clip, usize)>,
}

impl Player {
    /// Queue a prompt after the ones already queued.
    pub fn enqueue(&mut self, clip: Clip) -> Result<(), QueueFull> {
        if self.queue.len() >= MAX_QUEUED_CLIPS {
            return Err(QueueFull);
        }
        if !clip.is_empty() {
            self.queue.push_back((clip, 0));
        }
        Ok(())
    }

    /// Set (or clear) the clip looped when no prompt is queued.
    pub fn set_loop(&mut self, clip: Option<Clip>) {
        self.looped = clip.filter(|c| !c.is_empty()).map(|c| (c, 0));
    }

    /// Drop queued prompts.
    pub fn clear_queue(&mut self) {
        self.queue.clear();
    }

    /// Nothing to play.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.looped.is_none()
    }

    /// Prompts are queued.
    pub fn has_prompt(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Produce the next 20 ms frame, or `None` if idle. A prompt that ends mid-frame is padded
    /// with silence; the next clip starts on the next frame.
    pub fn next_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Option<Frame> {
        if let Some((clip, pos)) = self.queue.front_mut() {
            let n = (clip.len() - *pos).min(FRAME_SAMPLES);
            out[..n].copy_from_slice(&clip[*pos..*pos + n]);
            out[n..].fill(0);
            *pos += n;
            let finished = *pos >= clip.len();
            if finished {
                self.queue.pop_front();
            }
            return Some(Frame { prompt_finished: finished });
        }
        let (clip, pos) = self.looped.as_mut()?;
        for s in out.iter_mut() {
            *s = clip[*pos];
            *pos = (*pos + 1) % clip.len();
        }
        Some(Frame { prompt_finished: false })
    }

    /// Mix queued prompts (not the loop) into `samples` with saturation; used to lay a beep
    /// over relayed audio. Returns true if a prompt ended.
    pub fn mix_into(&mut self, samples: &mut [i16]) -> bool {
        let mut finished = false;
        let mut i = 0;
        while i < samples.len() {
            let Some((clip, pos)) = self.queue.front_mut() else {
                break;
            };
            let n = (clip.len() - *pos).min(samples.len() - i);
            for (s, &c) in samples[i..i + n].iter_mut().zip(&clip[*pos..*pos + n]) {
                *s = s.saturating_add(c);
            }
            *pos += n;
            i += n;
            if *pos >= clip.len() {
                self.queue.pop_front();
                finished = true;
            }
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_then_loop() {
        let mut p = Player::default();
        p.enqueue((0..200).map(|i| i as i16 + 1).collect::<Vec<_>>().into()).unwrap();
        p.set_loop(Some(vec![7i16; 50].into()));
        let mut f = [0i16; FRAME_SAMPLES];
        assert_eq!(p.next_frame(&mut f), Some(Frame { prompt_finished: false }));
        assert_eq!(f[159], 160);
        assert_eq!(p.next_frame(&mut f), Some(Frame { prompt_finished: true }));
        assert_eq!((f[39], f[40]), (200, 0));
        assert_eq!(p.next_frame(&mut f), Some(Frame { prompt_finished: false }));
        assert!(f.iter().all(|&s| s == 7));
        p.set_loop(None);
        assert_eq!(p.next_frame(&mut f), None);
    }

    #[test]
    fn beep_mixes_and_ends() {
        let mut p = Player::default();
        p.enqueue(beep(1000.0, 30, 8000)).unwrap();
        let mut s = [100i16; 160];
        assert!(!p.mix_into(&mut s));
        assert!(p.mix_into(&mut s));
        assert!(p.is_idle());
    }
}
