//! RFC 3550 receive statistics (appendix A.1 sequence tracking, A.3 loss, A.8 jitter) and RTCP
//! sender/receiver reports (§6.4) with SDES CNAME (§6.5).

/// RFC 3550 A.1 constants.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Per-source receive state (RFC 3550 A.1) plus counters.
#[derive(Debug, Clone, Default)]
pub struct ReceiveStats {
    started: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    transit: Option<i64>,
    /// Interarrival jitter × 16 (A.8 integer form).
    jitter_q4: u32,
    bytes: u64,
    last_sr_ntp_middle: u32,
    last_sr_at_units: Option<u64>,
}

/// A snapshot of one leg's receive statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    pub packets: u64,
    pub bytes: u64,
    pub extended_highest_seq: u32,
    /// Cumulative number of packets lost (RFC 3550 §6.4.1; negative with duplicates).
    pub cumulative_lost: i64,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

impl ReceiveStats {
    /// Update with one packet: sequence number, RTP timestamp, arrival time in timestamp units
    /// (8 kHz ticks since any fixed origin), payload length.
    pub fn update(&mut self, seq: u16, rtp_ts: u32, arrival_units: u64, payload_len: usize) {
        self.update_seq(seq);
        self.received += 1;
        self.bytes += payload_len as u64;
        // A.8: transit = arrival - timestamp; both in 8 kHz units; wrapping handled via i32.
        let transit = i64::from((arrival_units as u32).wrapping_sub(rtp_ts) as i32);
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs().min(u64::from(u32::MAX >> 5)) as u32;
            // J += (|D| - J) / 16, in Q4: jitter_q4 += |D| - ((jitter_q4 + 8) >> 4)
            self.jitter_q4 = self.jitter_q4.wrapping_add(d).wrapping_sub(self.jitter_q4.saturating_add(8) >> 4);
        }
        self.transit = Some(transit);
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    fn update_seq(&mut self, seq: u16) {
        if !self.started {
            self.started = true;
            self.init_seq(seq);
            return;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += RTP_SEQ_MOD;
            }
            self.max_seq = seq;
        } else if udelta <= (RTP_SEQ_MOD - u32::from(MAX_MISORDER)) as u16 {
            // A very large jump: accept it only if the next packet confirms it (A.1).
            if u32::from(seq) == self.bad_seq {
                let (packets, bytes) = (self.received, self.bytes);
                self.init_seq(seq);
                self.received = packets;
                self.bytes = bytes;
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            }
        }
        // else: duplicate or reordered packet, counted as received.
    }

    /// Extended highest sequence number received.
    pub fn extended_highest(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Snapshot.
    pub fn snapshot(&self) -> StreamStats {
        let expected = if self.started {
            (u64::from(self.extended_highest()) + 1).saturating_sub(u64::from(self.base_seq))
        } else {
            0
        };
        StreamStats {
            packets: self.received,
            bytes: self.bytes,
            extended_highest_seq: self.extended_highest(),
            cumulative_lost: expected as i64 - self.received as i64,
            jitter: self.jitter_q4 >> 4,
        }
    }

    /// Build a report block for `ssrc` (A.3: fraction lost since the previous report).
    pub fn report_block(&mut self, ssrc: u32, now_units: u64) -> ReportBlock {
        let snap = self.snapshot();
        let expected = snap.cumulative_lost + self.received as i64;
        let expected_interval = expected - self.expected_prior as i64;
        self.expected_prior = expected.max(0) as u64;
        let received_interval = self.received as i64 - self.received_prior as i64;
        self.received_prior = self.received;
        let lost_interval = expected_interval - received_interval;
        let fraction_lost = if expected_interval <= 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval).min(255) as u8
        };
        let dlsr = match self.last_sr_at_units {
            // DLSR is in 1/65536 s; arrival units are 1/8000 s.
            Some(at) => (now_units.saturating_sub(at) * 65536 / 8000).min(u64::from(u32::MAX)) as u32,
            None => 0,
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: snap.cumulative_lost.clamp(-(1 << 23), (1 << 23) - 1) as i32,
            extended_highest_seq: snap.extended_highest_seq,
            jitter: snap.jitter,
            last_sr: if self.last_sr_at_units.is_some() { self.last_sr_ntp_middle } else { 0 },
            delay_since_last_sr: dlsr,
        }
    }

    /// Remember a received sender report for LSR/DLSR.
    pub fn sender_report_received(&mut self, ntp: u64, now_units: u64) {
        self.last_sr_ntp_middle = (ntp >> 16) as u32;
        self.last_sr_at_units = Some(now_units);
    }
}

/// RTCP report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed.
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

/// Sender info of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One parsed RTCP packet of a compound packet (only SR and RR are interpreted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// SDES, BYE, APP, feedback...: type only.
    Other {
        packet_type: u8,
    },
}

/// Why an RTCP datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtcpError {
    Short,
    WrongVersion,
    /// A length field runs past the datagram.
    BadLength,
    /// The first packet of a compound is not SR or RR (RFC 3550 §6.1).
    NotReportFirst,
}

fn put_block(out: &mut Vec<u8>, b: &ReportBlock) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    let lost = (b.cumulative_lost as u32) & 0x00FF_FFFF;
    out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.last_sr.to_be_bytes());
    out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
}

fn header(out: &mut Vec<u8>, count: u8, pt: u8, words_minus_one: u16) {
    out.push(0x80 | (count & 0x1F));
    out.push(pt);
    out.extend_from_slice(&words_minus_one.to_be_bytes());
}

/// Build a compound RTCP packet: SR (if `info`) or RR, with at most one report block, then an
/// SDES CNAME chunk (truncated to 255 bytes).
pub fn build_compound(ssrc: u32, info: Option<SenderInfo>, block: Option<ReportBlock>, cname: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let rc = u8::from(block.is_some());
    let words = 1 + if info.is_some() { 5 } else { 0 } + 6 * u16::from(rc);
    header(&mut out, rc, if info.is_some() { 200 } else { 201 }, words);
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(i) = info {
        out.extend_from_slice(&i.ntp.to_be_bytes());
        out.extend_from_slice(&i.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&i.packet_count.to_be_bytes());
        out.extend_from_slice(&i.octet_count.to_be_bytes());
    }
    if let Some(b) = &block {
        put_block(&mut out, b);
    }
    let name = &cname.as_bytes()[..cname.len().min(255)];
    // chunk: ssrc, CNAME item (type 1, len, text), then a null terminator and padding to 32 bits.
    let item_len = 4 + 2 + name.len() + 1;
    let padded = item_len.div_ceil(4) * 4;
    header(&mut out, 1, 202, (padded / 4) as u16);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + padded - (4 + 2 + name.len()), 0);
    out
}

fn be32(b: &[u8], at: usize) -> u32 {
    // Callers check `at + 4 <= b.len()` first.
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_blocks(body: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    if body.len() < count * 24 {
        return Err(RtcpError::BadLength);
    }
    Ok((0..count)
        .map(|i| {
            let b = &body[i * 24..i * 24 + 24];
            let w1 = be32(b, 4);
            // Sign-extend the 24-bit cumulative loss.
            let lost = ((w1 << 8) as i32) >> 8;
            ReportBlock {
                ssrc: be32(b, 0),
                fraction_lost: (w1 >> 24) as u8,
                cumulative_lost: lost,
                extended_highest_seq: be32(b, 8),
                jitter: be32(b, 12),
                last_sr: be32(b, 16),
                delay_since_last_sr: be32(b, 20),
            }
        })
        .collect())
}

/// Parse a compound RTCP packet. At most 16 packets are read (bounded work).
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() && out.len() < 16 {
        let rest = &buf[at..];
        if rest.len() < 4 {
            return Err(RtcpError::Short);
        }
        if rest[0] >> 6 != 2 {
            return Err(RtcpError::WrongVersion);
        }
        let count = usize::from(rest[0] & 0x1F);
        let pt = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if len > rest.len() {
            return Err(RtcpError::BadLength);
        }
        let pkt = &rest[..len];
        if out.is_empty() && pt != 200 && pt != 201 {
            return Err(RtcpError::NotReportFirst);
        }
        let parsed = match pt {
            200 => {
                if pkt.len() < 28 {
                    return Err(RtcpError::BadLength);
                }
                let info = SenderInfo {
                    ntp: (u64::from(be32(pkt, 8)) << 32) | u64::from(be32(pkt, 12)),
                    rtp_timestamp: be32(pkt, 16),
                    packet_count: be32(pkt, 20),
                    octet_count: be32(pkt, 24),
                };
                RtcpPacket::SenderReport { ssrc: be32(pkt, 4), info, reports: parse_blocks(&pkt[28..], count)? }
            }
            201 => {
                if pkt.len() < 8 {
                    return Err(RtcpError::BadLength);
                }
                RtcpPacket::ReceiverReport { ssrc: be32(pkt, 4), reports: parse_blocks(&pkt[8..], count)? }
            }
            other => RtcpPacket::Other { packet_type: other },
        };
        out.push(parsed);
        at += len;
    }
    if out.is_empty() {
        return Err(RtcpError::Short);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_fraction() {
        let mut s = ReceiveStats::default();
        for seq in (65530u16..=65535).chain(0..10) {
            if seq % 4 == 0 {
                continue; // lose a quarter
            }
            s.update(seq, u32::from(seq) * 160, u64::from(seq) * 160, 160);
        }
        let snap = s.snapshot();
        assert_eq!(snap.extended_highest_seq, 65536 + 9);
        assert_eq!(snap.packets, 12);
        assert_eq!(snap.cumulative_lost, 4);
        let b = s.report_block(1, 0);
        assert_eq!(b.fraction_lost, (4 * 256 / 16) as u8);
        assert_eq!(s.report_block(1, 0).fraction_lost, 0);
    }

    #[test]
    fn jitter_tracks_constant_offset_as_zero_and_variation_as_positive() {
        let mut s = ReceiveStats::default();
        for i in 0..100u32 {
            s.update(i as u16, i * 160, u64::from(i) * 160 + 5000, 160);
        }
        assert_eq!(s.snapshot().jitter, 0);
        for i in 100..300u32 {
            let wobble = if i % 2 == 0 { 80 } else { 0 };
            s.update(i as u16, i * 160, u64::from(i) * 160 + wobble, 160);
        }
        let j = s.snapshot().jitter;
        assert!((60..=90).contains(&j), "jitter {j}");
    }

    #[test]
    fn rtcp_round_trip() {
        let info = SenderInfo { ntp: 0x1122_3344_5566_7788, rtp_timestamp: 9, packet_count: 10, octet_count: 1600 };
        let block = ReportBlock {
            ssrc: 5,
            fraction_lost: 12,
            cumulative_lost: -3,
            extended_highest_seq: 70000,
            jitter: 17,
            last_sr: 1,
            delay_since_last_sr: 2,
        };
        let buf = build_compound(77, Some(info), Some(block), "kakeru@shard0");
        assert_eq!(buf.len() % 4, 0);
        let parsed = parse_compound(&buf).unwrap();
        assert_eq!(parsed[0], RtcpPacket::SenderReport { ssrc: 77, info, reports: vec![block] });
        assert_eq!(parsed[1], RtcpPacket::Other { packet_type: 202 });
        let rr = build_compound(77, None, None, "");
        assert!(matches!(parse_compound(&rr).unwrap()[0], RtcpPacket::ReceiverReport { ssrc: 77, .. }));
        assert_eq!(parse_compound(&buf[..buf.len() - 1]), Err(RtcpError::BadLength));
    }
}
