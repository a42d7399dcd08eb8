//! The network thread: speaks the native protocol over blocking std I/O and
//! talks to the ECS only through two crossbeam channels.
//!
//! Why a thread and not async systems: Bevy frames must never wait on the
//! socket, and a plain thread with blocking reads is the simplest thing that
//! can neither freeze a frame nor be starved by one. Each connection has a
//! reader thread (decodes frames) and the supervisor (this module's loop), which
//! owns the writing half, answers keep-alive pings, measures RTT, and reconnects
//! with backoff when the connection is lost.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};
use shared::ClientId;
use shared::legacy::Position;
use shared::math::{MathOp, MathStatus};
use shared::native::{
    ClientMessage, FrameCodec, PROTOCOL_VERSION, PlayerInfo, PlayerPosition, PlayerState,
    ServerMessage, encode_frame,
};
use tokio_util::codec::Decoder;

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

/// What the network thread tells the ECS.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// A connection attempt to `target` starts.
    Connecting {
        target: String,
    },
    /// The handshake succeeded: we are player `id`.
    Welcome {
        id: ClientId,
        server: String,
    },
    /// The authoritative full view; replaces everything we knew.
    Snapshot(Vec<PlayerState>),
    Joined(PlayerInfo),
    Left(ClientId),
    Positions(Vec<PlayerPosition>),
    MathAnswer {
        request_id: u32,
        status: MathStatus,
        value: f64,
    },
    /// One round-trip time sample (our `Ping` → the server's `Pong`).
    Rtt(Duration),
    /// Bytes received from the server since the previous report (frames incl. headers).
    Traffic {
        bytes: u64,
    },
    /// The connection is gone (or never came up); the next attempt is in `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
}

/// What the ECS asks the network thread to do.
#[derive(Debug, Clone, PartialEq)]
pub enum NetCommand {
    MyPosition(Position),
    MathQuery {
        request_id: u32,
        op: MathOp,
        a: i16,
        b: i16,
    },
    /// Say `Bye` and stop the thread (dropping every sender does the same).
    Shutdown,
}

/// The ECS ends of the two channels plus the thread handle.
pub struct NetworkLink {
    pub events: Receiver<NetEvent>,
    pub commands: Sender<NetCommand>,
    pub thread: JoinHandle<()>,
}

/// Starts the network thread for `target` (`HOST:PORT`), playing as `name`.
pub fn spawn_network_thread(target: String, name: String) -> std::io::Result<NetworkLink> {
    let (event_tx, event_rx) = crossbeam_channel::unbounded();
    let (command_tx, command_rx) = crossbeam_channel::unbounded();
    let thread = std::thread::Builder::new()
        .name("net".into())
        .spawn(move || run_supervisor(&target, &name, &event_tx, &command_rx))?;
    Ok(NetworkLink {
        events: event_rx,
        commands: command_tx,
        thread,
    })
}

/// How a connection ended.
enum SessionEnd {
    /// Lost or refused: reconnect after `reason` is shown.
    Lost { reason: String, welcomed: bool },
    /// The ECS asked us to stop (or went away).
    Stop,
}

fn run_supervisor(
    target: &str,
    name: &str,
    events: &Sender<NetEvent>,
    commands: &Receiver<NetCommand>,
) {
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
            Ok(stream) => match run_session(stream, name, events, commands) {
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
        if !wait_for_retry(commands, backoff) {
            return;
        }
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

/// Sleeps `delay` while discarding commands; false if we must stop instead.
fn wait_for_retry(commands: &Receiver<NetCommand>, delay: Duration) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match commands.recv_timeout(left) {
            Ok(NetCommand::Shutdown) | Err(RecvTimeoutError::Disconnected) => return false,
            // Positions and queries made while offline are stale by the next
            // connection; the ECS re-sends its position after `Welcome`.
            Ok(_) => {}
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
    events: &Sender<NetEvent>,
    commands: &Receiver<NetCommand>,
) -> SessionEnd {
    let lost = |reason: String, welcomed: bool| SessionEnd::Lost { reason, welcomed };
    let read_half = match stream.try_clone() {
        Ok(read_half) => read_half,
        Err(e) => return lost(format!("cannot clone socket: {e}"), false),
    };
    let (inbound_tx, inbound_rx) = crossbeam_channel::unbounded();
    let reader = match std::thread::Builder::new()
        .name("net-reader".into())
        .spawn(move || read_frames(read_half, &inbound_tx))
    {
        Ok(reader) => reader,
        Err(e) => return lost(format!("cannot start reader: {e}"), false),
    };
    let mut writer = Writer {
        stream,
        buffer: BytesMut::with_capacity(256),
    };
    let end = drive_session(&mut writer, name, &inbound_rx, events, commands);
    // Unblocks the reader's `read`, so joining it cannot hang.
    let _ = writer.stream.shutdown(Shutdown::Both);
    let _ = reader.join();
    end
}

fn drive_session(
    writer: &mut Writer,
    name: &str,
    inbound: &Receiver<Inbound>,
    events: &Sender<NetEvent>,
    commands: &Receiver<NetCommand>,
) -> SessionEnd {
    let mut welcomed = false;
    let lost = |reason: String, welcomed: bool| SessionEnd::Lost { reason, welcomed };
    let hello = ClientMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        name: name.to_owned(),
    };
    if let Err(reason) = writer.send(&hello) {
        return lost(reason, welcomed);
    }
    let ticker = crossbeam_channel::tick(TICK_PERIOD);
    let mut ticks: u32 = 0;
    let mut next_nonce: u64 = 1;
    let mut pings: Vec<(u64, Instant)> = Vec::new();
    let mut traffic_bytes: u64 = 0;
    let mut goodbye: Option<String> = None;
    loop {
        select! {
            recv(inbound) -> inbound => {
                let (message, bytes) = match inbound {
                    Ok(Inbound::Message { message, bytes }) => (message, bytes),
                    Ok(Inbound::Closed(reason)) => {
                        let reason = match goodbye.take() {
                            Some(said) => format!("server said goodbye: {said}"),
                            None => reason,
                        };
                        return lost(reason, welcomed);
                    }
                    Err(_) => return lost("reader stopped".into(), welcomed),
                };
                traffic_bytes += bytes;
                let event = match message {
                    ServerMessage::Welcome { id, server, .. } => {
                        welcomed = true;
                        Some(NetEvent::Welcome { id, server })
                    }
                    ServerMessage::Rejected { reason, .. } => {
                        return lost(format!("rejected by the server: {reason}"), welcomed);
                    }
                    ServerMessage::Snapshot { players } => Some(NetEvent::Snapshot(players)),
                    ServerMessage::PlayerJoined(info) => Some(NetEvent::Joined(info)),
                    ServerMessage::PlayerLeft { id } => Some(NetEvent::Left(id)),
                    ServerMessage::Positions(positions) => Some(NetEvent::Positions(positions)),
                    ServerMessage::MathAnswer { request_id, status, value } => {
                        Some(NetEvent::MathAnswer { request_id, status, value })
                    }
                    ServerMessage::Ping { nonce } => {
                        if let Err(reason) = writer.send(&ClientMessage::Pong { nonce }) {
                            return lost(reason, welcomed);
                        }
                        None
                    }
                    ServerMessage::Pong { nonce } => {
                        let sent = pings.iter().position(|(n, _)| *n == nonce);
                        sent.map(|index| NetEvent::Rtt(pings.swap_remove(index).1.elapsed()))
                    }
                    ServerMessage::Goodbye { reason } => {
                        goodbye = Some(reason);
                        None
                    }
                };
                if let Some(event) = event
                    && events.send(event).is_err()
                {
                    let _ = writer.send(&ClientMessage::Bye);
                    return SessionEnd::Stop;
                }
            }
            recv(commands) -> command => {
                let message = match command {
                    Ok(NetCommand::MyPosition(position)) => ClientMessage::MyPosition(position),
                    Ok(NetCommand::MathQuery { request_id, op, a, b }) => {
                        ClientMessage::MathQuery { request_id, op, a, b }
                    }
                    Ok(NetCommand::Shutdown) | Err(_) => {
                        let _ = writer.send(&ClientMessage::Bye);
                        return SessionEnd::Stop;
                    }
                };
                if let Err(reason) = writer.send(&message) {
                    return lost(reason, welcomed);
                }
            }
            recv(ticker) -> _ => {
                ticks = ticks.wrapping_add(1);
                if traffic_bytes > 0 {
                    let bytes = std::mem::take(&mut traffic_bytes);
                    if events.send(NetEvent::Traffic { bytes }).is_err() {
                        return SessionEnd::Stop;
                    }
                }
                if welcomed && ticks.is_multiple_of(PING_EVERY_TICKS) {
                    pings.retain(|(_, sent)| sent.elapsed() < PING_FORGET_AFTER);
                    let nonce = next_nonce;
                    next_nonce += 1;
                    pings.push((nonce, Instant::now()));
                    if let Err(reason) = writer.send(&ClientMessage::Ping { nonce }) {
                        return lost(reason, welcomed);
                    }
                }
            }
        }
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
