//! `--spawn`: start `boxoffice serve` on 127.0.0.1 port 0 in a temporary data directory
//! with generated tokens, read the bound address from its log, wait for `/ready`, and stop
//! it afterwards by its PID (SIGTERM, then SIGKILL after a grace period). Only the process
//! this started is ever signalled.

use super::watch::SnapshotLines;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long the server may take to bind and to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Log lines kept to explain a failed start.
const LOG_LINES_KEPT: usize = 40;

/// A server this process started.
pub struct Spawned {
    child: Child,
    /// Its bound address.
    pub addr: SocketAddr,
    /// The admin token it was given.
    pub admin_token: String,
    /// The JWT secret it was given.
    pub jwt_secret: String,
    dir: PathBuf,
    log: Arc<Mutex<VecDeque<String>>>,
    /// Every `snapshot started` and `snapshot written` line the server logged, in order.
    snapshots: SnapshotLines,
}

fn token() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// The address in a log line such as `... listening on 127.0.0.1:41234`.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Spawned {
    /// Starts `binary serve` with `shards` shards and waits until it listens.
    pub fn start(binary: &Path, shards: usize) -> anyhow::Result<Spawned> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("boxoffice-load-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (admin_token, jwt_secret) = (token(), token());
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--shards", &shards.to_string()])
            .env("BOXOFFICE_ADMIN_TOKEN", &admin_token)
            .env("BOXOFFICE_JWT_SECRET", &jwt_secret)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        let kept = log.clone();
        let snapshots = Arc::new(Mutex::new(Vec::new()));
        let snapshot_lines = snapshots.clone();
        // Drains the log for the server's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = addr_tx.send(addr);
                }
                if line.contains("snapshot written") || line.contains("snapshot started") {
                    // The time the line was read stands for the time it was logged: the
                    // server writes each line to the pipe as it logs it.
                    let at = super::watch::unix_ms_now();
                    snapshot_lines
                        .lock()
                        .expect("log lock")
                        .push((at, line.clone()));
                }
                let mut kept = kept.lock().expect("log lock");
                if kept.len() == LOG_LINES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let mut spawned = Spawned {
            child,
            addr: "127.0.0.1:0".parse().expect("an address"),
            admin_token,
            jwt_secret,
            dir,
            log,
            snapshots,
        };
        match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => spawned.addr = addr,
            Err(_) => bail!(
                "{} did not log `listening on` within {START_TIMEOUT:?}; its last lines:\n{}",
                binary.display(),
                spawned.log_tail()
            ),
        }
        Ok(spawned)
    }

    /// Waits until `GET /ready` answers 200.
    pub async fn wait_ready(&mut self, target: &Arc<super::client::Target>) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited with {status}; its last lines:\n{}",
                    self.log_tail()
                );
            }
            let ready = super::client::once(target, super::client::Method::Get, "/ready", None);
            if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(2), ready).await {
                if reply.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("the server was not ready within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `snapshot started` and `snapshot written` lines logged so far, each with the
    /// wall clock (ms since the Unix epoch) it was read at.
    pub fn snapshot_lines(&self) -> SnapshotLines {
        self.snapshots.clone()
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        let kept = self.log.lock().expect("log lock");
        kept.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Stops the server: SIGTERM to its PID, then SIGKILL if it has not exited in time.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        stop_child(&mut self.child)
    }
}

/// Stops a server process this program started: SIGTERM to its PID, then SIGKILL if it
/// has not exited within [`STOP_TIMEOUT`].
pub fn stop_child(child: &mut Child) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill")
        .args(["-TERM", &pid])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    bail!("the server did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed")
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_log_line() {
        let line = "2030-01-01T00:00:00Z  INFO boxoffice: listening on 127.0.0.1:41234";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        let json = r#"{"fields":{"message":"listening on 127.0.0.1:80"}}"#;
        assert_eq!(listening_addr(json), Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(listening_addr("recovered 3 shards"), None);
    }
}
