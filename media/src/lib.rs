//! Media plane: shard-per-core RTP relay, recording, prompts and DTMF (see ARCHITECTURE.md).
//!
//! This crate's core is sans-IO: [`call::Call`] is driven by `handle_receive(now, socket, from,
//! bytes)` and `handle_timeout(now)`, and its outputs are drained from one `poll_output` over a
//! closed enum ([`call::Output`]: transmit, recording write, event, timeout). It reads no clock, owns no socket,
//! spawns nothing and takes no lock. The shards and their io_uring runtime (`media-driver`) and
//! the recordings' archive (`media-archive`) are the drivers around it, in crates of their own: this
//! one depends on no runtime and no storage.
//!
//! Modules, bottom-up: [`g711`] (µ-law/A-law), [`wav`] (clip files), [`rtp`] (RFC 3550 headers,
//! parsed with `rtp-rs`), [`rewrite`] (SSRC/sequence/timestamp rewriting per outgoing stream),
//! [`stats`] (RFC 3550 statistics and RTCP), [`dtmf`] (RFC 4733 and Goertzel), [`player`]
//! (prompts, beeps, hold audio), [`recording`] (crash-safe stereo G.711 WAV), [`call`] (the relay
//! state machine), [`voice`] (Opus ⇄ G.711 at a browser phone's leg).

pub mod call;
pub mod dtmf;
pub mod g711;
/// Recordings to Ogg Opus and back (feature `opus`: libopus is built with cmake).
#[cfg(feature = "opus")]
pub mod opus;
pub mod player;
pub mod recording;
pub mod rewrite;
pub mod rtp;
pub mod shard;
pub mod stats;
pub mod voice;
pub mod wav;

pub use call::{
    Call, CallConfig, DropCounters, DropReason, Event, Leg, LegConfig, LegStats, Output, RecordingId, Role,
    RtpCounters, SendDtmfError, SocketId, SupervisorMode, SupervisorsFull, Transmit,
};
pub use dtmf::DtmfKind;
pub use g711::Codec;
pub use player::Clip;
