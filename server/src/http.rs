//! Hardened HTTP serving, shared by every HTTP listener (`--metrics`,
//! `--web`).
//!
//! `axum::serve` builds hyper without a timer, so no header-read timeout
//! applies and idle connections live forever; nor does it cap connections.
//! A few thousand half-sent requests could then use up every file descriptor
//! and refuse players. [`serve`] instead runs each connection on hyper's
//! HTTP/1 server with a [`TokioTimer`], under [`HttpLimits`]:
//!
//! * **A connection cap of its own** ([`HttpLimits::max_connections`]), so
//!   HTTP never takes a player's slot (players are counted by the registry,
//!   HTTP connections here). A WebSocket keeps its slot until it closes.
//! * **Room for real requests at the cap.** A new connection over the cap is
//!   admitted by closing the connection that has waited longest without
//!   completing a request (a half-sent head, or a keep-alive connection
//!   between requests). A connection serving a request, or a live web
//!   viewer, is closed only if none is waiting. So a flood of idle or
//!   half-sent connections only ever pushes out its own kind, and a health
//!   check still gets in. A connection is answered `503` and closed only if
//!   no slot frees within [`EVICTION_WAIT`].
//! * **A header-read timeout.** A request head must arrive whole within
//!   [`HttpLimits::header_timeout`]; hyper also runs that clock while a
//!   keep-alive connection waits for its next request, so it doubles as the
//!   keep-alive timeout.
//! * **An idle timeout.** A connection that moves no byte either way for
//!   [`HttpLimits::idle_timeout`] (say, a client that stops reading a large
//!   response) is closed.
//!
//! Listeners get the same backlog as the game ports.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, error, info, warn};

/// The answer to a connection that finds no room, written before it is
/// closed.
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

/// At the cap, how long the accept loop waits for the connection it closed
/// to give its slot back before it refuses the new one with a `503`. A
/// closed connection's task only has to wake and drop its socket.
pub const EVICTION_WAIT: Duration = Duration::from_millis(500);

/// What the cap did is logged at most this often, with counts.
const CAP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// How long the accept loop backs off after an accept error (e.g. out of
/// file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once (WebSockets included); at the cap a new one
    /// takes the slot of the one that has waited longest for a request.
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
    // The slots count descriptors; the table says what each holder is doing.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let table = Arc::new(Table::default());
    let tracker = TaskTracker::new();
    let mut cap_log = CapLog::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(cap_log.next_log()), if cap_log.pending() => {
                cap_log.flush(&name, limits.max_connections);
                continue;
            }
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
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => make_room(&slots, &table, &mut cap_log).await,
        };
        match slot {
            Some(slot) => {
                crate::tune(&stream);
                tracker.spawn(serve_connection(
                    stream,
                    peer,
                    Table::register(&table),
                    slot,
                    router.clone(),
                    limits,
                    shutdown.clone(),
                ));
            }
            None => {
                refuse(stream);
                cap_log.refused += 1;
            }
        }
        if cap_log.pending() && cap_log.next_log() <= Instant::now() {
            cap_log.flush(&name, limits.max_connections);
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

/// At the cap: closes the connection that has waited longest for a request
/// (or, if none waits, the one longest in its request or WebSocket) and
/// waits up to [`EVICTION_WAIT`] for its slot.
async fn make_room(
    slots: &Arc<Semaphore>,
    table: &Table,
    cap_log: &mut CapLog,
) -> Option<OwnedSemaphorePermit> {
    let closed = table.close_one()?;
    cap_log.note(closed);
    tokio::time::timeout(EVICTION_WAIT, Arc::clone(slots).acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Answers a connection that finds no room with a 503 and closes it.
/// Whatever the client already sent is read first, so the close is a clean
/// FIN rather than a reset that could swallow the answer. Never blocks: a
/// fresh socket's send buffer always has room for these few bytes.
fn refuse(stream: TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(REFUSAL);
    let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
}

/// What a connection is doing, which decides whom the cap closes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a whole request head: just connected, or kept alive
    /// after its last response. Closed first, longest waiting first.
    Waiting,
    /// From a request's head to the last byte of its response.
    Serving,
    /// Upgraded to a WebSocket: a live web viewer.
    Upgraded,
}

#[derive(Debug)]
struct Entry {
    phase: Phase,
    /// When the connection entered `phase`.
    since: Instant,
    close: CancellationToken,
}

/// The open connections of one listener, by phase.
#[derive(Debug, Default)]
struct Table {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

impl Table {
    fn register(table: &Arc<Table>) -> Registration {
        let id = table.next_id.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        let entry = Entry {
            phase: Phase::Waiting,
            since: Instant::now(),
            close: close.clone(),
        };
        table.entries().insert(id, entry);
        Registration {
            table: Arc::clone(table),
            id,
            close,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while holding the lock leaves the map consistent.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_phase(&self, id: u64, phase: Phase) {
        if let Some(entry) = self.entries().get_mut(&id) {
            entry.phase = phase;
            entry.since = Instant::now();
        }
    }

    /// Picks the connection to close for a newcomer, takes it out of the
    /// table and tells it to close; returns its phase.
    fn close_one(&self) -> Option<Phase> {
        let mut entries = self.entries();
        let victim = entries
            .iter()
            .min_by_key(|(_, e)| (e.phase != Phase::Waiting, e.since))
            .map(|(id, _)| *id)?;
        let entry = entries.remove(&victim)?;
        entry.close.cancel();
        Some(entry.phase)
    }
}

/// A connection's place in its listener's [`Table`], given up on drop.
#[derive(Debug)]
struct Registration {
    table: Arc<Table>,
    id: u64,
    /// Cancelled when the cap closes this connection.
    close: CancellationToken,
}

impl Registration {
    fn phases(&self) -> PhaseSetter {
        PhaseSetter {
            table: Arc::clone(&self.table),
            id: self.id,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.entries().remove(&self.id);
    }
}

/// Lets the request path move its connection between phases.
#[derive(Debug, Clone)]
struct PhaseSetter {
    table: Arc<Table>,
    id: u64,
}

impl PhaseSetter {
    fn set(&self, phase: Phase) {
        self.table.set_phase(self.id, phase);
    }
}

/// A response body that puts its connection back to [`Phase::Waiting`]
/// once hyper is done with it (written to the end, or dropped), unless the
/// connection was upgraded (`phases` is then `None`).
#[derive(Debug)]
struct Finishing {
    inner: Body,
    phases: Option<PhaseSetter>,
}

impl hyper::body::Body for Finishing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        if let Some(phases) = &self.phases {
            phases.set(Phase::Waiting);
        }
    }
}

/// Counts what the cap did and logs it at most once per
/// [`CAP_LOG_INTERVAL`], so a flood does not flood the log too; what is
/// left at the end of a burst is logged when the interval is up.
#[derive(Debug, Default)]
struct CapLog {
    waiting_closed: u64,
    busy_closed: u64,
    refused: u64,
    last_log: Option<Instant>,
}

impl CapLog {
    fn note(&mut self, closed: Phase) {
        match closed {
            Phase::Waiting => self.waiting_closed += 1,
            Phase::Serving | Phase::Upgraded => self.busy_closed += 1,
        }
    }

    /// Whether something happened that is not logged yet.
    fn pending(&self) -> bool {
        self.waiting_closed + self.busy_closed + self.refused > 0
    }

    /// The earliest the next line may be logged.
    fn next_log(&self) -> Instant {
        self.last_log
            .map_or_else(Instant::now, |last| last + CAP_LOG_INTERVAL)
    }

    fn flush(&mut self, listener: &str, max: usize) {
        warn!(
            listener,
            max_connections = max,
            closed_waiting = self.waiting_closed,
            closed_busy = self.busy_closed,
            refused = self.refused,
            "HTTP listener at its connection cap: closed connections to admit new ones"
        );
        *self = CapLog {
            last_log: Some(Instant::now()),
            ..CapLog::default()
        };
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    registration: Registration,
    slot: OwnedSemaphorePermit,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let close = registration.close.clone();
    let phases = registration.phases();
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
        closed: Box::pin(registration.close.clone().cancelled_owned()),
        _registration: registration,
        _slot: slot,
    });
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        phases.set(Phase::Serving);
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = router.clone().oneshot(request.map(Body::new));
        let phases = phases.clone();
        async move {
            let response = response.await?;
            // An upgraded connection stays a viewer once its (empty) body is
            // gone; any other is back to waiting for its next request.
            let phases = if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                phases.set(Phase::Upgraded);
                None
            } else {
                Some(phases)
            };
            Ok::<_, std::convert::Infallible>(response.map(|inner| Finishing { inner, phases }))
        }
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
            _ = close.cancelled() => {
                debug!(%peer, "HTTP connection closed to make room at the cap");
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

/// A socket that notes its activity and holds its connection slot and its
/// place in the table: both are freed when the socket closes, even after an
/// upgrade to a WebSocket has taken the socket out of hyper's hands. Once
/// the cap closes the connection, every read and write fails, which ends a
/// WebSocket's session too.
struct Tracked {
    // Dropped in this order: out of the table before the socket closes, so a
    // client that sees the close never finds its connection still counted.
    _registration: Registration,
    inner: TcpStream,
    activity: Arc<Activity>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    _slot: OwnedSemaphorePermit,
}

impl Tracked {
    /// Whether the cap closed this connection; if not, wakes the task that
    /// polled when it does.
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> bool {
        self.closed.as_mut().poll(cx).is_ready()
    }
}

fn closed_to_make_room() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "closed to make room at the HTTP connection cap",
    )
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.poll_closed(cx) {
            return Poll::Ready(Err(closed_to_make_room()));
        }
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
        if self.poll_closed(cx) {
            return Poll::Ready(Err(closed_to_make_room()));
        }
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
        if self.poll_closed(cx) {
            return Poll::Ready(Err(closed_to_make_room()));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_cap_closes_the_longest_waiting_first_and_a_busy_one_only_when_none_waits() {
        let table = Arc::new(Table::default());
        let viewer = Table::register(&table);
        viewer.phases().set(Phase::Upgraded);
        tokio::time::advance(Duration::from_secs(1)).await;
        let old = Table::register(&table);
        let kept_alive = Table::register(&table);
        kept_alive.phases().set(Phase::Serving);
        tokio::time::advance(Duration::from_secs(1)).await;
        let serving = Table::register(&table);
        serving.phases().set(Phase::Serving);
        // Answered, it waits again: since now, the newest wait.
        kept_alive.phases().set(Phase::Waiting);
        let gone = Table::register(&table);
        drop(gone);

        assert_eq!(table.close_one(), Some(Phase::Waiting));
        assert!(old.close.is_cancelled() && !kept_alive.close.is_cancelled());
        assert_eq!(table.close_one(), Some(Phase::Waiting));
        assert!(kept_alive.close.is_cancelled());
        // None waits: the one longest in its phase, the viewer.
        assert_eq!(table.close_one(), Some(Phase::Upgraded));
        assert!(viewer.close.is_cancelled() && !serving.close.is_cancelled());
        assert_eq!(table.close_one(), Some(Phase::Serving));
        assert_eq!(table.close_one(), None);
    }
}
