//! Versioned message schemas carried on the bus (documented in `wire/MESSAGES.md`).
//!
//! Each message type has a `KIND` (the envelope's `kind`) and a `SCHEMA` version (the envelope's
//! `schema`). Rules: within one schema version changes are additive only (new optional fields, new
//! enum variants that old readers refuse as a counted error); a breaking change bumps `SCHEMA`, and
//! a reader refuses envelopes with a newer schema than it knows ([`DecodeError::NewerSchema`]) so
//! they stay pending (or dead-letter) until a new reader is deployed.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::agent::{AfterWrapUp, AgentConfig, ForceTarget};
use crate::ids::{
    AgentId, CallId, CallJobId, CallerIdId, CampaignId, DialingGroupId, LeadId, PauseReasonId, SupervisorId, Tel,
};

/// A message type carried in a bus envelope (`bus::Envelope::new` writes `KIND` and `SCHEMA`,
/// `bus::Envelope::decode` checks them).
pub trait Message: Serialize + DeserializeOwned {
    /// The envelope `kind`.
    const KIND: &'static str;
    /// The schema version this code writes and the newest it reads.
    const SCHEMA: u16;
}

/// Why the dialer did not place an agent's preview dial: the `result` of
/// [`ShardEvent::PreviewNotDialled`], typed (an unknown text reads as `Error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotDialledReason {
    /// 発信規制: the number is on the do-not-call list (a call record says so; no call).
    Restricted,
    /// チャンネル制限: the campaign's or the caller ID's channel limit.
    ChannelLimit,
    /// 停止: the dialer was stopping.
    Stopped,
    /// The number is already in a call.
    NumberInCall,
    /// Outside the campaign's business hours.
    OutsideHours,
    /// The call job is not running.
    JobNotRunning,
    /// The lead is no longer dialable by the job (done, not held for the agent, already called).
    LeadNotDialable,
    /// The caller ID (発番号) the agent chose is not (or no longer) one of the tenant's.
    CallerIdUnknown,
    /// Anything else (the dialer's prepare step failed).
    Error,
}

impl NotDialledReason {
    /// The dialer's text (`preview_not_dialled`'s `result`).
    pub fn parse(s: &str) -> NotDialledReason {
        match s {
            "restricted" => NotDialledReason::Restricted,
            "channel_limit" => NotDialledReason::ChannelLimit,
            "stopped" => NotDialledReason::Stopped,
            "number_in_call" => NotDialledReason::NumberInCall,
            "outside_hours" => NotDialledReason::OutsideHours,
            "job_not_running" => NotDialledReason::JobNotRunning,
            "lead_not_dialable" => NotDialledReason::LeadNotDialable,
            "caller_id_unknown" => NotDialledReason::CallerIdUnknown,
            _ => NotDialledReason::Error,
        }
    }
}

/// Notices for agents' screens from the admin API, published on the tenant's `agent:events`
/// stream beside the control service's events (kind `agent_notice`): the API processes that serve
/// agents' push channels follow that one stream, so a notice resumes with the same event ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum AgentNotice {
    /// 再コール: a recall was assigned to the agent (by themselves, a supervisor or a manager).
    RecallAssigned { agent_id: AgentId, recall_id: u64, lead_id: LeadId, due_at_ms: Option<u64> },
    /// A supervisor or manager stopped the call job: its agents are told (calls in progress go on).
    JobStopped { call_job_id: CallJobId },
    /// 折り返し呼: a callback was given to the agent (registered for them, claimed by them, or
    /// assigned by a supervisor or manager).
    CallbackAssigned { agent_id: AgentId, callback_id: u64 },
    /// 折り返し呼: a callback was registered with no one assigned: every agent's list learns of it.
    CallbackRegistered { callback_id: u64 },
    /// 折り返し呼: the tenant's open callbacks now (for the wallboard), after a registration or a
    /// change of status.
    CallbacksOpen { open: u64 },
    /// ブラウザフォン: the media shard's SDP answer to the agent's page's offer ([`PhoneOffer`]),
    /// published by the dialer host that placed the agent's leg.
    PhoneAnswer { agent_id: AgentId, sdp: String },
    /// ブラウザフォン: the agent's offer was refused or the leg failed, in words for the page.
    PhoneFailed { agent_id: AgentId, error: String },
    /// A supervisor's browser phone ([`SupervisorOffer`]): the media shard's SDP answer, for the
    /// supervisor's page (`agent_id`: the supervisor; `monitor_id`: the monitoring record).
    MonitorAnswer { agent_id: AgentId, monitor_id: u64, sdp: String },
    /// A supervisor's browser phone was refused or failed, in words for the page.
    MonitorFailed { agent_id: AgentId, monitor_id: u64, error: String },
    /// パーク保留: the tenant's parked calls changed (published by the control service): a call was
    /// parked under `number` (`parked`), or its park ended (`picked_up` by `agent_id`, `hung_up`,
    /// `returned` after the limit). Every agent's list shows it.
    ParkChanged { number: u16, call_id: CallId, change: ParkChange, agent_id: AgentId, at_ms: u64 },
    /// 外線転送: how the agent's transfer of `call_id` to an outside number went: `outcome`
    /// `answered` (the customer talks with the outside party; the agent wraps up), or why the
    /// customer came back to the agent (`busy`, `no_answer`, `refused`, `not_placed`,
    /// `channel_limit`).
    OutsideTransfer { agent_id: AgentId, call_id: CallId, outcome: String },
    /// 電話会議: the agent's third party `joined` the call, or left it (`dropped`,
    /// `party_hung_up`, `call_ended`, `agent_left`) or never came (`busy`, `no_answer`, `refused`,
    /// `not_placed`, `channel_limit`).
    Conference { agent_id: AgentId, call_id: CallId, outcome: String },
}

/// What happened to a park ([`AgentNotice::ParkChanged`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkChange {
    /// Parked (`agent_id`: who parked it).
    Parked,
    /// Picked up (`agent_id`: who took it).
    PickedUp,
    /// The customer hung up while parked.
    HungUp,
    /// Nobody took it within the limit: offered back to whoever parked it, else queued for the
    /// campaign's agents.
    Returned,
}

impl Message for AgentNotice {
    const KIND: &'static str = "agent_notice";
    const SCHEMA: u16 = 1;
}

/// Commands from the admin API to the control service (stream [`streams::control_commands`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiCommand {
    /// 発信開始: start a call job; the control service dials the agent's phone (nailed-up leg).
    /// `call_job_id` and `dialing_group_id` (added in v1, optional) place the agent on the
    /// wallboard's dialing-group tiles.
    StartCallJob {
        agent_id: AgentId,
        campaign_id: CampaignId,
        config: AgentConfig,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_job_id: Option<CallJobId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dialing_group_id: Option<DialingGroupId>,
    },
    /// 発信終了: stop the call job (log off, deferred to the end of a call).
    StopCallJob { agent_id: AgentId },
    /// 待機: go ready.
    GoReady { agent_id: AgentId },
    /// 停止: pause with a tenant reason (deferred to the end of a call).
    Pause { agent_id: AgentId, reason_id: PauseReasonId },
    /// ログオフ: log off (deferred to the end of a call).
    LogOff { agent_id: AgentId },
    /// SV: force a state.
    SupervisorForce { agent_id: AgentId, supervisor_id: SupervisorId, to: ForceTarget },
    /// 応対記録 saved (the record itself is in SQL; this carries the state change).
    SaveWrapUp { agent_id: AgentId, call_id: CallId, after: AfterWrapUp },
    /// お客様通話切断: the agent ends the customer leg from the UI.
    HangUpCustomer { agent_id: AgentId, call_id: CallId },
    /// UI keep-alive: restarts the idle timer.
    Activity { agent_id: AgentId },
    /// プレビュー発信: the agent dials the lead they previewed (added in v1), from the caller ID it
    /// chose (発番号; `None`: the call job's).
    PreviewDial {
        agent_id: AgentId,
        campaign_id: CampaignId,
        call_job_id: CallJobId,
        lead_id: LeadId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller_id: Option<CallerIdId>,
    },
    /// 保留: the agent puts the customer of `call_id` on hold (added in v1).
    Hold { agent_id: AgentId, call_id: CallId },
    /// 保留解除: the agent takes the customer back (added in v1).
    Unhold { agent_id: AgentId, call_id: CallId },
    /// 転送: the agent hands the customer of `call_id` to `to_agent` (ready, in a call job of the
    /// same campaign), who is offered it with its lead; the agent goes to wrap-up (added in v1).
    Transfer { agent_id: AgentId, call_id: CallId, to_agent: AgentId },
    /// パーク保留: the agent parks the customer of `call_id` under the tenant's lowest free park
    /// number; the agent goes to wrap-up (added in v1).
    Park { agent_id: AgentId, call_id: CallId },
    /// パーク応答: the agent (ready) picks up the call parked under `number` on its own phone (the
    /// API claimed the park for it first) (added in v1).
    PickUp { agent_id: AgentId, number: u16 },
    /// 外線転送: the agent hands the customer of `call_id` to the outside number `tel`; the agent
    /// stays on the call until the outside party answers (added in v1).
    TransferOutside {
        agent_id: AgentId,
        call_id: CallId,
        tel: Tel,
        /// 発信者番号 of the outside leg (a saved 外線転送's own; optional, added to v1); `None`: the call's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller_id: Option<Tel>,
    },
    /// 電話会議: the agent calls `tel` as the third party of `call_id` (added in v1).
    Conference {
        agent_id: AgentId,
        call_id: CallId,
        tel: Tel,
        /// 発信者番号 of the outside leg (a saved 外線転送's own; optional, added to v1); `None`: the call's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller_id: Option<Tel>,
    },
    /// 電話会議: the agent drops the third party (added in v1).
    EndConference { agent_id: AgentId, call_id: CallId },
    /// 電話会議: the agent leaves; the customer and the third party go on (added in v1).
    LeaveConference { agent_id: AgentId, call_id: CallId },
}

impl Message for ApiCommand {
    const KIND: &'static str = "api_command";
    const SCHEMA: u16 = 1;
}

/// Who ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Customer,
    Agent,
    System,
}

/// How a SIP call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipOutcome {
    /// Final SIP status of the INVITE (200 when answered, 486 busy, 480, 487 cancelled, 408...).
    pub status: u16,
    /// Reason phrase or Q.850 text; bounded to 256 bytes by the writer.
    pub reason: String,
    pub ended_by: Party,
    /// Seconds talking (0 if never answered).
    pub talk_ms: u64,
}

/// A call's system result (SPEC 4 結果), set by the dialer alone (the table is in
/// `dialer::engine::results`); a saved wrap-up record carries the agent's result beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemResult {
    /// 発信待機中: placed, not ended.
    Pending,
    /// 未入力: answered and bridged; no wrap-up record saved yet.
    NoEntry,
    /// 破棄呼: answered, no agent took the customer.
    Abandoned,
    /// ビジー.
    Busy,
    /// 制限時間: no answer within the ring timeout.
    Timeout,
    /// キャンセル: cancelled by the carrier, or declined by the callee (603).
    Cancel,
    /// エラー.
    Error,
    /// 現アナ: the number is not in service (SIP 404, 410, 484, 604); a call, not a connect.
    NotInService,
    /// チャンネル制限: not dialled, a channel limit was reached.
    ChannelLimit,
    /// 発信規制: not dialled, the number is on the do-not-call list.
    Restricted,
    /// 停止: cancelled or not dialled because the dialer or the job stopped.
    Stopped,
}

impl SystemResult {
    pub const ALL: [SystemResult; 11] = [
        SystemResult::Pending,
        SystemResult::NoEntry,
        SystemResult::Abandoned,
        SystemResult::Busy,
        SystemResult::Timeout,
        SystemResult::Cancel,
        SystemResult::Error,
        SystemResult::NotInService,
        SystemResult::ChannelLimit,
        SystemResult::Restricted,
        SystemResult::Stopped,
    ];

    /// The name stored in SQL and sent in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemResult::Pending => "pending",
            SystemResult::NoEntry => "no_entry",
            SystemResult::Abandoned => "abandoned",
            SystemResult::Busy => "busy",
            SystemResult::Timeout => "timeout",
            SystemResult::Cancel => "cancel",
            SystemResult::Error => "error",
            SystemResult::NotInService => "not_in_service",
            SystemResult::ChannelLimit => "channel_limit",
            SystemResult::Restricted => "restricted",
            SystemResult::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<SystemResult> {
        SystemResult::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What an agent keyed on the phone after a call (DTMF result entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keyed", rename_all = "snake_case")]
pub enum Keyed {
    /// One of the campaign's result numbers (checked by the dialer).
    Result { number: u32 },
    /// A recall this long after now.
    Recall { after_ms: u64 },
}

/// Events from the dialer / media shards (stream [`streams::shard_events`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShardEvent {
    /// The nailed-up agent leg answered.
    AgentLegUp { agent_id: AgentId, shard: u32 },
    /// The agent leg ended.
    AgentLegDown { agent_id: AgentId, shard: u32 },
    /// The agent's phone cannot be reached (SIP 4xx/5xx/6xx on the agent leg, registration lost).
    AgentUnreachable { agent_id: AgentId, sip_status: u16 },
    /// A customer answered and waits for an agent (待ち呼).
    CustomerAnswered { call_id: CallId, campaign_id: CampaignId, lead_id: LeadId, shard: u32 },
    /// The customer is bridged to the agent.
    Bridged { call_id: CallId, agent_id: AgentId },
    /// The customer call ended, with its system result (v2: `result` is required; the dialer is
    /// its one author).
    CallEnded { call_id: CallId, agent_id: Option<AgentId>, outcome: SipOutcome, result: SystemResult },
    /// Preview (added in v1): the agent's call is placed (its record written, the INVITE about to
    /// leave); published before any other event of the call.
    PreviewPlaced { call_id: CallId, agent_id: AgentId, lead_id: LeadId },
    /// Preview (added in v1): the agent's call was not placed. `result` is the lead's system result
    /// when a call record was written (`restricted`, `channel_limit`, `stopped`), else why not
    /// (`number_in_call`, `outside_hours`, `job_not_running`, `lead_not_dialable`).
    PreviewNotDialled { agent_id: AgentId, lead_id: LeadId, result: String },
    /// 外線転送 (added in v2): the outside party answered the agent's transfer of `call_id`; the
    /// agent lets go of the call and wraps up its part.
    OutsideTransferred { call_id: CallId, agent_id: AgentId },
    /// DTMF result entry (v2): the agent keyed a result or a recall for `call_id` after it ended;
    /// control saves the call's wrap-up record and ends the agent's ACW.
    ResultKeyed { call_id: CallId, agent_id: AgentId, keyed: Keyed },
    /// v2: a due recall an agent owns in a progressive or predictive job, held for that agent:
    /// control dials it for the agent (a preview dial) if the agent is still ready for the job.
    RecallDue { agent_id: AgentId, campaign_id: CampaignId, call_job_id: CallJobId, lead_id: LeadId },
    /// パーク保留 (added in v2): the agent keyed `#72` on its phone while talking with `call_id`.
    ParkKeyed { agent_id: AgentId, call_id: CallId },
    /// パーク応答 (added in v2): the agent keyed a park number (9001..) on its phone while on no
    /// call: it picks that parked call up.
    PickUpKeyed { agent_id: AgentId, number: u16 },
    /// About once a second per campaign with a running call job: what the dialer is doing, for the
    /// wallboard. Integers keep the schema exact: the dial level in thousandths, the predicted
    /// abandon share in parts per million.
    DialerStatus {
        campaign_id: CampaignId,
        dials_in_flight: u32,
        remaining_leads: u64,
        dial_level_milli: u32,
        predicted_abandon_ppm: u32,
    },
}

impl Message for ShardEvent {
    const KIND: &'static str = "shard_event";
    const SCHEMA: u16 = 2;
}

/// Notices to every dialer host (stream [`streams::dialer_notices`], read with `XREAD` by each host
/// from where it starts): what changed in a tenant's configuration, so that the hosts read it again
/// instead of polling for it. The tenant is the envelope's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DialerNotice {
    /// A call job started or stopped, or what jobs dial with changed (campaigns, caller IDs,
    /// results): the tenant's running jobs are read again.
    JobsChanged,
    /// The tenant's phones changed: their SIP accounts are read again.
    PhonesChanged,
    /// A supervisor (SV, MGR) joins the bridged customer call `call_id` from their own phone in
    /// `mode`, or changes mode on it (added in v1). `monitor_id` is the record the API wrote; the
    /// dialer host that has the call connects the phone and writes its start and end.
    Supervise { monitor_id: u64, supervisor_id: SupervisorId, call_id: CallId, mode: MonitorMode },
    /// The supervisor leaves the call they are on (added in v1).
    EndSupervision { supervisor_id: SupervisorId },
}

/// How a supervisor takes part in an agent's call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorMode {
    /// モニタリング: the supervisor hears both parties; nobody hears the supervisor.
    Listen,
    /// ささやき: the agent hears the supervisor, the customer does not.
    Whisper,
    /// 割込: both parties hear the supervisor.
    Barge,
}

impl MonitorMode {
    pub const ALL: [MonitorMode; 3] = [MonitorMode::Listen, MonitorMode::Whisper, MonitorMode::Barge];

    /// The name in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }

    pub fn parse(s: &str) -> Option<MonitorMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// ブラウザフォン: the SDP offer of an agent's page (a new leg, an ICE restart, a rejoin), from the
/// API to the dialer hosts on [`streams::dialer_notices`] (the host serving the tenant takes it).
/// Answered by [`AgentNotice::PhoneAnswer`] or [`AgentNotice::PhoneFailed`] on `agent:events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneOffer {
    pub agent_id: AgentId,
    pub sdp: String,
}

/// モニタリング / ささやき / 割込 from a supervisor's browser phone: the SDP offer of the
/// supervisor's page with the join it asks for ([`DialerNotice::Supervise`] with the page as the
/// phone), from the API to the dialer hosts on [`streams::dialer_notices`]. Answered by
/// [`AgentNotice::MonitorAnswer`] or [`AgentNotice::MonitorFailed`] on `agent:events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorOffer {
    pub monitor_id: u64,
    pub supervisor_id: SupervisorId,
    pub call_id: CallId,
    pub mode: MonitorMode,
    pub sdp: String,
}

impl Message for SupervisorOffer {
    const KIND: &'static str = "supervisor_offer";
    const SCHEMA: u16 = 1;
}

impl Message for PhoneOffer {
    const KIND: &'static str = "phone_offer";
    const SCHEMA: u16 = 1;
}

impl Message for DialerNotice {
    const KIND: &'static str = "dialer_notice";
    const SCHEMA: u16 = 1;
}

/// Why an envelope could not be decoded into a message. The consumer counts it and dead-letters
/// the entry; it never panics.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("kind {got:?}, expected {expected:?}")]
    WrongKind { expected: &'static str, got: String },
    #[error("schema {got} is newer than {known} (deploy a newer reader)")]
    NewerSchema { known: u16, got: u16 },
    #[error("payload: {0}")]
    Payload(#[from] serde_json::Error),
}

/// Stream names. One stream per tenant and direction keeps tenants apart and lets a control
/// instance own a set of tenants.
pub mod streams {
    /// API -> control service: [`super::ApiCommand`].
    pub fn control_commands(tenant_id: u64) -> String {
        format!("kakeru:t{tenant_id}:control:commands")
    }
    /// Shards -> control service: [`super::ShardEvent`].
    pub fn shard_events(tenant_id: u64) -> String {
        format!("kakeru:t{tenant_id}:shard:events")
    }
    /// Control service -> statistics, wallboard and shards: [`crate::agent::Event`], and the admin
    /// API's [`super::AgentNotice`].
    pub fn agent_events(tenant_id: u64) -> String {
        format!("kakeru:t{tenant_id}:agent:events")
    }
    /// Admin API -> every dialer host: [`super::DialerNotice`] (all tenants; read with `XREAD`).
    pub fn dialer_notices() -> String {
        "kakeru:dialer:notices".to_string()
    }
    /// Dead letters of a stream.
    pub fn dead(stream: &str) -> String {
        format!("{stream}:dead")
    }
}
