//! Memory of the engine's state: bytes per seat and per live booking, measured by a
//! counting global allocator around building the state. `cargo bench -p boxoffice-bench --bench memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use engine::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const T0: u64 = 1_700_000_000_000;

fn run(engine: &mut Engine, command: &Command, now: u64) {
    match engine.decide(command, now) {
        Ok(Decided::Change(d)) => engine.apply(&d),
        other => panic!("{other:?}"),
    }
}

fn main() {
    let mut engine = Engine::new(0);
    let rows = 1_000u32;
    let create = Command::CreateEvent(NewEvent {
        id: "mem".into(),
        name: "Memory".into(),
        starts_at_ms: None,
        max_per_user: None,
        hold_ttl_ms: None,
        sections: vec![
            NewSection {
                id: Some("ga".into()),
                name: "GA".into(),
                price_cents: 1,
                layout: engine::Layout::General {
                    capacity: 10_000_000,
                },
            },
            NewSection {
                id: Some("hall".into()),
                name: "Hall".into(),
                price_cents: 1,
                layout: engine::Layout::Seated {
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
    let before = LIVE.load(Ordering::Relaxed);
    run(&mut engine, &create, T0);
    let seats = u64::from(rows) * 100;
    let per_seat = (LIVE.load(Ordering::Relaxed) - before) as f64 / seats as f64;

    // 100,000 live bookings of one GA ticket each, bought by 10,000 users.
    const BOOKINGS: u64 = 100_000;
    let commands: Vec<Command> = (0..BOOKINGS)
        .map(|i| {
            Command::Purchase(NewHold {
                actor: Actor::Admin,
                event_id: "mem".into(),
                user_id: format!("user-{}", i % 10_000),
                items: vec![ItemRequest {
                    section_id: "ga".into(),
                    qty: 1,
                }],
                seats: vec![],
                ttl_ms: None,
                payment_ref: Some(format!("pay_{i:012}")),
                idempotency: None,
            })
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    for (i, c) in commands.iter().enumerate() {
        run(&mut engine, c, T0 + i as u64);
    }
    let per_booking = (LIVE.load(Ordering::Relaxed) - before) as f64 / BOOKINGS as f64;
    println!("seat state: {} bytes in the seat array; {per_seat:.1} bytes per seat including rows and indexes", std::mem::size_of::<seat::SeatState>());
    println!("live booking (GA, 1 ticket, 16-byte payment_ref, 10,000 users): {per_booking:.1} bytes per booking (vector growth included)");
}
