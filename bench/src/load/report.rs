//! The report of a run, from the recorder's figures (recorder.rs): latency percentiles
//! per request kind, errors by status and code, throughput over time; the text a person
//! reads and the JSON a machine reads.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::recorder::{KindStats, BUCKET};
use super::verify::Verdict;
use super::workload::Kind;

/// The percentiles of the report.
pub const PERCENTILES: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 100.0];

/// Latency figures of one kind of request, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// Request kind.
    pub kind: Kind,
    /// Measured answers.
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Requests without an answer.
    pub failed: u64,
    /// Answers per second.
    pub requests_per_s: f64,
    /// 2xx answers per second.
    pub ok_per_s: f64,
    /// Mean.
    pub mean_ms: f64,
    /// p50.
    pub p50_ms: f64,
    /// p90.
    pub p90_ms: f64,
    /// p99.
    pub p99_ms: f64,
    /// p99.9.
    pub p999_ms: f64,
    /// Max.
    pub max_ms: f64,
    /// `(percentile, ms)` points for the percentile plot.
    pub curve: Vec<(f64, f64)>,
}

/// Errors of one status and code.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    /// HTTP status; 0 when no answer came.
    pub status: u16,
    /// The error `code` (or the transport cause when status is 0).
    pub code: String,
    /// How many.
    pub count: u64,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// `boxoffice` or `ceiling`.
    pub target: String,
    /// Measured seconds.
    pub elapsed_s: f64,
    /// Measured answers of every kind.
    pub requests: u64,
    /// Answers per second, all kinds.
    pub requests_per_s: f64,
    /// Answers during the warm-up (excluded).
    pub warmup_requests: u64,
    /// Open loop: scheduled requests never sent.
    pub unsent: u64,
    /// Connections opened.
    pub connects: u64,
    /// Per kind that was sent.
    pub kinds: Vec<KindReport>,
    /// Non-2xx answers and requests without an answer.
    pub errors: Vec<ErrorCount>,
    /// Answers per second in each bucket of `bucket_s`.
    pub timeline_per_s: Vec<f64>,
    /// The bucket width.
    pub bucket_s: f64,
    /// p99 latency of the answers completed in each bucket, ms (coarse: the upper edge of a
    /// bin a fourth of a doubling wide; see `recorder::LATENCY_BINS`).
    pub timeline_p99_ms: Vec<f64>,
    /// The slowest answer completed in each bucket, ms.
    pub timeline_max_ms: Vec<f64>,
    /// Where the first bucket starts: the wall clock, ms since the Unix epoch.
    pub measure_start_unix_ms: u64,
    /// Each bucket's coarse histogram (not in the JSON: its p99 and max are).
    #[serde(skip)]
    pub timeline_latency: Vec<super::recorder::BucketLatency>,
    /// The verification (none for the ceiling).
    pub verification: Option<Verdict>,
    /// The server's CPU per answer (the ceiling's threads, or the spawned or `--server-pid`
    /// process), warm-up included.
    pub cpu: Option<super::usage::CpuUse>,
    /// The machine's 1-minute load average as the run started.
    pub load_average: Option<f64>,
}

/// Buckets named in the text report's "slowest" line.
const SLOWEST_BUCKETS_SHOWN: usize = 5;

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Percentiles of the plot: 0 to 99.999 on the "number of nines" scale.
pub fn curve_percentiles() -> Vec<f64> {
    let mut out = Vec::new();
    let mut step = 0.0;
    while step <= 5.0 + 1e-9 {
        out.push(100.0 - 100.0 * 10f64.powf(-step));
        step += 0.1;
    }
    out
}

/// The latency figures of a histogram.
pub fn kind_report(kind: Kind, stats: &KindStats, elapsed: Duration) -> KindReport {
    let h = &stats.latency;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let at = |p: f64| ms(h.value_at_quantile(p / 100.0));
    KindReport {
        kind,
        requests: stats.answered,
        ok: stats.ok,
        failed: stats.failed,
        requests_per_s: stats.answered as f64 / secs,
        ok_per_s: stats.ok as f64 / secs,
        mean_ms: h.mean() / 1000.0,
        p50_ms: at(50.0),
        p90_ms: at(90.0),
        p99_ms: at(99.0),
        p999_ms: at(99.9),
        max_ms: ms(h.max()),
        curve: curve_percentiles()
            .into_iter()
            .map(|p| (p, at(p)))
            .collect(),
    }
}

impl RunReport {
    /// The report of a run.
    pub fn new(target: &str, out: &super::runner::RunOutput, verdict: Option<Verdict>) -> Self {
        let rec = &out.recorder;
        let secs = out.elapsed.as_secs_f64().max(1e-9);
        let kinds: Vec<KindReport> = Kind::ALL
            .iter()
            .map(|k| (k, &rec.kinds[k.index()]))
            .filter(|(_, s)| s.answered + s.failed > 0)
            .map(|(k, s)| kind_report(*k, s, out.elapsed))
            .collect();
        let requests = kinds.iter().map(|k| k.requests).sum();
        // The last bucket is cut short by the end of the run; leave it out of the plot.
        let full = (out.elapsed.as_nanos() / BUCKET.as_nanos()) as usize;
        let per_s = 1.0 / BUCKET.as_secs_f64();
        RunReport {
            target: target.to_string(),
            elapsed_s: secs,
            requests,
            requests_per_s: requests as f64 / secs,
            warmup_requests: rec.warmup_requests,
            unsent: out.unsent,
            connects: out.connects,
            kinds,
            errors: rec
                .errors
                .iter()
                .map(|((status, code), count)| ErrorCount {
                    status: *status,
                    code: code.clone(),
                    count: *count,
                })
                .collect(),
            timeline_per_s: rec
                .timeline
                .iter()
                .take(full.max(1))
                .map(|(n, _)| *n as f64 * per_s)
                .collect(),
            bucket_s: BUCKET.as_secs_f64(),
            timeline_p99_ms: rec
                .timeline_latency
                .iter()
                .take(full.max(1))
                .map(|b| b.quantile_us(0.99) / 1000.0)
                .collect(),
            timeline_max_ms: rec
                .timeline_latency
                .iter()
                .take(full.max(1))
                .map(|b| ms(b.max_us))
                .collect(),
            measure_start_unix_ms: out.measure_start_unix_ms,
            timeline_latency: rec
                .timeline_latency
                .iter()
                .take(full.max(1))
                .cloned()
                .collect(),
            verification: verdict,
            cpu: None,
            load_average: None,
        }
    }

    /// The figures of one kind, if it was sent.
    pub fn kind(&self, kind: Kind) -> Option<&KindReport> {
        self.kinds.iter().find(|k| k.kind == kind)
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} requests in {:.2} s = {:.0} req/s ({} in warm-up, excluded; {} connections opened{})",
            self.target,
            self.requests,
            self.elapsed_s,
            self.requests_per_s,
            self.warmup_requests,
            self.connects,
            if self.unsent > 0 {
                format!("; {} scheduled but never sent: the server fell behind", self.unsent)
            } else {
                String::new()
            }
        );
        if let Some(load) = self.load_average {
            let _ = writeln!(s, "  load average at the start: {load:.2}");
        }
        let _ = writeln!(
            s,
            "  {:<10} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "kind", "requests", "ok", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for k in &self.kinds {
            let _ = writeln!(
                s,
                "  {:<10} {:>9} {:>9} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                k.kind.name(),
                k.requests,
                k.ok,
                k.requests_per_s,
                k.p50_ms,
                k.p90_ms,
                k.p99_ms,
                k.p999_ms,
                k.max_ms
            );
        }
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|e| match e.status {
                    0 => format!("no answer ({}) ×{}", e.code, e.count),
                    st => format!("{st} {} ×{}", e.code, e.count),
                })
                .collect();
            let _ = writeln!(s, "  not 2xx: {}", list.join(", "));
        }
        if let Some(v) = &self.verification {
            let counts: Vec<String> = v
                .sections
                .iter()
                .map(|x| {
                    format!(
                        "{}: sold {} + held {} + available {} = capacity {}",
                        x.id, x.sold, x.held, x.available, x.capacity
                    )
                })
                .collect();
            let verdict = if v.passed { "passed" } else { "FAILED" };
            let _ = writeln!(
                s,
                "  verification {verdict}: {} acknowledged holds and purchases, {} unknown outcomes; {}",
                v.acknowledged,
                v.unknown_outcomes,
                counts.join("; ")
            );
            for f in &v.failures {
                let _ = writeln!(s, "    - {f}");
            }
        }
        if let Some(line) = self.slowest_buckets_text(SLOWEST_BUCKETS_SHOWN) {
            s.push_str(&line);
        }
        if let Some(cpu) = &self.cpu {
            s.push_str(&cpu.text());
        }
        s
    }

    /// The `n` buckets with the highest p99, slowest first, as `(start s, p99 ms, max ms)`.
    pub fn slowest_buckets(&self, n: usize) -> Vec<(f64, f64, f64)> {
        let mut all: Vec<(f64, f64, f64)> = self
            .timeline_p99_ms
            .iter()
            .zip(&self.timeline_max_ms)
            .enumerate()
            .map(|(i, (p99, max))| (i as f64 * self.bucket_s, *p99, *max))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.total_cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Where the slow answers were: for each label that `phase_of` gives a bucket (by the
    /// wall clock at its middle, ms since the Unix epoch), `(label, buckets, answers,
    /// answers at or over `slow_ms`)`, in the order the labels first occur. An answer
    /// counts as slow when its whole bin is at or over `slow_ms`.
    pub fn answers_by_phase(
        &self,
        slow_ms: f64,
        phase_of: impl Fn(u64) -> &'static str,
    ) -> Vec<(&'static str, u64, u64, u64)> {
        let mut out: Vec<(&'static str, u64, u64, u64)> = Vec::new();
        let bucket_ms = self.bucket_s * 1000.0;
        for (i, b) in self.timeline_latency.iter().enumerate() {
            let middle = self.measure_start_unix_ms + ((i as f64 + 0.5) * bucket_ms) as u64;
            let label = phase_of(middle);
            let answers: u64 = b.bins.iter().map(|&n| u64::from(n)).sum();
            let slow: u64 = b
                .bins
                .iter()
                .enumerate()
                .filter(|(bin, _)| {
                    *bin > 0 && super::recorder::latency_bin_edge_us(bin - 1) >= slow_ms * 1000.0
                })
                .map(|(_, &n)| u64::from(n))
                .sum();
            match out.iter_mut().find(|e| e.0 == label) {
                Some(e) => {
                    e.1 += 1;
                    e.2 += answers;
                    e.3 += slow;
                }
                None => out.push((label, 1, answers, slow)),
            }
        }
        out
    }

    fn slowest_buckets_text(&self, n: usize) -> Option<String> {
        let slowest = self.slowest_buckets(n);
        if self.timeline_p99_ms.len() < 2 || slowest.is_empty() {
            return None;
        }
        let list: Vec<String> = slowest
            .iter()
            .map(|(t, p99, max)| format!("{t:.2} s: p99 {p99:.1} / max {max:.1} ms"))
            .collect();
        Some(format!(
            "  slowest {} s buckets (from the end of the warm-up, unix ms {}): {}\n",
            self.bucket_s,
            self.measure_start_unix_ms,
            list.join("; ")
        ))
    }
}

/// boxoffice against the ceiling, for the primary kind of the workload.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The kind compared.
    pub kind: Kind,
    /// boxoffice req/s ÷ ceiling req/s (goal ≥ 0.8 for holds at 64 connections).
    pub throughput_ratio: f64,
    /// boxoffice p99 ÷ ceiling p99 (goal ≤ 2).
    pub p99_ratio: f64,
}

impl Comparison {
    /// Compares two runs on `kind`; `None` if either did not send it.
    pub fn new(kind: Kind, boxoffice: &RunReport, ceiling: &RunReport) -> Option<Comparison> {
        let (b, c) = (boxoffice.kind(kind)?, ceiling.kind(kind)?);
        Some(Comparison {
            kind,
            throughput_ratio: b.requests_per_s / c.requests_per_s.max(1e-9),
            p99_ratio: b.p99_ms / c.p99_ms.max(1e-9),
        })
    }

    /// One line of text.
    pub fn text(&self, boxoffice: &RunReport, ceiling: &RunReport) -> String {
        let (b, c) = (
            boxoffice.kind(self.kind).expect("compared"),
            ceiling.kind(self.kind).expect("compared"),
        );
        format!(
            "{} vs ceiling: throughput {:.0} / {:.0} req/s = {:.2} ×; p99 {:.3} / {:.3} ms = {:.2} ×",
            self.kind.name(),
            b.requests_per_s,
            c.requests_per_s,
            self.throughput_ratio,
            b.p99_ms,
            c.p99_ms,
            self.p99_ratio
        )
    }
}

/// Everything `--json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The workload and its parameters.
    pub workload: super::workload::Spec,
    /// `closed` or `open`.
    pub mode: String,
    /// Connections.
    pub connections: usize,
    /// Open-loop rate.
    pub rate: Option<f64>,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// The ceiling run, if `--ceiling`.
    pub ceiling: Option<RunReport>,
    /// The run against boxoffice (none with `--ceiling-only`).
    pub boxoffice: Option<RunReport>,
    /// boxoffice ÷ ceiling.
    pub comparison: Option<Comparison>,
    /// Live holds placed before the run (`--live-holds`).
    pub live_holds: u64,
    /// What the server showed during its run (loop gap, memory, snapshots).
    pub server: Option<super::watch::ServerSide>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::recorder::Recorder;
    use tokio::time::Instant;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let t0 = Instant::now();
        let mut rec = Recorder::new(t0);
        // 1..=1000 ms, one answer each.
        for ms in 1..=1000u64 {
            let latency = Duration::from_millis(ms);
            rec.answer(Kind::Hold, true, 201, None, latency, t0 + latency);
        }
        rec.answer(Kind::Hold, false, 201, None, Duration::from_secs(50), t0);
        let r = kind_report(Kind::Hold, &rec.kinds[0], Duration::from_secs(2));
        assert_eq!(r.requests, 1000);
        assert!((r.requests_per_s - 500.0).abs() < 1e-9);
        let close = |got: f64, want: f64| (got - want).abs() / want < 0.002;
        assert!(close(r.p50_ms, 500.0), "{}", r.p50_ms);
        assert!(close(r.p90_ms, 900.0), "{}", r.p90_ms);
        assert!(close(r.p99_ms, 990.0), "{}", r.p99_ms);
        assert!(close(r.p999_ms, 999.0), "{}", r.p999_ms);
        assert!(close(r.max_ms, 1000.0), "{}", r.max_ms);
        assert_eq!(rec.warmup_requests, 1);
        assert_eq!(rec.timeline.len(), 5);
    }

    #[test]
    fn the_slowest_buckets_are_named_with_their_start_and_p99() {
        let t0 = Instant::now();
        let mut rec = Recorder::new(t0);
        // Four buckets of 100 answers; bucket 2 has its slowest 5 % at 30 ms.
        for bucket in 0..4u32 {
            let done = t0 + BUCKET * bucket + Duration::from_millis(1);
            for i in 0..100 {
                let ms = if bucket == 2 && i < 5 {
                    30
                } else {
                    1 + u64::from(bucket)
                };
                rec.answer(Kind::Hold, true, 201, None, Duration::from_millis(ms), done);
            }
        }
        let out = crate::load::runner::RunOutput {
            recorder: rec,
            ledger: Default::default(),
            elapsed: BUCKET * 4,
            unsent: 0,
            connects: 1,
            measure_start_unix_ms: 1_700_000_000_000,
        };
        let report = RunReport::new("boxoffice", &out, None);
        assert_eq!(report.timeline_p99_ms.len(), 4);
        let slowest = report.slowest_buckets(2);
        assert_eq!(slowest.len(), 2);
        assert_eq!(slowest[0].0, 2.0 * BUCKET.as_secs_f64());
        assert!((25.0..=30.0).contains(&slowest[0].1), "{:?}", slowest);
        assert_eq!(slowest[0].2, 30.0);
        // Then bucket 3 (4 ms answers), before buckets 1 and 0.
        assert_eq!(slowest[1].0, 3.0 * BUCKET.as_secs_f64());
        assert!(report.text().contains("unix ms 1700000000000"));
    }

    #[test]
    fn curve_runs_from_zero_to_five_nines() {
        let c = curve_percentiles();
        assert_eq!(c[0], 0.0);
        assert!((c.last().unwrap() - 99.999).abs() < 1e-6);
        assert!(c.windows(2).all(|w| w[0] < w[1]));
    }
}
