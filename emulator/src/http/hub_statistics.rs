//! IoT Hub service API, statistics (protocol.md §9.1; azure-iot-hub's
//! `get_device_registry_statistics` / `get_service_statistics`, azure-iothub's
//! `getRegistryStatistics`):
//!
//! * `GET /statistics/devices` → `200 {"totalDeviceCount", "enabledDeviceCount",
//!   "disabledDeviceCount"}` (RegistryRead);
//! * `GET /statistics/service` → `200 {"connectedDeviceCount"}` (ServiceConnect).
//!
//! Counted when asked, so they are exact (Azure's registry counts lag by minutes).

use hyper::Method;
use serde_json::json;

use super::hub_service::{REGISTRY_READ, Rights, SERVICE_CONNECT, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::device::DeviceStatus;
use crate::hub::error::HubError;
use crate::hub::{Hub, IdentityRef};

/// Which statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    Devices,
    Service,
}

/// The statistics routes.
pub(super) struct Statistics;

impl ServiceGroup for Statistics {
    type Operation<'p> = Operation;

    fn parse(method: &Method, fixed: &[&str], _: &[&str]) -> Option<(Rights, Operation)> {
        match (method, fixed) {
            (&Method::GET, ["statistics", "devices"]) => Some((REGISTRY_READ, Operation::Devices)),
            (&Method::GET, ["statistics", "service"]) => {
                Some((SERVICE_CONNECT, Operation::Service))
            }
            _ => None,
        }
    }

    async fn apply<'a>(
        hub: &'a Hub,
        _: &'a Request<'a>,
        operation: Operation,
    ) -> Result<Reply, HubError> {
        let devices = hub.devices();
        let body = match operation {
            Operation::Devices => {
                let enabled = devices
                    .iter()
                    .filter(|d| d.status == DeviceStatus::Enabled)
                    .count();
                json!({
                    "totalDeviceCount": devices.len(),
                    "enabledDeviceCount": enabled,
                    "disabledDeviceCount": devices.len().saturating_sub(enabled),
                })
            }
            Operation::Service => {
                let connected = devices
                    .iter()
                    .filter(|d| {
                        let key = IdentityRef::device(&d.device_id).connection_key();
                        hub.connections().is_connected(&key)
                    })
                    .count();
                json!({ "connectedDeviceCount": connected })
            }
        };
        Ok(reply::json(200, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_device, body_json, call, hub};
    use super::*;
    use crate::hub::registry::DeviceSpec;

    #[test]
    fn routes_and_their_rights() {
        let route = |fixed: &'static [&'static str]| Statistics::parse(&Method::GET, fixed, fixed);
        assert_eq!(
            route(&["statistics", "devices"]),
            Some((REGISTRY_READ, Operation::Devices))
        );
        assert_eq!(
            route(&["statistics", "service"]),
            Some((SERVICE_CONNECT, Operation::Service))
        );
        assert_eq!(route(&["statistics", "jobs"]), None);
        assert_eq!(
            Statistics::parse(&Method::POST, &["statistics", "devices"], &[]),
            None
        );
    }

    #[tokio::test]
    async fn devices_are_counted_by_status_and_connection() {
        let hub = hub();
        add_device(&hub, "a").await;
        add_device(&hub, "b").await;
        let disabled = DeviceSpec::from_json("b", br#"{"status": "disabled"}"#).unwrap();
        hub.update_device("b", disabled, "*")
            .unwrap()
            .durable()
            .await
            .unwrap();
        let devices = body_json(
            call::<Statistics>(&hub, Method::GET, "/statistics/devices", &[], "")
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            devices,
            json!({"totalDeviceCount": 2, "enabledDeviceCount": 1, "disabledDeviceCount": 1})
        );
        let service = body_json(
            call::<Statistics>(&hub, Method::GET, "/statistics/service", &[], "")
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(service, json!({"connectedDeviceCount": 0}));
    }
}
