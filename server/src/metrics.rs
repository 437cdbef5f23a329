//! The Prometheus exporter: one recorder per process, rendered by `GET /metrics`, and
//! the list of every metric family with its type, unit and HELP text ([`FAMILIES`]).
//! `docs/operations.md` lists the same families with the question each answers.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution in buckets.
    Histogram,
}

/// One metric family: the name as exported, its type, its unit, its HELP text.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Exported name; the unit is in it (`_seconds`, `_bytes`; counters end in `_total`).
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its unit (`Count` for plain numbers of things).
    pub unit: Unit,
    /// The HELP line.
    pub help: &'static str,
    /// Its labels.
    pub labels: &'static [&'static str],
}

const fn family(
    name: &'static str,
    kind: Kind,
    unit: Unit,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    Family {
        name,
        kind,
        unit,
        help,
        labels,
    }
}

/// Every metric family the server exports (some appear only once they have a value).
pub const FAMILIES: &[Family] = &[
    family("boxoffice_http_requests_total", Kind::Counter, Unit::Count, &["method", "route", "status"],
        "HTTP requests answered, by method, matched route and status code."),
    family("boxoffice_http_request_duration_seconds", Kind::Histogram, Unit::Seconds, &["method", "route"],
        "Time from a request's arrival to its answer, by method and matched route."),
    family("boxoffice_rejections_total", Kind::Counter, Unit::Count, &["code"],
        "Requests refused by a business rule or a limit, by error code (sold_out, seat_taken, ...)."),
    family("boxoffice_overload_refusals_total", Kind::Counter, Unit::Count, &[],
        "Requests answered 503 overloaded because their shard's queue was full."),
    family("boxoffice_connections_refused_total", Kind::Counter, Unit::Count, &[],
        "Connections answered 503 at once because --connections-max were open."),
    family("boxoffice_decisions_total", Kind::Counter, Unit::Count, &["shard"],
        "Decisions made durable in the shard's log (holds, purchases, confirms, releases, expiries, cancels, events)."),
    family("boxoffice_holds_placed_total", Kind::Counter, Unit::Count, &["shard"],
        "Holds placed."),
    family("boxoffice_holds_confirmed_total", Kind::Counter, Unit::Count, &["shard"],
        "Holds confirmed into bookings."),
    family("boxoffice_holds_released_total", Kind::Counter, Unit::Count, &["shard"],
        "Holds released by their owner before expiry."),
    family("boxoffice_holds_expired_total", Kind::Counter, Unit::Count, &["shard"],
        "Holds whose time ran out (their tickets returned to sale)."),
    family("boxoffice_holds_live", Kind::Gauge, Unit::Count, &["shard"],
        "Holds placed and neither confirmed, released nor expired."),
    family("boxoffice_tickets_sold", Kind::Gauge, Unit::Count, &["shard"],
        "Tickets in confirmed bookings."),
    family("boxoffice_tickets_held", Kind::Gauge, Unit::Count, &["shard"],
        "Tickets in live holds."),
    family("boxoffice_sections_sold_out", Kind::Gauge, Unit::Count, &["shard"],
        "Sections with no ticket available."),
    family("boxoffice_shard_queue_depth", Kind::Gauge, Unit::Count, &["shard"],
        "Requests waiting in the shard's queue."),
    family("boxoffice_shard_batch_size", Kind::Histogram, Unit::Count, &["shard"],
        "Decisions written per log write (one write and one fdatasync each, for every batch queued since the last)."),
    family("boxoffice_log_batches_in_flight", Kind::Gauge, Unit::Count, &["shard"],
        "Batches the shard has decided whose answers wait for their log write and fdatasync (at most LOG_PIPELINE_DEPTH)."),
    family("boxoffice_shard_loop_gap_seconds", Kind::Gauge, Unit::Seconds, &["shard"],
        "Longest time, since the previous scrape, from one batch's answers to the start of the next while requests were queued (reset by each scrape: one scraper only)."),
    family("boxoffice_wal_fsync_seconds", Kind::Histogram, Unit::Seconds, &["shard"],
        "Time of each log batch's fdatasync."),
    family("boxoffice_wal_unsynced_age_seconds", Kind::Gauge, Unit::Seconds, &["shard"],
        "Age of the oldest batch written but not yet synced (0 when none waits)."),
    family("boxoffice_wal_failures_total", Kind::Counter, Unit::Count, &[],
        "Log writes or syncs that failed; the shard then refuses writes (503)."),
    family("boxoffice_wal_torn_tails_total", Kind::Counter, Unit::Count, &[],
        "Torn records cut from the end of a log at start-up (a crash mid-write)."),
    family("boxoffice_purchases_total", Kind::Counter, Unit::Count, &["shard"],
        "Purchases (hold and confirm as one decision) made durable."),
    family("boxoffice_bookings_cancelled_total", Kind::Counter, Unit::Count, &["shard"],
        "Bookings cancelled (their tickets returned to sale)."),
    family("boxoffice_outcome_unknown_total", Kind::Counter, Unit::Count, &[],
        "Commands answered 503 outcome_unknown: queued to a shard that did not answer within --outcome-wait, or (cluster mode) written by a leader that lost its leadership before the commit."),
    family("boxoffice_cluster_entries_total", Kind::Counter, Unit::Count, &[],
        "Cluster mode: log entries this node committed as a shard leader (one per batch with decisions)."),
    family("boxoffice_cluster_decisions_total", Kind::Counter, Unit::Count, &[],
        "Cluster mode: decisions this node committed as a shard leader (divided by the entries: decisions per entry)."),
    family("boxoffice_cluster_forwarded_total", Kind::Counter, Unit::Count, &[],
        "Cluster mode: requests this node forwarded to the leader of their shard."),
    family("boxoffice_clock_behind_episodes_total", Kind::Counter, Unit::Count, &["shard"],
        "Times the wall clock was found more than 1 s behind the log's newest decision (engine time then advances by the monotonic clock)."),
    family("boxoffice_wal_full_total", Kind::Counter, Unit::Count, &["shard"],
        "Times the shard's log found no space (ENOSPC, EFBIG); writes are refused until a probe finds room."),
    family("boxoffice_stream_clients", Kind::Gauge, Unit::Count, &[],
        "Clients connected to live-availability streams."),
    family("boxoffice_stream_messages_total", Kind::Counter, Unit::Count, &[],
        "Stream messages (snapshots and changes) queued to clients."),
    family("boxoffice_stream_drops_total", Kind::Counter, Unit::Count, &[],
        "Stream clients disconnected because they fell behind (their queue was full)."),
    family("boxoffice_follower_resyncs_total", Kind::Counter, Unit::Count, &["shard"],
        "Times a shard's follower (the copy of its state fed each durable batch) restarted from a fresh copy."),
    family("boxoffice_follower_catch_ups_total", Kind::Counter, Unit::Count, &["shard"],
        "Times a shard's follower, behind by batches it was not sent (its queue was full), read them from the log's files."),
    family("boxoffice_follower_caught_up_records_total", Kind::Counter, Unit::Count, &["shard"],
        "Decisions a shard's follower read from the log's files instead of being sent them."),
];

/// The HTTP request series (`boxoffice_http_request_duration_seconds{method, route}`,
/// `boxoffice_http_requests_total{method, route, status}`), their handles made once per
/// label set and kept: the recorder's own lookup by labels builds the labels, hashes and
/// compares the key and clones it on every request. Only the standard methods are kept
/// (another method's series is looked up each time), so what is kept is bounded by the
/// routes × 9 methods × the statuses answered.
#[derive(Default)]
pub struct HttpSeries {
    routes: parking_lot::RwLock<std::collections::HashMap<String, Vec<MethodSeries>>>,
}

struct MethodSeries {
    method: &'static str,
    duration: metrics::Histogram,
    requests: Vec<(u16, metrics::Counter)>,
}

/// The standard methods, whose series [`HttpSeries`] keeps.
const METHODS: [&str; 9] = [
    "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

impl HttpSeries {
    /// Records one answered request: its latency and its count by status.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: std::time::Duration) {
        let Some(method) = METHODS.iter().copied().find(|m| *m == method) else {
            record_unkept(method, route, status, elapsed);
            return;
        };
        {
            let routes = self.routes.read();
            let series = routes
                .get(route)
                .and_then(|list| list.iter().find(|s| s.method == method));
            if let Some(series) = series {
                if let Some((_, counter)) = series.requests.iter().find(|(s, _)| *s == status) {
                    series.duration.record(elapsed.as_secs_f64());
                    counter.increment(1);
                    return;
                }
            }
        }
        let mut routes = self.routes.write();
        let list = routes.entry(route.to_string()).or_default();
        let at = match list.iter().position(|s| s.method == method) {
            Some(at) => at,
            None => {
                list.push(MethodSeries {
                    method,
                    duration: metrics::histogram!(
                        "boxoffice_http_request_duration_seconds",
                        "method" => method,
                        "route" => route.to_string()
                    ),
                    requests: Vec::new(),
                });
                list.len() - 1
            }
        };
        let series = &mut list[at];
        if !series.requests.iter().any(|(s, _)| *s == status) {
            let counter = metrics::counter!(
                "boxoffice_http_requests_total",
                "method" => method,
                "route" => route.to_string(),
                "status" => status.to_string()
            );
            series.requests.push((status, counter));
        }
        series.duration.record(elapsed.as_secs_f64());
        if let Some((_, counter)) = series.requests.iter().find(|(s, _)| *s == status) {
            counter.increment(1);
        }
    }
}

/// A shard's counters of decisions made durable (committed, in cluster mode), by kind:
/// `boxoffice_decisions_total` and the holds, purchases and cancellations families.
pub struct DecisionCounters {
    decisions: metrics::Counter,
    by_kind: [metrics::Counter; 6],
}

impl DecisionCounters {
    /// The counters of shard `shard` (the recorder must be installed first).
    pub fn new(shard: u16) -> Self {
        let shard = shard.to_string();
        let counter = |name: &'static str| metrics::counter!(name, "shard" => shard.clone());
        DecisionCounters {
            decisions: counter("boxoffice_decisions_total"),
            by_kind: [
                counter("boxoffice_holds_placed_total"),
                counter("boxoffice_holds_confirmed_total"),
                counter("boxoffice_holds_released_total"),
                counter("boxoffice_holds_expired_total"),
                counter("boxoffice_purchases_total"),
                counter("boxoffice_bookings_cancelled_total"),
            ],
        }
    }

    /// Counts `decisions` durable decisions, `tally` of them by kind.
    pub fn count(&self, decisions: usize, tally: &engine::Tally) {
        self.decisions.increment(decisions as u64);
        let kinds = [
            tally.placed,
            tally.confirmed,
            tally.released,
            tally.expired,
            tally.purchased,
            tally.cancelled,
        ];
        for (counter, n) in self.by_kind.iter().zip(kinds) {
            if n > 0 {
                counter.increment(n);
            }
        }
    }
}

/// [`HttpSeries::record`] for a method whose series are not kept.
fn record_unkept(method: &str, route: &str, status: u16, elapsed: std::time::Duration) {
    metrics::histogram!(
        "boxoffice_http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route.to_string()
    )
    .record(elapsed.as_secs_f64());
    metrics::counter!(
        "boxoffice_http_requests_total",
        "method" => method.to_string(),
        "route" => route.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// Gives every family its HELP text and unit (the recorder must be installed).
fn describe() {
    for f in FAMILIES {
        match f.kind {
            Kind::Counter => metrics::describe_counter!(f.name, f.unit, f.help),
            Kind::Gauge => metrics::describe_gauge!(f.name, f.unit, f.help),
            Kind::Histogram => metrics::describe_histogram!(f.name, f.unit, f.help),
        }
    }
}

/// Latency buckets (seconds): 50 µs to 10 s, dense where a sale's answers land.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// Batch-size buckets (decisions per fdatasync).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
];

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH_BUCKETS)
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_unit_and_type() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FAMILIES {
            assert!(seen.insert(f.name), "{} twice", f.name);
            assert!(f.name.starts_with("boxoffice_"), "{}", f.name);
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
            let suffix = match f.unit {
                Unit::Seconds => Some("_seconds"),
                Unit::Bytes => Some("_bytes"),
                _ => None,
            };
            if let Some(suffix) = suffix {
                assert!(f.name.ends_with(suffix), "{} is in {suffix}", f.name);
            }
            assert!(!f.help.is_empty(), "{}", f.name);
        }
    }

    #[test]
    fn http_series_are_kept_once_per_label_set_and_count_every_request() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let series = HttpSeries::default();
            let ms = std::time::Duration::from_millis(1);
            for _ in 0..3 {
                series.record("POST", "/v1/events/{event_id}/holds", 201, ms);
            }
            series.record("POST", "/v1/events/{event_id}/holds", 409, ms);
            series.record("GET", "/health", 200, ms);
            series.record("BREW", "unmatched", 404, ms);
            series.record("BREW", "unmatched", 404, ms);
            assert_eq!(
                series.routes.read().len(),
                2,
                "the unknown method is not kept"
            );
        });
        let page = handle.render();
        for line in [
            r#"boxoffice_http_requests_total{method="POST",route="/v1/events/{event_id}/holds",status="201"} 3"#,
            r#"boxoffice_http_requests_total{method="POST",route="/v1/events/{event_id}/holds",status="409"} 1"#,
            r#"boxoffice_http_requests_total{method="GET",route="/health",status="200"} 1"#,
            r#"boxoffice_http_requests_total{method="BREW",route="unmatched",status="404"} 2"#,
            r#"boxoffice_http_request_duration_seconds_count{method="POST",route="/v1/events/{event_id}/holds"} 4"#,
        ] {
            assert!(page.contains(line), "{line} not in\n{page}");
        }
    }

    #[test]
    fn every_family_is_in_the_operations_guide() {
        let guide = include_str!("../../docs/operations.md");
        for f in FAMILIES {
            assert!(
                guide.contains(&format!("`{}`", f.name)),
                "docs/operations.md does not list {}",
                f.name
            );
        }
    }
}
