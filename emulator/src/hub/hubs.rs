//! Every hub the emulator serves, found by the host name a client used (case-insensitive),
//! by the `Host` header of an HTTP request, or by the name of its Event Hubs-compatible
//! endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Hub;
use super::error::HubError;
use super::file_upload::UploadStorage;
use crate::clock::ClockError;
use crate::storage::BlobStore;

/// What [`Hubs::advance_clock`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advanced {
    /// How far the emulator's clock now runs ahead of the wall clock.
    pub offset: Duration,
    /// How far the clock of connected clients' credentials runs ahead (advanced only when
    /// asked: [`Hubs::advance_clock`]).
    pub credential_offset: Duration,
    /// C2D messages that expired (or had been delivered too often) and left their queues.
    pub expired_c2d: usize,
}

/// Every hub the emulator serves, by case-insensitive host name.
pub struct Hubs {
    ordered: Vec<Arc<Hub>>,
    by_host: HashMap<String, Arc<Hub>>,
    /// The emulator's one fault registry: hub transports consult it, DPS shares it.
    faults: crate::faults::Faults,
    /// The emulator's one clock (`crate::clock`): every hub and the DPS share it.
    clock: crate::clock::Clock,
    /// The clock the remaining life of connected clients' credentials is measured in: moved
    /// only by an advance that asks for it, so a test that expires C2D messages does not also
    /// cut off every client (clients renew their tokens by their own clocks, which an advance
    /// cannot move). Never ahead of `clock`.
    credential_clock: crate::clock::Clock,
    /// The built-in blob store that hubs without a linked account upload into.
    storage: Arc<BlobStore>,
}

impl Hubs {
    pub fn new(hubs: Vec<Hub>) -> Hubs {
        Hubs::with_storage(hubs, Arc::default())
    }

    /// The hubs, sharing `storage` as their built-in blob store (each hub linked to it gets
    /// its container there).
    pub(crate) fn with_storage(hubs: Vec<Hub>, storage: Arc<BlobStore>) -> Hubs {
        let faults = crate::faults::Faults::default();
        let clock = crate::clock::Clock::default();
        let ordered: Vec<Arc<Hub>> = hubs
            .into_iter()
            .map(|mut hub| {
                hub.faults = faults.clone();
                hub.clock = clock.clone();
                hub.storage = storage.clone();
                if hub.file_upload.storage == UploadStorage::BuiltIn {
                    storage.create_container(&hub.file_upload.container);
                }
                Arc::new(hub)
            })
            .collect();
        let by_host = ordered
            .iter()
            .map(|h| (h.host_name.to_ascii_lowercase(), h.clone()))
            .collect();
        Hubs {
            ordered,
            by_host,
            faults,
            clock,
            credential_clock: crate::clock::Clock::default(),
            storage,
        }
    }

    /// The built-in blob store (`crate::storage`).
    pub fn storage(&self) -> &BlobStore {
        &self.storage
    }

    /// Injected faults (`crate::faults`), for hub and DPS operations alike.
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.faults
    }

    /// The emulator's clock (`crate::clock`), shared by every hub and the DPS.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    /// The clock connected clients' credentials age in (see the field; `crate::clock`).
    pub(crate) fn credential_clock(&self) -> &crate::clock::Clock {
        &self.credential_clock
    }

    /// Moves the emulator's clock ahead by `step` (`crate::clock`) and hands out the feedback
    /// of the C2D messages that expired by it; with `credentials`, the remaining life of
    /// connected clients' SAS tokens and certificates ages by the step too. The clocks are
    /// unchanged when the step is refused.
    pub async fn advance_clock(
        &self,
        step: Duration,
        credentials: bool,
    ) -> Result<Advanced, ClockError> {
        let offset = self.clock.advance(step)?;
        if credentials {
            // Cannot fail: the credential clock is never ahead of the one just moved.
            if let Err(e) = self.credential_clock.advance(step) {
                tracing::error!(error = %e, "the credential clock was not advanced");
            }
        }
        let credential_offset = self.credential_clock.offset();
        tracing::info!(
            step_s = step.as_secs_f64(),
            offset_s = offset.as_secs_f64(),
            credential_offset_s = credential_offset.as_secs_f64(),
            credentials,
            "the emulator's clock was advanced"
        );
        let mut expired_c2d = 0;
        for hub in &self.ordered {
            match hub.expire_c2d().await {
                Ok(expired) => expired_c2d += expired,
                // Those messages stay queued and expire when next touched.
                Err(e) => {
                    tracing::error!(hub = hub.host_name(), error = %e, "expired C2D messages could not be removed after the clock was advanced")
                }
            }
        }
        Ok(Advanced {
            offset,
            credential_offset,
            expired_c2d,
        })
    }

    pub fn get(&self, host_name: &str) -> Option<&Arc<Hub>> {
        self.by_host.get(&host_name.to_ascii_lowercase())
    }

    /// The hub a request names by host (the transport strips any `:port` first, see
    /// `http::request::Request::host`), or the only hub when there is just one, so clients
    /// that send an IP or another name still reach it.
    pub(crate) fn for_host(&self, host: &str) -> Result<&Arc<Hub>, HubError> {
        self.get(host)
            .or_else(|| (self.ordered.len() == 1).then(|| &self.ordered[0]))
            .ok_or_else(|| HubError::hub_not_found(host))
    }

    pub fn all(&self) -> &[Arc<Hub>] {
        &self.ordered
    }

    /// The hub whose Event Hubs-compatible endpoint is named `entity` (case-insensitive),
    /// preferring the one at host `hint` should names repeat.
    pub(crate) fn by_event_hub(&self, entity: &str, hint: Option<&str>) -> Option<&Arc<Hub>> {
        let mut matching = self
            .ordered
            .iter()
            .filter(|h| h.event_hubs().path().eq_ignore_ascii_case(entity));
        let first = matching.next()?;
        let preferred = hint.and_then(|host| {
            std::iter::once(first)
                .chain(matching)
                .find(|h| h.host_name().eq_ignore_ascii_case(host))
        });
        Some(preferred.unwrap_or(first))
    }
}
