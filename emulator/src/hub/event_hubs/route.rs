//! Message routing, the subset that matters with one endpoint: which message sources IoT Hub
//! sends to its built-in `events` endpoint.
//!
//! The fixture takes Azure's routing configuration shape (`properties.routing` of the IoT Hub
//! resource):
//!
//! ```json
//! "routing": {
//!   "routes": [ { "name": "twin", "source": "TwinChangeEvents", "condition": "true",
//!                 "endpointNames": ["events"], "isEnabled": true } ],
//!   "fallbackRoute": { "name": "$fallback", "source": "DeviceMessages", "condition": "true",
//!                      "endpointNames": ["events"], "isEnabled": true }
//! }
//! ```
//!
//! Sources: `DeviceMessages`, `TwinChangeEvents`, `DeviceLifecycleEvents`,
//! `DeviceConnectionStateEvents` (case-insensitive). Conditions: `true` or empty; the routing
//! query language is not implemented and any other condition is a fixture error. The only
//! endpoint is `events`.
//!
//! IoT Hub's fallback rule: device messages that match no route go to `events` while the
//! fallback route is enabled (the default). A route for `DeviceMessages` matches every message
//! here (its condition is `true`) and also ends at `events`, so telemetry reaches the endpoint
//! unless the fallback route is disabled and no `DeviceMessages` route exists.

use crate::hub::telemetry::MessageSource;
use serde::{Deserialize, Serialize};

/// `properties.routing` of an IoT Hub resource, the part the emulator honours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingSection {
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_route: Option<RouteEntry>,
}

/// One route: `{ name, source, condition, endpointNames, isEnabled }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteEntry {
    pub name: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default)]
    pub endpoint_names: Vec<String>,
    #[serde(default = "default_true")]
    pub is_enabled: bool,
}

/// The built-in endpoint's name in routes.
pub(crate) const BUILT_IN_ENDPOINT: &str = "events";

/// Which message sources reach the built-in endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    telemetry: bool,
    twin_changes: bool,
    lifecycle: bool,
    connection_state: bool,
}

impl Default for Routes {
    /// A hub without routes: telemetry through the fallback route, nothing else.
    fn default() -> Self {
        Routes {
            telemetry: true,
            twin_changes: false,
            lifecycle: false,
            connection_state: false,
        }
    }
}

/// A routing entry the emulator cannot honour: the JSON path under `routing` and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteError {
    pub path: String,
    pub reason: String,
}

impl Routes {
    /// Whether messages from `source` go to the built-in endpoint.
    pub fn sends(&self, source: MessageSource) -> bool {
        match source {
            MessageSource::Telemetry => self.telemetry,
            MessageSource::TwinChangeEvents => self.twin_changes,
            MessageSource::DeviceLifecycleEvents => self.lifecycle,
            MessageSource::DeviceConnectionStateEvents => self.connection_state,
        }
    }

    /// Reads a fixture's `routing` section; errors name the path below `routing`.
    pub(crate) fn from_fixture(section: &RoutingSection) -> Result<Routes, RouteError> {
        let mut routes = Routes {
            telemetry: false,
            ..Routes::default()
        };
        let mut device_message_route = false;
        for (i, entry) in section.routes.iter().enumerate() {
            let source = check_entry(entry, &format!("routes[{i}]"))?;
            if !entry.is_enabled {
                continue;
            }
            match source {
                MessageSource::Telemetry => device_message_route = true,
                MessageSource::TwinChangeEvents => routes.twin_changes = true,
                MessageSource::DeviceLifecycleEvents => routes.lifecycle = true,
                MessageSource::DeviceConnectionStateEvents => routes.connection_state = true,
            }
        }
        let fallback_enabled = match &section.fallback_route {
            Some(fallback) => {
                let source = check_entry(fallback, "fallbackRoute")?;
                if source != MessageSource::Telemetry {
                    return Err(RouteError {
                        path: "fallbackRoute.source".into(),
                        reason: "the fallback route's source is DeviceMessages".into(),
                    });
                }
                fallback.is_enabled
            }
            None => true,
        };
        routes.telemetry = device_message_route || fallback_enabled;
        Ok(routes)
    }

    /// What the routes send, for logs and the control port: e.g. `["DeviceMessages", …]`.
    pub fn sources(&self) -> Vec<&'static str> {
        [
            (self.telemetry, "DeviceMessages"),
            (self.twin_changes, "TwinChangeEvents"),
            (self.lifecycle, "DeviceLifecycleEvents"),
            (self.connection_state, "DeviceConnectionStateEvents"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

fn check_entry(entry: &RouteEntry, path: &str) -> Result<MessageSource, RouteError> {
    let error = |field: &str, reason: String| RouteError {
        path: format!("{path}.{field}"),
        reason,
    };
    if entry.name.is_empty() {
        return Err(error("name", "a route needs a name".into()));
    }
    let source = parse_source(&entry.source).ok_or_else(|| {
        error(
            "source",
            format!(
                "'{}' is not supported; use DeviceMessages, TwinChangeEvents, DeviceLifecycleEvents or DeviceConnectionStateEvents",
                entry.source
            ),
        )
    })?;
    let condition = entry.condition.as_deref().unwrap_or("").trim();
    if !(condition.is_empty() || condition.eq_ignore_ascii_case("true")) {
        return Err(error(
            "condition",
            format!(
                "'{condition}': the emulator evaluates only the condition 'true' (or none); routing queries are not supported"
            ),
        ));
    }
    if entry.endpoint_names.is_empty() {
        return Err(error(
            "endpointNames",
            "a route needs an endpoint; the emulator has only 'events'".into(),
        ));
    }
    for (j, endpoint) in entry.endpoint_names.iter().enumerate() {
        if !endpoint.eq_ignore_ascii_case(BUILT_IN_ENDPOINT) {
            return Err(error(
                &format!("endpointNames[{j}]"),
                format!(
                    "'{endpoint}' is not supported; the emulator has only the built-in endpoint 'events'"
                ),
            ));
        }
    }
    Ok(source)
}

fn parse_source(name: &str) -> Option<MessageSource> {
    [
        ("DeviceMessages", MessageSource::Telemetry),
        ("TwinChangeEvents", MessageSource::TwinChangeEvents),
        (
            "DeviceLifecycleEvents",
            MessageSource::DeviceLifecycleEvents,
        ),
        (
            "DeviceConnectionStateEvents",
            MessageSource::DeviceConnectionStateEvents,
        ),
    ]
    .into_iter()
    .find_map(|(known, source)| known.eq_ignore_ascii_case(name).then_some(source))
}

fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(json: &str) -> RoutingSection {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn no_routes_means_telemetry_only() {
        let routes = Routes::from_fixture(&routing("{}")).unwrap();
        assert_eq!(routes, Routes::default());
        assert!(routes.sends(MessageSource::Telemetry));
        assert!(!routes.sends(MessageSource::TwinChangeEvents));
    }

    #[test]
    fn routes_add_sources_and_the_fallback_keeps_telemetry() {
        let routes = Routes::from_fixture(&routing(
            r#"{"routes":[
                {"name":"t","source":"TwinChangeEvents","condition":"true","endpointNames":["events"],"isEnabled":true},
                {"name":"l","source":"devicelifecycleevents","endpointNames":["events"]},
                {"name":"c","source":"DeviceConnectionStateEvents","condition":"","endpointNames":["events"],"isEnabled":false}
            ]}"#,
        ))
        .unwrap();
        assert_eq!(
            routes.sources(),
            vec![
                "DeviceMessages",
                "TwinChangeEvents",
                "DeviceLifecycleEvents"
            ]
        );
    }

    #[test]
    fn a_disabled_fallback_stops_telemetry_unless_a_route_sends_it() {
        let fallback_off = r#""fallbackRoute":{"name":"$fallback","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":false}"#;
        let routes = Routes::from_fixture(&routing(&format!("{{{fallback_off}}}"))).unwrap();
        assert!(!routes.sends(MessageSource::Telemetry));
        let routes = Routes::from_fixture(&routing(&format!(
            r#"{{"routes":[{{"name":"d","source":"DeviceMessages","endpointNames":["events"]}}],{fallback_off}}}"#
        )))
        .unwrap();
        assert!(routes.sends(MessageSource::Telemetry));
    }

    #[test]
    fn unsupported_entries_name_their_path() {
        let cases = [
            (
                r#"{"routes":[{"name":"a","source":"DeviceMessages","condition":"$body.x = 1","endpointNames":["events"]}]}"#,
                "routes[0].condition",
            ),
            (
                r#"{"routes":[{"name":"a","source":"DeviceMessages","endpointNames":["events"]},{"name":"b","source":"DigitalTwinChangeEvents","endpointNames":["events"]}]}"#,
                "routes[1].source",
            ),
            (
                r#"{"routes":[{"name":"a","source":"DeviceMessages","endpointNames":["events","storage"]}]}"#,
                "routes[0].endpointNames[1]",
            ),
            (
                r#"{"routes":[{"name":"a","source":"DeviceMessages","endpointNames":[]}]}"#,
                "routes[0].endpointNames",
            ),
            (
                r#"{"routes":[{"name":"","source":"DeviceMessages","endpointNames":["events"]}]}"#,
                "routes[0].name",
            ),
            (
                r#"{"fallbackRoute":{"name":"f","source":"TwinChangeEvents","endpointNames":["events"]}}"#,
                "fallbackRoute.source",
            ),
        ];
        for (json, path) in cases {
            let error = Routes::from_fixture(&routing(json)).unwrap_err();
            assert_eq!(error.path, path, "{json}");
            assert!(!error.reason.is_empty());
        }
    }
}
