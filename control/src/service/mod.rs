//! The control service (`kakeru control`): the single owner of agent state. One [`Service`] per
//! tenant: it consumes the API's commands and the shards' events, drives the tenant's
//! [`Floor`], matches answered customers to ready agents, publishes transitions and shard commands,
//! persists what must survive, and feeds the wallboard.
//!
//! # Run loop
//! Two reader tasks (commands, shard events) read their stream in its consumer group and hand
//! batches to the one owner task over a bounded channel. A batch then passes three stages, each a
//! task of its own, in the owner's order:
//! 1. the **owner** skips message ids it already applied (dedup window, reloaded from
//!    `control_applied` at start), applies each message to the floor and collects the floor's
//!    events, the SQL writes, the acks and the wallboard tiles changed;
//! 2. the **publisher** publishes the events to `agent:events` (envelope ids derived from the source
//!    message id, so a redelivered message republishes the same ids and readers skip them);
//! 3. the **committer** commits the SQL writes, the applied ids and the touched agents' state in
//!    one transaction, then acks the entries, then shows the wallboard changes.
//!
//! So while batch N is committed, N+1's events are published and N+2 is applied; batches that
//! queued behind a slow stage are merged (one publish pipeline, one transaction, one ack): the
//! busier the service, the larger its group commits. Nothing of a batch is acked or shown on the
//! wallboard before it is committed, and its events are published before it is committed.
//!
//! A crash anywhere leaves the entries pending; the restarted service rebuilds its floor from
//! `control_agents`, reloads the applied ids, claims its pending entries and skips what it had
//! committed: nothing lost, nothing applied twice. A failed commit or publish stops the service
//! (crash-only): its in-memory state may be ahead of what was committed, so it must restart from SQL.
//!
//! # The match (the 2-second rule)
//! `customer_answered` is matched here, in the owner task, in the same step that applies it:
//! [`Floor::offer_to_longest_ready_where`] picks the longest-idle ready agent of the call's campaign
//! and reserves it (ready -> ringing with the call) before any other message is applied, so an agent
//! can never be offered two customers; the `bridge` command is published in the same batch. With
//! no ready agent the customer waits (FIFO per tenant) and is offered as soon as an agent of its
//! campaign becomes ready. A released customer (agent did not answer, declined, lost the phone) is
//! put back at the head of the queue. The shard abandons a customer after the campaign's wait
//! timeout and reports `call_ended`, which takes it off the queue.

mod committer;
mod gauges;
pub mod persist;

pub use persist::{AgentRow, BatchWrites, CallOp, PersistError};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use self::committer::{Applied, CommitJob, Committer};

use crate::agent::parking::Parking;
use crate::agent::{
    command_input, shard_input, AgentError, AgentId, AgentState, CallId, Command, Event, Floor, FloorLimits, Input,
    OfferRefused, PauseReasonId,
};
use bus::{Bus, BusError, DedupState, Deduper, Delivery, EntryId, Envelope, MessageId};
use wallboard::mirror::MirrorWriter;
use wallboard::{Feed, Wallboard};
use wire::{
    streams, AgentNotice, ApiCommand, CallJobId, CampaignId, DialingGroupId, LeadId, NotDialledReason, ParkChange,
    ShardEvent, SystemResult,
};

/// Settings of one tenant's control service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub tenant_id: u64,
    /// Consumer group on both input streams.
    pub group: String,
    /// Consumer name, unique per process (host + pid).
    pub consumer: String,
    /// Most entries per read.
    pub batch: usize,
    /// How long a read blocks.
    pub block_ms: u64,
    /// Entries pending this long are taken over (from a dead consumer).
    pub min_idle_ms: u64,
    /// Applied ids remembered in memory (and reloaded at start).
    pub dedup_window: usize,
    pub floor: FloorLimits,
    /// Most customers waiting for an agent; beyond it a new one is released at once.
    pub max_waiting: usize,
    /// Applied ids older than this are pruned from `control_applied`.
    pub applied_retention_ms: u64,
    /// Mirror the wallboard feed on the bus (stream and snapshot key, see
    /// [`wallboard::mirror`]) for API processes elsewhere. Needed when the bus is shared.
    pub mirror_wallboard: bool,
    /// The tenant's control lease this service runs under (`kakeru control` on leases): holder and
    /// fencing token. Every commit first checks both in its transaction; a commit of a holder
    /// whose lease was taken is refused ([`persist::PersistError::Fenced`]) and the service stops.
    pub fence: Option<(String, i64)>,
    /// パーク保留: how long a parked call waits for a pick-up before it is returned (offered to the
    /// agent who parked it if ready, else queued for its campaign's agents). Default 5 minutes.
    pub park_limit_ms: u64,
}

impl ServiceConfig {
    pub fn new(tenant_id: u64, consumer: impl Into<String>) -> Self {
        ServiceConfig {
            tenant_id,
            group: "control".into(),
            consumer: consumer.into(),
            batch: 1_000,
            block_ms: 1_000,
            min_idle_ms: 30_000,
            dedup_window: 200_000,
            floor: FloorLimits::default(),
            max_waiting: 100_000,
            applied_retention_ms: 7 * 86_400_000,
            mirror_wallboard: false,
            fence: None,
            park_limit_ms: 300_000,
        }
    }
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("storage: {0}")]
    Persist(#[from] PersistError),
    #[error("agent state: {0}")]
    Agent(#[from] AgentError),
    #[error("a reader task ended")]
    ReaderGone,
    #[error("the committer task ended: {0}")]
    CommitterGone(String),
}

/// Counters of a running service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    pub applied: u64,
    pub duplicates: u64,
    /// Inputs the floor refused (counted, acked: a refused input changes nothing).
    pub refused: u64,
    pub dead: u64,
    pub matched: u64,
    pub batches: u64,
    pub events_published: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Commands,
    ShardEvents,
}

/// The tenant's two input streams, by [`Source`].
#[derive(Clone, Debug)]
struct InputStreams {
    commands: String,
    events: String,
}

impl InputStreams {
    fn new(tenant_id: u64) -> Self {
        InputStreams { commands: streams::control_commands(tenant_id), events: streams::shard_events(tenant_id) }
    }

    fn of(&self, s: Source) -> &str {
        match s {
            Source::Commands => &self.commands,
            Source::ShardEvents => &self.events,
        }
    }
}

struct ReadBatch {
    source: Source,
    deliveries: Vec<Delivery>,
}

/// An agent's call job, from `start_call_job`.
#[derive(Debug, Clone, Copy)]
struct Job {
    campaign_id: CampaignId,
    call_job_id: Option<CallJobId>,
    dialing_group_id: Option<DialingGroupId>,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    call_id: CallId,
    campaign_id: CampaignId,
}

/// Who asked for a パーク応答: the API (it claimed the park in `parked_calls` first) or the
/// agent's phone (keys, no claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PickUpBy {
    Api,
    Keys,
}

/// One tenant's control service. See the module docs.
pub struct Service<B: Bus> {
    cfg: ServiceConfig,
    bus: B,
    db: store::Db,
    feed: Arc<Feed>,
    floor: Floor,
    /// The call job each agent works (or last worked).
    jobs: HashMap<AgentId, Job>,
    waiting: VecDeque<Waiting>,
    waiting_set: HashSet<CallId>,
    /// Campaign of each answered customer call still open (for releases and the wallboard).
    call_campaign: HashMap<CallId, CampaignId>,
    /// The lead of each customer call still open that control heard of (answered, or a placed
    /// preview call): published with the agent's transitions ([`crate::agent::Transition::lead_id`]).
    call_lead: HashMap<CallId, LeadId>,
    /// The lead each agent asked to dial (preview), until the call is placed or refused.
    preview_lead: HashMap<AgentId, LeadId>,
    /// Why the dialer refused an agent's preview dial, until its transition is published.
    not_dialled: HashMap<AgentId, NotDialledReason>,
    /// Leads of calls that ended in the batch being applied (cleared after it).
    ended_lead: HashMap<CallId, LeadId>,
    /// パーク保留: the tenant's parked calls by park number.
    parking: Parking,
    /// Notices for the agents' screens made while applying, published with the floor's events.
    notices: Vec<AgentNotice>,
    dedup: Deduper,
    wallboard: Wallboard,
    /// Commands control issues itself (hang up on the agent's request, release when the queue is
    /// full), published with the floor's events.
    pending_commands: VecDeque<Command>,
    stats: ServiceStats,
    /// Until `run` hands it to the committer.
    mirror: Option<MirrorWriter>,
    /// The committer's queue, while `run` runs.
    commits: Option<mpsc::Sender<CommitJob>>,
    inputs: InputStreams,
    out_stream: String,
    gauges: gauges::ServiceGauges,
    /// Seconds ticked (the lag is sampled every [`LAG_SAMPLE_SECONDS`]).
    seconds: u64,
}

/// Jobs queued before each stage of the pipeline (see the module docs).
const PIPELINE_DEPTH: usize = 64;

/// How often the service samples its consumer groups' lag (a round trip per stream on Redis).
const LAG_SAMPLE_SECONDS: u64 = 5;

/// Wall clock, Unix ms (driver code).
fn now_ms() -> u64 {
    u64::try_from(store::now_ms()).unwrap_or(0)
}

/// The envelope id of the `n`th event produced by message `src`: the same on every redelivery.
fn derived_id(src: MessageId, n: u32) -> MessageId {
    let mut x = src.0.random() ^ (u128::from(n) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    x ^= x >> 61;
    MessageId(ulid::Ulid::from_parts(src.0.timestamp_ms(), x & ((1u128 << 80) - 1)))
}

impl<B: Bus + Clone + 'static> Service<B> {
    /// Opens the service: loads the tenant's pause reasons, the committed agents, the applied-id
    /// window and the waiting customers, and creates the consumer groups. `bus` publishes and acks;
    /// the readers get their own handles from `reader` (one per stream: blocking reads need their
    /// own connection on Redis).
    pub async fn open(bus: B, db: store::Db, cfg: ServiceConfig, feed: Arc<Feed>) -> Result<Self, ServiceError> {
        let t = cfg.tenant_id;
        let reasons = persist::load_pause_reasons(&db, t).await?;
        let mut floor = Floor::new(cfg.floor, reasons.into_iter().map(PauseReasonId));
        let mut wallboard = Wallboard::new();
        let now = now_ms();
        let tz = persist::load_time_zone(&db, t).await?;
        let offset = store::tenancy::parse_tz(&tz).map_or(0, |z| store::tenancy::utc_offset_ms(z, now as i64));
        wallboard.set_utc_offset_ms(offset);
        let mut jobs = HashMap::new();
        for a in persist::load_agents(&db, t, cfg.floor.max_agents).await? {
            floor.restore(a.view.into(), a.config.into())?;
            if let Some(campaign_id) = a.campaign_id {
                jobs.insert(
                    a.view.agent_id,
                    Job { campaign_id, call_job_id: a.call_job_id, dialing_group_id: a.dialing_group_id },
                );
            }
            wallboard.set_agent(a.view.agent_id, a.view.state, a.view.since_ms, a.campaign_id, a.dialing_group_id);
        }
        // The wallboard's counts, rebuilt from the call records (it keeps no state of its own).
        let day = wallboard.day_start(now);
        let fine_since = now.saturating_sub(86_400_000);
        let coarse_since = now.saturating_sub(30 * 86_400_000);
        wallboard.restore_counts(&persist::load_wallboard_counts(&db, t, fine_since, coarse_since).await?);
        for (c, n) in persist::load_calls_since(&db, t, day).await? {
            wallboard.restore_calls_today(c, day, n);
        }
        for (a, n) in persist::load_agent_calls_since(&db, t, day).await? {
            wallboard.restore_agent_calls(a, day, n);
        }
        let mut dedup = Deduper::new(cfg.dedup_window);
        for id in persist::load_applied(&db, t, cfg.dedup_window).await? {
            dedup.mark_applied(id);
        }
        let mut waiting = VecDeque::new();
        let mut waiting_set = HashSet::new();
        let mut call_campaign = HashMap::new();
        for (call_id, campaign_id, at) in persist::load_waiting(&db, t, cfg.max_waiting).await? {
            call_campaign.insert(call_id, campaign_id);
            wallboard.customer_answered(at, call_id, campaign_id);
            if floor.call_owner(call_id).is_none() && waiting_set.insert(call_id) {
                waiting.push_back(Waiting { call_id, campaign_id });
            }
        }
        let call_lead = persist::load_open_call_leads(&db, t, cfg.max_waiting + cfg.floor.max_agents).await?;
        let mut parking = Parking::new(cfg.park_limit_ms);
        let parked = persist::load_parked(&db, t).await?;
        for (_, p, campaign) in &parked {
            // A park that reaches its limit while its agent is busy goes to its campaign's queue.
            if let Some(c) = campaign {
                call_campaign.insert(p.call_id, *c);
            }
        }
        parking.restore(parked.into_iter().map(|(n, p, _)| (n, p)));
        let inputs = InputStreams::new(t);
        let cfg_group = cfg.group.clone();
        for source in [Source::Commands, Source::ShardEvents] {
            bus.ensure_group(inputs.of(source), &cfg.group).await?;
        }
        let mut s = Service {
            out_stream: streams::agent_events(t),
            inputs,
            cfg,
            bus,
            db,
            feed,
            floor,
            jobs,
            waiting,
            waiting_set,
            call_campaign,
            call_lead,
            preview_lead: HashMap::new(),
            not_dialled: HashMap::new(),
            ended_lead: HashMap::new(),
            parking,
            notices: Vec::new(),
            dedup,
            wallboard,
            pending_commands: VecDeque::new(),
            stats: ServiceStats::default(),
            mirror: None,
            commits: None,
            gauges: gauges::ServiceGauges::new(&cfg_group),
            seconds: 0,
        };
        if s.cfg.mirror_wallboard {
            s.mirror = Some(MirrorWriter::new(t));
        }
        // Every tile, once: a follower that sees this service's first changes has the whole board.
        let tiles = s.wallboard.take_changes(now);
        committer::show(&s.bus, &s.feed, &mut s.mirror, now, tiles).await?;
        Ok(s)
    }

    pub fn floor(&self) -> &Floor {
        &self.floor
    }

    pub fn stats(&self) -> ServiceStats {
        self.stats
    }

    /// Runs until `shutdown` resolves (returns the counters) or a fault stops it. `readers` are two
    /// bus handles for the two blocking readers (for Redis: separate connections).
    pub async fn run(
        mut self,
        readers: [B; 2],
        shutdown: impl Future<Output = ()>,
    ) -> Result<ServiceStats, ServiceError> {
        // The publisher and committer stages, behind bounded queues: the owner is at most
        // `PIPELINE_DEPTH` batches ahead of the publisher, and it of the committer.
        let (publish_tx, publish_rx) = mpsc::channel::<CommitJob>(PIPELINE_DEPTH);
        let (commit_tx, commit_rx) = mpsc::channel::<CommitJob>(PIPELINE_DEPTH);
        let publisher = tokio::spawn(committer::publish(
            self.bus.clone(),
            self.out_stream.clone(),
            self.cfg.batch,
            publish_rx,
            commit_tx,
        ));
        let committer = Committer {
            bus: self.bus.clone(),
            db: self.db.clone(),
            feed: self.feed.clone(),
            mirror: self.mirror.take(),
            tenant_id: self.cfg.tenant_id,
            group: self.cfg.group.clone(),
            inputs: self.inputs.clone(),
            fence: self.cfg.fence.clone(),
        };
        let committer = tokio::spawn(committer.run(commit_rx));
        self.commits = Some(publish_tx);
        let result = self.run_owner(readers, shutdown).await;
        // Whatever was applied is committed before the service returns (or the first fault is).
        self.commits = None;
        for stage in [publisher, committer] {
            match stage.await {
                Ok(r) => r?,
                Err(e) => return Err(ServiceError::CommitterGone(e.to_string())),
            }
        }
        result
    }

    async fn run_owner(
        &mut self,
        readers: [B; 2],
        shutdown: impl Future<Output = ()>,
    ) -> Result<ServiceStats, ServiceError> {
        // First, everything left pending by a previous run (ours, killed before its ack): claimed
        // and applied batch by batch, each acked before the next claim, so none is claimed twice.
        for source in [Source::Commands, Source::ShardEvents] {
            loop {
                let stream = self.inputs.of(source).to_owned();
                let b = self.bus.claim_stale(&stream, &self.cfg.group, &self.cfg.consumer, 0, self.cfg.batch).await?;
                if b.is_empty() {
                    break;
                }
                tracing::info!(%stream, entries = b.len(), "applying entries left pending");
                self.process(vec![ReadBatch { source, deliveries: b }]).await?;
                self.flush().await?;
            }
        }
        let (tx, mut rx) = mpsc::channel::<Result<ReadBatch, BusError>>(4);
        let [r1, r2] = readers;
        let mut tasks = tokio::task::JoinSet::new();
        for (bus, source) in [(r1, Source::Commands), (r2, Source::ShardEvents)] {
            tasks.spawn(reader(bus, self.inputs.of(source).to_owned(), source, self.cfg.clone(), tx.clone()));
        }
        drop(tx);
        tokio::pin!(shutdown);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(60));
        let mut second = tokio::time::interval(Duration::from_secs(1));
        second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Closed when the committer stopped on a fault: the owner stops too (and `run` returns the
        // committer's error).
        let commits = self.commits.clone().ok_or(ServiceError::CommitterGone("not running".into()))?;
        let result = loop {
            let timer = match (self.floor.poll_timeout(), self.parking.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match timer {
                    Some(t) => tokio::time::sleep(Duration::from_millis(t.saturating_sub(now_ms()))).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(self.stats),
                () = commits.closed() => break Err(ServiceError::CommitterGone("stopped".into())),
                msg = rx.recv() => match msg {
                    Some(Ok(first)) => {
                        let mut batches = vec![first];
                        while batches.len() < 8 {
                            match rx.try_recv() {
                                Ok(Ok(b)) => batches.push(b),
                                Ok(Err(e)) => tracing::warn!(error = %e, "reader error"),
                                Err(_) => break,
                            }
                        }
                        if let Err(e) = self.process(batches).await {
                            break Err(e);
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "reader error; it retries"),
                    None => break Err(ServiceError::ReaderGone),
                },
                () = sleep => {
                    if let Err(e) = self.process(Vec::new()).await {
                        break Err(e);
                    }
                }
                _ = second.tick() => {
                    if let Err(e) = self.every_second().await {
                        break Err(e);
                    }
                }
                _ = housekeeping.tick() => {
                    if let Err(e) = self.housekeeping().await {
                        tracing::warn!(error = %e, "housekeeping failed");
                    }
                }
            }
        };
        tasks.abort_all();
        result
    }

    /// Queues a job for the committer (waiting while its queue is full).
    async fn queue(&self, job: CommitJob) -> Result<(), ServiceError> {
        let tx = self.commits.as_ref().ok_or(ServiceError::CommitterGone("not running".into()))?;
        // A send fails only when the committer stopped: `run` returns its error.
        tx.send(job).await.map_err(|_| ServiceError::CommitterGone("stopped".into()))
    }

    /// Waits until everything queued so far is committed and acked.
    async fn flush(&self) -> Result<(), ServiceError> {
        let (done_tx, done) = oneshot::channel();
        self.queue(CommitJob::Flush(done_tx)).await?;
        done.await.map_err(|_| ServiceError::CommitterGone("stopped".into()))
    }

    /// Wallboard upkeep: stale dialer figures dropped, the mirror's snapshot key rewritten.
    async fn every_second(&mut self) -> Result<(), ServiceError> {
        let now = now_ms();
        self.wallboard.expire(now);
        let tiles = self.wallboard.take_changes(now);
        self.queue(CommitJob::Wallboard { now, tiles }).await?;
        self.gauges.count_agents(&self.floor);
        if self.seconds.is_multiple_of(LAG_SAMPLE_SECONDS) {
            self.sample_lag().await;
        }
        self.seconds += 1;
        Ok(())
    }

    /// The lag of this service's groups on its two input streams, into the gauges. A failed sample
    /// keeps the last value (the readers report a bus that is down).
    async fn sample_lag(&mut self) {
        for (i, source) in [Source::Commands, Source::ShardEvents].into_iter().enumerate() {
            match self.bus.lag(self.inputs.of(source), &self.cfg.group).await {
                Ok(Some(n)) => self.gauges.lag[i].set(n as f64),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "sampling the consumer group lag"),
            }
        }
    }

    async fn housekeeping(&mut self) -> Result<(), ServiceError> {
        let t = self.cfg.tenant_id;
        let reasons = persist::load_pause_reasons(&self.db, t).await?;
        self.floor.set_pause_reasons(reasons.into_iter().map(PauseReasonId));
        let before = now_ms().saturating_sub(self.cfg.applied_retention_ms);
        persist::prune_applied(&self.db, t, before).await?;
        Ok(())
    }

    /// Applies batches (and due timers) and queues their effects for the committer.
    async fn process(&mut self, batches: Vec<ReadBatch>) -> Result<(), ServiceError> {
        let now = now_ms();
        let mut w = BatchWrites::default();
        let mut out: Vec<Envelope> = Vec::new();
        let mut acks: Vec<(Source, EntryId)> = Vec::new();
        let mut dead: Vec<(Source, Delivery, String)> = Vec::new();
        // Timers first: they are due already.
        self.floor.handle_timeout(now);
        self.return_parked(now, &mut w);
        self.drain(now, None, &mut w, &mut out)?;
        for b in batches {
            for d in b.deliveries {
                if self.dedup.is_applied(&d.envelope.id) {
                    self.stats.duplicates += 1;
                    acks.push((b.source, d.entry_id));
                    continue;
                }
                if d.envelope.tenant_id != self.cfg.tenant_id {
                    dead.push((b.source, d, "message of another tenant".into()));
                    continue;
                }
                let r = match b.source {
                    Source::Commands => match d.envelope.decode::<ApiCommand>() {
                        Ok(c) => {
                            self.apply_command(now, &c, &mut w);
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                    Source::ShardEvents => match d.envelope.decode::<ShardEvent>() {
                        Ok(e) => {
                            self.apply_shard_event(now, &e, &mut w);
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                };
                match r {
                    Ok(()) => {
                        self.match_waiting(now);
                        self.drain(now, Some(d.envelope.id), &mut w, &mut out)?;
                        self.dedup.mark_applied(d.envelope.id);
                        w.applied.push(d.envelope.id);
                        self.stats.applied += 1;
                        acks.push((b.source, d.entry_id));
                    }
                    Err(reason) => dead.push((b.source, d, reason)),
                }
            }
        }
        // Timers may have freed agents for waiting customers.
        self.match_waiting(now);
        self.drain(now, None, &mut w, &mut out)?;
        self.ended_lead.clear();
        let tiles = self.wallboard.take_changes(now);
        if w.is_empty() && out.is_empty() && acks.is_empty() && dead.is_empty() && tiles.is_empty() {
            return Ok(());
        }
        self.stats.events_published += out.len() as u64;
        self.stats.dead += dead.len() as u64;
        self.stats.batches += 1;
        // Published, committed, acked and shown by the committer, while the next batch is applied.
        self.queue(CommitJob::Batch(Box::new(Applied { now, writes: w, events: out, dead, acks, tiles }))).await
    }

    /// The control_agents row of an agent as the floor has them now.
    fn agent_row(&self, agent_id: AgentId) -> Option<AgentRow> {
        let view = self.floor.agent(agent_id)?;
        let config = self.floor.agent_config(agent_id)?;
        let job = self.jobs.get(&agent_id);
        Some(AgentRow {
            campaign_id: job.map(|j| j.campaign_id),
            call_job_id: job.and_then(|j| j.call_job_id),
            dialing_group_id: job.and_then(|j| j.dialing_group_id),
            view: view.into(),
            config: config.into(),
        })
    }

    /// Takes the floor's events: transitions to SQL and the wallboard, everything to the bus.
    fn drain(
        &mut self,
        now: u64,
        src: Option<MessageId>,
        w: &mut BatchWrites,
        out: &mut Vec<Envelope>,
    ) -> Result<(), ServiceError> {
        let mut n = 0u32;
        while let Some(mut ev) =
            self.floor.poll_event().or_else(|| self.pending_commands.pop_front().map(Event::Command))
        {
            if let Event::Command(Command::DialAgentLeg { agent_id, campaign_id }) = &mut ev {
                *campaign_id = self.jobs.get(agent_id).map(|j| j.campaign_id);
            }
            if let Event::Command(Command::ParkCustomer { hold_ms, .. }) = &mut ev {
                *hold_ms = self.cfg.park_limit_ms;
            }
            if let Event::Transition(t) = &mut ev {
                self.fill_in(t);
            }
            let agent_id = match &ev {
                Event::Transition(t) => {
                    let msg = src.map(|s| s.to_string()).unwrap_or_else(|| format!("timer:{now}"));
                    w.transitions.push((*t, msg));
                    self.wallboard.transition(&(*t).into());
                    t.agent_id
                }
                Event::Command(c) => {
                    self.on_command(c);
                    command_agent(c)
                }
                Event::Deferred { agent_id, .. } => *agent_id,
            };
            if let Some(row) = self.agent_row(agent_id) {
                w.agents.insert(agent_id, row);
            }
            // The core's event leaves as the wire's (`agent::edge`).
            let mut env = Envelope::new(self.cfg.tenant_id, now, &wire::agent::Event::from(ev))
                .map_err(|e| ServiceError::Bus(BusError::Protocol(format!("encoding an agent event: {e}"))))?;
            if let Some(s) = src {
                env.id = derived_id(s, n);
            }
            n += 1;
            out.push(env);
        }
        for notice in std::mem::take(&mut self.notices) {
            let mut env = Envelope::new(self.cfg.tenant_id, now, &notice)
                .map_err(|e| ServiceError::Bus(BusError::Protocol(format!("encoding an agent notice: {e}"))))?;
            if let Some(s) = src {
                env.id = derived_id(s, n);
            }
            n += 1;
            out.push(env);
        }
        Ok(())
    }

    /// What the state machine does not know of a transition: the lead of its call or of the
    /// agent's preview dial, and why a preview dial was refused.
    fn fill_in(&mut self, t: &mut crate::agent::Transition) {
        t.lead_id = match t.call_id {
            Some(c) => self.call_lead.get(&c).or_else(|| self.ended_lead.get(&c)).copied(),
            None => self.preview_lead.get(&t.agent_id).copied(),
        };
        if t.cause == crate::agent::Cause::NotDialled {
            t.not_dialled = self.not_dialled.remove(&t.agent_id);
            t.lead_id = self.preview_lead.remove(&t.agent_id).or(t.lead_id);
        } else if t.to != AgentState::Ringing {
            // The preview dial is over one way or another (placed calls carry their call's lead).
            if t.call_id.is_none() {
                self.preview_lead.remove(&t.agent_id);
            }
        }
    }

    /// Control's own reaction to the floor's shard commands.
    fn on_command(&mut self, c: &Command) {
        if let Command::ReleaseCustomer { call_id, .. } = *c {
            // The reserved customer is no longer for that agent: offer it again, first in line.
            if let Some(&campaign_id) = self.call_campaign.get(&call_id) {
                if self.waiting_set.insert(call_id) {
                    self.waiting.push_front(Waiting { call_id, campaign_id });
                }
            }
        }
    }

    fn apply_command(&mut self, now: u64, c: &ApiCommand, w: &mut BatchWrites) {
        let (agent_id, input) = command_input(c);
        let r = match (c, input) {
            (ApiCommand::StartCallJob { campaign_id, call_job_id, dialing_group_id, .. }, Some(input)) => {
                if self.floor.agent(agent_id).is_none() {
                    if let Err(e) = self.floor.add_agent(agent_id) {
                        self.refused(agent_id, "start_call_job", &e);
                        return;
                    }
                }
                let state = self.floor.agent(agent_id).map(|a| a.state);
                if matches!(state, Some(AgentState::Offline | AgentState::Unknown)) {
                    let job = Job {
                        campaign_id: *campaign_id,
                        call_job_id: *call_job_id,
                        dialing_group_id: *dialing_group_id,
                    };
                    self.jobs.insert(agent_id, job);
                    if let Some(a) = self.floor.agent(agent_id) {
                        self.wallboard.set_agent(
                            agent_id,
                            a.state.into(),
                            a.since_ms,
                            Some(*campaign_id),
                            *dialing_group_id,
                        );
                    }
                }
                self.floor.handle_input(now, agent_id, input)
            }
            (ApiCommand::HangUpCustomer { call_id, .. }, _) => {
                if self.floor.call_owner(*call_id) == Some(agent_id) {
                    self.pending_commands.push_back(Command::HangUpCustomer { agent_id, call_id: *call_id });
                    Ok(())
                } else {
                    Err(AgentError::WrongCall {
                        expected: self.floor.agent(agent_id).and_then(|a| a.call_id),
                        got: *call_id,
                    })
                }
            }
            (
                ApiCommand::TransferOutside { call_id, .. }
                | ApiCommand::Conference { call_id, .. }
                | ApiCommand::EndConference { call_id, .. }
                | ApiCommand::LeaveConference { call_id, .. },
                _,
            ) => {
                // 外線転送 and 電話会議: only of the customer the agent talks with (not on hold); the
                // agent stays on the call until the outside party answers, or until it leaves the
                // conference (ShardEvent::OutsideTransferred).
                let talking = self.floor.agent(agent_id).is_some_and(|a| a.state == AgentState::Talking);
                let call_id = *call_id;
                let cmd = match *c {
                    ApiCommand::Conference { tel, caller_id, .. } => {
                        Command::Conference { agent_id, call_id, tel, caller_id }
                    }
                    ApiCommand::EndConference { .. } => Command::EndConference { agent_id, call_id },
                    ApiCommand::LeaveConference { .. } => Command::LeaveConference { agent_id, call_id },
                    ApiCommand::TransferOutside { tel, caller_id, .. } => {
                        Command::TransferOutside { agent_id, call_id, tel, caller_id }
                    }
                    _ => return,
                };
                if self.floor.call_owner(call_id) == Some(agent_id) && talking {
                    self.pending_commands.push_back(cmd);
                    Ok(())
                } else {
                    Err(AgentError::NotAllowed {
                        state: self.floor.agent(agent_id).map_or(AgentState::Offline, |a| a.state),
                        input: "transfer_outside",
                    })
                }
            }
            (ApiCommand::PreviewDial { campaign_id, call_job_id, lead_id, .. }, Some(input)) => {
                // Only for the call job the agent works (the API checked it; a change since is a race).
                let job = self.jobs.get(&agent_id);
                if job.is_some_and(|j| j.campaign_id == *campaign_id && j.call_job_id == Some(*call_job_id)) {
                    let r = self.floor.handle_input(now, agent_id, input);
                    if r.is_ok() {
                        self.preview_lead.insert(agent_id, *lead_id);
                    }
                    r
                } else {
                    Err(AgentError::NotAllowed {
                        state: self.floor.agent(agent_id).map_or(AgentState::Offline, |a| a.state),
                        input: "preview_dial",
                    })
                }
            }
            (ApiCommand::Transfer { call_id, to_agent, .. }, Some(input)) => {
                self.transfer(now, agent_id, *call_id, *to_agent, input)
            }
            (ApiCommand::Park { call_id, .. }, _) => self.park(now, agent_id, *call_id, w),
            (ApiCommand::PickUp { number, .. }, _) => self.pick_up(now, agent_id, *number, PickUpBy::Api, w),
            (_, Some(input)) => self.floor.handle_input(now, agent_id, input),
            (_, None) => Ok(()),
        };
        if let Err(e) = r {
            self.refused(agent_id, "api_command", &e);
        }
    }

    /// 転送 (blind) of `agent_id`'s customer to `to`: only to a ready agent of a call job of the
    /// same campaign; the agent lets go ([`Input::TransferOut`]: the customer waits), then `to` is
    /// offered the call (ringing, its screen pop the call's lead) as in a match.
    fn transfer(
        &mut self,
        now: u64,
        agent_id: AgentId,
        call_id: CallId,
        to: AgentId,
        input: Input,
    ) -> Result<(), AgentError> {
        let campaign = self.jobs.get(&agent_id).map(|j| j.campaign_id);
        let to_state = self.floor.agent(to).map_or(AgentState::Offline, |a| a.state);
        if to == agent_id || campaign.is_none() || self.jobs.get(&to).map(|j| j.campaign_id) != campaign {
            return Err(AgentError::NotAllowed { state: to_state, input: "transfer_out" });
        }
        if to_state != AgentState::Ready {
            return Err(AgentError::OfferRefused(OfferRefused::NotReady { state: to_state }));
        }
        self.floor.handle_input(now, agent_id, input)?;
        self.floor.handle_input(now, to, Input::Offer { call_id })
    }

    /// パーク保留: the agent lets go of its customer ([`Input::Park`]: to wrap-up, the customer
    /// waits with the waiting audio) and the call is parked under the tenant's lowest free number,
    /// written to `parked_calls` and told to every agent's screen.
    fn park(&mut self, now: u64, agent_id: AgentId, call_id: CallId, w: &mut BatchWrites) -> Result<(), AgentError> {
        if self.parking.next_number().is_none() || self.parking.number_of(call_id).is_some() {
            let state = self.floor.agent(agent_id).map_or(AgentState::Offline, |a| a.state);
            return Err(AgentError::NotAllowed { state, input: "park" });
        }
        self.floor.handle_input(now, agent_id, Input::Park { call_id })?;
        let Ok(number) = self.parking.park(now, call_id, agent_id) else {
            return Ok(()); // checked above
        };
        w.calls.push(CallOp::Parked { call_id, number, agent_id, at_ms: now });
        self.notices.push(AgentNotice::ParkChanged {
            number,
            call_id,
            change: ParkChange::Parked,
            agent_id,
            at_ms: now,
        });
        Ok(())
    }

    /// パーク応答: the call parked under `number` is offered to `agent_id` (ready) as in a match:
    /// bridged into its own phone's leg, its screen pop the call's lead. Refused when the agent is
    /// not ready: the park stays, and the API's claim is undone when the refused pick-up was the
    /// API's (a refused keyed pick-up leaves a colleague's claim alone). Of an API pick-up and a
    /// keyed one at once, the first this service applies wins; the other finds no park (refused),
    /// and the park's row and notice name the winner.
    fn pick_up(
        &mut self,
        now: u64,
        agent_id: AgentId,
        number: u16,
        by: PickUpBy,
        w: &mut BatchWrites,
    ) -> Result<(), AgentError> {
        let Some(p) = self.parking.get(number) else {
            let state = self.floor.agent(agent_id).map_or(AgentState::Offline, |a| a.state);
            return Err(AgentError::NotAllowed { state, input: "pick_up" });
        };
        if let Err(e) = self.floor.handle_input(now, agent_id, Input::Offer { call_id: p.call_id }) {
            if by == PickUpBy::Api {
                w.calls.push(CallOp::ParkUnclaimed { number });
            }
            let (change, call_id) = (ParkChange::Parked, p.call_id);
            self.notices.push(AgentNotice::ParkChanged { number, call_id, change, agent_id: p.by, at_ms: p.at_ms });
            return Err(e);
        }
        self.parking.take(number);
        w.calls.push(CallOp::ParkEnded { number, outcome: ParkChange::PickedUp, agent_id: Some(agent_id), at_ms: now });
        let (change, call_id) = (ParkChange::PickedUp, p.call_id);
        self.notices.push(AgentNotice::ParkChanged { number, call_id, change, agent_id, at_ms: now });
        Ok(())
    }

    /// The park of `call_id` (if parked) ends because its customer hung up.
    fn park_hung_up(&mut self, now: u64, call_id: CallId, w: &mut BatchWrites) {
        let Some((number, p)) = self.parking.take_call(call_id) else { return };
        w.calls.push(CallOp::ParkEnded { number, outcome: ParkChange::HungUp, agent_id: None, at_ms: now });
        let change = ParkChange::HungUp;
        self.notices.push(AgentNotice::ParkChanged { number, call_id, change, agent_id: p.by, at_ms: now });
    }

    /// Parks nobody picked up within the limit are returned: offered to the agent who parked it
    /// if it is ready, else queued first in line for the agents of its campaign (whose wait limit
    /// then applies: the dialer abandons it with the campaign's message after that).
    fn return_parked(&mut self, now: u64, w: &mut BatchWrites) {
        for (number, p) in self.parking.due(now) {
            w.calls.push(CallOp::ParkEnded { number, outcome: ParkChange::Returned, agent_id: None, at_ms: now });
            let (change, call_id) = (ParkChange::Returned, p.call_id);
            self.notices.push(AgentNotice::ParkChanged { number, call_id, change, agent_id: p.by, at_ms: now });
            if self.floor.handle_input(now, p.by, Input::Offer { call_id }).is_ok() {
                continue;
            }
            if let Some(&campaign_id) = self.call_campaign.get(&call_id) {
                if self.waiting_set.insert(call_id) {
                    self.waiting.push_front(Waiting { call_id, campaign_id });
                }
            }
        }
    }

    /// The tenant's parked calls now (tests).
    pub fn parking(&self) -> &Parking {
        &self.parking
    }

    fn refused(&mut self, agent_id: AgentId, what: &str, e: &AgentError) {
        self.stats.refused += 1;
        tracing::debug!(agent = agent_id.0, what, error = %e, "refused");
    }

    fn apply_shard_event(&mut self, now: u64, e: &ShardEvent, w: &mut BatchWrites) {
        match *e {
            ShardEvent::CustomerAnswered { call_id, campaign_id, lead_id, .. } => {
                if self.call_lead.len() < self.cfg.max_waiting + self.cfg.floor.max_agents {
                    self.call_lead.insert(call_id, lead_id);
                }
                self.wallboard.customer_answered(now, call_id, campaign_id);
                if self.call_campaign.contains_key(&call_id) {
                    return; // the same call reported twice
                }
                if let Some(agent_id) = self.floor.call_owner(call_id) {
                    // A preview call: its agent holds it already; bridge it to that agent now.
                    self.call_campaign.insert(call_id, campaign_id);
                    if let Err(e) = self.floor.handle_input(now, agent_id, Input::PreviewAnswered { call_id }) {
                        self.refused(agent_id, "preview_answered", &e);
                    }
                    return;
                }
                self.call_campaign.insert(call_id, campaign_id);
                if self.waiting.len() >= self.cfg.max_waiting {
                    tracing::warn!(call = call_id.0, "waiting queue full; customer released");
                    self.pending_commands.push_back(Command::ReleaseCustomer { agent_id: AgentId(0), call_id });
                    return;
                }
                if self.offer(now, call_id, campaign_id).is_err() {
                    self.waiting_set.insert(call_id);
                    self.waiting.push_back(Waiting { call_id, campaign_id });
                }
            }
            ShardEvent::Bridged { call_id, agent_id } => {
                w.calls.push(CallOp::Bridged { call_id, agent_id, at_ms: now });
                self.wallboard.bridged(now, call_id);
                if let Err(e) = self.floor.handle_input(now, agent_id, Input::Bridged { call_id }) {
                    self.refused(agent_id, "bridged", &e);
                }
            }
            ShardEvent::CallEnded { call_id, agent_id, result, .. } => {
                // The dialer is the one author of a call's result and of its call record's line
                // columns; control writes who took the call and the wrap-up record.
                let owner = agent_id.or_else(|| self.floor.call_owner(call_id));
                let view = owner.and_then(|a| self.floor.agent(a));
                if result == SystemResult::NoEntry {
                    if let Some(a) = owner {
                        w.calls.push(CallOp::WrapUpRow { call_id, agent_id: a, at_ms: now });
                    }
                }
                let campaign = self.call_campaign.remove(&call_id);
                self.wallboard.call_ended(now, call_id, campaign);
                // Kept for the agent's transitions of this batch, then forgotten.
                if let Some(lead) = self.call_lead.remove(&call_id) {
                    self.ended_lead.insert(call_id, lead);
                }
                if self.waiting_set.remove(&call_id) {
                    self.waiting.retain(|x| x.call_id != call_id);
                }
                self.park_hung_up(now, call_id, w);
                if let Some(a) = owner {
                    if view.is_some_and(|v| v.call_id == Some(call_id)) {
                        if let Err(e) = self.floor.handle_input(now, a, Input::CustomerEnded { call_id }) {
                            self.refused(a, "call_ended", &e);
                        }
                    }
                }
            }
            // The pacer's dial level (dial_level_milli) is its own figure, exported by the dialer to
            // Prometheus; the wallboard computes its dial level one way for every tile.
            ShardEvent::DialerStatus {
                campaign_id, dials_in_flight, remaining_leads, predicted_abandon_ppm, ..
            } => {
                self.wallboard.dialer_status(
                    now,
                    campaign_id,
                    u64::from(dials_in_flight),
                    remaining_leads,
                    f64::from(predicted_abandon_ppm) / 1_000_000.0,
                );
            }
            ShardEvent::RecallDue { agent_id, campaign_id, call_job_id, .. } => {
                // Dialled for its agent as a preview dial, only while the agent works that job and
                // is ready (else it waits for the dialer's next look, held for the agent).
                let job = self.jobs.get(&agent_id);
                if job.is_some_and(|j| j.campaign_id == campaign_id && j.call_job_id == Some(call_job_id)) {
                    if let Some((agent_id, input)) = shard_input(e) {
                        if let Err(err) = self.floor.handle_input(now, agent_id, input) {
                            self.refused(agent_id, "recall_due", &err);
                        }
                    }
                }
            }
            ShardEvent::ResultKeyed { call_id, agent_id, keyed } => {
                // The record was written when the call ended (an earlier entry of this stream).
                w.calls.push(CallOp::Keyed { call_id, agent_id, keyed, at_ms: now });
                if let Some((agent_id, input)) = shard_input(e) {
                    if let Err(err) = self.floor.handle_input(now, agent_id, input) {
                        self.refused(agent_id, "result_keyed", &err);
                    }
                }
            }
            ShardEvent::PreviewPlaced { call_id, agent_id, lead_id } => {
                self.preview_lead.remove(&agent_id);
                if self.call_lead.len() < self.cfg.max_waiting + self.cfg.floor.max_agents {
                    self.call_lead.insert(call_id, lead_id);
                }
                match self.floor.handle_input(now, agent_id, Input::PreviewPlaced { call_id }) {
                    // The call is attached without a transition: the agent's row changes all the same.
                    Ok(()) => {
                        if let Some(row) = self.agent_row(agent_id) {
                            w.agents.insert(agent_id, row);
                        }
                    }
                    // The agent gave up waiting (timeout, log-off, phone lost): the call is for
                    // nobody, so it ends rather than ring for a customer no one will talk to.
                    Err(e) => {
                        self.refused(agent_id, "preview_placed", &e);
                        self.pending_commands.push_back(Command::HangUpCustomer { agent_id, call_id });
                    }
                }
            }
            ShardEvent::ParkKeyed { agent_id, call_id } => {
                if let Err(e) = self.park(now, agent_id, call_id, w) {
                    self.refused(agent_id, "park_keyed", &e);
                }
            }
            ShardEvent::PickUpKeyed { agent_id, number } => {
                if let Err(e) = self.pick_up(now, agent_id, number, PickUpBy::Keys, w) {
                    self.refused(agent_id, "pick_up_keyed", &e);
                }
            }
            ShardEvent::PreviewNotDialled { agent_id, ref result, .. } => {
                match self.floor.handle_input(now, agent_id, Input::PreviewNotDialled) {
                    Ok(()) => {
                        self.not_dialled.insert(agent_id, NotDialledReason::parse(result));
                    }
                    Err(err) => self.refused(agent_id, "preview_not_dialled", &err),
                }
            }
            _ => {
                if let Some((agent_id, input)) = shard_input(e) {
                    if let Err(err) = self.floor.handle_input(now, agent_id, input) {
                        self.refused(agent_id, "shard_event", &err);
                    }
                }
            }
        }
    }

    fn offer(&mut self, now: u64, call_id: CallId, campaign_id: CampaignId) -> Result<AgentId, AgentError> {
        let jobs = &self.jobs;
        let r = self
            .floor
            .offer_to_longest_ready_where(now, call_id, |a| jobs.get(&a).map(|j| j.campaign_id) == Some(campaign_id));
        if r.is_ok() {
            self.stats.matched += 1;
        }
        r
    }

    /// Offers waiting customers (oldest first) to ready agents of their campaign.
    fn match_waiting(&mut self, now: u64) {
        if self.waiting.is_empty() || self.floor.ready_count() == 0 {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        while let Some(wt) = self.waiting.pop_front() {
            if self.floor.ready_count() == 0 {
                kept.push_back(wt);
                continue;
            }
            match self.offer(now, wt.call_id, wt.campaign_id) {
                Ok(_) => {
                    self.waiting_set.remove(&wt.call_id);
                }
                Err(AgentError::OfferRefused(OfferRefused::CallTaken { .. })) => {
                    self.waiting_set.remove(&wt.call_id);
                }
                Err(_) => kept.push_back(wt),
            }
        }
        self.waiting = kept;
    }
}

fn command_agent(c: &Command) -> AgentId {
    match *c {
        Command::DialAgentLeg { agent_id, .. }
        | Command::HangUpAgentLeg { agent_id }
        | Command::Bridge { agent_id, .. }
        | Command::ReleaseCustomer { agent_id, .. }
        | Command::HangUpCustomer { agent_id, .. }
        | Command::HoldCustomer { agent_id, .. }
        | Command::ParkCustomer { agent_id, .. }
        | Command::DialPreview { agent_id, .. }
        | Command::TransferOutside { agent_id, .. }
        | Command::Conference { agent_id, .. }
        | Command::EndConference { agent_id, .. }
        | Command::LeaveConference { agent_id, .. } => agent_id,
    }
}

/// Reads one stream for the owner: new entries, and entries of dead consumers once they are
/// pending longer than `min_idle_ms`.
///
/// Stale entries are looked for every quarter of `min_idle_ms` (and again at once while some are
/// found), not before every read: XAUTOCLAIM walks the group's pending list on the Redis server, and
/// one before each read cost more server time than the reads themselves under load.
async fn reader<B: Bus>(
    bus: B,
    stream: String,
    source: Source,
    cfg: ServiceConfig,
    tx: mpsc::Sender<Result<ReadBatch, BusError>>,
) {
    let mut backoff_ms = 10u64;
    let claim_every = Duration::from_millis((cfg.min_idle_ms / 4).max(1));
    let mut last_claim: Option<Instant> = None;
    loop {
        let claim_due = last_claim.is_none_or(|t| t.elapsed() >= claim_every);
        let claimed = if claim_due {
            bus.claim_stale(&stream, &cfg.group, &cfg.consumer, cfg.min_idle_ms, cfg.batch).await
        } else {
            Ok(Vec::new())
        };
        let r = match claimed {
            Ok(b) if !b.is_empty() => Ok(b),
            Ok(_) => {
                if claim_due {
                    last_claim = Some(Instant::now());
                }
                bus.read(&stream, &cfg.group, &cfg.consumer, cfg.batch, cfg.block_ms).await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(deliveries) => {
                backoff_ms = 10;
                if deliveries.is_empty() {
                    continue;
                }
                if tx.send(Ok(ReadBatch { source, deliveries })).await.is_err() {
                    return;
                }
            }
            Err(BusError::NoGroup { .. }) => {
                tracing::warn!(%stream, "group missing; creating it");
                if let Err(e) = bus.ensure_group(&stream, &cfg.group).await {
                    tracing::warn!(%stream, error = %e, "could not create the group");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                }
            }
            Err(e) => {
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(1_000);
            }
        }
    }
}

/// Per-agent state counts, for logs and tests.
pub fn states_of(floor: &Floor) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for a in floor.agents() {
        *m.entry(a.state.name()).or_insert(0) += 1;
    }
    m
}

/// The tenants in the database (the control service serves each).
pub async fn tenant_ids(db: &store::Db, limit: usize) -> Result<Vec<u64>, PersistError> {
    persist::tenant_ids(db, limit).await
}

/// Runs one tenant's service until `shutdown`, restarting it from SQL after a fault (crash-only:
/// the floor is rebuilt from what was committed, pending entries are claimed again). `buses` makes
/// three bus handles (publish/ack and the two readers); for Redis, each its own connection.
pub async fn supervise<B, F, Fut>(
    buses: F,
    db: store::Db,
    cfg: ServiceConfig,
    feed: Arc<Feed>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) where
    B: Bus + Clone + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<[B; 3], BusError>>,
{
    let mut backoff_ms = 100u64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let attempt = async {
            let [bus, r1, r2] = buses().await?;
            let svc = Service::open(bus, db.clone(), cfg.clone(), feed.clone()).await?;
            let mut stop = shutdown.clone();
            svc.run([r1, r2], async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        };
        match attempt.await {
            Ok(stats) => {
                tracing::info!(tenant = cfg.tenant_id, ?stats, "control service stopped");
                return;
            }
            Err(e) => {
                tracing::error!(tenant = cfg.tenant_id, error = %e, "control service failed; restarting from storage");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(5_000);
            }
        }
    }
}

/// [`supervise`] on one bus handle of a process ([`bus::AnyBus`]): each start opens two
/// handles of its own for the blocking readers.
pub async fn supervise_on(
    bus: bus::AnyBus,
    db: store::Db,
    cfg: ServiceConfig,
    feed: Arc<Feed>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let buses = move || {
        let b = bus.clone();
        async move { Ok::<_, BusError>([b.another().await?, b.another().await?, b]) }
    };
    supervise(buses, db, cfg, feed, shutdown).await
}
