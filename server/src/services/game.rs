//! The native game protocol: a versioned handshake, then a player of the
//! shared world that also asks math questions and keeps itself alive with
//! pings.

use std::time::Duration;

use bytes::BytesMut;
use shared::ClientId;
use shared::math::MathOutcome;
use shared::native::{
    ClientMessage, FrameCodec, MAX_NAME_LEN, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, PlayerInfo, PlayerKind,
    RejectReason, ServerMessage, encode_frame,
};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::{Opened, READ_BUFFER_BYTES, open, read_more};
use crate::Shared;
use crate::connection::Disconnect;
use crate::metrics::ConnectionCounters;
use crate::registry::Service;
use crate::world::Encoding;

/// How long a goodbye or rejection may take before the socket is closed anyway.
const LAST_MESSAGE_TIMEOUT: Duration = Duration::from_millis(500);

/// What the server calls itself in `Welcome`.
const SERVER_NAME: &str = concat!("gameserver ", env!("CARGO_PKG_VERSION"));

fn frame(message: &ServerMessage) -> BytesMut {
    let mut out = BytesMut::new();
    // Encoding our own message types into memory cannot fail.
    let _ = encode_frame(message, &mut out);
    out
}

pub async fn serve(stream: TcpStream, id: ClientId, shared: &Shared) -> Disconnect {
    let Opened {
        mut reader,
        mut writer,
        counters,
    } = open(stream, Service::Game, shared);
    let mut codec = FrameCodec::<ClientMessage>::new(shared.config.max_frame_bytes);
    let mut received = BytesMut::with_capacity(READ_BUFFER_BYTES);

    let hello = tokio::select! {
        _ = shared.shutdown.cancelled() => return Disconnect::Shutdown,
        result = tokio::time::timeout(
            shared.config.handshake_timeout(),
            next_message(&mut reader, &mut received, &mut codec, &counters),
        ) => match result {
            Err(_) => return Disconnect::HandshakeTimeout(shared.config.handshake_timeout()),
            Ok(Err(reason)) => return reason,
            Ok(Ok(message)) => message,
        },
    };
    let name = match check_hello(hello, id) {
        Ok(name) => name,
        Err(reason) => {
            let rejection = ServerMessage::Rejected {
                reason: reason.clone(),
                server_protocol_version: PROTOCOL_VERSION,
            };
            writer
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
    if let Err(reason) = writer.send(&frame(&welcome), 1).await {
        return reason;
    }
    let member = shared.world.join(
        PlayerInfo {
            id,
            name,
            kind: PlayerKind::Native,
        },
        Encoding::Native,
    );
    // Messages that arrived together with the Hello.
    let mut replies = BytesMut::new();
    let early = match process_received(
        &mut received,
        &mut codec,
        &member,
        shared,
        &counters,
        &mut replies,
    ) {
        Err(reason) => Some(reason),
        Ok(_) if replies.is_empty() => None,
        Ok(answered) => writer
            .send_chunks(vec![replies.split().freeze()], answered)
            .await
            .err(),
    };

    let idle_timeout = shared.config.idle_timeout();
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + idle_timeout / 3, idle_timeout / 3);
    let mut last_heard = Instant::now();
    let mut ping_nonce: u64 = 0;

    let reason = if let Some(reason) = early {
        reason
    } else {
        loop {
            tokio::select! {
                _ = shared.shutdown.cancelled() => break Disconnect::Shutdown,
                _ = member.changed() => {
                    let outgoing = member.take_outgoing();
                    if let Err(reason) = writer.send_chunks(outgoing.chunks, outgoing.messages).await {
                        break reason;
                    }
                }
                _ = keepalive.tick() => {
                    if last_heard.elapsed() >= idle_timeout {
                        break Disconnect::IdleTimeout(idle_timeout);
                    }
                    ping_nonce += 1;
                    if let Err(reason) = writer.send(&frame(&ServerMessage::Ping { nonce: ping_nonce }), 1).await {
                        break reason;
                    }
                }
                result = read_more(&mut reader, &mut received, &counters) => {
                    if let Err(reason) = result {
                        break reason;
                    }
                    last_heard = Instant::now();
                    let answered = match process_received(&mut received, &mut codec, &member, shared, &counters, &mut replies) {
                        Ok(answered) => answered,
                        Err(reason) => break reason,
                    };
                    if !replies.is_empty()
                        && let Err(reason) = writer.send_chunks(vec![replies.split().freeze()], answered).await
                    {
                        break reason;
                    }
                }
            }
        }
    };
    if reason.deserves_goodbye() {
        let goodbye = ServerMessage::Goodbye {
            reason: reason.to_string(),
        };
        writer
            .send_last(&frame(&goodbye), LAST_MESSAGE_TIMEOUT)
            .await;
    }
    reason
}

/// Acts on every complete message in `received`; returns how many replies
/// were queued in `replies`.
fn process_received(
    received: &mut BytesMut,
    codec: &mut FrameCodec<ClientMessage>,
    member: &crate::world::Membership,
    shared: &Shared,
    counters: &ConnectionCounters,
    replies: &mut BytesMut,
) -> Result<u64, Disconnect> {
    let mut answered = 0;
    loop {
        match codec.decode(received) {
            Ok(Some(message)) => {
                counters.messages_in.inc();
                if handle(message, member, shared, replies)? {
                    answered += 1;
                }
            }
            Ok(None) => return Ok(answered),
            Err(err) => return Err(Disconnect::ProtocolViolation(err.to_string())),
        }
    }
}

/// Reads until one whole message is in (used for the handshake).
async fn next_message(
    reader: &mut OwnedReadHalf,
    received: &mut BytesMut,
    codec: &mut FrameCodec<ClientMessage>,
    counters: &ConnectionCounters,
) -> Result<ClientMessage, Disconnect> {
    loop {
        match codec.decode(received) {
            Ok(Some(message)) => {
                counters.messages_in.inc();
                return Ok(message);
            }
            Ok(None) => read_more(reader, received, counters).await?,
            Err(err) => return Err(Disconnect::ProtocolViolation(err.to_string())),
        }
    }
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
    member: &crate::world::Membership,
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
        // Area of interest is not filtered yet: the full broadcast is a
        // superset of any view.
        ClientMessage::View { .. } => return Ok(false),
        ClientMessage::Bye => return Err(Disconnect::ClientBye),
        ClientMessage::Hello { .. } => {
            return Err(Disconnect::ProtocolViolation("second Hello".to_owned()));
        }
    };
    let _ = encode_frame(&reply, replies);
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
