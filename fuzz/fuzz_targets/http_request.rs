//! Every REST route and body parser (emulator/src/http/router.rs, request.rs and the DPS and
//! hub handlers with their JSON bodies: enrollments, groups, devices, modules, twins, queries,
//! methods, telemetry) of a real emulator, over plain HTTP/1.1 on an in-memory pipe. The first
//! byte picks the shape of the rest:
//!
//! * `0..ROUTES.len()` — a known route with a credential that passes; the rest is the body;
//! * the next `CREDENTIALS.len()` values — a credential; the rest is a request line
//!   (`METHOD /path?query`), a newline, then the body;
//! * anything else — the rest is the raw byte stream (pipelined requests, bad framing,
//!   WebSocket upgrades to MQTT).
#![no_main]

use iotemu_fuzz::{Credentials, peer, world};
use libfuzzer_sys::fuzz_target;

const DPS_API: &str = "api-version=2021-10-01";
const HUB_API: &str = "api-version=2021-04-12";

/// Which credential a route gets.
#[derive(Clone, Copy)]
enum Who {
    Nobody,
    HubOwner,
    DpsOwner,
    Device,
    Registration,
}

const CREDENTIALS: [Who; 5] = [
    Who::Nobody,
    Who::HubOwner,
    Who::DpsOwner,
    Who::Device,
    Who::Registration,
];

const ROUTES: &[(&str, &str, Who)] = &[
    (
        "PUT",
        "/0ne00000A0A/registrations/symm-key-python-device-008/register?api-version=2021-06-01",
        Who::Registration,
    ),
    (
        "POST",
        "/0ne00000A0A/registrations/symm-key-python-device-008?api-version=2021-06-01",
        Who::Registration,
    ),
    ("PUT", "/enrollments/fuzz-enrollment?", Who::DpsOwner),
    ("PUT", "/enrollmentGroups/fuzz-group?", Who::DpsOwner),
    ("POST", "/enrollments?", Who::DpsOwner),
    ("POST", "/enrollmentGroups?", Who::DpsOwner),
    ("POST", "/enrollments/query?", Who::DpsOwner),
    ("POST", "/enrollmentGroups/query?", Who::DpsOwner),
    ("POST", "/registrations/fuzz-group/query?", Who::DpsOwner),
    (
        "POST",
        "/enrollments/fuzz-enrollment/attestationmechanism?",
        Who::DpsOwner,
    ),
    ("PUT", "/devices/fuzz-device?", Who::HubOwner),
    (
        "PUT",
        "/devices/python-device-008/modules/fuzz-module?",
        Who::HubOwner,
    ),
    ("PUT", "/twins/python-device-008?", Who::HubOwner),
    ("PATCH", "/twins/python-device-008?", Who::HubOwner),
    (
        "PATCH",
        "/twins/python-device-008/modules/fuzz-module?",
        Who::HubOwner,
    ),
    ("POST", "/devices/query?", Who::HubOwner),
    ("POST", "/twins/python-device-008/methods?", Who::HubOwner),
    (
        "POST",
        "/devices/python-device-008/messages/events?",
        Who::Device,
    ),
];

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    iotemu_fuzz::reset_device_twin();
    let credentials = &world().credentials;
    let shape = usize::from(shape);
    let stream = if let Some((method, path, who)) = ROUTES.get(shape) {
        let api = if path.starts_with("/0ne") {
            ""
        } else if path.starts_with("/enrollment") || path.starts_with("/registrations") {
            DPS_API
        } else {
            HUB_API
        };
        request(
            method,
            &format!("{path}{api}"),
            token(credentials, *who),
            rest,
        )
    } else if let Some(who) = shape
        .checked_sub(ROUTES.len())
        .and_then(|i| CREDENTIALS.get(i))
    {
        let (line, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        let (method, target) = line.split_once(' ').unwrap_or(("GET", line));
        request(method, target, token(credentials, *who), body)
    } else {
        rest.to_vec()
    };
    let ctx = world().http.clone();
    iotemu_fuzz::exchange(&stream, move |server| {
        iotemu::internals::fuzzing::serve_plain_http(server, peer(), ctx)
    });
});

fn token(credentials: &Credentials, who: Who) -> Option<&str> {
    match who {
        Who::Nobody => None,
        Who::HubOwner => Some(&credentials.hub_owner),
        Who::DpsOwner => Some(&credentials.dps_owner),
        Who::Device => Some(&credentials.device),
        Who::Registration => Some(&credentials.registration),
    }
}

/// One HTTP/1.1 request with a correct `Content-Length`.
fn request(method: &str, target: &str, authorization: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(authorization) = authorization {
        head.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
