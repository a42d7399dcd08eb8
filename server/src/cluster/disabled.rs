//! A build without the `cluster` feature: `--cluster` is a clear error.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ClusterConfig, ClusterError, ClusterMetrics};
use crate::world::World;

/// No cluster can exist in this build.
#[derive(Debug)]
pub enum Cluster {}

impl Cluster {
    pub async fn connect(
        config: ClusterConfig,
        _metrics: ClusterMetrics,
    ) -> Result<Cluster, ClusterError> {
        Err(ClusterError::NotBuilt { url: config.url })
    }

    pub fn spawn(
        self,
        _world: Arc<World>,
        _tracker: &TaskTracker,
        _shutdown: CancellationToken,
    ) -> watch::Receiver<bool> {
        match self {}
    }
}
