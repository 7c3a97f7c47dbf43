//! SAS renewal against the real emulator, which closes a connection when its token expires:
//! with a 3-second token the client renews on its own — several connections, each with a
//! fresh token, none of them ended by the hub — and telemetry keeps working.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotemu_device::{ConnectionState, DisconnectReason, Message};
use iotemu_e2e::*;

#[tokio::test]
async fn telemetry_keeps_flowing_across_token_renewals() {
    let emulator = start_emulator(None).await;
    let client = quickstart_device(&emulator, "short-lived", None)
        .sas_ttl(Duration::from_secs(3))
        .connect()
        .await
        .unwrap();

    // Every state the client reports, as far as a watcher sees them.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut states = client.connection_state();
    let log = seen.clone();
    let watcher = tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            log.lock().unwrap().push(state);
        }
    });

    client.send_telemetry(Message::new("before")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        client.send_telemetry(Message::new("after").message_id("after-7s")),
    )
    .await
    .expect("telemetry after 7 s")
    .unwrap();
    assert!(
        emulator
            .default_hub()
            .telemetry()
            .messages(Some("short-lived"))
            .iter()
            .any(|m| m.message_id() == Some("after-7s"))
    );

    // A 3 s token renewed 0.6 s early: at least two renewals in 7 s.
    let generation = match *client.connection_state().borrow() {
        ConnectionState::Connected { generation } => generation,
        ref other => panic!("not connected: {other:?}"),
    };
    assert!(generation >= 3, "only {generation} connections");
    client.disconnect().await.unwrap();
    watcher.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    for state in &seen {
        if let ConnectionState::Reconnecting { reason, .. } = state {
            assert_eq!(
                *reason,
                DisconnectReason::TokenRenewal,
                "a connection ended other than by renewal: {seen:?}"
            );
        }
    }
    assert_eq!(
        seen.last(),
        Some(&ConnectionState::Closed {
            reason: DisconnectReason::ClientClosed
        })
    );
}
