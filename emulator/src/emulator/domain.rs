//! Build the domain: the store the emulator saves into, the hubs and the DPS instance the
//! fixtures describe, all wired to that store. Nothing is loaded into them yet (`seed.rs`)
//! and nothing is restored (`restore.rs`).

use std::sync::Arc;

use super::StartError;
use super::builder::{EmulatorBuilder, InjectedStore};
use crate::auth::policy::SharedAccessPolicy;
use crate::dps::Dps;
use crate::dps::model::AllocationPolicy;
use crate::fixtures::{AccessPolicy, FixtureError, FixtureSet};
use crate::hub::{Hub, HubAllocation, Hubs};
use crate::persistence::Persistence;
use crate::store::FileStore;

/// The emulator's services, each wired to the same store.
pub(super) struct Domain {
    pub(super) dps: Arc<Dps>,
    pub(super) hubs: Arc<Hubs>,
}

/// The store the builder asks for: the caller's, a data directory, or memory.
pub(super) fn open_store(builder: &EmulatorBuilder) -> Result<Arc<Persistence>, StartError> {
    Ok(Arc::new(match (&builder.store, &builder.data_dir) {
        (Some(InjectedStore(store)), _) => Persistence::new(store.clone()),
        (None, None) => Persistence::default(),
        (None, Some(dir)) => {
            let store = FileStore::open(dir)
                .map_err(|e| StartError::Store(format!("{}: {e}", dir.display())))?;
            Persistence::new(Arc::new(store))
        }
    }))
}

impl Domain {
    /// The hubs, then the DPS instance that allocates devices to them.
    pub(super) fn build(
        builder: &EmulatorBuilder,
        fixtures: &FixtureSet,
        persistence: &Arc<Persistence>,
    ) -> Result<Domain, StartError> {
        let hubs = Arc::new(build_hubs(builder, fixtures, persistence)?);
        let dps = Arc::new(build_dps(builder, fixtures, persistence, &hubs)?);
        Ok(Domain { dps, hubs })
    }
}

fn build_hubs(
    builder: &EmulatorBuilder,
    fixtures: &FixtureSet,
    persistence: &Arc<Persistence>,
) -> Result<Hubs, StartError> {
    let mut hubs = Vec::new();
    for section in &fixtures.hubs {
        let policies = section
            .shared_access_policies
            .iter()
            .map(policy)
            .collect::<Result<_, _>>()?;
        let allocation = HubAllocation {
            weight: section.allocation_weight,
            apply_allocation_policy: section.apply_allocation_policy,
            location: section.location.clone(),
        };
        hubs.push(
            Hub::new(&section.host_name, policies, builder.telemetry_retention)
                .with_event_hubs(
                    section.event_hubs_config(builder.partitions, builder.telemetry_retention),
                )
                .with_allocation(allocation)
                // Validated with the fixture (`fixtures::merge`), so never the default by mistake.
                .with_file_upload(
                    section
                        .file_upload
                        .as_ref()
                        .and_then(|s| s.settings().ok())
                        .unwrap_or_default(),
                )
                .with_persistence(persistence.clone()),
        );
    }
    let storage = Arc::new(crate::storage::BlobStore::new(persistence.clone()));
    Ok(Hubs::with_storage(hubs, storage))
}

fn build_dps(
    builder: &EmulatorBuilder,
    fixtures: &FixtureSet,
    persistence: &Arc<Persistence>,
    hubs: &Arc<Hubs>,
) -> Result<Dps, StartError> {
    let dps_policies = fixtures
        .dps
        .shared_access_policies
        .iter()
        .map(policy)
        .collect::<Result<_, _>>()?;
    Ok(Dps::new(
        &fixtures.dps.id_scope,
        &fixtures.dps.host_name,
        dps_policies,
        hubs.clone(),
        builder.timing,
    )
    .with_allocation(
        fixtures
            .dps
            .allocation_policy
            .unwrap_or(AllocationPolicy::Hashed),
        fixtures.dps.location.clone(),
    )
    .with_capacity(fixtures.enrollment_count(), fixtures.group_count())
    .with_persistence(persistence.clone()))
}

fn policy(fixture: &AccessPolicy) -> Result<SharedAccessPolicy, FixtureError> {
    AccessPolicy::to_shared_access_policy(fixture).map_err(|e| FixtureError {
        file: "fixture".into(),
        path: "sharedAccessPolicies".into(),
        reason: e.to_string(),
    })
}
