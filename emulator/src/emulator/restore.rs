//! Restore the stored state: what the store holds goes over what the fixtures seeded (DPS,
//! then every hub), the emulator's own CA comes back (or a new one is made and saved), and
//! from then on every change is saved. Returns the TLS material every listener serves.

use std::sync::Arc;

use super::StartError;
use super::domain::Domain;
use crate::persistence::{self, Persistence, Save};
use crate::tls::{CaMaterial, EmulatorTls};

/// Where the emulator keeps its own CA in the durable state.
const EMULATOR_COLLECTION: &str = "emulator";
const CA_KEY: &str = "ca";

/// Restores the domain and the CA, then activates saving. `names` are the server
/// certificate's names.
pub(super) async fn restore(
    domain: &Domain,
    persistence: &Persistence,
    names: &[String],
) -> Result<Arc<EmulatorTls>, StartError> {
    let stored_ca = restore_domain(domain, persistence)?;
    let tls = Arc::new(EmulatorTls::with_ca(names, stored_ca.as_ref())?);
    persistence.activate();
    if stored_ca.is_none() {
        let ca = tls.ca_material().clone();
        // Awaited, not blocked on: startup runs on a tokio worker.
        persistence
            .submit(vec![Save::of(EMULATOR_COLLECTION, CA_KEY, Some(&ca))])
            .map_err(|e| StartError::Store(e.to_string()))?
            .durable()
            .await
            .map_err(|e| StartError::Store(e.to_string()))?;
    }
    Ok(tls)
}

/// Loads the snapshot into DPS and the hubs; returns the stored CA, if there is one.
fn restore_domain(
    domain: &Domain,
    persistence: &Persistence,
) -> Result<Option<CaMaterial>, StartError> {
    let mut snapshot = persistence
        .load()
        .map_err(|e| StartError::Store(e.to_string()))?;
    domain
        .dps
        .restore(&mut snapshot)
        .map_err(StartError::Store)?;
    for hub in domain.hubs.all() {
        hub.restore(&mut snapshot).map_err(StartError::Store)?;
    }
    domain
        .hubs
        .storage()
        .restore(&mut snapshot)
        .map_err(StartError::Store)?;
    let stored_ca = snapshot
        .take(EMULATOR_COLLECTION)
        .remove(CA_KEY)
        .map(|value| persistence::restore::<CaMaterial>(EMULATOR_COLLECTION, CA_KEY, value))
        .transpose()
        .map_err(StartError::Store)?
        .flatten();
    for leftover in snapshot.collection_names() {
        tracing::warn!(
            collection = leftover,
            "stored state for a hub or instance the fixtures no longer define; kept on disk, not served"
        );
    }
    Ok(stored_ca)
}
