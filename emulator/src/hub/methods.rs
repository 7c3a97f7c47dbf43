//! Direct methods (iot-hub-devguide-direct-methods.md; protocol.md §5.7): the service calls a
//! method on a connected device and waits for its answer. The request travels through the
//! device's connection; the session answers through a oneshot when the device publishes on
//! `$iothub/methods/res/{status}/?$rid=…`. [`MethodCorrelation`] is the connection's side:
//! which request id belongs to which waiting caller, shared by every device transport.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::connections::Outbound;
use super::error::HubError;
use super::{Hub, IdentityRef};
use crate::faults::{FaultAction, FaultOperation};

/// Request and response payloads may each be 128 KB.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// What the device answered.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodResponse {
    pub status: i32,
    pub payload: Value,
}

/// Why a connection could not take a method call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodRefusal {
    /// The device has no subscription to `$iothub/methods/POST/#`.
    NotSubscribed,
}

/// A method call handed to the device's connection.
#[derive(Debug)]
pub struct MethodCall {
    pub name: String,
    pub payload: Value,
    pub reply: oneshot::Sender<Result<MethodResponse, MethodRefusal>>,
}

impl MethodCall {
    /// The connection cannot pass the call on (the device has no method subscription): the
    /// caller learns at once that the device is not reachable (404103).
    pub fn refuse(self) {
        let _ = self.reply.send(Err(MethodRefusal::NotSubscribed));
    }
}

impl MethodResponse {
    /// The device's answer as it sent it: a status text and a body. A status that is not a
    /// number is 500; an empty (or blank) body is `null`, and one that is not JSON is passed
    /// on as a string.
    pub(crate) fn from_device(status: &str, body: &[u8]) -> MethodResponse {
        let payload = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        };
        MethodResponse {
            status: status.parse().unwrap_or(500),
            payload,
        }
    }
}

/// A method request for the transport to send to its device under `request_id`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MethodRequest {
    pub request_id: String,
    pub name: String,
    pub payload: Value,
}

/// The method calls one connection passed to its device and is waiting to hear back about,
/// by request id (`$rid` over MQTT).
#[derive(Debug, Default)]
pub(crate) struct MethodCorrelation {
    next_id: u64,
    waiting: HashMap<String, oneshot::Sender<Result<MethodResponse, MethodRefusal>>>,
}

impl MethodCorrelation {
    /// Gives `call` a request id unique on this connection (hex) and waits for the answer
    /// under it.
    pub(crate) fn start(&mut self, call: MethodCall) -> MethodRequest {
        self.next_id += 1;
        let request_id = format!("{:x}", self.next_id);
        self.waiting.insert(request_id.clone(), call.reply);
        MethodRequest {
            request_id,
            name: call.name,
            payload: call.payload,
        }
    }

    /// The request could not be sent after all: its caller is told the device is not
    /// reachable.
    pub(crate) fn refuse(&mut self, request_id: &str) {
        if let Some(reply) = self.waiting.remove(request_id) {
            let _ = reply.send(Err(MethodRefusal::NotSubscribed));
        }
    }

    /// The device answered `request_id`. An answer to nothing pending (late, or made up) is
    /// dropped, as IoT Hub does; returns whether a caller was waiting.
    pub(crate) fn answer(&mut self, request_id: &str, response: MethodResponse) -> bool {
        match self.waiting.remove(request_id) {
            Some(reply) => {
                let _ = reply.send(Ok(response));
                true
            }
            None => false,
        }
    }
}

impl Hub {
    /// Invokes `name` on `device_id` (see [`Hub::invoke_method_on`]).
    pub async fn invoke_method(
        &self,
        device_id: &str,
        name: &str,
        payload: Value,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<MethodResponse, HubError> {
        let who = IdentityRef::device(device_id);
        self.invoke_method_on(who, name, payload, response_timeout, connect_timeout)
            .await
    }

    /// Invokes `name` on a device or module: waits up to `connect_timeout` for it to be
    /// connected (404103 otherwise), then up to `response_timeout` for its answer (504101).
    pub async fn invoke_method_on(
        &self,
        who: IdentityRef<'_>,
        name: &str,
        payload: Value,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<MethodResponse, HubError> {
        if self.device(who.device_id).is_none() {
            return Err(HubError::device_not_found(who.device_id));
        }
        if let Some(module_id) = who.module_id
            && self.module(who.device_id, module_id).is_none()
        {
            return Err(HubError::module_not_found(who.device_id, module_id));
        }
        let connection = who.connection_key();
        let size = serde_json::to_vec(&payload)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_PAYLOAD_BYTES {
            return Err(HubError::message_too_large(size, MAX_PAYLOAD_BYTES));
        }
        // An injected fault (docs/faults.md): refused before anything reaches the device;
        // dropped (the device's connection closed) instead of delivered; stalled (never
        // delivered: the caller waits out its response timeout); or the answer delayed, or
        // the connection dropped after the answer.
        let fault = self.fault(FaultOperation::HubMethod, who.device_id);
        match fault.as_ref().map(|hit| (hit.action, hit.id.as_str())) {
            Some((FaultAction::Refuse(refusal), id)) => {
                return Err(HubError::from_fault(refusal, id));
            }
            Some((FaultAction::Drop { after_ack: false }, _)) => {
                self.connections().disconnect(&connection);
                return Err(HubError::device_not_online(&connection));
            }
            Some((FaultAction::Stall, _)) => {
                self.clock.sleep(response_timeout).await;
                return Err(HubError::gateway_timeout(&connection));
            }
            _ => {}
        }
        let answered = self
            .deliver_method(
                &connection,
                name,
                payload,
                response_timeout,
                connect_timeout,
            )
            .await;
        match fault.map(|hit| hit.action) {
            Some(FaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(FaultAction::Drop { after_ack: true }) => {
                self.connections().disconnect(&connection)
            }
            _ => {}
        }
        answered
    }

    /// Waits for `connection` to be online (up to `connect_timeout`), hands it the call and
    /// waits up to `response_timeout` for the answer. Both timeouts age with the emulator's
    /// clock (`crate::clock`), so a test can run one out by advancing it.
    async fn deliver_method(
        &self,
        connection: &str,
        name: &str,
        payload: Value,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<MethodResponse, HubError> {
        let start = self.clock.instant_now();
        let deadline = start.checked_add(connect_timeout).unwrap_or(start);
        while !self.connections().is_connected(connection) {
            if self.clock.instant_now() >= deadline {
                return Err(HubError::device_not_online(connection));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (reply, answer) = oneshot::channel();
        let call = MethodCall {
            name: name.to_owned(),
            payload,
            reply,
        };
        if !self.connections().send(connection, Outbound::Method(call)) {
            return Err(HubError::device_not_online(connection));
        }
        tokio::select! {
            answered = answer => match answered {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(MethodRefusal::NotSubscribed)) | Err(_) => {
                    Err(HubError::device_not_online(connection))
                }
            },
            () = self.clock.sleep(response_timeout) => Err(HubError::gateway_timeout(connection)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        name: &str,
    ) -> (
        MethodCall,
        oneshot::Receiver<Result<MethodResponse, MethodRefusal>>,
    ) {
        let (reply, answer) = oneshot::channel();
        let call = MethodCall {
            name: name.to_owned(),
            payload: serde_json::json!({"delay": 1}),
            reply,
        };
        (call, answer)
    }

    #[test]
    fn an_answer_reaches_the_caller_of_its_request_id() {
        let mut methods = MethodCorrelation::default();
        let (first, mut first_answer) = call("reboot");
        let (second, mut second_answer) = call("reset");
        let first = methods.start(first);
        let second = methods.start(second);
        assert_eq!(
            (first.request_id.as_str(), first.name.as_str()),
            ("1", "reboot")
        );
        assert_eq!(second.request_id, "2");
        assert!(methods.answer("2", MethodResponse::from_device("201", b"{\"ok\":true}")));
        assert_eq!(
            second_answer.try_recv().unwrap(),
            Ok(MethodResponse {
                status: 201,
                payload: serde_json::json!({"ok": true})
            })
        );
        assert!(first_answer.try_recv().is_err(), "still waiting");
        assert!(
            !methods.answer("2", MethodResponse::from_device("200", b"")),
            "answered once"
        );
        assert!(
            !methods.answer("99", MethodResponse::from_device("200", b"")),
            "made up"
        );
    }

    #[test]
    fn request_ids_are_hex() {
        let mut methods = MethodCorrelation::default();
        let ids: Vec<String> = (0..16)
            .map(|_| methods.start(call("m").0).request_id)
            .collect();
        assert_eq!(ids.last().map(String::as_str), Some("10"));
    }

    #[test]
    fn a_refused_request_tells_its_caller() {
        let mut methods = MethodCorrelation::default();
        let (c, mut answer) = call("m");
        let request = methods.start(c);
        methods.refuse(&request.request_id);
        assert_eq!(
            answer.try_recv().unwrap(),
            Err(MethodRefusal::NotSubscribed)
        );
        assert!(!methods.answer(&request.request_id, MethodResponse::from_device("200", b"")));
    }

    #[test]
    fn the_device_answer_is_read_leniently() {
        let blank = MethodResponse::from_device("200", b"  \n");
        assert_eq!((blank.status, blank.payload), (200, Value::Null));
        let text = MethodResponse::from_device("abc", b"not json");
        assert_eq!(
            (text.status, text.payload),
            (500, Value::String("not json".into()))
        );
    }
}
