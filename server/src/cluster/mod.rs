//! One world across several nodes over NATS.
//!
//! Every node owns its own players (their ids carry the node id in their
//! high bits, see [`crate::world::node_of`]) and replicates their [`Event`]s;
//! remote players live in the local world like local ones, so every
//! subscriber of every format sees everyone, and remote players' events are
//! never published again.
//!
//! On the subject `<world>.bus` each node publishes, in order on one
//! connection (so NATS keeps their order):
//! * `Events` — its own events of one broadcast, numbered by `seq`;
//! * `Heartbeat` — every [`HEARTBEAT_INTERVAL`], with its last `seq`;
//! * `Hello` — once at start, so the others answer with a heartbeat at once;
//! * `Bye` — once at a graceful shutdown, so the others drop its players at
//!   once instead of after [`NODE_TIMEOUT`].
//!
//! A node that hears of a peer it has not synchronised with (new, restarted
//! with a new `epoch`, or with a gap in `seq`) asks it for its players with a
//! NATS request on `<world>.sync.<node>` and reconciles them; events that
//! arrive meanwhile wait (bounded) and are replayed after. A peer not heard
//! for [`NODE_TIMEOUT`] is gone: its players leave. So a dead node, a
//! partition and a NATS outage all end the same way, and a reconnect is a
//! resynchronisation.
//!
//! Nothing here blocks the game: the world hands events to a bounded outbox
//! (a full outbox drops the batch and forces a resynchronisation), and a
//! slow peer only ever costs a bounded backlog.

#[cfg(not(feature = "cluster"))]
mod disabled;
#[cfg(feature = "cluster")]
mod node;
#[cfg(feature = "cluster")]
mod peers;
#[cfg(feature = "cluster")]
mod protocol;

use std::time::Duration;

#[cfg(not(feature = "cluster"))]
pub use disabled::Cluster;
#[cfg(feature = "cluster")]
pub use node::Cluster;
use prometheus_client::metrics::gauge::Gauge;
#[cfg(feature = "cluster")]
pub use protocol::Wire;

use crate::metrics::Counter;
use crate::world::NodeId;

/// How often a node says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// A peer silent this long is gone and its players leave (well inside the
/// 5 s promised to players).
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2500);
/// Broadcast batches the outbox holds for the publisher; past that, batches
/// are dropped and the peers resynchronise.
pub const OUTBOX_BATCHES: usize = 1024;
/// Batches of one peer kept while its state is being fetched; past that,
/// they are dropped and the state is fetched again.
pub const MAX_HELD_BATCHES: usize = 4096;
/// Longest a stopping node waits for its goodbye to reach NATS.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a state request may take.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a starting node waits for the others' worlds before serving.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Highest node id: ids are `node << 24 | n`, and must stay positive.
pub const MAX_NODE_ID: NodeId = 127;

/// Why a node cannot join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[cfg(feature = "cluster")]
    #[error("cannot use NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error(
        "cannot join the cluster at {url}: this build has no cluster support (cargo feature `cluster`)"
    )]
    NotBuilt { url: String },
}

/// Where and who this node is in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub url: String,
    pub node: NodeId,
    pub world: String,
}

/// Cluster series for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetrics {
    pub nodes_seen: Gauge,
    pub remote_players: Gauge,
    pub events_published: Counter,
    pub events_received: Counter,
    pub resyncs: Counter,
    pub connected: Gauge,
}
