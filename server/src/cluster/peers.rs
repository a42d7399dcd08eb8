//! What a node knows of its peers, as a pure state machine: it takes what
//! arrived on the bus (and the outcome of state requests, and the passing of
//! time) and returns what to do, in order. No I/O, no clock: the NATS shell
//! in `node.rs` does the actions and passes `now`.
//!
//! Per peer: the `epoch` of its current life, the last batch `applied` (in
//! its numbering), whether we are `synced`, and, while its state is being
//! fetched, the batches `held` to replay after it.
//! * a new peer, or a known one with a new epoch (it restarted), must be
//!   fetched; a new epoch first removes the old life's players;
//! * the next batch in order is applied; a later one is held and starts a
//!   fetch (a gap); an older one is ignored (already in the state);
//! * a heartbeat ahead of what was applied starts a fetch (missed batches);
//! * a peer silent for [`NODE_TIMEOUT`] is dropped with its players, and so
//!   is one that says goodbye (only its current life: a late goodbye of an
//!   earlier one is ignored).

use std::collections::HashMap;

use shared::native::PlayerState;
use tokio::time::Instant;

use super::protocol::Wire;
use super::{MAX_HELD_BATCHES, NODE_TIMEOUT};
use crate::world::{Event, NodeId};

/// Something the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A peer was heard of for the first time.
    Seen(NodeId),
    /// Apply a peer's batch to the world.
    Apply(Vec<Event>),
    /// Make the world's players of `node` exactly `players`.
    Reconcile {
        node: NodeId,
        players: Vec<PlayerState>,
    },
    /// Remove every player of `node` from the world.
    RemoveNode { node: NodeId, why: Removal },
    /// Ask `node` for its state (life `epoch`); answer with [`Peers::synced`].
    Fetch { node: NodeId, epoch: u64 },
    /// Publish a heartbeat now (a node started and waits for us).
    HeartbeatNow,
    /// The state request to `node` failed; the next heartbeat retries.
    FetchFailed { node: NodeId, cause: String },
    /// The state of `node` was fetched and applied.
    Synchronised { node: NodeId, players: usize },
}

/// Why a peer's players leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// It came back with a new epoch: its old life's players leave.
    Restarted,
    /// Not heard for [`NODE_TIMEOUT`] (dead, cut off, or NATS is down).
    Silent,
    /// It said goodbye (a graceful shutdown).
    Left,
}

/// What this node knows of one peer.
#[derive(Debug)]
struct Peer {
    epoch: u64,
    /// The last batch applied, in the peer's numbering.
    applied: u64,
    last_heard: Instant,
    synced: bool,
    /// The epoch whose state is being fetched.
    fetching: Option<u64>,
    /// Batches that arrived while fetching, in order.
    held: Vec<(u64, Vec<Event>)>,
}

impl Peer {
    fn new(epoch: u64, now: Instant) -> Peer {
        Peer {
            epoch,
            applied: 0,
            last_heard: now,
            synced: false,
            fetching: None,
            held: Vec::new(),
        }
    }

    fn hold(&mut self, seq: u64, events: Vec<Event>) {
        if self.held.len() >= MAX_HELD_BATCHES {
            // Bounded: the next state fetched covers what is dropped.
            self.held.clear();
        }
        self.held.push((seq, events));
    }

    fn fetch(&mut self, node: NodeId, actions: &mut Vec<Action>) {
        self.fetching = Some(self.epoch);
        actions.push(Action::Fetch {
            node,
            epoch: self.epoch,
        });
    }
}

/// Every peer this node has heard of.
#[derive(Debug)]
pub struct Peers {
    me: NodeId,
    by_node: HashMap<NodeId, Peer>,
}

impl Peers {
    /// The peers of node `me` (whose own messages are ignored).
    pub fn new(me: NodeId) -> Peers {
        Peers {
            me,
            by_node: HashMap::new(),
        }
    }

    /// A message heard on the bus at `now`.
    pub fn on_wire(&mut self, wire: Wire, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let (node, epoch) = wire.origin();
        if node == self.me {
            return actions;
        }
        if let Wire::Bye { .. } = wire {
            // Only the life that said goodbye leaves; a newer one stays.
            if self.by_node.get(&node).is_some_and(|p| p.epoch == epoch) {
                self.by_node.remove(&node);
                actions.push(Action::RemoveNode {
                    node,
                    why: Removal::Left,
                });
            }
            return actions;
        }
        let peer = self.heard(node, epoch, now, &mut actions);
        match wire {
            Wire::Hello { .. } => actions.push(Action::HeartbeatNow),
            Wire::Heartbeat { seq, .. } if peer.fetching.is_none() => {
                if peer.applied < seq {
                    // Missed batches (or never synchronised): fetch.
                    peer.fetch(node, &mut actions);
                } else if peer.applied == seq {
                    peer.synced = true;
                }
            }
            Wire::Heartbeat { .. } => {}
            Wire::Events { seq, events, .. } => {
                if peer.fetching.is_some() {
                    peer.hold(seq, events);
                } else if seq == peer.applied + 1 {
                    actions.push(Action::Apply(events));
                    peer.applied = seq;
                    peer.synced = true;
                } else if seq > peer.applied {
                    peer.hold(seq, events);
                    peer.fetch(node, &mut actions);
                }
            }
            Wire::State { .. } | Wire::Bye { .. } => {}
        }
        actions
    }

    /// The outcome of the state request of `node` for life `epoch`; any
    /// error only ends the fetch (the next heartbeat starts another).
    pub fn synced<E: std::fmt::Display>(
        &mut self,
        node: NodeId,
        epoch: u64,
        state: Result<Wire, E>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(peer) = self.by_node.get_mut(&node) else {
            return actions; // dropped meanwhile
        };
        if peer.fetching != Some(epoch) || peer.epoch != epoch {
            return actions; // an answer from before a restart
        }
        peer.fetching = None;
        let (seq, players) = match state {
            Ok(Wire::State {
                epoch: answered,
                seq,
                players,
                ..
            }) if answered == peer.epoch => (seq, players),
            Ok(_) => return actions, // a stale answer
            Err(err) => {
                peer.held.clear();
                actions.push(Action::FetchFailed {
                    node,
                    cause: err.to_string(),
                });
                return actions;
            }
        };
        let count = players.len();
        actions.push(Action::Reconcile { node, players });
        peer.applied = seq;
        peer.synced = true;
        let mut gap = false;
        for (seq, events) in std::mem::take(&mut peer.held) {
            if seq == peer.applied + 1 {
                actions.push(Action::Apply(events));
                peer.applied = seq;
            } else if seq > peer.applied {
                gap = true;
            }
        }
        actions.push(Action::Synchronised {
            node,
            players: count,
        });
        if gap {
            peer.fetch(node, &mut actions);
        }
        actions
    }

    /// Drops the peers not heard since [`NODE_TIMEOUT`] before `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let silent: Vec<NodeId> = self
            .by_node
            .iter()
            .filter(|(_, peer)| now.saturating_duration_since(peer.last_heard) >= NODE_TIMEOUT)
            .map(|(&node, _)| node)
            .collect();
        silent
            .into_iter()
            .map(|node| {
                self.by_node.remove(&node);
                Action::RemoveNode {
                    node,
                    why: Removal::Silent,
                }
            })
            .collect()
    }

    /// Whether every peer heard of is synchronised.
    pub fn all_synced(&self) -> bool {
        self.by_node.values().all(|peer| peer.synced)
    }

    /// How many peers are known.
    pub fn len(&self) -> usize {
        self.by_node.len()
    }

    /// The peer `node` was just heard from; a new epoch means it restarted,
    /// so its old players leave first.
    fn heard(
        &mut self,
        node: NodeId,
        epoch: u64,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> &mut Peer {
        let peer = self.by_node.entry(node).or_insert_with(|| {
            actions.push(Action::Seen(node));
            Peer::new(epoch, now)
        });
        if peer.epoch != epoch {
            actions.push(Action::RemoveNode {
                node,
                why: Removal::Restarted,
            });
            *peer = Peer::new(epoch, now);
        }
        peer.last_heard = now;
        peer
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::legacy::Position;

    use super::*;

    const ME: NodeId = 1;
    const PEER: NodeId = 2;
    const EPOCH: u64 = 77;

    fn moved(x: i16) -> Vec<Event> {
        vec![Event::Moved(PEER as i32 * 2 + 1, Position::new(x, 0))]
    }

    fn events(epoch: u64, seq: u64, x: i16) -> Wire {
        Wire::Events {
            node: PEER,
            epoch,
            seq,
            events: moved(x),
        }
    }

    fn heartbeat(epoch: u64, seq: u64) -> Wire {
        Wire::Heartbeat {
            node: PEER,
            epoch,
            seq,
        }
    }

    fn state(epoch: u64, seq: u64) -> Result<Wire, &'static str> {
        Ok(Wire::State {
            node: PEER,
            epoch,
            seq,
            players: Vec::new(),
        })
    }

    fn fetch(epoch: u64) -> Action {
        Action::Fetch { node: PEER, epoch }
    }

    fn reconciled() -> Action {
        Action::Reconcile {
            node: PEER,
            players: Vec::new(),
        }
    }

    fn synchronised() -> Action {
        Action::Synchronised {
            node: PEER,
            players: 0,
        }
    }

    /// Peers that have synchronised with `PEER` (life `EPOCH`) up to `seq`.
    fn synced_at(seq: u64, now: Instant) -> Peers {
        let mut peers = Peers::new(ME);
        assert_eq!(
            peers.on_wire(heartbeat(EPOCH, seq), now),
            vec![Action::Seen(PEER), fetch(EPOCH)]
        );
        assert!(!peers.all_synced());
        assert_eq!(
            peers.synced(PEER, EPOCH, state(EPOCH, seq)),
            vec![reconciled(), synchronised()]
        );
        assert!(peers.all_synced());
        peers
    }

    #[test]
    fn own_messages_are_ignored() {
        let mut peers = Peers::new(ME);
        let wire = Wire::Hello { node: ME, epoch: 1 };
        assert!(peers.on_wire(wire, Instant::now()).is_empty());
        assert_eq!(peers.len(), 0);
    }

    #[test]
    fn a_hello_is_answered_by_a_heartbeat_and_a_new_peer_is_fetched() {
        let now = Instant::now();
        let mut peers = Peers::new(ME);
        let hello = Wire::Hello {
            node: PEER,
            epoch: EPOCH,
        };
        assert_eq!(
            peers.on_wire(hello, now),
            vec![Action::Seen(PEER), Action::HeartbeatNow]
        );
        // Its first heartbeat (seq 0) says nothing was published: in step.
        assert!(peers.on_wire(heartbeat(EPOCH, 0), now).is_empty());
        assert!(peers.all_synced());
    }

    #[test]
    fn batches_in_order_are_applied_and_old_ones_ignored() {
        let now = Instant::now();
        let mut peers = synced_at(5, now);
        assert_eq!(
            peers.on_wire(events(EPOCH, 6, 6), now),
            vec![Action::Apply(moved(6))]
        );
        assert_eq!(
            peers.on_wire(events(EPOCH, 7, 7), now),
            vec![Action::Apply(moved(7))]
        );
        assert!(peers.on_wire(events(EPOCH, 7, 7), now).is_empty());
        assert!(peers.on_wire(events(EPOCH, 3, 3), now).is_empty());
        assert!(peers.on_wire(heartbeat(EPOCH, 7), now).is_empty());
    }

    #[test]
    fn a_gap_fetches_the_state_and_replays_the_held_batches_after_it() {
        let now = Instant::now();
        let mut peers = synced_at(5, now);
        // Batch 6 is lost: 7 is held and the state fetched.
        assert_eq!(peers.on_wire(events(EPOCH, 7, 7), now), vec![fetch(EPOCH)]);
        // Meanwhile everything is held, and no second fetch starts.
        assert!(peers.on_wire(events(EPOCH, 8, 8), now).is_empty());
        assert!(peers.on_wire(heartbeat(EPOCH, 8), now).is_empty());
        assert!(peers.on_wire(events(EPOCH, 9, 9), now).is_empty());
        // The state was taken after batch 7: 8 and 9 are replayed on it.
        assert_eq!(
            peers.synced(PEER, EPOCH, state(EPOCH, 7)),
            vec![
                reconciled(),
                Action::Apply(moved(8)),
                Action::Apply(moved(9)),
                synchronised()
            ]
        );
        assert_eq!(
            peers.on_wire(events(EPOCH, 10, 10), now),
            vec![Action::Apply(moved(10))]
        );
    }

    #[test]
    fn a_gap_among_the_held_batches_fetches_again() {
        let now = Instant::now();
        let mut peers = synced_at(1, now);
        assert_eq!(peers.on_wire(events(EPOCH, 3, 3), now), vec![fetch(EPOCH)]);
        assert!(peers.on_wire(events(EPOCH, 6, 6), now).is_empty());
        assert_eq!(
            peers.synced(PEER, EPOCH, state(EPOCH, 4)),
            vec![reconciled(), synchronised(), fetch(EPOCH)]
        );
    }

    #[test]
    fn a_heartbeat_ahead_of_what_was_applied_fetches() {
        let now = Instant::now();
        let mut peers = synced_at(5, now);
        assert_eq!(peers.on_wire(heartbeat(EPOCH, 6), now), vec![fetch(EPOCH)]);
    }

    #[test]
    fn a_failed_fetch_drops_the_held_batches_and_the_next_heartbeat_retries() {
        let now = Instant::now();
        let mut peers = synced_at(5, now);
        assert_eq!(peers.on_wire(events(EPOCH, 7, 7), now), vec![fetch(EPOCH)]);
        assert_eq!(
            peers.synced(PEER, EPOCH, Err::<Wire, _>("no answer")),
            vec![Action::FetchFailed {
                node: PEER,
                cause: "no answer".into()
            }]
        );
        assert_eq!(peers.on_wire(heartbeat(EPOCH, 7), now), vec![fetch(EPOCH)]);
        // Batch 7 was not kept: the new state alone brings the peer in step.
        assert_eq!(
            peers.synced(PEER, EPOCH, state(EPOCH, 7)),
            vec![reconciled(), synchronised()]
        );
    }

    #[test]
    fn a_restart_removes_the_old_life_s_players_and_follows_the_new_one() {
        let now = Instant::now();
        let mut peers = synced_at(40, now);
        let new = EPOCH + 1;
        // The new life numbers from 1 again: its first batch starts from an
        // empty world, so it applies at once.
        assert_eq!(
            peers.on_wire(events(new, 1, 1), now),
            vec![
                Action::RemoveNode {
                    node: PEER,
                    why: Removal::Restarted
                },
                Action::Apply(moved(1))
            ]
        );
        assert!(peers.on_wire(heartbeat(new, 1), now).is_empty());
        assert!(peers.all_synced());
    }

    #[test]
    fn a_restart_heard_late_fetches_the_new_life_and_ignores_the_old_answer() {
        let now = Instant::now();
        let mut peers = synced_at(40, now);
        assert_eq!(peers.on_wire(heartbeat(EPOCH, 41), now), vec![fetch(EPOCH)]);
        // Restarted meanwhile; its first batches were missed.
        let new = EPOCH + 1;
        assert_eq!(
            peers.on_wire(heartbeat(new, 3), now),
            vec![
                Action::RemoveNode {
                    node: PEER,
                    why: Removal::Restarted
                },
                fetch(new)
            ]
        );
        assert!(!peers.all_synced());
        // The old life's answer, or one for the old epoch, is ignored.
        assert!(peers.synced(PEER, EPOCH, state(EPOCH, 41)).is_empty());
        // A stale answer to the new fetch ends it: the next batch out of
        // order starts another.
        assert!(peers.synced(PEER, new, state(EPOCH, 41)).is_empty());
        assert_eq!(peers.on_wire(events(new, 4, 4), now), vec![fetch(new)]);
        assert_eq!(
            peers.synced(PEER, new, state(new, 3)),
            vec![reconciled(), Action::Apply(moved(4)), synchronised()]
        );
        assert!(peers.all_synced());
    }

    #[test]
    fn an_answer_for_a_fetch_no_longer_wanted_is_ignored() {
        let now = Instant::now();
        let mut peers = synced_at(5, now);
        assert!(peers.synced(PEER, EPOCH, state(EPOCH, 9)).is_empty());
        assert!(peers.synced(9, EPOCH, state(EPOCH, 9)).is_empty());
    }

    #[test]
    fn a_silent_peer_is_dropped_after_the_timeout_and_fetched_when_heard_again() {
        let start = Instant::now();
        let mut peers = synced_at(5, start);
        let almost = start + NODE_TIMEOUT - Duration::from_millis(1);
        assert!(peers.tick(almost).is_empty());
        assert_eq!(
            peers.tick(start + NODE_TIMEOUT),
            vec![Action::RemoveNode {
                node: PEER,
                why: Removal::Silent
            }]
        );
        assert_eq!(peers.len(), 0);
        // After an outage the same life is heard again: a full fetch, since
        // its players were removed here.
        let back = start + NODE_TIMEOUT * 2;
        assert_eq!(
            peers.on_wire(heartbeat(EPOCH, 9), back),
            vec![Action::Seen(PEER), fetch(EPOCH)]
        );
    }

    #[test]
    fn a_goodbye_removes_the_peer_at_once_but_only_for_its_own_life() {
        let now = Instant::now();
        let mut peers = synced_at(5, now);
        let bye = |epoch| Wire::Bye { node: PEER, epoch };
        // An earlier life's goodbye does not touch the current one.
        assert!(peers.on_wire(bye(EPOCH - 1), now).is_empty());
        assert_eq!(peers.len(), 1);
        assert_eq!(
            peers.on_wire(bye(EPOCH), now),
            vec![Action::RemoveNode {
                node: PEER,
                why: Removal::Left
            }]
        );
        assert_eq!(peers.len(), 0);
        // A goodbye of a peer never heard of creates nothing.
        assert!(peers.on_wire(bye(EPOCH), now).is_empty());
        assert!(peers.tick(now + NODE_TIMEOUT).is_empty());
    }

    #[test]
    fn hearing_a_peer_keeps_it_alive() {
        let start = Instant::now();
        let mut peers = synced_at(5, start);
        let later = start + NODE_TIMEOUT / 2;
        assert!(peers.on_wire(heartbeat(EPOCH, 5), later).is_empty());
        assert!(peers.tick(start + NODE_TIMEOUT).is_empty());
        assert_eq!(peers.tick(later + NODE_TIMEOUT).len(), 1);
    }

    #[test]
    fn held_batches_are_bounded() {
        let now = Instant::now();
        let mut peers = synced_at(1, now);
        assert_eq!(peers.on_wire(events(EPOCH, 3, 3), now), vec![fetch(EPOCH)]);
        for seq in 4..(MAX_HELD_BATCHES as u64 + 10) {
            assert!(peers.on_wire(events(EPOCH, seq, 0), now).is_empty());
        }
        let held = &peers.by_node[&PEER].held;
        assert!(held.len() <= MAX_HELD_BATCHES);
        // The oldest were dropped: after the state (at 1) a gap remains.
        let actions = peers.synced(PEER, EPOCH, state(EPOCH, 1));
        assert_eq!(actions.last(), Some(&fetch(EPOCH)));
    }
}
