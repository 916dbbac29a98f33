//! The shards and their drivers on real loopback sockets (one binary per crate).

mod ring;
mod shard;
mod webrtc;
