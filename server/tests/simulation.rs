//! A seeded, single-threaded simulation of a shard that runs the server's own shard core
//! ([`server::core::ShardCore`], the code the shard thread drives) and its log stage over
//! the crash and fault test storage, with a seeded clock. There is no copy of the loop here:
//! each step is one of what the server's threads do, picked by the seed: the core decides a
//! batch of random commands (and maybe a read) at a random later time, if it may; the log
//! stage writes what is queued (one append), or fdatasyncs what it wrote; or the core takes
//! the stage's reports and releases what is durable, then the snapshot writer and the core's
//! maintenance run. The pipeline's depth is 1 to 4 per seed, and a fifth of the cores run
//! their stage inline (the server's default). A crash can follow any step.
//!
//! Random I/O errors (EIO, ENOSPC, short writes) hit the log's storage, the storage the core
//! opens to rebuild its durable state, and the snapshot writer's; random crashes drop what
//! was not synced, or tear it. Half the seeds take snapshots the server's way (encoded at a
//! durable seq, written through another storage handle some steps later while appends go
//! on, taken in by the core, its obsolete files deleted through another handle later still);
//! the other half let the core write them itself at its cadence. Checked at every step:
//!
//! - batches are released in the order they were decided, one answer per command, and each
//!   only once the log itself (not the core's idea of it) is durable up to its last seq;
//! - every answer of a batch whose write or sync failed, or that was decided after one that
//!   failed, is 503, and so is every command while the log is failed or full;
//! - a read is released only with nothing in flight, and sees exactly the replay of the
//!   log's durable prefix (after a failure too: the rebuilt state); so does the engine
//!   whenever the pipeline is drained;
//! - due holds expire before the batch's commands decide (no expiry after a command's
//!   decision, none left due afterwards);
//! - a snapshot the core writes fails only by an injected fault;
//! - after a crash (with batches queued for the stage, written and not synced, or durable
//!   and not released), every released batch survives; recovery gives exactly the durable
//!   prefix when the unsynced bytes were dropped, and something between the durable prefix
//!   and all that was written when they were torn; the state is the replay of exactly the
//!   recovered prefix; invariants hold.
//!
//! `BOXOFFICE_SIM_SEEDS` (default 2000) sets how many seeds run; `BOXOFFICE_SEED=n` runs
//! only seed n, to replay a failure exactly (every failure prints its seed).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use engine::{
    Actor, BookingId, Command, Decision, Engine, HoldId, ItemRequest, Layout, NewEvent, NewHold,
    NewRow, NewSection,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use server::core::{
    CoreOptions, DirLock, LogDir, LogStage, Maintenance, ShardCore, SnapshotSource, Written,
};
use server::shard::{Readiness, ShardError, ShardStatus};
use wal::{CrashStorage, FaultKind, FaultStorage, Options, Storage, TearMode};

const T0: u64 = 1_700_000_000_000;
const OPTIONS: Options = Options {
    segment_bytes_max: 2_048,
    preallocate_bytes: 256,
};

type Sim = FaultStorage<CrashStorage>;
type Core = ShardCore<Sim, usize, usize>;
type Stage = Option<LogStage<Sim>>;

#[derive(Default)]
struct Counts {
    crashes: u64,
    faults: u64,
    acknowledged: u64,
    /// Batches whose write or sync failed (every answer 503), and commands answered 503
    /// while the log was failed or full.
    failed_batches: u64,
    refused_commands: u64,
    /// Times the log found no space and later resumed writes without a restart.
    full: u64,
    resumed: u64,
    /// Rebuilds of the durable state that failed themselves (reads refused too).
    rebuild_failures: u64,
    /// Holds expired by the core, ahead of a batch's commands.
    expired: u64,
    /// Snapshots the core wrote itself, and those that failed (each by an injected fault).
    snapshots: u64,
    snapshot_faults: u64,
    /// Snapshots written off the core's path (another storage handle), and of those, taken
    /// in by the core (its old files deleted through another handle later).
    off_path_snapshots: u64,
    off_path_adopted: u64,
    off_path_removed: u64,
    /// Crashes with records written but not synced, per tear mode: dropped (recovery must
    /// give exactly the durable prefix), or torn (recovery gives the durable prefix plus
    /// whatever whole records survived); and of the torn ones, how many recovered more
    /// than the durable prefix.
    unsynced_dropped: u64,
    unsynced_torn: u64,
    torn_kept_records: u64,
    /// The pipeline: the most batches in flight at once; decides refused because it was
    /// full (or a read or a snapshot waited for it to drain); writes that took more than
    /// one batch; syncs with later batches in flight; failed batches with others in flight
    /// after them; batches released; reads run; crashes with batches queued for the log
    /// stage, written and not synced, durable and not released; snapshot files written
    /// while the log stage had written and not synced.
    max_in_flight: u64,
    pipeline_full: u64,
    grouped: u64,
    synced_with_later_in_flight: u64,
    failed_later_in_flight: u64,
    acknowledged_batches: u64,
    reads: u64,
    crash_queued: u64,
    crash_written_unsynced: u64,
    crash_durable_unreleased: u64,
    snapshot_racing_append: u64,
}

/// The simulated log directory: every storage handle the core opens (recovery, rebuilds)
/// is the shared crash storage behind its own fault injector.
struct SimDir {
    storage: CrashStorage,
    rng: StdRng,
    faults: bool,
    opens: u32,
}

impl LogDir<Sim> for SimDir {
    fn path(&self) -> &Path {
        self.storage.dir()
    }
    fn open(&mut self) -> std::io::Result<Sim> {
        // Now and then a rebuild cannot even open the directory (then the core refuses
        // reads too); recovery's own open always can.
        self.opens += 1;
        if self.faults && self.opens > 1 && self.rng.random_bool(0.05) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        Ok(faulty(&self.storage, &mut self.rng, self.faults))
    }
}

/// A handle on `storage` whose next fault lands somewhere in its next few hundred
/// operations (or never).
fn faulty(storage: &CrashStorage, rng: &mut StdRng, faults: bool) -> Sim {
    let kind = [FaultKind::Eio, FaultKind::NoSpace, FaultKind::ShortWrite][rng.random_range(0..3)];
    let fail_at = if faults {
        rng.random_range(1..160)
    } else {
        u64::MAX
    };
    FaultStorage::new(storage.clone(), fail_at, kind, rng.random_bool(0.5))
}

/// The server's snapshot writer, played by the simulation: what it finished, and what the
/// core handed back to delete.
#[derive(Clone, Default)]
struct SimSnapshots(Arc<parking_lot::Mutex<Pending>>, DirLock);

#[derive(Default)]
struct Pending {
    done: Vec<u64>,
    remove: Vec<Vec<String>>,
}

impl SnapshotSource for SimSnapshots {
    fn take_done(&mut self) -> Option<u64> {
        self.0.lock().done.drain(..).max()
    }
    fn remove(&mut self, names: Vec<String>) {
        if !names.is_empty() {
            self.0.lock().remove.push(names);
        }
    }
    fn dir_lock(&self) -> DirLock {
        Arc::clone(&self.1)
    }
}

/// Recovers a core from `storage`; a fault that hit recovery itself (cutting a torn tail)
/// is retried without one, as a restart would. The core keeps injecting faults afterwards.
/// Its log stage is the simulation's to step.
fn recover(
    storage: &CrashStorage,
    rng: &mut StdRng,
    every: u64,
    depth: usize,
    counts: &mut Counts,
) -> (Core, Stage, Arc<ShardStatus>) {
    let options = CoreOptions {
        wal: OPTIONS,
        snapshot_every: every,
        depth,
    };
    let status = Arc::new(ShardStatus::default());
    let dir = SimDir {
        storage: storage.clone(),
        rng: StdRng::seed_from_u64(rng.random()),
        faults: true,
        opens: 0,
    };
    let mut core = match ShardCore::recover(0, dir, options, Arc::clone(&status)) {
        Ok(core) => core,
        Err(_) => {
            counts.faults += 1;
            // Again as a restart would, with faults or not; a third time without.
            let dir = SimDir {
                storage: storage.clone(),
                rng: StdRng::seed_from_u64(rng.random()),
                faults: rng.random_bool(0.5),
                opens: 0,
            };
            match ShardCore::recover(0, dir, options, Arc::clone(&status)) {
                Ok(core) => core,
                Err(_) => {
                    let dir = SimDir {
                        storage: storage.clone(),
                        rng: StdRng::seed_from_u64(rng.random()),
                        faults: false,
                        opens: 0,
                    };
                    ShardCore::recover(0, dir, options, Arc::clone(&status)).expect("recovers")
                }
            }
        }
    };
    // A fifth of the cores run their log stage inline (the server's depth 1).
    let stage = if rng.random_bool(0.2) {
        None
    } else {
        Some(core.take_log_stage().expect("a new core has its stage"))
    };
    (core, stage, status)
}

/// An expiry, alone or feeding a waiting list.
fn is_expiry(decision: &Decision) -> bool {
    match decision {
        Decision::HoldExpired(_) => true,
        Decision::Cascaded(cascaded) => is_expiry(&cascaded.base),
        _ => false,
    }
}

/// The engine that has applied exactly a prefix of the log's history, kept incrementally.
struct Reference {
    engine: Engine,
    applied: usize,
}

impl Reference {
    fn new() -> Self {
        Reference {
            engine: Engine::new(0),
            applied: 0,
        }
    }
    /// Applies `history` up to `n` (never back: the durable prefix only grows, and a
    /// crash keeps at least it).
    fn at<'a>(&'a mut self, history: &[Decision], n: u64) -> &'a Engine {
        let n = n as usize;
        assert!(n >= self.applied, "the durable prefix went back");
        for d in &history[self.applied..n] {
            self.engine.apply(d);
        }
        self.applied = n;
        &self.engine
    }
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

/// A batch the simulation handed to the core and has not seen released yet.
struct Sent {
    /// The tags of its commands, in order, and of its reads.
    commands: Vec<usize>,
    reads: Vec<usize>,
    /// Whether the core refused writes when it decided it (then every answer is 503).
    refused: bool,
}

/// The actions a step can take; the seed picks one among those possible.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// The core decides a batch (if it may).
    Decide,
    /// The log stage writes what is queued (one append).
    Write,
    /// The log stage fdatasyncs what it wrote.
    Sync,
    /// The core takes in the stage's reports and releases what is durable; the snapshot
    /// writer and the core's maintenance run.
    Release,
}

fn run_seed(seed: u64, counts: &mut Counts) {
    let mut rng = StdRng::seed_from_u64(seed);
    let storage = CrashStorage::new();
    // Half the seeds snapshot the server's way (off the core's path), half on it.
    let off_path = rng.random_bool(0.5);
    let every = rng.random_range(4..40);
    // Batches in flight at most: 1 (no pipeline) to 4.
    let depth = rng.random_range(1..=4);
    // history[..n] is exactly what the log holds as seqs 1..=n, plus, past the durable seq,
    // whatever a failed write handed to the storage (a short write may have stored whole
    // records of it, which a crash may keep: never acknowledged, so either is allowed) and
    // the batches decided after it (never written: the log stage drops them).
    let mut history: Vec<Decision> = Vec::new();
    let mut reference = Reference::new();
    let mut acknowledged: u64 = 0;
    let (mut core, mut stage, mut status) = recover(&storage, &mut rng, every, depth, counts);
    let mut snapshots = SimSnapshots::default();
    if off_path {
        core.set_snapshot_source(Box::new(snapshots.clone()));
    }
    let mut now = T0;
    let mut pending = vec![sim_event()];
    let mut staged: Option<(u64, Vec<u8>)> = None;
    let mut sent: VecDeque<Sent> = VecDeque::new();
    let mut tag = 0usize;
    let mut released = Vec::new();
    let debug = std::env::var_os("BOXOFFICE_SIM_DEBUG").is_some();
    for step in 0..150 {
        let actions = [
            (Action::Decide, 4),
            (Action::Write, 2),
            (Action::Sync, 2),
            (Action::Release, 3),
        ];
        let total: u32 = actions.iter().map(|(_, w)| w).sum();
        let mut pick = rng.random_range(0..total);
        let action = actions
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map(|(a, _)| *a)
            .expect("an action");
        if debug {
            eprintln!(
                "seed {seed} step {step}: {action:?}, in flight {}, durable {}, last {}, refusal {:?}",
                core.in_flight(),
                core.durable_seq(),
                core.wal().last_seq(),
                core.refusal()
            );
        }
        match action {
            Action::Decide if core.can_decide() => {
                assert!(core.in_flight() < depth, "seed {seed}: deeper than {depth}");
                now += rng.random_range(0..1_500);
                let engine_now = core.engine().map(Engine::now_ms);
                let empty = Engine::new(0);
                let seen = core.engine().unwrap_or(&empty);
                pending.extend((0..rng.random_range(0..6)).map(|_| random_command(&mut rng, seen)));
                let commands: Vec<usize> = (0..pending.len()).map(|i| tag + i).collect();
                tag += commands.len();
                let reads: Vec<usize> = if rng.random_bool(0.25) {
                    tag += 1;
                    vec![tag - 1]
                } else {
                    Vec::new()
                };
                let refused = core.refusal().is_some();
                let report = core.decide(
                    now,
                    pending.drain(..).zip(commands.iter().copied()),
                    reads.clone(),
                );
                assert!(
                    engine_now.is_none_or(|t| report.now_ms >= t),
                    "seed {seed}: time went back"
                );
                if refused && core.refusal().is_none() {
                    counts.resumed += 1;
                    assert!(status.is_ready(), "seed {seed}: resumed but not ready");
                }
                // Decided while the log refused writes (a probe for space may have just
                // resumed them): every answer is 503.
                let refused = refused && core.refusal().is_some();
                let decisions: Vec<Decision> = core
                    .records()
                    .iter()
                    .map(|r| Decision::decode(r).expect("records decode"))
                    .collect();
                assert_eq!(decisions.len(), report.decisions);
                // Expiry before commands: once a command's decision is in the batch, no
                // expiry follows; and nothing is left due at the batch's time.
                if let Some(first_command) = decisions.iter().position(|d| !is_expiry(d)) {
                    assert!(
                        !decisions[first_command..].iter().any(is_expiry),
                        "seed {seed} step {step}: an expiry decided after a command"
                    );
                }
                counts.expired += decisions.iter().filter(|d| is_expiry(d)).count() as u64;
                if core.refusal().is_none() {
                    let due = core.engine().and_then(Engine::next_expiry_ms);
                    assert!(
                        due.is_none_or(|due| due > report.now_ms),
                        "seed {seed} step {step}: a hold due at {due:?} outlived the batch at {}",
                        report.now_ms
                    );
                }
                if report.decisions > 0 {
                    assert_eq!(
                        report.last_seq,
                        history.len() as u64 + decisions.len() as u64,
                        "seed {seed} step {step}: seqs out of step with the history"
                    );
                    counts.max_in_flight = counts.max_in_flight.max(core.in_flight() as u64);
                }
                history.extend(decisions);
                if !commands.is_empty() || !reads.is_empty() || report.decisions > 0 {
                    sent.push_back(Sent {
                        commands,
                        reads,
                        refused,
                    });
                }
            }
            Action::Decide => counts.pipeline_full += 1,
            Action::Write => {
                if let Some(stage) = &mut stage {
                    if stage.has_queued() && core.in_flight() > 1 {
                        counts.grouped += 1;
                    }
                    stage.write();
                }
            }
            Action::Sync => {
                if let Some(stage) = &mut stage {
                    if stage.has_written() && core.in_flight() > 1 {
                        counts.synced_with_later_in_flight += 1;
                    }
                    stage.sync();
                }
            }
            Action::Release => {
                let in_flight = core.in_flight();
                let was_refusing = core.refusal().is_some();
                core.release(&mut released);
                if core.refusal().is_some() && !core.is_failed() {
                    // No space: the log cut itself back to its durable end.
                    history.truncate(core.durable_seq() as usize);
                }
                let durable_now = core.wal().durable_seq();
                for (i, batch) in released.drain(..).enumerate() {
                    let expect = sent.pop_front().expect("released a batch never sent");
                    let tags: Vec<usize> = batch.replies.iter().map(|(t, _)| *t).collect();
                    assert_eq!(
                        tags, expect.commands,
                        "seed {seed} step {step}: answers out of order"
                    );
                    assert_eq!(
                        batch.reads, expect.reads,
                        "seed {seed} step {step}: reads out of order"
                    );
                    let all_refused = batch
                        .replies
                        .iter()
                        .all(|(_, result)| matches!(result, Err(ShardError::Unavailable(_))));
                    match batch.report.written {
                        Written::Durable | Written::Nothing => {
                            // Released only once durable: a crash from now on keeps it.
                            assert!(
                                batch.report.last_seq <= durable_now,
                                "seed {seed} step {step}: batch up to seq {} released, the log \
                                 is durable up to {durable_now}",
                                batch.report.last_seq
                            );
                            acknowledged = acknowledged.max(batch.report.last_seq);
                            counts.acknowledged_batches += 1;
                        }
                        Written::Failed => {
                            counts.failed_batches += 1;
                            counts.failed_later_in_flight += u64::from(i > 0 || in_flight > 1);
                            assert!(
                                all_refused,
                                "seed {seed} step {step}: a batch whose write failed answered besides 503"
                            );
                        }
                        Written::Pending => panic!("seed {seed}: released a pending batch"),
                    }
                    if expect.refused {
                        assert!(
                            all_refused,
                            "seed {seed} step {step}: a refusing log answered"
                        );
                        counts.refused_commands += expect.commands.len() as u64;
                    }
                    if !batch.reads.is_empty() {
                        // Reads run now, on the durable state and nothing else.
                        assert!(
                            core.is_drained(),
                            "seed {seed} step {step}: a read released with batches in flight"
                        );
                        counts.reads += batch.reads.len() as u64;
                        let durable = core.failed_at().unwrap_or(durable_now);
                        if let Some(engine) = core.engine() {
                            assert_eq!(
                                engine.snapshot(),
                                reference.at(&history, durable).snapshot(),
                                "seed {seed} step {step}: a read would see state that is not the durable prefix"
                            );
                        }
                    }
                }
                if core.is_failed() {
                    assert!(matches!(status.readiness(0), Readiness::Failed(_)));
                } else if core.refusal().is_some() {
                    assert!(matches!(status.readiness(0), Readiness::Full(_)));
                    counts.full += u64::from(!was_refusing);
                }
                // Drained: the engine is exactly the durable prefix (what reads see,
                // failures included).
                if core.is_drained() {
                    let durable = core.failed_at().unwrap_or(core.durable_seq());
                    match core.engine() {
                        Some(engine) => assert_eq!(
                            engine.snapshot(),
                            reference.at(&history, durable).snapshot(),
                            "seed {seed} step {step}: drained, yet the engine is not the durable prefix"
                        ),
                        None => counts.rebuild_failures += u64::from(core.is_failed()),
                    }
                }
                // The server's off-path snapshot: encoded at a durable seq (the follower's
                // state), its file written through another storage handle some steps later,
                // while appends go on, taken in by the core, the obsolete files deleted
                // later still.
                if off_path {
                    if let Some((seq, bytes)) = staged.take_if(|_| rng.random_bool(0.5)) {
                        let faults = rng.random_bool(0.2);
                        let mut writer = faulty(&storage, &mut rng, faults);
                        if stage.as_ref().is_some_and(LogStage::has_written) {
                            counts.snapshot_racing_append += 1;
                        }
                        match wal::write_snapshot_file(&mut writer, seq, &bytes) {
                            Ok(()) => {
                                counts.off_path_snapshots += 1;
                                snapshots.0.lock().done.push(seq);
                            }
                            Err(_) => counts.faults += 1,
                        }
                    }
                    let removals = std::mem::take(&mut snapshots.0.lock().remove);
                    for names in removals {
                        if rng.random_bool(0.5) {
                            snapshots.0.lock().remove.push(names);
                            continue;
                        }
                        let faults = rng.random_bool(0.2);
                        let mut remover = faulty(&storage, &mut rng, faults);
                        match wal::remove_files(&mut remover, &names) {
                            Ok(()) => counts.off_path_removed += 1,
                            Err(_) => counts.faults += 1,
                        }
                    }
                    if core.is_drained()
                        && core.refusal().is_none()
                        && staged.is_none()
                        && core.durable_seq() > 0
                        && rng.random_bool(0.2)
                    {
                        let engine = core.engine().expect("serving");
                        staged = Some((core.durable_seq(), engine.snapshot()));
                    }
                }
                let injected = core.wal().storage().injected();
                match core.maintain() {
                    Maintenance::Nothing => {}
                    Maintenance::Adopted(_) => counts.off_path_adopted += 1,
                    Maintenance::Written(_) => counts.snapshots += 1,
                    Maintenance::WriteFailed(error) => {
                        // Only an injected I/O error may fail a snapshot (one at the last
                        // seq is valid: the core is drained and serving, so every record is
                        // durable).
                        assert!(
                            matches!(error, wal::Error::Io { .. })
                                && core.wal().storage().injected() > injected,
                            "seed {seed}: a snapshot failed without an injected fault: {error}"
                        );
                        counts.snapshot_faults += 1;
                    }
                }
            }
        }
        let crash = rng.random_bool(0.02) || (core.is_failed() && rng.random_bool(0.1));
        if !crash {
            continue;
        }
        // A crash at this point of the pipeline: batches decided and not written, written
        // and not synced, synced and not released, all lost with the process.
        counts.crashes += 1;
        if stage.as_ref().is_some_and(LogStage::has_written) {
            counts.crash_written_unsynced += 1;
        } else if stage.as_ref().is_some_and(LogStage::has_queued) {
            counts.crash_queued += 1;
        } else if !core.is_drained() {
            counts.crash_durable_unreleased += 1;
        }
        let tear = match rng.random_range(0..3) {
            0 => TearMode::DropUnsynced,
            1 => TearMode::KeepPrefix(rng.random()),
            _ => TearMode::GarbleTail(rng.random()),
        };
        // What the log had made durable, and every seq handed to the storage.
        let durable = core.wal().durable_seq();
        let written = core.wal().last_seq();
        let appended = history.len() as u64;
        drop(stage);
        drop(core);
        storage.crash(tear);
        (core, stage, status) = recover(&storage, &mut rng, every, depth, counts);
        let last = core.wal().last_seq();
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
                 durable seq {durable} (written {written}, decided {appended})"
            );
        } else {
            assert!(
                durable <= last,
                "seed {seed}: {tear:?}: recovered seq {last} below the durable {durable}"
            );
        }
        if durable < written {
            if tear == TearMode::DropUnsynced {
                counts.unsynced_dropped += 1;
            } else {
                counts.unsynced_torn += 1;
                counts.torn_kept_records += u64::from(last > durable);
            }
        }
        let recovered = core.engine().expect("a recovered core serves");
        recovered.check_invariants();
        assert_eq!(
            recovered.snapshot(),
            reference.at(&history, last).snapshot(),
            "seed {seed}: state is the replay of the recovered prefix"
        );
        let lost_event = recovered.event("sim").is_none();
        history.truncate(last as usize);
        acknowledged = last;
        sent.clear();
        // The writer's work in progress is gone with the process (a snapshot file already
        // renamed into place may be on disk: recovery above used it if it was the newest).
        staged = None;
        snapshots = SimSnapshots::default();
        if off_path {
            core.set_snapshot_source(Box::new(snapshots.clone()));
        }
        if lost_event {
            pending.push(sim_event());
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
fn the_shard_core_survives_crashes_and_io_errors_under_seeded_simulation() {
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
        "simulation of the shard core: {} seeds (replay one with BOXOFFICE_SEED=n), {} crashes, \
         {} I/O faults, {} decisions acknowledged and recovered; {} batches released durable, \
         {} failed batches all 503 ({} with other batches in flight), {} commands refused \
         while failed or full, {} times full ({} resumed), {} rebuilds failed; {} reads on \
         the durable state; pipeline: at most {} batches in flight, {} decides waited for \
         it, {} grouped writes, {} syncs with later batches in flight; crashes with batches \
         queued {}, written and unsynced {}, durable and unreleased {}; {} holds expired \
         ahead of commands; {} snapshots written by the core, {} failed by an injected \
         fault; {} written off its path ({} while a write awaited its sync), {} taken in, {} \
         removals; {} crashes with unsynced records dropped (recovered exactly the durable \
         prefix), {} torn ({} kept records past the durable seq)",
        seeds.len(),
        counts.crashes,
        counts.faults,
        counts.acknowledged,
        counts.acknowledged_batches,
        counts.failed_batches,
        counts.failed_later_in_flight,
        counts.refused_commands,
        counts.full,
        counts.resumed,
        counts.rebuild_failures,
        counts.reads,
        counts.max_in_flight,
        counts.pipeline_full,
        counts.grouped,
        counts.synced_with_later_in_flight,
        counts.crash_queued,
        counts.crash_written_unsynced,
        counts.crash_durable_unreleased,
        counts.expired,
        counts.snapshots,
        counts.snapshot_faults,
        counts.off_path_snapshots,
        counts.snapshot_racing_append,
        counts.off_path_adopted,
        counts.off_path_removed,
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
        let paths = [
            ("failed batches", counts.failed_batches),
            ("refused commands", counts.refused_commands),
            ("full logs", counts.full),
            ("resumed writes", counts.resumed),
            ("failed rebuilds", counts.rebuild_failures),
            ("expiries", counts.expired),
            ("core snapshots", counts.snapshots),
            ("core snapshot faults", counts.snapshot_faults),
            ("off-path snapshots", counts.off_path_snapshots),
            ("off-path adoptions", counts.off_path_adopted),
            ("off-path removals", counts.off_path_removed),
            ("dropped unsynced records", counts.unsynced_dropped),
            ("torn unsynced records", counts.unsynced_torn),
            ("reads", counts.reads),
            ("a full pipeline", counts.pipeline_full),
            ("grouped writes", counts.grouped),
            (
                "syncs with later batches in flight",
                counts.synced_with_later_in_flight,
            ),
            (
                "failures with later batches in flight",
                counts.failed_later_in_flight,
            ),
            ("crashes with batches queued", counts.crash_queued),
            (
                "crashes between write and sync",
                counts.crash_written_unsynced,
            ),
            (
                "crashes with durable batches unreleased",
                counts.crash_durable_unreleased,
            ),
            ("snapshots racing appends", counts.snapshot_racing_append),
        ];
        let missed: Vec<&str> = paths
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(what, _)| *what)
            .collect();
        assert!(missed.is_empty(), "paths never exercised: {missed:?}");
    }
}
