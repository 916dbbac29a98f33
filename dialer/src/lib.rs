//! Dialer: SIP, call jobs and pacing (see ARCHITECTURE.md).

pub mod pacer;
