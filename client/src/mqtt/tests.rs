//! Tests of the shared MQTT connection against the in-memory fake server.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
};
use tokio::io::AsyncWriteExt;

use super::*;
use crate::test_support::{FakeServer, connected, options, pair};

async fn expect_publish(server: &mut FakeServer) -> Publish {
    match server.read().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_sends_options() {
    let (client, mut server) = pair();
    let mut opts = options();
    opts.clean_session = false;
    opts.keep_alive = Duration::from_secs(42);
    let (result, connect) = tokio::join!(Connection::start(client, opts), server.accept());
    let (connection, _) = result.unwrap();
    assert!(connection.is_connected());
    assert_eq!(connect.client_id, "dev");
    assert_eq!(connect.keep_alive, 42);
    assert!(!connect.clean_session);
    let login = connect.login.unwrap();
    assert_eq!(
        (login.username.as_str(), login.password.as_str()),
        ("user", "pass")
    );
}

#[tokio::test]
async fn connect_flags_with_and_without_password() {
    // SAS: username + password + clean session.
    let (client, mut server) = pair();
    let (result, (_, flags)) = tokio::join!(
        Connection::start(client, options()),
        server.accept_with_flags()
    );
    result.unwrap();
    assert_eq!(flags, 0x80 | 0x40 | 0x02);

    // X.509: the password is absent, not empty — no password flag, no password field.
    let (client, mut server) = pair();
    let mut opts = options();
    opts.password = None;
    let (result, (connect, flags)) =
        tokio::join!(Connection::start(client, opts), server.accept_with_flags());
    result.unwrap();
    assert_eq!(flags, 0x80 | 0x02);
    let login = connect.login.unwrap();
    assert_eq!(
        (login.username.as_str(), login.password.as_str()),
        ("user", "")
    );
}

#[tokio::test]
async fn refused_connack_reports_the_code() {
    let (client, mut server) = pair();
    let (result, _) = tokio::join!(
        Connection::start(client, options()),
        server.accept_with(ConnectReturnCode::NotAuthorized)
    );
    assert!(matches!(result, Err(MqttError::ConnectionRefused(5))));
}

#[tokio::test]
async fn reserved_connack_code_is_still_a_refusal() {
    let (client, mut server) = pair();
    let serve = async {
        server.read().await;
        // CONNACK, remaining length 2, no session, return code 0x86.
        server
            .stream_mut()
            .write_all(&[0x20, 0x02, 0x00, 0x86])
            .await
            .unwrap();
    };
    let (result, ()) = tokio::join!(Connection::start(client, options()), serve);
    assert!(matches!(result, Err(MqttError::ConnectionRefused(0x86))));
}

#[tokio::test]
async fn close_before_connack() {
    let (client, mut server) = pair();
    let serve = async {
        server.read().await;
        server.close().await;
    };
    let (result, ()) = tokio::join!(Connection::start(client, options()), serve);
    assert!(matches!(result, Err(MqttError::Disconnected)));
}

#[tokio::test]
async fn publish_resolves_only_on_puback() {
    let (connection, _incoming, mut server) = connected().await;
    let mut send = Box::pin(connection.publish("t/1".into(), Bytes::from_static(b"hi")));
    let publish = tokio::select! {
        _ = &mut send => panic!("resolved before PUBACK"),
        p = expect_publish(&mut server) => p,
    };
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    assert_eq!(publish.topic, "t/1");
    assert_eq!(&publish.payload[..], b"hi");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut send)
            .await
            .is_err(),
        "resolved before PUBACK"
    );
    server
        .write(Packet::PubAck(PubAck::new(publish.pkid)))
        .await;
    send.await.unwrap();
}

#[tokio::test]
async fn concurrent_publishes_get_distinct_ids_and_complete_out_of_order() {
    let (connection, _incoming, mut server) = connected().await;
    let sends = async {
        let results = tokio::join!(
            connection.publish("a".into(), Bytes::new()),
            connection.publish("b".into(), Bytes::new()),
            connection.publish("c".into(), Bytes::new()),
        );
        (results.0.is_ok(), results.1.is_ok(), results.2.is_ok())
    };
    let serve = async {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(expect_publish(&mut server).await.pkid);
        }
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 3, "packet ids reused: {ids:?}");
        for id in ids.into_iter().rev() {
            server.write(Packet::PubAck(PubAck::new(id))).await;
        }
    };
    let (results, ()) = tokio::join!(sends, serve);
    assert_eq!(results, (true, true, true));
}

#[tokio::test]
async fn subscribe_success_and_rejection() {
    let (connection, _incoming, mut server) = connected().await;
    let serve = async {
        for code in [
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Failure,
        ] {
            let Some(Packet::Subscribe(sub)) = server.read().await else {
                panic!("expected SUBSCRIBE");
            };
            assert_eq!(sub.filters[0].qos, QoS::AtLeastOnce);
            server
                .write(Packet::SubAck(SubAck::new(sub.pkid, vec![code])))
                .await;
        }
    };
    let client = async {
        let granted = connection.subscribe("x/#".into()).await;
        let rejected = connection.subscribe("y/#".into()).await;
        (granted, rejected)
    };
    let ((granted, rejected), ()) = tokio::join!(client, serve);
    assert_eq!(granted.unwrap(), QoS::AtLeastOnce);
    assert!(matches!(rejected, Err(MqttError::Protocol(_))));
}

#[tokio::test]
async fn server_publishes_are_acked_and_delivered() {
    let (_connection, mut incoming, mut server) = connected().await;
    let mut publish = Publish::new("$dps/registrations/res/200/?$rid=1", QoS::AtLeastOnce, "{}");
    publish.pkid = 7;
    server.write(Packet::Publish(publish)).await;
    assert!(matches!(
        server.read().await,
        Some(Packet::PubAck(PubAck { pkid: 7 }))
    ));
    let received = incoming.recv().await.unwrap();
    assert_eq!(received.topic, "$dps/registrations/res/200/?$rid=1");
    assert_eq!(&received.payload[..], b"{}");
}

#[tokio::test]
async fn server_close_fails_pending_and_resolves_closed() {
    let (connection, _incoming, mut server) = connected().await;
    let send = connection.publish("t".into(), Bytes::new());
    let serve = async {
        expect_publish(&mut server).await;
        server.close().await;
    };
    let (result, ()) = tokio::join!(send, serve);
    assert!(matches!(result, Err(MqttError::Disconnected)));
    tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .expect("closed() did not resolve");
    assert!(!connection.is_connected());
    assert!(matches!(
        connection.publish("t".into(), Bytes::new()).await,
        Err(MqttError::Disconnected)
    ));
}

#[tokio::test]
async fn disconnect_sends_disconnect_and_closes() {
    let (connection, _incoming, mut server) = connected().await;
    let (_, packet) = tokio::join!(connection.disconnect(), server.read());
    assert!(matches!(packet, Some(Packet::Disconnect)));
    assert!(server.read().await.is_none());
    assert!(!connection.is_connected());
}

#[tokio::test]
async fn dropping_the_handle_disconnects() {
    let (connection, _incoming, mut server) = connected().await;
    drop(connection);
    assert!(matches!(server.read().await, Some(Packet::Disconnect)));
}

#[tokio::test]
async fn pings_at_keep_alive_and_gives_up_without_pingresp() {
    let (client, mut server) = pair();
    let mut opts = options();
    opts.keep_alive = Duration::from_secs(1);
    let (result, _) = tokio::join!(Connection::start(client, opts), server.accept());
    let (connection, _incoming) = result.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(3), server.read()).await;
    assert!(matches!(first, Ok(Some(Packet::PingReq))));
    server.write(Packet::PingResp).await;
    let second = tokio::time::timeout(Duration::from_secs(3), server.read()).await;
    assert!(matches!(second, Ok(Some(Packet::PingReq))));
    // No PINGRESP this time: the client must give up within another keep-alive period.
    tokio::time::timeout(Duration::from_secs(3), connection.closed())
        .await
        .expect("connection not closed after missing PINGRESP");
}

#[tokio::test]
async fn oversized_topic_is_refused_without_breaking_the_connection() {
    let (connection, _incoming, mut server) = connected().await;
    let long = "x".repeat(70_000);
    assert!(matches!(
        connection.publish(long, Bytes::new()).await,
        Err(MqttError::Protocol(_))
    ));
    let send = connection.publish("ok".into(), Bytes::new());
    let serve = async {
        let p = expect_publish(&mut server).await;
        assert_eq!(p.topic, "ok");
        server.write(Packet::PubAck(PubAck::new(p.pkid))).await;
    };
    let (result, ()) = tokio::join!(send, serve);
    result.unwrap();
}

#[tokio::test]
async fn manual_ack_topics_wait_for_acknowledge() {
    let (connection, mut incoming, mut server) = connected().await;
    // `options()` leaves topics under `manual/` to the receiver.
    let mut manual = Publish::new("manual/x", QoS::AtLeastOnce, "m");
    manual.pkid = 5;
    manual.dup = true;
    server.write(Packet::Publish(manual)).await;
    let mut auto = Publish::new("auto/y", QoS::AtLeastOnce, "a");
    auto.pkid = 6;
    server.write(Packet::Publish(auto)).await;
    // Only the ordinary publish is acknowledged by the session.
    assert_eq!(server.read().await, Some(Packet::PubAck(PubAck::new(6))));
    let first = incoming.recv().await.unwrap();
    assert_eq!(
        (first.topic.as_str(), first.pending_ack, first.dup),
        ("manual/x", Some(5), true)
    );
    let second = incoming.recv().await.unwrap();
    assert_eq!(
        (second.topic.as_str(), second.pending_ack),
        ("auto/y", None)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), server.read())
            .await
            .is_err()
    );
    let (acked, packet) = tokio::join!(connection.acknowledge(5), server.read());
    acked.unwrap();
    assert_eq!(packet, Some(Packet::PubAck(PubAck::new(5))));
}

#[tokio::test]
async fn resends_carry_the_dup_flag_and_close_reasons_are_kept() {
    let (connection, _incoming, mut server) = connected().await;
    let send = connection.publish_with_dup("t".into(), Bytes::new(), true);
    let serve = async {
        let publish = expect_publish(&mut server).await;
        assert!(publish.dup);
        server
            .write(Packet::PubAck(PubAck::new(publish.pkid)))
            .await;
        server
    };
    let (result, server) = tokio::join!(send, serve);
    result.unwrap();
    assert_eq!(connection.close_reason(), None);
    server.close().await;
    connection.closed().await;
    assert_eq!(
        connection.close_reason().as_deref(),
        Some("connection closed by the server")
    );
    assert!(matches!(
        connection.acknowledge(1).await,
        Err(MqttError::Disconnected)
    ));
}
