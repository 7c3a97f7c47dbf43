//! IoT Hub device HTTPS API, file upload (iot-hub-devguide-file-upload.md; the device SDKs
//! use HTTPS for it whatever their transport):
//!
//! * `POST /devices/{id}/files` with `{"blobName": "…"}` → `200` and
//!   `{"correlationId", "hostName", "containerName", "blobName", "sasToken"}`: where to upload
//!   (`https://{hostName}/{containerName}/{blobName}{sasToken}`). The blob name comes back
//!   under the device's folder, `{deviceId}/{blobName}`.
//! * `POST /devices/{id}/files/notifications` with
//!   `{"correlationId", "isSuccess", "statusCode", "statusDescription"}` → `204`: the upload
//!   is over; a successful one becomes a notification for the service. The Node SDK puts the
//!   correlation id in the path instead (`…/files/notifications/{correlationId}`) and the C
//!   SDK adds a trailing slash to both routes; all are accepted.
//! * The same under `/devices/{id}/modules/{moduleId}/files…` for a module, which proves itself
//!   with its own SAS or certificate; its blobs go under `{deviceId}/{moduleId}/`.
//!
//! Both answer only once the upload's record is stored (`Pending::durable`).

use hyper::Method;
use serde::Deserialize;

use super::hub_device::DeviceGroup;
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::error::HubError;
use crate::hub::{DeviceIdentity, Hub, UploadOutcome};

/// The two routes.
pub(super) struct Files;

pub(super) enum FilesOperation<'p> {
    Start,
    /// With the correlation id when the path carries it.
    Complete(Option<&'p str>),
}

/// The body of `POST /devices/{id}/files`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRequest {
    blob_name: String,
}

/// The body of `POST /devices/{id}/files/notifications[/{correlationId}]`. `statusCode` is
/// whatever the device reports (the Node sample sends a storage error code string).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompleteRequest {
    #[serde(default)]
    correlation_id: Option<String>,
    is_success: bool,
    #[serde(default)]
    status_code: Option<serde_json::Value>,
    #[serde(default)]
    status_description: Option<String>,
}

impl DeviceGroup for Files {
    type Operation<'p> = FilesOperation<'p>;

    fn parse<'p>(
        req: &Request<'_>,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<FilesOperation<'p>> {
        match (&req.method, fixed) {
            (&Method::POST, ["devices", _, "files"]) => Some(FilesOperation::Start),
            (&Method::POST, ["devices", _, "files", "notifications"]) => {
                Some(FilesOperation::Complete(None))
            }
            (&Method::POST, ["devices", _, "files", "notifications", _]) => {
                Some(FilesOperation::Complete(segments.get(4).copied()))
            }
            // The module variant: the module proves itself (`hub_device::admitted`).
            (&Method::POST, ["devices", _, "modules", _, "files"]) => Some(FilesOperation::Start),
            (&Method::POST, ["devices", _, "modules", _, "files", "notifications"]) => {
                Some(FilesOperation::Complete(None))
            }
            (&Method::POST, ["devices", _, "modules", _, "files", "notifications", _]) => {
                Some(FilesOperation::Complete(segments.get(6).copied()))
            }
            _ => None,
        }
    }

    async fn apply<'a>(
        hub: &'a Hub,
        identity: DeviceIdentity,
        req: &'a Request<'a>,
        operation: Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
        let now = hub.clock().now();
        match operation {
            FilesOperation::Start => {
                let request: StartRequest = parse_body(req)?;
                // The built-in store answers at the authority the device reached the hub at.
                let authority = req.header("host").unwrap_or(hub.host_name());
                let target = hub
                    .start_file_upload(&identity, &request.blob_name, authority, now)?
                    .durable()
                    .await?;
                tracing::debug!(device = identity.device_id(), blob = %target.blob_name, "file upload started");
                Ok(reply::json(200, &target.to_json()))
            }
            FilesOperation::Complete(in_path) => {
                let request: CompleteRequest = parse_body(req)?;
                let correlation_id = in_path
                    .map(str::to_owned)
                    .or(request.correlation_id)
                    .ok_or_else(|| HubError::argument_invalid("correlationId is missing"))?;
                let outcome = UploadOutcome {
                    correlation_id,
                    is_success: request.is_success,
                    status_code: request.status_code,
                    status_description: request.status_description,
                };
                hub.complete_file_upload(&identity, &outcome, now)?
                    .durable()
                    .await?;
                Ok(reply::empty(204))
            }
        }
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(req: &Request<'_>) -> Result<T, HubError> {
    serde_json::from_slice(&req.body)
        .map_err(|e| HubError::argument_invalid(format!("The request body is not valid: {e}")))
}
