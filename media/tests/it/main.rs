//! Integration tests of the sans-IO media core, under virtual time (one binary per crate).

mod boundary;
mod dtmf;
mod harness;
mod malformed;
mod recording;
mod relay;
mod supervise;
