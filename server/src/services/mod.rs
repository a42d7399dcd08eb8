//! One module per service. Each `serve` function runs one connection to its
//! end and says why it ended; the listener logs and counts that.

pub mod game;
pub mod math;
pub mod positions;
pub mod test_packets;

use bytes::BytesMut;
use shared::ClientId;
use shared::legacy::IdGreeting;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use crate::Shared;
use crate::connection::{Disconnect, Writer};
use crate::metrics::ConnectionCounters;
use crate::registry::Service;

/// Read buffer size of every connection: big enough to take many pipelined
/// messages in one read, small enough for 10,000 idle clients.
pub const READ_BUFFER_BYTES: usize = 4096;

/// Reads more bytes into `buf`, counting them; `Ok(())` if any arrived.
pub async fn read_more(
    half: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    counters: &ConnectionCounters,
) -> Result<(), Disconnect> {
    if buf.capacity() - buf.len() < READ_BUFFER_BYTES / 4 {
        buf.reserve(READ_BUFFER_BYTES);
    }
    match half.read_buf(buf).await {
        Ok(0) => Err(Disconnect::ClientClosed),
        Ok(n) => {
            counters.bytes_in.inc_by(n as u64);
            Ok(())
        }
        Err(err) => Err(Disconnect::Io(err)),
    }
}

/// A fresh connection split into its read half, its deadline-bound writer
/// and its counters.
pub struct Opened {
    pub reader: OwnedReadHalf,
    pub writer: Writer,
    pub counters: ConnectionCounters,
}

/// Splits `stream` for `service`.
pub fn open(stream: TcpStream, service: Service, shared: &Shared) -> Opened {
    let counters = shared.metrics.connection(service);
    let (reader, writer) = stream.into_split();
    let writer = Writer::new(
        writer,
        shared.config.write_timeout(),
        shared.shutdown.clone(),
        counters.clone(),
    );
    Opened {
        reader,
        writer,
        counters,
    }
}

/// Splits `stream` and sends the legacy id greeting every legacy service
/// starts with.
pub async fn open_legacy(
    stream: TcpStream,
    id: ClientId,
    service: Service,
    shared: &Shared,
) -> Result<Opened, Disconnect> {
    let mut opened = open(stream, service, shared);
    opened.writer.send(&IdGreeting(id).to_bytes(), 1).await?;
    Ok(opened)
}
