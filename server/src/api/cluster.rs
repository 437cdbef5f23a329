//! Cluster mode at the HTTP edge: which node serves a shard, forwarding a request to the
//! shard's leader, and `GET /v1/cluster`.
//!
//! Any node answers any request. A handler that reaches a shard led by another node gets
//! 503 from [`route`], which also notes the leader's API address for this request; the
//! [`forward`] middleware then sends the very same request (method, path, headers, body)
//! to that node and answers with its answer. A forwarded request is never forwarded
//! again: a node that is not the leader any more answers it 503 itself.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parking_lot::Mutex;
use raft::ClusterNode;
use serde::Serialize;

use super::error::ApiError;
use super::AppState;
use crate::limits::{BODY_BYTES_MAX, FORWARD_WAIT_EXTRA};

/// Marks a request forwarded by another node (its value: that node's id).
pub const FORWARDED_BY: &str = "x-boxoffice-forwarded-by";

tokio::task_local! {
    /// The API address of the node this request must be forwarded to, once known.
    static FORWARD_TO: Arc<Mutex<Option<(u64, String)>>>;
}

/// `Ok` when this node leads `shard` and serves it itself; otherwise the 503 to answer if
/// the request cannot be forwarded (the leader's address is noted for [`forward`]).
pub fn route(node: &ClusterNode, shard: usize) -> Result<(), ApiError> {
    let lead = node.group(shard).leadership();
    if lead.is_me {
        return Ok(());
    }
    match lead
        .leader
        .and_then(|id| node.file().node(id).map(|n| (id, n.http.clone())))
    {
        Some((id, http)) => {
            let _ = FORWARD_TO.try_with(|slot| *slot.lock() = Some((id, http)));
            Err(ApiError::unavailable(format!(
                "node {id} leads shard {shard} and cannot be reached from here; retry"
            )))
        }
        None => Err(ApiError::unavailable(format!(
            "shard {shard} has no leader (an election is under way); retry shortly"
        ))),
    }
}

/// Runs the request here; if it turned out to belong to a shard led by another node,
/// forwards it there (once) and answers with that node's answer.
pub async fn forward(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(node) = state.cluster().cloned() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_BYTES_MAX).await else {
        return ApiError::payload_too_large().into_response();
    };
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let headers = parts.headers.clone();
    let slot = Arc::new(Mutex::new(None));
    let response = FORWARD_TO
        .scope(
            Arc::clone(&slot),
            next.run(Request::from_parts(parts, Body::from(bytes.clone()))),
        )
        .await;
    let target = slot.lock().take();
    let Some((leader, http)) = target else {
        return response;
    };
    if headers.contains_key(FORWARDED_BY) {
        // Forwarded to us by a node that thought we lead: never a second hop.
        return response;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{http}{path}");
    let mut outgoing = node
        .http()
        .request(method.clone(), &url)
        .timeout(state.0.options.outcome_wait + FORWARD_WAIT_EXTRA)
        .body(bytes);
    for (name, value) in headers.iter() {
        if !is_hop_header(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    outgoing = outgoing.header(FORWARDED_BY, node.id().to_string());
    if let Some(id) = super::current_request_id() {
        outgoing = outgoing.header("x-request-id", id);
    }
    metrics::counter!("boxoffice_cluster_forwarded_total").increment(1);
    match outgoing.send().await {
        Ok(answer) => relay(answer).await,
        Err(error) if error.is_connect() => ApiError::unavailable(format!(
            "node {leader} leads this shard and cannot be reached; retry"
        ))
        .into_response(),
        Err(error) if method == axum::http::Method::GET => ApiError::unavailable(format!(
            "node {leader}, which leads this shard, did not answer: {error}"
        ))
        .into_response(),
        Err(error) => ApiError::outcome_unknown(format!(
            "forwarded to node {leader}, which leads the shard, and no answer came: {error}"
        ))
        .into_response(),
    }
}

/// Headers of one connection, not of the request.
fn is_hop_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive" | "upgrade"
    )
}

async fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(error) => {
            return ApiError::outcome_unknown(format!("the leader's answer was cut off: {error}"))
                .into_response()
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in headers.iter() {
        if !is_hop_header(name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// A node as `GET /v1/cluster` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterNodeJson {
    /// Its id in the cluster file.
    pub id: u64,
    /// Its API address.
    pub http: String,
    /// Whether the answering node has heard from it lately (always true for itself).
    pub reachable: bool,
}

/// A shard as `GET /v1/cluster` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterShardJson {
    /// The shard (the number in its hold and booking ids).
    pub shard: usize,
    /// The node that leads it; null during an election.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The shard's log position applied on the answering node (comparable across nodes).
    pub applied: u64,
    /// The nodes holding a replica.
    pub replicas: Vec<u64>,
}

/// `GET /v1/cluster`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterJson {
    /// The answering node.
    pub node_id: u64,
    /// Every node of the cluster file.
    pub nodes: Vec<ClusterNodeJson>,
    /// Every shard.
    pub shards: Vec<ClusterShardJson>,
}

/// What the answering node knows of the cluster. A single-node server answers 404.
pub async fn status(State(state): State<AppState>) -> Response {
    let Some(node) = state.cluster() else {
        return ApiError::not_found("cluster (this server runs as a single node)").into_response();
    };
    let nodes = node
        .file()
        .nodes
        .iter()
        .map(|(id, n)| ClusterNodeJson {
            id: *id,
            http: n.http.clone(),
            reachable: node.reachable(*id),
        })
        .collect();
    let shards = node
        .groups()
        .iter()
        .map(|g| {
            let lead = g.leadership();
            ClusterShardJson {
                shard: usize::from(g.shard()),
                leader: lead.leader,
                term: lead.term,
                applied: lead.applied,
                replicas: lead.replicas,
            }
        })
        .collect();
    let mut response = Json(ClusterJson {
        node_id: node.id(),
        nodes,
        shards,
    })
    .into_response();
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}
