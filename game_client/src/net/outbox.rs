//! What the network thread holds for the ECS while the ECS is busy: the
//! channel between them is bounded ([`EVENT_CHANNEL_CAPACITY`]), and in
//! front of it positions are coalesced, latest wins.
//!
//! A slow frame (software rendering takes 166 ms) must not make the client
//! grow without bound, nor make the network thread stop reading (the server
//! would then resynchronise us again and again). So the thread keeps
//! reading and keeps, per player, only the newest position not yet handed
//! over: what it holds is at most one entry per player, plus the latest
//! overview and measurements, plus the events that must all arrive in order
//! (roster changes, the connection's news, math answers), which are never
//! dropped. Before
//! such an event is queued, the positions gathered so far are sealed in
//! front of it, so the ECS still sees every event in the server's order
//! (a position never arrives before the join of its player).

use std::collections::{HashMap, VecDeque};

use crossbeam_channel::{Sender, TrySendError};
use shared::ClientId;
use shared::native::{Overview, PlayerPosition, ServerMessage};

use super::event::NetEvent;

/// Events the channel to the ECS holds at most. One frame of the ECS
/// needs only a few (one coalesced `Positions`, an overview, the
/// measurements, some roster changes); a burst of roster changes spreads
/// over a few frames.
pub const EVENT_CHANNEL_CAPACITY: usize = 64;

/// The ECS went away (its receiver was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcsGone;

/// Events waiting for room in the channel to the ECS.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Events that must all arrive, in order.
    ordered: VecDeque<NetEvent>,
    /// The newest position of each player not handed over yet, in the
    /// order the players first moved.
    positions: Vec<PlayerPosition>,
    /// Where each player's entry is in `positions`.
    slots: HashMap<ClientId, usize>,
    /// The newest overview not handed over yet.
    overview: Option<Overview>,
    /// Position entries inside `ordered` (sealed batches).
    sealed_entries: usize,
    /// Measurements not handed over yet: bytes received (they add up) and
    /// the newest RTT sample. They need no place in line.
    traffic_bytes: u64,
    rtt: Option<std::time::Duration>,
}

impl Outbox {
    /// Keeps `event` until there is room for it: positions and overviews
    /// replace the older ones not handed over yet; anything else is queued
    /// behind them.
    pub fn push(&mut self, event: NetEvent) {
        match event {
            NetEvent::Server(ServerMessage::Positions(batch)) => {
                for entry in batch {
                    match self.slots.get(&entry.id) {
                        Some(&slot) => self.positions[slot] = entry,
                        None => {
                            self.slots.insert(entry.id, self.positions.len());
                            self.positions.push(entry);
                        }
                    }
                }
            }
            NetEvent::Server(ServerMessage::Overview(overview)) => self.overview = Some(overview),
            NetEvent::Traffic { bytes } => self.traffic_bytes += bytes,
            NetEvent::Rtt(rtt) => self.rtt = Some(rtt),
            other => {
                self.seal();
                self.ordered.push_back(other);
            }
        }
    }

    /// Puts the coalesced positions and overview in line, so that what is
    /// queued next arrives after them.
    fn seal(&mut self) {
        if let Some(positions) = self.take_positions() {
            self.sealed_entries += entries(&positions);
            self.ordered.push_back(positions);
        }
        if let Some(overview) = self.overview.take() {
            self.ordered
                .push_back(NetEvent::Server(ServerMessage::Overview(overview)));
        }
    }

    fn take_positions(&mut self) -> Option<NetEvent> {
        if self.positions.is_empty() {
            return None;
        }
        self.slots.clear();
        let batch = std::mem::take(&mut self.positions);
        Some(NetEvent::Server(ServerMessage::Positions(batch)))
    }

    /// The events that must arrive in order, first; then the coalesced
    /// ones (positions, overview, measurements), all together.
    fn pop(&mut self) -> Option<NetEvent> {
        if let Some(event) = self.ordered.pop_front() {
            self.sealed_entries -= entries(&event);
            return Some(event);
        }
        self.pop_coalesced()
    }

    fn pop_coalesced(&mut self) -> Option<NetEvent> {
        if let Some(positions) = self.take_positions() {
            return Some(positions);
        }
        if let Some(overview) = self.overview.take() {
            return Some(NetEvent::Server(ServerMessage::Overview(overview)));
        }
        if self.traffic_bytes > 0 {
            let bytes = std::mem::take(&mut self.traffic_bytes);
            return Some(NetEvent::Traffic { bytes });
        }
        self.rtt.take().map(NetEvent::Rtt)
    }

    /// Hands over as much as the channel has room for, without waiting.
    /// The coalesced positions, overview and measurements go together, once
    /// the ECS has taken everything before them: while it is busy they
    /// keep coalescing here instead of piling up in the channel as one
    /// batch per read.
    pub fn flush(&mut self, events: &Sender<NetEvent>) -> Result<(), EcsGone> {
        while !events.is_full() {
            if let Some(event) = self.ordered.pop_front() {
                self.sealed_entries -= entries(&event);
                self.send(events, event)?;
                continue;
            }
            if !events.is_empty() {
                return Ok(());
            }
            while !events.is_full() {
                let Some(event) = self.pop_coalesced() else {
                    return Ok(());
                };
                self.send(events, event)?;
            }
        }
        Ok(())
    }

    /// Sends one event; one that finds the channel full goes back in line.
    fn send(&mut self, events: &Sender<NetEvent>, event: NetEvent) -> Result<(), EcsGone> {
        match events.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(event)) => {
                self.sealed_entries += entries(&event);
                self.ordered.push_front(event);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(EcsGone),
        }
    }

    /// Hands over everything, waiting for room (the end of a session: what
    /// the server said before the connection was lost still counts).
    pub fn flush_all(&mut self, events: &Sender<NetEvent>) -> Result<(), EcsGone> {
        while let Some(event) = self.pop() {
            events.send(event).map_err(|_| EcsGone)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
            && self.positions.is_empty()
            && self.overview.is_none()
            && self.traffic_bytes == 0
            && self.rtt.is_none()
    }

    /// Position entries held, and events queued. The entries are at most
    /// one per player, plus one per player for each batch sealed behind a
    /// roster change the ECS has not taken yet.
    pub fn held(&self) -> (usize, usize) {
        (
            self.positions.len() + self.sealed_entries,
            self.ordered.len(),
        )
    }
}

/// Position entries in `event` (0 for anything but `Positions`).
fn entries(event: &NetEvent) -> usize {
    match event {
        NetEvent::Server(ServerMessage::Positions(batch)) => batch.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use shared::legacy::Position;
    use shared::native::PlayerInfo;

    use super::*;

    fn moved(id: ClientId, x: i16) -> PlayerPosition {
        PlayerPosition {
            id,
            position: Position::new(x, 0),
        }
    }

    fn positions(batch: Vec<PlayerPosition>) -> NetEvent {
        NetEvent::Server(ServerMessage::Positions(batch))
    }

    fn joined(id: ClientId) -> NetEvent {
        NetEvent::Server(ServerMessage::PlayerJoined(PlayerInfo {
            id,
            name: format!("p{id}"),
            kind: shared::native::PlayerKind::Native,
        }))
    }

    #[test]
    fn positions_coalesce_latest_wins_and_stay_behind_earlier_events() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let mut outbox = Outbox::default();
        outbox.push(positions(vec![moved(1, 1), moved(2, 1)]));
        outbox.push(joined(3));
        for x in 2..1000 {
            outbox.push(positions(vec![moved(3, x), moved(1, x)]));
        }
        assert_eq!(
            outbox.held(),
            (4, 2),
            "one entry per player, plus the batch sealed before the join"
        );
        outbox.flush(&tx).unwrap();
        assert_eq!(rx.len(), 2, "as much as the channel takes");
        outbox.flush(&tx).unwrap();
        assert!(!outbox.is_empty());
        let got: Vec<NetEvent> = rx.try_iter().collect();
        outbox.push(positions(vec![moved(2, 5)]));
        outbox.push(positions(vec![moved(2, 6)]));
        outbox.flush(&tx).unwrap();
        assert_eq!(rx.len(), 1, "one coalesced batch at a time");
        let rest: Vec<NetEvent> = rx.try_iter().collect();
        assert!(outbox.is_empty());
        assert_eq!(
            [got, rest].concat(),
            vec![
                positions(vec![moved(1, 1), moved(2, 1)]),
                joined(3),
                positions(vec![moved(3, 999), moved(1, 999), moved(2, 6)]),
            ]
        );
    }

    #[test]
    fn roster_changes_are_never_dropped_and_measurements_add_up() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut outbox = Outbox::default();
        for id in 0..500 {
            outbox.push(joined(id));
            outbox.push(NetEvent::Traffic { bytes: 10 });
            outbox.push(NetEvent::Traffic { bytes: 5 });
        }
        let mut joins = 0;
        let mut bytes = 0;
        while !outbox.is_empty() {
            outbox.flush(&tx).unwrap();
            for event in rx.try_iter() {
                match event {
                    NetEvent::Server(ServerMessage::PlayerJoined(info)) => {
                        assert_eq!(info.id, joins, "in order");
                        joins += 1;
                    }
                    NetEvent::Traffic { bytes: b } => bytes += b,
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!((joins, bytes), (500, 7500));
    }

    #[test]
    fn the_overview_and_measurements_go_with_the_positions_not_after_them() {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let mut outbox = Outbox::default();
        // Positions keep coming between two frames; the ECS takes all each time.
        for frame in 0..3 {
            outbox.push(positions(vec![moved(1, frame)]));
            outbox.push(NetEvent::Server(ServerMessage::Overview(
                Overview::Players(vec![moved(9, frame)]),
            )));
            outbox.push(NetEvent::Rtt(std::time::Duration::from_millis(3)));
            outbox.flush(&tx).unwrap();
            outbox.push(positions(vec![moved(1, frame + 10)]));
            outbox.flush(&tx).unwrap();
            let got: Vec<NetEvent> = rx.try_iter().collect();
            assert!(
                got.iter()
                    .any(|e| matches!(e, NetEvent::Server(ServerMessage::Overview(_)))),
                "frame {frame}: {got:?}"
            );
            assert!(got.iter().any(|e| matches!(e, NetEvent::Rtt(_))));
        }
    }

    #[test]
    fn only_the_newest_overview_is_kept_and_a_gone_ecs_is_reported() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let mut outbox = Outbox::default();
        for x in 0..3 {
            outbox.push(NetEvent::Server(ServerMessage::Overview(
                Overview::Players(vec![moved(1, x)]),
            )));
        }
        outbox.flush(&tx).unwrap();
        let got: Vec<NetEvent> = rx.try_iter().collect();
        assert_eq!(
            got,
            vec![NetEvent::Server(ServerMessage::Overview(
                Overview::Players(vec![moved(1, 2)])
            ))]
        );
        drop(rx);
        outbox.push(joined(1));
        assert_eq!(outbox.flush(&tx), Err(EcsGone));
    }
}
