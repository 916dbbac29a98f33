//! The second and third stages of the service's pipeline (see the module docs of [`super`]). The
//! owner task applies a batch and queues its effects; the publisher publishes the batch's events;
//! the committer commits its writes, dead-letters and acks its entries, then shows its wallboard
//! changes. Each stage works in the owner's order, on a different batch at a time: while one batch
//! is committed the next one's events are published and the one after it is applied. Batches that
//! queued up behind a slow stage are merged into one publish pipeline, one transaction and one ack.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::persist::{self, BatchWrites};
use super::{InputStreams, ServiceError, Source};
use bus::{Bus, Delivery, EntryId, Envelope};
use wallboard::mirror::MirrorWriter;
use wallboard::{Feed, Tile};

/// Most batches merged into one commit.
const MAX_MERGED: usize = 64;

/// The effects of one applied batch.
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub now: u64,
    pub writes: BatchWrites,
    pub events: Vec<Envelope>,
    pub dead: Vec<(Source, Delivery, String)>,
    pub acks: Vec<(Source, EntryId)>,
    /// The wallboard tiles the batch changed.
    pub tiles: Vec<Tile>,
}

impl Applied {
    /// Appends a later batch (its agent rows replace earlier ones: they are newer).
    fn merge(&mut self, later: Applied) {
        self.now = self.now.max(later.now);
        let (w, l) = (&mut self.writes, later.writes);
        w.applied.extend(l.applied);
        w.transitions.extend(l.transitions);
        w.calls.extend(l.calls);
        w.agents.extend(l.agents);
        self.events.extend(later.events);
        self.dead.extend(later.dead);
        self.acks.extend(later.acks);
        self.tiles.extend(later.tiles);
    }
}

/// A job for the committer.
#[derive(Debug)]
pub(super) enum CommitJob {
    Batch(Box<Applied>),
    /// Wallboard tiles changed outside a batch (expired dialer figures), and the mirror's
    /// snapshot key rewritten.
    Wallboard {
        now: u64,
        tiles: Vec<Tile>,
    },
    /// Answered once every job queued before it is done.
    Flush(oneshot::Sender<()>),
}

pub(super) struct Committer<B: Bus> {
    pub bus: B,
    pub db: store::Db,
    pub feed: Arc<Feed>,
    pub mirror: Option<MirrorWriter>,
    pub tenant_id: u64,
    pub group: String,
    pub fence: Option<(String, i64)>,
    pub inputs: InputStreams,
}

/// The next job, with the batches queued right behind it merged into it (up to [`MAX_MERGED`]);
/// `None` once the sender is gone. A job that is not a batch ends the merge and waits in `next`.
async fn next_merged(rx: &mut mpsc::Receiver<CommitJob>, next: &mut Option<CommitJob>) -> Option<CommitJob> {
    let job = match next.take() {
        Some(j) => j,
        None => rx.recv().await?,
    };
    let CommitJob::Batch(mut a) = job else { return Some(job) };
    for _ in 1..MAX_MERGED {
        match rx.try_recv() {
            Ok(CommitJob::Batch(b)) => a.merge(*b),
            Ok(other) => {
                *next = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    Some(CommitJob::Batch(a))
}

/// The first stage: publishes each batch's events, then passes the job on to the committer. So the
/// events of one batch are published while the one before it is committed (a batch's own events
/// still go out before its commit, as the module docs of [`super`] require).
pub(super) async fn publish<B: Bus>(
    bus: B,
    out_stream: String,
    chunk: usize,
    mut rx: mpsc::Receiver<CommitJob>,
    tx: mpsc::Sender<CommitJob>,
) -> Result<(), ServiceError> {
    let mut next = None;
    while let Some(job) = next_merged(&mut rx, &mut next).await {
        if let CommitJob::Batch(a) = &job {
            for events in a.events.chunks(chunk.max(1)) {
                bus.publish_many(&out_stream, events).await?;
            }
        }
        if tx.send(job).await.is_err() {
            // The committer stopped on a fault: the service returns its error.
            return Ok(());
        }
    }
    Ok(())
}

impl<B: Bus> Committer<B> {
    /// Runs the jobs until the publisher drops its sender (then returns `Ok`) or one fails.
    pub async fn run(mut self, mut rx: mpsc::Receiver<CommitJob>) -> Result<(), ServiceError> {
        let mut next = None;
        while let Some(job) = next_merged(&mut rx, &mut next).await {
            match job {
                CommitJob::Batch(a) => self.commit(*a).await?,
                CommitJob::Wallboard { now, tiles } => {
                    self.show(now, tiles).await?;
                    if let Some(m) = &mut self.mirror {
                        m.write_snapshot(&self.bus, &self.feed).await?;
                    }
                }
                CommitJob::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
        Ok(())
    }

    /// Commit, then ack, then show (the events are published already): see the module docs of
    /// [`super`].
    async fn commit(&mut self, a: Applied) -> Result<(), ServiceError> {
        persist::commit(&self.db, self.tenant_id, a.now, &a.writes, self.fence.as_ref()).await?;
        for (source, d, reason) in &a.dead {
            tracing::warn!(entry = %d.entry_id, id = %d.envelope.id, %reason, "dead-lettered");
            self.bus.dead_letter(self.inputs.of(*source), &self.group, d, reason).await?;
        }
        for source in [Source::Commands, Source::ShardEvents] {
            let ids: Vec<EntryId> = a.acks.iter().filter(|(s, _)| *s == source).map(|(_, id)| *id).collect();
            if !ids.is_empty() {
                self.bus.ack(self.inputs.of(source), &self.group, &ids).await?;
            }
        }
        self.show(a.now, a.tiles).await
    }

    /// Wallboard tiles to the feed (and its mirror).
    async fn show(&mut self, now: u64, tiles: Vec<Tile>) -> Result<(), ServiceError> {
        show(&self.bus, &self.feed, &mut self.mirror, now, tiles).await
    }
}

/// Wallboard tiles to the feed (and its mirror on the bus).
pub(super) async fn show<B: Bus>(
    bus: &B,
    feed: &Feed,
    mirror: &mut Option<MirrorWriter>,
    now: u64,
    tiles: Vec<Tile>,
) -> Result<(), ServiceError> {
    if tiles.is_empty() {
        return Ok(());
    }
    let changes = feed.publish(now, tiles);
    if let Some(m) = mirror {
        m.publish(bus, now, &changes).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::AgentRow;
    use bus::MessageId;
    use wire::agent::{AgentConfig, AgentId, AgentState, AgentView};

    fn row(agent: u64, state: AgentState, since_ms: u64) -> AgentRow {
        AgentRow {
            campaign_id: None,
            call_job_id: None,
            dialing_group_id: None,
            view: AgentView {
                agent_id: AgentId(agent),
                state,
                since_ms,
                call_id: None,
                leg_up: true,
                pending: None,
                dialling: false,
                release_at_ms: None,
            },
            config: AgentConfig::default(),
        }
    }

    fn applied(now: u64, entry: u64, agents: &[AgentRow]) -> Applied {
        let mut a = Applied { now, ..Applied::default() };
        a.writes.applied.push(MessageId::new());
        a.acks.push((Source::Commands, EntryId { ms: entry, seq: 0 }));
        for r in agents {
            a.writes.agents.insert(r.view.agent_id, *r);
        }
        a
    }

    #[tokio::test]
    async fn queued_batches_merge_in_order_and_the_later_agent_row_wins() {
        let (tx, mut rx) = mpsc::channel(8);
        let first = applied(10, 1, &[row(1, AgentState::Ready, 10), row(2, AgentState::Ready, 10)]);
        let ids: Vec<MessageId> = first.writes.applied.clone();
        tx.send(CommitJob::Batch(Box::new(first))).await.unwrap();
        tx.send(CommitJob::Batch(Box::new(applied(30, 2, &[row(1, AgentState::Talking, 30)])))).await.unwrap();
        let (flush_tx, _flush_rx) = oneshot::channel();
        tx.send(CommitJob::Flush(flush_tx)).await.unwrap();
        tx.send(CommitJob::Batch(Box::new(applied(40, 3, &[])))).await.unwrap();

        let mut next = None;
        let Some(CommitJob::Batch(a)) = next_merged(&mut rx, &mut next).await else { panic!("a merged batch") };
        // The two batches before the flush, in order; the flush waits, then the batch after it.
        assert_eq!(a.now, 30);
        assert_eq!(a.acks.iter().map(|(_, e)| e.ms).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(a.writes.applied.len(), 2);
        assert_eq!(a.writes.applied[0], ids[0]);
        assert_eq!(a.writes.agents[&AgentId(1)].view.state, AgentState::Talking);
        assert_eq!(a.writes.agents[&AgentId(2)].view.state, AgentState::Ready);
        assert!(matches!(next_merged(&mut rx, &mut next).await, Some(CommitJob::Flush(_))));
        let Some(CommitJob::Batch(b)) = next_merged(&mut rx, &mut next).await else { panic!("the last batch") };
        assert_eq!(b.acks[0].1.ms, 3);
        drop(tx);
        assert!(next_merged(&mut rx, &mut next).await.is_none());
    }
}
