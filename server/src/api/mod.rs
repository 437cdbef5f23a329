//! The HTTP API: the routes and the middleware every request passes. The shard client
//! (the shared state, `submit` a command, `read` durable state) is `client.rs`; handlers
//! only translate, and import the client, never each other.

pub mod bookings;
pub mod client;
pub mod cluster;
pub mod context;
pub mod convert;
pub mod dto;
pub mod dto_sale;
pub mod error;
pub mod events;
pub mod extract;
pub mod holds;
pub mod leader;
pub mod openapi;
pub mod ops;
pub mod stream;
pub mod waitlist;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tracing::Instrument;

use crate::limits::{BODY_BYTES_MAX, CORS_MAX_AGE_SECONDS, REQUEST_TIMEOUT};
pub use client::{ApiOptions, AppState};
pub use context::current_request_id;
use context::{request_id, RequestContext, REQUEST};
use error::ApiError;

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    let mut routes: Router<AppState> = Router::new()
        .route("/v1/events", post(events::create).get(events::list))
        .route("/v1/events/{event_id}", get(events::get))
        .route("/v1/events/{event_id}/seats", get(events::seats))
        .route("/v1/events/{event_id}/holds", post(holds::place))
        .route("/v1/events/{event_id}/bookings", post(bookings::purchase))
        .route(
            "/v1/holds/{hold_id}",
            get(holds::get).delete(holds::release),
        )
        .route("/v1/holds/{hold_id}/confirm", post(holds::confirm))
        .route("/v1/holds/{hold_id}/extend", post(holds::extend))
        .route("/v1/events/{event_id}/waitlist", post(waitlist::join))
        .route(
            "/v1/waitlist/{entry_id}",
            get(waitlist::get).delete(waitlist::leave),
        )
        .route("/v1/bookings", get(bookings::list))
        .route("/v1/bookings/{booking_id}", get(bookings::get))
        .route("/v1/bookings/{booking_id}/cancel", post(bookings::cancel))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/v1/cluster", get(cluster::status))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/events/{event_id}/stream", get(stream::stream))
        .route("/", get(crate::page::index))
        .route("/events/{event_id}", get(crate::page::event))
        .route("/page/style.css", get(crate::page::style))
        .route("/page/list.js", get(crate::page::list_js))
        .route("/page/seatmap.js", get(crate::page::seatmap_js))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() });
    // A single-node server forwards nothing: the forwarder is a layer in cluster mode only.
    if state.cluster().is_some() {
        routes = routes.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cluster::forward,
        ));
    }
    routes
        .layer(axum::middleware::from_fn_with_state(state.clone(), front))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

/// What every request passes before its route, outermost first: [`record_request`] (its
/// id, its time limit, its metrics and access log line), [`cors`], then
/// [`refuse_declared_oversize`]. One layer, not three: each `from_fn` layer clones the
/// service inside it and moves a future of its own on every request.
async fn front(State(state): State<AppState>, request: Request, next: Next) -> Response {
    record_request(&state, request, next).await
}

/// Answers 413 at once when the head declares a body over the limit, instead of reading
/// (and waiting for) a body that would be refused anyway. The connection is closed after
/// the answer, since the unread body cannot be skipped.
async fn refuse_declared_oversize(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > BODY_BYTES_MAX as u64) {
        let mut response = ApiError::payload_too_large().into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return response;
    }
    next.run(request).await
}

/// Gives every request an id (the client's `X-Request-Id`, validated, or a generated one),
/// answered in `X-Request-Id` and in error bodies; bounds the time until its command is
/// queued (408 `request_timeout` when the body did not arrive in time, nothing done); counts
/// requests by route and status, records their latency, and writes one access log line
/// (target `boxoffice::access`, level debug).
async fn record_request(state: &AppState, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Kept as they are (a shared string, an enum): no copy unless a series is new.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = request.method().clone();
    let method = method.as_str();
    let context = Arc::new(RequestContext {
        id: request_id(request.headers()),
        queued: AtomicBool::new(false),
    });
    let span = tracing::debug_span!(target: "boxoffice::access", "request",
        method = %method, route = %route, request_id = %context.id);
    let handler = REQUEST
        .scope(Arc::clone(&context), cors(state, request, next))
        .instrument(span.clone());
    tokio::pin!(handler);
    let mut response = tokio::select! {
        response = &mut handler => response,
        () = tokio::time::sleep(REQUEST_TIMEOUT) => {
            if context.queued.load(Ordering::Acquire) {
                // The command is with its shard: wait for the outcome (bounded by the
                // outcome wait), never answer as if nothing had happened.
                handler.await
            } else {
                REQUEST.sync_scope(Arc::clone(&context), || ApiError::timeout().into_response())
            }
        }
    };
    if let Ok(value) = HeaderValue::from_str(&context.id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    tracing::debug!(target: "boxoffice::access", parent: &span,
        status, latency_us = elapsed.as_micros() as u64, "answered");
    state.http_series().record(method, route, status, elapsed);
    response
}

/// Request headers a browser page may send (the preflight's `Access-Control-Allow-Headers`).
const CORS_ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Idempotency-Key, X-Request-Id, Last-Event-ID";
/// Methods of the API (the preflight's `Access-Control-Allow-Methods`).
const CORS_ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// Answer headers a browser page may read (`Access-Control-Expose-Headers`).
const CORS_EXPOSE_HEADERS: &str = "X-Request-Id, Retry-After, Date";

/// CORS for the origins given to `serve --cors-origin`. A preflight (`OPTIONS` with
/// `Origin` and `Access-Control-Request-Method`) from an allowed origin is answered 204
/// with the allowed methods and headers; from any other origin 403 `forbidden`, without
/// CORS headers. Other answers to an allowed origin carry `Access-Control-Allow-Origin` and
/// `Access-Control-Expose-Headers`; to other origins, none.
async fn cors(state: &AppState, request: Request, next: Next) -> Response {
    let options = &state.0.options;
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|origin| options.allowed_origin(origin));
    let preflight = request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        match &allowed {
            Some(_) => {
                let mut response = StatusCode::NO_CONTENT.into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(CORS_ALLOW_METHODS),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(CORS_ALLOW_HEADERS),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from(CORS_MAX_AGE_SECONDS),
                );
                response
            }
            None => ApiError::forbidden(
                "this origin may not call the API from a browser (the server allows the \
                 origins given to serve --cors-origin)",
            )
            .into_response(),
        }
    } else {
        refuse_declared_oversize(request, next).await
    };
    let headers = response.headers_mut();
    if let Some(origin) = allowed {
        let any = origin == "*";
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if !preflight {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(CORS_EXPOSE_HEADERS),
            );
        }
        if !any {
            headers.append(header::VARY, HeaderValue::from_static("origin"));
        }
    } else if !options.cors_origins.is_empty() {
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}
