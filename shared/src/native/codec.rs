use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

use super::{DEFAULT_MAX_FRAME_LEN, PlayerPosition, ServerMessage};

const LEN_SIZE: usize = 4;

/// Why a native frame stream is corrupt (the connection must be closed).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("undecodable payload: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("payload has {extra} trailing bytes after the message")]
    TrailingBytes { extra: usize },
    #[error("unencodable message: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Length-prefixed bincode frames: decodes `In`, encodes anything `Serialize`.
///
/// The server uses `FrameCodec<ClientMessage>`, a client
/// `FrameCodec<ServerMessage>`. The announced length is checked against
/// `max_frame_len` before any body byte is awaited or allocated.
#[derive(Debug)]
pub struct FrameCodec<In> {
    max_frame_len: usize,
    _in: PhantomData<fn() -> In>,
}

impl<In> FrameCodec<In> {
    pub fn new(max_frame_len: usize) -> Self {
        FrameCodec {
            max_frame_len,
            _in: PhantomData,
        }
    }

    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl<In> Default for FrameCodec<In> {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl<In> Clone for FrameCodec<In> {
    fn clone(&self) -> Self {
        FrameCodec::new(self.max_frame_len)
    }
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl<In: DeserializeOwned> Decoder for FrameCodec<In> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        if src.remaining() < LEN_SIZE {
            return Ok(None);
        }
        let len = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame_len {
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame_len,
            });
        }
        if src.remaining() < LEN_SIZE + len {
            src.reserve(LEN_SIZE + len - src.remaining());
            return Ok(None);
        }
        src.advance(LEN_SIZE);
        let payload = src.split_to(len);
        // The payload is bounded by the frame length. Bincode's limit is a
        // fixed 4 MiB (four default frames), whatever this codec's maximum
        // frame: a const generic cannot follow a run-time maximum. It caps
        // what a lying collection length can make bincode allocate while
        // decoding one frame.
        let (message, used) = bincode::serde::decode_from_slice::<In, _>(
            &payload,
            config().with_limit::<{ 4 * DEFAULT_MAX_FRAME_LEN }>(),
        )?;
        if used != len {
            return Err(FrameError::TrailingBytes { extra: len - used });
        }
        Ok(Some(message))
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&item, dst)
    }
}

/// Appends one frame holding `message` to `dst`; on an error `dst` is left
/// as it was.
pub fn encode_frame<T: Serialize + ?Sized>(
    message: &T,
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    let start = dst.len();
    dst.put_u32_le(0);
    let mut writer = dst.writer();
    if let Err(err) = bincode::serde::encode_into_std_write(message, &mut writer, config()) {
        writer.into_inner().truncate(start);
        return Err(err.into());
    }
    let dst = writer.into_inner();
    let len = (dst.len() - start - LEN_SIZE) as u32;
    dst[start..start + LEN_SIZE].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends one frame of ours (a [`ServerMessage`] or [`ClientMessage`]).
/// Encoding them into memory cannot fail (no maps, no size limit), so a
/// failure is a bug: it panics in debug builds; in release builds nothing is
/// appended, so the stream stays well-formed. The one frame encoder of
/// server and client.
pub fn push_frame<T: Serialize + ?Sized>(message: &T, dst: &mut BytesMut) {
    if let Err(err) = encode_frame(message, dst) {
        debug_assert!(false, "cannot encode a frame of ours: {err}");
    }
}

/// The bincode bytes of one message of ours without a frame around it (a
/// NATS payload is framed by NATS), with [`push_frame`]'s failure policy.
pub fn payload<T: Serialize + ?Sized>(message: &T) -> bytes::Bytes {
    match bincode::serde::encode_to_vec(message, config()) {
        Ok(bytes) => bytes.into(),
        Err(err) => {
            debug_assert!(false, "cannot encode a message of ours: {err}");
            bytes::Bytes::new()
        }
    }
}

/// One frame of ours, as [`push_frame`] appends it.
pub fn frame<T: Serialize + ?Sized>(message: &T) -> bytes::Bytes {
    let mut out = BytesMut::new();
    push_frame(message, &mut out);
    out.freeze()
}

/// Most bytes of a [`ServerMessage::Positions`] frame besides its entries:
/// the length, the variant tag (a varint below 251: one byte) and the entry
/// count (a varint `u64`: at most a marker byte and 8 bytes); see
/// [`encode_positions_frame`].
pub const POSITIONS_FRAME_OVERHEAD: usize = LEN_SIZE + 1 + (1 + std::mem::size_of::<u64>());

/// Appends the bincode bytes of `entries` as they appear inside a
/// [`ServerMessage::Positions`] frame, without the frame or the count: a
/// piece that [`encode_positions_frame`] joins with others. The server
/// encodes each grid cell's moves once this way and shares the bytes among
/// every client whose view covers the cell.
pub fn encode_position_entries(
    entries: &[PlayerPosition],
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    let mut writer = dst.writer();
    for entry in entries {
        bincode::serde::encode_into_std_write(entry, &mut writer, config())?;
    }
    Ok(())
}

/// Appends one [`ServerMessage::Positions`] frame made of `count` entries
/// already encoded by [`encode_position_entries`] into `pieces`, copied as
/// they are. The frame is byte for byte the one [`encode_frame`] makes of
/// all the entries: bincode writes a sequence as its varint length followed
/// by each element on its own.
///
/// ```text
/// +-- len: u32 LE --+-- tag: Positions --+-- count: varint --+-- pieces --+
/// ```
pub fn encode_positions_frame<'a>(
    count: usize,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    let start = dst.len();
    dst.put_u32_le(0);
    // The variant tag, then the count: an empty batch's bytes are the tag
    // and a zero count, one byte.
    let mut writer = dst.writer();
    bincode::serde::encode_into_std_write(
        ServerMessage::Positions(Vec::new()),
        &mut writer,
        config(),
    )?;
    let dst = writer.into_inner();
    dst.truncate(dst.len() - 1);
    let mut writer = dst.writer();
    bincode::serde::encode_into_std_write(count as u64, &mut writer, config())?;
    let dst = writer.into_inner();
    for piece in pieces {
        dst.extend_from_slice(piece);
    }
    let len = (dst.len() - start - LEN_SIZE) as u32;
    dst[start..start + LEN_SIZE].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::Position;
    use crate::math::{MathOp, MathStatus};
    use crate::native::*;

    fn samples() -> Vec<ServerMessage> {
        let alice = PlayerInfo {
            id: 1,
            name: "alice".into(),
            kind: PlayerKind::Native,
        };
        vec![
            ServerMessage::Welcome {
                id: 1,
                protocol_version: PROTOCOL_VERSION,
                server: "t".into(),
            },
            ServerMessage::Rejected {
                reason: RejectReason::UnsupportedVersion {
                    client: 9,
                    server: 1,
                },
                server_protocol_version: 1,
            },
            ServerMessage::Snapshot {
                players: vec![PlayerState {
                    info: alice.clone(),
                    position: Some(Position::new(-5, 6)),
                }],
            },
            ServerMessage::PlayerJoined(alice.clone()),
            ServerMessage::PlayerLeft { id: 1 },
            ServerMessage::Positions(vec![PlayerPosition {
                id: 2,
                position: Position::new(i16::MIN, i16::MAX),
            }]),
            ServerMessage::MathAnswer {
                request_id: 4,
                status: MathStatus::Ok,
                value: 0.5,
            },
            ServerMessage::Ping { nonce: u64::MAX },
            ServerMessage::Pong { nonce: 0 },
            ServerMessage::Goodbye {
                reason: "bye".into(),
            },
            ServerMessage::Roster(vec![alice.clone()]),
            ServerMessage::RosterJoined(alice.clone()),
            ServerMessage::RosterLeft { id: 7 },
            ServerMessage::Overview(Overview::Players(vec![PlayerPosition {
                id: 5,
                position: Position::new(3000, 3000),
            }])),
            ServerMessage::Overview(Overview::Density(DensityGrid {
                origin: Position::new(-2048, 0),
                cell_size: 128,
                columns: 2,
                counts: vec![0, 1, 250, 70_000],
            })),
        ]
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = BytesMut::new();
        let mut codec = FrameCodec::<ServerMessage>::default();
        for message in samples() {
            codec.encode(&message, &mut buf).unwrap();
        }
        for expected in samples() {
            assert_eq!(codec.decode(&mut buf).unwrap(), Some(expected));
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn client_messages_round_trip() {
        let messages = vec![
            ClientMessage::Hello {
                protocol_version: PROTOCOL_VERSION,
                name: "bob".into(),
            },
            ClientMessage::MyPosition(Position::new(3, -4)),
            ClientMessage::MathQuery {
                request_id: 7,
                op: MathOp::Division,
                a: 1,
                b: 0,
            },
            ClientMessage::Ping { nonce: 42 },
            ClientMessage::Pong { nonce: 43 },
            ClientMessage::Bye,
        ];
        let mut buf = BytesMut::new();
        let mut codec = FrameCodec::<ClientMessage>::default();
        for message in &messages {
            codec.encode(message, &mut buf).unwrap();
        }
        for expected in messages {
            assert_eq!(codec.decode(&mut buf).unwrap(), Some(expected));
        }
    }

    #[test]
    fn version_3_messages_come_after_every_older_variant() {
        // A version-2 reader knows variants 0..=9 (Goodbye is 9): the new
        // ones must not shift them.
        let tag = |message: &ServerMessage| frame(message)[LEN_SIZE];
        assert_eq!(tag(&ServerMessage::Goodbye { reason: "".into() }), 9);
        assert_eq!(tag(&ServerMessage::Roster(Vec::new())), 10);
        assert_eq!(tag(&ServerMessage::RosterLeft { id: 1 }), 12);
        assert_eq!(
            tag(&ServerMessage::Overview(Overview::Players(Vec::new()))),
            13
        );
    }

    #[test]
    fn a_density_grid_reads_by_column_and_row() {
        let grid = DensityGrid {
            origin: Position::new(0, 0),
            cell_size: 64,
            columns: 3,
            counts: vec![1, 2, 3, 4, 5, 6],
        };
        assert_eq!(grid.rows(), 2);
        assert_eq!(grid.count(2, 1), Some(6));
        assert_eq!(grid.count(3, 0), None, "past the columns");
        assert_eq!(grid.count(0, 2), None, "past the rows");
        let empty = DensityGrid { columns: 0, ..grid };
        assert_eq!(empty.rows(), 0);
        assert_eq!(empty.count(0, 0), None);
    }

    #[test]
    fn hello_layout_is_stable() {
        // Variant 0, varint version 1, varint name length 2, "ab".
        let mut buf = BytesMut::new();
        encode_frame(
            &ClientMessage::Hello {
                protocol_version: 1,
                name: "ab".into(),
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(&buf[..], &[5, 0, 0, 0, 0, 1, 2, b'a', b'b']);
    }

    #[test]
    fn every_truncation_needs_more_bytes() {
        let mut full = BytesMut::new();
        for message in samples() {
            encode_frame(&message, &mut full).unwrap();
            for cut in 0..full.len() {
                let mut buf = BytesMut::from(&full[..cut]);
                assert!(matches!(
                    FrameCodec::<ServerMessage>::default().decode(&mut buf),
                    Ok(None)
                ));
            }
            full.clear();
        }
    }

    #[test]
    fn oversized_frame_is_rejected_before_its_body() {
        let mut codec = FrameCodec::<ClientMessage>::new(16);
        let mut buf = BytesMut::from(&17u32.to_le_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLong { len: 17, max: 16 })
        ));
        let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn garbage_payloads_are_errors() {
        let mut codec = FrameCodec::<ClientMessage>::default();
        // Unknown variant 200.
        let mut buf = BytesMut::from(&[1, 0, 0, 0, 200][..]);
        assert!(matches!(codec.decode(&mut buf), Err(FrameError::Decode(_))));
        // Bye followed by a stray byte inside the same frame.
        let mut buf = BytesMut::from(&[2, 0, 0, 0, 5, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TrailingBytes { extra: 1 })
        ));
        // A name claiming 2^60 bytes inside a 12-byte frame.
        let mut buf = BytesMut::from(&[12, 0, 0, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x10, 0][..]);
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn a_positions_frame_joined_from_pieces_is_the_plain_encoding() {
        let entry = |id, x| PlayerPosition {
            id,
            position: Position::new(x, -x),
        };
        // Ids and coordinates on both sides of varint thresholds.
        let all: Vec<PlayerPosition> = (0..300)
            .map(|i| entry(i * 997, (i as i16 - 150) * 211))
            .collect();
        for cuts in [vec![], vec![0], vec![1, 2], vec![100, 250, 299]] {
            let mut pieces = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([all.len()]) {
                let mut piece = BytesMut::new();
                encode_position_entries(&all[from..cut], &mut piece).unwrap();
                pieces.push(piece);
                from = cut;
            }
            let mut joined = BytesMut::new();
            encode_positions_frame(all.len(), pieces.iter().map(|p| &p[..]), &mut joined).unwrap();
            let mut plain = BytesMut::new();
            encode_frame(&ServerMessage::Positions(all.clone()), &mut plain).unwrap();
            assert_eq!(joined, plain);
        }
        let mut empty = BytesMut::new();
        encode_positions_frame(0, [], &mut empty).unwrap();
        assert_eq!(
            FrameCodec::<ServerMessage>::default()
                .decode(&mut empty)
                .unwrap(),
            Some(ServerMessage::Positions(Vec::new()))
        );
    }

    #[test]
    fn positions_frame_overhead_is_the_largest_frame_without_entries() {
        let mut most = BytesMut::new();
        encode_positions_frame(usize::MAX, [], &mut most).unwrap();
        assert_eq!(most.len(), POSITIONS_FRAME_OVERHEAD);
        let mut empty = BytesMut::new();
        encode_positions_frame(0, [], &mut empty).unwrap();
        assert!(empty.len() <= POSITIONS_FRAME_OVERHEAD);
    }
}
