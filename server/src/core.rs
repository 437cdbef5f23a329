//! The shard core: one shard's engine, log, record buffer and snapshot cadence, with no
//! thread, no channel and no clock of its own.
//!
//! [`ShardCore::decide`] is one batch: with the time it is given, it expires the holds that
//! are due (first, so their inventory is back before the batch decides), decides and applies
//! every command, appends the batch's decisions with one write, makes them durable with one
//! fdatasync, and only then hands back every answer. If the write or the sync failed, every
//! answer of the batch becomes [`ShardError::Unavailable`] (they were computed on state that
//! is not durable) and the engine is rebuilt from what is durable. So nothing the core
//! returns shows a decision before it is durable (invariant 4 of docs/architecture.md).
//!
//! The core is generic over the log's [`Storage`]: the server runs it over real files on the
//! shard thread (`crate::shard`, which owns the queue, the clock, the replies and the
//! metrics); the seeded simulation (`server/tests/simulation.rs`) runs the very same core over
//! the crash and fault storage with a seeded clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::decision::{Cascaded, WaitlistLeft};
use engine::{Command, Decided, Decision, Engine};
use parking_lot::Mutex;
use wal::{FileStorage, ReplayError, Storage, Wal};

use crate::limits::{WAL_FULL_PROBE_BYTES, WAL_FULL_RETRY_INTERVAL};

/// The core logs as the shard thread always has (its lines and `RUST_LOG` filters stay).
const LOG_TARGET: &str = "server::shard";
use crate::shard::{CommandResult, ShardError, ShardStatus};

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

/// Decisions of one batch by kind (a purchase is a hold and its confirmation at once and
/// counts as a purchase only).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Holds placed (waiting-list offers included).
    pub placed: u64,
    /// Holds confirmed.
    pub confirmed: u64,
    /// Holds released.
    pub released: u64,
    /// Holds expired.
    pub expired: u64,
    /// Purchases.
    pub purchased: u64,
    /// Bookings cancelled.
    pub cancelled: u64,
}

impl Tally {
    fn count(&mut self, decision: &Decision) {
        match decision {
            Decision::HoldPlaced(_) => self.placed += 1,
            Decision::HoldConfirmed(_) => self.confirmed += 1,
            Decision::HoldReleased(_) => self.released += 1,
            Decision::HoldExpired(_) => self.expired += 1,
            Decision::Purchased(_) => self.purchased += 1,
            Decision::BookingCancelled(_) => self.cancelled += 1,
            // A release, expiry or cancel that fed a waiting list counts as itself, and
            // each offer it made as a hold placed.
            Decision::Cascaded(Cascaded { base, steps, .. }) => {
                self.count(base);
                self.count_offers(steps);
            }
            Decision::WaitlistLeft(WaitlistLeft { steps, .. }) => self.count_offers(steps),
            Decision::EventCreated(_)
            | Decision::EventCreatedWith(_)
            | Decision::HoldExtended(_)
            | Decision::WaitlistJoined(_) => {}
        }
    }

    fn count_offers(&mut self, steps: &[engine::WaitStep]) {
        let offers = steps
            .iter()
            .filter(|step| matches!(step, engine::WaitStep::Offered { .. }))
            .count();
        self.placed += offers as u64;
    }
}

/// What became of a batch's decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The batch decided nothing: nothing was written.
    Nothing,
    /// Appended and fdatasynced: the answers stand.
    Durable,
    /// The write or the sync failed: every answer of the batch is 503.
    Failed,
}

/// What one batch did.
#[derive(Debug, Clone, Copy)]
pub struct BatchReport {
    /// The batch's time (the given time, never before the engine's).
    pub now_ms: u64,
    /// Decisions made (and handed to the log).
    pub decisions: usize,
    /// How long the write and the fdatasync took, if there was one.
    pub sync: Option<Duration>,
    /// What became of them.
    pub written: Written,
    /// The decisions by kind.
    pub tally: Tally,
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

/// One shard's deciding state; see the module documentation.
pub struct ShardCore<S: Storage> {
    index: u16,
    dir: Box<dyn LogDir<S>>,
    options: CoreOptions,
    wal: Wal<S>,
    state: State,
    /// The encoded decisions of the current (or last) batch: `records[..used]`.
    records: Vec<Vec<u8>>,
    used: usize,
    decisions_since_snapshot: u64,
    snapshots: Option<Box<dyn SnapshotSource>>,
    status: Arc<ShardStatus>,
}

impl<S: Storage> ShardCore<S> {
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
        Ok(ShardCore {
            index,
            dir,
            options,
            wal,
            state: State::Serving(engine),
            records: Vec::new(),
            used: 0,
            decisions_since_snapshot: 0,
            snapshots: None,
            status,
        })
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

    /// The state reads see: the durable state (between batches), or `None` if the log
    /// failed and even the durable state could not be rebuilt.
    pub fn engine(&self) -> Option<&Engine> {
        match &self.state {
            State::Serving(engine) | State::Full { engine, .. } => Some(engine),
            State::Failed { durable, .. } => durable.as_ref().ok(),
        }
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

    /// The log (tests inspect its storage).
    pub fn wal(&self) -> &Wal<S> {
        &self.wal
    }

    /// The last seq known durable.
    pub fn durable_seq(&self) -> u64 {
        self.wal.durable_seq()
    }

    /// The encoded decisions of the last batch, in log order (after a durable batch: the
    /// records that made the log durable up to [`ShardCore::durable_seq`]).
    pub fn records(&self) -> &[Vec<u8>] {
        &self.records[..self.used]
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

    /// One batch at time `now_ms` (see the module documentation): appends to `replies` one
    /// answer per command, in order, each final (durable, or 503).
    #[allow(clippy::too_many_lines)]
    pub fn decide<R>(
        &mut self,
        now_ms: u64,
        commands: impl IntoIterator<Item = (Command, R)>,
        replies: &mut Vec<(R, CommandResult)>,
    ) -> BatchReport {
        let now = self.engine().map_or(now_ms, |e| now_ms.max(e.now_ms()));
        self.retry_space(now);
        self.used = 0;
        let mut tally = Tally::default();
        let first = replies.len();
        match &mut self.state {
            State::Serving(engine) => {
                // Expire due holds first, so their inventory is back before this batch
                // decides. An expiry that feeds a waiting list comes alone: ask again until
                // none is due.
                let mut expired = 0;
                while expired < engine::limits::EXPIRE_BATCH_MAX {
                    let due = engine.decide_expiry(now, engine::limits::EXPIRE_BATCH_MAX - expired);
                    if due.is_empty() {
                        break;
                    }
                    for decision in due {
                        engine.apply(&decision);
                        push_record(&mut self.records, &mut self.used, &decision);
                        tally.count(&decision);
                        expired += 1;
                    }
                }
                for (command, reply) in commands {
                    let result = execute(
                        engine,
                        &command,
                        now,
                        &mut self.records,
                        &mut self.used,
                        &mut tally,
                    );
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
            sync: None,
            written: Written::Nothing,
            tally,
        };
        if self.used == 0 {
            return report;
        }
        crate::testhooks::pause_before_sync();
        let started = Instant::now();
        // Published for `/ready` and `/metrics`, which read it while this thread may be
        // blocked in the write or the fdatasync (a frozen disk).
        self.status.set_unsynced(true);
        let written = self
            .wal
            .append(&self.records[..self.used])
            .and_then(|_| self.wal.sync());
        self.status.set_unsynced(false);
        report.sync = Some(started.elapsed());
        match written {
            Ok(()) => {
                self.decisions_since_snapshot += self.used as u64;
                report.written = Written::Durable;
            }
            Err(error) => {
                let reason = if error.is_no_space() {
                    let reason = format!(
                        "shard {}: the log has no space, writes refused until there is \
                         (checked every {} ms): {error}",
                        self.index,
                        WAL_FULL_RETRY_INTERVAL.as_millis()
                    );
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
                // Every answer of this batch was computed on state that is not durable:
                // none of it may be shown.
                for (_, result) in replies[first..].iter_mut() {
                    *result = Err(ShardError::Unavailable(reason.clone()));
                }
                report.written = Written::Failed;
            }
        }
        report
    }

    /// After a batch's answers are out: takes in a snapshot made off this thread, or (with
    /// no [`SnapshotSource`]) writes one itself when the cadence is due.
    pub fn maintain(&mut self) -> Maintenance {
        if self.snapshots.is_some() {
            self.adopt_snapshots()
        } else if self.decisions_since_snapshot >= self.options.snapshot_every {
            self.snapshot()
        } else {
            Maintenance::Nothing
        }
    }

    /// Clean stop: everything queued is answered already; sync and snapshot.
    pub fn shutdown(&mut self) {
        if let State::Serving(_) = self.state {
            if let Err(error) = self.wal.sync() {
                tracing::error!(target: LOG_TARGET, shard = self.index, %error, "final sync failed");
                return;
            }
            self.adopt_snapshots();
            self.snapshot();
        }
        tracing::info!(target: LOG_TARGET, shard = self.index, "shard stopped");
    }

    /// Latches the failure and rebuilds the engine from what is durable on disk (the batch
    /// that failed was applied in memory only).
    fn fail(&mut self, reason: String) {
        tracing::error!(target: LOG_TARGET, shard = self.index, %reason, "log failure");
        metrics::counter!("boxoffice_wal_failures_total").increment(1);
        self.status.set_failed(reason.clone());
        let durable_seq = self.wal.durable_seq();
        let durable = self.rebuild_durable();
        self.state = State::Failed {
            reason,
            durable_seq,
            durable,
        };
    }

    /// The engine of exactly what is durable, rebuilt from the directory.
    fn rebuild_durable(&mut self) -> Result<Engine, String> {
        let durable = self.wal.durable_seq();
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
        let durable_seq = self.wal.durable_seq();
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
    /// fdatasync there latches for good, like any other.
    fn retry_space(&mut self, now: u64) {
        let State::Full { retry_at_ms, .. } = &mut self.state else {
            return;
        };
        if now < *retry_at_ms {
            return;
        }
        match self.wal.probe_space(WAL_FULL_PROBE_BYTES) {
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
        match self.wal.adopt_snapshot(seq) {
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

    /// A snapshot on this thread: at a clean stop, or when no snapshot source is set.
    fn snapshot(&mut self) -> Maintenance {
        let State::Serving(engine) = &self.state else {
            return Maintenance::Nothing;
        };
        let lock = self.snapshots.as_ref().map(|s| s.dir_lock());
        let _guard = lock.as_ref().map(|l| l.lock());
        let started = Instant::now();
        let bytes = engine.snapshot();
        let seq = self.wal.last_seq();
        // A failed snapshot loses nothing (the log still has every decision); retry later.
        self.decisions_since_snapshot = 0;
        match self.wal.write_snapshot(seq, &bytes) {
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

/// Decides and applies one command, encoding its decision into the batch's records.
fn execute(
    engine: &mut Engine,
    command: &Command,
    now: u64,
    records: &mut Vec<Vec<u8>>,
    used: &mut usize,
    tally: &mut Tally,
) -> CommandResult {
    match engine.decide(command, now) {
        Ok(Decided::Change(decision)) => {
            engine.apply(&decision);
            push_record(records, used, &decision);
            tally.count(&decision);
            Ok(engine.output(&decision, now))
        }
        Ok(Decided::Remembered(output)) => Ok(output),
        Err(rejection) => Err(ShardError::Rejected(rejection)),
    }
}

/// Encodes a decision into the next record buffer, reusing the buffers' allocations.
pub(crate) fn push_record(records: &mut Vec<Vec<u8>>, used: &mut usize, decision: &Decision) {
    if records.len() == *used {
        records.push(Vec::with_capacity(128));
    }
    let buf = &mut records[*used];
    buf.clear();
    decision.encode(buf);
    *used += 1;
}
