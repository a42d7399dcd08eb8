//! The lane: one thread that serves the players of a small world together.
//!
//! Why: in a small world a broadcast is usually a single move, going to a
//! few dozen subscribers. On tokio's multi-threaded runtime, waking those
//! subscribers' tasks makes the runtime wake a second worker thread to
//! steal some of them, and waking an idle CPU (on a virtual machine, an
//! idle virtual CPU the host has put to sleep) is what the tail of the
//! latency is made of at 20–50 clients. On one thread the same broadcast
//! wakes no other thread: the tasks run one after the other, and the other
//! cores stay free for the clients. `docs/bench/README.md` has the
//! measurement.
//!
//! Only while the world is small: a big world needs every core, and a
//! third thread beside one worker per core only competes with them. A
//! player is admitted to the lane while the world has fewer subscribers
//! than its capacity (`--lane-connections`); once a player arrives in a
//! world that big, the lane *closes*: its players move their sockets to the
//! worker threads ([`Ticket::closing`], [`Ticket::leave`]), and the lane
//! takes players again once the world is small again.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::runtime::{Builder, Handle};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::connection::{Connection, Disconnect};

/// World size (subscribers) below which players go to the lane, by default
/// (`--lane-connections`).
pub const DEFAULT_LANE_CONNECTIONS: usize = 64;

/// A thread running a single-threaded runtime, the players it serves, and
/// the worker threads' runtime they move to when it closes. The thread
/// ends when the lane is dropped.
#[derive(Debug)]
pub struct Lane {
    runtime: Handle,
    pool: Handle,
    capacity: usize,
    seats: Seats,
    /// Cancelled (and replaced) when the lane closes.
    closing: Mutex<CancellationToken>,
    stop: CancellationToken,
}

/// How many players the lane serves now, also on `/metrics`.
#[derive(Debug, Clone)]
struct Seats {
    taken: Arc<AtomicUsize>,
    gauge: Gauge,
}

/// A player's place on the lane: what its session needs to know when the
/// lane closes, and where it goes then. Dropping it frees the seat.
#[derive(Debug)]
pub struct Ticket {
    seats: Seats,
    closing: CancellationToken,
    pool: Handle,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.seats.taken.fetch_sub(1, Ordering::AcqRel);
        self.seats.gauge.dec();
    }
}

impl Ticket {
    /// Resolves when the lane closes: the session should [`Ticket::leave`].
    pub async fn closing(&self) {
        self.closing.cancelled().await;
    }

    /// Frees the seat; returns the worker threads' runtime, where the
    /// session goes on (its socket registered there anew).
    pub fn leave(self) -> Handle {
        self.pool.clone()
    }

    /// Moves `connection` off the lane once it closed: frees the seat,
    /// registers the socket with the worker threads (every byte already
    /// read kept) and runs `serve` there until the connection ends.
    pub async fn move_to_workers<D, T, F, Fut>(
        self,
        connection: Connection<OwnedReadHalf, OwnedWriteHalf, D>,
        serve: F,
    ) -> Result<T, Disconnect>
    where
        D: Decoder + Send + 'static,
        D::Error: std::fmt::Display,
        T: Send + 'static,
        F: FnOnce(Connection<OwnedReadHalf, OwnedWriteHalf, D>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Disconnect>> + Send + 'static,
    {
        let pool = self.leave();
        let (reader, writer, rest) = connection.unplug();
        let socket = reader
            .reunite(writer)
            .map_err(|err| Disconnect::Io(std::io::Error::other(err)))?
            .into_std()
            .map_err(Disconnect::Io)?;
        let moved = pool.spawn(async move {
            let (reader, writer) = TcpStream::from_std(socket)
                .map_err(Disconnect::Io)?
                .into_split();
            serve(rest.plug(reader, writer)).await
        });
        match moved.await {
            Ok(session) => session,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(Disconnect::Shutdown),
        }
    }
}

impl Lane {
    /// Starts the lane's thread, for worlds of fewer than `capacity`
    /// subscribers; its players move to `pool` when it closes. `gauge`
    /// counts them on `/metrics`.
    pub fn start(capacity: usize, pool: Handle, gauge: Gauge) -> std::io::Result<Lane> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("lane".to_owned())
            .spawn(move || runtime.block_on(stopped.cancelled()))?;
        Ok(Lane {
            runtime: handle,
            pool,
            capacity,
            seats: Seats {
                taken: Arc::new(AtomicUsize::new(0)),
                gauge,
            },
            closing: Mutex::new(CancellationToken::new()),
            stop,
        })
    }

    /// Players the lane serves now.
    pub fn len(&self) -> usize {
        self.seats.taken.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A ticket for a player arriving in a world of `world` subscribers:
    /// granted while the world is smaller than the capacity. Otherwise the
    /// lane closes, if it serves anyone, and `None` says "worker threads".
    pub fn admit(&self, world: usize) -> Option<Ticket> {
        if world >= self.capacity {
            if !self.is_empty() {
                tracing::info!(
                    players = self.len(),
                    subscribers = world,
                    "the world outgrew the lane: its players move to the worker threads"
                );
                self.close();
            }
            return None;
        }
        self.seats
            .taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < self.capacity).then_some(taken + 1)
            })
            .ok()?;
        self.seats.gauge.inc();
        Some(Ticket {
            seats: self.seats.clone(),
            closing: self.closing_token().clone(),
            pool: self.pool.clone(),
        })
    }

    /// Tells every player on the lane to move to the worker threads;
    /// players admitted later get a new token.
    pub fn close(&self) {
        let mut closing = self.closing_token();
        closing.cancel();
        *closing = CancellationToken::new();
    }

    fn closing_token(&self) -> std::sync::MutexGuard<'_, CancellationToken> {
        self.closing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `connection` on the lane, tracked by `tracker` like every task
    /// of the server. A socket it uses must be registered from inside it
    /// (`TcpStream::from_std`), so that the lane's own poller, not a worker
    /// thread's, wakes it.
    pub fn spawn<F>(&self, tracker: &TaskTracker, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(tracker.track_future(connection));
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The lane for worlds of fewer than `capacity` subscribers, if any.
pub(crate) fn start(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[tokio::test]
    async fn players_run_on_the_lane_while_the_world_is_small() {
        let lane = Lane::start(2, Handle::current(), Gauge::default()).unwrap();
        let tracker = TaskTracker::new();
        let (names, mut ran) = tokio::sync::mpsc::unbounded_channel();
        let mut tickets = Vec::new();
        for world in 0..2 {
            let ticket = lane
                .admit(world)
                .expect("a small world's player was refused");
            let names = names.clone();
            lane.spawn(&tracker, async move {
                names.send(thread_name()).unwrap();
            });
            tickets.push(ticket);
        }
        assert_eq!(ran.recv().await.unwrap(), "lane");
        assert_eq!(ran.recv().await.unwrap(), "lane");
        assert_eq!(lane.len(), 2);
        // Full, even in a world said to be small.
        assert!(lane.admit(0).is_none());
        drop(tickets.pop());
        assert_eq!(lane.len(), 1);
        assert!(lane.admit(1).is_some(), "a freed seat was not given again");
    }

    #[tokio::test]
    async fn a_player_arriving_in_a_big_world_closes_the_lane() {
        let lane = Lane::start(4, Handle::current(), Gauge::default()).unwrap();
        let ticket = lane.admit(1).unwrap();
        assert!(lane.admit(4).is_none(), "a big world's player got a seat");
        tokio::time::timeout(std::time::Duration::from_secs(5), ticket.closing())
            .await
            .expect("the lane's player was not told to leave");
        let pool = ticket.leave();
        assert_eq!(lane.len(), 0, "leaving did not free the seat");
        assert_eq!(pool.id(), Handle::current().id());
        // Small again: open again, with a token not yet cancelled.
        let later = lane.admit(1).unwrap();
        let told = tokio::time::timeout(std::time::Duration::from_millis(50), later.closing());
        assert!(
            told.await.is_err(),
            "a new player was told to leave at once"
        );
    }
}
