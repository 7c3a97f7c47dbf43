//! The built-in Event Hubs-compatible endpoint end to end, with `fe2o3-amqp` as the client
//! doing what `azure-eventhub` / `@azure/event-hubs` do (spec/amqp.md §4): CBS for
//! `sb://{host}/{entity}…`, `$management` READs, partition receivers with selector filters
//! in both encodings and owner levels, the IoT Hub connection-string redirect — after an
//! MQTT device sent the telemetry.

use fe2o3_amqp::link::LinkStateError;
use fe2o3_amqp::link::{Receiver, RecvError, Sender};
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::Error;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties, Source,
};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Symbol, Uuid, Value};
use fe2o3_amqp::{Session, link::receiver::CreditMode};
use iotemu::SymmetricKey;
use iotemu::internals::amqp::symbol_of;
use iotemu_device::{DeviceClient, Message as DeviceMessage};
use iotemu_e2e::amqp::{CbsClient, Login, connect, owner_token};
use iotemu_e2e::{QUICKSTART_KEY, quickstart_device, start_emulator, within};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use serde_json::json;

const ENTITY: &str = "localhost";
const SELECTOR: &str = "apache.org:selector-filter:string";

async fn device(emulator: &iotemu::Emulator, device_id: &str) -> DeviceClient {
    let device = quickstart_device(emulator, device_id, None).connect();
    device.await.expect("device connects")
}

/// A session whose connection put `iothubowner` tokens for the entity, as pyamqp does.
async fn eventhubs_session(
    emulator: &iotemu::Emulator,
) -> (
    fe2o3_amqp::connection::ConnectionHandle<()>,
    SessionHandle<()>,
) {
    let mut connection = connect(emulator, Login::Anonymous).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let audience = format!("sb://localhost/{ENTITY}");
    let reply = cbs
        .put_token(
            &audience,
            &owner_token(&audience),
            MessageId::Uuid(Uuid::from([7; 16])),
        )
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    (connection, session)
}

/// How a receiver names its start position.
#[derive(Clone, Copy)]
enum FilterEncoding {
    /// pyamqp: descriptor = the filter's symbol.
    Symbol,
    /// core-amqp: descriptor = ulong 0x0000468C00000004.
    Code,
}

async fn consumer(
    session: &mut SessionHandle<()>,
    address: &str,
    selector: Option<&str>,
    encoding: FilterEncoding,
    epoch: Option<i64>,
) -> Receiver {
    let mut source = Source::builder().address(address.to_owned());
    if let Some(selector) = selector {
        let descriptor = match encoding {
            FilterEncoding::Symbol => Descriptor::Name(Symbol::from(SELECTOR)),
            FilterEncoding::Code => Descriptor::Code(0x0000_468C_0000_0004),
        };
        let mut filter = OrderedMap::new();
        filter.insert(
            Symbol::from(SELECTOR),
            Value::Described(Box::new(Described {
                descriptor,
                value: Value::String(selector.to_owned()),
            })),
        );
        source = source.filter(filter);
    }
    let mut builder = Receiver::builder()
        .name(format!("consumer-{}", uuid::Uuid::new_v4()))
        .source(source.build())
        .target("consumer")
        .credit_mode(CreditMode::Auto(300))
        .add_desired_capabilities("com.microsoft:enable-receiver-runtime-metric");
    if let Some(epoch) = epoch {
        let mut properties = OrderedMap::new();
        properties.insert(Symbol::from("com.microsoft:epoch"), Value::Long(epoch));
        builder = builder.properties(properties);
    }
    within("consumer attach", builder.attach(session))
        .await
        .expect("consumer attaches")
}

fn partition_address(partition: usize) -> String {
    format!("{ENTITY}/ConsumerGroups/$Default/Partitions/{partition}")
}

async fn next_event(receiver: &mut Receiver) -> Message<Body<Value>> {
    let delivery = within("event", receiver.recv::<Body<Value>>())
        .await
        .expect("an event");
    receiver.accept(&delivery).await.expect("accepted");
    delivery.into_message()
}

/// The error the emulator detached `receiver` with.
async fn detach_error(receiver: &mut Receiver) -> Error {
    match within("detach", receiver.recv::<Body<Value>>()).await {
        Err(RecvError::LinkStateError(
            LinkStateError::RemoteClosedWithError(e) | LinkStateError::RemoteDetachedWithError(e),
        )) => e,
        other => panic!("expected a detach with an error, got {other:?}"),
    }
}

fn annotation(message: &Message<Body<Value>>, key: &str) -> Value {
    message
        .message_annotations
        .as_ref()
        .and_then(|a| a.0.get(&OwnedKey::Symbol(Symbol::from(key))))
        .cloned()
        .unwrap_or_else(|| panic!("annotation {key}"))
}

fn sequence_number(message: &Message<Body<Value>>) -> i64 {
    match annotation(message, "x-opt-sequence-number") {
        Value::Long(n) => n,
        other => panic!("x-opt-sequence-number is {other:?}"),
    }
}

fn body_bytes(message: &Message<Body<Value>>) -> Vec<u8> {
    match &message.body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.to_vec()).collect(),
        other => panic!("body {other:?}"),
    }
}

/// One `$management` READ over a sender/receiver pair on `$management`.
async fn management_read(
    session: &mut SessionHandle<()>,
    properties: &[(&str, &str)],
) -> (i32, Option<MessageId>, Value) {
    let mut sender = Sender::attach(session, "mgmt-sender", "$management")
        .await
        .unwrap();
    let mut receiver = Receiver::attach(session, "mgmt-receiver", "$management")
        .await
        .unwrap();
    let mut application =
        ApplicationProperties::builder().insert("operation", SimpleValue::String("READ".into()));
    for (key, value) in properties {
        application = application.insert(key.to_string(), SimpleValue::String(value.to_string()));
    }
    let request = Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::Uuid(Uuid::from([3; 16]))),
            reply_to: Some("mgmt-receiver".into()),
            ..Default::default()
        })
        .application_properties(application.build())
        .body(Body::<Value>::Value(AmqpValue(Value::Null)))
        .build();
    within("management send", sender.send(request))
        .await
        .expect("request settled");
    let response = next_event(&mut receiver).await;
    let status = match response
        .application_properties
        .as_ref()
        .and_then(|p| p.0.get("status-code"))
    {
        Some(SimpleValue::Int(code)) => *code,
        other => panic!("status-code {other:?}"),
    };
    let correlation = response
        .properties
        .as_ref()
        .and_then(|p| p.correlation_id.clone());
    let value = match response.body {
        Body::Value(AmqpValue(value)) => value,
        other => panic!("management body {other:?}"),
    };
    sender.close().await.unwrap();
    receiver.close().await.unwrap();
    (status, correlation, value)
}

fn field<'a>(map: &'a Value, key: &str) -> &'a Value {
    match map {
        Value::Map(map) => map
            .get(&Value::String(key.to_owned()))
            .unwrap_or_else(|| panic!("no {key}")),
        other => panic!("not a map: {other:?}"),
    }
}

#[tokio::test]
async fn management_reads_the_hub_and_its_partitions() {
    let emulator = start_emulator(None).await;
    let connection_string = emulator.event_hubs_connection_string().unwrap();
    assert!(
        connection_string.starts_with(&format!(
            "Endpoint=sb://localhost:{}/;SharedAccessKeyName=iothubowner;SharedAccessKey=",
            emulator.amqp_port()
        )) && connection_string.ends_with(";EntityPath=localhost"),
        "{connection_string}"
    );
    let (_connection, mut session) = eventhubs_session(&emulator).await;
    let (status, correlation, hub) = management_read(
        &mut session,
        &[("type", "com.microsoft:eventhub"), ("name", ENTITY)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(correlation, Some(MessageId::Uuid(Uuid::from([3; 16]))));
    assert_eq!(field(&hub, "name"), &Value::String(ENTITY.into()));
    assert!(matches!(field(&hub, "created_at"), Value::Timestamp(_)));
    let ids: Vec<Value> = ["0", "1", "2", "3"]
        .map(|id| Value::String(id.into()))
        .to_vec();
    assert_eq!(field(&hub, "partition_ids"), &Value::Array(ids.into()));

    let (status, _, partition) = management_read(
        &mut session,
        &[
            ("type", "com.microsoft:partition"),
            ("name", ENTITY),
            ("partition", "2"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(field(&partition, "partition"), &Value::String("2".into()));
    assert_eq!(
        field(&partition, "last_enqueued_sequence_number"),
        &Value::Long(-1)
    );
    assert_eq!(
        field(&partition, "last_enqueued_offset"),
        &Value::String("-1".into())
    );
    assert_eq!(field(&partition, "begin_sequence_number"), &Value::Long(0));
    assert!(matches!(
        field(&partition, "last_enqueued_time_utc"),
        Value::Timestamp(_)
    ));
    assert_eq!(field(&partition, "is_partition_empty"), &Value::Bool(true));

    let (status, _, _) = management_read(
        &mut session,
        &[("type", "com.microsoft:eventhub"), ("name", "nope")],
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn management_without_a_token_is_401_and_consumers_are_refused() {
    let emulator = start_emulator(None).await;
    let mut connection = connect(&emulator, Login::Anonymous).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let (status, _, _) = management_read(
        &mut session,
        &[("type", "com.microsoft:eventhub"), ("name", ENTITY)],
    )
    .await;
    assert_eq!(status, 401);
    let mut receiver = consumer(
        &mut session,
        &partition_address(0),
        Some("amqp.annotation.x-opt-offset > '-1'"),
        FilterEncoding::Symbol,
        None,
    )
    .await;
    let error = detach_error(&mut receiver).await;
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");
}

#[tokio::test]
async fn telemetry_arrives_with_its_annotations_from_every_kind_of_position() {
    let emulator = start_emulator(None).await;
    let device_id = "eh-device-1";
    let client = device(&emulator, device_id).await;
    for i in 0..3 {
        let message = DeviceMessage::new(format!("{{\"n\":{i}}}"))
            .message_id(format!("m-{i}"))
            .correlation_id("c-1")
            .content_type("application/json")
            .property("alert", "yes");
        within("telemetry", client.send_telemetry(message))
            .await
            .unwrap();
    }
    let hub = emulator.default_hub();
    let partition = hub.event_hubs().partition_index(device_id);
    let (_connection, mut session) = eventhubs_session(&emulator).await;

    // From the start (pyamqp's encoding), skipping the connection-state event.
    let mut from_start = consumer(
        &mut session,
        &format!("amqps://localhost/{}", partition_address(partition)),
        Some("amqp.annotation.x-opt-offset > '-1'"),
        FilterEncoding::Symbol,
        None,
    )
    .await;
    let mut telemetry = Vec::new();
    while telemetry.len() < 3 {
        let event = next_event(&mut from_start).await;
        if annotation(&event, "iothub-message-source") == Value::String("Telemetry".into()) {
            telemetry.push(event);
        }
    }
    let first = &telemetry[0];
    assert_eq!(body_bytes(first), b"{\"n\":0}");
    assert!(matches!(
        annotation(first, "x-opt-offset"),
        Value::String(_)
    ));
    assert!(matches!(
        annotation(first, "x-opt-enqueued-time"),
        Value::Timestamp(_)
    ));
    assert!(matches!(
        annotation(first, "iothub-enqueuedtime"),
        Value::Timestamp(_)
    ));
    assert_eq!(
        annotation(first, "iothub-connection-device-id"),
        Value::String(device_id.into())
    );
    match annotation(first, "iothub-connection-auth-method") {
        Value::String(json) => assert!(json.contains("\"type\":\"sas\""), "{json}"),
        other => panic!("auth method {other:?}"),
    }
    assert!(matches!(
        annotation(first, "iothub-connection-auth-generation-id"),
        Value::String(_)
    ));
    let properties = first.properties.as_ref().unwrap();
    assert_eq!(properties.message_id, Some(MessageId::String("m-0".into())));
    assert_eq!(
        properties.correlation_id,
        Some(MessageId::String("c-1".into()))
    );
    assert_eq!(
        properties.content_type,
        Some(Symbol::from("application/json"))
    );
    assert_eq!(
        first
            .application_properties
            .as_ref()
            .unwrap()
            .0
            .get("alert"),
        Some(&SimpleValue::String("yes".into()))
    );
    assert!(
        first
            .delivery_annotations
            .as_ref()
            .is_some_and(|d| d.0.contains_key(&OwnedKey::Symbol(Symbol::from(
                "last_enqueued_sequence_number"
            )))),
        "runtime metric annotations"
    );
    let seq: Vec<i64> = telemetry.iter().map(sequence_number).collect();
    assert!(seq.windows(2).all(|w| w[1] == w[0] + 1), "{seq:?}");
    let second_offset = match annotation(&telemetry[1], "x-opt-offset") {
        Value::String(offset) => offset,
        other => panic!("{other:?}"),
    };

    // From a sequence number (core-amqp's encoding), an offset, and an enqueued time.
    let positions = [
        (
            format!("amqp.annotation.x-opt-sequence-number > '{}'", seq[0]),
            seq[1],
        ),
        (
            format!("amqp.annotation.x-opt-offset >= '{second_offset}'"),
            seq[1],
        ),
        (
            format!("amqp.annotation.x-opt-offset > '{second_offset}'"),
            seq[2],
        ),
        ("amqp.annotation.x-opt-enqueued-time > '0'".to_owned(), 0),
    ];
    for (selector, expected) in positions {
        let mut receiver = consumer(
            &mut session,
            &partition_address(partition),
            Some(&selector),
            FilterEncoding::Code,
            None,
        )
        .await;
        assert_eq!(
            sequence_number(&next_event(&mut receiver).await),
            expected,
            "{selector}"
        );
        receiver.close().await.unwrap();
    }

    // From @latest: the next event is the one sent after the attach.
    let mut latest = consumer(
        &mut session,
        &partition_address(partition),
        Some("amqp.annotation.x-opt-offset > '@latest'"),
        FilterEncoding::Symbol,
        None,
    )
    .await;
    within(
        "telemetry",
        client.send_telemetry(DeviceMessage::new("after").message_id("late")),
    )
    .await
    .unwrap();
    let late = next_event(&mut latest).await;
    assert_eq!(body_bytes(&late), b"after");
    assert_eq!(
        late.properties.as_ref().unwrap().message_id,
        Some(MessageId::String("late".into()))
    );
    // The connection-state and telemetry events went to the same partition, in order.
    let log = hub.event_hubs().partitions()[partition].events();
    assert!(log.iter().all(|e| *e.message.device_id == *device_id));
}

#[tokio::test]
async fn a_device_always_uses_one_of_the_four_partitions() {
    let emulator = start_emulator(None).await;
    let hub = emulator.default_hub();
    assert_eq!(hub.event_hubs().partitions().len(), 4);
    let client = device(&emulator, "eh-device-2").await;
    for _ in 0..5 {
        within("telemetry", client.send_telemetry(DeviceMessage::new("x")))
            .await
            .unwrap();
    }
    let expected = hub.event_hubs().partition_index("eh-device-2");
    for (index, partition) in hub.event_hubs().partitions().iter().enumerate() {
        let telemetry = partition
            .events()
            .iter()
            .filter(|e| &*e.message.device_id == "eh-device-2")
            .count();
        // 5 telemetry events plus the lifecycle and connection-state notifications.
        assert_eq!(telemetry > 0, index == expected, "partition {index}");
    }
}

#[tokio::test]
async fn owner_levels_displace_and_refuse_receivers() {
    let emulator = start_emulator(None).await;
    let (_connection, mut session) = eventhubs_session(&emulator).await;
    let address = partition_address(1);
    let start = Some("amqp.annotation.x-opt-offset > '-1'");
    let mut first = consumer(
        &mut session,
        &address,
        start,
        FilterEncoding::Symbol,
        Some(1),
    )
    .await;
    let mut plain = consumer(&mut session, &address, start, FilterEncoding::Symbol, None).await;
    let error = detach_error(&mut plain).await;
    assert_eq!(symbol_of(&error.condition), "amqp:link:stolen");
    assert!(
        error
            .description
            .unwrap_or_default()
            .contains("non-epoch receiver is not allowed")
    );
    let _second = consumer(
        &mut session,
        &address,
        start,
        FilterEncoding::Symbol,
        Some(2),
    )
    .await;
    let error = detach_error(&mut first).await;
    assert_eq!(symbol_of(&error.condition), "amqp:link:stolen");
}

#[tokio::test]
async fn bad_selectors_unknown_groups_and_partitions_are_refused() {
    let emulator = start_emulator(None).await;
    let (_connection, mut session) = eventhubs_session(&emulator).await;
    let cases = [
        (
            partition_address(0),
            "amqp.annotation.x-opt-offset < '5'",
            "com.microsoft:argument-error",
        ),
        (
            format!("{ENTITY}/ConsumerGroups/nope/Partitions/0"),
            "amqp.annotation.x-opt-offset > '-1'",
            "amqp:not-found",
        ),
        (
            partition_address(4),
            "amqp.annotation.x-opt-offset > '-1'",
            "amqp:not-found",
        ),
        (
            "elsewhere/ConsumerGroups/$Default/Partitions/0".to_owned(),
            "amqp.annotation.x-opt-offset > '-1'",
            "amqp:not-found",
        ),
    ];
    for (address, selector, condition) in cases {
        let mut receiver = consumer(
            &mut session,
            &address,
            Some(selector),
            FilterEncoding::Symbol,
            None,
        )
        .await;
        let error = detach_error(&mut receiver).await;
        assert_eq!(
            symbol_of(&error.condition),
            condition,
            "{address} {selector}"
        );
    }
}

#[tokio::test]
async fn the_iot_hub_connection_string_path_redirects_to_the_entity() {
    let emulator = start_emulator(None).await;
    // The JS sample: SASL PLAIN as `{policy}@sas.root.{hubName}`, token for `{host}/messages/events`.
    let password = owner_token("localhost/messages/events");
    let mut connection = connect(
        &emulator,
        Login::Plain("iothubowner@sas.root.localhost".into(), password),
    )
    .await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let port = emulator.amqp_port();
    for (source, expected) in [
        (
            "amqps://localhost/messages/events/$management".to_owned(),
            format!("amqps://localhost:{port}/{ENTITY}/$management"),
        ),
        (
            "amqps://localhost/messages/events/ConsumerGroups/$Default/Partitions/0".to_owned(),
            format!("amqps://localhost:{port}/{ENTITY}/ConsumerGroups/$Default/Partitions/0"),
        ),
    ] {
        let mut receiver = Receiver::attach(&mut session, "redirected", source.as_str())
            .await
            .unwrap();
        let error = detach_error(&mut receiver).await;
        assert_eq!(symbol_of(&error.condition), "amqp:link:redirect");
        let info = error.info.expect("redirect info");
        let get = |key: &str| info.get(&Symbol::from(key)).cloned();
        assert_eq!(get("address"), Some(Value::String(expected)));
        assert_eq!(get("hostname"), Some(Value::String("localhost".into())));
        assert_eq!(get("network-host"), Some(Value::String("localhost".into())));
        assert_eq!(get("port"), Some(Value::Int(i32::from(port))));
    }
}

#[tokio::test]
async fn a_reported_property_update_arrives_as_a_twin_change_event() {
    let emulator = start_emulator(None).await;
    let device_id = "eh-twin-1";
    let client = device(&emulator, device_id).await;
    let partition = emulator
        .default_hub()
        .event_hubs()
        .partition_index(device_id);
    let (_connection, mut session) = eventhubs_session(&emulator).await;
    let mut receiver = consumer(
        &mut session,
        &partition_address(partition),
        Some("amqp.annotation.x-opt-offset > '@latest'"),
        FilterEncoding::Code,
        None,
    )
    .await;
    within(
        "update_reported",
        client.update_reported(json!({"color": "blue"})),
    )
    .await
    .unwrap();
    let event = next_event(&mut receiver).await;
    assert_eq!(
        annotation(&event, "iothub-message-source"),
        Value::String("twinChangeEvents".into())
    );
    let application = event.application_properties.as_ref().unwrap();
    for (key, value) in [
        ("hubName", "localhost"),
        ("deviceId", device_id),
        ("opType", "updateTwin"),
        ("iothub-message-schema", "twinChangeNotification"),
    ] {
        assert_eq!(
            application.0.get(key),
            Some(&SimpleValue::String(value.into())),
            "{key}"
        );
    }
    let body: serde_json::Value = serde_json::from_slice(&body_bytes(&event)).unwrap();
    assert_eq!(body["properties"]["reported"]["color"], "blue");
    assert!(body["version"].is_number());
}

#[tokio::test]
async fn a_fixture_hub_has_its_own_entity_partitions_and_consumer_groups() {
    let fixture = json!({ "hubs": [{
        "hostName": "hub2.example",
        "sharedAccessPolicies": [{
            "keyName": "iothubowner",
            "primaryKey": iotemu_e2e::HUB_OWNER_KEY,
            "rights": "ServiceConnect"
        }],
        "eventHubEndpoint": { "path": "second", "partitionCount": 2, "consumerGroups": ["Analytics"] }
    }]});
    let emulator = start_emulator(Some(&fixture.to_string())).await;
    let mut connection = connect(&emulator, Login::Anonymous).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let audience = "sb://hub2.example/second";
    let reply = cbs
        .put_token(audience, &owner_token(audience), MessageId::Ulong(1))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    let (status, _, hub) = management_read(
        &mut session,
        &[("type", "com.microsoft:eventhub"), ("name", "second")],
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<Value> = ["0", "1"].map(|id| Value::String(id.into())).to_vec();
    assert_eq!(field(&hub, "partition_ids"), &Value::Array(ids.into()));

    let second = emulator.hub("hub2.example").unwrap();
    second
        .event_hubs()
        .route(std::sync::Arc::new(iotemu::TelemetryMessage {
            sequence_number: 0,
            enqueued_time: std::time::SystemTime::now(),
            hub: "hub2.example".into(),
            device_id: "d".into(),
            module_id: None,
            body: bytes::Bytes::from_static(b"on hub 2"),
            system: Default::default(),
            properties: Default::default(),
            source: iotemu::MessageSource::Telemetry,
            auth: None,
        }));
    let partition = second.event_hubs().partition_index("d");
    let mut receiver = consumer(
        &mut session,
        &format!("second/ConsumerGroups/analytics/Partitions/{partition}"),
        Some("amqp.annotation.x-opt-offset > '-1'"),
        FilterEncoding::Symbol,
        None,
    )
    .await;
    assert_eq!(body_bytes(&next_event(&mut receiver).await), b"on hub 2");
    // The token covers `second`, not the quickstart hub's entity.
    let mut other = consumer(
        &mut session,
        &partition_address(0),
        Some("amqp.annotation.x-opt-offset > '-1'"),
        FilterEncoding::Symbol,
        None,
    )
    .await;
    assert_eq!(
        symbol_of(&detach_error(&mut other).await.condition),
        "amqp:unauthorized-access"
    );
}

#[tokio::test]
async fn a_consumer_is_detached_when_its_token_expires() {
    let emulator = start_emulator(None).await;
    let mut connection = connect(&emulator, Login::Anonymous).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let audience = format!("sb://localhost/{ENTITY}");
    let token = iotemu_e2e::amqp::policy_token(
        &audience,
        "iothubowner",
        iotemu_e2e::HUB_OWNER_KEY,
        iotemu_e2e::seconds_from_now(2),
    );
    let reply = cbs
        .put_token(&audience, &token, MessageId::String("short".into()))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    let mut receiver = consumer(
        &mut session,
        &partition_address(0),
        Some("amqp.annotation.x-opt-offset > '@latest'"),
        FilterEncoding::Symbol,
        None,
    )
    .await;
    let error = detach_error(&mut receiver).await;
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");
}

#[tokio::test]
async fn consumers_read_over_websocket_as_the_event_hubs_clients_dial_it() {
    let emulator = start_emulator(None).await;
    let device_id = "eh-ws-1";
    let client = device(&emulator, device_id).await;
    within(
        "telemetry",
        client.send_telemetry(DeviceMessage::new("over ws").message_id("ws-1")),
    )
    .await
    .unwrap();
    let partition = emulator
        .default_hub()
        .event_hubs()
        .partition_index(device_id);
    let mut connection = iotemu_e2e::amqp::connect_ws(
        &emulator,
        "/$servicebus/websocket",
        "AMQPWSB10",
        Login::Anonymous,
    )
    .await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let audience =
        format!("sb://localhost/{ENTITY}/ConsumerGroups/$Default/Partitions/{partition}");
    let reply = cbs
        .put_token(
            &audience,
            &owner_token(&audience),
            MessageId::String("ws".into()),
        )
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    let mut receiver = consumer(
        &mut session,
        &partition_address(partition),
        Some("amqp.annotation.x-opt-offset > '-1'"),
        FilterEncoding::Code,
        None,
    )
    .await;
    loop {
        let event = next_event(&mut receiver).await;
        if annotation(&event, "iothub-message-source") == Value::String("Telemetry".into()) {
            assert_eq!(body_bytes(&event), b"over ws");
            break;
        }
    }
}

#[tokio::test]
async fn https_telemetry_reaches_the_same_endpoint() {
    let emulator = start_emulator(None).await;
    let device_id = "eh-https-1";
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device(device_id, key.clone(), key, None);
    let sas = iotemu_e2e::device_token(
        "localhost",
        device_id,
        QUICKSTART_KEY,
        iotemu_e2e::seconds_from_now(600),
    );
    let sent = iotemu_e2e::https_request(
        &emulator,
        None,
        "POST",
        &format!("/devices/{device_id}/messages/events?api-version=2021-04-12"),
        &[
            ("Authorization", sas.as_str()),
            ("IoTHub-MessageId", "https-1"),
            ("iothub-app-kind", "rest"),
        ],
        b"from https",
    )
    .await;
    assert_eq!(sent.status, 204);
    let partition = emulator
        .default_hub()
        .event_hubs()
        .partition_index(device_id);
    let (_connection, mut session) = eventhubs_session(&emulator).await;
    let mut receiver = consumer(
        &mut session,
        &partition_address(partition),
        Some("amqp.annotation.x-opt-offset > '-1'"),
        FilterEncoding::Symbol,
        None,
    )
    .await;
    loop {
        let event = next_event(&mut receiver).await;
        if annotation(&event, "iothub-message-source") == Value::String("Telemetry".into()) {
            assert_eq!(body_bytes(&event), b"from https");
            assert_eq!(
                event.properties.as_ref().unwrap().message_id,
                Some(MessageId::String("https-1".into()))
            );
            assert_eq!(
                event.application_properties.as_ref().unwrap().0.get("kind"),
                Some(&SimpleValue::String("rest".into()))
            );
            break;
        }
    }
}
