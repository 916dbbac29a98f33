//! Dialer: call control on the shards (SIP to the carrier and to the agents' phones), call jobs and
//! pacing (see ARCHITECTURE.md).

pub mod calls;
pub mod engine;
pub mod pacer;
pub mod placement;
pub mod secrets;
