//! The handles the world hands out: a subscriber's and a player's. Dropping
//! one unsubscribes (and makes the player leave).

use std::sync::Arc;

use shared::ClientId;
use shared::legacy::Position;
use tokio::sync::Notify;

use super::World;
use super::grid::Region;
use crate::fanout::{Outgoing, SubscriberKey};

/// A subscriber's handle: wait for news, take it. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    pub(super) world: Arc<World>,
    pub(super) key: SubscriberKey,
    pub(super) wake: Arc<Notify>,
}

impl Subscription {
    /// Resolves when there is something to send.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Takes what is queued.
    pub fn take_outgoing(&self) -> Outgoing {
        self.world.drain(self.key)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.world.unsubscribe(self.key);
    }
}

/// A player's place in the world, which is also its subscription; dropping
/// it makes the player leave.
#[derive(Debug)]
pub struct Membership {
    pub(super) id: ClientId,
    pub(super) subscription: Subscription,
}

impl Membership {
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Records positions this player sent, oldest first.
    pub fn set_positions(&self, positions: &[Position]) {
        self.subscription.world.set_positions(self.id, positions);
    }

    /// Sets this (native) player's area of interest: from now on it is sent
    /// only the players in the grid cells overlapping `center ±
    /// half_extent`, starting with a snapshot of them if that region
    /// changed. A `half_extent` of 0, or a region past
    /// [`MAX_VIEW_CELLS`](super::MAX_VIEW_CELLS), means the whole world.
    pub fn set_view(&self, center: Position, half_extent: u16) {
        let region = Region::around(center, half_extent);
        let world = &self.subscription.world;
        let mut inner = world.lock();
        if inner.fanout.set_view(self.subscription.key, region) {
            // The new region's snapshot goes with the next broadcast.
            world.news_added(inner);
        }
    }

    /// Resolves when there is something to send to this player.
    pub async fn changed(&self) {
        self.subscription.changed().await;
    }

    /// Takes what is queued for this player.
    pub fn take_outgoing(&self) -> Outgoing {
        self.subscription.take_outgoing()
    }
}
