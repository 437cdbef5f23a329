//! Files written by format version 1, checked in under `tests/data/v1/`: every later
//! version must still read them. Regenerate only for a new format version, into a new
//! folder: `cargo test -p boxoffice-wal --test compat -- --ignored write_v1_files`.

use std::path::{Path, PathBuf};

use wal::{Item, Options, Wal};

fn v1_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1")
}

fn expected_record(seq: u64) -> Vec<u8> {
    format!("record {seq}").into_bytes()
}

#[test]
#[ignore = "writes the checked-in files; run by hand for a new format version"]
fn write_v1_files() {
    let dir = v1_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let (mut wal, _) = Wal::open(
        &dir,
        Options {
            segment_bytes_max: 120,
        },
    )
    .unwrap();
    for batch in [1u64..4, 4..6, 6..8] {
        let records: Vec<Vec<u8>> = batch.clone().map(expected_record).collect();
        wal.append(&records).unwrap();
        wal.sync().unwrap();
        if batch.start == 1 {
            wal.write_snapshot(3, b"state at 3").unwrap();
        }
    }
}

#[test]
fn version_1_files_still_read() {
    let mut snapshots = Vec::new();
    let mut records = Vec::new();
    let report = wal::inspect(&v1_dir(), |item| match item {
        Item::Snapshot { seq, bytes, .. } => snapshots.push((seq, bytes.to_vec())),
        Item::Record { seq, bytes, .. } => records.push((seq, bytes.to_vec())),
    })
    .expect("version 1 files read");
    assert_eq!(snapshots, vec![(3, b"state at 3".to_vec())]);
    assert_eq!(
        records,
        (1..8).map(|s| (s, expected_record(s))).collect::<Vec<_>>()
    );
    assert!(report.segments >= 2, "the files span several segments");
    assert!(report.torn_tail.is_none());

    // And a log in this format opens and continues.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(v1_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    let (mut wal, recovery) = Wal::open(copy.path(), Options::default()).unwrap();
    assert_eq!(recovery.snapshot.map(|s| s.seq), Some(3));
    assert_eq!(wal.last_seq(), 7);
    assert_eq!(wal.append(&[b"record 8"]).unwrap(), 8..9);
    wal.sync().unwrap();
}
