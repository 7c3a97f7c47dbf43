//! IoT Plug and Play over AMQP end to end, with `fe2o3-amqp` as the device: a model id in the
//! attach properties of a device link (`com.microsoft:model-id`, as the Java and C device SDKs
//! send it) is on the device's twin as `modelId` once the link is attached; a link without
//! one, or with a value that is no DTMI, is still served and changes nothing.

use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::definitions::Fields;
use fe2o3_amqp::types::messaging::{Body, Data, Message, Outcome};
use fe2o3_amqp::types::primitives::{Binary, Symbol, Value};
use iotemu::SymmetricKey;
use iotemu_e2e::amqp::device_session;
use iotemu_e2e::{QUICKSTART_DEVICE_ID, QUICKSTART_KEY, start_emulator};

const THERMOSTAT: &str = "dtmi:com:example:Thermostat;1";

fn model_id_property(value: Value) -> Fields {
    let mut fields = Fields::new();
    fields.insert(Symbol::from("com.microsoft:model-id"), value);
    fields
}

fn telemetry(bytes: &[u8]) -> Message<Body<Value>> {
    Message::builder()
        .body(Body::Data(vec![Data(Binary::from(bytes.to_vec()))].into()))
        .build()
}

#[tokio::test]
async fn a_model_id_in_the_attach_properties_is_on_the_twin() {
    let emulator = start_emulator(None).await;
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    let hub = emulator.default_hub().clone();
    hub.provision_device(QUICKSTART_DEVICE_ID, key.clone(), key, None);
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let events = format!("/devices/{QUICKSTART_DEVICE_ID}/messages/events");

    // A value that is no DTMI: served, nothing stored.
    let mut ignored = Sender::builder()
        .name("events-not-a-dtmi")
        .target(events.clone())
        .properties(model_id_property(Value::String("thermostat".into())))
        .attach(&mut session)
        .await
        .unwrap();
    let sent = ignored.send(telemetry(b"one")).await.unwrap();
    assert!(matches!(sent, Outcome::Accepted(_)), "{sent:?}");
    assert_eq!(
        hub.device_twin(QUICKSTART_DEVICE_ID).unwrap().model_id,
        None
    );
    ignored.close().await.unwrap();

    let mut sender = Sender::builder()
        .name("events")
        .target(events)
        .properties(model_id_property(Value::String(THERMOSTAT.into())))
        .attach(&mut session)
        .await
        .unwrap();
    assert_eq!(
        hub.device_twin(QUICKSTART_DEVICE_ID)
            .unwrap()
            .model_id
            .as_deref(),
        Some(THERMOSTAT),
        "stored before the attach was answered"
    );
    let sent = sender.send(telemetry(b"two")).await.unwrap();
    assert!(matches!(sent, Outcome::Accepted(_)), "{sent:?}");
    sender.close().await.unwrap();
    session.end().await.unwrap();
    connection.close().await.unwrap();
}
