//! Cluster mode: every shard of boxoffice is one Raft group (openraft) of three voters.
//!
//! Every openraft type stays inside this crate. The log holds decisions, not commands: the
//! shard leader decides as in single-node mode and one batch of decisions is one log entry;
//! followers only apply. The single-node server never starts any of this.

pub mod log_store;
pub mod types;
