//! Load the fixtures into the domain: CA certificates first (enrollments may refer to them
//! by name), then individual enrollments and enrollment groups. A fixture the domain refuses
//! stops the start with the domain's reason.

use super::domain::Domain;
use crate::fixtures::{FixtureError, FixtureSet};

pub(super) fn load_fixtures(domain: &Domain, fixtures: &FixtureSet) -> Result<(), FixtureError> {
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
    for enrollment in fixtures.enrollments.iter().cloned() {
        dps.create_or_update_enrollment(enrollment)
            .map_err(|e| fixture_error(e.message()))?;
    }
    for group in fixtures.enrollment_groups.iter().cloned() {
        dps.create_or_update_enrollment_group(group)
            .map_err(|e| fixture_error(e.message()))?;
    }
    Ok(())
}

fn fixture_error(reason: &str) -> FixtureError {
    FixtureError {
        file: "fixture".into(),
        path: String::new(),
        reason: reason.to_owned(),
    }
}
