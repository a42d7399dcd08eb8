//! The files of one recording: the current one, its rotation, and the
//! world as recorded so far (for the snapshots that start every file and
//! recur every `--record-snapshot-secs`).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use shared::native::PlayerState;
use shared::recording::{Header, Record, RecordingError, VERSION, WorldAt, Writer, rotated_path};
use thiserror::Error;

use super::RecordOptions;
use crate::world::{Event, RecordMetrics};

/// Bytes of a block's length and checksum, and of the time record a block
/// may start with: what one record may add to a file beyond its own bytes.
const RECORD_OVERHEAD: u64 = 8 + 9;

/// Why recording cannot start or go on.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error(
        "cannot record to {path}: it already exists (recordings are never overwritten; move it or choose another path)"
    )]
    Exists { path: PathBuf },
    #[error("cannot record to {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: RecordingError,
    },
    #[error("cannot sync {path} to the disk: {source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the recorder thread: {source}")]
    Thread {
        #[source]
        source: std::io::Error,
    },
}

/// Writes a recording, file after file.
#[derive(Debug)]
pub struct Sink {
    options: RecordOptions,
    header: Header,
    path: PathBuf,
    writer: Writer<File>,
    /// The world as recorded so far.
    world: WorldAt,
    /// The latest time written: records never go back in time, even if a
    /// batch made before a snapshot arrives after it.
    clock_ms: u64,
    /// Whether the current file holds anything after its first snapshot
    /// (only then may it rotate: a file always holds one block more).
    grown: bool,
    /// Whether anything was recorded since the last snapshot (an idle
    /// world writes no snapshots).
    changed: bool,
    /// Bytes already counted on `/metrics` (and synced).
    counted: u64,
    metrics: RecordMetrics,
    scratch: Vec<u8>,
}

impl Sink {
    /// Creates `options.path` (never overwriting: an existing file, or an
    /// existing `PATH.1`, is an error) and writes its header and an empty
    /// snapshot.
    pub fn create(options: RecordOptions, metrics: RecordMetrics) -> Result<Sink, RecordError> {
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let header = Header {
            version: VERSION,
            file_index: 0,
            start_unix_ms,
            recording_id: rand::random(),
        };
        let next = rotated_path(&options.path, 1);
        if next.exists() {
            return Err(RecordError::Exists { path: next });
        }
        let path = options.path.clone();
        let writer = open(&path, &header)?;
        let mut sink = Sink {
            options,
            header,
            path,
            writer,
            world: WorldAt::default(),
            clock_ms: 0,
            grown: false,
            changed: false,
            counted: 0,
            metrics,
            scratch: Vec::new(),
        };
        sink.write_snapshot(Vec::new())?;
        sink.flush()?;
        Ok(sink)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds one broadcast's events at `ms` (ms since the start).
    pub fn push_all(&mut self, ms: u64, events: &[Event]) -> Result<(), RecordError> {
        self.clock_ms = self.clock_ms.max(ms);
        for event in events {
            let record = match event {
                Event::Joined(info) => Record::Join(info.clone()),
                Event::Moved(id, position) => Record::Move {
                    id: *id,
                    position: *position,
                },
                Event::Left { id, .. } => Record::Leave { id: *id },
            };
            self.push(&record)?;
        }
        Ok(())
    }

    fn push(&mut self, record: &Record) -> Result<(), RecordError> {
        if self.would_pass_max(record) {
            self.rotate()?;
        }
        let clock = self.clock_ms;
        self.writer
            .push(clock, record)
            .map_err(|e| self.write_error(e))?;
        self.world.apply(record);
        self.grown = true;
        self.changed = true;
        Ok(())
    }

    /// Whether adding `record` would take a file that may rotate past
    /// `--record-max-bytes`.
    fn would_pass_max(&mut self, record: &Record) -> bool {
        if !self.grown {
            return false;
        }
        self.scratch.clear();
        record.encode(&mut self.scratch);
        let size = self.writer.bytes_written()
            + self.writer.pending_len() as u64
            + RECORD_OVERHEAD
            + self.scratch.len() as u64;
        size > self.options.max_bytes
    }

    /// Writes the whole world as recorded so far, if anything changed since
    /// the last snapshot (the one that starts each file is always written).
    pub fn snapshot(&mut self) -> Result<(), RecordError> {
        if !self.changed {
            return Ok(());
        }
        let players: Vec<PlayerState> = self.world.players().cloned().collect();
        if self.would_pass_max(&Record::Snapshot(players.clone())) {
            // The next file starts with this snapshot.
            return self.rotate();
        }
        self.write_snapshot(players)
    }

    fn write_snapshot(&mut self, players: Vec<PlayerState>) -> Result<(), RecordError> {
        let clock = self.clock_ms;
        self.writer
            .snapshot(clock, players)
            .map_err(|e| self.write_error(e))?;
        self.changed = false;
        Ok(())
    }

    /// Writes the current block and syncs the file's data to the disk, if
    /// anything was written since the last time.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.writer
            .finish_block()
            .map_err(|e| self.write_error(e))?;
        if self.writer.bytes_written() == self.counted {
            return Ok(());
        }
        self.writer
            .get_mut()
            .sync_data()
            .map_err(|source| RecordError::Sync {
                path: self.path.clone(),
                source,
            })?;
        let written = self.writer.bytes_written();
        self.metrics.bytes.inc_by(written - self.counted);
        self.counted = written;
        Ok(())
    }

    /// Closes the current file and starts the next, with a snapshot.
    fn rotate(&mut self) -> Result<(), RecordError> {
        self.flush()?;
        self.header.file_index += 1;
        let path = rotated_path(&self.options.path, self.header.file_index);
        let writer = open(&path, &self.header)?;
        tracing::info!(path = %path.display(), "recording rotated to a new file");
        self.path = path;
        self.writer = writer;
        self.counted = 0;
        self.grown = false;
        let players = self.world.players().cloned().collect();
        self.write_snapshot(players)
    }

    fn write_error(&self, source: RecordingError) -> RecordError {
        RecordError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// Creates a new file at `path` with `header`.
fn open(path: &Path, header: &Header) -> Result<Writer<File>, RecordError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => RecordError::Exists {
                path: path.to_path_buf(),
            },
            _ => RecordError::Create {
                path: path.to_path_buf(),
                source,
            },
        })?;
    Writer::new(file, header).map_err(|source| RecordError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::legacy::Position;
    use shared::native::{PlayerInfo, PlayerKind};
    use shared::recording::Recording;

    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sink-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sink(path: &Path, max_bytes: u64) -> Sink {
        let options = RecordOptions {
            path: path.to_path_buf(),
            max_bytes,
            snapshot_interval: Duration::from_secs(10),
        };
        Sink::create(options, RecordMetrics::default()).unwrap()
    }

    #[test]
    fn an_idle_world_writes_no_snapshots() {
        let dir = scratch("idle");
        let path = dir.join("idle.rec");
        let mut sink = sink(&path, 1 << 20);
        let join = Event::Joined(PlayerInfo {
            id: 1,
            name: "a".into(),
            kind: PlayerKind::Native,
        });
        sink.push_all(5, &[join]).unwrap();
        sink.snapshot().unwrap();
        sink.flush().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        for _ in 0..5 {
            sink.snapshot().unwrap();
            sink.flush().unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn snapshots_and_records_never_take_a_file_past_the_max() {
        let dir = scratch("max");
        let path = dir.join("max.rec");
        let max_bytes = 4096;
        let mut sink = sink(&path, max_bytes);
        let joins: Vec<Event> = (1..=60)
            .map(|id| {
                Event::Joined(PlayerInfo {
                    id,
                    name: format!("player-{id}"),
                    kind: PlayerKind::Legacy,
                })
            })
            .collect();
        sink.push_all(0, &joins).unwrap();
        for step in 1..=30i16 {
            let moves: Vec<Event> = (1..=60)
                .map(|id| Event::Moved(id, Position::new(step, -step)))
                .collect();
            sink.push_all(step as u64 * 100, &moves[..(step as usize % 7) * 9])
                .unwrap();
            sink.snapshot().unwrap();
            sink.flush().unwrap();
        }
        let files: Vec<PathBuf> = (0..)
            .map(|i| rotated_path(&path, i))
            .take_while(|p| p.exists())
            .collect();
        assert!(files.len() >= 3, "{files:?}");
        for file in &files {
            let size = std::fs::metadata(file).unwrap().len();
            assert!(size <= max_bytes, "{}: {size} bytes", file.display());
        }
        let world = Recording::open(&path)
            .unwrap()
            .world_at(u64::MAX / 2)
            .unwrap();
        assert_eq!(world.len(), 60);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
