//! Reading and writing the parts of AMQP messages the IoT Hub nodes use: ids of any AMQP
//! type as strings, application properties, timestamps and bodies (Data sections, or an
//! AmqpValue string/binary from clients that send one).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fe2o3_amqp::types::messaging::{Body, Message, MessageId};
use fe2o3_amqp::types::primitives::{SimpleValue, Timestamp, Value};

/// The message type every node receives: any body section with any value.
pub(crate) type AnyMessage = Message<Body<Value>>;

/// An id as the hub keeps it: a uuid in canonical lower-case hyphenated form, a ulong in
/// decimal, a string as is, a binary as its UTF-8 text when it is text, else lower-case hex.
pub(crate) fn message_id_string(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid::Uuid::from_bytes(*u.as_inner()).to_string(),
        MessageId::Binary(b) => match std::str::from_utf8(b) {
            Ok(text) => text.to_owned(),
            Err(_) => b.iter().map(|byte| format!("{byte:02x}")).collect(),
        },
    }
}

/// A simple value as text (application properties are strings in the hub's model).
pub(crate) fn simple_value_string(value: &SimpleValue) -> Option<String> {
    Some(match value {
        SimpleValue::Null => return None,
        SimpleValue::String(s) => s.clone(),
        SimpleValue::Symbol(s) => s.to_string(),
        SimpleValue::Bool(b) => b.to_string(),
        SimpleValue::Ubyte(n) => n.to_string(),
        SimpleValue::Ushort(n) => n.to_string(),
        SimpleValue::Uint(n) => n.to_string(),
        SimpleValue::Ulong(n) => n.to_string(),
        SimpleValue::Byte(n) => n.to_string(),
        SimpleValue::Short(n) => n.to_string(),
        SimpleValue::Int(n) => n.to_string(),
        SimpleValue::Long(n) => n.to_string(),
        SimpleValue::Float(n) => n.to_string(),
        SimpleValue::Double(n) => n.to_string(),
        SimpleValue::Char(c) => c.to_string(),
        SimpleValue::Timestamp(t) => t.milliseconds().to_string(),
        SimpleValue::Uuid(u) => uuid::Uuid::from_bytes(*u.as_inner()).to_string(),
        SimpleValue::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    })
}

/// Application property `name` as text (names compare exactly, as AMQP keys do).
pub(crate) fn app_property(message: &AnyMessage, name: &str) -> Option<String> {
    message
        .application_properties
        .as_ref()
        .and_then(|p| p.0.get(name))
        .and_then(simple_value_string)
}

pub(crate) fn system_time(timestamp: &Timestamp) -> SystemTime {
    let ms = timestamp.milliseconds();
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH
    }
}

pub(crate) fn timestamp(time: SystemTime) -> Timestamp {
    let ms = time
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_milliseconds(ms)
}

/// The payload bytes: Data sections concatenated, an AmqpValue string or binary, nothing for
/// an empty body; `None` for bodies that carry structured values.
pub(crate) fn body_bytes(body: &Body<Value>) -> Option<Bytes> {
    match body {
        Body::Data(batch) => {
            let mut all = Vec::new();
            for data in batch.iter() {
                all.extend_from_slice(&data.0);
            }
            Some(Bytes::from(all))
        }
        Body::Value(value) => match &value.0 {
            Value::String(s) => Some(Bytes::from(s.clone().into_bytes())),
            Value::Binary(b) => Some(Bytes::from(b.to_vec())),
            Value::Null => Some(Bytes::new()),
            _ => None,
        },
        Body::Empty => Some(Bytes::new()),
        Body::Sequence(_) => None,
    }
}

/// The body as text when it is a string (CBS tokens are AmqpValue strings).
pub(crate) fn body_text(body: &Body<Value>) -> Option<String> {
    match body {
        Body::Value(value) => match &value.0 {
            Value::String(s) => Some(s.clone()),
            Value::Symbol(s) => Some(s.to_string()),
            Value::Binary(b) => String::from_utf8(b.to_vec()).ok(),
            _ => None,
        },
        Body::Data(_) => body_bytes(body).and_then(|b| String::from_utf8(b.to_vec()).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::primitives::{Binary, Uuid};

    #[test]
    fn ids_of_every_type_become_the_strings_clients_expect() {
        let u = uuid::Uuid::parse_str("6F9619FF-8B86-D011-B42D-00CF4FC964FF").unwrap();
        assert_eq!(
            message_id_string(&MessageId::Uuid(Uuid::from(*u.as_bytes()))),
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
        );
        assert_eq!(message_id_string(&MessageId::Ulong(42)), "42");
        assert_eq!(message_id_string(&MessageId::String("m-1".into())), "m-1");
        assert_eq!(
            message_id_string(&MessageId::Binary(Binary::from(b"abc".to_vec()))),
            "abc"
        );
        assert_eq!(
            message_id_string(&MessageId::Binary(Binary::from(vec![0xff, 0x00]))),
            "ff00"
        );
    }

    #[test]
    fn timestamps_round_trip_to_the_millisecond() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(system_time(&timestamp(t)), t);
        assert_eq!(system_time(&Timestamp::from_milliseconds(-5)), UNIX_EPOCH);
    }
}
