//! The one integration-test binary of the `sip` crate.

mod addr;
mod auth;
mod call;
mod malformed;
mod pair;
mod registrar;
mod sdp;
