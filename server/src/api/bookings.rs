//! Bookings: buy at once, read, cancel, list.

use std::cmp::Reverse;

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use engine::{BookingId, BookingQuery, Command};
use serde::Deserialize;
use utoipa::IntoParams;

use super::client::AppState;
use super::cluster::{list_part, list_plan};
use super::convert::created;
use super::convert::{
    booking_cursor, booking_json, idempotency, page, page_limit, parse_booking_cursor,
    parse_rfc3339, purchase_take, take_command,
};
use super::dto::{BookingJson, BookingPage, PurchaseBody};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::Principal;

fn route_booking(state: &AppState, text: &str) -> Result<(BookingId, usize), ApiError> {
    BookingId::parse(text)
        .and_then(|id| Some((id, state.shard_of_id(id.shard())?)))
        .ok_or_else(|| ApiError::not_found("booking"))
}

/// Buys at once: hold and confirm as one decision.
pub async fn purchase(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(event_id): ApiPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PurchaseBody>,
) -> Result<Response, ApiError> {
    let idem = idempotency(
        &headers,
        format_args!("POST /v1/events/{event_id}/bookings"),
        &body,
    )?;
    let shard = state.shard_of_event(&event_id);
    let (hold, take) = purchase_take(body);
    let command = take_command(&principal, event_id, hold, take, idem)?;
    Ok(created(booking_json(state.submit(shard, command).await?)))
}

/// One booking.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(booking_id): ApiPath,
) -> Result<Json<BookingJson>, ApiError> {
    let (id, shard) = route_booking(&state, &booking_id)?;
    let actor = principal.actor();
    let view = state
        .read(shard, move |engine, _| engine.booking(id, &actor))
        .await??;
    Ok(Json(BookingJson::from(&view)))
}

/// Cancels a booking; its inventory returns to sale.
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(booking_id): ApiPath,
    headers: HeaderMap,
) -> Result<Json<BookingJson>, ApiError> {
    let (id, shard) = route_booking(&state, &booking_id)?;
    let idempotency = idempotency(&headers, format_args!("POST /v1/bookings/{id}/cancel"), &())?;
    let command = Command::CancelBooking {
        actor: principal.actor(),
        booking_id: id,
        idempotency,
    };
    Ok(Json(booking_json(state.submit(shard, command).await?)))
}

/// Filters and paging of the booking list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BookingListParams {
    /// Only this event's bookings.
    pub event_id: Option<String>,
    /// Only this user's bookings (a user token always lists only its own).
    pub user_id: Option<String>,
    /// Page size, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^(0|[1-9][0-9]{0,18})\.b-(0|[1-9][0-9]{0,3})-[1-9][0-9]{0,13}$")]
    pub after: Option<String>,
}

/// Bookings, newest first, cursor-paged. A user sees only their own. In a cluster, each
/// shard's part comes from its leader.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    ApiQuery(params): ApiQuery<BookingListParams>,
) -> Result<Json<BookingPage>, ApiError> {
    let user_id = match (&principal, params.user_id) {
        (Principal::User(me), Some(named)) if named != *me => {
            return Err(ApiError::forbidden("user_id names another user"))
        }
        (Principal::User(me), _) => Some(me.clone()),
        (Principal::Admin, named) => named,
    };
    let limit = page_limit(params.limit)?;
    let before = params
        .after
        .as_deref()
        .map(parse_booking_cursor)
        .transpose()?;
    let shards: Vec<usize> = match &params.event_id {
        Some(event_id) => vec![state.shard_of_event(event_id)],
        None => (0..state.shards().len()).collect(),
    };
    // Newest first: the key is the reverse of (created_at, id).
    let (mut all, mut more) = (Vec::new(), false);
    for (shard, leader) in list_plan(&state, &headers, shards)? {
        if let Some(leader) = leader {
            let part: BookingPage = list_part(&state, leader, &headers, &uri, shard).await?;
            more |= part.next_cursor.is_some();
            for b in part.data {
                let ms = parse_rfc3339("created_at", &b.created_at)
                    .ok()
                    .and_then(|ms| u64::try_from(ms).ok());
                let (Some(ms), Some(id)) = (ms, BookingId::parse(&b.id)) else {
                    return Err(ApiError::unavailable(
                        "another node's part of the list did not parse",
                    ));
                };
                all.push((Reverse((ms, id)), b));
            }
            continue;
        }
        let query = BookingQuery {
            event_id: params.event_id.clone(),
            user_id: user_id.clone(),
            before,
            limit: limit + 1,
        };
        let views = state
            .read(shard, move |engine, _| engine.bookings(&query))
            .await?;
        all.extend(
            views
                .iter()
                .map(|b| (Reverse((b.created_at_ms, b.id)), BookingJson::from(b))),
        );
    }
    Ok(Json(page(all, more, limit, |Reverse((ms, id))| {
        booking_cursor(*ms, *id)
    })))
}
