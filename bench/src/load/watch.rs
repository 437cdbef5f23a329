//! What the server itself shows during a run: the shard loop's longest gap
//! (`boxoffice_shard_loop_gap_seconds{shard}`, a max gauge that each scrape resets, scraped
//! every [`SCRAPE_EVERY`]), live holds, the process's resident memory (when its PID is known),
//! and the snapshots it logged (when the run spawned it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::client::{once, Method, Target};

/// How often the watcher scrapes `/metrics` and reads the RSS.
pub const SCRAPE_EVERY: Duration = Duration::from_millis(500);

/// The server side of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerSide {
    /// Longest gap between two batches of a shard while work was queued, per shard (s).
    pub loop_gap_max_s: BTreeMap<String, f64>,
    /// Live holds at the start of the measured run (sum over shards).
    pub holds_live_start: f64,
    /// Resident memory before the live-hold warm-up (KiB), when the PID is known.
    pub rss_baseline_kib: Option<u64>,
    /// Resident memory at the start of the measured run (KiB).
    pub rss_start_kib: Option<u64>,
    /// Highest resident memory seen during the run (KiB).
    pub rss_max_kib: Option<u64>,
    /// Snapshots logged as written during the run (spawned server only).
    pub snapshots: Option<usize>,
    /// The largest of those snapshots (bytes): the engine's encoded size.
    pub snapshot_bytes_max: Option<u64>,
    /// The longest encode and write of those snapshots (ms).
    pub snapshot_encode_ms_max: Option<u64>,
    /// See `snapshot_encode_ms_max`.
    pub snapshot_write_ms_max: Option<u64>,
    /// The longest snapshot as a server that takes them on the shard thread logs it
    /// (`elapsed_ms`: encode and write together, the shard stalled meanwhile).
    pub snapshot_on_shard_ms_max: Option<u64>,
    /// When each snapshot written during the run was started, encoded and written.
    pub snapshot_phases: Vec<SnapshotPhases>,
}

/// Log lines about snapshots, each with the wall clock it was read at (ms since the Unix
/// epoch), shared between the thread that reads the server's log and the watcher.
pub type SnapshotLines = Arc<Mutex<Vec<(u64, String)>>>;

/// The wall clock, ms since the Unix epoch.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One snapshot's phases on the wall clock (ms since the Unix epoch), from its two log lines:
/// the follower copies its engine at `started`, the writer encodes the copy, then writes the
/// file, and logs `written` when the file is durable.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct SnapshotPhases {
    /// The `snapshot started` line (the copy is taken right after it).
    pub started_unix_ms: u64,
    /// Where the write began: `written` less the logged `write_ms`.
    pub write_from_unix_ms: u64,
    /// The `snapshot written` line.
    pub written_unix_ms: u64,
    /// As logged.
    pub encode_ms: u64,
}

impl SnapshotPhases {
    /// What the snapshot was doing at wall clock `t` (ms since the Unix epoch), if anything:
    /// `copy+encode` from its start to the write, then `write`.
    pub fn phase_at(&self, t: u64) -> Option<&'static str> {
        if t < self.started_unix_ms || t > self.written_unix_ms {
            None
        } else if t < self.write_from_unix_ms {
            Some("copy+encode")
        } else {
            Some("write")
        }
    }
}

/// The phases of the snapshots whose `written` line is among `lines`, each paired with the
/// last `started` line of its shard and seq before it.
pub fn snapshot_phases(lines: &[(u64, String)]) -> Vec<SnapshotPhases> {
    let mut out = Vec::new();
    for (i, (at, line)) in lines.iter().enumerate() {
        if !line.contains("snapshot written") {
            continue;
        }
        let (shard, seq) = (field(line, "shard"), field(line, "seq"));
        let started = lines[..i]
            .iter()
            .rev()
            .find(|(_, l)| {
                l.contains("snapshot started")
                    && field(l, "shard") == shard
                    && field(l, "seq") == seq
            })
            .map(|(t, _)| *t);
        let write_ms = field(line, "write_ms").unwrap_or(0);
        let encode_ms = field(line, "encode_ms").unwrap_or(0);
        let write_from = at.saturating_sub(write_ms);
        out.push(SnapshotPhases {
            started_unix_ms: started.unwrap_or(write_from.saturating_sub(encode_ms)),
            write_from_unix_ms: write_from,
            written_unix_ms: *at,
            encode_ms,
        });
    }
    out
}

impl ServerSide {
    /// Human-readable lines.
    pub fn text(&self) -> String {
        let mut out = String::from("server side:\n");
        let gaps: Vec<String> = self
            .loop_gap_max_s
            .iter()
            .map(|(shard, s)| format!("shard {shard} {:.1} ms", s * 1000.0))
            .collect();
        out.push_str(&format!(
            "  shard loop gap max: {}\n  live holds at start: {:.0}\n",
            if gaps.is_empty() {
                "not reported".to_string()
            } else {
                gaps.join(", ")
            },
            self.holds_live_start
        ));
        if let (Some(base), Some(start), Some(max)) =
            (self.rss_baseline_kib, self.rss_start_kib, self.rss_max_kib)
        {
            out.push_str(&format!(
                "  RSS: {:.0} MiB before the live holds, {:.0} MiB at start, max {:.0} MiB during the run\n",
                base as f64 / 1024.0,
                start as f64 / 1024.0,
                max as f64 / 1024.0
            ));
        }
        if let Some(n) = self.snapshots {
            out.push_str(&format!(
                "  snapshots during the run: {n}, largest {:.1} MiB (the engine encoded)",
                self.snapshot_bytes_max.unwrap_or(0) as f64 / 1048576.0,
            ));
            if let (Some(encode), Some(write)) =
                (self.snapshot_encode_ms_max, self.snapshot_write_ms_max)
            {
                out.push_str(&format!(", encode max {encode} ms, write max {write} ms"));
            }
            if let Some(ms) = self.snapshot_on_shard_ms_max {
                out.push_str(&format!(", on the shard thread max {ms} ms"));
            }
            out.push('\n');
        }
        out
    }
}

/// Resident memory of process `pid` (KiB), from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status).map(|bytes| bytes / 1024)
}

/// The `VmRSS:   1234 kB` line of `/proc/PID/status`, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `name{labels} value` lines of a Prometheus text page: (labels, value).
fn samples<'a>(page: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    page.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let end = r.find('}')?;
                    (&r[..end], r[end + 1..].trim())
                }
                None if rest.starts_with(' ') => ("", rest.trim()),
                None => return None,
            };
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

fn shard_label(labels: &str) -> String {
    labels
        .split(',')
        .find_map(|l| l.strip_prefix("shard=\""))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_default()
}

async fn scrape(target: &Arc<Target>) -> Option<String> {
    let reply = once(target, Method::Get, "/metrics", None).await.ok()?;
    (reply.status == 200).then(|| String::from_utf8_lossy(&reply.body).into_owned())
}

/// A running watcher.
pub struct Watcher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<ServerSide>,
    snapshots: Option<(SnapshotLines, usize)>,
}

/// Starts watching: resets the loop-gap gauge with a first scrape, then scrapes until
/// [`Watcher::finish`].
pub async fn start(
    target: Arc<Target>,
    pid: Option<u32>,
    rss_baseline_kib: Option<u64>,
    snapshots: Option<SnapshotLines>,
) -> Watcher {
    let first = scrape(&target).await.unwrap_or_default();
    let mut side = ServerSide {
        holds_live_start: samples(&first, "boxoffice_holds_live")
            .iter()
            .map(|(_, v)| v)
            .sum(),
        rss_baseline_kib,
        rss_start_kib: pid.and_then(rss_kib),
        ..ServerSide::default()
    };
    side.rss_max_kib = side.rss_start_kib;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let done = tokio::select! {
                _ = tokio::time::sleep(SCRAPE_EVERY) => false,
                _ = stopped.changed() => true,
            };
            if let Some(page) = scrape(&target).await {
                for (labels, value) in samples(&page, "boxoffice_shard_loop_gap_seconds") {
                    let max = side
                        .loop_gap_max_s
                        .entry(shard_label(labels))
                        .or_insert(0.0);
                    *max = max.max(value);
                }
            }
            if let Some(rss) = pid.and_then(rss_kib) {
                side.rss_max_kib = Some(side.rss_max_kib.unwrap_or(0).max(rss));
            }
            if done {
                return side;
            }
        }
    });
    let snapshots = snapshots.map(|lines| {
        let seen = lines.lock().map(|l| l.len()).unwrap_or(0);
        (lines, seen)
    });
    Watcher {
        stop,
        task,
        snapshots,
    }
}

/// The number after `key=` in a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

impl Watcher {
    /// Stops watching (one last scrape) and sums up.
    pub async fn finish(self) -> ServerSide {
        let _ = self.stop.send(true);
        let mut side = self.task.await.unwrap_or_default();
        if let Some((lines, seen)) = self.snapshots {
            let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
            let all = lines.get(seen..).unwrap_or_default();
            side.snapshot_phases = snapshot_phases(all);
            let run: Vec<&str> = all
                .iter()
                .map(|(_, l)| l.as_str())
                .filter(|l| l.contains("snapshot written"))
                .collect();
            side.snapshots = Some(run.len());
            side.snapshot_bytes_max = run.iter().filter_map(|l| field(l, " bytes")).max();
            side.snapshot_encode_ms_max = run.iter().filter_map(|l| field(l, "encode_ms")).max();
            side.snapshot_write_ms_max = run.iter().filter_map(|l| field(l, "write_ms")).max();
            side.snapshot_on_shard_ms_max = run.iter().filter_map(|l| field(l, "elapsed_ms")).max();
        }
        side
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_log_fields_are_read() {
        let page = "# TYPE boxoffice_shard_loop_gap_seconds gauge\n\
                    boxoffice_shard_loop_gap_seconds{shard=\"0\"} 0.25\n\
                    boxoffice_shard_loop_gap_seconds{shard=\"1\"} 0.001\n\
                    boxoffice_holds_live{shard=\"0\"} 12\n";
        let gaps = samples(page, "boxoffice_shard_loop_gap_seconds");
        assert_eq!(gaps.len(), 2);
        assert_eq!((shard_label(gaps[0].0), gaps[0].1), ("0".to_string(), 0.25));
        assert_eq!(samples(page, "boxoffice_holds_live")[0].1, 12.0);
        let line = "INFO snapshot written shard=0 seq=12 bytes=345 encode_ms=6 write_ms=7";
        assert_eq!(field(line, " bytes"), Some(345));
        assert_eq!(field(line, "encode_ms"), Some(6));
        assert_eq!(field(line, "write_ms"), Some(7));
        assert_eq!(field(line, "elapsed_ms"), None);
    }
}
