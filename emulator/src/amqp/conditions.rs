//! AMQP error conditions the clients react to (spec/amqp.md §7), and the one place a hub
//! error becomes one. Node's IoT clients translate the condition symbol into their error
//! classes (`amqp:not-found` → `DeviceNotFoundError`, `amqp:resource-limit-exceeded` →
//! `DeviceMaximumQueueDepthExceededError`, …), so the symbol is the contract.

use fe2o3_amqp::types::definitions::{
    AmqpError, ConnectionError, Error, ErrorCondition, Fields, LinkError, SessionError,
};
use fe2o3_amqp::types::primitives::Symbol;

use crate::hub::error::HubError;

pub(crate) const NOT_FOUND: &str = "amqp:not-found";
pub(crate) const UNAUTHORIZED: &str = "amqp:unauthorized-access";
pub(crate) const NOT_ALLOWED: &str = "amqp:not-allowed";
pub(crate) const INTERNAL_ERROR: &str = "amqp:internal-error";
pub(crate) const DECODE_ERROR: &str = "amqp:decode-error";
pub(crate) const RESOURCE_LIMIT_EXCEEDED: &str = "amqp:resource-limit-exceeded";
pub(crate) const MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
pub(crate) const ARGUMENT_ERROR: &str = "com.microsoft:argument-error";
pub(crate) const CONNECTION_FORCED: &str = "amqp:connection:forced";
pub(crate) const FRAMING_ERROR: &str = "amqp:connection:framing-error";
pub(crate) const MESSAGE_LOCK_LOST: &str = "com.microsoft:message-lock-lost";
/// IoT Hub's throttling condition (also DPS's, `dps_request.rs`).
pub(crate) const DEVICE_CONTAINER_THROTTLED: &str = "com.microsoft:device-container-throttled";

/// The typed condition for `symbol` (standard ones parse to their variants, others stay
/// custom symbols; both encode as the same symbol on the wire).
pub(crate) fn condition(symbol: &str) -> ErrorCondition {
    if let Ok(e) = AmqpError::try_from(symbol) {
        return e.into();
    }
    if let Ok(e) = LinkError::try_from(symbol) {
        return e.into();
    }
    if let Ok(e) = ConnectionError::try_from(symbol) {
        return e.into();
    }
    if let Ok(e) = SessionError::try_from(symbol) {
        return e.into();
    }
    ErrorCondition::Custom(Symbol::from(symbol))
}

/// The symbol of a condition, for logs and tests.
pub fn symbol_of(condition: &ErrorCondition) -> String {
    match condition {
        ErrorCondition::AmqpError(e) => Symbol::from(e).to_string(),
        ErrorCondition::ConnectionError(e) => Symbol::from(e).to_string(),
        ErrorCondition::SessionError(e) => Symbol::from(e).to_string(),
        ErrorCondition::LinkError(e) => Symbol::from(e).to_string(),
        ErrorCondition::Custom(s) => s.to_string(),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

/// An error with `symbol` as condition and `description`.
pub(crate) fn error(symbol: &str, description: impl Into<String>) -> Error {
    Error::new(condition(symbol), Some(description.into()), None)
}

/// The `open` property under which the service announces that it will close the connection
/// with this error (Azure/azure-iot-sdk-c#815: `{[com.microsoft:open-error: {amqp:unauthorized-access,
/// {"errorCode":401002,…},{}}]}`); the .NET AMQP library fails its open with it.
const OPEN_ERROR: &str = "com.microsoft:open-error";

/// The `open` properties of a connection refused right after `open` with `error`.
pub(crate) fn open_error_properties(error: &Error) -> Option<Fields> {
    let value = serde_amqp::to_value(error).ok()?;
    let mut properties = Fields::new();
    properties.insert(Symbol::from(OPEN_ERROR), value);
    Some(properties)
}

/// The condition a hub error maps to on a rejected delivery or a detach.
pub(crate) fn hub_error_condition(e: &HubError) -> &'static str {
    match e.code {
        404001 | 404002 | 404010 => NOT_FOUND,
        403004 => RESOURCE_LIMIT_EXCEEDED,
        413001 => MESSAGE_SIZE_EXCEEDED,
        401002 => UNAUTHORIZED,
        403012 | 403005 => NOT_ALLOWED,
        412002 => MESSAGE_LOCK_LOST,
        code if (429_000..430_000).contains(&code) => DEVICE_CONTAINER_THROTTLED,
        code if (400_000..401_000).contains(&code) => ARGUMENT_ERROR,
        code if (500_000..600_000).contains(&code) => INTERNAL_ERROR,
        _ => INTERNAL_ERROR,
    }
}

/// The AMQP error for a hub error: its condition, and the Azure code and name in the text;
/// a `retry-after` it carries goes in the error's info, where the SDKs read it.
pub(crate) fn hub_error(e: &HubError) -> Error {
    let mut amqp = error(hub_error_condition(e), e.to_string());
    if let Some(seconds) = e.retry_after {
        let mut info = Fields::new();
        info.insert(
            Symbol::from("retry-after"),
            serde_amqp::Value::String(seconds.to_string()),
        );
        amqp.info = Some(Box::new(info));
    }
    amqp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_error_property_carries_the_close_error() {
        let refusal = error(UNAUTHORIZED, r#"{"errorCode":401002}"#);
        let properties = open_error_properties(&refusal).expect("encodable");
        let value = properties
            .get(&Symbol::from(OPEN_ERROR))
            .cloned()
            .expect("the property is there");
        assert!(
            matches!(value, serde_amqp::Value::Described(_)),
            "{value:?}"
        );
        // On the wire the value is exactly the error's own encoding.
        let encoded = serde_amqp::to_vec(&value).unwrap();
        assert_eq!(encoded, serde_amqp::to_vec(&refusal).unwrap());
        let decoded: Error = serde_amqp::from_slice(&encoded).unwrap();
        assert_eq!(decoded, refusal);
        // It round-trips through the wire encoding too.
        let bytes = serde_amqp::to_vec(&properties).unwrap();
        let back: Fields = serde_amqp::from_slice(&bytes).unwrap();
        assert_eq!(back, properties);
    }

    #[test]
    fn symbols_round_trip_through_typed_conditions() {
        for s in [
            NOT_FOUND,
            UNAUTHORIZED,
            RESOURCE_LIMIT_EXCEEDED,
            MESSAGE_SIZE_EXCEEDED,
            ARGUMENT_ERROR,
            CONNECTION_FORCED,
            "amqp:link:redirect",
        ] {
            assert_eq!(symbol_of(&condition(s)), s);
        }
        assert!(matches!(
            condition(NOT_FOUND),
            ErrorCondition::AmqpError(AmqpError::NotFound)
        ));
    }

    #[test]
    fn hub_errors_map_to_the_conditions_clients_translate() {
        assert_eq!(
            hub_error_condition(&HubError::device_not_found("d")),
            NOT_FOUND
        );
        assert_eq!(
            hub_error_condition(&HubError::queue_full("d")),
            RESOURCE_LIMIT_EXCEEDED
        );
        assert_eq!(
            hub_error_condition(&HubError::message_too_large(70_000, 65_536)),
            MESSAGE_SIZE_EXCEEDED
        );
        assert_eq!(
            hub_error_condition(&HubError::storage("disk full")),
            INTERNAL_ERROR
        );
        assert_eq!(
            hub_error_condition(&HubError::argument_invalid("x")),
            ARGUMENT_ERROR
        );
    }
}
