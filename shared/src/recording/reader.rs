//! Blocks back into records. Every error names the byte offset where it
//! was found; damage (a torn tail after a crash, a flipped bit) ends the
//! reading at the last good block and is reported as what was skipped.

use std::io::{self, Read};

use super::format::{
    BLOCK_HEADER_LEN, Damage, HEADER_LEN, Header, MAX_BLOCK_LEN, Record, RecordError,
    RecordingError,
};

/// The good records of one block, each with its time (ms since the
/// recording started). Time records are resolved, not returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Where the block starts in its file.
    pub offset: u64,
    /// The time of its first record.
    pub start_ms: u64,
    pub records: Vec<(u64, Record)>,
}

impl Block {
    /// Whether the block starts with a snapshot: a place to seek to.
    pub fn starts_with_snapshot(&self) -> bool {
        matches!(self.records.first(), Some((_, Record::Snapshot(_))))
    }

    /// The time of its last record.
    pub fn end_ms(&self) -> u64 {
        self.records.last().map_or(self.start_ms, |(ms, _)| *ms)
    }
}

/// What a reader left unread because it was damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where the damage starts: everything before it was read.
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub bytes: u64,
    pub damage: Damage,
}

/// Reads one recording file, block by block.
#[derive(Debug)]
pub struct Reader<R: Read> {
    inner: R,
    header: Header,
    offset: u64,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R) -> Result<Self, RecordingError> {
        let mut bytes = [0u8; HEADER_LEN];
        let got = read_full(&mut inner, &mut bytes, 0)?;
        let header = Header::parse(&bytes[..got])?;
        Ok(Reader {
            inner,
            header,
            offset: HEADER_LEN as u64,
        })
    }

    /// Starts reading blocks at `offset` of a file whose header was already
    /// read (seeking: `inner` must be positioned at `offset`).
    pub fn resume(inner: R, header: Header, offset: u64) -> Self {
        Reader {
            inner,
            header,
            offset,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Where the next block starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next block; `Ok(None)` at a clean end of the file. After an
    /// error the reader must not be used again.
    pub fn next_block(&mut self) -> Result<Option<Block>, RecordingError> {
        let offset = self.offset;
        let damaged = |damage| RecordingError::Damaged { offset, damage };
        let mut head = [0u8; BLOCK_HEADER_LEN];
        let got = read_full(&mut self.inner, &mut head, offset)?;
        if got == 0 {
            return Ok(None);
        }
        if got < BLOCK_HEADER_LEN {
            return Err(damaged(Damage::TornHeader {
                needed: BLOCK_HEADER_LEN,
                available: got,
            }));
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let stored = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_BLOCK_LEN {
            return Err(damaged(Damage::TooLong {
                len,
                max: MAX_BLOCK_LEN,
            }));
        }
        // Grows with what is really there: a corrupt length in a short file
        // does not allocate what it claims.
        let mut payload = Vec::new();
        let payload_at = offset + BLOCK_HEADER_LEN as u64;
        (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut payload)
            .map_err(|source| RecordingError::Io {
                offset: payload_at,
                source,
            })?;
        if payload.len() < len {
            return Err(damaged(Damage::TornPayload {
                len,
                available: payload.len(),
            }));
        }
        let computed = crc32fast::hash(&payload);
        if computed != stored {
            return Err(damaged(Damage::Checksum { stored, computed }));
        }
        let records = decode_records(&payload, payload_at).map_err(damaged)?;
        self.offset = payload_at + len as u64;
        let start_ms = records.first().map_or(0, |(ms, _)| *ms);
        Ok(Some(Block {
            offset,
            start_ms,
            records,
        }))
    }
}

/// The records of a block's payload (found at `payload_at` in the file).
fn decode_records(payload: &[u8], payload_at: u64) -> Result<Vec<(u64, Record)>, Damage> {
    let mut records = Vec::new();
    let mut time = None;
    let mut at = 0;
    while at < payload.len() {
        let bad = |reason| Damage::BadRecord {
            at: payload_at + at as u64,
            reason,
        };
        let (record, len) = Record::decode(&payload[at..]).map_err(bad)?;
        match (record, time) {
            (Record::Time { ms }, _) => time = Some(ms),
            (_, None) => return Err(bad(RecordError::NoTime)),
            (record, Some(ms)) => records.push((ms, record)),
        }
        at += len;
    }
    Ok(records)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(inner: &mut R, buf: &mut [u8], offset: u64) -> Result<usize, RecordingError> {
    let mut got = 0;
    while got < buf.len() {
        match inner.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(RecordingError::Io {
                    offset: offset + got as u64,
                    source,
                });
            }
        }
    }
    Ok(got)
}

/// Every good block of a whole file in memory, and what was skipped after
/// the last of them (damage ends the reading; a bad header is an error).
pub fn read_all(bytes: &[u8]) -> Result<(Header, Vec<Block>, Option<Skipped>), RecordingError> {
    let mut reader = Reader::new(bytes)?;
    let mut blocks = Vec::new();
    loop {
        match reader.next_block() {
            Ok(Some(block)) => blocks.push(block),
            Ok(None) => return Ok((reader.header, blocks, None)),
            Err(RecordingError::Damaged { offset, damage }) => {
                let skipped = Skipped {
                    offset,
                    bytes: bytes.len() as u64 - offset,
                    damage,
                };
                return Ok((reader.header, blocks, Some(skipped)));
            }
            Err(other) => return Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::Position;
    use crate::native::{PlayerInfo, PlayerKind, PlayerState};
    use crate::recording::format::VERSION;
    use crate::recording::writer::Writer;

    fn header() -> Header {
        Header {
            version: VERSION,
            file_index: 0,
            start_unix_ms: 1,
            recording_id: 7,
        }
    }

    fn alice() -> PlayerInfo {
        PlayerInfo {
            id: 1,
            name: "alice".into(),
            kind: PlayerKind::Native,
        }
    }

    /// Two blocks: a snapshot, then a join and two moves.
    fn two_blocks() -> Vec<u8> {
        let mut writer = Writer::new(Vec::new(), &header()).unwrap();
        writer.snapshot(0, Vec::new()).unwrap();
        writer.finish_block().unwrap();
        writer.push(10, &Record::Join(alice())).unwrap();
        writer
            .push(
                10,
                &Record::Move {
                    id: 1,
                    position: Position::new(3, 4),
                },
            )
            .unwrap();
        writer
            .push(
                20,
                &Record::Move {
                    id: 1,
                    position: Position::new(5, 6),
                },
            )
            .unwrap();
        writer.finish_block().unwrap();
        writer.get_mut().clone()
    }

    #[test]
    fn blocks_round_trip_with_their_times() {
        let (_, blocks, skipped) = read_all(&two_blocks()).unwrap();
        assert_eq!(skipped, None);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].starts_with_snapshot());
        assert_eq!(
            blocks[1].records,
            vec![
                (10, Record::Join(alice())),
                (
                    10,
                    Record::Move {
                        id: 1,
                        position: Position::new(3, 4)
                    }
                ),
                (
                    20,
                    Record::Move {
                        id: 1,
                        position: Position::new(5, 6)
                    }
                ),
            ]
        );
    }

    #[test]
    fn every_truncation_reads_the_whole_blocks_before_it() {
        let bytes = two_blocks();
        let (_, whole, _) = read_all(&bytes).unwrap();
        let second = whole[1].offset as usize;
        for cut in HEADER_LEN..bytes.len() {
            let (_, blocks, skipped) = read_all(&bytes[..cut]).unwrap();
            let expected = if cut >= second { 1 } else { 0 };
            assert_eq!(blocks.len(), expected, "cut at {cut}");
            if cut != HEADER_LEN && cut != second {
                let skipped = skipped.expect("a torn tail is reported");
                assert_eq!(skipped.bytes as usize, cut - skipped.offset as usize);
                assert_eq!(
                    skipped.offset as usize,
                    if cut >= second { second } else { HEADER_LEN }
                );
            }
        }
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error_at_its_block() {
        let mut bytes = two_blocks();
        let (_, whole, _) = read_all(&bytes).unwrap();
        let second = whole[1].offset;
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let (_, blocks, skipped) = read_all(&bytes).unwrap();
        assert_eq!(blocks.len(), 1);
        let skipped = skipped.unwrap();
        assert_eq!(skipped.offset, second);
        assert!(
            matches!(skipped.damage, Damage::Checksum { .. }),
            "{:?}",
            skipped.damage
        );
    }

    #[test]
    fn a_huge_length_is_refused_without_allocating_it() {
        let mut bytes = header().to_bytes().to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let (_, _, skipped) = read_all(&bytes).unwrap();
        assert!(matches!(skipped.unwrap().damage, Damage::TooLong { .. }));
    }

    #[test]
    fn a_block_without_a_time_is_a_bad_record_at_its_payload() {
        let mut payload = Vec::new();
        Record::Leave { id: 1 }.encode(&mut payload);
        let mut bytes = header().to_bytes().to_vec();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let (_, _, skipped) = read_all(&bytes).unwrap();
        assert_eq!(
            skipped.unwrap().damage,
            Damage::BadRecord {
                at: (HEADER_LEN + BLOCK_HEADER_LEN) as u64,
                reason: RecordError::NoTime
            }
        );
    }

    #[test]
    fn snapshots_keep_players_without_a_position() {
        let players = vec![
            PlayerState {
                info: alice(),
                position: None,
            },
            PlayerState {
                info: PlayerInfo {
                    id: 2,
                    name: "py".into(),
                    kind: PlayerKind::Legacy,
                },
                position: Some(Position::new(-32767, 32767)),
            },
        ];
        let mut writer = Writer::new(Vec::new(), &header()).unwrap();
        writer.snapshot(5, players.clone()).unwrap();
        writer.finish_block().unwrap();
        let (_, blocks, _) = read_all(writer.get_mut()).unwrap();
        assert_eq!(blocks[0].records, vec![(5, Record::Snapshot(players))]);
    }
}
