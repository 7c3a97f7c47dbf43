//! The portal's DPS routes: the overview, enrollments, enrollment groups and registration
//! records, through the operations the DPS service API uses (`Dps::put_enrollment`,
//! `Dps::delete_enrollment_checked`, `Dps::delete_registration_state`, …): the same
//! validation, key generation, ETags and durability.

use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::api::{ApiRequest, dps_error, error_reply, method_not_allowed};
use super::paging::Paging;
use super::reply::{Reply, json_reply};
use super::state::EmulatorState;
use crate::dps::error::DpsError;
use crate::dps::model::{EnrollmentGroup, IndividualEnrollment};
use crate::pending::Pending;

/// `GET /api/overview`: what the portal's DPS and hub overview pages show.
pub(super) fn overview(state: &EmulatorState, req: &ApiRequest) -> Reply {
    if req.method != Method::GET {
        return method_not_allowed();
    }
    let dps = &state.dps;
    let policies = |policies: &[crate::auth::policy::SharedAccessPolicy], host: &str| {
        policies
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "rights": p.rights,
                    "connectionString": p.connection_string(host),
                })
            })
            .collect::<Vec<_>>()
    };
    let hubs: Vec<Value> = state
        .hubs
        .all()
        .iter()
        .map(|h| {
            json!({
                "name": h.name(),
                "hostName": h.host_name(),
                "policies": policies(h.policies(), h.host_name()),
            })
        })
        .collect();
    json_reply(
        StatusCode::OK,
        json!({
            "serviceEndpoint": dps.host_name(),
            "globalDeviceEndpoint": dps.host_name(),
            "idScope": dps.id_scope(),
            "policies": policies(dps.policies(), dps.host_name()),
            "mqtt": state.mqtt_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "hubs": hubs,
        }),
    )
}

/// `/api/enrollments…`, `/api/enrollmentGroups…`, `/api/registrations…`.
pub(super) async fn route(state: &EmulatorState, req: &ApiRequest, path: &[&str]) -> Reply {
    if req.method == Method::GET
        && let [list @ ("enrollments" | "enrollmentGroups" | "registrations")] = path
    {
        return match Paging::of(req) {
            Ok(paging) => list_page(state, &paging, list),
            Err(refused) => refused.reply(),
        };
    }
    let dps = &state.dps;
    let if_match = req.if_match.as_deref();
    let result: Result<Value, DpsError> = match (&req.method, path) {
        (&Method::GET, ["enrollments", id]) => dps.get_enrollment(id).map(|e| json!(e)),
        (&Method::PUT, ["enrollments", id]) => match parse::<IndividualEnrollment>(req) {
            Ok(enrollment) => durable(dps.put_enrollment(id, enrollment, if_match)).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["enrollments", id]) => {
            durable(dps.delete_enrollment_checked(id, if_match)).await
        }
        (&Method::GET, ["enrollmentGroups", id]) => dps.get_enrollment_group(id).map(|g| json!(g)),
        (&Method::PUT, ["enrollmentGroups", id]) => match parse::<EnrollmentGroup>(req) {
            Ok(group) => durable(dps.put_enrollment_group(id, group, if_match)).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["enrollmentGroups", id]) => {
            durable(dps.delete_enrollment_group_checked(id, if_match)).await
        }
        (&Method::GET, ["registrations", id]) => dps.get_registration_state(id).map(|r| json!(r)),
        (&Method::DELETE, ["registrations", id]) => {
            durable(dps.delete_registration_state(id, if_match)).await
        }
        (_, ["enrollments" | "enrollmentGroups" | "registrations", ..]) => {
            return method_not_allowed();
        }
        _ => return error_reply(StatusCode::NOT_FOUND, 404000, "no such portal API route"),
    };
    match result {
        Ok(Value::Null) => json_reply(StatusCode::OK, json!({})),
        Ok(value) => json_reply(StatusCode::OK, value),
        Err(e) => dps_error(&e),
    }
}

/// One page of a DPS list, each sorted by its id, `?filter=` looking in ids and device ids.
fn list_page(state: &EmulatorState, paging: &Paging, list: &str) -> Reply {
    let dps = &state.dps;
    match list {
        "enrollments" => paging
            .page(
                dps.enrollments(),
                |e| &e.registration_id,
                |e| {
                    [Some(e.registration_id.as_str()), e.device_id.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect()
                },
            )
            .map(to_json)
            .reply(),
        "enrollmentGroups" => paging
            .page(
                dps.enrollment_groups(),
                |g| &g.enrollment_group_id,
                |g| vec![g.enrollment_group_id.as_str()],
            )
            .map(to_json)
            .reply(),
        _ => paging
            .page(
                dps.registrations(),
                |r| &r.registration_id,
                |r| {
                    [Some(r.registration_id.as_str()), r.device_id.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect()
                },
            )
            .map(to_json)
            .reply(),
    }
}

fn to_json<T: serde::Serialize>(item: T) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

/// The body as the DPS model type, refused with the service API's 400 wording otherwise.
fn parse<T: DeserializeOwned>(req: &ApiRequest) -> Result<T, DpsError> {
    serde_json::from_slice(&req.body)
        .map_err(|e| DpsError::bad_request(format!("Invalid request body: {e}")))
}

/// Awaits the write's commit; the reply goes out only once it is stored.
async fn durable<T: serde::Serialize>(
    write: Result<Pending<'_, T>, DpsError>,
) -> Result<Value, DpsError> {
    let value = write?.durable().await?;
    Ok(serde_json::to_value(value).unwrap_or(Value::Null))
}
