//! Sale-day scenarios: hold extension, best available, the waiting list. Time is moved
//! by hand; invariants are checked after every step, and a replay of the log (and a
//! restore from a snapshot) must give the same state.

use engine::*;

const T0: u64 = 1_700_000_000_000;

/// An engine that records its log, checks invariants after every decision, and can
/// prove that replay and snapshot rebuild the same state.
struct Shard {
    engine: Engine,
    log: Vec<Vec<u8>>,
}

impl Shard {
    fn new() -> Self {
        Shard {
            engine: Engine::new(0),
            log: Vec::new(),
        }
    }

    fn run(&mut self, command: &Command, now: u64) -> Result<Output, Rejection> {
        let mut record = Vec::new();
        let executed = self.engine.execute(command, now, &mut record);
        if let Some(d) = &executed.decision {
            self.log(d, record);
        }
        executed.output
    }

    fn apply(&mut self, d: &Decision) {
        self.engine.apply(d);
        let mut buf = Vec::new();
        d.encode(&mut buf);
        self.log(d, buf);
    }

    /// Logs an applied decision's record, which must decode to it.
    fn log(&mut self, d: &Decision, record: Vec<u8>) {
        assert_eq!(&Decision::decode(&record).expect("decodes"), d);
        self.log.push(record);
        self.engine.check_invariants();
    }

    /// Expires everything due at `now`, one decision at a time as the shard does.
    fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        loop {
            let batch = self.engine.decide_expiry(now, 16);
            if batch.is_empty() {
                return n;
            }
            for d in &batch {
                self.apply(d);
                n += 1;
            }
        }
    }

    /// Replay of the log and restore of a snapshot both give this state.
    fn check_rebuilds(&self) {
        let mut replayed = Engine::new(0);
        for bytes in &self.log {
            replayed.apply(&Decision::decode(bytes).expect("decodes"));
        }
        replayed.check_invariants();
        assert_eq!(replayed.snapshot(), self.engine.snapshot(), "replay");
        let restored = Engine::restore(&self.engine.snapshot()).expect("restores");
        restored.check_invariants();
        assert_eq!(restored.snapshot(), self.engine.snapshot(), "restore");
    }
}

fn event(shard: &mut Shard, max_per_user: Option<u32>, layout: Vec<(&str, Layout)>) {
    let command = Command::CreateEvent(new_event(max_per_user, layout));
    shard.run(&command, T0).expect("event created");
}

fn new_event(max_per_user: Option<u32>, layout: Vec<(&str, Layout)>) -> NewEvent {
    NewEvent {
        id: "show".into(),
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
    }
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

fn hold(shard: &mut Shard, user: &str, items: &[(&str, u32)], now: u64) -> HoldView {
    match shard.run(&Command::PlaceHold(hold_cmd(user, items, &[])), now) {
        Ok(Output::Hold(h)) => h,
        other => panic!("hold refused: {other:?}"),
    }
}

fn extend(
    shard: &mut Shard,
    user: &str,
    hold: HoldId,
    ttl_ms: u64,
    now: u64,
) -> Result<Output, Rejection> {
    shard.run(
        &Command::ExtendHold {
            actor: Actor::User(user.into()),
            hold_id: hold,
            ttl_ms,
            idempotency: None,
        },
        now,
    )
}

fn section(shard: &Shard, id: &str) -> SectionView {
    shard
        .engine
        .event("show")
        .expect("event")
        .sections
        .into_iter()
        .find(|s| s.id == id)
        .expect("section")
}

// ---- hold extension ----

#[test]
fn an_extended_hold_outlives_its_first_expiry_and_the_expiry_index_follows() {
    let mut s = Shard::new();
    event(&mut s, None, vec![("ga", ga(10))]);
    let h = hold(&mut s, "ann", &[("ga", 2)], T0);
    assert_eq!(h.expires_at_ms, T0 + 60_000);
    let Ok(Output::Hold(extended)) = extend(&mut s, "ann", h.id, 600_000, T0 + 30_000) else {
        panic!("extension refused");
    };
    assert_eq!(extended.expires_at_ms, T0 + 630_000);
    assert_eq!(s.engine.next_expiry_ms(), Some(T0 + 630_000));
    // The old expiry time passes: nothing expires.
    assert_eq!(s.expire(T0 + 61_000), 0);
    assert_eq!(section(&s, "ga").held, 2);
    // Shortening works too, and the hold then expires at the new time.
    let Ok(Output::Hold(shorter)) = extend(&mut s, "ann", h.id, 5_000, T0 + 100_000) else {
        panic!("shortening refused");
    };
    assert_eq!(shorter.expires_at_ms, T0 + 105_000);
    assert_eq!(s.expire(T0 + 104_999), 0);
    assert_eq!(s.expire(T0 + 105_000), 1);
    assert_eq!(section(&s, "ga").held, 0);
    s.check_rebuilds();
}

#[test]
fn extension_is_capped_at_two_hours_from_creation_and_needs_a_live_hold() {
    let mut s = Shard::new();
    event(&mut s, None, vec![("ga", ga(10))]);
    let h = hold(&mut s, "ann", &[("ga", 1)], T0);
    // Up to created_at + 2 h exactly is fine; a millisecond more is extension_limit.
    let at = T0 + 30_000;
    assert!(extend(&mut s, "ann", h.id, 7_170_000, at).is_ok());
    let err = extend(&mut s, "ann", h.id, 7_170_001, at).unwrap_err();
    assert_eq!(err.code(), "extension_limit");
    // Bad TTLs are invalid input naming the field.
    let err = extend(&mut s, "ann", h.id, 0, at).unwrap_err();
    assert_eq!(
        err,
        Rejection::invalid("ttl_seconds", "from 1 to 86400 seconds")
    );
    // Another user's hold is not found.
    assert_eq!(
        extend(&mut s, "bob", h.id, 1_000, at).unwrap_err().code(),
        "not_found"
    );
    // Released: hold_not_active; expired: hold_expired.
    let r = hold(&mut s, "ann", &[("ga", 1)], at);
    s.run(
        &Command::ReleaseHold {
            actor: Actor::User("ann".into()),
            hold_id: r.id,
            idempotency: None,
        },
        at,
    )
    .unwrap();
    assert_eq!(
        extend(&mut s, "ann", r.id, 1_000, at).unwrap_err().code(),
        "hold_not_active"
    );
    let late = T0 + 7_200_000;
    assert_eq!(
        extend(&mut s, "ann", h.id, 1_000, late).unwrap_err().code(),
        "hold_expired"
    );
    s.check_rebuilds();
}

// ---- the waiting list ----

fn event_with_offers(
    shard: &mut Shard,
    max_per_user: Option<u32>,
    offer_ttl_ms: u64,
    layout: Vec<(&str, Layout)>,
) {
    let command = Command::CreateEventWith(
        new_event(max_per_user, layout),
        EventOptions {
            offer_ttl_ms: Some(offer_ttl_ms),
        },
    );
    shard.run(&command, T0).expect("event created");
}

fn buy(
    shard: &mut Shard,
    user: &str,
    items: &[(&str, u32)],
    seats: &[&str],
    now: u64,
) -> BookingView {
    match shard.run(&Command::Purchase(hold_cmd(user, items, seats)), now) {
        Ok(Output::Booking(b)) => b,
        other => panic!("purchase refused: {other:?}"),
    }
}

fn cancel(shard: &mut Shard, booking: BookingId, now: u64) {
    shard
        .run(
            &Command::CancelBooking {
                actor: Actor::Admin,
                booking_id: booking,
                idempotency: None,
            },
            now,
        )
        .expect("cancelled");
}

fn try_join(
    shard: &mut Shard,
    user: &str,
    section: &str,
    qty: u32,
    now: u64,
) -> Result<EntryView, Rejection> {
    let command = Command::JoinWaitlist(NewEntry {
        actor: Actor::User(user.into()),
        event_id: "show".into(),
        user_id: user.into(),
        section_id: section.into(),
        qty,
        idempotency: None,
    });
    match shard.run(&command, now)? {
        Output::Entry(e) => Ok(e),
        other => panic!("a join answered {other:?}"),
    }
}

fn join(shard: &mut Shard, user: &str, section: &str, qty: u32, now: u64) -> EntryView {
    try_join(shard, user, section, qty, now).expect("joined")
}

fn entry(shard: &Shard, id: EntryId, now: u64) -> EntryView {
    shard
        .engine
        .waitlist_entry(id, &Actor::Admin, now)
        .expect("entry")
}

fn leave(shard: &mut Shard, user: &str, id: EntryId, now: u64) -> Result<EntryView, Rejection> {
    let command = Command::LeaveWaitlist {
        actor: Actor::User(user.into()),
        entry_id: id,
        idempotency: None,
    };
    match shard.run(&command, now)? {
        Output::Entry(e) => Ok(e),
        other => panic!("a leave answered {other:?}"),
    }
}

fn confirm(shard: &mut Shard, user: &str, hold: HoldId, now: u64) -> Result<Output, Rejection> {
    shard.run(
        &Command::ConfirmHold {
            actor: Actor::User(user.into()),
            hold_id: hold,
            payment_ref: None,
            idempotency: None,
        },
        now,
    )
}

#[test]
fn a_cancellation_of_two_is_offered_to_the_first_of_three_waiting_in_the_same_decision() {
    let mut s = Shard::new();
    event(&mut s, None, vec![("ga", ga(6))]);
    let bookings: Vec<BookingView> = ["a", "b", "c"]
        .iter()
        .map(|u| buy(&mut s, u, &[("ga", 2)], &[], T0))
        .collect();
    let w1 = join(&mut s, "w1", "ga", 2, T0 + 1);
    let w2 = join(&mut s, "w2", "ga", 2, T0 + 2);
    let w3 = join(&mut s, "w3", "ga", 1, T0 + 3);
    assert_eq!(
        (w1.position, w2.position, w3.position),
        (Some(1), Some(2), Some(3))
    );
    assert_eq!(section(&s, "ga").waiting, 3);
    let log_before = s.log.len();
    cancel(&mut s, bookings[0].id, T0 + 10);
    assert_eq!(s.log.len(), log_before + 1, "one decision");
    let offered = entry(&s, w1.id, T0 + 10);
    assert_eq!(offered.status, EntryStatus::Offered);
    assert_eq!(offered.position, None);
    assert_eq!(
        offered.offer_expires_at_ms,
        Some(T0 + 10 + 60_000),
        "the hold TTL by default"
    );
    let ga = section(&s, "ga");
    assert_eq!(
        (ga.available, ga.held, ga.set_aside, ga.waiting),
        (0, 2, 0, 2)
    );
    assert_eq!(entry(&s, w2.id, T0 + 10).position, Some(1));
    // The offer is an ordinary hold of w1's, confirmable by w1.
    let hold = offered.hold_id.expect("an offer hold");
    assert_eq!(
        confirm(&mut s, "w2", hold, T0 + 11).unwrap_err().code(),
        "not_found"
    );
    let Ok(Output::Booking(b)) = confirm(&mut s, "w1", hold, T0 + 11) else {
        panic!("confirm refused");
    };
    assert_eq!((b.user_id.as_str(), b.items[0].qty), ("w1", 2));
    assert_eq!(entry(&s, w1.id, T0 + 11).status, EntryStatus::Accepted);
    assert_eq!(
        leave(&mut s, "w1", w1.id, T0 + 12).unwrap_err().code(),
        "entry_not_active"
    );
    s.check_rebuilds();
}

#[test]
fn a_head_of_four_gets_nothing_from_a_return_of_three_and_the_public_cannot_buy_them() {
    let mut s = Shard::new();
    event(&mut s, None, vec![("ga", ga(6))]);
    let a = buy(&mut s, "a", &[("ga", 3)], &[], T0);
    let b = buy(&mut s, "b", &[("ga", 3)], &[], T0);
    let w = join(&mut s, "w", "ga", 4, T0 + 1);
    let small = join(&mut s, "small", "ga", 1, T0 + 2);
    cancel(&mut s, a.id, T0 + 10);
    let ga = section(&s, "ga");
    assert_eq!((ga.available, ga.held, ga.set_aside), (0, 3, 3));
    assert_eq!(entry(&s, w.id, T0 + 10).status, EntryStatus::Waiting);
    // Strict order: the entry of 1 behind does not jump the queue.
    assert_eq!(entry(&s, small.id, T0 + 10).status, EntryStatus::Waiting);
    let refused = s.run(
        &Command::PlaceHold(hold_cmd("public", &[("ga", 1)], &[])),
        T0 + 11,
    );
    assert_eq!(refused.unwrap_err().code(), "sold_out");
    // The next return completes the 4; the rest goes to the entry behind, in one decision.
    cancel(&mut s, b.id, T0 + 20);
    assert_eq!(entry(&s, w.id, T0 + 20).status, EntryStatus::Offered);
    assert_eq!(entry(&s, small.id, T0 + 20).status, EntryStatus::Offered);
    let ga = section(&s, "ga");
    assert_eq!(
        (ga.available, ga.held, ga.set_aside, ga.waiting),
        (1, 5, 0, 0)
    );
    s.check_rebuilds();
}

#[test]
fn an_expired_offer_passes_to_the_next_entry_in_the_expiry_decision() {
    let mut s = Shard::new();
    event_with_offers(&mut s, None, 5_000, vec![("ga", ga(2))]);
    let a = buy(&mut s, "a", &[("ga", 2)], &[], T0);
    let first = join(&mut s, "first", "ga", 2, T0 + 1);
    let second = join(&mut s, "second", "ga", 2, T0 + 2);
    cancel(&mut s, a.id, T0 + 10);
    let offer = entry(&s, first.id, T0 + 10);
    assert_eq!(
        offer.offer_expires_at_ms,
        Some(T0 + 10 + 5_000),
        "the event's offer TTL"
    );
    // Past its expiry, before the sweep, the read already says expired.
    assert_eq!(entry(&s, first.id, T0 + 5_010).status, EntryStatus::Expired);
    assert_eq!(s.expire(T0 + 5_010), 1);
    assert_eq!(entry(&s, first.id, T0 + 5_010).status, EntryStatus::Expired);
    let next = entry(&s, second.id, T0 + 5_010);
    assert_eq!(next.status, EntryStatus::Offered);
    assert_eq!(next.offer_expires_at_ms, Some(T0 + 5_010 + 5_000));
    // The second one lets it expire too: nobody waits, so the tickets go back on sale.
    assert_eq!(s.expire(T0 + 10_010), 1);
    let ga = section(&s, "ga");
    assert_eq!(
        (ga.available, ga.held, ga.set_aside, ga.waiting),
        (2, 0, 0, 0)
    );
    s.check_rebuilds();
}

#[test]
fn leaving_with_an_outstanding_offer_passes_it_on_and_declining_does_too() {
    let mut s = Shard::new();
    event(&mut s, None, vec![("ga", ga(3))]);
    let a = buy(&mut s, "a", &[("ga", 3)], &[], T0);
    let e1 = join(&mut s, "e1", "ga", 3, T0 + 1);
    let e2 = join(&mut s, "e2", "ga", 3, T0 + 2);
    let e3 = join(&mut s, "e3", "ga", 3, T0 + 3);
    cancel(&mut s, a.id, T0 + 10);
    assert_eq!(entry(&s, e1.id, T0 + 10).status, EntryStatus::Offered);
    let left = leave(&mut s, "e1", e1.id, T0 + 20).expect("left");
    assert_eq!(left.status, EntryStatus::Left);
    let offer2 = entry(&s, e2.id, T0 + 20);
    assert_eq!(offer2.status, EntryStatus::Offered);
    assert_eq!(entry(&s, e3.id, T0 + 20).position, Some(1));
    // e2 releases its offer: declined, and e3 is offered.
    s.run(
        &Command::ReleaseHold {
            actor: Actor::User("e2".into()),
            hold_id: offer2.hold_id.unwrap(),
            idempotency: None,
        },
        T0 + 30,
    )
    .expect("released");
    assert_eq!(entry(&s, e2.id, T0 + 30).status, EntryStatus::Declined);
    assert_eq!(entry(&s, e3.id, T0 + 30).status, EntryStatus::Offered);
    // A waiting entry that leaves just leaves.
    let e4 = join(&mut s, "e4", "ga", 1, T0 + 40);
    assert_eq!(
        leave(&mut s, "e4", e4.id, T0 + 41).unwrap().status,
        EntryStatus::Left
    );
    assert_eq!(
        leave(&mut s, "e4", e4.id, T0 + 42).unwrap_err().code(),
        "entry_not_active"
    );
    assert_eq!(
        leave(&mut s, "zed", e3.id, T0 + 42).unwrap_err().code(),
        "not_found"
    );
    s.check_rebuilds();
}

#[test]
fn seated_offers_take_set_aside_seats_adjacent_first_then_split() {
    let mut s = Shard::new();
    event(&mut s, None, vec![("hall", rows(&[("A", 6)]))]);
    let b1 = buy(&mut s, "b1", &[], &["A-1", "A-2"], T0);
    let _b2 = buy(&mut s, "b2", &[], &["A-3", "A-4"], T0);
    let b3 = buy(&mut s, "b3", &[], &["A-5", "A-6"], T0);
    let w1 = join(&mut s, "w1", "hall", 3, T0 + 1);
    let w2 = join(&mut s, "w2", "hall", 1, T0 + 2);
    cancel(&mut s, b1.id, T0 + 10);
    let map = s.engine.seat_map("show").unwrap();
    assert_eq!(
        map.sections[0].rows[0].seats[0],
        SeatStatus::Held,
        "set aside shows as held"
    );
    assert_eq!(section(&s, "hall").set_aside, 2);
    cancel(&mut s, b3.id, T0 + 20);
    let hold1 = entry(&s, w1.id, T0 + 20).hold_id.expect("offered");
    let Ok(view) = s.engine.hold(hold1, &Actor::Admin, T0 + 20) else {
        panic!()
    };
    let mut seats = view.seats.clone();
    seats.sort();
    assert_eq!(
        seats,
        ["A-1", "A-2", "A-5"],
        "no 3 together: split, nearest the middle"
    );
    let hold2 = entry(&s, w2.id, T0 + 20).hold_id.expect("offered");
    assert_eq!(
        s.engine.hold(hold2, &Actor::Admin, T0 + 20).unwrap().seats,
        ["A-6"]
    );
    s.check_rebuilds();
}

#[test]
fn a_user_who_cannot_take_the_tickets_is_passed_over() {
    let mut s = Shard::new();
    event(&mut s, Some(2), vec![("ga", ga(4))]);
    let a = buy(&mut s, "a", &[("ga", 2)], &[], T0);
    let _full = buy(&mut s, "full", &[("ga", 2)], &[], T0);
    let passed = join(&mut s, "full", "ga", 1, T0 + 1);
    let next = join(&mut s, "next", "ga", 2, T0 + 2);
    cancel(&mut s, a.id, T0 + 10);
    assert_eq!(entry(&s, passed.id, T0 + 10).status, EntryStatus::Expired);
    assert_eq!(entry(&s, next.id, T0 + 10).status, EntryStatus::Offered);
    s.check_rebuilds();
}

#[test]
fn joining_is_refused_when_tickets_are_available_twice_or_above_the_cap() {
    let mut s = Shard::new();
    event(&mut s, Some(4), vec![("ga", ga(4)), ("small", ga(2))]);
    buy(&mut s, "b", &[("ga", 1)], &[], T0);
    assert_eq!(
        try_join(&mut s, "u", "ga", 3, T0).unwrap_err().code(),
        "tickets_available"
    );
    // More than the section holds could never be served, and would block the queue.
    buy(&mut s, "b", &[("small", 2)], &[], T0);
    assert_eq!(
        try_join(&mut s, "u", "small", 3, T0).unwrap_err(),
        Rejection::invalid("qty", "more than the section's 2 tickets")
    );
    assert_eq!(
        try_join(&mut s, "u", "ga", 5, T0).unwrap_err(),
        Rejection::invalid("qty", "at most the event's max_per_user, 4")
    );
    assert_eq!(
        try_join(&mut s, "u", "ga", 0, T0).unwrap_err().code(),
        "invalid_input"
    );
    assert_eq!(
        try_join(&mut s, "u", "nope", 4, T0).unwrap_err().code(),
        "invalid_input"
    );
    let first = join(&mut s, "u", "ga", 4, T0);
    match try_join(&mut s, "u", "ga", 4, T0).unwrap_err() {
        Rejection::AlreadyWaiting { entry_id } => assert_eq!(entry_id, first.id),
        other => panic!("{other:?}"),
    }
    // Idempotent retry: the same entry, no second one.
    let command = Command::JoinWaitlist(NewEntry {
        actor: Actor::User("v".into()),
        event_id: "show".into(),
        user_id: "v".into(),
        section_id: "ga".into(),
        qty: 4,
        idempotency: Some(Idempotency {
            key: "k".into(),
            fingerprint: 7,
        }),
    });
    let one = s.run(&command, T0 + 1).unwrap();
    let two = s.run(&command, T0 + 2).unwrap();
    assert_eq!(one, two);
    assert_eq!(section(&s, "ga").waiting, 2);
    s.check_rebuilds();
}

#[test]
fn snapshots_keep_version_one_until_a_waiting_list_is_used() {
    let mut s = Shard::new();
    event(&mut s, None, vec![("ga", ga(1))]);
    assert_eq!(s.engine.snapshot()[0], 1);
    buy(&mut s, "a", &[("ga", 1)], &[], T0);
    join(&mut s, "w", "ga", 1, T0);
    let bytes = s.engine.snapshot();
    assert_eq!(bytes[0], 2);
    let restored = Engine::restore(&bytes).unwrap();
    assert_eq!(restored.event("show").unwrap().sections[0].waiting, 1);
    s.check_rebuilds();
}

#[test]
fn an_event_takes_at_most_its_limit_of_live_entries() {
    let mut s = Shard::new();
    event(&mut s, None, vec![("ga", ga(1))]);
    buy(&mut s, "a", &[("ga", 1)], &[], T0);
    for i in 0..limits::WAITLIST_LIVE_PER_EVENT_MAX {
        let command = Command::JoinWaitlist(NewEntry {
            actor: Actor::Admin,
            event_id: "show".into(),
            user_id: format!("u{i}"),
            section_id: "ga".into(),
            qty: 1,
            idempotency: None,
        });
        let Ok(Decided::Change(d)) = s.engine.decide(&command, T0) else {
            panic!("join {i} refused")
        };
        s.engine.apply(&d);
    }
    s.engine.check_invariants();
    let err = try_join(&mut s, "one-more", "ga", 1, T0).unwrap_err();
    assert_eq!(err, Rejection::OverCapacity(ShardLimit::WaitlistPerEvent));
    assert_eq!(err.code(), "over_capacity");
}
