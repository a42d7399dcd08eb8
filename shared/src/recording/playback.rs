//! A recording on disk (one file or a rotated set) as a world at any time:
//! what `replay --at` prints and what the replay views play.
//!
//! Opening scans every block once, checking every checksum, and keeps only
//! where the snapshots are; asking for a time then reads from the last
//! snapshot before it, so seeking costs at most one snapshot interval of
//! records.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::format::{Header, Record, RecordingError};
use super::reader::{Reader, Skipped};
use crate::ClientId;
use crate::native::PlayerState;

/// The `index`-th file of the recording at `path`: `path` itself, then
/// `path.1`, `path.2`, ….
pub fn rotated_path(path: &Path, index: u32) -> PathBuf {
    if index == 0 {
        return path.to_path_buf();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// The world at one moment of a recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorldAt {
    players: BTreeMap<ClientId, PlayerState>,
}

impl WorldAt {
    /// Applies one record: what the live world did at that moment.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Time { .. } => {}
            Record::Join(info) => {
                self.players.insert(
                    info.id,
                    PlayerState {
                        info: info.clone(),
                        position: None,
                    },
                );
            }
            Record::Move { id, position } => {
                if let Some(player) = self.players.get_mut(id) {
                    player.position = Some(*position);
                }
            }
            Record::Leave { id } => {
                self.players.remove(id);
            }
            Record::Snapshot(players) => {
                self.players = players.iter().map(|p| (p.info.id, p.clone())).collect();
            }
        }
    }

    /// Every player, by id.
    pub fn players(&self) -> impl Iterator<Item = &PlayerState> {
        self.players.values()
    }

    pub fn len(&self) -> usize {
        self.players.len()
    }

    pub fn is_empty(&self) -> bool {
        self.players.is_empty()
    }

    /// Writes one line per player, by id: `id name x y` (`-` for both
    /// coordinates of a player that has not sent a position yet). The name
    /// may hold spaces; the coordinates are the last two fields.
    pub fn write_lines(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        for player in self.players() {
            let info = &player.info;
            match player.position {
                Some(p) => writeln!(out, "{} {} {} {}", info.id, info.name, p.x, p.y)?,
                None => writeln!(out, "{} {} - -", info.id, info.name)?,
            }
        }
        Ok(())
    }
}

/// Seconds from the start of a recording (`--at`), as ms: a finite number
/// of seconds, 0 or more.
pub fn parse_seconds(text: &str) -> Result<u64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a number of seconds: {e}"))?;
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(format!(
            "{seconds} is not between 0 and {MAX_SECONDS} seconds"
        ));
    }
    Ok((seconds * 1000.0).round() as u64)
}

/// The largest `--at`: about 31,700 years, far past any recording, and
/// still exact in ms.
const MAX_SECONDS: f64 = 1e12;

/// A recording that cannot be opened or read, and which file.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: RecordingError,
    },
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: belongs to another recording (file {found_index} of recording {found_id:#x}, expected file {index} of {id:#x})"
    )]
    Foreign {
        path: PathBuf,
        index: u32,
        id: u64,
        found_index: u32,
        found_id: u64,
    },
}

/// Damage skipped in one file of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedIn {
    pub path: PathBuf,
    pub skipped: Skipped,
}

impl fmt::Display for SkippedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: skipped {} bytes from offset {}: {}",
            self.path.display(),
            self.skipped.bytes,
            self.skipped.offset,
            self.skipped.damage
        )
    }
}

#[derive(Debug, Clone)]
struct FileEntry {
    path: PathBuf,
    header: Header,
}

/// Where a reader can start: a block that begins with a snapshot (or the
/// first block of a file).
#[derive(Debug, Clone, Copy)]
struct SeekPoint {
    file: usize,
    offset: u64,
    ms: u64,
}

/// A recording: its files in order, where its snapshots are, how long it
/// is, and what damage was skipped.
#[derive(Debug, Clone)]
pub struct Recording {
    files: Vec<FileEntry>,
    seeks: Vec<SeekPoint>,
    end_ms: u64,
    skipped: Vec<SkippedIn>,
}

impl Recording {
    /// Opens `path` and the files rotated after it (`path.1`, …), reading
    /// every block once. A damaged block ends its file (the rest is
    /// reported by [`Recording::skipped`]); a bad header is an error.
    pub fn open(path: &Path) -> Result<Recording, OpenError> {
        let mut recording = Recording {
            files: Vec::new(),
            seeks: Vec::new(),
            end_ms: 0,
            skipped: Vec::new(),
        };
        for index in 0u32.. {
            let path = rotated_path(path, index);
            if index > 0 && !path.exists() {
                break;
            }
            recording.scan(path, index)?;
        }
        Ok(recording)
    }

    fn scan(&mut self, path: PathBuf, index: u32) -> Result<(), OpenError> {
        let file = File::open(&path).map_err(|source| OpenError::Open {
            path: path.clone(),
            source,
        })?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let read_error = |source| OpenError::Read {
            path: path.clone(),
            source,
        };
        let mut reader = Reader::new(BufReader::new(file)).map_err(read_error)?;
        let header = *reader.header();
        if let Some(first) = self.files.first() {
            let expected = first.header.recording_id;
            if header.recording_id != expected || header.file_index != index {
                return Err(OpenError::Foreign {
                    path,
                    index,
                    id: expected,
                    found_index: header.file_index,
                    found_id: header.recording_id,
                });
            }
        }
        let file_number = self.files.len();
        let mut first = true;
        loop {
            match reader.next_block() {
                Ok(Some(block)) => {
                    if first || block.starts_with_snapshot() {
                        self.seeks.push(SeekPoint {
                            file: file_number,
                            offset: block.offset,
                            ms: block.start_ms,
                        });
                    }
                    first = false;
                    self.end_ms = self.end_ms.max(block.end_ms());
                }
                Ok(None) => break,
                Err(RecordingError::Damaged { offset, damage }) => {
                    self.skipped.push(SkippedIn {
                        path: path.clone(),
                        skipped: Skipped {
                            offset,
                            bytes: len.saturating_sub(offset),
                            damage,
                        },
                    });
                    break;
                }
                Err(other) => return Err(read_error(other)),
            }
        }
        self.files.push(FileEntry { path, header });
        Ok(())
    }

    /// The recording's length: the time of its last good record, in ms.
    pub fn duration_ms(&self) -> u64 {
        self.end_ms
    }

    /// When the recording started, in ms since the Unix epoch.
    pub fn start_unix_ms(&self) -> u64 {
        self.files.first().map_or(0, |f| f.header.start_unix_ms)
    }

    /// The files, in the order they play.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    /// Damage found while opening: everything before it plays.
    pub fn skipped(&self) -> &[SkippedIn] {
        &self.skipped
    }

    /// The world as it was at `ms` (ms since the start; past the end: as
    /// it was at the end).
    pub fn world_at(&self, ms: u64) -> Result<WorldAt, OpenError> {
        let mut playback = Playback::new(self.clone());
        playback.seek(ms)?;
        Ok(playback.world)
    }

    /// Records from the seek point at or before `ms`.
    fn records_from(&self, ms: u64) -> Records {
        let start = self
            .seeks
            .iter()
            .rposition(|s| s.ms <= ms)
            .map_or(self.seeks.first().copied(), |i| Some(self.seeks[i]));
        Records {
            files: self.files.clone(),
            file: start.map_or(self.files.len(), |s| s.file),
            reader: None,
            start_offset: start.map(|s| s.offset),
            queue: VecDeque::new(),
        }
    }
}

/// Records in order from a seek point, across the files of a set. A
/// damaged block ends its file, as when the recording was opened.
struct Records {
    files: Vec<FileEntry>,
    file: usize,
    reader: Option<Reader<BufReader<File>>>,
    /// Where to start in `files[file]` (then the first block of the next).
    start_offset: Option<u64>,
    queue: VecDeque<(u64, Record)>,
}

impl Records {
    /// The next record without taking it.
    fn peek(&mut self) -> Result<Option<&(u64, Record)>, OpenError> {
        while self.queue.is_empty() {
            if !self.fill()? {
                return Ok(None);
            }
        }
        Ok(self.queue.front())
    }

    fn take(&mut self) -> Option<(u64, Record)> {
        self.queue.pop_front()
    }

    /// Reads the next block into the queue; false at the end of the set.
    fn fill(&mut self) -> Result<bool, OpenError> {
        loop {
            let Some(entry) = self.files.get(self.file) else {
                return Ok(false);
            };
            let path = entry.path.clone();
            let read_error = |source| OpenError::Read {
                path: path.clone(),
                source,
            };
            if self.reader.is_none() {
                let mut file = File::open(&path).map_err(|source| OpenError::Open {
                    path: path.clone(),
                    source,
                })?;
                let offset = self.start_offset.take().unwrap_or(super::HEADER_LEN as u64);
                file.seek(SeekFrom::Start(offset))
                    .map_err(|source| read_error(RecordingError::Io { offset, source }))?;
                self.reader = Some(Reader::resume(BufReader::new(file), entry.header, offset));
            }
            let Some(reader) = self.reader.as_mut() else {
                return Ok(false);
            };
            match reader.next_block() {
                Ok(Some(block)) => {
                    self.queue.extend(block.records);
                    return Ok(true);
                }
                Ok(None) | Err(RecordingError::Damaged { .. }) => {
                    self.reader = None;
                    self.file += 1;
                }
                Err(other) => return Err(read_error(other)),
            }
        }
    }
}

/// Plays a recording: a clock that moves forward record by record, and
/// seeks by starting again from the snapshot before the target.
pub struct Playback {
    recording: Recording,
    records: Records,
    world: WorldAt,
    /// The time played up to, in ms.
    now_ms: u64,
}

impl Playback {
    /// A playback before the first record.
    pub fn new(recording: Recording) -> Playback {
        let records = recording.records_from(0);
        Playback {
            recording,
            records,
            world: WorldAt::default(),
            now_ms: 0,
        }
    }

    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    /// The world as played so far.
    pub fn world(&self) -> &WorldAt {
        &self.world
    }

    /// The time played up to, in ms since the start.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Jumps to `ms` (backwards or forwards): the world is rebuilt from the
    /// last snapshot before it.
    pub fn seek(&mut self, ms: u64) -> Result<&WorldAt, OpenError> {
        self.records = self.recording.records_from(ms);
        self.world = WorldAt::default();
        self.now_ms = 0;
        self.advance(ms, |_| {})?;
        Ok(&self.world)
    }

    /// Plays forward to `ms`, handing each record to `each` after it is
    /// applied to the world. Does nothing if `ms` is not after now.
    pub fn advance(&mut self, ms: u64, mut each: impl FnMut(&Record)) -> Result<(), OpenError> {
        while let Some((at, _)) = self.records.peek()? {
            if *at > ms {
                break;
            }
            if let Some((_, record)) = self.records.take() {
                self.world.apply(&record);
                each(&record);
            }
        }
        self.now_ms = self.now_ms.max(ms);
        Ok(())
    }
}
