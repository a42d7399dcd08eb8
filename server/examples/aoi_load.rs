//! Load test of the area of interest: many native clients, each with a
//! small `View` around its home, moving at a fixed rate; prints own-echo
//! latency, errors and how many players each client saw at most.
//!
//! Start a server, then for example:
//!
//! ```text
//! cargo run -p server -- --host 127.0.0.1
//! cargo run -p server --example aoi_load -- --addr 127.0.0.1:7000 \
//!     --clients 10000 --world-size 4000 --view 200 --rate 10 --seconds 20
//! ```

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use shared::ClientId;
use shared::legacy::Position;
use shared::native::{ClientMessage, FrameCodec, PROTOCOL_VERSION, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;

/// How far a client wanders from its home, per axis, in world units: it
/// stays well inside its fixed view.
const WANDER: i16 = 50;
/// Largest step per move, per axis, in world units.
const STEP: i16 = 5;
/// Connections opened at the same time while ramping up.
const CONNECT_CONCURRENCY: usize = 200;

#[derive(Debug, Parser)]
#[command(about = "Area-of-interest load: native clients with a View, own-echo latency")]
struct Args {
    /// Native game address of the server (loopback only).
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: SocketAddr,
    /// Native clients to run.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Homes are spread uniformly over 0..world_size on both axes.
    #[arg(long, default_value_t = 4000)]
    world_size: i16,
    /// Half extent of each client's view; 0: no View sent (full broadcast).
    #[arg(long, default_value_t = 200)]
    view: u16,
    /// Moves per second per client.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Measured seconds, after every client has connected.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[derive(Debug, Default)]
struct ClientReport {
    echoes_us: Vec<u32>,
    visible_max: usize,
    visible_end: usize,
    sent: u64,
    error: Option<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(args.addr.ip().is_loopback(), "only loopback addresses");
    let messages = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(tokio::sync::Barrier::new(args.clients + 1));
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let ramp = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let home = {
            let mut rng = rand::rng();
            Position::new(
                rng.random_range(0..args.world_size),
                rng.random_range(0..args.world_size),
            )
        };
        let (gate, ready, messages) =
            (Arc::clone(&gate), Arc::clone(&ready), Arc::clone(&messages));
        let addr = args.addr;
        let (view, rate, seconds) = (args.view, args.rate, args.seconds);
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate open");
            let connected = connect(addr, home, view).await;
            drop(permit);
            ready.wait().await;
            match connected {
                Ok((framed, id, visible)) => {
                    run(framed, id, visible, home, rate, seconds, &messages).await
                }
                Err(error) => ClientReport {
                    error: Some(error),
                    ..ClientReport::default()
                },
            }
        }));
    }
    ready.wait().await;
    let ramp = ramp.elapsed();
    let started = Instant::now();
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        reports.push(task.await.unwrap_or_else(|e| ClientReport {
            error: Some(format!("task: {e}")),
            ..ClientReport::default()
        }));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut echoes: Vec<u32> = reports.iter().flat_map(|r| r.echoes_us.clone()).collect();
    echoes.sort_unstable();
    let pct = |p: f64| {
        echoes
            .get(((echoes.len() as f64 * p) as usize).min(echoes.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    let errors: Vec<&String> = reports.iter().filter_map(|r| r.error.as_ref()).collect();
    let sent: u64 = reports.iter().map(|r| r.sent).sum();
    let visible_max = reports.iter().map(|r| r.visible_max).max().unwrap_or(0);
    let visible_mean =
        reports.iter().map(|r| r.visible_end).sum::<usize>() as f64 / reports.len().max(1) as f64;
    println!(
        "{{\"clients\":{},\"view\":{},\"rate\":{},\"seconds\":{:.1},\"ramp_s\":{:.1},\
         \"moves_sent\":{},\"echoes\":{},\"echo_p50_ms\":{:.2},\"echo_p99_ms\":{:.2},\
         \"echo_max_ms\":{:.2},\"errors\":{},\"visible_max\":{},\"visible_mean_end\":{:.1},\
         \"rx_messages_per_s\":{:.0}}}",
        args.clients,
        args.view,
        args.rate,
        elapsed,
        ramp.as_secs_f64(),
        sent,
        echoes.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
        errors.len(),
        visible_max,
        visible_mean,
        messages.load(Ordering::Relaxed) as f64 / elapsed,
    );
    for error in errors.iter().take(5) {
        eprintln!("error: {error}");
    }
}

type Connection = Framed<TcpStream, FrameCodec<ServerMessage>>;

/// Connects, sends Hello and the View (if any) in one write, waits for
/// Welcome and the first Snapshot.
async fn connect(
    addr: SocketAddr,
    home: Position,
    view: u16,
) -> Result<(Connection, ClientId, HashSet<ClientId>), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, FrameCodec::<ServerMessage>::new(16 << 20));
    let hello = ClientMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        name: String::new(),
    };
    framed
        .feed(hello)
        .await
        .map_err(|e| format!("hello: {e}"))?;
    // Sent with the Hello, the View is applied before the first snapshot,
    // which then holds only the region instead of the whole world.
    if view > 0 {
        let message = ClientMessage::View {
            center: home,
            half_extent: view,
        };
        framed
            .feed(message)
            .await
            .map_err(|e| format!("view: {e}"))?;
    }
    SinkExt::<ClientMessage>::flush(&mut framed)
        .await
        .map_err(|e| format!("hello: {e}"))?;
    let mut id = None;
    let visible = loop {
        match framed.next().await {
            Some(Ok(ServerMessage::Welcome { id: mine, .. })) => id = Some(mine),
            Some(Ok(ServerMessage::Snapshot { players })) => {
                break players.iter().map(|p| p.info.id).collect();
            }
            Some(Ok(ServerMessage::Rejected { reason, .. })) => return Err(format!("{reason}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("handshake: {e}")),
            None => return Err("closed during handshake".into()),
        }
    };
    let id = id.ok_or("Snapshot before Welcome")?;
    Ok((framed, id, visible))
}

async fn run(
    framed: Connection,
    me: ClientId,
    mut visible: HashSet<ClientId>,
    home: Position,
    rate: u32,
    seconds: u64,
    messages: &AtomicU64,
) -> ClientReport {
    let (mut sink, mut stream) = framed.split();
    let period = Duration::from_secs(1) / rate.max(1);
    let offset = Duration::from_micros(rand::rng().random_range(0..period.as_micros() as u64));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut position = home;
    let mut pending: VecDeque<(Position, Instant)> = VecDeque::new();
    let mut report = ClientReport {
        visible_max: visible.len(),
        ..ClientReport::default()
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = tick.tick() => {
                position = {
                    let mut rng = rand::rng();
                    let step = |c: i16, h: i16, d: i16| (c + d).clamp(h - WANDER, h + WANDER);
                    Position::new(
                        step(position.x, home.x, rng.random_range(-STEP..=STEP)),
                        step(position.y, home.y, rng.random_range(-STEP..=STEP)),
                    )
                };
                pending.push_back((position, Instant::now()));
                if let Err(e) = sink.send(ClientMessage::MyPosition(position)).await {
                    report.error = Some(format!("send: {e}"));
                    break;
                }
                report.sent += 1;
            }
            message = stream.next() => {
                let message = match message {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => { report.error = Some(format!("read: {e}")); break; }
                    None => { report.error = Some("closed by the server".into()); break; }
                };
                messages.fetch_add(1, Ordering::Relaxed);
                match message {
                    ServerMessage::Snapshot { players } => {
                        visible = players.iter().map(|p| p.info.id).collect();
                    }
                    ServerMessage::PlayerJoined(info) => { visible.insert(info.id); }
                    ServerMessage::PlayerLeft { id } => { visible.remove(&id); }
                    ServerMessage::Positions(moves) => {
                        for m in &moves {
                            visible.insert(m.id);
                            if m.id == me
                                && let Some(at) = pending.iter().position(|(p, _)| *p == m.position)
                            {
                                let (_, sent) = pending[at];
                                report.echoes_us.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                                pending.drain(..=at);
                            }
                        }
                    }
                    ServerMessage::Ping { nonce } => {
                        if let Err(e) = sink.send(ClientMessage::Pong { nonce }).await {
                            report.error = Some(format!("send: {e}"));
                            break;
                        }
                    }
                    ServerMessage::Goodbye { reason } => {
                        report.error = Some(format!("goodbye: {reason}"));
                        break;
                    }
                    _ => {}
                }
                report.visible_max = report.visible_max.max(visible.len());
            }
        }
    }
    report.visible_end = visible.len();
    let _ = sink.send(ClientMessage::Bye).await;
    report
}
