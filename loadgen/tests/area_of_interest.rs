//! The area-of-interest mode against our server (the Python reference has
//! no views), over real sockets.

use std::time::Duration;

use loadgen::positions::{PositionsConfig, run};
use server::{Config, Server};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkers_see_their_region_from_the_first_snapshot_on() {
    const WALKERS: usize = 40;
    let server = Server::bind(Config::ephemeral())
        .await
        .expect("bind on loopback");
    let game = server.local_addrs().game;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));

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
    shutdown.cancel();
    task.await.unwrap();
}
