//! Stereo G.711 WAV recording to Ogg Opus (RFC 7845) and back.
//!
//! The recording's two channels (customer left, agent right) become one coupled stereo Opus
//! stream at 8 kHz input, 20 ms frames, [`BITRATE_BPS`] (16 kbit/s per channel): about 240 KB
//! per call-minute at the Ogg level, against 960 KB for the WAV. Stereo prediction is disabled
//! so that each channel keeps its own signal (the two parties are unrelated sources).

use std::io::{self, Write};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use opus::{Application, Bitrate, Channels, Decoder, Encoder};

use crate::recording::Recording;

/// Target bitrate of the stereo stream: 16 kbit/s per channel.
pub const BITRATE_BPS: i32 = 32_000;
/// Input (and decode) sample rate.
pub const SAMPLE_RATE: u32 = 8_000;
/// Samples per channel in one 20 ms frame at 8 kHz.
const FRAME: usize = 160;
/// Ogg granule positions count 48 kHz samples (RFC 7845 §4).
const GRANULE_PER_SAMPLE: u64 = 48_000 / SAMPLE_RATE as u64;
/// Packets per Ogg page: one page a second keeps pages small and seeking cheap.
const PACKETS_PER_PAGE: usize = 50;
const SERIAL: u32 = 0x6b6b_7275;

/// Why a recording could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    #[error("opus: {0}")]
    Codec(#[from] opus::Error),
    #[error("ogg: {0}")]
    Ogg(#[from] ogg::OggReadError),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("not an Ogg Opus stream: {0}")]
    Format(&'static str),
}

/// What an encoding produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// Samples per channel of audio (8 kHz).
    pub samples: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Encoded {
    pub fn duration_ms(&self) -> u64 {
        self.samples * 1000 / u64::from(SAMPLE_RATE)
    }
}

/// Counts what passes through a writer.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn opus_head(pre_skip: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1); // version
    h.push(2); // channels
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&SAMPLE_RATE.to_le_bytes()); // input sample rate (informational)
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family 0: mono or stereo, one stream
    h
}

fn opus_tags() -> Vec<u8> {
    let vendor = format!("kakeru (libopus {})", opus::version());
    let comments = ["CHANNELS=customer,agent"];
    let mut t = Vec::new();
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&(comments.len() as u32).to_le_bytes());
    for c in comments {
        t.extend_from_slice(&(c.len() as u32).to_le_bytes());
        t.extend_from_slice(c.as_bytes());
    }
    t
}

/// Encode a decoded recording (see [`crate::recording::read_recording`]) as Ogg Opus to `out`.
pub fn encode(rec: &Recording, out: impl Write) -> Result<Encoded, OpusError> {
    let mut enc = Encoder::new(SAMPLE_RATE, Channels::Stereo, Application::Voip)?;
    enc.set_bitrate(Bitrate::Bits(BITRATE_BPS))?;
    enc.set_force_channels(Some(Channels::Stereo))?;
    enc.set_prediction_disabled(true)?;
    // Lookahead in input samples, as 48 kHz samples for the header's pre-skip.
    let lookahead = enc.get_lookahead()?.max(0) as u64;
    let pre_skip = lookahead * GRANULE_PER_SAMPLE;
    let mut w = PacketWriter::new(Counting { inner: out, bytes: 0 });
    w.write_packet(opus_head(pre_skip as u16), SERIAL, PacketWriteEndInfo::EndPage, 0)?;
    w.write_packet(opus_tags(), SERIAL, PacketWriteEndInfo::EndPage, 0)?;

    let samples = rec.customer.len().min(rec.agent.len());
    // Frames to cover the audio plus the encoder's lookahead (flushed with silence).
    let frames = (samples + lookahead as usize).div_ceil(FRAME).max(1);
    let mut pcm = vec![0i16; FRAME * 2];
    let mut packet = vec![0u8; 4000];
    for f in 0..frames {
        for i in 0..FRAME {
            let at = f * FRAME + i;
            let (l, r) = if at < samples {
                (rec.codec.decode(rec.customer[at]), rec.codec.decode(rec.agent[at]))
            } else {
                (0, 0)
            };
            pcm[2 * i] = l;
            pcm[2 * i + 1] = r;
        }
        let n = enc.encode(&pcm, &mut packet)?;
        let last = f + 1 == frames;
        // The end of the stream trims to the real length (RFC 7845 §4.5).
        let granule = if last {
            pre_skip + samples as u64 * GRANULE_PER_SAMPLE
        } else {
            pre_skip + ((f + 1) * FRAME) as u64 * GRANULE_PER_SAMPLE
        };
        let info = if last {
            PacketWriteEndInfo::EndStream
        } else if (f + 1) % PACKETS_PER_PAGE == 0 {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        w.write_packet(packet[..n].to_vec(), SERIAL, info, granule)?;
    }
    let mut counting = w.into_inner();
    counting.flush()?;
    Ok(Encoded { samples: samples as u64, bytes: counting.bytes })
}

/// A decoded Ogg Opus recording, per channel, at 8 kHz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub customer: Vec<i16>,
    pub agent: Vec<i16>,
}

/// Decode an Ogg Opus file written by [`encode`] (or any stereo Ogg Opus stream) at 8 kHz,
/// with pre-skip and end trimming applied.
pub fn decode(bytes: &[u8]) -> Result<Decoded, OpusError> {
    let mut reader = ogg::reading::PacketReader::new(io::Cursor::new(bytes));
    let head = reader.read_packet()?.ok_or(OpusError::Format("empty stream"))?;
    if head.data.len() < 19 || &head.data[..8] != b"OpusHead" {
        return Err(OpusError::Format("no OpusHead"));
    }
    if head.data[9] != 2 {
        return Err(OpusError::Format("not stereo"));
    }
    let pre_skip = u64::from(u16::from_le_bytes([head.data[10], head.data[11]])) / GRANULE_PER_SAMPLE;
    let tags = reader.read_packet()?.ok_or(OpusError::Format("no OpusTags"))?;
    if !tags.data.starts_with(b"OpusTags") {
        return Err(OpusError::Format("no OpusTags"));
    }
    let mut dec = Decoder::new(SAMPLE_RATE, Channels::Stereo)?;
    let mut pcm = vec![0i16; 5760 * 2];
    let mut interleaved: Vec<i16> = Vec::new();
    let mut end_granule = None;
    while let Some(p) = reader.read_packet()? {
        let n = dec.decode(&p.data, &mut pcm, false)?;
        interleaved.extend_from_slice(&pcm[..n * 2]);
        if p.last_in_stream() {
            end_granule = Some(p.absgp_page());
        }
    }
    let total = (interleaved.len() / 2) as u64;
    let end = end_granule.map_or(total, |g| (g / GRANULE_PER_SAMPLE).min(total));
    let (start, end) = (pre_skip.min(end) as usize, end as usize);
    let frames = &interleaved[start * 2..end * 2];
    Ok(Decoded {
        customer: frames.iter().step_by(2).copied().collect(),
        agent: frames.iter().skip(1).step_by(2).copied().collect(),
    })
}

/// Samples per channel an Ogg Opus stream written by [`encode`] holds, read from its headers
/// and last granule position (no decoding).
pub fn samples_of(bytes: &[u8]) -> Result<u64, OpusError> {
    let mut reader = ogg::reading::PacketReader::new(io::Cursor::new(bytes));
    let head = reader.read_packet()?.ok_or(OpusError::Format("empty stream"))?;
    if head.data.len() < 19 || &head.data[..8] != b"OpusHead" {
        return Err(OpusError::Format("no OpusHead"));
    }
    let pre_skip = u64::from(u16::from_le_bytes([head.data[10], head.data[11]]));
    let mut last = 0;
    while let Some(p) = reader.read_packet()? {
        if p.last_in_page() {
            last = p.absgp_page();
        }
        if p.last_in_stream() {
            return Ok(last.saturating_sub(pre_skip) / GRANULE_PER_SAMPLE);
        }
    }
    Err(OpusError::Format("stream not ended (truncated file)"))
}
