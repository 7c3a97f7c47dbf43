//! The domain enrollments against their JSON models: what parses, what is refused, and that
//! rendering and the durable form give back exactly what was written.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::*;

const EK: &[u8] = include_bytes!("../../auth/tpm/testdata/ek.pub");
const SRK: &[u8] = include_bytes!("../../auth/tpm/testdata/srk.pub");
const KEY: &str =
    "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";

fn individual(value: Value) -> Result<Individual, Invalid> {
    Individual::try_from(&serde_json::from_value::<IndividualEnrollment>(value).unwrap())
}

fn group(value: Value) -> Result<Group, Invalid> {
    Group::try_from(&serde_json::from_value::<EnrollmentGroup>(value).unwrap())
}

#[test]
fn rendering_and_the_durable_form_give_back_what_was_written() {
    let cases = [
        json!({"registrationId": "tpm-1", "deviceId": "d-1",
            "attestation": {"type": "tpm", "tpm": {"endorsementKey": BASE64.encode(EK),
                "storageRootKey": BASE64.encode(SRK)}},
            "iotHubs": ["hub-a"], "allocationPolicy": "static",
            "initialTwin": {"tags": {"a": 1}}, "provisioningStatus": "disabled",
            "reprovisionPolicy": {"updateHubAssignment": false, "migrateDeviceData": true},
            "capabilities": {"iotEdge": true}, "etag": "\"e\""}),
        json!({"registrationId": "symm-1",
            "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY, "secondaryKey": KEY}},
            "provisioningStatus": "enabled", "createdDateTimeUtc": "2020-01-01T00:00:00Z"}),
    ];
    for value in cases {
        let parsed = individual(value.clone()).unwrap();
        assert_eq!(serde_json::to_value(parsed.to_wire()).unwrap(), value);
        let stored = serde_json::to_value(&parsed).unwrap();
        assert_eq!(stored, value, "stored as the JSON model");
        let restored: Individual = serde_json::from_value(stored).unwrap();
        assert_eq!(restored, parsed);
    }
}

#[test]
fn the_core_is_the_same_for_both_kinds() {
    let attestation =
        json!({"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY, "secondaryKey": KEY}});
    let shared = json!({"attestation": attestation, "iotHubHostName": "hub-a",
        "provisioningStatus": "disabled", "capabilities": {"iotEdge": false}});
    let mut one = shared.clone();
    one["registrationId"] = json!("dev-1");
    let mut many = shared;
    many["enrollmentGroupId"] = json!("group-1");
    let (one, many) = (individual(one).unwrap(), group(many).unwrap());
    assert_eq!(one.core, many.core);
    assert!(!one.core.enabled());
    assert_eq!(one.core.listed_hubs(), ["hub-a"]);
    assert_eq!(one.device_id(), "dev-1");
}

#[test]
fn what_each_kind_refuses() {
    let tpm = json!({"type": "tpm", "tpm": {"endorsementKey": BASE64.encode(EK)}});
    let refused = group(json!({"enrollmentGroupId": "g", "attestation": tpm})).unwrap_err();
    assert_eq!(refused.path, "attestation.type");
    assert_eq!(refused.reason, GROUP_TPM_REFUSED);
    let upper = individual(json!({"registrationId": "TPM-1", "attestation": tpm})).unwrap_err();
    assert_eq!(upper.path, "registrationId");
    let device_certs = group(
        json!({"enrollmentGroupId": "g", "attestation": {"type": "x509",
        "x509": {"clientCertificates": {"primary": {"info": {"sha1Thumbprint": "AB"}}}}}}),
    )
    .unwrap_err();
    assert_eq!(device_certs.path, "attestation.x509.clientCertificates");
    let no_hub = individual(json!({"registrationId": "a", "allocationPolicy": "static",
        "attestation": {"type": "symmetricKey"}}))
    .unwrap_err();
    assert_eq!(no_hub.path, "iotHubs");
}

/// The nesting check looks only at the free-form values, each from its depth in the model; it
/// must decide exactly as checking the whole rendered model does.
#[test]
fn free_form_nesting_is_decided_as_on_the_whole_model() {
    let nested = |levels: usize| (0..levels).fold(json!(1), |v, _| json!([v]));
    let whole_model_ok =
        |value: &Value| validate::nesting_within(value, validate::MAX_FREE_FORM_DEPTH);
    let symmetric =
        json!({"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY, "secondaryKey": KEY}});
    for levels in 26..36 {
        let deep = nested(levels);
        let x509 = json!({"type": "x509", "x509": {"signingCertificates": {
            "primary": {"info": {"subjectName": deep.clone()}}}}});
        let cases = [
            json!({"registrationId": "r", "attestation": symmetric, "unknownField": deep.clone()}),
            json!({"registrationId": "r", "attestation": symmetric,
                "registrationState": {"registrationId": "r", "status": "assigned", "payload": deep.clone()}}),
            json!({"enrollmentGroupId": "g", "attestation": x509}),
            json!({"enrollmentGroupId": "g", "attestation": symmetric, "other": {"k": deep.clone()}}),
        ];
        for case in cases {
            let expected = whole_model_ok(&case);
            let nesting_refused =
                |r: Result<(), Invalid>| r.is_err_and(|e| e.to_string().contains("nested deeper"));
            let refused = if case.get("registrationId").is_some() {
                nesting_refused(individual(case.clone()).map(drop))
            } else {
                nesting_refused(group(case.clone()).map(drop))
            };
            assert_eq!(!refused, expected, "{levels} levels: {case}");
        }
    }
}
