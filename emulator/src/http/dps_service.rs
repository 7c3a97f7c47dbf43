//! DPS service API (protocol.md §7): enrollments, enrollment groups and registration states.
//! Each call needs a shared-access-policy token for the DPS host whose policy grants the
//! operation's right (EnrollmentRead/Write, RegistrationStatusRead/Write).

use std::time::SystemTime;

use hyper::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::HttpContext;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth;
use crate::dps::error::DpsError;
use crate::dps::model::{EnrollmentGroup, IndividualEnrollment};
use crate::dps::service::{BulkMode, QueryPage};
use crate::pending::Pending;

/// What a route does; ids borrowed from the path.
enum Operation<'p> {
    GetEnrollment(&'p str),
    PutEnrollment(&'p str),
    DeleteEnrollment(&'p str),
    EnrollmentAttestation(&'p str),
    QueryEnrollments,
    BulkEnrollments,
    GetGroup(&'p str),
    PutGroup(&'p str),
    DeleteGroup(&'p str),
    GroupAttestation(&'p str),
    QueryGroups,
    BulkGroups,
    GetRegistration(&'p str),
    DeleteRegistration(&'p str),
    QueryRegistrations(&'p str),
}

/// The checks on the head (route, policy token and right), run by the router before the
/// body is read; [`handle`] makes them again.
pub(super) fn admit(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    admitted(ctx, req, fixed, segments).map(drop)
}

/// The operation a request asks for, once the caller's policy token is proven to grant it.
fn admitted<'p>(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&'p str],
) -> Result<Operation<'p>, Refusal> {
    use Operation::*;
    let (right, operation) = match (&req.method, fixed) {
        (&Method::POST, ["enrollments", "query"]) => ("EnrollmentRead", QueryEnrollments),
        (&Method::POST, ["enrollments"]) => ("EnrollmentWrite", BulkEnrollments),
        (&Method::GET, ["enrollments", _]) => ("EnrollmentRead", GetEnrollment(segments[1])),
        (&Method::PUT, ["enrollments", _]) => ("EnrollmentWrite", PutEnrollment(segments[1])),
        (&Method::DELETE, ["enrollments", _]) => ("EnrollmentWrite", DeleteEnrollment(segments[1])),
        (&Method::POST, ["enrollments", _, "attestationmechanism"]) => {
            ("EnrollmentRead", EnrollmentAttestation(segments[1]))
        }
        (&Method::POST, ["enrollmentgroups", "query"]) => ("EnrollmentRead", QueryGroups),
        (&Method::POST, ["enrollmentgroups"]) => ("EnrollmentWrite", BulkGroups),
        (&Method::GET, ["enrollmentgroups", _]) => ("EnrollmentRead", GetGroup(segments[1])),
        (&Method::PUT, ["enrollmentgroups", _]) => ("EnrollmentWrite", PutGroup(segments[1])),
        (&Method::DELETE, ["enrollmentgroups", _]) => ("EnrollmentWrite", DeleteGroup(segments[1])),
        (&Method::POST, ["enrollmentgroups", _, "attestationmechanism"]) => {
            ("EnrollmentRead", GroupAttestation(segments[1]))
        }
        (&Method::GET, ["registrations", _]) => {
            ("RegistrationStatusRead", GetRegistration(segments[1]))
        }
        (&Method::DELETE, ["registrations", _]) => {
            ("RegistrationStatusWrite", DeleteRegistration(segments[1]))
        }
        (&Method::POST, ["registrations", _, "query"]) => {
            ("RegistrationStatusRead", QueryRegistrations(segments[1]))
        }
        _ => {
            return Err(Box::new(reply::dps_error(&DpsError::new(
                405000,
                format!("{} is not supported on /{}", req.method, segments.join("/")),
            ))));
        }
    };
    let dps = &ctx.dps;
    if let Err(e) = auth::authenticate_service(
        dps.policies(),
        dps.host_name(),
        req.header("authorization"),
        right,
        SystemTime::now(),
    ) {
        return Err(Box::new(reply::unauthorized(&e)));
    }
    Ok(operation)
}

/// Answers one request; a write's 2xx goes out only once it is durable (a failure to store
/// it is a 500 and changes nothing).
pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    use Operation::*;
    let operation = match admitted(ctx, req, fixed, segments) {
        Ok(operation) => operation,
        Err(refusal) => return *refusal,
    };
    let dps = &ctx.dps;
    let result = match operation {
        GetEnrollment(id) => dps.get_enrollment(id).map(|e| reply::json(200, &e)),
        PutEnrollment(id) => stored(
            body::<IndividualEnrollment>(req)
                .and_then(|e| dps.put_enrollment(id, e, req.if_match())),
        )
        .await
        .map(|e| reply::json(200, &e)),
        DeleteEnrollment(id) => stored(dps.delete_enrollment_checked(id, req.if_match()))
            .await
            .map(|()| reply::empty(204)),
        EnrollmentAttestation(id) => dps.enrollment_attestation(id).map(|a| reply::json(200, &a)),
        QueryEnrollments => query_spec(req)
            .and_then(|(q, max, cont)| dps.query_enrollments(&q, max, cont.as_deref()))
            .map(|page| page_reply(page, "Enrollment")),
        BulkEnrollments => stored(
            body::<BulkEnrollmentsBody>(req)
                .and_then(|b| dps.bulk_enrollments(b.mode, b.enrollments)),
        )
        .await
        .map(|r| reply::json(200, &r)),
        GetGroup(id) => dps.get_enrollment_group(id).map(|g| reply::json(200, &g)),
        PutGroup(id) => stored(
            body::<EnrollmentGroup>(req)
                .and_then(|g| dps.put_enrollment_group(id, g, req.if_match())),
        )
        .await
        .map(|g| reply::json(200, &g)),
        DeleteGroup(id) => stored(dps.delete_enrollment_group_checked(id, req.if_match()))
            .await
            .map(|()| reply::empty(204)),
        GroupAttestation(id) => dps
            .enrollment_group_attestation(id)
            .map(|a| reply::json(200, &a)),
        QueryGroups => query_spec(req)
            .and_then(|(q, max, cont)| dps.query_enrollment_groups(&q, max, cont.as_deref()))
            .map(|page| page_reply(page, "EnrollmentGroup")),
        BulkGroups => stored(
            body::<BulkGroupsBody>(req)
                .and_then(|b| dps.bulk_enrollment_groups(b.mode, b.enrollment_groups)),
        )
        .await
        .map(|r| reply::json(200, &r)),
        GetRegistration(id) => dps.get_registration_state(id).map(|r| reply::json(200, &r)),
        DeleteRegistration(id) => stored(dps.delete_registration_state(id, req.if_match()))
            .await
            .map(|()| reply::empty(204)),
        QueryRegistrations(group) => {
            let (max, continuation) = paging(req);
            dps.query_registration_states(group, max, continuation.as_deref())
                .map(|page| page_reply(page, "DeviceRegistration"))
        }
    };
    result.unwrap_or_else(|e| reply::dps_error(&e))
}

/// A write's value once it is durable; a store failure becomes the 500 answer.
async fn stored<T>(write: Result<Pending<'_, T>, DpsError>) -> Result<T, DpsError> {
    Ok(write?.durable().await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkEnrollmentsBody {
    enrollments: Vec<IndividualEnrollment>,
    mode: BulkMode,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkGroupsBody {
    enrollment_groups: Vec<EnrollmentGroup>,
    mode: BulkMode,
}

#[derive(Deserialize)]
struct QuerySpecification {
    query: String,
}

/// Exactly one JSON value (trailing data is refused), of the route's shape.
fn body<T: DeserializeOwned>(req: &Request<'_>) -> Result<T, DpsError> {
    let mut de = serde_json::Deserializer::from_slice(&req.body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        DpsError::bad_request(format!("Invalid request body at '{path}': {}", e.inner()))
    })?;
    de.end()
        .map_err(|e| DpsError::bad_request(format!("Invalid request body: {e}")))?;
    Ok(value)
}

/// The query text and paging headers (`x-ms-max-item-count`, `x-ms-continuation`).
fn query_spec(req: &Request<'_>) -> Result<(String, Option<usize>, Option<String>), DpsError> {
    let spec: QuerySpecification = body(req)?;
    let (max, continuation) = paging(req);
    Ok((spec.query, max, continuation))
}

fn paging(req: &Request<'_>) -> (Option<usize>, Option<String>) {
    let max = req
        .header("x-ms-max-item-count")
        .and_then(|v| v.trim().parse().ok());
    let continuation = req.header("x-ms-continuation").map(str::to_owned);
    (max, continuation)
}

/// A JSON array with `x-ms-item-type`, and `x-ms-continuation` when more pages follow.
fn page_reply<T: serde::Serialize>(page: QueryPage<T>, item_type: &str) -> Reply {
    let mut reply = reply::json(200, &page.items);
    reply = reply::with_header(reply, "x-ms-item-type", item_type);
    if let Some(token) = &page.continuation {
        reply = reply::with_header(reply, "x-ms-continuation", token);
    }
    reply
}
