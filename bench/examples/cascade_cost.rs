//! What a feeding cancel costs against a plain one, in instructions (load-independent,
//! unlike the Criterion times on a shared machine). It builds the engine of the `cancel`
//! benchmarks of `benches/engine.rs` (25k one-ticket bookings of a sold-out GA section;
//! with `feeding`, 25k one-ticket entries waiting), then, with `run`, cancels every
//! booking one by one (with `floor`, each cancel followed by a one-ticket GA hold).
//! Count under cachegrind with and without `run` and subtract:
//!
//! ```sh
//! cargo build --release -p boxoffice-bench --example cascade_cost
//! for mode in plain feeding floor; do for phase in setup run; do
//!   valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/cascade_cost $mode $phase 2>&1 | grep 'I *refs'
//! done; done
//! ```

use engine::*;

const T0: u64 = 1_700_000_000_000;
const N: u64 = 25_000;

fn decide_apply(engine: &mut Engine, command: &Command, now: u64) {
    match engine.decide(command, now) {
        Ok(Decided::Change(d)) => engine.apply(&d),
        other => panic!("{other:?}"),
    }
}

fn ga(user: String, purchase: bool) -> Command {
    let hold = NewHold {
        actor: Actor::Admin,
        event_id: "bench".into(),
        user_id: user,
        items: vec![ItemRequest {
            section_id: "ga".into(),
            qty: 1,
        }],
        seats: vec![],
        ttl_ms: None,
        payment_ref: None,
        idempotency: None,
    };
    if purchase {
        Command::Purchase(hold)
    } else {
        Command::PlaceHold(hold)
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    assert!(
        ["plain", "feeding", "floor"].contains(&mode.as_str()),
        "usage: cascade_cost plain|feeding|floor [run]"
    );
    let run = std::env::args().nth(2).as_deref() == Some("run");
    let mut engine = Engine::new(0);
    let create = Command::CreateEvent(NewEvent {
        id: "bench".into(),
        name: "Bench".into(),
        starts_at_ms: None,
        max_per_user: None,
        hold_ttl_ms: None,
        sections: vec![NewSection {
            id: Some("ga".into()),
            name: "GA".into(),
            price_cents: 100,
            layout: Layout::General { capacity: N as u32 },
        }],
        idempotency: None,
    });
    decide_apply(&mut engine, &create, T0);
    for i in 0..N {
        decide_apply(&mut engine, &ga(format!("u{}", i % 1000), true), T0);
    }
    if mode == "feeding" {
        for i in 0..N {
            let join = Command::JoinWaitlist(NewEntry {
                actor: Actor::Admin,
                event_id: "bench".into(),
                user_id: format!("w{i}"),
                section_id: "ga".into(),
                qty: 1,
                idempotency: None,
            });
            decide_apply(&mut engine, &join, T0);
        }
    }
    let cancels: Vec<Command> = (1..=N)
        .map(|n| Command::CancelBooking {
            actor: Actor::Admin,
            booking_id: BookingId::new(0, n),
            idempotency: None,
        })
        .collect();
    let holds: Vec<Command> = (0..N)
        .map(|i| ga(format!("u{}", i % 1000), false))
        .collect();
    let mut engine = std::hint::black_box(engine);
    if run {
        for (cancel, hold) in cancels.iter().zip(&holds) {
            decide_apply(&mut engine, cancel, T0 + 1);
            if mode == "floor" {
                decide_apply(&mut engine, hold, T0 + 1);
            }
        }
    }
    std::hint::black_box(&engine);
}
