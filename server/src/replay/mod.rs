//! `gameserver replay PATH`: a recording made with `--record`, printed at
//! one moment (`--at SECONDS --print`) or served to browsers with a
//! timeline (`--web HOST:PORT`). The file → world logic is
//! [`shared::recording`], the same the client's `netgame replay` uses.

use std::io::Write;
use std::process::ExitCode;

use shared::recording::Recording;

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

/// `--web HOST:PORT`: not built yet.
pub async fn serve_web(args: &ReplayArgs) -> ExitCode {
    let _ = args;
    tracing::error!("gameserver replay --web is not available in this build yet");
    ExitCode::FAILURE
}
