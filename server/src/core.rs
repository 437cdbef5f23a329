//! The shard core: one shard's engine, log, record buffer and snapshot cadence, with no
//! thread, no channel and no clock of its own.
//!
//! [`ShardCore::decide`] is one batch: with the time it is given, it expires the holds that
//! are due (first, so their inventory is back before the batch decides), decides and applies
//! every command ([`Engine::execute`]), and hands the batch's decisions to the log stage
//! ([`log_stage`]), which writes and fdatasyncs off the deciding thread, group-committing
//! every batch queued since its last sync. The core goes on deciding later batches on the
//! state they leave (at most [`CoreOptions::depth`] in flight) and keeps each batch's answers
//! and reads. [`ShardCore::release`] hands them back in order, each batch only once the log
//! is durable up to its last decision. If a write or a sync failed, every batch after the
//! last durable seq has all its answers turned into [`ShardError::Unavailable`] (they were
//! computed on state that is not durable), the engine is rebuilt from what is durable, and
//! the log stage drops what it still had of them. A batch with reads is released with
//! nothing decided after it, so its reads run on exactly the durable state. So nothing the
//! core releases shows a decision before it is durable (invariant 4 of
//! docs/architecture.md).
//!
//! The core is generic over the log's [`Storage`]: the server runs it over real files on the
//! shard thread (`crate::shard`, which owns the queue, the clock, the replies and the
//! metrics) with the log stage on a thread of its own; the seeded simulation
//! (`server/tests/simulation.rs`) runs the very same core over the crash and fault storage
//! with a seeded clock, and steps the log stage itself.

pub mod log_stage;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Command, Decision, Engine};
use parking_lot::{Mutex, MutexGuard};
use wal::{FileStorage, ReplayError, Storage, Wal};

pub use log_stage::{Durability, LogLink, LogStage, Outcome};

use crate::limits::{WAL_FULL_PROBE_BYTES, WAL_FULL_RETRY_INTERVAL};

/// The core logs as the shard thread always has (its lines and `RUST_LOG` filters stay).
const LOG_TARGET: &str = "server::shard";
use crate::shard_status::{CommandResult, ShardError, ShardStatus};

/// Where a shard's log lives, and how to open another storage handle on it (recovery, and
/// the rebuild of the durable state after a log failure, each open one).
pub trait LogDir<S: Storage>: Send {
    /// The directory (for messages).
    fn path(&self) -> &Path;
    /// A new storage handle on the directory.
    fn open(&mut self) -> std::io::Result<S>;
}

/// A log directory of real files.
#[derive(Debug, Clone)]
pub struct FileDir(pub PathBuf);

impl LogDir<FileStorage> for FileDir {
    fn path(&self) -> &Path {
        &self.0
    }
    fn open(&mut self) -> std::io::Result<FileStorage> {
        FileStorage::new(&self.0)
    }
}

/// Snapshots written off the core's thread (the server's follower and snapshot writer,
/// `crate::snapshotter`; the simulation plays them itself).
pub trait SnapshotSource: Send {
    /// The newest snapshot made durable since the last call, if any (never blocks).
    fn take_done(&mut self) -> Option<u64>;
    /// Hands over the files the log no longer needs, to be deleted off the core's thread.
    fn remove(&mut self, names: Vec<String>);
    /// Held by whoever touches the directory outside the log's append path: the core takes
    /// it to reopen the directory (a rebuild) and for its snapshot at a clean stop.
    fn dir_lock(&self) -> DirLock;
}

/// The lock on a log directory's files outside the append path (see [`SnapshotSource`]).
pub type DirLock = Arc<Mutex<()>>;

/// How a core runs.
#[derive(Debug, Clone, Copy)]
pub struct CoreOptions {
    /// The log's tuning.
    pub wal: wal::Options,
    /// Decisions between two snapshots the core takes itself (when no [`SnapshotSource`]
    /// is set).
    pub snapshot_every: u64,
    /// Batches decided and not yet released, at most (1: each batch is durable before the
    /// next is decided). The server's is [`crate::limits::LOG_PIPELINE_DEPTH`].
    pub depth: usize,
}

/// Why a shard could not recover its state (a damaged directory: start-up stops).
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The log could not be opened (I/O, or corruption the log refuses).
    #[error("shard {shard}: cannot open the log in {}: {error}", dir.display())]
    Open {
        /// The shard.
        shard: u16,
        /// Its log directory.
        dir: PathBuf,
        /// What the log said.
        error: wal::Error,
    },
    /// The newest valid snapshot file does not decode into an engine.
    #[error("shard {shard}: snapshot {} unreadable: {reason}", path.display())]
    Snapshot {
        /// The shard.
        shard: u16,
        /// The snapshot file.
        path: PathBuf,
        /// The decoder's error.
        reason: String,
    },
    /// The snapshot is another shard's.
    #[error("shard {shard}: the snapshot in {} belongs to shard {found}", dir.display())]
    WrongShard {
        /// The shard.
        shard: u16,
        /// Its log directory.
        dir: PathBuf,
        /// The shard the snapshot names.
        found: u16,
    },
    /// A record could not be read or decoded.
    #[error("shard {shard}: replay failed: {error:?}")]
    Replay {
        /// The shard.
        shard: u16,
        /// The log's error, or the record that does not decode.
        error: ReplayError<String>,
    },
    /// Replaying broke an engine invariant.
    #[error("shard {shard}: recovery of {} panicked: {what}", dir.display())]
    Panicked {
        /// The shard.
        shard: u16,
        /// Its log directory.
        dir: PathBuf,
        /// The panic's message.
        what: String,
    },
}

/// What a core is doing: serving, refusing writes until there is space, or refusing writes
/// until a restart. The engine lives in the state, so a state without one is spelled out.
#[derive(Debug)]
enum State {
    /// Recovered and writing. Between batches the engine is exactly the log's durable state.
    Serving(Engine),
    /// The log found no space and cut itself back to its durable end: writes are refused
    /// (503) and a probe for space runs at `retry_at_ms`; reads go on from `engine`, the
    /// state rebuilt from what is durable. Nothing latched: a full disk heals by itself.
    Full {
        engine: Engine,
        reason: String,
        retry_at_ms: u64,
    },
    /// The log failed (a write, an fdatasync, damage): writes are refused until a restart
    /// (invariant 10). `durable` is the state rebuilt from the log's first `durable_seq`
    /// decisions, or why it could not be rebuilt (then reads are refused too).
    Failed {
        reason: String,
        durable_seq: u64,
        durable: Result<Engine, String>,
    },
}

pub use engine::Tally;

/// What became of a batch's decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The batch decided nothing: nothing was written.
    Nothing,
    /// Handed to the log stage; its outcome is not known yet.
    Pending,
    /// Written and fdatasynced: the answers stand.
    Durable,
    /// The write or the sync failed (of this batch, or of one before it still in flight):
    /// every answer of the batch is 503.
    Failed,
}

/// What one batch did.
#[derive(Debug, Clone, Copy)]
pub struct BatchReport {
    /// The batch's time (the given time, never before the engine's).
    pub now_ms: u64,
    /// Decisions made (and handed to the log).
    pub decisions: usize,
    /// What became of them.
    pub written: Written,
    /// The decisions by kind.
    pub tally: Tally,
    /// The log must be durable up to this seq before the batch's answers are released.
    pub last_seq: u64,
}

/// One fdatasync of the log stage (for the metrics): the batches and records it made
/// durable and the time of the write and the sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncReport {
    /// Batches made durable together.
    pub batches: usize,
    /// Records made durable.
    pub records: usize,
    /// The write and the fdatasync.
    pub elapsed: Duration,
}

/// A batch whose answers may be sent now, in this order: its decisions are durable (or
/// they failed, and every answer is 503).
pub struct Released<R, Q> {
    /// One answer per command, in order.
    pub replies: Vec<(R, CommandResult)>,
    /// The batch's reads, to run now against [`ShardCore::engine`] (the pipeline is
    /// drained when a batch with reads is released: the engine is the durable state).
    pub reads: Vec<Q>,
    /// What the batch did; `written` is final.
    pub report: BatchReport,
    /// The batch's encoded decisions, in log order (empty unless durable).
    pub records: Vec<Vec<u8>>,
}

/// A batch decided and not yet released.
struct InFlight<R, Q> {
    replies: Vec<(R, CommandResult)>,
    reads: Vec<Q>,
    report: BatchReport,
    records: Vec<Vec<u8>>,
}

/// What [`ShardCore::maintain`] did.
#[derive(Debug)]
pub enum Maintenance {
    /// Nothing was due.
    Nothing,
    /// A snapshot made off the core's thread was taken in at this seq.
    Adopted(u64),
    /// The core wrote a snapshot itself at this seq.
    Written(u64),
    /// The core's own snapshot failed (nothing lost: the log has every decision).
    WriteFailed(wal::Error),
}

/// One shard's deciding state; see the module documentation. `R` is what a command's
/// answer is sent to, `Q` a read (the core only keeps them in order).
pub struct ShardCore<S: Storage, R, Q> {
    index: u16,
    dir: Box<dyn LogDir<S>>,
    options: CoreOptions,
    log: LogLink<S>,
    /// The log stage, until the driver takes it to run it ([`ShardCore::take_log_stage`]).
    stage: Option<LogStage<S>>,
    state: State,
    /// The encoded decisions of the current (or last) batch: `records[..used]`.
    records: Vec<Vec<u8>>,
    used: usize,
    decisions_since_snapshot: u64,
    snapshots: Option<Box<dyn SnapshotSource>>,
    status: Arc<ShardStatus>,
    /// Batches decided in this epoch are written after each other; a failure starts a new
    /// epoch from the durable seq (the log stage drops what is left of the old one).
    epoch: u64,
    /// The seq the next decision gets.
    next_seq: u64,
    /// The seq known durable (from the log stage's outcomes).
    durable_seq: u64,
    in_flight: VecDeque<InFlight<R, Q>>,
    syncs: Vec<SyncReport>,
}

impl<S: Storage, R, Q> ShardCore<S, R, Q> {
    /// Recovers shard `index` from `dir`: its newest snapshot plus the log after it. A panic
    /// in recovery (an invariant that replayed data breaks) is a recovery failure like a bad
    /// checksum. `status` is the shard's health as `/ready` reports it; the core updates it
    /// when writes fail or resume (the caller marks it ready).
    pub fn recover(
        index: u16,
        dir: impl LogDir<S> + 'static,
        options: CoreOptions,
        status: Arc<ShardStatus>,
    ) -> Result<Self, RecoveryError> {
        let mut dir: Box<dyn LogDir<S>> = Box::new(dir);
        let recovered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let path = dir.path().to_path_buf();
            let storage = dir.open().map_err(|source| RecoveryError::Open {
                shard: index,
                dir: path.clone(),
                error: wal::Error::Io {
                    path: path.join(""),
                    op: "create directory",
                    source,
                },
            })?;
            recover_engine(index, &path, storage, options.wal, None)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(RecoveryError::Panicked {
                shard: index,
                dir: dir.path().to_path_buf(),
                what,
            })
        });
        let (engine, wal) = recovered?;
        let durable_seq = wal.durable_seq();
        let (log, stage) = log_stage::local(wal, Arc::clone(&status));
        Ok(ShardCore {
            index,
            dir,
            options,
            log,
            stage: Some(stage),
            state: State::Serving(engine),
            records: Vec::new(),
            used: 0,
            decisions_since_snapshot: 0,
            snapshots: None,
            status,
            epoch: 0,
            next_seq: durable_seq + 1,
            durable_seq,
            in_flight: VecDeque::new(),
            syncs: Vec::new(),
        })
    }

    /// The log stage, to run: on a thread of its own ([`LogStage::run`]) in the server,
    /// step by step in the simulation. `None` once taken. A core whose stage is not taken
    /// runs it inline: each batch is written and synced in [`ShardCore::decide`], on the
    /// deciding thread, and released by the next [`ShardCore::release`] (the server's depth
    /// 1, which saves the two thread handoffs a batch costs with a log thread).
    pub fn take_log_stage(&mut self) -> Option<LogStage<S>> {
        self.stage.take()
    }

    /// From now on snapshots are made off this thread by `source`, and the core only takes
    /// them in (without it, the core writes one itself every
    /// [`CoreOptions::snapshot_every`] decisions).
    pub fn set_snapshot_source(&mut self, source: Box<dyn SnapshotSource>) {
        self.snapshots = Some(source);
    }

    /// The shard's index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The state the next batch is decided on: every batch decided so far, durable or
    /// not. It is the durable state only when nothing is in flight ([`ShardCore::is_drained`]),
    /// which is when reads run. `None` if the log failed and even the durable state could
    /// not be rebuilt.
    pub fn engine(&self) -> Option<&Engine> {
        match &self.state {
            State::Serving(engine) | State::Full { engine, .. } => Some(engine),
            State::Failed { durable, .. } => durable.as_ref().ok(),
        }
    }

    /// Whether no batch is in flight (decided and not released).
    pub fn is_drained(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Batches decided and not yet released.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the core may decide another batch now: fewer than the pipeline's depth are
    /// in flight, no batch in flight carries reads (a read sees the state after its batch,
    /// so nothing is decided after it until it has run), and no snapshot of the core's own
    /// is due (it is taken on the durable state, so it waits for the pipeline to drain).
    pub fn can_decide(&self) -> bool {
        let own_snapshot_due = self.snapshots.is_none()
            && self.decisions_since_snapshot >= self.options.snapshot_every;
        self.in_flight.len() < self.options.depth.max(1)
            && self.in_flight.iter().all(|f| f.reads.is_empty())
            && (!own_snapshot_due || self.in_flight.is_empty())
    }

    /// Why writes are refused, if they are (a full log, or a failed one).
    pub fn refusal(&self) -> Option<&str> {
        match &self.state {
            State::Serving(_) => None,
            State::Full { reason, .. } | State::Failed { reason, .. } => Some(reason),
        }
    }

    /// Whether the log failed for good (until a restart).
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed { .. })
    }

    /// After a log failure: the durable seq it left, which reads show (`None` while the
    /// core can write, or waits for space).
    pub fn failed_at(&self) -> Option<u64> {
        match &self.state {
            State::Failed { durable_seq, .. } => Some(*durable_seq),
            _ => None,
        }
    }

    /// The log (tests inspect its storage). The log stage holds it while it writes or
    /// syncs.
    pub fn wal(&self) -> MutexGuard<'_, Wal<S>> {
        self.log.wal()
    }

    /// The last seq the core knows durable (from the log stage's reports).
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// The encoded decisions of the last batch decided, in log order.
    pub fn records(&self) -> &[Vec<u8>] {
        &self.records[..self.used]
    }

    /// The fdatasyncs reported since the last call (for the metrics).
    pub fn take_syncs(&mut self) -> Vec<SyncReport> {
        std::mem::take(&mut self.syncs)
    }

    /// When the core next has work without a request (engine time, ms): the next hold
    /// expiry, or the next probe for space.
    pub fn next_wake_ms(&self) -> Option<u64> {
        match &self.state {
            State::Serving(engine) => engine.next_expiry_ms(),
            State::Full { retry_at_ms, .. } => Some(*retry_at_ms),
            State::Failed { .. } => None,
        }
    }

    /// Decides one batch at time `now_ms` (see the module documentation) and hands its
    /// decisions to the log stage. Its answers (one per command, in order) and its reads
    /// are kept until [`ShardCore::release`] finds the batch durable, or failed. The
    /// caller asks [`ShardCore::can_decide`] first.
    pub fn decide(
        &mut self,
        now_ms: u64,
        commands: impl IntoIterator<Item = (Command, R)>,
        reads: Vec<Q>,
    ) -> BatchReport {
        let now = self.engine().map_or(now_ms, |e| now_ms.max(e.now_ms()));
        self.retry_space(now);
        self.used = 0;
        let mut tally = Tally::default();
        let mut replies = Vec::new();
        match &mut self.state {
            State::Serving(engine) => {
                // Expire due holds first, so their inventory is back before this batch
                // decides. An expiry that feeds a waiting list comes alone: ask again until
                // none is due.
                let (records, used) = (&mut self.records, &mut self.used);
                engine.expire_due(now, |decision| {
                    decision.encode(next_record(records, *used));
                    *used += 1;
                    tally.count(decision);
                });
                for (command, reply) in commands {
                    let buf = next_record(&mut self.records, self.used);
                    let executed = engine.execute(&command, now, buf);
                    if let Some(decision) = &executed.decision {
                        tally.count(decision);
                        self.used += 1;
                    }
                    let result = executed.output.map_err(ShardError::Rejected);
                    replies.push((reply, result));
                }
            }
            State::Full { reason, .. } | State::Failed { reason, .. } => {
                for (_, reply) in commands {
                    replies.push((reply, Err(ShardError::Unavailable(reason.clone()))));
                }
            }
        }
        let mut report = BatchReport {
            now_ms: now,
            decisions: self.used,
            written: Written::Nothing,
            tally,
            last_seq: self.next_seq - 1,
        };
        let mut records = Vec::new();
        if self.used > 0 {
            records = self.records[..self.used].to_vec();
            self.log.submit(
                self.epoch,
                self.next_seq,
                self.records[..self.used].to_vec(),
            );
            self.next_seq += self.used as u64;
            report.last_seq = self.next_seq - 1;
            report.written = Written::Pending;
            if let Some(stage) = &mut self.stage {
                // No driver took the stage: it runs here, inline (no pipeline).
                stage.write();
                stage.sync();
            }
        }
        if replies.is_empty() && reads.is_empty() && self.used == 0 {
            return report;
        }
        self.in_flight.push_back(InFlight {
            replies,
            reads,
            report,
            records,
        });
        report
    }

    /// Takes in what the log stage reported and appends to `out`, in order, every batch
    /// at the head of the pipeline whose answers may be sent: durable, or failed (then
    /// every answer is 503). Never blocks. Returns how many it released.
    pub fn release(&mut self, out: &mut Vec<Released<R, Q>>) -> usize {
        while let Some(outcome) = self.log.try_outcome() {
            self.note(outcome);
        }
        self.pop_released(out)
    }

    /// Waits at most `timeout` for the log stage's next report, then releases like
    /// [`ShardCore::release`] (the server's shard thread; the simulation steps the stage
    /// itself and never waits).
    pub fn wait_release(&mut self, timeout: Duration, out: &mut Vec<Released<R, Q>>) -> usize {
        if let Some(outcome) = self.log.wait_outcome(timeout) {
            self.note(outcome);
        }
        self.release(out)
    }

    /// The channel the log stage reports on (the shard thread selects on it with its
    /// queue; [`ShardCore::release`] takes the reports).
    pub fn reports(&self) -> &crossbeam_channel::Receiver<Outcome> {
        self.log.outcomes()
    }

    fn pop_released(&mut self, out: &mut Vec<Released<R, Q>>) -> usize {
        let mut n = 0;
        while self.in_flight.front().is_some_and(|f| {
            f.report.written == Written::Failed || f.report.last_seq <= self.durable_seq
        }) {
            let mut flight = self.in_flight.pop_front().expect("a front");
            if flight.report.written == Written::Pending {
                flight.report.written = Written::Durable;
            }
            n += 1;
            out.push(Released {
                replies: flight.replies,
                reads: flight.reads,
                report: flight.report,
                records: flight.records,
            });
        }
        n
    }

    /// One report of the log stage.
    fn note(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Durable {
                upto,
                batches,
                records,
                elapsed,
            } => {
                if upto > self.durable_seq {
                    self.decisions_since_snapshot += upto - self.durable_seq;
                    self.durable_seq = upto;
                }
                self.syncs.push(SyncReport {
                    batches,
                    records,
                    elapsed,
                });
            }
            Outcome::Failed {
                epoch,
                durable,
                error,
            } => {
                if epoch != self.epoch {
                    // A batch of an epoch already failed: answered 503 already.
                    return;
                }
                if durable > self.durable_seq {
                    self.decisions_since_snapshot += durable - self.durable_seq;
                    self.durable_seq = durable;
                }
                let reason = if error.is_no_space() {
                    let reason = format!(
                        "shard {}: the log has no space, writes refused until there is \
                         (checked every {} ms): {error}",
                        self.index,
                        WAL_FULL_RETRY_INTERVAL.as_millis()
                    );
                    let now = self.engine().map_or(0, Engine::now_ms);
                    self.wait_for_space(reason.clone(), now);
                    reason
                } else {
                    let reason = format!(
                        "shard {}: the log failed, writes refused: {error}",
                        self.index
                    );
                    self.fail(reason.clone());
                    reason
                };
                // Every batch after the durable seq was decided on state that is not
                // durable: none of its answers may be shown.
                for flight in &mut self.in_flight {
                    if flight.report.last_seq > self.durable_seq {
                        flight.report.written = Written::Failed;
                        flight.records.clear();
                        for (_, result) in flight.replies.iter_mut() {
                            *result = Err(ShardError::Unavailable(reason.clone()));
                        }
                    }
                }
                self.epoch += 1;
                self.next_seq = self.durable_seq + 1;
            }
        }
    }

    /// After a batch's answers are out: takes in a snapshot made off this thread, or (with
    /// no [`SnapshotSource`]) writes one itself when the cadence is due and nothing is in
    /// flight (a snapshot holds the durable state only).
    pub fn maintain(&mut self) -> Maintenance {
        if self.snapshots.is_some() {
            self.adopt_snapshots()
        } else if self.decisions_since_snapshot >= self.options.snapshot_every
            && self.in_flight.is_empty()
        {
            self.snapshot()
        } else {
            Maintenance::Nothing
        }
    }

    /// Clean stop: the driver has released everything in flight; sync and snapshot, and
    /// stop the log stage.
    pub fn shutdown(&mut self) {
        debug_assert!(self.in_flight.is_empty(), "shutdown with batches in flight");
        if let State::Serving(_) = self.state {
            let synced = self.log.wal().sync();
            if let Err(error) = synced {
                tracing::error!(target: LOG_TARGET, shard = self.index, %error, "final sync failed");
                self.log.close();
                return;
            }
            self.adopt_snapshots();
            self.snapshot();
        }
        self.log.close();
        tracing::info!(target: LOG_TARGET, shard = self.index, "shard stopped");
    }

    /// Latches the failure and rebuilds the engine from what is durable on disk (the
    /// batches that failed were applied in memory only).
    fn fail(&mut self, reason: String) {
        tracing::error!(target: LOG_TARGET, shard = self.index, %reason, "log failure");
        metrics::counter!("boxoffice_wal_failures_total").increment(1);
        self.status.set_failed(reason.clone());
        let durable_seq = self.durable_seq;
        let durable = self.rebuild_durable();
        self.state = State::Failed {
            reason,
            durable_seq,
            durable,
        };
    }

    /// The engine of exactly what is durable, rebuilt from the directory.
    fn rebuild_durable(&mut self) -> Result<Engine, String> {
        let durable = self.durable_seq;
        // Reopening the directory would race the snapshot writer (it removes temporary files
        // and reads every segment): wait for it. A failure path, never a batch.
        let lock = self.snapshots.as_ref().map(|s| s.dir_lock());
        let _guard = lock.as_ref().map(|l| l.lock());
        let storage = match self.dir.open() {
            Ok(storage) => ReadOnly(storage),
            Err(source) => {
                let error = RecoveryError::Open {
                    shard: self.index,
                    dir: self.dir.path().to_path_buf(),
                    error: wal::Error::Io {
                        path: self.dir.path().join(""),
                        op: "create directory",
                        source,
                    },
                };
                tracing::error!(target: LOG_TARGET, shard = self.index, error = %error, "cannot rebuild durable state; reads refused too");
                return Err(error.to_string());
            }
        };
        let path = self.dir.path().to_path_buf();
        match recover_engine(self.index, &path, storage, self.options.wal, Some(durable)) {
            Ok((engine, _reader)) => Ok(engine),
            Err(e) => {
                tracing::error!(target: LOG_TARGET, shard = self.index, error = %e, "cannot rebuild durable state; reads refused too");
                Err(e.to_string())
            }
        }
    }

    /// The log found no space and cut itself back to its durable end: refuse writes (503)
    /// and check for space every [`WAL_FULL_RETRY_INTERVAL`]; reads go on from the durable
    /// state. Nothing latched: a full disk heals without a restart.
    fn wait_for_space(&mut self, reason: String, now: u64) {
        tracing::warn!(target: LOG_TARGET, shard = self.index, %reason, "log full; writes refused until there is space");
        metrics::counter!("boxoffice_wal_full_total", "shard" => self.index.to_string())
            .increment(1);
        let durable_seq = self.durable_seq;
        match self.rebuild_durable() {
            Ok(engine) => {
                self.status.set_full(reason.clone());
                self.state = State::Full {
                    engine,
                    reason,
                    retry_at_ms: now + WAL_FULL_RETRY_INTERVAL.as_millis() as u64,
                };
            }
            Err(error) => {
                let reason = format!("{reason}; and the durable state could not be rebuilt");
                self.status.set_failed(reason.clone());
                self.state = State::Failed {
                    reason,
                    durable_seq,
                    durable: Err(error),
                };
            }
        }
    }

    /// While the log is full: when the probe is due, writes and fdatasyncs a few batches'
    /// worth of zeros after the last record; if that works, writes resume. A failed
    /// fdatasync there latches for good, like any other. Nothing is in flight past the
    /// durable seq while the log is full (every such batch failed), so the probe does not
    /// race a write.
    fn retry_space(&mut self, now: u64) {
        let State::Full { retry_at_ms, .. } = &mut self.state else {
            return;
        };
        if now < *retry_at_ms {
            return;
        }
        let probed = self.log.wal().probe_space(WAL_FULL_PROBE_BYTES);
        match probed {
            Ok(()) => {
                tracing::info!(target: LOG_TARGET,
                    shard = self.index,
                    "the log has space again; writes resumed"
                );
                let placeholder = State::Failed {
                    reason: String::new(),
                    durable_seq: 0,
                    durable: Err(String::new()),
                };
                if let State::Full { engine, .. } = std::mem::replace(&mut self.state, placeholder)
                {
                    self.state = State::Serving(engine);
                }
                self.status.set_ready();
            }
            Err(error) if error.is_no_space() => {
                *retry_at_ms = now + WAL_FULL_RETRY_INTERVAL.as_millis() as u64;
            }
            Err(error) => {
                let reason = format!(
                    "shard {}: the log failed while checking for space, writes refused: {error}",
                    self.index
                );
                self.fail(reason);
            }
        }
    }

    /// A snapshot made durable off this thread: the log drops what it no longer needs from
    /// its lists, and the source deletes those files. No I/O here.
    fn adopt_snapshots(&mut self) -> Maintenance {
        let Some(source) = &mut self.snapshots else {
            return Maintenance::Nothing;
        };
        let Some(seq) = source.take_done() else {
            return Maintenance::Nothing;
        };
        let adopted = self.log.wal().adopt_snapshot(seq);
        match adopted {
            Ok(obsolete) => {
                self.decisions_since_snapshot = 0;
                source.remove(obsolete);
                Maintenance::Adopted(seq)
            }
            Err(error) => {
                tracing::warn!(target: LOG_TARGET, shard = self.index, seq, %error, "snapshot not taken in");
                Maintenance::Nothing
            }
        }
    }

    /// A snapshot on this thread: at a clean stop, or when no snapshot source is set. Only
    /// with nothing in flight: the engine is then the durable state.
    fn snapshot(&mut self) -> Maintenance {
        let State::Serving(engine) = &self.state else {
            return Maintenance::Nothing;
        };
        if !self.in_flight.is_empty() {
            return Maintenance::Nothing;
        }
        let lock = self.snapshots.as_ref().map(|s| s.dir_lock());
        let _guard = lock.as_ref().map(|l| l.lock());
        let started = Instant::now();
        let bytes = engine.snapshot();
        let mut wal = self.log.wal();
        let seq = wal.last_seq();
        // A failed snapshot loses nothing (the log still has every decision); retry later.
        self.decisions_since_snapshot = 0;
        match wal.write_snapshot(seq, &bytes) {
            Ok(()) => {
                tracing::info!(target: LOG_TARGET,
                    shard = self.index,
                    seq,
                    bytes = bytes.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
                Maintenance::Written(seq)
            }
            Err(error) => {
                tracing::warn!(target: LOG_TARGET, shard = self.index, %error, "snapshot failed");
                Maintenance::WriteFailed(error)
            }
        }
    }
}

/// Rebuilds a shard's engine from its newest snapshot plus the log after it, up to
/// `upto_seq` when given (after a log failure: only what is durable).
fn recover_engine<T: Storage>(
    index: u16,
    path: &Path,
    storage: T,
    options: wal::Options,
    upto_seq: Option<u64>,
) -> Result<(Engine, Wal<T>), RecoveryError> {
    let started = Instant::now();
    let (mut wal, recovery) =
        Wal::open_with(storage, options).map_err(|error| RecoveryError::Open {
            shard: index,
            dir: path.to_path_buf(),
            error,
        })?;
    let (mut engine, from_seq) = match &recovery.snapshot {
        Some(snapshot) => {
            let engine = Engine::restore(&snapshot.bytes).map_err(|e| RecoveryError::Snapshot {
                shard: index,
                path: snapshot.path.clone(),
                reason: format!("{e:?}"),
            })?;
            (engine, snapshot.seq + 1)
        }
        None => (Engine::new(index), 1),
    };
    if engine.shard() != index {
        return Err(RecoveryError::WrongShard {
            shard: index,
            dir: path.to_path_buf(),
            found: engine.shard(),
        });
    }
    let upto = upto_seq.unwrap_or(u64::MAX);
    let replayed = wal
        .replay(from_seq, |seq, bytes| {
            if seq > upto {
                return Ok(());
            }
            let decision = Decision::decode(bytes)
                .map_err(|e| format!("record {seq} in {} undecodable: {e:?}", path.display()))?;
            engine.apply(&decision);
            Ok::<(), String>(())
        })
        .map_err(|error| RecoveryError::Replay {
            shard: index,
            error,
        })?;
    engine.check_invariants();
    tracing::info!(target: LOG_TARGET,
        shard = index,
        snapshot_seq = recovery.snapshot.as_ref().map(|s| s.seq),
        replayed,
        torn_tail = ?recovery.torn_tail,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "shard recovered"
    );
    if let Some(torn) = &recovery.torn_tail {
        tracing::warn!(target: LOG_TARGET,
            shard = index,
            ?torn,
            "cut a torn record at the end of the log"
        );
        metrics::counter!("boxoffice_wal_torn_tails_total").increment(1);
    }
    Ok((engine, wal))
}

/// A view of a log directory that reads and never changes anything: the rebuild of the
/// durable state after a log failure opens the directory through it, so that opening (which
/// cuts torn tails and reserved zeros, and removes temporary files) cannot make a record
/// past the durable seq durable (its batch was answered 503), nor race the snapshot writer's
/// files. Every change is accepted and dropped; the log it opens is only replayed.
struct ReadOnly<S>(S);

impl<S: Storage> Storage for ReadOnly<S> {
    fn dir(&self) -> &Path {
        self.0.dir()
    }
    fn list(&self) -> std::io::Result<Vec<String>> {
        self.0.list()
    }
    fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        self.0.read(name)
    }
    fn create(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn append(&mut self, _: &str, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn sync(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn truncate(&mut self, _: &str, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn rename(&mut self, _: &str, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn remove(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn sync_dir(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn close(&mut self, name: &str) {
        self.0.close(name);
    }
}

/// The next record buffer of a batch, cleared, reusing the buffers' allocations.
fn next_record(records: &mut Vec<Vec<u8>>, used: usize) -> &mut Vec<u8> {
    if records.len() == used {
        records.push(Vec::with_capacity(128));
    }
    let buf = &mut records[used];
    buf.clear();
    buf
}
