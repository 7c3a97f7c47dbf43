//! Link addresses and the node each one names (spec/amqp.md §2, §3.1, §4, §5.2). Clients
//! write the same node differently — uamqp sends full URLs
//! (`amqps://{host}/messages/devicebound`), rhea bare paths (`/messages/devicebound`),
//! core-amqp paths without the leading `/` (`{entity}/ConsumerGroups/$Default/Partitions/0`)
//! — so an address is reduced to its path and matched case-insensitively, as Azure does.

use fe2o3_amqp::types::definitions::Role;
use fe2o3_amqp::types::messaging::TargetArchetype;
use fe2o3_amqp::types::performatives::Attach;

/// The node an attach is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// `$cbs`: claims-based security (token put).
    Cbs,
    /// `/messages/devicebound`: the service sends C2D messages.
    C2dSend,
    /// `/messages/serviceBound/feedback`: C2D delivery feedback for the service.
    Feedback,
    /// `/messages/serviceBound/filenotifications`: file-upload notifications.
    FileNotifications,
    /// The Event Hubs-compatible endpoint: `$management`, `{entity}/$management`,
    /// `{entity}/ConsumerGroups/{cg}/Partitions/{p}`, `/messages/events…` (redirected).
    EventHubs,
    /// `/devices/{id}/…`: a device's or module's own links ([`DeviceAddress`]).
    Device,
    /// `{idScope}/registrations/{registrationId}`: DPS registration ([`super::dps_link`]).
    DpsRegistration,
    Unknown,
}

/// An address split into the host it names (full URLs only) and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    /// As sent.
    pub raw: String,
    /// Lower-case host of an `amqps://host[:port]/…` address.
    pub host: Option<String>,
    /// The path with a leading `/`, case kept (query and fragment removed).
    pub path: String,
}

impl Address {
    pub(crate) fn parse(raw: &str) -> Address {
        let (host, rest) = match raw.split_once("://") {
            Some((_, rest)) => {
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                let host = match authority.rsplit_once(':') {
                    Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
                    _ => authority,
                };
                (Some(host.to_ascii_lowercase()), path)
            }
            None => (None, raw),
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let path = format!("/{}", rest.trim_start_matches('/'));
        Address {
            raw: raw.to_owned(),
            host,
            path,
        }
    }

    /// Path segments, lower-case, empty ones dropped.
    pub(crate) fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()
    }

    pub(crate) fn node(&self) -> Node {
        let segments = self.segments();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        match s.as_slice() {
            ["$cbs"] => Node::Cbs,
            ["$management"] => Node::EventHubs,
            ["messages", "devicebound"] => Node::C2dSend,
            ["messages", "servicebound", "feedback"] => Node::Feedback,
            [
                "messages",
                "servicebound",
                "filenotifications" | "fileuploadnotifications",
            ] => Node::FileNotifications,
            ["messages", "events", ..] => Node::EventHubs,
            ["devices", ..] => Node::Device,
            [_scope, "registrations", _id] => Node::DpsRegistration,
            [_entity, "$management"] => Node::EventHubs,
            [_entity, "consumergroups", _cg, "partitions", _p] => Node::EventHubs,
            [_entity, "partitions", _p] => Node::EventHubs,
            _ => Node::Unknown,
        }
    }
}

/// What a device link is for (spec/amqp.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceLinkKind {
    /// `…/messages/events`: telemetry from the device (its sender); for a module, its
    /// receiver on the same address takes the module's inputs.
    Events,
    /// `/devices/{id}/messages/devicebound`: C2D messages to the device (its receiver).
    C2d,
    /// `…/methods/devicebound`: direct-method requests (its receiver) and responses (its sender).
    Methods,
    /// `…/twin`: twin requests (its sender) and responses and desired patches (its receiver).
    Twin,
}

/// A device link's address: whose it is and what for. Ids are percent-decoded and keep
/// their case (device ids are case-sensitive); the fixed words match case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceAddress {
    pub device_id: String,
    pub module_id: Option<String>,
    pub kind: DeviceLinkKind,
}

impl DeviceAddress {
    /// `None` for a path that is not one of the device link addresses.
    pub(crate) fn parse(address: &Address) -> Option<DeviceAddress> {
        let segments: Vec<&str> = address.path.split('/').filter(|s| !s.is_empty()).collect();
        let is = |segment: &&str, word: &str| segment.eq_ignore_ascii_case(word);
        let (device, module, rest) = match segments.as_slice() {
            [devices, device, modules, module, rest @ ..]
                if is(devices, "devices") && is(modules, "modules") && !rest.is_empty() =>
            {
                (*device, Some(*module), rest)
            }
            [devices, device, rest @ ..] if is(devices, "devices") => (*device, None, rest),
            _ => return None,
        };
        let kind = match rest {
            [messages, events] if is(messages, "messages") && is(events, "events") => {
                DeviceLinkKind::Events
            }
            [messages, bound]
                if is(messages, "messages") && is(bound, "devicebound") && module.is_none() =>
            {
                DeviceLinkKind::C2d
            }
            [methods, bound] if is(methods, "methods") && is(bound, "devicebound") => {
                DeviceLinkKind::Methods
            }
            [twin] if is(twin, "twin") => DeviceLinkKind::Twin,
            _ => return None,
        };
        Some(DeviceAddress {
            device_id: decode_id(device)?,
            module_id: match module {
                Some(m) => Some(decode_id(m)?),
                None => None,
            },
            kind,
        })
    }
}

fn decode_id(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|id| id.into_owned())
        .filter(|id| !id.is_empty())
}

/// The address an attach is about: the target when the client sends, the source when it
/// receives.
pub(crate) fn attach_address(attach: &Attach) -> Option<Address> {
    let raw = match attach.role {
        Role::Sender => attach.target.as_ref().and_then(|t| match t.as_ref() {
            TargetArchetype::Target(t) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        }),
        Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
    }?;
    Some(Address::parse(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_spelling_reaches_its_node() {
        for (raw, node) in [
            ("$cbs", Node::Cbs),
            ("/$cbs", Node::Cbs),
            ("amqps://hub.example/messages/devicebound", Node::C2dSend),
            ("/messages/devicebound", Node::C2dSend),
            ("/messages/DeviceBound", Node::C2dSend),
            ("/messages/serviceBound/feedback", Node::Feedback),
            (
                "/messages/serviceBound/filenotifications",
                Node::FileNotifications,
            ),
            (
                "/messages/servicebound/fileuploadnotifications",
                Node::FileNotifications,
            ),
            ("$management", Node::EventHubs),
            ("amqps://h:5671/myhub/$management", Node::EventHubs),
            (
                "myhub/ConsumerGroups/$Default/Partitions/0",
                Node::EventHubs,
            ),
            (
                "amqps://h/myhub/ConsumerGroups/$Default/Partitions/3",
                Node::EventHubs,
            ),
            ("amqps://h/messages/events/$management", Node::EventHubs),
            ("/devices/d1/messages/events", Node::Device),
            ("0ne00000A0A/registrations/d1", Node::DpsRegistration),
            (
                "amqps://dps.example/0ne00000A0A/registrations/d1",
                Node::DpsRegistration,
            ),
            ("/nothing/here/at/all/really", Node::Unknown),
            ("", Node::Unknown),
        ] {
            assert_eq!(Address::parse(raw).node(), node, "{raw}");
        }
    }

    #[test]
    fn device_addresses_name_their_identity_and_purpose() {
        let parse = |raw: &str| DeviceAddress::parse(&Address::parse(raw));
        let d = |device: &str, module: Option<&str>, kind| {
            Some(DeviceAddress {
                device_id: device.into(),
                module_id: module.map(Into::into),
                kind,
            })
        };
        use DeviceLinkKind::*;
        assert_eq!(parse("/devices/D1/messages/events"), d("D1", None, Events));
        assert_eq!(
            parse("amqps://h/devices/d%201/messages/deviceBound"),
            d("d 1", None, C2d)
        );
        assert_eq!(
            parse("/devices/d1/modules/m1/messages/events"),
            d("d1", Some("m1"), Events)
        );
        assert_eq!(
            parse("/devices/d1/methods/devicebound"),
            d("d1", None, Methods)
        );
        assert_eq!(
            parse("/devices/d1/modules/m1/methods/devicebound"),
            d("d1", Some("m1"), Methods)
        );
        assert_eq!(parse("/devices/d1/twin"), d("d1", None, Twin));
        assert_eq!(
            parse("/devices/d1/modules/m1/twin"),
            d("d1", Some("m1"), Twin)
        );
        for bad in [
            "/devices/d1",
            "/devices//twin",
            "/devices/d1/modules/m1/messages/devicebound",
            "/devices/d1/messages/events/extra",
            "/devices/%ff/twin",
            "/things/d1/twin",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Any address, however odd, parses without panicking, and a device address found
        /// in it names a non-empty device id.
        #[test]
        fn any_address_parses(raw in "(amqps://[a-z:0-9@]{0,8})?[/a-zA-Z0-9%?#$]{0,40}") {
            let address = Address::parse(&raw);
            let _ = address.node();
            if let Some(device) = DeviceAddress::parse(&address) {
                proptest::prop_assert!(!device.device_id.is_empty());
            }
        }
    }

    #[test]
    fn full_urls_keep_their_host_without_port_or_query() {
        let a = Address::parse("amqps://Hub.Example:5671/messages/devicebound?x=1");
        assert_eq!(a.host.as_deref(), Some("hub.example"));
        assert_eq!(a.path, "/messages/devicebound");
        let b = Address::parse("messages/devicebound");
        assert_eq!(b.host, None);
        assert_eq!(b.path, "/messages/devicebound");
    }
}
