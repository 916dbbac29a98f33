//! The second and third stages of the service's pipeline (see the module docs of [`super`]). The
//! owner task applies a batch and queues its effects; the publisher publishes the batch's events;
//! the committer commits its writes, dead-letters and acks its entries, then shows its wallboard
//! changes. Each stage works in the owner's order, on a different batch at a time: while one batch
//! is committed the next one's events are published and the one after it is applied. Batches that
//! queued up behind a slow stage are merged into one publish pipeline, one transaction and one ack.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::persist::{self, BatchWrites};
use super::{ServiceError, Source};
use crate::bus::{Bus, Delivery, EntryId, Envelope};
use crate::wallboard::mirror::MirrorWriter;
use crate::wallboard::{Feed, Tile};

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
    pub commands_stream: String,
    pub events_stream: String,
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
    fn stream(&self, s: Source) -> &str {
        match s {
            Source::Commands => &self.commands_stream,
            Source::ShardEvents => &self.events_stream,
        }
    }

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
        persist::commit(&self.db, self.tenant_id, a.now, &a.writes).await?;
        for (source, d, reason) in &a.dead {
            tracing::warn!(entry = %d.entry_id, id = %d.envelope.id, %reason, "dead-lettered");
            self.bus.dead_letter(self.stream(*source), &self.group, d, reason).await?;
        }
        for source in [Source::Commands, Source::ShardEvents] {
            let ids: Vec<EntryId> = a.acks.iter().filter(|(s, _)| *s == source).map(|(_, id)| *id).collect();
            if !ids.is_empty() {
                self.bus.ack(self.stream(source), &self.group, &ids).await?;
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
