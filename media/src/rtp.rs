//! RTP (RFC 3550 §5) parsing via `rtp-rs`, and in-place header rewriting.
//!
//! Parsing uses [`rtp_rs::RtpReader`], which validates lengths (CSRC list, extension, padding)
//! up front, so no accessor can index out of bounds later. Building uses
//! [`rtp_rs::RtpPacketBuilder`]. Relayed packets are rewritten in place (sequence, timestamp,
//! SSRC, marker, payload type) so header extensions and CSRCs survive untouched.

use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError};

/// Fixed RTP header length.
pub const HEADER_LEN: usize = 12;
/// Largest datagram the core accepts or builds (bounded buffers).
pub const MAX_DATAGRAM_LEN: usize = 1500;

/// Why an incoming datagram was not accepted as RTP. Counted, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// Shorter than a fixed header, or the CSRC/extension/padding run past the end.
    Short,
    /// Version field is not 2.
    WrongVersion,
    /// Padding length byte is 0 or larger than the packet.
    BadPadding,
    /// Larger than [`MAX_DATAGRAM_LEN`].
    TooLong,
}

/// A parsed RTP packet borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Parse an RTP packet.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, ParseError> {
    if buf.len() > MAX_DATAGRAM_LEN {
        return Err(ParseError::TooLong);
    }
    let r = RtpReader::new(buf).map_err(|e| match e {
        RtpReaderError::BufferTooShort(_) | RtpReaderError::HeadersTruncated { .. } => ParseError::Short,
        RtpReaderError::UnsupportedVersion(_) => ParseError::WrongVersion,
        RtpReaderError::PaddingLengthInvalid(_) => ParseError::BadPadding,
    })?;
    Ok(RtpPacket {
        marker: r.mark(),
        payload_type: r.payload_type(),
        sequence: r.sequence_number().into(),
        timestamp: r.timestamp(),
        ssrc: r.ssrc(),
        payload: r.payload(),
    })
}

/// RFC 5761 §4 demultiplexing: second byte 192..=223 (payload types 64..=95 with or without the
/// marker bit) is RTCP when RTP and RTCP share a port.
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && (192..=223).contains(&buf[1])
}

/// Header fields written by the rewriter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFields {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Overwrite the fixed header fields of an already validated RTP packet in place.
/// Returns `false` (and leaves `buf` alone) if it is shorter than a fixed header.
pub fn rewrite_in_place(buf: &mut [u8], h: HeaderFields) -> bool {
    if buf.len() < HEADER_LEN {
        return false;
    }
    buf[1] = (u8::from(h.marker) << 7) | (h.payload_type & 0x7F);
    buf[2..4].copy_from_slice(&h.sequence.to_be_bytes());
    buf[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
    buf[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
    true
}

/// Build a fresh RTP packet (no CSRC, no extension, no padding).
pub fn build(h: HeaderFields, payload: &[u8]) -> Vec<u8> {
    // The builder only fails for > 15 CSRCs or a payload type > 127; neither can happen here.
    RtpPacketBuilder::new()
        .payload_type(h.payload_type & 0x7F)
        .marked(h.marker)
        .sequence(h.sequence.into())
        .timestamp(h.timestamp)
        .ssrc(h.ssrc)
        .payload(payload)
        .build()
        .unwrap_or_else(|_| {
            let mut v = vec![0x80u8; HEADER_LEN];
            rewrite_in_place(&mut v, h);
            v.extend_from_slice(payload);
            v
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_parse_rewrite() {
        let h = HeaderFields { marker: true, payload_type: 8, sequence: 65535, timestamp: 0xDEAD_BEEF, ssrc: 42 };
        let mut p = build(h, &[1, 2, 3]);
        let r = parse(&p).unwrap();
        assert_eq!((r.marker, r.payload_type, r.sequence), (true, 8, 65535));
        assert_eq!((r.timestamp, r.ssrc, r.payload), (0xDEAD_BEEF, 42, &[1u8, 2, 3][..]));
        let h2 = HeaderFields { marker: false, payload_type: 0, sequence: 7, timestamp: 9, ssrc: 11 };
        assert!(rewrite_in_place(&mut p, h2));
        let r = parse(&p).unwrap();
        assert_eq!((r.marker, r.payload_type, r.sequence, r.timestamp, r.ssrc), (false, 0, 7, 9, 11));
    }

    #[test]
    fn rejects() {
        assert_eq!(parse(&[0x80; 11]), Err(ParseError::Short));
        assert_eq!(parse(&[0x40; 12]), Err(ParseError::WrongVersion));
        // CSRC count 15 but no CSRCs.
        assert_eq!(parse(&[0x8F; 12]), Err(ParseError::Short));
        let mut pad = vec![0xA0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        pad[12] = 0;
        assert_eq!(parse(&pad), Err(ParseError::BadPadding));
        assert!(looks_like_rtcp(&[0x80, 200]));
        assert!(!looks_like_rtcp(&[0x80, 0]));
    }
}
