//! Integration tests of the dialer (one binary per crate).

mod calls;
mod core;
mod engine;
mod floor;
mod metrics;
mod net;
mod outage;
mod preview;
mod sipp;
mod writer;
