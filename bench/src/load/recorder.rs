//! Measurements as they happen: an HDR histogram of latency per request kind, errors by
//! status and code, answers per time bucket. One recorder per connection, merged at the
//! end; report.rs turns them into figures.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::workload::Kind;

/// Latency is recorded in microseconds, from 1 µs to this (longer is clamped to it).
const LATENCY_US_MAX: u64 = 120_000_000;

/// Width of a throughput-over-time bucket.
pub const BUCKET: Duration = Duration::from_millis(250);

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("bounds are valid")
}

/// Counts of one kind of request.
#[derive(Clone)]
pub struct KindStats {
    /// Latency of every measured answer, in µs (rejections included).
    pub latency: Histogram<u64>,
    /// Measured answers.
    pub answered: u64,
    /// Measured 2xx answers.
    pub ok: u64,
    /// Measured requests that got no answer.
    pub failed: u64,
}

/// Collects one connection's (or, merged, a run's) measurements.
pub struct Recorder {
    measure_start: Instant,
    /// Per [`Kind`].
    pub kinds: Vec<KindStats>,
    /// `(status, code)` of non-2xx answers (status 0: no answer; the code is the cause).
    pub errors: BTreeMap<(u16, String), u64>,
    /// Answers completed in each [`BUCKET`] after the warm-up: `(all, 2xx)`.
    pub timeline: Vec<(u64, u64)>,
    /// Answers during the warm-up (not in the figures).
    pub warmup_requests: u64,
}

impl Recorder {
    /// A recorder whose measured time starts at `measure_start`.
    pub fn new(measure_start: Instant) -> Recorder {
        let stats = KindStats {
            latency: histogram(),
            answered: 0,
            ok: 0,
            failed: 0,
        };
        Recorder {
            measure_start,
            kinds: vec![stats; Kind::ALL.len()],
            errors: BTreeMap::new(),
            timeline: Vec::new(),
            warmup_requests: 0,
        }
    }

    /// Records an answer; `latency` runs from the intended send time.
    pub fn answer(
        &mut self,
        kind: Kind,
        measured: bool,
        status: u16,
        code: Option<&str>,
        latency: Duration,
        done: Instant,
    ) {
        if !measured {
            self.warmup_requests += 1;
            return;
        }
        let stats = &mut self.kinds[kind.index()];
        stats.answered += 1;
        let ok = (200..300).contains(&status);
        stats.ok += u64::from(ok);
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        stats.latency.record(us).expect("clamped into the bounds");
        if !ok {
            *self
                .errors
                .entry((status, code.unwrap_or("-").to_string()))
                .or_default() += 1;
        }
        let bucket = (done
            .saturating_duration_since(self.measure_start)
            .as_nanos()
            / BUCKET.as_nanos()) as usize;
        if self.timeline.len() <= bucket {
            self.timeline.resize(bucket + 1, (0, 0));
        }
        self.timeline[bucket].0 += 1;
        self.timeline[bucket].1 += u64::from(ok);
    }

    /// Records a request that got no answer.
    pub fn transport_error(&mut self, kind: Kind, measured: bool, cause: &str) {
        if !measured {
            return;
        }
        self.kinds[kind.index()].failed += 1;
        let cause = if cause.contains("connect") {
            "connect"
        } else if cause == "timeout" {
            "timeout"
        } else {
            "io"
        };
        *self.errors.entry((0, cause.to_string())).or_default() += 1;
    }

    /// Adds another recorder's counts.
    pub fn merge(&mut self, other: Recorder) {
        for (mine, theirs) in self.kinds.iter_mut().zip(other.kinds) {
            mine.latency.add(&theirs.latency).expect("same bounds");
            mine.answered += theirs.answered;
            mine.ok += theirs.ok;
            mine.failed += theirs.failed;
        }
        for (key, n) in other.errors {
            *self.errors.entry(key).or_default() += n;
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), (0, 0));
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(other.timeline) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        self.warmup_requests += other.warmup_requests;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_status_and_code_and_merged() {
        let t0 = Instant::now();
        let mut a = Recorder::new(t0);
        let mut b = Recorder::new(t0);
        let ms = Duration::from_millis(1);
        a.answer(Kind::Hold, true, 409, Some("sold_out"), ms, t0);
        b.answer(Kind::Hold, true, 409, Some("sold_out"), ms, t0);
        b.answer(Kind::Hold, true, 503, Some("overloaded"), ms, t0);
        b.transport_error(Kind::Hold, true, "timeout");
        a.merge(b);
        assert_eq!(a.errors[&(409, "sold_out".to_string())], 2);
        assert_eq!(a.errors[&(503, "overloaded".to_string())], 1);
        assert_eq!(a.errors[&(0, "timeout".to_string())], 1);
        assert_eq!(a.kinds[0].answered, 3);
        assert_eq!(a.kinds[0].ok, 0);
    }
}
