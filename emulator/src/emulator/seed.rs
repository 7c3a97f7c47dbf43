//! Load the fixtures into the domain: CA certificates first (enrollments may refer to them
//! by name), then individual enrollments and enrollment groups, then the fixtures' fault rules.
//! A fixture the domain refuses stops the start with the domain's reason.

use super::domain::Domain;
use crate::faults::AzureThrottles;
use crate::fixtures::{FixtureError, FixtureSet};

/// The enrollments and groups are moved out of `fixtures` into the domain: they were parsed
/// and checked when the fixtures were loaded, and are stored as they are.
pub(super) fn load_fixtures(
    domain: &Domain,
    fixtures: &mut FixtureSet,
) -> Result<(), FixtureError> {
    let dps = &domain.dps;
    for entry in &fixtures.dps.certificates {
        dps.certificates()
            .upload(&entry.name, &entry.certificate, entry.is_verified)
            .and_then(|pending| Ok(pending.wait()?))
            .map_err(|e| fixture_error(&format!("dps.certificates '{}': {e}", entry.name)))?;
    }
    for (section, hub) in fixtures.hubs.iter().zip(domain.hubs.all()) {
        for entry in &section.certificates {
            hub.certificates()
                .upload(&entry.name, &entry.certificate, entry.is_verified)
                .and_then(|pending| Ok(pending.wait()?))
                .map_err(|e| fixture_error(&format!("hub certificate '{}': {e}", entry.name)))?;
        }
    }
    dps.seed(std::mem::take(&mut fixtures.enrollments))
        .map_err(|e| fixture_error(e.message()))?;
    dps.seed(std::mem::take(&mut fixtures.enrollment_groups))
        .map_err(|e| fixture_error(e.message()))?;
    // The rules were checked (each one and their number) when the fixtures were loaded, so
    // none is refused here; no listener is bound yet, so the first request already sees them.
    for (i, rule) in std::mem::take(&mut fixtures.faults).into_iter().enumerate() {
        dps.faults()
            .add(rule)
            .map_err(|e| fixture_error(&format!("faults[{i}]: {e}")))?;
    }
    Ok(())
}

/// Installs Azure's throttles for a tier (`--azure-throttles`) after the fixtures' rules, so a
/// fixture's own fault on an operation is matched before the throttle; loud, because from
/// here on a burst of requests is refused as Azure would refuse it.
pub(super) fn install_azure_throttles(
    domain: &Domain,
    throttles: AzureThrottles,
) -> Result<(), FixtureError> {
    for rule in throttles.rules() {
        domain
            .dps
            .faults()
            .add(rule)
            .map_err(|e| fixture_error(&format!("azure throttles {throttles}: {e}")))?;
    }
    tracing::warn!(
        %throttles,
        "Azure throttles on: requests beyond the limits of an IoT hub of this tier and of DPS are refused with 429 and retry-after (docs/faults.md); GET /faults lists them"
    );
    Ok(())
}

fn fixture_error(reason: &str) -> FixtureError {
    FixtureError {
        file: "fixture".into(),
        path: String::new(),
        reason: reason.to_owned(),
    }
}
