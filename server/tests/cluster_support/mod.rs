//! Processes for the cluster tests: a real `nats-server` and the real server
//! binary as a node, both on loopback ports they choose themselves and
//! report in their logs (no free-port race), plus a cancel-safe legacy
//! positions client and `/proc` readings (RSS, descriptors).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{LOOPBACK_ANY_PORT, listening, strip_ansi};
use bytes::BytesMut;
use shared::legacy::{Position, PositionRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server binary: the one place that names it.
pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_gameserver");

/// Longest a process may take to start and report its ports.
pub const START_BUDGET: Duration = Duration::from_secs(10);

/// Lines a child wrote to stdout or stderr, kept for failure messages.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Reads `pipe` line by line on its own thread into `log`, sending each
/// line to `lines` as well while someone listens.
fn drain(
    pipe: impl std::io::Read + Send + 'static,
    log: Log,
    lines: std::sync::mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let line = strip_ansi(&line);
            let _ = lines.send(line.clone());
            let mut log = log.lock().unwrap();
            if log.len() < 10_000 {
                log.push(line);
            }
        }
    });
}

/// Waits for log lines until `found` has what it wants or `START_BUDGET`
/// runs out (then panics with `what` and the log).
fn scan_log<T>(
    lines: &std::sync::mpsc::Receiver<String>,
    log: &Log,
    what: &str,
    mut found: impl FnMut(&str) -> Option<T>,
) -> T {
    let deadline = Instant::now() + START_BUDGET;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(value) = found(&line) {
                    return value;
                }
            }
            Err(_) => panic!(
                "{what} not reported within {START_BUDGET:?}; log:\n{}",
                log.lock().unwrap().join("\n")
            ),
        }
    }
}

/// A `nats-server` on loopback; SIGKILLed on drop.
pub struct Nats {
    pub port: u16,
    child: Child,
}

impl Nats {
    /// Starts on a port `nats-server` chooses.
    pub fn start() -> Nats {
        Nats::start_on(None)
    }

    /// Starts on `port` (a restart) or, for `None`, a port of its choice.
    pub fn start_on(port: Option<u16>) -> Nats {
        // `-p -1`: a random free port, reported in the log.
        let port_flag = port.map_or("-1".to_owned(), |p| p.to_string());
        let mut child = match Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port_flag])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => panic!(
                "cannot start nats-server ({err}); install it (Debian: apt-get install nats-server; .ci/run does)"
            ),
        };
        let log = Log::default();
        let (tx, lines) = std::sync::mpsc::channel();
        drain(child.stderr.take().unwrap(), log.clone(), tx);
        let port = scan_log(&lines, &log, "nats-server's client port", |line| {
            let (_, addr) = line.split_once("Listening for client connections on ")?;
            addr.trim().rsplit(':').next()?.parse().ok()
        });
        Nats { port, child }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same port (the nodes keep its URL).
    pub fn restart(&mut self) {
        self.kill();
        *self = Nats::start_on(Some(self.port));
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The real server binary as a cluster node.
pub struct NodeProcess {
    pub id: u16,
    child: Child,
    /// The services' addresses, by the names it logs (`positions`, `game`, ...).
    pub addrs: HashMap<String, SocketAddr>,
    pub log: Log,
}

impl NodeProcess {
    /// Starts node `id` of world `world` on NATS `url`, every port 0; returns
    /// once it listens (after joining, or after its join timeout). The wait
    /// runs on a blocking thread, so nodes in the test's runtime keep going.
    pub async fn start(url: &str, id: u16, world: &str) -> NodeProcess {
        let (url, world) = (url.to_owned(), world.to_owned());
        tokio::task::spawn_blocking(move || NodeProcess::start_blocking(&url, id, &world))
            .await
            .expect("node start-up thread")
    }

    fn start_blocking(url: &str, id: u16, world: &str) -> NodeProcess {
        let mut child = Command::new(SERVER_BIN)
            .args(LOOPBACK_ANY_PORT)
            .args(["--cluster", url, "--node-id", &id.to_string()])
            .args(["--world", world])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let log = Log::default();
        let (tx, lines) = std::sync::mpsc::channel();
        drain(child.stdout.take().unwrap(), log.clone(), tx.clone());
        drain(child.stderr.take().unwrap(), log.clone(), tx);
        let mut addrs = HashMap::new();
        scan_log(&lines, &log, "the node's four ports", |line| {
            if let Some((service, addr)) = listening(line) {
                addrs.insert(service, addr);
            }
            (addrs.len() == 4).then_some(())
        });
        NodeProcess {
            id,
            child,
            addrs,
            log,
        }
    }

    pub fn positions(&self) -> SocketAddr {
        self.addrs["positions"]
    }

    pub fn game(&self) -> SocketAddr {
        self.addrs["game"]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: a graceful shutdown. Returns without waiting.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits up to `budget` for the process to exit; whether it did.
    pub fn wait_exit(&mut self, budget: Duration) -> bool {
        let deadline = Instant::now() + budget;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resident memory of process `pid`, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Open descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// A legacy positions client that reads records cancel-safely (bytes read
/// stay buffered), so waits can be bounded by any budget.
pub struct Legacy {
    pub stream: TcpStream,
    buf: BytesMut,
    pub id: i32,
}

impl Legacy {
    /// Connects and reads the 4-byte id greeting.
    pub async fn connect(addr: SocketAddr) -> Legacy {
        let mut stream = tokio::time::timeout(START_BUDGET, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let mut id = [0; 4];
        tokio::time::timeout(START_BUDGET, stream.read_exact(&mut id))
            .await
            .expect("an id in time")
            .expect("an id");
        let id = i32::from_le_bytes(id);
        assert!(id > 0, "ids are positive, got {id}");
        Legacy {
            stream,
            buf: BytesMut::new(),
            id,
        }
    }

    pub async fn send(&mut self, x: i16, y: i16) {
        self.stream
            .write_all(&Position::new(x, y).to_bytes())
            .await
            .expect("send a position");
    }

    /// The next record, or `None` if `budget` passes first. Panics if the
    /// server closed the connection.
    pub async fn next_within(&mut self, budget: Duration) -> Option<PositionRecord> {
        self.record_within(budget, |_| true).await
    }

    /// The first record within `budget` that `wanted` accepts.
    pub async fn record_within(
        &mut self,
        budget: Duration,
        mut wanted: impl FnMut(&PositionRecord) -> bool,
    ) -> Option<PositionRecord> {
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            while self.buf.len() >= PositionRecord::SIZE {
                let bytes = self.buf.split_to(PositionRecord::SIZE);
                let record = PositionRecord::from_bytes(bytes[..].try_into().expect("one record"));
                if wanted(&record) {
                    return Some(record);
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) => panic!("player {} was disconnected", self.id),
                Ok(Ok(_)) => {}
                Ok(Err(err)) => panic!("read: {err}"),
            }
        }
    }

    pub async fn expect(
        &mut self,
        budget: Duration,
        what: &str,
        wanted: impl FnMut(&PositionRecord) -> bool,
    ) -> PositionRecord {
        self.record_within(budget, wanted)
            .await
            .unwrap_or_else(|| panic!("player {} never got {what} within {budget:?}", self.id))
    }

    /// Moves to (x, y) until `watcher` sees it there (the first moves may go
    /// out before the nodes have found each other).
    pub async fn move_until_seen_by(
        &mut self,
        watcher: &mut Legacy,
        (x, y): (i16, i16),
        budget: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + budget;
        let id = self.id;
        loop {
            self.send(x, y).await;
            let seen = watcher
                .record_within(Duration::from_millis(300), |r| {
                    r.id == id && (r.x, r.y) == (x, y)
                })
                .await;
            if seen.is_some() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "player {id} at ({x}, {y}) never reached player {}",
                watcher.id
            );
        }
    }

    /// The world as a newcomer sees it: every record of the snapshot up to
    /// this client's own sentinel move (records reach a client in order, so
    /// the sentinel's echo ends what was there before), latest wins, leave
    /// markers remove. Its own id is left out.
    pub async fn snapshot(&mut self, budget: Duration) -> HashMap<i32, (i16, i16)> {
        const SENTINEL: (i16, i16) = (12_345, -12_345);
        self.send(SENTINEL.0, SENTINEL.1).await;
        let mut world = HashMap::new();
        let me = self.id;
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let record = self
                .next_within(left)
                .await
                .unwrap_or_else(|| panic!("no sentinel echo for {me} within {budget:?}"));
            if record.id == me {
                if (record.x, record.y) == SENTINEL {
                    return world;
                }
            } else if record.is_leave() {
                world.remove(&record.id);
            } else {
                world.insert(record.id, (record.x, record.y));
            }
        }
    }
}
