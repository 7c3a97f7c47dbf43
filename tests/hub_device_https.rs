//! IoT Hub device HTTPS API (protocol.md §6): telemetry with header properties and as a
//! batch, device SAS auth, and C2D receive / complete / reject / abandon by lock token.

use iotemu::C2dMessage;
use iotemu::SymmetricKey;
use iotemu::WaitStored;
use iotemu_e2e::*;
use serde_json::json;

const API: &str = "api-version=2021-04-12";

fn provision(emulator: &iotemu::Emulator, device_id: &str) {
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device(device_id, key.clone(), key, None);
}

async fn device_call(
    emulator: &iotemu::Emulator,
    device_id: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> HttpsResponse {
    let sas = device_token(
        "localhost",
        device_id,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let mut headers = vec![("Authorization", sas.as_str())];
    headers.extend_from_slice(extra);
    let separator = if path.contains('?') { '&' } else { '?' };
    https_request(
        emulator,
        None,
        method,
        &format!("{path}{separator}{API}"),
        &headers,
        body,
    )
    .await
}

#[tokio::test]
async fn telemetry_single_and_batch_are_stored_with_properties() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "http-dev-1");
    let sent = device_call(
        &emulator,
        "http-dev-1",
        "POST",
        "/devices/http-dev-1/messages/events",
        &[
            ("IoTHub-MessageId", "mid-1"),
            ("IoTHub-CorrelationId", "cid-1"),
            ("iothub-contenttype", "application/json"),
            ("IOTHUB-CONTENTENCODING", "utf-8"),
            ("iothub-app-temperature", "21.5"),
            ("iothub-interface-id", "urn:x"),
        ],
        br#"{"t":21.5}"#,
    )
    .await;
    assert_eq!(
        sent.status,
        204,
        "{:?}",
        String::from_utf8_lossy(&sent.body)
    );

    // The third entry is in the Node SDK's (and azure-iot-sdk-c's) form: a base64 body without
    // "base64Encoded".
    let batch = json!([
        { "body": "first", "base64Encoded": false, "properties": { "iothub-app-k": "v1" } },
        { "body": "c2Vjb25k", "base64Encoded": true,
          "properties": { "iothub-messageid": "mid-b2", "plain": "p" } },
        { "body": "dGhpcmQg4pyT", "properties": { "iothub-app-n": "3" } },
    ]);
    let sent = device_call(
        &emulator,
        "http-dev-1",
        "POST",
        "/devices/http-dev-1/messages/events",
        &[("Content-Type", "application/vnd.microsoft.iothub.json")],
        batch.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        sent.status,
        204,
        "{:?}",
        String::from_utf8_lossy(&sent.body)
    );

    let stored = emulator
        .default_hub()
        .telemetry()
        .messages(Some("http-dev-1"));
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0].body_text(), Some(r#"{"t":21.5}"#));
    assert_eq!(stored[0].message_id(), Some("mid-1"));
    assert_eq!(stored[0].system.correlation_id.as_deref(), Some("cid-1"));
    assert_eq!(
        stored[0].system.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(stored[0].system.content_encoding.as_deref(), Some("utf-8"));
    assert_eq!(stored[0].system.interface_id.as_deref(), Some("urn:x"));
    assert_eq!(
        stored[0].properties.get("temperature").map(String::as_str),
        Some("21.5")
    );
    assert_eq!(stored[1].body_text(), Some("first"));
    assert_eq!(
        stored[1].properties.get("k").map(String::as_str),
        Some("v1")
    );
    assert_eq!(stored[2].body_text(), Some("second"));
    assert_eq!(stored[2].message_id(), Some("mid-b2"));
    assert_eq!(
        stored[2].properties.get("plain").map(String::as_str),
        Some("p")
    );
    assert_eq!(stored[3].body_text(), Some("third \u{2713}"));
    assert_eq!(stored[3].properties.get("n").map(String::as_str), Some("3"));

    // A malformed batch stores nothing (all or nothing).
    let bad = json!([{ "body": "b2s=" }, { "body": "not base64 without the flag" }]);
    let refused = device_call(
        &emulator,
        "http-dev-1",
        "POST",
        "/devices/http-dev-1/messages/events",
        &[("Content-Type", "application/vnd.microsoft.iothub.json")],
        bad.to_string().as_bytes(),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        emulator
            .default_hub()
            .telemetry()
            .messages(Some("http-dev-1"))
            .len(),
        4
    );

    // Over the hub's 256 KB limit.
    let big = vec![b'x'; 256 * 1024 + 1];
    let too_large = device_call(
        &emulator,
        "http-dev-1",
        "POST",
        "/devices/http-dev-1/messages/events",
        &[],
        &big,
    )
    .await;
    assert_eq!(too_large.status, 413);
    assert_eq!(
        too_large.header("iothub-errorcode"),
        Some("MessageTooLarge")
    );
}

#[tokio::test]
async fn wrong_key_other_device_and_missing_api_version_are_refused() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "http-dev-2");
    provision(&emulator, "http-dev-3");
    let wrong = device_token(
        "localhost",
        "http-dev-2",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        seconds_from_now(600),
    );
    let refused = https_request(
        &emulator,
        None,
        "POST",
        &format!("/devices/http-dev-2/messages/events?{API}"),
        &[("Authorization", wrong.as_str())],
        b"x",
    )
    .await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.json()["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:IotHubUnauthorizedAccess;")
    );

    // http-dev-3's valid token does not let it act as http-dev-2.
    let other = device_call(
        &emulator,
        "http-dev-3",
        "GET",
        "/devices/http-dev-2/messages/devicebound",
        &[],
        b"",
    )
    .await;
    assert_eq!(other.status, 401);

    let sas = device_token(
        "localhost",
        "http-dev-2",
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let no_version = https_request(
        &emulator,
        None,
        "GET",
        "/devices/http-dev-2/messages/devicebound",
        &[("Authorization", sas.as_str())],
        b"",
    )
    .await;
    assert_eq!(no_version.status, 400);
    assert!(
        emulator
            .default_hub()
            .telemetry()
            .messages(Some("http-dev-2"))
            .is_empty()
    );
}

#[tokio::test]
async fn c2d_receive_lock_complete_reject_abandon() {
    let emulator = start_emulator(None).await;
    let id = "http-dev-4";
    provision(&emulator, id);
    let hub = emulator.default_hub();
    let path = format!("/devices/{id}/messages/devicebound");

    let empty = device_call(&emulator, id, "GET", &path, &[], b"").await;
    assert_eq!(empty.status, 204);

    let mut first = C2dMessage::new("x");
    first.correlation_id = Some("corr-1".into());
    first.properties.insert("color".into(), "blue".into());
    let first_id = hub.send_c2d(id, first).wait_stored().unwrap();
    hub.send_c2d(id, C2dMessage::new("second"))
        .wait_stored()
        .unwrap();
    hub.send_c2d(id, C2dMessage::new("third"))
        .wait_stored()
        .unwrap();

    // Received with its lock token in a quoted ETag and its properties as headers.
    let got = device_call(&emulator, id, "GET", &path, &[], b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"x");
    let etag = got.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let lock = etag.trim_matches('"').to_owned();
    assert_eq!(got.header("iothub-messageid"), Some(first_id.as_str()));
    assert_eq!(got.header("iothub-correlationid"), Some("corr-1"));
    assert_eq!(
        got.header("iothub-to"),
        Some(format!("/devices/{id}/messages/deviceBound").as_str())
    );
    assert_eq!(got.header("iothub-app-color"), Some("blue"));
    assert_eq!(got.header("iothub-deliverycount"), Some("1"));

    // Locked: the next receive gets the second message, not the first again.
    let second = device_call(&emulator, id, "GET", &path, &[], b"").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, b"second");
    let second_lock = second.header("etag").unwrap().trim_matches('"').to_owned();

    let completed = device_call(&emulator, id, "DELETE", &format!("{path}/{lock}"), &[], b"").await;
    assert_eq!(completed.status, 204);
    // Completing twice: the lock is gone.
    let again = device_call(&emulator, id, "DELETE", &format!("{path}/{lock}"), &[], b"").await;
    assert_eq!(again.status, 412);

    let rejected = device_call(
        &emulator,
        id,
        "DELETE",
        &format!("{path}/{second_lock}?reject"),
        &[],
        b"",
    )
    .await;
    assert_eq!(rejected.status, 204);

    let third = device_call(&emulator, id, "GET", &path, &[], b"").await;
    assert_eq!(third.body, b"third");
    assert_eq!(third.header("iothub-deliverycount"), Some("1"));
    let third_lock = third.header("etag").unwrap().trim_matches('"').to_owned();
    let abandoned = device_call(
        &emulator,
        id,
        "POST",
        &format!("{path}/{third_lock}/abandon"),
        &[],
        b"",
    )
    .await;
    assert_eq!(abandoned.status, 204);
    let redelivered = device_call(&emulator, id, "GET", &path, &[], b"").await;
    assert_eq!(redelivered.status, 200);
    assert_eq!(redelivered.body, b"third");
    assert_eq!(redelivered.header("iothub-deliverycount"), Some("2"));
    assert_ne!(
        redelivered.header("etag").unwrap().trim_matches('"'),
        third_lock
    );
    let final_lock = redelivered
        .header("etag")
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let done = device_call(
        &emulator,
        id,
        "DELETE",
        &format!("{path}/{final_lock}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(done.status, 204);

    // Nothing left.
    let empty = device_call(&emulator, id, "GET", &path, &[], b"").await;
    assert_eq!(empty.status, 204);
    assert!(hub.c2d_pending(id).is_empty());

    let bogus = device_call(
        &emulator,
        id,
        "DELETE",
        &format!("{path}/00000000-0000-0000-0000-000000000000"),
        &[],
        b"",
    )
    .await;
    assert_eq!(bogus.status, 412);
    assert_eq!(
        bogus.header("iothub-errorcode"),
        Some("DeviceMessageLockLost")
    );
    assert!(
        bogus.json()["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:DeviceMessageLockLost;")
    );
}

/// `se` past year 9999 (issue #12) on the hub's device and service APIs: 401, never a dropped
/// connection; the device is served afterwards.
#[tokio::test]
async fn absurd_sas_expiry_is_a_401_on_hub_https() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "http-far");
    for expiry in [1u64 << 63, u64::MAX, 253_402_300_800] {
        let sas = device_token("localhost", "http-far", QUICKSTART_KEY, expiry);
        let refused = https_request(
            &emulator,
            None,
            "POST",
            &format!("/devices/http-far/messages/events?{API}"),
            &[("Authorization", sas.as_str())],
            b"x",
        )
        .await;
        assert_eq!(refused.status, 401, "se={expiry}");
        assert!(
            refused.json()["Message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("ErrorCode:IotHubUnauthorizedAccess;"),
            "{:?}",
            refused.json()
        );

        use base64::Engine as _;
        let owner = base64::engine::general_purpose::STANDARD
            .decode(HUB_OWNER_KEY)
            .unwrap();
        let service_token = build_token("localhost", &owner, Some("iothubowner"), expiry);
        let refused = https_request(
            &emulator,
            None,
            "GET",
            &format!("/devices/http-far?{API}"),
            &[("Authorization", service_token.as_str())],
            b"",
        )
        .await;
        assert_eq!(refused.status, 401, "service se={expiry}");
    }
    let sent = device_call(
        &emulator,
        "http-far",
        "POST",
        "/devices/http-far/messages/events",
        &[],
        b"x",
    )
    .await;
    assert_eq!(sent.status, 204);
    assert_eq!(
        emulator
            .default_hub()
            .telemetry()
            .messages(Some("http-far"))
            .len(),
        1
    );
}
