//! What nodes say to each other on NATS, in bincode (serde).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shared::native::PlayerState;

use crate::world::{Event, NodeId};

/// Largest cluster message accepted: a node's whole state is about 20 bytes
/// a player, so this holds a few hundred thousand players.
pub const MAX_WIRE_BYTES: usize = 16 * 1024 * 1024;

/// One message between nodes. `epoch` is chosen at random when a node
/// starts, so a restarted node is told apart from its earlier life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Wire {
    /// A node has started: the others answer with a heartbeat at once.
    Hello { node: NodeId, epoch: u64 },
    /// Alive; `seq` is the last `Events` batch published.
    Heartbeat { node: NodeId, epoch: u64, seq: u64 },
    /// The node's own events of one broadcast, oldest first.
    Events {
        node: NodeId,
        epoch: u64,
        seq: u64,
        events: Vec<Event>,
    },
    /// Answer to a state request: every player of the node, taken after
    /// batch `seq` was in its world.
    State {
        node: NodeId,
        epoch: u64,
        seq: u64,
        players: Vec<PlayerState>,
    },
    /// The node is shutting down: its players leave now, not after
    /// [`super::NODE_TIMEOUT`].
    Bye { node: NodeId, epoch: u64 },
}

impl Wire {
    pub fn origin(&self) -> (NodeId, u64) {
        match *self {
            Wire::Hello { node, epoch }
            | Wire::Bye { node, epoch }
            | Wire::Heartbeat { node, epoch, .. }
            | Wire::Events { node, epoch, .. }
            | Wire::State { node, epoch, .. } => (node, epoch),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        shared::native::payload(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Wire, bincode::error::DecodeError> {
        let config = bincode::config::standard().with_limit::<MAX_WIRE_BYTES>();
        let (wire, _) = bincode::serde::decode_from_slice(bytes, config)?;
        Ok(wire)
    }
}

#[cfg(test)]
mod tests {
    use shared::legacy::Position;
    use shared::native::{PlayerInfo, PlayerKind};

    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let wire = Wire::Events {
            node: 3,
            epoch: 99,
            seq: 7,
            events: vec![
                Event::Joined(PlayerInfo {
                    id: 3 << 24 | 1,
                    name: "py-1".into(),
                    kind: PlayerKind::Legacy,
                }),
                Event::Moved(3 << 24 | 1, Position::new(-5, 6)),
            ],
        };
        assert_eq!(Wire::from_bytes(&wire.to_bytes()).unwrap(), wire);
        assert!(Wire::from_bytes(&[0xff; 3]).is_err());
    }
}
