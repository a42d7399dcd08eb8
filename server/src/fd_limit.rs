//! File descriptors: raise the soft `RLIMIT_NOFILE` to the hard limit at
//! start (as Go's runtime does), and keep `--max-connections` within it.
//!
//! Each client holds one descriptor. Distributions still start processes
//! with a soft limit of 1,024, so without this a server would refuse (or
//! fail to accept) its 1,000th player although the hard limit allows far
//! more.

use std::io;

/// Descriptors kept for everything that is not a game or legacy client: the
/// listeners, stdio and logs, Tokio's epoll and wake-up descriptors, and a
/// margin for the HTTP scrapers of `/metrics`.
pub const RESERVED_FDS: u64 = 64;

/// Descriptors kept for HTTP connections (metrics and the web view) while
/// their own caps are not config fields on this branch. The HTTP helper adds
/// `--metrics-max-connections` (16) and `--web-max-connections` (256); once
/// merged, pass their sum to [`headroom`] instead of this.
pub const HTTP_HEADROOM_FDS: u64 = 16 + 256;

/// The soft and hard `RLIMIT_NOFILE` after raising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before raising it.
    pub before: u64,
    /// The soft limit now in force.
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` as far as the hard limit allows.
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    let (before, hard) = rlimit::Resource::NOFILE.get()?;
    let soft = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok(NofileLimit { before, soft, hard })
}

/// Descriptors needed besides the clients themselves, given the most HTTP
/// connections the server may hold at once.
pub fn headroom(http_connections: u64) -> u64 {
    RESERVED_FDS + http_connections
}

/// The most clients that fit in `limit` descriptors with `headroom` kept
/// aside: `requested` when it fits, otherwise lowered to what fits.
pub fn fit_max_connections(requested: usize, limit: u64, headroom: u64) -> usize {
    let available = limit.saturating_sub(headroom);
    let available = usize::try_from(available).unwrap_or(usize::MAX);
    requested.min(available)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_that_fits_is_kept() {
        assert_eq!(
            fit_max_connections(3000, 1_048_576, headroom(HTTP_HEADROOM_FDS)),
            3000
        );
        assert_eq!(fit_max_connections(960, 1024, 64), 960);
    }

    #[test]
    fn a_cap_past_the_limit_is_lowered_to_what_fits() {
        assert_eq!(fit_max_connections(20_000, 1024, 64), 960);
        assert_eq!(fit_max_connections(20_000, 10, 64), 0);
    }

    #[test]
    fn raising_reaches_the_hard_limit_or_keeps_a_higher_soft_one() {
        let limit = raise_nofile_limit().unwrap();
        assert!(limit.soft >= limit.before);
        assert!(limit.soft <= limit.hard);
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!((soft, hard), (limit.soft, limit.hard));
    }
}
