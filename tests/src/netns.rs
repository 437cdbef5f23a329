//! Real separate hosts on one machine: network namespaces, one `boxoffice` node in each,
//! and the faults of the cluster tests (kill -9 and restart, SIGSTOP/SIGCONT, nftables
//! partitions).
//!
//! Layout, per run (`<tag>` is the test process's PID and a counter, so parallel test
//! binaries and tests never share a name):
//!
//! ```text
//!   bo-<tag>-n1 eth0 10.201.0.1/24 ─┐
//!   bo-<tag>-n2 eth0 10.201.0.2/24 ─┼─ bridge br0 in bo-<tag>-sw
//!   bo-<tag>-n3 eth0 10.201.0.3/24 ─┤
//!   bo-<tag>-c  eth0 10.201.0.100/24┘ (the clients)
//! ```
//!
//! The bridge lives in its own namespace, not in the root one, so the root namespace gains
//! no interface, route or address, and two runs can both use 10.201.0.0/24: the addresses
//! exist only inside each run's namespaces. The clients are threads of the test process
//! that move themselves into the client namespace (`setns`, which moves only the calling
//! thread) the first time they send a request ([`Hosts::http`]); the nodes and the tools
//! run under `ip netns exec`. A partition is a table `inet bo` of nftables drop rules in
//! a node's namespace; healing deletes the tables.
//!
//! Everything is removed when the [`Hosts`] value drops, panics included: the node
//! processes (killed by their PID), then the namespaces (which takes their veths and rules
//! with them). Nodes run under `setpriv --pdeathsig KILL`, so a test process killed with
//! SIGKILL takes its nodes with it; its namespaces are swept by the next run
//! ([`sweep_stale`]) or by the trap of `bench/cluster-campaign.sh`.
//!
//! It needs root, `ip` (iproute2) and `nft` (nftables): [`available`] says whether they
//! are there, skipping outside CI and failing under `CI=true` like [`crate::tool_available`].

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The subnet's first three octets; node `i` is `.i`, the clients `.100`.
pub const SUBNET: &str = "10.201.0";
/// The clients' address.
pub const CLIENT_ADDR: &str = "10.201.0.100";
/// The API port of every node.
pub const HTTP_PORT: u16 = 8080;
/// The replication port of every node.
pub const RAFT_PORT: u16 = 9080;
/// How long a connect may take before it counts as refused (nothing was sent).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a namespace command may run.
const TOOL_DEADLINE: Duration = Duration::from_secs(20);
/// Lines of each node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

static COUNTER: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// The namespace this thread has moved into, if any.
    static ENTERED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Whether this process runs as root (reads `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// Whether namespaces can be made here: root, `ip` and `nft`. Outside CI a missing piece
/// skips the calling test (false, after saying why); under `CI=true` it panics.
pub fn available() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !is_root() {
        assert!(!ci, "the cluster tests need root (CI runs as root)");
        eprintln!("skipping: network namespaces need root");
        return false;
    }
    // `ip -V` (iproute2 has no --version), then nft.
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ip {
        assert!(
            !ci,
            "ip is not installed; CI installs it in .ci/run (apt-get install iproute2)"
        );
        eprintln!("skipping: ip is not installed (apt-get install iproute2)");
        return false;
    }
    crate::tool_available("nft", "apt-get install nftables")
}

/// Runs `program args`, panicking with its stderr unless it succeeds (≤ 20 s).
fn run(program: &str, args: &[&str]) {
    let out = run_quiet(program, args);
    assert!(
        out.0,
        "`{program} {}` failed: {}",
        args.join(" "),
        out.1.trim()
    );
}

/// Runs `program args` to completion: (success, stderr). Killed (by its PID) after 20 s.
fn run_quiet(program: &str, args: &[&str]) -> (bool, String) {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return (false, format!("{program} does not start: {e}")),
    };
    let deadline = Instant::now() + TOOL_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    (status.is_some_and(|s| s.success()), err)
}

/// Deletes the namespaces `bo-<pid>x<n>-*` of test processes that are gone (killed before
/// they could clean up). Namespaces of live processes are left alone.
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("bo-")
            .and_then(|rest| rest.split('x').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run_quiet("ip", &["netns", "del", &name]);
        }
    }
}

/// An answer: status and body (JSON, or the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Value,
    /// The `retry-after` header, if any.
    pub retry_after: Option<String>,
}

/// A request that got no answer.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// Whether the request may have reached the server (false: the connect failed, so
    /// nothing was sent and nothing can have happened).
    pub sent: bool,
    /// What went wrong.
    pub message: String,
}

/// One HTTP/1.1 request on a fresh connection to `addr` from the calling thread's
/// namespace, answered within `timeout` or an error.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> Result<Answer, HttpError> {
    let unsent = |e: std::io::Error| HttpError {
        sent: false,
        message: format!("connect {addr}: {e}"),
    };
    let sent = |e: String| HttpError {
        sent: true,
        message: format!("{method} {path} at {addr}: {e}"),
    };
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(unsent)?;
    let body = body.unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| sent(e.to_string()))?;
    stream
        .write_all(head.as_bytes())
        .map_err(|e| sent(e.to_string()))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(sent(format!("no answer within {timeout:?}")));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| sent(e.to_string()))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(sent(e.to_string())),
        }
        if complete(&answer) {
            break;
        }
    }
    parse(&answer).ok_or_else(|| sent(format!("a broken answer of {} bytes", answer.len())))
}

/// The head's end, if the answer has one.
fn head_end(answer: &[u8]) -> Option<usize> {
    answer.windows(4).position(|w| w == b"\r\n\r\n")
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Whether a content-length answer is all there (chunked ones end with the connection).
fn complete(answer: &[u8]) -> bool {
    let Some(end) = head_end(answer) else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| answer.len() >= end + 4 + len)
}

fn parse(answer: &[u8]) -> Option<Answer> {
    let end = head_end(answer)?;
    let head = String::from_utf8_lossy(&answer[..end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut payload = answer[end + 4..].to_vec();
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut decoded = Vec::new();
        let mut rest = &payload[..];
        while let Some(line) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[..line]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[line + 2..];
            if size == 0 || rest.len() < size {
                break;
            }
            decoded.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        payload = decoded;
    } else if let Some(len) = header(&head, "content-length").and_then(|v| v.parse().ok()) {
        if payload.len() < len {
            return None;
        }
        payload.truncate(len);
    }
    let text = String::from_utf8_lossy(&payload);
    Some(Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.to_string())),
        retry_after: header(&head, "retry-after").map(str::to_string),
    })
}

/// Moves the calling thread into the network namespace `name` (once per thread).
fn enter(name: &str) {
    ENTERED.with(|entered| {
        if entered.borrow().as_deref() == Some(name) {
            return;
        }
        let file = File::open(format!("/run/netns/{name}"))
            .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("setns into {name}: {e}"));
        *entered.borrow_mut() = Some(name.to_string());
    });
}

/// A node process and how to start it again.
struct NodeProc {
    child: Option<Child>,
    paused: bool,
}

/// The namespaces of one run and the processes in them (removed on drop).
pub struct Hosts {
    tag: String,
    count: u64,
    root: tempfile::TempDir,
    nodes: Mutex<Vec<NodeProc>>,
    /// The nftables rules in force, by node: (input drop from, output drop to).
    rules: Mutex<Vec<String>>,
}

impl Hosts {
    /// Makes the switch, `count` node namespaces (10.201.0.1 ..) and the client namespace.
    pub fn new(count: u64) -> Hosts {
        sweep_stale();
        let tag = format!(
            "{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let hosts = Hosts {
            tag,
            count,
            root: tempfile::tempdir().expect("a temporary directory"),
            nodes: Mutex::new(
                (0..count)
                    .map(|_| NodeProc {
                        child: None,
                        paused: false,
                    })
                    .collect(),
            ),
            rules: Mutex::new(Vec::new()),
        };
        // From here on, a failure drops `hosts`, which deletes whatever was made.
        let sw = hosts.switch_ns();
        run("ip", &["netns", "add", &sw]);
        run("ip", &["-n", &sw, "link", "set", "lo", "up"]);
        run("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        run("ip", &["-n", &sw, "link", "set", "br0", "up"]);
        let mut ends: Vec<(String, String, String)> = (1..=count)
            .map(|i| (hosts.node_ns(i), format!("p{i}"), format!("{SUBNET}.{i}")))
            .collect();
        ends.push((hosts.client_ns(), "pc".into(), CLIENT_ADDR.into()));
        for (ns, port, addr) in &ends {
            run("ip", &["netns", "add", ns]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
                    "netns", &sw,
                ],
            );
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    "eth0",
                ],
            );
            run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &sw, "link", "set", port, "master", "br0"]);
            run("ip", &["-n", &sw, "link", "set", port, "up"]);
        }
        hosts
    }

    /// The run's unique tag (`<pid>x<n>`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The temporary directory of the run (data directories, logs, the cluster file).
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// The namespace of node `i` (from 1).
    pub fn node_ns(&self, i: u64) -> String {
        format!("bo-{}-n{i}", self.tag)
    }

    /// The clients' namespace.
    pub fn client_ns(&self) -> String {
        format!("bo-{}-c", self.tag)
    }

    fn switch_ns(&self) -> String {
        format!("bo-{}-sw", self.tag)
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: u64) -> String {
        format!("{SUBNET}.{i}")
    }

    /// Node `i`'s API address.
    pub fn http_addr(&self, i: u64) -> SocketAddr {
        format!("{}:{HTTP_PORT}", self.ip(i)).parse().unwrap()
    }

    /// Node `i`'s log file.
    pub fn log_path(&self, i: u64) -> PathBuf {
        self.root.path().join(format!("n{i}.log"))
    }

    /// [`http`] to node `i` from the client namespace (the calling thread moves there).
    pub fn http(
        &self,
        i: u64,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<Answer, HttpError> {
        enter(&self.client_ns());
        http(self.http_addr(i), method, path, headers, body, timeout)
    }

    /// Starts `program args` in node `i`'s namespace with `env`, its stdout and stderr
    /// appended to [`Hosts::log_path`]; it replaces a process that stopped.
    pub fn spawn(&self, i: u64, program: &Path, args: &[String], env: &[(&str, &str)]) -> u32 {
        let mut nodes = self.nodes.lock().unwrap();
        let slot = &mut nodes[(i - 1) as usize];
        if let Some(child) = slot.child.as_mut() {
            assert!(
                child.try_wait().ok().flatten().is_some(),
                "node {i} still runs"
            );
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("the node log opens");
        let _ = writeln!(log, "==== {} {}", program.display(), args.join(" "));
        let ns = self.node_ns(i);
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &ns, "setpriv", "--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file handle clones"))
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("ip netns exec starts");
        let pid = child.id();
        slot.child = Some(child);
        slot.paused = false;
        pid
    }

    /// The PID of node `i`'s running process (`ip netns exec` and `setpriv` exec it, so
    /// it is the node's own PID).
    pub fn pid(&self, i: u64) -> Option<u32> {
        let mut nodes = self.nodes.lock().unwrap();
        let child = nodes[(i - 1) as usize].child.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// Whether node `i`'s process has exited (or was never started).
    pub fn exited(&self, i: u64) -> bool {
        self.pid(i).is_none()
    }

    /// kill -9 node `i` and reap it.
    pub fn kill9(&self, i: u64) {
        let mut nodes = self.nodes.lock().unwrap();
        let slot = &mut nodes[(i - 1) as usize];
        if let Some(mut child) = slot.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        slot.paused = false;
    }

    fn signal(&self, i: u64, signal: &str) {
        let pid = self
            .pid(i)
            .unwrap_or_else(|| panic!("node {i} does not run"));
        // `kill -SIG <pid>` of our own unreaped child (no `unsafe` for libc::kill).
        run("kill", &[signal, &pid.to_string()]);
    }

    /// SIGSTOP node `i`.
    pub fn pause(&self, i: u64) {
        self.signal(i, "-STOP");
        self.nodes.lock().unwrap()[(i - 1) as usize].paused = true;
    }

    /// SIGCONT node `i`.
    pub fn resume(&self, i: u64) {
        self.signal(i, "-CONT");
        self.nodes.lock().unwrap()[(i - 1) as usize].paused = false;
    }

    fn nft(&self, i: u64, script: &str) {
        let ns = self.node_ns(i);
        let path = self.root.path().join(format!(
            "nft-{i}-{}.nft",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, script).expect("the nft script is written");
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "nft",
                "-f",
                &path.display().to_string(),
            ],
        );
        self.rules
            .lock()
            .unwrap()
            .push(format!("n{i}: {}", script.replace('\n', " ")));
    }

    /// Drops in node `i`'s namespace every packet from `from` addresses (`input`) and to
    /// `to` addresses (`output`).
    fn drop_rules(&self, i: u64, from: &[String], to: &[String]) {
        let mut script = String::from(
            "table inet bo {\n\
             chain input { type filter hook input priority 0; policy accept; }\n\
             chain output { type filter hook output priority 0; policy accept; }\n}\n",
        );
        for addr in from {
            script.push_str(&format!("add rule inet bo input ip saddr {addr} drop\n"));
        }
        for addr in to {
            script.push_str(&format!("add rule inet bo output ip daddr {addr} drop\n"));
        }
        self.nft(i, &script);
    }

    /// One way: node `to` drops every packet from node `from` (replies included, so
    /// `from` can open no connection to `to`; `to`'s own connections to `from` still
    /// carry data one way and stall).
    pub fn block(&self, from: u64, to: u64) {
        self.drop_rules(to, &[self.ip(from)], &[]);
    }

    /// Both ways between `a` and `b`.
    pub fn partition(&self, a: u64, b: u64) {
        self.block(a, b);
        self.block(b, a);
    }

    /// Node `i` loses every other node both ways; the clients still reach it.
    pub fn isolate(&self, i: u64) {
        let others: Vec<String> = (1..=self.count)
            .filter(|&j| j != i)
            .map(|j| self.ip(j))
            .collect();
        self.drop_rules(i, &others, &others);
    }

    /// Removes every drop rule (the table `inet bo` of every node namespace).
    pub fn heal(&self) {
        for i in 1..=self.count {
            let ns = self.node_ns(i);
            // Absent when the node had no rule: that error is expected.
            let _ = run_quiet(
                "ip",
                &["netns", "exec", &ns, "nft", "delete", "table", "inet", "bo"],
            );
        }
        self.rules.lock().unwrap().clear();
    }

    /// The rules in force (for messages).
    pub fn rules(&self) -> Vec<String> {
        self.rules.lock().unwrap().clone()
    }

    /// The last lines of node `i`'s log.
    pub fn log_tail(&self, i: u64) -> String {
        let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let nodes = self.nodes.get_mut().unwrap_or_else(|e| e.into_inner());
        for slot in nodes.iter_mut() {
            if let Some(mut child) = slot.child.take() {
                // SIGKILL works on a stopped process too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            for i in 1..=self.count {
                eprintln!("---- node {i} log (last lines) ----\n{}", self.log_tail(i));
            }
        }
        let mut names: Vec<String> = (1..=self.count).map(|i| self.node_ns(i)).collect();
        names.push(self.client_ns());
        names.push(self.switch_ns());
        for name in names {
            if Path::new(&format!("/run/netns/{name}")).exists() {
                let _ = run_quiet("ip", &["netns", "del", &name]);
            }
        }
    }
}
