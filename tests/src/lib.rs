//! The harness of the end-to-end tests: start the real `boxoffice` binary on port 0 in a
//! temporary data directory, talk JSON to it over loopback, kill it, restart it.
//!
//! The binary is `$BOXOFFICE_BIN` if set, else `boxoffice` next to the test executable's
//! profile directory (`target/release/boxoffice`): build it first, as the README's test
//! command does (`cargo build --release --workspace --bins && cargo test ...`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The admin token every test server gets.
pub const ADMIN: &str = "test-admin-token";
/// The JWT secret every test server gets.
pub const SECRET: &str = "test-jwt-secret";

/// A running server process that this test started (killed on drop).
pub struct Proc {
    pub child: Child,
    pub port: u16,
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

impl Proc {
    /// Starts the server on `dir` and waits (≤ 20 s) until `/ready` answers 200.
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
        let mut child = command.spawn().expect("boxoffice starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let port = rest
                            .trim()
                            .rsplit(':')
                            .next()
                            .unwrap()
                            .trim()
                            .parse::<u16>();
                        let _ = tx.send(port.expect("a port in the listening line"));
                        sent = true;
                    }
                }
                if std::env::var_os("BOXOFFICE_TEST_VERBOSE").is_some() {
                    eprintln!("[server] {line}");
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server logs its address");
        let proc = Proc { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = proc.try_call("GET", "/ready", None, None) {
                return proc;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop after SIGTERM"
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

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.try_call(method, path, token, body)
            .expect("the server answers")
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` on a fresh connection; (status, JSON or text).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = token
            .map(|t| format!("authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n{auth}\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
        let value =
            serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_string()));
        Ok((status, value))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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

/// Sends raw request bytes to 127.0.0.1:`port` and parses the answer (status, JSON).
pub fn raw(port: u16, bytes: &[u8]) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The server may answer (413) and close before reading everything: ignore write errors.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((
        status,
        serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_string())),
    ))
}
