//! The CONNECT username says who a client wants to talk to. DPS and hub clients share the
//! port and are told apart here (protocol.md §2.2, §5.2):
//!
//! * DPS: `{idScope}/registrations/{registrationId}/api-version=…&ClientVersion=…` (no `?`)
//! * hub device: `{hostname}/{deviceId}/?api-version=…&DeviceClientType=…`
//! * hub module: `{hostname}/{deviceId}/{moduleId}/?api-version=…`

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectTarget {
    Dps {
        id_scope: String,
        registration_id: String,
    },
    Hub {
        host: String,
        device_id: String,
        module_id: Option<String>,
    },
}

impl ConnectTarget {
    /// The MQTT client id this target requires.
    pub fn expected_client_id(&self) -> String {
        match self {
            ConnectTarget::Dps {
                registration_id, ..
            } => registration_id.clone(),
            ConnectTarget::Hub {
                device_id,
                module_id: Some(module),
                ..
            } => format!("{device_id}/{module}"),
            ConnectTarget::Hub { device_id, .. } => device_id.clone(),
        }
    }
}

pub fn parse(username: &str) -> Option<ConnectTarget> {
    let (path, query) = match username.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (username, None),
    };
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let non_empty = |s: &&str| !s.is_empty();
    if query.is_none() && segments.len() >= 3 && segments[1] == "registrations" {
        let rest_ok = match segments.len() {
            3 => true,
            4 => segments[3].starts_with("api-version="),
            _ => false,
        };
        if rest_ok && segments[..3].iter().all(non_empty) {
            return Some(ConnectTarget::Dps {
                id_scope: segments[0].to_owned(),
                registration_id: segments[2].to_owned(),
            });
        }
        return None;
    }
    if !segments.iter().all(non_empty) {
        return None;
    }
    match segments.as_slice() {
        [host, device] => Some(ConnectTarget::Hub {
            host: (*host).to_owned(),
            device_id: (*device).to_owned(),
            module_id: None,
        }),
        [host, device, module] => Some(ConnectTarget::Hub {
            host: (*host).to_owned(),
            device_id: (*device).to_owned(),
            module_id: Some((*module).to_owned()),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_sdks_send() {
        let python_dps = "0ne00000001/registrations/dev-1/api-version=2019-03-31&ClientVersion=azure-iot-device-provisioning-py%2F2.14.0%283.11.7%3BLinux%29";
        assert_eq!(
            parse(python_dps),
            Some(ConnectTarget::Dps {
                id_scope: "0ne00000001".into(),
                registration_id: "dev-1".into()
            })
        );
        let python_hub = "localhost/dev-1/?api-version=2019-10-01&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0";
        assert_eq!(
            parse(python_hub),
            Some(ConnectTarget::Hub {
                host: "localhost".into(),
                device_id: "dev-1".into(),
                module_id: None
            })
        );
        let module = "hub.azure-devices.net/dev-1/mod-a/?api-version=2021-04-12";
        let target = parse(module).unwrap();
        assert_eq!(target.expected_client_id(), "dev-1/mod-a");
        // A device literally named "registrations" on a hub is still a hub client.
        assert!(matches!(
            parse("localhost/registrations/x/?api-version=1"),
            Some(ConnectTarget::Hub { .. })
        ));
    }

    #[test]
    fn rejects_shapes_it_does_not_know() {
        for bad in [
            "",
            "justone",
            "a//b/?x",
            "a/b/c/d/?x",
            "s/registrations/r/x/y",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
