//! `netgame replay`: a recording written with the format's writer (two
//! rotated files), played by the real binary (`--at --print`, `--headless`)
//! and by the ECS (seeking back and forth, the players appearing and leaving
//! through the messages the network drain writes).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bevy::input::InputPlugin;
use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use bevy::time::TimeUpdateStrategy;
use game_client::logic::players::PlayerIndex;
use game_client::replay::{ReplayClock, ReplayFeedPlugin};
use game_client::{ClientSettings, ControlMode, GameLogicPlugins};
use shared::legacy::Position;
use shared::native::{PlayerInfo, PlayerKind, PlayerState};
use shared::recording::{Header, Record, Recording, VERSION, Writer, rotated_path};

fn info(id: i32, name: &str, kind: PlayerKind) -> PlayerInfo {
    PlayerInfo {
        id,
        name: name.into(),
        kind,
    }
}

/// `alice` (native) joins at 0 s and walks east 10 units a second; `py-2`
/// (legacy) joins at 1 s at (5, 5); alice leaves at 2 s; the recording
/// ends at 2.5 s. The second file starts at 1.5 s with a snapshot.
fn write_recording(dir: &Path) -> PathBuf {
    let path = dir.join("replay.rec");
    let header = |file_index| Header {
        version: VERSION,
        file_index,
        start_unix_ms: 1_765_000_000_000,
        recording_id: 99,
    };
    let alice = info(1, "alice", PlayerKind::Native);
    let python = info(2, "py-2", PlayerKind::Legacy);
    let mut first = Writer::new(std::fs::File::create(&path).unwrap(), &header(0)).unwrap();
    first.snapshot(0, Vec::new()).unwrap();
    first.push(0, &Record::Join(alice.clone())).unwrap();
    for step in 0..=14u64 {
        let position = Position::new(step as i16, 0);
        first
            .push(step * 100, &Record::Move { id: 1, position })
            .unwrap();
        if step == 10 {
            first.push(1000, &Record::Join(python.clone())).unwrap();
            let position = Position::new(5, 5);
            first.push(1000, &Record::Move { id: 2, position }).unwrap();
        }
    }
    first.finish_block().unwrap();
    let file = std::fs::File::create(rotated_path(&path, 1)).unwrap();
    let mut second = Writer::new(file, &header(1)).unwrap();
    let world = vec![
        PlayerState {
            info: alice,
            position: Some(Position::new(14, 0)),
        },
        PlayerState {
            info: python,
            position: Some(Position::new(5, 5)),
        },
    ];
    second.snapshot(1500, world).unwrap();
    for step in 15..=19u64 {
        let position = Position::new(step as i16, 0);
        second
            .push(step * 100, &Record::Move { id: 1, position })
            .unwrap();
    }
    second.push(2000, &Record::Leave { id: 1 }).unwrap();
    second
        .push(
            2500,
            &Record::Move {
                id: 2,
                position: Position::new(6, 6),
            },
        )
        .unwrap();
    second.finish_block().unwrap();
    path
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netgame-replay-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn netgame(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_netgame"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn replay_at_print_shows_the_world_at_each_moment_across_rotated_files() {
    let dir = scratch_dir("print");
    let path = write_recording(&dir);
    let path = path.to_str().unwrap();
    for (at, expected) in [
        ("0.55", "1 alice 5 0\n"),
        ("1.25", "1 alice 12 0\n2 py-2 5 5\n"),
        ("1.75", "1 alice 17 0\n2 py-2 5 5\n"),
        ("2.2", "2 py-2 5 5\n"),
        ("9", "2 py-2 6 6\n"),
    ] {
        let (ok, out, err) = netgame(&["replay", path, "--at", at, "--print"]);
        assert!(ok, "{err}");
        assert_eq!(out, expected, "at {at} s");
    }
    let (ok, _, err) = netgame(&["replay", path, "--at=-1", "--print"]);
    assert!(!ok && err.contains("not between 0"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_headless_logs_status_lines_and_exits_at_the_end() {
    let dir = scratch_dir("headless");
    let path = write_recording(&dir);
    let (ok, out, err) = netgame(&["replay", path.to_str().unwrap(), "--headless"]);
    let log = format!("{out}{err}");
    assert!(ok, "{log}");
    assert!(
        log.contains("replaying") && log.contains("2.5 s, 2 file(s)"),
        "{log}"
    );
    assert!(
        log.contains("status players="),
        "status lines while playing: {log}"
    );
    assert!(
        log.contains("player joined id=2 name=\"py-2\" kind=legacy"),
        "{log}"
    );
    assert!(log.contains("player left id=1"), "{log}");
    assert!(log.contains("end of the recording (2.5 s)"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_ecs_sees_the_recorded_players_and_seeks_back_and_forth() {
    let dir = scratch_dir("ecs");
    let recording = Recording::open(&write_recording(&dir)).unwrap();
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, StatesPlugin, InputPlugin))
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(
            50,
        )))
        .insert_resource(ClientSettings {
            name: "replay".into(),
            control: ControlMode::Spectate,
            headless: true,
        })
        .add_plugins((
            ReplayFeedPlugin {
                recording,
                label: "test".into(),
                exit_at_end: false,
            },
            GameLogicPlugins,
        ));
    let ids = |app: &mut App| {
        let index = app.world().resource::<PlayerIndex>();
        [1, 2]
            .into_iter()
            .filter(|id| index.contains(*id))
            .collect::<Vec<_>>()
    };
    // 1.25 s of frames: alice, then the python player too.
    for _ in 0..26 {
        app.update();
    }
    assert_eq!(ids(&mut app), vec![1, 2]);
    // Past alice's leave.
    app.world_mut().resource_mut::<ReplayClock>().seek_to = Some(2200);
    app.update();
    app.update();
    assert_eq!(ids(&mut app), vec![2]);
    // Back before the python player joined: a snapshot replaces the world.
    app.world_mut().resource_mut::<ReplayClock>().seek_to = Some(500);
    app.update();
    app.update();
    assert_eq!(ids(&mut app), vec![1]);
    // Played to the end, the clock stops there, paused.
    for _ in 0..60 {
        app.update();
    }
    let clock = app.world().resource::<ReplayClock>();
    assert_eq!((clock.now_ms, clock.paused), (2500, true));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_timeline_keys_pause_change_speed_and_seek() {
    use bevy::input::ButtonState;
    use bevy::input::keyboard::{Key, KeyboardInput};
    use game_client::replay::timeline::TimelinePlugin;

    let dir = scratch_dir("keys");
    let recording = Recording::open(&write_recording(&dir)).unwrap();
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, StatesPlugin, InputPlugin))
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(
            50,
        )))
        .insert_resource(ClientSettings {
            name: "replay".into(),
            control: ControlMode::Spectate,
            headless: true,
        })
        .add_plugins((
            ReplayFeedPlugin {
                recording,
                label: "test".into(),
                exit_at_end: false,
            },
            GameLogicPlugins,
            TimelinePlugin,
        ));
    app.update();
    let press = |app: &mut App, key_code: KeyCode| {
        for state in [ButtonState::Pressed, ButtonState::Released] {
            app.world_mut().write_message(KeyboardInput {
                key_code,
                logical_key: Key::Unidentified(bevy::input::keyboard::NativeKey::Unidentified),
                state,
                text: None,
                repeat: false,
                window: Entity::PLACEHOLDER,
            });
            app.update();
        }
    };
    let clock = |app: &App| app.world().resource::<ReplayClock>().clone();
    press(&mut app, KeyCode::BracketRight);
    press(&mut app, KeyCode::BracketRight);
    assert_eq!(clock(&app).speed, 4.0);
    for _ in 0..10 {
        press(&mut app, KeyCode::BracketLeft);
    }
    assert_eq!(clock(&app).speed, 0.25, "never slower than ×0.25");
    press(&mut app, KeyCode::Space);
    assert!(clock(&app).paused);
    let paused_at = clock(&app).now_ms;
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(clock(&app).now_ms, paused_at, "a paused clock stands still");
    press(&mut app, KeyCode::ArrowRight);
    assert_eq!(clock(&app).now_ms, 2500, "+10 s stops at the end");
    press(&mut app, KeyCode::ArrowLeft);
    assert_eq!(clock(&app).now_ms, 0, "-10 s stops at the start");
    // Held down, an arrow is not seen as pressed by the camera's panning.
    app.world_mut().write_message(KeyboardInput {
        key_code: KeyCode::ArrowRight,
        logical_key: Key::Unidentified(bevy::input::keyboard::NativeKey::Unidentified),
        state: ButtonState::Pressed,
        text: None,
        repeat: false,
        window: Entity::PLACEHOLDER,
    });
    app.update();
    assert_eq!(clock(&app).now_ms, 2500);
    assert!(
        !app.world()
            .resource::<ButtonInput<KeyCode>>()
            .pressed(KeyCode::ArrowRight),
        "the arrows seek instead of panning the camera"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
