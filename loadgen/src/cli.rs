//! Command line (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::idle::IdleConfig;
use crate::math::MathConfig;
use crate::positions::PositionsConfig;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator and benchmark report for the game server",
    after_help = "Exit status: 0 when the verdict is \"pass\", 2 for any other verdict \
(fail, collapsed, errors, missed echoes, wrong replies), 3 when the run was \
generator-bound (its figures measured this generator, not the server), 1 when \
the run could not start."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Legacy (and native) clients moving at a fixed rate: echo latency,
    /// throughput and convergence.
    Positions(PositionsArgs),
    /// Pipelined math requests, every reply checked: requests/s and latency.
    Math(MathArgs),
    /// Many idle connections held open (to measure the server's memory).
    Idle(IdleArgs),
    /// Turns bench results (JSON lines) into a markdown report and a PNG plot.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct Common {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Free text copied into the report (e.g. the server's name).
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct PositionsArgs {
    /// Legacy positions service; several comma-separated addresses (the
    /// nodes of a cluster) share the clients round-robin.
    #[arg(long, default_value = "127.0.0.1:7003")]
    pub addr: String,
    /// Legacy positions clients.
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Positions per second per client.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Length of the load phase.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Native game port, for --native-clients.
    #[arg(long)]
    pub native_addr: Option<String>,
    /// Native protocol clients (need --native-addr).
    #[arg(long, default_value_t = 0)]
    pub native_clients: usize,
    /// Area-of-interest mode: native clients walk randomly in a square world
    /// of this side (position units, up to 32767) and each sends a `View`.
    /// Delivery and convergence checks are off (a client sees only its view).
    #[arg(long, value_parser = clap::value_parser!(u16).range(2..=32767))]
    pub world_size: Option<u16>,
    /// Half side of each native client's view (with --world-size).
    #[arg(long, default_value_t = 200)]
    pub view: u16,
    /// Protocol version the native clients announce in their `Hello`: 2
    /// measures a server without the roster and overview that version 3
    /// clients are sent.
    #[arg(long, default_value_t = shared::native::PROTOCOL_VERSION,
          value_parser = clap::value_parser!(u32).range(
              shared::native::MIN_PROTOCOL_VERSION as i64..=shared::native::PROTOCOL_VERSION as i64))]
    pub native_protocol_version: u32,
    /// Connection attempts in progress at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Longest wait for the last echoes after the load phase, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Longest wait for convergence after the final moves, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub converge_timeout: f64,
    /// Own-echo p99 (ms) at or under which the verdict is "pass".
    #[arg(long, default_value_t = 50.0)]
    pub slo_p99_ms: f64,
    /// Own-echo p99 (ms) over which the verdict is "collapsed".
    #[arg(long, default_value_t = 5000.0)]
    pub collapse_p99_ms: f64,
    /// Clients (spread evenly) that read every message as it comes and time
    /// their own echoes. Area-of-interest mode: the other native clients
    /// walk frames by their length prefixes and count records; every
    /// client checks its stream. Legacy clients, when there are more than
    /// this: the others drain their sockets unread ten times a second in
    /// the load phase and count the records. Latency and visible_max come
    /// from the sampled clients only.
    #[arg(long, default_value_t = 500)]
    pub sample_clients: usize,
    /// Send lateness p99 (ms) over which the run is "generator-bound".
    #[arg(long, default_value_t = 5.0)]
    pub max_send_late_p99_ms: f64,
    /// Share of its CPUs (0..1) this generator may use in the load phase
    /// before the run is "generator-bound".
    #[arg(long, default_value_t = 0.9)]
    pub max_cpu_share: f64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct MathArgs {
    /// Legacy math service.
    #[arg(long, default_value = "127.0.0.1:7002")]
    pub addr: String,
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Requests kept in flight on each connection.
    #[arg(long, default_value_t = 128)]
    pub pipeline: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Any legacy service (positions by default).
    #[arg(long, default_value = "127.0.0.1:7003")]
    pub addr: String,
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// How long to hold the connections once all are open.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// JSON lines written by bench/run.
    #[arg(long)]
    pub input: PathBuf,
    /// Markdown output.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// PNG output: p99 echo latency and records/s against clients.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

fn seconds(value: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{what}: {value} is not a valid number of seconds"))
}

impl PositionsArgs {
    pub fn config(&self) -> Result<PositionsConfig, String> {
        let mut config = PositionsConfig::new(
            self.addr.clone(),
            self.clients,
            self.rate,
            seconds(self.seconds, "--seconds")?,
        );
        config.native_addr = self.native_addr.clone();
        config.native_clients = self.native_clients;
        config.connect_concurrency = self.connect_concurrency;
        config.drain_timeout = seconds(self.drain_timeout, "--drain-timeout")?;
        config.converge_timeout = seconds(self.converge_timeout, "--converge-timeout")?;
        config.label = self.common.label.clone();
        config.slo_p99_ms = self.slo_p99_ms;
        config.collapse_p99_ms = self.collapse_p99_ms;
        config.world_size = self.world_size;
        config.view_half_extent = self.view;
        config.native_protocol_version = self.native_protocol_version;
        config.sample_clients = self.sample_clients;
        config.max_send_late_p99_ms = self.max_send_late_p99_ms;
        config.max_cpu_share = self.max_cpu_share;
        Ok(config)
    }
}

impl MathArgs {
    pub fn config(&self) -> Result<MathConfig, String> {
        Ok(MathConfig {
            addr: self.addr.clone(),
            connections: self.connections,
            duration: seconds(self.seconds, "--seconds")?,
            pipeline: self.pipeline,
            label: self.common.label.clone(),
        })
    }
}

impl IdleArgs {
    pub fn config(&self) -> Result<IdleConfig, String> {
        Ok(IdleConfig {
            addr: self.addr.clone(),
            connections: self.connections,
            duration: seconds(self.seconds, "--seconds")?,
            connect_concurrency: self.connect_concurrency,
            label: self.common.label.clone(),
        })
    }
}
