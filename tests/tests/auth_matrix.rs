//! The auth matrix: every authenticated route × (no token, garbage, wrong signature,
//! expired, another user's token, a user token on an admin route) gives the documented
//! status, and nothing changes. Another user's hold or booking is 404: its existence is
//! not revealed.

use harness::{code, user_token, user_token_signed, Launch, Proc, ADMIN, SECRET};
use serde_json::{json, Value};

#[test]
fn every_route_refuses_every_bad_token_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::start(dir.path(), &Launch::default());
    let event = json!({"id": "auth", "name": "Auth", "sections": [{"id": "ga", "name": "GA", "price_cents": 1, "capacity": 100}]});
    assert_eq!(
        proc.call("POST", "/v1/events", Some(ADMIN), Some(&event)).0,
        201
    );
    let alice = user_token("alice");
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let (_, hold) = proc.call("POST", "/v1/events/auth/holds", Some(&alice), Some(&one));
    let (_, booking) = proc.call("POST", "/v1/events/auth/bookings", Some(&alice), Some(&one));
    let hold = hold["id"].as_str().unwrap().to_string();
    let booking = booking["id"].as_str().unwrap().to_string();
    let before = proc.call("GET", "/v1/events/auth", None, None).1;

    let for_alice = json!({"user_id": "alice", "items": [{"section_id": "ga", "qty": 1}]});
    // (method, path, body, status for another user's token)
    let routes: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("POST", "/v1/events".into(), Some(event.clone()), 403),
        (
            "POST",
            "/v1/events/auth/holds".into(),
            Some(for_alice.clone()),
            403,
        ),
        ("GET", format!("/v1/holds/{hold}"), None, 404),
        ("POST", format!("/v1/holds/{hold}/confirm"), None, 404),
        ("DELETE", format!("/v1/holds/{hold}"), None, 404),
        (
            "POST",
            "/v1/events/auth/bookings".into(),
            Some(for_alice),
            403,
        ),
        ("GET", format!("/v1/bookings/{booking}"), None, 404),
        ("POST", format!("/v1/bookings/{booking}/cancel"), None, 404),
        ("GET", "/v1/bookings?user_id=alice".into(), None, 403),
        ("GET", "/v1/bookings".into(), None, 200),
        ("GET", "/v1/bookings?event_id=auth".into(), None, 200),
    ];
    let wrong_signature = user_token_signed("alice", 3600, "another-secret");
    let expired = user_token_signed("alice", -300, SECRET);
    // A token that says it is not signed ("alg": "none") is not a token.
    let unsigned = {
        let part = |v: Value| base64_url(v.to_string().as_bytes());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        format!(
            "{}.{}.",
            part(json!({"alg": "none", "typ": "JWT"})),
            part(json!({"sub": "alice", "iat": now, "exp": now + 3600}))
        )
    };
    let bob = user_token("bob");
    let mut checked = 0;
    for (method, path, body, other_user) in &routes {
        let bearer = |t: &str| format!("Bearer {t}");
        for (label, authorization, want) in [
            ("no token", None, 401),
            ("garbage", Some(bearer("not-a-token")), 401),
            ("an empty bearer", Some("Bearer ".to_string()), 401),
            ("another scheme", Some(format!("Basic {ADMIN}")), 401),
            (
                "the admin token in upper case",
                Some(bearer(&ADMIN.to_uppercase())),
                401,
            ),
            ("wrong signature", Some(bearer(&wrong_signature)), 401),
            ("alg none", Some(bearer(&unsigned)), 401),
            ("expired", Some(bearer(&expired)), 401),
            ("another user's token", Some(bearer(&bob)), *other_user),
        ] {
            let headers: Vec<(&str, &str)> = authorization
                .as_deref()
                .map(|a| vec![("authorization", a)])
                .unwrap_or_default();
            let body = body.as_ref().map(Value::to_string);
            let reply = harness::send(proc.port, method, path, &headers, body.as_deref())
                .expect("the server answers");
            let (status, reply) = (reply.status, reply.body);
            assert_eq!(status, want, "{method} {path} with {label}: {reply}");
            let expected_code = match want {
                200 => {
                    assert_eq!(
                        reply["data"],
                        json!([]),
                        "{method} {path}: bob sees only his own"
                    );
                    ""
                }
                401 => "unauthorized",
                403 => "forbidden",
                _ => "not_found",
            };
            assert_eq!(code(&reply), expected_code, "{method} {path} with {label}");
            checked += 1;
        }
    }
    println!("auth matrix: {checked} route × token combinations checked");
    assert_eq!(
        proc.call("GET", "/v1/events/auth", None, None).1,
        before,
        "no refusal changed anything"
    );
    let (status, still) = proc.call("GET", &format!("/v1/holds/{hold}"), Some(&alice), None);
    assert_eq!((status, &still["status"]), (200, &json!("held")));
    let (status, still) = proc.call(
        "GET",
        &format!("/v1/bookings/{booking}"),
        Some(&alice),
        None,
    );
    assert_eq!((status, &still["status"]), (200, &json!("confirmed")));
    // Bob's own list is empty: a user lists only their own bookings.
    let (status, page) = proc.call("GET", "/v1/bookings", Some(&bob), None);
    assert_eq!(
        (status, page["data"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

/// Base64url without padding (RFC 4648 §5), for hand-made tokens.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// A token from a standard issuer works whatever its `sub` looks like (RFC 7519: any string
/// or URI): the user holds, buys and lists their own bookings, the admin finds them by that
/// id, and the answers carry it exactly. A `sub` with a control character is still 401, and
/// the admin naming such a user is 400 `user_id`, with nothing done.
#[test]
fn a_token_whose_sub_is_an_issuers_id_or_a_uri_acts_for_that_user() {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::start(dir.path(), &Launch::default());
    let event = json!({"id": "subs", "name": "Subs", "sections": [{"id": "ga", "name": "GA", "price_cents": 1, "capacity": 100}]});
    assert_eq!(
        proc.call("POST", "/v1/events", Some(ADMIN), Some(&event)).0,
        201
    );
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let subs = [
        "auth0|5f7c8ec7c33c6c004bbafe82",
        "google-oauth2|109384756102938475610",
        "https://issuer.example/users/42",
        "Zoë Müller",
    ];
    for sub in subs {
        let token = user_token(sub);
        let (status, hold) = proc.call("POST", "/v1/events/subs/holds", Some(&token), Some(&one));
        assert_eq!((status, &hold["user_id"]), (201, &json!(sub)), "{hold}");
        let (status, booking) =
            proc.call("POST", "/v1/events/subs/bookings", Some(&token), Some(&one));
        assert_eq!(
            (status, &booking["user_id"]),
            (201, &json!(sub)),
            "{booking}"
        );
        let (status, mine) = proc.call("GET", "/v1/bookings", Some(&token), None);
        assert_eq!(status, 200, "{mine}");
        let ids: Vec<&Value> = mine["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| &b["id"])
            .collect();
        assert_eq!(ids, vec![&booking["id"]], "{sub}: only their own booking");
        let query: String = sub
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (status, theirs) = proc.call(
            "GET",
            &format!("/v1/bookings?user_id={query}"),
            Some(ADMIN),
            None,
        );
        assert_eq!(status, 200, "{theirs}");
        assert_eq!(
            theirs["data"].as_array().unwrap().len(),
            1,
            "{sub}: {theirs}"
        );
        assert_eq!(theirs["data"][0]["user_id"], json!(sub));
    }
    let before = proc.call("GET", "/v1/events/subs", None, None).1;
    let control = user_token("alice\nbob");
    let (status, body) = proc.call("POST", "/v1/events/subs/holds", Some(&control), Some(&one));
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    let for_control = json!({"user_id": "alice\u{7}", "items": [{"section_id": "ga", "qty": 1}]});
    let (status, body) = proc.call(
        "POST",
        "/v1/events/subs/holds",
        Some(ADMIN),
        Some(&for_control),
    );
    assert_eq!(
        (status, code(&body), &body["error"]["field"]),
        (400, "invalid_input", &json!("user_id")),
        "{body}"
    );
    let long = json!({"user_id": "u".repeat(256), "items": [{"section_id": "ga", "qty": 1}]});
    let (status, body) = proc.call("POST", "/v1/events/subs/holds", Some(ADMIN), Some(&long));
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &json!("user_id")),
        "{body}"
    );
    assert_eq!(proc.call("GET", "/v1/events/subs", None, None).1, before);
}
