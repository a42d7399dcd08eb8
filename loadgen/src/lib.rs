//! Load generator for the game server's legacy services ("positions", "math")
//! and native protocol, plus the benchmark report (markdown and PNG plot).
//!
//! Each mode is a plain async function taking a config and returning a
//! serialisable report, so tests can run them against a real server.

pub mod cli;
pub mod connect;
pub mod idle;
pub mod math;
pub mod plot;
pub mod positions;
pub mod report;
pub mod stats;

/// Why a mode could not run at all (per-connection failures are counted in
/// the report instead).
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}
