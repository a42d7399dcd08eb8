//! What one overview tick costs the server, without sockets or a machine's
//! noise in the way: N version-3 players with a small view each in a world
//! of 4,000 units (the area-of-interest benchmark's shape), then the time of
//! `World::send_overview` (encode once, queue for everyone, under the
//! world's lock) and of every player taking its queue (what each
//! connection's task does before its write), averaged over ticks.
//!
//! ```text
//! cargo run --release -p server --example overview_cost
//! ```

use std::time::Instant;

use rand::{Rng, SeedableRng};
use server::fanout::native::NATIVE_FRAMES;
use server::fanout::overview::DEFAULT_OVERVIEW_MAX_PLAYERS;
use server::world::World;
use shared::legacy::Position;
use shared::native::{PROTOCOL_VERSION, PlayerInfo, PlayerKind};

const WORLD_SIZE: i16 = 4000;
const VIEW_HALF_EXTENT: u16 = 200;
const TICKS: u32 = 50;

fn main() {
    println!(
        "players | overview bytes | send_overview µs/tick | takes µs/tick | total µs/s at 1 Hz"
    );
    for players in [1000, 2000, 5000, 10_000] {
        let world = World::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(24);
        let members: Vec<_> = (1..=players)
            .map(|id| {
                let member = world.join_speaking(
                    PlayerInfo {
                        id,
                        name: format!("p{id}"),
                        kind: PlayerKind::Native,
                    },
                    &NATIVE_FRAMES,
                    PROTOCOL_VERSION,
                );
                let at = Position::new(
                    rng.random_range(0..WORLD_SIZE),
                    rng.random_range(0..WORLD_SIZE),
                );
                member.set_positions(&[at]);
                member.set_view(at, VIEW_HALF_EXTENT);
                member
            })
            .collect();
        world.broadcast();
        for member in &members {
            member.take_outgoing(); // the roster and the snapshots
        }
        let mut sending = 0.0;
        let mut taking = 0.0;
        let mut bytes = 0;
        for _ in 0..TICKS {
            let started = Instant::now();
            let queued = world.send_overview(DEFAULT_OVERVIEW_MAX_PLAYERS);
            sending += started.elapsed().as_secs_f64();
            assert_eq!(queued, players as usize, "every player gets it");
            let started = Instant::now();
            for member in &members {
                let out = member.take_outgoing();
                bytes = out.chunks.iter().map(|c| c.len()).sum::<usize>();
            }
            taking += started.elapsed().as_secs_f64();
        }
        let per_tick = |secs: f64| secs / f64::from(TICKS) * 1e6;
        println!(
            "{players} | {bytes} | {:.0} | {:.0} | {:.0}",
            per_tick(sending),
            per_tick(taking),
            per_tick(sending + taking)
        );
    }
}
