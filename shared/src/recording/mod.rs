//! Recordings of the broadcast: what `gameserver --record` writes and what
//! `replay` reads. Pure (std only, no runtime, no engine) so the server, the
//! client and the fuzzer share one definition of the format.
//!
//! ```text
//! file   = header block*
//! header = +-- magic: 8 --+-- version: u16 LE --+-- header_len: u16 LE --+-- file_index: u32 LE --+
//!          +-- start_unix_ms: u64 LE --+-- recording_id: u64 LE --+-- crc: u32 LE (of the 32 bytes before) --+
//! block  = +-- len: u32 LE --+-- crc: u32 LE (CRC-32 of payload) --+-- payload: len bytes (records) --+
//! ```
//!
//! Every block starts with a [`Record::Time`], so a reader that starts at any
//! block knows the clock; a block that starts with a snapshot is a place a
//! reader can seek to. See PROTOCOL.md, "Recording", for the records.
//!
//! * [`format`]: the header, the records and their bytes.
//! * [`writer`]: records into blocks.
//! * [`reader`]: blocks back into records, with typed errors that name the
//!   byte offset, and a torn tail reported rather than fatal.
//! * [`playback`]: a recording (a rotated set of files) as a world you can
//!   ask "who was where at T".

pub mod format;
pub mod playback;
pub mod reader;
pub mod writer;

pub use format::{
    Damage, HEADER_LEN, Header, MAGIC, MAX_BLOCK_LEN, MAX_RECORD_NAME_LEN, Record, RecordError,
    RecordingError, VERSION,
};
pub use playback::{
    OpenError, Playback, Recording, SkippedIn, WorldAt, parse_seconds, rotated_path,
};
pub use reader::{Block, Reader, Skipped, read_all};
pub use writer::Writer;
