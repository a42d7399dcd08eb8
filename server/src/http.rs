//! Hardened HTTP serving, shared by every HTTP listener (`--metrics`,
//! `--web`).
//!
//! `axum::serve` builds hyper without a timer, so no header-read timeout
//! applies and idle connections live forever; nor does it cap connections.
//! A few thousand half-sent requests could then use up every file descriptor
//! and refuse players. [`serve`] instead runs each connection on hyper's
//! HTTP/1 server with a [`TokioTimer`], under [`HttpLimits`]:
//!
//! * **A connection cap of its own.** A connection over
//!   [`HttpLimits::max_connections`] is accepted, sent `503 Service
//!   Unavailable` at once and closed: it never waits, never holds a
//!   descriptor past that moment, and never takes a player's slot (players
//!   are counted by the registry, HTTP connections here). A WebSocket keeps
//!   its slot until it closes.
//! * **A header-read timeout.** A request head must arrive whole within
//!   [`HttpLimits::header_timeout`]; hyper also runs that clock while a
//!   keep-alive connection waits for its next request, so it doubles as the
//!   keep-alive timeout.
//! * **An idle timeout.** A connection that moves no byte either way for
//!   [`HttpLimits::idle_timeout`] (say, a client that stops reading a large
//!   response) is closed.
//!
//! Listeners get the same backlog as the game ports.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, error, info, warn};

/// The answer to a connection over the cap, written before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 27\r\n\r\n\
too many connections, retry";

/// Largest request head we buffer (hyper's minimum is 8 KiB); a longer one
/// is answered `431` and closed.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Longest [`serve`] waits on shutdown for connections still open (a
/// WebSocket's close handshake, a response being written) before it
/// returns anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Refusals are logged at most this often, with how many there were.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// How long the accept loop backs off after an accept error (e.g. out of
/// file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once (WebSockets included); more are refused.
    pub max_connections: usize,
    /// Time a client has to send a whole request head, and the longest a
    /// keep-alive connection may wait between two requests.
    pub header_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed.
    pub idle_timeout: Duration,
}

/// Binds an HTTP listener with the game ports' backlog, so a taken port
/// fails at start-up and a burst of connections is not dropped by the
/// kernel.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    crate::listen(addr)
}

/// Serves `router` on `listener` under `limits` until `shutdown`, then
/// finishes the requests in flight and returns once every connection (and
/// WebSocket) has closed, or after [`SHUTDOWN_GRACE`].
///
/// Handlers can read the peer address with `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let name = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let mut refusals = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                error!(listener = %name, cause = %err, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                crate::tune(&stream);
                tracker.spawn(serve_connection(
                    stream,
                    peer,
                    slot,
                    router.clone(),
                    limits,
                    shutdown.clone(),
                ));
            }
            Err(_) => {
                refuse(stream);
                refusals.note(&name, peer, limits.max_connections);
            }
        }
    }
    drop(listener);
    tracker.close();
    // Every slot back means every connection, upgraded ones included, is
    // closed: an upgraded connection carries its slot along.
    let all_closed = slots.acquire_many(limits.max_connections as u32);
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        tracker.wait().await;
        let _ = all_closed.await;
    })
    .await
    .is_err()
    {
        warn!(listener = %name, open = limits.max_connections - slots.available_permits(),
              "connections still open after the shutdown grace");
    }
}

/// Answers a connection over the cap with a 503 and closes it. Whatever the
/// client already sent is read first, so the close is a clean FIN rather
/// than a reset that could swallow the answer. Never blocks: a fresh
/// socket's send buffer always has room for these few bytes.
fn refuse(stream: TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(REFUSAL);
    let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
}

/// Counts refusals and logs them at most once per [`REFUSAL_LOG_INTERVAL`],
/// so a flood does not flood the log too.
#[derive(Debug, Default)]
struct RefusalLog {
    since_last_log: u64,
    last_log: Option<Instant>,
}

impl RefusalLog {
    fn note(&mut self, listener: &str, peer: SocketAddr, max: usize) {
        self.since_last_log += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|last| now >= last + REFUSAL_LOG_INTERVAL)
        {
            warn!(listener, %peer, refused = self.since_last_log, max_connections = max,
                  "HTTP connections refused: at the connection cap");
            self.since_last_log = 0;
            self.last_log = Some(now);
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
        _slot: slot,
    });
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(Body::new))
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let idle_deadline = activity.last() + limits.idle_timeout;
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    debug!(%peer, cause = %err, "HTTP connection ended");
                }
                return;
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                if activity.last() + limits.idle_timeout <= Instant::now() {
                    debug!(%peer, "HTTP connection idle: closed");
                    return;
                }
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When a connection last moved a byte.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds since `start`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A socket that notes its activity and holds its connection slot: the slot
/// is freed when the socket closes, even after an upgrade to a WebSocket
/// has taken the socket out of hyper's hands.
#[derive(Debug)]
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Logs where an HTTP listener serves, once it is running.
pub fn log_listening(what: &str, addr: SocketAddr, limits: &HttpLimits) {
    info!(%addr, max_connections = limits.max_connections,
          header_timeout_ms = limits.header_timeout.as_millis() as u64,
          idle_timeout_ms = limits.idle_timeout.as_millis() as u64, "serving {what}");
}
