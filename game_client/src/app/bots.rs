//! Wandering bots for the embedded server, so `cargo run -p game_client`
//! shows something moving at once: each bot is a real native client (the same
//! network thread as the game's) that walks around its own home point. One
//! stays near the origin, in view; the other wanders out of view, so its
//! off-screen indicator and minimap dot show from the first second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy::math::Vec2;
use rand::Rng;
use shared::native::ClientMessage;

use crate::logic::local_input::to_wire_position;
use crate::net::conditioner::LinkConditions;
use crate::net::thread::{NetCommand, spawn_network_thread};

/// Bots move and report this often (10 Hz, like a legacy walker at speed).
const BOT_STEP: Duration = Duration::from_millis(100);
/// Bot walking speed, world units per second.
const BOT_SPEED_UNITS_PER_SEC: f32 = 12.0;
/// A bot keeps a heading this long at most, seconds.
const BOT_LEG_SECS: f32 = 2.0;
/// Home points and wander radii (world units): one in view at start, one
/// off-screen (a window at zoom 1 shows about ±100 × ±75 units).
const BOT_HOMES: [(Vec2, f32); 2] = [
    (Vec2::new(25.0, 20.0), 30.0),
    (Vec2::new(240.0, -110.0), 60.0),
];

/// The bots; stopped (they say Bye) when dropped.
pub struct WanderingBots {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl WanderingBots {
    /// Starts `count` bots (at most 2) against `target`.
    pub fn start(target: &str, count: usize) -> WanderingBots {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = BOT_HOMES
            .iter()
            .take(count)
            .enumerate()
            .filter_map(|(i, &(home, radius))| {
                let (target, stop) = (target.to_owned(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("bot-{}", i + 1))
                    .spawn(move || wander(&target, &format!("bot-{}", i + 1), home, radius, &stop))
                    .ok()
            })
            .collect();
        WanderingBots { stop, threads }
    }

    pub fn count(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for WanderingBots {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn wander(target: &str, name: &str, home: Vec2, radius: f32, stop: &AtomicBool) {
    let Ok(link) = spawn_network_thread(target.into(), name.into(), LinkConditions::default())
    else {
        return;
    };
    let mut rng = rand::rng();
    let mut position = home;
    let mut heading = Vec2::X;
    let mut leg_left = 0.0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // The bot does not look at the world; it only keeps the channel drained.
        while link.events.try_recv().is_ok() {}
        let dt = BOT_STEP.as_secs_f32();
        leg_left -= dt;
        if leg_left <= 0.0 {
            leg_left = rng.random_range(0.5..BOT_LEG_SECS);
            let angle = rng.random_range(0.0..std::f32::consts::TAU);
            heading = Vec2::from_angle(angle);
            // Outside its circle, a bot heads home.
            if position.distance(home) > radius {
                heading = (home - position).normalize_or_zero();
            }
        }
        position += heading * BOT_SPEED_UNITS_PER_SEC * dt;
        let _ = link
            .commands
            .send(NetCommand::Send(ClientMessage::MyPosition(
                to_wire_position(position),
            )));
        next += BOT_STEP;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let _ = link.commands.send(NetCommand::Shutdown);
    let _ = link.thread.join();
}
