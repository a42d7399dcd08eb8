//! The client's ECS logic without a window: `MinimalPlugins` + the game
//! plugins, fed through the same crossbeam channels the network thread uses.

use std::time::Duration;

use bevy::input::InputPlugin;
use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use bevy::time::TimeUpdateStrategy;
use crossbeam_channel::{Receiver, Sender};
use game_client::logic::interpolation::InterpolationDelay;
use game_client::logic::math_panel::{MathPanel, SendMathQuery};
use game_client::logic::players::{
    Kind, LegacyPlayer, LocalPlayer, PIXELS_PER_UNIT, PlayerId, PlayerIndex, PlayerLabel,
    PlayerName, RemotePlayer, label_text,
};
use game_client::logic::stats::NetStats;
use game_client::net::thread::{NetCommand, NetEvent};
use game_client::net::{ConnectionState, LocalPlayerId, channel_pair};
use game_client::view::hud::{DisconnectedBanner, HudPlugin, HudText};
use game_client::{ClientSettings, ControlMode, GameLogicPlugins};
use shared::ClientId;
use shared::legacy::Position;
use shared::math::{MathOp, MathStatus};
use shared::native::{ClientMessage, PROTOCOL_VERSION, ServerMessage};
use shared::native::{PlayerInfo, PlayerKind, PlayerPosition, PlayerState};

const FRAME: Duration = Duration::from_millis(50);
const ME: ClientId = 1;

struct Harness {
    app: App,
    to_client: Sender<NetEvent>,
    from_client: Receiver<NetCommand>,
}

impl Harness {
    fn new(control: ControlMode, frame: Duration) -> Harness {
        let (events, commands, to_client, from_client) = channel_pair();
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, StatesPlugin, InputPlugin))
            .insert_resource(TimeUpdateStrategy::ManualDuration(frame))
            .insert_resource(ClientSettings {
                name: "tester".into(),
                control,
                headless: true,
            })
            .insert_resource(events)
            .insert_resource(commands)
            .add_plugins((GameLogicPlugins, HudPlugin));
        app.update();
        Harness {
            app,
            to_client,
            from_client,
        }
    }

    fn keyboard() -> Harness {
        Harness::new(ControlMode::Keyboard, FRAME)
    }

    fn send(&self, event: NetEvent) {
        self.to_client.send(event).unwrap();
    }

    /// What the network thread passes on from the server.
    fn server(&self, message: ServerMessage) {
        self.send(NetEvent::Server(message));
    }

    fn frames(&mut self, n: usize) {
        for _ in 0..n {
            self.app.update();
        }
    }

    fn welcome(&mut self) {
        self.server(welcome(ME));
        self.frames(2);
    }

    fn remote(&mut self, id: ClientId) -> Option<Entity> {
        let world = self.app.world_mut();
        let mut query = world.query_filtered::<(Entity, &PlayerId), With<RemotePlayer>>();
        query
            .iter(world)
            .find(|(_, pid)| pid.0 == id)
            .map(|(e, _)| e)
    }

    fn remote_ids(&mut self) -> Vec<ClientId> {
        let world = self.app.world_mut();
        let mut query = world.query_filtered::<&PlayerId, With<RemotePlayer>>();
        let mut ids: Vec<ClientId> = query.iter(world).map(|p| p.0).collect();
        ids.sort();
        ids
    }

    /// What the view would write above this player (labels themselves are
    /// spawned by the view, only for the players it names).
    fn label_of(&mut self, entity: Entity) -> Option<String> {
        let world = self.app.world();
        let id = world.get::<PlayerId>(entity)?.0;
        let name = world.get::<PlayerName>(entity)?;
        let kind = world.get::<Kind>(entity)?.0;
        Some(label_text(id, &name.0, kind))
    }

    fn label_entities(&mut self) -> usize {
        let world = self.app.world_mut();
        let mut query = world.query_filtered::<(), With<PlayerLabel>>();
        query.iter(world).count()
    }

    fn x_px(&self, entity: Entity) -> f32 {
        self.app
            .world()
            .get::<Transform>(entity)
            .unwrap()
            .translation
            .x
    }

    fn commands(&self) -> Vec<NetCommand> {
        self.from_client.try_iter().collect()
    }

    fn hud_text(&mut self) -> String {
        let world = self.app.world_mut();
        let mut query = world.query_filtered::<&Text, With<HudText>>();
        query.single(world).unwrap().0.clone()
    }
}

fn welcome(id: ClientId) -> ServerMessage {
    ServerMessage::Welcome {
        id,
        protocol_version: PROTOCOL_VERSION,
        server: "test".into(),
    }
}

fn snapshot(players: Vec<PlayerState>) -> ServerMessage {
    ServerMessage::Snapshot { players }
}

fn info(id: ClientId, name: &str, kind: PlayerKind) -> PlayerInfo {
    PlayerInfo {
        id,
        name: name.into(),
        kind,
    }
}

fn at(id: ClientId, x: i16, y: i16) -> PlayerPosition {
    PlayerPosition {
        id,
        position: Position::new(x, y),
    }
}

#[test]
fn join_spawns_a_named_sprite_and_leave_despawns_it() {
    let mut h = Harness::keyboard();
    h.welcome();
    h.server(ServerMessage::PlayerJoined(info(
        2,
        "alice",
        PlayerKind::Native,
    )));
    h.server(ServerMessage::PlayerJoined(info(
        3,
        "walker",
        PlayerKind::Legacy,
    )));
    h.server(ServerMessage::Positions(vec![at(2, 10, 5), at(3, -4, 7)]));
    h.frames(1);

    let alice = h.remote(2).expect("alice spawned");
    assert!(h.app.world().get::<Sprite>(alice).is_some(), "has a sprite");
    assert_eq!(h.label_of(alice).as_deref(), Some("alice #2"));
    assert!(h.app.world().get::<LegacyPlayer>(alice).is_none());
    // First position: placed there at once, not slid from the origin.
    assert_eq!(h.x_px(alice), 10.0 * PIXELS_PER_UNIT);

    let walker = h.remote(3).expect("python player spawned");
    assert!(h.app.world().get::<LegacyPlayer>(walker).is_some());
    assert_eq!(h.label_of(walker).as_deref(), Some("[py] walker #3"));
    assert_eq!(h.app.world().resource::<PlayerIndex>().len(), 2);
    assert_eq!(h.label_entities(), 0, "no view, no label entities");
    // Players are childless roots: no static-tree bookkeeping.
    assert_eq!(
        *h.app
            .world()
            .resource::<bevy::transform::systems::StaticTransformOptimizations>(),
        bevy::transform::systems::StaticTransformOptimizations::Disabled
    );

    h.server(ServerMessage::PlayerLeft { id: 2 });
    h.frames(1);
    assert_eq!(h.remote(2), None);
    assert!(h.app.world().get_entity(alice).is_err(), "entity despawned");
    assert_eq!(h.remote_ids(), vec![3]);
}

#[test]
fn snapshot_replaces_the_whole_view_and_skips_ourselves() {
    let mut h = Harness::keyboard();
    h.welcome();
    h.server(ServerMessage::PlayerJoined(info(
        2,
        "gone",
        PlayerKind::Native,
    )));
    h.server(ServerMessage::PlayerJoined(info(
        3,
        "stays",
        PlayerKind::Native,
    )));
    h.frames(1);
    assert_eq!(h.remote_ids(), vec![2, 3]);

    let state = |i: ClientId, pos: Option<(i16, i16)>| PlayerState {
        info: info(i, &format!("p{i}"), PlayerKind::Native),
        position: pos.map(|(x, y)| Position::new(x, y)),
    };
    h.server(snapshot(vec![
        state(ME, Some((0, 0))),
        state(3, Some((20, 0))),
        state(4, None),
    ]));
    h.frames(1);
    assert_eq!(
        h.remote_ids(),
        vec![3, 4],
        "2 left, 4 is new, we are not remote"
    );
    let four = h.remote(4).unwrap();
    assert_eq!(
        h.app.world().get::<Visibility>(four),
        Some(&Visibility::Hidden),
        "no position yet"
    );

    // An empty snapshot empties the world.
    h.server(snapshot(vec![]));
    h.frames(1);
    assert!(h.remote_ids().is_empty());
}

#[test]
fn remote_players_are_drawn_between_samples_a_small_buffer_behind() {
    let mut h = Harness::keyboard();
    h.welcome();
    h.server(ServerMessage::PlayerJoined(info(
        2,
        "mover",
        PlayerKind::Native,
    )));
    h.server(ServerMessage::Positions(vec![at(2, 0, 0)]));
    h.frames(1);
    let mover = h.remote(2).unwrap();
    assert_eq!(h.x_px(mover), 0.0);
    let delay = h.app.world().resource::<InterpolationDelay>().delay_secs;
    assert!((0.09..=0.11).contains(&delay), "starts at 100 ms: {delay}");

    // The next sample 100 ms (two frames) later.
    h.frames(1);
    h.server(ServerMessage::Positions(vec![at(2, 50, 0)]));
    let goal = 50.0 * PIXELS_PER_UNIT;
    h.frames(1);
    let first = h.x_px(mover);
    assert!(first < goal * 0.2, "drawn 100 ms in the past: {first}");
    h.frames(1);
    let second = h.x_px(mover);
    assert!(second > first && second < goal, "half way: {second}");
    // After the brief extrapolation it rests on the newest sample.
    h.frames(12);
    let settled = h.x_px(mover);
    assert!((goal - settled).abs() < 0.5, "arrives: {settled}");
}

#[test]
fn a_player_first_placed_by_a_snapshot_appears_in_place() {
    // Regression: the snapshot path used to set only the target of a known
    // player, so one that joined without a position slid in from (0, 0).
    let mut h = Harness::keyboard();
    h.welcome();
    h.server(ServerMessage::PlayerJoined(info(
        2,
        "late",
        PlayerKind::Native,
    )));
    h.frames(1);
    let late = h.remote(2).unwrap();
    assert_eq!(
        h.app.world().get::<Visibility>(late),
        Some(&Visibility::Hidden)
    );
    h.server(snapshot(vec![PlayerState {
        info: info(2, "late", PlayerKind::Native),
        position: Some(Position::new(80, -30)),
    }]));
    h.frames(1);
    assert_eq!(h.x_px(late), 80.0 * PIXELS_PER_UNIT, "placed, not sliding");
    assert_eq!(
        h.app.world().get::<Visibility>(late),
        Some(&Visibility::Inherited)
    );
}

#[test]
fn the_interpolation_delay_grows_under_jitter() {
    let mut h = Harness::keyboard();
    h.welcome();
    h.server(ServerMessage::PlayerJoined(info(
        2,
        "j",
        PlayerKind::Native,
    )));
    // A player moving every 100 ms; the RTT swings between 20 and 120 ms.
    for i in 0..40i16 {
        h.server(ServerMessage::Positions(vec![at(2, i, 0)]));
        let rtt_ms = if i % 2 == 0 { 20 } else { 120 };
        h.send(NetEvent::Rtt(Duration::from_millis(rtt_ms)));
        h.frames(2);
    }
    let delay = *h.app.world().resource::<InterpolationDelay>();
    assert!(delay.jitter_secs > 0.04, "jitter measured: {delay:?}");
    assert!(delay.delay_secs > 0.17, "a deeper buffer: {delay:?}");
    let text = h.hud_text();
    assert!(text.contains("interp delay:"), "{text}");
}

#[test]
fn hud_counters_update() {
    let mut h = Harness::keyboard();
    h.welcome();
    h.server(ServerMessage::PlayerJoined(info(
        2,
        "a",
        PlayerKind::Native,
    )));
    h.server(ServerMessage::PlayerJoined(info(
        3,
        "b",
        PlayerKind::Legacy,
    )));
    h.send(NetEvent::Rtt(Duration::from_micros(12_300)));
    // 30 frames of 50 ms (1.5 s), 4 updates and 100 bytes each: 80 updates/s.
    for frame in 0..30 {
        h.server(ServerMessage::Positions(vec![
            at(2, frame, 0),
            at(3, 0, frame),
            at(2, frame, 1),
            at(3, 1, frame),
        ]));
        h.send(NetEvent::Traffic { bytes: 100 });
        h.frames(1);
    }
    let stats = h.app.world().resource::<NetStats>().clone();
    assert_eq!(stats.players_online, 3, "two remotes and us");
    assert_eq!(stats.total_updates, 120);
    assert_eq!(stats.total_bytes, 3000);
    assert!(
        (70.0..=90.0).contains(&stats.updates_per_sec),
        "about 80 updates/s, got {}",
        stats.updates_per_sec
    );
    assert!(!stats.history.is_empty(), "graph has samples");
    let text = h.hud_text();
    assert!(text.contains("players online: 3"), "{text}");
    assert!(text.contains("RTT: 12.3 ms"), "{text}");
    assert!(text.contains("Playing"), "{text}");
}

#[test]
fn disconnect_is_shown_and_clears_the_stale_view() {
    let mut h = Harness::keyboard();
    h.welcome();
    h.server(ServerMessage::PlayerJoined(info(
        2,
        "a",
        PlayerKind::Native,
    )));
    h.frames(1);
    h.send(NetEvent::Disconnected {
        reason: "the server closed the connection".into(),
        retry_in: Duration::from_secs(1),
    });
    h.frames(2);
    assert_eq!(
        *h.app.world().resource::<State<ConnectionState>>().get(),
        ConnectionState::Disconnected
    );
    assert!(h.remote_ids().is_empty());
    let world = h.app.world_mut();
    let mut banner = world.query_filtered::<(&Text, &Visibility), With<DisconnectedBanner>>();
    let (text, visibility) = banner.single(world).unwrap();
    assert_eq!(*visibility, Visibility::Visible);
    assert!(
        text.0.contains("the server closed the connection"),
        "{}",
        text.0
    );

    // Reconnected: playing again with the new id.
    h.send(NetEvent::Connecting { target: "x".into() });
    h.server(welcome(9));
    h.frames(2);
    assert_eq!(h.app.world().resource::<LocalPlayerId>().0, Some(9));
    assert_eq!(
        *h.app.world().resource::<State<ConnectionState>>().get(),
        ConnectionState::Playing
    );
}

#[test]
fn an_idle_player_announces_itself_once() {
    let mut h = Harness::keyboard();
    h.welcome();
    h.frames(20);
    let sent: Vec<_> = h
        .commands()
        .into_iter()
        .filter(|c| matches!(c, NetCommand::Send(ClientMessage::MyPosition(_))))
        .collect();
    assert_eq!(
        sent.len(),
        1,
        "one announce, then nothing while idle: {sent:?}"
    );
    let world = h.app.world_mut();
    let mut local = world.query_filtered::<&PlayerId, With<LocalPlayer>>();
    assert_eq!(local.single(world).unwrap().0, ME);
}

#[test]
fn a_bot_sends_its_moves_at_most_20_times_a_second() {
    // 100 frames of 10 ms = 1 s of wandering.
    let mut h = Harness::new(ControlMode::Bot, Duration::from_millis(10));
    h.welcome();
    h.commands();
    h.frames(100);
    let positions: Vec<Position> = h
        .commands()
        .into_iter()
        .filter_map(|c| match c {
            NetCommand::Send(ClientMessage::MyPosition(p)) => Some(p),
            _ => None,
        })
        .collect();
    assert!(
        (3..=21).contains(&positions.len()),
        "sent {} positions in 1 s",
        positions.len()
    );
    assert!(
        positions.windows(2).all(|w| w[0] != w[1]),
        "only sends when it moved: {positions:?}"
    );
}

#[test]
fn math_queries_go_out_and_answers_are_shown() {
    let mut h = Harness::keyboard();
    h.welcome();
    h.app.world_mut().write_message(SendMathQuery {
        op: MathOp::Suma,
        a: 7,
        b: 3,
    });
    h.frames(1);
    let request_id = h
        .commands()
        .into_iter()
        .find_map(|c| match c {
            NetCommand::Send(ClientMessage::MathQuery {
                request_id,
                op: MathOp::Suma,
                a: 7,
                b: 3,
            }) => Some(request_id),
            _ => None,
        })
        .expect("query sent");
    h.server(ServerMessage::MathAnswer {
        request_id,
        status: MathStatus::Ok,
        value: 10.0,
    });
    h.frames(1);
    let shown = h.app.world().resource::<MathPanel>().last_result.clone();
    assert_eq!(shown.as_deref(), Some("SUMA 7 3 = 10"));

    h.app.world_mut().write_message(SendMathQuery {
        op: MathOp::Division,
        a: 1,
        b: 0,
    });
    h.frames(1);
    let request_id = h
        .commands()
        .into_iter()
        .find_map(|c| match c {
            NetCommand::Send(ClientMessage::MathQuery { request_id, .. }) => Some(request_id),
            _ => None,
        })
        .expect("second query sent");
    h.server(ServerMessage::MathAnswer {
        request_id,
        status: MathStatus::DivisionByZero,
        value: 0.0,
    });
    h.frames(1);
    let shown = h.app.world().resource::<MathPanel>().last_result.clone();
    assert_eq!(
        shown.as_deref(),
        Some("DIVISION 1 0 → error: division by zero")
    );
}

#[test]
fn math_queries_are_refused_while_offline() {
    let mut h = Harness::keyboard();
    h.app.world_mut().write_message(SendMathQuery {
        op: MathOp::Resta,
        a: 1,
        b: 2,
    });
    h.frames(1);
    assert!(
        !h.commands()
            .iter()
            .any(|c| matches!(c, NetCommand::Send(ClientMessage::MathQuery { .. })))
    );
    let shown = h.app.world().resource::<MathPanel>().last_result.clone();
    assert!(shown.unwrap().contains("not connected"));
}
