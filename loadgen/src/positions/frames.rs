//! The cheap native receive path: whole frames are walked by their length
//! prefixes and a `Positions` batch is counted from its entry count, without
//! decoding its entries.
//!
//! At 10,000 area-of-interest clients the generator reads about ten million
//! records a second; decoding each into a `Vec` and tracking who is visible
//! made the generator, not the server, set the figure (issue 22). Most
//! native clients ("counters", see `--sample-clients`) take this path; a
//! sample decodes everything and times its own echoes.
//!
//! A counter still rejects a corrupt stream: a frame over the maximum length,
//! a batch whose count cannot fit its bytes (every entry is between
//! [`FrameShape::entry_min`] and [`FrameShape::entry_max`] bytes), a count
//! that is no varint. The roster and the overview (protocol 3) are skipped
//! whole: a counter has no use for names, and decoding every `PlayerInfo`
//! of 5,000 newcomers' rosters (25 M names over a ramp, each a `String`)
//! was a third of the generator's CPU in a 5,000-client version-3 run
//! (18 s, 12.5 s once skipped; 2026-12-06). Every other message is decoded
//! in full (they are rare: joins, leaves, snapshots, pings), so an unknown
//! tag is an error too.
//!
//! ```text
//! +-- len: u32 LE --+-- tag: Positions --+-- count: varint --+-- entries --+
//! ```

use std::sync::OnceLock;

use bytes::BytesMut;
use shared::legacy::Position;
use shared::native::{
    DEFAULT_MAX_FRAME_LEN, DensityGrid, Overview, PlayerInfo, PlayerKind, PlayerPosition,
    ServerMessage, encode_frame, encode_position_entries,
};

/// The length prefix of every frame.
const LEN_SIZE: usize = 4;

/// What the codec makes of a `Positions` frame, derived from `shared`'s
/// encoders once (not written down a second time here).
#[derive(Debug, Clone)]
pub(crate) struct FrameShape {
    /// The payload's first bytes: the `Positions` variant tag.
    positions_tag: Vec<u8>,
    /// The variant tags of the roster and overview messages, skipped whole.
    skipped_tags: Vec<Vec<u8>>,
    /// The fewest and most bytes one entry takes.
    entry_min: usize,
    entry_max: usize,
    max_frame_len: usize,
}

/// A whole frame, as the walk sees it.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame<'a> {
    /// A `Positions` batch of `count` entries.
    Positions { count: u64 },
    /// A roster or overview message, not decoded.
    Skipped,
    /// Any other message: the whole frame, length prefix included, to be
    /// decoded in full.
    Other(&'a [u8]),
}

/// Why a frame stream is corrupt.
#[derive(Debug, PartialEq)]
pub(crate) enum Corrupt {
    TooLong { len: usize, max: usize },
    BadCount,
    CountDoesNotFit { count: u64, bytes: usize },
}

/// The shape of this protocol's frames, derived once per process.
pub(crate) fn shape() -> &'static FrameShape {
    static SHAPE: OnceLock<FrameShape> = OnceLock::new();
    SHAPE.get_or_init(FrameShape::new)
}

impl FrameShape {
    pub(crate) fn new() -> Self {
        // Encoding fixed messages into a `BytesMut` cannot fail.
        let mut empty = BytesMut::new();
        let _ = encode_frame(&ServerMessage::Positions(Vec::new()), &mut empty);
        // The payload is the tag and a zero count (one byte).
        let positions_tag = empty[LEN_SIZE..empty.len() - 1].to_vec();
        let size = |id, x, y| {
            let mut bytes = BytesMut::new();
            let entry = PlayerPosition {
                id,
                position: Position::new(x, y),
            };
            let _ = encode_position_entries(&[entry], &mut bytes);
            bytes.len()
        };
        let player = |id| PlayerInfo {
            id,
            name: String::new(),
            kind: PlayerKind::Native,
        };
        let grid = DensityGrid {
            origin: Position::new(0, 0),
            cell_size: 1,
            columns: 0,
            counts: Vec::new(),
        };
        // Two messages of one variant that differ from their first field
        // on: what they share is the variant's tag.
        let skipped_tags = [
            (
                ServerMessage::Roster(Vec::new()),
                ServerMessage::Roster(vec![player(0)]),
            ),
            (
                ServerMessage::RosterJoined(player(0)),
                ServerMessage::RosterJoined(player(1)),
            ),
            (
                ServerMessage::RosterLeft { id: 0 },
                ServerMessage::RosterLeft { id: 1 },
            ),
            (
                ServerMessage::Overview(Overview::Players(Vec::new())),
                ServerMessage::Overview(Overview::Density(grid)),
            ),
        ]
        .iter()
        .map(|(a, b)| common_payload_prefix(a, b))
        .collect();
        FrameShape {
            positions_tag,
            skipped_tags,
            entry_min: size(0, 0, 0),
            entry_max: size(i32::MIN, i16::MIN, i16::MIN).max(size(i32::MAX, i16::MAX, i16::MAX)),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// Walks the whole frames at the start of `bytes`, handing each to
    /// `each`; returns how many bytes they took (the rest is the start of a
    /// frame still arriving). A corrupt frame ends the walk with an error.
    pub(crate) fn walk<E>(
        &self,
        bytes: &[u8],
        mut each: impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<usize, E>
    where
        E: From<Corrupt>,
    {
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + LEN_SIZE) {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            if len > self.max_frame_len {
                return Err(Corrupt::TooLong {
                    len,
                    max: self.max_frame_len,
                }
                .into());
            }
            let Some(frame) = bytes.get(at..at + LEN_SIZE + len) else {
                break;
            };
            let payload = &frame[LEN_SIZE..];
            match payload.strip_prefix(self.positions_tag.as_slice()) {
                Some(rest) => each(Frame::Positions {
                    count: self.count(rest)?,
                })?,
                None if self.skipped_tags.iter().any(|tag| payload.starts_with(tag)) => {
                    each(Frame::Skipped)?
                }
                None => each(Frame::Other(frame))?,
            }
            at += frame.len();
        }
        Ok(at)
    }

    /// The entry count of a batch whose bytes after the tag are `rest`,
    /// checked against the bytes its entries take.
    fn count(&self, rest: &[u8]) -> Result<u64, Corrupt> {
        let (count, used) = varint(rest).ok_or(Corrupt::BadCount)?;
        let bytes = rest.len() - used;
        let fits = count
            .checked_mul(self.entry_min as u64)
            .is_some_and(|least| least <= bytes as u64)
            && count.saturating_mul(self.entry_max as u64) >= bytes as u64;
        if !fits {
            return Err(Corrupt::CountDoesNotFit { count, bytes });
        }
        Ok(count)
    }
}

/// The bytes two messages' payloads (after the length prefix) start with.
fn common_payload_prefix(a: &ServerMessage, b: &ServerMessage) -> Vec<u8> {
    let encode = |message| {
        let mut bytes = BytesMut::new();
        // Encoding a small message into a `BytesMut` cannot fail.
        let _ = encode_frame(message, &mut bytes);
        bytes[LEN_SIZE..].to_vec()
    };
    let (a, b) = (encode(a), encode(b));
    let shared = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    a[..shared].to_vec()
}

/// A bincode (standard configuration) varint `u64` at the start of `bytes`
/// and how many bytes it took: one byte below 251, else a marker (251, 252,
/// 253) and a little-endian `u16`, `u32` or `u64`.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = bytes.split_first()?;
    let wide = |n: usize| -> Option<(u64, usize)> {
        let mut le = [0u8; 8];
        le[..n].copy_from_slice(rest.get(..n)?);
        Some((u64::from_le_bytes(le), 1 + n))
    };
    match first {
        0..=250 => Some((u64::from(first), 1)),
        251 => wide(2),
        252 => wide(4),
        253 => wide(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::native::PlayerInfo;

    fn batch(count: usize) -> BytesMut {
        let entries: Vec<PlayerPosition> = (0..count)
            .map(|i| PlayerPosition {
                id: i as i32 * 7919 - 40_000,
                position: Position::new(i as i16, (i as i16).wrapping_neg()),
            })
            .collect();
        let mut bytes = BytesMut::new();
        encode_frame(&ServerMessage::Positions(entries), &mut bytes).unwrap();
        bytes
    }

    /// Walks `bytes`; the frames seen and the bytes used.
    fn walk(bytes: &[u8]) -> Result<(Vec<String>, usize), Corrupt> {
        let mut seen = Vec::new();
        let used = FrameShape::new().walk(bytes, |frame| {
            seen.push(match frame {
                Frame::Positions { count } => format!("positions {count}"),
                Frame::Skipped => "skipped".to_string(),
                Frame::Other(frame) => format!("other {}", frame.len()),
            });
            Ok::<_, Corrupt>(())
        })?;
        Ok((seen, used))
    }

    #[test]
    fn batches_of_every_count_width_are_counted_without_decoding() {
        for count in [0, 1, 250, 251, 300, 65_535, 65_536, 70_000] {
            let bytes = batch(count);
            let (seen, used) = walk(&bytes).unwrap();
            assert_eq!(seen, [format!("positions {count}")]);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn other_messages_are_handed_over_whole_and_partial_frames_wait() {
        let mut bytes = batch(3);
        let joined = ServerMessage::PlayerJoined(PlayerInfo {
            id: 5,
            name: "x".into(),
            kind: shared::native::PlayerKind::Native,
        });
        encode_frame(&joined, &mut bytes).unwrap();
        let whole = bytes.len();
        let other = whole - batch(3).len();
        bytes.extend_from_slice(&batch(2));
        // Every truncation of the last frame: the first two are taken.
        for cut in whole..bytes.len() {
            let (seen, used) = walk(&bytes[..cut]).unwrap();
            assert_eq!(seen, ["positions 3".to_string(), format!("other {other}")]);
            assert_eq!(used, whole, "cut at {cut}");
        }
        assert_eq!(walk(&bytes).unwrap().0.len(), 3);
    }

    #[test]
    fn roster_and_overview_messages_are_skipped_and_joins_are_not() {
        let info = |id| PlayerInfo {
            id,
            name: format!("player {id}"),
            kind: PlayerKind::Legacy,
        };
        let messages = [
            ServerMessage::Roster((0..300).map(info).collect()),
            ServerMessage::RosterJoined(info(-7)),
            ServerMessage::RosterLeft { id: 1 << 20 },
            ServerMessage::Overview(Overview::Players(vec![PlayerPosition {
                id: 3,
                position: Position::new(3000, 3000),
            }])),
            ServerMessage::Overview(Overview::Density(DensityGrid {
                origin: Position::new(-5, 9),
                cell_size: 500,
                columns: 2,
                counts: vec![1, 2, 3, 4],
            })),
            ServerMessage::PlayerJoined(info(2)),
            ServerMessage::PlayerLeft { id: 2 },
        ];
        let mut bytes = BytesMut::new();
        for message in &messages {
            encode_frame(message, &mut bytes).unwrap();
        }
        let (seen, used) = walk(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(&seen[..5], ["skipped"; 5]);
        assert!(
            seen[5].starts_with("other") && seen[6].starts_with("other"),
            "{seen:?}"
        );
    }

    #[test]
    fn a_corrupt_stream_is_an_error() {
        // A frame longer than the maximum, before its body arrives.
        let long = (DEFAULT_MAX_FRAME_LEN as u32 + 1).to_le_bytes();
        assert!(matches!(walk(&long), Err(Corrupt::TooLong { .. })));
        // A count the bytes cannot hold, either way.
        let mut more = batch(3);
        more[LEN_SIZE + 1] = 200;
        assert!(matches!(walk(&more), Err(Corrupt::CountDoesNotFit { .. })));
        let mut fewer = batch(100);
        fewer[LEN_SIZE + 1] = 2;
        assert!(matches!(walk(&fewer), Err(Corrupt::CountDoesNotFit { .. })));
        // No varint at all.
        let mut bad = batch(3);
        bad[LEN_SIZE + 1] = 255;
        assert_eq!(walk(&bad), Err(Corrupt::BadCount));
    }

    #[test]
    fn varints_read_as_bincode_writes_them() {
        assert_eq!(varint(&[250]), Some((250, 1)));
        assert_eq!(varint(&[251, 0x34, 0x12]), Some((0x1234, 3)));
        assert_eq!(varint(&[252, 1, 0, 0, 1]), Some((0x0100_0001, 5)));
        assert_eq!(varint(&[253, 0, 0, 0, 0, 1, 0, 0, 0]), Some((1 << 32, 9)));
        for truncated in [&[][..], &[251, 0x34], &[252, 1, 0, 0], &[253, 1]] {
            assert_eq!(varint(truncated), None, "{truncated:?}");
        }
        assert_eq!(varint(&[254, 0, 0]), None, "a u128 is no count");
    }
}
