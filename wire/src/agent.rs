//! The agent's messages as the bus and `control_agents` carry them (kind `agent_event`, the
//! view and the settings): the control service's agent core has types of its own and converts to
//! and from these at its edge, so the core can change without changing the JSON. Each type's JSON
//! is pinned in `tests/it/golden.rs`.

use serde::{Deserialize, Serialize};

pub use crate::ids::{AgentId, CallId, PauseReasonId, SupervisorId};
use crate::ids::{CallJobId, CallerIdId, CampaignId, LeadId, Tel};
use crate::{Message, NotDialledReason};

/// Agent states (SPEC 5). The Japanese floor word is in each variant's doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentState {
    /// オフライン: logged off, no phone leg.
    Offline,
    /// 待機: phone leg up, waiting for a customer.
    Ready,
    /// 着信中: the agent leg is being set up, or a customer is offered (reserved) to the agent.
    Ringing,
    /// 通話中: bridged with a customer.
    Talking,
    /// 保留: customer on hold.
    Hold,
    /// 後処理 (ACW): after the customer left, until the wrap-up record is saved or the ACW time ends.
    WrapUp,
    /// 停止: paused with a tenant-defined reason.
    Paused { reason_id: PauseReasonId },
    /// 未確認: the phone is unreachable.
    Unknown,
}

impl AgentState {
    /// A short lowercase name, for logs and statistics keys.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::Offline => "offline",
            AgentState::Ready => "ready",
            AgentState::Ringing => "ringing",
            AgentState::Talking => "talking",
            AgentState::Hold => "hold",
            AgentState::WrapUp => "wrap_up",
            AgentState::Paused { .. } => "paused",
            AgentState::Unknown => "unknown",
        }
    }
}

/// Why a transition happened. Status statistics group by this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Cause {
    /// The agent started a call job (log in): the system dials the agent's phone.
    Login,
    /// The nailed-up agent leg answered.
    AgentLegUp,
    /// The agent leg ended (agent hung up the phone, media worker lost it).
    AgentLegDown,
    /// The agent leg was not up within the set-up timeout, or the phone was reported unreachable.
    PhoneUnreachable,
    /// A customer was offered (reserved) to the agent.
    Offer,
    /// The agent declined the offered customer.
    Declined,
    /// The agent asked to dial the lead they previewed (preview mode).
    PreviewDial,
    /// The dialer did not place the agent's preview call (do-not-call, a channel limit, outside
    /// business hours, the number already in a call, the job stopped).
    NotDialled,
    /// The offered customer was not taken within the ring timeout.
    NoAnswer,
    /// The customer was bridged to the agent.
    Bridged,
    /// The customer left (hung up, or hung up from the agent's UI).
    CustomerEnded,
    /// Hold / unhold by the agent.
    Hold,
    Unhold,
    /// 転送: the agent handed its customer to another agent (added in v1).
    Transferred,
    /// パーク保留: the agent parked its customer (#72 or the desktop) for any agent to pick up
    /// (added in v1).
    Parked,
    /// The wrap-up record was saved.
    WrapUpSaved,
    /// The campaign's ACW seconds ran out.
    AcwTimeout,
    /// The agent asked to be ready.
    GoReady,
    /// The agent asked for a pause (applied now, or at the end of the call).
    PauseRequested,
    /// The agent asked to log off (applied now, or at the end of the call).
    LogOffRequested,
    /// 60 minutes idle in ready / ACW / paused.
    IdleTimeout,
    /// 無応答自動停止時間 ran out: the pause for an offer not taken ended by itself.
    PauseReleased,
    /// A supervisor changed the agent's state.
    Supervisor {
        supervisor_id: SupervisorId,
    },
}

/// One recorded state change: the unit of status statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub agent_id: AgentId,
    pub from: AgentState,
    pub to: AgentState,
    /// The driver's `now_ms` when the transition was made.
    pub at_ms: u64,
    pub cause: Cause,
    /// The customer call the agent was in or is offered, if any.
    pub call_id: Option<CallId>,
    /// The lead of that call, or of the preview dial the agent asked for (added in v1). The state
    /// machine leaves it `None`; the control service fills it in before publishing, so that an
    /// agent's screen shows the customer the moment the transition arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<LeadId>,
    /// Cause `not_dialled` only: why the dialer did not place the preview dial (added in v1; filled
    /// in by the control service from `preview_not_dialled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_dialled: Option<NotDialledReason>,
}

/// Commands for the media / dialer shards, produced by the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Dial the agent's phone (nailed-up leg). `campaign_id` is the campaign of the agent's call job:
    /// the state machine leaves it `None`; the control service fills it in before publishing, so
    /// that the dialer places the leg on the campaign's shard.
    DialAgentLeg {
        agent_id: AgentId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        campaign_id: Option<CampaignId>,
    },
    /// Hang up the agent's phone leg.
    HangUpAgentLeg { agent_id: AgentId },
    /// Bridge the offered customer to the agent's leg (beep, then audio).
    Bridge { agent_id: AgentId, call_id: CallId },
    /// The reserved customer is no longer for this agent: offer it to another agent or abandon it.
    ReleaseCustomer { agent_id: AgentId, call_id: CallId },
    /// Hang up the customer (the agent's leg is gone); a call still ringing is cancelled.
    HangUpCustomer { agent_id: AgentId, call_id: CallId },
    /// 保留 (`held`) or back (unhold): the customer hears hold audio and the agent nothing, or
    /// they hear each other again (added in v1).
    HoldCustomer { agent_id: AgentId, call_id: CallId, held: bool },
    /// パーク保留: the agent let go of its customer, who waits (waiting audio) under a park number
    /// for any agent to pick up; `hold_ms`, filled in by the control service, is the tenant's park
    /// limit (added in v1).
    ParkCustomer {
        agent_id: AgentId,
        call_id: CallId,
        #[serde(default)]
        hold_ms: u64,
    },
    /// Preview: dial this lead of the agent's call job for the agent (who waits in `Ringing`), from
    /// the caller ID it chose (`None`: the call job's).
    DialPreview {
        agent_id: AgentId,
        campaign_id: CampaignId,
        call_job_id: CallJobId,
        lead_id: LeadId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller_id: Option<CallerIdId>,
    },
    /// 外線転送: place a second carrier leg to `tel` and hand the customer of `call_id` to it when
    /// it answers (the agent's, still talking; added in v1).
    TransferOutside {
        agent_id: AgentId,
        call_id: CallId,
        tel: Tel,
        /// 発信者番号 of the outside leg (a saved 外線転送's own; optional, added to v1); `None`: the call's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller_id: Option<Tel>,
    },
    /// 電話会議: call `tel` as the third party of the agent's call `call_id` (added in v1).
    Conference {
        agent_id: AgentId,
        call_id: CallId,
        tel: Tel,
        /// 発信者番号 of the outside leg (a saved 外線転送's own; optional, added to v1); `None`: the call's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller_id: Option<Tel>,
    },
    /// 電話会議: drop the third party (added in v1).
    EndConference { agent_id: AgentId, call_id: CallId },
    /// 電話会議: the agent leaves; the customer and the third party go on (added in v1).
    LeaveConference { agent_id: AgentId, call_id: CallId },
}

/// Output of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Transition(Transition),
    Command(Command),
    /// A pause or log-off asked for during a call is deferred to the call's end (`after_call`), or
    /// such a request was dropped (`false`). The pacer counts the agent as not coming back.
    Deferred {
        agent_id: AgentId,
        after_call: bool,
    },
}

/// What the agent wants after the wrap-up record is saved (SPEC 5 "state after saving").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "after", rename_all = "snake_case")]
pub enum AfterWrapUp {
    /// Continue auto-dial: ready.
    Continue,
    /// Break / away: paused with this reason.
    Pause { reason_id: PauseReasonId },
    /// End the call job: log off.
    EndJob,
}

/// States a supervisor may force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum ForceTarget {
    Ready,
    Paused { reason_id: PauseReasonId },
    Offline,
}

/// Per-agent settings, from the campaign of the agent's call job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// ACW seconds of the campaign, in ms; `None` = no ACW (straight to the next state),
    /// `Some(0)` is treated as no ACW as well.
    pub acw_ms: Option<u64>,
    /// Idle log-off after this long in ready / ACW / paused (SPEC 5: 60 minutes).
    pub idle_logoff_ms: u64,
    /// How long an offered customer waits for the agent before being released.
    pub offer_timeout_ms: u64,
    /// How long the nailed-up leg may take to come up before the agent is `Unknown`.
    pub leg_setup_timeout_ms: u64,
    /// Auto-pause an agent who does not take an offered customer, with this reason.
    pub no_answer_pause: Option<PauseReasonId>,
    /// 無応答自動停止時間: that pause ends by itself after this long (`None` or 0: it lasts until
    /// the agent or a supervisor ends it).
    #[serde(default)]
    pub no_answer_release_ms: Option<u64>,
    /// Preview: how long the agent's own call may take from the dial to the answer (the campaign's
    /// ring timeout and a margin); past it the call is hung up and the agent is ready again.
    #[serde(default = "default_preview_timeout_ms")]
    pub preview_timeout_ms: u64,
}

fn default_preview_timeout_ms() -> u64 {
    210_000
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            acw_ms: None,
            idle_logoff_ms: 60 * 60 * 1000,
            offer_timeout_ms: 20_000,
            leg_setup_timeout_ms: 60_000,
            no_answer_pause: None,
            no_answer_release_ms: None,
            preview_timeout_ms: default_preview_timeout_ms(),
        }
    }
}

/// A change asked for during a call, applied when the call's wrap-up ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "pending", rename_all = "snake_case")]
pub enum Pending {
    Pause { reason_id: PauseReasonId, cause: Cause },
    LogOff { cause: Cause },
}

/// Read-only view of one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    pub agent_id: AgentId,
    pub state: AgentState,
    /// When the agent entered `state`.
    pub since_ms: u64,
    pub call_id: Option<CallId>,
    pub leg_up: bool,
    pub pending: Option<Pending>,
    /// Preview: the agent's own call is being placed or rings (not answered yet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dialling: bool,
    /// 無応答自動停止時間: when a pause for an offer not taken ends by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_at_ms: Option<u64>,
}

/// Outputs of the control service: agent transitions (for statistics and the wallboard) and commands
/// for the shards (stream [`crate::streams::agent_events`]).
impl Message for Event {
    const KIND: &'static str = "agent_event";
    const SCHEMA: u16 = 1;
}
