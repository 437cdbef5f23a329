//! The engine's bytes, pinned: histories of decisions and the snapshot they lead to,
//! written once and checked in, one folder per history under `tests/data/`
//! (`v1/`: decision format 1 and snapshot format 1, every variant of format 1). Every
//! decision must decode and re-encode byte for byte, replaying a history must give its
//! snapshot byte for byte, and the snapshot must restore and pass `check_invariants()`.
//! A change of a decision's or of the state's serialized shape (a field added to
//! `Section` or `Hold`, a variant reordered) fails here instead of silently changing a
//! format.
//!
//! New decision variants are appended to the enum; pin them with a new history folder
//! beside `v1/` (its `decision-NN.bin` files and `snapshot.bin`), never by rewriting
//! existing files. `v1/` was written by
//! `cargo test -p boxoffice-engine --test compat -- --ignored write_format_1_files`;
//! `refused/` (a [`Decision::Refused`]) by `... --ignored write_refused_files`.

use std::path::{Path, PathBuf};

use engine::*;

/// Shard of the engine that wrote the files (its ids carry it: `h-3-1`).
const SHARD: u16 = 3;
const T0: u64 = 1_764_000_000_000;

/// The variants of decision format 1 that the files must cover, at least.
const VARIANTS: [&str; 7] = [
    "EventCreated",
    "HoldPlaced",
    "Purchased",
    "HoldConfirmed",
    "HoldReleased",
    "HoldExpired",
    "BookingCancelled",
];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1")
}

/// Every checked-in history folder.
fn histories() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data_dir().parent().unwrap())
        .expect("tests/data is checked in")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.contains(&data_dir()), "tests/data/v1 is checked in");
    dirs
}

/// The decision files of a history in order (`decision-NN.bin`).
fn decision_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a history folder")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("decision-") && n.ends_with(".bin"))
        })
        .collect();
    files.sort();
    files
}

/// The variant's name, from its Debug form (`HoldPlaced { .. }` or `HoldPlaced(..)`).
fn variant(decision: &Decision) -> String {
    format!("{decision:?}")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn idem(key: &str, fingerprint: u64) -> Option<Idempotency> {
    Some(Idempotency {
        key: key.into(),
        fingerprint,
    })
}

fn user(id: &str) -> Actor {
    Actor::User(id.into())
}

fn hold(
    actor: Actor,
    event: &str,
    user_id: &str,
    items: &[(&str, u32)],
    seats: &[&str],
) -> NewHold {
    NewHold {
        actor,
        event_id: event.into(),
        user_id: user_id.into(),
        items: items
            .iter()
            .map(|&(s, q)| ItemRequest {
                section_id: s.into(),
                qty: q,
            })
            .collect(),
        seats: seats.iter().map(|s| s.to_string()).collect(),
        ttl_ms: None,
        payment_ref: None,
        idempotency: None,
    }
}

/// Decides and applies `command` at `now`; the decision.
fn step(engine: &mut Engine, command: Command, now: u64) -> Decision {
    match engine.decide(&command, now) {
        Ok(Decided::Change(decision)) => {
            engine.apply(&decision);
            engine.check_invariants();
            decision
        }
        other => panic!("{command:?}: {other:?}"),
    }
}

/// A shard's history touching every variant: GA and seated events (one with an
/// idempotency key), holds for a new and a known user, a purchase, a confirm, a release,
/// an expiry and a cancel.
fn history() -> (Vec<Decision>, Engine) {
    let mut engine = Engine::new(SHARD);
    let mut out = Vec::new();
    let section = |id: &str, price_cents: u64, layout: Layout| NewSection {
        id: Some(id.into()),
        name: format!("Section {id}"),
        price_cents,
        layout,
    };
    out.push(step(
        &mut engine,
        Command::CreateEvent(NewEvent {
            id: "open-air".into(),
            name: "Open air".into(),
            starts_at_ms: Some(1_780_000_000_000),
            max_per_user: Some(6),
            hold_ttl_ms: Some(120_000),
            sections: vec![section("lawn", 2500, Layout::General { capacity: 500 })],
            idempotency: idem("create-open-air", 0x1234_5678_9abc_def0),
        }),
        T0,
    ));
    out.push(step(
        &mut engine,
        Command::CreateEvent(NewEvent {
            id: "hall".into(),
            name: "Concert hall".into(),
            starts_at_ms: None,
            max_per_user: None,
            hold_ttl_ms: None,
            sections: vec![
                section(
                    "stalls",
                    9000,
                    Layout::Seated {
                        rows: vec![
                            NewRow {
                                label: "A".into(),
                                count: 12,
                            },
                            NewRow {
                                label: "B".into(),
                                count: 10,
                            },
                        ],
                    },
                ),
                section("standing", 3000, Layout::General { capacity: 80 }),
            ],
            idempotency: None,
        }),
        T0 + 1,
    ));
    // alice is new; then known.
    let mut first = hold(user("alice"), "open-air", "alice", &[("lawn", 2)], &[]);
    first.idempotency = idem("hold-1", 42);
    out.push(step(&mut engine, Command::PlaceHold(first), T0 + 10));
    let mut seats = hold(
        user("alice"),
        "hall",
        "alice",
        &[("standing", 1)],
        &["A-11", "A-12"],
    );
    seats.ttl_ms = Some(5_000);
    out.push(step(&mut engine, Command::PlaceHold(seats), T0 + 20));
    let mut bought = hold(Actor::Admin, "hall", "bob", &[], &["B-1"]);
    bought.payment_ref = Some("psp-778".into());
    bought.idempotency = idem("buy-1", 7);
    out.push(step(&mut engine, Command::Purchase(bought), T0 + 30));
    out.push(step(
        &mut engine,
        Command::ConfirmHold {
            actor: user("alice"),
            hold_id: HoldId::new(SHARD, 1),
            payment_ref: Some("psp-779".into()),
            idempotency: idem("confirm-1", 8),
        },
        T0 + 40,
    ));
    let other = hold(user("carol"), "open-air", "carol", &[("lawn", 1)], &[]);
    out.push(step(&mut engine, Command::PlaceHold(other), T0 + 50));
    out.push(step(
        &mut engine,
        Command::ReleaseHold {
            actor: user("carol"),
            hold_id: HoldId::new(SHARD, 4),
            idempotency: idem("release-1", 9),
        },
        T0 + 60,
    ));
    let expiries = engine.decide_expiry(T0 + 10_000, 16);
    assert_eq!(expiries.len(), 1, "the 5 s seat hold expires");
    for decision in expiries {
        engine.apply(&decision);
        out.push(decision);
    }
    out.push(step(
        &mut engine,
        Command::CancelBooking {
            actor: Actor::Admin,
            booking_id: BookingId::new(SHARD, 2),
            idempotency: idem("cancel-1", 10),
        },
        T0 + 20_000,
    ));
    (out, engine)
}

#[test]
#[ignore = "writes the checked-in files once; never rewrite them"]
fn write_format_1_files() {
    write_history(&data_dir(), history());
}

/// Writes a history's decision files and the snapshot it leads to into `dir`.
fn write_history(dir: &Path, (decisions, engine): (Vec<Decision>, Engine)) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, decision) in decisions.iter().enumerate() {
        let mut bytes = Vec::new();
        decision.encode(&mut bytes);
        std::fs::write(dir.join(format!("decision-{:02}.bin", i + 1)), bytes).unwrap();
    }
    std::fs::write(dir.join("snapshot.bin"), engine.snapshot()).unwrap();
}

fn refused_dir() -> PathBuf {
    data_dir().with_file_name("refused")
}

/// A history that ends in [`Decision::Refused`]: a one-ticket section sold out, then a
/// hold with a key refused (remembered with it), then the sale's ticket back.
fn refused_history() -> (Vec<Decision>, Engine) {
    let mut engine = Engine::new(SHARD);
    let mut out = Vec::new();
    out.push(step(
        &mut engine,
        Command::CreateEvent(NewEvent {
            id: "club".into(),
            name: "Club night".into(),
            starts_at_ms: None,
            max_per_user: None,
            hold_ttl_ms: None,
            sections: vec![NewSection {
                id: Some("floor".into()),
                name: "Floor".into(),
                price_cents: 1500,
                layout: Layout::General { capacity: 1 },
            }],
            idempotency: None,
        }),
        T0,
    ));
    let first = hold(user("alice"), "club", "alice", &[("floor", 1)], &[]);
    out.push(step(&mut engine, Command::PlaceHold(first), T0 + 10));
    let mut refused = hold(user("bob"), "club", "bob", &[("floor", 1)], &[]);
    refused.idempotency = idem("bob-try-1", 99);
    out.push(step(&mut engine, Command::PlaceHold(refused), T0 + 20));
    out.push(step(
        &mut engine,
        Command::ReleaseHold {
            actor: user("alice"),
            hold_id: HoldId::new(SHARD, 1),
            idempotency: None,
        },
        T0 + 30,
    ));
    (out, engine)
}

#[test]
#[ignore = "writes the checked-in files once; never rewrite them"]
fn write_refused_files() {
    write_history(&refused_dir(), refused_history());
}

#[test]
fn the_refused_history_still_decides_the_same_and_its_snapshot_replays_the_refusal() {
    let (decisions, _) = refused_history();
    assert_eq!(variant(&decisions[2]), "Refused");
    // A refusal and a snapshot holding one carry versions an earlier release refuses by
    // number (2 and 3), not as damage.
    let mut bytes = Vec::new();
    decisions[2].encode(&mut bytes);
    assert_eq!(bytes[0], 2, "a refusal's decision version");
    let snapshot = std::fs::read(refused_dir().join("snapshot.bin")).unwrap();
    assert_eq!(
        snapshot[0], 3,
        "the snapshot version of keys that remember refusals"
    );
    let files = decision_files(&refused_dir());
    assert_eq!(decisions.len(), files.len());
    for (decision, path) in decisions.iter().zip(&files) {
        let mut bytes = Vec::new();
        decision.encode(&mut bytes);
        assert_eq!(bytes, std::fs::read(path).unwrap(), "{}", path.display());
    }
    // The restored engine answers bob's retry with the refusal, though a ticket is free.
    let snapshot = std::fs::read(refused_dir().join("snapshot.bin")).unwrap();
    let engine = Engine::restore(&snapshot).expect("restores");
    let mut retry = hold(user("bob"), "club", "bob", &[("floor", 1)], &[]);
    retry.idempotency = idem("bob-try-1", 99);
    assert_eq!(
        engine.decide(&Command::PlaceHold(retry.clone()), T0 + 40),
        Err(Rejection::SoldOut {
            section_id: "floor".into(),
            available: 0
        })
    );
    retry.idempotency = idem("bob-try-2", 99);
    assert!(matches!(
        engine.decide(&Command::PlaceHold(retry), T0 + 40),
        Ok(Decided::Change(Decision::HoldPlaced(_)))
    ));
}

#[test]
fn every_checked_in_decision_decodes_and_reencodes_byte_equal() {
    let mut seen = std::collections::BTreeSet::new();
    for dir in histories() {
        let files = decision_files(&dir);
        assert!(!files.is_empty(), "no decision files in {}", dir.display());
        check_files(&files, &mut seen);
    }
    for name in VARIANTS.iter().chain(&["Refused"]) {
        assert!(seen.contains(*name), "no checked-in {name}: {seen:?}");
    }
}

fn check_files(files: &[PathBuf], seen: &mut std::collections::BTreeSet<String>) {
    for path in files {
        let bytes = std::fs::read(path).unwrap();
        let decision =
            Decision::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut again = Vec::new();
        decision.encode(&mut again);
        assert_eq!(again, bytes, "{} re-encodes differently", path.display());
        seen.insert(variant(&decision));
    }
}

#[test]
fn replaying_each_history_gives_its_checked_in_snapshot() {
    for dir in histories() {
        let snapshot = std::fs::read(dir.join("snapshot.bin")).unwrap();
        let shard = Engine::restore(&snapshot)
            .expect("the snapshot restores")
            .shard();
        let mut engine = Engine::new(shard);
        for path in decision_files(&dir) {
            let decision = Decision::decode(&std::fs::read(&path).unwrap()).unwrap();
            engine.apply(&decision);
            engine.check_invariants();
        }
        assert!(
            engine.snapshot() == snapshot,
            "{}: replay gives other snapshot bytes than the checked-in ones",
            dir.display()
        );
    }
}

#[test]
fn every_checked_in_snapshot_restores_and_keeps_its_invariants() {
    for dir in histories() {
        let snapshot = std::fs::read(dir.join("snapshot.bin")).unwrap();
        let engine =
            Engine::restore(&snapshot).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        engine.check_invariants();
        assert!(
            engine.snapshot() == snapshot,
            "{}: restore and snapshot change bytes",
            dir.display()
        );
    }
}

#[test]
fn the_format_1_snapshot_holds_what_its_history_left() {
    let snapshot = std::fs::read(data_dir().join("snapshot.bin")).unwrap();
    let engine = Engine::restore(&snapshot).expect("the format 1 snapshot restores");
    assert_eq!(engine.shard(), SHARD);
    // What the history left, read through the engine's views.
    let hall = engine.event("hall").expect("the hall is there");
    let sold: u32 = hall.sections.iter().map(|s| s.sold).sum();
    assert_eq!(sold, 1, "bob's B-1");
    let open_air = engine.event("open-air").expect("the open air is there");
    assert_eq!(
        open_air.sections[0].sold, 0,
        "alice's booking was cancelled"
    );
    assert_eq!(open_air.sections[0].held, 0);
}

#[test]
fn the_history_that_wrote_the_files_still_decides_the_same() {
    // Not a format check: if the rules changed, the files stay as written (they are
    // history), and this test says the scenario no longer reproduces them.
    let (decisions, _) = history();
    let files = decision_files(&data_dir());
    assert_eq!(decisions.len(), files.len());
    for (decision, path) in decisions.iter().zip(&files) {
        let mut bytes = Vec::new();
        decision.encode(&mut bytes);
        assert_eq!(bytes, std::fs::read(path).unwrap(), "{}", path.display());
    }
}
