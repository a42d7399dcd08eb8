//! The area-of-interest mode against our server (the Python reference has
//! no views), over real sockets.

use std::time::Duration;

mod common;

use loadgen::positions::{PositionsConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkers_see_their_region_from_the_first_snapshot_on() {
    const WALKERS: usize = 40;
    let server = common::serve().await;
    let game = server.addrs.game;

    let mut config = PositionsConfig::new("127.0.0.1:1", 0, 10.0, Duration::from_secs(2));
    config.native_addr = Some(game.to_string());
    config.native_clients = WALKERS;
    config.world_size = Some(4000);
    config.view_half_extent = 100;
    let report = run(config).await.expect("a run");

    assert_eq!(report.native_connected, WALKERS);
    assert_eq!(report.error_count, 0, "{:?}", report.failures);
    assert!(
        report.native_echo.samples > 0,
        "walkers got their own echoes"
    );
    // 40 walkers spread over 4000 × 4000 and views of about 300 × 300:
    // each sees itself and rarely anyone else. Had a walker ever been sent
    // the whole world (a snapshot before its view), it would count all 40.
    assert!(
        (1..WALKERS / 4).contains(&report.visible_max),
        "visible_max {}",
        report.visible_max
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_count_what_they_are_sent_and_only_the_sample_gives_latency() {
    const WALKERS: usize = 40;
    const SAMPLED: usize = 4;
    let server = common::serve().await;
    let game = server.addrs.game;

    let mut config = PositionsConfig::new("127.0.0.1:1", 0, 10.0, Duration::from_secs(2));
    config.native_addr = Some(game.to_string());
    config.native_clients = WALKERS;
    // A small world: everybody sees many others, so counters get batches.
    config.world_size = Some(400);
    config.view_half_extent = 200;
    config.sample_clients = SAMPLED;
    let report = run(config).await.expect("a run");

    assert_eq!(report.native_connected, WALKERS);
    assert_eq!(report.native_sampled, SAMPLED);
    assert_eq!(report.error_count, 0, "{:?}", report.failures);
    assert_eq!(report.echoes_missed, 0, "{:?}", report.failures);
    assert!(
        report.native_echo.samples > 0,
        "the sample times its echoes"
    );
    // At most one echo per send of a sampled client.
    assert!(
        report.native_echo.samples <= report.positions_sent * SAMPLED as u64 / WALKERS as u64 + 50,
        "{} echo samples",
        report.native_echo.samples
    );
    // Every client counts: in a world this small each sees most others,
    // so far more records than the sample alone would get.
    let sample_alone = report.positions_sent * SAMPLED as u64;
    assert!(
        report.records_delivered > 5 * sample_alone,
        "{} records, {} sent",
        report.records_delivered,
        report.positions_sent
    );
    assert!(report.visible_max > 1 && report.visible_max <= WALKERS);
    server.stop().await;
}
