//! `gameserver`: parse the flags, start logging, bind, serve until SIGINT/SIGTERM.

use clap::Parser;
use server::config::{ReplayArgs, ServerCommand};
use server::{Config, Server};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let mut config = Config::parse();
    if let Some(ServerCommand::Replay(args)) = config.command.take() {
        return replay(&args);
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(serve(config)),
        Err(err) => {
            eprintln!("gameserver: cannot start the runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stdout, at `info` unless `RUST_LOG` says otherwise.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// `gameserver replay`: logs on stderr, so that `--print` owns stdout.
fn replay(args: &ReplayArgs) -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if args.print {
        return server::replay::print(args);
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            server::replay::serve_web(args, shutdown).await
        }),
        Err(err) => {
            eprintln!("gameserver: cannot start the runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(mut config: Config) -> std::process::ExitCode {
    init_logging();
    if config.is_classic() {
        tracing::info!(
            legacy_welcome = %config.legacy_welcome,
            positions_records = %config.positions_records,
            "classic compatibility switches on (not the legacy contract's defaults)"
        );
    }
    fit_file_descriptors(&mut config);
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(err) => {
            tracing::error!("{err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    server.run(shutdown).await;
    std::process::ExitCode::SUCCESS
}

/// Cancels `shutdown` on the first SIGINT (Ctrl-C) or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    // Cancels however this task ends, even if logging the signal panics
    // (stderr a closed pipe makes tracing's fallback `eprintln!` panic).
    let _cancel = shutdown.drop_guard();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                }
            }
            Err(err) => {
                tracing::warn!(cause = %err, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Raises the open-file limit as far as allowed and keeps
/// `--max-connections` within it, saying what it did.
fn fit_file_descriptors(config: &mut Config) {
    let nofile = match server::fd_limit::raise_nofile_limit() {
        Ok(nofile) => nofile,
        Err(err) => {
            tracing::warn!(cause = %err, "cannot read or raise the open-file limit");
            return;
        }
    };
    tracing::info!(
        open_files = nofile,
        "open-file limit (soft, raised to the hard limit)"
    );
    if let Some(cap) = server::fd_limit::connection_cap(config, nofile) {
        tracing::warn!(
            max_connections = config.max_connections,
            open_files = nofile,
            effective_max_connections = cap,
            headroom = server::fd_limit::headroom(config),
            "--max-connections does not fit the open-file limit: lowered so that \
             every accepted player has a descriptor (raise the hard limit, e.g. \
             LimitNOFILE= in systemd or `ulimit -Hn`, to allow more)"
        );
        config.max_connections = cap;
    }
}
