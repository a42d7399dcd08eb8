//! The one shared world: its [`State`] (players, positions, the event log)
//! and its [`Fanout`] (who receives it, in which format), behind one lock,
//! plus the broadcaster task that turns the log into batches.
//!
//! A broadcast encodes the events once per wire format and queues the same
//! bytes for every subscriber; see [`crate::fanout`] for how memory stays
//! bounded when a subscriber falls behind.

mod grid;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shared::ClientId;
use shared::legacy::Position;
use shared::native::PlayerInfo;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use grid::{CELL_SIZE, Cell, CellMap, MAX_VIEW_CELLS, Region};
pub use state::{Crossing, Event, LOG_COMPACT_MIN, MAX_MOVES_PER_BROADCAST, Player, State};

use crate::fanout::{self, Fanout, Outgoing, SubscriberKey, WireFormat};
use crate::metrics::Counter;

/// Each subscriber stretches the broadcast interval by this much (up to
/// [`MAX_ADAPTIVE_INTERVAL`]): with a wide fan-out, one write per client per
/// broadcast dominates the server's cost, so fewer, larger writes keep it
/// ahead of the load (1,000 subscribers: a broadcast every 20 ms).
pub const INTERVAL_PER_SUBSCRIBER: Duration = Duration::from_micros(20);
/// Upper bound of the stretched interval, well inside a 50 ms echo budget.
pub const MAX_ADAPTIVE_INTERVAL: Duration = Duration::from_millis(25);

/// The time between two broadcasts for `subscribers` subscribers: at least
/// `min_interval` (the `--broadcast-interval-ms` flag).
pub fn broadcast_interval(min_interval: Duration, subscribers: usize) -> Duration {
    let stretched =
        INTERVAL_PER_SUBSCRIBER.saturating_mul(u32::try_from(subscribers).unwrap_or(u32::MAX));
    min_interval.max(stretched.min(MAX_ADAPTIVE_INTERVAL))
}

#[derive(Debug, Default)]
struct Inner {
    state: State,
    fanout: Fanout,
    next_viewer: u64,
}

/// The shared world of players and positions.
#[derive(Debug, Default)]
pub struct World {
    inner: Mutex<Inner>,
    /// Wakes the broadcaster when the log has something new.
    dirty: Notify,
    /// Subscribers resynchronised because they fell behind (on `/metrics`).
    resyncs: Counter,
}

impl World {
    pub fn new() -> Arc<World> {
        Arc::new(World::default())
    }

    /// Adds a player that also receives the world in `format`. Its first
    /// delivery is a snapshot of every player. It leaves when the returned
    /// handle is dropped.
    pub fn join(self: &Arc<Self>, info: PlayerInfo, format: &'static dyn WireFormat) -> Membership {
        let id = info.id;
        let key = SubscriberKey::Player(id);
        let wake = {
            let mut inner = self.lock();
            inner.state.join(info);
            inner.fanout.subscribe(key, format)
        };
        self.dirty.notify_one();
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

    fn set_positions(&self, id: ClientId, positions: &[Position]) {
        if positions.is_empty() {
            return;
        }
        self.lock().state.set_positions(id, positions);
        self.dirty.notify_one();
    }

    fn unsubscribe(&self, key: SubscriberKey) {
        let mut inner = self.lock();
        inner.fanout.unsubscribe(key);
        if let SubscriberKey::Player(id) = key {
            inner.state.leave(id);
            drop(inner);
            self.dirty.notify_one();
        }
    }

    fn drain(&self, key: SubscriberKey) -> Outgoing {
        let mut inner = self.lock();
        let Inner { state, fanout, .. } = &mut *inner;
        fanout.drain(key, state)
    }

    /// Turns the log into one batch and queues it for every subscriber.
    /// Returns how many subscribers had to be resynchronised.
    pub fn broadcast(&self) -> usize {
        let mut inner = self.lock();
        if !inner.state.has_news() {
            return 0;
        }
        let events = inner.state.take_log();
        let limit = fanout::queue_limit(inner.state.player_count());
        let Inner { state, fanout, .. } = &mut *inner;
        let resynced = fanout.broadcast(&events, state, limit);
        self.resyncs.inc_by(resynced as u64);
        resynced
    }

    /// Broadcasts whenever the log has news, at most once per
    /// [`broadcast_interval`] (`min_interval` stretched for a wide fan-out),
    /// until `shutdown`.
    pub async fn run_broadcaster(
        self: Arc<Self>,
        min_interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut last = Instant::now() - min_interval;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.dirty.notified() => {}
            }
            let subscribers = self.subscriber_count();
            let due = last + broadcast_interval(min_interval, subscribers);
            if Instant::now() < due {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            last = Instant::now();
            let resynced = self.broadcast();
            if resynced > 0 {
                tracing::debug!(subscribers = resynced, "backlogs coalesced into snapshots");
            }
        }
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

    /// The resync counter itself, for `/metrics`.
    pub fn resync_counter(&self) -> &Counter {
        &self.resyncs
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
    use bytes::Buf;
    use shared::native::PlayerKind;

    use super::*;
    use crate::fanout::legacy::LEGACY_RECORDS;
    use crate::fanout::{BASE_QUEUE_BYTES, QUEUE_BYTES_PER_PLAYER};
    use shared::legacy::PositionRecord;

    fn info(id: ClientId) -> PlayerInfo {
        PlayerInfo {
            id,
            name: format!("p{id}"),
            kind: PlayerKind::Legacy,
        }
    }

    fn records(out: &Outgoing) -> Vec<PositionRecord> {
        let mut bytes: Vec<u8> = out.chunks.iter().flat_map(|c| c.to_vec()).collect();
        let mut buf = &bytes[..];
        let mut records = Vec::new();
        while buf.remaining() >= PositionRecord::SIZE {
            records.push(PositionRecord {
                id: buf.get_i32_le(),
                x: buf.get_i16_le(),
                y: buf.get_i16_le(),
            });
        }
        bytes.clear();
        records
    }

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
    fn broadcast_interval_stretches_with_the_fan_out() {
        let min = Duration::from_millis(10);
        assert_eq!(broadcast_interval(min, 0), min);
        assert_eq!(broadcast_interval(min, 500), min);
        assert_eq!(broadcast_interval(min, 1000), Duration::from_millis(20));
        assert_eq!(broadcast_interval(min, 100_000), MAX_ADAPTIVE_INTERVAL);
        assert_eq!(
            broadcast_interval(Duration::from_millis(40), 1000),
            Duration::from_millis(40)
        );
    }

    #[test]
    fn reserved_position_is_stored_one_step_inside() {
        let world = World::new();
        let a = world.join(info(1), &LEGACY_RECORDS);
        a.set_positions(&[Position::new(i16::MIN, i16::MIN)]);
        assert_eq!(world.position_of(1), Some(Position::new(-32767, -32767)));
    }
}
