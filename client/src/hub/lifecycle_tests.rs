//! The hub client's connection lifecycle against the fake TLS server: reconnect with
//! re-subscription and resent telemetry, which refusals stop it, SAS renewal before expiry,
//! C2D completion, and the desired-property re-sync after a reconnect.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::test_support::{FakeServer, TEST_CA, TlsTestListener, tls_listener};
use crate::{
    ConnectionState, DeviceClient, DeviceError, DisconnectReason, Message, ModuleClient,
    ReconnectPolicy, Trust,
};

type Server = FakeServer<TlsStream<TcpStream>>;

const KEY: &str = "c2VjcmV0c2VjcmV0c2VjcmV0";
const WAIT: Duration = Duration::from_secs(10);

fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(100))
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}

/// A SAS device client on a fresh listener, with its first connection accepted.
async fn connected_client(policy: ReconnectPolicy) -> (DeviceClient, Server, TlsTestListener) {
    let (port, listener) = tls_listener().await;
    let connect = DeviceClient::builder("localhost", "dev-1")
        .symmetric_key(KEY)
        .trust(Trust::CaPem(TEST_CA.into()))
        .port(port)
        .reconnect(policy)
        .connect();
    let serve = async {
        let mut server = listener.accept().await.unwrap();
        server.accept().await;
        server
    };
    let (client, server) = tokio::join!(connect, serve);
    (client.unwrap(), server, listener)
}

/// Accepts the next connection and CONNECT, answering `code`; returns the CONNECT password.
async fn accept_next(listener: &TlsTestListener, code: ConnectReturnCode) -> (Server, String) {
    let mut server = within("reconnect", listener.accept()).await.unwrap();
    let connect = within("CONNECT", server.accept_with(code)).await;
    (server, connect.login.unwrap().password)
}

/// Reads packets until a SUBSCRIBE for `filter`, grants it, and returns the packets skipped.
async fn expect_subscribe(server: &mut Server, filter: &str) {
    loop {
        match within("SUBSCRIBE", server.read()).await {
            Some(Packet::Subscribe(sub)) => {
                assert_eq!(sub.filters[0].path, filter);
                server
                    .write(Packet::SubAck(SubAck::new(
                        sub.pkid,
                        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
                    )))
                    .await;
                return;
            }
            Some(Packet::PubAck(_) | Packet::PingReq) => {}
            other => panic!("expected SUBSCRIBE {filter}, got {other:?}"),
        }
    }
}

async fn wait_for_state(
    client: &DeviceClient,
    what: &str,
    predicate: impl FnMut(&ConnectionState) -> bool,
) -> ConnectionState {
    let mut state = client.connection_state();
    within(what, state.wait_for(predicate))
        .await
        .expect("state channel open")
        .clone()
}

fn se(token: &str) -> u64 {
    token
        .split('&')
        .find_map(|kv| kv.strip_prefix("se="))
        .and_then(|v| v.parse().ok())
        .expect("se in token")
}

#[tokio::test]
async fn a_lost_connection_is_restored_with_subscriptions_and_unacknowledged_telemetry() {
    let (client, mut server, listener) = connected_client(fast_reconnect()).await;
    let (installed, ()) = tokio::join!(
        client.on_method(|_| async { crate::MethodResponse::new(200, serde_json::Value::Null) }),
        expect_subscribe(&mut server, "$iothub/methods/POST/#")
    );
    installed.unwrap();

    let send = client.send_telemetry(Message::new("t1").message_id("m1"));
    let serve = async {
        let first = server.next_publish().await;
        assert!(!first.dup);
        // No PUBACK: the connection drops with the message unacknowledged.
        server.close().await;
        let (mut server, _) = accept_next(&listener, ConnectReturnCode::Success).await;
        expect_subscribe(&mut server, "$iothub/methods/POST/#").await;
        let again = within("resent telemetry", server.next_publish()).await;
        assert!(again.dup, "a resend carries DUP");
        assert_eq!(again.topic, first.topic);
        assert_eq!(again.payload, first.payload);
        server.write(Packet::PubAck(PubAck::new(again.pkid))).await;
        server
    };
    let (sent, _server) = tokio::join!(within("send", send), serve);
    sent.unwrap();
    let state = wait_for_state(&client, "connected", |s| {
        matches!(s, ConnectionState::Connected { .. })
    })
    .await;
    assert_eq!(state, ConnectionState::Connected { generation: 2 });
    assert!(client.is_connected());
}

#[tokio::test]
async fn a_disabled_device_is_retried_but_bad_credentials_stop_the_client() {
    let (client, server, listener) = connected_client(fast_reconnect()).await;
    server.close().await;
    // CONNACK 3 (device disabled): retried.
    let (_refused, _) = accept_next(&listener, ConnectReturnCode::ServiceUnavailable).await;
    let (server, _) = accept_next(&listener, ConnectReturnCode::Success).await;
    wait_for_state(&client, "second connection", |s| {
        *s == ConnectionState::Connected { generation: 2 }
    })
    .await;

    server.close().await;
    // CONNACK 5 (not authorized): the client stops.
    let (_refused, _) = accept_next(&listener, ConnectReturnCode::NotAuthorized).await;
    within("closed", client.closed()).await;
    assert_eq!(
        *client.connection_state().borrow(),
        ConnectionState::Closed {
            reason: DisconnectReason::Refused(5)
        }
    );
    assert!(matches!(
        client.send_telemetry(Message::new("x")).await,
        Err(DeviceError::ConnectionRefused(5))
    ));
    assert!(matches!(
        client.get_twin().await,
        Err(DeviceError::ConnectionRefused(5))
    ));
}

#[tokio::test]
async fn telemetry_waits_while_reconnecting() {
    let (client, server, listener) = connected_client(fast_reconnect()).await;
    server.close().await;
    wait_for_state(&client, "reconnecting", |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    let send = client.send_telemetry(Message::new("during the outage"));
    let serve = async {
        let (mut server, _) = accept_next(&listener, ConnectReturnCode::Success).await;
        let publish = within("telemetry", server.next_publish()).await;
        assert_eq!(&publish.payload[..], b"during the outage");
        server
            .write(Packet::PubAck(PubAck::new(publish.pkid)))
            .await;
        server
    };
    let (sent, _server) = tokio::join!(within("send", send), serve);
    sent.unwrap();
}

#[tokio::test]
async fn with_reconnect_disabled_the_first_loss_closes_the_client() {
    let (client, server, _listener) = connected_client(ReconnectPolicy::disabled()).await;
    server.close().await;
    within("closed", client.closed()).await;
    assert!(matches!(
        &*client.connection_state().borrow(),
        ConnectionState::Closed {
            reason: DisconnectReason::ConnectionLost(_)
        }
    ));
    assert!(matches!(
        client.send_telemetry(Message::new("x")).await,
        Err(DeviceError::Disconnected)
    ));
}

#[tokio::test]
async fn attempts_run_out_after_max_attempts() {
    let (client, server, listener) = connected_client(fast_reconnect().max_attempts(2)).await;
    server.close().await;
    for _ in 0..2 {
        // Drop each attempt during the TLS handshake.
        let (tcp, _) = within("attempt", listener.raw_accept()).await.unwrap();
        drop(tcp);
    }
    within("closed", client.closed()).await;
    let state = client.connection_state().borrow().clone();
    assert!(
        matches!(
            state,
            ConnectionState::Closed {
                reason: DisconnectReason::ConnectionLost(_)
            }
        ),
        "{state:?}"
    );
}

#[tokio::test]
async fn disconnect_during_backoff_stops_at_once() {
    let slow = ReconnectPolicy::default().initial_delay(Duration::from_secs(600));
    let (client, server, _listener) = connected_client(slow).await;
    server.close().await;
    wait_for_state(&client, "reconnecting", |s| {
        matches!(s, ConnectionState::Reconnecting { attempt: 1, .. })
    })
    .await;
    let state = client.connection_state();
    within("disconnect", client.disconnect()).await.unwrap();
    assert_eq!(
        *state.borrow(),
        ConnectionState::Closed {
            reason: DisconnectReason::ClientClosed
        }
    );
}

#[tokio::test]
async fn the_sas_token_is_renewed_before_it_expires() {
    let (port, listener) = tls_listener().await;
    let connect = DeviceClient::builder("localhost", "dev-1")
        .symmetric_key(KEY)
        .trust(Trust::CaPem(TEST_CA.into()))
        .port(port)
        .sas_ttl(Duration::from_secs(3))
        .reconnect(ReconnectPolicy::disabled())
        .connect();
    let serve = async { accept_next(&listener, ConnectReturnCode::Success).await };
    let (client, (mut server, first_password)) = tokio::join!(connect, serve);
    let client = client.unwrap();
    let first_expiry = se(&first_password);

    // The client leaves on its own, with DISCONNECT, while its token is still valid.
    assert!(matches!(
        within("DISCONNECT", server.read()).await,
        Some(Packet::Disconnect)
    ));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(
        now.as_secs() < first_expiry,
        "renewed at {now:?}, token expired at {first_expiry}"
    );
    let (_server, second_password) = accept_next(&listener, ConnectReturnCode::Success).await;
    assert!(se(&second_password) > first_expiry);
    wait_for_state(&client, "renewed", |s| {
        *s == ConnectionState::Connected { generation: 2 }
    })
    .await;
}

#[tokio::test]
async fn c2d_messages_are_acknowledged_only_when_completed() {
    let (client, mut server, listener) = connected_client(fast_reconnect()).await;
    let (messages, ()) = tokio::join!(
        client.c2d_messages(),
        expect_subscribe(&mut server, "devices/dev-1/messages/devicebound/#")
    );
    let mut messages = messages.unwrap();
    server
        .publish(
            "devices/dev-1/messages/devicebound/%24.mid=a&%24.to=%2Fdevices%2Fdev-1%2Fmessages%2FdeviceBound&k=v",
            "first",
        )
        .await;
    server
        .publish("devices/dev-1/messages/devicebound/%24.mid=b", "second")
        .await;
    let first = within("first", messages.next()).await.unwrap();
    assert_eq!(&first.body[..], b"first");
    assert_eq!(first.message_id.as_deref(), Some("a"));
    assert_eq!(first.property("k"), Some("v"));
    assert!(!first.redelivered);
    let second = within("second", messages.next()).await.unwrap();
    // Taking them sent nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), server.read())
            .await
            .is_err(),
        "PUBACK before completion"
    );
    // Completing out of order acknowledges exactly that message.
    let (completed, ack) = tokio::join!(second.complete(), server.read());
    completed.unwrap();
    assert_eq!(ack, Some(Packet::PubAck(PubAck::new(2))));

    // `first` outlives its connection: completing it is refused, the hub redelivers it.
    server.close().await;
    let (mut server, _) = accept_next(&listener, ConnectReturnCode::Success).await;
    expect_subscribe(&mut server, "devices/dev-1/messages/devicebound/#").await;
    wait_for_state(&client, "reconnected", |s| {
        *s == ConnectionState::Connected { generation: 2 }
    })
    .await;
    assert!(matches!(
        first.complete().await,
        Err(DeviceError::Disconnected)
    ));
    let mut redelivery = Publish::new(
        "devices/dev-1/messages/devicebound/%24.mid=a",
        QoS::AtLeastOnce,
        "first",
    );
    redelivery.pkid = 9;
    redelivery.dup = true;
    server.write(Packet::Publish(redelivery)).await;
    let again = within("redelivery", messages.next()).await.unwrap();
    assert!(again.redelivered);
    let (completed, ack) = tokio::join!(again.complete(), server.read());
    completed.unwrap();
    assert_eq!(ack, Some(Packet::PubAck(PubAck::new(9))));
}

#[tokio::test]
async fn desired_state_is_resynced_after_a_reconnect() {
    let (client, mut server, listener) = connected_client(fast_reconnect()).await;
    let (updates, ()) = tokio::join!(
        client.desired_updates(),
        expect_subscribe(&mut server, "$iothub/twin/PATCH/properties/desired/#")
    );
    let mut updates = updates.unwrap();
    server
        .publish(
            "$iothub/twin/PATCH/properties/desired/?$version=2",
            r#"{"a":1,"$version":2}"#,
        )
        .await;
    let patch = within("patch", updates.next()).await.unwrap();
    assert_eq!((patch.version, patch.full_document), (2, false));

    server.close().await;
    let (mut server, _) = accept_next(&listener, ConnectReturnCode::Success).await;
    expect_subscribe(&mut server, "$iothub/twin/PATCH/properties/desired/#").await;
    // The client GETs the twin by itself (subscribing to responses first).
    expect_subscribe(&mut server, "$iothub/twin/res/#").await;
    let get = within("twin GET", server.next_publish_acked()).await;
    assert!(
        get.topic.starts_with("$iothub/twin/GET/?$rid="),
        "{}",
        get.topic
    );
    let rid = get.topic.rsplit('=').next().unwrap().to_owned();
    server
        .publish(
            &format!("$iothub/twin/res/200/?$rid={rid}"),
            r#"{"desired":{"b":2,"$version":4},"reported":{"$version":1}}"#,
        )
        .await;
    let full = within("re-sync", updates.next()).await.unwrap();
    assert_eq!(full.version, 4);
    assert!(full.full_document);
    assert_eq!(full.patch, serde_json::json!({"b": 2, "$version": 4}));

    // A late patch at or below what the stream has delivered is dropped; newer ones flow.
    server
        .publish(
            "$iothub/twin/PATCH/properties/desired/?$version=3",
            r#"{"$version":3}"#,
        )
        .await;
    server
        .publish(
            "$iothub/twin/PATCH/properties/desired/?$version=5",
            r#"{"c":3,"$version":5}"#,
        )
        .await;
    let next = within("patch 5", updates.next()).await.unwrap();
    assert_eq!((next.version, next.full_document), (5, false));
}

#[tokio::test]
async fn a_module_uses_its_own_identity_and_topics() {
    let (port, listener) = tls_listener().await;
    let connect = ModuleClient::builder("localhost", "dev-1", "mod-a")
        .symmetric_key(KEY)
        .trust(Trust::CaPem(TEST_CA.into()))
        .port(port)
        .connect();
    let serve = async {
        let mut server = listener.accept().await.unwrap();
        let connect = server.accept().await;
        assert_eq!(connect.client_id, "dev-1/mod-a");
        let login = connect.login.unwrap();
        assert!(
            login
                .username
                .starts_with("localhost/dev-1/mod-a/?api-version=")
        );
        assert!(login.password.starts_with(
            "SharedAccessSignature sr=localhost%2Fdevices%2Fdev-1%2Fmodules%2Fmod-a&"
        ));
        server
    };
    let (module, mut server) = tokio::join!(connect, serve);
    let module = module.unwrap();
    assert_eq!((module.device_id(), module.module_id()), ("dev-1", "mod-a"));

    let serve = async {
        let telemetry = server.next_publish_acked().await;
        assert_eq!(
            telemetry.topic,
            "devices/dev-1/modules/mod-a/messages/events/"
        );
        let output = server.next_publish_acked().await;
        assert_eq!(
            output.topic,
            "devices/dev-1/modules/mod-a/messages/events/%24.on=alerts&level=high"
        );
    };
    let sends = async {
        module.send_telemetry(Message::new("t")).await.unwrap();
        module
            .send_output("alerts", Message::new("o").property("level", "high"))
            .await
            .unwrap();
    };
    tokio::join!(sends, serve);

    let (inputs, ()) = tokio::join!(
        module.input_messages(),
        expect_subscribe(&mut server, "devices/dev-1/modules/mod-a/inputs/#")
    );
    let mut inputs = inputs.unwrap();
    server
        .publish(
            "devices/dev-1/modules/mod-a/inputs/temperature/%24.mid=i1&unit=C",
            "21",
        )
        .await;
    let input = within("input", inputs.next()).await.unwrap();
    assert_eq!(input.input_name.as_deref(), Some("temperature"));
    assert_eq!(input.property("unit"), Some("C"));
    let (completed, ack) = tokio::join!(input.complete(), server.read());
    completed.unwrap();
    assert!(matches!(ack, Some(Packet::PubAck(_))));
    module.disconnect().await.unwrap();
}
