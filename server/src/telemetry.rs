//! Assembles what `/metrics` shows: the server's own counters
//! ([`Metrics`]) plus those each layer keeps and registers itself (the
//! world's, the cluster's). The wiring sits here, above the layers, so
//! `metrics.rs` imports none of them.

use crate::cluster::ClusterMetrics;
use crate::metrics::Metrics;
use crate::world::{RecordMetrics, World};

/// Every counter: the server's own, the world's and the cluster's, each
/// layer registering its own.
pub(crate) fn metrics(
    world: &World,
    cluster: Option<&ClusterMetrics>,
    record: Option<&RecordMetrics>,
) -> Metrics {
    let mut metrics = Metrics::default();
    let r = metrics.registry_mut();
    world.register_metrics(r);
    if let Some(record) = record {
        r.register(
            "record_coalesced",
            "Moves the recorder (--record) left out because it was behind the world; each player's latest was kept",
            record.coalesced.clone(),
        );
        r.register(
            "record_bytes",
            "Bytes written to recording files (--record) and synced to the disk",
            record.bytes.clone(),
        );
    }
    if let Some(c) = cluster {
        for (name, help, gauge) in [
            (
                "cluster_connected",
                "1 while the node is connected to NATS",
                &c.connected,
            ),
            (
                "cluster_nodes_seen",
                "Other nodes heard from recently",
                &c.nodes_seen,
            ),
            (
                "cluster_remote_players",
                "Players of other nodes in this node's world",
                &c.remote_players,
            ),
        ] {
            r.register(name, help, gauge.clone());
        }
        for (name, help, counter) in [
            (
                "cluster_events_published",
                "Events of this node's players published to the cluster",
                &c.events_published,
            ),
            (
                "cluster_events_received",
                "Events of other nodes' players received",
                &c.events_received,
            ),
            (
                "cluster_resyncs",
                "State requests to other nodes (new, restarted or out-of-step nodes)",
                &c.resyncs,
            ),
        ] {
            r.register(name, help, counter.clone());
        }
    }
    metrics
}
