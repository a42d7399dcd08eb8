//! The game server as a library: `Server::bind` then `Server::run`, so the
//! binary, the Bevy client (embedded server) and the tests all start the
//! same thing.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = server::Server::bind(server::Config::ephemeral()).await?;
//! println!("positions on {}", server.local_addrs().positions);
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! server.run(shutdown).await;
//! # Ok(())
//! # }
//! ```

pub mod cluster;
pub mod config;
pub mod connection;
pub mod fanout;
pub mod fd_limit;
#[cfg(feature = "http")]
pub mod http;
pub mod lane;
mod listener;
pub mod log_throttle;
pub mod metrics;
pub mod record;
pub mod registry;
pub mod replay;
pub mod services;
mod telemetry;
#[cfg(feature = "http")]
pub mod web;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use listener::SEND_BUFFER_BYTES;
pub(crate) use listener::listen;
#[cfg(feature = "http")]
pub(crate) use listener::tune;
use listener::{accept_loop, bind_http, serve_http};
use metrics::Metrics;
use registry::{Registry, Service};
use shared::ClientId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;
use world::World;

/// State every connection handler shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub world: Arc<World>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

/// Where each service actually listens (ports of 0 resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerAddrs {
    pub game: SocketAddr,
    pub test: SocketAddr,
    pub math: SocketAddr,
    pub positions: SocketAddr,
    pub metrics: Option<SocketAddr>,
    /// The live web view (`--web`), if enabled.
    pub web: Option<SocketAddr>,
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    cluster: Option<cluster::Cluster>,
    listeners: Vec<(Service, TcpListener)>,
    metrics_listener: Option<TcpListener>,
    web_listener: Option<TcpListener>,
    addrs: ServerAddrs,
    shared: Arc<Shared>,
    recorder: Option<record::Recorder>,
}

impl Server {
    /// Binds every port, so start-up errors (port taken) surface here.
    pub async fn bind(config: Config) -> std::io::Result<Server> {
        let bind = |port: u16, service: Service| {
            let addr = SocketAddr::new(config.host, port);
            async move {
                listen(addr).map_err(|err| {
                    std::io::Error::new(
                        err.kind(),
                        format!("cannot listen on {addr} ({service} service): {err}"),
                    )
                })
            }
        };
        let game = bind(config.game_port, Service::Game).await?;
        let test = bind(config.test_port, Service::TestPackets).await?;
        let math = bind(config.math_port, Service::Math).await?;
        let positions = bind(config.positions_port, Service::Positions).await?;
        let metrics_listener = config
            .metrics
            .map(|addr| bind_http(addr, "metrics"))
            .transpose()?;
        let web_listener = config
            .web
            .map(|addr| bind_http(addr, "web view"))
            .transpose()?;
        let addrs = ServerAddrs {
            game: game.local_addr()?,
            test: test.local_addr()?,
            math: math.local_addr()?,
            positions: positions.local_addr()?,
            metrics: metrics_listener
                .as_ref()
                .map(TcpListener::local_addr)
                .transpose()?,
            web: web_listener
                .as_ref()
                .map(TcpListener::local_addr)
                .transpose()?,
        };
        let world = World::new();
        world.set_max_moves_per_second(config.max_moves_per_second);
        let mut registry = Registry::new(config.max_connections, config.max_connections_per_ip)
            .limit_loopback(config.limit_loopback);
        let mut cluster = None;
        let mut cluster_metrics = None;
        if let Some(cluster_config) = config.cluster() {
            let node = ClientId::from(cluster_config.node) << world::NODE_ID_SHIFT;
            registry = registry.with_ids(node | 1..=node | ((1 << world::NODE_ID_SHIFT) - 1));
            let counters = cluster::ClusterMetrics::default();
            cluster = Some(
                cluster::Cluster::connect(cluster_config, counters.clone())
                    .await
                    .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?,
            );
            cluster_metrics = Some(counters);
        }
        // Last, so that a recording file is created only for a server that
        // starts.
        let record_metrics = world::RecordMetrics::default();
        let recorder = config
            .record_options()
            .map(|options| record::Recorder::start(options, &world, record_metrics.clone()))
            .transpose()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            registry: Arc::new(registry),
            metrics: Arc::new(telemetry::metrics(
                &world,
                cluster_metrics.as_ref(),
                recorder.as_ref().map(|_| &record_metrics),
            )),
            world,
            shutdown: CancellationToken::new(),
            config,
        });
        let listeners = vec![
            (Service::Game, game),
            (Service::TestPackets, test),
            (Service::Math, math),
            (Service::Positions, positions),
        ];
        Ok(Server {
            cluster,
            listeners,
            metrics_listener,
            web_listener,
            addrs,
            shared,
            recorder,
        })
    }

    pub fn local_addrs(&self) -> ServerAddrs {
        self.addrs
    }

    /// The state shared by every connection (registry, world, metrics), for
    /// tests and embedding.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, closes
    /// every client (native clients get a goodbye) and returns once every
    /// task has finished.
    pub async fn run(self, shutdown: CancellationToken) {
        let Server {
            cluster,
            listeners,
            metrics_listener,
            web_listener,
            addrs,
            shared,
            recorder,
        } = self;
        let tracker = TaskTracker::new();
        let lane = lane::start(
            shared.config.lane_connections,
            shared.metrics.lane_connections.clone(),
        );
        if let Some(cluster) = cluster {
            // Get the other nodes' players before serving our own.
            let mut ready =
                cluster.spawn(Arc::clone(&shared.world), &tracker, shared.shutdown.clone());
            let _ = tokio::time::timeout(
                cluster::JOIN_TIMEOUT + Duration::from_millis(500),
                ready.wait_for(|ready| *ready),
            )
            .await;
        }
        for (service, listener) in listeners {
            let addr = match service {
                Service::Game => addrs.game,
                Service::TestPackets => addrs.test,
                Service::Math => addrs.math,
                Service::Positions => addrs.positions,
            };
            info!(%service, %addr, "listening");
            tracker.spawn(accept_loop(
                listener,
                service,
                Arc::clone(&shared),
                tracker.clone(),
                lane.clone(),
            ));
        }
        serve_http(&tracker, &shared, metrics_listener, web_listener, addrs);
        tracker.spawn(log_throttle::WARNINGS.flush_every_window(shared.shutdown.clone()));
        tracker.spawn(
            Arc::clone(&shared.world)
                .run_broadcaster(shared.config.broadcast_interval(), shared.shutdown.clone()),
        );
        if let Some(period) = shared.config.overview_interval() {
            tracker.spawn(Arc::clone(&shared.world).run_overview(
                period,
                shared.config.overview_max_players,
                shared.shutdown.clone(),
            ));
        }

        shutdown.cancelled().await;
        info!(clients = shared.registry.len(), "shutting down");
        shared.shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        if let Some(recorder) = recorder {
            // Everything broadcast so far is written and synced.
            shared.world.stop_recording();
            let _ = tokio::task::spawn_blocking(move || recorder.finish()).await;
        }
        info!("shut down");
    }
}
