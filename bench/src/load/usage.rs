//! What a run cost the machine: the server's CPU per answer, by thread name, and the load
//! average when the run started. The cores are shared, so a figure means something only
//! next to the load it was measured under, and a CPU time per answer is the one figure the
//! neighbours' load moves little.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::stream::server::{cpu, Cpu};

/// The threads of the in-process ceiling server (its tokio runtime's name).
pub const CEILING_THREADS: &str = "ceiling-worker";

/// CPU used by the server side of one run, per answer (warm-up included).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUse {
    /// CPU seconds of the server's threads during the run (warm-up included).
    pub total_s: f64,
    /// Answers in that time (warm-up included).
    pub answers: u64,
    /// `total_s` per answer, in µs.
    pub per_answer_us: f64,
    /// µs per answer by thread name (a pool's threads added up).
    pub threads_us: BTreeMap<String, f64>,
}

impl CpuUse {
    /// The use between two readings, over `answers`; only threads whose name starts with
    /// `only` when given (the ceiling runs inside this process).
    pub fn between(before: &Cpu, after: &Cpu, answers: u64, only: Option<&str>) -> CpuUse {
        let used = after.since(before);
        let per = |s: f64| s * 1e6 / answers.max(1) as f64;
        let threads: BTreeMap<String, f64> = used
            .threads
            .into_iter()
            .filter(|(name, _)| only.is_none_or(|prefix| name.starts_with(prefix)))
            .collect();
        let total_s = match only {
            Some(_) => threads.values().sum(),
            None => used.total_s,
        };
        CpuUse {
            total_s,
            answers,
            per_answer_us: per(total_s),
            threads_us: threads.into_iter().map(|(n, s)| (n, per(s))).collect(),
        }
    }

    /// One line: `server CPU per answer: 31.2 µs (shard-0 5.1, tokio-runtime-w 24.0)`.
    pub fn text(&self) -> String {
        let mut line = format!("  server CPU per answer: {:.1} µs", self.per_answer_us);
        let parts: Vec<String> = self
            .threads_us
            .iter()
            .filter(|(_, us)| **us >= 0.05)
            .map(|(name, us)| format!("{name} {us:.1}"))
            .collect();
        if !parts.is_empty() {
            let _ = write!(line, " ({})", parts.join(", "));
        }
        line.push('\n');
        line
    }
}

/// Reads the CPU of process `pid` (`None`: this process), if `/proc` has it.
pub fn read_cpu(pid: Option<u32>) -> Option<Cpu> {
    cpu(pid).ok()
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// The first field of a `/proc/loadavg` line.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(total_s: f64, threads: &[(&str, f64)]) -> Cpu {
        Cpu {
            total_s,
            threads: threads.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
        }
    }

    #[test]
    fn cpu_per_answer_is_split_by_thread_name() {
        let before = reading(1.0, &[("shard-0", 0.5), ("tokio-runtime-w", 0.5)]);
        let after = reading(3.0, &[("shard-0", 1.0), ("tokio-runtime-w", 2.0)]);
        let used = CpuUse::between(&before, &after, 100_000, None);
        assert!((used.per_answer_us - 20.0).abs() < 1e-9, "{used:?}");
        assert!((used.threads_us["shard-0"] - 5.0).abs() < 1e-9);
        assert!((used.threads_us["tokio-runtime-w"] - 15.0).abs() < 1e-9);
        assert!(used
            .text()
            .contains("20.0 µs (shard-0 5.0, tokio-runtime-w 15.0)"));
    }

    #[test]
    fn the_ceiling_counts_its_own_threads_only() {
        let before = reading(1.0, &[("ceiling-worker", 0.0), ("boxoffice-load", 1.0)]);
        let after = reading(4.0, &[("ceiling-worker", 1.0), ("boxoffice-load", 3.0)]);
        let used = CpuUse::between(&before, &after, 50_000, Some(CEILING_THREADS));
        assert!((used.total_s - 1.0).abs() < 1e-9);
        assert!((used.per_answer_us - 20.0).abs() < 1e-9);
        assert_eq!(used.threads_us.len(), 1);
    }

    #[test]
    fn the_load_average_is_the_first_field() {
        assert_eq!(parse_loadavg("4.52 3.10 2.00 3/512 4242\n"), Some(4.52));
        assert_eq!(parse_loadavg(""), None);
    }
}
