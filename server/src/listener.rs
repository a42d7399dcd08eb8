//! The game ports' listeners, as in mini-redis's `server.rs`: bind with a
//! deep backlog, tune every accepted socket, accept until shutdown, and
//! admit each connection (register it, pick the lane or a worker task, run
//! its service, count and log how it ended).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::connection::Disconnect;
use crate::lane::{Lane, Ticket};
use crate::log_throttle;
use crate::registry::Service;
use crate::services;
use crate::{ServerAddrs, Shared};
#[cfg(feature = "http")]
use crate::{http, metrics, web};

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

/// Accepts connections of `service` until shutdown.
pub(crate) async fn accept_loop(
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

/// Binds an HTTP listener (metrics, web view) with the game ports' backlog.
pub(crate) fn bind_http(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
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
pub(crate) fn serve_http(
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
pub(crate) fn serve_http(
    _tracker: &TaskTracker,
    _shared: &Arc<Shared>,
    _metrics_listener: Option<TcpListener>,
    _web_listener: Option<TcpListener>,
    _addrs: ServerAddrs,
) {
}
