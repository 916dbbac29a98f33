//! Control plane: the agent state machines and the control service (see ARCHITECTURE.md).
//!
//! - [`agent`]: the sans-IO agent state machine and its per-tenant owner, [`agent::Floor`].
//! - [`bus`]: the message bus (Redis Streams, or in-process), envelopes and idempotent consumers.
//! - [`messages`]: the versioned message schemas carried on the bus (see `MESSAGES.md`).

pub mod agent;
pub mod bus;
pub mod messages;
