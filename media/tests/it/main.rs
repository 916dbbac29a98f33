//! Integration tests of the sans-IO media core, under virtual time (one binary per crate).

#[cfg(feature = "opus")]
mod archive;
mod dtmf;
mod harness;
mod malformed;
mod recording;
mod relay;
mod ring;
mod shard;
