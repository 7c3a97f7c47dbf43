//! Which topics an authenticated client may use — the per-identity ACL — and what a publish
//! asks for. A device may only use its own topics: anything that does not parse into a
//! request for *this* identity is refused (SUBSCRIBE → 0x80, PUBLISH → connection closed).

use super::topic::{split_query, valid_filter};
use crate::query;

/// Who is connected, as the router sees it.
#[derive(Debug, Clone, Copy)]
pub enum Principal<'a> {
    Registration,
    Device {
        device_id: &'a str,
        module_id: Option<&'a str>,
    },
}

/// What a device's PUBLISH asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<'t> {
    DpsRegister { rid: &'t str },
    DpsPoll { rid: &'t str, operation_id: String },
    Telemetry { property_bag: &'t str },
    TwinGet { rid: &'t str },
    TwinReportedPatch { rid: &'t str },
    MethodResponse { rid: &'t str, status: &'t str },
}

/// Classifies `topic` for `principal`; `None` means the publish is not allowed.
pub fn classify_publish<'t>(principal: Principal<'_>, topic: &'t str) -> Option<Inbound<'t>> {
    let (path, query) = split_query(topic);
    let rid = || query::raw_value(query, "$rid");
    match principal {
        Principal::Registration => match path.trim_end_matches('/') {
            "$dps/registrations/PUT/iotdps-register" => Some(Inbound::DpsRegister { rid: rid()? }),
            "$dps/registrations/GET/iotdps-get-operationstatus" => Some(Inbound::DpsPoll {
                rid: rid()?,
                operation_id: query::value(query, "operationId")?,
            }),
            _ => None,
        },
        Principal::Device {
            device_id,
            module_id,
        } => {
            // `devices/{device_id}[/modules/{m}]/messages/events`, matched piece by piece
            // rather than formatted per message.
            let own_events = topic
                .strip_prefix("devices/")
                .and_then(|t| t.strip_prefix(device_id))
                .and_then(|t| match module_id {
                    Some(m) => t.strip_prefix("/modules/")?.strip_prefix(m),
                    None => Some(t),
                })
                .and_then(|t| t.strip_prefix("/messages/events"));
            if let Some(rest) = own_events {
                return match rest {
                    "" => Some(Inbound::Telemetry { property_bag: "" }),
                    // The Node SDK ends the topic of an output message (`$.on`) with a `/`
                    // after the bag (azure-iot-device-mqtt `sendOutputEvent`); the slash is not
                    // part of the last value. SDKs percent-encode `/` inside values.
                    _ => rest.strip_prefix('/').map(|bag| Inbound::Telemetry {
                        property_bag: bag.strip_suffix('/').unwrap_or(bag),
                    }),
                };
            }
            match path.trim_end_matches('/') {
                "$iothub/twin/GET" => Some(Inbound::TwinGet { rid: rid()? }),
                "$iothub/twin/PATCH/properties/reported" => {
                    Some(Inbound::TwinReportedPatch { rid: rid()? })
                }
                other => {
                    let status = other.strip_prefix("$iothub/methods/res/")?;
                    (!status.is_empty() && !status.contains('/')).then_some(
                        Inbound::MethodResponse {
                            rid: rid()?,
                            status,
                        },
                    )
                }
            }
        }
    }
}

/// True when `principal` may subscribe to `filter`: one of its documented filters, or a
/// narrower literal prefix of one.
pub fn may_subscribe(principal: Principal<'_>, filter: &str) -> bool {
    if !valid_filter(filter) {
        return false;
    }
    let allowed: Vec<String> = match principal {
        Principal::Registration => vec!["$dps/registrations/res/#".into()],
        Principal::Device {
            device_id,
            module_id,
        } => {
            let mut list = vec![
                "$iothub/twin/res/#".to_owned(),
                "$iothub/twin/PATCH/properties/desired/#".to_owned(),
                "$iothub/methods/POST/#".to_owned(),
            ];
            match module_id {
                Some(m) => {
                    list.push(format!("devices/{device_id}/modules/{m}/inputs/#"));
                    list.push(format!("devices/{device_id}/modules/{m}/#"));
                }
                None => {
                    list.push(format!("devices/{device_id}/messages/devicebound/#"));
                    // azure-sdk-for-c's form; only this device's messages ever reach it.
                    list.push("devices/+/messages/devicebound/#".to_owned());
                }
            }
            list
        }
    };
    allowed.iter().any(|pattern| {
        filter == pattern
            || pattern.strip_suffix('#').is_some_and(|prefix| {
                filter.starts_with(prefix) && !filter[prefix.len()..].contains('+')
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: Principal<'static> = Principal::Device {
        device_id: "dev-1",
        module_id: None,
    };

    #[test]
    fn device_publishes_only_to_its_own_topics() {
        assert_eq!(
            classify_publish(DEV, "devices/dev-1/messages/events/%24.mid=1&a=b"),
            Some(Inbound::Telemetry {
                property_bag: "%24.mid=1&a=b"
            })
        );
        assert_eq!(
            classify_publish(DEV, "devices/dev-1/messages/events/"),
            Some(Inbound::Telemetry { property_bag: "" })
        );
        assert_eq!(
            classify_publish(DEV, "devices/dev-1/messages/events/%24.mid=1&a=b%2F/"),
            Some(Inbound::Telemetry {
                property_bag: "%24.mid=1&a=b%2F"
            }),
            "a trailing slash ends the bag (Node sendOutputEvent)"
        );
        let module = Principal::Device {
            device_id: "dev-1",
            module_id: Some("m1"),
        };
        assert_eq!(
            classify_publish(
                module,
                "devices/dev-1/modules/m1/messages/events/%24.on=alerts&%24.mid=x&run=1/"
            ),
            Some(Inbound::Telemetry {
                property_bag: "%24.on=alerts&%24.mid=x&run=1"
            })
        );
        assert_eq!(
            classify_publish(DEV, "devices/dev-2/messages/events/"),
            None
        );
        assert_eq!(
            classify_publish(DEV, "devices/dev-10/messages/events/"),
            None
        );
        assert_eq!(
            classify_publish(DEV, "devices/dev-1/messages/eventsX"),
            None
        );
        assert_eq!(
            classify_publish(DEV, "$dps/registrations/PUT/iotdps-register/?$rid=1"),
            None
        );
        assert_eq!(
            classify_publish(DEV, "$iothub/methods/res/200/?$rid=9"),
            Some(Inbound::MethodResponse {
                rid: "9",
                status: "200"
            })
        );
        assert_eq!(classify_publish(DEV, "$iothub/twin/GET/"), None, "no $rid");
    }

    #[test]
    fn dps_client_publishes_only_register_and_poll() {
        let p = Principal::Registration;
        assert_eq!(
            classify_publish(p, "$dps/registrations/PUT/iotdps-register/?$rid=abc"),
            Some(Inbound::DpsRegister { rid: "abc" })
        );
        assert_eq!(
            classify_publish(
                p,
                "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.a.b%2Dc"
            ),
            Some(Inbound::DpsPoll {
                rid: "2",
                operation_id: "4.a.b-c".into()
            })
        );
        assert_eq!(classify_publish(p, "devices/x/messages/events/"), None);
    }

    #[test]
    fn subscriptions_follow_the_identity() {
        assert!(may_subscribe(DEV, "devices/dev-1/messages/devicebound/#"));
        assert!(may_subscribe(DEV, "devices/+/messages/devicebound/#"));
        assert!(may_subscribe(DEV, "$iothub/twin/res/#"));
        assert!(may_subscribe(DEV, "$iothub/methods/POST/reboot/#"));
        assert!(!may_subscribe(DEV, "devices/dev-2/messages/devicebound/#"));
        assert!(!may_subscribe(DEV, "#"));
        assert!(!may_subscribe(DEV, "$iothub/#"));
        assert!(!may_subscribe(DEV, "$dps/registrations/res/#"));
        assert!(may_subscribe(
            Principal::Registration,
            "$dps/registrations/res/#"
        ));
        assert!(!may_subscribe(
            Principal::Registration,
            "$iothub/twin/res/#"
        ));
    }
}
