//! The shard's log stage: where batches decided by the core are written and made durable,
//! off the deciding thread, so that the core decides batch N+1 while batch N's write and
//! fdatasync run (pipelined durability, docs/architecture.md "The shard core").
//!
//! The core hands each batch's encoded decisions to its [`LogLink`] ([`Durability::submit`])
//! and goes on deciding. The [`LogStage`] group-commits: it takes every batch queued since
//! its last sync, writes them with one append, makes them durable with one fdatasync, and
//! reports the durable seq ([`Outcome::Durable`]); a failed write or sync is reported with
//! the seq that is still durable ([`Outcome::Failed`]), and the stage drops every batch the
//! core submitted before it learnt of the failure (they were decided on state that is not
//! durable; the core answers them 503 and starts a new epoch from the durable seq).
//!
//! Production runs the stage on a thread of its own ([`LogStage::run`]); the seeded
//! simulation runs its two steps ([`LogStage::write`], [`LogStage::sync`]) itself,
//! interleaved by the seed with the core's deciding and releasing, so every order the
//! thread could take is one a seed can take.
//!
//! [`Durability`] is the seam "make this batch durable, then say so": the core releases a
//! batch's answers only once its outcome is known. A replicated log (cluster mode) is a
//! second implementation: submit proposes the records, outcomes report commits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex, MutexGuard};
use wal::{Storage, Wal};

use crate::shard_status::ShardStatus;

/// What became of the batches submitted up to some seq.
#[derive(Debug)]
pub enum Outcome {
    /// Everything up to `upto` is durable (one fdatasync for `batches` batches, `records`
    /// records, written and synced in `elapsed`).
    Durable {
        /// The durable seq.
        upto: u64,
        /// Batches the sync covered.
        batches: usize,
        /// Records it covered.
        records: usize,
        /// Time in the write and the fdatasync.
        elapsed: Duration,
    },
    /// A write or a sync of batches of `epoch` failed: `durable` is still durable, nothing
    /// after it is (or will be: later batches of the epoch are dropped).
    Failed {
        /// The epoch of the failed batches.
        epoch: u64,
        /// The seq still durable.
        durable: u64,
        /// What failed.
        error: wal::Error,
    },
}

/// Makes batches durable in the order they are submitted, and says when.
pub trait Durability: Send {
    /// Hands over the encoded decisions of one batch, seqs `first..first + records.len()`,
    /// decided in `epoch` (the core starts a new epoch after each failure). Never blocks
    /// on the disk.
    fn submit(&mut self, epoch: u64, first: u64, records: Vec<Vec<u8>>);
    /// The next outcome, if one is known (never blocks).
    fn try_outcome(&mut self) -> Option<Outcome>;
    /// Waits at most `timeout` for the next outcome.
    fn wait_outcome(&mut self, timeout: Duration) -> Option<Outcome>;
}

struct Submission {
    epoch: u64,
    first: u64,
    records: Vec<Vec<u8>>,
}

struct Shared<S: Storage> {
    wal: Mutex<Wal<S>>,
    queue: Mutex<Queue>,
    wake: Condvar,
    status: Arc<ShardStatus>,
}

#[derive(Default)]
struct Queue {
    batches: VecDeque<Submission>,
    closed: bool,
}

/// The core's end: submits batches, receives outcomes, and reaches the log for the rare
/// operations outside the append path (snapshots, the probe for space, the final sync).
pub struct LogLink<S: Storage> {
    shared: Arc<Shared<S>>,
    outcomes: Receiver<Outcome>,
}

/// The stage that writes and syncs (see the module documentation).
pub struct LogStage<S: Storage> {
    shared: Arc<Shared<S>>,
    outcomes: Sender<Outcome>,
    /// Written and not yet synced: (batches, records, the last seq, the epoch, when the
    /// write started).
    written: Option<(usize, usize, u64, u64, Instant)>,
    /// The newest epoch whose write or sync failed: its later batches are dropped.
    failed_epoch: Option<u64>,
}

/// A log stage on `wal`, and the core's link to it.
pub fn local<S: Storage>(wal: Wal<S>, status: Arc<ShardStatus>) -> (LogLink<S>, LogStage<S>) {
    let shared = Arc::new(Shared {
        wal: Mutex::new(wal),
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        status,
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    (
        LogLink {
            shared: Arc::clone(&shared),
            outcomes: rx,
        },
        LogStage {
            shared,
            outcomes: tx,
            written: None,
            failed_epoch: None,
        },
    )
}

impl<S: Storage> LogLink<S> {
    /// The log, for what is not on the append path. The stage holds it only while it
    /// writes or syncs.
    pub fn wal(&self) -> MutexGuard<'_, Wal<S>> {
        self.shared.wal.lock()
    }

    /// The channel outcomes come on (to select on it; [`Durability::try_outcome`] takes them).
    pub fn outcomes(&self) -> &Receiver<Outcome> {
        &self.outcomes
    }

    /// Stops the stage's thread once it has written and synced everything queued.
    pub fn close(&self) {
        self.shared.queue.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

impl<S: Storage> Drop for LogLink<S> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<S: Storage> Durability for LogLink<S> {
    fn submit(&mut self, epoch: u64, first: u64, records: Vec<Vec<u8>>) {
        self.shared.queue.lock().batches.push_back(Submission {
            epoch,
            first,
            records,
        });
        self.shared.wake.notify_one();
    }
    fn try_outcome(&mut self) -> Option<Outcome> {
        self.outcomes.try_recv().ok()
    }
    fn wait_outcome(&mut self, timeout: Duration) -> Option<Outcome> {
        self.outcomes.recv_timeout(timeout).ok()
    }
}

impl<S: Storage> LogStage<S> {
    /// The thread's loop: write and sync what is queued, until the link is closed and
    /// everything queued is done.
    pub fn run(mut self) {
        loop {
            {
                let mut queue = self.shared.queue.lock();
                while queue.batches.is_empty() && !queue.closed {
                    self.shared.wake.wait(&mut queue);
                }
                if queue.batches.is_empty() && queue.closed {
                    return;
                }
            }
            self.write();
            self.sync();
        }
    }

    /// Whether batches wait to be written.
    pub fn has_queued(&self) -> bool {
        !self.shared.queue.lock().batches.is_empty()
    }

    /// Whether a write waits for its sync.
    pub fn has_written(&self) -> bool {
        self.written.is_some()
    }

    /// The first step: takes every batch queued (dropping those of a failed epoch) and
    /// writes them with one append. Does nothing while a write waits for its sync. A
    /// failed write is reported at once. Returns whether it wrote.
    pub fn write(&mut self) -> bool {
        if self.written.is_some() {
            return false;
        }
        let taken: Vec<Submission> = self.shared.queue.lock().batches.drain(..).collect();
        let taken: Vec<Submission> = taken
            .into_iter()
            .filter(|s| self.failed_epoch.is_none_or(|f| s.epoch > f))
            .collect();
        let Some(epoch) = taken.last().map(|s| s.epoch) else {
            return false;
        };
        crate::testhooks::pause_before_sync();
        let started = Instant::now();
        // Published for `/ready` and `/metrics`, which read it while this thread may be
        // blocked in the write or the fdatasync (a frozen disk).
        self.shared.status.set_unsynced(true);
        let records: Vec<&Vec<u8>> = taken.iter().flat_map(|s| s.records.iter()).collect();
        let mut wal = self.shared.wal.lock();
        debug_assert!(
            taken.first().is_none_or(|s| s.first == wal.last_seq() + 1),
            "a batch submitted out of order"
        );
        match wal.append(&records) {
            Ok(range) => {
                self.written = Some((taken.len(), records.len(), range.end - 1, epoch, started));
                true
            }
            Err(error) => {
                let durable = wal.durable_seq();
                drop(wal);
                self.shared.status.set_unsynced(false);
                self.failed(epoch, durable, error);
                true
            }
        }
    }

    /// The second step: one fdatasync for what [`LogStage::write`] wrote; reports the
    /// outcome. Returns whether there was a write to sync.
    pub fn sync(&mut self) -> bool {
        let Some((batches, records, upto, epoch, started)) = self.written.take() else {
            return false;
        };
        let mut wal = self.shared.wal.lock();
        let synced = wal.sync();
        let durable = wal.durable_seq();
        drop(wal);
        self.shared.status.set_unsynced(false);
        match synced {
            Ok(()) => {
                debug_assert_eq!(durable, upto);
                let _ = self.outcomes.send(Outcome::Durable {
                    upto,
                    batches,
                    records,
                    elapsed: started.elapsed(),
                });
            }
            Err(error) => self.failed(epoch, durable, error),
        }
        true
    }

    fn failed(&mut self, epoch: u64, durable: u64, error: wal::Error) {
        self.failed_epoch = Some(epoch);
        let _ = self.outcomes.send(Outcome::Failed {
            epoch,
            durable,
            error,
        });
    }
}
