//! Replication traffic between nodes: openraft's RPCs as HTTP POSTs carrying bincode, one
//! path per shard group (`/raft/{shard}/{rpc}`). Every group of a node shares one HTTP
//! client, so a node keeps one pool of keep-alive connections per peer.

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::Snapshot;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::limits::{RAFT_BODY_BYTES_MAX, RAFT_CONNECT_TIMEOUT, RAFT_IDLE_CONNECTIONS_MAX};
use crate::types::{Node, NodeId, TypeConfig};
use crate::Raft;

/// The codec of every RPC body: bincode 2 over serde, standard configuration.
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| e.to_string())
}

/// Makes a client per (group, peer); all share the node's HTTP client.
#[derive(Clone)]
pub struct Network {
    shard: u16,
    http: reqwest::Client,
    /// A test-only delay added before every RPC (this kernel has no netem).
    delay: Option<Duration>,
}

impl Network {
    /// The network of shard `shard`'s group, over a shared HTTP client.
    pub fn new(shard: u16, http: reqwest::Client, delay: Option<Duration>) -> Self {
        Network { shard, http, delay }
    }
}

/// The node's HTTP client for replication.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(RAFT_CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(RAFT_IDLE_CONNECTIONS_MAX)
        .build()
        .expect("an HTTP client without TLS builds")
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        Peer {
            target,
            base: format!("http://{}/raft/{}", node.raft, self.shard),
            http: self.http.clone(),
            delay: self.delay,
        }
    }
}

/// One group's connection to one peer.
pub struct Peer {
    target: NodeId,
    base: String,
    http: reqwest::Client,
    delay: Option<Duration>,
}

impl Peer {
    async fn call<Req, Resp>(
        &self,
        rpc: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Result<Resp, RaftError<TypeConfig>>, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let body = encode(req).map_err(|e| RPCError::Network(NetworkError::from_string(e)))?;
        let url = format!("{}/{rpc}", self.base);
        let resp = self
            .http
            .post(&url)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            return Err(RPCError::Network(NetworkError::from_string(format!(
                "node {}: HTTP {status} from {url}: {}",
                self.target,
                String::from_utf8_lossy(&bytes)
            ))));
        }
        decode(&bytes).map_err(|e| RPCError::Network(NetworkError::from_string(e)))
    }
}

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("append", &rpc, option.hard_ttl())
            .await?
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("vote", &rpc, option.hard_ttl())
            .await?
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("pre-vote", &rpc, option.hard_ttl())
            .await?
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("transfer-leader", &req, option.hard_ttl())
            .await?
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = snapshot.snapshot.into_inner();
        // A snapshot's transfer time grows with its size: 1 s plus 1 s per 16 MiB.
        let timeout = option.hard_ttl() + Duration::from_secs(1 + (data.len() >> 24) as u64);
        let req = (vote, snapshot.meta, data);
        tokio::pin!(cancel);
        tokio::select! {
            closed = &mut cancel => Err(StreamingError::Closed(closed)),
            res = self.call("snapshot", &req, timeout) => match res {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(e)) => Err(StreamingError::Network(NetworkError::new(&e))),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// The replication server of a node: every group's RPC handlers.
pub fn router(groups: Arc<Vec<Raft>>) -> Router {
    Router::new()
        .route("/raft/{shard}/{rpc}", post(handle))
        .route("/raft/ping", axum::routing::get(|| async { "pong" }))
        .layer(axum::extract::DefaultBodyLimit::max(RAFT_BODY_BYTES_MAX))
        .with_state(groups)
}

async fn handle(
    State(groups): State<Arc<Vec<Raft>>>,
    Path((shard, rpc)): Path<(usize, String)>,
    body: Bytes,
) -> Response {
    let Some(raft) = groups.get(shard) else {
        return (StatusCode::NOT_FOUND, format!("no shard {shard} here")).into_response();
    };
    let answer = match rpc.as_str() {
        "append" => match decode::<AppendEntriesRequest<TypeConfig>>(&body) {
            Ok(req) => encode(&raft.append_entries(req).await),
            Err(e) => Err(e),
        },
        "vote" => match decode::<VoteRequest<TypeConfig>>(&body) {
            Ok(req) => encode(&raft.vote(req).await),
            Err(e) => Err(e),
        },
        "pre-vote" => match decode::<VoteRequest<TypeConfig>>(&body) {
            Ok(req) => encode(&raft.pre_vote(req).await),
            Err(e) => Err(e),
        },
        "transfer-leader" => match decode::<TransferLeaderRequest<TypeConfig>>(&body) {
            Ok(req) => {
                let res: Result<TransferLeaderResponse<TypeConfig>, RaftError<TypeConfig>> = raft
                    .handle_transfer_leader(req)
                    .await
                    .map_err(RaftError::Fatal);
                encode(&res)
            }
            Err(e) => Err(e),
        },
        "snapshot" => {
            match decode::<(VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, Vec<u8>)>(&body) {
                Ok((vote, meta, data)) => {
                    let snapshot = Snapshot {
                        meta,
                        snapshot: Cursor::new(data),
                    };
                    let res: Result<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>> = raft
                        .install_full_snapshot(vote, snapshot)
                        .await
                        .map_err(RaftError::Fatal);
                    encode(&res)
                }
                Err(e) => Err(e),
            }
        }
        other => return (StatusCode::NOT_FOUND, format!("no rpc {other}")).into_response(),
    };
    match answer {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}
