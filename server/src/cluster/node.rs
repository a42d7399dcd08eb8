//! The NATS side of a node: publishing, listening, answering state requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::protocol::Wire;
use super::{
    ClusterConfig, ClusterMetrics, HEARTBEAT_INTERVAL, JOIN_TIMEOUT, MAX_HELD_BATCHES,
    NODE_TIMEOUT, OUTBOX_BATCHES, SYNC_TIMEOUT,
};
use crate::world::{Event, NodeId, World};

impl ClusterConfig {
    fn bus(&self) -> String {
        format!("{}.bus", self.world)
    }

    fn sync_subject(&self, node: NodeId) -> String {
        format!("{}.sync.{node}", self.world)
    }
}

/// A running cluster membership.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    client: Client,
    epoch: u64,
    /// The last batch number published.
    seq: Arc<AtomicU64>,
    metrics: ClusterMetrics,
}

impl Cluster {
    /// Starts connecting to NATS (in the background: an unreachable NATS
    /// delays nothing, the node serves its own players meanwhile).
    pub async fn connect(
        config: ClusterConfig,
        metrics: ClusterMetrics,
    ) -> Result<Cluster, String> {
        let connected = metrics.connected.clone();
        let url = config.url.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("gameserver node {}", config.node))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(1000))
            })
            .event_callback(move |event| {
                let connected = connected.clone();
                let url = url.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            connected.set(1);
                            info!(%url, "cluster: connected to NATS");
                        }
                        async_nats::Event::Disconnected => {
                            connected.set(0);
                            warn!(%url, "cluster: lost NATS; serving local players, reconnecting");
                        }
                        other => debug!(event = %other, "cluster: NATS event"),
                    }
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|err| format!("cannot use NATS at {}: {err}", config.url))?;
        Ok(Cluster {
            config,
            client,
            epoch: rand::random(),
            seq: Arc::new(AtomicU64::new(0)),
            metrics,
        })
    }

    /// Replicates `world` until `shutdown`; resolves `ready` once this node
    /// has the others' players (or after [`JOIN_TIMEOUT`]).
    pub fn spawn(
        self,
        world: Arc<World>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> watch::Receiver<bool> {
        let cluster = Arc::new(self);
        let (outbox_tx, outbox) = mpsc::channel(OUTBOX_BATCHES);
        let overflowed = Arc::new(AtomicBool::new(false));
        world.replicate_to(cluster.config.node, outbox_tx, Arc::clone(&overflowed));
        let heartbeat_now = Arc::new(Notify::new());
        let (ready_tx, ready) = watch::channel(false);
        info!(
            node = cluster.config.node,
            world = %cluster.config.world,
            url = %cluster.config.url,
            "cluster: joining"
        );
        tracker.spawn(Arc::clone(&cluster).publish(
            outbox,
            overflowed,
            Arc::clone(&heartbeat_now),
            shutdown.clone(),
        ));
        tracker.spawn(
            Arc::clone(&cluster).answer_state_requests(Arc::clone(&world), shutdown.clone()),
        );
        tracker.spawn(cluster.listen(world, heartbeat_now, ready_tx, shutdown));
        ready
    }

    /// Publishes this node's batches as they come, a heartbeat every
    /// [`HEARTBEAT_INTERVAL`], and a hello at start.
    async fn publish(
        self: Arc<Self>,
        mut outbox: mpsc::Receiver<Vec<Event>>,
        overflowed: Arc<AtomicBool>,
        heartbeat_now: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        let (node, epoch) = (self.config.node, self.epoch);
        self.send(&Wire::Hello { node, epoch }).await;
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                batch = outbox.recv() => {
                    let Some(events) = batch else { return };
                    if overflowed.swap(false, Ordering::Relaxed) {
                        // A batch was dropped: skip a number so that every
                        // peer sees the gap and fetches our state.
                        self.seq.fetch_add(1, Ordering::Relaxed);
                    }
                    let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
                    self.metrics.events_published.inc_by(events.len() as u64);
                    self.send(&Wire::Events { node, epoch, seq, events }).await;
                }
                _ = heartbeat.tick() => self.heartbeat().await,
                _ = heartbeat_now.notified() => self.heartbeat().await,
            }
        }
    }

    async fn heartbeat(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        let (node, epoch) = (self.config.node, self.epoch);
        self.send(&Wire::Heartbeat { node, epoch, seq }).await;
    }

    async fn send(&self, message: &Wire) {
        if let Err(err) = self
            .client
            .publish(self.config.bus(), message.to_bytes())
            .await
        {
            debug!(cause = %err, "cluster: publish failed");
        }
    }

    /// Answers the others' requests for this node's players.
    async fn answer_state_requests(
        self: Arc<Self>,
        world: Arc<World>,
        shutdown: CancellationToken,
    ) {
        let subject = self.config.sync_subject(self.config.node);
        let mut requests = match self.client.subscribe(subject.clone()).await {
            Ok(requests) => requests,
            Err(err) => {
                warn!(%subject, cause = %err, "cluster: cannot answer state requests");
                return;
            }
        };
        loop {
            let request = tokio::select! {
                _ = shutdown.cancelled() => return,
                request = requests.next() => request,
            };
            let Some(request) = request else { return };
            let Some(reply) = request.reply else { continue };
            // The number first: every batch up to it is already in the
            // world, so the state taken next contains it.
            let seq = self.seq.load(Ordering::Relaxed);
            let state = Wire::State {
                node: self.config.node,
                epoch: self.epoch,
                seq,
                players: world.players_of_node(self.config.node),
            };
            if let Err(err) = self.client.publish(reply, state.to_bytes()).await {
                debug!(cause = %err, "cluster: state reply failed");
            }
        }
    }

    /// Follows the bus: applies peers' batches in order, fetches a peer's
    /// state when out of step, drops silent peers.
    async fn listen(
        self: Arc<Self>,
        world: Arc<World>,
        heartbeat_now: Arc<Notify>,
        ready: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) {
        let bus = self.config.bus();
        let mut messages = loop {
            match self.client.subscribe(bus.clone()).await {
                Ok(messages) => break messages,
                Err(err) => {
                    warn!(%bus, cause = %err, "cluster: cannot subscribe; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let (synced_tx, mut synced) = mpsc::channel::<Synced>(64);
        let mut peers = Peers::default();
        let started = Instant::now();
        let mut check = tokio::time::interval(HEARTBEAT_INTERVAL / 2);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                message = messages.next() => {
                    let Some(message) = message else { return };
                    match Wire::from_bytes(&message.payload) {
                        Ok(wire) => self.on_wire(wire, &world, &mut peers, &heartbeat_now, &synced_tx),
                        Err(err) => warn!(cause = %err, "cluster: undecodable message on the bus"),
                    }
                }
                Some(done) = synced.recv() => self.on_synced(done, &world, &mut peers, &synced_tx),
                _ = check.tick() => {
                    for (node, count) in peers.drop_silent(&world) {
                        warn!(node, players = count, "cluster: node lost (silent for {NODE_TIMEOUT:?}); its players left");
                    }
                    self.metrics.nodes_seen.set(peers.by_node.len() as i64);
                    self.metrics
                        .remote_players
                        .set(world.remote_player_count(self.config.node) as i64);
                    // Ready once every peer heard of is synchronised, after
                    // a moment to hear from them (or at the deadline).
                    if !*ready.borrow()
                        && ((started.elapsed() >= HEARTBEAT_INTERVAL && peers.all_synced())
                            || started.elapsed() >= JOIN_TIMEOUT)
                    {
                        let _ = ready.send(true);
                    }
                }
            }
        }
    }

    fn on_wire(
        &self,
        wire: Wire,
        world: &World,
        peers: &mut Peers,
        heartbeat_now: &Notify,
        synced: &mpsc::Sender<Synced>,
    ) {
        let (node, epoch) = wire.origin();
        if node == self.config.node {
            return;
        }
        let peer = peers.heard(node, epoch, world);
        match wire {
            Wire::Hello { .. } => heartbeat_now.notify_one(),
            Wire::Heartbeat { seq, .. } if peer.fetching.is_none() => {
                if peer.applied < seq {
                    // Missed batches (or never synchronised): fetch.
                    self.fetch_state(node, epoch, peer, synced);
                } else if peer.applied == seq {
                    peer.synced = true;
                }
            }
            Wire::Heartbeat { .. } => {}
            Wire::Events { seq, events, .. } => {
                self.metrics.events_received.inc_by(events.len() as u64);
                if peer.fetching.is_some() {
                    peer.hold(seq, events);
                } else if seq == peer.applied + 1 {
                    world.apply_remote(&events);
                    peer.applied = seq;
                    peer.synced = true;
                } else if seq > peer.applied {
                    peer.hold(seq, events);
                    self.fetch_state(node, epoch, peer, synced);
                }
            }
            Wire::State { .. } => {}
        }
    }

    /// Asks `node` for its players in the background.
    fn fetch_state(
        &self,
        node: NodeId,
        epoch: u64,
        peer: &mut Peer,
        synced: &mpsc::Sender<Synced>,
    ) {
        peer.fetching = Some(epoch);
        self.metrics.resyncs.inc();
        let client = self.client.clone();
        let subject = self.config.sync_subject(node);
        let synced = synced.clone();
        let asker = self.config.node;
        tokio::spawn(async move {
            let answer = tokio::time::timeout(
                SYNC_TIMEOUT,
                client.request(subject, Bytes::from(asker.to_le_bytes().to_vec())),
            )
            .await;
            let state = match answer {
                Ok(Ok(message)) => Wire::from_bytes(&message.payload).map_err(|e| e.to_string()),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err(format!("no answer within {SYNC_TIMEOUT:?}")),
            };
            let _ = synced.send(Synced { node, epoch, state }).await;
        });
    }

    fn on_synced(
        &self,
        done: Synced,
        world: &World,
        peers: &mut Peers,
        synced: &mpsc::Sender<Synced>,
    ) {
        let Some(peer) = peers.by_node.get_mut(&done.node) else {
            return; // dropped meanwhile
        };
        if peer.fetching != Some(done.epoch) || peer.epoch != done.epoch {
            return; // an answer from before a restart
        }
        peer.fetching = None;
        match done.state {
            Ok(Wire::State {
                epoch,
                seq,
                players,
                ..
            }) if epoch == peer.epoch => {
                world.reconcile_node(done.node, &players);
                peer.applied = seq;
                peer.synced = true;
                let held = std::mem::take(&mut peer.held);
                let mut gap = false;
                for (seq, events) in held {
                    if seq == peer.applied + 1 {
                        world.apply_remote(&events);
                        peer.applied = seq;
                    } else if seq > peer.applied {
                        gap = true;
                    }
                }
                info!(
                    node = done.node,
                    players = players.len(),
                    "cluster: synchronised with node"
                );
                if gap {
                    self.fetch_state(done.node, done.epoch, peer, synced);
                }
            }
            Ok(_) => debug!(node = done.node, "cluster: stale state answer"),
            Err(err) => {
                peer.held.clear();
                warn!(node = done.node, cause = %err, "cluster: state request failed; retrying on its next heartbeat");
            }
        }
    }
}

/// A state request's outcome, back on the listener's task.
struct Synced {
    node: NodeId,
    epoch: u64,
    state: Result<Wire, String>,
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
    fn hold(&mut self, seq: u64, events: Vec<Event>) {
        if self.held.len() >= MAX_HELD_BATCHES {
            // Bounded: the next state fetched covers what is dropped.
            self.held.clear();
        }
        self.held.push((seq, events));
    }
}

#[derive(Debug, Default)]
struct Peers {
    by_node: HashMap<NodeId, Peer>,
}

impl Peers {
    /// The peer `node` was just heard from; a new epoch means it restarted,
    /// so its old players leave first.
    fn heard(&mut self, node: NodeId, epoch: u64, world: &World) -> &mut Peer {
        let fresh = Peer {
            epoch,
            applied: 0,
            last_heard: Instant::now(),
            synced: false,
            fetching: None,
            held: Vec::new(),
        };
        let peer = self.by_node.entry(node).or_insert_with(|| {
            info!(node, "cluster: node seen");
            fresh
        });
        if peer.epoch != epoch {
            let gone = world.remove_node(node);
            info!(
                node,
                players = gone,
                "cluster: node restarted; its old players left"
            );
            *peer = Peer {
                epoch,
                applied: 0,
                last_heard: Instant::now(),
                synced: false,
                fetching: None,
                held: Vec::new(),
            };
        }
        peer.last_heard = Instant::now();
        peer
    }

    /// Forgets peers silent for [`NODE_TIMEOUT`], removing their players.
    fn drop_silent(&mut self, world: &World) -> Vec<(NodeId, usize)> {
        let silent: Vec<NodeId> = self
            .by_node
            .iter()
            .filter(|(_, peer)| peer.last_heard.elapsed() >= NODE_TIMEOUT)
            .map(|(&node, _)| node)
            .collect();
        silent
            .into_iter()
            .map(|node| {
                self.by_node.remove(&node);
                (node, world.remove_node(node))
            })
            .collect()
    }

    fn all_synced(&self) -> bool {
        self.by_node.values().all(|peer| peer.synced)
    }
}
