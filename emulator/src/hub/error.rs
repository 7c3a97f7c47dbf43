//! IoT Hub errors with Azure's 6-digit codes (protocol.md §10.2). The first three digits are
//! the HTTP status; each transport maps an error to its wire shape in one place.

use std::fmt;

/// An IoT Hub error: Azure's code, its name and a message. The hub builds them (the
/// constructors are the crate's); callers read the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    pub code: u32,
    pub name: &'static str,
    pub message: String,
    /// Seconds the caller should wait before trying again, when a throttle or an injected
    /// fault says so (the transports send it as `Retry-After` or `retry-after`).
    pub retry_after: Option<u32>,
}

impl HubError {
    pub fn status(&self) -> u16 {
        (self.code / 1000) as u16
    }

    fn new(code: u32, name: &'static str, message: impl Into<String>) -> HubError {
        HubError {
            code,
            name,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The error an injected fault refuses a hub request with; the message names the rule.
    pub(crate) fn from_fault(refusal: crate::faults::Refusal, fault_id: &str) -> HubError {
        use crate::faults::Refusal;
        let (name, message) = match refusal {
            Refusal::Throttled { .. } => ("ThrottlingException", "Operations are being throttled"),
            Refusal::InternalError => ("ServerError", "Internal server error"),
            Refusal::ServiceUnavailable { .. } => ("ServiceUnavailable", "Service unavailable"),
            Refusal::Unauthorized => ("IotHubUnauthorized", "Unauthorized"),
        };
        HubError {
            retry_after: refusal.retry_after(),
            ..HubError::new(
                refusal.error_code(),
                name,
                format!("{message} (iotemu fault {fault_id})"),
            )
        }
    }

    pub(crate) fn device_not_found(device_id: &str) -> HubError {
        HubError::new(
            404001,
            "DeviceNotFound",
            format!("Device {device_id} not found"),
        )
    }

    pub(crate) fn device_disabled(device_id: &str) -> HubError {
        HubError::new(
            403012,
            "DeviceDisabled",
            format!("Device {device_id} is disabled"),
        )
    }

    pub(crate) fn message_too_large(size: usize, limit: usize) -> HubError {
        HubError::new(
            413001,
            "MessageTooLarge",
            format!("Message size {size} bytes exceeds the limit of {limit} bytes"),
        )
    }

    pub(crate) fn hub_not_found(host: &str) -> HubError {
        HubError::new(404002, "IotHubNotFound", format!("No hub named '{host}'"))
    }

    pub fn unauthorized() -> HubError {
        HubError::new(401002, "IotHubUnauthorizedAccess", "Unauthorized")
    }

    pub(crate) fn not_found_route(what: &str) -> HubError {
        HubError::new(404000, "NotFound", format!("No route for {what}"))
    }

    pub(crate) fn queue_full(device_id: &str) -> HubError {
        HubError::new(
            403004,
            "DeviceMaximumQueueDepthExceeded",
            format!(
                "{device_id} already has {} cloud-to-device messages pending",
                crate::hub::c2d::MAX_PENDING
            ),
        )
    }

    pub(crate) fn device_not_online(device_id: &str) -> HubError {
        HubError::new(
            404103,
            "DeviceNotOnline",
            format!("Device {device_id} is not online or not subscribed to methods"),
        )
    }

    pub(crate) fn gateway_timeout(device_id: &str) -> HubError {
        HubError::new(
            504101,
            "GatewayTimeout",
            format!("Timed out waiting for {device_id} to answer"),
        )
    }

    pub(crate) fn precondition_failed(device_id: &str) -> HubError {
        HubError::new(
            412001,
            "PreconditionFailed",
            format!("The ETag of {device_id}'s twin does not match"),
        )
    }

    pub(crate) fn argument_invalid(message: impl Into<String>) -> HubError {
        HubError::new(400004, "ArgumentInvalid", message)
    }

    pub(crate) fn too_many_file_uploads() -> HubError {
        HubError::new(
            403006,
            "DeviceMaximumActiveFileUploadLimitExceeded",
            format!(
                "Number of active file upload requests cannot exceed {}",
                crate::hub::file_upload::MAX_ACTIVE_UPLOADS
            ),
        )
    }

    /// A file-upload notification for a correlation id the device has no upload under
    /// (never started, already completed, or its token ran out). Chosen: 400 ArgumentInvalid.
    pub(crate) fn unknown_file_upload(correlation_id: &str) -> HubError {
        HubError::new(
            400004,
            "ArgumentInvalid",
            format!("No file upload in progress has correlation id '{correlation_id}'"),
        )
    }

    /// Chosen name: Azure's code for a missing configuration is not documented.
    pub(crate) fn configuration_not_found(id: &str) -> HubError {
        HubError::new(
            404001,
            "ConfigurationNotFound",
            format!("Configuration '{id}' not found"),
        )
    }

    pub(crate) fn configuration_etag_mismatch(id: &str) -> HubError {
        HubError::new(
            412001,
            "PreconditionFailed",
            format!("The ETag of configuration '{id}' does not match"),
        )
    }

    pub(crate) fn too_many_configurations(limit: usize) -> HubError {
        HubError::new(
            403002,
            "IotHubQuotaExceeded",
            format!("A hub has at most {limit} configurations"),
        )
    }

    pub(crate) fn job_not_found(job_id: &str) -> HubError {
        HubError::new(404002, "JobNotFound", format!("Job {job_id} not found"))
    }

    /// A create with a job id in use. Chosen: Azure's answer is not documented.
    pub(crate) fn job_already_exists(job_id: &str) -> HubError {
        HubError::new(
            409001,
            "JobAlreadyExists",
            format!("A job with id {job_id} already exists"),
        )
    }

    pub(crate) fn too_many_active_jobs(limit: usize) -> HubError {
        HubError::new(
            429004,
            "ThrottlingMaxActiveJobCountExceeded",
            format!("Number of active jobs cannot exceed {limit}"),
        )
    }

    pub(crate) fn not_implemented(what: &str) -> HubError {
        HubError::new(
            501001,
            "NotImplemented",
            format!("{what} is not implemented by iotemu yet"),
        )
    }

    pub(crate) fn device_already_exists(device_id: &str) -> HubError {
        HubError::new(
            409001,
            "DeviceAlreadyExists",
            format!("A device with id {device_id} already exists"),
        )
    }

    /// If-Match named another version of the device identity (not of its twin).
    pub(crate) fn device_etag_mismatch(device_id: &str) -> HubError {
        HubError::new(
            412001,
            "PreconditionFailed",
            format!("The ETag of device {device_id} does not match If-Match"),
        )
    }

    /// A C2D lock token that is unknown, already settled or past its one-minute lock.
    pub(crate) fn device_message_lock_lost(device_id: &str, lock_token: &str) -> HubError {
        HubError::new(
            412002,
            "DeviceMessageLockLost",
            format!(
                "The lock {lock_token} on a cloud-to-device message for {device_id} is unknown or expired"
            ),
        )
    }

    pub(crate) fn module_not_found(device_id: &str, module_id: &str) -> HubError {
        HubError::new(
            404010,
            "ModuleNotFound",
            format!("Module {module_id} on device {device_id} not found"),
        )
    }

    pub(crate) fn module_already_exists(device_id: &str, module_id: &str) -> HubError {
        HubError::new(
            409301,
            "ModuleAlreadyExistsOnDevice",
            format!("A module with id {module_id} already exists on device {device_id}"),
        )
    }

    pub(crate) fn module_input_not_deliverable(module: &str) -> HubError {
        HubError::new(
            404103,
            "DeviceNotOnline",
            format!("Module {module} is not connected or not subscribed to its inputs"),
        )
    }

    pub(crate) fn module_etag_mismatch(device_id: &str, module_id: &str) -> HubError {
        HubError::new(
            412001,
            "PreconditionFailed",
            format!("The ETag of module {device_id}/{module_id} does not match If-Match"),
        )
    }

    /// A feedback lock token that is unknown, already settled or past its lock.
    pub(crate) fn feedback_lock_lost(lock_token: &str) -> HubError {
        HubError::new(
            412002,
            "DeviceMessageLockLost",
            format!("The lock {lock_token} on a feedback message is unknown or expired"),
        )
    }

    /// The change could not be made durable (`--data-dir`); nothing was acknowledged.
    pub fn storage(reason: &str) -> HubError {
        HubError::new(
            500001,
            "ServerError",
            format!("The change could not be stored: {reason}"),
        )
    }

    pub(crate) fn invalid_protocol_version() -> HubError {
        HubError::new(
            400001,
            "InvalidProtocolVersion",
            "The api-version query parameter is required (for example ?api-version=2021-04-12)",
        )
    }
}

/// A change the store refused or could not make durable (see [`HubError::storage`]).
impl From<crate::store::StoreError> for HubError {
    fn from(error: crate::store::StoreError) -> HubError {
        HubError::storage(&error.to_string())
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.code, self.name, self.message)
    }
}

impl std::error::Error for HubError {}
