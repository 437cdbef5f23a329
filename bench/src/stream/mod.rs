//! `boxoffice-stream-bench`: what the live-availability stream costs and how fast it is.
//!
//! One sitting against a server this process starts (loopback only, every phase bounded):
//!
//! - **Throughput.** A closed loop of `POST /v1/events/{id}/holds` (one ticket each, a
//!   fresh user per hold) over keep-alive connections, in rounds of three runs: with no
//!   stream clients, with `--clients` idle clients on another event of the same shard
//!   (their event gets no changes), and with `--clients` clients on the event being held
//!   (they receive every change). The order alternates between rounds (`none, other, same`,
//!   then `same, other, none`), so drift hits every kind alike; the report gives the
//!   medians and their ratios. Each run holds on a fresh event.
//! - **Memory per client.** The server's `VmRSS` before and after its clients connected
//!   (each has read its snapshot), divided by their count.
//! - **Delivery latency.** `--latency-clients` clients on a fresh event; a writer places
//!   `--changes` holds one at a time. The reference time of a change is when the hold's
//!   HTTP answer reaches the writer (the server answers right after the batch's fsync, so
//!   the figure is an upper bound on fsync → client, less the answer's own path); every
//!   client stamps the change whose section count says it is that hold's when its bytes
//!   arrive. The writer places the next hold once every client has the last one (or after
//!   [`DELIVERY_WAIT`]).

pub mod server;
pub mod sse;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::load::cli::parse_duration;
use crate::load::client::Method;
use crate::load::client::{once, AuthMode, Client, Target};
use server::Server;
use sse::{Message, Parser, Stream};

/// How long the writer waits for every client to have a change before it goes on.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(2);
/// How long connecting a fleet of clients may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the server may take to see disconnected clients gone.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for one hold's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Worker threads of the hold loop's own runtime.
const HOLD_LOOP_THREADS: usize = 2;
/// Connections beyond the clients that the server is allowed (holds, set-up, metrics).
const CONNECTION_SLACK: usize = 1_024;
/// The goals of issue 16.
const IDLE_COST_GOAL_PCT: f64 = 5.0;
/// The goals of issue 16.
const LATENCY_P99_GOAL_MS: f64 = 50.0;

/// The command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "boxoffice-stream-bench",
    about = "Measures the live-availability stream: its cost to hold throughput, memory per client, delivery latency."
)]
pub struct Args {
    /// The `boxoffice` binary to start (default: the one next to this binary).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Shards of the server (1: the idle event shares the hold event's shard and hub).
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Stream clients in the throughput runs.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Keep-alive connections of the hold loop.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Measured time of each throughput run.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub duration: Duration,
    /// Time before measuring, in each throughput run.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Rounds of (none, other, same) throughput runs; 0 skips the throughput runs.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Stream clients of the latency phase.
    #[arg(long, default_value_t = 1_000)]
    pub latency_clients: usize,
    /// Changes (holds placed one at a time) of the latency phase; 0 skips it.
    #[arg(long, default_value_t = 200)]
    pub changes: usize,
    /// Streams being opened at once while a fleet connects.
    #[arg(long, default_value_t = 256)]
    pub connect_parallel: usize,
    /// Tokio worker threads of this process (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Parses the command line, runs, prints; the whole of `main`.
pub fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("boxoffice-stream-bench: cannot start tokio: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            print!("{}", report.text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("boxoffice-stream-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Which stream clients a throughput run has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Watchers {
    /// None.
    None,
    /// On another event of the same shard: idle.
    Other,
    /// On the event being held: every change.
    Same,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Settings of the sitting.
    pub config: Config,
    /// Server memory per stream client, on the fresh server.
    pub memory: Memory,
    /// The throughput runs, if any.
    pub throughput: Option<Throughput>,
    /// The latency phase, if any.
    pub latency: Option<Latency>,
    /// The goals of issue 16, as measured.
    pub goals: Goals,
}

/// Settings of the sitting.
#[derive(Debug, Serialize)]
pub struct Config {
    /// Server shards.
    pub shards: usize,
    /// Stream clients of the throughput runs.
    pub clients: usize,
    /// Hold-loop connections.
    pub connections: usize,
    /// Measured seconds per throughput run.
    pub duration_s: f64,
    /// Warm-up seconds per throughput run.
    pub warmup_s: f64,
    /// Rounds of three runs.
    pub rounds: usize,
    /// Clients of the latency phase.
    pub latency_clients: usize,
    /// Changes of the latency phase.
    pub changes: usize,
    /// Cores this machine has.
    pub cores: usize,
    /// The open-file limit this process ran with (the server inherits it).
    pub nofile: u64,
}

/// Server memory per stream client: `VmRSS` of the freshly started server before and
/// after `clients` idle streams opened (each read its snapshot).
#[derive(Debug, Serialize)]
pub struct Memory {
    /// Clients connected.
    pub clients: usize,
    /// `VmRSS` before, bytes.
    pub rss_before: u64,
    /// `VmRSS` after, bytes.
    pub rss_after: u64,
    /// `(after - before) / clients`.
    pub bytes_per_client: f64,
    /// Seconds it took to connect them.
    pub connect_s: f64,
}

/// One throughput run.
#[derive(Debug, Serialize)]
pub struct Run {
    /// Round, from 0.
    pub round: usize,
    /// Its stream clients.
    pub watchers: Watchers,
    /// Holds answered 201 in the measured time.
    pub holds: u64,
    /// Answers that were not 201, and failed requests, in the measured time.
    pub errors: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Holds per second.
    pub holds_per_s: f64,
    /// Stream clients connected when the run began.
    pub clients: usize,
    /// Seconds it took to connect them.
    pub connect_s: f64,
    /// Clients whose stream the server ended during the run (fell behind).
    pub clients_dropped: usize,
    /// `change` messages the clients received during the run, in all.
    pub changes_received: u64,
    /// Server `VmRSS` before the clients connected, bytes.
    pub rss_before: u64,
    /// Server `VmRSS` once they were connected, bytes.
    pub rss_after: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// CPU the server used in the measured time, per thread name.
    pub server_cpu: server::Cpu,
    /// CPU this process (hold loop and stream clients) used in the measured time.
    pub bench_cpu_s: f64,
}

/// The throughput runs and what they add up to.
#[derive(Debug, Serialize)]
pub struct Throughput {
    /// Every run, in the order they ran.
    pub runs: Vec<Run>,
    /// Median holds/s with no clients.
    pub median_none: f64,
    /// Median holds/s with the clients on another event.
    pub median_other: f64,
    /// Median holds/s with the clients on the held event.
    pub median_same: f64,
    /// `median_other / median_none`.
    pub ratio_other: f64,
    /// `median_same / median_none`.
    pub ratio_same: f64,
    /// Per round, `other / none`.
    pub round_ratios_other: Vec<f64>,
    /// Per round, `same / none`.
    pub round_ratios_same: Vec<f64>,
    /// Median server memory per connected client, bytes, over the runs with clients. A
    /// lower bound: the allocator reuses what earlier runs freed.
    pub bytes_per_client_reused: f64,
}

/// Percentiles of a set of latencies, in milliseconds (signed: a client may see a change
/// before the writer has the answer).
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    /// How many.
    pub count: usize,
    /// Smallest.
    pub min_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    fn of(mut micros: Vec<i64>) -> Percentiles {
        if micros.is_empty() {
            return Percentiles::default();
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
            micros[rank - 1] as f64 / 1000.0
        };
        Percentiles {
            count: micros.len(),
            min_ms: micros[0] as f64 / 1000.0,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: micros[micros.len() - 1] as f64 / 1000.0,
        }
    }
}

/// The latency phase.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Clients.
    pub clients: usize,
    /// Changes (holds) placed.
    pub changes: usize,
    /// Deliveries expected: clients × changes.
    pub expected: u64,
    /// Deliveries stamped.
    pub delivered: u64,
    /// Clients whose stream the server ended.
    pub clients_dropped: usize,
    /// From the writer's answer to each client's receipt, over every delivery.
    pub delivery: Percentiles,
    /// From the writer's answer to the last client's receipt, per change.
    pub last_client: Percentiles,
    /// From the writer sending the hold to the last client's receipt, per change: an
    /// upper bound on fsync → last client that does not depend on the answer's path.
    pub last_client_from_send: Percentiles,
    /// The writer's round trip (request sent → answer read), per hold.
    pub writer_round_trip: Percentiles,
    /// Server memory per client, bytes, for these clients.
    pub bytes_per_client: f64,
    /// Seconds it took to connect them.
    pub connect_s: f64,
}

/// The goals of issue 16 against the figures.
#[derive(Debug, Default, Serialize)]
pub struct Goals {
    /// Throughput lost to idle clients on another event, percent (`1 - ratio_other`).
    pub idle_cost_pct: Option<f64>,
    /// Goal: at most this.
    pub idle_cost_goal_pct: f64,
    /// Whether it was met.
    pub idle_cost_met: Option<bool>,
    /// p99 of the last client's receipt per change, ms.
    pub latency_p99_ms: Option<f64>,
    /// Goal: at most this.
    pub latency_p99_goal_ms: f64,
    /// Whether it was met.
    pub latency_met: Option<bool>,
}

/// Runs the whole sitting.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    if args.connections == 0 || args.clients == 0 || args.latency_clients == 0 {
        bail!("--connections, --clients and --latency-clients must be at least 1");
    }
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("this binary has no directory"))?
            .join("boxoffice"),
    };
    let fleet = args.clients.max(args.latency_clients);
    let nofile = server::raise_nofile((fleet + args.connections + CONNECTION_SLACK) as u64 * 2)?;
    let mut server = Server::start(
        &binary,
        args.shards,
        fleet + args.connections + CONNECTION_SLACK,
    )?;
    let result = sitting(&args, &server, nofile).await;
    if let Err(e) = server.stop() {
        eprintln!("boxoffice-stream-bench: {e}");
    }
    result
}

async fn sitting(args: &Args, server: &Server, nofile: u64) -> anyhow::Result<Report> {
    let target = Arc::new(Target::new(
        server.addr,
        &server.admin_token,
        None,
        AuthMode::Admin,
    )?);
    wait_ready(&target).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let prefix = format!("sb{stamp}");
    let idle_event = format!("{prefix}-idle");
    create_event(&target, &idle_event, 1_000_000).await?;

    let memory = memory(args, server, &target, &idle_event).await?;
    let throughput = if args.rounds > 0 {
        Some(throughput(args, server, &target, &prefix, &idle_event).await?)
    } else {
        None
    };
    let latency = if args.changes > 0 {
        Some(latency(args, server, &target, &prefix).await?)
    } else {
        None
    };
    let mut goals = Goals {
        idle_cost_goal_pct: IDLE_COST_GOAL_PCT,
        latency_p99_goal_ms: LATENCY_P99_GOAL_MS,
        ..Goals::default()
    };
    if let Some(t) = &throughput {
        let cost = (1.0 - t.ratio_other) * 100.0;
        goals.idle_cost_pct = Some(cost);
        goals.idle_cost_met = Some(cost <= IDLE_COST_GOAL_PCT);
    }
    if let Some(l) = &latency {
        goals.latency_p99_ms = Some(l.last_client.p99_ms);
        goals.latency_met =
            Some(l.delivered == l.expected && l.last_client.p99_ms <= LATENCY_P99_GOAL_MS);
    }
    let report = Report {
        config: Config {
            shards: args.shards,
            clients: args.clients,
            connections: args.connections,
            duration_s: args.duration.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            rounds: args.rounds,
            latency_clients: args.latency_clients,
            changes: args.changes,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            nofile,
        },
        memory,
        throughput,
        latency,
        goals,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

async fn wait_ready(target: &Arc<Target>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = once(target, Method::Get, "/ready", None);
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(2), ready).await {
            if reply.status == 200 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the server was not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates an event with one general-admission section `ga`.
async fn create_event(target: &Arc<Target>, id: &str, capacity: u32) -> anyhow::Result<()> {
    let body = serde_json::json!({"id": id, "name": "stream bench",
        "sections": [{"id": "ga", "name": "GA", "price_cents": 1000, "capacity": capacity}]});
    let reply = once(
        target,
        Method::Post,
        "/v1/events",
        Some(Bytes::from(body.to_string())),
    )
    .await?;
    if reply.status != 201 {
        bail!(
            "creating event {id} answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    Ok(())
}

fn hold_body(user: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"user_id":"{user}","items":[{{"section_id":"ga","qty":1}}]}}"#
    ))
}

/// The server's `boxoffice_stream_clients` gauge.
async fn stream_clients(target: &Arc<Target>) -> anyhow::Result<u64> {
    let reply = once(target, Method::Get, "/metrics", None).await?;
    let text = String::from_utf8_lossy(&reply.body);
    text.lines()
        .find_map(|l| l.strip_prefix("boxoffice_stream_clients "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .ok_or_else(|| {
            anyhow!(
                "/metrics answered {} without boxoffice_stream_clients",
                reply.status
            )
        })
}

/// Clients of one event that read and count what they get.
struct Fleet {
    event: String,
    handles: Vec<JoinHandle<()>>,
    stats: Arc<FleetStats>,
}

#[derive(Default)]
struct FleetStats {
    connected: AtomicUsize,
    failed: AtomicUsize,
    ended: AtomicUsize,
    changes: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Fleet {
    /// Opens `n` streams on `event`, `parallel` at a time; returns once each has read its
    /// snapshot.
    async fn connect(
        target: &Arc<Target>,
        event: &str,
        n: usize,
        parallel: usize,
    ) -> anyhow::Result<(Fleet, Duration)> {
        let start = Instant::now();
        let stats = Arc::new(FleetStats::default());
        let permits = Arc::new(Semaphore::new(parallel.max(1)));
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let (stats, permits, addr, event) = (
                stats.clone(),
                permits.clone(),
                target.addr,
                event.to_string(),
            );
            handles.push(tokio::spawn(async move {
                let permit = permits.acquire_owned().await.expect("never closed");
                let mut stream = match open_with_snapshot(addr, &event).await {
                    Ok(s) => s,
                    Err(e) => {
                        stats
                            .first_error
                            .lock()
                            .expect("lock")
                            .get_or_insert(format!("{e:#}"));
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                drop(permit);
                stats.connected.fetch_add(1, Ordering::Relaxed);
                let mut parser = Parser::new(false);
                let mut out = Vec::new();
                while let Ok(Some(chunk)) = stream.chunk().await {
                    parser.push(&chunk, &mut out);
                    let changes = out.iter().filter(|m| m.event == "change").count();
                    stats.changes.fetch_add(changes as u64, Ordering::Relaxed);
                    out.clear();
                }
                stats.ended.fetch_add(1, Ordering::Relaxed);
            }));
        }
        let fleet = Fleet {
            event: event.to_string(),
            handles,
            stats,
        };
        let deadline = start + CONNECT_TIMEOUT;
        loop {
            let done = fleet.stats.connected.load(Ordering::Relaxed)
                + fleet.stats.failed.load(Ordering::Relaxed);
            if done == n {
                break;
            }
            if Instant::now() > deadline {
                bail!("{done} of {n} streams opened in {CONNECT_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let failed = fleet.stats.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = fleet.stats.first_error.lock().expect("lock").clone();
            bail!(
                "{failed} of {n} streams could not be opened; the first: {}",
                first.unwrap_or_default()
            );
        }
        Ok((fleet, start.elapsed()))
    }

    /// Closes every stream and waits until the server has seen them go. The server learns
    /// that an idle stream's client has gone only when it next writes to it (a change, or
    /// the heartbeat every 15 s), so this places a hold on the fleet's event until the
    /// server counts no stream client.
    async fn close(self, target: &Arc<Target>) -> anyhow::Result<()> {
        for h in &self.handles {
            h.abort();
        }
        for h in self.handles {
            let _ = h.await;
        }
        let deadline = Instant::now() + DISCONNECT_TIMEOUT;
        let path = format!("/v1/events/{}/holds", self.event);
        for n in 0.. {
            let left = stream_clients(target).await?;
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server still counts {left} stream clients {DISCONNECT_TIMEOUT:?} after they closed");
            }
            let body = hold_body(&format!("poke-{}-{n}", self.event));
            once(target, Method::Post, &path, Some(body)).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// Opens a stream and reads until its first message, which must be the snapshot.
async fn open_with_snapshot(addr: std::net::SocketAddr, event: &str) -> anyhow::Result<Stream> {
    let mut stream = Stream::open(addr, event).await?;
    let mut parser = Parser::new(false);
    let mut out = Vec::new();
    while out.is_empty() {
        match stream.chunk().await? {
            Some(chunk) => parser.push(&chunk, &mut out),
            None => bail!("the stream ended before its snapshot"),
        }
    }
    if out[0].event != "snapshot" {
        bail!("the first message is `{}`, not a snapshot", out[0].event);
    }
    Ok(stream)
}

struct HoldRun {
    holds: u64,
    errors: u64,
    seconds: f64,
    first_error: Option<String>,
    server_cpu: server::Cpu,
    bench_cpu_s: f64,
}

/// A closed loop of holds on `event` over `connections` connections.
async fn hold_loop(
    target: &Arc<Target>,
    server_pid: u32,
    event: &str,
    tag: &str,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> HoldRun {
    let start = Instant::now();
    let measure = start + warmup;
    let end = measure + duration;
    let sampler = tokio::spawn(cpu_between(server_pid, measure, end));
    let path: Arc<str> = format!("/v1/events/{event}/holds").into();
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let mut client = Client::new(target.clone());
        let (path, tag) = (path.clone(), format!("{tag}-{c}"));
        tasks.push(tokio::spawn(async move {
            hold_connection(&mut client, &path, &tag, measure, end).await
        }));
    }
    let mut run = HoldRun {
        holds: 0,
        errors: 0,
        seconds: duration.as_secs_f64(),
        first_error: None,
        server_cpu: server::Cpu::default(),
        bench_cpu_s: 0.0,
    };
    for t in tasks {
        if let Ok(tally) = t.await {
            run.holds += tally.holds;
            run.errors += tally.errors;
            if run.first_error.is_none() {
                run.first_error = tally.first_error;
            }
        }
    }
    if let Ok((server_cpu, bench_cpu_s)) = sampler.await {
        run.server_cpu = server_cpu;
        run.bench_cpu_s = bench_cpu_s;
    }
    run
}

/// The CPU the server (`server_pid`, per thread) and this process used from `measure` to
/// `end`; nothing if either could not be read.
async fn cpu_between(server_pid: u32, measure: Instant, end: Instant) -> (server::Cpu, f64) {
    tokio::time::sleep_until(measure).await;
    let before = (server::cpu(Some(server_pid)), server::cpu(None));
    tokio::time::sleep_until(end).await;
    let after = (server::cpu(Some(server_pid)), server::cpu(None));
    match (before, after) {
        ((Ok(s0), Ok(b0)), (Ok(s1), Ok(b1))) => (s1.since(&s0), b1.total_s - b0.total_s),
        _ => (server::Cpu::default(), 0.0),
    }
}

/// What one hold-loop connection counted in the measured time.
#[derive(Default)]
struct HoldTally {
    holds: u64,
    errors: u64,
    first_error: Option<String>,
}

/// One connection of the hold loop: holds for users `{tag}-1`, `{tag}-2`, ... one after
/// the other until `end`, counting those sent after `measure` and answered by `end`.
async fn hold_connection(
    client: &mut Client,
    path: &str,
    tag: &str,
    measure: Instant,
    end: Instant,
) -> HoldTally {
    let mut tally = HoldTally::default();
    let mut n = 0u64;
    while Instant::now() < end {
        n += 1;
        let body = hold_body(&format!("{tag}-{n}"));
        let sent = Instant::now();
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.send(Method::Post, path, Some(body), ""),
        )
        .await;
        let done = Instant::now();
        if sent < measure || done > end {
            if !matches!(answer, Ok(Ok(_))) {
                client.reset();
            }
            continue;
        }
        let error = match answer {
            Ok(Ok(reply)) if reply.status == 201 => {
                tally.holds += 1;
                continue;
            }
            Ok(Ok(reply)) => format!("{}: {}", reply.status, String::from_utf8_lossy(&reply.body)),
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => {
                client.reset();
                "timed out".to_string()
            }
        };
        tally.errors += 1;
        tally.first_error.get_or_insert(error);
    }
    tally
}

async fn memory(
    args: &Args,
    server: &Server,
    target: &Arc<Target>,
    idle_event: &str,
) -> anyhow::Result<Memory> {
    let rss_before = server.rss_bytes()?;
    let (fleet, connect) =
        Fleet::connect(target, idle_event, args.clients, args.connect_parallel).await?;
    // Let the server's allocator settle after the burst of connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = server.rss_bytes()?;
    let clients = fleet.stats.connected.load(Ordering::Relaxed);
    fleet.close(target).await?;
    eprintln!("memory: {clients} clients, VmRSS {rss_before} → {rss_after} bytes");
    Ok(Memory {
        clients,
        rss_before,
        rss_after,
        bytes_per_client: (rss_after as f64 - rss_before as f64) / clients as f64,
        connect_s: connect.as_secs_f64(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn throughput(
    args: &Args,
    server: &Server,
    target: &Arc<Target>,
    prefix: &str,
    idle_event: &str,
) -> anyhow::Result<Throughput> {
    let mut runs = Vec::new();
    for round in 0..args.rounds {
        let mut order = [Watchers::None, Watchers::Other, Watchers::Same];
        if round % 2 == 1 {
            order.reverse();
        }
        for watchers in order {
            let run =
                throughput_run(args, server, target, prefix, idle_event, round, watchers).await?;
            eprintln!(
                "round {round} {:?}: {:.0} holds/s, {} errors, {} clients ({} dropped, {} changes received)",
                run.watchers, run.holds_per_s, run.errors, run.clients, run.clients_dropped, run.changes_received
            );
            runs.push(run);
        }
    }
    Ok(Throughput::of(runs))
}

/// One throughput run: a fresh event, the `watchers` fleet connected, the hold loop on
/// the fresh event, the fleet closed.
async fn throughput_run(
    args: &Args,
    server: &Server,
    target: &Arc<Target>,
    prefix: &str,
    idle_event: &str,
    round: usize,
    watchers: Watchers,
) -> anyhow::Result<Run> {
    let tag = format!(
        "r{round}{}",
        match watchers {
            Watchers::None => "n",
            Watchers::Other => "o",
            Watchers::Same => "s",
        }
    );
    let event = format!("{prefix}-{tag}");
    create_event(target, &event, 100_000_000).await?;
    let rss_before = server.rss_bytes()?;
    let watched = match watchers {
        Watchers::None => None,
        Watchers::Other => Some(idle_event),
        Watchers::Same => Some(event.as_str()),
    };
    let (fleet, connect) = match watched {
        None => (None, Duration::ZERO),
        Some(watched) => {
            let (f, d) =
                Fleet::connect(target, watched, args.clients, args.connect_parallel).await?;
            (Some(f), d)
        }
    };
    // Let the server's allocator settle after the burst of connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = server.rss_bytes()?;
    let clients = fleet
        .as_ref()
        .map_or(0, |f| f.stats.connected.load(Ordering::Relaxed));
    let hold = hold_loop_on_own_threads(args, server, target, &event, &tag).await?;
    let (dropped, changes) = fleet.as_ref().map_or((0, 0), |f| {
        (
            f.stats.ended.load(Ordering::Relaxed),
            f.stats.changes.load(Ordering::Relaxed),
        )
    });
    if let Some(fleet) = fleet {
        fleet.close(target).await?;
    }
    Ok(Run {
        round,
        watchers,
        holds: hold.holds,
        errors: hold.errors,
        seconds: hold.seconds,
        holds_per_s: hold.holds as f64 / hold.seconds,
        clients,
        connect_s: connect.as_secs_f64(),
        clients_dropped: dropped,
        changes_received: changes,
        rss_before,
        rss_after,
        first_error: hold.first_error,
        server_cpu: hold.server_cpu,
        bench_cpu_s: hold.bench_cpu_s,
    })
}

/// The hold loop on `event`, on threads of its own: the stream clients' wake-ups (one per
/// client per change) must not queue the hold loop's answers behind them in this process,
/// or the figure would be this process's cost, not the server's.
async fn hold_loop_on_own_threads(
    args: &Args,
    server: &Server,
    target: &Arc<Target>,
    event: &str,
    tag: &str,
) -> anyhow::Result<HoldRun> {
    let (target, pid, event, tag) = (
        target.clone(),
        server.pid(),
        event.to_string(),
        tag.to_string(),
    );
    let (connections, warmup, duration) = (args.connections, args.warmup, args.duration);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(HOLD_LOOP_THREADS)
            .thread_name("hold-loop")
            .enable_all()
            .build();
        let run = runtime.map(|rt| {
            rt.block_on(hold_loop(
                &target,
                pid,
                &event,
                &tag,
                connections,
                warmup,
                duration,
            ))
        });
        let _ = tx.send(run);
    });
    rx.await
        .context("the hold loop's thread ended")?
        .context("cannot start the hold loop's runtime")
}

impl Throughput {
    /// The medians and ratios of `runs`.
    fn of(runs: Vec<Run>) -> Throughput {
        let rate = |w: Watchers| -> Vec<f64> {
            runs.iter()
                .filter(|r| r.watchers == w)
                .map(|r| r.holds_per_s)
                .collect()
        };
        let (none, other, same) = (
            rate(Watchers::None),
            rate(Watchers::Other),
            rate(Watchers::Same),
        );
        let ratios = |v: &[f64]| -> Vec<f64> {
            v.iter()
                .zip(&none)
                .map(|(x, n)| if *n > 0.0 { x / n } else { 0.0 })
                .collect()
        };
        let per_client: Vec<f64> = runs
            .iter()
            .filter(|r| r.clients > 0)
            .map(|r| (r.rss_after as f64 - r.rss_before as f64) / r.clients as f64)
            .collect();
        let (median_none, median_other, median_same) = (
            median(none.clone()),
            median(other.clone()),
            median(same.clone()),
        );
        let ratio = |x: f64| {
            if median_none > 0.0 {
                x / median_none
            } else {
                0.0
            }
        };
        Throughput {
            round_ratios_other: ratios(&other),
            round_ratios_same: ratios(&same),
            ratio_other: ratio(median_other),
            ratio_same: ratio(median_same),
            median_none,
            median_other,
            median_same,
            bytes_per_client_reused: median(per_client),
            runs,
        }
    }
}

/// What one latency client saw: `(change index, when its bytes arrived)`.
type Arrivals = Vec<(usize, Instant)>;

/// The `held` count of section `ga` in a snapshot's or change's data.
fn held_of(data: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(data).ok()?;
    value["sections"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == "ga")?["held"]
        .as_u64()
}

/// What the latency clients and the writer share.
struct LatencyShared {
    /// Clients.
    clients: usize,
    /// Changes the writer places.
    changes: usize,
    /// Per change, the clients that have it.
    delivered: Vec<AtomicUsize>,
    /// Notified when every client has a change.
    all_have: Notify,
    /// Clients that read their snapshot.
    connected: AtomicUsize,
    /// Clients that could not open their stream or read its snapshot.
    failed: AtomicUsize,
    /// Clients whose stream ended before the last change.
    ended: AtomicUsize,
    /// Streams being opened at once.
    permits: Semaphore,
    /// The first error opening a stream.
    first_error: Mutex<Option<String>>,
}

/// What the writer saw of each change it placed, by change index.
struct Writes {
    /// When the hold's answer was read.
    answered: Vec<Instant>,
    /// When the hold was sent.
    sent_at: Vec<Instant>,
    /// Its round trip, µs.
    round_trips: Vec<i64>,
}

async fn latency(
    args: &Args,
    server: &Server,
    target: &Arc<Target>,
    prefix: &str,
) -> anyhow::Result<Latency> {
    let event = format!("{prefix}-lat");
    let (n, changes) = (args.latency_clients, args.changes);
    create_event(target, &event, 1_000_000).await?;
    let shared = Arc::new(LatencyShared {
        clients: n,
        changes,
        delivered: (0..changes).map(|_| AtomicUsize::new(0)).collect(),
        all_have: Notify::new(),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        permits: Semaphore::new(args.connect_parallel.max(1)),
        first_error: Mutex::new(None),
    });
    let rss_before = server.rss_bytes()?;
    let start = Instant::now();
    let handles: Vec<JoinHandle<Arrivals>> = (0..n)
        .map(|_| tokio::spawn(latency_client(shared.clone(), target.addr, event.clone())))
        .collect();
    shared.wait_connected(start + CONNECT_TIMEOUT).await?;
    let connect = start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = server.rss_bytes()?;
    let writes = shared.write_changes(target, &event).await?;
    let bytes_per_client = (rss_after as f64 - rss_before as f64) / n as f64;
    Ok(shared
        .gather(handles, writes, bytes_per_client, connect)
        .await)
}

/// One latency client: opens a stream on `event`, and stamps each change by its index
/// (its `held` count above the snapshot's) when its bytes arrive, until the last change.
async fn latency_client(
    shared: Arc<LatencyShared>,
    addr: std::net::SocketAddr,
    event: String,
) -> Arrivals {
    let mut arrivals = Arrivals::with_capacity(shared.changes);
    let permit = shared.permits.acquire().await.expect("never closed");
    let mut stream = match Stream::open(addr, &event).await {
        Ok(s) => s,
        Err(e) => {
            shared
                .first_error
                .lock()
                .expect("lock")
                .get_or_insert(format!("{e:#}"));
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return arrivals;
        }
    };
    let mut parser = Parser::new(true);
    let mut out: Vec<Message> = Vec::new();
    let mut base: Option<u64> = None;
    let mut permit = Some(permit);
    while let Ok(Some(chunk)) = stream.chunk().await {
        let at = Instant::now();
        parser.push(&chunk, &mut out);
        for m in out.drain(..) {
            match (m.event.as_str(), base) {
                ("snapshot", None) => {
                    base = held_of(&m.data);
                    if base.is_none() {
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                        return arrivals;
                    }
                    permit.take();
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                }
                ("change", Some(b)) => {
                    if let Some(k) = held_of(&m.data).and_then(|h| h.checked_sub(b + 1)) {
                        shared.stamp(k as usize, at, &mut arrivals);
                    }
                }
                _ => {}
            }
        }
        if arrivals
            .last()
            .is_some_and(|(k, _)| *k + 1 == shared.changes)
        {
            return arrivals;
        }
    }
    shared.ended.fetch_add(1, Ordering::Relaxed);
    arrivals
}

impl LatencyShared {
    /// A client has change `k` at `at` (changes past the last are not the writer's).
    fn stamp(&self, k: usize, at: Instant, arrivals: &mut Arrivals) {
        if k < self.changes {
            arrivals.push((k, at));
            if self.delivered[k].fetch_add(1, Ordering::AcqRel) + 1 == self.clients {
                self.all_have.notify_one();
            }
        }
    }

    /// Waits until every client has read its snapshot or failed; an error if any failed
    /// or they took past `deadline`.
    async fn wait_connected(&self, deadline: Instant) -> anyhow::Result<()> {
        let n = self.clients;
        while self.connected.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) < n {
            if Instant::now() > deadline {
                bail!("the latency clients did not connect in {CONNECT_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.failed.load(Ordering::Relaxed) > 0 {
            bail!(
                "{} latency clients could not open their stream; the first: {}",
                self.failed.load(Ordering::Relaxed),
                self.first_error
                    .lock()
                    .expect("lock")
                    .clone()
                    .unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The writer: places the changes one at a time on `event`, each once every client has
    /// the one before (or after [`DELIVERY_WAIT`]).
    async fn write_changes(&self, target: &Arc<Target>, event: &str) -> anyhow::Result<Writes> {
        let (n, changes) = (self.clients, self.changes);
        let path = format!("/v1/events/{event}/holds");
        let mut writer = Client::new(target.clone());
        let mut writes = Writes {
            answered: Vec::with_capacity(changes),
            sent_at: Vec::with_capacity(changes),
            round_trips: Vec::with_capacity(changes),
        };
        for k in 0..changes {
            let sent = Instant::now();
            let reply = tokio::time::timeout(
                REQUEST_TIMEOUT,
                writer.send(
                    Method::Post,
                    &path,
                    Some(hold_body(&format!("lat-{k}"))),
                    "",
                ),
            )
            .await
            .map_err(|_| anyhow!("hold {k} had no answer in {REQUEST_TIMEOUT:?}"))??;
            let at = Instant::now();
            if reply.status != 201 {
                bail!(
                    "hold {k} answered {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
            }
            writes.answered.push(at);
            writes.sent_at.push(sent);
            writes.round_trips.push(micros_between(sent, at));
            let _ = tokio::time::timeout(DELIVERY_WAIT, async {
                while self.delivered[k].load(Ordering::Acquire) < n {
                    self.all_have.notified().await;
                }
            })
            .await;
        }
        Ok(writes)
    }

    /// The phase's figures: the clients' arrivals (each client waited for at most
    /// [`DELIVERY_WAIT`]) against the writer's times.
    async fn gather(
        &self,
        handles: Vec<JoinHandle<Arrivals>>,
        writes: Writes,
        bytes_per_client: f64,
        connect: Duration,
    ) -> Latency {
        let (n, changes) = (self.clients, self.changes);
        let mut deliveries = Vec::with_capacity(n * changes);
        let mut last: Vec<Option<i64>> = vec![None; changes];
        let mut last_at: Vec<Option<Instant>> = vec![None; changes];
        for h in handles {
            let arrivals = match tokio::time::timeout(DELIVERY_WAIT, h).await {
                Ok(Ok(a)) => a,
                _ => Vec::new(),
            };
            for (k, at) in arrivals {
                let us = micros_between(writes.answered[k], at);
                deliveries.push(us);
                last[k] = Some(last[k].map_or(us, |l| l.max(us)));
                last_at[k] = Some(last_at[k].map_or(at, |l| l.max(at)));
            }
        }
        let delivered_count = deliveries.len() as u64;
        let complete = |k: &usize| self.delivered[*k].load(Ordering::Relaxed) == n;
        let from_answer: Vec<i64> = (0..changes)
            .filter(complete)
            .filter_map(|k| last[k])
            .collect();
        let from_send: Vec<i64> = (0..changes)
            .filter(complete)
            .filter_map(|k| last_at[k].map(|at| micros_between(writes.sent_at[k], at)))
            .collect();
        Latency {
            clients: n,
            changes,
            expected: (n * changes) as u64,
            delivered: delivered_count,
            clients_dropped: self.ended.load(Ordering::Relaxed),
            delivery: Percentiles::of(deliveries),
            last_client: Percentiles::of(from_answer),
            last_client_from_send: Percentiles::of(from_send),
            writer_round_trip: Percentiles::of(writes.round_trips),
            bytes_per_client,
            connect_s: connect.as_secs_f64(),
        }
    }
}

/// `to - from` in microseconds, negative when `to` is earlier.
fn micros_between(from: Instant, to: Instant) -> i64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_micros() as i64,
        None => -(from.duration_since(to).as_micros() as i64),
    }
}

impl Report {
    /// The report for a terminal.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let c = &self.config;
        let _ = writeln!(
            s,
            "boxoffice-stream-bench: {} shard(s), {} cores, open-file limit {}",
            c.shards, c.cores, c.nofile
        );
        let m = &self.memory;
        let _ = writeln!(
            s,
            "server memory: {} idle clients on the fresh server, VmRSS {:.1} → {:.1} MiB: {:.0} bytes per client (connected in {:.1} s)",
            m.clients,
            m.rss_before as f64 / 1048576.0,
            m.rss_after as f64 / 1048576.0,
            m.bytes_per_client,
            m.connect_s
        );
        if let Some(t) = &self.throughput {
            t.write_text(c, &mut s);
        }
        if let Some(l) = &self.latency {
            l.write_text(&mut s);
        }
        self.goals.write_text(&mut s);
        s
    }
}

impl Throughput {
    /// The report's lines on the throughput runs.
    fn write_text(&self, c: &Config, s: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "hold throughput, closed loop over {} connections, {} rounds of {:.1} s (+{:.1} s warm-up):",
            c.connections, c.rounds, c.duration_s, c.warmup_s
        );
        for r in &self.runs {
            let _ = writeln!(
                s,
                "  round {} {:>5}: {:>8.0} holds/s  {:>3} errors  {:>5} clients  {:>4} dropped  {:>9} changes received  connect {:.1} s",
                r.round,
                r.watchers_name(),
                r.holds_per_s,
                r.errors,
                r.clients,
                r.clients_dropped,
                r.changes_received,
                r.connect_s
            );
        }
        let _ = writeln!(
            s,
            "  median holds/s: none {:.0}, {} idle on another event {:.0} ({:.3}; per round {}), {} on the held event {:.0} ({:.3}; per round {})",
            self.median_none,
            c.clients,
            self.median_other,
            self.ratio_other,
            fmt_list(&self.round_ratios_other),
            c.clients,
            self.median_same,
            self.ratio_same,
            fmt_list(&self.round_ratios_same)
        );
        let _ = writeln!(s, "  server memory per client in these runs: {:.0} bytes (median; a lower bound: freed memory reused)", self.bytes_per_client_reused);
        for r in &self.runs {
            let threads: Vec<String> = r
                .server_cpu
                .threads
                .iter()
                .filter(|(_, cpu)| **cpu >= 0.05)
                .map(|(name, cpu)| format!("{name} {cpu:.2}"))
                .collect();
            let _ = writeln!(
                s,
                "  round {} {:>5} CPU s: server {:.2} ({}), bench {:.2}",
                r.round,
                r.watchers_name(),
                r.server_cpu.total_s,
                threads.join(", "),
                r.bench_cpu_s
            );
        }
    }
}

impl Run {
    /// Its watchers as the report names them: `none`, `other`, `same`.
    fn watchers_name(&self) -> String {
        format!("{:?}", self.watchers).to_lowercase()
    }
}

impl Latency {
    /// The report's lines on the latency phase.
    fn write_text(&self, s: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "delivery, {} clients, {} changes: {} of {} deliveries, {} clients dropped, connect {:.1} s, {:.0} bytes/client",
            self.clients, self.changes, self.delivered, self.expected, self.clients_dropped, self.connect_s, self.bytes_per_client
        );
        for (name, p) in [
            ("writer's answer → each client", &self.delivery),
            ("writer's answer → last client", &self.last_client),
            ("writer's send → last client  ", &self.last_client_from_send),
            ("writer's round trip          ", &self.writer_round_trip),
        ] {
            let _ = writeln!(
                s,
                "  {name}: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  min {:.2} ms  (n {})",
                p.p50_ms, p.p99_ms, p.max_ms, p.min_ms, p.count
            );
        }
    }
}

impl Goals {
    /// The report's lines on the goals that were measured.
    fn write_text(&self, s: &mut String) {
        use std::fmt::Write;
        let verdict = |met: bool| if met { "met" } else { "missed" };
        if let (Some(cost), Some(met)) = (self.idle_cost_pct, self.idle_cost_met) {
            let _ = writeln!(
                s,
                "goal: idle clients cost {cost:.1} % of hold throughput (goal ≤ {:.0} %): {}",
                self.idle_cost_goal_pct,
                verdict(met)
            );
        }
        if let (Some(p99), Some(met)) = (self.latency_p99_ms, self.latency_met) {
            let _ = writeln!(
                s,
                "goal: a change reaches every client in {p99:.1} ms p99 (goal ≤ {:.0} ms): {}",
                self.latency_p99_goal_ms,
                verdict(met)
            );
        }
    }
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_and_signed() {
        let p = Percentiles::of((1..=100).map(|i| i * 1000).chain([-500]).collect());
        assert_eq!(p.count, 101);
        assert_eq!(p.min_ms, -0.5);
        assert_eq!(p.max_ms, 100.0);
        assert_eq!(p.p50_ms, 50.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn the_held_count_is_read_from_change_data() {
        let data =
            r#"{"sections":[{"id":"vip","held":9},{"id":"ga","available":7,"held":3}],"seats":{}}"#;
        assert_eq!(held_of(data), Some(3));
        assert_eq!(held_of(r#"{"seats":{}}"#), None);
    }
}
