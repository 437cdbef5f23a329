//! Buyers placing one-ticket holds on section `ga` of an event until they are stopped or
//! the server dies, and the check after a kill -9 and restart that every hold they were
//! answered 201 for is still held (shared by the crash tests; included with `#[path]`, so
//! not a test target of its own).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use harness::{request, Server, ADMIN};
use serde_json::{json, Value};

/// Creates event `id`: one general-admission section `ga` of `capacity`, holds of a day.
pub fn create_event(server: &Server, id: &str, capacity: u64) {
    let (status, body) = server.call(
        "POST",
        "/v1/events",
        Some(ADMIN),
        Some(&json!({
            "id": id, "name": id, "hold_ttl_seconds": 86_400,
            "sections": [{"id": "ga", "name": "GA", "price_cents": 100, "capacity": capacity}]
        })),
    );
    assert_eq!(status, 201, "{body}");
}

/// A hold of one ticket of section `ga` of `event` for `user`.
pub fn hold(port: u16, event: &str, user: &str) -> std::io::Result<(u16, Value)> {
    request(
        port,
        "POST",
        &format!("/v1/events/{event}/holds"),
        Some(ADMIN),
        Some(&json!({"user_id": user, "items": [{"section_id": "ga", "qty": 1}]})),
    )
}

/// Threads placing holds one after the other on an event, each for a fresh user, until
/// stopped or the server dies; every hold answered 201 is recorded. Any other answer
/// panics the thread (and the test, when it is joined).
pub struct Buyers {
    port: u16,
    event: String,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Buyers {
    /// `count` buyers on `event` of the server on `port`; buyer `b`'s `n`th hold is for
    /// user `{prefix}-{b}-{n}`.
    pub fn start(port: u16, event: &str, prefix: &str, count: usize) -> Buyers {
        let mut buyers = Buyers {
            port,
            event: event.to_string(),
            acked: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        buyers.add(prefix, count);
        buyers
    }

    /// `count` more buyers, as in [`Buyers::start`], recording into the same list.
    pub fn add(&mut self, prefix: &str, count: usize) {
        for b in 0..count {
            let (stop, acked) = (Arc::clone(&self.stop), Arc::clone(&self.acked));
            let (port, event, prefix) = (self.port, self.event.clone(), prefix.to_string());
            self.threads.push(std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    match hold(port, &event, &format!("{prefix}-{b}-{n}")) {
                        Ok((201, body)) => acked
                            .lock()
                            .unwrap()
                            .push(body["id"].as_str().unwrap().to_string()),
                        Ok((status, body)) => panic!("an unexpected answer {status}: {body}"),
                        Err(_) => return, // killed
                    }
                }
            }));
        }
    }

    /// How many holds were answered 201 so far.
    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `count` holds were answered 201; panics with `what` if that
    /// takes longer than `within`.
    pub fn wait_for(&self, count: usize, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        while self.acked() < count {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the server under the buyers with SIGKILL, then stops and joins them; returns
    /// the ids of the holds answered 201, in the order they were answered.
    pub fn kill9_server(self, server: &mut Server) -> Vec<String> {
        server.kill9();
        self.stop.store(true, Ordering::Release);
        for thread in self.threads {
            thread.join().unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// After a restart, nothing acknowledged is lost: section `ga` (the first) of `event` holds
/// at least `acknowledged` tickets, and every hold of `sample` reads as held. `context`
/// begins each failure's message.
pub fn assert_acknowledged_held<'a>(
    server: &Server,
    event: &str,
    acknowledged: usize,
    sample: impl IntoIterator<Item = &'a String>,
    context: &str,
) {
    let (status, body) = server.call("GET", &format!("/v1/events/{event}"), None, None);
    assert_eq!(status, 200);
    let held = body["sections"][0]["held"].as_u64().unwrap();
    assert!(
        held >= acknowledged as u64,
        "{context}{acknowledged} holds acknowledged, {held} held after the restart"
    );
    for id in sample {
        let (status, body) = server.call("GET", &format!("/v1/holds/{id}"), Some(ADMIN), None);
        assert_eq!(status, 200, "{context}acknowledged hold {id} lost: {body}");
        assert_eq!(body["status"], "held", "{body}");
    }
}

/// The `newest` last ids of `acked` and every `every`th from the first: the holds to look
/// up one by one after a restart.
pub fn sample(acked: &[String], newest: usize, every: usize) -> impl Iterator<Item = &String> {
    acked
        .iter()
        .rev()
        .take(newest)
        .chain(acked.iter().step_by(every))
}
