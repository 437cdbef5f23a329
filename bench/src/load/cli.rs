//! The command line of `boxoffice-load`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::client::AuthMode;
use super::workload::{Action, WorkloadKind, DEFAULT_SEED};

/// Drives boxoffice's HTTP API like a crowd at a sale opening, verifies what it bought, and
/// reports throughput and latency, optionally next to a no-op ceiling measured in the same run.
#[derive(Debug, Clone, Parser)]
#[command(name = "boxoffice-load", version)]
pub struct Args {
    /// What the crowd does.
    #[arg(long, short = 'w', value_enum, default_value_t = WorkloadKind::HotSection)]
    pub workload: WorkloadKind,
    /// The server, e.g. http://127.0.0.1:8080 (loopback only). Give this or --spawn.
    #[arg(long, env = "BOXOFFICE_URL", conflicts_with = "spawn")]
    pub url: Option<String>,
    /// Start this `boxoffice` binary on 127.0.0.1 port 0 in a temporary data directory
    /// with generated tokens, run against it, and stop it.
    #[arg(long, value_name = "PATH")]
    pub spawn: Option<PathBuf>,
    /// Shards of the spawned server.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// The admin token (creates the events; acts for users with --auth admin).
    #[arg(long, env = "BOXOFFICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The JWT secret, to mint user tokens with --auth user.
    #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// admin: the admin token with `user_id` in the bodies; user: a minted token per user.
    #[arg(long, value_enum, default_value_t = AuthMode::Admin)]
    pub auth: AuthMode,
    /// Send a fresh `Idempotency-Key` with every POST and DELETE, as a careful client
    /// does (the server then remembers every answer, refusals included).
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Concurrent connections (one task each, HTTP/1.1 keep-alive).
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Open loop: requests per second in all, spread evenly over the connections; latency
    /// counts from the intended send time. Without it, a closed loop.
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,
    /// Measured time (e.g. 10s, 500ms, 2m); with --requests, the cap on time.
    #[arg(long, short = 'd', value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Measured requests (after the warm-up) instead of a duration.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Warm-up before measuring (its requests are sent and verified, not reported).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Seed of the workload's random choices.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// hot-section, seat-map, sellout: hold, or purchase at once [default: hold; sellout: purchase].
    #[arg(long, value_enum)]
    pub action: Option<Action>,
    /// hot-section: tickets per request.
    #[arg(long, default_value_t = 1)]
    pub qty: u32,
    /// Distinct users (hot-section, seat-map, lifecycle).
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// hot-section and lifecycle: capacity of each GA section.
    #[arg(long, default_value_t = 10_000_000)]
    pub capacity: u32,
    /// seat-map: seats of the event (rows of 500).
    #[arg(long, default_value_t = 100_000)]
    pub seats: u32,
    /// sellout: buyers, each trying once for one ticket.
    #[arg(long, default_value_t = 20)]
    pub buyers: u64,
    /// sellout and waitlist: tickets on sale.
    #[arg(long, default_value_t = 5)]
    pub tickets: u32,
    /// First run the identical workload against an in-process no-op axum server and
    /// print boxoffice's throughput and p99 as ratios of it.
    #[arg(long)]
    pub ceiling: bool,
    /// Only the ceiling run (no server needed): measures this machine's HTTP floor.
    #[arg(long, conflicts_with_all = ["url", "spawn"])]
    pub ceiling_only: bool,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write load-<workload>-latency.svg and load-<workload>-throughput.svg to this directory.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Longest wait for one answer.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Prefix of the ids of the events this run creates [default: load<unix ms>].
    #[arg(long)]
    pub event_prefix: Option<String>,
    /// Before the run (and its warm-up), place this many long-lived holds (TTL 24 h) in an
    /// event of their own, as fast as the connections go, so that the run measures a
    /// server carrying a big sale (its snapshots at that size). Not sent to the ceiling.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub live_holds: u64,
    /// The server's process id (with --url), to report its resident memory; a spawned
    /// server's is known.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Threads of the generator's runtime [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar (there is none anyway when stderr is not a terminal).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 10s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` in `{text}` (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
