//! Serving: recover the shards, accept connections with limits, shut down cleanly.
//!
//! Connections are served by hyper directly (not `axum::serve`) so that a header read
//! timeout can be set (slow clients cannot pin connections) and the number of
//! connections is capped (a new connection past the cap gets an immediate 503).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::api::{self, AppState};
use crate::auth::Auth;
use crate::datadir::{DataDir, DataDirError, Mode};
use crate::limits::{HEADER_READ_TIMEOUT, RETRY_AFTER_SECONDS};
use crate::shard;

/// How long connections get to finish at shutdown before the shards stop anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `serve` needs besides a listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory (created on first start).
    pub data_dir: PathBuf,
    /// Shard count for a new data directory; must match an existing one.
    pub shards: Option<usize>,
    /// The admin token; generated into the data directory when absent.
    pub admin_token: Option<String>,
    /// The HS256 key of user tokens; generated into the data directory when absent.
    pub jwt_secret: Option<String>,
    /// Connections served at once (default [`crate::limits::CONNECTIONS_MAX`]).
    pub connections_max: usize,
    /// Requests queued per shard (default [`crate::limits::SHARD_QUEUE_CAPACITY`]).
    pub shard_queue: usize,
    /// Bytes of zeros each shard's log reserves ahead of its records at a time (default
    /// [`crate::limits::WAL_PREALLOCATE_BYTES`]; 0: none).
    pub wal_preallocate_bytes: u64,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data directory could not be prepared.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// A shard thread could not start.
    #[error("cannot start a shard thread: {0}")]
    Thread(#[from] std::io::Error),
    /// A shard's log or snapshot is damaged (invariant 9, docs/architecture.md): start-up stops.
    #[error("{0}")]
    Recovery(String),
}

/// A data directory opened and its shards started (recovering in the background).
pub struct Running {
    /// The handlers' shared state.
    pub state: AppState,
    threads: Vec<std::thread::JoinHandle<()>>,
    data: DataDir,
    /// Cluster mode's node (its Raft groups), if this server is one.
    cluster: Option<Arc<raft::ClusterNode>>,
}

/// What makes `serve` a node of a cluster (`--cluster FILE --node-id N`).
#[derive(Debug, Clone)]
pub struct ClusterSetup {
    /// The cluster file, parsed and checked.
    pub file: raft::ClusterFile,
    /// This node's id in it.
    pub node_id: raft::NodeId,
}

impl Running {
    /// Locks the data directory, settles the secrets, and starts one thread per shard.
    pub fn start(config: &Config) -> Result<Self, RunError> {
        Self::start_with_time(config, shard::Time::System)
    }

    /// [`Running::start`] with every shard's time taken from `time` (tests: a manual clock).
    pub fn start_with_time(config: &Config, time: shard::Time) -> Result<Self, RunError> {
        let data = DataDir::open(&config.data_dir, config.shards, Mode::Single)?;
        let admin_token = settle_secret(&data, "admin_token", config.admin_token.as_deref())?;
        let jwt_secret = settle_secret(&data, "jwt_secret", config.jwt_secret.as_deref())?;
        // The recorder goes in before the shard threads start: a shard creates its metric
        // handles as it starts, and a handle made with no recorder installed records nothing.
        let prometheus = crate::metrics::install();
        let wal_options = wal::Options {
            preallocate_bytes: config.wal_preallocate_bytes,
            ..wal::Options::default()
        };
        let mut handles = Vec::with_capacity(data.shards());
        let mut threads = Vec::with_capacity(data.shards());
        for index in 0..data.shards() {
            let (handle, thread) = shard::spawn_with(
                index as u16,
                data.shard_dir(index),
                config.shard_queue,
                wal_options,
                time.clone(),
            )?;
            handles.push(handle);
            threads.push(thread);
        }
        let auth = Auth::new(&admin_token, &jwt_secret);
        let state = AppState::new(handles, auth, Some(prometheus));
        tracing::info!(shards = data.shards(), data_dir = %data.root().display(), "recovering shards");
        Ok(Running {
            state,
            threads,
            data,
            cluster: None,
        })
    }

    /// Cluster mode: locks the data directory, settles the secrets, starts this node's Raft
    /// group of every shard (logs and snapshots under `shard-<n>/`) and one driver thread per
    /// shard.
    pub async fn start_cluster(config: &Config, setup: &ClusterSetup) -> Result<Self, RunError> {
        let data = DataDir::open(
            &config.data_dir,
            Some(usize::from(setup.file.shards)),
            Mode::Cluster,
        )?;
        let admin_token = settle_secret(&data, "admin_token", config.admin_token.as_deref())?;
        let jwt_secret = settle_secret(&data, "jwt_secret", config.jwt_secret.as_deref())?;
        let prometheus = crate::metrics::install();
        let node = raft::ClusterNode::start(
            setup.file.clone(),
            setup.node_id,
            data.root(),
            raft::NodeOptions::default(),
        )
        .await
        .map_err(|e| RunError::Recovery(e.to_string()))?;
        let node = Arc::new(node);
        let runtime = tokio::runtime::Handle::current();
        let mut handles = Vec::with_capacity(data.shards());
        let mut threads = Vec::with_capacity(data.shards());
        for index in 0..data.shards() {
            let (handle, thread) = crate::cluster::spawn(
                index as u16,
                Arc::clone(&node),
                runtime.clone(),
                config.shard_queue,
            )?;
            handles.push(handle);
            threads.push(thread);
        }
        let auth = Auth::new(&admin_token, &jwt_secret);
        let state = AppState::new(handles, auth, Some(prometheus)).with_cluster(Arc::clone(&node));
        tracing::info!(
            node = setup.node_id,
            shards = data.shards(),
            data_dir = %data.root().display(),
            "cluster node started"
        );
        Ok(Running {
            state,
            threads,
            data,
            cluster: Some(node),
        })
    }

    /// Waits until every shard has recovered (or failed), at most `deadline`.
    pub async fn wait_recovered(&self, deadline: Duration) -> bool {
        let started = std::time::Instant::now();
        while self
            .state
            .shards()
            .iter()
            .any(|s| s.status().is_recovering())
        {
            if started.elapsed() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Waits for every shard's recovery; resolves with the first shard's reason if any
    /// recovery failed, and never resolves otherwise.
    pub async fn recovery_failure(&self) -> String {
        while !self.wait_recovered(Duration::from_secs(3600)).await {}
        match self
            .state
            .shards()
            .iter()
            .find_map(|s| s.status().recovery_failure())
        {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }

    /// Has every shard answer what is queued, sync, snapshot and stop; then unlocks.
    pub async fn stop(self) {
        let Running {
            state,
            threads,
            data,
            cluster,
        } = self;
        tracing::info!("draining shard queues");
        tokio::task::spawn_blocking(move || {
            for handle in state.shards() {
                handle.shutdown();
            }
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await
        .expect("the shutdown task does not panic");
        if let Some(node) = cluster {
            node.shutdown().await;
        }
        drop(data);
        tracing::info!("stopped");
    }
}

/// The secret `name`: `given`, or the one in (or generated into) the data directory, whose
/// file the log then names.
fn settle_secret(data: &DataDir, name: &str, given: Option<&str>) -> Result<String, RunError> {
    let (secret, generated) = data.secret(name, given)?;
    if given.is_none_or(str::is_empty) {
        let path = data.root().join(name);
        tracing::info!(path = %path.display(), generated, "the {name} is in this file");
    }
    Ok(secret)
}

/// Recovers every shard, serves `listener` until `shutdown` resolves, then stops accepting,
/// lets open requests finish, has every shard answer its queue, sync and snapshot.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with(listener, config, api::ApiOptions::default(), shutdown).await
}

/// [`run`] with API options (CORS origins, the outcome wait).
pub async fn run_with(
    listener: TcpListener,
    config: Config,
    options: api::ApiOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_running(listener, config, options, None, shutdown).await
}

/// [`run_with`] as a node of a cluster: the API on `listener` (the node's `http` address).
pub async fn run_cluster(
    listener: TcpListener,
    config: Config,
    options: api::ApiOptions,
    setup: ClusterSetup,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_running(listener, config, options, Some(setup), shutdown).await
}

async fn run_running(
    listener: TcpListener,
    config: Config,
    options: api::ApiOptions,
    setup: Option<ClusterSetup>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let mut running = match &setup {
        None => Running::start(&config)?,
        Some(setup) => Running::start_cluster(&config, setup).await?,
    };
    running.state = running.state.with_options(options);
    let upkeep = tokio::spawn(async move {
        let prometheus = crate::metrics::install();
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            prometheus.run_upkeep();
        }
    });
    // Damage found in recovery stops the server: serving on from the other shards would
    // hide it behind 503s.
    let failed = parking_lot::Mutex::new(None);
    let stop = async {
        tokio::select! {
            () = shutdown => {}
            reason = running.recovery_failure() => {
                tracing::error!(%reason, "recovery failed: stopping");
                *failed.lock() = Some(reason);
            }
        }
        // Live streams never end by themselves: end them so open connections can finish.
        running
            .state
            .shards()
            .iter()
            .for_each(|s| s.stream().close());
    };
    serve(
        listener,
        api::router(running.state.clone()),
        config.connections_max,
        stop,
    )
    .await;
    upkeep.abort();
    running.stop().await;
    match failed.into_inner() {
        Some(reason) => Err(RunError::Recovery(reason)),
        None => Ok(()),
    }
}

/// Accepts connections until `shutdown`, then waits (bounded) for open ones to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    connections_max: usize,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(connections_max.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: a client that sends its request and then shuts down its writing side
    // (`shutdown(SHUT_WR)`) still gets its answer; without it hyper would drop the request
    // at the end of input, leaving the client with no answer and no effect.
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .half_close(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics::counter!("boxoffice_connections_refused_total").increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(
            TokioIo::new(crate::stream::WriteStall::new(stream)),
            service,
        ));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; waiting for open requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    metrics::counter!("boxoffice_rejections_total", "code" => "overloaded").increment(1);
    let body = r#"{"error":{"code":"overloaded","message":"too many connections; retry"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {RETRY_AFTER_SECONDS}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}
