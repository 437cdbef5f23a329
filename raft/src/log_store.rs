//! The Raft log of one shard replica, on the `wal` crate: openraft's [`RaftLogStorage`] and
//! [`RaftLogReader`] for any type configuration `C` whose entries, votes and log ids are
//! serde types, over any [`wal::Storage`] ([`wal::FileStorage`] in production,
//! [`wal::CrashStorage`] and [`wal::FaultStorage`] in tests).
//!
//! **Files.** One directory per replica holds the wal's segments, one wal record per Raft
//! entry (the entry encoded with bincode 2's serde API, standard configuration), with
//! **wal seq = Raft index + 1** (the wal counts from 1, Raft from 0), plus up to four small
//! files, each replaced whole by temporary file + fsync + rename + directory fsync and
//! checked by a CRC: `vote`, `committed`, `purged` (the last purged log id, written before
//! the segments it covers are deleted) and `start` (the wal seq before the first entry,
//! when an empty log was started at another index than its next one, as openraft's
//! conformance suite does). The directory is the store's alone (give it its own, e.g.
//! `shard-<n>/log`): the wal would take a snapshot file in it for its own. The wal's rules
//! carry over: a CRC chain over the records, a torn tail cut at open, and damage anywhere
//! else stops start-up naming the file and the byte offset ([`LogStoreError::Wal`]); a
//! damaged small file, or a record that is not the entry of its index, stops it too
//! ([`LogStoreError::Corrupt`]). An entry is at most [`wal::RECORD_LEN_MAX`] bytes encoded.
//!
//! **Order and durability.** One log thread does every write, in the order the calls were
//! made (openraft requires vote and log writes to be serialized). [`RaftLogStorage::append`]
//! puts the entries in the in-memory tail and queues them, and returns: they are readable
//! at once. The thread writes the appends it finds queued, makes them durable with one
//! fdatasync, then fires their `IOFlushed` callbacks in order (group commit: one sync covers
//! every append queued while the previous sync ran). `save_vote`, `truncate_after` and
//! `purge` return once durable, after the appends queued before them are durable too.
//! `save_committed` returns at once; the thread writes the newest committed id at most
//! every [`COMMITTED_SAVE_INTERVAL`], after the appends before it are durable (a crash may
//! lose the last interval's committed id: the restarted node then re-applies less at start,
//! never an entry that is not committed), and at [`LogStore::close`].
//!
//! **Memory.** Every entry after the last purge stays in memory (a `VecDeque` of decoded
//! entries, filled from the segments at open) and is read from there: the bound is what
//! the Raft configuration keeps between purges (the snapshot interval plus
//! `max_in_snapshot_log_to_keep` entries), at the size of the entries.
//!
//! **Failure.** After any failed write the store refuses every later write
//! ([`LogStoreError::FailedEarlier`]) and fails the callbacks of unsynced appends; openraft then
//! stops the Raft node. A restart recovers from the files.

mod meta;
mod writer;

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftTypeConfig};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;
use wal::{FileStorage, Storage, Wal};

use writer::{Command, Writer};

/// The longest a saved committed log id waits before the log thread writes it to its file
/// (the thread writes it earlier when it has nothing else to do). Writing it at every commit
/// would cost two more fsyncs per commit on the path of every append.
pub const COMMITTED_SAVE_INTERVAL: Duration = Duration::from_millis(50);

/// Errors of the log store, in words, with the file where there is one.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// The wal failed or found damage (its message names the file and offset).
    #[error("raft log: {0}")]
    Wal(#[from] wal::Error),
    /// An I/O call on one of the small files failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// A file holds what no crash can explain (a damaged small file, a record that is not an
    /// entry, an entry at the wrong index).
    #[error("{path}: corruption: {reason}")]
    Corrupt {
        /// The damaged file (the log directory for a record, with its seq in `reason`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was encoded (`entry`, `vote`, `log id`).
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// A call the log cannot honour (an append that would leave a hole, a truncation into
    /// the purged part).
    #[error("{0}")]
    Invalid(String),
    /// A write failed earlier: the store refuses every later write until a restart.
    #[error("the raft log failed earlier and refuses writes: {0}")]
    FailedEarlier(String),
    /// The log thread is gone (the store was closed, or the thread panicked).
    #[error("the raft log of {0} is closed")]
    Closed(PathBuf),
}

impl From<LogStoreError> for io::Error {
    fn from(error: LogStoreError) -> Self {
        io::Error::other(error)
    }
}

/// What readers see: the entries after the last purge, the vote and the committed id.
struct State<C: RaftTypeConfig> {
    last_purged: Option<LogIdOf<C>>,
    /// The index of the first entry (the next index when there is none).
    first: u64,
    /// Consecutive entries starting at `first`.
    entries: VecDeque<C::Entry>,
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
}

impl<C: RaftTypeConfig> State<C> {
    fn first_index(&self) -> u64 {
        self.first
    }

    fn next_index(&self) -> u64 {
        self.first_index() + self.entries.len() as u64
    }
}

/// The shared part of a store and its readers.
struct Shared<C: RaftTypeConfig> {
    dir: PathBuf,
    state: RwLock<State<C>>,
}

/// The durable Raft log of one replica (see the module documentation). Open it with
/// [`LogStore::open`] (files in a directory) or [`LogStore::open_with`] (any storage).
pub struct LogStore<C: RaftTypeConfig, S: Storage + 'static = FileStorage> {
    shared: Arc<Shared<C>>,
    tx: Option<mpsc::Sender<Command<C>>>,
    thread: Option<JoinHandle<S>>,
}

/// A reader of a [`LogStore`] (what replication tasks read entries through).
pub struct LogReader<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader {
            shared: self.shared.clone(),
        }
    }
}

impl<C> LogStore<C, FileStorage>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    /// Opens (creating it if missing) the log in `dir` with the wal's default options, and
    /// recovers it: see [`LogStore::open_with`].
    pub fn open(dir: &Path) -> Result<Self, LogStoreError> {
        let storage = FileStorage::new(dir).map_err(|source| LogStoreError::Io {
            path: dir.to_path_buf(),
            op: "create directory",
            source,
        })?;
        Self::open_with(storage, wal::Options::default())
    }
}

impl<C, S> LogStore<C, S>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
    S: Storage + 'static,
{
    /// Opens the log on `storage`: reads the vote, committed and purged files, opens the
    /// wal (cutting a torn tail, refusing damage with file and offset), reads every entry
    /// after the last purge into memory, and starts the log thread.
    pub fn open_with(storage: S, options: wal::Options) -> Result<Self, LogStoreError> {
        let dir = storage.dir().to_path_buf();
        let vote: Option<VoteOf<C>> = meta::read(&storage, meta::VOTE)?;
        let committed: Option<Option<LogIdOf<C>>> = meta::read(&storage, meta::COMMITTED)?;
        let last_purged: Option<LogIdOf<C>> = meta::read(&storage, meta::PURGED)?;
        let start: Option<u64> = meta::read(&storage, meta::START)?;
        let purged_seq = last_purged.as_ref().map_or(0, |id| id.index() + 1);
        let floor = purged_seq.max(start.unwrap_or(0));
        let (mut wal, _recovery) = Wal::open_with_purged(storage, options, floor)?;
        let mut entries = VecDeque::new();
        let replayed = wal.replay(floor + 1, |seq, bytes| {
            let corrupt = |reason: String| LogStoreError::Corrupt {
                path: dir.clone(),
                reason: format!("log record {seq}: {reason}"),
            };
            let (entry, used): (C::Entry, usize) =
                bincode::serde::decode_from_slice(bytes, meta::config())
                    .map_err(|e| corrupt(format!("not a Raft entry: {e}")))?;
            if used != bytes.len() {
                return Err(corrupt(format!(
                    "{} bytes after the entry",
                    bytes.len() - used
                )));
            }
            if entry.index() + 1 != seq {
                return Err(corrupt(format!("holds Raft index {}", entry.index())));
            }
            entries.push_back(entry);
            Ok(())
        });
        match replayed {
            Ok(_) => {}
            Err(wal::ReplayError::Wal(error)) => return Err(error.into()),
            Err(wal::ReplayError::Visitor(error)) => return Err(error),
        }
        let state = State {
            last_purged,
            first: floor,
            entries,
            vote,
            committed: committed.flatten(),
        };
        debug_assert_eq!(state.next_index(), wal.last_seq());
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            state: RwLock::new(state),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::<C, S> {
            wal,
            unsynced: Vec::new(),
            batch: Vec::new(),
            committed: None,
            committed_written_at: None,
            failed: None,
            floor,
            purged_seq,
        };
        let thread = std::thread::Builder::new()
            .name("raft-log".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| LogStoreError::Io {
                path: dir,
                op: "spawn the log thread",
                source,
            })?;
        Ok(LogStore {
            shared,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Makes everything durable (appends and the committed id), stops the log thread and
    /// gives the storage back. Dropping the store does the same without the answer (both
    /// wait for the thread, at most one fdatasync and one small file write).
    pub async fn close(mut self) -> Result<S, LogStoreError> {
        let (done, rx) = oneshot::channel();
        let sent = self.send(Command::Close { done });
        let result = match sent {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(self.closed())),
            Err(error) => Err(error),
        };
        self.tx = None;
        let storage = self.thread.take().map(|t| t.join());
        match storage {
            Some(Ok(storage)) => result.map(|()| storage),
            _ => Err(self.closed()),
        }
    }

    /// A reader of this store.
    pub fn reader(&self) -> LogReader<C> {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn closed(&self) -> LogStoreError {
        LogStoreError::Closed(self.shared.dir.clone())
    }

    fn send(&self, command: Command<C>) -> Result<(), LogStoreError> {
        match &self.tx {
            Some(tx) => tx.send(command).map_err(|_| self.closed()),
            None => Err(self.closed()),
        }
    }

    /// Sends a command that answers, and waits for the answer.
    async fn call(
        &self,
        command: impl FnOnce(writer::Done) -> Command<C>,
    ) -> Result<(), LogStoreError> {
        let (done, rx) = oneshot::channel();
        self.send(command(done))?;
        rx.await.unwrap_or_else(|_| Err(self.closed()))
    }
}

impl<C: RaftTypeConfig, S: Storage + 'static> Drop for LogStore<C, S> {
    fn drop(&mut self) {
        // Without senders the thread makes everything durable and stops; waiting for it
        // means a store reopened on the same directory right after never races it.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The entries of `state` in `range` (clamped to what the log holds).
fn entries_in<C>(state: &State<C>, range: impl RangeBounds<u64>) -> Vec<C::Entry>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    let first = state.first_index();
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    }
    .max(first);
    let end = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    }
    .min(state.next_index());
    if start >= end {
        return Vec::new();
    }
    state
        .entries
        .range((start - first) as usize..(end - first) as usize)
        .cloned()
        .collect()
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        Ok(entries_in(&self.shared.state.read(), range))
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.shared.state.read().vote.clone())
    }
}

impl<C, S> RaftLogStorage<C> for LogStore<C, S>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
    S: Storage + 'static,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let state = self.shared.state.read();
        let last = state
            .entries
            .back()
            .map(|e| e.log_id())
            .or_else(|| state.last_purged.clone());
        Ok(LogState {
            last_purged_log_id: state.last_purged.clone(),
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        let payload = meta::encode(vote, "vote")?;
        self.call(|done| Command::Vote { payload, done }).await?;
        self.shared.state.write().vote = Some(vote.clone());
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let payload = meta::encode(&committed, "log id")?;
        self.send(Command::Committed { payload })?;
        self.shared.state.write().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.shared.state.read().committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let Some(first) = entries.first() else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let first_index = first.index();
        let mut records = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if entry.index() != first_index + i as u64 {
                return Err(LogStoreError::Invalid(format!(
                    "append of non-consecutive entries: index {} after {}",
                    entry.index(),
                    first_index + i as u64 - 1
                ))
                .into());
            }
            records.push(meta::encode(entry, "entry")?);
        }
        {
            let mut state = self.shared.state.write();
            let purged_to = state.last_purged.as_ref().map_or(0, |id| id.index() + 1);
            if state.entries.is_empty() && first_index >= purged_to {
                // An empty log may start at another index than its next one, never inside
                // the purged part (the log thread moves the wal's start durably first).
                state.first = first_index;
            }
            if first_index != state.next_index() {
                return Err(LogStoreError::Invalid(format!(
                    "append at index {first_index} would leave a hole or overwrite: the next index is {}",
                    state.next_index()
                ))
                .into());
            }
            // Queued while the lock is held, so the thread sees appends in index order.
            self.send(Command::Append {
                first_seq: first_index + 1,
                records,
                callback,
            })?;
            state.entries.extend(entries);
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        // Entries from index `keep_to` on go: wal seqs from `keep_to + 1` on.
        let keep_to = last_log_id.as_ref().map_or(0, |id| id.index() + 1);
        let seq = {
            let mut state = self.shared.state.write();
            let purged_to = state.last_purged.as_ref().map_or(0, |id| id.index() + 1);
            if keep_to < purged_to {
                return Err(LogStoreError::Invalid(format!(
                    "truncation after index {:?} reaches into the purged log (purged up to index {})",
                    last_log_id.as_ref().map(|id| id.index()),
                    purged_to - 1
                ))
                .into());
            }
            let first = state.first_index();
            let keep = (keep_to.saturating_sub(first) as usize).min(state.entries.len());
            state.entries.truncate(keep);
            keep_to.max(first)
        };
        self.call(|done| Command::Truncate { seq, done }).await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        if self.shared.state.read().last_purged.as_ref() >= Some(&log_id) {
            // Purged already (the purged file never goes back).
            return Ok(());
        }
        let payload = meta::encode(&log_id, "log id")?;
        let seq = log_id.index() + 1;
        self.call(|done| Command::Purge { seq, payload, done })
            .await?;
        let mut state = self.shared.state.write();
        let first = state.first_index();
        let drop = (seq.saturating_sub(first) as usize).min(state.entries.len());
        state.entries.drain(..drop);
        state.first = state.first.max(seq);
        state.last_purged = Some(log_id);
        Ok(())
    }
}
