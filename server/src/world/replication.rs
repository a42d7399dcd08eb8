//! What the cluster needs of the world: this node's own events handed to an
//! outbox after each broadcast, and other nodes' players applied, reconciled
//! and removed. The cluster (see [`crate::cluster`]) speaks to the world only
//! through these methods.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use shared::ClientId;
use shared::native::PlayerState;
use tokio::sync::mpsc;

use super::World;
use super::state::{Event, Player};

/// Where a cluster node's own events go after each broadcast.
#[derive(Debug)]
pub(super) struct Replication {
    node: NodeId,
    outbox: mpsc::Sender<Vec<Event>>,
    /// Set when the outbox was full and a batch was dropped: the publisher
    /// then makes the other nodes resynchronise.
    overflowed: Arc<AtomicBool>,
}

/// A cluster node's number; the high bits of every id it hands out.
pub type NodeId = u16;

/// Bits of a client id below the node id.
pub const NODE_ID_SHIFT: u32 = 24;

/// The node whose registry handed out `id`.
pub fn node_of(id: ClientId) -> NodeId {
    (id >> NODE_ID_SHIFT) as NodeId
}

impl World {
    /// Makes every broadcast also hand this node's own events (those of
    /// players whose id carries `node`) to `outbox`, for the cluster.
    /// Events of other nodes' players are never handed back.
    pub fn replicate_to(
        &self,
        node: NodeId,
        outbox: mpsc::Sender<Vec<Event>>,
        overflowed: Arc<AtomicBool>,
    ) {
        self.lock().replication = Some(Replication {
            node,
            outbox,
            overflowed,
        });
    }

    /// Applies events that happened on another node. A join of a player
    /// already known with the same name and kind is skipped (a replayed
    /// batch after a resynchronisation).
    pub fn apply_remote(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for event in events {
            if let Event::Joined(info) = event
                && inner.state.player(info.id).is_some_and(|p| p.info == *info)
            {
                continue;
            }
            inner.state.apply(event);
        }
        self.news_added(inner);
    }

    /// Makes the players of `node` exactly `players`: leaves for those gone,
    /// joins for new ones, moves where the position changed.
    pub fn reconcile_node(&self, node: NodeId, players: &[PlayerState]) {
        {
            let mut inner = self.lock();
            let state = &mut inner.state;
            let wanted: HashMap<ClientId, &PlayerState> = players
                .iter()
                .filter(|p| node_of(p.info.id) == node)
                .map(|p| (p.info.id, p))
                .collect();
            let gone: Vec<ClientId> = state
                .players()
                .map(|p| p.info.id)
                .filter(|id| node_of(*id) == node && !wanted.contains_key(id))
                .collect();
            for id in gone {
                state.leave(id);
            }
            for (id, player) in wanted {
                let known = state
                    .player(id)
                    .map(|p| (p.info == player.info, p.position));
                match known {
                    Some((true, position)) if position == player.position => continue,
                    Some((true, _)) => {}
                    _ => state.join(player.info.clone()),
                }
                if let Some(position) = player.position {
                    state.set_positions(id, &[position]);
                }
            }
        }
        self.dirty.notify_one();
    }

    /// Removes every player of `node` (it died or was cut off); returns how
    /// many there were.
    pub fn remove_node(&self, node: NodeId) -> usize {
        let removed = {
            let mut inner = self.lock();
            let ids: Vec<ClientId> = inner
                .state
                .players()
                .map(|p| p.info.id)
                .filter(|id| node_of(*id) == node)
                .collect();
            for &id in &ids {
                inner.state.leave(id);
            }
            ids.len()
        };
        self.dirty.notify_one();
        removed
    }

    /// Every player of `node` with its latest position.
    pub fn players_of_node(&self, node: NodeId) -> Vec<PlayerState> {
        self.lock()
            .state
            .players()
            .filter(|p| node_of(p.info.id) == node)
            .map(Player::to_state)
            .collect()
    }

    /// Players that live on other nodes than `node`.
    pub fn remote_player_count(&self, node: NodeId) -> usize {
        self.lock()
            .state
            .players()
            .filter(|p| node_of(p.info.id) != node)
            .count()
    }
}

impl Replication {
    pub(super) fn send_local(&self, events: &[Event]) {
        let local: Vec<Event> = events
            .iter()
            .filter(|e| node_of(e.player()) == self.node)
            .cloned()
            .collect();
        if !local.is_empty() && self.outbox.try_send(local).is_err() {
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }
}
