//! File upload end to end over the wire (docs/file-upload.md): a device asks for a blob,
//! uploads it to the built-in blob store with the SAS it was given (Put Blob, or Put Block +
//! Put Block List), reports the outcome, and the service reads the notification; the limits
//! and refusals on the way (bad or expired SAS, permissions, ten uploads at once, unknown
//! correlation ids), and what the control port lists.

use std::time::Duration;

use iotemu_e2e::*;
use serde_json::{Value, json};

const API: &str = "api-version=2021-04-12";

/// A device with the quickstart key on the default hub (its MQTT client is not needed).
fn provision(emulator: &iotemu::Emulator, device_id: &str) {
    let _ = quickstart_device(emulator, device_id, None);
}

/// A device request with the device's SAS.
async fn device_post(
    emulator: &iotemu::Emulator,
    device_id: &str,
    path: &str,
    body: &Value,
) -> HttpsResponse {
    let sas = device_token(
        "localhost",
        device_id,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    https_request(
        emulator,
        None,
        "POST",
        &format!("{path}?{API}"),
        &[
            ("Authorization", &sas),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

/// `POST /devices/{id}/files`: the JSON answer.
async fn start_upload(emulator: &iotemu::Emulator, device_id: &str, blob_name: &str) -> Value {
    let answer = device_post(
        emulator,
        device_id,
        &format!("/devices/{device_id}/files"),
        &json!({ "blobName": blob_name }),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

/// A Blob service request to the URL a start answer names, with extra query and headers.
async fn blob_request(
    emulator: &iotemu::Emulator,
    method: &str,
    target: &Value,
    extra_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpsResponse {
    let path = format!(
        "/{}/{}{}{}",
        target["containerName"].as_str().unwrap(),
        target["blobName"].as_str().unwrap(),
        target["sasToken"].as_str().unwrap(),
        extra_query
    );
    https_request(emulator, None, method, &path, headers, body).await
}

#[tokio::test]
async fn a_put_blob_upload_is_stored_and_notified() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "uploader");
    let target = start_upload(&emulator, "uploader", "logs/crash.txt").await;
    assert_eq!(
        target["hostName"], "localhost",
        "the authority the device used"
    );
    assert_eq!(target["containerName"], "fileuploads");
    assert_eq!(target["blobName"], "uploader/logs/crash.txt");
    let sas = target["sasToken"].as_str().unwrap();
    assert!(sas.starts_with("?sv=2018-03-28&sr=b&sig="), "{sas}");
    assert!(sas.ends_with("&sp=rw"), "{sas}");

    // The Python SDK's Put Blob: If-None-Match: * (overwrite=False).
    let headers = [
        ("x-ms-blob-type", "BlockBlob"),
        ("If-None-Match", "*"),
        ("x-ms-version", "2026-10-06"),
        ("x-ms-blob-content-type", "text/plain"),
    ];
    let put = blob_request(&emulator, "PUT", &target, "", &headers, b"Hello, World!").await;
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    assert!(put.header("etag").is_some_and(|e| e.starts_with("\"0x")));
    assert!(put.header("last-modified").is_some());
    assert_eq!(put.header("x-ms-version"), Some("2026-10-06"));
    let again = blob_request(&emulator, "PUT", &target, "", &headers, b"other").await;
    assert_eq!(again.status, 409);
    assert_eq!(again.header("x-ms-error-code"), Some("BlobAlreadyExists"));

    let blob = emulator
        .blobs()
        .get("fileuploads", "uploader/logs/crash.txt")
        .expect("stored");
    assert_eq!(&blob.content[..], b"Hello, World!");
    assert_eq!(blob.content_type, "text/plain");

    // Get Blob, whole and by range (the Python downloader asks for a range first).
    let read = blob_request(&emulator, "GET", &target, "", &[], b"").await;
    assert_eq!((read.status, &read.body[..]), (200, &b"Hello, World!"[..]));
    let range = blob_request(
        &emulator,
        "GET",
        &target,
        "",
        &[("x-ms-range", "bytes=7-")],
        b"",
    )
    .await;
    assert_eq!((range.status, &range.body[..]), (206, &b"World!"[..]));
    assert_eq!(range.header("content-range"), Some("bytes 7-12/13"));

    let done = device_post(
        &emulator,
        "uploader",
        "/devices/uploader/files/notifications",
        &json!({"correlationId": target["correlationId"], "isSuccess": true, "statusCode": 200, "statusDescription": ""}),
    )
    .await;
    assert_eq!(done.status, 204, "{}", String::from_utf8_lossy(&done.body));

    let hub = emulator.default_hub();
    let now = hub.clock().now();
    let notification = hub.receive_file_notification(now).expect("a notification");
    let body = notification.body();
    assert_eq!(body["deviceId"], "uploader");
    assert_eq!(body["blobName"], "uploader/logs/crash.txt");
    assert_eq!(
        body["blobUri"],
        "https://localhost/fileuploads/uploader/logs/crash.txt"
    );
    assert_eq!(body["blobSizeInBytes"], 13);
    assert!(hub.receive_file_notification(now).is_none(), "locked");

    // The correlation id is spent.
    let twice = device_post(
        &emulator,
        "uploader",
        "/devices/uploader/files/notifications",
        &json!({"correlationId": target["correlationId"], "isSuccess": true}),
    )
    .await;
    assert_eq!(twice.status, 400);
}

#[tokio::test]
async fn block_uploads_commit_and_node_style_notifications_are_accepted() {
    let emulator = iotemu::Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .start()
        .await
        .expect("starts");
    provision(&emulator, "blocks");
    let target = start_upload(&emulator, "blocks", "big.bin").await;
    // As @azure/storage-blob sends them, x-ms-encryption-algorithm without a key included.
    let quirk = [("x-ms-encryption-algorithm", "AES256")];
    for (id, part) in [
        ("YmxvY2stMDAwMQ==", &b"first "[..]),
        ("YmxvY2stMDAwMg==", b"second"),
    ] {
        let put = blob_request(
            &emulator,
            "PUT",
            &target,
            &format!("&comp=block&blockid={}", id.replace('=', "%3D")),
            &quirk,
            part,
        )
        .await;
        assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    }
    assert!(
        emulator
            .blobs()
            .get("fileuploads", "blocks/big.bin")
            .is_none()
    );
    let list = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><BlockList><Latest>YmxvY2stMDAwMQ==</Latest><Latest>YmxvY2stMDAwMg==</Latest></BlockList>";
    let commit = blob_request(
        &emulator,
        "PUT",
        &target,
        "&comp=blocklist",
        &quirk,
        list.as_bytes(),
    )
    .await;
    assert_eq!(
        commit.status,
        201,
        "{}",
        String::from_utf8_lossy(&commit.body)
    );
    let blob = emulator
        .blobs()
        .get("fileuploads", "blocks/big.bin")
        .unwrap();
    assert_eq!(&blob.content[..], b"first second");

    // Node puts the correlation id in the path and not in the body.
    let correlation = target["correlationId"].as_str().unwrap();
    let done = device_post(
        &emulator,
        "blocks",
        &format!("/devices/blocks/files/notifications/{correlation}"),
        &json!({"isSuccess": true, "statusCode": 201, "statusDescription": ""}),
    )
    .await;
    assert_eq!(done.status, 204, "{}", String::from_utf8_lossy(&done.body));
    let hub = emulator.default_hub();
    let notification = hub.receive_file_notification(hub.clock().now()).unwrap();
    assert_eq!(notification.body()["blobSizeInBytes"], 12);

    // The control port lists it and serves its bytes.
    let (status, listed) = control_call(&emulator, "GET", "/blobs", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["name"], "blocks/big.bin");
    assert_eq!(listed[0]["size"], 12);
    let raw = control_raw(&emulator, "/blobs/fileuploads/blocks/big.bin").await;
    assert!(raw.ends_with("\r\n\r\nfirst second"), "{raw}");
}

/// The control port's raw answer to a GET.
async fn control_raw(emulator: &iotemu::Emulator, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(emulator.control_addr().unwrap())
        .await
        .unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    within("control answer", tcp.read_to_end(&mut raw))
        .await
        .unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn a_failed_upload_is_not_notified_and_sas_rules_hold() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "careful");
    provision(&emulator, "other");
    let target = start_upload(&emulator, "careful", "f.txt").await;
    let put = [("x-ms-blob-type", "BlockBlob")];

    // A token for another blob, a changed signature, no token at all: refused, nothing stored.
    let mut elsewhere = target.clone();
    elsewhere["blobName"] = json!("careful/g.txt");
    let refused = blob_request(&emulator, "PUT", &elsewhere, "", &put, b"x").await;
    assert_eq!(
        (refused.status, refused.header("x-ms-error-code")),
        (403, Some("AuthenticationFailed"))
    );
    let mut forged = target.clone();
    forged["sasToken"] = json!(
        target["sasToken"]
            .as_str()
            .unwrap()
            .replace("sp=rw", "sp=rwd")
    );
    assert_eq!(
        blob_request(&emulator, "PUT", &forged, "", &put, b"x")
            .await
            .status,
        403
    );
    let mut bare = target.clone();
    bare["sasToken"] = json!("");
    let anonymous = blob_request(&emulator, "PUT", &bare, "", &put, b"x").await;
    assert_eq!(
        anonymous.header("x-ms-error-code"),
        Some("NoAuthenticationInformation")
    );
    assert!(emulator.blobs().list().is_empty());

    // Another device cannot complete this device's upload.
    let stolen = device_post(
        &emulator,
        "other",
        "/devices/other/files/notifications",
        &json!({"correlationId": target["correlationId"], "isSuccess": true}),
    )
    .await;
    assert_eq!(stolen.status, 400);

    // A failure report ends the upload without a notification.
    let failed = device_post(
        &emulator,
        "careful",
        "/devices/careful/files/notifications",
        &json!({"correlationId": target["correlationId"], "isSuccess": false, "statusCode": "AuthorizationFailure", "statusDescription": "no"}),
    )
    .await;
    assert_eq!(failed.status, 204);
    let hub = emulator.default_hub();
    assert!(hub.receive_file_notification(hub.clock().now()).is_none());

    // The token dies with its hour.
    let late = start_upload(&emulator, "careful", "late.txt").await;
    emulator.advance(Duration::from_secs(3601)).await.unwrap();
    let expired = blob_request(&emulator, "PUT", &late, "", &put, b"x").await;
    assert_eq!(expired.status, 403);
}

#[tokio::test]
async fn ten_uploads_at_once_is_the_limit() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "busy");
    let mut first = None;
    for n in 0..10 {
        let target = start_upload(&emulator, "busy", &format!("f{n}")).await;
        first.get_or_insert(target);
    }
    let eleventh = device_post(
        &emulator,
        "busy",
        "/devices/busy/files",
        &json!({"blobName": "f10"}),
    )
    .await;
    assert_eq!(eleventh.status, 403);
    assert!(
        String::from_utf8_lossy(&eleventh.body)
            .contains("DeviceMaximumActiveFileUploadLimitExceeded")
    );
    let done = device_post(
        &emulator,
        "busy",
        "/devices/busy/files/notifications",
        &json!({"correlationId": first.unwrap()["correlationId"], "isSuccess": false}),
    )
    .await;
    assert_eq!(done.status, 204);
    start_upload(&emulator, "busy", "f10").await;

    for bad in [
        json!({"blobName": "../escape"}),
        json!({"blobName": ""}),
        json!({"name": "x"}),
    ] {
        let refused = device_post(&emulator, "busy", "/devices/busy/files", &bad).await;
        assert_eq!(refused.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn uploads_survive_a_restart_with_a_data_dir() {
    let dir = std::env::temp_dir().join(format!("iotemu-upload-{}", uuid::Uuid::new_v4()));
    let emulator = start_on_data_dir(&dir).await;
    provision(&emulator, "durable");
    let target = start_upload(&emulator, "durable", "kept.txt").await;
    let put = [("x-ms-blob-type", "BlockBlob")];
    assert_eq!(
        blob_request(&emulator, "PUT", &target, "", &put, b"kept")
            .await
            .status,
        201
    );
    let block = blob_request(
        &emulator,
        "PUT",
        &target,
        "&comp=block&blockid=YQ%3D%3D",
        &[],
        b"again",
    )
    .await;
    assert_eq!(block.status, 201);
    emulator.shutdown().await;

    let emulator = start_on_data_dir(&dir).await;
    let blob = emulator
        .blobs()
        .get("fileuploads", "durable/kept.txt")
        .expect("kept");
    assert_eq!(&blob.content[..], b"kept");
    // The upload in progress and its uncommitted block came back too.
    let list = "<BlockList><Uncommitted>YQ==</Uncommitted></BlockList>";
    let commit = blob_request(
        &emulator,
        "PUT",
        &target,
        "&comp=blocklist",
        &[],
        list.as_bytes(),
    )
    .await;
    assert_eq!(
        commit.status,
        201,
        "{}",
        String::from_utf8_lossy(&commit.body)
    );
    assert_eq!(
        &emulator
            .blobs()
            .get("fileuploads", "durable/kept.txt")
            .unwrap()
            .content[..],
        b"again"
    );
    let done = device_post(
        &emulator,
        "durable",
        "/devices/durable/files/notifications",
        &json!({"correlationId": target["correlationId"], "isSuccess": true}),
    )
    .await;
    assert_eq!(done.status, 204, "{}", String::from_utf8_lossy(&done.body));
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_module_uploads_under_its_own_folder_with_its_own_credential() {
    let emulator = start_emulator(None).await;
    let key = create_sas_module(&emulator, "gateway", "logger");
    // The module's token: `sr` names the module, as its SDKs sign it.
    let sas = device_token(
        "localhost",
        "gateway/modules/logger",
        &key,
        seconds_from_now(600),
    );
    let post = |path: String, body: Value| {
        let sas = sas.clone();
        let emulator = &emulator;
        async move {
            https_request(
                emulator,
                None,
                "POST",
                &format!("{path}?{API}"),
                &[
                    ("Authorization", &sas),
                    ("Content-Type", "application/json"),
                ],
                body.to_string().as_bytes(),
            )
            .await
        }
    };
    let started = post(
        "/devices/gateway/modules/logger/files".into(),
        json!({"blobName": "today.log"}),
    )
    .await;
    assert_eq!(
        started.status,
        200,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let target = started.json();
    assert_eq!(target["blobName"], "gateway/logger/today.log");
    let put = blob_request(
        &emulator,
        "PUT",
        &target,
        "",
        &[("x-ms-blob-type", "BlockBlob")],
        b"log",
    )
    .await;
    assert_eq!(put.status, 201);
    // The device's own credential cannot complete the module's upload.
    let as_device = device_post(
        &emulator,
        "gateway",
        "/devices/gateway/files/notifications",
        &json!({"correlationId": target["correlationId"], "isSuccess": true}),
    )
    .await;
    assert!(
        matches!(as_device.status, 400 | 401),
        "{}",
        as_device.status
    );
    let done = post(
        "/devices/gateway/modules/logger/files/notifications".into(),
        json!({"correlationId": target["correlationId"], "isSuccess": true}),
    )
    .await;
    assert_eq!(done.status, 204, "{}", String::from_utf8_lossy(&done.body));
    // Another module's path with this module's token is refused.
    let other = post(
        "/devices/gateway/modules/other/files".into(),
        json!({"blobName": "x"}),
    )
    .await;
    assert_eq!(other.status, 401);
}

#[tokio::test]
async fn uploads_in_flight_share_a_memory_budget() {
    use tokio::io::AsyncWriteExt;
    let emulator = start_emulator(None).await;
    provision(&emulator, "hog");
    let target = start_upload(&emulator, "hog", "big.bin").await;
    let path = format!(
        "/{}/{}{}",
        target["containerName"].as_str().unwrap(),
        target["blobName"].as_str().unwrap(),
        target["sasToken"].as_str().unwrap()
    );
    // Four uploads that announce 64 MiB each and then send nothing hold the whole budget.
    let mut held = Vec::new();
    for _ in 0..4 {
        let port = emulator.https_port().unwrap();
        let mut stream = tls_connect(&emulator, port, None, vec![b"http/1.1".to_vec()]).await;
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: {}\r\n\r\n",
            64 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        held.push(stream);
    }
    let put = [("x-ms-blob-type", "BlockBlob")];
    let busy = within("a refused upload", async {
        loop {
            let answer = blob_request(&emulator, "PUT", &target, "", &put, b"small").await;
            if answer.status != 201 {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        (busy.status, busy.header("x-ms-error-code")),
        (503, Some("ServerBusy"))
    );
    // Closed, they give their share back.
    drop(held);
    within("an accepted upload", async {
        while blob_request(&emulator, "PUT", &target, "", &put, b"small")
            .await
            .status
            != 201
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
