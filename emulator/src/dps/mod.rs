//! Device Provisioning Service domain: enrollments, enrollment groups, registration records
//! and the registration state machine, independent of any transport. MQTT (and later HTTPS)
//! hand in an authenticated [`RegistrationIdentity`](attestation::RegistrationIdentity) and
//! a request body, and send back what [`Dps::register`] / [`Dps::operation_status`] return.
//! The service REST API's rules (ETags, queries, bulk operations) are in [`service`].
//!
//! Enrollments enter as the service API's JSON models ([`model`]) and are parsed once, at that
//! boundary, into [`enrollment::Individual`] / [`enrollment::Group`] around one
//! [`enrollment::EnrollmentCore`] whose [`Attestation`] holds decoded keys, parsed certificates
//! or TPM public areas; everything past the boundary reads those, and `to_wire()` renders the
//! JSON back as it was given.

pub(crate) mod attestation;
mod crud;
pub(crate) mod custom_allocation;
mod durable;
mod enrolled_tpm;
pub(crate) mod enrollment;
pub(crate) mod enrollment_attestation;
pub(crate) mod enrollment_x509;
pub(crate) mod error;
mod group_index;
mod group_keys;
pub(crate) mod model;
pub(crate) mod registration;
pub(crate) mod service;
pub(crate) mod tpm_challenge;
pub(crate) mod validate;
mod webhook_http;

pub(crate) use webhook_http::HttpWebhook;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::auth::policy::SharedAccessPolicy;
use crate::auth::x509::CertificateInfo;
use crate::certificates::CertificateStore;
use crate::hub::Hubs;
use custom_allocation::AllocationWebhook;
use enrollment::{Group, Individual};
use error::DpsError;
use group_index::X509GroupIndex;
use group_keys::GroupKeyIndex;
use model::{AllocationPolicy, DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment};
use registration::{Operation, RegistrationRecord};
use service::Precondition;
use validate::Links;

/// Which enrollment vouched for a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EnrollmentRef {
    Individual(String),
    Group(String),
}

/// How fast registrations complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpsTiming {
    /// `retry-after` (seconds) sent with `assigning` responses.
    pub retry_after: u32,
    /// How long an operation stays `assigning` before a poll can complete it.
    pub assignment_delay: Duration,
}

impl Default for DpsTiming {
    fn default() -> Self {
        DpsTiming {
            retry_after: 1,
            assignment_delay: Duration::ZERO,
        }
    }
}

/// One DPS instance.
pub struct Dps {
    id_scope: String,
    host_name: String,
    policies: Vec<SharedAccessPolicy>,
    hubs: Arc<Hubs>,
    timing: DpsTiming,
    /// Keys are lower-cased: registration and group ids are case-insensitive.
    enrollments: DashMap<String, Individual>,
    groups: DashMap<String, Group>,
    registrations: DashMap<String, RegistrationRecord>,
    operations: DashMap<String, Operation>,
    /// The newest operation per registration, so superseded ones can be dropped.
    latest_operation: DashMap<String, String>,
    certificates: CertificateStore,
    x509_groups: X509GroupIndex,
    /// Symmetric-key groups keyed for the registration hot path.
    group_keys: GroupKeyIndex,
    default_allocation: AllocationPolicy,
    location: Option<String>,
    /// Where changes are made durable (nowhere unless `--data-dir`).
    persistence: Arc<crate::persistence::Persistence>,
    /// Makes custom-allocation webhook calls.
    webhook: Arc<dyn AllocationWebhook>,
    /// Identity keys issued to TPM devices, until they sign with them.
    tpm_challenges: tpm_challenge::TpmChallenges,
    /// Injected faults, consulted first by register and poll (`crate::faults`): the hubs'
    /// registry, so one list serves DPS and hub rules.
    faults: crate::faults::Faults,
    /// The hubs' clock (`crate::clock`): assignment delays age with it.
    clock: crate::clock::Clock,
}

impl Dps {
    pub fn new(
        id_scope: &str,
        host_name: &str,
        policies: Vec<SharedAccessPolicy>,
        hubs: Arc<Hubs>,
        timing: DpsTiming,
    ) -> Dps {
        Dps {
            id_scope: id_scope.to_owned(),
            host_name: host_name.to_owned(),
            policies,
            timing,
            enrollments: DashMap::new(),
            groups: DashMap::new(),
            registrations: DashMap::new(),
            operations: DashMap::new(),
            latest_operation: DashMap::new(),
            certificates: CertificateStore::default(),
            persistence: Arc::default(),
            x509_groups: X509GroupIndex::default(),
            group_keys: GroupKeyIndex::default(),
            default_allocation: AllocationPolicy::Hashed,
            location: None,
            webhook: Arc::new(HttpWebhook),
            tpm_challenges: tpm_challenge::TpmChallenges::default(),
            faults: hubs.faults().clone(),
            clock: hubs.clock().clone(),
            hubs,
        }
    }

    /// The emulator's clock (`crate::clock`), shared with the hubs.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    /// The fault registry (shared with the hubs) tests inject faults into (`Emulator::faults`).
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.faults
    }

    /// The injected fault (`crate::faults`) that hits `operation` on this DPS for `id` — a
    /// service request's path — if any. A rule names the DPS by its id scope.
    pub(crate) fn fault(
        &self,
        operation: crate::faults::FaultOperation,
        id: &str,
    ) -> Option<crate::faults::FaultHit> {
        self.faults.check(operation, &[self.id_scope()], id)
    }

    /// Custom-allocation webhook calls go through `webhook` instead of HTTP (a test's fake).
    pub fn with_webhook(mut self, webhook: Arc<dyn AllocationWebhook>) -> Dps {
        self.webhook = webhook;
        self
    }

    /// The instance's default allocation policy and its location (for `geoLatency`).
    pub fn with_allocation(mut self, default: AllocationPolicy, location: Option<String>) -> Dps {
        self.default_allocation = default;
        self.location = location;
        self
    }

    /// Room for this many enrollments and groups (a large fixture's), so seeding them does not
    /// grow and rehash the maps over and over.
    pub fn with_capacity(mut self, enrollments: usize, groups: usize) -> Dps {
        self.enrollments = DashMap::with_capacity(enrollments);
        self.groups = DashMap::with_capacity(groups);
        self
    }

    /// CA certificates uploaded to this DPS instance.
    pub fn certificates(&self) -> &CertificateStore {
        &self.certificates
    }

    /// X.509 enrollment groups a device with this chain (leaf first) may belong to, in the
    /// documented order: the group of the first intermediate, then the next, up to the root
    /// (which the device may not have sent: then its issuer name is used). Looked up by index,
    /// never by scanning every group.
    pub fn x509_groups_for_chain(&self, chain: &[CertificateInfo]) -> Vec<Group> {
        let mut ids: Vec<String> = Vec::new();
        let mut add = |found: Vec<String>| {
            for id in found {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        };
        for cert in chain.iter().skip(1) {
            add(self.x509_groups.by_thumbprint(&cert.sha256_thumbprint));
            for name in self
                .certificates
                .names_matching(Some(&cert.sha256_thumbprint), None)
            {
                add(self.x509_groups.by_ca_name(&name));
            }
        }
        if let Some(top) = chain.last() {
            add(self.x509_groups.by_subject(&top.issuer));
            for name in self.certificates.names_matching(None, Some(&top.issuer)) {
                add(self.x509_groups.by_ca_name(&name));
            }
        }
        ids.iter().filter_map(|id| self.group(id)).collect()
    }

    fn links<T>(&self, check: impl FnOnce(&Links<'_>) -> T) -> T {
        let hub_exists = |h: &str| self.hubs.get(h).is_some();
        let ca_exists = |name: &str| self.certificates.get(name).is_some();
        check(&Links {
            hub_exists: &hub_exists,
            ca_exists: &ca_exists,
        })
    }

    pub fn id_scope(&self) -> &str {
        &self.id_scope
    }

    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    pub fn policies(&self) -> &[SharedAccessPolicy] {
        &self.policies
    }

    pub fn hubs(&self) -> &Arc<Hubs> {
        &self.hubs
    }

    pub fn timing(&self) -> DpsTiming {
        self.timing
    }

    /// The individual enrollment for `registration_id` (any case), parsed.
    pub fn individual(&self, registration_id: &str) -> Option<Individual> {
        self.enrollments
            .get(&registration_id.to_ascii_lowercase())
            .map(|e| e.clone())
    }

    /// The enrollment group `group_id` (any case), parsed.
    pub fn group(&self, group_id: &str) -> Option<Group> {
        self.groups
            .get(&group_id.to_ascii_lowercase())
            .map(|g| g.clone())
    }

    /// The individual enrollment for `registration_id`, as the service API's JSON model.
    pub fn individual_enrollment(&self, registration_id: &str) -> Option<IndividualEnrollment> {
        self.individual(registration_id).map(|e| e.to_wire())
    }

    /// The enrollment group `group_id`, as the service API's JSON model.
    pub fn enrollment_group(&self, group_id: &str) -> Option<EnrollmentGroup> {
        self.group(group_id).map(|g| g.to_wire())
    }

    /// Every individual enrollment, by registration id, as JSON models.
    pub fn enrollments(&self) -> Vec<IndividualEnrollment> {
        let mut all: Vec<_> = self.enrollments.iter().map(|e| e.to_wire()).collect();
        // By key: sorting the large wire structs moves them around; the keys sort in place.
        all.sort_by_cached_key(|e| e.registration_id.clone());
        all
    }

    /// Every enrollment group, by id, as JSON models.
    pub fn enrollment_groups(&self) -> Vec<EnrollmentGroup> {
        let mut all: Vec<_> = self.groups.iter().map(|g| g.to_wire()).collect();
        all.sort_by_cached_key(|g| g.enrollment_group_id.clone());
        all
    }

    /// How many individual enrollments there are (without rendering them).
    pub fn enrollment_count(&self) -> usize {
        self.enrollments.len()
    }

    /// How many enrollment groups there are.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The symmetric-key group whose derived key made `signature` for `registration_id`
    /// (`Some(None)`: none did, or the signature is not base64; `None`: there are no
    /// symmetric-key groups). The group the
    /// device verified against last time, or registered through, is tried first.
    pub(crate) fn symmetric_key_group_for(
        &self,
        registration_id: &str,
        signature: Option<&crate::auth::sas::SignatureCheck<'_>>,
    ) -> Option<Option<String>> {
        let previous = self
            .registrations
            .get(&registration_id.to_ascii_lowercase())
            .and_then(|r| match &r.enrollment {
                EnrollmentRef::Group(g) => Some(g.clone()),
                EnrollmentRef::Individual(_) => None,
            });
        self.group_keys.find(
            &self.groups,
            registration_id,
            previous.as_deref(),
            signature,
        )
    }

    /// Creates or replaces an individual enrollment; missing symmetric keys are generated and
    /// a new etag and timestamps are set (as the service API's PUT does, without `If-Match`).
    /// Later registrations see the change immediately. A library call: it returns once the
    /// change is durable, blocking for about one fsync with `--data-dir` (transports use
    /// [`Dps::put_enrollment`] and await its [`Pending`](crate::pending::Pending)).
    pub fn create_or_update_enrollment(
        &self,
        enrollment: IndividualEnrollment,
    ) -> Result<IndividualEnrollment, DpsError> {
        let parsed: Individual = self.parse(&enrollment)?;
        let stored = self.write(parsed, Precondition::Unconditional)?.wait()?;
        Ok(stored.to_wire())
    }

    /// Creates or replaces an enrollment group, like [`Dps::create_or_update_enrollment`].
    pub fn create_or_update_enrollment_group(
        &self,
        group: EnrollmentGroup,
    ) -> Result<EnrollmentGroup, DpsError> {
        let parsed: Group = self.parse(&group)?;
        let stored = self.write(parsed, Precondition::Unconditional)?.wait()?;
        Ok(stored.to_wire())
    }

    /// Deletes an individual enrollment; false when there was none or the deletion could not
    /// be stored. Blocks like [`Dps::create_or_update_enrollment`].
    pub fn delete_enrollment(&self, registration_id: &str) -> bool {
        self.remove::<Individual>(registration_id, Precondition::Unconditional)
            .is_ok_and(|pending| pending.wait().is_ok())
    }

    /// Deletes an enrollment group, like [`Dps::delete_enrollment`].
    pub fn delete_enrollment_group(&self, group_id: &str) -> bool {
        self.remove::<Group>(group_id, Precondition::Unconditional)
            .is_ok_and(|pending| pending.wait().is_ok())
    }

    /// The registration record of a device, as the service API's `DeviceRegistrationState`.
    pub fn registration(&self, registration_id: &str) -> Option<DeviceRegistrationState> {
        self.registrations
            .get(&registration_id.to_ascii_lowercase())
            .map(|r| r.state.clone())
    }

    pub fn registrations(&self) -> Vec<DeviceRegistrationState> {
        let mut all: Vec<_> = self.registrations.iter().map(|r| r.state.clone()).collect();
        all.sort_by(|a, b| a.registration_id.cmp(&b.registration_id));
        all
    }
}
