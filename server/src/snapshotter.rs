//! Snapshots off the decision path.
//!
//! The shard's follower (see [`crate::follower`]) holds a copy of the shard's engine at a
//! durable sequence number. [`SnapshotObserver`], one of its observers, counts the
//! decisions it applies; every [`snapshot_every_decisions`] it copies that engine and hands
//! the copy to the shard's snapshot writer thread. The writer runs at the lowest CPU
//! priority ([`SNAPSHOT_THREAD_NICE`]): it encodes the copy with what the HTTP workers and
//! the shard thread leave of the cores, and writes
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
//! observer does not copy while the writer is still busy with the previous one.
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
use crate::limits::{
    OBSOLETE_FILE_CUT_STEP, SNAPSHOT_EVERY_DECISIONS, SNAPSHOT_IO_REST_FACTOR, SNAPSHOT_THREAD_NICE,
};

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
    /// Encode and write this copy of the engine, the state at `seq`, copied in `copy_ms`.
    Write {
        seq: u64,
        engine: Box<engine::SnapshotCopy>,
        copy_ms: u64,
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
        // A copy, not the encoding: the copy shares the growing tables' chunks with this
        // engine (copy on write, engine/src/chunked.rs), so it costs well under a
        // millisecond, and the writer thread, at the lowest priority, encodes it with what
        // the buyers' threads leave of the cores.
        let started = Instant::now();
        let engine = Box::new(engine.snapshot_copy());
        let copy_ms = started.elapsed().as_millis() as u64;
        if self
            .jobs
            .send(Job::Write {
                seq,
                engine,
                copy_ms,
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
    let mut storage = WriterStorage {
        shard,
        files: wal::FileStorage::new(&dir)?,
    };
    let thread_busy = Arc::clone(&busy);
    let thread_lock = Arc::clone(&dir_lock);
    std::thread::Builder::new()
        .name(format!("snapshot-{shard}"))
        .spawn(move || {
            lowest_priority(shard);
            // The previous snapshot's size: the next one's buffer is allocated at once.
            let mut last_len = 0usize;
            for job in jobs_rx.iter() {
                let _guard = thread_lock.lock();
                match job {
                    Job::Write {
                        seq,
                        engine,
                        copy_ms,
                    } => {
                        let started = Instant::now();
                        let bytes = engine.encode_with_capacity(last_len + last_len / 8);
                        last_len = bytes.len();
                        drop(engine);
                        let encode_ms = started.elapsed().as_millis() as u64;
                        let started = Instant::now();
                        match wal::write_snapshot_file_paced(&mut storage, seq, &bytes, rest) {
                            Ok(()) => {
                                tracing::info!(
                                    shard,
                                    seq,
                                    bytes = bytes.len(),
                                    copy_ms,
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
                        if let Err(error) = remove_gradually(&mut storage, &names) {
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

/// The writer's rest after a piece of disk work that took `took`
/// ([`SNAPSHOT_IO_REST_FACTOR`]).
fn rest(took: std::time::Duration) {
    std::thread::sleep(took * SNAPSHOT_IO_REST_FACTOR);
}

/// Deletes the obsolete files `names` ([`wal::remove_files`]), each first renamed to a
/// temporary name and cut from its end [`OBSOLETE_FILE_CUT_STEP`] at a time (each cut
/// durable, then a [`rest`]), so that their blocks are freed a few MiB at a time.
///
/// Crash safety: the files are obsolete (a durable snapshot covers them); the rename to
/// `*.tmp` comes first, and a log open deletes every `*.tmp`, so a crash part way leaves no
/// cut file under a name the log reads (the rename is made durable, a directory fsync,
/// before the first cut).
fn remove_gradually(storage: &mut WriterStorage, names: &[String]) -> Result<(), wal::Error> {
    let mut renamed = Vec::with_capacity(names.len());
    for name in names {
        let len = std::fs::metadata(wal::Storage::dir(storage).join(name)).map_or(0, |m| m.len());
        if len <= OBSOLETE_FILE_CUT_STEP {
            renamed.push(name.clone());
            continue;
        }
        let tmp = format!("{name}.tmp");
        // Straight to the files: the writer's rename hook is for snapshots being made.
        if wal::Storage::rename(&mut storage.files, name, &tmp).is_err() {
            renamed.push(name.clone());
            continue;
        }
        // The rename durable before the first cut, on any file system: a crash never leaves
        // a cut file under its old name.
        if wal::Storage::sync_dir(&mut storage.files).is_err() {
            renamed.push(tmp);
            continue;
        }
        let mut left = len;
        while left > OBSOLETE_FILE_CUT_STEP {
            left -= OBSOLETE_FILE_CUT_STEP;
            let started = Instant::now();
            if wal::Storage::truncate(&mut storage.files, &tmp, left).is_err() {
                break;
            }
            rest(started.elapsed());
        }
        renamed.push(tmp);
    }
    wal::remove_files(storage, &renamed)
}

/// Puts the calling thread at the lowest CPU priority ([`SNAPSHOT_THREAD_NICE`]): encoding
/// and writing a snapshot is background work that must not take a core from the HTTP
/// workers or the shard thread. If the system refuses, the thread runs at the normal
/// priority.
fn lowest_priority(shard: u16) {
    if let Err(error) = crate::priority::set_thread_nice(SNAPSHOT_THREAD_NICE) {
        tracing::debug!(shard, %error, "cannot lower the snapshot writer's priority");
    }
}

/// The writer's files: the log directory's, with the test hook
/// [`crate::testhooks::pause_before_snapshot_rename`] before a rename (the step that makes
/// a written snapshot the newest).
struct WriterStorage {
    shard: u16,
    files: wal::FileStorage,
}

impl wal::Storage for WriterStorage {
    fn dir(&self) -> &std::path::Path {
        self.files.dir()
    }
    fn list(&self) -> std::io::Result<Vec<String>> {
        self.files.list()
    }
    fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        self.files.read(name)
    }
    fn create(&mut self, name: &str) -> std::io::Result<()> {
        self.files.create(name)
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.files.append(name, bytes)
    }
    fn preallocate(&mut self, name: &str, len: u64) -> std::io::Result<()> {
        self.files.preallocate(name, len)
    }
    fn sync(&mut self, name: &str) -> std::io::Result<()> {
        self.files.sync(name)
    }
    fn truncate(&mut self, name: &str, len: u64) -> std::io::Result<()> {
        self.files.truncate(name, len)
    }
    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        crate::testhooks::pause_before_snapshot_rename(self.shard);
        self.files.rename(from, to)
    }
    fn remove(&mut self, name: &str) -> std::io::Result<()> {
        self.files.remove(name)
    }
    fn sync_dir(&mut self) -> std::io::Result<()> {
        self.files.sync_dir()
    }
    fn close(&mut self, name: &str) {
        self.files.close(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(engine: &Engine, id: &str) -> Decision {
        let body = serde_json::from_value(serde_json::json!({
            "name": id, "sections": [{"id": "ga", "name": "ga", "price_cents": 1, "capacity": 10}]
        }))
        .unwrap();
        let event = crate::api::convert::new_event(body, id.into(), None).unwrap();
        match engine
            .decide(&engine::Command::CreateEvent(event), 1)
            .unwrap()
        {
            engine::Decided::Change(d) => d,
            other => panic!("{other:?}"),
        }
    }

    fn done(link: &SnapshotLink) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(seq) = link.take_done() {
                return seq;
            }
            assert!(Instant::now() < deadline, "no snapshot was written");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The writer thread runs at the lowest CPU priority: its nice value, read from
    /// `/proc`, is [`SNAPSHOT_THREAD_NICE`], while the thread that started it keeps its own.
    #[test]
    fn the_snapshot_writer_runs_at_the_lowest_priority() {
        let dir = tempfile::tempdir().unwrap();
        let (_observer, _link) = spawn(7, dir.path().to_path_buf()).unwrap();
        let nice_of = |stat: &str| -> i32 {
            // Fields after the command's closing parenthesis: state is field 3, nice 19.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(16).unwrap().parse().unwrap()
        };
        let mut writer = None;
        for _ in 0..500 {
            for task in std::fs::read_dir("/proc/self/task").unwrap() {
                let task = task.unwrap().path();
                let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
                if comm.trim() == "snapshot-7" {
                    let stat = std::fs::read_to_string(task.join("stat")).unwrap();
                    writer = Some(nice_of(&stat));
                }
            }
            if writer == Some(SNAPSHOT_THREAD_NICE) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            writer,
            Some(SNAPSHOT_THREAD_NICE),
            "the writer's nice value"
        );
        let own = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        assert_ne!(
            nice_of(&own),
            SNAPSHOT_THREAD_NICE,
            "the caller's priority changed too"
        );
    }

    /// A snapshot written by the writer thread after a resynchronisation, taken in by the
    /// log, its obsolete files deleted there: a reopened log starts from the newest one and
    /// keeps exactly two.
    #[test]
    fn snapshots_after_a_resync_are_written_taken_in_and_pruned_off_the_log_thread() {
        let dir = tempfile::tempdir().unwrap();
        let options = wal::Options {
            segment_bytes_max: 256,
            preallocate_bytes: 0,
        };
        let (mut log, _) = wal::Wal::open(dir.path(), options).unwrap();
        let (mut observer, link) = spawn(0, dir.path().to_path_buf()).unwrap();
        observer.every = 2;
        let mut engine = Engine::new(0);
        let mut seqs = Vec::new();
        for round in 0..3 {
            let mut decisions = Vec::new();
            let mut records = Vec::new();
            for i in 0..2 {
                let d = event(&engine, &format!("e{round}-{i}"));
                engine.apply(&d);
                let mut buf = Vec::new();
                d.encode(&mut buf);
                records.push(buf);
                decisions.push(d);
            }
            log.append(&records).unwrap();
            log.sync().unwrap();
            let seq = log.durable_seq();
            if round == 1 {
                // A follower restarted from a copy: the count goes on from it.
                observer.resync(0, seq, &engine);
            }
            observer.batch(0, seq, &engine, &decisions);
            assert_eq!(done(&link), seq);
            link.remove(log.adopt_snapshot(seq).unwrap());
            seqs.push(seq);
        }
        // The deletions run on the writer thread: wait until the oldest snapshot is gone.
        let first = dir.path().join(format!("snap-{:020}.snap", seqs[0]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while first.exists() {
            assert!(
                Instant::now() < deadline,
                "the oldest snapshot was not deleted"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // The segments wholly covered by the older kept snapshot went with it.
        let first_segment = dir.path().join(format!("seg-{:020}.wal", 1));
        while first_segment.exists() {
            assert!(
                Instant::now() < deadline,
                "the first segment was not deleted"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(log);
        let (_, recovery) = wal::Wal::open(dir.path(), options).unwrap();
        let snapshot = recovery.snapshot.expect("a snapshot");
        assert_eq!(snapshot.seq, seqs[2]);
        assert_eq!(
            Engine::restore(&snapshot.bytes).unwrap().snapshot(),
            engine.snapshot()
        );
        let snaps = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".snap")
            })
            .count();
        assert_eq!(snaps, 2, "two snapshots are kept");
    }

    #[test]
    fn obsolete_files_are_cut_down_under_a_temporary_name_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let big = "seg-00000000000000000001.wal";
        let small = "snap-00000000000000000002.snap";
        let kept = "seg-00000000000000000900.wal";
        let big_len = OBSOLETE_FILE_CUT_STEP * 2 + 12_345;
        std::fs::write(dir.path().join(big), vec![7u8; big_len as usize]).unwrap();
        std::fs::write(dir.path().join(small), b"small").unwrap();
        std::fs::write(dir.path().join(kept), b"kept").unwrap();
        let mut storage = WriterStorage {
            shard: 0,
            files: wal::FileStorage::new(dir.path()).unwrap(),
        };
        remove_gradually(&mut storage, &[big.to_string(), small.to_string()]).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![kept.to_string()],
            "only the file not named is left"
        );
        // A name that is already gone is not an error (a second pass after a crash).
        remove_gradually(&mut storage, &[big.to_string()]).unwrap();
    }
}
