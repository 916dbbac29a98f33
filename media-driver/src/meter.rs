//! A shard's RTP metrics (deploy/METRICS.md, "Media"), flushed by its driver: the shard keeps plain
//! counters ([`ShardStats`]) and jitter samples; about once a second ([`FLUSH_EVERY`]) the driver
//! adds what changed to the `metrics` recorder, so no packet ever touches it.

use std::time::{Duration, Instant};

use crate::shard::{Shard, ShardApp, ShardStats};

/// How often a shard's counters reach the recorder.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// RTP timestamp units per second (every codec the shard relays runs an 8 kHz clock).
const CLOCK_RATE: f64 = 8000.0;

pub const PACKETS_TOTAL: &str = "kakeru_media_rtp_packets_total";
pub const BYTES_TOTAL: &str = "kakeru_media_rtp_bytes_total";
pub const LOST_TOTAL: &str = "kakeru_media_rtp_lost_packets_total";
pub const JITTER_SECONDS: &str = "kakeru_media_rtp_jitter_seconds";
pub const RECORDING_ERRORS_TOTAL: &str = "kakeru_media_recording_errors_total";
pub const TCP_CONNECTIONS_TOTAL: &str = "kakeru_media_tcp_connections_total";
pub const TCP_CLOSED_TOTAL: &str = "kakeru_media_tcp_closed_total";
pub const TCP_FRAMES_TOTAL: &str = "kakeru_media_tcp_frames_total";
pub const TCP_DROPPED_TOTAL: &str = "kakeru_media_tcp_dropped_frames_total";

/// Registers the help texts (idempotent; the recorder must be installed).
pub fn describe() {
    metrics::describe_counter!(
        PACKETS_TOTAL,
        "RTP packets received from and sent to call legs, by shard and direction."
    );
    metrics::describe_counter!(
        BYTES_TOTAL,
        metrics::Unit::Bytes,
        "RTP bytes (UDP payload) received from and sent to call legs, by shard and direction."
    );
    metrics::describe_counter!(LOST_TOTAL, "RTP packets lost on received streams (RFC 3550 A.3), by shard.");
    metrics::describe_counter!(
        RECORDING_ERRORS_TOTAL,
        "Recordings that stopped on a file error (disk full, directory gone); the call goes on unrecorded."
    );
    metrics::describe_counter!(
        TCP_CONNECTIONS_TOTAL,
        "Browser phones' TCP connections (RFC 6544 candidate) accepted, or refused at the shard's limit, by shard."
    );
    metrics::describe_counter!(
        TCP_CLOSED_TOTAL,
        "TCP connections closed for what their peer sent: a frame over the limit, garbage, no first frame in time, \
         a first frame naming no leg; by shard and reason."
    );
    metrics::describe_counter!(
        TCP_FRAMES_TOTAL,
        "RFC 4571 frames received and written on TCP, by shard and direction."
    );
    metrics::describe_counter!(
        TCP_DROPPED_TOTAL,
        "TCP frames dropped (a full queue or write buffer, a connection gone), by shard."
    );
    metrics::describe_histogram!(
        JITTER_SECONDS,
        metrics::Unit::Seconds,
        "Interarrival jitter of received streams (RFC 3550 A.8), sampled per RTCP report and when a leg leaves."
    );
}

/// What one shard flushed last, and when it flushes next.
#[derive(Debug)]
pub(crate) struct Meter {
    shard: String,
    flushed: ShardStats,
    next_at: Instant,
}

impl Meter {
    pub(crate) fn new(index: usize, now: Instant) -> Meter {
        describe();
        Meter { shard: index.to_string(), flushed: ShardStats::default(), next_at: now + FLUSH_EVERY }
    }

    /// When [`Meter::maybe_flush`] next has work (a driver sleeps no longer than this).
    pub(crate) fn next_at(&self) -> Instant {
        self.next_at
    }

    pub(crate) fn maybe_flush<A: ShardApp>(&mut self, now: Instant, shard: &mut Shard<A>) {
        if now >= self.next_at {
            self.next_at = now + FLUSH_EVERY;
            self.flush(shard);
        }
    }

    /// Adds the shard's counters since the last flush, and its jitter samples, to the recorder.
    pub(crate) fn flush<A: ShardApp>(&mut self, shard: &mut Shard<A>) {
        let s = shard.stats();
        let f = &self.flushed;
        let shard_label = || self.shard.clone();
        for (dir, packets, bytes) in [
            ("in", s.rtp_packets_in - f.rtp_packets_in, s.rtp_bytes_in - f.rtp_bytes_in),
            ("out", s.rtp_packets_out - f.rtp_packets_out, s.rtp_bytes_out - f.rtp_bytes_out),
        ] {
            metrics::counter!(PACKETS_TOTAL, "shard" => shard_label(), "direction" => dir).increment(packets);
            metrics::counter!(BYTES_TOTAL, "shard" => shard_label(), "direction" => dir).increment(bytes);
        }
        metrics::counter!(LOST_TOTAL, "shard" => shard_label()).increment(s.rtp_lost - f.rtp_lost);
        metrics::counter!(RECORDING_ERRORS_TOTAL, "shard" => shard_label())
            .increment(s.recording_errors - f.recording_errors);
        let (t, ft) = (s.tcp, f.tcp);
        if t != ft {
            for (outcome, n) in [("accepted", t.accepted - ft.accepted), ("refused", t.refused - ft.refused)] {
                metrics::counter!(TCP_CONNECTIONS_TOTAL, "shard" => shard_label(), "outcome" => outcome).increment(n);
            }
            for (reason, n) in [
                ("oversized", t.oversized - ft.oversized),
                ("garbage", t.garbage - ft.garbage),
                ("idle", t.idle - ft.idle),
                ("unrouted", t.unrouted - ft.unrouted),
            ] {
                metrics::counter!(TCP_CLOSED_TOTAL, "shard" => shard_label(), "reason" => reason).increment(n);
            }
            for (dir, n) in [("in", t.frames_in - ft.frames_in), ("out", t.frames_out - ft.frames_out)] {
                metrics::counter!(TCP_FRAMES_TOTAL, "shard" => shard_label(), "direction" => dir).increment(n);
            }
            metrics::counter!(TCP_DROPPED_TOTAL, "shard" => shard_label()).increment(t.dropped - ft.dropped);
        }
        let jitter = metrics::histogram!(JITTER_SECONDS, "shard" => shard_label());
        for j in shard.drain_jitter_samples() {
            jitter.record(f64::from(j) / CLOCK_RATE);
        }
        self.flushed = s;
    }
}
