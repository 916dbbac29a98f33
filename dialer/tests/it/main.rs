//! Integration tests of the dialer (one binary per crate).

mod baresip;
mod browser;
mod calls;
mod core;
mod digest;
mod engine;
mod floor;
mod leases;
mod metrics;
mod net;
mod outage;
mod outside;
mod park;
mod phones;
mod preview;
mod sipp;
mod transfer;
mod transfer_outside;
mod writer;
