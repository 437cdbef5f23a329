//! Criterion benchmarks of the engine: decide + apply of the hot commands, the expiry
//! sweep, snapshots and replay. `cargo bench -p boxoffice-bench --bench engine`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::*;

const T0: u64 = 1_700_000_000_000;

fn event(capacity: u32, rows: u32) -> Engine {
    let mut engine = Engine::new(0);
    let command = Command::CreateEvent(NewEvent {
        id: "bench".into(),
        name: "Bench".into(),
        starts_at_ms: None,
        max_per_user: None,
        hold_ttl_ms: None,
        sections: vec![
            NewSection {
                id: Some("ga".into()),
                name: "GA".into(),
                price_cents: 100,
                layout: Layout::General { capacity },
            },
            NewSection {
                id: Some("hall".into()),
                name: "Hall".into(),
                price_cents: 100,
                layout: Layout::Seated {
                    rows: (0..rows)
                        .map(|r| NewRow {
                            label: format!("R{r}"),
                            count: 100,
                        })
                        .collect(),
                },
            },
        ],
        idempotency: None,
    });
    engine
        .execute(&command, T0, &mut Vec::new())
        .output
        .expect("event created");
    engine
}

fn ga_hold(user: u64) -> Command {
    Command::PlaceHold(NewHold {
        actor: Actor::Admin,
        event_id: "bench".into(),
        user_id: format!("u{}", user % 1000),
        items: vec![ItemRequest {
            section_id: "ga".into(),
            qty: 1,
        }],
        seats: vec![],
        ttl_ms: None,
        payment_ref: None,
        idempotency: None,
    })
}

/// The engine's two phases alone, as the `*_decide_apply` figures measure them: no
/// encoding, no answer (what [`Engine::execute`] adds).
fn decide_apply(engine: &mut Engine, command: &Command, now: u64) -> Decision {
    match engine.decide(command, now) {
        Ok(Decided::Change(d)) => {
            engine.apply(&d);
            d
        }
        other => panic!("{other:?}"),
    }
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);

    const N: u64 = 100_000;
    group.throughput(Throughput::Elements(N));
    let commands: Vec<Command> = (0..N).map(ga_hold).collect();
    group.bench_function("ga_hold_decide_apply", |b| {
        b.iter_batched_ref(
            || event(100_000_000, 1),
            |engine| {
                for (i, c) in commands.iter().enumerate() {
                    decide_apply(engine, c, T0 + i as u64);
                }
            },
            BatchSize::LargeInput,
        )
    });

    const SEAT_HOLDS: u64 = 25_000; // 1,000 rows of 100 seats, four seats each
    group.throughput(Throughput::Elements(SEAT_HOLDS));
    let seat_holds: Vec<Command> = (0..SEAT_HOLDS)
        .map(|i| {
            let row = i / 25;
            let seat = (i % 25) * 4 + 1;
            Command::PlaceHold(NewHold {
                actor: Actor::Admin,
                event_id: "bench".into(),
                user_id: format!("u{}", i % 1000),
                items: vec![],
                seats: (0..4).map(|k| format!("R{row}-{}", seat + k)).collect(),
                ttl_ms: None,
                payment_ref: None,
                idempotency: None,
            })
        })
        .collect();
    group.bench_function("four_seat_hold_decide_apply", |b| {
        b.iter_batched_ref(
            || event(1, 1_000),
            |engine| {
                for (i, c) in seat_holds.iter().enumerate() {
                    decide_apply(engine, c, T0 + i as u64);
                }
            },
            BatchSize::LargeInput,
        )
    });

    // Best available, 4 seats, on 100,000 seats (1,000 rows of 100), from empty to sold
    // out: the engine picks every block through the free-run summary.
    let best_holds: Vec<Command> = (0..SEAT_HOLDS)
        .map(|i| {
            Command::PlaceHoldBest(
                NewHold {
                    actor: Actor::Admin,
                    event_id: "bench".into(),
                    user_id: format!("u{}", i % 1000),
                    items: vec![],
                    seats: vec![],
                    ttl_ms: None,
                    payment_ref: None,
                    idempotency: None,
                },
                Box::new(BestAvailable {
                    section_id: Some("hall".into()),
                    qty: 4,
                    allow_split: false,
                }),
            )
        })
        .collect();
    group.bench_function("best_available_four_seat_hold_decide_apply", |b| {
        b.iter_batched_ref(
            || event(1, 1_000),
            |engine| {
                for (i, c) in best_holds.iter().enumerate() {
                    decide_apply(engine, c, T0 + i as u64);
                }
            },
            BatchSize::LargeInput,
        )
    });

    // A cancellation that feeds a waiting-list offer against a plain one: 25k one-ticket
    // bookings of a sold-out GA section, cancelled one by one, with and without 25k
    // entries of one ticket waiting (each cancel then sets aside and offers in one decision).
    const CANCELS: u64 = 25_000;
    group.throughput(Throughput::Elements(CANCELS));
    let sold_out = |waiting: bool| {
        let mut engine = event(CANCELS as u32, 1);
        for i in 0..CANCELS {
            let buy = Command::Purchase(NewHold {
                actor: Actor::Admin,
                event_id: "bench".into(),
                user_id: format!("u{}", i % 1000),
                items: vec![ItemRequest {
                    section_id: "ga".into(),
                    qty: 1,
                }],
                seats: vec![],
                ttl_ms: None,
                payment_ref: None,
                idempotency: None,
            });
            decide_apply(&mut engine, &buy, T0);
        }
        if waiting {
            for i in 0..CANCELS {
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
        engine
    };
    let cancels: Vec<Command> = (1..=CANCELS)
        .map(|n| Command::CancelBooking {
            actor: Actor::Admin,
            booking_id: BookingId::new(0, n),
            idempotency: None,
        })
        .collect();
    for (name, waiting) in [
        ("cancel_decide_apply", false),
        ("cancel_feeding_an_offer_decide_apply", true),
    ] {
        let start = sold_out(waiting);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || start.clone(),
                |engine| {
                    for c in &cancels {
                        decide_apply(engine, c, T0 + 1);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    // The floor of a feeding cancel: it also places a hold (the offer), so a plain cancel
    // followed by a plain one-ticket GA hold, as two decisions, on the section without
    // a waiting list.
    let rehold: Vec<Command> = (0..CANCELS).map(ga_hold).collect();
    let start = sold_out(false);
    group.bench_function("cancel_then_hold_decide_apply", |b| {
        b.iter_batched_ref(
            || start.clone(),
            |engine| {
                for (c, h) in cancels.iter().zip(&rehold) {
                    decide_apply(engine, c, T0 + 1);
                    decide_apply(engine, h, T0 + 1);
                }
            },
            BatchSize::LargeInput,
        )
    });

    group.throughput(Throughput::Elements(N));
    let held = {
        let mut engine = event(100_000_000, 1);
        for (i, c) in commands.iter().enumerate() {
            decide_apply(&mut engine, c, T0 + i as u64);
        }
        engine
    };
    let confirms: Vec<Command> = (1..=N)
        .map(|n| Command::ConfirmHold {
            actor: Actor::Admin,
            hold_id: HoldId::new(0, n),
            payment_ref: None,
            idempotency: None,
        })
        .collect();
    group.bench_function("confirm_decide_apply", |b| {
        b.iter_batched_ref(
            || held.clone(),
            |engine| {
                for c in &confirms {
                    decide_apply(engine, c, T0 + N);
                }
            },
            BatchSize::LargeInput,
        )
    });

    group.bench_function("expiry_sweep_100k_due_holds", |b| {
        b.iter_batched_ref(
            || held.clone(),
            |engine| {
                let due = T0 + N + limits::HOLD_TTL_MS_DEFAULT;
                loop {
                    let batch = engine.decide_expiry(due, limits::EXPIRE_BATCH_MAX);
                    if batch.is_empty() {
                        break;
                    }
                    for d in &batch {
                        engine.apply(d);
                    }
                }
                assert_eq!(engine.stats().holds_live, 0);
            },
            BatchSize::LargeInput,
        )
    });

    let snapshot = held.snapshot();
    group.throughput(Throughput::Bytes(snapshot.len() as u64));
    group.bench_function("snapshot_encode_100k_holds", |b| b.iter(|| held.snapshot()));
    group.bench_function("snapshot_decode_100k_holds", |b| {
        b.iter(|| Engine::restore(&snapshot).unwrap())
    });

    // Replay of 1M decisions: decode + apply (a mix of holds, confirms and purchases).
    const M: u64 = 1_000_000;
    let mut source = event(100_000_000, 1);
    let mut log: Vec<Vec<u8>> = Vec::with_capacity(M as usize);
    let mut holds = 0;
    for i in 0..M {
        let command = if i % 4 == 3 {
            Command::ConfirmHold {
                actor: Actor::Admin,
                hold_id: HoldId::new(0, holds),
                payment_ref: None,
                idempotency: None,
            }
        } else {
            holds += 1;
            ga_hold(i)
        };
        let mut record = Vec::new();
        source
            .execute(&command, T0 + i, &mut record)
            .output
            .expect("accepted");
        log.push(record);
    }
    let fresh = event(100_000_000, 1);
    group.throughput(Throughput::Elements(M));
    group.sample_size(10);
    group.bench_function("replay_1m_decisions", |b| {
        b.iter_batched_ref(
            || fresh.clone(),
            |engine| {
                for record in &log {
                    engine.apply(&Decision::decode(record).unwrap());
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
