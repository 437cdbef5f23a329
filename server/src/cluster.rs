//! Cluster mode's shard driver: one thread per shard that, on the shard's leader, decides
//! batches as the single-node shard does and replicates each batch as one log entry; on
//! other nodes it answers nothing (the HTTP side forwards to the leader first).
//!
//! The leader decides on its own copy of the engine (`Speculative`), built from the
//! committed engine once its term's first entry is applied. A batch's replies and reads are
//! released only after its entry is committed on a quorum and applied here; a batch with
//! no decision releases its answers after a read barrier (a quorum round begun after the
//! requests arrived). One batch is in flight at a time, so between batches the copy equals
//! the committed engine. When a proposal fails, every answer of the batch is 503
//! (`unavailable` if nothing was written, `outcome_unknown` if it may still commit) and the
//! copy is dropped: the next batch rebuilds it from what is committed.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use engine::{Decided, Engine};
use raft::{ClusterNode, LeaderToken, ProposeError};
use tokio::runtime::Handle;

use crate::limits::{SHARD_BATCH_MAX, SHARD_IDLE_TICK};
use crate::shard::{
    CommandResult, ReadFn, Request, ShardClock, ShardError, ShardHandle, ShardStatus,
};

/// The leader's engine, ahead of nothing: equal to the committed engine between batches.
struct Speculative {
    token: LeaderToken,
    engine: Engine,
    clock: ShardClock,
}

struct Driver {
    shard: u16,
    node: Arc<ClusterNode>,
    runtime: Handle,
    spec: Option<Speculative>,
    records: Vec<Vec<u8>>,
    answered_at: Instant,
}

/// Starts the driver of shard `shard` of `node`. The returned handle is the HTTP side's,
/// as in single-node mode; the shard's live stream is fed from the committed state.
pub fn spawn(
    shard: u16,
    node: Arc<ClusterNode>,
    runtime: Handle,
    queue_capacity: usize,
) -> std::io::Result<(ShardHandle, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded(queue_capacity.max(1));
    let status = Arc::new(ShardStatus::default());
    let stream = Arc::new(crate::stream::Hub::new(shard));
    feed_stream(node.group(usize::from(shard)), &stream);
    status.set_ready();
    let thread_status = Arc::clone(&status);
    let thread = std::thread::Builder::new()
        .name(format!("shard-{shard}"))
        .spawn(move || {
            let mut driver = Driver {
                shard,
                node,
                runtime,
                spec: None,
                records: Vec::new(),
                answered_at: Instant::now(),
            };
            driver.serve(&rx, &thread_status);
            tracing::info!(shard, "shard driver stopped");
        })?;
    Ok((ShardHandle::from_parts(tx, status, stream), thread))
}

/// The live stream of a cluster shard follows the committed state on this node.
fn feed_stream(group: &raft::Group, hub: &Arc<crate::stream::Hub>) {
    let sm = group.state_machine();
    let (engine, applied) = sm.with(|c| (c.engine.clone(), c.applied_index()));
    let _ = applied;
    let Some(mut feed) = crate::stream::start_follower(hub, &engine, 0, Vec::new()) else {
        return;
    };
    drop(engine);
    // The follower counts decisions, not log entries: keep that count here.
    let mut seq = 0u64;
    let mut first = true;
    sm.observe(Box::new(move |engine, change| match change {
        raft::state_machine::Change::Batch(records) => {
            seq += records.len() as u64;
            feed.durable(seq, records, engine);
        }
        raft::state_machine::Change::Reset => {
            if std::mem::take(&mut first) {
                return;
            }
            feed.mark_lagging();
            feed.durable(seq, &[], engine);
        }
    }));
}

/// The answers of one batch, released together.
#[derive(Default)]
struct Answers {
    replies: Vec<(tokio::sync::oneshot::Sender<CommandResult>, CommandResult)>,
    reads: Vec<ReadFn>,
}

impl Answers {
    /// Every command answered `error`; reads dropped (their callers get 503).
    fn refuse(&mut self, error: &ShardError) {
        for (_, result) in self.replies.iter_mut() {
            *result = Err(error.clone());
        }
        self.reads.clear();
    }
}

impl Driver {
    fn serve(&mut self, rx: &Receiver<Request>, status: &ShardStatus) {
        let mut batch: Vec<Request> = Vec::with_capacity(SHARD_BATCH_MAX);
        loop {
            let queued = !rx.is_empty();
            match rx.recv_timeout(self.idle_timeout()) {
                Ok(request) => batch.push(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while batch.len() < SHARD_BATCH_MAX {
                match rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            if queued {
                status.note_loop_gap(self.answered_at.elapsed());
            }
            if self.process(&mut batch) {
                return;
            }
        }
    }

    fn idle_timeout(&mut self) -> Duration {
        match &mut self.spec {
            Some(spec) => match spec.engine.next_expiry_ms() {
                Some(due) => {
                    let now = spec.clock.now_ms();
                    Duration::from_millis(due.saturating_sub(now)).min(SHARD_IDLE_TICK)
                }
                None => SHARD_IDLE_TICK,
            },
            None => SHARD_IDLE_TICK,
        }
    }

    /// Makes sure this node may decide for the shard now, with an engine equal to what is
    /// committed. `Err` says why not (nothing was written).
    fn lead(&mut self) -> Result<(), ShardError> {
        let group = self.node.group(usize::from(self.shard));
        let now = group.leadership();
        if !now.is_me {
            self.spec = None;
            return Err(ShardError::Unavailable(match now.leader {
                Some(leader) => format!("node {leader} leads shard {}", self.shard),
                None => format!(
                    "shard {} has no leader (an election is under way)",
                    self.shard
                ),
            }));
        }
        if self
            .spec
            .as_ref()
            .is_some_and(|s| s.token.term() == now.term)
        {
            return Ok(());
        }
        self.spec = None;
        let token = self
            .runtime
            .block_on(group.begin_term())
            .map_err(|e| ShardError::Unavailable(format!("shard {}: {e}", self.shard)))?;
        let engine = group.state_machine().with(|c| c.engine.clone());
        let clock = ShardClock::new(self.shard, engine.now_ms());
        tracing::info!(shard = self.shard, term = token.term(), "leading the shard");
        self.spec = Some(Speculative {
            token,
            engine,
            clock,
        });
        Ok(())
    }

    /// One batch. Returns whether a shutdown request was in it.
    fn process(&mut self, batch: &mut Vec<Request>) -> bool {
        let mut stopping = false;
        let mut answers = Answers::default();
        let mut commands = Vec::new();
        for request in batch.drain(..) {
            match request {
                Request::Read(read) => answers.reads.push(read),
                Request::Shutdown => stopping = true,
                Request::Command { command, reply } => commands.push((command, reply)),
            }
        }
        if commands.is_empty() && answers.reads.is_empty() {
            // Idle: only due holds to expire, and only on the leader.
            if self.spec.is_none() || self.lead().is_err() {
                self.answered_at = Instant::now();
                return stopping;
            }
        }
        let used = match self.lead() {
            Ok(()) => self.decide(commands, &mut answers),
            Err(error) => {
                for (_, reply) in commands {
                    answers.replies.push((reply, Err(error.clone())));
                }
                answers.reads.clear();
                0
            }
        };
        self.release(used, answers);
        self.answered_at = Instant::now();
        stopping
    }

    /// Expires due holds, then decides every command on the leader's engine. Returns the
    /// decisions made (encoded into `self.records`).
    fn decide(
        &mut self,
        commands: Vec<(engine::Command, tokio::sync::oneshot::Sender<CommandResult>)>,
        answers: &mut Answers,
    ) -> usize {
        let spec = self.spec.as_mut().expect("lead() made the engine");
        let now = spec.clock.now_ms();
        let mut used = 0;
        let mut expired = 0;
        while expired < engine::limits::EXPIRE_BATCH_MAX {
            let due = spec
                .engine
                .decide_expiry(now, engine::limits::EXPIRE_BATCH_MAX - expired);
            if due.is_empty() {
                break;
            }
            for decision in due {
                spec.engine.apply(&decision);
                push_record(&mut self.records, &mut used, &decision);
                expired += 1;
            }
        }
        for (command, reply) in commands {
            let result = match spec.engine.decide(&command, now) {
                Ok(Decided::Change(decision)) => {
                    spec.engine.apply(&decision);
                    push_record(&mut self.records, &mut used, &decision);
                    Ok(spec.engine.output(&decision, now))
                }
                Ok(Decided::Replay(output)) => Ok(output),
                Err(rejection) => Err(ShardError::Rejected(rejection)),
            };
            answers.replies.push((reply, result));
        }
        used
    }

    /// Makes the batch's decisions committed (or, with none, confirms leadership), then
    /// answers everyone: nothing is shown before it is on a quorum.
    fn release(&mut self, used: usize, mut answers: Answers) {
        let group = self.node.group(usize::from(self.shard));
        if let Some(spec) = &self.spec {
            let outcome = if used > 0 {
                let records = self.records[..used].to_vec();
                self.runtime
                    .block_on(group.propose(&spec.token, records))
                    .map(|_| ())
            } else if !answers.replies.is_empty() || !answers.reads.is_empty() {
                self.runtime.block_on(group.read_barrier(&spec.token))
            } else {
                Ok(())
            };
            match outcome {
                Ok(()) => {
                    if used > 0 {
                        metrics::counter!("boxoffice_cluster_entries_total").increment(1);
                        metrics::counter!("boxoffice_cluster_decisions_total")
                            .increment(used as u64);
                    }
                }
                Err(error) => {
                    tracing::warn!(shard = self.shard, %error, decisions = used, "batch not committed");
                    let refusal = match &error {
                        ProposeError::NotLeader { .. } => ShardError::Unavailable(format!(
                            "shard {}: leadership moved; nothing was written",
                            self.shard
                        )),
                        ProposeError::Unknown(why) => {
                            ShardError::OutcomeUnknown(format!("shard {}: {why}", self.shard))
                        }
                    };
                    answers.refuse(&refusal);
                    self.spec = None;
                }
            }
        }
        for (reply, result) in answers.replies {
            let _ = reply.send(result);
        }
        if let Some(spec) = &mut self.spec {
            let now = spec.clock.now_ms();
            for read in answers.reads {
                read(&spec.engine, now);
            }
        }
    }
}

/// Encodes a decision into the next record buffer, reusing the buffers' allocations.
fn push_record(records: &mut Vec<Vec<u8>>, used: &mut usize, decision: &engine::Decision) {
    if records.len() == *used {
        records.push(Vec::with_capacity(128));
    }
    let buf = &mut records[*used];
    buf.clear();
    decision.encode(buf);
    *used += 1;
}
