//! `GET /v1/events/{event_id}/stream`: live availability as Server-Sent Events (the fan-out
//! is [`crate::stream`]). Anyone may watch.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::ApiPath;
use super::AppState;
use crate::stream::Refusal;

/// The live availability of an event: `text/event-stream`. First an `event: snapshot`
/// whose `data:` is the event (as `GET /v1/events/{event_id}`) plus `seats` (the seat map's
/// `sections`); then one `event: change` per durable batch that touched the event, with
/// the sections whose counts changed and the seats touched (`{"A-12": "held"}`). Every
/// message's `id:` is the shard's log sequence number after it, strictly increasing; a
/// reconnect with `Last-Event-ID` gets exactly the changes after it, or a fresh snapshot
/// when that point is too old. A comment line every 15 s keeps idle streams open; a client
/// that falls behind is disconnected.
pub async fn stream(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let shard = state.shard_of_event(&event_id);
    let hub = state.shards()[shard].stream();
    // An id that is not a number is not one of ours: the client gets a snapshot.
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let all_clients = || state.shards().iter().map(|s| s.stream().clients()).sum();
    let ticket = hub.admit(&event_id, all_clients).map_err(refusal)?;
    let body = hub.open(ticket, event_id, last_id).await.map_err(refusal)?;
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound => ApiError::not_found("event"),
        Refusal::Overloaded => {
            metrics::counter!("boxoffice_overload_refusals_total").increment(1);
            ApiError::overloaded()
        }
        Refusal::Unavailable => ApiError::unavailable("the live stream is not available now"),
    }
}
