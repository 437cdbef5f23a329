//! Invariant 9 (docs/architecture.md) through the real binary: a bad checksum that a crash cannot explain stops
//! start-up with an error naming the file and the byte offset (and `wal verify` says the
//! same), while a torn tail is cut and the server starts.

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{binary, user_token, Launch, Proc, ADMIN};
use serde_json::json;

/// Offset of the first record in a segment (after the 28-byte header).
const FIRST_RECORD: u64 = wal::SEGMENT_HEADER_LEN as u64;

fn launch() -> Launch {
    Launch {
        shards: Some(1),
        ..Launch::default()
    }
}

/// A data directory with an event and `sales` purchases, cleanly stopped.
fn data_with_sales(dir: &Path, sales: usize) {
    let proc = Proc::start(dir, &launch());
    let body = json!({"id": "e", "name": "Sale", "sections": [{"id": "ga", "name": "GA", "price_cents": 100, "capacity": 100}]});
    assert_eq!(
        proc.call("POST", "/v1/events", Some(ADMIN), Some(&body)).0,
        201
    );
    let alice = user_token("alice");
    for _ in 0..sales {
        let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
        let (status, _) = proc.call("POST", "/v1/events/e/bookings", Some(&alice), Some(&one));
        assert_eq!(status, 201);
    }
    assert_eq!(proc.terminate(), Some(0));
}

fn first_segment(dir: &Path) -> PathBuf {
    let shard = dir.join("shard-000");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&shard)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments.remove(0)
}

/// Runs `boxoffice wal verify` on `dir`: (exit success, stderr).
fn wal_verify(dir: &Path) -> (bool, String) {
    let out = Command::new(binary())
        .args(["wal", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `boxoffice serve` on `dir` and waits (≤ 30 s) for it to exit by itself; returns
/// (exit success, stderr).
fn serve_until_exit(dir: &Path) -> (bool, String) {
    harness::serve_until_exit(dir, &[])
}

#[test]
fn a_bad_checksum_before_good_records_stops_start_up_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    data_with_sales(dir.path(), 5);
    let segment = first_segment(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    // A bit of the first record's payload: records after it still chain, so this is
    // damage, not a torn write.
    bytes[FIRST_RECORD as usize + wal::RECORD_HEADER_LEN] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();

    let (verified, verify_err) = wal_verify(dir.path());
    assert!(!verified, "wal verify passed a damaged log");
    assert!(
        verify_err.contains(&segment.display().to_string())
            && verify_err.contains(&format!("offset {FIRST_RECORD}")),
        "{verify_err}"
    );

    let (ok, stderr) = serve_until_exit(dir.path());
    assert!(!ok, "the server must not start on a damaged log");
    assert!(
        stderr.contains(&segment.display().to_string())
            && stderr.contains(&format!("offset {FIRST_RECORD}")),
        "the error names the file and offset: {stderr}"
    );
    // Nothing was cut or rewritten: the damage is left for an operator to look at.
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
}

#[test]
fn a_torn_tail_is_cut_and_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    data_with_sales(dir.path(), 3);
    let segment = first_segment(dir.path());
    // Half a record at the end, as a crash in the middle of a write leaves it.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut file, &[40, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
    drop(file);
    let proc = Proc::start(dir.path(), &launch());
    assert!(
        proc.log_tail().contains("torn"),
        "the cut is logged: {}",
        proc.log_tail()
    );
    let (status, event) = proc.call("GET", "/v1/events/e", None, None);
    assert_eq!(status, 200);
    assert_eq!(event["sections"][0]["sold"], 3, "every sale is there");
    assert_eq!(proc.terminate(), Some(0));
}

#[test]
fn a_damaged_snapshot_fails_verify_and_the_server_falls_back_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    data_with_sales(dir.path(), 4);
    let shard = dir.path().join("shard-000");
    let snapshot = std::fs::read_dir(&shard)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .expect("a clean stop writes a snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&snapshot, &bytes).unwrap();

    let (verified, verify_err) = wal_verify(dir.path());
    assert!(!verified, "wal verify passed a damaged snapshot");
    assert!(
        verify_err.contains(&snapshot.display().to_string()),
        "{verify_err}"
    );

    // The log still holds every decision: the server starts from it.
    let proc = Proc::start(dir.path(), &launch());
    let (_, event) = proc.call("GET", "/v1/events/e", None, None);
    assert_eq!(event["sections"][0]["sold"], 4, "every sale is there");
    assert_eq!(proc.terminate(), Some(0));
}
