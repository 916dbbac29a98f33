pub mod control;
pub mod media;
pub mod pacing;
pub mod storage;
