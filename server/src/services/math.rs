//! The legacy "math" service: pipelined requests, replies in order.

use bytes::BytesMut;
use shared::ClientId;
use shared::legacy::{MathDecodeError, MathReply, MathRequest, MathRequestCodec};
use shared::math::{MathOp, MathOutcome, MathStatus};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use super::{Opened, READ_BUFFER_BYTES, open_legacy, read_more};
use crate::Shared;
use crate::connection::Disconnect;
use crate::registry::Service;

/// How long the status-3 reply to a malformed request may take before the
/// connection is closed anyway.
const LAST_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Replies to one request.
pub fn answer(request: &MathRequest) -> MathOutcome {
    match MathOp::parse(request.command.as_bytes()) {
        Some(op) => op.evaluate(request.a, request.b),
        None => MathOutcome::error(MathStatus::UnknownCommand),
    }
}

/// Per-status tallies of one read, added to the metrics in one go.
#[derive(Default)]
struct Tally([u64; 4]);

impl Tally {
    fn add(&mut self, status: MathStatus) {
        self.0[status.code() as usize] += 1;
    }

    fn flush(&mut self, shared: &Shared) {
        for status in [
            MathStatus::Ok,
            MathStatus::DivisionByZero,
            MathStatus::UnknownCommand,
            MathStatus::Malformed,
        ] {
            let count = std::mem::take(&mut self.0[status.code() as usize]);
            if count > 0 {
                shared.metrics.math_request(status.label(), count);
            }
        }
    }
}

pub async fn serve(stream: TcpStream, id: ClientId, shared: &Shared) -> Disconnect {
    let Opened {
        mut reader,
        mut writer,
        counters,
    } = match open_legacy(stream, id, Service::Math, shared).await {
        Ok(opened) => opened,
        Err(reason) => return reason,
    };
    let mut received = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut replies = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut tally = Tally::default();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Disconnect::Shutdown,
            result = read_more(&mut reader, &mut received, &counters) => {
                if let Err(reason) = result {
                    return reason;
                }
            }
        }
        let mut answered = 0;
        let malformed = loop {
            match MathRequestCodec.decode(&mut received) {
                Ok(Some(request)) => {
                    let outcome = answer(&request);
                    tally.add(outcome.status);
                    MathReply(outcome).encode(&mut replies);
                    answered += 1;
                }
                Ok(None) => break None,
                Err(err) => break Some(err),
            }
        };
        counters.messages_in.inc_by(answered);
        if let Some(err) = malformed {
            tally.add(MathStatus::Malformed);
            tally.flush(shared);
            MathReply(MathOutcome::error(MathStatus::Malformed)).encode(&mut replies);
            writer.send_last(&replies, LAST_REPLY_TIMEOUT).await;
            return match err {
                MathDecodeError::Io(err) => Disconnect::Io(err),
                other => Disconnect::ProtocolViolation(other.to_string()),
            };
        }
        tally.flush(shared);
        if !replies.is_empty() {
            let bytes = replies.split().freeze();
            if let Err(reason) = writer.send_chunks(vec![bytes], answered).await {
                return reason;
            }
        }
    }
}
