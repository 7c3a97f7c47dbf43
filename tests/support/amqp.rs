//! An AMQP 1.0 client for the AMQP front's end-to-end tests: `fe2o3-amqp` over TLS to the
//! emulator's AMQP port, with the pieces the Azure service SDKs use — a `$cbs` put-token
//! round trip and the hub's service links.

use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use fe2o3_amqp::{Connection, Session};
use iotemu::Emulator;

use super::{
    HUB_OWNER_KEY, QUICKSTART_DEVICE_ID, QUICKSTART_KEY, build_token, decode_key, device_token,
    seconds_from_now, tls_connect,
};

/// How a test client opens its connection.
#[derive(Debug, Clone)]
pub enum Login {
    /// The plain `AMQP 0 1 0 0` header (Node's IoT clients).
    NoSasl,
    /// SASL `ANONYMOUS` (pyamqp, core-amqp), then CBS.
    Anonymous,
    /// SASL `PLAIN` with a user and password.
    Plain(String, String),
}

/// Opens an AMQP connection over TLS (server name `localhost`).
pub async fn connect(emulator: &Emulator, login: Login) -> ConnectionHandle<()> {
    try_connect(emulator, login).await.expect("AMQP open")
}

pub async fn try_connect(
    emulator: &Emulator,
    login: Login,
) -> Result<ConnectionHandle<()>, fe2o3_amqp::connection::OpenError> {
    let tls = tls_connect(emulator, emulator.amqp_port(), None, Vec::new()).await;
    let builder = Connection::builder()
        .container_id("iotemu-test")
        .hostname("localhost");
    let builder = match login {
        Login::NoSasl => builder,
        Login::Anonymous => builder.sasl_profile(SaslProfile::Anonymous),
        Login::Plain(username, password) => {
            builder.sasl_profile(SaslProfile::Plain { username, password })
        }
    };
    tokio::time::timeout(Duration::from_secs(10), builder.open_with_stream(tls))
        .await
        .expect("AMQP open in time")
}

/// Opens an AMQP connection over WebSocket (wss to the HTTPS port at `path`, offering
/// `subprotocol`).
pub async fn connect_ws(
    emulator: &Emulator,
    path: &str,
    subprotocol: &str,
    login: Login,
) -> ConnectionHandle<()> {
    let ws = super::wss_handshake(emulator, None, path, Some(subprotocol))
        .await
        .expect("upgraded to WebSocket");
    let stream = iotemu::internals::amqp::WsByteStream::new(ws);
    let builder = Connection::builder()
        .container_id("iotemu-test-ws")
        .hostname("localhost");
    let builder = match login {
        Login::NoSasl => builder,
        Login::Anonymous => builder.sasl_profile(SaslProfile::Anonymous),
        Login::Plain(username, password) => {
            builder.sasl_profile(SaslProfile::Plain { username, password })
        }
    };
    tokio::time::timeout(Duration::from_secs(10), builder.open_with_stream(stream))
        .await
        .expect("AMQP over WebSocket open in time")
        .expect("AMQP over WebSocket open")
}

/// TLS to the AMQP port with nothing on top, for wire-level tests.
pub async fn raw_tls(
    emulator: &Emulator,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_connect(emulator, emulator.amqp_port(), None, Vec::new()).await
}

/// Everything the server sends until it closes (an error ending counts as closed);
/// panics if it does not close within 15 s.
pub async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), reading)
        .await
        .expect("the emulator closes the connection");
    all
}

/// A service token for the quickstart hub signed with `iothubowner`.
pub fn owner_token(audience: &str) -> String {
    build_token(
        audience,
        &decode_key(HUB_OWNER_KEY),
        Some("iothubowner"),
        seconds_from_now(600),
    )
}

/// A token for the quickstart hub's policy `name` with key `key_b64`, expiring at `expiry`.
pub fn policy_token(audience: &str, name: &str, key_b64: &str, expiry: u64) -> String {
    build_token(audience, &decode_key(key_b64), Some(name), expiry)
}

/// The `$cbs` link pair of one session.
pub struct CbsClient {
    sender: Sender,
    receiver: Receiver,
}

/// A put-token answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CbsReply {
    pub status: Option<SimpleValue>,
    pub description: Option<String>,
    pub correlation_id: Option<MessageId>,
}

impl CbsReply {
    pub fn status_code(&self) -> Option<i32> {
        match self.status {
            Some(SimpleValue::Int(code)) => Some(code),
            _ => None,
        }
    }
}

impl CbsClient {
    pub async fn attach(session: &mut SessionHandle<()>) -> CbsClient {
        let sender = Sender::attach(session, "cbs-sender", "$cbs")
            .await
            .expect("$cbs sender");
        let receiver = Receiver::attach(session, "cbs-receiver", "$cbs")
            .await
            .expect("$cbs receiver");
        CbsClient { sender, receiver }
    }

    /// Puts `token` for `audience` with request id `id`; returns the reply.
    pub async fn put_token(&mut self, audience: &str, token: &str, id: MessageId) -> CbsReply {
        let request = Message::builder()
            .properties(Properties {
                message_id: Some(id),
                to: Some("$cbs".into()),
                reply_to: Some("cbs".into()),
                ..Default::default()
            })
            .application_properties(
                ApplicationProperties::builder()
                    .insert("operation", SimpleValue::String("put-token".into()))
                    .insert(
                        "type",
                        SimpleValue::String("servicebus.windows.net:sastoken".into()),
                    )
                    .insert("name", SimpleValue::String(audience.into()))
                    .build(),
            )
            .body(Body::<Value>::Value(AmqpValue(Value::String(token.into()))))
            .build();
        let outcome = self.sender.send(request).await.expect("put-token sent");
        assert!(outcome.is_accepted(), "put-token settled {outcome:?}");
        let delivery =
            tokio::time::timeout(Duration::from_secs(10), self.receiver.recv::<Body<Value>>())
                .await
                .expect("put-token answered in time")
                .expect("put-token answer");
        self.receiver
            .accept(&delivery)
            .await
            .expect("accept answer");
        let message = delivery.into_message();
        let properties = message.application_properties.unwrap_or_default();
        CbsReply {
            status: properties.0.get("status-code").cloned(),
            description: match properties.0.get("status-description") {
                Some(SimpleValue::String(s)) => Some(s.clone()),
                _ => None,
            },
            correlation_id: message.properties.and_then(|p| p.correlation_id),
        }
    }
}

/// A connection with one session whose `$cbs` holds an `iothubowner` token for `localhost`.
pub async fn authorised_session(
    emulator: &Emulator,
    login: Login,
) -> (ConnectionHandle<()>, SessionHandle<()>, CbsClient) {
    let mut connection = connect(emulator, login).await;
    let mut session = Session::begin(&mut connection).await.expect("session");
    let mut cbs = CbsClient::attach(&mut session).await;
    let reply = cbs
        .put_token(
            "localhost",
            &owner_token("localhost"),
            MessageId::String("1".into()),
        )
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    (connection, session, cbs)
}

/// A Node-style device connection for the quickstart device: no SASL, one session, a
/// device token put on `$cbs` for `localhost/devices/{QUICKSTART_DEVICE_ID}`.
pub async fn device_session(
    emulator: &Emulator,
) -> (ConnectionHandle<()>, SessionHandle<()>, CbsClient) {
    let mut connection = connect(emulator, Login::NoSasl).await;
    let mut session = Session::begin(&mut connection).await.expect("session");
    let mut cbs = CbsClient::attach(&mut session).await;
    let token = device_token(
        "localhost",
        QUICKSTART_DEVICE_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let audience = format!("localhost%2Fdevices%2F{QUICKSTART_DEVICE_ID}");
    let reply = cbs
        .put_token(&audience, &token, MessageId::String("t1".into()))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    (connection, session, cbs)
}

/// The C2D message the service SDKs send to `device_id`.
pub fn c2d_message(device_id: &str, body: &[u8]) -> Message<Body<Value>> {
    Message::builder()
        .properties(Properties {
            to: Some(format!("/devices/{device_id}/messages/devicebound")),
            ..Default::default()
        })
        .body(Body::Data(
            vec![fe2o3_amqp::types::messaging::Data(body.to_vec().into())].into(),
        ))
        .build()
}
