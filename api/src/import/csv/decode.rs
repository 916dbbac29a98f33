//! Streaming charset detection and decoding: any `Read` of UTF-8 (with or
//! without BOM) or CP932 bytes in, UTF-8 bytes out.
//!
//! Detection never buffers the whole file. ASCII is identical in both
//! encodings, so leading ASCII streams straight through while the encoding is
//! still undecided; at the first non-ASCII byte a window of at most
//! [`SNIFF_BYTES`] from that byte is read ahead: if it is valid UTF-8 (a
//! multi-byte sequence cut by the window end counts as valid) the file is
//! UTF-8, otherwise CP932. Bytes that are invalid in the chosen encoding are
//! a fatal [`DecodeFailure::Undecodable`] naming the line.

use std::io::{self, Read};

use encoding_rs::{DecoderResult, SHIFT_JIS, UTF_8};

use super::Encoding;

/// Look-ahead window used to decide between UTF-8 and CP932.
pub const SNIFF_BYTES: usize = 64 * 1024;
/// Size of each read from the underlying reader.
const READ_CHUNK: usize = 16 * 1024;
/// Decoded output staged before handing it to the caller.
const OUT_CHUNK: usize = 16 * 1024;

/// Why decoding stopped for good. Kept in the reader; the `io::Error`
/// returned alongside is only a carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeFailure {
    /// Bytes invalid in the detected encoding, on this 1-based line.
    Undecodable { line: u64 },
    /// The input exceeded the configured byte limit.
    TooLarge { max_bytes: u64 },
    /// The underlying reader failed.
    Io(String),
}

enum State {
    /// Only ASCII seen so far (after an optional BOM check).
    Undecided,
    Decoding(encoding_rs::Decoder),
    Finished,
}

/// `Read` adaptor producing UTF-8 from UTF-8/UTF-8+BOM/CP932 input.
pub struct DecodeReader<R> {
    inner: R,
    /// Raw input buffer; `raw[raw_pos..raw_end]` is unconsumed. Grows only
    /// up to the sniff window plus one read chunk.
    raw: Vec<u8>,
    raw_pos: usize,
    raw_end: usize,
    eof: bool,
    bom_checked: bool,
    state: State,
    encoding: Encoding,
    /// Decoded output; `out[out_pos..out_end]` not yet handed out.
    out: Vec<u8>,
    out_pos: usize,
    out_end: usize,
    /// Decoded bytes handed out so far and the last of them.
    handed: u64,
    last_handed: Option<u8>,
    bytes_read: u64,
    max_bytes: Option<u64>,
    /// Newlines emitted so far (decoded), for error positions.
    newlines: u64,
    failure: Option<DecodeFailure>,
    /// A failure to report after the output before it is handed out.
    deferred: Option<DecodeFailure>,
}

impl<R: Read> DecodeReader<R> {
    pub fn new(inner: R, max_bytes: Option<u64>) -> Self {
        DecodeReader {
            inner,
            raw: vec![0; READ_CHUNK],
            raw_pos: 0,
            raw_end: 0,
            eof: false,
            bom_checked: false,
            state: State::Undecided,
            encoding: Encoding::Utf8,
            out: vec![0; OUT_CHUNK],
            out_pos: 0,
            out_end: 0,
            handed: 0,
            last_handed: None,
            bytes_read: 0,
            max_bytes,
            newlines: 0,
            failure: None,
            deferred: None,
        }
    }

    /// Encoding detected so far (final once reading has finished; an
    /// all-ASCII input reports `Utf8`).
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Raw bytes consumed from the underlying reader.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn failure(&self) -> Option<&DecodeFailure> {
        self.failure.as_ref()
    }

    /// Decoded bytes handed out so far.
    pub fn decoded_bytes(&self) -> u64 {
        self.handed
    }

    /// True once the input is exhausted and everything decoded was handed
    /// out; `last` is the final decoded byte.
    pub fn finished(&self) -> Option<Option<u8>> {
        (matches!(self.state, State::Finished) && self.out_pos >= self.out_end && self.failure.is_none())
            .then_some(self.last_handed)
    }

    fn fail(&mut self, f: DecodeFailure) -> io::Error {
        let e = io::Error::new(io::ErrorKind::InvalidData, format!("{f:?}"));
        self.failure = Some(f);
        self.state = State::Finished;
        e
    }

    /// Unconsumed raw bytes.
    fn pending(&self) -> &[u8] {
        &self.raw[self.raw_pos..self.raw_end]
    }

    /// Read more raw bytes, appending to `raw` (compacting first). Returns
    /// the number of bytes added; 0 means EOF.
    fn fill(&mut self, want: usize) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.raw_pos > 0 {
            self.raw.copy_within(self.raw_pos..self.raw_end, 0);
            self.raw_end -= self.raw_pos;
            self.raw_pos = 0;
        }
        if self.raw.len() < self.raw_end + want {
            self.raw.resize(self.raw_end + want, 0);
        }
        let start = self.raw_end;
        let n = loop {
            match self.inner.read(&mut self.raw[start..]) {
                Ok(n) => break n.min(self.raw.len() - start),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.fail(DecodeFailure::Io(e.to_string()))),
            }
        };
        self.raw_end += n;
        if n == 0 {
            self.eof = true;
        }
        self.bytes_read += n as u64;
        if let Some(max) = self.max_bytes.filter(|max| self.bytes_read > *max) {
            return Err(self.fail(DecodeFailure::TooLarge { max_bytes: max }));
        }
        Ok(n)
    }

    /// Fill until at least `n` bytes are pending or EOF.
    fn fill_to(&mut self, n: usize) -> io::Result<()> {
        while self.pending().len() < n && !self.eof {
            let want = (n - self.pending().len()).min(READ_CHUNK);
            self.fill(want)?;
        }
        Ok(())
    }

    fn emit(&mut self, bytes_start: usize, len: usize) {
        let src = &self.raw[bytes_start..bytes_start + len];
        self.newlines += bytecount_newlines(src);
        self.out[..len].copy_from_slice(src);
        self.out_end = len;
    }

    /// Produce more decoded output into `out`. Ok(false) means EOF.
    fn produce(&mut self) -> io::Result<bool> {
        self.out_pos = 0;
        self.out_end = 0;
        if let Some(f) = self.deferred.take() {
            return Err(self.fail(f));
        }
        if !self.bom_checked {
            self.fill_to(3)?;
            self.bom_checked = true;
            if self.pending().starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.raw_pos += 3;
                self.encoding = Encoding::Utf8Bom;
                self.state = State::Decoding(UTF_8.new_decoder_without_bom_handling());
            }
        }
        loop {
            match &mut self.state {
                State::Finished => return Ok(false),
                State::Undecided => {
                    if self.pending().is_empty() {
                        if self.fill(READ_CHUNK)? == 0 {
                            self.state = State::Finished;
                            return Ok(false);
                        }
                        continue;
                    }
                    let ascii = self.pending().iter().take_while(|b| b.is_ascii()).count();
                    if ascii > 0 {
                        let ascii = ascii.min(OUT_CHUNK);
                        self.emit(self.raw_pos, ascii);
                        self.raw_pos += ascii;
                        return Ok(true);
                    }
                    // First non-ASCII byte: look ahead and decide.
                    self.fill_to(SNIFF_BYTES)?;
                    let window = &self.pending()[..self.pending().len().min(SNIFF_BYTES)];
                    let utf8 = match std::str::from_utf8(window) {
                        Ok(_) => true,
                        // Sequence cut by the window end (not by EOF).
                        Err(e) => e.error_len().is_none() && !self.eof,
                    };
                    let decoder = if utf8 {
                        self.encoding = Encoding::Utf8;
                        UTF_8.new_decoder_without_bom_handling()
                    } else {
                        self.encoding = Encoding::Cp932;
                        SHIFT_JIS.new_decoder_without_bom_handling()
                    };
                    self.state = State::Decoding(decoder);
                }
                State::Decoding(_) => {
                    if self.pending().is_empty() && !self.eof {
                        self.fill(READ_CHUNK)?;
                    }
                    let last = self.eof;
                    let State::Decoding(dec) = &mut self.state else {
                        unreachable!("state checked by the enclosing match arm")
                    };
                    let (res, read, written) = dec.decode_to_utf8_without_replacement(
                        &self.raw[self.raw_pos..self.raw_end],
                        &mut self.out,
                        last,
                    );
                    self.raw_pos += read;
                    self.out_end = written;
                    self.newlines += bytecount_newlines(&self.out[..written]);
                    match res {
                        DecoderResult::Malformed(_, _) => {
                            let failure = DecodeFailure::Undecodable { line: self.newlines + 1 };
                            if written > 0 {
                                // Hand out the good part first.
                                self.deferred = Some(failure);
                                return Ok(true);
                            }
                            return Err(self.fail(failure));
                        }
                        DecoderResult::InputEmpty if last => {
                            self.state = State::Finished;
                            return Ok(written > 0);
                        }
                        _ => {
                            if written > 0 {
                                return Ok(true);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn bytecount_newlines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.out_pos >= self.out_end {
            if !self.produce()? {
                return Ok(0);
            }
        }
        let avail = &self.out[self.out_pos..self.out_end];
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.out_pos += n;
        self.handed += n as u64;
        self.last_handed = buf[..n].last().copied().or(self.last_handed);
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reader that hands out at most one byte per call.
    pub struct OneByte<'a>(pub &'a [u8]);
    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.is_empty()) {
                (Some((b, rest)), false) => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn decode_all(r: impl Read) -> (Result<String, DecodeFailure>, Encoding) {
        let mut d = DecodeReader::new(r, None);
        let mut s = String::new();
        let res = d.read_to_string(&mut s);
        let enc = d.encoding();
        match res {
            Ok(_) => (Ok(s), enc),
            Err(_) => (Err(d.failure().cloned().expect("failure recorded")), enc),
        }
    }

    pub fn sjis(s: &str) -> Vec<u8> {
        let (b, _, unmappable) = SHIFT_JIS.encode(s);
        assert!(!unmappable, "test text must be CP932-mappable");
        b.into_owned()
    }

    #[test]
    fn detects_each_encoding() {
        let text = "name,kana\r\n山田太郎,ヤマダタロウ\r\n";
        assert_eq!(decode_all(text.as_bytes()), (Ok(text.into()), Encoding::Utf8));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode_all(&bom[..]), (Ok(text.into()), Encoding::Utf8Bom));
        assert_eq!(decode_all(&sjis(text)[..]), (Ok(text.into()), Encoding::Cp932));
        // Same, one byte at a time.
        assert_eq!(decode_all(OneByte(&bom)), (Ok(text.into()), Encoding::Utf8Bom));
        assert_eq!(decode_all(OneByte(&sjis(text))), (Ok(text.into()), Encoding::Cp932));
    }

    #[test]
    fn long_ascii_prefix_then_cp932_is_cp932() {
        let mut text = "a,b\n".repeat(100_000);
        text.push_str("山田\n");
        assert_eq!(decode_all(&sjis(&text)[..]), (Ok(text.clone()), Encoding::Cp932));
    }

    #[test]
    fn utf8_char_cut_at_window_boundary_is_still_utf8() {
        for pad in 0..4 {
            let mut text = "é".to_string() + &"x".repeat(SNIFF_BYTES - 2 - pad);
            text.push_str(&"あ".repeat(10));
            assert_eq!(decode_all(text.as_bytes()), (Ok(text.clone()), Encoding::Utf8));
        }
    }

    #[test]
    fn undecodable_reports_line() {
        // Valid UTF-8 window, then a stray byte far later.
        let mut b = "あ\n".repeat(30_000).into_bytes();
        b.extend_from_slice(b"\xFF\n");
        let (r, _) = decode_all(&b[..]);
        assert_eq!(r, Err(DecodeFailure::Undecodable { line: 30_001 }));
        // Neither UTF-8 nor CP932: 0xA0 is neither a CP932 lead byte nor a
        // single-byte character.
        let (r, enc) = decode_all(&b"ok\nx\xA0\xA0\xFF\n"[..]);
        assert_eq!(enc, Encoding::Cp932);
        assert_eq!(r, Err(DecodeFailure::Undecodable { line: 2 }));
    }

    #[test]
    fn byte_limit() {
        let mut d = DecodeReader::new(&b"0123456789"[..], Some(5));
        let mut s = String::new();
        assert!(d.read_to_string(&mut s).is_err());
        assert_eq!(d.failure(), Some(&DecodeFailure::TooLarge { max_bytes: 5 }));
    }
}
