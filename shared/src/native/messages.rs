use serde::{Deserialize, Serialize};

use crate::ClientId;
use crate::legacy::Position;
use crate::math::{MathOp, MathStatus};

/// What a native client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// First frame of a session. Must stay variant 0 with these fields.
    Hello { protocol_version: u32, name: String },
    /// Where I am now (latest wins).
    MyPosition(Position),
    /// A math query; answered by [`ServerMessage::MathAnswer`] with the same id.
    MathQuery {
        request_id: u32,
        op: MathOp,
        a: i16,
        b: i16,
    },
    /// Asks for a [`ServerMessage::Pong`] with the same nonce (RTT).
    Ping { nonce: u64 },
    /// Answers a server [`ServerMessage::Ping`] (keeps the session alive).
    Pong { nonce: u64 },
    /// I am leaving; the server closes the session.
    Bye,
    /// Area of interest (protocol version 2): from now on, send me only the
    /// players within `half_extent` of `center` on both axes (plus a margin),
    /// a snapshot of that region whenever the view moves, and a
    /// [`ServerMessage::PlayerLeft`] for each player that drops out of it.
    /// A `half_extent` of 0 means "the whole world" again. Version-1 clients
    /// never send it and get the full broadcast, as before.
    View { center: Position, half_extent: u16 },
}

/// What the server sends to a native client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The handshake succeeded; `id` is this client's id in the shared space.
    Welcome {
        id: ClientId,
        protocol_version: u32,
        server: String,
    },
    /// The handshake failed; the server closes the connection after this.
    Rejected {
        reason: RejectReason,
        server_protocol_version: u32,
    },
    /// Every player in the world now. Sent once after `Welcome`, and again
    /// whenever the server had to coalesce this client's backlog: it replaces
    /// the client's whole view (players missing from it are gone).
    Snapshot {
        players: Vec<PlayerState>,
    },
    PlayerJoined(PlayerInfo),
    PlayerLeft {
        id: ClientId,
    },
    /// Latest positions, in the order they were received by the server.
    Positions(Vec<PlayerPosition>),
    MathAnswer {
        request_id: u32,
        status: MathStatus,
        value: f64,
    },
    /// Keep-alive: the client answers with [`ClientMessage::Pong`].
    Ping {
        nonce: u64,
    },
    /// Answer to a client [`ClientMessage::Ping`].
    Pong {
        nonce: u64,
    },
    /// The server is closing this session (shutdown, idle, ...).
    Goodbye {
        reason: String,
    },
    /// (Version 3) Every player connected now, wherever it is: replaces the
    /// client's roster. Sent to a version-3 client before its first
    /// snapshot and after it fell behind. The roster is separate from the
    /// view: `Snapshot`, `PlayerJoined` and `PlayerLeft` still say who is in
    /// the view (the whole world without a `View`).
    Roster(Vec<PlayerInfo>),
    /// (Version 3) A player connected, wherever it is.
    RosterJoined(PlayerInfo),
    /// (Version 3) A player disconnected, wherever it was.
    RosterLeft {
        id: ClientId,
    },
    /// (Version 3) The low-rate picture of the whole world sent to a
    /// client with a `View` (about once a second): see [`Overview`].
    Overview(Overview),
}

/// What a version-3 client with an area of interest is told about the whole
/// world, at a low rate, so it can still draw everyone on a minimap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Overview {
    /// Every player that has a position (a world of up to the server's
    /// `--overview-max-players`).
    Players(Vec<PlayerPosition>),
    /// A bigger world: how many players stand in each coarse cell.
    Density(DensityGrid),
}

/// Players per coarse cell, row by row from `origin` (the lowest x and y
/// of cell `(0, 0)`); rows go up in y, columns in x. A cell covers
/// `cell_size` units on each axis: cell `(c, r)` holds the players with
/// `origin.x + c * cell_size <= x < origin.x + (c + 1) * cell_size`, and the
/// same for y with `r`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DensityGrid {
    pub origin: Position,
    pub cell_size: u16,
    pub columns: u16,
    /// `columns` counts per row; `counts.len() / columns` rows.
    pub counts: Vec<u32>,
}

impl DensityGrid {
    /// Rows of the grid (0 when it has no columns).
    pub fn rows(&self) -> usize {
        match self.columns {
            0 => 0,
            columns => self.counts.len() / usize::from(columns),
        }
    }

    /// The count of cell `(column, row)`, if the grid has it.
    pub fn count(&self, column: usize, row: usize) -> Option<u32> {
        if column >= usize::from(self.columns) {
            return None;
        }
        self.counts
            .get(row * usize::from(self.columns) + column)
            .copied()
    }
}

/// Why a `Hello` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RejectReason {
    #[error("protocol version {client} is not supported (server speaks {server})")]
    UnsupportedVersion { client: u32, server: u32 },
    #[error("name is {len} bytes long, the maximum is {max}")]
    NameTooLong { len: usize, max: usize },
    #[error("the first message must be Hello")]
    ExpectedHello,
}

/// Which kind of client a player is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PlayerKind {
    /// A Bevy (or other native protocol) client.
    Native,
    /// A legacy Python "positions" client.
    Legacy,
}

/// Who a player is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerInfo {
    pub id: ClientId,
    pub name: String,
    pub kind: PlayerKind,
}

/// A player and its latest position, if it has sent one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerState {
    pub info: PlayerInfo,
    pub position: Option<Position>,
}

/// One entry of a [`ServerMessage::Positions`] batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerPosition {
    pub id: ClientId,
    pub position: Position,
}
