//! schemathesis against the server's own `/openapi.json`: all checks, all phases
//! (examples, coverage, fuzzing, and the stateful phase that follows the document's
//! `links` from an event to its holds to their bookings). It fails on any server error,
//! any undocumented status, any answer that does not match its schema, any schema-valid
//! request refused or schema-invalid one accepted: a test that the document matches the
//! server.
//!
//! The run reaches real objects on every shard: before it, the test creates on each shard
//! an event with live (extendable), confirmed and released holds, confirmed and cancelled
//! bookings, and a sold-out section with a waiting-list entry, whose ids
//! `schemathesis.toml` lists in its dictionaries, and schemathesis runs as their owner.
//! The live stream is left out of the run (it never ends; tests/tests/stream.rs tests it). Bounded by `BOXOFFICE_SCHEMATHESIS_EXAMPLES` (examples per operation, default
//! 100: about a minute on 2 cores); `BOXOFFICE_SEED` picks the seed.
//!
//! Needs `schemathesis` on PATH (`.ci/run` installs the pinned version from PyPI). Outside
//! CI a missing schemathesis skips the test with a message; under `CI=true` it fails.

use harness::{run_tool, tool_available, user_token, Launch, Proc, ADMIN};
use serde_json::{json, Value};

/// Shards of the server under test: `schemathesis.toml` names ids on each.
const SHARDS: u64 = 2;
/// The user the run acts as (`schemathesis.toml`'s `users` dictionary).
const FUZZER: &str = "fuzzer";

/// One call that must answer `status`; returns the body.
fn expect(proc: &Proc, method: &str, path: &str, token: &str, body: Value, status: u16) -> Value {
    let (got, answer) = proc.call(method, path, Some(token), Some(&body));
    assert_eq!(got, status, "{method} {path}: {answer}");
    answer
}

/// On each shard: event `fuzz-<shard>` with holds `h-<shard>-1..8` and bookings
/// `b-<shard>-1..4` of the user [`FUZZER`]: holds 4 to 6 live, 3 released, 1, 2, 7, 8
/// confirmed (bookings 1 to 4), booking 3 cancelled; its section `small` (1 ticket) held by
/// another user (hold 9), and [`FUZZER`]'s entry `w-<shard>-1` waiting for it.
fn seed_every_shard(proc: &Proc, user: &str) {
    let other = user_token("other");
    for shard in 0..SHARDS {
        let event = format!("fuzz-{shard}");
        assert_eq!(
            engine::fingerprint(&[event.as_bytes()]) % SHARDS,
            shard,
            "{event} must route to shard {shard}, as schemathesis.toml assumes"
        );
        let body = json!({"id": event, "name": format!("Fuzz {shard}"), "sections": [
            {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 1000},
            {"id": "seated", "name": "Seats", "price_cents": 200,
             "seats": {"rows": [{"label": "A", "count": 10}, {"label": "B", "count": 10}]}},
            {"id": "small", "name": "Small", "price_cents": 300, "capacity": 1}]});
        expect(proc, "POST", "/v1/events", ADMIN, body, 201);
        let holds = [
            json!({"items": [{"section_id": "ga", "qty": 2}]}),
            json!({"seats": ["A-1", "A-2"]}),
            json!({"items": [{"section_id": "ga", "qty": 1}]}),
            json!({"seats": ["B-1"]}),
            json!({"items": [{"section_id": "ga", "qty": 1}]}),
            json!({"items": [{"section_id": "ga", "qty": 1}], "seats": ["B-2"]}),
        ];
        for (n, hold) in holds.into_iter().enumerate() {
            let path = format!("/v1/events/{event}/holds");
            let hold = expect(proc, "POST", &path, user, hold, 201);
            assert_eq!(hold["id"], format!("h-{shard}-{}", n + 1));
        }
        for n in [1, 2] {
            let path = format!("/v1/holds/h-{shard}-{n}/confirm");
            let booking = expect(proc, "POST", &path, user, json!({}), 201);
            assert_eq!(booking["id"], format!("b-{shard}-{n}"));
        }
        let path = format!("/v1/holds/h-{shard}-3");
        expect(proc, "DELETE", &path, user, Value::Null, 200);
        for (n, body) in [
            (3, json!({"items": [{"section_id": "ga", "qty": 1}]})),
            (4, json!({"seats": ["A-3"]})),
        ] {
            let path = format!("/v1/events/{event}/bookings");
            let booking = expect(proc, "POST", &path, user, body, 201);
            assert_eq!(booking["id"], format!("b-{shard}-{n}"));
            assert_eq!(booking["hold_id"], format!("h-{shard}-{}", n + 4));
        }
        let path = format!("/v1/bookings/b-{shard}-3/cancel");
        expect(proc, "POST", &path, user, Value::Null, 200);
        let path = format!("/v1/events/{event}/holds");
        let body = json!({"items": [{"section_id": "small", "qty": 1}]});
        let hold = expect(proc, "POST", &path, &other, body, 201);
        assert_eq!(hold["id"], format!("h-{shard}-9"));
        let path = format!("/v1/events/{event}/waitlist");
        let body = json!({"section_id": "small", "qty": 1});
        let entry = expect(proc, "POST", &path, user, body, 201);
        assert_eq!(entry["id"], format!("w-{shard}-1"));
        assert_eq!(entry["status"], "waiting");
    }
}

#[test]
fn schemathesis_finds_no_failure() {
    if !tool_available("schemathesis", "pip install schemathesis==4.32.5") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::start(
        dir.path(),
        &Launch {
            shards: Some(SHARDS as usize),
            ..Launch::default()
        },
    );
    let user = user_token(FUZZER);
    seed_every_shard(&proc, &user);
    let max_examples =
        std::env::var("BOXOFFICE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "100".into());
    let seed = std::env::var("BOXOFFICE_SEED").unwrap_or_else(|_| "1".into());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let url = format!("http://127.0.0.1:{}/openapi.json", proc.port);
    let auth = format!("Authorization: Bearer {user}");
    let args = [
        "--config-file",
        config,
        "run",
        &url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--workers",
        "2",
        "--seed",
        &seed,
        "--max-examples",
        &max_examples,
        "--request-timeout",
        "10",
        "-H",
        &auth,
    ];
    let mut output = run_tool("schemathesis", &args);
    // CPython 3.11 can raise this SystemError when two of the tool's threads parse source at
    // once (seen once in CI, every generated case passing); schemathesis reports it as a
    // runtime error of its own, not a failure of the API. Such a run is made again, once; any other outcome stands.
    if !output.status.success() && is_tool_crash(&String::from_utf8_lossy(&output.stdout)) {
        eprintln!("schemathesis crashed in CPython's ast module (not a failure of the API); running it again");
        output = run_tool("schemathesis", &args);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures (seed {seed}); see the output above"
    );
    for phase in ["Coverage", "Fuzzing", "Stateful"] {
        assert!(
            stdout.contains(&format!("✅  {phase}")),
            "the {phase} phase did not run and pass"
        );
    }
    // Every operation was tested, but the document itself (schemathesis leaves it out) and
    // the stream (left out by schemathesis.toml).
    let (_, document) = proc.call("GET", "/openapi.json", None, None);
    let operations: usize = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |methods| methods.len()))
        .sum();
    let tested = format!("Tested: {}", operations - 2);
    assert!(
        stdout.contains(&tested),
        "not every operation was tested ({tested} expected)"
    );
    assert_eq!(proc.terminate(), Some(0));
}

/// Whether a failed schemathesis run failed only because the tool itself crashed with
/// CPython's thread-unsafe `ast.parse` error, and found no failure of the API.
fn is_tool_crash(stdout: &str) -> bool {
    stdout.contains("SystemError: AST constructor recursion depth mismatch")
        && !stdout.contains("FAILURES")
}

#[test]
fn only_the_ast_crash_of_the_tool_counts_as_a_crash() {
    let crash = "ERRORS\n    SystemError: AST constructor recursion depth mismatch (before=66, after=156)\n";
    assert!(is_tool_crash(crash));
    assert!(!is_tool_crash(&format!("{crash}=== FAILURES ===\n")));
    assert!(!is_tool_crash("=== FAILURES ===\n- Server error\n"));
}
