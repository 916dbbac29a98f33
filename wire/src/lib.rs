//! The message schemas kakeru's processes exchange on the bus (documented in `MESSAGES.md`): the
//! versioned messages and their kinds, the stream names, the ids that cross processes and the
//! agent's wire types. Plain data and serde only: no transport (that is the `bus` crate), no
//! service. Every process's own state machines (the control service's agent core, the dialer's
//! engine) keep internal types of their own and convert at their edge, so the JSON here changes
//! only by the rules of `MESSAGES.md`.
//!
//! - [`ids`]: [`AgentId`], [`CallId`], [`CampaignId`], [`LeadId`], [`Tel`], ...
//! - [`agent`]: the agent's events, commands, states, settings and view (kind `agent_event`).
//! - the messages: [`ApiCommand`], [`ShardEvent`], [`DialerNotice`], [`AgentNotice`],
//!   [`PhoneOffer`], [`SupervisorOffer`], each a [`Message`] with its kind and schema version;
//!   [`streams`] names where each goes.

pub mod agent;
pub mod ids;
mod messages;

pub use ids::{
    AgentId, CallId, CallJobId, CallerIdId, CampaignId, DialingGroupId, LeadId, PauseReasonId, SupervisorId, Tel,
};
pub use messages::*;
