//! The legacy "test packets" service: a probe every interval, which the
//! client must echo unchanged within the probe timeout.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use shared::ClientId;
use shared::legacy::Probe;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::codec::Decoder;

use super::{Session, ended, open_legacy};
use crate::Shared;
use crate::connection::Disconnect;
use crate::registry::Service;

struct Outstanding {
    probe: Probe,
    bytes: [u8; Probe::SIZE],
    deadline: Instant,
}

/// Bytes from the client that are not an echo.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("bytes {0:02x?} are not the echo of an outstanding probe")]
    NotAnEcho(Vec<u8>),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Decodes echoes of the probes still outstanding. Bytes that cannot be
/// (the start of) the echo of an outstanding probe are an error, detected as
/// early as the first wrong byte. An echo may answer any outstanding probe.
#[derive(Default)]
pub struct Echoes {
    outstanding: VecDeque<Outstanding>,
}

impl Echoes {
    fn expect(&mut self, probe: Probe, deadline: Instant) {
        self.outstanding.push_back(Outstanding {
            probe,
            bytes: probe.to_bytes(),
            deadline,
        });
    }

    /// The oldest probe still unanswered, and when it times out.
    fn oldest(&self) -> Option<(i32, Instant)> {
        self.outstanding.front().map(|o| (o.probe.seq, o.deadline))
    }
}

impl Decoder for Echoes {
    type Item = Probe;
    type Error = EchoError;

    fn decode(&mut self, received: &mut BytesMut) -> Result<Option<Probe>, EchoError> {
        if received.is_empty() {
            return Ok(None);
        }
        let head = &received[..received.len().min(Probe::SIZE)];
        let Some(index) = self
            .outstanding
            .iter()
            .position(|o| o.bytes.starts_with(head))
        else {
            return Err(EchoError::NotAnEcho(head.to_vec()));
        };
        if received.len() < Probe::SIZE {
            return Ok(None);
        }
        received.advance(Probe::SIZE);
        Ok(self.outstanding.remove(index).map(|o| o.probe))
    }
}

pub async fn serve(stream: TcpStream, id: ClientId, shared: &Shared) -> Disconnect {
    ended(session(stream, id, shared).await)
}

/// A probe every interval; each must be echoed before its deadline.
async fn session(stream: TcpStream, id: ClientId, shared: &Shared) -> Session {
    let mut connection =
        open_legacy(stream, id, Service::TestPackets, shared, Echoes::default()).await?;
    let interval = shared.config.probe_interval();
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq: i32 = 0;
    loop {
        let oldest = connection.decoder_mut().oldest();
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Err(Disconnect::Shutdown),
            _ = ticker.tick() => {
                seq = seq.wrapping_add(1);
                let clients = i32::try_from(shared.registry.len()).unwrap_or(i32::MAX);
                let probe = Probe { seq, clients };
                connection.writer.send(&probe.to_bytes(), 1).await?;
                let deadline = Instant::now() + shared.config.probe_timeout();
                connection.decoder_mut().expect(probe, deadline);
            }
            _ = tokio::time::sleep_until(oldest.map_or_else(Instant::now, |(_, at)| at)), if oldest.is_some() => {
                let seq = oldest.map_or(0, |(seq, _)| seq);
                return Err(Disconnect::ProbeTimeout { seq });
            }
            echo = connection.read_frame() => {
                echo?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outstanding(seqs: &[i32]) -> Echoes {
        let mut echoes = Echoes::default();
        for &seq in seqs {
            echoes.expect(Probe { seq, clients: 2 }, Instant::now());
        }
        echoes
    }

    /// Decodes every whole echo in `received`; how many there were.
    fn match_echoes(received: &mut BytesMut, echoes: &mut Echoes) -> Result<u64, EchoError> {
        let mut count = 0;
        while echoes.decode(received)?.is_some() {
            count += 1;
        }
        Ok(count)
    }

    #[test]
    fn echoes_match_in_any_order_and_in_pieces() {
        let mut pending = outstanding(&[1, 2]);
        let mut received = BytesMut::new();
        received.extend_from_slice(&Probe { seq: 2, clients: 2 }.to_bytes()[..5]);
        assert_eq!(match_echoes(&mut received, &mut pending).unwrap(), 0);
        received.extend_from_slice(&Probe { seq: 2, clients: 2 }.to_bytes()[5..]);
        received.extend_from_slice(&Probe { seq: 1, clients: 2 }.to_bytes());
        assert_eq!(match_echoes(&mut received, &mut pending).unwrap(), 2);
        assert!(pending.outstanding.is_empty() && received.is_empty());
    }

    #[test]
    fn wrong_bytes_are_a_violation_at_once() {
        let mut pending = outstanding(&[1]);
        let mut received = BytesMut::from(&[9u8][..]);
        assert!(matches!(
            match_echoes(&mut received, &mut pending),
            Err(EchoError::NotAnEcho(_))
        ));
        // Nothing outstanding: any byte is a violation.
        let mut received = BytesMut::from(&[1u8][..]);
        assert!(match_echoes(&mut received, &mut Echoes::default()).is_err());
        // A changed client count is not an echo.
        let mut received = BytesMut::from(&Probe { seq: 1, clients: 3 }.to_bytes()[..]);
        assert!(match_echoes(&mut received, &mut outstanding(&[1])).is_err());
    }
}
