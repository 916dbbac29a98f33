//! One integration-test binary for the bus crate.

mod contract;
mod envelope;
mod redis_faults;
