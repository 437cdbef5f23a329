//! The committed state of one shard on one node: an engine fed every committed batch, in
//! log order, on every replica (the leader included). The shard leader decides on its own
//! copy ahead of commit; this one is what is committed, what reads see, and what snapshots
//! and followers hold. Applying never re-runs business rules: it applies decisions.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::{Decision, Engine};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use parking_lot::Mutex;

use crate::limits::SNAPSHOTS_KEPT;
use crate::types::{Applied, TypeConfig};

/// What changed in the committed state.
pub enum Change<'a> {
    /// A batch was applied: its encoded decisions, in order.
    Batch(&'a [Vec<u8>]),
    /// The state was replaced (by a snapshot from the leader), or this is the first call.
    Reset,
}

/// Called after every change, with the engine after it (the live stream's feed).
pub type Observer = Box<dyn FnMut(&Engine, Change<'_>) + Send>;

/// What is committed and applied.
pub struct Committed {
    /// The engine after every applied decision.
    pub engine: Engine,
    /// The last applied log id.
    pub applied: Option<LogIdOf<TypeConfig>>,
    /// The last applied membership.
    pub membership: StoredMembershipOf<TypeConfig>,
}

impl Committed {
    /// The index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.applied.as_ref().map_or(0, |id| id.index)
    }
}

struct Shared {
    shard: u16,
    dir: PathBuf,
    committed: Mutex<Committed>,
    observer: Mutex<Option<Observer>>,
}

/// One shard's state machine (cheap to clone: shared).
#[derive(Clone)]
pub struct StateMachine(Arc<Shared>);

impl StateMachine {
    /// Opens the state machine of `shard` with its snapshots in `dir`: the newest good
    /// snapshot, or an empty engine. The log after it is re-applied by openraft.
    pub fn open(shard: u16, dir: &Path) -> io::Result<Self> {
        // A snapshot a crash cut short left its temporary file: never one to read.
        let mut storage = wal::FileStorage::new(dir)?;
        for name in wal::Storage::list(&storage)? {
            if name.ends_with(".tmp") {
                wal::Storage::remove(&mut storage, &name)?;
            }
        }
        let committed = match newest_snapshot(dir)? {
            Some((_, meta, bytes)) => Committed {
                engine: Engine::restore(&bytes).map_err(invalid)?,
                applied: meta.last_log_id,
                membership: meta.last_membership,
            },
            None => Committed {
                engine: Engine::new(shard),
                applied: None,
                membership: StoredMembershipOf::<TypeConfig>::default(),
            },
        };
        Ok(StateMachine(Arc::new(Shared {
            shard,
            dir: dir.to_path_buf(),
            committed: Mutex::new(committed),
            observer: Mutex::new(None),
        })))
    }

    /// The shard.
    pub fn shard(&self) -> u16 {
        self.0.shard
    }

    /// Runs `f` on the committed state.
    pub fn with<T>(&self, f: impl FnOnce(&Committed) -> T) -> T {
        f(&self.0.committed.lock())
    }

    /// Sets the observer of applied batches; it is first called once with the current
    /// state and no decisions.
    pub fn observe(&self, mut observer: Observer) {
        let committed = self.0.committed.lock();
        observer(&committed.engine, Change::Reset);
        *self.0.observer.lock() = Some(observer);
    }

    fn notify(&self, committed: &Committed, change: Change<'_>) {
        if let Some(observer) = self.0.observer.lock().as_mut() {
            observer(&committed.engine, change);
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// A snapshot read back: its index, its meta, the engine's bytes.
type Found = (u64, SnapshotMetaOf<TypeConfig>, Vec<u8>);

/// A snapshot file in the directory: the wal's snapshot file (written since the cluster
/// snapshots use the wal's frame), or one of the previous release's own frame (read only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SnapshotFile {
    /// `snapshot-<index>.bin`, framed by [`legacy`].
    Legacy(u64),
    /// `snap-<index>.snap`, the wal's frame ([`wal::write_snapshot_file`]).
    Wal(u64),
}

impl SnapshotFile {
    fn index(self) -> u64 {
        match self {
            SnapshotFile::Legacy(index) | SnapshotFile::Wal(index) => index,
        }
    }

    fn name(self) -> String {
        match self {
            SnapshotFile::Legacy(index) => legacy::name(index),
            SnapshotFile::Wal(index) => wal::snapshot_file_name(index),
        }
    }
}

/// The snapshot files of `dir`, newest first (of one index, the wal's first).
fn snapshot_files(storage: &wal::FileStorage) -> io::Result<Vec<SnapshotFile>> {
    let names = wal::Storage::list(storage)?;
    let mut files: Vec<SnapshotFile> = wal::snapshot_seqs(&names)
        .into_iter()
        .map(SnapshotFile::Wal)
        .chain(
            names
                .iter()
                .filter_map(|n| legacy::parse_name(n))
                .map(SnapshotFile::Legacy),
        )
        .collect();
    files.sort_unstable_by_key(|f| std::cmp::Reverse((f.index(), *f)));
    Ok(files)
}

/// The newest snapshot file of `dir` that reads back whole.
fn newest_snapshot(dir: &Path) -> io::Result<Option<Found>> {
    let storage = wal::FileStorage::new(dir)?;
    for file in snapshot_files(&storage)? {
        let payload = match file {
            SnapshotFile::Wal(index) => match wal::read_snapshot_file(&storage, index) {
                Ok(payload) => Ok(payload),
                Err(wal::Error::Io { source, .. }) => return Err(source),
                Err(error) => Err(error.to_string()),
            },
            SnapshotFile::Legacy(_) => legacy::unframe(&std::fs::read(dir.join(file.name()))?),
        };
        let decoded = payload.and_then(|payload| {
            bincode::serde::decode_from_slice(&payload, bincode::config::standard())
                .map(|(v, _)| v)
                .map_err(|e| e.to_string())
        });
        match decoded {
            Ok((meta, engine)) => return Ok(Some((file.index(), meta, engine))),
            Err(e) => {
                tracing::warn!(file = %dir.join(file.name()).display(), error = %e, "snapshot skipped")
            }
        }
    }
    Ok(None)
}

/// Writes a snapshot durably as a wal snapshot file (temporary file, fsync, rename,
/// directory fsync; the seq is the last applied index) around `bincode((meta, engine
/// bytes))`, and keeps only the newest [`SNAPSHOTS_KEPT`].
fn write_snapshot(dir: &Path, meta: &SnapshotMetaOf<TypeConfig>, engine: &[u8]) -> io::Result<()> {
    let index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
    let payload = bincode::serde::encode_to_vec((meta, engine), bincode::config::standard())
        .map_err(invalid)?;
    let mut storage = wal::FileStorage::new(dir)?;
    wal::write_snapshot_file(&mut storage, index, &payload).map_err(io::Error::other)?;
    let obsolete: Vec<String> = snapshot_files(&storage)?
        .into_iter()
        .skip(SNAPSHOTS_KEPT)
        .map(SnapshotFile::name)
        .collect();
    wal::remove_files(&mut storage, &obsolete).map_err(io::Error::other)
}

/// The previous release's snapshot frame, read so that its data directories recover:
/// `BOXRSNP1`, the payload's length (u64 LE), its CRC32C (u32 LE), the payload.
mod legacy {
    const MAGIC: &[u8; 8] = b"BOXRSNP1";
    const HEADER_LEN: usize = 20;

    pub(super) fn name(index: u64) -> String {
        format!("snapshot-{index:020}.bin")
    }

    pub(super) fn parse_name(name: &str) -> Option<u64> {
        name.strip_prefix("snapshot-")?
            .strip_suffix(".bin")?
            .parse()
            .ok()
    }

    /// The payload of a file, or what is wrong with it.
    pub(super) fn unframe(bytes: &[u8]) -> Result<Vec<u8>, String> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err("not a cluster snapshot (no header)".into());
        }
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
        let payload = &bytes[HEADER_LEN..];
        if payload.len() != len {
            return Err(format!(
                "truncated: {} of {len} payload bytes",
                payload.len()
            ));
        }
        if crc32c::crc32c(payload) != crc {
            return Err("the checksum does not match".into());
        }
        Ok(payload.to_vec())
    }

    /// A file as the previous release wrote it (tests make old directories with it).
    #[cfg(test)]
    pub(super) fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<TypeConfig, Self::SnapshotData>, io::Error> {
        // Copy under the lock, encode and write outside it: applying goes on meanwhile.
        let (engine, meta) = {
            let committed = self.0.committed.lock();
            let meta = SnapshotMetaOf::<TypeConfig> {
                last_log_id: committed.applied,
                last_membership: committed.membership.clone(),
            };
            (committed.engine.clone(), meta)
        };
        let dir = self.0.dir.clone();
        let shard = self.0.shard;
        let (meta, bytes) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let bytes = engine.snapshot();
            write_snapshot(&dir, &meta, &bytes)?;
            tracing::info!(
                shard,
                index = meta.last_log_id.as_ref().map_or(0, |id| id.index),
                bytes = bytes.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "cluster snapshot written"
            );
            Ok::<_, io::Error>((meta, bytes))
        })
        .await
        .map_err(io::Error::other)??;
        Ok(SnapshotOf::<TypeConfig, Self::SnapshotData> {
            meta,
            snapshot: Cursor::new(bytes),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let committed = self.0.committed.lock();
        Ok((committed.applied, committed.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            let mut committed = self.0.committed.lock();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    for record in &batch.decisions {
                        // A committed record that does not decode is damage: stop here
                        // rather than diverge from the other replicas.
                        let decision = Decision::decode(record).map_err(|e| {
                            invalid(format!(
                                "shard {}: log entry {index}: a decision does not decode: {e}",
                                self.0.shard
                            ))
                        })?;
                        committed.engine.apply(&decision);
                    }
                    committed.applied = Some(entry.log_id);
                    self.notify(&committed, Change::Batch(&batch.decisions));
                }
                EntryPayload::Membership(membership) => {
                    committed.membership = StoredMembershipOf::<TypeConfig>::new(
                        Some(entry.log_id),
                        membership.clone(),
                    );
                }
            }
            committed.applied = Some(entry.log_id);
            drop(committed);
            if let Some(responder) = responder {
                responder.send(Applied { index });
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
        let bytes = snapshot.into_inner();
        let engine = Engine::restore(&bytes).map_err(invalid)?;
        let dir = self.0.dir.clone();
        let written_meta = meta.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            write_snapshot(&dir, &written_meta, &bytes).map(|_| bytes)
        })
        .await
        .map_err(io::Error::other)??;
        drop(bytes);
        let mut committed = self.0.committed.lock();
        committed.engine = engine;
        committed.applied = meta.last_log_id;
        committed.membership = meta.last_membership.clone();
        self.notify(&committed, Change::Reset);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Self::SnapshotData>>, io::Error> {
        let dir = self.0.dir.clone();
        let newest = tokio::task::spawn_blocking(move || newest_snapshot(&dir))
            .await
            .map_err(io::Error::other)??;
        Ok(newest.map(
            |(_, meta, bytes)| SnapshotOf::<TypeConfig, Self::SnapshotData> {
                meta,
                snapshot: Cursor::new(bytes),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::type_config::alias::LogIdOf;
    use openraft::vote::RaftLeaderId;

    fn meta(index: u64) -> SnapshotMetaOf<TypeConfig> {
        let leader = <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new(2, 1);
        SnapshotMetaOf::<TypeConfig> {
            last_log_id: Some(LogIdOf::<TypeConfig>::new(leader.to_committed(), index)),
            last_membership: StoredMembershipOf::<TypeConfig>::default(),
        }
    }

    fn engine_bytes() -> Vec<u8> {
        Engine::new(0).snapshot()
    }

    #[test]
    fn a_snapshot_of_the_previous_frame_is_read_and_newer_ones_use_the_wal_frame() {
        let dir = tempfile::tempdir().unwrap();
        // As the previous release left it: its own frame (at index 7), and a temporary file.
        let old = bincode::serde::encode_to_vec(
            (&meta(7), engine_bytes().as_slice()),
            bincode::config::standard(),
        )
        .unwrap();
        std::fs::write(dir.path().join(legacy::name(7)), legacy::frame(&old)).unwrap();
        std::fs::write(
            dir.path().join("snapshot-00000000000000000009.bin.tmp"),
            b"cut",
        )
        .unwrap();
        let sm = StateMachine::open(0, dir.path()).unwrap();
        assert_eq!(sm.with(|c| c.applied_index()), 7);
        assert!(!dir
            .path()
            .join("snapshot-00000000000000000009.bin.tmp")
            .exists());
        // Newer snapshots are wal snapshot files; the newest two of either kind are kept.
        write_snapshot(dir.path(), &meta(9), &engine_bytes()).unwrap();
        let names = wal::Storage::list(&wal::FileStorage::new(dir.path()).unwrap()).unwrap();
        assert_eq!(names, vec![wal::snapshot_file_name(9), legacy::name(7)]);
        let framed = std::fs::read(dir.path().join(wal::snapshot_file_name(9))).unwrap();
        assert_eq!(&framed[..8], b"BOXSNAP\n", "the wal's frame");
        write_snapshot(dir.path(), &meta(12), &engine_bytes()).unwrap();
        let sm = StateMachine::open(0, dir.path()).unwrap();
        assert_eq!(sm.with(|c| c.applied_index()), 12);
        assert!(!dir.path().join(legacy::name(7)).exists());
        // A damaged newest snapshot falls back to the one before it.
        let newest = dir.path().join(wal::snapshot_file_name(12));
        let mut bytes = std::fs::read(&newest).unwrap();
        *bytes.last_mut().unwrap() ^= 0xff;
        std::fs::write(&newest, bytes).unwrap();
        let sm = StateMachine::open(0, dir.path()).unwrap();
        assert_eq!(sm.with(|c| c.applied_index()), 9);
    }
}
