//! Integration tests of the dialer (one binary per crate).

mod calls;
mod engine;
mod floor;
mod metrics;
mod net;
mod preview;
mod sipp;
