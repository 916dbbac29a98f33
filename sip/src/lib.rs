//! SIP for kakeru as a sans-IO core (RFC 3261 over UDP): messages, transactions, dialogs, digest
//! authentication, a registrar and SDP offer/answer for G.711 plus telephone-event.
//!
//! Nothing here reads a clock, owns a socket, spawns a thread or takes a lock: time arrives as `now`,
//! randomness (branches, tags, Call-IDs) through the `RngCore` given to [`transaction::Endpoint::new`],
//! and the wall clock for digest nonces as `now_unix_s`. Bad network input is a counted drop or a 400,
//! never a panic; every queue and table is bounded.

pub mod addr;
pub mod auth;
pub mod dialog;
pub mod limits;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod transaction;

pub use message::{DropReason, Message, Method, ParseError, Request, Response};
pub use transaction::{Config, Endpoint, Event, Transmit, TxId, TxState};
