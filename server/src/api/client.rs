//! The shard client: what every handler shares ([`AppState`]: the shards, the keys, the
//! metrics) and the two ways a handler reaches a shard: [`AppState::submit`] a command and
//! wait for its durable outcome, [`AppState::read`] durable state on the shard's thread.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use engine::{Command, Engine, Output};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::oneshot;

use super::context::{current_request_id, mark_queued};
use super::error::ApiError;
use super::leader;
use crate::auth::Auth;
use crate::limits::{OUTCOME_WAIT_MAX, READ_WAIT_MAX};
use crate::metrics::HttpSeries;
use crate::shard::{QueueError, Request as ShardRequest, ShardError, ShardHandle};

/// What every handler shares: the shards, the keys, the metrics.
#[derive(Clone)]
pub struct AppState(pub(super) Arc<Inner>);

pub(super) struct Inner {
    shards: Vec<ShardHandle>,
    auth: Auth,
    metrics: Option<PrometheusHandle>,
    pub(super) options: ApiOptions,
    /// Cluster mode's node: requests for a shard led elsewhere are forwarded there.
    cluster: Option<Arc<raft::ClusterNode>>,
    /// The HTTP request series' handles.
    http_series: HttpSeries,
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
    pub(crate) fn allowed_origin(&self, origin: &str) -> Option<HeaderValue> {
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
            http_series: HttpSeries::default(),
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

    /// The HTTP request series, counted by the API's middleware.
    pub fn http_series(&self) -> &HttpSeries {
        &self.0.http_series
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
            leader::route(node, shard)?;
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
