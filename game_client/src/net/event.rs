//! What the network thread tells the ECS (its own module, so that the
//! thread and its [`Outbox`](super::outbox::Outbox) both name it without
//! naming each other).

use std::time::Duration;

use shared::native::ServerMessage;

/// What the network thread tells the ECS: the server's messages as decoded
/// (the protocol's own enum, no copy of it) plus what only the connection knows.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// A connection attempt to `target` starts.
    Connecting { target: String },
    /// A message from the server. `Ping` and `Pong` are answered and measured
    /// on the thread and never arrive here; `Rejected` and `Goodbye` end the
    /// connection and arrive as [`NetEvent::Disconnected`].
    Server(ServerMessage),
    /// One round-trip time sample (our `Ping` → the server's `Pong`), link
    /// conditioner included, as a player would feel it.
    Rtt(Duration),
    /// Bytes received from the server since the previous report (frames incl. headers).
    Traffic { bytes: u64 },
    /// The connection is gone (or never came up); the next attempt is in `retry_in`.
    Disconnected { reason: String, retry_in: Duration },
}
