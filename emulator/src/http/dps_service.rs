//! DPS service API (protocol.md §7) route table: which API group and right a request needs.
//! Each call carries a shared-access-policy token for the DPS host whose policy grants the
//! operation's right (EnrollmentRead/Write, RegistrationStatusRead/Write); the groups'
//! handlers are in [`super::dps_service_enrollments`] (enrollments and enrollment groups) and
//! [`super::dps_service_registrations`] (registration records). Wire helpers they share
//! (one-JSON-value bodies, paging headers, durable writes) are here.

use std::time::SystemTime;

use hyper::Method;
use serde::de::DeserializeOwned;

use super::HttpContext;
use super::dps_service_enrollments::{self as enrollments, Collection};
use super::dps_service_registrations as registrations;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth;
use crate::dps::error::DpsError;
use crate::dps::service::QueryPage;
use crate::faults::FaultOperation;
use crate::pending::Pending;

/// What a route does; ids borrowed from the path.
enum Route<'p> {
    Enrollments(enrollments::Operation<'p>),
    Registrations(registrations::Operation<'p>),
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

/// The route a request asks for, once the caller's policy token is proven to grant it.
fn admitted<'p>(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&'p str],
) -> Result<Route<'p>, Refusal> {
    let Some((right, route)) = route(&req.method, fixed, segments) else {
        return Err(Box::new(reply::dps_error(&DpsError::method_not_allowed(
            format!("{} is not supported on /{}", req.method, segments.join("/")),
        ))));
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
    Ok(route)
}

/// The right a route needs and the route. `fixed` is the lower-cased path with ids kept as
/// they are in `segments` (the router's matching form).
fn route<'p>(
    method: &Method,
    fixed: &[&str],
    segments: &[&'p str],
) -> Option<(&'static str, Route<'p>)> {
    use enrollments::Operation as E;
    use registrations::Operation as R;
    let id = || segments.get(1).copied().unwrap_or_default();
    let group = |fixed: &str| match fixed {
        "enrollments" => Some(Collection::Enrollments),
        "enrollmentgroups" => Some(Collection::Groups),
        _ => None,
    };
    let (right, route) = match (method, fixed) {
        (&Method::POST, [c, "query"]) if group(c).is_some() => {
            ("EnrollmentRead", Route::Enrollments(E::Query(group(c)?)))
        }
        (&Method::POST, [c]) if group(c).is_some() => {
            ("EnrollmentWrite", Route::Enrollments(E::Bulk(group(c)?)))
        }
        (&Method::GET, [c, _]) if group(c).is_some() => (
            "EnrollmentRead",
            Route::Enrollments(E::Get(group(c)?, id())),
        ),
        (&Method::PUT, [c, _]) if group(c).is_some() => (
            "EnrollmentWrite",
            Route::Enrollments(E::Put(group(c)?, id())),
        ),
        (&Method::DELETE, [c, _]) if group(c).is_some() => (
            "EnrollmentWrite",
            Route::Enrollments(E::Delete(group(c)?, id())),
        ),
        (&Method::POST, [c, _, "attestationmechanism"]) if group(c).is_some() => (
            "EnrollmentRead",
            Route::Enrollments(E::Attestation(group(c)?, id())),
        ),
        (&Method::GET, ["registrations", _]) => {
            ("RegistrationStatusRead", Route::Registrations(R::Get(id())))
        }
        (&Method::DELETE, ["registrations", _]) => (
            "RegistrationStatusWrite",
            Route::Registrations(R::Delete(id())),
        ),
        (&Method::POST, ["registrations", _, "query"]) => (
            "RegistrationStatusRead",
            Route::Registrations(R::Query(id())),
        ),
        _ => return None,
    };
    Some((right, route))
}

/// Answers one request; a write's 2xx goes out only once it is durable (a failure to store
/// it is a 500 and changes nothing).
pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    let route = match admitted(ctx, req, fixed, segments) {
        Ok(route) => route,
        Err(refusal) => return *refusal,
    };
    // An injected `dps.service` fault (docs/faults.md), addressed by the path; checked once
    // the caller is known to be allowed, before anything is read or written.
    let path = format!("/{}", segments.join("/"));
    let dps = &ctx.dps;
    let fault = dps.fault(FaultOperation::DpsService, &path);
    let operation = async {
        let result = match route {
            Route::Enrollments(operation) => enrollments::apply(dps, req, operation).await,
            Route::Registrations(operation) => registrations::apply(dps, req, operation).await,
        };
        result.unwrap_or_else(|e| reply::dps_error(&e))
    };
    super::faults::around(ctx, super::faults::Service::Dps, fault, operation).await
}

/// A write's value once it is durable; a store failure becomes the 500 answer.
pub(super) async fn stored<T>(write: Result<Pending<'_, T>, DpsError>) -> Result<T, DpsError> {
    Ok(write?.durable().await?)
}

/// Exactly one JSON value (trailing data is refused), of the route's shape.
pub(super) fn body<T: DeserializeOwned>(req: &Request<'_>) -> Result<T, DpsError> {
    let mut de = serde_json::Deserializer::from_slice(&req.body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        DpsError::bad_request(format!("Invalid request body at '{path}': {}", e.inner()))
    })?;
    de.end()
        .map_err(|e| DpsError::bad_request(format!("Invalid request body: {e}")))?;
    Ok(value)
}

/// The paging headers: `x-ms-max-item-count` (ignored unless a number) and
/// `x-ms-continuation`.
pub(super) fn paging(req: &Request<'_>) -> (Option<usize>, Option<String>) {
    let max = req
        .header("x-ms-max-item-count")
        .and_then(|v| v.trim().parse().ok());
    let continuation = req.header("x-ms-continuation").map(str::to_owned);
    (max, continuation)
}

/// A JSON array with `x-ms-item-type`, and `x-ms-continuation` when more pages follow.
pub(super) fn page_reply<T: serde::Serialize>(page: QueryPage<T>, item_type: &str) -> Reply {
    let mut reply = reply::json(200, &page.items);
    reply = reply::with_header(reply, "x-ms-item-type", item_type);
    if let Some(token) = &page.continuation {
        reply = reply::with_header(reply, "x-ms-continuation", token);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(method: Method, path: &str) -> Option<&'static str> {
        let segments: Vec<&str> = path.split('/').collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let fixed: Vec<&str> = lower.iter().map(String::as_str).collect();
        route(&method, &fixed, &segments).map(|(right, _)| right)
    }

    #[test]
    fn every_route_names_its_right() {
        for (method, path, right) in [
            (Method::POST, "enrollments/query", "EnrollmentRead"),
            (Method::POST, "enrollments", "EnrollmentWrite"),
            (Method::GET, "enrollments/dev-1", "EnrollmentRead"),
            (Method::PUT, "enrollmentGroups/g", "EnrollmentWrite"),
            (Method::DELETE, "enrollmentgroups/g", "EnrollmentWrite"),
            (
                Method::POST,
                "enrollments/dev-1/attestationMechanism",
                "EnrollmentRead",
            ),
            (Method::GET, "registrations/dev-1", "RegistrationStatusRead"),
            (
                Method::DELETE,
                "registrations/dev-1",
                "RegistrationStatusWrite",
            ),
            (
                Method::POST,
                "registrations/g/query",
                "RegistrationStatusRead",
            ),
        ] {
            assert_eq!(routed(method, path), Some(right), "{path}");
        }
    }

    #[test]
    fn unknown_routes_are_refused() {
        for (method, path) in [
            (Method::PATCH, "enrollments/dev-1"),
            (Method::GET, "enrollments"),
            (Method::PUT, "registrations/dev-1"),
            (Method::POST, "devices/query"),
        ] {
            assert_eq!(routed(method, path), None, "{path}");
        }
    }
}
