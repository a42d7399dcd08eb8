//! The legacy byte layouts, as Python's `struct` packs them (`<`: little
//! endian, standard sizes, no padding). Each type documents its format string,
//! its size and a byte diagram once, next to its definition.
//!
//! Every legacy service starts a connection the same way: the server sends the
//! client its id, `struct.pack('<i', id)`.

mod math;
mod positions;
mod probe;

pub use math::{MathDecodeError, MathReply, MathReplyCodec, MathRequest, MathRequestCodec};
pub use positions::{Position, PositionCodec, PositionRecord, PositionRecordCodec};
pub use probe::{Probe, ProbeCodec};

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::Decoder;

use crate::ClientId;

/// The id greeting every legacy service sends right after accepting.
///
/// Python: `struct.pack('<i', id)`, 4 bytes.
///
/// ```text
/// +-- id: i32 LE --+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdGreeting(pub ClientId);

impl IdGreeting {
    pub const SIZE: usize = 4;

    pub fn encode(self, dst: &mut BytesMut) {
        dst.put_i32_le(self.0);
    }

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        self.0.to_le_bytes()
    }
}

/// Decodes the 4-byte id greeting (client side).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdGreetingCodec;

impl Decoder for IdGreetingCodec {
    type Item = IdGreeting;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<IdGreeting>, Self::Error> {
        if src.remaining() < IdGreeting::SIZE {
            return Ok(None);
        }
        Ok(Some(IdGreeting(src.get_i32_le())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_greeting_matches_python_struct() {
        // struct.pack('<i', 258) == b'\x02\x01\x00\x00'
        assert_eq!(IdGreeting(258).to_bytes(), [0x02, 0x01, 0x00, 0x00]);
        let mut buf = BytesMut::from(&[0x02, 0x01, 0x00][..]);
        assert_eq!(IdGreetingCodec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[0x00]);
        assert_eq!(
            IdGreetingCodec.decode(&mut buf).unwrap(),
            Some(IdGreeting(258))
        );
        assert!(buf.is_empty());
    }
}
