//! One full DPS registration over MQTT, as a device SDK performs it (Azure's "provision
//! devices with MQTT" documentation): TLS, CONNECT with the DPS username and a registration SAS
//! token, SUBSCRIBE `$dps/registrations/res/#`, PUBLISH `…/PUT/iotdps-register/`, then
//! `…/GET/iotdps-get-operationstatus/` polls until the answer says `assigned`. The server's
//! `retry-after` is not waited for: the benchmark measures the server, not the back-off.

use std::time::{Duration, Instant};

use crate::connection::{Connection, Endpoint};
use crate::device::{self, Device};
use crate::mqtt::{self, Packet};

/// Polls after the first answer before the registration counts as failed.
const MAX_POLLS: u32 = 200;

/// The status code of a DPS response topic `$dps/registrations/res/{status}/?$rid=…`.
pub fn response_status(topic: &str) -> Option<u16> {
    topic
        .strip_prefix("$dps/registrations/res/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Registers `device` and returns how long it took from the TCP connect to `assigned`.
pub async fn register(endpoint: &Endpoint, device: &Device) -> Result<Duration, String> {
    let started = Instant::now();
    let mut conn = Connection::open(endpoint)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let login = device.dps_login();
    mqtt::connect(&mut conn.out, &device::connect_packet(device, &login));
    conn.expect_connack()
        .await
        .map_err(|e| format!("DPS CONNECT of {}: {e}", device.id))?;
    mqtt::subscribe(&mut conn.out, 1, "$dps/registrations/res/#", 1);
    let body = serde_json::json!({ "registrationId": device.id }).to_string();
    mqtt::publish(
        &mut conn.out,
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        Some(2),
        body.as_bytes(),
    );
    conn.flush().await.map_err(|e| format!("PUT: {e}"))?;
    let mut polls = 0u32;
    loop {
        let packet = conn.next().await.map_err(|e| format!("reading: {e}"))?;
        let Packet::Publish {
            topic,
            payload,
            packet_id,
            ..
        } = packet
        else {
            continue;
        };
        if let Some(id) = packet_id {
            mqtt::puback(&mut conn.out, id);
        }
        let answer: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        match response_status(&topic) {
            Some(200) if answer["status"] == "assigned" => break,
            Some(200 | 202) if polls < MAX_POLLS => {
                let Some(operation) = answer["operationId"].as_str() else {
                    return Err(format!("{topic}: no operationId in {answer}"));
                };
                polls += 1;
                let rid = polls + 1;
                let poll = format!(
                    "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={operation}"
                );
                mqtt::publish(&mut conn.out, &poll, None, b"");
                conn.flush().await.map_err(|e| format!("poll: {e}"))?;
            }
            _ => return Err(format!("registration of {}: {topic} {answer}", device.id)),
        }
    }
    let took = started.elapsed();
    conn.close().await;
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_response_topic() {
        assert_eq!(
            response_status("$dps/registrations/res/202/?$rid=1&retry-after=3"),
            Some(202)
        );
        assert_eq!(
            response_status("$dps/registrations/res/200/?$rid=2"),
            Some(200)
        );
        assert_eq!(response_status("$dps/registrations/res/x/?$rid=2"), None);
        assert_eq!(response_status("devices/d/messages/devicebound/"), None);
    }
}
