//! The legacy "positions" service: a player of the shared world that sends
//! 4-byte positions and receives 8-byte records of everyone (itself
//! included), a snapshot first and leave markers when players go. With
//! `--positions-records hh` it receives the classic 4-byte packets instead
//! ([`crate::fanout::classic`]).

use std::future::Future;
use std::sync::Arc;

use shared::ClientId;
use shared::legacy::PositionCodec;
use shared::native::{PlayerInfo, PlayerKind};
use tokio::net::TcpStream;

use super::{Session, TcpConnection, ended, open_legacy};
use crate::Shared;
use crate::config::PositionsRecords;
use crate::connection::Disconnect;
use crate::fanout::WireFormat;
use crate::fanout::classic::CLASSIC_PACKETS;
use crate::fanout::legacy::LEGACY_RECORDS;
use crate::lane::Ticket;
use crate::registry::Service;
use crate::world::Membership;

/// The name native clients see for a legacy player.
pub fn legacy_name(id: ClientId) -> String {
    format!("py-{id}")
}

/// The wire format positions clients receive, as `--positions-records` says.
pub fn records_format(records: PositionsRecords) -> &'static dyn WireFormat {
    match records {
        PositionsRecords::Ihh => &LEGACY_RECORDS,
        PositionsRecords::Hh => &CLASSIC_PACKETS,
    }
}

pub async fn serve(
    stream: TcpStream,
    id: ClientId,
    shared: &Arc<Shared>,
    lane: Option<Ticket>,
) -> Disconnect {
    ended(session(stream, id, shared, lane).await)
}

async fn session(
    stream: TcpStream,
    id: ClientId,
    shared: &Arc<Shared>,
    lane: Option<Ticket>,
) -> Session {
    let info = PlayerInfo {
        id,
        name: legacy_name(id),
        kind: PlayerKind::Legacy,
    };
    // Joined before the greeting goes out, so a client that has its id is
    // already in the world: every leave after that reaches it. The snapshot
    // is queued now and written after the greeting.
    let member = shared
        .world
        .join(info, records_format(shared.config.positions_records));
    let mut connection = open_legacy(stream, id, Service::Positions, shared, PositionCodec).await?;
    let Some(ticket) = lane else {
        return play(&mut connection, &member, shared, std::future::pending()).await;
    };
    play(&mut connection, &member, shared, ticket.closing()).await?;
    // The lane closed (the world grew): go on on the worker threads.
    let shared = Arc::clone(shared);
    ticket
        .move_to_workers(connection, move |mut connection| async move {
            play(&mut connection, &member, &shared, std::future::pending()).await
        })
        .await
}

/// Relays positions into the world and the world to the client until the
/// connection ends, or until `until` resolves (the lane closing).
async fn play<T>(
    connection: &mut TcpConnection<PositionCodec>,
    member: &Membership,
    shared: &Shared,
    until: impl Future<Output = T>,
) -> Result<T, Disconnect> {
    tokio::pin!(until);
    let mut positions = Vec::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Err(Disconnect::Shutdown),
            done = &mut until => return Ok(done),
            _ = member.changed() => {
                let outgoing = member.take_outgoing();
                connection.writer.send_chunks(outgoing.chunks, outgoing.messages).await?;
            }
            position = connection.read_frame() => {
                // Every position of one read goes into the world at once, so
                // a burst is broadcast whole.
                positions.push(position?);
                while let Some(position) = connection.try_frame()? {
                    positions.push(position);
                }
                member.set_positions(&positions);
                positions.clear();
            }
        }
    }
}
