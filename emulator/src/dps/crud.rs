//! Enrollment and enrollment-group writes, written once: the two collections differ only in
//! what [`EnrollmentKind`] says (their map, id field, wire model, durable collection and the
//! X.509 group index); what they share is the [`EnrollmentCore`], so parsing, storing,
//! deleting and bulk operations under `If-Match` preconditions are the same code for both.

use std::time::SystemTime;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::Serialize;

use super::Dps;
use super::enrollment::{EnrollmentCore, Group, Individual};
use super::error::DpsError;
use super::model::{EnrollmentGroup, IndividualEnrollment};
use super::service::{
    BulkEnrollmentOperationError, BulkEnrollmentOperationResult, BulkMode, MAX_BULK_ITEMS,
    Precondition,
};
use super::validate::Invalid;
use crate::etag;
use crate::pending::Pending;
use crate::timefmt::utc_timestamp;

/// What individual enrollments and enrollment groups differ in.
pub(crate) trait EnrollmentKind:
    Clone + Serialize + Sized + for<'w> TryFrom<&'w Self::Wire, Error = Invalid>
{
    /// The service API's JSON model.
    type Wire;
    /// Names the entity in messages: `Enrollment 'x'`, `Enrollment group 'x'`.
    const SUBJECT: &'static str;
    /// Names the collection in bulk messages.
    const PLURAL: &'static str;
    fn id(&self) -> &str;
    fn core(&self) -> &EnrollmentCore;
    fn core_mut(&mut self) -> &mut EnrollmentCore;
    /// The id and etag of a wire item, for bulk operations (a delete does not parse it).
    fn wire_id(wire: &Self::Wire) -> &str;
    fn wire_etag(wire: &Self::Wire) -> Option<&str>;
    fn map(dps: &Dps) -> &DashMap<String, Self>;
    fn submit<'d>(
        dps: &'d Dps,
        key: &str,
        before: Option<&Self>,
        after: Option<&Self>,
    ) -> Result<Pending<'d, ()>, DpsError>;
    /// Keeps indexes over the collection in step with a change of one entity.
    fn reindex(_dps: &Dps, _previous: Option<&Self>, _current: Option<&Self>) {}
    /// Bulk errors name a group's id in `enrollmentGroupId`, an enrollment's in
    /// `registrationId`.
    const IS_GROUP: bool;

    /// A failed bulk item, with the id in the field of this kind.
    fn bulk_error(id: String, error: &DpsError) -> BulkEnrollmentOperationError {
        let (registration_id, enrollment_group_id) = if Self::IS_GROUP {
            (None, Some(id))
        } else {
            (Some(id), None)
        };
        BulkEnrollmentOperationError {
            registration_id,
            enrollment_group_id,
            error_code: error.code(),
            error_status: error.message().to_owned(),
        }
    }
}

/// Implements [`EnrollmentKind`] from what differs: the id field (same name in the domain
/// type and the JSON model), the map, the durable submit, the names in messages, and any
/// overridden method.
macro_rules! enrollment_kind {
    (
        $domain:ident, $wire:ident, id: $id:ident, map: $map:ident, submit: $submit:ident,
        subject: $subject:literal, plural: $plural:literal, is_group: $group:literal
        $(, $extra:item)* $(,)?
    ) => {
        impl EnrollmentKind for $domain {
            type Wire = $wire;
            const SUBJECT: &'static str = $subject;
            const PLURAL: &'static str = $plural;
            const IS_GROUP: bool = $group;
            fn id(&self) -> &str {
                &self.$id
            }
            fn core(&self) -> &EnrollmentCore {
                &self.core
            }
            fn core_mut(&mut self) -> &mut EnrollmentCore {
                &mut self.core
            }
            fn wire_id(wire: &$wire) -> &str {
                &wire.$id
            }
            fn wire_etag(wire: &$wire) -> Option<&str> {
                wire.etag.as_deref()
            }
            fn map(dps: &Dps) -> &DashMap<String, Self> {
                &dps.$map
            }
            fn submit<'d>(
                dps: &'d Dps,
                key: &str,
                before: Option<&Self>,
                after: Option<&Self>,
            ) -> Result<Pending<'d, ()>, DpsError> {
                dps.$submit(key, before, after)
            }
            $($extra)*
        }
    };
}

enrollment_kind!(
    Individual, IndividualEnrollment, id: registration_id, map: enrollments,
    submit: submit_enrollment, subject: "Enrollment", plural: "enrollments", is_group: false,
);

enrollment_kind!(
    Group, EnrollmentGroup, id: enrollment_group_id, map: groups, submit: submit_group,
    subject: "Enrollment group", plural: "enrollment groups", is_group: true,
    fn reindex(dps: &Dps, previous: Option<&Self>, current: Option<&Self>) {
        dps.group_keys.invalidate();
        if let Some(previous) = previous {
            dps.x509_groups.remove(previous);
        }
        if let Some(current) = current {
            dps.x509_groups.insert(current);
        }
    },
);

/// `Enrollment 'x'` / `Enrollment group 'x'`, rendered only when an error names it.
struct Subject<'a, E>(&'a str, std::marker::PhantomData<E>);

impl<E: EnrollmentKind> std::fmt::Display for Subject<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} '{}'", E::SUBJECT, self.0)
    }
}

/// `Enrollment 'x' not found` / `Enrollment group 'x' not found`.
pub(crate) fn not_found<E: EnrollmentKind>(id: &str) -> DpsError {
    DpsError::not_found(format!("{} '{id}' not found", E::SUBJECT))
}

impl Dps {
    /// The boundary: parses a wire enrollment or group (symmetric keys left out are
    /// generated) and checks the hubs and CA certificates it names.
    pub(crate) fn parse<E: EnrollmentKind>(&self, wire: &E::Wire) -> Result<E, DpsError> {
        let entity = E::try_from(wire).map_err(|bad| DpsError::bad_request(bad.to_string()))?;
        self.links(|links| entity.core().check_links(links))
            .map_err(|bad| DpsError::bad_request(bad.to_string()))?;
        Ok(entity)
    }

    /// Stores a fixture's enrollments or groups, parsed and checked when the fixtures were
    /// loaded (against the same hubs and CA certificates), without parsing them again; they
    /// are all written at the same instant.
    pub(crate) fn seed<E: EnrollmentKind>(&self, entities: Vec<E>) -> Result<(), DpsError> {
        let now = utc_timestamp(SystemTime::now());
        for entity in entities {
            self.store(entity, Precondition::Unconditional, now.clone(), |_| ())?
                .wait()?;
        }
        Ok(())
    }

    /// Stores an entity under `precondition`, with a new etag and timestamps
    /// (`createdDateTimeUtc` kept from the entity it replaces). Returns what was stored.
    pub(crate) fn write<E: EnrollmentKind>(
        &self,
        entity: E,
        precondition: Precondition<'_>,
    ) -> Result<Pending<'_, E>, DpsError> {
        self.store(
            entity,
            precondition,
            utc_timestamp(SystemTime::now()),
            E::clone,
        )
    }

    /// [`Dps::write`], returning `stored(what was stored)` (a copy for callers that answer
    /// with it, nothing for seeding).
    fn store<E: EnrollmentKind, R>(
        &self,
        mut entity: E,
        precondition: Precondition<'_>,
        now: String,
        stored_copy: impl FnOnce(&E) -> R,
    ) -> Result<Pending<'_, R>, DpsError> {
        let etag = etag::enrollment();
        // Checked, submitted and published under the entry's lock: of two writers with the
        // same If-Match only one can win, and the store sees them in the map's order.
        let key = entity.id().to_ascii_lowercase();
        let pending = match E::map(self).entry(key) {
            Entry::Occupied(mut stored) => {
                let current = stored.get().core();
                let subject = Subject::<E>(entity.id(), std::marker::PhantomData);
                precondition.check(Some(current.etag.as_deref()), &subject)?;
                let created = current
                    .created_date_time_utc
                    .clone()
                    .unwrap_or_else(|| now.clone());
                entity.core_mut().stamp(etag, now, created);
                let pending = E::submit(self, stored.key(), Some(stored.get()), Some(&entity))?;
                let result = stored_copy(&entity);
                let previous = stored.insert(entity);
                E::reindex(self, Some(&previous), Some(stored.get()));
                pending.map(|()| result)
            }
            Entry::Vacant(slot) => {
                let subject = Subject::<E>(entity.id(), std::marker::PhantomData);
                precondition.check(None, &subject)?;
                entity.core_mut().stamp(etag, now.clone(), now);
                let pending = E::submit(self, slot.key(), None, Some(&entity))?;
                let result = stored_copy(&entity);
                let inserted = slot.insert(entity);
                E::reindex(self, None, Some(inserted.value()));
                pending.map(|()| result)
            }
        };
        Ok(pending)
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
                precondition.check(Some(stored.get().core().etag.as_deref()), &subject)?;
                let pending = E::submit(self, &key, Some(stored.get()), None)?;
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
        items: Vec<E::Wire>,
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
            let id = E::wire_id(&item).to_owned();
            let etag = E::wire_etag(&item).map(str::to_owned);
            let precondition = match mode {
                BulkMode::Create => Precondition::Absent,
                BulkMode::Update => Precondition::Present,
                BulkMode::UpdateIfMatchETag => Precondition::PresentMatching(etag.as_deref()),
                BulkMode::Delete => Precondition::Unconditional,
            };
            let outcome = match mode {
                BulkMode::Delete => self.remove::<E>(&id, precondition),
                _ => self
                    .parse::<E>(&item)
                    .and_then(|entity| self.write(entity, precondition))
                    .map(|p| p.map(drop)),
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
