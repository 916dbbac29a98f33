pub mod agents;
pub mod control;
pub mod logins;
pub mod media;
pub mod opus;
pub mod pacing;
pub mod sip;
pub mod storage;
