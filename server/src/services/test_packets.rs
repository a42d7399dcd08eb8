//! The legacy "test packets" service: a probe every interval, which the
//! client must echo unchanged within the probe timeout.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use shared::ClientId;
use shared::legacy::Probe;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Opened, open_legacy, read_more};
use crate::Shared;
use crate::connection::Disconnect;
use crate::registry::Service;

struct Outstanding {
    probe: Probe,
    bytes: [u8; Probe::SIZE],
    deadline: Instant,
}

pub async fn serve(stream: TcpStream, id: ClientId, shared: &Shared) -> Disconnect {
    let Opened {
        mut reader,
        mut writer,
        counters,
    } = match open_legacy(stream, id, Service::TestPackets, shared).await {
        Ok(opened) => opened,
        Err(reason) => return reason,
    };

    let interval = shared.config.probe_interval();
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut outstanding: VecDeque<Outstanding> = VecDeque::new();
    let mut received = BytesMut::with_capacity(64);
    let mut seq: i32 = 0;

    loop {
        let oldest_deadline = outstanding.front().map(|o| o.deadline);
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Disconnect::Shutdown,
            _ = ticker.tick() => {
                seq = seq.wrapping_add(1);
                let clients = i32::try_from(shared.registry.len()).unwrap_or(i32::MAX);
                let probe = Probe { seq, clients };
                let bytes = probe.to_bytes();
                if let Err(reason) = writer.send(&bytes, 1).await {
                    return reason;
                }
                let deadline = Instant::now() + shared.config.probe_timeout();
                outstanding.push_back(Outstanding { probe, bytes, deadline });
            }
            _ = tokio::time::sleep_until(oldest_deadline.unwrap_or_else(Instant::now)), if oldest_deadline.is_some() => {
                let seq = outstanding.front().map_or(0, |o| o.probe.seq);
                return Disconnect::ProbeTimeout { seq };
            }
            result = read_more(&mut reader, &mut received, &counters) => {
                if let Err(reason) = result {
                    return reason;
                }
                match match_echoes(&mut received, &mut outstanding) {
                    Ok(echoes) => counters.messages_in.inc_by(echoes),
                    Err(reason) => return reason,
                };
            }
        }
    }
}

/// Consumes every complete echo in `received`. Bytes that cannot be (the
/// start of) the echo of an outstanding probe are a protocol violation,
/// detected as early as the first wrong byte.
fn match_echoes(
    received: &mut BytesMut,
    outstanding: &mut VecDeque<Outstanding>,
) -> Result<u64, Disconnect> {
    let mut echoes = 0;
    while !received.is_empty() {
        let head = &received[..received.len().min(Probe::SIZE)];
        let Some(index) = outstanding.iter().position(|o| o.bytes.starts_with(head)) else {
            let shown = &head[..head.len().min(Probe::SIZE)];
            return Err(Disconnect::ProtocolViolation(format!(
                "bytes {shown:02x?} are not the echo of an outstanding probe"
            )));
        };
        if received.len() < Probe::SIZE {
            break;
        }
        outstanding.remove(index);
        received.advance(Probe::SIZE);
        echoes += 1;
    }
    Ok(echoes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outstanding(seqs: &[i32]) -> VecDeque<Outstanding> {
        seqs.iter()
            .map(|&seq| {
                let probe = Probe { seq, clients: 2 };
                Outstanding {
                    probe,
                    bytes: probe.to_bytes(),
                    deadline: Instant::now(),
                }
            })
            .collect()
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
        assert!(pending.is_empty() && received.is_empty());
    }

    #[test]
    fn wrong_bytes_are_a_violation_at_once() {
        let mut pending = outstanding(&[1]);
        let mut received = BytesMut::from(&[9u8][..]);
        assert!(matches!(
            match_echoes(&mut received, &mut pending),
            Err(Disconnect::ProtocolViolation(_))
        ));
        // Nothing outstanding: any byte is a violation.
        let mut received = BytesMut::from(&[1u8][..]);
        assert!(match_echoes(&mut received, &mut VecDeque::new()).is_err());
        // A changed client count is not an echo.
        let mut received = BytesMut::from(&Probe { seq: 1, clients: 3 }.to_bytes()[..]);
        assert!(match_echoes(&mut received, &mut outstanding(&[1])).is_err());
    }
}
