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

/// A shard's leader: its node id and API address.
pub type Leader = (u64, String);

/// On a list request forwarded by another node: the one shard whose part it asks for.
pub const LIST_SHARD: &str = "x-boxoffice-list-shard";

/// Where each of `shards` is read for a list (`GET /v1/events`, `GET /v1/bookings`): here
/// (`None`), or asked of the node that leads it ([`list_part`]). A list reads every shard,
/// and in a cluster they are led by different nodes, so a list is gathered from their
/// leaders, one part each. A request another node forwarded is read here alone (never a
/// second hop), and only the shard it names in [`LIST_SHARD`], if it names one.
/// A shard whose leader this node does not hear from is 503 at once, before any part is
/// asked (a cut-off leader would hold the list for the whole forwarding wait).
pub fn list_plan(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    shards: Vec<usize>,
) -> Result<Vec<(usize, Option<Leader>)>, ApiError> {
    let Some(node) = state.cluster() else {
        return Ok(shards.into_iter().map(|s| (s, None)).collect());
    };
    if headers.contains_key(FORWARDED_BY) {
        let only = headers
            .get(LIST_SHARD)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        return Ok(shards
            .into_iter()
            .filter(|s| only.is_none_or(|o| o == *s))
            .map(|s| (s, None))
            .collect());
    }
    shards
        .into_iter()
        .map(|s| match leader_elsewhere(node, s) {
            Some((id, _)) if !node.reachable(id) => Err(ApiError::unavailable(format!(
                "node {id} leads shard {s} and does not answer this node; retry"
            ))),
            leader => Ok((s, leader)),
        })
        .collect()
}

/// Shard `shard`'s part of a list, asked of `leader`: the same request (path, query,
/// headers: the caller's token is checked there too), marked forwarded and limited to
/// that shard. Any answer but a page is 503 `unavailable` (this node checked the request
/// already, so the leader refuses only when it no longer leads or cannot read).
pub async fn list_part<T: serde::de::DeserializeOwned>(
    state: &AppState,
    leader: (u64, String),
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
    shard: usize,
) -> Result<super::dto::Page<T>, ApiError> {
    let mut headers = headers.clone();
    headers.insert(LIST_SHARD, HeaderValue::from(shard as u64));
    let id = leader.0;
    let (status, body) = get_from(state, leader, headers, uri).await?;
    if status != axum::http::StatusCode::OK {
        return Err(ApiError::unavailable(format!(
            "node {id}, which leads shard {shard}, answered {status} for its part of the list; retry"
        )));
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::unavailable(format!("node {id}'s part of the list did not parse: {e}"))
    })
}

/// A `GET` of `uri` with `headers`, asked of `leader` (marked forwarded): its status and
/// body, or 503 `unavailable` when no whole answer came.
pub async fn get_from(
    state: &AppState,
    leader: (u64, String),
    headers: axum::http::HeaderMap,
    uri: &axum::http::Uri,
) -> Result<(axum::http::StatusCode, axum::body::Bytes), ApiError> {
    let node = state
        .cluster()
        .expect("asked of another node in cluster mode");
    let mut head = Request::new(Body::empty());
    *head.uri_mut() = uri.clone();
    *head.headers_mut() = headers;
    let (parts, _) = head.into_parts();
    let id = leader.0;
    let answer = send_to(state, node, leader, parts, axum::body::Bytes::new()).await;
    let status = answer.status();
    let body = axum::body::to_bytes(answer.into_body(), crate::limits::LIST_PART_BYTES_MAX)
        .await
        .map_err(|e| ApiError::unavailable(format!("node {id}'s answer: {e}")))?;
    Ok((status, body))
}

/// The node that leads `shard` and its API address, when another node does and this one
/// hears from it (cluster mode only).
pub fn led_elsewhere(state: &AppState, shard: usize) -> Option<(u64, String)> {
    let node = state.cluster()?;
    leader_elsewhere(node, shard).filter(|(id, _)| node.reachable(*id))
}

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

/// The leader of `shard` as this node can use it: `None` during an election, and while
/// the last leader it knew does not answer its pings (a dead or cut-off leader is no
/// leader to send a request to; the consensus library keeps naming it until a new one is
/// elected, which a node cut off from the majority never sees).
pub fn known_leader(node: &ClusterNode, shard: usize) -> Option<u64> {
    node.group(shard)
        .leadership()
        .leader
        .filter(|id| node.reachable(*id))
}

/// Whether a write to `shard` could commit through this node, as far as it can tell: a
/// leader it hears from, and a majority of the shard's replicas (itself included) that it
/// hears from. Else the reason, for `/ready`.
pub fn quorum(node: &ClusterNode, shard: usize) -> Result<(), String> {
    let lead = node.group(shard).leadership();
    let heard = lead
        .replicas
        .iter()
        .filter(|id| node.reachable(**id))
        .count();
    if heard * 2 <= lead.replicas.len() {
        return Err(format!(
            "this node hears from {heard} of the shard's {} replicas: no quorum",
            lead.replicas.len()
        ));
    }
    if known_leader(node, shard).is_none() {
        return Err("no leader that this node hears from (an election is under way)".into());
    }
    Ok(())
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
    /// The node that leads it; null during an election (and while the last leader this
    /// node knew does not answer it).
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
                leader: known_leader(node, usize::from(g.shard())),
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
