//! Opus ⇄ G.711 for the browser phone's legs: the relay core carries G.711 only, a browser
//! prefers Opus (RFC 7587), so a WebRTC leg that negotiated Opus is transcoded at its edge, one
//! 20 ms packet at a time, 8 kHz mono on the G.711 side (libopus resamples internally: its
//! encoder and decoder run at 8 kHz, so no resampler of our own sits on the path).
//!
//! [`OpusTranscoder::new`] answers `None` in a build without the `opus` feature: such a build
//! offers PCMU only.

use crate::g711::Codec;

/// The RTP clock of Opus, whatever its sampling rate (RFC 7587 §4.1).
pub const OPUS_CLOCK_HZ: u32 = 48_000;
/// Opus RTP ticks per G.711 tick.
pub const OPUS_TICKS_PER_G711_TICK: u32 = OPUS_CLOCK_HZ / Codec::CLOCK_RATE_HZ;
/// Largest G.711 frame transcoded at once (60 ms at 8 kHz, Opus's longest frame).
pub const MAX_FRAME_SAMPLES: usize = 480;

/// Why a packet was not transcoded (each is a counted drop of the leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    #[error("frame length is not an Opus frame size")]
    FrameSize,
    #[error("libopus refused the packet")]
    Codec,
}

/// Whether this build can transcode Opus.
pub const fn opus_available() -> bool {
    cfg!(feature = "opus")
}

/// One leg's Opus encoder and decoder.
pub struct OpusTranscoder {
    #[cfg(feature = "opus")]
    encoder: ::opus::Encoder,
    #[cfg(feature = "opus")]
    decoder: ::opus::Decoder,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for OpusTranscoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusTranscoder").finish_non_exhaustive()
    }
}

impl OpusTranscoder {
    /// A voice encoder (about 24 kbps) and decoder at 8 kHz; `None` without the `opus` feature.
    pub fn new() -> Option<OpusTranscoder> {
        #[cfg(feature = "opus")]
        {
            use ::opus::{Application, Bitrate, Channels, Decoder, Encoder};
            let mut encoder = Encoder::new(8000, Channels::Mono, Application::Voip).ok()?;
            encoder.set_bitrate(Bitrate::Bits(24_000)).ok()?;
            let decoder = Decoder::new(8000, Channels::Mono).ok()?;
            Some(OpusTranscoder { encoder, decoder, pcm: Vec::with_capacity(MAX_FRAME_SAMPLES) })
        }
        #[cfg(not(feature = "opus"))]
        {
            None
        }
    }

    /// Encodes G.711 bytes (one frame: 2.5, 5, 10, 20, 40 or 60 ms) as one Opus packet into `out`
    /// (cleared first).
    pub fn encode(&mut self, codec: Codec, g711: &[u8], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        if !matches!(g711.len(), 20 | 40 | 80 | 160 | 320 | 480) {
            return Err(TranscodeError::FrameSize);
        }
        self.pcm.clear();
        codec.decode_into(g711, &mut self.pcm);
        out.clear();
        #[cfg(feature = "opus")]
        {
            out.resize(1275, 0);
            let n = self.encoder.encode(&self.pcm, out).map_err(|_| TranscodeError::Codec)?;
            out.truncate(n);
            Ok(())
        }
        #[cfg(not(feature = "opus"))]
        {
            Err(TranscodeError::Codec)
        }
    }

    /// Decodes one Opus packet (empty: conceal one lost 20 ms frame) into G.711 bytes in `out`
    /// (cleared first).
    pub fn decode(&mut self, codec: Codec, packet: &[u8], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        out.clear();
        #[cfg(feature = "opus")]
        {
            self.pcm.clear();
            self.pcm.resize(MAX_FRAME_SAMPLES, 0);
            let pcm = if packet.is_empty() { &mut self.pcm[..160] } else { &mut self.pcm[..] };
            let n = self.decoder.decode(packet, pcm, false).map_err(|_| TranscodeError::Codec)?;
            codec.encode_into(&self.pcm[..n], out);
            Ok(())
        }
        #[cfg(not(feature = "opus"))]
        {
            let _ = (codec, packet);
            Err(TranscodeError::Codec)
        }
    }
}

#[cfg(all(test, feature = "opus"))]
mod tests {
    use super::*;

    #[test]
    fn a_tone_survives_opus_both_ways() {
        let mut t = OpusTranscoder::new().unwrap();
        let mut packet = Vec::new();
        let mut back = Vec::new();
        let mut pcm = Vec::new();
        for frame in 0..20 {
            let g711: Vec<u8> = (0..160)
                .map(|i| {
                    let n = (frame * 160 + i) as f32;
                    Codec::Pcmu.encode((8000.0 * (2.0 * std::f32::consts::PI * 440.0 * n / 8000.0).sin()) as i16)
                })
                .collect();
            t.encode(Codec::Pcmu, &g711, &mut packet).unwrap();
            assert!(packet.len() < 160, "opus packet of {} bytes", packet.len());
            t.decode(Codec::Pcmu, &packet, &mut back).unwrap();
            assert_eq!(back.len(), 160);
            if frame >= 10 {
                Codec::Pcmu.decode_into(&back, &mut pcm);
            }
        }
        let power = |f: f32| crate::dtmf::goertzel_power(&pcm, f, 8000.0);
        assert!(power(440.0) > 50.0 * power(1000.0), "440 Hz is lost: {} vs {}", power(440.0), power(1000.0));
        assert_eq!(t.encode(Codec::Pcmu, &[0; 100], &mut packet), Err(TranscodeError::FrameSize));
    }
}
