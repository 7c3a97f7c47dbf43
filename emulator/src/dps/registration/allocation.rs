//! Allocation: the enrollment settings an assignment reads (again, at assignment time),
//! the hubs eligible for it, the custom-allocation webhook request, and the allocation
//! policies that pick one hub (how-to-use-allocation-policies.md).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Operation;
use crate::auth::keys::SymmetricKey;
use crate::dps::custom_allocation::{self, DecisionSlot};
use crate::dps::enrollment::EnrollmentCore;
use crate::dps::error::assignment;
use crate::dps::model::{
    AllocationPolicy, DeviceRegistrationState, RegistrationStatus, ReprovisionPolicy,
};
use crate::dps::tpm_challenge;
use crate::dps::{Dps, EnrollmentRef};
use crate::hub::Hub;
use crate::hub::device::DeviceAuthentication;

/// The enrollment settings assignment needs, from either kind of enrollment.
pub(super) struct AssignmentInput {
    pub(super) enabled: bool,
    pub(super) device_id: String,
    pub(super) authentication: DeviceAuthentication,
    pub(super) initial_twin: Option<Value>,
    pub(super) candidate_hubs: Vec<String>,
    pub(super) group_id: Option<String>,
    pub(super) allocation: Option<AllocationPolicy>,
    pub(super) reprovision: ReprovisionPolicy,
}

impl AssignmentInput {
    /// What the enrollment core says; the caller sets the device and group ids.
    fn from_core(core: &EnrollmentCore, authentication: DeviceAuthentication) -> AssignmentInput {
        AssignmentInput {
            enabled: core.enabled(),
            device_id: String::new(),
            authentication,
            initial_twin: core.initial_twin.clone(),
            candidate_hubs: core.listed_hubs(),
            group_id: None,
            allocation: core.allocation_policy,
            reprovision: core.reprovision_policy.unwrap_or_default(),
        }
    }
}

impl Dps {
    /// Reads the enrollment again, so changes made since `register` apply.
    pub(super) fn assignment_input(&self, operation: &Operation) -> Option<AssignmentInput> {
        match &operation.enrollment {
            EnrollmentRef::Individual(id) => {
                let e = self.individual(id)?;
                let authentication = match &operation.x509 {
                    // Matched by its own certificate: the hub knows it by thumbprint.
                    Some(x509) if x509.signing_certificate.is_none() => {
                        let trust = e.core.attestation.x509()?;
                        // The SHA-256 thumbprint when known (the last one listed).
                        let thumbprint = |slot| {
                            trust
                                .client_certificate(slot)
                                .and_then(|c| c.thumbprints.last().cloned())
                        };
                        DeviceAuthentication::SelfSigned {
                            primary_thumbprint: thumbprint("primary"),
                            secondary_thumbprint: thumbprint("secondary"),
                        }
                    }
                    Some(x509) => DeviceAuthentication::CertificateAuthority {
                        provisioning_anchors: x509.anchors.clone(),
                    },
                    // DPS chooses a TPM device's hub keys; the device gets them wrapped.
                    None if operation.tpm.is_some() => tpm_challenge::new_hub_keys().ok()?,
                    None => {
                        let (primary, secondary) = key_pair(&e.core)?;
                        DeviceAuthentication::Sas { primary, secondary }
                    }
                };
                Some(AssignmentInput {
                    device_id: e
                        .device_id
                        .clone()
                        .unwrap_or_else(|| operation.registration_id.clone()),
                    group_id: None,
                    ..AssignmentInput::from_core(&e.core, authentication)
                })
            }
            EnrollmentRef::Group(id) => {
                let g = self.group(id)?;
                let authentication = match &operation.x509 {
                    // As Azure does: the hub knows a group's device by the leaf it presented
                    // (SHA-1 and SHA-256 thumbprints), so a new leaf replaces the old one.
                    Some(x509) => DeviceAuthentication::SelfSigned {
                        primary_thumbprint: Some(x509.certificate.sha1_thumbprint.clone()),
                        secondary_thumbprint: Some(x509.certificate.sha256_thumbprint.clone()),
                    },
                    None => {
                        let (primary, secondary) = key_pair(&g.core)?;
                        let derive =
                            |k: &SymmetricKey| k.derive_device_key(&operation.registration_id);
                        DeviceAuthentication::Sas {
                            primary: derive(&primary),
                            secondary: derive(&secondary),
                        }
                    }
                };
                Some(AssignmentInput {
                    device_id: operation.registration_id.clone(),
                    group_id: Some(g.enrollment_group_id.clone()),
                    ..AssignmentInput::from_core(&g.core, authentication)
                })
            }
        }
    }

    /// The enrollment's hubs, or every linked hub that applies allocation policy.
    fn eligible_hubs(&self, input: &AssignmentInput) -> Vec<&std::sync::Arc<Hub>> {
        let listed: Vec<&std::sync::Arc<Hub>> = input
            .candidate_hubs
            .iter()
            .filter_map(|h| self.hubs.get(h))
            .collect();
        if !listed.is_empty() {
            return listed;
        }
        self.hubs
            .all()
            .iter()
            .filter(|h| h.allocation().apply_allocation_policy)
            .collect()
    }

    /// For a custom-allocation enrollment, starts the webhook call with the documented
    /// request: the enrollment without its keys, the device's runtime context, the hubs.
    pub(super) fn start_custom_allocation(&self, operation: &Operation) -> Option<DecisionSlot> {
        let input = self.assignment_input(operation)?;
        if input.allocation != Some(AllocationPolicy::Custom) {
            return None;
        }
        let (field, enrollment, definition) = match &operation.enrollment {
            EnrollmentRef::Individual(id) => {
                let e = self.individual_enrollment(id)?;
                let definition = e.custom_allocation_definition.clone();
                (
                    "individualEnrollment",
                    serde_json::to_value(e).ok()?,
                    definition,
                )
            }
            EnrollmentRef::Group(id) => {
                let g = self.enrollment_group(id)?;
                let definition = g.custom_allocation_definition.clone();
                ("enrollmentGroup", serde_json::to_value(g).ok()?, definition)
            }
        };
        let mut enrollment = enrollment;
        // Keys and certificates never leave DPS: the webhook sees only the attestation type.
        enrollment["attestation"] = json!({ "type": enrollment["attestation"]["type"] });
        let url = definition?.get("webhookUrl")?.as_str()?.to_owned();
        let mut context = json!({ "registrationId": operation.registration_id });
        if let Some(current) = self
            .registrations
            .get(&operation.registration_key)
            .filter(|r| r.state.status == RegistrationStatus::Assigned)
        {
            context["currentIotHubHostName"] = json!(current.state.assigned_hub);
            context["currentDeviceId"] = json!(current.state.device_id);
        }
        match &operation.x509 {
            Some(x509) => {
                context["x509"] = json!({ "clientCertificate": x509.certificate.to_dps_json() })
            }
            None => context["symmetricKey"] = json!({}),
        }
        if let Some(payload) = &operation.payload {
            context["payload"] = payload.clone();
        }
        let hubs: Vec<String> = self
            .eligible_hubs(&input)
            .iter()
            .map(|h| h.host_name().to_owned())
            .collect();
        Some(self.webhook.start(
            url,
            custom_allocation::request_body(field, enrollment, context, &hubs),
        ))
    }

    /// Picks the hub (how-to-use-allocation-policies.md). With `updateHubAssignment` false an
    /// assigned device keeps its hub; otherwise the enrollment's policy (or the instance
    /// default) chooses among the enrollment's hubs, or among every linked hub that applies
    /// allocation policy when it lists none.
    pub(super) fn place(
        &self,
        input: &AssignmentInput,
        operation: &Operation,
        previous: Option<&DeviceRegistrationState>,
    ) -> Result<&std::sync::Arc<Hub>, (u32, String)> {
        // Registration and enrollment device ids were checked on the way in; this keeps any
        // other path from creating a device the hub's own API would refuse.
        if let Some(problem) = crate::hub::registry::device_id_problem(&input.device_id) {
            return Err((assignment::INVALID_DEVICE_ID, problem));
        }
        if !input.reprovision.update_hub_assignment
            && let Some(hub) = previous
                .filter(|p| p.status == RegistrationStatus::Assigned)
                .and_then(|p| p.assigned_hub.as_deref())
                .and_then(|h| self.hubs.get(h))
        {
            return Ok(hub);
        }
        let eligible = self.eligible_hubs(input);
        let Some(first) = eligible.first().copied() else {
            return Err((
                assignment::NO_HUB,
                "No linked IoT hub is eligible for this enrollment.".into(),
            ));
        };
        match input.allocation.unwrap_or(self.default_allocation) {
            AllocationPolicy::Static => Ok(first),
            AllocationPolicy::Custom => match operation
                .custom
                .as_ref()
                .and_then(|s| s.lock().ok()?.clone())
            {
                Some(Ok(decided)) => eligible
                    .iter()
                    .copied()
                    .find(|h| h.host_name().eq_ignore_ascii_case(&decided.hub))
                    .ok_or_else(|| {
                        (
                            custom_allocation::FAILED,
                            format!(
                                "Custom allocation failed: '{}' is not one of the linked hubs",
                                decided.hub
                            ),
                        )
                    }),
                Some(Err(failure)) => Err(failure),
                None => Err((
                    custom_allocation::FAILED,
                    "Custom allocation failed: no webhook decision".into(),
                )),
            },
            // Emulated: the hub in the instance's location, else the first eligible one.
            AllocationPolicy::GeoLatency => Ok(eligible
                .iter()
                .copied()
                .find(|h| self.location.is_some() && h.allocation().location == self.location)
                .unwrap_or(first)),
            AllocationPolicy::Hashed => {
                let total: u64 = eligible
                    .iter()
                    .map(|h| u64::from(h.allocation().weight))
                    .sum();
                let digest = Sha256::digest(operation.registration_key.as_bytes());
                let mut head = [0u8; 8];
                head.copy_from_slice(&digest[..8]);
                let mut point = u64::from_be_bytes(head) % total.max(1);
                for hub in &eligible {
                    let weight = u64::from(hub.allocation().weight);
                    if point < weight {
                        return Ok(hub);
                    }
                    point -= weight;
                }
                Ok(first)
            }
        }
    }
}

/// The primary and secondary key of a symmetric-key enrollment.
fn key_pair(core: &EnrollmentCore) -> Option<(SymmetricKey, SymmetricKey)> {
    let keys = core.attestation.symmetric_keys()?;
    Some((keys.primary.key().clone(), keys.secondary.key().clone()))
}
