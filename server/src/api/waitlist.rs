//! The waiting list: join a section's list, read an entry, leave. Every rule (order,
//! set-aside tickets, offers) is the engine's; these handlers only translate.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use engine::{Command, EntryId, NewEntry, Output};

use super::client::AppState;
use super::convert::created;
use super::convert::{idempotency, user_for};
use super::dto_sale::{EntryJson, JoinBody};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use crate::auth::Principal;

/// Routes an entry id to its shard; an id of no shard of this server is not found.
fn route_entry(state: &AppState, text: &str) -> Result<(EntryId, usize), ApiError> {
    EntryId::parse(text)
        .and_then(|id| Some((id, state.shard_of_id(id.shard())?)))
        .ok_or_else(|| ApiError::not_found("entry"))
}

fn entry_json(output: Output) -> EntryJson {
    EntryJson::from(&output.into_entry())
}

/// Joins a section's waiting list (when it has fewer than `qty` tickets available).
pub async fn join(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(event_id): ApiPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<JoinBody>,
) -> Result<Response, ApiError> {
    let idem = idempotency(
        &headers,
        format_args!("POST /v1/events/{event_id}/waitlist"),
        &body,
    )?;
    let user_id = match (&principal, body.user_id) {
        (Principal::Admin, None) => {
            return Err(ApiError::invalid(
                "user_id",
                "required when the admin adds someone to a waiting list",
            ))
        }
        (_, user_id) => user_for(&principal, user_id)?,
    };
    let shard = state.shard_of_event(&event_id);
    let command = Command::JoinWaitlist(NewEntry {
        actor: principal.actor(),
        event_id,
        user_id,
        section_id: body.section_id,
        qty: body.qty,
        idempotency: idem,
    });
    Ok(created(entry_json(state.submit(shard, command).await?)))
}

/// The entry, with its status and position now.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(entry_id): ApiPath,
) -> Result<Json<EntryJson>, ApiError> {
    let (id, shard) = route_entry(&state, &entry_id)?;
    let actor = principal.actor();
    let view = state
        .read(shard, move |engine, now| {
            engine.waitlist_entry(id, &actor, now)
        })
        .await??;
    Ok(Json(EntryJson::from(&view)))
}

/// Leaves the waiting list; an outstanding offer is released and passed on.
pub async fn leave(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(entry_id): ApiPath,
    headers: HeaderMap,
) -> Result<Json<EntryJson>, ApiError> {
    let (id, shard) = route_entry(&state, &entry_id)?;
    let idempotency = idempotency(&headers, format_args!("DELETE /v1/waitlist/{id}"), &())?;
    let command = Command::LeaveWaitlist {
        actor: principal.actor(),
        entry_id: id,
        idempotency,
    };
    Ok(Json(entry_json(state.submit(shard, command).await?)))
}
