//! `netgame bench-ecs`: the client's ECS cost with a crowd.
//!
//! A feeder thread plays the network thread: Welcome, a Snapshot of N
//! players, then every player moves at `rate_hz`, sent as `Positions` batches
//! through the very same crossbeam channel. The app is the headless client's
//! (MinimalPlugins + GameLogicPlugins); we time each `App::update` at 60 Hz.
//!
//! With `--render` the app is the windowed spectator client instead
//! (DefaultPlugins + GameLogicPlugins + ViewPlugins, no vsync) and we time
//! whole frames, rendering included, from `Time<Real>`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use rand::Rng;
use shared::legacy::Position;
use shared::native::{PlayerInfo, PlayerKind, PlayerPosition, PlayerState, ServerMessage};

use crate::app::cli::BenchArgs;
use crate::logic::interpolation::DrawnArea;
use crate::logic::players::PlayerIndex;
use crate::net::channel_pair;
use crate::net::thread::NetEvent;
use crate::view::camera::visible_rect;
use crate::{DEFAULT_WINDOW_PX, GameLogicPlugins};

/// Frame period of the measured loop (60 Hz, like a windowed client).
const FRAME_PERIOD: Duration = Duration::from_nanos(16_666_667);
/// Frames in the first second are not measured (allocation, first spawns).
const WARM_UP: Duration = Duration::from_secs(1);
/// The feeder sends a batch this often (a server flushes about this often).
const FEED_PERIOD: Duration = Duration::from_millis(20);
/// Our own id in the synthetic world.
const BENCH_LOCAL_ID: i32 = 1_000_000;

/// Per-frame update times, milliseconds.
#[derive(Debug, Clone)]
pub struct FrameTimes {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub frames: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn summarize(mut samples_ms: Vec<f64>) -> FrameTimes {
    samples_ms.sort_by(f64::total_cmp);
    FrameTimes {
        p50_ms: percentile(&samples_ms, 0.50),
        p99_ms: percentile(&samples_ms, 0.99),
        max_ms: samples_ms.last().copied().unwrap_or(0.0),
        frames: samples_ms.len(),
    }
}

pub fn run_bench(args: &BenchArgs) -> ExitCode {
    if args.render {
        return run_render_bench(args);
    }
    let players = args.players.max(1);
    let (events, commands, event_tx, command_rx) = channel_pair();
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        StatesPlugin,
        bevy::input::InputPlugin,
        bevy::transform::TransformPlugin,
    ))
    .insert_resource(crate::ClientSettings {
        name: "bench".into(),
        control: crate::ControlMode::Bot,
        headless: true,
    })
    .insert_resource(events)
    .insert_resource(commands)
    .add_plugins(GameLogicPlugins)
    // No camera here: the view a windowed client starts with (its window,
    // zoom 1, centred on the origin), which `InterestPlugin` would set.
    .insert_resource(DrawnArea::around(visible_rect(
        Vec2::ZERO,
        1.0,
        Vec2::new(DEFAULT_WINDOW_PX.0 as f32, DEFAULT_WINDOW_PX.1 as f32),
    )));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        let rate_hz = args.rate_hz.max(0.1);
        std::thread::spawn(move || feed_synthetic_world(&event_tx, players, rate_hz, &stop))
    };

    let started = Instant::now();
    let measure_until = started + WARM_UP + Duration::from_secs_f64(args.seconds.max(0.1));
    let mut samples_ms = Vec::new();
    let mut next_frame = Instant::now();
    while Instant::now() < measure_until {
        let t0 = Instant::now();
        app.update();
        let took = t0.elapsed();
        if t0 >= started + WARM_UP {
            samples_ms.push(took.as_secs_f64() * 1000.0);
        }
        // Keep the command channel from growing (the network thread's job).
        while command_rx.try_recv().is_ok() {}
        next_frame += FRAME_PERIOD;
        let now = Instant::now();
        if next_frame > now {
            std::thread::sleep(next_frame - now);
        } else {
            next_frame = now;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = feeder.join().unwrap_or(0);
    let known = app.world().resource::<PlayerIndex>().len();
    let times = summarize(samples_ms);
    println!(
        "bench-ecs: {players} players at {:.1} Hz, {} position updates fed, {known} player entities",
        args.rate_hz, sent
    );
    println!(
        "bench-ecs: {} frames measured over {:.1} s: update p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (target ≤ 2 ms)",
        times.frames, args.seconds, times.p50_ms, times.p99_ms, times.max_ms
    );
    if known != players {
        eprintln!("bench-ecs: expected {players} player entities, found {known}");
        return ExitCode::FAILURE;
    }
    if args.check && misses_target(&times) {
        eprintln!(
            "bench-ecs: update p99 {:.3} ms misses the {UPDATE_P99_TARGET_MS} ms target",
            times.p99_ms
        );
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// The ECS update's p99 target at 10,000 players (`bench-ecs --check`).
pub const UPDATE_P99_TARGET_MS: f64 = 2.0;

/// Whether a run's update p99 is over [`UPDATE_P99_TARGET_MS`].
fn misses_target(times: &FrameTimes) -> bool {
    times.p99_ms > UPDATE_P99_TARGET_MS
}

/// Returns how many position updates it sent.
fn feed_synthetic_world(
    events: &crossbeam_channel::Sender<NetEvent>,
    players: usize,
    rate_hz: f64,
    stop: &std::sync::atomic::AtomicBool,
) -> u64 {
    let mut rng = rand::rng();
    let mut positions: Vec<Position> = (0..players)
        .map(|_| Position::new(rng.random_range(-300..300), rng.random_range(-300..300)))
        .collect();
    let id_of = |i: usize| i as i32 + 1;
    let _ = events.send(NetEvent::Server(ServerMessage::Welcome {
        id: BENCH_LOCAL_ID,
        protocol_version: shared::native::PROTOCOL_VERSION,
        server: "bench".into(),
    }));
    let snapshot = positions
        .iter()
        .enumerate()
        .map(|(i, p)| PlayerState {
            info: PlayerInfo {
                id: id_of(i),
                name: format!("synthetic-{}", i + 1),
                kind: if i % 5 == 0 {
                    PlayerKind::Legacy
                } else {
                    PlayerKind::Native
                },
            },
            position: Some(*p),
        })
        .collect();
    let _ = events.send(NetEvent::Server(ServerMessage::Snapshot {
        players: snapshot,
    }));

    // Each player moves `rate_hz` times a second; spread them over the batches.
    let updates_per_batch = (players as f64 * rate_hz * FEED_PERIOD.as_secs_f64()).max(1.0);
    let mut carry = 0.0;
    let mut cursor = 0usize;
    let mut sent = 0u64;
    let mut next = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        carry += updates_per_batch;
        let count = carry as usize;
        carry -= count as f64;
        let mut batch = Vec::with_capacity(count);
        for _ in 0..count {
            let i = cursor % players;
            cursor += 1;
            let p = &mut positions[i];
            p.x = p.x.saturating_add(rng.random_range(-1..=1));
            p.y = p.y.saturating_add(rng.random_range(-1..=1));
            batch.push(PlayerPosition {
                id: id_of(i),
                position: *p,
            });
        }
        sent += batch.len() as u64;
        let bytes = batch.len() as u64 * 8;
        if events
            .send(NetEvent::Server(ServerMessage::Positions(batch)))
            .is_err()
            || events.send(NetEvent::Traffic { bytes }).is_err()
        {
            break;
        }
        next += FEED_PERIOD;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
    }
    sent
}

/// Window size of the render benchmark, logical pixels.
const RENDER_WINDOW_PX: (u32, u32) = (1280, 720);

/// The render benchmark's state, kept in the app.
#[derive(Resource)]
struct RenderBench {
    players: usize,
    seconds: f64,
    samples_ms: Vec<f64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    commands: crossbeam_channel::Receiver<crate::net::thread::NetCommand>,
}

fn run_render_bench(args: &BenchArgs) -> ExitCode {
    use bevy::window::{PresentMode, WindowResolution};

    let players = args.players.max(1);
    let (events, commands, event_tx, command_rx) = channel_pair();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        let rate_hz = args.rate_hz.max(0.1);
        std::thread::spawn(move || feed_synthetic_world(&event_tx, players, rate_hz, &stop))
    };
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(bevy::window::WindowPlugin {
                primary_window: Some(bevy::window::Window {
                    title: format!("bench-ecs --render: {players} players"),
                    resolution: WindowResolution::new(RENDER_WINDOW_PX.0, RENDER_WINDOW_PX.1),
                    present_mode: PresentMode::AutoNoVsync,
                    ..default()
                }),
                ..default()
            })
            .set(AssetPlugin {
                file_path: concat!(env!("CARGO_MANIFEST_DIR"), "/../assets").into(),
                ..default()
            }),
    )
    .insert_resource(crate::ClientSettings {
        name: "bench".into(),
        control: crate::ControlMode::Spectate,
        headless: false,
    })
    .insert_resource(events)
    .insert_resource(commands)
    .insert_resource(RenderBench {
        players,
        seconds: args.seconds.max(0.1),
        samples_ms: Vec::new(),
        stop: stop.clone(),
        commands: command_rx,
    })
    .add_plugins((GameLogicPlugins, crate::ViewPlugins))
    .add_systems(Last, record_render_frames);
    let exit = app.run();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = feeder.join();
    match exit {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(_) => ExitCode::FAILURE,
    }
}

/// Records each frame's duration; after the run, prints the figures and exits.
fn record_render_frames(
    time: Res<Time<Real>>,
    mut bench: ResMut<RenderBench>,
    index: Res<PlayerIndex>,
    adapter: Option<Res<bevy::render::renderer::RenderAdapterInfo>>,
    mut exits: MessageWriter<AppExit>,
) {
    while bench.commands.try_recv().is_ok() {}
    let now = time.elapsed_secs_f64();
    if now < WARM_UP.as_secs_f64() || index.len() < bench.players {
        return;
    }
    bench.samples_ms.push(time.delta_secs_f64() * 1000.0);
    let measured_secs: f64 = bench.samples_ms.iter().sum::<f64>() / 1000.0;
    if measured_secs < bench.seconds {
        return;
    }
    let renderer = adapter
        .map(|a| {
            format!(
                "{} ({:?}, driver {} {})",
                a.0.name, a.0.backend, a.0.driver, a.0.driver_info
            )
        })
        .unwrap_or_else(|| "unknown".into());
    let times = summarize(std::mem::take(&mut bench.samples_ms));
    println!(
        "bench-ecs --render: {} players, window {}x{}, renderer {renderer}",
        bench.players, RENDER_WINDOW_PX.0, RENDER_WINDOW_PX.1
    );
    println!(
        "bench-ecs --render: {} frames over {measured_secs:.1} s: frame p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0} fps at p50)",
        times.frames,
        times.p50_ms,
        times.p99_ms,
        times.max_ms,
        1000.0 / times.p50_ms.max(0.001)
    );
    bench.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    exits.write(AppExit::Success);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_p99_over_the_target_is_a_miss() {
        let at = |p99_ms| FrameTimes {
            p99_ms,
            ..summarize(vec![1.0])
        };
        assert!(!misses_target(&at(UPDATE_P99_TARGET_MS)));
        assert!(misses_target(&at(UPDATE_P99_TARGET_MS + 0.01)));
    }
}
