//! Hostile clients against the real binary: slow headers (slowloris) and a flood of
//! connections past the cap. The server must stay responsive to others, refuse what it
//! cannot take quickly with 503 and `Retry-After`, and keep its memory bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::{Launch, Proc};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn slow_headers_do_not_stop_other_clients_and_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::start(dir.path(), &Launch::default());
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", proc.port)).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    // Others are served while the slow clients trickle bytes.
    while started.elapsed() < Duration::from_secs(3) {
        for s in &mut slow {
            let _ = s.write_all(b"x");
        }
        let asked = Instant::now();
        assert_eq!(
            proc.call("GET", "/health", None, None).0,
            200,
            "others are served"
        );
        slowest = slowest.max(asked.elapsed());
        answered += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // The server cuts them off after its header read timeout (10 s).
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        // The server closes the connection (EOF); our own read timeout would be an error.
        assert!(
            s.read_to_end(&mut buf).is_ok(),
            "a slow connection was never cut off"
        );
        closed += 1;
    }
    let waited = started.elapsed();
    println!(
        "slowloris: {answered} normal requests answered meanwhile (slowest {slowest:?}); \
         {closed} slow connections cut by the server after {waited:?}"
    );
    assert_eq!(closed, 50);
}

#[test]
fn a_flood_of_connections_gets_quick_503s_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 200;
    let launch = Launch {
        env: vec![("BOXOFFICE_CONNECTIONS_MAX".into(), cap.to_string())],
        ..Launch::default()
    };
    let proc = Proc::start(dir.path(), &launch);
    let before = rss_kib(proc.pid());
    // Fill every slot with a connection that sends nothing...
    let held: Vec<TcpStream> = (0..cap)
        .map(|_| TcpStream::connect(("127.0.0.1", proc.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // ...then knock: each extra connection is answered 503 with Retry-After at once.
    let mut refused = 0;
    let mut slowest = Duration::ZERO;
    let mut others = Vec::new();
    for _ in 0..50 {
        let asked = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", proc.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
        let mut answer = String::new();
        let read = s.read_to_string(&mut answer);
        if !answer.starts_with("HTTP/1.1 503") && others.len() < 3 {
            // What came instead, for the failure message: the status line, or the error.
            let line = answer.lines().next().unwrap_or("").to_string();
            others.push(format!(
                "after {:?}: {line:?} ({:?})",
                asked.elapsed(),
                read.err().map(|e| e.kind())
            ));
        }
        if answer.starts_with("HTTP/1.1 503") {
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            assert!(answer.contains("overloaded"), "{answer}");
            slowest = slowest.max(asked.elapsed());
            refused += 1;
        }
    }
    let during = rss_kib(proc.pid());
    println!(
        "connection flood: {cap} held, {refused}/50 extra refused with 503 (slowest refusal {slowest:?}); \
         RSS {before} KiB -> {during} KiB"
    );
    assert_eq!(
        refused, 50,
        "every connection past the cap is refused; the first other answers: {others:?}"
    );
    assert!(
        during < before + 256 * 1024,
        "memory grew by more than 256 MiB under the flood"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc
        .try_call("GET", "/health", None, None)
        .map(|r| r.0)
        .unwrap_or(0)
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "the server did not recover after the flood"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One hold request on a fresh connection: (status, whether it carried Retry-After, body).
fn hold(port: u16) -> std::io::Result<(u16, bool, String)> {
    let body = r#"{"user_id":"crowd","items":[{"section_id":"ga","qty":1}]}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "POST /v1/events/busy/holds HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         authorization: Bearer {}\r\ncontent-length: {}\r\n\r\n{body}",
        harness::ADMIN,
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let retry_after = answer
        .to_ascii_lowercase()
        .contains("\r\nretry-after: 1\r\n");
    Ok((status, retry_after, answer))
}

#[test]
fn overload_is_refused_quickly_and_nothing_accepted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny shard queue, so the offered load is far above what it takes.
    let launch = Launch {
        env: vec![("BOXOFFICE_SHARD_QUEUE".into(), "4".into())],
        shards: Some(1),
        ..Launch::default()
    };
    let proc = Proc::start(dir.path(), &launch);
    let event = serde_json::json!({"id": "busy", "name": "Busy", "sections": [{"id": "ga", "name": "GA", "price_cents": 1, "capacity": 1000000}]});
    assert_eq!(
        proc.call("POST", "/v1/events", Some(harness::ADMIN), Some(&event))
            .0,
        201
    );
    let before = rss_kib(proc.pid());
    let port = proc.port;
    let gate = std::sync::Arc::new(std::sync::Barrier::new(64));
    let crowd: Vec<_> = (0..64)
        .map(|_| {
            let gate = std::sync::Arc::clone(&gate);
            std::thread::spawn(move || {
                gate.wait();
                (0..40)
                    .map(|_| {
                        let asked = Instant::now();
                        let answer = hold(port).expect("the server answers");
                        (answer, asked.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<_> = crowd.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let accepted: Vec<Duration> = answers
        .iter()
        .filter(|((s, _, _), _)| *s == 201)
        .map(|(_, t)| *t)
        .collect();
    let refused: Vec<Duration> = answers
        .iter()
        .filter(|((s, _, _), _)| *s == 503)
        .map(|((_, retry_after, body), t)| {
            assert!(*retry_after, "a 503 without Retry-After: {body}");
            assert!(body.contains("overloaded"), "{body}");
            *t
        })
        .collect();
    assert_eq!(
        accepted.len() + refused.len(),
        answers.len(),
        "only 201 or 503"
    );
    let p99 = |mut v: Vec<Duration>| {
        v.sort();
        v.get(v.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or_default()
    };
    let during = rss_kib(proc.pid());
    println!(
        "overload: {} requests, {} accepted (p99 {:?}), {} refused with 503 + Retry-After (p99 {:?}); RSS {before} -> {during} KiB",
        answers.len(),
        accepted.len(),
        p99(accepted.clone()),
        refused.len(),
        p99(refused.clone())
    );
    assert!(
        !refused.is_empty(),
        "the offered load never overflowed the queue: no fault injected"
    );
    assert!(!accepted.is_empty());
    assert!(
        during < before + 256 * 1024,
        "memory grew by more than 256 MiB under overload"
    );
    // Every accepted hold is there, and nothing else.
    let (_, ev) = proc.call("GET", "/v1/events/busy", None, None);
    assert_eq!(ev["sections"][0]["held"], accepted.len() as u64);
}
