//! Scenario tests that read like the stories they tell. Time is moved by hand.

use engine::decision::{EventCreated, HoldExpired};
use engine::*;

const T0: u64 = 1_700_000_000_000;

fn admin_event(
    engine: &mut Engine,
    id: &str,
    max_per_user: Option<u32>,
    layout: Vec<(&str, Layout)>,
) {
    let command = Command::CreateEvent(NewEvent {
        id: id.into(),
        name: "Show".into(),
        starts_at_ms: None,
        max_per_user,
        hold_ttl_ms: Some(60_000),
        sections: layout
            .into_iter()
            .map(|(sid, layout)| NewSection {
                id: Some(sid.into()),
                name: sid.into(),
                price_cents: 1000,
                layout,
            })
            .collect(),
        idempotency: None,
    });
    run(engine, &command, T0).expect("event created");
}

fn ga(capacity: u32) -> Layout {
    Layout::General { capacity }
}

fn rows(spec: &[(&str, u32)]) -> Layout {
    Layout::Seated {
        rows: spec
            .iter()
            .map(|&(l, c)| NewRow {
                label: l.into(),
                count: c,
            })
            .collect(),
    }
}

/// decide + apply, invariants checked, output returned.
fn run(engine: &mut Engine, command: &Command, now: u64) -> Result<Output, Rejection> {
    let result = engine.execute(command, now, &mut Vec::new()).output;
    engine.check_invariants();
    result
}

fn hold_cmd(user: &str, items: &[(&str, u32)], seats: &[&str]) -> NewHold {
    NewHold {
        actor: Actor::User(user.into()),
        event_id: "show".into(),
        user_id: user.into(),
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

fn place(
    engine: &mut Engine,
    user: &str,
    items: &[(&str, u32)],
    seats: &[&str],
    now: u64,
) -> Result<HoldView, Rejection> {
    match run(
        engine,
        &Command::PlaceHold(hold_cmd(user, items, seats)),
        now,
    )? {
        Output::Hold(h) => Ok(h),
        other => panic!("{other:?}"),
    }
}

fn confirm(
    engine: &mut Engine,
    user: &str,
    hold: HoldId,
    now: u64,
) -> Result<BookingView, Rejection> {
    let command = Command::ConfirmHold {
        actor: Actor::User(user.into()),
        hold_id: hold,
        payment_ref: None,
        idempotency: None,
    };
    match run(engine, &command, now)? {
        Output::Booking(b) => Ok(b),
        other => panic!("{other:?}"),
    }
}

fn section(engine: &Engine, id: &str) -> SectionView {
    engine
        .event("show")
        .unwrap()
        .sections
        .into_iter()
        .find(|s| s.id == id)
        .unwrap()
}

#[test]
fn sell_out() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(5))]);
    let mut won = 0;
    let mut sold_out = 0;
    for buyer in 0..20 {
        match place(
            &mut e,
            &format!("u{buyer}"),
            &[("floor", 1)],
            &[],
            T0 + buyer,
        ) {
            Ok(_) => won += 1,
            Err(Rejection::SoldOut { available: 0, .. }) => sold_out += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((won, sold_out), (5, 15));
    let floor = section(&e, "floor");
    assert_eq!((floor.available, floor.held, floor.sold), (0, 5, 0));
}

#[test]
fn seat_conflict() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("tier", rows(&[("A", 10)]))]);
    place(&mut e, "alice", &[], &["A-3"], T0).unwrap();
    assert_eq!(
        place(&mut e, "bob", &[], &["A-3"], T0 + 1),
        Err(Rejection::SeatTaken { seat: "A-3".into() })
    );
    let map = e.seat_map("show").unwrap();
    assert_eq!(map.sections[0].rows[0].seats[2], SeatStatus::Held);
}

#[test]
fn multi_seat_partial_conflict_changes_nothing() {
    let mut e = Engine::new(0);
    admin_event(
        &mut e,
        "show",
        None,
        vec![("tier", rows(&[("A", 10)])), ("floor", ga(10))],
    );
    place(&mut e, "alice", &[], &["A-5"], T0).unwrap();
    let before = e.snapshot();
    let refused = place(
        &mut e,
        "bob",
        &[("floor", 2)],
        &["A-4", "A-5", "A-6"],
        T0 + 1,
    );
    assert_eq!(refused, Err(Rejection::SeatTaken { seat: "A-5".into() }));
    assert_eq!(e.snapshot(), before, "a refused hold changes nothing");
}

#[test]
fn expire_then_confirm() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(2))]);
    let hold = place(&mut e, "alice", &[("floor", 2)], &[], T0).unwrap();
    assert_eq!(hold.expires_at_ms, T0 + 60_000);
    // Before the sweep: the read says expired and the confirm is refused.
    let due = T0 + 60_000;
    assert_eq!(
        e.hold(hold.id, &Actor::User("alice".into()), due)
            .unwrap()
            .status,
        HoldStatus::Expired
    );
    assert_eq!(
        confirm(&mut e, "alice", hold.id, due),
        Err(Rejection::HoldExpired)
    );
    // The sweep returns the inventory, and the confirm is still refused.
    let expiries = e.decide_expiry(due, 10);
    assert_eq!(expiries.len(), 1);
    for d in &expiries {
        e.apply(d);
    }
    e.check_invariants();
    assert_eq!(section(&e, "floor").available, 2);
    assert_eq!(
        confirm(&mut e, "alice", hold.id, due + 1),
        Err(Rejection::HoldExpired)
    );
    assert_eq!(e.next_expiry_ms(), None);
}

#[test]
fn expire_due_applies_every_due_expiry_and_hands_each_on() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(100))]);
    for i in 0..5 {
        let mut cmd = hold_cmd(&format!("u{i}"), &[("floor", 1)], &[]);
        cmd.ttl_ms = Some(1_000 + i * 1_000);
        run(&mut e, &Command::PlaceHold(cmd), T0).unwrap();
    }
    let mut tally = Tally::default();
    let mut handed = Vec::new();
    let expired = e.expire_due(T0 + 3_000, |d| {
        tally.count(d);
        handed.push(d.clone());
    });
    assert_eq!(expired, 3, "the holds due by then, no more");
    assert_eq!(handed.len(), 3);
    assert_eq!(
        tally,
        Tally {
            expired: 3,
            ..Tally::default()
        }
    );
    e.check_invariants();
    assert_eq!(section(&e, "floor").available, 98, "5 held, 3 back");
    assert_eq!(e.next_expiry_ms(), Some(T0 + 4_000));
    assert_eq!(e.expire_due(T0 + 3_000, |_| panic!("nothing due")), 0);
}

#[test]
fn expiry_is_bounded_and_earliest_first() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(100))]);
    for i in 0..10 {
        let mut cmd = hold_cmd(&format!("u{i}"), &[("floor", 1)], &[]);
        cmd.ttl_ms = Some(10_000 - i * 100);
        run(&mut e, &Command::PlaceHold(cmd), T0).unwrap();
    }
    let batch = e.decide_expiry(T0 + 10_000, 3);
    assert_eq!(batch.len(), 3);
    let ids: Vec<u64> = batch
        .iter()
        .map(|d| match d {
            Decision::HoldExpired(HoldExpired { hold, .. }) => hold.counter(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![10, 9, 8], "the earliest expiry first");
}

#[test]
fn idempotent_retry() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(10))]);
    let mut cmd = hold_cmd("alice", &[("floor", 2)], &[]);
    cmd.idempotency = Some(Idempotency {
        key: "k1".into(),
        fingerprint: 7,
    });
    let first = run(&mut e, &Command::PlaceHold(cmd.clone()), T0).unwrap();
    let decided = e.decide(&Command::PlaceHold(cmd.clone()), T0 + 5).unwrap();
    assert_eq!(
        decided,
        Decided::Remembered(first),
        "the retry gets the first answer and logs nothing"
    );
    assert_eq!(section(&e, "floor").held, 2);
    cmd.idempotency = Some(Idempotency {
        key: "k1".into(),
        fingerprint: 8,
    });
    assert_eq!(
        e.decide(&Command::PlaceHold(cmd.clone()), T0 + 6),
        Err(Rejection::IdempotencyKeyReused)
    );
    // Another user's same key is another key.
    let mut bob = hold_cmd("bob", &[("floor", 1)], &[]);
    bob.idempotency = Some(Idempotency {
        key: "k1".into(),
        fingerprint: 8,
    });
    assert!(run(&mut e, &Command::PlaceHold(bob), T0 + 7).is_ok());
    // After 24 h the key is forgotten.
    let later = T0 + limits::IDEMPOTENCY_RETENTION_MS + 1;
    assert!(matches!(
        e.decide(&Command::PlaceHold(cmd), later),
        Ok(Decided::Change(_))
    ));
}

fn keyed(mut cmd: NewHold, key: &str, fingerprint: u64) -> Command {
    cmd.idempotency = Some(Idempotency {
        key: key.into(),
        fingerprint,
    });
    Command::PlaceHold(cmd)
}

#[test]
fn a_keyed_refusal_is_remembered_logged_and_forgotten_after_24_h() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(1))]);
    let alice = place(&mut e, "alice", &[("floor", 1)], &[], T0).unwrap();
    let bob = keyed(hold_cmd("bob", &[("floor", 1)], &[]), "k1", 7);
    let sold_out = Rejection::SoldOut {
        section_id: "floor".into(),
        available: 0,
    };
    let mut record = Vec::new();
    let first = e.execute(&bob, T0 + 1, &mut record);
    assert_eq!(first.output, Err(sold_out.clone()));
    assert!(
        matches!(first.decision, Some(Decision::Refused(_))),
        "a keyed sold-out is a decision, to log: {:?}",
        first.decision
    );
    assert_eq!(Decision::decode(&record).unwrap(), first.decision.unwrap());
    e.check_invariants();
    // The ticket comes back; the retry still gets the first answer, and logs nothing.
    let release = Command::ReleaseHold {
        actor: Actor::User("alice".into()),
        hold_id: alice.id,
        idempotency: None,
    };
    run(&mut e, &release, T0 + 2).unwrap();
    assert_eq!(section(&e, "floor").available, 1);
    let retry = e.execute(&bob, T0 + 3, &mut Vec::new());
    assert_eq!(
        (retry.output, retry.decision),
        (Err(sold_out.clone()), None)
    );
    // The key with another request is reused; without a key the same request is new.
    let other = keyed(hold_cmd("bob", &[("floor", 1)], &[]), "k1", 8);
    assert_eq!(
        e.decide(&other, T0 + 4),
        Err(Rejection::IdempotencyKeyReused)
    );
    // An unlogged refusal stays unlogged: a bad request with a key changes nothing.
    let bad = keyed(hold_cmd("bob", &[("floor", 0)], &[]), "k2", 9);
    let refused = e.execute(&bad, T0 + 4, &mut Vec::new());
    assert!(refused.output.is_err() && refused.decision.is_none());
    // After 24 h the refusal is forgotten: the retry is decided afresh, and succeeds.
    let later = T0 + 1 + limits::IDEMPOTENCY_RETENTION_MS;
    assert!(matches!(
        run(&mut e, &bob, later),
        Ok(Output::Hold(h)) if h.user_id == "bob"
    ));
}

#[test]
fn a_log_that_decided_a_remembered_key_again_replays_with_each_key_in_one_place() {
    // An earlier release forgot expired keys after recording a new one, so its log can
    // hold a decision whose key is still remembered: replay must keep one recording.
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(10))]);
    let refused = |key: &str, at_ms| {
        Decision::Refused(Refused {
            at_ms,
            idem: Box::new(IdemTag {
                scope: IdemScope::User("bob".into()),
                key: key.into(),
                fingerprint: 7,
            }),
            refusal: Refusal::SoldOut {
                section_id: "floor".into(),
                available: 0,
            },
        })
    };
    let later = T0 + limits::IDEMPOTENCY_RETENTION_MS;
    // A success, then the same key decided again at the same moment (as a refusal).
    run(
        &mut e,
        &keyed(hold_cmd("bob", &[("floor", 1)], &[]), "s", 7),
        later,
    )
    .unwrap();
    e.apply(&refused("s", later));
    e.check_invariants();
    // A refusal decided twice, the second time with the key still remembered.
    e.apply(&refused("r", later));
    e.apply(&refused("r", later + 1));
    e.check_invariants();
    let again = keyed(hold_cmd("bob", &[("floor", 1)], &[]), "s", 7);
    assert!(
        e.decide(&again, later + 2).is_err(),
        "the last recording answers"
    );
}

#[test]
fn refusals_are_counted_apart_and_never_push_out_a_success() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(1))]);
    let bought = keyed(hold_cmd("alice", &[("floor", 1)], &[]), "buy", 1);
    let first = run(&mut e, &bought, T0).unwrap();
    let mut record = Vec::new();
    let n = limits::IDEMPOTENCY_REFUSALS_MAX + 1;
    for i in 0..n {
        let cmd = keyed(hold_cmd("bob", &[("floor", 1)], &[]), &format!("r{i}"), 2);
        record.clear();
        let executed = e.execute(&cmd, T0 + 1, &mut record);
        assert!(executed.output.is_err() && executed.decision.is_some());
    }
    e.check_invariants();
    // The purchase's key outlived a million refusals after it.
    assert_eq!(
        e.decide(&bought, T0 + 2),
        Ok(Decided::Remembered(first)),
        "the success is still remembered"
    );
    // The oldest refusal went first ("r0" sorts first at the same time), the newest stays.
    let r0 = keyed(hold_cmd("bob", &[("floor", 1)], &[]), "r0", 2);
    assert!(matches!(
        e.decide(&r0, T0 + 2),
        Ok(Decided::Change(Decision::Refused(_)))
    ));
    let last = keyed(
        hold_cmd("bob", &[("floor", 1)], &[]),
        &format!("r{}", n - 1),
        2,
    );
    assert!(
        e.decide(&last, T0 + 2).is_err(),
        "the newest refusal is remembered"
    );
}

#[test]
fn cap_reached() {
    let mut e = Engine::new(0);
    admin_event(
        &mut e,
        "show",
        Some(4),
        vec![("floor", ga(100)), ("tier", rows(&[("A", 10)]))],
    );
    place(&mut e, "alice", &[("floor", 3)], &[], T0).unwrap();
    assert_eq!(
        place(&mut e, "alice", &[], &["A-1", "A-2"], T0 + 1),
        Err(Rejection::LimitExceeded {
            max_per_user: 4,
            current: 3
        })
    );
    place(&mut e, "alice", &[], &["A-1"], T0 + 2).unwrap();
    assert!(
        place(&mut e, "bob", &[("floor", 4)], &[], T0 + 3).is_ok(),
        "the cap is per user"
    );
}

#[test]
fn cancel_and_resell() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", Some(2), vec![("tier", rows(&[("A", 2)]))]);
    let hold = place(&mut e, "alice", &[], &["A-1", "A-2"], T0).unwrap();
    let booking = confirm(&mut e, "alice", hold.id, T0 + 1).unwrap();
    assert_eq!(booking.seats, vec!["A-1", "A-2"]);
    assert_eq!(
        place(&mut e, "bob", &[], &["A-1"], T0 + 2),
        Err(Rejection::SeatTaken { seat: "A-1".into() })
    );
    let cancel = Command::CancelBooking {
        actor: Actor::User("alice".into()),
        booking_id: booking.id,
        idempotency: None,
    };
    let Output::Booking(cancelled) = run(&mut e, &cancel, T0 + 3).unwrap() else {
        panic!()
    };
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(
        run(&mut e, &cancel, T0 + 4),
        Err(Rejection::BookingNotActive)
    );
    assert!(
        place(&mut e, "bob", &[], &["A-1"], T0 + 5).is_ok(),
        "cancelled seats are back on sale"
    );
    assert!(
        place(&mut e, "alice", &[], &["A-2"], T0 + 6).is_ok(),
        "cancelling gave the cap back"
    );
}

#[test]
fn confirm_and_release_rules() {
    let mut e = Engine::new(3);
    admin_event(&mut e, "show", None, vec![("floor", ga(10))]);
    let hold = place(&mut e, "alice", &[("floor", 1)], &[], T0).unwrap();
    assert_eq!(hold.id.shard(), 3, "ids carry the shard");
    assert_eq!(
        confirm(&mut e, "bob", hold.id, T0),
        Err(Rejection::NotFound { what: "hold" }),
        "not yours"
    );
    let booking = confirm(&mut e, "alice", hold.id, T0 + 1).unwrap();
    assert_eq!(booking.hold_id, hold.id);
    assert_eq!(
        confirm(&mut e, "alice", hold.id, T0 + 2),
        Err(Rejection::HoldNotActive {
            status: "confirmed"
        })
    );
    let second = place(&mut e, "alice", &[("floor", 1)], &[], T0 + 3).unwrap();
    let release = Command::ReleaseHold {
        actor: Actor::User("alice".into()),
        hold_id: second.id,
        idempotency: None,
    };
    run(&mut e, &release, T0 + 4).unwrap();
    assert_eq!(
        run(&mut e, &release, T0 + 5),
        Err(Rejection::HoldNotActive { status: "released" })
    );
    assert_eq!(
        confirm(&mut e, "alice", second.id, T0 + 6),
        Err(Rejection::HoldNotActive { status: "released" })
    );
    assert_eq!(section(&e, "floor").sold, 1);
    assert_eq!(section(&e, "floor").held, 0);
}

#[test]
fn purchase_is_one_decision() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(3))]);
    let mut cmd = hold_cmd("alice", &[("floor", 3)], &[]);
    cmd.payment_ref = Some("pay_1".into());
    let Decided::Change(decision) = e.decide(&Command::Purchase(cmd), T0).unwrap() else {
        panic!()
    };
    assert!(matches!(decision, Decision::Purchased(_)));
    e.apply(&decision);
    e.check_invariants();
    let floor = section(&e, "floor");
    assert_eq!((floor.available, floor.held, floor.sold), (0, 0, 3));
}

#[test]
fn bookings_page_newest_first() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(100))]);
    for i in 0..5u64 {
        let mut cmd = hold_cmd("alice", &[("floor", 1)], &[]);
        cmd.payment_ref = Some(format!("p{i}"));
        run(&mut e, &Command::Purchase(cmd), T0 + i).unwrap();
    }
    let page = e.bookings(&BookingQuery {
        user_id: Some("alice".into()),
        limit: 2,
        ..Default::default()
    });
    assert_eq!(
        page.iter().map(|b| b.id.counter()).collect::<Vec<_>>(),
        vec![5, 4]
    );
    let last = &page[1];
    let next = e.bookings(&BookingQuery {
        event_id: Some("show".into()),
        before: Some((last.created_at_ms, last.id)),
        limit: 10,
        ..Default::default()
    });
    assert_eq!(
        next.iter().map(|b| b.id.counter()).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert!(e
        .bookings(&BookingQuery {
            user_id: Some("nobody".into()),
            limit: 10,
            ..Default::default()
        })
        .is_empty());
}

#[test]
fn every_invalid_input_names_its_field() {
    let mut e = Engine::new(0);
    admin_event(
        &mut e,
        "show",
        None,
        vec![("floor", ga(10)), ("tier", rows(&[("A", 5)]))],
    );
    let field = |r: Result<HoldView, Rejection>| match r {
        Err(Rejection::InvalidInput { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(place(&mut e, "alice", &[], &[], T0)), "items");
    assert_eq!(
        field(place(&mut e, "alice", &[("floor", 0)], &[], T0)),
        "items[0].qty"
    );
    assert_eq!(
        field(place(&mut e, "alice", &[("nope", 1)], &[], T0)),
        "items[0].section_id"
    );
    assert_eq!(
        field(place(&mut e, "alice", &[("tier", 1)], &[], T0)),
        "items[0].section_id"
    );
    assert_eq!(
        field(place(
            &mut e,
            "alice",
            &[("floor", 1), ("floor", 1)],
            &[],
            T0
        )),
        "items[1].section_id"
    );
    assert_eq!(field(place(&mut e, "alice", &[], &["A-6"], T0)), "seats[0]");
    assert_eq!(
        field(place(&mut e, "alice", &[], &["A-01"], T0)),
        "seats[0]"
    );
    assert_eq!(
        field(place(&mut e, "alice", &[], &["A-1", "A-1"], T0)),
        "seats[1]"
    );
    assert_eq!(
        field(place(&mut e, "bad\u{7}user", &[("floor", 1)], &[], T0)),
        "user_id"
    );
    let mut long = hold_cmd("alice", &[("floor", 1)], &[]);
    long.ttl_ms = Some(limits::HOLD_TTL_MS_MAX + 1);
    assert!(
        matches!(e.decide(&Command::PlaceHold(long), T0), Err(Rejection::InvalidInput { field, .. }) if field == "ttl_seconds")
    );
    let missing = hold_cmd("alice", &[("floor", 1)], &[]);
    let missing = NewHold {
        event_id: "nope".into(),
        ..missing
    };
    assert_eq!(
        e.decide(&Command::PlaceHold(missing), T0),
        Err(Rejection::NotFound { what: "event" })
    );
}

#[test]
fn event_validation_names_fields() {
    let e = Engine::new(0);
    let base = NewEvent {
        id: "ok".into(),
        name: "Show".into(),
        starts_at_ms: None,
        max_per_user: None,
        hold_ttl_ms: None,
        sections: vec![NewSection {
            id: None,
            name: "GA".into(),
            price_cents: 1,
            layout: ga(1),
        }],
        idempotency: None,
    };
    let field = |ev: NewEvent| match e.decide(&Command::CreateEvent(ev), T0) {
        Err(Rejection::InvalidInput { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(NewEvent {
            id: "a b".into(),
            ..base.clone()
        }),
        "id"
    );
    assert_eq!(
        field(NewEvent {
            name: " ".into(),
            ..base.clone()
        }),
        "name"
    );
    assert_eq!(
        field(NewEvent {
            sections: vec![],
            ..base.clone()
        }),
        "sections"
    );
    assert_eq!(
        field(NewEvent {
            hold_ttl_ms: Some(0),
            ..base.clone()
        }),
        "hold_ttl_seconds"
    );
    assert_eq!(
        field(NewEvent {
            max_per_user: Some(0),
            ..base.clone()
        }),
        "max_per_user"
    );
    let two = vec![
        NewSection {
            id: Some("x".into()),
            name: "A".into(),
            price_cents: 1,
            layout: rows(&[("A", 1)]),
        },
        NewSection {
            id: Some("y".into()),
            name: "B".into(),
            price_cents: 1,
            layout: rows(&[("A", 1)]),
        },
    ];
    assert_eq!(
        field(NewEvent {
            sections: two,
            ..base.clone()
        }),
        "sections[1].seats.rows[0].label"
    );
    let zero = vec![NewSection {
        id: None,
        name: "A".into(),
        price_cents: 1,
        layout: ga(0),
    }];
    assert_eq!(
        field(NewEvent {
            sections: zero,
            ..base.clone()
        }),
        "sections[0].capacity"
    );
    let Decided::Change(Decision::EventCreated(EventCreated { event, .. })) =
        e.decide(&Command::CreateEvent(base), T0).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        event.sections[0].id, "s1",
        "section ids default by position"
    );
}

#[test]
fn snapshots_round_trip_and_decisions_replay() {
    let mut e = Engine::new(1);
    let mut log = Vec::new();
    let apply = |e: &mut Engine, d: Decision, log: &mut Vec<Vec<u8>>| {
        let mut buf = Vec::new();
        d.encode(&mut buf);
        log.push(buf);
        e.apply(&d);
    };
    let create = Command::CreateEvent(NewEvent {
        id: "show".into(),
        name: "Show".into(),
        starts_at_ms: Some(-5),
        max_per_user: Some(9),
        hold_ttl_ms: None,
        sections: vec![NewSection {
            id: None,
            name: "T".into(),
            price_cents: 5,
            layout: rows(&[("A", 3), ("B", 3)]),
        }],
        idempotency: Some(Idempotency {
            key: "c".into(),
            fingerprint: 1,
        }),
    });
    let Decided::Change(d) = e.decide(&create, T0).unwrap() else {
        panic!()
    };
    apply(&mut e, d, &mut log);
    let Decided::Change(d) = e
        .decide(
            &Command::PlaceHold(hold_cmd("alice", &[], &["B-2"])),
            T0 + 1,
        )
        .unwrap()
    else {
        panic!()
    };
    apply(&mut e, d, &mut log);
    let restored = Engine::restore(&e.snapshot()).unwrap();
    assert_eq!(restored.snapshot(), e.snapshot());
    restored.check_invariants();
    let mut replayed = Engine::new(1);
    for record in &log {
        replayed.apply(&Decision::decode(record).unwrap());
    }
    assert_eq!(replayed.snapshot(), e.snapshot());
    assert!(Decision::decode(&[9, 1, 2]).is_err());
    assert!(Engine::restore(&[1, 0xff]).is_err());
}

#[test]
fn ownership() {
    let mut e = Engine::new(0);
    admin_event(&mut e, "show", None, vec![("floor", ga(10))]);
    let hold = place(&mut e, "alice", &[("floor", 1)], &[], T0).unwrap();
    let bob = Actor::User("bob".into());
    let not_found = Rejection::NotFound { what: "hold" };
    // Bob cannot read, confirm or release Alice's hold: it does not exist for him.
    assert_eq!(e.hold(hold.id, &bob, T0).unwrap_err(), not_found);
    assert_eq!(confirm(&mut e, "bob", hold.id, T0).unwrap_err(), not_found);
    let release = Command::ReleaseHold {
        actor: bob.clone(),
        hold_id: hold.id,
        idempotency: None,
    };
    assert_eq!(run(&mut e, &release, T0).unwrap_err(), not_found);
    // The admin may read it; Alice confirms it.
    assert_eq!(e.hold(hold.id, &Actor::Admin, T0).unwrap().user_id, "alice");
    let booking = confirm(&mut e, "alice", hold.id, T0 + 1).unwrap();
    // Bob cannot read or cancel Alice's booking, nor list it.
    let no_booking = Rejection::NotFound { what: "booking" };
    assert_eq!(e.booking(booking.id, &bob).unwrap_err(), no_booking);
    let cancel = Command::CancelBooking {
        actor: bob,
        booking_id: booking.id,
        idempotency: None,
    };
    assert_eq!(run(&mut e, &cancel, T0 + 2).unwrap_err(), no_booking);
    let bobs = e.bookings(&BookingQuery {
        user_id: Some("bob".into()),
        limit: 10,
        ..BookingQuery::default()
    });
    assert!(bobs.is_empty());
    // An id of another shard is not found either.
    assert_eq!(
        e.hold(HoldId::new(1, hold.id.counter()), &Actor::Admin, T0)
            .unwrap_err(),
        not_found
    );
    e.check_invariants();
}
