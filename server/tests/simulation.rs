//! A seeded, single-threaded simulation of a shard: the engine and the log over the
//! crash/fault test storage. Each step takes a batch of random commands (and the expiry
//! of due holds), decides and applies them, appends the decisions with one write and one
//! sync, and counts them acknowledged only when the sync returned. Random I/O errors (EIO,
//! ENOSPC, short writes) hit the storage; random crashes drop what was not synced, or tear
//! it. After every crash and every failure the shard recovers (snapshot plus replay) and
//! the test checks: every acknowledged decision is there, nothing that was never appended
//! is, the state equals the replay of exactly the recovered prefix, and the invariants hold.
//! When the crash dropped every unsynced byte, recovery must give exactly the log's durable
//! prefix; when it tore them, something between the durable prefix and all that was
//! written. A snapshot (taken now and then) may fail only by an injected fault.
//!
//! `BOXOFFICE_SIM_SEEDS` (default 2000) sets how many seeds run; `BOXOFFICE_SEED=n` runs
//! only seed n, to replay a failure exactly.

use engine::{
    Actor, BookingId, Command, Decided, Decision, Engine, HoldId, ItemRequest, Layout, NewEvent,
    NewHold, NewRow, NewSection,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wal::{CrashStorage, FaultKind, FaultStorage, Options, TearMode, Wal};

const T0: u64 = 1_700_000_000_000;
const OPTIONS: Options = Options {
    segment_bytes_max: 2_048,
    preallocate_bytes: 256,
};

type Log = Wal<FaultStorage<CrashStorage>>;

#[derive(Default)]
struct Counts {
    crashes: u64,
    faults: u64,
    acknowledged: u64,
    /// Snapshots written, and snapshots that failed (each by an injected fault).
    snapshots: u64,
    snapshot_faults: u64,
    /// Snapshots written off the log's path (another storage handle), and of those, taken
    /// in by the log (its old files deleted through the other handle).
    off_path_snapshots: u64,
    off_path_adopted: u64,
    /// Crashes with records written but not synced, per tear mode: dropped (recovery must
    /// give exactly the durable prefix), or torn (recovery gives the durable prefix plus
    /// whatever whole records survived); and of the torn ones, how many recovered more
    /// than the durable prefix.
    unsynced_dropped: u64,
    unsynced_torn: u64,
    torn_kept_records: u64,
}

fn random_command(rng: &mut StdRng, engine: &Engine) -> Command {
    let user = format!("u{}", rng.random_range(0..5));
    let actor = Actor::User(user.clone());
    let holds = engine.stats().bookings + engine.stats().holds_live + 3;
    match rng.random_range(0..10) {
        0..=3 | 9 => {
            let seats = (0..rng.random_range(0..3))
                .map(|_| {
                    format!(
                        "{}-{}",
                        ["A", "B"][rng.random_range(0..2)],
                        rng.random_range(1..=4)
                    )
                })
                .collect();
            let items = if rng.random_bool(0.6) {
                vec![ItemRequest {
                    section_id: "ga".into(),
                    qty: rng.random_range(1..4),
                }]
            } else {
                vec![]
            };
            let hold = NewHold {
                actor,
                event_id: "sim".into(),
                user_id: user,
                items,
                seats,
                ttl_ms: Some(rng.random_range(1..4) * 1000),
                payment_ref: None,
                idempotency: None,
            };
            if rng.random_bool(0.3) {
                Command::Purchase(hold)
            } else {
                Command::PlaceHold(hold)
            }
        }
        4..=6 => Command::ConfirmHold {
            actor,
            hold_id: HoldId::new(0, rng.random_range(1..=holds)),
            payment_ref: None,
            idempotency: None,
        },
        7 => Command::ReleaseHold {
            actor,
            hold_id: HoldId::new(0, rng.random_range(1..=holds)),
            idempotency: None,
        },
        _ => Command::CancelBooking {
            actor,
            booking_id: BookingId::new(0, rng.random_range(1..=holds)),
            idempotency: None,
        },
    }
}

fn open(storage: &CrashStorage, rng: &mut StdRng, counts: &mut Counts) -> (Log, Engine, u64) {
    // The next fault lands somewhere in the next few hundred storage operations.
    let kind = [FaultKind::Eio, FaultKind::NoSpace, FaultKind::ShortWrite][rng.random_range(0..3)];
    let fail_at = rng.random_range(1..400);
    let faulty = FaultStorage::new(storage.clone(), fail_at, kind, rng.random_bool(0.5));
    let (mut wal, recovery) = match Wal::open_with(faulty, OPTIONS) {
        Ok(opened) => opened,
        Err(_) => {
            // The fault hit recovery itself (cutting a torn tail): open again without one.
            counts.faults += 1;
            Wal::open_with(
                FaultStorage::new(storage.clone(), u64::MAX, kind, false),
                OPTIONS,
            )
            .expect("recovers")
        }
    };
    let mut engine = match &recovery.snapshot {
        Some(s) => Engine::restore(&s.bytes).expect("snapshot decodes"),
        None => Engine::new(0),
    };
    let from = recovery.snapshot.as_ref().map_or(1, |s| s.seq + 1);
    wal.replay(from, |_, bytes| {
        engine.apply(&Decision::decode(bytes).map_err(|e| e.0)?);
        Ok::<(), String>(())
    })
    .expect("replay");
    let last = wal.last_seq();
    (wal, engine, last)
}

/// The engine obtained by applying exactly `history[..n]`.
fn reference(history: &[Decision], n: u64) -> Engine {
    let mut engine = Engine::new(0);
    for d in &history[..n as usize] {
        engine.apply(d);
    }
    engine
}

fn run_seed(seed: u64, counts: &mut Counts) {
    let mut rng = StdRng::seed_from_u64(seed);
    let storage = CrashStorage::new();
    let mut history: Vec<Decision> = Vec::new();
    let mut acknowledged: u64 = 0;
    let (mut wal, mut engine, _) = open(&storage, &mut rng, counts);
    let mut now = T0;
    let create = sim_event();
    let mut pending = vec![create];
    let mut staged: Option<(u64, Vec<u8>)> = None;
    let mut written: Option<u64> = None;
    for _step in 0..60 {
        now += rng.random_range(0..1_500);
        let now_ms = now.max(engine.now_ms());
        let mut batch = engine.decide_expiry(now_ms, 4);
        for d in &batch {
            engine.apply(d);
        }
        pending.extend((0..rng.random_range(1..6)).map(|_| random_command(&mut rng, &engine)));
        for command in pending.drain(..) {
            if let Ok(Decided::Change(d)) = engine.decide(&command, now_ms) {
                engine.apply(&d);
                batch.push(d);
            }
        }
        engine.check_invariants();
        let records: Vec<Vec<u8>> = batch
            .iter()
            .map(|d| {
                let mut buf = Vec::new();
                d.encode(&mut buf);
                buf
            })
            .collect();
        // history[..n] is always exactly what the log holds as seqs 1..=n.
        // history holds every decision written or attempted, in seq order: a failed
        // append may still have put whole records on the storage, which a crash may keep
        // (never acknowledged, so either outcome is allowed).
        let appended = wal.append(&records);
        history.extend(batch);
        if appended.is_ok() {
            assert_eq!(history.len() as u64, wal.last_seq());
        }
        let result = appended.and_then(|_| wal.sync());
        // The server's off-path snapshot: encoded at a durable seq (staged), its file written
        // by another thread with its own storage handle some steps later, while appends go
        // on, and taken in by the log (which then hands back what to delete) later still.
        if let Some((seq, bytes)) = staged.take_if(|_| rng.random_bool(0.5)) {
            let mut writer = storage.clone();
            wal::write_snapshot_file(&mut writer, seq, &bytes).expect("no fault on this handle");
            counts.off_path_snapshots += 1;
            written = Some(seq);
        } else if let Some(seq) = written.take_if(|_| rng.random_bool(0.5)) {
            let obsolete = wal
                .adopt_snapshot(seq)
                .unwrap_or_else(|e| panic!("seed {seed}: snapshot {seq} not taken in: {e}"));
            wal::remove_files(&mut storage.clone(), &obsolete).expect("no fault on this handle");
            counts.off_path_adopted += 1;
        }
        if result.is_ok() && staged.is_none() && written.is_none() && rng.random_bool(0.05) {
            staged = Some((wal.durable_seq(), engine.snapshot()));
        }
        if result.is_ok() && rng.random_bool(0.1) {
            let injected = wal.storage().injected();
            match wal.write_snapshot(wal.last_seq(), &engine.snapshot()) {
                Ok(()) => counts.snapshots += 1,
                Err(error) => {
                    // Only an injected I/O error may fail a snapshot (a snapshot at the
                    // durable seq is valid; the log is not latched after a success).
                    assert!(
                        matches!(error, wal::Error::Io { .. })
                            && wal.storage().injected() > injected,
                        "seed {seed}: a snapshot failed without an injected fault: {error}"
                    );
                    counts.snapshot_faults += 1;
                }
            }
        }
        match result {
            Ok(()) => acknowledged = wal.durable_seq(),
            Err(_) => counts.faults += 1,
        }
        let crash = result.is_err() || rng.random_bool(0.15);
        if std::env::var_os("BOXOFFICE_SIM_DEBUG").is_some() {
            eprintln!(
                "seed {seed} step {_step}: {} records, result {result:?}, last {} durable {} files {:?} crash {crash}",
                records.len(),
                wal.last_seq(),
                wal.durable_seq(),
                wal::Storage::list(&storage).unwrap()
            );
        }
        if crash {
            counts.crashes += 1;
            let tear = match rng.random_range(0..3) {
                0 => TearMode::DropUnsynced,
                1 => TearMode::KeepPrefix(rng.random()),
                _ => TearMode::GarbleTail(rng.random()),
            };
            // What the log had made durable, and every seq handed to the storage (a failed
            // append's included: a short write may have stored whole records of it).
            let durable = wal.durable_seq();
            let appended = history.len() as u64;
            drop(wal);
            storage.crash(tear);
            let (reopened, recovered, last) = open(&storage, &mut rng, counts);
            assert!(
                last >= acknowledged,
                "seed {seed}: acknowledged seq {acknowledged} lost (recovered {last})"
            );
            assert!(
                last <= appended,
                "seed {seed}: recovered {last} > written {appended}"
            );
            if tear == TearMode::DropUnsynced {
                // Nothing unsynced survives, nothing synced is lost: exactly the durable prefix.
                assert_eq!(
                    last, durable,
                    "seed {seed}: unsynced bytes dropped, yet recovered seq {last} is not the \
                     durable seq {durable} (written {appended})"
                );
            } else {
                assert!(
                    durable <= last && last <= appended,
                    "seed {seed}: {tear:?}: recovered seq {last} outside durable {durable} ..= \
                     written {appended}"
                );
            }
            if durable < appended {
                if tear == TearMode::DropUnsynced {
                    counts.unsynced_dropped += 1;
                } else {
                    counts.unsynced_torn += 1;
                    counts.torn_kept_records += u64::from(last > durable);
                }
            }
            recovered.check_invariants();
            assert_eq!(
                recovered.snapshot(),
                reference(&history, last).snapshot(),
                "seed {seed}: state is the replay of the recovered prefix"
            );
            history.truncate(last as usize);
            // An off-path snapshot not yet taken in is gone with the process (its file may
            // be on disk: recovery above used it if it was the newest).
            staged = None;
            written = None;
            acknowledged = last;
            wal = reopened;
            engine = recovered;
            if engine.event("sim").is_none() {
                pending.push(sim_event());
            }
        }
    }
    counts.acknowledged += acknowledged;
}

/// The simulated shard's one event: a GA section and two rows of seats.
fn sim_event() -> Command {
    Command::CreateEvent(NewEvent {
        id: "sim".into(),
        name: "Sim".into(),
        starts_at_ms: None,
        max_per_user: Some(6),
        hold_ttl_ms: None,
        sections: vec![
            NewSection {
                id: Some("ga".into()),
                name: "GA".into(),
                price_cents: 1,
                layout: Layout::General { capacity: 15 },
            },
            NewSection {
                id: Some("hall".into()),
                name: "Hall".into(),
                price_cents: 2,
                layout: Layout::Seated {
                    rows: vec![
                        NewRow {
                            label: "A".into(),
                            count: 4,
                        },
                        NewRow {
                            label: "B".into(),
                            count: 4,
                        },
                    ],
                },
            },
        ],
        idempotency: None,
    })
}

#[test]
fn simulated_shards_survive_crashes_and_io_errors() {
    let seeds: Vec<u64> = match std::env::var("BOXOFFICE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => {
            let n = std::env::var("BOXOFFICE_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(2000u64);
            (0..n).collect()
        }
    };
    let mut counts = Counts::default();
    for &seed in &seeds {
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed(seed, &mut counts)));
        if let Err(panic) = result {
            eprintln!("simulation failed at seed {seed}; replay it with BOXOFFICE_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
    println!(
        "simulation: {} seeds, {} crashes, {} I/O faults, {} decisions acknowledged and recovered; \
         {} snapshots written, {} failed by an injected fault, {} written off the log's path \
         ({} taken in); {} crashes with unsynced records \
         dropped (recovered exactly the durable prefix), {} torn ({} kept records past the \
         durable seq)",
        seeds.len(),
        counts.crashes,
        counts.faults,
        counts.acknowledged,
        counts.snapshots,
        counts.snapshot_faults,
        counts.off_path_snapshots,
        counts.off_path_adopted,
        counts.unsynced_dropped,
        counts.unsynced_torn,
        counts.torn_kept_records
    );
    assert!(
        counts.crashes > 0 && counts.faults > 0,
        "no fault was injected"
    );
    if seeds.len() >= 100 {
        // A campaign (not the replay of one seed) must reach every path it claims to check.
        assert!(
            counts.snapshots > 0
                && counts.snapshot_faults > 0
                && counts.off_path_adopted > 0
                && counts.unsynced_dropped > 0
                && counts.unsynced_torn > 0,
            "a path was never exercised: {} snapshots, {} snapshot faults, {} dropped, {} torn",
            counts.snapshots,
            counts.snapshot_faults,
            counts.unsynced_dropped,
            counts.unsynced_torn
        );
    }
}
