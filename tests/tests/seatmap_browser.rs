//! The seat-map page in a real browser: tests/browser/seatmap_test.py (Playwright for Python
//! driving Debian's chromium) plays two buyers against the real binary. Screenshots of each
//! step land in target/browser-artifacts/. Under `CI=true` a missing chromium or Playwright
//! fails the test; elsewhere it is skipped with a note.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{Launch, Server, ADMIN};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
/// The event's hold TTL: short, so the real expiry comes within the test.
const TTL_SECONDS: u64 = 8;
/// The whole browser run stops by itself after this.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(110);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn have_tools() -> Result<(), String> {
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    let playwright = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .status()
        .map_err(|e| format!("python3 does not run: {e}"))?;
    if !playwright.success() {
        return Err("Playwright for Python is missing (pip install playwright)".into());
    }
    Ok(())
}

fn token(server: &Server, user: &str) -> String {
    let out = server.tool(&["token", "--user", user]);
    assert!(
        out.status.success(),
        "boxoffice token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn two_buyers_on_the_seat_map_in_a_real_browser() {
    if let Err(missing) = have_tools() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the browser test cannot run under CI: {missing}");
        }
        eprintln!("skipping the browser test: {missing}");
        return;
    }
    // The JWT secret is generated into the data directory, so that `boxoffice token
    // --data-dir DIR` mints tokens the server accepts.
    let server = Server::start(Launch {
        env: vec![("BOXOFFICE_JWT_SECRET".into(), String::new())],
        ..Launch::default()
    });
    let body = json!({"id": "show", "name": "Evening show", "hold_ttl_seconds": TTL_SECONDS,
        "sections": [
            {"id": "hall", "name": "Hall", "price_cents": 4500,
             "seats": {"rows": [{"label": "A", "count": 12}, {"label": "B", "count": 12}]}},
            {"id": "ga", "name": "Standing", "price_cents": 2000, "capacity": 200}]});
    let (status, answer) = server.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{answer}");
    let alice = token(&server, "alice");
    let bob = token(&server, "bob");

    let out = workspace().join("target").join("browser-artifacts");
    std::fs::create_dir_all(&out).unwrap();
    let mut child = Command::new("python3")
        .arg(workspace().join("tests/browser/seatmap_test.py"))
        .args(["--base", &format!("http://127.0.0.1:{}", server.port())])
        .args(["--event", "show", "--ttl", &TTL_SECONDS.to_string()])
        .args(["--token-a", &alice, "--token-b", &bob])
        .arg("--out")
        .arg(&out)
        .spawn()
        .expect("python3 starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SCRIPT_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser test did not finish in {SCRIPT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "the browser test failed ({status}); screenshots in {}",
        out.display()
    );
    assert!(out.join("seatmap.png").is_file());
}
