//! The native game protocol: a versioned handshake, then a player of the
//! shared world that also asks math questions and keeps itself alive with
//! pings.

use std::time::Duration;

use bytes::BytesMut;
use shared::ClientId;
use shared::math::MathOutcome;
use shared::native::{
    ClientMessage, FrameCodec, MAX_NAME_LEN, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, PlayerInfo,
    PlayerKind, RejectReason, ServerMessage, frame, push_frame,
};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{TcpConnection, open};
use crate::Shared;
use crate::connection::Disconnect;
use crate::fanout::native::NATIVE_FRAMES;
use crate::registry::Service;
use crate::world::Membership;

/// How long a goodbye or rejection may take before the socket is closed anyway.
const LAST_MESSAGE_TIMEOUT: Duration = Duration::from_millis(500);

/// What the server calls itself in `Welcome`.
const SERVER_NAME: &str = concat!("gameserver ", env!("CARGO_PKG_VERSION"));

type NativeConnection = TcpConnection<FrameCodec<ClientMessage>>;

pub async fn serve(stream: TcpStream, id: ClientId, shared: &Shared) -> Disconnect {
    let codec = FrameCodec::<ClientMessage>::new(shared.config.max_frame_bytes);
    let mut connection = open(stream, Service::Game, shared, codec);
    let reason = session(&mut connection, id, shared).await;
    if reason.deserves_goodbye() {
        let goodbye = ServerMessage::Goodbye {
            reason: reason.to_string(),
        };
        connection
            .writer
            .send_last(&frame(&goodbye), LAST_MESSAGE_TIMEOUT)
            .await;
    }
    reason
}

/// The handshake, then the player's life in the world until something ends
/// it.
async fn session(connection: &mut NativeConnection, id: ClientId, shared: &Shared) -> Disconnect {
    let handshake_timeout = shared.config.handshake_timeout();
    let hello = tokio::select! {
        _ = shared.shutdown.cancelled() => return Disconnect::Shutdown,
        result = tokio::time::timeout(handshake_timeout, connection.read_frame()) => match result {
            Err(_) => return Disconnect::HandshakeTimeout(handshake_timeout),
            Ok(Err(reason)) => return reason,
            Ok(Ok(message)) => message,
        },
    };
    let protocol_version = match &hello {
        ClientMessage::Hello {
            protocol_version, ..
        } => *protocol_version,
        _ => 0,
    };
    let name = match check_hello(hello, id) {
        Ok(name) => name,
        Err(reason) => {
            let rejection = ServerMessage::Rejected {
                reason: reason.clone(),
                server_protocol_version: PROTOCOL_VERSION,
            };
            connection
                .writer
                .send_last(&frame(&rejection), LAST_MESSAGE_TIMEOUT)
                .await;
            return Disconnect::Rejected(reason);
        }
    };
    tracing::info!(client = id, %name, "native handshake done");
    let welcome = ServerMessage::Welcome {
        id,
        protocol_version: PROTOCOL_VERSION,
        server: SERVER_NAME.to_owned(),
    };
    // Joined before the welcome goes out, so a client that has its id is
    // already in the world: every change after that reaches it. The snapshot
    // is queued now and written after the welcome.
    let member = shared.world.join_speaking(
        PlayerInfo {
            id,
            name,
            kind: PlayerKind::Native,
        },
        &NATIVE_FRAMES,
        protocol_version,
    );
    if let Err(reason) = connection.writer.send(&frame(&welcome), 1).await {
        return reason;
    }
    // Messages that arrived together with the Hello.
    let mut replies = BytesMut::new();
    if let Err(reason) = answer_more(connection, &member, shared, &mut replies, 0).await {
        return reason;
    }

    let idle_timeout = shared.config.idle_timeout();
    let message_timeout = shared.config.message_timeout();
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + idle_timeout / 3, idle_timeout / 3);
    let mut ping_nonce: u64 = 0;
    loop {
        let partial_deadline = connection
            .partial_for()
            .map(|age| Instant::now() + message_timeout.saturating_sub(age));
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Disconnect::Shutdown,
            _ = member.changed() => {
                let outgoing = member.take_outgoing();
                if let Err(reason) = connection.writer.send_chunks(outgoing.chunks, outgoing.messages).await {
                    return reason;
                }
            }
            _ = keepalive.tick() => {
                // Idleness counts whole messages: bytes trickling into a
                // message that never completes do not keep a client alive.
                if connection.last_message().elapsed() >= idle_timeout {
                    return Disconnect::IdleTimeout(idle_timeout);
                }
                ping_nonce += 1;
                if let Err(reason) = connection.writer.send(&frame(&ServerMessage::Ping { nonce: ping_nonce }), 1).await {
                    return reason;
                }
            }
            _ = tokio::time::sleep_until(partial_deadline.unwrap_or_else(Instant::now)), if partial_deadline.is_some() => {
                return Disconnect::IncompleteMessage(message_timeout);
            }
            message = connection.read_frame() => {
                let answered = match message.and_then(|m| handle(m, &member, shared, &mut replies)) {
                    Ok(answered) => u64::from(answered),
                    Err(reason) => return reason,
                };
                if let Err(reason) = answer_more(connection, &member, shared, &mut replies, answered).await {
                    return reason;
                }
            }
        }
    }
}

/// Acts on every whole message already buffered and sends the replies
/// (`answered` of them were queued already).
async fn answer_more(
    connection: &mut NativeConnection,
    member: &Membership,
    shared: &Shared,
    replies: &mut BytesMut,
    mut answered: u64,
) -> Result<(), Disconnect> {
    while let Some(message) = connection.try_frame()? {
        answered += u64::from(handle(message, member, shared, replies)?);
    }
    if !replies.is_empty() {
        connection
            .writer
            .send_chunks(vec![replies.split().freeze()], answered)
            .await?;
    }
    Ok(())
}

/// Accepts a `Hello` of our version; returns the player's name.
fn check_hello(message: ClientMessage, id: ClientId) -> Result<String, RejectReason> {
    let ClientMessage::Hello {
        protocol_version,
        name,
    } = message
    else {
        return Err(RejectReason::ExpectedHello);
    };
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&protocol_version) {
        return Err(RejectReason::UnsupportedVersion {
            client: protocol_version,
            server: PROTOCOL_VERSION,
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(RejectReason::NameTooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned();
    Ok(if name.is_empty() {
        format!("player-{id}")
    } else {
        name
    })
}

/// Acts on one message after the handshake; `Ok(true)` if a reply was queued.
fn handle(
    message: ClientMessage,
    member: &Membership,
    shared: &Shared,
    replies: &mut BytesMut,
) -> Result<bool, Disconnect> {
    let reply = match message {
        ClientMessage::MyPosition(position) => {
            member.set_positions(&[position]);
            return Ok(false);
        }
        ClientMessage::MathQuery {
            request_id,
            op,
            a,
            b,
        } => {
            let MathOutcome { status, value } = op.evaluate(a, b);
            shared.metrics.math_request(status.label(), 1);
            ServerMessage::MathAnswer {
                request_id,
                status,
                value,
            }
        }
        ClientMessage::Ping { nonce } => ServerMessage::Pong { nonce },
        ClientMessage::Pong { .. } => return Ok(false),
        ClientMessage::View {
            center,
            half_extent,
        } => {
            member.set_view(center, half_extent);
            return Ok(false);
        }
        ClientMessage::Bye => return Err(Disconnect::ClientBye),
        ClientMessage::Hello { .. } => {
            return Err(Disconnect::ProtocolViolation("second Hello".to_owned()));
        }
    };
    push_frame(&reply, replies);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_checks() {
        let hello = |v: u32, name: &str| ClientMessage::Hello {
            protocol_version: v,
            name: name.to_owned(),
        };
        assert_eq!(
            check_hello(hello(PROTOCOL_VERSION, " ann "), 3),
            Ok("ann".to_owned())
        );
        assert_eq!(
            check_hello(hello(PROTOCOL_VERSION, ""), 3),
            Ok("player-3".to_owned())
        );
        assert_eq!(
            check_hello(hello(99, "x"), 3),
            Err(RejectReason::UnsupportedVersion {
                client: 99,
                server: PROTOCOL_VERSION
            })
        );
        assert!(matches!(
            check_hello(hello(PROTOCOL_VERSION, &"n".repeat(33)), 3),
            Err(RejectReason::NameTooLong { .. })
        ));
        assert_eq!(
            check_hello(ClientMessage::Bye, 3),
            Err(RejectReason::ExpectedHello)
        );
    }
}
