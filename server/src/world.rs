//! The one shared world: every player (native and legacy "positions"
//! clients), its latest position, and the fan-out of changes to everyone.
//!
//! Changes are appended to a log. A broadcaster task turns the log into one
//! [`Batch`] at most every `broadcast_interval` (an isolated change goes out at
//! once), encoding it once per wire format, and hands the same bytes to every
//! subscriber: the cost of a change is paid once, not once per client.
//!
//! Memory stays bounded whatever the input rate:
//! * the log is compacted to the latest position per player when it grows
//!   past a few entries per player (latest value wins; joins and leaves are
//!   kept);
//! * a subscriber's queue of unsent batches is capped at
//!   `O(players)` bytes. A subscriber that falls behind has its queue dropped
//!   and is sent a fresh snapshot instead (after leave markers for players
//!   that left meanwhile), so it always ends with every latest position and
//!   never misses a join or a leave.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shared::ClientId;
use shared::legacy::{Position, PositionRecord};
use shared::native::{PlayerInfo, PlayerPosition, PlayerState, ServerMessage, encode_frame};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bytes a subscriber may have queued before it is resynchronised, plus
/// [`QUEUE_BYTES_PER_PLAYER`] for every player in the world.
pub const BASE_QUEUE_BYTES: usize = 16 * 1024;
/// Per-player allowance of a subscriber's queue: about two snapshots' worth,
/// past which a fresh snapshot is cheaper to send than the backlog.
pub const QUEUE_BYTES_PER_PLAYER: usize = 32;
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

/// Positions of one player that a single broadcast carries in full; past
/// that, the player's newest position replaces its last one in the batch.
/// Bursts (several positions in one TCP read) are delivered whole; a client
/// sending faster than this (32 per 5 to 25 ms) is coalesced, latest wins,
/// so one flooder cannot fill everyone's pipe with its own moves.
pub const MAX_MOVES_PER_BROADCAST: u32 = 32;

/// The log is compacted once it holds this many entries, or two per player.
const LOG_COMPACT_MIN: usize = 4096;

/// How a subscriber wants the world encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 8-byte `<ihh` records of the legacy "positions" service.
    Legacy,
    /// Native protocol frames.
    Native,
}

#[derive(Debug, Clone)]
enum Event {
    Joined(PlayerInfo),
    Moved(ClientId, Position),
    Left { id: ClientId, had_position: bool },
}

/// One broadcast, encoded once per wire format and shared by every subscriber.
#[derive(Debug, Default)]
struct Batch {
    legacy: Bytes,
    legacy_messages: u64,
    native: Bytes,
    native_messages: u64,
    /// Players that left with a position (legacy leave markers), kept so a
    /// subscriber whose queue is dropped can still be told.
    left_with_position: Vec<ClientId>,
}

impl Batch {
    fn build(log: &[Event], legacy: bool, native: bool) -> Batch {
        let mut batch = Batch::default();
        if legacy {
            let mut out = BytesMut::with_capacity(log.len() * PositionRecord::SIZE);
            for event in log {
                let record = match *event {
                    Event::Moved(id, position) => PositionRecord::moved(id, position),
                    Event::Left {
                        id,
                        had_position: true,
                    } => PositionRecord::leave(id),
                    _ => continue,
                };
                record.encode(&mut out);
                batch.legacy_messages += 1;
            }
            batch.legacy = out.freeze();
        }
        if native {
            let mut out = BytesMut::new();
            let mut moves = Vec::new();
            for event in log {
                let message = match event {
                    Event::Moved(id, position) => {
                        moves.push(PlayerPosition {
                            id: *id,
                            position: *position,
                        });
                        continue;
                    }
                    Event::Joined(info) => ServerMessage::PlayerJoined(info.clone()),
                    Event::Left { id, .. } => ServerMessage::PlayerLeft { id: *id },
                };
                batch.native_messages += flush_moves(&mut moves, &mut out);
                push_frame(&message, &mut out);
                batch.native_messages += 1;
            }
            batch.native_messages += flush_moves(&mut moves, &mut out);
            batch.native = out.freeze();
        }
        batch.left_with_position = log
            .iter()
            .filter_map(|event| match *event {
                Event::Left {
                    id,
                    had_position: true,
                } => Some(id),
                _ => None,
            })
            .collect();
        batch
    }

    fn bytes(&self, encoding: Encoding) -> (&Bytes, u64) {
        match encoding {
            Encoding::Legacy => (&self.legacy, self.legacy_messages),
            Encoding::Native => (&self.native, self.native_messages),
        }
    }
}

fn flush_moves(moves: &mut Vec<PlayerPosition>, out: &mut BytesMut) -> u64 {
    if moves.is_empty() {
        return 0;
    }
    push_frame(&ServerMessage::Positions(std::mem::take(moves)), out);
    1
}

fn push_frame(message: &ServerMessage, out: &mut BytesMut) {
    // Encoding our own message types into memory cannot fail.
    if let Err(err) = encode_frame(message, out) {
        tracing::error!(cause = %err, "could not encode a broadcast frame");
    }
}

#[derive(Debug)]
struct Player {
    info: PlayerInfo,
    position: Option<Position>,
    /// Moves of this player in the current log, and where the last one is.
    moves_in_log: u32,
    last_move_index: usize,
}

#[derive(Debug)]
struct Subscriber {
    encoding: Encoding,
    queue: VecDeque<Arc<Batch>>,
    queued_bytes: usize,
    /// Set when the subscriber must be sent a snapshot next (newcomer, or
    /// backlog dropped); holds the leave markers it is owed meanwhile.
    resync: Option<Vec<ClientId>>,
    wake: Arc<Notify>,
}

impl Subscriber {
    fn push(&mut self, batch: &Arc<Batch>, limit: usize) -> bool {
        let mut resynced = false;
        if let Some(owed) = &mut self.resync {
            owed.extend_from_slice(&batch.left_with_position);
        } else {
            let (bytes, _) = batch.bytes(self.encoding);
            if bytes.is_empty() {
                return false;
            }
            self.queued_bytes += bytes.len();
            self.queue.push_back(Arc::clone(batch));
            if self.queued_bytes > limit {
                let owed = self
                    .queue
                    .drain(..)
                    .flat_map(|b| b.left_with_position.clone())
                    .collect();
                self.queued_bytes = 0;
                self.resync = Some(owed);
                resynced = true;
            }
        }
        self.wake.notify_one();
        resynced
    }
}

#[derive(Debug, Default)]
struct State {
    players: HashMap<ClientId, Player>,
    log: Vec<Event>,
    subscribers: HashMap<ClientId, Subscriber>,
    legacy_subscribers: usize,
    native_subscribers: usize,
    resyncs: u64,
}

impl State {
    fn compact_log(&mut self) {
        let mut last_move: HashMap<ClientId, usize> = HashMap::with_capacity(self.players.len());
        for (index, event) in self.log.iter().enumerate() {
            if let Event::Moved(id, _) = event {
                last_move.insert(*id, index);
            }
        }
        let mut index = 0;
        self.log.retain(|event| {
            let keep = match event {
                Event::Moved(id, _) => last_move.get(id) == Some(&index),
                _ => true,
            };
            index += 1;
            keep
        });
        self.note_moves_in_log();
    }

    /// Recounts every player's moves in the log (after it was taken or
    /// compacted).
    fn note_moves_in_log(&mut self) {
        for player in self.players.values_mut() {
            player.moves_in_log = 0;
        }
        for (index, event) in self.log.iter().enumerate() {
            if let Event::Moved(id, _) = event
                && let Some(player) = self.players.get_mut(id)
            {
                player.moves_in_log += 1;
                player.last_move_index = index;
            }
        }
    }
}

/// Every player with a position (legacy records, after the leave markers
/// `owed_leaves`) or every player (one native `Snapshot` frame).
fn snapshot(
    players: &HashMap<ClientId, Player>,
    encoding: Encoding,
    owed_leaves: &[ClientId],
) -> (Bytes, u64) {
    {
        let mut out = BytesMut::new();
        let mut messages = 0;
        match encoding {
            Encoding::Legacy => {
                for &id in owed_leaves {
                    PositionRecord::leave(id).encode(&mut out);
                    messages += 1;
                }
                for (&id, player) in players {
                    if let Some(position) = player.position {
                        PositionRecord::moved(id, position).encode(&mut out);
                        messages += 1;
                    }
                }
            }
            Encoding::Native => {
                let players = players
                    .values()
                    .map(|p| PlayerState {
                        info: p.info.clone(),
                        position: p.position,
                    })
                    .collect();
                push_frame(&ServerMessage::Snapshot { players }, &mut out);
                messages += 1;
            }
        }
        (out.freeze(), messages)
    }
}

/// The shared world of players and positions.
#[derive(Debug, Default)]
pub struct World {
    state: Mutex<State>,
    /// Wakes the broadcaster when the log has something new.
    dirty: Notify,
}

/// Bytes to send to one subscriber, and how many messages they hold.
#[derive(Debug, Default)]
pub struct Outgoing {
    pub chunks: Vec<Bytes>,
    pub messages: u64,
}

impl Outgoing {
    pub fn byte_len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }
}

impl World {
    pub fn new() -> Arc<World> {
        Arc::new(World::default())
    }

    /// Adds a player that also receives the world in `encoding`. Its first
    /// delivery is a snapshot of every player. It leaves when the returned
    /// handle is dropped.
    pub fn join(self: &Arc<Self>, info: PlayerInfo, encoding: Encoding) -> Membership {
        let id = info.id;
        let wake = Arc::new(Notify::new());
        {
            let mut state = self.lock();
            state.players.insert(
                id,
                Player {
                    info: info.clone(),
                    position: None,
                    moves_in_log: 0,
                    last_move_index: 0,
                },
            );
            state.log.push(Event::Joined(info));
            state.subscribers.insert(
                id,
                Subscriber {
                    encoding,
                    queue: VecDeque::new(),
                    queued_bytes: 0,
                    resync: Some(Vec::new()),
                    wake: Arc::clone(&wake),
                },
            );
            match encoding {
                Encoding::Legacy => state.legacy_subscribers += 1,
                Encoding::Native => state.native_subscribers += 1,
            }
        }
        wake.notify_one();
        self.dirty.notify_one();
        Membership {
            world: Arc::clone(self),
            id,
            wake,
        }
    }

    /// Records new positions of a player, oldest first.
    fn set_positions(&self, id: ClientId, positions: &[Position]) {
        let Some(&last) = positions.last() else {
            return;
        };
        {
            let mut state = self.lock();
            let state = &mut *state;
            let Some(player) = state.players.get_mut(&id) else {
                return;
            };
            player.position = Some(last.sanitized());
            for position in positions {
                let event = Event::Moved(id, position.sanitized());
                if player.moves_in_log < MAX_MOVES_PER_BROADCAST {
                    player.moves_in_log += 1;
                    player.last_move_index = state.log.len();
                    state.log.push(event);
                } else {
                    state.log[player.last_move_index] = event;
                }
            }
            if state.log.len() >= LOG_COMPACT_MIN.max(2 * state.players.len()) {
                state.compact_log();
            }
        }
        self.dirty.notify_one();
    }

    fn leave(&self, id: ClientId) {
        {
            let mut state = self.lock();
            if let Some(subscriber) = state.subscribers.remove(&id) {
                match subscriber.encoding {
                    Encoding::Legacy => state.legacy_subscribers -= 1,
                    Encoding::Native => state.native_subscribers -= 1,
                }
            }
            if let Some(player) = state.players.remove(&id) {
                let had_position = player.position.is_some();
                state.log.push(Event::Left { id, had_position });
            }
        }
        self.dirty.notify_one();
    }

    /// Takes everything queued for subscriber `id`: a snapshot if it is owed
    /// one, then the batches in order.
    fn drain(&self, id: ClientId) -> Outgoing {
        let mut out = Outgoing::default();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(subscriber) = state.subscribers.get_mut(&id) else {
            return out;
        };
        if let Some(owed) = subscriber.resync.take() {
            let (bytes, messages) = snapshot(&state.players, subscriber.encoding, &owed);
            out.chunks.push(bytes);
            out.messages += messages;
        }
        subscriber.queued_bytes = 0;
        for batch in subscriber.queue.drain(..) {
            let (bytes, messages) = batch.bytes(subscriber.encoding);
            out.chunks.push(bytes.clone());
            out.messages += messages;
        }
        out
    }

    /// Turns the log into one batch and queues it for every subscriber.
    /// Returns how many subscribers had to be resynchronised.
    pub fn broadcast(&self) -> usize {
        let mut state = self.lock();
        if state.log.is_empty() {
            return 0;
        }
        let log = std::mem::take(&mut state.log);
        state.note_moves_in_log();
        let batch = Arc::new(Batch::build(
            &log,
            state.legacy_subscribers > 0,
            state.native_subscribers > 0,
        ));
        let limit = BASE_QUEUE_BYTES + QUEUE_BYTES_PER_PLAYER * state.players.len();
        // (kept in step with `queue_limit`)
        let mut resynced = 0;
        for subscriber in state.subscribers.values_mut() {
            resynced += usize::from(subscriber.push(&batch, limit));
        }
        state.resyncs += resynced as u64;
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
            let subscribers = self.lock().subscribers.len();
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
        self.lock().players.len()
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Subscribers resynchronised so far because they fell behind.
    pub fn resync_count(&self) -> u64 {
        self.lock().resyncs
    }

    /// Bytes queued for subscriber `id` and not yet taken by its connection.
    pub fn queued_bytes(&self, id: ClientId) -> Option<usize> {
        self.lock().subscribers.get(&id).map(|s| s.queued_bytes)
    }

    /// The most a subscriber may have queued before it is resynchronised.
    pub fn queue_limit(&self) -> usize {
        BASE_QUEUE_BYTES + QUEUE_BYTES_PER_PLAYER * self.player_count()
    }

    /// Latest position of a player, if it is in the world and has one.
    pub fn position_of(&self, id: ClientId) -> Option<Position> {
        self.lock().players.get(&id).and_then(|p| p.position)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A player's place in the world; dropping it makes the player leave.
#[derive(Debug)]
pub struct Membership {
    world: Arc<World>,
    id: ClientId,
    wake: Arc<Notify>,
}

impl Membership {
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Records positions this player sent, oldest first.
    pub fn set_positions(&self, positions: &[Position]) {
        self.world.set_positions(self.id, positions);
    }

    /// Resolves when there is something to send to this player.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Takes what is queued for this player.
    pub fn take_outgoing(&self) -> Outgoing {
        self.world.drain(self.id)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.world.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use shared::native::PlayerKind;

    use super::*;

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
        let a = world.join(info(1), Encoding::Legacy);
        a.set_positions(&[Position::new(1, 1)]);
        world.broadcast();
        let b = world.join(info(2), Encoding::Legacy);
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
        let slow = world.join(info(1), Encoding::Legacy);
        let mover = world.join(info(2), Encoding::Legacy);
        let gone = world.join(info(3), Encoding::Legacy);
        gone.set_positions(&[Position::new(9, 9)]);
        world.broadcast();
        let _ = slow.take_outgoing();
        drop(gone);
        for i in 0..100_000 {
            mover.set_positions(&[Position::new((i % 1000) as i16, 7)]);
            world.broadcast();
        }
        {
            let state = world.lock();
            let queued = state.subscribers[&1].queued_bytes;
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
    fn log_is_compacted_to_latest_positions() {
        let world = World::new();
        let a = world.join(info(1), Encoding::Legacy);
        for i in 0..10_000 {
            a.set_positions(&[Position::new(i as i16, 0)]);
        }
        assert!(world.lock().log.len() < LOG_COMPACT_MIN);
        world.broadcast();
        let got = records(&a.take_outgoing());
        assert_eq!(
            got.last(),
            Some(&PositionRecord {
                id: 1,
                x: 9999,
                y: 0
            })
        );
    }

    #[test]
    fn a_flooder_gets_a_few_moves_per_broadcast_and_the_latest_wins() {
        let world = World::new();
        let flooder = world.join(info(1), Encoding::Legacy);
        let other = world.join(info(2), Encoding::Legacy);
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
        let a = world.join(info(1), Encoding::Legacy);
        a.set_positions(&[Position::new(i16::MIN, i16::MIN)]);
        assert_eq!(world.position_of(1), Some(Position::new(-32767, -32767)));
    }
}
