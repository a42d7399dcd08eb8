//! The legacy "positions" service: a player of the shared world that sends
//! 4-byte positions and receives 8-byte records of everyone (itself
//! included), a snapshot first and leave markers when players go.

use bytes::BytesMut;
use shared::ClientId;
use shared::legacy::{Position, PositionCodec};
use shared::native::{PlayerInfo, PlayerKind};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use super::{Opened, READ_BUFFER_BYTES, open_legacy, read_more};
use crate::Shared;
use crate::connection::Disconnect;
use crate::registry::Service;
use crate::world::Encoding;

/// The name native clients see for a legacy player.
pub fn legacy_name(id: ClientId) -> String {
    format!("py-{id}")
}

pub async fn serve(stream: TcpStream, id: ClientId, shared: &Shared) -> Disconnect {
    let Opened {
        mut reader,
        mut writer,
        counters,
    } = match open_legacy(stream, id, Service::Positions, shared).await {
        Ok(opened) => opened,
        Err(reason) => return reason,
    };
    let info = PlayerInfo {
        id,
        name: legacy_name(id),
        kind: PlayerKind::Legacy,
    };
    let member = shared.world.join(info, Encoding::Legacy);
    let mut received = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut positions: Vec<Position> = Vec::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Disconnect::Shutdown,
            _ = member.changed() => {
                let outgoing = member.take_outgoing();
                if let Err(reason) = writer.send_chunks(outgoing.chunks, outgoing.messages).await {
                    return reason;
                }
            }
            result = read_more(&mut reader, &mut received, &counters) => {
                if let Err(reason) = result {
                    return reason;
                }
                // Every 4 bytes are a position, so this decoder cannot fail.
                while let Ok(Some(position)) = PositionCodec.decode(&mut received) {
                    positions.push(position);
                }
                counters.messages_in.inc_by(positions.len() as u64);
                member.set_positions(&positions);
                positions.clear();
            }
        }
    }
}
