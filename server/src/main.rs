//! The `boxoffice` binary: parse, set up logging, run, print the error.

use std::process::ExitCode;

use clap::Parser;
use server::cli::{Cli, Command, LogFormat, ServeArgs, TokenArgs, WalCommand};
use tracing_subscriber::EnvFilter;

/// A thread-caching allocator: request buffers are allocated on one thread (a tokio
/// worker, the shard) and freed on another, which glibc's malloc handles poorly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(args) => token(args),
        Command::Wal {
            command: WalCommand::Verify { data_dir },
        } => server::walcmd::verify(&data_dir),
        Command::Wal {
            command: WalCommand::Dump { data_dir },
        } => server::walcmd::dump(&data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("boxoffice: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: in a file or a journal they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Transparent huge pages off for the process (`PR_SET_THP_DISABLE`) unless
/// `BOXOFFICE_HUGE_PAGES=1`: the allocator asks for them, and the kernel then serves the first
/// touch of fresh memory by zeroing 2 MiB at once, a pause of several milliseconds inside a
/// decision each time a table takes a new chunk (docs/benchmarks.md, "Huge pages").
fn small_pages() {
    if std::env::var("BOXOFFICE_HUGE_PAGES").as_deref() == Ok("1") {
        return;
    }
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(%error, "cannot turn transparent huge pages off");
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    small_pages();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers.max(1));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(async move {
        // A write past RLIMIT_FSIZE must fail with EFBIG (the log latches and answers 503),
        // not kill the process: handling SIGXFSZ replaces its default action.
        let _file_size_signal =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
                .map_err(|e| format!("cannot handle SIGXFSZ: {e}"))?;
        let cluster = match (&args.cluster, args.node_id) {
            (Some(path), Some(node_id)) => {
                let file = server::raft_file(path)?;
                if file.node(node_id).is_none() {
                    return Err(format!(
                        "--node-id {node_id}: the cluster file {} has no node {node_id}",
                        path.display()
                    ));
                }
                Some(server::ClusterSetup { file, node_id })
            }
            _ => None,
        };
        let listen = match &cluster {
            Some(setup) => {
                let http = &setup.file.node(setup.node_id).expect("checked above").http;
                http.parse()
                    .map_err(|_| format!("the cluster file's http address {http} is not ip:port"))?
            }
            None => args.listen,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!("listening on {address}");
        let config = server::Config {
            data_dir: args.data_dir,
            shards: args.shards,
            admin_token: args.admin_token,
            jwt_secret: args.jwt_secret,
            connections_max: args.connections_max,
            shard_queue: args.shard_queue,
            wal_preallocate_bytes: args.wal_preallocate_kib.saturating_mul(1024),
        };
        let options = server::api::ApiOptions {
            cors_origins: args.cors_origins,
            outcome_wait: args.outcome_wait,
        };
        match cluster {
            Some(setup) => server::run_cluster(listener, config, options, setup, shutdown_signal())
                .await
                .map_err(|e| e.to_string()),
            None => server::run_with(listener, config, options, shutdown_signal())
                .await
                .map_err(|e| e.to_string()),
        }
    })
}

/// Resolves at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}

fn token(args: TokenArgs) -> Result<(), String> {
    let secret = match args.jwt_secret.filter(|s| !s.is_empty()) {
        Some(secret) => secret,
        None => {
            let path = args.data_dir.join("jwt_secret");
            let secret = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "cannot read {}: {e}; start the server once to generate it, or give \
                     BOXOFFICE_JWT_SECRET (the same the server uses)",
                    path.display()
                )
            })?;
            secret.trim().to_string()
        }
    };
    if !server::api::convert::is_valid_user_id(&args.user) {
        return Err(format!(
            "--user {:?}: {}",
            args.user,
            engine::limits::USER_ID_RULE
        ));
    }
    let auth = server::auth::Auth::new("", &secret);
    println!("{}", auth.mint(&args.user, args.ttl));
    Ok(())
}
