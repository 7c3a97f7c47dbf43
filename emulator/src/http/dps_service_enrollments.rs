//! DPS service API, individual enrollments and enrollment groups (protocol.md §7.2–§7.4).
//! Both collections have the same routes, so each operation is written once over
//! [`Collection`]:
//!
//! | route | body in | body out |
//! |---|---|---|
//! | `GET /{enrollments,enrollmentGroups}/{id}` | – | `IndividualEnrollment` / `EnrollmentGroup` |
//! | `PUT /…/{id}` (`If-Match`) | the entity | the stored entity (new etag, timestamps, keys) |
//! | `DELETE /…/{id}` (`If-Match`) | – | 204 |
//! | `POST /…/{id}/attestationmechanism` | – | `AttestationMechanism`, keys included |
//! | `POST /…/query` (`x-ms-max-item-count`, `x-ms-continuation`) | `QuerySpecification` | JSON array, `x-ms-item-type`, `x-ms-continuation` |
//! | `POST /…` | `BulkEnrollmentOperation` / `BulkEnrollmentGroupOperation` | `BulkEnrollmentOperationResult` |

use serde::{Deserialize, Deserializer};

use super::dps_service::{body, page_reply, paging, stored};
use super::reply::{self, Reply};
use super::request::Request;
use crate::dps::Dps;
use crate::dps::error::DpsError;
use crate::dps::model::{EnrollmentGroup, IndividualEnrollment};
use crate::dps::service::BulkMode;

/// Which of the two enrollment collections a route addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Collection {
    Enrollments,
    Groups,
}

/// An operation on one collection; ids borrowed from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation<'p> {
    Get(Collection, &'p str),
    Put(Collection, &'p str),
    Delete(Collection, &'p str),
    Attestation(Collection, &'p str),
    Query(Collection),
    Bulk(Collection),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkEnrollmentsBody {
    enrollments: Vec<IndividualEnrollment>,
    #[serde(deserialize_with = "bulk_mode")]
    mode: BulkMode,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkGroupsBody {
    enrollment_groups: Vec<EnrollmentGroup>,
    #[serde(deserialize_with = "bulk_mode")]
    mode: BulkMode,
}

/// The bulk modes by their service.json names.
const BULK_MODES: [(&str, BulkMode); 4] = [
    ("create", BulkMode::Create),
    ("update", BulkMode::Update),
    ("updateIfMatchETag", BulkMode::UpdateIfMatchETag),
    ("delete", BulkMode::Delete),
];

/// The names an unknown mode's error lists.
const BULK_MODE_NAMES: [&str; 4] = ["create", "update", "updateIfMatchETag", "delete"];

/// `mode`, its name matched without regard to case: the Node service SDK
/// (azure-iot-provisioning-service) types the mode as `updateIfMatchEtag`, and DPS is a .NET
/// service whose JSON enum reading ignores case (docs/differences.md).
fn bulk_mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BulkMode, D::Error> {
    let name = String::deserialize(deserializer)?;
    BULK_MODES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(&name))
        .map(|&(_, mode)| mode)
        .ok_or_else(|| serde::de::Error::unknown_variant(&name, &BULK_MODE_NAMES))
}

#[derive(Deserialize)]
struct QuerySpecification {
    query: String,
}

/// Applies an admitted operation; writes answer only once durable.
pub(super) async fn apply(
    dps: &Dps,
    req: &Request<'_>,
    operation: Operation<'_>,
) -> Result<Reply, DpsError> {
    use Collection::{Enrollments, Groups};
    match operation {
        Operation::Get(Enrollments, id) => ok(&dps.get_enrollment(id)?),
        Operation::Get(Groups, id) => ok(&dps.get_enrollment_group(id)?),
        Operation::Put(Enrollments, id) => {
            let enrollment: IndividualEnrollment = body(req)?;
            ok(&stored(dps.put_enrollment(id, enrollment, req.if_match())).await?)
        }
        Operation::Put(Groups, id) => {
            let group: EnrollmentGroup = body(req)?;
            ok(&stored(dps.put_enrollment_group(id, group, req.if_match())).await?)
        }
        Operation::Delete(collection, id) => {
            let deleted = match collection {
                Enrollments => dps.delete_enrollment_checked(id, req.if_match()),
                Groups => dps.delete_enrollment_group_checked(id, req.if_match()),
            };
            stored(deleted).await.map(|()| reply::empty(204))
        }
        Operation::Attestation(Enrollments, id) => ok(&dps.enrollment_attestation(id)?),
        Operation::Attestation(Groups, id) => ok(&dps.enrollment_group_attestation(id)?),
        Operation::Query(collection) => {
            let spec: QuerySpecification = body(req)?;
            let (max, continuation) = paging(req);
            let continuation = continuation.as_deref();
            Ok(match collection {
                Enrollments => page_reply(
                    dps.query_enrollments(&spec.query, max, continuation)?,
                    "Enrollment",
                ),
                Groups => page_reply(
                    dps.query_enrollment_groups(&spec.query, max, continuation)?,
                    "EnrollmentGroup",
                ),
            })
        }
        Operation::Bulk(Enrollments) => {
            let bulk: BulkEnrollmentsBody = body(req)?;
            ok(&stored(dps.bulk_enrollments(bulk.mode, bulk.enrollments)).await?)
        }
        Operation::Bulk(Groups) => {
            let bulk: BulkGroupsBody = body(req)?;
            ok(&stored(dps.bulk_enrollment_groups(bulk.mode, bulk.enrollment_groups)).await?)
        }
    }
}

/// A `200` with `value` as its JSON body.
fn ok<T: serde::Serialize>(value: &T) -> Result<Reply, DpsError> {
    Ok(reply::json(200, value))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::{HeaderMap, Method};
    use serde_json::{Value, json};

    use super::*;
    use crate::dps::DpsTiming;
    use crate::hub::{Hub, Hubs};

    fn dps() -> Dps {
        let hubs = Arc::new(Hubs::new(vec![Hub::new("hub-a", vec![], 10)]));
        Dps::new(
            "0ne00000A0A",
            "localhost",
            vec![],
            hubs,
            DpsTiming::default(),
        )
    }

    fn request(body: Value, headers: &[(&'static str, &str)]) -> Request<'static> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let Ok(value) = value.parse() {
                map.insert(*name, value);
            }
        }
        Request {
            method: Method::POST,
            segments: Vec::new(),
            query: String::new(),
            headers: map,
            body: Bytes::from(body.to_string()),
            certificates: &[],
        }
    }

    async fn answer(reply: Reply) -> (u16, Value) {
        let status = reply.status().as_u16();
        let bytes = reply.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn put_get_attestation_and_delete_an_enrollment_and_a_group() {
        let dps = dps();
        for (collection, id, id_field) in [
            (Collection::Enrollments, "dev-1", "registrationId"),
            (Collection::Groups, "group-1", "enrollmentGroupId"),
        ] {
            let entity = json!({id_field: id, "attestation": {"type": "symmetricKey"}});
            let put = apply(&dps, &request(entity, &[]), Operation::Put(collection, id)).await;
            let (status, created) = answer(put.unwrap()).await;
            assert_eq!(status, 200);
            assert!(created["etag"].is_string());

            let plain = request(json!(null), &[]);
            let get = apply(&dps, &plain, Operation::Get(collection, id)).await;
            assert_eq!(answer(get.unwrap()).await, (200, created.clone()));

            let keys = apply(&dps, &plain, Operation::Attestation(collection, id)).await;
            let (_, attestation) = answer(keys.unwrap()).await;
            assert_eq!(attestation, created["attestation"]);

            let stale = request(json!(null), &[("if-match", "\"stale\"")]);
            let refused = apply(&dps, &stale, Operation::Delete(collection, id)).await;
            assert_eq!(refused.unwrap_err().code(), 412001);
            let delete = apply(&dps, &plain, Operation::Delete(collection, id)).await;
            assert_eq!(delete.unwrap().status(), 204);
            let gone = apply(&dps, &plain, Operation::Get(collection, id)).await;
            assert_eq!(gone.unwrap_err().code(), 404201);
        }
    }

    #[tokio::test]
    async fn bodies_must_be_one_value_of_the_route_shape() {
        let dps = dps();
        let mut trailing = request(json!({"query": "*"}), &[]);
        trailing.body = Bytes::from_static(b"{\"query\": \"*\"} {}");
        let e = apply(&dps, &trailing, Operation::Query(Collection::Groups))
            .await
            .unwrap_err();
        assert_eq!(e.code(), 400004);
        let wrong = request(json!({"enrollments": 3, "mode": "create"}), &[]);
        let e = apply(&dps, &wrong, Operation::Bulk(Collection::Enrollments))
            .await
            .unwrap_err();
        assert!(e.message().contains("enrollments"), "{e}");
    }

    #[tokio::test]
    async fn bulk_modes_are_matched_without_regard_to_case_and_unknown_ones_change_nothing() {
        let dps = dps();
        let enrollment =
            json!({"registrationId": "dev-1", "attestation": {"type": "symmetricKey"}});
        let create = request(json!({"enrollments": [enrollment], "mode": "CREATE"}), &[]);
        let (status, result) = answer(
            apply(&dps, &create, Operation::Bulk(Collection::Enrollments))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, result["isSuccessful"].clone()), (200, json!(true)));
        let mut stored = dps.get_enrollment("dev-1").unwrap();

        // The Node SDK's spelling of updateIfMatchETag, with the current etag: applied.
        let mut update = serde_json::to_value(&stored).unwrap();
        update["initialTwin"] = json!({"tags": {"bulk": "updated"}});
        let node = request(
            json!({"enrollments": [update], "mode": "updateIfMatchEtag"}),
            &[],
        );
        let (status, result) = answer(
            apply(&dps, &node, Operation::Bulk(Collection::Enrollments))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, result["isSuccessful"].clone()), (200, json!(true)));
        let updated = dps.get_enrollment("dev-1").unwrap();
        assert_ne!(updated.etag, stored.etag);
        stored = updated;

        for mode in ["upsert", "", "updateIfMatch"] {
            let unknown = request(json!({"enrollments": [], "mode": mode}), &[]);
            let e = apply(&dps, &unknown, Operation::Bulk(Collection::Enrollments))
                .await
                .unwrap_err();
            assert_eq!(e.code(), 400004, "{mode}");
            assert!(e.message().contains("updateIfMatchETag"), "{e}");
        }
        let wrong_type = request(json!({"enrollments": [], "mode": 3}), &[]);
        let e = apply(&dps, &wrong_type, Operation::Bulk(Collection::Groups))
            .await
            .unwrap_err();
        assert_eq!(e.code(), 400004);
        assert_eq!(dps.get_enrollment("dev-1").unwrap(), stored);
    }

    #[tokio::test]
    async fn queries_page_with_the_continuation_header() {
        let dps = dps();
        let items: Vec<Value> = (0..3)
            .map(|i| json!({"enrollmentGroupId": format!("g-{i}"), "attestation": {"type": "symmetricKey"}}))
            .collect();
        let bulk = request(json!({"enrollmentGroups": items, "mode": "create"}), &[]);
        let (status, result) = answer(
            apply(&dps, &bulk, Operation::Bulk(Collection::Groups))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, result["isSuccessful"].clone()), (200, json!(true)));

        let first = request(
            json!({"query": "SELECT *"}),
            &[("x-ms-max-item-count", "2")],
        );
        let reply = apply(&dps, &first, Operation::Query(Collection::Groups))
            .await
            .unwrap();
        assert_eq!(reply.headers()["x-ms-item-type"], "EnrollmentGroup");
        let token = reply.headers()["x-ms-continuation"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(answer(reply).await.1.as_array().map(Vec::len), Some(2));
        let next = request(json!({"query": "*"}), &[("x-ms-continuation", &token)]);
        let reply = apply(&dps, &next, Operation::Query(Collection::Groups))
            .await
            .unwrap();
        assert!(reply.headers().get("x-ms-continuation").is_none());
        assert_eq!(answer(reply).await.1[0]["enrollmentGroupId"], "g-2");
    }
}
