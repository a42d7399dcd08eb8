//! One simulated player: connects (legacy or native), sends its positions on
//! schedule, reads everything the server sends and keeps the tallies.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shared::ClientId;
use shared::legacy::{Position, PositionRecord, PositionRecordCodec};
use shared::native::{ClientMessage, FrameCodec, PROTOCOL_VERSION, ServerMessage, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Interval, MissedTickBehavior, interval_at, sleep_until, timeout};
use tokio_util::codec::Decoder;

use super::{FINAL, Kind, Outcome, Phase, SEND_RING, Shared, decode_seq, encode_seq};
use crate::connect::{CONNECT_TIMEOUT, ConnectError, acquire, connect_legacy, connect_tcp};

/// One simulated player.
pub(super) struct Client {
    pub(super) kind: Kind,
    pub(super) index: usize,
    pub(super) addr: String,
    /// Where in the send period this client's ticks fall.
    pub(super) offset: Duration,
    pub(super) period: Duration,
    pub(super) shared: Arc<Shared>,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) id_tx: mpsc::UnboundedSender<Option<ClientId>>,
    pub(super) limit: Arc<Semaphore>,
}

/// Why a client's connection ended early.
enum Failure {
    Closed,
    Decode,
    Io,
}

/// A client's view of the run while it is connected.
struct Player {
    id: ClientId,
    shared: Arc<Shared>,
    /// Send time (µs since epoch) of regular position `seq`, at `seq % SEND_RING`.
    sent_at: Box<[u64; SEND_RING]>,
    highest_sent: u32,
    last_echo: u32,
    sending: bool,
    drained: bool,
    load_end: Option<Instant>,
    finals_seen: HashSet<ClientId>,
    outcome: Outcome,
}

impl Client {
    pub(super) async fn run(mut self) -> Outcome {
        let mut outcome = Outcome {
            kind: Some(self.kind),
            ..Outcome::default()
        };
        let connected = match self.kind {
            Kind::Legacy => connect_legacy(&self.addr, &self.limit).await,
            Kind::Native => connect_native(&self.addr, &self.limit, self.index).await,
        };
        let (mut stream, id, mut buf) = match connected {
            Ok(connected) => connected,
            Err(e) => {
                crate::connect::warn_failure(&self.addr, &e);
                outcome.errors.connect_failed += 1;
                let _ = self.id_tx.send(None);
                return outcome;
            }
        };
        outcome.connected = true;
        let _ = self.id_tx.send(Some(id));
        let mut player = Player::new(id, self.shared.clone(), outcome);
        let result = self.drive(&mut stream, &mut buf, &mut player).await;
        // Echoes that never came at all.
        let never_echoed = player.highest_sent.saturating_sub(player.last_echo);
        let mut outcome = std::mem::take(&mut player.outcome);
        outcome.echoes_missed += u64::from(never_echoed);
        if let Err(failure) = result {
            match failure {
                Failure::Closed => outcome.errors.unexpected_close += 1,
                Failure::Decode => outcome.errors.decode_errors += 1,
                Failure::Io => outcome.errors.io_errors += 1,
            }
            self.shared.dead.fetch_add(1, Ordering::AcqRel);
        }
        let others = self
            .shared
            .finals_sent
            .load(Ordering::Acquire)
            .saturating_sub(1);
        outcome.finals_complete = player.finals_seen.len() >= others && others > 0;
        outcome
    }

    async fn drive(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
        player: &mut Player,
    ) -> Result<(), Failure> {
        let mut ticker: Option<Interval> = None;
        // One timer for the end of the load phase, armed when it starts (a
        // fresh `sleep` per loop turn would churn the timer wheel).
        let load_end = sleep_until(tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        tokio::pin!(load_end);
        let mut native_codec = FrameCodec::<ServerMessage>::default();
        let mut out = BytesMut::with_capacity(64);
        // Bytes that came with the greeting/handshake.
        self.process(buf, &mut native_codec, player, &mut out, Instant::now())?;
        flush(stream, &mut out).await?;
        loop {
            tokio::select! {
                // Phase changes first: after Stop, peers closing is expected.
                biased;
                changed = self.phase.changed() => {
                    let phase = if changed.is_ok() { *self.phase.borrow_and_update() } else { Phase::Stop };
                    match phase {
                        Phase::Connect => {}
                        Phase::Load { start, end } => {
                            let mut t = interval_at((start + self.offset).into(), self.period);
                            // Burst: a late tick is caught up at once, so the offered
                            // load stays `rate` per client even when this process
                            // is starved of CPU (Delay would silently lower it).
                            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                            ticker = Some(t);
                            player.sending = true;
                            player.load_end = Some(end);
                            load_end.as_mut().reset(end.into());
                        }
                        Phase::Final => {
                            ticker = None;
                            player.stop_sending();
                            self.encode_position(FINAL, &mut out);
                            flush(stream, &mut out).await?;
                            let now = self.shared.micros_since_epoch(Instant::now());
                            self.shared.last_final_sent_us.fetch_max(now, Ordering::AcqRel);
                            self.shared.finals_sent.fetch_add(1, Ordering::AcqRel);
                        }
                        Phase::Stop => return Ok(()),
                    }
                }
                _ = &mut load_end, if player.sending => {
                    ticker = None;
                    player.stop_sending();
                }
                _ = next_tick(&mut ticker) => {
                    let now = Instant::now();
                    if player.load_end.is_some_and(|end| now >= end) {
                        ticker = None;
                        player.stop_sending();
                        continue;
                    }
                    let position = player.next_position(now);
                    self.encode_position(position, &mut out);
                    flush(stream, &mut out).await?;
                }
                read = stream.read_buf(buf) => {
                    match read {
                        Ok(0) => return Err(Failure::Closed),
                        Ok(_) => {}
                        Err(_) => return Err(Failure::Io),
                    }
                    self.process(buf, &mut native_codec, player, &mut out, Instant::now())?;
                    flush(stream, &mut out).await?;
                    if buf.capacity() - buf.len() < 1024 {
                        buf.reserve(16 * 1024);
                    }
                }
            }
        }
    }

    fn encode_position(&self, position: Position, out: &mut BytesMut) {
        match self.kind {
            Kind::Legacy => position.encode(out),
            Kind::Native => {
                // Encoding a two-field message into a BytesMut cannot fail.
                let _ = encode_frame(&ClientMessage::MyPosition(position), out);
            }
        }
    }

    /// Handles every complete message in `buf`; replies (native `Pong`) go to `out`.
    fn process(
        &self,
        buf: &mut BytesMut,
        native_codec: &mut FrameCodec<ServerMessage>,
        player: &mut Player,
        out: &mut BytesMut,
        now: Instant,
    ) -> Result<(), Failure> {
        let in_load = player.load_end.is_some_and(|end| now < end);
        match self.kind {
            Kind::Legacy => {
                while let Ok(Some(record)) = PositionRecordCodec.decode(buf) {
                    if in_load {
                        player.outcome.records_in_load += 1;
                    }
                    player.on_record(record, now);
                }
            }
            Kind::Native => loop {
                let message = match native_codec.decode(buf) {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(_) => return Err(Failure::Decode),
                };
                match message {
                    ServerMessage::Positions(batch) => {
                        if in_load {
                            player.outcome.records_in_load += batch.len() as u64;
                        }
                        for entry in batch {
                            player.on_record(PositionRecord::moved(entry.id, entry.position), now);
                        }
                    }
                    ServerMessage::Snapshot { players } => {
                        for state in players {
                            if let Some(position) = state.position {
                                player
                                    .on_record(PositionRecord::moved(state.info.id, position), now);
                            }
                        }
                    }
                    ServerMessage::PlayerLeft { id } => {
                        player.on_record(PositionRecord::leave(id), now);
                    }
                    ServerMessage::Ping { nonce } => {
                        let _ = encode_frame(&ClientMessage::Pong { nonce }, out);
                    }
                    ServerMessage::Goodbye { .. } | ServerMessage::Rejected { .. } => {
                        return Err(Failure::Closed);
                    }
                    _ => {}
                }
            },
        }
        Ok(())
    }
}

impl Player {
    fn new(id: ClientId, shared: Arc<Shared>, outcome: Outcome) -> Self {
        Player {
            id,
            shared,
            sent_at: Box::new([0; SEND_RING]),
            highest_sent: 0,
            last_echo: 0,
            sending: false,
            drained: false,
            load_end: None,
            finals_seen: HashSet::new(),
            outcome,
        }
    }

    /// The next regular position to send, its send time noted.
    fn next_position(&mut self, now: Instant) -> Position {
        self.highest_sent += 1;
        let seq = self.highest_sent;
        self.sent_at[seq as usize % SEND_RING] = self.shared.micros_since_epoch(now);
        self.outcome.sent += 1;
        encode_seq(seq)
    }

    fn stop_sending(&mut self) {
        if self.sending {
            self.sending = false;
            self.check_drained();
        }
    }

    fn check_drained(&mut self) {
        if !self.sending && !self.drained && self.last_echo >= self.highest_sent {
            self.drained = true;
            self.shared.drained.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn on_record(&mut self, record: PositionRecord, now: Instant) {
        let ids = self.shared.ids.get();
        if record.id == self.id {
            self.on_own_record(record.position(), now);
        } else if record.is_leave() {
            if ids.is_some_and(|ids| ids.contains(&record.id)) {
                self.outcome.anomalies.peers_left += 1;
            }
        } else if record.position() == FINAL {
            if ids.is_some_and(|ids| ids.contains(&record.id)) && self.finals_seen.insert(record.id)
            {
                self.shared.finals_seen.fetch_add(1, Ordering::AcqRel);
            }
        } else if !self.finals_seen.is_empty() && self.finals_seen.remove(&record.id) {
            self.outcome.anomalies.final_regressed += 1;
            self.shared.finals_seen.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn on_own_record(&mut self, position: Position, now: Instant) {
        if position == FINAL {
            return;
        }
        let Some(seq) = decode_seq(position).filter(|&s| s >= 1 && s <= self.highest_sent) else {
            self.outcome.anomalies.echo_unknown += 1;
            return;
        };
        if seq <= self.last_echo {
            self.outcome.anomalies.echo_reordered += 1;
            return;
        }
        self.outcome.echoes_missed += u64::from(seq - self.last_echo - 1);
        self.last_echo = seq;
        if ((self.highest_sent - seq) as usize) < SEND_RING {
            let sent = self.sent_at[seq as usize % SEND_RING];
            let now = self.shared.micros_since_epoch(now);
            self.outcome.echoes.record_us(now.saturating_sub(sent));
        } else {
            self.outcome.echoes_missed += 1;
        }
        self.check_drained();
    }
}

async fn next_tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn flush(stream: &mut TcpStream, out: &mut BytesMut) -> Result<(), Failure> {
    if out.is_empty() {
        return Ok(());
    }
    let result = stream.write_all(out).await;
    out.clear();
    result.map_err(|_| Failure::Io)
}

/// Native handshake: `Hello` → `Welcome { id }`. Returns the bytes after the
/// `Welcome` (the `Snapshot` usually) still undecoded.
async fn connect_native(
    addr: &str,
    limit: &Semaphore,
    index: usize,
) -> Result<(TcpStream, ClientId, BytesMut), ConnectError> {
    let _permit = acquire(limit).await?;
    let mut stream = connect_tcp(addr).await?;
    let mut hello = BytesMut::new();
    let name = format!("lg{index}");
    encode_frame(
        &ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            name,
        },
        &mut hello,
    )
    .map_err(|e| ConnectError::Greeting(e.to_string()))?;
    let welcome = timeout(CONNECT_TIMEOUT, async {
        stream.write_all(&hello).await.map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(4096);
        let mut codec = FrameCodec::<ServerMessage>::default();
        loop {
            match codec.decode(&mut buf).map_err(|e| e.to_string())? {
                Some(ServerMessage::Welcome { id, .. }) => return Ok((id, buf)),
                Some(ServerMessage::Rejected { reason, .. }) => return Err(reason.to_string()),
                Some(_) => {}
                None => {
                    if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                        return Err("closed before Welcome".to_string());
                    }
                }
            }
        }
    })
    .await;
    match welcome {
        Ok(Ok((id, buf))) => Ok((stream, id, buf)),
        Ok(Err(e)) => Err(ConnectError::Greeting(e)),
        Err(_) => Err(ConnectError::Greeting("timed out".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn player(id: ClientId, ids: &[ClientId]) -> Player {
        let shared = Shared::new();
        let _ = shared.ids.set(ids.iter().copied().collect());
        let mut player = Player::new(id, Arc::new(shared), Outcome::default());
        player.sending = true;
        player
    }

    #[test]
    fn own_echoes_give_latencies_and_skipped_ones_count_as_missed() {
        let mut p = player(7, &[7, 8]);
        let t0 = Instant::now();
        let sent: Vec<Position> = (0..4).map(|_| p.next_position(t0)).collect();
        let later = t0 + Duration::from_millis(5);
        p.on_record(PositionRecord::moved(7, sent[0]), later);
        // The server coalesced positions 2 and 3 away.
        p.on_record(PositionRecord::moved(7, sent[3]), later);
        // An older echo after a newer one is a reordering.
        p.on_record(PositionRecord::moved(7, sent[1]), later);
        // Something this client never sent.
        p.on_record(PositionRecord::moved(7, Position::new(-5, 3)), later);
        assert_eq!(p.outcome.echoes.count(), 2);
        assert_eq!(p.outcome.echoes_missed, 2);
        assert_eq!(p.outcome.anomalies.echo_reordered, 1);
        assert_eq!(p.outcome.anomalies.echo_unknown, 1);
        let summary = p.outcome.echoes.summary();
        assert!((summary.p50_ms - 5.0).abs() < 0.1, "{summary:?}");
        // Last echo in and sending stopped: drained.
        p.stop_sending();
        assert!(p.drained);
        assert_eq!(p.shared.drained.load(Ordering::Acquire), 1);
    }

    #[test]
    fn not_drained_until_the_last_echo() {
        let mut p = player(7, &[7]);
        let now = Instant::now();
        let first = p.next_position(now);
        p.next_position(now);
        p.stop_sending();
        p.on_record(PositionRecord::moved(7, first), now);
        assert!(!p.drained);
        assert_eq!(p.shared.drained.load(Ordering::Acquire), 0);
    }

    #[test]
    fn finals_of_known_peers_count_once_and_regressions_undo_them() {
        let mut p = player(1, &[1, 2, 3]);
        let now = Instant::now();
        p.on_record(PositionRecord::moved(2, FINAL), now);
        p.on_record(PositionRecord::moved(2, FINAL), now);
        p.on_record(PositionRecord::moved(99, FINAL), now); // not one of ours
        p.on_record(PositionRecord::moved(3, FINAL), now);
        assert_eq!(p.shared.finals_seen.load(Ordering::Acquire), 2);
        // A regular position of 3 after its final one.
        p.on_record(PositionRecord::moved(3, encode_seq(1)), now);
        assert_eq!(p.shared.finals_seen.load(Ordering::Acquire), 1);
        assert_eq!(p.outcome.anomalies.final_regressed, 1);
        p.on_record(PositionRecord::leave(2), now);
        p.on_record(PositionRecord::leave(42), now);
        assert_eq!(p.outcome.anomalies.peers_left, 1);
    }
}
