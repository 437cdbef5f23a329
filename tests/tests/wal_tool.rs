//! `boxoffice wal verify` and `boxoffice wal dump` through the binary, against golden
//! files: a data directory is built by driving the server through every kind of decision,
//! then verified and dumped; times and the temporary path are normalised, everything
//! else (ids, seats, users, sequence numbers, sizes) must match byte for byte.
//!
//! After an intended change of the output, regenerate with
//! `BOXOFFICE_BLESS=1 cargo test --release -p boxoffice-tests --test wal_tool` and review
//! the diff of `tests/tests/golden/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{binary, user_token, Launch, Proc, ADMIN};
use serde_json::{json, Value};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file `name` (or writes it with `BOXOFFICE_BLESS`).
fn check_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("BOXOFFICE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BOXOFFICE_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output, first at line {}:\nexpected: {:?}\nactual:   {:?}\n\
             whole output:\n{actual}",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

/// `boxoffice wal ARGS --data-dir DIR`: (exit success, stdout, stderr).
fn wal_tool(dir: &Path, command: &str) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(["wal", command, "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Whether `s` is an RFC 3339 UTC time as the tools print it (`2026-12-01T19:48:29.123Z`).
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && s[..4].bytes().all(|c| c.is_ascii_digit())
}

/// Replaces every JSON string of `line` that is a time with `"<time>"`, keeping the rest
/// of the line (and its key order) as printed.
fn normalise(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        // Strings in a dump line hold no escaped quotes where times could be.
        let end = after.find('"').expect("strings are closed");
        let text = &after[..end];
        if is_time(text) {
            out.push_str("\"<time>\"");
        } else {
            out.push('"');
            out.push_str(text);
            out.push('"');
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn post(proc: &Proc, path: &str, token: &str, body: Value, expect: u16) -> Value {
    let (status, answer) = proc.call("POST", path, Some(token), Some(&body));
    assert_eq!(status, expect, "POST {path}: {answer}");
    answer
}

/// Drives a server through every kind of decision on two shards and stops it.
fn build(dir: &Path) {
    let proc = Proc::start(
        dir,
        &Launch {
            shards: Some(2),
            ..Launch::default()
        },
    );
    let alice = user_token("alice");
    let bob = user_token("bob");
    // "ga" routes to shard 0 and "hall" to shard 1 with 2 shards (server/src/routing.rs).
    let (status, _) = proc.call(
        "POST",
        "/v1/events",
        Some(ADMIN),
        Some(
            &json!({"id": "ga", "name": "Open air", "starts_at": "2030-06-01T18:00:00Z",
            "max_per_user": 4,
            "sections": [{"id": "lawn", "name": "Lawn", "price_cents": 2500, "capacity": 100}]}),
        ),
    );
    assert_eq!(status, 201);
    let created = harness::send(
        proc.port,
        "POST",
        "/v1/events",
        &[
            ("authorization", &format!("Bearer {ADMIN}")),
            ("idempotency-key", "create-hall"),
        ],
        Some(
            &json!({"id": "hall", "name": "Concert hall", "hold_ttl_seconds": 300,
                "sections": [
                    {"id": "stalls", "name": "Stalls", "price_cents": 9000,
                     "seats": {"rows": [{"label": "A", "count": 4}, {"label": "B", "count": 4}]}},
                    {"id": "standing", "name": "Standing", "price_cents": 3000, "capacity": 50}]})
            .to_string(),
        ),
    )
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);

    // Shard 0: a GA hold confirmed, a purchase cancelled, a purchase by a known user.
    let hold = post(
        &proc,
        "/v1/events/ga/holds",
        &alice,
        json!({"items": [{"section_id": "lawn", "qty": 2}]}),
        201,
    );
    let hold_id = hold["id"].as_str().unwrap();
    post(
        &proc,
        &format!("/v1/holds/{hold_id}/confirm"),
        &alice,
        json!({"payment_ref": "pay-1"}),
        201,
    );
    let bought = post(
        &proc,
        "/v1/events/ga/bookings",
        &bob,
        json!({"items": [{"section_id": "lawn", "qty": 1}]}),
        201,
    );
    let booking = bought["id"].as_str().unwrap();
    post(
        &proc,
        &format!("/v1/bookings/{booking}/cancel"),
        &bob,
        json!({}),
        200,
    );

    // alice again: a user the shard knows (the log stores her index, the dump her id).
    post(
        &proc,
        "/v1/events/ga/bookings",
        &alice,
        json!({"items": [{"section_id": "lawn", "qty": 1}]}),
        201,
    );

    // Shard 1: seats held and released, seats and GA bought, a hold left to expire.
    let seats = post(
        &proc,
        "/v1/events/hall/holds",
        &bob,
        json!({"seats": ["A-2", "A-3"]}),
        201,
    );
    let (status, _) = proc.call(
        "DELETE",
        &format!("/v1/holds/{}", seats["id"].as_str().unwrap()),
        Some(&bob),
        None,
    );
    assert_eq!(status, 200);
    post(
        &proc,
        "/v1/events/hall/bookings",
        &alice,
        json!({"seats": ["B-4"], "items": [{"section_id": "standing", "qty": 3}], "payment_ref": "pay-2"}),
        201,
    );
    post(
        &proc,
        "/v1/events/hall/holds",
        &bob,
        json!({"seats": ["A-1"], "ttl_seconds": 1}),
        201,
    );
    // The expiry is a logged decision of the shard: wait (≤ 10 s) until the log has it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wal_tool(dir, "dump").1.contains("hold_expired") {
        assert!(Instant::now() < deadline, "the hold did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(proc.terminate(), Some(0));
}

#[test]
fn verify_and_dump_speak_the_apis_words() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    build(&dir);

    let (ok, verify, stderr) = wal_tool(&dir, "verify");
    assert!(ok, "verify failed: {stderr}");
    check_golden("wal_verify.txt", &verify);

    let (ok, dump, stderr) = wal_tool(&dir, "dump");
    assert!(ok, "dump failed: {stderr}");
    let mut lines = String::new();
    for line in dump.lines() {
        let value: Result<Value, _> = serde_json::from_str(line);
        assert!(
            value.is_ok(),
            "dump printed a line that is not JSON: {line}"
        );
        lines.push_str(&normalise(line));
        lines.push('\n');
    }
    check_golden("wal_dump.jsonl", &lines);

    // Damage in words: a flipped bit in the first record of shard 1, good records after it.
    let segments = harness::segments(&dir.join("shard-001"));
    let segment = &segments[0];
    let mut bytes = std::fs::read(segment).unwrap();
    bytes[wal::SEGMENT_HEADER_LEN + wal::RECORD_HEADER_LEN] ^= 0x10;
    std::fs::write(segment, &bytes).unwrap();
    let (ok, verify, stderr) = wal_tool(&dir, "verify");
    assert!(!ok, "verify passed a damaged log");
    let shown = format!(
        "stdout:\n{verify}stderr:\n{}",
        stderr.replace(&dir.display().to_string(), "<DATA>")
    );
    check_golden("wal_verify_damaged.txt", &shown);
}

#[test]
fn dump_writes_a_cascade_and_a_remembered_refusal_in_the_apis_words() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let proc = Proc::start(&dir, &Launch::default());
    let (alice, bob, carol) = (user_token("alice"), user_token("bob"), user_token("carol"));
    post(
        &proc,
        "/v1/events",
        ADMIN,
        json!({"id": "tiny", "name": "Tiny", "sections": [
            {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 1}]}),
        201,
    );
    let hold = post(
        &proc,
        "/v1/events/tiny/holds",
        &alice,
        json!({"items": [{"section_id": "ga", "qty": 1}]}),
        201,
    );
    let entry = post(
        &proc,
        "/v1/events/tiny/waitlist",
        &bob,
        json!({"section_id": "ga", "qty": 1}),
        201,
    );
    // carol's keyed hold is refused, and the refusal is logged with her key.
    let reply = harness::send(
        proc.port,
        "POST",
        "/v1/events/tiny/holds",
        &[
            ("authorization", &format!("Bearer {carol}")),
            ("idempotency-key", "c-1"),
        ],
        Some(r#"{"items": [{"section_id": "ga", "qty": 1}]}"#),
    )
    .unwrap();
    assert_eq!(reply.status, 409, "{}", reply.body);
    // alice's release feeds bob's entry: one cascaded decision.
    let hold_id = hold["id"].as_str().unwrap();
    let (status, _) = proc.call(
        "DELETE",
        &format!("/v1/holds/{hold_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(proc.terminate(), Some(0));

    let (ok, dump, stderr) = wal_tool(&dir, "dump");
    assert!(ok, "dump failed: {stderr}");
    let lines: Vec<Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| {
        lines
            .iter()
            .find(|l| l["decision"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in:\n{dump}"))
    };
    let cascaded = of("cascaded");
    assert_eq!(cascaded["base"]["decision"], "hold_released", "{cascaded}");
    assert_eq!(cascaded["base"]["hold"], hold_id, "{cascaded}");
    assert!(cascaded["base"]["at"].is_string(), "{cascaded}");
    let offered = cascaded["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "offered")
        .unwrap_or_else(|| panic!("no offer in {cascaded}"));
    assert_eq!(offered["entry"], entry["id"], "{offered}");
    assert!(
        offered["hold"].as_str().unwrap().starts_with("h-"),
        "{offered}"
    );
    let refused = of("refused");
    assert_eq!(refused["idempotency"]["scope"], "user carol", "{refused}");
    assert!(refused["refusal"]["SoldOut"].is_object(), "{refused}");
}
