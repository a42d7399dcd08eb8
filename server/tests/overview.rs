//! The roster and the overview (protocol version 3) over real sockets: a
//! native client with an area of interest still hears of every player,
//! wherever it is; a version-2 client is sent none of the new messages.

mod common;

use std::time::Duration;

use common::*;
use futures::SinkExt;
use shared::ClientId;
use shared::legacy::Position;
use shared::native::*;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A short overview period, so the tests do not wait a second for each.
const OVERVIEW_MS: u64 = 50;
const HALF_EXTENT: u16 = 100;
const NEAR: Position = Position { x: 10, y: 10 };
const FAR: Position = Position { x: 3000, y: 3000 };

async fn server(max_players: usize) -> TestServer {
    TestServer::with(|config| {
        config.overview_interval_ms = OVERVIEW_MS;
        config.overview_max_players = max_players;
    })
    .await
}

/// A native client of `version` with a view around the origin; returns it
/// with the messages up to the snapshot of its region.
async fn viewer(addr: std::net::SocketAddr, version: u32) -> (NativeClient, Vec<ServerMessage>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut framed = Framed::new(stream, FrameCodec::<ServerMessage>::default());
    framed
        .send(ClientMessage::Hello {
            protocol_version: version,
            name: format!("v{version}"),
        })
        .await
        .expect("hello");
    // The view goes with the Hello: the first snapshot is the region's.
    framed
        .send(ClientMessage::View {
            center: Position::new(0, 0),
            half_extent: HALF_EXTENT,
        })
        .await
        .expect("view");
    let mut client = NativeClient { framed, id: 0 };
    let mut seen = Vec::new();
    loop {
        let message = client.next().await;
        if let ServerMessage::Welcome { id, .. } = message {
            client.id = id;
        }
        let done = matches!(message, ServerMessage::Snapshot { .. });
        seen.push(message);
        if done {
            return (client, seen);
        }
    }
}

/// A legacy positions player standing at `at`; returns its socket (it
/// stays in the world while open) and its id.
async fn legacy_player_at(addr: std::net::SocketAddr, at: Position) -> (TcpStream, ClientId) {
    let (mut stream, id) = connect_legacy(addr).await;
    send_position(&mut stream, at.x, at.y).await;
    (stream, id)
}

fn listed(overview: &Overview, who: ClientId) -> Option<Position> {
    match overview {
        Overview::Players(players) => players.iter().find(|p| p.id == who).map(|p| p.position),
        Overview::Density(_) => None,
    }
}

#[tokio::test]
async fn a_view_hears_of_a_far_legacy_player_through_the_roster_and_the_overview() {
    let server = server(1000).await;
    let (mut watcher, first) = viewer(server.addrs.game, PROTOCOL_VERSION).await;
    assert!(
        matches!(&first[1..], [ServerMessage::Roster(all), ServerMessage::Snapshot { .. }] if all.iter().any(|p| p.id == watcher.id)),
        "the whole roster, then the region: {first:?}"
    );
    let (_far, far_id) = legacy_player_at(server.addrs.positions, FAR).await;
    let mut before = Vec::new();
    let joined = loop {
        let message = watcher.next().await;
        if let ServerMessage::RosterJoined(info) = &message
            && info.id == far_id
        {
            break info.clone();
        }
        before.push(message);
    };
    assert_eq!(joined.kind, PlayerKind::Legacy);
    // Then an overview places it, far out of the view.
    loop {
        let message = watcher.next().await;
        assert!(
            !matches!(&message, ServerMessage::PlayerJoined(info) if info.id == far_id),
            "a far player never enters the view"
        );
        if let ServerMessage::Overview(overview) = &message
            && listed(overview, far_id) == Some(FAR)
        {
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn the_whole_roster_counts_every_player_and_a_leave_far_away_is_heard() {
    let server = server(1000).await;
    let near = {
        let mut client = NativeClient::join(server.addrs.game, "near").await;
        client.send(ClientMessage::MyPosition(NEAR)).await;
        client
    };
    let (_far, far_id) = legacy_player_at(server.addrs.positions, FAR).await;
    // Wait until the world has the far player's position.
    eventually("the far player placed", || {
        server.shared.world.position_of(far_id) == Some(FAR)
    })
    .await;
    let (mut watcher, first) = viewer(server.addrs.game, PROTOCOL_VERSION).await;
    let roster = first
        .iter()
        .find_map(|m| match m {
            ServerMessage::Roster(all) => Some(all.clone()),
            _ => None,
        })
        .expect("a roster");
    let mut ids: Vec<ClientId> = roster.iter().map(|p| p.id).collect();
    ids.sort_unstable();
    let mut want = vec![near.id, far_id, watcher.id];
    want.sort_unstable();
    assert_eq!(ids, want, "everyone, the far player included");
    drop(_far);
    watcher
        .until(|m| matches!(m, ServerMessage::RosterLeft { id } if *id == far_id).then_some(()))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn past_the_limit_the_overview_is_a_density_grid() {
    let server = server(1).await;
    let (mut watcher, _) = viewer(server.addrs.game, PROTOCOL_VERSION).await;
    let (_far, _) = legacy_player_at(server.addrs.positions, FAR).await;
    let (_near, _) = legacy_player_at(server.addrs.positions, NEAR).await;
    let grid = watcher
        .until(|m| match m {
            ServerMessage::Overview(Overview::Density(grid))
                if grid.counts.iter().sum::<u32>() == 2 =>
            {
                Some(grid.clone())
            }
            _ => None,
        })
        .await;
    let cell = i32::from(grid.cell_size);
    let at = |p: Position| {
        let column = (i32::from(p.x) - i32::from(grid.origin.x)) / cell;
        let row = (i32::from(p.y) - i32::from(grid.origin.y)) / cell;
        grid.count(column as usize, row as usize)
    };
    assert_eq!(at(FAR), Some(1));
    assert_eq!(at(NEAR), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn a_version_2_view_is_sent_no_roster_and_no_overview() {
    let server = server(1000).await;
    let (mut old, first) = viewer(server.addrs.game, 2).await;
    let (_far, _) = legacy_player_at(server.addrs.positions, FAR).await;
    // Several overview periods go by...
    tokio::time::sleep(Duration::from_millis(OVERVIEW_MS * 6)).await;
    // ... then a player walks into the view: what came before it is all
    // the version-2 client was sent.
    let (_near, near_id) = legacy_player_at(server.addrs.positions, NEAR).await;
    let mut seen = first;
    loop {
        let message = old.next().await;
        let done = matches!(&message, ServerMessage::Positions(moves) if moves.iter().any(|m| m.id == near_id));
        seen.push(message);
        if done {
            break;
        }
    }
    let new = seen.iter().find(|m| {
        matches!(
            m,
            ServerMessage::Roster(_)
                | ServerMessage::RosterJoined(_)
                | ServerMessage::RosterLeft { .. }
                | ServerMessage::Overview(_)
        )
    });
    assert!(new.is_none(), "a version-2 client got {new:?}");
    server.stop().await;
}
