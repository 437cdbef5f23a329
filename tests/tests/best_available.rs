//! Best available and hold extension through the real binary: the engine picks the
//! seats on the shard, the answer names them, and both survive a restart.

use std::collections::BTreeMap;

use harness::{code, seat_statuses, user_token, Launch, Server, ADMIN};
use serde_json::{json, Value};

fn seated(server: &Server, id: &str, rows: &[(&str, u32)]) {
    let rows: Vec<Value> = rows
        .iter()
        .map(|(l, c)| json!({"label": l, "count": c}))
        .collect();
    let body = json!({"id": id, "name": "Hall", "sections": [
        {"id": "hall", "name": "Hall", "price_cents": 500, "seats": {"rows": rows}},
        {"id": "ga", "name": "Floor", "price_cents": 100, "capacity": 10}]});
    let (status, reply) = server.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{reply}");
}

fn seat_map(server: &Server, event: &str) -> BTreeMap<String, String> {
    let (status, map) = server.call("GET", &format!("/v1/events/{event}/seats"), None, None);
    assert_eq!(status, 200);
    seat_statuses(&map).into_iter().collect()
}

fn seats_of(reply: &Value) -> Vec<String> {
    reply["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| s.as_str().expect("a seat id").to_string())
        .collect()
}

#[test]
fn best_available_holds_and_purchases_pick_centred_blocks_without_orphans() {
    let server = Server::start(Launch::default());
    seated(&server, "bash", &[("A", 10), ("B", 10)]);
    let ann = user_token("ann");
    let (status, hold) = server.call(
        "POST",
        "/v1/events/bash/holds",
        Some(&ann),
        Some(&json!({"best_available": {"section_id": "hall", "qty": 3}, "items": [{"section_id": "ga", "qty": 1}]})),
    );
    assert_eq!(status, 201, "{hold}");
    assert_eq!(seats_of(&hold), ["A-4", "A-5", "A-6"]);
    assert_eq!(hold["total_cents"], 1600);
    assert_eq!(hold["items"][0]["qty"], 1);
    // Left of the block 3 seats are free, right of it 4: a pair on the left would
    // strand a seat, so the pair goes right, against the block.
    let (status, booking) = server.call(
        "POST",
        "/v1/events/bash/bookings",
        Some(&ann),
        Some(&json!({"best_available": {"qty": 2}, "payment_ref": "pay-1"})),
    );
    assert_eq!(status, 201, "{booking}");
    assert_eq!(seats_of(&booking), ["A-7", "A-8"]);
    assert_eq!(booking["status"], "confirmed");
    let statuses = seat_map(&server, "bash");
    for (seat, want) in [
        ("A-4", "held"),
        ("A-7", "sold"),
        ("A-8", "sold"),
        ("A-3", "free"),
    ] {
        assert_eq!(statuses[seat], want, "{seat}");
    }
    // Named seats and best available together are refused, naming the field.
    let (status, reply) = server.call(
        "POST",
        "/v1/events/bash/holds",
        Some(&ann),
        Some(&json!({"seats": ["B-1"], "best_available": {"qty": 1}})),
    );
    assert_eq!((status, code(&reply)), (400, "invalid_input"));
    assert_eq!(reply["error"]["field"], "best_available");
    let (status, reply) = server.call(
        "POST",
        "/v1/events/bash/holds",
        Some(&ann),
        Some(&json!({"best_available": {"section_id": "ga", "qty": 1}})),
    );
    assert_eq!((status, code(&reply)), (400, "invalid_input"));
    assert_eq!(reply["error"]["field"], "best_available.section_id");
    let (status, reply) = server.call(
        "POST",
        "/v1/events/bash/holds",
        Some(&ann),
        Some(&json!({"best_available": {"qty": 0}})),
    );
    assert_eq!((status, code(&reply)), (400, "invalid_input"));
    assert_eq!(reply["error"]["field"], "best_available.qty");
}

#[test]
fn no_adjacent_seats_then_a_split_then_sold_out_and_the_choice_survives_restart() {
    let mut server = Server::start(Launch::default());
    seated(&server, "tiny", &[("A", 3), ("B", 2)]);
    let bob = user_token("bob");
    let hold = |server: &Server, body: Value| {
        server.call("POST", "/v1/events/tiny/holds", Some(&bob), Some(&body))
    };
    let (status, _) = hold(&server, json!({"seats": ["A-2", "B-1"]}));
    assert_eq!(status, 201);
    // Free, B-2. Three free, never two together.
    let (status, reply) = hold(&server, json!({"best_available": {"qty": 2}}));
    assert_eq!(
        (status, code(&reply)),
        (409, "no_adjacent_seats"),
        "{reply}"
    );
    let (status, split) = hold(
        &server,
        json!({"best_available": {"qty": 2, "allow_split": true}}),
    );
    assert_eq!(status, 201, "{split}");
    assert_eq!(seats_of(&split), ["A-1", "A-3"]);
    let (status, reply) = hold(
        &server,
        json!({"best_available": {"qty": 2, "allow_split": true}}),
    );
    assert_eq!((status, code(&reply)), (409, "sold_out"), "{reply}");
    server.kill9();
    server.restart();
    let (status, again) = server.call(
        "GET",
        &format!("/v1/holds/{}", split["id"].as_str().unwrap()),
        Some(&bob),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(seats_of(&again), ["A-1", "A-3"]);
    let statuses = seat_map(&server, "tiny");
    assert_eq!(statuses["B-2"], "free");
    assert_eq!(statuses["A-3"], "held");
}

#[test]
fn a_hold_is_extended_within_two_hours_of_its_creation_and_keeps_it_across_restart() {
    let mut server = Server::start(Launch::default());
    seated(&server, "ext", &[("A", 4)]);
    let cat = user_token("cat");
    let (status, hold) = server.call(
        "POST",
        "/v1/events/ext/holds",
        Some(&cat),
        Some(&json!({"items": [{"section_id": "ga", "qty": 2}], "ttl_seconds": 60})),
    );
    assert_eq!(status, 201);
    let id = hold["id"].as_str().unwrap().to_string();
    let path = format!("/v1/holds/{id}/extend");
    let (status, extended) = server.call(
        "POST",
        &path,
        Some(&cat),
        Some(&json!({"ttl_seconds": 3600})),
    );
    assert_eq!(status, 200, "{extended}");
    assert_eq!(extended["status"], "held");
    assert!(
        extended["expires_at"].as_str().unwrap() > hold["expires_at"].as_str().unwrap(),
        "{extended}"
    );
    let (status, reply) = server.call(
        "POST",
        &path,
        Some(&cat),
        Some(&json!({"ttl_seconds": 7300})),
    );
    assert_eq!((status, code(&reply)), (409, "extension_limit"), "{reply}");
    let (status, reply) = server.call("POST", &path, Some(&cat), Some(&json!({"ttl_seconds": 0})));
    assert_eq!((status, code(&reply)), (400, "invalid_input"));
    assert_eq!(reply["error"]["field"], "ttl_seconds");
    let (status, reply) = server.call("POST", &path, Some(&cat), Some(&json!({})));
    assert_eq!((status, code(&reply)), (400, "invalid_input"), "{reply}");
    let (status, _) = server.call(
        "POST",
        &path,
        Some(&user_token("dan")),
        Some(&json!({"ttl_seconds": 60})),
    );
    assert_eq!(status, 404);
    server.kill9();
    server.restart();
    let (status, after) = server.call("GET", &format!("/v1/holds/{id}"), Some(&cat), None);
    assert_eq!(status, 200);
    assert_eq!(after["expires_at"], extended["expires_at"]);
    // A released hold cannot be extended.
    let (status, _) = server.call("DELETE", &format!("/v1/holds/{id}"), Some(&cat), None);
    assert_eq!(status, 200);
    let (status, reply) = server.call("POST", &path, Some(&cat), Some(&json!({"ttl_seconds": 60})));
    assert_eq!((status, code(&reply)), (409, "hold_not_active"));
}

#[test]
fn concurrent_best_available_buyers_get_disjoint_adjacent_seats_until_sold_out() {
    let server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    let rows: Vec<(String, u32)> = (0..10).map(|r| (format!("R{r}"), 20)).collect();
    let rows: Vec<(&str, u32)> = rows.iter().map(|(l, c)| (l.as_str(), *c)).collect();
    seated(&server, "rush", &rows);
    let port = server.port();
    let buyers: Vec<_> = (0..32)
        .map(|b| {
            std::thread::spawn(move || {
                let token = user_token(&format!("buyer{b}"));
                let mut got: Vec<Vec<String>> = Vec::new();
                for i in 0..20 {
                    let qty = 1 + (b + i) % 4;
                    let body = json!({"best_available": {"section_id": "hall", "qty": qty}});
                    let (status, reply) = harness::request(
                        port,
                        "POST",
                        "/v1/events/rush/bookings",
                        Some(&token),
                        Some(&body),
                    )
                    .expect("the server answers");
                    match status {
                        201 => got.push(seats_of(&reply)),
                        409 => assert!(
                            ["sold_out", "no_adjacent_seats"].contains(&code(&reply)),
                            "{reply}"
                        ),
                        503 => {}
                        other => panic!("{other} {reply}"),
                    }
                }
                got
            })
        })
        .collect();
    let mut owned = std::collections::BTreeSet::new();
    for b in buyers {
        for seats in b.join().expect("a buyer") {
            // Adjacent in one row: same row label, consecutive numbers.
            let parsed: Vec<(String, u32)> = seats
                .iter()
                .map(|s| {
                    let (row, n) = s.rsplit_once('-').unwrap();
                    (row.to_string(), n.parse().unwrap())
                })
                .collect();
            assert!(parsed.iter().all(|(r, _)| *r == parsed[0].0), "{seats:?}");
            assert!(parsed.windows(2).all(|w| w[1].1 == w[0].1 + 1), "{seats:?}");
            for s in seats {
                assert!(owned.insert(s.clone()), "{s} sold twice");
            }
        }
    }
    let map = seat_map(&server, "rush");
    let sold: std::collections::BTreeSet<String> = map
        .iter()
        .filter(|(_, st)| st.as_str() == "sold")
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(sold, owned, "the seat map shows exactly the seats sold");
    let (_, event) = server.call("GET", "/v1/events/rush", None, None);
    assert_eq!(
        event["sections"][0]["sold"].as_u64(),
        Some(owned.len() as u64)
    );
}

/// Without `section_id` the picker tries every seated section, one after the other, and
/// never splits a request across two: when no section can place `qty` seats but the
/// sections have `qty` free seats between them, the buyer is told 409 `no_adjacent_seats`
/// (seats are left), not `sold_out`; `sold_out` once fewer are free in all of them.
/// Nothing is held by a refusal.
#[test]
fn seats_free_only_across_sections_are_no_adjacent_seats_not_sold_out() {
    let server = Server::start(Launch::default());
    let body = json!({"id": "two", "name": "Two rooms", "sections": [
        {"id": "left", "name": "Left", "price_cents": 500, "seats": {"rows": [{"label": "A", "count": 2}]}},
        {"id": "right", "name": "Right", "price_cents": 500, "seats": {"rows": [{"label": "B", "count": 2}]}}]});
    let (status, reply) = server.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{reply}");
    let bob = user_token("bob");
    let hold = |body: Value| server.call("POST", "/v1/events/two/holds", Some(&bob), Some(&body));
    for best in [json!({"qty": 3}), json!({"qty": 3, "allow_split": true})] {
        let (status, reply) = hold(json!({ "best_available": best }));
        assert_eq!(
            (status, code(&reply)),
            (409, "no_adjacent_seats"),
            "{best}: {reply}"
        );
    }
    assert!(seat_map(&server, "two").values().all(|s| s == "free"));
    let (status, _) = hold(json!({"seats": ["A-1"]}));
    assert_eq!(status, 201);
    // Three free (A-2, B-1, B-2): still no section has three.
    let (status, reply) = hold(json!({"best_available": {"qty": 3, "allow_split": true}}));
    assert_eq!(
        (status, code(&reply)),
        (409, "no_adjacent_seats"),
        "{reply}"
    );
    let (status, _) = hold(json!({"seats": ["B-1"]}));
    assert_eq!(status, 201);
    let (status, reply) = hold(json!({"best_available": {"qty": 3}}));
    assert_eq!((status, code(&reply)), (409, "sold_out"), "{reply}");
    // A request one section can place is placed, in the first section that can.
    let (status, one) = hold(json!({"best_available": {"qty": 1}}));
    assert_eq!(
        (status, seats_of(&one)),
        (201, vec!["A-2".to_string()]),
        "{one}"
    );
    let statuses = seat_map(&server, "two");
    assert_eq!(statuses["B-2"], "free");
    assert_eq!(statuses.values().filter(|s| *s == "held").count(), 3);
}
