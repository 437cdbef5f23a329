//! # boxoffice server
//!
//! The runtime and HTTP front end of boxoffice. It owns everything the engine and the log
//! may not: sockets, threads, the clock, file locations, secrets.
//!
//! A request's life: an axum handler validates the input and turns it into an
//! [`engine::Command`], then `try_send`s it to the owning shard's bounded queue (full:
//! 503 with `Retry-After`). The shard thread ([`shard`]) takes a batch of requests, reads
//! the clock once, decides and applies each command, appends the decisions to its
//! write-ahead log with one write and one fdatasync, and only then answers every request
//! of the batch. Events live on the shard chosen by a stable hash of their id; every hold
//! and booking id carries its shard, so any request routes without a lookup.
//!
//! What the server does not know: the business rules (they are the engine's) and the
//! bytes on disk (they are the log's).
#![warn(clippy::too_many_lines)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod core;
pub mod datadir;
pub mod follower;
pub mod limits;
pub mod metrics;
pub mod page;
pub mod priority;
pub mod routing;
pub mod serve;
pub mod shard;
pub mod shard_status;
pub mod snapshotter;
pub mod stream;
pub mod testhooks;
pub mod walcmd;

pub use serve::{run, run_cluster, run_with, ClusterSetup, Config, RunError, Running};

/// Reads and checks a cluster file (`serve --cluster FILE`).
pub fn raft_file(path: &std::path::Path) -> Result<raft::ClusterFile, String> {
    raft::ClusterFile::load(path, limits::SHARDS_MAX as u16).map_err(|e| e.to_string())
}
