//! A shard's follower that falls further behind than its queue holds catches up from the
//! log's files by itself, through the binary: the shard never stops to copy its engine for
//! it (`boxoffice_follower_resyncs_total` stays 0), the live stream delivers the changes
//! in order (a client dropped for the burst resumes from its last id), a new stream
//! client's snapshot is exact, and a snapshot of the caught-up state restores the same state
//! after kill -9.
//!
//! The follower is held with `BOXOFFICE_TEST_PAUSE_FOLLOWER` while more batches than
//! `FOLLOWER_QUEUE_BATCHES` (4,096; one sequential hold is one batch) become durable.

#[path = "support/server_log.rs"]
mod server_log;

use std::time::{Duration, Instant};

use harness::{metric, request, Launch, Server, Sse, StreamModel, ADMIN};
use serde_json::json;
use server_log::snapshot_files;

/// More batches than the follower's queue holds (`FOLLOWER_QUEUE_BATCHES` = 4,096).
const HOLDS: u64 = 4_400;
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_follower_held_past_its_queue_catches_up_from_the_log_and_the_stream_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let pause = dir.path().join("pause-follower");
    let mut server = Server::start(Launch {
        shards: Some(1),
        env: vec![
            (
                "BOXOFFICE_TEST_PAUSE_FOLLOWER".into(),
                pause.display().to_string(),
            ),
            ("BOXOFFICE_SNAPSHOT_EVERY_DECISIONS".into(), "1000".into()),
            ("BOXOFFICE_FOLLOWER_NICE".into(), "7".into()),
        ],
        ..Launch::default()
    });
    let port = server.port();
    assert_eq!(
        thread_nice(server.pid(), "follower-0"),
        Some(7),
        "BOXOFFICE_FOLLOWER_NICE sets the follower's priority"
    );
    assert_eq!(
        thread_nice(server.pid(), "shard-0"),
        Some(0),
        "and only the follower's"
    );
    let body = json!({"id": "big", "name": "Big", "hold_ttl_seconds": 86_400, "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 100_000},
        {"id": "hall", "name": "Hall", "price_cents": 500,
         "seats": {"rows": [{"label": "A", "count": 10}]}}]});
    let (status, answer) = server.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{answer}");

    let mut live = Sse::connect(port, "big", None).unwrap();
    assert_eq!(live.status, 200);
    let mut model = StreamModel::default();
    let first = live.next(WAIT).unwrap().expect("a snapshot");
    assert_eq!(first.event, "snapshot");
    model.apply(&first);

    // The follower stops; the shard goes on answering, one batch per hold.
    std::fs::write(&pause, b"").unwrap();
    for n in 0..HOLDS {
        let (status, answer) = request(
            port,
            "POST",
            "/v1/events/big/holds",
            Some(ADMIN),
            Some(&json!({"user_id": format!("u{}", n % 500), "items": [{"section_id": "ga", "qty": 1}]})),
        )
        .unwrap();
        assert_eq!(status, 201, "hold {n}: {answer}");
    }
    let (status, answer) = request(
        port,
        "POST",
        "/v1/events/big/holds",
        Some(ADMIN),
        Some(&json!({"user_id": "seated", "seats": ["A-3", "A-4"]})),
    )
    .unwrap();
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        metric(port, "boxoffice_follower_catch_ups_total{shard=\"0\"}"),
        0.0,
        "the follower is still held"
    );
    std::fs::remove_file(&pause).unwrap();

    // The stream client already connected sees every change, ids increasing, up to the
    // last hold. The burst of changes once the follower goes on may be more than a client
    // is queued (STREAM_CLIENT_QUEUE): one that is disconnected resumes from its last id,
    // as a client following design.md does.
    let deadline = Instant::now() + WAIT;
    let mut last_id = first.id.expect("the snapshot has an id");
    let mut resumed = 0;
    while model.sections.get("ga").map(|s| s.1) != Some(HOLDS)
        || model.seats.get("A-4").map(String::as_str) != Some("held")
    {
        assert!(
            Instant::now() < deadline,
            "the stream did not catch up: {model:?}"
        );
        let Some(message) = live.next(WAIT).unwrap() else {
            resumed += 1;
            assert!(resumed < 100, "resumed {resumed} times");
            live = Sse::connect(port, "big", Some(last_id)).unwrap();
            assert_eq!(live.status, 200);
            continue;
        };
        let id = message.id.expect("every message has an id");
        assert!(id > last_id, "ids must increase: {id} after {last_id}");
        last_id = id;
        model.apply(&message);
    }
    assert_eq!(model.sections["ga"], (100_000 - HOLDS, HOLDS, 0));
    assert_eq!(model.seats.get("A-3").map(String::as_str), Some("held"));

    // A new client's snapshot (a call run on the follower) is the shard's state.
    let mut fresh = Sse::connect(port, "big", None).unwrap();
    let mut fresh_model = StreamModel::default();
    fresh_model.apply(&fresh.next(WAIT).unwrap().expect("a snapshot"));
    assert_eq!(fresh_model, StreamModel::read(port, "big"));
    assert_eq!(fresh_model.sections["ga"].1, HOLDS);

    assert!(
        metric(port, "boxoffice_follower_catch_ups_total{shard=\"0\"}") >= 1.0,
        "the follower read what it missed from the log"
    );
    assert!(
        metric(
            port,
            "boxoffice_follower_caught_up_records_total{shard=\"0\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(port, "boxoffice_follower_resyncs_total{shard=\"0\"}"),
        0.0,
        "the shard never copied its engine for the follower"
    );

    // A snapshot of the caught-up state: the follower starts one at a batch once the
    // cadence (1,000 decisions since the last one started) is reached and the writer is
    // free, so at most a little over 1,000 more holds bring it; the newest
    // restores the same state after kill -9.
    let shard_dir = server.data_dir().join("shard-000");
    let mut late = 0;
    while snapshot_files(&shard_dir).last().copied().unwrap_or(0) < HOLDS {
        assert!(
            late < 2_500,
            "no snapshot past seq {HOLDS}: {:?}",
            snapshot_files(&shard_dir)
        );
        late += 1;
        let (status, answer) = request(
            port,
            "POST",
            "/v1/events/big/holds",
            Some(ADMIN),
            Some(&json!({"user_id": "late", "items": [{"section_id": "ga", "qty": 1}]})),
        )
        .unwrap();
        assert_eq!(status, 201, "{answer}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = StreamModel::read(port, "big");
    drop(live);
    drop(fresh);
    server.kill9();
    server.restart();
    assert_eq!(StreamModel::read(server.port(), "big"), before);
}

/// The nice value of the thread of process `pid` named `name` (from `/proc`).
fn thread_nice(pid: u32, name: &str) -> Option<i32> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
        let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        if comm == name {
            // After the name: state is field 3 of the line, nice field 19.
            return rest.split(' ').nth(16)?.parse().ok();
        }
    }
    None
}
