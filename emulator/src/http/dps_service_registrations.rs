//! DPS service API, registration records (protocol.md §7.5): what DPS remembers of each
//! device's latest registration.
//!
//! | route | body in | body out |
//! |---|---|---|
//! | `GET /registrations/{id}` | – | `DeviceRegistrationState` |
//! | `DELETE /registrations/{id}` (`If-Match`) | – | 204; the next registration is a first one |
//! | `POST /registrations/{enrollmentGroupId}/query` (`x-ms-max-item-count`, `x-ms-continuation`) | – | JSON array of `DeviceRegistrationState`, `x-ms-item-type: DeviceRegistration` |

use super::dps_service::{page_reply, paging, stored};
use super::reply::{self, Reply};
use super::request::Request;
use crate::dps::Dps;
use crate::dps::error::DpsError;

/// An operation on registration records; ids borrowed from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation<'p> {
    Get(&'p str),
    Delete(&'p str),
    /// The records of one enrollment group's devices.
    Query(&'p str),
}

/// Applies an admitted operation; a deletion answers only once durable.
pub(super) async fn apply(
    dps: &Dps,
    req: &Request<'_>,
    operation: Operation<'_>,
) -> Result<Reply, DpsError> {
    match operation {
        Operation::Get(id) => Ok(reply::json(200, &dps.get_registration_state(id)?)),
        Operation::Delete(id) => stored(dps.delete_registration_state(id, req.if_match()))
            .await
            .map(|()| reply::empty(204)),
        Operation::Query(group) => {
            let (max, continuation) = paging(req);
            let page = dps.query_registration_states(group, max, continuation.as_deref())?;
            Ok(page_reply(page, "DeviceRegistration"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use hyper::{HeaderMap, Method};

    use super::*;
    use crate::dps::DpsTiming;
    use crate::dps::model::EnrollmentGroup;
    use crate::hub::{Hub, Hubs};

    fn request() -> Request<'static> {
        Request {
            method: Method::GET,
            segments: Vec::new(),
            query: String::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            certificates: &[],
        }
    }

    #[tokio::test]
    async fn unknown_records_and_groups_are_404() {
        let hubs = Arc::new(Hubs::new(vec![Hub::new("hub-a", vec![], 10)]));
        let dps = Dps::new(
            "0ne00000A0A",
            "localhost",
            vec![],
            hubs,
            DpsTiming::default(),
        );
        let get = apply(&dps, &request(), Operation::Get("nobody")).await;
        assert_eq!(get.unwrap_err().code(), 404202);
        let delete = apply(&dps, &request(), Operation::Delete("nobody")).await;
        assert_eq!(delete.unwrap_err().code(), 404202);
        let query = apply(&dps, &request(), Operation::Query("no-group")).await;
        assert_eq!(query.unwrap_err().code(), 404201);

        let group: EnrollmentGroup = serde_json::from_value(serde_json::json!({
            "enrollmentGroupId": "fleet", "attestation": {"type": "symmetricKey"},
        }))
        .unwrap();
        dps.create_or_update_enrollment_group(group).unwrap();
        let reply = apply(&dps, &request(), Operation::Query("FLEET"))
            .await
            .unwrap();
        assert_eq!(reply.headers()["x-ms-item-type"], "DeviceRegistration");
        assert_eq!(reply.status(), 200);
    }
}
