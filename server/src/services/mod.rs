//! One module per service. Each `serve` function runs one connection to its
//! end and says why it ended; the listener logs and counts that.

pub mod game;
pub mod math;
pub mod positions;
pub mod test_packets;

use std::convert::Infallible;

use shared::ClientId;
use shared::legacy::IdGreeting;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::Decoder;

use crate::Shared;
use crate::config::LegacyWelcome;
use crate::connection::{Connection, Disconnect, Writer};
use crate::registry::Service;

pub use crate::connection::READ_BUFFER_BYTES;

/// A connection over a TCP socket.
pub type TcpConnection<D> = Connection<OwnedReadHalf, OwnedWriteHalf, D>;

/// A session runs until something ends it; it never "succeeds".
pub type Session = Result<Infallible, Disconnect>;

/// Why a session ended.
pub fn ended(session: Session) -> Disconnect {
    match session {
        Err(reason) => reason,
        Ok(never) => match never {},
    }
}

/// Wraps `stream` for `service`, reading messages with `decoder`.
pub fn open<D>(stream: TcpStream, service: Service, shared: &Shared, decoder: D) -> TcpConnection<D>
where
    D: Decoder,
    D::Error: std::fmt::Display,
{
    let counters = shared.metrics.connection(service);
    let (reader, writer) = stream.into_split();
    let writer = Writer::new(
        writer,
        shared.config.write_timeout(),
        shared.shutdown.clone(),
        counters.clone(),
    );
    Connection::new(reader, writer, decoder, counters)
}

/// Like [`open`], then sends the legacy id greeting every legacy service
/// starts with, unless `--legacy-welcome off` (the classic demos' scripts
/// expect no greeting). The id is used all the same, in the registry, the
/// logs and the metrics; the client is just not told.
pub async fn open_legacy<D>(
    stream: TcpStream,
    id: ClientId,
    service: Service,
    shared: &Shared,
    decoder: D,
) -> Result<TcpConnection<D>, Disconnect>
where
    D: Decoder,
    D::Error: std::fmt::Display,
{
    let mut connection = open(stream, service, shared, decoder);
    if shared.config.legacy_welcome == LegacyWelcome::On {
        connection
            .writer
            .send(&IdGreeting(id).to_bytes(), 1)
            .await?;
    }
    Ok(connection)
}
