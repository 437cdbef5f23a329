//! The type configuration shared by every Raft group of a cluster.

use serde::{Deserialize, Serialize};

/// A node of the cluster, as the cluster file numbers it (1, 2, 3).
pub type NodeId = u64;

/// One log entry's application payload: the encoded decisions of one shard batch, exactly
/// the records the single-node log holds (`engine::Decision` encodings, in order). An empty
/// batch is allowed (openraft's blank entries carry no payload of ours).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Every decision of the batch, each encoded as the single-node log encodes it.
    pub decisions: Vec<Vec<u8>>,
}

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch of {} decisions", self.decisions.len())
    }
}

/// What applying a batch answers the proposer: the log index it was applied at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The log index of the applied entry.
    pub index: u64,
}

/// A node's addresses, as the cluster file gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The API, as clients reach it (`host:port`).
    pub http: String,
    /// Replication traffic between nodes (`host:port`).
    pub raft: String,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{http: {}, raft: {}}}", self.http, self.raft)
    }
}

openraft::declare_raft_types!(
    /// boxoffice's Raft types: decisions batches in, their log index out.
    pub TypeConfig:
        D = Batch,
        R = Applied,
        NodeId = NodeId,
        Node = Node,
);
