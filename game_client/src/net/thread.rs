//! The network thread: speaks the native protocol over blocking std I/O and
//! talks to the ECS only through two crossbeam channels.
//!
//! Why a thread and not async systems: Bevy frames must never wait on the
//! socket, and a plain thread with blocking reads is the simplest thing that
//! can neither freeze a frame nor be starved by one. Each connection has a
//! reader thread (decodes frames) and the supervisor (this module's loop), which
//! owns the writing half, answers keep-alive pings, measures RTT, and reconnects
//! with backoff when the connection is lost. Between the socket and the rest of
//! the thread sits the link conditioner ([`super::conditioner`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};
use shared::native::{ClientMessage, FrameCodec, PROTOCOL_VERSION, ServerMessage, encode_frame};
use tokio_util::codec::Decoder;

use super::conditioner::{DelayLine, LinkConditions};
pub use super::event::NetEvent;
use super::outbox::{EVENT_CHANNEL_CAPACITY, EcsGone, Outbox};

/// First reconnect delay; doubles after each failed attempt.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a TCP connect may take before we call the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A write blocked this long means the server stopped reading: reconnect.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Period of the supervisor's housekeeping tick (traffic report).
const TICK_PERIOD: Duration = Duration::from_millis(250);
/// We send a `Ping` every this many ticks (1 s) to measure RTT.
const PING_EVERY_TICKS: u32 = 4;
/// Unanswered pings older than this are forgotten.
const PING_FORGET_AFTER: Duration = Duration::from_secs(10);
/// Size of one socket read.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Commands the channel from the ECS holds at most: a few a frame (our
/// position, a view, a query), so this is seconds of frames while a write
/// is stuck (until [`WRITE_TIMEOUT`]); past it a command is dropped.
pub const COMMAND_CHANNEL_CAPACITY: usize = 1024;
/// Decoded frames the reader may get ahead of the supervisor; past it the
/// reader waits, and the kernel's socket buffer then the server's queue
/// (which coalesces) take the backlog.
const INBOUND_CAPACITY: usize = 1024;
/// While the channel to the ECS is full, the supervisor tries again this
/// often.
const FLUSH_RETRY: Duration = Duration::from_millis(5);

/// What the ECS asks the network thread to do.
#[derive(Debug, Clone, PartialEq)]
pub enum NetCommand {
    /// Send this message to the server (dropped while offline: stale by the
    /// next connection, and the ECS re-sends its position after `Welcome`).
    Send(ClientMessage),
    /// Change the link conditioner (both directions, from now on).
    SetLinkConditions(LinkConditions),
    /// Say `Bye` and stop the thread (dropping every sender does the same).
    Shutdown,
}

/// The ECS ends of the two channels plus the thread handle.
pub struct NetworkLink {
    pub events: Receiver<NetEvent>,
    pub commands: Sender<NetCommand>,
    pub thread: JoinHandle<()>,
    /// The most the thread has held for the ECS at once: position entries
    /// plus queued events of its [`Outbox`] (for tests and measurements).
    pub outbox_peak: Arc<AtomicUsize>,
}

/// Starts the network thread for `target` (`HOST:PORT`), playing as `name`,
/// with the link conditioner set to `conditions`.
pub fn spawn_network_thread(
    target: String,
    name: String,
    conditions: LinkConditions,
) -> std::io::Result<NetworkLink> {
    let (event_tx, event_rx) = crossbeam_channel::bounded(EVENT_CHANNEL_CAPACITY);
    let (command_tx, command_rx) = crossbeam_channel::bounded(COMMAND_CHANNEL_CAPACITY);
    let outbox_peak = Arc::new(AtomicUsize::new(0));
    let peak = Arc::clone(&outbox_peak);
    let thread = std::thread::Builder::new()
        .name("net".into())
        .spawn(move || {
            let mut conditions = conditions.clamped();
            let ends = Ends {
                events: &event_tx,
                commands: &command_rx,
                outbox_peak: &peak,
            };
            run_supervisor(&target, &name, &mut conditions, ends);
        })?;
    Ok(NetworkLink {
        events: event_rx,
        commands: command_tx,
        thread,
        outbox_peak,
    })
}

/// How a connection ended.
enum SessionEnd {
    /// Lost or refused: reconnect after `reason` is shown.
    Lost { reason: String, welcomed: bool },
    /// The ECS asked us to stop (or went away).
    Stop,
}

/// The thread's ends of its channels to the ECS.
#[derive(Clone, Copy)]
struct Ends<'a> {
    events: &'a Sender<NetEvent>,
    commands: &'a Receiver<NetCommand>,
    outbox_peak: &'a AtomicUsize,
}

fn run_supervisor(target: &str, name: &str, conditions: &mut LinkConditions, ends: Ends) {
    let Ends {
        events, commands, ..
    } = ends;
    let mut backoff = RECONNECT_BACKOFF_MIN;
    loop {
        if events
            .send(NetEvent::Connecting {
                target: target.to_owned(),
            })
            .is_err()
        {
            return;
        }
        let reason = match connect(target) {
            Ok(stream) => match run_session(stream, name, conditions, ends) {
                SessionEnd::Stop => return,
                SessionEnd::Lost { reason, welcomed } => {
                    if welcomed {
                        backoff = RECONNECT_BACKOFF_MIN;
                    }
                    reason
                }
            },
            Err(e) => format!("cannot connect to {target}: {e}"),
        };
        if events
            .send(NetEvent::Disconnected {
                reason,
                retry_in: backoff,
            })
            .is_err()
        {
            return;
        }
        if !wait_for_retry(commands, conditions, backoff) {
            return;
        }
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

/// Sleeps `delay` while discarding messages (keeping conditioner changes);
/// false if we must stop instead.
fn wait_for_retry(
    commands: &Receiver<NetCommand>,
    conditions: &mut LinkConditions,
    delay: Duration,
) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match commands.recv_timeout(left) {
            Ok(NetCommand::Shutdown) | Err(RecvTimeoutError::Disconnected) => return false,
            Ok(NetCommand::SetLinkConditions(new)) => *conditions = new.clamped(),
            // Positions and queries made while offline are stale by the next
            // connection; the ECS re-sends its position after `Welcome`.
            Ok(NetCommand::Send(_)) => {}
            Err(RecvTimeoutError::Timeout) => return true,
        }
    }
}

fn connect(target: &str) -> std::io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = target.to_socket_addrs()?.collect();
    let mut last_error = std::io::Error::new(ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok(stream);
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// What the reader thread hands to the supervisor.
enum Inbound {
    Message { message: ServerMessage, bytes: u64 },
    Closed(String),
}

/// The writing half of a session.
struct Writer {
    stream: TcpStream,
    buffer: BytesMut,
}

impl Writer {
    fn send(&mut self, message: &ClientMessage) -> Result<(), String> {
        self.buffer.clear();
        encode_frame(message, &mut self.buffer).map_err(|e| format!("cannot encode: {e}"))?;
        self.stream
            .write_all(&self.buffer)
            .map_err(|e| format!("write failed: {e}"))
    }
}

fn run_session(
    stream: TcpStream,
    name: &str,
    conditions: &mut LinkConditions,
    ends: Ends,
) -> SessionEnd {
    let Ends {
        events, commands, ..
    } = ends;
    let lost = |reason: String, welcomed: bool| SessionEnd::Lost { reason, welcomed };
    let read_half = match stream.try_clone() {
        Ok(read_half) => read_half,
        Err(e) => return lost(format!("cannot clone socket: {e}"), false),
    };
    let (inbound_tx, inbound_rx) = crossbeam_channel::bounded(INBOUND_CAPACITY);
    let reader = match std::thread::Builder::new()
        .name("net-reader".into())
        .spawn(move || read_frames(read_half, &inbound_tx))
    {
        Ok(reader) => reader,
        Err(e) => return lost(format!("cannot start reader: {e}"), false),
    };
    let writer = Writer {
        stream,
        buffer: BytesMut::with_capacity(256),
    };
    let mut session = Session {
        writer,
        conditions,
        rng: rand::rng(),
        to_server: DelayLine::default(),
        from_server: DelayLine::default(),
        welcomed: false,
        next_nonce: 1,
        pings: Vec::new(),
        traffic_bytes: 0,
        goodbye: None,
        outbox: Outbox::default(),
        outbox_peak: ends.outbox_peak,
    };
    let mut end = session.drive(name, &inbound_rx, events, commands);
    // Unblocks the reader's `read`, so joining it cannot hang.
    let _ = session.writer.stream.shutdown(Shutdown::Both);
    drop(inbound_rx);
    let _ = reader.join();
    // What the server said before a lost connection still reaches the ECS,
    // in order, before the news that it was lost. (When stopping, nobody
    // waits for it: the ECS is going away.)
    if matches!(end, SessionEnd::Lost { .. }) && session.outbox.flush_all(events).is_err() {
        end = SessionEnd::Stop;
    }
    end
}

/// What a session exchanges with the server and the ECS, and the conditioner's
/// two delay lines between them.
struct Session<'a> {
    writer: Writer,
    conditions: &'a mut LinkConditions,
    rng: rand::rngs::ThreadRng,
    /// Messages on their (simulated) way to the server.
    to_server: DelayLine<ClientMessage>,
    /// Messages on their (simulated) way from the server, with their size.
    from_server: DelayLine<(ServerMessage, u64)>,
    welcomed: bool,
    next_nonce: u64,
    /// Pings in flight: nonce and when they left (entered the delay line).
    pings: Vec<(u64, Instant)>,
    traffic_bytes: u64,
    goodbye: Option<String>,
    /// What waits for room in the channel to the ECS.
    outbox: Outbox,
    outbox_peak: &'a AtomicUsize,
}

/// Why a step of the session stops it.
enum Stop {
    Lost(String),
    /// The ECS is gone or asked us to stop.
    Quit,
}

impl From<EcsGone> for Stop {
    fn from(_: EcsGone) -> Stop {
        Stop::Quit
    }
}

impl Session<'_> {
    fn drive(
        &mut self,
        name: &str,
        inbound: &Receiver<Inbound>,
        events: &Sender<NetEvent>,
        commands: &Receiver<NetCommand>,
    ) -> SessionEnd {
        let hello = ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            name: name.to_owned(),
        };
        let result = self
            .send(hello)
            .and_then(|()| self.run(inbound, events, commands));
        match result {
            Ok(()) | Err(Stop::Quit) => {
                let _ = self.writer.send(&ClientMessage::Bye);
                SessionEnd::Stop
            }
            Err(Stop::Lost(reason)) => SessionEnd::Lost {
                reason,
                welcomed: self.welcomed,
            },
        }
    }

    fn run(
        &mut self,
        inbound: &Receiver<Inbound>,
        events: &Sender<NetEvent>,
        commands: &Receiver<NetCommand>,
    ) -> Result<(), Stop> {
        let ticker = crossbeam_channel::tick(TICK_PERIOD);
        let mut ticks: u32 = 0;
        loop {
            let next_due = match (self.to_server.next_due(), self.from_server.next_due()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timer = match next_due {
                Some(at) => crossbeam_channel::at(at),
                None => crossbeam_channel::never(),
            };
            let retry = if self.outbox.is_empty() {
                crossbeam_channel::never()
            } else {
                crossbeam_channel::after(FLUSH_RETRY)
            };
            select! {
                recv(inbound) -> inbound => match inbound {
                    Ok(Inbound::Message { message, bytes }) => self.receive(message, bytes),
                    Ok(Inbound::Closed(reason)) => {
                        // What the server said before closing still counts
                        // (its Goodbye above all), delayed or not.
                        while let Some(instant) = self.from_server.next_due() {
                            if let Some((message, _)) = self.from_server.pop_due(instant) {
                                self.handle(message)?;
                            }
                        }
                        let reason = match self.goodbye.take() {
                            Some(said) => format!("server said goodbye: {said}"),
                            None => reason,
                        };
                        return Err(Stop::Lost(reason));
                    }
                    Err(_) => return Err(Stop::Lost("reader stopped".into())),
                },
                recv(commands) -> command => match command {
                    Ok(NetCommand::Send(message)) => self.send(message)?,
                    Ok(NetCommand::SetLinkConditions(new)) => {
                        *self.conditions = new.clamped();
                    }
                    Ok(NetCommand::Shutdown) | Err(_) => return Err(Stop::Quit),
                },
                recv(ticker) -> _ => {
                    ticks = ticks.wrapping_add(1);
                    self.tick(ticks)?;
                }
                recv(timer) -> _ => {}
                recv(retry) -> _ => {}
            }
            self.release_due()?;
            self.outbox.flush(events)?;
        }
    }

    /// Keeps `event` for the ECS (see [`Outbox`]), noting the high-water mark.
    fn pass_on(&mut self, event: NetEvent) {
        self.outbox.push(event);
        let (positions, queued) = self.outbox.held();
        self.outbox_peak
            .fetch_max(positions + queued, Ordering::Relaxed);
    }

    /// A decoded frame from the reader: into the inbound delay line (or dropped).
    fn receive(&mut self, message: ServerMessage, bytes: u64) {
        // Bytes count when they reach us, dropped or not: that is the traffic.
        self.traffic_bytes += bytes;
        if matches!(message, ServerMessage::Positions(_)) && self.conditions.drops(&mut self.rng) {
            return;
        }
        let delay = self.conditions.sample_delay(&mut self.rng);
        self.from_server
            .push((message, bytes), Instant::now(), delay);
    }

    /// A message for the server: into the outbound delay line (or dropped).
    fn send(&mut self, message: ClientMessage) -> Result<(), Stop> {
        if matches!(message, ClientMessage::MyPosition(_)) && self.conditions.drops(&mut self.rng) {
            return Ok(());
        }
        let delay = self.conditions.sample_delay(&mut self.rng);
        self.to_server.push(message, Instant::now(), delay);
        Ok(())
    }

    /// Hands on whatever the conditioner has held long enough.
    fn release_due(&mut self) -> Result<(), Stop> {
        let now = Instant::now();
        while let Some(message) = self.to_server.pop_due(now) {
            self.writer.send(&message).map_err(Stop::Lost)?;
        }
        while let Some((message, _bytes)) = self.from_server.pop_due(now) {
            self.handle(message)?;
        }
        Ok(())
    }

    /// A server message after the conditioner: answered here or passed on.
    fn handle(&mut self, message: ServerMessage) -> Result<(), Stop> {
        let event = match message {
            ServerMessage::Welcome { .. } => {
                self.welcomed = true;
                Some(NetEvent::Server(message))
            }
            ServerMessage::Rejected { reason, .. } => {
                return Err(Stop::Lost(format!("rejected by the server: {reason}")));
            }
            ServerMessage::Ping { nonce } => {
                self.send(ClientMessage::Pong { nonce })?;
                None
            }
            ServerMessage::Pong { nonce } => {
                let sent = self.pings.iter().position(|(n, _)| *n == nonce);
                sent.map(|index| NetEvent::Rtt(self.pings.swap_remove(index).1.elapsed()))
            }
            ServerMessage::Goodbye { reason } => {
                self.goodbye = Some(reason);
                None
            }
            other => Some(NetEvent::Server(other)),
        };
        if let Some(event) = event {
            self.pass_on(event);
        }
        Ok(())
    }

    /// Housekeeping: the traffic report and a ping every second.
    fn tick(&mut self, ticks: u32) -> Result<(), Stop> {
        if self.traffic_bytes > 0 {
            let bytes = std::mem::take(&mut self.traffic_bytes);
            self.pass_on(NetEvent::Traffic { bytes });
        }
        if self.welcomed && ticks.is_multiple_of(PING_EVERY_TICKS) {
            self.pings
                .retain(|(_, sent)| sent.elapsed() < PING_FORGET_AFTER);
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            self.pings.push((nonce, Instant::now()));
            self.send(ClientMessage::Ping { nonce })?;
        }
        Ok(())
    }
}

/// Reads and decodes frames until the stream ends or is corrupt.
fn read_frames(mut stream: TcpStream, inbound: &Sender<Inbound>) {
    let mut codec = FrameCodec::<ServerMessage>::default();
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES * 4);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        loop {
            let before = buffer.len();
            match codec.decode(&mut buffer) {
                Ok(Some(message)) => {
                    let bytes = (before - buffer.len()) as u64;
                    if inbound.send(Inbound::Message { message, bytes }).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = inbound.send(Inbound::Closed(format!("corrupt stream: {e}")));
                    return;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                let _ = inbound.send(Inbound::Closed("the server closed the connection".into()));
                return;
            }
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = inbound.send(Inbound::Closed(format!("read failed: {e}")));
                return;
            }
        }
    }
}
