//! kill -9 under load, over and over: each cycle starts the server on the same data
//! directory, lets concurrent buyers place holds, confirm some and buy directly, kills
//! the server at a seeded random moment, restarts it and checks that every acknowledged
//! hold and booking is there, sold + held + available == capacity, and no seat is sold
//! twice. `BOXOFFICE_KILL_CYCLES` sets the cycles (default 50), `BOXOFFICE_SEED` the seed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{check_counts, request, seat_statuses, user_token, Launch, Proc, ADMIN};
use serde_json::json;

#[derive(Default)]
struct Acked {
    holds: Vec<(String, String)>,    // (user token, hold id)
    bookings: Vec<(String, String)>, // (user token, booking id)
}

fn buyer(port: u16, t: usize, cycle: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let token = user_token(&format!("c{cycle}t{t}"));
    for i in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let result = match i % 3 {
            0 => {
                let seat = format!(
                    "{}-{}",
                    ["A", "B", "C", "D"][(t + i) % 4],
                    (cycle * 7 + t * 3 + i) % 25 + 1
                );
                request(
                    port,
                    "POST",
                    "/v1/events/loop/bookings",
                    Some(&token),
                    Some(&json!({"seats": [seat]})),
                )
            }
            1 => request(
                port,
                "POST",
                "/v1/events/loop/holds",
                Some(&token),
                Some(&json!({"items": [{"section_id": "ga", "qty": 1}]})),
            ),
            _ => {
                let last = acked
                    .lock()
                    .unwrap()
                    .holds
                    .iter()
                    .rev()
                    .find(|(tk, _)| *tk == token)
                    .map(|(_, h)| h.clone());
                match last {
                    Some(hold) => request(
                        port,
                        "POST",
                        &format!("/v1/holds/{hold}/confirm"),
                        Some(&token),
                        None,
                    ),
                    None => continue,
                }
            }
        };
        match result {
            Ok((201, body)) => {
                let id = body["id"].as_str().unwrap().to_string();
                let mut acked = acked.lock().unwrap();
                if id.starts_with('h') {
                    acked.holds.push((token.clone(), id));
                } else {
                    acked.bookings.push((token.clone(), id));
                }
            }
            Ok((409 | 410, _)) => {}
            Ok((status, body)) => panic!("unexpected {status}: {body}"),
            Err(_) => return, // the server died
        }
    }
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged() {
    let cycles: usize = std::env::var("BOXOFFICE_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("BOXOFFICE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    println!("kill -9 loop: {cycles} cycles, seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch {
        shards: Some(2),
        ..Launch::default()
    };
    let mut proc = Proc::start(dir.path(), &launch);
    let rows: Vec<_> = ["A", "B", "C", "D"]
        .iter()
        .map(|l| json!({"label": l, "count": 25}))
        .collect();
    let event = json!({"id": "loop", "name": "Loop", "hold_ttl_seconds": 3600, "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 1_000_000},
        {"id": "hall", "name": "Hall", "price_cents": 100, "seats": {"rows": rows}}]});
    assert_eq!(
        proc.call("POST", "/v1/events", Some(ADMIN), Some(&event)).0,
        201
    );
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut kills = 0;
    let mut checked = (0, 0);
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let buyers: Vec<_> = (0..4)
            .map(|t| {
                let (stop, acked, port) = (Arc::clone(&stop), Arc::clone(&acked), proc.port);
                std::thread::spawn(move || buyer(port, t, cycle, stop, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(10 + next(150)));
        proc.kill9();
        kills += 1;
        stop.store(true, Ordering::Relaxed);
        for b in buyers {
            b.join().unwrap();
        }
        proc = Proc::start(dir.path(), &launch);
        let acked = acked.lock().unwrap();
        // What this cycle acknowledged is checked now; everything again after the last cycle.
        let (from_holds, from_bookings) = if cycle + 1 == cycles { (0, 0) } else { checked };
        checked = (acked.holds.len(), acked.bookings.len());
        for (token, id) in &acked.holds[from_holds..] {
            let (status, hold) = proc.call("GET", &format!("/v1/holds/{id}"), Some(token), None);
            assert_eq!(
                status, 200,
                "cycle {cycle}: acknowledged hold {id} lost: {hold}"
            );
        }
        for (token, id) in &acked.bookings[from_bookings..] {
            let (status, booking) =
                proc.call("GET", &format!("/v1/bookings/{id}"), Some(token), None);
            assert_eq!(
                (status, &booking["status"]),
                (200, &json!("confirmed")),
                "cycle {cycle}: booking {id}"
            );
        }
        let (_, ev) = proc.call("GET", "/v1/events/loop", None, None);
        let sold = check_counts(&ev);
        let (_, map) = proc.call("GET", "/v1/events/loop/seats", None, None);
        let seats = seat_statuses(&map);
        let unique: HashSet<_> = seats.iter().map(|(id, _)| id).collect();
        assert_eq!(unique.len(), seats.len(), "no seat listed twice");
        let sold_seats = seats.iter().filter(|(_, s)| s == "sold").count() as u64;
        assert_eq!(sold_seats, sold[1], "seat map and counts agree");
    }
    let acked = acked.lock().unwrap();
    println!(
        "kill -9 loop: {kills} kills, {} holds and {} bookings acknowledged, all present after every restart",
        acked.holds.len(),
        acked.bookings.len()
    );
    assert!(kills > 0 && !acked.bookings.is_empty());
    assert_eq!(proc.terminate(), Some(0));
}
