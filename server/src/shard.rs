//! One shard: a thread that owns an engine and a log directory.
//!
//! The loop takes a batch of requests from its bounded queue (or wakes for the next hold
//! expiry), reads the clock once, decides and applies every command, appends the
//! decisions with one write, makes them durable with one fdatasync, and only then answers
//! everyone in the batch, reads included. So no reply and no read shows a decision before
//! it is durable (invariant 4). If the log fails, the shard rebuilds its state from what is
//! durable on disk, answers 503 to every later write, and says why in `/ready`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use engine::{Command, Decided, Decision, Engine, Output, Rejection};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use wal::Wal;

use crate::limits::{SHARD_BATCH_MAX, SHARD_IDLE_TICK, SNAPSHOT_EVERY_DECISIONS};

/// The environment variable of the power-cut test hook (see `Shard::durable_journal`).
pub const DURABLE_JOURNAL_ENV: &str = "BOXOFFICE_TEST_DURABLE_JOURNAL";

/// A read: runs on the shard thread against durable state at the batch's `now`.
pub type ReadFn = Box<dyn FnOnce(&Engine, u64) + Send>;

/// What a shard answers to a command.
pub type CommandResult = Result<Output, ShardError>;

/// A request to a shard.
pub enum Request {
    /// A state-changing command and where to send its outcome.
    Command {
        /// The command.
        command: Command,
        /// Gets the outcome once it is durable.
        reply: oneshot::Sender<CommandResult>,
    },
    /// A read, answered after the batch's decisions are durable.
    Read(ReadFn),
    /// Clean shutdown: answer everything queued before this, sync, snapshot, stop.
    Shutdown,
}

/// Why a shard did not carry out a command.
#[derive(Debug, Clone)]
pub enum ShardError {
    /// The engine refused it (a business outcome).
    Rejected(Rejection),
    /// The shard cannot write (log failure, or recovery failed); the reason is logged.
    Unavailable(String),
}

/// Why a request could not even be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is full: overload.
    Full,
    /// The shard thread has stopped.
    Stopped,
}

const RECOVERING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;

/// A shard's health, shared with the HTTP side for `/ready`.
#[derive(Debug, Default)]
pub struct ShardStatus {
    state: AtomicU8,
    reason: Mutex<Option<String>>,
    /// Set when the failure happened in recovery (damage on disk), not in a later write.
    at_recovery: std::sync::atomic::AtomicBool,
}

impl ShardStatus {
    /// Recovered and able to write.
    pub fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }
    /// Still replaying its log.
    pub fn is_recovering(&self) -> bool {
        self.state.load(Ordering::Acquire) == RECOVERING
    }
    /// Why the shard cannot write, if it cannot.
    pub fn failure(&self) -> Option<String> {
        self.reason.lock().clone()
    }
    fn set_ready(&self) {
        self.state.store(READY, Ordering::Release);
    }
    /// Why recovery failed, if it did (the server stops start-up on it).
    pub fn recovery_failure(&self) -> Option<String> {
        if self.at_recovery.load(Ordering::Acquire) {
            self.failure()
        } else {
            None
        }
    }
    fn set_recovery_failed(&self, reason: String) {
        self.at_recovery.store(true, Ordering::Release);
        self.set_failed(reason);
    }
    fn set_failed(&self, reason: String) {
        *self.reason.lock() = Some(reason);
        self.state.store(FAILED, Ordering::Release);
    }
}

/// The HTTP side's handle on a shard thread.
pub struct ShardHandle {
    tx: Sender<Request>,
    status: Arc<ShardStatus>,
}

impl ShardHandle {
    /// Queues a request without waiting.
    pub fn try_send(&self, request: Request) -> Result<(), QueueError> {
        self.tx.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => QueueError::Full,
            TrySendError::Disconnected(_) => QueueError::Stopped,
        })
    }
    /// Asks the shard to stop after everything queued so far; waits for queue space.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown);
    }
    /// Requests waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.len()
    }
    /// The shard's health.
    pub fn status(&self) -> &ShardStatus {
        &self.status
    }
}

/// Starts shard `index` on log directory `dir`: it recovers, then serves its queue until
/// every [`ShardHandle`] clone's sender is dropped, then syncs, snapshots and ends.
pub fn spawn(
    index: u16,
    dir: PathBuf,
    queue_capacity: usize,
    wal_options: wal::Options,
) -> std::io::Result<(ShardHandle, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded(queue_capacity.max(1));
    let status = Arc::new(ShardStatus::default());
    let thread_status = Arc::clone(&status);
    let thread = std::thread::Builder::new()
        .name(format!("shard-{index}"))
        .spawn(move || run(index, &dir, wal_options, &rx, &thread_status))?;
    Ok((ShardHandle { tx, status }, thread))
}

/// Wall-clock milliseconds since the Unix epoch; the shard never lets it go back.
fn clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Rebuilds a shard's engine from its newest snapshot plus the log after it, up to
/// `upto_seq` when given (after a log failure: only what is durable).
fn recover(
    index: u16,
    dir: &Path,
    options: wal::Options,
    upto_seq: Option<u64>,
) -> Result<(Engine, Wal), String> {
    let started = Instant::now();
    let (mut wal, recovery) = Wal::open(dir, options).map_err(|e| {
        format!(
            "shard {index}: cannot open the log in {}: {e}",
            dir.display()
        )
    })?;
    let (mut engine, from_seq) = match &recovery.snapshot {
        Some(snapshot) => {
            let engine = Engine::restore(&snapshot.bytes).map_err(|e| {
                format!(
                    "shard {index}: snapshot {} unreadable: {e:?}",
                    snapshot.path.display()
                )
            })?;
            (engine, snapshot.seq + 1)
        }
        None => (Engine::new(index), 1),
    };
    if engine.shard() != index {
        return Err(format!(
            "shard {index}: the snapshot in {} belongs to shard {}",
            dir.display(),
            engine.shard()
        ));
    }
    let upto = upto_seq.unwrap_or(u64::MAX);
    let replayed = wal
        .replay(from_seq, |seq, bytes| {
            if seq > upto {
                return Ok(());
            }
            let decision = Decision::decode(bytes)
                .map_err(|e| format!("record {seq} in {} undecodable: {e:?}", dir.display()))?;
            engine.apply(&decision);
            Ok::<(), String>(())
        })
        .map_err(|e| format!("shard {index}: replay failed: {e:?}"))?;
    engine.check_invariants();
    tracing::info!(
        shard = index,
        snapshot_seq = recovery.snapshot.as_ref().map(|s| s.seq),
        replayed,
        torn_tail = ?recovery.torn_tail,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "shard recovered"
    );
    if let Some(torn) = &recovery.torn_tail {
        tracing::warn!(
            shard = index,
            ?torn,
            "cut a torn record at the end of the log"
        );
        metrics::counter!("boxoffice_wal_torn_tails_total").increment(1);
    }
    Ok((engine, wal))
}

/// The shard thread: recover, then loop over batches until the queue closes.
fn run(
    index: u16,
    dir: &Path,
    wal_options: wal::Options,
    rx: &Receiver<Request>,
    status: &ShardStatus,
) {
    // A panic in recovery (an invariant that replayed data breaks) is a recovery failure
    // like a bad checksum: the server must stop, not wait forever for this shard.
    let recovered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        recover(index, dir, wal_options, None)
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!(
            "shard {index}: recovery of {} panicked: {what}",
            dir.display()
        ))
    });
    match recovered {
        Ok((engine, wal)) => {
            status.set_ready();
            let mut shard = Shard::new(index, dir.to_path_buf(), engine, wal, wal_options);
            shard.serve(rx, status);
            shard.shutdown();
        }
        Err(reason) => {
            tracing::error!(shard = index, %reason, "recovery failed");
            status.set_recovery_failed(reason.clone());
            // Answer whatever arrives until shutdown, so nobody waits forever.
            for request in rx.iter() {
                match request {
                    Request::Command { reply, .. } => {
                        let _ = reply.send(Err(ShardError::Unavailable(reason.clone())));
                    }
                    Request::Read(_) => {}
                    Request::Shutdown => break,
                }
            }
        }
    }
}

/// A running shard's state on its thread.
struct Shard {
    index: u16,
    dir: PathBuf,
    wal_options: wal::Options,
    /// `None` only if the log failed and the durable state could not be rebuilt.
    engine: Option<Engine>,
    wal: Wal,
    /// Set when the log failed: writes are refused from then on (invariant 10).
    failure: Option<String>,
    records: Vec<Vec<u8>>,
    decisions_since_snapshot: u64,
    metrics: ShardMetrics,
    /// Test hook (`BOXOFFICE_TEST_DURABLE_JOURNAL`): after each fdatasync, a line
    /// `<shard> <durable seq>` is appended here, so a power-cut test can drop every byte
    /// of the log that was written but not synced and check nothing acknowledged is lost.
    durable_journal: Option<std::fs::File>,
}

struct ShardMetrics {
    batch_size: metrics::Histogram,
    fsync_seconds: metrics::Histogram,
    decisions: metrics::Counter,
    expired: metrics::Counter,
    queue_depth: metrics::Gauge,
    holds_live: metrics::Gauge,
    tickets_sold: metrics::Gauge,
    tickets_held: metrics::Gauge,
    last_stats: Instant,
}

impl ShardMetrics {
    fn new(index: u16) -> Self {
        let shard = index.to_string();
        ShardMetrics {
            batch_size: metrics::histogram!("boxoffice_shard_batch_size", "shard" => shard.clone()),
            fsync_seconds: metrics::histogram!("boxoffice_wal_fsync_seconds", "shard" => shard.clone()),
            decisions: metrics::counter!("boxoffice_decisions_total", "shard" => shard.clone()),
            expired: metrics::counter!("boxoffice_holds_expired_total", "shard" => shard.clone()),
            queue_depth: metrics::gauge!("boxoffice_shard_queue_depth", "shard" => shard.clone()),
            holds_live: metrics::gauge!("boxoffice_holds_live", "shard" => shard.clone()),
            tickets_sold: metrics::gauge!("boxoffice_tickets_sold", "shard" => shard.clone()),
            tickets_held: metrics::gauge!("boxoffice_tickets_held", "shard" => shard),
            last_stats: Instant::now() - Duration::from_secs(1),
        }
    }
}

impl Shard {
    fn new(index: u16, dir: PathBuf, engine: Engine, wal: Wal, wal_options: wal::Options) -> Self {
        Shard {
            index,
            dir,
            wal_options,
            engine: Some(engine),
            wal,
            failure: None,
            records: Vec::new(),
            decisions_since_snapshot: 0,
            metrics: ShardMetrics::new(index),
            durable_journal: std::env::var_os(DURABLE_JOURNAL_ENV).and_then(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .ok()
            }),
        }
    }

    fn serve(&mut self, rx: &Receiver<Request>, status: &ShardStatus) {
        let mut batch: Vec<Request> = Vec::with_capacity(SHARD_BATCH_MAX);
        let mut stopping = false;
        let mut idle_pass = false;
        while !stopping {
            let mut timeout = self.idle_timeout();
            if idle_pass && timeout.is_zero() {
                // The last pass found nothing due although a hold looked due: never spin.
                timeout = Duration::from_millis(1);
            }
            match rx.recv_timeout(timeout) {
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
            self.metrics.queue_depth.set(rx.len() as f64);
            let (stop, decisions) = self.process(&mut batch, status);
            stopping = stop;
            idle_pass = decisions == 0;
        }
    }

    /// How long to wait for a request: until the next hold is due, at most the idle tick.
    fn idle_timeout(&self) -> Duration {
        match (
            &self.failure,
            self.engine.as_ref().and_then(Engine::next_expiry_ms),
        ) {
            (None, Some(due_ms)) => {
                Duration::from_millis(due_ms.saturating_sub(clock_ms())).min(SHARD_IDLE_TICK)
            }
            _ => SHARD_IDLE_TICK,
        }
    }

    /// One batch: decide and apply, one append, one fdatasync, then answer everyone.
    /// Returns whether a shutdown request was in the batch, and how many decisions it made.
    fn process(&mut self, batch: &mut Vec<Request>, status: &ShardStatus) -> (bool, usize) {
        let mut stopping = false;
        let mut used = 0;
        let mut replies: Vec<(oneshot::Sender<CommandResult>, CommandResult)> =
            Vec::with_capacity(batch.len());
        let mut reads: Vec<ReadFn> = Vec::new();
        let now = match &self.engine {
            Some(engine) => clock_ms().max(engine.now_ms()),
            None => clock_ms(),
        };
        if let (None, Some(engine)) = (&self.failure, self.engine.as_mut()) {
            // Expire due holds first, so their inventory is back before this batch decides.
            // An expiry that feeds a waiting list comes alone: ask again until none is due.
            let mut expired = 0;
            while expired < engine::limits::EXPIRE_BATCH_MAX {
                let due = engine.decide_expiry(now, engine::limits::EXPIRE_BATCH_MAX - expired);
                if due.is_empty() {
                    break;
                }
                for decision in due {
                    engine.apply(&decision);
                    push_record(&mut self.records, &mut used, &decision);
                    self.metrics.expired.increment(1);
                    expired += 1;
                }
            }
        }
        for request in batch.drain(..) {
            match request {
                Request::Read(read) => reads.push(read),
                Request::Shutdown => stopping = true,
                Request::Command { command, reply } => {
                    let result = match (&self.failure, self.engine.as_mut()) {
                        (None, Some(engine)) => {
                            execute(engine, &command, now, &mut self.records, &mut used)
                        }
                        (Some(reason), _) => Err(ShardError::Unavailable(reason.clone())),
                        (None, None) => unreachable!("an engine is missing only after a failure"),
                    };
                    replies.push((reply, result));
                }
            }
        }
        if used > 0 {
            self.metrics.batch_size.record(used as f64);
            let started = Instant::now();
            let written = self
                .wal
                .append(&self.records[..used])
                .and_then(|_| self.wal.sync());
            self.metrics
                .fsync_seconds
                .record(started.elapsed().as_secs_f64());
            match written {
                Ok(()) => {
                    if let Some(journal) = &mut self.durable_journal {
                        use std::io::Write;
                        // One write per line: shards share the file (O_APPEND).
                        let line = format!("{} {}\n", self.index, self.wal.durable_seq());
                        let _ = journal.write_all(line.as_bytes());
                    }
                    self.metrics.decisions.increment(used as u64);
                    self.decisions_since_snapshot += used as u64;
                }
                Err(error) => {
                    let reason = format!(
                        "shard {}: the log failed, writes refused: {error}",
                        self.index
                    );
                    self.fail(reason.clone(), status);
                    // Every answer of this batch was computed on state that is not durable:
                    // none of it may be shown.
                    for (_, result) in replies.iter_mut() {
                        *result = Err(ShardError::Unavailable(reason.clone()));
                    }
                }
            }
        }
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
        if let Some(engine) = &self.engine {
            for read in reads {
                read(engine, now);
            }
        }
        self.record_stats();
        if self.decisions_since_snapshot >= SNAPSHOT_EVERY_DECISIONS {
            self.snapshot();
        }
        (stopping, used)
    }

    /// Latches the failure and rebuilds the engine from what is durable on disk.
    fn fail(&mut self, reason: String, status: &ShardStatus) {
        tracing::error!(shard = self.index, %reason, "log failure");
        metrics::counter!("boxoffice_wal_failures_total").increment(1);
        status.set_failed(reason.clone());
        self.failure = Some(reason);
        let durable = self.wal.durable_seq();
        self.engine = match recover(self.index, &self.dir, self.wal_options, Some(durable)) {
            Ok((engine, _reader)) => Some(engine),
            Err(e) => {
                tracing::error!(shard = self.index, error = %e, "cannot rebuild durable state; reads refused too");
                None
            }
        };
    }

    fn record_stats(&mut self) {
        if self.metrics.last_stats.elapsed() < Duration::from_millis(200) {
            return;
        }
        if let Some(engine) = &self.engine {
            let stats = engine.stats();
            self.metrics.holds_live.set(stats.holds_live as f64);
            self.metrics.tickets_sold.set(stats.tickets_sold as f64);
            self.metrics.tickets_held.set(stats.tickets_held as f64);
        }
        self.metrics.last_stats = Instant::now();
    }

    fn snapshot(&mut self) {
        let (None, Some(engine)) = (&self.failure, &self.engine) else {
            return;
        };
        let started = Instant::now();
        let bytes = engine.snapshot();
        let seq = self.wal.last_seq();
        match self.wal.write_snapshot(seq, &bytes) {
            Ok(()) => {
                self.decisions_since_snapshot = 0;
                tracing::info!(
                    shard = self.index,
                    seq,
                    bytes = bytes.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
            }
            Err(error) => {
                // A failed snapshot loses nothing (the log still has every decision); retry later.
                tracing::warn!(shard = self.index, %error, "snapshot failed");
                self.decisions_since_snapshot = 0;
            }
        }
    }

    /// Clean shutdown: everything queued is answered already; sync and snapshot.
    fn shutdown(&mut self) {
        if self.failure.is_none() {
            if let Err(error) = self.wal.sync() {
                tracing::error!(shard = self.index, %error, "final sync failed");
                return;
            }
            self.snapshot();
        }
        tracing::info!(shard = self.index, "shard stopped");
    }
}

/// Decides and applies one command, encoding its decision into the batch's records.
fn execute(
    engine: &mut Engine,
    command: &Command,
    now: u64,
    records: &mut Vec<Vec<u8>>,
    used: &mut usize,
) -> CommandResult {
    match engine.decide(command, now) {
        Ok(Decided::Change(decision)) => {
            engine.apply(&decision);
            push_record(records, used, &decision);
            Ok(engine.output(&decision, now))
        }
        Ok(Decided::Replay(output)) => Ok(output),
        Err(rejection) => Err(ShardError::Rejected(rejection)),
    }
}

/// Encodes a decision into the next record buffer, reusing the buffers' allocations.
fn push_record(records: &mut Vec<Vec<u8>>, used: &mut usize, decision: &Decision) {
    if records.len() == *used {
        records.push(Vec::with_capacity(128));
    }
    let buf = &mut records[*used];
    buf.clear();
    decision.encode(buf);
    *used += 1;
}
