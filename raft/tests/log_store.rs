//! The Raft log store on the wal: openraft's conformance suite on files, power cuts at every
//! storage operation of a scripted run (appends, truncations, purges, votes), and a reopen
//! after a clean stop.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::alias::{
    LogIdOf, OneshotReceiverOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf,
};
use openraft::entry::RaftEntry;
use openraft::storage::{
    EntryResponder, IOFlushed, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderId;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, StorageError};
use raft::log_store::{LogStore, LogStoreError};
use raft::types::{Applied, Batch, TypeConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use wal::{CrashStorage, Options, Storage, TearMode};

type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
type LogId = LogIdOf<TypeConfig>;
type Vote = VoteOf<TypeConfig>;

// ---------------------------------------------------------------------------------------
// A minimal in-memory state machine (the suite needs one next to the log store).

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct SmState {
    last_applied: Option<LogId>,
    last_membership: StoredMembershipOf<TypeConfig>,
}

#[derive(Default)]
struct SmInner {
    state: SmState,
    snapshot: Option<(SnapshotMetaOf<TypeConfig>, Vec<u8>)>,
}

#[derive(Default, Clone)]
struct MemStateMachine {
    inner: Arc<Mutex<SmInner>>,
}

fn encode_state(state: &SmState) -> Result<Vec<u8>, io::Error> {
    bincode::serde::encode_to_vec(state, bincode::config::standard()).map_err(io::Error::other)
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<TypeConfig, Self::SnapshotData>, io::Error> {
        let mut inner = self.inner.lock().await;
        let data = encode_state(&inner.state)?;
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: inner.state.last_applied,
            last_membership: inner.state.last_membership.clone(),
        };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(SnapshotOf::<TypeConfig, Self::SnapshotData> {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembershipOf<TypeConfig>), io::Error> {
        let inner = self.inner.lock().await;
        Ok((
            inner.state.last_applied,
            inner.state.last_membership.clone(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            inner.state.last_applied = Some(log_id);
            if let EntryPayload::Membership(membership) = &entry.payload {
                inner.state.last_membership =
                    StoredMembershipOf::<TypeConfig>::new(Some(log_id), membership.clone());
            }
            if let Some(responder) = responder {
                responder.send(Applied {
                    index: log_id.index(),
                });
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let (state, _): (SmState, usize) =
            bincode::serde::decode_from_slice(&data, bincode::config::standard())
                .map_err(io::Error::other)?;
        let mut inner = self.inner.lock().await;
        inner.state = state;
        inner.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Self::SnapshotData>>, io::Error> {
        let inner = self.inner.lock().await;
        Ok(inner
            .snapshot
            .as_ref()
            .map(|(meta, data)| SnapshotOf::<TypeConfig, _> {
                meta: meta.clone(),
                snapshot: Cursor::new(data.clone()),
            }))
    }
}

// ---------------------------------------------------------------------------------------
// The conformance suite.

struct FileBuilder;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, MemStateMachine, tempfile::TempDir>
    for FileBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<TypeConfig>, MemStateMachine), StorageError<TypeConfig>>
    {
        let dir = tempfile::tempdir()
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let store = LogStore::open(dir.path()).map_err(|e| {
            StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e.into())
        })?;
        Ok((dir, store, MemStateMachine::default()))
    }
}

#[tokio::test]
async fn openraft_conformance_suite_passes_on_the_file_backed_store() {
    Suite::test_all(FileBuilder).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn log_id(term: u64, index: u64) -> LogId {
    let leader = <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new(term, 1);
    LogId::new(leader.to_committed(), index)
}

fn entry(term: u64, index: u64) -> Entry {
    let decisions = (0..index % 3 + 1)
        .map(|i| {
            format!(
                "term {term} index {index} decision {i} {}",
                "x".repeat((index * 13 % 40) as usize)
            )
            .into_bytes()
        })
        .collect();
    Entry::new_normal(log_id(term, index), Batch { decisions })
}

fn vote(term: u64, node: u64) -> Vote {
    Vote::new_committed(term, node)
}

fn bytes(entry: &Entry) -> Vec<u8> {
    bincode::serde::encode_to_vec(entry, bincode::config::standard()).unwrap()
}

/// Small segments and reservations, so the script rolls segments and pads them.
const OPTIONS: Options = Options {
    segment_bytes_max: 700,
    preallocate_bytes: 256,
};

/// A storage that loses power at its `cut_at`-th mutating operation: that one and every
/// later one fails with EIO and changes nothing.
struct PowerCut {
    inner: CrashStorage,
    ops: Arc<AtomicU64>,
    cut_at: u64,
}

impl PowerCut {
    fn op(&self) -> io::Result<()> {
        if self.ops.fetch_add(1, Ordering::SeqCst) + 1 >= self.cut_at {
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
}

impl Storage for PowerCut {
    fn dir(&self) -> &Path {
        self.inner.dir()
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.read(name)
    }
    fn create(&mut self, name: &str) -> io::Result<()> {
        self.op()?;
        self.inner.create(name)
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.op()?;
        self.inner.append(name, bytes)
    }
    fn preallocate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.op()?;
        self.inner.preallocate(name, len)
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.op()?;
        self.inner.sync(name)
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.op()?;
        self.inner.truncate(name, len)
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.op()?;
        self.inner.rename(from, to)
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.op()?;
        self.inner.remove(name)
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        self.op()?;
        self.inner.sync_dir()
    }
    fn close(&mut self, name: &str) {
        self.inner.close(name);
    }
}

/// What the script did, as far as the store answered: the model the recovered log is
/// checked against.
#[derive(Default, Debug)]
struct Model {
    /// The entry at each index as of the last successful call (appends count when queued:
    /// their durability is what the callbacks tell).
    log: BTreeMap<u64, Entry>,
    /// Indices whose append callback reported durable, minus those a successful
    /// truncation removed since.
    flushed: BTreeSet<u64>,
    /// Appends queued whose callback was not awaited yet.
    waiting: Vec<(Vec<u64>, Flushed)>,
    vote: Option<Vote>,
    /// A vote whose save was cut: it may or may not have reached the disk.
    vote_in_flight: Option<Vote>,
    purged: Option<LogId>,
    purge_in_flight: Option<LogId>,
    committed_saved: Vec<Option<LogId>>,
}

type Step = Result<(), ()>;

/// Where an append's `IOFlushed` callback reports.
type Flushed = OneshotReceiverOf<TypeConfig, Result<(), io::Error>>;

impl Model {
    async fn append<S: Storage>(
        &mut self,
        store: &mut LogStore<TypeConfig, S>,
        term: u64,
        indices: std::ops::RangeInclusive<u64>,
    ) -> Step {
        let entries: Vec<Entry> = indices.clone().map(|i| entry(term, i)).collect();
        let (tx, rx) = TypeConfig::oneshot();
        store
            .append(entries.clone(), IOFlushed::signal(tx))
            .await
            .map_err(drop)?;
        for e in entries {
            self.log.insert(e.index(), e);
        }
        self.waiting.push((indices.collect(), rx));
        Ok(())
    }

    async fn wait(&mut self) -> Step {
        for (indices, rx) in std::mem::take(&mut self.waiting) {
            match rx.await {
                Ok(Ok(())) => self.flushed.extend(indices),
                _ => return Err(()),
            }
        }
        Ok(())
    }

    async fn vote<S: Storage>(&mut self, store: &mut LogStore<TypeConfig, S>, v: Vote) -> Step {
        self.vote_in_flight = Some(v);
        store.save_vote(&v).await.map_err(drop)?;
        self.vote = Some(v);
        self.vote_in_flight = None;
        Ok(())
    }

    async fn truncate<S: Storage>(
        &mut self,
        store: &mut LogStore<TypeConfig, S>,
        after: Option<u64>,
    ) -> Step {
        // A truncation cut short may have removed some of the entries after `after` (from
        // the end backwards): they may stay or go, and must go once it returns.
        let from = after.map_or(0, |i| i + 1);
        self.flushed.retain(|&i| i < from);
        store
            .truncate_after(after.map(|i| self.log[&i].log_id()))
            .await
            .map_err(drop)?;
        self.log.retain(|&i, _| i < from);
        Ok(())
    }

    async fn purge<S: Storage>(&mut self, store: &mut LogStore<TypeConfig, S>, id: LogId) -> Step {
        self.purge_in_flight = Some(id);
        store.purge(id).await.map_err(drop)?;
        self.purged = Some(id);
        self.purge_in_flight = None;
        self.log.retain(|&i, _| i > id.index());
        self.flushed.retain(|&i| i > id.index());
        Ok(())
    }

    async fn committed<S: Storage>(
        &mut self,
        store: &mut LogStore<TypeConfig, S>,
        index: u64,
    ) -> Step {
        let id = Some(self.log[&index].log_id());
        store.save_committed(id).await.map_err(drop)?;
        self.committed_saved.push(id);
        Ok(())
    }
}

/// The scripted run: appends (some awaited one by one, some queued together), votes,
/// truncations inside a segment and across segments, purges inside the log and past its
/// end (as a snapshot install does), committed ids. Stops at the first failure.
async fn script<S: Storage>(store: &mut LogStore<TypeConfig, S>, m: &mut Model) -> Step {
    m.vote(store, vote(1, 1)).await?;
    m.append(store, 1, 0..=0).await?;
    m.wait().await?;
    m.append(store, 1, 1..=2).await?;
    m.append(store, 1, 3..=3).await?;
    m.wait().await?;
    m.committed(store, 2).await?;
    m.append(store, 1, 4..=6).await?;
    m.wait().await?;
    m.vote(store, vote(2, 2)).await?;
    m.truncate(store, Some(3)).await?;
    m.append(store, 2, 4..=5).await?;
    m.wait().await?;
    m.purge(store, log_id(1, 2)).await?;
    for i in 6..=12 {
        m.append(store, 2, i..=i).await?;
    }
    m.wait().await?;
    m.committed(store, 7).await?;
    m.truncate(store, Some(8)).await?;
    m.append(store, 3, 9..=10).await?;
    // The vote makes the queued appends durable first.
    m.vote(store, vote(3, 3)).await?;
    m.wait().await?;
    m.purge(store, log_id(3, 20)).await?;
    m.append(store, 3, 21..=23).await?;
    m.wait().await?;
    m.committed(store, 22).await?;
    m.truncate(store, Some(21)).await?;
    m.append(store, 4, 22..=22).await?;
    m.wait().await?;
    Ok(())
}

/// Everything the store holds: (last purged, entries, vote, committed).
type Snapshot = (Option<LogId>, Vec<Entry>, Option<Vote>, Option<LogId>);

async fn read_all<S: Storage>(store: &mut LogStore<TypeConfig, S>) -> Snapshot {
    let state = store.get_log_state().await.unwrap();
    let mut reader = store.get_log_reader().await;
    let entries = reader.try_get_log_entries(..).await.unwrap();
    assert_eq!(
        entries
            .last()
            .map(|e| e.log_id())
            .or(state.last_purged_log_id),
        state.last_log_id,
        "the log state agrees with the entries"
    );
    let vote = reader.read_vote().await.unwrap();
    let committed = store.read_committed().await.unwrap();
    (state.last_purged_log_id, entries, vote, committed)
}

/// Checks the log recovered after a power cut against what the script was told.
fn check(model: &Model, recovered: &Snapshot, context: &str) {
    let (purged, entries, vote, committed) = recovered;
    assert!(
        *purged == model.purged
            || (model.purge_in_flight.is_some() && *purged == model.purge_in_flight),
        "{context}: purged {purged:?}, the script purged {:?} (in flight {:?})",
        model.purged,
        model.purge_in_flight
    );
    let purged_to = purged.map(|id| id.index());
    for e in entries {
        let i = e.index();
        assert!(purged_to.is_none_or(|p| i > p));
        let expected = model.log.get(&i);
        assert!(
            expected.is_some_and(|x| bytes(x) == bytes(e)),
            "{context}: index {i} holds {e}, the script's log holds {expected:?} (a truncated entry came back, or one never appended)"
        );
    }
    let present: BTreeMap<u64, &Entry> = entries.iter().map(|e| (e.index(), e)).collect();
    for &i in &model.flushed {
        if purged_to.is_some_and(|p| i <= p) {
            continue;
        }
        let e = present
            .get(&i)
            .unwrap_or_else(|| panic!("{context}: index {i} was reported durable and is gone"));
        assert_eq!(
            bytes(e),
            bytes(&model.log[&i]),
            "{context}: index {i} changed"
        );
    }
    assert!(
        *vote == model.vote || (model.vote_in_flight.is_some() && *vote == model.vote_in_flight),
        "{context}: vote {vote:?}, the last saved is {:?} (in flight {:?})",
        model.vote,
        model.vote_in_flight
    );
    assert!(
        committed.is_none() || model.committed_saved.contains(committed),
        "{context}: committed {committed:?} was never saved ({:?})",
        model.committed_saved
    );
}

/// A run that starts the empty log at other indices than its next one (forward, then back
/// after truncating everything), as openraft's conformance suite does.
async fn script_moving_start<S: Storage>(
    store: &mut LogStore<TypeConfig, S>,
    m: &mut Model,
) -> Step {
    m.append(store, 1, 5..=6).await?;
    m.wait().await?;
    m.vote(store, vote(1, 1)).await?;
    m.truncate(store, None).await?;
    m.append(store, 1, 3..=4).await?;
    m.wait().await?;
    m.append(store, 1, 5..=7).await?;
    m.wait().await?;
    m.purge(store, log_id(1, 4)).await?;
    m.truncate(store, Some(5)).await?;
    m.append(store, 2, 6..=6).await?;
    m.wait().await?;
    Ok(())
}

async fn run_script<S: Storage>(
    store: &mut LogStore<TypeConfig, S>,
    m: &mut Model,
    moving_start: bool,
) -> Step {
    if moving_start {
        script_moving_start(store, m).await
    } else {
        script(store, m).await
    }
}

#[tokio::test]
async fn a_power_cut_at_any_operation_loses_nothing_reported_durable_and_brings_nothing_truncated_back(
) {
    power_cut_at_every_operation(false).await;
}

#[tokio::test]
async fn a_power_cut_while_an_empty_log_moves_its_start_recovers_a_log_that_takes_appends() {
    power_cut_at_every_operation(true).await;
}

async fn power_cut_at_every_operation(moving_start: bool) {
    // The whole run without a cut, to count its operations.
    let ops = Arc::new(AtomicU64::new(0));
    let storage = PowerCut {
        inner: CrashStorage::new(),
        ops: ops.clone(),
        cut_at: u64::MAX,
    };
    let mut store = LogStore::<TypeConfig, _>::open_with(storage, OPTIONS).unwrap();
    let mut model = Model::default();
    run_script(&mut store, &mut model, moving_start)
        .await
        .expect("the script runs without a cut");
    store.close().await.unwrap();
    let total = ops.load(Ordering::SeqCst);
    assert!(total > 30, "the script did only {total} storage operations");

    let (mut checked, mut stopped) = (0, 0);
    for cut_at in 1..=total {
        for tear in [
            TearMode::DropUnsynced,
            TearMode::KeepPrefix(cut_at * 7919),
            TearMode::GarbleTail(cut_at * 31),
        ] {
            let disk = CrashStorage::new();
            let ops = Arc::new(AtomicU64::new(0));
            let storage = PowerCut {
                inner: disk.clone(),
                ops: ops.clone(),
                cut_at,
            };
            let mut model = Model::default();
            // A cut during open fails the open; a cut later fails some step.
            if let Ok(mut store) = LogStore::<TypeConfig, _>::open_with(storage, OPTIONS) {
                // A cut past the script's own operations hits the committed file that
                // close writes (when the log thread writes it varies from run to run).
                if run_script(&mut store, &mut model, moving_start)
                    .await
                    .is_err()
                {
                    stopped += 1;
                }
                let _ = store.close().await;
            }
            disk.crash(tear);
            let context = format!("power cut at operation {cut_at} of {total}, {tear:?}");
            let mut store = LogStore::<TypeConfig, _>::open_with(disk.clone(), OPTIONS)
                .unwrap_or_else(|e| panic!("{context}: the log does not reopen: {e}"));
            let recovered = read_all(&mut store).await;
            check(&model, &recovered, &context);
            // The recovered log takes appends again, durably.
            let next = recovered
                .1
                .last()
                .map(|e| e.index() + 1)
                .or(recovered.0.map(|id| id.index() + 1))
                .unwrap_or(0);
            let mut after = Model::default();
            after.append(&mut store, 9, next..=next).await.unwrap();
            after
                .wait()
                .await
                .unwrap_or_else(|()| panic!("{context}: an append after recovery failed"));
            store.close().await.unwrap();
            disk.crash(TearMode::DropUnsynced);
            let mut store = LogStore::<TypeConfig, _>::open_with(disk, OPTIONS).unwrap();
            let (_, entries, _, _) = read_all(&mut store).await;
            assert_eq!(
                entries.last().map(bytes),
                Some(bytes(&entry(9, next))),
                "{context}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, total * 3);
    assert!(
        stopped > total * 2,
        "only {stopped} runs of {checked} were cut short"
    );
}

#[tokio::test]
async fn a_clean_stop_and_reopen_gives_the_same_log_vote_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::<TypeConfig>::open(dir.path()).unwrap();
    let mut model = Model::default();
    script(&mut store, &mut model).await.unwrap();
    let before = read_all(&mut store).await;
    assert_eq!(before.0, Some(log_id(3, 20)));
    assert_eq!(
        before.1.iter().map(|e| e.log_id()).collect::<Vec<_>>(),
        vec![log_id(3, 21), log_id(4, 22)]
    );
    assert_eq!(before.2, Some(vote(3, 3)));
    assert_eq!(before.3, Some(log_id(3, 22)));
    drop(store);
    let mut store = LogStore::<TypeConfig>::open(dir.path()).unwrap();
    let after = read_all(&mut store).await;
    assert_eq!(format!("{before:?}"), format!("{after:?}"));
    // The same once more, stopped with close() this time.
    store.close().await.unwrap();
    let mut store = LogStore::<TypeConfig>::open(dir.path()).unwrap();
    assert_eq!(
        format!("{before:?}"),
        format!("{:?}", read_all(&mut store).await)
    );
}

#[tokio::test]
async fn damage_in_a_small_file_stops_start_up_with_its_name() {
    let disk = CrashStorage::new();
    let mut store = LogStore::<TypeConfig, _>::open_with(disk.clone(), OPTIONS).unwrap();
    store.save_vote(&vote(5, 2)).await.unwrap();
    store.close().await.unwrap();
    let mut bytes = disk.contents("vote").unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    disk.overwrite("vote", bytes);
    let error = LogStore::<TypeConfig, _>::open_with(disk, OPTIONS)
        .err()
        .expect("damage is refused");
    assert!(matches!(error, LogStoreError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("vote"), "{error}");
}

// ---------------------------------------------------------------------------------------
// Group commit, measured (not asserted): `cargo test --release -p boxoffice-raft --test
// log_store -- --ignored --nocapture group_commit`.

/// Counts the fdatasyncs of the storage below.
struct CountSyncs<S> {
    inner: S,
    syncs: Arc<AtomicU64>,
}

impl<S: Storage> Storage for CountSyncs<S> {
    fn dir(&self) -> &Path {
        self.inner.dir()
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.read(name)
    }
    fn create(&mut self, name: &str) -> io::Result<()> {
        self.inner.create(name)
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.inner.append(name, bytes)
    }
    fn preallocate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.inner.preallocate(name, len)
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync(name)
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.inner.truncate(name, len)
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        self.inner.sync_dir()
    }
    fn close(&mut self, name: &str) {
        self.inner.close(name);
    }
}

#[tokio::test]
#[ignore = "a measurement: prints appends/s and fdatasyncs per append on files"]
async fn group_commit_figures() {
    const APPENDS: u64 = 2_000;
    for (in_flight, commit) in [
        (1usize, false),
        (4, false),
        (16, false),
        (64, false),
        (1, true),
        (64, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(AtomicU64::new(0));
        let storage = CountSyncs {
            inner: wal::FileStorage::new(dir.path()).unwrap(),
            syncs: syncs.clone(),
        };
        let mut store = LogStore::<TypeConfig, _>::open_with(storage, Options::default()).unwrap();
        let mut model = Model::default();
        let start = std::time::Instant::now();
        let before = syncs.load(Ordering::Relaxed);
        for i in 0..APPENDS {
            model.append(&mut store, 1, i..=i).await.unwrap();
            if model.waiting.len() >= in_flight {
                let (indices, rx) = model.waiting.remove(0);
                rx.await.unwrap().unwrap();
                if commit {
                    // As a leader does: every flushed entry commits (a quorum of one here).
                    let last = *indices.last().unwrap();
                    store.save_committed(Some(log_id(1, last))).await.unwrap();
                }
                model.flushed.extend(indices);
            }
        }
        model.wait().await.unwrap();
        let elapsed = start.elapsed();
        let synced = syncs.load(Ordering::Relaxed) - before;
        println!(
            "{in_flight:>3} appends in flight{}: {:>8.0} appends/s, {:.3} fdatasyncs per append",
            if commit {
                ", save_committed after each flush"
            } else {
                ""
            },
            APPENDS as f64 / elapsed.as_secs_f64(),
            synced as f64 / APPENDS as f64
        );
        store.close().await.unwrap();
    }
}
