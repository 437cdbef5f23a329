//! The HTTP API: routes, shared state, and the two ways a handler reaches a shard
//! (`submit` a command, `read` durable state). Handlers only translate.

pub mod bookings;
pub mod convert;
pub mod dto;
pub mod dto_sale;
pub mod error;
pub mod events;
pub mod extract;
pub mod holds;
pub mod openapi;
pub mod ops;
pub mod waitlist;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use engine::{Command, Engine, Output};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::oneshot;

use crate::auth::Auth;
use crate::limits::BODY_BYTES_MAX;
use crate::shard::{QueueError, Request as ShardRequest, ShardError, ShardHandle};
use error::ApiError;

/// What every handler shares: the shards, the keys, the metrics.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    shards: Vec<ShardHandle>,
    auth: Auth,
    metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// State over running shards.
    pub fn new(shards: Vec<ShardHandle>, auth: Auth, metrics: Option<PrometheusHandle>) -> Self {
        AppState(Arc::new(Inner {
            shards,
            auth,
            metrics,
        }))
    }

    /// The keys.
    pub fn auth(&self) -> &Auth {
        &self.0.auth
    }

    /// The shards.
    pub fn shards(&self) -> &[ShardHandle] {
        &self.0.shards
    }

    /// The shard that owns an event: a stable hash of its id.
    pub fn shard_of_event(&self, event_id: &str) -> usize {
        (engine::fingerprint(&[event_id.as_bytes()]) % self.0.shards.len() as u64) as usize
    }

    /// The shard named by a hold or booking id, if this server has it.
    pub fn shard_of_id(&self, shard: u16) -> Option<usize> {
        let shard = usize::from(shard);
        (shard < self.0.shards.len()).then_some(shard)
    }

    fn handle(&self, shard: usize) -> Result<&ShardHandle, ApiError> {
        let handle = &self.0.shards[shard];
        if handle.status().is_recovering() {
            return Err(ApiError::unavailable(
                "the shard is recovering; retry shortly",
            ));
        }
        Ok(handle)
    }

    /// Sends a command to its shard and waits for the durable outcome.
    pub async fn submit(&self, shard: usize, command: Command) -> Result<Output, ApiError> {
        let (reply, outcome) = oneshot::channel();
        enqueue(
            self.handle(shard)?,
            ShardRequest::Command { command, reply },
        )?;
        match outcome.await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(ShardError::Rejected(rejection))) => Err(rejection.into()),
            Ok(Err(ShardError::Unavailable(reason))) => {
                tracing::debug!(%reason, "write refused");
                Err(ApiError::unavailable(
                    "the shard cannot write at the moment",
                ))
            }
            Err(_) => Err(ApiError::unavailable("the shard stopped")),
        }
    }

    /// Runs `f` on the shard's thread against durable state and returns its result.
    pub async fn read<T, F>(&self, shard: usize, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine, u64) -> T + Send + 'static,
    {
        let (reply, outcome) = oneshot::channel();
        let read = Box::new(move |engine: &Engine, now: u64| {
            let _ = reply.send(f(engine, now));
        });
        enqueue(self.handle(shard)?, ShardRequest::Read(read))?;
        outcome
            .await
            .map_err(|_| ApiError::unavailable("the shard cannot read at the moment"))
    }

    /// Metrics in Prometheus text format.
    pub fn render_metrics(&self) -> String {
        self.0
            .metrics
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default()
    }
}

fn enqueue(handle: &ShardHandle, request: ShardRequest) -> Result<(), ApiError> {
    handle.try_send(request).map_err(|e| match e {
        QueueError::Full => {
            metrics::counter!("boxoffice_overload_refusals_total").increment(1);
            ApiError::overloaded()
        }
        QueueError::Stopped => ApiError::unavailable("the shard stopped"),
    })
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    Router::new()
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
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(axum::middleware::from_fn(record_request))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
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

/// Counts requests by route and status and records their latency.
async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let response =
        match tokio::time::timeout(crate::limits::REQUEST_TIMEOUT, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::timeout().into_response(),
        };
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "boxoffice_http_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone()
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "boxoffice_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status
    )
    .increment(1);
    response
}

/// `201 Created` with a JSON body.
pub fn created<T: serde::Serialize>(body: T) -> Response {
    (axum::http::StatusCode::CREATED, axum::Json(body)).into_response()
}

/// Shorthand used by handlers that need only the state.
pub type St = State<AppState>;
