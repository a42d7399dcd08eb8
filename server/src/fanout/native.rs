//! The native format: bincode frames. Consecutive moves go out as one
//! `Positions` frame; joins and leaves as their own frames, in order.

use bytes::BytesMut;
use shared::ClientId;
use shared::native::{PlayerPosition, PlayerState, ServerMessage, encode_frame};

use super::{Encoded, WireFormat};
use crate::world::{Event, State};

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
