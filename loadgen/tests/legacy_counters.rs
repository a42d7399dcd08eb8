//! Legacy counters (more legacy clients than `--sample-clients`) against our
//! server, over real sockets: they drain their sockets unread in the load
//! phase, yet every record is counted and every client converges.

use std::time::Duration;

mod common;

use loadgen::positions::{PositionsConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_drain_unread_and_still_count_every_record() {
    const CLIENTS: usize = 30;
    const SAMPLED: usize = 5;
    let server = common::serve().await;
    let positions = server.addrs.positions;

    let mut config =
        PositionsConfig::new(positions.to_string(), CLIENTS, 10.0, Duration::from_secs(2));
    config.sample_clients = SAMPLED;
    let report = run(config).await.expect("a run");

    assert_eq!(report.clients_connected, CLIENTS);
    assert_eq!(report.legacy_sampled, SAMPLED);
    assert_eq!(report.error_count, 0, "{:?}", report.failures);
    // Every position reached every client, counted by the counters too
    // (a record split by a drain included): nothing short of full delivery.
    assert!(report.positions_sent > 0);
    assert!(
        report.records_delivered >= report.records_expected,
        "{} of {} records",
        report.records_delivered,
        report.records_expected
    );
    // Only the sample times its echoes: at most one per send of theirs.
    assert!(report.echo.samples > 0, "the sample times its echoes");
    assert!(
        report.echo.samples <= report.positions_sent * SAMPLED as u64 / CLIENTS as u64 + 10,
        "{} echo samples for {} sends",
        report.echo.samples,
        report.positions_sent
    );
    assert!(report.convergence.converged, "{:?}", report.convergence);
    server.stop().await;
}
