//! fixtures/fixture.schema.json against the fixture loader: the schema accepts every fixture
//! the project ships and rejects malformed ones the loader rejects too, so editors flag the
//! same mistakes `iotemu fixtures validate` does.

use iotemu::internals::fixtures::{FixtureSet, FixtureSource, QUICKSTART_JSON};
use serde_json::{Value, json};

const SCHEMA: &str = include_str!("../../fixtures/fixture.schema.json");
const CONFORMANCE_FIXTURES: &str = include_str!("../../conformance/fixtures.json");
const CONFORMANCE_X509: &str = include_str!("../../conformance/x509.json");

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    jsonschema::meta::validate(&schema).expect("the schema is a valid draft 2020-12 schema");
    jsonschema::draft202012::new(&schema).expect("the schema compiles")
}

/// The schema's complaints about `fixture`, as text.
fn schema_errors(validator: &jsonschema::Validator, fixture: &Value) -> Vec<String> {
    validator
        .iter_errors(fixture)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn load(fixture: &Value) -> Result<FixtureSet, iotemu::internals::fixtures::FixtureError> {
    FixtureSet::load(&[FixtureSource::Inline {
        name: "test.json".into(),
        json: fixture.to_string(),
    }])
}

#[test]
fn the_shipped_fixtures_are_valid() {
    let validator = validator();
    let quickstart: Value = serde_json::from_str(QUICKSTART_JSON).unwrap();
    let conformance: Value = serde_json::from_str(CONFORMANCE_FIXTURES).unwrap();
    // x509.json holds a fixture template: its '@pem:' strings become certificates and its
    // `dps` section is merged into the quickstart's at run time, as the conformance runner does.
    let template: Value = serde_json::from_str(CONFORMANCE_X509).unwrap();
    let mut x509 = template["fixture"].clone();
    let mut dps = quickstart["dps"].clone();
    dps["certificates"] = x509["dps"]["certificates"].clone();
    x509["dps"] = dps;
    for (name, fixture) in [
        ("fixtures/quickstart.json", &quickstart),
        ("conformance/fixtures.json", &conformance),
        ("conformance/x509.json fixture", &x509),
    ] {
        assert!(fixture.is_object(), "{name} is a fixture object");
        let errors = schema_errors(&validator, fixture);
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    for (name, fixture) in [
        ("fixtures/quickstart.json", &quickstart),
        ("conformance/fixtures.json", &conformance),
    ] {
        load(fixture).unwrap_or_else(|e| panic!("{name} loads: {e}"));
    }
}

#[test]
fn a_fixture_using_every_section_is_valid() {
    let fixture = json!({
        "$schema": "./fixture.schema.json",
        "dps": {
            "idScope": "0ne0000ABCD",
            "hostName": "dps.example",
            "sharedAccessPolicies": [{
                "keyName": "provisioningserviceowner",
                "primaryKey": "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=",
                "secondaryKey": null,
                "rights": ["EnrollmentRead", "EnrollmentWrite"]
            }],
            "allocationPolicy": "geolatency",
            "location": "westeurope"
        },
        "hubs": [
            {
                "hostName": "hub-a.example", "allocationWeight": 1000, "applyAllocationPolicy": false, "location": "westeurope",
                "eventHubEndpoint": { "path": "hub-a-events", "partitionCount": 2, "consumerGroups": ["$Default", "analytics"] },
                "routing": {
                    "routes": [
                        { "name": "twin", "source": "TwinChangeEvents", "condition": "true", "endpointNames": ["events"], "isEnabled": true },
                        { "name": "life", "source": "DeviceLifecycleEvents", "endpointNames": ["events"] }
                    ],
                    "fallbackRoute": { "name": "$fallback", "source": "DeviceMessages", "condition": "", "endpointNames": ["events"], "isEnabled": false }
                }
            },
            { "hostName": "127.0.0.2" }
        ],
        "enrollments": [{
            "registrationId": "dev-1",
            "deviceId": "dev-1@site:a",
            "attestation": { "type": "symmetricKey" },
            "allocationPolicy": "static",
            "iotHubs": ["hub-a.example"],
            "initialTwin": { "tags": { "site": "a" }, "properties": { "desired": { "interval": 5 } } },
            "registrationState": "anything: read-only fields are ignored",
            "capabilities": { "iotEdge": false },
            "optionalDeviceInformation": { "kept": true }
        }],
        "enrollmentGroups": [{
            "enrollmentGroupId": "group-1",
            "attestation": { "type": "symmetricKey", "symmetricKey": { "primaryKey": null } },
            "allocationPolicy": "custom",
            "customAllocationDefinition": { "webhookUrl": "http://127.0.0.1:9/alloc", "apiVersion": "2021-10-01" },
            "reprovisionPolicy": { "updateHubAssignment": true, "migrateDeviceData": false },
            "provisioningStatus": "disabled"
        }],
        "faults": [
            { "operation": "dps.register", "idScope": "0ne0000ABCD", "registrationId": "dev-*",
              "action": { "refuse": { "status": 429, "retryAfter": 2 } }, "count": 1 },
            { "operation": "dps.poll", "action": { "refuse": { "status": 503 } } },
            { "operation": "dps.poll", "action": { "refuse": { "status": 503, "retryAfter": 0 } } },
            { "operation": "dps.register", "action": { "refuse": { "status": 500 } } },
            { "operation": "dps.register", "action": { "refuse": { "status": 401 } } },
            { "operation": "hub.connect", "hub": "hub-a.example", "deviceId": "dev-*", "action": { "refuse": { "status": 429, "retryAfter": 1 } } },
            { "operation": "hub.telemetry", "deviceId": "dev-1", "action": { "drop": { "when": "afterAck" } }, "after": 2, "count": 1 },
            { "operation": "hub.twin.get", "action": { "delay": { "ms": 1500 } }, "probability": 0.5 },
            { "operation": "hub.twin.patch", "action": { "stall": {} } },
            { "operation": "hub.method", "deviceId": "dev-*", "action": { "refuse": { "status": 503 } },
              "activeAfterSeconds": 10, "activeForSeconds": 60 },
            { "operation": "hub.service", "path": "/devices/*", "action": { "refuse": { "status": 429, "retryAfter": 1 } } },
            { "operation": "dps.service", "idScope": "0ne0000ABCD", "path": "/enrollmentGroups/*", "action": { "delay": { "ms": 200 } } },
            { "operation": "hub.c2d", "deviceId": "dev-*", "action": { "drop": { "when": "afterAck" } }, "count": 1 },
            { "operation": "dps.poll", "action": { "refuse": { "status": 429 } }, "rate": { "limit": 5, "seconds": 10, "each": true } },
            { "operation": "hub.telemetry", "action": { "delay": { "ms": 100 } }, "rate": { "limit": 6000, "seconds": 60 }, "count": 10 }
        ]
    });
    assert!(schema_errors(&validator(), &fixture).is_empty());
    load(&fixture).expect("the loader accepts it too");
}

#[test]
fn malformed_fixtures_are_rejected_by_schema_and_loader_alike() {
    let validator = validator();
    let symmetric = json!({ "type": "symmetricKey" });
    let cases = [
        ("unknown top-level field", json!({ "enrolments": [] })),
        (
            "dps without hostName",
            json!({ "dps": { "idScope": "0ne00000A0A" } }),
        ),
        (
            "id scope with a dash",
            json!({ "dps": { "idScope": "0ne-1", "hostName": "h" } }),
        ),
        (
            "custom as the instance default",
            json!({ "dps": { "idScope": "0ne1", "hostName": "h", "allocationPolicy": "custom" } }),
        ),
        (
            "a routing query",
            json!({ "hubs": [{ "hostName": "h", "routing": { "routes": [
                { "name": "r", "source": "DeviceMessages", "condition": "$body.t > 1", "endpointNames": ["events"] }
            ] } }] }),
        ),
        (
            "a route to another endpoint",
            json!({ "hubs": [{ "hostName": "h", "routing": { "routes": [
                { "name": "r", "source": "DeviceMessages", "endpointNames": ["storage"] }
            ] } }] }),
        ),
        (
            "an unsupported route source",
            json!({ "hubs": [{ "hostName": "h", "routing": { "routes": [
                { "name": "r", "source": "DigitalTwinChangeEvents", "endpointNames": ["events"] }
            ] } }] }),
        ),
        (
            "one partition",
            json!({ "hubs": [{ "hostName": "h", "eventHubEndpoint": { "partitionCount": 1 } }] }),
        ),
        (
            "a consumer group with a space",
            json!({ "hubs": [{ "hostName": "h", "eventHubEndpoint": { "consumerGroups": ["a b"] } }] }),
        ),
        (
            "hub weight 0",
            json!({ "hubs": [{ "hostName": "h", "allocationWeight": 0 }] }),
        ),
        (
            "unknown hub field",
            json!({ "hubs": [{ "hostName": "h", "weight": 2 }] }),
        ),
        (
            "host name with a slash",
            json!({ "hubs": [{ "hostName": "h/x" }] }),
        ),
        (
            "policy without a primary key",
            json!({ "hubs": [{ "hostName": "h", "sharedAccessPolicies": [{ "keyName": "p" }] }] }),
        ),
        (
            "policy key of 8 bytes",
            json!({ "hubs": [{ "hostName": "h", "sharedAccessPolicies": [{ "keyName": "p", "primaryKey": "AAAAAAAAAAA=" }] }] }),
        ),
        (
            "unknown attestation type",
            json!({ "enrollments": [{ "registrationId": "a", "attestation": { "type": "bogus" } }] }),
        ),
        (
            "enrollment without attestation",
            json!({ "enrollments": [{ "registrationId": "a" }] }),
        ),
        (
            "registration id with a space",
            json!({ "enrollments": [{ "registrationId": "bad id", "attestation": symmetric }] }),
        ),
        (
            "symmetric key that is not base64",
            json!({ "enrollments": [{ "registrationId": "a", "attestation": { "type": "symmetricKey", "symmetricKey": { "primaryKey": "!!" } } }] }),
        ),
        (
            "TPM attestation without an endorsement key",
            json!({ "enrollments": [{ "registrationId": "a", "attestation": { "type": "tpm", "tpm": {} } }] }),
        ),
        (
            "device id with a slash",
            json!({ "enrollments": [{ "registrationId": "a", "deviceId": "a/b", "attestation": symmetric }] }),
        ),
        (
            "x509 without certificates",
            json!({ "enrollments": [{ "registrationId": "a", "attestation": { "type": "x509" } }] }),
        ),
        (
            "static allocation over two hubs",
            json!({ "enrollments": [{ "registrationId": "a", "attestation": symmetric, "allocationPolicy": "static", "iotHubs": ["localhost", "localhost"] }] }),
        ),
        (
            "custom allocation without a webhook",
            json!({ "enrollments": [{ "registrationId": "a", "attestation": symmetric, "allocationPolicy": "custom" }] }),
        ),
        (
            "unknown provisioning status",
            json!({ "enrollments": [{ "registrationId": "a", "attestation": symmetric, "provisioningStatus": "paused" }] }),
        ),
        (
            "group with device certificates",
            json!({ "enrollmentGroups": [{ "enrollmentGroupId": "g", "attestation": { "type": "x509", "x509": { "clientCertificates": { "primary": { "info": { "sha1Thumbprint": "AB" } } } } } }] }),
        ),
        (
            "group without an id",
            json!({ "enrollmentGroups": [{ "attestation": symmetric }] }),
        ),
        (
            "a fault with an unknown operation",
            json!({ "faults": [{ "operation": "dps.connect", "action": { "refuse": { "status": 500 } } }] }),
        ),
        (
            "a 429 fault without retryAfter",
            json!({ "faults": [{ "operation": "dps.register", "action": { "refuse": { "status": 429 } } }] }),
        ),
        (
            "a 500 fault with retryAfter",
            json!({ "faults": [{ "operation": "dps.register", "action": { "refuse": { "status": 500, "retryAfter": 1 } } }] }),
        ),
        (
            "a fault refusing with 404",
            json!({ "faults": [{ "operation": "dps.register", "action": { "refuse": { "status": 404 } } }] }),
        ),
        (
            "a fault with count 0",
            json!({ "faults": [{ "operation": "dps.poll", "action": { "refuse": { "status": 500 } }, "count": 0 }] }),
        ),
        (
            "a fault retrying after more than an hour",
            json!({ "faults": [{ "operation": "dps.poll", "action": { "refuse": { "status": 503, "retryAfter": 3601 } } }] }),
        ),
        (
            "a fault pattern with a space",
            json!({ "faults": [{ "operation": "dps.poll", "registrationId": "a b", "action": { "refuse": { "status": 500 } } }] }),
        ),
        (
            "a fault with an unknown field",
            json!({ "faults": [{ "operation": "dps.poll", "action": { "refuse": { "status": 500 } }, "delay": 1 }] }),
        ),
        (
            "a rate fault's 429 with retryAfter",
            json!({ "faults": [{ "operation": "dps.poll", "action": { "refuse": { "status": 429, "retryAfter": 1 } }, "rate": { "limit": 5, "seconds": 10 } }] }),
        ),
        (
            "a rate fault with after",
            json!({ "faults": [{ "operation": "dps.poll", "action": { "refuse": { "status": 429 } }, "rate": { "limit": 5, "seconds": 10 }, "after": 1 }] }),
        ),
        (
            "a rate of 0 per window",
            json!({ "faults": [{ "operation": "dps.poll", "action": { "refuse": { "status": 429 } }, "rate": { "limit": 0, "seconds": 10 } }] }),
        ),
        (
            "a rate without its window",
            json!({ "faults": [{ "operation": "dps.poll", "action": { "refuse": { "status": 429 } }, "rate": { "limit": 5 } }] }),
        ),
        (
            "a fault without an action",
            json!({ "faults": [{ "operation": "dps.poll" }] }),
        ),
        (
            "a DPS fault that delays",
            json!({ "faults": [{ "operation": "dps.register", "action": { "delay": { "ms": 5 } } }] }),
        ),
        (
            "a DPS fault addressed by deviceId",
            json!({ "faults": [{ "operation": "dps.register", "deviceId": "d", "action": { "refuse": { "status": 500 } } }] }),
        ),
        (
            "a hub fault addressed by registrationId",
            json!({ "faults": [{ "operation": "hub.telemetry", "registrationId": "d", "action": { "stall": {} } }] }),
        ),
        (
            "a service fault addressed by deviceId",
            json!({ "faults": [{ "operation": "hub.service", "deviceId": "d", "action": { "stall": {} } }] }),
        ),
        (
            "a C2D fault that stalls",
            json!({ "faults": [{ "operation": "hub.c2d", "action": { "stall": {} } }] }),
        ),
        (
            "a DPS service fault addressed by registrationId",
            json!({ "faults": [{ "operation": "dps.service", "registrationId": "r", "action": { "stall": {} } }] }),
        ),
        (
            "a DPS service fault addressed to a hub",
            json!({ "faults": [{ "operation": "dps.service", "hub": "h", "action": { "stall": {} } }] }),
        ),
        (
            "a device fault addressed by path",
            json!({ "faults": [{ "operation": "hub.telemetry", "path": "/devices/*", "action": { "stall": {} } }] }),
        ),
        (
            "a fault window of no length",
            json!({ "faults": [{ "operation": "hub.telemetry", "action": { "stall": {} }, "activeForSeconds": 0 }] }),
        ),
        (
            "a fault with two actions",
            json!({ "faults": [{ "operation": "hub.telemetry", "action": { "stall": {}, "drop": { "when": "afterAck" } } }] }),
        ),
        (
            "a fault dropping at an unknown moment",
            json!({ "faults": [{ "operation": "hub.telemetry", "action": { "drop": { "when": "later" } } }] }),
        ),
        (
            "a fault with probability 0",
            json!({ "faults": [{ "operation": "hub.connect", "action": { "stall": {} }, "probability": 0 }] }),
        ),
        (
            "a fault delaying 0 ms",
            json!({ "faults": [{ "operation": "hub.twin.get", "action": { "delay": { "ms": 0 } } }] }),
        ),
    ];
    for (what, fixture) in cases {
        assert!(
            !schema_errors(&validator, &fixture).is_empty(),
            "the schema accepts: {what}"
        );
        assert!(load(&fixture).is_err(), "the loader accepts: {what}");
    }
}

#[test]
fn an_exported_fixture_is_valid() {
    // What `iotemu fixtures export` writes: the DPS service API's JSON, read-only fields gone.
    let fixture = json!({
        "dps": { "idScope": "0ne00000A0A", "hostName": "my-dps.azure-devices-provisioning.net" },
        "hubs": [{ "hostName": "my-hub.azure-devices.net", "allocationWeight": 1, "applyAllocationPolicy": true }],
        "enrollments": [{
            "registrationId": "real-1",
            "attestation": { "type": "x509", "x509": { "clientCertificates": { "primary": { "info": {
                "subjectName": "CN=real-1", "sha1Thumbprint": "0123456789ABCDEF0123456789ABCDEF01234567",
                "sha256Thumbprint": "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
            } } } } },
            "iotHubHostName": "my-hub.azure-devices.net",
            "iotHubs": ["my-hub.azure-devices.net"],
            "provisioningStatus": "enabled",
            "capabilities": { "iotEdge": false }
        }]
    });
    assert!(schema_errors(&validator(), &fixture).is_empty());
    load(&fixture).expect("loads");
}
