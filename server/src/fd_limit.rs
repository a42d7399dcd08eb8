//! File descriptors: every connection, listener and log file is one. The
//! server raises its soft `RLIMIT_NOFILE` to the hard limit at start (as Go's
//! runtime does), and caps `--max-connections` to what the limit can hold,
//! so a full server refuses players cleanly instead of failing `accept` with
//! "Too many open files".

use crate::Config;

/// Descriptors kept for everything that is not a game connection: the
/// listeners, the log, NATS, the runtime's own, and a margin.
pub const BASE_HEADROOM: u64 = 64;

/// Raises the soft limit on open files as far as the hard limit allows;
/// returns the soft limit now in force.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Descriptors the server needs besides game connections: the base
/// headroom plus every HTTP connection the HTTP listeners may hold.
pub fn headroom(config: &Config) -> u64 {
    BASE_HEADROOM + config.http_connection_budget() as u64
}

/// The game connections a process with `nofile` descriptors can hold, if
/// fewer than `--max-connections`.
pub fn connection_cap(config: &Config, nofile: u64) -> Option<usize> {
    let room = nofile.saturating_sub(headroom(config));
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    (room < config.max_connections).then_some(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_headroom_and_only_lowers() {
        let config = Config {
            max_connections: 20_000,
            ..Config::default()
        };
        let cap = connection_cap(&config, 1024).expect("1,024 descriptors cannot hold 20,000");
        assert_eq!(cap as u64, 1024 - headroom(&config));
        assert_eq!(connection_cap(&config, 1_000_000), None);
        assert_eq!(connection_cap(&config, 10), Some(0));
    }
}
