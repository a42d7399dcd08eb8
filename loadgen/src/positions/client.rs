//! One simulated player: connects (legacy or native), sends its positions on
//! schedule, reads everything the server sends and keeps the tallies.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BytesMut};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recv, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use shared::ClientId;
use shared::legacy::{Position, PositionRecord};
use shared::native::{ClientMessage, FrameCodec, ServerMessage, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{sleep_until, timeout};
use tokio_util::codec::Decoder;

use super::frames::{self, Corrupt, Frame};
use super::pacer::{Direct, Tick};
use super::{FINAL, Kind, Outcome, Phase, SEND_RING, Shared, decode_seq, encode_seq};
use crate::connect::{CONNECT_TIMEOUT, ConnectError, acquire, connect_legacy, connect_tcp};

/// One simulated player.
pub(super) struct Client {
    pub(super) kind: Kind,
    pub(super) index: usize,
    pub(super) addr: String,
    /// Ticks from the pacer during the load phase.
    pub(super) ticks: mpsc::UnboundedReceiver<Tick>,
    /// Legacy clients: where to put a copy of the socket so that the pacer
    /// writes the positions itself.
    pub(super) direct: Option<Arc<Direct>>,
    pub(super) shared: Arc<Shared>,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) id_tx: mpsc::UnboundedSender<Option<ClientId>>,
    pub(super) limit: Arc<Semaphore>,
    /// Area-of-interest mode (native clients only): random walk and a view.
    pub(super) world: Option<World>,
    /// Decodes everything and times its echoes; otherwise (a native
    /// "counter" of the area-of-interest mode) walks frames and counts
    /// records (see [`super::frames`]).
    pub(super) sampled: bool,
    /// What a native client announces in its `Hello`.
    pub(super) protocol_version: u32,
}

/// The area-of-interest world a native client walks in.
#[derive(Debug, Clone, Copy)]
pub(super) struct World {
    /// Side of the square world, in position units (positions in `0..size`).
    pub(super) size: u16,
    /// Half side of the client's view.
    pub(super) view: u16,
}

/// Largest step of the random walk per tick, in position units per axis.
const WALK_STEP: i32 = 10;
/// A new `View` is sent once the client is this fraction of its half
/// extent away from the last view's centre.
const VIEW_RESEND_FRACTION: i32 = 4;

/// A native client's random walk; echoes are matched by position.
struct Walk {
    world: World,
    at: Position,
    rng: u64,
    /// Sent and not yet echoed: (position, sequence number, send tick µs).
    pending: VecDeque<(Position, u32, u64)>,
    view_center: Option<Position>,
}

impl Walk {
    fn new(world: World, index: usize) -> Self {
        let mut walk = Walk {
            world,
            at: Position::new(0, 0),
            // Any non-zero seed; distinct per client.
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            pending: VecDeque::new(),
            view_center: None,
        };
        let size = i32::from(world.size.max(1));
        walk.at = Position::new(walk.below(size) as i16, walk.below(size) as i16);
        walk
    }

    /// xorshift64: a uniform number in `0..n` (n > 0), good enough for a walk.
    fn below(&mut self, n: i32) -> i32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % n as u64) as i32
    }

    /// One step inside the world, never onto the current position (so
    /// consecutive positions differ and an echo names one send).
    fn step(&mut self) -> Position {
        let max = i32::from(self.world.size.max(2)) - 1;
        let dx = self.below(2 * WALK_STEP + 1) - WALK_STEP;
        let dy = self.below(2 * WALK_STEP + 1) - WALK_STEP;
        let (x0, y0) = (i32::from(self.at.x), i32::from(self.at.y));
        let mut x = (x0 + dx).clamp(0, max);
        let y = (y0 + dy).clamp(0, max);
        if (x, y) == (x0, y0) {
            x = if x0 > 0 { x0 - 1 } else { x0 + 1 };
        }
        self.at = Position::new(x as i16, y as i16);
        self.at
    }

    /// The view to send now, if the client moved far enough since the last.
    fn view_due(&mut self) -> Option<ClientMessage> {
        let far = i32::from(self.world.view) / VIEW_RESEND_FRACTION;
        let due = match self.view_center {
            None => true,
            Some(c) => {
                (i32::from(c.x) - i32::from(self.at.x)).abs() > far
                    || (i32::from(c.y) - i32::from(self.at.y)).abs() > far
            }
        };
        due.then(|| {
            self.view_center = Some(self.at);
            ClientMessage::View {
                center: self.at,
                half_extent: self.world.view,
            }
        })
    }
}

/// Why a client's connection ended early.
#[derive(Debug)]
enum Failure {
    Closed,
    Decode,
    Io,
}

impl From<Corrupt> for Failure {
    fn from(_: Corrupt) -> Self {
        Failure::Decode
    }
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
    /// Regular records are counted from the load phase on.
    counting: bool,
    /// Native: the players this client currently sees.
    visible: HashSet<ClientId>,
    walk: Option<Walk>,
    /// A counter (see [`Client::sampled`]): no echo matched, nobody's
    /// visibility tracked.
    counts_only: bool,
    /// A legacy counter: bytes of the record under way that a drain
    /// discarded (0..8); the rest of it is skipped before records are read
    /// again.
    partial: usize,
    /// Legacy: the pacer writes this client's positions (see
    /// [`Player::count_pacer_sends`]); they are scheduled from `load_start`.
    direct: Option<Arc<Direct>>,
    load_start: Option<Instant>,
    outcome: Outcome,
}

impl Client {
    pub(super) async fn run(mut self) -> Outcome {
        let mut outcome = Outcome {
            kind: Some(self.kind),
            ..Outcome::default()
        };
        // A walker's view goes out with its Hello, so even its first
        // snapshot is of its region, not of the whole world.
        let mut walk = match self.kind {
            Kind::Native => self.world.map(|world| Walk::new(world, self.index)),
            Kind::Legacy => None,
        };
        let first_view = walk.as_mut().and_then(Walk::view_due);
        let connected = match self.kind {
            Kind::Legacy => connect_legacy(&self.addr, &self.limit).await,
            Kind::Native => {
                let hello = Hello {
                    index: self.index,
                    protocol_version: self.protocol_version,
                };
                connect_native(&self.addr, &self.limit, hello, first_view.as_ref()).await
            }
        };
        let connected = connected.and_then(|(stream, id, buf)| {
            if self.sampled {
                stamp_arrivals(&stream)
                    .map_err(|e| ConnectError::Connect(format!("SO_TIMESTAMPNS: {e}")))?;
            }
            let stream = share_with_pacer(stream, self.direct.as_deref())?;
            Ok((stream, id, buf))
        });
        // The pacer's copy of the socket is closed when this client ends.
        let _take_back = self.direct.clone().map(TakeBack);
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
        outcome.sampled = self.sampled;
        let _ = self.id_tx.send(Some(id));
        let mut player = Player::new(id, self.shared.clone(), outcome);
        player.counts_only = !self.sampled;
        player.walk = walk;
        player.direct = self.direct.clone();
        let result = self.drive(&mut stream, &mut buf, &mut player).await;
        player.count_pacer_sends();
        // Echoes that never came at all (a counter looks for none).
        let never_echoed = match player.counts_only {
            true => 0,
            false => player.highest_sent.saturating_sub(player.last_echo),
        };
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
        if let Some(walk) = &player.walk {
            // Sent and never echoed (the sequence-number count above is 0 here).
            outcome.echoes_missed += walk.pending.len() as u64;
        }
        outcome
    }

    async fn drive(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
        player: &mut Player,
    ) -> Result<(), Failure> {
        let mut ticking = false;
        let mut pacer_done = false;
        // A legacy counter's drains in the load phase (the pacer writes its
        // sends, so no tick wakes it).
        let drains_unread = self.kind == Kind::Legacy && player.counts_only;
        let mut drain = tokio::time::interval(LEGACY_COUNTER_DRAIN);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One timer for the end of the load phase, armed when it starts (a
        // fresh `sleep` per loop turn would churn the timer wheel).
        let load_end = sleep_until(tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        tokio::pin!(load_end);
        let mut native_codec = FrameCodec::<ServerMessage>::default();
        let mut out = BytesMut::with_capacity(64);
        // Bytes that came with the greeting/handshake.
        self.process(
            buf,
            &mut native_codec,
            player,
            &mut out,
            Arrival::read_now(),
        )?;
        if let Some(view) = player.walk.as_mut().and_then(Walk::view_due) {
            let _ = encode_frame(&view, &mut out);
        }
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
                            ticking = true;
                            player.load_start = Some(start);
                            player.sending = true;
                            player.counting = true;
                            player.load_end = Some(end);
                            load_end.as_mut().reset(end.into());
                        }
                        Phase::Final => {
                            ticking = false;
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
                    ticking = false;
                    player.stop_sending();
                }
                _ = drain.tick(), if drains_unread && ticking => {
                    player.drain_unread(stream.as_raw_fd(), buf)?;
                }
                // Read even when not sending: the rest of a send the pacer
                // began must go out.
                tick = self.ticks.recv(), if !pacer_done => {
                    let scheduled = match tick {
                        None => {
                            pacer_done = true;
                            continue;
                        }
                        Some(Tick::Unwritten { seq, from }) => {
                            let bytes = encode_seq(seq).to_bytes();
                            out.extend_from_slice(&bytes[from.min(bytes.len())..]);
                            flush(stream, &mut out).await?;
                            continue;
                        }
                        Some(Tick::Due { .. }) if !ticking => continue,
                        Some(Tick::Due { at }) => at,
                    };
                    let now = Instant::now();
                    if player.load_end.is_some_and(|end| scheduled >= end) {
                        ticking = false;
                        player.stop_sending();
                        continue;
                    }
                    // Latency counts from the scheduled tick, not from when
                    // this task got to run: a starved generator shows up as
                    // latency (and as lateness), never hides it.
                    player.outcome.lateness.record(now.saturating_duration_since(scheduled));
                    let position = player.next_position(scheduled);
                    self.encode_position(position, &mut out);
                    if let Some(view) = player.walk.as_mut().and_then(Walk::view_due) {
                        let _ = encode_frame(&view, &mut out);
                    }
                    flush(stream, &mut out).await?;
                    if player.counts_only {
                        while self.read_once(stream, buf, &mut native_codec, player, &mut out)? {}
                        flush(stream, &mut out).await?;
                    }
                }
                // A counter in the load phase reads only after its own
                // sends (below): one large read per tick instead of one per
                // small frame, and no wake-up of its own.
                ready = stream.readable(), if !(player.counts_only && ticking) => {
                    ready.map_err(|_| Failure::Io)?;
                    self.read_once(stream, buf, &mut native_codec, player, &mut out)?;
                    flush(stream, &mut out).await?;
                }
            }
        }
    }

    /// One read of what the socket holds, handled. Returns whether the read
    /// filled the scratch buffer (more may wait).
    fn read_once(
        &self,
        stream: &TcpStream,
        buf: &mut BytesMut,
        native_codec: &mut FrameCodec<ServerMessage>,
        player: &mut Player,
        out: &mut BytesMut,
    ) -> Result<bool, Failure> {
        let mut handled = None;
        let mut full = false;
        let read = stream.try_io(Interest::READABLE, || {
            SCRATCH.with_borrow_mut(|scratch| {
                let (n, stamp) = recv_stamped(stream.as_raw_fd(), scratch)?;
                if n == 0 {
                    handled = Some(Err(Failure::Closed));
                    return Ok(());
                }
                let read = Instant::now();
                let kernel = stamp.map_or(read, |at| self.shared.instant_of(at).min(read));
                let arrival = Arrival { read, kernel };
                handled =
                    Some(self.take_in(&scratch[..n], buf, native_codec, player, out, arrival));
                full = n == scratch.len();
                if !full {
                    // A short read emptied the socket: forget its
                    // readiness now instead of paying a `recvmsg`
                    // that only says EAGAIN (half of all reads at
                    // 2,000 clients). New bytes raise a new edge.
                    // tokio's own `poll_read` does the same.
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            })
        });
        match (read, handled) {
            (_, Some(handled)) => handled.map(|()| full),
            (Err(e), None) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            (_, None) => Err(Failure::Io),
        }
    }

    /// Handles bytes just read. Whole legacy records are taken straight from
    /// `bytes` when nothing is pending in `buf` (the usual case: no copy of
    /// the 40 M records/s of a 2,000-client run); the rest goes through `buf`.
    fn take_in(
        &self,
        bytes: &[u8],
        buf: &mut BytesMut,
        native_codec: &mut FrameCodec<ServerMessage>,
        player: &mut Player,
        out: &mut BytesMut,
        arrival: Arrival,
    ) -> Result<(), Failure> {
        if self.kind == Kind::Legacy {
            let bytes = player.skip_partial(bytes);
            if buf.is_empty() {
                player.count_pacer_sends();
                let whole = player.take_records(bytes, arrival);
                buf.extend_from_slice(&bytes[whole..]);
                return Ok(());
            }
            buf.extend_from_slice(bytes);
            return self.process(buf, native_codec, player, out, arrival);
        }
        if player.counts_only {
            // Whole frames straight from `bytes` when nothing waits in `buf`.
            if buf.is_empty() {
                let used = self.count_frames(bytes, native_codec, player, out, arrival)?;
                buf.extend_from_slice(&bytes[used..]);
            } else {
                buf.extend_from_slice(bytes);
                let used = self.count_frames(buf, native_codec, player, out, arrival)?;
                buf.advance(used);
            }
            return Ok(());
        }
        buf.extend_from_slice(bytes);
        self.process(buf, native_codec, player, out, arrival)
    }

    /// A counter's read: `Positions` batches counted by their entry count,
    /// every other message decoded in full. Returns the bytes of the whole
    /// frames at the start of `bytes`.
    fn count_frames(
        &self,
        bytes: &[u8],
        native_codec: &mut FrameCodec<ServerMessage>,
        player: &mut Player,
        out: &mut BytesMut,
        now: Arrival,
    ) -> Result<usize, Failure> {
        let in_load = player.load_end.is_some_and(|end| now.read < end);
        frames::shape().walk(bytes, |frame| match frame {
            Frame::Positions { count } => {
                if in_load {
                    player.outcome.records_in_load += count;
                }
                if player.counting {
                    player.outcome.records_delivered += count;
                }
                Ok(())
            }
            Frame::Skipped => Ok(()),
            Frame::Other(frame) => {
                let mut frame = BytesMut::from(frame);
                match native_codec.decode(&mut frame) {
                    Ok(Some(message)) if frame.is_empty() => {
                        self.handle(message, player, out, now, in_load)
                    }
                    _ => Err(Failure::Decode),
                }
            }
        })
    }

    /// One decoded message from the server.
    fn handle(
        &self,
        message: ServerMessage,
        player: &mut Player,
        out: &mut BytesMut,
        now: Arrival,
        in_load: bool,
    ) -> Result<(), Failure> {
        match message {
            ServerMessage::Positions(batch) => {
                if in_load {
                    player.outcome.records_in_load += batch.len() as u64;
                }
                for entry in batch {
                    player.see(entry.id);
                    player.on_record(PositionRecord::moved(entry.id, entry.position), now);
                }
            }
            ServerMessage::PlayerJoined(info) => player.see(info.id),
            ServerMessage::Snapshot { players } => {
                // A snapshot is everything the client now sees (its
                // region after a change of view): it replaces the set.
                player.visible.clear();
                for state in players {
                    player.see(state.info.id);
                    match state.position {
                        Some(position) if state.info.id == player.id => {
                            player.on_own_snapshot_position(position, now);
                        }
                        Some(position) => {
                            player.on_record(PositionRecord::moved(state.info.id, position), now);
                        }
                        None => {}
                    }
                }
            }
            ServerMessage::PlayerLeft { id } => {
                player.visible.remove(&id);
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
        Ok(())
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
        now: Arrival,
    ) -> Result<(), Failure> {
        let in_load = player.load_end.is_some_and(|end| now.read < end);
        // Before any echo is looked at: the pacer may have sent since.
        player.count_pacer_sends();
        match self.kind {
            Kind::Legacy => {
                let whole = player.take_records(buf, now);
                buf.advance(whole);
            }
            Kind::Native => loop {
                let message = match native_codec.decode(buf) {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(_) => return Err(Failure::Decode),
                };
                self.handle(message, player, out, now, in_load)?;
            },
        }
        Ok(())
    }
}

impl Player {
    /// A legacy counter's drain: discards everything its socket holds with
    /// `MSG_TRUNC` (the kernel copies nothing) and counts the records.
    /// Bytes of a record already in `buf` count with the discarded ones.
    fn drain_unread(&mut self, fd: RawFd, buf: &mut BytesMut) -> Result<(), Failure> {
        self.count_pacer_sends();
        self.partial += buf.len();
        buf.clear();
        let mut discarded = 0;
        loop {
            let n = SCRATCH.with_borrow_mut(|scratch| {
                recv(fd, scratch, MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT)
            });
            match n {
                Ok(0) => return Err(Failure::Closed),
                Ok(n) => {
                    discarded += n;
                    if n < READ_SIZE {
                        break;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Err(Failure::Io),
            }
        }
        let total = self.partial + discarded;
        let records = (total / PositionRecord::SIZE) as u64;
        self.partial = total % PositionRecord::SIZE;
        self.count_unread(records, Instant::now());
        Ok(())
    }

    /// `bytes` without what is left of a record a drain began discarding
    /// (that record is counted once it is whole).
    fn skip_partial<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        if self.partial == 0 {
            return bytes;
        }
        let rest = (PositionRecord::SIZE - self.partial).min(bytes.len());
        self.partial += rest;
        if self.partial == PositionRecord::SIZE {
            self.partial = 0;
            self.count_unread(1, Instant::now());
        }
        &bytes[rest..]
    }

    /// Counts `records` that were discarded unread at `now`.
    fn count_unread(&mut self, records: u64, now: Instant) {
        if self.counting {
            self.outcome.records_delivered += records;
        }
        if self.load_end.is_some_and(|end| now < end) {
            self.outcome.records_in_load += records;
        }
    }

    /// Handles the whole legacy records at the start of `bytes`; returns
    /// how many bytes they took.
    fn take_records(&mut self, bytes: &[u8], now: Arrival) -> usize {
        // Whole records straight from the buffer, consumed in one step: at
        // 2,000 clients this loop sees 40 M records/s, and decoding them
        // one `BytesMut::advance` at a time took 40 % of the generator's
        // CPU (perf).
        let whole = bytes.len() - bytes.len() % PositionRecord::SIZE;
        // Most records are other clients' moves, which are only counted:
        // a block of them is recognised by one branch-free pass (the
        // compiler vectorises it) and counted at once; only a block holding
        // something else (an own echo, a leave, a final, or anything while
        // finals are being collected) goes record by record through
        // [`Player::on_record`]. Record by record, this loop was 13 % of
        // the generator's CPU at 2,000 clients (perf).
        let me = self.id;
        for block in bytes[..whole].chunks(RECORDS_PER_BLOCK * PositionRecord::SIZE) {
            let plain = self.finals_seen.is_empty()
                && !block
                    .chunks_exact(PositionRecord::SIZE)
                    .fold(false, |any, record| any | needs_a_look(record, me));
            if plain {
                if self.counting {
                    self.outcome.records_delivered += (block.len() / PositionRecord::SIZE) as u64;
                }
                continue;
            }
            for chunk in block.chunks_exact(PositionRecord::SIZE) {
                let record = <[u8; PositionRecord::SIZE]>::try_from(chunk)
                    .expect("chunks_exact gives whole records");
                self.on_record(PositionRecord::from_bytes(record), now);
            }
        }
        if self.load_end.is_some_and(|end| now.read < end) {
            self.outcome.records_in_load += (whole / PositionRecord::SIZE) as u64;
        }
        whole
    }

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
            counting: false,
            counts_only: false,
            partial: 0,
            visible: HashSet::new(),
            walk: None,
            direct: None,
            load_start: None,
            outcome,
        }
    }

    /// Takes note of the sends the pacer made itself since the last look
    /// (see [`super::pacer`]); their send time is their scheduled tick.
    fn count_pacer_sends(&mut self) {
        let (Some(direct), Some(start)) = (&self.direct, self.load_start) else {
            return;
        };
        let sent = direct.sent();
        if sent <= self.highest_sent {
            return;
        }
        let direct = Arc::clone(direct);
        while self.highest_sent < sent {
            let at = direct.scheduled(start, self.highest_sent + 1);
            self.next_position(at);
        }
    }

    /// A message named player `id`: it is in this client's view.
    fn see(&mut self, id: ClientId) {
        if !self.counts_only && self.visible.insert(id) {
            self.outcome.visible_max = self.outcome.visible_max.max(self.visible.len());
        }
    }

    /// The next regular position to send, its (scheduled) send time noted.
    fn next_position(&mut self, at: Instant) -> Position {
        self.highest_sent += 1;
        let seq = self.highest_sent;
        let at_us = self.shared.micros_since_epoch(at);
        self.outcome.sent += 1;
        match &mut self.walk {
            Some(walk) => {
                let position = walk.step();
                if !self.counts_only {
                    walk.pending.push_back((position, seq, at_us));
                }
                position
            }
            None => {
                self.sent_at[seq as usize % SEND_RING] = at_us;
                encode_seq(seq)
            }
        }
    }

    fn stop_sending(&mut self) {
        if self.sending {
            self.sending = false;
            self.check_drained();
        }
    }

    fn check_drained(&mut self) {
        self.count_pacer_sends();
        let all_in = self.counts_only || self.last_echo >= self.highest_sent;
        if !self.sending && !self.drained && all_in {
            self.drained = true;
            self.shared.drained.fetch_add(1, Ordering::AcqRel);
        }
    }

    #[inline]
    fn on_record(&mut self, record: PositionRecord, now: Arrival) {
        let regular = is_regular(record);
        if regular && record.id != self.id && self.finals_seen.is_empty() {
            // The common case, kept small enough to inline into the decode
            // loop: another client's move, nothing to check.
            self.outcome.records_delivered += u64::from(self.counting);
        } else {
            self.on_special_record(record, regular, now);
        }
    }

    /// Own echoes, leaves, final moves and moves after a final one.
    #[inline(never)]
    fn on_special_record(&mut self, record: PositionRecord, regular: bool, now: Arrival) {
        let ids = self.shared.ids.get();
        if self.counting && regular {
            self.outcome.records_delivered += 1;
        }
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

    /// A snapshot's copy of this client's own position: an echo if it is a
    /// send not echoed yet (the server may coalesce a backlog into a
    /// snapshot), else the state of an echo already seen: neither reordered
    /// nor unknown.
    fn on_own_snapshot_position(&mut self, position: Position, now: Arrival) {
        let pending = match &self.walk {
            Some(walk) => walk.pending.iter().any(|&(p, _, _)| p == position),
            None => {
                decode_seq(position).is_some_and(|s| s > self.last_echo && s <= self.highest_sent)
            }
        };
        if pending {
            self.on_own_record(position, now);
        }
    }

    fn on_own_record(&mut self, position: Position, now: Arrival) {
        if position == FINAL || self.counts_only {
            return;
        }
        if self.walk.is_some() {
            self.on_own_walk_record(position, now);
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
            self.record_echo(sent, now);
        } else {
            self.outcome.echoes_missed += 1;
        }
        self.check_drained();
    }
}

impl Player {
    /// An own echo of the send scheduled at `sent_us` (µs since the epoch).
    fn record_echo(&mut self, sent_us: u64, arrival: Arrival) {
        let kernel = self.shared.micros_since_epoch(arrival.kernel);
        let read = self.shared.micros_since_epoch(arrival.read);
        self.outcome
            .echoes
            .record_us(kernel.saturating_sub(sent_us));
        self.outcome
            .echoes_read
            .record_us(read.saturating_sub(sent_us));
    }

    /// Own echo in walk mode: matched to the oldest pending send at that
    /// position; older pending sends were coalesced away (missed).
    fn on_own_walk_record(&mut self, position: Position, now: Arrival) {
        let Some(walk) = self.walk.as_mut() else {
            return;
        };
        let Some(index) = walk.pending.iter().position(|&(p, _, _)| p == position) else {
            // A snapshot's copy of an already-echoed position, or unknown.
            if walk.at != position {
                self.outcome.anomalies.echo_unknown += 1;
            }
            return;
        };
        self.outcome.echoes_missed += index as u64;
        let mut matched = None;
        for _ in 0..=index {
            matched = walk.pending.pop_front();
        }
        if let Some((_, seq, sent_us)) = matched {
            self.record_echo(sent_us, now);
            self.last_echo = seq;
        }
        self.check_drained();
    }
}

/// When a read's bytes reached this machine, and when this task read them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrival {
    /// When the task got to read them (its own wake-up included).
    pub(super) read: Instant,
    /// When the kernel received the last of them (`SO_TIMESTAMPNS`): the
    /// generator's own scheduling delay is not the server's latency.
    pub(super) kernel: Instant,
}

impl Arrival {
    /// Bytes whose kernel arrival is unknown: both times are now.
    pub(super) fn read_now() -> Self {
        Arrival::at(Instant::now())
    }

    /// Read at `at`, arrival unknown.
    pub(super) fn at(at: Instant) -> Self {
        Arrival {
            read: at,
            kernel: at,
        }
    }
}

/// The most one read takes.
const READ_SIZE: usize = 64 * 1024;

/// How often a legacy counter drains its socket in the load phase. Reading
/// every broadcast as it comes (25 a second at 2,000 clients, 50,000 reads
/// a second in all, 5–8 µs of this VM's kernel each plus the copy of 320 MB
/// a second, docs/bench/floor.md) kept the generator's core at 94–97 % in
/// the load phase; drained ten times a second with `MSG_TRUNC`, which
/// copies nothing, it was at 88–89 % (docs/bench/README.md). What waits
/// meanwhile (at most 24 KB at 3,000
/// clients) stays far below a socket's receive buffer, so the server never
/// sees it as slow. Records still unread when the load ends (up to this
/// long's worth, 1 % of a 10 s run) are not counted in it.
pub(crate) const LEGACY_COUNTER_DRAIN: Duration = Duration::from_millis(100);

thread_local! {
    /// Where reads land: one per worker thread, as nothing awaits between a
    /// read and the handling of its bytes.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_SIZE].into_boxed_slice());
}

/// Asks the kernel to stamp what `stream` receives with its arrival time.
fn stamp_arrivals(stream: &TcpStream) -> std::io::Result<()> {
    setsockopt(stream, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)
}

/// A move that is not the end-of-run marker (leaves and finals are not).
fn is_regular(record: PositionRecord) -> bool {
    !record.is_leave() && record.position() != FINAL
}

/// Records checked at once by [`Player::take_records`].
const RECORDS_PER_BLOCK: usize = 32;

/// Whether the 8-byte record `bytes` is anything but another client's
/// regular move: `!is_regular(record) || record.id == me`, on the raw
/// little-endian words (no branches, so a block of them vectorises).
fn needs_a_look(bytes: &[u8], me: ClientId) -> bool {
    const fn word(x: i16, y: i16) -> u32 {
        (x as u16 as u32) | ((y as u16 as u32) << 16)
    }
    const LEAVE: u32 = word(Position::RESERVED, Position::RESERVED);
    const END: u32 = word(FINAL.x, FINAL.y);
    let id = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let position = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    (id == me as u32) | (position == LEAVE) | (position == END)
}

/// One `recvmsg`, with the `SCM_TIMESTAMPNS` control message if any.
fn recv_stamped(fd: RawFd, into: &mut [u8]) -> std::io::Result<(usize, Option<SystemTime>)> {
    let mut control = nix::cmsg_space!(TimeSpec);
    let mut iov = [IoSliceMut::new(into)];
    let message = recvmsg::<()>(fd, &mut iov, Some(&mut control), MsgFlags::empty())
        .map_err(std::io::Error::from)?;
    let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(at) => Some(
                SystemTime::UNIX_EPOCH + Duration::new(at.tv_sec() as u64, at.tv_nsec() as u32),
            ),
            _ => None,
        })
    });
    Ok((message.bytes, stamp))
}

/// Gives the pacer a copy of a legacy client's socket (see
/// [`super::pacer`]); returns the stream for this task's own use.
fn share_with_pacer(stream: TcpStream, direct: Option<&Direct>) -> Result<TcpStream, ConnectError> {
    let Some(direct) = direct else {
        return Ok(stream);
    };
    let failed = |e: std::io::Error| ConnectError::Connect(format!("sharing the socket: {e}"));
    // Non-blocking stays set, on both copies (one open file).
    let std = stream.into_std().map_err(failed)?;
    let copy = std.try_clone().map_err(failed)?;
    let stream = TcpStream::from_std(std).map_err(failed)?;
    direct.connect(copy);
    Ok(stream)
}

/// Closes the pacer's copy of a client's socket when the client ends, so a
/// client that gave up really disconnects.
struct TakeBack(Arc<Direct>);

impl Drop for TakeBack {
    fn drop(&mut self) {
        self.0.disconnect();
    }
}

/// Writes what `out` holds.
async fn flush(stream: &mut TcpStream, out: &mut BytesMut) -> Result<(), Failure> {
    if out.is_empty() {
        return Ok(());
    }
    let result = stream.write_all(out).await;
    out.clear();
    result.map_err(|_| Failure::Io)
}

/// What a native client says in its `Hello`: its name is `lg<index>`.
struct Hello {
    index: usize,
    protocol_version: u32,
}

/// Native handshake: `Hello` → `Welcome { id }`. Returns the bytes after the
/// `Welcome` (the `Snapshot` usually) still undecoded.
async fn connect_native(
    addr: &str,
    limit: &Semaphore,
    greeting: Hello,
    view: Option<&ClientMessage>,
) -> Result<(TcpStream, ClientId, BytesMut), ConnectError> {
    let _permit = acquire(limit).await?;
    let mut stream = connect_tcp(addr).await?;
    let mut hello = BytesMut::new();
    encode_frame(
        &ClientMessage::Hello {
            protocol_version: greeting.protocol_version,
            name: format!("lg{}", greeting.index),
        },
        &mut hello,
    )
    .map_err(|e| ConnectError::Greeting(e.to_string()))?;
    if let Some(view) = view {
        encode_frame(view, &mut hello).map_err(|e| ConnectError::Greeting(e.to_string()))?;
    }
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
    fn a_drain_counts_whole_records_and_the_split_one_once_it_is_whole() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut writer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (reader, _) = listener.accept().unwrap();
        let record = |id| PositionRecord::moved(id, Position::new(1, 2)).to_bytes();
        let mut p = player(7, &[7, 8]);
        p.counts_only = true;
        p.counting = true;
        // Three records and three bytes of a fourth, two of which wait in
        // `buf` from an earlier read.
        let mut buf = BytesMut::from(&record(8)[..2]);
        let mut sent = Vec::new();
        sent.extend_from_slice(&record(8)[2..]);
        sent.extend_from_slice(&record(8));
        sent.extend_from_slice(&record(8));
        sent.extend_from_slice(&record(8)[..3]);
        writer.write_all(&sent).unwrap();
        writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        p.drain_unread(reader.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(p.outcome.records_delivered, 3);
        assert!(buf.is_empty());
        assert_eq!(p.partial, 3);
        // Read again: the split record's last five bytes complete it (it is
        // counted then), and the next record starts aligned.
        let mut next = record(8)[3..].to_vec();
        next.extend_from_slice(&record(9));
        let rest = p.skip_partial(&next);
        assert_eq!(rest, &record(9)[..]);
        assert_eq!(p.partial, 0);
        assert_eq!(p.outcome.records_delivered, 4);
        // A drain of an empty socket counts nothing and is no error.
        p.drain_unread(reader.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(p.outcome.records_delivered, 4);
        // A closed peer is.
        drop(writer);
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(
            p.drain_unread(reader.as_raw_fd(), &mut buf),
            Err(Failure::Closed)
        ));
    }

    #[test]
    fn own_echoes_give_latencies_and_skipped_ones_count_as_missed() {
        let mut p = player(7, &[7, 8]);
        let t0 = Instant::now();
        let sent: Vec<Position> = (0..4).map(|_| p.next_position(t0)).collect();
        // In 5 ms after the tick; read 2 ms later still.
        let later = Arrival {
            kernel: t0 + Duration::from_millis(5),
            read: t0 + Duration::from_millis(7),
        };
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
        let as_read = p.outcome.echoes_read.summary();
        assert!((as_read.p50_ms - 7.0).abs() < 0.1, "{as_read:?}");
        // Last echo in and sending stopped: drained.
        p.stop_sending();
        assert!(p.drained);
        assert_eq!(p.shared.drained.load(Ordering::Acquire), 1);
    }

    #[test]
    fn a_snapshots_own_position_is_an_echo_only_if_it_is_pending() {
        let mut p = player(7, &[7, 8]);
        let t0 = Instant::now();
        let sent: Vec<Position> = (0..3).map(|_| p.next_position(t0)).collect();
        let at = Arrival::at(t0 + Duration::from_millis(1));
        p.on_record(PositionRecord::moved(7, sent[1]), at);
        // The state of an echo already seen: neither reordered nor unknown.
        p.on_own_snapshot_position(sent[0], at);
        p.on_own_snapshot_position(sent[1], at);
        p.on_own_snapshot_position(Position::new(-5, 3), at);
        assert_eq!(p.outcome.anomalies.echo_reordered, 0);
        assert_eq!(p.outcome.anomalies.echo_unknown, 0);
        assert_eq!(p.outcome.echoes.count(), 1);
        // A backlog coalesced into a snapshot: the latest send's echo.
        p.on_own_snapshot_position(sent[2], at);
        assert_eq!(p.outcome.echoes.count(), 2);
        // The same record outside a snapshot is a reordering.
        p.on_record(PositionRecord::moved(7, sent[0]), at);
        assert_eq!(p.outcome.anomalies.echo_reordered, 1);
    }

    #[test]
    fn not_drained_until_the_last_echo() {
        let mut p = player(7, &[7]);
        let now = Instant::now();
        let first = p.next_position(now);
        p.next_position(now);
        p.stop_sending();
        p.on_record(PositionRecord::moved(7, first), Arrival::at(now));
        assert!(!p.drained);
        assert_eq!(p.shared.drained.load(Ordering::Acquire), 0);
    }

    #[test]
    fn finals_of_known_peers_count_once_and_regressions_undo_them() {
        let mut p = player(1, &[1, 2, 3]);
        let now = Instant::now();
        p.on_record(PositionRecord::moved(2, FINAL), Arrival::at(now));
        p.on_record(PositionRecord::moved(2, FINAL), Arrival::at(now));
        p.on_record(PositionRecord::moved(99, FINAL), Arrival::at(now)); // not one of ours
        p.on_record(PositionRecord::moved(3, FINAL), Arrival::at(now));
        assert_eq!(p.shared.finals_seen.load(Ordering::Acquire), 2);
        // A regular position of 3 after its final one.
        p.on_record(PositionRecord::moved(3, encode_seq(1)), Arrival::at(now));
        assert_eq!(p.shared.finals_seen.load(Ordering::Acquire), 1);
        assert_eq!(p.outcome.anomalies.final_regressed, 1);
        p.on_record(PositionRecord::leave(2), Arrival::at(now));
        p.on_record(PositionRecord::leave(42), Arrival::at(now));
        assert_eq!(p.outcome.anomalies.peers_left, 1);
    }

    #[tokio::test]
    async fn a_read_carries_the_kernels_arrival_time_of_its_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut sender = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (receiver, _) = listener.accept().await.unwrap();
        stamp_arrivals(&receiver).unwrap();
        // The kernel turns receive timestamps on in the background (a
        // deferred static key) when the first socket asks for them.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = SystemTime::now();
        sender.write_all(b"12345678").await.unwrap();
        // Read late on purpose: the stamp is the arrival, not the read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        receiver.readable().await.unwrap();
        let mut buf = [0; 64];
        let (n, stamp) = receiver
            .try_io(Interest::READABLE, || {
                recv_stamped(receiver.as_raw_fd(), &mut buf)
            })
            .unwrap();
        let read_at = SystemTime::now();
        assert_eq!(&buf[..n], b"12345678");
        let stamp = stamp.expect("SO_TIMESTAMPNS gives a stamp");
        assert!(
            stamp >= before - Duration::from_millis(1),
            "{stamp:?} {before:?}"
        );
        assert!(
            read_at.duration_since(stamp).unwrap() >= Duration::from_millis(40),
            "the stamp is the arrival, 50 ms before the read"
        );
        // Mapped onto the generator's clock.
        let shared = Shared::new();
        let at = shared.instant_of(stamp);
        assert!(at <= Instant::now());
    }

    /// A legacy client as the read path sees it (no socket, no pacer).
    fn legacy_client(shared: Arc<Shared>) -> Client {
        Client {
            kind: Kind::Legacy,
            index: 0,
            addr: String::new(),
            ticks: mpsc::unbounded_channel().1,
            direct: None,
            shared,
            phase: watch::channel(Phase::Connect).1,
            id_tx: mpsc::unbounded_channel().0,
            limit: Arc::new(Semaphore::new(1)),
            world: None,
            sampled: true,
            protocol_version: shared::native::PROTOCOL_VERSION,
        }
    }

    #[test]
    fn the_raw_check_flags_exactly_what_the_record_checks_flag() {
        let me = 7;
        let records = [
            PositionRecord::moved(8, Position::new(1, 1)),
            PositionRecord::moved(8, Position::new(0, 0)),
            PositionRecord::moved(7, Position::new(1, 1)),
            PositionRecord::leave(8),
            PositionRecord::leave(7),
            PositionRecord::moved(8, FINAL),
            PositionRecord::moved(8, Position::new(Position::RESERVED, 5)),
            PositionRecord::moved(8, Position::new(5, Position::RESERVED)),
            PositionRecord::moved(-1, Position::new(-1, -1)),
            PositionRecord::moved(7 + (1 << 16), Position::new(1, 1)),
        ];
        for record in records {
            assert_eq!(
                needs_a_look(&record.to_bytes(), me),
                !is_regular(record) || record.id == me,
                "{record:?}"
            );
        }
    }

    #[test]
    fn an_echo_deep_in_a_long_read_is_timed_and_every_record_counted() {
        let mut p = player(7, &[7, 8]);
        p.counting = true;
        let t0 = Instant::now();
        let mine = p.next_position(t0);
        let mut bytes = Vec::new();
        for i in 0..100 {
            if i == 70 {
                bytes.extend_from_slice(&PositionRecord::moved(7, mine).to_bytes());
            }
            bytes.extend_from_slice(&PositionRecord::moved(8, Position::new(i, 1)).to_bytes());
        }
        let taken = p.take_records(&bytes, Arrival::at(t0 + Duration::from_millis(1)));
        assert_eq!(taken, bytes.len());
        assert_eq!(p.outcome.echoes.count(), 1, "the echo in the third block");
        assert_eq!(p.outcome.records_delivered, 101);
    }

    #[test]
    fn a_record_split_across_reads_is_kept_until_its_rest_arrives() {
        let mut p = player(7, &[7, 8]);
        let client = legacy_client(Arc::clone(&p.shared));
        let t0 = Instant::now();
        let mine = p.next_position(t0);
        let mut bytes = PositionRecord::moved(8, Position::new(1, 1))
            .to_bytes()
            .to_vec();
        bytes.extend_from_slice(&PositionRecord::moved(7, mine).to_bytes());
        let (mut buf, mut codec, mut out) =
            (BytesMut::new(), FrameCodec::default(), BytesMut::new());
        let arrival = Arrival::at(t0 + Duration::from_millis(1));
        // A peer's record and the first 3 bytes of our echo: the partial
        // record waits. Then the rest of it: our echo, whole.
        for (read, waiting, echoes) in [(&bytes[..11], 3, 0), (&bytes[11..], 0, 1)] {
            client
                .take_in(read, &mut buf, &mut codec, &mut p, &mut out, arrival)
                .unwrap();
            assert_eq!(buf.len(), waiting, "bytes of a partial record kept");
            assert_eq!(p.outcome.echoes.count(), echoes);
        }
        assert_eq!(p.outcome.anomalies.echo_unknown, 0);
    }
}
