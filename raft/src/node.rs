//! A node of the cluster: one Raft group per shard, the replication server, and the
//! one-time set-up of each group's membership from the cluster file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{Config, SnapshotPolicy};

use crate::cluster_file::ClusterFile;
use crate::group::Group;
use crate::limits::{
    ELECTION_TIMEOUT_MAX_MS, ELECTION_TIMEOUT_MIN_MS, HEARTBEAT_MS, LOG_KEPT_BEHIND_SNAPSHOT,
    SNAPSHOT_EVERY_ENTRIES,
};
use crate::network::{self, Network};
use crate::state_machine::StateMachine;
use crate::types::NodeId;
use crate::Raft;

/// Why a node could not start, in words.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The node id is not in the cluster file.
    #[error("node {0} is not in the cluster file")]
    UnknownNode(NodeId),
    /// A shard's log or snapshots cannot be opened.
    #[error("shard {shard}: {message}")]
    Storage {
        /// The shard.
        shard: u16,
        /// What is wrong.
        message: String,
    },
    /// The replication address cannot be bound.
    #[error("cannot listen for replication on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Openraft refused to start.
    #[error("shard {shard}: the consensus group did not start: {message}")]
    Raft {
        /// The shard.
        shard: u16,
        /// Why.
        message: String,
    },
}

/// A running node.
pub struct ClusterNode {
    id: NodeId,
    file: ClusterFile,
    groups: Arc<Vec<Raft>>,
    shards: Vec<Group>,
    http: reqwest::Client,
}

/// How a node runs; the defaults are production's.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// A delay before every replication RPC (tests only).
    pub rpc_delay: Option<Duration>,
}

fn raft_config() -> Config {
    Config {
        cluster_name: "boxoffice".into(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: LOG_KEPT_BEHIND_SNAPSHOT,
        enable_pre_vote: Some(true),
        ..Default::default()
    }
}

impl ClusterNode {
    /// Opens every shard's log and state under `data_dir/shard-<n>/`, starts their groups
    /// and the replication server on this node's `raft` address, and sets up each group's
    /// membership (all nodes of the file, voters) if it has none yet.
    pub async fn start(
        file: ClusterFile,
        id: NodeId,
        data_dir: &Path,
        options: NodeOptions,
    ) -> Result<Self, StartError> {
        let me = file.node(id).ok_or(StartError::UnknownNode(id))?.clone();
        let config = Arc::new(raft_config().validate().map_err(|e| StartError::Raft {
            shard: 0,
            message: e.to_string(),
        })?);
        let http = network::http_client();
        let mut rafts = Vec::new();
        let mut shards = Vec::new();
        for shard in 0..file.shards {
            let dir = data_dir.join(format!("shard-{shard}"));
            let storage = |message: String| StartError::Storage { shard, message };
            let sm = StateMachine::open(shard, &dir.join("snapshots"))
                .map_err(|e| storage(format!("snapshots: {e}")))?;
            let log = crate::log_store::open(&dir.join("raft-log"))
                .map_err(|e| storage(format!("log: {e}")))?;
            let network = Network::new(shard, http.clone(), options.rpc_delay);
            let raft = Raft::new(id, Arc::clone(&config), network, log, sm.clone())
                .await
                .map_err(|e| StartError::Raft {
                    shard,
                    message: e.to_string(),
                })?;
            rafts.push(raft.clone());
            shards.push(Group::new(shard, id, raft, sm));
        }
        let groups = Arc::new(rafts);
        let listener = tokio::net::TcpListener::bind(&me.raft)
            .await
            .map_err(|source| StartError::Bind {
                addr: me.raft.clone(),
                source,
            })?;
        let router = network::router(Arc::clone(&groups));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the replication server stopped");
            }
        });
        let members: std::collections::BTreeMap<_, _> = file.nodes.iter().cloned().collect();
        for (shard, raft) in groups.iter().enumerate() {
            // Every node proposes the same membership: openraft elects one leader.
            if !raft.is_initialized().await.unwrap_or(true) {
                match raft.initialize(members.clone()).await {
                    Ok(()) => {
                        tracing::info!(shard, "shard group set up with the cluster file's nodes")
                    }
                    Err(e) => tracing::debug!(shard, error = %e, "group set-up skipped"),
                }
            }
        }
        Ok(ClusterNode {
            id,
            file,
            groups,
            shards,
            http,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The cluster file.
    pub fn file(&self) -> &ClusterFile {
        &self.file
    }

    /// Shard `shard`'s group.
    pub fn group(&self, shard: usize) -> &Group {
        &self.shards[shard]
    }

    /// Every shard's group.
    pub fn groups(&self) -> &[Group] {
        &self.shards
    }

    /// The HTTP client the node uses for its peers (replication and forwarding).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether the peer answered a replication heartbeat lately, as this node's groups see it
    /// (the node itself is always reachable).
    pub fn reachable(&self, peer: NodeId) -> bool {
        if peer == self.id {
            return true;
        }
        self.shards.iter().any(|g| {
            let metrics = g.raft().metrics();
            let m = metrics.borrow_watched();
            if m.current_leader == Some(peer) {
                return true;
            }
            m.heartbeat
                .as_ref()
                .and_then(|h| h.get(&peer))
                .is_some_and(|t| t.is_some())
        })
    }

    /// Stops every group.
    pub async fn shutdown(&self) {
        for raft in self.groups.iter() {
            let _ = raft.shutdown().await;
        }
    }
}
