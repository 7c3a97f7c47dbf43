//! The DPS service REST API's domain rules (protocol.md §7): reading, writing and deleting
//! enrollments, enrollment groups and registration records under `If-Match` preconditions,
//! the `SELECT *` queries with continuation paging, and bulk operations. No HTTP here: the
//! handlers parse paths, headers and bodies, call these, and map [`DpsError`] to the wire
//! (status = code / 1000).
//!
//! Everything works on the same maps device registration reads, so a change made here applies
//! to the next registration at once.
//!
//! Error codes (Azure documents almost none for the DPS service API, protocol.md §10.1; these
//! are our choices, used consistently):
//!
//! | code | when |
//! |---|---|
//! | [`BAD_REQUEST`] 400004 | invalid body or enrollment, id mismatch, unsupported query, bad continuation token, > 10 bulk items |
//! | [`ENROLLMENT_NOT_FOUND`] 404201 | no such enrollment or enrollment group |
//! | [`REGISTRATION_NOT_FOUND`] 404202 | no such registration record |
//! | [`CONFLICT`] 409001 | bulk `create` of an id that exists |
//! | [`PRECONDITION_FAILED`] 412001 | `If-Match` / `updateIfMatchETag` does not match |

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::{Deserialize, Serialize};

use super::crud::not_found;
use super::enrollment::{Group, Individual};
use super::error::DpsError;
use super::model::{
    AttestationMechanism, DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment,
};
use super::{Dps, EnrollmentRef};
use crate::etag;
use crate::pending::Pending;

// The codes the service API answers with, as the tests name them (`DpsError`'s constructors
// carry them in the product code).
#[cfg(test)]
pub(crate) const BAD_REQUEST: u32 = 400004;
#[cfg(test)]
pub(crate) const ENROLLMENT_NOT_FOUND: u32 = 404201;
#[cfg(test)]
pub(crate) const REGISTRATION_NOT_FOUND: u32 = 404202;
#[cfg(test)]
pub(crate) const CONFLICT: u32 = 409001;
#[cfg(test)]
pub(crate) const PRECONDITION_FAILED: u32 = 412001;

/// Page size when the client sends no `x-ms-max-item-count`. The Python service SDK pages
/// only when asked, so most queries fit in one page.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;
/// Larger `x-ms-max-item-count` values are lowered to this; clients follow the continuation
/// token, so a smaller page than asked for is harmless, and it bounds one response's size.
pub(crate) const MAX_PAGE_SIZE: usize = 1000;
/// "maximum of 10 enrollments" per bulk operation (service.json).
pub(crate) const MAX_BULK_ITEMS: usize = 10;

/// Marks our continuation tokens, so that a token from elsewhere is rejected instead of being
/// read as an id to resume after.
const CONTINUATION_PREFIX: &str = "iotemu-after:";

/// One page of a query: the items, and the token for the next page when there is one
/// (sent as `x-ms-continuation`; absent means this was the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage<T> {
    pub items: Vec<T>,
    pub continuation: Option<String>,
}

/// `mode` of a bulk operation (service.json `BulkEnrollmentOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BulkMode {
    Create,
    Update,
    UpdateIfMatchETag,
    Delete,
}

/// The body of a bulk operation's `200`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkEnrollmentOperationResult {
    pub is_successful: bool,
    pub errors: Vec<BulkEnrollmentOperationError>,
}

/// One failed item of a bulk operation; `errorCode` is the code the single-item operation
/// would have failed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkEnrollmentOperationError {
    /// Set for individual enrollments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// Set for enrollment groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
    pub error_code: u32,
    pub error_status: String,
}

/// What a write or delete requires of the entity stored under the id (protocol.md §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition<'a> {
    /// Create or replace whatever is there (PUT without `If-Match`, fixtures, the library).
    Unconditional,
    /// An `If-Match` header: `*` matches any stored entity and also lets a PUT create one;
    /// any other value must match the stored etag.
    IfMatch(&'a str),
    /// Bulk `create`: nothing may be stored yet.
    Absent,
    /// Bulk `update`: something must be stored.
    Present,
    /// Bulk `updateIfMatchETag`: stored, and its etag equals the item's. An item without an
    /// etag cannot match anything, so it fails rather than silently becoming a plain update.
    PresentMatching(Option<&'a str>),
}

impl Precondition<'_> {
    fn from_if_match(if_match: Option<&str>) -> Precondition<'_> {
        if_match.map_or(Precondition::Unconditional, Precondition::IfMatch)
    }

    /// `stored` is `None` when nothing is stored, else the stored entity's etag. `subject`
    /// names the entity in an error, and is only rendered for one.
    pub(super) fn check(
        self,
        stored: Option<Option<&str>>,
        subject: &dyn std::fmt::Display,
    ) -> Result<(), DpsError> {
        let mismatch = || {
            DpsError::precondition_failed(format!(
                "{subject}: the etag does not match the current one"
            ))
        };
        match (self, stored) {
            (Precondition::Unconditional, _) => Ok(()),
            (Precondition::IfMatch(tag), Some(current)) => {
                if etag::matches(tag, current) {
                    Ok(())
                } else {
                    Err(mismatch())
                }
            }
            (Precondition::IfMatch(tag), None) => {
                if etag::is_wildcard(tag) {
                    Ok(())
                } else {
                    Err(DpsError::precondition_failed(format!(
                        "{subject} does not exist, so If-Match '{tag}' cannot match"
                    )))
                }
            }
            (Precondition::Absent, Some(_)) => {
                Err(DpsError::conflict(format!("{subject} already exists")))
            }
            (Precondition::Absent, None) => Ok(()),
            (Precondition::Present, Some(_)) => Ok(()),
            (Precondition::Present | Precondition::PresentMatching(_), None) => {
                Err(DpsError::not_found(format!("{subject} not found")))
            }
            (Precondition::PresentMatching(Some(tag)), Some(current)) => {
                // A wildcard is an `If-Match` header idiom, not an etag: it matches nothing here.
                if !etag::is_wildcard(tag) && etag::matches(tag, current) {
                    Ok(())
                } else {
                    Err(mismatch())
                }
            }
            (Precondition::PresentMatching(None), Some(_)) => Err(DpsError::precondition_failed(
                format!("{subject}: updateIfMatchETag needs the item's etag"),
            )),
        }
    }
}

impl Dps {
    // ----- individual enrollments -----

    /// `GET /enrollments/{id}`: the enrollment with its current registration, if any.
    pub fn get_enrollment(&self, id: &str) -> Result<IndividualEnrollment, DpsError> {
        let enrollment = self
            .individual(id)
            .ok_or_else(|| not_found::<Individual>(id))?;
        Ok(self.with_registration_state(&enrollment))
    }

    /// `PUT /enrollments/{id}`: creates or replaces. Read-only fields in the body are ignored;
    /// omitted symmetric keys are generated.
    pub fn put_enrollment(
        &self,
        id: &str,
        enrollment: IndividualEnrollment,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, IndividualEnrollment>, DpsError> {
        ids_agree("registrationId", &enrollment.registration_id, id)?;
        let parsed: Individual = self.parse(&enrollment)?;
        let stored = self.write(parsed, Precondition::from_if_match(if_match))?;
        Ok(stored.map(|e| self.with_registration_state(&e)))
    }

    /// `DELETE /enrollments/{id}`.
    pub fn delete_enrollment_checked(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        self.remove::<Individual>(id, Precondition::from_if_match(if_match))
    }

    /// `POST /enrollments/{id}/attestationmechanism`: the attestation, keys included.
    pub fn enrollment_attestation(&self, id: &str) -> Result<AttestationMechanism, DpsError> {
        self.individual(id)
            .map(|e| e.core.attestation.to_wire())
            .ok_or_else(|| not_found::<Individual>(id))
    }

    /// `POST /enrollments/query`.
    pub fn query_enrollments(
        &self,
        query: &str,
        max_item_count: Option<usize>,
        continuation: Option<&str>,
    ) -> Result<QueryPage<IndividualEnrollment>, DpsError> {
        check_query(query, "enrollments")?;
        let page = query_page(
            &self.enrollments,
            |e| Some(e.clone()),
            max_item_count,
            continuation,
        )?;
        Ok(QueryPage {
            items: page
                .items
                .iter()
                .map(|e| self.with_registration_state(e))
                .collect(),
            continuation: page.continuation,
        })
    }

    /// `POST /enrollments` with a `mode`. Items are applied one by one, in order; one item
    /// failing does not undo or stop the others (each failure is reported in `errors`). The
    /// result is durable when every item's write is; if one cannot be made durable, the whole
    /// request fails and every item's change is undone.
    pub fn bulk_enrollments(
        &self,
        mode: BulkMode,
        enrollments: Vec<IndividualEnrollment>,
    ) -> Result<Pending<'_, BulkEnrollmentOperationResult>, DpsError> {
        self.bulk::<Individual>(mode, enrollments)
    }

    // ----- enrollment groups -----

    /// `GET /enrollmentGroups/{id}`.
    pub fn get_enrollment_group(&self, id: &str) -> Result<EnrollmentGroup, DpsError> {
        self.enrollment_group(id)
            .ok_or_else(|| not_found::<Group>(id))
    }

    /// `PUT /enrollmentGroups/{id}`, like [`Dps::put_enrollment`].
    pub fn put_enrollment_group(
        &self,
        id: &str,
        group: EnrollmentGroup,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, EnrollmentGroup>, DpsError> {
        ids_agree("enrollmentGroupId", &group.enrollment_group_id, id)?;
        let parsed: Group = self.parse(&group)?;
        Ok(self
            .write(parsed, Precondition::from_if_match(if_match))?
            .map(|g| g.to_wire()))
    }

    /// `DELETE /enrollmentGroups/{id}`. Registration records of its devices are kept.
    pub fn delete_enrollment_group_checked(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        self.remove::<Group>(id, Precondition::from_if_match(if_match))
    }

    /// `POST /enrollmentGroups/{id}/attestationmechanism`: the attestation, keys included.
    pub fn enrollment_group_attestation(&self, id: &str) -> Result<AttestationMechanism, DpsError> {
        self.group(id)
            .map(|g| g.core.attestation.to_wire())
            .ok_or_else(|| not_found::<Group>(id))
    }

    /// `POST /enrollmentGroups/query`.
    pub fn query_enrollment_groups(
        &self,
        query: &str,
        max_item_count: Option<usize>,
        continuation: Option<&str>,
    ) -> Result<QueryPage<EnrollmentGroup>, DpsError> {
        check_query(query, "enrollmentGroups")?;
        query_page(
            &self.groups,
            |g| Some(g.to_wire()),
            max_item_count,
            continuation,
        )
    }

    /// `POST /enrollmentGroups` with a `mode`, like [`Dps::bulk_enrollments`].
    pub fn bulk_enrollment_groups(
        &self,
        mode: BulkMode,
        groups: Vec<EnrollmentGroup>,
    ) -> Result<Pending<'_, BulkEnrollmentOperationResult>, DpsError> {
        self.bulk::<Group>(mode, groups)
    }

    // ----- registration records -----

    /// `GET /registrations/{id}`.
    pub fn get_registration_state(&self, id: &str) -> Result<DeviceRegistrationState, DpsError> {
        self.registrations
            .get(&id.to_ascii_lowercase())
            .map(|r| service_view(&r.state))
            .ok_or_else(|| registration_not_found(id))
    }

    /// `DELETE /registrations/{id}`. The device's next registration is a first one again: new
    /// `createdDateTimeUtc`, no preference for its previous hub.
    pub fn delete_registration_state(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        let key = id.to_ascii_lowercase();
        match self.registrations.entry(key.clone()) {
            Entry::Vacant(_) => Err(registration_not_found(id)),
            Entry::Occupied(stored) => {
                Precondition::from_if_match(if_match).check(
                    Some(stored.get().state.etag.as_deref()),
                    &format!("Registration '{id}'"),
                )?;
                let pending = self.submit_registration(&key, Some(stored.get()), None)?;
                stored.remove();
                Ok(pending)
            }
        }
    }

    /// `POST /registrations/{enrollmentGroupId}/query`: the records of devices that registered
    /// through the group.
    pub fn query_registration_states(
        &self,
        enrollment_group_id: &str,
        max_item_count: Option<usize>,
        continuation: Option<&str>,
    ) -> Result<QueryPage<DeviceRegistrationState>, DpsError> {
        if self.group(enrollment_group_id).is_none() {
            return Err(not_found::<Group>(enrollment_group_id));
        }
        query_page(
            &self.registrations,
            |r| match &r.enrollment {
                EnrollmentRef::Group(g) if g.eq_ignore_ascii_case(enrollment_group_id) => {
                    Some(service_view(&r.state))
                }
                _ => None,
            },
            max_item_count,
            continuation,
        )
    }

    /// Fills `registrationState` with the record of the device this enrollment provisioned. A
    /// record of the same registration id made through a group belongs to that group instead.
    fn with_registration_state(&self, enrollment: &Individual) -> IndividualEnrollment {
        let mut enrollment = enrollment.to_wire();
        enrollment.registration_state = self
            .registrations
            .get(&enrollment.registration_id.to_ascii_lowercase())
            .and_then(|r| match &r.enrollment {
                EnrollmentRef::Individual(owner)
                    if owner.eq_ignore_ascii_case(&enrollment.registration_id) =>
                {
                    Some(service_view(&r.state))
                }
                _ => None,
            });
        enrollment
    }
}

/// The service API's `DeviceRegistrationState` has no `symmetricKey` / `x509`: those belong to
/// the device-facing `DeviceRegistrationResult` the record is also used for.
fn service_view(state: &DeviceRegistrationState) -> DeviceRegistrationState {
    DeviceRegistrationState {
        symmetric_key: None,
        x509: None,
        tpm: None,
        ..state.clone()
    }
}

fn ids_agree(field: &str, body_id: &str, path_id: &str) -> Result<(), DpsError> {
    if body_id.eq_ignore_ascii_case(path_id) {
        Ok(())
    } else {
        Err(DpsError::bad_request(format!(
            "{field} '{body_id}' in the body does not match '{path_id}' in the path"
        )))
    }
}

/// The swagger leaves the query language open (protocol.md §7.4) and every SDK sends `*`, so
/// only the forms that mean "everything" are accepted; anything else is refused rather than
/// answered with results that silently ignore a filter.
fn check_query(query: &str, collection: &str) -> Result<(), DpsError> {
    let words: Vec<&str> = query.split_whitespace().collect();
    let is = |word: &str, expected: &str| word.eq_ignore_ascii_case(expected);
    let supported = match words.as_slice() {
        ["*"] => true,
        [select, "*"] => is(select, "select"),
        [select, "*", from, source] => {
            is(select, "select") && is(from, "from") && is(source, collection)
        }
        _ => false,
    };
    if supported {
        Ok(())
    } else {
        Err(DpsError::bad_request(format!(
            "Unsupported query '{query}': iotemu supports only '*', 'SELECT *' and \
             'SELECT * FROM {collection}'"
        )))
    }
}

/// One page of the entries `select` picks from `map`, in key order (keys are lower-cased ids,
/// so this is id order, case-insensitively). The continuation token names the last key
/// returned, so pages stay consistent when entries are added or removed between calls.
fn query_page<V, T>(
    map: &DashMap<String, V>,
    select: impl Fn(&V) -> Option<T>,
    max_item_count: Option<usize>,
    continuation: Option<&str>,
) -> Result<QueryPage<T>, DpsError> {
    let size = match max_item_count {
        None | Some(0) => DEFAULT_PAGE_SIZE,
        Some(n) => n.min(MAX_PAGE_SIZE),
    };
    let after = match continuation.map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => Some(decode_continuation(token)?),
        None => None,
    };
    let mut rest: Vec<(String, T)> = map
        .iter()
        .filter(|entry| after.as_ref().is_none_or(|a| entry.key() > a))
        .filter_map(|entry| select(entry.value()).map(|item| (entry.key().clone(), item)))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    let more = rest.len() > size;
    rest.truncate(size);
    let continuation = if more {
        rest.last().map(|(key, _)| encode_continuation(key))
    } else {
        None
    };
    Ok(QueryPage {
        items: rest.into_iter().map(|(_, item)| item).collect(),
        continuation,
    })
}

fn encode_continuation(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CONTINUATION_PREFIX}{last_key}"))
}

fn decode_continuation(token: &str) -> Result<String, DpsError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(CONTINUATION_PREFIX).map(str::to_owned))
        .ok_or_else(|| DpsError::bad_request(format!("Invalid continuation token '{token}'")))
}

fn registration_not_found(id: &str) -> DpsError {
    DpsError::registration_not_found(format!("Registration '{id}' not found"))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_queries;
#[cfg(test)]
mod tests_tpm;
