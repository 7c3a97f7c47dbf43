//! Service API rules, registration records, queries with paging, bulk operations and
//! enrollment groups.

use crate::pending::WaitStored;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use super::*;
use crate::auth::keys::SymmetricKey;
use crate::dps::model::{ProvisioningStatus, RegistrationStatus};

use super::tests::{
    GROUP_KEY, KEY, code, dps, enrollment, group, login, login_with, provision, symmetric,
};

#[test]
fn registration_states_get_delete_and_fresh_reregistration() {
    let dps = dps();
    dps.put_enrollment("dev-1", enrollment("dev-1"), None)
        .wait_stored()
        .unwrap();
    assert_eq!(
        code(dps.get_registration_state("dev-1")),
        REGISTRATION_NOT_FOUND
    );
    assert_eq!(
        code(dps.delete_registration_state("dev-1", None).wait_stored()),
        REGISTRATION_NOT_FOUND
    );
    let who = login(&dps, "dev-1", KEY);
    let first = provision(&dps, &who);
    let stored = dps.get_registration_state("DEV-1").unwrap();
    assert_eq!(stored.created_date_time_utc, first.created_date_time_utc);
    assert_eq!(stored.status, RegistrationStatus::Assigned);
    assert_eq!(
        stored.symmetric_key, None,
        "service view has no symmetricKey"
    );

    // A re-registration keeps the record's creation time...
    std::thread::sleep(Duration::from_millis(2));
    let again = provision(&dps, &who);
    assert_eq!(again.created_date_time_utc, first.created_date_time_utc);

    // ...until the record is deleted (If-Match compares with the record's etag).
    let e = dps
        .delete_registration_state("dev-1", Some("\"stale\""))
        .wait_stored();
    assert_eq!(code(e), PRECONDITION_FAILED);
    dps.delete_registration_state("dev-1", again.etag.as_deref())
        .wait_stored()
        .unwrap();
    assert_eq!(
        code(dps.get_registration_state("dev-1")),
        REGISTRATION_NOT_FOUND
    );
    assert_eq!(
        dps.get_enrollment("dev-1").unwrap().registration_state,
        None
    );
    std::thread::sleep(Duration::from_millis(2));
    let fresh = provision(&dps, &who);
    assert_ne!(fresh.created_date_time_utc, first.created_date_time_utc);
    assert_eq!(fresh.substatus, first.substatus);
    dps.delete_registration_state("dev-1", Some("*"))
        .wait_stored()
        .unwrap();
}

#[test]
fn query_registration_states_lists_a_groups_devices() {
    let dps = dps();
    assert_eq!(
        code(dps.query_registration_states("group-1", None, None)),
        ENROLLMENT_NOT_FOUND
    );
    dps.put_enrollment_group("group-1", group("group-1"), None)
        .wait_stored()
        .unwrap();
    dps.put_enrollment("solo", enrollment("solo"), None)
        .wait_stored()
        .unwrap();
    let group_key = SymmetricKey::from_base64(GROUP_KEY).unwrap();
    for member in ["member-c", "Member-A", "member-b"] {
        let who = login_with(&dps, member, &group_key.derive_device_key(member));
        assert_eq!(provision(&dps, &who).status, RegistrationStatus::Assigned);
    }
    provision(&dps, &login(&dps, "solo", KEY));

    let all = dps
        .query_registration_states("GROUP-1", None, None)
        .unwrap();
    let ids: Vec<_> = all
        .items
        .iter()
        .map(|s| s.registration_id.as_str())
        .collect();
    assert_eq!(ids, ["Member-A", "member-b", "member-c"]);
    assert_eq!(all.continuation, None);
    assert!(all.items.iter().all(|s| s.symmetric_key.is_none()));

    let first = dps
        .query_registration_states("group-1", Some(2), None)
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = dps
        .query_registration_states("group-1", Some(2), first.continuation.as_deref())
        .unwrap();
    assert_eq!(rest.items[0].registration_id, "member-c");
    assert_eq!(rest.continuation, None);
    assert_eq!(
        code(dps.query_registration_states("group-1", None, Some("%%%"))),
        BAD_REQUEST
    );
}

#[test]
fn queries_page_in_id_order_across_three_pages() {
    let dps = dps();
    for id in ["e", "B", "g", "a", "D", "c", "f"] {
        dps.put_enrollment(id, enrollment(id), None)
            .wait_stored()
            .unwrap();
    }
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = dps
            .query_enrollments("*", Some(3), token.as_deref())
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        ids.extend(page.items.into_iter().map(|e| e.registration_id));
        match page.continuation {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, ["a", "B", "c", "D", "e", "f", "g"]);

    // Exactly one page worth: no continuation.
    let whole = dps.query_enrollments("SELECT *", Some(7), None).unwrap();
    assert_eq!((whole.items.len(), whole.continuation), (7, None));
    let default = dps.query_enrollments("*", None, None).unwrap();
    assert_eq!(default.items.len(), 7);

    for bad in ["not base64 !", "Zm9vYmFy", ""] {
        let result = dps.query_enrollments("*", Some(3), Some(bad));
        if bad.is_empty() {
            assert!(result.is_ok(), "a blank token means the first page");
        } else {
            assert_eq!(code(result), BAD_REQUEST, "token {bad:?}");
        }
    }
}

#[test]
fn only_the_select_star_subset_is_supported() {
    let dps = dps();
    dps.put_enrollment("dev-1", enrollment("dev-1"), None)
        .wait_stored()
        .unwrap();
    dps.put_enrollment_group("g-1", group("g-1"), None)
        .wait_stored()
        .unwrap();
    for query in [
        "*",
        " select  * ",
        "SELECT * FROM enrollments",
        "select * from ENROLLMENTS",
    ] {
        assert_eq!(
            dps.query_enrollments(query, None, None)
                .unwrap()
                .items
                .len(),
            1,
            "{query}"
        );
    }
    for query in [
        "*",
        "SELECT *",
        "SELECT * FROM enrollmentGroups",
        "select * from enrollmentgroups",
    ] {
        assert_eq!(
            dps.query_enrollment_groups(query, None, None)
                .unwrap()
                .items
                .len(),
            1,
            "{query}"
        );
    }
    for query in [
        "",
        "SELECT * FROM enrollmentGroups",
        "SELECT * FROM enrollments WHERE registrationId = 'dev-1'",
        "SELECT registrationId FROM enrollments",
    ] {
        let e = dps.query_enrollments(query, None, None).unwrap_err();
        assert_eq!(e.code(), BAD_REQUEST, "{query}");
        assert!(e.message().contains("SELECT * FROM enrollments"));
    }
    let e = dps
        .query_enrollment_groups("SELECT * FROM enrollments", None, None)
        .unwrap_err();
    assert!(e.message().contains("SELECT * FROM enrollmentGroups"));
}

#[test]
fn query_results_carry_registration_states() {
    let dps = dps();
    dps.put_enrollment("dev-1", enrollment("dev-1"), None)
        .wait_stored()
        .unwrap();
    provision(&dps, &login(&dps, "dev-1", KEY));
    let page = dps.query_enrollments("*", None, None).unwrap();
    assert_eq!(
        page.items[0].registration_state.as_ref().map(|s| s.status),
        Some(RegistrationStatus::Assigned)
    );
}

#[test]
fn bulk_takes_at_most_ten_items() {
    let dps = dps();
    let eleven: Vec<_> = (0..11).map(|i| enrollment(&format!("dev-{i}"))).collect();
    let e = dps
        .bulk_enrollments(BulkMode::Create, eleven)
        .wait_stored()
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, BAD_REQUEST));
    assert!(dps.enrollments().is_empty(), "nothing applied");
    let groups: Vec<_> = (0..11).map(|i| group(&format!("g-{i}"))).collect();
    assert_eq!(
        code(
            dps.bulk_enrollment_groups(BulkMode::Delete, groups)
                .wait_stored()
        ),
        BAD_REQUEST
    );
    let ten: Vec<_> = (0..10).map(|i| enrollment(&format!("dev-{i}"))).collect();
    assert!(
        dps.bulk_enrollments(BulkMode::Create, ten)
            .wait_stored()
            .unwrap()
            .is_successful
    );
    assert_eq!(dps.enrollments().len(), 10);
}

#[test]
fn bulk_create_reports_per_item_errors() {
    let dps = dps();
    let existing = dps
        .put_enrollment("old", enrollment("old"), None)
        .wait_stored()
        .unwrap();
    let mut invalid = enrollment("bad-key");
    invalid.attestation = symmetric(Some("???"));

    let created = dps
        .bulk_enrollments(
            BulkMode::Create,
            vec![enrollment("new"), enrollment("OLD"), invalid],
        )
        .wait_stored()
        .unwrap();
    assert!(!created.is_successful);
    let codes: Vec<_> = created
        .errors
        .iter()
        .map(|e| (e.registration_id.as_deref().unwrap(), e.error_code))
        .collect();
    assert_eq!(codes, [("OLD", CONFLICT), ("bad-key", BAD_REQUEST)]);
    assert!(dps.get_enrollment("new").is_ok(), "good items are applied");
    assert_eq!(
        dps.get_enrollment("old").unwrap().etag,
        existing.etag,
        "the conflicting item changed nothing"
    );
    assert_eq!(
        serde_json::to_value(&created).unwrap(),
        json!({
            "isSuccessful": false,
            "errors": [
                {"registrationId": "OLD", "errorCode": 409001,
                 "errorStatus": created.errors[0].error_status},
                {"registrationId": "bad-key", "errorCode": 400004,
                 "errorStatus": created.errors[1].error_status},
            ],
        })
    );
}

/// A DPS with enrollment "old" (returned) and "new", as after a bulk create.
fn dps_with_old_and_new() -> (Dps, IndividualEnrollment) {
    let dps = dps();
    let old = dps
        .put_enrollment("old", enrollment("old"), None)
        .wait_stored()
        .unwrap();
    dps.put_enrollment("new", enrollment("new"), None)
        .wait_stored()
        .unwrap();
    (dps, old)
}

#[test]
fn bulk_update_reports_unknown_enrollments() {
    let (dps, _) = dps_with_old_and_new();
    let updated = dps
        .bulk_enrollments(
            BulkMode::Update,
            vec![enrollment("old"), enrollment("ghost")],
        )
        .wait_stored()
        .unwrap();
    assert_eq!(updated.errors.len(), 1);
    assert_eq!(updated.errors[0].error_code, ENROLLMENT_NOT_FOUND);
    assert!(dps.individual_enrollment("ghost").is_none());
}

#[test]
fn bulk_update_if_match_etag_refuses_stale_and_untagged_items() {
    let (dps, existing) = dps_with_old_and_new();
    dps.put_enrollment("old", enrollment("old"), None)
        .wait_stored()
        .unwrap();
    let current = dps.get_enrollment("old").unwrap();
    let mut stale = current.clone();
    stale.etag = existing.etag.clone();
    let mut untagged = dps.get_enrollment("new").unwrap();
    untagged.etag = None;
    let checked = dps
        .bulk_enrollments(
            BulkMode::UpdateIfMatchETag,
            vec![stale, untagged, current.clone(), enrollment("ghost")],
        )
        .wait_stored()
        .unwrap();
    let codes: Vec<_> = checked.errors.iter().map(|e| e.error_code).collect();
    assert_eq!(
        codes,
        [
            PRECONDITION_FAILED,
            PRECONDITION_FAILED,
            ENROLLMENT_NOT_FOUND
        ]
    );
    assert_ne!(dps.get_enrollment("old").unwrap().etag, current.etag);
}

#[test]
fn bulk_delete_reports_unknown_enrollments() {
    let (dps, _) = dps_with_old_and_new();
    let deleted = dps
        .bulk_enrollments(
            BulkMode::Delete,
            vec![enrollment("new"), enrollment("ghost")],
        )
        .wait_stored()
        .unwrap();
    assert_eq!(deleted.errors.len(), 1);
    assert_eq!(deleted.errors[0].registration_id.as_deref(), Some("ghost"));
    assert_eq!(deleted.errors[0].error_code, ENROLLMENT_NOT_FOUND);
    assert!(dps.individual_enrollment("new").is_none());
}

#[test]
fn an_empty_bulk_request_succeeds() {
    let dps = dps();
    let empty = dps
        .bulk_enrollments(BulkMode::Create, Vec::new())
        .wait_stored()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"isSuccessful": true, "errors": []})
    );
}

#[test]
fn bulk_modes_have_the_service_names() {
    for (text, mode) in [
        ("create", BulkMode::Create),
        ("update", BulkMode::Update),
        ("updateIfMatchETag", BulkMode::UpdateIfMatchETag),
        ("delete", BulkMode::Delete),
    ] {
        assert_eq!(
            serde_json::from_value::<BulkMode>(json!(text)).unwrap(),
            mode
        );
    }
    assert!(serde_json::from_value::<BulkMode>(json!("upsert")).is_err());
}

#[test]
fn groups_get_put_delete_and_errors() {
    let dps = dps();
    assert_eq!(code(dps.get_enrollment_group("g")), ENROLLMENT_NOT_FOUND);
    assert_eq!(
        code(dps.enrollment_group_attestation("g")),
        ENROLLMENT_NOT_FOUND
    );
    assert_eq!(
        code(dps.delete_enrollment_group_checked("g", None).wait_stored()),
        ENROLLMENT_NOT_FOUND
    );
    assert_eq!(
        code(
            dps.put_enrollment_group("other", group("g"), None)
                .wait_stored()
        ),
        BAD_REQUEST
    );
    assert_eq!(
        code(
            dps.put_enrollment_group("g", group("g"), Some("\"x\""))
                .wait_stored()
        ),
        PRECONDITION_FAILED
    );

    let mut body = group("g");
    body.attestation = symmetric(None);
    let created = dps
        .put_enrollment_group("G", body, None)
        .wait_stored()
        .unwrap();
    let etag = created.etag.clone().unwrap();
    assert!(etag.starts_with('"'));
    let keys = dps
        .enrollment_group_attestation("g")
        .unwrap()
        .symmetric_key
        .unwrap();
    assert_eq!(BASE64.decode(keys.primary_key.unwrap()).unwrap().len(), 64);
    assert_eq!(dps.get_enrollment_group("g").unwrap(), created);

    std::thread::sleep(Duration::from_millis(2));
    let wrong = dps
        .put_enrollment_group("g", group("g"), Some("\"x\""))
        .wait_stored();
    assert_eq!(code(wrong), PRECONDITION_FAILED);
    let updated = dps
        .put_enrollment_group("g", group("g"), Some(&etag))
        .wait_stored()
        .unwrap();
    assert_eq!(updated.created_date_time_utc, created.created_date_time_utc);
    assert_ne!(
        updated.last_updated_date_time_utc,
        created.last_updated_date_time_utc
    );
    assert_ne!(updated.etag, created.etag);
    assert!(
        dps.put_enrollment_group("g", group("g"), Some("*"))
            .wait_stored()
            .is_ok()
    );

    assert_eq!(
        code(
            dps.delete_enrollment_group_checked("g", Some(&etag))
                .wait_stored()
        ),
        PRECONDITION_FAILED
    );
    let current = dps.get_enrollment_group("g").unwrap().etag.unwrap();
    dps.delete_enrollment_group_checked("g", Some(&current))
        .wait_stored()
        .unwrap();
    assert_eq!(code(dps.get_enrollment_group("g")), ENROLLMENT_NOT_FOUND);
}

#[test]
fn group_changes_apply_to_the_next_registration() {
    let dps = dps();
    let mut g = group("group-1");
    g.iot_hub_host_name = Some("hub-b".into());
    dps.put_enrollment_group("group-1", g, None)
        .wait_stored()
        .unwrap();
    let member_key = SymmetricKey::from_base64(GROUP_KEY)
        .unwrap()
        .derive_device_key("member-1");
    let who = login_with(&dps, "member-1", &member_key);
    let state = provision(&dps, &who);
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-b"));

    let mut off = group("group-1");
    off.provisioning_status = ProvisioningStatus::Disabled;
    dps.put_enrollment_group("group-1", off, None)
        .wait_stored()
        .unwrap();
    assert_eq!(provision(&dps, &who).status, RegistrationStatus::Disabled);
}

#[test]
fn group_queries_and_bulk() {
    let dps = dps();
    for id in ["g-3", "G-1", "g-2", "g-4"] {
        dps.put_enrollment_group(id, group(id), None)
            .wait_stored()
            .unwrap();
    }
    let first = dps.query_enrollment_groups("*", Some(2), None).unwrap();
    let ids: Vec<_> = first
        .items
        .iter()
        .map(|g| g.enrollment_group_id.as_str())
        .collect();
    assert_eq!(ids, ["G-1", "g-2"]);
    let second = dps
        .query_enrollment_groups("*", Some(2), first.continuation.as_deref())
        .unwrap();
    let ids: Vec<_> = second
        .items
        .iter()
        .map(|g| g.enrollment_group_id.as_str())
        .collect();
    assert_eq!(ids, ["g-3", "g-4"]);
    assert_eq!(second.continuation, None);
    assert_eq!(
        code(dps.query_enrollment_groups("*", None, Some("!!"))),
        BAD_REQUEST
    );
    assert_eq!(
        code(dps.query_enrollment_groups("SELECT 1", None, None)),
        BAD_REQUEST
    );

    let result = dps
        .bulk_enrollment_groups(BulkMode::Create, vec![group("g-5"), group("g-1")])
        .wait_stored()
        .unwrap();
    assert!(!result.is_successful);
    assert_eq!(
        serde_json::to_value(&result).unwrap(),
        json!({
            "isSuccessful": false,
            "errors": [{"enrollmentGroupId": "g-1", "errorCode": 409001,
                        "errorStatus": result.errors[0].error_status}],
        })
    );
    let stale = dps.get_enrollment_group("g-5").unwrap();
    dps.put_enrollment_group("g-5", group("g-5"), None)
        .wait_stored()
        .unwrap();
    let result = dps
        .bulk_enrollment_groups(
            BulkMode::UpdateIfMatchETag,
            vec![stale, dps.get_enrollment_group("g-2").unwrap()],
        )
        .wait_stored()
        .unwrap();
    let codes: Vec<_> = result.errors.iter().map(|e| e.error_code).collect();
    assert_eq!(codes, [PRECONDITION_FAILED]);
    let result = dps
        .bulk_enrollment_groups(BulkMode::Update, vec![group("g-9")])
        .wait_stored()
        .unwrap();
    assert_eq!(result.errors[0].error_code, ENROLLMENT_NOT_FOUND);
    let result = dps
        .bulk_enrollment_groups(BulkMode::Delete, vec![group("g-1"), group("g-9")])
        .wait_stored()
        .unwrap();
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].enrollment_group_id.as_deref(), Some("g-9"));
    assert!(dps.enrollment_group("g-1").is_none());
}
