//! The embedded default: without `--connect`, use a server on
//! `127.0.0.1:7000` if one answers, otherwise run the real server in-process
//! (on its own thread and Tokio runtime) so one command gives a working demo
//! that more windows and the Python clients can join.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use bevy::prelude::*;
use server::{Config, Server, ServerAddrs};
use tokio_util::sync::CancellationToken;

use super::bots::WanderingBots;

/// The native game port a default server listens on.
pub const DEFAULT_GAME_PORT: u16 = 7000;
/// How long we wait for an existing server to accept before starting ours.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// Worker threads of the embedded server's runtime (the machine is shared
/// with the client's own render and network threads).
const SERVER_WORKER_THREADS: usize = 2;

/// `127.0.0.1:7000`.
pub fn default_game_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_GAME_PORT))
}

/// Whether something accepts TCP connections on `addr`.
pub fn server_answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok()
}

/// A server running in this process; stopped when dropped.
pub struct EmbeddedServer {
    pub addrs: ServerAddrs,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedServer {
    /// Binds `config` now (so errors surface here) and serves on a new thread.
    pub fn start(config: Config) -> std::io::Result<EmbeddedServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SERVER_WORKER_THREADS)
            .thread_name("embedded-server")
            .enable_all()
            .build()?;
        let server = runtime.block_on(Server::bind(config))?;
        let addrs = server.local_addrs();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("embedded-server".into())
            .spawn(move || runtime.block_on(server.run(token)))?;
        Ok(EmbeddedServer {
            addrs,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The default ports on 127.0.0.1 (7000 game, 7001 test, 7002 math, 7003 positions).
    pub fn start_default() -> std::io::Result<EmbeddedServer> {
        EmbeddedServer::start(Config {
            host: Ipv4Addr::LOCALHOST.into(),
            ..Config::default()
        })
    }

    /// Every port 0 on 127.0.0.1 (tests).
    pub fn start_ephemeral() -> std::io::Result<EmbeddedServer> {
        EmbeddedServer::start(Config::ephemeral())
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// A server started here and the bots that liven it up.
pub struct LocalServer {
    // Bots first: dropped (they say Bye) before the server stops.
    pub bots: Option<WanderingBots>,
    pub server: EmbeddedServer,
}

/// Bots started with an embedded server (see [`WanderingBots`]).
pub const DEFAULT_BOTS: usize = 2;

/// Uses a server on 127.0.0.1:7000 if one answers, else starts one here,
/// with [`DEFAULT_BOTS`] wandering bots unless `bots` is false.
/// Returns the address to connect to and the server we started, if any.
pub fn ensure_local_server(bots: bool) -> (String, Option<LocalServer>) {
    let addr = default_game_addr();
    if server_answers(addr) {
        info!("a server answers on {addr}: joining it");
        return (addr.to_string(), None);
    }
    match EmbeddedServer::start_default() {
        Ok(server) => {
            let a = &server.addrs;
            let target = a.game.to_string();
            let bots = bots.then(|| WanderingBots::start(&target, DEFAULT_BOTS));
            let bot_note = match &bots {
                Some(bots) => format!(
                    "; {} wandering bots joined it (--no-bots turns them off)",
                    bots.count()
                ),
                None => String::new(),
            };
            info!(
                "no server on {addr}: started one in-process (game {}, test {}, math {}, positions {}){bot_note}",
                a.game, a.test, a.math, a.positions
            );
            (target, Some(LocalServer { bots, server }))
        }
        Err(e) => {
            // Keep going: the network thread retries and the HUD shows why.
            error!("no server on {addr} and cannot start one: {e}");
            (addr.to_string(), None)
        }
    }
}

/// The server this process runs, if any; stopped when the app exits.
#[derive(Resource)]
pub struct EmbeddedServerHandle(pub Option<LocalServer>);

/// Holds a [`LocalServer`] for the app's lifetime.
pub struct EmbeddedServerPlugin {
    server: Mutex<Option<LocalServer>>,
}

impl EmbeddedServerPlugin {
    pub fn new(server: Option<LocalServer>) -> Self {
        EmbeddedServerPlugin {
            server: Mutex::new(server),
        }
    }
}

impl Plugin for EmbeddedServerPlugin {
    fn build(&self, app: &mut App) {
        let server = self.server.lock().ok().and_then(|mut s| s.take());
        app.insert_resource(EmbeddedServerHandle(server))
            .add_systems(Last, stop_embedded_server_on_exit);
    }
}

pub fn stop_embedded_server_on_exit(
    mut exits: MessageReader<AppExit>,
    mut handle: ResMut<EmbeddedServerHandle>,
) {
    if exits.read().next().is_some()
        && let Some(local) = handle.0.take()
    {
        drop(local.bots);
        info!("stopping the embedded server");
        local.server.stop();
    }
}
