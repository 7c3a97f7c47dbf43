//! Direct-method types (spec/protocol.md §5.7): the request handed to the application's
//! handler and the answer it returns.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

/// A direct-method call from the solution.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodRequest {
    /// The method name, percent-decoded from the topic.
    pub name: String,
    /// The invoker's JSON payload; `Value::Null` when the request had no body.
    pub payload: Value,
}

/// The device's answer to a [`MethodRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct MethodResponse {
    /// Any integer the device chooses; the invoker sees it as the call's `status`.
    pub status: i32,
    /// Sent as JSON (`Value::Null` goes out as `null`, as the Python SDK does).
    pub payload: Value,
}

impl MethodResponse {
    pub fn new(status: i32, payload: Value) -> Self {
        Self { status, payload }
    }
}

/// The installed handler, boxed so the router can hold any closure type.
pub(crate) type MethodHandler =
    dyn Fn(MethodRequest) -> Pin<Box<dyn Future<Output = MethodResponse> + Send>> + Send + Sync;
