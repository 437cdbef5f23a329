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
        let result = match self.engine.decide(command, now)? {
            Decided::Change(d) => {
                self.apply(&d);
                Ok(self.engine.output(&d, now))
            }
            Decided::Replay(o) => Ok(o),
        };
        result
    }

    fn apply(&mut self, d: &Decision) {
        self.engine.apply(d);
        let mut buf = Vec::new();
        d.encode(&mut buf);
        assert_eq!(&Decision::decode(&buf).expect("decodes"), d);
        self.log.push(buf);
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
