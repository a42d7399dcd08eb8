//! Counters for operators, rendered as Prometheus text on `/metrics` when
//! `--metrics HOST:PORT` is given (the counting itself is always on: it is a
//! handful of atomic adds per read or write, not per message).

use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::registry::Service;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    service: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

/// Every counter the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connected: Family<ServiceLabel, Gauge>,
    connections: Family<ServiceLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
    disconnects: Family<ReasonLabel, Counter>,
    messages_in: Family<ServiceLabel, Counter>,
    messages_out: Family<ServiceLabel, Counter>,
    bytes_in: Family<ServiceLabel, Counter>,
    bytes_out: Family<ServiceLabel, Counter>,
    math_requests: Family<StatusLabel, Counter>,
    slow_consumers: Counter,
    /// Players served on the lane thread now (see [`crate::lane`]).
    pub lane_connections: Gauge,
}

impl Metrics {
    /// The registry every layer registers its own counters into (the world's
    /// [`register_metrics`](crate::world::World::register_metrics), the
    /// cluster's), before the metrics are shared.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("gameserver"),
            connected: Family::default(),
            connections: Family::default(),
            refused: Family::default(),
            disconnects: Family::default(),
            messages_in: Family::default(),
            messages_out: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            math_requests: Family::default(),
            slow_consumers: Counter::default(),
            lane_connections: Gauge::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "connected_clients",
            "Clients connected now, per service",
            metrics.connected.clone(),
        );
        r.register(
            "connections",
            "Connections accepted, per service",
            metrics.connections.clone(),
        );
        r.register(
            "refused_connections",
            "Connections refused by a limit",
            metrics.refused.clone(),
        );
        r.register(
            "disconnects",
            "Connections ended, per service and reason",
            metrics.disconnects.clone(),
        );
        r.register(
            "messages_received",
            "Messages received from clients",
            metrics.messages_in.clone(),
        );
        r.register(
            "messages_sent",
            "Messages sent to clients",
            metrics.messages_out.clone(),
        );
        r.register(
            "received_bytes",
            "Bytes received from clients",
            metrics.bytes_in.clone(),
        );
        r.register(
            "sent_bytes",
            "Bytes sent to clients",
            metrics.bytes_out.clone(),
        );
        r.register(
            "math_requests",
            "Math requests answered, per status",
            metrics.math_requests.clone(),
        );
        r.register(
            "slow_consumers_dropped",
            "Clients dropped because their socket stayed unwritable",
            metrics.slow_consumers.clone(),
        );
        r.register(
            "lane_connections",
            "Players served together on the lane thread (--lane-connections)",
            metrics.lane_connections.clone(),
        );
        // Every series exists from the start, so dashboards see zeros.
        for service in Service::ALL {
            let label = ServiceLabel {
                service: service.label(),
            };
            let _ = metrics.connected.get_or_create(&label);
            let _ = metrics.connections.get_or_create(&label);
        }
        metrics
    }
}

/// A connection's counters, looked up once so the hot path is plain atomics.
#[derive(Debug, Clone)]
pub struct ConnectionCounters {
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

impl Metrics {
    pub fn connection(&self, service: Service) -> ConnectionCounters {
        let label = ServiceLabel {
            service: service.label(),
        };
        ConnectionCounters {
            messages_in: self.messages_in.get_or_create(&label).clone(),
            messages_out: self.messages_out.get_or_create(&label).clone(),
            bytes_in: self.bytes_in.get_or_create(&label).clone(),
            bytes_out: self.bytes_out.get_or_create(&label).clone(),
        }
    }

    pub fn connected(&self, service: Service) {
        let label = ServiceLabel {
            service: service.label(),
        };
        self.connections.get_or_create(&label).inc();
        self.connected.get_or_create(&label).inc();
    }

    /// A connection of `service` ended for `reason` (a
    /// [`Disconnect`](crate::connection::Disconnect)'s label).
    pub fn disconnected(&self, service: Service, reason: &'static str) {
        self.connected
            .get_or_create(&ServiceLabel {
                service: service.label(),
            })
            .dec();
        self.disconnects
            .get_or_create(&ReasonLabel {
                service: service.label(),
                reason,
            })
            .inc();
    }

    /// A client was dropped because its socket stayed unwritable.
    pub fn slow_consumer_dropped(&self) {
        self.slow_consumers.inc();
    }

    pub fn refused(&self, service: Service, reason: &'static str) {
        self.refused
            .get_or_create(&ReasonLabel {
                service: service.label(),
                reason,
            })
            .inc();
    }

    pub fn math_request(&self, status: &'static str, count: u64) {
        self.math_requests
            .get_or_create(&StatusLabel { status })
            .inc_by(count);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(feature = "http")]
pub use endpoint::serve;

/// The HTTP side, in builds with the `http` feature.
#[cfg(feature = "http")]
mod endpoint {
    use std::sync::Arc;

    use axum::Router;
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use super::Metrics;
    use crate::http::{self, HttpLimits};

    /// Serves `/metrics` and `/healthz` on `listener` until `shutdown`, under
    /// `limits` (its own connection cap and timeouts: see [`crate::http`]).
    pub async fn serve(
        listener: TcpListener,
        metrics: Arc<Metrics>,
        limits: HttpLimits,
        shutdown: CancellationToken,
    ) {
        let app = Router::new()
            .route("/metrics", get(render_metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .with_state(metrics);
        http::serve(listener, app, limits, shutdown).await;
    }

    async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
        (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            metrics.render(),
        )
    }
}
