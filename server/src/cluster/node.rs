//! The NATS side of a node: publishing, listening, answering state requests.

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

use super::peers::{Action, Peers, Removal};
use super::protocol::Wire;
use super::{
    ClusterConfig, ClusterError, ClusterMetrics, GOODBYE_TIMEOUT, HEARTBEAT_INTERVAL, JOIN_TIMEOUT,
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
    ) -> Result<Cluster, ClusterError> {
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
            .map_err(|source| ClusterError::Connect {
                url: config.url.clone(),
                source,
            })?;
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
        tracker.spawn(cluster.listen(world, heartbeat_now, ready_tx, tracker.clone(), shutdown));
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
                _ = shutdown.cancelled() => {
                    self.say_goodbye().await;
                    return;
                }
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

    /// Tells the peers this node is going, so its players leave them now.
    async fn say_goodbye(&self) {
        let (node, epoch) = (self.config.node, self.epoch);
        let goodbye = async {
            self.send(&Wire::Bye { node, epoch }).await;
            self.client.flush().await
        };
        // Bounded: with NATS unreachable the peers time the node out.
        match tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => debug!(cause = %err, "cluster: goodbye not flushed"),
            Err(_) => debug!("cluster: goodbye not flushed within {GOODBYE_TIMEOUT:?}"),
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

    /// Follows the bus: feeds what arrives to the peers' state machine
    /// and does what it asks (apply, reconcile, remove, fetch).
    async fn listen(
        self: Arc<Self>,
        world: Arc<World>,
        heartbeat_now: Arc<Notify>,
        ready: watch::Sender<bool>,
        tracker: TaskTracker,
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
        let shell = Shell {
            cluster: &self,
            world: &world,
            heartbeat_now: &heartbeat_now,
            synced: &synced_tx,
            tracker: &tracker,
            shutdown: &shutdown,
        };
        let mut peers = Peers::new(self.config.node);
        let started = Instant::now();
        let mut check = tokio::time::interval(HEARTBEAT_INTERVAL / 2);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                message = messages.next() => {
                    let Some(message) = message else { return };
                    match Wire::from_bytes(&message.payload) {
                        Ok(wire) => {
                            if let Wire::Events { node, events, .. } = &wire
                                && *node != self.config.node
                            {
                                self.metrics.events_received.inc_by(events.len() as u64);
                            }
                            shell.run(peers.on_wire(wire, Instant::now()));
                        }
                        Err(err) => warn!(cause = %err, "cluster: undecodable message on the bus"),
                    }
                }
                Some(done) = synced.recv() => shell.run(peers.synced(done.node, done.epoch, done.state)),
                _ = check.tick() => {
                    shell.run(peers.tick(Instant::now()));
                    self.metrics.nodes_seen.set(peers.len() as i64);
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
}

/// The I/O side of the peers' state machine: does its actions.
struct Shell<'a> {
    cluster: &'a Cluster,
    world: &'a World,
    heartbeat_now: &'a Notify,
    synced: &'a mpsc::Sender<Synced>,
    tracker: &'a TaskTracker,
    shutdown: &'a CancellationToken,
}

impl Shell<'_> {
    fn run(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Seen(node) => info!(node, "cluster: node seen"),
                Action::Apply(events) => self.world.apply_remote(&events),
                Action::Reconcile { node, players } => self.world.reconcile_node(node, &players),
                Action::Synchronised { node, players } => {
                    info!(node, players, "cluster: synchronised with node");
                }
                Action::RemoveNode { node, why } => {
                    let players = self.world.remove_node(node);
                    match why {
                        Removal::Restarted => {
                            info!(
                                node,
                                players, "cluster: node restarted; its old players left"
                            );
                        }
                        Removal::Left => {
                            info!(node, players, "cluster: node left; its players left")
                        }
                        Removal::Silent => warn!(
                            node,
                            players,
                            "cluster: node lost (silent for {NODE_TIMEOUT:?}); its players left"
                        ),
                    }
                }
                Action::Fetch { node, epoch } => self.fetch_state(node, epoch),
                Action::HeartbeatNow => self.heartbeat_now.notify_one(),
                Action::FetchFailed { node, cause } => {
                    warn!(node, %cause, "cluster: state request failed; retrying on its next heartbeat");
                }
            }
        }
    }

    /// Asks `node` for its players in the background; the answer comes back
    /// on `synced`.
    fn fetch_state(&self, node: NodeId, epoch: u64) {
        self.cluster.metrics.resyncs.inc();
        let client = self.cluster.client.clone();
        let subject = self.cluster.config.sync_subject(node);
        let synced = self.synced.clone();
        let asker = self.cluster.config.node;
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            let request = client.request(subject, Bytes::from(asker.to_le_bytes().to_vec()));
            let answer = tokio::select! {
                _ = shutdown.cancelled() => return,
                answer = tokio::time::timeout(SYNC_TIMEOUT, request) => answer,
            };
            let state = match answer {
                Ok(Ok(message)) => Wire::from_bytes(&message.payload).map_err(SyncError::from),
                Ok(Err(err)) => Err(SyncError::from(err)),
                Err(_) => Err(SyncError::Timeout(SYNC_TIMEOUT)),
            };
            let _ = synced.send(Synced { node, epoch, state }).await;
        });
    }
}

/// Why a state request brought no state.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Request(#[from] async_nats::RequestError),
    #[error("undecodable answer: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// A state request's outcome, back on the listener's task.
struct Synced {
    node: NodeId,
    epoch: u64,
    state: Result<Wire, SyncError>,
}
