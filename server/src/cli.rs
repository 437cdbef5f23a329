//! The command line: `boxoffice serve | token | wal verify | wal dump`. Every flag also
//! reads a `BOXOFFICE_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// boxoffice: a ticket reservation engine that never sells a seat twice.
#[derive(Debug, Parser)]
#[command(name = "boxoffice", version, about)]
pub struct Cli {
    /// Log format (the level comes from RUST_LOG, default `info`).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Recover from the data directory (creating it on first start), then serve HTTP.
    Serve(ServeArgs),
    /// Print a user token (HS256 JWT) signed with the server's secret.
    Token(TokenArgs),
    /// Inspect the write-ahead logs.
    Wal {
        /// verify or dump.
        #[command(subcommand)]
        command: WalCommand,
    },
}

/// `boxoffice serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "BOXOFFICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data directory.
    #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Shard count, fixed when the data directory is created (default: one per core, ≤ 8).
    #[arg(long, env = "BOXOFFICE_SHARDS")]
    pub shards: Option<usize>,
    /// Admin token (default: generated into DATA_DIR/admin_token).
    #[arg(long, env = "BOXOFFICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// HMAC key of user tokens (default: generated into DATA_DIR/jwt_secret).
    #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Connections served at once; past it a connection gets 503 and is closed.
    #[arg(long, env = "BOXOFFICE_CONNECTIONS_MAX", default_value_t = crate::limits::CONNECTIONS_MAX)]
    pub connections_max: usize,
    /// Requests queued per shard; past it a request gets 503 `overloaded` at once.
    #[arg(long, env = "BOXOFFICE_SHARD_QUEUE", default_value_t = crate::limits::SHARD_QUEUE_CAPACITY)]
    pub shard_queue: usize,
    /// KiB of zeros each shard's log reserves ahead of its records at a time, so that a
    /// group commit's fdatasync need not write the inode too; 0 turns it off.
    #[arg(long, env = "BOXOFFICE_WAL_PREALLOCATE_KIB", default_value_t = crate::limits::WAL_PREALLOCATE_BYTES / 1024)]
    pub wal_preallocate_kib: u64,
    /// Tokio worker threads (default: one per core).
    #[arg(long, env = "BOXOFFICE_WORKERS")]
    pub workers: Option<usize>,
    /// A browser origin (`https://tickets.example.com`, or `*` for any) whose pages may call
    /// the API (CORS); repeat the flag, or separate origins with commas in the environment
    /// variable. Default: none (no CORS headers; preflights are refused with 403).
    #[arg(long = "cors-origin", env = "BOXOFFICE_CORS_ORIGIN", value_delimiter = ',',
        value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Longest wait for a queued command's outcome; past it the answer is 503
    /// `outcome_unknown` (retry with the same Idempotency-Key), e.g. `10s`, `1m`.
    #[arg(long, env = "BOXOFFICE_OUTCOME_WAIT", default_value = "10s", value_parser = parse_outcome_wait)]
    pub outcome_wait: Duration,
    /// Run as a node of a cluster described by this TOML file (the same on every node):
    /// every shard replicated on its three nodes. The node listens on its own `http` and
    /// `raft` addresses from the file (`--listen` and `--shards` are not used).
    #[arg(long, env = "BOXOFFICE_CLUSTER", requires = "node_id")]
    pub cluster: Option<PathBuf>,
    /// This node's id in the cluster file.
    #[arg(long, env = "BOXOFFICE_NODE_ID", requires = "cluster")]
    pub node_id: Option<u64>,
}

/// Parses a CORS origin: `*`, or `http(s)://host[:port]` with no path (browsers send the
/// origin that way, and it is compared exactly).
pub fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text == "*" {
        return Ok(text.to_string());
    }
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) =>
        {
            Ok(text.to_ascii_lowercase())
        }
        _ => Err(format!(
            "`{text}`: an origin is `*` or scheme://host[:port] with no path, like \
             https://tickets.example.com"
        )),
    }
}

/// Parses the outcome wait: a duration from 1 s to 1 h.
fn parse_outcome_wait(text: &str) -> Result<Duration, String> {
    let wait = parse_duration(text)?;
    if wait > Duration::from_secs(3600) {
        return Err(format!("`{text}`: from 1s to 1h"));
    }
    Ok(wait)
}

/// `boxoffice token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id (the token's `sub`).
    #[arg(long, env = "BOXOFFICE_USER")]
    pub user: String,
    /// Data directory whose `jwt_secret` signs the token.
    #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Lifetime, e.g. `30m`, `1h`, `7d`.
    #[arg(long, env = "BOXOFFICE_TOKEN_TTL", default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// HMAC key (default: DATA_DIR/jwt_secret).
    #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// `boxoffice wal ...`.
#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Check every record and snapshot; exit non-zero on corruption, naming file and offset.
    Verify {
        /// Data directory.
        #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Print every snapshot and decision, one JSON object per line.
    Dump {
        /// Data directory.
        #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

/// Parses `90s`, `15m`, `1h`, `7d` (or plain seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30m or 1h"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{text}`: unit must be s, m, h or d")),
    };
    if seconds == 0 || Duration::from_secs(seconds) > crate::limits::TOKEN_TTL_MAX {
        return Err(format!("`{text}`: from 1s to 366d"));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn origins_are_scheme_and_host_only() {
        assert_eq!(
            parse_origin("https://a.example:8443").unwrap(),
            "https://a.example:8443"
        );
        assert_eq!(parse_origin("*").unwrap(), "*");
        assert!(parse_origin("https://a.example/").is_err());
        assert!(parse_origin("a.example").is_err());
        assert!(parse_origin("https://").is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
