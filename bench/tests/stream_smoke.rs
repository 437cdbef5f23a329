//! A smoke run of `boxoffice-stream-bench` with tiny sizes (50 clients, 20 changes, one
//! round of 1 s runs) against the real server, which the tool starts itself: its JSON
//! report must parse, every change must have reached every client, and every phase must
//! have run with the clients it was given.
//!
//! The server binary is `target/release/boxoffice` (CI builds the binaries before the
//! tests). Without it the test is skipped, except under CI (`CI=true`), where a missing
//! binary fails it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The `boxoffice` binary next to this test's build directory, if built.
fn server_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("the test knows its path");
    let found = exe
        .ancestors()
        .map(|dir| dir.join("boxoffice"))
        .find(|path| path.is_file());
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "target/release/boxoffice is missing: build it first (cargo build --release --workspace --bins)"
        );
        eprintln!("skipped: no boxoffice binary above {}", exe.display());
    }
    found
}

const CLIENTS: u64 = 50;
const CHANGES: u64 = 20;

#[test]
fn every_change_reaches_every_client_and_the_report_parses() {
    let Some(server) = server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_boxoffice-stream-bench"))
        .arg("--server")
        .arg(&server)
        .args(["--clients", &CLIENTS.to_string()])
        .args(["--latency-clients", &CLIENTS.to_string()])
        .args(["--changes", &CHANGES.to_string()])
        .args(["--connections", "4", "--rounds", "1"])
        .args(["--duration", "1s", "--warmup", "200ms"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the bench failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("goal: a change reaches every client"),
        "{stdout}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the report was written"))
            .expect("the report is JSON");

    let latency = &report["latency"];
    assert_eq!(latency["clients"], CLIENTS);
    assert_eq!(latency["changes"], CHANGES);
    assert_eq!(latency["expected"], CLIENTS * CHANGES);
    assert_eq!(latency["delivered"], CLIENTS * CHANGES, "{latency}");
    assert_eq!(latency["clients_dropped"], 0);
    assert_eq!(latency["delivery"]["count"], CLIENTS * CHANGES);
    assert_eq!(latency["last_client"]["count"], CHANGES);
    assert_eq!(latency["last_client_from_send"]["count"], CHANGES);
    assert_eq!(latency["writer_round_trip"]["count"], CHANGES);

    assert_eq!(report["memory"]["clients"], CLIENTS);
    assert!(report["memory"]["rss_after"].as_u64().unwrap() > 0);

    let runs = report["throughput"]["runs"].as_array().expect("runs");
    let kinds: Vec<&str> = runs
        .iter()
        .map(|r| r["watchers"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["none", "other", "same"]);
    for run in runs {
        assert!(run["holds"].as_u64().unwrap() > 0, "{run}");
        assert_eq!(run["errors"], 0, "{run}");
        let want = if run["watchers"] == "none" {
            0
        } else {
            CLIENTS
        };
        assert_eq!(run["clients"], want, "{run}");
    }
    // Clients on another event get no change; clients on the held event get them.
    assert_eq!(runs[1]["changes_received"], 0);
    assert!(runs[2]["changes_received"].as_u64().unwrap() > 0);
    assert!(report["goals"]["idle_cost_pct"].is_number());
    assert!(report["goals"]["latency_p99_ms"].is_number());
}
