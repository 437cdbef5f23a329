//! A sale through the real binary: concurrent buyers, conflicts, expiry, idempotency,
//! restarts, kill -9, auth, bad input, the CLI.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{
    check_counts, code, request, seat_statuses, user_token, user_token_signed, Launch, Proc,
    Server, ADMIN,
};
use serde_json::{json, Value};

fn start(dir: &std::path::Path) -> Proc {
    Proc::start(
        dir,
        &Launch {
            shards: Some(2),
            ..Launch::default()
        },
    )
}

fn ga_event(proc: &Proc, id: &str, capacity: u64) {
    let body = json!({"id": id, "name": "Sale", "sections": [{"id": "ga", "name": "GA", "price_cents": 100, "capacity": capacity}]});
    let (status, event) = proc.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{event}");
}

fn seated_event(proc: &Proc, id: &str, rows: usize, per_row: u32) {
    let labels = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"];
    let rows: Vec<Value> = labels[..rows]
        .iter()
        .map(|l| json!({"label": l, "count": per_row}))
        .collect();
    let body = json!({"id": id, "name": "Seated", "sections": [{"id": "hall", "name": "Hall", "price_cents": 100, "seats": {"rows": rows}}]});
    assert_eq!(
        proc.call("POST", "/v1/events", Some(ADMIN), Some(&body)).0,
        201
    );
}

/// Runs `buyers` concurrent requests (one thread each, released together); returns
/// (buyer, status, body) for each.
fn crowd(
    port: u16,
    buyers: usize,
    request_of: impl Fn(usize) -> (String, Value) + Send + Sync + 'static,
) -> Vec<(usize, u16, Value)> {
    let request_of = Arc::new(request_of);
    let gate = Arc::new(std::sync::Barrier::new(buyers));
    let handles: Vec<_> = (0..buyers)
        .map(|b| {
            let (request_of, gate) = (Arc::clone(&request_of), Arc::clone(&gate));
            std::thread::spawn(move || {
                let (path, body) = request_of(b);
                let token = user_token(&format!("buyer{b}"));
                gate.wait();
                let (status, reply) = request(port, "POST", &path, Some(&token), Some(&body))
                    .expect("the server answers");
                (b, status, reply)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Reads an event after checking its inventory (counts add up, seat map agrees).
fn event(proc: &Proc, id: &str) -> Value {
    harness::check_inventory(proc.port, id);
    let (status, event) = proc.call("GET", &format!("/v1/events/{id}"), None, None);
    assert_eq!(status, 200);
    check_counts(&event);
    event
}

#[test]
fn twenty_buyers_for_five_seats_exactly_five_win() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    ga_event(&proc, "five", 5);
    let results = crowd(proc.port, 20, |_| {
        (
            "/v1/events/five/holds".into(),
            json!({"items": [{"section_id": "ga", "qty": 1}]}),
        )
    });
    let won = results.iter().filter(|r| r.1 == 201).count();
    let sold_out = results
        .iter()
        .filter(|r| r.1 == 409 && code(&r.2) == "sold_out")
        .count();
    assert_eq!((won, sold_out), (5, 15), "{results:?}");
    let ev = event(&proc, "five");
    assert_eq!(ev["sections"][0]["held"], 5);
    assert_eq!(ev["sections"][0]["available"], 0);
}

#[test]
fn a_hundred_buyers_of_one_to_three_for_fifty() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    ga_event(&proc, "fifty", 50);
    let qty = |b: usize| (b * 7 + 3) % 3 + 1;
    let results = crowd(proc.port, 100, move |b| {
        (
            "/v1/events/fifty/bookings".into(),
            json!({"items": [{"section_id": "ga", "qty": qty(b)}]}),
        )
    });
    let mut bought = 0;
    for (b, status, body) in &results {
        match status {
            201 => bought += qty(*b) as u64,
            409 => assert_eq!(code(body), "sold_out", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    let ev = event(&proc, "fifty");
    assert!(bought <= 50);
    assert_eq!(
        ev["sections"][0]["sold"], bought,
        "every win is a sale and nothing more"
    );
    let smallest_loser = results
        .iter()
        .filter(|r| r.1 == 409)
        .map(|r| qty(r.0) as u64)
        .min();
    if let Some(q) = smallest_loser {
        assert!(
            50 - bought < q || bought == 50,
            "a loser could have been served: {} left, wanted {q}",
            50 - bought
        );
    }
}

#[test]
fn a_hundred_two_seat_holds_on_a_ten_by_ten_map() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    seated_event(&proc, "map", 10, 10);
    let labels = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"];
    let pick = move |b: usize| {
        let row = labels[(b * 31 + 7) % 10];
        let seat = (b * 17 + 5) % 9 + 1;
        vec![format!("{row}-{seat}"), format!("{row}-{}", seat + 1)]
    };
    let results = crowd(proc.port, 100, move |b| {
        ("/v1/events/map/holds".into(), json!({"seats": pick(b)}))
    });
    let mut taken = HashSet::new();
    let mut winners = 0;
    for (_, status, body) in &results {
        match status {
            201 => {
                winners += 1;
                for seat in body["seats"].as_array().unwrap() {
                    assert!(
                        taken.insert(seat.as_str().unwrap().to_string()),
                        "seat {seat} held twice"
                    );
                }
            }
            409 => assert_eq!(code(body), "seat_taken", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    let (_, map) = proc.call("GET", "/v1/events/map/seats", None, None);
    let held: HashSet<String> = seat_statuses(&map)
        .into_iter()
        .filter(|(_, s)| s == "held")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(held, taken);
    assert_eq!(event(&proc, "map")["sections"][0]["held"], 2 * winners);
}

#[test]
fn two_buyers_one_seat() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    seated_event(&proc, "duel", 1, 4);
    let results = crowd(proc.port, 2, |_| {
        ("/v1/events/duel/bookings".into(), json!({"seats": ["A-2"]}))
    });
    let statuses: Vec<u16> = results.iter().map(|r| r.1).collect();
    assert!(
        statuses.contains(&201) && statuses.contains(&409),
        "{results:?}"
    );
    let loser = results.iter().find(|r| r.1 == 409).unwrap();
    assert_eq!(code(&loser.2), "seat_taken");
}

#[test]
fn a_short_hold_expires_and_its_inventory_returns() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    ga_event(&proc, "brief", 3);
    let alice = user_token("alice");
    let (status, hold) = proc.call(
        "POST",
        "/v1/events/brief/holds",
        Some(&alice),
        Some(&json!({"items": [{"section_id": "ga", "qty": 3}], "ttl_seconds": 1})),
    );
    assert_eq!(status, 201);
    let id = hold["id"].as_str().unwrap();
    assert_eq!(event(&proc, "brief")["sections"][0]["available"], 0);
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body) = proc.call(
        "POST",
        &format!("/v1/holds/{id}/confirm"),
        Some(&alice),
        None,
    );
    assert_eq!((status, code(&body)), (410, "hold_expired"));
    let (_, read) = proc.call("GET", &format!("/v1/holds/{id}"), Some(&alice), None);
    assert_eq!(read["status"], "expired");
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if event(&proc, "brief")["sections"][0]["available"] == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the inventory did not return within 1 s of expiry"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idempotent_retries_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    ga_event(&proc, "retry", 10);
    let alice = user_token("alice");
    let send = |proc: &Proc, body: &str| {
        let raw = format!(
            "POST /v1/events/retry/holds HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {alice}\r\n\
             idempotency-key: cart-7\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        harness::raw(proc.port, raw.as_bytes()).unwrap()
    };
    let body = r#"{"items":[{"section_id":"ga","qty":2}]}"#;
    let first = send(&proc, body);
    assert_eq!(first.0, 201);
    assert_eq!(send(&proc, body), first);
    assert_eq!(proc.terminate(), Some(0));
    let proc = start(dir.path());
    assert_eq!(send(&proc, body), first, "the same answer after a restart");
    assert_eq!(
        event(&proc, "retry")["sections"][0]["held"],
        2,
        "and no second effect"
    );
    let other = send(&proc, r#"{"items":[{"section_id":"ga","qty":3}]}"#);
    assert_eq!((other.0, code(&other.1)), (422, "idempotency_key_reused"));
}

#[test]
fn kill_9_during_a_sale_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    ga_event(&proc, "crash", 100_000);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let port = proc.port;
    let buyers: Vec<_> = (0..8)
        .map(|t| {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                let token = user_token(&format!("k{t}"));
                for _ in 0..100_000 {
                    let body = json!({"items": [{"section_id": "ga", "qty": 1}]});
                    match request(
                        port,
                        "POST",
                        "/v1/events/crash/bookings",
                        Some(&token),
                        Some(&body),
                    ) {
                        Ok((201, b)) => acked
                            .lock()
                            .unwrap()
                            .push((token.clone(), b["id"].as_str().unwrap().to_string())),
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    proc.kill9();
    for b in buyers {
        b.join().unwrap();
    }
    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty(), "nothing was bought before the kill");
    let proc = start(dir.path());
    for (token, id) in acked.iter() {
        let (status, booking) = proc.call("GET", &format!("/v1/bookings/{id}"), Some(token), None);
        assert_eq!(
            (status, &booking["status"]),
            (200, &json!("confirmed")),
            "acknowledged booking {id}"
        );
    }
    let sold = event(&proc, "crash")["sections"][0]["sold"]
        .as_u64()
        .unwrap();
    assert!(
        sold >= acked.len() as u64,
        "sold {sold} < acknowledged {}",
        acked.len()
    );
    println!(
        "kill -9: {} bookings acknowledged, all present; {sold} sold after restart",
        acked.len()
    );
}

#[test]
fn auth_refusals_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    ga_event(&proc, "auth", 10);
    let alice = user_token("alice");
    let (_, hold) = proc.call(
        "POST",
        "/v1/events/auth/holds",
        Some(&alice),
        Some(&json!({"items": [{"section_id": "ga", "qty": 1}]})),
    );
    let hold_path = format!("/v1/holds/{}", hold["id"].as_str().unwrap());
    let wrong_signature = user_token_signed("alice", 3600, "not-the-secret");
    let expired = user_token_signed("alice", -120, harness::SECRET);
    for token in [
        None,
        Some("garbage"),
        Some(wrong_signature.as_str()),
        Some(expired.as_str()),
    ] {
        let (status, body) = proc.call("GET", &hold_path, token, None);
        assert_eq!((status, code(&body)), (401, "unauthorized"), "{token:?}");
    }
    let (status, body) = proc.call("GET", &hold_path, Some(&user_token("bob")), None);
    assert_eq!(
        (status, code(&body)),
        (404, "not_found"),
        "another user's hold does not exist for bob"
    );
    let (status, body) = proc.call(
        "POST",
        "/v1/events",
        Some(&alice),
        Some(&json!({"name": "x", "sections": []})),
    );
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, _) = proc.call("GET", &hold_path, Some(ADMIN), None);
    assert_eq!(status, 200, "the admin sees every hold");
}

#[test]
fn bad_input_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    ga_event(&proc, "strict", 10);
    let before = event(&proc, "strict");
    let alice = user_token("alice");
    let holds = "/v1/events/strict/holds";
    let section = |extra: Value| {
        let mut s = json!({"id": "s", "name": "S", "price_cents": 100, "capacity": 5});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"id": "never", "name": "Never", "sections": [s]})
    };
    // (path, token, body, the field the error must name)
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "ga", "qty": -1}]}),
            "items[0].qty",
        ),
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "ga", "qty": 0}]}),
            "items[0].qty",
        ),
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "ga", "qty": 11000}]}),
            "items", /* a total over the tickets a hold may take */
        ),
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "ga", "qty": "1"}]}),
            "items[0].qty",
        ),
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "ga"}]}),
            "items[0].qty", // a missing field is named by its own path
        ),
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "nope", "qty": 1}]}),
            "items[0].section_id",
        ),
        (holds, &alice, json!({"items": "ga"}), "items"),
        (holds, &alice, json!({}), "items"),
        (holds, &alice, json!({"seats": ["Z-1"]}), "seats[0]"),
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "ga", "qty": 1}], "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "ga", "qty": 1}], "ttl_seconds": 86_401}),
            "ttl_seconds",
        ),
        (
            holds,
            &alice,
            json!({"items": [{"section_id": "ga", "qty": 1}], "ttl_seconds": 1.5}),
            "ttl_seconds",
        ),
        (
            holds,
            ADMIN,
            json!({"items": [{"section_id": "ga", "qty": 1}]}),
            "user_id",
        ),
        (
            "/v1/events",
            ADMIN,
            section(json!({"capacity": 0})),
            "sections[0].capacity",
        ),
        (
            "/v1/events",
            ADMIN,
            section(json!({"capacity": "5"})),
            "sections[0].capacity",
        ),
        (
            "/v1/events",
            ADMIN,
            section(json!({"price_cents": -1})),
            "sections[0].price_cents",
        ),
        (
            "/v1/events",
            ADMIN,
            section(json!({"id": "no spaces"})),
            "sections[0].id",
        ),
        (
            "/v1/events",
            ADMIN,
            json!({"id": "a/b", "name": "N", "sections": [{"name": "S", "price_cents": 1, "capacity": 1}]}),
            "id",
        ),
        (
            "/v1/events",
            ADMIN,
            json!({"id": "x".repeat(65), "name": "N", "sections": [{"name": "S", "price_cents": 1, "capacity": 1}]}),
            "id",
        ),
        (
            "/v1/events",
            ADMIN,
            json!({"name": "N", "hold_ttl_seconds": 0, "sections": [{"name": "S", "price_cents": 1, "capacity": 1}]}),
            "hold_ttl_seconds",
        ),
        (
            "/v1/events",
            ADMIN,
            json!({"name": "N", "sections": []}),
            "sections",
        ),
    ];
    for (path, token, body, field) in &cases {
        let (status, error) = proc.call("POST", path, Some(token), Some(body));
        assert_eq!(
            (status, code(&error), error["error"]["field"].as_str()),
            (400, "invalid_input", Some(*field)),
            "POST {path} {body}: {error}"
        );
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "the message names the field: {error}"
        );
    }
    let (status, error) = proc.call("POST", holds, Some(&alice), Some(&json!([])));
    assert_eq!((status, code(&error)), (400, "invalid_input"), "{error}");
    let (status, list) = proc.call("GET", "/v1/events", None, None);
    assert_eq!(
        (status, list["data"].as_array().map(Vec::len)),
        (200, Some(1)),
        "no event was created"
    );
    let huge = format!(r#"{{"seats":["{}"]}}"#, "A".repeat(2 * 1024 * 1024));
    let raw = format!(
        "POST /v1/events/strict/holds HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {alice}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{huge}",
        huge.len()
    );
    let (status, error) = harness::raw(proc.port, raw.as_bytes()).unwrap();
    assert_eq!((status, code(&error)), (413, "payload_too_large"));
    let nested = "[".repeat(100_000);
    let raw = format!(
        "POST /v1/events/strict/holds HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {alice}\r\n\
         content-length: {}\r\n\r\n{nested}",
        nested.len()
    );
    assert_eq!(
        harness::raw(proc.port, raw.as_bytes()).unwrap().0,
        400,
        "deep nesting is refused, not a crash"
    );
    assert_eq!(event(&proc, "strict"), before);
    assert_eq!(proc.call("GET", "/health", None, None).0, 200);
}

#[test]
fn sigterm_lock_file_and_the_log_tools() {
    let dir = tempfile::tempdir().unwrap();
    let proc = start(dir.path());
    ga_event(&proc, "cli", 10);
    let alice = user_token("alice");
    let (status, _) = proc.call(
        "POST",
        "/v1/events/cli/bookings",
        Some(&alice),
        Some(&json!({"items": [{"section_id": "ga", "qty": 2}]})),
    );
    assert_eq!(status, 201);
    // A second server on the same directory is refused.
    let second = std::process::Command::new(harness::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(proc.terminate(), Some(0), "SIGTERM drains and exits 0");
    let tool = |args: &[&str]| {
        std::process::Command::new(harness::binary())
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let verify = tool(&["wal", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let dump = tool(&["wal", "dump"]);
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.status.success());
    assert!(
        text.contains("\"event_created\"") && text.contains("\"purchased\""),
        "{text}"
    );
    let token = tool(&["token", "--user", "carol"]);
    assert!(
        !token.status.success(),
        "no secret file and none given: a clear error, not a useless token"
    );
    assert!(String::from_utf8_lossy(&token.stderr).contains("BOXOFFICE_JWT_SECRET"));
    let token = std::process::Command::new(harness::binary())
        .args(["token", "--user", "carol", "--ttl", "10m"])
        .env("BOXOFFICE_JWT_SECRET", harness::SECRET)
        .output()
        .unwrap();
    assert!(token.status.success());
    let proc = start(dir.path());
    let carol = String::from_utf8(token.stdout).unwrap();
    let (status, page) = proc.call("GET", "/v1/bookings", Some(carol.trim()), None);
    assert_eq!(
        (status, page["data"].as_array().map(Vec::len)),
        (200, Some(0)),
        "a minted token works"
    );
    assert_eq!(
        event(&proc, "cli")["sections"][0]["sold"],
        2,
        "the restart shows everything"
    );
}

/// Sends `body` to `path` with an `Idempotency-Key` as alice; (status, body).
fn keyed(port: u16, method: &str, path: &str, key: &str, token: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let reply = harness::send(
        port,
        method,
        path,
        &[("authorization", &auth), ("idempotency-key", key)],
        Some(body),
    )
    .expect("the server answers");
    (reply.status, reply.body)
}

#[test]
fn idempotent_purchase_confirm_and_release_survive_kill_9() {
    let mut server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    let ev = json!({"id": "again", "name": "Again", "sections": [{"id": "ga", "name": "GA", "price_cents": 250, "capacity": 20}]});
    assert_eq!(
        server.call("POST", "/v1/events", Some(ADMIN), Some(&ev)).0,
        201
    );
    let alice = user_token("alice");
    let buy = r#"{"items":[{"section_id":"ga","qty":3}],"payment_ref":"pay-1"}"#;
    let hold = r#"{"items":[{"section_id":"ga","qty":2}]}"#;
    let p = server.port();
    let bought = keyed(p, "POST", "/v1/events/again/bookings", "buy-1", &alice, buy);
    assert_eq!(bought.0, 201, "{}", bought.1);
    let held = keyed(p, "POST", "/v1/events/again/holds", "hold-1", &alice, hold);
    assert_eq!(held.0, 201, "{}", held.1);
    let confirm_path = format!("/v1/holds/{}/confirm", held.1["id"].as_str().unwrap());
    let confirmed = keyed(p, "POST", &confirm_path, "confirm-1", &alice, "");
    assert_eq!(confirmed.0, 201, "{}", confirmed.1);
    let held2 = keyed(p, "POST", "/v1/events/again/holds", "hold-2", &alice, hold);
    let release_path = format!("/v1/holds/{}", held2.1["id"].as_str().unwrap());
    let released = keyed(p, "DELETE", &release_path, "release-1", &alice, "");
    assert_eq!(released.0, 200, "{}", released.1);
    let before = server.check_inventory("again");
    assert_eq!(
        (before.section("ga").sold, before.section("ga").held),
        (5, 0)
    );

    server.kill9();
    server.restart();
    let p = server.port();
    let replays = [
        ("POST", "/v1/events/again/bookings", "buy-1", buy, &bought),
        ("POST", "/v1/events/again/holds", "hold-1", hold, &held),
        ("POST", confirm_path.as_str(), "confirm-1", "", &confirmed),
        ("POST", "/v1/events/again/holds", "hold-2", hold, &held2),
        ("DELETE", release_path.as_str(), "release-1", "", &released),
    ];
    for (method, path, key, body, first) in replays {
        assert_eq!(
            &keyed(p, method, path, key, &alice, body),
            first,
            "{method} {path} with key {key} after kill -9: the same answer"
        );
    }
    assert_eq!(
        server.check_inventory("again"),
        before,
        "no retry had a second effect"
    );
    let other = keyed(
        p,
        "POST",
        "/v1/events/again/bookings",
        "buy-1",
        &alice,
        r#"{"items":[{"section_id":"ga","qty":4}]}"#,
    );
    assert_eq!((other.0, code(&other.1)), (422, "idempotency_key_reused"));
    // Keys belong to their user: bob's "buy-1" is a new request.
    let bob = user_token("bob");
    let bobs = keyed(p, "POST", "/v1/events/again/bookings", "buy-1", &bob, buy);
    assert_eq!(
        (bobs.0, &bobs.1["user_id"]),
        (201, &json!("bob")),
        "{}",
        bobs.1
    );
}

/// The parts of an error answer that a retry must repeat (`request_id` is per request).
fn refusal(answer: &(u16, Value)) -> (u16, Value, Value, Value) {
    let e = &answer.1["error"];
    (
        answer.0,
        e["code"].clone(),
        e["message"].clone(),
        e["field"].clone(),
    )
}

#[test]
fn a_keyed_refusal_gets_the_same_answer_after_the_tickets_return_and_after_kill_9() {
    let mut server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    let ev = json!({"id": "scarce", "name": "Scarce", "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 2},
        {"id": "hall", "name": "Hall", "price_cents": 900, "seats": {"rows": [{"label": "A", "count": 2}]}}]});
    let (status, body) = server.call("POST", "/v1/events", Some(ADMIN), Some(&ev));
    assert_eq!(status, 201, "{body}");
    let alice = user_token("alice");
    let bob = user_token("bob");
    let p = server.port();
    let all = r#"{"items":[{"section_id":"ga","qty":2}],"seats":["A-1"]}"#;
    let bought = keyed(p, "POST", "/v1/events/scarce/bookings", "a-1", &alice, all);
    assert_eq!(bought.0, 201, "{}", bought.1);
    // bob is refused, each time with a key: a sold-out hold and a taken seat.
    let hold = r#"{"items":[{"section_id":"ga","qty":1}]}"#;
    let seat = r#"{"seats":["A-1"]}"#;
    let sold_out = keyed(p, "POST", "/v1/events/scarce/holds", "b-1", &bob, hold);
    assert_eq!(
        (sold_out.0, code(&sold_out.1)),
        (409, "sold_out"),
        "{}",
        sold_out.1
    );
    let taken = keyed(p, "POST", "/v1/events/scarce/bookings", "b-2", &bob, seat);
    assert_eq!(
        (taken.0, code(&taken.1)),
        (409, "seat_taken"),
        "{}",
        taken.1
    );
    // alice cancels: the tickets and the seat are on sale again.
    let cancel = format!("/v1/bookings/{}/cancel", bought.1["id"].as_str().unwrap());
    assert_eq!(keyed(p, "POST", &cancel, "a-2", &alice, "").0, 200);
    let free = server.check_inventory("scarce");
    assert_eq!(free.section("ga").available, 2);
    let retries = [
        ("/v1/events/scarce/holds", "b-1", hold, &sold_out),
        ("/v1/events/scarce/bookings", "b-2", seat, &taken),
    ];
    for (path, key, body, first) in retries {
        assert_eq!(
            refusal(&keyed(p, "POST", path, key, &bob, body)),
            refusal(first),
            "{path} with key {key}: the first answer, though the tickets came back"
        );
    }
    server.kill9();
    server.restart();
    let p = server.port();
    for (path, key, body, first) in retries {
        assert_eq!(
            refusal(&keyed(p, "POST", path, key, &bob, body)),
            refusal(first),
            "{path} with key {key} after kill -9: the first answer"
        );
    }
    assert_eq!(
        server.check_inventory("scarce"),
        free,
        "the retries changed nothing"
    );
    // The same key with another body is reused; a new key is a new attempt, and wins.
    let other = keyed(
        p,
        "POST",
        "/v1/events/scarce/holds",
        "b-1",
        &bob,
        r#"{"items":[{"section_id":"ga","qty":2}]}"#,
    );
    assert_eq!((other.0, code(&other.1)), (422, "idempotency_key_reused"));
    let again = keyed(p, "POST", "/v1/events/scarce/holds", "b-3", &bob, hold);
    assert_eq!(
        (again.0, &again.1["user_id"]),
        (201, &json!("bob")),
        "{}",
        again.1
    );
}

#[test]
fn a_hold_is_released_confirmed_cancelled_and_each_conflict_answers_as_documented() {
    let mut server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    let ev = json!({"id": "life", "name": "Life", "max_per_user": 4, "sections": [
        {"id": "ga", "name": "GA", "price_cents": 1000, "capacity": 10},
        {"id": "hall", "name": "Hall", "price_cents": 5000, "seats": {"rows": [{"label": "A", "count": 5}]}}]});
    let (status, created) = server.call("POST", "/v1/events", Some(ADMIN), Some(&ev));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["max_per_user"], 4);
    assert_eq!(created["sections"][1]["kind"], "seated");
    assert_eq!(created["sections"][1]["capacity"], 5);
    let (status, again) = server.call("POST", "/v1/events", Some(ADMIN), Some(&ev));
    assert_eq!((status, code(&again)), (409, "event_exists"));
    let alice = user_token("alice");
    let a = Some(alice.as_str());

    // Place and release: the inventory returns; a released hold cannot be confirmed.
    let two = json!({"items": [{"section_id": "ga", "qty": 2}]});
    let (status, hold) = server.call("POST", "/v1/events/life/holds", a, Some(&two));
    assert_eq!((status, &hold["status"]), (201, &json!("held")), "{hold}");
    assert_eq!(hold["total_cents"], 2000);
    let hold_path = format!("/v1/holds/{}", hold["id"].as_str().unwrap());
    assert_eq!(server.check_inventory("life").section("ga").held, 2);
    let (status, released) = server.call("DELETE", &hold_path, a, None);
    assert_eq!((status, &released["status"]), (200, &json!("released")));
    assert_eq!(server.check_inventory("life").section("ga").available, 10);
    let (status, body) = server.call("POST", &format!("{hold_path}/confirm"), a, None);
    assert_eq!((status, code(&body)), (409, "hold_not_active"));

    // Place (GA and a seat) and confirm; a second confirm is refused.
    let mixed = json!({"items": [{"section_id": "ga", "qty": 2}], "seats": ["A-3"]});
    let (status, hold) = server.call("POST", "/v1/events/life/holds", a, Some(&mixed));
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["total_cents"], 7000);
    let hold_path = format!("/v1/holds/{}", hold["id"].as_str().unwrap());
    let pay = json!({"payment_ref": "card-42"});
    let (status, booking) = server.call("POST", &format!("{hold_path}/confirm"), a, Some(&pay));
    assert_eq!(status, 201, "{booking}");
    assert_eq!(
        (
            &booking["status"],
            &booking["payment_ref"],
            &booking["hold_id"]
        ),
        (&json!("confirmed"), &json!("card-42"), &hold["id"])
    );
    let (status, body) = server.call("POST", &format!("{hold_path}/confirm"), a, None);
    assert_eq!((status, code(&body)), (409, "hold_not_active"));
    assert_eq!(
        server.call("GET", &hold_path, a, None).1["status"],
        "confirmed"
    );
    let inv = server.check_inventory("life");
    assert_eq!((inv.section("ga").sold, inv.section("hall").sold), (2, 1));
    assert_eq!(inv.seats[&("hall".to_string(), "A-3".to_string())], "sold");

    // The cap counts what alice owns (3) plus what she holds.
    let (status, body) = server.call("POST", "/v1/events/life/holds", a, Some(&two));
    assert_eq!((status, code(&body)), (409, "limit_exceeded"), "{body}");
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let (status, last) = server.call("POST", "/v1/events/life/bookings", a, Some(&one));
    assert_eq!(status, 201, "{last}");
    let (status, body) = server.call("POST", "/v1/events/life/holds", a, Some(&one));
    assert_eq!((status, code(&body)), (409, "limit_exceeded"), "{body}");

    // Seats taken and sections sold out.
    let bob = user_token("bob");
    let b = Some(bob.as_str());
    let (status, body) = server.call(
        "POST",
        "/v1/events/life/holds",
        b,
        Some(&json!({"seats": ["A-3"]})),
    );
    assert_eq!((status, code(&body)), (409, "seat_taken"));
    let four = json!({"items": [{"section_id": "ga", "qty": 4}]});
    let (status, body) = server.call("POST", "/v1/events/life/bookings", b, Some(&four));
    assert_eq!(status, 201, "{body}");
    let dave = user_token("dave");
    let d = Some(dave.as_str());
    let (status, body) = server.call("POST", "/v1/events/life/holds", d, Some(&four));
    assert_eq!((status, code(&body)), (409, "sold_out"), "3 left: {body}");
    // The cap is checked before the inventory (the engine's documented precedence).
    let eight = json!({"items": [{"section_id": "ga", "qty": 8}]});
    let (status, body) = server.call("POST", "/v1/events/life/holds", d, Some(&eight));
    assert_eq!((status, code(&body)), (409, "limit_exceeded"), "{body}");

    // The admin acts for a user only by naming them; a user cannot name another.
    let (status, body) = server.call("POST", "/v1/events/life/holds", Some(ADMIN), Some(&one));
    assert_eq!(
        (status, code(&body), &body["error"]["field"]),
        (400, "invalid_input", &json!("user_id"))
    );
    let for_carol = json!({"user_id": "carol", "items": [{"section_id": "ga", "qty": 1}]});
    let (status, carols) = server.call(
        "POST",
        "/v1/events/life/holds",
        Some(ADMIN),
        Some(&for_carol),
    );
    assert_eq!((status, &carols["user_id"]), (201, &json!("carol")));
    let (status, body) = server.call("POST", "/v1/events/life/holds", b, Some(&for_carol));
    assert_eq!((status, code(&body)), (403, "forbidden"));

    // Cancel: the inventory returns; a second cancel is refused.
    let booking_path = format!("/v1/bookings/{}", booking["id"].as_str().unwrap());
    let (status, cancelled) = server.call("POST", &format!("{booking_path}/cancel"), a, None);
    assert_eq!((status, &cancelled["status"]), (200, &json!("cancelled")));
    assert!(cancelled["cancelled_at"].is_string(), "{cancelled}");
    let (status, body) = server.call("POST", &format!("{booking_path}/cancel"), a, None);
    assert_eq!((status, code(&body)), (409, "booking_not_active"));
    let inv = server.check_inventory("life");
    assert_eq!((inv.section("ga").sold, inv.section("hall").sold), (5, 0));

    // Alice's bookings, newest first, one page at a time; bob has none.
    let mut ids = Vec::new();
    let mut after = String::new();
    for _ in 0..10 {
        let (status, page) = server.call("GET", &format!("/v1/bookings?limit=1{after}"), a, None);
        assert_eq!(status, 200, "{page}");
        ids.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => after = format!("&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(ids, vec![last["id"].clone(), booking["id"].clone()]);
    let (_, page) = server.call("GET", "/v1/bookings?event_id=life", d, None);
    assert_eq!(page["data"], json!([]));
    let (_, page) = server.call("GET", "/v1/bookings?user_id=alice", Some(ADMIN), None);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2), "{page}");

    // Unknown ids.
    for path in [
        "/v1/events/nope",
        "/v1/events/nope/seats",
        "/v1/holds/h-0-999999",
        "/v1/bookings/b-1-999999",
    ] {
        let (status, body) = server.call("GET", path, Some(ADMIN), None);
        assert_eq!((status, code(&body)), (404, "not_found"), "{path}");
    }

    // A clean restart shows exactly the same.
    let event = server.call("GET", "/v1/events/life", None, None).1;
    let booking_now = server.call("GET", &booking_path, a, None).1;
    server.restart();
    assert_eq!(server.call("GET", "/v1/events/life", None, None).1, event);
    assert_eq!(server.call("GET", &booking_path, a, None).1, booking_now);
}

#[test]
fn sigterm_during_a_sale_drains_and_keeps_every_acknowledged_booking() {
    let mut server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    ga_event(server.proc(), "drain", 1_000_000);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let port = server.port();
    let buyers: Vec<_> = (0..6)
        .map(|t| {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                let token = user_token(&format!("d{t}"));
                let body = json!({"items": [{"section_id": "ga", "qty": 1}]});
                for _ in 0..100_000 {
                    match request(
                        port,
                        "POST",
                        "/v1/events/drain/bookings",
                        Some(&token),
                        Some(&body),
                    ) {
                        Ok((201, b)) => acked
                            .lock()
                            .unwrap()
                            .push((token.clone(), b["id"].as_str().unwrap().to_string())),
                        Ok((503, b)) => assert_eq!(code(&b), "unavailable", "{b}"),
                        Ok((status, b)) => panic!("{status}: {b}"),
                        Err(_) => break, // no longer accepting
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.terminate(); // asserts exit 0
    for b in buyers {
        b.join().unwrap();
    }
    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty(), "nothing was bought before SIGTERM");
    server.restart();
    for (token, id) in acked.iter() {
        let (status, booking) =
            server.call("GET", &format!("/v1/bookings/{id}"), Some(token), None);
        assert_eq!(
            (status, &booking["status"]),
            (200, &json!("confirmed")),
            "{id}"
        );
    }
    let sold = server.check_inventory("drain").section("ga").sold;
    assert_eq!(
        sold,
        acked.len() as u64,
        "a drained shutdown answers every sale it made"
    );
    println!(
        "SIGTERM mid-sale: {} bookings acknowledged, all present",
        acked.len()
    );
}

#[test]
fn operations_routes_answer_and_unknown_routes_get_the_error_shape() {
    let server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    ga_event(server.proc(), "ops", 5);
    let (status, health) = server.call("GET", "/health", None, None);
    assert_eq!((status, health), (200, json!({"status": "ok"})));
    let (status, ready) = server.call("GET", "/ready", None, None);
    assert_eq!(
        (status, &ready["status"]),
        (200, &json!("ready")),
        "{ready}"
    );
    assert_eq!(ready["shards"].as_array().map(Vec::len), Some(2), "{ready}");
    let alice = user_token("alice");
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    assert_eq!(
        server
            .call("POST", "/v1/events/ops/bookings", Some(&alice), Some(&one))
            .0,
        201
    );
    let metrics = harness::send(server.port(), "GET", "/metrics", &[], None).unwrap();
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().expect("Prometheus text");
    for name in [
        "boxoffice_http_requests_total",
        "boxoffice_http_request_duration_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    let (status, doc) = server.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    for path in ["/v1/events", "/v1/holds/{hold_id}/confirm", "/v1/bookings"] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} not in /openapi.json"
        );
    }
    let (status, body) = server.call("GET", "/v1/nothing-here", None, None);
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (status, body) = server.call("PUT", "/v1/events", Some(ADMIN), Some(&json!({})));
    assert_eq!((status, code(&body)), (405, "method_not_allowed"), "{body}");
    let (status, page) = server.call("GET", "/v1/events?limit=1", None, None);
    assert_eq!((status, page["data"][0]["id"].as_str()), (200, Some("ops")));
}

/// The names of the shard metrics missing from `/metrics` after a sale (polled ≤ 3 s,
/// since the shard records them around its fsync, not before the reply).
fn missing_shard_metrics(server: &Server) -> Vec<&'static str> {
    let names = [
        "boxoffice_wal_fsync_seconds",
        "boxoffice_shard_batch_size",
        "boxoffice_holds_live",
        "boxoffice_tickets_sold",
    ];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let metrics = harness::send(server.port(), "GET", "/metrics", &[], None).unwrap();
        let text = metrics.body.as_str().unwrap_or_default().to_string();
        let missing: Vec<_> = names.into_iter().filter(|n| !text.contains(n)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_start_reports_its_shard_metrics() {
    // Start several servers at once, as a busy CI machine would, so that a shard thread
    // that registers its metrics before the recorder exists is likely to show up.
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    Server::start(Launch {
                        shards: Some(4),
                        ..Launch::default()
                    })
                })
            })
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let alice = user_token("alice");
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let mut without = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        ga_event(server.proc(), "metered", 5);
        let (status, _) = server.call(
            "POST",
            "/v1/events/metered/bookings",
            Some(&alice),
            Some(&one),
        );
        assert_eq!(status, 201);
        let missing = missing_shard_metrics(server);
        if !missing.is_empty() {
            without.push((i, missing));
        }
    }
    assert!(
        without.is_empty(),
        "servers without shard metrics: {without:?}"
    );
}
