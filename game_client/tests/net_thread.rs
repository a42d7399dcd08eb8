//! The network thread over a real socket against the real server (in this
//! process, every port 0): decoding, RTT, reconnect with backoff, and the
//! link conditioner's delay and loss, measured.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use game_client::app::embedded_server::EmbeddedServer;
use game_client::net::conditioner::LinkConditions;
use game_client::net::thread::{
    NetCommand, NetEvent, NetworkLink, RECONNECT_BACKOFF_MIN, spawn_network_thread,
};
use shared::legacy::Position;
use shared::native::{ClientMessage, PlayerKind, ServerMessage};

/// Longest wait for any one expected event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(server: &EmbeddedServer, name: &str, conditions: LinkConditions) -> NetworkLink {
    spawn_network_thread(server.addrs.game.to_string(), name.into(), conditions)
        .expect("network thread starts")
}

/// Waits for the first event `pick` accepts; the events before it are returned too.
fn wait_for<T>(
    events: &Receiver<NetEvent>,
    what: &str,
    mut pick: impl FnMut(&NetEvent) -> Option<T>,
) -> (T, Vec<NetEvent>) {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => {
                if let Some(found) = pick(&event) {
                    return (found, seen);
                }
                seen.push(event);
            }
            Err(_) => panic!("no {what} within {EVENT_TIMEOUT:?}; saw {seen:?}"),
        }
    }
}

fn welcome_id(events: &Receiver<NetEvent>) -> i32 {
    wait_for(events, "Welcome", |e| match e {
        NetEvent::Server(ServerMessage::Welcome { id, .. }) => Some(*id),
        _ => None,
    })
    .0
}

fn next_rtt(events: &Receiver<NetEvent>) -> Duration {
    wait_for(events, "an RTT sample", |e| match e {
        NetEvent::Rtt(rtt) => Some(*rtt),
        _ => None,
    })
    .0
}

fn stop(link: NetworkLink) {
    let _ = link.commands.send(NetCommand::Shutdown);
    link.thread.join().expect("network thread ends cleanly");
}

#[test]
fn decodes_the_roster_and_positions_and_measures_rtt() {
    let server = EmbeddedServer::start_ephemeral().expect("server binds");
    let alice = connect(&server, "alice", LinkConditions::default());
    let alice_id = welcome_id(&alice.events);
    let bob = connect(&server, "bob", LinkConditions::default());
    let bob_id = welcome_id(&bob.events);
    assert_ne!(alice_id, bob_id);

    let (info, _) = wait_for(&alice.events, "bob joining", |e| match e {
        NetEvent::Server(ServerMessage::PlayerJoined(info)) if info.id == bob_id => {
            Some(info.clone())
        }
        _ => None,
    });
    assert_eq!(info.name, "bob");
    assert_eq!(info.kind, PlayerKind::Native);

    bob.commands
        .send(NetCommand::Send(ClientMessage::MyPosition(Position::new(
            12, -7,
        ))))
        .unwrap();
    let (position, _) = wait_for(&alice.events, "bob's position", |e| match e {
        NetEvent::Server(ServerMessage::Positions(batch)) => {
            batch.iter().find(|p| p.id == bob_id).map(|p| p.position)
        }
        _ => None,
    });
    assert_eq!(position, Position::new(12, -7));

    let rtt = next_rtt(&alice.events);
    eprintln!("loopback RTT without conditioner: {rtt:?}");
    assert!(rtt < Duration::from_millis(100), "{rtt:?}");

    stop(bob);
    wait_for(&alice.events, "bob leaving", |e| match e {
        NetEvent::Server(ServerMessage::PlayerLeft { id }) if *id == bob_id => Some(()),
        _ => None,
    });
    stop(alice);
    server.stop();
}

#[test]
fn the_link_conditioner_adds_twice_its_lag_to_the_round_trip() {
    let server = EmbeddedServer::start_ephemeral().expect("server binds");
    let started = Instant::now();
    let lagged = LinkConditions {
        lag: Duration::from_millis(100),
        ..LinkConditions::default()
    };
    let link = connect(&server, "laggy", lagged);
    welcome_id(&link.events);
    let handshake = started.elapsed();
    let rtt = next_rtt(&link.events);
    eprintln!("with --lag-ms 100: handshake {handshake:?}, RTT {rtt:?}");
    assert!(handshake >= Duration::from_millis(200), "{handshake:?}");
    assert!(
        rtt >= Duration::from_millis(200) && rtt < Duration::from_millis(300),
        "{rtt:?}"
    );

    // Changed at run time (the F2 panel): off, and the RTT drops back.
    link.commands
        .send(NetCommand::SetLinkConditions(LinkConditions::default()))
        .unwrap();
    // The ping in flight may still carry the old lag; the one after cannot.
    next_rtt(&link.events);
    let rtt = next_rtt(&link.events);
    eprintln!("after turning it off: RTT {rtt:?}");
    assert!(rtt < Duration::from_millis(100), "{rtt:?}");
    stop(link);
    server.stop();
}

/// Waits until `id` joins, as seen on `events`; returns the events before.
fn joined(events: &Receiver<NetEvent>, id: i32) -> Vec<NetEvent> {
    wait_for(events, "a player joining", |e| match e {
        NetEvent::Server(ServerMessage::PlayerJoined(info)) if info.id == id => Some(()),
        _ => None,
    })
    .1
}

fn position_updates(events: &[NetEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, NetEvent::Server(ServerMessage::Positions(_))))
        .count()
}

#[test]
fn full_loss_drops_every_position_update_but_nothing_else() {
    let server = EmbeddedServer::start_ephemeral().expect("server binds");
    let lossy = LinkConditions {
        loss: 1.0,
        ..LinkConditions::default()
    };
    let watcher = connect(&server, "lossy", lossy);
    welcome_id(&watcher.events);
    // The same stream without loss, to show the moves were there to drop.
    let control = connect(&server, "control", LinkConditions::default());
    welcome_id(&control.events);
    let mover = connect(&server, "mover", LinkConditions::default());
    let mover_id = welcome_id(&mover.events);
    joined(&watcher.events, mover_id);
    joined(&control.events, mover_id);
    for x in 1..=10 {
        mover
            .commands
            .send(NetCommand::Send(ClientMessage::MyPosition(Position::new(
                x, 0,
            ))))
            .unwrap();
    }
    wait_for(&control.events, "the last move", |e| match e {
        NetEvent::Server(ServerMessage::Positions(list))
            if list
                .iter()
                .any(|p| p.id == mover_id && p.position == Position::new(10, 0)) =>
        {
            Some(())
        }
        _ => None,
    });
    // The sentinel: a player who joins after the last move went out. Its
    // `PlayerJoined` follows every move on each stream, and is no position
    // update, so it must come through; nothing the moves sent may precede
    // it on the lossy link.
    let sentinel = connect(&server, "sentinel", LinkConditions::default());
    let sentinel_id = welcome_id(&sentinel.events);
    let before = joined(&watcher.events, sentinel_id);
    assert_eq!(
        position_updates(&before),
        0,
        "loss 1.0 let positions through: {before:?}"
    );
    // Pings are not position updates either: an RTT still arrives.
    next_rtt(&watcher.events);
    stop(sentinel);
    stop(mover);
    stop(control);
    stop(watcher);
    server.stop();
}

#[test]
fn reconnects_with_growing_backoff_until_the_server_appears() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let link = spawn_network_thread(
        format!("127.0.0.1:{port}"),
        "patient".into(),
        LinkConditions::default(),
    )
    .unwrap();
    let retry = |events: &Receiver<NetEvent>| {
        wait_for(events, "a failed attempt", |e| match e {
            NetEvent::Disconnected { retry_in, reason } => {
                assert!(reason.contains("cannot connect"), "{reason}");
                Some(*retry_in)
            }
            _ => None,
        })
        .0
    };
    let first = retry(&link.events);
    let second = retry(&link.events);
    assert_eq!(first, RECONNECT_BACKOFF_MIN);
    assert_eq!(second, RECONNECT_BACKOFF_MIN * 2, "backoff doubles");

    let server = EmbeddedServer::start(server::Config {
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        game_port: port,
        test_port: 0,
        math_port: 0,
        positions_port: 0,
        ..server::Config::default()
    })
    .expect("server binds the freed port");
    welcome_id(&link.events);
    stop(link);
    server.stop();
}

/// Moves `link`'s player to `at` and waits for its own echo (it has no view,
/// so it gets the whole broadcast), so the server has placed it there.
fn move_and_wait_for_echo(link: &NetworkLink, id: i32, at: Position) {
    link.commands
        .send(NetCommand::Send(ClientMessage::MyPosition(at)))
        .unwrap();
    wait_for(&link.events, "own echo", |e| match e {
        NetEvent::Server(ServerMessage::Positions(batch)) => batch
            .iter()
            .any(|p| p.id == id && p.position == at)
            .then_some(()),
        _ => None,
    });
}

/// Positions of `who` among `events`.
fn positions_of(events: &[NetEvent], who: i32) -> Vec<Position> {
    events
        .iter()
        .flat_map(|e| match e {
            NetEvent::Server(ServerMessage::Positions(batch)) => batch.clone(),
            _ => Vec::new(),
        })
        .filter(|p| p.id == who)
        .map(|p| p.position)
        .collect()
}

#[test]
fn a_small_view_hides_a_far_player_until_the_view_moves_there() {
    let server = EmbeddedServer::start_ephemeral().expect("server binds");
    let near = connect(&server, "near", LinkConditions::default());
    let near_id = welcome_id(&near.events);
    let far = connect(&server, "far", LinkConditions::default());
    let far_id = welcome_id(&far.events);
    move_and_wait_for_echo(&near, near_id, Position::new(10, 10));
    move_and_wait_for_echo(&far, far_id, Position::new(3000, 3000));

    // The viewer looks at the origin: the server answers with a snapshot of
    // that region only.
    let viewer = connect(&server, "viewer", LinkConditions::default());
    welcome_id(&viewer.events);
    let view = |x, y| {
        NetCommand::Send(ClientMessage::View {
            center: Position::new(x, y),
            half_extent: 150,
        })
    };
    viewer.commands.send(view(0, 0)).unwrap();
    let (players, _) = wait_for(&viewer.events, "the view's snapshot", |e| match e {
        NetEvent::Server(ServerMessage::Snapshot { players })
            if players.iter().all(|p| p.info.id != far_id) =>
        {
            Some(players.clone())
        }
        _ => None,
    });
    assert!(players.iter().any(|p| p.info.id == near_id), "{players:?}");

    // Both move; the viewer hears the near one and nothing of the far one.
    move_and_wait_for_echo(&far, far_id, Position::new(3001, 3000));
    move_and_wait_for_echo(&near, near_id, Position::new(11, 10));
    let (_, before) = wait_for(&viewer.events, "the near player's move", |e| match e {
        NetEvent::Server(ServerMessage::Positions(batch)) => batch
            .iter()
            .any(|p| p.id == near_id && p.position == Position::new(11, 10))
            .then_some(()),
        _ => None,
    });
    assert_eq!(positions_of(&before, far_id), Vec::new());

    // The view moves to the far player: it is seen, then its moves arrive.
    viewer.commands.send(view(3000, 3000)).unwrap();
    wait_for(
        &viewer.events,
        "the far player in the new view",
        |e| match e {
            NetEvent::Server(ServerMessage::Snapshot { players })
                if players.iter().any(|p| p.info.id == far_id) =>
            {
                Some(())
            }
            _ => None,
        },
    );
    move_and_wait_for_echo(&far, far_id, Position::new(3002, 3000));
    wait_for(&viewer.events, "the far player's move", |e| match e {
        NetEvent::Server(ServerMessage::Positions(batch)) => batch
            .iter()
            .any(|p| p.id == far_id && p.position == Position::new(3002, 3000))
            .then_some(()),
        _ => None,
    });
    for link in [viewer, near, far] {
        stop(link);
    }
    server.stop();
}

/// A legacy positions player standing at `at` over a raw socket (the
/// `<hh` of the Python client); returns the socket (the player stays while
/// it is open) and the id the server greeted it with.
fn legacy_player_at(server: &EmbeddedServer, at: Position) -> (std::net::TcpStream, i32) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addrs.positions).expect("connect");
    let mut id = [0u8; 4];
    stream.read_exact(&mut id).expect("id greeting");
    let mut packet = Vec::new();
    packet.extend_from_slice(&at.x.to_le_bytes());
    packet.extend_from_slice(&at.y.to_le_bytes());
    stream.write_all(&packet).expect("position");
    (stream, i32::from_le_bytes(id))
}

/// The game logic (no window) fed by a real network thread, as the
/// headless client runs it.
fn logic_app(link: &NetworkLink) -> bevy::app::App {
    use bevy::input::InputPlugin;
    use bevy::prelude::*;
    use bevy::state::app::StatesPlugin;
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, StatesPlugin, InputPlugin))
        .insert_resource(game_client::ClientSettings {
            name: "watcher".into(),
            control: game_client::ControlMode::Spectate,
            headless: true,
        })
        .insert_resource(game_client::net::NetEvents(link.events.clone()))
        .insert_resource(game_client::net::NetCommands(link.commands.clone()))
        .add_plugins(game_client::GameLogicPlugins);
    app
}

#[test]
fn a_client_with_a_view_counts_and_places_a_far_legacy_player() {
    use bevy::prelude::*;
    use game_client::logic::interpolation::InterpolationDelay;
    use game_client::logic::players::{Kind, LatestPosition, OutOfView, PlayerId, RemotePlayer};
    use game_client::logic::stats::{NetStats, status_line};
    use game_client::net::LocalPlayerId;

    let server = EmbeddedServer::start(server::Config {
        overview_interval_ms: 100,
        ..server::Config::ephemeral()
    })
    .expect("server binds");
    let (_far, far_id) = legacy_player_at(&server, Position::new(3000, 3000));
    let link = connect(&server, "watcher", LinkConditions::default());
    let mut app = logic_app(&link);
    let mut view_sent = false;
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let far_at = loop {
        app.update();
        let world = app.world_mut();
        if !view_sent && world.resource::<LocalPlayerId>().0.is_some() {
            // The view a window at the origin asks for (view::interest).
            link.commands
                .send(NetCommand::Send(ClientMessage::View {
                    center: Position::new(0, 0),
                    half_extent: 500,
                }))
                .unwrap();
            view_sent = true;
        }
        let online = world.resource::<NetStats>().players_online;
        let mut far = world.query_filtered::<(&PlayerId, &LatestPosition, &Kind, Has<OutOfView>), With<RemotePlayer>>();
        let placed = far.iter(world).find(|(id, ..)| id.0 == far_id).and_then(
            |(_, latest, kind, out_of_view)| Some((latest.position()?, kind.0, out_of_view)),
        );
        if online == 2
            && let Some(placed) = placed
        {
            break placed;
        }
        assert!(
            Instant::now() < deadline,
            "players online {online}, far player {placed:?} after {EVENT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        far_at.0,
        Vec2::new(3000.0, 3000.0),
        "placed by the overview"
    );
    assert_eq!(far_at.1, PlayerKind::Legacy, "drawn in the legacy orange");
    assert!(far_at.2, "out of the view: its chip shows an age");
    let line = status_line(
        app.world().resource::<NetStats>(),
        app.world().resource::<InterpolationDelay>(),
    );
    assert!(line.starts_with("status players=2 rtt_ms="), "{line}");
    stop(link);
    server.stop();
}
