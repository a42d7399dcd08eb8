//! Fan-out: who receives the world, in which wire format, and how much may
//! wait for them.
//!
//! Subscribers are grouped by [`WireFormat`]. A broadcast encodes the events
//! once per format that has subscribers and hands the same bytes to every
//! subscriber of that format: the cost of a change is paid once, not once
//! per client. A new format (a browser view, a classic layout) is one more
//! implementation of the trait; the world does not change.
//!
//! Memory stays bounded whatever the input rate: a subscriber's queue of
//! unsent batches is capped at [`queue_limit`] bytes. A subscriber that falls
//! behind has its queue dropped and is sent a fresh snapshot instead (after
//! the leave markers it is owed), so it always ends with every latest
//! position and never misses a leave.
//!
//! Snapshots are taken by a broadcast, like batches: a subscriber that owes
//! one (newcomer, change of view, fell behind) gets it with the next
//! broadcast, encoded from the world as that broadcast leaves it. A
//! snapshot taken between broadcasts would already hold moves still waiting
//! in the log, and the next batch would then take the player back through
//! older positions.
//!
//! Area of interest: a native subscriber may have a view, a [`Region`] of
//! grid cells. It is then sent only what happens in those cells (see
//! [`native::CellNews`]): players entering the region as `PlayerJoined`,
//! leaving it as `PlayerLeft`, and the moves of the players inside it. Its
//! snapshots (first, after a change of view, after falling behind) hold only
//! the players in its region. A subscriber without a view gets everything.
//!
//! Roster and overview (protocol 3, [`overview`]): a subscriber that speaks
//! version 3 is also sent every join and leave of the world as
//! `RosterJoined` / `RosterLeft` (encoded once per broadcast), the whole
//! `Roster` before its first snapshot and after it fell behind, and, while
//! it has a view, the overview at a low rate (encoded once per tick). A
//! change of view drops its queued batches but keeps those roster frames:
//! the roster is never left with a hole. While the overview ticks
//! ([`Fanout::set_overview_carries_roster`]), a view's roster frames do not
//! wake it: they go with its next delivery, the next overview at the
//! latest. A join wakes only the views it is seen in, not every view of the
//! world: a ramp of N joins would otherwise cost N writes to each of N
//! clients.

pub mod classic;
pub mod held_roster;
pub mod legacy;
pub mod native;
pub mod overview;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use shared::ClientId;
use tokio::sync::Notify;

use self::held_roster::HeldRoster;
use self::native::CellNews;
use crate::world::grid::Region;
use crate::world::state::{Event, State};

/// Bytes a subscriber may have queued before it is resynchronised, plus
/// [`QUEUE_BYTES_PER_PLAYER`] for every player in the world.
pub const BASE_QUEUE_BYTES: usize = 16 * 1024;
/// Per-player allowance of a subscriber's queue: about two snapshots' worth,
/// past which a fresh snapshot is cheaper to send than the backlog.
pub const QUEUE_BYTES_PER_PLAYER: usize = 32;

/// The most a subscriber may have queued in a world of `players` players.
pub fn queue_limit(players: usize) -> usize {
    BASE_QUEUE_BYTES + QUEUE_BYTES_PER_PLAYER * players
}

/// Bytes in one wire format and how many messages they hold (for metrics).
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    pub bytes: Bytes,
    pub messages: u64,
}

/// One way of putting the world on the wire.
pub trait WireFormat: Send + Sync + std::fmt::Debug + 'static {
    /// A short, unique name (also the grouping key).
    fn name(&self) -> &'static str;
    /// One broadcast: the events since the last one, in order.
    fn encode_batch(&self, events: &[Event]) -> Encoded;
    /// Everything a newcomer, or a subscriber whose backlog was dropped,
    /// needs: the leave markers it is owed, then every player.
    fn encode_snapshot(&self, state: &State, owed_leaves: &[ClientId]) -> Encoded;
}

/// Who a subscriber is: a player (keyed by its client id, so tests and
/// metrics can find it) or a viewer that is not in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriberKey {
    Player(ClientId),
    Viewer(u64),
}

/// Bytes to send to one subscriber, and how many messages they hold.
#[derive(Debug, Default)]
pub struct Outgoing {
    pub chunks: Vec<Bytes>,
    pub messages: u64,
}

/// One broadcast, encoded once per format in use.
#[derive(Debug)]
struct Batch {
    /// Indexed like [`Fanout::formats`]; `None` for formats nobody uses.
    encoded: Vec<Option<Encoded>>,
    /// Players that left with a position, kept so that a subscriber whose
    /// queue is dropped can still be told.
    left_with_position: Vec<ClientId>,
}

/// One delivery waiting in a subscriber's queue.
#[derive(Debug)]
enum Queued {
    /// Everything the subscriber sees, as the broadcast that queued it left
    /// the world, after the leave markers it was `owed`.
    Snapshot {
        encoded: Encoded,
        owed: Vec<ClientId>,
    },
    /// The batch every subscriber of a format shares.
    Shared(Arc<Batch>),
    /// A batch cut by cell, for a subscriber with a view: its part is put
    /// together when it is taken, out of the world's lock. `bytes`: the
    /// most that part holds.
    Cells { news: Arc<CellNews>, bytes: usize },
    /// `RosterJoined` / `RosterLeft` frames of one broadcast (shared by every
    /// version-3 subscriber), or a whole `Roster` owed to one.
    Roster(Encoded),
    /// One overview, shared by every version-3 subscriber with a view.
    Overview(Encoded),
}

/// What [`Fanout::take`] took for one subscriber, to be turned into bytes
/// ([`Taken::encode`]) once the world's lock is released.
#[derive(Debug)]
pub struct Taken {
    format: usize,
    view: Option<Region>,
    queued: VecDeque<Queued>,
}

#[derive(Debug)]
struct Subscriber {
    format: usize,
    /// The cells this subscriber sees; `None`: the whole world.
    view: Option<Region>,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// Set when the subscriber must be sent a snapshot with the next
    /// broadcast (newcomer, change of view, backlog dropped); holds the
    /// leave markers it is owed meanwhile.
    resync: Option<Vec<ClientId>>,
    wake: Arc<Notify>,
    /// Woken by broadcast number `woken_by` and not drained since.
    pending: bool,
    woken_by: u64,
    /// Speaks protocol 3: gets the roster frames and, with a view, the
    /// overview.
    roster_feed: bool,
    /// Must be sent the whole roster with its next snapshot (a newcomer,
    /// or a version-3 subscriber that fell behind).
    roster_owed: bool,
    /// The first broadcast whose roster frame, kept in [`HeldRoster`], it
    /// has not been sent: they join its queue before its next delivery.
    roster_from: Option<u64>,
}

/// Every subscriber, grouped by wire format.
#[derive(Debug, Default)]
pub struct Fanout {
    formats: Vec<&'static dyn WireFormat>,
    /// Subscribers per entry of `formats`.
    members: Vec<usize>,
    subscribers: HashMap<SubscriberKey, Subscriber>,
    /// Subscribers with a view: while there is none, no [`CellNews`] is built.
    viewers: usize,
    /// Number of the last broadcast, and how many subscribers it woke that
    /// have not drained yet (the broadcaster's backpressure).
    generation: u64,
    undrained: usize,
    /// Whether a subscriber owes a snapshot: the next broadcast is due even
    /// if the log is empty (see [`Fanout::owes_snapshots`]).
    snapshot_owed: bool,
    /// Subscribers that speak protocol 3: while there is none, no roster
    /// frame is encoded.
    roster_feeds: usize,
    /// The last `Roster` and the roster version it stands for, shared by
    /// every version-3 subscriber owed one before the roster changes.
    roster: Option<(u64, Encoded)>,
    /// Whether the overview ticks, so that a view's roster frames can wait
    /// for it instead of waking the view.
    overview_carries_roster: bool,
    /// The roster frames that views wait for.
    held_roster: HeldRoster,
}

/// The whole-world snapshot of one format in one broadcast, encoded for the
/// first subscriber that needs it and shared by the others (those owed no
/// leave markers).
///
/// Without it, a wave of resynchronisations (thousands of clients that
/// fell behind at once, an overloaded machine) costs a snapshot of the
/// whole world per client, under the world's lock: quadratic in the
/// players exactly when there is no time for it.
fn shared_snapshot(cache: &mut Option<Encoded>, format: &dyn WireFormat, state: &State) -> Encoded {
    cache
        .get_or_insert_with(|| format.encode_snapshot(state, &[]))
        .clone()
}

impl Fanout {
    /// Adds a subscriber; its first delivery is a snapshot of the world.
    pub fn subscribe(
        &mut self,
        key: SubscriberKey,
        format: &'static dyn WireFormat,
    ) -> Arc<Notify> {
        self.unsubscribe(key);
        let index = match self.formats.iter().position(|f| f.name() == format.name()) {
            Some(index) => index,
            None => {
                self.formats.push(format);
                self.members.push(0);
                self.formats.len() - 1
            }
        };
        self.members[index] += 1;
        let wake = Arc::new(Notify::new());
        self.subscribers.insert(
            key,
            Subscriber {
                format: index,
                view: None,
                queue: VecDeque::new(),
                queued_bytes: 0,
                resync: Some(Vec::new()),
                wake: Arc::clone(&wake),
                pending: false,
                woken_by: 0,
                roster_feed: false,
                roster_owed: false,
                roster_from: None,
            },
        );
        self.snapshot_owed = true;
        wake
    }

    pub fn unsubscribe(&mut self, key: SubscriberKey) {
        if let Some(subscriber) = self.subscribers.remove(&key) {
            self.members[subscriber.format] -= 1;
            self.viewers -= usize::from(subscriber.view.is_some());
            self.roster_feeds -= usize::from(subscriber.roster_feed);
            self.note_drained(&subscriber);
        }
    }

    /// Makes a native subscriber a version-3 one: from now on it gets the
    /// roster frames of every broadcast, the whole roster with its next
    /// snapshot (call it when subscribing, before the first one), and the
    /// overview while it has a view.
    pub fn feed_roster(&mut self, key: SubscriberKey) {
        let Some(subscriber) = self.subscribers.get_mut(&key) else {
            return;
        };
        if subscriber.roster_feed {
            return;
        }
        self.roster_feeds += 1;
        subscriber.roster_feed = true;
        subscriber.roster_owed = true;
        if subscriber.resync.is_none() {
            // Its first snapshot went already: send the roster with another.
            subscriber.resync = Some(Vec::new());
            self.snapshot_owed = true;
        }
    }

    /// Sets the area of interest of a native subscriber (`None`: the whole
    /// world). If its region changed, its queue is dropped (but for roster
    /// frames) and its next delivery is a snapshot of the new region, with
    /// the next broadcast. Returns whether it changed.
    pub fn set_view(&mut self, key: SubscriberKey, view: Option<Region>) -> bool {
        let Some(subscriber) = self.subscribers.get_mut(&key) else {
            return false;
        };
        if subscriber.view == view {
            return false;
        }
        self.viewers =
            self.viewers + usize::from(view.is_some()) - usize::from(subscriber.view.is_some());
        subscriber.view = view;
        let owed = subscriber.drop_all_but_roster();
        let earlier = subscriber.resync.take().unwrap_or_default();
        subscriber.resync = Some(earlier.into_iter().chain(owed).collect());
        self.snapshot_owed = true;
        true
    }

    /// Says whether the overview ticks (see the module's doc): while it
    /// does, roster frames wait in a view's queue for its next delivery,
    /// which the next overview is at the latest.
    pub fn set_overview_carries_roster(&mut self, carries: bool) {
        self.overview_carries_roster = carries;
    }

    /// Whether a subscriber waits for a snapshot: the next broadcast must
    /// go even without news.
    pub fn owes_snapshots(&self) -> bool {
        self.snapshot_owed
    }

    /// Subscribers that have a view.
    pub fn viewers(&self) -> usize {
        self.viewers
    }

    /// Encodes `events` once per format in use and queues the result for
    /// every subscriber; subscribers with a view get the cells of their
    /// region, cut once per broadcast from `state` (whose log `events` just
    /// were). A subscriber that owes a snapshot gets one of `state` instead,
    /// which holds these events. Returns how many subscribers had to be
    /// resynchronised because their queue passed `limit` bytes. The subscribers that have something
    /// new are added to `woken`, for the caller to wake once it has let go
    /// of the world: thousands of wake-ups need not hold the lock.
    pub fn broadcast(
        &mut self,
        events: &[Event],
        state: &State,
        limit: usize,
        woken: &mut Vec<Arc<Notify>>,
    ) -> usize {
        self.generation += 1;
        self.undrained = 0;
        self.snapshot_owed = false;
        let mut snapshots: Vec<Option<Encoded>> = vec![None; self.formats.len()];
        let news = (self.viewers > 0).then(|| CellNews::build(events, state));
        let batch = Arc::new(Batch {
            encoded: self
                .formats
                .iter()
                .zip(&self.members)
                .map(|(format, &members)| (members > 0).then(|| format.encode_batch(events)))
                .collect(),
            left_with_position: events
                .iter()
                .filter_map(|event| match *event {
                    Event::Left {
                        id,
                        had_position: true,
                    } => Some(id),
                    _ => None,
                })
                .collect(),
        });
        let news = news.map(Arc::new);
        let roster = (self.roster_feeds > 0)
            .then(|| overview::encode_roster_changes(events))
            .filter(|roster| !roster.bytes.is_empty());
        // Kept once, for the views that wait for the overview and for the
        // others to take at once (if there is room; else it is queued for
        // each, as without the overview).
        let hold = self.overview_carries_roster
            && roster
                .as_ref()
                .is_some_and(|roster| self.held_roster.keep(self.generation, roster));
        let held = &mut self.held_roster;
        let mut oldest_held = None;
        let mut resynced = 0;
        for subscriber in self.subscribers.values_mut() {
            let mut roster_woke = false;
            if subscriber.roster_feed
                && let Some(roster) = &roster
            {
                if hold {
                    subscriber.roster_from.get_or_insert(self.generation);
                    if !subscriber.gets_overview() || subscriber.resync.is_some() {
                        let (woke, resync) = subscriber.flush_roster(limit, held);
                        roster_woke = woke;
                        resynced += usize::from(resync);
                    }
                } else {
                    let (woke, resync) =
                        subscriber.push(Queued::Roster(roster.clone()), limit, held);
                    roster_woke = woke;
                    resynced += usize::from(resync);
                }
            }
            let (woke, resync) = match (&subscriber.view, &news) {
                (Some(region), Some(news)) => {
                    let bytes = news.size_for(region);
                    let queued = Queued::Cells {
                        news: Arc::clone(news),
                        bytes,
                    };
                    subscriber.push(queued, limit, held)
                }
                _ => subscriber.push(Queued::Shared(Arc::clone(&batch)), limit, held),
            };
            resynced += usize::from(resync);
            let woke = woke || roster_woke;
            if let Some(owed) = subscriber.resync.take() {
                if std::mem::take(&mut subscriber.roster_owed) {
                    // It holds every frame it was waiting for.
                    subscriber.roster_from = None;
                    let whole = whole_roster(&mut self.roster, state);
                    subscriber.queue.push_back(Queued::Roster(whole));
                } else {
                    subscriber.release_roster(held);
                }
                let format = self.formats[subscriber.format];
                let encoded = match &subscriber.view {
                    Some(region) => native::encode_region_snapshot(state, region),
                    None if owed.is_empty() => {
                        shared_snapshot(&mut snapshots[subscriber.format], format, state)
                    }
                    None => format.encode_snapshot(state, &owed),
                };
                subscriber
                    .queue
                    .push_back(Queued::Snapshot { encoded, owed });
            }
            if woke {
                woken.push(Arc::clone(&subscriber.wake));
            }
            if woke && !subscriber.pending {
                subscriber.pending = true;
                subscriber.woken_by = self.generation;
                self.undrained += 1;
            }
            oldest_held = oldest_held.into_iter().chain(subscriber.roster_from).min();
        }
        self.held_roster.forget_before(oldest_held);
        resynced
    }

    /// Queues one overview (already encoded, see
    /// [`overview::encode_overview`]) for every version-3 subscriber with a
    /// view; returns how many had to be resynchronised. Those it queued for
    /// are added to `woken`.
    pub fn push_overview(
        &mut self,
        encoded: &Encoded,
        limit: usize,
        woken: &mut Vec<Arc<Notify>>,
    ) -> usize {
        let held = &mut self.held_roster;
        let mut oldest_held = None;
        let mut resynced = 0;
        for subscriber in self.subscribers.values_mut() {
            if subscriber.gets_overview() {
                let overview = Queued::Overview(encoded.clone());
                let (woke, resync) = subscriber.push(overview, limit, held);
                resynced += usize::from(resync);
                self.snapshot_owed |= resync;
                if woke {
                    woken.push(Arc::clone(&subscriber.wake));
                }
            }
            oldest_held = oldest_held.into_iter().chain(subscriber.roster_from).min();
        }
        self.held_roster.forget_before(oldest_held);
        resynced
    }

    /// Whether any subscriber is to be sent the overview (so whether it is
    /// worth encoding).
    pub fn wants_overview(&self) -> bool {
        self.roster_feeds > 0 && self.subscribers.values().any(Subscriber::gets_overview)
    }

    /// Takes everything queued for `key`, in order. It is put together by
    /// [`Taken::encode`], which needs neither the world nor the fanout.
    pub fn take(&mut self, key: SubscriberKey) -> Option<Taken> {
        let subscriber = self.subscribers.get_mut(&key)?;
        subscriber.release_roster(&mut self.held_roster);
        subscriber.queued_bytes = 0;
        let taken = Taken {
            format: subscriber.format,
            view: subscriber.view,
            queued: std::mem::take(&mut subscriber.queue),
        };
        if subscriber.pending {
            subscriber.pending = false;
            if subscriber.woken_by == self.generation {
                self.undrained = self.undrained.saturating_sub(1);
            }
        }
        Some(taken)
    }

    /// [`Fanout::take`] and [`Taken::encode`] at once.
    #[cfg(test)]
    fn drain(&mut self, key: SubscriberKey) -> Outgoing {
        self.take(key).map(Taken::encode).unwrap_or_default()
    }

    fn note_drained(&mut self, gone: &Subscriber) {
        if gone.pending && gone.woken_by == self.generation {
            self.undrained = self.undrained.saturating_sub(1);
        }
    }

    /// Subscribers woken by the last broadcast that have not taken it yet.
    /// Subscribers still behind from an earlier one are not counted: a stuck
    /// client must not hold the others back.
    pub fn undrained(&self) -> usize {
        self.undrained
    }

    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    pub fn queued_bytes(&self, key: SubscriberKey) -> Option<usize> {
        self.subscribers.get(&key).map(|s| s.queued_bytes)
    }
}

impl Taken {
    /// The bytes to send, in order (a view's part of a cut batch is put
    /// together here).
    pub fn encode(self) -> Outgoing {
        let mut out = Outgoing::default();
        let parts = self.queued.into_iter().filter_map(|queued| match queued {
            Queued::Snapshot { encoded, .. } => Some(encoded),
            Queued::Shared(batch) => batch.encoded[self.format].clone(),
            Queued::Cells { news, .. } => self.view.map(|region| news.for_region(&region)),
            Queued::Roster(encoded) | Queued::Overview(encoded) => Some(encoded),
        });
        for part in parts {
            if !part.bytes.is_empty() {
                out.chunks.push(part.bytes);
                out.messages += part.messages;
            }
        }
        out
    }
}

impl Queued {
    /// The most bytes this delivery holds for a subscriber of format
    /// number `format`.
    fn bytes(&self, format: usize) -> usize {
        match self {
            Queued::Snapshot { encoded, .. } => encoded.bytes.len(),
            Queued::Shared(batch) => batch.encoded[format].as_ref().map_or(0, |e| e.bytes.len()),
            Queued::Cells { bytes, .. } => *bytes,
            Queued::Roster(encoded) | Queued::Overview(encoded) => encoded.bytes.len(),
        }
    }

    /// Leave markers a subscriber whose queue is dropped is still owed.
    fn left_with_position(&self) -> &[ClientId] {
        match self {
            Queued::Snapshot { owed, .. } => owed,
            Queued::Shared(batch) => &batch.left_with_position,
            // A view's resync is a native snapshot, which replaces the
            // whole view: nothing is owed.
            // Roster frames and overviews are native too.
            Queued::Cells { .. } | Queued::Roster(_) | Queued::Overview(_) => &[],
        }
    }
}

/// The whole `Roster` of `state`: the one in `cache` if the roster has not
/// changed since it was encoded, else a new one, kept (a wave of
/// version-3 newcomers or laggards shares one).
fn whole_roster(cache: &mut Option<(u64, Encoded)>, state: &State) -> Encoded {
    let version = state.roster_version();
    match cache {
        Some((at, encoded)) if *at == version => encoded.clone(),
        _ => {
            let encoded = overview::encode_roster(state);
            *cache = Some((version, encoded.clone()));
            encoded
        }
    }
}

impl Subscriber {
    /// Queues a delivery; returns whether the subscriber is to be woken,
    /// and whether it had to be resynchronised.
    fn push(&mut self, queued: Queued, limit: usize, held: &mut HeldRoster) -> (bool, bool) {
        // While a snapshot is owed, batches wait for it (it is taken by the
        // next broadcast and holds them), but roster changes do not: a
        // view's snapshot says nothing of the roster, unless the whole
        // roster is owed too.
        let roster_waits = matches!(queued, Queued::Roster(_)) && !self.roster_owed;
        if let Some(owed) = &mut self.resync
            && !roster_waits
        {
            owed.extend_from_slice(queued.left_with_position());
            return (true, false);
        }
        let bytes = queued.bytes(self.format);
        if bytes == 0 {
            return (false, false);
        }
        // The roster frames it waited for go first.
        self.release_roster(held);
        self.queued_bytes += bytes;
        self.queue.push_back(queued);
        (true, self.resync_past(limit))
    }

    /// Queues the roster frames it waited for (see [`HeldRoster`]), to be
    /// sent now; returns, like [`Subscriber::push`], whether to wake it
    /// and whether it had to be resynchronised.
    fn flush_roster(&mut self, limit: usize, held: &mut HeldRoster) -> (bool, bool) {
        if self.roster_from.is_none() {
            return (false, false);
        }
        if self.resync.is_some() && self.roster_owed {
            // The whole roster goes with its snapshot instead.
            return (true, false);
        }
        self.release_roster(held);
        (true, self.resync_past(limit))
    }

    /// Puts the roster frames it waited for into its queue, in order.
    fn release_roster(&mut self, held: &mut HeldRoster) {
        if let Some(frames) = self.roster_from.take().and_then(|from| held.since(from)) {
            self.queued_bytes += frames.bytes.len();
            self.queue.push_back(Queued::Roster(frames));
        }
    }

    /// If its queue holds more than `limit` bytes, drops it and owes it a
    /// snapshot (and the whole roster); returns whether it did.
    fn resync_past(&mut self, limit: usize) -> bool {
        if self.queued_bytes <= limit {
            return false;
        }
        let owed = self.drop_queue();
        let earlier = self.resync.take().unwrap_or_default();
        self.resync = Some(earlier.into_iter().chain(owed).collect());
        // Its roster frames went with the queue: the whole roster
        // replaces them.
        self.roster_owed = self.roster_feed;
        true
    }

    /// Whether it is sent the overview: it speaks protocol 3 and has a view.
    fn gets_overview(&self) -> bool {
        self.roster_feed && self.view.is_some()
    }

    /// Empties the queue but for its roster frames (a change of view);
    /// returns the leave markers it held.
    fn drop_all_but_roster(&mut self) -> Vec<ClientId> {
        let mut owed = Vec::new();
        let mut kept_bytes = 0;
        let format = self.format;
        self.queue.retain(|queued| {
            let keep = matches!(queued, Queued::Roster(_));
            if keep {
                kept_bytes += queued.bytes(format);
            } else {
                owed.extend_from_slice(queued.left_with_position());
            }
            keep
        });
        self.queued_bytes = kept_bytes;
        owed
    }

    /// Empties the queue; returns the leave markers it held.
    fn drop_queue(&mut self) -> Vec<ClientId> {
        self.queued_bytes = 0;
        self.queue
            .drain(..)
            .flat_map(|q| q.left_with_position().to_vec())
            .collect()
    }
}

/// Every native message in `bytes`, which must hold whole frames only (the
/// fanout's tests and its modules' tests read what they encoded with it).
#[cfg(test)]
pub(crate) fn decode_frames(bytes: &[u8]) -> Vec<shared::native::ServerMessage> {
    use tokio_util::codec::Decoder;
    let mut buf = bytes::BytesMut::from(bytes);
    let mut codec = shared::native::FrameCodec::<shared::native::ServerMessage>::default();
    let mut messages = Vec::new();
    while let Some(message) = codec.decode(&mut buf).unwrap() {
        messages.push(message);
    }
    assert!(buf.is_empty(), "{} bytes of a partial frame", buf.len());
    messages
}

#[cfg(test)]
pub(crate) mod tests {
    use shared::legacy::{Position, PositionRecord};
    use shared::native::{PlayerInfo, PlayerKind};

    use super::legacy::LEGACY_RECORDS;
    use super::native::NATIVE_FRAMES;
    use super::*;

    fn joined(id: ClientId) -> Event {
        Event::Joined(PlayerInfo {
            id,
            name: format!("p{id}"),
            kind: PlayerKind::Native,
        })
    }

    /// Every legacy record in `out`, in order (for the world's tests too).
    pub(crate) fn records(out: &Outgoing) -> Vec<PositionRecord> {
        let bytes: Vec<u8> = out.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        bytes
            .chunks_exact(PositionRecord::SIZE)
            .map(|r| PositionRecord::from_bytes(r.try_into().expect("whole records")))
            .collect()
    }

    /// The (id, x, y) of every legacy record in `out`, sorted (a snapshot
    /// lists players in no particular order).
    fn sorted(out: &Outgoing) -> Vec<(ClientId, i16, i16)> {
        let mut records: Vec<_> = records(out).iter().map(|r| (r.id, r.x, r.y)).collect();
        records.sort_unstable();
        records
    }

    /// Whether every one of `outs` starts with the same buffer.
    fn one_buffer(outs: &[Outgoing]) -> bool {
        let first = outs[0].chunks[0].as_ptr();
        outs.iter().all(|o| o.chunks[0].as_ptr() == first)
    }

    #[test]
    fn resyncs_in_one_broadcast_share_one_snapshot() {
        let mut fanout = Fanout::default();
        let mut state = State::default();
        for id in 1..=3 {
            state.join(crate::world::info(id));
            state.set_positions(id, &[Position::new(id as i16, 0)]);
            fanout.subscribe(SubscriberKey::Player(id), &LEGACY_RECORDS);
        }
        assert!(fanout.owes_snapshots());
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        assert!(!fanout.owes_snapshots());
        let outs: Vec<Outgoing> = [1, 2, 3]
            .map(|id| fanout.drain(SubscriberKey::Player(id)))
            .into();
        assert!(one_buffer(&outs), "one snapshot buffer for the three");
        assert_eq!(outs[0].chunks.len(), 1, "the snapshot holds the batch");
        assert_eq!(sorted(&outs[0]), [(1, 1, 0), (2, 2, 0), (3, 3, 0)]);
    }

    #[test]
    fn a_snapshot_is_the_world_as_its_broadcast_leaves_it() {
        let mut fanout = Fanout::default();
        let mut state = State::default();
        for id in 1..=2 {
            state.join(crate::world::info(id));
            state.set_positions(id, &[Position::new(id as i16, 0)]);
            fanout.subscribe(SubscriberKey::Player(id), &LEGACY_RECORDS);
        }
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        fanout.drain(SubscriberKey::Player(1));

        // Moves wait in the log while a viewer arrives: it gets nothing
        // until they are broadcast, then one snapshot that holds them, and
        // never those moves again (older positions after the newest).
        state.set_positions(2, &[Position::new(20, 0), Position::new(21, 0)]);
        fanout.subscribe(SubscriberKey::Viewer(1), &LEGACY_RECORDS);
        assert!(fanout.drain(SubscriberKey::Viewer(1)).chunks.is_empty());
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        let viewer = records(&fanout.drain(SubscriberKey::Viewer(1)));
        let mut snapshot: Vec<_> = viewer.iter().map(|r| (r.id, r.x, r.y)).collect();
        snapshot.sort_unstable();
        assert_eq!(snapshot, [(1, 1, 0), (2, 21, 0)]);
        // Those already in step get the moves themselves.
        let player = records(&fanout.drain(SubscriberKey::Player(1)));
        let moves: Vec<_> = player.iter().map(|r| (r.id, r.x)).collect();
        assert_eq!(moves, [(2, 20), (2, 21)]);

        // A leave in the same broadcast: the marker (it may have known the
        // player), then a snapshot without the player.
        state.leave(1);
        fanout.subscribe(SubscriberKey::Viewer(2), &LEGACY_RECORDS);
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        assert_eq!(
            records(&fanout.drain(SubscriberKey::Viewer(2))),
            [
                PositionRecord::leave(1),
                PositionRecord::moved(2, Position::new(21, 0))
            ]
        );
    }

    #[test]
    fn each_format_is_encoded_once_and_its_bytes_shared() {
        let mut fanout = Fanout::default();
        let state = State::default();
        for id in 1..=3 {
            fanout.subscribe(SubscriberKey::Player(id), &LEGACY_RECORDS);
        }
        fanout.subscribe(SubscriberKey::Viewer(1), &NATIVE_FRAMES);
        fanout.broadcast(&[], &state, 1 << 20, &mut Vec::new()); // the snapshots
        for key in [1, 2, 3].map(SubscriberKey::Player) {
            fanout.drain(key);
        }
        fanout.drain(SubscriberKey::Viewer(1));
        fanout.broadcast(
            &[joined(4), Event::Moved(4, Position::new(1, 2))],
            &state,
            1 << 20,
            &mut Vec::new(),
        );
        let legacy: Vec<Outgoing> = [1, 2, 3]
            .map(|id| fanout.drain(SubscriberKey::Player(id)))
            .into();
        assert!(
            one_buffer(&legacy),
            "one buffer for every legacy subscriber"
        );
        assert_eq!(legacy[0].messages, 1, "the join is not a legacy record");
        let native = fanout.drain(SubscriberKey::Viewer(1));
        assert_eq!(native.messages, 2, "PlayerJoined, then Positions");
    }

    #[test]
    fn undrained_counts_only_those_woken_by_the_last_broadcast() {
        let mut fanout = Fanout::default();
        let state = State::default();
        let (a, b) = (SubscriberKey::Player(1), SubscriberKey::Player(2));
        fanout.subscribe(a, &LEGACY_RECORDS);
        fanout.subscribe(b, &LEGACY_RECORDS);
        fanout.drain(a);
        fanout.drain(b);
        let moved = [Event::Moved(1, Position::new(1, 1))];
        fanout.broadcast(&moved, &state, 1 << 20, &mut Vec::new());
        assert_eq!(fanout.undrained(), 2);
        fanout.drain(a);
        assert_eq!(fanout.undrained(), 1);
        // `b` is stuck: the next broadcast does not wait for it again.
        fanout.broadcast(&moved, &state, 1 << 20, &mut Vec::new());
        assert_eq!(fanout.undrained(), 1, "only `a` is waited for");
        fanout.drain(a);
        assert_eq!(fanout.undrained(), 0);
        // A subscriber that leaves is not waited for either.
        fanout.broadcast(&moved, &state, 1 << 20, &mut Vec::new());
        fanout.unsubscribe(a);
        assert_eq!(fanout.undrained(), 0);
    }

    /// Every native message in `out`.
    fn decode(out: &Outgoing) -> Vec<shared::native::ServerMessage> {
        decode_frames(&out.chunks.concat())
    }

    #[test]
    fn a_view_gets_only_its_cells_and_the_same_bytes_as_its_neighbours() {
        use shared::native::{PlayerPosition, ServerMessage};
        let mut state = State::default();
        let mut fanout = Fanout::default();
        for id in 1..=3 {
            state.join(PlayerInfo {
                id,
                name: format!("p{id}"),
                kind: PlayerKind::Native,
            });
            fanout.subscribe(SubscriberKey::Player(id), &NATIVE_FRAMES);
        }
        let near = Region::around(Position::new(0, 0), 100);
        let far = Region::around(Position::new(3000, 3000), 100);
        assert!(fanout.set_view(SubscriberKey::Player(1), near));
        assert!(fanout.set_view(SubscriberKey::Player(2), near));
        assert!(fanout.set_view(SubscriberKey::Player(3), far));
        assert!(
            !fanout.set_view(SubscriberKey::Player(3), far),
            "same region"
        );
        assert_eq!(fanout.viewers(), 3);
        state.set_positions(1, &[Position::new(10, 10)]);
        state.set_positions(3, &[Position::new(3000, 3000)]);
        let events = state.take_log();
        fanout.broadcast(&events, &state, 1 << 20, &mut Vec::new());
        let mut got: Vec<Vec<ServerMessage>> = (1..=3)
            .map(|id| decode(&fanout.drain(SubscriberKey::Player(id))))
            .collect();
        // The first delivery is the region's snapshot (taken after the
        // broadcast, so it already has the new positions).
        let snapshot_ids = |messages: &[ServerMessage]| -> Vec<ClientId> {
            match &messages[0] {
                ServerMessage::Snapshot { players } => players.iter().map(|p| p.info.id).collect(),
                other => panic!("expected a snapshot, got {other:?}"),
            }
        };
        assert_eq!(snapshot_ids(&got[0]), vec![1]);
        assert_eq!(snapshot_ids(&got[2]), vec![3]);
        got.clear();

        state.set_positions(1, &[Position::new(11, 10)]);
        state.set_positions(3, &[Position::new(3001, 3000)]);
        state.set_positions(2, &[Position::new(20, 20)]);
        let events = state.take_log();
        fanout.broadcast(&events, &state, 1 << 20, &mut Vec::new());
        let outs: Vec<Outgoing> = (1..=3)
            .map(|id| fanout.drain(SubscriberKey::Player(id)))
            .collect();
        assert_eq!(
            outs[0].chunks, outs[1].chunks,
            "neighbours get the same bytes"
        );
        let moved = |id, x, y| PlayerPosition {
            id,
            position: Position::new(x, y),
        };
        // Player 2 entered the near region: joined first, then every move
        // of its cell in log order.
        assert_eq!(
            decode(&outs[0]),
            vec![
                ServerMessage::PlayerJoined(PlayerInfo {
                    id: 2,
                    name: "p2".into(),
                    kind: PlayerKind::Native
                }),
                ServerMessage::Positions(vec![moved(1, 11, 10), moved(2, 20, 20)]),
            ]
        );
        assert_eq!(
            decode(&outs[2]),
            vec![ServerMessage::Positions(vec![moved(3, 3001, 3000)])]
        );
        // Back to the whole world: a full snapshot, then everything.
        assert!(fanout.set_view(SubscriberKey::Player(3), None));
        assert_eq!(fanout.viewers(), 2);
        fanout.broadcast(&[], &state, 1 << 20, &mut Vec::new());
        let full = decode(&fanout.drain(SubscriberKey::Player(3)));
        assert!(matches!(&full[..], [ServerMessage::Snapshot { players }] if players.len() == 3));
    }

    #[test]
    fn broadcast_names_for_waking_only_the_subscribers_with_news() {
        let mut state = State::default();
        let mut fanout = Fanout::default();
        let mut wakes = Vec::new();
        for id in 1..=3 {
            state.join(PlayerInfo {
                id,
                name: format!("p{id}"),
                kind: PlayerKind::Native,
            });
            wakes.push(fanout.subscribe(SubscriberKey::Player(id), &NATIVE_FRAMES));
        }
        let near = Region::around(Position::new(0, 0), 100);
        let far = Region::around(Position::new(3000, 3000), 100);
        fanout.set_view(SubscriberKey::Player(1), near);
        fanout.set_view(SubscriberKey::Player(2), far);
        fanout.broadcast(&[], &state, 1 << 20, &mut Vec::new()); // the snapshots
        for id in 1..=3 {
            fanout.drain(SubscriberKey::Player(id));
        }
        state.set_positions(1, &[Position::new(10, 10)]);
        let events = state.take_log();
        let mut woken = Vec::new();
        fanout.broadcast(&events, &state, 1 << 20, &mut woken);
        let named = |i: usize| woken.iter().any(|w| Arc::ptr_eq(w, &wakes[i]));
        assert!(named(0), "the near view has news");
        assert!(!named(1), "the far view has none");
        assert!(named(2), "no view: everything");
        assert_eq!(woken.len(), 2);
    }

    #[test]
    fn while_the_overview_ticks_a_far_join_wakes_no_view_and_goes_with_its_next_delivery() {
        use shared::native::ServerMessage;
        let mut state = State::default();
        let mut fanout = Fanout::default();
        fanout.set_overview_carries_roster(true);
        let (view, whole) = (SubscriberKey::Player(1), SubscriberKey::Player(2));
        for id in [1, 2] {
            state.join(crate::world::info(id));
            state.set_positions(id, &[Position::new(0, 0)]);
            fanout.subscribe(SubscriberKey::Player(id), &NATIVE_FRAMES);
            fanout.feed_roster(SubscriberKey::Player(id));
        }
        fanout.set_view(view, Region::around(Position::new(0, 0), 100));
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        fanout.drain(view);
        fanout.drain(whole);
        let joined = |got: &[ServerMessage]| -> Vec<ClientId> {
            got.iter()
                .filter_map(|m| match m {
                    ServerMessage::RosterJoined(info) => Some(info.id),
                    _ => None,
                })
                .collect()
        };

        // Two far joins in two broadcasts: only the subscriber without a
        // view is woken; the frames are kept once.
        for id in [3, 4] {
            state.join(crate::world::info(id));
            state.set_positions(id, &[Position::new(3000, 3000)]);
            let mut woken = Vec::new();
            fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut woken);
            assert_eq!(woken.len(), 1, "only the subscriber without a view");
        }
        assert_eq!(fanout.held_roster.len(), 2);
        assert_eq!(joined(&decode(&fanout.drain(whole))), [3, 4]);

        // The overview wakes the view: the joins first, in order.
        let mut woken = Vec::new();
        fanout.push_overview(&overview::encode_overview(&state, 10), 1 << 20, &mut woken);
        assert_eq!(woken.len(), 1, "the view, by the overview");
        let got = decode(&fanout.drain(view));
        assert_eq!(joined(&got), [3, 4]);
        assert!(
            matches!(&got[..], [.., ServerMessage::Overview(_)]),
            "{got:?}"
        );
        assert_eq!(fanout.held_roster.len(), 0, "forgotten once sent");

        // News in its view takes a waiting frame along, before the news.
        state.join(crate::world::info(5));
        state.set_positions(5, &[Position::new(3000, 3000)]);
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        state.set_positions(1, &[Position::new(5, 5)]);
        let mut woken = Vec::new();
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut woken);
        assert_eq!(woken.len(), 2);
        let got = decode(&fanout.drain(view));
        assert!(
            matches!(&got[..], [ServerMessage::RosterJoined(info), ServerMessage::Positions(_)] if info.id == 5),
            "{got:?}"
        );

        // Without the overview ticking, a far leave wakes the view at once.
        fanout.set_overview_carries_roster(false);
        state.leave(3);
        let mut woken = Vec::new();
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut woken);
        assert_eq!(woken.len(), 2);
        assert!(matches!(
            &decode(&fanout.drain(view))[..],
            [ServerMessage::RosterLeft { id: 3 }]
        ));
    }

    #[test]
    fn a_version_3_view_hears_every_join_and_leave_and_a_version_2_view_does_not() {
        use shared::native::{Overview, ServerMessage};
        let mut state = State::default();
        let mut fanout = Fanout::default();
        let (v3, v2) = (SubscriberKey::Player(1), SubscriberKey::Player(2));
        for id in [1, 2] {
            state.join(crate::world::info(id));
            state.set_positions(id, &[Position::new(0, 0)]);
            fanout.subscribe(SubscriberKey::Player(id), &NATIVE_FRAMES);
        }
        fanout.feed_roster(v3);
        let near = Region::around(Position::new(0, 0), 100);
        fanout.set_view(v3, near);
        fanout.set_view(v2, near);
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        let first = decode(&fanout.drain(v3));
        assert!(
            matches!(&first[..], [ServerMessage::Roster(all), ServerMessage::Snapshot { .. }] if all.len() == 2),
            "the roster, then the view: {first:?}"
        );
        fanout.drain(v2);

        // A far player joins and leaves: news for the roster only.
        state.join(crate::world::info(3));
        state.set_positions(3, &[Position::new(3000, 3000)]);
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        // The view moves before it took that: the roster frame stays.
        assert!(fanout.set_view(v3, Region::around(Position::new(200, 0), 100)));
        state.leave(3);
        fanout.broadcast(&state.take_log(), &state, 1 << 20, &mut Vec::new());
        let got = decode(&fanout.drain(v3));
        let roster: Vec<&ServerMessage> = got
            .iter()
            .filter(|m| {
                matches!(
                    m,
                    ServerMessage::RosterJoined(_) | ServerMessage::RosterLeft { .. }
                )
            })
            .collect();
        assert!(
            matches!(roster[..], [ServerMessage::RosterJoined(info), ServerMessage::RosterLeft { id: 3 }] if info.id == 3),
            "{got:?}"
        );
        assert!(
            matches!(got.last(), Some(ServerMessage::Snapshot { .. })),
            "the new view's snapshot, after the roster frames it kept: {got:?}"
        );
        assert!(
            decode(&fanout.drain(v2)).is_empty(),
            "a version-2 view hears nothing of a far player"
        );

        // The overview goes to the version-3 view only, the same bytes.
        assert!(fanout.wants_overview());
        let encoded = overview::encode_overview(&state, 10);
        let mut woken = Vec::new();
        fanout.push_overview(&encoded, 1 << 20, &mut woken);
        assert_eq!(woken.len(), 1);
        let out = fanout.drain(v3);
        assert_eq!(
            out.chunks[0].as_ptr(),
            encoded.bytes.as_ptr(),
            "shared, not copied"
        );
        assert!(
            matches!(&decode(&out)[..], [ServerMessage::Overview(Overview::Players(p))] if p.len() == 2)
        );
        // Without a view it gets everything already: no overview.
        fanout.set_view(v3, None);
        assert!(!fanout.wants_overview());
    }

    #[test]
    fn a_version_3_laggard_is_sent_the_whole_roster_again() {
        use shared::native::ServerMessage;
        let mut state = State::default();
        let mut fanout = Fanout::default();
        let slow = SubscriberKey::Player(1);
        state.join(crate::world::info(1));
        fanout.subscribe(slow, &NATIVE_FRAMES);
        fanout.feed_roster(slow);
        fanout.drain(slow);
        for id in 2..200 {
            state.join(crate::world::info(id));
            fanout.broadcast(&state.take_log(), &state, 256, &mut Vec::new());
        }
        let got = decode(&fanout.drain(slow));
        let last_roster = got
            .iter()
            .rposition(|m| matches!(m, ServerMessage::Roster(_)))
            .expect("a whole roster after falling behind");
        assert!(matches!(
            got[last_roster + 1],
            ServerMessage::Snapshot { .. }
        ));
        // The roster and the joins after it name everyone.
        let mut everyone: Vec<ClientId> = got[last_roster..]
            .iter()
            .flat_map(|m| match m {
                ServerMessage::Roster(all) => all.iter().map(|p| p.id).collect(),
                ServerMessage::RosterJoined(info) => vec![info.id],
                _ => Vec::new(),
            })
            .collect();
        everyone.sort_unstable();
        everyone.dedup();
        assert_eq!(everyone, (1..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_laggard_is_resynchronised_and_keeps_its_leave_markers() {
        let mut fanout = Fanout::default();
        let mut state = State::default();
        let slow = SubscriberKey::Player(1);
        fanout.subscribe(slow, &LEGACY_RECORDS);
        fanout.drain(slow);
        state.join(PlayerInfo {
            id: 2,
            name: "p2".into(),
            kind: PlayerKind::Legacy,
        });
        state.set_positions(2, &[Position::new(5, 5)]);
        let left = [Event::Left {
            id: 9,
            had_position: true,
        }];
        let mut resynced = 0;
        for _ in 0..100 {
            resynced += fanout.broadcast(&left, &state, 64, &mut Vec::new());
        }
        assert!(resynced > 0);
        assert!(fanout.queued_bytes(slow).unwrap() <= 64);
        let out = fanout.drain(slow);
        // 100 leave markers owed (through the resync or still queued), and
        // the snapshot's one record of player 2.
        assert_eq!(out.messages, 101);
    }
}
