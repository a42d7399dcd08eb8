//! Chaos for a cluster: three real nodes (the server binary) and one real
//! `nats-server`, with legacy positions players and native players on every
//! node moving at 10 Hz, while nodes and NATS are SIGKILLed and restarted at
//! random moments (seeded; the seed is printed). After a settle period every
//! node's world must hold exactly the live players, each at its latest
//! position, and no ghost of a dead node, as a fresh legacy client on each
//! node sees it (its newcomer snapshot, up to its own sentinel move). The
//! long-lived node's memory (RSS) and descriptors must be back near their
//! baseline.
//!
//! Node 1 is never killed (it is the long-lived one); nodes 2 and 3 and NATS
//! are, and come back after 0.2–4 s. By default the chaos lasts 60 s; see
//! docs/cluster-chaos.md. Knobs (environment):
//! * `CHAOS_MINUTES=10` (or `CHAOS_SECONDS=...`) for a long run;
//! * `CHAOS_SEED=<n>` to replay a schedule (timings still vary).
//!
//! ```text
//! CHAOS_MINUTES=10 cargo test -p server --test cluster_chaos -- --nocapture
//! ```

mod cluster_support;
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{Legacy, Nats, NodeProcess, fd_count, rss_kib};
use common::NativeClient;
use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::legacy::Position;
use shared::native::ClientMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const NODES: u16 = 3;
const WORLD: &str = "chaos";
/// Players of each kind on a node at the start; a restarted node gets
/// 1 to this many of each, so a new life's ids differ from the old one's
/// (ids restart at 1 in every life) and a leftover shows as a ghost.
const PLAYERS_PER_KIND: usize = 3;
const MOVE_INTERVAL: Duration = Duration::from_millis(100);
/// Time between two kills, drawn uniformly.
const STEP_MS: std::ops::Range<u64> = 500..3000;
/// How long a killed node or NATS stays down, drawn uniformly: on both
/// sides of the peers' 2.5 s timeout.
const OUTAGE_MS: std::ops::Range<u64> = 200..4000;
/// Players move for this long before the baseline is taken.
const WARM_UP: Duration = Duration::from_secs(5);
/// Everything is up and the players move for this long after the chaos.
const CALM: Duration = Duration::from_secs(3);
/// After the chaos, the worlds must agree within this.
const SETTLE_BUDGET: Duration = Duration::from_secs(30);
/// The long-lived node may keep this much more memory than at the baseline
/// (allocators keep freed memory; a leak of the chaos grows without bound).
const RSS_SLACK_KIB: u64 = 4 * 1024;
/// Descriptors the long-lived node may hold above its baseline.
const FD_SLACK: usize = 4;

/// What the test knows of one player: where it last sent itself, and
/// whether its connection is still up.
#[derive(Debug)]
struct PlayerView {
    node: u16,
    native: bool,
    id: i32,
    latest: Option<(i16, i16)>,
    alive: bool,
}

type Roster = Arc<Mutex<Vec<PlayerView>>>;

fn chaos_duration() -> Duration {
    let var = |name| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match (var("CHAOS_MINUTES"), var("CHAOS_SECONDS")) {
        (Some(minutes), _) => Duration::from_secs(minutes * 60),
        (None, Some(seconds)) => Duration::from_secs(seconds),
        (None, None) => Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_under_random_kills_converges_to_exactly_the_live_players() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let duration = chaos_duration();
    eprintln!("chaos: seed {seed} (replay with CHAOS_SEED={seed}), {duration:?}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut nats = Nats::start();
    let url = nats.url();
    let mut nodes: Vec<Option<NodeProcess>> = Vec::new();
    for id in 1..=NODES {
        nodes.push(Some(NodeProcess::start(&url, id, WORLD).await));
    }
    let roster = Roster::default();
    let stop_moving = CancellationToken::new();
    let hang_up = CancellationToken::new();
    let mut player_rng_seed = seed;
    for node in nodes.iter().flatten() {
        player_rng_seed += 100;
        let kinds = (PLAYERS_PER_KIND, PLAYERS_PER_KIND);
        spawn_players(
            node,
            kinds,
            &roster,
            &stop_moving,
            &hang_up,
            player_rng_seed,
        )
        .await;
    }
    tokio::time::sleep(WARM_UP).await;
    let long_lived = nodes[0].as_ref().unwrap().pid();
    let (rss_before, fd_before) = (rss_kib(long_lived), fd_count(long_lived));
    eprintln!("chaos: node 1 baseline RSS {rss_before} KiB, {fd_before} descriptors");

    // The chaos: every step kills a running target (node 2, node 3 or
    // NATS), which comes back after a random outage, shorter or longer than
    // the peers' timeout.
    let (mut node_kills, mut nats_kills, mut restarts) = (0, 0, 0);
    let started = Instant::now();
    // When each target comes back; index 0 is NATS, 1 and 2 nodes 2 and 3.
    let mut down_until: [Option<Instant>; NODES as usize] = [None; NODES as usize];
    let mut next_kill = started + Duration::from_millis(rng.random_range(STEP_MS));
    while started.elapsed() < duration {
        let wake = down_until
            .iter()
            .flatten()
            .fold(next_kill, |a, &b| a.min(b));
        tokio::time::sleep_until(wake.into()).await;
        let at = started.elapsed().as_secs_f32();
        for target in 0..NODES {
            let t = usize::from(target);
            if down_until[t].is_none_or(|due| due > Instant::now()) {
                continue;
            }
            down_until[t] = None;
            restarts += 1;
            if target == 0 {
                nats.restart();
                eprintln!("chaos: {at:6.1} s  NATS restarted");
                continue;
            }
            let node = NodeProcess::start(&url, target + 1, WORLD).await;
            player_rng_seed += 100;
            let kinds = (
                rng.random_range(1..=PLAYERS_PER_KIND),
                rng.random_range(1..=PLAYERS_PER_KIND),
            );
            spawn_players(
                &node,
                kinds,
                &roster,
                &stop_moving,
                &hang_up,
                player_rng_seed,
            )
            .await;
            eprintln!("chaos: {at:6.1} s  node {} restarted", target + 1);
            nodes[t] = Some(node);
        }
        if Instant::now() < next_kill {
            continue;
        }
        next_kill = Instant::now() + Duration::from_millis(rng.random_range(STEP_MS));
        let target = rng.random_range(0..NODES);
        let t = usize::from(target);
        if down_until[t].is_some() {
            continue;
        }
        down_until[t] = Some(Instant::now() + Duration::from_millis(rng.random_range(OUTAGE_MS)));
        if target == 0 {
            nats.kill();
            nats_kills += 1;
            eprintln!("chaos: {at:6.1} s  NATS killed");
        } else if let Some(mut node) = nodes[t].take() {
            node.kill();
            node_kills += 1;
            eprintln!("chaos: {at:6.1} s  node {} killed", target + 1);
        }
    }

    // Everything back up; the players stop once each has moved.
    if down_until[0].is_some() {
        nats.restart();
        restarts += 1;
    }
    for (i, slot) in nodes.iter_mut().enumerate() {
        if slot.is_none() {
            let node = NodeProcess::start(&url, i as u16 + 1, WORLD).await;
            player_rng_seed += 100;
            let kinds = (
                rng.random_range(1..=PLAYERS_PER_KIND),
                rng.random_range(1..=PLAYERS_PER_KIND),
            );
            spawn_players(
                &node,
                kinds,
                &roster,
                &stop_moving,
                &hang_up,
                player_rng_seed,
            )
            .await;
            restarts += 1;
            *slot = Some(node);
        }
    }
    // A moment of calm with everyone moving: the last moves travel by the
    // ordinary replication, not only by the resynchronisations.
    tokio::time::sleep(CALM).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while roster
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.alive && p.latest.is_none())
    {
        assert!(Instant::now() < deadline, "a player never moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_moving.cancel();
    tokio::time::sleep(MOVE_INTERVAL * 2).await;
    let expected: HashMap<i32, (i16, i16)> = roster
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.alive)
        .map(|p| (p.id, p.latest.expect("moved")))
        .collect();
    let natives = roster
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.alive && p.native)
        .count();
    let dead = roster.lock().unwrap().iter().filter(|p| !p.alive).count();
    for p in roster.lock().unwrap().iter().filter(|p| p.alive) {
        assert!(
            nodes[usize::from(p.node) - 1].is_some(),
            "player {} alive on a dead node",
            p.id
        );
    }

    // Settle: every node's world, seen by a newcomer, is exactly `expected`.
    let settle = Instant::now();
    let mut observers = Vec::new();
    loop {
        let mut wrong = Vec::new();
        for node in nodes.iter().flatten() {
            let mut observer = Legacy::connect(node.positions()).await;
            observers.push(observer.id);
            let mut seen = observer.snapshot(Duration::from_secs(5)).await;
            seen.retain(|id, _| !observers.contains(id));
            if seen != expected {
                wrong.push(describe(node.id, &seen, &expected));
            }
        }
        if wrong.is_empty() {
            break;
        }
        eprintln!(
            "chaos: {:?} after the chaos, not settled yet:\n{}",
            settle.elapsed(),
            wrong.join("\n")
        );
        assert!(
            settle.elapsed() < SETTLE_BUDGET,
            "chaos (seed {seed}): after {SETTLE_BUDGET:?} the worlds still differ:\n{}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settled = settle.elapsed();

    // Node 1 is back near its baseline (same players; observers gone).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_after, fd_after) = (rss_kib(long_lived), fd_count(long_lived));
    eprintln!(
        "chaos: seed {seed}: {node_kills} node kills, {nats_kills} NATS kills, {restarts} restarts; \
         {} live players ({natives} native) checked on {NODES} nodes, {dead} gone with their nodes; \
         settled in {settled:?}; node 1 RSS {rss_before} -> {rss_after} KiB, descriptors {fd_before} -> {fd_after}",
        expected.len()
    );
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "node 1 grew from {rss_before} to {rss_after} KiB"
    );
    assert!(
        fd_after <= fd_before + FD_SLACK,
        "node 1 holds {fd_after} descriptors, {fd_before} at the start"
    );
    hang_up.cancel();
}

/// What differs between a node's world and the live players.
fn describe(
    node: u16,
    seen: &HashMap<i32, (i16, i16)>,
    expected: &HashMap<i32, (i16, i16)>,
) -> String {
    let mut out = Vec::new();
    for (id, position) in expected {
        match seen.get(id) {
            None => out.push(format!("missing {id:#x} at {position:?}")),
            Some(at) if at != position => {
                out.push(format!("{id:#x} at {at:?}, latest {position:?}"));
            }
            Some(_) => {}
        }
    }
    for (id, at) in seen {
        if !expected.contains_key(id) {
            out.push(format!("ghost {id:#x} at {at:?}"));
        }
    }
    out.sort();
    format!("node {node}: {}", out.join(", "))
}

/// Connects `legacy` legacy players and `native` native ones to `node`
/// and starts them moving.
async fn spawn_players(
    node: &NodeProcess,
    (legacy, native): (usize, usize),
    roster: &Roster,
    stop_moving: &CancellationToken,
    hang_up: &CancellationToken,
    seed: u64,
) {
    for n in 0..legacy + native {
        let native = n >= legacy;
        let rng = StdRng::seed_from_u64(seed + n as u64);
        let (stop, hang_up) = (stop_moving.clone(), hang_up.clone());
        let roster = Arc::clone(roster);
        let slot = roster.lock().unwrap().len();
        if native {
            let client = NativeClient::join(node.game(), &format!("chaos-{}-{n}", node.id)).await;
            roster.lock().unwrap().push(view(node.id, true, client.id));
            tokio::spawn(native_player(client, rng, roster, slot, stop, hang_up));
        } else {
            let legacy = Legacy::connect(node.positions()).await;
            roster.lock().unwrap().push(view(node.id, false, legacy.id));
            tokio::spawn(legacy_player(legacy, rng, roster, slot, stop, hang_up));
        }
    }
}

fn view(node: u16, native: bool, id: i32) -> PlayerView {
    PlayerView {
        node,
        native,
        id,
        latest: None,
        alive: true,
    }
}

/// A random walk inside the world, away from the reserved leave marker.
fn step(rng: &mut StdRng, at: Option<(i16, i16)>) -> (i16, i16) {
    let (x, y) = at.unwrap_or((rng.random_range(-500..500), rng.random_range(-500..500)));
    let mut walk = |v: i16| (v + rng.random_range(-5..=5)).clamp(-1000, 1000);
    (walk(x), walk(y))
}

async fn legacy_player(
    legacy: Legacy,
    mut rng: StdRng,
    roster: Roster,
    slot: usize,
    stop: CancellationToken,
    hang_up: CancellationToken,
) {
    let (mut reader, mut writer) = legacy.stream.into_split();
    let mut tick = tokio::time::interval(MOVE_INTERVAL);
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = None;
    loop {
        tokio::select! {
            _ = hang_up.cancelled() => return,
            read = reader.read(&mut buf) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
            }
            _ = tick.tick(), if !stop.is_cancelled() => {
                let next = step(&mut rng, at);
                let (x, y) = next;
                if writer.write_all(&Position::new(x, y).to_bytes()).await.is_err() {
                    break;
                }
                at = Some(next);
                roster.lock().unwrap()[slot].latest = at;
            }
        }
    }
    roster.lock().unwrap()[slot].alive = false;
}

async fn native_player(
    client: NativeClient,
    mut rng: StdRng,
    roster: Roster,
    slot: usize,
    stop: CancellationToken,
    hang_up: CancellationToken,
) {
    let (mut sink, mut stream) = client.framed.split();
    let mut tick = tokio::time::interval(MOVE_INTERVAL);
    let mut at = None;
    loop {
        tokio::select! {
            _ = hang_up.cancelled() => return,
            message = stream.next() => {
                if !matches!(message, Some(Ok(_))) {
                    break;
                }
            }
            _ = tick.tick(), if !stop.is_cancelled() => {
                let next = step(&mut rng, at);
                let (x, y) = next;
                if sink.send(ClientMessage::MyPosition(Position::new(x, y))).await.is_err() {
                    break;
                }
                at = Some(next);
                roster.lock().unwrap()[slot].latest = at;
            }
        }
    }
    roster.lock().unwrap()[slot].alive = false;
}
