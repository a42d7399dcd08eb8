//! The classic "positions" format (`--positions-records hh`): each move as
//! the 4-byte `<hh` packet the mover sent, with no id, as the original
//! demo's server relayed it "to all clients in a loop".
//!
//! ```text
//! +-- x: i16 LE --+-- y: i16 LE --+
//! ```
//!
//! The layout cannot say who moved or who left, so joins and leaves are not
//! sent at all. The x and y are the world's stored position: the same as
//! the mover sent, except the reserved pair `(-32768, -32768)`, which the
//! world stores (and every format relays) as `(-32767, -32767)`.

use bytes::BytesMut;
use shared::ClientId;
use shared::legacy::Position;

use super::{Encoded, WireFormat};
use crate::world::state::{Event, State};

/// `<hh` packets of every move; nothing for joins or leaves.
#[derive(Debug)]
pub struct ClassicPackets;

/// The one instance subscribers name.
pub static CLASSIC_PACKETS: ClassicPackets = ClassicPackets;

impl WireFormat for ClassicPackets {
    fn name(&self) -> &'static str {
        "classic"
    }

    fn encode_batch(&self, events: &[Event]) -> Encoded {
        let mut out = BytesMut::with_capacity(events.len() * Position::SIZE);
        let mut messages = 0;
        for event in events {
            if let Event::Moved(_, position) = *event {
                position.encode(&mut out);
                messages += 1;
            }
        }
        Encoded {
            bytes: out.freeze(),
            messages,
        }
    }

    /// One packet per player with a position. Owed leaves are dropped: the
    /// classic layout has no way to say who left.
    fn encode_snapshot(&self, state: &State, _owed_leaves: &[ClientId]) -> Encoded {
        let mut out = BytesMut::with_capacity(state.player_count() * Position::SIZE);
        let mut messages = 0;
        for position in state.players().filter_map(|player| player.position) {
            position.encode(&mut out);
            messages += 1;
        }
        Encoded {
            bytes: out.freeze(),
            messages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::info;

    #[test]
    fn moves_are_bare_hh_packets_and_joins_and_leaves_are_silent() {
        let events = [
            Event::Joined(info(7)),
            Event::Moved(7, Position::new(1, -2)),
            Event::Moved(8, Position::new(-300, 4000)),
            Event::Left {
                id: 7,
                had_position: true,
            },
        ];
        let encoded = CLASSIC_PACKETS.encode_batch(&events);
        // struct.pack('<hh', 1, -2) + struct.pack('<hh', -300, 4000)
        assert_eq!(
            &encoded.bytes[..],
            b"\x01\x00\xfe\xff\xd4\xfe\xa0\x0f".as_slice()
        );
        assert_eq!(encoded.messages, 2);
        let only_leave = [Event::Left {
            id: 7,
            had_position: true,
        }];
        assert!(CLASSIC_PACKETS.encode_batch(&only_leave).bytes.is_empty());
    }

    #[test]
    fn snapshot_has_one_packet_per_positioned_player_and_no_leaves() {
        let mut state = State::default();
        for id in 1..=3 {
            state.join(info(id));
        }
        state.set_positions(1, &[Position::new(5, 6)]);
        state.set_positions(3, &[Position::new(i16::MIN, i16::MIN)]);
        let snapshot = CLASSIC_PACKETS.encode_snapshot(&state, &[42, 43]);
        assert_eq!(snapshot.messages, 2, "player 2 has no position");
        let mut packets: Vec<[u8; 4]> = snapshot
            .bytes
            .chunks_exact(Position::SIZE)
            .map(|c| c.try_into().unwrap())
            .collect();
        packets.sort();
        let mut expected = vec![
            Position::new(5, 6).to_bytes(),
            Position::new(-32767, -32767).to_bytes(),
        ];
        expected.sort();
        assert_eq!(packets, expected);
    }
}
