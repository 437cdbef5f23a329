//! The operations a Raft log needs on top of the single-node log: `truncate_after` (cut
//! the newest records, durably), `purge` (delete whole segments before a seq, or jump past
//! the end) and `open_with_purged` (a log that starts after seq 1 on purpose). Crashes at
//! every storage operation of a run using them.

use std::collections::BTreeMap;

use wal::{CrashStorage, Error, FaultKind, FaultStorage, Options, Storage, TearMode, Wal};

const OPTIONS: Options = Options {
    segment_bytes_max: 300,
    preallocate_bytes: 128,
};

fn payload(seq: u64, generation: u64) -> Vec<u8> {
    format!(
        "record {seq} generation {generation} {}",
        "y".repeat((seq * 7 % 19) as usize)
    )
    .into_bytes()
}

fn records<S: Storage>(wal: &mut Wal<S>, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    wal.replay(from, |seq, bytes| {
        out.push((seq, bytes.to_vec()));
        Ok::<(), ()>(())
    })
    .unwrap();
    out
}

fn segments<S: Storage>(wal: &Wal<S>) -> Vec<String> {
    let mut names = wal.storage().list().unwrap();
    names.retain(|n| n.starts_with("seg-"));
    names
}

fn append_range<S: Storage>(
    wal: &mut Wal<S>,
    seqs: std::ops::RangeInclusive<u64>,
    generation: u64,
) {
    for seq in seqs {
        assert_eq!(
            wal.append(&[payload(seq, generation)]).unwrap(),
            seq..seq + 1
        );
    }
    wal.sync().unwrap();
}

#[test]
fn truncate_after_removes_later_records_and_segments_and_the_next_append_follows() {
    let disk = CrashStorage::new();
    let (mut wal, _) = Wal::open_with(disk.clone(), OPTIONS).unwrap();
    append_range(&mut wal, 1..=30, 0);
    let before = segments(&wal).len();
    assert!(before >= 4, "the run rolled only {before} segments");
    wal.truncate_after(12).unwrap();
    assert_eq!(wal.last_seq(), 12);
    assert!(segments(&wal).len() < before, "later segments stay");
    assert_eq!(records(&mut wal, 1).len(), 12);
    // Truncating at or past the end changes nothing.
    wal.truncate_after(12).unwrap();
    wal.truncate_after(40).unwrap();
    assert_eq!(wal.last_seq(), 12);
    append_range(&mut wal, 13..=14, 1);
    drop(wal);
    disk.crash(TearMode::DropUnsynced);
    let (mut wal, recovery) = Wal::open_with(disk.clone(), OPTIONS).unwrap();
    assert_eq!(recovery.last_seq, 14);
    let expected: Vec<(u64, Vec<u8>)> = (1..=14)
        .map(|s| (s, payload(s, if s > 12 { 1 } else { 0 })))
        .collect();
    assert_eq!(records(&mut wal, 1), expected);
    // Everything goes; the next record is 1 again.
    wal.truncate_after(0).unwrap();
    assert_eq!(wal.append(&[b"again"]).unwrap(), 1..2);
    wal.sync().unwrap();
    drop(wal);
    let (mut wal, _) = Wal::open_with(disk, OPTIONS).unwrap();
    assert_eq!(records(&mut wal, 1), vec![(1, b"again".to_vec())]);
}

#[test]
fn truncating_unsynced_records_keeps_the_earlier_ones_for_the_next_sync() {
    let disk = CrashStorage::new();
    let (mut wal, _) = Wal::open_with(disk.clone(), OPTIONS).unwrap();
    append_range(&mut wal, 1..=2, 0);
    for seq in 3..=6 {
        wal.append(&[payload(seq, 0)]).unwrap();
    }
    wal.truncate_after(4).unwrap();
    wal.sync().unwrap();
    drop(wal);
    disk.crash(TearMode::DropUnsynced);
    let (mut wal, _) = Wal::open_with(disk, OPTIONS).unwrap();
    assert_eq!(
        records(&mut wal, 1),
        (1..=4).map(|s| (s, payload(s, 0))).collect::<Vec<_>>()
    );
}

#[test]
fn purge_deletes_whole_segments_and_a_purge_past_the_end_moves_the_start() {
    let disk = CrashStorage::new();
    let (mut wal, _) = Wal::open_with(disk.clone(), OPTIONS).unwrap();
    append_range(&mut wal, 1..=30, 0);
    let before = segments(&wal).len();
    wal.purge(15).unwrap();
    assert!(segments(&wal).len() < before, "no segment was deleted");
    assert!(
        wal.first_seq() > 1 && wal.first_seq() <= 16,
        "first seq {}",
        wal.first_seq()
    );
    assert_eq!(
        records(&mut wal, 16),
        (16..=30).map(|s| (s, payload(s, 0))).collect::<Vec<_>>()
    );
    drop(wal);
    // Without the purged seq, the missing records are refused as damage.
    let error = Wal::open_with(disk.clone(), OPTIONS).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("missing"), "{error}");
    let (mut wal, recovery) = Wal::open_with_purged(disk.clone(), OPTIONS, 15).unwrap();
    assert_eq!(recovery.last_seq, 30);
    assert_eq!(records(&mut wal, 16).len(), 15);
    // Past the end: the log jumps, and goes on from there.
    wal.purge(100).unwrap();
    assert_eq!((wal.last_seq(), wal.first_seq()), (100, 101));
    assert_eq!(segments(&wal).len(), 1);
    assert_eq!(wal.append(&[b"101"]).unwrap(), 101..102);
    wal.sync().unwrap();
    drop(wal);
    disk.crash(TearMode::DropUnsynced);
    let (mut wal, recovery) = Wal::open_with_purged(disk.clone(), OPTIONS, 100).unwrap();
    assert_eq!(recovery.last_seq, 101);
    assert_eq!(records(&mut wal, 101), vec![(101, b"101".to_vec())]);
    // Truncating everything after the jump keeps the start.
    wal.truncate_after(100).unwrap();
    assert_eq!(wal.append(&[b"again"]).unwrap(), 101..102);
}

#[test]
fn open_with_purged_drops_segments_a_cut_short_purge_left() {
    let disk = CrashStorage::new();
    let (mut wal, _) = Wal::open_with(disk.clone(), OPTIONS).unwrap();
    append_range(&mut wal, 1..=10, 0);
    drop(wal);
    // The caller recorded "purged up to 50" and crashed before the purge ran: every record
    // left is purged, and the log continues at 51.
    let (mut wal, recovery) = Wal::open_with_purged(disk.clone(), OPTIONS, 50).unwrap();
    assert_eq!(recovery.last_seq, 50);
    assert_eq!(wal.append(&[b"51"]).unwrap(), 51..52);
    wal.sync().unwrap();
    assert_eq!(
        segments(&wal),
        vec!["seg-00000000000000000051.wal".to_string()]
    );
    drop(wal);
    let (mut wal, _) = Wal::open_with_purged(disk, OPTIONS, 50).unwrap();
    assert_eq!(records(&mut wal, 1), vec![(51, b"51".to_vec())]);
}

/// What a run was told: the records durable (synced, and not truncated since) and the
/// purge floor the caller recorded before purging.
#[derive(Default)]
struct Told {
    /// seq -> payload of every record appended and not truncated by a returned call.
    log: BTreeMap<u64, Vec<u8>>,
    durable: u64,
    floor: u64,
}

fn run<S: Storage>(storage: S, told: &mut Told) -> Result<(), Error> {
    let (mut wal, _) = Wal::open_with_purged(storage, OPTIONS, 0)?;
    let append =
        |wal: &mut Wal<S>, told: &mut Told, seqs: std::ops::RangeInclusive<u64>, generation| {
            for seq in seqs {
                wal.append(&[payload(seq, generation)])?;
                told.log.insert(seq, payload(seq, generation));
            }
            wal.sync()?;
            told.durable = wal.last_seq();
            Ok::<(), Error>(())
        };
    append(&mut wal, told, 1..=20, 0)?;
    // Records after 7 may stay if the truncation is cut short, and must go if it returns.
    told.durable = 7;
    wal.truncate_after(7)?;
    told.log.retain(|&s, _| s <= 7);
    append(&mut wal, told, 8..=16, 1)?;
    told.floor = 10;
    wal.purge(10)?;
    // Records after 12 may stay if the truncation is cut short, and must go if it returns.
    told.durable = 12;
    wal.truncate_after(12)?;
    told.log.retain(|&s, _| s <= 12);
    append(&mut wal, told, 13..=18, 2)?;
    told.floor = 40;
    wal.purge(40)?;
    append(&mut wal, told, 41..=44, 3)?;
    Ok(())
}

#[test]
fn a_crash_at_any_operation_of_truncations_and_purges_recovers_what_was_told() {
    let mut k = 0;
    let mut injected = 0;
    loop {
        k += 1;
        for tear in [
            TearMode::DropUnsynced,
            TearMode::KeepPrefix(k * 13),
            TearMode::GarbleTail(k),
        ] {
            let disk = CrashStorage::new();
            let faulty = FaultStorage::new(disk.clone(), k, FaultKind::Eio, true);
            let mut told = Told::default();
            let outcome = run(faulty, &mut told);
            if outcome.is_ok() {
                assert!(k > 1 && injected > 0, "no fault was injected");
                return;
            }
            injected += 1;
            disk.crash(tear);
            let context = format!("crash at operation {k}, {tear:?}");
            let (mut wal, _) = Wal::open_with_purged(disk, OPTIONS, told.floor)
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            let got = records(&mut wal, told.floor + 1);
            for (seq, bytes) in &got {
                assert_eq!(told.log.get(seq), Some(bytes), "{context}: seq {seq}");
            }
            let got: BTreeMap<u64, Vec<u8>> = got.into_iter().collect();
            for (seq, bytes) in told.log.range(told.floor + 1..) {
                if *seq <= told.durable {
                    assert_eq!(
                        got.get(seq),
                        Some(bytes),
                        "{context}: durable seq {seq} lost"
                    );
                }
            }
        }
    }
}

#[test]
fn a_truncation_into_a_segment_of_an_older_format_appends_to_a_new_one() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1");
    let disk = CrashStorage::new();
    for entry in std::fs::read_dir(data).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        disk.overwrite(&name, std::fs::read(entry.path()).unwrap());
    }
    let (mut wal, recovery) = Wal::open_with(disk.clone(), OPTIONS).unwrap();
    assert_eq!(recovery.last_seq, 7);
    // Record 5 sits in the version 1 segment starting at 4.
    wal.truncate_after(4).unwrap();
    assert_eq!(wal.append(&[b"five"]).unwrap(), 5..6);
    wal.sync().unwrap();
    let names = segments(&wal);
    assert!(
        names.contains(&"seg-00000000000000000005.wal".to_string()),
        "{names:?}"
    );
    assert_eq!(
        disk.contents("seg-00000000000000000005.wal").unwrap()[8],
        2,
        "version 2"
    );
    drop(wal);
    disk.crash(TearMode::DropUnsynced);
    let (mut wal, _) = Wal::open_with(disk, OPTIONS).unwrap();
    assert_eq!(
        records(&mut wal, 4),
        vec![(4, b"record 4".to_vec()), (5, b"five".to_vec())]
    );
}

#[test]
fn reset_drops_every_record_and_continues_at_the_given_seq_either_way() {
    let disk = CrashStorage::new();
    let (mut wal, _) = Wal::open_with(disk.clone(), OPTIONS).unwrap();
    append_range(&mut wal, 1..=20, 0);
    wal.reset(50).unwrap();
    assert_eq!((wal.last_seq(), wal.first_seq()), (50, 51));
    assert_eq!(
        segments(&wal),
        vec!["seg-00000000000000000051.wal".to_string()]
    );
    // Back again, below where it was.
    wal.reset(3).unwrap();
    assert_eq!(wal.append(&[b"four"]).unwrap(), 4..5);
    wal.sync().unwrap();
    drop(wal);
    disk.crash(TearMode::DropUnsynced);
    let (mut wal, recovery) = Wal::open_with_purged(disk, OPTIONS, 3).unwrap();
    assert_eq!(recovery.last_seq, 4);
    assert_eq!(records(&mut wal, 1), vec![(4, b"four".to_vec())]);
}
