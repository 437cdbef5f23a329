//! The waiting list through the real binary: returned tickets go to the waiting entries
//! in join order and never to the public meanwhile, every offer is confirmable by its
//! user, and a kill -9 in the middle of cancellations loses nothing acknowledged.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{check_counts, code, request, user_token, Launch, Server, ADMIN};
use serde_json::{json, Value};

fn ga_event(server: &Server, id: &str, capacity: u32) {
    let body = json!({"id": id, "name": "Sale", "offer_ttl_seconds": 3600, "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": capacity}]});
    let (status, event) = server.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["offer_ttl_seconds"], 3600);
}

fn section(server: &Server, event: &str) -> Value {
    let (status, e) = server.call("GET", &format!("/v1/events/{event}"), None, None);
    assert_eq!(status, 200);
    check_counts(&e);
    e["sections"][0].clone()
}

fn sell_out(server: &Server, event: &str, buyers: usize, qty: u32) -> Vec<String> {
    (0..buyers)
        .map(|i| {
            let body =
                json!({"user_id": format!("fan{i}"), "items": [{"section_id": "ga", "qty": qty}]});
            let (status, b) = server.call(
                "POST",
                &format!("/v1/events/{event}/bookings"),
                Some(ADMIN),
                Some(&body),
            );
            assert_eq!(status, 201, "{b}");
            b["id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn join(server: &Server, event: &str, user: &str, qty: u32) -> Value {
    let (status, entry) = server.call(
        "POST",
        &format!("/v1/events/{event}/waitlist"),
        Some(&user_token(user)),
        Some(&json!({"section_id": "ga", "qty": qty})),
    );
    assert_eq!(status, 201, "{entry}");
    entry
}

fn entry(server: &Server, user: &str, id: &str) -> Value {
    let (status, e) = server.call(
        "GET",
        &format!("/v1/waitlist/{id}"),
        Some(&user_token(user)),
        None,
    );
    assert_eq!(status, 200, "{e}");
    e
}

#[test]
fn the_public_gets_no_returned_ticket_while_a_fitting_entry_waits_and_every_offer_confirms() {
    let server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    ga_event(&server, "final", 40);
    let bookings = sell_out(&server, "final", 20, 2);
    let waiters: Vec<(String, Value)> = (0..10)
        .map(|i| {
            let user = format!("waiter{i}");
            let e = join(&server, "final", &user, 2);
            assert_eq!(e["status"], "waiting");
            assert_eq!(e["position"], i + 1);
            (user, e)
        })
        .collect();
    // Joining twice, or while tickets are available, is refused.
    let (status, reply) = server.call(
        "POST",
        "/v1/events/final/waitlist",
        Some(&user_token("waiter0")),
        Some(&json!({"section_id": "ga", "qty": 2})),
    );
    assert_eq!((status, code(&reply)), (409, "already_waiting"));
    assert_eq!(section(&server, "final")["waiting"], 10);

    let port = server.port();
    let stop = Arc::new(AtomicBool::new(false));
    let won = Arc::new(AtomicUsize::new(0));
    let public: Vec<_> = (0..64)
        .map(|b| {
            let (stop, won) = (Arc::clone(&stop), Arc::clone(&won));
            std::thread::spawn(move || {
                let token = user_token(&format!("public{b}"));
                let body = json!({"items": [{"section_id": "ga", "qty": 1}]});
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let (status, reply) = request(
                        port,
                        "POST",
                        "/v1/events/final/holds",
                        Some(&token),
                        Some(&body),
                    )
                    .expect("the server answers");
                    match status {
                        201 => {
                            won.fetch_add(1, Ordering::Relaxed);
                        }
                        409 | 503 => {}
                        other => panic!("public buyer: {other} {reply}"),
                    }
                }
            })
        })
        .collect();
    for id in &bookings[..10] {
        let (status, b) = server.call(
            "POST",
            &format!("/v1/bookings/{id}/cancel"),
            Some(ADMIN),
            None,
        );
        assert_eq!(status, 200, "{b}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for t in public {
        t.join().expect("a public buyer");
    }
    assert_eq!(
        won.load(Ordering::Relaxed),
        0,
        "the public got a returned ticket"
    );
    let s = section(&server, "final");
    assert_eq!(
        (
            s["available"].as_u64(),
            s["held"].as_u64(),
            s["set_aside"].as_u64(),
            s["waiting"].as_u64()
        ),
        (Some(0), Some(20), Some(0), Some(0)),
        "{s}"
    );
    for (user, e) in &waiters {
        let now = entry(&server, user, e["id"].as_str().unwrap());
        assert_eq!(now["status"], "offered", "{now}");
        let hold = now["hold_id"].as_str().unwrap();
        let (status, booking) = server.call(
            "POST",
            &format!("/v1/holds/{hold}/confirm"),
            Some(&user_token(user)),
            Some(&json!({"payment_ref": "p"})),
        );
        assert_eq!(status, 201, "{booking}");
        assert_eq!(booking["user_id"], user.as_str());
        assert_eq!(
            entry(&server, user, e["id"].as_str().unwrap())["status"],
            "accepted"
        );
    }
    // Another user's entry is not found; leaving an accepted one is entry_not_active.
    let id = waiters[0].1["id"].as_str().unwrap();
    let (status, _) = server.call(
        "GET",
        &format!("/v1/waitlist/{id}"),
        Some(&user_token("waiter1")),
        None,
    );
    assert_eq!(status, 404);
    let (status, reply) = server.call(
        "DELETE",
        &format!("/v1/waitlist/{id}"),
        Some(&user_token("waiter0")),
        None,
    );
    assert_eq!((status, code(&reply)), (409, "entry_not_active"));
    assert_eq!(section(&server, "final")["sold"], 40);
}

#[test]
fn kill_9_during_cancellations_keeps_the_list_positions_offers_and_set_aside_as_acknowledged() {
    let mut server = Server::start(Launch::default());
    ga_event(&server, "cut", 10);
    let bookings = sell_out(&server, "cut", 5, 2);
    let entries: Vec<String> = (0..6)
        .map(|i| {
            join(&server, "cut", &format!("w{i}"), 3)["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let port = server.port();
    let acked = Arc::new(AtomicUsize::new(0));
    let canceller = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            for id in bookings {
                match request(
                    port,
                    "POST",
                    &format!("/v1/bookings/{id}/cancel"),
                    Some(ADMIN),
                    None,
                ) {
                    Ok((200, _)) => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Offers observed before the kill, with their holds.
    let before: Vec<Value> = (0..6)
        .map(|i| entry(&server, &format!("w{i}"), &entries[i]))
        .collect();
    server.kill9();
    canceller.join().expect("the canceller");
    let acked = acked.load(Ordering::SeqCst);
    server.restart();
    let s = section(&server, "cut");
    let cancelled = (10 - s["sold"].as_u64().unwrap()) / 2;
    assert!(
        cancelled as usize == acked || cancelled as usize == acked + 1,
        "{cancelled} cancellations took effect, {acked} were acknowledged"
    );
    let returned = 2 * cancelled;
    let offers = returned / 3;
    assert_eq!(
        s["set_aside"].as_u64().unwrap(),
        returned - 3 * offers,
        "{s}"
    );
    assert_eq!(s["held"].as_u64().unwrap(), returned, "{s}");
    assert_eq!(s["waiting"].as_u64().unwrap(), 6 - offers, "{s}");
    for (i, id) in entries.iter().enumerate() {
        let user = format!("w{i}");
        let now = entry(&server, &user, id);
        if (i as u64) < offers {
            assert_eq!(now["status"], "offered", "{now}");
            if before[i]["status"] == "offered" {
                assert_eq!(
                    now["hold_id"], before[i]["hold_id"],
                    "an acknowledged offer survives"
                );
            }
            let hold = now["hold_id"].as_str().unwrap();
            let (status, b) = server.call(
                "POST",
                &format!("/v1/holds/{hold}/confirm"),
                Some(&user_token(&user)),
                None,
            );
            assert_eq!(status, 201, "{b}");
        } else {
            assert_eq!(now["status"], "waiting", "{now}");
            assert_eq!(
                now["position"].as_u64(),
                Some(i as u64 + 1 - offers),
                "{now}"
            );
        }
    }
    // The rest still waits; leaving passes nothing on (not enough set aside).
    let last = entries.last().unwrap();
    let (status, left) = server.call(
        "DELETE",
        &format!("/v1/waitlist/{last}"),
        Some(&user_token("w5")),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(left["status"], "left");
    assert_eq!(left["position"], Value::Null);
}

#[test]
fn an_offer_left_to_expire_passes_to_the_next_entry_and_then_back_on_sale() {
    let server = Server::start(Launch::default());
    let body = json!({"id": "brief", "name": "Sale", "offer_ttl_seconds": 1, "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 2}]});
    let (status, event) = server.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{event}");
    let bookings = sell_out(&server, "brief", 1, 2);
    let first = join(&server, "brief", "first", 2)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = join(&server, "brief", "second", 2)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = server.call(
        "POST",
        &format!("/v1/bookings/{}/cancel", bookings[0]),
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200);
    let offer = entry(&server, "first", &first);
    assert_eq!(offer["status"], "offered", "{offer}");
    assert!(offer["offer_expires_at"].is_string());
    // Nobody confirms: the shard expires the offer by itself and offers the next entry.
    let deadline = Instant::now() + Duration::from_secs(15);
    let next = loop {
        let next = entry(&server, "second", &second);
        if next["status"] == "offered" || Instant::now() > deadline {
            break next;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(next["status"], "offered", "{next}");
    assert_eq!(entry(&server, "first", &first)["status"], "expired");
    assert_ne!(next["hold_id"], offer["hold_id"]);
    // The second lets it expire too: nobody waits, the tickets go back on sale.
    let deadline = Instant::now() + Duration::from_secs(15);
    while section(&server, "brief")["available"] != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = section(&server, "brief");
    assert_eq!(
        (
            s["available"].as_u64(),
            s["set_aside"].as_u64(),
            s["waiting"].as_u64()
        ),
        (Some(2), Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(entry(&server, "second", &second)["status"], "expired");
}

/// An offer is made from set-aside tickets alone (design.md: "as soon as the set-aside
/// tickets reach that entry's `qty`"): a ticket that was on sale when the entry joined stays
/// on sale and a buyer may take it; returned tickets are set aside until they reach the
/// entry's `qty`. A join for more than the section holds is 400 `qty`, and changes nothing.
#[test]
fn offers_come_from_set_aside_tickets_only_and_tickets_on_sale_stay_on_sale() {
    let server = Server::start(Launch::default());
    ga_event(&server, "rule", 5);
    let bob = user_token("bob");
    let two = json!({"items": [{"section_id": "ga", "qty": 2}]});
    let holds: Vec<String> = (0..2)
        .map(|_| {
            let (status, h) = server.call("POST", "/v1/events/rule/holds", Some(&bob), Some(&two));
            assert_eq!(status, 201, "{h}");
            h["id"].as_str().unwrap().to_string()
        })
        .collect();
    let (status, body) = server.call(
        "POST",
        "/v1/events/rule/waitlist",
        Some(&user_token("erin")),
        Some(&json!({"section_id": "ga", "qty": 6})),
    );
    assert_eq!(
        (status, code(&body), &body["error"]["field"]),
        (400, "invalid_input", &json!("qty")),
        "{body}"
    );
    let carol = join(&server, "rule", "carol", 3);
    assert_eq!(section(&server, "rule")["waiting"], 1);
    let release = |id: &str| {
        let (status, h) = server.call("DELETE", &format!("/v1/holds/{id}"), Some(&bob), None);
        assert_eq!(status, 200, "{h}");
    };
    release(&holds[0]);
    let ga = section(&server, "rule");
    assert_eq!(
        (&ga["available"], &ga["set_aside"], &ga["held"]),
        (&json!(1), &json!(2), &json!(4)),
        "{ga}"
    );
    let id = carol["id"].as_str().unwrap();
    assert_eq!(entry(&server, "carol", id)["status"], "waiting");
    // The ticket on sale is still for sale.
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let (status, b) = server.call(
        "POST",
        "/v1/events/rule/bookings",
        Some(&user_token("dave")),
        Some(&one),
    );
    assert_eq!(status, 201, "{b}");
    release(&holds[1]);
    let offered = entry(&server, "carol", id);
    assert_eq!(offered["status"], "offered", "{offered}");
    let (status, offer) = server.call(
        "GET",
        &format!("/v1/holds/{}", offered["hold_id"].as_str().unwrap()),
        Some(&user_token("carol")),
        None,
    );
    assert_eq!(
        (status, &offer["items"][0]["qty"]),
        (200, &json!(3)),
        "{offer}"
    );
    // Nobody else waits: the set-aside ticket left over goes back on sale.
    let ga = section(&server, "rule");
    assert_eq!(
        (&ga["available"], &ga["set_aside"], &ga["held"], &ga["sold"]),
        (&json!(1), &json!(0), &json!(3), &json!(1)),
        "{ga}"
    );
}
