//! A client whose frames are slow (software rendering: about 166 ms a
//! frame, and now and then a stall of seconds), fed over a real socket by
//! 2,000 players that all move 50 times a second: what the network thread
//! holds for the ECS stays bounded by the players, whatever the backlog of
//! frames, and the ECS ends with every player's last position.
//!
//! The server is played by this test (a plain socket speaking the native
//! protocol), so it can send faster than any frame rate can take.
//! `SLOW_CLIENT_SECS` (5 by default) sets how long the players move; the
//! test prints the process's RSS every second (docs/client.md reports a
//! 60-second run).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bevy::input::InputPlugin;
use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use bytes::BytesMut;
use game_client::logic::players::{LatestPosition, PlayerId, RemotePlayer};
use game_client::net::conditioner::LinkConditions;
use game_client::net::outbox::EVENT_CHANNEL_CAPACITY;
use game_client::net::thread::{NetCommand, NetEvent, spawn_network_thread};
use game_client::net::{NetCommands, NetEvents};
use game_client::{ClientSettings, ControlMode, GameLogicPlugins};
use shared::legacy::Position;
use shared::native::{
    PROTOCOL_VERSION, PlayerInfo, PlayerKind, PlayerPosition, PlayerState, ServerMessage,
    push_frame,
};

const PLAYERS: i32 = 2000;
/// Rounds of moves a second (every player moves in each).
const ROUNDS_PER_SEC: u64 = 50;
/// One ordinary frame of the slow client.
const SLOW_FRAME: Duration = Duration::from_millis(166);
/// One frame in ten is a stall this long.
const STALL: Duration = Duration::from_secs(1);
const DEFAULT_SECS: u64 = 5;
/// Longest the ECS may take to catch up once the players stop.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Where player `id` is in round `round`; the last round is `u16::MAX`.
fn position(id: i32, round: u64) -> Position {
    let y = (id % 1000) as i16;
    match round {
        u64::MAX => Position::new(-7, y),
        _ => Position::new((round % 20_000) as i16, y),
    }
}

fn frame_of(message: &ServerMessage) -> BytesMut {
    let mut out = BytesMut::new();
    push_frame(message, &mut out);
    out
}

/// Plays the server: welcome, snapshot, then every player moves each
/// round until `secs` pass, then one last round, then the socket stays
/// open until `done`.
fn serve(mut stream: TcpStream, secs: u64, done: Arc<AtomicBool>, finished: Arc<AtomicBool>) {
    let mut hello = [0u8; 256];
    let _ = stream.read(&mut hello);
    let mut reader = stream.try_clone().expect("clone");
    // Drain what the client sends (pings, Bye) so it never blocks.
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        while reader.read(&mut sink).is_ok_and(|n| n > 0) {}
    });
    let welcome = ServerMessage::Welcome {
        id: PLAYERS + 1,
        protocol_version: PROTOCOL_VERSION,
        server: "fake".into(),
    };
    let players = (1..=PLAYERS)
        .map(|id| PlayerState {
            info: PlayerInfo {
                id,
                name: format!("p{id}"),
                kind: PlayerKind::Native,
            },
            position: Some(position(id, 0)),
        })
        .collect();
    stream.write_all(&frame_of(&welcome)).unwrap();
    stream
        .write_all(&frame_of(&ServerMessage::Snapshot { players }))
        .unwrap();
    let start = Instant::now();
    let round_gap = Duration::from_secs(1) / ROUNDS_PER_SEC as u32;
    let batch = |round| {
        ServerMessage::Positions(
            (1..=PLAYERS)
                .map(|id| PlayerPosition {
                    id,
                    position: position(id, round),
                })
                .collect(),
        )
    };
    let mut round = 1;
    while start.elapsed() < Duration::from_secs(secs) {
        if stream.write_all(&frame_of(&batch(round))).is_err() {
            return;
        }
        round += 1;
        let due = start + round_gap * round as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let _ = stream.write_all(&frame_of(&batch(u64::MAX)));
    finished.store(true, Ordering::Relaxed);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_slow_client_fed_by_2000_moving_players_holds_at_most_one_position_each() {
    let secs = std::env::var("SLOW_CLIENT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let server = {
        let (done, finished) = (Arc::clone(&done), Arc::clone(&finished));
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            serve(stream, secs, done, finished);
        })
    };
    let link = spawn_network_thread(addr.to_string(), "slow".into(), LinkConditions::default())
        .expect("network thread");
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, StatesPlugin, InputPlugin))
        .insert_resource(ClientSettings {
            name: "slow".into(),
            control: ControlMode::Spectate,
            headless: true,
        })
        .insert_resource(NetCommands(link.commands.clone()))
        .add_plugins(GameLogicPlugins);
    // The test stands between the thread and the ECS to count what the
    // channel held: it takes everything each frame and hands it on.
    let (forward, forwarded) = crossbeam_channel::unbounded();
    app.insert_resource(NetEvents(forwarded));

    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut frames = 0u64;
    let mut most_in_channel = 0;
    let mut most_entries_in_channel = 0;
    let mut caught_up_by: Option<Instant> = None;
    loop {
        assert!(
            !link.thread.is_finished(),
            "the network thread stopped (panicked?)"
        );
        let waiting: Vec<NetEvent> = link.events.try_iter().collect();
        let entries: usize = waiting
            .iter()
            .map(|event| match event {
                NetEvent::Server(ServerMessage::Positions(batch)) => batch.len(),
                _ => 0,
            })
            .sum();
        most_in_channel = most_in_channel.max(waiting.len());
        most_entries_in_channel = most_entries_in_channel.max(entries);
        for event in waiting {
            forward.send(event).unwrap();
        }
        app.update();
        frames += 1;
        std::thread::sleep(if frames.is_multiple_of(10) {
            STALL
        } else {
            SLOW_FRAME
        });
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!(
                "t={:>3.0}s rss_kib={} outbox_peak={} frames={frames}",
                started.elapsed().as_secs_f64(),
                rss_kib(),
                link.outbox_peak.load(Ordering::Relaxed),
            );
        }
        if !finished.load(Ordering::Relaxed) {
            continue;
        }
        let deadline = *caught_up_by.get_or_insert_with(|| Instant::now() + CATCH_UP);
        let world = app.world_mut();
        let mut players =
            world.query_filtered::<(&PlayerId, &LatestPosition), With<RemotePlayer>>();
        let mut at_last = 0;
        let mut count = 0;
        for (id, latest) in players.iter(world) {
            count += 1;
            let want = position(id.0, u64::MAX);
            let want = Vec2::new(f32::from(want.x), f32::from(want.y));
            at_last += usize::from(latest.position() == Some(want));
        }
        if count == PLAYERS as usize && at_last == count {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{at_last} of {count} players at their last position {CATCH_UP:?} after the end"
        );
    }
    let peak = link.outbox_peak.load(Ordering::Relaxed);
    eprintln!(
        "end: rss_kib={} outbox_peak={peak} most_in_channel={most_in_channel} \
         most_entries_in_channel={most_entries_in_channel} frames={frames}",
        rss_kib()
    );
    // No roster change in this run: the thread holds one entry a player
    // (plus the few measurements and the connection's events), and the
    // channel one coalesced batch, however many reads a frame lasted.
    assert!(
        peak <= PLAYERS as usize + EVENT_CHANNEL_CAPACITY,
        "the network thread held {peak} entries for 2,000 players"
    );
    assert!(
        most_entries_in_channel <= PLAYERS as usize,
        "the channel held {most_entries_in_channel} positions for 2,000 players"
    );
    assert!(most_in_channel <= EVENT_CHANNEL_CAPACITY);
    let _ = link.commands.send(NetCommand::Shutdown);
    done.store(true, Ordering::Relaxed);
    link.thread.join().unwrap();
    server.join().unwrap();
}
