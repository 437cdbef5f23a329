//! The edges of the contract a client meets first, through the real binary: standard user
//! tokens (hand-built here, signed with an HMAC independent of the server's JWT library),
//! request ids and the access log, rejections counted by code, CORS, `outcome_unknown`
//! instead of a 408 once a command is queued, idempotency keys scoped per caller and event
//! whatever the shards, and an answer to a request followed by a half-close.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use harness::{send, Launch, Reply, Server, ADMIN, SECRET};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT built by hand: base64url JSON header and claims, HMAC-SHA256 (or -SHA512 for an
/// `HS512` header) over them with `key`; `alg: none` gets an empty signature.
fn jwt(header: &Value, claims: &Value, key: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match header["alg"].as_str() {
        Some("HS256") => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            mac.update(message.as_bytes());
            b64(&mac.finalize().into_bytes())
        }
        Some("HS512") => {
            let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            mac.update(message.as_bytes());
            b64(&mac.finalize().into_bytes())
        }
        _ => String::new(),
    };
    format!("{message}.{signature}")
}

fn hs256(claims: Value) -> String {
    jwt(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        SECRET.as_bytes(),
    )
}

fn call(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let body = body.map(Value::to_string);
    send(server.port(), method, path, headers, body.as_deref()).expect("the server answers")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn ga_event(id: &str, capacity: u64) -> Value {
    json!({"id": id, "name": id, "sections": [{"id": "ga", "name": "GA", "price_cents": 100, "capacity": capacity}]})
}

fn create_event(server: &Server, id: &str, capacity: u64) {
    let admin = bearer(ADMIN);
    let reply = call(
        server,
        "POST",
        "/v1/events",
        &[("authorization", &admin)],
        Some(&ga_event(id, capacity)),
    );
    assert_eq!(reply.status, 201, "{:?}", reply.body);
}

fn sold(server: &Server, event_id: &str) -> u64 {
    let reply = call(server, "GET", &format!("/v1/events/{event_id}"), &[], None);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["sections"][0]["sold"].as_u64().unwrap()
}

fn message(reply: &Reply) -> String {
    reply.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Words a parser's error message would carry, never a caller's explanation.
const PARSER_WORDS: [&str; 7] = [
    "JSON",
    "line ",
    "column",
    "missing field",
    "Error",
    "Base64",
    "invalid type",
];

#[test]
fn standard_user_tokens_work_and_bad_ones_are_refused_in_words() {
    let server = Server::start(Launch::default());
    create_event(&server, "tok", 100);
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let hold = |token: &str| {
        call(
            &server,
            "POST",
            "/v1/events/tok/holds",
            &[("authorization", &bearer(token))],
            Some(&one),
        )
    };
    let t = now();

    // What any standard issuer signs: {sub, exp} only.
    let reply = hold(&hs256(json!({"sub": "alice", "exp": t + 600})));
    assert_eq!(reply.status, 201, "{{sub, exp}} only: {:?}", reply.body);
    assert_eq!(reply.body["user_id"], "alice");
    // With iat, and with an nbf already past.
    let reply = hold(&hs256(json!({"sub": "alice", "exp": t + 600, "iat": t})));
    assert_eq!(reply.status, 201, "with iat: {:?}", reply.body);
    let reply = hold(&hs256(json!({"sub": "bob", "exp": t + 600, "nbf": t - 10})));
    assert_eq!(reply.status, 201, "with a past nbf: {:?}", reply.body);

    let other_key = jwt(
        &json!({"alg": "HS256"}),
        &json!({"sub": "alice", "exp": t + 600}),
        b"another-secret",
    );
    let refused: Vec<(&str, String, &str)> = vec![
        (
            "nbf in the future",
            hs256(json!({"sub": "alice", "exp": t + 7200, "nbf": t + 3600})),
            "not valid yet",
        ),
        (
            "expired",
            hs256(json!({"sub": "alice", "exp": t - 60, "iat": t - 120})),
            "has expired",
        ),
        (
            "no exp",
            hs256(json!({"sub": "alice", "iat": t})),
            "no exp claim",
        ),
        (
            "exp not a number",
            hs256(json!({"sub": "alice", "exp": "tomorrow"})),
            "exp claim is not a time",
        ),
        ("no sub", hs256(json!({"exp": t + 600})), "no sub claim"),
        (
            "iat in the future",
            hs256(json!({"sub": "alice", "exp": t + 7200, "iat": t + 3600})),
            "iat claim is in the future",
        ),
        (
            "alg none",
            jwt(
                &json!({"alg": "none", "typ": "JWT"}),
                &json!({"sub": "alice", "exp": t + 600}),
                b"",
            ),
            "only HS256",
        ),
        (
            "HS512 header",
            jwt(
                &json!({"alg": "HS512", "typ": "JWT"}),
                &json!({"sub": "alice", "exp": t + 600}),
                SECRET.as_bytes(),
            ),
            "only HS256",
        ),
        ("wrong key", other_key, "signature does not match"),
        ("not a JWT", "a.b".to_string(), "nor a JWT"),
        (
            "claims not JSON",
            format!("{}.{}.x", b64(br#"{"alg":"HS256"}"#), b64(b"{nope")),
            "not",
        ),
    ];
    for (what, token, words) in refused {
        let reply = hold(&token);
        assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
        assert_eq!(reply.code(), "unauthorized", "{what}");
        let text = message(&reply);
        assert!(
            text.contains(words),
            "{what}: {text:?} should say {words:?}"
        );
        for parser in PARSER_WORDS {
            assert!(
                !text.contains(parser),
                "{what}: {text:?} speaks like a parser ({parser:?})"
            );
        }
    }
    // Only the three accepted tokens held anything.
    let event = call(&server, "GET", "/v1/events/tok", &[], None).body;
    assert_eq!(event["sections"][0]["held"], 3, "{event}");
}

#[test]
fn request_ids_are_echoed_validated_logged_and_in_error_bodies() {
    let server = Server::start(Launch {
        env: vec![("RUST_LOG".into(), "info,boxoffice::access=debug".into())],
        ..Launch::default()
    });
    // The client's id comes back.
    let reply = call(
        &server,
        "GET",
        "/health",
        &[("x-request-id", "client-id-1")],
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some("client-id-1"));
    // None given: one is generated.
    let reply = call(&server, "GET", "/health", &[], None);
    let generated = reply
        .header("x-request-id")
        .expect("a generated id")
        .to_string();
    assert_eq!(generated.len(), 32, "{generated}");
    assert!(
        generated.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated}"
    );
    // Too long (over 128): replaced, not trusted.
    let long = "x".repeat(129);
    let reply = call(&server, "GET", "/health", &[("x-request-id", &long)], None);
    assert_eq!(reply.status, 200);
    let replaced = reply.header("x-request-id").unwrap();
    assert_ne!(replaced, long);
    assert_eq!(replaced.len(), 32);

    // An error body names the request id too, and every error answer is counted by code.
    let admin = bearer(ADMIN);
    let reply = call(
        &server,
        "GET",
        "/v1/holds/h-0-99",
        &[("authorization", &admin), ("x-request-id", "req-404")],
        None,
    );
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("x-request-id"), Some("req-404"));
    assert_eq!(
        reply.body["error"]["request_id"], "req-404",
        "{:?}",
        reply.body
    );
    let reply = call(
        &server,
        "POST",
        "/v1/events",
        &[("x-request-id", "req-401")],
        Some(&ga_event("x", 1)),
    );
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"]["request_id"], "req-401");
    // An error without a client id carries the generated one, the same as the header.
    let reply = call(&server, "GET", "/nowhere", &[], None);
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body["error"]["request_id"].as_str(),
        reply.header("x-request-id"),
        "{:?}",
        reply.body
    );

    let metrics = call(&server, "GET", "/metrics", &[], None);
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    let count = |code: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with("boxoffice_rejections_total")
                    && l.contains(&format!("code=\"{code}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(count("not_found") >= 2.0, "{text}");
    assert!(count("unauthorized") >= 1.0, "{text}");

    // Without --cors-origin, a preflight is refused and no CORS header is given.
    let reply = call(
        &server,
        "OPTIONS",
        "/v1/events",
        &[
            ("origin", "https://front.example"),
            ("access-control-request-method", "POST"),
        ],
        None,
    );
    assert_eq!(reply.status, 403, "{:?}", reply.body);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    let reply = call(
        &server,
        "GET",
        "/v1/events",
        &[("origin", "https://front.example")],
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), None);

    // One access line per request with method, route, status, latency and request id; no
    // colour codes (stderr is a pipe here, not a terminal).
    std::thread::sleep(Duration::from_millis(200));
    let log = server.proc().log_tail();
    let line = log
        .lines()
        .find(|l| l.contains("req-404") && l.contains("answered"))
        .unwrap_or_else(|| panic!("no access line for req-404 in:\n{log}"));
    for part in [
        "method=GET",
        "route=/v1/holds/{hold_id}",
        "status=404",
        "latency_us=",
    ] {
        assert!(line.contains(part), "{part} missing in {line:?}");
    }
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("req-401") && l.contains("answered"))
            .count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal:\n{log}"
    );
}

#[test]
fn cors_answers_allowed_origins_only() {
    let server = Server::start(Launch {
        env: vec![(
            "BOXOFFICE_CORS_ORIGIN".into(),
            "https://front.example,http://localhost:3000".into(),
        )],
        ..Launch::default()
    });
    create_event(&server, "cors", 10);
    let reply = call(
        &server,
        "OPTIONS",
        "/v1/events/cors/holds",
        &[
            ("origin", "https://front.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            ),
        ],
        None,
    );
    assert_eq!(reply.status, 204, "{:?}", reply.body);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://front.example")
    );
    let methods = reply
        .header("access-control-allow-methods")
        .unwrap_or_default();
    for m in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let allowed = reply
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "idempotency-key",
        "x-request-id",
        "last-event-id",
    ] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }
    assert!(reply.header("access-control-max-age").is_some());

    // An ordinary answer to an allowed origin (errors too) names it and exposes headers.
    for (path, status) in [("/v1/events/cors", 200), ("/v1/events/none", 404)] {
        let reply = call(
            &server,
            "GET",
            path,
            &[("origin", "http://localhost:3000")],
            None,
        );
        assert_eq!(reply.status, status);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        let exposed = reply
            .header("access-control-expose-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        for h in ["x-request-id", "retry-after", "date"] {
            assert!(exposed.contains(h), "{h} not in {exposed}");
        }
    }

    // Another origin: the preflight is 403 without CORS headers; answers carry none.
    let reply = call(
        &server,
        "OPTIONS",
        "/v1/events/cors/holds",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        None,
    );
    assert_eq!(reply.status, 403);
    assert_eq!(reply.code(), "forbidden");
    assert_eq!(reply.header("access-control-allow-origin"), None);
    let reply = call(
        &server,
        "GET",
        "/v1/events/cors",
        &[("origin", "https://evil.example")],
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    // A plain OPTIONS (not a preflight) is still the API's 405.
    let reply = call(&server, "OPTIONS", "/v1/events/cors", &[], None);
    assert_eq!(reply.status, 405);
}

#[test]
fn a_command_whose_shard_does_not_answer_is_outcome_unknown_and_its_retry_gets_the_first_effect() {
    let pause_dir = tempfile::tempdir().unwrap();
    let pause = pause_dir.path().join("pause");
    let server = Server::start(Launch {
        env: vec![
            (
                "BOXOFFICE_TEST_PAUSE_SYNC".into(),
                pause.display().to_string(),
            ),
            ("BOXOFFICE_OUTCOME_WAIT".into(), "1s".into()),
        ],
        shards: Some(1),
        ..Launch::default()
    });
    create_event(&server, "frozen", 10);
    let alice = bearer(&hs256(json!({"sub": "alice", "exp": now() + 600})));
    let body = json!({"items": [{"section_id": "ga", "qty": 2}]});
    let buy = || {
        call(
            &server,
            "POST",
            "/v1/events/frozen/bookings",
            &[("authorization", &alice), ("idempotency-key", "buy-1")],
            Some(&body),
        )
    };

    // The disk "freezes": the command is queued, decided, and not yet durable.
    std::fs::write(&pause, b"").unwrap();
    let reply = buy();
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(reply.code(), "outcome_unknown");
    assert!(reply.header("retry-after").is_some());
    assert!(
        message(&reply).contains("Idempotency-Key"),
        "{:?}",
        reply.body
    );
    assert!(reply.body["error"]["request_id"].is_string());

    // It thaws: the first command takes effect; its retry gets that effect's answer.
    std::fs::remove_file(&pause).unwrap();
    let first = buy();
    assert_eq!(first.status, 201, "{:?}", first.body);
    let again = buy();
    assert_eq!(again.status, 201);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(sold(&server, "frozen"), 2, "one effect, never two");
    let admin = bearer(ADMIN);
    let list = call(
        &server,
        "GET",
        "/v1/bookings?event_id=frozen",
        &[("authorization", &admin)],
        None,
    );
    assert_eq!(
        list.body["data"].as_array().unwrap().len(),
        1,
        "{:?}",
        list.body
    );
}

/// Event ids that route to `shard` of `shards` (the server's routing: FNV-1a of the id).
fn ids_on_shard(shard: u64, shards: u64, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("ev-{i}"))
        .filter(|id| engine::fingerprint(&[id.as_bytes()]) % shards == shard)
        .take(count)
        .collect()
}

#[test]
fn one_key_on_two_events_is_two_decisions_on_one_shard_and_on_two() {
    let mut server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    let zero = ids_on_shard(0, 2, 2);
    let one = ids_on_shard(1, 2, 1);
    let (a1, a2, b) = (&zero[0], &zero[1], &one[0]);
    for id in [a1, a2, b] {
        create_event(&server, id, 10);
    }
    let alice = bearer(&hs256(json!({"sub": "alice", "exp": now() + 3600})));
    let body = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let buy = |server: &Server, event: &str| {
        call(
            server,
            "POST",
            &format!("/v1/events/{event}/bookings"),
            &[("authorization", &alice), ("idempotency-key", "same-key")],
            Some(&body),
        )
    };
    let first = buy(&server, a1);
    assert_eq!(first.status, 201, "{:?}", first.body);
    // Another event on the same shard: a fresh decision (not 422, not a replay).
    let same_shard = buy(&server, a2);
    assert_eq!(same_shard.status, 201, "{:?}", same_shard.body);
    // Another event on the other shard: a fresh decision too.
    let other_shard = buy(&server, b);
    assert_eq!(other_shard.status, 201, "{:?}", other_shard.body);
    let id = |r: &Reply| r.body["id"].as_str().unwrap().to_string();
    assert!(id(&first).starts_with("b-0-") && id(&same_shard).starts_with("b-0-"));
    assert!(id(&other_shard).starts_with("b-1-"), "{}", id(&other_shard));
    assert_ne!(id(&first), id(&same_shard));
    assert_eq!(same_shard.body["event_id"], a2.as_str());

    // Within one event the key still replays, and another body is reuse; across a restart.
    server.restart();
    for event in [a1, a2, b] {
        let again = buy(&server, event);
        assert_eq!(again.status, 201);
        assert_eq!(again.body["event_id"], event.as_str());
        assert_eq!(sold(&server, event), 1, "{event}: one booking each");
    }
    assert_eq!(id(&buy(&server, a1)), id(&first));
    let other_body = json!({"items": [{"section_id": "ga", "qty": 2}]});
    let reused = call(
        &server,
        "POST",
        &format!("/v1/events/{a1}/bookings"),
        &[("authorization", &alice), ("idempotency-key", "same-key")],
        Some(&other_body),
    );
    assert_eq!(reused.status, 422, "{:?}", reused.body);
    assert_eq!(reused.code(), "idempotency_key_reused");

    // Routes scoped by their hold: one key confirms two holds of one event, each once.
    let hold = |n: usize| {
        let reply = call(
            &server,
            "POST",
            &format!("/v1/events/{a2}/holds"),
            &[("authorization", &alice)],
            Some(&body),
        );
        assert_eq!(reply.status, 201, "hold {n}: {:?}", reply.body);
        id(&reply)
    };
    let (h1, h2) = (hold(1), hold(2));
    let confirm = |h: &str| {
        call(
            &server,
            "POST",
            &format!("/v1/holds/{h}/confirm"),
            &[
                ("authorization", &alice),
                ("idempotency-key", "confirm-key"),
            ],
            None,
        )
    };
    let c1 = confirm(&h1);
    let c2 = confirm(&h2);
    assert_eq!(
        (c1.status, c2.status),
        (201, 201),
        "{:?} {:?}",
        c1.body,
        c2.body
    );
    assert_ne!(id(&c1), id(&c2));
    assert_eq!(
        id(&confirm(&h1)),
        id(&c1),
        "a retry replays its own hold's answer"
    );
    assert_eq!(sold(&server, a2), 3);
}

#[test]
fn a_request_followed_by_a_half_close_is_answered_and_carried_out() {
    let server = Server::start(Launch::default());
    create_event(&server, "half", 10);
    let body = json!({"user_id": "alice", "items": [{"section_id": "ga", "qty": 1}]}).to_string();
    let request = format!(
        "POST /v1/events/half/bookings HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {ADMIN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "answer: {answer:?}");
    assert!(answer.contains("\"status\":\"confirmed\""), "{answer}");
    assert_eq!(sold(&server, "half"), 1);
}

#[test]
fn a_body_that_does_not_arrive_is_408_and_nothing_is_done() {
    let server = Server::start(Launch::default());
    create_event(&server, "slow", 10);
    let body = json!({"user_id": "alice", "items": [{"section_id": "ga", "qty": 1}]}).to_string();
    // The head promises the whole body; only half of it is sent, and the connection stays
    // open: the request timeout (30 s, nothing queued) answers 408.
    let request = format!(
        "POST /v1/events/slow/bookings HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {ADMIN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        body.len(),
        &body[..body.len() / 2]
    );
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "answer: {answer:?}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(sold(&server, "slow"), 0);
}

#[test]
fn a_missing_field_is_named_by_its_own_path_and_nothing_is_done() {
    let mut server = Server::start(Launch::default());
    create_event(&server, "m", 10);
    let admin = bearer(ADMIN);
    let cases = [
        (
            "/v1/events/m/holds",
            json!({"user_id": "u", "items": [{"section_id": "ga", "qty": 1}, {"section_id": "ga"}]}),
            "items[1].qty",
        ),
        (
            "/v1/events/m/bookings",
            json!({"user_id": "u", "items": [{"qty": 1}]}),
            "items[0].section_id",
        ),
        (
            "/v1/events",
            json!({"sections": [{"name": "S", "price_cents": 1, "capacity": 1}]}),
            "name",
        ),
        (
            "/v1/events",
            json!({"name": "N", "sections": [{"name": "S", "capacity": 1}]}),
            "sections[0].price_cents",
        ),
    ];
    for (path, body, field) in cases {
        let reply = call(
            &server,
            "POST",
            path,
            &[("authorization", &admin)],
            Some(&body),
        );
        assert_eq!(
            (reply.status, reply.body["error"]["code"].as_str()),
            (400, Some("invalid_input")),
            "POST {path} {body}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"]["field"], field, "POST {path} {body}");
        assert!(message(&reply).contains(field), "{:?}", reply.body);
    }
    assert_eq!(sold(&server, "m"), 0);
    let events = call(&server, "GET", "/v1/events", &[], None);
    assert_eq!(
        events.body["data"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        events.body
    );
    server.terminate();
}

/// The list routes read their query strings as the contract writes them: the template
/// `?event_id=&user_id=&limit=&after=` with every value empty is the unfiltered first page;
/// a value that does not parse, an unknown or a repeated parameter is 400 `invalid_input`
/// whose `field` is that parameter.
#[test]
fn empty_query_values_are_absent_and_a_bad_parameter_is_named() {
    let server = Server::start(Launch::default());
    create_event(&server, "q", 10);
    let admin = bearer(ADMIN);
    let buy = json!({"user_id": "u", "items": [{"section_id": "ga", "qty": 1}]});
    let bought = call(
        &server,
        "POST",
        "/v1/events/q/bookings",
        &[("authorization", &admin)],
        Some(&buy),
    );
    assert_eq!(bought.status, 201, "{:?}", bought.body);
    for path in [
        "/v1/bookings?event_id=&user_id=&limit=&after=",
        "/v1/bookings?limit=",
        "/v1/bookings?event_id=q&limit=&after=",
        "/v1/events?limit=&after=",
    ] {
        let reply = call(&server, "GET", path, &[("authorization", &admin)], None);
        assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
        assert_eq!(
            reply.body["data"].as_array().map(Vec::len),
            Some(1),
            "{path}: {:?}",
            reply.body
        );
    }
    for (path, field) in [
        ("/v1/bookings?limit=abc", "limit"),
        ("/v1/bookings?limit=-1", "limit"),
        ("/v1/bookings?limit=0", "limit"),
        ("/v1/bookings?colour=red", "colour"),
        ("/v1/bookings?limit=1&limit=2", "limit"),
        ("/v1/events?limit=x", "limit"),
    ] {
        let reply = call(&server, "GET", path, &[("authorization", &admin)], None);
        assert_eq!(
            (reply.status, reply.body["error"]["code"].as_str()),
            (400, Some("invalid_input")),
            "{path}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"]["field"], field, "{path}");
        assert!(message(&reply).contains(field), "{:?}", reply.body);
    }
}
