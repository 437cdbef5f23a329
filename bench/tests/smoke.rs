//! Smoke runs of `boxoffice-load`: a few seconds against the real server (started by the
//! tool itself with `--spawn`), each of which must pass its verification, and a run
//! against the in-process ceiling alone.
//!
//! The server binary is `target/release/boxoffice` (CI builds the binaries before the
//! tests). Without it the server runs are skipped, except under CI (`CI=true`), where a
//! missing binary fails the test.

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

/// Runs the load generator and returns its JSON report.
fn load(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_boxoffice-load"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .output()
        .expect("boxoffice-load runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "boxoffice-load {args:?} exited {:?}\n{stdout}\n{stderr}",
        output.status
    );
    let text = std::fs::read_to_string(&json).expect("the JSON report is written");
    serde_json::from_str(&text).expect("the JSON report parses")
}

fn assert_verified(report: &Value) {
    let verification = &report["boxoffice"]["verification"];
    assert_eq!(verification["passed"], true, "{verification:#}");
    assert!(
        verification["acknowledged"].as_u64().unwrap() > 0,
        "{verification:#}"
    );
}

#[test]
fn hot_section_against_the_real_server_verifies_next_to_the_ceiling() {
    let Some(server) = server_binary() else {
        return;
    };
    let plots = tempfile::tempdir().unwrap();
    let report = load(&[
        "--spawn",
        server.to_str().unwrap(),
        "--ceiling",
        "--connections",
        "16",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--plots",
        plots.path().to_str().unwrap(),
    ]);
    assert_verified(&report);
    let hold = &report["boxoffice"]["kinds"][0];
    assert_eq!(hold["kind"], "hold");
    assert!(hold["ok"].as_u64().unwrap() > 0);
    assert!(report["ceiling"]["requests"].as_u64().unwrap() > 0);
    assert!(report["comparison"]["throughput_ratio"].as_f64().unwrap() > 0.0);
    for name in ["latency", "throughput"] {
        let svg = plots.path().join(format!("load-hot-section-{name}.svg"));
        let text = std::fs::read_to_string(&svg).expect("the plot is written");
        assert!(
            text.starts_with("<svg") || text.contains("<svg"),
            "{}",
            svg.display()
        );
    }
}

#[test]
fn lifecycle_and_seat_map_against_the_real_server_verify() {
    let Some(server) = server_binary() else {
        return;
    };
    for workload in ["lifecycle", "seat-map"] {
        let report = load(&[
            "--spawn",
            server.to_str().unwrap(),
            "--workload",
            workload,
            "--connections",
            "8",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--seats",
            "5000",
        ]);
        assert_verified(&report);
    }
}

#[test]
fn sellout_sells_exactly_the_tickets_on_sale() {
    let Some(server) = server_binary() else {
        return;
    };
    let report = load(&[
        "--spawn",
        server.to_str().unwrap(),
        "--workload",
        "sellout",
        "--buyers",
        "200",
        "--tickets",
        "50",
        "--connections",
        "16",
        "--auth",
        "user",
    ]);
    assert_verified(&report);
    let purchase = &report["boxoffice"]["kinds"][0];
    assert_eq!(purchase["requests"], 200);
    assert_eq!(purchase["ok"], 50);
    let section = &report["boxoffice"]["verification"]["sections"][0];
    assert_eq!(
        (section["sold"].as_u64(), section["available"].as_u64()),
        (Some(50), Some(0))
    );
}

#[test]
fn waitlist_cancellations_feed_offers_that_their_users_confirm() {
    let Some(server) = server_binary() else {
        return;
    };
    let report = load(&[
        "--spawn",
        server.to_str().unwrap(),
        "--workload",
        "waitlist",
        "--tickets",
        "30",
        "--connections",
        "16",
        "--duration",
        "3s",
        "--warmup",
        "500ms",
        "--auth",
        "user",
    ]);
    assert_verified(&report);
    let kinds = report["boxoffice"]["kinds"].as_array().unwrap();
    let ok = |name: &str| {
        kinds
            .iter()
            .find(|k| k["kind"] == name)
            .and_then(|k| k["ok"].as_u64())
            .unwrap_or(0)
    };
    // The section sold out (in the warm-up, whose answers count in the verification but
    // not in the figures), buyers joined, cancellations fed offers, users confirmed them.
    let verification = &report["boxoffice"]["verification"];
    assert!(
        verification["acknowledged"].as_u64().unwrap() >= 30,
        "{verification:#}"
    );
    assert!(ok("join") > 0, "{kinds:#?}");
    assert!(ok("cancel") > 0, "{kinds:#?}");
    assert!(ok("confirm") > 0, "{kinds:#?}");
    let section = &report["boxoffice"]["verification"]["sections"][0];
    assert_eq!(section["capacity"], 30, "{section:#}");
}

#[test]
fn the_ceiling_runs_alone() {
    let report = load(&[
        "--ceiling-only",
        "--connections",
        "8",
        "--requests",
        "2000",
        "--warmup",
        "200ms",
    ]);
    let hold = &report["ceiling"]["kinds"][0];
    assert_eq!(hold["requests"], 2000);
    assert_eq!(hold["ok"], 2000);
    assert!(report["boxoffice"].is_null());
}
