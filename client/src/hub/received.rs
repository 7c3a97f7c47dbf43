//! Messages the hub sends the device: cloud-to-device (C2D) messages on
//! `devices/{deviceId}/messages/devicebound/{bag}` and, for modules, input messages on
//! `devices/{deviceId}/modules/{moduleId}/inputs/{inputName}/{bag}` (spec/protocol.md §5.3,
//! §5.5), parsed into [`ReceivedMessage`] and handed out by [`ReceivedMessages`].
//!
//! The property bag is `key=value&…`, keys and values percent-encoded; a key without `=`
//! is a property whose value is null. `$.mid`, `$.cid`, `$.uid`, `$.ct`, `$.ce`, `$.exp`,
//! `$.to` and `iothub-ack` become fields; everything else is an application property.
//! Everything after the fixed prefix is taken as the bag, so a hub that leaves the `/` in
//! `$.to` unencoded is still understood.
//!
//! Completion: MQTT has no reject or abandon, only the PUBACK. The client sends it when the
//! application calls [`ReceivedMessage::complete`] — not when the message is handed out — so
//! a message the application never completes (it crashed, or dropped the message) stays with
//! the hub and is delivered again on the next connection.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::error::DeviceError;
use crate::encode::decode;
use crate::mqtt::{IncomingPublish, WeakConnection};

/// A C2D message (device client) or an input message (module client).
#[derive(Debug)]
pub struct ReceivedMessage {
    /// The body, as sent.
    pub body: Bytes,
    /// The input the message was routed to (module input messages only).
    pub input_name: Option<String>,
    /// `$.mid`
    pub message_id: Option<String>,
    /// `$.cid`
    pub correlation_id: Option<String>,
    /// `$.uid`
    pub user_id: Option<String>,
    /// `$.ct`
    pub content_type: Option<String>,
    /// `$.ce`
    pub content_encoding: Option<String>,
    /// `$.exp`: the absolute expiry time as the hub wrote it (ISO 8601).
    pub expiry: Option<String>,
    /// `$.to`: the destination, e.g. `/devices/{id}/messages/deviceBound`.
    pub to: Option<String>,
    /// `iothub-ack`: the feedback the sender asked for (`none`, `positive`, `negative`, `full`).
    pub ack: Option<String>,
    /// Application properties (and any system property not listed above), in topic order,
    /// percent-decoded; `None` is a property sent without a value.
    pub properties: Vec<(String, Option<String>)>,
    /// The hub flagged the delivery as a possible repeat (MQTT DUP): an earlier delivery was
    /// not completed.
    pub redelivered: bool,
    completion: Option<Completion>,
}

/// What completing needs: the PUBACK's packet id on the connection that delivered it.
#[derive(Debug)]
struct Completion {
    connection: WeakConnection,
    pkid: u16,
}

impl ReceivedMessage {
    /// The value of application property `key`; `None` if absent or sent without a value.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Completes the message: sends the PUBACK, after which the hub deletes it.
    ///
    /// Fails with [`DeviceError::Disconnected`] if the connection that delivered the message
    /// has ended (a reconnect or SAS renewal happened meanwhile); the hub then still holds
    /// the message and delivers it again, with [`redelivered`](Self::redelivered) set. A
    /// message that was delivered at QoS 0 needs no completion and returns `Ok` at once.
    pub async fn complete(self) -> Result<(), DeviceError> {
        let Some(completion) = self.completion else {
            return Ok(());
        };
        let connection = completion
            .connection
            .upgrade()
            .ok_or(DeviceError::Disconnected)?;
        connection.acknowledge(completion.pkid).await?;
        Ok(())
    }
}

/// The stream of received messages, from
/// [`DeviceClient::c2d_messages`](crate::DeviceClient::c2d_messages) or
/// [`ModuleClient::input_messages`](crate::ModuleClient::input_messages).
///
/// It survives reconnects and ends (`next` returns `None`) when the client stops or when the
/// stream is requested again. Messages the hub delivered before the stream was requested
/// (e.g. redeliveries right after connecting) wait in it.
#[derive(Debug)]
pub struct ReceivedMessages {
    pub(crate) receiver: mpsc::Receiver<ReceivedMessage>,
}

impl ReceivedMessages {
    /// The next message, or `None` once no more can arrive.
    pub async fn next(&mut self) -> Option<ReceivedMessage> {
        self.receiver.recv().await
    }
}

/// How many received messages wait for the application before later ones are left
/// unacknowledged for redelivery; above IoT Hub's limit of 50 pending C2D messages.
pub(crate) const RECEIVED_QUEUE: usize = 64;

/// Where received messages arrive for one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inbox {
    /// `devices/{deviceId}/messages/devicebound`
    Device { prefix: String },
    /// `devices/{deviceId}/modules/{moduleId}/inputs/`
    Module { prefix: String },
}

impl Inbox {
    pub(crate) fn device(device_id: &str) -> Self {
        Self::Device {
            prefix: format!("devices/{device_id}/messages/devicebound"),
        }
    }

    pub(crate) fn module(device_id: &str, module_id: &str) -> Self {
        Self::Module {
            prefix: format!("devices/{device_id}/modules/{module_id}/inputs/"),
        }
    }

    /// The subscription (`…/devicebound/#`, `…/inputs/#`).
    pub(crate) fn filter(&self) -> String {
        match self {
            Self::Device { prefix } => format!("{prefix}/#"),
            Self::Module { prefix } => format!("{prefix}#"),
        }
    }

    /// What the MQTT session must leave unacknowledged for [`ReceivedMessage::complete`].
    pub(crate) fn manual_ack_prefix(&self) -> String {
        match self {
            Self::Device { prefix } => format!("{prefix}/"),
            Self::Module { prefix } => prefix.clone(),
        }
    }

    /// The message in `publish`, if its topic is this inbox's; `connection` is the one that
    /// delivered it, for completion.
    pub(crate) fn parse(
        &self,
        publish: &IncomingPublish,
        connection: &WeakConnection,
    ) -> Option<ReceivedMessage> {
        let (input_name, bag) = self.split(&publish.topic)?;
        let mut message = ReceivedMessage {
            body: publish.payload.clone(),
            input_name,
            message_id: None,
            correlation_id: None,
            user_id: None,
            content_type: None,
            content_encoding: None,
            expiry: None,
            to: None,
            ack: None,
            properties: Vec::new(),
            redelivered: publish.dup,
            completion: publish.pending_ack.map(|pkid| Completion {
                connection: connection.clone(),
                pkid,
            }),
        };
        for (key, value) in parse_bag(bag) {
            let field = match key.as_str() {
                "$.mid" => &mut message.message_id,
                "$.cid" => &mut message.correlation_id,
                "$.uid" => &mut message.user_id,
                "$.ct" => &mut message.content_type,
                "$.ce" => &mut message.content_encoding,
                "$.exp" => &mut message.expiry,
                "$.to" => &mut message.to,
                "iothub-ack" => &mut message.ack,
                _ => {
                    message.properties.push((key, value));
                    continue;
                }
            };
            *field = value;
        }
        Some(message)
    }

    /// (input name, property bag) of a topic in this inbox.
    fn split<'t>(&self, topic: &'t str) -> Option<(Option<String>, &'t str)> {
        match self {
            Self::Device { prefix } => {
                let rest = topic.strip_prefix(prefix.as_str())?;
                match rest {
                    "" => Some((None, "")),
                    _ => rest.strip_prefix('/').map(|bag| (None, bag)),
                }
            }
            Self::Module { prefix } => {
                let rest = topic.strip_prefix(prefix.as_str())?;
                let (name, bag) = rest.split_once('/').unwrap_or((rest, ""));
                (!name.is_empty()).then(|| (Some(decode(name)), bag))
            }
        }
    }
}

/// `k=v&k2&k3=` → `[(k, Some(v)), (k2, None), (k3, Some(""))]`, percent-decoded.
fn parse_bag(bag: &str) -> Vec<(String, Option<String>)> {
    bag.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((key, value)) => (decode(key), Some(decode(value))),
            None => (decode(part), None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn publish(topic: &str) -> IncomingPublish {
        IncomingPublish {
            topic: topic.into(),
            payload: Bytes::from_static(b"body"),
            dup: false,
            pending_ack: Some(7),
        }
    }

    fn weak() -> WeakConnection {
        // A handle to nothing: completion is not exercised here.
        WeakConnection::detached()
    }

    #[test]
    fn c2d_topic_with_system_and_application_properties() {
        let inbox = Inbox::device("dev-1");
        assert_eq!(inbox.filter(), "devices/dev-1/messages/devicebound/#");
        let message = inbox
            .parse(
                &publish(
                    "devices/dev-1/messages/devicebound/%24.mid=m%201&%24.cid=c%2F1&%24.to=%2Fdevices%2Fdev-1%2Fmessages%2FdeviceBound&%24.exp=2030-01-01T00%3A00%3A00Z&iothub-ack=full&room=a%20b&flag&empty=",
                ),
                &weak(),
            )
            .unwrap();
        assert_eq!(message.message_id.as_deref(), Some("m 1"));
        assert_eq!(message.correlation_id.as_deref(), Some("c/1"));
        assert_eq!(
            message.to.as_deref(),
            Some("/devices/dev-1/messages/deviceBound")
        );
        assert_eq!(message.expiry.as_deref(), Some("2030-01-01T00:00:00Z"));
        assert_eq!(message.ack.as_deref(), Some("full"));
        assert_eq!(
            message.properties,
            [
                ("room".to_owned(), Some("a b".to_owned())),
                ("flag".to_owned(), None),
                ("empty".to_owned(), Some(String::new())),
            ]
        );
        assert_eq!(message.property("room"), Some("a b"));
        assert_eq!(message.property("flag"), None);
        assert_eq!(message.input_name, None);
        assert_eq!(&message.body[..], b"body");
    }

    #[test]
    fn c2d_topics_without_a_bag_and_with_raw_slashes() {
        let inbox = Inbox::device("dev-1");
        for topic in [
            "devices/dev-1/messages/devicebound",
            "devices/dev-1/messages/devicebound/",
        ] {
            let message = inbox.parse(&publish(topic), &weak()).unwrap();
            assert!(message.properties.is_empty() && message.message_id.is_none());
        }
        // azure-sdk-for-c's test vector leaves `/` raw in `$.to`.
        let message = inbox
            .parse(
                &publish("devices/dev-1/messages/devicebound/$.mid=79&$.to=/devices/dev-1/messages/deviceBound&iothub-ack=full"),
                &weak(),
            )
            .unwrap();
        assert_eq!(message.message_id.as_deref(), Some("79"));
        assert_eq!(
            message.to.as_deref(),
            Some("/devices/dev-1/messages/deviceBound")
        );
        // Other devices' topics and look-alikes are not ours.
        for topic in [
            "devices/dev-10/messages/devicebound/a=b",
            "devices/dev-1/messages/deviceboundX",
            "$iothub/twin/res/200/?$rid=1",
        ] {
            assert!(inbox.parse(&publish(topic), &weak()).is_none(), "{topic}");
        }
    }

    #[test]
    fn module_inputs_carry_the_input_name() {
        let inbox = Inbox::module("dev-1", "mod-a");
        assert_eq!(inbox.filter(), "devices/dev-1/modules/mod-a/inputs/#");
        assert_eq!(
            inbox.manual_ack_prefix(),
            "devices/dev-1/modules/mod-a/inputs/"
        );
        let message = inbox
            .parse(
                &publish("devices/dev-1/modules/mod-a/inputs/in%201/%24.mid=x&k=v"),
                &weak(),
            )
            .unwrap();
        assert_eq!(message.input_name.as_deref(), Some("in 1"));
        assert_eq!(message.message_id.as_deref(), Some("x"));
        assert_eq!(message.property("k"), Some("v"));
        let bare = inbox
            .parse(
                &publish("devices/dev-1/modules/mod-a/inputs/temps"),
                &weak(),
            )
            .unwrap();
        assert_eq!(bare.input_name.as_deref(), Some("temps"));
        assert!(
            inbox
                .parse(&publish("devices/dev-1/modules/mod-a/inputs/"), &weak())
                .is_none()
        );
        assert!(
            inbox
                .parse(&publish("devices/dev-1/messages/devicebound/"), &weak())
                .is_none()
        );
    }

    #[tokio::test]
    async fn completing_without_a_connection_is_disconnected_and_qos0_needs_none() {
        let inbox = Inbox::device("d");
        let message = inbox
            .parse(&publish("devices/d/messages/devicebound/"), &weak())
            .unwrap();
        assert!(matches!(
            message.complete().await,
            Err(DeviceError::Disconnected)
        ));
        let mut qos0 = publish("devices/d/messages/devicebound/");
        qos0.pending_ack = None;
        let message = inbox.parse(&qos0, &weak()).unwrap();
        message.complete().await.unwrap();
    }

    proptest! {
        #[test]
        fn any_topic_parses_without_panicking(topic in "\\PC*") {
            let _ = Inbox::device("d").parse(&publish(&topic), &weak());
            let _ = Inbox::module("d", "m").parse(&publish(&topic), &weak());
        }

        #[test]
        fn encoded_properties_round_trip(
            pairs in proptest::collection::vec(("[a-z]{1,8}", any::<String>()), 0..5)
        ) {
            let bag = crate::hub::property_bag::encode_bag(
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let topic = format!("devices/d/messages/devicebound/{bag}");
            let message = Inbox::device("d").parse(&publish(&topic), &weak()).unwrap();
            let expected: Vec<_> = pairs.into_iter().map(|(k, v)| (k, Some(v))).collect();
            prop_assert_eq!(message.properties, expected);
        }
    }
}
