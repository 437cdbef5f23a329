//! The server under test: `boxoffice serve` on 127.0.0.1 port 0 in a temporary data
//! directory, with a connection cap above the client count, started by this process and
//! stopped by its PID (SIGTERM, then SIGKILL). Also its resident memory, from
//! `/proc/PID/status`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::load::spawn::{listening_addr, stop_child};
pub use crate::load::watch::parse_vm_rss;

/// How long the server may take to bind.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// A server this process started.
pub struct Server {
    child: Child,
    /// Its bound address.
    pub addr: SocketAddr,
    /// The admin token it was given.
    pub admin_token: String,
    dir: PathBuf,
}

fn token() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

impl Server {
    /// Starts `binary serve` with `shards` shards and room for `connections` connections.
    pub fn start(binary: &Path, shards: usize, connections: usize) -> anyhow::Result<Server> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "boxoffice-stream-bench-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let admin_token = token();
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--shards", &shards.to_string()])
            .args(["--connections-max", &connections.to_string()])
            .env("BOXOFFICE_ADMIN_TOKEN", &admin_token)
            .env("BOXOFFICE_JWT_SECRET", token())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        // Drains the log for the server's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tail: Vec<String> = Vec::new();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(addr) = listening_addr(&line) {
                        let _ = tx.send(Ok(addr));
                        sent = true;
                    } else if tail.len() < 40 {
                        tail.push(line);
                    }
                }
            }
            if !sent {
                let _ = tx.send(Err(tail.join("\n")));
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().expect("an address"),
            admin_token,
            dir,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(addr)) => server.addr = addr,
            Ok(Err(log)) => bail!("{} exited before listening:\n{log}", binary.display()),
            Err(_) => bail!(
                "{} did not log `listening on` in {START_TIMEOUT:?}",
                binary.display()
            ),
        }
        Ok(server)
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now, in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_bytes(self.pid())
    }

    /// Stops the server: SIGTERM to its PID, then SIGKILL if it has not exited in time.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        stop_child(&mut self.child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `VmRSS` of a process, in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Raises this process's open-file limit to `want`, or to the hard limit if that is
/// lower; the server started afterwards inherits it. Answers the limit now in force.
pub fn raise_nofile(want: u64) -> anyhow::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum;
    let target = hard.map_or(want, |h| want.min(h));
    if now.current.is_some_and(|c| c >= target) || now.current.is_none() {
        return Ok(now.current.unwrap_or(u64::MAX));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: hard,
        },
    )
    .context("setrlimit(RLIMIT_NOFILE)")?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tboxoffice\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t8\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }
}

/// CPU time a process has used, in seconds, in all and per thread name (threads of one
/// name, such as a pool's workers, added up), from `/proc/PID/task/*/stat`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Cpu {
    /// User and system time of the whole process.
    pub total_s: f64,
    /// Per thread name.
    pub threads: std::collections::BTreeMap<String, f64>,
}

impl Cpu {
    /// What was used between `earlier` and `self`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        let threads = self
            .threads
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    s - earlier.threads.get(name).copied().unwrap_or(0.0),
                )
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        Cpu {
            total_s: self.total_s - earlier.total_s,
            threads,
        }
    }
}

/// The `(comm, utime + stime in ticks)` of a `/proc/.../stat` line.
pub fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the name: state (field 3) ... utime (14), stime (15).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// The CPU time of process `pid` so far (`None` for this process).
pub fn cpu(pid: Option<u32>) -> anyhow::Result<Cpu> {
    let base = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    };
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let (_, total) = parse_stat(&std::fs::read_to_string(format!("{base}/stat"))?)
        .ok_or_else(|| anyhow::anyhow!("{base}/stat is not as expected"))?;
    let mut out = Cpu {
        total_s: total as f64 / ticks,
        threads: Default::default(),
    };
    for entry in std::fs::read_dir(format!("{base}/task"))?.flatten() {
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, t)) = parse_stat(&stat) {
            *out.threads.entry(name).or_default() += t as f64 / ticks;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod cpu_tests {
    use super::*;

    #[test]
    fn stat_lines_give_the_name_and_the_cpu_ticks() {
        let line = "4242 (shard 0) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1000 \
                    123456 789 18446744073709551615";
        assert_eq!(parse_stat(line), Some(("shard 0".to_string(), 325)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
