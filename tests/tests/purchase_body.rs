//! A purchase takes the body of a hold plus `payment_ref` (docs/api.md), so a client that
//! sends a hold's `ttl_seconds` with a purchase is answered as a hold's body would be: a
//! TTL out of range is 400 naming `ttl_seconds` and buys nothing; a valid one is accepted
//! and changes nothing, since a purchase leaves no live hold.

use harness::{check_counts, code, user_token, Launch, Server, ADMIN};
use serde_json::{json, Value};

fn sections(server: &Server) -> Value {
    harness::check_inventory(server.port(), "buy");
    let (status, event) = server.call("GET", "/v1/events/buy", None, None);
    assert_eq!(status, 200, "{event}");
    check_counts(&event);
    event["sections"].clone()
}

#[test]
fn a_purchase_checks_ttl_seconds_as_a_hold_does_and_a_valid_one_changes_nothing() {
    let server = Server::start(Launch::default());
    let event = json!({"id": "buy", "name": "Buy", "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 10}]});
    let (status, reply) = server.call("POST", "/v1/events", Some(ADMIN), Some(&event));
    assert_eq!(status, 201, "{reply}");
    let before = sections(&server);
    let alice = user_token("alice");
    let path = "/v1/events/buy/bookings";

    for ttl in [json!(0), json!(86_401), json!(1.5)] {
        let body = json!({"items": [{"section_id": "ga", "qty": 1}], "ttl_seconds": ttl,
            "payment_ref": "pay_1"});
        let (status, error) = server.call("POST", path, Some(&alice), Some(&body));
        assert_eq!(
            (status, code(&error), error["error"]["field"].as_str()),
            (400, "invalid_input", Some("ttl_seconds")),
            "{body}: {error}"
        );
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("ttl_seconds")),
            "the message names the field: {error}"
        );
    }
    assert_eq!(
        sections(&server),
        before,
        "a refused purchase bought nothing"
    );

    for ttl in [1, 86_400] {
        let body = json!({"items": [{"section_id": "ga", "qty": 2}], "ttl_seconds": ttl,
            "payment_ref": "pay_2"});
        let (status, booking) = server.call("POST", path, Some(&alice), Some(&body));
        assert_eq!(status, 201, "{body}: {booking}");
        assert_eq!(booking["status"], "confirmed", "{booking}");
        assert_eq!(booking["payment_ref"], "pay_2", "{booking}");
        // Its hold is confirmed at once: nothing is left to expire.
        let hold_id = booking["hold_id"]
            .as_str()
            .expect("a purchase names its hold");
        let (status, hold) =
            server.call("GET", &format!("/v1/holds/{hold_id}"), Some(&alice), None);
        assert_eq!(
            (status, hold["status"].as_str()),
            (200, Some("confirmed")),
            "{hold}"
        );
    }
    let after = sections(&server);
    assert_eq!(
        (&after[0]["sold"], &after[0]["held"], &after[0]["available"]),
        (&json!(4), &json!(0), &json!(6)),
        "{after}"
    );
}
