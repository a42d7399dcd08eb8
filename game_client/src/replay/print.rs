//! `netgame replay PATH --at SECONDS --print`: the world at one moment,
//! one line per player (`id name x y`), for scripts and tests.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use shared::recording::Recording;

/// Prints the world of the recording at `path` at `at_ms` to stdout; what
/// went wrong, and damage skipped, to stderr.
pub fn print_world_at(path: &Path, at_ms: u64) -> ExitCode {
    let recording = match Recording::open(path) {
        Ok(recording) => recording,
        Err(err) => {
            eprintln!("netgame: cannot replay: {err}");
            return ExitCode::FAILURE;
        }
    };
    for skipped in recording.skipped() {
        eprintln!("netgame: warning: {skipped}; playing what comes before it");
    }
    if at_ms > recording.duration_ms() {
        eprintln!(
            "netgame: warning: --at is past the end of the recording ({:.3} s): printing the world at its end",
            recording.duration_ms() as f64 / 1000.0
        );
    }
    let world = match recording.world_at(at_ms) {
        Ok(world) => world,
        Err(err) => {
            eprintln!("netgame: cannot replay: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    match world.write_lines(&mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("netgame: cannot print: {err}");
            ExitCode::FAILURE
        }
    }
}
