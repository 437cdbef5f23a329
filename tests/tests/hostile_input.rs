//! Hostile request bodies and heads against the real binary: bodies over the 1 MiB limit
//! (declared, sent, or chunked), deeply nested and huge JSON, numbers and strings out of
//! range, invalid UTF-8, huge headers and paths, and many connections at once. Each is
//! refused with its documented status (400 or 413, never a crash, never a hang), nothing
//! changes, and buyers sending normal requests at the same time are served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{check_inventory, raw_reply, rss_kib, user_token, Launch, Server, ADMIN};
use serde_json::json;

/// What a hostile request may get back.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// This status with an `{"error": {"code": ...}}` body of this code.
    Error(u16, &'static str),
    /// Either an answer with one of these statuses or a closed connection (hyper may cut
    /// a request whose head is over its buffer without answering).
    StatusOrClosed(&'static [u16]),
}

/// One hostile request: a name, the raw bytes, what it must get.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    want: Want,
}

fn post(path: &str, token: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\n{extra_headers}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A body sent in 64 KiB chunks (no content-length).
fn chunked(path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(64 * 1024) {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

fn cases(alice: &str) -> Vec<Case> {
    let holds = "/v1/events/target/holds";
    let bad = Want::Error(400, "invalid_input");
    let too_large = Want::Error(413, "payload_too_large");
    let mib = 1024 * 1024;
    let items: Vec<_> = (0..35_000)
        .map(|_| json!({"section_id": "ga", "qty": 1}))
        .collect();
    let seats: Vec<_> = (0..100_000).map(|i| format!("A-{}", i % 50 + 1)).collect();
    let over_limit = format!(r#"{{"seats":["{}"]}}"#, "A".repeat(mib + 1));
    vec![
        Case {
            name: "a body over 1 MiB",
            bytes: post(holds, alice, "", over_limit.as_bytes()),
            want: too_large,
        },
        Case {
            name: "a chunked body over 1 MiB",
            bytes: chunked(holds, alice, over_limit.as_bytes()),
            want: too_large,
        },
        Case {
            name: "an admin body over 1 MiB",
            bytes: post(
                "/v1/events",
                ADMIN,
                "",
                format!(r#"{{"name":"{}","sections":[]}}"#, "n".repeat(2 * mib)).as_bytes(),
            ),
            want: too_large,
        },
        Case {
            name: "300,000 nested arrays",
            bytes: post(holds, alice, "", "[".repeat(300_000).as_bytes()),
            want: bad,
        },
        Case {
            name: "100,000 nested objects",
            bytes: post(holds, alice, "", r#"{"a":"#.repeat(100_000).as_bytes()),
            want: bad,
        },
        Case {
            name: "nested arrays inside a valid field",
            bytes: post(
                holds,
                alice,
                "",
                format!(r#"{{"seats":{}}}"#, "[".repeat(50_000)).as_bytes(),
            ),
            want: bad,
        },
        Case {
            name: "35,000 items (about 1 MB)",
            bytes: post(holds, alice, "", json!({ "items": items }).to_string().as_bytes()),
            want: bad,
        },
        Case {
            name: "100,000 seats",
            bytes: post(holds, alice, "", json!({ "seats": seats }).to_string().as_bytes()),
            want: bad,
        },
        Case {
            name: "a 900 KB user id",
            bytes: post(
                holds,
                ADMIN,
                "",
                json!({"user_id": "u".repeat(900_000), "items": [{"section_id": "ga", "qty": 1}]})
                    .to_string()
                    .as_bytes(),
            ),
            want: bad,
        },
        Case {
            name: "a 900 KB event name",
            bytes: post(
                "/v1/events",
                ADMIN,
                "",
                json!({"name": "n".repeat(900_000), "sections": [{"name": "s", "price_cents": 1, "capacity": 1}]})
                    .to_string()
                    .as_bytes(),
            ),
            want: bad,
        },
        Case {
            name: "a quantity of 1e400",
            bytes: post(holds, alice, "", br#"{"items":[{"section_id":"ga","qty":1e400}]}"#),
            want: bad,
        },
        Case {
            name: "a quantity past u64",
            bytes: post(
                holds,
                alice,
                "",
                br#"{"items":[{"section_id":"ga","qty":18446744073709551616}]}"#,
            ),
            want: bad,
        },
        Case {
            name: "a quantity past the tickets a hold may take",
            bytes: post(holds, alice, "", br#"{"items":[{"section_id":"ga","qty":4294967295}]}"#),
            want: bad,
        },
        Case {
            name: "invalid UTF-8",
            bytes: post(holds, alice, "", b"{\"seats\":[\"A-\xff\xfe\"]}"),
            want: bad,
        },
        Case {
            name: "a NUL byte",
            bytes: post(holds, alice, "", b"{\"seats\":[\"A-1\"]\x00}"),
            want: bad,
        },
        Case {
            name: "an empty body",
            bytes: post(holds, alice, "", b""),
            want: bad,
        },
        Case {
            name: "a truncated body",
            bytes: post(holds, alice, "", br#"{"items":[{"section_id":"ga","#),
            want: bad,
        },
        Case {
            name: "a 1 MB header",
            bytes: format!(
                "GET /v1/events/target HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-filler: {}\r\n\r\n",
                "f".repeat(mib)
            )
            .into_bytes(),
            want: Want::StatusOrClosed(&[400, 431]),
        },
        Case {
            name: "10,000 headers",
            bytes: format!(
                "GET /v1/events/target HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{}\r\n",
                "x-h: v\r\n".repeat(10_000)
            )
            .into_bytes(),
            want: Want::StatusOrClosed(&[400, 431]),
        },
        Case {
            name: "a 100 KB path",
            bytes: format!(
                "GET /v1/events/{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                "e".repeat(100_000)
            )
            .into_bytes(),
            want: Want::StatusOrClosed(&[400, 404, 414, 431]),
        },
        Case {
            name: "a 10 KB token",
            bytes: post(holds, &"t".repeat(10_000), "", br#"{"seats":["A-1"]}"#),
            want: Want::Error(401, "unauthorized"),
        },
    ]
}

/// Sends one case and checks the answer; returns how long it took.
fn check(port: u16, case: &Case) -> Duration {
    let asked = Instant::now();
    let reply = raw_reply(port, &case.bytes);
    let took = asked.elapsed();
    match (case.want, reply) {
        (Want::Error(status, code), Ok(reply)) => {
            assert_eq!(
                (reply.status, reply.code()),
                (status, code),
                "{}: {}",
                case.name,
                reply.body
            );
        }
        (Want::StatusOrClosed(statuses), Ok(reply)) => {
            assert!(
                statuses.contains(&reply.status),
                "{}: {} {}",
                case.name,
                reply.status,
                reply.body
            );
        }
        (Want::StatusOrClosed(_), Err(_)) => {}
        (Want::Error(..), Err(e)) => panic!("{}: no answer ({e})", case.name),
    }
    assert!(
        took < Duration::from_secs(5),
        "{}: the answer took {took:?}",
        case.name
    );
    took
}

fn start() -> Server {
    let server = Server::start(Launch {
        shards: Some(2),
        ..Launch::default()
    });
    let event = json!({"id": "target", "name": "Target", "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 100},
        {"id": "hall", "name": "Hall", "price_cents": 100, "seats": {"rows": [{"label": "A", "count": 50}, {"label": "B", "count": 50}]}}]});
    assert_eq!(
        server
            .call("POST", "/v1/events", Some(ADMIN), Some(&event))
            .0,
        201
    );
    server
}

#[test]
fn hostile_bodies_and_heads_are_refused_and_change_nothing() {
    let server = start();
    let alice = user_token("alice");
    let before = check_inventory(server.port(), "target");
    let events_before = server.call("GET", "/v1/events", None, None).1;
    let rss_before = rss_kib(server.pid());
    let cases = cases(&alice);
    let mut slowest = (Duration::ZERO, "");
    for case in &cases {
        let took = check(server.port(), case);
        if took > slowest.0 {
            slowest = (took, case.name);
        }
        assert_eq!(
            server.call("GET", "/health", None, None).0,
            200,
            "alive after {}",
            case.name
        );
    }
    let rss_after = rss_kib(server.pid());
    println!(
        "hostile input: {} kinds refused as documented (slowest {:?}: {}); RSS {rss_before} -> {rss_after} KiB",
        cases.len(),
        slowest.0,
        slowest.1
    );
    assert_eq!(check_inventory(server.port(), "target"), before);
    assert_eq!(
        server.call("GET", "/v1/events", None, None).1,
        events_before,
        "no event was created"
    );
    // Normal requests still work, on the same server, after all of that.
    let (status, hold) = server.call(
        "POST",
        "/v1/events/target/holds",
        Some(&alice),
        Some(&json!({"seats": ["A-1", "A-2"]})),
    );
    assert_eq!(status, 201, "{hold}");
}

#[test]
fn buyers_are_served_while_hostile_clients_hammer_the_server() {
    let server = start();
    let port = server.port();
    let stop = Arc::new(AtomicBool::new(false));
    let alice = user_token("alice");
    let cases = Arc::new(cases(&alice));
    let hostile: Vec<_> = (0..4)
        .map(|t| {
            let (stop, cases) = (Arc::clone(&stop), Arc::clone(&cases));
            std::thread::spawn(move || {
                let mut sent = 0;
                for i in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    check(port, &cases[(t * 7 + i) % cases.len()]);
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    // Slow clients too: each trickles a header byte every 100 ms.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"POST /v1/events/target/holds HTTP/1.1\r\n")
                .unwrap();
            s
        })
        .collect();
    let mut served = 0u64;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(3) {
        for s in &mut slow {
            let _ = s.write_all(b"x");
        }
        let token = user_token(&format!("buyer{}", i % 10));
        let asked = Instant::now();
        let (status, body) = server.call(
            "POST",
            "/v1/events/target/bookings",
            Some(&token),
            Some(&json!({"items": [{"section_id": "ga", "qty": 1}]})),
        );
        slowest = slowest.max(asked.elapsed());
        assert_eq!(status, 201, "a normal purchase by buyer{}: {body}", i % 10);
        served += 1;
        i += 1;
        if served == 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let hostile_sent: usize = hostile.into_iter().map(|h| h.join().unwrap()).sum();
    drop(slow);
    println!(
        "under hostile load: {hostile_sent} hostile requests refused, {served} normal purchases served (slowest {slowest:?})"
    );
    assert!(hostile_sent > 0, "no hostile request was sent");
    assert!(
        slowest < Duration::from_secs(2),
        "a normal purchase waited {slowest:?}"
    );
    let inventory = check_inventory(port, "target");
    assert_eq!(inventory.section("ga").sold, served);
    assert_eq!(
        inventory.section("hall").held + inventory.section("hall").sold,
        0
    );
}

#[test]
fn a_thousand_connections_at_once_are_all_served() {
    let server = start();
    let port = server.port();
    let rss_before = rss_kib(server.pid());
    // Open them all first, then send on each, then read each: the server holds 1,000
    // connections at once (the cap is 8,192).
    let mut conns: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("a connection");
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    let rss_open = rss_kib(server.pid());
    for s in &mut conns {
        s.write_all(b"GET /v1/events/target HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
    }
    let mut ok = 0;
    for mut s in conns {
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        ok += 1;
    }
    println!("1,000 connections at once: {ok} answered 200; RSS {rss_before} -> {rss_open} KiB with them open");
    assert!(
        rss_open < rss_before + 128 * 1024,
        "1,000 idle connections cost more than 128 MiB"
    );
    assert_eq!(server.call("GET", "/health", None, None).0, 200);
}

#[test]
fn a_declared_length_over_the_limit_is_refused_at_once() {
    let server = start();
    let alice = user_token("alice");
    // The head declares 2 MiB; only the start of the body follows. The server must not
    // wait for the rest (up to its 30 s request timeout) to say 413.
    let mut bytes = format!(
        "POST /v1/events/target/holds HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         authorization: Bearer {alice}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        2 * 1024 * 1024
    )
    .into_bytes();
    bytes.extend_from_slice(b"{\"items\":");
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&bytes).unwrap();
    let asked = Instant::now();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413") && answer.contains("payload_too_large"),
        "after {:?}: {answer:?}",
        asked.elapsed()
    );
}
