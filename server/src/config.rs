//! Command-line and environment configuration of the server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;

/// Default of `--max-connections-per-ip`: a household or an office behind
/// one NAT address runs a few game clients and legacy demos each, far below
/// this; one host opening hundreds of sockets is a flood.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
const _: () = assert!(
    DEFAULT_MAX_CONNECTIONS_PER_IP > 0,
    "the limit is on by default"
);

/// Headless game server: the native game protocol plus the three legacy
/// Python demos ("test packets", "math", "positions") on their own ports,
/// sharing one client registry and one world of positions.
///
/// Every flag can also be set through the environment variable shown in
/// brackets. A port of 0 means "any free port" (the chosen port is logged).
#[derive(Debug, Clone, Parser)]
#[command(name = "server", version)]
pub struct Config {
    /// Address every service listens on.
    #[arg(long, env = "GAMESERVER_HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub host: IpAddr,

    /// Port of the native game protocol (the Bevy client).
    #[arg(long, env = "GAMESERVER_GAME_PORT", default_value_t = 7000)]
    pub game_port: u16,

    /// Port of the legacy "test packets" service.
    #[arg(long, env = "GAMESERVER_TEST_PORT", default_value_t = 7001)]
    pub test_port: u16,

    /// Port of the legacy "math" service.
    #[arg(long, env = "GAMESERVER_MATH_PORT", default_value_t = 7002)]
    pub math_port: u16,

    /// Port of the legacy "positions" service.
    #[arg(long, env = "GAMESERVER_POSITIONS_PORT", default_value_t = 7003)]
    pub positions_port: u16,

    /// Interval between two "test packets" probes, in milliseconds.
    #[arg(long, env = "GAMESERVER_PROBE_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_interval_ms: u64,

    /// How long a probe may stay unanswered before the client is dropped, in milliseconds.
    #[arg(long, env = "GAMESERVER_PROBE_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_timeout_ms: u64,

    /// Most connected clients at once, all services counted; more are refused.
    #[arg(long, env = "GAMESERVER_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Most connected clients from one IP address (0 = no limit). Loopback
    /// peers are exempt (local benchmarks, tests, a reverse proxy) unless
    /// --per-ip-limit-loopback is given.
    #[arg(long, env = "GAMESERVER_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,

    /// Hold loopback peers (127.0.0.0/8, ::1) to --max-connections-per-ip too.
    #[arg(long, env = "GAMESERVER_PER_IP_LIMIT_LOOPBACK")]
    pub per_ip_limit_loopback: bool,

    /// Largest native frame a client may send, in bytes.
    #[arg(long, env = "GAMESERVER_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Time a native client has to send its Hello, in milliseconds.
    #[arg(long, env = "GAMESERVER_HANDSHAKE_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout_ms: u64,

    /// A native client silent for this long (it must answer pings) is
    /// dropped, in milliseconds. The server pings at a third of it.
    #[arg(long, env = "GAMESERVER_IDLE_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(3..))]
    pub idle_timeout_ms: u64,

    /// A client whose socket stays unwritable this long is dropped as a slow
    /// consumer, in milliseconds.
    #[arg(long, env = "GAMESERVER_WRITE_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout_ms: u64,

    /// Shortest time between two broadcasts of the world, in milliseconds.
    /// Positions arriving in between are sent together in one write per
    /// client (still in order, and every one of them unless a client falls
    /// behind); an isolated position is sent at once. With more than 250
    /// players listening the interval stretches by 20 µs each, up to 25 ms.
    #[arg(long, env = "GAMESERVER_BROADCAST_INTERVAL_MS", default_value_t = 5)]
    pub broadcast_interval_ms: u64,

    /// Serve Prometheus metrics on http://ADDR/metrics (and /healthz), e.g.
    /// 127.0.0.1:9100. Off unless given.
    #[arg(long, env = "GAMESERVER_METRICS", value_name = "HOST:PORT")]
    pub metrics: Option<SocketAddr>,
}

impl Default for Config {
    /// The command line's defaults (environment variables are not read).
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            game_port: 7000,
            test_port: 7001,
            math_port: 7002,
            positions_port: 7003,
            probe_interval_ms: 1000,
            probe_timeout_ms: 3000,
            max_connections: 20_000,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            per_ip_limit_loopback: false,
            max_frame_bytes: 64 * 1024,
            handshake_timeout_ms: 5000,
            idle_timeout_ms: 30_000,
            write_timeout_ms: 10_000,
            broadcast_interval_ms: 5,
            metrics: None,
        }
    }
}

impl Config {
    /// A configuration for tests and embedding: loopback, every port chosen by
    /// the OS, metrics off.
    pub fn ephemeral() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            game_port: 0,
            test_port: 0,
            math_port: 0,
            positions_port: 0,
            ..Config::default()
        }
    }

    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms)
    }

    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn broadcast_interval(&self) -> Duration {
        Duration::from_millis(self.broadcast_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// Parses `args` as the command line, ignoring every `GAMESERVER_*`
    /// variable of the environment the tests run in: clap reads an
    /// argument's `env` only when the argument is marked so.
    fn parse_without_env(args: &[&str]) -> Config {
        let command = Config::command();
        let ids: Vec<clap::Id> = command
            .get_arguments()
            .filter(|arg| arg.get_env().is_some())
            .map(|arg| arg.get_id().clone())
            .collect();
        let command = ids.into_iter().fold(command, |command, id| {
            command.mut_arg(id, |arg| arg.env(None::<&str>))
        });
        let matches = command.try_get_matches_from(args).unwrap();
        Config::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn default_matches_the_command_line_defaults() {
        let parsed = parse_without_env(&["server"]);
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn per_ip_limit_is_on_by_default_and_spares_loopback() {
        let config = parse_without_env(&["server"]);
        assert_eq!(
            config.max_connections_per_ip,
            DEFAULT_MAX_CONNECTIONS_PER_IP
        );
        assert!(!config.per_ip_limit_loopback);
        let strict = parse_without_env(&["server", "--per-ip-limit-loopback"]);
        assert!(strict.per_ip_limit_loopback);
    }
}
