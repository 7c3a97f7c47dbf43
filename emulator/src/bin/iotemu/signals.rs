//! SIGTERM and SIGINT, listened for from startup so that a signal sent right after "ready"
//! shuts the emulator down gracefully.

/// SIGTERM and SIGINT listeners, registered when created.
pub(crate) struct ShutdownSignals {
    #[cfg(unix)]
    listeners: Vec<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    pub(crate) fn install() -> ShutdownSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listeners = [SignalKind::terminate(), SignalKind::interrupt()]
                .into_iter()
                .filter_map(|kind| signal(kind).ok())
                .collect();
            ShutdownSignals { listeners }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignals {}
        }
    }

    pub(crate) async fn wait(&mut self) {
        #[cfg(unix)]
        {
            let listeners = &mut self.listeners;
            if listeners.is_empty() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            let waits = listeners.iter_mut().map(|l| Box::pin(l.recv()));
            futures_util::future::select_all(waits).await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
