//! One module per service. Each `serve` function runs one connection to its
//! end and says why it ended; the listener logs and counts that.

pub mod game;
pub mod math;
pub mod positions;
pub mod test_packets;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

use crate::connection::Disconnect;
use crate::metrics::ConnectionCounters;

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
