//! Operations: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::OpenApi;

use super::dto::{HealthJson, ReadyJson, ShardReadyJson};
use super::AppState;
use crate::shard::Readiness;

/// The process is alive (whatever its shards' disks do: see `/ready`).
pub async fn health() -> Json<HealthJson> {
    Json(HealthJson {
        status: "ok".to_string(),
    })
}

/// Each shard's ability to write; 200 only when every shard can. Per shard: `ready`,
/// `recovering`, `stalled` (a batch has waited longer than
/// [`crate::limits::SYNC_STALL_MAX`] for its write and fdatasync: a stuck disk), `full`
/// (the log found no space; writes resume by themselves once there is room) or `failed`
/// (a restart is needed), or, in cluster mode, `unavailable` (no leader this node hears
/// from, or this node hears from fewer than a majority of the shard's replicas: no write
/// could commit through it), with the reason. Computed from each shard's shared status,
/// never by asking the shard thread, which may be blocked in an fdatasync.
pub async fn ready(State(state): State<AppState>) -> Response {
    let shards: Vec<ShardReadyJson> = state
        .shards()
        .iter()
        .enumerate()
        .map(|(shard, handle)| {
            let (label, reason) = match handle.status().readiness(shard) {
                Readiness::Ready => match state.cluster().map(|n| super::cluster::quorum(n, shard))
                {
                    Some(Err(reason)) => ("unavailable", Some(reason)),
                    Some(Ok(())) | None => ("ready", None),
                },
                Readiness::Recovering => ("recovering", None),
                Readiness::Stalled(reason) => ("stalled", Some(reason)),
                Readiness::Full(reason) => ("full", Some(reason)),
                Readiness::Failed(reason) => ("failed", Some(reason)),
            };
            ShardReadyJson {
                shard,
                status: label.to_string(),
                reason,
            }
        })
        .collect();
    let any = |label: &str| shards.iter().any(|s| s.status == label);
    // The node's status: the worst of its shards'; a full disk is a failure to write.
    let overall = if any("failed") || any("full") {
        "failed"
    } else if any("stalled") {
        "stalled"
    } else if any("unavailable") {
        "unavailable"
    } else if any("recovering") {
        "recovering"
    } else {
        "ready"
    };
    let code = if overall == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(ReadyJson {
            status: overall.to_string(),
            shards,
        }),
    )
        .into_response()
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    for (shard, handle) in state.shards().iter().enumerate() {
        let label = shard.to_string();
        metrics::gauge!("boxoffice_shard_queue_depth", "shard" => label.clone())
            .set(handle.queue_depth() as f64);
        // Read here, not by the shard, which may be blocked in the very fdatasync.
        let unsynced = handle.status().unsynced_age().unwrap_or_default();
        metrics::gauge!("boxoffice_wal_unsynced_age_seconds", "shard" => label.clone())
            .set(unsynced.as_secs_f64());
        // The longest gap since the previous scrape (a max gauge, reset by each scrape).
        metrics::gauge!("boxoffice_shard_loop_gap_seconds", "shard" => label)
            .set(handle.status().take_loop_gap().as_secs_f64());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.render_metrics(),
    )
        .into_response()
}

/// This document.
pub async fn openapi() -> Response {
    Json(super::openapi::ApiDoc::openapi()).into_response()
}
