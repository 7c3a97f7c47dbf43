//! Direct methods over MQTT (protocol.md §5.7). A device subscribed to
//! `$iothub/methods/POST/#` receives each call as `$iothub/methods/POST/{method}/?$rid={rid}`
//! at QoS 0 with the JSON payload (iot-mqtt-connect-to-iot-hub.md), and answers with a
//! publish to `$iothub/methods/res/{status}/?$rid={rid}` whose body is the response payload.
//! Which `$rid` belongs to which caller is the hub's [`MethodCorrelation`]; a device without
//! the subscription is not reachable (404103).

use super::codec::{Packet, Publish, QoS};
use super::outbox::Outbox;
use crate::hub::methods::{MethodCall, MethodCorrelation, MethodResponse};

/// Passes a call from the hub to the device, if it subscribed to methods.
pub(super) fn request(methods: &mut MethodCorrelation, call: MethodCall, out: &mut Outbox) {
    let request = methods.start(call);
    let topic = format!(
        "$iothub/methods/POST/{}/?$rid={}",
        request.name, request.request_id
    );
    if !out.subscriptions.matches(&topic) {
        methods.refuse(&request.request_id);
        return;
    }
    out.write(Packet::Publish(Publish::new(
        topic,
        QoS::AtMostOnce,
        request.payload.to_string(),
    )));
}

/// The device's answer to request `rid`.
pub(super) fn response(
    methods: &mut MethodCorrelation,
    rid: &str,
    status: &str,
    body: &[u8],
    ack: Option<u16>,
    out: &mut Outbox,
) {
    out.ack(ack);
    methods.answer(rid, MethodResponse::from_device(status, body));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::mqtt::codec::QoS;
    use crate::mqtt::test_support::{DEVICE, World};

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_call_reaches_the_device_and_its_answer_the_caller() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device
            .subscribe("$iothub/methods/POST/#", QoS::AtMostOnce)
            .await;
        let hub = world.hub().clone();
        let call = tokio::spawn(async move {
            let payload = serde_json::json!({"delay": 2});
            hub.invoke_method(DEVICE, "reboot", payload, WAIT, WAIT)
                .await
        });
        let request = device.recv_publish().await;
        assert_eq!(request.topic, "$iothub/methods/POST/reboot/?$rid=1");
        assert_eq!(request.qos, QoS::AtMostOnce);
        assert_eq!(&request.payload[..], br#"{"delay":2}"#);
        let answer = "$iothub/methods/res/201/?$rid=1";
        device
            .publish(answer, QoS::AtMostOnce, 0, r#"{"done":true}"#)
            .await;
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.payload, serde_json::json!({"done": true}));
        device.disconnect().await;
    }

    #[tokio::test]
    async fn a_device_without_the_subscription_is_not_reachable() {
        let world = World::start().await;
        let (device, _) = world.device(true).await;
        let error = world
            .hub()
            .invoke_method(DEVICE, "reboot", serde_json::Value::Null, WAIT, WAIT)
            .await
            .unwrap_err();
        assert_eq!(error.code, 404103);
        device.disconnect().await;
    }
}
