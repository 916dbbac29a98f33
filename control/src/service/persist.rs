//! What the control service writes to SQL, as one transaction per applied batch (group commit):
//! the message ids applied, the agent transitions, call-record and wrap-up-record changes, and the
//! state of every agent the batch touched. And what a restarted service reads back. The statements
//! are `store::control`'s; this module turns the service's types into its rows and back.

use std::collections::{BTreeMap, HashMap};

use store::Db;

use crate::agent::parking::ParkedCall;
use crate::agent::{AgentId, AgentState, CallId, Cause, Transition};
use bus::MessageId;
use wallboard::{Counts, StoredCounts, BUCKET_24H_MS, BUCKET_30D_MS};
use wire::agent::{AgentConfig, AgentView};
use wire::{CallJobId, CampaignId, DialingGroupId, Keyed, LeadId, ParkChange};

/// One call-record (or wrap-up-record) change, in apply order.
#[derive(Clone, Debug, PartialEq)]
pub enum CallOp {
    /// The customer was bridged to the agent: the call record's `bridged_at` (the first bridge: a
    /// transferred call keeps it) and `agent_user_id` (the last agent) (control's columns; the
    /// dialer writes the rest of the row).
    Bridged { call_id: CallId, agent_id: AgentId, at_ms: u64 },
    /// A bridged call ended: its wrap-up record, unsaved, result 未入力 (`no_entry`).
    WrapUpRow { call_id: CallId, agent_id: AgentId, at_ms: u64 },
    /// The agent keyed a result or a recall on the phone (DTMF result entry): the call's unsaved
    /// wrap-up record is saved with it.
    Keyed { call_id: CallId, agent_id: AgentId, keyed: Keyed, at_ms: u64 },
    /// パーク保留: the call was parked under `number` by `agent_id` (a `parked_calls` row).
    Parked { call_id: CallId, number: u16, agent_id: AgentId, at_ms: u64 },
    /// The open park `number` ended: picked up (by `agent_id`), hung up, or returned.
    ParkEnded { number: u16, outcome: ParkChange, agent_id: Option<AgentId>, at_ms: u64 },
    /// A pick-up control refused: the API's claim of the open park `number` is undone.
    ParkUnclaimed { number: u16 },
}

/// An agent's row in `control_agents`: their call job and state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgentRow {
    pub campaign_id: Option<CampaignId>,
    pub call_job_id: Option<CallJobId>,
    pub dialing_group_id: Option<DialingGroupId>,
    pub view: AgentView,
    pub config: AgentConfig,
}

/// The writes of one batch.
#[derive(Debug, Default)]
pub struct BatchWrites {
    pub applied: Vec<MessageId>,
    pub transitions: Vec<(Transition, String)>,
    pub calls: Vec<CallOp>,
    /// The agents touched, as they are after the batch.
    pub agents: BTreeMap<AgentId, AgentRow>,
}

impl BatchWrites {
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.transitions.is_empty() && self.calls.is_empty() && self.agents.is_empty()
    }
}

/// Persistence errors (the service stops on them: crash-only, it restarts from what was committed).
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bad stored row: {0}")]
    BadRow(String),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("the tenant's control lease is held by another control (this one's commit is refused)")]
    Fenced,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn reason(s: &AgentState) -> Option<i64> {
    match s {
        AgentState::Paused { reason_id } => Some(i64::from(reason_id.0)),
        _ => None,
    }
}

fn cause_name(c: &Cause) -> (&'static str, Option<i64>) {
    match c {
        Cause::Login => ("login", None),
        Cause::AgentLegUp => ("agent_leg_up", None),
        Cause::AgentLegDown => ("agent_leg_down", None),
        Cause::PhoneUnreachable => ("phone_unreachable", None),
        Cause::Offer => ("offer", None),
        Cause::Declined => ("declined", None),
        Cause::PreviewDial => ("preview_dial", None),
        Cause::NotDialled => ("not_dialled", None),
        Cause::NoAnswer => ("no_answer", None),
        Cause::Bridged => ("bridged", None),
        Cause::CustomerEnded => ("customer_ended", None),
        Cause::Hold => ("hold", None),
        Cause::Unhold => ("unhold", None),
        Cause::Transferred => ("transferred", None),
        Cause::Parked => ("parked", None),
        Cause::WrapUpSaved => ("wrap_up_saved", None),
        Cause::AcwTimeout => ("acw_timeout", None),
        Cause::GoReady => ("go_ready", None),
        Cause::PauseRequested => ("pause_requested", None),
        Cause::LogOffRequested => ("log_off_requested", None),
        Cause::IdleTimeout => ("idle_timeout", None),
        Cause::PauseReleased => ("pause_released", None),
        Cause::Supervisor { supervisor_id } => ("supervisor", Some(i(supervisor_id.0))),
    }
}

/// Writes one batch in one transaction.
/// With a `fence` (holder, token), nothing is written unless that holder still holds the tenant's
/// control lease with that token (the lease row locked to the commit).
pub async fn commit(
    db: &Db,
    tenant_id: u64,
    now_ms: u64,
    w: &BatchWrites,
    fence: Option<&(String, i64)>,
) -> Result<(), PersistError> {
    use store::control::{AgentRow as Row, Batch, CallWrite, Committed, Fence, TransitionRow};
    let applied: Vec<String> = w.applied.iter().map(ToString::to_string).collect();
    let transitions: Vec<TransitionRow<'_>> = w
        .transitions
        .iter()
        .map(|(tr, msg)| {
            let (cause, supervisor_id) = cause_name(&tr.cause);
            TransitionRow {
                agent_user_id: i(tr.agent_id.0),
                from_state: tr.from.name(),
                to_state: tr.to.name(),
                from_reason_id: reason(&tr.from),
                to_reason_id: reason(&tr.to),
                cause,
                supervisor_id,
                dialer_call_id: tr.call_id.map(|c| i(c.0)),
                at_ms: i(tr.at_ms),
                message_id: msg.as_str(),
            }
        })
        .collect();
    let calls: Vec<CallWrite> = w.calls.iter().map(call_write).collect();
    let agents = w
        .agents
        .iter()
        .map(|(id, a)| {
            Ok(Row {
                agent_user_id: i(id.0),
                campaign_id: a.campaign_id.map(|c| i(c.0)),
                call_job_id: a.call_job_id.map(|c| i(c.0)),
                dialing_group_id: a.dialing_group_id.map(|c| i(c.0)),
                view: serde_json::to_string(&a.view)?,
                config: serde_json::to_string(&a.config)?,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    let batch = Batch { applied: &applied, transitions: &transitions, calls: &calls, agents: &agents };
    let fence = fence.map(|(holder, token)| Fence { holder, token: *token });
    match store::control::commit(db, i(tenant_id), i(now_ms), batch, fence).await? {
        Committed::Done => Ok(()),
        Committed::Fenced => Err(PersistError::Fenced),
    }
}

fn call_write(op: &CallOp) -> store::control::CallWrite {
    use store::control::CallWrite;
    match *op {
        CallOp::Bridged { call_id, agent_id, at_ms } => {
            CallWrite::Bridged { dialer_call_id: i(call_id.0), agent_user_id: i(agent_id.0), at_ms: i(at_ms) }
        }
        CallOp::WrapUpRow { call_id, agent_id, at_ms } => {
            CallWrite::WrapUpRow { dialer_call_id: i(call_id.0), agent_user_id: i(agent_id.0), at_ms: i(at_ms) }
        }
        CallOp::Parked { call_id, number, agent_id, at_ms } => CallWrite::Parked {
            dialer_call_id: i(call_id.0),
            number: i64::from(number),
            parked_by: i(agent_id.0),
            at_ms: i(at_ms),
        },
        CallOp::ParkEnded { number, outcome, agent_id, at_ms } => CallWrite::ParkEnded {
            number: i64::from(number),
            outcome: match outcome {
                ParkChange::PickedUp => "picked_up",
                ParkChange::HungUp => "hung_up",
                ParkChange::Returned | ParkChange::Parked => "returned",
            },
            picked_by: agent_id.map(|a| i(a.0)),
            at_ms: i(at_ms),
        },
        CallOp::ParkUnclaimed { number } => CallWrite::ParkUnclaimed { number: i64::from(number) },
        CallOp::Keyed { call_id, agent_id, keyed, at_ms } => {
            let save = match keyed {
                Keyed::Result { number } => store::records::WrapupSave {
                    interlocutor: None,
                    result: number.to_string(),
                    other_tel: None,
                    next_action: "continue".into(),
                    recall_at: None,
                    recall_to_agent: false,
                    memo: String::new(),
                    state_after: "continue".into(),
                },
                Keyed::Recall { after_ms } => store::records::WrapupSave {
                    interlocutor: None,
                    result: "no_entry".into(),
                    other_tel: None,
                    next_action: "recall".into(),
                    recall_at: Some(i(at_ms.saturating_add(after_ms))),
                    recall_to_agent: false,
                    memo: String::new(),
                    state_after: "continue".into(),
                },
            };
            CallWrite::Keyed { dialer_call_id: i(call_id.0), agent_user_id: i(agent_id.0), save, at_ms: i(at_ms) }
        }
    }
}

fn id_of(v: Option<i64>) -> Option<u64> {
    v.and_then(|c| u64::try_from(c).ok())
}

/// The tenant's agents, as committed.
pub async fn load_agents(db: &Db, tenant_id: u64, limit: usize) -> Result<Vec<AgentRow>, PersistError> {
    let rows = store::control::agents(db, i(tenant_id), i(limit as u64)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(AgentRow {
            campaign_id: id_of(r.campaign_id).map(CampaignId),
            call_job_id: id_of(r.call_job_id).map(CallJobId),
            dialing_group_id: id_of(r.dialing_group_id).map(DialingGroupId),
            view: serde_json::from_str(&r.view)?,
            config: serde_json::from_str(&r.config)?,
        });
    }
    Ok(out)
}

/// The wallboard's rolling counts from the call records: 5-minute buckets since `fine_since_ms`
/// and 1-hour buckets since `coarse_since_ms`, by answer time.
pub async fn load_wallboard_counts(
    db: &Db,
    tenant_id: u64,
    fine_since_ms: u64,
    coarse_since_ms: u64,
) -> Result<Vec<StoredCounts>, PersistError> {
    let mut out = Vec::new();
    for (fine, bucket, since) in [(true, BUCKET_24H_MS, fine_since_ms), (false, BUCKET_30D_MS, coarse_since_ms)] {
        for r in store::control::answered_by_bucket(db, i(tenant_id), i(bucket), i(since)).await? {
            let n = |v: i64| id_of(Some(v)).unwrap_or(0);
            let Some(campaign) = id_of(Some(r.campaign_id)) else { continue };
            out.push(StoredCounts {
                campaign_id: CampaignId(campaign),
                at_ms: n(r.bucket) * bucket,
                fine,
                counts: Counts { answered: n(r.answered), connected: n(r.connected), abandoned: n(r.abandoned) },
            });
        }
    }
    Ok(out)
}

/// `(key, n)` pairs of the store as unsigned ids and counts (a negative key is no id: skipped).
fn counted(rows: Vec<(i64, i64)>) -> impl Iterator<Item = (u64, u64)> {
    rows.into_iter().filter_map(|(k, n)| Some((id_of(Some(k))?, id_of(Some(n)).unwrap_or(0))))
}

/// Answered calls ended since `since_ms`, per campaign.
pub async fn load_calls_since(db: &Db, tenant_id: u64, since_ms: u64) -> Result<Vec<(CampaignId, u64)>, PersistError> {
    let rows = store::control::calls_since(db, i(tenant_id), i(since_ms)).await?;
    Ok(counted(rows).map(|(k, n)| (CampaignId(k), n)).collect())
}

/// Conversations (bridged calls that ended) since `since_ms`, per agent.
pub async fn load_agent_calls_since(
    db: &Db,
    tenant_id: u64,
    since_ms: u64,
) -> Result<Vec<(AgentId, u64)>, PersistError> {
    let rows = store::control::agent_calls_since(db, i(tenant_id), i(since_ms)).await?;
    Ok(counted(rows).map(|(k, n)| (AgentId(k), n)).collect())
}

/// The tenant's time zone name.
pub async fn load_time_zone(db: &Db, tenant_id: u64) -> Result<String, PersistError> {
    Ok(store::control::time_zone(db, i(tenant_id)).await?.unwrap_or_else(|| "UTC".to_owned()))
}

/// The newest applied message ids (the dedup window of a restarted service).
pub async fn load_applied(db: &Db, tenant_id: u64, limit: usize) -> Result<Vec<MessageId>, PersistError> {
    let rows = store::control::applied(db, i(tenant_id), i(limit as u64)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for s in rows {
        let id = s.parse::<ulid::Ulid>().map_err(|e| PersistError::BadRow(format!("message id {s:?}: {e}")))?;
        out.push(MessageId(id));
    }
    Ok(out)
}

/// Customers answered and not yet bridged nor ended: (call, campaign, answered at), oldest first.
pub async fn load_waiting(
    db: &Db,
    tenant_id: u64,
    limit: usize,
) -> Result<Vec<(CallId, CampaignId, u64)>, PersistError> {
    let rows = store::control::waiting(db, i(tenant_id), i(limit as u64)).await?;
    Ok(rows
        .into_iter()
        .map(|w| {
            (
                CallId(u64::try_from(w.dialer_call_id).unwrap_or(0)),
                CampaignId(id_of(w.campaign_id).unwrap_or(0)),
                id_of(w.answered_at).unwrap_or(0),
            )
        })
        .collect())
}

/// パーク保留: the open parks (a restarted service keeps them, numbers and limits), with each
/// parked call's campaign (where it goes back when nobody took it and its agent is busy).
pub async fn load_parked(db: &Db, tenant_id: u64) -> Result<Vec<(u16, ParkedCall, Option<CampaignId>)>, PersistError> {
    let mut out = Vec::new();
    for r in store::control::open_parks(db, i(tenant_id)).await? {
        let (Ok(number), Ok(call), Ok(by)) =
            (u16::try_from(r.number), u64::try_from(r.dialer_call_id), u64::try_from(r.parked_by))
        else {
            continue;
        };
        let p = ParkedCall { call_id: CallId(call), by: AgentId(by), at_ms: u64::try_from(r.parked_at).unwrap_or(0) };
        out.push((number, p, id_of(r.campaign_id).map(CampaignId)));
    }
    Ok(out)
}

/// The lead of every customer call not ended yet (a restarted service publishes them with its
/// agents' transitions again).
pub async fn load_open_call_leads(
    db: &Db,
    tenant_id: u64,
    limit: usize,
) -> Result<HashMap<CallId, LeadId>, PersistError> {
    let rows = store::control::open_call_leads(db, i(tenant_id), i(limit as u64)).await?;
    Ok(rows
        .into_iter()
        .map(|(call, lead)| (CallId(u64::try_from(call).unwrap_or(0)), LeadId(u64::try_from(lead).unwrap_or(0))))
        .collect())
}

/// The tenant's pause reasons.
pub async fn load_pause_reasons(db: &Db, tenant_id: u64) -> Result<Vec<u32>, PersistError> {
    let rows = store::control::pause_reason_ids(db, i(tenant_id)).await?;
    Ok(rows.into_iter().filter_map(|id| u32::try_from(id).ok()).collect())
}

/// Deletes applied ids older than `before_ms` (they can no longer be redelivered: the entries were
/// acked long ago). Keeps the table bounded.
pub async fn prune_applied(db: &Db, tenant_id: u64, before_ms: u64) -> Result<u64, PersistError> {
    Ok(store::control::prune_applied(db, i(tenant_id), i(before_ms)).await?)
}

/// Tenant ids, ascending.
pub async fn tenant_ids(db: &Db, limit: usize) -> Result<Vec<u64>, PersistError> {
    Ok(store::dialing::tenant_ids(db, i(limit as u64)).await?)
}
