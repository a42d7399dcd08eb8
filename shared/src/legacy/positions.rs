use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::Decoder;

use crate::ClientId;

/// A position sent by a "positions" client.
///
/// Python: `struct.pack('<hh', x, y)`, 4 bytes.
///
/// ```text
/// +-- x: i16 LE --+-- y: i16 LE --+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub x: i16,
    pub y: i16,
}

impl Position {
    pub const SIZE: usize = 4;
    /// The coordinate reserved for the leave marker.
    pub const RESERVED: i16 = i16::MIN;

    pub fn new(x: i16, y: i16) -> Self {
        Position { x, y }
    }

    /// The position as the world stores it: `(-32768, -32768)` is the leave
    /// marker on the wire, so the contract stores it as `(-32767, -32767)`.
    /// Only that exact pair is rewritten; a single -32768 coordinate is an
    /// ordinary position.
    pub fn sanitized(self) -> Self {
        if self.x == Self::RESERVED && self.y == Self::RESERVED {
            Position::new(Self::RESERVED + 1, Self::RESERVED + 1)
        } else {
            self
        }
    }

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        out[..2].copy_from_slice(&self.x.to_le_bytes());
        out[2..].copy_from_slice(&self.y.to_le_bytes());
        out
    }

    pub fn encode(self, dst: &mut BytesMut) {
        dst.put_i16_le(self.x);
        dst.put_i16_le(self.y);
    }
}

/// Decodes 4-byte positions (server side). Every 4 bytes are a valid
/// position, so this decoder never fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct PositionCodec;

impl Decoder for PositionCodec {
    type Item = Position;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Position>, Self::Error> {
        if src.remaining() < Position::SIZE {
            return Ok(None);
        }
        let x = src.get_i16_le();
        let y = src.get_i16_le();
        Ok(Some(Position { x, y }))
    }
}

/// A record broadcast by the "positions" service: where player `id` is, or
/// the leave marker `(id, -32768, -32768)` when it left.
///
/// Python: `struct.pack('<ihh', id, x, y)`, 8 bytes.
///
/// ```text
/// +-- id: i32 LE --+-- x: i16 LE --+-- y: i16 LE --+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PositionRecord {
    pub id: ClientId,
    pub x: i16,
    pub y: i16,
}

impl PositionRecord {
    pub const SIZE: usize = 8;

    pub fn moved(id: ClientId, position: Position) -> Self {
        PositionRecord {
            id,
            x: position.x,
            y: position.y,
        }
    }

    pub fn leave(id: ClientId) -> Self {
        PositionRecord {
            id,
            x: Position::RESERVED,
            y: Position::RESERVED,
        }
    }

    pub fn is_leave(self) -> bool {
        self.x == Position::RESERVED && self.y == Position::RESERVED
    }

    pub fn position(self) -> Position {
        Position::new(self.x, self.y)
    }

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        out[..4].copy_from_slice(&self.id.to_le_bytes());
        out[4..6].copy_from_slice(&self.x.to_le_bytes());
        out[6..].copy_from_slice(&self.y.to_le_bytes());
        out
    }

    /// The inverse of [`PositionRecord::to_bytes`].
    pub fn from_bytes(bytes: [u8; Self::SIZE]) -> Self {
        PositionRecord {
            id: i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            x: i16::from_le_bytes([bytes[4], bytes[5]]),
            y: i16::from_le_bytes([bytes[6], bytes[7]]),
        }
    }

    pub fn encode(self, dst: &mut BytesMut) {
        dst.put_i32_le(self.id);
        dst.put_i16_le(self.x);
        dst.put_i16_le(self.y);
    }
}

/// Decodes 8-byte position records (client side).
#[derive(Debug, Default, Clone, Copy)]
pub struct PositionRecordCodec;

impl Decoder for PositionRecordCodec {
    type Item = PositionRecord;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<PositionRecord>, Self::Error> {
        if src.remaining() < PositionRecord::SIZE {
            return Ok(None);
        }
        let id = src.get_i32_le();
        let x = src.get_i16_le();
        let y = src.get_i16_le();
        Ok(Some(PositionRecord { id, x, y }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_bytes_round_trip_like_python_struct() {
        // struct.pack('<ihh', 7, -2, 300)
        let bytes = [7, 0, 0, 0, 0xfe, 0xff, 0x2c, 0x01];
        let record = PositionRecord {
            id: 7,
            x: -2,
            y: 300,
        };
        assert_eq!(PositionRecord::from_bytes(bytes), record);
        assert_eq!(record.to_bytes(), bytes);
    }

    #[test]
    fn position_matches_python_struct() {
        // struct.pack('<hh', -2, 300) == b'\xfe\xff\x2c\x01'
        assert_eq!(Position::new(-2, 300).to_bytes(), [0xfe, 0xff, 0x2c, 0x01]);
        let mut buf = BytesMut::from(&[0xfe, 0xff, 0x2c, 0x01, 0x00][..]);
        assert_eq!(
            PositionCodec.decode(&mut buf).unwrap(),
            Some(Position::new(-2, 300))
        );
        assert_eq!(PositionCodec.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn record_matches_python_struct() {
        // struct.pack('<ihh', 7, 10, -1) == b'\x07\x00\x00\x00\x0a\x00\xff\xff'
        let record = PositionRecord {
            id: 7,
            x: 10,
            y: -1,
        };
        assert_eq!(record.to_bytes(), [7, 0, 0, 0, 10, 0, 0xff, 0xff]);
        // struct.pack('<ihh', 7, -32768, -32768) == b'\x07\x00\x00\x00\x00\x80\x00\x80'
        assert_eq!(
            PositionRecord::leave(7).to_bytes(),
            [7, 0, 0, 0, 0, 0x80, 0, 0x80]
        );
        assert!(PositionRecord::leave(7).is_leave());
        assert!(!record.is_leave());
    }

    #[test]
    fn reserved_position_is_stored_one_step_inside() {
        assert_eq!(
            Position::new(-32768, -32768).sanitized(),
            Position::new(-32767, -32767)
        );
        assert_eq!(
            Position::new(-32768, 5).sanitized(),
            Position::new(-32768, 5)
        );
        assert_eq!(Position::new(0, 0).sanitized(), Position::new(0, 0));
    }

    #[test]
    fn every_truncation_needs_more_bytes() {
        let bytes = PositionRecord {
            id: 123456,
            x: -300,
            y: 4000,
        }
        .to_bytes();
        for cut in 0..PositionRecord::SIZE {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(
                PositionRecordCodec.decode(&mut buf).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        let bytes = Position::new(1, 2).to_bytes();
        for cut in 0..Position::SIZE {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(
                PositionCodec.decode(&mut buf).unwrap(),
                None,
                "cut at {cut}"
            );
        }
    }
}
