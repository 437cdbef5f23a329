//! The harness of the end-to-end tests: start the real `boxoffice` binary on port 0 in a
//! temporary data directory, talk JSON to it over loopback, kill it, restart it, and check
//! what survived.
//!
//! Two levels. [`Proc`] is one server process on a directory the caller owns (the server
//! crate's fault tests use it too). [`Server`] owns a temporary directory, the server's
//! stderr log file in it, and the process across restarts: `kill9`, `terminate`,
//! `restart`. Every process is killed when its handle drops, and only processes this
//! harness spawned are ever signalled (by their own PID).
//!
//! The client is deliberately plain: one blocking HTTP/1.1 request per connection, so that
//! many buyers are simply many threads, and a server that dies mid-request shows up as an
//! `Err`, never as a hang (every socket has a read timeout).
//!
//! The binary is `$BOXOFFICE_BIN` if set, else `boxoffice` next to the test executable's
//! profile directory (`target/release/boxoffice`): build it first, as the README's test
//! command does (`cargo build --release --workspace --bins && cargo test ...`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod history;
pub mod netns;

/// The admin token every test server gets.
pub const ADMIN: &str = "test-admin-token";
/// The JWT secret every test server gets.
pub const SECRET: &str = "test-jwt-secret";

/// How long a server gets to log its address and then to answer `/ready` 200.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// How long a server gets to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// Read timeout of every client socket: a request never hangs a test for longer.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of server stderr kept in memory to print when a test fails.
const LOG_TAIL_LINES: usize = 400;

/// A running server process that this test started (killed on drop).
pub struct Proc {
    /// The child process; only ever signalled by its own PID.
    pub child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// How to start the server.
#[derive(Clone, Default)]
pub struct Launch {
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// File size limit in KiB (`ulimit -f`), to fill the "disk".
    pub file_size_kib: Option<u64>,
    /// Shards for a new data directory.
    pub shards: Option<usize>,
    /// Append the server's stderr to this file (besides the in-memory tail).
    pub log_file: Option<PathBuf>,
}

/// The `boxoffice` binary under test.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BOXOFFICE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join("boxoffice");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "no boxoffice binary near {}: run `cargo build --release --workspace --bins` first \
         (or set BOXOFFICE_BIN)",
        exe.display()
    );
}

/// Reads the server's stderr: sends the port of the `listening on` line, keeps the tail
/// in memory, appends to the log file, and echoes with `BOXOFFICE_TEST_VERBOSE`.
fn read_log(
    stderr: impl Read,
    tx: std::sync::mpsc::Sender<u16>,
    tail: Arc<Mutex<VecDeque<String>>>,
    mut file: Option<std::fs::File>,
) {
    let verbose = std::env::var_os("BOXOFFICE_TEST_VERBOSE").is_some();
    let mut sent = false;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if !sent {
            if let Some(port) = line
                .split("listening on ")
                .nth(1)
                .and_then(|rest| rest.trim().rsplit(':').next())
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                let _ = tx.send(port);
                sent = true;
            }
        }
        if let Some(file) = file.as_mut() {
            let _ = writeln!(file, "{line}");
        }
        if verbose {
            eprintln!("[server] {line}");
        }
        let mut tail = tail.lock().unwrap();
        if tail.len() == LOG_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

impl Proc {
    /// Starts the server on `dir` and waits (≤ 20 s) until `/ready` answers 200. Panics
    /// with the server's log if it exits or does not become ready.
    pub fn start(dir: &Path, launch: &Launch) -> Proc {
        let mut args = vec![
            "serve".to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            dir.display().to_string(),
        ];
        if let Some(shards) = launch.shards {
            args.extend(["--shards".to_string(), shards.to_string()]);
        }
        let mut command = match launch.file_size_kib {
            Some(kib) => {
                let mut c = Command::new("bash");
                c.arg("-c")
                    .arg(format!("ulimit -f {kib} && exec \"$0\" \"$@\""))
                    .arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        command
            .args(&args)
            .env("BOXOFFICE_ADMIN_TOKEN", ADMIN)
            .env("BOXOFFICE_JWT_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &launch.env {
            command.env(k, v);
        }
        let file = launch.log_file.as_ref().map(|path| {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("the server log file opens");
            let _ = writeln!(file, "==== boxoffice {}", args.join(" "));
            file
        });
        let mut child = command.spawn().expect("boxoffice starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let tail = Arc::clone(&log);
        std::thread::spawn(move || read_log(stderr, tx, tail, file));
        let port = rx.recv_timeout(READY_DEADLINE);
        let mut proc = Proc {
            child,
            port: port.unwrap_or(0),
            log,
        };
        if port.is_err() {
            let _ = proc.child.kill();
            let status = proc.child.wait();
            std::thread::sleep(Duration::from_millis(50)); // let the reader drain
            panic!(
                "the server did not log `listening on` ({status:?}); its log:\n{}",
                proc.log_tail()
            );
        }
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok((200, _)) = proc.try_call("GET", "/ready", None, None) {
                return proc;
            }
            if Instant::now() >= deadline || proc.child.try_wait().ok().flatten().is_some() {
                panic!(
                    "the server did not become ready; its log:\n{}",
                    proc.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server wrote to stderr.
    pub fn log_tail(&self) -> String {
        let tail = self.log.lock().unwrap();
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILL, and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; returns the exit code once the process exited (≤ 30 s).
    pub fn terminate(mut self) -> Option<i32> {
        // `kill -TERM <pid>` of our own unreaped child (the workspace forbids `unsafe`, so
        // not `libc::kill`); the PID cannot have been reused before we reap it.
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(sent.success(), "SIGTERM could not be sent");
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop after SIGTERM; its log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One HTTP/1.1 request on a fresh connection; (status, JSON or text).
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        request(self.port, method, path, token, body)
    }

    /// [`Proc::try_call`] that panics (with the server's log) if the server does not answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        match self.try_call(method, path, token, body) {
            Ok(answer) => answer,
            Err(e) => panic!(
                "{method} {path}: the server did not answer ({e}); its log:\n{}",
                self.log_tail()
            ),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() && std::env::var_os("BOXOFFICE_TEST_VERBOSE").is_none() {
            eprintln!(
                "---- server log (last lines) ----\n{}\n----",
                self.log_tail()
            );
        }
    }
}

/// A server with its own temporary data directory, kept across restarts.
pub struct Server {
    root: tempfile::TempDir,
    launch: Launch,
    proc: Option<Proc>,
}

impl Server {
    /// Starts a server on a new temporary data directory; its stderr goes to
    /// [`Server::log_path`] as well.
    pub fn start(launch: Launch) -> Server {
        let root = tempfile::tempdir().expect("a temporary directory");
        let mut launch = launch;
        launch.log_file = Some(root.path().join("server.log"));
        let proc = Proc::start(&root.path().join("data"), &launch);
        Server {
            root,
            launch,
            proc: Some(proc),
        }
    }

    /// The data directory (`<temp>/data`).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The file holding the stderr of every run of this server.
    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// The running process; panics if it was stopped and not restarted.
    pub fn proc(&self) -> &Proc {
        self.proc.as_ref().expect("the server is running")
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.proc().port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.proc().pid()
    }

    /// See [`Proc::call`].
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.proc().call(method, path, token, body)
    }

    /// SIGKILL the process and reap it.
    pub fn kill9(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.kill9();
        }
    }

    /// SIGTERM the process and assert that it drained and exited 0.
    pub fn terminate(&mut self) {
        let proc = self.proc.take().expect("the server is running");
        let tail = Arc::clone(&proc.log);
        let code = proc.terminate();
        assert_eq!(
            code,
            Some(0),
            "SIGTERM: exit 0 expected; the log:\n{}",
            tail.lock()
                .unwrap()
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Sets environment variable `key` for the next [`Server::restart`] (replacing an
    /// earlier value of it).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.launch.env.retain(|(k, _)| k != key);
        self.launch.env.push((key.to_string(), value.to_string()));
    }

    /// Starts the server again on the same data directory (stopping it with SIGTERM first
    /// if it still runs), and waits until it is ready.
    pub fn restart(&mut self) {
        if self.proc.is_some() {
            self.terminate();
        }
        self.proc = Some(Proc::start(&self.data_dir(), &self.launch));
    }

    /// See [`check_inventory`].
    pub fn check_inventory(&self, event_id: &str) -> Inventory {
        check_inventory(self.port(), event_id)
    }

    /// Runs `boxoffice ARGS --data-dir DIR` (a CLI tool, not the server) to completion.
    pub fn tool(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("BOXOFFICE_JWT_SECRET")
            .env_remove("BOXOFFICE_ADMIN_TOKEN")
            .output()
            .expect("the boxoffice tool runs")
    }
}

/// One section's counts as the server reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionCounts {
    /// The section id.
    pub id: String,
    /// `general` or `seated`.
    pub kind: String,
    /// Its capacity.
    pub capacity: u64,
    /// Available.
    pub available: u64,
    /// Held.
    pub held: u64,
    /// Sold.
    pub sold: u64,
}

/// An event's inventory, checked by [`check_inventory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// Each section, in the event's order.
    pub sections: Vec<SectionCounts>,
    /// Every seat of the seated sections: (section id, seat id) → status.
    pub seats: HashMap<(String, String), String>,
}

impl Inventory {
    /// The section with this id.
    pub fn section(&self, id: &str) -> &SectionCounts {
        self.sections
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no section {id} in {self:?}"))
    }
}

/// Reads the event and its seat map and asserts invariants 1 and 2 (docs/architecture.md) as a client sees them:
/// for every section available + held + sold == capacity; every seat of a seated section
/// appears exactly once with one status of `free`, `held`, `sold`; and the seat map agrees
/// with the counts. Call it when no request is in flight (the two reads are not atomic).
pub fn check_inventory(port: u16, event_id: &str) -> Inventory {
    let get = |path: String| {
        let (status, body) = request(port, "GET", &path, None, None)
            .unwrap_or_else(|e| panic!("GET {path}: no answer ({e})"));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    };
    let event = get(format!("/v1/events/{event_id}"));
    check_counts(&event);
    let map = get(format!("/v1/events/{event_id}/seats"));
    assert_eq!(map["event_id"], event_id, "{map}");
    let mut seats = HashMap::new();
    let mut sections = Vec::new();
    for s in event["sections"].as_array().expect("sections") {
        let counts = SectionCounts {
            id: s["id"].as_str().expect("a section id").to_string(),
            kind: s["kind"].as_str().expect("a section kind").to_string(),
            capacity: s["capacity"].as_u64().unwrap(),
            available: s["available"].as_u64().unwrap(),
            held: s["held"].as_u64().unwrap(),
            sold: s["sold"].as_u64().unwrap(),
        };
        let in_map = map["sections"]
            .as_array()
            .expect("seat map sections")
            .iter()
            .find(|m| m["section_id"] == counts.id.as_str());
        match counts.kind.as_str() {
            "general" => assert!(in_map.is_none(), "GA section {} in the seat map", counts.id),
            "seated" => {
                let in_map = in_map
                    .unwrap_or_else(|| panic!("seated section {} not in the seat map", counts.id));
                let (mut free, mut held, mut sold) = (0, 0, 0);
                for row in in_map["rows"].as_array().expect("rows") {
                    for seat in row["seats"].as_array().expect("seats") {
                        let id = seat["id"].as_str().expect("a seat id").to_string();
                        let status = seat["status"].as_str().expect("a seat status");
                        match status {
                            "free" => free += 1,
                            "held" => held += 1,
                            "sold" => sold += 1,
                            other => panic!("seat {id} has status {other}"),
                        }
                        let key = (counts.id.clone(), id);
                        assert!(
                            seats.insert(key.clone(), status.to_string()).is_none(),
                            "seat {key:?} appears twice in the seat map"
                        );
                    }
                }
                assert_eq!(
                    (free, held, sold),
                    (counts.available, counts.held, counts.sold),
                    "the seat map of {} disagrees with its counts",
                    counts.id
                );
            }
            other => panic!("section kind {other}"),
        }
        sections.push(counts);
    }
    Inventory { sections, seats }
}

/// One answer: status, headers (names lower-cased), body (JSON, or a JSON string of the
/// text), and how long it took.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, or the text as a JSON string.
    pub body: Value,
    /// From connect to the end of the answer.
    pub elapsed: Duration,
}

impl Reply {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The error code of an error body, or "".
    pub fn code(&self) -> &str {
        code(&self.body)
    }
}

/// Sends one request on a fresh connection with extra headers and a raw body.
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let body = body.unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    raw_reply(port, &bytes)
}

/// One HTTP/1.1 request to 127.0.0.1:`port` on a fresh connection; (status, JSON or text).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let body = body.map(Value::to_string);
    let reply = send(port, method, path, &headers, body.as_deref())?;
    Ok((reply.status, reply.body))
}

/// Sends raw request bytes to 127.0.0.1:`port` and parses the answer (status, JSON).
pub fn raw(port: u16, bytes: &[u8]) -> std::io::Result<(u16, Value)> {
    raw_reply(port, bytes).map(|r| (r.status, r.body))
}

/// Sends raw request bytes to 127.0.0.1:`port` and parses the whole answer. The server may
/// answer (413) and close before reading everything, so write errors are ignored; an
/// answer without a status line is an error.
pub fn raw_reply(port: u16, bytes: &[u8]) -> std::io::Result<Reply> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(CLIENT_READ_TIMEOUT))?;
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    if answer.is_empty() {
        read?;
    }
    let mut reply = parse_reply(&answer)?;
    reply.elapsed = started.elapsed();
    Ok(reply)
}

/// Parses an HTTP/1.1 answer (content-length, chunked, or until close).
fn parse_reply(answer: &[u8]) -> std::io::Result<Reply> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {} bytes", answer.len())))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let mut payload = &answer[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let mut decoded = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut rest = payload;
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[..end]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .map_err(|_| std::io::Error::other("a bad chunk size"))?;
            rest = &rest[end + 2..];
            if size == 0 || rest.len() < size {
                break;
            }
            decoded.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        payload = &decoded;
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        payload = &payload[..len.min(payload.len())];
    }
    let text = String::from_utf8_lossy(payload);
    let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.to_string()));
    Ok(Reply {
        status,
        headers,
        body,
        elapsed: Duration::ZERO,
    })
}

/// Asserts available + held + sold == capacity for every section; returns sold per section.
pub fn check_counts(event: &Value) -> Vec<u64> {
    event["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| {
            let (a, h, so, c) = (
                s["available"].as_u64().unwrap(),
                s["held"].as_u64().unwrap(),
                s["sold"].as_u64().unwrap(),
                s["capacity"].as_u64().unwrap(),
            );
            assert_eq!(a + h + so, c, "available + held + sold == capacity in {s}");
            so
        })
        .collect()
}

/// An HS256 user token for `user`, valid `ttl_secs` from now (negative: already expired),
/// signed with `secret`.
pub fn user_token_signed(user: &str, ttl_secs: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({"sub": user, "iat": now, "exp": now + ttl_secs});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signs")
}

/// A user token the test servers accept.
pub fn user_token(user: &str) -> String {
    user_token_signed(user, 3600, SECRET)
}

/// Every seat id with its status, from the seat map.
pub fn seat_statuses(map: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for section in map["sections"].as_array().expect("sections") {
        for row in section["rows"].as_array().expect("rows") {
            for seat in row["seats"].as_array().expect("seats") {
                out.push((
                    seat["id"].as_str().unwrap().to_string(),
                    seat["status"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The resident set size of a process in KiB (0 if it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A small seeded generator (xorshift64*) for timing choices: a failing run prints its
/// seed and `BOXOFFICE_SEED=n` chooses the same moments again.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }
}

/// `BOXOFFICE_SEED` if set, else `default`.
pub fn seed_or(default: u64) -> u64 {
    env_or("BOXOFFICE_SEED", default)
}

/// An unsigned number from the environment variable `name`, else `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Distinct ids collected from many threads (asserts none is seen twice).
#[derive(Default)]
pub struct Seen(Mutex<HashSet<String>>);

impl Seen {
    /// Records `id`; panics if it was seen before.
    pub fn insert(&self, id: &str) {
        assert!(
            self.0.lock().unwrap().insert(id.to_string()),
            "{id} was handed out twice"
        );
    }
}

/// Whether the external tool `program` runs (`program --version` exits 0). Outside CI a
/// missing tool makes the calling test skip: this returns false after saying how to get
/// it. Under CI (`CI=true`) a missing tool panics, so a CI that forgot to install it
/// fails instead of passing without having run anything.
pub fn tool_available(program: &str, install: &str) -> bool {
    let runs = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if runs {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{program} is not installed; CI installs it in .ci/run ({install})"
    );
    eprintln!("skipping: {program} is not installed ({install})");
    false
}

/// Runs `program args` to completion and returns its output, printing its stdout and
/// stderr (shown when the test fails).
pub fn run_tool<S: AsRef<std::ffi::OsStr>>(program: &str, args: &[S]) -> std::process::Output {
    let output = Command::new(program)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    println!(
        "$ {program} {}\n{}\n{}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// How long [`serve_until_exit`] waits for a server that must refuse to start.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `boxoffice serve` on `dir` (port 0, the test secrets) with `extra` arguments and
/// waits for it to exit by itself: (exit success, stderr). For start-ups that must be
/// refused; panics (after killing it by its PID) if it is still running after 30 s.
pub fn serve_until_exit(dir: &Path, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("BOXOFFICE_ADMIN_TOKEN", ADMIN)
        .env("BOXOFFICE_JWT_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("boxoffice starts");
    let deadline = Instant::now() + REFUSAL_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server kept running where it must refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (status.success(), stderr)
}

/// The segment files (`*.wal`) of a shard's log directory, oldest first.
pub fn segments(shard_dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(shard_dir)
        .expect("the shard directory lists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments
}

/// One Server-Sent Events message of a stream (comment lines are heartbeats).
#[derive(Debug, Clone, PartialEq)]
pub struct SseMessage {
    /// The `id:` field, if any.
    pub id: Option<u64>,
    /// The `event:` field (`message` when absent; `comment` for a heartbeat).
    pub event: String,
    /// The `data:` field parsed as JSON (null when absent).
    pub data: Value,
}

/// A plain blocking reader of `GET /v1/events/{id}/stream` over one connection.
pub struct Sse {
    reader: BufReader<TcpStream>,
    /// Decoded body text not yet split into messages.
    pending: String,
    /// The status of the answer.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The JSON body of a refusal (non-200), else null.
    pub error: Value,
    ended: bool,
}

impl Sse {
    /// Connects and reads the answer's head (and, for a refusal, its body).
    pub fn connect(port: u16, event_id: &str, last_event_id: Option<u64>) -> std::io::Result<Sse> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(CLIENT_READ_TIMEOUT))?;
        let mut head = format!(
            "GET /v1/events/{event_id}/stream HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n"
        );
        if let Some(id) = last_event_id {
            head.push_str(&format!("last-event-id: {id}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status line: {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((n, v)) = trimmed.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let mut sse = Sse {
            reader,
            pending: String::new(),
            status,
            headers,
            error: Value::Null,
            ended: false,
        };
        if status != 200 {
            let len = sse
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            sse.reader.read_exact(&mut body)?;
            sse.error = serde_json::from_slice(&body).unwrap_or(Value::Null);
            sse.ended = true;
        }
        Ok(sse)
    }

    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next message, heartbeats included, waiting at most `timeout`: `Ok(None)` when
    /// the server ended the stream, an error (`WouldBlock`/`TimedOut`) when nothing came.
    pub fn next_any(&mut self, timeout: Duration) -> std::io::Result<Option<SseMessage>> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                return Ok(Some(parse_sse(&block)));
            }
            if self.ended {
                return Ok(None);
            }
            // One chunk of the chunked body.
            let mut size = String::new();
            if self.reader.read_line(&mut size)? == 0 {
                self.ended = true;
                continue;
            }
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                self.ended = true;
                continue;
            }
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk)?;
            chunk.truncate(size);
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next message that is not a heartbeat (see [`Sse::next_any`]).
    pub fn next(&mut self, timeout: Duration) -> std::io::Result<Option<SseMessage>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            match self.next_any(left)? {
                Some(m) if m.event == "comment" => continue,
                other => return Ok(other),
            }
        }
    }

    /// The underlying socket (to stop reading, or to shut it down).
    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

fn parse_sse(block: &str) -> SseMessage {
    let mut message = SseMessage {
        id: None,
        event: "message".into(),
        data: Value::Null,
    };
    let mut data = String::new();
    let mut only_comments = true;
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        only_comments = false;
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => message.id = value.parse().ok(),
            "event" => message.event = value.to_string(),
            "data" => data.push_str(value),
            _ => {}
        }
    }
    if only_comments {
        message.event = "comment".into();
    }
    message.data = serde_json::from_str(&data).unwrap_or(Value::Null);
    message
}

/// A client's view of an event built from its stream: section counts and seat statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamModel {
    /// Section id → (available, held, sold).
    pub sections: HashMap<String, (u64, u64, u64)>,
    /// Seat id → status.
    pub seats: HashMap<String, String>,
}

impl StreamModel {
    /// Applies a `snapshot` (replacing everything) or a `change`.
    pub fn apply(&mut self, message: &SseMessage) {
        let counts = |s: &Value| {
            (
                s["available"].as_u64().unwrap(),
                s["held"].as_u64().unwrap(),
                s["sold"].as_u64().unwrap(),
            )
        };
        match message.event.as_str() {
            "snapshot" => {
                *self = StreamModel::default();
                for s in message.data["sections"].as_array().expect("sections") {
                    self.sections
                        .insert(s["id"].as_str().unwrap().to_string(), counts(s));
                }
                let map = serde_json::json!({"sections": message.data["seats"].clone()});
                self.seats = seat_statuses(&map).into_iter().collect();
            }
            "change" => {
                for s in message.data["sections"].as_array().expect("sections") {
                    self.sections
                        .insert(s["id"].as_str().unwrap().to_string(), counts(s));
                }
                for (seat, status) in message.data["seats"].as_object().expect("seats") {
                    self.seats
                        .insert(seat.clone(), status.as_str().unwrap().to_string());
                }
            }
            other => panic!("unexpected stream message {other}: {message:?}"),
        }
    }

    /// The same view read from `GET /v1/events/{id}` and its seat map.
    pub fn read(port: u16, event_id: &str) -> StreamModel {
        let inventory = check_inventory(port, event_id);
        StreamModel {
            sections: inventory
                .sections
                .iter()
                .map(|s| (s.id.clone(), (s.available, s.held, s.sold)))
                .collect(),
            seats: inventory
                .seats
                .into_iter()
                .map(|((_, seat), status)| (seat, status))
                .collect(),
        }
    }
}

/// The value of one series in `GET /metrics`; see [`metric_in`].
pub fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = request(port, "GET", "/metrics", None, None).expect("GET /metrics answers");
    metric_in(body.as_str().unwrap_or_default(), name)
}

/// The value of one series in Prometheus text, named with its labels
/// (`boxoffice_log_batches_in_flight{shard="0"}`), or the sum of every series of a family
/// named bare (`boxoffice_holds_live`: all shards); 0 when absent.
pub fn metric_in(text: &str, name: &str) -> f64 {
    let labelled = |series: &str| {
        !name.contains('{')
            && series
                .strip_prefix(name)
                .is_some_and(|l| l.starts_with('{'))
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(series, _)| *series == name || labelled(series))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}
