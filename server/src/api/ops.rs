//! Operations: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::OpenApi;

use super::dto::{HealthJson, ReadyJson, ShardReadyJson};
use super::AppState;

/// The process is alive.
pub async fn health() -> Json<HealthJson> {
    Json(HealthJson {
        status: "ok".to_string(),
    })
}

/// 200 once every shard has recovered and can write; 503 with the reasons otherwise.
pub async fn ready(State(state): State<AppState>) -> Response {
    let shards: Vec<ShardReadyJson> = state
        .shards()
        .iter()
        .enumerate()
        .map(|(shard, handle)| {
            let status = handle.status();
            let (label, reason) = if status.is_ready() {
                ("ready", None)
            } else if status.is_recovering() {
                ("recovering", None)
            } else {
                ("failed", status.failure())
            };
            ShardReadyJson {
                shard,
                status: label.to_string(),
                reason,
            }
        })
        .collect();
    let overall = if shards.iter().all(|s| s.status == "ready") {
        "ready"
    } else if shards.iter().any(|s| s.status == "failed") {
        "failed"
    } else {
        "recovering"
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
        metrics::gauge!("boxoffice_shard_queue_depth", "shard" => shard.to_string())
            .set(handle.queue_depth() as f64);
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
