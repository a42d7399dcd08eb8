//! The overview ticker: about once a second, the whole world's overview
//! (see [`crate::fanout::overview`]) is encoded once and queued for every
//! version-3 subscriber with an area of interest.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::World;
use crate::fanout::{self, overview};

/// The longest a far join or leave may wait for the overview to carry it
/// to a view (see [`crate::fanout::Fanout::set_overview_carries_roster`]):
/// with a slower overview, roster frames wake their views at once.
pub const ROSTER_HOLD_MAX: Duration = Duration::from_secs(1);

impl World {
    /// Sends an overview every `period` until `shutdown`; each lists the
    /// players one by one while the world has at most `max_players`. Meanwhile
    /// the views' roster frames go with the overviews (or anything sooner).
    pub async fn run_overview(
        self: Arc<Self>,
        period: Duration,
        max_players: usize,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(period);
        // A late tick is not worth catching up: the next overview is newer.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // From now on a view's roster frames can wait for the next overview
        // (if it comes soon enough: see ROSTER_HOLD_MAX).
        let carries = period <= ROSTER_HOLD_MAX;
        self.lock().fanout.set_overview_carries_roster(carries);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            self.send_overview(max_players);
        }
        self.lock().fanout.set_overview_carries_roster(false);
    }

    /// Encodes one overview and queues it for every subscriber that gets
    /// one; returns how many it was queued for (0 when none wants it, in
    /// which case nothing is encoded).
    pub fn send_overview(&self, max_players: usize) -> usize {
        let mut inner = self.lock();
        if !inner.fanout.wants_overview() {
            return 0;
        }
        let encoded = overview::encode_overview(&inner.state, max_players);
        let limit = fanout::queue_limit(inner.state.player_count());
        let mut woken = Vec::new();
        let resynced = inner.fanout.push_overview(&encoded, limit, &mut woken);
        if resynced > 0 {
            // Their snapshots go with the next broadcast.
            self.news_added(inner);
        } else {
            drop(inner);
        }
        for wake in &woken {
            wake.notify_one();
        }
        self.resyncs.inc_by(resynced as u64);
        woken.len()
    }
}
