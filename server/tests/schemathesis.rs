//! schemathesis against the server's own `/openapi.json`, all checks: it fuzzes every
//! route with inputs generated from the document and fails on any server error, any
//! undocumented status, any response that does not match its schema. So it doubles as a
//! test that the document matches the server.
//!
//! Needs `schemathesis` on PATH (`.ci/run` installs it from PyPI). Outside CI a missing
//! schemathesis skips the test with a message; under CI (CI=true) it fails.

use std::process::Command;

use harness::{Launch, Proc, ADMIN};
use serde_json::json;

#[test]
fn schemathesis_finds_no_failure() {
    let available = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var("CI").is_err(),
            "schemathesis is not installed (CI installs it in .ci/run)"
        );
        eprintln!("skipping: schemathesis is not installed (pip install schemathesis)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::start(
        dir.path(),
        &Launch {
            shards: Some(2),
            ..Launch::default()
        },
    );
    // Something to find: an event with both kinds of section.
    let event = json!({"id": "fuzz", "name": "Fuzz", "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 1000},
        {"id": "seated", "name": "Seats", "price_cents": 200, "seats": {"rows": [{"label": "A", "count": 10}]}}]});
    assert_eq!(
        proc.call("POST", "/v1/events", Some(ADMIN), Some(&event)).0,
        201
    );
    let max_examples =
        std::env::var("BOXOFFICE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let seed = std::env::var("BOXOFFICE_SEED").unwrap_or_else(|_| "1".into());
    let output = Command::new("schemathesis")
        .arg("--config-file")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/schemathesis.toml"
        ))
        .args([
            "run",
            &format!("http://127.0.0.1:{}/openapi.json", proc.port),
        ])
        .args(["--checks", "all", "--workers", "2", "--seed", &seed])
        .args([
            "--max-examples",
            &max_examples,
            "--request-timeout",
            "10",
            "--phases",
            "examples,coverage,fuzzing",
        ])
        .args(["-H", &format!("Authorization: Bearer {ADMIN}")])
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "schemathesis found failures (seed {seed}); see the output above"
    );
    assert_eq!(proc.terminate(), Some(0));
}
