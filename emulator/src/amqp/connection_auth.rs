//! What one AMQP connection has proven, and for how long. SASL `PLAIN` and every CBS
//! `put-token` add a grant (a token renewed for the same audience replaces the older one);
//! a link asks here whether the connection may open it and watches until the grant that
//! allowed it expires, then detaches with `amqp:unauthorized-access`.
//!
//! The grants come only from [`crate::auth`] ([`ServiceGrant`], [`DeviceIdentity`]) and the
//! DPS attestation decision ([`RegistrationIdentity`], from SASL `PLAIN` with a registration
//! token or from the TLS client certificate), so an unverified claim cannot authorise a link.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;

use crate::auth::ServiceGrant;
use crate::dps::attestation::RegistrationIdentity;
use crate::hub::DeviceIdentity;

/// How a grant was obtained (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantSource {
    SaslPlain,
    Cbs,
    /// The TLS client certificate (DPS X.509 registration).
    ClientCertificate,
    /// The SASL `TPM` challenge exchange (DPS TPM registration).
    SaslTpm,
}

/// One proven credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// A shared-access-policy token for hub `hub` (host name).
    Service {
        hub: String,
        grant: ServiceGrant,
        source: GrantSource,
    },
    /// A device or module token (device links are a later issue; the scope is kept).
    Device(DeviceIdentity),
    /// A device proven to DPS for registration `identity.registration_id()` in `id_scope`:
    /// it may open the DPS links of that registration and nothing else.
    Registration {
        id_scope: String,
        identity: RegistrationIdentity,
        source: GrantSource,
    },
}

impl Grant {
    /// The grant with its expiry moved `offset` later: into the frame of the credential clock
    /// (`Hubs::credential_clock`) when that ran `offset` ahead as the credential was presented,
    /// so its remaining life is the one the client meant, and ages with that clock from then on.
    fn aged(self, offset: Duration) -> Grant {
        match self {
            Grant::Service { hub, grant, source } => Grant::Service {
                hub,
                grant: grant.shifted(offset),
                source,
            },
            Grant::Device(identity) => Grant::Device(identity.shifted(offset)),
            Grant::Registration {
                id_scope,
                identity,
                source,
            } => Grant::Registration {
                id_scope,
                identity: identity.shifted(offset),
                source,
            },
        }
    }

    pub(crate) fn expires_at(&self) -> SystemTime {
        match self {
            Grant::Service { grant, .. } => grant.expires_at(),
            Grant::Device(identity) => identity.expires_at().unwrap_or(SystemTime::UNIX_EPOCH),
            // A registration credential without an end (none today) lasts for the connection.
            Grant::Registration { identity, .. } => identity
                .expires_at()
                // Beyond any offset the credential clock may have, in whose frame it is compared.
                .unwrap_or_else(|| SystemTime::now() + crate::clock::MAX_OFFSET + MAX_WATCH_STEP),
        }
    }
}

/// What the connection's peer looks like below AMQP.
#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    pub remote: SocketAddr,
    /// The TLS client chain, leaf first (empty without one).
    pub certificates: Vec<CertificateDer<'static>>,
    /// The TLS server name the client asked for (SNI), lower-case.
    pub server_name: Option<String>,
}

/// A link's permission: which hub, under which policy, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceAccess {
    pub hub: String,
    pub policy: String,
    pub expires_at: SystemTime,
}

/// Why a link may not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(pub String);

/// The grants of one connection.
#[derive(Debug)]
pub(crate) struct ConnectionAuth {
    peer: PeerInfo,
    grants: Mutex<Vec<Grant>>,
    /// Set when SASL succeeded only so that the refusal can come the way the service sends
    /// it: the connection is closed with `amqp:unauthorized-access` and this description
    /// right after `open` (DPS, see [`super::dps_sasl`]).
    open_refusal: Mutex<Option<String>>,
    /// The clock credentials age in (`Hubs::credential_clock`): grants are kept, and
    /// checked, in its frame.
    clock: crate::clock::Clock,
}

/// Longest single sleep while watching an expiry, so a clock change is noticed eventually.
const MAX_WATCH_STEP: Duration = Duration::from_secs(3600);

impl ConnectionAuth {
    pub(crate) fn new(peer: PeerInfo, clock: crate::clock::Clock) -> ConnectionAuth {
        ConnectionAuth {
            peer,
            grants: Mutex::new(Vec::new()),
            open_refusal: Mutex::new(None),
            clock,
        }
    }

    /// The time the grants are checked against: the credential clock, in whose frame they
    /// are kept (a credential is validated by the wall clock when presented, then recorded
    /// with [`ConnectionAuth::add`]).
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// How far the credential clock runs ahead: what a credential judged now by the wall
    /// clock is shifted by to be kept in its frame.
    pub(crate) fn clock_offset(&self) -> Duration {
        self.clock.offset()
    }

    pub(crate) fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Grant>> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a grant, just validated by the wall clock; one for the same hub and resource
    /// (or device) replaces the older. Its expiry is moved into the credential clock's frame.
    pub(crate) fn add(&self, grant: Grant) {
        let grant = grant.aged(self.clock.offset());
        let mut grants = self.lock();
        grants.retain(|g| !same_scope(g, &grant));
        grants.push(grant);
    }

    /// Marks the connection to be closed with `amqp:unauthorized-access` and `description`
    /// as soon as it is open.
    pub(crate) fn refuse_after_open(&self, description: String) {
        *self.open_refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(description);
    }

    /// The description to close the just-opened connection with, if it is refused.
    pub(crate) fn open_refusal(&self) -> Option<String> {
        self.open_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every grant, expired ones included (the Event Hubs view checks its own audiences).
    pub(crate) fn grants(&self) -> Vec<Grant> {
        self.lock().clone()
    }

    /// Whether anything was ever proven on this connection.
    #[cfg(test)]
    pub(crate) fn has_any_grant(&self) -> bool {
        !self.lock().is_empty()
    }

    /// May this connection use a service node that needs `right`? `hint` is a host the
    /// link named (full-URL address) or the TLS server name; grants for it are preferred.
    /// `resource`, when given (`{host}/{path}`), must be covered by the token's resource.
    pub(crate) fn service_access(
        &self,
        hint: Option<&str>,
        right: &str,
        resource: Option<&str>,
        now: SystemTime,
    ) -> Result<ServiceAccess, Refusal> {
        let services: Vec<(String, ServiceGrant)> = self
            .lock()
            .iter()
            .filter_map(|g| match g {
                Grant::Service { hub, grant, .. } => Some((hub.clone(), grant.clone())),
                Grant::Device(_) | Grant::Registration { .. } => None,
            })
            .collect();
        if services.is_empty() {
            return Err(Refusal(
                "no service credential on this connection: put a shared access policy token on $cbs first (or use SASL PLAIN)".into(),
            ));
        }
        let live: Vec<&(String, ServiceGrant)> = services
            .iter()
            .filter(|(_, g)| g.expires_at() > now)
            .collect();
        if live.is_empty() {
            return Err(Refusal(
                "the token authorising this connection has expired".into(),
            ));
        }
        let covering: Vec<&(String, ServiceGrant)> = live
            .into_iter()
            .filter(|(_, g)| resource.is_none_or(|r| g.covers(r)))
            .collect();
        if covering.is_empty() {
            return Err(Refusal(format!(
                "no token on this connection covers '{}'",
                resource.unwrap_or_default()
            )));
        }
        let with_right: Vec<&(String, ServiceGrant)> = covering
            .iter()
            .copied()
            .filter(|(_, g)| g.grants(right))
            .collect();
        let Some(first) = with_right.first() else {
            let policies: Vec<&str> = covering.iter().map(|(_, g)| g.policy()).collect();
            return Err(Refusal(format!(
                "policy '{}' does not grant {right}",
                policies.join("', '")
            )));
        };
        let hub = hint
            .and_then(|h| {
                with_right
                    .iter()
                    .find(|(hub, _)| hub.eq_ignore_ascii_case(h))
            })
            .unwrap_or(first)
            .0
            .clone();
        // The grant of this hub that lasts longest decides how long the use may go on.
        let best = with_right
            .iter()
            .filter(|(h, _)| *h == hub)
            .max_by_key(|(_, g)| g.expires_at());
        Ok(ServiceAccess {
            expires_at: best.map_or(now, |(_, g)| g.expires_at()),
            policy: best.map(|(_, g)| g.policy().to_owned()).unwrap_or_default(),
            hub,
        })
    }

    /// The live DPS registration grant for `registration_id` in `id_scope` (both compared
    /// case-insensitively, as DPS does), if this connection proved one.
    pub(crate) fn registration(
        &self,
        id_scope: &str,
        registration_id: &str,
        now: SystemTime,
    ) -> Option<RegistrationIdentity> {
        self.lock().iter().find_map(|g| match g {
            Grant::Registration {
                id_scope: scope,
                identity,
                ..
            } if scope.eq_ignore_ascii_case(id_scope)
                && identity
                    .registration_id()
                    .eq_ignore_ascii_case(registration_id)
                && g.expires_at() > now =>
            {
                Some(identity.clone())
            }
            _ => None,
        })
    }

    /// Resolves once `still_allowed` no longer finds a live grant: sleeps until the current
    /// expiry by the credential clock (an advance wakes it), then asks again (a renewed
    /// token extends the wait).
    pub(crate) async fn until_expired<F>(&self, still_allowed: F)
    where
        F: Fn(&ConnectionAuth, SystemTime) -> Option<SystemTime>,
    {
        loop {
            let now = self.clock.now();
            let Some(expires_at) = still_allowed(self, now) else {
                return;
            };
            let wait = expires_at
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(MAX_WATCH_STEP);
            // A few milliseconds past the instant, so `expires_at > now` is false on waking.
            self.clock.sleep(wait + Duration::from_millis(5)).await;
        }
    }
}

fn same_scope(a: &Grant, b: &Grant) -> bool {
    match (a, b) {
        (
            Grant::Service {
                hub: ha, grant: ga, ..
            },
            Grant::Service {
                hub: hb, grant: gb, ..
            },
        ) => ha == hb && ga.resource() == gb.resource() && ga.policy() == gb.policy(),
        (Grant::Device(a), Grant::Device(b)) => {
            a.hub() == b.hub() && a.connection_key() == b.connection_key()
        }
        (
            Grant::Registration {
                id_scope: sa,
                identity: a,
                ..
            },
            Grant::Registration {
                id_scope: sb,
                identity: b,
                ..
            },
        ) => {
            sa.eq_ignore_ascii_case(sb)
                && a.registration_id()
                    .eq_ignore_ascii_case(b.registration_id())
        }
        _ => false,
    }
}
