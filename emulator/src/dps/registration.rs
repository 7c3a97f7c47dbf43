//! The registration state machine (protocol.md §2.5, §3):
//!
//! ```text
//! register ──► 202 assigning (operationId, retry-after)
//! poll ──────► 202 assigning            while the configured assignment delay runs
//!         └──► 200 assigned | disabled | failed   (decided once, then repeated to later polls)
//! ```
//!
//! Assignment happens on the first poll after the delay: the enrollment is read again (changes
//! apply immediately), a hub is chosen, the device identity is created there with the
//! enrollment's keys and initial twin, and the registration record is written — all before
//! the `200` is returned.

use std::time::{Instant, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::custom_allocation::{self, DecisionSlot, WebhookDecision};
use super::error::{DpsError, assignment};
use super::model::{
    AllocationPolicy, DeviceRegistration, DeviceRegistrationState, ProvisioningStatus,
    RegistrationOperationStatus, RegistrationStatus, ReprovisionPolicy, Substatus,
    X509CertificateWithInfo,
};
use super::{Dps, EnrollmentRef};
use crate::auth::keys::SymmetricKey;
use crate::auth::{RegistrationIdentity, X509Registration, enrollment_keys};
use crate::etag;
use crate::hub::Hub;
use crate::hub::device::DeviceAuthentication;
use crate::pending::{Pending, Settled};
use crate::timefmt::utc_timestamp;
use dashmap::mapref::entry::Entry;

/// What a transport sends back for a register or poll request.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationReply {
    /// 200 when the operation is finished, 202 while assigning.
    pub status: u16,
    pub retry_after: Option<u32>,
    pub body: RegistrationOperationStatus,
}

/// One register request in flight.
#[derive(Clone)]
pub(crate) struct Operation {
    registration_key: String,
    registration_id: String,
    enrollment: EnrollmentRef,
    x509: Option<X509Registration>,
    /// The device's registration `payload`, for a custom allocation webhook.
    payload: Option<Value>,
    /// The webhook's decision, when the enrollment uses custom allocation.
    custom: Option<DecisionSlot>,
    ready_at: Instant,
    /// An assignment was decided and is being made durable; polls meanwhile see `assigning`.
    committing: bool,
    /// The final answer, set only once the device and the record are durable.
    outcome: Option<RegistrationOperationStatus>,
}

/// A device's latest registration, and the enrollment it came through.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RegistrationRecord {
    pub(crate) state: DeviceRegistrationState,
    pub(crate) enrollment: EnrollmentRef,
    /// The hub of the device's first assignment (for `reprovisionedToInitialAssignment`).
    pub(crate) initial_hub: Option<String>,
}

/// The enrollment settings assignment needs, from either kind of enrollment.
struct AssignmentInput {
    enabled: bool,
    device_id: String,
    authentication: DeviceAuthentication,
    initial_twin: Option<Value>,
    candidate_hubs: Vec<String>,
    group_id: Option<String>,
    allocation: Option<AllocationPolicy>,
    reprovision: ReprovisionPolicy,
}

impl Dps {
    /// Starts a registration. The body is the device's `DeviceRegistration` JSON (an empty
    /// body counts as `{}`); its `registrationId`, when present, must be the authenticated one.
    pub fn register(
        &self,
        who: &RegistrationIdentity,
        body: &[u8],
    ) -> Result<RegistrationReply, DpsError> {
        let request: DeviceRegistration = if body.iter().all(u8::is_ascii_whitespace) {
            DeviceRegistration::default()
        } else {
            serde_json::from_slice(body)
                .map_err(|e| DpsError::bad_request(format!("Invalid request body: {e}")))?
        };
        if let Some(payload) = &request.payload
            && !super::validate::nesting_within(payload, super::validate::MAX_FREE_FORM_DEPTH)
        {
            return Err(DpsError::bad_request(format!(
                "Invalid request body: payload nests deeper than {} levels",
                super::validate::MAX_FREE_FORM_DEPTH
            )));
        }
        if let Some(id) = &request.registration_id
            && !id.eq_ignore_ascii_case(who.registration_id())
        {
            return Err(DpsError::bad_request(format!(
                "registrationId '{id}' in the body does not match the authenticated '{}'",
                who.registration_id()
            )));
        }

        let key = who.registration_id().to_ascii_lowercase();
        let operation_id = new_operation_id();
        let mut operation = Operation {
            registration_key: key.clone(),
            registration_id: who.registration_id().to_owned(),
            enrollment: who.enrollment().clone(),
            x509: who.x509().cloned(),
            payload: request.payload.clone(),
            custom: None,
            ready_at: Instant::now() + self.timing.assignment_delay,
            committing: false,
            outcome: None,
        };
        operation.custom = self.start_custom_allocation(&operation);
        self.operations.insert(operation_id.clone(), operation);
        if let Some(superseded) = self.latest_operation.insert(key, operation_id.clone()) {
            self.operations.remove(&superseded);
        }
        Ok(RegistrationReply {
            status: 202,
            retry_after: Some(self.timing.retry_after),
            body: RegistrationOperationStatus {
                operation_id,
                status: RegistrationStatus::Assigning,
                registration_state: None,
            },
        })
    }

    /// Answers a poll of `operation_id`, completing the assignment once it is due. The final
    /// answer (`assigned`, `disabled`, `failed`) may be sent only once the returned
    /// [`Pending`] is durable: that covers the hub device DPS created and the registration
    /// record. Until then, and if it fails, the operation stays undecided (other polls see
    /// `assigning`), so a later poll assigns again.
    pub fn operation_status(
        &self,
        who: &RegistrationIdentity,
        operation_id: &str,
    ) -> Result<Pending<'_, RegistrationReply>, DpsError> {
        let not_found = || DpsError::not_found(format!("Operation {operation_id} not found"));
        // The operation's guard is released before assigning: assignment takes hub and
        // registration locks and submits to the store.
        let operation = {
            let mut operation = self
                .operations
                .get_mut(operation_id)
                .ok_or_else(not_found)?;
            if operation.registration_key != who.registration_id().to_ascii_lowercase() {
                return Err(not_found());
            }
            if let Some(outcome) = &operation.outcome {
                return Ok(Pending::ready(finished(outcome.clone())));
            }
            let deciding = operation
                .custom
                .as_ref()
                .is_some_and(|slot| slot.lock().map(|d| d.is_none()).unwrap_or(false));
            if operation.committing || deciding || Instant::now() < operation.ready_at {
                return Ok(Pending::ready(RegistrationReply {
                    status: 202,
                    retry_after: Some(self.timing.retry_after),
                    body: RegistrationOperationStatus {
                        operation_id: operation_id.to_owned(),
                        status: RegistrationStatus::Assigning,
                        registration_state: Some(DeviceRegistrationState {
                            registration_id: operation.registration_id.clone(),
                            status: RegistrationStatus::Assigning,
                            ..empty_state()
                        }),
                    },
                }));
            }
            operation.committing = true;
            operation.clone()
        };
        let settle = move |outcome: Option<RegistrationOperationStatus>| {
            if let Some(mut operation) = self.operations.get_mut(operation_id) {
                operation.committing = false;
                if outcome.is_some() {
                    operation.outcome = outcome;
                }
            }
        };
        let (outcome, written) = match self.assign(operation_id, &operation) {
            Ok(assigned) => assigned,
            Err(e) => {
                settle(None);
                return Err(e);
            }
        };
        let operation_id = operation_id.to_owned();
        let answer = outcome.clone();
        Ok(written
            .on_settled(move |settled| {
                if let Some(mut operation) = self.operations.get_mut(&operation_id) {
                    operation.committing = false;
                    if settled == Settled::Stored {
                        operation.outcome = Some(answer);
                    }
                }
            })
            .map(|()| finished(outcome)))
    }

    /// Decides the outcome of `operation`: creates or updates the hub device and submits the
    /// registration record. The outcome may be told once the returned write is durable.
    fn assign(
        &self,
        operation_id: &str,
        operation: &Operation,
    ) -> Result<(RegistrationOperationStatus, Pending<'_, ()>), DpsError> {
        let mut device_written: Pending<'_, ()> = Pending::ready(());
        let now = SystemTime::now();
        let (previous, initial_hub) = self
            .registrations
            .get(&operation.registration_key)
            .map(|r| (Some(r.state.clone()), r.initial_hub.clone()))
            .unwrap_or_default();
        let mut first_hub = initial_hub.clone();
        let mut state = DeviceRegistrationState {
            registration_id: operation.registration_id.clone(),
            created_date_time_utc: Some(
                previous
                    .as_ref()
                    .and_then(|p| p.created_date_time_utc.clone())
                    .unwrap_or_else(|| utc_timestamp(now)),
            ),
            last_updated_date_time_utc: Some(utc_timestamp(now)),
            etag: Some(etag::registration()),
            ..empty_state()
        };

        let outcome = match self.assignment_input(operation) {
            None => {
                state.status = RegistrationStatus::Failed;
                state.error_code = Some(assignment::ENROLLMENT_GONE);
                state.error_message = Some("The enrollment no longer exists.".to_owned());
                state
            }
            Some(input) => {
                match &operation.x509 {
                    Some(x509) => {
                        let mut info = json!({ "certificateInfo": x509.certificate.to_dps_json() });
                        if let Some(g) = &input.group_id {
                            info["enrollmentGroupId"] = json!(g);
                        }
                        if let Some(signing) = &x509.signing_certificate {
                            info["signingCertificateInfo"] = signing.to_dps_json();
                        }
                        state.x509 = Some(info);
                    }
                    None => {
                        state.symmetric_key = Some(match &input.group_id {
                            Some(g) => json!({ "enrollmentGroupId": g }),
                            None => json!({}),
                        });
                    }
                }
                if !input.enabled {
                    state.status = RegistrationStatus::Disabled;
                    state
                } else {
                    match self.place(&input, operation, previous.as_ref()) {
                        Err((code, message)) => {
                            state.status = RegistrationStatus::Failed;
                            state.error_code = Some(code);
                            state.error_message = Some(message);
                            state
                        }
                        Ok(hub) => {
                            let previous_hub = previous
                                .as_ref()
                                .filter(|p| p.status == RegistrationStatus::Assigned)
                                .and_then(|p| p.assigned_hub.clone());
                            let same_hub = |h: &str| h.eq_ignore_ascii_case(hub.host_name());
                            let migrate = input.reprovision.migrate_device_data;
                            let substatus = match &previous_hub {
                                None => Substatus::InitialAssignment,
                                Some(old) if same_hub(old) && migrate => previous
                                    .as_ref()
                                    .and_then(|p| p.substatus)
                                    .unwrap_or(Substatus::InitialAssignment),
                                Some(old) if same_hub(old) => Substatus::DeviceDataReset,
                                Some(_) if initial_hub.as_deref().is_some_and(same_hub) => {
                                    Substatus::ReprovisionedToInitialAssignment
                                }
                                Some(_) if migrate => Substatus::DeviceDataMigrated,
                                Some(_) => Substatus::DeviceDataReset,
                            };
                            // Device data: migration carries the old hub's copy along; a
                            // reset starts again from the enrollment's initial twin. (Until
                            // twins exist, the initial twin is the device data there is.)
                            let moved = previous_hub
                                .as_deref()
                                .filter(|old| !same_hub(old) && migrate)
                                .and_then(|old| self.hubs.get(old))
                                .and_then(|old| old.device(&input.device_id))
                                .map(|d| Some(d.twin.as_initial()));
                            // A webhook's initial twin wins over migration, as documented.
                            let decided = decision(operation);
                            let webhook_twin =
                                decided.as_ref().and_then(|d| d.initial_twin.clone());
                            state.payload = decided.and_then(|d| d.payload);
                            let twin = webhook_twin
                                .or(moved.flatten())
                                .or_else(|| input.initial_twin.clone());
                            device_written = hub
                                .provision_device_with(&input.device_id, input.authentication, twin)
                                .map_err(hub_failure)?
                                .map(drop);
                            if substatus == Substatus::DeviceDataReset {
                                let fresh = decision(operation)
                                    .and_then(|d| d.initial_twin)
                                    .or(input.initial_twin);
                                let reset = hub
                                    .reset_device_twin(&input.device_id, fresh)
                                    .map_err(hub_failure)?;
                                device_written = device_written.join(reset).map(drop);
                            }
                            first_hub.get_or_insert_with(|| hub.host_name().to_owned());
                            state.status = RegistrationStatus::Assigned;
                            state.substatus = Some(substatus);
                            state.assigned_hub = Some(hub.host_name().to_owned());
                            state.device_id = Some(input.device_id);
                            state
                        }
                    }
                }
            }
        };
        tracing::info!(
            registration_id = %outcome.registration_id,
            status = ?outcome.status,
            assigned_hub = outcome.assigned_hub.as_deref().unwrap_or("-"),
            device_id = outcome.device_id.as_deref().unwrap_or("-"),
            "registration completed"
        );
        let record = RegistrationRecord {
            state: outcome.clone(),
            enrollment: operation.enrollment.clone(),
            initial_hub: first_hub,
        };
        let key = &operation.registration_key;
        let record_written = match self.registrations.entry(key.clone()) {
            Entry::Occupied(mut stored) => {
                let pending =
                    self.submit_registration(key, Some(stored.get().clone()), Some(&record))?;
                stored.insert(record);
                pending
            }
            Entry::Vacant(slot) => {
                let pending = self.submit_registration(key, None, Some(&record))?;
                slot.insert(record);
                pending
            }
        };
        Ok((
            RegistrationOperationStatus {
                operation_id: operation_id.to_owned(),
                status: outcome.status,
                registration_state: Some(outcome),
            },
            device_written.join(record_written).map(drop),
        ))
    }

    /// Reads the enrollment again, so changes made since `register` apply.
    fn assignment_input(&self, operation: &Operation) -> Option<AssignmentInput> {
        match &operation.enrollment {
            EnrollmentRef::Individual(id) => {
                let e = self.individual_enrollment(id)?;
                let authentication = match &operation.x509 {
                    // Matched by its own certificate: the hub knows it by thumbprint.
                    Some(x509) if x509.signing_certificate.is_none() => {
                        let certs = e.attestation.x509.as_ref()?.client_certificates.as_ref()?;
                        let thumbprint = |c: &Option<X509CertificateWithInfo>| {
                            c.as_ref().and_then(|c| c.thumbprints().pop())
                        };
                        DeviceAuthentication::SelfSigned {
                            primary_thumbprint: thumbprint(&certs.primary),
                            secondary_thumbprint: thumbprint(&certs.secondary),
                        }
                    }
                    Some(x509) => DeviceAuthentication::CertificateAuthority {
                        provisioning_anchors: x509.anchors.clone(),
                    },
                    None => {
                        let (primary, secondary) =
                            key_pair(enrollment_keys(e.attestation.symmetric_key.as_ref()))?;
                        DeviceAuthentication::Sas { primary, secondary }
                    }
                };
                Some(AssignmentInput {
                    enabled: e.provisioning_status == ProvisioningStatus::Enabled,
                    device_id: e
                        .device_id
                        .clone()
                        .unwrap_or_else(|| operation.registration_id.clone()),
                    authentication,
                    initial_twin: e.initial_twin.clone(),
                    candidate_hubs: candidates(&e.iot_hubs, &e.iot_hub_host_name),
                    group_id: None,
                    allocation: e.allocation_policy,
                    reprovision: e.reprovision_policy.unwrap_or_default(),
                })
            }
            EnrollmentRef::Group(id) => {
                let g = self.enrollment_group(id)?;
                let authentication = match &operation.x509 {
                    Some(x509) => DeviceAuthentication::CertificateAuthority {
                        provisioning_anchors: x509.anchors.clone(),
                    },
                    None => {
                        let (primary, secondary) =
                            key_pair(enrollment_keys(g.attestation.symmetric_key.as_ref()))?;
                        let derive =
                            |k: &SymmetricKey| k.derive_device_key(&operation.registration_id);
                        DeviceAuthentication::Sas {
                            primary: derive(&primary),
                            secondary: derive(&secondary),
                        }
                    }
                };
                Some(AssignmentInput {
                    enabled: g.provisioning_status == ProvisioningStatus::Enabled,
                    device_id: operation.registration_id.clone(),
                    authentication,
                    initial_twin: g.initial_twin.clone(),
                    candidate_hubs: candidates(&g.iot_hubs, &g.iot_hub_host_name),
                    group_id: Some(g.enrollment_group_id.clone()),
                    allocation: g.allocation_policy,
                    reprovision: g.reprovision_policy.unwrap_or_default(),
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
    fn start_custom_allocation(&self, operation: &Operation) -> Option<DecisionSlot> {
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
        Some(custom_allocation::start(
            url,
            custom_allocation::request_body(field, enrollment, context, &hubs),
        ))
    }

    /// Picks the hub (how-to-use-allocation-policies.md). With `updateHubAssignment` false an
    /// assigned device keeps its hub; otherwise the enrollment's policy (or the instance
    /// default) chooses among the enrollment's hubs, or among every linked hub that applies
    /// allocation policy when it lists none.
    fn place(
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

/// The `200` answer of a finished operation.
fn finished(body: RegistrationOperationStatus) -> RegistrationReply {
    RegistrationReply {
        status: 200,
        retry_after: None,
        body,
    }
}

/// The hub refused to store the device DPS assigned: the poll fails with a 500 and the
/// operation stays undecided.
fn hub_failure(error: crate::hub::error::HubError) -> DpsError {
    DpsError::new(500000, error.to_string())
}

/// The webhook's decision for `operation`, when it succeeded.
fn decision(operation: &Operation) -> Option<WebhookDecision> {
    operation
        .custom
        .as_ref()
        .and_then(|slot| slot.lock().ok()?.clone())
        .and_then(Result::ok)
}

fn candidates(list: &Option<Vec<String>>, single: &Option<String>) -> Vec<String> {
    match (list, single) {
        (Some(list), _) if !list.is_empty() => list.clone(),
        (_, Some(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// Primary and secondary; an enrollment with only one key uses it for both.
fn key_pair(mut keys: Vec<SymmetricKey>) -> Option<(SymmetricKey, SymmetricKey)> {
    let primary = keys.first()?.clone();
    let secondary = keys.pop().unwrap_or_else(|| primary.clone());
    Some((primary, secondary))
}

fn empty_state() -> DeviceRegistrationState {
    DeviceRegistrationState {
        registration_id: String::new(),
        created_date_time_utc: None,
        assigned_hub: None,
        device_id: None,
        status: RegistrationStatus::Unassigned,
        substatus: None,
        error_code: None,
        error_message: None,
        last_updated_date_time_utc: None,
        etag: None,
        payload: None,
        symmetric_key: None,
        x509: None,
    }
}

/// Shaped like Azure's (`4.<16 hex>.<guid>`); opaque to clients.
fn new_operation_id() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("4.{}.{}", &a.simple().to_string()[..16], b)
}

#[cfg(test)]
mod tests {
    use crate::pending::WaitStored;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::auth::{self, Credential, sas};
    use crate::dps::DpsTiming;
    use crate::dps::model::{
        AttestationMechanism, AttestationType, EnrollmentGroup, IndividualEnrollment,
        SymmetricKeyAttestation,
    };
    use crate::hub::{Hub, Hubs};

    const KEY: &str =
        "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
    const GROUP_KEY: &str =
        "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g==";

    fn attestation(key: &str) -> AttestationMechanism {
        AttestationMechanism {
            kind: AttestationType::SymmetricKey,
            symmetric_key: Some(SymmetricKeyAttestation {
                primary_key: Some(key.into()),
                secondary_key: None,
            }),
            x509: None,
            tpm: None,
        }
    }

    fn dps(delay: Duration) -> Dps {
        let hubs = Arc::new(Hubs::new(vec![
            Hub::new("hub-a", vec![], 10),
            Hub::new("hub-b", vec![], 10),
        ]));
        let timing = DpsTiming {
            retry_after: 3,
            assignment_delay: delay,
        };
        let dps = Dps::new("0ne00000A0A", "localhost", vec![], hubs, timing);
        dps.create_or_update_enrollment(IndividualEnrollment {
            registration_id: "dev-1".into(),
            device_id: Some("device-one".into()),
            attestation: attestation(KEY),
            iot_hub_host_name: None,
            iot_hubs: Some(vec!["hub-b".into()]),
            initial_twin: None,
            provisioning_status: ProvisioningStatus::Enabled,
            etag: None,
            registration_state: None,
            created_date_time_utc: None,
            last_updated_date_time_utc: None,
            allocation_policy: None,
            reprovision_policy: None,
            custom_allocation_definition: None,
            extra: Default::default(),
        })
        .unwrap();
        dps.create_or_update_enrollment_group(EnrollmentGroup {
            enrollment_group_id: "group-1".into(),
            attestation: attestation(GROUP_KEY),
            iot_hub_host_name: None,
            iot_hubs: None,
            initial_twin: None,
            provisioning_status: ProvisioningStatus::Enabled,
            etag: None,
            created_date_time_utc: None,
            last_updated_date_time_utc: None,
            allocation_policy: None,
            reprovision_policy: None,
            custom_allocation_definition: None,
            extra: Default::default(),
        })
        .unwrap();
        dps
    }

    fn login(dps: &Dps, registration_id: &str, key: &SymmetricKey) -> RegistrationIdentity {
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let token = sas::build_token(
            &format!("0ne00000A0A/registrations/{registration_id}"),
            key.as_bytes(),
            None,
            expiry,
        );
        auth::authenticate_registration(
            dps,
            "0ne00000A0A",
            registration_id,
            Credential::Sas(&token),
            SystemTime::now(),
        )
        .unwrap()
    }

    fn key(k: &str) -> SymmetricKey {
        SymmetricKey::from_base64(k).unwrap()
    }

    #[test]
    fn register_then_poll_assigns_and_creates_the_device() {
        let dps = dps(Duration::ZERO);
        let who = login(&dps, "dev-1", &key(KEY));
        let started = dps
            .register(&who, br#"{"registrationId":"dev-1","payload":null}"#)
            .unwrap();
        assert_eq!((started.status, started.retry_after), (202, Some(3)));
        assert_eq!(started.body.status, RegistrationStatus::Assigning);

        let done = dps
            .operation_status(&who, &started.body.operation_id)
            .wait_stored()
            .unwrap();
        assert_eq!(done.status, 200);
        let state = done.body.registration_state.unwrap();
        assert_eq!(state.status, RegistrationStatus::Assigned);
        assert_eq!(state.substatus, Some(Substatus::InitialAssignment));
        assert_eq!(state.assigned_hub.as_deref(), Some("hub-b"));
        assert_eq!(state.device_id.as_deref(), Some("device-one"));
        assert!(state.payload.is_none());
        let device = dps
            .hubs()
            .get("hub-b")
            .unwrap()
            .device("device-one")
            .unwrap();
        assert_eq!(device.sas_keys()[0], &key(KEY));
        assert_eq!(dps.registration("DEV-1").unwrap(), state);
    }

    #[test]
    fn polls_stay_assigning_during_the_delay_and_unknown_operations_are_404() {
        let dps = dps(Duration::from_secs(3600));
        let who = login(&dps, "dev-1", &key(KEY));
        let started = dps.register(&who, b" ").unwrap();
        let poll = dps
            .operation_status(&who, &started.body.operation_id)
            .wait_stored()
            .unwrap();
        assert_eq!(
            (poll.status, poll.body.status),
            (202, RegistrationStatus::Assigning)
        );
        assert_eq!(
            dps.registration("dev-1"),
            None,
            "nothing recorded while assigning"
        );
        assert_eq!(
            dps.operation_status(&who, "4.nope")
                .wait_stored()
                .unwrap_err()
                .status(),
            404
        );
        // Another device cannot poll this operation.
        let other = login(
            &dps,
            "member-7",
            &key(GROUP_KEY).derive_device_key("member-7"),
        );
        assert_eq!(
            dps.operation_status(&other, &started.body.operation_id)
                .wait_stored()
                .unwrap_err()
                .status(),
            404
        );
    }

    #[test]
    fn group_member_gets_derived_keys_and_reregistration_keeps_the_hub() {
        let dps = dps(Duration::ZERO);
        let derived = key(GROUP_KEY).derive_device_key("member-7");
        let who = login(&dps, "member-7", &derived);
        assert_eq!(who.enrollment(), &EnrollmentRef::Group("group-1".into()));
        let first = dps.register(&who, b"{}").unwrap();
        let first = dps
            .operation_status(&who, &first.body.operation_id)
            .wait_stored()
            .unwrap()
            .body
            .registration_state
            .unwrap();
        let hub = first.assigned_hub.clone().unwrap();
        assert_eq!(first.device_id.as_deref(), Some("member-7"));
        assert_eq!(
            first.symmetric_key,
            Some(serde_json::json!({"enrollmentGroupId": "group-1"}))
        );
        let device = dps.hubs().get(&hub).unwrap().device("member-7").unwrap();
        assert_eq!(device.sas_keys()[0], &derived);

        let again = dps.register(&who, b"{}").unwrap();
        let again = dps
            .operation_status(&who, &again.body.operation_id)
            .wait_stored()
            .unwrap()
            .body
            .registration_state
            .unwrap();
        assert_eq!(again.assigned_hub, Some(hub));
        assert_eq!(again.created_date_time_utc, first.created_date_time_utc);
        assert_ne!(again.etag, first.etag);
    }

    #[test]
    fn disabled_enrollment_yields_disabled_and_no_device() {
        let dps = dps(Duration::ZERO);
        let mut enrollment = dps.individual_enrollment("dev-1").unwrap();
        enrollment.provisioning_status = ProvisioningStatus::Disabled;
        dps.create_or_update_enrollment(enrollment).unwrap();
        let who = login(&dps, "dev-1", &key(KEY));
        let started = dps.register(&who, b"{}").unwrap();
        let done = dps
            .operation_status(&who, &started.body.operation_id)
            .wait_stored()
            .unwrap();
        assert_eq!(
            (done.status, done.body.status),
            (200, RegistrationStatus::Disabled)
        );
        assert!(
            dps.hubs()
                .get("hub-b")
                .unwrap()
                .device("device-one")
                .is_none()
        );
        assert_eq!(
            dps.registration("dev-1").unwrap().status,
            RegistrationStatus::Disabled
        );
    }

    #[test]
    fn deleted_enrollment_fails_the_pending_operation() {
        let dps = dps(Duration::ZERO);
        let who = login(&dps, "dev-1", &key(KEY));
        let started = dps.register(&who, b"{}").unwrap();
        assert!(dps.delete_enrollment("dev-1"));
        let done = dps
            .operation_status(&who, &started.body.operation_id)
            .wait_stored()
            .unwrap();
        assert_eq!(done.body.status, RegistrationStatus::Failed);
        assert_eq!(
            done.body.registration_state.unwrap().error_code,
            Some(super::assignment::ENROLLMENT_GONE)
        );
    }

    #[test]
    fn bad_bodies_are_400_and_store_nothing() {
        let dps = dps(Duration::ZERO);
        let who = login(&dps, "dev-1", &key(KEY));
        let deep_payload = format!(r#"{{"payload": {}1{}}}"#, "[".repeat(33), "]".repeat(33));
        for body in [
            &b"{not json"[..],
            br#"{"registrationId":"someone-else"}"#,
            br#"[1,2]"#,
            br#"{} {}"#,
            deep_payload.as_bytes(),
        ] {
            let e = dps.register(&who, body).unwrap_err();
            assert_eq!((e.status(), e.code), (400, 400004));
        }
        assert!(dps.operations.is_empty());
    }

    #[test]
    fn wrong_keys_and_foreign_scopes_do_not_authenticate() {
        let dps = dps(Duration::ZERO);
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let wrong = sas::build_token("0ne00000A0A/registrations/dev-1", &[9u8; 32], None, expiry);
        let r = auth::authenticate_registration(
            &dps,
            "0ne00000A0A",
            "dev-1",
            Credential::Sas(&wrong),
            SystemTime::now(),
        );
        assert!(matches!(
            r,
            Err(auth::AuthError::Token(sas::SasError::BadSignature))
        ));
        // The group key itself is not a device credential.
        let group = sas::build_token(
            "0ne00000A0A/registrations/member-1",
            key(GROUP_KEY).as_bytes(),
            None,
            expiry,
        );
        assert!(
            auth::authenticate_registration(
                &dps,
                "0ne00000A0A",
                "member-1",
                Credential::Sas(&group),
                SystemTime::now()
            )
            .is_err()
        );
        let good = sas::build_token(
            "0ne00000A0A/registrations/dev-1",
            key(KEY).as_bytes(),
            Some("registration"),
            expiry,
        );
        assert!(matches!(
            auth::authenticate_registration(
                &dps,
                "0ne99999999",
                "dev-1",
                Credential::Sas(&good),
                SystemTime::now()
            ),
            Err(auth::AuthError::UnknownIdScope(_))
        ));
        let other_skn = sas::build_token(
            "0ne00000A0A/registrations/dev-1",
            key(KEY).as_bytes(),
            Some("owner"),
            expiry,
        );
        assert!(
            auth::authenticate_registration(
                &dps,
                "0ne00000A0A",
                "dev-1",
                Credential::Sas(&other_skn),
                SystemTime::now()
            )
            .is_err()
        );
    }
}
