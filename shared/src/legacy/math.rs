use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::Decoder;

use crate::math::{MathOutcome, MathStatus};

/// A "math" request.
///
/// Python: `struct.pack('<ihh', len(cmd), a, b) + cmd`, 8 + len bytes.
///
/// ```text
/// +-- len: i32 LE --+-- a: i16 LE --+-- b: i16 LE --+-- cmd: len ASCII bytes --+
/// ```
///
/// The command is kept as received (ASCII, any case); whether it names an
/// operation is the service's business (unknown commands get status 2 and the
/// connection stays open, unlike a malformed request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MathRequest {
    pub a: i16,
    pub b: i16,
    pub command: String,
}

impl MathRequest {
    /// Size of the fixed header before the command bytes.
    pub const HEADER_SIZE: usize = 8;
    /// Shortest valid command.
    pub const MIN_COMMAND_LEN: i32 = 1;
    /// Longest valid command; a longer announced length is malformed.
    pub const MAX_COMMAND_LEN: i32 = 64;

    pub fn new(command: impl Into<String>, a: i16, b: i16) -> Self {
        MathRequest {
            a,
            b,
            command: command.into(),
        }
    }

    pub fn encode(&self, dst: &mut BytesMut) {
        let command = self.command.as_bytes();
        dst.reserve(Self::HEADER_SIZE + command.len());
        dst.put_i32_le(command.len() as i32);
        dst.put_i16_le(self.a);
        dst.put_i16_le(self.b);
        dst.put_slice(command);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.to_vec()
    }
}

/// Why a legacy math stream is corrupt (status 3, then the connection closes).
#[derive(Debug, thiserror::Error)]
pub enum MathDecodeError {
    #[error(
        "command length {len} outside {}..={}",
        MathRequest::MIN_COMMAND_LEN,
        MathRequest::MAX_COMMAND_LEN
    )]
    BadLength { len: i32 },
    #[error("command contains non-ASCII byte 0x{byte:02x}")]
    NonAscii { byte: u8 },
    #[error("unknown reply status {code}")]
    UnknownStatus { code: i32 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes math requests (server side).
///
/// The announced length is checked as soon as the 8-byte header is in, before
/// waiting for (or allocating) the body.
#[derive(Debug, Default, Clone, Copy)]
pub struct MathRequestCodec;

impl Decoder for MathRequestCodec {
    type Item = MathRequest;
    type Error = MathDecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<MathRequest>, MathDecodeError> {
        if src.remaining() < MathRequest::HEADER_SIZE {
            return Ok(None);
        }
        let len = i32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        if !(MathRequest::MIN_COMMAND_LEN..=MathRequest::MAX_COMMAND_LEN).contains(&len) {
            return Err(MathDecodeError::BadLength { len });
        }
        let body_len = len as usize; // 1..=64 checked above
        if src.remaining() < MathRequest::HEADER_SIZE + body_len {
            src.reserve(MathRequest::HEADER_SIZE + body_len - src.remaining());
            return Ok(None);
        }
        let body = &src[MathRequest::HEADER_SIZE..MathRequest::HEADER_SIZE + body_len];
        if let Some(&byte) = body.iter().find(|b| !b.is_ascii()) {
            return Err(MathDecodeError::NonAscii { byte });
        }
        src.advance(4);
        let a = src.get_i16_le();
        let b = src.get_i16_le();
        let body = src.split_to(body_len);
        // ASCII was checked above, so this is valid UTF-8.
        let command = String::from_utf8_lossy(&body).into_owned();
        Ok(Some(MathRequest { a, b, command }))
    }
}

/// A "math" reply.
///
/// Python: `struct.pack('<id', status, value)`, 12 bytes (no padding with `<`).
///
/// ```text
/// +-- status: i32 LE --+-- value: f64 LE (IEEE 754) --+
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MathReply(pub MathOutcome);

impl MathReply {
    pub const SIZE: usize = 12;

    pub fn status(self) -> MathStatus {
        self.0.status
    }

    pub fn value(self) -> f64 {
        self.0.value
    }

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        out[..4].copy_from_slice(&self.0.status.code().to_le_bytes());
        out[4..].copy_from_slice(&self.0.value.to_le_bytes());
        out
    }

    pub fn encode(self, dst: &mut BytesMut) {
        dst.put_i32_le(self.0.status.code());
        dst.put_f64_le(self.0.value);
    }
}

/// Decodes math replies (client side).
#[derive(Debug, Default, Clone, Copy)]
pub struct MathReplyCodec;

impl Decoder for MathReplyCodec {
    type Item = MathReply;
    type Error = MathDecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<MathReply>, MathDecodeError> {
        if src.remaining() < MathReply::SIZE {
            return Ok(None);
        }
        let code = src.get_i32_le();
        let value = src.get_f64_le();
        let status =
            MathStatus::try_from(code).map_err(|code| MathDecodeError::UnknownStatus { code })?;
        Ok(Some(MathReply(MathOutcome { status, value })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<MathRequest>, MathDecodeError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(request) = MathRequestCodec.decode(&mut buf)? {
            out.push(request);
        }
        Ok(out)
    }

    #[test]
    fn request_matches_python_struct() {
        // struct.pack('<ihh', 4, 3, -2) + b'SUMA'
        let python = b"\x04\x00\x00\x00\x03\x00\xfe\xffSUMA";
        assert_eq!(MathRequest::new("SUMA", 3, -2).to_bytes(), python);
        assert_eq!(
            decode_all(python).unwrap(),
            vec![MathRequest::new("SUMA", 3, -2)]
        );
    }

    #[test]
    fn reply_matches_python_struct() {
        // struct.pack('<id', 0, 3.5) == b'\x00\x00\x00\x00' + b'\x00\x00\x00\x00\x00\x00\x0c\x40'
        let python = b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0c\x40";
        let reply = MathReply(MathOutcome::ok(3.5));
        assert_eq!(&reply.to_bytes(), python);
        let mut buf = BytesMut::from(&python[..]);
        assert_eq!(MathReplyCodec.decode(&mut buf).unwrap(), Some(reply));
        // struct.pack('<id', 1, 0.0)
        let python = b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        assert_eq!(
            &MathReply(MathOutcome::error(MathStatus::DivisionByZero)).to_bytes(),
            python
        );
    }

    #[test]
    fn pipelined_requests_decode_in_order() {
        let mut bytes = MathRequest::new("SUMA", 1, 2).to_bytes();
        bytes.extend(MathRequest::new("division", 1, 0).to_bytes());
        bytes.extend(MathRequest::new("NOPE", 0, 0).to_bytes());
        let decoded = decode_all(&bytes).unwrap();
        let commands: Vec<_> = decoded.iter().map(|r| r.command.as_str()).collect();
        assert_eq!(commands, ["SUMA", "division", "NOPE"]);
    }

    #[test]
    fn every_truncation_needs_more_bytes() {
        let bytes = MathRequest::new("MULTIPLICACION", -7, 9).to_bytes();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(
                matches!(MathRequestCodec.decode(&mut buf), Ok(None)),
                "cut at {cut}"
            );
            assert_eq!(buf.len(), cut, "nothing consumed from a partial request");
        }
        let reply = MathReply(MathOutcome::ok(-1.25)).to_bytes();
        for cut in 0..reply.len() {
            let mut buf = BytesMut::from(&reply[..cut]);
            assert!(
                matches!(MathReplyCodec.decode(&mut buf), Ok(None)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn bad_lengths_are_rejected_from_the_header_alone() {
        for len in [0i32, -1, 65, i32::MAX, i32::MIN] {
            let mut header = BytesMut::new();
            header.put_i32_le(len);
            header.put_i16_le(1);
            header.put_i16_le(2);
            // No body at all: the length alone is enough to reject.
            match MathRequestCodec.decode(&mut header) {
                Err(MathDecodeError::BadLength { len: got }) => assert_eq!(got, len),
                other => panic!("length {len}: expected BadLength, got {other:?}"),
            }
        }
        let longest = "A".repeat(64);
        assert_eq!(
            decode_all(&MathRequest::new(longest.clone(), 0, 0).to_bytes()).unwrap()[0].command,
            longest
        );
    }

    #[test]
    fn non_ascii_commands_are_rejected() {
        let mut bytes = BytesMut::new();
        bytes.put_i32_le(4);
        bytes.put_i16_le(1);
        bytes.put_i16_le(2);
        bytes.put_slice(b"SU\xc3\x91");
        assert!(matches!(
            MathRequestCodec.decode(&mut bytes),
            Err(MathDecodeError::NonAscii { byte: 0xc3 })
        ));
    }

    #[test]
    fn unknown_reply_status_is_an_error() {
        let mut buf = BytesMut::new();
        buf.put_i32_le(9);
        buf.put_f64_le(0.0);
        assert!(matches!(
            MathReplyCodec.decode(&mut buf),
            Err(MathDecodeError::UnknownStatus { code: 9 })
        ));
    }
}
