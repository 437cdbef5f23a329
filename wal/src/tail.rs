//! Reading back the durable records of a log that another thread goes on writing: a reader
//! that fell behind the writer (a shard's follower) catches up from the segment files
//! instead of from a copy of the writer's state.
//!
//! The reader is told how far the log is durable (`through`, which the writer published
//! after its fdatasync), and reads only up to there: those frames are whole on disk and no
//! longer change. Bytes past `through` may be a write in progress, so the newest segment is
//! read as recovery reads it (a torn end allowed), and damage found after the last record
//! wanted is not the reader's concern.

use std::path::Path;

use crate::error::Error;
use crate::format;
use crate::scan::scan_segment;

/// Calls `visit(seq, payload)` for every record with `after < seq <= through`, in order,
/// read from the segment files in `dir` (read-only). Returns the last seq visited (`after`
/// when none was): less than `through` when the records wanted are no longer (or not) in
/// the files, for example purged after a snapshot the reader has not seen.
///
/// # Errors
/// A directory or file that cannot be read, or damage before `through`.
pub fn read_durable(
    dir: &Path,
    after: u64,
    through: u64,
    mut visit: impl FnMut(u64, &[u8]),
) -> Result<u64, Error> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, op, source }
    };
    let mut firsts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        if let Some(first) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_segment_name)
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    // The segment that holds `after + 1` is the last one starting at or before it.
    let start = firsts.partition_point(|&first| first <= after + 1);
    let Some(from) = start.checked_sub(1) else {
        return Ok(after);
    };
    let mut last = after;
    for &first in firsts[from..].iter().take_while(|&&first| first <= through) {
        if first > last + 1 {
            // A segment is missing: nothing after the gap can be read in order.
            break;
        }
        let path = dir.join(format::segment_name(first));
        let bytes = std::fs::read(&path).map_err(io("read", &path))?;
        let scanned = scan_segment(&path, &bytes, true, Some(first), |_, seq, payload| {
            if seq == last + 1 && seq <= through {
                visit(seq, payload);
                last = seq;
            }
        });
        if last >= through {
            break;
        }
        scanned?;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Options, Wal};

    fn records(wal: &mut Wal, from: u64, to: u64) {
        let batch: Vec<Vec<u8>> = (from..=to).map(|s| s.to_le_bytes().to_vec()).collect();
        wal.append(&batch).unwrap();
        wal.sync().unwrap();
    }

    fn read(dir: &Path, after: u64, through: u64) -> (u64, Vec<u64>) {
        let mut seen = Vec::new();
        let last = read_durable(dir, after, through, |seq, payload| {
            assert_eq!(payload, seq.to_le_bytes());
            seen.push(seq);
        })
        .unwrap();
        (last, seen)
    }

    #[test]
    fn reads_exactly_the_range_across_segments_while_the_log_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            segment_bytes_max: 4096,
            preallocate_bytes: 1024,
        };
        let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
        for batch in 0..40 {
            records(&mut wal, batch * 25 + 1, batch * 25 + 25);
        }
        let segments = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(
            segments > 3,
            "the test wants several segments, got {segments}"
        );
        assert_eq!(read(dir.path(), 0, 1000), (1000, (1..=1000).collect()));
        assert_eq!(read(dir.path(), 333, 777), (777, (334..=777).collect()));
        assert_eq!(read(dir.path(), 999, 1000), (1000, vec![1000]));
        // Nothing is durable past the log's end: the reader stops at what is there.
        assert_eq!(read(dir.path(), 990, 2000), (1000, (991..=1000).collect()));
        // Records purged after a snapshot cannot be read: the reader says how far it got.
        wal.purge(600).unwrap();
        let (last, seen) = read(dir.path(), 10, 700);
        assert_eq!(
            last, 10,
            "read {seen:?} from a log that no longer starts at 11"
        );
        assert!(seen.is_empty());
        assert_eq!(read(dir.path(), 700, 800), (800, (701..=800).collect()));
        // A segment missing in the middle: the reader stops before the gap.
        let mut firsts: Vec<u64> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| format::parse_segment_name(e.unwrap().file_name().to_str()?))
            .collect();
        firsts.sort_unstable();
        let (before, gone) = (firsts[firsts.len() - 3], firsts[firsts.len() - 2]);
        std::fs::remove_file(dir.path().join(format::segment_name(gone))).unwrap();
        let (last, seen) = read(dir.path(), before, 1000);
        assert_eq!(
            last,
            gone - 1,
            "read {} records past a missing segment",
            seen.len()
        );
        assert_eq!(seen, (before + 1..gone).collect::<Vec<_>>());
    }
}
