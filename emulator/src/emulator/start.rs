//! Starting an emulator, in named steps: serve the control port (`/health` says "starting"),
//! load the fixtures, build the domain, restore the stored state, bind every listener, spawn
//! the transports, then report ready. Each step is a function of its own file in this
//! module; this file only puts them in order.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::builder::EmulatorBuilder;
use super::domain::Domain;
use super::handle::{Emulator, EmulatorState};
use super::listeners::{Listeners, bind_all};
use super::stop::Stopper;
use super::{StartError, restore, transports};
use crate::control;
use crate::fixtures::FixtureSet;
use crate::net::ConnectionLimit;
use crate::shutdown::Shutdown;

impl EmulatorBuilder {
    /// Loads fixtures, generates TLS material, binds every listener and starts serving.
    pub async fn start(self) -> Result<Emulator, StartError> {
        self.start_control_first().await?.finish().await
    }

    /// The first half of [`EmulatorBuilder::start`]: binds and serves the control port (when
    /// one is configured), whose `/health` answers 503 until [`Starting::finish`] has bound
    /// every other listener. A supervisor polling `/health` thus sees "starting", not a
    /// refused connection.
    pub async fn start_control_first(mut self) -> Result<Starting, StartError> {
        let shutdown = Shutdown::new();
        let readiness = control::Readiness::default();
        let control = match self.control_port {
            Some(port) => {
                let listener = bind_all(&[self.control_bind], &[], port, "control").await?;
                let listener = listener
                    .into_iter()
                    .next()
                    .ok_or_else(|| StartError::Bind {
                        addr: SocketAddr::new(self.control_bind, port),
                        what: "control",
                        source: std::io::Error::other("no listener"),
                        hint: String::new(),
                    })?;
                let addr = listener.local_addr().ok();
                let access = control::ControlAccess::decide(
                    self.control_bind.is_loopback(),
                    self.control_token.take(),
                );
                self.control_token = access.token().map(str::to_owned);
                let task = control::spawn(
                    listener,
                    readiness.clone(),
                    access,
                    ConnectionLimit::new(self.max_connections.control),
                    shutdown.signal(),
                );
                Some((addr, task))
            }
            None => None,
        };
        Ok(Starting {
            builder: self,
            control,
            readiness,
            shutdown,
        })
    }
}

/// An emulator half started by [`EmulatorBuilder::start_control_first`]: the control port
/// serves (503 on `/health`), nothing else is bound yet. Dropping it stops the control port.
pub struct Starting {
    builder: EmulatorBuilder,
    control: Option<(Option<SocketAddr>, JoinHandle<()>)>,
    readiness: control::Readiness,
    shutdown: Shutdown,
}

impl Starting {
    /// Where the control port listens, when one is configured.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().and_then(|(addr, _)| *addr)
    }

    /// Loads fixtures, generates TLS material, binds the MQTT, AMQP and HTTPS listeners and
    /// starts serving; `/health` answers 200 from then on.
    pub async fn finish(self) -> Result<Emulator, StartError> {
        let Starting {
            builder,
            control,
            readiness,
            shutdown,
        } = self;
        let mut fixtures = FixtureSet::load(&builder.fixtures)?;
        let persistence = super::domain::open_store(&builder)?;
        let domain = Domain::build(&builder, &fixtures, &persistence)?;
        super::seed::load_fixtures(&domain, &mut fixtures)?;
        if let Some(throttles) = builder.azure_throttles {
            super::seed::install_azure_throttles(&domain, throttles)?;
        }
        let names = server_names(&builder, &fixtures);
        // The stored state goes over the fixtures; then changes start being saved.
        let tls = restore::restore(&domain, &persistence, &names).await?;
        let listeners = Listeners::bind(&builder, &names).await?;
        let mut transports = transports::spawn(&builder, &domain, &tls, listeners, &shutdown);

        let state = Arc::new(EmulatorState {
            dps: domain.dps,
            hubs: domain.hubs,
            tls,
            mqtt_addrs: transports.mqtt_addrs.clone(),
            amqp_addrs: transports.amqp_addrs.clone(),
            control_token: builder.control_token.clone(),
        });
        // Every listener is bound: the control port may now report healthy.
        readiness.set_ready(state.clone());
        let control_addr = control.and_then(|(addr, task)| {
            transports.tasks.push(task);
            addr
        });
        Ok(Emulator {
            state,
            mqtt_addrs: transports.mqtt_addrs,
            amqp_addrs: transports.amqp_addrs,
            https_addrs: transports.https_addrs,
            control_addr,
            stopper: Some(Stopper {
                shutdown,
                tasks: transports.tasks,
                persistence,
                timeout: builder.shutdown_timeout,
            }),
        })
    }
}

/// The names the server certificate is made for: `--hostname`s, the DPS host, every hub.
fn server_names(builder: &EmulatorBuilder, fixtures: &FixtureSet) -> Vec<String> {
    let mut names = builder.hostnames.clone();
    names.push(fixtures.dps.host_name.clone());
    names.extend(fixtures.hubs.iter().map(|h| h.host_name.clone()));
    names
}
