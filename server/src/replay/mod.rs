//! `gameserver replay PATH`: a recording made with `--record`, printed at
//! one moment (`--at SECONDS --print`) or served to browsers with a
//! timeline (`--web HOST:PORT`). The file → world logic is
//! [`shared::recording`], the same the client's `netgame replay` uses.

#[cfg(feature = "http")]
pub mod web;

use std::io::Write;
use std::process::ExitCode;

use shared::recording::Recording;
use tokio_util::sync::CancellationToken;

use crate::config::ReplayArgs;

/// Opens the recording named by `args`, saying on stderr what damage was
/// skipped (everything before it plays).
pub fn open(args: &ReplayArgs) -> Result<Recording, ExitCode> {
    match Recording::open(&args.path) {
        Ok(recording) => {
            for skipped in recording.skipped() {
                tracing::warn!("{skipped}; playing what comes before it");
            }
            Ok(recording)
        }
        Err(err) => {
            tracing::error!("cannot replay: {err}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// `--at SECONDS --print`: one line per player (`id name x y`) on stdout.
pub fn print(args: &ReplayArgs) -> ExitCode {
    let recording = match open(args) {
        Ok(recording) => recording,
        Err(code) => return code,
    };
    let at_ms = args.at_ms.unwrap_or(0);
    let world = match recording.world_at(at_ms) {
        Ok(world) => world,
        Err(err) => {
            tracing::error!("cannot replay: {err}");
            return ExitCode::FAILURE;
        }
    };
    if at_ms > recording.duration_ms() {
        tracing::warn!(
            at_ms,
            duration_ms = recording.duration_ms(),
            "--at is past the end of the recording: printing the world at its end"
        );
    }
    let mut out = std::io::stdout().lock();
    match world.write_lines(&mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("cannot print: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `--web HOST:PORT`: serves the recording to browsers until `shutdown`.
#[cfg(feature = "http")]
pub async fn serve_web(args: &ReplayArgs, shutdown: CancellationToken) -> ExitCode {
    use std::sync::Arc;

    let Some(addr) = args.web else {
        tracing::error!("gameserver replay needs --web HOST:PORT or --at SECONDS --print");
        return ExitCode::FAILURE;
    };
    let recording = match open(args) {
        Ok(recording) => recording,
        Err(code) => return code,
    };
    let listener = match crate::http::bind(addr) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("cannot listen on {addr} (replay web view): {err}");
            return ExitCode::FAILURE;
        }
    };
    let config = crate::Config::default();
    let limits = config.web_limits();
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(
        path = %args.path.display(),
        seconds = recording.duration_ms() as f64 / 1000.0,
        files = recording.paths().count(),
        "replaying"
    );
    crate::http::log_listening("the replay web view on / and /ws", local, &limits);
    let state = Arc::new(web::ReplayState {
        recording,
        shutdown: shutdown.clone(),
        write_timeout: config.write_timeout(),
    });
    crate::http::serve(listener, web::router(state), limits, shutdown).await;
    ExitCode::SUCCESS
}

/// Without HTTP support there is no web view to serve.
#[cfg(not(feature = "http"))]
pub async fn serve_web(_args: &ReplayArgs, _shutdown: CancellationToken) -> ExitCode {
    tracing::error!("this build has no HTTP support (cargo feature `http`): no --web");
    ExitCode::FAILURE
}
