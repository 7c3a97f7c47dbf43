//! `iotemu --ready-file FILE`: what the Python and Node wrappers read to learn the ports a
//! free-port start really took. The file must exist once the banner says ready, name every
//! bound port, carry the HTTPS port in the REST connection strings, and point at a control
//! port that answers.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use support::FREE_PORTS;

#[test]
fn ready_file_names_the_bound_ports_and_port_carrying_connection_strings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ready = dir.path().join("ready.json");
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_iotemu"))
        .args(FREE_PORTS)
        .arg("--ready-file")
        .arg(&ready)
        .arg("--ca-out")
        .arg(&ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("iotemu starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let ready_seen = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "iotemu ready");
    assert!(ready_seen, "iotemu never printed `iotemu ready`");

    let text = std::fs::read_to_string(&ready).expect("the ready file exists once ready");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the ready file is JSON");
    let port = |name: &str| {
        doc[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {doc}"))
    };
    let (mqtt, amqp, https) = (port("mqttPort"), port("amqpPort"), port("httpsPort"));
    assert!(mqtt != 0 && amqp != 0 && https != 0, "{doc}");
    assert_ne!(https, 443, "a free port was asked for: {doc}");
    assert_eq!(doc["idScope"], "0ne00000A0A");
    assert_eq!(doc["caFile"], ca.display().to_string());
    let hub = &doc["hubs"][0];
    assert_eq!(hub["hostName"], "localhost");
    let hub_cs = hub["connectionString"]
        .as_str()
        .expect("hub connection string");
    assert!(
        hub_cs.starts_with(&format!(
            "HostName=localhost:{https};SharedAccessKeyName=iothubowner;"
        )),
        "{hub_cs}"
    );
    let dps_cs = doc["dpsServiceConnectionString"]
        .as_str()
        .expect("DPS service connection string");
    assert!(
        dps_cs.starts_with(&format!("HostName=localhost:{https};")),
        "{dps_cs}"
    );
    let event_hubs = hub["eventHubsConnectionString"]
        .as_str()
        .expect("Event Hubs connection string");
    assert!(
        event_hubs.starts_with(&format!("Endpoint=sb://localhost:{amqp}/;")),
        "{event_hubs}"
    );

    let control = doc["controlUrl"].as_str().expect("controlUrl");
    let addr = control
        .strip_prefix("http://")
        .expect("an http:// control URL");
    let mut tcp = TcpStream::connect(addr).expect("the control port accepts");
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request sent");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("answer read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    child.kill().expect("kill");
    child.wait().expect("wait");
}
