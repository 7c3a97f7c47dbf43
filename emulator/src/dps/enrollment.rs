//! Enrollments as DPS keeps them: an individual enrollment ([`Individual`]) and an enrollment
//! group ([`Group`]) are an id (plus, for an individual, the device id) around one
//! [`EnrollmentCore`] — attestation, hubs, allocation, reprovisioning, initial twin, status,
//! ETag and timestamps — so the rules and the CRUD over them are written once.
//!
//! They are built at the boundary, by [`TryFrom`] the service API's JSON models
//! ([`model::IndividualEnrollment`], [`model::EnrollmentGroup`]), which checks everything that
//! does not depend on the rest of the instance; [`EnrollmentCore::check_links`] then checks
//! what it names (linked hubs, CA certificates in the store). `to_wire()` renders the JSON
//! model back, every value as given, so fixtures, the service API and exports keep their exact
//! formats. The durable store keeps the wire form too (`serde(into, try_from)`).

use serde_json::{Map, Value};

use super::enrollment_attestation::Attestation;
use super::model::{
    self, AllocationPolicy, AttestationMechanism, EnrollmentGroup, IndividualEnrollment,
    ProvisioningStatus, ReprovisionPolicy,
};
use super::validate::{self, Invalid, Links};

/// What individual enrollments and enrollment groups share.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentCore {
    pub attestation: Attestation,
    pub iot_hub_host_name: Option<String>,
    pub iot_hubs: Option<Vec<String>>,
    pub initial_twin: Option<Value>,
    pub provisioning_status: ProvisioningStatus,
    pub allocation_policy: Option<AllocationPolicy>,
    pub reprovision_policy: Option<ReprovisionPolicy>,
    pub custom_allocation_definition: Option<Value>,
    /// Set by DPS on every write.
    pub etag: Option<String>,
    /// Set by DPS when the enrollment is first written.
    pub created_date_time_utc: Option<String>,
    /// Set by DPS on every write.
    pub last_updated_date_time_utc: Option<String>,
    /// Fields DPS does not interpret (`capabilities`, …), returned as given.
    pub extra: Map<String, Value>,
}

/// An individual enrollment: one device, by registration id.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(
    into = "model::IndividualEnrollment",
    try_from = "model::IndividualEnrollment"
)]
pub struct Individual {
    pub registration_id: String,
    /// The hub device id; `None` means the registration id.
    pub device_id: Option<String>,
    pub core: EnrollmentCore,
}

/// An enrollment group: every device whose credential derives from the group's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "model::EnrollmentGroup", try_from = "model::EnrollmentGroup")]
pub struct Group {
    pub enrollment_group_id: String,
    pub core: EnrollmentCore,
}

/// The wire fields of [`EnrollmentCore`], moved out of either JSON model.
struct CoreFields {
    attestation: AttestationMechanism,
    iot_hub_host_name: Option<String>,
    iot_hubs: Option<Vec<String>>,
    initial_twin: Option<Value>,
    provisioning_status: ProvisioningStatus,
    allocation_policy: Option<AllocationPolicy>,
    reprovision_policy: Option<ReprovisionPolicy>,
    custom_allocation_definition: Option<Value>,
    etag: Option<String>,
    created_date_time_utc: Option<String>,
    last_updated_date_time_utc: Option<String>,
    extra: Map<String, Value>,
}

/// Moves the shared fields out of either JSON model: they are listed once, here.
macro_rules! core_fields {
    ($wire:expr) => {
        CoreFields {
            attestation: $wire.attestation,
            iot_hub_host_name: $wire.iot_hub_host_name,
            iot_hubs: $wire.iot_hubs,
            initial_twin: $wire.initial_twin,
            provisioning_status: $wire.provisioning_status,
            allocation_policy: $wire.allocation_policy,
            reprovision_policy: $wire.reprovision_policy,
            custom_allocation_definition: $wire.custom_allocation_definition,
            etag: $wire.etag,
            created_date_time_utc: $wire.created_date_time_utc,
            last_updated_date_time_utc: $wire.last_updated_date_time_utc,
            extra: $wire.extra,
        }
    };
}

/// Renders a JSON model: its own fields as given, then the core's (listed once, here).
macro_rules! wire_model {
    ($model:ident { $($field:ident: $value:expr),* $(,)? }, $core:expr) => {{
        let core: &EnrollmentCore = $core;
        $model {
            $($field: $value,)*
            attestation: core.attestation.to_wire(),
            iot_hub_host_name: core.iot_hub_host_name.clone(),
            iot_hubs: core.iot_hubs.clone(),
            initial_twin: core.initial_twin.clone(),
            provisioning_status: core.provisioning_status,
            etag: core.etag.clone(),
            created_date_time_utc: core.created_date_time_utc.clone(),
            last_updated_date_time_utc: core.last_updated_date_time_utc.clone(),
            allocation_policy: core.allocation_policy,
            reprovision_policy: core.reprovision_policy,
            custom_allocation_definition: core.custom_allocation_definition.clone(),
            extra: core.extra.clone(),
        }
    }};
}

impl EnrollmentCore {
    /// Checks the fields and moves them in (a large fixture's enrollments are converted
    /// without copying a string).
    fn parse(wire: CoreFields) -> Result<EnrollmentCore, Invalid> {
        validate::allocation(
            wire.allocation_policy,
            &wire.iot_hub_host_name,
            &wire.iot_hubs,
            &wire.custom_allocation_definition,
        )?;
        validate::initial_twin(wire.initial_twin.as_ref())?;
        Ok(EnrollmentCore {
            attestation: Attestation::try_from(wire.attestation)?,
            iot_hub_host_name: wire.iot_hub_host_name,
            iot_hubs: wire.iot_hubs,
            initial_twin: wire.initial_twin,
            provisioning_status: wire.provisioning_status,
            allocation_policy: wire.allocation_policy,
            reprovision_policy: wire.reprovision_policy,
            custom_allocation_definition: wire.custom_allocation_definition,
            etag: wire.etag,
            created_date_time_utc: wire.created_date_time_utc,
            last_updated_date_time_utc: wire.last_updated_date_time_utc,
            extra: wire.extra,
        })
    }

    /// Checks what the enrollment names in the rest of the instance: its hubs are linked, its
    /// CA references are in the certificate store.
    pub fn check_links(&self, links: &Links<'_>) -> Result<(), Invalid> {
        validate::hub_refs(&self.iot_hub_host_name, &self.iot_hubs, links.hub_exists)?;
        if let Attestation::X509(x509) = &self.attestation {
            x509.check_links(links)?;
        }
        Ok(())
    }

    /// `provisioningStatus` is `enabled`.
    pub fn enabled(&self) -> bool {
        self.provisioning_status == ProvisioningStatus::Enabled
    }

    /// The hubs the enrollment lists (`iotHubs`, else `iotHubHostName`).
    pub fn listed_hubs(&self) -> Vec<String> {
        match (&self.iot_hubs, &self.iot_hub_host_name) {
            (Some(list), _) if !list.is_empty() => list.clone(),
            (_, Some(single)) => vec![single.clone()],
            _ => Vec::new(),
        }
    }

    /// Sets what DPS owns on every write; `created` is kept from the entity replaced.
    pub(crate) fn stamp(&mut self, etag: String, now: String, created: String) {
        self.etag = Some(etag);
        self.last_updated_date_time_utc = Some(now);
        self.created_date_time_utc = Some(created);
    }
}

/// Checks the whole JSON model's nesting (unknown fields, webhook definitions and twins are
/// free-form), so everything accepted is storable. Only the free-form values can nest deeply
/// (the rest of the model is a fixed shape at most five levels deep), so each is checked from
/// the depth it sits at in the model, without rendering the model as JSON: that costs as much
/// as parsing it, for every enrollment of a large fixture.
fn nesting<'v>(free_form: impl IntoIterator<Item = (usize, &'v Value)>) -> Result<(), Invalid> {
    let max = validate::MAX_FREE_FORM_DEPTH;
    if free_form.into_iter().all(|(depth, value)| {
        max.checked_sub(depth)
            .is_some_and(|left| validate::nesting_within(value, left))
    }) {
        Ok(())
    } else {
        Err(Invalid::new("", format!("nested deeper than {max} levels")))
    }
}

/// The free-form values both JSON models have, with their depth in the model: `initialTwin`,
/// `customAllocationDefinition` and unknown fields at 1, certificate `info`s at 5
/// (`attestation.x509.signingCertificates.primary.info`).
fn free_form_of<'w>(
    initial_twin: &'w Option<Value>,
    custom_allocation_definition: &'w Option<Value>,
    extra: &'w Map<String, Value>,
    attestation: &'w AttestationMechanism,
) -> impl Iterator<Item = (usize, &'w Value)> {
    let infos = attestation.x509.iter().flat_map(|x509| {
        [&x509.client_certificates, &x509.signing_certificates]
            .into_iter()
            .flatten()
            .flat_map(|certificates| certificates.slots())
            .filter_map(|(_, certificate)| certificate.info.as_ref())
            .map(|info| (5, info))
    });
    [initial_twin, custom_allocation_definition]
        .into_iter()
        .flatten()
        .chain(extra.values())
        .map(|value| (1, value))
        .chain(infos)
}

impl TryFrom<model::IndividualEnrollment> for Individual {
    type Error = Invalid;

    /// Symmetric keys left out are generated; `registrationState` is ignored (DPS derives it).
    fn try_from(wire: model::IndividualEnrollment) -> Result<Individual, Invalid> {
        validate::registration_id("registrationId", &wire.registration_id)?;
        if let Some(id) = &wire.device_id {
            validate::device_id("deviceId", id)?;
        }
        // A read-only registration state's values sit at depth 2 (`registrationState.payload`).
        let registration_state = wire.registration_state.iter().flat_map(|state| {
            [
                &state.payload,
                &state.symmetric_key,
                &state.x509,
                &state.tpm,
            ]
            .into_iter()
            .flatten()
            .map(|value| (2, value))
        });
        nesting(
            free_form_of(
                &wire.initial_twin,
                &wire.custom_allocation_definition,
                &wire.extra,
                &wire.attestation,
            )
            .chain(registration_state),
        )?;
        let registration_id = wire.registration_id;
        let device_id = wire.device_id;
        let core = EnrollmentCore::parse(core_fields!(wire))?;
        if let Attestation::Tpm(_) = core.attestation {
            validate::tpm_registration_id("registrationId", &registration_id)?;
        }
        Ok(Individual {
            registration_id,
            device_id,
            core,
        })
    }
}

impl Individual {
    /// The service API's `IndividualEnrollment` (without `registrationState`, which the
    /// service API adds from the registration records).
    pub fn to_wire(&self) -> model::IndividualEnrollment {
        wire_model!(
            IndividualEnrollment {
                registration_id: self.registration_id.clone(),
                device_id: self.device_id.clone(),
                registration_state: None,
            },
            &self.core
        )
    }

    /// The hub device id: `deviceId`, else the registration id.
    pub fn device_id(&self) -> &str {
        self.device_id.as_deref().unwrap_or(&self.registration_id)
    }
}

impl TryFrom<model::EnrollmentGroup> for Group {
    type Error = Invalid;

    /// Like [`Individual`]'s; a group takes signing certificates or CA references, never
    /// device certificates, and no TPM attestation (Azure's docs: "Enrollment groups do not
    /// support TPM attestation").
    fn try_from(wire: model::EnrollmentGroup) -> Result<Group, Invalid> {
        validate::registration_id("enrollmentGroupId", &wire.enrollment_group_id)?;
        if wire
            .attestation
            .x509
            .as_ref()
            .is_some_and(|x| x.client_certificates.is_some())
        {
            return Err(Invalid::new(
                "attestation.x509.clientCertificates",
                "an enrollment group takes signingCertificates or caReferences, not device certificates",
            ));
        }
        if wire.attestation.kind == model::AttestationType::Tpm {
            return Err(Invalid::new("attestation.type", GROUP_TPM_REFUSED));
        }
        nesting(free_form_of(
            &wire.initial_twin,
            &wire.custom_allocation_definition,
            &wire.extra,
            &wire.attestation,
        ))?;
        let enrollment_group_id = wire.enrollment_group_id;
        let core = EnrollmentCore::parse(core_fields!(wire))?;
        Ok(Group {
            enrollment_group_id,
            core,
        })
    }
}

impl Group {
    /// The service API's `EnrollmentGroup`.
    pub fn to_wire(&self) -> model::EnrollmentGroup {
        wire_model!(
            EnrollmentGroup {
                enrollment_group_id: self.enrollment_group_id.clone(),
            },
            &self.core
        )
    }
}

/// The conversions from a borrowed model (the service API parses the body it was given) and
/// to the model (serde's `into`, for the durable store).
macro_rules! owned_conversions {
    ($domain:ident, $wire:ident) => {
        impl TryFrom<&$wire> for $domain {
            type Error = Invalid;

            fn try_from(wire: &$wire) -> Result<$domain, Invalid> {
                $domain::try_from(wire.clone())
            }
        }

        impl From<$domain> for $wire {
            fn from(domain: $domain) -> $wire {
                domain.to_wire()
            }
        }
    };
}

owned_conversions!(Individual, IndividualEnrollment);
owned_conversions!(Group, EnrollmentGroup);

/// Why an enrollment group with TPM attestation is refused.
pub(crate) const GROUP_TPM_REFUSED: &str = "Enrollment groups do not support TPM attestation";

#[cfg(test)]
mod tests;
