//! Every limit and timing of cluster mode, in one place.

use std::time::Duration;

/// Nodes in a cluster: three voters per shard group (static membership).
pub const CLUSTER_NODES: usize = 3;
/// The largest replication request body (a snapshot travels in one request).
pub const RAFT_BODY_BYTES_MAX: usize = 1 << 30;
/// How long a connection to a peer may take to open.
pub const RAFT_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Openraft's heartbeat interval (ms).
pub const HEARTBEAT_MS: u64 = 60;
/// Openraft's election timeout range (ms): a leader silent this long is replaced.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 250;
/// See [`ELECTION_TIMEOUT_MIN_MS`].
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 500;
/// A snapshot is built after this many log entries (each entry is one batch).
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 20_000;
/// Entries kept in the log behind a snapshot, for lagging followers.
pub const LOG_KEPT_BEHIND_SNAPSHOT: u64 = 2_000;
/// Cluster snapshot files kept per shard.
pub const SNAPSHOTS_KEPT: usize = 2;
/// How long a new leader waits for its term's first entry to be applied before serving.
pub const LEADER_READY_WAIT: Duration = Duration::from_secs(3);
/// How long a proposal or a read barrier may wait for its quorum.
pub const QUORUM_WAIT: Duration = Duration::from_secs(5);
/// How often a node pings its peers (for `GET /v1/cluster`'s `reachable`).
pub const PEER_PING_EVERY: Duration = Duration::from_millis(500);
/// A peer that has not answered a ping for this long is shown unreachable.
pub const PEER_SILENT_MAX: Duration = Duration::from_secs(2);
/// How often a leader checks whether its shard's preferred node can take over.
pub const BALANCE_EVERY: Duration = Duration::from_secs(2);
/// Idle keep-alive connections a node keeps per peer (replication and forwarded requests
/// share them; forwarding under load needs about one per concurrent request).
pub const RAFT_IDLE_CONNECTIONS_MAX: usize = 512;
