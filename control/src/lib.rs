//! Control plane: the agent state machines and the control service (see ARCHITECTURE.md).
//!
//! - [`agent`]: the sans-IO agent state machine and its per-tenant owner, [`agent::Floor`]; its
//!   types are its own, converted to and from the `wire` crate's at its edge.
//! - [`service`]: the control service: one owner task per tenant around the floor, the match, persistence.
//!
//! The bus is the `bus` crate's, the messages on it the `wire` crate's, the wallboard the `wallboard`
//! crate's: the dialer and the API use those without linking this crate.

pub mod agent;
pub mod service;
