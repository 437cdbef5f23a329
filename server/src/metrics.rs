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
];

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
