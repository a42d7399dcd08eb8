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

/// The process exit code of a run's verdict: 0 `pass`, 3 `generator-bound`
/// (the figures measured this generator, not the server), 2 any other
/// (`fail`, `collapsed`, ...). 1 is left for a run that could not start.
pub fn exit_code(verdict: &str) -> u8 {
    match verdict {
        "pass" => 0,
        "generator-bound" => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn only_pass_exits_zero() {
        assert_eq!(exit_code("pass"), 0);
        for verdict in ["fail", "collapsed", "", "anything"] {
            assert_eq!(exit_code(verdict), 2, "{verdict}");
        }
        assert_eq!(exit_code("generator-bound"), 3);
    }
}
