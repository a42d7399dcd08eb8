//! The bytes of a recording: its header and its records. Blocks (a length
//! and a CRC-32 around records) are in [`super::writer`] and
//! [`super::reader`].
//!
//! Records, each a tag byte then its fields, all little-endian:
//!
//! ```text
//! Time     = 0x01 +-- ms: u64 --+                       time of the records after it
//! Join     = 0x02 +-- id: i32 --+-- kind: u8 --+-- name_len: u8 --+-- name: UTF-8 --+
//! Move     = 0x03 +-- id: i32 --+-- x: i16 --+-- y: i16 --+
//! Leave    = 0x04 +-- id: i32 --+
//! Snapshot = 0x05 +-- count: u32 --+ count × player
//! player   =      +-- id: i32 --+-- kind: u8 --+-- has_position: u8 --+-- x: i16 --+-- y: i16 --+-- name_len: u8 --+-- name --+
//! ```
//!
//! `kind` is 0 for a native player and 1 for a legacy one. A snapshot is the
//! whole world: every player, replacing whatever a reader had before.

use std::io;

use thiserror::Error;

use crate::ClientId;
use crate::legacy::Position;
use crate::native::{PlayerInfo, PlayerKind, PlayerState};

/// The first bytes of every recording file.
pub const MAGIC: [u8; 8] = *b"NGREC\r\n\x1a";

/// The format version this build writes and the newest it reads.
pub const VERSION: u16 = 1;

/// Bytes in a version-1 header, its checksum included.
pub const HEADER_LEN: usize = 36;

/// Bytes before a block's payload: its length and its CRC-32.
pub const BLOCK_HEADER_LEN: usize = 8;

/// The largest block payload a reader accepts (and a writer makes): far more
/// than a snapshot of the largest world (20,000 players × at most 270 bytes
/// is 5.4 MB), so a corrupt length cannot make a reader allocate gigabytes.
pub const MAX_BLOCK_LEN: usize = 64 * 1024 * 1024;

/// Longest name a record carries, in bytes (its length is one byte); a
/// longer name is cut at a character boundary by the writer.
pub const MAX_RECORD_NAME_LEN: usize = u8::MAX as usize;

/// The header of one file of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    /// 0 for `PATH`, n for `PATH.n`: the files of a rotated set, in order.
    pub file_index: u32,
    /// Wall-clock time the recording started (ms since the Unix epoch);
    /// every record's time counts from it.
    pub start_unix_ms: u64,
    /// The same in every file of one recording, so a reader does not join
    /// files of two different recordings into one.
    pub recording_id: u64,
}

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        out[12..16].copy_from_slice(&self.file_index.to_le_bytes());
        out[16..24].copy_from_slice(&self.start_unix_ms.to_le_bytes());
        out[24..32].copy_from_slice(&self.recording_id.to_le_bytes());
        let crc = crc32fast::hash(&out[..HEADER_LEN - 4]);
        out[HEADER_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a header from the first bytes of a file. The version is
    /// checked before the rest, so a newer file says so rather than that
    /// its header is odd.
    pub fn parse(bytes: &[u8]) -> Result<Header, RecordingError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(RecordingError::Foreign);
        }
        if bytes.len() < 12 {
            return Err(RecordingError::TruncatedHeader { len: bytes.len() });
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version > VERSION {
            return Err(RecordingError::NewerVersion {
                found: version,
                supported: VERSION,
            });
        }
        if version == 0 {
            return Err(RecordingError::BadVersion { found: version });
        }
        let header_len = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
        if header_len != HEADER_LEN {
            return Err(RecordingError::BadHeaderLen {
                found: header_len,
                expected: HEADER_LEN,
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(RecordingError::TruncatedHeader { len: bytes.len() });
        }
        let stored = u32::from_le_bytes(take(bytes, HEADER_LEN - 4));
        let computed = crc32fast::hash(&bytes[..HEADER_LEN - 4]);
        if stored != computed {
            return Err(RecordingError::Damaged {
                offset: 0,
                damage: Damage::Checksum { stored, computed },
            });
        }
        Ok(Header {
            version,
            file_index: u32::from_le_bytes(take(bytes, 12)),
            start_unix_ms: u64::from_le_bytes(take(bytes, 16)),
            recording_id: u64::from_le_bytes(take(bytes, 24)),
        })
    }
}

/// `N` bytes of `bytes` from `at`; the caller has checked the length.
fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// One record of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The server time of the records that follow, in ms since the
    /// recording started.
    Time {
        ms: u64,
    },
    Join(PlayerInfo),
    Move {
        id: ClientId,
        position: Position,
    },
    Leave {
        id: ClientId,
    },
    /// The whole world.
    Snapshot(Vec<PlayerState>),
}

const TAG_TIME: u8 = 1;
const TAG_JOIN: u8 = 2;
const TAG_MOVE: u8 = 3;
const TAG_LEAVE: u8 = 4;
const TAG_SNAPSHOT: u8 = 5;

/// Bytes of a snapshot entry before its name: the smallest a player can
/// take, which bounds a snapshot's count by the bytes left.
const SNAPSHOT_ENTRY_MIN: usize = 4 + 1 + 1 + 2 + 2 + 1;

impl Record {
    /// Appends this record's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Time { ms } => {
                out.push(TAG_TIME);
                out.extend_from_slice(&ms.to_le_bytes());
            }
            Record::Join(info) => {
                out.push(TAG_JOIN);
                out.extend_from_slice(&info.id.to_le_bytes());
                out.push(kind_byte(info.kind));
                put_name(out, &info.name);
            }
            Record::Move { id, position } => {
                out.push(TAG_MOVE);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&position.to_bytes());
            }
            Record::Leave { id } => {
                out.push(TAG_LEAVE);
                out.extend_from_slice(&id.to_le_bytes());
            }
            Record::Snapshot(players) => {
                out.push(TAG_SNAPSHOT);
                out.extend_from_slice(&(players.len() as u32).to_le_bytes());
                for player in players {
                    out.extend_from_slice(&player.info.id.to_le_bytes());
                    out.push(kind_byte(player.info.kind));
                    out.push(u8::from(player.position.is_some()));
                    out.extend_from_slice(
                        &player.position.unwrap_or(Position::new(0, 0)).to_bytes(),
                    );
                    put_name(out, &player.info.name);
                }
            }
        }
    }

    /// Decodes one record from the start of `bytes`; returns it and its
    /// length.
    pub fn decode(bytes: &[u8]) -> Result<(Record, usize), RecordError> {
        let mut cursor = Cursor { bytes, at: 0 };
        let record = match cursor.u8()? {
            TAG_TIME => Record::Time {
                ms: u64::from_le_bytes(cursor.array()?),
            },
            TAG_JOIN => {
                let id = cursor.i32()?;
                let kind = cursor.kind()?;
                let name = cursor.name()?;
                Record::Join(PlayerInfo { id, name, kind })
            }
            TAG_MOVE => Record::Move {
                id: cursor.i32()?,
                position: cursor.position()?,
            },
            TAG_LEAVE => Record::Leave { id: cursor.i32()? },
            TAG_SNAPSHOT => {
                let count = u32::from_le_bytes(cursor.array()?) as usize;
                // Bounded by the bytes there are before anything is reserved.
                if count > cursor.remaining() / SNAPSHOT_ENTRY_MIN {
                    return Err(RecordError::Truncated);
                }
                let mut players = Vec::with_capacity(count);
                for _ in 0..count {
                    let id = cursor.i32()?;
                    let kind = cursor.kind()?;
                    let has_position = cursor.u8()?;
                    let position = cursor.position()?;
                    let name = cursor.name()?;
                    let position = match has_position {
                        0 => None,
                        1 => Some(position),
                        other => return Err(RecordError::BadFlag(other)),
                    };
                    players.push(PlayerState {
                        info: PlayerInfo { id, name, kind },
                        position,
                    });
                }
                Record::Snapshot(players)
            }
            tag => return Err(RecordError::UnknownTag(tag)),
        };
        Ok((record, cursor.at))
    }
}

fn kind_byte(kind: PlayerKind) -> u8 {
    match kind {
        PlayerKind::Native => 0,
        PlayerKind::Legacy => 1,
    }
}

/// Writes a name as its length byte and at most [`MAX_RECORD_NAME_LEN`]
/// bytes of it, cut at a character boundary.
fn put_name(out: &mut Vec<u8>, name: &str) {
    let mut end = name.len().min(MAX_RECORD_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&name.as_bytes()[..end]);
}

/// Reads fields from a record, checking the length before every read.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn slice(&mut self, len: usize) -> Result<&[u8], RecordError> {
        if self.remaining() < len {
            return Err(RecordError::Truncated);
        }
        let slice = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0; N];
        out.copy_from_slice(self.slice(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn position(&mut self) -> Result<Position, RecordError> {
        let [x0, x1, y0, y1] = self.array()?;
        Ok(Position::new(
            i16::from_le_bytes([x0, x1]),
            i16::from_le_bytes([y0, y1]),
        ))
    }

    fn kind(&mut self) -> Result<PlayerKind, RecordError> {
        match self.u8()? {
            0 => Ok(PlayerKind::Native),
            1 => Ok(PlayerKind::Legacy),
            other => Err(RecordError::UnknownKind(other)),
        }
    }

    fn name(&mut self) -> Result<String, RecordError> {
        let len = self.u8()? as usize;
        let bytes = self.slice(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::NameNotUtf8)
    }
}

/// Why the bytes of one record are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("record cut short")]
    Truncated,
    #[error("unknown record tag {0:#04x}")]
    UnknownTag(u8),
    #[error("unknown player kind {0}")]
    UnknownKind(u8),
    #[error("has_position flag {0} is neither 0 nor 1")]
    BadFlag(u8),
    #[error("player name is not UTF-8")]
    NameNotUtf8,
    #[error("block does not start with a time record")]
    NoTime,
}

/// What is wrong with a block (or the header's checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Damage {
    #[error(
        "the file ends inside the block's {needed}-byte length and checksum ({available} bytes left)"
    )]
    TornHeader { needed: usize, available: usize },
    #[error("the file ends inside the block: {len} bytes announced, {available} left")]
    TornPayload { len: usize, available: usize },
    #[error("block length {len} is over the maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("bad record at offset {at}: {reason}")]
    BadRecord { at: u64, reason: RecordError },
}

/// Why a recording cannot be read (further).
#[derive(Debug, Error)]
pub enum RecordingError {
    #[error(
        "not a recording: the file does not start with the recording magic \"{}\" (offset 0)", MAGIC.escape_ascii()
    )]
    Foreign,
    #[error(
        "recording format version {found} is newer than this build reads (up to {supported}); use a newer build (offset 8)"
    )]
    NewerVersion { found: u16, supported: u16 },
    #[error("recording format version {found} does not exist (offset 8)")]
    BadVersion { found: u16 },
    #[error("header length {found} at offset 10, expected {expected}")]
    BadHeaderLen { found: usize, expected: usize },
    #[error("header cut short: {len} of {HEADER_LEN} bytes (offset {len})")]
    TruncatedHeader { len: usize },
    #[error("damaged at offset {offset}: {damage}")]
    Damaged { offset: u64, damage: Damage },
    #[error("I/O error at offset {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("a block of {len} bytes is over the maximum {MAX_BLOCK_LEN}")]
    BlockTooLarge { len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: VERSION,
            file_index: 3,
            start_unix_ms: 1_700_000_000_000,
            recording_id: 42,
        }
    }

    #[test]
    fn header_round_trips() {
        assert_eq!(Header::parse(&header().to_bytes()).unwrap(), header());
    }

    #[test]
    fn a_newer_version_is_named_before_anything_else_is_checked() {
        let mut bytes = header().to_bytes();
        bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
        let err = Header::parse(&bytes[..12]).unwrap_err();
        assert!(
            matches!(
                err,
                RecordingError::NewerVersion {
                    found: 2,
                    supported: 1
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn foreign_bytes_are_not_a_recording() {
        let err = Header::parse(b"GIF89a and then some more bytes here.....").unwrap_err();
        assert!(matches!(err, RecordingError::Foreign), "{err}");
    }

    #[test]
    fn a_flipped_header_bit_is_a_checksum_error_at_offset_0() {
        let mut bytes = header().to_bytes();
        bytes[20] ^= 1;
        let err = Header::parse(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                RecordingError::Damaged {
                    offset: 0,
                    damage: Damage::Checksum { .. }
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_long_name_is_cut_at_a_character_boundary() {
        let name = "é".repeat(200); // 400 bytes
        let mut out = Vec::new();
        Record::Join(PlayerInfo {
            id: 1,
            name,
            kind: PlayerKind::Native,
        })
        .encode(&mut out);
        let (Record::Join(info), _) = Record::decode(&out).unwrap() else {
            panic!("not a join");
        };
        assert_eq!(info.name, "é".repeat(127));
    }

    #[test]
    fn a_snapshot_count_larger_than_its_bytes_is_refused_before_allocating() {
        let mut out = vec![TAG_SNAPSHOT];
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Record::decode(&out), Err(RecordError::Truncated));
    }
}
