//! What the recorder needs of the world: every broadcast's events (this
//! node's and, on a cluster node, every other node's) handed to a bounded
//! queue, without ever waiting for it.
//!
//! When the queue is full (the disk is slower than the world) the events
//! gather in a stash where each player's moves collapse to its latest, so
//! memory stays bounded by the players plus their joins and leaves, which
//! are never dropped. The recorder takes the stash once it has emptied the
//! queue; while the stash holds anything, new events join it rather than
//! the queue, so the order the recorder sees is the order of the world.

use std::collections::HashMap;
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use shared::ClientId;
use tokio::time::Instant;

use super::World;
use super::state::Event;
use crate::log_throttle;

/// Broadcasts the queue holds before the world starts coalescing: at the
/// light-load rate of one broadcast per move, several seconds of a slow
/// disk's `fdatasync`.
pub const RECORD_QUEUE_BATCHES: usize = 4096;

/// The events of one broadcast, and when it was made.
#[derive(Debug)]
pub struct RecordBatch {
    pub at: Instant,
    pub events: Vec<Event>,
}

/// The recorder's counters, registered on `/metrics` when recording.
#[derive(Debug, Clone, Default)]
pub struct RecordMetrics {
    /// Moves dropped in favour of a later move of the same player because
    /// the recorder was behind.
    pub coalesced: Counter,
    /// Bytes written to recording files (headers and blocks).
    pub bytes: Counter,
}

/// Events the queue had no room for, each player's moves collapsed to its
/// latest.
#[derive(Debug, Default)]
struct Stash {
    /// Set when the recorder's feed is dropped (it stopped): nothing more
    /// may gather here.
    closed: bool,
    at: Option<Instant>,
    events: Vec<Event>,
    /// Where each player's latest move since its last join or leave is.
    last_move: HashMap<ClientId, usize>,
}

impl Stash {
    /// Adds `events`; returns how many moves replaced an earlier one.
    fn merge(&mut self, at: Instant, events: Vec<Event>) -> u64 {
        self.at = Some(at);
        let mut coalesced = 0;
        for event in events {
            match event {
                Event::Moved(id, _) => {
                    if let Some(&index) = self.last_move.get(&id) {
                        self.events[index] = event;
                        coalesced += 1;
                    } else {
                        self.last_move.insert(id, self.events.len());
                        self.events.push(event);
                    }
                }
                Event::Joined(_) | Event::Left { .. } => {
                    self.last_move.remove(&event.player());
                    self.events.push(event);
                }
            }
        }
        coalesced
    }

    fn take(&mut self) -> Option<RecordBatch> {
        let at = self.at.take()?;
        self.last_move.clear();
        Some(RecordBatch {
            at,
            events: std::mem::take(&mut self.events),
        })
    }
}

/// The world's end of the recording: the queue's sender and the stash.
#[derive(Debug)]
pub(super) struct RecordTap {
    queue: SyncSender<RecordBatch>,
    stash: Arc<Mutex<Stash>>,
    metrics: RecordMetrics,
}

/// What [`RecordFeed::next`] found.
#[derive(Debug)]
pub enum Next {
    Batch(RecordBatch),
    /// Nothing within the timeout.
    Idle,
    /// The world stopped recording and everything was taken.
    Ended,
}

/// The recorder's end: the queue, then the stash.
#[derive(Debug)]
pub struct RecordFeed {
    queue: Receiver<RecordBatch>,
    stash: Arc<Mutex<Stash>>,
}

impl RecordFeed {
    /// The next batch, waiting at most `timeout`: the queue first, then
    /// the stash once the queue is empty.
    pub fn next(&self, timeout: Duration) -> Next {
        match self.queue.try_recv() {
            Ok(batch) => return Next::Batch(batch),
            Err(TryRecvError::Disconnected) => return self.last(),
            Err(TryRecvError::Empty) => {}
        }
        if let Some(batch) = self.take_stash() {
            return Next::Batch(batch);
        }
        match self.queue.recv_timeout(timeout) {
            Ok(batch) => Next::Batch(batch),
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => self.last(),
        }
    }

    /// What is left once the world stopped recording.
    fn last(&self) -> Next {
        self.take_stash().map_or(Next::Ended, Next::Batch)
    }

    fn take_stash(&self) -> Option<RecordBatch> {
        self.stash.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Drop for RecordFeed {
    /// The recorder stopped: the world stops handing it events, even while
    /// the queue looks busy.
    fn drop(&mut self) {
        let mut stash = self.stash.lock().unwrap_or_else(|p| p.into_inner());
        stash.closed = true;
        stash.take();
    }
}

impl RecordTap {
    /// Hands one broadcast's events to the recorder. Never waits. Returns
    /// false once the recorder is gone (it stopped on an error).
    fn offer(&self, at: Instant, events: Vec<Event>) -> bool {
        let mut stash = self.stash.lock().unwrap_or_else(|p| p.into_inner());
        if stash.closed {
            return false;
        }
        if stash.at.is_some() {
            let coalesced = stash.merge(at, events);
            self.metrics.coalesced.inc_by(coalesced);
            return true;
        }
        match self.queue.try_send(RecordBatch { at, events }) {
            Ok(()) => true,
            Err(TrySendError::Full(batch)) => {
                let coalesced = stash.merge(batch.at, batch.events);
                self.metrics.coalesced.inc_by(coalesced);
                if log_throttle::WARNINGS.admit("recorder behind") {
                    tracing::warn!(
                        queued = RECORD_QUEUE_BATCHES,
                        "the recorder is behind the world (slow disk?): recording coalesces \
                         moves to each player's latest until it catches up"
                    );
                }
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

impl World {
    /// Makes every broadcast also hand its events to the returned feed,
    /// counting in `metrics` what the recorder could not keep up with.
    pub fn record_to(&self, metrics: RecordMetrics) -> RecordFeed {
        let (queue, receiver) = sync_channel(RECORD_QUEUE_BATCHES);
        let stash = Arc::new(Mutex::new(Stash::default()));
        self.lock().recording = Some(RecordTap {
            queue,
            stash: Arc::clone(&stash),
            metrics,
        });
        RecordFeed {
            queue: receiver,
            stash,
        }
    }

    /// Stops handing events to the recorder: its feed ends once it has
    /// taken what was handed already.
    pub fn stop_recording(&self) {
        self.lock().recording = None;
    }

    /// Called by a broadcast with its events.
    pub(super) fn record(inner: &mut super::Inner, at: Instant, events: Vec<Event>) {
        if let Some(tap) = &inner.recording
            && !tap.offer(at, events)
        {
            inner.recording = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::legacy::Position;

    fn moved(id: ClientId, x: i16) -> Event {
        Event::Moved(id, Position::new(x, 0))
    }

    #[test]
    fn a_stash_keeps_each_players_latest_move_and_every_join_and_leave() {
        let mut stash = Stash::default();
        let now = Instant::now();
        let info = crate::world::info(1);
        let coalesced = stash.merge(
            now,
            vec![
                Event::Joined(info.clone()),
                moved(1, 1),
                moved(2, 1),
                moved(1, 2),
                Event::Left {
                    id: 1,
                    had_position: true,
                },
                Event::Joined(info.clone()),
                moved(1, 3),
            ],
        );
        assert_eq!(coalesced, 1);
        assert_eq!(stash.merge(now, vec![moved(2, 9), moved(1, 4)]), 2);
        let batch = stash.take().unwrap();
        assert_eq!(
            batch.events,
            vec![
                Event::Joined(info.clone()),
                moved(1, 2),
                moved(2, 9),
                Event::Left {
                    id: 1,
                    had_position: true
                },
                Event::Joined(info),
                moved(1, 4),
            ]
        );
        assert!(stash.take().is_none());
    }

    #[test]
    fn a_full_queue_never_blocks_and_coalesces_until_the_recorder_catches_up() {
        let world = World::new();
        let metrics = RecordMetrics::default();
        let feed = world.record_to(metrics.clone());
        let tap_offer = |events| {
            let mut inner = world.lock();
            World::record(&mut inner, Instant::now(), events);
        };
        for x in 0..RECORD_QUEUE_BATCHES as i16 + 10 {
            tap_offer(vec![moved(7, x)]);
        }
        assert_eq!(
            metrics.coalesced.get(),
            9,
            "ten batches past the queue became one"
        );
        let mut last = None;
        let mut batches = 0;
        while let Next::Batch(batch) = feed.next(Duration::ZERO) {
            batches += 1;
            last = batch.events.last().cloned();
        }
        assert_eq!(batches, RECORD_QUEUE_BATCHES + 1);
        assert_eq!(last, Some(moved(7, RECORD_QUEUE_BATCHES as i16 + 9)));
        world.stop_recording();
        assert!(
            matches!(feed.next(Duration::ZERO), Next::Ended),
            "the feed ends"
        );
    }

    #[test]
    fn other_nodes_players_are_recorded_too() {
        let world = World::new();
        let feed = world.record_to(RecordMetrics::default());
        let remote = crate::world::info(5 << crate::world::NODE_ID_SHIFT | 1);
        world.apply_remote(&[Event::Joined(remote.clone()), moved(remote.id, 3)]);
        world.broadcast();
        let Next::Batch(batch) = feed.next(Duration::ZERO) else {
            panic!("the broadcast was handed over");
        };
        assert_eq!(
            batch.events,
            vec![Event::Joined(remote.clone()), moved(remote.id, 3)]
        );
        world.remove_node(5);
        world.broadcast();
        let Next::Batch(batch) = feed.next(Duration::ZERO) else {
            panic!("the node's removal was handed over");
        };
        assert!(
            matches!(batch.events[..], [Event::Left { id, .. }] if id == remote.id),
            "{:?}",
            batch.events
        );
    }

    #[test]
    fn a_recorder_that_stopped_is_let_go_even_while_its_queue_was_full() {
        let world = World::new();
        let feed = world.record_to(RecordMetrics::default());
        let offer = |x| {
            let mut inner = world.lock();
            World::record(&mut inner, Instant::now(), vec![moved(7, x)]);
            inner.recording.is_some()
        };
        for x in 0..=RECORD_QUEUE_BATCHES as i16 {
            assert!(offer(x), "still recording");
        }
        drop(feed);
        assert!(
            !offer(0),
            "the world drops the tap of a recorder that is gone"
        );
    }
}
