//! kill -9 under load, over and over: each cycle starts the server on the same data
//! directory, lets concurrent buyers place holds, confirm them, buy directly and cancel,
//! kills the server at a seeded random moment, restarts it and checks that every
//! acknowledged hold and booking is there in (at least) its acknowledged state, that no id
//! was handed out twice, that sold + held + available == capacity and that no seat is in
//! two states. `BOXOFFICE_KILL_CYCLES` sets the cycles (default 50), `BOXOFFICE_SEED` the
//! seed of the kill moments (the server's own scheduling is real, so a rerun explores
//! nearby interleavings rather than the identical one).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{env_or, request, seed_or, user_token, Launch, Rng, Server, ADMIN};
use serde_json::json;

/// What the buyers were told succeeded.
#[derive(Default)]
struct Acked {
    /// (user token, hold id), in order of acknowledgement.
    holds: Vec<(String, String)>,
    /// (user token, booking id).
    bookings: Vec<(String, String)>,
    /// Holds whose confirmation was acknowledged.
    confirmed: HashSet<String>,
    /// Bookings whose cancellation was acknowledged.
    cancelled: HashSet<String>,
    /// Every id handed out, to catch one handed out twice (before and after a crash).
    ids: HashSet<String>,
}

impl Acked {
    fn record(&mut self, token: &str, id: &str) {
        assert!(
            self.ids.insert(id.to_string()),
            "{id} was acknowledged twice: an id reused after a restart"
        );
        let entry = (token.to_string(), id.to_string());
        if id.starts_with("h-") {
            self.holds.push(entry);
        } else {
            self.bookings.push(entry);
        }
    }

    /// The newest of this user's holds / bookings not yet confirmed / cancelled.
    fn last_open(&self, token: &str, holds: bool) -> Option<String> {
        let (list, done) = if holds {
            (&self.holds, &self.confirmed)
        } else {
            (&self.bookings, &self.cancelled)
        };
        list.iter()
            .rev()
            .find(|(tk, id)| tk == token && !done.contains(id))
            .map(|(_, id)| id.clone())
    }
}

/// One buyer: cycles through buy-a-seat, hold GA, confirm the last hold, cancel the last
/// booking (every fourth round), until told to stop or the server is gone.
fn buyer(port: u16, t: usize, cycle: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let token = user_token(&format!("c{cycle}t{t}"));
    for i in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let op = if i % 8 == 7 { 3 } else { i % 3 };
        let (path, body, pending) = match op {
            0 => {
                let seat = format!(
                    "{}-{}",
                    ["A", "B", "C", "D"][(t + i) % 4],
                    (cycle * 7 + t * 3 + i) % 25 + 1
                );
                let body = json!({"seats": [seat]});
                ("/v1/events/loop/bookings".to_string(), Some(body), None)
            }
            1 => {
                let body = json!({"items": [{"section_id": "ga", "qty": 1 + i % 2}]});
                ("/v1/events/loop/holds".to_string(), Some(body), None)
            }
            2 => match acked.lock().unwrap().last_open(&token, true) {
                Some(hold) => (format!("/v1/holds/{hold}/confirm"), None, Some(hold)),
                None => continue,
            },
            _ => match acked.lock().unwrap().last_open(&token, false) {
                Some(booking) => (
                    format!("/v1/bookings/{booking}/cancel"),
                    None,
                    Some(booking),
                ),
                None => continue,
            },
        };
        match request(port, "POST", &path, Some(&token), body.as_ref()) {
            Ok((201, reply)) => {
                let mut acked = acked.lock().unwrap();
                acked.record(&token, reply["id"].as_str().expect("an id"));
                if let Some(hold) = pending {
                    acked.confirmed.insert(hold);
                }
            }
            Ok((200, _)) => {
                let booking = pending.expect("only a cancel answers 200");
                acked.lock().unwrap().cancelled.insert(booking);
            }
            Ok((409 | 410, _)) => {}
            Ok((status, reply)) => panic!("unexpected {status} for POST {path}: {reply}"),
            Err(_) => return, // the server died
        }
    }
}

/// GETs every acknowledged hold and booking from index `from` on and checks its state;
/// returns how many were verified.
fn verify(server: &Server, acked: &Acked, from: (usize, usize), cycle: usize) -> usize {
    for (token, id) in &acked.holds[from.0..] {
        let (status, hold) = server.call("GET", &format!("/v1/holds/{id}"), Some(token), None);
        assert_eq!(
            status, 200,
            "cycle {cycle}: acknowledged hold {id} lost: {hold}"
        );
        let allowed: &[&str] = if acked.confirmed.contains(id) {
            &["confirmed"]
        } else {
            // A confirm that was sent but not answered may or may not have happened.
            &["held", "confirmed"]
        };
        assert!(
            allowed.contains(&hold["status"].as_str().unwrap_or("")),
            "cycle {cycle}: hold {id} is {}, acknowledged as {allowed:?}",
            hold["status"]
        );
    }
    for (token, id) in &acked.bookings[from.1..] {
        let (status, booking) =
            server.call("GET", &format!("/v1/bookings/{id}"), Some(token), None);
        assert_eq!(
            status, 200,
            "cycle {cycle}: acknowledged booking {id} lost: {booking}"
        );
        let allowed: &[&str] = if acked.cancelled.contains(id) {
            &["cancelled"]
        } else {
            &["confirmed", "cancelled"]
        };
        assert!(
            allowed.contains(&booking["status"].as_str().unwrap_or("")),
            "cycle {cycle}: booking {id} is {}, acknowledged as {allowed:?}",
            booking["status"]
        );
    }
    acked.holds.len() - from.0 + acked.bookings.len() - from.1
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged() {
    let cycles = env_or("BOXOFFICE_KILL_CYCLES", 50) as usize;
    let seed = seed_or(11);
    let mut rng = Rng::new(seed);
    println!("kill -9 loop: {cycles} cycles, seed {seed} (replay: BOXOFFICE_SEED={seed})");
    let started = Instant::now();
    let mut server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    let rows: Vec<_> = ["A", "B", "C", "D"]
        .iter()
        .map(|l| json!({"label": l, "count": 25}))
        .collect();
    let event = json!({"id": "loop", "name": "Loop", "hold_ttl_seconds": 3600, "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 1_000_000},
        {"id": "hall", "name": "Hall", "price_cents": 100, "seats": {"rows": rows}}]});
    assert_eq!(
        server
            .call("POST", "/v1/events", Some(ADMIN), Some(&event))
            .0,
        201
    );
    let acked = Arc::new(Mutex::new(Acked::default()));
    let (mut kills, mut verified) = (0, 0);
    let mut checked = (0, 0);
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let buyers: Vec<_> = (0..4)
            .map(|t| {
                let (stop, acked, port) = (Arc::clone(&stop), Arc::clone(&acked), server.port());
                std::thread::spawn(move || buyer(port, t, cycle, stop, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(10 + rng.below(150)));
        server.kill9();
        kills += 1;
        stop.store(true, Ordering::Relaxed);
        for b in buyers {
            b.join().expect("a buyer thread");
        }
        server.restart();
        let acked = acked.lock().unwrap();
        // What this cycle acknowledged is checked now; everything again after the last cycle.
        let from = if cycle + 1 == cycles { (0, 0) } else { checked };
        verified += verify(&server, &acked, from, cycle);
        checked = (acked.holds.len(), acked.bookings.len());
        server.check_inventory("loop");
    }
    let acked = acked.lock().unwrap();
    println!(
        "kill -9 loop: {cycles} cycles, {kills} kills; acknowledged {} holds ({} confirmed) and {} \
         bookings ({} cancelled); {verified} reads verified, all present after every restart; {:?}",
        acked.holds.len(),
        acked.confirmed.len(),
        acked.bookings.len(),
        acked.cancelled.len(),
        started.elapsed()
    );
    assert!(kills > 0, "no kill happened");
    assert!(
        !acked.bookings.is_empty() && !acked.confirmed.is_empty() && !acked.cancelled.is_empty(),
        "the load acknowledged too little to prove anything"
    );
    server.terminate();
}
