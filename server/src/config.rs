//! Command-line and environment configuration of the server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[cfg(feature = "http")]
use crate::http::HttpLimits;

/// Headless game server: the native game protocol plus the three legacy
/// Python demos ("test packets", "math", "positions") on their own ports,
/// sharing one client registry and one world of positions.
///
/// Every flag can also be set through the environment variable shown in
/// brackets. A port of 0 means "any free port" (the chosen port is logged).
#[derive(Debug, Clone, Parser)]
#[command(name = "gameserver", version = env!("GAMESERVER_VERSION"), args_conflicts_with_subcommands = true)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,

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
    /// addresses are exempt unless --limit-loopback is given, so local
    /// tools, benchmarks and a reverse proxy on the same box are not refused.
    #[arg(long, env = "GAMESERVER_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: usize,

    /// Apply --max-connections-per-ip to loopback addresses too.
    #[arg(long, env = "GAMESERVER_LIMIT_LOOPBACK")]
    pub limit_loopback: bool,

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

    /// A native message started but not completed within this time drops
    /// the client (bytes trickling into a message never count as activity),
    /// in milliseconds.
    #[arg(long, env = "GAMESERVER_MESSAGE_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub message_timeout_ms: u64,

    /// A client whose socket stays unwritable this long is dropped as a slow
    /// consumer, in milliseconds.
    #[arg(long, env = "GAMESERVER_WRITE_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout_ms: u64,

    /// Optional minimum time between two broadcasts of the world, in
    /// milliseconds, for fixed ticks. 0 (the default): no floor; a change
    /// goes out at once when the server is idle, and changes arriving while
    /// the last broadcast is still being taken by its subscribers go out
    /// together in the next one (batches grow with the load).
    #[arg(long, env = "GAMESERVER_BROADCAST_INTERVAL_MS", default_value_t = 0)]
    pub broadcast_interval_ms: u64,

    /// Most moves a second of one player that reach the world, for every
    /// service that moves a player (positions, classic, native). Moves
    /// above it are coalesced, latest wins: the player's newest position
    /// always goes out, some intermediate ones do not, and the player stays
    /// connected. 0: no cap.
    #[arg(long, env = "GAMESERVER_MAX_MOVES_PER_SECOND", default_value_t = crate::world::DEFAULT_MAX_MOVES_PER_SECOND)]
    pub max_moves_per_second: u32,

    /// Time between two overviews of the whole world sent to native
    /// clients (protocol 3) that have an area of interest, in milliseconds.
    /// 0: no overview.
    #[arg(long, env = "GAMESERVER_OVERVIEW_INTERVAL_MS", default_value_t = crate::fanout::overview::DEFAULT_OVERVIEW_INTERVAL_MS)]
    pub overview_interval_ms: u64,

    /// Most players the overview lists one by one; in a bigger world it is
    /// a coarse density grid (players per cell) instead.
    #[arg(long, env = "GAMESERVER_OVERVIEW_MAX_PLAYERS", default_value_t = crate::fanout::overview::DEFAULT_OVERVIEW_MAX_PLAYERS)]
    pub overview_max_players: usize,

    /// Threads that run the connections (0: one per CPU), besides the lane
    /// (`--lane-connections`). On a small box shared with other work, 1
    /// serves a thousand clients or more slower; measured in
    /// docs/bench/README.md.
    #[arg(long, env = "GAMESERVER_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// While the world has fewer subscribers than this, positions players
    /// are served together on one thread of their own, the lane: a small
    /// world's broadcast then wakes no other thread, which keeps the
    /// latency low at a few dozen clients. The player that makes the world
    /// this big moves them all to the worker threads. 0: no lane.
    #[arg(long, env = "GAMESERVER_LANE_CONNECTIONS", default_value_t = crate::lane::DEFAULT_LANE_CONNECTIONS)]
    pub lane_connections: usize,

    /// Join a cluster of nodes sharing one world over this NATS server,
    /// e.g. nats://127.0.0.1:4222. Off unless given: one node alone.
    #[arg(long, env = "GAMESERVER_CLUSTER", value_name = "NATS_URL")]
    pub cluster: Option<String>,

    /// This node's number in the cluster, unique among the nodes (0-127):
    /// the high bits of every client id it hands out.
    #[arg(long, env = "GAMESERVER_NODE_ID", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=127))]
    pub node_id: u16,

    /// Name of the shared world: the NATS subject prefix, so one NATS can
    /// carry several worlds. Letters, digits, '-' and '_'.
    #[arg(long, env = "GAMESERVER_WORLD", default_value = "gameworld", value_parser = parse_world_name)]
    pub world: String,

    /// Serve Prometheus metrics on http://ADDR/metrics (and /healthz), e.g.
    /// 127.0.0.1:9100. Off unless given.
    #[arg(long, env = "GAMESERVER_METRICS", value_name = "HOST:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Most connections to the metrics port at once; at the cap a new one
    /// closes the one that has waited longest without completing a request.
    /// Its own budget: admin traffic never takes a player's slot.
    #[arg(long, env = "GAMESERVER_METRICS_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub metrics_max_connections: u32,

    /// Serve the live web view (a map of every player, in any browser) on
    /// http://ADDR/, e.g. 0.0.0.0:8080. Read-only, and a listener of its own:
    /// it may be public while --metrics stays private. Off unless given.
    #[arg(long, env = "GAMESERVER_WEB", value_name = "HOST:PORT")]
    pub web: Option<SocketAddr>,

    /// Most connections to the web view at once (page loads and live
    /// viewers); at the cap a new one closes the one that has waited longest
    /// without completing a request (a live viewer only if none waits).
    #[arg(long, env = "GAMESERVER_WEB_MAX_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub web_max_connections: u32,

    /// Time an HTTP client (metrics, web) has to send a whole request head,
    /// and the longest a keep-alive connection waits for its next request,
    /// in milliseconds.
    #[arg(long, env = "GAMESERVER_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_ms: u64,

    /// An HTTP connection that moves no byte either way for this long is
    /// closed; a web viewer that does not answer the server's pings for this
    /// long is dropped (they are sent every third of it), in milliseconds.
    #[arg(long, env = "GAMESERVER_HTTP_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(3..))]
    pub http_idle_timeout_ms: u64,

    /// Whether the legacy services (test packets, math, positions) start by
    /// sending the client its id as a 4-byte `<i`. `off` is for scripts
    /// from the original demos that expect no greeting; clients still get
    /// ids in the registry, the logs and the metrics.
    #[arg(long, env = "GAMESERVER_LEGACY_WELCOME", value_enum, default_value_t = LegacyWelcome::On)]
    pub legacy_welcome: LegacyWelcome,

    /// What the positions service sends legacy clients: `ihh` = 8-byte
    /// `<ihh` records with the player id, and leave markers; `hh` = the
    /// classic 4-byte `<hh` packets with no id and no leave markers.
    /// Native clients are not affected.
    #[arg(long, env = "GAMESERVER_POSITIONS_RECORDS", value_enum, default_value_t = PositionsRecords::Ihh)]
    pub positions_records: PositionsRecords,

    /// Record the world's broadcasts (joins, moves, leaves, every node's
    /// players on a cluster node) to this file, to replay later with
    /// `netgame replay PATH` or `gameserver replay PATH --web HOST:PORT`.
    /// Never overwrites: an existing PATH (or PATH.1) is an error at start.
    /// Flushed and synced every 500 ms, so a crash loses at most that.
    #[arg(long, env = "GAMESERVER_RECORD", value_name = "PATH")]
    pub record: Option<PathBuf>,

    /// Largest size of one recording file, in bytes: past it the recording
    /// goes on in PATH.1, then PATH.2, … (each starts with a snapshot, so
    /// any of them plays alone; none is deleted).
    #[arg(long, env = "GAMESERVER_RECORD_MAX_BYTES", default_value_t = crate::record::DEFAULT_MAX_BYTES, value_parser = clap::value_parser!(u64).range(crate::record::MIN_MAX_BYTES..))]
    pub record_max_bytes: u64,

    /// Seconds between two snapshots of the whole world in the recording:
    /// a replay seeks from the last snapshot before the moment it wants.
    #[arg(long, env = "GAMESERVER_RECORD_SNAPSHOT_SECS", default_value_t = crate::record::DEFAULT_SNAPSHOT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub record_snapshot_secs: u64,
}

/// What `gameserver` does instead of serving the game.
#[derive(Debug, Clone, Subcommand)]
pub enum ServerCommand {
    /// Play a recording made with --record: print the world at one moment
    /// (--at SECONDS --print), or serve it to browsers with a timeline
    /// (--web HOST:PORT). Opens no game port. The rotated files PATH.1,
    /// PATH.2, … play after PATH as one recording.
    Replay(ReplayArgs),
}

/// `gameserver replay`'s flags.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The recording (the PATH given to --record).
    pub path: PathBuf,
    /// A moment of the recording, in seconds from its start.
    #[arg(long = "at", value_name = "SECONDS", value_parser = shared::recording::parse_seconds)]
    pub at_ms: Option<u64>,
    /// Print the world at --at, one line per player (`id name x y`), and exit.
    #[arg(long, requires = "at_ms", conflicts_with = "web")]
    pub print: bool,
    /// Serve the recording's web view on http://HOST:PORT/: the live view's
    /// page with a timeline (play, pause, speed, seek), read-only.
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "print")]
    pub web: Option<SocketAddr>,
}

/// The `--legacy-welcome` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LegacyWelcome {
    /// Send the id greeting `<i` first (the legacy contract).
    On,
    /// Send no greeting (the classic demos).
    Off,
}

/// The `--positions-records` switch: the layout of what the positions
/// service sends legacy clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PositionsRecords {
    /// `<ihh` records (id, x, y) and leave markers (the legacy contract).
    Ihh,
    /// `<hh` packets (x, y), no id, no leave markers (the classic demos).
    Hh,
}

/// The switch's value as typed on the command line (`off`, `hh`, ...).
fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

impl std::fmt::Display for LegacyWelcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&value_name(*self))
    }
}

impl std::fmt::Display for PositionsRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&value_name(*self))
    }
}

impl Default for Config {
    /// The command line's defaults (environment variables are not read).
    fn default() -> Self {
        Config {
            command: None,
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            game_port: 7000,
            test_port: 7001,
            math_port: 7002,
            positions_port: 7003,
            probe_interval_ms: 1000,
            probe_timeout_ms: 3000,
            max_connections: 20_000,
            max_connections_per_ip: 64,
            limit_loopback: false,
            max_frame_bytes: 64 * 1024,
            handshake_timeout_ms: 5000,
            idle_timeout_ms: 30_000,
            message_timeout_ms: 5000,
            write_timeout_ms: 10_000,
            broadcast_interval_ms: 0,
            max_moves_per_second: crate::world::DEFAULT_MAX_MOVES_PER_SECOND,
            overview_interval_ms: crate::fanout::overview::DEFAULT_OVERVIEW_INTERVAL_MS,
            overview_max_players: crate::fanout::overview::DEFAULT_OVERVIEW_MAX_PLAYERS,
            worker_threads: 0,
            lane_connections: crate::lane::DEFAULT_LANE_CONNECTIONS,
            metrics: None,
            metrics_max_connections: 16,
            web: None,
            web_max_connections: 256,
            http_header_timeout_ms: 10_000,
            http_idle_timeout_ms: 60_000,
            cluster: None,
            node_id: 0,
            world: "gameworld".to_owned(),
            legacy_welcome: LegacyWelcome::On,
            positions_records: PositionsRecords::Ihh,
            record: None,
            record_max_bytes: crate::record::DEFAULT_MAX_BYTES,
            record_snapshot_secs: crate::record::DEFAULT_SNAPSHOT_SECS,
        }
    }
}

fn parse_world_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err("use 1 to 64 letters, digits, '-' or '_' (it is a NATS subject prefix)".to_owned())
    }
}

impl Config {
    /// HTTP connections the HTTP listeners may hold at once (each is a
    /// file descriptor).
    pub fn http_connection_budget(&self) -> usize {
        let metrics = self.metrics.map_or(0, |_| self.metrics_max_connections);
        let web = self.web.map_or(0, |_| self.web_max_connections);
        (metrics + web) as usize
    }

    /// The cluster to join, if any.
    pub fn cluster(&self) -> Option<crate::cluster::ClusterConfig> {
        self.cluster
            .as_ref()
            .map(|url| crate::cluster::ClusterConfig {
                url: url.clone(),
                node: self.node_id,
                world: self.world.clone(),
            })
    }

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

    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn broadcast_interval(&self) -> Duration {
        Duration::from_millis(self.broadcast_interval_ms)
    }

    /// Time between two overviews; `None`: no overview.
    pub fn overview_interval(&self) -> Option<Duration> {
        (self.overview_interval_ms > 0).then(|| Duration::from_millis(self.overview_interval_ms))
    }

    #[cfg(feature = "http")]
    /// Limits of the metrics listener.
    pub fn metrics_limits(&self) -> HttpLimits {
        self.http_limits(self.metrics_max_connections)
    }

    #[cfg(feature = "http")]
    /// Limits of the web view's listener.
    pub fn web_limits(&self) -> HttpLimits {
        self.http_limits(self.web_max_connections)
    }

    #[cfg(feature = "http")]
    fn http_limits(&self, max_connections: u32) -> HttpLimits {
        HttpLimits {
            max_connections: max_connections as usize,
            header_timeout: Duration::from_millis(self.http_header_timeout_ms),
            idle_timeout: Duration::from_millis(self.http_idle_timeout_ms),
        }
    }

    /// What `--record` asks for, if given.
    pub fn record_options(&self) -> Option<crate::record::RecordOptions> {
        self.record
            .as_ref()
            .map(|path| crate::record::RecordOptions {
                path: path.clone(),
                max_bytes: self.record_max_bytes,
                snapshot_interval: Duration::from_secs(self.record_snapshot_secs),
            })
    }

    /// Whether any classic compatibility switch departs from the legacy
    /// contract (worth a line in the start-up log).
    pub fn is_classic(&self) -> bool {
        self.legacy_welcome == LegacyWelcome::Off || self.positions_records == PositionsRecords::Hh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_command_line_defaults() {
        let parsed = Config::try_parse_from(["gameserver"]).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
        assert!(!parsed.is_classic(), "the legacy contract is the default");
    }

    #[test]
    fn classic_switches_parse_and_reject_unknown_values() {
        let parsed = Config::try_parse_from([
            "gameserver",
            "--legacy-welcome",
            "off",
            "--positions-records",
            "hh",
        ])
        .unwrap();
        assert_eq!(parsed.legacy_welcome, LegacyWelcome::Off);
        assert_eq!(parsed.positions_records, PositionsRecords::Hh);
        assert!(parsed.is_classic());
        let err = Config::try_parse_from(["gameserver", "--positions-records", "hhi"]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("ihh") && message.contains("hh"),
            "the error lists the choices: {message}"
        );
    }
}
