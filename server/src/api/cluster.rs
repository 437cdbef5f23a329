//! Cluster mode at the HTTP edge: which node serves a shard, forwarding a request to the
//! shard's leader, and `GET /v1/cluster`.
//!
//! Any node answers any request. The [`forward`] middleware sends a request for a shard
//! led by another node, the very same request (method, path, headers, body), to that node
//! and answers with its answer. Where the path names the shard (an event, a hold, a
//! booking, an entry) this is decided from the path, and a request this node serves
//! itself runs as it came, its body never buffered. Otherwise (a new event, whose id is in
//! the body) the request runs here with its body kept, and a handler that reaches a shard
//! led elsewhere gets 503 from [`route`], which also notes the leader's address so that
//! [`forward`] sends the request there. A forwarded request is never forwarded again: a
//! node that is not the leader any more answers it 503 itself.

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
use super::leader::FORWARD_TO;
use super::AppState;
use crate::limits::{BODY_BYTES_MAX, FORWARD_WAIT_EXTRA};

/// Marks a request forwarded by another node (its value: that node's id).
pub const FORWARDED_BY: &str = "x-boxoffice-forwarded-by";

/// Where a request's path says it goes, before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathRoute {
    /// To this shard (an event's, or the one a hold, booking or entry id names).
    Shard(usize),
    /// Never to a shard led elsewhere: health, metrics, the documents and pages, the
    /// cluster's status, live streams (served from this node's committed state), and ids
    /// that are not ids (answered 404 here).
    Here,
    /// Only the handler knows (a new event's id is in its body; a list may read every
    /// shard): run it here with the body kept, and forward if it reaches a shard led
    /// elsewhere.
    Handler,
}

/// The route of `path` (see [`PathRoute`]).
fn path_route(state: &AppState, path: &str) -> PathRoute {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // An escaped segment is decoded by the handler: leave it to the handler.
    if segments.iter().any(|s| s.contains('%')) {
        return PathRoute::Handler;
    }
    let by_id = |shard: Option<u16>| match shard.and_then(|s| state.shard_of_id(s)) {
        Some(shard) => PathRoute::Shard(shard),
        None => PathRoute::Here,
    };
    match segments.as_slice() {
        ["v1", "events", _, "stream"] => PathRoute::Here,
        ["v1", "events", event_id, ..] if !event_id.is_empty() => {
            PathRoute::Shard(state.shard_of_event(event_id))
        }
        ["v1", "holds", id, ..] => by_id(engine::HoldId::parse(id).map(|i| i.shard())),
        ["v1", "bookings", id, ..] => by_id(engine::BookingId::parse(id).map(|i| i.shard())),
        ["v1", "waitlist", id, ..] => by_id(engine::EntryId::parse(id).map(|i| i.shard())),
        ["health" | "ready" | "metrics" | "openapi.json" | "" | "events" | "page", ..]
        | ["v1", "cluster"] => PathRoute::Here,
        _ => PathRoute::Handler,
    }
}

/// Serves the request here, or forwards it to the leader of its shard (once) and answers
/// with that node's answer. When the path names the shard, this is decided before the
/// body is touched: a shard led here runs the request as it came; a shard led elsewhere
/// is forwarded without running here. Only a request whose shard the handler alone knows
/// is buffered, run here, and forwarded if its shard turns out to be led elsewhere.
pub async fn forward(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(node) = state.cluster().cloned() else {
        return next.run(request).await;
    };
    if request.headers().contains_key(FORWARDED_BY) {
        // Forwarded to us by a node that thought we lead: never a second hop.
        return next.run(request).await;
    }
    match path_route(&state, request.uri().path()) {
        PathRoute::Here => next.run(request).await,
        PathRoute::Shard(shard) => match leader_elsewhere(&node, shard) {
            // Led here, or no leader (the handler answers 503 `unavailable`).
            None => next.run(request).await,
            Some(leader) => {
                let (parts, body) = request.into_parts();
                let Ok(bytes) = axum::body::to_bytes(body, BODY_BYTES_MAX).await else {
                    return ApiError::payload_too_large().into_response();
                };
                send_to(&state, &node, leader, parts, bytes).await
            }
        },
        PathRoute::Handler => {
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, BODY_BYTES_MAX).await else {
                return ApiError::payload_too_large().into_response();
            };
            let kept = Request::from_parts(parts, Body::from(bytes.clone()));
            let (parts, _) = clone_head(&kept).into_parts();
            let slot = Arc::new(Mutex::new(None));
            let response = FORWARD_TO.scope(Arc::clone(&slot), next.run(kept)).await;
            let target = slot.lock().take();
            match target {
                Some(leader) => send_to(&state, &node, leader, parts, bytes).await,
                None => response,
            }
        }
    }
}

/// The leader of `shard` and its API address, if another node leads it.
fn leader_elsewhere(node: &ClusterNode, shard: usize) -> Option<(u64, String)> {
    let lead = node.group(shard).leadership();
    if lead.is_me {
        return None;
    }
    let id = lead.leader?;
    node.file().node(id).map(|n| (id, n.http.clone()))
}

/// A request with the same method, URI and headers, and no body.
fn clone_head(request: &Request) -> Request {
    let mut head = Request::new(Body::empty());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.headers_mut() = request.headers().clone();
    head
}

/// Sends the request (`parts` and `body`) to `leader`, marked as forwarded, and relays
/// its answer.
async fn send_to(
    state: &AppState,
    node: &ClusterNode,
    (leader, http): (u64, String),
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Response {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{http}{path}");
    let mut outgoing = node
        .http()
        .request(parts.method.clone(), &url)
        .timeout(state.0.options.outcome_wait + FORWARD_WAIT_EXTRA)
        .body(body);
    for (name, value) in parts.headers.iter() {
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
        Err(error) if parts.method == axum::http::Method::GET => ApiError::unavailable(format!(
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
    #[schema(required = true)]
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
