//! The MQTT session state machine (emulator/src/mqtt/session.rs) of a real emulator fed
//! arbitrary packet sequences over an in-memory pipe. The first byte picks who connects:
//!
//! * 0 — a DPS registration, with a valid CONNECT sent first (quickstart enrollment);
//! * 1 — a hub device, with a valid CONNECT sent first (quickstart device);
//! * anything else — nobody: the rest of the input is the whole byte stream, CONNECT
//!   included.
//!
//! So most inputs are spent after authentication: publishes to every topic, subscribes,
//! acks, twin and method traffic, and protocol violations mid-session. The session must end
//! (the pipe is closed after the input) without panicking, within the deadline.
#![no_main]

use bytes::BytesMut;
use iotemu::internals::mqtt::codec::{self, Connect, Packet, Protocol};
use iotemu::internals::mqtt::{PeerInfo, run_session};
use iotemu_fuzz::{peer, world};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&who, rest)) = data.split_first() else {
        return;
    };
    iotemu_fuzz::reset_device_twin();
    let credentials = &world().credentials;
    let (client_id, username, password) = match who {
        0 => (
            iotemu_fuzz::REGISTRATION_ID,
            &credentials.dps_username,
            &credentials.dps_password,
        ),
        1 => (
            iotemu_fuzz::DEVICE_ID,
            &credentials.device_username,
            &credentials.device_password,
        ),
        _ => ("", &String::new(), &String::new()),
    };
    let mut stream = BytesMut::new();
    if !client_id.is_empty() {
        let mut connect = Connect::new(client_id);
        connect.protocol = Protocol::V4;
        connect.keep_alive = 60;
        connect.set_login(username.as_str(), password.as_str());
        codec::encode(&Packet::Connect(connect), &mut stream).expect("CONNECT encodes");
    }
    stream.extend_from_slice(rest);
    let ctx = world().mqtt.clone();
    iotemu_fuzz::exchange(&stream, move |server| async move {
        let peer = PeerInfo {
            remote: peer(),
            certificates: Vec::new(),
        };
        run_session(server, peer, ctx).await;
    });
});
