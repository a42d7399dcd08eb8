//! What every connection handler shares: why a connection ended, and writing
//! with a deadline that also gives way to shutdown.

use std::io::IoSlice;
use std::time::Duration;

use bytes::{Buf, Bytes};
use shared::native::RejectReason;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;

use crate::metrics::ConnectionCounters;

/// Why a connection ended; logged with the client id and counted by label.
#[derive(Debug, thiserror::Error)]
pub enum Disconnect {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("client said goodbye")]
    ClientBye,
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    #[error("probe {seq} not echoed in time")]
    ProbeTimeout { seq: i32 },
    #[error("socket unwritable for {0:?} (slow consumer)")]
    WriteTimeout(Duration),
    #[error("no message for {0:?}")]
    IdleTimeout(Duration),
    #[error("no Hello within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("handshake rejected: {0}")]
    Rejected(RejectReason),
    #[error("server shutting down")]
    Shutdown,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Disconnect {
    /// A short, fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Disconnect::ClientClosed | Disconnect::ClientBye => "client_closed",
            Disconnect::ProtocolViolation(_) => "protocol_violation",
            Disconnect::ProbeTimeout { .. } => "probe_timeout",
            Disconnect::WriteTimeout(_) => "write_timeout",
            Disconnect::IdleTimeout(_) => "idle_timeout",
            Disconnect::HandshakeTimeout(_) => "handshake_timeout",
            Disconnect::Rejected(_) => "rejected",
            Disconnect::Shutdown => "shutdown",
            Disconnect::Io(_) => "io_error",
        }
    }

    /// Whether the client should be told why with a native `Goodbye`: not
    /// when it left by itself or its socket is unusable.
    pub fn deserves_goodbye(&self) -> bool {
        matches!(
            self,
            Disconnect::Shutdown | Disconnect::IdleTimeout(_) | Disconnect::ProtocolViolation(_)
        )
    }

    /// Whether the connection ended in a routine way: the client left, even
    /// abruptly (a reset, an aborted or half-closed socket is what a killed
    /// or crashed client looks like), or the server is shutting down.
    pub fn is_normal(&self) -> bool {
        match self {
            Disconnect::ClientClosed | Disconnect::ClientBye | Disconnect::Shutdown => true,
            Disconnect::Io(err) => matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// The write side of a connection: every write has a deadline (a socket that
/// stays unwritable that long means a slow consumer) and yields to shutdown.
#[derive(Debug)]
pub struct Writer {
    half: OwnedWriteHalf,
    timeout: Duration,
    shutdown: CancellationToken,
    counters: ConnectionCounters,
    /// Set when a write stopped in the middle of a message.
    broken: bool,
}

/// How long a message already half written may take to finish once the
/// server is shutting down.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

/// Most buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;

impl Writer {
    pub fn new(
        half: OwnedWriteHalf,
        timeout: Duration,
        shutdown: CancellationToken,
        counters: ConnectionCounters,
    ) -> Self {
        Writer {
            half,
            timeout,
            shutdown,
            counters,
            broken: false,
        }
    }

    /// Writes `bytes` whole, counting `messages` sent.
    pub async fn send(&mut self, bytes: &[u8], messages: u64) -> Result<(), Disconnect> {
        self.send_chunks(vec![Bytes::copy_from_slice(bytes)], messages)
            .await
    }

    /// Writes every chunk in order with vectored writes (no copying of shared
    /// broadcast batches). The deadline restarts whenever the socket takes
    /// some bytes, so only a socket that stays unwritable times out.
    pub async fn send_chunks(
        &mut self,
        mut chunks: Vec<Bytes>,
        messages: u64,
    ) -> Result<(), Disconnect> {
        chunks.retain(|c| !c.is_empty());
        let total: usize = chunks.iter().map(Bytes::len).sum();
        let mut first = 0;
        let mut progress = 0;
        while first < chunks.len() {
            let slices: Vec<IoSlice<'_>> = chunks[first..]
                .iter()
                .take(MAX_IOVECS)
                .map(|c| IoSlice::new(c))
                .collect();
            let write = tokio::time::timeout(self.timeout, self.half.write_vectored(&slices));
            tokio::pin!(write);
            let result = tokio::select! {
                biased;
                result = &mut write => result,
                _ = self.shutdown.cancelled() => {
                    if progress == 0 {
                        return Err(Disconnect::Shutdown);
                    }
                    // Half a message is out: finish it briefly so a goodbye
                    // can follow on a clean message boundary.
                    match tokio::time::timeout(SHUTDOWN_GRACE, &mut write).await {
                        Ok(result) => result,
                        Err(_) => {
                            self.broken = true;
                            return Err(Disconnect::Shutdown);
                        }
                    }
                }
            };
            let mut written = match result {
                Ok(Ok(n)) if n > 0 => n,
                Err(_) => {
                    self.broken = progress > 0;
                    return Err(Disconnect::WriteTimeout(self.timeout));
                }
                Ok(Err(err)) => {
                    self.broken = true;
                    return Err(Disconnect::Io(err));
                }
                Ok(Ok(_)) => {
                    self.broken = true;
                    return Err(Disconnect::Io(std::io::ErrorKind::WriteZero.into()));
                }
            };
            drop(slices);
            progress += written;
            while written > 0 {
                let chunk = &mut chunks[first];
                if written < chunk.len() {
                    chunk.advance(written);
                    break;
                }
                written -= chunk.len();
                first += 1;
            }
        }
        self.counters.bytes_out.inc_by(total as u64);
        self.counters.messages_out.inc_by(messages);
        Ok(())
    }

    /// Writes a last message (a goodbye or an error reply) without waiting on
    /// shutdown, bounded by `limit`, then closes the write side. Failures
    /// are ignored: the connection is ending anyway.
    pub async fn send_last(&mut self, bytes: &[u8], limit: Duration) {
        if self.broken {
            return; // mid-message: more bytes would be garbage to the client
        }
        let _ = tokio::time::timeout(limit, async {
            self.half.write_all(bytes).await?;
            self.half.shutdown().await
        })
        .await;
        self.counters.bytes_out.inc_by(bytes.len() as u64);
        self.counters.messages_out.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn resets_and_closes_are_routine_other_errors_are_not() {
        for kind in [
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionAborted,
            ErrorKind::BrokenPipe,
            ErrorKind::UnexpectedEof,
        ] {
            assert!(Disconnect::Io(Error::from(kind)).is_normal(), "{kind:?}");
        }
        assert!(!Disconnect::Io(Error::from(ErrorKind::OutOfMemory)).is_normal());
        assert!(!Disconnect::ProtocolViolation("x".into()).is_normal());
        assert!(!Disconnect::WriteTimeout(Duration::from_secs(1)).is_normal());
    }
}
