//! The one shared world: its [`State`] (players, positions, the event log)
//! and its [`Fanout`] (who receives it, in which format), behind one lock,
//! plus the broadcaster task that turns the log into batches.
//!
//! A broadcast encodes the events once per wire format and queues the same
//! bytes for every subscriber; see [`crate::fanout`] for how memory stays
//! bounded when a subscriber falls behind.

pub mod grid;
pub mod move_rate;
mod pacing;
pub mod state;

/// A legacy player named after its id, for the tests of the world and the fan-out.
#[cfg(test)]
pub(crate) use state::tests::info;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use shared::ClientId;
use shared::legacy::Position;
use shared::native::{PlayerInfo, PlayerState};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use grid::{CELL_SIZE, Cell, CellMap, MAX_VIEW_CELLS, Region};
pub use move_rate::{DEFAULT_MAX_MOVES_PER_SECOND, MOVE_BURST, MoveRate};
pub use pacing::{MAX_BROADCAST_INTERVAL, Pacer};
pub use state::{Crossing, Event, LOG_COMPACT_MIN, MAX_MOVES_PER_BROADCAST, Player, State};

use crate::fanout::{self, Fanout, Outgoing, SubscriberKey, Taken, WireFormat};

/// Longest the broadcaster waits for the subscribers of one broadcast to
/// take it before it sends the next anyway (a subscriber stuck in a write
/// must not hold everyone back for long).
pub const MAX_GATHER: Duration = Duration::from_millis(20);

/// Subscribers of the last broadcast that may still be busy when the next
/// one starts, per subscriber: with thousands of them, the last few
/// stragglers are not worth waiting for. Below this many subscribers the
/// broadcaster waits for all of them.
pub const STRAGGLERS_PER_SUBSCRIBER: usize = 64;

/// Shortest wait the broadcaster sleeps for to space broadcasts (tokio's
/// timer has a millisecond's resolution; shorter gaps are not waited for).
const MIN_SPACING_SLEEP: Duration = Duration::from_millis(1);

#[derive(Debug, Default)]
struct Inner {
    state: State,
    fanout: Fanout,
    next_viewer: u64,
    replication: Option<Replication>,
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

/// Where a cluster node's own events go after each broadcast.
#[derive(Debug)]
struct Replication {
    node: NodeId,
    outbox: mpsc::Sender<Vec<Event>>,
    /// Set when the outbox was full and a batch was dropped: the publisher
    /// then makes the other nodes resynchronise.
    overflowed: Arc<AtomicBool>,
}

/// A cluster node's number; the high bits of every id it hands out.
pub type NodeId = u16;

/// Bits of a client id below the node id.
pub const NODE_ID_SHIFT: u32 = 24;

/// The node whose registry handed out `id`.
pub fn node_of(id: ClientId) -> NodeId {
    (id >> NODE_ID_SHIFT) as NodeId
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
        let id = info.id;
        let key = SubscriberKey::Player(id);
        let mut inner = self.lock();
        inner.state.join(info);
        let wake = inner.fanout.subscribe(key, format);
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
        if self.eager.load(Ordering::Relaxed) && inner.state.has_news() && inner.spaced() {
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
        let Inner { state, fanout, .. } = &mut *inner;
        let taken = fanout.take(key, state);
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
        if !inner.state.has_news() {
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
        let subscribers = inner.fanout.len();
        inner.pacer.wrote(woken.len(), subscribers);
        drop(inner);
        for wake in woken {
            wake.notify_one();
        }
        self.resyncs.inc_by(resynced as u64);
        resynced
    }

    /// Broadcasts whenever the log has news, until `shutdown`.
    ///
    /// There is no fixed tick: like Redis and NATS flushing what is there at
    /// the end of each pass, a change goes out at once when the broadcaster
    /// is idle, and changes that arrive while the subscribers are still
    /// taking the last broadcast gather into the next one. Batches thus grow
    /// with the load (one write per subscriber per batch) and stay single
    /// changes when the load is light. `floor` (the `--broadcast-interval-ms`
    /// flag, 0 by default) adds a fixed minimum time between broadcasts for
    /// those who want ticks.
    pub async fn run_broadcaster(self: Arc<Self>, floor: Duration, shutdown: CancellationToken) {
        self.eager.store(floor.is_zero(), Ordering::Relaxed);
        // Changes made before this point may be waiting for us.
        self.dirty.notify_one();
        let mut last = Instant::now() - floor;
        loop {
            let held_until = self.lock().held_until;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.dirty.notified() => {}
                _ = tokio::time::sleep_until(held_until.unwrap_or_else(Instant::now)), if held_until.is_some() => {}
            }
            {
                // Positions held back by the move-rate cap whose time came.
                let mut inner = self.lock();
                inner.held_until = inner.state.release_held(Instant::now());
                if !inner.state.has_news() {
                    continue;
                }
            }
            if !floor.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(last + floor) => {}
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.previous_broadcast_taken() => {}
            }
            let at = self.lock().next_broadcast_at();
            if at >= Instant::now() + MIN_SPACING_SLEEP {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            last = Instant::now();
            let resynced = self.broadcast();
            if resynced > 0 {
                tracing::debug!(subscribers = resynced, "backlogs coalesced into snapshots");
            }
        }
    }

    /// Resolves once the subscribers woken by the last broadcast have taken
    /// it (all but a few stragglers when there are thousands), or
    /// [`MAX_GATHER`] after it went out.
    async fn previous_broadcast_taken(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let give_up = {
                let inner = self.lock();
                if inner.ready_for_more() {
                    return;
                }
                match inner.pacer.last_start() {
                    Some(last) => last + MAX_GATHER,
                    None => return,
                }
            };
            tokio::select! {
                _ = drained => {}
                _ = tokio::time::sleep_until(give_up) => return,
            }
        }
    }

    /// Makes every broadcast also hand this node's own events (those of
    /// players whose id carries `node`) to `outbox`, for the cluster.
    /// Events of other nodes' players are never handed back.
    pub fn replicate_to(
        &self,
        node: NodeId,
        outbox: mpsc::Sender<Vec<Event>>,
        overflowed: Arc<AtomicBool>,
    ) {
        self.lock().replication = Some(Replication {
            node,
            outbox,
            overflowed,
        });
    }

    /// Applies events that happened on another node. A join of a player
    /// already known with the same name and kind is skipped (a replayed
    /// batch after a resynchronisation).
    pub fn apply_remote(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for event in events {
            if let Event::Joined(info) = event
                && inner.state.player(info.id).is_some_and(|p| p.info == *info)
            {
                continue;
            }
            inner.state.apply(event);
        }
        self.news_added(inner);
    }

    /// Makes the players of `node` exactly `players`: leaves for those gone,
    /// joins for new ones, moves where the position changed.
    pub fn reconcile_node(&self, node: NodeId, players: &[PlayerState]) {
        {
            let mut inner = self.lock();
            let state = &mut inner.state;
            let wanted: HashMap<ClientId, &PlayerState> = players
                .iter()
                .filter(|p| node_of(p.info.id) == node)
                .map(|p| (p.info.id, p))
                .collect();
            let gone: Vec<ClientId> = state
                .players()
                .map(|p| p.info.id)
                .filter(|id| node_of(*id) == node && !wanted.contains_key(id))
                .collect();
            for id in gone {
                state.leave(id);
            }
            for (id, player) in wanted {
                let known = state
                    .player(id)
                    .map(|p| (p.info == player.info, p.position));
                match known {
                    Some((true, position)) if position == player.position => continue,
                    Some((true, _)) => {}
                    _ => state.join(player.info.clone()),
                }
                if let Some(position) = player.position {
                    state.set_positions(id, &[position]);
                }
            }
        }
        self.dirty.notify_one();
    }

    /// Removes every player of `node` (it died or was cut off); returns how
    /// many there were.
    pub fn remove_node(&self, node: NodeId) -> usize {
        let removed = {
            let mut inner = self.lock();
            let ids: Vec<ClientId> = inner
                .state
                .players()
                .map(|p| p.info.id)
                .filter(|id| node_of(*id) == node)
                .collect();
            for &id in &ids {
                inner.state.leave(id);
            }
            ids.len()
        };
        self.dirty.notify_one();
        removed
    }

    /// Every player of `node` with its latest position.
    pub fn players_of_node(&self, node: NodeId) -> Vec<PlayerState> {
        self.lock()
            .state
            .players()
            .filter(|p| node_of(p.info.id) == node)
            .map(|p| PlayerState {
                info: p.info.clone(),
                position: p.position,
            })
            .collect()
    }

    /// Players that live on other nodes than `node`.
    pub fn remote_player_count(&self, node: NodeId) -> usize {
        self.lock()
            .state
            .players()
            .filter(|p| node_of(p.info.id) != node)
            .count()
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

impl Replication {
    fn send_local(&self, events: &[Event]) {
        let local: Vec<Event> = events
            .iter()
            .filter(|e| node_of(e.player()) == self.node)
            .cloned()
            .collect();
        if !local.is_empty() && self.outbox.try_send(local).is_err() {
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }
}

/// A subscriber's handle: wait for news, take it. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    world: Arc<World>,
    key: SubscriberKey,
    wake: Arc<Notify>,
}

impl Subscription {
    /// Resolves when there is something to send.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Takes what is queued.
    pub fn take_outgoing(&self) -> Outgoing {
        self.world.drain(self.key)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.world.unsubscribe(self.key);
    }
}

/// A player's place in the world, which is also its subscription; dropping
/// it makes the player leave.
#[derive(Debug)]
pub struct Membership {
    id: ClientId,
    subscription: Subscription,
}

impl Membership {
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Records positions this player sent, oldest first.
    pub fn set_positions(&self, positions: &[Position]) {
        self.subscription.world.set_positions(self.id, positions);
    }

    /// Sets this (native) player's area of interest: from now on it is sent
    /// only the players in the grid cells overlapping `center ±
    /// half_extent`, starting with a snapshot of them if that region
    /// changed. A `half_extent` of 0, or a region past
    /// [`MAX_VIEW_CELLS`], means the whole world.
    pub fn set_view(&self, center: Position, half_extent: u16) {
        let region = Region::around(center, half_extent);
        let world = &self.subscription.world;
        world.lock().fanout.set_view(self.subscription.key, region);
    }

    /// Resolves when there is something to send to this player.
    pub async fn changed(&self) {
        self.subscription.changed().await;
    }

    /// Takes what is queued for this player.
    pub fn take_outgoing(&self) -> Outgoing {
        self.subscription.take_outgoing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::legacy::LEGACY_RECORDS;
    use crate::fanout::tests::records;
    use crate::fanout::{BASE_QUEUE_BYTES, QUEUE_BYTES_PER_PLAYER};
    use shared::legacy::PositionRecord;

    #[test]
    fn newcomer_gets_snapshot_then_every_move_in_order() {
        let world = World::new();
        let a = world.join(info(1), &LEGACY_RECORDS);
        a.set_positions(&[Position::new(1, 1)]);
        world.broadcast();
        let b = world.join(info(2), &LEGACY_RECORDS);
        assert_eq!(
            records(&b.take_outgoing()),
            vec![PositionRecord { id: 1, x: 1, y: 1 }]
        );
        a.set_positions(&[Position::new(2, 2), Position::new(3, 3)]);
        world.broadcast();
        assert_eq!(
            records(&b.take_outgoing()),
            vec![
                PositionRecord { id: 1, x: 2, y: 2 },
                PositionRecord { id: 1, x: 3, y: 3 }
            ]
        );
        drop(a);
        world.broadcast();
        assert_eq!(records(&b.take_outgoing()), vec![PositionRecord::leave(1)]);
        assert_eq!(world.player_count(), 1);
    }

    #[test]
    fn slow_subscriber_is_bounded_and_converges_to_latest() {
        let world = World::new();
        let slow = world.join(info(1), &LEGACY_RECORDS);
        let mover = world.join(info(2), &LEGACY_RECORDS);
        let gone = world.join(info(3), &LEGACY_RECORDS);
        gone.set_positions(&[Position::new(9, 9)]);
        world.broadcast();
        let _ = slow.take_outgoing();
        drop(gone);
        for i in 0..100_000 {
            mover.set_positions(&[Position::new((i % 1000) as i16, 7)]);
            world.broadcast();
        }
        {
            let queued = world.queued_bytes(1).unwrap();
            assert!(
                queued <= BASE_QUEUE_BYTES + 3 * QUEUE_BYTES_PER_PLAYER + 8,
                "queue grew to {queued}"
            );
        }
        assert!(world.resync_count() > 0);
        let got = records(&slow.take_outgoing());
        assert!(
            got.contains(&PositionRecord::leave(3)),
            "the leave is never lost"
        );
        assert_eq!(
            got.iter().rev().find(|r| r.id == 2),
            Some(&PositionRecord {
                id: 2,
                x: 999,
                y: 7
            })
        );
    }

    #[test]
    fn a_flooder_gets_a_few_moves_per_broadcast_and_the_latest_wins() {
        let world = World::new();
        let flooder = world.join(info(1), &LEGACY_RECORDS);
        let other = world.join(info(2), &LEGACY_RECORDS);
        world.broadcast();
        let _ = other.take_outgoing();
        let flood: Vec<Position> = (0..1000).map(|i| Position::new(i, 0)).collect();
        flooder.set_positions(&flood[..500]);
        other.set_positions(&[Position::new(7, 7)]);
        flooder.set_positions(&flood[500..]);
        world.broadcast();
        let got = records(&other.take_outgoing());
        let mine: Vec<i16> = got.iter().filter(|r| r.id == 1).map(|r| r.x).collect();
        let kept = MAX_MOVES_PER_BROADCAST as i16 - 1;
        let expected: Vec<i16> = (0..kept).chain([999]).collect();
        assert_eq!(mine, expected, "first moves in order, then the latest");
        assert!(got.contains(&PositionRecord { id: 2, x: 7, y: 7 }));
        // The next broadcast carries moves in full again.
        flooder.set_positions(&[Position::new(5, 5), Position::new(6, 6)]);
        world.broadcast();
        let got = records(&other.take_outgoing());
        assert_eq!(
            got,
            vec![
                PositionRecord { id: 1, x: 5, y: 5 },
                PositionRecord { id: 1, x: 6, y: 6 }
            ]
        );
    }

    #[test]
    fn reserved_position_is_stored_one_step_inside() {
        let world = World::new();
        let a = world.join(info(1), &LEGACY_RECORDS);
        a.set_positions(&[Position::new(i16::MIN, i16::MIN)]);
        assert_eq!(world.position_of(1), Some(Position::new(-32767, -32767)));
    }

    /// A world whose broadcaster runs without a floor, already started (so
    /// eager) when this returns; cancel the token to stop it.
    async fn world_with_broadcaster() -> (Arc<World>, CancellationToken) {
        let world = World::new();
        // Time is paused in these tests but the CPU clock is not: the
        // pacer is charged only what a test charges it.
        world.lock().cpu_clock = None;
        let shutdown = CancellationToken::new();
        tokio::spawn(Arc::clone(&world).run_broadcaster(Duration::ZERO, shutdown.clone()));
        tokio::task::yield_now().await;
        (world, shutdown)
    }

    /// Joins legacy players `ids` and takes their first deliveries (the
    /// snapshots), so that what they receive next is news.
    async fn caught_up<const N: usize>(world: &Arc<World>, ids: [ClientId; N]) -> [Membership; N] {
        let members = ids.map(|id| world.join(info(id), &LEGACY_RECORDS));
        for member in &members {
            member.changed().await;
            let _ = member.take_outgoing();
        }
        members
    }

    /// What `watcher` receives next.
    async fn next_records(watcher: &Membership) -> Vec<PositionRecord> {
        watcher.changed().await;
        records(&watcher.take_outgoing())
    }

    #[tokio::test(start_paused = true)]
    async fn isolated_changes_go_out_without_waiting_for_a_tick() {
        let (world, shutdown) = world_with_broadcaster().await;
        let [a] = caught_up(&world, [1]).await;
        let started = Instant::now();
        for x in 1..=3 {
            a.set_positions(&[Position::new(x, 0)]);
            assert_eq!(
                next_records(&a).await,
                vec![PositionRecord { id: 1, x, y: 0 }]
            );
        }
        // The clock is paused: any sleep would have moved it.
        assert_eq!(Instant::now(), started, "no timer was waited on");
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn changes_gather_while_a_broadcast_is_still_being_taken() {
        let (world, shutdown) = world_with_broadcaster().await;
        let [a, b] = caught_up(&world, [1, 2]).await;
        a.set_positions(&[Position::new(1, 0)]);
        assert_eq!(next_records(&a).await.len(), 1);
        // `b` has not taken that broadcast yet: the next moves wait for it.
        a.set_positions(&[Position::new(2, 0)]);
        tokio::task::yield_now().await;
        a.set_positions(&[Position::new(3, 0)]);
        let held = Instant::now();
        assert_eq!(next_records(&b).await.len(), 1);
        let got = next_records(&a).await;
        assert_eq!(
            got,
            vec![
                PositionRecord { id: 1, x: 2, y: 0 },
                PositionRecord { id: 1, x: 3, y: 0 }
            ],
            "one batch"
        );
        assert_eq!(Instant::now(), held, "sent as soon as `b` took its batch");
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_change_is_sent_from_the_task_that_brought_it() {
        let (world, shutdown) = world_with_broadcaster().await;
        let [a, b] = caught_up(&world, [1, 2]).await;
        // One thread, and no await between the change and the take: the
        // broadcaster task cannot have run in between.
        a.set_positions(&[Position::new(7, 0)]);
        assert_eq!(
            records(&b.take_outgoing()),
            vec![PositionRecord { id: 1, x: 7, y: 0 }]
        );
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn what_gathered_goes_out_once_all_but_the_allowed_stragglers_took_theirs() {
        let (world, shutdown) = world_with_broadcaster().await;
        let members: Vec<Membership> = (1..=128)
            .map(|id| world.join(info(id), &LEGACY_RECORDS))
            .collect();
        members[0].changed().await;
        for member in &members {
            let _ = member.take_outgoing();
        }
        // 128 joins woke everyone 128 times; with the clock paused the
        // write budget would never refill. This test is about stragglers.
        world.lock().pacer = Pacer::default();
        let started = Instant::now();
        members[0].set_positions(&[Position::new(1, 0)]);
        // Only half have taken it: the next move waits.
        for member in &members[..64] {
            assert_eq!(records(&member.take_outgoing()).len(), 1);
        }
        members[0].set_positions(&[Position::new(2, 0)]);
        assert!(records(&members[1].take_outgoing()).is_empty());
        // 128 / STRAGGLERS_PER_SUBSCRIBER = 2 may stay behind: the one that
        // leaves only those two sends the gathered move on its way.
        let stragglers = members.len() / STRAGGLERS_PER_SUBSCRIBER;
        for member in &members[64..members.len() - stragglers] {
            let _ = member.take_outgoing();
        }
        assert_eq!(
            records(&members[1].take_outgoing()),
            vec![PositionRecord { id: 1, x: 2, y: 0 }]
        );
        assert_eq!(Instant::now(), started, "no timer was waited on");
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn costly_broadcasts_are_spaced_by_what_they_cost() {
        let (world, shutdown) = world_with_broadcaster().await;
        tokio::task::yield_now().await;
        let a = world.join(info(1), &LEGACY_RECORDS);
        a.changed().await;
        let _ = a.take_outgoing();
        // As if broadcasts had just used up the CPU budget and 5 ms more.
        let owed = Duration::from_millis(5);
        world.lock().pacer.charge(pacing::CPU_BURST + owed);
        let started = Instant::now();
        a.set_positions(&[Position::new(1, 0)]);
        assert!(records(&a.take_outgoing()).is_empty(), "not at once");
        assert_eq!(next_records(&a).await.len(), 1);
        // The budget refills at BROADCAST_CPU_SHARE of a core: 10 ms.
        let waited = Instant::now() - started;
        let expected = owed.div_f64(pacing::BROADCAST_CPU_SHARE);
        assert!(
            waited >= expected && waited <= expected + Duration::from_millis(1),
            "waited {waited:?}"
        );
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_flooders_held_latest_position_goes_out_when_its_budget_allows() {
        let (world, shutdown) = world_with_broadcaster().await;
        world.set_max_moves_per_second(100);
        // The flooder watches its own echoes.
        let [flooder] = caught_up(&world, [1]).await;
        let started = Instant::now();
        for chunk in (0..100).collect::<Vec<i16>>().chunks(10) {
            let positions: Vec<Position> = chunk.iter().map(|&x| Position::new(x, 0)).collect();
            flooder.set_positions(&positions);
        }
        let mut seen = Vec::new();
        while seen.last() != Some(&99) {
            seen.extend(next_records(&flooder).await.iter().map(|r| r.x));
        }
        assert_eq!(
            seen.len(),
            MOVE_BURST as usize + 1,
            "the burst, then the latest"
        );
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
        // One move every 10 ms at 100 a second; the latest was held that long.
        let waited = Instant::now() - started;
        assert!(
            waited >= Duration::from_millis(10) && waited <= Duration::from_millis(11),
            "waited {waited:?}"
        );
        assert_eq!(world.coalesced_moves(), 100 - MOVE_BURST as u64);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscriber_that_never_takes_holds_others_back_at_most_max_gather() {
        let (world, shutdown) = world_with_broadcaster().await;
        let a = world.join(info(1), &LEGACY_RECORDS);
        let _stuck = world.join(info(2), &LEGACY_RECORDS);
        a.changed().await;
        let _ = a.take_outgoing();
        a.set_positions(&[Position::new(1, 0)]);
        assert_eq!(next_records(&a).await.len(), 1);
        let started = Instant::now();
        a.set_positions(&[Position::new(2, 0)]);
        assert_eq!(next_records(&a).await.len(), 1);
        assert!(started.elapsed() <= MAX_GATHER);
        // The stuck subscriber is not waited for again.
        let started = Instant::now();
        a.set_positions(&[Position::new(3, 0)]);
        assert_eq!(next_records(&a).await.len(), 1);
        assert_eq!(Instant::now(), started);
        shutdown.cancel();
    }
}
