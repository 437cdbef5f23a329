//! Holds: place, read, confirm into a booking, release, extend.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use engine::{Command, HoldId, NewHold, Output};

use super::convert::{idempotency, item_requests, seat_ids, ttl_ms};
use super::dto::{BookingJson, ConfirmBody, HoldBody, HoldJson};
use super::dto_sale::ExtendBody;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::{created, AppState};
use crate::auth::Principal;

/// Resolves for whom a hold or purchase is: a user acts for themselves (naming another
/// user is 403); the admin must name the user.
pub fn user_for(principal: &Principal, user_id: Option<String>) -> Result<String, ApiError> {
    match (principal, user_id) {
        (Principal::User(me), None) => Ok(me.clone()),
        (Principal::User(me), Some(named)) if named == *me => Ok(named),
        (Principal::User(_), Some(_)) => Err(ApiError::forbidden("user_id names another user")),
        (Principal::Admin, Some(named)) => {
            if super::convert::is_valid_user_id(&named) {
                Ok(named)
            } else {
                Err(ApiError::invalid(
                    "user_id",
                    "must match [A-Za-z0-9_.@+-]{1,128}",
                ))
            }
        }
        (Principal::Admin, None) => Err(ApiError::invalid(
            "user_id",
            "required when the admin places a hold or purchase",
        )),
    }
}

/// Routes a hold id to its shard; an id of no shard of this server is simply not found.
pub fn route_hold(state: &AppState, text: &str) -> Result<(HoldId, usize), ApiError> {
    HoldId::parse(text)
        .and_then(|id| Some((id, state.shard_of_id(id.shard())?)))
        .ok_or_else(|| ApiError::not_found("hold"))
}

fn hold_json(output: Output) -> HoldJson {
    match output {
        Output::Hold(view) => HoldJson::from(&view),
        other => unreachable!("a hold command answered {other:?}"),
    }
}

/// Converts a booking output.
pub fn booking_json(output: Output) -> BookingJson {
    match output {
        Output::Booking(view) => BookingJson::from(&view),
        other => unreachable!("a booking command answered {other:?}"),
    }
}

/// Holds GA quantities and/or named seats, all or nothing, until `expires_at`.
pub async fn place(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(event_id): ApiPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Response, ApiError> {
    let route = format!("POST /v1/events/{event_id}/holds");
    let idem = idempotency(&headers, &route, &body)?;
    let user_id = user_for(&principal, body.user_id)?;
    let shard = state.shard_of_event(&event_id);
    let hold = NewHold {
        actor: principal.actor(),
        event_id,
        user_id,
        items: item_requests(body.items),
        seats: seat_ids(body.seats),
        ttl_ms: ttl_ms(body.ttl_seconds),
        payment_ref: None,
        idempotency: idem,
    };
    let command = match body.best_available {
        Some(best) => Command::PlaceHoldBest(hold, Box::new(best.into_engine())),
        None => Command::PlaceHold(hold),
    };
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
    let route = format!("POST /v1/holds/{id}/confirm");
    let idempotency = idempotency(&headers, &route, &body)?;
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
    let route = format!("DELETE /v1/holds/{id}");
    let idempotency = idempotency(&headers, &route, &())?;
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
    let route = format!("POST /v1/holds/{id}/extend");
    let idempotency = idempotency(&headers, &route, &body)?;
    let command = Command::ExtendHold {
        actor: principal.actor(),
        hold_id: id,
        ttl_ms: body.ttl_seconds.saturating_mul(1000),
        idempotency,
    };
    Ok(Json(hold_json(state.submit(shard, command).await?)))
}
