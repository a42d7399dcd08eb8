//! `server`: parse the flags, start logging, bind, serve until SIGINT/SIGTERM.

use clap::Parser;
use server::{Config, Server, fd_limit, log_throttle};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
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
    tokio::spawn(log_throttle::flush_periodically(shutdown.clone()));
    server.run(shutdown).await;
    log_throttle::flush_all();
    std::process::ExitCode::SUCCESS
}

/// Raises the soft descriptor limit to the hard one, logs it, and lowers
/// `--max-connections` (saying so) when the limit cannot hold that many
/// clients plus the listeners, HTTP connections and logs.
fn fit_file_descriptors(config: &mut Config) {
    let limit = match fd_limit::raise_nofile_limit() {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(cause = %err, "cannot read or raise the file descriptor limit (RLIMIT_NOFILE)");
            return;
        }
    };
    tracing::info!(
        soft = limit.soft,
        hard = limit.hard,
        was = limit.before,
        "file descriptor limit (RLIMIT_NOFILE)"
    );
    // Once the HTTP caps are config fields (web branch), count those:
    // config.metrics_max_connections + config.web_max_connections.
    let headroom = fd_limit::headroom(fd_limit::HTTP_HEADROOM_FDS);
    let fitted = fd_limit::fit_max_connections(config.max_connections, limit.soft, headroom);
    if fitted < config.max_connections {
        tracing::warn!(
            requested = config.max_connections,
            effective = fitted,
            fd_limit = limit.soft,
            headroom,
            "--max-connections lowered to fit the file descriptor limit; raise the hard limit \
             (LimitNOFILE= in systemd, `ulimit -Hn` in a shell) to serve more"
        );
        config.max_connections = fitted;
    }
}

/// Cancels `shutdown` on the first SIGINT (Ctrl-C) or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
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
    shutdown.cancel();
}
