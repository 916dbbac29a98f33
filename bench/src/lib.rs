pub mod agents;
pub mod control;
pub mod media;
pub mod opus;
pub mod pacing;
pub mod reports;
pub mod sip;
pub mod storage;
