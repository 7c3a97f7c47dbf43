//! The `iotemu-device` client through hub faults injected in the real emulator (issue #19,
//! docs/faults.md): the hub drops its connection right after the PUBACK of its third message —
//! sent one at a time or all at once — and it reconnects by itself and loses nothing; the hub
//! holds a PUBACK for a while and the send simply completes later, on the same connection; the
//! hub ends its session because the clock was advanced past its token's expiry
//! (`Emulator::advance_with_credentials`, docs/faults.md "Time control") and it connects again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iotemu::{FaultAction, FaultOperation, FaultRule};
use iotemu_device::{ConnectionState, DeviceClient, Message, ReconnectPolicy};
use iotemu_e2e::*;

fn fast() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(200))
}

async fn connect(emulator: &iotemu::Emulator, device_id: &str) -> DeviceClient {
    let device = quickstart_device(emulator, device_id, None).reconnect(fast());
    within("connect", device.connect())
        .await
        .expect("device connects")
}

/// How many times the hub stored each message id of `device_id`.
fn stored_counts(emulator: &iotemu::Emulator, device_id: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in emulator.default_hub().telemetry().messages(Some(device_id)) {
        let id = message
            .message_id()
            .expect("every message has an id")
            .to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

fn generation(client: &DeviceClient) -> u64 {
    match *client.connection_state().borrow() {
        ConnectionState::Connected { generation } => generation,
        ref other => panic!("client not connected: {other:?}"),
    }
}

fn drop_after_third_puback(device_id: &str) -> FaultRule {
    FaultRule::new(
        FaultOperation::HubTelemetry,
        FaultAction::Drop { after_ack: true },
    )
    .device_id(device_id)
    .after(2)
    .count(1)
}

#[tokio::test]
async fn a_connection_dropped_after_the_third_puback_is_resumed_and_every_awaited_send_is_stored_once()
 {
    const TOTAL: usize = 8;
    let emulator = start_emulator(None).await;
    let client = connect(&emulator, "drop-seq-dev").await;
    assert_eq!(generation(&client), 1);
    let rule = emulator
        .faults()
        .inject(drop_after_third_puback("drop-seq-dev"))
        .expect("valid rule");

    for i in 1..=TOTAL {
        let message = Message::new(format!("reading {i}")).message_id(format!("seq-{i}"));
        within(&format!("send {i}"), client.send_telemetry(message))
            .await
            .unwrap_or_else(|e| panic!("send {i} failed: {e}"));
    }

    assert_eq!(rule.hits(), 1);
    // The client noticed the drop and connected again by itself.
    assert!(generation(&client) >= 2, "the client reconnected");
    // Each send was awaited, so the third was acknowledged before the drop and the fourth sent
    // after it: nothing was in flight, nothing is lost and nothing is stored twice.
    let counts = stored_counts(&emulator, "drop-seq-dev");
    for i in 1..=TOTAL {
        assert_eq!(
            counts.get(&format!("seq-{i}")),
            Some(&1),
            "message {i}: {counts:?}"
        );
    }
    assert_eq!(counts.len(), TOTAL);
}

#[tokio::test]
async fn a_connection_dropped_with_messages_in_flight_loses_none_of_them() {
    const TOTAL: usize = 12;
    let emulator = start_emulator(None).await;
    let client = Arc::new(connect(&emulator, "drop-burst-dev").await);
    let rule = emulator
        .faults()
        .inject(drop_after_third_puback("drop-burst-dev"))
        .expect("valid rule");

    // All at once: when the hub closes after the third PUBACK the later messages are in
    // flight (sent, not acknowledged); the client must send them again on its next
    // connection.
    let sends: Vec<_> = (1..=TOTAL)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let message = Message::new(format!("reading {i}")).message_id(format!("burst-{i}"));
                client.send_telemetry(message).await
            })
        })
        .collect();
    for (i, send) in sends.into_iter().enumerate() {
        within(&format!("send {}", i + 1), send)
            .await
            .expect("send task")
            .unwrap_or_else(|e| panic!("send {} failed: {e}", i + 1));
    }

    assert_eq!(rule.hits(), 1);
    assert!(generation(&client) >= 2, "the client reconnected");
    let counts = stored_counts(&emulator, "drop-burst-dev");
    for i in 1..=TOTAL {
        // At QoS 1 a resend of a message whose PUBACK was lost with the connection may be
        // stored twice; none may be missing.
        assert!(
            counts.get(&format!("burst-{i}")).is_some_and(|n| *n >= 1),
            "message {i} lost: {counts:?}"
        );
    }
    assert_eq!(counts.len(), TOTAL, "{counts:?}");
    // The hub stores nothing it has not read, so the resends are the messages it never saw and
    // in practice none is stored twice; a duplicate would need the third PUBACK lost with the
    // connection (the hub closes with unread input, which the kernel may answer with a reset),
    // which QoS 1 allows — so it is reported, not failed.
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    if !duplicates.is_empty() {
        eprintln!("stored twice (QoS 1 resend): {duplicates:?}");
    }
}

#[tokio::test]
async fn a_delayed_puback_completes_the_send_after_the_delay_on_the_same_connection() {
    const DELAY: Duration = Duration::from_millis(1500);
    let emulator = start_emulator(None).await;
    let client = connect(&emulator, "slow-ack-dev").await;
    let rule = emulator
        .faults()
        .inject(
            FaultRule::new(FaultOperation::HubTelemetry, FaultAction::Delay(DELAY))
                .device_id("slow-ack-dev")
                .after(1)
                .count(1),
        )
        .expect("valid rule");

    let mut took = Vec::new();
    for i in 1..=3 {
        let message = Message::new(format!("reading {i}")).message_id(format!("slow-{i}"));
        let started = Instant::now();
        within(&format!("send {i}"), client.send_telemetry(message))
            .await
            .unwrap_or_else(|e| panic!("send {i} failed: {e}"));
        took.push(started.elapsed());
    }

    assert_eq!(rule.hits(), 1);
    // The PUBACK cannot have come sooner than the delay (a lower bound, not a timing test).
    assert!(
        took[1] >= DELAY,
        "the delayed send returned after {:?}",
        took[1]
    );
    // The client has no operation timeout: it waited on the same connection, no resend.
    assert_eq!(generation(&client), 1, "no reconnect");
    let counts = stored_counts(&emulator, "slow-ack-dev");
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
}

#[tokio::test]
async fn a_session_ended_by_its_tokens_expiry_is_resumed_and_sends_go_on() {
    let emulator = start_emulator(None).await;
    let client = connect(&emulator, "expiry-dev").await;
    assert_eq!(generation(&client), 1);
    within(
        "send before",
        client.send_telemetry(Message::new("before").message_id("before")),
    )
    .await
    .expect("sent");
    // The client's tokens live an hour: an advance with credentials past that ends the
    // session, as a hub does when a token runs out.
    let mut states = client.connection_state();
    emulator
        .advance_with_credentials(Duration::from_secs(3601))
        .await
        .expect("a valid step");
    within("the reconnect", async {
        while !matches!(
            *states.borrow_and_update(),
            ConnectionState::Connected { generation } if generation >= 2
        ) {
            states.changed().await.expect("the client is alive");
        }
    })
    .await;
    within(
        "send after",
        client.send_telemetry(Message::new("after").message_id("after")),
    )
    .await
    .expect("sent after the reconnect");
    let counts = stored_counts(&emulator, "expiry-dev");
    assert_eq!(counts.get("before"), Some(&1));
    assert_eq!(counts.get("after"), Some(&1));
}
