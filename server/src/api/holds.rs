//! Holds: place, read, confirm into a booking, release, extend.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use engine::{Command, HoldId};

use super::client::AppState;
use super::convert::created;
use super::convert::{booking_json, hold_json, idempotency, take_command, Take};
use super::dto::{ConfirmBody, HoldBody, HoldJson};
use super::dto_sale::ExtendBody;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use crate::auth::Principal;

/// Routes a hold id to its shard; an id of no shard of this server is simply not found.
pub fn route_hold(state: &AppState, text: &str) -> Result<(HoldId, usize), ApiError> {
    HoldId::parse(text)
        .and_then(|id| Some((id, state.shard_of_id(id.shard())?)))
        .ok_or_else(|| ApiError::not_found("hold"))
}

/// Holds GA quantities and/or named seats, all or nothing, until `expires_at`.
pub async fn place(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(event_id): ApiPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Response, ApiError> {
    let idem = idempotency(
        &headers,
        format_args!("POST /v1/events/{event_id}/holds"),
        &body,
    )?;
    let shard = state.shard_of_event(&event_id);
    let command = take_command(&principal, event_id, body, Take::Hold, idem)?;
    Ok(created(hold_json(state.submit(shard, command).await?)))
}

/// The hold, with its status now.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(hold_id): ApiPath,
) -> Result<Json<HoldJson>, ApiError> {
    let (id, shard) = route_hold(&state, &hold_id)?;
    let actor = principal.actor();
    let view = state
        .read(shard, move |engine, now| engine.hold(id, &actor, now))
        .await??;
    Ok(Json(HoldJson::from(&view)))
}

/// Confirms a live hold into a booking.
pub async fn confirm(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(hold_id): ApiPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    let (id, shard) = route_hold(&state, &hold_id)?;
    let idempotency = idempotency(&headers, format_args!("POST /v1/holds/{id}/confirm"), &body)?;
    let command = Command::ConfirmHold {
        actor: principal.actor(),
        hold_id: id,
        payment_ref: body.payment_ref,
        idempotency,
    };
    Ok(created(booking_json(state.submit(shard, command).await?)))
}

/// Releases a live hold now; its inventory returns to sale.
pub async fn release(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(hold_id): ApiPath,
    headers: HeaderMap,
) -> Result<Json<HoldJson>, ApiError> {
    let (id, shard) = route_hold(&state, &hold_id)?;
    let idempotency = idempotency(&headers, format_args!("DELETE /v1/holds/{id}"), &())?;
    let command = Command::ReleaseHold {
        actor: principal.actor(),
        hold_id: id,
        idempotency,
    };
    Ok(Json(hold_json(state.submit(shard, command).await?)))
}

/// Moves a live hold's `expires_at` to now + `ttl_seconds` (longer or shorter), never
/// past `created_at` + 2 h.
pub async fn extend(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(hold_id): ApiPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Json<HoldJson>, ApiError> {
    let (id, shard) = route_hold(&state, &hold_id)?;
    let idempotency = idempotency(&headers, format_args!("POST /v1/holds/{id}/extend"), &body)?;
    let command = Command::ExtendHold {
        actor: principal.actor(),
        hold_id: id,
        ttl_ms: body.ttl_seconds.saturating_mul(1000),
        idempotency,
    };
    Ok(Json(hold_json(state.submit(shard, command).await?)))
}
