pub mod agents;
pub mod control;
pub mod media;
pub mod opus;
pub mod pacing;
pub mod scratch;
pub mod sip;
pub mod storage;
