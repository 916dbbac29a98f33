//! Reading prompts, beeps and hold audio from 8 kHz 16-bit mono PCM WAV files.
//!
//! Sans-IO: the driver reads the file; this module parses bytes. Anything other than
//! `WAVE_FORMAT_PCM`, one channel, 8000 Hz, 16 bits is refused with an error naming the field.

use thiserror::Error;

/// Longest clip accepted: 10 minutes of 8 kHz audio (9.6 MB of samples).
pub const MAX_CLIP_SAMPLES: usize = 10 * 60 * 8000;

/// Why a WAV file was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WavError {
    #[error("not a RIFF/WAVE file (bytes 0..12)")]
    NotRiffWave,
    #[error("chunk `{0}` is truncated")]
    Truncated(String),
    #[error("missing `{0}` chunk")]
    MissingChunk(&'static str),
    #[error("fmt.audio_format is {0}, only 1 (PCM) is supported")]
    UnsupportedFormat(u16),
    #[error("fmt.channels is {0}, only 1 (mono) is supported")]
    UnsupportedChannels(u16),
    #[error("fmt.sample_rate is {0} Hz, only 8000 Hz is supported")]
    UnsupportedSampleRate(u32),
    #[error("fmt.bits_per_sample is {0}, only 16 is supported")]
    UnsupportedBitsPerSample(u16),
    #[error("data chunk holds {0} samples, more than the {MAX_CLIP_SAMPLES} allowed")]
    TooLong(usize),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parse an 8 kHz 16-bit mono PCM WAV file into samples.
///
/// A data chunk whose declared size runs past the end of the file (a file cut while being
/// written) is read up to the last whole sample.
pub fn read_pcm16_mono_8k(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotRiffWave);
    }
    let mut at = 12usize;
    let mut fmt_seen = false;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(bytes, at + 4).unwrap_or(0) as usize;
        let body = at + 8;
        let name = String::from_utf8_lossy(id).into_owned();
        if id == b"fmt " {
            if size < 16 || body + 16 > bytes.len() {
                return Err(WavError::Truncated(name));
            }
            let field = |off| u16_at(bytes, body + off).unwrap_or(0);
            let format = field(0);
            let channels = field(2);
            let rate = u32_at(bytes, body + 4).unwrap_or(0);
            let bits = field(14);
            if format != 1 {
                return Err(WavError::UnsupportedFormat(format));
            }
            if channels != 1 {
                return Err(WavError::UnsupportedChannels(channels));
            }
            if rate != 8000 {
                return Err(WavError::UnsupportedSampleRate(rate));
            }
            if bits != 16 {
                return Err(WavError::UnsupportedBitsPerSample(bits));
            }
            fmt_seen = true;
        } else if id == b"data" {
            if !fmt_seen {
                return Err(WavError::MissingChunk("fmt "));
            }
            let end = body.saturating_add(size).min(bytes.len());
            let data = &bytes[body..end];
            let samples = data.len() / 2;
            if samples > MAX_CLIP_SAMPLES {
                return Err(WavError::TooLong(samples));
            }
            return Ok(data.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect());
        }
        // Chunks are padded to an even size.
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(WavError::MissingChunk(if fmt_seen { "data" } else { "fmt " }))
}

/// Build an 8 kHz 16-bit mono PCM WAV file (used by tests and tools).
pub fn write_pcm16_mono_8k(samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s: Vec<i16> = (0..1000).map(|i| (i * 31 % 2000 - 1000) as i16).collect();
        assert_eq!(read_pcm16_mono_8k(&write_pcm16_mono_8k(&s)).unwrap(), s);
    }

    #[test]
    fn refuses_other_formats_by_field() {
        let mut f = write_pcm16_mono_8k(&[1, 2, 3]);
        f[22] = 2;
        assert_eq!(read_pcm16_mono_8k(&f), Err(WavError::UnsupportedChannels(2)));
        let mut f = write_pcm16_mono_8k(&[1, 2, 3]);
        f[24..28].copy_from_slice(&16000u32.to_le_bytes());
        assert_eq!(read_pcm16_mono_8k(&f), Err(WavError::UnsupportedSampleRate(16000)));
        let mut f = write_pcm16_mono_8k(&[1, 2, 3]);
        f[34] = 8;
        assert_eq!(read_pcm16_mono_8k(&f), Err(WavError::UnsupportedBitsPerSample(8)));
        let mut f = write_pcm16_mono_8k(&[1, 2, 3]);
        f[20] = 7;
        assert_eq!(read_pcm16_mono_8k(&f), Err(WavError::UnsupportedFormat(7)));
        assert_eq!(read_pcm16_mono_8k(b"RIFX"), Err(WavError::NotRiffWave));
    }

    #[test]
    fn truncated_file_reads_whole_samples() {
        let f = write_pcm16_mono_8k(&[1, 2, 3, 4]);
        assert_eq!(read_pcm16_mono_8k(&f[..f.len() - 3]).unwrap(), vec![1, 2]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for n in 0..200 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = read_pcm16_mono_8k(&junk);
        }
    }
}
