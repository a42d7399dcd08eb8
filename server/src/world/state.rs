//! The world as data: every player, its latest position, and the ordered log
//! of [`Event`]s since the last broadcast. Pure: no I/O, no encoding, no
//! locks, so it is unit-tested on its own and is what a cluster replicates.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use shared::ClientId;
use shared::legacy::Position;
use shared::native::{PlayerInfo, PlayerState};
use tokio::time::Instant;

use super::grid::{Cell, Grid, Region};
use super::move_rate::{MoveBudget, MoveRate};

pub use super::move_rate::MAX_MOVES_PER_BROADCAST;

/// The log is compacted once it holds this many entries, or two per player.
pub const LOG_COMPACT_MIN: usize = 4096;

/// One change of the world, in the order it happened. The unit of fan-out
/// and of replication between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Joined(PlayerInfo),
    Moved(ClientId, Position),
    /// `had_position`: whether legacy clients ever saw the player (and so
    /// need a leave marker).
    Left {
        id: ClientId,
        had_position: bool,
    },
}

impl Event {
    /// The player this event is about.
    pub fn player(&self) -> ClientId {
        match self {
            Event::Joined(info) => info.id,
            Event::Moved(id, _) | Event::Left { id, .. } => *id,
        }
    }
}

/// A player of the world.
#[derive(Debug, Clone, PartialEq)]
pub struct Player {
    pub info: PlayerInfo,
    pub position: Option<Position>,
    /// Moves of this player in the current log, and where its last one is.
    moves_in_log: u32,
    last_move_index: usize,
    /// The grid cell of this player as of the last [`State::take_log`]
    /// (`None`: it had no position then).
    cell: Option<Cell>,
    /// Moves this player may still make under the move-rate cap.
    budget: MoveBudget,
    /// Whether its latest position is held back by the cap (see
    /// [`State::move_player`]): it goes out once the budget allows.
    held: bool,
}

impl Player {
    /// This player as the protocol carries it (snapshots, replication).
    pub fn to_state(&self) -> PlayerState {
        PlayerState {
            info: self.info.clone(),
            position: self.position,
        }
    }
}

impl Player {
    /// The grid cell this player was in at the last broadcast: what areas
    /// of interest see, until the next one.
    pub fn cell(&self) -> Option<Cell> {
        self.cell
    }
}

/// A player whose grid cell changed between two broadcasts: `from` is its
/// cell at the previous one, `to` its cell now (`None`: no position yet,
/// or gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    pub id: ClientId,
    pub from: Option<Cell>,
    pub to: Option<Cell>,
}

/// Every player and the events since the last [`State::take_log`], plus
/// the grid index of where players were at that last take.
///
/// The grid is only updated by [`State::take_log`], for the players its log
/// names, so its cost follows the changes, not the size of the world.
#[derive(Debug, Default)]
pub struct State {
    players: HashMap<ClientId, Player>,
    log: Vec<Event>,
    grid: Grid,
    /// Players that left (or were replaced) since the last take while in a
    /// cell, to be taken out of the grid at the next one.
    departed: Vec<(ClientId, Cell)>,
    /// Cell changes found by the last [`State::take_log`].
    crossings: Vec<Crossing>,
    /// Bumped by every join and leave (see [`State::roster_version`]).
    roster_version: u64,
    /// The cap on each local player's moves (`None`: no cap).
    move_rate: Option<MoveRate>,
    /// Players whose latest position is held back by the cap.
    held: Vec<ClientId>,
    /// Moves the cap coalesced away, ever (on `/metrics`).
    coalesced_moves: u64,
}

impl State {
    /// Adds a player (replacing one with the same id) and logs its arrival.
    pub fn join(&mut self, info: PlayerInfo) {
        let replaced = self.players.insert(
            info.id,
            Player {
                info: info.clone(),
                position: None,
                moves_in_log: 0,
                last_move_index: 0,
                cell: None,
                budget: MoveBudget::default(),
                held: false,
            },
        );
        if let Some(cell) = replaced.and_then(|p| p.cell) {
            self.departed.push((info.id, cell));
        }
        self.roster_version += 1;
        self.log.push(Event::Joined(info));
    }

    /// Records new positions of a player, oldest first. Positions of an
    /// unknown player are ignored. At most [`MAX_MOVES_PER_BROADCAST`] moves
    /// of one player stay in the log; past that the newest replaces the last.
    pub fn set_positions(&mut self, id: ClientId, positions: &[Position]) {
        let Some(player) = self.players.get_mut(&id) else {
            return;
        };
        let Some(&last) = positions.last() else {
            return;
        };
        player.position = Some(last.sanitized());
        for position in positions {
            let event = Event::Moved(id, position.sanitized());
            let replaceable = player.moves_in_log >= MAX_MOVES_PER_BROADCAST
                && matches!(self.log.get(player.last_move_index), Some(Event::Moved(moved, _)) if *moved == id);
            if replaceable {
                self.log[player.last_move_index] = event;
            } else {
                player.moves_in_log += 1;
                player.last_move_index = self.log.len();
                self.log.push(event);
            }
        }
        if self.log.len() >= LOG_COMPACT_MIN.max(2 * self.players.len()) {
            self.compact_log();
        }
    }

    /// Caps every local player's moves at `rate` (see [`State::move_player`]).
    pub fn set_move_rate(&mut self, rate: Option<MoveRate>) {
        self.move_rate = rate;
    }

    /// New positions of a local player (oldest first), received at `now`,
    /// under the move-rate cap: while the player's budget lasts they are
    /// logged like [`State::set_positions`]; past it the player's position
    /// is updated but not logged, and its latest is held until
    /// [`State::release_held`] finds budget for it. Latest wins: the
    /// player's newest position always goes out, its intermediate ones may
    /// not. A flooder thus costs every observer at most the rate plus the
    /// burst, however fast it sends.
    pub fn move_player(&mut self, id: ClientId, positions: &[Position], now: Instant) {
        let Some(rate) = self.move_rate else {
            return self.set_positions(id, positions);
        };
        let Some(player) = self.players.get_mut(&id) else {
            return;
        };
        let Some(&latest) = positions.last() else {
            return;
        };
        let allowed = player.budget.take(positions.len(), rate, now);
        self.coalesced_moves += (positions.len() - allowed) as u64;
        if allowed == 0 {
            player.position = Some(latest.sanitized());
            if !player.held {
                player.held = true;
                self.held.push(id);
            }
            return;
        }
        // The first moves the budget allows, the latest in place of the last.
        player.held = false;
        if allowed == positions.len() {
            self.set_positions(id, positions);
        } else {
            let mut kept = positions[..allowed - 1].to_vec();
            kept.push(latest);
            self.set_positions(id, &kept);
        }
    }

    /// Logs the held latest position of every player whose budget allows a
    /// move again at `now`. Returns when the next of those still held will
    /// be allowed (`None`: none is held).
    pub fn release_held(&mut self, now: Instant) -> Option<Instant> {
        let rate = self.move_rate?;
        let mut next: Option<Instant> = None;
        let mut held = std::mem::take(&mut self.held);
        held.retain(|&id| {
            let Some(player) = self.players.get_mut(&id) else {
                return false;
            };
            if !player.held {
                return false;
            }
            if player.budget.take(1, rate, now) == 0 {
                let at = player.budget.next_move_at(rate);
                next = Some(next.map_or(at, |next| next.min(at)));
                return true;
            }
            player.held = false;
            if let Some(position) = player.position {
                self.set_positions(id, &[position]);
            }
            false
        });
        self.held = held;
        next
    }

    /// Moves the move-rate cap coalesced away so far.
    pub fn coalesced_moves(&self) -> u64 {
        self.coalesced_moves
    }

    /// Removes a player and logs its departure; `None` if it was not here.
    pub fn leave(&mut self, id: ClientId) -> Option<Player> {
        let player = self.players.remove(&id)?;
        if let Some(cell) = player.cell {
            self.departed.push((id, cell));
        }
        self.roster_version += 1;
        self.log.push(Event::Left {
            id,
            had_position: player.position.is_some(),
        });
        Some(player)
    }

    /// Applies an event that happened elsewhere (another node), logging it
    /// like a local one.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Joined(info) => self.join(info.clone()),
            Event::Moved(id, position) => self.set_positions(*id, std::slice::from_ref(position)),
            Event::Left { id, .. } => {
                self.leave(*id);
            }
        }
    }

    /// Takes the events since the last call, oldest first, and brings the
    /// grid up to date: each player that moved or left is put in the cell
    /// of its latest position (or none), and every change of cell is kept
    /// in [`State::crossings`] until the next call. Costs what the log
    /// holds, not what the world holds.
    pub fn take_log(&mut self) -> Vec<Event> {
        let log = std::mem::take(&mut self.log);
        self.crossings.clear();
        for (id, cell) in self.departed.drain(..) {
            self.grid.relocate(id, Some(cell), None);
            self.crossings.push(Crossing {
                id,
                from: Some(cell),
                to: None,
            });
        }
        for event in &log {
            let Event::Moved(id, _) = event else {
                continue;
            };
            let Some(player) = self.players.get_mut(id) else {
                continue;
            };
            // Every player with moves in the log is named by one of them.
            player.moves_in_log = 0;
            let to = player.position.map(Cell::of);
            if to != player.cell {
                self.grid.relocate(*id, player.cell, to);
                self.crossings.push(Crossing {
                    id: *id,
                    from: player.cell,
                    to,
                });
                player.cell = to;
            }
        }
        log
    }

    /// The cell changes found by the last [`State::take_log`], leaves
    /// first, then in the order of the players' first moves.
    pub fn crossings(&self) -> &[Crossing] {
        &self.crossings
    }

    /// The players whose cell (as of the last [`State::take_log`]) is in
    /// `region`, found through the grid.
    pub fn players_in_region<'a>(
        &'a self,
        region: &'a Region,
    ) -> impl Iterator<Item = &'a Player> + 'a {
        self.grid
            .players_in_region(region)
            .filter_map(|id| self.players.get(&id))
    }

    /// Whether anything happened since the last [`State::take_log`].
    /// Changes whenever a player joins or leaves (moves leave it alone):
    /// with the broadcast number, it tells whether a snapshot encoded
    /// earlier still names the same players.
    pub fn roster_version(&self) -> u64 {
        self.roster_version
    }

    pub fn has_news(&self) -> bool {
        !self.log.is_empty()
    }

    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    pub fn players(&self) -> impl Iterator<Item = &Player> {
        self.players.values()
    }

    pub fn player(&self, id: ClientId) -> Option<&Player> {
        self.players.get(&id)
    }

    pub fn player_count(&self) -> usize {
        self.players.len()
    }

    /// Keeps only the latest move of each player (joins and leaves stay, in
    /// order): memory stays bounded whatever the input rate.
    pub fn compact_log(&mut self) {
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

#[cfg(test)]
pub(crate) mod tests {
    use shared::native::PlayerKind;

    use super::super::move_rate::MoveRate;
    use super::*;

    /// A legacy player named after its id (shared by the world's and the
    /// fan-out's tests).
    pub(crate) fn info(id: ClientId) -> PlayerInfo {
        PlayerInfo {
            id,
            name: format!("p{id}"),
            kind: PlayerKind::Legacy,
        }
    }

    fn moves(log: &[Event], of: ClientId) -> Vec<i16> {
        log.iter()
            .filter_map(|e| match e {
                Event::Moved(id, p) if *id == of => Some(p.x),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn events_are_logged_in_order_and_taken_once() {
        let mut state = State::default();
        state.join(info(1));
        state.set_positions(1, &[Position::new(1, 1), Position::new(2, 2)]);
        state.leave(1);
        assert_eq!(
            state.take_log(),
            vec![
                Event::Joined(info(1)),
                Event::Moved(1, Position::new(1, 1)),
                Event::Moved(1, Position::new(2, 2)),
                Event::Left {
                    id: 1,
                    had_position: true
                },
            ]
        );
        assert!(!state.has_news());
        assert_eq!(state.player_count(), 0);
    }

    #[test]
    fn unknown_players_and_empty_moves_change_nothing() {
        let mut state = State::default();
        state.set_positions(5, &[Position::new(1, 1)]);
        assert!(state.leave(5).is_none());
        state.join(info(1));
        state.take_log();
        state.set_positions(1, &[]);
        assert!(!state.has_news());
        assert_eq!(state.player(1).unwrap().position, None);
    }

    #[test]
    fn a_flooder_keeps_its_first_moves_and_the_latest() {
        let mut state = State::default();
        state.join(info(1));
        state.join(info(2));
        state.take_log();
        let flood: Vec<Position> = (0..1000).map(|i| Position::new(i, 0)).collect();
        state.set_positions(1, &flood[..500]);
        state.set_positions(2, &[Position::new(7, 7)]);
        state.set_positions(1, &flood[500..]);
        let log = state.take_log();
        let kept = MAX_MOVES_PER_BROADCAST as i16 - 1;
        let expected: Vec<i16> = (0..kept).chain([999]).collect();
        assert_eq!(moves(&log, 1), expected);
        assert_eq!(moves(&log, 2), vec![7]);
        // After the log is taken, a player's moves go out in full again.
        state.set_positions(1, &[Position::new(5, 5), Position::new(6, 6)]);
        assert_eq!(moves(&state.take_log(), 1), vec![5, 6]);
    }

    #[test]
    fn the_move_rate_cap_holds_a_flooder_and_its_latest_still_goes_out() {
        use super::super::move_rate::MOVE_BURST;
        use std::time::Duration;
        let mut state = State::default();
        state.set_move_rate(MoveRate::per_second(100));
        state.join(info(1));
        state.join(info(2));
        state.take_log();
        let start = Instant::now();
        let flood: Vec<Position> = (0..1000).map(|i| Position::new(i, 0)).collect();
        state.move_player(1, &flood[..500], start);
        state.move_player(2, &[Position::new(7, 7)], start);
        // The burst: its first moves, the latest of the read in place of the last.
        let burst = MOVE_BURST as i16;
        let expected: Vec<i16> = (0..burst - 1).chain([499]).collect();
        assert_eq!(moves(&state.take_log(), 1), expected);
        // Past the burst nothing is logged, but the position is the latest.
        state.move_player(1, &flood[500..], start);
        assert!(!state.has_news());
        assert_eq!(
            state.player(1).unwrap().position,
            Some(Position::new(999, 0))
        );
        assert_eq!(state.coalesced_moves(), 1000 - MOVE_BURST as u64);
        // Held until the budget has a move again (100 a second: 10 ms).
        let due = state.release_held(start).expect("held");
        assert_eq!(due, start + Duration::from_millis(10));
        assert!(!state.has_news());
        assert_eq!(state.release_held(due), None);
        assert_eq!(moves(&state.take_log(), 1), vec![999]);
        // The honest player was never held back.
        state.move_player(2, &[Position::new(8, 8)], due);
        assert_eq!(moves(&state.take_log(), 2), vec![8]);
    }

    #[test]
    fn a_held_position_is_dropped_when_a_newer_one_goes_out() {
        use std::time::Duration;
        let mut state = State::default();
        state.set_move_rate(MoveRate::per_second(100));
        state.join(info(1));
        let start = Instant::now();
        let flood: Vec<Position> = (0..40).map(|i| Position::new(i, 0)).collect();
        state.move_player(1, &flood, start);
        state.move_player(1, &[Position::new(50, 0)], start);
        state.take_log();
        let later = start + Duration::from_millis(20);
        state.move_player(1, &[Position::new(60, 0)], later);
        assert_eq!(moves(&state.take_log(), 1), vec![60]);
        assert_eq!(state.release_held(later), None, "nothing held any more");
        assert!(!state.has_news());
    }

    #[test]
    fn compaction_keeps_joins_leaves_and_each_latest_move() {
        // Many players, each below the per-broadcast cap, fill the log past
        // the compaction threshold: compaction must run and keep exactly the
        // latest move of each player, with joins and leaves in order.
        let players = 3000;
        let mut state = State::default();
        for id in 0..players {
            state.join(info(id));
        }
        state.leave(0);
        for round in 0..3 {
            for id in 1..players {
                state.set_positions(id, &[Position::new(round, id as i16)]);
            }
        }
        assert!(
            state.log_len() < (players as usize) * 3,
            "the log was compacted ({} entries)",
            state.log_len()
        );
        let log = state.take_log();
        let joins = log.iter().filter(|e| matches!(e, Event::Joined(_))).count();
        assert_eq!(joins, players as usize);
        assert!(log.contains(&Event::Left {
            id: 0,
            had_position: false
        }));
        for id in 1..players {
            let mine = moves(&log, id);
            assert_eq!(mine.last(), Some(&2), "player {id} ends at its latest move");
        }
    }

    #[test]
    fn compaction_reindexes_so_the_cap_still_replaces_the_right_entry() {
        let mut state = State::default();
        state.join(info(1));
        state.join(info(2));
        for i in 0..40 {
            state.set_positions(1, &[Position::new(i, 0)]);
            state.set_positions(2, &[Position::new(i, 1)]);
        }
        state.compact_log();
        for i in 100..200 {
            state.set_positions(1, &[Position::new(i, 0)]);
        }
        let log = state.take_log();
        assert_eq!(moves(&log, 1).last(), Some(&199));
        assert_eq!(moves(&log, 2), vec![39]);
    }

    #[test]
    fn reserved_position_is_stored_one_step_inside() {
        let mut state = State::default();
        state.join(info(1));
        state.set_positions(1, &[Position::new(i16::MIN, i16::MIN)]);
        assert_eq!(
            state.player(1).unwrap().position,
            Some(Position::new(-32767, -32767))
        );
    }

    fn cell(x: i16, y: i16) -> Option<Cell> {
        Some(Cell::of(Position::new(x, y)))
    }

    #[test]
    fn taking_the_log_indexes_latest_cells_and_reports_each_crossing_once() {
        let mut state = State::default();
        state.join(info(1));
        state.join(info(2));
        state.join(info(3));
        state.set_positions(1, &[Position::new(1000, 1000), Position::new(10, 10)]);
        state.set_positions(2, &[Position::new(500, 500)]);
        state.take_log();
        // A join's first position is a crossing from no cell; intermediate
        // positions in the same batch are not; a player without a position
        // is in no cell.
        assert_eq!(
            state.crossings(),
            &[
                Crossing {
                    id: 1,
                    from: None,
                    to: cell(10, 10)
                },
                Crossing {
                    id: 2,
                    from: None,
                    to: cell(500, 500)
                },
            ]
        );
        assert_eq!(state.player(3).unwrap().cell(), None);
        let near = Region::around(Position::new(0, 0), 50).unwrap();
        let ids = |state: &State| {
            let mut ids: Vec<_> = state.players_in_region(&near).map(|p| p.info.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&state), vec![1]);

        // Moving inside a cell is no crossing; moving out is; leaving is.
        state.set_positions(1, &[Position::new(20, 20)]);
        state.set_positions(2, &[Position::new(30, 30)]);
        state.take_log();
        assert_eq!(
            state.crossings(),
            &[Crossing {
                id: 2,
                from: cell(500, 500),
                to: cell(30, 30)
            }]
        );
        assert_eq!(ids(&state), vec![1, 2]);
        state.leave(1);
        state.set_positions(2, &[Position::new(2000, 0)]);
        state.take_log();
        assert_eq!(
            state.crossings(),
            &[
                Crossing {
                    id: 1,
                    from: cell(20, 20),
                    to: None
                },
                Crossing {
                    id: 2,
                    from: cell(30, 30),
                    to: cell(2000, 0)
                },
            ]
        );
        assert_eq!(ids(&state), Vec::<ClientId>::new());
        // Nothing happened: no crossings.
        state.take_log();
        assert!(state.crossings().is_empty());
    }

    #[test]
    fn a_player_that_comes_and_goes_between_two_takes_never_enters_the_grid() {
        let mut state = State::default();
        state.join(info(1));
        state.set_positions(1, &[Position::new(5, 5)]);
        state.leave(1);
        state.take_log();
        assert!(state.crossings().is_empty());
        let everywhere = Region::around(Position::new(0, 0), 1000).unwrap();
        assert_eq!(state.players_in_region(&everywhere).count(), 0);
    }

    #[test]
    fn remote_events_apply_like_local_ones() {
        let mut state = State::default();
        state.apply(&Event::Joined(info(9)));
        state.apply(&Event::Moved(9, Position::new(3, 4)));
        assert_eq!(state.player(9).unwrap().position, Some(Position::new(3, 4)));
        state.apply(&Event::Left {
            id: 9,
            had_position: true,
        });
        assert_eq!(state.player_count(), 0);
        assert_eq!(state.take_log().len(), 3);
    }
}
