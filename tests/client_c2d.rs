//! Cloud-to-device messages through the `iotemu-device` client against the real emulator:
//! properties parsed from the topic, completion (PUBACK) only when the application asks,
//! redelivery of an uncompleted message after a reconnect, and messages the hub delivers
//! before the application asks for the stream.

use iotemu::WaitStored;
use std::time::{Duration, SystemTime};

use iotemu::C2dMessage;
use iotemu::SymmetricKey;
use iotemu_device::{ConnectionState, DeviceClient, DeviceError, ReconnectPolicy, Trust};
use iotemu_e2e::*;

fn provision(emulator: &iotemu::Emulator, device_id: &str) {
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device(device_id, key.clone(), key, None);
}

fn builder(emulator: &iotemu::Emulator, device_id: &str) -> iotemu_device::DeviceClientBuilder {
    DeviceClient::builder("localhost", device_id)
        .symmetric_key(QUICKSTART_KEY)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .reconnect(
            ReconnectPolicy::default()
                .initial_delay(Duration::from_millis(50))
                .max_delay(Duration::from_millis(200)),
        )
}

/// Waits until the hub holds `count` messages for `device_id`.
async fn pending_becomes(emulator: &iotemu::Emulator, device_id: &str, count: usize) {
    within("hub queue", async {
        while emulator.default_hub().c2d_pending(device_id).len() != count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn messages_carry_their_properties_and_complete_on_request() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "c2d-client-1");
    let client = builder(&emulator, "c2d-client-1").connect().await.unwrap();
    let mut messages = within("c2d_messages", client.c2d_messages()).await.unwrap();

    let mut message = C2dMessage::new("turn on");
    message.message_id = Some("msg-1".into());
    message.correlation_id = Some("corr/1".into());
    message.content_type = Some("text/plain".into());
    message.ack = Some("full".into());
    message.expiry = Some(SystemTime::now() + Duration::from_secs(3600));
    message.properties.insert("room".into(), "a b/c".into());
    let hub = emulator.default_hub();
    hub.send_c2d("c2d-client-1", message).wait_stored().unwrap();

    let received = within("message", messages.next()).await.unwrap();
    assert_eq!(&received.body[..], b"turn on");
    assert_eq!(received.message_id.as_deref(), Some("msg-1"));
    assert_eq!(received.correlation_id.as_deref(), Some("corr/1"));
    assert_eq!(received.content_type.as_deref(), Some("text/plain"));
    assert_eq!(received.ack.as_deref(), Some("full"));
    assert_eq!(
        received.to.as_deref(),
        Some("/devices/c2d-client-1/messages/deviceBound")
    );
    assert!(received.expiry.is_some());
    assert_eq!(received.property("room"), Some("a b/c"));
    assert!(!received.redelivered);

    // Taken but not completed: the hub still holds it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hub.c2d_pending("c2d-client-1").len(), 1);
    within("complete", received.complete()).await.unwrap();
    pending_becomes(&emulator, "c2d-client-1", 0).await;
    client.disconnect().await.unwrap();
}

#[tokio::test]
async fn an_uncompleted_message_comes_back_after_a_reconnect() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "c2d-client-2");
    // A 3 s SAS token makes the client reconnect by itself soon.
    let client = builder(&emulator, "c2d-client-2")
        .sas_ttl(Duration::from_secs(3))
        .connect()
        .await
        .unwrap();
    let mut messages = within("c2d_messages", client.c2d_messages()).await.unwrap();
    emulator
        .default_hub()
        .send_c2d("c2d-client-2", C2dMessage::new("do it once"))
        .wait_stored()
        .unwrap();
    let first = within("first delivery", messages.next()).await.unwrap();
    assert!(!first.redelivered);

    let mut state = client.connection_state();
    within(
        "renewal",
        state.wait_for(
            |s| matches!(s, ConnectionState::Connected { generation } if *generation >= 2),
        ),
    )
    .await
    .unwrap();
    // Its connection is gone, so it can no longer be completed...
    assert!(matches!(
        first.complete().await,
        Err(DeviceError::Disconnected)
    ));
    // ...and the hub delivers it again on the new one.
    let again = within("redelivery", messages.next()).await.unwrap();
    assert_eq!(&again.body[..], b"do it once");
    assert!(again.redelivered);
    within("complete", again.complete()).await.unwrap();
    pending_becomes(&emulator, "c2d-client-2", 0).await;
}

#[tokio::test]
async fn messages_delivered_before_the_stream_is_requested_wait_for_it() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "c2d-client-3");
    // A first session subscribes (CleanSession 0 keeps the subscription) and leaves.
    let first = builder(&emulator, "c2d-client-3").connect().await.unwrap();
    let _ = within("c2d_messages", first.c2d_messages()).await.unwrap();
    first.disconnect().await.unwrap();

    emulator
        .default_hub()
        .send_c2d("c2d-client-3", C2dMessage::new("while offline"))
        .wait_stored()
        .unwrap();
    let client = builder(&emulator, "c2d-client-3").connect().await.unwrap();
    // The hub delivers on connect; the message waits until the stream is asked for.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut messages = within("c2d_messages", client.c2d_messages()).await.unwrap();
    let message = within("message", messages.next()).await.unwrap();
    assert_eq!(&message.body[..], b"while offline");
    within("complete", message.complete()).await.unwrap();
    pending_becomes(&emulator, "c2d-client-3", 0).await;
}
