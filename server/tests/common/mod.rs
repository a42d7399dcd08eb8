//! Helpers for the wire-level tests: a real server on loopback port 0, raw
//! sockets, and deadlines so a broken rule fails instead of hanging.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use server::{Config, Server, ServerAddrs, Shared};
use shared::ClientId;
use shared::legacy::{Position, PositionRecord};
use shared::native::{ClientMessage, FrameCodec, PROTOCOL_VERSION, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// The server binary under test: the one place its name is spelled.
pub fn server_binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_gameserver"))
}

/// Every line a spawned server logged so far, ANSI colours stripped.
pub type Log = Arc<std::sync::Mutex<Vec<String>>>;

/// The server's flags for loopback with every service on a port the
/// system picks (each is read from its "listening" log line).
pub const LOOPBACK_ANY_PORT: [&str; 10] = [
    "--host",
    "127.0.0.1",
    "--game-port",
    "0",
    "--test-port",
    "0",
    "--math-port",
    "0",
    "--positions-port",
    "0",
];

/// Starts the server binary through `command` (the binary itself, or a
/// wrapper such as `prlimit` whose last argument it is) on loopback with
/// every port 0 and `extra` flags, and waits for its four "listening" lines.
/// Returns it, the address of each service by name, and every line it logs
/// (kept as it runs).
pub async fn spawn_server(
    mut command: tokio::process::Command,
    extra: &[&str],
) -> (
    tokio::process::Child,
    std::collections::HashMap<String, std::net::SocketAddr>,
    Log,
) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .args(LOOPBACK_ANY_PORT)
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("server binary starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addrs = std::collections::HashMap::new();
    let log = Log::default();
    while addrs.len() < 4 {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("start-up log in time")
            .unwrap()
            .expect("server still running");
        let line = strip_ansi(&line);
        log.lock().unwrap().push(line.clone());
        if let Some((service, addr)) = listening(&line) {
            addrs.insert(service, addr);
        }
    }
    let kept = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push(strip_ansi(&line));
        }
    });
    (child, addrs, log)
}

/// The service and address a server's "listening" log line names.
pub fn listening(line: &str) -> Option<(String, std::net::SocketAddr)> {
    if !line.contains("listening") {
        return None;
    }
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
    };
    Some((field("service")?.to_owned(), field("addr")?.parse().ok()?))
}

/// `line` without its ANSI colour codes.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The one rule for a test that needs a tool the machine may lack: with `CI`
/// set to anything non-empty, a missing tool fails the test; elsewhere the
/// test is skipped, and says so on the terminal itself (libtest captures
/// `eprintln!`, not a write to `stderr`). Call it when `tool` is missing;
/// `install` says how to get it.
pub fn skip_unless_ci(test: &str, tool: &str, install: &str) {
    if std::env::var_os("CI").is_some_and(|ci| !ci.is_empty()) {
        panic!("CI is set but {tool} is missing, so {test} cannot run: {install}");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {tool} not found ({install}; with CI set it fails instead) ***\n"
    );
}

/// Longest a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addrs: ServerAddrs,
    pub shared: Arc<Shared>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::ephemeral();
        adjust(&mut config);
        let server = Server::bind(config).await.expect("bind on loopback");
        let addrs = server.local_addrs();
        let shared = server.shared();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        TestServer {
            addrs,
            shared,
            shutdown,
            task,
        }
    }

    /// Shuts down and returns how long it took.
    pub async fn stop(self) -> Duration {
        let started = std::time::Instant::now();
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
        started.elapsed()
    }
}

/// Connects to a legacy service and reads the 4-byte id greeting.
pub async fn connect_legacy(addr: std::net::SocketAddr) -> (TcpStream, ClientId) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let id = read_i32(&mut stream).await;
    assert!(id > 0, "ids are positive, got {id}");
    (stream, id)
}

pub async fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no {len} bytes within {PATIENCE:?}"))
        .expect("read");
    buf
}

pub async fn read_i32(stream: &mut TcpStream) -> i32 {
    i32::from_le_bytes(read_exact(stream, 4).await.try_into().unwrap())
}

/// Asserts the server closes `stream` (EOF or reset) within `PATIENCE`,
/// returning whatever bytes came before the close.
pub async fn expect_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let result = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await;
    assert!(result.is_ok(), "connection still open after {PATIENCE:?}");
    rest
}

/// Asserts nothing arrives and the connection stays open for `wait`.
pub async fn expect_silence(stream: &mut TcpStream, wait: Duration) {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, stream.read(&mut byte)).await {
        Err(_) => {}
        Ok(Ok(0)) => panic!("connection closed"),
        Ok(other) => panic!("unexpected read: {other:?} {byte:?}"),
    }
}

/// Polls `condition` until it holds or `PATIENCE` runs out.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn send_position(stream: &mut TcpStream, x: i16, y: i16) {
    stream
        .write_all(&Position::new(x, y).to_bytes())
        .await
        .expect("send position");
}

pub async fn read_record(stream: &mut TcpStream) -> PositionRecord {
    let bytes = read_exact(stream, PositionRecord::SIZE).await;
    PositionRecord::from_bytes(bytes.try_into().expect("one record"))
}

/// Reads records until one satisfies `wanted`; returns it.
pub async fn read_record_until(
    stream: &mut TcpStream,
    mut wanted: impl FnMut(&PositionRecord) -> bool,
) -> PositionRecord {
    loop {
        let record = read_record(stream).await;
        if wanted(&record) {
            return record;
        }
    }
}

/// A native protocol client over a real socket.
pub struct NativeClient {
    pub framed: Framed<TcpStream, FrameCodec<ServerMessage>>,
    pub id: ClientId,
}

impl NativeClient {
    /// Connects, says Hello and reads the Welcome.
    pub async fn join(addr: std::net::SocketAddr, name: &str) -> NativeClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut framed = Framed::new(stream, FrameCodec::<ServerMessage>::default());
        framed
            .send(ClientMessage::Hello {
                protocol_version: PROTOCOL_VERSION,
                name: name.to_owned(),
            })
            .await
            .expect("send hello");
        let mut client = NativeClient { framed, id: 0 };
        match client.next().await {
            ServerMessage::Welcome {
                id,
                protocol_version,
                ..
            } => {
                assert_eq!(protocol_version, PROTOCOL_VERSION);
                client.id = id;
            }
            other => panic!("expected Welcome, got {other:?}"),
        }
        client
    }

    pub async fn send(&mut self, message: ClientMessage) {
        self.framed.send(message).await.expect("send");
    }

    pub async fn next(&mut self) -> ServerMessage {
        tokio::time::timeout(PATIENCE, self.framed.next())
            .await
            .expect("a message in time")
            .expect("connection open")
            .expect("decodable frame")
    }

    /// Skips messages until the server's `Goodbye`; returns its reason.
    pub async fn goodbye(&mut self) -> String {
        self.until(|m| match m {
            ServerMessage::Goodbye { reason } => Some(reason.clone()),
            _ => None,
        })
        .await
    }

    /// Skips messages until `pick` returns something.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&ServerMessage) -> Option<T>) -> T {
        loop {
            let message = self.next().await;
            if let Some(found) = pick(&message) {
                return found;
            }
        }
    }
}

/// Raw bytes of one native frame.
pub fn native_frame(message: &ClientMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    shared::native::encode_frame(message, &mut out).unwrap();
    out.to_vec()
}

/// Reads and discards whatever is already buffered on `stream`, without waiting.
pub fn discard_available(stream: &TcpStream) -> usize {
    let mut buf = [0u8; 65536];
    let mut total = 0;
    while let Ok(n) = stream.try_read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}

/// Bytes the server has read from clients of `service` (a label such as
/// `"positions"`), from its Prometheus counter.
pub fn received_bytes(shared: &Shared, service: &str) -> u64 {
    let needle = format!("gameserver_received_bytes_total{{service=\"{service}\"}} ");
    shared
        .metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&needle)?.trim().parse().ok())
        .unwrap_or(0)
}

/// A position no test sends otherwise, used to mark "everything before this".
pub const SENTINEL: (i16, i16) = (12_345, -12_345);

/// Asserts that `watcher` receives nothing before the sentinel position that
/// `sender` (whose id is `sender_id`, possibly the watcher itself) sends now.
/// Each client gets the world's records in order, so unlike a timed silence
/// this fails however slow the machine is, if anything was queued first.
pub async fn expect_nothing_before_sentinel(
    watcher: &mut TcpStream,
    sender: Option<&mut TcpStream>,
    sender_id: ClientId,
) {
    match sender {
        Some(sender) => send_position(sender, SENTINEL.0, SENTINEL.1).await,
        None => send_position(watcher, SENTINEL.0, SENTINEL.1).await,
    }
    assert_eq!(
        read_record(watcher).await,
        PositionRecord {
            id: sender_id,
            x: SENTINEL.0,
            y: SENTINEL.1
        },
        "a record arrived before the sentinel"
    );
}
