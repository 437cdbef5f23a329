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
    BALANCE_EVERY, ELECTION_TIMEOUT_MAX_MS, ELECTION_TIMEOUT_MIN_MS, HEARTBEAT_MS,
    LOG_KEPT_BEHIND_SNAPSHOT, PEER_PING_EVERY, PEER_SILENT_MAX, SNAPSHOT_EVERY_ENTRIES,
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
    /// When each peer last answered a ping.
    heard: Arc<parking_lot::Mutex<std::collections::HashMap<NodeId, std::time::Instant>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How a node runs; the defaults are production's.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// A delay before every replication RPC (tests only).
    pub rpc_delay: Option<Duration>,
}

/// The Raft settings of every group (timings from [`crate::limits`]).
pub fn raft_config() -> Config {
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
            let log =
                crate::log_store::LogStore::<crate::types::TypeConfig>::open(&dir.join("raft-log"))
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
        let heard = Arc::new(parking_lot::Mutex::new(std::collections::HashMap::new()));
        let tasks = vec![
            tokio::spawn(ping_peers(
                file.clone(),
                id,
                http.clone(),
                Arc::clone(&heard),
            )),
            tokio::spawn(balance_leaders(
                file.clone(),
                id,
                Arc::clone(&groups),
                Arc::clone(&heard),
            )),
        ];
        Ok(ClusterNode {
            id,
            file,
            groups,
            shards,
            http,
            heard,
            tasks,
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

    /// Whether the peer answered a ping on its replication address within
    /// [`PEER_SILENT_MAX`] (the node itself is always reachable).
    pub fn reachable(&self, peer: NodeId) -> bool {
        peer == self.id
            || self
                .heard
                .lock()
                .get(&peer)
                .is_some_and(|t| t.elapsed() < PEER_SILENT_MAX)
    }

    /// Stops every group.
    pub async fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        for raft in self.groups.iter() {
            let _ = raft.shutdown().await;
        }
    }
}

/// Pings every peer's replication address, recording when each last answered.
async fn ping_peers(
    file: ClusterFile,
    me: NodeId,
    http: reqwest::Client,
    heard: Arc<parking_lot::Mutex<std::collections::HashMap<NodeId, std::time::Instant>>>,
) {
    loop {
        for (id, node) in file.nodes.iter().filter(|(id, _)| *id != me) {
            let url = format!("http://{}/raft/ping", node.raft);
            let answered = http
                .get(&url)
                .timeout(PEER_PING_EVERY)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered {
                heard.lock().insert(*id, std::time::Instant::now());
            }
        }
        tokio::time::sleep(PEER_PING_EVERY).await;
    }
}

/// The node that should lead `shard` when it is up: shards are spread round the nodes in
/// id order, so the leaders of a cluster's shards sit on different nodes.
pub fn preferred_leader(file: &ClusterFile, shard: usize) -> NodeId {
    file.nodes[shard % file.nodes.len()].0
}

/// Hands the leadership of each shard this node leads to its preferred node once that
/// node is reachable and has applied as far as this one (a transfer, not an election: no
/// write is lost, writes pause for about one round trip).
async fn balance_leaders(
    file: ClusterFile,
    me: NodeId,
    groups: Arc<Vec<Raft>>,
    heard: Arc<parking_lot::Mutex<std::collections::HashMap<NodeId, std::time::Instant>>>,
) {
    loop {
        tokio::time::sleep(BALANCE_EVERY).await;
        for (shard, raft) in groups.iter().enumerate() {
            let want = preferred_leader(&file, shard);
            if want == me {
                continue;
            }
            let caught_up = {
                let metrics = raft.metrics();
                let m = metrics.borrow_watched();
                if m.current_leader != Some(me) {
                    continue;
                }
                let applied = m.last_applied.as_ref().map_or(0, |id| id.index);
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&want))
                    .and_then(|matched| matched.as_ref())
                    .is_some_and(|id| id.index >= applied)
            };
            let up = heard
                .lock()
                .get(&want)
                .is_some_and(|t| t.elapsed() < PEER_SILENT_MAX);
            if caught_up && up {
                tracing::info!(
                    shard,
                    to = want,
                    "handing the shard's leadership to its preferred node"
                );
                let _ = raft.trigger().transfer_leader(want).await;
            }
        }
    }
}
