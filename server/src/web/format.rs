//! The web view's wire format: compact binary records in WebSocket binary
//! messages, read by `assets/app.js` with a `DataView`. Little-endian, no
//! padding, like the legacy layouts:
//!
//! ```text
//! RESET  +-- tag: u8 = 1 --+
//! JOIN   +-- tag: u8 = 2 --+-- id: i32 LE --+-- kind: u8 --+-- len: u8 --+-- name: len bytes UTF-8 --+
//! MOVE   +-- tag: u8 = 3 --+-- id: i32 LE --+-- x: i16 LE --+-- y: i16 LE --+
//! LEAVE  +-- tag: u8 = 4 --+-- id: i32 LE --+
//! CLOCK  +-- tag: u8 = 5 --+-- now_ms: u64 LE --+-- duration_ms: u64 LE --+-- start_unix_ms: u64 LE --+-- speed_milli: u32 LE --+-- paused: u8 --+
//! ```
//!
//! CLOCK is sent only by `gameserver replay --web`: where the replay is in
//! its recording; the live view never sends it.
//!
//! `kind` is 0 for a native player, 1 for a legacy one. A snapshot is a
//! RESET (forget every player) followed by a JOIN per player and a MOVE per
//! player that has a position; a batch is the broadcast's events in order.
//! A move is 9 bytes, the same order of size as a legacy record (8).

use bytes::{BufMut, BytesMut};
use shared::ClientId;
use shared::legacy::Position;
use shared::native::{MAX_NAME_LEN, PlayerInfo, PlayerKind};

use crate::fanout::{Encoded, WireFormat};
use crate::world::state::{Event, State};

pub const TAG_RESET: u8 = 1;
pub const TAG_JOIN: u8 = 2;
pub const TAG_MOVE: u8 = 3;
pub const TAG_LEAVE: u8 = 4;
pub const TAG_CLOCK: u8 = 5;

/// Bytes of a CLOCK record.
pub const CLOCK_SIZE: usize = 1 + 8 + 8 + 8 + 4 + 1;

pub const KIND_NATIVE: u8 = 0;
pub const KIND_LEGACY: u8 = 1;

/// Bytes of a MOVE record.
pub const MOVE_SIZE: usize = 1 + 4 + 2 + 2;
/// Bytes of a LEAVE record.
pub const LEAVE_SIZE: usize = 1 + 4;
/// Bytes of a JOIN record before its name.
pub const JOIN_HEADER_SIZE: usize = 1 + 4 + 1 + 1;
/// Longest name a JOIN carries, in bytes (the `len` field is a `u8`).
/// Names are at most [`MAX_NAME_LEN`] bytes anyway; a longer one (from a
/// future peer) is cut at a character boundary.
pub const MAX_WIRE_NAME_LEN: usize = u8::MAX as usize;

const _: () = assert!(MAX_NAME_LEN <= MAX_WIRE_NAME_LEN);

/// The web view's binary records.
#[derive(Debug)]
pub struct WebRecords;

/// The one instance subscribers name.
pub static WEB_RECORDS: WebRecords = WebRecords;

impl WireFormat for WebRecords {
    fn name(&self) -> &'static str {
        "web"
    }

    fn encode_batch(&self, events: &[Event]) -> Encoded {
        let mut out = BytesMut::with_capacity(events.len() * MOVE_SIZE);
        for event in events {
            match event {
                Event::Joined(info) => put_join(&mut out, info),
                Event::Moved(id, position) => put_move(&mut out, *id, *position),
                Event::Left { id, .. } => put_leave(&mut out, *id),
            }
        }
        Encoded {
            bytes: out.freeze(),
            messages: events.len() as u64,
        }
    }

    /// RESET, then every player. Owed leaves need no record: the reset
    /// forgets every player the viewer knew.
    fn encode_snapshot(&self, state: &State, _owed_leaves: &[ClientId]) -> Encoded {
        let mut out = BytesMut::with_capacity(1 + state.player_count() * (MOVE_SIZE + 24));
        out.put_u8(TAG_RESET);
        let mut messages = 1;
        for player in state.players() {
            put_join(&mut out, &player.info);
            messages += 1;
            if let Some(position) = player.position {
                put_move(&mut out, player.info.id, position);
                messages += 1;
            }
        }
        Encoded {
            bytes: out.freeze(),
            messages,
        }
    }
}

pub fn put_join(out: &mut BytesMut, info: &PlayerInfo) {
    let name = truncate_at_char_boundary(&info.name, MAX_WIRE_NAME_LEN);
    out.put_u8(TAG_JOIN);
    out.put_i32_le(info.id);
    out.put_u8(match info.kind {
        PlayerKind::Native => KIND_NATIVE,
        PlayerKind::Legacy => KIND_LEGACY,
    });
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
}

pub fn put_move(out: &mut BytesMut, id: ClientId, position: Position) {
    out.put_u8(TAG_MOVE);
    out.put_i32_le(id);
    out.put_i16_le(position.x);
    out.put_i16_le(position.y);
}

pub fn put_leave(out: &mut BytesMut, id: ClientId) {
    out.put_u8(TAG_LEAVE);
    out.put_i32_le(id);
}

/// Where a replay is (see the module's diagram).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    pub now_ms: u64,
    pub duration_ms: u64,
    pub start_unix_ms: u64,
    pub speed: f64,
    pub paused: bool,
}

pub fn put_clock(out: &mut BytesMut, clock: &Clock) {
    out.put_u8(TAG_CLOCK);
    out.put_u64_le(clock.now_ms);
    out.put_u64_le(clock.duration_ms);
    out.put_u64_le(clock.start_unix_ms);
    out.put_u32_le((clock.speed * 1000.0).round() as u32);
    out.put_u8(u8::from(clock.paused));
}

fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: ClientId, name: &str, kind: PlayerKind) -> PlayerInfo {
        PlayerInfo {
            id,
            name: name.into(),
            kind,
        }
    }

    #[test]
    fn batch_bytes_follow_the_documented_layout() {
        let events = [
            Event::Joined(info(7, "ab", PlayerKind::Legacy)),
            Event::Moved(7, Position::new(-2, 300)),
            Event::Left {
                id: 7,
                had_position: true,
            },
            Event::Left {
                id: 8,
                had_position: false,
            },
        ];
        let encoded = WEB_RECORDS.encode_batch(&events);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            TAG_JOIN, 7, 0, 0, 0, KIND_LEGACY, 2, b'a', b'b',
            TAG_MOVE, 7, 0, 0, 0, 0xfe, 0xff, 0x2c, 0x01,
            TAG_LEAVE, 7, 0, 0, 0,
            TAG_LEAVE, 8, 0, 0, 0,
        ];
        assert_eq!(&encoded.bytes[..], expected);
        assert_eq!(encoded.messages, 4);
    }

    #[test]
    fn empty_batch_is_empty() {
        let encoded = WEB_RECORDS.encode_batch(&[]);
        assert!(encoded.bytes.is_empty());
        assert_eq!(encoded.messages, 0);
    }

    #[test]
    fn snapshot_resets_then_lists_every_player() {
        let mut state = State::default();
        state.join(info(1, "n", PlayerKind::Native));
        state.join(info(2, "py-2", PlayerKind::Legacy));
        state.set_positions(2, &[Position::new(5, -5)]);
        let encoded = WEB_RECORDS.encode_snapshot(&state, &[9]);
        let bytes = &encoded.bytes[..];
        assert_eq!(bytes[0], TAG_RESET);
        // Players come in map order: find each record instead of assuming it.
        let native: &[u8] = &[TAG_JOIN, 1, 0, 0, 0, KIND_NATIVE, 1, b'n'];
        let legacy_join: &[u8] = &[TAG_JOIN, 2, 0, 0, 0, KIND_LEGACY, 4, b'p', b'y', b'-', b'2'];
        let legacy_move: &[u8] = &[TAG_MOVE, 2, 0, 0, 0, 5, 0, 0xfb, 0xff];
        for record in [native, legacy_join, legacy_move] {
            assert!(
                bytes.windows(record.len()).any(|w| w == record),
                "{record:?} missing from {bytes:?}"
            );
        }
        assert_eq!(
            bytes.len(),
            1 + native.len() + legacy_join.len() + legacy_move.len()
        );
        assert_eq!(encoded.messages, 4);
    }

    #[test]
    fn names_are_sent_as_given_and_cut_only_past_255_bytes() {
        let hostile = "<img src=x onerror=alert(1)>";
        let mut out = BytesMut::new();
        put_join(&mut out, &info(3, hostile, PlayerKind::Native));
        assert_eq!(&out[JOIN_HEADER_SIZE..], hostile.as_bytes());

        let long = "é".repeat(200); // 400 bytes
        let mut out = BytesMut::new();
        put_join(&mut out, &info(3, &long, PlayerKind::Native));
        let len = out[JOIN_HEADER_SIZE - 1] as usize;
        assert_eq!(len, 254, "cut at a character boundary");
        assert_eq!(out.len(), JOIN_HEADER_SIZE + len);
        assert!(std::str::from_utf8(&out[JOIN_HEADER_SIZE..]).is_ok());
    }
}
