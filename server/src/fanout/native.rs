//! The native format: bincode frames. Consecutive moves go out as one
//! `Positions` frame; joins and leaves as their own frames, in order.
//!
//! Native clients with an area of interest get the same frames cut by grid
//! cell instead ([`CellNews`]): each cell's moves encoded once, shared by
//! every client whose view covers the cell.

use bytes::{Bytes, BytesMut};
use shared::ClientId;
use shared::native::{PlayerPosition, PlayerState, ServerMessage, encode_frame};

use super::{Encoded, WireFormat};
use crate::world::{Cell, CellMap, Event, Region, State};

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
        let players = state
            .players()
            .map(|p| PlayerState {
                info: p.info.clone(),
                position: p.position,
            })
            .collect();
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

/// What happened in one grid cell during one broadcast.
#[derive(Debug, Default)]
struct CellEntry {
    /// One `Positions` frame: the moves of the players now in this cell.
    moves: Option<Bytes>,
    /// Crossings into or out of this cell (indices into `crossings`).
    crossings: Vec<usize>,
}

/// One broadcast cut by grid cell, for native clients with a view. Built
/// once per broadcast, in time proportional to the broadcast's events;
/// each view then reads only the cells it covers.
#[derive(Debug, Default)]
pub struct CellNews {
    cells: CellMap<CellEntry>,
    crossings: Vec<CrossingFrames>,
}

impl CellNews {
    /// Cuts `events` (just taken from `state`, whose grid and crossings
    /// are up to date) by the cell each moving player is in now.
    pub fn build(events: &[Event], state: &State) -> CellNews {
        let mut news = CellNews::default();
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
        for (cell, moves) in moves {
            news.cells.entry(cell).or_default().moves =
                Some(frame_bytes(&ServerMessage::Positions(moves)));
        }
        for crossing in state.crossings() {
            let index = news.crossings.len();
            let joined = crossing
                .to
                .and(state.player(crossing.id))
                .map(|p| frame_bytes(&ServerMessage::PlayerJoined(p.info.clone())));
            news.crossings.push(CrossingFrames {
                from: crossing.from,
                to: crossing.to,
                left: frame_bytes(&ServerMessage::PlayerLeft { id: crossing.id }),
                joined,
            });
            for cell in [crossing.from, crossing.to].into_iter().flatten() {
                news.cells.entry(cell).or_default().crossings.push(index);
            }
        }
        news
    }

    /// What a client viewing `region` is sent for this broadcast: a
    /// `PlayerLeft` for each player that left the region, a `PlayerJoined`
    /// for each that entered it, then the moves of every cell of the region.
    /// Looks at whichever is fewer: the region's cells or the cells with
    /// news.
    pub fn for_region(&self, region: &Region) -> Encoded {
        // Row by row either way: the same cells in the same order for every
        // viewer of them.
        let entries: Vec<(Cell, &CellEntry)> = if region.cell_count() as usize <= self.cells.len() {
            region
                .cells()
                .filter_map(|cell| self.cells.get(&cell).map(|entry| (cell, entry)))
                .collect()
        } else {
            let mut entries: Vec<_> = self
                .cells
                .iter()
                .filter(|(cell, _)| region.contains(**cell))
                .map(|(cell, entry)| (*cell, entry))
                .collect();
            entries.sort_unstable_by_key(|(cell, _)| (cell.row, cell.col));
            entries
        };
        let mut out = BytesMut::new();
        let mut messages = 0;
        for (cell, entry) in &entries {
            for crossing in entry.crossings.iter().map(|&i| &self.crossings[i]) {
                let frame = if crossing.from == Some(*cell) && !region.sees(crossing.to) {
                    Some(&crossing.left)
                } else if crossing.to == Some(*cell) && !region.sees(crossing.from) {
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
        for (_, entry) in &entries {
            if let Some(moves) = &entry.moves {
                out.extend_from_slice(moves);
                messages += 1;
            }
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
        .map(|p| PlayerState {
            info: p.info.clone(),
            position: p.position,
        })
        .collect();
    Encoded {
        bytes: frame_bytes(&ServerMessage::Snapshot { players }),
        messages: 1,
    }
}

fn frame_bytes(message: &ServerMessage) -> Bytes {
    let mut out = BytesMut::new();
    push_frame(message, &mut out);
    out.freeze()
}

fn flush_moves(moves: &mut Vec<PlayerPosition>, out: &mut BytesMut) -> u64 {
    if moves.is_empty() {
        return 0;
    }
    push_frame(&ServerMessage::Positions(std::mem::take(moves)), out);
    1
}

/// Appends one frame of ours.
pub fn push_frame(message: &ServerMessage, out: &mut BytesMut) {
    // Encoding our own message types into memory cannot fail.
    if let Err(err) = encode_frame(message, out) {
        tracing::error!(cause = %err, "could not encode a broadcast frame");
    }
}
