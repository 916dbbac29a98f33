//! Control plane: the agent state machines and the control service (see ARCHITECTURE.md).
//!
//! - [`agent`]: the sans-IO agent state machine and its per-tenant owner, [`agent::Floor`].
//! - [`bus`]: the message bus (Redis Streams, or in-process), envelopes and idempotent consumers.
//! - [`messages`]: the versioned message schemas carried on the bus (see `MESSAGES.md`).
//! - [`service`]: the control service: one owner task per tenant around the floor, the match, persistence.
//! - [`wallboard`]: the live wallboard aggregates and their change feed (snapshot + resumable stream).

pub mod agent;
pub mod bus;
pub mod messages;
pub mod service;
pub mod wallboard;
