//! Opening a legacy connection: TCP connect and the 4-byte id greeting, both
//! bounded in time, with a limit on how many connects run at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use shared::ClientId;
use shared::legacy::IdGreetingCodec;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::timeout;
use tokio_util::codec::Decoder;

/// How long a connect (or the greeting after it) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed connection attempt.
#[derive(Debug)]
pub enum ConnectError {
    /// TCP connect failed or timed out.
    Connect(String),
    /// Connected, but the greeting did not arrive (close, error or timeout).
    Greeting(String),
}

/// Connects to `addr` and reads the id, holding a permit of `limit` until the
/// greeting is in (so at most `limit` connections wait in the server's accept
/// queue: the kernel completes a handshake before the server accepts it, and
/// an overflowing accept queue silently drops connections).
/// Returns the stream, the id and whatever bytes followed the greeting.
pub async fn connect_legacy(
    addr: &str,
    limit: &Semaphore,
) -> Result<(TcpStream, ClientId, BytesMut), ConnectError> {
    let _permit = acquire(limit).await?;
    let mut stream = connect_tcp(addr).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let greeting = timeout(CONNECT_TIMEOUT, async {
        loop {
            if let Some(greeting) = IdGreetingCodec.decode(&mut buf)? {
                return Ok(greeting);
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
        }
    })
    .await;
    match greeting {
        Ok(Ok(greeting)) => Ok((stream, greeting.0, buf)),
        Ok(Err(e)) => Err(ConnectError::Greeting(e.to_string())),
        Err(_) => Err(ConnectError::Greeting("timed out".into())),
    }
}

/// Waits for a connect permit.
pub async fn acquire(limit: &Semaphore) -> Result<SemaphorePermit<'_>, ConnectError> {
    limit
        .acquire()
        .await
        .map_err(|_| ConnectError::Connect("connect limiter closed".into()))
}

/// TCP connect with Nagle off, bounded by [`CONNECT_TIMEOUT`].
pub async fn connect_tcp(addr: &str) -> Result<TcpStream, ConnectError> {
    let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(ConnectError::Connect(e.to_string())),
        Err(_) => return Err(ConnectError::Connect("timed out".into())),
    };
    // Only fails on a closed socket, which the next read reports anyway.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Prints the first few connection failures of the process to stderr (the
/// report only counts them).
pub fn warn_failure(addr: &str, error: &ConnectError) {
    static SHOWN: AtomicUsize = AtomicUsize::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("warning: connection to {addr} failed: {error:?}");
    }
}
