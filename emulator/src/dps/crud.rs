//! Enrollment and enrollment-group writes, written once: the two collections differ only in
//! what [`EnrollmentKind`] says (their map, id and etag fields, validation, durable
//! collection and the X.509 group index), so storing, deleting and bulk operations under
//! `If-Match` preconditions are the same code for both.

use std::time::SystemTime;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::Serialize;

use super::Dps;
use super::error::DpsError;
use super::model::{EnrollmentGroup, IndividualEnrollment};
use super::service::{
    BulkEnrollmentOperationError, BulkEnrollmentOperationResult, BulkMode, MAX_BULK_ITEMS,
    Precondition,
};
use super::validate::{self, Invalid, Links, MissingKeys};
use crate::etag;
use crate::pending::Pending;
use crate::timefmt::utc_timestamp;

/// What individual enrollments and enrollment groups differ in.
pub(crate) trait EnrollmentKind: Clone + Serialize + Sized {
    /// Names the entity in messages: `Enrollment 'x'`, `Enrollment group 'x'`.
    const SUBJECT: &'static str;
    /// Names the collection in bulk messages.
    const PLURAL: &'static str;
    fn id(&self) -> &str;
    fn etag(&self) -> Option<&str>;
    fn created(&self) -> Option<&str>;
    fn validate(&mut self, links: &Links<'_>, missing: MissingKeys) -> Result<(), Invalid>;
    /// Sets what DPS owns on every write; `created` is kept from the entity replaced.
    fn stamp(&mut self, etag: String, now: String, created: String);
    fn map(dps: &Dps) -> &DashMap<String, Self>;
    fn submit<'d>(
        dps: &'d Dps,
        key: &str,
        before: Option<Self>,
        after: Option<&Self>,
    ) -> Result<Pending<'d, ()>, DpsError>;
    /// Keeps indexes over the collection in step with a change of one entity.
    fn reindex(_dps: &Dps, _previous: Option<&Self>, _current: Option<&Self>) {}
    /// A failed bulk item, with the id in the field of this kind.
    fn bulk_error(id: String, error: &DpsError) -> BulkEnrollmentOperationError;
}

impl EnrollmentKind for IndividualEnrollment {
    const SUBJECT: &'static str = "Enrollment";
    const PLURAL: &'static str = "enrollments";
    fn id(&self) -> &str {
        &self.registration_id
    }
    fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
    fn created(&self) -> Option<&str> {
        self.created_date_time_utc.as_deref()
    }
    fn validate(&mut self, links: &Links<'_>, missing: MissingKeys) -> Result<(), Invalid> {
        validate::individual_enrollment(self, links, missing)
    }
    fn stamp(&mut self, etag: String, now: String, created: String) {
        // Derived on every read from the registration records, never stored.
        self.registration_state = None;
        self.etag = Some(etag);
        self.last_updated_date_time_utc = Some(now);
        self.created_date_time_utc = Some(created);
    }
    fn map(dps: &Dps) -> &DashMap<String, Self> {
        &dps.enrollments
    }
    fn submit<'d>(
        dps: &'d Dps,
        key: &str,
        before: Option<Self>,
        after: Option<&Self>,
    ) -> Result<Pending<'d, ()>, DpsError> {
        dps.submit_enrollment(key, before, after)
    }
    fn bulk_error(id: String, error: &DpsError) -> BulkEnrollmentOperationError {
        BulkEnrollmentOperationError {
            registration_id: Some(id),
            enrollment_group_id: None,
            error_code: error.code(),
            error_status: error.message().to_owned(),
        }
    }
}

impl EnrollmentKind for EnrollmentGroup {
    const SUBJECT: &'static str = "Enrollment group";
    const PLURAL: &'static str = "enrollment groups";
    fn id(&self) -> &str {
        &self.enrollment_group_id
    }
    fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
    fn created(&self) -> Option<&str> {
        self.created_date_time_utc.as_deref()
    }
    fn validate(&mut self, links: &Links<'_>, missing: MissingKeys) -> Result<(), Invalid> {
        validate::enrollment_group(self, links, missing)
    }
    fn stamp(&mut self, etag: String, now: String, created: String) {
        self.etag = Some(etag);
        self.last_updated_date_time_utc = Some(now);
        self.created_date_time_utc = Some(created);
    }
    fn map(dps: &Dps) -> &DashMap<String, Self> {
        &dps.groups
    }
    fn submit<'d>(
        dps: &'d Dps,
        key: &str,
        before: Option<Self>,
        after: Option<&Self>,
    ) -> Result<Pending<'d, ()>, DpsError> {
        dps.submit_group(key, before, after)
    }
    fn reindex(dps: &Dps, previous: Option<&Self>, current: Option<&Self>) {
        if let Some(previous) = previous {
            dps.x509_groups.remove(previous);
        }
        if let Some(current) = current {
            dps.x509_groups.insert(current);
        }
    }
    fn bulk_error(id: String, error: &DpsError) -> BulkEnrollmentOperationError {
        BulkEnrollmentOperationError {
            registration_id: None,
            enrollment_group_id: Some(id),
            error_code: error.code(),
            error_status: error.message().to_owned(),
        }
    }
}

/// `Enrollment 'x' not found` / `Enrollment group 'x' not found`.
pub(crate) fn not_found<E: EnrollmentKind>(id: &str) -> DpsError {
    DpsError::not_found(format!("{} '{id}' not found", E::SUBJECT))
}

impl Dps {
    /// Validates and stores an entity under `precondition`, with a new etag and timestamps
    /// (`createdDateTimeUtc` kept from the entity it replaces). Returns what was stored.
    pub(crate) fn write<E: EnrollmentKind>(
        &self,
        mut entity: E,
        precondition: Precondition<'_>,
    ) -> Result<Pending<'_, E>, DpsError> {
        self.links(|links| entity.validate(links, MissingKeys::Random))
            .map_err(|bad| DpsError::bad_request(bad.to_string()))?;
        let subject = format!("{} '{}'", E::SUBJECT, entity.id());
        let now = utc_timestamp(SystemTime::now());
        let etag = etag::enrollment();
        // Checked, submitted and published under the entry's lock: of two writers with the
        // same If-Match only one can win, and the store sees them in the map's order.
        let key = entity.id().to_ascii_lowercase();
        let pending = match E::map(self).entry(key.clone()) {
            Entry::Occupied(mut stored) => {
                precondition.check(Some(stored.get().etag()), &subject)?;
                let created = stored
                    .get()
                    .created()
                    .map_or_else(|| now.clone(), str::to_owned);
                entity.stamp(etag, now, created);
                let pending = E::submit(self, &key, Some(stored.get().clone()), Some(&entity))?;
                let previous = stored.insert(entity.clone());
                E::reindex(self, Some(&previous), Some(&entity));
                pending
            }
            Entry::Vacant(slot) => {
                precondition.check(None, &subject)?;
                entity.stamp(etag, now.clone(), now);
                let pending = E::submit(self, &key, None, Some(&entity))?;
                slot.insert(entity.clone());
                E::reindex(self, None, Some(&entity));
                pending
            }
        };
        Ok(pending.map(|()| entity))
    }

    /// Deletes the entity stored under `id` (any case) if `precondition` allows.
    pub(crate) fn remove<E: EnrollmentKind>(
        &self,
        id: &str,
        precondition: Precondition<'_>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        let key = id.to_ascii_lowercase();
        match E::map(self).entry(key.clone()) {
            Entry::Vacant(_) => Err(not_found::<E>(id)),
            Entry::Occupied(stored) => {
                let subject = format!("{} '{id}'", E::SUBJECT);
                precondition.check(Some(stored.get().etag()), &subject)?;
                let pending = E::submit(self, &key, Some(stored.get().clone()), None)?;
                let (_, previous) = stored.remove_entry();
                E::reindex(self, Some(&previous), None);
                Ok(pending)
            }
        }
    }

    /// A bulk operation: items are applied one by one, in order; one item failing does not
    /// undo or stop the others (each failure is reported in `errors`). The result is durable
    /// when every item's write is; if one cannot be made durable, the whole request fails and
    /// every item's change is undone.
    pub(crate) fn bulk<E: EnrollmentKind>(
        &self,
        mode: BulkMode,
        items: Vec<E>,
    ) -> Result<Pending<'_, BulkEnrollmentOperationResult>, DpsError> {
        if items.len() > MAX_BULK_ITEMS {
            return Err(DpsError::bad_request(format!(
                "A bulk operation takes at most {MAX_BULK_ITEMS} {}; {} were sent",
                E::PLURAL,
                items.len()
            )));
        }
        let mut errors = Vec::new();
        let mut written = Pending::ready(());
        for item in items {
            let id = item.id().to_owned();
            let etag = item.etag().map(str::to_owned);
            let precondition = match mode {
                BulkMode::Create => Precondition::Absent,
                BulkMode::Update => Precondition::Present,
                BulkMode::UpdateIfMatchETag => Precondition::PresentMatching(etag.as_deref()),
                BulkMode::Delete => Precondition::Unconditional,
            };
            let outcome = match mode {
                BulkMode::Delete => self.remove::<E>(&id, precondition),
                _ => self.write(item, precondition).map(|p| p.map(drop)),
            };
            match outcome {
                Ok(item) => written = written.join(item).map(drop),
                Err(e) => errors.push(E::bulk_error(id, &e)),
            }
        }
        Ok(written.map(|()| BulkEnrollmentOperationResult {
            is_successful: errors.is_empty(),
            errors,
        }))
    }
}
