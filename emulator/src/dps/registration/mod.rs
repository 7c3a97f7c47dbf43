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

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use serde_json::{Value, json};

use super::attestation::{RegistrationIdentity, X509Registration};
use super::custom_allocation::{DecisionSlot, WebhookDecision};
use super::error::{DpsError, assignment};
use super::model::{
    DeviceRegistration, DeviceRegistrationState, RegistrationOperationStatus, RegistrationStatus,
    Substatus,
};
use super::tpm_challenge::{self, TpmDevice};
use super::{Dps, EnrollmentRef};
use crate::etag;
use crate::faults::FaultOperation;
use crate::hub::Hub;
use crate::pending::{Pending, Settled};
use crate::timefmt::utc_timestamp;
use allocation::AssignmentInput;
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
    /// The TPM a TPM device proved; its hub key is wrapped for it.
    tpm: Option<Arc<TpmDevice>>,
    /// The device's registration `payload`, for a custom allocation webhook.
    payload: Option<Value>,
    /// The webhook's decision, when the enrollment uses custom allocation.
    custom: Option<DecisionSlot>,
    state: OperationState,
}

/// Where an operation is; each state holds only what is valid in it.
#[derive(Clone)]
enum OperationState {
    /// Polls answer `assigning` until `ready_at` has passed (and the webhook, if any, has
    /// decided); the next poll then assigns.
    Waiting { ready_at: Instant },
    /// An assignment was decided and is being made durable; polls meanwhile see `assigning`.
    /// If the commit fails the operation is `Waiting` again, already due.
    Committing,
    /// The final answer, set only once the device and the record are durable, and repeated
    /// to every later poll.
    Decided(Box<RegistrationOperationStatus>),
}

/// A device's latest registration, and the enrollment it came through.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RegistrationRecord {
    pub(crate) state: DeviceRegistrationState,
    pub(crate) enrollment: EnrollmentRef,
    /// The hub of the device's first assignment (for `reprovisionedToInitialAssignment`).
    pub(crate) initial_hub: Option<String>,
}

impl Dps {
    /// Starts a registration. The body is the device's `DeviceRegistration` JSON (an empty
    /// body counts as `{}`); its `registrationId`, when present, must be the authenticated one.
    pub fn register(
        &self,
        who: &RegistrationIdentity,
        body: &[u8],
    ) -> Result<RegistrationReply, DpsError> {
        // Before anything else, so a refused register stores and starts nothing.
        if let Some(refused) = self.faults().check_refusal(
            FaultOperation::DpsRegister,
            self.id_scope(),
            who.registration_id(),
        ) {
            return Err(DpsError::from_fault(&refused));
        }
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
            tpm: who.tpm().cloned(),
            payload: request.payload.clone(),
            custom: None,
            state: OperationState::Waiting {
                ready_at: {
                    // The delay ages with the emulator's clock (`crate::clock`).
                    let now = self.clock().instant_now();
                    now.checked_add(self.timing.assignment_delay).unwrap_or(now)
                },
            },
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
        // Before anything else: a refused poll neither reads nor advances the operation.
        if let Some(refused) = self.faults().check_refusal(
            FaultOperation::DpsPoll,
            self.id_scope(),
            who.registration_id(),
        ) {
            return Err(DpsError::from_fault(&refused));
        }
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
            let deciding = operation
                .custom
                .as_ref()
                .is_some_and(|slot| slot.lock().map(|d| d.is_none()).unwrap_or(false));
            let due = match &operation.state {
                OperationState::Decided(outcome) => {
                    return Ok(Pending::ready(finished((**outcome).clone())));
                }
                OperationState::Committing => false,
                OperationState::Waiting { ready_at } => {
                    !deciding && self.clock().instant_now() >= *ready_at
                }
            };
            if !due {
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
            operation.state = OperationState::Committing;
            operation.clone()
        };
        let (outcome, written) = match self.assign(operation_id, &operation) {
            Ok(assigned) => assigned,
            Err(e) => {
                self.settle(operation_id, None);
                return Err(e);
            }
        };
        let operation_id = operation_id.to_owned();
        let answer = outcome.clone();
        Ok(written
            .on_settled(move |settled| {
                let decided = (settled == Settled::Stored).then_some(answer);
                self.settle(&operation_id, decided);
            })
            .map(|()| finished(outcome)))
    }

    /// Ends a commit: `Decided` once the outcome is durable, else `Waiting` and due at once,
    /// so the next poll assigns again.
    fn settle(&self, operation_id: &str, decided: Option<RegistrationOperationStatus>) {
        if let Some(mut operation) = self.operations.get_mut(operation_id) {
            operation.state = match decided {
                Some(outcome) => OperationState::Decided(Box::new(outcome)),
                None => OperationState::Waiting {
                    ready_at: self.clock().instant_now(),
                },
            };
        }
    }

    /// Decides the outcome of `operation`: creates or updates the hub device and submits the
    /// registration record. The outcome may be told once the returned write is durable.
    fn assign(
        &self,
        operation_id: &str,
        operation: &Operation,
    ) -> Result<(RegistrationOperationStatus, Pending<'_, ()>), DpsError> {
        let now = SystemTime::now();
        let (previous, initial_hub) = self
            .registrations
            .get(&operation.registration_key)
            .map(|r| (Some(r.state.clone()), r.initial_hub.clone()))
            .unwrap_or_default();
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
        let mut device_written: Pending<'_, ()> = Pending::ready(());
        let mut first_hub = initial_hub.clone();
        match self.assignment_input(operation) {
            None => {
                state.status = RegistrationStatus::Failed;
                state.error_code = Some(assignment::ENROLLMENT_GONE);
                state.error_message = Some("The enrollment no longer exists.".to_owned());
            }
            Some(input) => {
                describe_attestation(&mut state, operation, &input);
                if !input.enabled {
                    state.status = RegistrationStatus::Disabled;
                } else {
                    match self.place(&input, operation, previous.as_ref()) {
                        Err((code, message)) => {
                            state.status = RegistrationStatus::Failed;
                            state.error_code = Some(code);
                            state.error_message = Some(message);
                        }
                        Ok(hub) => {
                            let placed = Placed {
                                hub,
                                previous: previous.as_ref(),
                                initial_hub: initial_hub.as_deref(),
                            };
                            device_written =
                                self.provision(input, operation, &placed, &mut state)?;
                            first_hub.get_or_insert_with(|| hub.host_name().to_owned());
                        }
                    }
                }
            }
        }
        let record_written = self.record(operation, state.clone(), first_hub)?;
        Ok((
            RegistrationOperationStatus {
                operation_id: operation_id.to_owned(),
                status: state.status,
                registration_state: Some(state),
            },
            device_written.join(record_written).map(drop),
        ))
    }

    /// Creates or updates the device in the hub `placed` chose, with the device data the
    /// reprovisioning policy says (migrated, reset, or the enrollment's initial twin), and
    /// fills the assigned state.
    fn provision<'s>(
        &'s self,
        input: AssignmentInput,
        operation: &Operation,
        placed: &Placed<'s, '_>,
        state: &mut DeviceRegistrationState,
    ) -> Result<Pending<'s, ()>, DpsError> {
        let hub = placed.hub;
        let previous_hub = placed.previous_hub();
        let migrate = input.reprovision.migrate_device_data;
        let substatus = placed.substatus(migrate);
        // Device data: migration carries the old hub's copy along; a reset starts again from
        // the enrollment's initial twin.
        let moved = previous_hub
            .filter(|old| !placed.is_hub(old) && migrate)
            .and_then(|old| self.hubs.get(old))
            .and_then(|old| old.device(&input.device_id))
            .map(|d| d.twin.as_initial());
        // A webhook's initial twin wins over migration, as documented.
        let decided = decision(operation);
        let webhook_twin = decided.as_ref().and_then(|d| d.initial_twin.clone());
        state.payload = decided.and_then(|d| d.payload);
        let twin = webhook_twin
            .or(moved)
            .or_else(|| input.initial_twin.clone());
        if let Some(tpm) = &operation.tpm {
            state.tpm = Some(tpm_challenge::assigned_state(tpm, &input.authentication)?);
        }
        let mut written = hub
            .provision_device_with(&input.device_id, input.authentication, twin)
            .map_err(hub_failure)?
            .map(drop);
        // An IoT Plug and Play device names its model as `payload.modelId`; the hub keeps it
        // on the twin (a value that is not a DTMI is ignored).
        let model_id = operation
            .payload
            .as_ref()
            .and_then(|p| p.get("modelId"))
            .and_then(Value::as_str)
            .filter(|m| crate::hub::twin::is_model_id(m));
        if let Some(model_id) = model_id {
            let announced = hub
                .record_model_id(crate::hub::IdentityRef::device(&input.device_id), model_id)
                .map_err(hub_failure)?;
            written = written.join(announced).map(drop);
        }
        if substatus == Substatus::DeviceDataReset {
            let fresh = decision(operation)
                .and_then(|d| d.initial_twin)
                .or(input.initial_twin);
            let reset = hub
                .reset_device_twin(&input.device_id, fresh)
                .map_err(hub_failure)?;
            written = written.join(reset).map(drop);
        }
        state.status = RegistrationStatus::Assigned;
        state.substatus = Some(substatus);
        state.assigned_hub = Some(hub.host_name().to_owned());
        state.device_id = Some(input.device_id);
        Ok(written)
    }

    /// Logs the outcome and submits it as the device's registration record.
    fn record(
        &self,
        operation: &Operation,
        outcome: DeviceRegistrationState,
        initial_hub: Option<String>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        let record = RegistrationRecord {
            state: outcome,
            enrollment: operation.enrollment.clone(),
            initial_hub,
        };
        let key = &operation.registration_key;
        Ok(match self.registrations.entry(key.clone()) {
            Entry::Occupied(mut stored) => {
                log_outcome(Some(&stored.get().state), &record.state);
                let pending = self.submit_registration(key, Some(stored.get()), Some(&record))?;
                stored.insert(record);
                pending
            }
            Entry::Vacant(slot) => {
                log_outcome(None, &record.state);
                let pending = self.submit_registration(key, None, Some(&record))?;
                slot.insert(record);
                pending
            }
        })
    }
}

/// One INFO line when a registration changes what the device is (its first outcome, another
/// status, hub or device id); a device registering again to the same outcome is logged at
/// DEBUG, so a fleet re-registering after a restart does not flood the log.
fn log_outcome(previous: Option<&DeviceRegistrationState>, outcome: &DeviceRegistrationState) {
    let changed = previous.is_none_or(|p| {
        p.status != outcome.status
            || p.assigned_hub != outcome.assigned_hub
            || p.device_id != outcome.device_id
    });
    let hub = outcome.assigned_hub.as_deref().unwrap_or("-");
    let device = outcome.device_id.as_deref().unwrap_or("-");
    if changed {
        tracing::info!(registration_id = %outcome.registration_id, status = ?outcome.status,
            assigned_hub = hub, device_id = device, "registration completed");
    } else {
        tracing::debug!(registration_id = %outcome.registration_id, status = ?outcome.status,
            assigned_hub = hub, device_id = device, "registration completed (unchanged)");
    }
}

/// The hub an assignment chose, with what the device's history says about it.
struct Placed<'h, 'a> {
    hub: &'h std::sync::Arc<Hub>,
    previous: Option<&'a DeviceRegistrationState>,
    initial_hub: Option<&'a str>,
}

impl Placed<'_, '_> {
    fn is_hub(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.hub.host_name())
    }

    /// The hub of the device's previous assignment, if it was assigned.
    fn previous_hub(&self) -> Option<&str> {
        self.previous
            .filter(|p| p.status == RegistrationStatus::Assigned)
            .and_then(|p| p.assigned_hub.as_deref())
    }

    /// concepts-device-reprovision.md: what happened to the device data.
    fn substatus(&self, migrate: bool) -> Substatus {
        match self.previous_hub() {
            None => Substatus::InitialAssignment,
            Some(old) if self.is_hub(old) && migrate => self
                .previous
                .and_then(|p| p.substatus)
                .unwrap_or(Substatus::InitialAssignment),
            Some(old) if self.is_hub(old) => Substatus::DeviceDataReset,
            Some(_) if self.initial_hub.is_some_and(|h| self.is_hub(h)) => {
                Substatus::ReprovisionedToInitialAssignment
            }
            Some(_) if migrate => Substatus::DeviceDataMigrated,
            Some(_) => Substatus::DeviceDataReset,
        }
    }
}

/// The state's `x509` / `symmetricKey` section: how the device attested, and through which
/// group.
fn describe_attestation(
    state: &mut DeviceRegistrationState,
    operation: &Operation,
    input: &AssignmentInput,
) {
    if operation.tpm.is_some() {
        // `tpm` ({authenticationKey}) is filled once the hub key exists.
        return;
    }
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
    DpsError::internal(error.to_string())
}

/// The webhook's decision for `operation`, when it succeeded.
fn decision(operation: &Operation) -> Option<WebhookDecision> {
    operation
        .custom
        .as_ref()
        .and_then(|slot| slot.lock().ok()?.clone())
        .and_then(Result::ok)
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
        tpm: None,
    }
}

/// Shaped like Azure's (`4.<16 hex>.<guid>`); opaque to clients.
fn new_operation_id() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("4.{}.{}", &a.simple().to_string()[..16], b)
}

mod allocation;
#[cfg(test)]
mod tests;
