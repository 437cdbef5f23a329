//! Snapshots off the decision path.
//!
//! The shard's follower (see [`crate::follower`]) holds a copy of the shard's engine at a
//! durable sequence number. [`SnapshotObserver`], one of its observers, counts the
//! decisions it applies; every [`snapshot_every_decisions`] it encodes that copy on the
//! follower thread and hands the bytes to the shard's snapshot writer thread, which writes
//! the snapshot file with [`wal::write_snapshot_file`] (temporary file, fsync, rename,
//! directory fsync) and then tells the shard, through a channel the shard polls once per
//! batch, that a snapshot at `seq` is durable. The shard takes it in with
//! [`wal::Wal::adopt_snapshot`] (its lists only, no I/O) and sends the names of the files that
//! are no longer needed back to the writer thread, which deletes them. So the shard thread
//! never encodes, writes, fsyncs or unlinks for a snapshot, and never waits for one.
//!
//! The follower is always exactly at a durable sequence number (also right after a
//! resynchronisation from a copy of the shard's engine), so the snapshot it writes never
//! covers a decision that is not durable. Only one snapshot is in progress at a time: the
//! observer does not encode while the writer is still busy with the previous one.
//!
//! The writer and the shard both touch the log directory outside the log's append path only
//! under [`SnapshotLink::dir_lock`]: the shard takes it when it reopens the directory to rebuild
//! its state after a log failure and for its snapshot at a clean stop (never per batch).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use engine::{Decision, Engine};
use parking_lot::Mutex;

use crate::follower::Observer;
use crate::limits::SNAPSHOT_EVERY_DECISIONS;

/// The environment variable that overrides [`SNAPSHOT_EVERY_DECISIONS`] (read once, at the
/// first use): tests and benchmarks take snapshots at a lower cadence with it.
pub const SNAPSHOT_EVERY_ENV: &str = "BOXOFFICE_SNAPSHOT_EVERY_DECISIONS";

/// Decisions between two snapshots: [`SNAPSHOT_EVERY_DECISIONS`] unless
/// [`SNAPSHOT_EVERY_ENV`] gives a positive number.
pub fn snapshot_every_decisions() -> u64 {
    static EVERY: OnceLock<u64> = OnceLock::new();
    *EVERY.get_or_init(|| {
        match std::env::var(SNAPSHOT_EVERY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(n) if n > 0 => n,
            _ => SNAPSHOT_EVERY_DECISIONS,
        }
    })
}

enum Job {
    /// Write the snapshot of `seq`, encoded in `encode_ms`.
    Write {
        seq: u64,
        bytes: Vec<u8>,
        encode_ms: u64,
    },
    /// Delete files the log no longer needs.
    Remove(Vec<String>),
}

/// The shard's end: learns of durable snapshots, hands back what to delete.
pub struct SnapshotLink {
    done: Receiver<u64>,
    jobs: Sender<Job>,
    /// Held by the writer while it touches the directory; see the module documentation.
    pub dir_lock: Arc<Mutex<()>>,
}

impl SnapshotLink {
    /// The newest snapshot made durable since the last call, if any (never blocks).
    pub fn take_done(&self) -> Option<u64> {
        self.done.try_iter().max()
    }

    /// Queues the deletion of `names` on the writer thread (never blocks).
    pub fn remove(&self, names: Vec<String>) {
        if !names.is_empty() {
            let _ = self.jobs.send(Job::Remove(names));
        }
    }
}

/// The follower's observer that encodes its engine every so many decisions.
pub struct SnapshotObserver {
    jobs: Sender<Job>,
    busy: Arc<AtomicBool>,
    since: u64,
    every: u64,
}

impl Observer for SnapshotObserver {
    fn batch(&mut self, shard: u16, seq: u64, engine: &Engine, decisions: &[Decision]) {
        self.since += decisions.len() as u64;
        if self.since < self.every || self.busy.load(Ordering::Acquire) {
            return;
        }
        self.busy.store(true, Ordering::Release);
        self.since = 0;
        tracing::info!(
            shard,
            seq,
            holds_live = engine.stats().holds_live,
            "snapshot started"
        );
        let started = Instant::now();
        let bytes = engine.snapshot();
        let encode_ms = started.elapsed().as_millis() as u64;
        if self
            .jobs
            .send(Job::Write {
                seq,
                bytes,
                encode_ms,
            })
            .is_err()
        {
            self.busy.store(false, Ordering::Release);
        }
    }

    fn resync(&mut self, _shard: u16, _seq: u64, _engine: &Engine) {
        // The copy is at a durable seq like any batch: the count just goes on.
    }
}

/// Starts the snapshot writer of shard `shard` on log directory `dir`.
pub fn spawn(shard: u16, dir: PathBuf) -> std::io::Result<(SnapshotObserver, SnapshotLink)> {
    let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<u64>();
    let busy = Arc::new(AtomicBool::new(false));
    let dir_lock = Arc::new(Mutex::new(()));
    let mut storage = wal::FileStorage::new(&dir)?;
    let thread_busy = Arc::clone(&busy);
    let thread_lock = Arc::clone(&dir_lock);
    std::thread::Builder::new()
        .name(format!("snapshot-{shard}"))
        .spawn(move || {
            for job in jobs_rx.iter() {
                let _guard = thread_lock.lock();
                match job {
                    Job::Write {
                        seq,
                        bytes,
                        encode_ms,
                    } => {
                        let started = Instant::now();
                        match wal::write_snapshot_file(&mut storage, seq, &bytes) {
                            Ok(()) => {
                                tracing::info!(
                                    shard,
                                    seq,
                                    bytes = bytes.len(),
                                    encode_ms,
                                    write_ms = started.elapsed().as_millis() as u64,
                                    "snapshot written"
                                );
                                let _ = done_tx.send(seq);
                            }
                            Err(error) => {
                                // Nothing lost: the log still has every decision; the next
                                // cadence tries again.
                                tracing::warn!(shard, seq, %error, "snapshot failed");
                            }
                        }
                        drop(bytes);
                        thread_busy.store(false, Ordering::Release);
                    }
                    Job::Remove(names) => {
                        if let Err(error) = wal::remove_files(&mut storage, &names) {
                            tracing::warn!(shard, %error, "cannot delete old log files");
                        } else {
                            tracing::debug!(shard, files = names.len(), "old log files deleted");
                        }
                    }
                }
            }
        })?;
    let observer = SnapshotObserver {
        jobs: jobs_tx.clone(),
        busy,
        since: 0,
        every: snapshot_every_decisions(),
    };
    let link = SnapshotLink {
        done: done_rx,
        jobs: jobs_tx,
        dir_lock,
    };
    Ok((observer, link))
}
