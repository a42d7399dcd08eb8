//! What every connection handler shares, in the style of mini-redis's
//! `Connection`: reading whole messages with a decoder from `shared`, writing
//! with a deadline that also gives way to shutdown, and why a connection
//! ended.

use std::io::IoSlice;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use shared::native::RejectReason;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
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
    #[error("a started message not completed within {0:?}")]
    IncompleteMessage(Duration),
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
            Disconnect::IncompleteMessage(_) => "incomplete_message",
            Disconnect::HandshakeTimeout(_) => "handshake_timeout",
            Disconnect::Rejected(_) => "rejected",
            Disconnect::Shutdown => "shutdown",
            Disconnect::Io(err) if Disconnect::is_reset(err) => "client_reset",
            Disconnect::Io(_) => "io_error",
        }
    }

    /// Whether the client should be told why with a native `Goodbye`: not
    /// when it left by itself or its socket is unusable.
    pub fn deserves_goodbye(&self) -> bool {
        matches!(
            self,
            Disconnect::Shutdown
                | Disconnect::IdleTimeout(_)
                | Disconnect::IncompleteMessage(_)
                | Disconnect::ProtocolViolation(_)
        )
    }

    fn is_reset(err: &std::io::Error) -> bool {
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
        )
    }

    /// Whether this is routine: the client left (closed, said goodbye, or
    /// reset the connection, which is how many clients and networks close),
    /// or the server is shutting down. Routine ends are logged at `info`;
    /// the rest are warnings.
    pub fn is_normal(&self) -> bool {
        match self {
            Disconnect::ClientClosed | Disconnect::ClientBye | Disconnect::Shutdown => true,
            Disconnect::Io(err) => Disconnect::is_reset(err),
            _ => false,
        }
    }
}

/// The write side of a connection: every write has a deadline (a socket that
/// stays unwritable that long means a slow consumer) and yields to shutdown.
#[derive(Debug)]
pub struct Writer<W> {
    half: W,
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

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(
        half: W,
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

/// A [`Connection`] without its socket: what it has read and not yet
/// decoded, its counters, deadlines and state; see
/// [`Connection::unplug`]. Used to move a connection to another runtime
/// (the lane's players when it closes, [`crate::lane`]).
#[derive(Debug)]
pub struct Unplugged<D> {
    decoder: D,
    buffer: BytesMut,
    counters: ConnectionCounters,
    last_message: Instant,
    partial_since: Option<Instant>,
    timeout: Duration,
    shutdown: CancellationToken,
    broken: bool,
}

impl<D> Unplugged<D> {
    /// The connection again, over `reader` and `writer`.
    pub fn plug<R, W>(self, reader: R, writer: W) -> Connection<R, W, D> {
        Connection {
            reader,
            writer: Writer {
                half: writer,
                timeout: self.timeout,
                shutdown: self.shutdown,
                counters: self.counters.clone(),
                broken: self.broken,
            },
            decoder: self.decoder,
            buffer: self.buffer,
            counters: self.counters,
            last_message: self.last_message,
            partial_since: self.partial_since,
        }
    }
}

/// Read buffer size of every connection: big enough to take many pipelined
/// messages in one read, small enough for 10,000 idle clients.
pub const READ_BUFFER_BYTES: usize = 4096;

/// Reads whole messages of one decoder from any byte stream, and writes
/// through a [`Writer`]. It remembers when the last whole message arrived and
/// when the message now in the buffer started, so that idleness is counted
/// in messages, not bytes: a client trickling one byte at a time into a
/// message it never finishes is still idle.
#[derive(Debug)]
pub struct Connection<R, W, D> {
    reader: R,
    pub writer: Writer<W>,
    decoder: D,
    buffer: BytesMut,
    counters: ConnectionCounters,
    last_message: Instant,
    /// When the first byte of a message still incomplete arrived.
    partial_since: Option<Instant>,
}

impl<R, W, D> Connection<R, W, D>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    D: Decoder,
    D::Error: std::fmt::Display,
{
    pub fn new(reader: R, writer: Writer<W>, decoder: D, counters: ConnectionCounters) -> Self {
        Connection {
            reader,
            writer,
            decoder,
            buffer: BytesMut::with_capacity(READ_BUFFER_BYTES),
            counters,
            last_message: Instant::now(),
            partial_since: None,
        }
    }

    /// The next whole message, reading as needed. Cancel-safe: bytes read
    /// so far stay in the buffer, so it can sit in a `select!`.
    pub async fn read_frame(&mut self) -> Result<D::Item, Disconnect> {
        loop {
            if let Some(message) = self.try_frame()? {
                return Ok(message);
            }
            self.read_more().await?;
        }
    }

    /// A whole message already buffered, without reading.
    pub fn try_frame(&mut self) -> Result<Option<D::Item>, Disconnect> {
        match self.decoder.decode(&mut self.buffer) {
            Ok(Some(message)) => {
                self.counters.messages_in.inc();
                self.last_message = Instant::now();
                self.partial_since = (!self.buffer.is_empty()).then(Instant::now);
                Ok(Some(message))
            }
            Ok(None) => {
                if self.buffer.is_empty() {
                    self.partial_since = None;
                } else if self.partial_since.is_none() {
                    self.partial_since = Some(Instant::now());
                }
                Ok(None)
            }
            Err(err) => Err(Disconnect::ProtocolViolation(err.to_string())),
        }
    }

    /// Reads whatever the peer sent next, at least one byte.
    async fn read_more(&mut self) -> Result<(), Disconnect> {
        if self.buffer.capacity() - self.buffer.len() < READ_BUFFER_BYTES / 4 {
            self.buffer.reserve(READ_BUFFER_BYTES);
        }
        match self.reader.read_buf(&mut self.buffer).await {
            Ok(0) => Err(Disconnect::ClientClosed),
            Ok(n) => {
                self.counters.bytes_in.inc_by(n as u64);
                Ok(())
            }
            Err(err) => Err(Disconnect::Io(err)),
        }
    }

    /// When the last whole message arrived (or the connection opened).
    pub fn last_message(&self) -> Instant {
        self.last_message
    }

    /// How long the message now in the buffer has been incomplete.
    pub fn partial_for(&self) -> Option<Duration> {
        self.partial_since.map(|since| since.elapsed())
    }

    /// Takes the socket's halves out; the rest waits in [`Unplugged`],
    /// with every byte read and not yet decoded.
    pub fn unplug(self) -> (R, W, Unplugged<D>) {
        let Connection {
            reader,
            writer,
            decoder,
            buffer,
            counters,
            last_message,
            partial_since,
        } = self;
        let Writer {
            half,
            timeout,
            shutdown,
            broken,
            ..
        } = writer;
        let rest = Unplugged {
            decoder,
            buffer,
            counters,
            last_message,
            partial_since,
            timeout,
            shutdown,
            broken,
        };
        (reader, half, rest)
    }

    /// The decoder, e.g. to tell it what to expect next.
    pub fn decoder_mut(&mut self) -> &mut D {
        &mut self.decoder
    }
}
