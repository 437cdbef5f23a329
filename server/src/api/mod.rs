//! The HTTP API: routes, shared state, and the two ways a handler reaches a shard
//! (`submit` a command, `read` durable state). Handlers only translate.

pub mod bookings;
pub mod cluster;
pub mod convert;
pub mod dto;
pub mod dto_sale;
pub mod error;
pub mod events;
pub mod extract;
pub mod holds;
pub mod openapi;
pub mod ops;
pub mod stream;
pub mod waitlist;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use engine::{Command, Engine, Output};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::auth::Auth;
use crate::limits::{
    BODY_BYTES_MAX, CORS_MAX_AGE_SECONDS, OUTCOME_WAIT_MAX, READ_WAIT_MAX, REQUEST_ID_LEN_MAX,
    REQUEST_TIMEOUT,
};
use crate::shard::{QueueError, Request as ShardRequest, ShardError, ShardHandle};
use error::ApiError;

/// What every handler shares: the shards, the keys, the metrics.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    shards: Vec<ShardHandle>,
    auth: Auth,
    metrics: Option<PrometheusHandle>,
    options: ApiOptions,
    /// Cluster mode's node: requests for a shard led elsewhere are forwarded there.
    cluster: Option<Arc<raft::ClusterNode>>,
}

/// How the API answers, besides its routes: which browser origins may call it (CORS) and
/// how long a request waits for its shard's outcome.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Origins (`scheme://host[:port]`) whose browser pages may call the API; `*` allows
    /// any. Empty: no CORS headers, and preflights are refused with 403.
    pub cors_origins: Vec<String>,
    /// Longest wait for a queued command's outcome before 503 `outcome_unknown`.
    pub outcome_wait: Duration,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            cors_origins: Vec::new(),
            outcome_wait: OUTCOME_WAIT_MAX,
        }
    }
}

impl ApiOptions {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if it is allowed.
    fn allowed_origin(&self, origin: &str) -> Option<HeaderValue> {
        if self.cors_origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        self.cors_origins
            .iter()
            .any(|o| o == origin)
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }
}

impl AppState {
    /// State over running shards.
    pub fn new(shards: Vec<ShardHandle>, auth: Auth, metrics: Option<PrometheusHandle>) -> Self {
        AppState(Arc::new(Inner {
            shards,
            auth,
            metrics,
            options: ApiOptions::default(),
            cluster: None,
        }))
    }

    /// The same state as a node of a cluster. Call it before the state is shared.
    pub fn with_cluster(mut self, node: Arc<raft::ClusterNode>) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("the cluster is set before the state is shared")
            .cluster = Some(node);
        self
    }

    /// Cluster mode's node, if this server is one.
    pub fn cluster(&self) -> Option<&Arc<raft::ClusterNode>> {
        self.0.cluster.as_ref()
    }

    /// The same state with these options. Call it before the state is shared.
    pub fn with_options(mut self, options: ApiOptions) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("options are set before the state is shared")
            .options = options;
        self
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
        crate::routing::shard_for_event(event_id, self.0.shards.len())
    }

    /// The shard named by a hold or booking id, if this server has it.
    pub fn shard_of_id(&self, shard: u16) -> Option<usize> {
        let shard = usize::from(shard);
        (shard < self.0.shards.len()).then_some(shard)
    }

    fn handle(&self, shard: usize) -> Result<&ShardHandle, ApiError> {
        if let Some(node) = &self.0.cluster {
            cluster::route(node, shard)?;
        }
        let handle = &self.0.shards[shard];
        if handle.status().is_recovering() {
            return Err(ApiError::unavailable(
                "the shard is recovering; retry shortly",
            ));
        }
        Ok(handle)
    }

    /// Sends a command to its shard and waits for the durable outcome, at most the outcome
    /// wait. Once the command is queued the answer never says that nothing happened unless
    /// the shard said so: past the wait, or if the shard went away without answering, it is
    /// 503 `outcome_unknown` (retry with the same `Idempotency-Key`).
    pub async fn submit(&self, shard: usize, command: Command) -> Result<Output, ApiError> {
        let (reply, outcome) = oneshot::channel();
        enqueue(
            self.handle(shard)?,
            ShardRequest::Command { command, reply },
        )?;
        mark_queued();
        let wait = self.0.options.outcome_wait;
        let outcome = match tokio::time::timeout(wait, outcome).await {
            Ok(outcome) => outcome,
            Err(_) => {
                metrics::counter!("boxoffice_outcome_unknown_total").increment(1);
                tracing::warn!(
                    shard,
                    request_id = current_request_id().unwrap_or_default(),
                    "no outcome from the shard within {wait:?}: answered outcome_unknown"
                );
                return Err(ApiError::outcome_unknown(format!(
                    "its shard did not answer within {} s",
                    wait.as_secs_f64()
                )));
            }
        };
        match outcome {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(ShardError::Rejected(rejection))) => Err(rejection.into()),
            Ok(Err(ShardError::Unavailable(reason))) => {
                tracing::debug!(%reason, "write refused");
                Err(ApiError::unavailable(
                    "the shard cannot write at the moment",
                ))
            }
            Ok(Err(ShardError::OutcomeUnknown(why))) => {
                metrics::counter!("boxoffice_outcome_unknown_total").increment(1);
                Err(ApiError::outcome_unknown(why))
            }
            Err(_) => Err(ApiError::outcome_unknown(
                "its shard stopped before answering".to_string(),
            )),
        }
    }

    /// Runs `f` on the shard's thread against durable state and returns its result (503
    /// `unavailable` if the shard does not answer within [`READ_WAIT_MAX`]).
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
        match tokio::time::timeout(READ_WAIT_MAX, outcome).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(ApiError::unavailable("the shard cannot read at the moment")),
            Err(_) => Err(ApiError::unavailable(format!(
                "the shard did not answer within {} s; retry",
                READ_WAIT_MAX.as_secs()
            ))),
        }
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
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cluster::forward,
        ))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors))
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

/// What the middleware knows of the request being served, reachable from the handler's
/// task: its id (for error bodies and logs) and whether a command was queued for it.
struct RequestContext {
    id: String,
    queued: AtomicBool,
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// The id of the request this task serves (`X-Request-Id`), if any.
pub fn current_request_id() -> Option<String> {
    REQUEST.try_with(|c| c.id.clone()).ok()
}

/// Notes that the request's command is queued to a shard: from now on the request timeout
/// no longer applies (the outcome wait of [`AppState::submit`] does).
fn mark_queued() {
    let _ = REQUEST.try_with(|c| c.queued.store(true, Ordering::Release));
}

/// The client's `X-Request-Id` when it is 1 to [`REQUEST_ID_LEN_MAX`] visible ASCII
/// characters, else a generated one (32 hex digits).
fn request_id(headers: &HeaderMap) -> String {
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

/// Gives every request an id (the client's `X-Request-Id`, validated, or a generated one),
/// answered in `X-Request-Id` and in error bodies; bounds the time until its command is
/// queued (408 `request_timeout` when the body did not arrive in time, nothing done); counts
/// requests by route and status, records their latency, and writes one access log line
/// (target `boxoffice::access`, level debug).
async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let context = Arc::new(RequestContext {
        id: request_id(request.headers()),
        queued: AtomicBool::new(false),
    });
    let span = tracing::debug_span!(target: "boxoffice::access", "request",
        method = %method, route = %route, request_id = %context.id);
    let handler = REQUEST
        .scope(Arc::clone(&context), next.run(request))
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
    metrics::histogram!(
        "boxoffice_http_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone()
    )
    .record(elapsed.as_secs_f64());
    metrics::counter!(
        "boxoffice_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status.to_string()
    )
    .increment(1);
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
async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
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
        next.run(request).await
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

/// `201 Created` with a JSON body.
pub fn created<T: serde::Serialize>(body: T) -> Response {
    (axum::http::StatusCode::CREATED, axum::Json(body)).into_response()
}

/// Shorthand used by handlers that need only the state.
pub type St = State<AppState>;
