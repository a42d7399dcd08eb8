//! Our server, in this process, on loopback ports of its own.

use server::{Config, Server, ServerAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running server: where it listens, and how to stop it.
pub struct Running {
    pub addrs: ServerAddrs,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// Binds every service on an ephemeral loopback port and runs the server.
pub async fn serve() -> Running {
    let server = Server::bind(Config::ephemeral())
        .await
        .expect("bind on loopback");
    let addrs = server.local_addrs();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    Running {
        addrs,
        shutdown,
        task,
    }
}

impl Running {
    /// Shuts the server down and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("the server task ends");
    }
}
