//! Reading a spawned server's log and its shard directories (shared by the snapshot tests;
//! included with `#[path]`, so not a test target of its own).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The value of `key=` in a log line (up to the next space), e.g. `seq=12`.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split_whitespace().next()
}

/// A logged number, bare or as `Some(n)`.
pub fn number(text: &str) -> Option<u64> {
    text.trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .ok()
}

/// The lines of the current run (after the last `==== boxoffice` header).
pub fn current_run(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("==== boxoffice"))
        .map_or(0, |i| i + 1);
    lines[start..].iter().map(|l| l.to_string()).collect()
}

/// Waits (at most 60 s) until the current run's lines in the log at `path` satisfy
/// `done`, and returns them. The log file is written by the test's reader of the server's
/// stderr, which may lag behind the server (a line the server logged before answering may
/// reach the file after the answer): a test waits for a line, never reads it once.
pub fn wait_for_log(path: &Path, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = current_run(path);
        if done(&lines) {
            return lines;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The current run's `shard recovered` line (of the first shard to log one), waited for.
pub fn recovered_line(path: &Path) -> String {
    wait_for_log(path, "a `shard recovered` line", |l| {
        count(l, "shard recovered") > 0
    })
    .into_iter()
    .find(|l| l.contains("shard recovered"))
    .unwrap()
}

/// The time a log line was logged, in microseconds since the Unix epoch, read from its
/// leading RFC 3339 UTC timestamp (`2026-12-03T10:59:34.071795Z`, as the server logs).
pub fn logged_at_us(line: &str) -> Option<u64> {
    let stamp = line.split_whitespace().next()?;
    let time =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000).ok()
}

/// Lines containing `what`.
pub fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.contains(what)).count()
}

/// The `seq=` of every line containing `what`, in order.
pub fn seqs(lines: &[String], what: &str) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l.contains(what))
        .filter_map(|l| field(l, "seq").and_then(number))
        .collect()
}

/// The seqs of the (complete) snapshot files in a shard's log directory, ascending.
pub fn snapshot_files(shard_dir: &Path) -> Vec<u64> {
    let mut seqs: Vec<u64> = std::fs::read_dir(shard_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("snap-")?
                .strip_suffix(".snap")?
                .parse()
                .ok()
        })
        .collect();
    seqs.sort_unstable();
    seqs
}

/// Temporary files (a snapshot written but not yet renamed into place) in a shard directory.
pub fn temporary_files(shard_dir: &Path) -> Vec<String> {
    std::fs::read_dir(shard_dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

/// The `boxoffice-load` binary next to the test executable.
pub fn load_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .skip(1)
        .map(|d| d.join("boxoffice-load"))
        .find(|p| p.is_file())
        .expect("boxoffice-load next to the tests: cargo build --release --workspace --bins")
}
