pub mod agents;
pub mod callbacks;
pub mod control;
pub mod media;
pub mod opus;
pub mod pacing;
pub mod sip;
pub mod storage;
