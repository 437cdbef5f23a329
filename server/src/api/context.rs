//! The request being served, reachable from the handler's task: its id (for error bodies
//! and logs) and whether a command was queued for it. The middleware of `api/mod.rs` sets
//! it; the shard client and the error answers read it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::limits::REQUEST_ID_LEN_MAX;

/// What the middleware knows of the request being served, reachable from the handler's
/// task: its id (for error bodies and logs) and whether a command was queued for it.
pub(super) struct RequestContext {
    pub(super) id: String,
    pub(super) queued: AtomicBool,
}

tokio::task_local! {
    pub(super) static REQUEST: Arc<RequestContext>;
}

/// The id of the request this task serves (`X-Request-Id`), if any.
pub fn current_request_id() -> Option<String> {
    REQUEST.try_with(|c| c.id.clone()).ok()
}

/// Notes that the request's command is queued to a shard: from now on the request timeout
/// no longer applies (the outcome wait of `AppState::submit` does).
pub(super) fn mark_queued() {
    let _ = REQUEST.try_with(|c| c.queued.store(true, Ordering::Release));
}

/// The client's `X-Request-Id` when it is 1 to [`REQUEST_ID_LEN_MAX`] visible ASCII
/// characters, else a generated one (32 hex digits).
pub(super) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= REQUEST_ID_LEN_MAX
                && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}
