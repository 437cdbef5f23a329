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
    // Others are served while the slow clients trickle bytes.
    while started.elapsed() < Duration::from_secs(3) {
        for s in &mut slow {
            let _ = s.write_all(b"x");
        }
        let asked = Instant::now();
        assert_eq!(proc.call("GET", "/health", None, None).0, 200);
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "a normal request waited behind slow clients"
        );
        answered += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // The server cuts them off after its header read timeout (10 s).
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        closed += 1;
    }
    let waited = started.elapsed();
    println!("slowloris: {answered} normal requests answered meanwhile; {closed} slow connections cut after {waited:?}");
    assert!(
        waited < Duration::from_secs(14),
        "slow connections were not cut off in time"
    );
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
    for _ in 0..50 {
        let asked = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", proc.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 503") {
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            assert!(answer.contains("overloaded"), "{answer}");
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "the refusal was not quick"
            );
            refused += 1;
        }
    }
    let during = rss_kib(proc.pid());
    println!("connection flood: {cap} held, {refused}/50 extra refused with 503; RSS {before} KiB -> {during} KiB");
    assert_eq!(refused, 50, "every connection past the cap is refused");
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
