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
pub mod log_throttle;
pub mod metrics;
pub mod registry;
pub mod services;
#[cfg(feature = "http")]
pub mod web;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
use connection::Disconnect;
use lane::{Lane, Ticket};
use metrics::Metrics;
use registry::{Registry, Service};
use shared::ClientId;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use world::World;

/// How long the accept loop backs off after an accept error (e.g. out of
/// file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Pending connections the kernel may queue per listener before we accept
/// them: a burst of a few thousand players connecting at once must not
/// overflow it (tokio's default is 1024; Linux caps it at `somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // Lets a restarted server bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Kernel send buffer of every client socket. Left alone, Linux grows it up
/// to megabytes per socket, where a lagging client's backlog would pile up
/// out of the world's reach; kept small, a lagging client's socket fills
/// quickly, its backlog stays in the world's queue, and the world coalesces
/// it (latest wins) instead of delivering seconds-old positions.
pub const SEND_BUFFER_BYTES: usize = 64 * 1024;

/// Socket options of every accepted connection.
pub(crate) fn tune(stream: &TcpStream) {
    // Small messages go out at once instead of waiting for Nagle.
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER_BYTES);
}

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
        let shared = Arc::new(Shared {
            registry: Arc::new(registry),
            metrics: Arc::new(metrics(&world, cluster_metrics.as_ref())),
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
        } = self;
        let tracker = TaskTracker::new();
        let lane = start_lane(
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

        shutdown.cancelled().await;
        info!(clients = shared.registry.len(), "shutting down");
        shared.shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        info!("shut down");
    }
}

/// The lane for worlds of fewer than `capacity` subscribers, if any.
fn start_lane(
    capacity: usize,
    gauge: prometheus_client::metrics::gauge::Gauge,
) -> Option<Arc<Lane>> {
    if capacity == 0 {
        return None;
    }
    match Lane::start(capacity, tokio::runtime::Handle::current(), gauge) {
        Ok(lane) => Some(Arc::new(lane)),
        Err(err) => {
            warn!(cause = %err, "cannot start the lane thread; every connection goes to the worker threads");
            None
        }
    }
}

/// Binds an HTTP listener (metrics, web view) with the game ports' backlog.
fn bind_http(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    #[cfg(feature = "http")]
    let listener = http::bind(addr);
    #[cfg(not(feature = "http"))]
    let listener = Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "this build has no HTTP support (cargo feature `http`)",
    ));
    listener.map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("cannot listen on {addr} ({what}): {err}"),
        )
    })
}

/// Serves the HTTP listeners that were bound.
#[cfg(feature = "http")]
fn serve_http(
    tracker: &TaskTracker,
    shared: &Arc<Shared>,
    metrics_listener: Option<TcpListener>,
    web_listener: Option<TcpListener>,
    addrs: ServerAddrs,
) {
    if let Some(listener) = metrics_listener {
        let limits = shared.config.metrics_limits();
        if let Some(addr) = addrs.metrics {
            http::log_listening("metrics on /metrics and /healthz", addr, &limits);
        }
        tracker.spawn(metrics::serve(
            listener,
            Arc::clone(&shared.metrics),
            limits,
            shared.shutdown.clone(),
        ));
    }
    if let Some(listener) = web_listener {
        let limits = shared.config.web_limits();
        if let Some(addr) = addrs.web {
            http::log_listening("the live web view on / and /ws", addr, &limits);
        }
        tracker.spawn(http::serve(
            listener,
            web::router(Arc::clone(shared)),
            limits,
            shared.shutdown.clone(),
        ));
    }
}

/// Without HTTP support no HTTP listener can have been bound.
#[cfg(not(feature = "http"))]
fn serve_http(
    _tracker: &TaskTracker,
    _shared: &Arc<Shared>,
    _metrics_listener: Option<TcpListener>,
    _web_listener: Option<TcpListener>,
    _addrs: ServerAddrs,
) {
}

async fn accept_loop(
    listener: TcpListener,
    service: Service,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    lane: Option<Arc<Lane>>,
) {
    // Only legacy players go to the lane: it is there for the world's
    // broadcasts, and they can move off it when it closes.
    let lane = lane.filter(|_| service == Service::Positions);
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, service, &shared, &tracker, lane.as_deref()),
            Err(err) => {
                if log_throttle::WARNINGS.admit("accept_failed") {
                    error!(%service, cause = %err, "accept failed");
                }
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Registers a new connection and runs its service, or refuses it.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    service: Service,
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    lane: Option<&Lane>,
) {
    let registration = match shared.registry.register(service, peer) {
        Ok(registration) => registration,
        Err(refusal) => {
            if log_throttle::WARNINGS.admit(refusal.label()) {
                warn!(%service, %peer, reason = %refusal, "connection refused");
            }
            shared.metrics.refused(service, refusal.label());
            return; // dropping the stream closes it
        }
    };
    tune(&stream);
    let lane = lane.and_then(|lane| Some((lane, lane.admit(shared.world.subscriber_count())?)));
    let shared = Arc::clone(shared);
    let serve = move |stream: TcpStream, lane: Option<Ticket>| async move {
        let id = registration.id();
        info!(client = id, %service, %peer, "connected");
        shared.metrics.connected(service);
        let reason = match service {
            Service::Game => services::game::serve(stream, id, &shared).await,
            Service::TestPackets => services::test_packets::serve(stream, id, &shared).await,
            Service::Math => services::math::serve(stream, id, &shared).await,
            Service::Positions => services::positions::serve(stream, id, &shared, lane).await,
        };
        drop(registration);
        shared.metrics.disconnected(service, reason.label());
        if matches!(reason, Disconnect::WriteTimeout(_)) {
            shared.metrics.slow_consumer_dropped();
        }
        log_disconnect(id, service, &reason);
    };
    let Some((lane, ticket)) = lane else {
        tracker.spawn(serve(stream, None));
        return;
    };
    // The socket moves to the lane's own poller (see `lane`).
    match stream.into_std() {
        Ok(stream) => lane.spawn(tracker, async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream, Some(ticket)).await,
                Err(err) => {
                    warn!(%service, %peer, cause = %err, "cannot serve a connection on the lane")
                }
            }
        }),
        Err(err) => warn!(%service, %peer, cause = %err, "cannot move a connection to the lane"),
    }
}

fn log_disconnect(id: shared::ClientId, service: Service, reason: &Disconnect) {
    if reason.is_normal() {
        info!(client = id, %service, reason = %reason, "disconnected");
    } else if log_throttle::WARNINGS.admit(reason.label()) {
        warn!(client = id, %service, reason = %reason, "disconnected");
    }
}

/// Every counter: the server's own, the world's and the cluster's, each
/// layer registering its own.
fn metrics(world: &World, cluster: Option<&cluster::ClusterMetrics>) -> Metrics {
    let mut metrics = Metrics::default();
    let r = metrics.registry_mut();
    world.register_metrics(r);
    if let Some(cluster) = cluster {
        r.register(
            "cluster_connected",
            "1 while the node is connected to NATS",
            cluster.connected.clone(),
        );
        r.register(
            "cluster_nodes_seen",
            "Other nodes heard from recently",
            cluster.nodes_seen.clone(),
        );
        r.register(
            "cluster_remote_players",
            "Players of other nodes in this node's world",
            cluster.remote_players.clone(),
        );
        r.register(
            "cluster_events_published",
            "Events of this node's players published to the cluster",
            cluster.events_published.clone(),
        );
        r.register(
            "cluster_events_received",
            "Events of other nodes' players received",
            cluster.events_received.clone(),
        );
        r.register(
            "cluster_resyncs",
            "State requests to other nodes (new, restarted or out-of-step nodes)",
            cluster.resyncs.clone(),
        );
    }
    metrics
}
