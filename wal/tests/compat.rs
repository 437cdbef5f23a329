//! Files written by every format version, checked in under `tests/data/v<N>/`: every
//! later version must still read them. Write the files of a new format version into a new
//! folder (and add it to `VERSIONS`): `cargo test -p boxoffice-wal --test compat --
//! --ignored write_current_version_files`.

use std::path::{Path, PathBuf};

use wal::{Item, Options, Wal, FORMAT_VERSION};

/// Every format version whose files are checked in.
const VERSIONS: [u32; 2] = [1, 2];

fn version_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/v{version}"))
}

fn expected_record(seq: u64) -> Vec<u8> {
    format!("record {seq}").into_bytes()
}

#[test]
#[ignore = "writes the checked-in files; run by hand for a new format version"]
fn write_current_version_files() {
    let dir = version_dir(FORMAT_VERSION);
    let _ = std::fs::remove_dir_all(&dir);
    // Small segments, and zeros reserved 64 bytes at a time, so that the files hold
    // several segments and (from version 2) padding after their records.
    let (mut wal, _) = Wal::open(
        &dir,
        Options {
            segment_bytes_max: 120,
            preallocate_bytes: 64,
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
fn the_current_version_has_checked_in_files() {
    assert!(
        VERSIONS.contains(&FORMAT_VERSION) && version_dir(FORMAT_VERSION).is_dir(),
        "format version {FORMAT_VERSION} has no files under tests/data: write them"
    );
}

#[test]
fn files_of_every_version_still_read() {
    for version in VERSIONS {
        check_version(version);
    }
}

#[test]
fn version_2_files_end_in_padding() {
    // The padding is what version 2 added: its files must show it, or the reading test
    // above proves nothing about it.
    let padded = std::fs::read_dir(version_dir(2))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .filter(|bytes| bytes.starts_with(b"BOXWAL") && bytes.ends_with(&[0; 8]))
        .count();
    assert!(padded >= 2, "{padded} padded segments");
}

fn check_version(version: u32) {
    let dir = version_dir(version);
    let mut snapshots = Vec::new();
    let mut records = Vec::new();
    let report = wal::inspect(&dir, |item| match item {
        Item::Snapshot { seq, bytes, .. } => snapshots.push((seq, bytes.to_vec())),
        Item::Record { seq, bytes, .. } => records.push((seq, bytes.to_vec())),
    })
    .unwrap_or_else(|e| panic!("version {version} files do not read: {e}"));
    assert_eq!(snapshots, vec![(3, b"state at 3".to_vec())], "v{version}");
    assert_eq!(
        records,
        (1..8).map(|s| (s, expected_record(s))).collect::<Vec<_>>(),
        "v{version}"
    );
    assert!(
        report.segments >= 2,
        "v{version}: the files span several segments"
    );
    assert!(report.torn_tail.is_none(), "v{version}");

    // And a log in this format opens and continues, in segments of this build's version.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    let (mut wal, recovery) = Wal::open(copy.path(), Options::default()).unwrap();
    assert_eq!(recovery.snapshot.map(|s| s.seq), Some(3), "v{version}");
    assert!(recovery.torn_tail.is_none(), "v{version}");
    assert_eq!(wal.last_seq(), 7, "v{version}");
    assert_eq!(wal.append(&[b"record 8"]).unwrap(), 8..9, "v{version}");
    wal.sync().unwrap();
    drop(wal);
    let (mut wal, recovery) = Wal::open(copy.path(), Options::default()).unwrap();
    assert!(recovery.torn_tail.is_none(), "v{version}");
    let mut seen = Vec::new();
    wal.replay(4, |seq, bytes| {
        seen.push((seq, bytes.to_vec()));
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(
        seen,
        (4..9).map(|s| (s, expected_record(s))).collect::<Vec<_>>(),
        "v{version}"
    );
}
