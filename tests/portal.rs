//! The local portal on the control port (issue #16): its page and JSON API, which read and
//! write through the DPS and hub domain operations, and the control token that protects the
//! port when it is bound beyond loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use iotemu::SymmetricKey;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 exchange on a fresh connection: status, head and body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, String, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut answer),
    )
    .await
    .expect("an answer in time")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

const WRITE: (&str, &str) = ("X-Iotemu-Portal", "1");

async fn json_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, body) = call(addr, method, path, headers, body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();
    let (status, head, body) = call(addr, "GET", "/", &[], None).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html")
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'self'")
    );
    assert!(body.contains("<script src=\"/portal.js\""));
    assert!(!body.contains("http://") && !body.contains("https://"));
    let (status, _, js) = call(addr, "GET", "/portal.js", &[], None).await;
    assert_eq!(status, 200);
    assert!(js.contains("/telemetry/stream"));
    let (status, _, _) = call(addr, "GET", "/portal.css", &[], None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_quickstart_portal_steps_through_the_api() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();

    let (status, overview) = json_call(addr, "GET", "/api/overview", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(overview["idScope"], "0ne00000A0A");
    assert_eq!(overview["serviceEndpoint"], "localhost");
    assert!(
        overview["policies"][0]["connectionString"]
            .as_str()
            .unwrap()
            .starts_with("HostName=localhost;SharedAccessKeyName=")
    );

    // A write without the portal's header is refused (another site cannot forge one).
    let enrollment = json!({
        "registrationId": "portal-device-1",
        "deviceId": "portal-dev-1",
        "attestation": {"type": "symmetricKey", "symmetricKey": {}},
        "initialTwin": {"tags": {"from": "portal"}, "properties": {"desired": {}}},
    });
    let (status, _) = json_call(
        addr,
        "PUT",
        "/api/enrollments/portal-device-1",
        &[],
        Some(enrollment.clone()),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        emulator
            .dps()
            .individual_enrollment("portal-device-1")
            .is_none()
    );

    // "Auto-generate keys": the stored enrollment has fresh keys, the page shows them.
    let (status, created) = json_call(
        addr,
        "PUT",
        "/api/enrollments/portal-device-1",
        &[WRITE],
        Some(enrollment.clone()),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let primary = created["attestation"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(primary.len(), 88, "64 random bytes in base64");
    let stored = emulator
        .dps()
        .individual_enrollment("portal-device-1")
        .unwrap();
    assert_eq!(stored.device_id.as_deref(), Some("portal-dev-1"));
    let (_, list) = json_call(addr, "GET", "/api/enrollments", &[], None).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["registrationId"] == "portal-device-1")
    );

    // Disable with a stale ETag: the domain's precondition answers 412.
    let mut disabled = created.clone();
    disabled["provisioningStatus"] = json!("disabled");
    let (status, error) = json_call(
        addr,
        "PUT",
        "/api/enrollments/portal-device-1",
        &[WRITE, ("If-Match", "\"stale\"")],
        Some(disabled),
    )
    .await;
    assert_eq!(status, 412, "{error}");
    assert!(error["errorCode"].as_u64().unwrap() >= 412000);

    // Invalid input gets the domain's 400 with its code.
    let (status, error) = json_call(
        addr,
        "PUT",
        "/api/enrollments/Bad%20Id",
        &[WRITE],
        Some(json!({"registrationId": "Bad Id", "attestation": {"type": "symmetricKey"}})),
    )
    .await;
    assert_eq!(status, 400, "{error}");

    let (status, _) = json_call(
        addr,
        "DELETE",
        "/api/enrollments/portal-device-1",
        &[WRITE],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        emulator
            .dps()
            .individual_enrollment("portal-device-1")
            .is_none()
    );
    let (status, _) = json_call(addr, "GET", "/api/enrollments/portal-device-1", &[], None).await;
    assert_eq!(status, 404);

    // Groups go through the same operations; registration records answer the service's 404.
    let (status, group) = json_call(
        addr,
        "PUT",
        "/api/enrollmentGroups/portal-group",
        &[WRITE],
        Some(json!({"enrollmentGroupId": "portal-group", "attestation": {"type": "symmetricKey"}})),
    )
    .await;
    assert_eq!(status, 200, "{group}");
    assert!(group["attestation"]["symmetricKey"]["primaryKey"].is_string());
    let (status, _) = json_call(
        addr,
        "DELETE",
        "/api/enrollmentGroups/portal-group",
        &[WRITE],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(emulator.dps().enrollment_group("portal-group").is_none());
    let (status, error) =
        json_call(addr, "DELETE", "/api/registrations/nobody", &[WRITE], None).await;
    assert_eq!(status, 404, "{error}");
    let (status, _) = json_call(addr, "POST", "/api/enrollments", &[WRITE], None).await;
    assert_eq!(status, 405);

    // The X.509 form's body: a device certificate as the primary client certificate.
    let device = iotemu::certs::self_signed_device("portal-x509-device", 30).unwrap();
    let (status, x509) = json_call(
        addr,
        "PUT",
        "/api/enrollments/portal-x509-device",
        &[WRITE],
        Some(json!({
            "registrationId": "portal-x509-device",
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": device.cert_pem}}}},
            "provisioningStatus": "enabled",
            "reprovisionPolicy": {"updateHubAssignment": true, "migrateDeviceData": true},
            "allocationPolicy": "hashed",
            "iotHubs": ["localhost"],
        })),
    )
    .await;
    assert_eq!(status, 200, "{x509}");
    assert_eq!(x509["attestation"]["type"], "x509");
}

#[tokio::test]
async fn devices_twin_method_and_c2d_through_the_api() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();
    let key = SymmetricKey::from_base64(iotemu_e2e::QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device("portal-dev", key.clone(), key, None);

    let (status, devices) = json_call(addr, "GET", "/api/hubs/localhost/devices", &[], None).await;
    assert_eq!(status, 200);
    let device = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == "portal-dev")
        .unwrap()
        .clone();
    assert_eq!(device["status"], "enabled");
    assert_eq!(device["connectionState"], "Disconnected");

    // Create, then disable with the device's ETag, then delete.
    let (status, created) = json_call(
        addr,
        "PUT",
        "/api/hubs/localhost/devices/portal-new",
        &[WRITE],
        Some(json!({"deviceId": "portal-new", "authentication": {"type": "sas"}})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let etag = created["etag"].as_str().unwrap().to_owned();
    let mut update = created.clone();
    update["status"] = json!("disabled");
    let (status, updated) = json_call(
        addr,
        "PUT",
        "/api/hubs/localhost/devices/portal-new",
        &[WRITE, ("If-Match", &etag)],
        Some(update),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["status"], "disabled");
    let (status, _) = json_call(
        addr,
        "DELETE",
        "/api/hubs/localhost/devices/portal-new",
        &[WRITE],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(emulator.default_hub().device("portal-new").is_none());

    // Twin: a patch with the twin's ETag lands; one with a stale ETag is a conflict.
    let (status, twin) = json_call(
        addr,
        "GET",
        "/api/hubs/localhost/devices/portal-dev/twin",
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{twin}");
    let twin_etag = twin["etag"].as_str().unwrap().to_owned();
    let patch = json!({"tags": {"room": "42"}, "properties": {"desired": {"fan": true}}});
    let (status, patched) = json_call(
        addr,
        "PATCH",
        "/api/hubs/localhost/devices/portal-dev/twin",
        &[WRITE, ("If-Match", &twin_etag)],
        Some(patch.clone()),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["tags"]["room"], "42");
    assert_eq!(patched["properties"]["desired"]["fan"], true);
    let (status, conflict) = json_call(
        addr,
        "PATCH",
        "/api/hubs/localhost/devices/portal-dev/twin",
        &[WRITE, ("If-Match", &twin_etag)],
        Some(patch),
    )
    .await;
    assert_eq!(status, 412, "{conflict}");

    // Direct method on a device that is not connected: the hub's 404103.
    let (status, error) = json_call(
        addr,
        "POST",
        "/api/hubs/localhost/devices/portal-dev/methods",
        &[WRITE],
        Some(json!({"methodName": "reboot", "payload": {}})),
    )
    .await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["errorCode"], 404103);

    // C2D with properties is queued for the device.
    let (status, sent) = json_call(
        addr,
        "POST",
        "/api/hubs/localhost/devices/portal-dev/messages",
        &[WRITE],
        Some(json!({"body": "hi", "properties": {"k": "v"}, "ack": "full"})),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let pending = emulator.default_hub().c2d_pending("portal-dev");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, sent["messageId"].as_str().unwrap());
    assert_eq!(
        pending[0].message.properties.get("k").map(String::as_str),
        Some("v")
    );
    assert_eq!(pending[0].message.ack.as_deref(), Some("full"));
    let (status, queued) = json_call(
        addr,
        "GET",
        "/api/hubs/localhost/devices/portal-dev/messages",
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(queued[0]["messageId"], sent["messageId"]);
    assert_eq!(queued[0]["body"], "hi");
    let (status, feedback) =
        json_call(addr, "GET", "/api/hubs/localhost/feedback", &[], None).await;
    assert_eq!((status, feedback), (200, json!([])));

    let (status, _) = json_call(addr, "GET", "/api/hubs/nohub/devices", &[], None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn beyond_loopback_everything_but_health_and_the_ca_needs_the_token() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .control_bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .start()
        .await
        .unwrap();
    let port = emulator.control_addr().unwrap().port();
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let token = emulator
        .control_token()
        .expect("a generated token")
        .to_owned();

    assert_eq!(call(addr, "GET", "/health", &[], None).await.0, 200);
    assert_eq!(call(addr, "GET", "/ca.pem", &[], None).await.0, 200);
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/api/enrollments"),
        ("GET", "/enrollments"),
        ("GET", "/telemetry/stream"),
        ("POST", "/c2d?deviceId=x"),
        ("DELETE", "/api/enrollments/symm-key-python-device-008"),
    ] {
        let (status, _, _) = call(addr, method, path, &[WRITE], None).await;
        assert_eq!(status, 401, "{method} {path}");
    }
    assert!(
        emulator
            .dps()
            .individual_enrollment("symm-key-python-device-008")
            .is_some()
    );

    // The printed link sets the cookie the page's requests then carry.
    let (status, head, _) = call(addr, "GET", &format!("/?token={token}"), &[], None).await;
    assert_eq!(status, 303);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly") || head.contains("HttpOnly"));
    assert_eq!(
        call(addr, "GET", "/", &[("Cookie", &cookie)], None).await.0,
        200
    );
    let bearer = format!("Bearer {token}");
    let (status, _, _) = call(
        addr,
        "GET",
        "/api/enrollments",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(
        addr,
        "GET",
        "/api/enrollments",
        &[("Authorization", "Bearer wrong")],
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_given_token_is_required_on_loopback_too() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .control_token(Some("portal-secret".into()))
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();
    assert_eq!(emulator.control_token(), Some("portal-secret"));
    assert_eq!(call(addr, "GET", "/api/overview", &[], None).await.0, 401);
    let (status, _, _) = call(
        addr,
        "GET",
        "/api/overview",
        &[("Authorization", "Bearer portal-secret")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(call(addr, "GET", "/health", &[], None).await.0, 200);
}

#[tokio::test]
async fn certificates_are_uploaded_and_verified_through_the_api() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();
    let root = iotemu::certs::root_ca("Portal Test Root", 30).unwrap();
    let ca = root.to_ca().unwrap();

    let (status, uploaded) = json_call(
        addr,
        "PUT",
        "/api/certificates/portal-root",
        &[WRITE],
        Some(json!({"certificate": root.cert_pem})),
    )
    .await;
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(uploaded["properties"]["isVerified"], false);
    let (status, code) = json_call(
        addr,
        "POST",
        "/api/certificates/portal-root/verificationCode",
        &[WRITE],
        None,
    )
    .await;
    assert_eq!(status, 200, "{code}");
    let code = code["verificationCode"].as_str().unwrap().to_owned();

    // A proof for another code is refused; the right one verifies the CA.
    let wrong = iotemu::certs::verification_certificate(&ca, "0123456789ABCDEF").unwrap();
    let (status, error) = json_call(
        addr,
        "POST",
        "/api/certificates/portal-root/verify",
        &[WRITE],
        Some(json!({"certificate": wrong.cert_pem})),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    let proof = iotemu::certs::verification_certificate(&ca, &code).unwrap();
    let (status, verified) = json_call(
        addr,
        "POST",
        "/api/certificates/portal-root/verify",
        &[WRITE],
        Some(json!({"certificate": proof.cert_pem})),
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    assert!(
        emulator
            .dps()
            .certificates()
            .get("portal-root")
            .unwrap()
            .is_verified
    );

    // The hub's store is its own.
    let (status, list) =
        json_call(addr, "GET", "/api/hubs/localhost/certificates", &[], None).await;
    assert_eq!((status, list), (200, json!([])));
    let (status, _) = json_call(
        addr,
        "PUT",
        "/api/hubs/localhost/certificates/bad",
        &[WRITE],
        Some(json!({"certificate": "not a certificate"})),
    )
    .await;
    assert_eq!(status, 400);

    let (status, _) = json_call(
        addr,
        "DELETE",
        "/api/certificates/portal-root",
        &[WRITE],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = json_call(
        addr,
        "DELETE",
        "/api/certificates/portal-root",
        &[WRITE],
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn modules_their_twins_and_methods_through_the_api() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();
    let key = SymmetricKey::from_base64(iotemu_e2e::QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device("mod-dev", key.clone(), key, None);
    let module_path = "/api/hubs/localhost/devices/mod-dev/modules/sensor";

    // Create: SAS with generated keys, as the portal's "Add module" sends it.
    let (status, created) = json_call(
        addr,
        "PUT",
        module_path,
        &[WRITE],
        Some(json!({"moduleId": "sensor", "authentication": {"type": "sas"}})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["authentication"]["type"], "sas");
    let primary = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap();
    assert!(!primary.is_empty());
    let (status, again) = json_call(addr, "PUT", module_path, &[WRITE], Some(json!({}))).await;
    assert_eq!(
        status, 409,
        "a second create is the hub's conflict: {again}"
    );
    let (status, fetched) = json_call(addr, "GET", module_path, &[], None).await;
    assert_eq!((status, &fetched["moduleId"]), (200, &json!("sensor")));
    let (_, modules) = json_call(
        addr,
        "GET",
        "/api/hubs/localhost/devices/mod-dev/modules",
        &[],
        None,
    )
    .await;
    assert_eq!(modules.as_array().map(Vec::len), Some(1));

    // The module's twin: patched with its ETag; a stale ETag is a conflict; the device's twin
    // is untouched.
    let twin_path = format!("{module_path}/twin");
    let (status, twin) = json_call(addr, "GET", &twin_path, &[], None).await;
    assert_eq!(status, 200, "{twin}");
    assert_eq!(twin["moduleId"], "sensor");
    let twin_etag = twin["etag"].as_str().unwrap().to_owned();
    let patch = json!({"tags": {"kind": "temp"}, "properties": {"desired": {"rate": 5}}});
    let (status, patched) = json_call(
        addr,
        "PATCH",
        &twin_path,
        &[WRITE, ("If-Match", &twin_etag)],
        Some(patch.clone()),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["tags"]["kind"], "temp");
    assert_eq!(patched["properties"]["desired"]["rate"], 5);
    let stored = emulator
        .default_hub()
        .module_twin("mod-dev", "sensor")
        .unwrap();
    assert_eq!(stored.etag, patched["etag"].as_str().unwrap());
    let (status, conflict) = json_call(
        addr,
        "PATCH",
        &twin_path,
        &[WRITE, ("If-Match", &twin_etag)],
        Some(patch),
    )
    .await;
    assert_eq!(status, 412, "{conflict}");
    let (_, device_twin) = json_call(
        addr,
        "GET",
        "/api/hubs/localhost/devices/mod-dev/twin",
        &[],
        None,
    )
    .await;
    assert!(device_twin["tags"].get("kind").is_none(), "{device_twin}");

    // A method on the module, which is not connected: the hub's 404103; on a module that does
    // not exist, 404010; a body without a method name, the service API's 400004.
    let (status, error) = json_call(
        addr,
        "POST",
        &format!("{module_path}/methods"),
        &[WRITE],
        Some(json!({"methodName": "calibrate", "payload": {}, "responseTimeoutInSeconds": 1})),
    )
    .await;
    assert_eq!((status, &error["errorCode"]), (404, &json!(404103)));
    let (status, error) = json_call(
        addr,
        "POST",
        "/api/hubs/localhost/devices/mod-dev/modules/nope/methods",
        &[WRITE],
        Some(json!({"methodName": "calibrate"})),
    )
    .await;
    assert_eq!((status, &error["errorCode"]), (404, &json!(404010)));
    let (status, error) = json_call(
        addr,
        "POST",
        &format!("{module_path}/methods"),
        &[WRITE],
        Some(json!({})),
    )
    .await;
    assert_eq!((status, &error["errorCode"]), (400, &json!(400004)));

    // Delete.
    let (status, _) = json_call(addr, "DELETE", module_path, &[WRITE], None).await;
    assert_eq!(status, 200);
    assert!(emulator.default_hub().module("mod-dev", "sensor").is_none());
    let (status, error) = json_call(addr, "DELETE", module_path, &[WRITE], None).await;
    assert_eq!((status, &error["errorCode"]), (404, &json!(404010)));
}

#[tokio::test]
async fn x509_devices_are_created_through_the_api() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();
    let thumbprint = "AB".repeat(20);
    // What the portal's "Add device" form sends for each authentication type.
    let (status, created) = json_call(
        addr,
        "PUT",
        "/api/hubs/localhost/devices/x509-self",
        &[WRITE],
        Some(
            json!({"deviceId": "x509-self", "status": "enabled", "authentication": {
            "type": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": thumbprint, "secondaryThumbprint": null}}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["authentication"]["type"], "selfSigned");
    assert_eq!(
        created["authentication"]["x509Thumbprint"]["primaryThumbprint"],
        thumbprint
    );
    let (status, created) = json_call(
        addr,
        "PUT",
        "/api/hubs/localhost/devices/x509-ca",
        &[WRITE],
        Some(json!({"deviceId": "x509-ca", "status": "enabled",
            "authentication": {"type": "certificateAuthority"}})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["authentication"]["type"], "certificateAuthority");
    let (status, error) = json_call(
        addr,
        "PUT",
        "/api/hubs/localhost/devices/x509-none",
        &[WRITE],
        Some(json!({"deviceId": "x509-none", "authentication": {"type": "selfSigned"}})),
    )
    .await;
    assert_eq!(
        (status, &error["errorCode"]),
        (400, &json!(400004)),
        "{error}"
    );
}

/// The continuation token a paged answer carries, if any.
fn continuation_of(head: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-ms-continuation")
            .then(|| value.trim().to_owned())
    })
}

/// Follows the continuation tokens of `path` to the end: every page's ids, in order.
async fn all_pages(addr: SocketAddr, path: &str, id_field: &str, size: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut headers = vec![("x-ms-max-item-count", size)];
        if let Some(token) = &token {
            headers.push(("x-ms-continuation", token));
        }
        let (status, head, body) = call(addr, "GET", path, &headers, None).await;
        assert_eq!(status, 200, "{body}");
        let items: Value = serde_json::from_str(&body).unwrap();
        pages.push(
            items
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i[id_field].as_str().unwrap().to_owned())
                .collect(),
        );
        token = continuation_of(&head);
        if token.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the tokens never end");
    }
}

#[tokio::test]
async fn lists_are_paged_with_continuation_tokens_and_filtered_before_paging() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();
    let key = SymmetricKey::from_base64(iotemu_e2e::QUICKSTART_KEY).unwrap();
    let hub = emulator.default_hub();
    for i in 0..250 {
        hub.provision_device(&format!("page-dev-{i:03}"), key.clone(), key.clone(), None);
    }
    let mut expected: Vec<String> = (0..250).map(|i| format!("page-dev-{i:03}")).collect();
    expected.sort();

    // 250 devices in pages of 100: 100, 100, 50, in device id order, nothing twice.
    let pages = all_pages(addr, "/api/hubs/localhost/devices", "deviceId", "100").await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
    assert_eq!(pages.concat(), expected);

    // Without a page size the answer is the REST APIs' default page (100), with the total.
    let (status, head, body) = call(addr, "GET", "/api/hubs/localhost/devices", &[], None).await;
    assert_eq!(status, 200);
    let first: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(first.as_array().map(Vec::len), Some(100));
    assert!(
        head.to_ascii_lowercase()
            .contains("x-iotemu-total-count: 250"),
        "{head}"
    );
    assert!(continuation_of(&head).is_some());

    // The filter (case-insensitive) applies before paging: page-dev-240…249 in pages of 3.
    let pages = all_pages(
        addr,
        "/api/hubs/localhost/devices?filter=PAGE-DEV-24",
        "deviceId",
        "3",
    )
    .await;
    assert_eq!(
        pages.concat(),
        (240..250)
            .map(|i| format!("page-dev-{i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(pages.len(), 4);

    // A token that is not ours is the APIs' 400004.
    let (status, error) = json_call(
        addr,
        "GET",
        "/api/hubs/localhost/devices",
        &[("x-ms-continuation", "bm90LWEtdG9rZW4")],
        None,
    )
    .await;
    assert_eq!((status, &error["errorCode"]), (400, &json!(400004)));

    // Individual enrollments page the same way (through the portal's own PUT).
    for i in 0..120 {
        let id = format!("page-enr-{i:03}");
        let (status, body) = json_call(
            addr,
            "PUT",
            &format!("/api/enrollments/{id}"),
            &[WRITE],
            Some(json!({"registrationId": id, "attestation": {"type": "symmetricKey", "symmetricKey": {}}})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // (The default emulator has the quickstart's enrollment too; the filter leaves it out.)
    let pages = all_pages(
        addr,
        "/api/enrollments?filter=page-enr-",
        "registrationId",
        "50",
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![50, 50, 20]
    );
    let mut enrollments: Vec<String> = (0..120).map(|i| format!("page-enr-{i:03}")).collect();
    enrollments.sort();
    assert_eq!(pages.concat(), enrollments);
    for list in ["/api/enrollmentGroups", "/api/registrations"] {
        let (status, items) =
            json_call(addr, "GET", list, &[("x-ms-max-item-count", "5")], None).await;
        assert_eq!(status, 200, "{items}");
        assert!(items.as_array().is_some_and(|items| items.len() <= 5));
    }
}

#[tokio::test]
async fn modules_are_created_with_x509_or_given_keys_through_the_api() {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let addr = emulator.control_addr().unwrap();
    let key = SymmetricKey::from_base64(iotemu_e2e::QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device("mod-x509", key.clone(), key, None);
    let base = "/api/hubs/localhost/devices/mod-x509/modules";
    let thumbprint = "CD".repeat(32);
    // What the portal's "Add module" form sends for each authentication type.
    let (status, created) = json_call(
        addr,
        "PUT",
        &format!("{base}/self"),
        &[WRITE],
        Some(
            json!({"moduleId": "self", "authentication": {"type": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": thumbprint, "secondaryThumbprint": null}}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["authentication"]["type"], "selfSigned");
    assert_eq!(
        created["authentication"]["x509Thumbprint"]["primaryThumbprint"],
        thumbprint
    );
    let (status, created) = json_call(
        addr,
        "PUT",
        &format!("{base}/ca"),
        &[WRITE],
        Some(json!({"moduleId": "ca", "authentication": {"type": "certificateAuthority"}})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["authentication"]["type"], "certificateAuthority");
    let given = iotemu_e2e::QUICKSTART_KEY;
    let (status, created) = json_call(
        addr,
        "PUT",
        &format!("{base}/given"),
        &[WRITE],
        Some(
            json!({"moduleId": "given", "authentication": {"type": "sas",
            "symmetricKey": {"primaryKey": given, "secondaryKey": given}}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created["authentication"]["symmetricKey"]["primaryKey"],
        given
    );
    assert!(emulator.default_hub().module("mod-x509", "self").is_some());
    let (status, fetched) = json_call(addr, "GET", &format!("{base}/self"), &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(
        fetched["authentication"]["x509Thumbprint"]["primaryThumbprint"],
        thumbprint
    );
    // A self-signed module without a thumbprint, or with one that is not hex, is refused.
    for bad in [json!(null), json!("not-hex")] {
        let (status, error) = json_call(
            addr,
            "PUT",
            &format!("{base}/bad"),
            &[WRITE],
            Some(
                json!({"moduleId": "bad", "authentication": {"type": "selfSigned",
                "x509Thumbprint": {"primaryThumbprint": bad}}}),
            ),
        )
        .await;
        assert_eq!(
            (status, &error["errorCode"]),
            (400, &json!(400004)),
            "{error}"
        );
    }
    let (_, modules) = json_call(addr, "GET", base, &[], None).await;
    assert_eq!(modules.as_array().map(Vec::len), Some(3));
}
