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

/// Bins of a bucket's coarse latency histogram: bin `i` holds latencies below
/// `2^((i + 1) / 4)` µs (four bins per doubling, so a percentile read from it is within
/// 19 % of the exact one); the last bin holds everything from about 1 s up.
pub const LATENCY_BINS: usize = 80;

/// The bin of a latency of `us` microseconds.
pub fn latency_bin(us: u64) -> usize {
    let us = us.max(1) as f64;
    ((us.log2() * 4.0).floor() as usize).min(LATENCY_BINS - 1)
}

/// The upper edge of bin `bin`, in µs.
pub fn latency_bin_edge_us(bin: usize) -> f64 {
    2f64.powf((bin + 1) as f64 / 4.0)
}

/// Latency of the answers of one [`BUCKET`], coarse: enough to tell a slow quarter second
/// (and tie it to what the server logged then) without an exact histogram per bucket.
#[derive(Clone, Debug)]
pub struct BucketLatency {
    /// Answers per [`latency_bin`].
    pub bins: [u32; LATENCY_BINS],
    /// The slowest answer, µs.
    pub max_us: u64,
}

impl Default for BucketLatency {
    fn default() -> Self {
        BucketLatency {
            bins: [0; LATENCY_BINS],
            max_us: 0,
        }
    }
}

impl BucketLatency {
    fn record(&mut self, us: u64) {
        self.bins[latency_bin(us)] += 1;
        self.max_us = self.max_us.max(us);
    }

    fn add(&mut self, other: &BucketLatency) {
        for (mine, theirs) in self.bins.iter_mut().zip(other.bins.iter()) {
            *mine += theirs;
        }
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The upper edge (µs) of the bin that holds quantile `q` (0..=1), capped at the
    /// slowest answer; 0 for a bucket without answers.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let total: u64 = self.bins.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (bin, &n) in self.bins.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return latency_bin_edge_us(bin).min(self.max_us as f64);
            }
        }
        self.max_us as f64
    }
}

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
    /// The latency of the answers of each bucket of `timeline`.
    pub timeline_latency: Vec<BucketLatency>,
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
            timeline_latency: Vec::new(),
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
            self.timeline_latency
                .resize(bucket + 1, BucketLatency::default());
        }
        self.timeline[bucket].0 += 1;
        self.timeline[bucket].1 += u64::from(ok);
        self.timeline_latency[bucket].record(us);
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
        if self.timeline_latency.len() < other.timeline_latency.len() {
            self.timeline_latency
                .resize(other.timeline_latency.len(), BucketLatency::default());
        }
        for (mine, theirs) in self
            .timeline_latency
            .iter_mut()
            .zip(other.timeline_latency.iter())
        {
            mine.add(theirs);
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

    #[test]
    fn each_bucket_keeps_its_own_latency_and_merging_adds_them() {
        let t0 = Instant::now();
        let mut a = Recorder::new(t0);
        let mut b = Recorder::new(t0);
        let second = t0 + BUCKET + Duration::from_millis(1);
        // Bucket 0: 990 answers of 1 ms and 10 of 40 ms, split over two recorders.
        for i in 0..990 {
            let r = if i % 2 == 0 { &mut a } else { &mut b };
            r.answer(Kind::Hold, true, 200, None, Duration::from_millis(1), t0);
        }
        for _ in 0..10 {
            b.answer(Kind::Hold, true, 200, None, Duration::from_millis(40), t0);
        }
        // Bucket 1: one slow answer only.
        a.answer(
            Kind::Hold,
            true,
            200,
            None,
            Duration::from_millis(300),
            second,
        );
        a.merge(b);
        assert_eq!(a.timeline_latency.len(), 2);
        let first = &a.timeline_latency[0];
        assert_eq!(first.max_us, 40_000);
        // p99 is the 990th answer: 1 ms, within a bin (19 %).
        let p99 = first.quantile_us(0.99);
        assert!((1000.0..=1190.0).contains(&p99), "p99 {p99}");
        // p99.9 falls among the 40 ms answers, capped at the slowest.
        let p999 = first.quantile_us(0.999);
        assert!((33_600.0..=40_000.0).contains(&p999), "p99.9 {p999}");
        assert_eq!(a.timeline_latency[1].max_us, 300_000);
        assert_eq!(a.timeline_latency[1].quantile_us(0.5), 300_000.0);
        assert_eq!(BucketLatency::default().quantile_us(0.99), 0.0);
    }

    #[test]
    fn a_latency_falls_in_the_bin_whose_edges_hold_it() {
        for us in [1u64, 2, 3, 7, 100, 1_000, 4_567, 65_000, 900_000] {
            let bin = latency_bin(us);
            assert!(
                latency_bin_edge_us(bin) > us as f64,
                "{us} below its bin's edge"
            );
            if bin > 0 {
                assert!(
                    latency_bin_edge_us(bin - 1) <= us as f64,
                    "{us} above the bin before"
                );
            }
        }
        assert_eq!(latency_bin(u64::MAX), LATENCY_BINS - 1);
    }
}
