//! Registers a device with DPS, connects to the assigned hub and sends a few telemetry
//! messages — the quickstart flow, against real Azure or iotemu.
//!
//! ```text
//! cargo run -p iotemu-device --example quickstart -- \
//!     <dps-host> <id-scope> <registration-id> <key-b64> [ca.pem] [port]
//! ```
//!
//! With `ca.pem` only that CA is trusted (iotemu's `--ca-out` file); without it the system
//! roots are (real Azure). The port defaults to 8883 and applies to both DPS and the hub.

use std::error::Error;

use iotemu_device::{DeviceClient, Message, ProvisioningClient, Trust};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, id_scope, registration_id, key, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: quickstart <dps-host> <id-scope> <registration-id> <key-b64> [ca.pem] [port]"
        );
        std::process::exit(2);
    };
    let trust = match rest.first() {
        Some(path) => Trust::CaPem(std::fs::read_to_string(path)?),
        None => Trust::SystemRoots,
    };
    let port: u16 = match rest.get(1) {
        Some(port) => port.parse()?,
        None => 8883,
    };

    let registration = ProvisioningClient::builder(host, id_scope, registration_id)
        .symmetric_key(key)
        .trust(trust.clone())
        .port(port)
        .build()?
        .register()
        .await?;
    println!(
        "assigned to {:?} as {:?}",
        registration.registration_state.assigned_hub, registration.registration_state.device_id
    );

    let device = DeviceClient::from_registration(&registration, key)
        .trust(trust)
        .port(port)
        .connect()
        .await?;
    for i in 0..3 {
        let body = format!(r#"{{"temperature":{}}}"#, 20 + i);
        device
            .send_telemetry(
                Message::new(body)
                    .message_id(format!("msg-{i}"))
                    .content_type("application/json")
                    .content_encoding("utf-8"),
            )
            .await?;
        println!("sent message {i}");
    }
    device.disconnect().await?;
    Ok(())
}
