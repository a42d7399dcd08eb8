//! The legacy "math" service: pipelined requests, replies in order.

use bytes::BytesMut;
use shared::ClientId;
use shared::legacy::{MathReply, MathRequest, MathRequestCodec};
use shared::math::{MathOp, MathOutcome, MathStatus};
use tokio::net::TcpStream;

use super::{READ_BUFFER_BYTES, Session, ended, open_legacy};
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
    ended(session(stream, id, shared).await)
}

/// Answers every request of one read with one write; a malformed request
/// is answered with status 3 after the replies before it, then the
/// connection closes (contract §math).
async fn session(stream: TcpStream, id: ClientId, shared: &Shared) -> Session {
    let mut connection = open_legacy(stream, id, Service::Math, shared, MathRequestCodec).await?;
    let mut replies = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut tally = Tally::default();
    loop {
        let first = tokio::select! {
            _ = shared.shutdown.cancelled() => return Err(Disconnect::Shutdown),
            request = connection.read_frame() => request,
        };
        let mut answered = 0;
        let mut next = first.map(Some);
        let malformed = loop {
            match next {
                Ok(Some(request)) => {
                    let outcome = answer(&request);
                    tally.add(outcome.status);
                    MathReply(outcome).encode(&mut replies);
                    answered += 1;
                }
                Ok(None) => break None,
                Err(reason @ Disconnect::ProtocolViolation(_)) => break Some(reason),
                Err(reason) => return Err(reason),
            }
            next = connection.try_frame();
        };
        if let Some(reason) = malformed {
            tally.add(MathStatus::Malformed);
            tally.flush(shared);
            MathReply(MathOutcome::error(MathStatus::Malformed)).encode(&mut replies);
            connection
                .writer
                .send_last(&replies, LAST_REPLY_TIMEOUT)
                .await;
            return Err(reason);
        }
        tally.flush(shared);
        if !replies.is_empty() {
            let bytes = replies.split().freeze();
            connection.writer.send_chunks(vec![bytes], answered).await?;
        }
    }
}
