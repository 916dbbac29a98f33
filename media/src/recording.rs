//! Two-channel call recording: a stereo G.711 WAV file (channel 1 = customer, channel 2 =
//! agent) appended as the call goes, that stays a valid file if the process is killed.
//!
//! Crash safety: the 58-byte header is written first with zero lengths; each append writes
//! interleaved frames *past* the data the header describes, and every `header_every` the whole
//! header is rewritten (one small write at offset 0) to cover the data written so far. Data is
//! always written before the header that counts it, so at every instant after the first write
//! the file holds at least as many frames as its header declares: any WAV reader plays the
//! recording up to the last header update, and [`read_recording`] also recovers the frames
//! written after it. The writer is sans-IO: it produces [`FileWrite`]s that the driver applies
//! in order (or [`apply`] does, on any `Write + Seek`).

use std::collections::VecDeque;
use std::io::{Seek, SeekFrom, Write};

use thiserror::Error;

use crate::g711::Codec;

/// Header length: RIFF (12) + fmt (8 + 18) + fact (8 + 4) + data header (8).
pub const HEADER_LEN: usize = 58;
/// Frames (one customer + one agent byte) a WAV's 32-bit sizes can hold: about 74 hours.
pub const MAX_FRAMES: u64 = (u32::MAX as u64 - HEADER_LEN as u64) / 2;
/// At most this many writes wait for the driver before appends are refused.
pub const MAX_PENDING_WRITES: usize = 1024;

/// Audio length of a recording file of `file_bytes` bytes (what the shard reports as
/// `RecordingClosed.bytes`): 16 bytes (two channels of 8 kHz G.711) per millisecond.
pub fn duration_ms(file_bytes: u64) -> u64 {
    file_bytes.saturating_sub(HEADER_LEN as u64) / 16
}

/// One positioned write for the driver to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Why an append was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AppendError {
    #[error("recording reached the WAV size limit")]
    Full,
    #[error("driver has not drained {MAX_PENDING_WRITES} pending writes")]
    Backlog,
    #[error("recording finished")]
    Finished,
}

/// Builds the recording file as positioned writes.
#[derive(Debug, Clone)]
pub struct RecordingWriter {
    codec: Codec,
    frames: u64,
    frames_in_header: u64,
    header_every_frames: u64,
    pending: VecDeque<FileWrite>,
    /// Audio appended since the last data write: written out in one piece just before each
    /// header rewrite, so a call costs one data write per header period, not one per frame.
    /// A crash loses at most that period, and the file still reads (the header never counts
    /// unwritten data).
    unwritten: Vec<u8>,
    finished: bool,
}

fn wav_format_tag(codec: Codec) -> u16 {
    match codec {
        Codec::Pcma => 6,
        Codec::Pcmu => 7,
    }
}

/// The 58-byte header for `frames` stereo frames.
pub fn header(codec: Codec, frames: u64) -> [u8; HEADER_LEN] {
    let data = (frames.min(MAX_FRAMES) * 2) as u32;
    let mut h = [0u8; HEADER_LEN];
    let mut w = 0;
    let mut put = |b: &[u8]| {
        h[w..w + b.len()].copy_from_slice(b);
        w += b.len();
    };
    put(b"RIFF");
    put(&(HEADER_LEN as u32 - 8 + data).to_le_bytes());
    put(b"WAVEfmt ");
    put(&18u32.to_le_bytes());
    put(&wav_format_tag(codec).to_le_bytes());
    put(&2u16.to_le_bytes()); // channels
    put(&8000u32.to_le_bytes()); // sample rate
    put(&16000u32.to_le_bytes()); // byte rate
    put(&2u16.to_le_bytes()); // block align
    put(&8u16.to_le_bytes()); // bits per sample
    put(&0u16.to_le_bytes()); // cbSize
    put(b"fact");
    put(&4u32.to_le_bytes());
    put(&(data / 2).to_le_bytes());
    put(b"data");
    put(&data.to_le_bytes());
    h
}

impl RecordingWriter {
    /// Start a recording; the header write is queued at once. Every `header_every_ms` of audio
    /// (at least every 20 ms frame-block) that audio is queued as one write, then the header
    /// that counts it.
    pub fn new(codec: Codec, header_every_ms: u32) -> Self {
        let mut pending = VecDeque::new();
        pending.push_back(FileWrite { offset: 0, bytes: header(codec, 0).to_vec() });
        RecordingWriter {
            codec,
            frames: 0,
            frames_in_header: 0,
            header_every_frames: u64::from(header_every_ms.max(20)) * 8,
            pending,
            unwritten: Vec::new(),
            finished: false,
        }
    }

    /// Go on with a recording whose file already holds `frames` frames (a call bridged to a second
    /// agent: one file for the whole call). Its audio continues after theirs; the header is
    /// rewritten to count both.
    pub fn resume(codec: Codec, header_every_ms: u32, frames: u64) -> Self {
        let mut w = Self::new(codec, header_every_ms);
        let frames = frames.min(MAX_FRAMES);
        w.frames = frames;
        w.frames_in_header = frames;
        w.pending.clear();
        w.pending.push_back(FileWrite { offset: 0, bytes: header(codec, frames).to_vec() });
        w
    }

    /// The channel codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Frames appended so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Append time-aligned G.711 bytes of both channels (equal lengths; the shorter is padded
    /// with silence).
    pub fn append(&mut self, customer: &[u8], agent: &[u8]) -> Result<(), AppendError> {
        if self.finished {
            return Err(AppendError::Finished);
        }
        if self.pending.len() >= MAX_PENDING_WRITES {
            return Err(AppendError::Backlog);
        }
        let n = customer.len().max(agent.len()) as u64;
        if self.frames + n > MAX_FRAMES {
            return Err(AppendError::Full);
        }
        let silence = self.codec.silence();
        if self.unwritten.capacity() == 0 {
            self.unwritten.reserve(self.header_every_frames as usize * 2);
        }
        for i in 0..n as usize {
            self.unwritten.push(customer.get(i).copied().unwrap_or(silence));
            self.unwritten.push(agent.get(i).copied().unwrap_or(silence));
        }
        self.frames += n;
        if self.frames - self.frames_in_header >= self.header_every_frames {
            self.push_header();
        }
        Ok(())
    }

    fn push_header(&mut self) {
        if !self.unwritten.is_empty() {
            let bytes = std::mem::take(&mut self.unwritten);
            let offset = HEADER_LEN as u64 + self.frames * 2 - bytes.len() as u64;
            self.pending.push_back(FileWrite { offset, bytes });
        }
        self.frames_in_header = self.frames;
        self.pending.push_back(FileWrite { offset: 0, bytes: header(self.codec, self.frames).to_vec() });
    }

    /// End the recording: the final header is queued.
    pub fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.push_header();
        }
    }

    /// Next write for the driver, in order.
    pub fn poll_write(&mut self) -> Option<FileWrite> {
        self.pending.pop_front()
    }
}

/// Apply one write to a file-like object.
pub fn apply<W: Write + Seek>(file: &mut W, write: &FileWrite) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(write.offset))?;
    file.write_all(&write.bytes)
}

/// A decoded recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub codec: Codec,
    /// Frames the header declares.
    pub declared_frames: u64,
    /// Channel 1 (customer), all whole frames present in the file.
    pub customer: Vec<u8>,
    /// Channel 2 (agent).
    pub agent: Vec<u8>,
}

/// Why a recording could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordingError {
    #[error("file shorter than the {HEADER_LEN}-byte header ({0} bytes)")]
    ShortHeader(usize),
    #[error("header field `{0}` is not a stereo 8 kHz G.711 WAV value")]
    BadHeader(&'static str),
}

/// Read a recording written by [`RecordingWriter`], including one cut off by a crash: every
/// whole frame present is returned, even past the header's declared size.
pub fn read_recording(bytes: &[u8]) -> Result<Recording, RecordingError> {
    if bytes.len() < HEADER_LEN {
        return Err(RecordingError::ShortHeader(bytes.len()));
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if &bytes[0..4] != b"RIFF" || &bytes[8..16] != b"WAVEfmt " {
        return Err(RecordingError::BadHeader("RIFF/WAVE"));
    }
    let codec = match u16_at(20) {
        6 => Codec::Pcma,
        7 => Codec::Pcmu,
        _ => return Err(RecordingError::BadHeader("fmt.audio_format")),
    };
    if u16_at(22) != 2 {
        return Err(RecordingError::BadHeader("fmt.channels"));
    }
    if u32_at(24) != 8000 {
        return Err(RecordingError::BadHeader("fmt.sample_rate"));
    }
    if u16_at(34) != 8 {
        return Err(RecordingError::BadHeader("fmt.bits_per_sample"));
    }
    if &bytes[50..54] != b"data" {
        return Err(RecordingError::BadHeader("data"));
    }
    let declared_frames = u64::from(u32_at(54) / 2);
    let data = &bytes[HEADER_LEN..];
    let frames = data.len() / 2;
    let mut customer = Vec::with_capacity(frames);
    let mut agent = Vec::with_capacity(frames);
    for f in data.chunks_exact(2) {
        customer.push(f[0]);
        agent.push(f[1]);
    }
    Ok(Recording { codec, declared_frames, customer, agent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_valid_growing_file() {
        let mut w = RecordingWriter::new(Codec::Pcmu, 40);
        let mut file = std::io::Cursor::new(Vec::new());
        for i in 0..10u8 {
            w.append(&[i; 160], &[i + 100; 160]).unwrap();
            while let Some(op) = w.poll_write() {
                apply(&mut file, &op).unwrap();
            }
        }
        w.finish();
        while let Some(op) = w.poll_write() {
            apply(&mut file, &op).unwrap();
        }
        let r = read_recording(file.get_ref()).unwrap();
        assert_eq!(r.declared_frames, 1600);
        assert_eq!(r.customer.len(), 1600);
        assert_eq!((r.customer[1599], r.agent[1599]), (9, 109));
        assert_eq!(file.get_ref().len(), HEADER_LEN + 3200);
    }

    #[test]
    fn a_resumed_recording_goes_on_after_the_earlier_part() {
        let mut file = std::io::Cursor::new(Vec::new());
        let mut write = |w: &mut RecordingWriter, blocks: std::ops::Range<u8>| {
            for i in blocks {
                w.append(&[i; 160], &[i + 100; 160]).unwrap();
            }
            w.finish();
            while let Some(op) = w.poll_write() {
                apply(&mut file, &op).unwrap();
            }
        };
        write(&mut RecordingWriter::new(Codec::Pcmu, 40), 0..4);
        // The second part, with another agent: the file holds 640 frames.
        write(&mut RecordingWriter::resume(Codec::Pcmu, 40, 640), 4..10);
        let r = read_recording(file.get_ref()).unwrap();
        assert_eq!((r.declared_frames, r.customer.len()), (1600, 1600));
        assert_eq!((r.customer[0], r.customer[639], r.customer[640], r.agent[1599]), (0, 3, 4, 109));
    }
}
