//! `Wal`: open and recover, append in batches, sync, snapshot.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{is_full, Error, ReplayError};
use crate::format::{self, Frame, SEGMENT_HEADER_LEN, SNAPSHOT_WRITE_PIECE};
use crate::scan::{scan_segment, TornTail};
use crate::storage::{FileStorage, Storage};

/// Tuning of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// A segment rolls once it would grow past this many bytes.
    pub segment_bytes_max: u64,
    /// Padding (zeros past the last record) written ahead of the records, this many bytes
    /// at a time (0: none). An append into padding leaves the file's size alone, so its
    /// fdatasync writes the data only; growing the file would make every fdatasync write
    /// the inode too (a second device round trip on ext4 without a journal). One
    /// fdatasync per this many bytes also writes the padding.
    pub preallocate_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes_max: 64 * 1024 * 1024,
            preallocate_bytes: 1024 * 1024,
        }
    }
}

/// The newest valid snapshot found at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// It covers every record with seq <= this.
    pub seq: u64,
    /// Its payload.
    pub bytes: Vec<u8>,
    /// Its file.
    pub path: PathBuf,
}

/// What open found and did.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// The snapshot to start from, if any.
    pub snapshot: Option<Snapshot>,
    /// Damaged snapshots skipped (the previous one was used instead).
    pub damaged_snapshots: Vec<PathBuf>,
    /// The torn tail cut from the newest segment, if there was one.
    pub torn_tail: Option<TornTail>,
    /// The last record's seq (0 when the log is empty).
    pub last_seq: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    name: String,
    first_seq: u64,
    last_seq: u64,
}

/// A write-ahead log in one directory: segments of framed records plus snapshots.
#[derive(Debug)]
pub struct Wal<S: Storage = FileStorage> {
    storage: S,
    options: Options,
    segments: Vec<Segment>,
    /// Bytes in the current (last) segment.
    current_len: u64,
    /// Bytes of the current segment, its padding included (>= `current_len`).
    reserved_len: u64,
    prev_crc: u32,
    last_seq: u64,
    durable_seq: u64,
    snapshots: Vec<u64>,
    /// Snapshots found damaged at open, deleted at the next prune.
    damaged_snapshots: Vec<u64>,
    /// Bytes of the current segment known durable (a failed sync cuts back to it).
    durable_len: u64,
    failed: Option<String>,
    /// The padding step as configured (a failed `preallocate` turns it off until a
    /// successful [`Wal::probe_space`]).
    preallocate_configured: u64,
    buf: Vec<u8>,
}

fn io_error(dir: &Path, name: &str, op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    let path = dir.join(name);
    move |source| Error::Io { path, op, source }
}

/// What the segments hold, as open found them.
struct SegmentsFound {
    segments: Vec<Segment>,
    /// Bytes of the valid records of the last segment (its header included).
    current_len: u64,
    /// CRC of the last record (the chain's next seed).
    prev_crc: u32,
    /// The format version of the last segment.
    newest_version: u32,
}

/// Loads the newest valid snapshot among `names` into `recovery` (skipping and reporting
/// damaged ones, newest first). Returns the snapshots to keep and the damaged ones.
fn load_snapshot<S: Storage>(
    storage: &S,
    dir: &Path,
    names: &[String],
    recovery: &mut Recovery,
) -> Result<(Vec<u64>, Vec<u64>), Error> {
    let mut snapshots = snapshot_seqs(names);
    let mut damaged = Vec::new();
    for &seq in snapshots.iter().rev() {
        let name = format::snapshot_name(seq);
        match read_snapshot_file(storage, seq) {
            Ok(bytes) => {
                recovery.snapshot = Some(Snapshot {
                    seq,
                    bytes,
                    path: dir.join(&name),
                });
                break;
            }
            Err(error @ Error::Io { .. }) => return Err(error),
            Err(_) => {
                tracing::warn!(path = %dir.join(&name).display(), "damaged snapshot skipped");
                recovery.damaged_snapshots.push(dir.join(&name));
                damaged.push(seq);
            }
        }
    }
    // A damaged snapshot is never one of the two kept (so pruning cannot keep it in
    // place of a good one); it is deleted with the next prune.
    snapshots.retain(|seq| !damaged.contains(seq));
    Ok((snapshots, damaged))
}

/// The segments among `names`, by first seq, after deleting those that hold records up
/// to `purged` only.
fn segment_names_after_purge<S: Storage>(
    storage: &mut S,
    dir: &Path,
    names: &[String],
    purged: u64,
) -> Result<Vec<(u64, String)>, Error> {
    let mut segment_names: Vec<(u64, String)> = names
        .iter()
        .filter_map(|n| format::parse_segment_name(n).map(|s| (s, n.clone())))
        .collect();
    segment_names.sort_unstable();
    if purged > 0 {
        // A segment followed by one starting at or before `purged + 1` holds purged
        // records only: a purge removed it, or was about to.
        let mut removed = false;
        while segment_names.len() > 1 && segment_names[1].0 <= purged + 1 {
            let (_, name) = segment_names.remove(0);
            storage
                .remove(&name)
                .map_err(io_error(dir, &name, "remove"))?;
            removed = true;
        }
        if removed {
            storage
                .sync_dir()
                .map_err(io_error(dir, "", "fsync directory"))?;
        }
    }
    Ok(segment_names)
}

/// Checks every segment in order, cuts a torn tail of the newest one (into
/// `recovery.torn_tail`; a newest segment torn within its header is removed), and cuts
/// the padding after the last record.
fn scan_segments<S: Storage>(
    storage: &mut S,
    dir: &Path,
    segment_names: &[(u64, String)],
    recovery: &mut Recovery,
) -> Result<SegmentsFound, Error> {
    let mut found = SegmentsFound {
        segments: Vec::new(),
        current_len: 0,
        prev_crc: 0,
        newest_version: format::FORMAT_VERSION,
    };
    let mut expected: Option<u64> = None;
    let mut padding = 0;
    let count = segment_names.len();
    for (i, (first_seq, name)) in segment_names.iter().enumerate() {
        let newest = i + 1 == count;
        let bytes = storage.read(name).map_err(io_error(dir, name, "read"))?;
        let scan = scan_segment(
            &dir.join(name),
            &bytes,
            newest,
            expected.or(Some(*first_seq)),
            |_, _, _| {},
        )?;
        if let Some(torn) = scan.torn.clone() {
            tracing::warn!(path = %torn.path.display(), offset = torn.offset, bytes = torn.bytes_cut,
                "cutting a torn record at the end of the log");
            if scan.valid_len < SEGMENT_HEADER_LEN as u64 {
                storage
                    .remove(name)
                    .map_err(io_error(dir, name, "remove"))?;
                storage
                    .sync_dir()
                    .map_err(io_error(dir, "", "fsync directory"))?;
                recovery.torn_tail = Some(torn);
                continue;
            }
            storage
                .truncate(name, scan.valid_len)
                .map_err(io_error(dir, name, "truncate"))?;
            recovery.torn_tail = Some(torn);
        }
        padding = scan.padding;
        found.newest_version = scan.version;
        expected = Some(scan.last_seq + 1);
        found.current_len = scan.valid_len;
        found.prev_crc = scan.last_crc;
        found.segments.push(Segment {
            name: name.clone(),
            first_seq: scan.first_seq,
            last_seq: scan.last_seq,
        });
    }
    if let Some(last) = found.segments.last().filter(|_| padding > 0) {
        // Padding after the last record of the segment appends go to (the last file, or
        // the one before a torn newest file that was removed): cut it, so the next
        // append starts right after that record; it is written again as needed.
        storage
            .truncate(&last.name, found.current_len)
            .map_err(io_error(dir, &last.name, "truncate"))?;
    }
    Ok(found)
}

impl Wal<FileStorage> {
    /// Opens the log in `dir` (created if missing) and recovers it; see [`Wal::open_with`].
    pub fn open(dir: &Path, options: Options) -> Result<(Self, Recovery), Error> {
        let storage = FileStorage::new(dir).map_err(io_error(dir, "", "create directory"))?;
        Self::open_with(storage, options)
    }
}

impl<S: Storage> Wal<S> {
    /// Recovers the log on `storage`: loads the newest valid snapshot (an older one if
    /// the newest is damaged), checks every segment, cuts a torn tail of the newest one
    /// (logged and reported), and refuses corruption anywhere else with file and offset.
    pub fn open_with(storage: S, options: Options) -> Result<(Self, Recovery), Error> {
        Self::open_with_purged(storage, options, 0)
    }

    /// [`Wal::open_with`] for a log whose records up to `purged` were removed on purpose
    /// by [`Wal::purge`] (the caller keeps `purged` durably, written before the purge).
    /// The first segment may then start anywhere up to `purged + 1`; segments holding only
    /// records up to `purged` (left by a purge a crash cut short) are deleted; an empty log
    /// continues at `purged + 1`. With `purged == 0` this is exactly [`Wal::open_with`].
    pub fn open_with_purged(
        mut storage: S,
        options: Options,
        purged: u64,
    ) -> Result<(Self, Recovery), Error> {
        let dir = storage.dir().to_path_buf();
        let names = storage.list().map_err(io_error(&dir, "", "list"))?;
        for tmp in names.iter().filter(|n| n.ends_with(".tmp")) {
            storage.remove(tmp).map_err(io_error(&dir, tmp, "remove"))?;
        }
        let mut recovery = Recovery::default();
        let (snapshots, damaged) = load_snapshot(&storage, &dir, &names, &mut recovery)?;
        let segment_names = segment_names_after_purge(&mut storage, &dir, &names, purged)?;
        let snapshot_seq = recovery.snapshot.as_ref().map_or(0, |s| s.seq);
        let mut found = scan_segments(&mut storage, &dir, &segment_names, &mut recovery)?;
        if purged > 0 && found.segments.last().is_some_and(|s| s.last_seq < purged) {
            // Every record left is purged (a purge past the end that a crash cut short
            // before its new segment): drop them all, and continue at `purged + 1`.
            for segment in found.segments.drain(..) {
                storage
                    .remove(&segment.name)
                    .map_err(io_error(&dir, &segment.name, "remove"))?;
            }
            found.current_len = 0;
            found.prev_crc = 0;
            found.newest_version = format::FORMAT_VERSION;
        }
        let snapshot_seq = snapshot_seq.max(purged);
        if let Some(first) = found.segments.first() {
            if first.first_seq > snapshot_seq + 1 {
                return Err(Error::Corrupt {
                    path: dir.join(&first.name),
                    offset: 0,
                    reason: format!(
                        "records {}..{} are missing (the snapshot covers up to {snapshot_seq})",
                        snapshot_seq + 1,
                        first.first_seq - 1
                    ),
                });
            }
        }
        let last_seq = found
            .segments
            .last()
            .map_or(snapshot_seq, |s| s.last_seq.max(snapshot_seq));
        recovery.last_seq = last_seq;
        // Make every directory entry found durable before anything is appended: a segment
        // created by a run that died before its directory fsync must not vanish later,
        // taking records acknowledged by this run with it.
        storage
            .sync_dir()
            .map_err(io_error(&dir, "", "fsync directory"))?;
        let mut wal = Wal {
            storage,
            options,
            segments: found.segments,
            current_len: found.current_len,
            reserved_len: found.current_len,
            durable_len: found.current_len,
            prev_crc: found.prev_crc,
            last_seq,
            durable_seq: last_seq,
            snapshots,
            damaged_snapshots: damaged,
            failed: None,
            preallocate_configured: options.preallocate_bytes,
            buf: Vec::new(),
        };
        wal.open_current_segment(found.newest_version)?;
        Ok((wal, recovery))
    }

    /// The last step of open: starts a segment for the next records unless the newest one
    /// (of format `newest_version`) can take them.
    fn open_current_segment(&mut self, newest_version: u32) -> Result<(), Error> {
        let last_seq = self.last_seq;
        if newest_version < format::FORMAT_VERSION {
            // Only segments of this build's version are written to: an older one is left
            // as it is (an empty one is replaced), and the next records start a new one.
            if let Some(old) = self.segments.pop_if(|s| s.last_seq < s.first_seq) {
                self.storage.remove(&old.name).map_err(io_error(
                    &self.dir(),
                    &old.name,
                    "remove",
                ))?;
            }
            self.new_segment(last_seq + 1)?;
        } else if self.segments.last().is_none_or(|s| s.last_seq < last_seq) {
            // No segment (or only one that ends before the snapshot): start a fresh one.
            self.new_segment(last_seq + 1)?;
        }
        Ok(())
    }

    fn dir(&self) -> PathBuf {
        self.storage.dir().to_path_buf()
    }

    /// The name of the segment appends go to.
    fn current_name(&self) -> String {
        self.segments
            .last()
            .expect("a current segment")
            .name
            .clone()
    }

    /// Creates segment `first_seq` durably (file, header, fsync, directory fsync).
    fn new_segment(&mut self, first_seq: u64) -> Result<(), Error> {
        let name = format::segment_name(first_seq);
        let dir = self.dir();
        let header = format::segment_header(first_seq);
        let written = self
            .storage
            .create(&name)
            .map_err(io_error(&dir, &name, "create"))
            .and_then(|()| {
                self.storage
                    .append(&name, &header)
                    .map_err(io_error(&dir, &name, "write header"))
            });
        if let Err(Error::Io { path, op, source }) = written {
            // No room for the new file: remove it again, and the log is as it was.
            let removed = match self.storage.remove(&name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
            if is_full(&source) && removed.is_ok() {
                return Err(Error::NoSpace { path, op, source });
            }
            return Err(self.latch(Error::Io { path, op, source }));
        }
        let created = written
            .and_then(|()| {
                self.storage
                    .sync(&name)
                    .map_err(io_error(&dir, &name, "fdatasync"))
            })
            .and_then(|()| {
                self.storage
                    .sync_dir()
                    .map_err(io_error(&dir, "", "fsync directory"))
            });
        if let Err(error) = created {
            return Err(self.latch(error));
        }
        self.prev_crc = format::parse_segment_header(&header)
            .expect("just built")
            .crc;
        self.current_len = header.len() as u64;
        self.reserved_len = self.current_len;
        self.durable_len = self.current_len;
        self.segments.push(Segment {
            name,
            first_seq,
            last_seq: first_seq - 1,
        });
        Ok(())
    }

    fn latch(&mut self, error: Error) -> Error {
        tracing::error!(%error, "log write failed; refusing every later write");
        self.failed = Some(error.to_string());
        error
    }

    fn check_failed(&self) -> Result<(), Error> {
        match &self.failed {
            Some(reason) => Err(Error::FailedEarlier(reason.clone())),
            None => Ok(()),
        }
    }

    /// Frames the batch and writes it with one write. Returns the seqs it got
    /// (consecutive; the first record ever is 1). Not durable until [`Wal::sync`].
    pub fn append<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<Range<u64>, Error> {
        self.check_failed()?;
        let first = self.last_seq + 1;
        if records.is_empty() {
            return Ok(first..first);
        }
        for r in records {
            if r.as_ref().len() > format::RECORD_LEN_MAX {
                return Err(Error::Invalid(format!(
                    "a record of {} bytes is over the {} byte limit",
                    r.as_ref().len(),
                    format::RECORD_LEN_MAX
                )));
            }
        }
        let batch_len: u64 = records
            .iter()
            .map(|r| (format::RECORD_HEADER_LEN + r.as_ref().len()) as u64)
            .sum();
        let has_records = self
            .segments
            .last()
            .is_some_and(|s| s.last_seq >= s.first_seq);
        if has_records && self.current_len + batch_len > self.options.segment_bytes_max {
            self.sync()?;
            self.new_segment(first)?;
        }
        self.reserve(self.current_len + batch_len, batch_len)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut crc = self.prev_crc;
        for (i, r) in records.iter().enumerate() {
            crc = format::encode_record(&mut buf, crc, first + i as u64, r.as_ref());
        }
        let name = self.current_name();
        let dir = self.dir();
        let written = self
            .storage
            .append(&name, &buf)
            .map_err(io_error(&dir, &name, "append"));
        self.buf = buf;
        if let Err(error) = written {
            // Cut what a short write left, so a restart without a crash does not find
            // records whose append was reported failed.
            let cut = self.storage.truncate(&name, self.current_len);
            self.reserved_len = self.current_len;
            // Out of space, cut back, and nothing unsynced before this batch: the log is
            // exactly at its durable end, so it need not latch; a later append may succeed.
            if let Error::Io { path, op, source } = error {
                if is_full(&source) && cut.is_ok() && self.current_len == self.durable_len {
                    tracing::warn!(path = %path.display(), %source, "log write found no space; nothing latched");
                    return Err(Error::NoSpace { path, op, source });
                }
                return Err(self.latch(Error::Io { path, op, source }));
            }
            return Err(self.latch(error));
        }
        self.prev_crc = crc;
        self.current_len += batch_len;
        self.last_seq = first + records.len() as u64 - 1;
        self.segments
            .last_mut()
            .expect("a current segment")
            .last_seq = self.last_seq;
        Ok(first..self.last_seq + 1)
    }

    /// Pads the current segment up to at least `end` in steps of `preallocate_bytes` (see
    /// [`Options::preallocate_bytes`]) before a batch of `batch_len` bytes is written. A
    /// batch of a quarter step or more is written without padding: padding before it
    /// would double the bytes that reach the disk to save one inode write, which pays only
    /// next to the device round trip of a small batch.
    fn reserve(&mut self, end: u64, batch_len: u64) -> Result<(), Error> {
        let step = self.options.preallocate_bytes;
        if step == 0 || end <= self.reserved_len || batch_len.saturating_mul(4) >= step {
            return Ok(());
        }
        let target = end.next_multiple_of(step);
        let name = self.current_name();
        if let Err(error) = self.storage.preallocate(&name, target) {
            // Padding is an optimization, not content: without it the records still fit (a
            // disk with less than a step free, a file-size limit), so go on without it,
            // after cutting back what the failed `preallocate` wrote. Only if that cut
            // fails is the file's end unknown, and the log latches.
            tracing::warn!(segment = %name, %error, "cannot reserve log space; writing without it");
            self.options.preallocate_bytes = 0;
            if let Err(error) = self.storage.truncate(&name, self.current_len) {
                let dir = self.dir();
                return Err(self.latch(io_error(&dir, &name, "truncate")(error)));
            }
            self.reserved_len = self.current_len;
            return Ok(());
        }
        self.reserved_len = target;
        Ok(())
    }

    /// After an [`Error::NoSpace`]: checks that `bytes` more bytes fit, by writing that
    /// much padding after the last record and making it durable with one fdatasync
    /// (padding is never content: later appends overwrite it). `Ok` means appends may go
    /// on; `Error::NoSpace` means still no space (the padding was cut again); any other
    /// error latched the log (a failed fdatasync is never retried). The padding step
    /// turned off by a failed `preallocate` is turned back on.
    pub fn probe_space(&mut self, bytes: u64) -> Result<(), Error> {
        self.check_failed()?;
        let name = self.current_name();
        let dir = self.dir();
        let target = self.current_len + bytes;
        if target > self.reserved_len {
            if let Err(source) = self.storage.preallocate(&name, target) {
                let cut = self.storage.truncate(&name, self.current_len);
                self.reserved_len = self.current_len;
                if is_full(&source) && cut.is_ok() {
                    return Err(Error::NoSpace {
                        path: dir.join(&name),
                        op: "reserve",
                        source,
                    });
                }
                return Err(self.latch(io_error(&dir, &name, "reserve")(source)));
            }
            self.reserved_len = target;
        }
        if let Err(error) = self
            .storage
            .sync(&name)
            .map_err(io_error(&dir, &name, "fdatasync"))
        {
            return Err(self.latch(error));
        }
        self.options.preallocate_bytes = self.preallocate_configured;
        Ok(())
    }

    /// Makes everything appended durable with one fdatasync. After a failure the log
    /// refuses all later writes; it never retries an fsync.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.check_failed()?;
        if self.durable_seq == self.last_seq {
            return Ok(());
        }
        let name = self.current_name();
        let dir = self.dir();
        if let Err(error) = self
            .storage
            .sync(&name)
            .map_err(io_error(&dir, &name, "fdatasync"))
        {
            // Best effort: cut the records whose sync failed, so that a restart (without a
            // crash in between) does not find decisions that were answered as failed.
            let _ = self.storage.truncate(&name, self.durable_len);
            return Err(self.latch(error));
        }
        self.durable_seq = self.last_seq;
        self.durable_len = self.current_len;
        Ok(())
    }

    /// Removes every record after `seq` (all of them with `seq == 0`), durably before it
    /// returns: later segments are deleted newest first (each deletion made durable before
    /// the next, so a crash in between leaves a shorter log, never a hole), then the segment
    /// holding `seq + 1` is cut right before it. The next append gets `seq + 1`. Records up
    /// to `seq` keep their durability (unsynced ones still need [`Wal::sync`]). Nothing to
    /// do when `seq` is the last seq or beyond; `seq + 1` before the first record still in
    /// the log is [`Error::Invalid`].
    pub fn truncate_after(&mut self, seq: u64) -> Result<(), Error> {
        self.check_failed()?;
        if seq >= self.last_seq {
            return Ok(());
        }
        let Some(keep) = self.segments.iter().rposition(|s| s.first_seq <= seq + 1) else {
            return Err(Error::Invalid(format!(
                "cannot truncate after seq {seq}: the log starts at seq {}",
                self.segments.first().map_or(0, |s| s.first_seq)
            )));
        };
        let dir = self.dir();
        let current = self.segments.len() - 1;
        while self.segments.len() > keep + 1 {
            let segment = self.segments.pop().expect("a later segment");
            let removed = self
                .storage
                .remove(&segment.name)
                .map_err(io_error(&dir, &segment.name, "remove"))
                .and_then(|()| {
                    self.storage
                        .sync_dir()
                        .map_err(io_error(&dir, "", "fsync directory"))
                });
            if let Err(error) = removed {
                return Err(self.latch(error));
            }
        }
        let segment = self.segments[keep].clone();
        let (offset, crc, version) = match self.record_offset(&segment, seq + 1) {
            Ok(found) => found,
            Err(error) => return Err(self.latch(error)),
        };
        if let Err(error) = self
            .storage
            .truncate(&segment.name, offset)
            .map_err(io_error(&dir, &segment.name, "truncate"))
        {
            return Err(self.latch(error));
        }
        if keep == current {
            self.durable_len = self.durable_len.min(offset);
            self.durable_seq = self.durable_seq.min(seq);
        } else {
            // An earlier segment was synced in full before the log rolled past it.
            self.durable_len = offset;
            self.durable_seq = seq;
        }
        self.segments[keep].last_seq = seq;
        self.current_len = offset;
        self.reserved_len = offset;
        self.prev_crc = crc;
        self.last_seq = seq;
        if version < format::FORMAT_VERSION {
            // Only segments of this build's version are appended to (as at open): the
            // next records start a new segment; an emptied old one is replaced.
            self.sync()?;
            if let Some(old) = self.segments.pop_if(|s| s.last_seq < s.first_seq) {
                if let Err(error) = self
                    .storage
                    .remove(&old.name)
                    .map_err(io_error(&dir, &old.name, "remove"))
                {
                    return Err(self.latch(error));
                }
            }
            self.new_segment(seq + 1)?;
        }
        Ok(())
    }

    /// Where record `seq` starts in `segment` (its end when `seq` is one past its last
    /// record), the chain's CRC before it, and the segment's format version.
    fn record_offset(&self, segment: &Segment, seq: u64) -> Result<(u64, u32, u32), Error> {
        let dir = self.dir();
        let bytes =
            self.storage
                .read(&segment.name)
                .map_err(io_error(&dir, &segment.name, "read"))?;
        let corrupt = |offset: usize, reason: String| Error::Corrupt {
            path: dir.join(&segment.name),
            offset: offset as u64,
            reason,
        };
        let header = format::parse_segment_header(&bytes).map_err(|reason| corrupt(0, reason))?;
        let (mut offset, mut crc, mut at) = (SEGMENT_HEADER_LEN, header.crc, header.first_seq);
        while at < seq {
            match format::read_frame(&bytes[offset..], crc, at) {
                Frame::Record { crc: next, len, .. } => {
                    crc = next;
                    offset += len;
                    at += 1;
                }
                _ => {
                    return Err(corrupt(
                        offset,
                        format!("record {at} changed since the log was opened"),
                    ))
                }
            }
        }
        Ok((offset as u64, crc, header.version))
    }

    /// Deletes the segments holding only records up to `seq` (never the one appends go
    /// to), then fsyncs the directory. When `seq` is past the last record, the log jumps:
    /// a new empty segment starting at `seq + 1` is made durable first, then every older
    /// segment is deleted, and the next append gets `seq + 1`. Records up to `seq` left in
    /// a kept segment stay readable by [`Wal::replay`]; the caller reads from `seq + 1`.
    /// The caller must keep `seq` durably *before* calling this and reopen with
    /// [`Wal::open_with_purged`]: a log whose first segment starts past the newest snapshot
    /// is otherwise refused as missing records.
    pub fn purge(&mut self, seq: u64) -> Result<(), Error> {
        self.check_failed()?;
        let dir = self.dir();
        if seq > self.last_seq {
            self.new_segment(seq + 1)?;
            self.last_seq = seq;
            self.durable_seq = seq;
        }
        let mut names = Vec::new();
        while self.segments.len() > 1 && self.segments[0].last_seq <= seq {
            let segment = self.segments.remove(0);
            self.storage.close(&segment.name);
            names.push(segment.name);
        }
        for name in &names {
            match self.storage.remove(name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.latch(io_error(&dir, name, "remove")(e))),
            }
        }
        if !names.is_empty() {
            if let Err(error) =
                self.storage
                    .sync_dir()
                    .map_err(io_error(&dir, "", "fsync directory"))
            {
                return Err(self.latch(error));
            }
        }
        Ok(())
    }

    /// Drops every record and continues at `seq + 1`, whether that is before or after the
    /// last seq: deletes every segment (then a directory fsync), then creates the empty
    /// segment `seq + 1` durably. For a log none of whose records is wanted (a Raft log
    /// that holds no entry and is to start at another index). As with [`Wal::purge`], the
    /// caller keeps `seq` durably and reopens with [`Wal::open_with_purged`]; a crash
    /// between the deletions and the new segment leaves no segment, which such an open
    /// takes as an empty log continuing after its purged seq.
    pub fn reset(&mut self, seq: u64) -> Result<(), Error> {
        self.check_failed()?;
        if self.segments.len() == 1 && self.segments[0].first_seq == seq + 1 && self.last_seq == seq
        {
            return Ok(());
        }
        let dir = self.dir();
        for segment in std::mem::take(&mut self.segments) {
            if let Err(error) =
                self.storage
                    .remove(&segment.name)
                    .map_err(io_error(&dir, &segment.name, "remove"))
            {
                return Err(self.latch(error));
            }
        }
        if let Err(error) = self
            .storage
            .sync_dir()
            .map_err(io_error(&dir, "", "fsync directory"))
        {
            return Err(self.latch(error));
        }
        if let Err(error) = self.new_segment(seq + 1) {
            // Without a segment there is nowhere to append: latch even on a full disk.
            return Err(self.latch(error));
        }
        self.last_seq = seq;
        self.durable_seq = seq;
        Ok(())
    }

    /// The first seq still in the log's segments (records before it were purged or are
    /// covered by a snapshot); `last_seq() + 1` when no segment holds a record.
    pub fn first_seq(&self) -> u64 {
        self.segments
            .first()
            .map_or(self.last_seq + 1, |s| s.first_seq)
    }

    /// Calls `f(seq, payload)` for every record with seq >= `from_seq`, in order.
    pub fn replay<E>(
        &mut self,
        from_seq: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, ReplayError<E>> {
        let dir = self.dir();
        let mut count = 0;
        for segment in self.segments.iter().filter(|s| s.last_seq >= from_seq) {
            let bytes =
                self.storage
                    .read(&segment.name)
                    .map_err(io_error(&dir, &segment.name, "read"))?;
            let header = format::parse_segment_header(&bytes).map_err(|reason| Error::Corrupt {
                path: dir.join(&segment.name),
                offset: 0,
                reason,
            })?;
            let (mut offset, mut crc, mut seq) = (SEGMENT_HEADER_LEN, header.crc, header.first_seq);
            while seq <= segment.last_seq {
                match format::read_frame(&bytes[offset..], crc, seq) {
                    Frame::Record {
                        payload,
                        crc: next,
                        len,
                        ..
                    } => {
                        if seq >= from_seq {
                            f(seq, payload).map_err(ReplayError::Visitor)?;
                            count += 1;
                        }
                        crc = next;
                        offset += len;
                        seq += 1;
                    }
                    _ => {
                        return Err(ReplayError::Wal(Error::Corrupt {
                            path: dir.join(&segment.name),
                            offset: offset as u64,
                            reason: format!("record {seq} changed since the log was opened"),
                        }))
                    }
                }
            }
        }
        Ok(count)
    }

    /// Durably writes a snapshot covering every record with seq <= `seq` (temporary
    /// file, fsync, rename, directory fsync: [`write_snapshot_file`]), keeps it and the one
    /// before it, and deletes older snapshots and the segments wholly covered by the older
    /// kept one (so a damaged newest snapshot can still fall back to the previous one plus
    /// the log).
    pub fn write_snapshot(&mut self, seq: u64, bytes: &[u8]) -> Result<(), Error> {
        self.check_failed()?;
        if seq > self.durable_seq {
            return Err(Error::Invalid(format!(
                "snapshot at seq {seq} beyond the durable seq {}",
                self.durable_seq
            )));
        }
        write_snapshot_file(&mut self.storage, seq, bytes)?;
        let obsolete = self.adopt_snapshot(seq)?;
        remove_files(&mut self.storage, &obsolete)
    }

    /// Takes in a snapshot at `seq` that another thread made durable in this log's
    /// directory with [`write_snapshot_file`], and applies the pruning rule of
    /// [`Wal::write_snapshot`] to the log's own lists without touching the disk: returns
    /// the files (older snapshots, damaged ones, segments wholly covered by the older of
    /// the two kept snapshots) that the caller deletes with [`remove_files`], on whatever
    /// thread it likes. The log closes its handles on them first, so their last close is
    /// not the log's, and it never reads or appends to them again.
    pub fn adopt_snapshot(&mut self, seq: u64) -> Result<Vec<String>, Error> {
        if seq > self.durable_seq {
            return Err(Error::Invalid(format!(
                "snapshot at seq {seq} beyond the durable seq {}",
                self.durable_seq
            )));
        }
        // The rename replaced any damaged snapshot of this seq.
        self.damaged_snapshots.retain(|&d| d != seq);
        if !self.snapshots.contains(&seq) {
            self.snapshots.push(seq);
            self.snapshots.sort_unstable();
        }
        Ok(self.prune_plan())
    }

    /// Drops from the log's lists the snapshots older than the newest two (and damaged
    /// ones) and the segments wholly covered by the older of those two; returns their names.
    fn prune_plan(&mut self) -> Vec<String> {
        if self.snapshots.len() < 2 {
            return Vec::new();
        }
        let keep_from = self.snapshots.len() - 2;
        let floor = self.snapshots[keep_from];
        let damaged = std::mem::take(&mut self.damaged_snapshots);
        let mut names: Vec<String> = self
            .snapshots
            .drain(..keep_from)
            .chain(damaged)
            .map(format::snapshot_name)
            .collect();
        while self.segments.len() > 1 && self.segments[0].last_seq <= floor {
            let segment = self.segments.remove(0);
            self.storage.close(&segment.name);
            names.push(segment.name);
        }
        names
    }

    /// The last appended record's seq (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The last seq known durable.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Why the log refuses writes, if it does.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The storage (tests use it to crash or inspect).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, to keep small files of the caller's own next to the log (any name that
    /// is not a segment `seg-*.wal`, a snapshot `snap-*.snap` or a temporary `*.tmp` that
    /// must survive an open: open deletes leftover `*.tmp` files).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage
    }
}

/// Durably writes the snapshot file of `seq` with payload `bytes` into the log directory
/// of `storage`: a temporary file, written and fsynced, renamed into place, and the
/// directory fsynced. This is the one place the snapshot file is made; a thread other than
/// the log's owner may call it with its own storage on the same directory (then tells the
/// owner with [`Wal::adopt_snapshot`]). On failure the temporary file is removed again.
pub fn write_snapshot_file<S: Storage>(
    storage: &mut S,
    seq: u64,
    bytes: &[u8],
) -> Result<(), Error> {
    write_snapshot_file_paced(storage, seq, bytes, |_| {})
}

/// [`write_snapshot_file`], calling `after_piece` with the time each piece of
/// [`SNAPSHOT_WRITE_PIECE`] took to write and make durable, before the next: a background
/// writer rests there, so that the device is not kept busy with the snapshot while the log's
/// fdatasyncs wait behind it.
pub fn write_snapshot_file_paced<S: Storage>(
    storage: &mut S,
    seq: u64,
    bytes: &[u8],
    mut after_piece: impl FnMut(std::time::Duration),
) -> Result<(), Error> {
    let dir = storage.dir().to_path_buf();
    let name = format::snapshot_name(seq);
    let tmp = format!("{name}.tmp");
    let header = format::snapshot_header(seq, bytes);
    let written = storage
        .create(&tmp)
        .map_err(io_error(&dir, &tmp, "create"))
        .and_then(|()| {
            storage
                .append(&tmp, &header)
                .map_err(io_error(&dir, &tmp, "write"))
        })
        .and_then(|()| {
            // In pieces, each made durable before the next is written: a device's cache
            // flush waits for every write queued before it, so one write of the whole
            // snapshot (tens of MiB) made each fdatasync of the log behind it wait for all
            // of it. Now the log's flush waits for one piece at most.
            for piece in bytes.chunks(SNAPSHOT_WRITE_PIECE) {
                let started = std::time::Instant::now();
                storage
                    .append(&tmp, piece)
                    .map_err(io_error(&dir, &tmp, "write"))?;
                storage
                    .sync(&tmp)
                    .map_err(io_error(&dir, &tmp, "fdatasync"))?;
                after_piece(started.elapsed());
            }
            if bytes.is_empty() {
                storage
                    .sync(&tmp)
                    .map_err(io_error(&dir, &tmp, "fdatasync"))?;
            }
            Ok(())
        });
    if let Err(error) = written {
        // A half-written temporary file would only hold space (on a full disk, the
        // space the log needs): remove it; the next open would remove it anyway.
        let _ = storage.remove(&tmp);
        return Err(error);
    }
    storage
        .rename(&tmp, &name)
        .map_err(io_error(&dir, &name, "rename"))?;
    storage
        .sync_dir()
        .map_err(io_error(&dir, "", "fsync directory"))
}

/// The seqs of the snapshot files among the file names `names`, ascending.
pub fn snapshot_seqs(names: &[String]) -> Vec<u64> {
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|n| format::parse_snapshot_name(n))
        .collect();
    seqs.sort_unstable();
    seqs
}

/// The name of the snapshot file of `seq` (as [`write_snapshot_file`] names it).
pub fn snapshot_file_name(seq: u64) -> String {
    format::snapshot_name(seq)
}

/// Reads the snapshot file of `seq` from the directory of `storage` (as
/// [`write_snapshot_file`] wrote it) and checks its frame: its payload, or
/// [`Error::Corrupt`] if the frame is damaged or names another seq ([`Error::Io`] if it
/// cannot be read).
pub fn read_snapshot_file<S: Storage>(storage: &S, seq: u64) -> Result<Vec<u8>, Error> {
    let name = format::snapshot_name(seq);
    let path = storage.dir().join(&name);
    let mut bytes = storage
        .read(&name)
        .map_err(io_error(storage.dir(), &name, "read"))?;
    match format::parse_snapshot(&bytes) {
        Ok((found, range)) if found == seq => {
            bytes.drain(..range.start);
            Ok(bytes)
        }
        Ok((found, _)) => Err(Error::Corrupt {
            path,
            offset: 0,
            reason: format!("the snapshot file of seq {seq} says seq {found}"),
        }),
        Err(reason) => Err(Error::Corrupt {
            path,
            offset: 0,
            reason,
        }),
    }
}

/// Deletes the files `names` of the log directory of `storage` (as returned by
/// [`Wal::adopt_snapshot`]), then fsyncs the directory once. A file already gone is no
/// error (a restart in between may have found the older snapshot and pruned it itself).
pub fn remove_files<S: Storage>(storage: &mut S, names: &[String]) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    let dir = storage.dir().to_path_buf();
    for name in names {
        match storage.remove(name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&dir, name, "remove")(e)),
        }
    }
    storage
        .sync_dir()
        .map_err(io_error(&dir, "", "fsync directory"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{CrashStorage, FaultKind, FaultStorage, TearMode};

    const OPTIONS: Options = Options {
        segment_bytes_max: 64 * 1024,
        preallocate_bytes: 0,
    };

    #[test]
    fn a_write_without_space_does_not_latch_and_appends_resume_after_a_probe() {
        let storage = CrashStorage::new();
        // Operations: dir sync (open), create, header, sync, dir sync; then the 6th, the
        // first append, finds no space (once).
        let faulty = FaultStorage::new(storage.clone(), 6, FaultKind::NoSpace, false);
        let (mut wal, _) = Wal::open_with(faulty, OPTIONS).unwrap();
        let error = wal.append(&[b"one"]).unwrap_err();
        assert!(error.is_no_space(), "{error}");
        assert!(wal.failed().is_none(), "a full disk latched the log");
        assert_eq!((wal.last_seq(), wal.durable_seq()), (0, 0));
        wal.probe_space(4096).unwrap();
        assert_eq!(wal.storage().injected(), 1);
        assert_eq!(wal.append(&[b"two"]).unwrap(), 1..2);
        wal.sync().unwrap();
        drop(wal);
        storage.crash(TearMode::DropUnsynced);
        let (mut wal, _) = Wal::open_with(storage, OPTIONS).unwrap();
        let mut seen = Vec::new();
        wal.replay(1, |seq, bytes| {
            seen.push((seq, bytes.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![(1, b"two".to_vec())],
            "the probe's zeros are padding"
        );
    }

    #[test]
    fn a_probe_without_space_stays_retryable_and_a_failed_probe_sync_latches() {
        // Operations 1-5 open, 6 append, 7 sync, 8 the probe's zeros, 9 its fdatasync.
        let faulty = FaultStorage::new(CrashStorage::new(), 8, FaultKind::NoSpace, false);
        let (mut wal, _) = Wal::open_with(faulty, OPTIONS).unwrap();
        wal.append(&[b"one"]).unwrap();
        wal.sync().unwrap();
        let error = wal.probe_space(4096).unwrap_err();
        assert!(error.is_no_space() && wal.failed().is_none(), "{error}");
        assert_eq!(wal.append(&[b"two"]).unwrap(), 2..3);
        wal.sync().unwrap();

        let faulty = FaultStorage::new(CrashStorage::new(), 9, FaultKind::Eio, false);
        let (mut wal, _) = Wal::open_with(faulty, OPTIONS).unwrap();
        wal.append(&[b"one"]).unwrap();
        wal.sync().unwrap();
        assert!(wal.probe_space(4096).is_err());
        assert!(wal.failed().is_some(), "a failed fdatasync must latch");
        assert!(matches!(
            wal.append(&[b"two"]),
            Err(Error::FailedEarlier(_))
        ));
    }

    #[test]
    fn a_paced_snapshot_rests_after_every_piece_and_reads_back_whole() {
        let mut storage = CrashStorage::new();
        let payload: Vec<u8> = (0..SNAPSHOT_WRITE_PIECE * 2 + 10)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut rests = 0;
        write_snapshot_file_paced(&mut storage, 7, &payload, |_| rests += 1).unwrap();
        assert_eq!(rests, 3, "one rest per piece");
        storage.crash(TearMode::DropUnsynced);
        assert_eq!(read_snapshot_file(&storage, 7).unwrap(), payload);
    }
}
