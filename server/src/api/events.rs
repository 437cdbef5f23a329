//! Events: create (admin), list, get, seat map (anyone).

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use engine::Command;
use serde::Deserialize;
use utoipa::IntoParams;

use super::client::AppState;
use super::cluster::{list_part, list_plan};
use super::convert::created;
use super::convert::{idempotency, new_event, new_event_id, page, page_limit};
use super::dto::{CreateEventBody, EventJson, EventPage, SeatMapJson};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::Principal;

/// Creates an event with its sections.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateEventBody>,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let idem = idempotency(&headers, format_args!("POST /v1/events"), &body)?;
    let id = match &body.id {
        Some(id) => id.clone(),
        None => new_event_id(idem.as_ref()),
    };
    let shard = state.shard_of_event(&id);
    let offer_ttl_ms = body.offer_ttl_seconds.map(|t| t.saturating_mul(1000));
    let event = new_event(body, id, idem)?;
    let command = match offer_ttl_ms {
        None => Command::CreateEvent(event),
        Some(ttl) => Command::CreateEventWith(
            event,
            engine::EventOptions {
                offer_ttl_ms: Some(ttl),
            },
        ),
    };
    let view = state.submit(shard, command).await?.into_event();
    Ok(created(EventJson::from(&view)))
}

/// Paging of the event list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventListParams {
    /// Page size, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
}

/// Lists events ordered by id, with live counts (in a cluster, each shard's part from
/// its leader).
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    ApiQuery(params): ApiQuery<EventListParams>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = page_limit(params.limit)?;
    let (mut all, mut more) = (Vec::new(), false);
    let shards = (0..state.shards().len()).collect();
    for (shard, leader) in list_plan(&state, &headers, shards)? {
        if let Some(leader) = leader {
            let part: EventPage = list_part(&state, leader, &headers, &uri, shard).await?;
            more |= part.next_cursor.is_some();
            all.extend(part.data.into_iter().map(|e| (e.id.clone(), e)));
            continue;
        }
        let after = params.after.clone();
        let views = state
            .read(shard, move |engine, _| {
                engine.events(after.as_deref(), limit + 1)
            })
            .await?;
        all.extend(views.iter().map(|v| (v.id.clone(), EventJson::from(v))));
    }
    Ok(Json(page(all, more, limit, Clone::clone)))
}

/// One event with live per-section counts.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath,
) -> Result<Json<EventJson>, ApiError> {
    let shard = state.shard_of_event(&event_id);
    state
        .read(shard, move |engine, _| {
            engine.event(&event_id).map(|v| EventJson::from(&v))
        })
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("event"))
}

/// Every seat of the event's seated sections: `free`, `held` or `sold`.
pub async fn seats(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath,
) -> Result<Json<SeatMapJson>, ApiError> {
    let shard = state.shard_of_event(&event_id);
    // The view is built on the shard thread; the JSON (one string per seat) here.
    let map = state
        .read(shard, move |engine, _| engine.seat_map(&event_id))
        .await?;
    map.map(|m| Json(SeatMapJson::from(&m)))
        .ok_or_else(|| ApiError::not_found("event"))
}
