//! Cloud-to-device messages over MQTT (issue #6 item 3): delivery with the encoded property
//! bag, completion on PUBACK, redelivery after reconnect for CleanSession 0, queue limits.

use iotemu::WaitStored;
use std::time::{Duration, SystemTime};

use iotemu::C2dMessage;
use iotemu::SymmetricKey;
use iotemu::internals::mqtt::codec::{ConnAck, Connect, ConnectReturnCode, Packet, PubAck, QoS};
use iotemu_e2e::*;
use rumqttc::mqttbytes::v4::{Login, Subscribe};

/// Connects `device_id` (provisioned with the quickstart key) with the given CleanSession.
async fn connect(emulator: &iotemu::Emulator, device_id: &str, clean: bool) -> (RawClient, bool) {
    let mut client = RawClient::connect(emulator).await;
    let mut connect = Connect::new(device_id);
    connect.keep_alive = 60;
    connect.clean_session = clean;
    connect.login = Some(Login::new(
        hub_username("localhost", device_id),
        device_token(
            "localhost",
            device_id,
            QUICKSTART_KEY,
            seconds_from_now(600),
        ),
    ));
    client.send(Packet::Connect(connect)).await;
    match client.recv(Duration::from_secs(5)).await {
        Ok(Packet::ConnAck(ConnAck {
            code: ConnectReturnCode::Success,
            session_present,
        })) => (client, session_present),
        other => panic!("expected CONNACK 0, got {other:?}"),
    }
}

async fn subscribe_c2d(client: &mut RawClient, device_id: &str) {
    let mut subscribe = Subscribe::new(
        format!("devices/{device_id}/messages/devicebound/#"),
        QoS::AtLeastOnce,
    );
    subscribe.pkid = 1;
    client.send(Packet::Subscribe(subscribe)).await;
    assert!(matches!(
        client.recv(Duration::from_secs(5)).await,
        Ok(Packet::SubAck(_))
    ));
}

fn provision(emulator: &iotemu::Emulator, device_id: &str) {
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device(device_id, key.clone(), key, None);
}

async fn next_c2d(client: &mut RawClient) -> rumqttc::mqttbytes::v4::Publish {
    match client.recv(Duration::from_secs(5)).await {
        Ok(Packet::Publish(p)) => p,
        other => panic!("expected a C2D message, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_arrive_with_their_properties_and_complete_on_puback() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "c2d-1");
    let (mut client, present) = connect(&emulator, "c2d-1", true).await;
    assert!(!present);
    subscribe_c2d(&mut client, "c2d-1").await;
    let hub = emulator.default_hub();
    let mut message = C2dMessage::new("turn on");
    message.message_id = Some("msg-1".into());
    message.correlation_id = Some("corr/1".into());
    message.properties.insert("room".into(), "a b/c".into());
    hub.send_c2d("c2d-1", message).wait_stored().unwrap();

    let delivered = next_c2d(&mut client).await;
    assert_eq!(&delivered.payload[..], b"turn on");
    assert_eq!(delivered.qos, QoS::AtLeastOnce);
    let bag = delivered
        .topic
        .strip_prefix("devices/c2d-1/messages/devicebound/")
        .expect("devicebound topic");
    assert_eq!(
        delivered.topic.split('/').count(),
        5,
        "no raw '/' in the bag: {}",
        delivered.topic
    );
    assert!(bag.contains("%24.mid=msg-1"), "{bag}");
    assert!(bag.contains("%24.cid=corr%2F1"), "{bag}");
    assert!(
        bag.contains("%24.to=%2Fdevices%2Fc2d-1%2Fmessages%2FdeviceBound"),
        "{bag}"
    );
    assert!(bag.contains("room=a%20b%2Fc"), "{bag}");
    assert_eq!(
        hub.c2d_pending("c2d-1").len(),
        1,
        "queued until acknowledged"
    );
    client
        .send(Packet::PubAck(PubAck::new(delivered.pkid)))
        .await;
    client.send(Packet::PingReq).await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PingResp
    );
    assert!(hub.c2d_pending("c2d-1").is_empty());
}

#[tokio::test]
async fn unacknowledged_messages_come_back_after_reconnect_with_clean_session_0() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "c2d-2");
    let hub = emulator.default_hub();
    hub.send_c2d("c2d-2", C2dMessage::new("queued before connecting"))
        .wait_stored()
        .unwrap();
    let (mut client, _) = connect(&emulator, "c2d-2", false).await;
    subscribe_c2d(&mut client, "c2d-2").await;
    let first = next_c2d(&mut client).await;
    assert!(!first.dup);
    drop(client); // no PUBACK

    // Same persistent session: delivered again without subscribing, flagged DUP.
    let (mut client, present) = connect(&emulator, "c2d-2", false).await;
    assert!(present, "CONNACK reports the persistent session");
    let again = next_c2d(&mut client).await;
    assert_eq!(again.payload, first.payload);
    assert!(again.dup);
    client.send(Packet::PubAck(PubAck::new(again.pkid))).await;
    drop(client);

    // A clean session forgets the subscription: nothing arrives until it subscribes.
    hub.send_c2d("c2d-2", C2dMessage::new("later"))
        .wait_stored()
        .unwrap();
    let (mut client, present) = connect(&emulator, "c2d-2", true).await;
    assert!(!present);
    assert_eq!(
        client.recv(Duration::from_millis(300)).await,
        Err(RecvEnd::TimedOut)
    );
    subscribe_c2d(&mut client, "c2d-2").await;
    assert_eq!(&next_c2d(&mut client).await.payload[..], b"later");
}

#[tokio::test]
async fn queue_limits_and_expiry_follow_iot_hub() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "c2d-3");
    let hub = emulator.default_hub();
    for i in 0..50 {
        hub.send_c2d("c2d-3", C2dMessage::new(format!("m{i}")))
            .wait_stored()
            .unwrap();
    }
    assert_eq!(
        hub.send_c2d("c2d-3", C2dMessage::new("one too many"))
            .wait_stored()
            .unwrap_err()
            .code,
        403004
    );
    assert_eq!(
        hub.send_c2d("nobody", C2dMessage::new("x"))
            .wait_stored()
            .unwrap_err()
            .code,
        404001
    );

    provision(&emulator, "c2d-4");
    assert_eq!(
        hub.send_c2d("c2d-4", C2dMessage::new(vec![0u8; 64 * 1024 + 1]))
            .wait_stored()
            .unwrap_err()
            .code,
        413001
    );
    let mut expired = C2dMessage::new("stale");
    expired.expiry = Some(SystemTime::now() - Duration::from_secs(1));
    hub.send_c2d("c2d-4", expired).wait_stored().unwrap();
    hub.send_c2d("c2d-4", C2dMessage::new("fresh"))
        .wait_stored()
        .unwrap();
    let (mut client, _) = connect(&emulator, "c2d-4", true).await;
    subscribe_c2d(&mut client, "c2d-4").await;
    assert_eq!(&next_c2d(&mut client).await.payload[..], b"fresh");
}

/// A hub service call signed by the quickstart `iothubowner` policy, without a body.
async fn service_call(emulator: &iotemu::Emulator, method: &str, path: &str) -> HttpsResponse {
    hub_rest(emulator, method, path, &[], serde_json::Value::Null).await
}

fn with_ack(id: &str, ack: &str) -> C2dMessage {
    let mut message = C2dMessage::new(id.to_owned());
    message.message_id = Some(id.into());
    message.ack = Some(ack.into());
    message
}

#[tokio::test]
async fn feedback_reports_completed_expired_and_purged_messages_as_asked() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "fb-1");
    let hub = emulator.default_hub();
    let generation = hub.device("fb-1").unwrap().generation_id;
    assert_eq!(
        service_call(&emulator, "GET", "/messages/serviceBound/feedback")
            .await
            .status,
        204,
        "nothing to report yet"
    );

    hub.send_c2d("fb-1", with_ack("done-full", "full"))
        .wait_stored()
        .unwrap();
    hub.send_c2d("fb-1", with_ack("done-none", "none"))
        .wait_stored()
        .unwrap();
    hub.send_c2d("fb-1", with_ack("done-negative", "negative"))
        .wait_stored()
        .unwrap();
    let (mut client, _) = connect(&emulator, "fb-1", true).await;
    subscribe_c2d(&mut client, "fb-1").await;
    for _ in 0..3 {
        let delivered = next_c2d(&mut client).await;
        client
            .send(Packet::PubAck(PubAck::new(delivered.pkid)))
            .await;
    }
    drop(client);
    let mut expired = with_ack("late", "positive");
    expired.expiry = Some(SystemTime::now() - Duration::from_secs(1));
    hub.send_c2d("fb-1", expired).wait_stored().unwrap();
    let mut expired = with_ack("late-negative", "negative");
    expired.expiry = Some(SystemTime::now() - Duration::from_secs(1));
    hub.send_c2d("fb-1", expired).wait_stored().unwrap();
    hub.send_c2d("fb-1", with_ack("purged", "full"))
        .wait_stored()
        .unwrap();

    // Reported: the completion of "done-full" (the positive outcomes of "negative"/"none"
    // messages are not) and the expiry of "late-negative", dead-lettered when the next message
    // was queued ("late" asked for positive feedback only). Wait for the PUBACKs to land.
    let outcomes = |records: &serde_json::Value| {
        let mut list: Vec<(String, String)> = records
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["originalMessageId"].as_str().unwrap().to_owned(),
                    r["statusCode"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        list.sort();
        list
    };
    let mut batch = service_call(&emulator, "GET", "/messages/serviceBound/feedback").await;
    for _ in 0..50 {
        if batch.status == 200 && batch.json().as_array().unwrap().len() == 2 {
            break;
        }
        if batch.status == 200 {
            let lock = batch.header("etag").unwrap().trim_matches('"').to_owned();
            service_call(
                &emulator,
                "POST",
                &format!("/messages/serviceBound/feedback/{lock}/abandon"),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        batch = service_call(&emulator, "GET", "/messages/serviceBound/feedback").await;
    }
    assert_eq!(batch.status, 200);
    assert_eq!(
        batch.header("content-type"),
        Some("application/vnd.microsoft.iothub.feedback.json")
    );
    let records = batch.json();
    assert_eq!(
        outcomes(&records),
        [
            ("done-full".to_owned(), "Success".to_owned()),
            ("late-negative".to_owned(), "Expired".to_owned())
        ]
    );
    let success = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["statusCode"] == "Success")
        .unwrap();
    assert_eq!(success["description"], "Success");
    assert_eq!(success["deviceId"], "fb-1");
    assert_eq!(success["deviceGenerationId"], &*generation);
    let lock = batch.header("etag").unwrap().trim_matches('"').to_owned();

    // Abandoned, the batch comes back; completed, it is gone.
    assert_eq!(
        service_call(
            &emulator,
            "POST",
            &format!("/messages/serviceBound/feedback/{lock}/abandon")
        )
        .await
        .status,
        204
    );
    let again = service_call(&emulator, "GET", "/messages/serviceBound/feedback").await;
    assert_eq!(again.json(), records);
    let lock = again.header("etag").unwrap().trim_matches('"').to_owned();
    assert_eq!(
        service_call(
            &emulator,
            "DELETE",
            &format!("/messages/serviceBound/feedback/{lock}")
        )
        .await
        .status,
        204
    );
    let lost = service_call(
        &emulator,
        "DELETE",
        &format!("/messages/serviceBound/feedback/{lock}"),
    )
    .await;
    assert_eq!(lost.status, 412);

    // Purge drops the pending message and reports it (ack full) as Purged (4).
    let purged = service_call(&emulator, "DELETE", "/devices/fb-1/commands").await;
    assert_eq!(purged.status, 200);
    assert_eq!(purged.json()["totalMessagesPurged"], 1);
    assert!(hub.c2d_pending("fb-1").is_empty());
    let batch = service_call(&emulator, "GET", "/messages/serviceBound/feedback").await;
    assert_eq!(
        outcomes(&batch.json()),
        [("purged".to_owned(), "Purged".to_owned())]
    );
    assert_eq!(
        service_call(&emulator, "DELETE", "/devices/nobody/commands")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn expired_and_undeliverable_messages_are_dead_lettered_with_feedback() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "fb-2");
    let hub = emulator.default_hub();
    let mut expired = with_ack("old", "negative");
    expired.expiry = Some(SystemTime::now() - Duration::from_secs(1));
    hub.send_c2d("fb-2", expired).wait_stored().unwrap();
    hub.send_c2d("fb-2", with_ack("bouncing", "full"))
        .wait_stored()
        .unwrap();
    // Ten deliveries without completion (the connection drops each time) exhaust the
    // default maxDeliveryCount.
    for _ in 0..iotemu::internals::hub::MAX_DELIVERY_COUNT {
        let taken = hub.c2d_take("fb-2").expect("deliverable");
        assert_eq!(taken.id, "bouncing");
        hub.c2d_release("fb-2", &taken.id);
    }
    assert!(hub.c2d_take("fb-2").is_none(), "dead-lettered");
    let batch = hub.receive_feedback(SystemTime::now()).unwrap();
    let outcomes: Vec<(&str, u8)> = batch
        .records
        .iter()
        .map(|r| (r.original_message_id.as_str(), r.status as u8))
        .collect();
    assert_eq!(outcomes, [("old", 1), ("bouncing", 2)]);
}
