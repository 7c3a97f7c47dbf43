//! Tests of the export: fixture building from service answers, key filling, read-only fields.

use super::*;

#[test]
fn connection_strings_parse_with_and_without_a_port() {
    let plain = ServiceConnection::parse(
        "HostName=my-dps.azure-devices-provisioning.net;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=AAAA",
    )
    .unwrap();
    assert_eq!(plain.host, "my-dps.azure-devices-provisioning.net");
    assert_eq!(plain.port, 443);
    assert_eq!(plain.key_name, "provisioningserviceowner");
    assert_eq!(plain.key, vec![0, 0, 0]);
    let local = ServiceConnection::parse(
        " sharedaccesskey=9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA= ; HostName=localhost:8443;SharedAccessKeyName=p ",
    )
    .unwrap();
    assert_eq!((local.host.as_str(), local.port), ("localhost", 8443));
    assert_eq!(local.key.len(), 32);
    let v6 =
        ServiceConnection::parse("HostName=[::1]:9;SharedAccessKeyName=p;SharedAccessKey=AA==")
            .unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("::1", 9));
}

#[test]
fn bad_connection_strings_say_what_is_wrong() {
    for (text, expected) in [
        (
            "SharedAccessKeyName=p;SharedAccessKey=AA==",
            "HostName is missing",
        ),
        (
            "HostName=h;SharedAccessKey=AA==",
            "SharedAccessKeyName is missing",
        ),
        (
            "HostName=h;SharedAccessKeyName=p",
            "SharedAccessKey is missing",
        ),
        (
            "HostName=h;SharedAccessKeyName=p;SharedAccessKey=!!",
            "not base64",
        ),
        (
            "HostName=h:port;SharedAccessKeyName=p;SharedAccessKey=AA==",
            "not a port",
        ),
        (
            "HostName;SharedAccessKeyName=p;SharedAccessKey=AA==",
            "not Name=value",
        ),
    ] {
        let error = ServiceConnection::parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn the_fixture_names_every_referenced_hub_once_with_well_known_policies() {
    let connection = ServiceConnection::parse(
        "HostName=my-dps.example;SharedAccessKeyName=p;SharedAccessKey=AA==",
    )
    .unwrap();
    let enrollment: IndividualEnrollment = serde_json::from_value(json!({
        "registrationId": "e1",
        "attestation": {"type": "symmetricKey"},
        "iotHubs": ["hub-a.example", "hub-b.example"],
    }))
    .unwrap();
    let group: EnrollmentGroup = serde_json::from_value(json!({
        "enrollmentGroupId": "g1",
        "attestation": {"type": "symmetricKey"},
        "iotHubHostName": "HUB-A.example",
        "iotHubs": ["hub-c.example"],
    }))
    .unwrap();
    let fixture = build_fixture(&connection, Some("0neABC"), vec![enrollment], vec![group]);
    let dps = fixture.dps.as_ref().unwrap();
    assert_eq!(dps.host_name, "my-dps.example");
    assert_eq!(dps.id_scope, "0neABC");
    assert_eq!(
        dps.shared_access_policies[0].key_name,
        "provisioningserviceowner"
    );
    let hubs: Vec<&str> = fixture.hubs.iter().map(|h| h.host_name.as_str()).collect();
    assert_eq!(hubs, ["hub-a.example", "hub-b.example", "hub-c.example"]);
    assert!(
        fixture
            .hubs
            .iter()
            .all(|h| h.shared_access_policies[0].key_name == "iothubowner")
    );
    let none = build_fixture(&connection, None, Vec::new(), Vec::new());
    assert_eq!(none.dps.unwrap().id_scope, "0ne00000A0A");
    assert_eq!(none.hubs[0].host_name, "localhost");
}

#[test]
fn read_only_fields_are_dropped() {
    let mut item = json!({
        "registrationId": "e1",
        "etag": "\"x\"",
        "registrationState": {"status": "assigned"},
        "createdDateTimeUtc": "2024-01-01T00:00:00Z",
        "lastUpdatedDateTimeUtc": "2024-01-01T00:00:00Z",
        "capabilities": {"iotEdge": false},
    });
    strip_read_only(&mut item);
    assert_eq!(
        item,
        json!({"registrationId": "e1", "capabilities": {"iotEdge": false}})
    );
}

#[test]
fn keys_missing_from_a_query_are_taken_from_the_attestation_mechanism() {
    let mechanism = json!({"type": "symmetricKey", "symmetricKey": {
        "primaryKey": "cHJpbWFyeS1wcmltYXJ5LWtleQ==", "secondaryKey": "c2Vjb25kYXJ5LWtleS1zZWNvbmQ="}});
    let mut absent = json!({"registrationId": "a", "attestation": {"type": "symmetricKey"}});
    fill_missing_keys(&mut absent, &mechanism);
    assert_eq!(
        absent["attestation"]["symmetricKey"],
        mechanism["symmetricKey"]
    );
    let mut nulls = json!({"attestation": {"type": "symmetricKey", "symmetricKey": null}});
    fill_missing_keys(&mut nulls, &mechanism);
    assert_eq!(
        nulls["attestation"]["symmetricKey"],
        mechanism["symmetricKey"]
    );
    // A key the query did return is kept, even if the mechanism differs.
    let mut partial = json!({"attestation": {"type": "symmetricKey",
        "symmetricKey": {"primaryKey": "a2VwdC1wcmltYXJ5LWtleS0xMg==", "secondaryKey": ""}}});
    fill_missing_keys(&mut partial, &mechanism);
    assert_eq!(
        partial["attestation"]["symmetricKey"],
        json!({"primaryKey": "a2VwdC1wcmltYXJ5LWtleS0xMg==", "secondaryKey": "c2Vjb25kYXJ5LWtleS1zZWNvbmQ="})
    );
    // Without keys anywhere, empty ones are dropped for the loader to derive.
    let mut none =
        json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": ""}}});
    fill_missing_keys(&mut none, &json!({"type": "symmetricKey"}));
    assert_eq!(none["attestation"]["symmetricKey"], json!({}));
}

#[test]
fn an_extra_ca_file_must_hold_a_certificate() {
    assert!(matches!(
        trust(Some("no pem here")),
        Err(ExportError::Trust(_))
    ));
}
