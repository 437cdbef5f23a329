//! Recovery you can trust: truncation at every byte, bit flips, I/O errors at every
//! operation, crashes at every operation (snapshots included). Each fault test counts the
//! faults it injected and fails if there were none.

use rand::{Rng, SeedableRng};
use wal::{CrashStorage, Error, FaultKind, FaultStorage, Options, Storage, TearMode, Wal};

const OPTIONS: Options = Options {
    segment_bytes_max: 400,
    preallocate_bytes: 256,
};

fn payload(batch: usize, i: usize) -> Vec<u8> {
    format!("batch {batch} record {i} {}", "x".repeat(batch * 7 % 23)).into_bytes()
}

/// What a scripted workload did: every record appended (in seq order) and the seqs
/// reported durable.
#[derive(Default, Debug)]
struct Outcome {
    appended: Vec<Vec<u8>>,
    durable: u64,
}

/// Appends eight batches (rolling segments), syncing each, with snapshots after batches
/// 2, 5 and 7 (the third prunes the first snapshot and the segments the second covers).
/// Stops at the first error.
fn workload<S: Storage>(storage: S, out: &mut Outcome) -> Result<(), Error> {
    let (mut wal, _) = Wal::open_with(storage, OPTIONS)?;
    for batch in 0..8 {
        let records: Vec<Vec<u8>> = (0..batch % 3 + 1).map(|i| payload(batch, i)).collect();
        let range = wal.append(&records)?;
        assert_eq!(range.start, out.appended.len() as u64 + 1);
        out.appended.extend(records);
        wal.sync()?;
        out.durable = wal.last_seq();
        if batch == 2 || batch == 5 || batch == 7 {
            let seq = wal.last_seq();
            wal.write_snapshot(seq, format!("covers {seq}").as_bytes())?;
        }
    }
    // Appended, never synced: may or may not survive a crash.
    wal.append(&[b"after"])?;
    out.appended.push(b"after".to_vec());
    Ok(())
}

/// Reopens and returns (snapshot seq, records after it).
fn recover(storage: CrashStorage) -> (u64, Vec<(u64, Vec<u8>)>) {
    let (mut wal, recovery) = Wal::open_with(storage, OPTIONS).expect("a crashed log recovers");
    let snapshot_seq = recovery.snapshot.as_ref().map_or(0, |s| {
        assert_eq!(
            s.bytes,
            format!("covers {}", s.seq).into_bytes(),
            "a snapshot is whole"
        );
        s.seq
    });
    let mut records = Vec::new();
    wal.replay(snapshot_seq + 1, |seq, bytes| {
        records.push((seq, bytes.to_vec()));
        Ok::<(), ()>(())
    })
    .unwrap();
    (snapshot_seq, records)
}

/// Everything durable is there; nothing that was not appended is; and when the crash
/// dropped every unsynced byte (`exact`), nothing that was not synced is either.
fn check_recovered(
    out: &Outcome,
    snapshot_seq: u64,
    records: &[(u64, Vec<u8>)],
    exact: bool,
    context: &str,
) {
    let mut expected_seq = snapshot_seq + 1;
    for (seq, bytes) in records {
        assert_eq!(*seq, expected_seq, "{context}: records are contiguous");
        assert_eq!(
            Some(bytes),
            out.appended.get(*seq as usize - 1),
            "{context}: record {seq} is what was appended"
        );
        expected_seq += 1;
    }
    let last = expected_seq - 1;
    assert!(
        last >= out.durable,
        "{context}: durable seq {} lost (recovered up to {last})",
        out.durable
    );
    if exact {
        assert_eq!(
            last, out.durable,
            "{context}: an unsynced record survived a crash that dropped unsynced bytes"
        );
    }
}

#[test]
fn crash_after_every_storage_operation_keeps_exactly_the_durable_prefix() {
    let probe = CrashStorage::new();
    workload(probe.clone(), &mut Outcome::default()).unwrap();
    let total_ops = probe.ops();
    let mut crashes = 0;
    for k in 1..=total_ops {
        for (t, tear) in [
            TearMode::DropUnsynced,
            TearMode::KeepPrefix(k * 7 + 3),
            TearMode::GarbleTail(k * 13 + 1),
        ]
        .into_iter()
        .enumerate()
        {
            let storage = CrashStorage::new();
            let mut out = Outcome::default();
            // Every operation from k + 1 on fails: the process "dies" after operation k.
            let _ = workload(
                FaultStorage::new(storage.clone(), k + 1, FaultKind::Eio, true),
                &mut out,
            );
            storage.crash(tear);
            crashes += 1;
            let (snapshot_seq, records) = recover(storage);
            check_recovered(
                &out,
                snapshot_seq,
                &records,
                t == 0,
                &format!("crash after op {k}, tear {t}"),
            );
        }
    }
    println!("crashed after each of {total_ops} operations in 3 tear modes: {crashes} crashes");
    assert!(crashes > 0);
}

#[test]
fn io_errors_at_every_operation_never_report_durable_what_is_not() {
    let probe = CrashStorage::new();
    workload(
        FaultStorage::new(probe.clone(), u64::MAX, FaultKind::Eio, false),
        &mut Outcome::default(),
    )
    .unwrap();
    let mut injected = 0;
    let mut absorbed = 0;
    let mut k = 1;
    loop {
        let mut any = false;
        for kind in [FaultKind::Eio, FaultKind::NoSpace, FaultKind::ShortWrite] {
            for persistent in [false, true] {
                let storage = CrashStorage::new();
                let mut faulty = FaultStorage::new(storage.clone(), k, kind, persistent);
                let mut out = Outcome::default();
                let result = {
                    let faulty_ref = &mut faulty;
                    workload(ByRef(faulty_ref), &mut out)
                };
                if faulty.injected() == 0 {
                    continue;
                }
                any = true;
                injected += faulty.injected();
                // A failed reservation of zeros is absorbed (the log writes on without
                // them); every other failed operation surfaces as an error.
                if faulty.injected_preallocate() == faulty.injected() {
                    absorbed += 1;
                } else {
                    assert!(
                        result.is_err(),
                        "op {k} {kind:?}: a failed operation surfaces as an error"
                    );
                }
                storage.crash(TearMode::DropUnsynced);
                let (snapshot_seq, records) = recover(storage);
                check_recovered(
                    &out,
                    snapshot_seq,
                    &records,
                    true,
                    &format!("fault at op {k} {kind:?} persistent={persistent}"),
                );
            }
        }
        if !any {
            break;
        }
        k += 1;
    }
    println!(
        "injected {injected} I/O errors at operations 1..{k} ({absorbed} runs with only a \
         failed reservation of zeros, absorbed)"
    );
    assert!(injected > 0 && absorbed > 0);
}

#[test]
fn after_a_failed_sync_every_append_is_refused() {
    let storage = CrashStorage::new();
    // Operations: dir sync (open), create, header, sync, dir sync (segment), preallocate,
    // append, sync: fail that last sync.
    let (mut wal, _) = Wal::open_with(
        FaultStorage::new(storage.clone(), 8, FaultKind::Eio, false),
        OPTIONS,
    )
    .unwrap();
    wal.append(&[b"one"]).unwrap();
    assert!(matches!(
        wal.sync(),
        Err(Error::Io {
            op: "fdatasync",
            ..
        })
    ));
    assert!(wal.failed().is_some());
    assert!(
        matches!(wal.append(&[b"two"]), Err(Error::FailedEarlier(_))),
        "no retry after a failed fsync"
    );
    assert!(matches!(wal.sync(), Err(Error::FailedEarlier(_))));
    assert_eq!(wal.durable_seq(), 0);
    drop(wal);
    // The record whose sync failed was cut: a restart does not find it.
    let (wal, _) = Wal::open_with(storage, OPTIONS).unwrap();
    assert_eq!(wal.last_seq(), 0, "a record whose sync failed survived");
}

#[test]
fn pruning_deletes_the_oldest_snapshot_and_the_segments_it_covered() {
    let storage = CrashStorage::new();
    let mut out = Outcome::default();
    workload(storage.clone(), &mut out).unwrap();
    let names = storage.list().unwrap();
    let snapshots: Vec<&String> = names.iter().filter(|n| n.ends_with(".snap")).collect();
    let segments: Vec<&String> = names.iter().filter(|n| n.ends_with(".wal")).collect();
    println!("after the workload: {snapshots:?} {segments:?}");
    assert_eq!(snapshots.len(), 2, "the two newest snapshots are kept");
    assert!(
        !names.contains(&"seg-00000000000000000001.wal".to_string()),
        "the first segment, wholly covered by the older kept snapshot, is deleted"
    );
    let (snapshot_seq, records) = recover(storage);
    check_recovered(&out, snapshot_seq, &records, false, "after pruning");
}

/// A `&mut S` as a storage, so a test keeps the `FaultStorage` to read its counter.
struct ByRef<'a, S>(&'a mut S);

impl<S: Storage> Storage for ByRef<'_, S> {
    fn dir(&self) -> &std::path::Path {
        self.0.dir()
    }
    fn list(&self) -> std::io::Result<Vec<String>> {
        self.0.list()
    }
    fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        self.0.read(name)
    }
    fn create(&mut self, name: &str) -> std::io::Result<()> {
        self.0.create(name)
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0.append(name, bytes)
    }
    fn preallocate(&mut self, name: &str, len: u64) -> std::io::Result<()> {
        self.0.preallocate(name, len)
    }
    fn sync(&mut self, name: &str) -> std::io::Result<()> {
        self.0.sync(name)
    }
    fn truncate(&mut self, name: &str, len: u64) -> std::io::Result<()> {
        self.0.truncate(name, len)
    }
    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove(&mut self, name: &str) -> std::io::Result<()> {
        self.0.remove(name)
    }
    fn sync_dir(&mut self) -> std::io::Result<()> {
        self.0.sync_dir()
    }
}

/// One segment with batches of records, without reserved zeros; returns the storage, the
/// segment name, and the end offset of every record.
fn one_segment(batches: &[usize]) -> (CrashStorage, String, Vec<usize>) {
    let storage = CrashStorage::new();
    // No reserved zeros: these tests are about the frames (tests/padding.rs covers cuts
    // and damage around reserved space).
    let options = Options {
        preallocate_bytes: 0,
        ..Options::default()
    };
    let (mut wal, _) = Wal::open_with(storage.clone(), options).unwrap();
    let mut ends = Vec::new();
    let mut end = wal::SEGMENT_HEADER_LEN;
    for (b, &n) in batches.iter().enumerate() {
        let records: Vec<Vec<u8>> = (0..n).map(|i| payload(b, i)).collect();
        for r in &records {
            end += wal::RECORD_HEADER_LEN + r.len();
            ends.push(end);
        }
        wal.append(&records).unwrap();
        wal.sync().unwrap();
    }
    let name = storage
        .list()
        .unwrap()
        .into_iter()
        .find(|n| n.ends_with(".wal"))
        .unwrap();
    (storage, name, ends)
}

#[test]
fn truncation_at_every_byte_keeps_the_longest_whole_record_prefix() {
    for batches in [&[3usize, 2, 4][..], &[1, 1][..]] {
        let (storage, name, ends) = one_segment(batches);
        let bytes = storage.contents(&name).unwrap();
        // Every offset of the last batch, and (for the small segment) of the whole file.
        let from = if batches.len() == 2 {
            0
        } else {
            ends[ends.len() - batches[batches.len() - 1] - 1]
        };
        let mut cuts = 0;
        for cut in from..=bytes.len() {
            let copy = CrashStorage::new();
            copy.overwrite(&name, bytes[..cut].to_vec());
            let (_, records) = recover(copy.clone());
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(records.len(), whole, "cut at {cut}");
            cuts += 1;
            // The torn bytes were cut off: reopening again finds a clean log.
            let (_, recovery) = Wal::open_with(copy, Options::default()).unwrap();
            assert!(
                recovery.torn_tail.is_none(),
                "cut at {cut}: the tail was cut at first open"
            );
        }
        println!("truncated a segment at {cuts} offsets");
        assert!(cuts > 0);
    }
}

#[test]
fn flipped_bits_outside_the_final_record_are_corruption_with_file_and_offset() {
    let (storage, name, ends) = one_segment(&[4, 3, 5, 2]);
    let bytes = storage.contents(&name).unwrap();
    let last_two_start = ends[ends.len() - 3];
    let final_start = ends[ends.len() - 2];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xB0C5);
    let mut bits: Vec<usize> = (last_two_start * 8..bytes.len() * 8).collect();
    bits.extend((0..10_000).map(|_| rng.random_range(0..last_two_start * 8)));
    let (mut corrupt, mut torn) = (0, 0);
    for bit in bits {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let copy = CrashStorage::new();
        copy.overwrite(&name, damaged.clone());
        let byte = bit / 8;
        match Wal::open_with(copy.clone(), Options::default()) {
            Err(Error::Corrupt { path, offset, .. }) => {
                assert!(
                    byte < final_start,
                    "bit {bit} in the final record is a torn tail, not corruption"
                );
                assert!(path.ends_with(&name));
                assert!(
                    offset as usize <= byte,
                    "the reported offset {offset} is at or before the flip at {byte}"
                );
                assert_eq!(
                    copy.contents(&name).unwrap(),
                    damaged,
                    "nothing changed on disk"
                );
                corrupt += 1;
            }
            Ok((_, recovery)) => {
                assert!(
                    byte >= final_start,
                    "bit {bit} at byte {byte} outside the final record went unnoticed"
                );
                assert_eq!(
                    recovery.torn_tail.map(|t| t.offset as usize),
                    Some(final_start)
                );
                torn += 1;
            }
            Err(other) => panic!("bit {bit}: {other}"),
        }
    }
    println!(
        "flipped bits: {corrupt} reported as corruption, {torn} in the final record cut as torn"
    );
    assert!(corrupt > 10_000 && torn > 0);
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
    let storage = CrashStorage::new();
    let mut out = Outcome::default();
    workload(storage.clone(), &mut out).unwrap();
    let snapshots: Vec<String> = storage
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".snap"))
        .collect();
    assert_eq!(snapshots.len(), 2, "the two newest snapshots are kept");
    let newest = snapshots.last().unwrap();
    let mut bytes = storage.contents(newest).unwrap();
    *bytes.last_mut().unwrap() ^= 0xFF;
    storage.overwrite(newest, bytes);
    let (_, recovery) = Wal::open_with(storage.clone(), OPTIONS).unwrap();
    assert_eq!(recovery.damaged_snapshots.len(), 1);
    let (snapshot_seq, records) = recover(storage.clone());
    assert!(snapshot_seq < out.durable);
    check_recovered(&out, snapshot_seq, &records, false, "fallback");

    // The log goes on: the damaged snapshot is never kept in place of a good one, and the
    // next prune deletes it.
    let (mut wal, _) = Wal::open_with(storage.clone(), OPTIONS).unwrap();
    for round in 0..2 {
        wal.append(&[format!("more {round}").into_bytes()]).unwrap();
        wal.sync().unwrap();
        let seq = wal.last_seq();
        wal.write_snapshot(seq, format!("covers {seq}").as_bytes())
            .unwrap();
    }
    drop(wal);
    assert!(
        !storage.list().unwrap().contains(newest),
        "the damaged snapshot was deleted"
    );
    let (_, recovery) = Wal::open_with(storage, OPTIONS).unwrap();
    assert!(recovery.damaged_snapshots.is_empty());
    assert_eq!(
        recovery.snapshot.map(|s| s.seq),
        Some(out.appended.len() as u64 + 2),
        "the newest good snapshot is used"
    );
}
