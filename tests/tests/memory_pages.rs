//! The server turns transparent huge pages off for itself (docs/architecture.md, "Tables
//! that grow without moving"): with them, the first touch of each new 2 MiB of a growing
//! table was zeroed at once inside a decision. `BOXOFFICE_HUGE_PAGES=1` keeps them.

use harness::{Launch, Server};

/// `THP_enabled` of the server's `/proc/PID/status`: 0 when the process disabled them.
fn thp_enabled(server: &Server) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .expect("the kernel shows THP_enabled in /proc/PID/status (Linux 5.0 and later)");
    line.trim().parse().unwrap()
}

#[test]
fn the_server_runs_without_transparent_huge_pages_unless_told_to_keep_them() {
    let server = Server::start(Launch::default());
    assert_eq!(thp_enabled(&server), 0, "huge pages off by default");
    let kept = Server::start(Launch {
        env: vec![("BOXOFFICE_HUGE_PAGES".into(), "1".into())],
        ..Launch::default()
    });
    assert_eq!(thp_enabled(&kept), 1, "BOXOFFICE_HUGE_PAGES=1 keeps them");
}
