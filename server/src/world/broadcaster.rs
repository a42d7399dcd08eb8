//! The broadcaster task: turns the log into batches whenever there is news,
//! spaced by the [`Pacer`](super::Pacer).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::World;

/// Longest the broadcaster waits for the subscribers of one broadcast to
/// take it before it sends the next anyway (a subscriber stuck in a write
/// must not hold everyone back for long).
pub const MAX_GATHER: Duration = Duration::from_millis(20);

/// Subscribers of the last broadcast that may still be busy when the next
/// one starts, per subscriber: with thousands of them, the last few
/// stragglers are not worth waiting for. Below this many subscribers the
/// broadcaster waits for all of them.
pub const STRAGGLERS_PER_SUBSCRIBER: usize = 64;

/// Shortest wait the broadcaster sleeps for to space broadcasts (tokio's
/// timer has a millisecond's resolution; shorter gaps are not waited for).
const MIN_SPACING_SLEEP: Duration = Duration::from_millis(1);

impl World {
    /// Broadcasts whenever the log has news, until `shutdown`.
    ///
    /// There is no fixed tick: like Redis and NATS flushing what is there at
    /// the end of each pass, a change goes out at once when the broadcaster
    /// is idle, and changes that arrive while the subscribers are still
    /// taking the last broadcast gather into the next one. Batches thus grow
    /// with the load (one write per subscriber per batch) and stay single
    /// changes when the load is light. Under load the [`Pacer`](super::Pacer) spaces
    /// broadcasts by what they cost (see [`super::pacing`]): this task
    /// sleeps until it allows the next one. It also wakes when a position
    /// held back by the move-rate cap may go out. `floor` (the
    /// `--broadcast-interval-ms` flag, 0 by default) adds a fixed minimum
    /// time between broadcasts for those who want ticks.
    pub async fn run_broadcaster(self: Arc<Self>, floor: Duration, shutdown: CancellationToken) {
        self.eager.store(floor.is_zero(), Ordering::Relaxed);
        // Changes made before this point may be waiting for us.
        self.dirty.notify_one();
        let mut last = Instant::now() - floor;
        loop {
            let held_until = self.lock().held_until;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.dirty.notified() => {}
                _ = tokio::time::sleep_until(held_until.unwrap_or_else(Instant::now)), if held_until.is_some() => {}
            }
            {
                // Positions held back by the move-rate cap whose time came.
                let mut inner = self.lock();
                inner.held_until = inner.state.release_held(Instant::now());
                if !inner.has_news() {
                    continue;
                }
            }
            if !floor.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(last + floor) => {}
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.previous_broadcast_taken() => {}
            }
            let at = self.lock().next_broadcast_at();
            if at >= Instant::now() + MIN_SPACING_SLEEP {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            last = Instant::now();
            let resynced = self.broadcast();
            if resynced > 0 {
                tracing::debug!(subscribers = resynced, "backlogs coalesced into snapshots");
            }
        }
    }

    /// Resolves once the subscribers woken by the last broadcast have taken
    /// it (all but a few stragglers when there are thousands), or
    /// [`MAX_GATHER`] after it went out.
    async fn previous_broadcast_taken(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let give_up = {
                let inner = self.lock();
                if inner.ready_for_more() {
                    return;
                }
                match inner.pacer.last_start() {
                    Some(last) => last + MAX_GATHER,
                    None => return,
                }
            };
            tokio::select! {
                _ = drained => {}
                _ = tokio::time::sleep_until(give_up) => return,
            }
        }
    }
}
