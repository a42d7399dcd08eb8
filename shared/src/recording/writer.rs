//! Records into checksummed blocks. The writer only builds bytes and hands
//! them to its `Write`; when they reach the disk (flush, fdatasync) is the
//! caller's policy.

use std::io::Write;

use super::format::{BLOCK_HEADER_LEN, Header, MAX_BLOCK_LEN, Record, RecordingError};
use crate::native::PlayerState;

/// A block is closed once its payload reaches this size, so a reader never
/// holds much more than this in memory for ordinary records.
pub const BLOCK_TARGET_LEN: usize = 1024 * 1024;

/// Writes one recording file: the header, then blocks of records.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    /// The payload of the block being built.
    block: Vec<u8>,
    /// The time of the last [`Record::Time`] in `block`.
    block_time: Option<u64>,
    written: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a file with `header`.
    pub fn new(mut out: W, header: &Header) -> Result<Self, RecordingError> {
        out.write_all(&header.to_bytes())
            .map_err(|source| RecordingError::Io { offset: 0, source })?;
        Ok(Writer {
            out,
            block: Vec::new(),
            block_time: None,
            written: header.to_bytes().len() as u64,
        })
    }

    /// Adds `record` at `time_ms` (ms since the recording started) to the
    /// current block, closing the block first if it is full.
    pub fn push(&mut self, time_ms: u64, record: &Record) -> Result<(), RecordingError> {
        if self.block.len() >= BLOCK_TARGET_LEN {
            self.finish_block()?;
        }
        if self.block_time != Some(time_ms) {
            Record::Time { ms: time_ms }.encode(&mut self.block);
            self.block_time = Some(time_ms);
        }
        record.encode(&mut self.block);
        Ok(())
    }

    /// Writes the whole world as the start of a new block: a place a reader
    /// can seek to.
    pub fn snapshot(
        &mut self,
        time_ms: u64,
        players: Vec<PlayerState>,
    ) -> Result<(), RecordingError> {
        self.finish_block()?;
        self.push(time_ms, &Record::Snapshot(players))
    }

    /// Bytes of the block being built (not yet handed to the `Write`).
    pub fn pending_len(&self) -> usize {
        self.block.len()
    }

    /// Bytes handed to the `Write` so far, the header included: the file's
    /// size once it is flushed.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Hands the current block, if it has records, to the `Write`; returns
    /// the bytes written.
    pub fn finish_block(&mut self) -> Result<usize, RecordingError> {
        if self.block.is_empty() {
            return Ok(0);
        }
        let len = self.block.len();
        if len > MAX_BLOCK_LEN {
            self.block.clear();
            self.block_time = None;
            return Err(RecordingError::BlockTooLarge { len });
        }
        let mut head = [0u8; BLOCK_HEADER_LEN];
        head[..4].copy_from_slice(&(len as u32).to_le_bytes());
        head[4..].copy_from_slice(&crc32fast::hash(&self.block).to_le_bytes());
        let offset = self.written;
        let result = self
            .out
            .write_all(&head)
            .and_then(|()| self.out.write_all(&self.block));
        self.block.clear();
        self.block_time = None;
        result.map_err(|source| RecordingError::Io { offset, source })?;
        self.written += (BLOCK_HEADER_LEN + len) as u64;
        Ok(BLOCK_HEADER_LEN + len)
    }

    /// The `Write` underneath (to flush or sync it).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}
