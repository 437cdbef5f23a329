//! The longest single decisions while one shard's engine grows to millions of live holds:
//! every decide + apply over a threshold is printed with the live-hold count it happened
//! at, so a pause that comes from a structure growing (a vector or a hash table doubling
//! its capacity and moving every element) shows at its power of two.
//!
//! It runs on the server's allocator (mimalloc), whose `realloc` of a large block copies
//! it into fresh memory (glibc's would move the pages with `mremap` instead).
//!
//! Like the server, it turns transparent huge pages off for itself unless
//! `BOXOFFICE_HUGE_PAGES=1`.
//!
//! `cargo run --release -p boxoffice-bench --example growth_pauses -- [HOLDS] [THRESHOLD_MS]`
//! (defaults 4,200,000 and 2 ms).

use std::time::Instant;

use engine::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: u64 = 1_700_000_000_000;

fn main() {
    if std::env::var("BOXOFFICE_HUGE_PAGES").as_deref() != Ok("1") {
        rustix::thread::disable_transparent_huge_pages(true).expect("huge pages off");
    }
    let mut args = std::env::args().skip(1);
    let holds: u64 = args.next().map_or(4_200_000, |a| a.parse().expect("HOLDS"));
    let threshold_ms: f64 = args
        .next()
        .map_or(2.0, |a| a.parse().expect("THRESHOLD_MS"));
    let mut engine = Engine::new(0);
    let create = Command::CreateEvent(NewEvent {
        id: "growth".into(),
        name: "Growth".into(),
        starts_at_ms: None,
        max_per_user: None,
        hold_ttl_ms: Some(86_400_000),
        sections: vec![NewSection {
            id: Some("ga".into()),
            name: "GA".into(),
            price_cents: 100,
            layout: Layout::General {
                capacity: 10_000_000,
            },
        }],
        idempotency: None,
    });
    let mut records = Vec::new();
    engine
        .execute(&create, T0, &mut records)
        .output
        .expect("event");
    let started = Instant::now();
    let mut worst = 0.0f64;
    for n in 0..holds {
        let command = Command::PlaceHold(NewHold {
            actor: Actor::Admin,
            event_id: "growth".into(),
            user_id: format!("u{}", n % 10_000),
            items: vec![ItemRequest {
                section_id: "ga".into(),
                qty: 1,
            }],
            seats: vec![],
            ttl_ms: None,
            payment_ref: None,
            // As the load generator sends them: every hold with its own key.
            idempotency: Some(Idempotency {
                key: format!("k-{n}"),
                fingerprint: n,
            }),
        });
        records.clear();
        let at = Instant::now();
        engine
            .execute(&command, T0 + n / 25, &mut records)
            .output
            .expect("hold");
        let ms = at.elapsed().as_secs_f64() * 1000.0;
        worst = worst.max(ms);
        if ms >= threshold_ms {
            println!("{ms:8.1} ms at hold {n}");
        }
    }
    println!(
        "{holds} holds in {:.1} s, the longest {worst:.1} ms",
        started.elapsed().as_secs_f64()
    );
}
