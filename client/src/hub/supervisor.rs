//! The task behind every hub client: it owns the current connection, routes the hub's
//! publishes ([`route`]), and replaces the connection when it is lost or its SAS token is
//! about to expire.
//!
//! ```text
//! serve ── publish ──▶ route
//!   │  ├─ connection lost ─────┐
//!   │  ├─ SAS renewal due ─────┤ (DISCONNECT first)
//!   │  └─ stop (disconnect() or the client dropped) ──▶ DISCONNECT, Closed
//!   ▼                          ▼
//! reconnect: backoff ─▶ open ─▶ restore subscriptions (routing meanwhile) ─▶ Up ─▶ serve
//!              ▲          │ refused 3 / network: retry     ┆ desired re-sync (own task)
//!              └──────────┘ refused 1,2,4,5 / untrusted TLS / attempts exhausted ─▶ Closed
//! ```
//!
//! Operations see the connection through the [`Link`] watch and only once its subscriptions
//! are restored; the public [`ConnectionState`] watch tells the application. When the task
//! ends it closes the routes, which fails waiting requests and ends the streams.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::connector::{Connector, Identity, Opened};
use super::operations::{Link, Operations};
use super::reconnect::{Failure, ReconnectPolicy, classify, jitter_seed};
use super::router::route;
use super::state::{ConnectionState, DisconnectReason};
use crate::mqtt::MqttError;

/// The running client as its handle sees it: the shared operations, the public state, and
/// the stop signal (dropping it stops the supervisor too).
#[derive(Debug)]
pub(crate) struct Supervised {
    pub(crate) core: Arc<Operations>,
    state: watch::Receiver<ConnectionState>,
    stop: watch::Sender<bool>,
}

impl Supervised {
    pub(crate) fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Resolves once the client has stopped for good.
    pub(crate) async fn closed(&self) {
        let mut state = self.state.clone();
        let _ = state
            .wait_for(|state| matches!(state, ConnectionState::Closed { .. }))
            .await;
    }

    /// Asks the supervisor to DISCONNECT and stop, and waits until it has.
    pub(crate) async fn disconnect(&self) {
        self.stop.send_replace(true);
        self.closed().await;
    }
}

/// Starts the supervisor on an already open first connection. Without a `connector` the
/// client cannot reconnect and stops at the first loss.
pub(crate) fn spawn(
    identity: Identity,
    opened: Opened,
    connector: Option<Arc<Connector>>,
    policy: ReconnectPolicy,
) -> Supervised {
    let generation = 1;
    let (link, link_rx) = watch::channel(Link::Up {
        connection: opened.connection.clone(),
        generation,
    });
    let (state, state_rx) = watch::channel(ConnectionState::Connected { generation });
    let (stop_tx, stop) = watch::channel(false);
    let core = Arc::new(Operations::new(identity, link_rx));
    let supervisor = Supervisor {
        core: core.clone(),
        link,
        state,
        connector,
        policy,
        stop,
        generation,
    };
    tokio::spawn(supervisor.run(opened));
    Supervised {
        core,
        state: state_rx,
        stop: stop_tx,
    }
}

struct Supervisor {
    core: Arc<Operations>,
    link: watch::Sender<Link>,
    state: watch::Sender<ConnectionState>,
    connector: Option<Arc<Connector>>,
    policy: ReconnectPolicy,
    stop: watch::Receiver<bool>,
    generation: u64,
}

/// Why serving one connection ended.
enum Ended {
    Stop,
    Renew,
    Lost(String),
}

/// Why restoring a new connection's subscriptions did not finish.
enum RestoreFailed {
    Stop,
    Error(MqttError),
}

/// Resolves when the application asked to stop or dropped the client.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the handle is gone, which is a stop as well.
    let _ = stop.wait_for(|stop| *stop).await;
}

fn sleep_until(at: Option<Instant>) -> tokio::time::Sleep {
    // The select guard never polls the `None` case; the far instant only satisfies the type.
    tokio::time::sleep_until(at.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400)))
}

impl Supervisor {
    async fn run(mut self, mut opened: Opened) {
        let reason = loop {
            let reason = match self.serve(&mut opened).await {
                Ended::Stop => {
                    opened.connection.disconnect().await;
                    break DisconnectReason::ClientClosed;
                }
                Ended::Renew => {
                    tracing::debug!("renewing the SAS token");
                    opened.connection.disconnect().await;
                    DisconnectReason::TokenRenewal
                }
                Ended::Lost(cause) => {
                    tracing::info!(%cause, "connection to the hub lost");
                    DisconnectReason::ConnectionLost(cause)
                }
            };
            self.link.send_replace(Link::Down);
            self.core.routes.connection_lost();
            match self.reconnect(reason).await {
                Ok(next) => opened = next,
                Err(reason) => break reason,
            }
        };
        tracing::debug!(%reason, "hub client stopped");
        self.link.send_replace(Link::Closed(reason.clone()));
        self.state.send_replace(ConnectionState::Closed { reason });
        self.core.routes.close();
    }

    /// Routes the connection's publishes until it ends, renewal is due, or a stop.
    async fn serve(&mut self, opened: &mut Opened) -> Ended {
        let weak = opened.connection.downgrade();
        let renew_at = opened.renew_at;
        loop {
            tokio::select! {
                publish = opened.incoming.recv() => match publish {
                    Some(publish) => route(&self.core.routes, &self.core.inbox, publish, &weak),
                    // The session ended and dropped its sender.
                    None => {
                        let cause = opened.connection.close_reason();
                        return Ended::Lost(cause.unwrap_or_else(|| "connection closed".into()));
                    }
                },
                () = sleep_until(renew_at), if renew_at.is_some() => return Ended::Renew,
                () = stopped(&mut self.stop) => return Ended::Stop,
            }
        }
    }

    /// Attempts new connections per the policy; the final reason when it gives up.
    async fn reconnect(
        &mut self,
        mut reason: DisconnectReason,
    ) -> Result<Opened, DisconnectReason> {
        let Some(connector) = self.connector.clone() else {
            return Err(reason);
        };
        let renewing = reason == DisconnectReason::TokenRenewal;
        // Renewal is planned, not a failure, so it happens even with reconnects disabled.
        if !renewing && !self.policy.is_enabled() {
            return Err(reason);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.state.send_replace(ConnectionState::Reconnecting {
                attempt,
                reason: reason.clone(),
            });
            let delay = if renewing && attempt == 1 {
                Duration::ZERO
            } else {
                self.policy.delay(attempt, jitter_seed())
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut self.stop) => return Err(DisconnectReason::ClientClosed),
            }
            let opened = tokio::select! {
                opened = connector.open() => opened,
                () = stopped(&mut self.stop) => return Err(DisconnectReason::ClientClosed),
            };
            let error = match opened {
                Ok(mut opened) => match self.restore(&mut opened).await {
                    Ok(()) => return Ok(opened),
                    Err(RestoreFailed::Stop) => {
                        opened.connection.disconnect().await;
                        return Err(DisconnectReason::ClientClosed);
                    }
                    Err(RestoreFailed::Error(error)) => error,
                },
                Err(error) => error,
            };
            tracing::info!(attempt, %error, "reconnecting to the hub failed");
            reason = match classify(&error) {
                Failure::Fatal(reason) => return Err(reason),
                Failure::Retry(reason) => reason,
            };
            if self.policy.exhausted(attempt) {
                return Err(reason);
            }
        }
    }

    /// Re-subscribes everything the application subscribed to (routing whatever the hub
    /// sends meanwhile, e.g. redelivered C2D), then hands the connection out and starts the
    /// desired re-sync.
    async fn restore(&mut self, opened: &mut Opened) -> Result<(), RestoreFailed> {
        let filters = self.core.wanted_subscriptions();
        let weak = opened.connection.downgrade();
        let connection = opened.connection.clone();
        let to_subscribe = filters.clone();
        let subscribe_all = async move {
            for filter in to_subscribe {
                connection.subscribe(filter).await?;
            }
            Ok::<_, MqttError>(())
        };
        tokio::pin!(subscribe_all);
        loop {
            tokio::select! {
                result = &mut subscribe_all => {
                    result.map_err(RestoreFailed::Error)?;
                    break;
                }
                Some(publish) = opened.incoming.recv() => {
                    route(&self.core.routes, &self.core.inbox, publish, &weak);
                }
                () = stopped(&mut self.stop) => return Err(RestoreFailed::Stop),
            }
        }
        self.generation += 1;
        let generation = self.generation;
        self.core.set_active_subscriptions(generation, filters);
        self.link.send_replace(Link::Up {
            connection: opened.connection.clone(),
            generation,
        });
        self.state
            .send_replace(ConnectionState::Connected { generation });
        tracing::info!(generation, "reconnected to the hub");
        let core = self.core.clone();
        tokio::spawn(async move { core.resync_desired().await });
        Ok(())
    }
}
