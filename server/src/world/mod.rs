//! The one shared world: its [`State`] (players, positions, the event log)
//! and its [`Fanout`] (who receives it, in which format), behind one lock,
//! plus the broadcaster task that turns the log into batches.
//!
//! A broadcast encodes the events once per wire format and queues the same
//! bytes for every subscriber; see [`crate::fanout`] for how memory stays
//! bounded when a subscriber falls behind.

mod broadcaster;
pub mod grid;
mod handles;
pub mod move_rate;
mod overview;
mod pacing;
mod recording;
mod replication;
pub mod state;
pub mod sums;

/// A legacy player named after its id, for the tests of the world and the fan-out.
#[cfg(test)]
pub(crate) use state::tests::info;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use shared::ClientId;
use shared::legacy::Position;
use shared::native::{OVERVIEW_PROTOCOL_VERSION, PlayerInfo};
use tokio::sync::Notify;
use tokio::time::Instant;

pub use broadcaster::{MAX_GATHER, STRAGGLERS_PER_SUBSCRIBER};
pub use grid::{CELL_SIZE, Cell, CellMap, MAX_VIEW_CELLS, Region};
pub use handles::{Membership, Subscription};
pub use move_rate::{DEFAULT_MAX_MOVES_PER_SECOND, MOVE_BURST, MoveRate};
pub use pacing::{MAX_BROADCAST_WAIT, Pacer};
use recording::RecordTap;
pub use recording::{Next, RECORD_QUEUE_BATCHES, RecordBatch, RecordFeed, RecordMetrics};
use replication::Replication;
pub use replication::{NODE_ID_SHIFT, NodeId, node_of};
pub use state::{Crossing, Event, LOG_COMPACT_MIN, MAX_MOVES_PER_BROADCAST, Player, State};

use crate::fanout::{self, Fanout, Outgoing, SubscriberKey, Taken, WireFormat};

#[derive(Debug, Default)]
struct Inner {
    state: State,
    fanout: Fanout,
    next_viewer: u64,
    replication: Option<Replication>,
    /// Where broadcasts' events go to be recorded (`--record`).
    recording: Option<RecordTap>,
    /// When broadcasts may go, by what they cost (see [`pacing`]).
    pacer: Pacer,
    /// When a position held back by the move-rate cap may go out.
    held_until: Option<Instant>,
    /// The process's CPU time when the last broadcast started.
    cpu_at_last_broadcast: Option<Duration>,
    /// Reads the CPU time broadcasts are charged by: the process's CPU
    /// clock, or none (tests with a paused clock, where the CPU clock
    /// would still run).
    cpu_clock: Option<fn() -> Option<Duration>>,
}

impl Inner {
    /// Whether a broadcast is due: news in the log, or a subscriber waiting
    /// for its snapshot (they are taken by broadcasts).
    fn has_news(&self) -> bool {
        self.state.has_news() || self.fanout.owes_snapshots()
    }

    /// Whether the subscribers have taken the last broadcast (all but a few
    /// stragglers when there are thousands), so that the next may go.
    fn ready_for_more(&self) -> bool {
        self.fanout.undrained() <= self.fanout.len() / STRAGGLERS_PER_SUBSCRIBER
    }

    /// The earliest the next broadcast may start, by its cost (see [`pacing`]).
    fn next_broadcast_at(&mut self) -> Instant {
        let subscribers = self.fanout.len();
        self.pacer.next_start(Instant::now(), subscribers)
    }

    /// Whether a broadcast may start now, as far as its cost goes.
    fn spaced(&mut self) -> bool {
        let subscribers = self.fanout.len();
        self.pacer.may_start(Instant::now(), subscribers)
    }
}

/// The shared world of players and positions.
#[derive(Debug, Default)]
pub struct World {
    inner: Mutex<Inner>,
    /// Wakes the broadcaster when the log has something new.
    dirty: Notify,
    /// Wakes the broadcaster when the subscribers have taken the last
    /// broadcast.
    drained: Notify,
    /// Subscribers resynchronised because they fell behind (on `/metrics`).
    resyncs: Counter,
    /// Moves coalesced away by the move-rate cap (on `/metrics`).
    coalesced: Counter,
    /// Broadcasts made (on `/metrics`: with the bytes written, how big
    /// batches are).
    broadcasts: Counter,
    /// Set by [`World::run_broadcaster`] when it has no floor: news then
    /// goes out from the task that brought it (or from the one that took
    /// the last of the previous broadcast), without a hop through the
    /// broadcaster task. See [`World::news_added`].
    eager: AtomicBool,
}

impl World {
    pub fn new() -> Arc<World> {
        let world = World::default();
        world.lock().cpu_clock = Some(pacing::process_cpu_time);
        Arc::new(world)
    }

    /// Adds a player that also receives the world in `format`. Its first
    /// delivery is a snapshot of every player. It leaves when the returned
    /// handle is dropped.
    pub fn join(self: &Arc<Self>, info: PlayerInfo, format: &'static dyn WireFormat) -> Membership {
        self.join_speaking(info, format, 0)
    }

    /// [`World::join`] for a native client that announced
    /// `protocol_version`: from [`OVERVIEW_PROTOCOL_VERSION`] on, it is also
    /// sent the roster (whole with its first snapshot, then every join and
    /// leave) and, with a view, the overview. Older clients would not know
    /// these messages.
    pub fn join_speaking(
        self: &Arc<Self>,
        info: PlayerInfo,
        format: &'static dyn WireFormat,
        protocol_version: u32,
    ) -> Membership {
        let id = info.id;
        let key = SubscriberKey::Player(id);
        let mut inner = self.lock();
        inner.state.join(info);
        let wake = inner.fanout.subscribe(key, format);
        if protocol_version >= OVERVIEW_PROTOCOL_VERSION {
            inner.fanout.feed_roster(key);
        }
        self.news_added(inner);
        Membership {
            id,
            subscription: Subscription {
                world: Arc::clone(self),
                key,
                wake,
            },
        }
    }

    /// Adds a viewer that receives the world in `format` without being in
    /// it (the web view). It stops when the returned handle is dropped.
    pub fn subscribe(self: &Arc<Self>, format: &'static dyn WireFormat) -> Subscription {
        let mut inner = self.lock();
        inner.next_viewer += 1;
        let key = SubscriberKey::Viewer(inner.next_viewer);
        let wake = inner.fanout.subscribe(key, format);
        // Its snapshot goes with the next broadcast.
        self.news_added(inner);
        Subscription {
            world: Arc::clone(self),
            key,
            wake,
        }
    }

    /// Caps every local player's moves at `per_second` (0: no cap); see
    /// [`State::move_player`].
    pub fn set_max_moves_per_second(&self, per_second: u32) {
        self.lock()
            .state
            .set_move_rate(MoveRate::per_second(per_second));
    }

    /// Moves the move-rate cap coalesced away so far.
    pub fn coalesced_moves(&self) -> u64 {
        self.coalesced.get()
    }

    /// Registers the world's own counters for `/metrics`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "subscriber_resyncs",
            "Subscribers that fell behind and were sent a fresh snapshot instead of their backlog",
            self.resyncs.clone(),
        );
        registry.register(
            "moves_coalesced",
            "Moves the move-rate cap (--max-moves-per-second) held back; each player's latest still went out",
            self.coalesced.clone(),
        );
        registry.register(
            "broadcasts",
            "Broadcasts of the world (the pacer lets fewer, larger ones go under load)",
            self.broadcasts.clone(),
        );
    }

    fn set_positions(&self, id: ClientId, positions: &[Position]) {
        if positions.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let coalesced = inner.state.coalesced_moves();
        inner.state.move_player(id, positions, Instant::now());
        self.coalesced
            .inc_by(inner.state.coalesced_moves() - coalesced);
        if inner.state.has_news() {
            self.news_added(inner);
        } else {
            // Held back by the move-rate cap: the broadcaster lets it out.
            drop(inner);
            self.dirty.notify_one();
        }
    }

    /// Sends news just written to the log (the lock still held): at once,
    /// from this task, when the broadcaster is eager and the subscribers
    /// have taken the last broadcast; otherwise it is left to gather, and
    /// goes out when they have (see [`World::took_some`]) or from the
    /// broadcaster task after [`MAX_GATHER`].
    ///
    /// This is what keeps a lone change fast: it reaches the subscribers'
    /// tasks straight from the task that read it, as in a
    /// thread-per-client server, instead of waking the broadcaster first.
    fn news_added(&self, mut inner: MutexGuard<'_, Inner>) {
        if self.eager.load(Ordering::Relaxed) && inner.ready_for_more() && inner.spaced() {
            self.broadcast_locked(inner);
        } else {
            drop(inner);
            self.dirty.notify_one();
        }
    }

    /// Called with the lock held after a subscriber took its queue or
    /// left: if that made the subscribers ready for the next broadcast,
    /// sends what gathered meanwhile (eager) or tells the broadcaster.
    fn took_some(&self, mut inner: MutexGuard<'_, Inner>, was_ready: bool) {
        if was_ready || !inner.ready_for_more() {
            return;
        }
        inner.pacer.drained(Instant::now());
        if self.eager.load(Ordering::Relaxed) && inner.has_news() && inner.spaced() {
            self.broadcast_locked(inner);
        } else {
            drop(inner);
            self.drained.notify_one();
        }
    }

    fn unsubscribe(&self, key: SubscriberKey) {
        let mut inner = self.lock();
        let was_ready = inner.ready_for_more();
        inner.fanout.unsubscribe(key);
        let left = match key {
            SubscriberKey::Player(id) => inner.state.leave(id).is_some(),
            SubscriberKey::Viewer(_) => false,
        };
        if left {
            // A leave is news; going out with it (or leaving it to the
            // broadcaster) also covers the readiness this may have brought.
            if !was_ready && inner.ready_for_more() {
                inner.pacer.drained(Instant::now());
                self.drained.notify_one();
            }
            self.news_added(inner);
        } else {
            self.took_some(inner, was_ready);
        }
    }

    fn drain(&self, key: SubscriberKey) -> Outgoing {
        let mut inner = self.lock();
        let was_ready = inner.ready_for_more();
        let taken = inner.fanout.take(key);
        self.took_some(inner, was_ready);
        // Put together out of the lock: cutting a view's cells is the
        // subscriber's work, not the world's.
        taken.map(Taken::encode).unwrap_or_default()
    }

    /// Turns the log into one batch and queues it for every subscriber.
    /// Returns how many subscribers had to be resynchronised.
    pub fn broadcast(&self) -> usize {
        self.broadcast_locked(self.lock())
    }

    /// [`World::broadcast`] with the lock already held; wakes the
    /// subscribers once it is released.
    fn broadcast_locked(&self, mut inner: MutexGuard<'_, Inner>) -> usize {
        let started = Instant::now();
        inner.held_until = inner.state.release_held(started);
        if !inner.has_news() {
            return 0;
        }
        inner.pacer.started(started);
        self.broadcasts.inc();
        // What the server computed since the last broadcast started: that
        // broadcast's writes, and the reads that brought this news.
        let cpu = inner.cpu_clock.and_then(|read| read());
        if let (Some(now), Some(then)) = (cpu, inner.cpu_at_last_broadcast) {
            inner.pacer.charge(now.saturating_sub(then));
        }
        inner.cpu_at_last_broadcast = cpu;
        let events = inner.state.take_log();
        if let Some(replication) = &inner.replication {
            replication.send_local(&events);
        }
        let limit = fanout::queue_limit(inner.state.player_count());
        let Inner { state, fanout, .. } = &mut *inner;
        let mut woken = Vec::with_capacity(fanout.len());
        let resynced = fanout.broadcast(&events, state, limit, &mut woken);
        World::record(&mut inner, started, events);
        let subscribers = inner.fanout.len();
        inner.pacer.wrote(woken.len(), subscribers);
        if inner.ready_for_more() {
            // Nobody to wait for (a join legacy clients are not told of).
            inner.pacer.drained(Instant::now());
        }
        drop(inner);
        for wake in woken {
            wake.notify_one();
        }
        self.resyncs.inc_by(resynced as u64);
        resynced
    }

    pub fn player_count(&self) -> usize {
        self.lock().state.player_count()
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().fanout.len()
    }

    /// Subscribers resynchronised so far because they fell behind.
    pub fn resync_count(&self) -> u64 {
        self.resyncs.get()
    }

    /// Bytes queued for player `id` and not yet taken by its connection.
    pub fn queued_bytes(&self, id: ClientId) -> Option<usize> {
        self.lock().fanout.queued_bytes(SubscriberKey::Player(id))
    }

    /// The most a subscriber may have queued before it is resynchronised.
    pub fn queue_limit(&self) -> usize {
        fanout::queue_limit(self.player_count())
    }

    /// Latest position of a player, if it is in the world and has one.
    pub fn position_of(&self, id: ClientId) -> Option<Position> {
        self.lock().state.player(id).and_then(|p| p.position)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
