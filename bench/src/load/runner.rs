//! Runs a workload against a target: closed loop (each connection sends its next request
//! when the last one is answered) or open loop (each connection sends on a fixed schedule,
//! and latency counts from the intended send time, so a server that falls behind shows
//! its queue in the figures instead of slowing the generator down: no coordinated
//! omission). A warm-up runs first and is excluded from the figures, not from the ledger.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{error_code, Client, Target};
use super::recorder::Recorder;
use super::verify::Ledger;
use super::workload::{hold_id, Answer, Effect, Op, Spec, WorkloadKind};

/// How long a run goes and how hard it pushes.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Connections (one task each).
    pub connections: usize,
    /// Open loop: requests per second in all; `None` is a closed loop.
    pub rate: Option<f64>,
    /// Measured time (the cap on time when `requests` is given).
    pub duration: Duration,
    /// Measured requests, when given.
    pub requests: Option<u64>,
    /// Time before measuring.
    pub warmup: Duration,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// Draw a progress bar (only on a terminal).
    pub progress: bool,
    /// What the progress bar calls this run.
    pub label: String,
}

/// How long an open-loop connection that fell behind may keep sending after the end:
/// what it has not sent by then is reported as `unsent`.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(5);

/// What a run produced.
pub struct RunOutput {
    /// Latency, errors, throughput over time.
    pub recorder: Recorder,
    /// What the run was told.
    pub ledger: Ledger,
    /// Measured seconds, from the end of the warm-up to the last answer.
    pub elapsed: Duration,
    /// Open loop: scheduled requests never sent because the connection was too far behind.
    pub unsent: u64,
    /// Connections opened, reconnects included.
    pub connects: u64,
    /// The wall clock at the end of the warm-up, ms since the Unix epoch: where the
    /// timeline's first bucket starts, to line it up with the server's log.
    pub measure_start_unix_ms: u64,
}

struct Shared {
    start: Instant,
    measure_start: Instant,
    end: Instant,
    budget: Option<AtomicU64>,
    sellout: Arc<AtomicU64>,
    completed: AtomicU64,
    stop: AtomicBool,
}

/// Runs `spec` against `target` and collects the answers.
pub async fn run(target: Arc<Target>, spec: &Spec, config: &RunConfig) -> RunOutput {
    let start = Instant::now();
    let warmup = if spec.kind == WorkloadKind::Sellout {
        Duration::ZERO
    } else {
        config.warmup
    };
    let measure_start = start + warmup;
    let measure_start_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        + warmup.as_millis() as u64;
    let shared = Arc::new(Shared {
        start,
        measure_start,
        end: measure_start + config.duration,
        budget: config.requests.map(AtomicU64::new),
        sellout: Arc::new(AtomicU64::new(0)),
        completed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let progress = spawn_progress(config, spec, shared.clone());
    let mut tasks = Vec::with_capacity(config.connections);
    for worker in 0..config.connections {
        let script = spec.script(worker, shared.sellout.clone());
        let worker = Worker {
            client: Client::new(target.clone()),
            shared: shared.clone(),
            interval: config
                .rate
                .map(|r| Duration::from_secs_f64(config.connections as f64 / r)),
            offset: config
                .rate
                .map(|r| Duration::from_secs_f64(worker as f64 / r))
                .unwrap_or_default(),
            timeout: config.timeout,
            recorder: Recorder::new(measure_start),
            ledger: Ledger::default(),
            unsent: 0,
            follows_up: spec.follows_up(),
        };
        tasks.push(tokio::spawn(worker.run(script)));
    }
    let mut out = RunOutput {
        recorder: Recorder::new(measure_start),
        ledger: Ledger::default(),
        elapsed: Duration::ZERO,
        unsent: 0,
        connects: 0,
        measure_start_unix_ms,
    };
    for task in tasks {
        let worker = task.await.expect("a load task panicked");
        out.recorder.merge(worker.recorder);
        out.ledger.merge(worker.ledger);
        out.unsent += worker.unsent;
        out.connects += worker.client.connects;
    }
    out.elapsed = Instant::now().saturating_duration_since(measure_start);
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    out
}

struct Worker {
    client: Client,
    shared: Arc<Shared>,
    interval: Option<Duration>,
    offset: Duration,
    timeout: Duration,
    recorder: Recorder,
    ledger: Ledger,
    unsent: u64,
    follows_up: bool,
}

impl Worker {
    async fn run(mut self, mut script: super::workload::Script) -> Worker {
        let mut sent: u32 = 0;
        loop {
            let Some(intended) = self.next_send_time(sent).await else {
                break;
            };
            let measured = intended >= self.shared.measure_start;
            if measured && !self.take_from_budget() {
                break;
            }
            let Some(op) = script.next_op() else { break };
            let (status, body) = self.send(&op, measured).await;
            let answer = Answer {
                status,
                body: &body,
            };
            self.settle(&mut script, &op, answer, measured, intended);
            self.shared.completed.fetch_add(1, Ordering::Relaxed);
            sent += 1;
        }
        self
    }

    /// When the request numbered `sent` is meant to go, waiting for it in an open loop;
    /// `None` when this connection is done (an open loop that fell more than
    /// [`OPEN_LOOP_GRACE`] behind counts what it did not send as `unsent`).
    async fn next_send_time(&mut self, sent: u32) -> Option<Instant> {
        let shared = &self.shared;
        let now = Instant::now();
        match self.interval {
            Some(interval) => {
                let at = shared.start + self.offset + interval * sent;
                if at >= shared.end {
                    return None;
                }
                if now > shared.end + OPEN_LOOP_GRACE {
                    let left = (shared.end - at).as_secs_f64() / interval.as_secs_f64();
                    self.unsent += left.ceil() as u64;
                    return None;
                }
                tokio::time::sleep_until(at).await;
                Some(at)
            }
            None if now >= shared.end => None,
            None => Some(now),
        }
    }

    /// Takes one measured request from the `--requests` budget; false when it is spent.
    fn take_from_budget(&self) -> bool {
        match &self.shared.budget {
            Some(budget) => budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            None => true,
        }
    }

    /// Sends `op` and waits for its answer: its status and body, or status 0 (recorded as
    /// a transport error) when none came.
    async fn send(&mut self, op: &Op, measured: bool) -> (u16, bytes::Bytes) {
        let reply = tokio::time::timeout(
            self.timeout,
            self.client
                .send(op.method, &op.path, op.body.clone(), &op.user),
        )
        .await;
        match reply {
            Ok(Ok(reply)) => (reply.status, reply.body),
            Ok(Err(e)) => {
                self.recorder
                    .transport_error(op.kind, measured, &e.to_string());
                (0, bytes::Bytes::new())
            }
            Err(_) => {
                self.client.reset();
                self.recorder.transport_error(op.kind, measured, "timeout");
                (0, bytes::Bytes::new())
            }
        }
    }

    /// Records the answer to `op` (meant to go at `intended`, answered now) in the figures
    /// and the ledger, and lets the script learn from it.
    fn settle(
        &mut self,
        script: &mut super::workload::Script,
        op: &Op,
        answer: Answer<'_>,
        measured: bool,
        intended: Instant,
    ) {
        let done = Instant::now();
        let status = answer.status;
        let code = (status >= 400).then(|| error_code(answer.body));
        if status != 0 {
            self.recorder.answer(
                op.kind,
                measured,
                status,
                code.as_deref(),
                done - intended,
                done,
            );
        }
        let id = match &op.effect {
            Effect::Place { .. } if self.follows_up => hold_id(answer),
            _ => None,
        };
        let expires = match &op.effect {
            Effect::Place { expiring: true, .. } => {
                Some(done.into_std() + Duration::from_secs(super::workload::EXPIRING_TTL_SECONDS))
            }
            _ => None,
        };
        let effect = script.resolve(op, answer);
        self.ledger
            .record(&effect, status, id, code.as_deref(), expires);
        script.observe(op, answer);
    }
}

fn spawn_progress(
    config: &RunConfig,
    spec: &Spec,
    shared: Arc<Shared>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !config.progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match (spec.kind, config.requests) {
        (WorkloadKind::Sellout, _) => indicatif::ProgressBar::new(spec.buyers),
        (_, Some(n)) => indicatif::ProgressBar::new(n),
        (_, None) => {
            let total = shared.end - shared.start;
            indicatif::ProgressBar::new(total.as_millis() as u64)
        }
    };
    let by_time = spec.kind != WorkloadKind::Sellout && config.requests.is_none();
    let template = if by_time {
        "{prefix} [{bar:40}] {elapsed}/{duration} {msg}"
    } else {
        "{prefix} [{bar:40}] {pos}/{len} {msg}"
    };
    let style = indicatif::ProgressStyle::with_template(template)
        .expect("the template parses")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(config.label.clone());
    let measure_start = shared.measure_start;
    Some(tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        while !shared.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = Instant::now();
            let done = shared.completed.load(Ordering::Relaxed);
            let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64();
            last = (now, done);
            let phase = if now < measure_start { "warm-up " } else { "" };
            bar.set_message(format!("{phase}{rate:.0} req/s"));
            if by_time {
                bar.set_position((now - shared.start).as_millis() as u64);
            } else {
                bar.set_position(done);
            }
        }
        bar.finish_and_clear();
    }))
}
