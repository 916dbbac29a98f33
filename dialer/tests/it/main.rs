//! Integration tests of the dialer (one binary per crate).

mod calls;
mod net;
