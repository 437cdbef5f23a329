//! The simulation's in-memory network: every RPC calls the target node's `Raft` directly,
//! through a fabric that can cut links (one way or both), drop requests or responses and
//! delay them (which reorders messages), all decided by the seed's RNG.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use parking_lot::Mutex;
use raft::types::{Node, NodeId, TypeConfig};
use raft::Raft;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How bad the network is for every message (changed by the fault schedule).
#[derive(Debug, Default, Clone, Copy)]
pub struct Weather {
    /// Each request, and each response, is lost with this probability (per mille).
    pub drop_per_mille: u32,
    /// Each request and each response waits up to this long (uniform), so messages overtake
    /// each other.
    pub delay_max_ms: u64,
}

/// What the fabric did, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    /// RPCs attempted.
    pub sent: u64,
    /// Requests or responses lost (dropped, or over a cut link).
    pub lost: u64,
    /// Snapshots installed on a follower by the leader.
    pub snapshots: u64,
}

struct Inner {
    rng: StdRng,
    live: BTreeMap<(u16, NodeId), Raft>,
    /// Cut links, `(from, to)`: nothing from `from` reaches `to` (every shard).
    cut: BTreeSet<(NodeId, NodeId)>,
    weather: Weather,
    traffic: Traffic,
}

/// The network every simulated node's groups share.
pub struct Fabric {
    inner: Mutex<Inner>,
}

/// What happens to one RPC, decided when it is sent.
struct Plan {
    delay: Duration,
    back_delay: Duration,
    drop_request: bool,
    drop_response: bool,
}

impl Fabric {
    /// A healthy network; its own RNG is seeded from the scenario's.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Fabric {
            inner: Mutex::new(Inner {
                rng: StdRng::seed_from_u64(seed),
                live: BTreeMap::new(),
                cut: BTreeSet::new(),
                weather: Weather::default(),
                traffic: Traffic::default(),
            }),
        })
    }

    /// Makes `raft` reachable as node `id` of `shard`'s group.
    pub fn register(&self, shard: u16, id: NodeId, raft: Raft) {
        self.inner.lock().live.insert((shard, id), raft);
    }

    /// Makes node `id` of `shard`'s group unreachable (it crashed).
    pub fn unregister(&self, shard: u16, id: NodeId) {
        self.inner.lock().live.remove(&(shard, id));
    }

    /// Cuts the link from `from` to `to` (one way).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.inner.lock().cut.insert((from, to));
    }

    /// Cuts every link into and out of `node`.
    pub fn isolate(&self, node: NodeId, nodes: &[NodeId]) {
        let mut inner = self.inner.lock();
        for &other in nodes.iter().filter(|&&n| n != node) {
            inner.cut.insert((node, other));
            inner.cut.insert((other, node));
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.inner.lock().cut.clear();
    }

    /// Sets the loss and delay of every later message.
    pub fn set_weather(&self, weather: Weather) {
        self.inner.lock().weather = weather;
    }

    /// What the network did so far.
    pub fn traffic(&self) -> Traffic {
        self.inner.lock().traffic
    }

    /// The network factory of node `from`'s group of `shard`.
    pub fn network(self: &Arc<Self>, shard: u16, from: NodeId) -> SimNetwork {
        SimNetwork {
            fabric: Arc::clone(self),
            shard,
            from,
        }
    }

    fn plan(&self, from: NodeId, to: NodeId) -> Option<Plan> {
        let mut inner = self.inner.lock();
        inner.traffic.sent += 1;
        if inner.cut.contains(&(from, to)) {
            inner.traffic.lost += 1;
            return None;
        }
        let w = inner.weather;
        let mut delay = || {
            if w.delay_max_ms == 0 {
                Duration::ZERO
            } else {
                Duration::from_micros(inner.rng.random_range(0..w.delay_max_ms * 1000))
            }
        };
        let (delay, back_delay) = (delay(), delay());
        let drop_request = inner.rng.random_range(0..1000) < w.drop_per_mille;
        let drop_response = inner.rng.random_range(0..1000) < w.drop_per_mille;
        if drop_request || drop_response {
            inner.traffic.lost += 1;
        }
        Some(Plan {
            delay,
            back_delay,
            drop_request,
            drop_response,
        })
    }

    /// The target's Raft, if it is up and the link to it is not cut.
    fn target(&self, shard: u16, from: NodeId, to: NodeId) -> Option<Raft> {
        let inner = self.inner.lock();
        if inner.cut.contains(&(from, to)) {
            return None;
        }
        inner.live.get(&(shard, to)).cloned()
    }

    fn snapshot_installed(&self) {
        self.inner.lock().traffic.snapshots += 1;
    }

    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.inner.lock().cut.contains(&(from, to))
    }
}

/// Node `from`'s network for one shard group.
pub struct SimNetwork {
    fabric: Arc<Fabric>,
    shard: u16,
    from: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimPeer;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> Self::Network {
        SimPeer {
            fabric: Arc::clone(&self.fabric),
            shard: self.shard,
            from: self.from,
            to: target,
        }
    }
}

/// One group's link to one peer.
pub struct SimPeer {
    fabric: Arc<Fabric>,
    shard: u16,
    from: NodeId,
    to: NodeId,
}

fn unreachable(why: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(why))
}

fn network(why: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(why))
}

impl SimPeer {
    /// Sends one request through the fabric and hands it to the target with `deliver`.
    /// A lost message costs the sender its wait (the soft TTL), as a real one would.
    async fn call<T, F, Fut>(
        &self,
        option: &RPCOption,
        deliver: F,
    ) -> Result<T, RPCError<TypeConfig>>
    where
        F: FnOnce(Raft) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let wait = option.soft_ttl();
        let Some(plan) = self.fabric.plan(self.from, self.to) else {
            tokio::time::sleep(wait).await;
            return Err(unreachable(format!(
                "link {} -> {} is cut",
                self.from, self.to
            )));
        };
        let exchange = async {
            tokio::time::sleep(plan.delay).await;
            if plan.drop_request {
                tokio::time::sleep(wait).await;
                return Err(network("request lost"));
            }
            let Some(raft) = self.fabric.target(self.shard, self.from, self.to) else {
                tokio::time::sleep(wait).await;
                return Err(unreachable(format!("node {} is down or cut off", self.to)));
            };
            let resp = deliver(raft).await.map_err(unreachable)?;
            tokio::time::sleep(plan.back_delay).await;
            if plan.drop_response || self.fabric.is_cut(self.to, self.from) {
                tokio::time::sleep(wait).await;
                return Err(network("response lost"));
            }
            Ok(resp)
        };
        match tokio::time::timeout(option.hard_ttl(), exchange).await {
            Ok(res) => res,
            Err(_) => Err(network("timed out")),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for SimPeer {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&option, |raft| async move {
            raft.append_entries(rpc).await.map_err(|e| e.to_string())
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&option, |raft| async move {
            raft.vote(rpc).await.map_err(|e| e.to_string())
        })
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&option, |raft| async move {
            raft.pre_vote(rpc).await.map_err(|e| e.to_string())
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let fabric = Arc::clone(&self.fabric);
        let send = self.call(&option, |raft| async move {
            let resp = raft
                .install_full_snapshot(vote, snapshot)
                .await
                .map_err(|e| e.to_string())?;
            fabric.snapshot_installed();
            Ok(resp)
        });
        tokio::pin!(cancel);
        tokio::select! {
            closed = &mut cancel => Err(StreamingError::Closed(closed)),
            res = send => res.map_err(StreamingError::from),
        }
    }
}
