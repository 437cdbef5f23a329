//! The log thread: the only one that writes the log store's files, so every write happens
//! in the order openraft asked for it. Appends are written as they come and made durable
//! together: after draining every queued command, one fdatasync covers all the appends
//! written since the last one, and then their callbacks fire in order (group commit across
//! Raft appends). A vote, truncation or purge first makes the appends before it durable.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use openraft::storage::IOFlushed;
use openraft::RaftTypeConfig;
use tokio::sync::oneshot;
use wal::{Storage, Wal};

use super::{meta, LogStoreError, COMMITTED_SAVE_INTERVAL};

/// Where a command's outcome goes.
pub(crate) type Done = oneshot::Sender<Result<(), LogStoreError>>;

/// What the log thread is asked to do, in openraft's order.
pub(crate) enum Command<C: RaftTypeConfig> {
    /// Append these records (one per entry) starting at `first_seq`; `callback` fires once
    /// they are durable.
    Append {
        first_seq: u64,
        records: Vec<Vec<u8>>,
        callback: IOFlushed<C>,
    },
    /// Durably replace the vote file.
    Vote { payload: Vec<u8>, done: Done },
    /// The newest committed log id (written lazily: see [`COMMITTED_SAVE_INTERVAL`]).
    Committed { payload: Vec<u8> },
    /// Remove every record after `seq`.
    Truncate { seq: u64, done: Done },
    /// Durably record the purged log id, then delete segments up to `seq`.
    Purge {
        seq: u64,
        payload: Vec<u8>,
        done: Done,
    },
    /// Make everything durable, write the committed file, stop.
    Close { done: Done },
}

/// The log thread's state.
pub(crate) struct Writer<C: RaftTypeConfig, S: Storage> {
    pub(crate) wal: Wal<S>,
    /// Appends written and not yet made durable, with their callbacks.
    pub(crate) unsynced: Vec<IOFlushed<C>>,
    /// Records of the appends received but not yet written (written with one write).
    pub(crate) batch: Vec<Vec<u8>>,
    /// The committed id received and not yet written.
    pub(crate) committed: Option<Vec<u8>>,
    pub(crate) committed_written_at: Option<Instant>,
    /// Why the log refuses every write, once something failed.
    pub(crate) failed: Option<String>,
    /// The wal seq before the first entry (records up to it are purged or never were).
    pub(crate) floor: u64,
    /// The wal seq of the last purged entry (0: none); the start never moves before it.
    pub(crate) purged_seq: u64,
}

impl<C: RaftTypeConfig, S: Storage> Writer<C, S> {
    /// Runs until `Close` or until every sender is gone; gives the storage back.
    pub(crate) fn run(mut self, rx: Receiver<Command<C>>) -> S {
        loop {
            // With a committed id waiting, wait no longer than its save is due.
            let command = match self.committed_due_in() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(wait) => rx.recv_timeout(wait),
            };
            let mut command = match command {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.flush(true);
                    break;
                }
            };
            let mut closing = None;
            while let Some(next) = command.take() {
                if let Some(done) = self.handle(next) {
                    closing = Some(done);
                    break;
                }
                command = rx.try_recv().ok();
            }
            match closing {
                Some(done) => {
                    let result = self.flush(true);
                    let _ = done.send(result);
                    break;
                }
                None => {
                    let _ = self.flush(false);
                }
            }
        }
        self.wal.into_storage()
    }

    /// How long until the waiting committed id must be written (`None`: nothing waits).
    fn committed_due_in(&self) -> Option<Duration> {
        self.committed.as_ref()?;
        let since = self
            .committed_written_at
            .map_or(COMMITTED_SAVE_INTERVAL, |at| at.elapsed());
        Some(COMMITTED_SAVE_INTERVAL.saturating_sub(since))
    }

    fn check_failed(&self) -> Result<(), LogStoreError> {
        match &self.failed {
            Some(reason) => Err(LogStoreError::FailedEarlier(reason.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: LogStoreError) -> LogStoreError {
        if self.failed.is_none() {
            tracing::error!(%error, "raft log write failed; refusing every later write");
            self.failed = Some(error.to_string());
        }
        error
    }

    /// Handles one command; returns the reply channel of `Close`.
    fn handle(&mut self, command: Command<C>) -> Option<Done> {
        match command {
            Command::Append {
                first_seq,
                records,
                callback,
            } => {
                let expected = self.wal.last_seq() + self.batch.len() as u64 + 1;
                let empty = self.batch.is_empty() && self.wal.last_seq() == self.floor;
                if self.failed.is_none() && first_seq != expected {
                    if empty && first_seq > self.purged_seq {
                        // An empty log starting at another index than its next one.
                        let moved = self.move_start(first_seq - 1);
                        if let Err(error) = moved {
                            self.fail(error);
                        }
                    } else {
                        let error = LogStoreError::Invalid(format!(
                            "append at log seq {first_seq} where {expected} is next"
                        ));
                        self.fail(error);
                    }
                }
                self.batch.extend(records);
                self.unsynced.push(callback);
            }
            Command::Committed { payload } => self.committed = Some(payload),
            Command::Vote { payload, done } => {
                let result = self
                    .sync()
                    .and_then(|()| meta::write(self.wal.storage_mut(), meta::VOTE, &payload))
                    .map_err(|e| self.fail(e));
                let _ = done.send(result);
            }
            Command::Truncate { seq, done } => {
                let result = self
                    .sync()
                    .and_then(|()| self.wal.truncate_after(seq).map_err(LogStoreError::from))
                    .map_err(|e| self.fail(e));
                let _ = done.send(result);
            }
            Command::Purge { seq, payload, done } => {
                let result = self
                    .sync()
                    .and_then(|()| meta::write(self.wal.storage_mut(), meta::PURGED, &payload))
                    .and_then(|()| self.wal.purge(seq).map_err(LogStoreError::from))
                    .map_err(|e| self.fail(e));
                if result.is_ok() {
                    self.floor = self.floor.max(seq);
                    self.purged_seq = self.purged_seq.max(seq);
                }
                let _ = done.send(result);
            }
            Command::Close { done } => return Some(done),
        }
        None
    }

    /// Moves the start of the empty log: the next entry gets wal seq `floor + 1`. The
    /// `start` file and the wal move in the order that keeps a crash in between harmless:
    /// the file first when moving forward (a reopen drops the records before it), the wal
    /// first when moving back (a reopen with the old start drops the new empty segment).
    fn move_start(&mut self, floor: u64) -> Result<(), LogStoreError> {
        self.sync()?;
        let payload = meta::encode(&floor, "log seq")?;
        if floor > self.wal.last_seq() {
            meta::write(self.wal.storage_mut(), meta::START, &payload)?;
            self.wal.reset(floor)?;
        } else {
            self.wal.reset(floor)?;
            meta::write(self.wal.storage_mut(), meta::START, &payload)?;
        }
        self.floor = floor;
        Ok(())
    }

    /// Writes the batch, makes every append durable and fires their callbacks in order.
    fn sync(&mut self) -> Result<(), LogStoreError> {
        let result = self.check_failed().and_then(|()| {
            if !self.batch.is_empty() {
                let batch = std::mem::take(&mut self.batch);
                self.wal.append(&batch)?;
            }
            self.wal.sync()?;
            Ok(())
        });
        let result = result.map_err(|e| self.fail(e));
        self.batch.clear();
        for callback in self.unsynced.drain(..) {
            callback.io_completed(match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(std::io::Error::other(error.to_string())),
            });
        }
        result
    }

    /// Makes the appends durable, and writes the committed id if it is due (or `force`).
    fn flush(&mut self, force: bool) -> Result<(), LogStoreError> {
        self.sync()?;
        let due = self.committed_due_in().is_some_and(|wait| wait.is_zero());
        if force || due {
            if let Some(payload) = self.committed.take() {
                meta::write(self.wal.storage_mut(), meta::COMMITTED, &payload)
                    .map_err(|e| self.fail(e))?;
                self.committed_written_at = Some(Instant::now());
            }
        }
        Ok(())
    }
}
