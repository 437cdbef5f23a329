//! Cluster mode's shard driver: one thread per shard that, on the shard's leader, decides
//! batches as the single-node shard does and replicates each batch as one log entry; on
//! other nodes it answers nothing (the HTTP side forwards to the leader first).
//!
//! The leader decides on its own copy of the engine (`Speculative`), built from the
//! committed engine once its term's first entry is applied. Batches are pipelined: up to
//! [`PIPELINE_DEPTH`] are in flight at once, handed to the group in order by one proposer
//! task, so the next batch is decided while the previous ones replicate. Their answers are
//! released in order, each batch's only once its entry is committed on a quorum and applied
//! here (and every earlier batch's outcome is known); reads run then, on the committed
//! engine. A batch with no decision (reads, rejections, remembered answers) is released
//! after a read barrier, a quorum round begun after its requests arrived. When a batch
//! fails, its answers are 503 (`unavailable` if nothing was written, `outcome_unknown` if it
//! may still commit), the copy is dropped, and no batch is decided until every batch in
//! flight has its outcome; the copy is then rebuilt from what is committed. A later batch
//! in flight that does commit is answered normally: entries commit in order, so its
//! predecessors committed too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use engine::{Decision, Engine, Tally};
use raft::{ClusterNode, LeaderToken, ProposeError};
use tokio::runtime::Handle;

use crate::limits::{PIPELINE_DEPTH, SHARD_BATCH_MAX, SHARD_IDLE_TICK};
use crate::metrics::DecisionCounters;
use crate::shard::{
    CommandResult, ReadFn, Request, ShardClock, ShardError, ShardHandle, ShardStatus,
};

/// The leader's engine, ahead of nothing: equal to the committed engine between batches.
struct Speculative {
    token: LeaderToken,
    engine: Engine,
    clock: ShardClock,
}

/// What the proposer task is asked to do, in order.
enum Job {
    /// Replicate these decisions.
    Propose(LeaderToken, Vec<Vec<u8>>, u64),
    /// Confirm the leadership with a quorum round.
    Barrier(LeaderToken, u64),
}

/// A batch decided and handed on, waiting for its outcome.
struct InFlight {
    seq: u64,
    answers: Answers,
    outcome: Option<Result<(), ProposeError>>,
    decisions: usize,
    /// The decisions by kind, counted in the metrics once the entry is committed.
    tally: Tally,
}

struct Driver {
    shard: u16,
    node: Arc<ClusterNode>,
    runtime: Handle,
    spec: Option<Speculative>,
    counters: DecisionCounters,
    answered_at: Instant,
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    done: Receiver<(u64, Result<(), ProposeError>)>,
    inflight: VecDeque<InFlight>,
    next_seq: u64,
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
    let (jobs, job_rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, done) = crossbeam_channel::unbounded();
    runtime.spawn(propose_in_order(
        Arc::clone(&node),
        usize::from(shard),
        job_rx,
        done_tx,
    ));
    let thread = std::thread::Builder::new()
        .name(format!("shard-{shard}"))
        .spawn(move || {
            let mut driver = Driver {
                shard,
                node,
                runtime,
                spec: None,
                counters: DecisionCounters::new(shard),
                answered_at: Instant::now(),
                jobs,
                done,
                inflight: VecDeque::new(),
                next_seq: 0,
            };
            driver.serve(&rx, &thread_status);
            tracing::info!(shard, "shard driver stopped");
        })?;
    Ok((ShardHandle::from_parts(tx, status, stream), thread))
}

/// The live stream of a cluster shard follows the committed state on this node.
fn feed_stream(group: &raft::Group, hub: &Arc<crate::stream::Hub>) {
    let sm = group.state_machine();
    let engine = sm.with(|c| c.engine.clone());
    let Some(mut feed) = crate::stream::start_follower(hub, &engine, 0, Vec::new(), None) else {
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

/// The proposer task of a shard: hands batches to the group one after the other, in the
/// order the driver decided them, and reports each outcome when it is known.
async fn propose_in_order(
    node: Arc<ClusterNode>,
    shard: usize,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
    done: Sender<(u64, Result<(), ProposeError>)>,
) {
    while let Some(job) = jobs.recv().await {
        let done = done.clone();
        match job {
            Job::Propose(token, records, seq) => {
                match node.group(shard).submit(&token, records).await {
                    Ok(pending) => {
                        tokio::spawn(async move {
                            let _ = done.send((seq, pending.outcome().await.map(|_| ())));
                        });
                    }
                    Err(error) => {
                        let _ = done.send((seq, Err(error)));
                    }
                }
            }
            Job::Barrier(token, seq) => {
                let node = Arc::clone(&node);
                tokio::spawn(async move {
                    let outcome = node.group(shard).read_barrier(&token).await;
                    let _ = done.send((seq, outcome));
                });
            }
        }
    }
}

impl Driver {
    fn serve(&mut self, rx: &Receiver<Request>, status: &ShardStatus) {
        let mut batch: Vec<Request> = Vec::with_capacity(SHARD_BATCH_MAX);
        let mut stopping = false;
        let mut closed = false;
        loop {
            let queued = !rx.is_empty();
            if batch.is_empty() && !stopping && !closed {
                crossbeam_channel::select! {
                    recv(rx) -> request => match request {
                        Ok(request) => batch.push(request),
                        Err(_) => closed = true,
                    },
                    recv(self.done) -> outcome => {
                        if let Ok((seq, outcome)) = outcome {
                            self.note(seq, outcome);
                        }
                    },
                    default(self.idle_timeout()) => {},
                }
            } else if !self.inflight.is_empty() {
                // Work waits for the pipeline: block for an outcome only.
                if let Ok((seq, outcome)) = self.done.recv_timeout(SHARD_IDLE_TICK) {
                    self.note(seq, outcome);
                }
            }
            while let Ok((seq, outcome)) = self.done.try_recv() {
                self.note(seq, outcome);
            }
            self.release_ready();
            while batch.len() < SHARD_BATCH_MAX && !stopping {
                match rx.try_recv() {
                    Ok(Request::Shutdown) => stopping = true,
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            if let Some(at) = batch.iter().position(|r| matches!(r, Request::Shutdown)) {
                batch.remove(at);
                stopping = true;
            }
            if queued {
                status.note_loop_gap(self.answered_at.elapsed());
            }
            if self.inflight.len() < PIPELINE_DEPTH
                && (self.spec.is_some() || self.inflight.is_empty())
            {
                self.process(&mut batch);
            }
            if (stopping || closed) && batch.is_empty() && self.inflight.is_empty() {
                return;
            }
        }
    }

    /// Records the outcome of the batch numbered `seq`.
    fn note(&mut self, seq: u64, outcome: Result<(), ProposeError>) {
        if let Some(flight) = self.inflight.iter_mut().find(|f| f.seq == seq) {
            flight.outcome = Some(outcome);
        }
    }

    /// Answers, in order, every batch at the head of the pipeline whose outcome is known.
    fn release_ready(&mut self) {
        while self.inflight.front().is_some_and(|f| f.outcome.is_some()) {
            let flight = self.inflight.pop_front().expect("a front");
            let mut answers = flight.answers;
            match flight.outcome.expect("known") {
                Ok(()) => {
                    // Counted here, once the entry is committed, and not when decided: a
                    // batch that fails was decided on a copy that is then thrown away.
                    if flight.decisions > 0 {
                        metrics::counter!("boxoffice_cluster_entries_total").increment(1);
                        metrics::counter!("boxoffice_cluster_decisions_total")
                            .increment(flight.decisions as u64);
                        self.counters.count(flight.decisions, &flight.tally);
                    }
                }
                Err(error) => {
                    tracing::warn!(shard = self.shard, %error, decisions = flight.decisions, "batch not committed");
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
                    // Later batches were decided on top of this one: decide nothing more
                    // until the pipeline drains, then start again from what is committed.
                    self.spec = None;
                }
            }
            for (reply, result) in answers.replies {
                let _ = reply.send(result);
            }
            if !answers.reads.is_empty() {
                let now = self.now_ms();
                let group = self.node.group(usize::from(self.shard));
                group.state_machine().with(|committed| {
                    for read in answers.reads {
                        read(&committed.engine, now);
                    }
                });
            }
            self.answered_at = Instant::now();
        }
    }

    /// The time reads are answered at: the leader's clock, or the committed engine's.
    fn now_ms(&mut self) -> u64 {
        match &mut self.spec {
            Some(spec) => spec.clock.now_ms(),
            None => self
                .node
                .group(usize::from(self.shard))
                .state_machine()
                .with(|c| c.engine.now_ms()),
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
        let token = self.runtime.block_on(group.begin_term()).map_err(|e| {
            tracing::warn!(shard = self.shard, term = now.term, error = %e,
                "this node leads the shard but cannot start deciding yet");
            ShardError::Unavailable(format!("shard {}: {e}", self.shard))
        })?;
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

    /// Decides one batch and hands it to the pipeline (or refuses it, if this node may
    /// not decide). Shutdown requests were taken out by the caller.
    fn process(&mut self, batch: &mut Vec<Request>) {
        let mut answers = Answers::default();
        let mut commands = Vec::new();
        for request in batch.drain(..) {
            match request {
                Request::Read(read) => answers.reads.push(read),
                Request::Shutdown => {}
                Request::Command { command, reply } => commands.push((command, reply)),
            }
        }
        if commands.is_empty() && answers.reads.is_empty() {
            // Idle: only due holds to expire, and only on the leader.
            if self.spec.is_none() || self.lead().is_err() {
                return;
            }
        }
        if let Err(error) = self.lead() {
            // Nothing was decided: answered at once, in any order.
            for (_, reply) in commands {
                let _ = reply.send(Err(error.clone()));
            }
            return;
        }
        let (records, tally) = self.decide(commands, &mut answers);
        let decisions = records.len();
        if decisions == 0 && answers.replies.is_empty() && answers.reads.is_empty() {
            return;
        }
        let token = self.spec.as_ref().expect("lead() made it").token.clone();
        let seq = self.next_seq;
        self.next_seq += 1;
        let job = if decisions > 0 {
            Job::Propose(token, records, seq)
        } else {
            Job::Barrier(token, seq)
        };
        let outcome = self
            .jobs
            .send(job)
            .err()
            .map(|_| Err(ProposeError::Unknown("the proposer stopped".into())));
        self.inflight.push_back(InFlight {
            seq,
            answers,
            outcome,
            decisions,
            tally,
        });
    }

    /// Expires due holds, then decides every command on the leader's engine (the engine's
    /// own [`Engine::expire_due`] and [`Engine::execute`], as the single-node core). Returns
    /// the batch's encoded decisions, in order, and their count by kind.
    fn decide(
        &mut self,
        commands: Vec<(engine::Command, tokio::sync::oneshot::Sender<CommandResult>)>,
        answers: &mut Answers,
    ) -> (Vec<Vec<u8>>, Tally) {
        let spec = self.spec.as_mut().expect("lead() made the engine");
        let now = spec.clock.now_ms();
        let mut records = Vec::new();
        let mut tally = Tally::default();
        spec.engine.expire_due(now, |decision| {
            records.push(encode(decision));
            tally.count(decision);
        });
        let mut record = Vec::new();
        for (command, reply) in commands {
            let executed = spec.engine.execute(&command, now, &mut record);
            if let Some(decision) = &executed.decision {
                tally.count(decision);
                records.push(std::mem::take(&mut record));
            }
            let result = executed.output.map_err(ShardError::Rejected);
            answers.replies.push((reply, result));
        }
        (records, tally)
    }
}

/// One decision's log record.
fn encode(decision: &Decision) -> Vec<u8> {
    let mut record = Vec::new();
    decision.encode(&mut record);
    record
}
