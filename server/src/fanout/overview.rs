//! The overview (protocol 3): what a client with an area of interest is
//! told about the whole world at a low rate, so that its minimap and its
//! edge indicators still show everyone, and the roster frames that keep its
//! player list whole.
//!
//! An overview is encoded once per tick from the [`State`] and the same
//! bytes are queued for every subscriber that gets it: its cost is one pass
//! over the players plus one queue push per subscriber, never an encoding
//! per subscriber.

use bytes::BytesMut;
use shared::legacy::Position;
use shared::native::{
    DensityGrid, Overview, PlayerInfo, PlayerPosition, ServerMessage, push_frame,
};

use super::Encoded;
use crate::world::state::{Event, State};

/// Default time between two overviews, milliseconds (`--overview-interval-ms`).
pub const DEFAULT_OVERVIEW_INTERVAL_MS: u64 = 1000;
/// Default most players an overview lists one by one
/// (`--overview-max-players`): about 9 bytes each, so at most about 9 KB a
/// second per client.
pub const DEFAULT_OVERVIEW_MAX_PLAYERS: usize = 1000;
/// A density grid has at most this many cells on a side (plus one when the
/// players' extent does not fall on the grid's lines): at most about 1,100
/// counts, about 1 KB a second per client.
pub const DENSITY_GRID_SIDE: i32 = 32;
/// Smallest side of a density cell, world units (the area of interest's
/// own cell: a finer grid would say where players are more exactly than
/// the overview means to).
pub const MIN_DENSITY_CELL: i32 = shared::native::CELL_SIZE;

/// The overview of `state`: every player with a position when the world has
/// at most `max_players` players, else the density grid of their positions.
pub fn encode_overview(state: &State, max_players: usize) -> Encoded {
    let positions = state.players().filter_map(|p| {
        p.position.map(|position| PlayerPosition {
            id: p.info.id,
            position,
        })
    });
    let overview = if state.player_count() <= max_players {
        Overview::Players(positions.collect())
    } else {
        let positions: Vec<Position> = positions.map(|p| p.position).collect();
        Overview::Density(density_grid(&positions))
    };
    let mut out = BytesMut::new();
    push_frame(&ServerMessage::Overview(overview), &mut out);
    Encoded {
        bytes: out.freeze(),
        messages: 1,
    }
}

/// Players per coarse cell over the extent of `positions`: square cells of
/// a multiple of [`MIN_DENSITY_CELL`] units, at most [`DENSITY_GRID_SIDE`]
/// (+1) a side, aligned on multiples of their size so that the grid stays
/// put from one overview to the next while the players move inside it.
pub fn density_grid(positions: &[Position]) -> DensityGrid {
    let mut bounds: Option<(i32, i32, i32, i32)> = None;
    for p in positions {
        let (x, y) = (i32::from(p.x), i32::from(p.y));
        bounds = Some(match bounds {
            None => (x, y, x, y),
            Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
        });
    }
    let Some((x0, y0, x1, y1)) = bounds else {
        return DensityGrid {
            origin: Position::new(0, 0),
            cell_size: MIN_DENSITY_CELL as u16,
            columns: 0,
            counts: Vec::new(),
        };
    };
    let span = (x1 - x0).max(y1 - y0) + 1;
    let cells_of_min =
        (span + MIN_DENSITY_CELL * DENSITY_GRID_SIDE - 1) / (MIN_DENSITY_CELL * DENSITY_GRID_SIDE);
    // The i16 plane is 65,536 units: at most 2,048 units a cell.
    let cell = MIN_DENSITY_CELL * cells_of_min.max(1);
    let origin_x = x0.div_euclid(cell) * cell;
    let origin_y = y0.div_euclid(cell) * cell;
    let columns = (x1 - origin_x) / cell + 1;
    let rows = (y1 - origin_y) / cell + 1;
    let mut counts = vec![0u32; (columns * rows) as usize];
    for p in positions {
        let column = (i32::from(p.x) - origin_x) / cell;
        let row = (i32::from(p.y) - origin_y) / cell;
        let at = (row * columns + column) as usize;
        counts[at] = counts[at].saturating_add(1);
    }
    // The origin is a multiple of the cell at or below an i16: it may fall
    // one cell below i16::MIN, so it is clamped, and the first cell then
    // starts at i16::MIN (nothing lies below it anyway).
    let clamp = |v: i32| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    DensityGrid {
        origin: Position::new(clamp(origin_x), clamp(origin_y)),
        cell_size: cell as u16,
        columns: columns as u16,
        counts,
    }
}

/// The roster frames of one broadcast: a `RosterJoined` for every join and
/// a `RosterLeft` for every leave, in order; empty when there is neither.
pub fn encode_roster_changes(events: &[Event]) -> Encoded {
    let mut out = BytesMut::new();
    let mut messages = 0;
    for event in events {
        let message = match event {
            Event::Joined(info) => ServerMessage::RosterJoined(info.clone()),
            Event::Left { id, .. } => ServerMessage::RosterLeft { id: *id },
            Event::Moved(..) => continue,
        };
        push_frame(&message, &mut out);
        messages += 1;
    }
    Encoded {
        bytes: out.freeze(),
        messages,
    }
}

/// One `Roster` frame of every player in the world.
pub fn encode_roster(state: &State) -> Encoded {
    let players: Vec<PlayerInfo> = state.players().map(|p| p.info.clone()).collect();
    let mut out = BytesMut::new();
    push_frame(&ServerMessage::Roster(players), &mut out);
    Encoded {
        bytes: out.freeze(),
        messages: 1,
    }
}

#[cfg(test)]
mod tests {
    use shared::native::PlayerKind;

    use super::*;

    fn decode(encoded: &Encoded) -> Vec<ServerMessage> {
        crate::fanout::decode_frames(&encoded.bytes)
    }

    fn world(positions: &[(i16, i16)]) -> State {
        let mut state = State::default();
        for (id, &(x, y)) in (1..).zip(positions) {
            state.join(crate::world::info(id));
            state.set_positions(id, &[Position::new(x, y)]);
        }
        state.join(crate::world::info(999)); // no position yet
        state.take_log();
        state
    }

    #[test]
    fn a_small_world_is_listed_player_by_player() {
        let state = world(&[(0, 0), (3000, 3000)]);
        let got = decode(&encode_overview(&state, 3));
        let [ServerMessage::Overview(Overview::Players(players))] = &got[..] else {
            panic!("expected a list, got {got:?}");
        };
        let mut players: Vec<_> = players
            .iter()
            .map(|p| (p.id, p.position.x, p.position.y))
            .collect();
        players.sort_unstable();
        assert_eq!(players, vec![(1, 0, 0), (2, 3000, 3000)]);
    }

    #[test]
    fn past_the_limit_the_world_is_a_density_grid() {
        let state = world(&[(0, 0), (10, 10), (3000, 3000), (-100, 50)]);
        let got = decode(&encode_overview(&state, 4));
        let [ServerMessage::Overview(Overview::Density(grid))] = &got[..] else {
            panic!("expected a grid, got {got:?}");
        };
        assert_eq!(
            grid.counts.iter().sum::<u32>(),
            4,
            "every positioned player"
        );
        // Extent 3,101 units: 128-unit cells (two of the minimum), aligned.
        assert_eq!(grid.cell_size, 128);
        assert_eq!(grid.origin, Position::new(-128, 0));
        let cell_of = |x: i32, y: i32| {
            let c = (x - i32::from(grid.origin.x)) / 128;
            let r = (y - i32::from(grid.origin.y)) / 128;
            grid.count(c as usize, r as usize).unwrap()
        };
        assert_eq!(cell_of(0, 0), 2);
        assert_eq!(cell_of(3000, 3000), 1);
        assert_eq!(cell_of(-100, 50), 1);
        assert!(usize::from(grid.columns) <= DENSITY_GRID_SIDE as usize + 1);
        assert!(grid.rows() <= DENSITY_GRID_SIDE as usize + 1);
    }

    #[test]
    fn the_grid_covers_the_whole_plane_without_overflow() {
        let corners = [
            Position::new(i16::MIN, i16::MIN),
            Position::new(i16::MAX, i16::MAX),
            Position::new(i16::MIN, i16::MAX),
        ];
        let grid = density_grid(&corners);
        assert_eq!(grid.cell_size, 2048);
        assert_eq!((grid.columns, grid.rows()), (32, 32));
        assert_eq!(grid.counts.iter().sum::<u32>(), 3);
        assert_eq!(grid.count(0, 31), Some(1));
        let empty = density_grid(&[]);
        assert_eq!(empty.rows(), 0);
    }

    #[test]
    fn roster_changes_are_joins_and_leaves_in_order() {
        let info = |id| PlayerInfo {
            id,
            name: format!("p{id}"),
            kind: PlayerKind::Legacy,
        };
        let events = [
            Event::Joined(info(1)),
            Event::Moved(1, Position::new(1, 1)),
            Event::Left {
                id: 2,
                had_position: false,
            },
        ];
        assert_eq!(
            decode(&encode_roster_changes(&events)),
            vec![
                ServerMessage::RosterJoined(info(1)),
                ServerMessage::RosterLeft { id: 2 }
            ]
        );
        assert!(encode_roster_changes(&events[1..2]).bytes.is_empty());
    }
}
