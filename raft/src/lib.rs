//! Cluster mode: every shard of boxoffice is one Raft group (openraft) of three voters.
//!
//! Every openraft type stays inside this crate. The log holds decisions, not commands: the
//! shard leader decides as in single-node mode and one batch of decisions is one log entry;
//! followers only apply. The single-node server never starts any of this.
#![warn(clippy::too_many_lines)]

pub mod cluster_file;
pub mod group;
pub mod limits;
pub mod log_store;
mod network;
pub mod node;
pub mod state_machine;
pub mod types;

pub use cluster_file::{ClusterFile, ClusterFileError};
pub use group::{Group, LeaderToken, Leadership, Pending, ProposeError};
pub use node::{ClusterNode, NodeOptions, StartError};
pub use types::NodeId;

/// One shard's Raft instance.
pub type Raft = openraft::Raft<types::TypeConfig, state_machine::StateMachine>;
