//! Zero padding on real files: the log reserves zeros ahead of its records (so that an
//! fdatasync writes data, not the inode too) and appends over them. A crash leaves a
//! segment whose records end in zeros, possibly with a torn batch in between; recovery
//! must find exactly the whole records, and damage before the padding is still corruption.

use std::path::{Path, PathBuf};

use wal::{Error, Item, Options, Wal};

const OPTIONS: Options = Options {
    segment_bytes_max: 4 * 1024,
    preallocate_bytes: 1024,
};

fn record(seq: u64) -> Vec<u8> {
    format!("record {seq} {}", "r".repeat((seq % 37) as usize)).into_bytes()
}

/// Writes `batches` batches of 1 to 5 records, each synced; returns the last seq.
fn write(dir: &Path, batches: u64) -> u64 {
    let (mut wal, _) = Wal::open(dir, OPTIONS).unwrap();
    let mut seq = wal.last_seq();
    for b in 0..batches {
        let n = 1 + b % 5;
        let records: Vec<Vec<u8>> = (seq + 1..=seq + n).map(record).collect();
        wal.append(&records).unwrap();
        wal.sync().unwrap();
        seq += n;
    }
    seq
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    names.sort();
    names
}

/// (seq, frame offset, frame end) of every record of the newest segment.
fn frames_of_newest(dir: &Path) -> Vec<(u64, u64, u64)> {
    let newest = segments(dir).pop().unwrap();
    let mut frames = Vec::new();
    wal::inspect(dir, |item| {
        if let Item::Record {
            path,
            offset,
            seq,
            bytes,
        } = item
        {
            if path == newest {
                let end = offset + wal::RECORD_HEADER_LEN as u64 + bytes.len() as u64;
                frames.push((seq, offset, end));
            }
        }
    })
    .unwrap();
    frames
}

fn replay_all(dir: &Path) -> (Vec<u64>, wal::Recovery) {
    let (mut wal, recovery) = Wal::open(dir, OPTIONS).unwrap();
    let mut seqs = Vec::new();
    wal.replay(1, |seq, bytes| {
        assert_eq!(bytes, record(seq), "record {seq}");
        seqs.push(seq);
        Ok::<(), ()>(())
    })
    .unwrap();
    (seqs, recovery)
}

#[test]
fn appends_overwrite_the_reserved_zeros_and_reopen_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let last = write(dir.path(), 100);
    // Every segment on disk is reserved space: its size is a whole number of steps, longer
    // than its records, and ends in zeros (older segments keep theirs).
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert_eq!(bytes.len() % 1024, 0, "{}", file.display());
        assert_eq!(bytes.last(), Some(&0), "{}", file.display());
    }
    for _ in 0..2 {
        let (seqs, recovery) = replay_all(dir.path());
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
        assert!(recovery.torn_tail.is_none(), "padding is not a torn tail");
    }
    // The log continues after its last record, not after the zeros.
    let more = write(dir.path(), 7);
    let (seqs, recovery) = replay_all(dir.path());
    assert_eq!(seqs, (1..=more).collect::<Vec<_>>());
    assert!(recovery.torn_tail.is_none());
    assert!(wal::verify(dir.path()).unwrap().torn_tail.is_none());
}

#[test]
fn a_batch_torn_into_the_reserved_zeros_is_cut_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 6);
    let frames = frames_of_newest(dir.path());
    // The last batch: the 6th has 1 + 5 % 5 = 1 record; take the last three records so
    // the cuts cross several frames.
    let newest = segments(dir.path()).pop().unwrap();
    let original = std::fs::read(&newest).unwrap();
    let first_cut = frames[frames.len() - 3].1;
    let last_end = frames.last().unwrap().2;
    let mut cuts = 0;
    for cut in first_cut..=last_end {
        // What a crash leaves when only `cut` bytes of the unsynced writes reached the
        // disk: the rest of the reserved space still holds zeros.
        let mut bytes = original.clone();
        bytes[cut as usize..].fill(0);
        std::fs::write(&newest, &bytes).unwrap();
        let whole: Vec<u64> = frames
            .iter()
            .filter(|(_, _, end)| *end <= cut)
            .map(|(seq, _, _)| *seq)
            .collect();
        let (seqs, recovery) = replay_all(dir.path());
        assert_eq!(seqs.last(), whole.last(), "cut at {cut}");
        let at_boundary = frames.iter().any(|(_, start, _)| *start == cut) || cut == last_end;
        assert_eq!(
            recovery.torn_tail.is_none(),
            at_boundary,
            "cut at {cut}: {:?}",
            recovery.torn_tail
        );
        cuts += 1;
        std::fs::write(&newest, &original).unwrap();
        // The open above cut the zeros (and any torn bytes): restore the whole file.
    }
    println!("{cuts} cuts into reserved space, each recovered to the whole records");
    assert!(cuts > 0);
}

#[test]
fn damage_before_the_padding_is_corruption_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 6);
    let frames = frames_of_newest(dir.path());
    let newest = segments(dir.path()).pop().unwrap();
    let (_, offset, _) = frames[frames.len() - 3];
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[offset as usize + wal::RECORD_HEADER_LEN] ^= 0x01;
    std::fs::write(&newest, &bytes).unwrap();
    match Wal::open(dir.path(), OPTIONS) {
        Err(Error::Corrupt {
            path, offset: at, ..
        }) => {
            assert_eq!(path, newest);
            assert_eq!(at, offset);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Nothing was changed on disk by the refused open.
    assert_eq!(std::fs::read(&newest).unwrap(), bytes);
}

#[test]
fn padding_of_an_older_segment_followed_by_garbage_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 40);
    let oldest = segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&oldest).unwrap();
    let last = bytes.len() - 1;
    assert_eq!(bytes[last], 0);
    bytes[last] = 0x77;
    std::fs::write(&oldest, &bytes).unwrap();
    match Wal::open(dir.path(), OPTIONS) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, oldest),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn after_a_torn_new_segment_is_removed_appends_follow_the_records_not_the_zeros() {
    // A crash right after a roll created the next segment but before its header reached
    // the disk leaves an empty newest file. Recovery removes it, and the segment before it
    // (with its reserved zeros) takes the appends again: they must land right after its
    // last record, or a later recovery would cut them off as a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let last = write(dir.path(), 8);
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "one segment, ending in zeros"
    );
    let empty = dir.path().join(format!("seg-{:020}.wal", last + 1));
    std::fs::write(&empty, b"").unwrap();
    let (mut wal, recovery) = Wal::open(dir.path(), OPTIONS).unwrap();
    assert!(
        recovery.torn_tail.is_some(),
        "the empty segment is a torn tail"
    );
    assert!(!empty.exists());
    let after: Vec<Vec<u8>> = (last + 1..=last + 3).map(record).collect();
    wal.append(&after).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (seqs, recovery) = replay_all(dir.path());
    assert_eq!(
        seqs,
        (1..=last + 3).collect::<Vec<_>>(),
        "acknowledged records lost"
    );
    assert!(recovery.torn_tail.is_none(), "{:?}", recovery.torn_tail);
}
