//! The native format: bincode frames. Consecutive moves go out as one
//! `Positions` frame; joins and leaves as their own frames, in order.
//!
//! Native clients with an area of interest get the same frames cut by grid
//! cell instead ([`CellNews`]): each cell's moves encoded once, shared by
//! every client whose view covers the cell, and joined into one
//! `Positions` frame per client and broadcast.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use shared::ClientId;
use shared::native::{
    POSITIONS_FRAME_OVERHEAD, PlayerPosition, ServerMessage, encode_position_entries,
    encode_positions_frame, frame, push_frame,
};

use super::{Encoded, WireFormat};
use crate::world::grid::{Cell, CellMap, Region};
use crate::world::state::{Event, Player, State};
use crate::world::sums::SumTable;

/// Native protocol frames.
#[derive(Debug)]
pub struct NativeFrames;

/// The one instance subscribers name.
pub static NATIVE_FRAMES: NativeFrames = NativeFrames;

impl WireFormat for NativeFrames {
    fn name(&self) -> &'static str {
        "native"
    }

    fn encode_batch(&self, events: &[Event]) -> Encoded {
        let mut out = BytesMut::new();
        let mut messages = 0;
        let mut moves = Vec::new();
        for event in events {
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
            messages += flush_moves(&mut moves, &mut out);
            push_frame(&message, &mut out);
            messages += 1;
        }
        messages += flush_moves(&mut moves, &mut out);
        Encoded {
            bytes: out.freeze(),
            messages,
        }
    }

    /// One `Snapshot` frame of every player. Owed leaves need no message:
    /// the snapshot replaces the client's whole view.
    fn encode_snapshot(&self, state: &State, _owed_leaves: &[ClientId]) -> Encoded {
        let players = state.players().map(Player::to_state).collect();
        let mut out = BytesMut::new();
        push_frame(&ServerMessage::Snapshot { players }, &mut out);
        Encoded {
            bytes: out.freeze(),
            messages: 1,
        }
    }
}

/// A player entering or leaving some views: the frame to send each side.
#[derive(Debug)]
struct CrossingFrames {
    from: Option<Cell>,
    to: Option<Cell>,
    /// `PlayerLeft`, for views that had the player and lose it.
    left: Bytes,
    /// `PlayerJoined`, for views that gain it (`None` if it went nowhere).
    joined: Option<Bytes>,
}

impl CrossingFrames {
    /// The most this crossing adds to one view's delivery.
    fn max_len(&self) -> usize {
        self.left
            .len()
            .max(self.joined.as_ref().map_or(0, Bytes::len))
    }
}

/// What happened in one grid cell during one broadcast.
#[derive(Debug)]
struct CellEntry {
    cell: Cell,
    /// The moves of the players now in this cell, encoded once as pieces
    /// of a `Positions` frame ([`encode_position_entries`]), and how many.
    moves: Bytes,
    move_count: usize,
    /// Crossings into or out of this cell (indices into `crossings`).
    crossings: Vec<usize>,
}

/// One broadcast cut by grid cell, for native clients with a view. Built
/// once per broadcast, in time proportional to the broadcast's events (and
/// to the rectangle the news covers, at most [`SUM_TABLE_CELLS_PER_ENTRY`](crate::world::sums::SUM_TABLE_CELLS_PER_ENTRY)
/// cells per cell with news).
///
/// The cells with news are kept sorted row by row, so the part of a region
/// is one slice per row of the region, found by binary search: what a view
/// costs follows its rows and the news it gets, not the size of the world.
/// Queueing a view's part costs only its size ([`CellNews::size_for`]),
/// four reads of a table of sums; the bytes are put together by the view's
/// own connection ([`CellNews::for_region`]), out of the world's lock.
#[derive(Debug, Default)]
pub struct CellNews {
    /// Sorted by (row, col).
    entries: Vec<CellEntry>,
    /// `bytes_before[i]`: the most a view can get from `entries[..i]`.
    bytes_before: Vec<usize>,
    crossings: Vec<CrossingFrames>,
    sums: Option<SumTable>,
}

impl CellNews {
    /// Cuts `events` (just taken from `state`, whose grid and crossings
    /// are up to date) by the cell each moving player is in now.
    pub fn build(events: &[Event], state: &State) -> CellNews {
        let mut moves: CellMap<Vec<PlayerPosition>> = CellMap::default();
        for event in events {
            if let Event::Moved(id, position) = *event
                && let Some(cell) = state.player(id).and_then(|p| p.cell())
            {
                moves
                    .entry(cell)
                    .or_default()
                    .push(PlayerPosition { id, position });
            }
        }
        let mut cells: CellMap<CellEntry> = moves
            .into_iter()
            .map(|(cell, moves)| {
                let mut bytes = BytesMut::new();
                if let Err(err) = encode_position_entries(&moves, &mut bytes) {
                    tracing::error!(cause = %err, "could not encode a cell's moves");
                }
                let entry = CellEntry {
                    cell,
                    moves: bytes.freeze(),
                    move_count: moves.len(),
                    crossings: Vec::new(),
                };
                (cell, entry)
            })
            .collect();
        let mut crossings = Vec::with_capacity(state.crossings().len());
        for crossing in state.crossings() {
            let index = crossings.len();
            let joined = crossing
                .to
                .and(state.player(crossing.id))
                .map(|p| frame(&ServerMessage::PlayerJoined(p.info.clone())));
            crossings.push(CrossingFrames {
                from: crossing.from,
                to: crossing.to,
                left: frame(&ServerMessage::PlayerLeft { id: crossing.id }),
                joined,
            });
            for cell in [crossing.from, crossing.to].into_iter().flatten() {
                cells
                    .entry(cell)
                    .or_insert_with(|| CellEntry {
                        cell,
                        moves: Bytes::new(),
                        move_count: 0,
                        crossings: Vec::new(),
                    })
                    .crossings
                    .push(index);
            }
        }
        let mut entries: Vec<CellEntry> = cells.into_values().collect();
        entries.sort_unstable_by_key(|entry| (entry.cell.row, entry.cell.col));
        let mut bytes_before = Vec::with_capacity(entries.len() + 1);
        let mut total = 0;
        bytes_before.push(total);
        for entry in &entries {
            total += entry.moves.len();
            total += entry
                .crossings
                .iter()
                .map(|&i| crossings[i].max_len())
                .sum::<usize>();
            bytes_before.push(total);
        }
        let sums = SumTable::build(
            entries.len(),
            |i| entries[i].cell,
            |i| bytes_before[i + 1] - bytes_before[i],
        );
        CellNews {
            entries,
            bytes_before,
            crossings,
            sums,
        }
    }

    /// The entries of each row of `region`, in order: one slice per row.
    fn rows<'a>(&'a self, region: &'a Region) -> impl Iterator<Item = Range<usize>> + 'a {
        let (min, max) = region.bounds();
        (min.row..=max.row).filter_map(move |row| {
            let key = |entry: &CellEntry| (entry.cell.row, entry.cell.col);
            let start = self.entries.partition_point(|e| key(e) < (row, min.col));
            let end = start + self.entries[start..].partition_point(|e| key(e) <= (row, max.col));
            (start < end).then_some(start..end)
        })
    }

    /// The most [`CellNews::for_region`] gives `region`; 0 when it gets
    /// nothing. Four reads of the table of sums, or, without one, two
    /// binary searches per row of the region.
    pub fn size_for(&self, region: &Region) -> usize {
        let bytes: usize = match &self.sums {
            Some(sums) => sums.sum(region),
            None => self
                .rows(region)
                .map(|rows| self.bytes_before[rows.end] - self.bytes_before[rows.start])
                .sum(),
        };
        if bytes == 0 {
            0
        } else {
            bytes + POSITIONS_FRAME_OVERHEAD
        }
    }

    /// What a client viewing `region` is sent for this broadcast: a
    /// `PlayerLeft` for each player that left the region, a `PlayerJoined`
    /// for each that entered it, then one `Positions` frame of the moves
    /// of every cell of the region, row by row. Each cell's moves were
    /// encoded once, in [`CellNews::build`]; here they are only copied.
    pub fn for_region(&self, region: &Region) -> Encoded {
        let entries: Vec<&CellEntry> = match &self.sums {
            Some(sums) => sums.entries_in(region).map(|i| &self.entries[i]).collect(),
            None => self
                .rows(region)
                .flat_map(|rows| &self.entries[rows])
                .collect(),
        };
        let mut out = BytesMut::with_capacity(self.size_for(region));
        let mut messages = 0;
        let mut move_count = 0;
        for &entry in &entries {
            move_count += entry.move_count;
            for crossing in entry.crossings.iter().map(|&i| &self.crossings[i]) {
                let frame = if crossing.from == Some(entry.cell) && !region.sees(crossing.to) {
                    Some(&crossing.left)
                } else if crossing.to == Some(entry.cell) && !region.sees(crossing.from) {
                    crossing.joined.as_ref()
                } else {
                    None
                };
                if let Some(frame) = frame {
                    out.extend_from_slice(frame);
                    messages += 1;
                }
            }
        }
        if move_count > 0 {
            let pieces = entries.iter().map(|entry| &entry.moves[..]);
            if let Err(err) = encode_positions_frame(move_count, pieces, &mut out) {
                tracing::error!(cause = %err, "could not encode a view's moves");
            }
            messages += 1;
        }
        Encoded {
            bytes: out.freeze(),
            messages,
        }
    }
}

/// One `Snapshot` frame of the players seen by `region`: it replaces the
/// client's whole view, so players outside the region are dropped by it.
pub fn encode_region_snapshot(state: &State, region: &Region) -> Encoded {
    let players = state
        .players_in_region(region)
        .map(Player::to_state)
        .collect();
    Encoded {
        bytes: frame(&ServerMessage::Snapshot { players }),
        messages: 1,
    }
}

fn flush_moves(moves: &mut Vec<PlayerPosition>, out: &mut BytesMut) -> u64 {
    if moves.is_empty() {
        return 0;
    }
    push_frame(&ServerMessage::Positions(std::mem::take(moves)), out);
    1
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use shared::legacy::Position;
    use shared::native::{PlayerInfo, PlayerKind};

    use super::*;

    fn decode(bytes: &Bytes) -> Vec<ServerMessage> {
        crate::fanout::decode_frames(bytes)
    }

    /// What `region` should get, worked out player by player: leaves and
    /// joins of the crossings, then every move whose player is now in the
    /// region, row by row and in log order within a cell.
    fn expected(events: &[Event], state: &State, region: &Region) -> Vec<ServerMessage> {
        let mut messages = Vec::new();
        let mut crossings: Vec<(Cell, usize, ServerMessage)> = Vec::new();
        for (order, c) in state.crossings().iter().enumerate() {
            if let Some(from) = c.from.filter(|&f| region.contains(f) && !region.sees(c.to)) {
                crossings.push((from, order, ServerMessage::PlayerLeft { id: c.id }));
            }
            if let Some(to) = c.to.filter(|&t| region.contains(t) && !region.sees(c.from)) {
                let info = state.player(c.id).unwrap().info.clone();
                crossings.push((to, order, ServerMessage::PlayerJoined(info)));
            }
        }
        crossings.sort_by_key(|(cell, order, _)| (cell.row, cell.col, *order));
        messages.extend(crossings.into_iter().map(|(_, _, m)| m));
        let mut moves: Vec<(Cell, usize, PlayerPosition)> = events
            .iter()
            .enumerate()
            .filter_map(|(order, event)| match *event {
                Event::Moved(id, position) => {
                    let cell = state.player(id)?.cell()?;
                    region
                        .contains(cell)
                        .then_some((cell, order, PlayerPosition { id, position }))
                }
                _ => None,
            })
            .collect();
        moves.sort_by_key(|(cell, order, _)| (cell.row, cell.col, *order));
        if !moves.is_empty() {
            messages.push(ServerMessage::Positions(
                moves.into_iter().map(|(_, _, m)| m).collect(),
            ));
        }
        messages
    }

    fn size_by_rows(news: &CellNews, region: &Region) -> usize {
        let bytes: usize = news
            .rows(region)
            .map(|rows| news.bytes_before[rows.end] - news.bytes_before[rows.start])
            .sum();
        if bytes == 0 {
            0
        } else {
            bytes + POSITIONS_FRAME_OVERHEAD
        }
    }

    #[test]
    fn players_far_apart_are_sized_without_a_table() {
        let mut state = State::default();
        let corners = [(-32000, -32000), (32000, 32000), (-32000, 32000), (5, 5)];
        for (id, (x, y)) in (1..).zip(corners) {
            state.join(PlayerInfo {
                id,
                name: format!("p{id}"),
                kind: PlayerKind::Native,
            });
            state.set_positions(id, &[Position::new(x, y)]);
        }
        let events = state.take_log();
        let news = CellNews::build(&events, &state);
        assert!(news.sums.is_none(), "a table of a million cells for four");
        for (x, y) in corners {
            let region = Region::around(Position::new(x, y), 100).unwrap();
            let got = news.for_region(&region);
            assert_eq!(decode(&got.bytes).len(), 2, "joined, then the move");
            assert!(got.bytes.len() <= news.size_for(&region));
        }
        let empty = Region::around(Position::new(1000, 1000), 100).unwrap();
        assert_eq!(news.size_for(&empty), 0);
    }

    #[test]
    fn a_region_gets_its_crossings_then_one_positions_frame_of_its_cells() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut state = State::default();
        let spot = |rng: &mut StdRng| {
            Position::new(rng.random_range(-300..300), rng.random_range(-300..300))
        };
        for id in 1..=200 {
            state.join(PlayerInfo {
                id,
                name: format!("p{id}"),
                kind: PlayerKind::Native,
            });
            state.set_positions(id, &[spot(&mut rng)]);
        }
        state.take_log();
        for _round in 0..5 {
            for id in 1..=200 {
                match rng.random_range(0..10) {
                    0 => {
                        state.leave(id);
                    }
                    1..=5 => state.set_positions(id, &[spot(&mut rng), spot(&mut rng)]),
                    _ => {}
                }
            }
            let events = state.take_log();
            let news = CellNews::build(&events, &state);
            for _ in 0..200 {
                let center = spot(&mut rng);
                let region = Region::around(center, rng.random_range(1..200)).unwrap();
                let got = news.for_region(&region);
                let want = expected(&events, &state, &region);
                assert_eq!(decode(&got.bytes), want, "region {region:?}");
                assert_eq!(got.messages, want.len() as u64);
                let size = news.size_for(&region);
                assert!(news.sums.is_some(), "players close together: a table");
                assert_eq!(
                    size,
                    size_by_rows(&news, &region),
                    "table and searches agree"
                );
                assert!(got.bytes.len() <= size, "{} > {size}", got.bytes.len());
                assert_eq!(
                    size == 0,
                    got.bytes.is_empty(),
                    "nothing queued for nothing"
                );
            }
            for id in 1..=200 {
                if state.player(id).is_none() {
                    state.join(PlayerInfo {
                        id,
                        name: format!("p{id}"),
                        kind: PlayerKind::Native,
                    });
                }
            }
        }
    }
}
