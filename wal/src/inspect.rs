//! Read-only looks at a log directory: `verify` (check everything) and `inspect`
//! (visit every snapshot and record). Neither changes a byte on disk.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::format;
use crate::scan::{scan_segment, TornTail};

/// What a look at a log directory found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files.
    pub segments: usize,
    /// Valid records.
    pub records: u64,
    /// Seq of the first record present, if any.
    pub first_seq: Option<u64>,
    /// Seq of the last valid record (0 if none).
    pub last_seq: u64,
    /// Seqs of the valid snapshots.
    pub snapshots: Vec<u64>,
    /// Damaged snapshot files.
    pub damaged_snapshots: Vec<PathBuf>,
    /// A torn tail that `open` would cut.
    pub torn_tail: Option<TornTail>,
}

/// One thing in the log, in order: snapshots first, then records.
#[derive(Debug)]
pub enum Item<'a> {
    /// A valid snapshot.
    Snapshot {
        /// Its file.
        path: &'a Path,
        /// It covers records up to this seq.
        seq: u64,
        /// Its payload.
        bytes: &'a [u8],
    },
    /// A valid record.
    Record {
        /// Its segment file.
        path: &'a Path,
        /// Byte offset of its frame in that file.
        offset: u64,
        /// Its seq.
        seq: u64,
        /// Its payload.
        bytes: &'a [u8],
    },
}

/// Checks every record and snapshot in `dir`; `Err` names the file and byte offset of
/// corruption. A torn tail is reported, not an error.
pub fn verify(dir: &Path) -> Result<VerifyReport, Error> {
    inspect(dir, |_| {})
}

/// Visits every valid snapshot and record in `dir`, read-only.
pub fn inspect(dir: &Path, mut f: impl FnMut(Item<'_>)) -> Result<VerifyReport, Error> {
    let io = |op: &'static str, path: PathBuf| move |source| Error::Io { path, op, source };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list", dir.to_path_buf()))? {
        let entry = entry.map_err(io("list", dir.to_path_buf()))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    let mut report = VerifyReport::default();
    for name in names
        .iter()
        .filter(|n| format::parse_snapshot_name(n).is_some())
    {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(io("read", path.clone()))?;
        match format::parse_snapshot(&bytes) {
            Ok((seq, range)) => {
                f(Item::Snapshot {
                    path: &path,
                    seq,
                    bytes: &bytes[range],
                });
                report.snapshots.push(seq);
            }
            Err(_) => report.damaged_snapshots.push(path),
        }
    }
    let mut segments: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|n| format::parse_segment_name(n).map(|s| (s, n)))
        .collect();
    segments.sort_unstable();
    let mut expected = None;
    for (i, (first_seq, name)) in segments.iter().enumerate() {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(io("read", path.clone()))?;
        let newest = i + 1 == segments.len();
        let scan = scan_segment(
            &path,
            &bytes,
            newest,
            expected.or(Some(*first_seq)),
            |offset, seq, payload| {
                f(Item::Record {
                    path: &path,
                    offset,
                    seq,
                    bytes: payload,
                });
                report.records += 1;
                report.first_seq.get_or_insert(seq);
                report.last_seq = seq;
            },
        )?;
        report.segments += 1;
        report.torn_tail = scan.torn.or(report.torn_tail.take());
        expected = Some(scan.last_seq + 1);
    }
    Ok(report)
}

/// What a log directory holds, judged from file names and a few bytes (cheap enough for
/// every start-up; it checks nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The directory does not exist.
    Missing,
    /// The directory exists and holds no segment or snapshot.
    Empty,
    /// Segments or snapshots, but no record was ever written (a log created and not yet
    /// used: one segment from seq 1 whose first frame is still zeros).
    Unused,
    /// At least one record or snapshot was written.
    History,
}

/// Looks at `dir` without reading more than one frame header.
pub fn presence(dir: &Path) -> std::io::Result<Presence> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Presence::Missing),
        Err(e) => return Err(e),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if format::parse_snapshot_name(&name).is_some() {
            return Ok(Presence::History);
        }
        if let Some(first_seq) = format::parse_segment_name(&name) {
            segments.push(first_seq);
        }
    }
    match segments.as_slice() {
        [] => Ok(Presence::Empty),
        [1] => {
            use std::io::Read;
            let mut head = [0u8; format::SEGMENT_HEADER_LEN + 4];
            let mut file = std::fs::File::open(dir.join(format::segment_name(1)))?;
            let mut got = 0;
            while got < head.len() {
                match file.read(&mut head[got..])? {
                    0 => break,
                    n => got += n,
                }
            }
            // The first frame starts with its length, never zero for a record.
            let first_frame = &head[format::SEGMENT_HEADER_LEN.min(got)..got];
            if first_frame.iter().all(|&b| b == 0) {
                Ok(Presence::Unused)
            } else {
                Ok(Presence::History)
            }
        }
        _ => Ok(Presence::History),
    }
}
