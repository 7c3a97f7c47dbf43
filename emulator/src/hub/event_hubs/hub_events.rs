//! Tests of what a hub puts on its built-in endpoint as its devices act: telemetry with the
//! sender's annotations, and the twin change, lifecycle and connection state notifications
//! its routes ask for (and only those).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Value, json};

use super::partition::PartitionEvent;
use super::position::EventPosition;
use super::route::Routes;
use super::{EventHubsConfig, hub_name};
use crate::auth::Credential;
use crate::auth::keys::SymmetricKey;
use crate::auth::sas::build_token;
use crate::hub::event_hubs::route::RoutingSection;
use crate::hub::registry::DeviceSpec;
use crate::hub::telemetry::{IncomingMessage, MessageSource};
use crate::hub::{DeviceIdentity, Hub, Hubs};
use crate::pending::WaitStored;

const HOST: &str = "myhub.example";

fn hubs(routing: &str) -> Arc<Hubs> {
    let routing: RoutingSection = serde_json::from_str(routing).unwrap();
    let config = EventHubsConfig {
        routes: Routes::from_fixture(&routing).unwrap(),
        partition_count: 2,
        ..EventHubsConfig::for_hub(HOST, 100)
    };
    Arc::new(Hubs::new(vec![
        Hub::new(HOST, Vec::new(), 100).with_event_hubs(config),
    ]))
}

const ALL_ROUTES: &str = r#"{"routes":[
    {"name":"t","source":"TwinChangeEvents","endpointNames":["events"]},
    {"name":"l","source":"DeviceLifecycleEvents","endpointNames":["events"]},
    {"name":"c","source":"DeviceConnectionStateEvents","endpointNames":["events"]}]}"#;

fn events_of(hub: &Hub, device_id: &str) -> Vec<PartitionEvent> {
    let endpoint = hub.event_hubs();
    endpoint.partitions()[endpoint.partition_index(device_id)].events()
}

fn create(hub: &Hub, device_id: &str) -> SymmetricKey {
    let spec = DeviceSpec::from_json(
        device_id,
        json!({"deviceId": device_id}).to_string().as_bytes(),
    )
    .unwrap();
    let device = hub.create_device(spec).wait_stored().unwrap();
    device.authentication.sas_keys()[0].clone()
}

fn identity(hubs: &Hubs, device_id: &str, key: &SymmetricKey) -> DeviceIdentity {
    let token = build_token(
        &format!("{HOST}/devices/{device_id}"),
        key.as_bytes(),
        None,
        4_000_000_000,
    );
    let hub = hubs.get(HOST).unwrap();
    hub.authenticate_device(device_id, None, Credential::Sas(&token), SystemTime::now())
        .unwrap()
}

fn body(event: &PartitionEvent) -> Value {
    serde_json::from_slice(&event.message.body).unwrap()
}

// One long test on purpose (tools/arch-report lists it): what it asserts is the order and
// the sequence numbers of every kind of event in one partition, so they must come from one
// device's one life — creation to deletion — in one run.
#[test]
fn telemetry_and_every_notification_reach_the_endpoint() {
    let hubs = hubs(ALL_ROUTES);
    let hub = &hubs.all()[0];
    assert_eq!(hub.name(), "myhub");
    let key = create(hub, "dev-1");
    let who = identity(&hubs, "dev-1", &key);

    let lease = hub.connections().attach("dev-1");
    hub.accept_telemetry(
        &who,
        IncomingMessage {
            body: Bytes::from_static(b"{\"t\":1}"),
            properties: [("alert".to_owned(), "yes".to_owned())].into(),
            ..IncomingMessage::default()
        },
    )
    .unwrap();
    hub.patch_reported(&who, br#"{"color":"blue"}"#)
        .wait_stored()
        .unwrap();
    hub.update_twin(
        "dev-1",
        &json!({"properties":{"desired":{"rate":5}}}),
        None,
        false,
    )
    .wait_stored()
    .unwrap();
    hub.update_twin("dev-1", &json!({"tags":{"site":"a"}}), None, true)
        .wait_stored()
        .unwrap();
    hub.connections().detach("dev-1", lease.id);
    hub.delete_device("dev-1", None).wait_stored().unwrap();

    let events = events_of(hub, "dev-1");
    let seen: Vec<(MessageSource, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e.message.source,
                e.message.properties.get("opType").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                MessageSource::DeviceLifecycleEvents,
                Some("createDeviceIdentity")
            ),
            (
                MessageSource::DeviceConnectionStateEvents,
                Some("deviceConnected")
            ),
            (MessageSource::Telemetry, None),
            (MessageSource::TwinChangeEvents, Some("updateTwin")),
            (MessageSource::TwinChangeEvents, Some("updateTwin")),
            (MessageSource::TwinChangeEvents, Some("replaceTwin")),
            (
                MessageSource::DeviceConnectionStateEvents,
                Some("deviceDisconnected")
            ),
            (
                MessageSource::DeviceLifecycleEvents,
                Some("deleteDeviceIdentity")
            ),
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.sequence_number).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    // Telemetry keeps its properties and says how the device authenticated.
    let telemetry = &events[2].message;
    assert_eq!(telemetry.properties["alert"], "yes");
    let auth = telemetry.auth.as_ref().unwrap();
    assert_eq!(
        auth.method,
        r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#
    );
    let method: Value = serde_json::from_str(auth.method).unwrap();
    assert_eq!(method["scope"], "device");
    assert_eq!(method["type"], "sas");
    assert_eq!(auth.generation_id.len(), 18);
    // The telemetry log (control port, Rust stream) holds the telemetry only.
    assert_eq!(hub.telemetry().messages(None).len(), 1);
    // Bodies: the reported patch; then tags + desired; then the whole twin.
    assert_eq!(body(&events[3])["properties"]["reported"]["color"], "blue");
    assert_eq!(body(&events[4])["properties"]["desired"]["rate"], 5);
    assert_eq!(body(&events[5])["deviceId"], "dev-1");
    assert_eq!(body(&events[5])["tags"]["site"], "a");
    assert!(body(&events[6])["sequenceNumber"].is_string());
    assert_eq!(events[0].message.properties["hubName"], "myhub");
}

#[test]
fn without_routes_only_telemetry_is_appended() {
    let hubs = hubs("{}");
    let hub = &hubs.all()[0];
    let key = create(hub, "dev-2");
    let who = identity(&hubs, "dev-2", &key);
    let _lease = hub.connections().attach("dev-2");
    hub.patch_reported(&who, br#"{"x":1}"#)
        .wait_stored()
        .unwrap();
    hub.accept_telemetry(&who, IncomingMessage::default())
        .unwrap();
    let events = events_of(hub, "dev-2");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message.source, MessageSource::Telemetry);
}

#[tokio::test]
async fn a_consumer_at_latest_sees_only_what_follows() {
    let hubs = hubs("{}");
    let hub = &hubs.all()[0];
    let key = create(hub, "dev-3");
    let who = identity(&hubs, "dev-3", &key);
    hub.accept_telemetry(&who, IncomingMessage::default())
        .unwrap();
    let partition = hub.event_hubs().partition_index("dev-3").to_string();
    let mut consumer = hub
        .event_hubs()
        .open_consumer("$Default", &partition, None, EventPosition::Latest)
        .unwrap();
    assert!(consumer.reader.try_read(10).is_empty());
    hub.accept_telemetry(
        &who,
        IncomingMessage {
            body: Bytes::from_static(b"second"),
            ..IncomingMessage::default()
        },
    )
    .unwrap();
    let got = consumer.reader.read(10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sequence_number, 1);
    assert_eq!(got[0].message.body_text(), Some("second"));
    assert_eq!(hub_name(HOST), "myhub");
}

#[test]
fn modules_have_lifecycle_events_of_their_own() {
    use crate::hub::module::ModuleSpec;
    let hubs = hubs(ALL_ROUTES);
    let hub = &hubs.all()[0];
    create(hub, "dev-4");
    let spec = ModuleSpec::from_json("dev-4", "mod-a", b"{}").unwrap();
    hub.create_module(spec).wait_stored().unwrap();
    hub.delete_device("dev-4", None).wait_stored().unwrap();
    let lifecycle: Vec<(Option<String>, String)> = events_of(hub, "dev-4")
        .iter()
        .filter(|e| e.message.source == MessageSource::DeviceLifecycleEvents)
        .map(|e| {
            (
                e.message.properties.get("moduleId").cloned(),
                e.message.properties["opType"].clone(),
            )
        })
        .collect();
    let expected = [
        (None, "createDeviceIdentity"),
        (Some("mod-a"), "createDeviceIdentity"),
        (Some("mod-a"), "deleteDeviceIdentity"),
        (None, "deleteDeviceIdentity"),
    ]
    .map(|(m, op)| (m.map(str::to_owned), op.to_owned()))
    .to_vec();
    assert_eq!(lifecycle, expected);
    let module_created = events_of(hub, "dev-4")
        .into_iter()
        .find(|e| e.message.module_id.as_deref() == Some("mod-a"))
        .unwrap();
    assert_eq!(body(&module_created)["moduleId"], "mod-a");
}
