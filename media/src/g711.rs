//! G.711 µ-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8) companding.
//!
//! Decoding uses 256-entry tables built at compile time; encoding is branch-light bit arithmetic
//! (ITU-T G.711, after the classic Sun reference implementation), looked up in a table of every
//! 16-bit sample built from it on first use. Linear samples are 16-bit.

use std::sync::OnceLock;

/// A G.711 codec, the only audio codecs the relay core carries (clock rate 8 kHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, RTP/AVP static payload type 0.
    Pcmu,
    /// A-law, RTP/AVP static payload type 8.
    Pcma,
}

impl Codec {
    /// RTP clock rate of both G.711 variants.
    pub const CLOCK_RATE_HZ: u32 = 8000;

    /// The static RTP/AVP payload type (RFC 3551 table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec of a static payload type, if it is G.711.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The encoded value of linear 0 (digital silence).
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Encode one linear sample (a lookup in a 64 KiB table of [`linear_to_ulaw`] or
    /// [`linear_to_alaw`], built on first use: the recording path encodes every sample).
    pub fn encode(self, sample: i16) -> u8 {
        static ULAW: OnceLock<Box<[u8]>> = OnceLock::new();
        static ALAW: OnceLock<Box<[u8]>> = OnceLock::new();
        let (table, f): (_, fn(i16) -> u8) = match self {
            Codec::Pcmu => (&ULAW, linear_to_ulaw),
            Codec::Pcma => (&ALAW, linear_to_alaw),
        };
        let t = table.get_or_init(|| (0..=u16::MAX).map(|i| f(i as i16)).collect());
        t[usize::from(sample as u16)]
    }

    /// Decode one companded byte.
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ULAW_TO_LINEAR[usize::from(byte)],
            Codec::Pcma => ALAW_TO_LINEAR[usize::from(byte)],
        }
    }

    /// Decode `input` and append the linear samples to `out`.
    pub fn decode_into(self, input: &[u8], out: &mut Vec<i16>) {
        out.extend(input.iter().map(|&b| self.decode(b)));
    }

    /// Encode `input` and append the bytes to `out`.
    pub fn encode_into(self, input: &[i16], out: &mut Vec<u8>) {
        out.extend(input.iter().map(|&s| self.encode(s)));
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Linear 16-bit to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    // pcm is in 132..=32767, so its highest set bit is 7..=14 and the exponent 0..=7.
    let exponent = (31 - (pcm as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let mut t = (((u & 0x0F) as i32) << 3) + ULAW_BIAS;
    t <<= ((u & 0x70) >> 4) as i32;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

/// Linear 16-bit to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = SEG_END.iter().position(|&end| pcm <= end);
    match seg {
        None => 0x7F ^ mask,
        Some(seg) => {
            let seg = seg as i32;
            let mantissa = if seg < 2 { (pcm >> 1) & 0x0F } else { (pcm >> seg) & 0x0F };
            (((seg << 4) | mantissa) as u8) ^ mask
        }
    }
}

const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        (-t) as i16
    }
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut out = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        out[i] = if alaw { alaw_to_linear(i as u8) } else { ulaw_to_linear(i as u8) };
        i += 1;
    }
    out
}

/// µ-law byte to linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = table(false);
/// A-law byte to linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = table(true);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for b in 0..=255u8 {
                let lin = codec.decode(b);
                let back = codec.encode(lin);
                // µ-law has two codes for zero (0x7F and 0xFF); both decode to 0.
                assert_eq!(codec.decode(back), lin, "{codec:?} {b:#x}");
            }
        }
    }

    #[test]
    fn the_encoding_table_is_the_arithmetic_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(Codec::Pcmu.encode(s), linear_to_ulaw(s), "µ-law {s}");
            assert_eq!(Codec::Pcma.encode(s), linear_to_alaw(s), "A-law {s}");
        }
    }

    #[test]
    fn silence_and_extremes() {
        assert_eq!(Codec::Pcmu.decode(Codec::Pcmu.silence()), 0);
        assert_eq!(Codec::Pcma.decode(Codec::Pcma.silence()), 8);
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for s in [i16::MIN, -1, 0, 1, i16::MAX] {
                let err = (i32::from(codec.decode(codec.encode(s))) - i32::from(s)).abs();
                assert!(err <= 1100, "{codec:?} {s} err {err}");
            }
        }
    }

    #[test]
    fn quantisation_error_is_relative() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for s in (-32000i32..32000).step_by(7) {
                let d = i32::from(codec.decode(codec.encode(s as i16)));
                let err = (d - s).abs();
                assert!(err <= s.abs() / 16 + 16, "{codec:?} {s} -> {d}");
            }
        }
    }
}
