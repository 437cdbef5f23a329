//! An operator's mistakes, through the real binary: the data directory refuses to lose or
//! hide data. A deleted `LOCK` file does not let a second server in; a shard directory
//! missing or emptied (a partial restore) and a deleted `boxoffice.json` stop start-up
//! with a message that says what is missing, and nothing is written.

use std::path::{Path, PathBuf};

use harness::{serve_until_exit, user_token, Launch, Proc, ADMIN};
use serde_json::{json, Value};

fn launch(shards: usize) -> Launch {
    Launch {
        shards: Some(shards),
        ..Launch::default()
    }
}

/// Creates event `id` (GA, 100 tickets) and buys one ticket for alice: the booking id.
fn event_and_purchase(proc: &Proc, id: &str) -> String {
    let body = json!({"id": id, "name": id, "sections": [{"id": "ga", "name": "GA", "price_cents": 100, "capacity": 100}]});
    let (status, answer) = proc.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{answer}");
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let (status, booking) = proc.call(
        "POST",
        &format!("/v1/events/{id}/bookings"),
        Some(&user_token("alice")),
        Some(&one),
    );
    assert_eq!(status, 201, "{booking}");
    booking["id"].as_str().unwrap().to_string()
}

/// The shard in a booking id `b-<shard>-<n>`.
fn shard_of(booking: &str) -> usize {
    booking.split('-').nth(1).unwrap().parse().unwrap()
}

/// Every file and directory under `dir`, with its length, sorted.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            out.push((entry.path(), if meta.is_dir() { 0 } else { meta.len() }));
        }
    }
    out.sort();
    out
}

/// Asserts that every booking answers 200 (the admin reads it).
fn assert_bookings_there(proc: &Proc, bookings: &[String]) {
    for id in bookings {
        let (status, body): (u16, Value) =
            proc.call("GET", &format!("/v1/bookings/{id}"), Some(ADMIN), None);
        assert_eq!(status, 200, "booking {id} after the restore: {body}");
    }
}

#[test]
fn a_deleted_lock_file_does_not_let_a_second_server_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Proc::start(&data, &launch(2));
    let before = event_and_purchase(&first, "e");
    let recorded = std::fs::read_to_string(data.join("LOCK")).unwrap();
    assert_eq!(
        recorded.trim(),
        first.pid().to_string(),
        "LOCK records the PID"
    );

    std::fs::remove_file(data.join("LOCK")).unwrap();
    let (ok, stderr) = serve_until_exit(&data, &[]);
    assert!(
        !ok,
        "a second server started on a directory in use: {stderr}"
    );
    assert!(
        stderr.contains(&data.display().to_string()),
        "the error names the directory: {stderr}"
    );
    assert!(
        stderr.contains(&format!("PID {}", first.pid())),
        "the error names the PID holding it: {stderr}"
    );

    // The first keeps serving, and what it sold is all there is.
    assert_eq!(first.call("GET", "/ready", None, None).0, 200);
    let one = json!({"items": [{"section_id": "ga", "qty": 1}]});
    let (status, after) = first.call(
        "POST",
        "/v1/events/e/bookings",
        Some(&user_token("alice")),
        Some(&one),
    );
    assert_eq!(status, 201, "{after}");
    assert_ne!(after["id"].as_str().unwrap(), before);
    assert_eq!(first.terminate(), Some(0));
    let again = Proc::start(&data, &Launch::default());
    let (_, event) = again.call("GET", "/v1/events/e", None, None);
    assert_eq!(event["sections"][0]["sold"], 2);
    assert_eq!(again.terminate(), Some(0));
}

#[test]
fn a_missing_or_emptied_shard_directory_stops_start_up_until_it_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let proc = Proc::start(&data, &launch(4));
    let bookings: Vec<String> = (0..12)
        .map(|i| event_and_purchase(&proc, &format!("ev{i}")))
        .collect();
    let mut shards: Vec<usize> = bookings.iter().map(|b| shard_of(b)).collect();
    shards.sort_unstable();
    shards.dedup();
    assert!(shards.len() >= 3, "events on several shards: {shards:?}");
    assert_eq!(proc.terminate(), Some(0));

    let victim = data.join(format!("shard-{:03}", shards[1]));
    let aside = dir.path().join("aside");
    std::fs::rename(&victim, &aside).unwrap();
    let before = listing(&data);
    let (ok, stderr) = serve_until_exit(&data, &[]);
    assert!(!ok, "started without a shard directory: {stderr}");
    assert!(
        stderr.contains(&format!("{} is missing", victim.display())) && stderr.contains("created"),
        "the error names the missing shard directory: {stderr}"
    );
    assert_eq!(listing(&data), before, "nothing was written");

    std::fs::create_dir(&victim).unwrap();
    let (ok, stderr) = serve_until_exit(&data, &[]);
    assert!(!ok, "started with an emptied shard directory: {stderr}");
    assert!(
        stderr.contains(&format!("{} is empty", victim.display())),
        "the error names the empty shard directory: {stderr}"
    );
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "the empty shard was not filled"
    );

    std::fs::remove_dir(&victim).unwrap();
    std::fs::rename(&aside, &victim).unwrap();
    let proc = Proc::start(&data, &Launch::default());
    assert_bookings_there(&proc, &bookings);
    assert_eq!(proc.terminate(), Some(0));
}

#[test]
fn a_deleted_boxoffice_json_is_not_recreated_over_shard_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let proc = Proc::start(&data, &launch(2));
    let bookings: Vec<String> = (0..6)
        .map(|i| event_and_purchase(&proc, &format!("ev{i}")))
        .collect();
    assert_eq!(proc.terminate(), Some(0));

    let meta = data.join("boxoffice.json");
    let saved = std::fs::read(&meta).unwrap();
    std::fs::remove_file(&meta).unwrap();
    let before = listing(&data);
    let (ok, stderr) = serve_until_exit(&data, &["--shards", "3"]);
    assert!(!ok, "new metadata was written over shard logs: {stderr}");
    assert!(
        stderr.contains(&meta.display().to_string())
            && stderr.contains("2 shard directories")
            && stderr.contains("Restore it"),
        "the error names the file, what was found and what to do: {stderr}"
    );
    assert!(!meta.exists(), "no metadata was written");
    assert_eq!(listing(&data), before, "nothing was written");

    std::fs::write(&meta, saved).unwrap();
    let proc = Proc::start(&data, &Launch::default());
    assert_bookings_there(&proc, &bookings);
    assert_eq!(proc.terminate(), Some(0));
}
