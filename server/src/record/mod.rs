//! `--record PATH`: a thread that writes the world's broadcasts to a
//! recording (the format is [`shared::recording`]).
//!
//! The world hands each broadcast's events to a bounded queue and never
//! waits for it (see [`crate::world::RecordFeed`]); this thread turns them
//! into records, writes a block and `fdatasync`s it every
//! [`FLUSH_INTERVAL`], so a `SIGKILL` loses at most that much, writes a
//! snapshot of the whole world every `--record-snapshot-secs`, and rotates
//! to `PATH.1`, `PATH.2`, … at `--record-max-bytes`. A write error stops the
//! recording (logged), never the server.

mod sink;

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::time::Instant;

use crate::world::{Next, RecordFeed, RecordMetrics, World};
pub use sink::{RecordError, Sink};

/// How often what was recorded is written and synced to the disk: the most
/// a crash loses.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Default `--record-max-bytes`: 1 GiB a file.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// Smallest `--record-max-bytes` (a file holds at least its header, a
/// snapshot and a block, whatever the limit).
pub const MIN_MAX_BYTES: u64 = 4096;

/// Default `--record-snapshot-secs`.
pub const DEFAULT_SNAPSHOT_SECS: u64 = 10;

/// What `--record` and its flags ask for.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub path: PathBuf,
    /// A file is closed and the next one opened before it would grow past
    /// this (one header, snapshot and block always fit).
    pub max_bytes: u64,
    pub snapshot_interval: Duration,
}

/// The running recorder.
#[derive(Debug)]
pub struct Recorder {
    thread: JoinHandle<()>,
}

impl Recorder {
    /// Creates the first file (an error if it exists or cannot be
    /// created) and starts recording `world`'s broadcasts.
    pub fn start(
        options: RecordOptions,
        world: &World,
        metrics: RecordMetrics,
    ) -> Result<Recorder, RecordError> {
        let started = Instant::now();
        let sink = Sink::create(options.clone(), metrics.clone())?;
        tracing::info!(path = %options.path.display(), max_bytes = options.max_bytes,
            snapshot_secs = options.snapshot_interval.as_secs(), "recording the world");
        let feed = world.record_to(metrics);
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(feed, sink, started, options.snapshot_interval))
            .map_err(|source| RecordError::Thread { source })?;
        Ok(Recorder { thread })
    }

    /// Waits until everything handed over was written and synced (call
    /// [`World::stop_recording`] first).
    pub fn finish(self) {
        if self.thread.join().is_err() {
            tracing::error!("the recorder thread panicked");
        }
    }
}

fn run(feed: RecordFeed, mut sink: Sink, started: Instant, snapshot_interval: Duration) {
    let ms_since_start = |at: Instant| at.saturating_duration_since(started).as_millis() as u64;
    let mut next_flush = std::time::Instant::now() + FLUSH_INTERVAL;
    let mut next_snapshot = std::time::Instant::now() + snapshot_interval;
    loop {
        let wait = next_flush.saturating_duration_since(std::time::Instant::now());
        let ended = match feed.next(wait) {
            Next::Batch(batch) => {
                let result = sink.push_all(ms_since_start(batch.at), &batch.events);
                if !stop_on_error(result, &sink) {
                    return;
                }
                false
            }
            Next::Idle => false,
            Next::Ended => true,
        };
        let now = std::time::Instant::now();
        if now >= next_snapshot {
            next_snapshot = now + snapshot_interval;
            if !stop_on_error(sink.snapshot(), &sink) {
                return;
            }
        }
        if ended || now >= next_flush {
            next_flush = now + FLUSH_INTERVAL;
            if !stop_on_error(sink.flush(), &sink) {
                return;
            }
        }
        if ended {
            tracing::info!(path = %sink.path().display(), "recording closed");
            return;
        }
    }
}

/// Logs a write error; false if there was one (the recording stops).
fn stop_on_error(result: Result<(), RecordError>, sink: &Sink) -> bool {
    match result {
        Ok(()) => true,
        Err(err) => {
            tracing::error!(path = %sink.path().display(), cause = %err,
                "recording stopped: cannot write the recording (the server goes on)");
            false
        }
    }
}
