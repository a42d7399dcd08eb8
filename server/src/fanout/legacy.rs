//! The legacy "positions" format: 8-byte `<ihh` records, a leave marker
//! when a player that had a position goes (contract §positions).

use bytes::BytesMut;
use shared::ClientId;
use shared::legacy::PositionRecord;

use super::{Encoded, WireFormat};
use crate::world::state::{Event, State};

/// `<ihh` records of every move and leave.
#[derive(Debug)]
pub struct LegacyRecords;

/// The one instance subscribers name.
pub static LEGACY_RECORDS: LegacyRecords = LegacyRecords;

impl WireFormat for LegacyRecords {
    fn name(&self) -> &'static str {
        "legacy"
    }

    fn encode_batch(&self, events: &[Event]) -> Encoded {
        let mut out = BytesMut::with_capacity(events.len() * PositionRecord::SIZE);
        let mut messages = 0;
        for event in events {
            let record = match *event {
                Event::Moved(id, position) => PositionRecord::moved(id, position),
                Event::Left {
                    id,
                    had_position: true,
                } => PositionRecord::leave(id),
                _ => continue,
            };
            record.encode(&mut out);
            messages += 1;
        }
        Encoded {
            bytes: out.freeze(),
            messages,
        }
    }

    /// Leave markers owed, then one record per player with a position.
    fn encode_snapshot(&self, state: &State, owed_leaves: &[ClientId]) -> Encoded {
        let mut out = BytesMut::with_capacity(
            (owed_leaves.len() + state.player_count()) * PositionRecord::SIZE,
        );
        let mut messages = 0;
        for &id in owed_leaves {
            PositionRecord::leave(id).encode(&mut out);
            messages += 1;
        }
        for player in state.players() {
            if let Some(position) = player.position {
                PositionRecord::moved(player.info.id, position).encode(&mut out);
                messages += 1;
            }
        }
        Encoded {
            bytes: out.freeze(),
            messages,
        }
    }
}
