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

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::{Deserialize, Serialize};

use super::error::DpsError;
use super::model::{
    AttestationMechanism, DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment,
};
use super::validate::{self, MissingKeys};
use super::{Dps, EnrollmentRef};
use crate::etag;
use crate::pending::Pending;
use crate::timefmt::utc_timestamp;

pub const BAD_REQUEST: u32 = 400004;
pub const ENROLLMENT_NOT_FOUND: u32 = 404201;
pub const REGISTRATION_NOT_FOUND: u32 = 404202;
pub const CONFLICT: u32 = 409001;
pub const PRECONDITION_FAILED: u32 = 412001;

/// Page size when the client sends no `x-ms-max-item-count`. The Python service SDK pages
/// only when asked, so most queries fit in one page.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Larger `x-ms-max-item-count` values are lowered to this; clients follow the continuation
/// token, so a smaller page than asked for is harmless, and it bounds one response's size.
pub const MAX_PAGE_SIZE: usize = 1000;
/// "maximum of 10 enrollments" per bulk operation (service.json).
pub const MAX_BULK_ITEMS: usize = 10;

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

    /// `stored` is `None` when nothing is stored, else the stored entity's etag.
    fn check(self, stored: Option<Option<&str>>, subject: &str) -> Result<(), DpsError> {
        let mismatch = || {
            DpsError::new(
                PRECONDITION_FAILED,
                format!("{subject}: the etag does not match the current one"),
            )
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
                    Err(DpsError::new(
                        PRECONDITION_FAILED,
                        format!("{subject} does not exist, so If-Match '{tag}' cannot match"),
                    ))
                }
            }
            (Precondition::Absent, Some(_)) => {
                Err(DpsError::new(CONFLICT, format!("{subject} already exists")))
            }
            (Precondition::Absent, None) => Ok(()),
            (Precondition::Present, Some(_)) => Ok(()),
            (Precondition::Present | Precondition::PresentMatching(_), None) => Err(DpsError::new(
                ENROLLMENT_NOT_FOUND,
                format!("{subject} not found"),
            )),
            (Precondition::PresentMatching(Some(tag)), Some(current)) => {
                // A wildcard is an `If-Match` header idiom, not an etag: it matches nothing here.
                if !etag::is_wildcard(tag) && etag::matches(tag, current) {
                    Ok(())
                } else {
                    Err(mismatch())
                }
            }
            (Precondition::PresentMatching(None), Some(_)) => Err(DpsError::new(
                PRECONDITION_FAILED,
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
            .individual_enrollment(id)
            .ok_or_else(|| enrollment_not_found(id))?;
        Ok(self.with_registration_state(enrollment))
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
        let stored = self.write_enrollment(enrollment, Precondition::from_if_match(if_match))?;
        Ok(stored.map(|e| self.with_registration_state(e)))
    }

    /// `DELETE /enrollments/{id}`.
    pub fn delete_enrollment_checked(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        self.remove_enrollment(id, Precondition::from_if_match(if_match))
    }

    /// `POST /enrollments/{id}/attestationmechanism`: the attestation, keys included.
    pub fn enrollment_attestation(&self, id: &str) -> Result<AttestationMechanism, DpsError> {
        self.individual_enrollment(id)
            .map(|e| e.attestation)
            .ok_or_else(|| enrollment_not_found(id))
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
                .into_iter()
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
        check_bulk_size(enrollments.len(), "enrollments")?;
        let mut errors = Vec::new();
        let mut written = Pending::ready(());
        for enrollment in enrollments {
            let id = enrollment.registration_id.clone();
            let etag = enrollment.etag.clone();
            let precondition = match mode {
                BulkMode::Create => Precondition::Absent,
                BulkMode::Update => Precondition::Present,
                BulkMode::UpdateIfMatchETag => Precondition::PresentMatching(etag.as_deref()),
                BulkMode::Delete => Precondition::Unconditional,
            };
            let outcome = match mode {
                BulkMode::Delete => self.remove_enrollment(&id, precondition),
                _ => self
                    .write_enrollment(enrollment, precondition)
                    .map(|p| p.map(drop)),
            };
            match outcome {
                Ok(item) => written = written.join(item).map(drop),
                Err(e) => errors.push(BulkEnrollmentOperationError {
                    registration_id: Some(id),
                    enrollment_group_id: None,
                    error_code: e.code,
                    error_status: e.message,
                }),
            }
        }
        Ok(written.map(|()| BulkEnrollmentOperationResult {
            is_successful: errors.is_empty(),
            errors,
        }))
    }

    // ----- enrollment groups -----

    /// `GET /enrollmentGroups/{id}`.
    pub fn get_enrollment_group(&self, id: &str) -> Result<EnrollmentGroup, DpsError> {
        self.enrollment_group(id).ok_or_else(|| group_not_found(id))
    }

    /// `PUT /enrollmentGroups/{id}`, like [`Dps::put_enrollment`].
    pub fn put_enrollment_group(
        &self,
        id: &str,
        group: EnrollmentGroup,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, EnrollmentGroup>, DpsError> {
        ids_agree("enrollmentGroupId", &group.enrollment_group_id, id)?;
        self.write_enrollment_group(group, Precondition::from_if_match(if_match))
    }

    /// `DELETE /enrollmentGroups/{id}`. Registration records of its devices are kept.
    pub fn delete_enrollment_group_checked(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        self.remove_enrollment_group(id, Precondition::from_if_match(if_match))
    }

    /// `POST /enrollmentGroups/{id}/attestationmechanism`: the attestation, keys included.
    pub fn enrollment_group_attestation(&self, id: &str) -> Result<AttestationMechanism, DpsError> {
        self.enrollment_group(id)
            .map(|g| g.attestation)
            .ok_or_else(|| group_not_found(id))
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
            |g| Some(g.clone()),
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
        check_bulk_size(groups.len(), "enrollment groups")?;
        let mut errors = Vec::new();
        let mut written = Pending::ready(());
        for group in groups {
            let id = group.enrollment_group_id.clone();
            let etag = group.etag.clone();
            let precondition = match mode {
                BulkMode::Create => Precondition::Absent,
                BulkMode::Update => Precondition::Present,
                BulkMode::UpdateIfMatchETag => Precondition::PresentMatching(etag.as_deref()),
                BulkMode::Delete => Precondition::Unconditional,
            };
            let outcome = match mode {
                BulkMode::Delete => self.remove_enrollment_group(&id, precondition),
                _ => self
                    .write_enrollment_group(group, precondition)
                    .map(|p| p.map(drop)),
            };
            match outcome {
                Ok(item) => written = written.join(item).map(drop),
                Err(e) => errors.push(BulkEnrollmentOperationError {
                    registration_id: None,
                    enrollment_group_id: Some(id),
                    error_code: e.code,
                    error_status: e.message,
                }),
            }
        }
        Ok(written.map(|()| BulkEnrollmentOperationResult {
            is_successful: errors.is_empty(),
            errors,
        }))
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
                let pending = self.submit_registration(&key, Some(stored.get().clone()), None)?;
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
        if self.enrollment_group(enrollment_group_id).is_none() {
            return Err(group_not_found(enrollment_group_id));
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

    // ----- shared by these and the library's create/update -----

    /// Validates and stores an enrollment under `precondition`, with a new etag and timestamps
    /// (`createdDateTimeUtc` kept from the entity it replaces). Returns what was stored.
    pub(crate) fn write_enrollment(
        &self,
        mut enrollment: IndividualEnrollment,
        precondition: Precondition<'_>,
    ) -> Result<Pending<'_, IndividualEnrollment>, DpsError> {
        self.links(|links| {
            validate::individual_enrollment(&mut enrollment, links, MissingKeys::Random)
        })
        .map_err(|bad| DpsError::bad_request(bad.to_string()))?;
        let subject = format!("Enrollment '{}'", enrollment.registration_id);
        let now = utc_timestamp(SystemTime::now());
        // Derived on every read from the registration records, never stored.
        enrollment.registration_state = None;
        enrollment.etag = Some(etag::enrollment());
        enrollment.last_updated_date_time_utc = Some(now.clone());
        // Checked, submitted and published under the entry's lock: of two writers with the
        // same If-Match only one can win, and the store sees them in the map's order.
        let key = enrollment.registration_id.to_ascii_lowercase();
        let pending = match self.enrollments.entry(key.clone()) {
            Entry::Occupied(mut stored) => {
                precondition.check(Some(stored.get().etag.as_deref()), &subject)?;
                enrollment.created_date_time_utc =
                    stored.get().created_date_time_utc.clone().or(Some(now));
                let pending =
                    self.submit_enrollment(&key, Some(stored.get().clone()), Some(&enrollment))?;
                stored.insert(enrollment.clone());
                pending
            }
            Entry::Vacant(slot) => {
                precondition.check(None, &subject)?;
                enrollment.created_date_time_utc = Some(now);
                let pending = self.submit_enrollment(&key, None, Some(&enrollment))?;
                slot.insert(enrollment.clone());
                pending
            }
        };
        Ok(pending.map(|()| enrollment))
    }

    /// [`Dps::write_enrollment`] for groups; also keeps the X.509 group index in step.
    pub(crate) fn write_enrollment_group(
        &self,
        mut group: EnrollmentGroup,
        precondition: Precondition<'_>,
    ) -> Result<Pending<'_, EnrollmentGroup>, DpsError> {
        self.links(|links| validate::enrollment_group(&mut group, links, MissingKeys::Random))
            .map_err(|bad| DpsError::bad_request(bad.to_string()))?;
        let subject = format!("Enrollment group '{}'", group.enrollment_group_id);
        let now = utc_timestamp(SystemTime::now());
        group.etag = Some(etag::enrollment());
        group.last_updated_date_time_utc = Some(now.clone());
        let key = group.enrollment_group_id.to_ascii_lowercase();
        let pending = match self.groups.entry(key.clone()) {
            Entry::Occupied(mut stored) => {
                precondition.check(Some(stored.get().etag.as_deref()), &subject)?;
                group.created_date_time_utc =
                    stored.get().created_date_time_utc.clone().or(Some(now));
                let pending = self.submit_group(&key, Some(stored.get().clone()), Some(&group))?;
                let previous = stored.insert(group.clone());
                self.x509_groups.remove(&previous);
                self.x509_groups.insert(&group);
                pending
            }
            Entry::Vacant(slot) => {
                precondition.check(None, &subject)?;
                group.created_date_time_utc = Some(now);
                let pending = self.submit_group(&key, None, Some(&group))?;
                slot.insert(group.clone());
                self.x509_groups.insert(&group);
                pending
            }
        };
        Ok(pending.map(|()| group))
    }

    pub(super) fn remove_enrollment(
        &self,
        id: &str,
        precondition: Precondition<'_>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        let key = id.to_ascii_lowercase();
        match self.enrollments.entry(key.clone()) {
            Entry::Vacant(_) => Err(enrollment_not_found(id)),
            Entry::Occupied(stored) => {
                precondition.check(
                    Some(stored.get().etag.as_deref()),
                    &format!("Enrollment '{id}'"),
                )?;
                let pending = self.submit_enrollment(&key, Some(stored.get().clone()), None)?;
                stored.remove();
                Ok(pending)
            }
        }
    }

    pub(super) fn remove_enrollment_group(
        &self,
        id: &str,
        precondition: Precondition<'_>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        let key = id.to_ascii_lowercase();
        match self.groups.entry(key.clone()) {
            Entry::Vacant(_) => Err(group_not_found(id)),
            Entry::Occupied(stored) => {
                precondition.check(
                    Some(stored.get().etag.as_deref()),
                    &format!("Enrollment group '{id}'"),
                )?;
                let pending = self.submit_group(&key, Some(stored.get().clone()), None)?;
                let (_, group) = stored.remove_entry();
                self.x509_groups.remove(&group);
                Ok(pending)
            }
        }
    }

    /// Fills `registrationState` with the record of the device this enrollment provisioned. A
    /// record of the same registration id made through a group belongs to that group instead.
    fn with_registration_state(
        &self,
        mut enrollment: IndividualEnrollment,
    ) -> IndividualEnrollment {
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

fn check_bulk_size(count: usize, what: &str) -> Result<(), DpsError> {
    if count > MAX_BULK_ITEMS {
        return Err(DpsError::bad_request(format!(
            "A bulk operation takes at most {MAX_BULK_ITEMS} {what}; {count} were sent"
        )));
    }
    Ok(())
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

fn enrollment_not_found(id: &str) -> DpsError {
    DpsError::new(ENROLLMENT_NOT_FOUND, format!("Enrollment '{id}' not found"))
}

fn group_not_found(id: &str) -> DpsError {
    DpsError::new(
        ENROLLMENT_NOT_FOUND,
        format!("Enrollment group '{id}' not found"),
    )
}

fn registration_not_found(id: &str) -> DpsError {
    DpsError::new(
        REGISTRATION_NOT_FOUND,
        format!("Registration '{id}' not found"),
    )
}

#[cfg(test)]
mod tests {
    use crate::pending::WaitStored;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde_json::json;

    use super::*;
    use crate::auth::keys::SymmetricKey;
    use crate::auth::{self, Credential, RegistrationIdentity, sas};
    use crate::certs;
    use crate::dps::DpsTiming;
    use crate::dps::model::{
        AttestationType, ProvisioningStatus, RegistrationStatus, SymmetricKeyAttestation,
        X509Attestation, X509CertificateWithInfo, X509Certificates,
    };
    use crate::hub::{Hub, Hubs};

    const KEY: &str =
        "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
    const GROUP_KEY: &str =
        "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g==";

    fn dps() -> Dps {
        let hubs = Arc::new(Hubs::new(vec![
            Hub::new("hub-a", vec![], 10),
            Hub::new("hub-b", vec![], 10),
        ]));
        let timing = DpsTiming {
            retry_after: 1,
            assignment_delay: Duration::ZERO,
        };
        Dps::new("0ne00000A0A", "localhost", vec![], hubs, timing)
    }

    fn symmetric(primary: Option<&str>) -> AttestationMechanism {
        AttestationMechanism {
            kind: AttestationType::SymmetricKey,
            symmetric_key: Some(SymmetricKeyAttestation {
                primary_key: primary.map(str::to_owned),
                secondary_key: None,
            }),
            x509: None,
            tpm: None,
        }
    }

    /// Enrollments as a client sends them: JSON, so the tests also cover the model's shape.
    fn enrollment(id: &str) -> IndividualEnrollment {
        serde_json::from_value(json!({
            "registrationId": id,
            "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}},
            "provisioningStatus": "enabled",
        }))
        .unwrap()
    }

    fn group(id: &str) -> EnrollmentGroup {
        serde_json::from_value(json!({
            "enrollmentGroupId": id,
            "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": GROUP_KEY}},
        }))
        .unwrap()
    }

    fn login(dps: &Dps, registration_id: &str, key: &str) -> RegistrationIdentity {
        let key = SymmetricKey::from_base64(key).unwrap();
        login_with(dps, registration_id, &key)
    }

    fn login_with(dps: &Dps, registration_id: &str, key: &SymmetricKey) -> RegistrationIdentity {
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let token = sas::build_token(
            &format!("0ne00000A0A/registrations/{registration_id}"),
            key.as_bytes(),
            None,
            expiry,
        );
        auth::authenticate_registration(
            dps,
            "0ne00000A0A",
            registration_id,
            Credential::Sas(&token),
            SystemTime::now(),
        )
        .unwrap()
    }

    /// Registers and polls once (no assignment delay), returning the final state.
    fn provision(dps: &Dps, who: &RegistrationIdentity) -> DeviceRegistrationState {
        let started = dps.register(who, b"{}").unwrap();
        dps.operation_status(who, &started.body.operation_id)
            .wait_stored()
            .unwrap()
            .body
            .registration_state
            .unwrap()
    }

    fn code<T: std::fmt::Debug>(result: Result<T, DpsError>) -> u32 {
        result.unwrap_err().code
    }

    #[test]
    fn put_creates_with_quoted_etag_timestamps_and_generated_keys() {
        let dps = dps();
        let mut body = enrollment("dev-1");
        body.attestation = symmetric(None);
        let created = dps
            .put_enrollment("DEV-1", body, None)
            .wait_stored()
            .unwrap();

        let etag = created.etag.clone().unwrap();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 38);
        assert!(created.created_date_time_utc.is_some());
        assert_eq!(
            created.created_date_time_utc,
            created.last_updated_date_time_utc
        );
        assert_eq!(created.registration_state, None);
        let keys = created.attestation.symmetric_key.clone().unwrap();
        for key in [keys.primary_key.unwrap(), keys.secondary_key.unwrap()] {
            assert_eq!(BASE64.decode(key).unwrap().len(), 64);
        }
        assert_eq!(dps.get_enrollment("Dev-1").unwrap(), created);
        // The JSON carries the etag with its quotes, as real DPS does.
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(json["etag"], json!(etag));
        assert!(json["createdDateTimeUtc"].is_string());
        assert!(json.get("registrationState").is_none());
    }

    #[test]
    fn update_keeps_created_and_changes_etag_and_last_updated() {
        let dps = dps();
        let first = dps
            .put_enrollment("dev-1", enrollment("dev-1"), None)
            .wait_stored()
            .unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let mut change = enrollment("dev-1");
        change.device_id = Some("renamed".into());
        let second = dps
            .put_enrollment("dev-1", change, first.etag.as_deref())
            .wait_stored()
            .unwrap();
        assert_eq!(second.created_date_time_utc, first.created_date_time_utc);
        assert_ne!(
            second.last_updated_date_time_utc,
            first.last_updated_date_time_utc
        );
        assert_ne!(second.etag, first.etag);
        assert_eq!(second.device_id.as_deref(), Some("renamed"));
        // The old etag no longer matches.
        let stale = dps
            .put_enrollment("dev-1", enrollment("dev-1"), first.etag.as_deref())
            .wait_stored();
        assert_eq!(code(stale), PRECONDITION_FAILED);
        assert_eq!(
            dps.get_enrollment("dev-1").unwrap().device_id.as_deref(),
            Some("renamed"),
            "a failed precondition changes nothing"
        );
    }

    #[test]
    fn if_match_forms() {
        let dps = dps();
        let mut etag = dps
            .put_enrollment("dev-1", enrollment("dev-1"), None)
            .wait_stored()
            .unwrap()
            .etag
            .unwrap();
        // Each form of the current etag matches (every successful PUT makes a new one).
        let forms: [fn(&str) -> String; 5] = [
            |tag| tag.to_owned(),
            |tag| tag.trim_matches('"').to_owned(),
            |tag| format!("W/{tag}"),
            |tag| format!("  {tag} "),
            |_| "*".to_owned(),
        ];
        for form in forms {
            let put = dps
                .put_enrollment("dev-1", enrollment("dev-1"), Some(&form(&etag)))
                .wait_stored();
            etag = put.unwrap().etag.unwrap();
        }
        let wrong = dps
            .put_enrollment("dev-1", enrollment("dev-1"), Some("\"nope\""))
            .wait_stored();
        assert_eq!(code(wrong), PRECONDITION_FAILED);
        let listed = format!("\"nope\", {etag}");
        assert!(
            dps.put_enrollment("dev-1", enrollment("dev-1"), Some(&listed))
                .wait_stored()
                .is_ok()
        );

        // Absent entity: only `*` may create it.
        let absent = dps
            .put_enrollment("dev-2", enrollment("dev-2"), Some("\"abc\""))
            .wait_stored();
        assert_eq!(code(absent), PRECONDITION_FAILED);
        assert!(dps.individual_enrollment("dev-2").is_none());
        assert!(
            dps.put_enrollment("dev-2", enrollment("dev-2"), Some("*"))
                .wait_stored()
                .is_ok()
        );
    }

    #[test]
    fn put_rejects_mismatched_ids_and_invalid_enrollments() {
        let dps = dps();
        let e = dps
            .put_enrollment("dev-2", enrollment("dev-1"), None)
            .wait_stored();
        assert_eq!(code(e), BAD_REQUEST);
        let mut bad_key = enrollment("dev-1");
        bad_key.attestation = symmetric(Some("not base64!"));
        let e = dps
            .put_enrollment("dev-1", bad_key, None)
            .wait_stored()
            .unwrap_err();
        assert_eq!((e.status(), e.code), (400, BAD_REQUEST));
        assert!(e.message.contains("attestation.symmetricKey.primaryKey"));
        let mut bad_hub = enrollment("dev-1");
        bad_hub.iot_hubs = Some(vec!["elsewhere".into()]);
        assert_eq!(
            code(dps.put_enrollment("dev-1", bad_hub, None).wait_stored()),
            BAD_REQUEST
        );
        assert!(dps.enrollments().is_empty());
    }

    #[test]
    fn read_only_fields_in_the_body_are_ignored() {
        let dps = dps();
        let body: IndividualEnrollment = serde_json::from_value(json!({
            "registrationId": "dev-1",
            "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}},
            "etag": "\"client-made\"",
            "createdDateTimeUtc": "2001-01-01T00:00:00Z",
            "lastUpdatedDateTimeUtc": 42,
            "registrationState": {"registrationId": "dev-1", "status": "assigned"},
            "capabilities": {"iotEdge": true},
        }))
        .unwrap();
        let stored = dps
            .put_enrollment("dev-1", body, None)
            .wait_stored()
            .unwrap();
        assert_ne!(stored.etag.as_deref(), Some("\"client-made\""));
        assert_ne!(
            stored.created_date_time_utc.as_deref(),
            Some("2001-01-01T00:00:00Z")
        );
        assert!(stored.last_updated_date_time_utc.is_some());
        assert_eq!(stored.registration_state, None);
        // Fields the emulator does not interpret survive.
        assert_eq!(stored.extra["capabilities"], json!({"iotEdge": true}));

        // A registrationState of an unknown shape does not make the body invalid.
        let odd: IndividualEnrollment = serde_json::from_value(json!({
            "registrationId": "dev-1",
            "attestation": {"type": "none"},
            "registrationState": {"status": "somethingNew"},
        }))
        .unwrap();
        assert_eq!(odd.registration_state, None);
    }

    #[test]
    fn attestation_mechanisms_round_trip() {
        let dps = dps();
        // Symmetric keys given by the client come back unchanged.
        let mut keyed = enrollment("dev-1");
        keyed.attestation.symmetric_key = Some(SymmetricKeyAttestation {
            primary_key: Some(KEY.into()),
            secondary_key: Some(GROUP_KEY.into()),
        });
        let sent = keyed.attestation.clone();
        dps.put_enrollment("dev-1", keyed, None)
            .wait_stored()
            .unwrap();
        assert_eq!(dps.get_enrollment("dev-1").unwrap().attestation, sent);
        assert_eq!(dps.enrollment_attestation("DEV-1").unwrap(), sent);

        // X.509: a device certificate on an individual enrollment, a CA on a group.
        let root = certs::root_ca("Round Trip Root", 30).unwrap();
        let device = certs::issue_device(&root.to_ca().unwrap(), "x509-dev", 30).unwrap();
        let with_cert = |pem: &str| {
            Some(X509Certificates {
                primary: Some(X509CertificateWithInfo {
                    certificate: Some(pem.to_owned()),
                    info: None,
                }),
                secondary: None,
            })
        };
        let individual = AttestationMechanism {
            kind: AttestationType::X509,
            symmetric_key: None,
            x509: Some(X509Attestation {
                client_certificates: with_cert(&device.cert_pem),
                ..Default::default()
            }),
            tpm: None,
        };
        let mut x509_enrollment = enrollment("x509-dev");
        x509_enrollment.attestation = individual.clone();
        dps.put_enrollment("x509-dev", x509_enrollment, None)
            .wait_stored()
            .unwrap();
        assert_eq!(
            dps.get_enrollment("x509-dev").unwrap().attestation,
            individual
        );
        assert_eq!(dps.enrollment_attestation("x509-dev").unwrap(), individual);

        let signing = AttestationMechanism {
            kind: AttestationType::X509,
            symmetric_key: None,
            x509: Some(X509Attestation {
                signing_certificates: with_cert(&root.cert_pem),
                ..Default::default()
            }),
            tpm: None,
        };
        let mut x509_group = group("x509-group");
        x509_group.attestation = signing.clone();
        dps.put_enrollment_group("x509-group", x509_group, None)
            .wait_stored()
            .unwrap();
        assert_eq!(
            dps.get_enrollment_group("x509-group").unwrap().attestation,
            signing
        );
        assert_eq!(
            dps.enrollment_group_attestation("X509-GROUP").unwrap(),
            signing
        );

        // The group is found from a device chain, and no longer once deleted.
        let chain: Vec<_> = device
            .full_chain_der()
            .iter()
            .map(|der| crate::auth::x509::inspect(der).unwrap())
            .collect();
        let found = dps.x509_groups_for_chain(&chain);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].enrollment_group_id, "x509-group");
        dps.delete_enrollment_group_checked("x509-group", None)
            .wait_stored()
            .unwrap();
        assert!(dps.x509_groups_for_chain(&chain).is_empty());
    }

    #[test]
    fn missing_enrollments_are_404_and_delete_checks_the_etag() {
        let dps = dps();
        assert_eq!(code(dps.get_enrollment("nobody")), ENROLLMENT_NOT_FOUND);
        assert_eq!(
            code(dps.enrollment_attestation("nobody")),
            ENROLLMENT_NOT_FOUND
        );
        assert_eq!(
            code(dps.delete_enrollment_checked("nobody", None).wait_stored()),
            ENROLLMENT_NOT_FOUND
        );
        assert_eq!(
            code(
                dps.delete_enrollment_checked("nobody", Some("*"))
                    .wait_stored()
            ),
            ENROLLMENT_NOT_FOUND
        );
        assert_eq!(dps.get_enrollment("nobody").unwrap_err().status(), 404);

        let etag = dps
            .put_enrollment("dev-1", enrollment("dev-1"), None)
            .wait_stored()
            .unwrap()
            .etag
            .unwrap();
        assert_eq!(
            code(
                dps.delete_enrollment_checked("dev-1", Some("\"other\""))
                    .wait_stored()
            ),
            PRECONDITION_FAILED
        );
        assert!(dps.get_enrollment("dev-1").is_ok());
        dps.delete_enrollment_checked("DEV-1", Some(&etag))
            .wait_stored()
            .unwrap();
        assert_eq!(code(dps.get_enrollment("dev-1")), ENROLLMENT_NOT_FOUND);

        dps.put_enrollment("dev-1", enrollment("dev-1"), None)
            .wait_stored()
            .unwrap();
        dps.delete_enrollment_checked("dev-1", Some("*"))
            .wait_stored()
            .unwrap();
        dps.put_enrollment("dev-1", enrollment("dev-1"), None)
            .wait_stored()
            .unwrap();
        dps.delete_enrollment_checked("dev-1", None)
            .wait_stored()
            .unwrap();
        assert!(dps.enrollments().is_empty());
    }

    #[test]
    fn library_create_or_update_also_sets_etag_and_timestamps() {
        let dps = dps();
        let first = dps
            .create_or_update_enrollment(enrollment("dev-1"))
            .unwrap();
        assert!(first.etag.is_some() && first.created_date_time_utc.is_some());
        let second = dps
            .create_or_update_enrollment(enrollment("dev-1"))
            .unwrap();
        assert_ne!(second.etag, first.etag);
        assert_eq!(second.created_date_time_utc, first.created_date_time_utc);
        let g = dps.create_or_update_enrollment_group(group("g")).unwrap();
        assert!(g.etag.is_some() && g.last_updated_date_time_utc.is_some());
    }

    #[test]
    fn changes_apply_to_the_next_registration() {
        let dps = dps();
        let mut e = enrollment("dev-1");
        e.device_id = Some("first-device".into());
        e.iot_hubs = Some(vec!["hub-a".into()]);
        dps.put_enrollment("dev-1", e, None).wait_stored().unwrap();
        let who = login(&dps, "dev-1", KEY);
        let state = provision(&dps, &who);
        assert_eq!(state.status, RegistrationStatus::Assigned);
        assert_eq!(state.assigned_hub.as_deref(), Some("hub-a"));
        assert_eq!(state.device_id.as_deref(), Some("first-device"));

        // GET shows the registration, in the service API's shape.
        let read = dps.get_enrollment("dev-1").unwrap();
        let shown = read.registration_state.clone().unwrap();
        assert_eq!(shown.assigned_hub.as_deref(), Some("hub-a"));
        assert_eq!(shown.symmetric_key, None);
        assert_eq!(shown.etag, state.etag);
        // PUT of what GET returned works (registrationState is ignored) and applies at once.
        let mut change = read;
        change.provisioning_status = ProvisioningStatus::Disabled;
        let etag = change.etag.clone();
        let updated = dps
            .put_enrollment("dev-1", change, etag.as_deref())
            .wait_stored()
            .unwrap();
        assert!(updated.registration_state.is_some());
        assert_eq!(provision(&dps, &who).status, RegistrationStatus::Disabled);

        // New keys: the old one no longer authenticates, the new one does.
        let mut rekeyed = enrollment("dev-1");
        rekeyed.attestation = symmetric(Some(GROUP_KEY));
        dps.put_enrollment("dev-1", rekeyed, None)
            .wait_stored()
            .unwrap();
        let token = sas::build_token(
            "0ne00000A0A/registrations/dev-1",
            SymmetricKey::from_base64(KEY).unwrap().as_bytes(),
            None,
            u64::MAX / 2,
        );
        assert!(
            auth::authenticate_registration(
                &dps,
                "0ne00000A0A",
                "dev-1",
                Credential::Sas(&token),
                SystemTime::now()
            )
            .is_err()
        );
        let who = login(&dps, "dev-1", GROUP_KEY);
        assert_eq!(provision(&dps, &who).status, RegistrationStatus::Assigned);
    }

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
            assert_eq!(e.code, BAD_REQUEST, "{query}");
            assert!(e.message.contains("SELECT * FROM enrollments"));
        }
        let e = dps
            .query_enrollment_groups("SELECT * FROM enrollments", None, None)
            .unwrap_err();
        assert!(e.message.contains("SELECT * FROM enrollmentGroups"));
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
        assert_eq!((e.status(), e.code), (400, BAD_REQUEST));
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
    fn bulk_enrollments_report_per_item_errors() {
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
}
