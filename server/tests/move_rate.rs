//! The move-rate cap (`--max-moves-per-second`) over real sockets: a client
//! sending positions as fast as it can reaches an observer at no more than
//! the cap plus the burst, its latest position still arrives, and it stays
//! connected. Without the cap the same flood multiplies the observer's
//! traffic, which is what proves the test can fail.

mod common;

use std::time::{Duration, Instant};

use common::{NativeClient, PATIENCE, TestServer, connect_legacy, native_frame};
use server::world::MOVE_BURST;
use shared::ClientId;
use shared::legacy::{Position, PositionRecord};
use shared::native::ClientMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the flooder writes as fast as its socket takes it.
const FLOOD: Duration = Duration::from_millis(1500);

/// The flooder's last position, sent once the flood is over.
const LATEST: Position = Position { x: 30_000, y: 1 };

/// Moves beyond rate × time and the burst that the observer may see: the
/// latest, released once the budget allows, and rounding at the edges.
const SLACK: f64 = 4.0;

#[derive(Debug, Clone, Copy)]
enum Flooder {
    /// A legacy positions client (`<hh` records).
    Legacy,
    /// A native client sending `MyPosition` frames.
    Native,
}

impl Flooder {
    /// Connects and returns the socket and the flooder's id.
    async fn connect(self, server: &TestServer) -> (TcpStream, ClientId) {
        match self {
            Flooder::Legacy => connect_legacy(server.addrs.positions).await,
            Flooder::Native => {
                let client = NativeClient::join(server.addrs.game, "flooder").await;
                (client.framed.into_inner(), client.id)
            }
        }
    }

    fn encode(self, position: Position) -> Vec<u8> {
        match self {
            Flooder::Legacy => position.to_bytes().to_vec(),
            Flooder::Native => native_frame(&ClientMessage::MyPosition(position)),
        }
    }
}

/// Floods from `kind` for [`FLOOD`], then sends [`LATEST`]; returns how many
/// of the flooder's records a legacy observer received until that latest
/// one arrived, and how long that took from the flood's start.
async fn flood_and_count(server: &TestServer, kind: Flooder) -> (usize, Duration) {
    let (mut observer, _) = connect_legacy(server.addrs.positions).await;
    let (flooder, flooder_id) = kind.connect(server).await;
    let (mut reader, mut writer) = flooder.into_split();
    // Everything sent to the flooder is read and dropped: only its input is
    // excessive.
    let drain = tokio::spawn(async move {
        let mut sink = vec![0u8; 65536];
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let burst: Vec<u8> = (0..1024i16)
        .flat_map(|i| kind.encode(Position::new(i, -i)))
        .collect();
    let started = Instant::now();
    let flood = tokio::spawn(async move {
        while started.elapsed() < FLOOD {
            writer
                .write_all(&burst)
                .await
                .expect("the flooder stays connected");
        }
        writer.write_all(&kind.encode(LATEST)).await.unwrap();
        writer
    });
    let mut seen = 0;
    let mut record = [0u8; PositionRecord::SIZE];
    loop {
        tokio::time::timeout(FLOOD + PATIENCE, observer.read_exact(&mut record))
            .await
            .expect("the flooder's latest position arrives")
            .expect("observer connected");
        let record = PositionRecord::from_bytes(record);
        if record.id != flooder_id {
            continue;
        }
        seen += 1;
        if (record.x, record.y) == (LATEST.x, LATEST.y) {
            break;
        }
    }
    let took = started.elapsed();
    let _writer = flood.await.unwrap();
    assert!(
        server.shared.registry.get(flooder_id).is_some(),
        "flooding is coalesced, not a reason to drop"
    );
    drain.abort();
    (seen, took)
}

/// The most an observer may see of a flooder capped at `rate` for `took`.
fn bound(rate: u32, took: Duration) -> f64 {
    f64::from(rate) * took.as_secs_f64() + f64::from(MOVE_BURST) + SLACK
}

async fn a_flooder_reaches_observers_at_the_capped_rate(kind: Flooder) {
    let server = TestServer::start().await;
    let rate = server.shared.config.max_moves_per_second;
    assert_eq!(rate, 120, "the default cap");
    let (seen, took) = flood_and_count(&server, kind).await;
    assert!(
        seen as f64 <= bound(rate, took),
        "{kind:?}: the observer saw {seen} of the flooder's moves in {took:?} (cap {rate}/s)"
    );
    assert!(
        seen > MOVE_BURST as usize,
        "{kind:?}: it still moves: {seen}"
    );
    assert!(server.shared.world.coalesced_moves() > 0);
    server.stop().await;

    // The same flood without the cap: many times more reach the observer.
    let uncapped = TestServer::with(|config| config.max_moves_per_second = 0).await;
    let (seen_uncapped, took_uncapped) = flood_and_count(&uncapped, kind).await;
    assert!(
        seen_uncapped as f64 > 3.0 * bound(rate, took_uncapped),
        "{kind:?}: without the cap the flood should multiply: {seen_uncapped} in {took_uncapped:?}"
    );
    assert_eq!(uncapped.shared.world.coalesced_moves(), 0);
    println!(
        "{kind:?} flooder: the observer saw {seen} moves in {took:?} with the cap, \
         {seen_uncapped} in {took_uncapped:?} without"
    );
    uncapped.stop().await;
}

#[tokio::test]
async fn a_legacy_flooder_reaches_observers_at_the_capped_rate_and_its_latest_arrives() {
    a_flooder_reaches_observers_at_the_capped_rate(Flooder::Legacy).await;
}

#[tokio::test]
async fn a_native_flooder_reaches_observers_at_the_capped_rate_and_its_latest_arrives() {
    a_flooder_reaches_observers_at_the_capped_rate(Flooder::Native).await;
}

#[tokio::test]
async fn an_honest_player_is_never_coalesced() {
    let server = TestServer::start().await;
    let (mut player, id) = connect_legacy(server.addrs.positions).await;
    // A burst as big as one read may carry, then 10 Hz.
    let burst: Vec<u8> = (0..MOVE_BURST as i16)
        .flat_map(|i| Position::new(i, 0).to_bytes())
        .collect();
    player.write_all(&burst).await.unwrap();
    for x in 100..110i16 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        player
            .write_all(&Position::new(x, 0).to_bytes())
            .await
            .unwrap();
    }
    let mut xs = Vec::new();
    let mut record = [0u8; PositionRecord::SIZE];
    while xs.last() != Some(&109) {
        tokio::time::timeout(PATIENCE, player.read_exact(&mut record))
            .await
            .expect("echo in time")
            .unwrap();
        let record = PositionRecord::from_bytes(record);
        if record.id == id {
            xs.push(record.x);
        }
    }
    let expected: Vec<i16> = (0..MOVE_BURST as i16).chain(100..110).collect();
    assert_eq!(xs, expected, "every move, in order");
    assert_eq!(server.shared.world.coalesced_moves(), 0);
    server.stop().await;
}
