//! The recording pipeline over real files and a real database (one binary per crate).

mod archive;
/// The media core's virtual-time call driver, shared with `media`'s own tests.
#[path = "../../../media/tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;
