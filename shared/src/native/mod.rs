//! The native protocol between the server and our own game client.
//!
//! Frames are a `u32` little-endian payload length followed by a bincode 2
//! payload (serde, `bincode::config::standard()`):
//!
//! ```text
//! +-- len: u32 LE --+-- payload: len bytes (bincode) --+
//! ```
//!
//! A session starts with [`ClientMessage::Hello`]; the server answers
//! [`ServerMessage::Welcome`] or [`ServerMessage::Rejected`]. `Hello` is the
//! first variant of [`ClientMessage`] and keeps its fields in every protocol
//! version, so a server can always read it and reject a version it does not
//! speak with a clear reason instead of a decode error.

mod codec;
mod messages;

pub use codec::{
    FrameCodec, FrameError, POSITIONS_FRAME_OVERHEAD, encode_frame, encode_position_entries,
    encode_positions_frame, frame, payload, push_frame,
};
pub use messages::*;

/// The protocol version this build speaks. Version 2 added
/// [`ClientMessage::View`] (area of interest). Version 3 added the roster
/// messages ([`ServerMessage::Roster`], [`ServerMessage::RosterJoined`],
/// [`ServerMessage::RosterLeft`]) and [`ServerMessage::Overview`]; the server
/// sends them only to clients whose `Hello` announced version 3 or later.
pub const PROTOCOL_VERSION: u32 = 3;

/// The first protocol version that knows the roster and overview messages.
pub const OVERVIEW_PROTOCOL_VERSION: u32 = 3;

/// The oldest protocol version a server of this build still serves.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// Default largest payload accepted in one frame. Every message we send is far
/// smaller except a [`ServerMessage::Snapshot`] of a very full world
/// (about 20 bytes a player), so 1 MiB holds tens of thousands of players.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1024 * 1024;

/// Side of a grid cell of the server's area of interest, in world units. A
/// [`ClientMessage::View`] is widened to whole cells, so this is also the
/// largest margin a view gets on each side.
pub const CELL_SIZE: i32 = 64;

/// The most cells a [`ClientMessage::View`] may cover (32 × 32 cells, 2,048
/// units square); a larger view is served as the whole world.
pub const MAX_VIEW_CELLS: u32 = 1024;

/// The largest `half_extent` a [`ClientMessage::View`] may have and always
/// stay within [`MAX_VIEW_CELLS`], wherever its centre: a square view of
/// `2 × h` units touches at most `2h / CELL_SIZE + 1` cells a side.
pub const MAX_VIEW_HALF_EXTENT: u16 = ((MAX_VIEW_CELLS.isqrt() as i32 - 1) * CELL_SIZE / 2) as u16;

/// Longest player name accepted in a `Hello`, in bytes.
pub const MAX_NAME_LEN: usize = 32;
