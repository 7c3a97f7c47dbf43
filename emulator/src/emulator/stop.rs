//! Stopping an emulator, in order: stop accepting, let sessions finish (dropping those that
//! outlast the shutdown timeout), then flush and close the store.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::persistence::Persistence;
use crate::shutdown::Shutdown;

/// What stopping needs, in the order it is used (mini-redis's server is the model).
pub(super) struct Stopper {
    pub(super) shutdown: Shutdown,
    /// The accept loops.
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) persistence: Arc<Persistence>,
    pub(super) timeout: Duration,
}

impl Stopper {
    pub(super) async fn stop(self) {
        // 1. Stop accepting: every accept loop ends and closes its listening socket.
        self.shutdown.begin();
        for task in self.tasks {
            let _ = task.await;
        }
        // 2–3. Sessions were told by the same signal; give them the timeout to finish.
        if !self.shutdown.drained(self.timeout).await {
            tracing::warn!(
                sessions = self.shutdown.sessions(),
                timeout_ms = self.timeout.as_millis() as u64,
                "sessions still running after the shutdown timeout; closing them"
            );
            self.shutdown.force();
            // Dropping a session's future is immediate; this only waits for the tasks to
            // be polled once more.
            self.shutdown.drained(Duration::from_secs(1)).await;
        }
        // 4. Flush and close the store, off the async workers (it may fsync).
        let persistence = self.persistence;
        let closed = tokio::task::spawn_blocking(move || persistence.close()).await;
        match closed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "closing the data directory failed"),
            Err(e) => tracing::error!(error = %e, "closing the data directory failed"),
        }
        tracing::debug!("emulator stopped");
    }
}
