//! `--ready-file FILE` (the binary's, not the library's): once every listener is up, the
//! emulator writes what a test harness needs to reach it — the ports it really bound (free
//! ports included), the control URL, connection strings that carry the HTTPS port when it is
//! not 443 — as one JSON object. The Python (`iotemu.start`) and Node (`startIotemu`) wrappers
//! start iotemu on free ports and read it instead of parsing the human banner.
//!
//! The file is written to a temporary name and renamed, so a reader polling for it never sees
//! half of it.

use std::net::SocketAddr;
use std::path::Path;

use iotemu::Emulator;
use serde_json::{Value, json};

/// The JSON document written to the ready file.
pub fn describe(emulator: &Emulator, ca_file: Option<&Path>) -> Value {
    let https_port = emulator.https_port();
    // The REST SDKs take `HostName=host:port`; Azure's own strings never carry 443.
    let with_port = |host: &str| match https_port {
        Some(port) if port != 443 => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    let dps = emulator.dps();
    let hubs: Vec<Value> = emulator
        .hubs()
        .all()
        .iter()
        .map(|hub| {
            json!({
                "hostName": hub.host_name(),
                "connectionString": hub.policies().first()
                    .map(|p| p.connection_string(&with_port(hub.host_name()))),
                "eventHubsConnectionString":
                    hub.event_hubs_connection_string(Some(emulator.amqp_port())),
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "controlUrl": emulator.control_addr().map(control_url),
        "mqttPort": emulator.mqtt_port(),
        "amqpPort": emulator.amqp_port(),
        "httpsPort": https_port,
        "caFile": ca_file.map(|p| p.display().to_string()),
        "idScope": emulator.id_scope(),
        "dpsHost": emulator.dps_host(),
        "dpsServiceConnectionString": dps.policies().first()
            .map(|p| p.connection_string(&with_port(dps.host_name()))),
        "hubs": hubs,
    })
}

/// `http://` URL of the control port a local client dials: a wildcard bind answers on
/// loopback.
fn control_url(addr: SocketAddr) -> String {
    let reachable = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], a.port()))
        }
        other => other,
    };
    format!("http://{reachable}")
}

/// Writes `doc` to `path` through a temporary file in the same directory and a rename.
pub fn write(path: &Path, doc: &Value) -> Result<(), String> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let text = format!("{doc:#}\n");
    std::fs::write(&temp, text)
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|e| format!("cannot write the ready file {}: {e}", path.display()))
}
