//! One shard: a thread that drives a [`ShardCore`] over its log directory, and, with the
//! durability pipeline on ([`LOG_PIPELINE_DEPTH`] above 1), the log thread that runs the
//! core's log stage (at depth 1, the default, the stage runs inline on the shard thread).
//!
//! The loop takes a batch of requests from its bounded queue (or wakes for the next hold
//! expiry), reads the clock once, and hands the batch's commands to the core, which decides
//! and applies every command and hands the decisions to the log stage; with a log thread,
//! while it writes and fdatasyncs, the loop takes and decides the next batches. Each batch's answers, reads included, go out in order
//! once the core reports it durable. So no reply and no read shows a decision before it is
//! durable (invariant 4 of docs/architecture.md). If the log fails, the shard answers 503
//! to every batch after the last durable one, rebuilds its state from what is durable on
//! disk, answers 503 to every later write, and says why in `/ready`; a log that only found
//! no space (ENOSPC, EFBIG) is checked again every [`WAL_FULL_RETRY_INTERVAL`] and writes
//! resume once there is room.
//!
//! The shard's time is a [`ShardClock`]: the wall clock, except that it never goes back and,
//! while the wall clock is behind the log's time (a step back), advances by the monotonic
//! clock, so holds keep expiring (invariant 6).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use engine::{Command, Engine};
use tokio::sync::oneshot;

use crate::core::{CoreOptions, FileDir, Released, ShardCore, Written};
use crate::limits::{
    CLOCK_BEHIND_WARN, LOG_PIPELINE_DEPTH, LOG_PIPELINE_DEPTH_MAX, SHARD_BATCH_MAX, SHARD_IDLE_TICK,
};
pub use crate::shard_status::{CommandResult, Readiness, ShardError, ShardStatus};

/// The environment variable of the power-cut test hook (see `Shard::durable_journal`).
pub const DURABLE_JOURNAL_ENV: &str = "BOXOFFICE_TEST_DURABLE_JOURNAL";

/// A read: runs on the shard thread against durable state at the batch's `now`.
pub type ReadFn = Box<dyn FnOnce(&Engine, u64) + Send>;

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

/// Why a request could not even be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is full: overload.
    Full,
    /// The shard thread has stopped.
    Stopped,
}

/// The HTTP side's handle on a shard thread.
pub struct ShardHandle {
    tx: Sender<Request>,
    status: Arc<ShardStatus>,
    stream: Arc<crate::stream::Hub>,
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
    /// The shard's live-availability fan-out (fed by its follower).
    pub fn stream(&self) -> &Arc<crate::stream::Hub> {
        &self.stream
    }
}

impl ShardHandle {
    /// A handle on a shard thread started elsewhere (cluster mode's shard driver).
    pub(crate) fn from_parts(
        tx: Sender<Request>,
        status: Arc<ShardStatus>,
        stream: Arc<crate::stream::Hub>,
    ) -> Self {
        ShardHandle { tx, status, stream }
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
    spawn_with(index, dir, queue_capacity, wal_options, Time::System)
}

/// [`spawn`] with the shard's time taken from `time` (tests move a [`ManualClock`]).
pub fn spawn_with(
    index: u16,
    dir: PathBuf,
    queue_capacity: usize,
    wal_options: wal::Options,
    time: Time,
) -> std::io::Result<(ShardHandle, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded(queue_capacity.max(1));
    let status = Arc::new(ShardStatus::default());
    let thread_status = Arc::clone(&status);
    let stream = Arc::new(crate::stream::Hub::new(index));
    let thread_stream = Arc::clone(&stream);
    let thread = std::thread::Builder::new()
        .name(format!("shard-{index}"))
        .spawn(move || {
            run(
                index,
                &dir,
                wal_options,
                time,
                &rx,
                &thread_status,
                &thread_stream,
            )
        })?;
    Ok((ShardHandle { tx, status, stream }, thread))
}

/// Wall-clock milliseconds since the Unix epoch.
fn clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A shard's time, ms since the Unix epoch: the wall clock while it is ahead, and
/// otherwise the last time taken from it plus the monotonic time elapsed since. So engine
/// time never goes back and never stands still: after the wall clock steps back (an NTP
/// step, a restart on a machine whose clock is behind the log), holds still expire on
/// time, by the monotonic clock, until the wall clock catches up. A wall clock behind by
/// more than [`CLOCK_BEHIND_WARN`] is logged once per episode.
#[derive(Debug)]
pub struct ShardClock {
    shard: u16,
    /// The last wall-clock reading that was ahead (or the log's time at the start) ...
    anchor_ms: u64,
    /// ... and the monotonic instant it was taken at.
    anchor: Instant,
    /// Whether this episode of the wall clock being behind was logged.
    warned: bool,
}

impl ShardClock {
    /// A clock that starts no earlier than `floor_ms` (the log's newest decision).
    pub fn new(shard: u16, floor_ms: u64) -> Self {
        ShardClock {
            shard,
            anchor_ms: floor_ms,
            anchor: Instant::now(),
            warned: false,
        }
    }

    /// The time now.
    pub fn now_ms(&mut self) -> u64 {
        self.at(clock_ms(), Instant::now())
    }

    /// The time for a wall-clock reading `wall_ms` taken at monotonic instant `mono`.
    pub fn at(&mut self, wall_ms: u64, mono: Instant) -> u64 {
        let advanced =
            self.anchor_ms + mono.saturating_duration_since(self.anchor).as_millis() as u64;
        if wall_ms >= advanced {
            if self.warned {
                tracing::info!(
                    shard = self.shard,
                    "the wall clock caught up with engine time"
                );
                self.warned = false;
            }
            self.anchor_ms = wall_ms;
            self.anchor = mono;
            return wall_ms;
        }
        let behind = advanced - wall_ms;
        if !self.warned && behind > CLOCK_BEHIND_WARN.as_millis() as u64 {
            tracing::warn!(
                shard = self.shard,
                behind_ms = behind,
                "the wall clock is behind the log's time; engine time advances by the \
                 monotonic clock until the wall clock catches up"
            );
            metrics::counter!("boxoffice_clock_behind_episodes_total", "shard" => self.shard.to_string())
                .increment(1);
            self.warned = true;
        }
        advanced
    }
}

/// The depth of the log pipeline: [`LOG_PIPELINE_DEPTH`], or `BOXOFFICE_LOG_PIPELINE_DEPTH`
/// (read once; 1 turns the pipeline off, for benchmarks).
pub fn log_pipeline_depth() -> usize {
    static DEPTH: OnceLock<usize> = OnceLock::new();
    *DEPTH.get_or_init(|| {
        std::env::var("BOXOFFICE_LOG_PIPELINE_DEPTH")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|d: &usize| (1..=LOG_PIPELINE_DEPTH_MAX).contains(d))
            .unwrap_or(LOG_PIPELINE_DEPTH)
    })
}

/// The shard thread: recover, then loop over batches until the queue closes.
fn run(
    index: u16,
    dir: &Path,
    wal_options: wal::Options,
    time: Time,
    rx: &Receiver<Request>,
    status: &Arc<ShardStatus>,
    stream: &Arc<crate::stream::Hub>,
) {
    let options = CoreOptions {
        wal: wal_options,
        snapshot_every: crate::snapshotter::snapshot_every_decisions(),
        depth: log_pipeline_depth(),
    };
    let recovered = ShardCore::recover(
        index,
        FileDir(dir.to_path_buf()),
        options,
        Arc::clone(status),
    );
    match recovered {
        Ok(mut core) => {
            // With a pipeline, the log stage runs on a thread of its own; without one
            // (depth 1), inline on this thread, as before the pipeline.
            let mut log_thread = None;
            if options.depth > 1 {
                let stage = core.take_log_stage().expect("a new core has its log stage");
                match std::thread::Builder::new()
                    .name(format!("log-{index}"))
                    .spawn(move || stage.run())
                {
                    Ok(thread) => log_thread = Some(thread),
                    Err(error) => {
                        let reason = format!("shard {index}: cannot start the log thread: {error}");
                        tracing::error!(shard = index, %reason, "recovery failed");
                        status.set_recovery_failed(reason.clone());
                        refuse_all(rx, &reason);
                        return;
                    }
                }
            }
            let engine = core.engine().expect("a recovered core serves");
            // Snapshots are taken by the follower and written by their own thread; without
            // them (a thread that could not start) the shard takes them itself, as a fallback.
            let (observers, snapshots) = match crate::snapshotter::spawn(index, dir.to_path_buf()) {
                Ok((observer, link)) => {
                    let observer: Box<dyn crate::follower::Observer> = Box::new(observer);
                    (vec![observer], Some(link))
                }
                Err(error) => {
                    tracing::error!(shard = index, %error, "cannot start the snapshot writer; snapshots on the shard thread");
                    (Vec::new(), None)
                }
            };
            let follower = crate::stream::start_follower(
                stream,
                engine,
                core.durable_seq(),
                observers,
                Some(dir.to_path_buf()),
            );
            let clock = ShardTime::new(index, engine.now_ms(), time);
            if let Some(link) = snapshots.filter(|_| follower.is_some()) {
                core.set_snapshot_source(Box::new(link));
            }
            status.set_ready();
            let mut shard = Shard::new(core, clock);
            shard.follower = follower;
            shard.serve(rx, status);
            shard.core.shutdown();
            drop(shard);
            if let Some(thread) = log_thread {
                let _ = thread.join();
            }
        }
        Err(error) => {
            let reason = error.to_string();
            tracing::error!(shard = index, %reason, "recovery failed");
            status.set_recovery_failed(reason.clone());
            refuse_all(rx, &reason);
        }
    }
}

/// Answers whatever arrives until shutdown, so nobody waits forever.
fn refuse_all(rx: &Receiver<Request>, reason: &str) {
    for request in rx.iter() {
        match request {
            Request::Command { reply, .. } => {
                let _ = reply.send(Err(ShardError::Unavailable(reason.to_string())));
            }
            Request::Read(_) => {}
            Request::Shutdown => break,
        }
    }
}

/// Where a shard's time comes from.
#[derive(Debug, Clone, Default)]
pub enum Time {
    /// The wall clock, kept from going back by the monotonic clock ([`ShardClock`]).
    #[default]
    System,
    /// A clock that moves only when a test moves it.
    Manual(ManualClock),
}

/// A clock moved by hand (ms since the Unix epoch), shared by every clone: in-process tests
/// expire holds by moving it instead of sleeping. Shard time still never goes back.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now_ms)))
    }
    /// A clock at the wall clock's time now.
    pub fn at_wall_clock() -> Self {
        Self::new(clock_ms())
    }
    /// Its time.
    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    /// Moves it forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
    }
}

/// The shard thread's clock.
enum ShardTime {
    System(ShardClock),
    Manual(ManualClock),
}

impl ShardTime {
    fn new(index: u16, floor_ms: u64, time: Time) -> Self {
        match time {
            Time::System => {
                let mut clock = ShardClock::new(index, floor_ms);
                // Read once now, so a wall clock behind the log is reported at start-up.
                clock.now_ms();
                ShardTime::System(clock)
            }
            Time::Manual(clock) => ShardTime::Manual(clock),
        }
    }
    fn now_ms(&mut self) -> u64 {
        match self {
            ShardTime::System(clock) => clock.now_ms(),
            ShardTime::Manual(clock) => clock.now_ms(),
        }
    }
}

/// The reply end of a command.
type Reply = oneshot::Sender<CommandResult>;

/// A running shard on its thread: the core, and what only a thread has (the clock, the
/// replies, the follower, the metrics).
struct Shard {
    core: ShardCore<wal::FileStorage, Reply, ReadFn>,
    /// The shard's time (never back, never frozen by a wall-clock step).
    clock: ShardTime,
    /// When the last batch's answers had all been sent (for the loop-gap metric).
    answered_at: Instant,
    metrics: ShardMetrics,
    /// Test hook (`BOXOFFICE_TEST_DURABLE_JOURNAL`): after each fdatasync, a line
    /// `<shard> <durable seq>` is appended here, so a power-cut test can drop every byte
    /// of the log that was written but not synced and check nothing acknowledged is lost.
    durable_journal: Option<std::fs::File>,
    /// Gets each batch's records once durable (the live stream's engine copy).
    follower: Option<crate::follower::Feed>,
    /// Batches released, to answer (reused).
    released: Vec<Released<Reply, ReadFn>>,
}

impl crate::core::SnapshotSource for crate::snapshotter::SnapshotLink {
    fn take_done(&mut self) -> Option<u64> {
        crate::snapshotter::SnapshotLink::take_done(self)
    }
    fn remove(&mut self, names: Vec<String>) {
        crate::snapshotter::SnapshotLink::remove(self, names)
    }
    fn dir_lock(&self) -> crate::core::DirLock {
        Arc::clone(&self.dir_lock)
    }
}

struct ShardMetrics {
    batch_size: metrics::Histogram,
    fsync_seconds: metrics::Histogram,
    decisions: crate::metrics::DecisionCounters,
    queue_depth: metrics::Gauge,
    in_flight: metrics::Gauge,
    holds_live: metrics::Gauge,
    tickets_sold: metrics::Gauge,
    tickets_held: metrics::Gauge,
    sections_sold_out: metrics::Gauge,
    last_stats: Instant,
}

impl ShardMetrics {
    fn new(index: u16) -> Self {
        let shard = index.to_string();
        ShardMetrics {
            batch_size: metrics::histogram!("boxoffice_shard_batch_size", "shard" => shard.clone()),
            fsync_seconds: metrics::histogram!("boxoffice_wal_fsync_seconds", "shard" => shard.clone()),
            decisions: crate::metrics::DecisionCounters::new(index),
            queue_depth: metrics::gauge!("boxoffice_shard_queue_depth", "shard" => shard.clone()),
            in_flight: metrics::gauge!("boxoffice_log_batches_in_flight", "shard" => shard.clone()),
            holds_live: metrics::gauge!("boxoffice_holds_live", "shard" => shard.clone()),
            tickets_sold: metrics::gauge!("boxoffice_tickets_sold", "shard" => shard.clone()),
            tickets_held: metrics::gauge!("boxoffice_tickets_held", "shard" => shard.clone()),
            sections_sold_out: metrics::gauge!("boxoffice_sections_sold_out", "shard" => shard),
            last_stats: Instant::now() - Duration::from_secs(1),
        }
    }
}

impl Shard {
    fn new(core: ShardCore<wal::FileStorage, Reply, ReadFn>, clock: ShardTime) -> Self {
        let index = core.index();
        Shard {
            core,
            clock,
            answered_at: Instant::now(),
            metrics: ShardMetrics::new(index),
            durable_journal: std::env::var_os(DURABLE_JOURNAL_ENV).and_then(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .ok()
            }),
            follower: None,
            released: Vec::new(),
        }
    }

    /// Whether the next batch may be decided now: the core allows it, and a follower that
    /// fell behind gets its copy of the engine first (a copy of the durable state, so the
    /// pipeline drains for it: rare, once per overflow of its queue).
    fn can_decide(&self) -> bool {
        let lagging = self.follower.as_ref().is_some_and(|f| f.is_lagging());
        self.core.can_decide() && (!lagging || self.core.is_drained())
    }

    /// The loop: decide a batch whenever the pipeline has room and work is queued (or a
    /// hold is due), and answer each batch once the log stage reports it durable. Ends
    /// when a shutdown request was taken or the queue closed, after answering everything.
    fn serve(&mut self, rx: &Receiver<Request>, status: &ShardStatus) {
        let mut batch: Vec<Request> = Vec::with_capacity(SHARD_BATCH_MAX);
        let mut stopping = false;
        let mut idle_pass = false;
        // The gauges show the recovered state from the start, not 0 until the first batch.
        self.record_stats();
        loop {
            if self.core.release(&mut self.released) > 0 {
                self.answer();
            }
            if stopping {
                if self.core.is_drained() {
                    return;
                }
                if self.core.wait_release(SHARD_IDLE_TICK, &mut self.released) > 0 {
                    self.answer();
                }
                continue;
            }
            let can_decide = self.can_decide();
            let mut timeout = self.idle_timeout();
            if idle_pass && timeout.is_zero() {
                // The last pass found nothing due although a hold looked due: never spin.
                timeout = Duration::from_millis(1);
            }
            // Requests already waiting when the loop comes back for them: the time since
            // the last batch's answers is a gap in which queued work was not served.
            let queued = !rx.is_empty();
            let mut select = crossbeam_channel::Select::new();
            if can_decide {
                select.recv(rx);
            }
            let reports = (!self.core.is_drained()).then(|| select.recv(self.core.reports()));
            let ready = if can_decide {
                select.ready_timeout(timeout).ok()
            } else {
                // Work waits for the pipeline: wait for a report only.
                select.ready_timeout(SHARD_IDLE_TICK).ok()
            };
            if ready.is_none() {
                // Idle for a tick: take in a snapshot the writer finished meanwhile, so that
                // the follower's next one can start (and the log's old segments go) without
                // waiting for the next buyer. The gauges follow what the last batches did.
                self.core.maintain();
                self.record_stats();
            }
            if ready.is_some() && ready == reports {
                continue;
            }
            if !can_decide {
                continue;
            }
            while batch.len() < SHARD_BATCH_MAX {
                match rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                }
            }
            if queued {
                status.note_loop_gap(self.answered_at.elapsed());
            }
            self.metrics.queue_depth.set(rx.len() as f64);
            let (stop, decisions) = self.process(&mut batch);
            self.metrics.in_flight.set(self.core.in_flight() as f64);
            stopping |= stop;
            idle_pass = decisions == 0;
        }
    }

    /// How long to wait for a request: until the next hold is due (or the next check for
    /// space), at most the idle tick.
    fn idle_timeout(&mut self) -> Duration {
        match self.core.next_wake_ms() {
            Some(due_ms) => {
                let now = self.clock.now_ms();
                Duration::from_millis(due_ms.saturating_sub(now)).min(SHARD_IDLE_TICK)
            }
            None => SHARD_IDLE_TICK,
        }
    }

    /// One batch: the core decides it and hands it to the log stage; its answers go out
    /// once it is durable ([`Shard::answer`]). Returns whether a shutdown request was in
    /// the batch, and how many decisions it made.
    fn process(&mut self, batch: &mut Vec<Request>) -> (bool, usize) {
        let mut stopping = false;
        let mut commands = Vec::with_capacity(batch.len());
        let mut reads: Vec<ReadFn> = Vec::new();
        for request in batch.drain(..) {
            match request {
                Request::Read(read) => reads.push(read),
                Request::Shutdown => stopping = true,
                Request::Command { command, reply } => commands.push((command, reply)),
            }
        }
        let now = self.clock.now_ms();
        let report = self.core.decide(now, commands, reads);
        (stopping, report.decisions)
    }

    /// Sends the answers of every batch released, in order, runs their reads, feeds the
    /// follower and the power-cut journal, records the metrics, and lets the core take in
    /// a snapshot.
    fn answer(&mut self) {
        for sync in self.core.take_syncs() {
            self.metrics.batch_size.record(sync.records as f64);
            self.metrics
                .fsync_seconds
                .record(sync.elapsed.as_secs_f64());
        }
        let released = std::mem::take(&mut self.released);
        let last = released.len();
        for (i, batch) in released.into_iter().enumerate() {
            let report = batch.report;
            if report.written == Written::Durable {
                let seq = report.last_seq;
                if let Some(journal) = &mut self.durable_journal {
                    use std::io::Write;
                    // One write per line: shards share the file (O_APPEND).
                    let line = format!("{} {seq}\n", self.core.index());
                    let _ = journal.write_all(line.as_bytes());
                }
                if let Some(follower) = &mut self.follower {
                    // A copy for a follower that fell behind is the durable state only when
                    // nothing else is in flight.
                    let drained = i + 1 == last && self.core.is_drained();
                    let engine = self.core.engine().filter(|_| drained);
                    follower.durable_batch(seq, batch.records, engine);
                }
                self.metrics
                    .decisions
                    .count(report.decisions, &report.tally);
            }
            for (reply, result) in batch.replies {
                let _ = reply.send(result);
            }
            if !batch.reads.is_empty() {
                debug_assert!(
                    self.core.is_drained(),
                    "reads released with batches in flight"
                );
                if let Some(engine) = self.core.engine() {
                    for read in batch.reads {
                        read(engine, report.now_ms);
                    }
                }
            }
        }
        self.answered_at = Instant::now();
        self.metrics.in_flight.set(self.core.in_flight() as f64);
        self.record_stats();
        self.core.maintain();
    }

    fn record_stats(&mut self) {
        if self.metrics.last_stats.elapsed() < Duration::from_millis(200) {
            return;
        }
        if let Some(engine) = self.core.engine() {
            let stats = engine.stats();
            self.metrics.holds_live.set(stats.holds_live as f64);
            self.metrics.tickets_sold.set(stats.tickets_sold as f64);
            self.metrics.tickets_held.set(stats.tickets_held as f64);
            self.metrics
                .sections_sold_out
                .set(stats.sections_sold_out as f64);
        }
        self.metrics.last_stats = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_clock_never_goes_back_and_advances_while_the_wall_clock_is_behind() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let t0 = 1_800_000_000_000;
        let mut clock = ShardClock::new(0, t0);
        clock.anchor = start;
        assert_eq!(clock.at(t0 + 10, at(10)), t0 + 10);
        // The wall clock steps back an hour: time goes on by the monotonic clock.
        assert_eq!(clock.at(t0 - 3_600_000, at(1_010)), t0 + 1_010);
        assert!(clock.warned);
        assert_eq!(clock.at(t0 - 3_600_000 + 2_000, at(3_010)), t0 + 3_010);
        // Caught up and past: the wall clock again; the episode is over.
        assert_eq!(clock.at(t0 + 5_000, at(4_000)), t0 + 5_000);
        assert!(!clock.warned);
        // Behind by less than the warning bound: no warning, still never back.
        assert_eq!(clock.at(t0 + 4_900, at(4_100)), t0 + 5_100);
        assert!(!clock.warned);
        // Started behind the log (a restart with a slow clock).
        let mut clock = ShardClock::new(0, t0);
        clock.anchor = start;
        assert_eq!(clock.at(t0 - 3_600_000, at(500)), t0 + 500);
        assert!(clock.warned);
    }
}
