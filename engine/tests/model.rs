//! Property test: random command sequences with clock advances, against a tiny counting
//! model. After every step the engine's invariants hold and its counts equal the model's;
//! at the end, replaying the logged decisions into a fresh engine gives the same snapshot
//! bytes, and a snapshot restores to an equal engine.

use engine::decision::{HoldConfirmed, HoldExpired, HoldPlaced, Purchased};
use engine::*;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;
const GA_CAPACITY: u32 = 12;
const SEATS: usize = 6; // rows A and B of three seats
const MAX_PER_USER: u32 = 5;
const USERS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Place {
        user: usize,
        qty: u32,
        seats: Vec<usize>,
        ttl_s: u64,
        purchase: bool,
    },
    Confirm {
        pick: usize,
        by_owner: bool,
    },
    Release {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Advance {
        ms: u64,
    },
    Expire {
        max: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..USERS, 0..4u32, proptest::collection::vec(0..SEATS, 0..3), 1..5u64, any::<bool>())
            .prop_map(|(user, qty, seats, ttl_s, purchase)| Op::Place { user, qty, seats, ttl_s, purchase }),
        2 => (any::<usize>(), prop::bool::weighted(0.9)).prop_map(|(pick, by_owner)| Op::Confirm { pick, by_owner }),
        1 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        2 => (0..3_000u64).prop_map(|ms| Op::Advance { ms }),
        1 => (1..4usize).prop_map(|max| Op::Expire { max }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Held,
    Confirmed,
    Released,
    Expired,
}

#[derive(Clone, Debug)]
struct MHold {
    id: HoldId,
    user: usize,
    qty: u32,
    seats: Vec<usize>,
    expires: u64,
    status: St,
}

#[derive(Default)]
struct Model {
    ga_held: u32,
    ga_sold: u32,
    seats: [u8; SEATS], // 0 free, 1 held, 2 sold
    per_user: [u32; USERS],
    holds: Vec<MHold>,
    bookings: Vec<(BookingId, usize, bool)>, // (id, hold index, active)
}

fn seat_name(i: usize) -> String {
    format!("{}-{}", if i < 3 { "A" } else { "B" }, i % 3 + 1)
}

fn user(i: usize) -> String {
    format!("user{i}")
}

fn create(engine: &mut Engine, log: &mut Vec<Vec<u8>>) {
    let command = Command::CreateEvent(NewEvent {
        id: "show".into(),
        name: "Show".into(),
        starts_at_ms: None,
        max_per_user: Some(MAX_PER_USER),
        hold_ttl_ms: None,
        sections: vec![
            NewSection {
                id: Some("ga".into()),
                name: "GA".into(),
                price_cents: 10,
                layout: Layout::General {
                    capacity: GA_CAPACITY,
                },
            },
            NewSection {
                id: Some("tier".into()),
                name: "Tier".into(),
                price_cents: 25,
                layout: Layout::Seated {
                    rows: vec![
                        NewRow {
                            label: "A".into(),
                            count: 3,
                        },
                        NewRow {
                            label: "B".into(),
                            count: 3,
                        },
                    ],
                },
            },
        ],
        idempotency: None,
    });
    let Decided::Change(d) = engine.decide(&command, T0).unwrap() else {
        panic!()
    };
    commit(engine, &d, log);
}

fn commit(engine: &mut Engine, d: &Decision, log: &mut Vec<Vec<u8>>) {
    let mut buf = Vec::new();
    d.encode(&mut buf);
    log.push(buf);
    engine.apply(d);
}

fn step(engine: &mut Engine, model: &mut Model, log: &mut Vec<Vec<u8>>, now: &mut u64, op: &Op) {
    match op {
        Op::Advance { ms } => *now += ms,
        Op::Expire { max } => {
            let decisions = engine.decide_expiry(*now, *max);
            let mut due: Vec<usize> = (0..model.holds.len())
                .filter(|&i| model.holds[i].status == St::Held && model.holds[i].expires <= *now)
                .collect();
            due.sort_by_key(|&i| (model.holds[i].expires, model.holds[i].id));
            assert_eq!(decisions.len(), due.len().min(*max));
            for (d, &i) in decisions.iter().zip(&due) {
                assert!(
                    matches!(d, Decision::HoldExpired(HoldExpired { hold, .. }) if *hold == model.holds[i].id)
                );
                commit(engine, d, log);
                end_hold(model, i, St::Expired);
            }
        }
        Op::Place {
            user: u,
            qty,
            seats,
            ttl_s,
            purchase,
        } => {
            let mut wanted = seats.clone();
            wanted.dedup();
            let hold = NewHold {
                actor: Actor::User(user(*u)),
                event_id: "show".into(),
                user_id: user(*u),
                items: if *qty > 0 {
                    vec![ItemRequest {
                        section_id: "ga".into(),
                        qty: *qty,
                    }]
                } else {
                    vec![]
                },
                seats: wanted.iter().map(|&s| seat_name(s)).collect(),
                ttl_ms: Some(ttl_s * 1000),
                payment_ref: None,
                idempotency: None,
            };
            let tickets = qty + wanted.len() as u32;
            let has_duplicate = {
                let mut s = wanted.clone();
                s.sort();
                s.windows(2).any(|w| w[0] == w[1])
            };
            let expected: Result<(), &str> = if tickets == 0 || has_duplicate {
                Err("invalid_input")
            } else if model.per_user[*u] + tickets > MAX_PER_USER {
                Err("limit_exceeded")
            } else if wanted.iter().any(|&s| model.seats[s] != 0) {
                Err("seat_taken")
            } else if *qty > GA_CAPACITY - model.ga_held - model.ga_sold {
                Err("sold_out")
            } else {
                Ok(())
            };
            let command = if *purchase {
                Command::Purchase(hold)
            } else {
                Command::PlaceHold(hold)
            };
            match (engine.decide(&command, *now), expected) {
                (Ok(Decided::Change(d)), Ok(())) => {
                    commit(engine, &d, log);
                    let id = match &d {
                        Decision::HoldPlaced(HoldPlaced { hold, .. })
                        | Decision::Purchased(Purchased { hold, .. }) => *hold,
                        other => panic!("{other:?}"),
                    };
                    model.per_user[*u] += tickets;
                    model.holds.push(MHold {
                        id,
                        user: *u,
                        qty: *qty,
                        seats: wanted.clone(),
                        expires: *now + ttl_s * 1000,
                        status: St::Held,
                    });
                    model.ga_held += qty;
                    for &s in &wanted {
                        model.seats[s] = 1;
                    }
                    if let Decision::Purchased(Purchased { booking, .. }) = d {
                        confirm_model(model, model.holds.len() - 1, booking);
                    }
                }
                (Err(r), Err(code)) => assert_eq!(r.code(), code, "{op:?}"),
                (got, want) => panic!("{op:?}: engine {got:?}, model {want:?}"),
            }
        }
        Op::Confirm { pick, .. } | Op::Release { pick } if !model.holds.is_empty() => {
            let i = pick % model.holds.len();
            let h = model.holds[i].clone();
            let by_owner = !matches!(
                op,
                Op::Confirm {
                    by_owner: false,
                    ..
                }
            );
            let actor = if by_owner {
                Actor::User(user(h.user))
            } else {
                Actor::User(user((h.user + 1) % USERS))
            };
            let confirm = matches!(op, Op::Confirm { .. });
            let command = if confirm {
                Command::ConfirmHold {
                    actor,
                    hold_id: h.id,
                    payment_ref: None,
                    idempotency: None,
                }
            } else {
                Command::ReleaseHold {
                    actor,
                    hold_id: h.id,
                    idempotency: None,
                }
            };
            let expected = if !by_owner {
                Err("not_found")
            } else {
                match h.status {
                    St::Held if *now >= h.expires => Err("hold_expired"),
                    St::Held => Ok(()),
                    St::Expired => Err("hold_expired"),
                    St::Confirmed | St::Released => Err("hold_not_active"),
                }
            };
            match (engine.decide(&command, *now), expected) {
                (Ok(Decided::Change(d)), Ok(())) => {
                    commit(engine, &d, log);
                    match d {
                        Decision::HoldConfirmed(HoldConfirmed { booking, .. }) => {
                            confirm_model(model, i, booking)
                        }
                        Decision::HoldReleased(_) => end_hold(model, i, St::Released),
                        other => panic!("{other:?}"),
                    }
                }
                (Err(r), Err(code)) => assert_eq!(r.code(), code, "{op:?}"),
                (got, want) => panic!("{op:?}: engine {got:?}, model {want:?}"),
            }
        }
        Op::Cancel { pick } if !model.bookings.is_empty() => {
            let b = pick % model.bookings.len();
            let (id, hold, active) = model.bookings[b];
            let owner = model.holds[hold].user;
            let command = Command::CancelBooking {
                actor: Actor::User(user(owner)),
                booking_id: id,
                idempotency: None,
            };
            match (engine.decide(&command, *now), active) {
                (Ok(Decided::Change(d)), true) => {
                    commit(engine, &d, log);
                    model.bookings[b].2 = false;
                    let h = model.holds[hold].clone();
                    model.ga_sold -= h.qty;
                    for &s in &h.seats {
                        model.seats[s] = 0;
                    }
                    model.per_user[h.user] -= h.qty + h.seats.len() as u32;
                }
                (Err(Rejection::BookingNotActive), false) => {}
                (got, active) => panic!("cancel: engine {got:?}, model active {active}"),
            }
        }
        Op::Confirm { .. } | Op::Release { .. } | Op::Cancel { .. } => {}
    }
}

fn confirm_model(model: &mut Model, i: usize, booking: BookingId) {
    let h = &mut model.holds[i];
    h.status = St::Confirmed;
    model.ga_held -= h.qty;
    model.ga_sold += h.qty;
    for &s in &h.seats {
        model.seats[s] = 2;
    }
    model.bookings.push((booking, i, true));
}

fn end_hold(model: &mut Model, i: usize, status: St) {
    let h = &mut model.holds[i];
    assert_eq!(h.status, St::Held);
    h.status = status;
    model.ga_held -= h.qty;
    for &s in &h.seats {
        model.seats[s] = 0;
    }
    model.per_user[h.user] -= h.qty + h.seats.len() as u32;
}

fn agree(engine: &Engine, model: &Model) {
    let event = engine.event("show").unwrap();
    let ga = &event.sections[0];
    assert_eq!(
        (ga.held, ga.sold, ga.available),
        (
            model.ga_held,
            model.ga_sold,
            GA_CAPACITY - model.ga_held - model.ga_sold
        )
    );
    let map = engine.seat_map("show").unwrap();
    let statuses: Vec<u8> = map.sections[0]
        .rows
        .iter()
        .flat_map(|r| r.seats.iter())
        .map(|s| match s {
            SeatStatus::Free => 0,
            SeatStatus::Held => 1,
            SeatStatus::Sold => 2,
        })
        .collect();
    assert_eq!(statuses, model.seats.to_vec());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_counting_model(ops in proptest::collection::vec(op(), 1..=200)) {
        let mut engine = Engine::new(2);
        let mut model = Model::default();
        let mut log = Vec::new();
        let mut now = T0;
        create(&mut engine, &mut log);
        for op in &ops {
            step(&mut engine, &mut model, &mut log, &mut now, op);
            engine.check_invariants();
            agree(&engine, &model);
        }
        let mut replayed = Engine::new(2);
        for record in &log {
            replayed.apply(&Decision::decode(record).unwrap());
        }
        replayed.check_invariants();
        prop_assert_eq!(replayed.snapshot(), engine.snapshot());
        let restored = Engine::restore(&engine.snapshot()).unwrap();
        prop_assert_eq!(restored.snapshot(), engine.snapshot());
        // The snapshot writer's copy encodes to the same bytes, whatever its buffer's start.
        let copy = engine.snapshot_copy();
        prop_assert_eq!(copy.encode(), engine.snapshot());
        prop_assert_eq!(copy.encode_with_capacity(3), engine.snapshot());
    }
}

// ---- sale-day operations: best available, extensions, waiting lists ----
//
// Random sequences over a small event (GA of 6, two rows of 4 seats, max 4 per user, an
// offer TTL of 2 s) mixing best-available holds and purchases, confirms, releases,
// cancellations, extensions, waiting-list joins and leaves, clock advances and expiry
// (asked for until none is due, as the shard does). Every answer is checked against what
// the operation allows, every success against its contract (an extension's new expiry, a
// join's position), and after every step `check_invariants` holds: invariants 1, 2 and 7
// with set-aside tickets counted as held, and the waiting-list invariants (set-aside ≤
// held, nothing on sale while a fitting entry waits, offers of exactly qty, one live entry
// per user per event, strict join order). At the end replay and restore give the same
// bytes.

#[derive(Clone, Debug)]
enum SaleOp {
    Place {
        user: usize,
        ga: u32,
        best: u32,
        split: bool,
        purchase: bool,
    },
    Confirm {
        hold: u64,
    },
    Release {
        hold: u64,
    },
    Cancel {
        booking: u64,
    },
    Extend {
        hold: u64,
        ttl_s: u64,
    },
    Join {
        user: usize,
        seated: bool,
        qty: u32,
    },
    Leave {
        entry: u64,
    },
    Advance {
        ms: u64,
    },
    Expire,
}

fn sale_op() -> impl Strategy<Value = SaleOp> {
    prop_oneof![
        4 => (0..6usize, 0..3u32, 0..4u32, any::<bool>(), any::<bool>())
            .prop_map(|(user, ga, best, split, purchase)| SaleOp::Place { user, ga, best, split, purchase }),
        2 => (1..40u64).prop_map(|hold| SaleOp::Confirm { hold }),
        1 => (1..40u64).prop_map(|hold| SaleOp::Release { hold }),
        2 => (1..30u64).prop_map(|booking| SaleOp::Cancel { booking }),
        1 => (1..40u64, 1..8_000u64).prop_map(|(hold, ttl_s)| SaleOp::Extend { hold, ttl_s }),
        3 => (0..6usize, any::<bool>(), 1..5u32).prop_map(|(user, seated, qty)| SaleOp::Join { user, seated, qty }),
        1 => (1..20u64).prop_map(|entry| SaleOp::Leave { entry }),
        2 => (0..2_500u64).prop_map(|ms| SaleOp::Advance { ms }),
        1 => Just(SaleOp::Expire),
    ]
}

fn sale_event(engine: &mut Engine, log: &mut Vec<Vec<u8>>) {
    let command = Command::CreateEventWith(
        NewEvent {
            id: "show".into(),
            name: "Show".into(),
            starts_at_ms: None,
            max_per_user: Some(4),
            hold_ttl_ms: Some(3_000),
            sections: vec![
                NewSection {
                    id: Some("ga".into()),
                    name: "GA".into(),
                    price_cents: 100,
                    layout: Layout::General { capacity: 6 },
                },
                NewSection {
                    id: Some("hall".into()),
                    name: "Hall".into(),
                    price_cents: 300,
                    layout: Layout::Seated {
                        rows: ["A", "B"]
                            .iter()
                            .map(|l| NewRow {
                                label: l.to_string(),
                                count: 4,
                            })
                            .collect(),
                    },
                },
            ],
            idempotency: None,
        },
        EventOptions {
            offer_ttl_ms: Some(2_000),
        },
    );
    let Ok(Decided::Change(d)) = engine.decide(&command, T0) else {
        panic!()
    };
    commit(engine, &d, log);
}

/// Decides and applies; the rejection code on refusal.
fn attempt(
    engine: &mut Engine,
    log: &mut Vec<Vec<u8>>,
    command: &Command,
    now: u64,
) -> Result<Output, &'static str> {
    let mut record = Vec::new();
    let executed = engine.execute(command, now, &mut record);
    if executed.decision.is_some() {
        log.push(record);
    }
    executed.output.map_err(|r| r.code())
}

fn sale_step(engine: &mut Engine, log: &mut Vec<Vec<u8>>, now: &mut u64, op: &SaleOp) {
    let check = |result: &Result<Output, &'static str>, allowed: &[&str]| {
        if let Err(code) = result {
            assert!(allowed.contains(code), "{op:?}: {code}");
        }
    };
    match *op {
        SaleOp::Advance { ms } => *now += ms,
        SaleOp::Expire => loop {
            let due = engine.decide_expiry(*now, 3);
            if due.is_empty() {
                break;
            }
            for d in &due {
                commit(engine, d, log);
                engine.check_invariants();
            }
        },
        SaleOp::Place {
            user: u,
            ga,
            best,
            split,
            purchase,
        } => {
            let hold = NewHold {
                actor: Actor::Admin,
                event_id: "show".into(),
                user_id: user(u),
                items: if ga > 0 {
                    vec![ItemRequest {
                        section_id: "ga".into(),
                        qty: ga,
                    }]
                } else {
                    vec![]
                },
                seats: vec![],
                ttl_ms: None,
                payment_ref: None,
                idempotency: None,
            };
            let command = match (best, purchase) {
                (0, false) => Command::PlaceHold(hold),
                (0, true) => Command::Purchase(hold),
                (qty, p) => {
                    let b = Box::new(BestAvailable {
                        section_id: None,
                        qty,
                        allow_split: split,
                    });
                    if p {
                        Command::PurchaseBest(hold, b)
                    } else {
                        Command::PlaceHoldBest(hold, b)
                    }
                }
            };
            let result = attempt(engine, log, &command, *now);
            check(
                &result,
                &[
                    "invalid_input",
                    "limit_exceeded",
                    "sold_out",
                    "no_adjacent_seats",
                ],
            );
            if let Ok(Output::Hold(h)) = &result {
                assert_eq!(h.seats.len() as u32, best);
            }
        }
        SaleOp::Confirm { hold } => {
            let command = Command::ConfirmHold {
                actor: Actor::Admin,
                hold_id: HoldId::new(2, hold),
                payment_ref: None,
                idempotency: None,
            };
            let result = attempt(engine, log, &command, *now);
            check(&result, &["not_found", "hold_expired", "hold_not_active"]);
        }
        SaleOp::Release { hold } => {
            let command = Command::ReleaseHold {
                actor: Actor::Admin,
                hold_id: HoldId::new(2, hold),
                idempotency: None,
            };
            let result = attempt(engine, log, &command, *now);
            check(&result, &["not_found", "hold_expired", "hold_not_active"]);
        }
        SaleOp::Cancel { booking } => {
            let command = Command::CancelBooking {
                actor: Actor::Admin,
                booking_id: BookingId::new(2, booking),
                idempotency: None,
            };
            let result = attempt(engine, log, &command, *now);
            check(&result, &["not_found", "booking_not_active"]);
        }
        SaleOp::Extend { hold, ttl_s } => {
            let id = HoldId::new(2, hold);
            let before = engine.hold(id, &Actor::Admin, *now);
            let command = Command::ExtendHold {
                actor: Actor::Admin,
                hold_id: id,
                ttl_ms: ttl_s * 1000,
                idempotency: None,
            };
            let result = attempt(engine, log, &command, *now);
            check(
                &result,
                &[
                    "not_found",
                    "hold_expired",
                    "hold_not_active",
                    "extension_limit",
                ],
            );
            match (&result, before) {
                (Ok(Output::Hold(h)), Ok(b)) => {
                    assert_eq!(h.expires_at_ms, *now + ttl_s * 1000);
                    assert!(h.expires_at_ms <= b.created_at_ms + limits::HOLD_LIFETIME_MS_MAX);
                }
                (Err("extension_limit"), Ok(b)) => {
                    assert!(*now + ttl_s * 1000 > b.created_at_ms + limits::HOLD_LIFETIME_MS_MAX);
                }
                _ => {}
            }
        }
        SaleOp::Join {
            user: u,
            seated,
            qty,
        } => {
            let section = if seated { "hall" } else { "ga" };
            let command = Command::JoinWaitlist(NewEntry {
                actor: Actor::Admin,
                event_id: "show".into(),
                user_id: user(u),
                section_id: section.into(),
                qty,
                idempotency: None,
            });
            let result = attempt(engine, log, &command, *now);
            check(&result, &["already_waiting", "tickets_available"]);
            if let Ok(Output::Entry(e)) = &result {
                let s = engine
                    .event("show")
                    .unwrap()
                    .sections
                    .into_iter()
                    .find(|s| s.id == section)
                    .unwrap();
                assert_eq!(e.status, EntryStatus::Waiting);
                assert_eq!(e.position, Some(s.waiting), "a new entry is last");
                assert!(s.available < qty);
            }
        }
        SaleOp::Leave { entry } => {
            let command = Command::LeaveWaitlist {
                actor: Actor::Admin,
                entry_id: EntryId::new(2, entry),
                idempotency: None,
            };
            let result = attempt(engine, log, &command, *now);
            check(&result, &["not_found", "entry_not_active"]);
            if let Ok(Output::Entry(e)) = &result {
                assert_eq!(e.status, EntryStatus::Left);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn sale_day_operations_keep_every_invariant_and_replay_equal(ops in proptest::collection::vec(sale_op(), 1..=150)) {
        let mut engine = Engine::new(2);
        let mut log = Vec::new();
        let mut now = T0;
        sale_event(&mut engine, &mut log);
        for op in &ops {
            sale_step(&mut engine, &mut log, &mut now, op);
            engine.check_invariants();
        }
        let mut replayed = Engine::new(2);
        for record in &log {
            replayed.apply(&Decision::decode(record).unwrap());
        }
        replayed.check_invariants();
        prop_assert_eq!(replayed.snapshot(), engine.snapshot());
        let restored = Engine::restore(&engine.snapshot()).unwrap();
        restored.check_invariants();
        prop_assert_eq!(restored.snapshot(), engine.snapshot());
        let copy = engine.snapshot_copy();
        prop_assert_eq!(copy.encode_with_capacity(1 << 16), engine.snapshot());
    }
}
