//! One integration-test binary for the wire crate.

mod golden;
