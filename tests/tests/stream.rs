//! The live-availability stream through the real binary: ordering, resumption, durability,
//! slow clients, kill -9.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{metric, request, Launch, Server, Sse, SseMessage, StreamModel, ADMIN};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn start(journal: &Path) -> Server {
    Server::start(Launch {
        shards: Some(2),
        env: vec![(
            "BOXOFFICE_TEST_DURABLE_JOURNAL".into(),
            journal.display().to_string(),
        )],
        ..Launch::default()
    })
}

/// An event with a GA section and a seated one of `rows` rows of `per_row` seats.
fn event(server: &Server, id: &str, rows: usize, per_row: u32) {
    let rows: Vec<Value> = (0..rows)
        .map(|r| json!({"label": format!("R{r}"), "count": per_row}))
        .collect();
    let body = json!({"id": id, "name": "Live", "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 100000},
        {"id": "hall", "name": "Hall", "price_cents": 500, "seats": {"rows": rows}}]});
    let (status, answer) = server.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{answer}");
}

/// Places a hold for `user` (as the admin); returns its id.
fn hold(port: u16, event_id: &str, user: &str, seats: &[String], qty: u64) -> String {
    let mut body = json!({"user_id": user, "seats": seats});
    if qty > 0 {
        body["items"] = json!([{"section_id": "ga", "qty": qty}]);
    }
    let path = format!("/v1/events/{event_id}/holds");
    let (status, answer) = request(port, "POST", &path, Some(ADMIN), Some(&body)).unwrap();
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

fn release(port: u16, hold_id: &str) {
    let path = format!("/v1/holds/{hold_id}");
    let (status, answer) = request(port, "DELETE", &path, Some(ADMIN), None).unwrap();
    assert_eq!(status, 200, "{answer}");
}

/// The shard of a hold id `h-<shard>-<n>`.
fn shard_of(hold_id: &str) -> u64 {
    hold_id.split('-').nth(1).unwrap().parse().unwrap()
}

/// Durable sequence numbers the journal lists for `shard`.
fn journal(path: &Path, shard: u64) -> HashSet<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(s, _)| s.parse() == Ok(shard))
        .filter_map(|(_, seq)| seq.parse().ok())
        .collect()
}

/// Reads messages until `done` says the model is complete; checks every id is above the
/// previous one and, if a journal is given, already durable when it arrives.
fn read_until(
    sse: &mut Sse,
    model: &mut StreamModel,
    seen: &mut Vec<SseMessage>,
    durable: Option<(&Path, u64)>,
    done: impl Fn(&StreamModel) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !done(model) {
        assert!(Instant::now() < deadline, "the stream did not catch up");
        let message = sse
            .next(WAIT)
            .expect("a message in time")
            .expect("the stream goes on");
        let id = message.id.expect("every message has an id");
        if let Some(last) = seen.last().and_then(|m| m.id) {
            assert!(id > last, "ids must increase: {id} after {last}");
        }
        if let Some((path, shard)) = durable {
            assert!(
                journal(path, shard).contains(&id),
                "message {id} arrived before the journal listed it as durable"
            );
        }
        model.apply(&message);
        seen.push(message);
    }
}

fn seat(row: usize, n: u32) -> String {
    format!("R{row}-{n}")
}

#[test]
fn ids_increase_nothing_arrives_before_it_is_durable_and_a_resume_gets_exactly_the_missed_changes()
{
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("durable");
    let server = start(&journal_path);
    let port = server.port();
    event(&server, "live", 4, 10);

    let mut a = Sse::connect(port, "live", None).unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("text/event-stream"));
    let snapshot = a.next(WAIT).unwrap().unwrap();
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.data["id"], "live");
    let mut model = StreamModel::default();
    model.apply(&snapshot);
    assert_eq!(model, StreamModel::read(port, "live"));
    let mut seen = vec![snapshot];

    // Phase 1: ten holds, one by one.
    let mut shard = None;
    for n in 1..=10 {
        let id = hold(port, "live", "alice", &[seat(0, n)], 1);
        shard = Some(shard_of(&id));
    }
    let shard = shard.unwrap();
    let durable = Some((journal_path.as_path(), shard));
    read_until(&mut a, &mut model, &mut seen, durable, |m| {
        (1..=10).all(|n| m.seats.get(&seat(0, n)).map(String::as_str) == Some("held"))
    });

    // B resumes after the fourth message: it must get exactly A's messages after it.
    let resume_at = seen[4].id.unwrap();
    let mut b = Sse::connect(port, "live", Some(resume_at)).unwrap();
    assert_eq!(b.status, 200);

    // Phase 2: concurrent buyers while both read.
    std::thread::scope(|scope| {
        for buyer in 1..=3usize {
            scope.spawn(move || {
                for n in 1..=10 {
                    let hold_id = hold(port, "live", &format!("u{buyer}"), &[seat(buyer, n)], 2);
                    if n % 3 == 0 {
                        release(port, &hold_id);
                    }
                }
            });
        }
    });
    let expected = StreamModel::read(port, "live");
    read_until(&mut a, &mut model, &mut seen, durable, |m| *m == expected);

    let missed: Vec<&SseMessage> = seen.iter().filter(|m| m.id.unwrap() > resume_at).collect();
    let mut got = Vec::new();
    while got.len() < missed.len() {
        let message = b.next(WAIT).unwrap().expect("B's stream goes on");
        got.push(message);
    }
    let got: Vec<&SseMessage> = got.iter().collect();
    assert_eq!(
        got, missed,
        "B must get exactly the messages after {resume_at}"
    );

    // An id from before anything the server keeps gets a snapshot equal to the state now.
    let mut c = Sse::connect(port, "live", Some(0)).unwrap();
    let fresh = c.next(WAIT).unwrap().unwrap();
    assert_eq!(fresh.event, "snapshot");
    let mut fresh_model = StreamModel::default();
    fresh_model.apply(&fresh);
    assert_eq!(fresh_model, expected);
    assert!(fresh.id.unwrap() >= seen.last().unwrap().id.unwrap());
}

#[test]
fn unknown_events_are_404_and_the_pages_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("durable"));
    let port = server.port();
    let missing = Sse::connect(port, "nope", None).unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.error["error"]["code"], "not_found",
        "{:?}",
        missing.error
    );

    event(&server, "known", 1, 10);
    // An unknown event's page is the same page (it says the event is not found), with 404.
    for (path, status, kind, needle) in [
        ("/", 200, "text/html", "/page/list.js"),
        ("/events/known", 200, "text/html", "/page/seatmap.js"),
        ("/events/nope", 404, "text/html", "/page/seatmap.js"),
        ("/page/seatmap.js", 200, "text/javascript", "EventSource"),
        ("/page/list.js", 200, "text/javascript", "/v1/events"),
        ("/page/style.css", 200, "text/css", ".seat"),
    ] {
        let reply = harness::send(port, "GET", path, &[], None).unwrap();
        assert_eq!(reply.status, status, "{path}");
        assert!(
            reply.header("content-type").unwrap().starts_with(kind),
            "{path}: {:?}",
            reply.header("content-type")
        );
        assert!(
            reply
                .header("content-security-policy")
                .unwrap()
                .contains("connect-src 'self'"),
            "{path}"
        );
        assert!(reply.body.as_str().unwrap().contains(needle), "{path}");
    }
    // The list is in the HTML itself (no script needed to see the links), and the unknown
    // event's page says it is not found.
    let index = harness::send(port, "GET", "/", &[], None).unwrap();
    let index = index.body.as_str().unwrap().to_string();
    assert!(index.contains(r#"<a href="/events/known">"#), "{index}");
    let missing = harness::send(port, "GET", "/events/nope", &[], None).unwrap();
    let missing = missing.body.as_str().unwrap().to_string();
    assert!(missing.contains("Event not found: nope"), "{missing}");
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_the_sale_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("durable"));
    let port = server.port();
    // 20 rows of 100 seats: each hold of a whole row makes a change of 100 seats.
    event(&server, "busy", 20, 100);

    let mut slow = Sse::connect(port, "busy", None).unwrap();
    let first = slow.next(WAIT).unwrap().unwrap();
    assert_eq!(first.event, "snapshot");
    let mut quick = Sse::connect(port, "busy", None).unwrap();
    quick.next(WAIT).unwrap().unwrap();
    let drops_before = metric(port, "boxoffice_stream_drops_total");

    // The quick client keeps reading on its own thread; the slow one reads nothing.
    let stop = Arc::new(AtomicBool::new(false));
    let quick_reader = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut last = 0;
            let mut count = 0u64;
            while !stop.load(Ordering::Acquire) {
                match quick.next(Duration::from_millis(200)) {
                    Ok(Some(m)) => {
                        let id = m.id.unwrap();
                        assert!(id > last, "ids increase: {id} after {last}");
                        last = id;
                        count += 1;
                    }
                    Ok(None) => panic!("the quick client was dropped"),
                    Err(_) => {}
                }
            }
            (last, count)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rounds = 0;
    while metric(port, "boxoffice_stream_drops_total") <= drops_before {
        assert!(
            Instant::now() < deadline,
            "the slow client was never dropped"
        );
        std::thread::scope(|scope| {
            for worker in 0..4usize {
                scope.spawn(move || {
                    for round in 0..10usize {
                        let row = (worker * 5 + round % 5) % 20;
                        let seats: Vec<String> = (1..=100).map(|n| seat(row, n)).collect();
                        let id = hold(port, "busy", &format!("w{worker}"), &seats, 0);
                        release(port, &id);
                    }
                });
            }
        });
        rounds += 1;
    }
    // The sale goes on: a hold after the drop is answered and the quick client sees it.
    let after = hold(port, "busy", "late", &[seat(19, 1)], 0);
    assert!(after.starts_with("h-"));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    let (quick_last, quick_count) = quick_reader.join().unwrap();
    assert!(quick_count > 0);

    // The slow client, reading again, finds what was queued for it, then the end.
    slow.socket()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut last = first.id.unwrap();
    let mut got = 0;
    let ended = loop {
        match slow.next_any(WAIT) {
            Ok(Some(m)) if m.event == "comment" => {}
            Ok(Some(m)) => {
                let id = m.id.unwrap();
                assert!(id > last);
                last = id;
                got += 1;
            }
            Ok(None) => break true,
            Err(e) => panic!("the slow client's stream neither went on nor ended: {e}"),
        }
    };
    assert!(ended);
    assert!(
        last < quick_last,
        "the dropped client must have missed changes ({got} messages, last {last}, the quick one's {quick_last}, {rounds} rounds)"
    );
    // Its place is given back, and so is the quick client's (gone since its reader ended)
    // once the server finds its socket closed: at the next messages, which these changes
    // make.
    let deadline = Instant::now() + WAIT;
    while metric(port, "boxoffice_stream_clients") > 0.0 {
        assert!(Instant::now() < deadline, "stream clients not released");
        let id = hold(port, "busy", "late", &[seat(19, 2)], 0);
        release(port, &id);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn after_kill_9_a_reconnecting_client_is_consistent_with_the_recovered_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&dir.path().join("durable"));
    event(&server, "crash", 2, 10);
    let port = server.port();
    let mut sse = Sse::connect(port, "crash", None).unwrap();
    let mut model = StreamModel::default();
    let mut seen = Vec::new();
    let first = sse.next(WAIT).unwrap().unwrap();
    model.apply(&first);
    seen.push(first);
    let mut acknowledged = Vec::new();
    for n in 1..=5 {
        hold(port, "crash", "alice", &[seat(0, n)], 1);
        acknowledged.push(seat(0, n));
    }
    read_until(&mut sse, &mut model, &mut seen, None, |m| {
        acknowledged
            .iter()
            .all(|s| m.seats.get(s).map(String::as_str) == Some("held"))
    });
    let last_id = seen.last().unwrap().id.unwrap();

    server.kill9();
    drop(sse);
    server.restart();
    let port = server.port();

    // A fresh client: a snapshot equal to the recovered state, with every acknowledged hold.
    let recovered = StreamModel::read(port, "crash");
    for s in &acknowledged {
        assert_eq!(recovered.seats[s], "held", "{s} was acknowledged");
    }
    let mut fresh = Sse::connect(port, "crash", None).unwrap();
    let snapshot = fresh.next(WAIT).unwrap().unwrap();
    assert_eq!(snapshot.event, "snapshot");
    assert!(snapshot.id.unwrap() >= last_id, "ids never go back");
    let mut fresh_model = StreamModel::default();
    fresh_model.apply(&snapshot);
    assert_eq!(fresh_model, recovered);

    // The reconnecting client resumes from its last id: whatever it gets (a snapshot, or
    // the changes after its id) brings its view to the recovered state plus what follows.
    let mut again = Sse::connect(port, "crash", Some(last_id)).unwrap();
    assert_eq!(again.status, 200);
    let id = hold(port, "crash", "bob", &[seat(1, 1)], 0);
    assert!(id.starts_with("h-"));
    let expected = StreamModel::read(port, "crash");
    let mut resumed = vec![seen.last().unwrap().clone()];
    read_until(&mut again, &mut model, &mut resumed, None, |m| {
        *m == expected
    });
}

/// One call as the admin that must answer `status`; returns the body.
fn admin_call(port: u16, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
    let (got, answer) = request(port, method, path, Some(ADMIN), body).unwrap();
    assert_eq!(got, status, "{method} {path}: {answer}");
    answer
}

/// A section's counts as `GET /v1/events/{id}` answers them, in a change's shape.
fn section_now(port: u16, event_id: &str, section_id: &str) -> Value {
    let event = admin_call(port, "GET", &format!("/v1/events/{event_id}"), None, 200);
    let s = event["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == section_id)
        .unwrap_or_else(|| panic!("no section {section_id} in {event}"))
        .clone();
    json!({"id": s["id"], "available": s["available"], "held": s["held"], "sold": s["sold"],
           "waiting": s["waiting"], "set_aside": s["set_aside"]})
}

/// Reads `change` messages (never a snapshot) until the last counts of each of `sections`
/// equal `GET /v1/events/{id}`'s; returns the seats the changes named, with their last
/// status.
fn changes_until_counts_agree(
    sse: &mut Sse,
    port: u16,
    event_id: &str,
    sections: &[&str],
) -> std::collections::BTreeMap<String, String> {
    let want: Vec<Value> = sections
        .iter()
        .map(|s| section_now(port, event_id, s))
        .collect();
    let mut last: std::collections::BTreeMap<String, Value> = Default::default();
    let mut seats = std::collections::BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while want
        .iter()
        .any(|w| last.get(w["id"].as_str().unwrap()) != Some(w))
    {
        assert!(
            Instant::now() < deadline,
            "the stream never showed {want:?} (last {last:?})"
        );
        let message = sse.next(WAIT).unwrap().expect("the stream goes on");
        assert_eq!(
            message.event, "change",
            "a waiting-list decision must send a change, not a fresh snapshot: {message:?}"
        );
        for s in message.data["sections"].as_array().unwrap() {
            last.insert(s["id"].as_str().unwrap().to_string(), s.clone());
        }
        for (seat, status) in message.data["seats"].as_object().unwrap() {
            seats.insert(seat.clone(), status.as_str().unwrap().to_string());
        }
    }
    seats
}

#[test]
fn waiting_list_decisions_stream_as_changes_with_waiting_and_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("durable"));
    let port = server.port();
    let body = json!({"id": "wl", "name": "Waiting", "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 3},
        {"id": "hall", "name": "Hall", "price_cents": 500,
         "seats": {"rows": [{"label": "R0", "count": 4}]}}]});
    admin_call(port, "POST", "/v1/events", Some(&body), 201);
    // Both sections sold out.
    let mut bookings = Vec::new();
    for (user, buy) in [
        (
            "a",
            json!({"seats": ["R0-1", "R0-2"], "items": [{"section_id": "ga", "qty": 2}]}),
        ),
        (
            "b",
            json!({"seats": ["R0-3", "R0-4"], "items": [{"section_id": "ga", "qty": 1}]}),
        ),
    ] {
        let mut buy = buy;
        buy["user_id"] = user.into();
        let booking = admin_call(port, "POST", "/v1/events/wl/bookings", Some(&buy), 201);
        bookings.push(booking["id"].as_str().unwrap().to_string());
    }

    let mut sse = Sse::connect(port, "wl", None).unwrap();
    assert_eq!(sse.status, 200);
    let snapshot = sse.next(WAIT).unwrap().unwrap();
    assert_eq!(snapshot.event, "snapshot");

    // c waits for 2 seats of the hall, d for 2 tickets of GA: only `waiting` changes.
    let mut entries = Vec::new();
    for (user, section) in [("c", "hall"), ("d", "ga")] {
        let join = json!({"user_id": user, "section_id": section, "qty": 2});
        let entry = admin_call(port, "POST", "/v1/events/wl/waitlist", Some(&join), 201);
        assert_eq!(entry["status"], "waiting");
        entries.push(entry["id"].as_str().unwrap().to_string());
    }
    let seats = changes_until_counts_agree(&mut sse, port, "wl", &["hall", "ga"]);
    assert!(seats.is_empty(), "a join changes no seat: {seats:?}");
    assert_eq!(section_now(port, "wl", "hall")["waiting"], 1);
    assert_eq!(section_now(port, "wl", "ga")["waiting"], 1);

    // a cancels (2 seats, 2 GA tickets): both feed offers in the same decision.
    admin_call(
        port,
        "POST",
        &format!("/v1/bookings/{}/cancel", bookings[0]),
        None,
        200,
    );
    let seats = changes_until_counts_agree(&mut sse, port, "wl", &["hall", "ga"]);
    let hall = section_now(port, "wl", "hall");
    assert_eq!(
        (
            &hall["waiting"],
            &hall["held"],
            &hall["sold"],
            &hall["available"]
        ),
        (&json!(0), &json!(2), &json!(2), &json!(0)),
        "{hall}"
    );
    for seat in ["R0-1", "R0-2"] {
        assert_eq!(
            seats.get(seat).map(String::as_str),
            Some("held"),
            "{seat} went to c's offer: {seats:?}"
        );
    }

    let ga = section_now(port, "wl", "ga");
    assert_eq!(
        (&ga["held"], &ga["waiting"]),
        (&json!(2), &json!(0)),
        "{ga}"
    );

    // c's offer is extended: nothing visible changes, so no message; the next one is g's
    // join (g waits for 2 GA tickets), with only GA's `waiting`.
    let offer = admin_call(
        port,
        "GET",
        &format!("/v1/waitlist/{}", entries[0]),
        None,
        200,
    );
    assert_eq!(offer["status"], "offered", "{offer}");
    let path = format!("/v1/holds/{}/extend", offer["hold_id"].as_str().unwrap());
    admin_call(port, "POST", &path, Some(&json!({"ttl_seconds": 900})), 200);
    let join = json!({"user_id": "g", "section_id": "ga", "qty": 2});
    admin_call(port, "POST", "/v1/events/wl/waitlist", Some(&join), 201);
    let next = sse.next(WAIT).unwrap().expect("the stream goes on");
    assert_eq!(next.event, "change", "{next:?}");
    assert_eq!(
        next.data,
        json!({"sections": [section_now(port, "wl", "ga")], "seats": {}}),
        "the extension sent nothing; the join changed GA's waiting only"
    );
    assert_eq!(next.data["sections"][0]["waiting"], 1);

    // b's cancel returns 1 GA ticket (set aside for g, not offered, not on sale) and 2 seats
    // (nobody waits for the hall: back on sale).
    admin_call(
        port,
        "POST",
        &format!("/v1/bookings/{}/cancel", bookings[1]),
        None,
        200,
    );
    let seats = changes_until_counts_agree(&mut sse, port, "wl", &["hall", "ga"]);
    let ga = section_now(port, "wl", "ga");
    assert_eq!(
        (
            &ga["set_aside"],
            &ga["waiting"],
            &ga["held"],
            &ga["available"]
        ),
        (&json!(1), &json!(1), &json!(3), &json!(0)),
        "{ga}"
    );
    for seat in ["R0-3", "R0-4"] {
        assert_eq!(
            seats.get(seat).map(String::as_str),
            Some("free"),
            "{seats:?}"
        );
    }
}
